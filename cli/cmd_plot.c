/* cmd_plot.c - `chargan plot LOG.jsonl -o curves.png`: the training curves of
 * a `chargan train --log` file, drawn by gnuplot.
 *
 * The flow: read the log -> validate every line (one flat JSON object with the
 * keys progress.c writes) -> lay the phases end to end on one step axis ->
 * write one data file per series and a gnuplot script to a temporary
 * directory -> run gnuplot (gnuplot.c), whose image replaces the output only
 * once complete.  Four panels: losses, bits per character, discriminator
 * accuracy, throughput. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The phases progress.c names, in the order a run goes through them. */
enum { PH_MLE, PH_DISCRIMINATOR, PH_ADVERSARIAL, PH_EVAL, N_PHASES };
static const char *const phase_names[N_PHASES] = {"mle", "discriminator", "adversarial", "eval"};

/* The numeric keys of a record; absent or null reads as NaN. */
enum { K_STEP, K_GLOBAL_STEP, K_LOSS, K_VAL_NLL, K_VAL_BPC, K_D_LOSS, K_D_ACCURACY,
       K_TOKENS_PER_S, K_ELAPSED, N_KEYS };
static const char *const key_names[N_KEYS] = {"step",     "global_step", "loss",
                                              "val_nll",  "val_bpc",     "d_loss",
                                              "d_accuracy", "tokens_per_s", "elapsed"};

typedef struct record {
    int phase;
    double v[N_KEYS];
    double x; /* position on the plot's step axis */
} record;

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

/* Steps beyond 2^53 are not counts a run reaches (nor exact doubles); laid
 * end to end over phases they would overflow the plot's axis. */
#define MAX_STEP 9007199254740992.0

/* Parses one line into *rec.  Unknown keys are allowed (a newer chargan may
 * log more) whatever their JSON values. */
static int parse_record(const char *line, size_t len, record *rec, char *why, size_t why_size)
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
                if (strcmp(name, phase_names[ph]) == 0)
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
    if (rec->v[K_STEP] > MAX_STEP) {
        snprintf(r.why, sizeof r.why, "\"step\" %g is beyond 2^53", rec->v[K_STEP]);
        goto bad;
    }
    return 0;
bad:
    snprintf(why, why_size, "%s", r.why);
    return -1;
}

/* Reads and validates the whole log; *recs is malloc'ed.  Prints the error. */
static int read_log(const char *path, record **recs, size_t *n_recs)
{
    size_t len = 0;
    char *text = cli_read_file(path, "log", &len);
    if (!text)
        return -1;
    record *out = NULL;
    size_t n = 0, cap = 0;
    size_t line_no = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        line_no++;
        const char *q = p;
        while (q < eol && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < eol) {
            if (memchr(p, '\0', (size_t)(eol - p))) {
                cli_error("plot: %s:%zu: a NUL byte: not a JSON log", path, line_no);
                goto fail;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 256;
                record *grown = realloc(out, ncap * sizeof *out);
                if (!grown) {
                    cli_error("plot: out of memory reading '%s'", path);
                    goto fail;
                }
                out = grown;
                cap = ncap;
            }
            char why[200];
            if (parse_record(p, (size_t)(eol - p), &out[n], why, sizeof why) != 0) {
                cli_error("plot: %s:%zu: %s", path, line_no, why);
                goto fail;
            }
            n++;
        }
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (n == 0) {
        cli_error("plot: %s: no records (write one with 'chargan train --log')", path);
        free(out);
        return -1;
    }
    *recs = out;
    *n_recs = n;
    return 0;
fail:
    free(text);
    free(out);
    return -1;
}

/* ---- the plot ------------------------------------------------------- */

/* Lays the phases end to end: a record's x is its phase step plus the x where
 * its run of records began (each phase counts its steps from 0, and a resumed
 * run's steps are totals, so they continue).  The final evaluation sits at
 * the end.  Returns the number of phase boundaries written to starts[]. */
static size_t place_records(record *recs, size_t n, double *starts, int *start_phase)
{
    size_t n_starts = 0;
    double base = 0, last_x = 0;
    int cur = -1;
    for (size_t i = 0; i < n; i++) {
        record *r = &recs[i];
        if (r->phase == PH_EVAL) {
            r->x = last_x;
            continue;
        }
        if (r->phase != cur) {
            /* The new run of records begins where the previous one ended;
             * its first record is report_every steps in, or fewer. */
            base = last_x;
            cur = r->phase;
            if (n_starts < 64) {
                starts[n_starts] = base;
                start_phase[n_starts] = cur;
                n_starts++;
            }
        }
        r->x = base + r->v[K_STEP];
        last_x = r->x;
    }
    return n_starts;
}

