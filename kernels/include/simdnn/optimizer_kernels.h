// The per-parameter update passes of the optimizers: one SIMD pass over a parameter tensor.
// Every fast kernel has a *_ref twin with the same signature.
#pragma once

#include <cstddef>

namespace simdnn {

// One Adam / AdamW step over n parameters. The caller hoists everything that depends only on
// the step count t out of the loop:
//   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g
//   w -= lr * (m * inv_bias1) / (sqrt(v * inv_bias2) + eps)      (eps outside the sqrt: Keras)
//   with inv_bias1 = 1/(1-beta1^t), inv_bias2 = 1/(1-beta2^t).
// Decoupled weight decay (AdamW) is applied first: w *= (1 - lr * weight_decay).
struct AdamStepParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-7f;
  float weight_decay = 0.0f;
  float inv_bias1 = 1.0f;
  float inv_bias2 = 1.0f;
};
void adam_step(size_t n, float* w, const float* g, float* m, float* v, const AdamStepParams& p);
void adam_step_ref(size_t n, float* w, const float* g, float* m, float* v,
                   const AdamStepParams& p);

// SGD with momentum, Keras form: velocity = momentum*velocity - lr*g; w += velocity.
// With momentum == 0 this is plain SGD (velocity is still written).
void sgd_momentum_step(size_t n, float* w, const float* g, float* velocity, float lr,
                       float momentum);
void sgd_momentum_step_ref(size_t n, float* w, const float* g, float* velocity, float lr,
                           float momentum);

}  // namespace simdnn
