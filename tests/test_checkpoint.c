/* test_checkpoint.c - checkpoint files: model and trainer round trips,
 * bitwise-exact resumption (MLE, REINFORCE, Gumbel), a file cut at every
 * offset, every single-bit flip, hand-crafted hostile files, refusing
 * non-finite parameters, atomic saves and allocation failures. */
#define _POSIX_C_SOURCE 200809L
#include "test_common.h"
#include "internal.h"
#include "checkpoint.h"
#include "model.h"
#include "optim.h"
#include "tokenizer.h"
#include "trainer.h"

#include <errno.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

/* Check's ck_assert_* records its location with a write() on every call;
 * the loops below run ~10^5 times, so they test with this and abort only on
 * failure. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static const char *tmp_path(const char *name)
{
    static char path[4][512];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(path[slot], sizeof path[slot], "%s/%s", cg_test_tmpdir(), name);
    return path[slot];
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    /* A fresh inode each time: ext4 flushes a file truncated and rewritten
     * in place on close (auto_da_alloc), which made the every-offset and
     * every-bit tests thirty times slower. */
    unlink(path);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot create %s", path);
    bool ok = fwrite(data, 1, n, f) == n;
    CHECK(fclose(f) == 0 && ok, "cannot write %s", path);
}

/* Files in the test directory whose name holds ".tmp-" (left-over temporaries). */
static int count_temporaries(void)
{
    DIR *d = opendir(cg_test_tmpdir());
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

/* Unchecked fixture (runs in the parent, before the tests fork): the test
 * directory exists for the test case and is emptied and removed after it. */
static void tmpdir_setup(void)
{
    mkdir(cg_test_tmpdir(), 0700); /* again after a previous case removed it */
}

static void tmpdir_teardown(void)
{
    DIR *d = opendir(cg_test_tmpdir());
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", cg_test_tmpdir(), e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(cg_test_tmpdir());
}

static void assert_contains(const char *haystack, const char *needle)
{
    CHECK(strstr(haystack, needle) != NULL, "message \"%s\" lacks \"%s\"", haystack, needle);
}

/* A small corpus: a few sentences repeated with variations, ~3 KB. */
static const char *corpus(size_t *len)
{
    static char buf[4096];
    static size_t n;
    if (!n) {
        static const char *const lines[] = {
            "shall i compare thee to a summer's day? ",
            "thou art more lovely and more temperate. ",
            "rough winds do shake the darling buds of may, ",
            "and summer's lease hath all too short a date.\n",
        };
        for (int rep = 0; n + 64 < sizeof buf; rep++) {
            const char *s = lines[(rep * 3 + rep / 4) % 4];
            size_t k = strlen(s);
            if (n + k >= sizeof buf)
                break;
            memcpy(buf + n, s, k);
            n += k;
        }
        buf[n] = 0;
    }
    *len = n;
    return buf;
}

static chargan_tokenizer *make_tok(const char *text, size_t len)
{
    chargan_tokenizer *tok;
    ck_assert_int_eq(chargan_tokenizer_new(NULL, &tok), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, len), CHARGAN_OK);
    return tok;
}

typedef struct model_shape {
    uint32_t V, E, H, L, Z;
    float dropout;
    uint64_t seed;
} model_shape;

static chargan_model *make_model(chargan_model_kind kind, model_shape s)
{
    chargan_model_config c;
    chargan_model_config_init(&c, kind);
    c.vocab_size = s.V;
    c.embed_dim = s.E;
    c.hidden_dim = s.H;
    c.num_layers = s.L;
    c.noise_dim = kind == CHARGAN_GENERATOR ? s.Z : 0;
    c.recurrent_dropout = s.dropout;
    c.seed = s.seed;
    chargan_model *m;
    ck_assert_int_eq(chargan_model_new(&c, &m), CHARGAN_OK);
    return m;
}

/* All parameters through the public API, concatenated in tensor order. */
static float *params_of(const chargan_model *m, size_t *n_out)
{
    size_t n_tensors, total;
    ck_assert_int_eq(chargan_model_num_params(m, &n_tensors), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_num_weights(m, &total), CHARGAN_OK);
    float *all = malloc(total * sizeof(float));
    ck_assert_ptr_nonnull(all);
    size_t at = 0;
    for (size_t i = 0; i < n_tensors; i++) {
        size_t numel;
        ck_assert_int_eq(chargan_model_param_info(m, i, NULL, NULL, NULL, &numel), CHARGAN_OK);
        ck_assert_int_eq(chargan_model_param_get(m, i, all + at, numel), CHARGAN_OK);
        at += numel;
    }
    ck_assert_uint_eq(at, total);
    *n_out = total;
    return all;
}

static void assert_same_params(const chargan_model *a, const chargan_model *b)
{
    size_t na, nb;
    float *pa = params_of(a, &na), *pb = params_of(b, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(pa, pb, na * sizeof(float)) == 0, "parameters differ");
    free(pa);
    free(pb);
}

static void assert_same_config(const chargan_model *a, const chargan_model *b)
{
    chargan_model_config ca, cb;
    ca.struct_size = cb.struct_size = sizeof ca;
    ck_assert_int_eq(chargan_model_get_config(a, &ca), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_get_config(b, &cb), CHARGAN_OK);
    ck_assert_int_eq(ca.kind, cb.kind);
    ck_assert_uint_eq(ca.vocab_size, cb.vocab_size);
    ck_assert_uint_eq(ca.embed_dim, cb.embed_dim);
    ck_assert_uint_eq(ca.hidden_dim, cb.hidden_dim);
    ck_assert_uint_eq(ca.num_layers, cb.num_layers);
    ck_assert_uint_eq(ca.noise_dim, cb.noise_dim);
    ck_assert_int_eq(ca.start_id, cb.start_id);
    ck_assert(memcmp(&ca.forget_bias, &cb.forget_bias, sizeof(float)) == 0);
    ck_assert(memcmp(&ca.recurrent_dropout, &cb.recurrent_dropout, sizeof(float)) == 0);
    ck_assert(memcmp(&ca.init_scale, &cb.init_scale, sizeof(float)) == 0);
    ck_assert_uint_eq(ca.seed, cb.seed);
}

/* Both NULL, or both present and serialising to the same bytes. */
static void assert_same_tokenizer(const chargan_tokenizer *a, const chargan_tokenizer *b)
{
    ck_assert((a == NULL) == (b == NULL));
    if (!a)
        return;
    void *ba, *bb;
    size_t na, nb;
    ck_assert_int_eq(chargan_tokenizer_save_buffer(a, &ba, &na), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_save_buffer(b, &bb, &nb), CHARGAN_OK);
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(ba, bb, na) == 0);
    chargan_free(ba);
    chargan_free(bb);
}

static void assert_same_model(const chargan_model *a, const chargan_model *b)
{
    assert_same_config(a, b);
    assert_same_params(a, b);
    assert_same_tokenizer(chargan_model_tokenizer(a), chargan_model_tokenizer(b));
    /* the dropout RNG travels too (internal: no public accessor) */
    ck_assert(memcmp(&a->rng, &b->rng, sizeof a->rng) == 0);
}

static void assert_same_file(const char *p, const char *q)
{
    size_t np, nq;
    char *a = cg_test_read_file(p, &np), *b = cg_test_read_file(q, &nq);
    ck_assert_uint_eq(np, nq);
    ck_assert_msg(memcmp(a, b, np) == 0, "%s and %s differ", p, q);
    free(a);
    free(b);
}

/* A generator with a tokenizer fitted on the corpus: noise, two layers and
 * recurrent dropout, so every piece of state matters on resumption. */
static chargan_model *corpus_generator(model_shape s)
{
    size_t len;
    const char *text = corpus(&len);
    chargan_tokenizer *tok = make_tok(text, len);
    ck_assert_int_eq(chargan_tokenizer_vocab_size(tok, &s.V), CHARGAN_OK);
    chargan_model *g = make_model(CHARGAN_GENERATOR, s);
    ck_assert_int_eq(chargan_model_set_tokenizer(g, tok), CHARGAN_OK);
    chargan_tokenizer_free(tok);
    return g;
}

static const model_shape small_gen = {0, 8, 12, 2, 3, 0.2f, 11};
static const model_shape small_disc = {0, 6, 10, 1, 0, 0.1f, 12};
/* For the every-offset and every-bit tests: a few hundred bytes per model. */
static const model_shape tiny_gen = {0, 2, 3, 1, 2, 0.2f, 21};
static const model_shape tiny_disc = {0, 2, 3, 1, 0, 0.0f, 22};

/* A trainer on the corpus.  estimator NONE gives an MLE trainer without a
 * discriminator. */
static chargan_trainer *corpus_trainer(int estimator, uint32_t rollouts, model_shape gs,
                                       model_shape ds)
{
    chargan_model *g = corpus_generator(gs), *d = NULL;
    if (estimator != CHARGAN_GAN_NONE) {
        ds.V = g->cfg.vocab_size;
        d = make_model(CHARGAN_DISCRIMINATOR, ds);
    }
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = 4;
    tc.seq_len = 10;
    tc.seed = 5;
    tc.estimator = estimator;
    tc.rollouts = rollouts;
    tc.d_steps = 2;
    if (estimator == CHARGAN_GAN_GUMBEL) {
        tc.beta_start = 0.5f; /* stored after the baseline: not the defaults */
        tc.gumbel_feed = CHARGAN_FEED_SOFT;
        tc.beta_max = 8.0f;
        tc.anneal_steps = 6;
        tc.gan_loss = CHARGAN_LOSS_RELATIVISTIC;
        tc.mle_weight = 0.5f;
    }
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_ADAM);
    oc.lr = 1e-2f;
    oc.clip_norm = 5.0f;
    chargan_optimizer *go, *dopt = NULL;
    ck_assert_int_eq(chargan_optimizer_new(&oc, &go), CHARGAN_OK);
    if (d) {
        /* RMSprop with momentum for the discriminator: both state arrays */
        chargan_optimizer_config_init(&oc, CHARGAN_RMSPROP);
        oc.momentum = 0.5f;
        oc.lr = 3e-3f;
        ck_assert_int_eq(chargan_optimizer_new(&oc, &dopt), CHARGAN_OK);
    }
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, g, go, d, dopt, &tr), CHARGAN_OK);
    size_t len;
    const char *text = corpus(&len);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, len), CHARGAN_OK);
    return tr;
}

