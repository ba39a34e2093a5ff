// Per-target GEMM building blocks: register tiles, packing and the macro-kernel.
// Included once per Highway target by kernels/gemm.cc (after foreach_target.h). No OpenMP
// here: threading lives in the HWY_ONCE layer of gemm.cc (clang 14 crashes on OpenMP pragmas
// inside per-target code).

// Non-SIMD includes: normal include guard.
#ifndef SIMDNN_KERNELS_GEMM_INL_H_
#define SIMDNN_KERNELS_GEMM_INL_H_
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "gemm_internal.h"
#include "simdnn/gathered_rows.h"
#endif

// Per-target part: toggle guard, re-entered for each target.
#if defined(SIMDNN_KERNELS_GEMM_INL_H_TARGET) == defined(HWY_TARGET_TOGGLE)
#ifdef SIMDNN_KERNELS_GEMM_INL_H_TARGET
#undef SIMDNN_KERNELS_GEMM_INL_H_TARGET
#else
#define SIMDNN_KERNELS_GEMM_INL_H_TARGET
#endif

#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace simdnn {
namespace HWY_NAMESPACE {
namespace gemm {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
constexpr size_t kLanes = hn::MaxLanes(DF());

// Register tiles per target (rows x vectors). Accumulators + B vectors + one broadcast must fit
// the register file, else GCC spills and speed falls ~3x: AVX-512 has 32 zmm (12*2 + 2 + 1 =
// 27, 16*1 + 1 + 1 = 18), AVX2 16 ymm (6*2 + 2 + 1 = 15, 12*1 + 1 + 1 = 14).
// Two tiles per target, chosen per call by the padded work (PlanFor in gemm.cc):
//  - wide (kMR x kNV vectors): the default, fewest loads per multiply-add;
//  - tall (kMRTall x 1 vector): for n <= one vector (the n = 10 output layer) and for shapes
//    the wide tile pads badly, e.g. m = 32 (12-row tiles compute 36 rows, 16-row ones 32) or
//    n = 784 (32-wide strips compute 800 columns, 16-wide ones 784).
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr size_t kMR = 12, kNV = 2, kMRTall = 16;
#elif HWY_TARGET == HWY_AVX2
constexpr size_t kMR = 6, kNV = 2, kMRTall = 12;
#else
// SSE4/SSSE3 (16 xmm, no FMA: MulAdd needs a temporary) and the emulated/scalar fallback.
constexpr size_t kMR = 4, kNV = 2, kMRTall = 8;
#endif

// AVX2 only: a third, mid tile of kMRMid x kNVMid vectors (4 x 16: 8 accumulators, the fewest
// that hide the FMA latency of 4 cycles on 2 pipes) for row counts the 6-row wide tile pads:
// m = 32 (a batch) is 36 rows in 6-row tiles and 32 in 4-row ones, so the batch-32 forward
// (32 x 128 x 784) and dX (32 x 784 x 128) lose 11% to padding without it. Other targets
// have none (kMRMid = 0): AVX-512 keeps its two tiles as measured.
#if HWY_TARGET == HWY_AVX2
constexpr size_t kMRMid = 4, kNVMid = 2;
#else
constexpr size_t kMRMid = 0, kNVMid = 0;
#endif

// Small-m tiles for 1 <= m <= kSmallMaxM (below kMR): m x SmallNV(m) vectors with B streamed
// in place, so a one-image forward pass (m = 1) or a tiny batch does not compute a full 12- or
// 16-row tile. SmallNV(1) covers 128 columns on AVX-512. Register budget as above: AVX-512
// 2x8 (16 + 8 + 1), 3x4 and 4x4 (16 + 4 + 1) of 32; AVX2 1x4 / 2x4 / 3x3 of 16 ymm;
// SSE 2 vectors. An m x 1-vector variant serves n <= one vector (the n = 10 layer).
// Same MicroTile, hence the same per-element operations as the tall and wide tiles: a row
// computed alone equals, bit for bit, the same row inside a batch.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int64_t kSmallMaxM = 4;
constexpr size_t SmallNV(size_t rows) { return rows <= 2 ? 8 : 4; }
#elif HWY_TARGET == HWY_AVX2
constexpr int64_t kSmallMaxM = 3;
constexpr size_t SmallNV(size_t rows) { return rows <= 2 ? 4 : 3; }
#else
constexpr int64_t kSmallMaxM = 3;
constexpr size_t SmallNV(size_t /*rows*/) { return 2; }
#endif
static_assert(kSmallMaxM < static_cast<int64_t>(kMR), "small tiles must be shorter than kMR");

// Depth and row blocks. kc = 512 makes one kc x 16 strip of B as large as L1 (32 KiB) against
// the usual "half of L1", but halves the passes over C: on Zen 4 (1 thread) sq1024 went from
// 96-99 to 100-103 GFLOP/s and sq2048 from 94-99 to 102-105, the MLP shapes unchanged. The A
// block (mc x kc, 480 KiB) stays within half of the 1 MiB L2.
#if HWY_TARGET == HWY_AVX2
// AVX2 (Zen 3): the 6 x 16 tile reads a kc x 16 strip of B and a 6 x kc panel of A per tile,
// and at kc = 392 (k = 784 in 2 blocks) those are 25 + 9.4 KiB, more than the 32 KiB L1: X * W1
// had ~15% of its perf samples on the loads of B. kc <= 384 (k = 784 in 3 blocks of 262) keeps
// both in L1 for one more C update per tile. Alternating before/after, load 2.9-3.8, CPU-time
// ratio to oneDNN: fwd1 B32 0.88 -> 0.97 and 0.94 -> 0.95, fwd1 B256 0.96 -> 1.01 and
// 0.96 -> 1.02; sq1024 1.02 -> 0.94 (unresolved at that load). kc = 256 (4 x 196) lost at
// fwd1 B256. One kc per target: a row computed alone keeps the bits it has in a batch.
constexpr int64_t kKC = 384;
#else
constexpr int64_t kKC = 512;
#endif
constexpr int64_t kMC = 240;   // multiple of 12, 16, 6 and 8
constexpr int64_t kNC = 3072;  // multiple of every nr
// Packed B up to this size stays in L1 (32 KiB) beside an A panel: see MacroKernel.
constexpr int64_t kSmallBBytes = 16 * 1024;

// AVX2 only: up to this many columns of C per call, full panels of a row-major A are read in
// place, not packed (GemmPlan::direct_a_max_n; see gemm_rect for the cases that still pack). Packing A costs about one pass over it per block and is
// amortised over the columns: at 256 x 128 x 784 (X * W1, batch 256) PackA was ~11% of the
// call on Zen 3, at n = 784 or more ~1% or less. Other targets keep packing (unmeasured there;
// AVX-512 unchanged).
#if HWY_TARGET == HWY_AVX2
constexpr bool kDirectAEnabled = true;
constexpr int64_t kDirectAMaxN = 256;
#else
constexpr bool kDirectAEnabled = false;
constexpr int64_t kDirectAMaxN = 0;
#endif
// Tiles of up to this many rows read A in place: one general register per row pointer, and
// the 12-row tall tile would run out of them.
constexpr size_t kDirectAMaxMR = 6;
// Unroll pragmas need literals; 16 covers every MR and NV above (a factor below the trip count
// leaves the accumulators in memory).
#define SIMDNN_GEMM_UNROLL HWY_UNROLL(16)

// One MR x (NV * lanes) tile: C = alpha * Ap*Bp + beta * C over depth kc. ap holds MR floats
// per k (zero-padded), b row p is at b + p * k_stride. Only the m_valid x n_valid corner of C
// is touched. kIndexed: ap holds only the kc depths listed in depth (see CompactZeroDepths),
// and the q-th of them multiplies b row depth[q].
// kDirectA: A is read in place instead, row i at depth p at ap + i * a_row_stride +
// p * a_k_stride (the same values in the same order, hence the same bits as packed).
template <size_t MR, size_t NV, bool kIndexed = false, bool kDirectA = false>
HWY_INLINE void MicroTile(int64_t kc, const float* HWY_RESTRICT ap, const float* HWY_RESTRICT b,
                          int64_t k_stride, float* HWY_RESTRICT c, int64_t ldc, size_t m_valid,
                          size_t n_valid, float alpha, float beta,
                          const int32_t* HWY_RESTRICT depth = nullptr, int64_t a_row_stride = 0,
                          int64_t a_k_stride = 0) {
  static_assert(!(kIndexed && kDirectA), "indexed depths come only with packed (gathered) A");
  const DF d;
  constexpr size_t NR = NV * kLanes;
  // Direct A: one pointer per row and one offset advanced per depth (base + index addressing
  // in the broadcasts, one add per depth).
  const float* HWY_RESTRICT arow[MR];
  SIMDNN_GEMM_UNROLL
  for (size_t i = 0; i < MR; ++i) arow[i] = ap + static_cast<int64_t>(i) * a_row_stride;
  int64_t a_off = 0;
  VF acc[MR][NV];
  SIMDNN_GEMM_UNROLL
  for (size_t i = 0; i < MR; ++i) {
    SIMDNN_GEMM_UNROLL
    for (size_t v = 0; v < NV; ++v) acc[i][v] = hn::Zero(d);
  }
  // C is touched only after the k loop; start fetching it now so the update does not wait
  // on L3 (large C, several depth blocks). Prefetching is harmless past a partial tile.
  for (size_t i = 0; i < m_valid; ++i) {
    hwy::Prefetch(c + static_cast<int64_t>(i) * ldc);
    hwy::Prefetch(c + static_cast<int64_t>(i) * ldc + n_valid - 1);
  }
  const float* HWY_RESTRICT b0 = b;
  for (int64_t p = 0; p < kc; ++p) {
    if constexpr (kIndexed) b = b0 + static_cast<int64_t>(depth[p]) * k_stride;
    VF bv[NV];
    SIMDNN_GEMM_UNROLL
    for (size_t v = 0; v < NV; ++v) bv[v] = hn::LoadU(d, b + v * kLanes);
    SIMDNN_GEMM_UNROLL
    for (size_t i = 0; i < MR; ++i) {
      const VF ai = hn::Set(d, kDirectA ? arow[i][a_off] : ap[i]);
      SIMDNN_GEMM_UNROLL
      for (size_t v = 0; v < NV; ++v) acc[i][v] = hn::MulAdd(ai, bv[v], acc[i][v]);
    }
    if constexpr (kDirectA) {
      a_off += a_k_stride;
    } else {
      ap += MR;
    }
    if constexpr (!kIndexed) b += k_stride;
  }

  const VF valpha = hn::Set(d, alpha);
  const VF vbeta = hn::Set(d, beta);
  // C = alpha * acc + beta * C, written so that every path below does the same operations on
  // each element: partial tiles give the same bits as full ones.
  const auto update = [&](VF a, VF c_old) HWY_ATTR {
    return beta == 0.0f ? hn::Mul(a, valpha) : hn::MulAdd(a, valpha, hn::Mul(c_old, vbeta));
  };
  if (HWY_LIKELY(m_valid == MR && n_valid == NR)) {
#if HWY_TARGET == HWY_AVX2
    // C = A*B, the common case: store the accumulators as they are (acc * 1.0f is acc, bit
    // for bit: FMA results are never denormal or signalling NaN). Short depths pay this
    // epilogue per few multiply-adds: dW1 = X^T * dY at k = 32 spends 12 of its ~200 cycles
    // per 6 x 16 tile on the multiplies.
    if (alpha == 1.0f && beta == 0.0f) {
      SIMDNN_GEMM_UNROLL
      for (size_t i = 0; i < MR; ++i) {
        SIMDNN_GEMM_UNROLL
        for (size_t v = 0; v < NV; ++v) {
          hn::StoreU(acc[i][v], d, c + static_cast<int64_t>(i) * ldc + v * kLanes);
        }
      }
      return;
    }
#endif
    SIMDNN_GEMM_UNROLL
    for (size_t i = 0; i < MR; ++i) {
      SIMDNN_GEMM_UNROLL
      for (size_t v = 0; v < NV; ++v) {
        float* o = c + static_cast<int64_t>(i) * ldc + v * kLanes;
        const VF c_old = beta == 0.0f ? hn::Zero(d) : hn::LoadU(d, o);
        hn::StoreU(update(acc[i][v], c_old), d, o);
      }
    }
    return;
  }
#if !HWY_MEM_OPS_MIGHT_FAULT
  // Partial tile with masked loads and stores (they cannot fault here, e.g. AVX-512): no copy
  // through memory, which matters when every tile is partial (n = 10).
  SIMDNN_GEMM_UNROLL
  for (size_t i = 0; i < MR; ++i) {
    if (i >= m_valid) break;
    SIMDNN_GEMM_UNROLL
    for (size_t v = 0; v < NV; ++v) {
      if (v * kLanes >= n_valid) break;
      const auto mask = hn::FirstN(d, n_valid - v * kLanes);
      float* o = c + static_cast<int64_t>(i) * ldc + v * kLanes;
      const VF c_old = beta == 0.0f ? hn::Zero(d) : hn::MaskedLoad(mask, d, o);
      hn::BlendedStore(update(acc[i][v], c_old), mask, d, o);
    }
  }
#else
  // Partial tile through an aligned stack tile: only the valid corner of C is read or written.
  HWY_ALIGN float tile[MR * NR] = {};
  if (beta != 0.0f) {
    for (size_t i = 0; i < m_valid; ++i) {
      for (size_t j = 0; j < n_valid; ++j) tile[i * NR + j] = c[static_cast<int64_t>(i) * ldc + j];
    }
  }
  SIMDNN_GEMM_UNROLL
  for (size_t i = 0; i < MR; ++i) {
    SIMDNN_GEMM_UNROLL
    for (size_t v = 0; v < NV; ++v) {
      float* o = tile + i * NR + v * kLanes;
      hn::Store(update(acc[i][v], hn::Load(d, o)), d, o);
    }
  }
  for (size_t i = 0; i < m_valid; ++i) {
    for (size_t j = 0; j < n_valid; ++j) c[static_cast<int64_t>(i) * ldc + j] = tile[i * NR + j];
  }
#endif
}

// dst[0 : n] = src[0 : n], dst[n : width] = 0: one padded row of a packed panel, in 128-bit
// pieces (tall-skinny cases such as dW2 = H^T * dY2 otherwise spend as long packing as
// computing).
HWY_INLINE void CopyPadded(const float* HWY_RESTRICT src, int64_t n, float* HWY_RESTRICT dst,
                           int64_t width) {
  int64_t j = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::Full128<float> d4;
  for (; j + 4 <= n; j += 4) hn::StoreU(hn::LoadU(d4, src + j), d4, dst + j);
#endif
  for (; j < n; ++j) dst[j] = src[j];
  for (; j < width; ++j) dst[j] = 0.0f;
}

// dst[p * ld_dst + j] = src[j * ld_src + p] for j < rows, p < depth: the transposing copy
// behind packing A (stored m x k) and B (stored n x k). 4 x 4 blocks in 128-bit registers
// make it ~4x faster than element by element, which matters when a small-batch GEMM packs a
// whole weight matrix per call (dX = dY * W1^T at batch 32 spent a third of its time here).
HWY_INLINE void TransposeCopy(const float* HWY_RESTRICT src, int64_t ld_src, int64_t rows,
                              int64_t depth, float* HWY_RESTRICT dst, int64_t ld_dst) {
  int64_t j = 0;
#if HWY_TARGET == HWY_AVX2
  // 8 x 8 blocks in ymm registers (24 shuffles and 8 full-width stores per 64 floats, against
  // 32 and 16 in 4 x 4 blocks): packing the transposed 784 x 128 W1 into 16-wide strips was
  // ~22% of dX = dY * W1^T at batch 32 on Zen 3. Rows past the last 8 go on below.
  if (depth >= 8) {
    const hn::Full256<float> d8;
    const hn::Repartition<double, decltype(d8)> d8d;
    const auto lo64 = [&](hn::Vec<decltype(d8)> a, hn::Vec<decltype(d8)> b) HWY_ATTR {
      return hn::BitCast(d8, hn::InterleaveLower(d8d, hn::BitCast(d8d, a), hn::BitCast(d8d, b)));
    };
    const auto hi64 = [&](hn::Vec<decltype(d8)> a, hn::Vec<decltype(d8)> b) HWY_ATTR {
      return hn::BitCast(d8, hn::InterleaveUpper(d8d, hn::BitCast(d8d, a), hn::BitCast(d8d, b)));
    };
    for (; j + 8 <= rows; j += 8) {
      const float* s0 = src + j * ld_src;
      int64_t p = 0;
      for (; p + 8 <= depth; p += 8) {
        const auto r0 = hn::LoadU(d8, s0 + p), r1 = hn::LoadU(d8, s0 + ld_src + p);
        const auto r2 = hn::LoadU(d8, s0 + 2 * ld_src + p);
        const auto r3 = hn::LoadU(d8, s0 + 3 * ld_src + p);
        const auto r4 = hn::LoadU(d8, s0 + 4 * ld_src + p);
        const auto r5 = hn::LoadU(d8, s0 + 5 * ld_src + p);
        const auto r6 = hn::LoadU(d8, s0 + 6 * ld_src + p);
        const auto r7 = hn::LoadU(d8, s0 + 7 * ld_src + p);
        // Per 128-bit half: t0 = r0[0] r1[0] r0[1] r1[1], t1 = r0[2] r1[2] r0[3] r1[3], ...
        const auto t0 = hn::InterleaveLower(d8, r0, r1), t1 = hn::InterleaveUpper(d8, r0, r1);
        const auto t2 = hn::InterleaveLower(d8, r2, r3), t3 = hn::InterleaveUpper(d8, r2, r3);
        const auto t4 = hn::InterleaveLower(d8, r4, r5), t5 = hn::InterleaveUpper(d8, r4, r5);
        const auto t6 = hn::InterleaveLower(d8, r6, r7), t7 = hn::InterleaveUpper(d8, r6, r7);
        // u0 = rows 0-3 of depths 0 | 4, u1: 1 | 5, u2: 2 | 6, u3: 3 | 7; u4-u7 rows 4-7.
        const auto u0 = lo64(t0, t2), u1 = hi64(t0, t2), u2 = lo64(t1, t3), u3 = hi64(t1, t3);
        const auto u4 = lo64(t4, t6), u5 = hi64(t4, t6), u6 = lo64(t5, t7), u7 = hi64(t5, t7);
        float* o = dst + p * ld_dst + j;
        hn::StoreU(hn::ConcatLowerLower(d8, u4, u0), d8, o);
        hn::StoreU(hn::ConcatLowerLower(d8, u5, u1), d8, o + ld_dst);
        hn::StoreU(hn::ConcatLowerLower(d8, u6, u2), d8, o + 2 * ld_dst);
        hn::StoreU(hn::ConcatLowerLower(d8, u7, u3), d8, o + 3 * ld_dst);
        hn::StoreU(hn::ConcatUpperUpper(d8, u4, u0), d8, o + 4 * ld_dst);
        hn::StoreU(hn::ConcatUpperUpper(d8, u5, u1), d8, o + 5 * ld_dst);
        hn::StoreU(hn::ConcatUpperUpper(d8, u6, u2), d8, o + 6 * ld_dst);
        hn::StoreU(hn::ConcatUpperUpper(d8, u7, u3), d8, o + 7 * ld_dst);
      }
      for (; p < depth; ++p) {
        float* o = dst + p * ld_dst + j;
        for (int64_t i = 0; i < 8; ++i) o[i] = s0[i * ld_src + p];
      }
    }
  }
#endif
#if HWY_TARGET != HWY_SCALAR
  const hn::Full128<float> d4;
  for (; j + 4 <= rows; j += 4) {
    const float* s0 = src + j * ld_src;
    const float* s1 = s0 + ld_src;
    const float* s2 = s1 + ld_src;
    const float* s3 = s2 + ld_src;
    int64_t p = 0;
    for (; p + 4 <= depth; p += 4) {
      const auto r0 = hn::LoadU(d4, s0 + p), r1 = hn::LoadU(d4, s1 + p);
      const auto r2 = hn::LoadU(d4, s2 + p), r3 = hn::LoadU(d4, s3 + p);
      const auto t0 = hn::InterleaveLower(d4, r0, r1);  // r0[0] r1[0] r0[1] r1[1]
      const auto t1 = hn::InterleaveLower(d4, r2, r3);
      const auto t2 = hn::InterleaveUpper(d4, r0, r1);  // r0[2] r1[2] r0[3] r1[3]
      const auto t3 = hn::InterleaveUpper(d4, r2, r3);
      float* o = dst + p * ld_dst + j;
      hn::StoreU(hn::ConcatLowerLower(d4, t1, t0), d4, o);
      hn::StoreU(hn::ConcatUpperUpper(d4, t1, t0), d4, o + ld_dst);
      hn::StoreU(hn::ConcatLowerLower(d4, t3, t2), d4, o + 2 * ld_dst);
      hn::StoreU(hn::ConcatUpperUpper(d4, t3, t2), d4, o + 3 * ld_dst);
    }
    for (; p < depth; ++p) {
      float* o = dst + p * ld_dst + j;
      o[0] = s0[p];
      o[1] = s1[p];
      o[2] = s2[p];
      o[3] = s3[p];
    }
  }
#if HWY_TARGET == HWY_AVX2
  // Two rows left: the AVX2 wide tile's 6-row panels are 4 + 2, and element by element those
  // 2 rows took most of packing A at 256 x 128 x 784 (PackA ~14% of the call in perf).
  // Pairs of rows interleaved, 2 floats stored per depth.
  if (j + 2 <= rows) {
    const hn::Full64<float> d2;
    const float* s0 = src + j * ld_src;
    const float* s1 = s0 + ld_src;
    int64_t p = 0;
    for (; p + 4 <= depth; p += 4) {
      const auto r0 = hn::LoadU(d4, s0 + p), r1 = hn::LoadU(d4, s1 + p);
      const auto lo = hn::InterleaveLower(d4, r0, r1);  // r0[0] r1[0] r0[1] r1[1]
      const auto hi = hn::InterleaveUpper(d4, r0, r1);  // r0[2] r1[2] r0[3] r1[3]
      float* o = dst + p * ld_dst + j;
      hn::StoreU(hn::LowerHalf(d2, lo), d2, o);
      hn::StoreU(hn::UpperHalf(d2, lo), d2, o + ld_dst);
      hn::StoreU(hn::LowerHalf(d2, hi), d2, o + 2 * ld_dst);
      hn::StoreU(hn::UpperHalf(d2, hi), d2, o + 3 * ld_dst);
    }
    for (; p < depth; ++p) {
      dst[p * ld_dst + j] = s0[p];
      dst[p * ld_dst + j + 1] = s1[p];
    }
    j += 2;
  }
#endif
#endif
  for (; j < rows; ++j) {
    const float* s = src + j * ld_src;
    for (int64_t p = 0; p < depth; ++p) dst[p * ld_dst + j] = s[p];
  }
}

// Packs op(A)[i0 : i0+mc, p0 : p0+kc] into MR-tall panels: panel r, depth p holds rows
// r*MR .. r*MR+MR-1 at ap[(r * kc + p) * MR + i], zero past mc.
template <size_t MR>
HWY_INLINE void PackA(bool trans_a, const float* HWY_RESTRICT a, int64_t lda, int64_t i0,
                      int64_t mc, int64_t p0, int64_t kc, float* HWY_RESTRICT ap) {
  for (int64_t r0 = 0; r0 < mc; r0 += MR, ap += kc * MR) {
    const int64_t rows = mc - r0 < static_cast<int64_t>(MR) ? mc - r0 : MR;
    if (trans_a) {
      // A stored k x m: the MR values for one p are contiguous.
      const float* src = a + p0 * lda + i0 + r0;
#if HWY_TARGET == HWY_AVX2
      // One vector per depth instead of CopyPadded's 4 + 1 + 1 floats (MR = 6): at dW1 =
      // X^T * dY (784 x 128 x 32) the per-depth copies of the 6-row panels cost a fifth of
      // the multiply-adds' time. The vector also carries kLanes - MR values past the panel
      // row; they land in the next depth's slot, or after the last depth in the next panel's
      // first slot, and both are written afterwards (depths and panels go in order). Only
      // where a whole vector lies inside the block's rows, hence inside A's row and ap.
      if constexpr (MR <= kLanes) {
        if (r0 + static_cast<int64_t>(kLanes) <= mc) {
          const DF d;
          for (int64_t p = 0; p < kc; ++p, src += lda) {
            hn::StoreU(hn::LoadU(d, src), d, ap + p * static_cast<int64_t>(MR));
          }
          continue;
        }
      }
#endif
      for (int64_t p = 0; p < kc; ++p, src += lda) {
        CopyPadded(src, rows, ap + p * MR, static_cast<int64_t>(MR));
      }
    } else {
      // A stored m x k: a transpose into the panel.
      TransposeCopy(a + (i0 + r0) * lda + p0, lda, rows, kc, ap, MR);
      for (int64_t i = rows; i < static_cast<int64_t>(MR); ++i) {
        for (int64_t p = 0; p < kc; ++p) ap[p * MR + i] = 0.0f;
      }
    }
  }
}

// dst[0 : n] = scale * src[0 : n] as floats, dst[n : width] = 0: uint8 -> int32 -> float, both
// exact, then one rounding in the multiply, as convert_u8_to_float does (hence the same bits).
HWY_INLINE void ConvertU8Padded(const uint8_t* HWY_RESTRICT src, int64_t n, float scale,
                                float* HWY_RESTRICT dst, int64_t width) {
  const DF d;
  const hn::Rebind<int32_t, DF> di32;
  const hn::Rebind<uint8_t, DF> du8;
  const VF vscale = hn::Set(d, scale);
  int64_t j = 0;
  for (; j + static_cast<int64_t>(kLanes) <= n; j += kLanes) {
    const VF v = hn::ConvertTo(d, hn::PromoteTo(di32, hn::LoadU(du8, src + j)));
    hn::StoreU(hn::Mul(v, vscale), d, dst + j);
  }
  for (; j < n; ++j) dst[j] = static_cast<float>(src[j]) * scale;
  for (; j < width; ++j) dst[j] = 0.0f;
}

// True if the MR floats at col are all +0.0 (bitwise).
template <size_t MR>
HWY_INLINE bool ZeroColumn(const float* HWY_RESTRICT col) {
#if HWY_TARGET != HWY_SCALAR
  if constexpr (MR % 4 == 0) {
    const hn::Full128<uint32_t> du;
    auto bits = hn::LoadU(du, reinterpret_cast<const uint32_t*>(col));
    for (size_t i = 4; i < MR; i += 4) {
      bits = hn::Or(bits, hn::LoadU(du, reinterpret_cast<const uint32_t*>(col + i)));
    }
    return hn::AllTrue(du, hn::Eq(bits, hn::Zero(du)));
  }
#endif
  if constexpr (MR % 2 == 0) {
    // Two floats per 64-bit word (MR = 6 on AVX2: three loads, not six).
    uint64_t bits = 0;
    for (size_t i = 0; i < MR; i += 2) {
      uint64_t b;
      std::memcpy(&b, col + i, sizeof(b));
      bits |= b;
    }
    return bits == 0;
  }
  uint32_t bits = 0;
  for (size_t i = 0; i < MR; ++i) {
    uint32_t b;
    std::memcpy(&b, col + i, sizeof(b));
    bits |= b;
  }
  return bits == 0;
}

// True if the n bytes at src are all zero.
HWY_INLINE bool ZeroBytes(const uint8_t* HWY_RESTRICT src, int64_t n) {
  uint64_t bits = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, src + i, sizeof(w));
    bits |= w;
  }
  for (; i < n; ++i) bits |= src[i];
  return bits == 0;
}

