// Regularisation for training (Keras' Dropout layer, kernel_regularizer=l2 and fit's
// class_weight): dropout's forward and backward side by side, the L2 penalty with its gradient,
// and balanced class weights. The tape records dropout (Tape::dropout) and the weighted loss
// (Tape::softmax_cross_entropy with weights); train_step adds the L2 penalty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "simdnn/parameter.h"
#include "simdnn/random.h"
#include "simdnn/tensor.h"

namespace simdnn {

// Inverted dropout's mask for `count` values: each is 0 with probability `rate`, else
// 1 / (1 - rate), so the expected output equals the input and inference needs no scaling.
// Draws one uniform per value from rng (deterministic for a seed). mask is resized to
// [count]. Throws std::invalid_argument unless 0 <= rate < 1.
void dropout_mask(float rate, Rng& rng, size_t count, Tensor& mask);
// Forward: y = x * mask (elementwise; y resized to x's shape).
void dropout_forward(const Tensor& x, const Tensor& mask, Tensor& y);
// Backward: dx = dy * mask, written (beta 0) or added (beta 1) into dx.
void dropout_backward(const Tensor& mask, const Tensor& dy, float* dx, float beta);

// The L2 kernel penalty lambda * sum(w^2) over `kernels` (the Dense weights; biases are not
// regularised, as in Keras' kernel_regularizer). With add_gradient, adds 2 * lambda * w to
// each trainable kernel's gradient (a parameter no backward reached gets just that).
double l2_penalty(std::span<Parameter* const> kernels, float lambda, bool add_gradient);

// sklearn's / Keras' "balanced" weights: n / (k * count_c) for each of the k classes present
// in `labels`; a class absent from them gets 1 (no sample uses it). One weight per class in
// [0, classes).
std::vector<float> balanced_class_weights(std::span<const uint8_t> labels, size_t classes);

}  // namespace simdnn
