// Softmax, log-softmax and softmax cross-entropy: fast kernels against the double references on
// every SIMD target, strided and misaligned rows, extreme and non-finite logits, and the
// gradient against central differences of the loss.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "simdnn/softmax_kernels.h"
#include "simdnn/testing/softmax_exp.h"
#include "test_util.h"

namespace simdnn {
namespace test_softmax_kernels {  // one per file: the test programs are unity builds

using test::kKernelLengths;
using test::OffsetBuffer;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Relative tolerance of a probability against the double reference. Budget, in units of
// 2^-24 = 6e-8: rounding x - max (|x - max| <= 10 for inputs in [-5, 5]: 10 units), hn::Exp
// (<= 1 ULP = 2 units), the reciprocal and the multiply (4 units), and the float sum of
// positive terms (relative error ~ sqrt(terms per accumulator) units for random rounding: ~30
// for 4099 columns on SCALAR, whose 4 accumulators hold 1 lane each). 5e-6 = 84 units; the
// sweep below prints the worst case seen (about 1.1e-6 = 18 units).
constexpr double kProbRelTol = 5e-6;

// Log-softmax, absolute: the same relative error of the sum becomes an absolute error of its
// log, plus the rounding of (x - max) - log_sum, which is relative to the result.
double log_softmax_tol(double want) { return kProbRelTol + 2.4e-7 * std::fabs(want); }

// A rows x cols matrix with leading dimension ld inside a guarded, misaligned buffer; the
// padding columns hold NaN so a kernel that reads them produces NaN and fails.
struct StridedMatrix {
  size_t rows, cols, ld;
  OffsetBuffer buffer;
  StridedMatrix(size_t rows, size_t cols, size_t ld, size_t offset)
      : rows(rows), cols(cols), ld(ld), buffer(rows == 0 ? 0 : (rows - 1) * ld + cols, offset) {
    for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = kNaN;
  }
  float* row(size_t r) { return buffer.data() + r * ld; }
  float& at(size_t r, size_t c) { return buffer[r * ld + c]; }
};

StridedMatrix random_matrix(size_t rows, size_t cols, size_t ld, size_t offset, uint64_t seed,
                            float lo = -5.0f, float hi = 5.0f) {
  StridedMatrix m(rows, cols, ld, offset);
  const std::vector<float> values = test::random_floats(rows * cols, seed, lo, hi);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) m.at(r, c) = values[r * cols + c];
  }
  return m;
}

// Leading dimensions: packed, and cols plus a prime (odd strides that misalign every row).
std::vector<size_t> leading_dims(size_t cols) { return {cols, cols + 3, cols + 13}; }

using RowKernel = void (*)(size_t, size_t, const float*, size_t, float*, size_t);

// Fast vs reference on one matrix; returns the worst relative (softmax) or absolute-in-budget
// (log-softmax) error seen, failing on anything outside tolerance.
double compare_rows(RowKernel fast, RowKernel ref, bool log_domain, StridedMatrix& x,
                    size_t ldy, size_t y_offset) {
  StridedMatrix y(x.rows, x.cols, ldy, y_offset), want(x.rows, x.cols, ldy, 0);
  for (size_t i = 0; i < y.buffer.size(); ++i) y.buffer[i] = -7.0f;  // padding canary
  ref(x.rows, x.cols, x.buffer.data(), x.ld, want.buffer.data(), ldy);
  fast(x.rows, x.cols, x.buffer.data(), x.ld, y.buffer.data(), ldy);
  CHECK(y.buffer.guards_intact());
  double worst = 0.0;
  for (size_t r = 0; r < x.rows; ++r) {
    if (r + 1 < x.rows) {
      for (size_t c = x.cols; c < ldy; ++c) REQUIRE(y.at(r, c) == -7.0f);  // padding untouched
    }
    for (size_t c = 0; c < x.cols; ++c) {
      const double got = y.at(r, c), expect = want.at(r, c);
      const double err = std::fabs(got - expect);
      const bool ok = log_domain ? err <= log_softmax_tol(expect)
                                 : err <= kProbRelTol * std::fabs(expect);
      if (!ok) {
        CAPTURE(r);
        CAPTURE(c);
        CAPTURE(got);
        CAPTURE(expect);
        FAIL_CHECK("fast and reference differ beyond tolerance");
        return worst;
      }
      if (!log_domain && expect > 0) worst = std::max(worst, err / expect);
    }
  }
  return worst;
}

