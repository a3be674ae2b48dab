# roundtrip.sh - train -> info -> sample -> eval on a slice of the sonnets,
# plus the JSONL log, progress lines, resume and checkpoint equivalence.
. "$(dirname "$0")/common.sh"

M=$TMP/model.ckpt

# --- train -----------------------------------------------------------
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$M" $TINY --steps 20 --log "$TMP/log.jsonl"
[ -s "$M" ] || fail "train did not write the model"
[ "$(value model "$TMP/out")" = "$M" ] || { show; fail "train: no 'model:' line"; }
[ "$(value steps "$TMP/out")" = 20 ] || { show; fail "train: expected 'steps: 20'"; }
grep -q '^val_bpc: [0-9.]* bits/char$' "$TMP/out" || { show; fail "train: no val_bpc line"; }
[ ! -s "$TMP/err" ] || { show; fail "train -q wrote to stderr"; }
# The library's atomic save leaves no temporary file behind.
ls "$TMP" | grep -q 'tmp-' && fail "a temporary file was left next to the model"

# The log: one JSON object per line, MLE reports then the final validation.
[ -s "$TMP/log.jsonl" ] || fail "--log wrote nothing"
grep -v '^{"phase":"[a-z]*","step":[0-9]*,"global_step":[0-9]*,.*}$' "$TMP/log.jsonl" &&
    fail "--log: a line is not a JSON record"
head -n 1 "$TMP/log.jsonl" | grep -q '"phase":"mle".*"loss":[0-9]' ||
    fail "--log: the first record is not an MLE report with a loss"
for key in loss val_bpc d_loss d_accuracy tokens_per_s elapsed; do
    grep -q "\"$key\":" "$TMP/log.jsonl" || fail "--log: no '$key' key"
done
tail -n 1 "$TMP/log.jsonl" | grep -q '"phase":"eval","step":20,.*"val_bpc":[0-9]' ||
    fail "--log: the last record is not the final validation"
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$TMP/log.jsonl" ||
        fail "--log: not valid JSON"
fi

# A fresh generator starts from the corpus's unigram distribution
# (chargan_trainer_init_output_bias): its first batch costs about the
# unigram entropy, well under the log V of a uniform start.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/one.ckpt" $TINY --steps 1 --report-every 1 \
    --log "$TMP/one.jsonl"
if command -v python3 >/dev/null 2>&1; then
    python3 - "$TMP/corpus.txt" "$TMP/one.jsonl" <<'EOF' || fail "train: the first loss is not near the unigram entropy"
import collections, json, math, sys
text = open(sys.argv[1], encoding="utf-8").read().replace("\r\n", "\n")
counts = collections.Counter(text).values()
n = sum(counts)
unigram = -sum(c / n * math.log(c / n) for c in counts)
uniform = math.log(len(counts) + 2)  # with the start and unknown ids
loss = json.loads(open(sys.argv[2]).readline())["loss"]
print(f"first loss {loss:.3f} nats; unigram entropy {unigram:.3f}, log V {uniform:.3f}")
sys.exit(0 if loss < (unigram + uniform) / 2 else 1)
EOF
fi

# --- info --------------------------------------------------------------
expect_ok "$CHARGAN" info "$M"
for line in "  hidden_dim: 16" "  embed_dim: 8" "  num_layers: 1" "  global_step: 20" \
    "  batch: 8" "  seq_len: 32" "  seed: 7" "  estimator: none" "discriminator: none"; do
    grep -qxF "$line" "$TMP/out" || { show; fail "info: no line '$line'"; }
done
grep -q '^    lstm\.0\.w_ih  *8 x 64  *512$' "$TMP/out" || { show; fail "info: no lstm.0.w_ih [8,64]"; }
grep -q '^  characters: ".* .*"$' "$TMP/out" || { show; fail "info: no character list"; }
# Control characters are octal escapes, valid C: "\x01bc" read as one character.
# The corpus ranks them: b (3 a line), U+0001 (2), then one each, by code point.
i=0
while [ $i -lt 40 ]; do printf 'bbb\001\001\302\205c\n'; i=$((i + 1)); done >"$TMP/ctl.txt"
expect_ok "$CHARGAN" train "$TMP/ctl.txt" -o "$TMP/ctl.ckpt" $TINY --seq 8 --steps 1 --val-fraction 0
expect_ok "$CHARGAN" info "$TMP/ctl.ckpt"
grep -qxF '  characters: "b\001\nc\302\205"' "$TMP/out" ||
    { show; fail "info: control characters not as octal escapes"; }
