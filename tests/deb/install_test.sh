#!/usr/bin/env bash
# ctest deb_install: the .deb as a user gets it. Installs simdnn_*.deb with apt-get on this
# machine, trains one epoch with simdnn-train, classifies an image with simdnn-predict, starts
# simdnn-serve on a free loopback port and gets a 200 from it, then purges the package and
# checks that nothing it installed under /usr is left.
#   install_test.sh DEB_DIR WORK_DIR       (DEB_DIR: the deb_packages fixture's output)
# Needs root or passwordless sudo (CI runs as root); otherwise, or when a simdnn package or
# simdnn-* tools are already on the machine (not ours to replace or remove), exits 77 (ctest:
# skipped) with the reason. The package is purged on every exit path, failures included.
set -euo pipefail
debs=$(realpath -m "$1") work=$(realpath -m "$2")

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

command -v curl >/dev/null || skip "curl not found (apt-get install curl, or scripts/setup.sh --test)"
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    skip "installing a package needs root or passwordless sudo"
  fi
fi
# "install ok installed" (not "not-installed") or removed with configuration files left.
if dpkg-query -W -f='${Status}' simdnn 2>/dev/null | grep -Eq ' (installed|config-files)$'; then
  skip "a simdnn package is already installed here; this test does not replace or remove it"
fi
for tool in simdnn-train simdnn-predict simdnn-serve simdnn-export-data simdnn-promote; do
  if [[ -e /usr/bin/$tool || -e /usr/local/bin/$tool ]]; then
    skip "$tool is already installed outside the package (/usr/bin or /usr/local/bin)"
  fi
