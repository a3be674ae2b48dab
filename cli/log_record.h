/* log_record.h - one line of a `chargan train --log` file (progress.c
 * writes them), read strictly: cmd_plot.c draws the records, and
 * fuzz/fuzz_log_record.c feeds the reader anything. */
#ifndef CHARGAN_CLI_LOG_RECORD_H
#define CHARGAN_CLI_LOG_RECORD_H

#include <stddef.h>

/* The phases progress.c names, in the order a run goes through them. */
enum { PH_MLE, PH_DISCRIMINATOR, PH_ADVERSARIAL, PH_EVAL, N_PHASES };
extern const char *const log_phase_names[N_PHASES];

/* The numeric keys of a record; absent or null reads as NaN. */
enum { K_STEP, K_GLOBAL_STEP, K_LOSS, K_VAL_NLL, K_VAL_BPC, K_D_LOSS, K_D_ACCURACY,
       K_TOKENS_PER_S, K_ELAPSED, N_KEYS };

typedef struct log_record {
    int phase; /* PH_* */
    double v[N_KEYS];
    double x; /* position on the plot's step axis (cmd_plot.c's) */
} log_record;

/* Steps of 2^53 or more are not counts a run reaches (nor all exact
 * doubles: 2^53 + 1 reads as 2^53); laid end to end over phases they would
 * overflow the plot's axis.  A step is below this. */
#define LOG_STEP_LIMIT 9007199254740992.0

/* Parses the len bytes of one line (no newline; NUL bytes are the caller's
 * to refuse) into *rec: a flat JSON object with a known "phase" and a
 * "step" in [0, 2^53), the keys above numbers or null, unknown keys any
 * JSON value.  0, or -1 with why (why_size bytes) saying what is wrong. */
int log_record_parse(const char *line, size_t len, log_record *rec, char *why, size_t why_size);

#endif
