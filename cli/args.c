/* args.c - option parsing with strict numbers: every bad value is rejected
 * with the option named, never silently read as 0 the way atoi() would. */
#include "cli.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int cli_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out, char *why,
                  size_t why_size)
{
    /* strtoull() would accept leading blanks, '+', and wrap "-1" to 2^64-1. */
    if (!is_digit(s[0]))
        goto bad;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        goto bad;
    if (errno == ERANGE || v < lo || v > hi)
        goto bad;
    *out = (uint64_t)v;
    return 0;
bad:
    if (hi == UINT64_MAX)
        snprintf(why, why_size, "expected an integer of at least %" PRIu64, lo);
    else
        snprintf(why, why_size, "expected an integer from %" PRIu64 " to %" PRIu64, lo, hi);
    return -1;
}

int cli_parse_double(const char *s, double lo, double hi, int lo_open, int hi_open, double *out,
                     char *why, size_t why_size)
{
    /* strtod() would accept leading blanks, "nan", "inf" and hex floats. */
    int tiny = 0; /* "1e-320": above 0, but not as a double */
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (!is_digit(*p) && !(*p == '.' && is_digit(p[1])))
        goto bad;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        goto bad;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (*end != '\0' || !isfinite(v))
        goto bad;
    if (errno == ERANGE) { /* out of a double's range, or (below 1e-308) of its precision */
        tiny = fabs(v) < 1.0;
        int zero_in_range = lo < 0.0 || (lo == 0.0 && !lo_open);
        if (!tiny || !zero_in_range)
            goto bad;
    }
    if (v < lo || v > hi || (lo_open && v == lo) || (hi_open && v == hi))
        goto bad;
    *out = v;
    return 0;
bad:
    snprintf(why, why_size, "expected a number %s %g and %s %g%s", lo_open ? "above" : "from", lo,
             hi_open ? "below" : "up to", hi, tiny ? " (this one is too close to 0 to hold)" : "");
    return -1;
}

/* 0 if v, rounded to float, is still inside o's range (and, where 0 means
 * off, 0 only if v is); else -1 with a reason. */
static int float_in_range(double v, const cli_option *o, char *why, size_t why_size)
{
    double f = (double)(float)v;
    /* a number too small for a float, where 0 is off or out of range */
    bool lost = f == 0.0 && v != 0.0 && (o->zero_is_off || (o->lo_open && o->flo == 0.0));
    if (isfinite(f) && f >= o->flo && f <= o->fhi && !(o->lo_open && f == o->flo) &&
        !(o->hi_open && f == o->fhi) && !lost)
        return 0;
    if (lost) {
        snprintf(why, why_size, "rounds to 0 in single precision (the least number above 0 is "
                 "%g)", (double)FLT_TRUE_MIN);
        return -1;
    }
    snprintf(why, why_size, "expected a number %s %g and %s %g (%.9g in single precision)",
             o->lo_open ? "above" : "from", o->flo, o->hi_open ? "below" : "up to", o->fhi, f);
    return -1;
}

static int set_value(const char *command, cli_option *o, const char *spelled, const char *value)
{
    char why[160];
    switch (o->type) {
    case CLI_ARG_FLAG:
        *(int *)o->dest = 1;
        return 0;
    case CLI_ARG_U32:
    case CLI_ARG_U64: {
        uint64_t v;
        uint64_t hi = o->ihi;
        if (o->type == CLI_ARG_U32 && hi > UINT32_MAX)
            hi = UINT32_MAX;
        if (cli_parse_u64(value, o->ilo, hi, &v, why, sizeof why) != 0)
            goto bad;
        if (o->type == CLI_ARG_U32)
            *(uint32_t *)o->dest = (uint32_t)v;
        else
            *(uint64_t *)o->dest = v;
        return 0;
    }
    case CLI_ARG_FLOAT:
    case CLI_ARG_DOUBLE: {
        double v;
        if (cli_parse_double(value, o->flo, o->fhi, o->lo_open, o->hi_open, &v, why,
                             sizeof why) != 0)
            goto bad;
        /* The range must hold for the float stored, not only for the double
         * read: "--lr 1e-50" is above 0 but rounds to 0.0f (found by
         * fuzz/fuzz_cli_args.c). */
        if (o->type == CLI_ARG_FLOAT && float_in_range(v, o, why, sizeof why) != 0)
            goto bad;
        if (o->type == CLI_ARG_FLOAT)
            *(float *)o->dest = (float)v;
        else
            *(double *)o->dest = v;
        return 0;
    }
    case CLI_ARG_STRING:
        *(const char **)o->dest = value;
        return 0;
    case CLI_ARG_CHOICE:
        for (int i = 0; o->choices[i]; i++) {
            if (strcmp(o->choices[i], value) == 0) {
                *(int *)o->dest = i;
                return 0;
            }
        }
        {
            size_t n = 0;
            n += (size_t)snprintf(why + n, sizeof why - n, "expected one of");
            for (int i = 0; o->choices[i] && n < sizeof why; i++)
                n += (size_t)snprintf(why + n, sizeof why - n, "%s %s", i ? "," : "",
                                      o->choices[i]);
        }
        goto bad;
    }
    return 0;
bad:
    (void)command;
    cli_error("%s: %s, got '%s'", spelled, why, value);
    return -1;
}

const cli_option *cli_find_option(const cli_option *opts, size_t n_opts, const char *name)
{
    for (size_t i = 0; i < n_opts; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

int cli_parse(const char *command, int argc, char **argv, int first, cli_option *opts,
              size_t n_opts, const char **pos, size_t max_pos, size_t *n_pos)
{
    *n_pos = 0;
    int only_positional = 0;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            if (*n_pos >= max_pos) {
                cli_error("%s: unexpected argument '%s' (see 'chargan help %s')", command, arg,
                          command);
                return -1;
            }
            pos[(*n_pos)++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return 1;

        cli_option *o = NULL;
        const char *inline_value = NULL;
        char spelled[64];
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (size_t k = 0; k < n_opts; k++) {
                if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0) {
                    o = &opts[k];
                    break;
                }
            }
            if (o && eq)
                inline_value = eq + 1;
            snprintf(spelled, sizeof spelled, "--%.*s", (int)(len < 48 ? len : 48), name);
        } else {
            for (size_t k = 0; k < n_opts; k++) {
                if (opts[k].short_name && opts[k].short_name == arg[1]) {
                    o = &opts[k];
                    break;
                }
            }
            if (o && arg[2] != '\0')
                inline_value = arg + 2;
            snprintf(spelled, sizeof spelled, "-%c", arg[1]);
        }
        if (!o || (o->type == CLI_ARG_FLAG && inline_value && arg[1] != '-')) {
            cli_error("%s: unknown option '%s' (see 'chargan help %s')", command, arg, command);
            return -1;
        }
        if (o->type == CLI_ARG_FLAG) {
            if (inline_value) {
                cli_error("%s: takes no value, got '%s'", spelled, inline_value);
                return -1;
            }
            *(int *)o->dest = 1;
            o->seen = 1;
            continue;
        }
        const char *value = inline_value;
        if (!value) {
            if (i + 1 >= argc) {
                cli_error("%s: missing value (see 'chargan help %s')", spelled, command);
                return -1;
            }
            value = argv[++i];
        }
        if (set_value(command, o, spelled, value) != 0)
            return -1;
        o->seen = 1;
    }
    return 0;
}
