#!/usr/bin/env python3
"""The cost model of docs/distributed.md: predicted seconds per epoch of train --distributed for
N processes on separate machines, from the compute time measured on this machine.

epoch(N, B) = steps(B) * (compute(B / N) + exchange(N))
  steps(B)     = ceil(60000 / B)                         (Fashion-MNIST's training set)
  compute(b)   = seconds per step of one process on b rows (forward, backward, Adam),
                 interpolated in log(b) between the measured points given
  exchange(N)  = 2 (N - 1) / N * 407,080 bytes / bandwidth + 2 (N - 1) * latency
                 (ring allreduce; train's all-to-all + all-gather moves the same bytes in the
                 same number of rounds)

Usage: distributed_cost_model.py ROWS=SECONDS_PER_STEP ...   e.g. 256=0.0034 128=0.0019
"""
import math
import sys

GRADIENT_BYTES = 101_770 * 4
SAMPLES = 60_000
LINKS = {"10 Gbit/s": (10e9 / 8, 25e-6), "100 Gbit/s": (100e9 / 8, 3e-6)}


def compute(points, rows):
    xs = sorted(points)
    if rows <= xs[0]:  # below the measured: cost per row held (optimistic; marked * in the table)
        return points[xs[0]] * rows / xs[0]
    if rows >= xs[-1]:
        return points[xs[-1]] * rows / xs[-1]
    for lo, hi in zip(xs, xs[1:]):
        if lo <= rows <= hi:
            t = (math.log(rows) - math.log(lo)) / (math.log(hi) - math.log(lo))
            return points[lo] + t * (points[hi] - points[lo])
    raise AssertionError


def exchange(n, bandwidth, latency):
    if n == 1:
        return 0.0
    return 2 * (n - 1) / n * GRADIENT_BYTES / bandwidth + 2 * (n - 1) * latency


def main():
    points = {int(k): float(v) for k, v in (a.split("=") for a in sys.argv[1:])}
    print("| N | global batch B | rows per process | steps | compute s/epoch | "
          "exchange s/epoch at 10 / 100 Gbit/s | epoch s at 10 / 100 Gbit/s | speed-up at 10 / 100 |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (1, 2, 4, 8, 16, 32, 64):
        for batch in sorted({256, 1024, 128 * n}):
            if batch < n:
                continue
            steps = math.ceil(SAMPLES / batch)
            c = steps * compute(points, batch / n)
            base = math.ceil(SAMPLES / batch) * compute(points, batch)
            cells = []
            for bw, lat in LINKS.values():
                e = steps * exchange(n, bw, lat)
                cells.append((e, c + e, base / (c + e)))
            mark = "*" if batch / n < min(points) else ""
            print(f"| {n} | {batch} | {batch / n:g}{mark} | {steps} | {c:.3f} | "
                  f"{cells[0][0]:.3f} / {cells[1][0]:.3f} | {cells[0][1]:.3f} / {cells[1][1]:.3f} | "
                  f"{cells[0][2]:.2f} / {cells[1][2]:.2f} |")


if __name__ == "__main__":
    main()
