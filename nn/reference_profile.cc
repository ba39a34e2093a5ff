#include "simdnn/reference_profile.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>

namespace simdnn {

double mean_intensity(std::span<const uint8_t> pixels) {
  if (pixels.empty()) return 0.0;
  uint64_t sum = 0;
  for (uint8_t p : pixels) sum += p;
  return static_cast<double>(sum) / (255.0 * static_cast<double>(pixels.size()));
}

double mean_intensity(std::span<const float> features, float pixel_scale) {
  if (features.empty() || !(pixel_scale > 0.0f)) return 0.0;
  // Eight independent partial sums rather than one 784-long chain of dependent additions
  // (latency-bound, ~5k instructions per served image): the compiler keeps them in vector
  // registers. For pixels scaled by 1/255 (the served case) every term is a multiple of
  // 2^-32 below 1, so any order of a double sum of fewer than 2^21 of them is exact and the
  // result is unchanged; for arbitrary features it may differ in the last bits, which a
  // monitoring statistic binned into 20 intervals does not notice.
  constexpr size_t kAcc = 8;
  double acc[kAcc] = {};
  const size_t n = features.size(), whole = n - n % kAcc;
  const float* f = features.data();
  for (size_t i = 0; i < whole; i += kAcc) {
    for (size_t j = 0; j < kAcc; ++j) acc[j] += static_cast<double>(f[i + j]);
  }
  for (size_t i = whole; i < n; ++i) acc[i - whole] += static_cast<double>(f[i]);
  const double sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  const double m = sum / (255.0 * pixel_scale * static_cast<double>(features.size()));
  return std::isfinite(m) ? std::clamp(m, 0.0, 1.0) : 0.0;
}

size_t intensity_bin(double intensity, size_t bins) {
  if (bins == 0 || !(intensity > 0.0)) return 0;  // NaN and <= 0 land in bin 0
  const double b = std::floor(intensity * static_cast<double>(bins));
  return b >= static_cast<double>(bins - 1) ? bins - 1 : static_cast<size_t>(b);
}

ReferenceProfile reference_profile(const LabelledSamples& samples, size_t num_classes) {
  const size_t n = samples.count();
  if (n == 0 || samples.features == 0 || num_classes == 0) {
    throw std::invalid_argument("reference_profile: no samples, features or classes");
  }
  if (samples.pixels.size() != n * samples.features) {
    throw std::invalid_argument("reference_profile: " + std::to_string(samples.pixels.size()) +
                                " pixels for " + std::to_string(n) + " samples of " +
                                std::to_string(samples.features));
  }
  ReferenceProfile p;
  p.samples = n;
  p.class_frequencies.assign(num_classes, 0.0);
  p.intensity_histogram.assign(ReferenceProfile::kIntensityBins, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const size_t label = samples.labels[i];
    if (label >= num_classes) {
      throw std::invalid_argument("reference_profile: label " + std::to_string(label) +
                                  " of sample " + std::to_string(i) + " >= " +
                                  std::to_string(num_classes) + " classes");
    }
    p.class_frequencies[label] += 1.0;
    p.intensity_histogram[intensity_bin(
        mean_intensity(samples.pixels.subspan(i * samples.features, samples.features)))] += 1.0;
  }
  for (double& f : p.class_frequencies) f /= static_cast<double>(n);
  for (double& f : p.intensity_histogram) f /= static_cast<double>(n);
  return p;
}

namespace {

double checked_sum(std::span<const double> h, const char* which) {
  double sum = 0.0;
  for (double v : h) {
    if (!std::isfinite(v) || v < 0.0) {
      throw std::invalid_argument(std::string("population_stability_index: ") + which +
                                  " holds a negative or non-finite entry");
    }
    sum += v;
  }
  if (!(sum > 0.0)) {
    throw std::invalid_argument(std::string("population_stability_index: ") + which +
                                " sums to 0");
  }
  return sum;
}

}  // namespace

double population_stability_index(std::span<const double> reference,
                                  std::span<const double> live, double epsilon) {
  if (reference.empty() || reference.size() != live.size()) {
    throw std::invalid_argument("population_stability_index: " +
                                std::to_string(reference.size()) + " reference bins, " +
                                std::to_string(live.size()) + " live bins");
  }
  const double ref_sum = checked_sum(reference, "the reference");
  const double live_sum = checked_sum(live, "the live histogram");
  double psi = 0.0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const double r = std::max(reference[i] / ref_sum, epsilon);
    const double l = std::max(live[i] / live_sum, epsilon);
    psi += (l - r) * std::log(l / r);
  }
  return psi;
}

std::string reference_profile_to_json(const ReferenceProfile& profile) {
  return nlohmann::json{{"samples", profile.samples},
                        {"class_frequencies", profile.class_frequencies},
                        {"intensity_histogram", profile.intensity_histogram}}
      .dump();
}

namespace {

std::vector<double> fractions(const nlohmann::json& j, const char* key, size_t min_size,
                              size_t max_size) {
  if (!j.contains(key) || !j[key].is_array()) {
    throw std::invalid_argument(std::string("\"") + key + "\" is missing or not a list");
  }
  const nlohmann::json& a = j[key];
  if (a.size() < min_size || a.size() > max_size) {
    throw std::invalid_argument(std::string("\"") + key + "\" has " + std::to_string(a.size()) +
                                " entries, expected " +
                                (min_size == max_size ? std::to_string(min_size)
                                                      : std::to_string(min_size) + ".." +
                                                            std::to_string(max_size)));
  }
  std::vector<double> out;
  out.reserve(a.size());
  for (const auto& v : a) {
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0.0) {
      throw std::invalid_argument(std::string("\"") + key +
                                  "\" holds an entry that is not a finite number >= 0");
    }
    out.push_back(v.get<double>());
  }
  return out;
}

}  // namespace

ReferenceProfile reference_profile_from_json(const std::string& json, size_t num_classes) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument("reference_profile is not valid JSON");
  }
  if (!j.is_object()) throw std::invalid_argument("reference_profile is not a JSON object");
  ReferenceProfile p;
  if (!j.contains("samples") || !j["samples"].is_number_unsigned()) {
    throw std::invalid_argument("\"samples\" is missing or not a non-negative integer");
  }
  p.samples = j["samples"].get<uint64_t>();
  p.class_frequencies = fractions(j, "class_frequencies", num_classes, num_classes);
  p.intensity_histogram = fractions(j, "intensity_histogram", 1, 1000);
  return p;
}

}  // namespace simdnn
