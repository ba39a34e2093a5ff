// Per-target GEMM building blocks: register tiles, packing and the macro-kernel.
// Included once per Highway target by kernels/gemm.cc (after foreach_target.h). No OpenMP
// here: threading lives in the HWY_ONCE layer of gemm.cc (clang 14 crashes on OpenMP pragmas
// inside per-target code).

// Non-SIMD includes: normal include guard.
#ifndef SIMDNN_KERNELS_GEMM_INL_H_
#define SIMDNN_KERNELS_GEMM_INL_H_
#include <cstdint>
#include <cstring>

#include "kernels/gemm_internal.h"
#endif

// Per-target part: toggle guard, re-entered for each target.
#if defined(SIMDNN_KERNELS_GEMM_INL_H_TARGET) == defined(HWY_TARGET_TOGGLE)
#ifdef SIMDNN_KERNELS_GEMM_INL_H_TARGET
#undef SIMDNN_KERNELS_GEMM_INL_H_TARGET
#else
#define SIMDNN_KERNELS_GEMM_INL_H_TARGET
#endif

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
// 27), AVX2 16 ymm (6*2 + 2 + 1 = 15). The narrow variant (one vector) serves n <= lanes,
// e.g. the n = 10 output layer, which would otherwise waste two thirds of a 32-wide tile.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr size_t kMR = 12, kNV = 2, kMRNarrow = 12;
#elif HWY_TARGET == HWY_AVX2
constexpr size_t kMR = 6, kNV = 2, kMRNarrow = 6;
#else
// SSE4/SSSE3 (16 xmm, no FMA: MulAdd needs a temporary) and the emulated/scalar fallback.
constexpr size_t kMR = 4, kNV = 2, kMRNarrow = 4;
#endif

constexpr int64_t kKC = 256;
constexpr int64_t kMC = 480;   // multiple of 12, 6 and 4
constexpr int64_t kNC = 3072;  // multiple of every nr

// Unroll pragmas need literals; 16 covers every MR and NV above (a factor below the trip count
// leaves the accumulators in memory).
#define SIMDNN_GEMM_UNROLL HWY_UNROLL(16)

