// A trainable tensor and its gradient.
#pragma once

#include <string>

#include "simdnn/tensor.h"

namespace simdnn {

// A trainable tensor, its gradient (same shape) and whether the gradient holds anything yet.
// Backward passes accumulate into `grad`; zero_grad() only drops the flag, so the first
// contribution after it overwrites instead of adding (no memset pass per step).
struct Parameter {
  Parameter() = default;
  Parameter(std::string name, const Shape& shape)
      : name(std::move(name)), value(shape), grad(shape) {}

  std::string name;
  Tensor value;
  Tensor grad;
  bool has_grad = false;
  // False freezes the parameter (fine-tuning's --freeze): the tape computes no gradient for it
  // and the optimizers leave its value, and their state for it, untouched.
  bool trainable = true;

  void zero_grad() { has_grad = false; }
  // The gradient as the optimizer should see it: zeros when nothing contributed.
  const Tensor& gradient() {
    if (!has_grad) {
      grad.fill(0.0f);
      has_grad = true;
    }
    return grad;
  }
};

}  // namespace simdnn
