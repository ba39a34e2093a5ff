#!/usr/bin/env bash
# ctest deb_packages (fixture for deb_lintian and deb_install): `cpack -G DEB` on the Release
# build as it is (no rebuild), then checks what went into each package.
#   build_packages.sh BUILD_DIR OUT_DIR
# Exit 77 (ctest: skipped) without dpkg-shlibdeps (Debian package dpkg-dev) or file, which
# CPack needs to compute the dependencies (scripts/setup.sh --test installs both).
set -euo pipefail
build=$1 out=$2
for tool in dpkg-shlibdeps file; do
  if ! command -v $tool >/dev/null; then
    echo "SKIP: $tool not found (apt-get install dpkg-dev file, or scripts/setup.sh --test)"
    exit 77
  fi
done
rm -rf "$out"
mkdir -p "$out"
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$out/cpack" >"$out/cpack.log" 2>&1 || {
  cat "$out/cpack.log"
  echo "FAIL: cpack -G DEB"
  exit 1
}
mv "$out"/cpack/*.deb "$out"/
rm -rf "$out/cpack"

fail() { echo "FAIL: $*"; exit 1; }
one_file() {  # the single file matching a glob
  local matches=("$out"/$1)
  [[ ${#matches[@]} -eq 1 && -f ${matches[0]} ]] || fail "expected one $1 in $out, got: ${matches[*]}"
  echo "${matches[0]}"
}
tools_deb=$(one_file 'simdnn_*.deb')
dev_deb=$(one_file 'libsimdnn-dev_*.deb')
ls -l "$out"/*.deb

field() { dpkg-deb --field "$1" "$2"; }
[[ $(field "$tools_deb" Package) == simdnn ]] || fail "$tools_deb: Package is not simdnn"
[[ $(field "$dev_deb" Package) == libsimdnn-dev ]] || fail "$dev_deb: Package is not libsimdnn-dev"
for deb in "$tools_deb" "$dev_deb"; do
  for f in Version Maintainer Description Section Homepage Architecture; do
    [[ -n $(field "$deb" $f) ]] || fail "$deb: no $f field"
  done
done
# dpkg-shlibdeps ran: the tools depend on the C library and the libraries they link.
depends=$(field "$tools_deb" Depends)
echo "simdnn Depends: $depends"
for lib in libc6 libgomp1 libssl3; do
  [[ $depends == *"$lib"* ]] || fail "$tools_deb: Depends lacks $lib: $depends"
done

contents() { dpkg-deb --fsys-tarfile "$1" | tar -t | sed 's|^\./|/|'; }
contents "$tools_deb" >"$out/simdnn.files"
contents "$dev_deb" >"$out/libsimdnn-dev.files"
expect() {  # expect LIST PATH...
  local list=$1
  shift
  for p in "$@"; do grep -qxF "$p" "$out/$list" || fail "$list lacks $p"; done
}
expect simdnn.files /usr/bin/simdnn-train /usr/bin/simdnn-predict /usr/bin/simdnn-serve \
  /usr/bin/simdnn-export-data /usr/bin/simdnn-promote \
  /usr/lib/systemd/system/simdnn-serve.service /usr/share/simdnn/systemd/simdnn-serve.service \
  /usr/share/simdnn/systemd/simdnn-serve.default /usr/share/doc/simdnn/copyright \
  /usr/share/doc/simdnn/changelog.Debian.gz /usr/share/doc/simdnn/README.md
expect libsimdnn-dev.files /usr/include/simdnn/tensor.h /usr/include/simdnn/model.h \
  /usr/share/doc/libsimdnn-dev/copyright /usr/share/doc/libsimdnn-dev/changelog.Debian.gz
grep -q '^/usr/lib/.*libsimdnn_core\.a$' "$out/libsimdnn-dev.files" || fail "libsimdnn-dev lacks libsimdnn_core.a"
grep -q '^/usr/lib/.*cmake/simdnn/simdnnConfig\.cmake$' "$out/libsimdnn-dev.files" ||
  fail "libsimdnn-dev lacks simdnnConfig.cmake"
# Each file in exactly one package, and no build-tree names or test binaries shipped.
dup=$(sort "$out/simdnn.files" "$out/libsimdnn-dev.files" | grep -v '/$' | uniq -d)
[[ -z $dup ]] || fail "files in both packages: $dup"
! grep -E '^/usr/bin/(train|predict|serve|export-data|promote)$|/tests/' "$out/simdnn.files" || fail "unexpected files in simdnn"
echo "PASS: $(basename "$tools_deb") and $(basename "$dev_deb")"
