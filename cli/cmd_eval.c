/* cmd_eval.c - `chargan eval MODEL [TEXTFILE] [options]`: the metrics.
 *
 * NLL-test: the text is encoded with the model's own tokenizer and cut into
 * windows of --seq characters (the last one shorter); each window is
 * predicted from the start id with a zero noise vector's state, as
 * chargan_model_nll() defines.  The figure is the mean over all characters,
 * so it does not depend on how many windows go to one library call.  --stream N instead
 * reads the text as N contiguous streams with the state carried along
 * (chargan_model_stream_nll()): N equal parts of chars - 1 predictions, so
 * the last (chars - 1) % N characters are not predicted ("predicted:").
 *
 * The sample-based metrics (NLL-oracle, BLEU, self-BLEU) draw --samples
 * sequences of --length tokens with a fixed seed, so they are repeatable.
 *
 * --sweep T1,T2,... repeats the evaluation at each temperature (the
 * quality-diversity protocol of Caccia et al., "Language GANs Falling
 * Short", 2020): samples are drawn at T, and the text's NLL is that of the
 * temperature-scaled model, softmax(logits / T), got by scaling the output
 * layer's weights and bias by 1/T.  One CSV row per temperature, and on
 * request a gnuplot image of quality against diversity. */
#include "cli.h"

#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_WINDOW 256
/* Windows per chargan_model_nll() call: bounds the library's workspace. */
#define ROWS_PER_CALL 64
/* Temperatures one --sweep may hold. */
#define MAX_SWEEP 32

typedef struct eval_args {
    uint32_t window, streams, samples, length, max_n, d_batches;
    float temperature;
    uint64_t seed;
    const char *oracle, *sweep, *csv, *plot;
    int bleu, discriminator;
} eval_args;

/* What every temperature is measured on, prepared once. */
typedef struct eval_inputs {
    const char *model_path, *text_path;
    chargan_model *m, *oracle;
    const int32_t *ids; /* the encoded text, or NULL */
    size_t n_ids;
    const char **refs; /* the text's lines, for --bleu */
    size_t n_refs;
    /* The output layer as loaded, and room for a scaled copy: only filled
     * when a temperature other than 1 scales the NLL. */
    size_t out_w, out_b, n_w, n_b;
    float *w0, *b0, *w, *b;
} eval_inputs;

/* Everything is measured before anything is printed, so that a failure
 * leaves one error line and no partial report. */
typedef struct eval_results {
    size_t chars, unknown;
    double nll, nll_oracle, d_accuracy;
    size_t n_hyps, n_refs;
    double bleu[8], self_bleu[8];
} eval_results;

static chargan_status window_nll(chargan_model *m, const int32_t *ids, size_t n, size_t window,
                                 double *mean)
{
    double total = 0;
    size_t rows = n / window, done = 0;
    while (done < rows) {
        size_t r = rows - done < ROWS_PER_CALL ? rows - done : ROWS_PER_CALL;
        double nll = 0;
        chargan_status st = chargan_model_nll(m, ids + done * window, r, window, &nll);
        if (st != CHARGAN_OK)
            return st;
        total += nll * (double)(r * window);
        done += r;
    }
    size_t rest = n - rows * window;
    if (rest > 0) {
        double nll = 0;
        chargan_status st = chargan_model_nll(m, ids + rows * window, 1, rest, &nll);
        if (st != CHARGAN_OK)
            return st;
        total += nll * (double)rest;
    }
    *mean = total / (double)n;
    return CHARGAN_OK;
}

static void sample_options(const eval_args *a, float temperature, chargan_sample_options *so)
{
    chargan_sample_options_init(so);
    so->n_streams = a->samples;
    so->length = a->length;
    so->temperature = temperature;
    so->seed = a->seed;
}

/* Splits the text_len bytes of text (NUL-terminated) in place into its
 * lines that hold something besides blanks (a trailing CR is dropped).  A
 * NUL byte is a character like any other but ends a line's words for BLEU,
 * which reads C strings; the lines after it are kept.  *lines is malloc'ed;
 * NULL and 0 if none. */
