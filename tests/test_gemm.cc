// GEMM: every SIMD target against the double-accumulating reference, over ragged shapes, all
// transpose cases, strides, alpha/beta, NaN in C, the MLP training shapes and thread counts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "simdnn/gemm.h"
#include "test_util.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_gemm {

namespace {

using simdnn::Transpose;
using simdnn::test::for_each_simd_target;
using simdnn::test::random_floats;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kPad = -12345.0f;  // sentinel in the padding of C: must survive every call

const char* name(Transpose t) { return t == Transpose::kYes ? "T" : "N"; }

// One problem with its stored operands (leading dimensions may exceed the row length), the
// reference result and a per-element error bound.
struct GemmCase {
  Transpose ta = Transpose::kNo, tb = Transpose::kNo;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  float alpha = 1.0f, beta = 0.0f;
  std::vector<float> a, b, c0, expected, bound;

  GemmCase(Transpose ta_, Transpose tb_, int64_t m_, int64_t n_, int64_t k_, float alpha_,
           float beta_, int64_t pad_a = 0, int64_t pad_b = 0, int64_t pad_c = 0,
           uint64_t seed = 1)
      : ta(ta_), tb(tb_), m(m_), n(n_), k(k_), alpha(alpha_), beta(beta_) {
    const bool trans_a = ta == Transpose::kYes, trans_b = tb == Transpose::kYes;
    const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
    const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    lda = a_cols + pad_a;
    ldb = b_cols + pad_b;
    ldc = n + pad_c;
    // Padding of A and B holds NaN: reading it would poison the result.
    a = random_floats(static_cast<size_t>(a_rows * lda), seed * 3 + 1);
    b = random_floats(static_cast<size_t>(b_rows * ldb), seed * 3 + 2);
    for (int64_t r = 0; r < a_rows; ++r)
      for (int64_t j = a_cols; j < lda; ++j) a[r * lda + j] = kNaN;
    for (int64_t r = 0; r < b_rows; ++r)
      for (int64_t j = b_cols; j < ldb; ++j) b[r * ldb + j] = kNaN;
    c0 = random_floats(static_cast<size_t>(m * ldc), seed * 3 + 3);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = n; j < ldc; ++j) c0[i * ldc + j] = kPad;
    if (beta == 0.0f) {
      // beta == 0 must not read C: NaN there must not reach the result.
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) c0[i * ldc + j] = kNaN;
    }

    expected = c0;
    simdnn::gemm_ref(ta, tb, m, n, k, alpha, data(a), lda, data(b), ldb, beta, data(expected),
                     ldc);
    // Bound: the float result may differ from the exact one by about k roundings of the
    // partial sums, each at most eps * sum |a||b|, plus the scaling by alpha and beta.
    std::vector<float> abs_a(a.size()), abs_b(b.size());
    for (size_t i = 0; i < a.size(); ++i) abs_a[i] = std::isnan(a[i]) ? 0.0f : std::fabs(a[i]);
    for (size_t i = 0; i < b.size(); ++i) abs_b[i] = std::isnan(b[i]) ? 0.0f : std::fabs(b[i]);
    bound.assign(static_cast<size_t>(m * ldc), 0.0f);
    simdnn::gemm_ref(ta, tb, m, n, k, 1.0f, data(abs_a), lda, data(abs_b), ldb, 0.0f,
                     data(bound), ldc);
    const float eps = std::numeric_limits<float>::epsilon();
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        const float prior = beta == 0.0f ? 0.0f : std::fabs(beta * c0[i * ldc + j]);
        float& e = bound[i * ldc + j];
        e = 2.0f * eps * (static_cast<float>(k + 2) * std::fabs(alpha) * e + 2.0f * prior) +
            1e-30f;
      }
    }
  }

  static const float* data(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }
  static float* data(std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

  std::vector<float> run(int threads) const {
    std::vector<float> c = c0;
    simdnn::gemm(ta, tb, m, n, k, alpha, data(a), lda, data(b), ldb, beta, data(c), ldc,
                 threads);
    return c;
  }

  // Checks c against the reference within the bound, and the padding of C untouched.
  // Returns the number of bad elements (reports the first few).
  int check(const std::vector<float>& c) const {
    int bad = 0;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < ldc; ++j) {
        const float got = c[i * ldc + j];
        const float want = expected[i * ldc + j];
        const bool ok = j < n ? std::fabs(got - want) <= bound[i * ldc + j] : got == kPad;
        if (!ok && ++bad <= 3) {
          INFO(describe(), " at (", i, ", ", j, "): got ", got, " want ", want, " tol ",
               j < n ? bound[i * ldc + j] : 0.0f);
          CHECK(ok);
        }
      }
    }
    if (bad > 0) {
      INFO(describe(), ": ", bad, " bad elements");
      CHECK(bad == 0);
    }
    return bad;
  }

  std::string describe() const {
    return std::string(name(ta)) + name(tb) + " m=" + std::to_string(m) +
           " n=" + std::to_string(n) + " k=" + std::to_string(k) +
           " lda=" + std::to_string(lda) + " ldb=" + std::to_string(ldb) +
           " ldc=" + std::to_string(ldc) + " alpha=" + std::to_string(alpha) +
           " beta=" + std::to_string(beta);
  }
};

