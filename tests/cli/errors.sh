# errors.sh - runtime failures give one clear line and status 1, never a
# crash, and never leave a model behind.
. "$(dirname "$0")/common.sh"

C=$TMP/corpus.txt
M=$TMP/model.ckpt

# --- the corpus -------------------------------------------------------------
expect_error 1 "cannot read corpus '$TMP/missing.txt': No such file or directory" \
    "$CHARGAN" train "$TMP/missing.txt" -o "$M" $TINY --steps 5
expect_error 1 "cannot read corpus '$TMP'" "$CHARGAN" train "$TMP" -o "$M" $TINY --steps 5
: >"$TMP/empty.txt"
expect_error 1 "corpus '$TMP/empty.txt'" "$CHARGAN" train "$TMP/empty.txt" -o "$M" $TINY --steps 5
printf 'abc\377def' >"$TMP/bad-utf8.txt"
cat "$C" >>"$TMP/bad-utf8.txt"
expect_error 1 "corpus '$TMP/bad-utf8.txt'" "$CHARGAN" train "$TMP/bad-utf8.txt" -o "$M" $TINY --steps 5
grep -q "offset 3" "$TMP/err" || { show; fail "invalid UTF-8: the message does not give the offset 3"; }
# the library's advice names a C API option; the tool's says what a user can do
grep -q "CHARGAN_UTF8_REPLACE" "$TMP/err" && { show; fail "invalid UTF-8: advice for C callers"; }
grep -q "the text must be UTF-8 (convert it with iconv" "$TMP/err" ||
    { show; fail "invalid UTF-8: no advice"; }
[ -e "$M" ] && fail "a failed train wrote a model"
# A device is refused at once (/dev/zero was read until memory ran out).
expect_error 1 "cannot read corpus '/dev/zero': a device, not a file" \
    "$CHARGAN" train /dev/zero -o "$M" $TINY --steps 5
expect_error 1 "cannot read log '/dev/zero': a device, not a file" "$CHARGAN" plot /dev/zero -o "$TMP/p.png"
# A FIFO without a writer, given where a model is read: refused, not waited on.
mkfifo "$TMP/in-fifo" 2>/dev/null &&
    expect_error 1 "not a regular file" timeout 20 "$CHARGAN" info "$TMP/in-fifo"

# --- where the model and the log go ------------------------------------------
expect_error 1 "cannot write model '$TMP/no/such/dir/m.ckpt'" \
    "$CHARGAN" train "$C" -o "$TMP/no/such/dir/m.ckpt" $TINY --steps 5
expect_error 1 "cannot write model '$TMP': Is a directory" "$CHARGAN" train "$C" -o "$TMP" $TINY --steps 5
expect_error 1 "cannot open log '$TMP/no/log.jsonl'" \
    "$CHARGAN" train "$C" -o "$M" $TINY --steps 5 --log "$TMP/no/log.jsonl"
mkfifo "$TMP/fifo" 2>/dev/null &&
    expect_error 1 "cannot write model '$TMP/fifo': not a regular file" \
        "$CHARGAN" train "$C" -o "$TMP/fifo" $TINY --steps 5
# An output that names an input, or another output, would destroy it.
cp "$C" "$TMP/own.txt"
expect_error 1 "the model (-o) and the corpus are the same file '$TMP/own.txt'" \
    "$CHARGAN" train "$TMP/own.txt" -o "$TMP/own.txt" $TINY --steps 2
expect_error 1 "the log (--log) and the corpus are the same file" \
    "$CHARGAN" train "$TMP/own.txt" -o "$M" --log "$TMP/own.txt" $TINY --steps 2
cmp -s "$C" "$TMP/own.txt" || fail "the corpus was written over"
expect_error 1 "the model (-o) and the log (--log) are the same file" \
    "$CHARGAN" train "$C" -o "$M" --log "$M" $TINY --steps 2
[ -e "$M" ] && fail "a refused train wrote a model"
# Spelt differently before either exists, too (the log was lost to the model).
expect_error 1 "the model (-o) and the log (--log) are the same file" \
    "$CHARGAN" train "$C" -o "$M" --log "$(dirname "$M")/./$(basename "$M")" $TINY --steps 2
