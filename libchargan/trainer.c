/* trainer.c - the trainer handle: configuration, corpus and batches, MLE
 * steps, evaluation, progress reports and whole-run checkpoints.  The
 * discriminator and adversarial steps are in gan.c. */
#include "trainer.h"
#include "checkpoint.h"
#include "tokenizer.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

#define LN2 0.69314718055994530942
#define CG_MAX_BATCH_TOKENS ((uint64_t)1 << 24)
/* The first published chargan_trainer_config ends at gan_loss; the trainer
 * section of a checkpoint stores the fields after it (beta_start,
 * gumbel_feed) in a tail of this many bytes. */
#define TRAINER_TAIL_BYTES 8
#define CONFIG_MIN_SIZE (offsetof(chargan_trainer_config, gan_loss) + sizeof(int32_t))

static void trainer_config_defaults(chargan_trainer_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    cfg->batch = 32;
    cfg->seq_len = 64;
    cfg->val_fraction = 0.1f;
    cfg->seed = 1;
    cfg->threads = 1;
    cfg->report_every = 100;
    cfg->val_every = 0;
    cfg->estimator = CHARGAN_GAN_NONE;
    cfg->d_steps = 1;
    cfg->gamma = 0.9f;
    cfg->baseline_decay = 0.9f;
    cfg->rollouts = 0;
    cfg->mle_weight = 0.0f;
    cfg->beta_max = 1.0f;
    cfg->anneal = CHARGAN_ANNEAL_EXP;
    cfg->anneal_steps = 1000;
    cfg->gan_loss = CHARGAN_LOSS_STANDARD;
    cfg->beta_start = 1.0f;
    cfg->gumbel_feed = CHARGAN_FEED_HARD;
}

chargan_status chargan_trainer_config_init_sized(chargan_trainer_config *cfg, size_t struct_size)
{
    chargan_trainer_config defaults;
    trainer_config_defaults(&defaults);
    return cg_init_struct(cfg, struct_size, &defaults, CONFIG_MIN_SIZE, sizeof defaults,
                          "chargan_trainer_config_init");
}

#define CHECK_FIELD(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return cg_fail(err, CHARGAN_E_INVALID, "trainer config: " __VA_ARGS__);               \
    } while (0)

static chargan_status config_check(cg_error *err, const chargan_trainer_config *c)
{
    CHECK_FIELD(c->batch >= 1 && c->batch <= 65536, "batch %u not in [1, 65536]", c->batch);
    CHECK_FIELD(c->seq_len >= 1 && c->seq_len <= 65536, "seq_len %u not in [1, 65536]", c->seq_len);
    /* Every step buffer is sized by batch x seq_len (times the model's
     * widths): without a cap on the product, a checkpoint of a few bytes
     * could ask for 65536 x 65536 and have the loader zero tens of GB. */
    CHECK_FIELD((uint64_t)c->batch * c->seq_len <= CG_MAX_BATCH_TOKENS, "batch x seq_len = %llu "
                "tokens a step, more than the %llu allowed",
                (unsigned long long)c->batch * c->seq_len, (unsigned long long)CG_MAX_BATCH_TOKENS);
    CHECK_FIELD(c->val_fraction >= 0.0f && c->val_fraction <= 0.9f, "val_fraction %g not in "
                "[0, 0.9]", (double)c->val_fraction);
    CHECK_FIELD(c->threads >= 1 && c->threads <= CG_MAX_THREADS_ASKED, "threads %u not in [1, %d]",
                c->threads, CG_MAX_THREADS_ASKED);
    CHECK_FIELD(c->report_every >= 1, "report_every must be >= 1");
    CHECK_FIELD(c->estimator >= CHARGAN_GAN_NONE && c->estimator <= CHARGAN_GAN_GUMBEL,
                "estimator %d unknown", (int)c->estimator);
    CHECK_FIELD(c->d_steps >= 1 && c->d_steps <= 1000, "d_steps %u not in [1, 1000]", c->d_steps);
    CHECK_FIELD(c->gamma >= 0.0f && c->gamma <= 1.0f, "gamma %g not in [0, 1]", (double)c->gamma);
    CHECK_FIELD(c->baseline_decay >= 0.0f && c->baseline_decay < 1.0f, "baseline_decay %g not in "
                "[0, 1)", (double)c->baseline_decay);
    CHECK_FIELD(c->rollouts <= 64, "rollouts %u above 64", c->rollouts);
    CHECK_FIELD(c->mle_weight >= 0.0f && c->mle_weight <= 1e6f, "mle_weight %g not in [0, 1e6]",
                (double)c->mle_weight);
    CHECK_FIELD(c->beta_start >= 1e-3f && c->beta_start <= 1e6f, "beta_start %g not in [1e-3, "
                "1e6]", (double)c->beta_start);
    CHECK_FIELD(c->beta_max >= c->beta_start && c->beta_max <= 1e6f, "beta_max %g not in "
                "[beta_start = %g, 1e6]", (double)c->beta_max, (double)c->beta_start);
    CHECK_FIELD(c->anneal == CHARGAN_ANNEAL_EXP || c->anneal == CHARGAN_ANNEAL_LINEAR,
                "anneal %d unknown", (int)c->anneal);
    CHECK_FIELD(c->anneal_steps >= 1, "anneal_steps must be >= 1");
    CHECK_FIELD(c->gan_loss == CHARGAN_LOSS_STANDARD || c->gan_loss == CHARGAN_LOSS_RELATIVISTIC,
                "gan_loss %d unknown", (int)c->gan_loss);
    CHECK_FIELD(c->gumbel_feed == CHARGAN_FEED_HARD || c->gumbel_feed == CHARGAN_FEED_SOFT,
                "gumbel_feed %d unknown", (int)c->gumbel_feed);
    return CHARGAN_OK;
}

static void shards_free(cg_shards *sh)
{
    cg_pool_free(sh->pool);
    cg_gan_shards_free(sh);
    cg_free(sh->block_sums);
    for (int s = 0; s < sh->n; s++) {
        chargan_model_free(sh->gen[s]);
        cg_free(sh->inputs[s]);
        cg_free(sh->targets[s]);
    }
    memset(sh, 0, sizeof *sh);
}

/* One shard per thread (at most one thread per row, and CG_MAX_SHARDS),
 * each with a generator replica. */
static chargan_status shards_alloc(chargan_trainer *tr)
{
    cg_shards *sh = &tr->shards;
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    int n = (int)tr->cfg.threads;
    n = n > B ? B : n;
    n = n > CG_MAX_SHARDS ? CG_MAX_SHARDS : n;
    if (n <= 1)
        return CHARGAN_OK;
    sh->pool = cg_pool_new(n);
    if (!sh->pool)
        return CHARGAN_E_NOMEM;
    sh->n = n;
    size_t blocks = cg_optimizer_blocks(tr->gen->n_weights);
    if (tr->disc && cg_optimizer_blocks(tr->disc->n_weights) > blocks)
        blocks = cg_optimizer_blocks(tr->disc->n_weights);
    if (!(sh->block_sums = cg_malloc(blocks * sizeof(double))))
        return CHARGAN_E_NOMEM;
    for (int s = 0, first = 0; s < n; s++) {
        sh->first[s] = first;
        sh->rows[s] = B / n + (s < B % n);
        first += sh->rows[s];
        size_t cells = (size_t)T * (size_t)sh->rows[s];
        if (cg_model_replica_new(tr->gen, s == 0, &sh->gen[s]) != CHARGAN_OK ||
            cg_model_reserve(sh->gen[s], T, sh->rows[s]) != CHARGAN_OK ||
            !(sh->inputs[s] = cg_malloc(cells * sizeof(int32_t))) ||
            !(sh->targets[s] = cg_malloc(cells * sizeof(int32_t))))
            return CHARGAN_E_NOMEM;
    }
    return tr->disc ? cg_gan_shards_alloc(tr) : CHARGAN_OK;
}

static void trainer_buffers_free(chargan_trainer *tr)
{
    shards_free(&tr->shards);
    cg_free(tr->windows);
    cg_free(tr->inputs);
    cg_free(tr->targets);
    cg_free_floats(tr->row_weights);
    cg_free_floats(tr->z);
    cg_gan_free(tr);
    tr->windows = tr->inputs = tr->targets = NULL;
    tr->row_weights = tr->z = NULL;
}

/* Everything the steps need, sized once. */
static chargan_status trainer_buffers_alloc(chargan_trainer *tr)
{
    size_t B = tr->cfg.batch, T = tr->cfg.seq_len;
    const uint64_t before = cg_alloc_requested();
    bool ok = (tr->windows = cg_malloc(B * (T + 1) * sizeof(int32_t))) != NULL;
    ok = ok && (tr->inputs = cg_malloc(B * T * sizeof(int32_t))) != NULL;
    ok = ok && (tr->targets = cg_malloc(B * T * sizeof(int32_t))) != NULL;
    ok = ok && (tr->row_weights = cg_alloc_floats(B * T)) != NULL;
    if (ok && tr->gen->Z > 0)
        ok = (tr->z = cg_alloc_float_matrix(B, (size_t)tr->gen->Z)) != NULL;
    ok = ok && shards_alloc(tr) == CHARGAN_OK; /* first: cg_gan_alloc asks if steps are sharded */
    ok = ok && cg_gan_alloc(tr) == CHARGAN_OK;
    ok = ok && (!cg_trainer_keeps_full_workspaces(tr) ||
                cg_trainer_full_workspaces(tr) == CHARGAN_OK);
    if (!ok)
        return cg_fail(&tr->err, CHARGAN_E_NOMEM, "out of memory sizing the trainer for batch %zu x "
                       "%zu", B, T);
    /* The buffers are only address space until a step writes them: beyond
     * the memory the process may use, that step would be killed by the
     * kernel instead of failing here (a checkpoint's batch and seq_len
     * choose the size). */
    return cg_check_memory(&tr->err, cg_alloc_requested() - before,
                           "the trainer's buffers for batch %zu x %zu need", B, T);
}

