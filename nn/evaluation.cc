#include "simdnn/evaluation.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace simdnn {
size_t argmax(std::span<const float> row) {
  size_t best = 0;
  for (size_t c = 1; c < row.size(); ++c) {
    if (row[c] > row[best]) best = c;
  }
  return best;
}

void argmax_rows(const Tensor& scores, std::vector<int32_t>& out) {
  const size_t rows = scores.rows(), cols = scores.cols();
  out.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    out[r] = static_cast<int32_t>(argmax({scores.data() + r * cols, cols}));
  }
}

void top_k_classes(std::span<const float> scores, size_t k, std::vector<size_t>& order) {
  order.resize(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  k = std::min(k, scores.size());
  // A total order for finite values: highest first, the lower index on ties, so the result
  // does not depend on how partial_sort moves equal elements.
  const float* p = scores.data();
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [p](size_t a, size_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  order.resize(k);
}

Evaluation evaluate(const Sequential& model, std::span<const uint8_t> pixels, size_t features,
                    std::span<const uint8_t> labels, size_t num_classes, float scale,
                    size_t batch, int threads) {
  Evaluation ev;
  ev.count = labels.size();
  ev.confusion.assign(num_classes, std::vector<size_t>(num_classes, 0));
  if (ev.count == 0) return ev;
  if (batch == 0) batch = 1000;
  Tensor x;
  std::vector<uint32_t> indices;
  std::vector<int32_t> batch_labels, predicted;
  Workspace workspace;
  double loss_sum = 0.0;
  size_t correct = 0;
  for (size_t start = 0; start < ev.count; start += batch) {
    const size_t n = std::min(batch, ev.count - start);
    indices.resize(n);
    for (size_t i = 0; i < n; ++i) indices[i] = static_cast<uint32_t>(start + i);
    gather_batch(pixels, features, indices, scale, x, threads);
    gather_labels(labels, indices, batch_labels);
    const Tensor& probs = model.predict(x, workspace, threads);
    if (probs.cols() != num_classes) {
      throw std::invalid_argument("evaluate: the model has " + std::to_string(probs.cols()) +
                                  " outputs, the data " + std::to_string(num_classes) +
                                  " classes");
    }
    argmax_rows(probs, predicted);
    for (size_t i = 0; i < n; ++i) {
      const int32_t y = batch_labels[i];
      // The model ends in softmax: the loss is -log p, guarded against p == 0.
      const float p = probs.data()[i * num_classes + y];
      loss_sum += -std::log(std::max(static_cast<double>(p), 1e-30));
      ++ev.confusion[y][predicted[i]];
      correct += predicted[i] == y;
    }
  }
  ev.loss = loss_sum / static_cast<double>(ev.count);
  ev.accuracy = static_cast<double>(correct) / static_cast<double>(ev.count);
  return ev;
}

Evaluation evaluate(const Sequential& model, const LabelledSamples& data, size_t num_classes,
                    float scale, size_t batch, int threads) {
  return evaluate(model, data.pixels, data.features, data.labels, num_classes, scale, batch,
                  threads);
}

}  // namespace simdnn
