// Row softmax, log-softmax and the fused softmax cross-entropy: Highway kernels with runtime
// dispatch, and their references (computed in double).
//
// Each row takes three passes (XNNPACK's rmax -> addstore-exp-minus-max -> scale). A row of up
// to a few thousand floats stays in L1 between passes, so main memory sees one read of x and
// one write of y, the same traffic as a copy.
//
// Special rows, decided from the first pass and handled identically by fast and reference code:
//   - NaN anywhere, or a +inf entry (+inf - +inf has no value) -> the whole output row is NaN.
//     This must be explicit: hn::Exp(NaN) is 0 in Highway 1.0.3, so the NaN would silently
//     become a probability of 0.
//   - every entry -inf (max = -inf, so x - max would be NaN) -> treated as "all logits equal":
//     uniform 1/cols, log-softmax -log(cols), cross-entropy log(cols).
//   - -inf entries in an otherwise finite row are ordinary: exp(-inf - max) = 0.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "softmax_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "elementwise_loops-inl.h"

// Shared by every target's copy of this file, so defined once.
#ifndef SIMDNN_KERNELS_SOFTMAX_ROW_KIND_
#define SIMDNN_KERNELS_SOFTMAX_ROW_KIND_
#include <cmath>
#include <cstdint>
#include <limits>

namespace simdnn::softmax_detail {

enum class RowKind { kFinite, kInvalid, kAllNegInf };

// Classifies a row from its maximum and whether it held a NaN.
inline RowKind ClassifyRow(float row_max, bool has_nan) {
  if (has_nan || row_max == std::numeric_limits<float>::infinity()) return RowKind::kInvalid;
  if (row_max == -std::numeric_limits<float>::infinity()) return RowKind::kAllNegInf;
  return RowKind::kFinite;
}

inline void FillRow(size_t cols, float value, float* y) {
  for (size_t c = 0; c < cols; ++c) y[c] = value;
}

}  // namespace simdnn::softmax_detail
#endif  // SIMDNN_KERNELS_SOFTMAX_ROW_KIND_