static void buffers_take(chargan_trainer *tr, cg_trainer_buffers *b)
{
    *b = (cg_trainer_buffers){tr->windows, tr->inputs,  tr->targets, tr->row_weights,
                              tr->z,       tr->gan.baseline, tr->work, tr->shards};
    tr->windows = tr->inputs = tr->targets = NULL;
    tr->row_weights = tr->z = tr->gan.baseline = NULL;
    memset(&tr->work, 0, sizeof tr->work);
    memset(&tr->shards, 0, sizeof tr->shards);
}

static void buffers_put(chargan_trainer *tr, const cg_trainer_buffers *b)
{
    tr->windows = b->windows;
    tr->inputs = b->inputs;
    tr->targets = b->targets;
    tr->row_weights = b->row_weights;
    tr->z = b->z;
    tr->gan.baseline = b->baseline;
    tr->work = b->work;
    tr->shards = b->shards;
}

chargan_status cg_trainer_prepare_local_batch(chargan_trainer *tr, uint32_t batch,
                                              cg_trainer_buffers *made)
{
    const uint32_t old_batch = tr->cfg.batch;
    cg_trainer_buffers own;
    buffers_take(tr, &own);
    tr->cfg.batch = batch;
    chargan_status st = trainer_buffers_alloc(tr);
    if (st == CHARGAN_OK)
        buffers_take(tr, made);
    else
        trainer_buffers_free(tr);
    buffers_put(tr, &own);
    tr->cfg.batch = old_batch;
    if (st != CHARGAN_OK)
        return cg_fail(&tr->err, st, "out of memory re-sizing the trainer for a batch of %u",
                       batch);
    return CHARGAN_OK;
}

void cg_trainer_discard_buffers(chargan_trainer *tr, cg_trainer_buffers *made)
{
    cg_trainer_buffers own;
    buffers_take(tr, &own);
    buffers_put(tr, made);
    trainer_buffers_free(tr);
    buffers_put(tr, &own);
}

void cg_trainer_commit_local_batch(chargan_trainer *tr, uint32_t batch, cg_trainer_buffers *made)
{
    memcpy(made->baseline, tr->gan.baseline, (size_t)tr->cfg.seq_len * sizeof(float));
    cg_trainer_buffers old;
    buffers_take(tr, &old);
    buffers_put(tr, made);
    tr->cfg.batch = batch;
    cg_trainer_discard_buffers(tr, &old);
}

static chargan_status check_pair(cg_error *err, const chargan_model *gen, const chargan_model *disc,
                                 const chargan_trainer_config *cfg)
{
    if (gen->cfg.kind != CHARGAN_GENERATOR)
        return cg_fail(err, CHARGAN_E_INVALID, "chargan_trainer_new: 'generator' is a "
                       "discriminator");
    if (disc && disc->cfg.kind != CHARGAN_DISCRIMINATOR)
        return cg_fail(err, CHARGAN_E_INVALID, "chargan_trainer_new: 'discriminator' is a "
                       "generator");
    if (disc && disc->cfg.vocab_size != gen->cfg.vocab_size)
        return cg_fail(err, CHARGAN_E_INVALID, "chargan_trainer_new: vocabularies differ "
                       "(generator %u, discriminator %u)", gen->cfg.vocab_size,
                       disc->cfg.vocab_size);
    if (cfg->estimator != CHARGAN_GAN_NONE && !disc)
        return cg_fail(err, CHARGAN_E_INVALID, "chargan_trainer_new: the GAN estimator needs a "
                       "discriminator");
    return CHARGAN_OK;
}

/* Builds a trainer around models and optimizers it then owns. */
static chargan_status trainer_create(cg_error *err, const chargan_trainer_config *cfg,
                                     chargan_model *gen, chargan_optimizer *gopt,
                                     chargan_model *disc, chargan_optimizer *dopt,
                                     chargan_trainer **out)
{
    chargan_trainer *tr = cg_calloc(1, sizeof *tr);
    if (!tr)
        return cg_fail(err, CHARGAN_E_NOMEM, "out of memory creating a trainer");
    tr->cfg = *cfg;
    tr->cfg.struct_size = sizeof tr->cfg;
    atomic_init(&tr->stop_request, 0);
    tr->gen = gen;
    tr->disc = disc;
    tr->gopt = gopt;
    tr->dopt = dopt;
    tr->val_nll = NAN;
    cg_rng_seed(&tr->rng, cfg->seed);
    chargan_status st = trainer_buffers_alloc(tr);
    if (st != CHARGAN_OK) {
        cg_fail(err, st, "%s", tr->err.msg);
        trainer_buffers_free(tr);
        cg_free(tr);
        return st;
    }
    /* With shards the cores are ours; otherwise the BLAS may use them. */
    cg_blas_set_threads(tr->shards.n > 1 ? 1 : (int)cfg->threads);
    gen->adopted = gopt->adopted = true;
    if (disc)
        disc->adopted = true;
    if (dopt)
        dopt->adopted = true;
    *out = tr;
    return CHARGAN_OK;
}

chargan_status chargan_trainer_new(const chargan_trainer_config *cfg, chargan_model *generator,
                                   chargan_optimizer *g_opt, chargan_model *discriminator,
                                   chargan_optimizer *d_opt, chargan_trainer **out)
{
    if (!cfg || !generator || !out)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_new: NULL %s",
                       !cfg ? "cfg" : !generator ? "generator" : "out");
    if (cg_check_struct_size(NULL, cfg, CONFIG_MIN_SIZE, sizeof *cfg, "chargan_trainer_new", "cfg",
                             "chargan_trainer_config_init") != CHARGAN_OK)
        return CHARGAN_E_INVALID;
    /* Only the bytes the caller declared; the fields past them are zero,
     * which each later field reads as its default. */
    chargan_trainer_config c;
    memset(&c, 0, sizeof c);
    memcpy(&c, cfg, cfg->struct_size < sizeof c ? cfg->struct_size : sizeof c);
    c.struct_size = sizeof c;
    if (c.beta_start == 0.0f)
        c.beta_start = 1.0f;
    cfg = &c;
    chargan_status st = config_check(NULL, cfg);
    if (st == CHARGAN_OK)
        st = check_pair(NULL, generator, discriminator, cfg);
    if (st != CHARGAN_OK)
        return st;
    /* Default optimizers are created here; if creating the trainer fails
     * they are freed, and the caller's handles stay the caller's. */
    chargan_optimizer *gopt = g_opt, *dopt = d_opt;
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_ADAM);
    /* The trainer adopts both: one optimizer serving both models would be
     * freed twice (and its state is sized for one model). */
    if (g_opt && g_opt == d_opt)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_new: g_opt and d_opt are the "
                       "same optimizer");
    /* A d_opt with nothing to optimize would be adopted and freed by the
     * trainer, while the caller, seeing no discriminator, may free it too. */
    if (d_opt && !discriminator)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_new: d_opt given without a "
                       "discriminator");
    /* A handle another trainer adopted (such as chargan_trainer_generator()
     * of one) would be freed by both. */
    const char *taken = generator->adopted                      ? "generator"
                        : discriminator && discriminator->adopted ? "discriminator"
                        : g_opt && g_opt->adopted                 ? "g_opt"
                        : d_opt && d_opt->adopted                 ? "d_opt"
                                                                  : NULL;
    if (taken)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_new: the %s already belongs to "
                       "another trainer", taken);
    if (!gopt && (st = chargan_optimizer_new(&oc, &gopt)) != CHARGAN_OK)
        return st;
    if (discriminator && !dopt && (st = chargan_optimizer_new(&oc, &dopt)) != CHARGAN_OK) {
        if (!g_opt)
            chargan_optimizer_free(gopt);
        return st;
    }
    st = trainer_create(NULL, cfg, generator, gopt, discriminator, dopt, out);
    if (st != CHARGAN_OK) {
        if (!g_opt)
            chargan_optimizer_free(gopt);
        if (!d_opt)
            chargan_optimizer_free(dopt);
    }
    return st;
}

void chargan_trainer_free(chargan_trainer *tr)
{
    if (!tr)
        return;
    trainer_buffers_free(tr);
    cg_dist_free(tr->dist);
    cg_packed_ids_free(&tr->ids);
    chargan_model_free(tr->gen);
    chargan_model_free(tr->disc);
    chargan_optimizer_free(tr->gopt);
    chargan_optimizer_free(tr->dopt);
    cg_free(tr);
}

const char *chargan_trainer_last_error(const chargan_trainer *tr)
{
    return tr ? tr->err.msg : "NULL trainer";
}

