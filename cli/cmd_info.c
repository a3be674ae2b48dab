/* cmd_info.c - `chargan info MODEL`: what a model file holds. */
#include "cli.h"

#include <math.h>
#include <string.h>

/* Writes one character of the vocabulary as it would appear in a C string,
 * so that control characters and quotes stay visible.  Escapes are octal:
 * three digits end one, where \x would take the hex digits after it
 * ("\x01bc" is one character), and C allows no \u below U+00A0, so the C1
 * controls are their UTF-8 bytes. */
static void put_char(FILE *f, uint32_t cp)
{
    switch (cp) {
    case '\n': fputs("\\n", f); return;
    case '\r': fputs("\\r", f); return;
    case '\t': fputs("\\t", f); return;
    case '"': fputs("\\\"", f); return;
    case '\\': fputs("\\\\", f); return;
    }
    if (cp < 0x20 || cp == 0x7f) {
        fprintf(f, "\\%03o", (unsigned)cp);
    } else if (cp < 0x80) {
        fputc((int)cp, f);
    } else if (cp < 0xa0) {
        fprintf(f, "\\%03o\\%03o", 0xc0 | (unsigned)(cp >> 6), 0x80 | (unsigned)(cp & 0x3f));
    } else if ((cp >= 0xd800 && cp < 0xe000) || cp > 0x10ffff) { /* not in a vocabulary */
        fprintf(f, "\\u%04x", (unsigned)cp);
    } else if (cp < 0x800) {
        fputc((int)(0xc0 | (cp >> 6)), f);
        fputc((int)(0x80 | (cp & 0x3f)), f);
    } else if (cp < 0x10000) {
        fputc((int)(0xe0 | (cp >> 12)), f);
        fputc((int)(0x80 | ((cp >> 6) & 0x3f)), f);
        fputc((int)(0x80 | (cp & 0x3f)), f);
    } else {
        fputc((int)(0xf0 | (cp >> 18)), f);
        fputc((int)(0x80 | ((cp >> 12) & 0x3f)), f);
        fputc((int)(0x80 | ((cp >> 6) & 0x3f)), f);
        fputc((int)(0x80 | (cp & 0x3f)), f);
    }
}

static int print_tokenizer(chargan_tokenizer *tok)
{
    uint32_t vocab = 0;
    chargan_status st = chargan_tokenizer_vocab_size(tok, &vocab);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot read the tokenizer");
        return -1;
    }
    printf("tokenizer:\n  vocab_size: %u\n  characters: \"", vocab);
    for (uint32_t id = CHARGAN_NUM_RESERVED_IDS; id < vocab; id++) {
        uint32_t cp = 0;
        st = chargan_tokenizer_id_info(tok, (int32_t)id, &cp, NULL);
        if (st != CHARGAN_OK) {
            printf("\"\n");
            cli_lib_error(st, "cannot read the tokenizer's id %u", id);
            return -1;
        }
        put_char(stdout, cp);
    }
    printf("\"\n");
    return 0;
}

static int print_model(const char *title, chargan_model *m)
{
    chargan_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.struct_size = sizeof cfg;
    chargan_status st = chargan_model_get_config(m, &cfg);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot read the %s's configuration", title);
        return -1;
    }
    printf("%s:\n", title);
    printf("  vocab_size: %u\n", cfg.vocab_size);
    printf("  embed_dim: %u\n", cfg.embed_dim);
    printf("  hidden_dim: %u\n", cfg.hidden_dim);
    printf("  num_layers: %u\n", cfg.num_layers);
    if (cfg.kind == CHARGAN_GENERATOR) {
        printf("  noise_dim: %u\n", cfg.noise_dim);
        printf("  start_id: %d\n", cfg.start_id);
    }
    printf("  forget_bias: %g\n", cfg.forget_bias);
    printf("  recurrent_dropout: %g\n", cfg.recurrent_dropout);
    printf("  init_scale: %g\n", cfg.init_scale);
    printf("  seed: %llu\n", (unsigned long long)cfg.seed);

    size_t count = 0, total = 0;
    if ((st = chargan_model_num_params(m, &count)) != CHARGAN_OK ||
        (st = chargan_model_num_weights(m, &total)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot list the %s's parameters", title);
        return -1;
    }
    printf("  parameters:\n");
    for (size_t i = 0; i < count; i++) {
        const char *name = NULL;
        uint32_t rank = 0;
        size_t shape[2] = {1, 1}, numel = 0;
        if ((st = chargan_model_param_info(m, i, &name, &rank, shape, &numel)) != CHARGAN_OK) {
            cli_lib_error(st, "cannot read the %s's parameter %zu", title, i);
            return -1;
        }
        char dims[64];
        if (rank == 2)
            snprintf(dims, sizeof dims, "%zu x %zu", shape[0], shape[1]);
        else
            snprintf(dims, sizeof dims, "%zu", shape[0]);
        printf("    %-16s %-14s %zu\n", name ? name : "?", dims, numel);
    }
    printf("  total_weights: %zu\n", total);
    return 0;
}

static const char *estimator_name(int32_t e)
{
    switch (e) {
    case CHARGAN_GAN_NONE: return "none";
    case CHARGAN_GAN_REINFORCE: return "reinforce";
    case CHARGAN_GAN_GUMBEL: return "gumbel";
    }
    return "unknown";
}

static const char *optimizer_name(int32_t k)
{
    switch (k) {
    case CHARGAN_ADAM: return "adam";
    case CHARGAN_SGD: return "sgd";
    case CHARGAN_RMSPROP: return "rmsprop";
    }
    return "unknown";
}