HWY_BEFORE_NAMESPACE();
namespace simdnn {
namespace HWY_NAMESPACE {

using softmax_detail::ClassifyRow;
using softmax_detail::FillRow;
using softmax_detail::RowKind;

// Horizontal maximum of the row-max accumulator: -inf when every lane is -inf.
//
// Workaround for Highway 1.0.3's EMU128 target: its MaxOfLanes folds the lanes starting from
// hwy::LowestValue<float>() = -FLT_MAX instead of -inf, so a vector of -inf reduces to -FLT_MAX.
// An all -inf row then looked finite (max -FLT_MAX): every exp(-inf - max) was 0, the sum 0, and
// softmax 0 * (1 / 0) = NaN, log-softmax and the cross-entropy NaN too (-inf - log(0)). Upstream
// google/highway#2434, fixed by PR #2446 (EMU128 ReduceMin/ReduceMax start from +-inf). EMU128
// is the fallback target of clang builds and of gcc >= 12.3; gcc < 12.3 gets
// HWY_BROKEN_EMU128 and SCALAR instead (whose MaxOfLanes is the identity), which is why gcc
// 12.2 builds never showed it. The other targets reduce with Max shuffles, which keep -inf.
template <class D, class V>
HWY_INLINE float RowMaxOfLanes(D d, V v) {
#if HWY_TARGET == HWY_EMU128
  float m = -std::numeric_limits<float>::infinity();
  // The accumulators never hold NaN (Max keeps the non-NaN operand), so a plain max is exact.
  for (size_t i = 0; i < hn::Lanes(d); ++i) m = HWY_MAX(m, hn::ExtractLane(v, i));
  return m;
#else
  return hn::GetLane(hn::MaxOfLanes(d, v));
#endif
}

// Pass 1: row maximum, and whether any entry is NaN (tracked separately because x86 Max
// returns one fixed operand when the other is NaN, so a NaN does not stick in the maximum).
// Four accumulators hide the Max latency on in-cache rows.
HWY_INLINE RowKind ScanRow(size_t cols, const float* HWY_RESTRICT x, float* row_max) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  const auto neg_inf = hn::Set(d, -std::numeric_limits<float>::infinity());
  auto max0 = neg_inf, max1 = neg_inf, max2 = neg_inf, max3 = neg_inf;
  auto nan = hn::IsNaN(hn::Zero(d));  // all false
  size_t i = 0;
  for (; i + 4 * N <= cols; i += 4 * N) {
    const auto v0 = hn::LoadU(d, x + i);
    const auto v1 = hn::LoadU(d, x + i + N);
    const auto v2 = hn::LoadU(d, x + i + 2 * N);
    const auto v3 = hn::LoadU(d, x + i + 3 * N);
    max0 = hn::Max(max0, v0);
    max1 = hn::Max(max1, v1);
    max2 = hn::Max(max2, v2);
    max3 = hn::Max(max3, v3);
    nan = hn::Or(nan, hn::Or(hn::Or(hn::IsNaN(v0), hn::IsNaN(v1)),
                             hn::Or(hn::IsNaN(v2), hn::IsNaN(v3))));
  }
  for (; i + N <= cols; i += N) {
    const auto v = hn::LoadU(d, x + i);
    max0 = hn::Max(max0, v);
    nan = hn::Or(nan, hn::IsNaN(v));
  }
#if !HWY_MEM_OPS_MIGHT_FAULT
  if (i < cols) {  // masked tail (see elementwise_loops-inl.h); inactive lanes load as 0
    const auto mask = hn::FirstN(d, cols - i);
    const auto v = hn::MaskedLoad(mask, d, x + i);
    max1 = hn::Max(max1, hn::IfThenElse(mask, v, neg_inf));
    nan = hn::Or(nan, hn::IsNaN(v));
    i = cols;
  }
#endif
  max0 = hn::Max(hn::Max(max0, max1), hn::Max(max2, max3));
  float m = RowMaxOfLanes(d, max0);
  bool has_nan = !hn::AllFalse(d, nan);
  const hn::CappedTag<float, 1> d1;
  for (; i < cols; ++i) {
    const auto v = hn::LoadU(d1, x + i);
    has_nan |= !hn::AllFalse(d1, hn::IsNaN(v));
    m = hn::GetLane(hn::Max(hn::Set(d1, m), v));
  }
  *row_max = m;
  return ClassifyRow(m, has_nan);
}

// exp(x) for the softmax arguments x = logit - row_max <= 0: the one exp approximation used
// for every element of every kernel here (full vectors, masked tails, one-lane tails, and the
// multi-row blocks), so all elements share it.
//
// About 17 vector ops instead of ~30 for hn::Exp (the kernels are bound by this exp):
//   - n = round(x / ln2) by the magic-number trick: x * log2(e) + 1.5 * 2^23 leaves n in the
//     low mantissa bits (plus the exponent bias 127 folded into the constant), so 2^n is that
//     integer shifted into the exponent field; no float <-> int conversions;
//   - r = x - n ln2 with ln2 in two parts (Cody-Waite, hn::Exp's constants), |r| <= ln2 / 2;
//   - expm1(r) by hn::Exp's degree-7 polynomial r + r^2 P(r) (Estrin), then 2^n + 2^n expm1(r)
//     in one MulAdd.
// Error (exhaustive over all 1.12e9 floats in [-87.3365, 0] against double std::exp): at most
// 1.03 ULP, mean 0.06 ULP; hn::Exp is <= 1 ULP there. Below -87.3365 the result is subnormal,
// which 2^n cannot express: those lanes (rare; never in rows with logits within 87 of the max)
// take hn::Exp, which gives the subnormals and exactly 0 below -104. -inf gives 0. Valid for
// x <= 88 (larger x overflow the magic-number shift); softmax arguments are <= 0.
template <class D, class V>
HWY_INLINE V SoftmaxExp(D d, V x) {
  const hn::RebindToSigned<D> di;
  const V magic = hn::Set(d, 0x1.8000FEp23f);  // 1.5 * 2^23 + 127
  V n = hn::MulAdd(x, hn::Set(d, 0x1.715476p+0f), magic);
  const V scale = hn::BitCast(d, hn::ShiftLeft<23>(hn::BitCast(di, n)));  // 2^n
  n = hn::Sub(n, magic);
  V r = hn::MulAdd(n, hn::Set(d, -0.693145751953125f), x);
  r = hn::MulAdd(n, hn::Set(d, -1.428606765330187045e-6f), r);
  const V r2 = hn::Mul(r, r);
  const V r4 = hn::Mul(r2, r2);
  const V p01 = hn::MulAdd(hn::Set(d, 0.166666671633720397949219f), r, hn::Set(d, 0.5f));
  const V p23 = hn::MulAdd(hn::Set(d, 0.00833336077630519866943359f), r,
                           hn::Set(d, 0.0416664853692054748535156f));
  const V p45 = hn::MulAdd(hn::Set(d, 0.000198527617612853646278381f), r,
                           hn::Set(d, 0.00139304355252534151077271f));
  const V p = hn::MulAdd(r4, p45, hn::MulAdd(r2, p23, p01));
  const V expm1 = hn::MulAdd(p, r2, r);
  const auto tiny = hn::Lt(x, hn::Set(d, -0x1.5D589Ep6f));  // exp(x) < FLT_MIN
#if HWY_NATIVE_FMA
  V result = hn::IfThenZeroElse(tiny, hn::MulAdd(expm1, scale, scale));
#else
  // Without FMA, expm1 * 2^n is a separate product that is subnormal for results near FLT_MIN
  // and flushed to 0 under FTZ (simdnn::set_num_threads enables it): round 1 + expm1 first.
  V result = hn::IfThenZeroElse(tiny, hn::Mul(hn::Add(expm1, hn::Set(d, 1.0f)), scale));
#endif
  const auto subnormal = hn::And(tiny, hn::Ge(x, hn::Set(d, -104.0f)));
  if (HWY_UNLIKELY(!hn::AllFalse(d, subnormal))) {
    result = hn::IfThenElse(subnormal, hn::Exp(d, x), result);
  }
  return result;
}

// exp(x - row_max) for a vector; the same expression for full and one-lane tags.
template <class D, class V>
HWY_INLINE V ExpMinusMax(D d, V v, float row_max) {
  return SoftmaxExp(d, hn::Sub(v, hn::Set(d, row_max)));
}

// Pass 2: sum of exp(x - row_max); stores the exponentials to y when y is non-null.
// Four independent accumulators (the dot-inl.h reasoning: the compiler will not split them).
HWY_INLINE float SumExpMinusMax(size_t cols, const float* x, float row_max, float* y) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto sum0 = hn::Zero(d), sum1 = hn::Zero(d), sum2 = hn::Zero(d), sum3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= cols; i += 4 * N) {
    const auto e0 = ExpMinusMax(d, hn::LoadU(d, x + i), row_max);
    const auto e1 = ExpMinusMax(d, hn::LoadU(d, x + i + N), row_max);
    const auto e2 = ExpMinusMax(d, hn::LoadU(d, x + i + 2 * N), row_max);
    const auto e3 = ExpMinusMax(d, hn::LoadU(d, x + i + 3 * N), row_max);
    if (y != nullptr) {
      hn::StoreU(e0, d, y + i);
      hn::StoreU(e1, d, y + i + N);
      hn::StoreU(e2, d, y + i + 2 * N);
      hn::StoreU(e3, d, y + i + 3 * N);
    }
    sum0 = hn::Add(sum0, e0);
    sum1 = hn::Add(sum1, e1);
    sum2 = hn::Add(sum2, e2);
    sum3 = hn::Add(sum3, e3);
  }
  for (; i + N <= cols; i += N) {
    const auto e = ExpMinusMax(d, hn::LoadU(d, x + i), row_max);
    if (y != nullptr) hn::StoreU(e, d, y + i);
    sum0 = hn::Add(sum0, e);
  }