[ -e "$M" ] && fail "a refused train wrote a model"
# Or through a link that points where the model will be made (the log,
# written through it, was lost to the model's save).
ln -s "$(basename "$M")" "$TMP/to-model"
expect_error 1 "the model (-o) and the log (--log) are the same file" \
    "$CHARGAN" train "$C" -o "$M" --log "$TMP/to-model" $TINY --steps 2
ln -s "$TMP/to-model" "$TMP/to-link"
expect_error 1 "the model (-o) and the log (--log) are the same file" \
    "$CHARGAN" train "$C" -o "$TMP/./$(basename "$M")" --log "$TMP/to-link" $TINY --steps 2
[ -e "$M" ] && fail "a refused train wrote a model"
rm "$TMP/to-model" "$TMP/to-link"
# A train refused for its corpus leaves the log of an earlier run alone.
printf 'earlier run\n' >"$TMP/kept.jsonl"
printf 'a' >"$TMP/one.txt"
expect_error 1 "corpus too short" \
    "$CHARGAN" train "$TMP/one.txt" -o "$M" --log "$TMP/kept.jsonl" $TINY --steps 2
[ "$(cat "$TMP/kept.jsonl")" = "earlier run" ] || fail "a refused train emptied its log"
# A file name so long that the temporary file beside it cannot be created,
# and names that are not file names: refused before training.
long=$TMP/$(printf '%0250d' 0)
expect_error 1 "cannot write model '$long': file name too long" \
    "$CHARGAN" train "$C" -o "$long" $TINY --steps 2
expect_error 1 "cannot write model '': empty file name" "$CHARGAN" train "$C" -o "" $TINY --steps 2
expect_error 1 "cannot write model '$C/m.ckpt': Not a directory" \
    "$CHARGAN" train "$C" -o "$C/m.ckpt" $TINY --steps 2
expect_error 1 "cannot write model '$TMP/nowhere/': no file name" \
    "$CHARGAN" train "$C" -o "$TMP/nowhere/" $TINY --steps 2
[ -e "$long" ] && fail "a refused output left a file"
# The library refuses a model too large to allocate, before allocating it.
expect_error 1 "cannot create the generator" "$CHARGAN" train "$C" -o "$M" --hidden 16384 --layers 8
# A log that cannot be written is an error (the model is saved all the same),
# said before the summary would be: nothing on stdout.
if [ -w /dev/full ]; then
    expect_error 1 "cannot write log '/dev/full'" "$CHARGAN" train "$C" -o "$TMP/full.ckpt" $TINY \
        --steps 2 --log /dev/full
    [ -s "$TMP/out" ] && { show; fail "a failed log: the summary was printed"; }
    [ -s "$TMP/full.ckpt" ] || fail "a failed log: the model was not saved"
fi
expect_error 1 "cannot resume from '$TMP/missing.ckpt'" \
    "$CHARGAN" train "$C" -o "$M" --resume "$TMP/missing.ckpt" -q
[ -e "$M" ] && fail "a failed train wrote a model"

# Too little held-out text for one window: a warning, no figure, a model.
head -c 2000 "$C" >"$TMP/small.txt"
run "$CHARGAN" train "$TMP/small.txt" -o "$TMP/small.ckpt" $TINY --seq 300 --steps 2
[ "$status" -eq 0 ] || { show; fail "a short validation part failed the run"; }
grep -q "^chargan: warning: no validation: " "$TMP/err" || { show; fail "no validation warning"; }
grep -q "^val_bpc:" "$TMP/out" && fail "a validation figure without validation"
[ -s "$TMP/small.ckpt" ] || fail "no model saved without validation"
# A corpus too short for one training window.
expect_error 1 "corpus '$TMP/small.txt'" "$CHARGAN" train "$TMP/small.txt" -o "$M" $TINY --seq 3000
rm -f "$M"

# --- loading models -----------------------------------------------------------
expect_error 1 "cannot load model '$TMP/missing.ckpt'" "$CHARGAN" sample "$TMP/missing.ckpt"
expect_error 1 "cannot load model '$TMP/missing.ckpt'" "$CHARGAN" info "$TMP/missing.ckpt"
expect_error 1 "cannot load model '$TMP/missing.ckpt'" "$CHARGAN" eval "$TMP/missing.ckpt" "$C"
expect_error 1 "cannot load model '$C'" "$CHARGAN" info "$C"
expect_error 1 "cannot load model '$TMP'" "$CHARGAN" sample "$TMP"

