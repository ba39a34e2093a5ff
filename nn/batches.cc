#include "simdnn/batches.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "simdnn/parallel_for.h"
#include "simdnn/threading.h"
#include "simdnn/vector_kernels.h"

namespace simdnn {

LabelledSamples LabelledSamples::slice(size_t first, size_t n) const {
  if (first > count() || n > count() - first) {
    throw std::out_of_range("LabelledSamples::slice: samples [" + std::to_string(first) + ", " +
                            std::to_string(first + n) + ") of " + std::to_string(count()));
  }
  return {pixels.subspan(first * features, n * features), labels.subspan(first, n), features};
}

void gather_batch(std::span<const uint8_t> pixels, size_t features,
                  std::span<const uint32_t> indices, float scale, Tensor& x, int threads) {
  x.resize(Shape{indices.size(), features});
  for (uint32_t index : indices) {
    if (static_cast<size_t>(index) * features + features > pixels.size()) {
      throw std::out_of_range("gather_batch: image " + std::to_string(index) +
                              " is past the end of the data");
    }
  }
  // Rows in blocks of 32: each row's conversion is independent of the thread that runs it.
  constexpr size_t kRowsPerTask = 32;
  constexpr size_t kPrefetchRows = 16;
  const size_t tasks = (indices.size() + kRowsPerTask - 1) / kRowsPerTask;
  const int workers = indices.size() * features >= (size_t{1} << 16) ? resolve_threads(threads) : 1;
  parallel_for(static_cast<int64_t>(tasks), workers, [&](int64_t t) {
    const size_t end = std::min(indices.size(), (static_cast<size_t>(t) + 1) * kRowsPerTask);
    for (size_t i = static_cast<size_t>(t) * kRowsPerTask; i < end; ++i) {
      // Rows come from random places in a data set larger than the cache: fetch a few rows
      // ahead so the misses overlap instead of stalling each row's conversion in turn.
      if (i + kPrefetchRows < indices.size()) {
        const uint8_t* ahead =
            pixels.data() + static_cast<size_t>(indices[i + kPrefetchRows]) * features;
        for (size_t b = 0; b < features; b += 64) __builtin_prefetch(ahead + b);
      }
      convert_u8_to_float(features, pixels.data() + static_cast<size_t>(indices[i]) * features,
                          scale, x.data() + i * features);
    }
  });
}

void group_batches_by_label(std::span<uint32_t> order, size_t batch,
                            std::span<const uint8_t> all_labels) {
  if (batch == 0) throw std::invalid_argument("group_batches_by_label: batch size 0");
  for (uint32_t index : order) {
    if (index >= all_labels.size()) {
      throw std::out_of_range("group_batches_by_label: index " + std::to_string(index) +
                              " is past the " + std::to_string(all_labels.size()) + " labels");
    }
  }
  for (size_t start = 0; start < order.size(); start += batch) {
    const auto first = order.begin() + static_cast<std::ptrdiff_t>(start);
    const auto last = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + batch));
    std::stable_sort(first, last, [&](uint32_t a, uint32_t b) { return all_labels[a] < all_labels[b]; });
  }
}

void gather_labels(std::span<const uint8_t> all_labels, std::span<const uint32_t> indices,
                   std::vector<int32_t>& labels) {
  labels.resize(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) labels[i] = all_labels[indices[i]];
}

}  // namespace simdnn
