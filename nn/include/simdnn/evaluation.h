// Scoring a classifier: arg-max and top-k ranking of class scores, and accuracy, loss and the
// confusion matrix on a labelled set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "simdnn/batches.h"
#include "simdnn/layers.h"
#include "simdnn/tensor.h"

namespace simdnn {

// Index of the largest value (the first on ties; 0 for an empty row).
size_t argmax(std::span<const float> row);
// argmax of each row.
void argmax_rows(const Tensor& scores, std::vector<int32_t>& out);

// The k highest-scoring classes of one row, best first; ties go to the lower index (so
// top_k_classes(row, 1)[0] is argmax's answer). k is capped at scores.size(). `order` is
// resized to k and its capacity reused (no allocation once it has held scores.size()).
void top_k_classes(std::span<const float> scores, size_t k, std::vector<size_t>& order);

struct Evaluation {
  double loss = 0.0;      // mean cross-entropy
  double accuracy = 0.0;  // fraction correct
  size_t count = 0;
  // confusion[true][predicted]
  std::vector<std::vector<size_t>> confusion;
};

// Evaluates a softmax classifier on uint8 images in batches of `batch` rows.
Evaluation evaluate(const Sequential& model, std::span<const uint8_t> pixels, size_t features,
                    std::span<const uint8_t> labels, size_t num_classes, float scale,
                    size_t batch = 1000, int threads = 0);
// The same on LabelledSamples.
Evaluation evaluate(const Sequential& model, const LabelledSamples& data, size_t num_classes,
                    float scale, size_t batch = 1000, int threads = 0);

}  // namespace simdnn
