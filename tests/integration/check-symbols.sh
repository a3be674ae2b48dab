#!/bin/sh
# check-symbols.sh LIBRARY HEADER MANPAGE - TAP test of the library's dynamic
# symbols.  The exported functions must be exactly those the public header
# declares with CHARGAN_API (parsed from the header, so the list cannot
# drift), all in the CHARGAN_* version nodes, nothing else may leak, the
# SONAME is libchargan.so.0, and the manual page libchargan(3) names each.
set -u
lib=$1
header=$2
manpage=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/chargan-symbols.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

n=0
failed=0
result() { # result OK|FAIL description [details file]
    n=$((n + 1))
    if [ "$1" = OK ]; then
        echo "ok $n - $2"
    else
        failed=$((failed + 1))
        echo "not ok $n - $2"
        [ $# -ge 3 ] && sed 's/^/#   /' "$3"
    fi
}

# Declarations: strip comments and preprocessor lines, then take the last
# identifier before the "(" of each "CHARGAN_API ... name(".
perl -0777 -ne '
    s{/\*.*?\*/}{}gs; s{//[^\n]*}{}g; s{^[ \t]*#.*$}{}mg;
    while (/\bCHARGAN_API\b([^;{}]*?)\(/g) { my $d = $1; print "$1\n" if $d =~ /(\w+)\s*$/; }
' "$header" | sort -u >"$tmp/declared"

# Defined dynamic symbols, without the "@@CHARGAN_0.1" version suffix.  The
# version nodes themselves appear as absolute (A) symbols; they are checked
# apart.
nm -D --defined-only "$lib" >"$tmp/nm" || { echo "Bail out! nm -D failed on $lib"; exit 1; }
awk '$2 != "A" { print $3 }' "$tmp/nm" | sed 's/@.*//' | sort -u >"$tmp/exported"
awk '$2 == "A" { print $3 }' "$tmp/nm" | sort -u >"$tmp/nodes"
awk '$2 != "A" && $3 !~ /@@?CHARGAN_[0-9]/ { print $3 }' "$tmp/nm" >"$tmp/unversioned"
awk '$2 != "A" && $2 != "T" { print $2, $3 }' "$tmp/nm" >"$tmp/nonfunc"

echo "# $(wc -l <"$tmp/declared") functions declared CHARGAN_API, $(wc -l <"$tmp/exported") exported"

if [ -s "$tmp/declared" ]; then
    result OK "the header declares CHARGAN_API functions"
else
    result FAIL "the header declares CHARGAN_API functions (parsed none from $header)"
fi

comm -23 "$tmp/declared" "$tmp/exported" >"$tmp/missing"
if [ -s "$tmp/missing" ]; then
    result FAIL "every declared function is exported ($(wc -l <"$tmp/missing") missing)" "$tmp/missing"
else
    result OK "every declared function is exported"
fi

comm -13 "$tmp/declared" "$tmp/exported" >"$tmp/extra"
if [ -s "$tmp/extra" ]; then
    result FAIL "nothing is exported that the header does not declare" "$tmp/extra"
else
    result OK "nothing is exported that the header does not declare"
fi

grep -v '^chargan_' "$tmp/exported" >"$tmp/foreign"
if [ -s "$tmp/foreign" ]; then
    result FAIL "every exported symbol starts with chargan_" "$tmp/foreign"
else
    result OK "every exported symbol starts with chargan_"
fi

if [ -s "$tmp/nonfunc" ]; then
    result FAIL "every exported symbol is a function (no data)" "$tmp/nonfunc"
else
    result OK "every exported symbol is a function (no data)"
fi

if [ -s "$tmp/unversioned" ] || ! grep -q '^CHARGAN_[0-9]' "$tmp/nodes"; then
    echo "version nodes: $(tr '\n' ' ' <"$tmp/nodes")" >>"$tmp/unversioned"
    result FAIL "every symbol carries a CHARGAN_ version node" "$tmp/unversioned"
else
    result OK "every symbol carries a CHARGAN_ version node ($(tr '\n' ' ' <"$tmp/nodes" | sed 's/ $//'))"
fi

# A function the manual page does not list (as ".BR name ()", not only in
# its example) is one a reader of libchargan(3) never learns of.
: >"$tmp/unnamed"
while read -r f; do
    grep -q "^\\.BR $f (" "$manpage" || echo "$f" >>"$tmp/unnamed"
done <"$tmp/declared"
if [ -s "$tmp/unnamed" ]; then
    result FAIL "libchargan(3) names every declared function" "$tmp/unnamed"
else
    result OK "libchargan(3) names every declared function"
fi

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ "$soname" = libchargan.so.0 ]; then
    result OK "SONAME is libchargan.so.0"
else
    result FAIL "SONAME is libchargan.so.0 (got '${soname}')"
fi

echo "1..$n"
exit 0
