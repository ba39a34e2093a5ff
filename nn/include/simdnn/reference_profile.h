// The reference profile of a training set, written into the model's metadata by training, and
// the population stability index (PSI) that compares live traffic with it: the service's drift
// metrics (model_prediction_drift_psi, model_input_drift_psi; docs/serving.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "simdnn/batches.h"

namespace simdnn {

struct ReferenceProfile {
  // Fixed bins of mean input intensity over [0, 1]: bin i holds [i/20, (i+1)/20), the last
  // one also 1.0.
  static constexpr size_t kIntensityBins = 20;

  uint64_t samples = 0;                     // training samples it was computed on
  std::vector<double> class_frequencies;    // fraction of samples per label; sums to 1
  std::vector<double> intensity_histogram;  // fraction of samples per intensity bin; sums to 1
};

// The mean input intensity of one image: mean pixel / 255, in [0, 1].
double mean_intensity(std::span<const uint8_t> pixels);
// The same from model input features (pixel * pixel_scale): mean feature / (255 * pixel_scale),
// clamped to [0, 1], so that a served input and its training image land in the same bin.
double mean_intensity(std::span<const float> features, float pixel_scale);
// The bin of a mean intensity: floor(intensity * bins), clamped to [0, bins - 1] (NaN: 0).
size_t intensity_bin(double intensity, size_t bins = ReferenceProfile::kIntensityBins);

// The profile of a labelled set. Throws std::invalid_argument for an empty set, a sample of
// the wrong size, or a label >= num_classes.
ReferenceProfile reference_profile(const LabelledSamples& samples, size_t num_classes);

// Population stability index of `live` against `reference`, two histograms over the same
// bins (counts or fractions; each is normalised to sum 1 first):
//   PSI = sum_i (l_i - r_i) * ln(l_i / r_i),  r_i = max(ref_i / sum ref, epsilon),
//                                              l_i = max(live_i / sum live, epsilon)
// epsilon stands in for an empty bin, whose log ratio would otherwise be infinite. 0 means the
// same distribution; the usual reading is < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 major
// shift. Throws std::invalid_argument for different or zero bin counts, a negative or
// non-finite entry, or a histogram summing to 0.
double population_stability_index(std::span<const double> reference,
                                  std::span<const double> live, double epsilon = 1e-4);

// The profile as the model file's "reference_profile" metadata value:
// {"samples":N,"class_frequencies":[...],"intensity_histogram":[...]}.
std::string reference_profile_to_json(const ReferenceProfile& profile);
// Parses and validates that value: `num_classes` class frequencies and 1..1000 histogram bins,
// each finite and >= 0. Throws std::invalid_argument naming what is wrong.
ReferenceProfile reference_profile_from_json(const std::string& json, size_t num_classes);

}  // namespace simdnn