static int split_lines(char *text, size_t text_len, const char ***lines, size_t *n)
{
    size_t cap = 0, count = 0;
    const char **v = NULL;
    char *p = text, *text_end = text + text_len;
    while (p < text_end) {
        char *end = memchr(p, '\n', (size_t)(text_end - p));
        char *next = end ? end + 1 : text_end;
        if (end)
            *end = '\0';
        size_t len = strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            p[--len] = '\0';
        if (strspn(p, " \t\r\f\v") < len) {
            if (count == cap) {
                size_t ncap = cap ? cap * 2 : 1024;
                const char **grown = realloc(v, ncap * sizeof *grown);
                if (!grown) {
                    free(v);
                    return -1;
                }
                v = grown;
                cap = ncap;
            }
            v[count++] = p;
        }
        p = next;
    }
    *lines = v;
    *n = count;
    return 0;
}

/* BLEU of the model's samples drawn at temperature against the text's
 * lines, and self-BLEU.  A sample's hypothesis is its first line: lines are
 * the sentences of a line-based corpus, which are the references. */
static int eval_bleu(const eval_args *a, const eval_inputs *in, float temperature,
                     eval_results *res)
{
    int rc = -1;
    const char **hyps = NULL;
    size_t n_hyps = 0;
    int32_t *ids = NULL;
    char **decoded = NULL;
    chargan_tokenizer *tok = chargan_model_tokenizer(in->m);
    size_t total = (size_t)a->samples * a->length;

    ids = malloc(total * sizeof *ids);
    decoded = calloc(a->samples, sizeof *decoded);
    hyps = malloc(a->samples * sizeof *hyps);
    if (!ids || !decoded || !hyps) {
        cli_error("--bleu: out of memory for %u samples", a->samples);
        goto out;
    }
    chargan_sample_options so;
    sample_options(a, temperature, &so);
    chargan_status st = chargan_model_sample_ids(in->m, &so, NULL, 0, ids, total);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "--bleu: cannot sample");
        goto out;
    }
    /* A model made through the library may have more ids than its
     * tokenizer: those it cannot decode count as the unknown character. */
    uint32_t n_tok = 0;
    if ((st = chargan_tokenizer_vocab_size(tok, &n_tok)) != CHARGAN_OK) {
        cli_lib_error(st, "--bleu: cannot read the tokenizer");
        goto out;
    }
    for (size_t k = 0; k < total; k++)
        ids[k] = (uint32_t)ids[k] < n_tok ? ids[k] : CHARGAN_ID_UNKNOWN;
    for (uint32_t i = 0; i < a->samples; i++) {
        size_t len = 0;
        const int32_t *row = ids + (size_t)i * a->length;
        st = chargan_tokenizer_decode(tok, row, a->length, NULL, 0, &len);
        if (st == CHARGAN_OK && !(decoded[i] = malloc(len + 1)))
            st = CHARGAN_E_NOMEM;
        if (st == CHARGAN_OK)
            st = chargan_tokenizer_decode(tok, row, a->length, decoded[i], len + 1, &len);
        if (st != CHARGAN_OK) {
            cli_lib_error(st, "--bleu: cannot decode sample %u", i);
            goto out;
        }
        char *p = decoded[i] + strspn(decoded[i], " \t\r\n\f\v");
        p[strcspn(p, "\n")] = '\0';
        if (*p)
            hyps[n_hyps++] = p;
    }
    if (n_hyps < 2) {
        cli_error("--bleu: only %zu of %u samples hold a line of text (try a larger --length)",
                  n_hyps, a->samples);
        goto out;
    }
    if ((st = chargan_bleu(hyps, n_hyps, in->refs, in->n_refs, a->max_n, res->bleu)) !=
            CHARGAN_OK ||
        (st = chargan_self_bleu(hyps, n_hyps, a->max_n, res->self_bleu)) != CHARGAN_OK) {
        cli_lib_error(st, "--bleu");
        goto out;
    }
    res->n_hyps = n_hyps;
    res->n_refs = in->n_refs;
    rc = 0;
out:
    if (decoded)
        for (uint32_t i = 0; i < a->samples; i++)
            free(decoded[i]);
    free(decoded);
    free(hyps);
    free(ids);
    return rc;
}

/* Whether the loaded output layer divided by temperature stays finite;
 * reports it if not.  run_sweep asks for every temperature before the
 * first is evaluated. */