chargan_status chargan_trainer_get_config(const chargan_trainer *tr, chargan_trainer_config *cfg)
{
    if (!tr || !cfg)
        return cg_fail(tr ? (cg_error *)&tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_get_config: NULL argument");
    chargan_status st = cg_get_struct((cg_error *)&tr->err, cfg, &tr->cfg, sizeof *cfg,
                                      CONFIG_MIN_SIZE, "chargan_trainer_get_config");
    if (st == CHARGAN_OK)
        cfg->batch = cg_dist_global_batch(tr); /* the global batch, not this rank's share */
    return st;
}

chargan_model *chargan_trainer_generator(const chargan_trainer *tr)
{
    return tr ? tr->gen : NULL;
}

chargan_model *chargan_trainer_discriminator(const chargan_trainer *tr)
{
    return tr ? tr->disc : NULL;
}

chargan_optimizer *chargan_trainer_optimizer(const chargan_trainer *tr, chargan_model_kind which)
{
    if (!tr)
        return NULL;
    return which == CHARGAN_GENERATOR ? tr->gopt : which == CHARGAN_DISCRIMINATOR ? tr->dopt : NULL;
}

chargan_status chargan_trainer_set_progress(chargan_trainer *tr, chargan_progress_fn fn, void *user)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_set_progress: NULL trainer");
    tr->progress = fn;
    tr->progress_user = user;
    return CHARGAN_OK;
}

chargan_status chargan_trainer_global_step(const chargan_trainer *tr, uint64_t *step)
{
    if (!tr || !step)
        return cg_fail(tr ? (cg_error *)&tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_global_step: NULL argument");
    *step = tr->global_step;
    return CHARGAN_OK;
}

/* ------------------------------------------------------------------ corpus */

static size_t stream_train_ids(const chargan_trainer *tr, size_t n)
{
    return n - (size_t)((double)n * tr->cfg.val_fraction);
}

static chargan_status stream_check(chargan_trainer *tr, size_t n)
{
    size_t T = tr->cfg.seq_len, n_train = stream_train_ids(tr, n);
    if (n_train < T + 1)
        return cg_fail(&tr->err, CHARGAN_E_INVALID, "corpus too short: %zu training ids, a window "
                       "needs seq_len + 1 = %zu", n_train, T + 1);
    return CHARGAN_OK;
}

/* Replaces the corpus with *packed (checked ids; the trainer takes it): a
 * stream, or n / seq_len sequences of which the first n_train_seq train. */
static void install_corpus(chargan_trainer *tr, cg_packed_ids *packed, int kind,
                           size_t n_train_seq)
{
    cg_packed_ids_free(&tr->ids);
    tr->ids = *packed;
    tr->corpus_kind = kind;
    tr->val_nll = NAN; /* of the held-out part of another corpus */
    size_t n = packed->n;
    if (kind == CG_CORPUS_STREAM) {
        tr->n_train = stream_train_ids(tr, n);
    } else {
        tr->n_seq = n / tr->cfg.seq_len;
        tr->n_train_seq = n_train_seq;
    }
}

/* install_corpus of a packed copy of the n ids. */
static chargan_status set_corpus(chargan_trainer *tr, const int32_t *ids, size_t n, int kind,
                                 size_t n_train_seq)
{
    cg_packed_ids packed;
    if (!cg_packed_ids_init(&packed, ids, n))
        return cg_fail(&tr->err, CHARGAN_E_NOMEM, "out of memory storing %zu ids", n);
    install_corpus(tr, &packed, kind, n_train_seq);
    return CHARGAN_OK;
}

/* Ids a text corpus is encoded in at a time (256 kB of int32). */
enum { CORPUS_PIECE = 1 << 16 };

/* The characters of valid UTF-8 text: its bytes other than continuation
 * bytes (10xxxxxx).  Invalid text can have more ids than this. */
static size_t utf8_characters(const char *text, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)text[i] & 0xC0) != 0x80;
    return n;
}

/* Encodes text into *out through a buffer of CORPUS_PIECE ids, so that a
 * corpus costs its packed size (a byte a character, mostly) and never four
 * bytes an id besides; *known counts the ids other than CHARGAN_ID_UNKNOWN.
 * The ids get room for the text's characters, not its bytes (a third of
 * them for CJK text); only invalid UTF-8 read with the replace policy, whose
 * stray continuation bytes are ids of their own, can need more. */
static chargan_status encode_corpus(chargan_trainer *tr, chargan_tokenizer *tok, const char *text,
                                    size_t len, cg_packed_ids *out, size_t *known)
{
    /* one id per byte at most */
    int32_t *piece = cg_malloc((len < CORPUS_PIECE ? len : CORPUS_PIECE) * sizeof *piece);
    int32_t max_id = (int32_t)cg_tokenizer_vocab_size(tok) - 1;
    if (!piece || !cg_packed_ids_begin(out, utf8_characters(text, len), max_id)) {
        cg_free(piece);
        return cg_fail(&tr->err, CHARGAN_E_NOMEM, "out of memory storing a corpus of %zu bytes",
                       len);
    }
    *known = 0;
    for (size_t pos = 0; pos < len;) {
        size_t n;
        chargan_status st = cg_tokenizer_encode_some(tok, text, len, &pos, piece, CORPUS_PIECE, &n);
        if (st != CHARGAN_OK)
            st = cg_fail_from(&tr->err, st, "encoding the corpus: ");
        /* room for these n and, at most, one id per byte left */
        else if (out->n + n > out->cap && !cg_packed_ids_reserve(out, out->n + n + (len - pos)))
            st = cg_fail(&tr->err, CHARGAN_E_NOMEM, "out of memory storing a corpus of %zu bytes",
                         len);
        if (st != CHARGAN_OK) {
            cg_free(piece);
            cg_packed_ids_free(out);
            return st;
        }
        for (size_t i = 0; i < n; i++)
            *known += piece[i] != CHARGAN_ID_UNKNOWN;
        cg_packed_ids_append(out, piece, n);
    }
    cg_free(piece);
    cg_packed_ids_finish(out);
    return CHARGAN_OK;
}

