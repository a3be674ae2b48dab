#!/usr/bin/env bash
# How fast libchargan and the PyTorch peer learn per MLE step: held-out
# bits/char of the benchmark's 60 s model (E=64, H=256, B=32, T=64, Adam
# 2e-3, tinyshakespeare) after the same numbers of steps, one side after the
# other (chargan_bench --curve, then bench/peer_curve.py), as a table.
# Options go to both sides (--threads, --seed, --lr, --steps N,N,...);
# --forget-bias and --plain-output-bias go to libchargan's only (the peer's
# nn.LSTM has no forget bias, the benchmark uses 0; its output bias starts
# uniform in +-1/sqrt(H), ours at the corpus's log unigram frequencies unless
# given --plain-output-bias, which keeps the one chargan_model_new drew).
# About 6 minutes on 2 cores, most of it the peer.
#
#   scripts/curve.sh
#   scripts/curve.sh --steps 500,1000 --forget-bias 1
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
OUT_DIR=${OUT_DIR:-bench-out}

steps=250,500,1000,1500,2000,3000 threads=2
ours=() peer=()
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) steps=$2; shift 2 ;;
        --forget-bias) ours+=("$1" "$2"); shift 2 ;;
        --plain-output-bias) ours+=("$1"); shift ;;
        --threads) threads=$2; ours+=("$1" "$2"); peer+=("$1" "$2"); shift 2 ;;
        --seed|--lr) ours+=("$1" "$2"); peer+=("$1" "$2"); shift 2 ;;
        *) echo "curve.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

. scripts/bench_env.sh
chargan_bench_prepare "$BUILD_DIR" "$threads"
mkdir -p "$OUT_DIR"
"$BUILD_DIR/bench/chargan_bench" --curve "$steps" "${ours[@]}" | tee "$OUT_DIR/curve-chargan.txt" >&2
/usr/bin/python3 bench/peer_curve.py --steps "$steps" "${peer[@]}" |
    tee "$OUT_DIR/curve-peer.txt" >&2
paste <(grep '^step' "$OUT_DIR/curve-chargan.txt") <(grep '^step' "$OUT_DIR/curve-peer.txt") |
    awk 'BEGIN { print "| steps | libchargan bits/char | peer bits/char | difference | libchargan s | peer s |";
                 print "|---:|---:|---:|---:|---:|---:|" }
         { printf "| %d | %.4f | %.4f | %+.4f | %.1f | %.1f |\n", $2, $6, $12, $6 - $12, $4, $10 }'
