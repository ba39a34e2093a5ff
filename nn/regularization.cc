#include "simdnn/regularization.h"

#include <stdexcept>
#include <string>

namespace simdnn {

void dropout_mask(float rate, Rng& rng, size_t count, Tensor& mask) {
  if (!(rate >= 0.0f && rate < 1.0f)) {
    throw std::invalid_argument("dropout: the rate must be in [0, 1), got " +
                                std::to_string(rate));
  }
  mask.resize(Shape{count});
  const float keep = 1.0f / (1.0f - rate);
  for (size_t i = 0; i < count; ++i) mask[i] = rng.uniform_float() < rate ? 0.0f : keep;
}

void dropout_forward(const Tensor& x, const Tensor& mask, Tensor& y) {
  if (mask.size() != x.size()) {
    throw std::invalid_argument("dropout: mask of " + std::to_string(mask.size()) +
                                " values for x " + x.shape().to_string());
  }
  y.resize(x.shape());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * mask[i];
}

void dropout_backward(const Tensor& mask, const Tensor& dy, float* dx, float beta) {
  if (beta == 0.0f) {
    for (size_t i = 0; i < dy.size(); ++i) dx[i] = dy[i] * mask[i];
  } else {
    for (size_t i = 0; i < dy.size(); ++i) dx[i] += dy[i] * mask[i];
  }
}

double l2_penalty(std::span<Parameter* const> kernels, float lambda, bool add_gradient) {
  if (!(lambda >= 0.0f)) {
    throw std::invalid_argument("l2: lambda must be >= 0, got " + std::to_string(lambda));
  }
  double sum = 0.0;
  for (Parameter* p : kernels) {
    const Tensor& w = p->value;
    double s = 0.0;
    for (size_t i = 0; i < w.size(); ++i) s += static_cast<double>(w[i]) * w[i];
    sum += s;
    if (add_gradient && p->trainable && lambda > 0.0f) {
      p->gradient();  // zero-fills the gradient when no backward reached it
      Tensor& g = p->grad;
      const float two_lambda = 2.0f * lambda;
      for (size_t i = 0; i < w.size(); ++i) g[i] += two_lambda * w[i];
    }
  }
  return static_cast<double>(lambda) * sum;
}

std::vector<float> balanced_class_weights(std::span<const uint8_t> labels, size_t classes) {
  std::vector<size_t> counts(classes, 0);
  for (uint8_t l : labels) {
    if (l >= classes) {
      throw std::invalid_argument("balanced class weights: label " + std::to_string(l) +
                                  " is not below " + std::to_string(classes) + " classes");
    }
    ++counts[l];
  }
  size_t present = 0;
  for (size_t c : counts) present += c > 0;
  std::vector<float> weights(classes, 1.0f);
  for (size_t c = 0; c < classes; ++c) {
    if (counts[c] > 0) {
      weights[c] = static_cast<float>(static_cast<double>(labels.size()) /
                                      (static_cast<double>(present) * counts[c]));
    }
  }
  return weights;
}

}  // namespace simdnn
