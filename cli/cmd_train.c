/* cmd_train.c - `chargan train CORPUS -o MODEL [options]`.
 *
 * The flow: corpus text -> tokenizer fitted on it -> generator (and, with
 * --gan, a discriminator) -> optimizers -> trainer -> phases (MLE, then
 * discriminator pre-training and adversarial rounds with --gan) -> validation
 * -> chargan_trainer_save(), which writes atomically.  The model file is only
 * ever written by the library, so it is never left half-written. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_STEPS 1000
#define DEFAULT_D_PRETRAIN_STEPS 100
#define DEFAULT_GAN_STEPS 1000
#define DEFAULT_CLIP 5.0f
#define MAX_STEP_TOKENS ((uint64_t)1 << 24)
/* A cap on one library call's step count when only --time bounds the run. */
#define MAX_CHUNK ((uint64_t)1 << 40)

typedef struct train_args {
    const char *corpus, *output, *resume, *log_path;
    uint64_t steps;
    double time_s;
    uint32_t hidden, embed, layers, batch, seq, threads, vocab_cap, val_every;
    float lr, clip, dropout, val_fraction;
    uint64_t seed, checkpoint_every, report_every;
    int lowercase, quiet;
    /* adversarial training */
    int gan;       /* index into gan_choices */
    int anneal;    /* index into anneal_choices */
    int gan_loss;  /* index into loss_choices */
    int gan_feed;  /* index into feed_choices */
    uint64_t pretrain_steps, d_pretrain_steps, gan_steps;
    uint32_t d_steps, rollouts, anneal_steps;
    float gamma, mle_weight, beta_start, beta_max;
    float gan_lr; /* the discriminator's rate, and the generator's in the rounds */
} train_args;

static const char *const gan_choices[] = {"reinforce", "gumbel", NULL};
static const char *const anneal_choices[] = {"exp", "linear", NULL};
static const char *const loss_choices[] = {"standard", "rsgan", NULL};
static const char *const feed_choices[] = {"hard", "soft", NULL}; /* chargan_gumbel_feed's order */

/* What a run must do, and what stops it. */
enum { RUN_DONE = 0, RUN_ERROR = 1, RUN_TIME_UP = 2, RUN_SIGNAL = 3 };

typedef struct train_ctx {
    const train_args *a;
    chargan_trainer *tr;
    cli_progress *pr;
    uint64_t global_step;
} train_ctx;

static int seen(const cli_option *opts, size_t n, const char *name)
{
    const cli_option *o = cli_find_option(opts, n, name);
    return o && o->seen;
}

/* An output naming an input, or another output, would destroy it: the
 * corpus overwritten by the model or the log, a checkpoint appended to by
 * the log.  Writing the model over the checkpoint it resumed is the usual
 * resume. */
static int distinct_files(const train_args *a)
{
    const struct {
        const char *path, *what;
    } files[] = {
        {a->output, "the model (-o)"},
        {a->log_path, "the log (--log)"},
        {strcmp(a->corpus, "-") != 0 ? a->corpus : NULL, "the corpus"},
        {a->resume, "the checkpoint to resume (--resume)"},
    };
    const size_t n = sizeof files / sizeof files[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            int resume_in_place = files[i].path == a->output && files[j].path == a->resume;
            if (!files[i].path || !files[j].path || resume_in_place)
                continue;
            if (cli_same_file(files[i].path, files[j].path)) {
                cli_error("%s and %s are the same file '%s'", files[i].what, files[j].what,
                          files[j].path);
                return -1;
            }
        }
    return 0;
}

/* Steps done so far of a phase, as counted by the library. */
static chargan_status phase_counter(chargan_trainer *tr, chargan_phase phase, uint64_t *count)
{
    if (phase == CHARGAN_PHASE_DISCRIMINATOR) {
        chargan_optimizer *o = chargan_trainer_optimizer(tr, CHARGAN_DISCRIMINATOR);
        if (!o) {
            *count = 0;
            return CHARGAN_OK;
        }
        return chargan_optimizer_steps(o, count);
    }
    return chargan_trainer_global_step(tr, count);
}

static chargan_status run_call(chargan_trainer *tr, chargan_phase phase, uint64_t steps)
{
    switch (phase) {
    case CHARGAN_PHASE_DISCRIMINATOR: return chargan_trainer_pretrain_discriminator(tr, steps);
    case CHARGAN_PHASE_ADVERSARIAL: return chargan_trainer_adversarial(tr, steps);
    default: return chargan_trainer_pretrain_generator(tr, steps);
    }
}

/* fopen(path, "w") but for the truncation, left to cli_progress_log_start. */
static FILE *open_log_for_replacing(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int err = errno;
        close(fd);
        errno = err;
    }
    return f;
}

/* Closes the --log file, if open: 0, or -1 after saying why when a write to
 * it or the close failed (each is reported once: *log is then NULL). */
static int close_log(FILE **log, const cli_progress *pr, const train_args *a)
{
    if (!*log)
        return 0;
    int err = pr ? cli_progress_log_errno(pr) : 0;
    errno = 0;
    if (fclose(*log) != 0 && err == 0)
        err = errno ? errno : EIO;
    *log = NULL;
    if (err)
        cli_error("cannot write log '%s': %s", a->log_path, strerror(err));
    return err ? -1 : 0;
}

