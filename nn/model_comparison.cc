#include "simdnn/model_comparison.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "simdnn/batches.h"
#include "simdnn/evaluation.h"
#include "simdnn/tensor.h"

namespace simdnn {

std::vector<int32_t> predict_classes(const Sequential& model, std::span<const uint8_t> pixels,
                                     size_t features, float scale, size_t batch, int threads) {
  if (features == 0 || pixels.size() % features != 0) {
    throw std::invalid_argument("predict_classes: " + std::to_string(pixels.size()) +
                                " pixels are not whole rows of " + std::to_string(features));
  }
  const size_t count = pixels.size() / features;
  if (batch == 0) batch = 1000;
  std::vector<int32_t> out(count);
  std::vector<uint32_t> indices;
  std::vector<int32_t> predicted;
  Tensor x;
  Workspace workspace;
  for (size_t start = 0; start < count; start += batch) {
    const size_t n = std::min(batch, count - start);
    indices.resize(n);
    for (size_t i = 0; i < n; ++i) indices[i] = static_cast<uint32_t>(start + i);
    gather_batch(pixels, features, indices, scale, x, threads);
    argmax_rows(model.predict(x, workspace, threads), predicted);
    std::copy(predicted.begin(), predicted.end(), out.begin() + static_cast<std::ptrdiff_t>(start));
  }
  return out;
}

double mcnemar_exact_p(size_t b, size_t c) {
  const size_t n = b + c;
  const size_t k = std::min(b, c);
  if (n == 0 || b == c) return 1.0;
  // log P(X = i) = log C(n, i) - n log 2; P(X <= k) summed as exp(max) * sum exp(term - max).
  // The terms grow with i up to n/2 and k < n/2, so the largest is the last.
  const double nd = static_cast<double>(n);
  const double log_n_fact = std::lgamma(nd + 1.0);
  const double log_half_n = nd * std::log(2.0);
  const auto log_term = [&](size_t i) {
    const double id = static_cast<double>(i);
    return log_n_fact - std::lgamma(id + 1.0) - std::lgamma(nd - id + 1.0) - log_half_n;
  };
  const double top = log_term(k);
  double sum = 0.0;
  // From i = k downwards: once a term is below 1e-18 of the largest the rest cannot matter
  // (each further term is smaller still), which bounds the work to O(sqrt(n)) for big counts.
  for (size_t i = k + 1; i-- > 0;) {
    const double t = std::exp(log_term(i) - top);
    sum += t;
    if (t < 1e-18) break;
  }
  const double log_tail = top + std::log(sum);
  return std::min(1.0, 2.0 * std::exp(log_tail));
}

PairedCounts paired_counts(std::span<const int32_t> first, std::span<const int32_t> second,
                           std::span<const uint8_t> labels) {
  if (first.size() != labels.size() || second.size() != labels.size()) {
    throw std::invalid_argument("paired_counts: " + std::to_string(first.size()) + " and " +
                                std::to_string(second.size()) + " predictions for " +
                                std::to_string(labels.size()) + " labels");
  }
  PairedCounts r;
  for (size_t i = 0; i < labels.size(); ++i) {
    const bool a = first[i] == labels[i];
    const bool s = second[i] == labels[i];
    if (a && s) ++r.both_right;
    else if (a) ++r.first_only;
    else if (s) ++r.second_only;
    else ++r.both_wrong;
  }
  return r;
}

}  // namespace simdnn
