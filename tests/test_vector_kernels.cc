// Bias add, column sum, axpy, scale, u8 conversion and all_finite: fast kernels against the
// references on every SIMD target, lengths, misalignments and odd leading dimensions.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernel_test_util.h"
#include "simdnn/vector_kernels.h"
#include "test_util.h"

namespace simdnn {
namespace test_vector_kernels {  // one per file: the test programs are unity builds

using test::kKernelLengths;
using test::kMisalignments;
using test::OffsetBuffer;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Matrix shapes: rows including 1 and a prime; leading dimensions packed and + a prime.
constexpr size_t kRowCounts[] = {1, 3, 32, 37};

TEST_CASE("add_bias_rows matches the reference exactly and leaves row padding alone") {
  test::for_each_simd_target([](const std::string&) {
    for (size_t cols : kKernelLengths) {
      for (size_t rows : kRowCounts) {
        if (rows * cols > 40000) continue;
        for (size_t ld : {cols, cols + 7}) {
          CAPTURE(cols);
          CAPTURE(rows);
          CAPTURE(ld);
          const size_t size = rows == 0 ? 0 : (rows - 1) * ld + cols;
          const std::vector<float> init = test::random_floats(size, rows + cols);
          const std::vector<float> bias = test::random_floats(cols, cols, -2.0f, 2.0f);
          OffsetBuffer y(size, (cols + rows) % 4), bias_buf(cols, 3);
          y.assign(init);
          bias_buf.assign(bias);
          std::vector<float> want = init;
          add_bias_rows_ref(rows, cols, bias.data(), want.data(), ld);
          add_bias_rows(rows, cols, bias_buf.data(), y.data(), ld);
          CHECK(y.guards_intact());
          CHECK(y.to_vector() == want);  // padding columns are compared too: unchanged
        }
      }
    }
  });
}

TEST_CASE("column_sum is bit-identical to the row-by-row reference, overwrite and accumulate") {
  test::for_each_simd_target([](const std::string&) {
    for (size_t cols : kKernelLengths) {
      for (size_t rows : {0, 1, 3, 32, 37}) {
        if (rows * cols > 40000) continue;
        for (size_t ld : {cols, cols + 5}) {
          for (bool accumulate : {false, true}) {
            CAPTURE(cols);
            CAPTURE(rows);
            CAPTURE(ld);
            CAPTURE(accumulate);
            const size_t size = rows == 0 ? 0 : (rows - 1) * ld + cols;
            std::vector<float> x = test::random_floats(size, 7 * rows + cols, -3.0f, 3.0f);
            // Padding between rows is NaN: reading it would poison the sums.
            for (size_t r = 0; r + 1 < rows; ++r) {
              for (size_t c = cols; c < ld; ++c) x[r * ld + c] = kNaN;
            }
            OffsetBuffer xb(size, 1), out(cols, 2);
            xb.assign(x);
            const std::vector<float> start = test::random_floats(cols, cols + 1);
            out.assign(start);
            std::vector<float> want = start;
            column_sum_ref(rows, cols, x.data(), ld, want.data(), accumulate);
            column_sum(rows, cols, xb.data(), ld, out.data(), accumulate);
            CHECK(out.guards_intact());
            CHECK(out.to_vector() == want);
          }
        }
      }
    }
  });
}

TEST_CASE("axpy within one rounding of the reference, scale exact") {
  test::for_each_simd_target([](const std::string&) {
    for (size_t n : kKernelLengths) {
      for (size_t offset : kMisalignments) {
        CAPTURE(n);
        CAPTURE(offset);
        const std::vector<float> x = test::random_floats(n, n + 1), y0 = test::random_floats(n, n);
        const float alpha = -0.37f;
        OffsetBuffer xb(n, offset), yb(n, (offset + 1) % 4);
        xb.assign(x);
        yb.assign(y0);
        std::vector<float> want = y0;
        axpy_ref(n, alpha, x.data(), want.data());
        axpy(n, alpha, xb.data(), yb.data());
        CHECK(yb.guards_intact());
        for (size_t i = 0; i < n; ++i) {
          // FMA targets round alpha*x + y once, the reference twice: the results differ by at
          // most the reference's rounding of alpha*x (half an ulp of it) plus each side's
          // rounding of the sum (half an ulp of the result each).
          const double bound = 0x1p-24 * std::fabs(alpha * x[i]) + 0x1p-23 * std::fabs(want[i]);
          REQUIRE(std::fabs(yb[i] - want[i]) <= bound);
        }
        OffsetBuffer sb(n, offset);
        sb.assign(x);
        std::vector<float> want_scaled = x;
        scale_ref(n, alpha, want_scaled.data());
        scale(n, alpha, sb.data());
        CHECK(sb.guards_intact());
        CHECK(sb.to_vector() == want_scaled);
      }
    }
  });
}

TEST_CASE("convert_u8_to_float is exact for every byte value and any length or offset") {
  test::for_each_simd_target([](const std::string&) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{3}, size_t{17}, size_t{256}, size_t{784},
                     size_t{4099}}) {
      for (size_t offset : kMisalignments) {
        CAPTURE(n);
        CAPTURE(offset);
        std::vector<uint8_t> bytes(n + offset + 1);
        for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 37 + 11);
        const uint8_t* src = bytes.data() + offset;  // byte-misaligned too
        OffsetBuffer out(n, offset);
        std::vector<float> want(n);
        convert_u8_to_float_ref(n, src, 1.0f / 255.0f, want.data());
        convert_u8_to_float(n, src, 1.0f / 255.0f, out.data());
        CHECK(out.guards_intact());
        CHECK(out.to_vector() == want);
        if (n >= 256) {
          CHECK(out[0] == static_cast<float>(src[0]) * (1.0f / 255.0f));
        }
      }
    }
  });
}

TEST_CASE("all_finite finds a single NaN or infinity at any position") {
  test::for_each_simd_target([](const std::string&) {
    for (size_t n : kKernelLengths) {
      std::vector<float> x = test::random_floats(n, n, -1.5e38f, 1.5e38f);  // huge but finite
      CAPTURE(n);
      CHECK(all_finite(n, x.data()));
      CHECK(all_finite_ref(n, x.data()));
      std::vector<size_t> positions;
      if (n <= 130) {
        for (size_t i = 0; i < n; ++i) positions.push_back(i);
      } else {
        positions = {0, 1, n / 2, n - 17, n - 2, n - 1};
      }
      for (size_t pos : positions) {
        for (float bad : {kNaN, kInf, -kInf}) {
          CAPTURE(pos);
          CAPTURE(bad);
          const float saved = x[pos];
          x[pos] = bad;
          CHECK_FALSE(all_finite(n, x.data()));
          CHECK_FALSE(all_finite_ref(n, x.data()));
          x[pos] = saved;
        }
      }
    }
    CHECK(all_finite(0, nullptr));
  });
}

}  // namespace test_vector_kernels
}  // namespace simdnn
