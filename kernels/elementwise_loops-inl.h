// Per-target loop skeletons shared by the elementwise kernels (activation, vector, optimizer).
// Include after hwy/foreach_target.h; compiled once per Highway target.
//
// Every loop runs whole vectors first and then the ragged tail with the *same* functor, so a
// tail element sees exactly the same per-lane operations (and the same exp approximation) as
// the body. The tail is one masked vector where masked loads and stores cannot fault
// (!HWY_MEM_OPS_MIGHT_FAULT: AVX3 here; the masked-off lanes are neither read nor written and
// the functor sees zeros there), otherwise CappedTag<float, 1> one lane at a time. Short arrays
// (a row of 10 logits) are all tail, which is why the masked form matters. No access past n,
// any alignment, and in-place use (out == in) is safe: each element is loaded before stored.

// Toggle guard: re-included once per target.
#if defined(SIMDNN_KERNELS_ELEMENTWISE_LOOPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SIMDNN_KERNELS_ELEMENTWISE_LOOPS_INL_H_
#undef SIMDNN_KERNELS_ELEMENTWISE_LOOPS_INL_H_
#else
#define SIMDNN_KERNELS_ELEMENTWISE_LOOPS_INL_H_
#endif

#include <cstddef>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace simdnn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// out[i] = f(d, in[i]) for i in [0, n). f is a generic lambda (put HWY_ATTR on it).
template <class F>
HWY_INLINE void MapUnary(size_t n, const float* in, float* out, const F& f) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f(d, hn::LoadU(d, in + i)), d, out + i);
#if !HWY_MEM_OPS_MIGHT_FAULT
  if (i < n) {
    const auto mask = hn::FirstN(d, n - i);
    hn::BlendedStore(f(d, hn::MaskedLoad(mask, d, in + i)), mask, d, out + i);
  }
#else
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) hn::StoreU(f(d1, hn::LoadU(d1, in + i)), d1, out + i);
#endif
}

// out[i] = f(d, a[i], b[i]) for i in [0, n).
template <class F>
HWY_INLINE void MapBinary(size_t n, const float* a, const float* b, float* out, const F& f) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(f(d, hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, out + i);
  }
#if !HWY_MEM_OPS_MIGHT_FAULT
  if (i < n) {
    const auto mask = hn::FirstN(d, n - i);
    hn::BlendedStore(f(d, hn::MaskedLoad(mask, d, a + i), hn::MaskedLoad(mask, d, b + i)), mask,
                     d, out + i);
  }
#else
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) hn::StoreU(f(d1, hn::LoadU(d1, a + i), hn::LoadU(d1, b + i)), d1, out + i);
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#endif  // SIMDNN_KERNELS_ELEMENTWISE_LOOPS_INL_H_ toggle
