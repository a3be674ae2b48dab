# interrupt.sh - SIGINT (Ctrl-C) and SIGTERM during training stop it at a
# consistent step, save the model, and exit with 128 + the signal number; the
# saved model resumes.
. "$(dirname "$0")/common.sh"

C=$TMP/corpus.txt
M=$TMP/model.ckpt

# signal_when_training SIG LOG CMD...: runs CMD in the background under
# timeout, waits until LOG shows a step taken, sends SIG and waits; the exit
# status lands in $status.  A fixed delay was flaky: on a loaded machine the
# signal could come before training began, and nothing was saved.  timeout
# passes the signal on, which matters for SIGINT: sh starts a background job
# with SIGINT ignored, and chargan leaves an ignored signal ignored.  With
# --foreground it passes it once, to chargan alone; otherwise it also signals
# its process group, and chargan, whose handler runs once (a second Ctrl-C
# kills), could die of the second copy before saving.
signal_when_training() {
    _sig=$1 _log=$2
    shift 2
    timeout --foreground --preserve-status -s "$_sig" 300 "$@" >"$TMP/out" 2>"$TMP/err" &
    _pid=$!
    _tries=0
    until grep -q '"step":[1-9]' "$_log" 2>/dev/null || [ "$_tries" -ge 1200 ]; do
        sleep 0.1
        _tries=$((_tries + 1))
    done
    kill -s "$_sig" "$_pid"
    wait "$_pid"
    status=$?
}

# --time is only a backstop, should the signal be ignored where this runs.
signal_when_training INT "$TMP/log.jsonl" "$CHARGAN" train "$C" -o "$M" $TINY \
    --steps 100000000 --time 120 --log "$TMP/log.jsonl"
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
[ "$steps" -gt 0 ] || { show; fail "SIGINT: saved before any step"; }
# The log ends with the step the model was saved at (no final validation).
tail -n 1 "$TMP/log.jsonl" | grep -q "\"phase\":\"mle\",\"step\":$steps," ||
    fail "SIGINT: the log does not end at step $steps"

# Resume from the saved model and finish a few more steps.
expect_ok "$CHARGAN" train "$C" -o "$M" --resume "$M" --steps $((steps + 5)) -q
[ "$(value steps "$TMP/out")" = $((steps + 5)) ] || { show; fail "resume after SIGINT"; }

# SIGTERM behaves the same, with 143.
signal_when_training TERM "$TMP/term.jsonl" "$CHARGAN" train "$C" -o "$TMP/term.ckpt" $TINY \
    --steps 100000000 --time 120 --log "$TMP/term.jsonl"
[ "$status" -eq 143 ] || { show; fail "SIGTERM: exit status $status, expected 143"; }
expect_ok "$CHARGAN" sample "$TMP/term.ckpt" -n 20 --seed 1

# SIGHUP (the terminal went away) too, with 129.
signal_when_training HUP "$TMP/hup.jsonl" "$CHARGAN" train "$C" -o "$TMP/hup.ckpt" $TINY \
    --steps 100000000 --time 120 --log "$TMP/hup.jsonl"
[ "$status" -eq 129 ] || { show; fail "SIGHUP: exit status $status, expected 129"; }
expect_ok "$CHARGAN" sample "$TMP/hup.ckpt" -n 20 --seed 1

# A reader of the progress that goes away (SIGPIPE) does not end the run.
(
    "$CHARGAN" train "$C" -o "$TMP/pipe.ckpt" --hidden 16 --embed 8 --batch 8 --seq 32 \
        --steps 300 --report-every 1 2>&1 >"$TMP/out"
    echo $? >"$TMP/rc"
) | head -c 1 >/dev/null
[ "$(cat "$TMP/rc")" = 0 ] || { show; fail "closed progress pipe: exit status $(cat "$TMP/rc")"; }
[ "$(value steps "$TMP/out")" = 300 ] ||
    { show; fail "closed progress pipe: the run did not finish"; }

# Ctrl-C while the corpus is still arriving on a pipe: 130, and the model
# there is left as it was (nothing trained, nothing saved).
cp "$TMP/term.ckpt" "$TMP/keep.ckpt"
{ sleep 2; } | timeout --foreground --preserve-status -s INT 0.5 \
    "$CHARGAN" train - -o "$TMP/keep.ckpt" $TINY --steps 5 >"$TMP/out" 2>"$TMP/err"
status=$?
[ "$status" -eq 130 ] || { show; fail "SIGINT while reading stdin: exit status $status"; }
grep -q "interrupted while reading corpus '-'" "$TMP/err" ||
    { show; fail "SIGINT on stdin: message"; }
cmp -s "$TMP/term.ckpt" "$TMP/keep.ckpt" ||
    fail "SIGINT while reading stdin: the model was replaced"

echo "ok"
