// One step of classifier training: forward, sparse categorical cross-entropy, backward, and
// the optimizer's update. The whole loop (epochs, batches, validation, checkpoints) is fit(),
// in <simdnn/fit.h>.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <vector>

#include "simdnn/autograd.h"
#include "simdnn/dense.h"
#include "simdnn/layers.h"
#include "simdnn/optimizer.h"
#include "simdnn/random.h"

namespace simdnn {

// Thrown when the loss is NaN or infinite; the parameters are left as they were before the
// step.
class NonFiniteLoss : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct StepResult {
  double loss = 0.0;   // mean cross-entropy over the batch
  size_t correct = 0;  // rows whose arg-max logit is the label
};

// One step of sparse categorical cross-entropy training: forward to the logits (a final
// softmax is fused into the loss), backward, then optimizer.step(). x is a float batch, or
// uint8 rows gathered from a data set (DenseInput), which the first Dense layer converts inside
// its GEMMs; both give the same bits. The tape is cleared first and keeps its buffers, so
// repeated steps allocate nothing. Throws NonFiniteLoss (before touching the parameters) when
// the loss is not finite.
StepResult train_step(Sequential& model, Tape& tape, Optimizer& optimizer, const DenseInput& x,
                      std::span<const int32_t> labels);

// Regularisation of a training step (<simdnn/regularization.h>). The defaults are none.
struct Regularization {
  // Inverted dropout after each hidden layer (after its activation), mask drawn from the
  // step's rng; in [0, 1).
  float dropout = 0.0f;
  // L2 kernel penalty: lambda * sum(W^2) over every Dense weight (not biases) added to the
  // loss, 2 * lambda * W to the gradient.
  float l2 = 0.0f;
  // Per-class loss weights (Keras class_weight), one per output; empty: all 1.
  std::vector<float> class_weights;
};

// The same step with regularisation; StepResult::loss is then the weighted cross-entropy plus
// the L2 penalty (what Keras reports as the training loss). rng draws the dropout masks (and
// is not touched when dropout is 0).
StepResult train_step(Sequential& model, Tape& tape, Optimizer& optimizer, const DenseInput& x,
                      std::span<const int32_t> labels, const Regularization& regularization,
                      Rng& rng);

// train_step's halves, for a step whose batch is split (<simdnn/data_parallel.h>).
// loss_and_gradients: forward, the loss and, when the loss is finite, backward: the parameters'
// gradients are then those of the batch's mean (weighted) cross-entropy times `loss_scale`,
// without the L2 term (StepResult::loss is the unscaled mean). The scale enters at the loss,
// before the backward pass (a data-parallel piece's share of its batch: no pass over the
// gradients afterwards); 1 gives train_step's gradients bit for bit.
// A non-finite loss is returned as it is (nothing differentiated, nothing thrown).
StepResult loss_and_gradients(Sequential& model, Tape& tape, const DenseInput& x,
                              std::span<const int32_t> labels,
                              const Regularization& regularization, Rng& rng,
                              float loss_scale = 1.0f);
// Adds the L2 term's gradient, 2 * l2 * W, to every Dense kernel's gradient and each kernel's
// penalty l2 * sum(W^2) to `loss`, layer by layer (nothing when l2 is 0).
void add_l2_gradients(Sequential& model, float l2, double& loss);

}  // namespace simdnn