# A file with a discriminator alone (chargan_model_save of one): here the
# DMOD and TOKN sections of a GAN checkpoint in a container of their own.
if command -v python3 >/dev/null 2>&1; then
    expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/gan.ckpt" $TINY --steps 2 --gan reinforce \
        --gan-steps 1 --d-pretrain-steps 1
    python3 - "$TMP/gan.ckpt" "$TMP/disc.ckpt" <<'PY' || fail "cannot cut the discriminator out"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
n = struct.unpack_from("<I", data, 16)[0]
pos, kept = 24, []
for _ in range(n):
    tag, flags, length = struct.unpack_from("<4sIQ", data, pos)
    if tag in (b"DMOD", b"TOKN"):
        kept.append(data[pos:pos + 16 + length + 4])
    pos += 16 + length + 4
head = data[:16] + struct.pack("<I", len(kept))
open(sys.argv[2], "wb").write(head + struct.pack("<I", zlib.crc32(head)) + b"".join(kept))
PY
    expect_ok "$CHARGAN" info "$TMP/disc.ckpt"
    grep -qx "generator: none" "$TMP/out" && grep -q "^discriminator:" "$TMP/out" &&
        grep -q '^  characters: "' "$TMP/out" || { show; fail "info: a discriminator alone"; }
fi
# The total is the sum of the tensors' sizes.
sum=$(awk '/^  parameters:/{p=1;next} /^  total_weights:/{p=0} p{s+=$NF} END{print s}' "$TMP/out")
total=$(sed -n 's/^  total_weights: //p' "$TMP/out" | head -n 1)
[ "$sum" = "$total" ] || fail "info: total_weights $total is not the sum $sum"
vocab=$(sed -n 's/^  vocab_size: //p' "$TMP/out" | head -n 1)
grep -q "^    embed  *$vocab x 8 " "$TMP/out" || { show; fail "info: embed is not [V,E]"; }

# --- sample ------------------------------------------------------------
expect_ok "$CHARGAN" sample "$M" -n 100 --seed 3
cp "$TMP/out" "$TMP/sample1"
[ "$(wc -c <"$TMP/sample1")" -eq 101 ] || fail "sample -n 100: expected 100 characters and a newline"
expect_ok "$CHARGAN" sample "$M" -n100 --seed=3
cmp -s "$TMP/out" "$TMP/sample1" || fail "sample: the same seed gave different text"
expect_ok "$CHARGAN" sample "$M" -n 100 --seed 4
cmp -s "$TMP/out" "$TMP/sample1" && fail "sample: different seeds gave the same text"
# Streams split across threads: each has its own random stream, so the same text.
expect_ok "$CHARGAN" sample "$M" -n 50 --streams 5 --seed 3
cp "$TMP/out" "$TMP/streams1"
expect_ok "$CHARGAN" sample "$M" -n 50 --streams 5 --seed 3 --threads 3
if [ "$(uname -m)" = x86_64 ]; then
    cmp -s "$TMP/out" "$TMP/streams1" || fail "sample --threads 3: other text than one thread"
fi
# Greedy decoding ignores the seed.
expect_ok "$CHARGAN" sample "$M" -n 50 --top-k 1 --seed 1
cp "$TMP/out" "$TMP/greedy"
expect_ok "$CHARGAN" sample "$M" -n 50 --top-k 1 --seed 2
cmp -s "$TMP/out" "$TMP/greedy" || fail "sample --top-k 1 depends on the seed"
expect_ok "$CHARGAN" sample "$M" -n 30 --prime "From fairest" --temperature 0.5 --top-p 0.9 --seed 1
head -c 12 "$TMP/out" | grep -qx "From fairest" || { show; fail "sample --prime: output does not start with the prime"; }
expect_ok "$CHARGAN" sample "$M" -n 40 --streams 3 --seed 1
[ "$(grep -c '^$' "$TMP/out")" -ge 2 ] || { show; fail "sample --streams 3: expected blank-line separators"; }