static int check_output_temperature(const eval_inputs *in, float temperature)
{
    bool finite = true;
    for (size_t i = 0; i < in->n_w; i++)
        finite = isfinite(in->w0[i] / temperature) && finite;
    for (size_t i = 0; i < in->n_b; i++)
        finite = isfinite(in->b0[i] / temperature) && finite;
    if (finite)
        return 0;
    cli_error("temperature %g: the output layer divided by it leaves the float range "
              "(at so low a temperature the model is greedy: take a larger one)",
              (double)temperature);
    return -1;
}

/* Sets the output layer to the loaded one scaled by 1/temperature, so that
 * the model's distribution is softmax(logits / temperature); 1 restores it.
 * run_sweep has checked the temperature (check_output_temperature). */
static int set_output_temperature(eval_inputs *in, float temperature)
{
    const float *w = in->w0, *b = in->b0;
    if (temperature != 1.0f) {
        for (size_t i = 0; i < in->n_w; i++)
            in->w[i] = in->w0[i] / temperature;
        for (size_t i = 0; i < in->n_b; i++)
            in->b[i] = in->b0[i] / temperature;
        w = in->w;
        b = in->b;
    }
    chargan_status st = chargan_model_param_set(in->m, in->out_w, w, in->n_w);
    if (st == CHARGAN_OK)
        st = chargan_model_param_set(in->m, in->out_b, b, in->n_b);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "--sweep: cannot scale the output layer by 1/%g", (double)temperature);
        return -1;
    }
    return 0;
}

/* The mean NLL of the text, in nats per character, under the model at
 * temperature (1: the model as loaded). */
static int eval_text(const eval_args *a, eval_inputs *in, float temperature, double *nll)
{
    if (temperature != 1.0f && set_output_temperature(in, temperature) != 0)
        return -1;
    chargan_status st;
    if (a->streams)
        st = chargan_model_stream_nll(in->m, in->ids, in->n_ids, a->streams, nll);
    else
        st = window_nll(in->m, in->ids, in->n_ids, a->window, nll);
    if (st != CHARGAN_OK)
        cli_lib_error(st, "cannot evaluate '%s' on '%s'", in->model_path, in->text_path);
    if (temperature != 1.0f && set_output_temperature(in, 1.0f) != 0)
        return -1;
    return st == CHARGAN_OK ? 0 : -1;
}

/* The evaluation at one temperature: samples are drawn at
 * sample_temperature, the text is scored at nll_temperature. */
static int eval_at(const eval_args *a, eval_inputs *in, float sample_temperature,
                   float nll_temperature, eval_results *res)
{
    if (in->ids && eval_text(a, in, nll_temperature, &res->nll) != 0)
        return -1;
    if (in->oracle) {
        chargan_sample_options so;
        sample_options(a, sample_temperature, &so);
        chargan_status st = chargan_nll_oracle(in->m, in->oracle, &so, &res->nll_oracle);
        if (st != CHARGAN_OK) {
            cli_lib_error(st, "--oracle '%s'", a->oracle);
            return -1;
        }
    }
    if (a->bleu && eval_bleu(a, in, sample_temperature, res) != 0)
        return -1;
    return 0;
}

/* The discriminator's accuracy on held-out windows of the text against as
 * many generated ones; the file must be a trainer checkpoint. */
static int eval_discriminator(const eval_args *a, const char *model_path, const char *text,
                              size_t len, eval_results *res)
{
    chargan_trainer *tr = NULL;
    chargan_status st = chargan_trainer_load(model_path, &tr);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "--discriminator: cannot load the trainer checkpoint '%s'",
                      model_path);
        return -1;
    }
    st = chargan_trainer_set_corpus_text(tr, text, len);
    if (st == CHARGAN_OK)
        st = chargan_trainer_eval_discriminator(tr, a->d_batches, &res->d_accuracy);
    chargan_trainer_free(tr);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "--discriminator");
        return -1;
    }
    return 0;
}

/* ---- --sweep ------------------------------------------------------- */

/* The CSV's metric columns, each present when its metric was asked for. */
enum { COL_NLL_ORACLE, COL_NLL_TEST, COL_BLEU, COL_SELF_BLEU, N_COLS };

typedef struct sweep {
    size_t n;
    double t[MAX_SWEEP]; /* as given */
    float tf[MAX_SWEEP]; /* as used */
    eval_results res[MAX_SWEEP];
    int has[N_COLS];
    uint32_t max_n;
} sweep;

