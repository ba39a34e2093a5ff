#!/usr/bin/env python3
"""One table of simdnn's training epoch against PyTorch at its best on this machine.

Runs build/bench/bench_train (medians of --repetitions) and, when Debian's python3-torch is
installed, bench/pytorch_mlp.py with the same settings, then prints seconds per epoch,
samples/s, the GEMM / Adam / other split, and PyTorch's epoch on 1 and on 2 threads.

PyTorch at its best: flush-to-zero, its thread count applied to OpenBLAS too (see
pytorch_mlp.py), and the fastest OpenBLAS core for this CPU: every candidate core of
bench/blas_cores.py is run (OPENBLAS_CORETYPE set, OPENBLAS_L2_SIZE unset, for that process
only) and, for each batch and thread count, the core with the shortest median epoch is kept.
The speed-up column divides the faster of PyTorch's 1- and 2-thread epochs by simdnn's.

usage: bench/compare_training.py [--build build] [--repetitions 3] [--cores Haswell Zen]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import blas_cores  # noqa: E402


def run_simdnn(build, reps):
    exe = os.path.join(build, "bench", "bench_train")
    out = subprocess.run([exe, "--benchmark_format=json", f"--benchmark_repetitions={reps}",
                          "--benchmark_filter=^(Epoch/.*/gathered:1|GemmOnly/|AdamOnly/)",
                          "--benchmark_report_aggregates_only=true"],
                         check=True, capture_output=True, text=True).stdout
    medians = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"].split("/min_time")[0]
        # The filter above keeps only what training runs (Epoch .../gathered:1).
        kind, batch, threads = name.split("/")[:3]
        medians[(kind, int(batch.split(":")[1]), int(threads.split(":")[1]))] = b["real_time"] / 1e3
    return medians


def run_pytorch(reps, cores):
    """{(batch, threads): (median s, core that ran)} for the fastest core of each case."""
    torch_py = "/usr/bin/python3"
    probe = subprocess.run([torch_py, "-c", "import torch"], capture_output=True)
    if probe.returncode != 0:
        return {}
    res = {}
    for core in cores:
        env = dict(os.environ, OPENBLAS_CORETYPE=core)
        env.pop("OPENBLAS_L2_SIZE", None)
        env.pop("OMP_NUM_THREADS", None)
        env.pop("OPENBLAS_NUM_THREADS", None)
        print(f"running PyTorch with OPENBLAS_CORETYPE={core}...", file=sys.stderr)
        # Streamed, so a run cut short (PyTorch's 2-thread epochs crawl on a busy machine)
        # still shows the cases it finished.
        proc = subprocess.Popen([torch_py, os.path.join(HERE, "pytorch_mlp.py"), "--epochs",
                                 str(reps)], stdout=subprocess.PIPE, text=True, env=env)
        for line in proc.stdout:
            r = json.loads(line)
            ran = r.get("openblas_core") or "?"
            if ran.lower() != core.lower():
                print(f"  asked for OpenBLAS core {core}, {ran} ran", file=sys.stderr)
            key = (r["batch"], r["threads"])
            t = r["median_epoch_seconds"]
            print(f"  batch {key[0]} threads {key[1]}: {t:.3f} s (core {ran})", file=sys.stderr)
            if key not in res or t < res[key][0]:
                res[key] = (t, ran)
        if proc.wait() != 0:
            raise SystemExit(f"pytorch_mlp.py failed with OPENBLAS_CORETYPE={core}")
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--cores", nargs="+", default=blas_cores.candidates(),
                    help="OpenBLAS cores to try for PyTorch (default: this CPU's candidates)")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    ours = run_simdnn(args.build, args.repetitions)
    for (kind, batch, threads), t in sorted(ours.items()):
        print(f"simdnn {kind} batch {batch} threads {threads}: {t:.3f} s", file=sys.stderr)
    torch = run_pytorch(args.repetitions, args.cores)
    print(f"CPU: {blas_cores.cpu_name()} ({blas_cores.simd_level()}), {os.cpu_count()} CPUs; "
          f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"medians of {args.repetitions} epochs; PyTorch: fastest of OpenBLAS cores "
          f"{', '.join(args.cores)}, flush-to-zero")
    print("| batch | threads | simdnn s/epoch | samples/s | GEMM s | Adam s | other s "
          "| PyTorch 1 thr s | PyTorch 2 thr s | speed-up vs PyTorch best |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for batch in (32, 256):
        t1 = torch.get((batch, 1))
        t2 = torch.get((batch, 2))
        best = min([t[0] for t in (t1, t2) if t], default=None)
        fmt = lambda t: f"{t[0]:.3f} ({t[1]})" if t else "n/a"
        for threads in (1, 2):
            epoch = ours.get(("Epoch", batch, threads))
            if epoch is None:
                continue
            gemm = ours.get(("GemmOnly", batch, threads), float("nan"))
            adam = ours.get(("AdamOnly", batch, threads), float("nan"))
            other = epoch - gemm - adam
            ratio = f"{best / epoch:.2f}x" if best else "n/a"
            print(f"| {batch} | {threads} | {epoch:.3f} | {60000 / epoch:,.0f} | {gemm:.3f} | "
                  f"{adam:.3f} | {other:.3f} | {fmt(t1)} | {fmt(t2)} | {ratio} |")
    if not torch:
        print("(python3-torch not installed: apt-get install python3-torch for the PyTorch column)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
