# deps.sh - sourced by the scripts that install what they need (test.sh, demo.sh,
# bench_env.sh, ...) and by .ci/run.
# chargan_need_packages PKG...: installs whichever of the Debian packages are
# missing (as root, or through sudo), running apt-get update only when apt does
# not know a package yet or the first install attempt fails (stale lists).

# Whether package $1 is installed: for this machine's architecture (or
# "all") unless the name asks for another (libfoo:i386).  dpkg-query lists a
# package installed for two architectures twice.
chargan_installed() {
    case $1 in
    *:*) [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ] ;;
    *)
        dpkg-query -W -f='${db:Status-Status} ${Architecture}\n' "$1" 2>/dev/null |
            grep -qx "installed \($(dpkg --print-architecture)\|all\)"
        ;;
    esac
}

chargan_need_packages() {
    _missing=""
    for _p in "$@"; do
        chargan_installed "$_p" || _missing="$_missing $_p"
    done
    [ -n "$_missing" ] || return 0

    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing packages:$_missing; this is not a Debian-like system, install them by hand" >&2
        return 1
    fi
    _sudo=""
    if [ "$(id -u)" != 0 ]; then
        # sudo asks for a password once at most (on a terminal), and never
        # without one; a user it will not let in gets the message below
        if command -v sudo >/dev/null 2>&1 &&
            { sudo -n true 2>/dev/null || { [ -t 0 ] && sudo -v; }; }; then
            _sudo="sudo -n"
        else
            echo "error: missing packages:$_missing; run as root or install them by hand" >&2
            return 1
        fi
    fi
    echo "installing:$_missing" >&2
    _need_update=no
    for _p in $_missing; do
        apt-cache show "$_p" >/dev/null 2>&1 || _need_update=yes
    done
    if [ "$_need_update" = yes ]; then
        $_sudo apt-get update -q || return 1
    fi
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    if ! $_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends $_missing; then
        $_sudo apt-get update -q || return 1
        # shellcheck disable=SC2086
        $_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends $_missing || return 1
    fi
}

# chargan_need_i386 PKG...: adds i386 to dpkg's architectures (Debian's
# multiarch: its libraries install beside this machine's own) if it is not
# there yet, then installs the packages named (e.g. libopenblas-dev:i386).
chargan_need_i386() {
    if ! dpkg --print-foreign-architectures | grep -qx i386; then
        _sudo=""
        [ "$(id -u)" = 0 ] || _sudo=sudo
        echo "adding the i386 architecture" >&2
        $_sudo dpkg --add-architecture i386 && $_sudo apt-get update -q >&2 || return 1
    fi
    chargan_need_packages "$@"
}

# What building and testing needs.  gcc recommends libc6-dev rather than
# depending on it, so it is named; g++ is for the C++ header test; libblas-dev
# is Debian's reference BLAS, which -Dblas=netlib builds against.
CHARGAN_BUILD_PACKAGES="meson ninja-build pkg-config gcc libc6-dev binutils libopenblas-dev"
CHARGAN_TEST_PACKAGES="$CHARGAN_BUILD_PACKAGES g++ check libblas-dev python3"
# The Python package's tests read parameters as numpy arrays, run the cffi
# example, and cross-check BLEU against nltk's.
CHARGAN_TEST_PACKAGES="$CHARGAN_TEST_PACKAGES python3-numpy python3-cffi python3-nltk"
# doxygen builds the API reference (-Ddocs=auto) and its warnings are tested;
# gnuplot-nox draws `chargan plot`; abigail-tools runs the ABI check.
CHARGAN_TEST_PACKAGES="$CHARGAN_TEST_PACKAGES doxygen gnuplot-nox abigail-tools"
# Open MPI: -Dmpi=auto finds it, and the mpi suite runs 2 ranks on loopback.
CHARGAN_TEST_PACKAGES="$CHARGAN_TEST_PACKAGES libopenmpi-dev openmpi-bin"
# scripts/fuzz.sh: clang and its libFuzzer / sanitizer runtimes.
CHARGAN_FUZZ_PACKAGES="clang libclang-rt-14-dev"
