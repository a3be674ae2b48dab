# plot.sh - chargan plot: a short GAN run with --log drawn into a PNG by
# gnuplot; the log's validation (every bad line named with its number and
# column); a missing, failing or silent gnuplot; no temporary file left
# behind and an existing image kept on failure.  The checks that need a real
# gnuplot are skipped (exit 77) when it is not installed (Debian: gnuplot-nox).
. "$(dirname "$0")/common.sh"

# Temporary directories chargan makes go here, so that leftovers show.
mkdir "$TMP/tmpdir" "$TMP/bin" "$TMP/img"
TMPDIR=$TMP/tmpdir
export TMPDIR
no_leftovers() {
    [ -z "$(ls -A "$TMP/tmpdir")" ] || { ls -l "$TMP/tmpdir" >&2; fail "$1: temporary files left in TMPDIR"; }
    [ -z "$(ls -A "$TMP/img" | grep '\.tmp-')" ] || { ls -l "$TMP/img" >&2; fail "$1: a partial image left next to the output"; }
}

# A log with every phase: MLE, discriminator pre-training, adversarial rounds
# and the final evaluation.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/m.ckpt" $TINY --steps 40 \
    --report-every 10 --val-every 20 --gan gumbel --d-pretrain-steps 20 --gan-steps 20 \
    --log "$TMP/train.jsonl"
for ph in mle discriminator adversarial eval; do
    grep -q "\"phase\":\"$ph\"" "$TMP/train.jsonl" || fail "the training log has no $ph record"
done
LOG=$TMP/train.jsonl

# ---- command line ----
expect_error 2 "missing LOG" "$CHARGAN" plot -o "$TMP/img/x.png"
expect_error 2 "missing -o/--output" "$CHARGAN" plot "$LOG"
expect_error 2 "--width" "$CHARGAN" plot "$LOG" -o "$TMP/img/x.png" --width 10
expect_error 2 "newline" "$CHARGAN" plot "$LOG" -o "$TMP/img/x.png" --title "a
b"

# ---- the log is validated before anything runs ----
bad_log() { # bad_log PATTERN LINES...: a log of these lines fails with PATTERN
    pattern=$1
    shift
    : >"$TMP/bad.jsonl"
    for l in "$@"; do printf '%s\n' "$l" >>"$TMP/bad.jsonl"; done
    expect_error 1 "$pattern" "$CHARGAN" plot "$TMP/bad.jsonl" -o "$TMP/img/x.png"
    [ ! -e "$TMP/img/x.png" ] || fail "an image was written for a bad log ($pattern)"
    no_leftovers "bad log ($pattern)"
}
good='{"phase":"mle","step":10,"global_step":10,"loss":3.5,"val_nll":null}'
expect_error 1 "cannot read log" "$CHARGAN" plot "$TMP/none.jsonl" -o "$TMP/img/x.png"
# The image would replace the log it draws, however the name is spelt.
cp "$LOG" "$TMP/self.jsonl"
expect_error 2 "plot: -o '$TMP/./self.jsonl' is the log it would draw" \
    "$CHARGAN" plot "$TMP/self.jsonl" -o "$TMP/./self.jsonl"
cmp -s "$LOG" "$TMP/self.jsonl" || fail "plot wrote over its log"
# the image is renamed into place: a FIFO (or a device) there would be replaced
if mkfifo "$TMP/fifo.png" 2>/dev/null; then
    expect_error 1 "cannot write image '$TMP/fifo.png': not a regular file" \
        "$CHARGAN" plot "$LOG" -o "$TMP/fifo.png"
    [ -p "$TMP/fifo.png" ] || fail "plot replaced a FIFO"
fi
bad_log "bad.jsonl: no records" ""
bad_log "bad.jsonl:2: column 1: expected a JSON object" "$good" "step 20 loss 3.1"
bad_log "bad.jsonl:1: column 14: unterminated string" '{"phase":"mle'
bad_log "bad.jsonl:3: column 25: expected ',' or '}'" "$good" "" '{"phase":"mle","step":2 "loss":1}'
bad_log "bad.jsonl:1: unknown phase \"warmup\"" '{"phase":"warmup","step":1}'
bad_log "bad.jsonl:1: no \"phase\"" '{"step":1,"loss":2}'
bad_log "bad.jsonl:1: no \"step\"" '{"phase":"mle","loss":2}'
bad_log "bad.jsonl:1: no \"step\"" '{"phase":"mle","step":-1}'
bad_log "\"loss\" must be a number or null" '{"phase":"mle","step":1,"loss":"low"}'
bad_log "bad.jsonl:1: duplicate key \"step\"" '{"phase":"mle","step":1,"step":2}'
bad_log "column 23: expected a number" '{"phase":"mle","step":-x}'
bad_log "expected a digit after '.'" '{"phase":"mle","step":1.}'
bad_log "number out of range" '{"phase":"mle","step":1,"loss":1e999}'
bad_log "text after the object" "$good x"
bad_log "expected a JSON value" '{"phase":"mle","step":1,"extra":[1,]}'
bad_log "expected ',' or '}'" '{"phase":"mle","step":1,"extra":{"a":1 "b":2}}'
bad_log "nested too deep" "{\"phase\":\"mle\",\"step\":1,\"x\":$(printf '[%.0s' $(seq 40))1$(printf ']%.0s' $(seq 40))}"
bad_log "bad.jsonl:1: duplicate key \"phase\"" '{"phase":"mle","step":1,"phase":"eval"}'
bad_log "\"step\" 1e+308 is 2^53 or more" '{"phase":"mle","step":1e308}'
bad_log "\"step\" 9.0072e+15 is 2^53 or more" '{"phase":"mle","step":9007199254740992}'
# 2^53 + 1 is read as 2^53, the nearest double.
bad_log "\"step\" 9.0072e+15 is 2^53 or more" '{"phase":"mle","step":9007199254740993}'
printf '{"phase":"mle",\0"step":1}\n' >"$TMP/nul.jsonl"
expect_error 1 "nul.jsonl:1: a NUL byte" "$CHARGAN" plot "$TMP/nul.jsonl" -o "$TMP/img/x.png"