#if !HWY_MEM_OPS_MIGHT_FAULT
  if (i < cols) {  // masked tail; inactive lanes are zeroed after the exp, never stored
    const auto mask = hn::FirstN(d, cols - i);
    const auto v = hn::MaskedLoad(mask, d, x + i);
    const auto e = hn::IfThenElseZero(mask, ExpMinusMax(d, v, row_max));
    if (y != nullptr) hn::BlendedStore(e, mask, d, y + i);
    sum1 = hn::Add(sum1, e);
    i = cols;
  }
#endif
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(sum0, sum1), hn::Add(sum2, sum3))));
  const hn::CappedTag<float, 1> d1;
  for (; i < cols; ++i) {
    const auto e = ExpMinusMax(d1, hn::LoadU(d1, x + i), row_max);
    if (y != nullptr) hn::StoreU(e, d1, y + i);
    sum += hn::GetLane(e);
  }
  return sum;
}

// Softmax of one row into y (y may equal x). Returns the row kind, and for a finite row the
// max and the sum of exponentials (the cross-entropy needs both).
HWY_INLINE RowKind SoftmaxRow(size_t cols, const float* x, float* y, float* row_max,
                              float* sum) {
  const RowKind kind = ScanRow(cols, x, row_max);
  if (kind == RowKind::kInvalid) {
    FillRow(cols, std::numeric_limits<float>::quiet_NaN(), y);
  } else if (kind == RowKind::kAllNegInf) {
    FillRow(cols, 1.0f / static_cast<float>(cols), y);
  } else {
    *sum = SumExpMinusMax(cols, x, *row_max, y);
    // sum >= 1 (the maximum contributes exp(0)), so the reciprocal is finite and normal.
    const float inv_sum = 1.0f / *sum;
    MapUnary(cols, y, y, [inv_sum](auto d, auto v) HWY_ATTR {
      return hn::Mul(v, hn::Set(d, inv_sum));
    });
  }
  return kind;
}