chargan_status chargan_trainer_set_corpus_text(chargan_trainer *tr, const char *text, size_t len)
{
    if (!tr || (!text && len))
        return cg_fail(tr ? &tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_set_corpus_text: NULL argument");
    if (!text)
        text = ""; /* NULL, 0: the empty corpus */
    chargan_model *g = tr->gen;
    chargan_status st;
    /* A tokenizer fitted here is attached only once the corpus is accepted:
     * a failed call leaves the generator as it was. */
    chargan_tokenizer *fitted = NULL;
    if (!g->tok) {
        if ((st = chargan_tokenizer_new(NULL, &fitted)) != CHARGAN_OK)
            return cg_fail_from(&tr->err, st, "creating a tokenizer: ");
        if ((st = chargan_tokenizer_fit(fitted, text, len)) != CHARGAN_OK) {
            chargan_tokenizer_free(fitted);
            return cg_fail_from(&tr->err, st, "fitting a tokenizer on the corpus: ");
        }
        if (cg_tokenizer_vocab_size(fitted) > (uint32_t)g->V) {
            st = cg_fail(&tr->err, CHARGAN_E_INVALID, "fitting a tokenizer on the corpus: %u "
                         "ids, the generator's vocab_size is %d", cg_tokenizer_vocab_size(fitted),
                         g->V);
            chargan_tokenizer_free(fitted);
            return st;
        }
    }
    chargan_tokenizer *tok = fitted ? fitted : g->tok;
    cg_packed_ids packed;
    size_t known = 0;
    if ((st = encode_corpus(tr, tok, text, len, &packed, &known)) != CHARGAN_OK) {
        chargan_tokenizer_free(fitted);
        return st;
    }
    /* Text the tokenizer knows nothing of (another corpus than the one it
     * was fitted on, or binary data read with the replace policy) would train
     * the generator to predict only CHARGAN_ID_UNKNOWN. */
    size_t n = packed.n;
    if (n > 0 && known == 0)
        st = cg_fail(&tr->err, CHARGAN_E_INVALID, "the corpus has no character of the "
                     "tokenizer's vocabulary (all %zu ids would be CHARGAN_ID_UNKNOWN)", n);
    else
        st = stream_check(tr, n);
    if (st != CHARGAN_OK) {
        cg_packed_ids_free(&packed);
        chargan_tokenizer_free(fitted);
        return st;
    }
    install_corpus(tr, &packed, CG_CORPUS_STREAM, 0);
    if (fitted)
        cg_model_take_tokenizer(g, fitted); /* checked against g->V above; g had none */
    return CHARGAN_OK;
}

chargan_status chargan_trainer_set_corpus_ids(chargan_trainer *tr, const int32_t *ids, size_t n)
{
    if (!tr || (!ids && n))
        return cg_fail(tr ? &tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_set_corpus_ids: NULL argument");
    chargan_status st = cg_check_ids(&tr->err, ids, n, tr->gen->V);
    if (st == CHARGAN_OK)
        st = stream_check(tr, n); /* before the copy: ids may be NULL when n is 0 */
    if (st != CHARGAN_OK)
        return st;
    return set_corpus(tr, ids, n, CG_CORPUS_STREAM, 0);
}

chargan_status chargan_trainer_set_corpus_sequences(chargan_trainer *tr, const int32_t *ids,
                                                    size_t n_seq, size_t seq_len)
{
    if (!tr || !ids)
        return cg_fail(tr ? &tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_set_corpus_sequences: NULL argument");
    if (seq_len != tr->cfg.seq_len)
        return cg_fail(&tr->err, CHARGAN_E_INVALID, "sequences of length %zu, the trainer's "
                       "seq_len is %u", seq_len, tr->cfg.seq_len);
    if (n_seq > SIZE_MAX / (seq_len + 1))
        return cg_fail(&tr->err, CHARGAN_E_INVALID, "%zu sequences of %zu ids are more than "
                       "memory can address", n_seq, seq_len);
    size_t n_val = (size_t)((double)n_seq * tr->cfg.val_fraction);
    if (n_seq == 0 || n_seq - n_val == 0)
        return cg_fail(&tr->err, CHARGAN_E_INVALID, "%zu sequences leave none for training",
                       n_seq);
    size_t n = n_seq * seq_len;
    chargan_status st = cg_check_ids(&tr->err, ids, n, tr->gen->V);
    if (st != CHARGAN_OK)
        return st;
    return set_corpus(tr, ids, n, CG_CORPUS_SEQUENCES, n_seq - n_val);
}

static chargan_status need_corpus(chargan_trainer *tr, const char *fn)
{
    if (tr->corpus_kind == CG_CORPUS_NONE)
        return cg_fail(&tr->err, CHARGAN_E_STATE, "%s: no corpus (chargan_trainer_set_corpus_*)",
                       fn);
    return CHARGAN_OK;
}

/* Add-one-half (Krichevsky-Trofimov) smoothing: an id the training part
 * never holds, like the start id, gets about log(1 / (2 n)) rather than
 * -inf, and can still be learned if later data has it. */
#define OUTPUT_BIAS_PRIOR 0.5

chargan_status chargan_trainer_init_output_bias(chargan_trainer *tr)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_init_output_bias: NULL trainer");
    chargan_status st = need_corpus(tr, "chargan_trainer_init_output_bias");
    if (st != CHARGAN_OK)
        return st;
    chargan_model *g = tr->gen;
    const size_t V = (size_t)g->V;
    /* the training part: the first n_train ids of a stream, the first
     * n_train_seq sequences of a sequence corpus */
    const size_t n = tr->corpus_kind == CG_CORPUS_STREAM ? tr->n_train
                                                         : tr->n_train_seq * tr->cfg.seq_len;
    uint64_t *count = cg_calloc(V, sizeof *count);
    if (!count)
        return cg_fail(&tr->err, CHARGAN_E_NOMEM, "chargan_trainer_init_output_bias: out of "
                       "memory for %zu counts", V);
    int32_t chunk[1024];
    const size_t chunk_len = sizeof chunk / sizeof chunk[0];
    for (size_t first = 0; first < n; first += chunk_len) {
        size_t k = n - first < chunk_len ? n - first : chunk_len;
        cg_packed_ids_read(&tr->ids, first, k, chunk);
        for (size_t i = 0; i < k; i++)
            count[chunk[i]]++; /* ids were checked against V when the corpus was set */
    }
    const double total = (double)n + OUTPUT_BIAS_PRIOR * (double)V;
    for (size_t v = 0; v < V; v++)
        g->out_b[v] = (float)log(((double)count[v] + OUTPUT_BIAS_PRIOR) / total);
    cg_free(count);
    return CHARGAN_OK;
}

/* Sequence s as a window: the start id, then its seq_len ids. */
static void sequence_window(const chargan_trainer *tr, size_t s, int32_t *w)
{
    size_t T = tr->cfg.seq_len;
    w[0] = tr->gen->cfg.start_id;
    cg_packed_ids_read(&tr->ids, s * T, T, w + 1);
}

/* Under MPI every rank draws the whole global batch from the shared RNG and
 * keeps its own rows (dist.h); alone, first is 0 and the batch is global. */
void cg_trainer_draw_windows(chargan_trainer *tr)
{
    size_t B = tr->cfg.batch, T = tr->cfg.seq_len;
    size_t first = cg_dist_first_row(tr), global = cg_dist_global_batch(tr);
    for (size_t g = 0; g < global; g++) {
        bool mine = g >= first && g < first + B;
        int32_t *w = mine ? tr->windows + (g - first) * (T + 1) : NULL;
        if (tr->corpus_kind == CG_CORPUS_STREAM) {
            size_t start = (size_t)cg_rng_below(&tr->rng, tr->n_train - T);
            if (mine)
                cg_packed_ids_read(&tr->ids, start, T + 1, w);
        } else {
            size_t s = (size_t)cg_rng_below(&tr->rng, tr->n_train_seq);
            if (mine)
                sequence_window(tr, s, w);
        }
    }
}

const float *cg_trainer_draw_noise(chargan_trainer *tr)
{
    if (!tr->z)
        return NULL;
    size_t Z = (size_t)tr->gen->Z;
    size_t lo = cg_dist_first_row(tr) * Z, hi = lo + (size_t)tr->cfg.batch * Z;
    size_t n = (size_t)cg_dist_global_batch(tr) * Z;
    for (size_t i = 0; i < n; i++) {
        float x = cg_rng_normal(&tr->rng);
        if (i >= lo && i < hi)
            tr->z[i - lo] = x;
    }
    return tr->z;
}

void cg_trainer_seed_rows(chargan_trainer *tr)
{
    uint64_t key = cg_rng_next(&tr->rng);
    uint64_t first = cg_dist_first_row(tr);
    for (uint32_t b = 0; b < tr->cfg.batch; b++)
        cg_rng_seed_stream(&tr->work.row_rng[b], key, first + b);
}

/* With shards, every step runs on the replicas but the adversarial ones that
 * gan.c keeps unsharded and the mixed-in MLE term, and a full-batch
 * workspace on each model would only hold memory: about 22 MB at E=64,
 * H=256, B=32, T=64, as much as the replicas' together. */
bool cg_trainer_keeps_full_workspaces(const chargan_trainer *tr)
{
    return tr->shards.n <= 1 ||
           (tr->disc && (!cg_gan_sharded(tr) || tr->cfg.mle_weight > 0.0f));
}

chargan_status cg_trainer_full_workspaces(chargan_trainer *tr)
{
    int T = (int)tr->cfg.seq_len, B = (int)tr->cfg.batch;
    chargan_status st = cg_model_reserve(tr->gen, T, B);
    if (st == CHARGAN_OK && tr->disc)
        st = cg_model_reserve(tr->disc, T, B);
    return st == CHARGAN_OK ? st : cg_fail_from(&tr->err, st, "the training workspaces: ");
}

/* The models are the caller's handles too, and a public call on one
 * (chargan_model_nll, say) sizes its workspace for that call's shape: size it
 * back for ours before a step uses it (a no-op when it still fits). */
static chargan_status models_ready(chargan_trainer *tr)
{
    return cg_trainer_keeps_full_workspaces(tr) ? cg_trainer_full_workspaces(tr) : CHARGAN_OK;
}

/* What a step needs besides models_ready: the state of the optimizers it
 * updates (the generator's, the discriminator's), sized before it draws
 * anything, so that a step failing for memory changes nothing a checkpoint
 * records.  An evaluation needs none. */
static chargan_status steps_ready(chargan_trainer *tr, bool gen, bool disc)
{
    chargan_status st = models_ready(tr);
    if (st != CHARGAN_OK)
        return st;
    /* The counters stop at 2^53, the most a checkpoint holds: a file may
     * claim any count up to it, and a step must not write one past it. */
    const uint64_t d_add = disc ? (gen ? tr->cfg.d_steps : 1) : 0;
    if (tr->global_step + gen > CG_OPTIM_MAX_STEPS || tr->d_updates + d_add > CG_OPTIM_MAX_STEPS ||
        tr->gan.gan_steps + (gen && disc) > CG_OPTIM_MAX_STEPS)
        return cg_fail(&tr->err, CHARGAN_E_INVALID, "the step would count past 2^53, the most a "
                       "checkpoint holds (global_step %" PRIu64 ", d_updates %" PRIu64
                       ", gan_steps %" PRIu64 ")", tr->global_step, tr->d_updates,
                       tr->gan.gan_steps);
    if (gen)
        st = cg_optimizer_reserve(tr->gopt, tr->gen->n_weights);
    if (st == CHARGAN_OK && disc)
        st = cg_optimizer_reserve(tr->dopt, tr->disc->n_weights);
    return st == CHARGAN_OK ? st : cg_fail_from(&tr->err, st, "the optimizers: ");
}

/* ------------------------------------------------------------------ MLE */

/* Below this many parameters a pass over them (the replicas' sum, the
 * optimizer's update) is too short to share: one thread does it. */
#define PARALLEL_UPDATE_MIN (16 * CG_OPTIM_BLOCK)

/* m's gradients += those of replicas 1 .. n-1, in replica order, for
 * parameters [lo, hi). */
static void sum_grads_range(chargan_model *m, chargan_model *const *replicas, int n, size_t lo,
                            size_t hi)
{
    float *restrict dst = m->grads; /* replica 0's own (shares_grads) */
    for (int s = 1; s < n; s++) {
        const float *restrict src = replicas[s]->grads;
        for (size_t i = lo; i < hi; i++)
            dst[i] += src[i];
    }
}

typedef struct sum_job {
    chargan_model *m;
    chargan_model *const *replicas;
    int n;
} sum_job;

static void sum_grads_shard(void *ctx, int s)
{
    const sum_job *j = ctx;
    const size_t n = j->m->n_weights, k = (size_t)j->n;
    sum_grads_range(j->m, j->replicas, j->n, n * (size_t)s / k, n * (size_t)(s + 1) / k);
}

void cg_shards_sum_grads(cg_shards *sh, chargan_model *m, chargan_model *const *replicas)
{
    if (m->n_weights < PARALLEL_UPDATE_MIN) {
        sum_grads_range(m, replicas, sh->n, 0, m->n_weights);
        return;
    }
    sum_job j = {.m = m, .replicas = replicas, .n = sh->n};
    cg_pool_run(sh->pool, sum_grads_shard, &j);
}

/* One optimizer update shared by the shards' threads (cg_trainer_optimizer_step). */
typedef struct update_job {
    chargan_optimizer *opt;
    float *params, *grads;
    size_t n, blocks;
    double *sums;
    cg_optim_update u;
    int shards;
    unsigned bad[CG_MAX_SHARDS];
} update_job;

/* Shard s's parameters: whole blocks, [*lo, *hi). */
static void update_range(const update_job *j, int s, size_t *lo, size_t *hi)
{
    const size_t b0 = j->blocks * (size_t)s / (size_t)j->shards,
                 b1 = j->blocks * (size_t)(s + 1) / (size_t)j->shards;
    *lo = b0 * CG_OPTIM_BLOCK;
    *hi = b1 * CG_OPTIM_BLOCK < j->n ? b1 * CG_OPTIM_BLOCK : j->n;
}

static void block_sums_shard(void *ctx, int s)
{
    update_job *j = ctx;
    size_t lo, hi;
    update_range(j, s, &lo, &hi);
    for (size_t b = lo / CG_OPTIM_BLOCK; b * CG_OPTIM_BLOCK < hi; b++)
        j->sums[b] = cg_optimizer_block_sumsq(j->grads, j->n, b);
}

static void update_shard(void *ctx, int s)
{
    update_job *j = ctx;
    size_t lo, hi;
    update_range(j, s, &lo, &hi);
    j->bad[s] = lo < hi ? cg_optimizer_update_range(j->opt, &j->u, j->params, j->grads, lo, hi) : 0;
}

chargan_status cg_trainer_optimizer_step(chargan_trainer *tr, chargan_optimizer *opt,
                                         chargan_model *m, double *grad_norm)
{
    cg_shards *sh = &tr->shards;
    if (sh->n <= 1 || m->n_weights < PARALLEL_UPDATE_MIN)
        return cg_optimizer_step(opt, m->params, m->grads, m->n_weights, grad_norm);
    update_job j = {.opt = opt, .params = m->params, .grads = m->grads, .n = m->n_weights,
                    .blocks = cg_optimizer_blocks(m->n_weights), .sums = sh->block_sums,
                    .shards = sh->n};
    cg_pool_run(sh->pool, block_sums_shard, &j);
    double sumsq = 0.0; /* in block order, as cg_optimizer_step adds them */
    for (size_t b = 0; b < j.blocks; b++)
        sumsq += j.sums[b];
    chargan_status st = cg_optimizer_update_begin(opt, j.params, j.grads, j.n, sumsq, &j.u);
    if (st != CHARGAN_OK)
        return st;
    cg_pool_run(sh->pool, update_shard, &j);
    unsigned bad = 0;
    for (int s = 0; s < sh->n; s++)
        bad |= j.bad[s];
    return cg_optimizer_update_end(opt, &j.u, bad, grad_norm);
}

double cg_shards_loss_sum(const cg_shards *sh)
{
    double sum = 0.0;
    for (int s = 0; s < sh->n; s++)
        sum += sh->loss[s];
    return sum;
}

/* One shard's forward and backward on its rows of tr->windows. */
static void mle_shard(void *ctx, int s)
{
    chargan_trainer *tr = ctx;
    cg_shards *sh = &tr->shards;
    chargan_model *r = sh->gen[s];
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len, rows = sh->rows[s];
    const int32_t *w = tr->windows + (size_t)sh->first[s] * (T + 1);
    const float *z = sh->z ? sh->z + (size_t)sh->first[s] * r->Z : NULL;
    cg_windows_to_time_major(w, rows, T, sh->inputs[s], sh->targets[s]);
    cg_model_zero_grad(r);
    cg_model_forward(r, T, rows, sh->inputs[s], NULL, z, true);
    /* scaled by the whole batch, so the shard gradients sum to the batch's */
    sh->loss[s] = cg_softmax_xent(r->ws.logits, (size_t)T * rows, r->V, sh->targets[s], NULL,
                                  1.0f / ((float)B * (float)T), r->ws.logits);
    cg_model_backward(r, NULL);
}

/* The batch's loss (summed over tokens) and gradient in tr->gen->grads. */
static double mle_loss_and_grad(chargan_trainer *tr)
{
    chargan_model *g = tr->gen;
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    size_t n = (size_t)B * T;
    const float *z = cg_trainer_draw_noise(tr);
    cg_shards *sh = &tr->shards;
    if (sh->n <= 1) {
        cg_windows_to_time_major(tr->windows, B, T, tr->inputs, tr->targets);
        cg_model_zero_grad(g);
        cg_model_forward(g, T, B, tr->inputs, NULL, z, true);
        double loss = cg_softmax_xent(g->ws.logits, n, g->V, tr->targets, NULL, 1.0f / (float)n,
                                      g->ws.logits);
        cg_model_backward(g, NULL);
        return loss;
    }
    sh->z = z;
    if (g->cfg.recurrent_dropout > 0.0f)
        cg_model_draw_masks_into(g, sh->gen, sh->n, sh->rows);
    cg_pool_run(sh->pool, mle_shard, tr);
    cg_shards_sum_grads(sh, g, sh->gen);
    return cg_shards_loss_sum(sh);
}

/* One MLE update from tr->windows.  A non-finite loss or gradient updates nothing. */
static chargan_status mle_update(chargan_trainer *tr, float *loss_out)
{
    chargan_model *g = tr->gen;
    size_t n = (size_t)tr->cfg.batch * tr->cfg.seq_len;
    double loss = mle_loss_and_grad(tr);
    chargan_status st = cg_dist_allreduce_grads(tr, g, &loss, 1, "MLE step", tr->global_step + 1);
    if (st != CHARGAN_OK)
        return st;
    const float mean = (float)(loss / (double)n); /* finite as the float the caller gets too */
    if (!isfinite(mean))
        return cg_fail(&tr->err, CHARGAN_E_NUMERIC, "MLE step %llu: the loss is not finite",
                       (unsigned long long)tr->global_step + 1);
    st = cg_trainer_optimizer_step(tr, tr->gopt, g, NULL);
    if (st != CHARGAN_OK)
        return cg_fail(&tr->err, st, "MLE step %llu: %s", (unsigned long long)tr->global_step + 1,
                       tr->gopt->err.msg);
    tr->global_step++;
    if (loss_out)
        *loss_out = mean;
    return CHARGAN_OK;
}

chargan_status chargan_trainer_mle_step(chargan_trainer *tr, float *loss)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_mle_step: NULL trainer");
    chargan_status st = need_corpus(tr, "chargan_trainer_mle_step");
    if (st == CHARGAN_OK)
        st = steps_ready(tr, true, false);
    if (st != CHARGAN_OK)
        return st;
    cg_trainer_draw_windows(tr);
    return mle_update(tr, loss);
}

chargan_status chargan_trainer_mle_step_batch(chargan_trainer *tr, const int32_t *ids, float *loss)
{
    if (!tr || !ids)
        return cg_fail(tr ? &tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_mle_step_batch: NULL argument");
    /* Under MPI the ids are the global batch's, the same on every rank,
     * and this rank trains on its own rows of them. */
    size_t row = (size_t)tr->cfg.seq_len + 1;
    chargan_status st =
        cg_check_ids(&tr->err, ids, (size_t)cg_dist_global_batch(tr) * row, tr->gen->V);
    if (st == CHARGAN_OK)
        st = steps_ready(tr, true, false);
    if (st != CHARGAN_OK)
        return st;
    memcpy(tr->windows, ids + (size_t)cg_dist_first_row(tr) * row,
           (size_t)tr->cfg.batch * row * sizeof(int32_t));
    return mle_update(tr, loss);
}

/* ------------------------------------------------------------------ stop requests */

/* The flag must be a lock-free atomic for the request to be async-signal-safe. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "stop requests need a lock-free atomic_int");

chargan_status chargan_trainer_request_stop(chargan_trainer *tr)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_request_stop: NULL trainer");
    /* Only the flag: tr->err and everything else belong to the running call. */
    atomic_store(&tr->stop_request, 1);
    return CHARGAN_OK;
}

bool cg_trainer_stop_requested(chargan_trainer *tr)
{
    return atomic_load(&tr->stop_request) != 0;
}

void cg_trainer_begin_long_call(chargan_trainer *tr)
{
    tr->long_calls++;
}

chargan_status cg_trainer_end_long_call(chargan_trainer *tr, chargan_status st)
{
    if (--tr->long_calls == 0)
        atomic_store(&tr->stop_request, 0);
    return st;
}

/* ------------------------------------------------------------------ evaluation */

size_t cg_trainer_val_count(const chargan_trainer *tr)
{
    size_t T = tr->cfg.seq_len;
    if (tr->corpus_kind == CG_CORPUS_STREAM)
        return tr->ids.n > tr->n_train ? (tr->ids.n - tr->n_train - 1) / T : 0;
    return tr->n_seq - tr->n_train_seq;
}

size_t cg_trainer_val_windows(chargan_trainer *tr, size_t first, size_t n_windows)
{
    /* Non-overlapping held-out windows; a partial last batch is padded by
     * repeating its first window (callers weight those rows 0). */
    size_t B = tr->cfg.batch, T = tr->cfg.seq_len;
    size_t rows = n_windows - first < B ? n_windows - first : B;
    for (size_t b = 0; b < B; b++) {
        size_t w = first + (b < rows ? b : 0);
        int32_t *dst = tr->windows + b * (T + 1);
        if (tr->corpus_kind == CG_CORPUS_STREAM)
            cg_packed_ids_read(&tr->ids, tr->n_train + w * T, T + 1, dst);
        else
            sequence_window(tr, tr->n_train_seq + w, dst);
    }
    return rows;
}

/* Shard s's part of an evaluation batch: the summed NLL of its rows of
 * tr->windows that hold held-out windows.  Padding rows come last in the
 * batch, so a shard's counted rows are its first ones (time-major: the
 * first of each step's rows). */
static void eval_shard(void *ctx, int s)
{
    chargan_trainer *tr = ctx;
    cg_shards *sh = &tr->shards;
    chargan_model *r = sh->gen[s];
    int T = (int)tr->cfg.seq_len, rows = sh->rows[s];
    size_t first = (size_t)sh->first[s];
    size_t counted = sh->valid_rows > first ? sh->valid_rows - first : 0;
    counted = counted < (size_t)rows ? counted : (size_t)rows;
    sh->loss[s] = 0.0;
    if (counted == 0)
        return;
    cg_windows_to_time_major(tr->windows + first * (T + 1), rows, T, sh->inputs[s],
                             sh->targets[s]);
    cg_model_forward(r, T, rows, sh->inputs[s], NULL, NULL, false);
    for (int t = 0; t < T; t++)
        sh->loss[s] += cg_softmax_xent(r->ws.logits + (size_t)t * rows * r->V, counted, r->V,
                                       sh->targets[s] + (size_t)t * rows, NULL, 0.0f, NULL);
}

/* The summed NLL of the batch in tr->windows, whose first `rows` rows count. */
static double eval_batch(chargan_trainer *tr, size_t rows)
{
    chargan_model *g = tr->gen;
    size_t B = tr->cfg.batch, T = tr->cfg.seq_len;
    cg_shards *sh = &tr->shards;
    if (sh->n > 1) { /* on the replicas, whatever the models' own workspaces */
        sh->valid_rows = rows;
        cg_pool_run(sh->pool, eval_shard, tr);
        return cg_shards_loss_sum(sh);
    }
    for (size_t t = 0; t < T; t++)
        for (size_t b = 0; b < B; b++)
            tr->row_weights[t * B + b] = b < rows ? 1.0f : 0.0f;
    cg_windows_to_time_major(tr->windows, (int)B, (int)T, tr->inputs, tr->targets);
    cg_model_forward(g, (int)T, (int)B, tr->inputs, NULL, NULL, false);
    return cg_softmax_xent(g->ws.logits, B * T, g->V, tr->targets, tr->row_weights, 0.0f, NULL);
}

/* The validation NLL, or CHARGAN_E_CANCELLED (no message, the request left
 * for the caller to take) when a stop is requested before a batch. */
static chargan_status validate(chargan_trainer *tr, double *nll, double *bpc)
{
    chargan_status st = need_corpus(tr, "chargan_trainer_evaluate");
    if (st == CHARGAN_OK)
        st = models_ready(tr);
    if (st != CHARGAN_OK)
        return st;
    size_t B = tr->cfg.batch, T = tr->cfg.seq_len;
    size_t n_windows = cg_trainer_val_count(tr);
    if (n_windows == 0)
        return cg_fail(&tr->err, CHARGAN_E_STATE, "no held-out data: the validation part holds "
                       "less than one window (val_fraction %g)", (double)tr->cfg.val_fraction);
    double total = 0.0;
    for (size_t w0 = 0; w0 < n_windows; w0 += B) {
        if (cg_trainer_stop_requested(tr))
            return CHARGAN_E_CANCELLED;
        total += eval_batch(tr, cg_trainer_val_windows(tr, w0, n_windows));
    }
    double mean = total / ((double)n_windows * T);
    if (!isfinite(mean))
        return cg_fail(&tr->err, CHARGAN_E_NUMERIC, "validation NLL is not finite");
    *nll = mean;
    if (bpc)
        *bpc = mean / LN2;
    return CHARGAN_OK;
}

chargan_status chargan_trainer_evaluate(chargan_trainer *tr, double *nll, double *bpc)
{
    if (!tr || !nll)
        return cg_fail(tr ? &tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_evaluate: NULL argument");
    cg_trainer_begin_long_call(tr);
    chargan_status st = validate(tr, nll, bpc);
    if (st == CHARGAN_E_CANCELLED)
        cg_fail(&tr->err, st, "chargan_trainer_evaluate: stopped by chargan_trainer_request_stop");
    return cg_trainer_end_long_call(tr, st);
}

/* ------------------------------------------------------------------ phases with progress */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct phase_run {
    chargan_progress p;
    double t0, t_last;
    uint64_t step_last;
    double loss_sum, d_loss_sum, d_acc_sum;
    uint64_t n_loss, n_d;
} phase_run;

static void phase_init(phase_run *r, const chargan_trainer *tr, chargan_phase phase,
                       uint64_t total)
{
    memset(r, 0, sizeof *r);
    r->p.struct_size = sizeof r->p;
    r->p.phase = phase;
    r->p.total = total;
    r->p.global_step = tr->global_step;
    r->p.loss = r->p.d_loss = r->p.d_accuracy = NAN;
    r->p.val_nll = tr->val_nll; /* an earlier call's, until this one validates */
    r->p.val_bpc = tr->val_nll / LN2;
    r->t0 = r->t_last = now_s();
}

/* Fills r->p with the figures since the last report and starts the next interval. */
static void fill_report(chargan_trainer *tr, phase_run *r)
{
    double t = now_s();
    if (r->n_loss)
        r->p.loss = r->loss_sum / (double)r->n_loss;
    if (r->n_d) {
        r->p.d_loss = r->d_loss_sum / (double)r->n_d;
        r->p.d_accuracy = r->d_acc_sum / (double)r->n_d;
    }
    double dt = t - r->t_last;
    uint64_t tokens = (r->p.step - r->step_last) * cg_dist_global_batch(tr) * tr->cfg.seq_len;
    r->p.tokens_per_s = dt > 0 ? (double)tokens / dt : 0.0;
    r->p.elapsed_s = t - r->t0;
    r->p.global_step = tr->global_step;
    r->t_last = t;
    r->step_last = r->p.step;
    r->loss_sum = r->d_loss_sum = r->d_acc_sum = 0.0;
    r->n_loss = r->n_d = 0;
}

/* Before a phase ends on a stop request: the steps not yet reported are
 * reported (the callback's answer no longer matters). */
static void report_the_rest(chargan_trainer *tr, phase_run *r)
{
    if (tr->progress && r->p.step > r->step_last) {
        fill_report(tr, r);
        tr->progress(&r->p, tr->progress_user);
    }
}

/* A stop request, honoured at a step boundary outside MPI (where the ranks
 * vote at reports instead): the rest reported, then CHARGAN_E_CANCELLED. */
static chargan_status stop_point(chargan_trainer *tr, phase_run *r)
{
    if (cg_dist_active(tr) || !cg_trainer_stop_requested(tr))
        return CHARGAN_OK;
    report_the_rest(tr, r);
    return cg_fail(&tr->err, CHARGAN_E_CANCELLED, "stopped by chargan_trainer_request_stop %s "
                   "step %llu", r->p.step ? "after" : "before",
                   (unsigned long long)(r->p.step ? r->p.step : 1));
}

/* Reports if due (or forced); returns CHARGAN_E_CANCELLED if the callback
 * asks to stop or, under MPI, any rank's callback or stop request does. */
static chargan_status phase_report(chargan_trainer *tr, phase_run *r, bool force)
{
    uint64_t every = tr->cfg.report_every;
    bool due = force || r->p.step % every == 0;
    uint64_t val_every = tr->cfg.val_every;
    /* Without held-out data there is nothing to report, and no failure:
     * the call succeeds with its message unchanged.  A stop request cuts
     * the validation short and stops the call here (under MPI, at the
     * vote below or at a later report's). */
    if (r->p.phase != CHARGAN_PHASE_DISCRIMINATOR && cg_trainer_val_count(tr) > 0 &&
        ((val_every && r->p.step % val_every == 0) || (force && r->p.step > 0))) {
        double nll, bpc;
        chargan_status st = validate(tr, &nll, &bpc);
        if (st == CHARGAN_OK) {
            r->p.val_nll = tr->val_nll = nll;
            r->p.val_bpc = bpc;
        } else if (st == CHARGAN_E_CANCELLED && !cg_dist_active(tr)) {
            return stop_point(tr, r);
        }
    }
    /* Under MPI every rank takes part in the stop vote below, callback or not. */
    if (!due || (!tr->progress && !cg_dist_active(tr)))
        return CHARGAN_OK;
    fill_report(tr, r);
    int asked = tr->progress && tr->progress(&r->p, tr->progress_user) != 0;
    int requested = cg_dist_active(tr) && cg_trainer_stop_requested(tr);
    int stop = asked || requested;
    chargan_status st = cg_dist_agree_stop(tr, &stop, tr->global_step);
    if (st != CHARGAN_OK)
        return st;
    if (!stop)
        return CHARGAN_OK;
    return cg_fail(&tr->err, CHARGAN_E_CANCELLED, "stopped by %s after step %llu",
                   asked ? "the progress callback" : requested ? "chargan_trainer_request_stop"
                                                               : "another rank",
                   (unsigned long long)r->p.step);
}

/* One step of a phase, its figures added to r. */
typedef chargan_status (*phase_step_fn)(chargan_trainer *tr, phase_run *r);

/* Runs steps of a phase with progress reports, honouring stop requests. */
static chargan_status run_phase(chargan_trainer *tr, chargan_phase phase, uint64_t steps,
                                phase_step_fn step)
{
    phase_run r;
    phase_init(&r, tr, phase, steps);
    chargan_status st = CHARGAN_OK;
    while (st == CHARGAN_OK && r.p.step < steps) {
        if ((st = stop_point(tr, &r)) != CHARGAN_OK)
            break;
        if ((st = step(tr, &r)) != CHARGAN_OK) {
            if (st == CHARGAN_E_CANCELLED) /* inside a step: a REINFORCE round's rollouts */
                report_the_rest(tr, &r);
            break;
        }
        r.p.step++;
        st = phase_report(tr, &r, r.p.step == steps);
    }
    return st;
}

static chargan_status mle_phase_step(chargan_trainer *tr, phase_run *r)
{
    float loss;
    chargan_status st = chargan_trainer_mle_step(tr, &loss);
    if (st == CHARGAN_OK) {
        r->loss_sum += loss;
        r->n_loss++;
    }
    return st;
}

chargan_status chargan_trainer_pretrain_generator(chargan_trainer *tr, uint64_t steps)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_pretrain_generator: NULL trainer");
    cg_trainer_begin_long_call(tr);
    chargan_status st = need_corpus(tr, "chargan_trainer_pretrain_generator");
    if (st == CHARGAN_OK)
        st = run_phase(tr, CHARGAN_PHASE_MLE, steps, mle_phase_step);
    return cg_trainer_end_long_call(tr, st);
}

/* What a discriminator step needs: a discriminator and a corpus (fn names
 * the call in the message).  The phases check it before their first step,
 * so that asking for none fails as asking for some would. */
static chargan_status can_d_step(chargan_trainer *tr, const char *fn)
{
    if (!tr->disc)
        return cg_fail(&tr->err, CHARGAN_E_STATE, "%s: no discriminator", fn);
    return need_corpus(tr, fn);
}

/* The same for an adversarial round: an estimator too. */
static chargan_status can_gan_step(chargan_trainer *tr, const char *fn)
{
    if (tr->cfg.estimator == CHARGAN_GAN_NONE || !tr->disc)
        return cg_fail(&tr->err, CHARGAN_E_STATE, "%s: no GAN estimator configured (trainer "
                       "config 'estimator') or no discriminator", fn);
    return need_corpus(tr, fn);
}

chargan_status chargan_trainer_d_step(chargan_trainer *tr, float *loss, float *accuracy)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_d_step: NULL trainer");
    chargan_status st = can_d_step(tr, "chargan_trainer_d_step");
    if (st == CHARGAN_OK)
        st = steps_ready(tr, false, true);
    if (st != CHARGAN_OK)
        return st;
    return cg_gan_d_step(tr, loss, accuracy);
}

