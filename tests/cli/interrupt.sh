# interrupt.sh - SIGINT (Ctrl-C) and SIGTERM during training stop it at a
# consistent step, save the model, and exit with 128 + the signal number; the
# saved model resumes.
. "$(dirname "$0")/common.sh"

C=$TMP/corpus.txt
M=$TMP/model.ckpt

# --time is only a backstop, should the signal be ignored where this runs.
timeout --preserve-status -s INT 2 "$CHARGAN" train "$C" -o "$M" $TINY --steps 100000000 \
    --time 60 --log "$TMP/log.jsonl" >"$TMP/out" 2>"$TMP/err"
status=$?
[ "$status" -eq 130 ] || { show; fail "SIGINT: exit status $status, expected 130"; }
[ "$(wc -l <"$TMP/err")" -eq 1 ] || { show; fail "SIGINT: expected one line on stderr"; }
grep -q "^chargan: interrupted at step [0-9]*; saved '$M' (continue with --resume $M)$" "$TMP/err" ||
    { show; fail "SIGINT: no 'interrupted ... saved' message"; }
[ -s "$TMP/out" ] && { show; fail "SIGINT: the summary was printed"; }
ls "$TMP" | grep -q 'tmp-' && fail "SIGINT: a temporary file was left behind"

said=$(sed -n 's/^chargan: interrupted at step \([0-9]*\);.*/\1/p' "$TMP/err")
expect_ok "$CHARGAN" info "$M"
steps=$(value "  global_step" "$TMP/out")
[ "$steps" = "$said" ] || fail "SIGINT: the message says step $said, the model has $steps"
[ "$steps" -gt 0 ] || { show; fail "SIGINT: no step was taken in 2 seconds"; }
# The log ends with the step the model was saved at (no final validation).
tail -n 1 "$TMP/log.jsonl" | grep -q "\"phase\":\"mle\",\"step\":$steps," ||
    fail "SIGINT: the log does not end at step $steps"

# Resume from the saved model and finish a few more steps.
expect_ok "$CHARGAN" train "$C" -o "$M" --resume "$M" --steps $((steps + 5)) -q
[ "$(value steps "$TMP/out")" = $((steps + 5)) ] || { show; fail "resume after SIGINT"; }

# SIGTERM behaves the same, with 143.
timeout --preserve-status -s TERM 1 "$CHARGAN" train "$C" -o "$TMP/term.ckpt" $TINY \
    --steps 100000000 --time 60 >"$TMP/out" 2>"$TMP/err"
status=$?
[ "$status" -eq 143 ] || { show; fail "SIGTERM: exit status $status, expected 143"; }
expect_ok "$CHARGAN" sample "$TMP/term.ckpt" -n 20 --seed 1

echo "ok"
