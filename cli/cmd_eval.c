/* cmd_eval.c - `chargan eval MODEL [TEXTFILE] [options]`: the metrics.
 *
 * NLL-test: the text is encoded with the model's own tokenizer and cut into
 * windows of --seq characters (the last one shorter); each window is
 * predicted from the start id with a zero state, as chargan_model_nll()
 * defines.  The figure is the mean over all characters, so it does not
 * depend on how many windows go to one library call.  --stream N instead
 * reads the text as N contiguous streams with the state carried along
 * (chargan_model_stream_nll()).
 *
 * The sample-based metrics (NLL-oracle, BLEU, self-BLEU) draw --samples
 * sequences of --length tokens with a fixed seed, so they are repeatable. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_WINDOW 256
/* Windows per chargan_model_nll() call: bounds the library's workspace. */
#define ROWS_PER_CALL 64

typedef struct eval_args {
    uint32_t window, streams, samples, length, max_n, d_batches;
    float temperature;
    uint64_t seed;
    const char *oracle;
    int bleu, discriminator;
} eval_args;

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

static void sample_options(const eval_args *a, chargan_sample_options *so)
{
    chargan_sample_options_init(so);
    so->n_streams = a->samples;
    so->length = a->length;
    so->temperature = a->temperature;
    so->seed = a->seed;
}

/* Splits text in place into its lines that hold something besides blanks
 * (a trailing CR is dropped).  *lines is malloc'ed; NULL and 0 if none. */
static int split_lines(char *text, const char ***lines, size_t *n)
{
    size_t cap = 0, count = 0;
    const char **v = NULL;
    char *p = text;
    while (*p) {
        char *end = strchr(p, '\n');
        char *next = end ? end + 1 : p + strlen(p);
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

/* BLEU of the model's samples against the text's lines, and self-BLEU.
 * A sample's hypothesis is its first line: lines are the sentences of a
 * line-based corpus, which are the references. */
static int eval_bleu(const eval_args *a, chargan_model *m, char *text, const char *text_path,
                     eval_results *res)
{
    int rc = -1;
    const char **refs = NULL, **hyps = NULL;
    size_t n_refs = 0, n_hyps = 0;
    int32_t *ids = NULL;
    char **decoded = NULL;
    chargan_tokenizer *tok = chargan_model_tokenizer(m);
    size_t total = (size_t)a->samples * a->length;

    if (split_lines(text, &refs, &n_refs) != 0) {
        cli_error("--bleu: out of memory");
        goto out;
    }
    if (n_refs == 0) {
        cli_error("--bleu: text '%s' has no line to use as a reference", text_path);
        goto out;
    }
    ids = malloc(total * sizeof *ids);
    decoded = calloc(a->samples, sizeof *decoded);
    hyps = malloc(a->samples * sizeof *hyps);
    if (!ids || !decoded || !hyps) {
        cli_error("--bleu: out of memory for %u samples", a->samples);
        goto out;
    }
    chargan_sample_options so;
    sample_options(a, &so);
    chargan_status st = chargan_model_sample_ids(m, &so, NULL, 0, ids, total);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "--bleu: cannot sample");
        goto out;
    }
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
    if ((st = chargan_bleu(hyps, n_hyps, refs, n_refs, a->max_n, res->bleu)) != CHARGAN_OK ||
        (st = chargan_self_bleu(hyps, n_hyps, a->max_n, res->self_bleu)) != CHARGAN_OK) {
        cli_lib_error(st, "--bleu");
        goto out;
    }
    res->n_hyps = n_hyps;
    res->n_refs = n_refs;
    rc = 0;
out:
    if (decoded)
        for (uint32_t i = 0; i < a->samples; i++)
            free(decoded[i]);
    free(decoded);
    free(hyps);
    free(ids);
    free(refs);
    return rc;
}

static int eval_oracle(const eval_args *a, chargan_model *m, eval_results *res)
{
    chargan_model *oracle = NULL;
    chargan_status st = chargan_model_load(a->oracle, CHARGAN_GENERATOR, &oracle);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot load oracle '%s'", a->oracle);
        return -1;
    }
    chargan_sample_options so;
    sample_options(a, &so);
    st = chargan_nll_oracle(m, oracle, &so, &res->nll_oracle);
    chargan_model_free(oracle);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "--oracle '%s'", a->oracle);
        return -1;
    }
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
    };
    const size_t n_opts = CLI_N_OPTS(opts);
    const char *pos[2];
    size_t n_pos = 0;
    int rc = cli_parse("eval", argc, argv, 2, opts, n_opts, pos, 2, &n_pos);
    if (rc == 1) {
        cli_help(stdout, "eval");
        return CLI_EXIT_OK;
    }
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
    const char *model_path = pos[0], *text_path = n_pos > 1 ? pos[1] : NULL;

    int exit_code = CLI_EXIT_FAILURE;
    chargan_model *m = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0;
    eval_results res;
    memset(&res, 0, sizeof res);

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
        if (a.streams)
            st = chargan_model_stream_nll(m, ids, res.chars, a.streams, &res.nll);
        else
            st = window_nll(m, ids, res.chars, a.window, &res.nll);
        if (st != CHARGAN_OK) {
            cli_lib_error(st, "cannot evaluate '%s' on '%s'", model_path, text_path);
            goto out;
        }
        free(ids);
        ids = NULL;
    }
    if (a.oracle && eval_oracle(&a, m, &res) != 0)
        goto out;
    /* The discriminator reads the text before BLEU cuts it into lines. */
    if (a.discriminator && eval_discriminator(&a, model_path, text, len, &res) != 0)
        goto out;
    if (a.bleu && eval_bleu(&a, m, text, text_path, &res) != 0)
        goto out;

    printf("model: %s\n", model_path);
    if (text_path) {
        printf("text: %s\n", text_path);
        printf("chars: %zu\n", res.chars);
        printf("unknown: %zu\n", res.unknown);
        if (a.streams)
            printf("streams: %u\n", a.streams);
        else
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
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write to standard output");
        goto out;
    }
    exit_code = CLI_EXIT_OK;
out:
    free(ids);
    free(text);
    chargan_model_free(m);
    return exit_code;
}
