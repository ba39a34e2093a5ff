// gemm_gathered: the GEMM whose A operand is uint8 rows gathered from a table. Checked on every
// SIMD target to be bit-identical to gemm() on the materialized float matrix (so it inherits
// gemm's tests against the reference), and against gemm_gathered_ref within rounding. The data
// has blank rows and column stripes, so the skipping of all-zero packed depths is exercised.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "simdnn/gemm.h"
#include "simdnn/random.h"
#include "test_util.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_gemm_gathered {

namespace {

using simdnn::GatheredRows;
using simdnn::Transpose;
using simdnn::test::for_each_simd_target;
using simdnn::test::random_floats;

struct GatheredCase {
  Transpose tx, tb;
  int64_t batch, cols, n;
  float alpha, beta;
  int64_t pad_b, pad_c;
  std::vector<uint8_t> table;
  std::vector<uint32_t> rows;
  std::vector<float> b, c0;
  int64_t ldb = 0, ldc = 0;

  GatheredCase(Transpose tx_, Transpose tb_, int64_t batch_, int64_t cols_, int64_t n_,
               float alpha_, float beta_, int64_t pad_b_, int64_t pad_c_, uint64_t seed)
      : tx(tx_), tb(tb_), batch(batch_), cols(cols_), n(n_), alpha(alpha_), beta(beta_),
        pad_b(pad_b_), pad_c(pad_c_) {
    simdnn::Rng rng(seed);
    const int64_t table_rows = batch + 7;
    table.resize(static_cast<size_t>(table_rows * cols));
    // Zeros as in images, so that whole packed depths are zero and get skipped: blank rows
    // (every sample's features in a dW panel), blank column stripes (a feature in every row of
    // a forward panel), and elsewhere half zeros, the rest any byte value.
    for (int64_t r = 0; r < table_rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        const bool blank = r % 5 == 0 || j % 40 < 20;
        table[static_cast<size_t>(r * cols + j)] =
            blank || rng.below(2) == 0 ? 0 : static_cast<uint8_t>(rng.below(256));
      }
    }
    rows.resize(static_cast<size_t>(batch));
    for (auto& r : rows) r = static_cast<uint32_t>(rng.below(static_cast<uint64_t>(table_rows)));
    const int64_t k = this->k();
    const bool trans_b = tb == Transpose::kYes;
    const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    ldb = b_cols + pad_b;
    ldc = n + pad_c;
    b = random_floats(static_cast<size_t>(b_rows * ldb), seed * 5 + 1);
    c0 = random_floats(static_cast<size_t>(m() * ldc), seed * 5 + 2);
  }

  int64_t m() const { return tx == Transpose::kYes ? cols : batch; }
  int64_t k() const { return tx == Transpose::kYes ? batch : cols; }
  GatheredRows view() const {
    return GatheredRows{table, static_cast<size_t>(cols), rows, 1.0f / 255.0f};
  }

  std::vector<float> run_gathered(int threads) const {
    std::vector<float> c = c0;
    simdnn::gemm_gathered(tx, tb, n, alpha, view(), b.data(), ldb, beta, c.data(), ldc, threads);
    return c;
  }
  // gemm() on the float matrix the view stands for.
  std::vector<float> run_dense(int threads) const {
    std::vector<float> x(view().size());
    simdnn::materialize(view(), x.data());
    std::vector<float> c = c0;
    simdnn::gemm(tx, tb, m(), n, k(), alpha, x.data(), cols, b.data(), ldb, beta, c.data(), ldc,
                 threads);
    return c;
  }
  std::vector<float> run_ref() const {
    std::vector<float> c = c0;
    simdnn::gemm_gathered_ref(tx, tb, n, alpha, view(), b.data(), ldb, beta, c.data(), ldc);
    return c;
  }
  std::string describe() const {
    return std::string(tx == Transpose::kYes ? "T" : "N") + (tb == Transpose::kYes ? "T" : "N") +
           " batch=" + std::to_string(batch) + " cols=" + std::to_string(cols) +
           " n=" + std::to_string(n) + " beta=" + std::to_string(beta);
  }
};

