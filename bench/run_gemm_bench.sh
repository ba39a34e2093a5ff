#!/usr/bin/env bash
# Runs bench_gemm for simdnn, OpenBLAS and oneDNN with repetitions and prints one table of
# median GFLOP/s and ratios. 1-thread runs share one process with randomly interleaved
# repetitions; 2-thread runs use one process per library (so idle spinning threads of one
# cannot slow another).
#
#   bench/run_gemm_bench.sh [build-dir] [repetitions] [extra benchmark args, e.g. --benchmark_min_time=0.5]
#
# Defaults: build-gemm next to this checkout, 5 repetitions. The build must have bench_gemm
# (cmake --build <build-dir> --target bench_gemm); if it also has bench_train, the GemmOnly
# epochs (the GEMMs of one training epoch) follow the table.
#
# OpenBLAS core: Debian's OpenBLAS picks its core at load time, not always the fastest, and a
# core the CPU cannot run crashes (SkylakeX on an AVX2-only CPU: SIGILL). So the candidates come
# from the CPU's flags (bench/blas_cores.py: SkylakeX/Haswell with AVX-512, Haswell/Zen with
# AVX2, ...), each is timed on four shapes, and the fastest (geometric mean) is used for the
# whole run; the core that actually ran is read back from OpenBLAS and printed with the table.
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE from the environment are overridden for these processes.
# SIMDNN_OPENBLAS_CORE=<name> skips the probe.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-$here/../build-gemm}"
reps="${2:-5}"
shift $(( $# > 2 ? 2 : $# ))
exe="$build/bench/bench_gemm"
[[ -x "$exe" ]] || { echo "run_gemm_bench.sh: $exe not found; build target bench_gemm first" >&2; exit 1; }

out="$build/gemm_bench_results"  # the raw JSON stays here
mkdir -p "$out"
rm -f "$out"/*.json
unset OPENBLAS_L2_SIZE

libs=(simdnn)
listing="$("$exe" --benchmark_list_tests=true 2>/dev/null)"
printf '%s\n' "$listing" >"$out/benchmarks.txt"  # the table follows this order
grep -q '^openblas/' <<<"$listing" && libs+=(openblas)
grep -q '^onednn/' <<<"$listing" && libs+=(onednn)

cpu="$(python3 "$here/blas_cores.py" --cpu)"
if [[ " ${libs[*]} " == *" openblas "* ]]; then
  if [[ -n "${SIMDNN_OPENBLAS_CORE:-}" ]]; then
    best_core="$SIMDNN_OPENBLAS_CORE"
  else
    best_core="" best_gf=0
    for core in $(python3 "$here/blas_cores.py"); do
      OPENBLAS_CORETYPE=$core OPENBLAS_NUM_THREADS=1 "$exe" \
        --benchmark_filter='^openblas/(sq256|fwd1_XW1_B256|bwd1_dW1_B32|fwd2_HW2_B256)/threads:1/' \
        --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
        --benchmark_min_time=0.05 --benchmark_out="$out/probe_$core.json.tmp" \
        --benchmark_out_format=json >/dev/null 2>"$out/probe_$core.err" || {
          echo "OpenBLAS core $core failed on this CPU; skipped" >&2; continue; }
      read -r ran gf < <(python3 - "$out/probe_$core.json.tmp" <<'PY'
import json, math, sys
doc = json.load(open(sys.argv[1]))
g = [b["GFLOPS"] for b in doc["benchmarks"] if b.get("aggregate_name") == "median"]
print(doc["context"].get("openblas_core", "?"), math.exp(sum(map(math.log, g)) / len(g)))
PY
      )
      echo "OpenBLAS core $core (ran: $ran): $gf GFLOP/s (geometric mean, 4 shapes, 1 thread)" >&2
      [[ "${ran,,}" == "${core,,}" ]] || { echo "  asked for $core but $ran ran; skipped" >&2; continue; }
      if python3 -c "import sys; sys.exit(0 if $gf > $best_gf else 1)"; then
        best_core=$core best_gf=$gf
      fi
    done
  fi
  [[ -n "$best_core" ]] && export OPENBLAS_CORETYPE="$best_core"
  echo "using OpenBLAS core ${best_core:-default}" >&2
fi

run() {  # run <json name> <OPENBLAS_NUM_THREADS> <filter> [args...]
  local name="$1" blas_threads="$2" filter="$3"
  shift 3
  OPENBLAS_NUM_THREADS=$blas_threads "$exe" --benchmark_filter="$filter" \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.2 --benchmark_out="$out/$name.json" --benchmark_out_format=json \
    "$@" "${extra[@]}" >/dev/null 2>"$out/$name.err" || { cat "$out/$name.err" >&2; exit 1; }
}
extra=("$@")
# One thread: all libraries in one process with repetitions randomly interleaved, so a burst of
# load on this shared machine hits every library alike.
echo "running 1-thread benchmarks, all libraries interleaved ($reps repetitions)..." >&2
run t1 1 '/threads:1/' --benchmark_enable_random_interleaving=true
# Two threads: one process per library. OpenBLAS starts its pthreads at load time; keep them
# out of the other libraries' runs.
for lib in "${libs[@]}"; do
  echo "running $lib, 2 threads ($reps repetitions)..." >&2
  blas_threads=1
  [[ "$lib" == openblas ]] && blas_threads=2
  run "t2_$lib" "$blas_threads" "^$lib/.*/threads:2/"
done

python3 - "$out" "$cpu" <<'PY'
import glob, json, os, re, sys
out = sys.argv[1]
gf = {}      # (lib, shape, threads) -> median GFLOP/s
gf_cpu = {}  # the same over CPU time
order = []   # (shape, threads) in benchmark order
ctx = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    with open(path) as f:
        doc = json.load(f)
    ctx.update({k: v for k, v in doc["context"].items() if k in ("simdnn_target", "openblas_core")})
    for b in doc["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        m = re.match(r"(\w+)/([^/]+)/threads:(\d+)", b["run_name"])
        lib, key = m.group(1), (m.group(2), int(m.group(3)))
        gf[(lib,) + key] = b["GFLOPS"]
        # The same rate over CPU time: on a shared machine a 1-thread run descheduled by
        # someone else's job loses wall time but not CPU time.
        gf_cpu[(lib,) + key] = b["GFLOPS"] * b["real_time"] / b["cpu_time"]
        if lib == "simdnn" and key not in order:
            order.append(key)
with open(os.path.join(out, "benchmarks.txt")) as f:
    rank = {}
    for line in f:
        parts = line.strip().split("/")
        if len(parts) >= 2:
            rank.setdefault(parts[1], len(rank))
order.sort(key=lambda st: (rank.get(st[0], len(rank)), st[1]))
print("CPU: %s   load average: %.2f" % (sys.argv[2], os.getloadavg()[0]))
print("simdnn target: %s   OpenBLAS core: %s" % (ctx.get("simdnn_target", "?"),
                                                 ctx.get("openblas_core", "n/a")))
head = ["shape", "thr", "simdnn", "OpenBLAS", "oneDNN", "vs OpenBLAS", "vs oneDNN",
        "vs oneDNN (CPU time)", "2thr/1thr"]
rows = []
for shape, t in order:
    ours = gf.get(("simdnn", shape, t))
    ob = gf.get(("openblas", shape, t))
    dn = gf.get(("onednn", shape, t))
    one = gf.get(("simdnn", shape, 1))
    fmt = lambda x: "-" if x is None else "%.1f" % x
    ratio = lambda a, b: "-" if a is None or not b else "%.2f" % (a / b)
    cpu = ratio(gf_cpu.get(("simdnn", shape, t)), gf_cpu.get(("onednn", shape, t))) if t == 1 else ""
    rows.append([shape, str(t), fmt(ours), fmt(ob), fmt(dn), ratio(ours, ob), ratio(ours, dn),
                 cpu, ratio(ours, one) if t > 1 else ""])
w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
line = lambda r: "| " + " | ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r)) + " |"
print(line(head))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print(line(r))
print("GFLOP/s are medians of the repetitions (wall time); ratios are simdnn / other, same run;")
print("'CPU time': the 1-thread ratio over CPU time instead, which a busy machine disturbs less.")
PY

# The GEMMs of one training epoch (bench_train GemmOnly), when that benchmark is built.
train="$build/bench/bench_train"
if [[ -x "$train" ]]; then
  echo "running bench_train GemmOnly ($reps repetitions)..." >&2
  "$train" --benchmark_filter='^GemmOnly/' --benchmark_repetitions="$reps" \
    --benchmark_report_aggregates_only=true --benchmark_min_time=0.5 \
    --benchmark_out="$out/gemm_only.json" --benchmark_out_format=json >/dev/null 2>&1 || true
  python3 - "$out/gemm_only.json" <<'PY'
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(0)
print("\nGemmOnly (one epoch's GEMMs, 60,000 samples): median ms per epoch")
for b in doc["benchmarks"]:
    if b.get("aggregate_name") == "median":
        name = b["run_name"].split("/min_time")[0]
        print("  %-32s %7.1f ms" % (name, b["real_time"]))
PY
fi