const Transpose kTrans[] = {Transpose::kNo, Transpose::kYes};

// Builds the cases once (the reference is target-independent), then checks every target.
void check_all_targets(const std::vector<GemmCase>& cases, int threads = 1) {
  for_each_simd_target([&](const std::string&) {
    int failures = 0;
    for (const GemmCase& gc : cases) {
      if (gc.check(gc.run(threads)) > 0 && ++failures > 5) {
        FAIL("too many failing shapes");
      }
    }
  });
}

}  // namespace

TEST_CASE("gemm: ragged m and n around the AVX-512 (12x32) and AVX2 (6x16) tiles") {
  std::vector<GemmCase> cases;
  uint64_t seed = 10;
  for (Transpose ta : kTrans) {
    for (Transpose tb : kTrans) {
      // m in 0..2*12+1 against n just below, at and above the narrow and wide tiles.
      for (int64_t m = 0; m <= 25; ++m) {
        for (int64_t n : {1, 7, 16, 17, 33}) {
          for (int64_t k : {1, 3, 17}) {
            cases.emplace_back(ta, tb, m, n, k, 1.0f, 0.0f, 0, 0, 0, ++seed);
          }
        }
      }
      // n in 0..2*32+1 (covers 2*16+1 too) with m below, at and above one tile row.
      for (int64_t n = 0; n <= 65; ++n) {
        for (int64_t m : {1, 6, 13}) {
          cases.emplace_back(ta, tb, m, n, 5, 1.0f, 0.0f, 0, 0, 0, ++seed);
        }
      }
    }
  }
  check_all_targets(cases);
}

TEST_CASE("gemm: AVX2 mid tile (4x16): m = 4j +- 1 and 32, ragged n, strides, alpha/beta") {
  // The shapes where the 4-row tile pads less than the 6-row wide one (m = 8, 20, 28, 32, ...)
  // next to shapes that pick the others; every target checks them against the reference.
  std::vector<GemmCase> cases;
  uint64_t seed = 5000;
  for (Transpose ta : kTrans) {
    for (Transpose tb : kTrans) {
      for (int64_t m : {4, 7, 8, 9, 16, 20, 28, 31, 32, 33, 44}) {
        for (int64_t n : {15, 16, 17, 48, 130}) {
          cases.emplace_back(ta, tb, m, n, 37, 0.75f, -0.5f, 2, 3, 1, ++seed);
        }
      }
      cases.emplace_back(ta, tb, 32, 128, 784, 1.0f, 0.0f, 0, 0, 0, ++seed);
      cases.emplace_back(ta, tb, 32, 784, 128, 1.0f, 1.0f, 1, 0, 5, ++seed);
    }
  }
  check_all_targets(cases);
  check_all_targets(cases, 2);
}

