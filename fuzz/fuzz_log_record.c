/* fuzz_log_record.c - the reader of `chargan train --log` records
 * (cli/log_record.c, what `chargan plot` reads from a log it is given) on
 * arbitrary lines: the input split at newlines, each line parsed alone.
 * Checks that a record read has a known phase, a step in [0, 2^53) and no
 * infinite value, that a refusal says why, and that a line progress.c would write is read back
 * with its values. */
#include "fuzz_common.h"

#include "log_record.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void check_line(const char *line, size_t len)
{
    log_record rec;
    char why[200];
    why[0] = '\0';
    if (log_record_parse(line, len, &rec, why, sizeof why) != 0) {
        FZ_CHECK(why[0] != '\0', "a refusal without a reason");
        return;
    }
    FZ_CHECK(rec.phase >= 0 && rec.phase < N_PHASES, "phase %d", rec.phase);
    FZ_CHECK(rec.v[K_STEP] >= 0 && rec.v[K_STEP] < LOG_STEP_LIMIT, "step %g", rec.v[K_STEP]);
    for (int k = 0; k < N_KEYS; k++) /* a number out of a double's range is refused */
        FZ_CHECK(!isinf(rec.v[k]), "key %d is infinite", k);
}

/* The record the input's first bytes choose, written as progress.c writes
 * one, must read back with its values. */
static void check_round_trip(const uint8_t *data, size_t size)
{
    if (size < 9)
        return;
    int phase = data[0] % N_PHASES;
    unsigned long long step = 0;
    for (int i = 1; i < 9; i++)
        step = step << 8 | data[i];
    step &= (1ull << 53) - 1;
    char line[256];
    int n = snprintf(line, sizeof line,
                     "{\"phase\":\"%s\",\"step\":%llu,\"global_step\":%llu,\"loss\":%.9g,"
                     "\"val_nll\":null,\"tokens_per_s\":1e300}",
                     log_phase_names[phase], step, step, (double)step * 1e-3);
    log_record rec;
    char why[200];
    FZ_CHECK(log_record_parse(line, (size_t)n, &rec, why, sizeof why) == 0, "%s: %s", line, why);
    FZ_CHECK(rec.phase == phase && rec.v[K_STEP] == (double)step, "%s read back wrong", line);
    FZ_CHECK(isnan(rec.v[K_VAL_NLL]) && isnan(rec.v[K_D_LOSS]), "%s: null or absent not NaN",
             line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        check_line(p, (size_t)(eol - p));
        p = nl ? nl + 1 : end;
    }
    check_round_trip(data, size);
    return 0;
}
