# help.sh - --version, help, per-command --help, and the man page documents
# every option that the help texts list (and the other way round).
. "$(dirname "$0")/common.sh"

expect_ok "$CHARGAN" --version
grep -q '^chargan [0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*$' "$TMP/out" || { show; fail "--version"; }
cp "$TMP/out" "$TMP/version"
expect_ok "$CHARGAN" -V
cmp -s "$TMP/out" "$TMP/version" || fail "-V differs from --version"

expect_ok "$CHARGAN" help
for c in train sample eval info plot; do
    grep -q "^  $c " "$TMP/out" || { show; fail "help does not list '$c'"; }
done
expect_ok "$CHARGAN" --help
expect_ok "$CHARGAN" -h
# nothing after them is ignored
for opt in --version -V --help -h; do
    expect_error 2 "$opt: unexpected argument 'train'" "$CHARGAN" $opt train
done

: >"$TMP/all-help"
for c in train sample eval info plot; do
    expect_ok "$CHARGAN" help "$c"
    grep -q "^usage: chargan $c" "$TMP/out" || { show; fail "help $c: no usage line"; }
    cp "$TMP/out" "$TMP/help-$c"
    cat "$TMP/out" >>"$TMP/all-help"
    expect_ok "$CHARGAN" "$c" --help
    cmp -s "$TMP/out" "$TMP/help-$c" || fail "$c --help differs from help $c"
    expect_ok "$CHARGAN" "$c" -h
    cmp -s "$TMP/out" "$TMP/help-$c" || fail "$c -h differs from help $c"
done

for h in --help -h; do # help is a command too
    expect_ok "$CHARGAN" help "$h"
    grep -q "^usage: chargan help" "$TMP/out" || { show; fail "help $h: no usage line"; }
done
expect_error 2 "unknown command 'bogus'" "$CHARGAN" help bogus
expect_error 2 "unexpected argument" "$CHARGAN" help train extra
run "$CHARGAN"
[ "$status" -eq 2 ] || fail "no arguments: exit status $status, expected 2"
grep -q '^usage: chargan COMMAND' "$TMP/err" || { show; fail "no arguments: no usage on stderr"; }

# The man page and the help texts agree on the options.
sed 's/\\-/-/g' "$MANPAGE" >"$TMP/man.txt"
grep -o -- '--[a-z][a-z-]*' "$TMP/all-help" | sort -u >"$TMP/help-opts"
[ "$(wc -l <"$TMP/help-opts")" -gt 30 ] || fail "too few options found in the help texts"
while read -r opt; do
    grep -qE -- "$opt([^a-z-]|\$)" "$TMP/man.txt" || fail "the man page does not document $opt"
done <"$TMP/help-opts"
grep -A1 '^\.TP' "$TMP/man.txt" | grep -o -- '--[a-z][a-z-]*' | sort -u >"$TMP/man-opts"
while read -r opt; do
    grep -q -- "$opt" "$TMP/help-opts" || fail "the help texts do not list $opt from the man page"
done <"$TMP/man-opts"
if command -v groff >/dev/null 2>&1; then
    warnings=$(groff -man -ww -z "$MANPAGE" 2>&1)
    [ -z "$warnings" ] || fail "groff warns about the man page: $warnings"
fi

echo "ok"