static int save_model(train_ctx *c, const char *why)
{
    cli_progress_log_start(c->pr); /* the saved model's log is this run's */
    cli_signals_hold();
    chargan_status st = chargan_trainer_save(c->tr, c->a->output);
    int held = cli_signals_release();
    if (st != CHARGAN_OK)
        cli_lib_error(st, "cannot save %s '%s'", why, c->a->output);
    if (held)
        cli_signals_die_of(held);
    return st == CHARGAN_OK ? 0 : -1;
}

/* Runs one phase from done to total steps in library calls that end at each
 * checkpoint boundary.  The progress callback stops a call early on a signal
 * or at the deadline. */
static int run_phase(train_ctx *c, chargan_phase phase, uint64_t done, uint64_t total)
{
    if (done >= total)
        return RUN_DONE;
    /* Under MPI the ranks decide together (cli_mpi_any), or one would stop
     * while the others wait for it in the next step. */
    if (cli_mpi_any(cli_stop_signal(), c->global_step))
        return RUN_SIGNAL;
    if (cli_mpi_any(cli_progress_time_up(c->pr), c->global_step))
        return RUN_TIME_UP;
    uint64_t every = c->a->checkpoint_every;
    int result = RUN_DONE;
    cli_progress_begin_phase(c->pr, phase, done, total);
    while (done < total) {
        uint64_t chunk = total - done;
        if (every) {
            uint64_t next = (done / every + 1) * every;
            if (next - done < chunk)
                chunk = next - done;
        }
        if (chunk > MAX_CHUNK)
            chunk = MAX_CHUNK;
        uint64_t before = 0, after = 0;
        chargan_status st = phase_counter(c->tr, phase, &before);
        if (st == CHARGAN_OK) {
            cli_progress_begin_call(c->pr, done);
            st = run_call(c->tr, phase, chunk);
        }
        /* The library's counter says how far a cancelled call got. */
        chargan_status st2 = phase_counter(c->tr, phase, &after);
        if (st2 == CHARGAN_OK && after >= before)
            done += after - before;
        chargan_trainer_global_step(c->tr, &c->global_step);
        if (st == CHARGAN_E_CANCELLED) {
            /* Every rank stops at the same step (the library votes), but a
             * signal may have reached only some: they decide together. */
            result = cli_mpi_any(cli_stop_signal(), c->global_step) ? RUN_SIGNAL : RUN_TIME_UP;
            break;
        }
        if (st != CHARGAN_OK) {
            cli_progress_end_phase(c->pr);
            cli_lib_error(st, "%s training failed at step %llu", cli_phase_name(phase),
                          (unsigned long long)done);
            return RUN_ERROR;
        }
        if (st2 != CHARGAN_OK) {
            cli_progress_end_phase(c->pr);
            cli_lib_error(st2, "cannot read the step counter");
            return RUN_ERROR;
        }
        if (every && done % every == 0 && done < total && save_model(c, "checkpoint") != 0) {
            cli_progress_end_phase(c->pr);
            return RUN_ERROR;
        }
        if (cli_mpi_any(cli_stop_signal(), c->global_step)) {
            result = RUN_SIGNAL;
            break;
        }
        if (done < total && cli_mpi_any(cli_progress_time_up(c->pr), c->global_step)) {
            result = RUN_TIME_UP;
            break;
        }
    }
    cli_progress_end_phase(c->pr);
    return result;
}

/* Options that only mean something in adversarial training. */
static const char *const gan_only[] = {"pretrain-steps", "d-pretrain-steps", "gan-steps",
                                       "d-steps", "gamma", "rollouts", "mle-weight",
                                       "beta-start", "beta-max", "anneal", "anneal-steps",
                                       "loss", "gan-feed", "gan-lr", NULL};

