#!/bin/sh
# kill.sh CHARGAN CORPUS - a rank that dies or stops in the middle of
# `mpirun -np 2 chargan train` must end the job with a clear failure within
# a bounded time, never hang it, and leave the last checkpoint intact (TAP).
#   1. kill -9 of rank 1: Open MPI's mpirun notices the lost process and
#      terminates the job; rank 0 never waits in a collective for long.
#   2. SIGSTOP of rank 1 (alive but silent, which mpirun cannot see): rank 0
#      gives up after CHARGAN_MPI_TIMEOUT seconds with an error naming the
#      step, and the tool's MPI_Abort ends the job.
#   3. SIGTERM to both ranks (as Ctrl-C on mpirun), during training and
#      during the final validation, and to rank 1 alone: the ranks stop
#      together, rank 0 saves the model at the step it names before the job
#      ends, and the job's exit status is 143.
set -u
CHARGAN=$1
CORPUS=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/mpirun.sh"
skip_unless_mpi_starts
tmp=$(mktemp -d "${TMPDIR:-/tmp}/chargan-mpikill.XXXXXX") || exit 1
job=""
cleanup() {
    [ -n "$job" ] && kill -9 "$job" 2>/dev/null
    for p in $(rank_pids 0) $(rank_pids 1); do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
n=0
failed=0
result() { # result OK|FAIL description [log]
    n=$((n + 1))
    if [ "$1" = OK ]; then
        echo "ok $n - $2"
    else
        failed=$((failed + 1))
        echo "not ok $n - $2"
        [ $# -ge 3 ] && sed 's/^/#   /' "$3" | tail -n 30
    fi
}

# The processes of this test's ranks: found by their environment, which
# carries this script's marker and Open MPI's rank number.
marker="CHARGAN_KILL_TEST=$$"
rank_pids() {
    for d in /proc/[0-9]*; do
        env=$( (tr '\0' '\n' <"$d/environ") 2>/dev/null) || continue
        case $env in *"$marker"*) ;; *) continue ;; esac
        printf '%s\n' "$env" | grep -qx "OMPI_COMM_WORLD_RANK=$1" || continue
        # the tool itself, not a shell in between
        [ "$(readlink "$d/exe" 2>/dev/null)" = "$(readlink -f "$CHARGAN")" ] && echo "${d#/proc/}"
    done
}

# wait_for SECONDS CMD...: polls CMD every 0.2 s; false if it never succeeds.
wait_for() {
    _limit=$(($1 * 5))
    shift
    _i=0
    while ! "$@"; do
        _i=$((_i + 1))
        [ "$_i" -ge "$_limit" ] && return 1
        sleep 0.2
    done
}
job_gone() { ! kill -0 "$job" 2>/dev/null; }
# until_ready SECONDS CMD...: wait_for CMD, but false as soon as the job has
# ended (a job that failed to start is not waited for a minute).
until_ready() {
    _secs=$1
    shift
    wait_for "$_secs" ready_or_gone "$@" && "$@"
}
ready_or_gone() { "$@" || job_gone; }
has_ckpt() { [ -s "$tmp/m.ckpt" ]; }

start_job() { # start_job TIMEOUT: a long run that checkpoints every 5 steps
    rm -f "$tmp/m.ckpt"
    env "$marker" CHARGAN_MPI_TIMEOUT="$1" sh -c ". '$here/mpirun.sh'; exec 2>&1; mpi_run 2 '$CHARGAN' train '$CORPUS' -o '$tmp/m.ckpt' --steps 1000000 --checkpoint-every 5 --hidden 32 --embed 16 --batch 8 --seq 32 -q" >"$tmp/log" 2>&1 &
    job=$!
}

