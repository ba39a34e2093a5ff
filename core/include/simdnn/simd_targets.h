// Which SIMD instruction sets the kernels can run on. The kernels are compiled once per target
// (Highway) and pick the best one the CPU supports at run time; nothing here is needed in
// normal use. Tests and benchmarks force a target with <simdnn/testing/simd_target_control.h>.
#pragma once

#include <string>
#include <vector>

namespace simdnn {

// Names of the targets that are both compiled in and supported by this CPU, best first,
// e.g. {"AVX3", "AVX2", "SSE4", "SSSE3", "EMU128"}.
std::vector<std::string> available_simd_targets();

// Name of the target the kernels dispatch to right now.
std::string current_simd_target();

}  // namespace simdnn