# --- eval --------------------------------------------------------------
expect_ok "$CHARGAN" eval "$M" "$TMP/corpus.txt"
cp "$TMP/out" "$TMP/eval1"
chars=$(value chars "$TMP/eval1")
crlf=$(tr -cd '\r' <"$TMP/corpus.txt" | wc -c)
bytes=$(wc -c <"$TMP/corpus.txt")
[ "$chars" -eq $((bytes - crlf)) ] || fail "eval: $chars characters, expected $((bytes - crlf))"
[ "$(value unknown "$TMP/eval1")" = 0 ] || fail "eval: unknown characters in the training text"
nll=$(value nll "$TMP/eval1" | cut -d' ' -f1)
bpc=$(value bpc "$TMP/eval1" | cut -d' ' -f1)
awk -v n="$nll" -v b="$bpc" 'BEGIN{d=n/log(2)-b; exit !(n>0 && d<1e-5 && d>-1e-5)}' ||
    fail "eval: bpc $bpc is not nll $nll / ln 2"
# Training helps: an untrained model of the same shape scores worse.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/untrained.ckpt" $TINY --steps 0
expect_ok "$CHARGAN" eval "$TMP/untrained.ckpt" "$TMP/corpus.txt"
bpc0=$(value bpc "$TMP/out" | cut -d' ' -f1)
awk -v a="$bpc" -v b="$bpc0" 'BEGIN{exit !(a < b - 0.1)}' ||
    fail "eval: 20 steps did not lower bits/char ($bpc0 -> $bpc)"
# Characters outside the vocabulary are counted, not an error.
printf 'the \316\251 and \342\202\254 signs\n' >"$TMP/odd.txt"
expect_ok "$CHARGAN" eval "$M" "$TMP/odd.txt" --seq 8
[ "$(value unknown "$TMP/out")" = 2 ] || { show; fail "eval: expected 2 unknown characters"; }
[ "$(value window "$TMP/out")" = 8 ] || { show; fail "eval: --seq not applied"; }
# Standard input as the text.
expect_ok "$CHARGAN" eval "$M" - <"$TMP/corpus.txt"
[ "$(value nll "$TMP/out")" = "$(value nll "$TMP/eval1")" ] || fail "eval: stdin differs from the file"

# The other metrics: stream NLL, NLL-oracle, BLEU and self-BLEU, repeatable.
expect_ok "$CHARGAN" eval "$M" "$TMP/corpus.txt" --stream 4
[ "$(value streams "$TMP/out")" = 4 ] || { show; fail "eval --stream: no 'streams: 4'"; }
chars=$(value chars "$TMP/out")
[ "$(value predicted "$TMP/out")" = $(((chars - 1) / 4 * 4)) ] ||
    { show; fail "eval --stream 4: 'predicted' is not 4 x (chars - 1) / 4"; }
grep -q '^bpc: [0-9.]* bits/char$' "$TMP/out" || { show; fail "eval --stream: no bpc"; }
expect_ok "$CHARGAN" eval "$M" --oracle "$M" --samples 50 --length 20 --temperature 0.8
cp "$TMP/out" "$TMP/oracle1"
grep -q '^nll_oracle: [0-9.]* nats/token$' "$TMP/oracle1" || { show; fail "eval --oracle"; }
grep -q '^text:' "$TMP/oracle1" && fail "eval --oracle without a text reported text figures"
expect_ok "$CHARGAN" eval "$M" --oracle "$M" --samples 50 --length 20 --temperature 0.8
cmp -s "$TMP/out" "$TMP/oracle1" || fail "eval --oracle is not repeatable"
expect_ok "$CHARGAN" eval "$M" "$TMP/corpus.txt" --bleu --samples 20 --length 60 --max-n 3
for key in bleu2 bleu3 self_bleu2 self_bleu3; do
    v=$(value $key "$TMP/out")
    awk -v v="$v" 'BEGIN{exit !(v != "" && v >= 0 && v <= 1)}' || { show; fail "eval --bleu: $key"; }
done
grep -q '^bleu4:' "$TMP/out" && fail "eval --bleu --max-n 3 reported BLEU-4"
[ "$(value bleu_hypotheses "$TMP/out")" -ge 2 ] || { show; fail "eval --bleu: hypotheses"; }

