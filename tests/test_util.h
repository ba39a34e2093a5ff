// Shared helpers for the doctest suite.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "simdnn/testing/simd_target_control.h"

namespace simdnn::test {

// Runs body() once per SIMD target compiled in and supported by this CPU, with the kernels
// forced to that target; the doctest CAPTURE names the target in any failure.
template <class Body>
void for_each_simd_target(const Body& body) {
  for (const std::string& target : available_simd_targets()) {
    ScopedSimdTarget scope(target);
    CAPTURE(target);
    body(target);
  }
}

// Deterministic uniform floats in [lo, hi).
inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace simdnn::test
