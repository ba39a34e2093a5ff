// Training end to end on a small synthetic problem: it learns, and it is reproducible bit for
// bit for a seed, whatever the thread count.
#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "simdnn/evaluation.h"
#include "simdnn/batches.h"
#include "simdnn/model.h"
#include "simdnn/training.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_training {

namespace {

// 600 8x8 "images" of 4 classes: each class lights up its own quadrant, plus noise.
struct SyntheticData {
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> labels;
  static constexpr size_t kCount = 600, kSide = 8, kFeatures = 64, kClasses = 4;
};

SyntheticData make_data(uint64_t seed) {
  SyntheticData d;
  simdnn::Rng rng(seed);
  d.pixels.resize(d.kCount * d.kFeatures);
  d.labels.resize(d.kCount);
  for (size_t i = 0; i < d.kCount; ++i) {
    const uint8_t label = static_cast<uint8_t>(rng.below(d.kClasses));
    d.labels[i] = label;
    for (size_t r = 0; r < d.kSide; ++r) {
      for (size_t c = 0; c < d.kSide; ++c) {
        const size_t quadrant = (r / 4) * 2 + c / 4;
        float v = rng.uniform(0.0f, 120.0f) + (quadrant == label ? 120.0f : 0.0f);
        d.pixels[i * d.kFeatures + r * d.kSide + c] = static_cast<uint8_t>(v);
      }
    }
  }
  return d;
}

// gathered: train on GatheredRows views of the uint8 data (as tools/train does) instead of
// gather_batch tensors.
std::vector<float> train(const SyntheticData& d, uint64_t seed, int threads, int epochs,
                         double* accuracy, bool gathered = false) {
  simdnn::ModelInfo info;
  info.input_height = info.input_width = d.kSide;
  simdnn::Rng rng(seed);
  simdnn::Model model = simdnn::Model::mlp(info, {16}, simdnn::Activation::kRelu, d.kClasses, rng);
  simdnn::Adam adam;
  simdnn::Tape tape(threads);
  std::vector<uint32_t> order(d.kCount);
  simdnn::Tensor x;
  std::vector<int32_t> labels;
  for (int e = 0; e < epochs; ++e) {
    std::iota(order.begin(), order.end(), 0u);
    rng.shuffle(order);
    for (size_t s = 0; s < d.kCount; s += 32) {
      std::span<const uint32_t> idx(order.data() + s, std::min<size_t>(32, d.kCount - s));
      simdnn::gather_labels(d.labels, idx, labels);
      if (gathered) {
        const simdnn::GatheredRows rows{d.pixels, d.kFeatures, idx, info.pixel_scale};
        simdnn::train_step(model.network(), tape, adam, rows, labels);
      } else {
        simdnn::gather_batch(d.pixels, d.kFeatures, idx, info.pixel_scale, x);
        simdnn::train_step(model.network(), tape, adam, x, labels);
      }
    }
  }
  *accuracy = simdnn::evaluate(model.network(), d.pixels, d.kFeatures, d.labels, d.kClasses,
                               info.pixel_scale, 100, threads)
                  .accuracy;
  std::vector<float> weights;
  for (simdnn::Parameter* p : model.parameters()) {
    weights.insert(weights.end(), p->value.data(), p->value.data() + p->value.size());
  }
  return weights;
}

}  // namespace

TEST_CASE("training: learns, and the same seed gives the same weights on 1 and 2 threads") {
  const SyntheticData data = make_data(42);
  double acc1 = 0, acc2 = 0, acc3 = 0;
  std::vector<float> a = train(data, 7, 1, 3, &acc1);
  std::vector<float> b = train(data, 7, 2, 3, &acc2);
  std::vector<float> c = train(data, 8, 1, 3, &acc3);
  CHECK(acc1 > 0.9);  // chance is 0.25
  CHECK(a == b);      // bit for bit
  CHECK(acc1 == acc2);
  CHECK(a != c);      // the seed matters
}