/* Parses "0.5,0.7,1" into sw->t and sw->tf; prints the error. */
static int parse_sweep(const char *list, sweep *sw)
{
    sw->n = 0;
    if (!*list) {
        cli_error("--sweep: expected a comma-separated list of temperatures, such as 0.5,1,1.5");
        return -1;
    }
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (sw->n == MAX_SWEEP) {
            cli_error("--sweep: more than %d temperatures", MAX_SWEEP);
            return -1;
        }
        if (len == 0) {
            cli_error("--sweep: temperature %zu of '%s' is empty", sw->n + 1, list);
            return -1;
        }
        char item[64], why[160];
        double v = 0;
        if (len >= sizeof item) {
            cli_error("--sweep: temperature %zu of '%s' is too long", sw->n + 1, list);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        /* Positive also once rounded to the float the library takes. */
        if (cli_parse_double(item, 0, 100, 1, 0, &v, why, sizeof why) != 0 || !((float)v > 0)) {
            if ((float)v == 0 && v > 0)
                snprintf(why, sizeof why, "rounds to 0 in single precision");
            cli_error("--sweep: '%s': %s", item, why);
            return -1;
        }
        sw->t[sw->n] = v;
        sw->tf[sw->n] = (float)v;
        sw->n++;
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

static double sweep_value(const sweep *sw, size_t i, int col)
{
    const eval_results *r = &sw->res[i];
    switch (col) {
    case COL_NLL_ORACLE:
        return r->nll_oracle;
    case COL_NLL_TEST:
        return r->nll / log(2.0);
    case COL_BLEU:
        return r->bleu[sw->max_n - 2];
    default:
        return r->self_bleu[sw->max_n - 2];
    }
}

static void column_name(const sweep *sw, int col, char *buf, size_t cap)
{
    switch (col) {
    case COL_NLL_ORACLE:
        snprintf(buf, cap, "nll_oracle");
        break;
    case COL_NLL_TEST:
        snprintf(buf, cap, "nll_test_bpc");
        break;
    case COL_BLEU:
        snprintf(buf, cap, "bleu%u", sw->max_n);
        break;
    default:
        snprintf(buf, cap, "self_bleu%u", sw->max_n);
        break;
    }
}

/* Header "temperature,<metrics>", then one row per temperature. */
static void write_csv(FILE *f, const sweep *sw)
{
    char name[32];
    fputs("temperature", f);
    for (int c = 0; c < N_COLS; c++) {
        if (!sw->has[c])
            continue;
        column_name(sw, c, name, sizeof name);
        fprintf(f, ",%s", name);
    }
    fputc('\n', f);
    for (size_t i = 0; i < sw->n; i++) {
        fprintf(f, "%.9g", sw->t[i]); /* as given: %g would merge 0.1234567 and 0.1234568 */
        for (int c = 0; c < N_COLS; c++)
            if (sw->has[c])
                fprintf(f, ",%.6f", sweep_value(sw, i, c));
        fputc('\n', f);
    }
}

/* The axis title of a column (-1: the temperature). */
static void axis_label(const sweep *sw, int col, char *buf, size_t cap)
{
    switch (col) {
    case COL_NLL_ORACLE:
        snprintf(buf, cap, "quality: NLL-oracle, nats/token (lower is better)");
        break;
    case COL_NLL_TEST:
        snprintf(buf, cap, "diversity: NLL-test, bits/char (lower is better)");
        break;
    case COL_BLEU:
        snprintf(buf, cap, "quality: BLEU-%u (higher is better)", sw->max_n);
        break;
    case COL_SELF_BLEU:
        snprintf(buf, cap, "diversity: self-BLEU-%u (lower is better)", sw->max_n);
        break;
    default:
        snprintf(buf, cap, "temperature");
        break;
    }
}

#define SWEEP_DATA "sweep.dat"

/* A cli_gnuplot_writer: quality against diversity, one labelled point per
 * temperature; a metric without its partner is drawn against the
 * temperature. */
static int write_sweep_script(FILE *f, const char *dir, const char *image, void *user)
{
    const sweep *sw = user;
    int panels[2][2], n_panels = 0; /* {x, y} columns, -1 the temperature */
    if (sw->has[COL_NLL_ORACLE] && sw->has[COL_NLL_TEST]) {
        panels[n_panels][0] = COL_NLL_ORACLE;
        panels[n_panels++][1] = COL_NLL_TEST;
    } else if (sw->has[COL_NLL_ORACLE] || sw->has[COL_NLL_TEST]) {
        panels[n_panels][0] = -1;
        panels[n_panels++][1] = sw->has[COL_NLL_ORACLE] ? COL_NLL_ORACLE : COL_NLL_TEST;
    }
    if (sw->has[COL_BLEU]) {
        panels[n_panels][0] = COL_BLEU;
        panels[n_panels++][1] = COL_SELF_BLEU;
    }

    char data[CLI_PATH_MAX];
    if (cli_gnuplot_path(data, "--plot", dir, SWEEP_DATA) != 0)
        return -1;
    FILE *d = fopen(data, "w");
    if (!d) {
        cli_error("--plot: cannot write '%s': %s", data, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < sw->n; i++) {
        fprintf(d, "%.9g", sw->t[i]);
        for (int c = 0; c < N_COLS; c++)
            fprintf(d, "\t%.9g", sw->has[c] ? sweep_value(sw, i, c) : 0.0);
        fputc('\n', d);
    }
    int derr = ferror(d);
    if (fclose(d) != 0 || derr) {
        cli_error("--plot: cannot write '%s'", data);
        return -1;
    }

    unsigned width = 640u * (unsigned)n_panels, height = 560;
    fprintf(f,
            "# written by chargan eval --sweep\n"
            "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
            "    set terminal pngcairo size %u,%u noenhanced font ',10'\n"
            "} else {\n"
            "    set terminal png size %u,%u noenhanced\n"
            "}\n",
            width, height, width, height);
    fputs("set output ", f);
    cli_gnuplot_quote(f, image);
    fputs("\nset multiplot layout 1,", f);
    fprintf(f, "%d title 'quality and diversity by sampling temperature'\n", n_panels);
    fputs("set grid\nset offsets graph 0.1, graph 0.2, graph 0.1, graph 0.1\n", f);
    for (int p = 0; p < n_panels; p++) {
        char label[128];
        int x = panels[p][0] < 0 ? 1 : panels[p][0] + 2, y = panels[p][1] + 2;
        axis_label(sw, panels[p][0], label, sizeof label);
        fputs("set xlabel ", f);
        cli_gnuplot_quote(f, label);
        axis_label(sw, panels[p][1], label, sizeof label);
        fputs("\nset ylabel ", f);
        cli_gnuplot_quote(f, label);
        fputs("\nplot ", f);
        cli_gnuplot_quote(f, data);
        fprintf(f,
                " using %d:%d with linespoints pt 7 lw 1.5 notitle, '' using %d:%d:"
                "(sprintf('T=%%.9g', $1)) with labels offset char 1,0.6 left notitle\n",
                x, y, x, y);
    }
    fputs("unset multiplot\nset output\n", f);
    return 0;
}

/* Copies the output layer out, for set_output_temperature(). */
static int keep_output_layer(eval_inputs *in)
{
    chargan_status st = chargan_model_param_find(in->m, "out.w", &in->out_w);
    if (st == CHARGAN_OK)
        st = chargan_model_param_find(in->m, "out.b", &in->out_b);
    if (st == CHARGAN_OK)
        st = chargan_model_param_info(in->m, in->out_w, NULL, NULL, NULL, &in->n_w);
    if (st == CHARGAN_OK)
        st = chargan_model_param_info(in->m, in->out_b, NULL, NULL, NULL, &in->n_b);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "--sweep: model '%s'", in->model_path);
        return -1;
    }
    in->w0 = malloc(in->n_w * sizeof *in->w0);
    in->w = malloc(in->n_w * sizeof *in->w);
    in->b0 = malloc(in->n_b * sizeof *in->b0);
    in->b = malloc(in->n_b * sizeof *in->b);
    if (!in->w0 || !in->w || !in->b0 || !in->b) {
        cli_error("--sweep: out of memory");
        return -1;
    }
    st = chargan_model_param_get(in->m, in->out_w, in->w0, in->n_w);
    if (st == CHARGAN_OK)
        st = chargan_model_param_get(in->m, in->out_b, in->b0, in->n_b);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "--sweep: model '%s'", in->model_path);
        return -1;
    }
    return 0;
}

