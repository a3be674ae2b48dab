/* log_record.c - a strict reader for the records of a `chargan train --log`
 * file (log_record.h). */
#include "log_record.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const log_phase_names[N_PHASES] = {"mle", "discriminator", "adversarial", "eval"};

static const char *const key_names[N_KEYS] = {"step",     "global_step", "loss",
                                              "val_nll",  "val_bpc",     "d_loss",
                                              "d_accuracy", "tokens_per_s", "elapsed"};

/* ---- a strict reader for one flat JSON object ----------------------- */

typedef struct line_reader {
    const char *p, *end, *start;
    char why[160]; /* what was wrong, when a function returns -1 */
} line_reader;

static void skip_ws(line_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\r'))
        r->p++;
}

static int reader_fail(line_reader *r, const char *what)
{
    snprintf(r->why, sizeof r->why, "column %zu: %s", (size_t)(r->p - r->start) + 1, what);
    return -1;
}

/* A JSON string; its contents (escapes kept as written) go to buf, cut to
 * cap - 1 bytes.  Only the phase names and keys are ever compared, and those
 * have no escapes. */
static int read_string(line_reader *r, char *buf, size_t cap)
{
    if (r->p >= r->end || *r->p != '"')
        return reader_fail(r, "expected a string");
    r->p++;
    size_t n = 0;
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20)
            return reader_fail(r, "control character in a string");
        if (c == '\\') {
            if (r->p + 1 >= r->end)
                break;
            if (n + 1 < cap)
                buf[n++] = *r->p;
            r->p++;
        }
        if (n + 1 < cap)
            buf[n++] = *r->p;
        r->p++;
    }
    if (r->p >= r->end)
        return reader_fail(r, "unterminated string");
    r->p++;
    buf[n] = '\0';
    return 0;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The end of the JSON number at r->p (RFC 8259 grammar, no leading '+' or
 * zeros, no NaN), or NULL after reader_fail. */
static const char *scan_number(line_reader *r)
{
    const char *q = r->p;
    if (q < r->end && *q == '-')
        q++;
    if (q >= r->end || !is_digit(*q))
        return reader_fail(r, "expected a number"), NULL;
    if (*q == '0')
        q++;
    else
        while (q < r->end && is_digit(*q))
            q++;
    if (q < r->end && *q == '.') {
        q++;
        if (q >= r->end || !is_digit(*q))
            return reader_fail(r, "expected a digit after '.'"), NULL;
        while (q < r->end && is_digit(*q))
            q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < r->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= r->end || !is_digit(*q))
            return reader_fail(r, "expected a digit in the exponent"), NULL;
        while (q < r->end && is_digit(*q))
            q++;
    }
    return q;
}

/* A JSON number that a double holds. */
static int read_number(line_reader *r, double *out)
{
    const char *s = r->p, *q = scan_number(r);
    if (!q)
        return -1;
    char tmp[64];
    if ((size_t)(q - s) >= sizeof tmp)
        return reader_fail(r, "number too long");
    memcpy(tmp, s, (size_t)(q - s));
    tmp[q - s] = '\0';
    errno = 0;
    double v = strtod(tmp, NULL);
    if (errno == ERANGE && isinf(v))
        return reader_fail(r, "number out of range");
    r->p = q;
    *out = v;
    return 0;
}

static int match_word(line_reader *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) >= n && memcmp(r->p, word, n) == 0) {
        r->p += n;
        return 1;
    }
    return 0;
}

/* Skips one JSON value of a key that is not ours: a string, number, true,
 * false, null, or an array or object of them, nested at most depth deep. */
