/* cmd_sample.c - `chargan sample MODEL [options]`: text from a generator. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The library's cap on the characters of one call (2^28), checked here so
 * that the message names the option. */
#define MAX_TOTAL_CHARS (1ull << 28)

int cli_cmd_sample(int argc, char **argv)
{
    chargan_sample_options so;
    chargan_sample_options_init(&so);
    const char *prime = NULL;
    uint64_t seed = 0;
    cli_option opts[] = {
        CLI_OPT_U32("chars", 'n', &so.length, 1, MAX_TOTAL_CHARS),
        CLI_OPT_U32("streams", 0, &so.n_streams, 1, 65536),
        CLI_OPT_FLOAT("temperature", &so.temperature, 0, 100, 1, 0),
        CLI_OPT_U32("top-k", 0, &so.top_k, 0, UINT32_MAX),
        CLI_OPT_FLOAT("top-p", &so.top_p, 0, 1, 1, 0),
        CLI_OPT_STR("prime", 0, &prime),
        CLI_OPT_U64("seed", 0, &seed, 0, UINT64_MAX),
        CLI_OPT_U32("threads", 0, &so.threads, 1, 64),
    };
    const char *pos[1];
    size_t n_pos = 0;
    int rc = cli_parse("sample", argc, argv, 2, opts, CLI_N_OPTS(opts), pos, 1, &n_pos);
    if (rc == 1)
        return cli_help_exit("sample");
    if (rc != 0)
        return CLI_EXIT_USAGE;
    if (n_pos < 1) {
        cli_error("sample: missing MODEL (see 'chargan help sample')");
        return CLI_EXIT_USAGE;
    }
    if ((uint64_t)so.length * so.n_streams > MAX_TOTAL_CHARS) {
        cli_error("--streams: %u streams of %u characters is more than %llu characters in all",
                  so.n_streams, so.length, MAX_TOTAL_CHARS);
        return CLI_EXIT_USAGE;
    }
    /* Without --seed every run differs; --seed makes a run repeatable. */
    so.seed = cli_find_option(opts, CLI_N_OPTS(opts), "seed")->seen
                  ? seed
                  : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();

    chargan_model *m = NULL;
    chargan_status st = chargan_model_load(pos[0], CHARGAN_GENERATOR, &m);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot load model '%s'", pos[0]);
        return CLI_EXIT_FAILURE;
    }
    char *text = NULL;
    size_t len = 0;
    st = chargan_model_sample_text_len(m, &so, prime, &text, &len);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot sample from '%s'", pos[0]);
        chargan_model_free(m);
        return CLI_EXIT_FAILURE;
    }
    int exit_code = CLI_EXIT_OK;
    fwrite(text, 1, len, stdout); /* U+0000 is a character like any other */
    fputc('\n', stdout);
    if (cli_flush_stdout() != 0)
        exit_code = CLI_EXIT_FAILURE;
    chargan_free(text);
    chargan_model_free(m);
    return exit_code;
}
