#include "simdnn/activation.h"

#include <algorithm>
#include <stdexcept>

#include "simdnn/activation_kernels.h"
#include "simdnn/softmax_kernels.h"

namespace simdnn {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kLinear: return "linear";
    case Activation::kRelu: return "relu";
    case Activation::kSigmoid: return "sigmoid";
    case Activation::kTanh: return "tanh";
    case Activation::kSoftmax: return "softmax";
  }
  return "?";
}

Activation parse_activation(const std::string& name) {
  for (Activation a : {Activation::kLinear, Activation::kRelu, Activation::kSigmoid,
                       Activation::kTanh, Activation::kSoftmax}) {
    if (name == activation_name(a)) return a;
  }
  throw std::invalid_argument("unknown activation '" + name +
                              "' (expected linear, relu, sigmoid, tanh or softmax)");
}

namespace {
void require_matrix(const Shape& s, const char* what) {
  if (s.rank() != 2) {
    throw std::invalid_argument(std::string("softmax: ") + what +
                                " must be a matrix [rows, cols], got " + s.to_string());
  }
}
}  // namespace

// x [B, n] -> y [B, n]
void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  if (a == Activation::kSoftmax) require_matrix(x.shape(), "input");
  y.resize(x.shape());
  const size_t n = x.size();
  switch (a) {
    case Activation::kLinear: std::copy_n(x.data(), n, y.data()); return;
    case Activation::kRelu: relu_forward(n, x.data(), y.data()); return;
    case Activation::kSigmoid: sigmoid_forward(n, x.data(), y.data()); return;
    case Activation::kTanh: tanh_forward(n, x.data(), y.data()); return;
    case Activation::kSoftmax:
      softmax_rows(x.rows(), x.cols(), x.data(), x.cols(), y.data(), x.cols());
      return;
  }
}

// y [B, n], dy [B, n] -> dx [B, n]
void activation_backward(Activation a, const Tensor& y, const Tensor& dy, float* dx) {
  require_same_shape(y.shape(), dy.shape(), "activation_backward");
  const size_t n = y.size();
  switch (a) {
    case Activation::kLinear: std::copy_n(dy.data(), n, dx); return;
    case Activation::kRelu: relu_backward(n, y.data(), dy.data(), dx); return;
    case Activation::kSigmoid: sigmoid_backward(n, y.data(), dy.data(), dx); return;
    case Activation::kTanh: tanh_backward(n, y.data(), dy.data(), dx); return;
    case Activation::kSoftmax: {
      // Ten classes: a scalar loop, with the dot product in double.
      require_matrix(y.shape(), "output");
      const size_t rows = y.rows(), cols = y.cols();
      for (size_t r = 0; r < rows; ++r) {
        const float* yr = y.data() + r * cols;
        const float* g = dy.data() + r * cols;
        double dot = 0.0;
        for (size_t c = 0; c < cols; ++c) dot += static_cast<double>(g[c]) * yr[c];
        float* d = dx + r * cols;
        for (size_t c = 0; c < cols; ++c) d[c] = yr[c] * (g[c] - static_cast<float>(dot));
      }
      return;
    }
  }
}

}  // namespace simdnn