TEST_CASE("training: a non-finite loss stops the step before the parameters change") {
  simdnn::ModelInfo info;
  info.input_height = 1;
  info.input_width = 3;
  simdnn::Rng rng(1);
  simdnn::Model model = simdnn::Model::mlp(info, {4}, simdnn::Activation::kRelu, 2, rng);
  simdnn::Adam adam;
  simdnn::Tape tape(1);
  simdnn::Tensor x({2, 3});
  x[0] = std::numeric_limits<float>::quiet_NaN();
  std::vector<int32_t> labels = {0, 1};
  const float before = model.parameters()[0]->value[0];
  CHECK_THROWS_AS(simdnn::train_step(model.network(), tape, adam, x, labels),
                  simdnn::NonFiniteLoss);
  CHECK(model.parameters()[0]->value[0] == before);
  CHECK(adam.steps() == 0);
}

TEST_CASE("training: steps on gathered uint8 rows give the same weights as on float batches") {
  const SyntheticData data = make_data(43);
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    double acc_float = 0, acc_gathered = 0;
    const std::vector<float> a = train(data, 9, threads, 2, &acc_float, false);
    const std::vector<float> b = train(data, 9, threads, 2, &acc_gathered, true);
    CHECK(a == b);  // bit for bit
    CHECK(acc_float == acc_gathered);
  }
}

TEST_CASE("Tape: a gathered input feeds dense, and gives other ops and value() the floats") {
  const std::vector<uint8_t> table = {0, 10, 20, 30, 40, 50, 60, 70, 80};  // 3 rows of 3
  const std::vector<uint32_t> rows = {2, 0};
  const simdnn::GatheredRows x{table, 3, rows, 0.5f};
  simdnn::Tape tape(1);
  simdnn::Var in = tape.input(x);
  simdnn::Parameter w("w", simdnn::Shape{3, 1}), b("b", simdnn::Shape{1});
  w.value.fill(1.0f);
  b.value.fill(0.5f);
  // dense() first, before anything asks for the floats: it multiplies the uint8 view.
  simdnn::Var y = tape.dense(in, tape.param(w), tape.param(b));
  CHECK(tape.value(y)[0] == 105.5f);  // 30 + 35 + 40 + 0.5
  CHECK(tape.value(y)[1] == 15.5f);   // 0 + 5 + 10 + 0.5
  const simdnn::Tensor& v = tape.value(in);
  REQUIRE(v.shape() == simdnn::Shape{2, 3});
  CHECK(v[0] == 30.0f);
  CHECK(v[2] == 40.0f);
  CHECK(v[3] == 0.0f);
  CHECK(v[5] == 10.0f);
  simdnn::Var loss = tape.mean(tape.relu(y));
  tape.backward(loss);
  // dW = x^T * (1/2): column sums of x halved.
  CHECK(w.grad[0] == doctest::Approx(15.0f));
  CHECK(w.grad[2] == doctest::Approx(25.0f));
  const std::vector<uint32_t> bad_rows = {3};
  CHECK_THROWS_AS(tape.input(simdnn::GatheredRows{table, 3, bad_rows, 1.0f}), std::out_of_range);
}

TEST_CASE("group_batches_by_label: each batch keeps its samples, ordered by label, stably") {
  const std::vector<uint8_t> labels = {3, 1, 2, 1, 0, 3, 2, 0};
  std::vector<uint32_t> order = {7, 0, 5, 1, 6, 3, 2, 4};
  simdnn::group_batches_by_label(order, 3, labels);
  // Batches {7, 0, 5} -> labels 0, 3, 3 (0 before 5: stable); {1, 6, 3} -> 1, 2, 1 -> 1, 3, 6;
  // {2, 4} -> labels 2, 0 -> 4, 2.
  CHECK(order == std::vector<uint32_t>{7, 0, 5, 1, 3, 6, 4, 2});
  std::vector<uint32_t> bad = {0, 8};
  CHECK_THROWS_AS(simdnn::group_batches_by_label(bad, 2, labels), std::out_of_range);
  CHECK_THROWS_AS(simdnn::group_batches_by_label(order, 0, labels), std::invalid_argument);
}

}  // namespace test_training
