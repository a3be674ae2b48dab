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

# A fresh run stopped before its first step saves nothing and leaves the
# log of an earlier run as it was (it emptied it).  The signal comes once
# the corpus is read, while it is tokenised: a large corpus makes that last
# long enough to land in (/proc/PID/io says when the reading is done).
if [ -r /proc/$$/io ]; then
    cp "$SONNETS" "$TMP/big.txt"
    for _ in 1 2 3 4 5 6 7 8 9; do
        cat "$TMP/big.txt" "$TMP/big.txt" >"$TMP/big2.txt" && mv "$TMP/big2.txt" "$TMP/big.txt"
    done
    size=$(wc -c <"$TMP/big.txt")
    echo '{"phase":"mle","step":9}' >"$TMP/early.jsonl"
    cp "$TMP/early.jsonl" "$TMP/early.want"
    stopped_early=0
    for _ in 1 2 3; do
        rm -f "$TMP/early.ckpt"
        # in the background without timeout: sh leaves SIGTERM to it
        "$CHARGAN" train "$TMP/big.txt" -o "$TMP/early.ckpt" $TINY --steps 5 \
            --log "$TMP/early.jsonl" >"$TMP/out" 2>"$TMP/err" &
        pid=$!
        until [ "$(sed -n 's/^rchar: //p' "/proc/$pid/io" 2>/dev/null || echo "$size")" -ge "$size" ]; do
            sleep 0.005
        done
        kill -s TERM "$pid"
        wait "$pid"
        status=$?
        [ "$status" -eq 143 ] || { show; fail "SIGTERM while tokenising: exit status $status"; }
        if grep -q "interrupted before the first step; nothing saved" "$TMP/err"; then
            [ -e "$TMP/early.ckpt" ] && fail "stopped before the first step: a model was saved"
            cmp -s "$TMP/early.jsonl" "$TMP/early.want" ||
                fail "stopped before the first step: the earlier log was changed"
            stopped_early=1
            break
        fi
        # too late (a step was taken): the log is this run's; try again
    done
    [ "$stopped_early" -eq 1 ] || { show; fail "no run stopped before its first step"; }
fi

# A run that saves a model owns its log even with no record in it: one out
# of time before its first step (a deadline of now plus 1e-300 s is now)
# saves the untrained model and empties it.
echo '{"phase":"mle","step":9}' >"$TMP/none.jsonl"
expect_ok "$CHARGAN" train "$C" -o "$TMP/none.ckpt" $TINY --steps 5 --time 1e-300 \
    --val-fraction 0 --log "$TMP/none.jsonl"
[ "$(value steps "$TMP/out")" = 0 ] || { show; fail "--time 1e-300: steps taken"; }
[ -s "$TMP/none.jsonl" ] && fail "a saved run left an earlier run's log"

# A second signal inside a save waits for the save: the model is written
# whole and nothing is left beside it, then the signal kills the process
# (it left the save's temporary file, and no model).  A preloaded shim makes
# the save's fsync take seconds; both signals land in it.
#
# signal_twice_in_save SIG PAUSE [VAR=VALUE...]: trains 3 steps into
# $TMP/held/m.ckpt with the shim and the given environment, sends SIG twice,
# PAUSE seconds apart, once the save's temporary exists; the exit status
# lands in $status.
signal_twice_in_save() {
    _sig=$1 _pause=$2
    shift 2
    # not fsync_shim: a function in the background is a subshell, and the
    # signals must reach the tool itself ($! of env, which execs it)
    env LD_PRELOAD="$CHARGAN_TEST_SLOW_FSYNC" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" "$@" \
        "$CHARGAN" train "$C" -o "$TMP/held/m.ckpt" $TINY --steps 3 --val-fraction 0 \
        >"$TMP/out" 2>"$TMP/err" &
    _pid=$!
    _tries=0
    until ls -a "$TMP/held" | grep -q '^m\.ckpt\.tmp-' || [ "$_tries" -ge 1200 ]; do
        sleep 0.05
        _tries=$((_tries + 1))
    done
    kill -s "$_sig" "$_pid"
    sleep "$_pause"
    kill -s "$_sig" "$_pid"
    wait "$_pid"
    status=$?
}

if [ -f "${CHARGAN_TEST_SLOW_FSYNC:-}" ]; then
    mkdir "$TMP/held"
    signal_twice_in_save TERM 0.5 CHARGAN_TEST_FSYNC_DELAY=3
    [ "$status" -eq 143 ] || { show; fail "two SIGTERMs in a save: exit status $status"; }
    [ "$(ls -A "$TMP/held")" = m.ckpt ] ||
        { ls -la "$TMP/held" >&2; fail "two SIGTERMs in a save: no model, or a temporary left"; }
    expect_ok "$CHARGAN" info "$TMP/held/m.ckpt"
    [ "$(value "  global_step" "$TMP/out")" = 3 ] || { show; fail "the held save is not step 3's"; }
    # A save that fails meanwhile is reported before the held signal kills
    # (the signal came first, and the failure went unsaid).
    rm -f "$TMP/held/m.ckpt"
    signal_twice_in_save TERM 0.5 CHARGAN_TEST_FSYNC_DELAY=2 CHARGAN_TEST_FSYNC_FAIL=1
    [ "$status" -eq 143 ] || { show; fail "two SIGTERMs in a failing save: exit status $status"; }
    grep -q "^chargan: cannot save model '$TMP/held/m.ckpt': .*Input/output error" "$TMP/err" ||
        { show; fail "a save that failed under a held signal was not reported"; }
    [ -z "$(ls -A "$TMP/held")" ] || { ls -la "$TMP/held" >&2; fail "a failed save left a file"; }
    # An ignored SIGHUP (nohup) stays ignored during a save too; a background
    # job inherits this shell's ignored signals.
    trap '' HUP
    signal_twice_in_save HUP 0.3 CHARGAN_TEST_FSYNC_DELAY=2
    trap - HUP
    [ "$status" -eq 0 ] && [ -f "$TMP/held/m.ckpt" ] ||
        { show; fail "an ignored SIGHUP during a save: exit status $status"; }
fi

echo "ok"
