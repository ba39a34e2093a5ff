// Elementwise activation kernels, forward and backward, on contiguous float32 arrays.
// Each fast kernel has a *_ref twin with the same signature: the plain scalar reference.
// In-place use (y == x, dx == dy) is allowed.
#pragma once

#include <cstddef>

namespace simdnn {

// y = max(x, 0). NaN propagates (NaN in, NaN out) on every SIMD target.
void relu_forward(size_t n, const float* x, float* y);
void relu_forward_ref(size_t n, const float* x, float* y);
// dx = dy where y > 0, else 0 (derivative at 0 is 0). `y` is the forward output
// (equivalently the input: y > 0 exactly where x > 0).
void relu_backward(size_t n, const float* y, const float* dy, float* dx);
void relu_backward_ref(size_t n, const float* y, const float* dy, float* dx);

// y = 1 / (1 + exp(-x)); backward: dx = dy * y * (1 - y), from the forward output y.
void sigmoid_forward(size_t n, const float* x, float* y);
void sigmoid_forward_ref(size_t n, const float* x, float* y);
void sigmoid_backward(size_t n, const float* y, const float* dy, float* dx);
void sigmoid_backward_ref(size_t n, const float* y, const float* dy, float* dx);

// y = tanh(x); backward: dx = dy * (1 - y^2), from the forward output y.
void tanh_forward(size_t n, const float* x, float* y);
void tanh_forward_ref(size_t n, const float* x, float* y);
void tanh_backward(size_t n, const float* y, const float* dy, float* dx);
void tanh_backward_ref(size_t n, const float* y, const float* dy, float* dx);

}  // namespace simdnn