done
deb=("$debs"/simdnn_*.deb)
[[ ${#deb[@]} -eq 1 && -f ${deb[0]} ]] || fail "expected one simdnn_*.deb in $debs"
deb=$(realpath "${deb[0]}")

rm -rf "$work"
mkdir -p "$work"
# Every directory the package brings, and whether it exists before: those that do not must be
# gone again after the purge.
dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n 's|^\./\(.*\)/$|/\1|p' | while read -r dir; do
  [[ -e $dir ]] || echo "$dir"
done >"$work/new_dirs"

# Every step has a deadline well inside ctest's TIMEOUT (900 s): ctest kills with SIGKILL, which
# would skip the purge below. Other apt users on the machine get 120 s to release dpkg's lock.
apt_get=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120)
installed=0
serve_pid=
cleanup() {
  local rc=$?
  if [[ -n $serve_pid ]]; then
    kill -KILL "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  if ((installed)); then
    echo "cleanup: purging simdnn"
    "${apt_get[@]}" remove --purge -y -qq simdnn >/dev/null 2>&1 || "${as_root[@]}" dpkg --purge simdnn || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "+ apt-get install $deb"
installed=1
"${apt_get[@]}" install -y -qq --no-install-recommends "$deb" >"$work/apt.log" 2>&1 ||
  { cat "$work/apt.log"; fail "apt-get install $deb"; }
dpkg -L simdnn >"$work/installed_files"
[[ $(command -v simdnn-train) == /usr/bin/simdnn-train ]] || fail "simdnn-train is not /usr/bin/simdnn-train"
simdnn-serve --version | grep -q '^simdnn-serve ' || fail "simdnn-serve --version"
for tool in simdnn-export-data simdnn-promote; do
  "$tool" --version | grep -q "^$tool " || fail "$tool --version"
done
if command -v systemd-analyze >/dev/null; then
  # The installed unit as it is: ExecStart resolves to /usr/bin/simdnn-serve.
  out=$(systemd-analyze verify --man=no /usr/lib/systemd/system/simdnn-serve.service 2>&1) ||
    fail "systemd-analyze verify: $out"
  [[ -z $out ]] || fail "systemd-analyze verify: $out"
fi

# A small MNIST-format set (28x28, 10 classes: class k lights rows 2k+3..2k+7) and one test
# image of class 4 as a PGM file.
python3 - "$work/data" "$work/class4.pgm" <<'PY'
import os, random, struct, sys
out, pgm = sys.argv[1], sys.argv[2]
os.makedirs(out)
rng = random.Random(7)
def image(label):
    return bytes(min(255, rng.randrange(60) + (180 if 2 * label + 3 <= i // 28 < 2 * label + 8 else 0))
                 for i in range(784))
for split, n in (("train", 2000), ("t10k", 200)):
    labels = [rng.randrange(10) for _ in range(n)]
    with open(f"{out}/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + b"".join(image(l) for l in labels))
    with open(f"{out}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(labels))
with open(pgm, "wb") as f:
    f.write(b"P5\n28 28\n255\n" + image(4))
PY

echo "+ simdnn-train --epochs 1"
(cd "$work" && timeout 300 simdnn-train --data "$work/data" --epochs 1 --class-names digits --json \
   --out "$work/model.safetensors" >"$work/train.out" 2>"$work/train.err") ||
  { cat "$work/train.err"; fail "simdnn-train"; }
grep -q '"event":"done"' "$work/train.out" || fail "simdnn-train printed no done event"
grep -q '^epoch 1/1 - 2000/2000 - ' "$work/train.err" || { cat "$work/train.err"; fail "no progress line on stderr"; }
acc=$(sed -n 's/.*"event":"done".*"test_accuracy":\([0-9.e-]*\).*/\1/p' "$work/train.out")
python3 -c "import sys; sys.exit(0 if float('$acc') > 0.9 else 1)" || fail "test accuracy $acc after one epoch"

echo "+ simdnn-predict"
timeout 60 simdnn-predict --model "$work/model.safetensors" --json --top-k 1 "$work/class4.pgm" >"$work/predict.out" ||
  fail "simdnn-predict"
grep -q '^{"class":4,' "$work/predict.out" || fail "simdnn-predict did not classify the class-4 image: $(cat "$work/predict.out")"

echo "+ simdnn-serve"
simdnn-serve --model "$work/model.safetensors" --host 127.0.0.1 --port 0 --threads 1 \
  >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
port=
for _ in $(seq 1 300); do  # up to 30 s to bind
  port=$(sed -n 's|^serve: listening on http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$work/serve.out")
  [[ -n $port ]] && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.err"; fail "simdnn-serve exited"; }
  sleep 0.1
done
[[ -n $port ]] || fail "simdnn-serve printed no listening line"
code=$(curl -s -o "$work/readyz" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/readyz")
[[ $code == 200 ]] || fail "GET /readyz: $code"
code=$(curl -s -o "$work/predict.json" -w '%{http_code}' --max-time 10 -X POST \
  -H 'Content-Type: image/x-portable-graymap' --data-binary "@$work/class4.pgm" \
  "http://127.0.0.1:$port/predict")
[[ $code == 200 ]] || fail "POST /predict: $code $(cat "$work/predict.json")"
kill -TERM "$serve_pid"
for _ in $(seq 1 300); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
wait "$serve_pid" || fail "simdnn-serve did not exit 0 after SIGTERM"
serve_pid=

echo "+ apt-get remove --purge simdnn"
"${apt_get[@]}" remove --purge -y -qq simdnn >"$work/apt.log" 2>&1 ||
  { cat "$work/apt.log"; fail "apt-get remove --purge simdnn"; }
installed=0
! dpkg-query -W -f='${Status}' simdnn 2>/dev/null | grep -Eq ' (installed|config-files)$' ||
  fail "simdnn is still installed or has configuration files left"
left=()
while read -r path; do
  [[ $path == /usr/* ]] || continue
  if [[ -d $path && ! -L $path ]]; then
    grep -qxF "$path" "$work/new_dirs" && left+=("$path")
  elif [[ -e $path || -L $path ]]; then
    left+=("$path")
  fi
done <"$work/installed_files"
((${#left[@]} == 0)) || fail "left under /usr after the purge: ${left[*]}"
echo "PASS: installed, trained, predicted, served, purged ($(wc -l <"$work/installed_files") paths)"
