// ReLU, sigmoid and tanh, forward and backward: Highway kernels with runtime dispatch, and the
// scalar references they are tested against.
//
// NaN policy: every forward propagates NaN. This needs care on x86, where the NaN produced by
// arithmetic (0/0, inf-inf) is the "default NaN" 0xFFC00000 with its sign bit set, so
// ZeroIfNegative (a sign-bit test) would turn it into 0; and hn::Exp(NaN) is 0 in Highway 1.0.3.
// On EMU128 and SCALAR, NaN must also never *reach* hn::Exp/Expm1/Tanh: they convert x/ln2 to
// int32 with ConvertTo, which there is a C++ float->int cast, undefined behaviour for NaN
// (clang's UBSan reports it). See WithoutNaNForEmulatedConvert. Infinite and huge arguments
// are fine: ConvertTo saturates them explicitly there, and Exp/Tanh return their limits.
// Backward kernels take the forward output y, and a NaN y gives whatever the formula gives
// (ReLU: 0, because NaN > 0 is false; sigmoid/tanh: NaN).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "activation_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "elementwise_loops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdnn {
namespace HWY_NAMESPACE {

// The argument for hn::Exp/Expm1/Tanh: v with its NaN lanes (mask `nan`) zeroed on EMU128 and
// SCALAR, whose ConvertTo is a C++ cast (UB for NaN); v itself on the SIMD targets, where
// ConvertTo is a conversion instruction with a defined result for NaN (x86 cvttps2dq, NEON/SVE
// fcvtzs, RVV vfcvt, WASM trunc_sat). The callers replace the NaN lanes of the result either
// way. Not done unconditionally: the one extra op per vector cost 7-10% of sigmoid and tanh
// throughput on AVX3 (bench_kernels).
template <class V, class M>
HWY_INLINE V WithoutNaNForEmulatedConvert(V v, M nan) {
#if HWY_TARGET == HWY_EMU128 || HWY_TARGET == HWY_SCALAR
  return hn::IfThenZeroElse(nan, v);
#else
  (void)nan;
  return v;
#endif
}

void ReluForward(size_t n, const float* x, float* y) {
  // A compare (not ZeroIfNegative, not Max): NaN < 0 is false, so NaN of either sign survives,
  // and the result is the same on every target (x86 max is operand-order dependent for NaN).
  MapUnary(n, x, y, [](auto d, auto v) HWY_ATTR {
    return hn::IfThenZeroElse(hn::Lt(v, hn::Zero(d)), v);
  });
}

void ReluBackward(size_t n, const float* y, const float* dy, float* dx) {
  MapBinary(n, y, dy, dx, [](auto d, auto vy, auto vdy) HWY_ATTR {
    return hn::IfThenElseZero(hn::Gt(vy, hn::Zero(d)), vdy);
  });
}

void SigmoidForward(size_t n, const float* x, float* y) {
  // e = exp(-|x|) lies in [0, 1], so it never overflows; then sigmoid(|x|) = 1/(1+e) and
  // sigmoid(-|x|) = e/(1+e) keeps full relative accuracy for very negative x (the naive
  // 1/(1+exp(-x)) relies on exp(+large) = inf). exp(NaN) = 0 in Highway, and NaN must not reach
  // Exp on the emulated targets (top of the file), hence the NaN mask and the final select.
  MapUnary(n, x, y, [](auto d, auto v) HWY_ATTR {
    const auto one = hn::Set(d, 1.0f);
    const auto nan = hn::IsNaN(v);
    const auto e = hn::Exp(d, WithoutNaNForEmulatedConvert(hn::Neg(hn::Abs(v)), nan));
    const auto r = hn::Div(one, hn::Add(one, e));
    const auto s = hn::IfThenElse(hn::Lt(v, hn::Zero(d)), hn::Mul(e, r), r);
    return hn::IfThenElse(nan, v, s);
  });
}

void SigmoidBackward(size_t n, const float* y, const float* dy, float* dx) {
  MapBinary(n, y, dy, dx, [](auto d, auto vy, auto vdy) HWY_ATTR {
    return hn::Mul(vdy, hn::Mul(vy, hn::Sub(hn::Set(d, 1.0f), vy)));
  });
}

void TanhForward(size_t n, const float* x, float* y) {
  // hn::Tanh (Highway 1.0.3, documented max error 4 ULP) is built on Expm1: it would return a
  // number for NaN input, and NaN must not reach it on the emulated targets (top of the file).
  MapUnary(n, x, y, [](auto d, auto v) HWY_ATTR {
    const auto nan = hn::IsNaN(v);
    return hn::IfThenElse(nan, v, hn::Tanh(d, WithoutNaNForEmulatedConvert(v, nan)));
  });
}

void TanhBackward(size_t n, const float* y, const float* dy, float* dx) {
  // (1-y)(1+y) rather than 1-y*y: 1-y is exact for y in [0.5, 1], so there is no cancellation
  // where tanh saturates; written identically in the reference, so both round the same way.
  MapBinary(n, y, dy, dx, [](auto d, auto vy, auto vdy) HWY_ATTR {
    const auto one = hn::Set(d, 1.0f);
    return hn::Mul(vdy, hn::Mul(hn::Sub(one, vy), hn::Add(one, vy)));
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cmath>

#include "simdnn/activation_kernels.h"

namespace simdnn {

HWY_EXPORT(ReluForward);
HWY_EXPORT(ReluBackward);
HWY_EXPORT(SigmoidForward);
HWY_EXPORT(SigmoidBackward);
HWY_EXPORT(TanhForward);
HWY_EXPORT(TanhBackward);

void relu_forward(size_t n, const float* x, float* y) {
  HWY_DYNAMIC_DISPATCH(ReluForward)(n, x, y);
}
void relu_backward(size_t n, const float* y, const float* dy, float* dx) {
  HWY_DYNAMIC_DISPATCH(ReluBackward)(n, y, dy, dx);
}
void sigmoid_forward(size_t n, const float* x, float* y) {
  HWY_DYNAMIC_DISPATCH(SigmoidForward)(n, x, y);
}
void sigmoid_backward(size_t n, const float* y, const float* dy, float* dx) {
  HWY_DYNAMIC_DISPATCH(SigmoidBackward)(n, y, dy, dx);
}
void tanh_forward(size_t n, const float* x, float* y) {
  HWY_DYNAMIC_DISPATCH(TanhForward)(n, x, y);
}
void tanh_backward(size_t n, const float* y, const float* dy, float* dx) {
  HWY_DYNAMIC_DISPATCH(TanhBackward)(n, y, dy, dx);
}

// References: plain loops; transcendental forwards in double, rounded once to float.

void relu_forward_ref(size_t n, const float* x, float* y) {
  for (size_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}
void relu_backward_ref(size_t n, const float* y, const float* dy, float* dx) {
  for (size_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void sigmoid_forward_ref(size_t n, const float* x, float* y) {
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i];
    // Same split as the fast path: never exp of a large positive number. NaN falls through
    // to the second branch and stays NaN.
    const double s = v >= 0.0 ? 1.0 / (1.0 + std::exp(-v)) : std::exp(v) / (1.0 + std::exp(v));
    y[i] = static_cast<float>(s);
  }
}
void sigmoid_backward_ref(size_t n, const float* y, const float* dy, float* dx) {
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * (y[i] * (1.0f - y[i]));
}

void tanh_forward_ref(size_t n, const float* x, float* y) {
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(std::tanh(static_cast<double>(x[i])));
}
void tanh_backward_ref(size_t n, const float* y, const float* dy, float* dx) {
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * ((1.0f - y[i]) * (1.0f + y[i]));
}

}  // namespace simdnn
#endif  // HWY_ONCE