// Drops the depth columns of one packed MR-tall panel whose MR values are all +0.0 (a zero
// pixel in every row of the panel), moving the rest down; depth[q] is the original index of
// kept column q. Returns how many were kept. Skipping them changes no bits when B is finite:
// the accumulators start at +0.0 and cannot become -0.0 (an exact zero sum is +0.0 unless
// both terms are -0.0), and acc + (+0.0 * b) == acc for every other acc.
template <size_t MR>
HWY_INLINE int64_t CompactZeroDepths(float* HWY_RESTRICT panel, int64_t kc,
                                     int32_t* HWY_RESTRICT depth) {
  // Branch-free (blank columns are scattered, a branch on them mispredicts): every column is
  // copied to the next free slot, and only a non-blank one keeps it.
  int64_t kept = 0;
  for (int64_t p = 0; p < kc; ++p) {
    const float* col = panel + p * static_cast<int64_t>(MR);
    const bool zero = ZeroColumn<MR>(col);
    // A fixed-size copy (two moves for MR = 6; CopyPadded's loop went float by float).
    if (kept != p) std::memcpy(panel + kept * static_cast<int64_t>(MR), col, MR * sizeof(float));
    depth[kept] = static_cast<int32_t>(p);
    kept += zero ? 0 : 1;
  }
  return kept;
}