// The short-row blocks need masked loads/stores that cannot fault and whole vectors of lanes:
// the AVX-512 targets here (SCALAR also has non-faulting "masked" ops, but one lane).
#undef SIMDNN_SOFTMAX_SHORT_BLOCKS
#if !HWY_MEM_OPS_MIGHT_FAULT && HWY_TARGET != HWY_SCALAR
#define SIMDNN_SOFTMAX_SHORT_BLOCKS 1
#else
#define SIMDNN_SOFTMAX_SHORT_BLOCKS 0
#endif

#if SIMDNN_SOFTMAX_SHORT_BLOCKS
// ---- Short rows (cols <= lanes, e.g. the classifier's B x 10): blocks of kBlockRows rows ----
//
// One row per vector, loaded with a masked load (inactive lanes set to -inf, so exp gives 0
// there and they drop out of the sum). The per-row horizontal reductions, which made the
// one-row-at-a-time path a long dependent chain (~80 cycles per row), are replaced by one
// transposing reduction per block: lanes-many row vectors -> one vector whose lane r is the
// max (or sum) of row r, in log2(lanes) levels of ConcatEven/ConcatOdd + Max/Add (15 steps of
// 3 ops for 16 rows instead of 16 reductions of ~9 ops). One reciprocal serves the block. The
// rows are independent chains, so the out-of-order core overlaps them. Per element the
// operations are those of the long-row path: x - max, SoftmaxExp, sum, * (1 / sum).
constexpr size_t kBlockRows = HWY_LANES(float);