/* Evaluates every temperature, then writes the CSV, then draws the plot:
 * a failed evaluation writes nothing, a failed plot keeps the CSV. */
static int run_sweep(const eval_args *a, eval_inputs *in, sweep *sw)
{
    if (in->ids && keep_output_layer(in) != 0)
        return -1;
    for (size_t i = 0; in->ids && i < sw->n; i++) /* before any work is done */
        if (check_output_temperature(in, sw->tf[i]) != 0)
            return -1;
    for (size_t i = 0; i < sw->n; i++) {
        sw->res[i] = sw->res[0]; /* chars and unknown */
        if (eval_at(a, in, sw->tf[i], sw->tf[i], &sw->res[i]) != 0)
            return -1;
    }
    int to_stdout = strcmp(a->csv, "-") == 0;
    if (to_stdout) {
        write_csv(stdout, sw);
        if (cli_flush_stdout() != 0)
            return -1;
    } else {
        cli_text_output csv;
        if (cli_text_output_open(&csv, a->csv, "CSV") != 0)
            return -1;
        write_csv(csv.f, sw);
        if (cli_text_output_commit(&csv, "CSV") != 0)
            return -1;
    }
    if (a->plot && cli_gnuplot_draw("--plot", a->plot, write_sweep_script, sw) != 0)
        return -1;
    if (!to_stdout) {
        printf("model: %s\n", in->model_path);
        printf("temperatures: %zu\n", sw->n);
        printf("csv: %s\n", a->csv);
        if (a->plot)
            printf("plot: %s\n", a->plot);
        if (cli_flush_stdout() != 0)
            return -1;
    }
    return 0;
}