/* A series is one data file of (x, y) pairs. */
enum { S_LOSS_MLE, S_LOSS_G, S_LOSS_D, S_BPC_TRAIN, S_BPC_VAL, S_D_ACC, S_RATE, N_SERIES };
static const char *const series_files[N_SERIES] = {"loss-mle.dat", "loss-g.dat", "loss-d.dat",
                                                   "bpc-train.dat", "bpc-val.dat", "d-acc.dat",
                                                   "rate.dat"};

static double series_value(const record *r, int s)
{
    switch (s) {
    case S_LOSS_MLE: return r->phase == PH_MLE ? r->v[K_LOSS] : NAN;
    case S_LOSS_G: return r->phase == PH_ADVERSARIAL ? r->v[K_LOSS] : NAN;
    case S_LOSS_D: return r->v[K_D_LOSS];
    case S_BPC_TRAIN: return r->phase == PH_MLE ? r->v[K_LOSS] / log(2.0) : NAN;
    case S_BPC_VAL: return r->v[K_VAL_BPC];
    case S_D_ACC: return r->v[K_D_ACCURACY];
    default: return r->v[K_TOKENS_PER_S];
    }
}

static int write_series(const char *dir, int s, const record *recs, size_t n, size_t *count)
{
    char path[CLI_PATH_MAX];
    if (cli_gnuplot_path(path, "plot", dir, series_files[s]) != 0)
        return -1;
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_error("plot: cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        double y = series_value(&recs[i], s);
        if (isfinite(y) && isfinite(recs[i].x)) {
            fprintf(f, "%.9g\t%.9g\n", recs[i].x, y);
            c++;
        }
    }
    if (fclose(f) != 0) {
        cli_error("plot: cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    *count = c;
    return 0;
}

typedef struct panel {
    const char *title, *ylabel;
    int series[3];
    const char *names[3];
    int n;
    int accuracy; /* y from 0 to 1 with a line at 0.5 */
} panel;

/* What write_script() draws: the records, placed on the step axis. */
typedef struct plot_job {
    const record *recs;
    size_t n;
    const char *title;
    uint32_t width, height;
    const double *starts;
    const int *start_phase;
    size_t n_starts;
    double x_max;
} plot_job;

/* A cli_gnuplot_writer: the series' data files, then the four panels. */
static int write_script(FILE *f, const char *dir, const char *output, void *user)
{
    const plot_job *job = user;
    static const panel panels[4] = {
        {"losses", "nats", {S_LOSS_MLE, S_LOSS_G, S_LOSS_D},
         {"generator, MLE", "generator, adversarial", "discriminator"}, 3, 0},
        {"bits per character", "bits/char", {S_BPC_TRAIN, S_BPC_VAL},
         {"training (MLE)", "validation"}, 2, 0},
        {"discriminator accuracy", "accuracy", {S_D_ACC}, {"real vs generated"}, 1, 1},
        {"throughput", "characters/s", {S_RATE}, {"training"}, 1, 0},
    };
    size_t counts[N_SERIES];
    for (int s = 0; s < N_SERIES; s++)
        if (write_series(dir, s, job->recs, job->n, &counts[s]) != 0)
            return -1;
    const uint32_t width = job->width, height = job->height;
    const double *starts = job->starts;
    const int *start_phase = job->start_phase;
    fprintf(f, "# written by chargan plot\n"
               "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "    set terminal pngcairo size %u,%u noenhanced font ',10'\n"
               "} else {\n"
               "    set terminal png size %u,%u noenhanced\n"
               "}\n",
            width, height, width, height);
    fputs("set output ", f);
    cli_gnuplot_quote(f, output);
    fputs("\nset multiplot layout 2,2 title ", f);
    cli_gnuplot_quote(f, job->title);
    fputs("\nset grid\nset key top right box opaque\nset xlabel 'step (phases end to end)'\n", f);
    for (size_t i = 0; i < job->n_starts; i++) {
        if (i > 0)
            fprintf(f, "set arrow from first %.9g, graph 0 to first %.9g, graph 1 nohead dt 2 "
                       "lc rgb 'gray50'\n",
                    starts[i], starts[i]);
        fprintf(f, "set label '%s' at first %.9g, graph 0.03 offset 1,0 left rotate by 90 "
                   "textcolor rgb 'gray40'\n",
                phase_names[start_phase[i]], starts[i]);
    }
    /* One step axis for all panels, so that the phases line up. */
    if (job->x_max > 0)
        fprintf(f, "set xrange [0:%.9g]\n", job->x_max);
    for (int p = 0; p < 4; p++) {
        const panel *pn = &panels[p];
        fprintf(f, "set title '%s'\nset ylabel '%s'\n", pn->title, pn->ylabel);
        /* Head room above the curves for the key. */
        if (pn->accuracy)
            fputs("set offsets 0, 0, 0, 0\nset yrange [0:1.3]\nset ytics 0, 0.2, 1\n", f);
        else
            fputs("set offsets 0, 0, graph 0.3, 0\nset yrange [*:*]\nset ytics autofreq\n", f);
        int any = 0;
        for (int s = 0; s < pn->n; s++)
            any |= counts[pn->series[s]] > 0;
        if (!any) {
            /* Nothing to draw (e.g. no discriminator in an MLE run): an
             * empty frame that says so. */
            fputs("set label 99 'no data' at graph 0.5, graph 0.5 center\n"
                  "set yrange [0:1]\nplot 2 notitle\nunset label 99\n",
                  f);
            continue;
        }
        fputs("plot ", f);
        int first = 1;
        for (int s = 0; s < pn->n; s++) {
            int id = pn->series[s];
            if (counts[id] == 0)
                continue;
            if (!first)
                fputs(", ", f);
            first = 0;
            char data[CLI_PATH_MAX];
            if (cli_gnuplot_path(data, "plot", dir, series_files[id]) != 0)
                return -1;
            cli_gnuplot_quote(f, data);
            /* A single point would not show as a line. */
            fprintf(f, " using 1:2 with %s lw 1.5 title '%s'",
                    counts[id] == 1 ? "points pt 7" : "linespoints pt 7 ps 0.4", pn->names[s]);
        }
        if (pn->accuracy)
            fputs(", 0.5 with lines dt 2 lc rgb 'gray50' title 'chance'", f);
        fputc('\n', f);
    }
    fputs("unset multiplot\nset output\n", f);
    return 0;
}

int cli_cmd_plot(int argc, char **argv)
{
    const char *output = NULL, *title = NULL;
    uint32_t width = 1200, height = 900;
    cli_option opts[] = {
        CLI_OPT_STR("output", 'o', &output),
        CLI_OPT_STR("title", 0, &title),
        CLI_OPT_U32("width", 0, &width, 200, 10000),
        CLI_OPT_U32("height", 0, &height, 200, 10000),
    };
    const char *pos[1];
    size_t n_pos = 0;
    int rc = cli_parse("plot", argc, argv, 2, opts, CLI_N_OPTS(opts), pos, 1, &n_pos);
    if (rc == 1)
        return cli_help_exit("plot");
    if (rc != 0)
        return CLI_EXIT_USAGE;
    if (n_pos < 1) {
        cli_error("plot: missing LOG (see 'chargan help plot')");
        return CLI_EXIT_USAGE;
    }
    if (!output) {
        cli_error("plot: missing -o/--output PNG (see 'chargan help plot')");
        return CLI_EXIT_USAGE;
    }
    if (!title)
        title = pos[0];
    if (strchr(output, '\n') || strchr(title, '\n')) {
        cli_error("plot: the output name and the title cannot contain a newline");
        return CLI_EXIT_USAGE;
    }
    if (cli_same_file(output, pos[0])) {
        cli_error("plot: -o '%s' is the log it would draw", output);
        return CLI_EXIT_USAGE;
    }

    record *recs = NULL;
    size_t n = 0;
    if (read_log(pos[0], &recs, &n) != 0)
        return CLI_EXIT_FAILURE;

    double starts[64];
    int start_phase[64];
    size_t n_starts = place_records(recs, n, starts, start_phase);
    double x_max = 0;
    for (size_t i = 0; i < n; i++)
        if (recs[i].x > x_max)
            x_max = recs[i].x;
    plot_job job = {.recs = recs, .n = n, .title = title, .width = width, .height = height,
                    .starts = starts, .start_phase = start_phase, .n_starts = n_starts,
                    .x_max = x_max};
    int exit_code = CLI_EXIT_FAILURE;
    if (cli_gnuplot_draw("plot", output, write_script, &job) != 0)
        goto done;
    printf("plot: %s\nrecords: %zu\n", output, n);
    if (cli_flush_stdout() != 0)
        goto done;
    exit_code = CLI_EXIT_OK;
done:
    free(recs);
    return exit_code;
}
