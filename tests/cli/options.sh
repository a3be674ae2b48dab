# options.sh - every bad command line is refused with status 2 and one line
# naming the option, before anything is trained or written.
. "$(dirname "$0")/common.sh"

C=$TMP/corpus.txt
M=$TMP/never.ckpt

# bad_train OPTION_NAMED_IN_MESSAGE ARGS...: train with ARGS is refused.
bad_train() {
    named=$1
    shift
    expect_error 2 "$named" "$CHARGAN" train "$C" -o "$M" "$@"
    [ -e "$M" ] && fail "train $* wrote a model"
    return 0
}

# Integers: not a number, out of range, signs, fractions, blanks, overflow.
bad_train --hidden --hidden abc
bad_train --hidden --hidden 0
bad_train --hidden --hidden -5
bad_train --hidden --hidden +5
bad_train --hidden --hidden 1.5
bad_train --hidden --hidden ''
bad_train --hidden --hidden ' 5'
bad_train --hidden --hidden '5 '
bad_train --hidden --hidden 0x10
bad_train --hidden --hidden 99999999999999999999999
bad_train --hidden --hidden=16384000
bad_train --embed --embed 0
bad_train --layers --layers 17
bad_train --seq --seq 65537
bad_train --threads --threads 257
bad_train --val-fraction --val-fraction 0.95
bad_train --rollouts --gan reinforce --rollouts 65
bad_train --vocab-cap --vocab-cap 2097153
bad_train --batch --batch 0
bad_train --seq --seq 0
bad_train "--batch: 4096 sequences of --seq 8192" --batch 4096 --seq 8192
bad_train --steps --steps 1e3
bad_train --steps --steps -1
bad_train --seed --seed -1
bad_train --seed --seed 18446744073709551616
bad_train --threads --threads 0
bad_train --checkpoint-every --checkpoint-every x
bad_train --report-every --report-every 0
bad_train --vocab-cap --vocab-cap 2
bad_train --vocab-cap --vocab-cap 4294967296
# Reals: zero where it must be positive, out of range, not finite, junk.
bad_train --lr --lr 0
bad_train --lr --lr -0.1
bad_train --lr --lr nan
bad_train --lr --lr inf
bad_train --lr --lr 1e-3x
bad_train --lr --lr 0x1p-3
bad_train --lr --lr 1e999
bad_train --lr --lr .
# Inside the range as a double, outside once stored as a float (0 or 1).
bad_train "--lr: rounds to 0 in single precision" --lr 1e-50
# where 0 is allowed it means "off": a number that rounds to it is refused
bad_train "--clip: rounds to 0 in single precision (the least number above 0 is 1.4013e-45), got '1e-50'" \
    --clip 1e-50
