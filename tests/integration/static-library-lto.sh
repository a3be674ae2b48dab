# static-library-lto.sh SCRIPT CC... - libchargan/static-library.sh on LTO
# objects, as -flto in CFLAGS makes them (Debian's optimize=+lto, slim or
# fat) or meson's b_lto: the archive it makes holds ordinary code, with
# chargan_* the only global symbols and no LTO section (which objcopy
# cannot localise and a strip removes), and a program that defines an
# internal name of its own links it and runs.
set -u
script=$1
shift
tmp=$(mktemp -d "${TMPDIR:-/tmp}/chargan-lto.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
if ! "$@" -v 2>&1 | grep -q '^gcc version' ||
    ! "$@" -flto -x c -c -o "$tmp/probe.o" - </dev/null 2>/dev/null; then
    echo "1..0 # SKIP needs GCC with LTO"
    exit 0
fi
cat >"$tmp/api.c" <<'C'
int cg_helper(int x);
int chargan_twice(int x) { return cg_helper(x) + cg_helper(x); }
C
cat >"$tmp/helper.c" <<'C'
int cg_helper(int x) { return x + 1; }
C
cat >"$tmp/main.c" <<'C'
int chargan_twice(int x);
int cg_helper(int x) { return x * 100; } /* the program's own, not the library's */
int main(void) { return chargan_twice(1) == 4 && cg_helper(1) == 100 ? 0 : 1; }
C
n=0 failed=0
for flags in "-flto" "-flto -ffat-lto-objects" "-flto=auto -ffat-lto-objects" ""; do
    n=$((n + 1))
    name="objects built with '${flags:-no LTO}'"
    rm -f "$tmp"/*.o "$tmp"/*.a
    # shellcheck disable=SC2086
    "$@" -O2 $flags -c -o "$tmp/api.o" "$tmp/api.c" &&
        "$@" -O2 $flags -c -o "$tmp/helper.o" "$tmp/helper.c" &&
        ar rc "$tmp/in.a" "$tmp/api.o" "$tmp/helper.o" &&
        sh "$script" "$tmp/in.a" "$tmp/out.a" "$tmp/scratch" "$@" 2>"$tmp/err" || {
        echo "not ok $n - $name: the archive was not made"
        sed 's/^/#   /' "$tmp/err"
        failed=1
        continue
    }
    globals=$(nm -g --defined-only "$tmp/out.a" | awk 'NF == 3 { print $3 }' | tr '\n' ' ')
    lto=$(readelf -S -W "$tmp/out.a" | grep -c '\.gnu\.lto_')
    if [ "$globals" != "chargan_twice " ] || [ "$lto" -ne 0 ]; then
        echo "not ok $n - $name: globals '$globals', $lto LTO sections"
        failed=1
    elif ! "$@" -o "$tmp/main" "$tmp/main.c" "$tmp/out.a" 2>"$tmp/err" || ! "$tmp/main"; then
        echo "not ok $n - $name: a program with its own cg_helper does not link or run"
        sed 's/^/#   /' "$tmp/err"
        failed=1
    else
        echo "ok $n - $name: chargan_* alone, no LTO section, links beside a program's own names"
    fi
done
echo "1..$n"
exit $failed
