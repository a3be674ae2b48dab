#!/bin/sh
# install-consumer.sh BUILD_DIR SOURCE_ROOT PREFIX LIBDIR INCLUDEDIR BINDIR MANDIR DOCDIR
#                     DEFAULT_LIBRARY BUILT_SO CONSUMER_C CC...
# TAP test of what a distribution packages: `meson install --destdir` into a
# temporary tree, check the layout, then build CONSUMER_C against the
# installed tree with pkg-config alone and run it from there.  With
# DEFAULT_LIBRARY static only libchargan.a is installed (the tool linked with
# it); BUILT_SO, the build tree's shared library, is then what its symbols
# are compared with.
# shellcheck disable=SC2317 # the check functions are called through check()
set -u
build=$1 src=$2 prefix=$3 libdir=$4 includedir=$5 bindir=$6 mandir=$7 docdir=$8
kind=$9 built_so=${10} consumer=${11}
shift 11
# The rest is the C compiler command (possibly several words).

# pkgconf 1.8 cannot write a sysroot with a space so that a shell can split
# its output (it repeats the sysroot and escapes half of it): a TMPDIR with
# one gives way to /tmp.
base=${TMPDIR:-/tmp}
case $base in *[[:space:]]*) base=/tmp ;; esac
tmp=$(mktemp -d "$base/chargan-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest

under_prefix() { # an install directory as a path inside the destdir
    case $1 in
    /*) echo "$dest$1" ;;
    *) echo "$dest$prefix/$1" ;;
    esac
}
L=$(under_prefix "$libdir")
I=$(under_prefix "$includedir")
B=$(under_prefix "$bindir")
M=$(under_prefix "$mandir")
D=$(under_prefix "$docdir")

n=0
result() { # result OK|FAIL description [details file]
    n=$((n + 1))
    if [ "$1" = OK ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        [ $# -ge 3 ] && [ -f "$3" ] && sed 's/^/#   /' "$3"
    fi
}
check() { # check description command... : ok if the command succeeds
    _d=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then result OK "$_d"; else result FAIL "$_d" "$tmp/out"; fi
}

if ! meson install -C "$build" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1; then
    result FAIL "meson install --destdir" "$tmp/install.log"
    echo "1..$n"
    exit 0
fi
result OK "meson install --destdir"

all_installed() { # every file meson says it installs is there
    meson introspect --installed "$build" >"$tmp/installed.json" &&
        python3 -c '
import json, os, sys
dest = sys.argv[2]
missing = [p for p in json.load(open(sys.argv[1])).values() if not os.path.lexists(dest + p)]
print("\n".join("missing: " + p for p in missing))
sys.exit(1 if missing else 0)
' "$tmp/installed.json" "$dest"
}
library_links() {
    [ -f "$L/libchargan.so.0" ] && [ -L "$L/libchargan.so.0" ] && [ -L "$L/libchargan.so" ] &&
        [ "$(readlink -f "$L/libchargan.so")" = "$(readlink -f "$L/libchargan.so.0")" ]
}
installed_soname() {
    readelf -d "$L/libchargan.so.0" | grep "(SONAME).*\[libchargan.so.0\]"
}
check "every file meson installs is in the destdir" all_installed
if [ "$kind" = static ]; then
    no_shared_installed() { ! find "$dest" -name 'libchargan.so*' | grep .; }
    check "static only: no libchargan.so installed" no_shared_installed
    check "static only: $libdir/libchargan.a" test -f "$L/libchargan.a"
else
    check "library: $libdir/libchargan.so.0 and the libchargan.so link resolve to one file" library_links
    check "installed SONAME is libchargan.so.0" installed_soname
    # Build-tree paths in RPATH/RUNPATH would make the installed library load
    # from (or look into) the build tree.
    readelf -d "$L/libchargan.so.0" | grep -E '\((RPATH|RUNPATH)\)' >"$tmp/rpath"
    if grep -q -e "$build" -e "$src" -e 'ORIGIN' "$tmp/rpath"; then
        result FAIL "installed library has no RPATH/RUNPATH into the build or source tree" "$tmp/rpath"
    else
        result OK "installed library has no RPATH/RUNPATH into the build or source tree"
    fi
fi
check "header: $includedir/chargan.h, identical to include/chargan.h" cmp "$I/chargan.h" "$src/include/chargan.h"
check "pkg-config file: $libdir/pkgconfig/chargan.pc" test -f "$L/pkgconfig/chargan.pc"

# The CLI, when it was built, goes to bindir with chargan(1); libchargan(3)
# always comes with the library; every man page lies in mandir/manN.
if [ -x "$build/cli/chargan" ]; then
    check "CLI: $bindir/chargan" test -x "$B/chargan"
    check "man page: $mandir/man1/chargan.1" test -f "$M/man1/chargan.1"
    if [ "$kind" = static ]; then
        tool_runs_alone() { "$B/chargan" --version && ! ldd "$B/chargan" | grep libchargan; }
        check "static only: the installed tool runs without libchargan.so" tool_runs_alone
    fi
fi
check "man page: $mandir/man3/libchargan.3" test -f "$M/man3/libchargan.3"
if command -v groff >/dev/null 2>&1; then
    groff_clean() { [ -z "$(groff -man -ww -z "$1" 2>&1)" ] || { groff -man -ww -z "$1"; return 1; }; }
    check "groff -man -ww finds nothing to warn about in libchargan.3" groff_clean "$M/man3/libchargan.3"
fi
find "$dest" -type f -name '*.[1-8]' >"$tmp/man"
if [ -s "$tmp/man" ]; then
    : >"$tmp/misplaced"
    while read -r page; do
        sect=${page##*.}
        [ "$(dirname "$page")" = "$M/man$sect" ] || echo "$page" >>"$tmp/misplaced"
    done <"$tmp/man"
    if [ -s "$tmp/misplaced" ]; then
        result FAIL "man pages lie in $mandir/manN" "$tmp/misplaced"
    else
        result OK "man pages lie in $mandir/manN ($(sed 's|.*/||' "$tmp/man" | tr '\n' ' '))"
    fi
else
    echo "# no man pages installed"
fi

# The Markdown docs in the source tree's layout, so that their links hold
# (they name the man pages, installed into mandir, without linking their
# sources); the HTML API reference when this configuration installs it.
for f in README.md NEWS.md COPYING docs/GUIDE.md docs/FORMATS.md docs/RESULTS.md; do
    check "docs: $docdir/$f" test -f "$D/$f"
done
links_resolve() {
    python3 - "$D" <<'PY'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1])
bad = []
for md in sorted(root.rglob("*.md")):
    for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text(encoding="utf-8")):
        path = target.split("#")[0]
        if not path or re.match(r"[a-z]+:", path):
            continue
        if not (md.parent / path).exists():
            bad.append(f"{md.relative_to(root)}: {target}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
}
check "docs: every relative link of the installed Markdown resolves" links_resolve
# (From meson's install list: a build tree may keep the pages of a
# configuration that built them.)
installs_html() {
    python3 -c '
import json, sys
sys.exit(0 if any(p.rstrip("/").endswith("/html") for p in json.load(open(sys.argv[1])).values())
         else 1)' "$tmp/installed.json"
}
if installs_html; then
    check "docs: $docdir/html/index.html (the API reference)" test -f "$D/html/index.html"
