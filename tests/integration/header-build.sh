#!/bin/sh
# header-build.sh LANG COMPILER INCLUDE_DIR LIBRARY SOURCE
# Builds SOURCE (which includes only chargan.h) as LANG (c or c++) with
# -pedantic -Werror, links it against LIBRARY and runs it.  Exits 77 (meson:
# skipped) when COMPILER is empty or not installed, so a missing compiler is
# never reported as a pass.  TEST_LINK_FLAGS (e.g. -fsanitize=address) is
# added when the library was built with a sanitizer.
set -u
lang=$1
compiler=$2
incdir=$3
lib=$4
src=$5

if [ -z "$compiler" ] || ! command -v "$compiler" >/dev/null 2>&1; then
    echo "no $lang compiler found: skipped"
    exit 77
fi
case $lang in
c) flags="-x c -std=c11 -pedantic -Werror -Wall -Wextra -Wstrict-prototypes" ;;
c++) flags="-x c++ -std=c++11 -pedantic -Werror -Wall -Wextra -Wold-style-cast" ;;
*) echo "unknown language $lang"; exit 2 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/chargan-header.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
set -x
# shellcheck disable=SC2086 # flags are several words
"$compiler" $flags ${TEST_LINK_FLAGS:-} -I"$incdir" -c "$src" -o "$tmp/t.o" || exit 1
# shellcheck disable=SC2086
"$compiler" ${TEST_LINK_FLAGS:-} "$tmp/t.o" "$lib" -o "$tmp/t" || exit 1
LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/t" || exit 1