static chargan_status d_phase_step(chargan_trainer *tr, phase_run *r)
{
    float loss, acc;
    chargan_status st = chargan_trainer_d_step(tr, &loss, &acc);
    if (st == CHARGAN_OK) {
        r->d_loss_sum += loss;
        r->d_acc_sum += acc;
        r->n_d++;
    }
    return st;
}

chargan_status chargan_trainer_pretrain_discriminator(chargan_trainer *tr, uint64_t steps)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_pretrain_discriminator: NULL "
                       "trainer");
    cg_trainer_begin_long_call(tr);
    chargan_status st = can_d_step(tr, "chargan_trainer_pretrain_discriminator");
    if (st == CHARGAN_OK)
        st = run_phase(tr, CHARGAN_PHASE_DISCRIMINATOR, steps, d_phase_step);
    return cg_trainer_end_long_call(tr, st);
}

chargan_status chargan_trainer_gan_step(chargan_trainer *tr, float *g_loss, float *d_loss)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_gan_step: NULL trainer");
    chargan_status st = can_gan_step(tr, "chargan_trainer_gan_step");
    if (st == CHARGAN_OK)
        st = steps_ready(tr, true, true);
    if (st != CHARGAN_OK)
        return st;
    /* A round's generator step can fail after its discriminator steps gave
     * their loss: outputs are written only on success. */
    float g, d;
    st = cg_gan_step(tr, &g, &d);
    if (st == CHARGAN_OK) {
        if (g_loss)
            *g_loss = g;
        if (d_loss)
            *d_loss = d;
    }
    return st;
}

