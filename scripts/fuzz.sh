#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang + ASan + UBSan in build-sanitize (the build
# scripts/test-sanitizers.sh runs the test suite in, see scripts/sanitize-build.sh) and runs each for
# a bounded time, starting from seed corpora that fuzz_seeds generates. Fails on any crash,
# leak, timeout, out-of-memory or sanitizer report; the reproducer is left in
# build-sanitize/artifacts/ (replay: build-sanitize/fuzz/fuzz_<name> <file>).
#
#   scripts/fuzz.sh [seconds per target, default 60]
#   FUZZ_TARGETS="idx image" scripts/fuzz.sh 30      only some targets (idx csv safetensors image
#                                                    request http)
#   FUZZ_JOBS=1 scripts/fuzz.sh                      one target at a time (default: nproc)
#   FUZZ_SEED=0 scripts/fuzz.sh 600                  a fresh random seed (default 1: CI's runs
#                                                    explore the same inputs from run to run)
#
# New inputs libFuzzer finds go to build-sanitize/corpus/<name>/ and are reused by the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
source scripts/sanitize-build.sh
build_dir=$sanitize_build_dir
targets=(${FUZZ_TARGETS:-idx csv safetensors image request http})
jobs=${FUZZ_JOBS:-$(nproc)}

./scripts/setup.sh --test
# Tools on: fuzz_request links serving's request parser (simdnn::serving), built only with the tools.
sanitize_build_configure
build_targets=(fuzz_seeds)
for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build "$build_dir" -j "$(nproc)" --target "${build_targets[@]}"

seeds="$build_dir/seeds"
rm -rf "$seeds"
"$build_dir/fuzz/fuzz_seeds" "$seeds"
mkdir -p "$build_dir/artifacts" "$build_dir/logs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
  local t=$1
  local corpus="$build_dir/corpus/$t"
  mkdir -p "$corpus"
  # First corpus dir is read and written; the seeds are only read. -timeout: one input taking
  # over 10 s is a bug; -rss_limit_mb: so is a run needing 2 GB.
  "$build_dir/fuzz/fuzz_$t" "$corpus" "$seeds/$t" \
    -max_total_time="$seconds" -seed="${FUZZ_SEED:-1}" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$build_dir/artifacts/$t-" \
    > "$build_dir/logs/$t.log" 2>&1
}

declare -A pids=()
failed=()
for t in "${targets[@]}"; do
  while ((${#pids[@]} >= jobs)); do
    wait -n || true
    for name in "${!pids[@]}"; do
      if ! kill -0 "${pids[$name]}" 2>/dev/null; then
        wait "${pids[$name]}" || failed+=("$name")
        unset "pids[$name]"
      fi
    done
  done
  echo "fuzz: $t for ${seconds}s" >&2
  run_one "$t" &
  pids[$t]=$!
done
for name in "${!pids[@]}"; do
  wait "${pids[$name]}" || failed+=("$name")
done

for t in "${targets[@]}"; do
  log="$build_dir/logs/$t.log"
  # The last status line has the coverage; the final stats the run totals.
  status=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
  speed=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)
  printf 'fuzz_%-12s runs %-9s exec/s %-7s %s\n' "$t" "${runs:-?}" "${speed:-?}" \
    "$(sed -E "s/^#[0-9]+[[:space:]]+[A-Z_]+[[:space:]]+//" <<<"$status")" >&2
done
if ((${#failed[@]})); then
  for t in "${failed[@]}"; do
    echo "=== fuzz_$t FAILED; end of $build_dir/logs/$t.log:" >&2
    tail -60 "$build_dir/logs/$t.log" >&2
  done
  echo "fuzz: failures in ${failed[*]} (reproducers in $build_dir/artifacts/)" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s without a report" >&2