fi
# Every file has an install tag, so that a packager's `meson install --tags`
# (runtime, devel, man, doc, python-runtime) splits the whole install: the
# docs, COPYING among them, had none and were in no split.
all_tagged() {
    python3 -c '
import json, sys
plan = json.load(open(sys.argv[1] + "/meson-info/intro-install_plan.json"))
untagged = [info["destination"] for kind in plan.values() for info in kind.values()
            if not info.get("tag")]
print("\n".join("no install tag: " + d for d in untagged))
sys.exit(1 if untagged else 0)' "$build"
}
check "every installed file has an install tag (meson install --tags)" all_tagged

# A consumer that knows nothing but pkg-config.
export PKG_CONFIG_PATH="$L/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_SYSROOT_DIR="$dest"
version=$(sed -n 's/^#define CHARGAN_VERSION_STRING "\(.*\)"/\1/p' "$src/include/chargan.h")
modversion() { [ "$(pkg-config --modversion chargan)" = "$version" ]; }
check "pkg-config --modversion chargan is $version" modversion
if [ "$kind" != static ]; then
    flags=$(pkg-config --cflags --libs chargan 2>"$tmp/out")
    echo "# pkg-config --cflags --libs chargan: $flags"
    # shellcheck disable=SC2086 # flags are several words
    check "consumer builds with pkg-config --cflags --libs chargan only" \
        "$@" -std=c11 -Wall -Wextra -Werror ${TEST_LINK_FLAGS:-} "$consumer" $flags -o "$tmp/consumer"
    export LD_LIBRARY_PATH="$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    loads_from_destdir() { ldd "$tmp/consumer" | grep "libchargan.so.0 => $L/libchargan.so.0 "; }
    check "consumer loads libchargan.so.0 from the destdir" loads_from_destdir
    check "consumer runs: versions match, tokenizer round trip" "$tmp/consumer"
    [ -f "$tmp/out" ] && sed 's/^/# /' "$tmp/out"