static int skip_value(line_reader *r, int depth)
{
    skip_ws(r);
    if (r->p < r->end && *r->p == '"') {
        char ignored[8];
        return read_string(r, ignored, sizeof ignored);
    }
    if (r->p < r->end && (*r->p == '-' || is_digit(*r->p))) { /* any size: not read */
        const char *q = scan_number(r);
        if (!q)
            return -1;
        r->p = q;
        return 0;
    }
    if (match_word(r, "true") || match_word(r, "false") || match_word(r, "null"))
        return 0;
    if (r->p >= r->end || (*r->p != '[' && *r->p != '{'))
        return reader_fail(r, "expected a JSON value");
    if (depth == 0)
        return reader_fail(r, "arrays and objects nested too deep");
    char close = *r->p == '[' ? ']' : '}';
    r->p++;
    skip_ws(r);
    for (int first = 1; !(r->p < r->end && *r->p == close); first = 0) {
        if (!first) {
            if (r->p >= r->end || *r->p != ',')
                return reader_fail(r, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
            r->p++;
            skip_ws(r);
        }
        if (close == '}') {
            char ignored[8];
            if (read_string(r, ignored, sizeof ignored) != 0)
                return -1;
            skip_ws(r);
            if (r->p >= r->end || *r->p != ':')
                return reader_fail(r, "expected ':'");
            r->p++;
        }
        if (skip_value(r, depth - 1) != 0)
            return -1;
        skip_ws(r);
    }
    r->p++;
    return 0;
}

/* Unknown keys are allowed (a newer chargan may log more) whatever their
 * JSON values. */
int log_record_parse(const char *line, size_t len, log_record *rec, char *why, size_t why_size)
{
    line_reader r = {.p = line, .end = line + len, .start = line};
    int seen[N_KEYS] = {0};
    int have_phase = 0;
    rec->phase = -1;
    for (int k = 0; k < N_KEYS; k++)
        rec->v[k] = NAN;

    skip_ws(&r);
    if (r.p >= r.end || *r.p != '{') {
        reader_fail(&r, "expected a JSON object ('{')");
        goto bad;
    }
    r.p++;
    skip_ws(&r);
    int first = 1;
    while (!(r.p < r.end && *r.p == '}')) {
        if (!first) {
            if (r.p >= r.end || *r.p != ',') {
                reader_fail(&r, "expected ',' or '}'");
                goto bad;
            }
            r.p++;
            skip_ws(&r);
        }
        first = 0;
        char key[64];
        if (read_string(&r, key, sizeof key) != 0)
            goto bad;
        skip_ws(&r);
        if (r.p >= r.end || *r.p != ':') {
            reader_fail(&r, "expected ':'");
            goto bad;
        }
        r.p++;
        skip_ws(&r);
        if (strcmp(key, "phase") == 0) {
            if (have_phase) {
                snprintf(r.why, sizeof r.why, "duplicate key \"phase\"");
                goto bad;
            }
            char name[64];
            if (read_string(&r, name, sizeof name) != 0)
                goto bad;
            for (int ph = 0; ph < N_PHASES; ph++)
                if (strcmp(name, log_phase_names[ph]) == 0)
                    rec->phase = ph;
            if (rec->phase < 0) {
                snprintf(r.why, sizeof r.why,
                         "unknown phase \"%.40s\" (expected mle, discriminator, adversarial or eval)",
                         name);
                goto bad;
            }
            have_phase = 1;
        } else {
            int k = 0;
            while (k < N_KEYS && strcmp(key, key_names[k]) != 0)
                k++;
            if (k < N_KEYS && seen[k]) {
                snprintf(r.why, sizeof r.why, "duplicate key \"%s\"", key);
                goto bad;
            }
            if (k < N_KEYS)
                seen[k] = 1;
            if (k == N_KEYS) { /* not ours: any JSON value */
                if (skip_value(&r, 32) != 0)
                    goto bad;
            } else if (match_word(&r, "null")) {
                /* NaN already */
            } else if (r.p < r.end && (*r.p == '-' || is_digit(*r.p))) {
                if (read_number(&r, &rec->v[k]) != 0)
                    goto bad;
            } else {
                snprintf(r.why, sizeof r.why, "column %zu: \"%s\" must be a number or null",
                         (size_t)(r.p - r.start) + 1, key);
                goto bad;
            }
        }
        skip_ws(&r);
    }
    r.p++;
    skip_ws(&r);
    if (r.p != r.end) {
        reader_fail(&r, "text after the object");
        goto bad;
    }
    if (!have_phase) {
        snprintf(r.why, sizeof r.why, "no \"phase\"");
        goto bad;
    }
    if (!(rec->v[K_STEP] >= 0)) {
        snprintf(r.why, sizeof r.why, "no \"step\" (a number of at least 0)");
        goto bad;
    }
    if (rec->v[K_STEP] >= LOG_STEP_LIMIT) {
        snprintf(r.why, sizeof r.why, "\"step\" %g is 2^53 or more", rec->v[K_STEP]);
        goto bad;
    }
    return 0;
bad:
    snprintf(why, why_size, "%s", r.why);
    return -1;
}
