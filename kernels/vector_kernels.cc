// Bias add, column sum, axpy, scale, u8->float conversion and the finiteness check: Highway
// kernels with runtime dispatch, and their scalar references.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "vector_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "elementwise_loops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdnn {
namespace HWY_NAMESPACE {

void AddBiasRows(size_t rows, size_t cols, const float* bias, float* y, size_t ldy) {
  for (size_t r = 0; r < rows; ++r) {
    float* row = y + r * ldy;
    MapBinary(cols, row, bias, row,
              [](auto /*d*/, auto vy, auto vb) HWY_ATTR { return hn::Add(vy, vb); });
  }
}

// Sums rows [0, rows) of the column strip starting at x + c, kStrip vectors wide, into out + c.
// Accumulators stay in registers down the whole strip (vertical adds only, no horizontal
// reduction), and each column is summed row 0, 1, 2, ... exactly like the reference, so the
// result is bit-identical to it on every target.
template <size_t kStrip, class D>
HWY_INLINE void ColumnSumStrip(D d, size_t rows, const float* x, size_t ldx, float* out,
                               bool accumulate) {
  const size_t N = hn::Lanes(d);
  hn::Vec<D> acc[kStrip];
  for (size_t k = 0; k < kStrip; ++k) {
    acc[k] = accumulate ? hn::LoadU(d, out + k * N) : hn::Zero(d);
  }
  for (size_t r = 0; r < rows; ++r) {
    const float* row = x + r * ldx;
    for (size_t k = 0; k < kStrip; ++k) acc[k] = hn::Add(acc[k], hn::LoadU(d, row + k * N));
  }
  for (size_t k = 0; k < kStrip; ++k) hn::StoreU(acc[k], d, out + k * N);
}

void ColumnSum(size_t rows, size_t cols, const float* x, size_t ldx, float* out,
               bool accumulate) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t c = 0;
  // Eight vectors per strip: enough independent add chains to cover the add latency, and a
  // 128-float row (the MLP's hidden layer) is one AVX-512 strip, so x streams through memory
  // sequentially instead of being walked twice with a stride (64 MiB: 9.7 -> 19.6 GB/s).
  for (; c + 8 * N <= cols; c += 8 * N) ColumnSumStrip<8>(d, rows, x + c, ldx, out + c, accumulate);
  for (; c + 4 * N <= cols; c += 4 * N) ColumnSumStrip<4>(d, rows, x + c, ldx, out + c, accumulate);
  for (; c + N <= cols; c += N) ColumnSumStrip<1>(d, rows, x + c, ldx, out + c, accumulate);
  const hn::CappedTag<float, 1> d1;
  for (; c < cols; ++c) ColumnSumStrip<1>(d1, rows, x + c, ldx, out + c, accumulate);
}

void Axpy(size_t n, float alpha, const float* x, float* y) {
  MapBinary(n, x, y, y, [alpha](auto d, auto vx, auto vy) HWY_ATTR {
    return hn::MulAdd(hn::Set(d, alpha), vx, vy);
  });
}

void Scale(size_t n, float alpha, float* x) {
  MapUnary(n, x, x, [alpha](auto d, auto v) HWY_ATTR { return hn::Mul(v, hn::Set(d, alpha)); });
}

void ConvertU8ToFloat(size_t n, const uint8_t* src, float scale, float* dst) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  // u8 -> i32 (zero-extending) -> f32, both exact; then one rounding in the Mul, as in the ref.
  const auto convert = [scale](auto d, const uint8_t* p) HWY_ATTR {
    const hn::Rebind<int32_t, decltype(d)> di32;
    const hn::Rebind<uint8_t, decltype(d)> du8;
    const auto wide = hn::PromoteTo(di32, hn::LoadU(du8, p));
    return hn::Mul(hn::ConvertTo(d, wide), hn::Set(d, scale));
  };
  for (; i + N <= n; i += N) hn::StoreU(convert(df, src + i), df, dst + i);
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) hn::StoreU(convert(d1, src + i), d1, dst + i);
}

bool AllFinite(size_t n, const float* x) {
  // v - v is +0 for finite v and NaN for NaN or +-inf, so a NaN in a sum of such differences
  // flags a non-finite element with one add per vector and no mask juggling. Two chains for
  // throughput; checked every block so a bad early element ends a long scan early.
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  constexpr size_t kBlock = 4096;
  size_t i = 0;
  while (i + 2 * N <= n) {
    auto acc0 = hn::Zero(d);
    auto acc1 = hn::Zero(d);
    const size_t block_end = (n - i > kBlock) ? i + kBlock : n;
    for (; i + 2 * N <= block_end; i += 2 * N) {
      const auto v0 = hn::LoadU(d, x + i);
      const auto v1 = hn::LoadU(d, x + i + N);
      acc0 = hn::Add(acc0, hn::Sub(v0, v0));
      acc1 = hn::Add(acc1, hn::Sub(v1, v1));
    }
    if (!hn::AllTrue(d, hn::Eq(hn::Add(acc0, acc1), hn::Zero(d)))) return false;
  }
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) {
    if (!hn::AllTrue(d1, hn::IsFinite(hn::LoadU(d1, x + i)))) return false;
  }
  return true;
}

}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cmath>

#include "simdnn/vector_kernels.h"

namespace simdnn {

HWY_EXPORT(AddBiasRows);
HWY_EXPORT(ColumnSum);
HWY_EXPORT(Axpy);
HWY_EXPORT(Scale);
HWY_EXPORT(ConvertU8ToFloat);
HWY_EXPORT(AllFinite);

void add_bias_rows(size_t rows, size_t cols, const float* bias, float* y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(AddBiasRows)(rows, cols, bias, y, ldy);
}
void column_sum(size_t rows, size_t cols, const float* x, size_t ldx, float* out,
                bool accumulate) {
  HWY_DYNAMIC_DISPATCH(ColumnSum)(rows, cols, x, ldx, out, accumulate);
}
void axpy(size_t n, float alpha, const float* x, float* y) {
  HWY_DYNAMIC_DISPATCH(Axpy)(n, alpha, x, y);
}
void scale(size_t n, float alpha, float* x) { HWY_DYNAMIC_DISPATCH(Scale)(n, alpha, x); }
void convert_u8_to_float(size_t n, const uint8_t* src, float scale, float* dst) {
  HWY_DYNAMIC_DISPATCH(ConvertU8ToFloat)(n, src, scale, dst);
}
bool all_finite(size_t n, const float* x) { return HWY_DYNAMIC_DISPATCH(AllFinite)(n, x); }

void add_bias_rows_ref(size_t rows, size_t cols, const float* bias, float* y, size_t ldy) {
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) y[r * ldy + c] += bias[c];
  }
}

void column_sum_ref(size_t rows, size_t cols, const float* x, size_t ldx, float* out,
                    bool accumulate) {
  for (size_t c = 0; c < cols; ++c) {
    float sum = accumulate ? out[c] : 0.0f;
    for (size_t r = 0; r < rows; ++r) sum += x[r * ldx + c];
    out[c] = sum;
  }
}

void axpy_ref(size_t n, float alpha, const float* x, float* y) {
  for (size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void scale_ref(size_t n, float alpha, float* x) {
  for (size_t i = 0; i < n; ++i) x[i] *= alpha;
}

void convert_u8_to_float_ref(size_t n, const uint8_t* src, float scale, float* dst) {
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) * scale;
}

bool all_finite_ref(size_t n, const float* x) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return false;
  }
  return true;
}

}  // namespace simdnn
#endif  // HWY_ONCE