bad_train "--val-fraction: rounds to 0 in single precision" --val-fraction 1e-50
bad_train --dropout --dropout 0.99999999999
bad_train --clip --clip -1
bad_train --dropout --dropout 1
bad_train --val-fraction --val-fraction 1.5
bad_train --time --time 0
bad_train --time --time -3
# Flags take no value; unknown options; missing values.
bad_train --lowercase --lowercase=yes
bad_train --bogus --bogus
bad_train -x -x
bad_train --steps --steps
# Choices and the options that belong to them.
bad_train --gan --gan foo
bad_train "expected one of reinforce, gumbel" --gan ''
bad_train --anneal --gan gumbel --anneal cosine
bad_train --loss --gan gumbel --loss wgan
bad_train --gamma --gamma 0.5
bad_train --gan-steps --gan-steps 10
bad_train "--gan-lr: needs --gan" --gan-lr 1e-4
bad_train --gan-lr --gan gumbel --gan-lr 0
bad_train --gan-lr --gan gumbel --gan-lr -1
bad_train --gan-lr --gan reinforce --gan-lr 1e-50
bad_train --gan-lr --gan gumbel --gan-lr abc
bad_train --gan-lr --gan gumbel --gan-lr nan
bad_train --gan-lr --gan gumbel --gan-lr 11
bad_train --beta-max --gan reinforce --beta-max 10
bad_train --rollouts --gan gumbel --rollouts 4
bad_train --gamma --gan reinforce --gamma 1.5
bad_train --beta-max --gan gumbel --beta-max 0.5
bad_train --beta-start --gan reinforce --beta-start 2
bad_train --beta-start --gan gumbel --beta-start 0
bad_train "--beta-start: 2 is above --beta-max (default 1)" --gan gumbel --beta-start 2
bad_train "--beta-max: 1.5 is below --beta-start 2" --gan gumbel --beta-start 2 --beta-max 1.5
bad_train --gan-feed --gan reinforce --gan-feed soft
bad_train --gan-feed --gan gumbel --gan-feed both
bad_train --d-steps --gan gumbel --d-steps 0
bad_train --pretrain-steps --steps 5 --pretrain-steps 6
# --resume refuses an option that would change the checkpoint's settings,
# and accepts one that repeats them.
expect_ok "$CHARGAN" train "$C" -o "$TMP/r.ckpt" $TINY --steps 2
bad_train "--hidden: 32 differs from the checkpoint's 16" --resume "$TMP/r.ckpt" --hidden 32
bad_train "--lr: 0.02 differs from the checkpoint's 0.01" --resume "$TMP/r.ckpt" --lr 0.02
bad_train "--seed: 2 differs from the checkpoint's 7" --resume "$TMP/r.ckpt" --seed 2
bad_train "--gan: gumbel differs from the checkpoint's none" --resume "$TMP/r.ckpt" --gan gumbel
bad_train "--batch" --resume "$TMP/r.ckpt" --batch 9
bad_train "--clip" --resume "$TMP/r.ckpt" --clip 1
bad_train "--val-fraction" --resume "$TMP/r.ckpt" --val-fraction 0.2
bad_train "--gan-lr: the checkpoint '$TMP/r.ckpt' was not trained with --gan" \
    --resume "$TMP/r.ckpt" --gan-lr 1e-4
expect_ok "$CHARGAN" train "$C" -o "$TMP/r2.ckpt" --resume "$TMP/r.ckpt" $TINY --steps 3
[ "$(value steps "$TMP/out")" = 3 ] || { show; fail "resume with the same options"; }

# Missing or extra arguments.
expect_error 2 "-o MODEL" "$CHARGAN" train "$C"
expect_error 2 "CORPUS" "$CHARGAN" train -o "$M"
expect_error 2 "-o" "$CHARGAN" train "$C" -o
expect_error 2 "unexpected argument 'extra'" "$CHARGAN" train "$C" extra -o "$M"
[ -e "$M" ] && fail "a refused train wrote a model"

# sample, eval, info.
expect_error 2 "MODEL" "$CHARGAN" sample
expect_error 2 "-n" "$CHARGAN" sample "$M" -n 0
expect_error 2 "-n" "$CHARGAN" sample "$M" -n ten
expect_error 2 "--chars" "$CHARGAN" sample "$M" --chars 268435457
expect_error 2 "--streams" "$CHARGAN" sample "$M" --streams 0
expect_error 2 "--streams" "$CHARGAN" sample "$M" --streams 65536 -n 4097
expect_error 2 "--threads" "$CHARGAN" sample "$M" --threads 65
expect_error 2 "--threads" "$CHARGAN" sample "$M" --threads 0
expect_error 2 "--temperature" "$CHARGAN" sample "$M" --temperature 0
expect_error 2 "--temperature" "$CHARGAN" sample "$M" --temperature -1
# above 0, but not as a double: the message says why it is refused
expect_error 2 "(this one is too close to 0 to hold), got '1e-320'" \
    "$CHARGAN" sample "$M" --temperature 1e-320