static int print_optimizer(const char *title, chargan_optimizer *o)
{
    if (!o)
        return 0;
    chargan_optimizer_config oc;
    memset(&oc, 0, sizeof oc);
    oc.struct_size = sizeof oc;
    uint64_t steps = 0;
    chargan_status st = chargan_optimizer_get_config(o, &oc);
    if (st == CHARGAN_OK)
        st = chargan_optimizer_steps(o, &steps);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot read the %s", title);
        return -1;
    }
    printf("  %s: %s lr %g clip %g weight_decay %g steps %llu\n", title, optimizer_name(oc.kind),
           oc.lr, oc.clip_norm, oc.weight_decay, (unsigned long long)steps);
    return 0;
}

/* The training state, if the file is a trainer checkpoint.  A plain model
 * file (chargan_model_save) has none, which is not an error. */
static int print_trainer(const char *path)
{
    chargan_trainer *tr = NULL;
    chargan_status st = chargan_trainer_load(path, &tr);
    if (st == CHARGAN_E_NOT_FOUND) { /* a model-only file */
        printf("trainer: none\n");
        return 0;
    }
    if (st != CHARGAN_OK) { /* a trainer section, but one that does not load */
        cli_lib_error(st, "cannot load the trainer state of '%s'", path);
        return -1;
    }
    chargan_trainer_config tc;
    memset(&tc, 0, sizeof tc);
    tc.struct_size = sizeof tc;
    uint64_t step = 0;
    st = chargan_trainer_get_config(tr, &tc);
    if (st == CHARGAN_OK)
        st = chargan_trainer_global_step(tr, &step);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot read the trainer state of '%s'", path);
        chargan_trainer_free(tr);
        return -1;
    }
    printf("trainer:\n");
    printf("  global_step: %llu\n", (unsigned long long)step);
    printf("  batch: %u\n", tc.batch);
    printf("  seq_len: %u\n", tc.seq_len);
    printf("  val_fraction: %g\n", tc.val_fraction);
    printf("  seed: %llu\n", (unsigned long long)tc.seed);
    printf("  threads: %u\n", tc.threads);
    printf("  estimator: %s\n", estimator_name(tc.estimator));
    if (tc.estimator != CHARGAN_GAN_NONE) {
        printf("  d_steps: %u\n", tc.d_steps);
        printf("  mle_weight: %g\n", tc.mle_weight);
        if (tc.estimator == CHARGAN_GAN_REINFORCE) {
            printf("  gamma: %g\n", tc.gamma);
            printf("  rollouts: %u\n", tc.rollouts);
        } else {
            printf("  beta_start: %g\n", tc.beta_start);
            printf("  beta_max: %g\n", tc.beta_max);
            printf("  anneal: %s over %u steps\n",
                   tc.anneal == CHARGAN_ANNEAL_LINEAR ? "linear" : "exp", tc.anneal_steps);
            printf("  loss: %s\n", tc.gan_loss == CHARGAN_LOSS_RELATIVISTIC ? "rsgan" : "standard");
            printf("  feed: %s\n", tc.gumbel_feed == CHARGAN_FEED_SOFT ? "soft" : "hard");
        }
    }
    int rc = print_optimizer("generator_optimizer",
                             chargan_trainer_optimizer(tr, CHARGAN_GENERATOR));
    if (rc == 0)
        rc = print_optimizer("discriminator_optimizer",
                             chargan_trainer_optimizer(tr, CHARGAN_DISCRIMINATOR));
    chargan_trainer_free(tr);
    return rc;
}

int cli_cmd_info(int argc, char **argv)
{
    const char *pos[1];
    size_t n_pos = 0;
    int rc = cli_parse("info", argc, argv, 2, NULL, 0, pos, 1, &n_pos);
    if (rc == 1)
        return cli_help_exit("info");
    if (rc != 0)
        return CLI_EXIT_USAGE;
    if (n_pos < 1) {
        cli_error("info: missing MODEL (see 'chargan help info')");
        return CLI_EXIT_USAGE;
    }
    const char *path = pos[0];

    /* A file holds a generator, a discriminator (saved alone through the
     * library) or both. */
    chargan_model *gen = NULL, *disc = NULL;
    chargan_status st = chargan_model_load(path, CHARGAN_GENERATOR, &gen);
    if (st != CHARGAN_OK && st != CHARGAN_E_NOT_FOUND) {
        cli_lib_error(st, "cannot load model '%s'", path);
        return CLI_EXIT_FAILURE;
    }
    chargan_status st_gen = st;
    st = chargan_model_load(path, CHARGAN_DISCRIMINATOR, &disc);
    if (st != CHARGAN_OK && (st != CHARGAN_E_NOT_FOUND || st_gen != CHARGAN_OK)) {
        if (st_gen == CHARGAN_OK)
            cli_lib_error(st, "cannot load the discriminator of '%s'", path);
        else
            cli_lib_error(st, "cannot load model '%s'", path);
        chargan_model_free(gen);
        return CLI_EXIT_FAILURE;
    }

    int exit_code = CLI_EXIT_FAILURE;
    printf("file: %s\n", path);
    if (gen && print_model("generator", gen) != 0)
        goto out;
    if (!gen)
        printf("generator: none\n");
    chargan_tokenizer *tok = chargan_model_tokenizer(gen ? gen : disc);
    if (tok) {
        if (print_tokenizer(tok) != 0)
            goto out;
    } else {
        printf("tokenizer: none\n");
    }
    if (disc) {
        if (print_model("discriminator", disc) != 0)
            goto out;
    } else {
        printf("discriminator: none\n");
    }
    if (print_trainer(path) != 0)
        goto out;
    if (cli_flush_stdout() != 0)
        goto out;
    exit_code = CLI_EXIT_OK;
out:
    chargan_model_free(gen);
    chargan_model_free(disc);
    return exit_code;
}
