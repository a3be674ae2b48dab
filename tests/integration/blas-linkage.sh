#!/bin/sh
# blas-linkage.sh BLAS LIBRARY [EXECUTABLE...]
# TAP test that the built objects load the BLAS the build claims (BLAS is the
# pkg-config name meson picked: openblas, blas-netlib, blas or cblas).  The
# two are told apart by what they export: OpenBLAS defines openblas_* (e.g.
# openblas_set_num_threads), Debian's reference BLAS defines only the
# standard BLAS and CBLAS functions.
set -u
blas=$1
shift
n=0
result() {
    n=$((n + 1))
    if [ "$1" = OK ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}

impl_of() { # impl_of PATH: "openblas" or "reference", by exported symbols
    if nm -D --defined-only "$1" 2>/dev/null | grep -q ' T openblas_set_num_threads'; then
        echo openblas
    else
        echo reference
    fi
}

case $blas in
openblas) want=openblas ;;
blas-netlib) want=reference ;;
*) want=any ;;
esac
echo "# meson chose '$blas': expecting $want BLAS"

first=yes
for obj in "$@"; do
    [ -e "$obj" ] || continue
    name=$(basename "$obj")
    # BLAS libraries the loader resolves for this object.
    ldd "$obj" | awk '/lib(open)?c?blas[^ ]*\.so/ { print $1, $3 }' >"${TMPDIR:-/tmp}/blas-ldd.$$"
    if [ ! -s "${TMPDIR:-/tmp}/blas-ldd.$$" ]; then
        rm -f "${TMPDIR:-/tmp}/blas-ldd.$$"
        if [ $first = yes ]; then
            result FAIL "$name loads a BLAS library"
        else
            echo "# $name: loads no BLAS (not needed)"
        fi
        first=no
        continue
    fi
    first=no
    ok=yes
    while read -r soname path; do
        if [ ! -e "$path" ]; then
            echo "# $name: $soname not found"
            ok=no
            continue
        fi
        real=$(readlink -f "$path")
        impl=$(impl_of "$real")
        echo "# $name: $soname => $path -> $real ($impl)"
        nm -D --defined-only "$real" | grep -q ' T cblas_sgemm$' || { echo "# $real lacks cblas_sgemm"; ok=no; }
        [ $want = any ] || [ "$impl" = $want ] || ok=no
    done <"${TMPDIR:-/tmp}/blas-ldd.$$"
    rm -f "${TMPDIR:-/tmp}/blas-ldd.$$"
    if [ $ok = yes ]; then
        result OK "$name loads the $want BLAS"
    else
        result FAIL "$name loads the $want BLAS"
    fi
done
echo "1..$n"
exit 0