/* Steps of the kind the trainer is for; GAN trainers mix MLE, D and GAN steps
 * so every counter and both RNG consumers move. */
static void train(chargan_trainer *tr, int steps, float *losses)
{
    for (int i = 0; i < steps; i++) {
        float loss = 0.0f, d_loss;
        if (tr->cfg.estimator == CHARGAN_GAN_NONE) {
            ck_assert_int_eq(chargan_trainer_mle_step(tr, &loss), CHARGAN_OK);
        } else if (i % 3 == 0) {
            ck_assert_int_eq(chargan_trainer_d_step(tr, &loss, NULL), CHARGAN_OK);
        } else {
            ck_assert_msg(chargan_trainer_gan_step(tr, &loss, &d_loss) == CHARGAN_OK, "%s",
                          chargan_trainer_last_error(tr));
        }
        if (losses)
            losses[i] = loss;
    }
}

/* ---------------------------------------------------------------- round trips */

START_TEST(model_round_trip_generator)
{
    chargan_model *g = corpus_generator(small_gen);
    const char *path = tmp_path("gen.ckpt");
    ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
    chargan_model *h = NULL;
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &h), CHARGAN_OK);
    ck_assert_ptr_nonnull(chargan_model_tokenizer(h));
    assert_same_model(g, h);
    /* saving the loaded model gives the same bytes */
    const char *again = tmp_path("gen2.ckpt");
    ck_assert_int_eq(chargan_model_save(h, again), CHARGAN_OK);
    assert_same_file(path, again);
    /* the generator file holds no discriminator */
    chargan_model *d = (chargan_model *)1;
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_DISCRIMINATOR, &d), CHARGAN_E_NOT_FOUND);
    ck_assert_ptr_eq(d, (chargan_model *)1);
    assert_contains(chargan_last_error(), "no discriminator");
    chargan_model_free(g);
    chargan_model_free(h);
}
END_TEST

START_TEST(model_round_trip_discriminator_without_tokenizer)
{
    model_shape s = small_disc;
    s.V = 17;
    s.L = 3;
    chargan_model *d = make_model(CHARGAN_DISCRIMINATOR, s);
    const char *path = tmp_path("disc.ckpt");
    ck_assert_int_eq(chargan_model_save(d, path), CHARGAN_OK);
    chargan_model *e;
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_DISCRIMINATOR, &e), CHARGAN_OK);
    ck_assert_ptr_null(chargan_model_tokenizer(e));
    assert_same_model(d, e);
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &e), CHARGAN_E_NOT_FOUND);
    chargan_model_free(d);
    chargan_model_free(e);
}
END_TEST

START_TEST(model_load_and_save_argument_errors)
{
    chargan_model *m = NULL;
    ck_assert_int_eq(chargan_model_load(NULL, CHARGAN_GENERATOR, &m), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_model_load("x", CHARGAN_GENERATOR, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_model_load("x", (chargan_model_kind)7, &m), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_last_errno(), 0);
    ck_assert_int_eq(chargan_model_load(tmp_path("does-not-exist"), CHARGAN_GENERATOR, &m),
                     CHARGAN_E_IO);
    assert_contains(chargan_last_error(), "does-not-exist");
    ck_assert_int_eq(chargan_last_errno(), ENOENT);
    /* the errno goes with the message: the next failure replaces it */
    ck_assert_int_eq(chargan_model_load("x", (chargan_model_kind)7, &m), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_last_errno(), 0);
    ck_assert_int_eq(chargan_model_load(cg_test_tmpdir(), CHARGAN_GENERATOR, &m), CHARGAN_E_IO);
    ck_assert_int_eq(chargan_last_errno(), 0); /* not a regular file: no system call failed */
    ck_assert_ptr_null(m);
    ck_assert_int_eq(chargan_model_save(NULL, "x"), CHARGAN_E_INVALID);
    model_shape s = small_disc;
    s.V = 5;
    chargan_model *d = make_model(CHARGAN_DISCRIMINATOR, s);
    ck_assert_int_eq(chargan_model_save(d, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_model_save(d, "/nonexistent-dir/x.ckpt"), CHARGAN_E_IO);
    ck_assert_int_eq(chargan_last_errno(), ENOENT);
    chargan_model_free(d);

    chargan_trainer *tr = NULL;
    ck_assert_int_eq(chargan_trainer_load(NULL, &tr), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_load("x", NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_load(tmp_path("nope"), &tr), CHARGAN_E_IO);
    ck_assert_int_eq(chargan_last_errno(), ENOENT); /* kept through the loader's own message */
    ck_assert_int_eq(chargan_trainer_save(NULL, "x"), CHARGAN_E_INVALID);
    ck_assert_ptr_null(tr);
}
END_TEST

static void assert_same_trainer(const chargan_trainer *a, const chargan_trainer *b)
{
    chargan_trainer_config ca, cb;
    ca.struct_size = cb.struct_size = sizeof ca;
    ck_assert_int_eq(chargan_trainer_get_config(a, &ca), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_get_config(b, &cb), CHARGAN_OK);
    ck_assert_uint_eq(ca.batch, cb.batch);
    ck_assert_uint_eq(ca.seq_len, cb.seq_len);
    ck_assert(ca.val_fraction == cb.val_fraction);
    ck_assert_uint_eq(ca.seed, cb.seed);
    ck_assert_uint_eq(ca.threads, cb.threads);
    ck_assert_uint_eq(ca.report_every, cb.report_every);
    ck_assert_uint_eq(ca.val_every, cb.val_every);
    ck_assert_int_eq(ca.estimator, cb.estimator);
    ck_assert_uint_eq(ca.d_steps, cb.d_steps);
    ck_assert(ca.gamma == cb.gamma && ca.baseline_decay == cb.baseline_decay);
    ck_assert_uint_eq(ca.rollouts, cb.rollouts);
    ck_assert(ca.mle_weight == cb.mle_weight && ca.beta_max == cb.beta_max);
    ck_assert(ca.beta_start == cb.beta_start);
    ck_assert_int_eq(ca.gumbel_feed, cb.gumbel_feed);
    ck_assert_int_eq(ca.anneal, cb.anneal);
    ck_assert_uint_eq(ca.anneal_steps, cb.anneal_steps);
    ck_assert_int_eq(ca.gan_loss, cb.gan_loss);
    uint64_t sa, sb;
    ck_assert_int_eq(chargan_trainer_global_step(a, &sa), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_global_step(b, &sb), CHARGAN_OK);
    ck_assert_uint_eq(sa, sb);
    assert_same_model(chargan_trainer_generator(a), chargan_trainer_generator(b));
    const chargan_model *da = chargan_trainer_discriminator(a);
    const chargan_model *db = chargan_trainer_discriminator(b);
    ck_assert((da == NULL) == (db == NULL));
    if (da) {
        /* a loaded discriminator may carry the file's tokenizer; the rest is equal */
        assert_same_config(da, db);
        assert_same_params(da, db);
        ck_assert(memcmp(&da->rng, &db->rng, sizeof da->rng) == 0);
    }
    for (int k = CHARGAN_GENERATOR; k <= CHARGAN_DISCRIMINATOR; k++) {
        const chargan_optimizer *oa = chargan_trainer_optimizer(a, (chargan_model_kind)k);
        const chargan_optimizer *ob = chargan_trainer_optimizer(b, (chargan_model_kind)k);
        ck_assert((oa == NULL) == (ob == NULL));
        if (!oa)
            continue;
        ck_assert_int_eq(chargan_optimizer_steps(oa, &sa), CHARGAN_OK);
        ck_assert_int_eq(chargan_optimizer_steps(ob, &sb), CHARGAN_OK);
        ck_assert_uint_eq(sa, sb);
        ck_assert_int_eq(oa->cfg.kind, ob->cfg.kind);
        ck_assert_uint_eq(oa->n, ob->n);
        if (oa->m)
            ck_assert(memcmp(oa->m, ob->m, oa->n * sizeof(float)) == 0);
        if (oa->v)
            ck_assert(memcmp(oa->v, ob->v, oa->n * sizeof(float)) == 0);
    }
    ck_assert(memcmp(&a->rng, &b->rng, sizeof a->rng) == 0);
    ck_assert_uint_eq(a->d_updates, b->d_updates);
    ck_assert_uint_eq(a->gan.gan_steps, b->gan.gan_steps);
    ck_assert_uint_eq(a->gan.baseline_set, b->gan.baseline_set);
    ck_assert(memcmp(a->gan.baseline, b->gan.baseline, a->cfg.seq_len * sizeof(float)) == 0);
}

START_TEST(trainer_round_trip)
{
    static const int estimators[] = {CHARGAN_GAN_NONE, CHARGAN_GAN_REINFORCE, CHARGAN_GAN_GUMBEL};
    for (int e = 0; e < 3; e++) {
        chargan_trainer *tr = corpus_trainer(estimators[e], 0, small_gen, small_disc);
        ck_assert_int_eq(tr->cfg.estimator, estimators[e]);
        train(tr, 5, NULL);
        const char *path = tmp_path("trainer.ckpt");
        ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
        chargan_trainer *back = NULL;
        ck_assert_msg(chargan_trainer_load(path, &back) == CHARGAN_OK, "%s", chargan_last_error());
        assert_same_trainer(tr, back);
        const char *again = tmp_path("trainer2.ckpt");
        ck_assert_int_eq(chargan_trainer_save(back, again), CHARGAN_OK);
        assert_same_file(path, again);

        /* chargan_model_load reads the trainer file's models */
        chargan_model *g;
        ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &g), CHARGAN_OK);
        assert_same_model(chargan_trainer_generator(tr), g);
        chargan_model_free(g);
        chargan_model *d = NULL;
        chargan_status st = chargan_model_load(path, CHARGAN_DISCRIMINATOR, &d);
        if (estimators[e] == CHARGAN_GAN_NONE) {
            ck_assert_int_eq(st, CHARGAN_E_NOT_FOUND);
        } else {
            ck_assert_int_eq(st, CHARGAN_OK);
            ck_assert_int_eq(d->cfg.kind, CHARGAN_DISCRIMINATOR);
            assert_same_params(chargan_trainer_discriminator(tr), d);
            chargan_model_free(d);
        }
        chargan_trainer_free(tr);
        chargan_trainer_free(back);
    }
}
END_TEST

START_TEST(trainer_load_of_model_file_is_not_found)
{
    chargan_model *g = corpus_generator(small_gen);
    const char *path = tmp_path("model-only.ckpt");
    ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
    chargan_trainer *tr = NULL;
    ck_assert_int_eq(chargan_trainer_load(path, &tr), CHARGAN_E_NOT_FOUND);
    ck_assert_ptr_null(tr);
    assert_contains(chargan_last_error(), "not a trainer checkpoint");
    chargan_model_free(g);
}
END_TEST

START_TEST(trainer_save_without_tokenizer)
{
    /* an id corpus: the generator has no tokenizer, nor does the file */
    model_shape s = small_gen;
    s.V = 9;
    chargan_model *g = make_model(CHARGAN_GENERATOR, s);
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = 3;
    tc.seq_len = 5;
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, NULL, NULL, &tr), CHARGAN_OK);
    int32_t ids[200];
    for (int i = 0; i < 200; i++)
        ids[i] = 2 + (i * 5 + i / 3) % 7;
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 200), CHARGAN_OK);
    /* saved before any step: the optimizer state is empty (n = 0) */
    const char *path = tmp_path("ids.ckpt");
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    chargan_trainer *back;
    ck_assert_int_eq(chargan_trainer_load(path, &back), CHARGAN_OK);
    ck_assert_ptr_null(chargan_model_tokenizer(chargan_trainer_generator(back)));
    assert_same_trainer(tr, back);
    /* the corpus is not stored */
    ck_assert_int_eq(chargan_trainer_mle_step(back, NULL), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(back, ids, 200), CHARGAN_OK);
    train(tr, 3, NULL);
    train(back, 3, NULL);
    assert_same_trainer(tr, back);
    chargan_trainer_free(tr);
    chargan_trainer_free(back);
}
END_TEST

