// Adam/AdamW and SGD-momentum update passes: Highway kernels with runtime dispatch, and their
// scalar references.
//
// The fast kernels evaluate the reference's expression with the same operation order, using
// IEEE Sqrt and Div (not the approximate reciprocal square root), and MulAdd for the moment
// updates. MulAdd is explicit on purpose: g++ contracts a*b + c into an FMA on the AVX2/AVX3
// targets anyway (-ffp-contract=fast is its C++ default, and Highway's Mul/Add are plain vector
// operators in GCC's intrinsics), so writing it makes the rounding a property of the target
// (one rounding with FMA, two without) rather than of the optimizer. The difference from the
// reference is one rounding of a product per moment update; see tests/test_optimizer_kernels.cc.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "optimizer_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "simdnn/optimizer_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace simdnn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One Adam step on lanes of d at index i; decay is the AdamW factor (1 - lr*wd), applied only
// when apply_decay (so wd = 0 performs no multiply at all, exactly like the reference).
template <class D>
HWY_INLINE void AdamLanes(D d, size_t i, float* w, const float* g, float* m, float* v,
                          const AdamStepParams& p, float decay, bool apply_decay) {
  const auto vg = hn::LoadU(d, g + i);
  const auto vm = hn::MulAdd(hn::Set(d, p.beta1), hn::LoadU(d, m + i),
                             hn::Mul(hn::Set(d, 1.0f - p.beta1), vg));
  const auto vv = hn::MulAdd(hn::Set(d, p.beta2), hn::LoadU(d, v + i),
                             hn::Mul(hn::Set(d, 1.0f - p.beta2), hn::Mul(vg, vg)));
  auto vw = hn::LoadU(d, w + i);
  if (apply_decay) vw = hn::Mul(vw, hn::Set(d, decay));
  const auto m_hat = hn::Mul(vm, hn::Set(d, p.inv_bias1));
  const auto denom = hn::Add(hn::Sqrt(hn::Mul(vv, hn::Set(d, p.inv_bias2))), hn::Set(d, p.eps));
  vw = hn::Sub(vw, hn::Div(hn::Mul(hn::Set(d, p.lr), m_hat), denom));
  hn::StoreU(vm, d, m + i);
  hn::StoreU(vv, d, v + i);
  hn::StoreU(vw, d, w + i);
}

void AdamStep(size_t n, float* w, const float* g, float* m, float* v, const AdamStepParams& p) {
  const float decay = 1.0f - p.lr * p.weight_decay;
  const bool apply_decay = p.weight_decay != 0.0f;
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) AdamLanes(d, i, w, g, m, v, p, decay, apply_decay);
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) AdamLanes(d1, i, w, g, m, v, p, decay, apply_decay);
}

template <class D>
HWY_INLINE void SgdMomentumLanes(D d, size_t i, float* w, const float* g, float* velocity,
                                 float lr, float momentum) {
  // momentum*velocity - lr*g, the second product fused.
  const auto vel = hn::NegMulAdd(hn::Set(d, lr), hn::LoadU(d, g + i),
                                 hn::Mul(hn::Set(d, momentum), hn::LoadU(d, velocity + i)));
  hn::StoreU(vel, d, velocity + i);
  hn::StoreU(hn::Add(hn::LoadU(d, w + i), vel), d, w + i);
}

void SgdMomentumStep(size_t n, float* w, const float* g, float* velocity, float lr,
                     float momentum) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) SgdMomentumLanes(d, i, w, g, velocity, lr, momentum);
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) SgdMomentumLanes(d1, i, w, g, velocity, lr, momentum);
}

}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cmath>

namespace simdnn {

HWY_EXPORT(AdamStep);
HWY_EXPORT(SgdMomentumStep);

void adam_step(size_t n, float* w, const float* g, float* m, float* v, const AdamStepParams& p) {
  HWY_DYNAMIC_DISPATCH(AdamStep)(n, w, g, m, v, p);
}

void sgd_momentum_step(size_t n, float* w, const float* g, float* velocity, float lr,
                       float momentum) {
  HWY_DYNAMIC_DISPATCH(SgdMomentumStep)(n, w, g, velocity, lr, momentum);
}

void adam_step_ref(size_t n, float* w, const float* g, float* m, float* v,
                   const AdamStepParams& p) {
  const float decay = 1.0f - p.lr * p.weight_decay;
  for (size_t i = 0; i < n; ++i) {
    m[i] = p.beta1 * m[i] + (1.0f - p.beta1) * g[i];
    v[i] = p.beta2 * v[i] + (1.0f - p.beta2) * (g[i] * g[i]);
    if (p.weight_decay != 0.0f) w[i] *= decay;
    const float m_hat = m[i] * p.inv_bias1;
    const float denom = std::sqrt(v[i] * p.inv_bias2) + p.eps;
    w[i] -= (p.lr * m_hat) / denom;
  }
}

void sgd_momentum_step_ref(size_t n, float* w, const float* g, float* velocity, float lr,
                           float momentum) {
  for (size_t i = 0; i < n; ++i) {
    velocity[i] = momentum * velocity[i] - lr * g[i];
    w[i] += velocity[i];
  }
}

}  // namespace simdnn
#endif  // HWY_ONCE
