// Labelled uint8 samples (images) and the batches a training loop makes of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "simdnn/tensor.h"

namespace simdnn {

// `count()` samples of `features` uint8 values each (an image, row-major), with one class label
// each. Borrows the bytes.
struct LabelledSamples {
  std::span<const uint8_t> pixels;  // count() * features
  std::span<const uint8_t> labels;
  size_t features = 0;

  size_t count() const { return labels.size(); }
  // Samples [first, first + n). Throws std::out_of_range past the end.
  LabelledSamples slice(size_t first, size_t n) const;
};

// x[i, :] = pixels[indices[i] * features + j] * scale: one batch of uint8 images as floats.
// x is resized to [indices.size(), features] (no allocation once it has held a batch as large).
// Large batches are converted on `threads` threads (0 = OpenMP default); the result does not
// depend on the thread count. Throws std::out_of_range for an index past the data.
void gather_batch(std::span<const uint8_t> pixels, size_t features,
                  std::span<const uint32_t> indices, float scale, Tensor& x, int threads = 0);

// labels[i] = all_labels[indices[i]].
void gather_labels(std::span<const uint8_t> all_labels, std::span<const uint32_t> indices,
                   std::vector<int32_t>& labels);

// Orders each batch of `batch` consecutive entries of a shuffled index by label (stable), in
// place. A batch stays the same set of samples, so a training step computes the same thing up
// to rounding; but images of one class share their blank background, so more packed groups of
// pixels are blank in every image and gemm_gathered skips their multiply-adds.
void group_batches_by_label(std::span<uint32_t> order, size_t batch,
                            std::span<const uint8_t> all_labels);

}  // namespace simdnn