TEST_CASE("softmax_rows and log_softmax_rows match the double reference on every target") {
  double worst_rel = 0.0;
  test::for_each_simd_target([&](const std::string&) {
    for (size_t cols : kKernelLengths) {
      if (cols == 0) continue;
      for (size_t ld : leading_dims(cols)) {
        const size_t rows = cols >= 1000 ? 2 : 5;
        const size_t offset = (cols + ld) % 4;
        CAPTURE(cols);
        CAPTURE(ld);
        StridedMatrix x = random_matrix(rows, cols, ld, offset, 11 * cols + ld);
        worst_rel = std::max(worst_rel,
                             compare_rows(softmax_rows, softmax_rows_ref, false, x, ld + 2, 3));
        compare_rows(log_softmax_rows, log_softmax_rows_ref, true, x, ld + 1, 1);
      }
    }
  });
  MESSAGE("softmax: worst relative error vs double reference = " << worst_rel);
}

TEST_CASE("softmax rows sum to 1, in place works, zero rows and columns are no-ops") {
  test::for_each_simd_target([](const std::string&) {
    for (size_t cols : kKernelLengths) {
      if (cols == 0) continue;
      CAPTURE(cols);
      std::vector<float> x = test::random_floats(3 * cols, cols, -8.0f, 8.0f);
      std::vector<float> copy = x;
      softmax_rows(3, cols, x.data(), cols, x.data(), cols);  // in place
      std::vector<float> separate(3 * cols);
      softmax_rows(3, cols, copy.data(), cols, separate.data(), cols);
      CHECK(x == separate);
      for (size_t r = 0; r < 3; ++r) {
        double sum = 0.0;
        for (size_t c = 0; c < cols; ++c) sum += x[r * cols + c];
        CHECK(std::fabs(sum - 1.0) <= kProbRelTol);
      }
    }
    float untouched = 3.0f;
    softmax_rows(0, 5, &untouched, 5, &untouched, 5);
    softmax_rows(3, 0, &untouched, 0, &untouched, 0);
    log_softmax_rows(3, 0, &untouched, 0, &untouched, 0);
    CHECK(untouched == 3.0f);
  });
}

TEST_CASE("softmax extreme logits give no NaN and match the reference") {
  test::for_each_simd_target([](const std::string&) {
    for (size_t cols : {1, 2, 7, 16, 17, 40}) {
      CAPTURE(cols);
      // Row 0: alternating +-1e4. Row 1: -inf entries among finite ones. Row 2: all equal.
      // Row 3: all -inf. Row 4: huge finite spread.
      const size_t rows = 5;
      std::vector<float> x(rows * cols);
      for (size_t c = 0; c < cols; ++c) {
        x[0 * cols + c] = (c % 2 == 0) ? 1e4f : -1e4f;
        x[1 * cols + c] = (c % 3 == 1) ? -kInf : static_cast<float>(c);
        x[2 * cols + c] = 42.0f;
        x[3 * cols + c] = -kInf;
        x[4 * cols + c] = (c % 2 == 0) ? 1e38f : -1e38f;  // difference still finite
      }
      if (cols == 1) x[1] = 0.5f;  // a row of only -inf is row 3's case
      std::vector<float> y(rows * cols), want(rows * cols), ly(rows * cols), lwant(rows * cols);
      softmax_rows(rows, cols, x.data(), cols, y.data(), cols);
      softmax_rows_ref(rows, cols, x.data(), cols, want.data(), cols);
      log_softmax_rows(rows, cols, x.data(), cols, ly.data(), cols);
      log_softmax_rows_ref(rows, cols, x.data(), cols, lwant.data(), cols);
      for (size_t i = 0; i < rows * cols; ++i) {
        CAPTURE(i);
        REQUIRE_FALSE(std::isnan(y[i]));
        REQUIRE_FALSE(std::isnan(ly[i]));
        CHECK(std::fabs(y[i] - want[i]) <= kProbRelTol * want[i]);
        if (std::isinf(lwant[i])) {
          CHECK(ly[i] == lwant[i]);
        } else {
          CHECK(std::fabs(ly[i] - lwant[i]) <= log_softmax_tol(lwant[i]));
        }
      }
      for (size_t c = 0; c < cols; ++c) {
        CHECK(y[2 * cols + c] == doctest::Approx(1.0 / cols));       // all equal: uniform
        CHECK(y[3 * cols + c] == doctest::Approx(1.0 / cols));       // all -inf: uniform
        CHECK(ly[3 * cols + c] == doctest::Approx(-std::log(cols)));  // log(1/cols)
        if (c % 3 == 1 && cols > 1) CHECK(y[1 * cols + c] == 0.0f);  // exp(-inf) = 0
      }
      if (cols == 1) CHECK(y[0] == 1.0f);  // a single column is certain
    }
  });
}

