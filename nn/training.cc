#include "simdnn/training.h"

#include <cmath>
#include <string>

#include "simdnn/evaluation.h"
#include "simdnn/regularization.h"

namespace simdnn {
namespace {

// Sequential::forward_logits with dropout after every hidden layer: the logits of a training
// forward pass. A hidden layer ends where the next Dense begins.
Var forward_logits_with_dropout(Sequential& model, Tape& tape, Var x, float rate, Rng& rng) {
  const auto& layers = model.layers();
  size_t end = layers.size();
  if (model.ends_with_softmax()) --end;  // fused into the loss
  for (size_t i = 0; i < end; ++i) {
    x = layers[i]->forward(tape, x);
    if (i + 1 < end && dynamic_cast<const Dense*>(layers[i + 1].get()) != nullptr) {
      x = tape.dropout(x, rate, rng);
    }
  }
  return x;
}

}  // namespace

StepResult train_step(Sequential& model, Tape& tape, Optimizer& optimizer, const DenseInput& x,
                      std::span<const int32_t> labels) {
  Rng unused(0);
  return train_step(model, tape, optimizer, x, labels, Regularization{}, unused);
}

StepResult loss_and_gradients(Sequential& model, Tape& tape, const DenseInput& x,
                              std::span<const int32_t> labels,
                              const Regularization& regularization, Rng& rng) {
  tape.clear();
  const std::vector<Parameter*>& params = model.parameters();
  for (Parameter* p : params) p->zero_grad();
  Var logits = regularization.dropout > 0.0f
                   ? forward_logits_with_dropout(model, tape, tape.input(x),
                                                 regularization.dropout, rng)
                   : model.forward_logits(tape, tape.input(x));
  Var loss = tape.softmax_cross_entropy(logits, labels, regularization.class_weights);
  StepResult result;
  result.loss = tape.value(loss)[0];
  if (!std::isfinite(result.loss)) return result;
  const Tensor& z = tape.value(logits);
  for (size_t r = 0; r < z.rows(); ++r) {
    result.correct += static_cast<int32_t>(argmax(z.row(r))) == labels[r];
  }
  tape.backward(loss);
  return result;
}

void add_l2_gradients(Sequential& model, float l2, double& loss) {
  if (l2 <= 0.0f) return;
  for (const auto& layer : model.layers()) {
    if (auto* dense = dynamic_cast<Dense*>(layer.get())) {
      Parameter* kernel = &dense->weight;
      loss += l2_penalty({&kernel, 1}, l2, /*add_gradient=*/true);
    }
  }
}

StepResult train_step(Sequential& model, Tape& tape, Optimizer& optimizer, const DenseInput& x,
                      std::span<const int32_t> labels, const Regularization& regularization,
                      Rng& rng) {
  StepResult result = loss_and_gradients(model, tape, x, labels, regularization, rng);
  if (!std::isfinite(result.loss)) {
    throw NonFiniteLoss("the training loss became " + std::to_string(result.loss));
  }
  add_l2_gradients(model, regularization.l2, result.loss);
  optimizer.step(model.parameters());
  return result;
}

}  // namespace simdnn