TEST_CASE("gemm: transposed A panels near vector, tile and block edges, odd lda") {
  // Packing op(A) = A^T copies one whole vector per depth on AVX2 where it lies inside the
  // block's rows (its tail lands in slots written later): m just below, at and above a
  // vector past each panel start, the last panels of a 240-row block and of a thread's rows.
  std::vector<GemmCase> cases;
  uint64_t seed = 7000;
  const Transpose T = Transpose::kYes;
  for (Transpose tb : kTrans) {
    for (int64_t m : {6, 7, 8, 9, 11, 12, 13, 14, 15, 17, 47, 239, 240, 241, 250, 481}) {
      for (int64_t k : {1, 5, 33}) {
        for (int64_t pad_a : {0, 3}) {
          cases.emplace_back(T, tb, m, m % 2 ? 17 : 16, k, m % 3 ? 1.0f : -0.5f,
                             m % 5 ? 0.0f : 0.7f, pad_a, 1, 2, ++seed);
        }
      }
    }
  }
  check_all_targets(cases);
  check_all_targets(cases, 2);
}

TEST_CASE("gemm: depth around the kc block (512), strides and alpha/beta") {
  std::vector<GemmCase> cases;
  uint64_t seed = 1000;
  for (Transpose ta : kTrans) {
    for (Transpose tb : kTrans) {
      for (int64_t k : {0, 1, 3, 255, 256, 257, 511, 512, 513, 784, 1100}) {
        cases.emplace_back(ta, tb, 13, 35, k, 1.0f, 0.0f, 0, 0, 0, ++seed);
      }
      // Prime paddings of every leading dimension, with every alpha and beta.
      for (float alpha : {1.0f, -0.5f, 0.0f}) {
        for (float beta : {0.0f, 1.0f, 0.7f}) {
          cases.emplace_back(ta, tb, 29, 37, 41, alpha, beta, 7, 11, 13, ++seed);
          cases.emplace_back(ta, tb, 5, 3, 300, alpha, beta, 3, 5, 2, ++seed);
        }
      }
    }
  }
  // Wider than one packed B panel (nc = 3072), and taller than one A block (mc = 240).
  cases.emplace_back(Transpose::kNo, Transpose::kNo, 3, 3100, 2, 1.0f, 0.7f, 0, 0, 0, 77);
  cases.emplace_back(Transpose::kYes, Transpose::kYes, 1000, 9, 3, -0.5f, 1.0f, 1, 2, 3, 78);
  check_all_targets(cases);
}

TEST_CASE("gemm: small-m NN reads B in place (m up to 4 tall tiles + 1), ragged n, odd ldb") {
  // Up to 4 mr-row panels (wide 12 or tall 16 rows on AVX-512) the NN path skips packing B and
  // packs only a ragged last strip; the tile (12 x 32 or 16 x 16) depends on m and n.
  std::vector<GemmCase> cases;
  uint64_t seed = 5000;
  const Transpose N = Transpose::kNo;
  for (int64_t m = 1; m <= 65; ++m) {
    for (int64_t n : {1, 10, 16, 17, 32, 33, 47, 130}) {
      const int64_t k = m % 3 == 0 ? 300 : (m % 3 == 1 ? 7 : 1);
      cases.emplace_back(N, N, m, n, k, 1.0f, 0.0f, m % 4, 2 * (m % 5) + 1, m % 3, ++seed);
    }
  }
  for (float alpha : {1.0f, -0.5f, 0.0f}) {
    for (float beta : {0.0f, 1.0f, 0.7f}) {
      for (int64_t m : {1, 12, 16, 32, 37, 49}) {
        cases.emplace_back(N, N, m, 131, 263, alpha, beta, 1, 3, 5, ++seed);
      }
    }
  }
  check_all_targets(cases);
  check_all_targets(cases, 2);
}

TEST_CASE("gemm: A read in place for narrow C, 8 x 8 transposes of B") {
  // AVX2 reads full panels of a row-major A in place up to n = 256 (A^T and lda a multiple of
  // 1024 floats stay packed) and transposes B in 8 x 8 blocks; every target checks the same
  // shapes.
  std::vector<GemmCase> cases;
  uint64_t seed = 9000;
  for (Transpose ta : kTrans) {
    for (Transpose tb : kTrans) {
      for (int64_t m : {5, 6, 7, 12, 13, 32, 33, 241}) {
        for (int64_t n : {8, 17, 256, 257}) {
          cases.emplace_back(ta, tb, m, n, m % 2 ? 9 : 300, m % 3 ? 1.0f : -0.5f,
                             m % 5 ? 0.0f : 0.7f, m % 4, n % 3, 1, ++seed);
        }
      }
      // Transposed B over many 16-wide strips, depths around the 8 x 8 blocks, ragged last
      // strip.
      for (int64_t k : {7, 8, 9, 17, 128, 600}) {
        cases.emplace_back(ta, tb, 32, 799, k, 1.0f, k % 2 ? 1.0f : 0.0f, 1, 3, 2, ++seed);
      }
    }
  }
  // Row stride of 1024 floats (4 KiB): packed, not in place.
  cases.emplace_back(Transpose::kNo, Transpose::kNo, 20, 64, 1000, 1.0f, 0.0f, 24, 0, 0, 9901);
  check_all_targets(cases);
  check_all_targets(cases, 2);
}

