/* fuzz_cli_args.c - the chargan tool's option parser (cli/args.c) on
 * arbitrary command lines: the input split at NUL bytes into arguments,
 * parsed against a table with one option of every type.  cli_error() is
 * replaced by one that formats into a buffer, so nothing is printed and the
 * parser never exits.  Checks the results against the table's ranges, and
 * the strict number parsers against an independent reading. */
#include "fuzz_common.h"

#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char last_error[1024];

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

enum { MAX_ARGS = 64, MAX_POS = 3 };

static const char *const choices[] = {"none", "reinforce", "gumbel", NULL};

/* An argument that is all digits, read by hand (-1 if it is not, or overflows). */
static int digits_value(const char *s, uint64_t *v)
{
    size_t n = strlen(s);
    if (n == 0 || strspn(s, "0123456789") != n)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

static void check_number_parsers(const char *s)
{
    char why[160];
    uint64_t v = 0, ref = 0;
    int rc = cli_parse_u64(s, 0, UINT64_MAX, &v, why, sizeof why);
    int ref_rc = digits_value(s, &ref);
    FZ_CHECK(rc == ref_rc, "cli_parse_u64('%s') = %d, expected %d", s, rc, ref_rc);
    FZ_CHECK(rc != 0 || v == ref, "cli_parse_u64('%s') read %" PRIu64, s, v);
    if (rc == 0) {
        rc = cli_parse_u64(s, 5, 1000, &v, why, sizeof why);
        FZ_CHECK((rc == 0) == (ref >= 5 && ref <= 1000), "range of cli_parse_u64('%s')", s);
    }
    double d = 0;
    rc = cli_parse_double(s, -1.0, 1.0, 1, 0, &d, why, sizeof why);
    if (rc == 0)
        FZ_CHECK(isfinite(d) && d > -1.0 && d <= 1.0, "cli_parse_double('%s') = %g", s, d);
    else
        FZ_CHECK(memchr(why, '\0', sizeof why) != NULL && why[0] != '\0', "no reason given");
}

static int points_into(const char *p, char **argv, int argc)
{
    for (int i = 0; i < argc; i++)
        if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One allocation of exactly size + 1 bytes: arguments are the
     * NUL-separated pieces (the last one NUL-terminated by us). */
    char *buf = malloc(size + 1);
    FZ_CHECK(buf != NULL, "out of memory");
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = "train";
    for (size_t at = 0; at <= size && argc < MAX_ARGS;) {
        argv[argc++] = buf + at;
        at += strlen(buf + at) + 1;
    }
    argv[argc] = NULL;

    int quiet = 0, choice = -1;
    uint32_t hidden = 7;
    uint64_t steps = 7;
    float lr = 0.5f, clip = 0.5f;
    double temperature = 0.5;
    const char *output = NULL;
    cli_option opts[] = {
        CLI_OPT_FLAG("quiet", 'q', &quiet),
        CLI_OPT_U32("hidden", 'H', &hidden, 1, 16384),
        CLI_OPT_U64("steps", 'n', &steps, 0, UINT64_MAX),
        CLI_OPT_FLOAT("lr", &lr, 0.0, 10.0, 1, 0),
        CLI_OPT_FLOAT_OR_OFF("clip", &clip, 1e6),
        CLI_OPT_DOUBLE("temperature", &temperature, 0.0, 100.0, 1, 1),
        CLI_OPT_STR("output", 'o', &output),
        CLI_OPT_CHOICE("estimator", &choice, choices),
    };
    const char *pos[MAX_POS];
    size_t n_pos = 99;
    last_error[0] = '\0';
    int rc = cli_parse("train", argc, argv, 1, opts, CLI_N_OPTS(opts), pos, MAX_POS, &n_pos);
    FZ_CHECK(rc == -1 || rc == 0 || rc == 1, "cli_parse returned %d", rc);
    FZ_CHECK(n_pos <= MAX_POS, "%zu positional arguments, room for %d", n_pos, MAX_POS);
    FZ_CHECK((rc == -1) == (last_error[0] != '\0'), "an error %s a message",
             rc == -1 ? "without" : "with");
    for (size_t i = 0; i < n_pos; i++)
        FZ_CHECK(points_into(pos[i], argv, argc), "positional %zu points outside argv", i);
    /* Whatever was stored is in range, even when a later argument failed. */
    FZ_CHECK(quiet == 0 || quiet == 1, "quiet = %d", quiet);
    FZ_CHECK(hidden >= 1 && hidden <= 16384, "hidden = %u", hidden);
    FZ_CHECK(lr > 0.0f && lr <= 10.0f, "lr = %g", (double)lr);
    FZ_CHECK(clip >= 0.0f && clip <= 1e6f, "clip = %g", (double)clip);
    FZ_CHECK(temperature > 0.0 && temperature < 100.0, "temperature = %g", temperature);
    FZ_CHECK(choice >= -1 && choice <= 2, "choice = %d", choice);
    FZ_CHECK(output == NULL || points_into(output, argv, argc), "output points outside argv");
    for (size_t k = 0; k < CLI_N_OPTS(opts); k++)
        FZ_CHECK(cli_find_option(opts, CLI_N_OPTS(opts), opts[k].name) == &opts[k],
                 "cli_find_option('%s')", opts[k].name);

    for (int i = 1; i < argc; i++)
        check_number_parsers(argv[i]);
    free(buf);
    return 0;
}