static int check_combinations(const train_args *a, const cli_option *opts, size_t n)
{
    if (!a->corpus) {
        cli_error("train: missing CORPUS (see 'chargan help train')");
        return -1;
    }
    if (!a->output) {
        cli_error("train: missing -o MODEL (see 'chargan help train')");
        return -1;
    }
    if (a->vocab_cap == 1 || a->vocab_cap == 2) {
        cli_error("--vocab-cap: expected 0 (no cap) or at least %d, got '%u'",
                  CHARGAN_NUM_RESERVED_IDS + 1, a->vocab_cap);
        return -1;
    }
    /* The library's cap on one step's tokens, checked here to name the options. */
    if ((uint64_t)a->batch * a->seq > MAX_STEP_TOKENS) {
        cli_error("--batch: %u sequences of --seq %u is more than %llu tokens a step", a->batch,
                  a->seq, (unsigned long long)MAX_STEP_TOKENS);
        return -1;
    }
    if (seen(opts, n, "steps") && seen(opts, n, "pretrain-steps") &&
        a->steps != a->pretrain_steps) {
        cli_error("--pretrain-steps: is another name for --steps, give one of them");
        return -1;
    }
    if (a->resume)
        return 0; /* checked against the checkpoint once it is read */
    if (a->gan < 0) {
        for (size_t i = 0; gan_only[i]; i++) {
            if (seen(opts, n, gan_only[i])) {
                cli_error("--%s: needs --gan reinforce|gumbel", gan_only[i]);
                return -1;
            }
        }
    } else {
        static const char *const gumbel_only[] = {"beta-start", "beta-max", "anneal",
                                                  "anneal-steps", "loss", "gan-feed", NULL};
        static const char *const reinforce_only[] = {"gamma", "rollouts", NULL};
        const char *const *wrong = a->gan == 0 ? gumbel_only : reinforce_only;
        for (size_t i = 0; wrong[i]; i++) {
            if (seen(opts, n, wrong[i])) {
                cli_error("--%s: does not apply to --gan %s", wrong[i], gan_choices[a->gan]);
                return -1;
            }
        }
    }
    /* beta rises from --beta-start to --beta-max, which is 1 unless given */
    if (!seen(opts, n, "beta-max") && a->beta_start > a->beta_max) {
        cli_error("--beta-start: %g is above --beta-max (default 1); give --beta-max too (the same "
                  "value for a fixed temperature)", (double)a->beta_start);
        return -1;
    }
    if (a->beta_max < a->beta_start) {
        cli_error("--beta-max: %g is below --beta-start %g", (double)a->beta_max,
                  (double)a->beta_start);
        return -1;
    }
    return 0;
}

/* A resumed run keeps the checkpoint's settings: an option that would change
 * one is refused, one that repeats it is accepted, so that an interrupted
 * command can be repeated with --resume as it was.  The tokenizer options
 * are not compared (the checkpoint's tokenizer is kept).  Returns 0, or the
 * exit status after printing why. */
static int check_resume_options(const train_args *a, const cli_option *opts, size_t n,
                                chargan_trainer *tr, uint64_t mle_total)
{
    chargan_trainer_config tc;
    chargan_model_config mc;
    chargan_optimizer_config oc;
    memset(&tc, 0, sizeof tc);
    memset(&mc, 0, sizeof mc);
    memset(&oc, 0, sizeof oc);
    tc.struct_size = sizeof tc;
    mc.struct_size = sizeof mc;
    oc.struct_size = sizeof oc;
    chargan_status st = chargan_trainer_get_config(tr, &tc);
    if (st == CHARGAN_OK)
        st = chargan_model_get_config(chargan_trainer_generator(tr), &mc);
    if (st == CHARGAN_OK)
        st = chargan_optimizer_get_config(chargan_trainer_optimizer(tr, CHARGAN_GENERATOR), &oc);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot read the settings of '%s'", a->resume);
        return CLI_EXIT_FAILURE;
    }
    int ckpt_gan = tc.estimator == CHARGAN_GAN_REINFORCE ? 0
                   : tc.estimator == CHARGAN_GAN_GUMBEL  ? 1
                                                         : -1;
    int ckpt_anneal = tc.anneal == CHARGAN_ANNEAL_LINEAR ? 1 : 0;
    int ckpt_loss = tc.gan_loss == CHARGAN_LOSS_RELATIVISTIC ? 1 : 0;
    int ckpt_feed = tc.gumbel_feed == CHARGAN_FEED_SOFT ? 1 : 0;
    char given[64], kept[64];
    /* same: whether the option repeats the checkpoint's value; given and kept
     * hold both as text for the message. */
#define REFUSE_IF_DIFFERENT(name, same)                                                            \
    do {                                                                                           \
        if (seen(opts, n, name) && !(same)) {                                                      \
            cli_error("--%s: %s differs from the checkpoint's %s (a resumed run keeps its "       \
                      "settings)",                                                                 \
                      name, given, kept);                                                          \
            return CLI_EXIT_USAGE;                                                                 \
        }                                                                                          \
    } while (0)
#define SAME_UINT(name, cli_value, ckpt_value)                                                     \
    do {                                                                                           \
        snprintf(given, sizeof given, "%llu", (unsigned long long)(cli_value));                    \
        snprintf(kept, sizeof kept, "%llu", (unsigned long long)(ckpt_value));                     \
        REFUSE_IF_DIFFERENT(name, (uint64_t)(cli_value) == (uint64_t)(ckpt_value));                \
    } while (0)
    /* The same text parses to the same float, so floats compare exactly. */
#define SAME_FLOAT(name, cli_value, ckpt_value)                                                    \
    do {                                                                                           \
        snprintf(given, sizeof given, "%g", (double)(cli_value));                                  \
        snprintf(kept, sizeof kept, "%g", (double)(ckpt_value));                                   \
        REFUSE_IF_DIFFERENT(name, (float)(cli_value) == (float)(ckpt_value));                      \
    } while (0)
