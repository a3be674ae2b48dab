#!/bin/sh
# cross-test.sh - build libchargan for another Debian architecture and run its
# tests there: 32-bit (i386, armhf), big-endian (s390x), other 64-bit ones
# (arm64, ppc64el).  What a distribution's build daemons would find first: a
# size_t of 32 bits, the other byte order, no x86 vector kernels, float
# arithmetic evaluated wider than float (x87 on i386, s390x).
#
# usage: scripts/cross-test.sh ARCH [ARCH...]     (e.g. i386 s390x)
#
# On Debian 12 (as root, or with sudo) it installs what is missing.  i386 on
# an amd64 machine runs natively: it adds i386 to dpkg's architectures and
# installs check, libsubunit-dev and libopenblas-dev for it (Debian's
# multiarch).  Every other architecture runs under qemu-user, against a tree
# of its own C library, Check and OpenBLAS that mmdebstrap unpacks (bookworm,
# about 60 MB); nothing of it is installed on this machine.
# Environment:
#   CROSS_DIR   where the trees and build directories go (default: build-cross)
#   SUITES      suites to run (default natively: all but slow, python and
#               crosscheck; under qemu "unit unit+gradcheck unit+fuzz examples",
#               since the integration scripts run their programs natively)
#   TESTS       only these tests, space separated (e.g. "test_core test_checkpoint")
#   MIRROR      Debian mirror (default: http://deb.debian.org/debian)
# Under emulation the suites run tens of times slower than natively, so
# Check's and meson's timeouts are raised tenfold there.  The last line is "N
# passed, N failed" over every architecture's test cases; the exit status is
# non-zero if anything failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/deps.sh
. "$here/deps.sh"

