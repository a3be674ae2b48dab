# bench_env.sh - sourced by scripts/bench.sh and scripts/curve.sh, which run
# libchargan's chargan_bench and the PyTorch peer under the same conditions.
#
# chargan_bench_prepare BUILD_DIR THREADS: installs what both sides need,
# builds chargan_bench, core_latency and fma_peak (release, OpenBLAS) in BUILD_DIR,
# and exports the environment both processes run in:
# - OPENBLAS_CORETYPE=SkylakeX on AVX-512 machines: OpenBLAS 0.3.21 picks its
#   AVX2 kernels there otherwise, and the peer's torch uses the same library;
# - OMP_WAIT_POLICY=PASSIVE (unless set);
# - OPENBLAS_NUM_THREADS=THREADS: torch's --threads caps its own pool but not
#   the OpenBLAS it calls, which starts a thread per core (the peer run with
#   --threads 1 on 2 cores used 1.99 of them).

# shellcheck source=scripts/deps.sh
. "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

chargan_bench_prepare() {
    chargan_need_packages meson ninja-build pkg-config gcc libopenblas-dev python3-torch \
        python3-numpy
    if [ ! -d "$1" ]; then
        meson setup "$1" -Dbuildtype=release -Dblas=openblas -Dtests=disabled >&2
    fi
    ninja -C "$1" bench/chargan_bench bench/core_latency bench/fma_peak >&2
    if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
        export OPENBLAS_CORETYPE=SkylakeX
    fi
    export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
    export OPENBLAS_NUM_THREADS=$2
}