/* ---------------------------------------------------------------- resumption */

/* Train N steps, save, train M more (run A).  Load the file, set the same
 * corpus, train M steps (run B).  Everything must be bitwise equal: the
 * losses step by step, both models' parameters, and the files saved at the
 * end (which hold every RNG, optimizer moment and counter). */
static void check_resume(int estimator, uint32_t rollouts)
{
    enum { N = 7, M = 9 };
    chargan_trainer *a = corpus_trainer(estimator, rollouts, small_gen, small_disc);
    train(a, N, NULL);
    const char *path = tmp_path("resume.ckpt");
    ck_assert_int_eq(chargan_trainer_save(a, path), CHARGAN_OK);
    size_t n0;
    float *p0 = params_of(chargan_trainer_generator(a), &n0);
    float la[M], lb[M];
    train(a, M, la);

    chargan_trainer *b;
    ck_assert_int_eq(chargan_trainer_load(path, &b), CHARGAN_OK);
    size_t len;
    const char *text = corpus(&len);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(b, text, len), CHARGAN_OK);
    train(b, M, lb);

    ck_assert_msg(memcmp(la, lb, sizeof la) == 0, "losses differ after resuming");
    size_t n1, n2;
    float *p1 = params_of(chargan_trainer_generator(a), &n1);
    float *p2 = params_of(chargan_trainer_generator(b), &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_msg(memcmp(p1, p2, n1 * sizeof(float)) == 0, "generator parameters differ");
    /* and training did move them */
    ck_assert(memcmp(p0, p1, n0 * sizeof(float)) != 0);
    if (estimator != CHARGAN_GAN_NONE)
        assert_same_params(chargan_trainer_discriminator(a), chargan_trainer_discriminator(b));
    assert_same_trainer(a, b);
    const char *fa = tmp_path("resume-a.ckpt"), *fb = tmp_path("resume-b.ckpt");
    ck_assert_int_eq(chargan_trainer_save(a, fa), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_save(b, fb), CHARGAN_OK);
    assert_same_file(fa, fb);

    /* Control: the restored RNG states matter.  Reloading and perturbing the
     * generator's dropout RNG (or the trainer's) changes the outcome. */
    for (int which = 0; which < 2; which++) {
        chargan_trainer *c;
        ck_assert_int_eq(chargan_trainer_load(path, &c), CHARGAN_OK);
        ck_assert_int_eq(chargan_trainer_set_corpus_text(c, text, len), CHARGAN_OK);
        cg_rng *rng = which == 0 ? &chargan_trainer_generator(c)->rng : &c->rng;
        cg_rng_next(rng);
        train(c, M, NULL);
        size_t n3;
        float *p3 = params_of(chargan_trainer_generator(c), &n3);
        ck_assert_msg(memcmp(p1, p3, n1 * sizeof(float)) != 0, "perturbing RNG %d changed nothing",
                      which);
        free(p3);
        chargan_trainer_free(c);
    }
    free(p0);
    free(p1);
    free(p2);
    chargan_trainer_free(a);
    chargan_trainer_free(b);
}

START_TEST(resume_mle_is_bitwise_exact)
{
    check_resume(CHARGAN_GAN_NONE, 0);
}
END_TEST

START_TEST(resume_reinforce_is_bitwise_exact)
{
    check_resume(CHARGAN_GAN_REINFORCE, 0);
}
END_TEST

START_TEST(resume_reinforce_rollouts_is_bitwise_exact)
{
    check_resume(CHARGAN_GAN_REINFORCE, 2);
}
END_TEST

START_TEST(resume_gumbel_is_bitwise_exact)
{
    check_resume(CHARGAN_GAN_GUMBEL, 0);
}
END_TEST

/* ---------------------------------------------------------------- non-finite, atomicity */

START_TEST(save_refuses_non_finite_parameters)
{
    chargan_model *g = corpus_generator(small_gen);
    const char *path = tmp_path("good.ckpt");
    ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
    size_t n_before;
    char *before = cg_test_read_file(path, &n_before);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        float keep = g->params[g->n_weights / 2];
        g->params[g->n_weights / 2] = bad[i]; /* param_set refuses these: poke directly */
        ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_E_NUMERIC);
        assert_contains(chargan_model_last_error(g), "non-finite");
        g->params[g->n_weights / 2] = keep;
    }
    size_t n_after;
    char *after = cg_test_read_file(path, &n_after);
    ck_assert_uint_eq(n_before, n_after);
    ck_assert(memcmp(before, after, n_before) == 0);
    ck_assert_int_eq(count_temporaries(), 0);
    chargan_model *h;
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &h), CHARGAN_OK);
    assert_same_model(g, h);
    free(before);
    free(after);
    chargan_model_free(g);
    chargan_model_free(h);
}
END_TEST

START_TEST(trainer_save_refuses_non_finite_parameters)
{
    chargan_trainer *tr = corpus_trainer(CHARGAN_GAN_REINFORCE, 0, tiny_gen, tiny_disc);
    const char *path = tmp_path("t.ckpt");
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    size_t n_before;
    char *before = cg_test_read_file(path, &n_before);
    chargan_model *d = chargan_trainer_discriminator(tr);
    d->params[0] = NAN;
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_E_NUMERIC);
    assert_contains(chargan_trainer_last_error(tr), "non-finite");
    d->params[0] = 0.0f;
    chargan_trainer_generator(tr)->params[1] = INFINITY;
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_E_NUMERIC);
    size_t n_after;
    char *after = cg_test_read_file(path, &n_after);
    ck_assert_uint_eq(n_before, n_after);
    ck_assert(memcmp(before, after, n_before) == 0);
    ck_assert_int_eq(count_temporaries(), 0);
    free(before);
    free(after);
    chargan_trainer_free(tr);
}
END_TEST

START_TEST(atomic_save_leaves_no_temporaries)
{
    chargan_trainer *tr = corpus_trainer(CHARGAN_GAN_NONE, 0, small_gen, small_disc);
    const char *path = tmp_path("atomic.ckpt");
    for (int i = 0; i < 5; i++) {
        train(tr, 1, NULL);
        ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
        ck_assert_int_eq(chargan_model_save(chargan_trainer_generator(tr), tmp_path("m.ckpt")),
                         CHARGAN_OK);
        ck_assert_int_eq(count_temporaries(), 0);
    }
    chargan_trainer_free(tr);
}
END_TEST

/* A save replaces a regular file (or a link, as rename does) and nothing
 * else: a device, a FIFO or a socket at the path would be gone for every
 * other user of it (root saving to /dev/null replaced the device). */
START_TEST(save_replaces_only_regular_files)
{
    model_shape s = small_disc;
    s.V = 5;
    chargan_model *d = make_model(CHARGAN_DISCRIMINATOR, s);
    const char *fifo = tmp_path("fifo"), *link_to_fifo = tmp_path("link-to-fifo");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(symlink(fifo, link_to_fifo), 0);
    const char *targets[] = {fifo, link_to_fifo};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(chargan_model_save(d, targets[i]), CHARGAN_E_IO);
        assert_contains(chargan_model_last_error(d), "not a regular file");
        ck_assert_int_eq(chargan_last_errno(), 0);
    }
    struct stat sb;
    ck_assert(lstat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode));
    ck_assert(lstat(link_to_fifo, &sb) == 0 && S_ISLNK(sb.st_mode));
    ck_assert_int_eq(chargan_model_save(d, cg_test_tmpdir()), CHARGAN_E_IO);
    ck_assert_int_eq(chargan_last_errno(), EISDIR);
    ck_assert_int_eq(count_temporaries(), 0);
    /* a link to nothing, or to a regular file, is replaced by the file */
    const char *dangling = tmp_path("dangling");
    ck_assert_int_eq(symlink(tmp_path("nowhere"), dangling), 0);
    ck_assert_int_eq(chargan_model_save(d, dangling), CHARGAN_OK);
    ck_assert(lstat(dangling, &sb) == 0 && S_ISREG(sb.st_mode));
    chargan_model_free(d);
}
END_TEST