TEST_CASE("all -inf rows and rows whose max is -FLT_MAX, at every length on every target") {
  // Regression: Highway 1.0.3's EMU128 MaxOfLanes reduced a vector of -inf to -FLT_MAX (its fold
  // starts from LowestValue), so an all -inf row looked finite and gave NaN (softmax_kernels.cc,
  // RowMaxOfLanes). EMU128 is only compiled by clang and gcc >= 12.3 (older gcc substitutes
  // SCALAR). Rows here: all -inf (uniform), all -FLT_MAX (a finite row, also uniform), and one
  // -FLT_MAX among -inf (probability 1 there), at the start and in the tail, at lengths that
  // reach the 4-vector body, the single-vector loop and the tail of ScanRow on every target.
  constexpr float kLowest = std::numeric_limits<float>::lowest();
  test::for_each_simd_target([&](const std::string&) {
    for (size_t cols : kKernelLengths) {
      if (cols == 0) continue;
      CAPTURE(cols);
      const size_t rows = 4;
      std::vector<float> x(rows * cols, -kInf);
      for (size_t c = 0; c < cols; ++c) x[1 * cols + c] = kLowest;
      x[2 * cols + 0] = kLowest;
      x[3 * cols + cols - 1] = kLowest;
      const std::vector<int32_t> labels = {static_cast<int32_t>(cols / 2), 0, 0,
                                           static_cast<int32_t>(cols - 1)};
      std::vector<float> y(rows * cols), want(rows * cols), ly(rows * cols), lwant(rows * cols);
      std::vector<float> probs(rows * cols), want_probs(rows * cols);
      softmax_rows(rows, cols, x.data(), cols, y.data(), cols);
      softmax_rows_ref(rows, cols, x.data(), cols, want.data(), cols);
      log_softmax_rows(rows, cols, x.data(), cols, ly.data(), cols);
      log_softmax_rows_ref(rows, cols, x.data(), cols, lwant.data(), cols);
      const double loss = softmax_cross_entropy_forward(rows, cols, x.data(), cols,
                                                        labels.data(), probs.data());
      const double want_loss = softmax_cross_entropy_forward_ref(
          rows, cols, x.data(), cols, labels.data(), want_probs.data());
      // Row 0 adds log(cols); row 1's log(sum) + max - x loses log(cols) to -FLT_MAX in double
      // in both implementations; rows 2 and 3 add 0.
      CHECK(std::isfinite(loss));
      CHECK(want_loss >= std::log(static_cast<double>(cols)) / 4 - 1e-12);
      CHECK(loss == doctest::Approx(want_loss).epsilon(1e-6));
      for (size_t r = 0; r < rows; ++r) {
        for (size_t c = 0; c < cols; ++c) {
          const size_t i = r * cols + c;
          CAPTURE(r);
          CAPTURE(c);
          const double p = r < 2 ? 1.0 / static_cast<double>(cols)
                                 : ((r == 2 && c == 0) || (r == 3 && c == cols - 1)) ? 1.0 : 0.0;
          REQUIRE(want[i] == doctest::Approx(p));
          REQUIRE(y[i] == doctest::Approx(p));
          REQUIRE(probs[i] == y[i]);
          if (p == 0.0) {
            REQUIRE(ly[i] == -kInf);
            REQUIRE(lwant[i] == -kInf);
          } else {
            REQUIRE(ly[i] == doctest::Approx(std::log(p)));
            REQUIRE(ly[i] == doctest::Approx(lwant[i]));
          }
        }
      }
    }
  });
}