/* Whether output (NULL: none) names one of the n inputs (NULL ones skipped),
 * which writing it would destroy; says so. */
static int names_an_input(const char *option, const char *output, const char *const *inputs,
                          size_t n)
{
    for (size_t i = 0; output && i < n; i++) {
        if (inputs[i] && cli_same_file(output, inputs[i])) {
            cli_error("--%s: '%s' is an input of this command", option, output);
            return 1;
        }
    }
    return 0;
}

int cli_cmd_eval(int argc, char **argv)
{
    eval_args a;
    memset(&a, 0, sizeof a);
    a.window = DEFAULT_WINDOW;
    a.samples = 1000;
    a.length = 100;
    a.temperature = 1.0f;
    a.seed = 1;
    a.max_n = 5;
    a.d_batches = 16;
    cli_option opts[] = {
        CLI_OPT_U32("seq", 0, &a.window, 1, 1000000),
        CLI_OPT_U32("stream", 0, &a.streams, 1, 65536),
        CLI_OPT_STR("oracle", 0, &a.oracle),
        CLI_OPT_FLAG("bleu", 0, &a.bleu),
        CLI_OPT_FLAG("discriminator", 0, &a.discriminator),
        CLI_OPT_U32("samples", 0, &a.samples, 2, 1000000),
        CLI_OPT_U32("length", 0, &a.length, 1, 100000),
        CLI_OPT_FLOAT("temperature", &a.temperature, 0, 100, 1, 0),
        CLI_OPT_U64("seed", 0, &a.seed, 0, UINT64_MAX),
        CLI_OPT_U32("max-n", 0, &a.max_n, 2, 8),
        CLI_OPT_U32("d-batches", 0, &a.d_batches, 1, 100000),
        CLI_OPT_STR("sweep", 0, &a.sweep),
        CLI_OPT_STR("csv", 0, &a.csv),
        CLI_OPT_STR("plot", 0, &a.plot),
    };
    const size_t n_opts = CLI_N_OPTS(opts);
    const char *pos[2];
    size_t n_pos = 0;
    int rc = cli_parse("eval", argc, argv, 2, opts, n_opts, pos, 2, &n_pos);
    if (rc == 1)
        return cli_help_exit("eval");
    if (rc != 0)
        return CLI_EXIT_USAGE;
    if (n_pos < 1) {
        cli_error("eval: missing MODEL (see 'chargan help eval')");
        return CLI_EXIT_USAGE;
    }
    if (n_pos < 2 && (!a.oracle || a.bleu || a.discriminator)) {
        cli_error("eval: missing TEXTFILE (see 'chargan help eval')");
        return CLI_EXIT_USAGE;
    }
    if (cli_find_option(opts, n_opts, "seq")->seen && a.streams) {
        cli_error("--stream: give --seq or --stream, not both");
        return CLI_EXIT_USAGE;
    }
    if ((uint64_t)a.samples * a.length > (1ull << 28)) {
        cli_error("--samples: %u samples of %u tokens is more than %llu in all", a.samples,
                  a.length, 1ull << 28);
        return CLI_EXIT_USAGE;
    }
    if (!a.oracle && !a.bleu) {
        static const char *const sample_opts[] = {"samples", "length", "temperature", "seed",
                                                  NULL};
        for (size_t i = 0; sample_opts[i]; i++) {
            if (cli_find_option(opts, n_opts, sample_opts[i])->seen) {
                cli_error("--%s: needs --oracle or --bleu", sample_opts[i]);
                return CLI_EXIT_USAGE;
            }
        }
    }
    if (!a.bleu && cli_find_option(opts, n_opts, "max-n")->seen) {
        cli_error("--max-n: needs --bleu");
        return CLI_EXIT_USAGE;
    }
    if (!a.discriminator && cli_find_option(opts, n_opts, "d-batches")->seen) {
        cli_error("--d-batches: needs --discriminator");
        return CLI_EXIT_USAGE;
    }
    sweep sw;
    memset(&sw, 0, sizeof sw);
    if (!a.sweep && (a.csv || a.plot)) {
        cli_error("--%s: needs --sweep", a.csv ? "csv" : "plot");
        return CLI_EXIT_USAGE;
    }
    if (a.sweep) {
        if (parse_sweep(a.sweep, &sw) != 0)
            return CLI_EXIT_USAGE;
        if (cli_find_option(opts, n_opts, "temperature")->seen) {
            cli_error("--temperature: give --temperature or --sweep, not both");
            return CLI_EXIT_USAGE;
        }
        if (a.discriminator) {
            cli_error("--discriminator: does not depend on the temperature, so not with --sweep");
            return CLI_EXIT_USAGE;
        }
        if (a.plot && strchr(a.plot, '\n')) {
            cli_error("--plot: the output name cannot contain a newline");
            return CLI_EXIT_USAGE;
        }
        if (!a.csv)
            a.csv = "-";
        /* BLEU-4 and self-BLEU-4 unless --max-n says otherwise. */
        if (!cli_find_option(opts, n_opts, "max-n")->seen)
            a.max_n = 4;
        sw.max_n = a.max_n;
    }
    const char *model_path = pos[0], *text_path = n_pos > 1 ? pos[1] : NULL;
    /* Outputs are checked before the sweep's work, and never replace an input. */
    if (a.plot && cli_check_output(a.plot, "image", CLI_OUTPUT_RENAMED) != 0)
        return CLI_EXIT_FAILURE;
    const char *csv_file = a.csv && strcmp(a.csv, "-") != 0 ? a.csv : NULL;
    const char *inputs[] = {model_path, text_path, a.oracle};
    if (names_an_input("plot", a.plot, inputs, 3) || names_an_input("csv", csv_file, inputs, 3))
        return CLI_EXIT_USAGE;
    if (csv_file && a.plot && cli_same_file(csv_file, a.plot)) {
        cli_error("--csv and --plot: both name '%s'", a.plot);
        return CLI_EXIT_USAGE;
    }
    if (csv_file && cli_check_output(csv_file, "CSV", CLI_OUTPUT_TEXT) != 0)
        return CLI_EXIT_FAILURE;

    int exit_code = CLI_EXIT_FAILURE;
    chargan_model *m = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0;
    eval_results res;
    memset(&res, 0, sizeof res);
    eval_inputs in;
    memset(&in, 0, sizeof in);
    in.model_path = model_path;
    in.text_path = text_path;

    chargan_status st = chargan_model_load(model_path, CHARGAN_GENERATOR, &m);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot load model '%s'", model_path);
        goto out;
    }
    chargan_tokenizer *tok = chargan_model_tokenizer(m);
    if (!tok && text_path) {
        cli_error("model '%s' has no tokenizer, so it cannot read text", model_path);
        goto out;
    }
    if (text_path) {
        text = cli_read_file(text_path, "text", &len);
        if (!text)
            goto out;
        /* At most one id per byte, so len ids always suffice. */
        ids = malloc((len ? len : 1) * sizeof *ids);
        if (!ids) {
            cli_error("cannot read text '%s': out of memory", text_path);
            goto out;
        }
        st = chargan_tokenizer_encode(tok, text, len, ids, len, &res.chars);
        if (st != CHARGAN_OK) {
            cli_lib_error(st, "text '%s'", text_path);
            goto out;
        }
        if (res.chars == 0) {
            cli_error("text '%s' is empty", text_path);
            goto out;
        }
        for (size_t i = 0; i < res.chars; i++)
            res.unknown += ids[i] == CHARGAN_ID_UNKNOWN;
        in.ids = ids;
        in.n_ids = res.chars;
    }
    in.m = m;
    if (a.oracle) {
        st = chargan_model_load(a.oracle, CHARGAN_GENERATOR, &in.oracle);
        if (st != CHARGAN_OK) {
            cli_lib_error(st, "cannot load oracle '%s'", a.oracle);
            goto out;
        }
    }
    /* The discriminator reads the text before it is cut into lines. */
    if (a.discriminator && eval_discriminator(&a, model_path, text, len, &res) != 0)
        goto out;
    if (a.bleu) {
        if (split_lines(text, len, &in.refs, &in.n_refs) != 0) {
            cli_error("--bleu: out of memory");
            goto out;
        }
        if (in.n_refs == 0) {
            cli_error("--bleu: text '%s' has no line to use as a reference", text_path);
            goto out;
        }
    }
    if (a.sweep) {
        sw.has[COL_NLL_ORACLE] = a.oracle != NULL;
        sw.has[COL_NLL_TEST] = text_path != NULL;
        sw.has[COL_BLEU] = sw.has[COL_SELF_BLEU] = a.bleu;
        sw.res[0] = res;
        if (run_sweep(&a, &in, &sw) == 0)
            exit_code = CLI_EXIT_OK;
        goto out;
    }
    /* The text's NLL is that of the model as it is, whatever --temperature. */
    if (eval_at(&a, &in, a.temperature, 1.0f, &res) != 0)
        goto out;

    printf("model: %s\n", model_path);
    if (text_path) {
        printf("text: %s\n", text_path);
        printf("chars: %zu\n", res.chars);
        printf("unknown: %zu\n", res.unknown);
        if (a.streams) {
            /* the streams' equal parts leave out the rest of the division */
            printf("streams: %u\n", a.streams);
            printf("predicted: %zu\n", (res.chars - 1) / a.streams * a.streams);
        } else
            printf("window: %u\n", a.window);
        printf("nll: %.6f nats/char\n", res.nll);
        printf("bpc: %.6f bits/char\n", res.nll / log(2.0));
    }
    if (a.oracle || a.bleu) {
        printf("samples: %u\n", a.samples);
        printf("length: %u\n", a.length);
        printf("temperature: %g\n", (double)a.temperature);
        printf("seed: %llu\n", (unsigned long long)a.seed);
    }
    if (a.oracle) {
        printf("oracle: %s\n", a.oracle);
        printf("nll_oracle: %.6f nats/token\n", res.nll_oracle);
    }
    if (a.discriminator)
        printf("d_accuracy: %.6f\n", res.d_accuracy);
    if (a.bleu) {
        printf("bleu_hypotheses: %zu\n", res.n_hyps);
        printf("bleu_references: %zu\n", res.n_refs);
        for (uint32_t k = 2; k <= a.max_n; k++)
            printf("bleu%u: %.6f\n", k, res.bleu[k - 2]);
        for (uint32_t k = 2; k <= a.max_n; k++)
            printf("self_bleu%u: %.6f\n", k, res.self_bleu[k - 2]);
    }
    if (cli_flush_stdout() != 0)
        goto out;
    exit_code = CLI_EXIT_OK;
out:
    free(in.refs);
    free(in.w0);
    free(in.w);
    free(in.b0);
    free(in.b);
    chargan_model_free(in.oracle);
    free(ids);
    free(text);
    chargan_model_free(m);
    return exit_code;
}
