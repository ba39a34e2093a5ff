// Internal: the live quality and drift of one model version, from sliding windows over its
// last predictions and feedbacks. Metrics turns a snapshot into model_live_accuracy,
// model_prediction_drift_psi and model_input_drift_psi at each scrape (docs/serving.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "simdnn/reference_profile.h"

namespace simdnn::serving {

struct ModelQualityOptions {
  size_t prediction_window = 1000;  // the drift windows: this version's last N predictions
  size_t accuracy_window = 200;     // live accuracy: this version's last N feedbacks
  // Drift is not reported before the window holds this many predictions (min with the window):
  // a PSI of a handful of samples is noise.
  size_t min_drift_samples = 100;
};

class ModelQuality {
 public:
  // `reference` absent (a model trained before profiles existed): no drift is ever reported.
  // Throws std::invalid_argument for a zero window or class count.
  ModelQuality(std::optional<ReferenceProfile> reference, size_t num_classes,
               ModelQualityOptions options = {});

  // One prediction: its class (ignored when out of range) and its input's mean intensity
  // (mean_intensity() of <simdnn/reference_profile.h>). Thread-safe; O(1).
  void observe_prediction(int32_t predicted_class, double input_intensity);
  // One feedback on a prediction of this version. Thread-safe; O(1).
  void observe_feedback(bool correct);

  struct Snapshot {
    std::optional<double> live_accuracy;    // absent until a feedback arrived
    size_t feedbacks = 0;                   // in the accuracy window
    size_t predictions = 0;                 // in the drift window
    std::optional<double> prediction_psi;   // class mix against the training class frequencies
    std::optional<double> input_psi;        // intensity histogram against the training one
  };
  Snapshot snapshot() const;

 private:
  const std::optional<ReferenceProfile> reference_;
  const size_t num_classes_;
  const ModelQualityOptions options_;

  mutable std::mutex mutex_;
  // Rings of the last predictions (class, intensity bin) and feedback outcomes, with the
  // running histograms they add up to.
  std::vector<std::pair<int32_t, uint32_t>> predictions_;
  size_t next_prediction_ = 0;
  std::vector<double> class_counts_, bin_counts_;
  std::vector<uint8_t> outcomes_;
  size_t next_outcome_ = 0;
  size_t correct_ = 0;
};

}  // namespace simdnn::serving
