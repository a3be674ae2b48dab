# sweep.sh - chargan eval --sweep: the quality-diversity sweep over sampling
# temperatures (Caccia et al., "Language GANs Falling Short").  The CSV's
# header and rows; each row agrees with a plain eval at that temperature; the
# temperature-scaled NLL-test tends to the uniform model's log2(V) when T is
# large; bad temperature lists and option combinations; a failed evaluation
# writes no CSV; a missing or failing gnuplot keeps the CSV; the same seed
# gives the same CSV; the CSV and the image are synced, then renamed into
# place, then their directory synced.  The image checks need gnuplot (Debian: gnuplot-nox)
# and are skipped (exit 77) without it, after everything else has run.
. "$(dirname "$0")/common.sh"

mkdir "$TMP/tmpdir" "$TMP/bin"
TMPDIR=$TMP/tmpdir
export TMPDIR

C=$TMP/corpus.txt
M=$TMP/m.ckpt
O=$TMP/oracle.ckpt
expect_ok "$CHARGAN" train "$C" -o "$M" $TINY --steps 40
# Another model of the same vocabulary stands in for the oracle.
expect_ok "$CHARGAN" train "$C" -o "$O" --hidden 16 --embed 8 --batch 8 --seq 32 --lr 0.01 \
    --seed 8 -q --steps 20
S="--samples 20 --length 60"

# ---- the CSV ----
expect_ok "$CHARGAN" eval "$M" "$C" --oracle "$O" --bleu $S --sweep 0.5,0.7,1.0,1.2 \
    --csv "$TMP/s.csv"
[ "$(head -n 1 "$TMP/s.csv")" = "temperature,nll_oracle,nll_test_bpc,bleu4,self_bleu4" ] ||
    { cat "$TMP/s.csv" >&2; fail "wrong CSV header"; }
[ "$(wc -l <"$TMP/s.csv")" -eq 5 ] || { cat "$TMP/s.csv" >&2; fail "not one row per temperature"; }
[ "$(sed 1d "$TMP/s.csv" | cut -d, -f1 | tr '\n' ' ')" = "0.5 0.7 1 1.2 " ] ||
    { cat "$TMP/s.csv" >&2; fail "the rows do not follow the temperatures"; }
sed 1d "$TMP/s.csv" | grep -qvE '^[0-9.]+(,-?[0-9]+\.[0-9]{6}){4}$' &&
    { cat "$TMP/s.csv" >&2; fail "a row is not four numbers after the temperature"; }
[ "$(value temperatures "$TMP/out")" = 4 ] || { show; fail "stdout does not count the temperatures"; }
[ "$(value csv "$TMP/out")" = "$TMP/s.csv" ] || { show; fail "stdout does not name the CSV"; }
row() { sed -n "s/^$1,//p" "$TMP/s.csv"; }

# Each row is what a plain eval measures at that temperature: the T = 1 row
# against the defaults, the T = 0.5 row against --temperature 0.5.
expect_ok "$CHARGAN" eval "$M" "$C" --oracle "$O" --bleu $S --max-n 4
want="$(value nll_oracle "$TMP/out" | cut -d' ' -f1),$(value bpc "$TMP/out" | cut -d' ' -f1)"
want="$want,$(value bleu4 "$TMP/out"),$(value self_bleu4 "$TMP/out")"
[ "$(row 1)" = "$want" ] || fail "sweep at T=1 gives '$(row 1)', eval gives '$want'"
expect_ok "$CHARGAN" eval "$M" "$C" --oracle "$O" --bleu $S --max-n 4 --temperature 0.5
want="$(value nll_oracle "$TMP/out" | cut -d' ' -f1)"
[ "$(row 0.5 | cut -d, -f1)" = "$want" ] || fail "sweep at T=0.5: nll_oracle '$(row 0.5)', eval '$want'"
[ "$(row 0.5 | cut -d, -f3,4)" = "$(value bleu4 "$TMP/out"),$(value self_bleu4 "$TMP/out")" ] ||
    fail "sweep at T=0.5: BLEU differs from eval --temperature 0.5"