static chargan_status gan_phase_step(chargan_trainer *tr, phase_run *r)
{
    float g_loss, d_loss;
    chargan_status st = chargan_trainer_gan_step(tr, &g_loss, &d_loss);
    if (st == CHARGAN_OK) {
        r->loss_sum += g_loss;
        r->n_loss++;
        r->d_loss_sum += d_loss;
        r->d_acc_sum += tr->d_last_accuracy; /* the round's last discriminator update */
        r->n_d++;
    }
    return st;
}

chargan_status chargan_trainer_adversarial(chargan_trainer *tr, uint64_t steps)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_adversarial: NULL trainer");
    cg_trainer_begin_long_call(tr);
    chargan_status st = can_gan_step(tr, "chargan_trainer_adversarial");
    if (st == CHARGAN_OK)
        st = run_phase(tr, CHARGAN_PHASE_ADVERSARIAL, steps, gan_phase_step);
    return cg_trainer_end_long_call(tr, st);
}

/* ------------------------------------------------------------------ checkpoints */

static void write_trainer_section(const chargan_trainer *tr, cg_writer *w)
{
    const chargan_trainer_config *c = &tr->cfg;
    cg_put_u32(w, cg_dist_global_batch(tr));
    cg_put_u32(w, c->seq_len);
    cg_put_f32(w, c->val_fraction);
    cg_put_u64(w, c->seed);
    cg_put_u32(w, c->threads);
    cg_put_u32(w, c->report_every);
    cg_put_u32(w, c->val_every);
    cg_put_u32(w, (uint32_t)c->estimator);
    cg_put_u32(w, c->d_steps);
    cg_put_f32(w, c->gamma);
    cg_put_f32(w, c->baseline_decay);
    cg_put_u32(w, c->rollouts);
    cg_put_f32(w, c->mle_weight);
    cg_put_f32(w, c->beta_max);
    cg_put_u32(w, (uint32_t)c->anneal);
    cg_put_u32(w, c->anneal_steps);
    cg_put_u32(w, (uint32_t)c->gan_loss);
    for (int i = 0; i < 4; i++)
        cg_put_u64(w, tr->rng.s[i]);
    cg_put_u64(w, tr->global_step);
    cg_put_u64(w, tr->d_updates);
    cg_put_u64(w, tr->gan.gan_steps);
    cg_put_u32(w, tr->gan.baseline_set);
    cg_put_f32_array(w, tr->gan.baseline, c->seq_len);
    /* The fields added after the first layout, written only when one of
     * them is not its default: a library that predates them then reads the
     * file, and one that cannot follow them refuses the stray bytes. */
    if (c->beta_start != 1.0f || c->gumbel_feed != CHARGAN_FEED_HARD) {
        cg_put_f32(w, c->beta_start);
        cg_put_u32(w, (uint32_t)c->gumbel_feed);
    }
}