std::vector<GatheredCase> cases() {
  std::vector<GatheredCase> out;
  const Transpose N = Transpose::kNo, T = Transpose::kYes;
  uint64_t seed = 1;
  // Batches around the tile heights (1..4 small tiles, 6, 12, 16) and the 240-row block,
  // widths around 4/8/16/64-element chunks, depth across the kc block.
  for (Transpose tx : {N, T}) {
    for (int64_t batch : {1, 3, 4, 5, 13, 16, 17, 33, 250}) {
      for (int64_t cols : {1, 7, 16, 63, 65, 784}) {
        if (batch * cols > 250 * 784 / 2 && cols != 784) continue;
        const int64_t n = (batch + cols) % 3 == 0 ? 10 : 37;
        out.emplace_back(tx, N, batch, cols, n, 1.0f, seed % 2 ? 0.0f : 1.0f, seed % 3, 0, seed);
        ++seed;
      }
    }
  }
  out.emplace_back(N, T, 29, 530, 21, -0.5f, 0.5f, 3, 2, 101);
  out.emplace_back(T, T, 29, 530, 21, 2.0f, 0.0f, 1, 5, 102);
  out.emplace_back(T, N, 256, 784, 128, 1.0f, 0.0f, 0, 0, 103);  // dW1 of the MLP
  out.emplace_back(N, N, 256, 784, 128, 1.0f, 0.0f, 0, 0, 104);  // its forward X * W1
  return out;
}

}  // namespace

TEST_CASE("gemm_gathered equals gemm on the materialized rows, bit for bit, on every target") {
  const std::vector<GatheredCase> all = cases();
  for_each_simd_target([&](const std::string&) {
    for (const GatheredCase& gc : all) {
      CAPTURE(gc.describe());
      for (int threads : {1, 2}) {
        CAPTURE(threads);
        const std::vector<float> got = gc.run_gathered(threads);
        const std::vector<float> want = gc.run_dense(threads);
        REQUIRE(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
      }
    }
  });
}

TEST_CASE("gemm_gathered agrees with its scalar reference") {
  for (const GatheredCase& gc : cases()) {
    CAPTURE(gc.describe());
    const std::vector<float> got = gc.run_gathered(1);
    const std::vector<float> want = gc.run_ref();
    // Values in [0, 1] times [-1, 1]: k roundings of partial sums at most k * eps each.
    const float tol = 4.0f * static_cast<float>(gc.k() + 2) * std::numeric_limits<float>::epsilon();
    int bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      bad += !(std::fabs(got[i] - want[i]) <= tol * (1.0f + std::fabs(want[i])));
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("gemm_gathered: bad views and operands throw, naming what is wrong") {
  std::vector<uint8_t> table(3 * 4, 1);
  std::vector<uint32_t> rows = {0, 2, 3};
  std::vector<float> b(4 * 2, 1.0f), c(3 * 2);
  const GatheredRows past_end{table, 4, rows, 1.0f};
  try {
    simdnn::gemm_gathered(Transpose::kNo, Transpose::kNo, 2, 1.0f, past_end, b.data(), 2, 0.0f,
                          c.data(), 2);
    FAIL("no exception");
  } catch (const std::out_of_range& e) {
    CHECK(std::string(e.what()).find("index 3") != std::string::npos);
  }
  const GatheredRows ragged{std::span<const uint8_t>(table.data(), 11), 4, {}, 1.0f};
  CHECK_THROWS_AS(simdnn::gemm_gathered(Transpose::kNo, Transpose::kNo, 2, 1.0f, ragged,
                                        b.data(), 2, 0.0f, c.data(), 2),
                  std::invalid_argument);
  rows = {0, 1, 2};
  const GatheredRows infinite_scale{table, 4, rows, std::numeric_limits<float>::infinity()};
  CHECK_THROWS_WITH_AS(simdnn::gemm_gathered(Transpose::kNo, Transpose::kNo, 2, 1.0f,
                                             infinite_scale, b.data(), 2, 0.0f, c.data(), 2),
                       doctest::Contains("not finite"), std::invalid_argument);
  const GatheredRows ok{table, 4, rows, 1.0f};
  // ldb smaller than n, a null C.
  CHECK_THROWS_WITH_AS(simdnn::gemm_gathered(Transpose::kNo, Transpose::kNo, 2, 1.0f, ok,
                                             b.data(), 1, 0.0f, c.data(), 2),
                       doctest::Contains("ldb"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(simdnn::gemm_gathered(Transpose::kNo, Transpose::kNo, 2, 1.0f, ok,
                                             b.data(), 2, 0.0f, nullptr, 2),
                       doctest::Contains("c is null"), std::invalid_argument);
  // A good call: X is 3 x 4 of ones, B all ones -> every element 4.
  simdnn::gemm_gathered(Transpose::kNo, Transpose::kNo, 2, 1.0f, ok, b.data(), 2, 0.0f, c.data(),
                        2);
  for (float v : c) CHECK(v == 4.0f);
}

}  // namespace test_gemm_gathered
