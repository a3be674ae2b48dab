#!/bin/sh
# test.sh - build libchargan and run its test suites.
#
# On Debian 12 (as root, or with sudo) it first installs whatever is missing.
# Environment:
#   BUILD_DIR   build directory (default: build)
#   MESON_OPTS  extra `meson setup` options, e.g. "-Dblas=netlib"
#   SUITES      suites to run, space separated (default: every suite but those
#               in SKIP_SUITES; "all" runs everything)
#   SKIP_SUITES suites left out when SUITES is unset (default: slow)
#   TESTS       only these tests, space separated (e.g. "test_core test_lstm")
#   MESON_TEST_OPTS  extra `meson test` options, e.g. "--setup valgrind"
# The last line printed is "N passed, N failed", counted per test case (each
# Check case is a TAP subtest); the exit status is non-zero if anything failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/deps.sh
. "$here/deps.sh"

build_dir=${BUILD_DIR:-build}
case $build_dir in
/*) ;;
*) build_dir="$root/$build_dir" ;;
esac

fail() {
    # A build that does not get as far as the tests is one failure, so the
    # summary line is always there and never reads as a pass.
    echo "error: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

# shellcheck disable=SC2086 # package lists are space separated on purpose
chargan_need_packages $CHARGAN_TEST_PACKAGES || fail "could not install the build dependencies"

# shellcheck disable=SC2086 # MESON_OPTS holds several options
if [ -f "$build_dir/meson-private/coredata.dat" ]; then
    meson setup --reconfigure -Dwerror=true ${MESON_OPTS:-} "$build_dir" "$root" ||
        meson setup --wipe -Dwerror=true ${MESON_OPTS:-} "$build_dir" "$root" ||
        fail "meson setup failed"
else
    meson setup -Dwerror=true ${MESON_OPTS:-} "$build_dir" "$root" || fail "meson setup failed"
fi
ninja -C "$build_dir" || fail "the build failed"

suite_args=""
case ${SUITES:-} in
"") for s in ${SKIP_SUITES-slow}; do suite_args="$suite_args --no-suite $s"; done ;;
all) ;;
*) for s in $SUITES; do suite_args="$suite_args --suite $s"; done ;;
esac

log_name=testlog.json
case " ${MESON_TEST_OPTS:-} " in
*" --setup "* | *" --setup="*) log_name=testlog-$(echo "${MESON_TEST_OPTS}" | sed -n 's/.*--setup[ =]*\([^ ]*\).*/\1/p').json ;;
esac
# A stale log from an earlier run must not be counted.
rm -f "$build_dir/meson-logs/$log_name"

# shellcheck disable=SC2086
meson test -C "$build_dir" --no-rebuild --print-errorlogs $suite_args ${MESON_TEST_OPTS:-} ${TESTS:-}
meson_rc=$?

if [ $meson_rc -eq 0 ] && [ ! -f "$build_dir/meson-logs/$log_name" ]; then
    # meson writes no log when no test matched (e.g. SUITES=slow before any
    # slow test exists): nothing ran, nothing failed.
    echo "no test matched the suites asked for"
    echo "0 passed, 0 failed"
    exit 0
fi

counts=$(python3 "$here/ci-count.py" --log "$log_name" "$build_dir")
count_rc=$?
printf '%s\n' "$counts" | sed '$d'
summary=$(printf '%s\n' "$counts" | tail -n 1)
if [ $meson_rc -ne 0 ] && [ $count_rc -eq 0 ]; then
    # meson failed without a failed case to show for it (the harness itself
    # broke): one failure, so the summary cannot read as a pass.
    echo "error: meson test exited with status $meson_rc but no case failed" >&2
    echo "${summary%% passed*} passed, 1 failed"
    exit 1
fi
echo "$summary"
exit $count_rc
