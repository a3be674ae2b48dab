# hostile.sh - `chargan train` on hostile corpora and on a disk that fills
# up: each run either trains (the documented behaviour) or fails with one
# clear line and status 1, and never leaves a partial or temporary file.
. "$(dirname "$0")/common.sh"

C=$TMP/corpus.txt
M=$TMP/model.ckpt

no_temporaries() {
    ls -a "$1" | grep -q '\.tmp-' && { ls -la "$1" >&2; fail "$2: a temporary file was left behind"; }
    return 0
}

# --- corpora that are refused --------------------------------------------------
: >"$TMP/empty.txt"
expect_error 1 "corpus '$TMP/empty.txt' is empty" "$CHARGAN" train "$TMP/empty.txt" -o "$M" $TINY --steps 2
printf 'a' >"$TMP/one.txt"
expect_error 1 "corpus too short: 1 training ids" "$CHARGAN" train "$TMP/one.txt" -o "$M" $TINY --steps 2
# shorter than one window of --seq 32 + 1 characters (after the held-out tenth)
printf 'shall i compare thee to a summer' >"$TMP/short.txt"
expect_error 1 "a window needs seq_len + 1 = 33" "$CHARGAN" train "$TMP/short.txt" -o "$M" $TINY --steps 2
# binary data, the same bytes every run
awk 'BEGIN { srand(20261125); for (i = 0; i < 8192; i++) printf "%c", 128 + int(rand() * 128) }' \
    >"$TMP/binary.bin"
expect_error 1 "invalid UTF-8 at byte offset" "$CHARGAN" train "$TMP/binary.bin" -o "$M" $TINY --steps 2
# invalid UTF-8 of each kind after valid text: the offset is named
head -c 1000 "$C" >"$TMP/prefix.txt"
for bad in '\300\257' '\355\240\200' '\364\220\200\200' '\342\202' '\200'; do
    { cat "$TMP/prefix.txt"; printf "$bad"; cat "$C"; } >"$TMP/bad.txt"
    expect_error 1 "invalid UTF-8 at byte offset 1000" "$CHARGAN" train "$TMP/bad.txt" -o "$M" $TINY --steps 2
done
# text of characters the model's tokenizer has never seen (resuming a model
# fitted on the sonnets with a corpus in another script)
expect_ok "$CHARGAN" train "$C" -o "$TMP/sonnets.ckpt" $TINY --steps 2
awk 'BEGIN { for (i = 0; i < 400; i++) printf "\346\274\242\345\255\227 " }' >"$TMP/oov.txt"
# the space is in the vocabulary: drop it so that nothing is
tr -d ' ' <"$TMP/oov.txt" >"$TMP/oov-only.txt"
cp "$TMP/sonnets.ckpt" "$TMP/sonnets.orig"
expect_error 1 "no character of the tokenizer's vocabulary" \
    "$CHARGAN" train "$TMP/oov-only.txt" -o "$TMP/sonnets.ckpt" --resume "$TMP/sonnets.ckpt" --steps 4 -q
cmp -s "$TMP/sonnets.ckpt" "$TMP/sonnets.orig" || fail "a refused corpus changed the model"
[ -e "$M" ] && fail "a refused corpus wrote a model"
no_temporaries "$TMP" "refused corpora"

# --- corpora that train ----------------------------------------------------------
# Some unknown characters among known ones: trained, the unknown ones as the
# unknown id.
{ cat "$C"; cat "$TMP/oov.txt"; } >"$TMP/mixed.txt"
expect_ok "$CHARGAN" train "$TMP/mixed.txt" -o "$TMP/sonnets.ckpt" --resume "$TMP/sonnets.ckpt" --steps 4 -q
[ "$(value steps "$TMP/out")" = 4 ] || { show; fail "mixed corpus: wrong step count"; }
# NUL bytes are characters like any other.
tr 'e' '\000' <"$C" >"$TMP/nul.txt"
expect_ok "$CHARGAN" train "$TMP/nul.txt" -o "$TMP/nul.ckpt" $TINY --steps 2
# ... and come back out of sample whole (its output was cut at the first one).
"$CHARGAN" sample "$TMP/nul.ckpt" -n 400 --seed 3 >"$TMP/nul.out" || fail "sample of a NUL model"
[ "$(tr -cd '\000' <"$TMP/nul.out" | wc -c)" -gt 0 ] || fail "sample: no NUL in 400 characters"
[ "$(tr -d '\000' <"$TMP/nul.out" | wc -l)" -ge 1 ] || fail "sample: output cut short"
# One line of 100 MB: read, fitted, encoded and trained on without a line
# limit (no validation part, to keep it quick).
tr '\n' ' ' <"$C" >"$TMP/line.txt"
big=$((100 * 1024 * 1024))
while [ "$(wc -c <"$TMP/line.txt")" -lt "$big" ]; do
    cat "$TMP/line.txt" "$TMP/line.txt" >"$TMP/line2.txt" && mv "$TMP/line2.txt" "$TMP/line.txt"