TEST_CASE("gemm: mixed 6- and 4-row tiles around m = 32, every target, rows bit-equal") {
  // AVX2's mid tile (4 x 16) reads A in place at any n and runs its rows in 6-row tiles where
  // the rest stays a multiple of 4 (m = 32: 4 x 6 + 2 x 4). Random shapes around 32 rows,
  // against the reference on every target, 1 and 2 threads bit for bit; and any run of rows
  // computed on its own (other tile heights) equals the same rows of the full C, bit for bit.
  std::mt19937_64 rng(3232);
  const auto pick = [&](int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
  };
  std::vector<GemmCase> cases;
  for (int t = 0; t < 48; ++t) {
    const Transpose ta = t % 8 == 7 ? Transpose::kYes : Transpose::kNo;
    const Transpose tb = t % 2 == 0 ? Transpose::kNo : Transpose::kYes;
    const int64_t m = t < 8 ? 28 + 4 * (t % 3) : pick(8, 70);
    const int64_t n = t % 3 == 0 ? pick(257, 820) : pick(1, 256);
    const int64_t k = t % 4 == 0 ? pick(500, 1100) : pick(1, 140);
    const float alpha = t % 5 == 0 ? -0.5f : 1.0f;
    const float beta = t % 3 == 1 ? 0.7f : (t % 3 == 2 ? 1.0f : 0.0f);
    cases.emplace_back(ta, tb, m, n, k, alpha, beta, pick(0, 5), pick(0, 3), pick(0, 2),
                       static_cast<uint64_t>(12000 + t));
  }
  check_all_targets(cases);
  for_each_simd_target([&](const std::string&) {
    for (const GemmCase& gc : cases) {
      CAPTURE(gc.describe());
      const std::vector<float> one = gc.run(1);
      CHECK(std::memcmp(one.data(), gc.run(2).data(), one.size() * sizeof(float)) == 0);
      if (gc.ta == Transpose::kYes) continue;
      // Rows [r0, r0 + len) alone: A and C start r0 rows further, same strides.
      const int64_t r0 = static_cast<int64_t>(gc.k % 7) % gc.m;
      const int64_t len = std::max<int64_t>(1, (gc.m - r0) * 2 / 3);
      std::vector<float> part(gc.c0.begin() + r0 * gc.ldc, gc.c0.begin() + (r0 + len) * gc.ldc);
      simdnn::gemm(gc.ta, gc.tb, len, gc.n, gc.k, gc.alpha, gc.a.data() + r0 * gc.lda, gc.lda,
                   gc.b.data(), gc.ldb, gc.beta, part.data(), gc.ldc, 1);
      CHECK(std::memcmp(part.data(), one.data() + r0 * gc.ldc,
                        static_cast<size_t>(len * gc.ldc) * sizeof(float)) == 0);
    }
  });
}

