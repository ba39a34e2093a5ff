#!/usr/bin/env bash
# Builds simdnn with sanitizers and runs the test suite under them (skipping the slow
# packaging tests, which rebuild the library without sanitizers anyway, and the HAProxy tests).
#
#   scripts/test-sanitizers.sh              ASan + UBSan (clang) in build-sanitize, the build
#                                           scripts/fuzz.sh reuses (what CI runs)
#   scripts/test-sanitizers.sh thread       ThreadSanitizer in build-tsan (clang + libomp +
#                                           Archer, see below; not part of CI)
#   extra arguments go to ctest, e.g. scripts/test-sanitizers.sh address -R gemm
#
# Any sanitizer report fails the test that triggered it: -fno-sanitize-recover=all and
# halt_on_error make every report fatal, and ctest sees the non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=address
if [[ $# -gt 0 && ( "$1" == address || "$1" == thread ) ]]; then mode=$1; shift; fi

./scripts/setup.sh --test
jobs=$(nproc)
# -O1: fast enough to compile (Highway builds every kernel once per SIMD target) and to run the
# training tests, while keeping stack traces readable.
common=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" -DSIMDNN_BUILD_BENCH=OFF)

if [[ $mode == address ]]; then
  # clang with libFuzzer's coverage as well (scripts/sanitize-build.sh): the fuzz targets then
  # come out of the same build, and CI compiles the project under sanitizers once.
  source scripts/sanitize-build.sh
  build_dir=$sanitize_build_dir
  sanitize_build_configure
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:abort_on_error=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  # libgomp is not built with TSan, so its barriers and task hand-offs look like races. The TSan
  # build uses clang with LLVM's libomp (libomp-14-dev) and loads the Archer OMPT tool, which
  # reports OpenMP's synchronisation to TSan; ignore_noninstrumented_modules hides libomp's own
  # mutex traffic (TSan's advice). The whole suite, tools included (serve's worker pool, the
  # train CLI, the fault tests), passes with no race reported. Not in CI, to keep CI's time
  # down (a third full library build); run `scripts/test-sanitizers.sh thread`.
  build_dir=${SIMDNN_TSAN_BUILD_DIR:-build-tsan}
  cmake -S . -B "$build_dir" "${common[@]}" -DSIMDNN_SANITIZE=thread \
    -DCMAKE_CXX_COMPILER=clang++ -DSIMDNN_BUILD_TOOLS=ON
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$PWD/scripts/tsan.supp}
  archer=$(ls /usr/lib/llvm-*/lib/libarcher.so 2>/dev/null | tail -1 || true)
  [[ -n $archer ]] && export OMP_TOOL_LIBRARIES=$archer
fi
cmake --build "$build_dir" -j "$jobs"
# Also skipped: the HAProxy rolling-update tests (label haproxy): 3 serve processes, HAProxy and
# Prometheus under load for ~15 s each, which the Release run covers; CI's time is better spent.
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" -LE 'packaging|haproxy' "$@"