# The text is scored under softmax(logits/T): not the T = 1 figure, and near
# uniform (log2 of the vocabulary size, bits/char) when T is large.
[ "$(row 0.5 | cut -d, -f2)" != "$(row 1 | cut -d, -f2)" ] || fail "NLL-test does not depend on T"
expect_ok "$CHARGAN" info "$M"
V=$(sed -n 's/^ *vocab_size: *//p' "$TMP/out" | head -n 1)
[ -n "$V" ] || { show; fail "info prints no vocab_size"; }
expect_ok "$CHARGAN" eval "$M" "$C" --sweep 100
awk -F, -v v="$V" 'NR == 2 { d = $2 - log(v) / log(2); exit !(d < 0.1 && d > -0.1) }' "$TMP/out" ||
    { show; fail "NLL-test at T=100 is not near log2($V)"; }

# Only the metrics asked for; --max-n picks the BLEU order; stdout by default
# and with --csv -, nothing else on it.
expect_ok "$CHARGAN" eval "$M" "$C" --sweep 0.8,1.5
[ "$(head -n 1 "$TMP/out")" = "temperature,nll_test_bpc" ] || { show; fail "text only: wrong header"; }
[ "$(wc -l <"$TMP/out")" -eq 3 ] || { show; fail "text only: not one row per temperature"; }
cp "$TMP/out" "$TMP/default.csv"
expect_ok "$CHARGAN" eval "$M" "$C" --sweep 0.8,1.5 --csv -
cmp -s "$TMP/out" "$TMP/default.csv" || fail "--csv - differs from the default"
expect_ok "$CHARGAN" eval "$M" --oracle "$O" $S --sweep 1
[ "$(head -n 1 "$TMP/out")" = "temperature,nll_oracle" ] || { show; fail "oracle only: wrong header"; }
expect_ok "$CHARGAN" eval "$M" "$C" --bleu $S --max-n 2 --sweep 1 --stream 4
[ "$(head -n 1 "$TMP/out")" = "temperature,nll_test_bpc,bleu2,self_bleu2" ] ||
    { show; fail "--max-n 2: wrong header"; }

# ---- the same seed gives the same CSV, another seed another ----
expect_ok "$CHARGAN" eval "$M" "$C" --oracle "$O" --bleu $S --sweep 0.5,0.7,1.0,1.2 \
    --csv "$TMP/s2.csv"
cmp -s "$TMP/s.csv" "$TMP/s2.csv" || fail "two runs with the same seed differ"
expect_ok "$CHARGAN" eval "$M" "$C" --oracle "$O" --bleu $S --sweep 0.5,0.7,1.0,1.2 \
    --csv "$TMP/s3.csv" --seed 2
cmp -s "$TMP/s.csv" "$TMP/s3.csv" && fail "--seed does not change the samples"

# ---- bad lists and option combinations ----
for l in "" 0 -1 "1,,2" abc "1," ",1" 101 nan 1e-50 "0.5,x" \
    "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33"; do
    expect_error 2 "--sweep" "$CHARGAN" eval "$M" "$C" --sweep "$l"
done
expect_error 2 "--sweep: more than 32 temperatures" "$CHARGAN" eval "$M" "$C" --sweep \
    "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33"
expect_error 2 "--sweep: temperature 2 of '1,,2' is empty" "$CHARGAN" eval "$M" "$C" --sweep 1,,2
expect_error 2 "--sweep: '1e-50': rounds to 0" "$CHARGAN" eval "$M" "$C" --sweep 1e-50
expect_error 2 "--sweep: expected a comma-separated list" "$CHARGAN" eval "$M" "$C" --sweep ""
expect_ok "$CHARGAN" eval "$M" "$C" --sweep "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32"
[ "$(wc -l <"$TMP/out")" -eq 33 ] || fail "32 temperatures do not give 32 rows"
expect_error 2 "--csv: needs --sweep" "$CHARGAN" eval "$M" "$C" --csv "$TMP/x.csv"
expect_error 2 "--plot: needs --sweep" "$CHARGAN" eval "$M" "$C" --plot "$TMP/x.png"
expect_error 2 "--csv: '$C' is an input of this command" \
    "$CHARGAN" eval "$M" "$C" --sweep 1 --csv "$C"
expect_error 2 "--plot: '$M' is an input" "$CHARGAN" eval "$M" "$C" --sweep 1 --plot "$M"
# The oracle is an input too (it was overwritten), and the CSV and the image
# must be two files (the image replaced the CSV).
cp "$O" "$TMP/o2.ckpt"
expect_error 2 "--csv: '$TMP/o2.ckpt' is an input" \
    "$CHARGAN" eval "$M" --oracle "$TMP/o2.ckpt" $S --sweep 1 --csv "$TMP/o2.ckpt"