expect_ok "$CHARGAN" train "$C" -o "$M" $TINY --steps 3
size=$(wc -c <"$M")
# Cut the file at a spread of offsets, the header's and the last byte's included.
for cut in 0 1 4 8 12 16 24 32 64 100 $((size / 3)) $((size / 2)) $((size - 100)) \
    $((size - 5)) $((size - 1)); do
    [ "$cut" -ge 0 ] && [ "$cut" -lt "$size" ] || continue
    head -c "$cut" "$M" >"$TMP/cut.ckpt"
    for cmd in sample info; do
        expect_error 1 "cannot load model '$TMP/cut.ckpt'" "$CHARGAN" $cmd "$TMP/cut.ckpt"
    done
    expect_error 1 "cannot load model '$TMP/cut.ckpt'" "$CHARGAN" eval "$TMP/cut.ckpt" "$C"
    expect_error 1 "cannot resume from '$TMP/cut.ckpt'" \
        "$CHARGAN" train "$C" -o "$TMP/out.ckpt" --resume "$TMP/cut.ckpt" -q
    [ -e "$TMP/out.ckpt" ] && fail "resume from a truncated file wrote a model"
done
# A flipped byte in the middle is caught by a checksum.
cp "$M" "$TMP/flip.ckpt"
printf '\125' | dd of="$TMP/flip.ckpt" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
if cmp -s "$M" "$TMP/flip.ckpt"; then
    printf '\252' | dd of="$TMP/flip.ckpt" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
fi
expect_error 1 "cannot load model '$TMP/flip.ckpt'" "$CHARGAN" sample "$TMP/flip.ckpt"
# A trainer section whose checksums hold but whose batch is 0: info shows the
# model, then fails on the trainer (it used to say "trainer: none").
if command -v python3 >/dev/null 2>&1; then
    python3 - "$M" "$TMP/bad-trainer.ckpt" <<'EOF' || fail "could not write the bad trainer file"
import struct, sys, zlib
data = bytearray(open(sys.argv[1], "rb").read())
count, off = struct.unpack_from("<I", data, 16)[0], 24  # docs/FORMATS.md: the container
for _ in range(count):
    tag, _flags, size = struct.unpack_from("<4sIQ", data, off)
    if tag == b"TRNR":
        struct.pack_into("<I", data, off + 16, 0)  # batch
        struct.pack_into("<I", data, off + 16 + size, zlib.crc32(data[off:off + 16 + size]))
    off += 16 + size + 4
open(sys.argv[2], "wb").write(data)
EOF
    expect_error 1 "cannot load the trainer state of '$TMP/bad-trainer.ckpt'" \
        "$CHARGAN" info "$TMP/bad-trainer.ckpt"
    grep -q "batch" "$TMP/err" ||
        { show; fail "info: the trainer's error does not name the field"; }
fi

# --- eval's text -------------------------------------------------------------
expect_error 1 "cannot read text '$TMP/missing.txt'" "$CHARGAN" eval "$M" "$TMP/missing.txt"
expect_error 1 "text '$TMP/empty.txt' is empty" "$CHARGAN" eval "$M" "$TMP/empty.txt"
expect_error 1 "text '$TMP/bad-utf8.txt'" "$CHARGAN" eval "$M" "$TMP/bad-utf8.txt"

# --- eval's metrics ------------------------------------------------------------
expect_error 1 "cannot load oracle '$TMP/missing.ckpt'" \
    "$CHARGAN" eval "$M" "$C" --oracle "$TMP/missing.ckpt"
