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
#include "log_record.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Reads and validates the whole log; *recs is malloc'ed.  Prints the error. */
static int read_log(const char *path, log_record **recs, size_t *n_recs)
{
    size_t len = 0;
    char *text = cli_read_file(path, "log", &len);
    if (!text)
        return -1;
    log_record *out = NULL;
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
                log_record *grown = realloc(out, ncap * sizeof *out);
                if (!grown) {
                    cli_error("plot: out of memory reading '%s'", path);
                    goto fail;
                }
                out = grown;
                cap = ncap;
            }
            char why[200];
            if (log_record_parse(p, (size_t)(eol - p), &out[n], why, sizeof why) != 0) {
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
static size_t place_records(log_record *recs, size_t n, double *starts, int *start_phase)
{
    size_t n_starts = 0;
    double base = 0, last_x = 0;
    int cur = -1;
    for (size_t i = 0; i < n; i++) {
        log_record *r = &recs[i];
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

static double series_value(const log_record *r, int s)
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

static int write_series(const char *dir, int s, const log_record *recs, size_t n, size_t *count)
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
    const log_record *recs;
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
                log_phase_names[start_phase[i]], starts[i]);
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

    log_record *recs = NULL;
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
