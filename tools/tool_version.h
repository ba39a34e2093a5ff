// --version for every tool: the simdnn version, the commit it was built from and the SIMD
// target the kernels will run on here (so a bug report or a slow machine says which code ran).
#pragma once

#include <string>

#include "build_info.h"  // generated: SIMDNN_VERSION_STRING, SIMDNN_GIT_COMMIT
#include "simdnn/simd_targets.h"

namespace simdnn::tools {

// Three lines, e.g. for tool "train":
//   simdnn-train 0.1.0
//   commit: 737e9c4f113d
//   simd target: AVX2 (available: AVX2 SSE4 SSSE3 EMU128)
// The target is the one Highway dispatches to on this CPU, i.e. what training and inference
// will use; "available" lists every target compiled in and supported here, best first.
inline std::string version_text(const std::string& tool) {
  std::string available;
  for (const std::string& target : simdnn::available_simd_targets()) {
    if (!available.empty()) available += ' ';
    available += target;
  }
  return "simdnn-" + tool + " " SIMDNN_VERSION_STRING "\ncommit: " SIMDNN_GIT_COMMIT
         "\nsimd target: " + simdnn::current_simd_target() + " (available: " + available + ")";
}

}  // namespace simdnn::tools
