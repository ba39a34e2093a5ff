// Scalar reference GEMM and the argument checks shared with the fast path.
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gemm_internal.h"
#include "simdnn/gemm.h"
#include "simdnn/vector_kernels.h"

namespace simdnn {
namespace {

// X as floats, element by element, with the conversion convert_u8_to_float_ref defines.
void convert_rows_ref(const GatheredRows& x, float* dst) {
  for (size_t i = 0; i < x.rows.size(); ++i) {
    convert_u8_to_float_ref(x.cols, x.table.data() + static_cast<size_t>(x.rows[i]) * x.cols,
                            x.scale, dst + i * x.cols);
  }
}

}  // namespace

namespace detail {
namespace {

[[noreturn]] void fail(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string(fn) + ": " + what);
}

void check_size(const char* fn, const char* name, int64_t value) {
  if (value < 0) {
    std::ostringstream msg;
    msg << name << " (" << value << ") is negative";
    fail(fn, msg.str());
  }
}

// A stored matrix of `rows` rows of `row_len` floats, leading dimension ld, named `name`.
void check_operand(const char* fn, const char* name, const char* ld_name, const float* p,
                   int64_t ld, int64_t rows, int64_t row_len, const char* row_len_name) {
  if (ld < row_len || ld < 0) {
    std::ostringstream msg;
    msg << ld_name << " (" << ld << ") is smaller than the stored row length " << row_len_name
        << " (" << row_len << ")";
    fail(fn, msg.str());
  }
  if (p == nullptr && rows > 0 && row_len > 0) {
    std::ostringstream msg;
    msg << name << " is null but holds a " << rows << " x " << row_len << " matrix";
    fail(fn, msg.str());
  }
}

}  // namespace

void check_gemm_args(const char* fn, Transpose trans_a, Transpose trans_b, int64_t m, int64_t n,
                     int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                     const float* c, int64_t ldc) {
  check_gemm_bc_args(fn, trans_b, m, n, k, b, ldb, c, ldc);
  const bool ta = trans_a == Transpose::kYes;
  // A is only read when the product contributes (m, n, k all non-zero); still, the stored
  // shape must be consistent whenever it is described.
  check_operand(fn, "a", "lda", a, lda, ta ? k : m, ta ? m : k, ta ? "m" : "k");
}

void check_gemm_bc_args(const char* fn, Transpose trans_b, int64_t m, int64_t n, int64_t k,
                        const float* b, int64_t ldb, const float* c, int64_t ldc) {
  check_size(fn, "m", m);
  check_size(fn, "n", n);
  check_size(fn, "k", k);
  const bool tb = trans_b == Transpose::kYes;
  check_operand(fn, "b", "ldb", b, ldb, tb ? n : k, tb ? k : n, tb ? "k" : "n");
  check_operand(fn, "c", "ldc", c, ldc, m, n, "n");
}

void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < n; ++j) row[j] = 0.0f;
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

}  // namespace detail

void gemm_ref(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
              int64_t ldc, int /*threads*/) {
  detail::check_gemm_args("gemm_ref", trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
  if (k == 0 || alpha == 0.0f) {
    detail::scale_c(m, n, beta, c, ldc);
    return;
  }
  const bool ta = trans_a == Transpose::kYes;
  const bool tb = trans_b == Transpose::kYes;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const double aip = ta ? a[p * lda + i] : a[i * lda + p];
        const double bpj = tb ? b[j * ldb + p] : b[p * ldb + j];
        sum += aip * bpj;
      }
      float& cij = c[i * ldc + j];
      const double prior = beta == 0.0f ? 0.0 : static_cast<double>(beta) * cij;
      cij = static_cast<float>(static_cast<double>(alpha) * sum + prior);
    }
  }
}

void gemm_gathered_ref(Transpose trans_x, Transpose trans_b, int64_t n, float alpha,
                       const GatheredRows& x, const float* b, int64_t ldb, float beta, float* c,
                       int64_t ldc, int threads) {
  check_gathered_rows(x, "gemm_gathered_ref");
  std::vector<float> dense(x.size());
  convert_rows_ref(x, dense.data());
  const int64_t rows = static_cast<int64_t>(x.rows.size()), cols = static_cast<int64_t>(x.cols);
  const bool tx = trans_x == Transpose::kYes;
  gemm_ref(trans_x, trans_b, tx ? cols : rows, n, tx ? rows : cols, alpha, dense.data(), cols, b,
           ldb, beta, c, ldc, threads);
}

}  // namespace simdnn
