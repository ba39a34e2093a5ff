#include "model_quality.h"

#include <algorithm>
#include <stdexcept>

namespace simdnn::serving {

namespace {

// A profile that does not fit the model (another class count) cannot be compared with.
std::optional<ReferenceProfile> usable(std::optional<ReferenceProfile> reference,
                                       size_t num_classes) {
  if (reference && reference->class_frequencies.size() == num_classes &&
      !reference->intensity_histogram.empty()) {
    return reference;
  }
  return std::nullopt;
}

}  // namespace

ModelQuality::ModelQuality(std::optional<ReferenceProfile> reference, size_t num_classes,
                           ModelQualityOptions options)
    : reference_(usable(std::move(reference), num_classes)),
      num_classes_(num_classes),
      options_(options) {
  if (num_classes == 0 || options.prediction_window == 0 || options.accuracy_window == 0) {
    throw std::invalid_argument("ModelQuality: classes and windows must be >= 1");
  }
  class_counts_.assign(num_classes, 0.0);
  bin_counts_.assign(reference_ ? reference_->intensity_histogram.size() : 1, 0.0);
  predictions_.reserve(std::min<size_t>(options.prediction_window, 4096));
  outcomes_.reserve(std::min<size_t>(options.accuracy_window, 4096));
}

void ModelQuality::observe_prediction(int32_t predicted_class, double input_intensity) {
  if (predicted_class < 0 || static_cast<size_t>(predicted_class) >= num_classes_) return;
  const auto bin = static_cast<uint32_t>(intensity_bin(input_intensity, bin_counts_.size()));
  std::lock_guard lock(mutex_);
  if (predictions_.size() < options_.prediction_window) {
    predictions_.emplace_back(predicted_class, bin);
  } else {
    auto& old = predictions_[next_prediction_];
    class_counts_[static_cast<size_t>(old.first)] -= 1.0;
    bin_counts_[old.second] -= 1.0;
    old = {predicted_class, bin};
    next_prediction_ = (next_prediction_ + 1) % options_.prediction_window;
  }
  class_counts_[static_cast<size_t>(predicted_class)] += 1.0;
  bin_counts_[bin] += 1.0;
}

void ModelQuality::observe_feedback(bool correct) {
  std::lock_guard lock(mutex_);
  if (outcomes_.size() < options_.accuracy_window) {
    outcomes_.push_back(correct);
  } else {
    correct_ -= outcomes_[next_outcome_];
    outcomes_[next_outcome_] = correct;
    next_outcome_ = (next_outcome_ + 1) % options_.accuracy_window;
  }
  correct_ += correct;
}

ModelQuality::Snapshot ModelQuality::snapshot() const {
  Snapshot s;
  std::vector<double> classes, bins;
  {
    std::lock_guard lock(mutex_);
    s.feedbacks = outcomes_.size();
    s.predictions = predictions_.size();
    if (s.feedbacks > 0) {
      s.live_accuracy = static_cast<double>(correct_) / static_cast<double>(s.feedbacks);
    }
    const size_t needed =
        std::max<size_t>(1, std::min(options_.min_drift_samples, options_.prediction_window));
    if (!reference_ || s.predictions < needed) {
      return s;
    }
    classes = class_counts_;
    bins = bin_counts_;
  }
  // The PSI outside the lock: the request path only waits for the copies.
  s.prediction_psi = population_stability_index(reference_->class_frequencies, classes);
  s.input_psi = population_stability_index(reference_->intensity_histogram, bins);
  return s;
}

}  // namespace simdnn::serving
