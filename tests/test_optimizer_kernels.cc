// Adam/AdamW and SGD momentum: fast against reference over several steps on every SIMD target,
// plus hand-computed steps.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "kernel_test_util.h"
#include "simdnn/optimizer_kernels.h"
#include "test_util.h"

namespace simdnn {
namespace test_optimizer_kernels {  // one per file: the test programs are unity builds

using test::kKernelLengths;
using test::kMisalignments;
using test::OffsetBuffer;

// Bias corrections for step t, hoisted in double as the optimizer layer does.
AdamStepParams adam_params(int t, float weight_decay) {
  AdamStepParams p;
  p.lr = 1e-2f;
  p.weight_decay = weight_decay;
  p.inv_bias1 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(p.beta1), t)));
  p.inv_bias2 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(p.beta2), t)));
  return p;
}

TEST_CASE("adam_step and AdamW match the reference over 10 steps on every target") {
  // The kernel is the reference expression with the moment updates fused (MulAdd): on FMA
  // targets each update skips the reference's rounding of beta*m (<= 2^-24 |beta*m|), and both
  // sides round the sum (2^-24 |m| each), so with |m| <= G = max|g| one step differs by at most
  // 3 * 2^-24 * G, and the differences decay (beta < 1) and add up over t steps. v likewise
  // with G^2. The weight step lr * m_hat / (sqrt(v_hat) + eps) inherits that through m_hat / s,
  // where s = sqrt(v_hat) >= ~0.3 G after a few steps: ~1e-5 relative of lr per step at most,
  // plus one ulp of w per step when the two updates round w differently.
  constexpr int kSteps = 10;
  constexpr float kG = 2.0f;  // gradients in [-2, 2]
  double worst_w = 0.0;
  test::for_each_simd_target([&](const std::string&) {
    for (float weight_decay : {0.0f, 0.1f}) {
      for (size_t n : kKernelLengths) {
        for (size_t offset : kMisalignments) {
          CAPTURE(weight_decay);
          CAPTURE(n);
          CAPTURE(offset);
          std::vector<float> w_ref = test::random_floats(n, n + 5), m_ref(n, 0.0f),
                             v_ref(n, 0.0f);
          OffsetBuffer w(n, offset), g(n, (offset + 1) % 4), m(n, (offset + 2) % 4),
              v(n, (offset + 3) % 4);
          w.assign(w_ref);
          m.assign(m_ref);
          v.assign(v_ref);
          float lr = 0.0f;
          for (int t = 1; t <= kSteps; ++t) {
            // Gradients change every step, with occasional exact zeros.
            std::vector<float> grad = test::random_floats(n, 100 * t + n, -kG, kG);
            for (size_t i = t; i < n; i += 11) grad[i] = 0.0f;
            g.assign(grad);
            const AdamStepParams p = adam_params(t, weight_decay);
            lr = p.lr;
            adam_step_ref(n, w_ref.data(), grad.data(), m_ref.data(), v_ref.data(), p);
            adam_step(n, w.data(), g.data(), m.data(), v.data(), p);
          }
          CHECK(w.guards_intact());
          CHECK(m.guards_intact());
          CHECK(v.guards_intact());
          const double tol_m = kSteps * 3 * 0x1p-24 * kG;
          const double tol_v = kSteps * 3 * 0x1p-24 * kG * kG;
          for (size_t i = 0; i < n; ++i) {
            CAPTURE(i);
            REQUIRE(std::fabs(m[i] - m_ref[i]) <= tol_m);
            REQUIRE(std::fabs(v[i] - v_ref[i]) <= tol_v);
            const double err_w = std::fabs(w[i] - w_ref[i]);
            REQUIRE(err_w <= kSteps * (lr * 1e-5 + 0x1p-23 * (std::fabs(w_ref[i]) + lr)));
            worst_w = std::max(worst_w, err_w);
          }
        }
      }
    }
  });
  MESSAGE("adam: worst |w - w_ref| after 10 steps = " << worst_w);
}

