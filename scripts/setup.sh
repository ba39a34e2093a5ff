#!/usr/bin/env bash
# Installs everything simdnn needs to build, test and train, from Debian's packages.
# Idempotent: packages already present are skipped, so a second run costs a dpkg query.
set -euo pipefail

packages=(
  build-essential cmake pkg-config python3
  libhwy-dev libbenchmark-dev doctest-dev libstb-dev libjpeg62-turbo-dev zlib1g-dev
  libcli11-dev nlohmann-json3-dev prometheus-cpp-dev
  # serving/: Boost.Beast and Asio (header-only) and OpenSSL for TLS.
  libboost1.81-dev libssl-dev
  # store/: the prediction store (SQLite); deploy/: promtool for the alert-rule tests and the
  # Prometheus server the monitoring test scrapes serve with.
  libsqlite3-dev prometheus
  dataset-fashion-mnist
  # Fuzzing (scripts/fuzz.sh: libFuzzer, ASan, UBSan) and the TSan build: clang with its
  # sanitizer runtimes and LLVM's OpenMP runtime.
  clang libclang-rt-14-dev libomp-14-dev
)
# Bench-only comparisons (optional; the build works without them).
if [[ "${SIMDNN_BENCH_DEPS:-0}" == "1" ]]; then
  packages+=(libopenblas-dev libdnnl-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