TEST_CASE("a NaN or +inf anywhere in a row makes exactly that output row NaN") {
  test::for_each_simd_target([](const std::string&) {
    for (size_t cols : {1, 3, 16, 17, 64, 65, 100}) {
      // Positions: first, inside the 4-vector body, inside the single-vector loop, the tail.
      for (size_t pos : {size_t{0}, cols / 2, cols - 1}) {
        for (float bad : {kNaN, -kNaN, kInf}) {
          CAPTURE(cols);
          CAPTURE(pos);
          CAPTURE(bad);
          std::vector<float> x = test::random_floats(3 * cols, cols + pos);
          x[1 * cols + pos] = bad;
          std::vector<float> y(3 * cols), ly(3 * cols), want(3 * cols);
          softmax_rows(3, cols, x.data(), cols, y.data(), cols);
          log_softmax_rows(3, cols, x.data(), cols, ly.data(), cols);
          softmax_rows_ref(3, cols, x.data(), cols, want.data(), cols);
          for (size_t c = 0; c < cols; ++c) {
            CHECK(std::isnan(y[1 * cols + c]));
            CHECK(std::isnan(ly[1 * cols + c]));
            CHECK(std::isnan(want[1 * cols + c]));
            CHECK_FALSE(std::isnan(y[0 * cols + c]));
            CHECK_FALSE(std::isnan(y[2 * cols + c]));
          }
        }
      }
    }
  });
}

TEST_CASE("softmax exp approximation: within ~1 ULP of double exp on [-87.34, 0], exact ends") {
  // The one exp every softmax kernel applies to x - row_max (softmax_kernels.cc, SoftmaxExp).
  // Exhaustively measured at <= 1.03 ULP over all floats in [-87.3365, 0]; here a sweep over
  // every 97th float bit pattern (11.5M values) plus the subnormal-result range, per target.
  std::vector<float> x, y;
  for (uint32_t bits = 0x80000000u;; bits += 97) {
    float v;
    std::memcpy(&v, &bits, sizeof(v));
    if (!(v >= -87.33654f)) break;
    x.push_back(v);
  }
  const size_t normal_count = x.size();
  for (float v = -87.34f; v >= -110.0f; v -= 0.0123f) x.push_back(v);  // subnormal results
  for (float v : {0.0f, -0.0f, -104.0f, -104.5f, -1e4f, -kInf}) x.push_back(v);
  y.resize(x.size());
  std::map<std::string, double> worst_by_target;
  test::for_each_simd_target([&](const std::string& target) {
    // FMA targets: measured <= 1.03 ULP (exhaustive). Without FMA (SSE4, SSSE3, SCALAR) the
    // polynomial's MulAdds round twice and 1 + expm1 is rounded before the scaling.
    const bool fma = target == "AVX3" || target == "AVX3_DL" || target == "AVX2";
    const double kMaxUlp = fma ? 1.1 : 2.0;
    softmax_detail::softmax_exp_for_test(x.size(), x.data(), y.data());
    // One assertion per class of input after the sweep, naming the first offender: a doctest
    // assertion per value made this test take 14 minutes under ASan for 46M checks.
    size_t first_bad = x.size();
    double worst = 0.0;
    for (size_t i = 0; i < x.size() && first_bad == x.size(); ++i) {
      const double want = std::exp(static_cast<double>(x[i]));
      if (i < normal_count) {
        const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(want)) - 23);
        const double err = std::fabs(y[i] - want) / ulp;
        worst = std::max(worst, err);
        if (!(err <= kMaxUlp)) first_bad = i;
      } else {
        // Subnormal results (hn::Exp): within 2 subnormal steps, or 0 when flush-to-zero is on
        // (simdnn::set_num_threads enables it on the calling thread); 0 at and below -104.
        const bool close = y[i] == 0.0f || std::fabs(y[i] - want) <= 2 * std::ldexp(1.0, -149);
        if (!close || (x[i] < -104.0f && y[i] != 0.0f)) first_bad = i;
      }
    }
    worst_by_target[target] = worst;
    if (first_bad != x.size()) {
      CAPTURE(x[first_bad]);
      CAPTURE(y[first_bad]);
      CAPTURE(std::exp(static_cast<double>(x[first_bad])));
      CAPTURE(kMaxUlp);
      FAIL_CHECK("exp outside its error bound");
    }
    const size_t ends = x.size() - 6;
    CHECK(y[ends] == 1.0f);  // exp(0)
    CHECK(y[ends + 1] == 1.0f);
    for (size_t i = ends + 2; i < x.size(); ++i) CHECK(y[i] == 0.0f);  // <= -104, -inf
  });
  for (const auto& [target, worst] : worst_by_target) {
    MESSAGE("softmax exp on " << target << ": worst error vs double exp = " << worst << " ULP");
  }
}

