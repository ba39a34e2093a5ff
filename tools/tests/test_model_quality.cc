// Live quality and drift windows (serving/model_quality.h): the accuracy of the last N
// feedbacks, and PSI of the last N predictions against the training profile.
#include <doctest/doctest.h>

#include <cmath>

#include "serving/model_quality.h"

namespace simdnn::serving {
namespace test_model_quality {  // one per file: the test programs are unity builds

ReferenceProfile two_class_profile() {
  ReferenceProfile p;
  p.samples = 100;
  p.class_frequencies = {0.5, 0.5};
  p.intensity_histogram = {0.5, 0.5};  // two bins: intensity < 0.5 and >= 0.5
  return p;
}

TEST_CASE("model quality: live accuracy over the last N feedbacks") {
  ModelQuality q(std::nullopt, 2, {.accuracy_window = 4});
  CHECK_FALSE(q.snapshot().live_accuracy);
  q.observe_feedback(true);
  q.observe_feedback(false);
  CHECK(*q.snapshot().live_accuracy == 0.5);
  CHECK(q.snapshot().feedbacks == 2);
  // Four wrong answers push every earlier one out of the window.
  for (int i = 0; i < 4; ++i) q.observe_feedback(false);
  CHECK(*q.snapshot().live_accuracy == 0.0);
  for (int i = 0; i < 3; ++i) q.observe_feedback(true);
  CHECK(*q.snapshot().live_accuracy == 0.75);
  CHECK(q.snapshot().feedbacks == 4);
}

TEST_CASE("model quality: no profile, no drift") {
  ModelQuality q(std::nullopt, 2, {.prediction_window = 10, .min_drift_samples = 1});
  for (int i = 0; i < 20; ++i) q.observe_prediction(i % 2, 0.7);
  CHECK(q.snapshot().predictions == 10);
  CHECK_FALSE(q.snapshot().prediction_psi);
  CHECK_FALSE(q.snapshot().input_psi);
  // A profile for another class count is as good as none.
  ModelQuality other(two_class_profile(), 3, {.prediction_window = 10, .min_drift_samples = 1});
  for (int i = 0; i < 20; ++i) other.observe_prediction(i % 3, 0.7);
  CHECK_FALSE(other.snapshot().prediction_psi);
}

TEST_CASE("model quality: drift PSI of the sliding window against the training profile") {
  ModelQuality q(two_class_profile(), 2, {.prediction_window = 10, .min_drift_samples = 4});
  q.observe_prediction(0, 0.1);
  q.observe_prediction(1, 0.9);
  q.observe_prediction(0, 0.1);
  CHECK_FALSE(q.snapshot().prediction_psi);  // 3 < min_drift_samples
  q.observe_prediction(1, 0.9);
  // Same mix as training: no drift.
  REQUIRE(q.snapshot().prediction_psi);
  CHECK(*q.snapshot().prediction_psi == doctest::Approx(0.0));
  CHECK(*q.snapshot().input_psi == doctest::Approx(0.0));
  // Ten class-0, dark predictions fill the window: live {1, 0} against {0.5, 0.5}, epsilon 1e-4:
  // (1 - 0.5) ln(1/0.5) + (1e-4 - 0.5) ln(1e-4/0.5).
  for (int i = 0; i < 10; ++i) q.observe_prediction(0, 0.2);
  const double expected = 0.5 * std::log(2.0) + (1e-4 - 0.5) * std::log(1e-4 / 0.5);
  CHECK(*q.snapshot().prediction_psi == doctest::Approx(expected));
  CHECK(*q.snapshot().input_psi == doctest::Approx(expected));
  CHECK(q.snapshot().predictions == 10);
  // Out-of-range classes are ignored.
  q.observe_prediction(7, 0.2);
  q.observe_prediction(-1, 0.2);
  CHECK(q.snapshot().predictions == 10);
  CHECK_THROWS_AS(ModelQuality(std::nullopt, 0), std::invalid_argument);
}

}  // namespace test_model_quality
}  // namespace simdnn::serving
