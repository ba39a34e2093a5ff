#!/usr/bin/env bash
# Installs what simdnn needs from Debian's packages. Idempotent: packages already present are
# skipped, so a second run costs a dpkg query.
#
#   scripts/setup.sh          build and train (scripts/train.sh): compiler, CMake, the libraries,
#                             the data set
#   scripts/setup.sh --test   also the test, fuzzing and packaging extras (scripts/test.sh,
#                             test-sanitizers.sh, fuzz.sh, CI): clang with its sanitizer
#                             runtimes and libFuzzer, LLVM's OpenMP runtime, and what the .deb
#                             tests use (dpkg-dev, lintian, help2man, systemd-analyze), and
#                             Prometheus, HAProxy and socat for the deploy/ tests
#
# SIMDNN_BENCH_DEPS=1 adds the libraries the benchmarks compare against (optional).
set -euo pipefail

with_test=0
for arg in "$@"; do
  case $arg in
    --test) with_test=1 ;;
    -h | --help)
      sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup: unknown argument '$arg' (--test or nothing)" >&2
      exit 2
      ;;
  esac
done

packages=(
  build-essential cmake pkg-config python3
  libhwy-dev libbenchmark-dev doctest-dev libstb-dev libjpeg62-turbo-dev zlib1g-dev
  libcli11-dev nlohmann-json3-dev prometheus-cpp-dev
  # serving/: Boost.Beast and Asio (header-only) and OpenSSL for TLS.
  libboost1.81-dev libssl-dev
  # store/: the prediction store (SQLite).
  libsqlite3-dev
  # distributed/: data-parallel training on Open MPI (train --distributed; optional at build
  # time, built when found) and mpirun.
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist
)
if ((with_test)); then
  packages+=(
    # Fuzzing (scripts/fuzz.sh: libFuzzer, ASan, UBSan) and the TSan build: clang with its
    # sanitizer runtimes and LLVM's OpenMP runtime.
    clang libclang-rt-14-dev libomp-14-dev
    # deploy/: promtool for the alert-rule tests and the Prometheus server the monitoring test
    # scrapes serve with; HAProxy in front of serve replicas and socat for its runtime API (the
    # rolling-update test, deploy/rolling-update.sh). A deployment installs those two itself.
    prometheus haproxy socat
    # tests/deploy/check_k8s.py parses the Kubernetes manifests.
    python3-yaml
    # The Debian package tests (ctest -L deb): dpkg-shlibdeps (with file, which CPack uses to
    # find the binaries) computes the package's dependencies, help2man writes the man pages,
    # lintian checks the packages, systemd-analyze verifies the unit, curl talks to the server.
    dpkg-dev file help2man lintian systemd curl
  )
fi
# Bench-only comparisons (optional; the build works without them).
if [[ "${SIMDNN_BENCH_DEPS:-0}" == "1" ]]; then
  packages+=(libopenblas-dev libdnnl-dev)
  # bench/serve_load.sh: wrk, and the seed's stack it compares serve with (bench/flask_app.py:
  # Flask under gunicorn with PyTorch and prometheus_client). No test needs them.
  packages+=(wrk python3-flask gunicorn python3-torch python3-prometheus-client)
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