TEST_CASE("gemm: C = A * B^T as C^T = B * A^T (few rows, many columns) keeps the bits") {
  // AVX2 computes C = A * B^T with 8..48 rows and n >= 256 (alpha = 1, beta = 0) as
  // C^T = B * A^T and transposes it: against the reference on every target, 1 and 2 threads,
  // and bit for bit against shapes that take the direct path: the first 200 columns (n < 256)
  // and the first 7 rows (m < 8) of the same product.
  const Transpose N = Transpose::kNo, T = Transpose::kYes;
  std::vector<GemmCase> cases;
  uint64_t seed = 13000;
  for (int64_t m : {8, 13, 32, 47, 48, 49}) {
    for (int64_t n : {256, 300, 799}) {
      for (int64_t k : {1, 9, 128, 600}) {
        cases.emplace_back(N, T, m, n, k, 1.0f, 0.0f, m % 3, k % 5, n % 4, ++seed);
      }
    }
  }
  check_all_targets(cases);
  check_all_targets(cases, 2);
  for_each_simd_target([&](const std::string&) {
    for (const GemmCase& gc : cases) {
      CAPTURE(gc.describe());
      const std::vector<float> full = gc.run(1);
      // First 200 columns: B^T's first 200 rows.
      std::vector<float> cols(static_cast<size_t>(gc.m * 200), kNaN);
      simdnn::gemm(N, T, gc.m, 200, gc.k, 1.0f, gc.a.data(), gc.lda, gc.b.data(), gc.ldb, 0.0f,
                   cols.data(), 200, 1);
      int bad = 0;
      for (int64_t i = 0; i < gc.m; ++i) {
        bad += std::memcmp(&cols[i * 200], &full[i * gc.ldc], 200 * sizeof(float)) != 0;
      }
      // First 7 rows, all columns.
      std::vector<float> rows(static_cast<size_t>(7 * gc.ldc), kNaN);
      simdnn::gemm(N, T, 7, gc.n, gc.k, 1.0f, gc.a.data(), gc.lda, gc.b.data(), gc.ldb, 0.0f,
                   rows.data(), gc.ldc, 1);
      for (int64_t i = 0; i < 7; ++i) {
        bad += std::memcmp(&rows[i * gc.ldc], &full[i * gc.ldc],
                           static_cast<size_t>(gc.n) * sizeof(float)) != 0;
      }
      CHECK(bad == 0);
    }
  });
}

TEST_CASE("gemm: the first columns of a wide C equal a narrow C bit for bit, every target") {
  // Up to n = 256 AVX2 reads A in place, above it packs A: that may not change a bit.
  // C(m x 200) against the first 200 columns of C(m x 600) with the same A and B.
  const Transpose T = Transpose::kYes;
  for (Transpose ta : kTrans) {
    for (Transpose tb : kTrans) {
      for (int64_t m : {7, 32, 250}) {
        const int64_t k = 131, wide = 600, narrow = 200;
        const GemmCase w(ta, tb, m, wide, k, 1.0f, 0.0f, 0, 0, 0, 42);
        const int64_t lda = ta == T ? m : k;
        for_each_simd_target([&](const std::string&) {
          std::vector<float> cn(static_cast<size_t>(m * narrow), kNaN);
          // op(B)'s first `narrow` columns: rows of B (N) start the same; B^T (T) is B's
          // first `narrow` rows.
          simdnn::gemm(ta, tb, m, narrow, k, 1.0f, w.a.data(), lda, w.b.data(), w.ldb, 0.0f,
                       cn.data(), narrow, 1);
          const std::vector<float> cw = w.run(1);
          int bad = 0;
          for (int64_t i = 0; i < m; ++i) {
            bad += std::memcmp(&cn[i * narrow], &cw[i * wide], narrow * sizeof(float)) != 0;
          }
          CAPTURE(w.describe());
          CHECK(bad == 0);
        });
      }
    }
  }
}

namespace {

// The MLP training GEMMs (784-128-10) at one batch size.
std::vector<GemmCase> mlp_cases(int64_t batch, float beta) {
  const Transpose N = Transpose::kNo, T = Transpose::kYes;
  std::vector<GemmCase> cases;
  cases.emplace_back(N, N, batch, 128, 784, 1.0f, beta);   // X * W1
  cases.emplace_back(N, N, batch, 10, 128, 1.0f, beta);    // H * W2
  cases.emplace_back(T, N, 784, 128, batch, 1.0f, beta);   // dW1 = X^T * dY1
  cases.emplace_back(N, T, batch, 784, 128, 1.0f, beta);   // dX = dY1 * W1^T
  cases.emplace_back(T, N, 128, 10, batch, 1.0f, beta);    // dW2 = H^T * dY2
  cases.emplace_back(N, T, batch, 128, 10, 1.0f, beta);    // dH = dY2 * W2^T
  return cases;
}

}  // namespace

TEST_CASE("gemm: MLP training shapes at batch 32 and 256") {
  for (int64_t batch : {32, 256}) {
    CAPTURE(batch);
    check_all_targets(mlp_cases(batch, batch == 32 ? 0.0f : 1.0f), 1);
    check_all_targets(mlp_cases(batch, 0.0f), 2);
  }
}