typedef struct trainer_state {
    chargan_trainer_config cfg;
    cg_rng rng;
    uint64_t global_step, d_updates, gan_steps;
    uint32_t baseline_set;
    const uint8_t *baseline; /* seq_len little-endian floats, read after creation */
} trainer_state;

static chargan_status read_trainer_section(cg_reader *r, cg_error *err, trainer_state *s)
{
    chargan_trainer_config *c = &s->cfg;
    chargan_trainer_config_init(c);
    uint32_t estimator, anneal, gan_loss;
    bool ok = cg_get_u32(r, &c->batch) && cg_get_u32(r, &c->seq_len) &&
              cg_get_f32(r, &c->val_fraction) && cg_get_u64(r, &c->seed) &&
              cg_get_u32(r, &c->threads) && cg_get_u32(r, &c->report_every) &&
              cg_get_u32(r, &c->val_every) && cg_get_u32(r, &estimator) &&
              cg_get_u32(r, &c->d_steps) && cg_get_f32(r, &c->gamma) &&
              cg_get_f32(r, &c->baseline_decay) && cg_get_u32(r, &c->rollouts) &&
              cg_get_f32(r, &c->mle_weight) && cg_get_f32(r, &c->beta_max) &&
              cg_get_u32(r, &anneal) && cg_get_u32(r, &c->anneal_steps) &&
              cg_get_u32(r, &gan_loss);
    for (int i = 0; ok && i < 4; i++)
        ok = cg_get_u64(r, &s->rng.s[i]);
    ok = ok && cg_get_u64(r, &s->global_step) && cg_get_u64(r, &s->d_updates) &&
         cg_get_u64(r, &s->gan_steps) && cg_get_u32(r, &s->baseline_set);
    if (!ok)
        return cg_fail(err, CHARGAN_E_FORMAT, "trainer section truncated at offset %zu", r->pos);
    c->estimator = (int32_t)estimator;
    c->anneal = (int32_t)anneal;
    c->gan_loss = (int32_t)gan_loss;
    /* The fields added after the first layout follow the baseline when one
     * of them is not its default; they are checked with the rest. */
    size_t baseline_bytes = (size_t)c->seq_len * 4;
    bool has_tail = cg_reader_left(r) == baseline_bytes + TRAINER_TAIL_BYTES;
    if (has_tail) { /* read ahead on a copy: the baseline is taken after the check */
        cg_reader ahead = *r;
        const uint8_t *skipped;
        uint32_t feed;
        cg_get_view(&ahead, &skipped, baseline_bytes);
        cg_get_f32(&ahead, &c->beta_start);
        cg_get_u32(&ahead, &feed);
        c->gumbel_feed = (int32_t)feed;
    }
    if (config_check(err, c) != CHARGAN_OK)
        return cg_fail_from(err, CHARGAN_E_FORMAT, "trainer section: ");
    if (!cg_get_view(r, &s->baseline, baseline_bytes) ||
        cg_reader_left(r) != (has_tail ? TRAINER_TAIL_BYTES : 0))
        return cg_fail(err, CHARGAN_E_FORMAT, "trainer section: baseline of %u floats truncated "
                       "or followed by stray bytes", c->seq_len);
    /* The baseline enters every REINFORCE advantage: a non-finite value
     * would poison the generator at the first adversarial step. */
    if (s->baseline_set > 1)
        return cg_fail(err, CHARGAN_E_FORMAT, "trainer section: baseline_set %u, expected 0 or 1",
                       s->baseline_set);
    /* Counters that no run reaches, and that a step would wrap or that a
     * double (the CLI's logs, a JSON reader) would round. */
    const uint64_t counters[3] = {s->global_step, s->d_updates, s->gan_steps};
    static const char *const counter_names[3] = {"global_step", "d_updates", "gan_steps"};
    for (int i = 0; i < 3; i++)
        if (counters[i] > CG_OPTIM_MAX_STEPS)
            return cg_fail(err, CHARGAN_E_FORMAT, "trainer section: %s is %" PRIu64
                           ", more than 2^53", counter_names[i], counters[i]);
    if (!cg_rng_state_valid(&s->rng))
        return cg_fail(err, CHARGAN_E_FORMAT, "trainer section: the RNG state (byte 72) is all "
                       "zero, which no generator reaches");
    cg_reader br;
    cg_reader_init(&br, s->baseline, (size_t)c->seq_len * 4);
    for (uint32_t t = 0; t < c->seq_len; t++) {
        float v;
        cg_get_f32(&br, &v);
        if (!isfinite(v))
            return cg_fail(err, CHARGAN_E_FORMAT, "trainer section: baseline[%u] is not finite", t);
    }
    return CHARGAN_OK;
}

