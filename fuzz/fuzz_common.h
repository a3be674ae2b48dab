/* fuzz_common.h - what the fuzz targets share.  Each target is one file
 * defining LLVMFuzzerTestOneInput(); it is linked either with libFuzzer
 * (clang -fsanitize=fuzzer, meson -Dfuzz=true) or with replay.c, a plain
 * main() that feeds it the committed corpus and crash inputs (the
 * fuzz-replay tests of every build). */
#ifndef CHARGAN_FUZZ_COMMON_H
#define CHARGAN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stops the target on a broken invariant: prints the message and aborts, so
 * libFuzzer (and the replay test) report it as a crash with the input. */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fz_fail(__VA_ARGS__);                                                                  \
    } while (0)

/* Writes size bytes to this process's scratch file and returns its path, or
 * NULL if it cannot (the target then skips the input).  The file lives in
 * $TMPDIR (default /tmp) and is removed at exit. */
const char *fz_scratch_file(const void *data, size_t size);

/* A malloc'd copy of data whose checksums are recomputed, so that mutations
 * reach the parsers behind them instead of stopping at a checksum mismatch
 * (the mismatch paths are tested by tests/test_checkpoint.c and
 * tests/test_tokenizer.c).  fz_fix_checkpoint: the header CRC and each
 * section's CRC as far as the section lengths stay inside the buffer.
 * fz_fix_vocabulary: the trailing CRC over everything before it. */
uint8_t *fz_fix_checkpoint(const uint8_t *data, size_t size);
uint8_t *fz_fix_vocabulary(const uint8_t *data, size_t size);

/* The payload of the first section tagged tag (4 characters) of a
 * checkpoint, found as fz_fix_checkpoint walks them; NULL if none. */
const uint8_t *fz_checkpoint_section(const uint8_t *data, size_t size, const char *tag,
                                     size_t *length);

#endif
