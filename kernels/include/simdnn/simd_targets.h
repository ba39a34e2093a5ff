// Which SIMD instruction sets the kernels can run on, and (for tests and benchmarks) forcing one.
// The kernels are compiled once per target (Highway) and pick the best one the CPU supports at
// run time; nothing here is needed in normal use.
#pragma once

#include <string>
#include <vector>

namespace simdnn {

// Names of the targets that are both compiled in and supported by this CPU, best first,
// e.g. {"AVX3", "AVX2", "SSE4", "SSSE3", "EMU128"}.
std::vector<std::string> available_simd_targets();

// Name of the target the kernels dispatch to right now.
std::string current_simd_target();

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