TEST_CASE("short-row blocks: row counts around the block size, odd strides, special rows") {
  // On AVX-512 rows with cols <= 16 go through blocks of 16 rows; other targets take the
  // per-row path. Row counts not a multiple of the block, strides ld > cols (odd), a separate
  // output stride, and special rows inside full and partial blocks.
  test::for_each_simd_target([](const std::string&) {
    for (size_t cols : {1, 2, 3, 8, 10, 15, 16, 17}) {
      for (size_t rows : {1, 15, 16, 17, 31, 33, 40}) {
        for (size_t ld : {cols, cols + 3, cols + 13}) {
          CAPTURE(cols);
          CAPTURE(rows);
          CAPTURE(ld);
          StridedMatrix x = random_matrix(rows, cols, ld, (rows + ld) % 4, 7 * rows + ld);
          compare_rows(softmax_rows, softmax_rows_ref, false, x, ld + 2, 1);
          compare_rows(log_softmax_rows, log_softmax_rows_ref, true, x, ld + 1, 2);
        }
      }
    }
    // Special rows: in a full block (row 5), a later full block (row 20) and the partial tail
    // block (row 36) of 40 rows; the other rows of those blocks must stay exact.
    for (size_t cols : {1, 10, 16}) {
      for (float bad : {kNaN, kInf, -kInf}) {
        for (size_t special : {size_t{5}, size_t{20}, size_t{36}}) {
          CAPTURE(cols);
          CAPTURE(bad);
          CAPTURE(special);
          const size_t rows = 40, ld = cols + 3;
          StridedMatrix x = random_matrix(rows, cols, ld, 1, special + cols);
          if (bad == -kInf) {
            for (size_t c = 0; c < cols; ++c) x.at(special, c) = -kInf;  // all -inf row
          } else {
            x.at(special, cols / 2) = bad;
          }
          std::vector<float> y(rows * cols), want(rows * cols);
          softmax_rows(rows, cols, x.buffer.data(), ld, y.data(), cols);
          softmax_rows_ref(rows, cols, x.buffer.data(), ld, want.data(), cols);
          for (size_t i = 0; i < rows * cols; ++i) {
            CAPTURE(i);
            if (i / cols == special && bad != -kInf) {
              REQUIRE(std::isnan(y[i]));
            } else {
              REQUIRE(std::fabs(y[i] - want[i]) <= kProbRelTol * want[i]);
            }
          }
        }
      }
    }
    // In place over several blocks.
    for (size_t cols : {3, 10, 16}) {
      const size_t rows = 37;
      std::vector<float> x = test::random_floats(rows * cols, cols, -6.0f, 6.0f);
      std::vector<float> want(rows * cols);
      softmax_rows(rows, cols, x.data(), cols, want.data(), cols);
      softmax_rows(rows, cols, x.data(), cols, x.data(), cols);
      CHECK(x == want);
    }
  });
}

// ---- cross-entropy ----

std::vector<int32_t> random_labels(size_t rows, size_t cols, uint64_t seed) {
  std::vector<int32_t> labels(rows);
  const std::vector<float> u = test::random_floats(rows, seed, 0.0f, 1.0f);
  for (size_t r = 0; r < rows; ++r) {
    labels[r] = static_cast<int32_t>(std::min<size_t>(cols - 1, u[r] * cols));
  }
  return labels;
}