/* New saved files get 0666 less the umask, as files fopen creates do (a
 * temporary from mkstemp would leave them 0600, unreadable to others); a
 * file a save replaces keeps its permissions (a private one stays so). */
START_TEST(saved_files_follow_the_umask)
{
    chargan_model *g = corpus_generator(small_gen);
    const char *path = tmp_path("mode.ckpt");
    static const mode_t masks[] = {022, 077, 002};
    struct stat sb;
    for (size_t i = 0; i < 3; i++) {
        unlink(path);
        mode_t old = umask(masks[i]);
        ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
        umask(old);
        ck_assert_int_eq(stat(path, &sb), 0);
        ck_assert_uint_eq(sb.st_mode & 0777, 0666 & ~masks[i]);
    }
    /* a file replaced keeps its own permissions, whatever the umask */
    static const mode_t kept[] = {0600, 0640, 0444};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(chmod(path, kept[i]), 0);
        ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
        ck_assert_int_eq(stat(path, &sb), 0);
        ck_assert_uint_eq(sb.st_mode & 0777, kept[i]);
    }
    /* with its owner and group, where the saver may give them back (root):
     * 0600 alone would lock the owner out of a file now root's */
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(path, 65534, 65534), 0);
        ck_assert_int_eq(chmod(path, 0600), 0);
        ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
        ck_assert_int_eq(stat(path, &sb), 0);
        ck_assert(sb.st_uid == 65534 && sb.st_gid == 65534 && (sb.st_mode & 0777) == 0600);
    }
    ck_assert_int_eq(count_temporaries(), 0);
    chargan_model_free(g);
}
END_TEST

/* ---------------------------------------------------------------- truncation and bit flips */

/* Loads path as both a model and a trainer (as the file's kind allows).  A
 * load must fail with a format-family status, or else (never, with CRCs)
 * give exactly the original. */
typedef struct original {
    const chargan_trainer *tr; /* NULL for a model file */
    const chargan_model *model;
} original;

static void load_must_fail_or_match(const char *path, const original *o, size_t detail)
{
    chargan_model *m = NULL;
    chargan_status st = chargan_model_load(path, (chargan_model_kind)o->model->cfg.kind, &m);
    if (st == CHARGAN_OK) {
        assert_same_model(o->model, m);
        chargan_model_free(m);
    } else {
        CHECK(st == CHARGAN_E_FORMAT || st == CHARGAN_E_UNSUPPORTED,
              "case %zu: model load gave %d (%s)", detail, (int)st, chargan_last_error());
        CHECK(chargan_last_error()[0] != 0, "case %zu: no message", detail);
        CHECK(m == NULL, "case %zu: *out set on failure", detail);
    }
    if (!o->tr)
        return;
    chargan_trainer *t = NULL;
    st = chargan_trainer_load(path, &t);
    if (st == CHARGAN_OK) {
        assert_same_trainer(o->tr, t);
        chargan_trainer_free(t);
    } else {
        CHECK(st == CHARGAN_E_FORMAT || st == CHARGAN_E_UNSUPPORTED,
              "case %zu: trainer load gave %d (%s)", detail, (int)st, chargan_last_error());
        CHECK(t == NULL, "case %zu: *out set on failure", detail);
    }
}

/* Every prefix of the file (lengths 0 .. size-1) fails with CHARGAN_E_FORMAT. */
static void cut_everywhere(const char *path, const original *o)
{
    size_t size;
    char *bytes = cg_test_read_file(path, &size);
    const char *cut = tmp_path("cut.ckpt");
    for (size_t n = 0; n < size; n++) {
        write_bytes(cut, bytes, n);
        chargan_model *m = NULL;
        chargan_status st = chargan_model_load(cut, (chargan_model_kind)o->model->cfg.kind, &m);
        CHECK(st == CHARGAN_E_FORMAT && m == NULL, "cut at %zu of %zu: model load gave %d (%s)",
              n, size, (int)st, chargan_last_error());
        if (o->tr) {
            chargan_trainer *t = NULL;
            st = chargan_trainer_load(cut, &t);
            CHECK(st == CHARGAN_E_FORMAT && t == NULL,
                  "cut at %zu of %zu: trainer load gave %d (%s)", n, size, (int)st,
                  chargan_last_error());
        }
    }
    free(bytes);
}

static void flip_every_bit(const char *path, const original *o)
{
    size_t size;
    char *bytes = cg_test_read_file(path, &size);
    const char *flipped = tmp_path("flip.ckpt");
    for (size_t bit = 0; bit < size * 8; bit++) {
        bytes[bit / 8] ^= (char)(1u << (bit % 8));
        write_bytes(flipped, bytes, size);
        load_must_fail_or_match(flipped, o, bit);
        bytes[bit / 8] ^= (char)(1u << (bit % 8));
    }
    free(bytes);
}

START_TEST(model_file_cut_at_every_offset)
{
    chargan_model *g = corpus_generator(tiny_gen);
    const char *path = tmp_path("tiny-model.ckpt");
    ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
    original o = {NULL, g};
    cut_everywhere(path, &o);
    chargan_model_free(g);
}
END_TEST

START_TEST(trainer_file_cut_at_every_offset)
{
    chargan_trainer *tr = corpus_trainer(CHARGAN_GAN_REINFORCE, 0, tiny_gen, tiny_disc);
    train(tr, 3, NULL);
    const char *path = tmp_path("tiny-trainer.ckpt");
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    original o = {tr, chargan_trainer_generator(tr)};
    cut_everywhere(path, &o);
    chargan_trainer_free(tr);
}
END_TEST

START_TEST(model_file_every_bit_flip_fails)
{
    chargan_model *g = corpus_generator(tiny_gen);
    const char *path = tmp_path("tiny-model.ckpt");
    ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
    original o = {NULL, g};
    flip_every_bit(path, &o);
    chargan_model_free(g);
}
END_TEST

START_TEST(trainer_file_every_bit_flip_fails)
{
    chargan_trainer *tr = corpus_trainer(CHARGAN_GAN_REINFORCE, 0, tiny_gen, tiny_disc);
    train(tr, 3, NULL);
    const char *path = tmp_path("tiny-trainer.ckpt");
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    original o = {tr, chargan_trainer_generator(tr)};
    flip_every_bit(path, &o);
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- hostile files */

/* Little-endian patching of a file image. */
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_header_crc(uint8_t *file)
{
    put32(file + 20, cg_crc32(0, file, 20));
}

/* Recomputes the CRC of the section whose header starts at offset at. */
static void fix_section_crc(uint8_t *file, size_t at)
{
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--)
        len = len << 8 | file[at + 8 + i];
    put32(file + at + 16 + len, cg_crc32(0, file + at, 16 + (size_t)len));
}

/* Loads path as a generator, expecting status st and a message holding needle. */
static void expect_model_load(const char *path, chargan_model_kind kind, chargan_status want,
                              const char *needle)
{
    chargan_model *m = NULL;
    chargan_status st = chargan_model_load(path, kind, &m);
    CHECK(st == want && m == NULL, "%s: got %d, want %d (%s)", path, (int)st, (int)want,
          chargan_last_error());
    if (needle)
        assert_contains(chargan_last_error(), needle);
}

static void expect_trainer_load(const char *path, chargan_status want, const char *needle)
{
    chargan_trainer *t = NULL;
    chargan_status st = chargan_trainer_load(path, &t);
    CHECK(st == want && t == NULL, "%s: got %d, want %d (%s)", path, (int)st, (int)want,
          chargan_last_error());
    if (needle)
        assert_contains(chargan_last_error(), needle);
}

/* A file of the given sections: each (tag, payload) pair as written by the
 * library's own container writer. */
typedef struct raw_section {
    uint32_t tag;
    const void *data;
    size_t size;
} raw_section;

/* What cg_ckpt_finish does, minus the fsyncs (these tests write thousands
 * of files; hostile_sections checks the two agree byte for byte). */
static void finish_unsynced(cg_ckpt_writer *cw, const char *path)
{
    CHECK(!cw->w.failed, "out of memory crafting %s", path);
    cg_patch_u32(&cw->w, 16, cw->n_sections);
    cg_patch_u32(&cw->w, 20, cg_crc32(0, cw->w.data, 20));
    write_bytes(path, cw->w.data, cw->w.size);
    cg_writer_free(&cw->w);
}

static void write_container_ex(const char *path, const raw_section *s, int n, bool synced)
{
    cg_ckpt_writer cw;
    cg_ckpt_begin(&cw);
    for (int i = 0; i < n; i++) {
        cg_ckpt_section_begin(&cw, s[i].tag);
        cg_put_bytes(&cw.w, s[i].data, s[i].size);
        cg_ckpt_section_end(&cw);
    }
    if (synced) {
        cg_error err;
        ck_assert_int_eq(cg_ckpt_finish(&cw, &err, path), CHARGAN_OK);
    } else {
        finish_unsynced(&cw, path);
    }
}

static void write_container(const char *path, const raw_section *s, int n)
{
    write_container_ex(path, s, n, false);
}

/* The bytes of a model section for m. */
static uint8_t *model_section(const chargan_model *m, size_t *size)
{
    cg_writer w;
    cg_writer_init(&w);
    cg_model_write(m, &w);
    ck_assert(!w.failed);
    *size = w.size;
    return w.data; /* freed with cg_free */
}

