#!/usr/bin/env python3
"""One table of simdnn's training epoch against PyTorch on this machine.

Runs build/bench/bench_train (medians of --repetitions) and, when Debian's python3-torch is
installed, bench/pytorch_mlp.py with the same settings, then prints seconds per epoch,
samples/s, the GEMM / Adam / other split, and the PyTorch ratio.

usage: bench/compare_training.py [--build build] [--repetitions 3]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


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


def run_pytorch(reps):
    torch_py = "/usr/bin/python3"
    probe = subprocess.run([torch_py, "-c", "import torch"], capture_output=True)
    if probe.returncode != 0:
        return {}
    out = subprocess.run([torch_py, os.path.join(HERE, "pytorch_mlp.py"), "--epochs", str(reps)],
                         check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        r = json.loads(line)
        res[(r["batch"], r["threads"])] = r["median_epoch_seconds"]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--repetitions", type=int, default=3)
    args = ap.parse_args()
    ours = run_simdnn(args.build, args.repetitions)
    torch = run_pytorch(args.repetitions)
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print("| batch | threads | simdnn s/epoch | samples/s | GEMM s | Adam s | other s | PyTorch s/epoch | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch in (32, 256):
        for threads in (1, 2):
            epoch = ours.get(("Epoch", batch, threads))
            if epoch is None:
                continue
            gemm = ours.get(("GemmOnly", batch, threads), float("nan"))
            adam = ours.get(("AdamOnly", batch, threads), float("nan"))
            other = epoch - gemm - adam
            t = torch.get((batch, threads))
            ratio = f"{t / epoch:.1f}x" if t else "n/a"
            tcol = f"{t:.3f}" if t else "n/a"
            print(f"| {batch} | {threads} | {epoch:.3f} | {60000 / epoch:,.0f} | {gemm:.3f} | "
                  f"{adam:.3f} | {other:.3f} | {tcol} | {ratio} |")
    if not torch:
        print("(python3-torch not installed: apt-get install python3-torch for the PyTorch column)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
