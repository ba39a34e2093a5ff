#!/usr/bin/env bash
# Sets up a fresh machine (apt packages), builds simdnn in Release and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
build_dir=${SIMDNN_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" "$@"