#define SAME_NAME(name, cli_value, ckpt_value)                                                     \
    do {                                                                                           \
        snprintf(given, sizeof given, "%s", cli_value);                                            \
        snprintf(kept, sizeof kept, "%s", ckpt_value);                                             \
        REFUSE_IF_DIFFERENT(name, strcmp(given, kept) == 0);                                       \
    } while (0)
    SAME_UINT("hidden", a->hidden, mc.hidden_dim);
    SAME_UINT("embed", a->embed, mc.embed_dim);
    SAME_UINT("layers", a->layers, mc.num_layers);
    SAME_FLOAT("dropout", a->dropout, mc.recurrent_dropout);
    SAME_UINT("seed", a->seed, tc.seed);
    SAME_UINT("batch", a->batch, tc.batch);
    SAME_UINT("seq", a->seq, tc.seq_len);
    SAME_UINT("threads", a->threads, tc.threads);
    SAME_FLOAT("val-fraction", a->val_fraction, tc.val_fraction);
    SAME_UINT("val-every", a->val_every, tc.val_every);
    /* From the adversarial rounds on, the generator's optimizer runs at
     * --gan-lr, which is then all the checkpoint holds: --lr (spent on the
     * finished MLE phase) can no longer be compared. */
    uint64_t g_step = 0;
    chargan_optimizer_config dc;
    memset(&dc, 0, sizeof dc);
    dc.struct_size = sizeof dc;
    chargan_optimizer *d_opt = chargan_trainer_optimizer(tr, CHARGAN_DISCRIMINATOR);
    if (d_opt)
        st = chargan_optimizer_get_config(d_opt, &dc);
    if (st == CHARGAN_OK)
        st = chargan_trainer_global_step(tr, &g_step);
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "cannot read the settings of '%s'", a->resume);
        return CLI_EXIT_FAILURE;
    }
    if (!(d_opt && g_step >= mle_total && oc.lr == dc.lr))
        SAME_FLOAT("lr", a->lr, oc.lr);
    SAME_FLOAT("clip", a->clip, oc.clip_norm);
    SAME_NAME("gan", a->gan >= 0 ? gan_choices[a->gan] : "none",
              ckpt_gan >= 0 ? gan_choices[ckpt_gan] : "none");
    if (ckpt_gan < 0) {
        for (size_t i = 0; gan_only[i]; i++) {
            if (seen(opts, n, gan_only[i])) {
                cli_error("--%s: the checkpoint '%s' was not trained with --gan", gan_only[i],
                          a->resume);
                return CLI_EXIT_USAGE;
            }
        }
        return 0;
    }
    SAME_FLOAT("gan-lr", a->gan_lr, dc.lr);
    SAME_UINT("d-steps", a->d_steps, tc.d_steps);
    SAME_FLOAT("gamma", a->gamma, tc.gamma);
    SAME_UINT("rollouts", a->rollouts, tc.rollouts);
    SAME_FLOAT("mle-weight", a->mle_weight, tc.mle_weight);
    SAME_FLOAT("beta-start", a->beta_start, tc.beta_start);
    SAME_FLOAT("beta-max", a->beta_max, tc.beta_max);
    SAME_NAME("anneal", anneal_choices[a->anneal], anneal_choices[ckpt_anneal]);
    SAME_UINT("anneal-steps", a->anneal_steps, tc.anneal_steps);
    SAME_NAME("loss", loss_choices[a->gan_loss], loss_choices[ckpt_loss]);
    SAME_NAME("gan-feed", feed_choices[a->gan_feed], feed_choices[ckpt_feed]);
#undef SAME_NAME
#undef SAME_FLOAT
#undef SAME_UINT
#undef REFUSE_IF_DIFFERENT
    return 0;
}