// PackA for op(A) = X or X^T with X a GatheredRows view: the same panels, bit for bit, as
// PackA on the materialized float matrix, converted straight from the uint8 table. Then each
// panel r drops its all-zero depths: depth_count[r] of them are left, listed at
// depth_index + r * kc (see CompactZeroDepths).
template <size_t MR>
HWY_INLINE void PackAGathered(bool trans_a, const GatheredRows& x, int64_t i0, int64_t mc,
                              int64_t p0, int64_t kc, float* HWY_RESTRICT ap,
                              int32_t* HWY_RESTRICT depth_index,
                              int64_t* HWY_RESTRICT depth_count) {
  const uint8_t* table = x.table.data();
  const uint32_t* index = x.rows.data();
  const int64_t cols = static_cast<int64_t>(x.cols);
  if (trans_a) {
    // op(A)[i][p] = X[p][i]: depth p of every panel comes from table row index[p0 + p], so
    // each row's mc bytes are read once, in order, and dealt out MR at a time (walking the
    // panels outer read 16 bytes of a scattered row per step and waited on cache misses). A
    // blank run (16% of them in Fashion-MNIST at MR = 16) is not kept (see CompactZeroDepths
    // for why that changes no bits); branch-free, as blank runs are scattered: every run is
    // written at its panel's next free slot, which only a non-blank one keeps.
    const int64_t panels = (mc + static_cast<int64_t>(MR) - 1) / static_cast<int64_t>(MR);
    for (int64_t r = 0; r < panels; ++r) depth_count[r] = 0;
#if HWY_TARGET == HWY_AVX2
    // Panels narrower than a vector (MR = 6 or 4 on AVX2): ConvertU8Padded would convert each
    // panel's bytes one by one (35% of the packing in a batch-256 epoch on Zen 3). Convert the
    // row's mc bytes with full vectors into an L1 buffer instead (same conversion, so the same
    // bits), then copy each panel's MR floats and test its MR bytes with fixed-size moves.
    constexpr int64_t kRowMax = 4096;
    if constexpr (MR < kLanes) {
      if (mc <= kRowMax) {
        HWY_ALIGN float converted[kRowMax + 2 * kLanes];
        const int64_t full = mc / static_cast<int64_t>(MR);  // panels of MR rows
        for (int64_t p = 0; p < kc; ++p) {
          const uint8_t* row = table + static_cast<int64_t>(index[p0 + p]) * cols + i0;
          if (p + 4 < kc) {
            const uint8_t* ahead = table + static_cast<int64_t>(index[p0 + p + 4]) * cols + i0;
            for (int64_t b = 0; b < mc; b += 64) hwy::Prefetch(ahead + b);
          }
          ConvertU8Padded(row, mc, x.scale, converted, panels * static_cast<int64_t>(MR));
          for (int64_t r = 0; r < full; ++r) {
            const int64_t r0 = r * static_cast<int64_t>(MR);
            const int64_t kept = depth_count[r];
            std::memcpy(ap + (r * kc + kept) * static_cast<int64_t>(MR), converted + r0,
                        MR * sizeof(float));
            depth_index[r * kc + kept] = static_cast<int32_t>(p);
            // The MR (< 8) bytes as two overlapping 4-byte loads, combined in registers (a
            // memcpy of 6 bytes into a uint64 went through the stack: two narrow stores, one
            // wide load, a store-forwarding stall that took 60% of this loop).
            uint32_t bits = 0;
            if constexpr (MR >= 4) {
              uint32_t head, tail;
              std::memcpy(&head, row + r0, sizeof(head));
              std::memcpy(&tail, row + r0 + static_cast<int64_t>(MR) - 4, sizeof(tail));
              bits = head | tail;
            } else {
              for (size_t i = 0; i < MR; ++i) bits |= row[r0 + static_cast<int64_t>(i)];
            }
            depth_count[r] = kept + (bits == 0 ? 0 : 1);
          }
          for (int64_t r = full; r < panels; ++r) {  // the ragged last panel, zero-padded
            const int64_t r0 = r * static_cast<int64_t>(MR);
            const int64_t kept = depth_count[r];
            std::memcpy(ap + (r * kc + kept) * static_cast<int64_t>(MR), converted + r0,
                        MR * sizeof(float));
            depth_index[r * kc + kept] = static_cast<int32_t>(p);
            depth_count[r] = kept + (ZeroBytes(row + r0, mc - r0) ? 0 : 1);
          }
        }
        return;
      }
    }
#endif
    for (int64_t p = 0; p < kc; ++p) {
      const uint8_t* row = table + static_cast<int64_t>(index[p0 + p]) * cols + i0;
      if (p + 4 < kc) {
        const uint8_t* ahead = table + static_cast<int64_t>(index[p0 + p + 4]) * cols + i0;
        for (int64_t b = 0; b < mc; b += 64) hwy::Prefetch(ahead + b);
      }
      for (int64_t r = 0; r < panels; ++r) {
        const int64_t r0 = r * static_cast<int64_t>(MR);
        const int64_t rows = mc - r0 < static_cast<int64_t>(MR) ? mc - r0 : MR;
        const int64_t kept = depth_count[r];
        ConvertU8Padded(row + r0, rows, x.scale, ap + (r * kc + kept) * static_cast<int64_t>(MR),
                        static_cast<int64_t>(MR));
        depth_index[r * kc + kept] = static_cast<int32_t>(p);
        depth_count[r] = kept + (ZeroBytes(row + r0, rows) ? 0 : 1);
      }
    }
    return;
  }
  for (int64_t r0 = 0; r0 < mc; r0 += MR, ap += kc * MR) {
    const int64_t rows = mc - r0 < static_cast<int64_t>(MR) ? mc - r0 : MR;
    const int64_t panel = r0 / static_cast<int64_t>(MR);
    // op(A) = X: rows of the table are scattered (a shuffled batch), so fetch the next panel's
    // rows while converting this one. Converted in depth chunks into an L1 buffer, then
    // transposed into the panel exactly as PackA transposes a float matrix.
    if (r0 + static_cast<int64_t>(MR) < mc) {
      const int64_t next = r0 + static_cast<int64_t>(MR);
      const int64_t next_rows = mc - next < static_cast<int64_t>(MR) ? mc - next : MR;
      for (int64_t i = 0; i < next_rows; ++i) {
        const uint8_t* row = table + static_cast<int64_t>(index[i0 + next + i]) * cols + p0;
        for (int64_t b = 0; b < kc; b += 64) hwy::Prefetch(row + b);
      }
    }
    constexpr int64_t kChunk = 64;
    HWY_ALIGN float chunk[MR * kChunk];
    for (int64_t pc = 0; pc < kc; pc += kChunk) {
      const int64_t len = kc - pc < kChunk ? kc - pc : kChunk;
      for (int64_t i = 0; i < rows; ++i) {
        const uint8_t* src = table + static_cast<int64_t>(index[i0 + r0 + i]) * cols + p0 + pc;
        ConvertU8Padded(src, len, x.scale, chunk + i * kChunk, len);
      }
      TransposeCopy(chunk, kChunk, rows, len, ap + pc * static_cast<int64_t>(MR), MR);
    }
    for (int64_t i = rows; i < static_cast<int64_t>(MR); ++i) {
      for (int64_t p = 0; p < kc; ++p) ap[p * MR + i] = 0.0f;
    }
    depth_count[panel] = CompactZeroDepths<MR>(ap, kc, depth_index + panel * kc);
  }
}