done
head -c "$big" "$TMP/line.txt" >"$TMP/big.txt"
rm -f "$TMP/line.txt"
[ "$(wc -l <"$TMP/big.txt")" -eq 0 ] || fail "the 100 MB corpus has a newline"
expect_ok "$CHARGAN" train "$TMP/big.txt" -o "$TMP/big.ckpt" $TINY --steps 2 --val-fraction 0
rm -f "$TMP/big.txt"
expect_ok "$CHARGAN" info "$TMP/big.ckpt"
[ "$(value "  global_step" "$TMP/out")" = 2 ] || { show; fail "100 MB line: wrong step count"; }

# --- a file-size limit (as a full disk): the save fails, the old model stays ---
expect_ok "$CHARGAN" train "$C" -o "$M" $TINY --steps 2
cp "$M" "$TMP/old.ckpt"
size=$(wc -c <"$M")
blocks=$((size / 512 / 2)) # ulimit -f counts 512-byte blocks: half the file fits
status=$(
    trap '' XFSZ
    ulimit -f "$blocks" || exit 77
    "$CHARGAN" train "$C" -o "$M" $TINY --steps 4 --checkpoint-every 2 >"$TMP/out" 2>"$TMP/err"
    echo $?
)
if [ "$status" = 77 ]; then
    echo "# skipped the file-size limit: ulimit -f is not available"
else
    [ "$status" = 1 ] || { show; fail "file-size limit: exit status $status, expected 1"; }
    grep -q "^chargan: cannot save checkpoint '$M': cannot write '$M.tmp-.*': File too large$" \
        "$TMP/err" || { show; fail "file-size limit: no clear message"; }
    cmp -s "$M" "$TMP/old.ckpt" || fail "file-size limit: the old model changed"
    no_temporaries "$TMP" "file-size limit"
    expect_ok "$CHARGAN" info "$M"
fi

# --- a full file system (a small tmpfs, root only) ---------------------------------
# The first checkpoint fits, the second does not while the first is still
# there: the save fails with ENOSPC, the first checkpoint stays, resumable.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1; then
    pages=$(((size + 4095) / 4096))
    mkdir "$TMP/fs"
    unshare -m sh -c '
        mount -t tmpfs -o size=$(('"$pages"' * 4096 + 4096)) tmpfs "$1" 2>/dev/null || exit 77
        "$2" train "$3" -o "$1/m.ckpt" '"$TINY"' --steps 6 --checkpoint-every 2 >"$4/out" 2>"$4/err"
        echo $? >"$4/status"
        ls -a "$1" >"$4/listing"
        cp "$1/m.ckpt" "$4/fs-model.ckpt" 2>/dev/null
        exit 0' sh "$TMP/fs" "$CHARGAN" "$C" "$TMP"
    rc=$?
    if [ "$rc" = 77 ] || [ ! -e "$TMP/status" ]; then
        echo "# skipped the full file system: cannot mount a tmpfs here"
    else
        [ "$(cat "$TMP/status")" = 1 ] || { show; fail "full disk: exit status $(cat "$TMP/status")"; }
        grep -q "^chargan: cannot save checkpoint '$TMP/fs/m.ckpt': cannot write .*: No space left on device$" \
            "$TMP/err" || { show; fail "full disk: no clear message"; }
        grep -q '\.tmp-' "$TMP/listing" && { cat "$TMP/listing"; fail "full disk: a temporary file was left"; }
        expect_ok "$CHARGAN" info "$TMP/fs-model.ckpt"
        [ "$(value "  global_step" "$TMP/out")" = 2 ] || { show; fail "full disk: the kept checkpoint is not step 2"; }
        expect_ok "$CHARGAN" train "$C" -o "$TMP/fs-model.ckpt" --resume "$TMP/fs-model.ckpt" --steps 4 -q
        [ "$(value steps "$TMP/out")" = 4 ] || { show; fail "full disk: the kept checkpoint does not resume"; }
    fi
else
    echo "# skipped the full file system: needs root and unshare"
fi

echo "ok"