START_TEST(hostile_header_fields)
{
    chargan_model *g = corpus_generator(tiny_gen);
    const char *path = tmp_path("base.ckpt"), *bad = tmp_path("bad.ckpt");
    ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
    size_t size;
    uint8_t *file = (uint8_t *)cg_test_read_file(path, &size);
    uint8_t *copy = malloc(size + 64);
    ck_assert_ptr_nonnull(copy);

    /* wrong magic */
    memcpy(copy, file, size);
    copy[3] ^= 0x20;
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "bad magic");
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "bad magic");
    /* some other file entirely */
    write_bytes(bad, "hello world, this is not a checkpoint at all", 44);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "not a libchargan checkpoint");
    /* empty file */
    write_bytes(bad, "", 0);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, NULL);

    /* unknown version: refused as unsupported, even with a valid header CRC,
     * and before the rest of the header is looked at */
    memcpy(copy, file, size);
    put32(copy + 8, 2);
    fix_header_crc(copy);
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_UNSUPPORTED, "version 2");
    expect_trainer_load(bad, CHARGAN_E_UNSUPPORTED, "version 2");
    put32(copy + 8, 0xFFFFFFFFu);
    memset(copy + 12, 0xAB, 12); /* a future layout: nothing after the version makes sense */
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_UNSUPPORTED, "version 4294967295");
    write_bytes(bad, copy, 12); /* magic and version alone suffice to say so */
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_UNSUPPORTED, NULL);
    put32(copy + 8, 0);
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "version 0");

    /* byte-order mark */
    memcpy(copy, file, size);
    put32(copy + 12, 0x04030201u);
    fix_header_crc(copy);
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "byte-order mark");

    /* header checksum */
    memcpy(copy, file, size);
    copy[21] ^= 1;
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "header checksum");

    /* n_sections huge, one above the cap, and more than the file holds */
    static const uint32_t counts[] = {0xFFFFFFFFu, CG_CKPT_MAX_SECTIONS + 1};
    for (int i = 0; i < 2; i++) {
        memcpy(copy, file, size);
        put32(copy + 16, counts[i]);
        fix_header_crc(copy);
        write_bytes(bad, copy, size);
        expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "at most");
    }
    memcpy(copy, file, size);
    put32(copy + 16, CG_CKPT_MAX_SECTIONS);
    fix_header_crc(copy);
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "truncated header of section");

    /* a section claiming a huge length (2^62, 2^64 - 1, one byte too many) */
    static const uint64_t lens[] = {(uint64_t)1 << 62, UINT64_MAX};
    for (int i = 0; i < 2; i++) {
        memcpy(copy, file, size);
        put64(copy + 24 + 8, lens[i]);
        write_bytes(bad, copy, size);
        expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "claims");
    }
    memcpy(copy, file, size);
    uint64_t len0 = 0;
    for (int i = 7; i >= 0; i--)
        len0 = len0 << 8 | copy[24 + 8 + i];
    put64(copy + 24 + 8, len0 + (size - 24 - 16 - len0 - 4) + 1);
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "claims");

    /* section flags: with a valid CRC, a feature this library lacks; with
     * the CRC left as it was, corruption */
    memcpy(copy, file, size);
    put32(copy + 24 + 4, 1);
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "checksum mismatch in section 0");
    fix_section_crc(copy, 24);
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_UNSUPPORTED, "flags");
    /* the tag is covered by the CRC too: a renamed tokenizer section is
     * corruption, not a model without a tokenizer */
    memcpy(copy, file, size);
    ck_assert_uint_eq(copy[24], 'T');
    copy[24] = 'X';
    write_bytes(bad, copy, size);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "checksum mismatch");

    /* trailing garbage, one byte and many */
    memcpy(copy, file, size);
    copy[size] = 0;
    write_bytes(bad, copy, size + 1);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "unexpected bytes");
    memset(copy + size, 0x5A, 64);
    write_bytes(bad, copy, size + 64);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "unexpected bytes");

    /* a valid container with no sections has no model */
    memcpy(copy, file, 24);
    put32(copy + 16, 0);
    fix_header_crc(copy);
    write_bytes(bad, copy, 24);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_NOT_FOUND, "no generator");
    expect_trainer_load(bad, CHARGAN_E_NOT_FOUND, NULL);

    free(copy);
    free(file);
    chargan_model_free(g);
}
END_TEST

START_TEST(hostile_sections)
{
    const char *bad = tmp_path("crafted.ckpt");
    chargan_model *g = corpus_generator(tiny_gen);
    size_t ms;
    uint8_t *msec = model_section(g, &ms);
    void *tok;
    size_t ts;
    ck_assert_int_eq(chargan_tokenizer_save_buffer(chargan_model_tokenizer(g), &tok, &ts),
                     CHARGAN_OK);

    /* the crafted container itself is well formed */
    raw_section ok[] = {{CG_SEC_TOKENIZER, tok, ts}, {CG_SEC_GENERATOR, msec, ms}};
    write_container(bad, ok, 2);
    chargan_model *m;
    ck_assert_int_eq(chargan_model_load(bad, CHARGAN_GENERATOR, &m), CHARGAN_OK);
    assert_same_model(g, m);
    chargan_model_free(m);
    /* and byte for byte what the library writes, synced or not */
    const char *lib = tmp_path("lib.ckpt"), *synced = tmp_path("synced.ckpt");
    ck_assert_int_eq(chargan_model_save(g, lib), CHARGAN_OK);
    assert_same_file(bad, lib);
    write_container_ex(synced, ok, 2, true);
    assert_same_file(bad, synced);

    /* duplicated section */
    raw_section dup[] = {{CG_SEC_GENERATOR, msec, ms}, {CG_SEC_GENERATOR, msec, ms}};
    write_container(bad, dup, 2);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "repeated");
    raw_section dup_tok[] = {{CG_SEC_TOKENIZER, tok, ts}, {CG_SEC_GENERATOR, msec, ms},
                             {CG_SEC_TOKENIZER, tok, ts}};
    write_container(bad, dup_tok, 3);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "repeated");

    /* a section tag this library does not know */
    raw_section unknown[] = {{CG_TAG('X', 'T', 'R', 'A'), "abc", 3}, {CG_SEC_GENERATOR, msec, ms}};
    write_container(bad, unknown, 2);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_UNSUPPORTED, "XTRA");

    /* stray bytes after the model inside its section */
    uint8_t *longer = malloc(ms + 3);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, msec, ms);
    memcpy(longer + ms, "\1\2\3", 3);
    raw_section stray[] = {{CG_SEC_GENERATOR, longer, ms + 3}};
    write_container(bad, stray, 1);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "stray bytes");
    free(longer);

    /* the model section cut short (every length; valid CRCs) */
    for (size_t n = 0; n < ms; n++) {
        raw_section cut[] = {{CG_SEC_GENERATOR, msec, n}};
        write_container(bad, cut, 1);
        expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "model section");
    }

    /* a discriminator filed under the generator's tag is not a generator */
    model_shape ds = tiny_disc;
    ds.V = g->cfg.vocab_size;
    chargan_model *d = make_model(CHARGAN_DISCRIMINATOR, ds);
    size_t ds_size;
    uint8_t *dsec = model_section(d, &ds_size);
    raw_section wrong_kind[] = {{CG_SEC_GENERATOR, dsec, ds_size}};
    write_container(bad, wrong_kind, 1);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "discriminator");
    raw_section wrong_kind2[] = {{CG_SEC_DISCRIMINATOR, msec, ms}};
    write_container(bad, wrong_kind2, 1);
    expect_model_load(bad, CHARGAN_DISCRIMINATOR, CHARGAN_E_FORMAT, "generator");
    cg_free(dsec);
    chargan_model_free(d);

    /* the tokenizer section: corrupt inside a valid container CRC, and one
     * with more ids than the model has */
    uint8_t *tcopy = malloc(ts);
    ck_assert_ptr_nonnull(tcopy);
    memcpy(tcopy, tok, ts);
    tcopy[ts - 1] ^= 0x40; /* the vocabulary's own CRC */
    raw_section bad_tok[] = {{CG_SEC_TOKENIZER, tcopy, ts}, {CG_SEC_GENERATOR, msec, ms}};
    write_container(bad, bad_tok, 2);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "tokenizer section");
    free(tcopy);
    chargan_tokenizer *big = make_tok("abcdefghijklmnopqrstuvwxyz0123456789", 36);
    void *bigbuf;
    size_t bigsize;
    ck_assert_int_eq(chargan_tokenizer_save_buffer(big, &bigbuf, &bigsize), CHARGAN_OK);
    raw_section too_big[] = {{CG_SEC_TOKENIZER, bigbuf, bigsize}, {CG_SEC_GENERATOR, msec, ms}};
    write_container(bad, too_big, 2);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "the tokenizer has");
    chargan_free(bigbuf);
    chargan_tokenizer_free(big);

    chargan_free(tok);
    cg_free(msec);
    chargan_model_free(g);
}
END_TEST

/* The model section's fields, written by hand. */
typedef struct raw_model {
    uint32_t kind, V, E, H, L, Z, start;
    float forget_bias, dropout, init_scale;
} raw_model;

static void put_raw_config(cg_writer *w, const raw_model *r)
{
    cg_put_u32(w, r->kind);
    cg_put_u32(w, r->V);
    cg_put_u32(w, r->E);
    cg_put_u32(w, r->H);
    cg_put_u32(w, r->L);
    cg_put_u32(w, r->Z);
    cg_put_u32(w, r->start);
    cg_put_f32(w, r->forget_bias);
    cg_put_f32(w, r->dropout);
    cg_put_f32(w, r->init_scale);
    cg_put_u64(w, 1);            /* seed */
    for (int i = 0; i < 4; i++)  /* rng */
        cg_put_u64(w, 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1));
}