# --- determinism through the CLI ---------------------------------------------
# Checkpointing every 7 steps splits training into library calls of 7, 7, 6
# steps and saves in between; the result must not change.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/ck.ckpt" $TINY --steps 20 --checkpoint-every 7
expect_ok "$CHARGAN" sample "$TMP/ck.ckpt" -n 100 --seed 3
cmp -s "$TMP/out" "$TMP/sample1" || fail "--checkpoint-every changed the trained model"

# Resume: 10 steps, then on to 20 from the checkpoint, equals 20 in one go.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/half.ckpt" $TINY --steps 10
expect_ok "$CHARGAN" info "$TMP/half.ckpt"
grep -qxF "  global_step: 10" "$TMP/out" || fail "train --steps 10: global_step is not 10"
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/resumed.ckpt" --resume "$TMP/half.ckpt" \
    --steps 20 -q --log "$TMP/resume.jsonl"
[ "$(value steps "$TMP/out")" = 20 ] || { show; fail "resume: expected 'steps: 20'"; }
head -n 1 "$TMP/resume.jsonl" | grep -q "\"phase\":\"mle\",\"step\":20," || fail "resume: the log does not continue at step 20"
expect_ok "$CHARGAN" sample "$TMP/resumed.ckpt" -n 100 --seed 3
cmp -s "$TMP/out" "$TMP/sample1" || fail "resume: the resumed model differs from the uninterrupted one"
expect_ok "$CHARGAN" eval "$TMP/resumed.ckpt" "$TMP/corpus.txt"
cmp -s "$TMP/out" "$TMP/eval1" || sed "s|$TMP/resumed.ckpt|$M|" "$TMP/out" | cmp -s - "$TMP/eval1" ||
    fail "resume: eval differs from the uninterrupted model"
# A finished run resumed with the same count has nothing left to do.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/again.ckpt" --resume "$TMP/resumed.ckpt" --steps 20 -q
[ "$(value steps "$TMP/out")" = 20 ] || fail "resume of a finished run took more steps"

# --- adversarial training --------------------------------------------------
# Three phases; resuming across their boundaries equals one uninterrupted run.
GAN="--gan gumbel --beta-start 2 --beta-max 10 --loss rsgan --anneal linear --d-pretrain-steps 6 --gan-steps 8"
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/gan.ckpt" $TINY $GAN --pretrain-steps 10 \
    --log "$TMP/gan.jsonl"
[ "$(value steps "$TMP/out")" = 18 ] || { show; fail "gan: expected 18 generator steps"; }
for phase in mle discriminator adversarial eval; do
    grep -q "\"phase\":\"$phase\"" "$TMP/gan.jsonl" || fail "gan: no '$phase' record in the log"
done
grep '"phase":"adversarial"' "$TMP/gan.jsonl" | grep -q '"d_loss":[0-9]' ||
    fail "gan: no discriminator loss in the adversarial records"
expect_ok "$CHARGAN" info "$TMP/gan.ckpt"
for line in "discriminator:" "  estimator: gumbel" "  beta_start: 2" "  beta_max: 10" "  anneal: linear over 8 steps" \
    "  loss: rsgan" "  feed: hard"; do
    grep -qxF "$line" "$TMP/out" || { show; fail "gan info: no line '$line'"; }
done
grep -q '^    out\.w  *16 x 1 ' "$TMP/out" || { show; fail "gan info: no discriminator head"; }
grep -q '^  discriminator_optimizer: adam .* steps 14$' "$TMP/out" ||
    { show; fail "gan info: the discriminator did not take 6 + 8 steps"; }
expect_ok "$CHARGAN" sample "$TMP/gan.ckpt" -n 100 --seed 3
cp "$TMP/out" "$TMP/gan-sample"
# Stop after the MLE phase and part of the discriminator's, then resume.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/gan1.ckpt" $TINY --gan gumbel --beta-start 2 \
    --beta-max 10 \
    --loss rsgan --anneal linear --anneal-steps 8 --pretrain-steps 10 --d-pretrain-steps 3 \
    --gan-steps 0
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/gan2.ckpt" --resume "$TMP/gan1.ckpt" -q \
    --pretrain-steps 10 --d-pretrain-steps 6 --gan-steps 3
# The first command repeated with --resume: the same settings are accepted.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/gan3.ckpt" --resume "$TMP/gan2.ckpt" \
    $TINY $GAN --pretrain-steps 10