// v[0..kBlockRows) -> lane r = op over the lanes of v[r]. Destroys v.
template <class D, class V, class Op>
HWY_INLINE V TransposeReduce(D d, V* v, const Op& op) {
  for (size_t count = kBlockRows; count > 1; count /= 2) {
    for (size_t i = 0; i < count / 2; ++i) {
      // Lower half: pairs of v[2i]'s lanes combined; upper half: v[2i + 1]'s. Groups of lanes
      // belonging to one row halve in size and stay in row order.
      v[i] = op(hn::ConcatEven(d, v[2 * i + 1], v[2 * i]), hn::ConcatOdd(d, v[2 * i + 1], v[2 * i]));
    }
  }
  return v[0];
}

// Softmax of rows [0, nrows) (nrows <= kBlockRows) of a block with cols <= lanes. Writes
// nothing and returns false when some row is special (NaN, +inf, all -inf): the caller then
// takes the per-row path for the block, so those rows keep their exact semantics. Otherwise
// writes y and, when non-null, each row's max and sum of exponentials.
HWY_INLINE bool SoftmaxShortBlock(size_t nrows, size_t cols, const float* x, size_t ldx,
                                  float* y, size_t ldy, float* row_max, float* row_sum) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  using V = hn::Vec<decltype(d)>;
  static_assert(kBlockRows == hn::MaxLanes(d), "one row per lane of the reduced vector");
  const auto mask = hn::FirstN(d, cols);
  const V neg_inf = hn::Set(d, -std::numeric_limits<float>::infinity());
  V v[kBlockRows], t[kBlockRows];
  auto nan = hn::IsNaN(hn::Zero(d));  // all false
  for (size_t r = 0; r < kBlockRows; ++r) {
    if (r < nrows) {
      const V in = hn::MaskedLoad(mask, d, x + r * ldx);  // inactive lanes read nothing, 0
      nan = hn::Or(nan, hn::IsNaN(in));
      v[r] = hn::IfThenElse(mask, in, neg_inf);
    } else {
      v[r] = hn::Zero(d);  // dummy row: finite, never stored or checked
    }
    t[r] = v[r];
  }
  const V vmax = TransposeReduce(d, t, [](V a, V b) HWY_ATTR { return hn::Max(a, b); });
  // A row is special iff it holds a NaN or its max is +-inf (ClassifyRow's rule).
  const auto special = hn::And(hn::FirstN(d, nrows), hn::Not(hn::IsFinite(vmax)));
  if (HWY_UNLIKELY(!hn::AllFalse(d, nan) || !hn::AllFalse(d, special))) return false;
  for (size_t r = 0; r < kBlockRows; ++r) {
    const V m = hn::TableLookupLanes(vmax, hn::IndicesFromVec(d, hn::Set(di, static_cast<int32_t>(r))));
    v[r] = SoftmaxExp(d, hn::Sub(v[r], m));  // inactive lanes: exp(-inf) = 0
    t[r] = v[r];
  }
  const V vsum = TransposeReduce(d, t, [](V a, V b) HWY_ATTR { return hn::Add(a, b); });
  // Each sum >= 1 (the maximum contributes exp(0)), so the reciprocals are finite and normal.
  const V inv = hn::Div(hn::Set(d, 1.0f), vsum);
  for (size_t r = 0; r < nrows; ++r) {
    const V s = hn::TableLookupLanes(inv, hn::IndicesFromVec(d, hn::Set(di, static_cast<int32_t>(r))));
    hn::BlendedStore(hn::Mul(v[r], s), mask, d, y + r * ldy);
  }
  if (row_max != nullptr) {
    const auto rows_mask = hn::FirstN(d, nrows);
    hn::BlendedStore(vmax, rows_mask, d, row_max);
    hn::BlendedStore(vsum, rows_mask, d, row_sum);
  }
  return true;
}
#endif  // SIMDNN_SOFTMAX_SHORT_BLOCKS