/* Builds tokenizer, models, optimizers and trainer for a new run. */
static int create_trainer(const train_args *a, const char *text, size_t len,
                          chargan_trainer **out)
{
    chargan_tokenizer *tok = NULL;
    chargan_model *gen = NULL, *disc = NULL;
    chargan_optimizer *g_opt = NULL, *d_opt = NULL;
    chargan_status st;

    chargan_tokenizer_options topts;
    chargan_tokenizer_options_init(&topts);
    topts.max_vocab = a->vocab_cap;
    topts.lowercase = a->lowercase;
    if ((st = chargan_tokenizer_new(&topts, &tok)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot create the tokenizer");
        goto fail;
    }
    if ((st = chargan_tokenizer_fit(tok, text, len)) != CHARGAN_OK) {
        cli_lib_error(st, "corpus '%s'", a->corpus);
        goto fail;
    }
    uint32_t vocab = 0;
    if ((st = chargan_tokenizer_vocab_size(tok, &vocab)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot read the vocabulary size");
        goto fail;
    }

    chargan_model_config mc;
    chargan_model_config_init(&mc, CHARGAN_GENERATOR);
    mc.vocab_size = vocab;
    mc.embed_dim = a->embed;
    mc.hidden_dim = a->hidden;
    mc.num_layers = a->layers;
    mc.recurrent_dropout = a->dropout;
    mc.seed = a->seed;
    if ((st = chargan_model_new(&mc, &gen)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot create the generator");
        goto fail;
    }
    if ((st = chargan_model_set_tokenizer(gen, tok)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot attach the tokenizer");
        goto fail;
    }

    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_ADAM);
    oc.lr = a->lr;
    oc.clip_norm = a->clip;
    if ((st = chargan_optimizer_new(&oc, &g_opt)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot create the optimizer");
        goto fail;
    }

    if (a->gan >= 0) {
        /* The discriminator has the generator's shape; its seed differs so
         * that the two do not start from correlated weights. */
        chargan_model_config dc;
        chargan_model_config_init(&dc, CHARGAN_DISCRIMINATOR);
        dc.vocab_size = vocab;
        dc.embed_dim = a->embed;
        dc.hidden_dim = a->hidden;
        dc.num_layers = a->layers;
        dc.recurrent_dropout = a->dropout;
        dc.seed = a->seed + 1;
        if ((st = chargan_model_new(&dc, &disc)) != CHARGAN_OK) {
            cli_lib_error(st, "cannot create the discriminator");
            goto fail;
        }
        oc.lr = a->gan_lr;
        if ((st = chargan_optimizer_new(&oc, &d_opt)) != CHARGAN_OK) {
            cli_lib_error(st, "cannot create the discriminator's optimizer");
            goto fail;
        }
    }

    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = a->batch;
    tc.seq_len = a->seq;
    tc.val_fraction = a->val_fraction;
    tc.seed = a->seed;
    tc.threads = a->threads;
    tc.report_every = 1; /* see progress.c: stop within a step */
    tc.val_every = a->val_every;
    if (a->gan >= 0) {
        tc.estimator = a->gan == 0 ? CHARGAN_GAN_REINFORCE : CHARGAN_GAN_GUMBEL;
        tc.d_steps = a->d_steps;
        tc.gamma = a->gamma;
        tc.rollouts = a->rollouts;
        tc.mle_weight = a->mle_weight;
        tc.beta_start = a->beta_start;
        tc.beta_max = a->beta_max;
        tc.anneal = a->anneal == 0 ? CHARGAN_ANNEAL_EXP : CHARGAN_ANNEAL_LINEAR;
        tc.anneal_steps = a->anneal_steps;
        tc.gan_loss = a->gan_loss == 0 ? CHARGAN_LOSS_STANDARD : CHARGAN_LOSS_RELATIVISTIC;
        tc.gumbel_feed = a->gan_feed == 0 ? CHARGAN_FEED_HARD : CHARGAN_FEED_SOFT;
    }
    if ((st = chargan_trainer_new(&tc, gen, g_opt, disc, d_opt, out)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot create the trainer");
        goto fail;
    }
    chargan_tokenizer_free(tok);
    return 0;
fail:
    chargan_tokenizer_free(tok);
    chargan_model_free(gen);
    chargan_model_free(disc);
    chargan_optimizer_free(g_opt);
    chargan_optimizer_free(d_opt);
    return -1;
}

int cli_cmd_train(int argc, char **argv)
{
    train_args a;
    memset(&a, 0, sizeof a);
    {
        /* Defaults come from the library, so the two cannot drift apart. */
        chargan_model_config mc;
        chargan_model_config_init(&mc, CHARGAN_GENERATOR);
        chargan_trainer_config tc;
        chargan_trainer_config_init(&tc);
        chargan_optimizer_config oc;
        chargan_optimizer_config_init(&oc, CHARGAN_ADAM);
        a.hidden = mc.hidden_dim;
        a.embed = mc.embed_dim;
        a.layers = mc.num_layers;
        a.dropout = mc.recurrent_dropout;
        a.batch = tc.batch;
        a.seq = tc.seq_len;
        a.val_fraction = tc.val_fraction;
        a.seed = tc.seed;
        a.threads = tc.threads;
        a.val_every = tc.val_every;
        a.d_steps = tc.d_steps;
        a.gamma = tc.gamma;
        a.rollouts = tc.rollouts;
        a.mle_weight = tc.mle_weight;
        a.beta_start = tc.beta_start;
        a.beta_max = tc.beta_max;
        a.anneal_steps = tc.anneal_steps;
        a.anneal = tc.anneal == CHARGAN_ANNEAL_LINEAR ? 1 : 0;
        a.gan_loss = tc.gan_loss == CHARGAN_LOSS_RELATIVISTIC ? 1 : 0;
        a.gan_feed = tc.gumbel_feed == CHARGAN_FEED_SOFT ? 1 : 0;
        a.lr = oc.lr;
    }
    a.clip = DEFAULT_CLIP;
    a.steps = DEFAULT_STEPS;
    a.d_pretrain_steps = DEFAULT_D_PRETRAIN_STEPS;
    a.gan_steps = DEFAULT_GAN_STEPS;
    a.report_every = 100;
    a.gan = -1;

    cli_option opts[] = {
        CLI_OPT_STR("output", 'o', &a.output),
        CLI_OPT_U64("steps", 0, &a.steps, 0, UINT64_MAX / 2),
        CLI_OPT_DOUBLE("time", &a.time_s, 0, 1e8, 1, 0),
        CLI_OPT_U32("hidden", 0, &a.hidden, 1, 16384),
        CLI_OPT_U32("embed", 0, &a.embed, 1, 16384),
        CLI_OPT_U32("layers", 0, &a.layers, 1, 16),
        CLI_OPT_U32("batch", 0, &a.batch, 1, 65536),
        CLI_OPT_U32("seq", 0, &a.seq, 1, 65536),
        CLI_OPT_FLOAT("lr", &a.lr, 0, 10, 1, 0),
        CLI_OPT_FLOAT_OR_OFF("clip", &a.clip, 1e6),
        CLI_OPT_U64("seed", 0, &a.seed, 0, UINT64_MAX),
        CLI_OPT_U32("threads", 0, &a.threads, 1, 256),
        CLI_OPT_U32("vocab-cap", 0, &a.vocab_cap, 0, 1u << 21),
        CLI_OPT_FLAG("lowercase", 0, &a.lowercase),
        CLI_OPT_FLOAT("dropout", &a.dropout, 0, 1, 0, 1),
        CLI_OPT_FLOAT_OR_OFF("val-fraction", &a.val_fraction, 0.9),
        CLI_OPT_U32("val-every", 0, &a.val_every, 0, UINT32_MAX),
        CLI_OPT_U64("checkpoint-every", 0, &a.checkpoint_every, 0, UINT64_MAX / 2),
        CLI_OPT_STR("resume", 0, &a.resume),
        CLI_OPT_STR("log", 0, &a.log_path),
        CLI_OPT_U64("report-every", 0, &a.report_every, 1, UINT64_MAX / 2),
        CLI_OPT_FLAG("quiet", 'q', &a.quiet),
        CLI_OPT_CHOICE("gan", &a.gan, gan_choices),
        CLI_OPT_U64("pretrain-steps", 0, &a.pretrain_steps, 0, UINT64_MAX / 2),
        CLI_OPT_U64("d-pretrain-steps", 0, &a.d_pretrain_steps, 0, UINT64_MAX / 2),
        CLI_OPT_U64("gan-steps", 0, &a.gan_steps, 0, UINT64_MAX / 2),
        CLI_OPT_U32("d-steps", 0, &a.d_steps, 1, 1000),
        CLI_OPT_FLOAT("gamma", &a.gamma, 0, 1, 0, 0),
        CLI_OPT_U32("rollouts", 0, &a.rollouts, 0, 64),
        CLI_OPT_FLOAT("mle-weight", &a.mle_weight, 0, 1e6, 0, 0),
        CLI_OPT_FLOAT("beta-start", &a.beta_start, 1e-3, 1e6, 0, 0),
        CLI_OPT_FLOAT("beta-max", &a.beta_max, 1e-3, 1e6, 0, 0),
        CLI_OPT_CHOICE("anneal", &a.anneal, anneal_choices),
        CLI_OPT_U32("anneal-steps", 0, &a.anneal_steps, 1, UINT32_MAX),
        CLI_OPT_CHOICE("loss", &a.gan_loss, loss_choices),
        CLI_OPT_CHOICE("gan-feed", &a.gan_feed, feed_choices),
        CLI_OPT_FLOAT("gan-lr", &a.gan_lr, 0, 10, 1, 0),
    };
    const size_t n_opts = CLI_N_OPTS(opts);
    const char *pos[1];
    size_t n_pos = 0;
    int rc = cli_parse("train", argc, argv, 2, opts, n_opts, pos, 1, &n_pos);
    if (rc == 1)
        return cli_help_exit("train");
    if (rc != 0)
        return CLI_EXIT_USAGE;
    a.corpus = n_pos ? pos[0] : NULL;
    if (check_combinations(&a, opts, n_opts) != 0)
        return CLI_EXIT_USAGE;
    if (!seen(opts, n_opts, "gan-lr"))
        a.gan_lr = a.lr;

    /* MLE steps: --steps (alias --pretrain-steps); only --time: until then. */
    int steps_given = seen(opts, n_opts, "steps") || seen(opts, n_opts, "pretrain-steps");
    uint64_t mle_total = seen(opts, n_opts, "pretrain-steps") ? a.pretrain_steps : a.steps;
    if (!steps_given && a.time_s > 0 && a.gan < 0 && !a.resume)
        mle_total = UINT64_MAX;
    /* Gumbel anneals over all its rounds unless told; REINFORCE keeps the
     * library's default, which it does not read (its checkpoints then do not
     * depend on how a run was staged). */
    if (!seen(opts, n_opts, "anneal-steps") && a.gan == 1)
        a.anneal_steps = a.gan_steps > UINT32_MAX ? UINT32_MAX
                                                  : (a.gan_steps ? (uint32_t)a.gan_steps : 1);

    /* Under mpirun: every rank trains its share, rank 0 alone writes the
     * model, the log and the progress display (docs/CLUSTER.md). */
    if (cli_mpi_init() != 0)
        return CLI_EXIT_FAILURE;
    int rank0 = cli_mpi_rank() == 0;
    if (rank0 && (cli_check_output(a.output, "model", CLI_OUTPUT_RENAMED) != 0 ||
                  distinct_files(&a) != 0))
        return cli_mpi_finish(CLI_EXIT_FAILURE, 0);

    int exit_code = CLI_EXIT_FAILURE;
    int stopped_together = 0; /* every rank ends with exit_code (cli_mpi_finish) */
    char *text = NULL;
    FILE *log = NULL;
    cli_progress *pr = NULL;
    chargan_trainer *tr = NULL;
    size_t len = 0;

    /* Catch Ctrl-C from here on: a signal before training starts still gets
     * a consistent (if untrained) model saved, never a half-written one. */
    cli_signals_install();

    text = cli_read_file(a.corpus, "corpus", &len);
    if (!text) {
        if (cli_stop_signal()) /* Ctrl-C while a pipe was slow to deliver it */
            exit_code = 128 + cli_stop_signal();
        goto out;
    }
    if (len == 0) {
        cli_error("corpus '%s' is empty", a.corpus);
        goto out;
    }
    chargan_status st;
    if (a.resume) {
        if ((st = chargan_trainer_load(a.resume, &tr)) != CHARGAN_OK) {
            cli_lib_error(st, "cannot resume from '%s'", a.resume);
            goto out;
        }
        chargan_trainer_config tc;
        memset(&tc, 0, sizeof tc);
        tc.struct_size = sizeof tc;
        if ((st = chargan_trainer_get_config(tr, &tc)) != CHARGAN_OK) {
            cli_lib_error(st, "cannot read the trainer configuration of '%s'", a.resume);
            goto out;
        }
        if ((rc = check_resume_options(&a, opts, n_opts, tr, mle_total)) != 0) {
            exit_code = rc;
            goto out;
        }
        chargan_optimizer *d_opt = chargan_trainer_optimizer(tr, CHARGAN_DISCRIMINATOR);
        if (d_opt) {
            /* --gan-lr is the discriminator's rate (checked equal if given). */
            chargan_optimizer_config dc;
            memset(&dc, 0, sizeof dc);
            dc.struct_size = sizeof dc;
            if ((st = chargan_optimizer_get_config(d_opt, &dc)) != CHARGAN_OK) {
                cli_lib_error(st, "cannot read the settings of '%s'", a.resume);
                goto out;
            }
            a.gan_lr = dc.lr;
        }
        a.gan = tc.estimator == CHARGAN_GAN_REINFORCE ? 0
                : tc.estimator == CHARGAN_GAN_GUMBEL  ? 1
                                                      : -1;
        a.val_fraction = tc.val_fraction;
        if (!steps_given && a.time_s > 0 && a.gan < 0)
            mle_total = UINT64_MAX;
    } else if (create_trainer(&a, text, len, &tr) != 0) {
        goto out;
    }
    cli_signals_stop_trainer(tr);

    if ((st = chargan_trainer_set_corpus_text(tr, text, len)) != CHARGAN_OK) {
        cli_lib_error(st, "corpus '%s'", a.corpus);
        goto out;
    }
    /* A fresh generator starts from the corpus's unigram distribution
     * (about 0.04 bits/char better after 3000 steps, docs/MODEL.md). */
    if (!a.resume && (st = chargan_trainer_init_output_bias(tr)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot initialise the output bias");
        goto out;
    }
    free(text);
    text = NULL;
    /* The log is opened only now that the corpus and the settings are
     * known to be good, and a fresh run's is emptied only at its first
     * record or save (cli_progress_log_start): a run refused, or stopped
     * before its first step, leaves an earlier run's log as it was. */
    if (a.log_path && rank0) {
        log = a.resume ? fopen(a.log_path, "a") : open_log_for_replacing(a.log_path);
        if (!log) {
            cli_error("cannot open log '%s': %s", a.log_path, strerror(errno));
            goto out;
        }
    }
    cli_progress_settings ps;
    memset(&ps, 0, sizeof ps);
    ps.quiet = a.quiet || !rank0;
    const char *term = getenv("TERM");
    ps.tty = isatty(STDERR_FILENO) && !(term && strcmp(term, "dumb") == 0);
    ps.log_every = a.report_every;
    ps.jsonl = log;
    ps.jsonl_replace = log && !a.resume;
    ps.deadline = a.time_s > 0 ? cli_now() + a.time_s : 0;
    pr = cli_progress_new(&ps);
    if (!pr) {
        cli_error("out of memory");
        goto out;
    }
    if ((st = chargan_trainer_set_progress(tr, cli_progress_callback, pr)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot install the progress display");
        goto out;
    }
    if (cli_mpi_attach(tr) != 0)
        goto out;

    train_ctx c = {.a = &a, .tr = tr, .pr = pr, .global_step = 0};
    if ((st = chargan_trainer_global_step(tr, &c.global_step)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot read the step counter");
        goto out;
    }

    /* Phase progress is derived from the library's counters, so a resumed
     * run skips what the checkpoint already did: generator steps count MLE
     * steps first, then adversarial rounds; the discriminator's optimizer
     * counts its pre-training steps. */
    int result;
    uint64_t g0 = c.global_step, d_start = 0;
    if ((st = phase_counter(tr, CHARGAN_PHASE_DISCRIMINATOR, &d_start)) != CHARGAN_OK) {
        cli_lib_error(st, "cannot read the discriminator's step counter");
        goto out;
    }
    uint64_t mle_done = g0 < mle_total ? g0 : mle_total;
    result = run_phase(&c, CHARGAN_PHASE_MLE, mle_done, mle_total);
    if (result == RUN_DONE && a.gan >= 0) {
        uint64_t d0 = 0;
        if ((st = phase_counter(tr, CHARGAN_PHASE_DISCRIMINATOR, &d0)) != CHARGAN_OK) {
            cli_lib_error(st, "cannot read the discriminator's step counter");
            goto out;
        }
        uint64_t d_done = g0 > mle_total ? a.d_pretrain_steps : d0;
        result = run_phase(&c, CHARGAN_PHASE_DISCRIMINATOR, d_done, a.d_pretrain_steps);
        if (result == RUN_DONE) {
            uint64_t adv_done = c.global_step > mle_total ? c.global_step - mle_total : 0;
            /* The generator's optimizer keeps its moments; only its rate
             * changes, once there are rounds to run, so that a run stopped
             * before them still holds --lr (a resumed run sets the same). */
            if (adv_done < a.gan_steps &&
                (st = chargan_optimizer_set_lr(chargan_trainer_optimizer(tr, CHARGAN_GENERATOR),
                                               a.gan_lr)) != CHARGAN_OK) {
                cli_lib_error(st, "cannot set --gan-lr");
                goto out;
            }
            result = run_phase(&c, CHARGAN_PHASE_ADVERSARIAL, adv_done, a.gan_steps);
        }
    }
    if (result == RUN_ERROR)
        goto out;

    double val_nll = NAN, val_bpc = NAN;
    if (result == RUN_DONE && cli_progress_latest_val(pr, &val_nll, &val_bpc)) {
        /* Each library call that ran to its end validated its final state
         * and reported it (the discriminator's phase leaves the generator
         * as it was): the figure is the model's, no second run needed. */
        cli_progress_log_eval(pr, c.global_step, val_nll, val_bpc);
    } else if (result != RUN_SIGNAL && a.val_fraction > 0) {
        st = chargan_trainer_evaluate(tr, &val_nll, &val_bpc);
        if (cli_mpi_any(st == CHARGAN_E_CANCELLED, c.global_step)) {
            /* A stop signal during the validation (on any rank): save, as
             * for one during training, without the figure. */
            result = RUN_SIGNAL;
        } else if (st == CHARGAN_E_STATE) {
            /* Too little held-out text for one window: the training itself
             * is fine, so keep it and say why there is no figure (once:
             * every rank finds the same). */
            if (rank0)
                cli_lib_error(st, "warning: no validation");
        } else if (st != CHARGAN_OK) {
            cli_lib_error(st, "validation failed");
            goto out;
        } else {
            cli_progress_log_eval(pr, c.global_step, val_nll, val_bpc);
        }
    }
    if (result == RUN_SIGNAL && c.global_step == g0) {
        /* Stopped before this run trained anything: saving would only
         * replace MODEL (perhaps a trained one) with what it started from. */
        uint64_t d_now = d_start;
        if (phase_counter(tr, CHARGAN_PHASE_DISCRIMINATOR, &d_now) == CHARGAN_OK &&
            d_now == d_start) {
            if (rank0)
                cli_error("interrupted before the first step; nothing saved");
            /* every rank with the signal one of them got (all stopped) */
            exit_code = 128 + cli_mpi_max(cli_stop_signal(), c.global_step);
            stopped_together = 1;
            goto out;
        }
    }
    if (save_model(&c, "model") != 0)
        goto out;

    if (result == RUN_SIGNAL) {
        if (rank0)
            cli_error("interrupted at step %llu; saved '%s' (continue with --resume %s)",
                      (unsigned long long)c.global_step, a.output, a.output);
        /* Only rank 0 writes, and a rank that ends with a failure status
         * ends the job: the others wait here until rank 0 has saved.  All
         * exit with the signal that stopped them, if only one rank got it
         * (the others' 128 + 0 could be the job's status). */
        exit_code = 128 + cli_mpi_max(cli_stop_signal(), c.global_step);
        stopped_together = 1;
        goto out;
    }
    if (!rank0) {
        exit_code = CLI_EXIT_OK;
        goto out;
    }
    /* A log that could not be written fails the run before its summary is
     * printed: nothing on standard output on failure. */
    if (close_log(&log, pr, &a) != 0)
        goto out;
    if (result == RUN_TIME_UP && !a.quiet)
        fprintf(stderr, "chargan: time limit reached after %g s\n", a.time_s);
    printf("model: %s\n", a.output);
    printf("steps: %llu\n", (unsigned long long)c.global_step);
    if (isfinite(val_nll)) {
        printf("val_nll: %.6f nats/char\n", val_nll);
        printf("val_bpc: %.6f bits/char\n", val_bpc);
    }
    exit_code = cli_flush_stdout() == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
out:
    if (exit_code == CLI_EXIT_FAILURE && log) /* one error is said: this run's */
        fclose(log);
    else if (close_log(&log, pr, &a) != 0) /* the model is saved; the log is not complete */
        exit_code = CLI_EXIT_FAILURE;
    cli_progress_free(pr);
    cli_signals_stop_trainer(NULL);
    chargan_trainer_free(tr);
    free(text);
    return cli_mpi_finish(exit_code, stopped_together);
}