cross_dir=${CROSS_DIR:-build-cross}
case $cross_dir in
/*) ;;
*) cross_dir="$root/$cross_dir" ;;
esac
mirror=${MIRROR:-http://deb.debian.org/debian}
[ $# -ge 1 ] || { echo "usage: $0 ARCH [ARCH...]  (i386, armhf, arm64, ppc64el, s390x)" >&2; exit 2; }

passed=0 failed=0
# An architecture that does not get as far as its tests is one failure.
arch_failed() {
    echo "error: $1: $2" >&2
    failed=$((failed + 1))
}

# The cross file's [binaries] and [properties] for i386 on amd64: the cross
# compiler against the i386 libraries installed beside this machine's own.
native_i386_ini() { # INI TRIPLET LIB
    chargan_need_i386 crossbuild-essential-i386 check:i386 libsubunit-dev:i386 \
        libopenblas-dev:i386 || return 1
    cat > "$1" <<EOF
[binaries]
c = '$2-gcc'
ar = '$2-ar'
strip = '$2-strip'
pkgconfig = 'pkg-config'

[properties]
pkg_config_libdir = ['/usr/lib/$3/pkgconfig', '/usr/share/pkgconfig']
EOF
}

# The same for an emulated architecture: the cross compiler against an
# unpacked tree, and qemu-user to run the tests in it.
emulated_ini() { # INI ARCH TRIPLET LIB QEMU
    chargan_need_packages "crossbuild-essential-$2" qemu-user mmdebstrap || return 1
    tree=$cross_dir/$2-root
    if [ ! -f "$tree/usr/lib/$4/pkgconfig/check.pc" ]; then
        rm -rf "$tree"
        mmdebstrap --quiet --arch="$2" --variant=extract \
            --include=libc6-dev,libgcc-s1,check,libsubunit-dev,libopenblas-dev,libopenblas0-pthread \
            bookworm "$tree" "$mirror" >&2 || return 1
        # qemu looks for the program's loader in the tree, and an absolute
        # link there (ppc64el's /lib64/ld64.so.2) would lead out of it.
        for link in "$tree"/lib64/* "$tree"/lib/*; do
            target=$(readlink "$link") || continue
            case $target in
            /*) ln -sfr "$tree$target" "$link" ;;
            esac
        done
    fi
    # OpenBLAS's own directory: Debian finds it through alternatives, which
    # an unpacked tree has not configured.
    blas_dir=/usr/lib/$4/openblas-pthread
    cat > "$1" <<EOF
[binaries]
c = ['$3-gcc', '--sysroot=$tree']
ar = '$3-ar'
strip = '$3-strip'
pkgconfig = 'pkg-config'
exe_wrapper = ['qemu-$5', '-L', '$tree', '-E', 'LD_LIBRARY_PATH=$blas_dir']

[properties]
sys_root = '$tree'
pkg_config_libdir = ['$tree$blas_dir/pkgconfig', '$tree/usr/lib/$4/pkgconfig', '$tree/usr/share/pkgconfig']
EOF
}

run_arch() { # ARCH
    arch=$1
    case $arch in
    i386) triplet=i686-linux-gnu lib=i386-linux-gnu qemu=i386 family=x86 cpu=i686 endian=little ;;
    armhf) triplet=arm-linux-gnueabihf lib=$triplet qemu=arm family=arm cpu=armv7 endian=little ;;
    arm64) triplet=aarch64-linux-gnu lib=$triplet qemu=aarch64 family=aarch64 cpu=aarch64 endian=little ;;
    ppc64el) triplet=powerpc64le-linux-gnu lib=$triplet qemu=ppc64le family=ppc64 cpu=ppc64le endian=little ;;
    s390x) triplet=s390x-linux-gnu lib=$triplet qemu=s390x family=s390x cpu=s390x endian=big ;;
    *) arch_failed "$arch" "not an architecture this script knows"; return ;;
    esac
    chargan_need_packages meson ninja-build pkg-config python3 ||
        { arch_failed "$arch" "could not install meson"; return; }
    native=no
    [ "$arch" = i386 ] && [ "$(dpkg --print-architecture)" = amd64 ] && native=yes
    build=$cross_dir/$arch
    ini=$cross_dir/$arch.ini
    mkdir -p "$build"
    if [ $native = yes ]; then
        native_i386_ini "$ini" "$triplet" "$lib" ||
            { arch_failed "$arch" "could not install the i386 compiler and libraries"; return; }
        multiplier=1
        default_suites=""
    else
        emulated_ini "$ini" "$arch" "$triplet" "$lib" "$qemu" ||
            { arch_failed "$arch" "could not install the cross tools or unpack the tree"; return; }
        multiplier=10
        default_suites="unit unit+gradcheck unit+fuzz examples"
    fi
    cat >> "$ini" <<EOF

[host_machine]
system = 'linux'
cpu_family = '$family'
cpu = '$cpu'
endian = '$endian'
EOF
    opts="--cross-file $ini -Dwerror=true -Dblas=openblas -Dpython=false -Dmpi=disabled -Ddocs=disabled"
    if [ -f "$build/meson-private/coredata.dat" ]; then
        # shellcheck disable=SC2086 # opts holds several options
        meson setup --reconfigure $opts "$build" "$root" >&2 ||
            { arch_failed "$arch" "meson setup failed"; return; }
    else
        # shellcheck disable=SC2086
        meson setup $opts "$build" "$root" >&2 || { arch_failed "$arch" "meson setup failed"; return; }
    fi
    ninja -C "$build" >&2 || { arch_failed "$arch" "the build failed"; return; }

    suite_args=""
    if [ -n "${SUITES:-$default_suites}" ]; then
        for s in ${SUITES:-$default_suites}; do suite_args="$suite_args --suite $s"; done
    else
        suite_args="--no-suite slow --no-suite python --no-suite crosscheck"
    fi
    rm -f "$build/meson-logs/testlog.json"
    echo "== $arch ($( [ $native = yes ] && echo native || echo "qemu-$qemu")): meson test $suite_args ${TESTS:-}" >&2
    # shellcheck disable=SC2086 # option and test lists are space separated
    CK_TIMEOUT_MULTIPLIER=$multiplier meson test -C "$build" --no-rebuild --print-errorlogs \
        --timeout-multiplier $multiplier $suite_args ${TESTS:-} >&2
    meson_rc=$?
    [ -f "$build/meson-logs/testlog.json" ] || { arch_failed "$arch" "no test ran"; return; }
    counts=$(python3 "$here/ci-count.py" "$build")
    count_rc=$?
    printf '%s\n' "$counts" | sed '$d' | sed "s/^/$arch: /"
    summary=$(printf '%s\n' "$counts" | tail -n 1)
    echo "$arch: $summary"
    p=${summary%% passed*}
    f=${summary#*passed, }
    f=${f%% failed*}
    passed=$((passed + p))
    failed=$((failed + f))
    if [ $meson_rc -ne 0 ] && [ $count_rc -eq 0 ]; then
        arch_failed "$arch" "meson test exited with status $meson_rc but no case failed"
    fi
}

for a in "$@"; do
    run_arch "$a"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
