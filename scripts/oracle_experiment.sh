#!/usr/bin/env bash
# oracle_experiment.sh - the SeqGAN synthetic-oracle experiment
# (bench/seqgan_oracle.c), several seeds, then the table and the
# quality-diversity frontier plot (scripts/oracle_report.py).
#
#   scripts/oracle_experiment.sh [OUT_DIR]      (default oracle-out/)
#
# Per seed: MLE pre-training of a generator of the oracle's shape (E=32,
# H=32, vocab 5000, length 20, batch 64, Adam 0.01, clip 5), evaluated after
# every epoch up to DENSE_UNTIL and every EVAL_EVERY epochs after that, at
# temperatures 0.5 .. 1.2 (the MLE frontier), and saved;
# then, from that same generator, GAN_STEPS adversarial steps with each
# estimator, evaluated every GAN_EVAL_EVERY steps and swept over the
# temperatures at the end.  With EARLY_EPOCHS, each estimator also starts
# from the generator after each of those epochs (the MLE frontier's best
# region is early, before over-fitting): files <estimator>from<E>-<seed>.csv.
# Environment (defaults in brackets):
#   SEEDS [1 2 3]  MLE_EPOCHS [60]  EVAL_EVERY [10]  DENSE_UNTIL [10]  GAN_STEPS [300]
#   GAN_EVAL_EVERY [50]  GAN_LR [1e-3]  EARLY_EPOCHS []
#   ESTIMATORS [reinforce gumbel mlecont]: also gumbelsoft, Gumbel with the soft
#     feed, and reinforcekK, REINFORCE with K Monte-Carlo rollouts per prefix
#     (SeqGAN: 16); mlecont is the control, GAN_STEPS more MLE steps at GAN_LR
#   N_EVAL [2000] samples per NLL-oracle figure (the paper: 10,000)
#   JOBS [2] seeds run at once, one thread each  BUILD_DIR [build-oracle]
#   SKIP_MLE [0]: 1 runs only the EARLY_EPOCHS part (the MLE runs exist)
# The published protocol is MLE_EPOCHS=120 N_EVAL=9984; expect about 16
# minutes of MLE per seed on one core of a 2026 x86-64 machine, and 6 more
# for the dense sweeps.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
# shellcheck disable=SC2086
chargan_need_packages $CHARGAN_BUILD_PACKAGES python3 gnuplot-nox

OUT=${1:-oracle-out}
SEEDS=${SEEDS:-1 2 3}
MLE_EPOCHS=${MLE_EPOCHS:-60}
EVAL_EVERY=${EVAL_EVERY:-10}
# Every epoch up to this one is swept too: the frontier's best points are the
# early, not yet over-fitted generators (a coarse grid misses them).
DENSE_UNTIL=${DENSE_UNTIL:-10}
GAN_STEPS=${GAN_STEPS:-300}
GAN_EVAL_EVERY=${GAN_EVAL_EVERY:-50}
GAN_LR=${GAN_LR:-1e-3}
ESTIMATORS=${ESTIMATORS:-reinforce gumbel mlecont}
EARLY_EPOCHS=${EARLY_EPOCHS:-}
N_EVAL=${N_EVAL:-2000}
JOBS=${JOBS:-2}
BUILD_DIR=${BUILD_DIR:-build-oracle}

if [ ! -d "$BUILD_DIR" ]; then
    meson setup "$BUILD_DIR" -Dbuildtype=release -Dtests=disabled -Dpython=false >/dev/null
fi
ninja -C "$BUILD_DIR" bench/seqgan_oracle >/dev/null
bin=$BUILD_DIR/bench/seqgan_oracle
mkdir -p "$OUT"

# adversarial S INIT NAME: each estimator from the generator in INIT.
adversarial() {
    local s=$1 init=$2 name=$3 est how
    for est in $ESTIMATORS; do
        case $est in
        gumbelsoft) how="--gan gumbel --gan-feed soft" ;;
        mlecont) how="--gan mlecont" ;; # the control: as many MLE steps at GAN_LR
        reinforcek*) how="--gan reinforce --rollouts ${est#reinforcek}" ;; # SeqGAN's rollouts
        *) how="--gan $est" ;;
        esac
        # shellcheck disable=SC2086
        "$bin" --seed "$s" --threads 1 --init "$init" --mle-epochs 0 $how \
            --gan-steps "$GAN_STEPS" --gan-eval-every "$GAN_EVAL_EVERY" --gan-lr "$GAN_LR" \
            --n-eval "$N_EVAL" --tmp "$OUT/tmp-$s.ckpt" >"$OUT/$est$name-$s.csv" \
            2>"$OUT/$est$name-$s.log"
    done
}

# one_seed S: MLE (saved), the estimators from it, then from each early epoch.
one_seed() {
    local s=$1 e
    if [ "${SKIP_MLE:-0}" = 0 ]; then
        "$bin" --seed "$s" --threads 1 --mle-epochs "$MLE_EPOCHS" --eval-every "$EVAL_EVERY" \
            --sweep-every "$EVAL_EVERY" --dense-until "$DENSE_UNTIL" --n-eval "$N_EVAL" \
            --tmp "$OUT/tmp-$s.ckpt" \
            --save "$OUT/mle-$s.chargan" >"$OUT/mle-$s.csv" 2>"$OUT/mle-$s.log"
        adversarial "$s" "$OUT/mle-$s.chargan" ""
    fi
    for e in $EARLY_EPOCHS; do
        # The same seed retraces the same epochs; its CSV repeats mle-S.csv.
        mkdir -p "$OUT/early"
        "$bin" --seed "$s" --threads 1 --mle-epochs "$e" --eval-every "$e" --sweep-every "$e" \
            --n-eval "$N_EVAL" --tmp "$OUT/tmp-$s.ckpt" --save "$OUT/early/mle$e-$s.chargan" \
            >"$OUT/early/mle$e-$s.csv" 2>"$OUT/early/mle$e-$s.log"
        adversarial "$s" "$OUT/early/mle$e-$s.chargan" "from$e"
    done
    rm -f "$OUT/tmp-$s.ckpt"
    echo "seed $s done" >&2
}

running=0
for s in $SEEDS; do
    one_seed "$s" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
python3 scripts/oracle_report.py "$OUT"