// Packs strips [s_begin, s_end) of op(B)[p0 : p0+kc, j0 : j0+nc] (NR columns each) to
// bp + s * kc * NR, row p of a strip at + p * NR, zero past nc.
template <size_t NR>
HWY_INLINE void PackB(bool trans_b, const float* HWY_RESTRICT b, int64_t ldb, int64_t p0,
                      int64_t kc, int64_t j0, int64_t nc, int64_t s_begin, int64_t s_end,
                      float* HWY_RESTRICT bp) {
  const DF d;
  for (int64_t s = s_begin; s < s_end; ++s) {
    float* dst = bp + s * kc * static_cast<int64_t>(NR);
    const int64_t jb = s * static_cast<int64_t>(NR);
    const int64_t cols = nc - jb < static_cast<int64_t>(NR) ? nc - jb : NR;
    if (!trans_b) {
      // B stored k x n: each row of the strip is NR contiguous floats.
      const float* src = b + p0 * ldb + j0 + jb;
      if (cols == static_cast<int64_t>(NR)) {
        for (int64_t p = 0; p < kc; ++p, src += ldb, dst += NR) {
          SIMDNN_GEMM_UNROLL
          for (size_t v = 0; v < NR / kLanes; ++v) {
            hn::Store(hn::LoadU(d, src + v * kLanes), d, dst + v * kLanes);
          }
        }
      } else {
        for (int64_t p = 0; p < kc; ++p, src += ldb, dst += NR) {
          CopyPadded(src, cols, dst, static_cast<int64_t>(NR));
        }
      }
    } else {
      // B stored n x k: a transpose into the strip.
      TransposeCopy(b + (j0 + jb) * ldb + p0, ldb, cols, kc, dst, NR);
      for (int64_t j = cols; j < static_cast<int64_t>(NR); ++j) {
        for (int64_t p = 0; p < kc; ++p) dst[p * NR + j] = 0.0f;
      }
    }
  }
}

