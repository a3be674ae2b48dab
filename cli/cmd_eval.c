/* cmd_eval.c - `chargan eval MODEL TEXTFILE`: the generator's NLL on a text.
 *
 * The text is encoded with the model's own tokenizer and cut into windows of
 * --seq characters (the last one shorter); each window is predicted from the
 * start id with a zero state, as chargan_model_nll() defines.  The figure is
 * the mean over all characters, so it does not depend on how many windows go
 * to one library call. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_WINDOW 256
/* Windows per chargan_model_nll() call: bounds the library's workspace. */
#define ROWS_PER_CALL 64

static chargan_status text_nll(chargan_model *m, const int32_t *ids, size_t n, size_t window,
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

int cli_cmd_eval(int argc, char **argv)
{
    uint32_t window = DEFAULT_WINDOW;
    cli_option opts[] = {
        CLI_OPT_U32("seq", 0, &window, 1, 1000000),
    };
    const char *pos[2];
    size_t n_pos = 0;
    int rc = cli_parse("eval", argc, argv, 2, opts, CLI_N_OPTS(opts), pos, 2, &n_pos);
    if (rc == 1) {
        cli_help(stdout, "eval");
        return CLI_EXIT_OK;
    }
    if (rc != 0)
        return CLI_EXIT_USAGE;
    if (n_pos < 2) {
        cli_error("eval: missing %s (see 'chargan help eval')", n_pos ? "TEXTFILE" : "MODEL");
        return CLI_EXIT_USAGE;
    }
    const char *model_path = pos[0], *text_path = pos[1];

    int exit_code = CLI_EXIT_FAILURE;
    chargan_model *m = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n_ids = 0;

    chargan_status st = chargan_model_load(model_path, CHARGAN_GENERATOR, &m);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot load model '%s'", model_path);
        goto out;
    }
    chargan_tokenizer *tok = chargan_model_tokenizer(m);
    if (!tok) {
        cli_error("model '%s' has no tokenizer, so it cannot read text", model_path);
        goto out;
    }
    text = cli_read_file(text_path, "text", &len);
    if (!text)
        goto out;
    /* At most one id per byte, so len ids always suffice. */
    ids = malloc((len ? len : 1) * sizeof *ids);
    if (!ids) {
        cli_error("cannot read text '%s': out of memory", text_path);
        goto out;
    }
    st = chargan_tokenizer_encode(tok, text, len, ids, len, &n_ids);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "text '%s'", text_path);
        goto out;
    }
    if (n_ids == 0) {
        cli_error("text '%s' is empty", text_path);
        goto out;
    }
    size_t unknown = 0;
    for (size_t i = 0; i < n_ids; i++)
        unknown += ids[i] == CHARGAN_ID_UNKNOWN;

    double nll = 0;
    st = text_nll(m, ids, n_ids, window, &nll);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot evaluate '%s' on '%s'", model_path, text_path);
        goto out;
    }
    printf("model: %s\n", model_path);
    printf("text: %s\n", text_path);
    printf("chars: %zu\n", n_ids);
    printf("unknown: %zu\n", unknown);
    printf("window: %u\n", window);
    printf("nll: %.6f nats/char\n", nll);
    printf("bpc: %.6f bits/char\n", nll / log(2.0));
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