# ---- gnuplot missing, failing, or writing nothing ----
expect_error 1 "gnuplot not found on PATH" env PATH="$TMP/bin" "$CHARGAN" plot "$LOG" \
    -o "$TMP/img/x.png"
printf 'old image\n' >"$TMP/img/keep.png"
printf '#!/bin/sh\necho "\\"$1\\" line 3: boom" >&2\nexit 3\n' >"$TMP/bin/gnuplot"
chmod +x "$TMP/bin/gnuplot"
expect_error 1 "gnuplot failed (exit status 3): " env PATH="$TMP/bin" "$CHARGAN" plot "$LOG" \
    -o "$TMP/img/keep.png"
grep -q 'line 3: boom' "$TMP/err" || { show; fail "gnuplot's message is not passed on"; }
[ "$(cat "$TMP/img/keep.png")" = "old image" ] || fail "a failed plot changed the existing image"
no_leftovers "failing gnuplot"
printf '#!/bin/sh\nexit 0\n' >"$TMP/bin/gnuplot"
expect_error 1 "gnuplot wrote no image" env PATH="$TMP/bin" "$CHARGAN" plot "$LOG" \
    -o "$TMP/img/keep.png"
# Keys that are not ours are ignored whatever their values (arrays and
# objects were refused): the log gets as far as gnuplot.
printf '{"phase":"mle","step":1,"loss":2,"extra":[1,[2,{"a":null}],"x"],"o":{"k":[true]},"n":1e400,"m":%s}\n' \
    "$(printf '1%.0s' $(seq 80))" >"$TMP/extra.jsonl"
expect_error 1 "gnuplot wrote no image" env PATH="$TMP/bin" "$CHARGAN" plot "$TMP/extra.jsonl" \
    -o "$TMP/img/keep.png"
[ "$(cat "$TMP/img/keep.png")" = "old image" ] || fail "a failed plot changed the existing image"
no_leftovers "silent gnuplot"
expect_error 1 "cannot write image '$TMP/none/x.png'" "$CHARGAN" plot "$LOG" -o "$TMP/none/x.png"
no_leftovers "unwritable output"

# ---- the real thing ----
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "gnuplot not installed (Debian: gnuplot-nox): the image checks are skipped"
    exit 77
fi
# "-" is standard input; "./-" is a file of that name, not the log read
(cd "$TMP" && expect_ok "$CHARGAN" plot - -o ./- <"$LOG") || fail "plot - -o ./- was refused"
[ -s "$TMP/-" ] || fail "plot - -o ./- wrote no image"
rm -f "$TMP/-"
is_png() { # the 8-byte PNG signature, then an IHDR of the given size
    [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] || return 1
    [ "$(od -An -tu1 -j16 -N8 "$1" | tr -s ' ' | sed 's/^ //')" = "$2" ]
}
expect_ok "$CHARGAN" plot "$LOG" -o "$TMP/img/curves.png"
grep -q "^plot: $TMP/img/curves.png\$" "$TMP/out" || { show; fail "plot does not name its output"; }
[ "$(value records "$TMP/out")" = "$(grep -c . "$LOG")" ] || { show; fail "records: not the log's line count"; }
is_png "$TMP/img/curves.png" "0 0 4 176 0 0 3 132" || fail "curves.png is not a 1200x900 PNG"
no_leftovers "plot"
# Over an existing file, with a title that needs quoting, in another size.
expect_ok "$CHARGAN" plot "$LOG" -o "$TMP/img/keep.png" --title "it's a \"GAN\"" \
    --width 640 --height 480
is_png "$TMP/img/keep.png" "0 0 2 128 0 0 1 224" || fail "keep.png is not a 640x480 PNG"
# An MLE-only log (no discriminator) and a single record still plot.
expect_ok "$CHARGAN" train "$TMP/corpus.txt" -o "$TMP/m2.ckpt" $TINY --steps 20 \
    --report-every 10 --log "$TMP/mle.jsonl"
expect_ok "$CHARGAN" plot "$TMP/mle.jsonl" -o "$TMP/img/mle.png"
printf '%s\n' "$good" >"$TMP/one.jsonl"
expect_ok "$CHARGAN" plot "$TMP/one.jsonl" -o "$TMP/img/one.png"
is_png "$TMP/img/one.png" "0 0 4 176 0 0 3 132" || fail "one.png is not a PNG"
no_leftovers "plots"

echo "ok"
