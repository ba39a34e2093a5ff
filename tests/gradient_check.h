// Test support: a tape computation's analytic gradients against central finite differences,
// shared by the autograd tests and the training-feature tests (dropout, L2, class weights).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "simdnn/autograd.h"
#include "simdnn/layers.h"
#include "test_util.h"

namespace simdnn::test {

// A parameter of `shape` filled with uniform values in [lo, hi) from `seed`.
inline Parameter random_parameter(const char* name, const Shape& shape, uint64_t seed,
                                  float lo = -1.0f, float hi = 1.0f) {
  Parameter p(name, shape);
  auto v = random_floats(p.value.size(), seed, lo, hi);
  std::copy(v.begin(), v.end(), p.value.data());
  return p;
}

// Analytic gradients of the scalar built by `build` with respect to every parameter, checked
// against central differences (f(w+h) - f(w-h)) / 2h taken in double. The forward passes run
// in float, so h is large enough (1e-2) that rounding in the loss (~1e-7) stays far below the
// tolerance, and the O(h^2) truncation error is bounded by the tolerance too. `build` must be
// deterministic (a dropout mask from an Rng copied afresh on every call).
inline void check_gradients(const std::vector<Parameter*>& params,
                            const std::function<Var(Tape&)>& build, double h = 1e-2,
                            double tolerance = 2e-3) {
  Tape tape(1);
  for (Parameter* p : params) p->zero_grad();
  tape.backward(build(tape));
  std::vector<Tensor> analytic;
  for (Parameter* p : params) analytic.push_back(p->gradient().clone());

  auto eval = [&] {
    Tape t(1);
    return static_cast<double>(t.value(build(t))[0]);
  };
  for (size_t k = 0; k < params.size(); ++k) {
    Parameter& p = *params[k];
    CAPTURE(p.name);
    for (size_t i = 0; i < p.value.size(); ++i) {
      CAPTURE(i);
      const float saved = p.value[i];
      p.value[i] = saved + static_cast<float>(h);
      const double up = eval();
      p.value[i] = saved - static_cast<float>(h);
      const double down = eval();
      p.value[i] = saved;
      const double numeric = (up - down) / (2 * h);
      CHECK(std::abs(analytic[k][i] - numeric) <= tolerance * (1.0 + std::abs(numeric)));
    }
  }
}

}  // namespace simdnn::test