static bool baseline_finite(const chargan_trainer *tr)
{
    for (uint32_t t = 0; t < tr->cfg.seq_len; t++)
        if (!isfinite(tr->gan.baseline[t]))
            return false;
    return true;
}

chargan_status chargan_trainer_save(chargan_trainer *tr, const char *path)
{
    if (!tr || !path)
        return cg_fail(tr ? &tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_save: NULL argument");
    /* Under MPI the ranks hold the same state and rank 0 alone writes it. */
    if (!cg_dist_writes_files(tr))
        return CHARGAN_OK;
    if (!cg_model_params_finite(tr->gen) || (tr->disc && !cg_model_params_finite(tr->disc)))
        return cg_fail(&tr->err, CHARGAN_E_NUMERIC, "refusing to save '%s' at step %llu: "
                       "non-finite parameters", path, (unsigned long long)tr->global_step);
    /* The loader rejects a non-finite optimizer state or baseline: never
     * write one. */
    if (!cg_optimizer_state_finite(tr->gopt) || (tr->dopt && !cg_optimizer_state_finite(tr->dopt)))
        return cg_fail(&tr->err, CHARGAN_E_NUMERIC, "refusing to save '%s' at step %llu: "
                       "non-finite optimizer state", path, (unsigned long long)tr->global_step);
    if (!baseline_finite(tr))
        return cg_fail(&tr->err, CHARGAN_E_NUMERIC, "refusing to save '%s' at step %llu: "
                       "non-finite REINFORCE baseline", path, (unsigned long long)tr->global_step);
    cg_ckpt_writer cw;
    cg_ckpt_begin(&cw);
    if (tr->gen->tok) {
        void *buf;
        size_t size;
        chargan_status st = chargan_tokenizer_save_buffer(tr->gen->tok, &buf, &size);
        if (st != CHARGAN_OK) {
            cg_writer_free(&cw.w);
            return cg_fail_from(&tr->err, st, "saving the tokenizer: ");
        }
        cg_ckpt_section_begin(&cw, CG_SEC_TOKENIZER);
        cg_put_bytes(&cw.w, buf, size);
        cg_ckpt_section_end(&cw);
        chargan_free(buf);
    }
    cg_ckpt_section_begin(&cw, CG_SEC_GENERATOR);
    cg_model_write(tr->gen, &cw.w);
    cg_ckpt_section_end(&cw);
    cg_ckpt_section_begin(&cw, CG_SEC_GEN_OPTIMIZER);
    cg_optimizer_write(tr->gopt, &cw.w);
    cg_ckpt_section_end(&cw);
    if (tr->disc) {
        cg_ckpt_section_begin(&cw, CG_SEC_DISCRIMINATOR);
        cg_model_write(tr->disc, &cw.w);
        cg_ckpt_section_end(&cw);
        cg_ckpt_section_begin(&cw, CG_SEC_DISC_OPTIMIZER);
        cg_optimizer_write(tr->dopt, &cw.w);
        cg_ckpt_section_end(&cw);
    }
    cg_ckpt_section_begin(&cw, CG_SEC_TRAINER);
    write_trainer_section(tr, &cw.w);
    cg_ckpt_section_end(&cw);
    return cg_ckpt_finish(&cw, &tr->err, path);
}

static chargan_status read_optimizer(const cg_ckpt_file *f, uint32_t tag, const char *path,
                                     size_t n_weights, chargan_optimizer **out)
{
    const cg_ckpt_section *s = cg_ckpt_find(f, tag);
    char name[12];
    cg_ckpt_tag_text(tag, name);
    if (!s)
        return cg_fail(NULL, CHARGAN_E_FORMAT, "%s: optimizer section '%s' missing", path, name);
    cg_reader r;
    cg_reader_init(&r, s->payload, s->length);
    chargan_status st = cg_optimizer_read(&r, n_weights, NULL, out);
    if (st != CHARGAN_OK)
        return cg_fail(NULL, st, "%s: optimizer section '%s': %s", path, name,
                       cg_thread_error());
    if (cg_reader_left(&r) != 0) {
        /* *out is the caller's cleanup pointer: clear it, or it is freed twice */
        chargan_optimizer_free(*out);
        *out = NULL;
        return cg_fail(NULL, CHARGAN_E_FORMAT, "%s: stray bytes after optimizer section '%s'",
                       path, name);
    }
    return CHARGAN_OK;
}

chargan_status chargan_trainer_load(const char *path, chargan_trainer **out)
{
    if (!path || !out)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_load: NULL argument");
    cg_ckpt_file f;
    chargan_status st = cg_ckpt_open(NULL, path, &f);
    if (st != CHARGAN_OK)
        return st;
    chargan_model *gen = NULL, *disc = NULL;
    chargan_optimizer *gopt = NULL, *dopt = NULL;
    chargan_trainer *tr = NULL;
    trainer_state ts;
    const cg_ckpt_section *s = cg_ckpt_find(&f, CG_SEC_TRAINER);
    if (!s) {
        st = cg_fail(NULL, CHARGAN_E_NOT_FOUND, "%s: not a trainer checkpoint (no trainer "
                     "section; a model file loads with chargan_model_load)", path);
        goto fail;
    }
    cg_reader r;
    cg_reader_init(&r, s->payload, s->length);
    if ((st = read_trainer_section(&r, NULL, &ts)) != CHARGAN_OK) {
        st = cg_fail(NULL, st, "%s: %s", path, cg_thread_error());
        goto fail;
    }
    if ((st = cg_ckpt_read_model(NULL, &f, path, CHARGAN_GENERATOR, &gen)) != CHARGAN_OK)
        goto fail;
    if ((st = read_optimizer(&f, CG_SEC_GEN_OPTIMIZER, path, gen->n_weights, &gopt)) != CHARGAN_OK)
        goto fail;
    if (cg_ckpt_find(&f, CG_SEC_DISCRIMINATOR)) {
        if ((st = cg_ckpt_read_model(NULL, &f, path, CHARGAN_DISCRIMINATOR, &disc)) != CHARGAN_OK)
            goto fail;
        if ((st = read_optimizer(&f, CG_SEC_DISC_OPTIMIZER, path, disc->n_weights, &dopt)) !=
            CHARGAN_OK)
            goto fail;
    } else if (cg_ckpt_find(&f, CG_SEC_DISC_OPTIMIZER)) {
        /* read by nobody, and lost at the next save: the file is not what its writer meant */
        st = cg_fail(NULL, CHARGAN_E_FORMAT, "%s: optimizer section 'DOPT' without the "
                     "discriminator 'DMOD' it belongs to", path);
        goto fail;
    }
    if ((st = check_pair(NULL, gen, disc, &ts.cfg)) != CHARGAN_OK) {
        st = cg_fail(NULL, CHARGAN_E_FORMAT, "%s: %s", path, cg_thread_error());
        goto fail;
    }
    if ((st = trainer_create(NULL, &ts.cfg, gen, gopt, disc, dopt, &tr)) != CHARGAN_OK)
        goto fail;
    tr->rng = ts.rng;
    tr->global_step = ts.global_step;
    tr->d_updates = ts.d_updates;
    tr->gan.gan_steps = ts.gan_steps;
    tr->gan.baseline_set = ts.baseline_set;
    cg_reader br;
    cg_reader_init(&br, ts.baseline, (size_t)ts.cfg.seq_len * 4);
    cg_get_f32_array(&br, tr->gan.baseline, ts.cfg.seq_len);
    cg_ckpt_close(&f);
    *out = tr;
    return CHARGAN_OK;
fail:
    chargan_model_free(gen);
    chargan_model_free(disc);
    chargan_optimizer_free(gopt);
    chargan_optimizer_free(dopt);
    cg_ckpt_close(&f);
    return st;
}
