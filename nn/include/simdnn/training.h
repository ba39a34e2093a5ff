// The pieces of a classifier training loop: batches from uint8 images, one optimizer step, and
// evaluation. tools/train strings them together; embedders can too.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <vector>

#include "simdnn/autograd.h"
#include "simdnn/layers.h"
#include "simdnn/optimizer.h"
#include "simdnn/tensor.h"

namespace simdnn {

// Thrown by train_step when the loss is NaN or infinite; the parameters are left as they were
// before the step.
class NonFiniteLoss : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// x[i, :] = pixels[indices[i] * features + j] * scale: one batch of uint8 images as floats.
// x is resized to [indices.size(), features] (no allocation once it has held a batch as large).
// Large batches are converted on `threads` threads (0 = OpenMP default); the result does not
// depend on the thread count. Throws std::out_of_range for an index past the data.
void gather_batch(std::span<const uint8_t> pixels, size_t features,
                  std::span<const uint32_t> indices, float scale, Tensor& x, int threads = 0);
// Orders each batch of `batch` consecutive entries of a shuffled index by label (stable), in
// place. A batch stays the same set of samples, so a training step computes the same thing up
// to rounding; but images of one class share their blank background, so more packed groups
// of pixels are blank in every image and gemm_gathered skips them (Fashion-MNIST, batch 256:
// 8% -> 18% of the forward pass's depths).
void group_batches_by_label(std::span<uint32_t> order, size_t batch,
                            std::span<const uint8_t> all_labels);
// labels[i] = all_labels[indices[i]].
void gather_labels(std::span<const uint8_t> all_labels, std::span<const uint32_t> indices,
                   std::vector<int32_t>& labels);

struct StepResult {
  double loss = 0.0;   // mean cross-entropy over the batch
  size_t correct = 0;  // rows whose arg-max logit is the label
};

// One step of sparse categorical cross-entropy training: forward to the logits (a final
// softmax is fused into the loss), backward, then optimizer.step(). The tape is cleared first
// and keeps its buffers, so repeated steps allocate nothing. Throws NonFiniteLoss (before
// touching the parameters) when the loss is not finite.
StepResult train_step(Sequential& model, Tape& tape, Optimizer& optimizer, const Tensor& x,
                      std::span<const int32_t> labels);
// The same step on a batch of uint8 rows gathered from a data set (e.g. images picked by a
// shuffled index): a first Dense layer converts them inside its GEMMs, so the batch is never
// written out as floats. The result is bit-identical to train_step on gather_batch's tensor.
StepResult train_step(Sequential& model, Tape& tape, Optimizer& optimizer, const GatheredRows& x,
                      std::span<const int32_t> labels);

// Index of the largest value in each row (the first on ties).
void argmax_rows(const Tensor& scores, std::vector<int32_t>& out);

struct Evaluation {
  double loss = 0.0;      // mean cross-entropy
  double accuracy = 0.0;  // fraction correct
  size_t count = 0;
  // confusion[true][predicted]
  std::vector<std::vector<size_t>> confusion;
};

// Evaluates a softmax classifier on uint8 images in batches of `batch` rows.
Evaluation evaluate(Sequential& model, std::span<const uint8_t> pixels, size_t features,
                    std::span<const uint8_t> labels, size_t num_classes, float scale,
                    size_t batch = 1000, int threads = 0);

}  // namespace simdnn
