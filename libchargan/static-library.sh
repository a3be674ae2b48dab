#!/bin/sh
# static-library.sh ARCHIVE_IN ARCHIVE_OUT SCRATCH_DIR CC...
# Makes libchargan.a from the archive of the library's objects: links them
# into one relocatable object (the compiler driver's -r, which resolves the
# references between them), makes every defined symbol but chargan_* local
# (as libchargan.map does for the shared library; --localize-hidden would
# miss the ifunc resolvers of the target_clones kernels, which GCC makes
# global whatever the visibility), dissolves its COMDAT groups (i386's
# __x86.get_pc_thunk.* are grouped: a program's own copy of a group would
# make the linker discard ours, which our local symbols still point into),
# and archives that one object.  objcopy, readelf
# and ar are the compiler's own (-print-prog-name), so a cross compiler
# gets its target's.
#
# Objects with LTO code (-flto in CFLAGS, as Debian's optimize=+lto puts it,
# or meson's b_lto) become ordinary code first: objcopy cannot make an LTO
# symbol local, and a strip of the LTO sections (Debian strips archives so)
# would leave nothing.  So their LTO code is compiled here into the one
# object (slim objects have nothing else; fat ones carry machine code too),
# and no LTO section is left in it.
set -eu
in=$1 out=$2 scratch=$3
shift 3
objcopy=$("$@" -print-prog-name=objcopy)
readelf=$("$@" -print-prog-name=readelf)
ar=$("$@" -print-prog-name=ar)
mkdir -p "$scratch"
obj=$scratch/chargan.o
if "$readelf" -S -W "$in" | grep -q '\.gnu\.lto_'; then
    set -- "$@" -flto -flto-partition=one -flinker-output=nolto-rel
fi
"$@" -r -nostdlib -o "$obj" -Wl,--whole-archive "$in" -Wl,--no-whole-archive
"$objcopy" --remove-section=.group --remove-section='.gnu.lto_*' \
    --remove-section='.gnu.debuglto_*' --strip-symbol=__gnu_lto_slim \
    --wildcard --keep-global-symbol='chargan_*' "$obj"
rm -f "$out"
"$ar" rcsD "$out" "$obj"
