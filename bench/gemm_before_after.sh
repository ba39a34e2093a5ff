#!/usr/bin/env bash
# Before/after of a kernel change on a busy machine: alternating runs of two bench_gemm
# binaries (e.g. one built from the parent commit), each running simdnn and oneDNN in one
# process with randomly interleaved repetitions, 1 thread. Prints per shape the median
# GFLOP/s and the ratio simdnn / oneDNN by CPU time and by wall time, before and after, with
# the load range seen. oneDNN in the same process is the yardstick that moves with the load.
#
#   bench/gemm_before_after.sh BEFORE_BENCH_GEMM AFTER_BENCH_GEMM [rounds=3] [reps=5] [shape regex]
set -euo pipefail
before=$1 after=$2 rounds=${3:-3} reps=${4:-5}
shapes=${5:-'(fwd1_XW1|bwd1_dW1|bwd1_dX|bwd2_dH)_B(32|256)'}
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  for w in before after; do
    exe=$before; [[ $w == after ]] && exe=$after
    cut -d' ' -f1 /proc/loadavg >>"$out/loads"
    OPENBLAS_NUM_THREADS=1 "$exe" --benchmark_filter="^(simdnn|onednn)/$shapes/threads:1" \
      --benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true \
      --benchmark_min_time=0.2 --benchmark_format=json 2>/dev/null >"$out/$w-$r.json"
  done
done
python3 - "$out" <<'PY'
import collections, glob, json, statistics as st, sys
out = sys.argv[1]
loads = [float(x) for x in open(f"{out}/loads")]
print(f"{open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}, "
      f"load {min(loads):.1f}-{max(loads):.1f}")
res = collections.defaultdict(lambda: collections.defaultdict(list))
for f in glob.glob(f"{out}/*.json"):
    w = f.rsplit("/", 1)[1].split("-")[0]
    for b in json.load(open(f))["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        lib, shape, _ = b["run_name"].split("/", 2)
        res[w][(shape, lib)].append((b["cpu_time"], b["real_time"], b["GFLOPS"]))
print("| shape | before GF/s simdnn / oneDNN | ratio CPU / wall | after GF/s | ratio CPU / wall |")
print("|---|---|---|---|---|")
for s in sorted({k[0] for k in res["after"]}):
    cells = [s]
    for w in ("before", "after"):
        a, o = res[w][(s, "simdnn")], res[w][(s, "onednn")]
        med = lambda v, i: st.median(x[i] for x in v)
        cells.append(f"{med(a, 2):.1f} / {med(o, 2):.1f}")
        cells.append(f"{med(o, 0) / med(a, 0):.2f} / {med(o, 1) / med(a, 1):.2f}")
    print("| " + " | ".join(cells) + " |")
PY