[ "$(value steps "$TMP/out")" = 18 ] || { show; fail "gan resume: expected 18 generator steps"; }
expect_ok "$CHARGAN" sample "$TMP/gan3.ckpt" -n 100 --seed 3
cmp -s "$TMP/out" "$TMP/gan-sample" || fail "gan resume: differs from the uninterrupted run"
# --gan-lr: the discriminator's rate, and the generator's from the rounds on.
GLR="$GAN --pretrain-steps 10 --gan-lr 1e-4 --checkpoint-every 3"
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/glr.ckpt" $TINY $GLR
expect_ok "$CHARGAN" info "$TMP/glr.ckpt"
for opt in generator discriminator; do
    grep -q "^  ${opt}_optimizer: adam lr 0.0001 " "$TMP/out" || { show; fail "--gan-lr: $opt lr"; }
done
cmp -s "$TMP/glr.ckpt" "$TMP/gan.ckpt" && fail "--gan-lr 1e-4 did not change the training"
# Stopped in the MLE phase (the generator at --lr), then in the rounds (at
# --gan-lr); the same command with --resume finishes the run bit for bit
# (--anneal-steps: its default follows --gan-steps).
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/glr1.ckpt" $TINY $GLR --pretrain-steps 4 \
    --d-pretrain-steps 0 --gan-steps 0 --anneal-steps 8
expect_ok "$CHARGAN" info "$TMP/glr1.ckpt"
grep -q '^  generator_optimizer: adam lr 0.01 ' "$TMP/out" || { show; fail "--gan-lr: MLE lr"; }
bad_resume() {
    expect_error 2 "$1" "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/x.ckpt" --resume "$2" \
        $TINY $GLR "$3" "$4"
    [ -e "$TMP/x.ckpt" ] && fail "a refused resume wrote a model"
    return 0
}
bad_resume "--lr: 0.02 differs from the checkpoint's 0.01" "$TMP/glr1.ckpt" --lr 0.02
bad_resume "--gan-lr: 0.0002 differs from the checkpoint's 0.0001" "$TMP/glr1.ckpt" --gan-lr 2e-4
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/glr2.ckpt" --resume "$TMP/glr1.ckpt" \
    $TINY $GLR --gan-steps 4 --anneal-steps 8
expect_ok "$CHARGAN" info "$TMP/glr2.ckpt"
grep -q '^  generator_optimizer: adam lr 0.0001 ' "$TMP/out" || { show; fail "--gan-lr: rounds lr"; }
bad_resume "--gan-lr: 0.0002 differs from the checkpoint's 0.0001" "$TMP/glr2.ckpt" --gan-lr 2e-4
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/glr3.ckpt" --resume "$TMP/glr2.ckpt" $TINY $GLR
cmp -s "$TMP/glr3.ckpt" "$TMP/glr.ckpt" || fail "--gan-lr resume: differs from the uninterrupted run"
# Without the options, the resumed run takes both rates from the checkpoint.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/glr4.ckpt" --resume "$TMP/glr2.ckpt" -q \
    --pretrain-steps 10 --d-pretrain-steps 6 --gan-steps 8
cmp -s "$TMP/glr4.ckpt" "$TMP/glr.ckpt" || fail "--gan-lr resume without the options differs"
# The soft feed: its checkpoint says so, a resume keeps it (and refuses the
# hard feed) and finishes the run bit for bit.
SOFT="--gan gumbel --gan-feed soft --beta-max 4 --pretrain-steps 4 --d-pretrain-steps 2 --gan-steps 4"
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/soft.ckpt" $TINY $SOFT
expect_ok "$CHARGAN" info "$TMP/soft.ckpt"
grep -qxF "  feed: soft" "$TMP/out" || { show; fail "soft feed info: no line '  feed: soft'"; }
cmp -s "$TMP/soft.ckpt" "$TMP/gan.ckpt" && fail "--gan-feed soft did not change the training"
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/soft1.ckpt" $TINY $SOFT --gan-steps 2 \
    --anneal-steps 4
expect_error 2 "--gan-feed: hard differs from the checkpoint's soft" "$CHARGAN" train \
    "$TMP/corpus.txt" -o "$TMP/x.ckpt" --resume "$TMP/soft1.ckpt" --gan-feed hard
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/soft2.ckpt" --resume "$TMP/soft1.ckpt" \
    $TINY $SOFT