TEST_CASE("gemm: 1 and 2 threads give bit-identical results on every target") {
  std::vector<GemmCase> cases = mlp_cases(256, 1.0f);
  const Transpose N = Transpose::kNo, T = Transpose::kYes;
  cases.emplace_back(N, N, 301, 277, 263, -0.5f, 0.7f, 3, 5, 7, 5);
  cases.emplace_back(T, T, 37, 611, 389, 1.0f, 0.0f, 0, 0, 0, 6);
  cases.emplace_back(N, T, 500, 40, 150, 1.0f, 0.0f, 0, 0, 0, 7);
  // Small-m NN (B read in place) with odd ldb, split over columns.
  cases.emplace_back(N, N, 32, 1000, 300, 1.0f, 1.0f, 1, 7, 3, 8);
  cases.emplace_back(N, N, 49, 999, 1100, -0.5f, 0.0f, 0, 1, 0, 9);
  for_each_simd_target([&](const std::string&) {
    for (const GemmCase& gc : cases) {
      CAPTURE(gc.describe());
      const std::vector<float> one = gc.run(1);
      const std::vector<float> two = gc.run(2);
      CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
    }
  });
}

TEST_CASE("gemm: m = 1..4 (small-m tiles) equal the same rows of a 33-row GEMM, bit for bit") {
  // One image predicted alone must give exactly the probabilities it gets inside a batch: the
  // m-row tiles (m <= 4 on AVX-512, <= 3 elsewhere) have to repeat the tiled path's depth
  // blocking, accumulation order and update.
  const Transpose T = Transpose::kYes;
  constexpr int64_t kRows = 33;
  std::vector<GemmCase> smalls;
  std::vector<GemmCase> batches;
  std::vector<int64_t> firsts;
  uint64_t seed = 9000;
  int variant = 0;
  for (Transpose ta : kTrans) {
    for (Transpose tb : kTrans) {
      for (int64_t k : {1, 7, 255, 784, 1100}) {
        for (int64_t n : {1, 10, 16, 17, 128, 200}) {
          for (int64_t m : {1, 2, 3, 4}) {
            const float alphas[] = {1.0f, -0.5f, 1.0f};
            const float betas[] = {0.0f, 0.7f, 1.0f, 0.0f};
            const float alpha = alphas[variant % 3], beta = betas[variant % 4];
            const int64_t pad = variant % 2 == 0 ? 0 : 2 * (variant % 4) + 1;  // odd strides
            ++variant;
            ++seed;
            // The batch: kRows rows of A and C, with B, alpha, beta and strides shared.
            GemmCase batch(ta, tb, kRows, n, k, alpha, beta, pad + 2, pad, pad + 1, seed);
            GemmCase small(ta, tb, m, n, k, alpha, beta, pad, pad, pad + 3, seed + 100000);
            const int64_t r0 = static_cast<int64_t>(seed % (kRows - m + 1));
            // Same B; rows r0 .. r0 + m - 1 of A and of C copied into the small problem.
            small.b = batch.b;
            small.ldb = batch.ldb;
            for (int64_t i = 0; i < m; ++i) {
              const int64_t r = r0 + i;
              for (int64_t p = 0; p < k; ++p) {
                small.a[ta == T ? p * small.lda + i : i * small.lda + p] =
                    ta == T ? batch.a[p * batch.lda + r] : batch.a[r * batch.lda + p];
              }
              for (int64_t j = 0; j < n; ++j) {
                small.c0[i * small.ldc + j] = batch.c0[r * batch.ldc + j];
                small.bound[i * small.ldc + j] = batch.bound[r * batch.ldc + j];
              }
            }
            // Reference for the copied operands.
            small.expected = small.c0;
            simdnn::gemm_ref(ta, tb, m, n, k, alpha, GemmCase::data(small.a), small.lda,
                             GemmCase::data(small.b), small.ldb, beta,
                             GemmCase::data(small.expected), small.ldc);
            smalls.push_back(std::move(small));
            batches.push_back(std::move(batch));
            firsts.push_back(r0);
          }
        }
      }
    }
  }
  for_each_simd_target([&](const std::string&) {
    int failures = 0;
    for (size_t t = 0; t < smalls.size(); ++t) {
      const GemmCase& small = smalls[t];
      const GemmCase& batch = batches[t];
      CAPTURE(small.describe());
      const std::vector<float> few = small.run(1);
      const std::vector<float> few2 = small.run(2);
      const std::vector<float> many = batch.run(1);
      const std::vector<float> many2 = batch.run(2);
      CHECK(std::memcmp(few.data(), few2.data(), few.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(many.data(), many2.data(), many.size() * sizeof(float)) == 0);
      bool same = true;
      for (int64_t i = 0; i < small.m; ++i) {
        const float* row = many.data() + (firsts[t] + i) * batch.ldc;
        same = same && std::memcmp(few.data() + i * small.ldc, row,
                                   static_cast<size_t>(small.n) * sizeof(float)) == 0;
      }
      CHECK(same);
      if (small.check(few) > 0 || !same) {
        if (++failures > 5) FAIL("too many failing shapes");
      }
    }
  });
}

TEST_CASE("gemm: invalid arguments throw naming the argument") {
  std::vector<float> a(64, 1.0f), b(64, 1.0f), c(64, 0.0f);
  const Transpose N = Transpose::kNo, T = Transpose::kYes;
  using Fn = void (*)(Transpose, Transpose, int64_t, int64_t, int64_t, float, const float*,
                      int64_t, const float*, int64_t, float, float*, int64_t, int);
  for (Fn fn : {static_cast<Fn>(&simdnn::gemm), static_cast<Fn>(&simdnn::gemm_ref)}) {
    auto message = [&](auto&& call) -> std::string {
      try {
        call();
      } catch (const std::invalid_argument& e) {
        return e.what();
      }
      return "(no exception)";
    };
    auto contains = [](const std::string& s, const std::string& part) {
      INFO(s);
      CHECK(s.find(part) != std::string::npos);
    };
    contains(message([&] { fn(N, N, -1, 2, 2, 1, a.data(), 2, b.data(), 2, 0, c.data(), 2, 1); }),
             "m (-1) is negative");
    contains(message([&] { fn(N, N, 2, -3, 2, 1, a.data(), 2, b.data(), 2, 0, c.data(), 2, 1); }),
             "n (-3) is negative");
    contains(message([&] { fn(N, N, 2, 2, -4, 1, a.data(), 2, b.data(), 2, 0, c.data(), 2, 1); }),
             "k (-4) is negative");
    contains(message([&] { fn(N, N, 2, 3, 7, 1, a.data(), 5, b.data(), 3, 0, c.data(), 3, 1); }),
             "lda (5) is smaller than the stored row length k (7)");
    contains(message([&] { fn(T, N, 6, 3, 2, 1, a.data(), 5, b.data(), 3, 0, c.data(), 3, 1); }),
             "lda (5) is smaller than the stored row length m (6)");
    contains(message([&] { fn(N, N, 2, 3, 2, 1, a.data(), 2, b.data(), 2, 0, c.data(), 3, 1); }),
             "ldb (2) is smaller than the stored row length n (3)");
    contains(message([&] { fn(N, T, 2, 3, 4, 1, a.data(), 4, b.data(), 3, 0, c.data(), 3, 1); }),
             "ldb (3) is smaller than the stored row length k (4)");
    contains(message([&] { fn(N, N, 2, 3, 2, 1, a.data(), 2, b.data(), 3, 0, c.data(), 2, 1); }),
             "ldc (2) is smaller than the stored row length n (3)");
    contains(message([&] { fn(N, N, 2, 3, 2, 1, nullptr, 2, b.data(), 3, 0, c.data(), 3, 1); }),
             "a is null");
    contains(message([&] { fn(N, N, 2, 3, 2, 1, a.data(), 2, nullptr, 3, 0, c.data(), 3, 1); }),
             "b is null");
    contains(message([&] { fn(N, N, 2, 3, 2, 1, a.data(), 2, b.data(), 3, 0, nullptr, 3, 1); }),
             "c is null");
    // Empty operands may be null.
    CHECK_NOTHROW(fn(N, N, 0, 0, 0, 1, nullptr, 0, nullptr, 0, 0, nullptr, 0, 1));
    CHECK_NOTHROW(fn(N, N, 2, 3, 0, 1, nullptr, 0, nullptr, 3, 0, c.data(), 3, 1));
  }
}

}  // namespace test_gemm
