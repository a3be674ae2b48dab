# common.sh - sourced by the chargan CLI tests (POSIX sh).
# Arguments of every test: CHARGAN_BINARY SONNETS_TXT MAN_PAGE.
set -u

CHARGAN=$1
SONNETS=$2
MANPAGE=$3
# Absolute paths, so that a test may change directory.
abspath() {
    case $1 in
    /*) echo "$1" ;;
    *) echo "$(pwd)/$1" ;;
    esac
}
CHARGAN=$(abspath "$CHARGAN")
SONNETS=$(abspath "$SONNETS")
MANPAGE=$(abspath "$MANPAGE")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/chargan-cli.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM

# A small slice of the sonnets and tiny, fast settings.
head -c 20000 "$SONNETS" >"$TMP/corpus.txt"
TINY="--hidden 16 --embed 8 --batch 8 --seq 32 --lr 0.01 --seed 7 -q"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# run CMD...: stdout in $TMP/out, stderr in $TMP/err, exit status in $status.
run() {
    "$@" >"$TMP/out" 2>"$TMP/err"
    status=$?
}

# fsync_shim [VAR=VALUE...] CMD...: CMD with tests/cli/slow_fsync.c preloaded
# ($CHARGAN_TEST_SLOW_FSYNC; callers check it exists).  ASan wants its
# runtime first among preloaded libraries: its check of that order is off.
fsync_shim() {
    env LD_PRELOAD="$CHARGAN_TEST_SLOW_FSYNC" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" "$@"
}

show() {
    echo "--- stdout:" >&2
    head -c 2000 "$TMP/out" >&2
    echo "--- stderr:" >&2
    head -c 2000 "$TMP/err" >&2
}

# expect_ok CMD...: status 0.
expect_ok() {
    run "$@"
    if [ "$status" -ne 0 ]; then
        show
        fail "'$*' exited with $status, expected 0"
    fi
}

# expect_error STATUS PATTERN CMD...: the given exit status, and exactly one
# line on stderr, "chargan: ...", that contains PATTERN (a fixed string).
expect_error() {
    want=$1
    pattern=$2
    shift 2
    run "$@"
    if [ "$status" -ne "$want" ]; then
        show
        fail "'$*' exited with $status, expected $want"
    fi
    if [ "$(wc -l <"$TMP/err")" -ne 1 ]; then
        show
        fail "'$*' wrote more or less than one line on stderr"
    fi
    grep -q '^chargan: ' "$TMP/err" || { show; fail "'$*': message does not start with 'chargan: '"; }
    grep -qF -- "$pattern" "$TMP/err" || { show; fail "'$*': message does not mention '$pattern'"; }
}

# value KEY FILE: the value of a "key: value" line.
value() {
    sed -n "s/^$1: *//p" "$2" | head -n 1
}
