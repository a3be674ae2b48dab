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
# bench/README.md), and both run in the environment of scripts/bench_env.sh
# (OpenBLAS's kernels and threads set alike).  Results land in $OUT_DIR
# (default bench-out/): chargan.json, peer.json, table.md, each side's log
# (chargan.log, peer.log), core_latency.log and fma_peak.json (the CPU's
# vector-FMA ceiling, bench/fma_peak.c, measured on the idle machine before
# the sides).
set -euo pipefail
# Both sides run in the repository's root: a relative --corpus that names a
# file from where the script was started is made absolute (one that does not
# is left to name a file of the repository, such as data/sonnets.txt).
# The same pass reads --threads, which sets both sides' OpenBLAS threads.
args=() prev= threads=2
for arg in "$@"; do
    if [ "$prev" = --corpus ] && [ "${arg#/}" = "$arg" ] && [ -e "$arg" ]; then
        arg=$PWD/$arg
    elif [ "${arg#--corpus=}" != "$arg" ] && [ "${arg#--corpus=/}" = "$arg" ] &&
        [ -e "${arg#--corpus=}" ]; then
        arg=--corpus=$PWD/${arg#--corpus=}
    fi
    [ "$prev" = --threads ] && threads=$arg
    case $arg in --threads=*) threads=${arg#--threads=} ;; esac
    args+=("$arg")
    prev=$arg
done
set -- "${args[@]}"
cd "$(dirname "$0")/.."

PEER=${PEER:-bench/torch_peer.py}
OUT_DIR=${OUT_DIR:-bench-out}
BUILD_DIR=${BUILD_DIR:-build-bench}

[ -f "$PEER" ] || { echo "bench.sh: peer benchmark not found at $PEER (set PEER=...)" >&2; exit 1; }
. scripts/bench_env.sh
chargan_bench_prepare "$BUILD_DIR" "$threads"
mkdir -p "$OUT_DIR"
echo "bench.sh: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_NUM_THREADS=$threads; libchargan first, then the peer" >&2

# Where the machine has put its two CPUs, on an idle machine before, between
# and after the two sides (bench/core_latency.c says why; sampling during the
# runs would disturb them).  No lines on a machine with one CPU.
latency() {
    echo "# $1" >> "$OUT_DIR/core_latency.log"
    "$BUILD_DIR/bench/core_latency" --every 0.5 --for 5 >> "$OUT_DIR/core_latency.log" 2>/dev/null || true
}
: > "$OUT_DIR/core_latency.log"

# Each side's progress goes to the terminal and to a log (the peer's
# repetitions are read from it for the table); the last line of its
# output is its JSON.
run_side() { # NAME COMMAND...
    local name=$1
    shift
    "$@" 2>&1 >"$OUT_DIR/$name.out" | tee "$OUT_DIR/$name.log" >&2
    tail -n 1 "$OUT_DIR/$name.out" > "$OUT_DIR/$name.json"
}
"$BUILD_DIR/bench/fma_peak" --threads "$threads" > "$OUT_DIR/fma_peak.json" || : > "$OUT_DIR/fma_peak.json"
latency "before libchargan"
run_side chargan "$BUILD_DIR/bench/chargan_bench" --threads 2 --seed 1234 "$@"
latency "between"
run_side peer /usr/bin/python3 "$PEER" --threads 2 --seed 1234 "$@"
latency "after the peer"
/usr/bin/python3 scripts/bench_table.py "$OUT_DIR/chargan.json" "$OUT_DIR/peer.json" \
    "$OUT_DIR/peer.log" "$OUT_DIR/core_latency.log" "$OUT_DIR/fma_peak.json" | tee "$OUT_DIR/table.md"
