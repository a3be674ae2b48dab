#!/bin/sh
# fuzz.sh - build the libFuzzer targets of fuzz/ with clang and run each for
# a bounded time.
#
# usage: scripts/fuzz.sh [SECONDS]     (default 60 per target)
#
# On Debian 12 (as root, or with sudo) it first installs what is missing
# (clang, libclang-rt-14-dev).  Environment:
#   BUILD_DIR     build directory (default: build-fuzz), configured with
#                 CC=clang -Dfuzz=true
#   FUZZ_TARGETS  targets to run (default: all of fuzz/fuzz_*.c)
#   FUZZ_JOBS     targets run at once (default: the number of cores)
#   FUZZ_WORK     where the grown corpora and crash inputs go (default:
#                 BUILD_DIR/fuzz-work); the committed seeds are only read
#   FUZZ_ARCH     i386: the targets built 32-bit (clang -m32 against the
#                 i386 OpenBLAS, installed through Debian's multiarch), where
#                 size_t has 32 bits and floats are evaluated in x87's wider
#                 format; BUILD_DIR defaults to build-fuzz-i386
# Each target prints "ok - fuzz_NAME: E executions in S s (R/s), grown corpus
# C inputs" or "not ok" with the crash input's path; the last line is
# "N passed, N failed" and the exit status is non-zero if a target failed.
# A crash input belongs in fuzz/regressions/NAME/ once the bug is fixed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/deps.sh
. "$here/deps.sh"

seconds=${1:-60}
case $seconds in
'' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
case ${FUZZ_ARCH:-} in
'' | i386) ;;
*) echo "$0: FUZZ_ARCH is i386 or unset" >&2; exit 2 ;;
esac
build_dir=${BUILD_DIR:-build-fuzz${FUZZ_ARCH:+-$FUZZ_ARCH}}
case $build_dir in
/*) ;;
*) build_dir="$root/$build_dir" ;;
esac
work=${FUZZ_WORK:-$build_dir/fuzz-work}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

fail() {
    echo "error: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

# shellcheck disable=SC2086 # package lists are space separated on purpose
chargan_need_packages $CHARGAN_BUILD_PACKAGES $CHARGAN_FUZZ_PACKAGES ||
    fail "could not install the build dependencies"

setup_opts="-Dfuzz=true -Dtests=disabled -Dcli=false -Dexamples=false -Dpython=false -Dwerror=true"
mkdir -p "$work"
if [ "${FUZZ_ARCH:-}" = i386 ]; then
    chargan_need_i386 libopenblas-dev:i386 || fail "could not install the i386 OpenBLAS"
    cat > "$work/i386.ini" <<EOF
[binaries]
c = ['clang', '-m32']
ar = 'ar'
pkgconfig = 'pkg-config'

[properties]
pkg_config_libdir = ['/usr/lib/i386-linux-gnu/pkgconfig', '/usr/share/pkgconfig']

[host_machine]
system = 'linux'
cpu_family = 'x86'
cpu = 'i686'
endian = 'little'
EOF
    setup_opts="$setup_opts -Dmpi=disabled --cross-file $work/i386.ini"
fi
# shellcheck disable=SC2086
if [ -f "$build_dir/meson-private/coredata.dat" ]; then
    meson setup --reconfigure $setup_opts "$build_dir" "$root" >"$work/setup.log" 2>&1
else
    CC=clang meson setup $setup_opts "$build_dir" "$root" >"$work/setup.log" 2>&1
fi || { tail -n 20 "$work/setup.log"; fail "meson setup failed"; }
targets=${FUZZ_TARGETS:-$(cd "$root/fuzz" && ls fuzz_*.c | grep -v '^fuzz_common' | sed 's/^fuzz_//; s/\.c$//')}
build_list=""
for t in $targets; do build_list="$build_list fuzz/fuzz_$t"; done
# shellcheck disable=SC2086
ninja -C "$build_dir" $build_list >"$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log"; fail "the build failed (ninja -C $build_dir)"; }

# run_one NAME: runs fuzz_NAME for $seconds; its log in $work/NAME.log.
run_one() {
    name=$1
    mkdir -p "$work/corpus/$name" "$work/crashes/$name"
    # -timeout: one input running 20 s is a hang; -rss_limit_mb: the
    # default 2 GB.  The grown corpus is the first directory (written to),
    # the committed seeds the second (read only).  timeout(1) backs up
    # -max_total_time in case the process hangs outside an input.
    timeout -k 10 $((seconds + 120)) "$build_dir/fuzz/fuzz_$name" \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$work/crashes/$name/" \
        "$work/corpus/$name" "$root/fuzz/corpus/$name" >"$work/fuzz_$name.log" 2>&1
    echo $? >"$work/$name.rc"
}

rm -f "$work"/fuzz_*.log "$work"/*.rc
running=0
for t in $targets; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

passed=0
failed=0
n=0
for t in $targets; do
    n=$((n + 1))
    log="$work/fuzz_$t.log"
    rc=$(cat "$work/$t.rc" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    secs=$(sed -n 's/^stat::total_run_time_s\{0,1\}: *//p' "$log" | tail -n 1)
    [ -n "$secs" ] || secs=$seconds
    inputs=$(find "$work/corpus/$t" -type f | wc -l)
    if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
        echo "ok $n - fuzz_$t: $execs executions in ${secs} s ($((execs / (secs > 0 ? secs : 1)))/s), grown corpus $inputs inputs"
        passed=$((passed + 1))
    else
        crash=$(ls -t "$work/crashes/$t" 2>/dev/null | head -n 1)
        echo "not ok $n - fuzz_$t: exit status $rc after ${execs:-?} executions${crash:+, input $work/crashes/$t/$crash}"
        # the report: what the sanitizer or the invariant said
        grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz invariant broken|.*runtime error)' "$log" | head -n 5 | sed 's/^/#   /'
        echo "#   log: $log"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