void SoftmaxRows(size_t rows, size_t cols, const float* x, size_t ldx, float* y, size_t ldy) {
  if (cols == 0) return;
  size_t r = 0;
#if SIMDNN_SOFTMAX_SHORT_BLOCKS
  if (cols <= hn::Lanes(hn::ScalableTag<float>())) {
    for (; r < rows; r += kBlockRows) {
      const size_t n = HWY_MIN(kBlockRows, rows - r);
      if (SoftmaxShortBlock(n, cols, x + r * ldx, ldx, y + r * ldy, ldy, nullptr, nullptr)) {
        continue;
      }
      for (size_t i = r; i < r + n; ++i) {
        float row_max, sum;
        SoftmaxRow(cols, x + i * ldx, y + i * ldy, &row_max, &sum);
      }
    }
    return;
  }
#endif
  for (; r < rows; ++r) {
    float row_max, sum;
    SoftmaxRow(cols, x + r * ldx, y + r * ldy, &row_max, &sum);
  }
}

void LogSoftmaxRows(size_t rows, size_t cols, const float* x, size_t ldx, float* y,
                    size_t ldy) {
  if (cols == 0) return;
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    float row_max;
    const RowKind kind = ScanRow(cols, xr, &row_max);
    if (kind == RowKind::kInvalid) {
      FillRow(cols, std::numeric_limits<float>::quiet_NaN(), yr);
      continue;
    }
    if (kind == RowKind::kAllNegInf) {
      FillRow(cols, static_cast<float>(-std::log(static_cast<double>(cols))), yr);
      continue;
    }
    const float log_sum = static_cast<float>(
        std::log(static_cast<double>(SumExpMinusMax(cols, xr, row_max, nullptr))));
    // (x - max) - log_sum, not x - (max + log_sum): with |max| ~ 1e4 the sum max + log_sum
    // would round away most of log_sum's bits.
    MapUnary(cols, xr, yr, [row_max, log_sum](auto d, auto v) HWY_ATTR {
      return hn::Sub(hn::Sub(v, hn::Set(d, row_max)), hn::Set(d, log_sum));
    });
  }
}

// Labels were validated by the caller.
double SoftmaxCrossEntropyForward(size_t rows, size_t cols, const float* logits, size_t ld,
                                  const int32_t* labels, float* probs) {
  double total = 0.0;
  bool invalid = false;
  size_t r = 0;
#if SIMDNN_SOFTMAX_SHORT_BLOCKS
  if (cols <= hn::Lanes(hn::ScalableTag<float>())) {
    HWY_ALIGN float block_max[kBlockRows];
    HWY_ALIGN float block_sum[kBlockRows];
    // Whole blocks of finite rows; the first block holding a special row, and anything after
    // it, goes to the per-row loop below.
    for (; r < rows; r += kBlockRows) {
      const size_t n = HWY_MIN(kBlockRows, rows - r);
      if (!SoftmaxShortBlock(n, cols, logits + r * ld, ld, probs + r * cols, cols, block_max,
                             block_sum)) {
        break;
      }
      for (size_t i = 0; i < n; ++i) {
        total += std::log(static_cast<double>(block_sum[i])) +
                 static_cast<double>(block_max[i]) -
                 static_cast<double>(logits[(r + i) * ld + static_cast<size_t>(labels[r + i])]);
      }
    }
  }
#endif
  for (; r < rows; ++r) {
    const float* xr = logits + r * ld;
    float row_max, sum;
    const RowKind kind = SoftmaxRow(cols, xr, probs + r * cols, &row_max, &sum);
    if (kind == RowKind::kInvalid) {
      invalid = true;
    } else if (kind == RowKind::kAllNegInf) {
      total += std::log(static_cast<double>(cols));
    } else {
      // -log p[label] = log(sum) + max - x[label]; exact in double except for the log.
      total += std::log(static_cast<double>(sum)) + static_cast<double>(row_max) -
               static_cast<double>(xr[labels[r]]);
    }
  }
  if (invalid) return std::numeric_limits<double>::quiet_NaN();
  return rows == 0 ? 0.0 : total / static_cast<double>(rows);
}