TEST_CASE("adam first step by hand: bias correction makes the step lr * sign(g)") {
  test::for_each_simd_target([](const std::string&) {
    // t = 1: m = (1-b1) g, v = (1-b2) g^2, m_hat = g, v_hat = g^2, so
    // w1 = w0 - lr * g / (|g| + eps), i.e. lr * sign(g) up to eps/|g|.
    const std::vector<float> g0 = {0.5f, -0.25f, 3.0f, -1e-3f, 0.0f, 2.0f, -2.0f, 1.0f, 0.125f};
    const size_t n = g0.size();
    std::vector<float> w(n, 1.0f), m(n, 0.0f), v(n, 0.0f);
    AdamStepParams p;
    p.lr = 1e-3f;
    p.inv_bias1 = 1.0f / (1.0f - p.beta1);
    p.inv_bias2 = 1.0f / (1.0f - p.beta2);
    adam_step(n, w.data(), g0.data(), m.data(), v.data(), p);
    for (size_t i = 0; i < n; ++i) {
      CAPTURE(i);
      const double g = g0[i];
      CHECK(m[i] == doctest::Approx(0.1 * g).epsilon(1e-6));
      CHECK(v[i] == doctest::Approx(0.001 * g * g).epsilon(1e-6));
      const double expected = 1.0 - 1e-3 * g / (std::fabs(g) + 1e-7);
      // Float w near 1 carries 6e-8 of rounding; the bias factors 1/(1-b) in float add ~1e-7
      // relative to the 1e-3 step.
      CHECK(std::fabs(w[i] - expected) <= 2e-7);
      if (g != 0.0) CHECK(std::fabs((1.0 - w[i]) - 1e-3 * (g > 0 ? 1 : -1)) <= 1e-3 * 1e-4 + 2e-7);
    }
    CHECK(w[4] == 1.0f);  // g = 0: m = 0, so no movement
  });
}

TEST_CASE("AdamW decay is decoupled: with zero gradient w shrinks by exactly (1 - lr*wd)") {
  test::for_each_simd_target([](const std::string&) {
    const size_t n = 37;
    std::vector<float> w = test::random_floats(n, 3), g(n, 0.0f), m(n, 0.0f), v(n, 0.0f);
    const std::vector<float> w0 = w;
    AdamStepParams p = adam_params(1, 0.5f);
    adam_step(n, w.data(), g.data(), m.data(), v.data(), p);
    const float factor = 1.0f - p.lr * p.weight_decay;
    for (size_t i = 0; i < n; ++i) CHECK(w[i] == w0[i] * factor);
  });
}

TEST_CASE("sgd_momentum_step: two steps by hand, and fast vs reference") {
  test::for_each_simd_target([](const std::string&) {
    // velocity1 = -lr*g1 = -0.05, w1 = 0.95;
    // velocity2 = 0.9*(-0.05) - 0.1*(-0.25) = -0.02, w2 = 0.93.
    std::vector<float> w(17, 1.0f), vel(17, 0.0f), g(17, 0.5f);
    sgd_momentum_step(w.size(), w.data(), g.data(), vel.data(), 0.1f, 0.9f);
    for (size_t i = 0; i < w.size(); ++i) {
      CHECK(vel[i] == doctest::Approx(-0.05).epsilon(1e-6));
      CHECK(w[i] == doctest::Approx(0.95).epsilon(1e-6));
    }
    std::fill(g.begin(), g.end(), -0.25f);
    sgd_momentum_step(w.size(), w.data(), g.data(), vel.data(), 0.1f, 0.9f);
    for (size_t i = 0; i < w.size(); ++i) {
      CHECK(vel[i] == doctest::Approx(-0.02).epsilon(1e-5));
      CHECK(w[i] == doctest::Approx(0.93).epsilon(1e-6));
    }

    for (size_t n : kKernelLengths) {
      for (size_t offset : kMisalignments) {
        CAPTURE(n);
        CAPTURE(offset);
        std::vector<float> w_ref = test::random_floats(n, n), vel_ref(n, 0.0f);
        OffsetBuffer wb(n, offset), gb(n, (offset + 1) % 4), vb(n, (offset + 2) % 4);
        wb.assign(w_ref);
        vb.assign(vel_ref);
        for (int step = 0; step < 3; ++step) {
          const std::vector<float> grad = test::random_floats(n, 50 + step);
          gb.assign(grad);
          sgd_momentum_step_ref(n, w_ref.data(), grad.data(), vel_ref.data(), 0.05f, 0.9f);
          sgd_momentum_step(n, wb.data(), gb.data(), vb.data(), 0.05f, 0.9f);
        }
        CHECK(wb.guards_intact());
        CHECK(vb.guards_intact());
        // FMA targets skip the reference's rounding of lr*g: <= 2^-24 |lr g| per step, plus
        // each side's rounding of velocity and w; |g| < 1, |velocity| < 0.15, |w| < 1.2.
        for (size_t i = 0; i < n; ++i) {
          REQUIRE(std::fabs(vb[i] - vel_ref[i]) <= 3 * 3 * 0x1p-24 * 0.15);
          REQUIRE(std::fabs(wb[i] - w_ref[i]) <= 3 * 2 * 0x1p-24 * 1.5);
        }
      }
    }
    // momentum 0 is plain SGD; velocity still holds -lr*g.
    std::vector<float> w1 = {2.0f}, v1 = {123.0f}, g1 = {4.0f};
    sgd_momentum_step(1, w1.data(), g1.data(), v1.data(), 0.5f, 0.0f);
    CHECK(v1[0] == -2.0f);
    CHECK(w1[0] == 0.0f);
  });
}

}  // namespace test_optimizer_kernels
}  // namespace simdnn
