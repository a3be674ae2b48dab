# kill9.sh - `chargan train` killed with SIGKILL at random moments while it
# writes a checkpoint after every step: after each kill the last checkpoint
# loads (`chargan info`) and never goes back in steps, and a resumed run
# continues from it.  The moments come from a fixed seed; the trials stop
# after KILL_TRIALS (default 30) or about KILL_SECONDS (default 60) seconds.
. "$(dirname "$0")/common.sh"

C=$TMP/corpus.txt
M=$TMP/kill.ckpt
trials=${KILL_TRIALS:-30}
budget=${KILL_SECONDS:-60}

# the run to resume from
expect_ok "$CHARGAN" train "$C" -o "$M" $TINY --steps 3 --val-fraction 0
prev=3
# delays in milliseconds, 5 to 300, the same every run
delays=$(awk -v n="$trials" 'BEGIN { srand(6); for (i = 0; i < n; i++) printf "%d ", 5 + int(rand() * 296) }')
start=$(date +%s)
done_trials=0 advanced=0 mid_save=0
for ms in $delays; do
    [ $(($(date +%s) - start)) -lt "$budget" ] || break
    "$CHARGAN" train "$C" -o "$M" --resume "$M" --steps 100000000 --checkpoint-every 1 -q \
        >/dev/null 2>"$TMP/kill-err" &
    pid=$!
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    done_trials=$((done_trials + 1))
    # A kill inside a save leaves its temporary file (the rename never came).
    if ls -a "$TMP" | grep -q '^kill\.ckpt\.tmp-'; then
        mid_save=$((mid_save + 1))
        rm -f "$TMP"/kill.ckpt.tmp-*
    fi
    run "$CHARGAN" info "$M"
    [ "$status" -eq 0 ] || { show; fail "after kill $done_trials ($ms ms) the checkpoint does not load"; }
    step=$(value "  global_step" "$TMP/out")
    [ "$step" -ge "$prev" ] || fail "after kill $done_trials the checkpoint went back from step $prev to $step"
    [ "$step" -gt "$prev" ] && advanced=$((advanced + 1))
    prev=$step
done
[ "$done_trials" -ge 5 ] || fail "only $done_trials kills in ${budget}s"
[ "$advanced" -ge 1 ] || fail "no killed run got as far as a checkpoint in $done_trials trials"

# The last checkpoint resumes and the run finishes where asked.
expect_ok "$CHARGAN" train "$C" -o "$M" --resume "$M" --steps $((prev + 3)) -q
[ "$(value steps "$TMP/out")" = $((prev + 3)) ] || { show; fail "the resumed run did not reach step $((prev + 3))"; }
expect_ok "$CHARGAN" info "$M"
[ "$(value "  global_step" "$TMP/out")" = $((prev + 3)) ] || fail "the final model is not at step $((prev + 3))"

echo "# $done_trials kills: $advanced after new checkpoints, $mid_save inside a save; final step $((prev + 3))"
echo "ok"
