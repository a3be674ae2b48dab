#!/usr/bin/env bash
# Runs libchargan's benchmark (bench/chargan_bench.c) and the PyTorch peer
# (bench/torch_peer.py, see bench/README.md) side by side in one run on this machine and
# prints a table of ratios against the targets of the performance issue.
#
#   scripts/bench.sh            # full run: about 10 minutes (two 60 s budgets, peer waits for quiet)
#   scripts/bench.sh --quick    # sanity run, under a minute
#   scripts/bench.sh --batch 64 --seq 128 --no-budget   # another workload
#
# Both sides use 2 threads, seed 1234, tinyshakespeare, B=32, T=64, medians of
# 5 repetitions after a warm-up, unless options say otherwise: every option is
# given to both sides (chargan_bench takes the peer's options; see
# bench/README.md).  OPENBLAS_CORETYPE=SkylakeX is set for BOTH
# processes on AVX-512 machines (OpenBLAS 0.3.21 otherwise picks its AVX2
# kernels there; the peer's torch uses the same libopenblas).  Results land in
# $OUT_DIR (default bench-out/): chargan.json, peer.json, table.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PEER=${PEER:-bench/torch_peer.py}
OUT_DIR=${OUT_DIR:-bench-out}
BUILD_DIR=${BUILD_DIR:-build-bench}

. scripts/deps.sh
chargan_need_packages meson ninja-build pkg-config gcc libopenblas-dev python3-torch python3-numpy
[ -f "$PEER" ] || { echo "bench.sh: peer benchmark not found at $PEER (set PEER=...)" >&2; exit 1; }

if [ ! -d "$BUILD_DIR" ]; then
    meson setup "$BUILD_DIR" -Dbuildtype=release -Dblas=openblas -Dtests=disabled >&2
fi
ninja -C "$BUILD_DIR" bench/chargan_bench >&2

if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX
fi
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# --threads N caps torch's own pool, but not the OpenBLAS it calls, which
# starts one thread per core: the peer run with --threads 1 on 2 cores used
# 1.99 cores.  Both processes get OpenBLAS capped at the same N.
threads=2 prev=
for arg in "$@"; do
    [ "$prev" = --threads ] && threads=$arg
    prev=$arg
done
export OPENBLAS_NUM_THREADS=$threads
mkdir -p "$OUT_DIR"
echo "bench.sh: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_NUM_THREADS=$threads; libchargan first, then the peer" >&2
"$BUILD_DIR/bench/chargan_bench" --threads 2 --seed 1234 "$@" | tail -n 1 > "$OUT_DIR/chargan.json"
/usr/bin/python3 "$PEER" --threads 2 --seed 1234 "$@" | tail -n 1 > "$OUT_DIR/peer.json"
/usr/bin/python3 scripts/bench_table.py "$OUT_DIR/chargan.json" "$OUT_DIR/peer.json" | tee "$OUT_DIR/table.md"
