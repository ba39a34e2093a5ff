#!/usr/bin/python3
"""The same training as tools/train's defaults, in PyTorch, timed the same way (training only).

784 -> Linear 128 ReLU -> Linear 10, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-7 as Keras),
cross-entropy on logits, Keras-style shuffling every epoch. Prints one JSON line per
(batch, threads) with the median epoch time, the OpenBLAS core that ran and its thread count.
Needs Debian's python3-torch (run with /usr/bin/python3, not a pyenv interpreter).

PyTorch at its best: flush-to-zero (torch.set_flush_denormal), and "threads" sets both ATen's
OpenMP threads and OpenBLAS's own pthreads (torch.set_num_threads leaves OpenBLAS on every
core: a "1-thread" run otherwise runs its GEMMs on 2). The OpenBLAS core is chosen by the
caller with OPENBLAS_CORETYPE (bench/compare_training.py tries each candidate of
bench/blas_cores.py and keeps the fastest).

usage: bench/pytorch_mlp.py [--data DIR] [--epochs N] [--batch 32 256] [--threads 1 2]
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import time

import numpy as np
import torch

from blas_cores import loaded_openblas


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise SystemExit(f"{d}: no {stem}[.gz]")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    x = read_idx(find(args.data, "train-images-idx3-ubyte")).reshape(-1, 784)
    y = read_idx(find(args.data, "train-labels-idx1-ubyte")).astype(np.int64)
    x = torch.from_numpy(x.astype(np.float32) / 255.0)
    y = torch.from_numpy(y)
    if not torch.set_flush_denormal(True):
        raise SystemExit("pytorch_mlp.py: flush-to-zero not supported on this CPU")
    blas = loaded_openblas()
    for threads in args.threads:
        torch.set_num_threads(threads)
        if blas is not None:
            blas.openblas_set_num_threads(threads)
        for batch in args.batch:
            torch.manual_seed(1)
            model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                        torch.nn.Linear(128, 10))
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
            loss_fn = torch.nn.CrossEntropyLoss()
            times = []
            for _ in range(args.epochs):
                perm = torch.randperm(x.shape[0])
                t0 = time.perf_counter()
                for s in range(0, x.shape[0], batch):
                    idx = perm[s:s + batch]
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(model(x[idx]), y[idx])
                    loss.backward()
                    opt.step()
                times.append(time.perf_counter() - t0)
            print(json.dumps({"framework": f"pytorch {torch.__version__}", "batch": batch,
                              "threads": threads, "median_epoch_seconds": statistics.median(times),
                              "epochs": args.epochs, "epoch_seconds": times,
                              "openblas_core": blas.openblas_get_corename().decode() if blas else None,
                              "openblas_threads": blas.openblas_get_num_threads() if blas else None,
                              "torch_threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