static void write_raw_model(const char *path, const raw_model *r, uint32_t n_tensors,
                            size_t padding)
{
    cg_ckpt_writer cw;
    cg_ckpt_begin(&cw);
    cg_ckpt_section_begin(&cw, r->kind == 1 ? CG_SEC_DISCRIMINATOR : CG_SEC_GENERATOR);
    put_raw_config(&cw.w, r);
    cg_put_u32(&cw.w, n_tensors);
    for (size_t i = 0; i < padding; i++)
        cg_put_u8(&cw.w, 0);
    cg_ckpt_section_end(&cw);
    finish_unsynced(&cw, path);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

START_TEST(hostile_model_config_fails_before_allocating)
{
    const char *bad = tmp_path("huge.ckpt");
    /* 2,000,000 x 1000 embedding + the rest: ~2.0e9 weights, inside the
     * configuration cap (2^31) but 8 GB of floats the file does not hold.
     * The loader must fail before allocating the model: the only allocation
     * is the file buffer. */
    raw_model huge = {0, 2000000, 1000, 16, 1, 0, 0, 1.0f, 0.0f, 0.0f};
    write_raw_model(bad, &huge, 5, 4096);
    cg_alloc_fail_after(-1); /* resets the allocation counter */
    double t0 = now_s();
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "implies");
    long allocations = cg_alloc_fail_after(-1);
    ck_assert_msg(allocations <= 1, "%ld allocations before refusing", allocations);
    ck_assert(now_s() - t0 < 1.0);

    /* above the cap: refused by the configuration check */
    raw_model over = {0, 2000000, 16384, 16384, 16, 16384, 0, 1.0f, 0.0f, 0.0f};
    write_raw_model(bad, &over, 5, 0);
    cg_alloc_fail_after(-1);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "weights");
    ck_assert_int_le(cg_alloc_fail_after(-1), 1);

    /* every field out of range is a format error naming the field */
    static const struct {
        raw_model r;
        const char *needle;
    } cases[] = {
        {{2, 10, 4, 4, 1, 0, 0, 1.0f, 0.0f, 0.0f}, "kind"},
        {{0, 1, 4, 4, 1, 0, 0, 1.0f, 0.0f, 0.0f}, "vocab_size"},
        {{0, 10, 0, 4, 1, 0, 0, 1.0f, 0.0f, 0.0f}, "embed_dim"},
        {{0, 10, 4, 0, 1, 0, 0, 1.0f, 0.0f, 0.0f}, "hidden_dim"},
        {{0, 10, 4, 4, 0, 0, 0, 1.0f, 0.0f, 0.0f}, "num_layers"},
        {{0, 10, 4, 4, 17, 0, 0, 1.0f, 0.0f, 0.0f}, "num_layers"},
        {{0, 10, 4, 4, 1, 99999, 0, 1.0f, 0.0f, 0.0f}, "noise_dim"},
        {{1, 10, 4, 4, 1, 3, 0, 1.0f, 0.0f, 0.0f}, "noise"},
        {{0, 10, 4, 4, 1, 0, 10, 1.0f, 0.0f, 0.0f}, "start_id"},
        {{0, 10, 4, 4, 1, 0, 0, NAN, 0.0f, 0.0f}, "forget_bias"},
        {{0, 10, 4, 4, 1, 0, 0, 1.0f, 1.0f, 0.0f}, "recurrent_dropout"},
        {{0, 10, 4, 4, 1, 0, 0, 1.0f, NAN, 0.0f}, "recurrent_dropout"},
        {{0, 10, 4, 4, 1, 0, 0, 1.0f, 0.0f, -1.0f}, "init_scale"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_raw_model(bad, &cases[i].r, 5, 1024);
        expect_model_load(bad, cases[i].r.kind == 1 ? CHARGAN_DISCRIMINATOR : CHARGAN_GENERATOR,
                          CHARGAN_E_FORMAT, cases[i].needle);
    }
    /* a valid configuration with the wrong tensor count */
    raw_model small = {0, 10, 4, 4, 1, 0, 0, 1.0f, 0.0f, 0.0f}; /* 6 tensors */
    write_raw_model(bad, &small, 7, 2048);
    expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "tensors");
}
END_TEST

/* A model section whose tensor i is written with a wrong header or value. */
enum tensor_fault { WRONG_NAME, WRONG_SHAPE, LONG_NAME, NON_FINITE };

static void write_faulty_model(const char *path, const chargan_model *m, size_t which,
                               enum tensor_fault fault, float value)
{
    cg_ckpt_writer cw;
    cg_ckpt_begin(&cw);
    cg_ckpt_section_begin(&cw, CG_SEC_GENERATOR);
    raw_model r = {(uint32_t)m->cfg.kind, m->cfg.vocab_size, m->cfg.embed_dim, m->cfg.hidden_dim,
                   m->cfg.num_layers, m->cfg.noise_dim, (uint32_t)m->cfg.start_id,
                   m->cfg.forget_bias, m->cfg.recurrent_dropout, m->cfg.init_scale};
    put_raw_config(&cw.w, &r);
    cg_put_u32(&cw.w, (uint32_t)m->n_tensors);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const cg_tensor *t = &m->tensors[i];
        const char *name = t->name;
        if (i == which && fault == WRONG_NAME)
            name = "lstm.9.w_ih";
        uint32_t len = (uint32_t)strlen(name);
        if (i == which && fault == LONG_NAME)
            len = 0xFFFFFFF0u;
        cg_put_u32(&cw.w, len);
        cg_put_bytes(&cw.w, name, strlen(name));
        cg_put_u32(&cw.w, t->rank);
        cg_put_u64(&cw.w, t->shape[0] + (i == which && fault == WRONG_SHAPE));
        cg_put_u64(&cw.w, t->shape[1]);
        for (size_t k = 0; k < t->numel; k++)
            cg_put_f32(&cw.w, i == which && fault == NON_FINITE && k == t->numel / 2
                                  ? value
                                  : m->params[t->offset + k]);
    }
    cg_ckpt_section_end(&cw);
    finish_unsynced(&cw, path);
}

START_TEST(hostile_tensors)
{
    const char *bad = tmp_path("tensors.ckpt");
    model_shape s = tiny_gen;
    s.V = 7;
    s.L = 2;
    chargan_model *g = make_model(CHARGAN_GENERATOR, s);
    /* control: written by hand without a fault, it loads */
    write_faulty_model(bad, g, SIZE_MAX, NON_FINITE, 0.0f);
    chargan_model *m;
    ck_assert_int_eq(chargan_model_load(bad, CHARGAN_GENERATOR, &m), CHARGAN_OK);
    assert_same_params(g, m);
    chargan_model_free(m);
    const float non_finite[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < g->n_tensors; i++) {
        for (int k = 0; k < 3; k++) {
            write_faulty_model(bad, g, i, NON_FINITE, non_finite[k]);
            expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "not finite");
            assert_contains(chargan_last_error(), g->tensors[i].name);
        }
        write_faulty_model(bad, g, i, WRONG_NAME, 0.0f);
        expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "lstm.9.w_ih");
        write_faulty_model(bad, g, i, WRONG_SHAPE, 0.0f);
        expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "expected");
        write_faulty_model(bad, g, i, LONG_NAME, 0.0f);
        expect_model_load(bad, CHARGAN_GENERATOR, CHARGAN_E_FORMAT, "header of tensor");
    }
    chargan_model_free(g);
}
END_TEST

/* A trainer file rebuilt section by section from a real one, with one
 * section replaced (or dropped, when data is NULL and size is 0). */
typedef struct trainer_image {
    cg_ckpt_file f;
    uint8_t *bytes;
} trainer_image;

static void open_image(trainer_image *im, const char *path)
{
    size_t size;
    im->bytes = (uint8_t *)cg_test_read_file(path, &size);
    cg_error err;
    ck_assert_int_eq(cg_ckpt_parse(&err, path, im->bytes, size, &im->f), CHARGAN_OK);
}

static void write_variant(const trainer_image *im, const char *path, uint32_t tag,
                          const void *data, size_t size, bool drop)
{
    raw_section s[CG_CKPT_MAX_SECTIONS];
    int n = 0;
    for (uint32_t i = 0; i < im->f.n_sections; i++) {
        const cg_ckpt_section *c = &im->f.sections[i];
        if (c->tag == tag && drop)
            continue;
        s[n].tag = c->tag;
        s[n].data = c->tag == tag ? data : c->payload;
        s[n].size = c->tag == tag ? size : c->length;
        n++;
    }
    write_container(path, s, n);
}