expect_error 1 "--discriminator" "$CHARGAN" eval "$M" "$C" --discriminator
# An oracle over another vocabulary cannot score the samples.
awk 'BEGIN{for (i = 0; i < 400; i++) print "ab ba"}' >"$TMP/ab.txt"
expect_ok "$CHARGAN" train "$TMP/ab.txt" -o "$TMP/ab.ckpt" $TINY --steps 30
expect_error 1 "--oracle '$TMP/ab.ckpt'" "$CHARGAN" eval "$M" --oracle "$TMP/ab.ckpt" --samples 4
# BLEU needs reference lines, and samples that hold a line: a model that
# has learnt that most characters are newlines, sampled cold, writes none.
printf ' \n\n \n' >"$TMP/blank.txt"
expect_error 1 "has no line to use as a reference" "$CHARGAN" eval "$M" "$TMP/blank.txt" --bleu
awk 'BEGIN{for (i = 0; i < 3000; i++) printf "\n"; print "a"}' >"$TMP/nl.txt"
expect_ok "$CHARGAN" train "$TMP/nl.txt" -o "$TMP/nl.ckpt" $TINY --steps 30
expect_error 1 "samples hold a line of text" \
    "$CHARGAN" eval "$TMP/nl.ckpt" "$TMP/nl.txt" --bleu --samples 8 --length 5 --temperature 0.01
# A NUL byte in the text does not end the references (the lines after it
# were dropped): three lines with words, and a NUL alone (no words: BLEU
# reads up to it).
printf 'shall i compare thee\n\000\nto a summer day\nthou art more lovely\n' >"$TMP/nul.txt"
expect_ok "$CHARGAN" eval "$M" "$TMP/nul.txt" --bleu --samples 4 --length 40
[ "$(value bleu_references "$TMP/out")" = 3 ] || { show; fail "--bleu: lines after a NUL dropped"; }

# --- sampling ---------------------------------------------------------------
expect_error 1 "cannot sample from '$M'" "$CHARGAN" sample "$M" --prime "$(printf 'ab\377')"
if [ -w /dev/full ]; then
    "$CHARGAN" sample "$M" -n 10 --seed 1 >/dev/full 2>"$TMP/err"
    [ $? -eq 1 ] || fail "sample to a full disk did not fail with status 1"
    grep -q "^chargan: cannot write to standard output" "$TMP/err" ||
        fail "sample to a full disk: no message"
    # every command's result, and help, is checked the same way
    "$CHARGAN" train "$C" -o "$TMP/full-out.ckpt" $TINY --steps 2 >/dev/full 2>"$TMP/err"
    [ $? -eq 1 ] || fail "train's summary to a full disk did not fail with status 1"
    grep -q "^chargan: cannot write to standard output" "$TMP/err" || fail "train to a full disk"
    for args in --help "help train" "train --help" --version; do
        # shellcheck disable=SC2086 # args holds a command and its option
        "$CHARGAN" $args >/dev/full 2>/dev/null && fail "'$args' to a full disk exited 0"
    done
fi
# A standard descriptor closed at start is not taken by the --log file (the
# lowest free one): the summary to a closed stdout fails as it does without
# a log, and the progress to a closed stderr does not land in the log.  (The
# log is closed before the summary, so only /proc, below, sees stdout's.)
"$CHARGAN" train "$C" -o "$TMP/closed.ckpt" $TINY --steps 2 --log "$TMP/closed1.jsonl" \
    >&- 2>"$TMP/err"
[ $? -eq 1 ] || fail "train with stdout closed did not fail with status 1"
grep -q "^chargan: cannot write to standard output: Bad file descriptor" "$TMP/err" ||
    { cat "$TMP/err" >&2; fail "train with stdout closed: no message"; }
"$CHARGAN" train "$C" -o "$TMP/closed.ckpt" --hidden 16 --embed 8 --batch 8 --seq 32 --steps 4 \
    --report-every 1 --log "$TMP/closed2.jsonl" >/dev/null 2>&- || fail "train with stderr closed failed"
grep -v '^{' "$TMP/closed2.jsonl" >&2 && fail "the log took standard error"
# What holds them while it runs: /dev/null, not the log (where /proc shows).
if [ -d /proc/self/fd ]; then
    "$CHARGAN" train "$C" -o "$TMP/closed.ckpt" $TINY --steps 100000000 --report-every 1 \
        --log "$TMP/closed3.jsonl" <&- >&- 2>/dev/null &
    pid=$!
    i=0
    while [ ! -s "$TMP/closed3.jsonl" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    held="$(readlink /proc/$pid/fd/0) $(readlink /proc/$pid/fd/1)"
    kill -TERM $pid
    wait $pid
    [ "$held" = "/dev/null /dev/null" ] || fail "closed stdin and stdout are held by '$held'"
fi

echo "ok"
