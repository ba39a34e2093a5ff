// Internal to the GEMM: the plan shared between the threading layer (gemm.cc, HWY_ONCE part)
// and the per-target kernels (gemm-inl.h), and the argument checks shared with gemm_ref.
#pragma once

#include <cstdint>

#include "simdnn/gathered_rows.h"
#include "simdnn/gemm.h"

namespace simdnn::detail {

// Register tile and cache blocking chosen by one SIMD target for one problem shape.
// Packed A is mc x kc in mr-tall panels; packed B is kc x nc in nr-wide strips.
struct GemmPlan {
  int64_t mr = 0;      // rows of the register tile
  int64_t nr = 0;      // columns of the register tile (a multiple of the vector length)
  int64_t kc_max = 0;  // depth of a packed block (L1: one kc x nr strip of B stays resident)
  int64_t mc_max = 0;  // rows of a packed A block (L2)
  int64_t nc_max = 0;  // columns of a packed B panel (L3 share)
  // Up to this many mr-row panels of A, a row-major B (not transposed) is read in place rather
  // than packed (see gemm_rect in gemm.cc).
  int64_t direct_b_max_panels = 0;
  // Up to this many columns of C per call, whole mr-row panels of a float A (not gathered) are
  // read in place by the micro-kernel instead of packed; 0: A is always packed. Packing A is
  // paid once per block and amortised over the columns, so it matters only for narrow C.
  int64_t direct_a_max_n = 0;
  // C = A * B^T with few rows and many columns (dX = dY * W1^T at batch 32): when alpha = 1,
  // beta = 0 and A is a row-major float matrix, compute C^T = B * A^T instead (B, the big
  // operand, then read in place as the A of that product, A^T packed) into a scratch, and
  // transpose it into C. Same products in the same depth order, hence the same bits.
  bool swap_nt = false;
};

// Where the mc x kc block of op(A) that a compute call reads lives: its first direct_panels
// mr-row panels in place (row i, depth p of panel r at
// direct + (r * mr + i) * row_stride + p * k_stride), the others packed (panel r at
// packed + (r - direct_panels) * kc * mr, as pack_a lays them out).
struct GemmAView {
  const float* packed = nullptr;
  const float* direct = nullptr;
  int64_t row_stride = 0;
  int64_t k_stride = 0;
  int64_t direct_panels = 0;
};

// Where the kc x n slice of op(B) that a compute call reads lives: strip s (nr columns) starts
// at base + s * strip_stride and row p of it at + p * k_stride. Packed: k_stride = nr and
// strip_stride = kc * nr; read straight from a row-major B: k_stride = ldb, strip_stride = nr.
struct GemmBView {
  const float* base;
  int64_t strip_stride;
  int64_t k_stride;
};

// Which depths of each packed A panel the micro-kernel multiplies: panel r keeps count[r] of
// its kc depths, listed at index + r * kc. count == nullptr: every panel keeps all kc.
struct PanelDepths {
  const int32_t* index = nullptr;
  const int64_t* count = nullptr;
};

// The per-target entry points, taken together from one target so that a call never mixes
// the tile of one target with the kernel of another.
struct GemmKernels {
  // Register tile and blocking for an m x n x k problem (op(B) = B^T if trans_b).
  void (*plan)(int64_t m, int64_t n, int64_t k, bool trans_b, GemmPlan* plan);
  // Packs strips [strip_begin, strip_end) of op(B)[p0 : p0+kc, j0 : j0+nc] into bp (strip s at
  // bp + s * kc * nr), zero-padding the columns past nc.
  void (*pack_b)(const GemmPlan& plan, bool trans_b, const float* b, int64_t ldb, int64_t p0,
                 int64_t kc, int64_t j0, int64_t nc, int64_t strip_begin, int64_t strip_end,
                 float* bp);
  // Packs op(A)[i0 : i0+mc, p0 : p0+kc] into ap: round_up(mc, mr) * kc floats, mr-tall panels,
  // zero-padded rows.
  void (*pack_a)(const GemmPlan& plan, bool trans_a, const float* a, int64_t lda, int64_t i0,
                 int64_t mc, int64_t p0, int64_t kc, float* ap);
  // pack_a for op(A) = X (or X^T if trans_a) given as gathered uint8 rows: the same panels,
  // then without their all-zero depths, which it lists in depth_index / depth_count
  // (round_up(mc, mr) / mr panels of up to kc entries; see PanelDepths).
  void (*pack_a_gathered)(const GemmPlan& plan, bool trans_a, const GatheredRows& x, int64_t i0,
                          int64_t mc, int64_t p0, int64_t kc, float* ap, int32_t* depth_index,
                          int64_t* depth_count);
  // With A from pack_a and/or in place (see GemmAView): for strips [strip_begin, strip_end) of the B view (strip s read at
  // b.base + (s - strip_begin) * b.strip_stride) updates the mc rows of C starting at c, columns
  // s*nr .. below nc: C = alpha * A*B + beta * C, not reading C when beta == 0.
  // depths: which depths of each panel to multiply (from pack_a_gathered), or all of them.
  void (*macro)(const GemmPlan& plan, const GemmAView& a, int64_t mc, int64_t kc,
                const GemmBView& b, int64_t strip_begin, int64_t strip_end, int64_t nc,
                float alpha, float beta, float* c, int64_t ldc, const PanelDepths& depths);
  // dst[p * ld_dst + j] = src[j * ld_src + p] for j < rows, p < depth (see GemmPlan::swap_nt).
  void (*transpose)(const float* src, int64_t ld_src, int64_t rows, int64_t depth, float* dst,
                    int64_t ld_dst);
};

// Throws std::invalid_argument naming the offending argument (prefix `fn`, e.g. "gemm").
void check_gemm_args(const char* fn, Transpose trans_a, Transpose trans_b, int64_t m, int64_t n,
                     int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                     const float* c, int64_t ldc);

// check_gemm_args without A: for gemm_gathered, whose A is checked by check_gathered_rows.
void check_gemm_bc_args(const char* fn, Transpose trans_b, int64_t m, int64_t n, int64_t k,
                        const float* b, int64_t ldb, const float* c, int64_t ldc);

// C = beta * C for the m x n block (C = 0 without reading it when beta == 0): what the
// product reduces to when k == 0 or alpha == 0.
void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc);

}  // namespace simdnn::detail