START_TEST(hostile_trainer_sections)
{
    chargan_trainer *tr = corpus_trainer(CHARGAN_GAN_REINFORCE, 0, tiny_gen, tiny_disc);
    train(tr, 3, NULL);
    const char *path = tmp_path("trainer.ckpt"), *bad = tmp_path("bad-trainer.ckpt");
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    trainer_image im;
    open_image(&im, path);
    const cg_ckpt_section *trn = cg_ckpt_find(&im.f, CG_SEC_TRAINER);
    ck_assert_ptr_nonnull(trn);

    /* control: rebuilt unchanged, it loads */
    write_variant(&im, bad, 0, NULL, 0, false);
    chargan_trainer *back;
    ck_assert_int_eq(chargan_trainer_load(bad, &back), CHARGAN_OK);
    assert_same_trainer(tr, back);
    chargan_trainer_free(back);

    /* missing sections */
    write_variant(&im, bad, CG_SEC_GEN_OPTIMIZER, NULL, 0, true);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "GOPT");
    write_variant(&im, bad, CG_SEC_DISC_OPTIMIZER, NULL, 0, true);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "DOPT");
    write_variant(&im, bad, CG_SEC_GENERATOR, NULL, 0, true);
    expect_trainer_load(bad, CHARGAN_E_NOT_FOUND, "no generator");
    /* a GAN trainer without its discriminator */
    write_variant(&im, bad, CG_SEC_DISCRIMINATOR, NULL, 0, true);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "discriminator");

    /* the trainer section: every truncation, stray bytes, bad fields */
    uint8_t *sec = malloc(trn->length + 9);
    ck_assert_ptr_nonnull(sec);
    for (size_t n = 0; n < trn->length; n++) {
        write_variant(&im, bad, CG_SEC_TRAINER, trn->payload, n, false);
        expect_trainer_load(bad, CHARGAN_E_FORMAT, "trainer section");
    }
    memcpy(sec, trn->payload, trn->length);
    memcpy(sec + trn->length, "zzzzzzzzz", 9);
    for (size_t extra = 1; extra <= 9; extra++) {
        if (extra == 8)
            continue;
        write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length + extra, false);
        expect_trainer_load(bad, CHARGAN_E_FORMAT, "stray bytes");
    }
    /* eight bytes after the baseline are beta_start and gumbel_feed,
     * checked like the rest */
    write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length + 8, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "beta_start");
    put32(sec + trn->length, 0x40000000u); /* 2, above this trainer's beta_max of 1 */
    put32(sec + trn->length + 4, 1);
    write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length + 8, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "beta_max");
    put32(sec + trn->length, 0x3F000000u); /* 0.5 */
    put32(sec + trn->length + 4, 2);
    write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length + 8, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "gumbel_feed");
    put32(sec + trn->length + 4, CHARGAN_FEED_SOFT);
    write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length + 8, false);
    ck_assert_int_eq(chargan_trainer_load(bad, &back), CHARGAN_OK);
    chargan_trainer_config bc;
    chargan_trainer_config_init(&bc);
    ck_assert_int_eq(chargan_trainer_get_config(back, &bc), CHARGAN_OK);
    ck_assert(bc.beta_start == 0.5f && bc.gumbel_feed == CHARGAN_FEED_SOFT);
    chargan_trainer_free(back);
    /* field offsets within the section (see docs/FORMATS.md) */
    static const struct {
        size_t offset;
        uint32_t value;
        const char *needle;
    } fields[] = {
        {0, 0, "batch"},          {4, 70000, "seq_len"},      {8, 0x3F800000u, "val_fraction"},
        {20, 0, "threads"},       {24, 0, "report_every"},    {32, 7, "estimator"},
        {36, 0, "d_steps"},       {40, 0x7FC00000u, "gamma"}, {44, 0x3F800000u, "baseline_decay"},
        {48, 65, "rollouts"},     {52, 0xBF800000u, "mle_weight"},
        {56, 0, "beta_max"},      {60, 9, "anneal"},          {64, 0, "anneal_steps"},
        {68, 3, "gan_loss"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy(sec, trn->payload, trn->length);
        put32(sec + fields[i].offset, fields[i].value);
        write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length, false);
        expect_trainer_load(bad, CHARGAN_E_FORMAT, fields[i].needle);
    }
    /* each size within its own range, the product not: refused before any
     * step buffer is allocated */
    memcpy(sec, trn->payload, trn->length);
    put32(sec + 0, 65536);
    put32(sec + 4, 65536);
    write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length, false);
    cg_alloc_fail_after(-1);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "batch x seq_len");
    CHECK(cg_alloc_fail_after(-1) <= 1, "allocations before refusing a 2^32-token batch");
    /* estimator NONE with a discriminator present is fine; a GAN estimator
     * needs one (covered above).  A non-finite REINFORCE baseline is not. */
    memcpy(sec, trn->payload, trn->length);
    put32(sec + trn->length - 4, 0x7F800000u); /* +inf, the last baseline entry */
    write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "baseline[9] is not finite");
    /* step counters beyond 2^53: a step wrapped 2^64 - 1 to 0, and the CLI's
     * plot refused the log of a run resumed at 2^60 */
    static const struct {
        size_t offset;
        const char *needle;
    } counters[] = {{104, "global_step is 9007199254740993"},
                    {112, "d_updates is 9007199254740993"},
                    {120, "gan_steps is 9007199254740993"}};
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        memcpy(sec, trn->payload, trn->length);
        put64(sec + counters[i].offset, (UINT64_C(1) << 53) + 1);
        write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length, false);
        expect_trainer_load(bad, CHARGAN_E_FORMAT, counters[i].needle);
    }
    memcpy(sec, trn->payload, trn->length);
    put32(sec + 128, 2); /* baseline_set */
    write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "baseline_set");
    /* An all-zero RNG state, xoshiro's fixed point: every batch the same
     * windows, every noise 0, silently.  No writer makes it. */
    memcpy(sec, trn->payload, trn->length);
    memset(sec + 72, 0, 32);
    write_variant(&im, bad, CG_SEC_TRAINER, sec, trn->length, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "RNG state (byte 72) is all zero");
    /* A discriminator's optimizer without the discriminator (an MLE trainer
     * needs none): read by nobody, it was ignored and lost at the next save. */
    memcpy(sec, trn->payload, trn->length);
    put32(sec + 32, CHARGAN_GAN_NONE);
    raw_section orphan[CG_CKPT_MAX_SECTIONS];
    int n_orphan = 0;
    for (uint32_t i = 0; i < im.f.n_sections; i++) {
        const cg_ckpt_section *c = &im.f.sections[i];
        if (c->tag == CG_SEC_DISCRIMINATOR)
            continue;
        orphan[n_orphan].tag = c->tag;
        orphan[n_orphan].data = c->tag == CG_SEC_TRAINER ? sec : c->payload;
        orphan[n_orphan].size = c->length;
        n_orphan++;
    }
    write_container(bad, orphan, n_orphan);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "'DOPT' without the discriminator 'DMOD'");
    n_orphan = 0; /* the control: without the DOPT too, it loads */
    for (uint32_t i = 0; i < im.f.n_sections; i++) {
        const cg_ckpt_section *c = &im.f.sections[i];
        if (c->tag != CG_SEC_DISCRIMINATOR && c->tag != CG_SEC_DISC_OPTIMIZER)
            orphan[n_orphan++] = (raw_section){c->tag, c->tag == CG_SEC_TRAINER ? sec : c->payload,
                                               c->length};
    }
    write_container(bad, orphan, n_orphan);
    ck_assert_int_eq(chargan_trainer_load(bad, &back), CHARGAN_OK);
    chargan_trainer_free(back);
    free(sec);
    /* the same for a model's RNG state (the dropout masks) */
    const cg_ckpt_section *gmod = cg_ckpt_find(&im.f, CG_SEC_GENERATOR);
    uint8_t *msec = malloc(gmod->length);
    ck_assert_ptr_nonnull(msec);
    memcpy(msec, gmod->payload, gmod->length);
    memset(msec + 48, 0, 32);
    write_variant(&im, bad, CG_SEC_GENERATOR, msec, gmod->length, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "RNG state at offset 48 is all zero");
    /* a tensor of the wrong rank says so (the message showed two equal shapes) */
    memcpy(msec, gmod->payload, gmod->length);
    uint32_t name_len = (uint32_t)msec[84] | (uint32_t)msec[85] << 8 | (uint32_t)msec[86] << 16 |
                        (uint32_t)msec[87] << 24; /* tensor 0 follows the 84 bytes before it */
    ck_assert_uint_lt(name_len, 32);
    put32(msec + 88 + name_len, 3);
    write_variant(&im, bad, CG_SEC_GENERATOR, msec, gmod->length, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "of rank 3 [");
    free(msec);

    /* optimizer sections: sized for another model, and corrupt */
    const cg_ckpt_section *gopt = cg_ckpt_find(&im.f, CG_SEC_GEN_OPTIMIZER);
    const cg_ckpt_section *dopt = cg_ckpt_find(&im.f, CG_SEC_DISC_OPTIMIZER);
    write_variant(&im, bad, CG_SEC_GEN_OPTIMIZER, dopt->payload, dopt->length, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "expected");
    uint8_t *osec = malloc(gopt->length + 1);
    ck_assert_ptr_nonnull(osec);
    memcpy(osec, gopt->payload, gopt->length);
    put32(osec, 9); /* optimizer state version */
    write_variant(&im, bad, CG_SEC_GEN_OPTIMIZER, osec, gopt->length, false);
    expect_trainer_load(bad, CHARGAN_E_UNSUPPORTED, "GOPT");
    /* A step count of 2^64 - 1: Adam's next step number wrapped to 0 and
     * its bias correction divided by 0, wrecking the model.  2^53 loads
     * and takes no step. */
    memcpy(osec, gopt->payload, gopt->length);
    put64(osec + 40, UINT64_MAX);
    write_variant(&im, bad, CG_SEC_GEN_OPTIMIZER, osec, gopt->length, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "steps at byte 40 is 18446744073709551615");
    put64(osec + 40, UINT64_C(1) << 53);
    write_variant(&im, bad, CG_SEC_GEN_OPTIMIZER, osec, gopt->length, false);
    ck_assert_int_eq(chargan_trainer_load(bad, &back), CHARGAN_OK);
    size_t corpus_len;
    const char *corpus_text = corpus(&corpus_len);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(back, corpus_text, corpus_len), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_pretrain_generator(back, 1), CHARGAN_E_INVALID);
    assert_contains(chargan_trainer_last_error(back), "9007199254740992 steps taken");
    chargan_trainer_free(back);
    memcpy(osec, gopt->payload, gopt->length);
    osec[gopt->length] = 0;
    write_variant(&im, bad, CG_SEC_GEN_OPTIMIZER, osec, gopt->length + 1, false);
    expect_trainer_load(bad, CHARGAN_E_FORMAT, "stray bytes");
    free(osec);

    free(im.bytes);
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- allocation failures */

/* Runs op with the k-th allocation failing, for k = 0, 1, ... until it
 * succeeds; every failure must be CHARGAN_E_NOMEM.  Returns the number of
 * allocations the successful run made. */
#define FOR_EACH_ALLOCATION(st_expr, on_fail, on_success)                                          \
    do {                                                                                           \
        long k_;                                                                                   \
        for (k_ = 0; k_ < 100000; k_++) {                                                          \
            cg_alloc_fail_after(k_);                                                               \
            chargan_status st_ = (st_expr);                                                        \
            cg_alloc_fail_after(-1);                                                               \
            if (st_ == CHARGAN_OK) {                                                               \
                on_success;                                                                        \
                break;                                                                             \
            }                                                                                      \
            ck_assert_msg(st_ == CHARGAN_E_NOMEM, "allocation %ld: status %d (%s)", k_, (int)st_,  \
                          chargan_last_error());                                                   \
            on_fail;                                                                               \
        }                                                                                          \
        ck_assert_msg(k_ > 0, "no allocation was ever made");                                      \
        ck_assert_msg(k_ < 100000, "never succeeded");                                             \
    } while (0)

