// General matrix multiply on row-major float32 matrices.
#pragma once

#include <cstdint>

#include "simdnn/gathered_rows.h"

namespace simdnn {

// Whether a GEMM operand is used as stored (kNo) or transposed (kYes).
enum class Transpose { kNo, kYes };

// C = alpha * op(A) * op(B) + beta * C, all matrices row-major.
//   op(A) is m x k: A is stored m x k (lda >= k) for kNo, k x m (lda >= m) for kYes.
//   op(B) is k x n: B is stored k x n (ldb >= n) for kNo, n x k (ldb >= k) for kYes.
//   C is m x n with ldc >= n.
// Any m, n, k >= 0. With beta == 0, C is never read (NaN already in C does not leak out);
// with k == 0 or alpha == 0, C = beta * C.
// Threaded with OpenMP over blocks of rows and columns of C, never over k, so the result is
// bit-identical for every thread count on a given SIMD target. threads <= 0 means
// omp_get_max_threads().
// Throws std::invalid_argument naming the argument for negative sizes, a leading dimension
// smaller than the stored row, or a null pointer with non-zero sizes.
void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc, int threads = 0);

// Plain scalar reference with the same contract (double accumulation, single thread).
void gemm_ref(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
              int64_t ldc, int threads = 0);

// gemm with op(A) = X or X^T, X a GatheredRows view (rows.size() x cols): op(X) is m x k with
// m = rows.size(), k = cols for kNo and m = cols, k = rows.size() for kYes. The uint8 values
// are converted while the GEMM packs them, so a batch of images picked from a data set is
// multiplied without first being written out as floats. Multiply-adds by zero pixels are
// skipped where a whole packed group is zero (a pixel blank in every image of a row block, or a
// run of blank pixels in one image), which image backgrounds make common. The result is
// bit-identical to gemm() on the materialized X (materialize()) on the same SIMD target, for
// every thread count, whenever B is finite; a NaN or infinity in B reaches C only through the
// non-zero elements of X (as in reference BLAS, which also skips zero operands).
// Throws as gemm() does for B and C, and as check_gathered_rows() does for X.
void gemm_gathered(Transpose trans_x, Transpose trans_b, int64_t n, float alpha,
                   const GatheredRows& x, const float* b, int64_t ldb, float beta, float* c,
                   int64_t ldc, int threads = 0);

// Scalar reference: converts X element by element, then gemm_ref.
void gemm_gathered_ref(Transpose trans_x, Transpose trans_b, int64_t n, float alpha,
                       const GatheredRows& x, const float* b, int64_t ldb, float beta, float* c,
                       int64_t ldc, int threads = 0);

}  // namespace simdnn
