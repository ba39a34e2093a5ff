#include "simdnn/training.h"

#include <cmath>
#include <string>

#include "simdnn/evaluation.h"

namespace simdnn {

StepResult train_step(Sequential& model, Tape& tape, Optimizer& optimizer, const DenseInput& x,
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
  for (size_t r = 0; r < z.rows(); ++r) {
    result.correct += static_cast<int32_t>(argmax(z.row(r))) == labels[r];
  }
  tape.backward(loss);
  optimizer.step(params);
  return result;
}

}  // namespace simdnn
