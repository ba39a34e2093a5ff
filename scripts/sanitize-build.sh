# Sourced by scripts/test-sanitizers.sh (address mode) and scripts/fuzz.sh: the one clang build
# with ASan + UBSan + libFuzzer coverage (-DSIMDNN_FUZZ=ON) that runs both the test suite and the
# fuzz targets, so CI compiles the project under sanitizers once, not twice.
#
# Defines sanitize_build_configure, which configures $sanitize_build_dir (default build-sanitize,
# or SIMDNN_SANITIZE_BUILD_DIR). Both scripts configure with exactly these arguments, so the
# second finds the build up to date and compiles only the targets it adds.

sanitize_build_dir=${SIMDNN_SANITIZE_BUILD_DIR:-build-sanitize}

# Every Highway target but the best one this CPU runs (and the portable baseline, which cannot
# be left out): the kernels are the same source for every target, so the sanitizers learn
# nothing more from the others, and each costs a full compile of every kernel under ASan (most
# of this build's time). The Release build (scripts/test.sh) compiles all of them and tests each
# against the scalar references.
skipped_simd_targets() {
  local flags best skip=()
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  if [[ $flags == *" avx512f "* && $flags == *" avx512bw "* && $flags == *" avx512dq "* &&
        $flags == *" avx512vl "* ]]; then
    best=AVX3
  elif [[ $flags == *" avx2 "* && $flags == *" fma "* && $flags == *" bmi2 "* ]]; then
    best=AVX2
  elif [[ $flags == *" sse4_2 "* ]]; then
    best=SSE4
  else
    best=SSSE3
  fi
  local t
  for t in AVX3_DL AVX3 AVX2 SSE4 SSSE3; do
    [[ $t == "$best" ]] || skip+=("$t")
  done
  local IFS=','
  echo "${skip[*]}"
}

sanitize_build_configure() {
  # -O1 for the modules that compute (core, kernels, optim, nn, io: the tests' run time), -O0
  # for the rest (serving, store, tools, tests, fuzz targets): clang with ASan spends about twice
  # the CPU at -O1 on Beast, nlohmann::json, CLI11 and doctest code, and this build is most of
  # CI's time. -g1: readable stack traces.
  # Without MPI: Open MPI's own allocations would fill LeakSanitizer's report, and this also
  # keeps the build without MPI compiled and tested.
  cmake -S . -B "$sanitize_build_dir" -DCMAKE_CXX_COMPILER=clang++ -DSIMDNN_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O0 -g1" -DSIMDNN_COMPUTE_MODULE_FLAGS=-O1 \
    -DSIMDNN_BUILD_TESTS=ON -DSIMDNN_BUILD_BENCH=OFF -DSIMDNN_BUILD_TOOLS=ON -DSIMDNN_INSTALL=OFF \
    -DSIMDNN_MPI=OFF \
    "-DSIMDNN_SKIP_SIMD_TARGETS=$(skipped_simd_targets)"
}