TEST_CASE("cross-entropy forward and backward match the double reference on every target") {
  test::for_each_simd_target([](const std::string&) {
    for (size_t cols : {1, 2, 3, 7, 10, 16, 17, 33, 100, 1000}) {
      for (size_t rows : {1, 7, 16, 32, 45}) {
        const size_t ld = cols + 5;
        CAPTURE(cols);
        CAPTURE(rows);
        StridedMatrix logits = random_matrix(rows, cols, ld, (rows + cols) % 4, rows * cols);
        const std::vector<int32_t> labels = random_labels(rows, cols, rows + cols);
        std::vector<float> probs(rows * cols), want_probs(rows * cols);
        const double loss = softmax_cross_entropy_forward(rows, cols, logits.buffer.data(), ld,
                                                          labels.data(), probs.data());
        const double want = softmax_cross_entropy_forward_ref(
            rows, cols, logits.buffer.data(), ld, labels.data(), want_probs.data());
        // The mean of per-row log(sum) errors (relative error of the float sum, kProbRelTol).
        CHECK(std::fabs(loss - want) <= kProbRelTol * (1.0 + std::fabs(want)));
        for (size_t i = 0; i < rows * cols; ++i) {
          REQUIRE(std::fabs(probs[i] - want_probs[i]) <= kProbRelTol * want_probs[i]);
        }
        const float scale = 1.0f / static_cast<float>(rows);
        std::vector<float> grad(rows * cols), want_grad(rows * cols);
        softmax_cross_entropy_backward(rows, cols, probs.data(), labels.data(), scale,
                                       grad.data());
        softmax_cross_entropy_backward_ref(rows, cols, probs.data(), labels.data(), scale,
                                           want_grad.data());
        CHECK(grad == want_grad);  // same expression per element: identical bits
        for (size_t r = 0; r < rows; ++r) {
          double row_sum = 0.0;
          for (size_t c = 0; c < cols; ++c) row_sum += grad[r * cols + c];
          CHECK(std::fabs(row_sum) <= 2 * kProbRelTol * scale);  // sum p = 1 up to kProbRelTol
        }
      }
    }
  });
}

TEST_CASE("cross-entropy gradient equals central differences of the loss") {
  // Differences of the double-accumulated reference loss; the step is recomputed from the
  // rounded float logits so representation error does not enter. h = 1e-2: truncation error
  // h^2/6 |d3L| < 2e-5 / rows.
  const size_t rows = 4, cols = 17;
  std::vector<float> logits = test::random_floats(rows * cols, 4242, -3.0f, 3.0f);
  const std::vector<int32_t> labels = {0, 16, 5, 9};
  std::vector<float> probs(rows * cols), grad(rows * cols), scratch(rows * cols);
  softmax_cross_entropy_forward(rows, cols, logits.data(), cols, labels.data(), probs.data());
  softmax_cross_entropy_backward(rows, cols, probs.data(), labels.data(), 1.0f / rows,
                                 grad.data());
  for (size_t i = 0; i < rows * cols; ++i) {
    const float saved = logits[i];
    logits[i] = saved + 1e-2f;
    const double up = softmax_cross_entropy_forward_ref(rows, cols, logits.data(), cols,
                                                        labels.data(), scratch.data());
    const double step_up = logits[i];
    logits[i] = saved - 1e-2f;
    const double down = softmax_cross_entropy_forward_ref(rows, cols, logits.data(), cols,
                                                          labels.data(), scratch.data());
    const double numeric = (up - down) / (step_up - logits[i]);
    logits[i] = saved;
    CAPTURE(i);
    CHECK(std::fabs(grad[i] - numeric) <= 1e-5);
  }
}

