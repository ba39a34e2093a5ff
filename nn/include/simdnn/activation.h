// Activations as layers use them: the one forward and the one backward of each, shared by the
// autograd tape and by tape-free inference.
#pragma once

#include <string>

#include "simdnn/tensor.h"

namespace simdnn {

enum class Activation { kLinear, kRelu, kSigmoid, kTanh, kSoftmax };

// "relu" <-> Activation::kRelu, and so on ("linear", "relu", "sigmoid", "tanh", "softmax").
const char* activation_name(Activation a);
// Throws std::invalid_argument naming the unknown value and the accepted ones.
Activation parse_activation(const std::string& name);

// y = f(x), elementwise (softmax: row-wise over a [rows, cols] matrix). y is resized to x's
// shape (allocating only when it grows); y may not alias x.
void activation_forward(Activation a, const Tensor& x, Tensor& y);

// dx = dy * f'(x), computed from the forward output y (every activation here has its
// derivative as a function of its output). y, dy and dx have the same shape; dx is
// overwritten and may not alias y or dy. Softmax: dx = y ⊙ (dy − <dy, y>) per row.
void activation_backward(Activation a, const Tensor& y, const Tensor& dy, float* dx);

}  // namespace simdnn
