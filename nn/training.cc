#include "simdnn/training.h"

#include <cmath>
#include <string>

#include "simdnn/evaluation.h"
#include "simdnn/regularization.h"

namespace simdnn {
namespace {

// Sequential::forward_logits with dropout after every hidden layer: the logits of a training
// forward pass. A hidden layer ends where the next Dense begins.
// Records layers [0, end) with dropout after every hidden layer (rate 0: none): a hidden layer
// ends where the next Dense begins, and `end` counts as a Dense (the fused output layer).
Var forward_with_dropout(Sequential& model, Tape& tape, Var x, size_t end, float rate,
                         Rng& rng) {
  const auto& layers = model.layers();
  for (size_t i = 0; i < end; ++i) {
    x = layers[i]->forward(tape, x);
    const bool next_is_dense =
        i + 1 < layers.size() && dynamic_cast<const Dense*>(layers[i + 1].get()) != nullptr;
    if (rate > 0.0f && next_is_dense && i + 1 <= end) x = tape.dropout(x, rate, rng);
  }
  return x;
}

// The Dense layer that train_step runs fused with the loss (Tape::dense_softmax_cross_entropy),
// or null: a model ending in Dense, softmax, with at least one layer before that Dense. A lone
// Dense + softmax reads the data rows directly and keeps the separate path, whose GEMMs take
// the gathered uint8 rows without converting them to floats. Everything else the step does
// (dropout before the Dense, class weights, L2, frozen parameters) the fused op covers.
Dense* fused_output_layer(Sequential& model) {
  const auto& layers = model.layers();
  if (layers.size() < 3 || !model.ends_with_softmax()) return nullptr;
  return dynamic_cast<Dense*>(layers[layers.size() - 2].get());
}

}  // namespace

StepResult train_step(Sequential& model, Tape& tape, Optimizer& optimizer, const DenseInput& x,
                      std::span<const int32_t> labels) {
  Rng unused(0);
  return train_step(model, tape, optimizer, x, labels, Regularization{}, unused);
}

StepResult loss_and_gradients(Sequential& model, Tape& tape, const DenseInput& x,
                              std::span<const int32_t> labels,
                              const Regularization& regularization, Rng& rng,
                              float loss_scale) {
  tape.clear();
  const std::vector<Parameter*>& params = model.parameters();
  for (Parameter* p : params) p->zero_grad();
  const float rate = regularization.dropout;
  StepResult result;
  Var loss;
  if (Dense* output = fused_output_layer(model)) {
    const size_t end = model.layers().size() - 2;  // the output Dense
    const Var h = forward_with_dropout(model, tape, tape.input(x), end, rate, rng);
    loss = tape.dense_softmax_cross_entropy(h, tape.param(output->weight),
                                            tape.param(output->bias), labels,
                                            regularization.class_weights);
    // The logits are not kept; softmax is monotonic, so the probabilities' arg-max is theirs
    // (barring logits within rounding of each other, whose exps round to the same float).
    const Tensor& p = tape.probabilities(loss);
    for (size_t r = 0; r < p.rows(); ++r) {
      result.correct += static_cast<int32_t>(argmax(p.row(r))) == labels[r];
    }
  } else {
    const size_t end = model.layers().size() - (model.ends_with_softmax() ? 1 : 0);
    const Var logits = forward_with_dropout(model, tape, tape.input(x), end, rate, rng);
    loss = tape.softmax_cross_entropy(logits, labels, regularization.class_weights);
    const Tensor& z = tape.value(logits);
    for (size_t r = 0; r < z.rows(); ++r) {
      result.correct += static_cast<int32_t>(argmax(z.row(r))) == labels[r];
    }
  }
  result.loss = tape.value(loss)[0];
  if (!std::isfinite(result.loss)) {
    return result;  // train_step throws NonFiniteLoss; a data-parallel step first agrees on it
  }
  tape.backward(loss, loss_scale);
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