TEST_CASE("cross-entropy with extreme and non-finite logits") {
  test::for_each_simd_target([](const std::string&) {
    const size_t cols = 10;
    std::vector<float> logits(2 * cols, -1e4f);
    logits[3] = 1e4f;         // row 0: label at the max -> loss ~ 0
    logits[cols + 7] = 1e4f;  // row 1: label elsewhere -> loss 2e4
    const std::vector<int32_t> labels = {3, 0};
    std::vector<float> probs(2 * cols);
    double loss = softmax_cross_entropy_forward(2, cols, logits.data(), cols, labels.data(),
                                                probs.data());
    CHECK(loss == doctest::Approx(1e4));  // (0 + 2e4) / 2
    CHECK(probs[3] == 1.0f);

    // -inf logits that are not the label are fine; all -inf is uniform.
    std::vector<float> x = test::random_floats(2 * cols, 3);
    x[1] = -kInf;
    for (size_t c = 0; c < cols; ++c) x[cols + c] = -kInf;
    std::vector<float> want_probs(2 * cols);
    loss = softmax_cross_entropy_forward(2, cols, x.data(), cols, labels.data(), probs.data());
    const double want = softmax_cross_entropy_forward_ref(2, cols, x.data(), cols,
                                                          labels.data(), want_probs.data());
    CHECK(std::isfinite(loss));
    CHECK(loss == doctest::Approx(want).epsilon(1e-5));
    CHECK(probs[1] == 0.0f);
    CHECK(probs[cols] == doctest::Approx(0.1));

    // Many rows (several short-row blocks): an all -inf row in the second block, later blocks
    // after it, still match the reference.
    {
      const size_t rows = 50;
      std::vector<float> z = test::random_floats(rows * cols, 17);
      for (size_t c = 0; c < cols; ++c) z[20 * cols + c] = -kInf;
      std::vector<int32_t> many_labels(rows);
      for (size_t r = 0; r < rows; ++r) many_labels[r] = static_cast<int32_t>((3 * r) % cols);
      std::vector<float> p(rows * cols), want_p(rows * cols);
      const double got = softmax_cross_entropy_forward(rows, cols, z.data(), cols,
                                                       many_labels.data(), p.data());
      const double expect = softmax_cross_entropy_forward_ref(rows, cols, z.data(), cols,
                                                              many_labels.data(), want_p.data());
      CHECK(got == doctest::Approx(expect).epsilon(1e-6));
      for (size_t i = 0; i < rows * cols; ++i) {
        REQUIRE(std::fabs(p[i] - want_p[i]) <= kProbRelTol * want_p[i]);
      }
      for (float bad : {kNaN, kInf}) {
        for (size_t pos : {size_t{3}, 23 * cols + 4, 49 * cols + 9}) {
          std::vector<float> w = z;
          w[pos] = bad;
          CAPTURE(pos);
          CHECK(std::isnan(softmax_cross_entropy_forward(rows, cols, w.data(), cols,
                                                         many_labels.data(), p.data())));
        }
      }
    }

    // NaN or +inf anywhere -> NaN loss (hn::Exp(NaN) is 0, so this is an explicit check).
    for (float bad : {kNaN, kInf}) {
      for (size_t pos : {size_t{0}, size_t{9}, size_t{15}}) {
        std::vector<float> y = test::random_floats(2 * cols, 8);
        y[pos] = bad;
        CAPTURE(pos);
        CHECK(std::isnan(softmax_cross_entropy_forward(2, cols, y.data(), cols, labels.data(),
                                                       probs.data())));
        CHECK(std::isnan(softmax_cross_entropy_forward_ref(2, cols, y.data(), cols,
                                                           labels.data(), probs.data())));
      }
    }
  });
}

TEST_CASE("cross-entropy rejects out-of-range labels, naming row and label") {
  const size_t rows = 3, cols = 7;
  const std::vector<float> logits = test::random_floats(rows * cols, 1);
  std::vector<float> probs(rows * cols), grad(rows * cols);
  for (int32_t bad : {7, -1, 1000}) {
    const std::vector<int32_t> labels = {0, 6, bad};
    CAPTURE(bad);
    for (int which = 0; which < 3; ++which) {
      std::string message;
      try {
        if (which == 0) {
          softmax_cross_entropy_forward(rows, cols, logits.data(), cols, labels.data(),
                                        probs.data());
        } else if (which == 1) {
          softmax_cross_entropy_forward_ref(rows, cols, logits.data(), cols, labels.data(),
                                            probs.data());
        } else {
          softmax_cross_entropy_backward(rows, cols, probs.data(), labels.data(), 1.0f,
                                         grad.data());
        }
      } catch (const std::invalid_argument& e) {
        message = e.what();
      }
      CHECK(message.find("row 2") != std::string::npos);
      CHECK(message.find("label " + std::to_string(bad)) != std::string::npos);
    }
  }
}

}  // namespace test_softmax_kernels
}  // namespace simdnn