void SoftmaxCrossEntropyBackward(size_t rows, size_t cols, const float* probs,
                                 const int32_t* labels, float scale, float* dlogits) {
  // probs and dlogits are packed (leading dimension cols), so the scaling is one flat pass over
  // rows * cols elements (full vectors even for rows of 10), then the label entries.
  MapUnary(rows * cols, probs, dlogits, [scale](auto d, auto v) HWY_ATTR {
    return hn::Mul(v, hn::Set(d, scale));
  });
  for (size_t r = 0; r < rows; ++r) {
    // Same expression as the reference, (p - 1) * scale, so the label entry matches exactly.
    const size_t i = r * cols + static_cast<size_t>(labels[r]);
    dlogits[i] = (probs[i] - 1.0f) * scale;
  }
}

// Test hook: y[i] = SoftmaxExp(x[i]), full vectors then the same tails as the kernels.
void SoftmaxExpForTest(size_t n, const float* x, float* y) {
  MapUnary(n, x, y, [](auto d, auto v) HWY_ATTR { return SoftmaxExp(d, v); });
}

}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <stdexcept>
#include <string>

#include "simdnn/softmax_kernels.h"
#include "testing/simdnn/testing/softmax_exp.h"

namespace simdnn {
namespace {

// Labels index columns; anything outside [0, cols) is a caller bug that would otherwise read or
// write out of bounds, so it is reported with the offending row before any output is written.
void check_labels(const char* who, size_t rows, size_t cols, const int32_t* labels) {
  for (size_t r = 0; r < rows; ++r) {
    if (labels[r] < 0 || static_cast<size_t>(labels[r]) >= cols) {
      throw std::invalid_argument(std::string(who) + ": label " + std::to_string(labels[r]) +
                                  " of row " + std::to_string(r) + " is outside [0, " +
                                  std::to_string(cols) + ")");
    }
  }
}

using softmax_detail::ClassifyRow;
using softmax_detail::FillRow;
using softmax_detail::RowKind;

// Reference row pass in double: returns the kind, the max and the sum of exp(x - max).
RowKind scan_row_ref(size_t cols, const float* x, double* row_max, double* sum) {
  float m = -std::numeric_limits<float>::infinity();
  bool has_nan = false;
  for (size_t c = 0; c < cols; ++c) {
    if (std::isnan(x[c])) has_nan = true;
    else if (x[c] > m) m = x[c];
  }
  const RowKind kind = ClassifyRow(m, has_nan);
  *row_max = m;
  *sum = 0.0;
  if (kind == RowKind::kFinite) {
    for (size_t c = 0; c < cols; ++c) *sum += std::exp(static_cast<double>(x[c]) - *row_max);
  }
  return kind;
}

}  // namespace

HWY_EXPORT(SoftmaxRows);
HWY_EXPORT(LogSoftmaxRows);
HWY_EXPORT(SoftmaxCrossEntropyForward);
HWY_EXPORT(SoftmaxCrossEntropyBackward);
HWY_EXPORT(SoftmaxExpForTest);

namespace softmax_detail {
void softmax_exp_for_test(size_t n, const float* x, float* y) {
  HWY_DYNAMIC_DISPATCH(SoftmaxExpForTest)(n, x, y);
}
}  // namespace softmax_detail

void softmax_rows(size_t rows, size_t cols, const float* x, size_t ldx, float* y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(SoftmaxRows)(rows, cols, x, ldx, y, ldy);
}

void log_softmax_rows(size_t rows, size_t cols, const float* x, size_t ldx, float* y,
                      size_t ldy) {
  HWY_DYNAMIC_DISPATCH(LogSoftmaxRows)(rows, cols, x, ldx, y, ldy);
}

double softmax_cross_entropy_forward(size_t rows, size_t cols, const float* logits, size_t ld,
                                     const int32_t* labels, float* probs) {
  check_labels("softmax_cross_entropy_forward", rows, cols, labels);
  return HWY_DYNAMIC_DISPATCH(SoftmaxCrossEntropyForward)(rows, cols, logits, ld, labels, probs);
}

void softmax_cross_entropy_backward(size_t rows, size_t cols, const float* probs,
                                    const int32_t* labels, float scale, float* dlogits) {
  check_labels("softmax_cross_entropy_backward", rows, cols, labels);
  HWY_DYNAMIC_DISPATCH(SoftmaxCrossEntropyBackward)(rows, cols, probs, labels, scale, dlogits);
}

// The references' shared row loop: NaN rows stay NaN, all -inf rows get `all_neg_inf`, and
// every other row goes to finite_row(xr, yr, row_max, sum) with the max and the sum of exp.
template <class FiniteRow>
void reference_rows(size_t rows, size_t cols, const float* x, size_t ldx, float* y, size_t ldy,
                    float all_neg_inf, const FiniteRow& finite_row) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    double row_max, sum;
    const RowKind kind = scan_row_ref(cols, xr, &row_max, &sum);
    if (kind == RowKind::kInvalid) {
      FillRow(cols, std::numeric_limits<float>::quiet_NaN(), yr);
    } else if (kind == RowKind::kAllNegInf) {
      FillRow(cols, all_neg_inf, yr);
    } else {
      finite_row(xr, yr, row_max, sum);
    }
  }
}

