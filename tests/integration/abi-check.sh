#!/bin/sh
# abi-check.sh LIBRARY HEADERS_DIR ABI_DIR
# Compares the built library with the committed ABI baseline
# ABI_DIR/libchargan.so.0.abi (written by scripts/abi-update.sh) with Debian's
# abigail-tools: both sides go through abidw with the same options (public
# types only, from HEADERS_DIR), then abidiff.  Added functions are fine, and
# so are members appended to the size-prefixed structs (abi-compat.py
# decides); anything else (a removed function, a changed signature, a moved
# member) fails unless the SONAME moved.  Exits 77 (skipped) when
# abigail-tools, the baseline or the library's debug info is missing.
set -u
lib=$1 headers=$2 abidir=$3
here=$(cd "$(dirname "$0")" && pwd)
baseline=$abidir/libchargan.so.0.abi

if ! command -v abidiff >/dev/null 2>&1 || ! command -v abidw >/dev/null 2>&1; then
    echo "abidw/abidiff not installed (Debian: abigail-tools): skipped"
    exit 77
fi
if [ ! -f "$baseline" ]; then
    echo "no ABI baseline $baseline yet (scripts/abi-update.sh writes it): skipped"
    exit 77
fi
if ! readelf -S "$lib" | grep -q '\.debug_info'; then
    echo "$lib has no debug info, so types cannot be compared; configure with -Dc_args=-g: skipped"
    exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/chargan-abi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# The same options as scripts/abi-update.sh.
abidw --headers-dir "$headers" --drop-private-types --no-show-locs --no-corpus-path \
    --no-comp-dir-path --type-id-style hash --out-file "$tmp/current.abi" "$lib" || exit 1

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
base_soname=$(sed -n "s/.*<abi-corpus [^>]*soname='\([^']*\)'.*/\1/p" "$baseline" | head -n 1)
echo "baseline SONAME: $base_soname; built SONAME: $soname"

abidiff --no-added-syms --no-show-locs "$baseline" "$tmp/current.abi" >"$tmp/report"
rc=$?
cat "$tmp/report"
if [ $rc -eq 0 ]; then
    echo "ABI identical to the baseline (functions may have been added)"
    exit 0
fi
if [ $((rc & 3)) -ne 0 ]; then
    echo "abidiff failed to run (status $rc)"
    exit 1
fi
if [ $rc -eq 4 ] && python3 "$here/abi-compat.py" "$tmp/report"; then
    exit 0
fi
if [ -n "$soname" ] && [ "$soname" != "$base_soname" ]; then
    echo "the ABI changed (abidiff status $rc) and the SONAME moved from $base_soname to $soname: allowed"
    echo "(refresh the baseline with scripts/abi-update.sh)"
    exit 0
fi
echo "INCOMPATIBLE: the ABI changed (abidiff status $rc: 4 changed, 8 incompatible) but the SONAME is still $soname"
exit 1
