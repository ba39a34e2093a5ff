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
#define HWY_TARGET_INCLUDE "kernels/softmax_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "kernels/elementwise_loops-inl.h"

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
  float m = hn::GetLane(hn::MaxOfLanes(d, max0));
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

// exp(x - row_max) for a vector; the same expression for full and one-lane tags.
template <class D, class V>
HWY_INLINE V ExpMinusMax(D d, V v, float row_max) {
  return hn::Exp(d, hn::Sub(v, hn::Set(d, row_max)));
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

void SoftmaxRows(size_t rows, size_t cols, const float* x, size_t ldx, float* y, size_t ldy) {
  if (cols == 0) return;
  for (size_t r = 0; r < rows; ++r) {
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
  for (size_t r = 0; r < rows; ++r) {
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
  for (size_t r = 0; r < rows; ++r) {
    const float* pr = probs + r * cols;
    float* gr = dlogits + r * cols;
    MapUnary(cols, pr, gr, [scale](auto d, auto v) HWY_ATTR {
      return hn::Mul(v, hn::Set(d, scale));
    });
    // Same expression as the reference, (p - 1) * scale, so the label entry matches exactly.
    const size_t label = static_cast<size_t>(labels[r]);
    gr[label] = (pr[label] - 1.0f) * scale;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <stdexcept>
#include <string>

#include "simdnn/softmax_kernels.h"

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

void softmax_rows_ref(size_t rows, size_t cols, const float* x, size_t ldx, float* y,
                      size_t ldy) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    double row_max, sum;
    const RowKind kind = scan_row_ref(cols, xr, &row_max, &sum);
    if (kind == RowKind::kInvalid) {
      FillRow(cols, std::numeric_limits<float>::quiet_NaN(), yr);
    } else if (kind == RowKind::kAllNegInf) {
      FillRow(cols, static_cast<float>(1.0 / static_cast<double>(cols)), yr);
    } else {
      for (size_t c = 0; c < cols; ++c) {
        yr[c] = static_cast<float>(std::exp(static_cast<double>(xr[c]) - row_max) / sum);
      }
    }
  }
}

void log_softmax_rows_ref(size_t rows, size_t cols, const float* x, size_t ldx, float* y,
                          size_t ldy) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    double row_max, sum;
    const RowKind kind = scan_row_ref(cols, xr, &row_max, &sum);
    if (kind == RowKind::kInvalid) {
      FillRow(cols, std::numeric_limits<float>::quiet_NaN(), yr);
    } else if (kind == RowKind::kAllNegInf) {
      FillRow(cols, static_cast<float>(-std::log(static_cast<double>(cols))), yr);
    } else {
      const double log_sum = std::log(sum);
      for (size_t c = 0; c < cols; ++c) {
        yr[c] = static_cast<float>(static_cast<double>(xr[c]) - row_max - log_sum);
      }
    }
  }
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