// Macro-kernel on a packed A block (mc x kc in MR-tall panels): walks strips [s_begin, s_end)
// of B (outer, so one kc x NR strip stays in L1) and the panels of A (inner). Strip s is read at
// bview.base + (s - s_begin) * strip_stride and updates columns s*NR .. min(nc, s*NR + NR) of
// C, whose block starts at c.
template <size_t MR, size_t NV>
HWY_INLINE void MacroKernel(const detail::GemmAView& aview, int64_t mc, int64_t kc,
                            const detail::GemmBView& bview, int64_t s_begin, int64_t s_end,
                            int64_t nc, float alpha, float beta, float* c, int64_t ldc,
                            const detail::PanelDepths& depths) {
  constexpr int64_t NR = NV * kLanes;
  // Panel r0 / MR of A: in place for the first direct_panels, else packed.
  const int64_t direct_rows = aview.direct_panels * static_cast<int64_t>(MR);
  // Mixed heights (the AVX2 mid tile only): rows read in place need no packed panel layout,
  // so the first tall_rows of them go in kMR-row tiles of the same width (12 accumulators
  // against the mid tile's 8) and the rest in MR-row ones. m = 32 is 4 x 6 + 2 x 4 rows: no
  // padding, and three quarters of the rows in the wider tile. Same MicroTile, hence the
  // same per-element operations and bits as one tile height throughout.
  constexpr bool kMixed = kDirectAEnabled && kMRMid > 0 && MR == kMRMid && NV == kNV &&
                          kMR > MR && kMR <= kDirectAMaxMR;
  int64_t tall_rows = 0;
  if constexpr (kMixed) {
    // direct_rows = MR * q; the most kMR-row tiles that leave a multiple of MR.
    for (int64_t t = direct_rows / static_cast<int64_t>(kMR); t > 0; --t) {
      if ((direct_rows - t * static_cast<int64_t>(kMR)) % static_cast<int64_t>(MR) == 0) {
        tall_rows = t * static_cast<int64_t>(kMR);
        break;
      }
    }
  }
  // Height of the tile starting at row r0.
  const auto height = [&](int64_t r0) HWY_ATTR {
    return r0 < tall_rows ? static_cast<int64_t>(kMR) : static_cast<int64_t>(MR);
  };
  const auto tile = [&](int64_t s, int64_t r0) HWY_ATTR {
    const int64_t jb = s * NR;
    const size_t n_valid = static_cast<size_t>(nc - jb < NR ? nc - jb : NR);
    const size_t m_valid = static_cast<size_t>(mc - r0 < static_cast<int64_t>(MR) ? mc - r0 : MR);
    const float* b = bview.base + (s - s_begin) * bview.strip_stride;
    if constexpr (kMixed) {
      if (r0 < tall_rows) {
        MicroTile<kMR, NV, false, true>(kc, aview.direct + r0 * aview.row_stride, b,
                                        bview.k_stride, c + r0 * ldc + jb, ldc, kMR, n_valid,
                                        alpha, beta, nullptr, aview.row_stride, aview.k_stride);
        return;
      }
    }
    if constexpr (kDirectAEnabled && MR <= kDirectAMaxMR) {
      if (r0 < direct_rows) {
        MicroTile<MR, NV, false, true>(kc, aview.direct + r0 * aview.row_stride, b,
                                       bview.k_stride, c + r0 * ldc + jb, ldc, m_valid, n_valid,
                                       alpha, beta, nullptr, aview.row_stride, aview.k_stride);
        return;
      }
    }
    const int64_t panel = (r0 - direct_rows) / static_cast<int64_t>(MR);
    const float* a_panel = aview.packed + panel * kc * static_cast<int64_t>(MR);
    if (depths.count != nullptr && depths.count[panel] < kc) {
      MicroTile<MR, NV, true>(depths.count[panel], a_panel, b, bview.k_stride, c + r0 * ldc + jb,
                              ldc, m_valid, n_valid, alpha, beta, depths.index + panel * kc);
    } else {
      MicroTile<MR, NV>(kc, a_panel, b, bview.k_stride, c + r0 * ldc + jb, ldc, m_valid, n_valid,
                        alpha, beta);
    }
  };
  if ((s_end - s_begin) * kc * NR * static_cast<int64_t>(sizeof(float)) <= kSmallBBytes) {
    // All of B's strips fit in L1 together (short depth, e.g. dW1 = X^T * dY at k = 32): walk
    // A panels outer so each stays in L1 too, and C is written a full row band at a time.
    for (int64_t r0 = 0; r0 < mc; r0 += height(r0)) {
#if HWY_TARGET == HWY_AVX2
      // A full packed panel of all its depths (dW1 = X^T * dY at batch 32: 131 such panels
      // x 8 strips of k = 32): the micro-kernel inlined here, so the panel's pointers are
      // set up once and each tile costs no call (the generic tile() is out of line, and its
      // call, index arithmetic and register saves were ~1/5 of such a 200-cycle tile).
      if (r0 >= direct_rows && mc - r0 >= static_cast<int64_t>(MR) && depths.count == nullptr) {
        const float* a_panel =
            aview.packed + (r0 - direct_rows) / static_cast<int64_t>(MR) * kc * static_cast<int64_t>(MR);
        for (int64_t s = s_begin; s < s_end; ++s) {
          const int64_t jb = s * NR;
          const size_t n_valid = static_cast<size_t>(nc - jb < NR ? nc - jb : NR);
          MicroTile<MR, NV>(kc, a_panel, bview.base + (s - s_begin) * bview.strip_stride,
                            bview.k_stride, c + r0 * ldc + jb, ldc, MR, n_valid, alpha, beta);
        }
        continue;
      }
#endif
      for (int64_t s = s_begin; s < s_end; ++s) tile(s, r0);
    }
    return;
  }
  for (int64_t s = s_begin; s < s_end; ++s) {
    for (int64_t r0 = 0; r0 < mc; r0 += height(r0)) {
      tile(s, r0);
    }
  }
}

}  // namespace gemm
}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#endif  // per-target guard
