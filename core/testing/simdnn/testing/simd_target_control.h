// Test and benchmark support, not installed: forcing the SIMD target every kernel dispatches
// to, so each fast path can be checked against its scalar reference on every target the CPU
// supports. Implemented in core (simd_targets.cc), next to the query functions.
#pragma once

#include <string>

#include "simdnn/simd_targets.h"

namespace simdnn {

// Makes every kernel dispatch to `name` (one of available_simd_targets()); an empty name
// restores the automatic choice. Process-wide: not for use while kernels run on other threads.
// Throws std::invalid_argument for an unknown or unsupported name.
void force_simd_target(const std::string& name);

// Forces a target for the lifetime of the object, then restores the automatic choice.
class ScopedSimdTarget {
 public:
  explicit ScopedSimdTarget(const std::string& name) { force_simd_target(name); }
  ~ScopedSimdTarget() { force_simd_target(""); }
  ScopedSimdTarget(const ScopedSimdTarget&) = delete;
  ScopedSimdTarget& operator=(const ScopedSimdTarget&) = delete;
};

}  // namespace simdnn