expect_error 2 "--plot: '$TMP/o2.ckpt' is an input" \
    "$CHARGAN" eval "$M" --oracle "$TMP/o2.ckpt" $S --sweep 1 --plot "$TMP/o2.ckpt"
cmp -s "$O" "$TMP/o2.ckpt" || fail "eval changed its oracle"
expect_error 2 "--csv and --plot: both name '$TMP/same'" \
    "$CHARGAN" eval "$M" "$C" --sweep 1 --csv "$TMP/same" --plot "$TMP/same"
expect_error 2 "--csv and --plot: both name '$TMP/./same'" \
    "$CHARGAN" eval "$M" "$C" --sweep 1 --csv "$TMP/same" --plot "$TMP/./same"
# A CSV that cannot be written is refused before the work, not after it.
expect_error 1 "cannot write CSV '$TMP/no/such/x.csv': No such file or directory" \
    "$CHARGAN" eval "$M" "$C" --sweep 1 --csv "$TMP/no/such/x.csv"
expect_error 1 "cannot write CSV '$TMP': Is a directory" \
    "$CHARGAN" eval "$M" "$C" --sweep 1 --csv "$TMP"
# Temperatures are written as given, not rounded to 6 digits into one row.
expect_ok "$CHARGAN" eval "$M" "$C" --sweep 0.1234567,0.1234568
[ "$(sed 1d "$TMP/out" | cut -d, -f1 | tr '\n' ' ')" = "0.1234567 0.1234568 " ] ||
    { show; fail "close temperatures are not told apart in the CSV"; }
if mkfifo "$TMP/fifo.png" 2>/dev/null; then
    expect_error 1 "cannot write image '$TMP/fifo.png': not a regular file" \
        "$CHARGAN" eval "$M" "$C" --sweep 1 --plot "$TMP/fifo.png"
    [ -p "$TMP/fifo.png" ] || fail "eval --plot replaced a FIFO"
fi
expect_error 2 "--temperature: give --temperature or --sweep" "$CHARGAN" eval "$M" "$C" --bleu \
    --sweep 1 --temperature 0.5
expect_error 2 "--discriminator" "$CHARGAN" eval "$M" "$C" --sweep 1 --discriminator
expect_error 2 "--plot: the output name cannot contain a newline" "$CHARGAN" eval "$M" "$C" \
    --sweep 1 --plot "$TMP/a
b.png"
expect_error 2 "TEXTFILE" "$CHARGAN" eval "$M" --sweep 1
[ ! -e "$TMP/x.csv" ] && [ ! -e "$TMP/x.png" ] || fail "a rejected command line wrote a file"

# ---- failures ----
# A device is written in place, unlike an image: /dev/null is fine, and a
# full one says why.
expect_ok "$CHARGAN" eval "$M" "$C" --sweep 1 --csv /dev/null
if [ -c /dev/full ]; then
    expect_error 1 "cannot write CSV '/dev/full': No space left on device" \
        "$CHARGAN" eval "$M" "$C" --sweep 1 --csv /dev/full