cmp -s "$TMP/soft2.ckpt" "$TMP/soft.ckpt" || fail "soft feed resume: differs from the uninterrupted run"
# The other estimator runs through the same flow.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/rf.ckpt" $TINY --gan reinforce --gamma 0.8 \
    --rollouts 2 --mle-weight 0.5 --d-steps 2 --pretrain-steps 4 --d-pretrain-steps 2 --gan-steps 3
expect_ok "$CHARGAN" info "$TMP/rf.ckpt"
for line in "  estimator: reinforce" "  gamma: 0.8" "  rollouts: 2" "  mle_weight: 0.5" "  d_steps: 2"; do
    grep -qxF "$line" "$TMP/out" || { show; fail "reinforce info: no line '$line'"; }
done
# Staged (the MLE steps first, without the adversarial phases) and resumed,
# the same file: REINFORCE's checkpoint holds no setting from --gan-steps.
RF="--gan reinforce --pretrain-steps 4 --d-pretrain-steps 2 --gan-steps 3"
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/rf-whole.ckpt" $TINY $RF
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/rf-staged.ckpt" $TINY $RF \
    --pretrain-steps 2 --d-pretrain-steps 0 --gan-steps 0
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/rf-staged.ckpt" \
    --resume "$TMP/rf-staged.ckpt" $TINY $RF
cmp -s "$TMP/rf-staged.ckpt" "$TMP/rf-whole.ckpt" || fail "reinforce staged: differs from one run"
# A GAN checkpoint holds a discriminator, but sample and eval use the generator;
# --discriminator measures the discriminator.
expect_ok "$CHARGAN" eval "$TMP/rf.ckpt" "$TMP/corpus.txt" --discriminator --d-batches 2
v=$(value d_accuracy "$TMP/out")
awk -v v="$v" 'BEGIN{exit !(v != "" && v >= 0 && v <= 1)}' || { show; fail "eval --discriminator"; }
# Phase options on a checkpoint trained without --gan are refused.
expect_error 2 "--gan-steps" "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/x.ckpt" --resume "$M" \
    --gan-steps 5
[ -e "$TMP/x.ckpt" ] && fail "a refused resume wrote a model"

# --- no allocation in a step ----------------------------------------------------
# As many calls to malloc (the BLAS's included: OpenBLAS's small-matrix path
# made one at every time step of a Gumbel generation) for 110 steps of each
# phase as for 10, on one thread and on shards.  Not where the shim cannot
# be preloaded (a build sanitized through c_args: its runtime must come first).
if [ -n "${CHARGAN_TEST_MALLOC_COUNT:-}" ] && [ -e "$CHARGAN_TEST_MALLOC_COUNT" ] &&
    env LD_PRELOAD="$CHARGAN_TEST_MALLOC_COUNT" "$CHARGAN" --version >/dev/null 2>&1; then
    for run in "--threads 1" "--threads 3 --gan reinforce" "--threads 1 --gan reinforce --rollouts 2" \
        "--threads 3 --gan gumbel" "--threads 1 --gan gumbel --gan-feed soft"; do
        for n in 10 110; do
            phases="--steps $n"
            case $run in *--gan*) phases="--pretrain-steps $n --d-pretrain-steps $n --gan-steps $n" ;; esac
            expect_ok env LD_PRELOAD="$CHARGAN_TEST_MALLOC_COUNT" \
                CHARGAN_TEST_MALLOC_LOG="$TMP/malloc-$n" "$CHARGAN" train "$TMP/corpus.txt" \
                -o "$TMP/malloc.ckpt" $TINY --val-fraction 0 $run $phases
        done
        cmp -s "$TMP/malloc-10" "$TMP/malloc-110" ||
            fail "$run: $(cat "$TMP/malloc-10") calls to malloc for 10 steps, $(cat "$TMP/malloc-110") for 110"
    done
fi

# --- progress lines and other input forms ------------------------------------
# Without a terminal: a plain line every --report-every steps.
expect_ok "$CHARGAN" train - --output="$TMP/p.ckpt" --hidden=16 --embed=8 --batch 8 --seq 32 \
    --steps 20 --report-every 5 <"$TMP/corpus.txt"
