#include "simdnn/training.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "simdnn/parallel_for.h"
#include "simdnn/softmax_kernels.h"
#include "simdnn/vector_kernels.h"

namespace simdnn {
namespace {
size_t argmax_row(const float* row, size_t cols) {
  size_t best = 0;
  for (size_t c = 1; c < cols; ++c) {
    if (row[c] > row[best]) best = c;
  }
  return best;
}
}  // namespace

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

void argmax_rows(const Tensor& scores, std::vector<int32_t>& out) {
  const size_t rows = scores.rows(), cols = scores.cols();
  out.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    out[r] = static_cast<int32_t>(argmax_row(scores.data() + r * cols, cols));
  }
}

namespace {
// Records x as the tape's input, then runs the step.
template <class Input>
StepResult train_step_on(Sequential& model, Tape& tape, Optimizer& optimizer, const Input& x,
                         std::span<const int32_t> labels) {
  tape.clear();
  const std::vector<Parameter*>& params = model.parameters();
  for (Parameter* p : params) p->zero_grad();
  Var logits = model.forward_logits(tape, tape.input(x));
  Var loss = tape.softmax_cross_entropy(logits, labels);
  StepResult result;
  result.loss = tape.value(loss)[0];
  if (!std::isfinite(result.loss)) {
    throw NonFiniteLoss("the training loss became " + std::to_string(result.loss));
  }
  const Tensor& z = tape.value(logits);
  const size_t cols = z.cols();
  for (size_t r = 0; r < z.rows(); ++r) {
    result.correct += static_cast<int32_t>(argmax_row(z.data() + r * cols, cols)) == labels[r];
  }
  tape.backward(loss);
  optimizer.step(params);
  return result;
}
}  // namespace

StepResult train_step(Sequential& model, Tape& tape, Optimizer& optimizer, const Tensor& x,
                      std::span<const int32_t> labels) {
  return train_step_on(model, tape, optimizer, x, labels);
}

StepResult train_step(Sequential& model, Tape& tape, Optimizer& optimizer, const GatheredRows& x,
                      std::span<const int32_t> labels) {
  return train_step_on(model, tape, optimizer, x, labels);
}

Evaluation evaluate(Sequential& model, std::span<const uint8_t> pixels, size_t features,
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
  Tensor log_probs;
  double loss_sum = 0.0;
  size_t correct = 0;
  for (size_t start = 0; start < ev.count; start += batch) {
    const size_t n = std::min(batch, ev.count - start);
    indices.resize(n);
    for (size_t i = 0; i < n; ++i) indices[i] = static_cast<uint32_t>(start + i);
    gather_batch(pixels, features, indices, scale, x, threads);
    gather_labels(labels, indices, batch_labels);
    const Tensor& probs = model.predict(x, threads);
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

}  // namespace simdnn