// One MR x (NV * lanes) tile: C = alpha * Ap*Bp + beta * C over depth kc. ap holds MR floats
// per k (zero-padded), b row p is at b + p * k_stride. Only the m_valid x n_valid corner of C
// is touched; partial tiles go through an aligned stack tile so the arithmetic (and thus the
// bits) is the same as for full tiles.
template <size_t MR, size_t NV>
HWY_INLINE void MicroTile(int64_t kc, const float* HWY_RESTRICT ap, const float* HWY_RESTRICT b,
                          int64_t k_stride, float* HWY_RESTRICT c, int64_t ldc, size_t m_valid,
                          size_t n_valid, float alpha, float beta) {
  const DF d;
  constexpr size_t NR = NV * kLanes;
  VF acc[MR][NV];
  SIMDNN_GEMM_UNROLL
  for (size_t i = 0; i < MR; ++i) {
    SIMDNN_GEMM_UNROLL
    for (size_t v = 0; v < NV; ++v) acc[i][v] = hn::Zero(d);
  }
  for (int64_t p = 0; p < kc; ++p) {
    VF bv[NV];
    SIMDNN_GEMM_UNROLL
    for (size_t v = 0; v < NV; ++v) bv[v] = hn::LoadU(d, b + v * kLanes);
    SIMDNN_GEMM_UNROLL
    for (size_t i = 0; i < MR; ++i) {
      const VF ai = hn::Set(d, ap[i]);
      SIMDNN_GEMM_UNROLL
      for (size_t v = 0; v < NV; ++v) acc[i][v] = hn::MulAdd(ai, bv[v], acc[i][v]);
    }
    ap += MR;
    b += k_stride;
  }

  const VF valpha = hn::Set(d, alpha);
  const VF vbeta = hn::Set(d, beta);
  const bool full = m_valid == MR && n_valid == NR;
  HWY_ALIGN float tile[MR * NR];
  float* out = c;
  int64_t ld_out = ldc;
  if (!full) {
    out = tile;
    ld_out = static_cast<int64_t>(NR);
    if (beta != 0.0f) {
      std::memset(tile, 0, sizeof(tile));
      for (size_t i = 0; i < m_valid; ++i) {
        std::memcpy(tile + i * NR, c + static_cast<int64_t>(i) * ldc, n_valid * sizeof(float));
      }
    }
  }
  if (beta == 0.0f) {
    SIMDNN_GEMM_UNROLL
    for (size_t i = 0; i < MR; ++i) {
      SIMDNN_GEMM_UNROLL
      for (size_t v = 0; v < NV; ++v) {
        hn::StoreU(hn::Mul(acc[i][v], valpha), d, out + i * ld_out + v * kLanes);
      }
    }
  } else {
    SIMDNN_GEMM_UNROLL
    for (size_t i = 0; i < MR; ++i) {
      SIMDNN_GEMM_UNROLL
      for (size_t v = 0; v < NV; ++v) {
        float* o = out + i * ld_out + v * kLanes;
        hn::StoreU(hn::MulAdd(acc[i][v], valpha, hn::Mul(hn::LoadU(d, o), vbeta)), d, o);
      }
    }
  }
  if (!full) {
    for (size_t i = 0; i < m_valid; ++i) {
      std::memcpy(c + static_cast<int64_t>(i) * ldc, tile + i * NR, n_valid * sizeof(float));
    }
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
      for (int64_t p = 0; p < kc; ++p, src += lda) {
        float* dst = ap + p * MR;
        for (int64_t i = 0; i < rows; ++i) dst[i] = src[i];
        for (int64_t i = rows; i < static_cast<int64_t>(MR); ++i) dst[i] = 0.0f;
      }
    } else {
      // A stored m x k: read each row contiguously, scatter with stride MR (stays in L1).
      for (int64_t i = 0; i < rows; ++i) {
        const float* src = a + (i0 + r0 + i) * lda + p0;
        for (int64_t p = 0; p < kc; ++p) ap[p * MR + i] = src[p];
      }
      for (int64_t i = rows; i < static_cast<int64_t>(MR); ++i) {
        for (int64_t p = 0; p < kc; ++p) ap[p * MR + i] = 0.0f;
      }
    }
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
          for (int64_t j = 0; j < cols; ++j) dst[j] = src[j];
          for (int64_t j = cols; j < static_cast<int64_t>(NR); ++j) dst[j] = 0.0f;
        }
      }
    } else {
      // B stored n x k: a transpose; read each stored row contiguously.
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = b + (j0 + jb + j) * ldb + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * NR + j] = src[p];
      }
      for (int64_t j = cols; j < static_cast<int64_t>(NR); ++j) {
        for (int64_t p = 0; p < kc; ++p) dst[p * NR + j] = 0.0f;
      }
    }
  }
}

// Macro-kernel: pack the A block, then walk strips of B (outer, so one kc x NR strip stays in
// L1) and MR-row panels of A (inner).
template <size_t MR, size_t NV>
HWY_INLINE void ComputeBlock(bool trans_a, const float* a, int64_t lda, int64_t i0, int64_t mc,
                             int64_t p0, int64_t kc, const detail::GemmBView& bview, int64_t j0,
                             int64_t nc, int64_t s_begin, int64_t s_end, float alpha, float beta,
                             float* c, int64_t ldc, float* ap) {
  constexpr int64_t NR = NV * kLanes;
  PackA<MR>(trans_a, a, lda, i0, mc, p0, kc, ap);
  for (int64_t s = s_begin; s < s_end; ++s) {
    const int64_t jb = s * NR;
    const size_t n_valid = static_cast<size_t>(nc - jb < NR ? nc - jb : NR);
    const float* bs = bview.base + s * bview.strip_stride;
    const float* a_panel = ap;
    for (int64_t r0 = 0; r0 < mc; r0 += MR, a_panel += kc * static_cast<int64_t>(MR)) {
      const size_t m_valid = static_cast<size_t>(mc - r0 < static_cast<int64_t>(MR) ? mc - r0 : MR);
      MicroTile<MR, NV>(kc, a_panel, bs, bview.k_stride, c + (i0 + r0) * ldc + j0 + jb, ldc,
                        m_valid, n_valid, alpha, beta);
    }
  }
}

}  // namespace gemm
}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#endif  // per-target guard
