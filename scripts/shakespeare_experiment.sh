#!/usr/bin/env bash
# shakespeare_experiment.sh - MLE against adversarial generators on real text,
# at matched temperatures: data/tinyshakespeare.txt, the last 10% held out.
#
#   scripts/shakespeare_experiment.sh [OUT_DIR]     (default shakespeare-out/)
#
# Trains, with the same seed and settings (E=64, H=256, B=32, T=64, 2
# threads), an MLE generator for MLE_STEPS steps and, from the same MLE phase,
# one generator per adversarial estimator (D pre-training, then GAN_STEPS
# rounds); then `chargan eval --sweep` scores each at temperatures TEMPS:
# held-out bits/char, BLEU-4 of SAMPLES samples' first lines against all the
# held-out lines, and self-BLEU-4.  Writes OUT_DIR/<generator>.csv and .png,
# and prints one table.  Environment (defaults in brackets):
#   MLE_STEPS [3000]  GAN_STEPS [500]  D_PRETRAIN [300]  SEED [1]
#   TEMPS [0.6,0.8,1.0,1.2]  SAMPLES [500]  LENGTH [120]  THREADS [2]
#   ESTIMATORS [reinforce gumbel; also gumbelsoft: Gumbel with --gan-feed soft;
#               mlemore: the control, MLE alone for MLE_STEPS + GAN_STEPS steps,
#               as many generator updates as an adversarial run makes]
#   GAN_ARGS [] extra `chargan train` options
#   BUILD_DIR [build-shakespeare]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
# shellcheck disable=SC2086
chargan_need_packages $CHARGAN_BUILD_PACKAGES gnuplot-nox

OUT=${1:-shakespeare-out}
MLE_STEPS=${MLE_STEPS:-3000}
GAN_STEPS=${GAN_STEPS:-500}
D_PRETRAIN=${D_PRETRAIN:-300}
SEED=${SEED:-1}
TEMPS=${TEMPS:-0.6,0.8,1.0,1.2}
SAMPLES=${SAMPLES:-500}
LENGTH=${LENGTH:-120}
THREADS=${THREADS:-2}
ESTIMATORS=${ESTIMATORS:-reinforce gumbel}
GAN_ARGS=${GAN_ARGS:-}
BUILD_DIR=${BUILD_DIR:-build-shakespeare}

if [ ! -d "$BUILD_DIR" ]; then
    meson setup "$BUILD_DIR" -Dbuildtype=release -Dtests=disabled -Dpython=false >/dev/null
fi
ninja -C "$BUILD_DIR" cli/chargan >/dev/null
chargan=$BUILD_DIR/cli/chargan
corpus=data/tinyshakespeare.txt
mkdir -p "$OUT"
# The trainer holds out the last 10% of the characters (ASCII: of the bytes).
size=$(wc -c <"$corpus")
tail -c $((size - size * 9 / 10)) "$corpus" >"$OUT/heldout.txt"

common=(--embed 64 --hidden 256 --batch 32 --seq 64 --threads "$THREADS" --seed "$SEED" -q)
echo "MLE: $MLE_STEPS steps" >&2
"$chargan" train "$corpus" -o "$OUT/mle.chargan" --steps "$MLE_STEPS" "${common[@]}" \
    --log "$OUT/mle.jsonl"
for est in $ESTIMATORS; do
    if [ "$est" = mlemore ]; then
        echo "mlemore: $((MLE_STEPS + GAN_STEPS)) MLE steps" >&2
        "$chargan" train "$corpus" -o "$OUT/mlemore.chargan" --steps $((MLE_STEPS + GAN_STEPS)) \
            "${common[@]}" --log "$OUT/mlemore.jsonl"
        continue
    fi
    echo "$est: $MLE_STEPS MLE steps, $D_PRETRAIN D steps, $GAN_STEPS rounds" >&2
    case $est in
    gumbelsoft) how="--gan gumbel --gan-feed soft" ;;
    *) how="--gan $est" ;;
    esac
    # shellcheck disable=SC2086 # GAN_ARGS and how are lists of options
    "$chargan" train "$corpus" -o "$OUT/$est.chargan" --pretrain-steps "$MLE_STEPS" \
        $how --d-pretrain-steps "$D_PRETRAIN" --gan-steps "$GAN_STEPS" "${common[@]}" \
        --log "$OUT/$est.jsonl" $GAN_ARGS
done
for g in mle $ESTIMATORS; do
    echo "eval $g" >&2
    "$chargan" eval "$OUT/$g.chargan" "$OUT/heldout.txt" --stream 32 --bleu --max-n 4 \
        --samples "$SAMPLES" --length "$LENGTH" --seed "$SEED" --sweep "$TEMPS" \
        --csv "$OUT/$g.csv" --plot "$OUT/$g.png" >/dev/null
done

{
    echo "| generator | temperature | held-out bits/char | BLEU-4 | self-BLEU-4 |"
    echo "|---|---:|---:|---:|---:|"
    for g in mle $ESTIMATORS; do
        # temperature,nll_test_bpc,bleu4,self_bleu4
        tail -n +2 "$OUT/$g.csv" | while IFS=, read -r t bpc bleu self; do
            printf '| %s | %s | %.3f | %.3f | %.3f |\n' "$g" "$t" "$bpc" "$bleu" "$self"
        done
    done | sort -t'|' -k3,3 -k2,2
} | tee "$OUT/table.md"