START_TEST(model_save_allocation_failures)
{
    chargan_model *g = corpus_generator(small_gen);
    const char *path = tmp_path("alloc.ckpt");
    ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
    g->params[0] += 1.0f; /* so the new file differs from the old */
    size_t n_old;
    char *old = cg_test_read_file(path, &n_old);
    FOR_EACH_ALLOCATION(chargan_model_save(g, path), {
        /* no temporary left, and the file is the old one, or (when only
         * syncing the directory failed, after the rename) the new one */
        ck_assert_int_eq(count_temporaries(), 0);
        chargan_model *m;
        ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &m), CHARGAN_OK);
        chargan_model_free(m);
    }, {});
    chargan_model *m;
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &m), CHARGAN_OK);
    assert_same_model(g, m);
    chargan_model_free(m);
    free(old);
    chargan_model_free(g);
}
END_TEST

START_TEST(model_load_allocation_failures)
{
    chargan_model *g = corpus_generator(small_gen);
    const char *path = tmp_path("alloc.ckpt");
    ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
    chargan_model *m = NULL;
    FOR_EACH_ALLOCATION(chargan_model_load(path, CHARGAN_GENERATOR, &m),
                        ck_assert_ptr_null(m), assert_same_model(g, m));
    chargan_model_free(m);
    chargan_model_free(g);
}
END_TEST

START_TEST(trainer_save_and_load_allocation_failures)
{
    chargan_trainer *tr = corpus_trainer(CHARGAN_GAN_GUMBEL, 0, small_gen, small_disc);
    train(tr, 2, NULL);
    const char *path = tmp_path("alloc-trainer.ckpt");
    FOR_EACH_ALLOCATION(chargan_trainer_save(tr, path), ck_assert_int_eq(count_temporaries(), 0),
                        {});
    chargan_trainer *back = NULL;
    FOR_EACH_ALLOCATION(chargan_trainer_load(path, &back), ck_assert_ptr_null(back),
                        assert_same_trainer(tr, back));
    chargan_trainer_free(back);
    chargan_trainer_free(tr);
    /* REINFORCE with rollouts sizes more buffers */
    tr = corpus_trainer(CHARGAN_GAN_REINFORCE, 2, small_gen, small_disc);
    train(tr, 2, NULL);
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    back = NULL;
    FOR_EACH_ALLOCATION(chargan_trainer_load(path, &back), ck_assert_ptr_null(back),
                        assert_same_trainer(tr, back));
    chargan_trainer_free(back);
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- other hosts */

/* fuzz/corpus/<target>/<name>: files the library wrote on x86-64 (fuzz/make_corpus.c). */
static const char *seed_path(const char *target, const char *name)
{
    static char path[1024];
    const char *dir = getenv("CHARGAN_FUZZ_CORPUS");
    snprintf(path, sizeof path, "%s/%s/%s", dir ? dir : "fuzz/corpus", target, name);
    return path;
}

static const char seed_text[] = "From fairest creatures we desire increase,\n";

/* The vocabularies of fuzz/corpus were fitted on four sonnet lines, some
 * capped: each knows their three most frequent characters, 'e', ' ' and 'r',
 * as its first three ids.  With full, the first line comes back whole. */
static void assert_sonnet_vocabulary(chargan_tokenizer *tok, bool full)
{
    const char *text = full ? seed_text : "e r";
    int32_t ids[64];
    size_t n = 0, len = 0;
    char back[128];
    ck_assert_int_eq(chargan_tokenizer_encode(tok, text, strlen(text), ids, 64, &n), CHARGAN_OK);
    ck_assert_uint_eq(n, strlen(text));
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ne(ids[i], CHARGAN_ID_UNKNOWN);
    if (!full)
        ck_assert(ids[0] == CHARGAN_NUM_RESERVED_IDS && ids[1] == CHARGAN_NUM_RESERVED_IDS + 1 &&
                  ids[2] == CHARGAN_NUM_RESERVED_IDS + 2);
    ck_assert_int_eq(chargan_tokenizer_decode(tok, ids, n, back, sizeof back, &len), CHARGAN_OK);
    ck_assert_str_eq(back, text);
}

/* Whatever the host's byte order and word size, files written on x86-64 load
 * (little-endian on every host: docs/FORMATS.md), hold what was written (the
 * vocabularies' ranks, parameters of an initialisation's size)
 * and are written again byte for byte. */
START_TEST(files_from_another_host_load)
{
    chargan_tokenizer *tok;
    size_t size;
    char *data = cg_test_read_file(seed_path("tokenizer_load", "sonnet.vocab"), &size);
    ck_assert_int_eq(chargan_tokenizer_load_buffer(data, size, &tok), CHARGAN_OK);
    assert_sonnet_vocabulary(tok, true);
    void *again;
    size_t again_size;
    ck_assert_int_eq(chargan_tokenizer_save_buffer(tok, &again, &again_size), CHARGAN_OK);
    ck_assert(again_size == size && memcmp(again, data, size) == 0);
    chargan_free(again);
    chargan_tokenizer_free(tok);
    free(data);

    static const struct {
        const char *name;
        chargan_model_kind kind;
    } models[] = {{"generator-tokenizer.chargan", CHARGAN_GENERATOR},
                  {"generator-2layers.chargan", CHARGAN_GENERATOR},
                  {"discriminator.chargan", CHARGAN_DISCRIMINATOR}};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        const char *path = seed_path("model_load", models[i].name);
        chargan_model *m;
        ck_assert_msg(chargan_model_load(path, models[i].kind, &m) == CHARGAN_OK, "%s: %s",
                      models[i].name, chargan_last_error());
        size_t n_params;
        ck_assert_int_eq(chargan_model_num_params(m, &n_params), CHARGAN_OK);
        for (size_t k = 0; k < n_params; k++) {
            size_t numel;
            ck_assert_int_eq(chargan_model_param_info(m, k, NULL, NULL, NULL, &numel), CHARGAN_OK);
            float *v = malloc((numel ? numel : 1) * sizeof *v);
            ck_assert_int_eq(chargan_model_param_get(m, k, v, numel), CHARGAN_OK);
            /* bytes read in the wrong order would make most of them huge */
            for (size_t j = 0; j < numel; j++)
                ck_assert_msg(fabsf(v[j]) <= 20.0f, "%s: parameter %zu[%zu] = %g",
                              models[i].name, k, j, (double)v[j]);
            free(v);
        }
        if (chargan_model_tokenizer(m))
            assert_sonnet_vocabulary(chargan_model_tokenizer(m), false);
        ck_assert_int_eq(chargan_model_save(m, tmp_path("again.chargan")), CHARGAN_OK);
        assert_same_file(path, tmp_path("again.chargan"));
        chargan_model_free(m);
    }

    static const char *const trainers[] = {"mle.chargan", "mle-threads.chargan",
                                           "reinforce.chargan", "reinforce-rollouts.chargan",
                                           "gumbel.chargan"};
    for (size_t i = 0; i < sizeof trainers / sizeof trainers[0]; i++) {
        const char *path = seed_path("trainer_load", trainers[i]);
        chargan_trainer *tr;
        ck_assert_msg(chargan_trainer_load(path, &tr) == CHARGAN_OK, "%s: %s", trainers[i],
                      chargan_last_error());
        uint64_t step;
        ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
        ck_assert_uint_gt(step, 0);
        assert_sonnet_vocabulary(chargan_model_tokenizer(chargan_trainer_generator(tr)), false);
        ck_assert_int_eq(chargan_trainer_save(tr, tmp_path("again.chargan")), CHARGAN_OK);
        assert_same_file(path, tmp_path("again.chargan"));
        chargan_trainer_free(tr);
    }
}
END_TEST

static Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("round_trip");
    tcase_add_test(tc, model_round_trip_generator);
    tcase_add_test(tc, model_round_trip_discriminator_without_tokenizer);
    tcase_add_test(tc, model_load_and_save_argument_errors);
    tcase_add_test(tc, trainer_round_trip);
    tcase_add_test(tc, trainer_load_of_model_file_is_not_found);
    tcase_add_test(tc, trainer_save_without_tokenizer);
    tcase_add_test(tc, save_refuses_non_finite_parameters);
    tcase_add_test(tc, trainer_save_refuses_non_finite_parameters);
    tcase_add_test(tc, atomic_save_leaves_no_temporaries);
    tcase_add_test(tc, save_replaces_only_regular_files);
    tcase_add_test(tc, saved_files_follow_the_umask);
    tcase_add_test(tc, files_from_another_host_load);
    tcase_add_unchecked_fixture(tc, tmpdir_setup, tmpdir_teardown);
    suite_add_tcase(s, tc);

    tc = tcase_create("resume");
    tcase_add_test(tc, resume_mle_is_bitwise_exact);
    tcase_add_test(tc, resume_reinforce_is_bitwise_exact);
    tcase_add_test(tc, resume_reinforce_rollouts_is_bitwise_exact);
    tcase_add_test(tc, resume_gumbel_is_bitwise_exact);
    tcase_add_unchecked_fixture(tc, tmpdir_setup, tmpdir_teardown);
    suite_add_tcase(s, tc);

    tc = tcase_create("corrupt");
    tcase_add_test(tc, model_file_cut_at_every_offset);
    tcase_add_test(tc, trainer_file_cut_at_every_offset);
    tcase_add_test(tc, model_file_every_bit_flip_fails);
    tcase_add_test(tc, trainer_file_every_bit_flip_fails);
    tcase_add_test(tc, hostile_header_fields);
    tcase_add_test(tc, hostile_sections);
    tcase_add_test(tc, hostile_model_config_fails_before_allocating);
    tcase_add_test(tc, hostile_tensors);
    tcase_add_test(tc, hostile_trainer_sections);
    tcase_add_unchecked_fixture(tc, tmpdir_setup, tmpdir_teardown);
    suite_add_tcase(s, tc);

    tc = tcase_create("alloc");
    tcase_add_test(tc, model_save_allocation_failures);
    tcase_add_test(tc, model_load_allocation_failures);
    tcase_add_test(tc, trainer_save_and_load_allocation_failures);
    tcase_add_unchecked_fixture(tc, tmpdir_setup, tmpdir_teardown);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(checkpoint_suite)
