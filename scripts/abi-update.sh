#!/bin/sh
# abi-update.sh [BUILD_DIR] - writes the ABI baseline abi/libchargan.so.0.abi
# from the library in BUILD_DIR (default build), which must have debug info
# (configure with -Dc_args=-g).  Run it when a release fixes the ABI, or after
# moving the SONAME; tests/integration/abi-check.sh compares against it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/deps.sh
. "$here/deps.sh"
chargan_need_packages abigail-tools

build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
lib=$build/libchargan/libchargan.so
if ! readelf -S "$lib" | grep -q '\.debug_info'; then
    echo "error: $lib has no debug info; reconfigure: meson setup --reconfigure -Dc_args=-g $build" >&2
    exit 1
fi
abidw --headers-dir "$root/include" --drop-private-types --no-show-locs --no-corpus-path \
    --no-comp-dir-path --type-id-style hash --out-file "$root/abi/libchargan.so.0.abi" "$lib"
echo "wrote abi/libchargan.so.0.abi ($(grep -c '<elf-symbol ' "$root/abi/libchargan.so.0.abi") symbols)"