else
    # Only the archive: pkg-config --static alone links it.
    flags=$(pkg-config --static --cflags --libs chargan 2>"$tmp/out")
    echo "# pkg-config --static --cflags --libs chargan: $flags"
    # shellcheck disable=SC2086 # flags are several words
    check "static only: consumer builds with pkg-config --static --cflags --libs chargan only" \
        "$@" -std=c11 -Wall -Wextra -Werror ${TEST_LINK_FLAGS:-} "$consumer" $flags -o "$tmp/consumer"
    check "static only: consumer runs: versions match, tokenizer round trip" "$tmp/consumer"
fi

# libchargan.a (-Ddefault_library=both, the default, or static): global
# symbols exactly the shared library's exports, and a consumer linked with it
# (the other libraries from pkg-config --static) runs without libchargan.so.
if [ -f "$L/libchargan.a" ]; then
    defined() { # defined NM_OPTION FILE: the global names FILE defines, sorted
        nm "$1" --defined-only "$2" | awk 'NF == 3 && $2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u
    }
    shared=$L/libchargan.so.0
    [ -f "$shared" ] || shared=$built_so
    same_exports() {
        defined -D "$shared" >"$tmp/shared.syms" &&
            defined -g "$L/libchargan.a" >"$tmp/static.syms" &&
            [ -s "$tmp/shared.syms" ] && diff "$tmp/shared.syms" "$tmp/static.syms"
    }
    check "libchargan.a's global symbols are the shared library's exports" same_exports
    static_libs=
    for f in $(pkg-config --static --libs chargan); do
        [ "$f" = -lchargan ] || static_libs="$static_libs $f"
    done
    # shellcheck disable=SC2086,SC2046 # flags are several words
    check "consumer links libchargan.a and pkg-config --static --libs chargan's other libraries" \
        "$@" -std=c11 -Wall -Wextra -Werror ${TEST_LINK_FLAGS:-} "$consumer" \
        $(pkg-config --cflags chargan) "$L/libchargan.a" $static_libs -o "$tmp/consumer-static"
    no_shared() { ! ldd "$tmp/consumer-static" | grep libchargan; }
    check "static consumer does not load libchargan.so" no_shared
    check "static consumer runs: versions match, tokenizer round trip" "$tmp/consumer-static"
fi

echo "1..$n"
exit 0