fi
# A file is replaced only once the new CSV is complete: a write that fails
# (here past a file size limit of 0, its signal ignored) keeps the old one,
# and leaves no temporary beside it.  The limit holds for regular files
# only, so the message comes through a pipe.
mkdir "$TMP/csvdir"
cp "$TMP/default.csv" "$TMP/csvdir/old.csv"
chmod 640 "$TMP/csvdir/old.csv"
{
    (trap '' XFSZ && ulimit -f 0 && exec "$CHARGAN" eval "$M" "$C" --sweep 1 \
        --csv "$TMP/csvdir/old.csv") 2>&1 >/dev/null
    echo "exit status $?"
} | cat >"$TMP/err"
[ "$(cat "$TMP/err")" = "chargan: cannot write CSV '$TMP/csvdir/old.csv': File too large
exit status 1" ] || { show; fail "a failed CSV write does not say why, or exits 0"; }
cmp -s "$TMP/csvdir/old.csv" "$TMP/default.csv" || fail "a failed write lost the earlier CSV"
[ "$(ls -A "$TMP/csvdir")" = "old.csv" ] || { ls -l "$TMP/csvdir" >&2; fail "a temporary was left"; }
# A replaced CSV keeps its permissions.
expect_ok "$CHARGAN" eval "$M" "$C" --sweep 1 --csv "$TMP/csvdir/old.csv"
[ "$(stat -c %a "$TMP/csvdir/old.csv")" = 640 ] || fail "the replaced CSV lost its permissions"
[ "$(ls -A "$TMP/csvdir")" = "old.csv" ] || { ls -l "$TMP/csvdir" >&2; fail "a temporary was left"; }
# The complete CSV is synced, renamed into place, then its directory synced,
# so that a crash after the command keeps it; a directory that cannot be
# synced is an error (the new CSV is in place by then).
if [ -f "${CHARGAN_TEST_SLOW_FSYNC:-}" ]; then
    expect_ok fsync_shim CHARGAN_TEST_FSYNC_LOG="$TMP/fsyncs" \
        "$CHARGAN" eval "$M" "$C" --sweep 1 --csv "$TMP/csvdir/old.csv"
    [ "$(tr '\n' ' ' <"$TMP/fsyncs")" = "file directory " ] ||
        { cat "$TMP/fsyncs" >&2; fail "the CSV or its directory is not synced, in that order"; }
    expect_error 1 "cannot sync the directory of CSV '$TMP/csvdir/old.csv': Input/output error" \
        fsync_shim CHARGAN_TEST_FSYNC_FAIL=directory \
        "$CHARGAN" eval "$M" "$C" --sweep 0.8,1.5 --csv "$TMP/csvdir/old.csv"
    cmp -s "$TMP/csvdir/old.csv" "$TMP/default.csv" || fail "the CSV is not in place"
fi
# A symbolic link (/dev/stdout, /dev/fd/N among them) is written through,
# not replaced by a file; so is a writable file in a directory this user
# cannot write, where no temporary can go.
ln -s old.csv "$TMP/csvdir/link.csv"
rm -f "$TMP/csvdir/old.csv"
expect_ok "$CHARGAN" eval "$M" "$C" --sweep 0.8,1.5 --csv "$TMP/csvdir/link.csv"
[ -L "$TMP/csvdir/link.csv" ] || fail "--csv replaced a symbolic link"
cmp -s "$TMP/csvdir/old.csv" "$TMP/default.csv" || fail "--csv did not write through a link"
rm -f "$TMP/csvdir/link.csv"
# a dangling one whose target cannot be made is refused before the work
# (before the missing oracle is found missing)
ln -s "$TMP/no/such/t.csv" "$TMP/csvdir/dangling.csv"
expect_error 1 "cannot write CSV '$TMP/csvdir/dangling.csv': No such file or directory" \
    "$CHARGAN" eval "$M" "$C" --oracle "$TMP/none.ckpt" --sweep 1 --csv "$TMP/csvdir/dangling.csv"
rm -f "$TMP/csvdir/dangling.csv"
if [ -e /dev/fd/0 ]; then
    "$CHARGAN" eval "$M" "$C" --sweep 0.8,1.5 --csv /dev/fd/3 3>"$TMP/fd3.csv" >/dev/null ||
        fail "--csv /dev/fd/3 failed"
    cmp -s "$TMP/fd3.csv" "$TMP/default.csv" || fail "--csv /dev/fd/3 did not write the table"
fi
if [ "$(id -u)" -ne 0 ]; then
    : >"$TMP/csvdir/old.csv"
    chmod 555 "$TMP/csvdir"
    expect_ok "$CHARGAN" eval "$M" "$C" --sweep 0.8,1.5 --csv "$TMP/csvdir/old.csv"
    chmod 755 "$TMP/csvdir"
    cmp -s "$TMP/csvdir/old.csv" "$TMP/default.csv" ||
        fail "--csv did not write a file in a read-only directory"
fi
# A temperature so small that weights / T overflow a float: nothing written.
expect_error 1 "the output layer divided by it leaves the float range" "$CHARGAN" eval "$M" "$C" \
    --sweep 1,1e-44 --csv "$TMP/x.csv"
[ ! -e "$TMP/x.csv" ] || fail "a failed sweep wrote a CSV"
# ... refused before any temperature is evaluated: with 2^28 characters of
# samples at each, the first alone would take minutes.
expect_error 1 "the output layer divided by it leaves the float range" timeout 60 "$CHARGAN" eval \
    "$M" "$C" --sweep 1,1e-44 --bleu --samples 16384 --length 16384 --csv "$TMP/x.csv"
[ ! -e "$TMP/x.csv" ] || fail "a failed sweep wrote a CSV"
expect_error 1 "cannot load oracle" "$CHARGAN" eval "$M" "$C" --oracle "$TMP/none.ckpt" --sweep 1 \
    --csv "$TMP/x.csv"
[ ! -e "$TMP/x.csv" ] || fail "a failed sweep wrote a CSV"

# gnuplot missing, failing, or writing nothing: exit 1, the CSV kept.
expect_error 1 "--plot: gnuplot not found on PATH" env PATH="$TMP/bin" "$CHARGAN" eval "$M" "$C" \
    --sweep 0.8,1.5 --csv "$TMP/kept.csv" --plot "$TMP/x.png"
cmp -s "$TMP/kept.csv" "$TMP/default.csv" || fail "without gnuplot the CSV is not written"
[ ! -e "$TMP/x.png" ] || fail "an image was written without gnuplot"
printf '#!/bin/sh\necho "\\"$1\\" line 7: boom" >&2\nexit 3\n' >"$TMP/bin/gnuplot"
chmod +x "$TMP/bin/gnuplot"
rm -f "$TMP/kept.csv"
expect_error 1 "--plot: gnuplot failed (exit status 3): " env PATH="$TMP/bin" "$CHARGAN" eval \
    "$M" "$C" --sweep 0.8,1.5 --csv "$TMP/kept.csv" --plot "$TMP/x.png"
grep -q 'line 7: boom' "$TMP/err" || { show; fail "gnuplot's message is not passed on"; }
cmp -s "$TMP/kept.csv" "$TMP/default.csv" || fail "with a failing gnuplot the CSV is not written"
printf '#!/bin/sh\nexit 0\n' >"$TMP/bin/gnuplot"
expect_error 1 "--plot: gnuplot wrote no image" env PATH="$TMP/bin" "$CHARGAN" eval "$M" "$C" \
    --sweep 1 --plot "$TMP/x.png"
[ ! -e "$TMP/x.png" ] || fail "an empty image was left"
[ -z "$(ls -A "$TMP/tmpdir")" ] || { ls -l "$TMP/tmpdir" >&2; fail "temporary files left in TMPDIR"; }
[ -z "$(ls -A "$TMP" | grep '\.tmp-')" ] || { ls -l "$TMP" >&2; fail "a partial image left"; }

# ---- the real thing ----
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "gnuplot not installed (Debian: gnuplot-nox): the image checks are skipped"
    exit 77
fi
is_png() { # the 8-byte PNG signature, then an IHDR of the given size
    [ -s "$1" ] || return 1
    [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] || return 1
    [ "$(od -An -tu1 -j16 -N8 "$1" | tr -s ' ' | sed 's/^ //')" = "$2" ]
}
expect_ok "$CHARGAN" eval "$M" "$C" --oracle "$O" --bleu $S --sweep 0.5,0.7,1.0,1.2 \
    --csv "$TMP/p.csv" --plot "$TMP/both.png"
cmp -s "$TMP/p.csv" "$TMP/s.csv" || fail "--plot changed the CSV"
[ "$(value plot "$TMP/out")" = "$TMP/both.png" ] || { show; fail "stdout does not name the image"; }
# Two panels (NLL-oracle against NLL-test, BLEU against self-BLEU): 1280x560.
is_png "$TMP/both.png" "0 0 5 0 0 0 2 48" || fail "both.png is not a 1280x560 PNG"
# One panel (NLL-test against T), the CSV on stdout: 640x560.
expect_ok "$CHARGAN" eval "$M" "$C" --sweep 0.8,1.5 --plot "$TMP/one.png"
cmp -s "$TMP/out" "$TMP/default.csv" || fail "with --plot and no --csv, stdout is not the CSV"
is_png "$TMP/one.png" "0 0 2 128 0 0 2 48" || fail "one.png is not a 640x560 PNG"
# The image gnuplot wrote is synced before it is renamed into place, then
# its directory (gnuplot's own syncs, if any, come first).
if [ -f "${CHARGAN_TEST_SLOW_FSYNC:-}" ]; then
    rm -f "$TMP/fsyncs"
    expect_ok fsync_shim CHARGAN_TEST_FSYNC_LOG="$TMP/fsyncs" \
        "$CHARGAN" eval "$M" "$C" --sweep 0.8,1.5 --plot "$TMP/one.png"
    [ "$(tail -n 2 "$TMP/fsyncs" | tr '\n' ' ')" = "file directory " ] ||
        { cat "$TMP/fsyncs" >&2; fail "the image or its directory is not synced, in that order"; }
fi
[ -z "$(ls -A "$TMP/tmpdir")" ] || { ls -l "$TMP/tmpdir" >&2; fail "temporary files left in TMPDIR"; }

echo "ok"