finish_job() { # finish_job NAME: waits (bounded) for the job; sets status
    if wait_for 60 job_gone; then
        wait "$job"
        status=$?
        result OK "$1: the job ended (exit status $status) instead of hanging"
    else
        status=999
        result FAIL "$1: the job still runs 60 s later (hang)" "$tmp/log"
    fi
    job=""
    if [ "$status" -ne 0 ] && [ "$status" -ne 999 ]; then
        result OK "$1: the job failed (exit status $status)"
    else
        result FAIL "$1: the job should fail (exit status $status)" "$tmp/log"
    fi
    # The checkpoint in place is a whole one: `chargan info` reads and
    # checks every section and its CRC.
    if "$CHARGAN" info "$tmp/m.ckpt" >"$tmp/info" 2>&1 && grep -qi 'step' "$tmp/info"; then
        result OK "$1: the last checkpoint is intact ($(grep -i -m1 'step' "$tmp/info" | tr -s ' '))"
    else
        result FAIL "$1: the last checkpoint does not load" "$tmp/info"
    fi
}

# 1. kill -9
start_job 300
if until_ready 60 has_ckpt && sleep 1 && r1=$(rank_pids 1) && [ -n "$r1" ]; then
    kill -9 $r1
    finish_job "rank 1 killed"
else
    result FAIL "rank 1 killed: no checkpoint or no rank 1 process within 60 s" "$tmp/log"
fi
[ -n "$job" ] && { kill -9 "$job" 2>/dev/null; job=""; }

# 2. SIGSTOP: only the timeout can tell
start_job 5
if until_ready 60 has_ckpt && sleep 1 && r1=$(rank_pids 1) && [ -n "$r1" ]; then
    kill -STOP $r1
    finish_job "rank 1 stopped"
    kill -CONT $r1 2>/dev/null
    if grep -q 'waited 5 s for the other ranks at [a-zA-Z ]* [0-9]' "$tmp/log"; then
        result OK "rank 1 stopped: rank 0 says it waited 5 s and at which step ($(grep -o 'waited 5 s[^:]*' "$tmp/log" | head -n 1))"
    else
        result FAIL "rank 1 stopped: no timeout message naming the step" "$tmp/log"
    fi
else
    result FAIL "rank 1 stopped: no checkpoint or no rank 1 process within 60 s" "$tmp/log"
fi

# 3. SIGTERM to both ranks.  The run logs each step (--report-every 1), so
# the log tells when training has begun; with --time 2 and half of a 6 MB
# corpus held out, the final validation takes seconds after the log's
# record of the phase's end.
for i in $(seq 60); do cat "$CORPUS"; done >"$tmp/big.txt"
signal_both() { # signal_both NAME OPTIONS WAIT_FOR_LOG_PATTERN [RANKS]
    rm -f "$tmp/m.ckpt" "$tmp/log.jsonl"
    env "$marker" sh -c ". '$here/mpirun.sh'; exec 2>&1; mpi_run 2 '$CHARGAN' train '$tmp/big.txt' -o '$tmp/m.ckpt' --hidden 64 --embed 16 --batch 8 --seq 32 --val-fraction 0.5 --log '$tmp/log.jsonl' -q $2" >"$tmp/log" 2>&1 &
    job=$!
    if ! until_ready 60 grep -q "$3" "$tmp/log.jsonl"; then
        result FAIL "$1: the log never showed $3" "$tmp/log"
        return
    fi
    sleep 0.2
    for r in ${4:-0 1}; do kill -TERM $(rank_pids "$r"); done
    finish_job "$1"
    # every rank exits with the signal's status, whichever got it (a rank
    # without it said 128, and the job's status was the first rank's)
    if [ "$status" -eq 143 ]; then
        result OK "$1: the job's exit status is 143 (128 + SIGTERM)"
    else
        result FAIL "$1: the job's exit status is $status, not 143" "$tmp/log"
    fi
    said=$(sed -n "s/.*interrupted at step \([0-9]*\); saved.*/\1/p" "$tmp/log")
    if [ -n "$said" ] && grep -q "global_step: *$said\$" "$tmp/info"; then
        result OK "$1: rank 0 saved the model at the step it names ($said)"
    else
        result FAIL "$1: no model saved at the step named ('$said')" "$tmp/log"
    fi
}
signal_both "SIGTERM during training" "--steps 1000000 --report-every 1" '"step":[1-9]'
signal_both "SIGTERM during the final validation" "--time 2 --report-every 1000000000" '"phase"'
signal_both "SIGTERM to rank 1 alone" "--steps 1000000 --report-every 1" '"step":[1-9]' 1

echo "1..$n"
[ "$failed" -eq 0 ]
