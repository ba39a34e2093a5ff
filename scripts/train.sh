#!/usr/bin/env bash
# Sets up a fresh machine, builds simdnn and trains the default model: the Keras MNIST example
# (784-128-10, Adam, batch 32, 5 epochs) on Fashion-MNIST. Extra arguments go to tools/train.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build_dir=${SIMDNN_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$(nproc)" --target train
mkdir -p models
"$build_dir"/tools/train --out models/fashion_mlp.safetensors "$@"