for s in 5 10 15 20; do
    grep -q "^mle step $s/20: loss [0-9.]* .*chars/s elapsed" "$TMP/err" ||
        { show; fail "no progress line for step $s"; }
done
grep -q "$(printf '\r')" "$TMP/err" && fail "progress: a carriage return outside a terminal"

# On a terminal: one line redrawn in place with \r, ended by a newline.
if command -v script >/dev/null 2>&1 && script -qc true /dev/null >/dev/null 2>&1; then
    TERM=xterm script -qc "'$CHARGAN' train '$TMP/corpus.txt' -o '$TMP/tty.ckpt' --hidden 16 \
        --embed 8 --batch 8 --seq 32 --steps 20 --val-every 10" /dev/null >"$TMP/tty.txt" 2>&1
    tr '\r' '\n' <"$TMP/tty.txt" >"$TMP/tty-lines.txt"
    grep -q '^mle 20/20 \[#*\] loss [0-9.]* val [0-9.]* bpc .* ch/s ETA ' "$TMP/tty-lines.txt" ||
        { cat "$TMP/tty-lines.txt" >&2; fail "progress bar: no final bar"; }
    grep -q "$(printf '\r')" "$TMP/tty.txt" || fail "progress bar: not redrawn with \\r"
    grep -q '^model: ' "$TMP/tty-lines.txt" || fail "progress bar: no summary after the bar"
    # A narrow terminal: whole fields that fit (never a number cut short),
    # within its width.
    for cols in 12 24 38 52; do
        TERM=xterm script -qc "stty cols $cols; '$CHARGAN' train '$TMP/corpus.txt' \
            -o '$TMP/tty.ckpt' --hidden 16 --embed 8 --batch 8 --seq 32 --steps 20 \
            --val-every 10" /dev/null >"$TMP/tty.txt" 2>&1
        tr '\r' '\n' <"$TMP/tty.txt" | sed 's/\x1b\[K//g' | grep '^mle' >"$TMP/tty-lines.txt"
        [ -s "$TMP/tty-lines.txt" ] || { cat "$TMP/tty.txt" >&2; fail "$cols columns: no bar"; }
        awk -v c="$cols" 'length($0) > c - 1' "$TMP/tty-lines.txt" | grep . >&2 &&
            fail "$cols columns: a bar wider than the terminal"
        grep -Ev '^mle [0-9]+/20( \[[#.]+\])?( loss [0-9]+\.[0-9]{4})?( val [0-9]+\.[0-9]{3} bpc)?( [0-9.]+[kM]? ch/s)?( ETA [0-9:?]+)?$' \
            "$TMP/tty-lines.txt" >&2 && fail "$cols columns: a field cut short"
    done
    # A message while the bar is drawn (a checkpoint that cannot be saved:
    # the shim fails every fsync) starts a line of its own.
    if [ -f "${CHARGAN_TEST_SLOW_FSYNC:-}" ]; then
        TERM=xterm fsync_shim CHARGAN_TEST_FSYNC_FAIL=1 script -qc \
            "'$CHARGAN' train '$TMP/corpus.txt' -o '$TMP/tty-fail.ckpt' --hidden 16 --embed 8 \
            --batch 8 --seq 32 --steps 20 --checkpoint-every 10" /dev/null >"$TMP/tty.txt" 2>&1
        grep -q 'chargan: cannot save checkpoint' "$TMP/tty.txt" ||
            { cat "$TMP/tty.txt" >&2; fail "progress bar: no save error"; }
        tr '\r' '\n' <"$TMP/tty.txt" | sed 's/\x1b\[K//g' | grep -q '^chargan: cannot save checkpoint' ||
            { od -c "$TMP/tty.txt" | tail -20 >&2; fail "progress bar: a message on the bar's line"; }
    fi
fi

# --time alone trains until the time is up.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/t.ckpt" $TINY --time 0.5
steps=$(value steps "$TMP/out")
[ "$steps" -gt 0 ] || fail "--time 0.5 took no step"
# --steps 0 --time: the step count wins.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/t0.ckpt" $TINY --steps 0 --time 5
[ "$(value steps "$TMP/out")" = 0 ] || fail "--steps 0 --time 5 took steps"

echo "ok"