# where 0 is in range, such a number is as good as 0
expect_ok "$CHARGAN" train "$C" -o "$TMP/g.ckpt" $TINY --steps 1 --gan reinforce --gamma 1e-310
expect_error 2 "--top-p" "$CHARGAN" sample "$M" --top-p 0
expect_error 2 "--top-p" "$CHARGAN" sample "$M" --top-p 1.01
expect_error 2 "--top-k" "$CHARGAN" sample "$M" --top-k -1
expect_error 2 "--seed" "$CHARGAN" sample "$M" --seed 1.5
expect_error 2 "--prime" "$CHARGAN" sample "$M" --prime
expect_error 2 "--hidden" "$CHARGAN" sample "$M" --hidden 3
expect_error 2 "TEXTFILE" "$CHARGAN" eval "$M"
expect_error 2 "MODEL" "$CHARGAN" eval
expect_error 2 "--seq" "$CHARGAN" eval "$M" "$C" --seq 0
expect_error 2 "unexpected argument" "$CHARGAN" eval "$M" "$C" more
expect_error 2 "--stream" "$CHARGAN" eval "$M" "$C" --seq 10 --stream 2
expect_error 2 "--stream" "$CHARGAN" eval "$M" "$C" --stream 0
expect_error 2 "--samples: needs --oracle or --bleu" "$CHARGAN" eval "$M" "$C" --samples 10
expect_error 2 "--temperature: needs --oracle or --bleu" "$CHARGAN" eval "$M" "$C" --temperature 2
expect_error 2 "--samples" "$CHARGAN" eval "$M" "$C" --bleu --samples 1
expect_error 2 "--samples" "$CHARGAN" eval "$M" "$C" --bleu --samples 100000 --length 100000
expect_error 2 "--max-n: needs --bleu" "$CHARGAN" eval "$M" "$C" --max-n 3
expect_error 2 "--max-n" "$CHARGAN" eval "$M" "$C" --bleu --max-n 9
expect_error 2 "--d-batches: needs --discriminator" "$CHARGAN" eval "$M" "$C" --d-batches 3
expect_error 2 "--oracle" "$CHARGAN" eval "$M" "$C" --oracle
expect_error 2 "TEXTFILE" "$CHARGAN" eval "$M" --bleu
expect_error 2 "TEXTFILE" "$CHARGAN" eval "$M" --discriminator
expect_error 2 "MODEL" "$CHARGAN" info
expect_error 2 "--steps" "$CHARGAN" info "$M" --steps 3
expect_error 2 "unknown command 'trian'" "$CHARGAN" trian "$C"

# The accepted spellings: --name=value, -xVALUE, "--" before a name that
# starts with a dash, options after positionals.
cp "$C" "$TMP/-corpus.txt"
cd "$TMP" || fail "cannot enter $TMP"
expect_ok "$CHARGAN" train --hidden=16 --embed=8 --steps=0 --batch=8 --seq=32 -q \
    "-o$TMP/ok.ckpt" -- -corpus.txt
[ -s "$TMP/ok.ckpt" ] || fail "the accepted spellings did not train"
expect_ok "$CHARGAN" train "$C" --steps 0 -q --lr 1e-3 --clip 0 --dropout 0.25 --val-fraction 0.2 \
    --hidden 8 --embed 4 --batch 4 --seq 16 --vocab-cap 20 --lowercase -o "$TMP/ok2.ckpt"
expect_ok "$CHARGAN" info "$TMP/ok2.ckpt"
grep -qxF "  vocab_size: 20" "$TMP/out" || { show; fail "--vocab-cap 20 not applied"; }
grep -qxF "  recurrent_dropout: 0.25" "$TMP/out" || { show; fail "--dropout not applied"; }
grep -qxF "  val_fraction: 0.2" "$TMP/out" || { show; fail "--val-fraction not applied"; }
grep -q '^  characters: "[^A-Z]*"$' "$TMP/out" || { show; fail "--lowercase not applied"; }
grep -q '^  generator_optimizer: adam lr 0.001 clip 0 ' "$TMP/out" || { show; fail "--lr/--clip not applied"; }

echo "ok"
