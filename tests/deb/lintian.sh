#!/usr/bin/env bash
# ctest deb_lintian: lintian reports no errors on simdnn_*.deb and libsimdnn-dev_*.deb.
#   lintian.sh DEB_DIR
# Warnings are printed but do not fail (docs/deploy.md lists the ones left and why).
# Exit 77 (ctest: skipped) without lintian (Debian package lintian; setup.sh --test).
set -euo pipefail
debs=$1
if ! command -v lintian >/dev/null; then
  echo "SKIP: lintian not found (apt-get install lintian, or scripts/setup.sh --test)"
  exit 77
fi
files=("$debs"/simdnn_*.deb "$debs"/libsimdnn-dev_*.deb)
for f in "${files[@]}"; do [[ -f $f ]] || { echo "FAIL: no $f"; exit 1; }; done
# --fail-on error: warnings and pedantic tags are shown, only errors fail.
lintian --fail-on error --no-tag-display-limit --display-info "${files[@]}"
echo "PASS: lintian shows no errors on ${files[*]##*/}"
