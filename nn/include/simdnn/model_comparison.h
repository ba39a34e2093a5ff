// Comparing two classifiers on the same labelled set: each one's per-sample predictions, and
// the exact McNemar test on the samples where exactly one of them is right. A model promotion
// gate (tools/promote) asks "is the candidate significantly worse than the live model?".
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "simdnn/layers.h"

namespace simdnn {

// The class each row of `pixels` (rows of `features` uint8 pixels, times `scale`) is given by
// `model` (argmax, the lower class on ties), in batches of `batch` rows. Throws
// std::invalid_argument when pixels.size() is not a multiple of features.
std::vector<int32_t> predict_classes(const Sequential& model, std::span<const uint8_t> pixels,
                                     size_t features, float scale, size_t batch = 1000,
                                     int threads = 0);

// The exact McNemar test. b and c are the discordant pairs (b: the first model right and the
// second wrong; c: the reverse). Under "both are equally good" each discordant sample falls
// either way with probability 1/2, so min(b, c) is Binomial(b + c, 1/2) and the two-sided
// p-value is min(1, 2 * P(X <= min(b, c))). Computed in log space (lgamma and log-sum-exp), so
// it stays finite and accurate for millions of samples, where the binomial coefficients
// overflow a double. b == c (and b + c == 0) give 1.
double mcnemar_exact_p(size_t b, size_t c);

// Per-sample agreement of two prediction vectors with the labels.
struct PairedCounts {
  size_t both_right = 0;
  size_t first_only = 0;   // b: the first right, the second wrong
  size_t second_only = 0;  // c: the first wrong, the second right
  size_t both_wrong = 0;
};
// Throws std::invalid_argument when the three lengths differ.
PairedCounts paired_counts(std::span<const int32_t> first, std::span<const int32_t> second,
                           std::span<const uint8_t> labels);

}  // namespace simdnn
