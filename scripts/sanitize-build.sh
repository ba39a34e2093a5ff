# Sourced by scripts/test-sanitizers.sh (address mode) and scripts/fuzz.sh: the one clang build
# with ASan + UBSan + libFuzzer coverage (-DSIMDNN_FUZZ=ON) that runs both the test suite and the
# fuzz targets, so CI compiles the project under sanitizers once, not twice.
#
# Defines sanitize_build_configure, which configures $sanitize_build_dir (default build-sanitize,
# or SIMDNN_SANITIZE_BUILD_DIR). Both scripts configure with exactly these arguments, so the
# second finds the build up to date and compiles only the targets it adds.

sanitize_build_dir=${SIMDNN_SANITIZE_BUILD_DIR:-build-sanitize}

# The Highway targets this CPU cannot run (AVX-512 without avx512f, AVX3_DL without its VNNI,
# VBMI2, VPCLMULQDQ... family), and SSSE3, which no machine with SSE4 ever dispatches to: the
# kernels are the same source for every target, so compiling targets that never run here only
# costs time. The Release build (scripts/test.sh) compiles and tests them all.
skipped_simd_targets() {
  local skip=(SSSE3)
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  if [[ $flags != *" avx512f "* ]]; then
    skip+=(AVX3 AVX3_DL)
  elif [[ $flags != *" avx512vnni "* || $flags != *" avx512vbmi2 "* ]]; then
    skip+=(AVX3_DL)
  fi
  local IFS=';'
  echo "${skip[*]}"
}

sanitize_build_configure() {
  # -O1: fast enough to compile and to run the training tests, with readable stack traces.
  cmake -S . -B "$sanitize_build_dir" -DCMAKE_CXX_COMPILER=clang++ -DSIMDNN_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" \
    -DSIMDNN_BUILD_TESTS=ON -DSIMDNN_BUILD_BENCH=OFF -DSIMDNN_BUILD_TOOLS=ON -DSIMDNN_INSTALL=OFF \
    "-DSIMDNN_SKIP_SIMD_TARGETS=$(skipped_simd_targets)"
}
