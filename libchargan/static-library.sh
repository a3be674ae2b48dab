#!/bin/sh
# static-library.sh ARCHIVE_IN ARCHIVE_OUT SCRATCH_DIR OBJCOPY AR CC...
# Makes libchargan.a from the archive of the library's objects: links them
# into one relocatable object (the compiler driver's -r, which resolves the
# references between them), makes every defined symbol but chargan_* local
# (as libchargan.map does for the shared library; --localize-hidden would
# miss the ifunc resolvers of the target_clones kernels, which GCC makes
# global whatever the visibility), and archives that one object.
set -eu
in=$1 out=$2 scratch=$3 objcopy=$4 ar=$5
shift 5
mkdir -p "$scratch"
obj=$scratch/chargan.o
"$@" -r -nostdlib -o "$obj" -Wl,--whole-archive "$in" -Wl,--no-whole-archive
"$objcopy" --wildcard --keep-global-symbol='chargan_*' "$obj"
rm -f "$out"
"$ar" rcs "$out" "$obj"