void softmax_rows_ref(size_t rows, size_t cols, const float* x, size_t ldx, float* y,
                      size_t ldy) {
  reference_rows(rows, cols, x, ldx, y, ldy, static_cast<float>(1.0 / static_cast<double>(cols)),
                 [cols](const float* xr, float* yr, double row_max, double sum) {
                   for (size_t c = 0; c < cols; ++c) {
                     yr[c] = static_cast<float>(std::exp(static_cast<double>(xr[c]) - row_max) / sum);
                   }
                 });
}

void log_softmax_rows_ref(size_t rows, size_t cols, const float* x, size_t ldx, float* y,
                          size_t ldy) {
  reference_rows(rows, cols, x, ldx, y, ldy,
                 static_cast<float>(-std::log(static_cast<double>(cols))),
                 [cols](const float* xr, float* yr, double row_max, double sum) {
                   const double log_sum = std::log(sum);
                   for (size_t c = 0; c < cols; ++c) {
                     yr[c] = static_cast<float>(static_cast<double>(xr[c]) - row_max - log_sum);
                   }
                 });
}

double softmax_cross_entropy_forward_ref(size_t rows, size_t cols, const float* logits,
                                         size_t ld, const int32_t* labels, float* probs) {
  check_labels("softmax_cross_entropy_forward_ref", rows, cols, labels);
  softmax_rows_ref(rows, cols, logits, ld, probs, cols);
  double total = 0.0;
  bool invalid = false;
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = logits + r * ld;
    double row_max, sum;
    const RowKind kind = scan_row_ref(cols, xr, &row_max, &sum);
    if (kind == RowKind::kInvalid) {
      invalid = true;
    } else if (kind == RowKind::kAllNegInf) {
      total += std::log(static_cast<double>(cols));
    } else {
      total += std::log(sum) + row_max - static_cast<double>(xr[labels[r]]);
    }
  }
  if (invalid) return std::numeric_limits<double>::quiet_NaN();
  return rows == 0 ? 0.0 : total / static_cast<double>(rows);
}

void softmax_cross_entropy_backward_ref(size_t rows, size_t cols, const float* probs,
                                        const int32_t* labels, float scale, float* dlogits) {
  check_labels("softmax_cross_entropy_backward_ref", rows, cols, labels);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      const float onehot = static_cast<size_t>(labels[r]) == c ? 1.0f : 0.0f;
      dlogits[r * cols + c] = (probs[r * cols + c] - onehot) * scale;
    }
  }
}

}  // namespace simdnn
#endif  // HWY_ONCE
