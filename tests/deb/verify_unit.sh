#!/usr/bin/env bash
# ctest systemd_unit_verify: `systemd-analyze verify` accepts deploy/systemd/simdnn-serve.service.
#   verify_unit.sh UNIT SERVE_BINARY WORK_DIR
# The unit's ExecStart names simdnn-serve without a directory (systemd looks it up in
# /usr/local/bin, /usr/bin, ...); verify checks that the command exists, so the copy verified
# here points at the built binary instead. Everything else is the unit as shipped.
# Exit 77 (ctest: skipped) without systemd-analyze (Debian package systemd; setup.sh --test).
set -euo pipefail
unit=$1 serve=$2 work=$3
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze not found (apt-get install systemd, or scripts/setup.sh --test)"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
grep -q '^ExecStart=simdnn-serve ' "$unit" || { echo "FAIL: $unit: ExecStart does not run simdnn-serve"; exit 1; }
sed "s|^ExecStart=simdnn-serve |ExecStart=$serve |" "$unit" > "$work/simdnn-serve.service"
# --man=no: the man: link is to the page the package installs, not present here. verify exits 0
# on an unknown key or a bad value (it only logs them), so any message at all fails the test.
if ! out=$(systemd-analyze verify --man=no "$work/simdnn-serve.service" 2>&1) || [[ -n $out ]]; then
  echo "FAIL: systemd-analyze verify $unit:"
  echo "$out"
  exit 1
fi
# The exposure score (docs/deploy.md quotes it); informational, the verify above is the check.
systemd-analyze security --offline=true "$work/simdnn-serve.service" | tail -n 1 || true
rm -rf "$work"
echo "PASS: systemd-analyze verify $unit"
