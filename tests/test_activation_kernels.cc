// ReLU, sigmoid and tanh: fast kernels against the references on every SIMD target, every
// length in the sweep and misaligned pointers; NaN propagation; references against central
// differences.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "kernel_test_util.h"
#include "simdnn/activation_kernels.h"
#include "test_util.h"

namespace simdnn {
namespace test_activation_kernels {  // one per file: the test programs are unity builds

using test::kKernelLengths;
using test::kMisalignments;
using test::OffsetBuffer;
using test::ulp_distance;

using UnaryKernel = void (*)(size_t, const float*, float*);
using BinaryKernel = void (*)(size_t, const float*, const float*, float*);

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Runs fast and ref on x (through misaligned buffers) and checks every element is within
// max_ulp (plus abs_tol for results near the subnormal range), and that nothing outside the
// output was written.
void check_unary(UnaryKernel fast, UnaryKernel ref, const std::vector<float>& x, size_t offset,
                 uint64_t max_ulp, float abs_tol) {
  const size_t n = x.size();
  OffsetBuffer in(n, offset), out(n, (offset + 1) % 4);
  in.assign(x);
  std::vector<float> want(n);
  ref(n, x.data(), want.data());
  fast(n, in.data(), out.data());
  CHECK(out.guards_intact());
  for (size_t i = 0; i < n; ++i) {
    const float got = out[i];
    if (ulp_distance(got, want[i]) > max_ulp && !(std::fabs(got - want[i]) <= abs_tol)) {
      CAPTURE(i);
      CAPTURE(x[i]);
      CAPTURE(got);
      CAPTURE(want[i]);
      FAIL_CHECK("fast and reference differ beyond tolerance");
      return;
    }
  }
}

void check_binary(BinaryKernel fast, BinaryKernel ref, const std::vector<float>& a,
                  const std::vector<float>& b, size_t offset, uint64_t max_ulp) {
  const size_t n = a.size();
  OffsetBuffer in_a(n, offset), in_b(n, (offset + 2) % 4), out(n, (offset + 3) % 4);
  in_a.assign(a);
  in_b.assign(b);
  std::vector<float> want(n);
  ref(n, a.data(), b.data(), want.data());
  fast(n, in_a.data(), in_b.data(), out.data());
  CHECK(out.guards_intact());
  for (size_t i = 0; i < n; ++i) {
    if (ulp_distance(out[i], want[i]) > max_ulp) {
      CAPTURE(i);
      CAPTURE(out[i]);
      CAPTURE(want[i]);
      FAIL_CHECK("fast and reference differ beyond tolerance");
      return;
    }
  }
}

// Sweeps every target x length x misalignment for a unary kernel over inputs in [lo, hi).
void sweep_unary(UnaryKernel fast, UnaryKernel ref, float lo, float hi, uint64_t max_ulp,
                 float abs_tol) {
  test::for_each_simd_target([&](const std::string&) {
    for (size_t n : kKernelLengths) {
      for (size_t offset : kMisalignments) {
        CAPTURE(n);
        CAPTURE(offset);
        check_unary(fast, ref, test::random_floats(n, 1000 + n, lo, hi), offset, max_ulp,
                    abs_tol);
      }
    }
  });
}

void sweep_binary(BinaryKernel fast, BinaryKernel ref, float lo, float hi, uint64_t max_ulp) {
  test::for_each_simd_target([&](const std::string&) {
    for (size_t n : kKernelLengths) {
      for (size_t offset : kMisalignments) {
        CAPTURE(n);
        CAPTURE(offset);
        check_binary(fast, ref, test::random_floats(n, 2000 + n, lo, hi),
                     test::random_floats(n, 3000 + n), offset, max_ulp);
      }
    }
  });
}

// Central difference of a forward reference, in double around a float point.
double central_difference(UnaryKernel forward, float x, float h) {
  const float xp = x + h, xm = x - h;
  float yp, ym;
  forward(1, &xp, &yp);
  forward(1, &xm, &ym);
  return (static_cast<double>(yp) - ym) / (static_cast<double>(xp) - xm);
}

// Reference backward (dy = 1, from y = forward_ref(x)) against central differences.
void check_backward_against_differences(UnaryKernel forward, BinaryKernel backward) {
  for (float x : test::random_floats(64, 77, -4.0f, 4.0f)) {
    float y, dx;
    const float one = 1.0f;
    forward(1, &x, &y);
    backward(1, &y, &one, &dx);
    CAPTURE(x);
    // h = 1e-2: truncation error h^2 |f'''| / 6 <= 2e-5 for these f; float rounding of f(x+-h)
    // adds 2^-24 / h ~ 6e-6.
    CHECK(std::fabs(dx - central_difference(forward, x, 1e-2f)) <= 5e-5);
  }
}

TEST_CASE("relu forward and backward match the reference exactly on every target") {
  // Exact zeros make x == 0 a tested case (derivative 0 there).
  sweep_unary(relu_forward, relu_forward_ref, -1.0f, 1.0f, 0, 0.0f);
  sweep_binary(relu_backward, relu_backward_ref, -1.0f, 1.0f, 0);
  test::for_each_simd_target([](const std::string&) {
    const std::vector<float> x = {0.0f, -0.0f, 1.0f, -1.0f, 0.0f, 2.0f, -3.0f, 0.0f, 5.0f};
    std::vector<float> dy(x.size(), 7.0f), dx(x.size());
    relu_backward(x.size(), x.data(), dy.data(), dx.data());
    for (size_t i = 0; i < x.size(); ++i) CHECK(dx[i] == (x[i] > 0.0f ? 7.0f : 0.0f));
  });
}

TEST_CASE("relu propagates NaN of either sign, on every target") {
  // x86 arithmetic produces the default NaN with the sign bit set; a sign-bit test
  // (ZeroIfNegative) would zero it.
  volatile float zero = 0.0f;
  const float negative_nan = zero / zero;
  test::for_each_simd_target([&](const std::string&) {
    for (size_t n : {1, 5, 16, 37}) {
      std::vector<float> x = test::random_floats(n, 5, -1.0f, 1.0f);
      x[0] = kNaN;
      x[n / 2] = negative_nan;
      x[n - 1] = std::copysign(kNaN, -1.0f);
      std::vector<float> y(n), want(n);
      relu_forward(n, x.data(), y.data());
      relu_forward_ref(n, x.data(), want.data());
      CHECK(std::isnan(y[0]));
      CHECK(std::isnan(y[n / 2]));
      CHECK(std::isnan(y[n - 1]));
      for (size_t i = 0; i < n; ++i) CHECK(test::same_value(y[i], want[i]));
    }
  });
}

TEST_CASE("relu in place") {
  test::for_each_simd_target([](const std::string&) {
    std::vector<float> x = test::random_floats(1000, 9), want(1000);
    relu_forward_ref(x.size(), x.data(), want.data());
    relu_forward(x.size(), x.data(), x.data());
    CHECK(x == want);
  });
}

TEST_CASE("sigmoid forward within 4 ULP of the double reference on every target") {
  // Error budget: hn::Exp is <= 1 ULP, then 1 + e, the division and (for x < 0) e * r each
  // round once: <= 4 ULP. Below x ~ -87 the exact result is subnormal and may flush: abs 1e-37.
  sweep_unary(sigmoid_forward, sigmoid_forward_ref, -20.0f, 20.0f, 4, 1e-37f);
  test::for_each_simd_target([](const std::string&) {
    const std::vector<float> x = {-1e4f, -200.0f, -104.0f, -90.0f, -88.0f, -30.0f, -1e-6f,
                                  0.0f,  1e-6f,   17.0f,   30.0f,  90.0f,  1e4f,   kInf,
                                  -kInf, 3e38f,   -3e38f};
    check_unary(sigmoid_forward, sigmoid_forward_ref, x, 1, 4, 1e-37f);
    std::vector<float> y(x.size());
    sigmoid_forward(x.size(), x.data(), y.data());
    CHECK(y[x.size() - 4] == 1.0f);  // sigmoid(+inf)
    CHECK(y[x.size() - 3] == 0.0f);  // sigmoid(-inf)
    const std::vector<float> nan_in = {kNaN, 1.0f, -kNaN};
    sigmoid_forward(nan_in.size(), nan_in.data(), y.data());
    CHECK(std::isnan(y[0]));
    CHECK(std::isnan(y[2]));
  });
}

TEST_CASE("tanh forward within 4 ULP of the double reference on every target") {
  // Highway 1.0.3 documents Tanh as <= 4 ULP over the whole float range.
  sweep_unary(tanh_forward, tanh_forward_ref, -10.0f, 10.0f, 4, 0.0f);
  // Near zero tanh(x) ~ x: relative accuracy must hold there too.
  sweep_unary(tanh_forward, tanh_forward_ref, -1e-3f, 1e-3f, 4, 0.0f);
  test::for_each_simd_target([](const std::string&) {
    const std::vector<float> x = {-1e4f, -20.0f, -9.0f, -1e-30f, 0.0f, 1e-30f, 9.0f, 20.0f,
                                  1e4f,  kInf,   -kInf, 3e38f};
    check_unary(tanh_forward, tanh_forward_ref, x, 2, 4, 0.0f);
    const std::vector<float> nan_in = {kNaN, 0.5f, -kNaN};
    std::vector<float> y(3);
    tanh_forward(3, nan_in.data(), y.data());
    CHECK(std::isnan(y[0]));
    CHECK(std::isnan(y[2]));
  });
}

// Non-finite and extreme inputs, each placed at every position of vectors of every swept length
// up to 127 (so in full vectors, in the masked or one-lane tail, and misaligned): the fast
// kernels agree with the references, NaN of either sign and any payload stays NaN, and the
// saturated limits are exact. Under clang's UBSan this is also the test that NaN never reaches
// hn::Exp/Expm1 (their float->int conversion is undefined behaviour for NaN on EMU128/SCALAR).
TEST_CASE("sigmoid and tanh special inputs: NaN, infinities, huge, subnormal, signed zero") {
  volatile float zero = 0.0f;
  const float default_nan = zero / zero;  // x86: sign bit set
  const float payload_nan = std::bit_cast<float>(0x7fc12345u);
  const float fmax = std::numeric_limits<float>::max();
  const float denorm = std::numeric_limits<float>::denorm_min();
  const float fmin = std::numeric_limits<float>::min();
  const std::vector<float> specials = {kNaN,   -kNaN,   default_nan, payload_nan,  // NaN
                                       kInf,   -kInf,   1e30f,       -1e30f,       // huge
                                       fmax,   -fmax,   3e38f,       -3e38f,
                                       105.0f, -105.0f, 0.0f,        -0.0f,
                                       denorm, -denorm, 1e-40f,      -1e-40f,  // subnormal
                                       fmin,   -fmin,   0.5f,        -2.0f};
  const size_t k = specials.size();

  // The references define the contract: NaN in, NaN out.
  for (float v : {kNaN, -kNaN, default_nan, payload_nan}) {
    float s, t;
    sigmoid_forward_ref(1, &v, &s);
    tanh_forward_ref(1, &v, &t);
    CHECK(std::isnan(s));
    CHECK(std::isnan(t));
  }

  test::for_each_simd_target([&](const std::string&) {
    for (size_t n : kKernelLengths) {
      if (n == 0 || n > 127) continue;
      for (size_t shift = 0; shift < k; ++shift) {
        std::vector<float> x(n);
        for (size_t i = 0; i < n; ++i) x[i] = specials[(i + shift) % k];
        CAPTURE(n);
        CAPTURE(shift);
        const size_t offset = shift % 4;
        check_unary(sigmoid_forward, sigmoid_forward_ref, x, offset, 4, 1e-37f);
        check_unary(tanh_forward, tanh_forward_ref, x, offset, 4, 0.0f);
      }
    }

    std::vector<float> s(k), t(k);
    sigmoid_forward(k, specials.data(), s.data());
    tanh_forward(k, specials.data(), t.data());
    for (size_t i = 0; i < k; ++i) {
      const float v = specials[i];
      CAPTURE(v);
      if (std::isnan(v)) {
        CHECK(std::isnan(s[i]));
        CHECK(std::isnan(t[i]));
      } else if (std::fabs(v) >= 105.0f) {
        // Saturated: exactly 1 / 0 and +-1.
        CHECK(s[i] == (v > 0.0f ? 1.0f : 0.0f));
        CHECK(t[i] == (v > 0.0f ? 1.0f : -1.0f));
      } else if (std::fabs(v) < 1e-30f) {
        // Zero, subnormal, FLT_MIN: sigmoid is 1/2, tanh(x) = x (sign of zero included).
        CHECK(s[i] == 0.5f);
        CHECK(std::bit_cast<uint32_t>(t[i]) == std::bit_cast<uint32_t>(v));
      }
    }
  });
}

TEST_CASE("sigmoid and tanh backward match the reference on every target") {
  // Same expression and operation order as the reference, no FMA: identical bits expected;
  // 1 ULP allowed in case a compiler contracts the reference.
  sweep_binary(sigmoid_backward, sigmoid_backward_ref, 0.0f, 1.0f, 1);
  sweep_binary(tanh_backward, tanh_backward_ref, -1.0f, 1.0f, 1);
}

TEST_CASE("activation reference backwards agree with central differences") {
  check_backward_against_differences(sigmoid_forward_ref, sigmoid_backward_ref);
  check_backward_against_differences(tanh_forward_ref, tanh_backward_ref);
  // ReLU away from the kink (|x| >= 0.1 > h).
  for (float x : {-2.0f, -0.1f, 0.1f, 3.0f}) {
    float y, dx;
    const float one = 1.0f;
    relu_forward_ref(1, &x, &y);
    relu_backward_ref(1, &y, &one, &dx);
    CHECK(dx == doctest::Approx(central_difference(relu_forward_ref, x, 1e-2f)));
  }
}

}  // namespace test_activation_kernels
}  // namespace simdnn
