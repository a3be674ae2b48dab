/* test_faults.c - fault injection across the public API.
 *
 * - allocation failures: every call that allocates is run with its k-th
 *   allocation failing, k = 0, 1, ... until it succeeds; each failure must be
 *   CHARGAN_E_NOMEM with a message, hand out nothing, and leave the handles
 *   usable (the same call then succeeds).  Leaks show in the sanitizer and
 *   valgrind runs.
 * - write failures: every system call of an atomic save fails in turn
 *   (ENOSPC, EIO), and a real EFBIG from RLIMIT_FSIZE: a clear error, the old
 *   file intact and loadable, no temporary left behind.
 * - numeric blow-ups: a huge learning rate stops training with
 *   CHARGAN_E_NUMERIC naming the step, and nothing non-finite is saved.
 * - hostile corpora and API misuse: errors, never undefined behaviour.
 *
 * Each sweep prints "# NAME: N faults injected" on stderr. */
#define _POSIX_C_SOURCE 200809L
#include "test_common.h"
#include "internal.h"
#include "model.h"
#include "optim.h"
#include "trainer.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---------------------------------------------------------------- fixtures */

static char *text;  /* the first CORPUS_BYTES of the sonnets */
static size_t text_len;
#define CORPUS_BYTES 3000

static char dir[512];

static void setup(void)
{
    size_t n;
    char *all = cg_test_read_file(cg_test_corpus_path("sonnets.txt"), &n);
    ck_assert_uint_gt(n, CORPUS_BYTES);
    all[CORPUS_BYTES] = '\0';
    text = all;
    text_len = CORPUS_BYTES;
    snprintf(dir, sizeof dir, "%s/faults-XXXXXX", cg_test_tmpdir());
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
        rmdir(dir);
    }
    free(text);
    text = NULL;
}

static const char *path_of(const char *name)
{
    static char p[2][1024];
    static int which;
    which ^= 1;
    snprintf(p[which], sizeof p[which], "%s/%s", dir, name);
    return p[which];
}

/* Files in the test directory whose name holds ".tmp-" (atomic-write leftovers). */
static int count_temporaries(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

static void assert_contains(const char *haystack, const char *needle)
{
    ck_assert_msg(strstr(haystack, needle) != NULL, "message \"%s\" lacks \"%s\"", haystack,
                  needle);
}

static chargan_tokenizer *make_tok(void)
{
    chargan_tokenizer *tok;
    ck_assert_int_eq(chargan_tokenizer_new(NULL, &tok), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, text_len), CHARGAN_OK);
    return tok;
}

static uint32_t vocab_of(const chargan_tokenizer *tok)
{
    uint32_t v;
    ck_assert_int_eq(chargan_tokenizer_vocab_size(tok, &v), CHARGAN_OK);
    return v;
}

static chargan_model_config gen_config(uint32_t V)
{
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_GENERATOR);
    c.vocab_size = V;
    c.embed_dim = 4;
    c.hidden_dim = 8;
    c.num_layers = 2;
    c.noise_dim = 3;
    c.recurrent_dropout = 0.1f;
    c.seed = 5;
    return c;
}

static chargan_model_config disc_config(uint32_t V)
{
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_DISCRIMINATOR);
    c.vocab_size = V;
    c.embed_dim = 4;
    c.hidden_dim = 6;
    c.seed = 6;
    return c;
}

/* A generator of H hidden units with the corpus's tokenizer attached (or none). */
static chargan_model *make_gen_hidden(bool with_tok, uint32_t H)
{
    chargan_tokenizer *tok = make_tok();
    chargan_model_config c = gen_config(vocab_of(tok));
    c.hidden_dim = H;
    chargan_model *m;
    ck_assert_int_eq(chargan_model_new(&c, &m), CHARGAN_OK);
    if (with_tok)
        ck_assert_int_eq(chargan_model_set_tokenizer(m, tok), CHARGAN_OK);
    chargan_tokenizer_free(tok);
    return m;
}

static chargan_model *make_gen(bool with_tok)
{
    return make_gen_hidden(with_tok, gen_config(2).hidden_dim);
}

static chargan_model *make_disc(void)
{
    chargan_tokenizer *tok = make_tok();
    chargan_model_config c = disc_config(vocab_of(tok));
    chargan_tokenizer_free(tok);
    chargan_model *m;
    ck_assert_int_eq(chargan_model_new(&c, &m), CHARGAN_OK);
    return m;
}

static chargan_trainer_config trainer_config(int estimator, uint32_t threads)
{
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = 3;
    tc.seq_len = 8;
    tc.val_fraction = 0.2f;
    tc.seed = 11;
    tc.threads = threads;
    tc.report_every = 1;
    tc.estimator = estimator;
    tc.rollouts = estimator == CHARGAN_GAN_REINFORCE ? 2 : 0;
    tc.anneal_steps = 10;
    tc.beta_max = 4.0f;
    return tc;
}

/* A trainer (discriminator iff a GAN estimator) with the corpus set. */
static chargan_trainer *make_trainer(int estimator, uint32_t threads)
{
    chargan_trainer_config tc = trainer_config(estimator, threads);
    chargan_model *g = make_gen(true);
    chargan_model *d = estimator != CHARGAN_GAN_NONE ? make_disc() : NULL;
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, d, NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, text_len), CHARGAN_OK);
    return tr;
}

/* ---------------------------------------------------------------- allocation sweeps */

/* What one operation works on, and what it hands out. */
typedef struct fx {
    chargan_tokenizer *tok;
    chargan_model *gen, *disc;
    chargan_trainer *tr;
    int32_t *ids;
    size_t n_ids;
    void *input; /* a serialised tokenizer */
    size_t input_size;
    const char *path;
    /* outputs: must stay NULL when the call fails */
    chargan_tokenizer *tok_out;
    chargan_model *model_out;
    chargan_optimizer *opt_out;
    chargan_trainer *tr_out;
    void *buf;
    size_t size;
    char *text_out;
} fx;

typedef struct op_def {
    const char *name;
    void (*setup)(fx *);
    chargan_status (*run)(fx *);
} op_def;

static void free_outputs(fx *f)
{
    chargan_tokenizer_free(f->tok_out);
    chargan_model_free(f->model_out);
    chargan_optimizer_free(f->opt_out);
    chargan_trainer_free(f->tr_out);
    chargan_free(f->buf);
    chargan_free(f->text_out);
    f->tok_out = NULL;
    f->model_out = NULL;
    f->opt_out = NULL;
    f->tr_out = NULL;
    f->buf = NULL;
    f->text_out = NULL;
}

static void fx_free(fx *f)
{
    free_outputs(f);
    chargan_tokenizer_free(f->tok);
    chargan_model_free(f->gen);
    chargan_model_free(f->disc);
    chargan_trainer_free(f->tr);
    free(f->ids);
    chargan_free(f->input);
    memset(f, 0, sizeof *f);
}

/* Runs op with allocation k failing for k = 0, 1, ... until it succeeds.
 * Returns the number of failures injected. */
static long alloc_sweep(const op_def *op)
{
    long k;
    for (k = 0; k < 100000; k++) {
        fx f;
        memset(&f, 0, sizeof f);
        if (op->setup)
            op->setup(&f);
        cg_alloc_fail_after(k);
        chargan_status st = op->run(&f);
        cg_alloc_fail_after(-1);
        if (st == CHARGAN_OK) {
            fx_free(&f);
            break;
        }
        ck_assert_msg(st == CHARGAN_E_NOMEM, "%s, allocation %ld failing: status %d (%s): %s",
                      op->name, k, (int)st, chargan_strerror(st), chargan_last_error());
        ck_assert_msg(strstr(chargan_last_error(), "memory") != NULL,
                      "%s, allocation %ld failing: message \"%s\" does not say out of memory",
                      op->name, k, chargan_last_error());
        ck_assert_msg(!f.tok_out && !f.model_out && !f.opt_out && !f.tr_out && !f.buf &&
                          !f.text_out,
                      "%s, allocation %ld failing: an output was handed out", op->name, k);
        /* The handles are still usable: the same call now succeeds. */
        st = op->run(&f);
        ck_assert_msg(st == CHARGAN_OK, "%s after allocation %ld failed: status %d: %s", op->name,
                      k, (int)st, chargan_last_error());
        fx_free(&f);
    }
    ck_assert_msg(k < 100000, "%s never succeeded", op->name);
    fprintf(stderr, "# %s: %ld allocation failures injected\n", op->name, k);
    return k;
}

/* setups */
static void with_tok(fx *f) { f->tok = make_tok(); }
static void with_empty_tok(fx *f) { ck_assert_int_eq(chargan_tokenizer_new(NULL, &f->tok), 0); }
static void with_tok_file(fx *f)
{
    with_tok(f);
    f->path = path_of("tok.bin");
    ck_assert_int_eq(chargan_tokenizer_save(f->tok, f->path), CHARGAN_OK);
}
static void with_tok_buffer(fx *f)
{
    with_tok(f);
    ck_assert_int_eq(chargan_tokenizer_save_buffer(f->tok, &f->input, &f->input_size), 0);
}
static void with_gen(fx *f) { f->gen = make_gen(true); }
/* 128 units: two slices of 64, so threads may share each sampling step */
static void with_wide_gen(fx *f) { f->gen = make_gen_hidden(true, 128); }
static void with_gen_and_tok(fx *f)
{
    f->gen = make_gen(false);
    f->tok = make_tok();
}
static void with_gen_ids(fx *f)
{
    f->gen = make_gen(true);
    f->ids = malloc(text_len * sizeof(int32_t));
    ck_assert_int_eq(chargan_tokenizer_encode(chargan_model_tokenizer(f->gen), text, text_len,
                                              f->ids, text_len, &f->n_ids), CHARGAN_OK);
}
static void with_two_gens(fx *f)
{
    f->gen = make_gen(true);
    chargan_model_config c = gen_config(f->gen->V);
    c.seed = 99;
    ck_assert_int_eq(chargan_model_new(&c, &f->disc), CHARGAN_OK); /* the oracle */
}
static void with_model_file(fx *f)
{
    f->gen = make_gen(true);
    f->path = path_of("model.ckpt");
    ck_assert_int_eq(chargan_model_save(f->gen, f->path), CHARGAN_OK);
}
static void with_models(fx *f)
{
    f->gen = make_gen(true);
    f->disc = make_disc();
}
static void with_mle_trainer(fx *f) { f->tr = make_trainer(CHARGAN_GAN_NONE, 1); }
static void with_sharded_trainer(fx *f) { f->tr = make_trainer(CHARGAN_GAN_NONE, 2); }
static void with_reinforce_trainer(fx *f) { f->tr = make_trainer(CHARGAN_GAN_REINFORCE, 1); }
static void with_gumbel_trainer(fx *f) { f->tr = make_trainer(CHARGAN_GAN_GUMBEL, 1); }
static void with_sharded_gumbel_trainer(fx *f) { f->tr = make_trainer(CHARGAN_GAN_GUMBEL, 2); }
static void with_bare_trainer(fx *f)
{
    chargan_trainer_config tc = trainer_config(CHARGAN_GAN_NONE, 1);
    ck_assert_int_eq(chargan_trainer_new(&tc, make_gen(false), NULL, NULL, NULL, &f->tr), 0);
}
static void with_trainer_ids(fx *f)
{
    with_mle_trainer(f);
    size_t n = 40;
    f->ids = malloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++)
        f->ids[i] = 2 + (int32_t)(i % 5);
    f->n_ids = n;
}
static void with_trainer_file(fx *f)
{
    f->tr = make_trainer(CHARGAN_GAN_GUMBEL, 1);
    ck_assert_int_eq(chargan_trainer_gan_step(f->tr, NULL, NULL), CHARGAN_OK);
    f->path = path_of("trainer.ckpt");
    ck_assert_int_eq(chargan_trainer_save(f->tr, f->path), CHARGAN_OK);
}

/* runs */
static chargan_status run_tok_new(fx *f) { return chargan_tokenizer_new(NULL, &f->tok_out); }
static chargan_status run_tok_fit(fx *f) { return chargan_tokenizer_fit(f->tok, text, text_len); }
static chargan_status run_tok_encode(fx *f)
{
    int32_t ids[64];
    size_t n;
    return chargan_tokenizer_encode(f->tok, text, 60, ids, 64, &n);
}
static chargan_status run_tok_decode(fx *f)
{
    const int32_t ids[] = {0, 1, 2, 3, 4, 5};
    char buf[64];
    size_t n;
    return chargan_tokenizer_decode(f->tok, ids, 6, buf, sizeof buf, &n);
}
static chargan_status run_tok_save_buffer(fx *f)
{
    return chargan_tokenizer_save_buffer(f->tok, &f->buf, &f->size);
}
static chargan_status run_tok_load_buffer(fx *f)
{
    return chargan_tokenizer_load_buffer(f->input, f->input_size, &f->tok_out);
}
static chargan_status run_tok_save(fx *f) { return chargan_tokenizer_save(f->tok, path_of("t")); }
static chargan_status run_tok_load(fx *f) { return chargan_tokenizer_load(f->path, &f->tok_out); }
static chargan_status run_gen_new(fx *f)
{
    chargan_model_config c = gen_config(40);
    return chargan_model_new(&c, &f->model_out);
}
static chargan_status run_disc_new(fx *f)
{
    chargan_model_config c = disc_config(40);
    return chargan_model_new(&c, &f->model_out);
}
static chargan_status run_set_tok(fx *f) { return chargan_model_set_tokenizer(f->gen, f->tok); }
static chargan_status run_nll(fx *f)
{
    double nll;
    return chargan_model_nll(f->gen, f->ids, 5, 7, &nll);
}
static chargan_status run_stream_nll(fx *f)
{
    double nll;
    return chargan_model_stream_nll(f->gen, f->ids, 100, 3, &nll);
}
static chargan_status run_sample_ids(fx *f)
{
    chargan_sample_options o;
    chargan_sample_options_init(&o);
    o.n_streams = 3;
    o.length = 10;
    o.top_k = 5;
    o.top_p = 0.9f;
    int32_t prime[2] = {3, 4}, out[30];
    return chargan_model_sample_ids(f->gen, &o, prime, 2, out, 30);
}
/* 10 ids of each of n_streams streams, sampled on threads threads. */
static chargan_status sample_on_threads(fx *f, uint32_t n_streams, uint32_t threads)
{
    chargan_sample_options o;
    chargan_sample_options_init(&o);
    o.n_streams = n_streams;
    o.length = 10;
    o.threads = threads;
    int32_t out[3 * 10];
    ck_assert_uint_le(n_streams * o.length, sizeof out / sizeof out[0]);
    return chargan_model_sample_ids(f->gen, &o, NULL, 0, out, n_streams * o.length);
}
/* 3 streams on 3 threads: a shard of streams each */
static chargan_status run_sample_sharded(fx *f) { return sample_on_threads(f, 3, 3); }
/* 1 stream on 2 threads: they share each step (on a machine of 2 cores or more) */
static chargan_status run_sample_split(fx *f) { return sample_on_threads(f, 1, 2); }
static chargan_status run_sample_text(fx *f)
{
    chargan_sample_options o;
    chargan_sample_options_init(&o);
    o.n_streams = 2;
    o.length = 12;
    return chargan_model_sample_text(f->gen, &o, "Shall I", &f->text_out);
}
static chargan_status run_nll_oracle(fx *f)
{
    chargan_sample_options o;
    chargan_sample_options_init(&o);
    o.n_streams = 3;
    o.length = 9;
    double nll;
    return chargan_nll_oracle(f->gen, f->disc, &o, &nll);
}
static chargan_status run_model_save(fx *f) { return chargan_model_save(f->gen, path_of("m")); }
static chargan_status run_model_load(fx *f)
{
    return chargan_model_load(f->path, CHARGAN_GENERATOR, &f->model_out);
}
static chargan_status run_opt_new(fx *f)
{
    chargan_optimizer_config c;
    chargan_optimizer_config_init(&c, CHARGAN_RMSPROP);
    c.momentum = 0.5f;
    return chargan_optimizer_new(&c, &f->opt_out);
}
static chargan_status trainer_new_with(fx *f, int estimator, uint32_t threads)
{
    chargan_trainer_config tc = trainer_config(estimator, threads);
    chargan_status st = chargan_trainer_new(&tc, f->gen, NULL, f->disc, NULL, &f->tr_out);
    if (st == CHARGAN_OK)
        f->gen = f->disc = NULL; /* adopted */
    return st;
}
static chargan_status run_trainer_new_mle(fx *f) { return trainer_new_with(f, 0, 1); }
static chargan_status run_trainer_new_sharded(fx *f) { return trainer_new_with(f, 0, 3); }
static chargan_status run_trainer_new_reinforce(fx *f)
{
    return trainer_new_with(f, CHARGAN_GAN_REINFORCE, 1);
}
static chargan_status run_trainer_new_gumbel(fx *f)
{
    return trainer_new_with(f, CHARGAN_GAN_GUMBEL, 2);
}
static chargan_status run_set_corpus_text(fx *f)
{
    return chargan_trainer_set_corpus_text(f->tr, text, text_len);
}
static chargan_status run_set_corpus_ids(fx *f)
{
    return chargan_trainer_set_corpus_ids(f->tr, f->ids, f->n_ids);
}
static chargan_status run_set_corpus_sequences(fx *f)
{
    return chargan_trainer_set_corpus_sequences(f->tr, f->ids, f->n_ids / 8, 8);
}
static chargan_status run_mle_step(fx *f) { return chargan_trainer_mle_step(f->tr, NULL); }
static chargan_status run_mle_step_batch(fx *f)
{
    int32_t ids[3 * 9];
    for (int i = 0; i < 27; i++)
        ids[i] = 2 + i % 7;
    return chargan_trainer_mle_step_batch(f->tr, ids, NULL);
}
static chargan_status run_pretrain(fx *f) { return chargan_trainer_pretrain_generator(f->tr, 3); }
static chargan_status run_d_step(fx *f) { return chargan_trainer_d_step(f->tr, NULL, NULL); }
static chargan_status run_gan_step(fx *f) { return chargan_trainer_gan_step(f->tr, NULL, NULL); }
static chargan_status run_adversarial(fx *f) { return chargan_trainer_adversarial(f->tr, 2); }
static chargan_status run_pretrain_d(fx *f)
{
    return chargan_trainer_pretrain_discriminator(f->tr, 2);
}
static chargan_status run_evaluate(fx *f)
{
    double nll;
    return chargan_trainer_evaluate(f->tr, &nll, NULL);
}
static chargan_status run_eval_disc(fx *f)
{
    double acc;
    return chargan_trainer_eval_discriminator(f->tr, 2, &acc);
}
static chargan_status run_trainer_save(fx *f)
{
    return chargan_trainer_save(f->tr, path_of("tr.ckpt"));
}
static chargan_status run_trainer_load(fx *f) { return chargan_trainer_load(f->path, &f->tr_out); }
static chargan_status run_bleu(fx *f)
{
    (void)f;
    const char *hyp[] = {"shall i compare thee to a summer's day", "thou art more lovely"};
    const char *ref[] = {"shall i compare thee", "thou art more lovely and more temperate",
                         "rough winds do shake"};
    double b[3];
    return chargan_bleu(hyp, 2, ref, 3, 4, b);
}
static chargan_status run_self_bleu(fx *f)
{
    (void)f;
    const char *t[] = {"a b c d e", "a b c x y", "q r s a b"};
    double b[2];
    return chargan_self_bleu(t, 3, 3, b);
}

static const op_def alloc_ops[] = {
    {"tokenizer_new", NULL, run_tok_new},
    {"tokenizer_fit", with_empty_tok, run_tok_fit},
    {"tokenizer_fit (refit)", with_tok, run_tok_fit},
    {"tokenizer_encode", with_tok, run_tok_encode},
    {"tokenizer_decode", with_tok, run_tok_decode},
    {"tokenizer_save_buffer", with_tok, run_tok_save_buffer},
    {"tokenizer_load_buffer", with_tok_buffer, run_tok_load_buffer},
    {"tokenizer_save", with_tok, run_tok_save},
    {"tokenizer_load", with_tok_file, run_tok_load},
    {"model_new (generator)", NULL, run_gen_new},
    {"model_new (discriminator)", NULL, run_disc_new},
    {"model_set_tokenizer", with_gen_and_tok, run_set_tok},
    {"model_nll", with_gen_ids, run_nll},
    {"model_stream_nll", with_gen_ids, run_stream_nll},
    {"model_sample_ids", with_gen, run_sample_ids},
    {"model_sample_ids (3 threads)", with_gen, run_sample_sharded},
    {"model_sample_ids (1 stream, 2 threads)", with_wide_gen, run_sample_split},
    {"model_sample_text", with_gen, run_sample_text},
    {"nll_oracle", with_two_gens, run_nll_oracle},
    {"model_save", with_gen, run_model_save},
    {"model_load", with_model_file, run_model_load},
    {"optimizer_new", NULL, run_opt_new},
    {"trainer_new (MLE)", with_models, run_trainer_new_mle},
    {"trainer_new (3 threads)", with_models, run_trainer_new_sharded},
    {"trainer_new (REINFORCE, rollouts)", with_models, run_trainer_new_reinforce},
    {"trainer_new (Gumbel, 2 threads)", with_models, run_trainer_new_gumbel},
    {"trainer_set_corpus_text (fits a tokenizer)", with_bare_trainer, run_set_corpus_text},
    {"trainer_set_corpus_text", with_mle_trainer, run_set_corpus_text},
    {"trainer_set_corpus_ids", with_trainer_ids, run_set_corpus_ids},
    {"trainer_set_corpus_sequences", with_trainer_ids, run_set_corpus_sequences},
    {"trainer_mle_step", with_mle_trainer, run_mle_step},
    {"trainer_mle_step (2 threads)", with_sharded_trainer, run_mle_step},
    {"trainer_mle_step_batch", with_mle_trainer, run_mle_step_batch},
    {"trainer_pretrain_generator", with_mle_trainer, run_pretrain},
    {"trainer_d_step", with_reinforce_trainer, run_d_step},
    {"trainer_pretrain_discriminator", with_gumbel_trainer, run_pretrain_d},
    {"trainer_gan_step (REINFORCE)", with_reinforce_trainer, run_gan_step},
    {"trainer_gan_step (Gumbel)", with_gumbel_trainer, run_gan_step},
    {"trainer_adversarial", with_gumbel_trainer, run_adversarial},
    {"trainer_evaluate", with_mle_trainer, run_evaluate},
    {"trainer_eval_discriminator", with_gumbel_trainer, run_eval_disc},
    {"trainer_eval_discriminator (Gumbel, 2 threads)", with_sharded_gumbel_trainer, run_eval_disc},
    {"trainer_save", with_trainer_file, run_trainer_save},
    {"trainer_load", with_trainer_file, run_trainer_load},
    {"bleu", NULL, run_bleu},
    {"self_bleu", NULL, run_self_bleu},
};
#define N_ALLOC_OPS (sizeof alloc_ops / sizeof alloc_ops[0])

START_TEST(allocation_failure_everywhere)
{
    long total = alloc_sweep(&alloc_ops[_i]);
    (void)total;
    ck_assert_int_eq(count_temporaries(), 0);
}
END_TEST

/* A first step that fails for memory changes nothing a checkpoint records:
 * the step counter stays, and the next step is the one an undisturbed run
 * takes, to the bit.  The optimizers sized their state only in their first
 * update, after the batch, noise and masks were drawn (and, in a GAN step,
 * after the discriminator's update): the next step drew other ones. */
static chargan_status first_step(chargan_trainer *tr, int estimator)
{
    return estimator == CHARGAN_GAN_NONE ? chargan_trainer_mle_step(tr, NULL)
                                         : chargan_trainer_gan_step(tr, NULL, NULL);
}

START_TEST(failed_step_changes_no_counter)
{
    static const int estimators[] = {CHARGAN_GAN_NONE, CHARGAN_GAN_REINFORCE, CHARGAN_GAN_GUMBEL};
    const int estimator = estimators[_i % 3];
    const uint32_t threads = _i < 3 ? 1 : 2;
    chargan_trainer *want_tr = make_trainer(estimator, threads);
    ck_assert_int_eq(first_step(want_tr, estimator), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_save(want_tr, path_of("want.ckpt")), CHARGAN_OK);
    chargan_trainer_free(want_tr);
    size_t want_size;
    char *want = cg_test_read_file(path_of("want.ckpt"), &want_size);
    long k;
    for (k = 0; k < 1000; k++) {
        chargan_trainer *tr = make_trainer(estimator, threads);
        cg_alloc_fail_after(k);
        chargan_status st = first_step(tr, estimator);
        cg_alloc_fail_after(-1);
        uint64_t step;
        ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
        if (st == CHARGAN_OK) {
            ck_assert_uint_eq(step, 1);
            chargan_trainer_free(tr);
            break;
        }
        ck_assert_int_eq(st, CHARGAN_E_NOMEM);
        ck_assert_uint_eq(step, 0);
        ck_assert_int_eq(first_step(tr, estimator), CHARGAN_OK);
        ck_assert_int_eq(chargan_trainer_save(tr, path_of("got.ckpt")), CHARGAN_OK);
        chargan_trainer_free(tr);
        size_t got_size;
        char *got = cg_test_read_file(path_of("got.ckpt"), &got_size);
        ck_assert_msg(got_size == want_size && memcmp(got, want, want_size) == 0,
                      "estimator %d, %u threads: the step after allocation %ld failed is not an "
                      "undisturbed run's", estimator, threads, k);
        free(got);
    }
    ck_assert(k > 0 && k < 1000);
    free(want);
}
END_TEST

/* An evaluation sizes no optimizer state (it needs none, and must not fail
 * for it); a discriminator step sizes the discriminator's alone. */
START_TEST(evaluation_sizes_no_optimizer_state)
{
    chargan_trainer *tr = make_trainer(CHARGAN_GAN_GUMBEL, 1);
    double nll;
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_OK);
    ck_assert_uint_eq(tr->gopt->n, 0);
    ck_assert_uint_eq(tr->dopt->n, 0);
    ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, NULL), CHARGAN_OK);
    ck_assert_uint_eq(tr->gopt->n, 0);
    ck_assert_uint_gt(tr->dopt->n, 0);
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- write failures */

static bool same_file(const char *path, const void *bytes, size_t n)
{
    size_t got;
    char *data = cg_test_read_file(path, &got);
    bool same = got == n && memcmp(data, bytes, n) == 0;
    free(data);
    return same;
}

/* Puts bytes back at path, as a previous save left them. */
static void restore_file(const char *path, const void *bytes, size_t n)
{
    FILE *w = fopen(path, "wb");
    ck_assert_ptr_nonnull(w);
    ck_assert_uint_eq(fwrite(bytes, 1, n, w), n);
    ck_assert_int_eq(fclose(w), 0);
}

typedef struct save_kind {
    const char *name;
    void (*setup)(fx *);
    void (*change)(fx *);              /* so that the next save differs */
    chargan_status (*save)(fx *, const char *path);
    chargan_status (*load)(const char *path); /* loads and frees */
} save_kind;

static void change_tok(fx *f) { ck_assert_int_eq(chargan_tokenizer_fit(f->tok, "zzz", 3), 0); }
static void change_gen(fx *f)
{
    /* one weight of tensor 0, through a full copy */
    const char *name;
    uint32_t rank;
    size_t shape[2], numel;
    ck_assert_int_eq(chargan_model_param_info(f->gen, 0, &name, &rank, shape, &numel), 0);
    float *w = malloc(numel * sizeof(float));
    ck_assert_int_eq(chargan_model_param_get(f->gen, 0, w, numel), CHARGAN_OK);
    w[0] += 1.0f;
    ck_assert_int_eq(chargan_model_param_set(f->gen, 0, w, numel), CHARGAN_OK);
    free(w);
}
static void change_tr(fx *f) { ck_assert_int_eq(chargan_trainer_mle_step(f->tr, NULL), 0); }
static chargan_status save_tok(fx *f, const char *p) { return chargan_tokenizer_save(f->tok, p); }
static chargan_status save_gen(fx *f, const char *p) { return chargan_model_save(f->gen, p); }
static chargan_status save_tr(fx *f, const char *p) { return chargan_trainer_save(f->tr, p); }
static chargan_status load_tok(const char *p)
{
    chargan_tokenizer *t = NULL;
    chargan_status st = chargan_tokenizer_load(p, &t);
    chargan_tokenizer_free(t);
    return st;
}
static chargan_status load_gen(const char *p)
{
    chargan_model *m = NULL;
    chargan_status st = chargan_model_load(p, CHARGAN_GENERATOR, &m);
    chargan_model_free(m);
    return st;
}
static chargan_status load_tr(const char *p)
{
    chargan_trainer *t = NULL;
    chargan_status st = chargan_trainer_load(p, &t);
    chargan_trainer_free(t);
    return st;
}

static const save_kind save_kinds[] = {
    {"tokenizer_save", with_tok, change_tok, save_tok, load_tok},
    {"model_save", with_gen, change_gen, save_gen, load_gen},
    {"trainer_save", with_reinforce_trainer, change_tr, save_tr, load_tr},
};

/* Every system call of the save fails in turn, with ENOSPC and with EIO. */
START_TEST(write_failure_everywhere)
{
    const save_kind *sk = &save_kinds[_i];
    static const int errnos[] = {ENOSPC, EIO};
    long trials = 0;
    for (size_t e = 0; e < 2; e++) {
        fx f;
        memset(&f, 0, sizeof f);
        sk->setup(&f);
        const char *path = path_of("saved");
        ck_assert_int_eq(sk->save(&f, path), CHARGAN_OK);
        size_t n_old;
        char *old = cg_test_read_file(path, &n_old);
        sk->change(&f);
        long k;
        for (k = 0; k < 1000; k++) {
            cg_io_fail_after(k, errnos[e]);
            chargan_status st = sk->save(&f, path);
            cg_io_fail_after(-1, 0);
            if (st == CHARGAN_OK)
                break;
            trials++;
            const char *msg = chargan_last_error();
            ck_assert_msg(st == CHARGAN_E_IO, "%s, call %ld failing: status %d: %s", sk->name, k,
                          (int)st, msg);
            assert_contains(msg, strerror(errnos[e]));
            ck_assert_int_eq(chargan_last_errno(), errnos[e]);
            assert_contains(msg, path);
            ck_assert_int_eq(count_temporaries(), 0);
            /* Only a failure to sync the directory comes after the rename:
             * then the new file is in place; before it, the old one. */
            if (strstr(msg, "was replaced by the new file, but syncing its directory failed") ==
                NULL)
                ck_assert_msg(same_file(path, old, n_old), "%s, call %ld failing: the old file "
                              "changed", sk->name, k);
            ck_assert_msg(sk->load(path) == CHARGAN_OK, "%s, call %ld failing: the file no "
                          "longer loads: %s", sk->name, k, chargan_last_error());
        }
        ck_assert_int_ge(k, 8); /* mkstemp, fchmod, write, fsync, access, close, open dir, rename,
                                   fsync dir */
        ck_assert_int_lt(k, 1000);
        ck_assert(!same_file(path, old, n_old));
        ck_assert_int_eq(sk->load(path), CHARGAN_OK);
        free(old);
        fx_free(&f);
    }
    fprintf(stderr, "# %s: %ld write failures injected\n", sk->name, trials);
}
END_TEST

/* A directory the saver may write but not read (mode 0333, not for root:
 * its access check fails, injected here) cannot be synced: the save syncs
 * the file system instead, through a descriptor of the temporary kept for
 * it, and succeeds (it used to replace the file and then report the
 * directory's failure; then to need the temporary opened again by name,
 * which a mode of 000 refused).  Any failure to open a readable directory
 * leaves the old file. */
START_TEST(write_only_directory_syncs_the_file_system)
{
    const save_kind *sk = &save_kinds[_i];
    fx f;
    memset(&f, 0, sizeof f);
    sk->setup(&f);
    const char *path = path_of("saved");
    ck_assert_int_eq(sk->save(&f, path), CHARGAN_OK);
    size_t n_old, n_new;
    char *old = cg_test_read_file(path, &n_old);
    sk->change(&f);
    cg_io_fail_at(-1, 0);
    ck_assert_int_eq(sk->save(&f, path), CHARGAN_OK);
    const long calls = cg_io_fail_at(-1, 0); /* ..., access, close, open dir, rename, fsync dir */
    char *new_bytes = cg_test_read_file(path, &n_new);
    ck_assert(!same_file(path, old, n_old));
    static const int errnos[] = {EACCES, EMFILE};
    for (int e = 0; e < 2; e++) {
        restore_file(path, old, n_old);
        cg_io_fail_at(errnos[e] == EACCES ? calls - 5 : calls - 3, errnos[e]);
        chargan_status st = sk->save(&f, path);
        cg_io_fail_at(-1, 0);
        if (errnos[e] == EACCES) {
            ck_assert_msg(st == CHARGAN_OK, "%s: %s", sk->name, chargan_last_error());
            ck_assert(same_file(path, new_bytes, n_new));
        } else {
            ck_assert_int_eq(st, CHARGAN_E_IO);
            assert_contains(chargan_last_error(), "cannot open the directory of");
            assert_contains(chargan_last_error(), strerror(EMFILE));
            ck_assert(same_file(path, old, n_old));
        }
        ck_assert_int_eq(count_temporaries(), 0);
        ck_assert_int_eq(sk->load(path), CHARGAN_OK);
    }
    free(new_bytes);
    free(old);
    fx_free(&f);
}
END_TEST

/* A real short write: RLIMIT_FSIZE makes the kernel refuse bytes past the
 * limit (EFBIG), as a full disk would (ENOSPC). */
START_TEST(file_size_limit)
{
    chargan_trainer *tr = make_trainer(CHARGAN_GAN_GUMBEL, 1);
    const char *path = path_of("limited.ckpt");
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    size_t n_old;
    char *old = cg_test_read_file(path, &n_old);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK); /* adds Adam state */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = (rlim_t)n_old; /* the new file is larger than the old */
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    chargan_status st = chargan_trainer_save(tr, path);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    ck_assert_int_eq(st, CHARGAN_E_IO);
    assert_contains(chargan_trainer_last_error(tr), strerror(EFBIG));
    ck_assert_int_eq(count_temporaries(), 0);
    ck_assert(same_file(path, old, n_old));
    ck_assert_int_eq(load_tr(path), CHARGAN_OK);
    /* and the trainer saves once there is room */
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    ck_assert_int_eq(load_tr(path), CHARGAN_OK);
    free(old);
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- numeric failures */

static chargan_trainer *trainer_with_lr(int kind, float lr)
{
    chargan_trainer_config tc = trainer_config(CHARGAN_GAN_NONE, 1);
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, (chargan_optimizer_kind)kind);
    oc.lr = lr;
    chargan_optimizer *opt;
    ck_assert_int_eq(chargan_optimizer_new(&oc, &opt), CHARGAN_OK);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, make_gen(true), opt, NULL, NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, text_len), CHARGAN_OK);
    return tr;
}

/* Trains until the first failure; returns its status, the step it names in
 * *step (the generator step the failing call would have been). */
static chargan_status train_until_failure(chargan_trainer *tr, int max_steps, uint64_t *step)
{
    for (int i = 0; i < max_steps; i++) {
        chargan_status st = chargan_trainer_mle_step(tr, NULL);
        if (st != CHARGAN_OK) {
            ck_assert_int_eq(chargan_trainer_global_step(tr, step), CHARGAN_OK);
            *step += 1;
            return st;
        }
    }
    return CHARGAN_OK;
}

/* A huge learning rate: training stops with CHARGAN_E_NUMERIC naming the
 * step, and no non-finite value reaches a file; the last good checkpoint
 * stays and loads. */
START_TEST(huge_learning_rate)
{
    static const int kinds[] = {CHARGAN_SGD, CHARGAN_ADAM, CHARGAN_RMSPROP};
    static const float lrs[] = {1e30f, 1e37f, 1e37f};
    chargan_trainer *tr = trainer_with_lr(kinds[_i], lrs[_i]);
    const char *path = path_of("good.ckpt");
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    size_t n_old;
    char *old = cg_test_read_file(path, &n_old);
    uint64_t step = 0;
    chargan_status st = train_until_failure(tr, 50, &step);
    ck_assert_msg(st == CHARGAN_E_NUMERIC, "status %d: %s", (int)st,
                  chargan_trainer_last_error(tr));
    char want[64];
    snprintf(want, sizeof want, "step %llu", (unsigned long long)step);
    assert_contains(chargan_trainer_last_error(tr), want);
    /* Whatever state the blow-up left, no file gets it. */
    st = chargan_trainer_save(tr, path);
    if (st == CHARGAN_OK) {
        ck_assert_int_eq(load_tr(path), CHARGAN_OK); /* everything in it is finite */
    } else {
        ck_assert_int_eq(st, CHARGAN_E_NUMERIC);
        assert_contains(chargan_trainer_last_error(tr), "non-finite");
        ck_assert(same_file(path, old, n_old));
        ck_assert_int_eq(load_tr(path), CHARGAN_OK);
        st = chargan_model_save(chargan_trainer_generator(tr), path_of("gen.ckpt"));
        ck_assert(st == CHARGAN_OK || st == CHARGAN_E_NUMERIC);
        if (st == CHARGAN_OK)
            ck_assert_int_eq(load_gen(path_of("gen.ckpt")), CHARGAN_OK);
    }
    ck_assert_int_eq(count_temporaries(), 0);
    free(old);
    chargan_trainer_free(tr);
}
END_TEST

/* Model m's tensor name: its index, and its element count in *numel. */
static size_t tensor_index(const chargan_model *m, const char *name, size_t *numel)
{
    size_t idx, shape[2];
    uint32_t rank;
    const char *found;
    ck_assert_int_eq(chargan_model_param_find(m, name, &idx), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_param_info(m, idx, &found, &rank, shape, numel), CHARGAN_OK);
    return idx;
}

/* Gradients too large to square in float: Adam's second moment overflows
 * while the parameters stay finite.  The step must fail, and the saver must
 * not write an optimizer state the loader would reject. */
START_TEST(adam_moment_overflow)
{
    chargan_trainer *tr = trainer_with_lr(CHARGAN_ADAM, 1e-3f);
    chargan_model *g = chargan_trainer_generator(tr);
    size_t numel, idx = tensor_index(g, "out.w", &numel);
    float *w = malloc(numel * sizeof(float));
    for (size_t i = 0; i < numel; i++)
        w[i] = (i % 2 ? 1e22f : -1e22f);
    ck_assert_int_eq(chargan_model_param_set(g, idx, w, numel), CHARGAN_OK);
    free(w);
    const char *path = path_of("adam.ckpt");
    uint64_t step = 0;
    chargan_status st = train_until_failure(tr, 5, &step);
    ck_assert_msg(st == CHARGAN_E_NUMERIC, "status %d: %s", (int)st,
                  chargan_trainer_last_error(tr));
    st = chargan_trainer_save(tr, path);
    if (st == CHARGAN_OK)
        ck_assert_msg(load_tr(path) == CHARGAN_OK, "saved a checkpoint that does not load: %s",
                      chargan_last_error());
    else
        ck_assert_int_eq(st, CHARGAN_E_NUMERIC);
    chargan_trainer_free(tr);
}
END_TEST

/* Finite parameters whose mean loss per token is beyond FLT_MAX (output
 * biases of +-2e38): the step fails with CHARGAN_E_NUMERIC and updates
 * nothing of the generator.  The check was on the double sum, and the step
 * reported success with *loss = +inf.  An adversarial round meets it in its
 * MLE term (mle_weight 1); its discriminator steps before stay done. */
static void expect_loss_beyond_float_range(int estimator, uint32_t threads)
{
    chargan_trainer_config tc = trainer_config(estimator, threads);
    tc.mle_weight = 1.0f;
    chargan_model *g = make_gen(true);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL,
                                         estimator != CHARGAN_GAN_NONE ? make_disc() : NULL, NULL,
                                         &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, text_len), CHARGAN_OK);
    size_t numel, idx = tensor_index(g, "out.b", &numel);
    float *b = malloc(numel * sizeof(float));
    for (size_t i = 0; i < numel; i++)
        b[i] = i + 1 == numel ? 2e38f : -2e38f;
    ck_assert_int_eq(chargan_model_param_set(g, idx, b, numel), CHARGAN_OK);
    float loss = -1.0f, d_loss = -1.0f;
    chargan_status st = estimator == CHARGAN_GAN_NONE ? chargan_trainer_mle_step(tr, &loss)
                                                      : chargan_trainer_gan_step(tr, &loss, &d_loss);
    ck_assert_msg(st == CHARGAN_E_NUMERIC, "estimator %d, %u threads: status %d: %s", estimator,
                  threads, (int)st, chargan_trainer_last_error(tr));
    assert_contains(chargan_trainer_last_error(tr), estimator == CHARGAN_GAN_NONE
                                                        ? "MLE step 1: the loss is not finite"
                                                        : "adversarial step 1: the generator loss "
                                                          "is not finite");
    ck_assert(loss == -1.0f && d_loss == -1.0f);
    uint64_t step;
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 0);
    float *after = malloc(numel * sizeof(float));
    ck_assert_int_eq(chargan_model_param_get(g, idx, after, numel), CHARGAN_OK);
    ck_assert_mem_eq(after, b, numel * sizeof(float));
    free(after);
    free(b);
    chargan_trainer_free(tr);
}

START_TEST(loss_beyond_float_range)
{
    expect_loss_beyond_float_range(CHARGAN_GAN_NONE, 1);
    for (uint32_t threads = 1; threads <= 2; threads++) {
        expect_loss_beyond_float_range(CHARGAN_GAN_REINFORCE, threads);
        expect_loss_beyond_float_range(CHARGAN_GAN_GUMBEL, threads);
    }
}
END_TEST

/* A REINFORCE step that fails after its advantages leaves the baseline as
 * it was: it was moved first, and a step whose rewards were NaN (the
 * reviewer's discriminator, pushed to weights of 2e38 by RMSprop at lr 2e37,
 * through a BLAS whose partial sums met as inf - inf) set it to NaN for good:
 * the trainer saved a checkpoint its loader refused, over the last good one,
 * and failed every later step.  Here the generator's update fails (its MLE
 * term beyond the float range, as in loss_beyond_float_range), which comes
 * after the advantages on every path: rollouts or not, sharded or not. */
static void expect_baseline_kept(uint32_t threads, uint32_t rollouts)
{
    chargan_trainer_config tc = trainer_config(CHARGAN_GAN_REINFORCE, threads);
    tc.rollouts = rollouts;
    tc.mle_weight = 1.0f;
    chargan_model *g = make_gen(true);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, make_disc(), NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, text_len), CHARGAN_OK);
    size_t numel, idx = tensor_index(g, "out.b", &numel);
    float *b = malloc(numel * sizeof(float));
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < numel; i++)
        b[i] = i + 1 == numel ? 2e38f : -2e38f;
    ck_assert_int_eq(chargan_model_param_set(g, idx, b, numel), CHARGAN_OK);
    free(b);
    chargan_status st = chargan_trainer_gan_step(tr, NULL, NULL);
    ck_assert_msg(st == CHARGAN_E_NUMERIC, "%u threads, %u rollouts: status %d: %s", threads,
                  rollouts, (int)st, chargan_trainer_last_error(tr));
    assert_contains(chargan_trainer_last_error(tr), "the generator loss is not finite");
    ck_assert_uint_eq(tr->gan.baseline_set, 0);
    /* The models' weights (out.b of +-2e38 among them) and state are
     * finite: the trainer saves, and what it saved loads. */
    const char *path = path_of("baseline.ckpt");
    ck_assert_msg(chargan_trainer_save(tr, path) == CHARGAN_OK, "%s",
                  chargan_trainer_last_error(tr));
    ck_assert_msg(load_tr(path) == CHARGAN_OK, "saved a checkpoint that does not load: %s",
                  chargan_last_error());
    /* and the saver refuses a baseline that is not finite, however it came */
    tr->gan.baseline[0] = NAN;
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_E_NUMERIC);
    assert_contains(chargan_trainer_last_error(tr), "non-finite REINFORCE baseline");
    chargan_trainer_free(tr);
}

START_TEST(reinforce_failure_keeps_baseline)
{
    expect_baseline_kept(1, 0);
    expect_baseline_kept(1, 2);
    expect_baseline_kept(2, 0);
}
END_TEST

/* ---------------------------------------------------------------- hostile corpora */

static chargan_trainer *bare_trainer(void)
{
    chargan_trainer_config tc = trainer_config(CHARGAN_GAN_NONE, 1);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, make_gen(false), NULL, NULL, NULL, &tr), 0);
    return tr;
}

/* A corpus that is refused leaves the trainer as it was: no corpus, and no
 * tokenizer fitted on the refused text (regression: one was attached, and a
 * later good corpus was then encoded with it, all unknown). */
static void expect_refused(const char *what, const char *data, size_t len, chargan_status want,
                           const char *needle)
{
    chargan_trainer *tr = bare_trainer();
    chargan_status st = chargan_trainer_set_corpus_text(tr, data, len);
    ck_assert_msg(st == want, "%s: status %d, expected %d: %s", what, (int)st, (int)want,
                  chargan_trainer_last_error(tr));
    assert_contains(chargan_trainer_last_error(tr), needle);
    ck_assert_msg(chargan_model_tokenizer(chargan_trainer_generator(tr)) == NULL,
                  "%s: a refused corpus left a tokenizer", what);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, text_len), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    ck_assert_uint_eq(vocab_of(chargan_model_tokenizer(chargan_trainer_generator(tr))),
                      chargan_trainer_generator(tr)->V);
    chargan_trainer_free(tr);
}

START_TEST(hostile_corpora)
{
    expect_refused("empty", "", 0, CHARGAN_E_INVALID, "corpus too short: 0 training ids");
    expect_refused("NULL, 0", NULL, 0, CHARGAN_E_INVALID, "corpus too short");
    expect_refused("one character", "a", 1, CHARGAN_E_INVALID, "corpus too short: 1 training");
    /* seq_len 8: a window is 9 ids; with 20% held out, 11 ids leave 9 */
    expect_refused("shorter than a window", "abcdefghij", 10, CHARGAN_E_INVALID,
                   "a window needs seq_len + 1 = 9");
    expect_refused("invalid UTF-8", "abcdef\xff" "ghijklmnopqrstu", 22, CHARGAN_E_UTF8,
                   "offset 6");
    expect_refused("overlong UTF-8", "abcdefghijklmnop\xc0\xaf", 18, CHARGAN_E_UTF8, "offset 16");
    expect_refused("surrogate", "abcdefghijklmnop\xed\xa0\x80", 19, CHARGAN_E_UTF8, "offset 16");
    expect_refused("truncated UTF-8", "abcdefghijklmnopqrs\xe2\x82", 21, CHARGAN_E_UTF8,
                   "offset 19");
    /* binary: every byte value, so some invalid sequence comes early */
    char bin[4096];
    uint64_t x = 12345;
    for (size_t i = 0; i < sizeof bin; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        bin[i] = (char)(x >> 56);
    }
    expect_refused("binary", bin, sizeof bin, CHARGAN_E_UTF8, "offset");
    ck_assert_int_eq(count_temporaries(), 0);
}
END_TEST

/* NUL bytes are characters like any other (the length, not a terminator,
 * bounds the text). */
START_TEST(corpus_with_nul_bytes)
{
    chargan_trainer *tr = bare_trainer();
    char data[200];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = i % 3 == 0 ? '\0' : (char)('a' + i % 7);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, data, sizeof data), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    int32_t id;
    ck_assert_int_eq(chargan_tokenizer_lookup(
                         chargan_model_tokenizer(chargan_trainer_generator(tr)), 0, &id), 0);
    ck_assert_int_gt(id, CHARGAN_ID_UNKNOWN);
    chargan_trainer_free(tr);
}
END_TEST

/* Text made only of characters the generator's tokenizer lacks is refused;
 * some unknown characters among known ones are fine. */
START_TEST(out_of_vocabulary_corpus)
{
    chargan_trainer_config tc = trainer_config(CHARGAN_GAN_NONE, 1);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, make_gen(true), NULL, NULL, NULL, &tr), 0);
    /* CJK and digits-free symbols: none is in the sonnets */
    char oov[600];
    size_t n = 0;
    while (n + 3 <= sizeof oov) {
        memcpy(oov + n, "\xe6\xbc\xa2", 3); /* U+6F22 */
        n += 3;
    }
    chargan_status st = chargan_trainer_set_corpus_text(tr, oov, n);
    ck_assert_int_eq(st, CHARGAN_E_INVALID);
    assert_contains(chargan_trainer_last_error(tr), "no character of the tokenizer's vocabulary");
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_E_STATE);
    /* mixed: accepted, the unknown ones become CHARGAN_ID_UNKNOWN */
    memcpy(oov, "thee  ", 6); /* two whole characters */
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, oov, n), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    chargan_trainer_free(tr);

    /* The replace policy turns binary into unknown ids: refused the same way. */
    chargan_tokenizer_options to;
    chargan_tokenizer_options_init(&to);
    to.utf8_policy = CHARGAN_UTF8_REPLACE;
    chargan_tokenizer *tok;
    ck_assert_int_eq(chargan_tokenizer_new(&to, &tok), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "abc", 3), CHARGAN_OK);
    chargan_model_config mc = gen_config(8);
    chargan_model *g;
    ck_assert_int_eq(chargan_model_new(&mc, &g), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_set_tokenizer(g, tok), CHARGAN_OK);
    chargan_tokenizer_free(tok);
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, NULL, NULL, &tr), CHARGAN_OK);
    char bin[300];
    memset(bin, 0xff, sizeof bin);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, bin, sizeof bin), CHARGAN_E_INVALID);
    chargan_trainer_free(tr);
}
END_TEST

/* One line of 100 MB: no line-length limit, no quadratic pass; it trains. */
START_TEST(hundred_megabyte_line)
{
    if (getenv("CHARGAN_TEST_NO_HUGE")) {
        fprintf(stderr, "# skipped: CHARGAN_TEST_NO_HUGE is set\n");
        return;
    }
    size_t n = (size_t)100 << 20;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < n; i += text_len) {
        size_t k = n - i < text_len ? n - i : text_len;
        memcpy(big + i, text, k);
    }
    for (size_t i = 0; i < n; i++)
        if (big[i] == '\n')
            big[i] = ' ';
    chargan_trainer *tr = bare_trainer();
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, big, n), CHARGAN_OK);
    free(big);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    int32_t id;
    ck_assert_int_eq(chargan_tokenizer_lookup(
                         chargan_model_tokenizer(chargan_trainer_generator(tr)), '\n', &id), 0);
    ck_assert_int_eq(id, CHARGAN_ID_UNKNOWN); /* there is no newline in it */
    chargan_trainer_free(tr);
}
END_TEST

START_TEST(hostile_id_corpora)
{
    chargan_trainer *tr = make_trainer(CHARGAN_GAN_NONE, 1);
    int V = chargan_trainer_generator(tr)->V;
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = 2;
    ids[17] = V; /* outside the vocabulary */
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 40), CHARGAN_E_RANGE);
    assert_contains(chargan_trainer_last_error(tr), "17");
    ids[17] = -1;
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 40), CHARGAN_E_RANGE);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 5), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, NULL, 0), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, NULL, 5), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, ids, 4, 7), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, ids, 0, 8), CHARGAN_E_INVALID);
    assert_contains(chargan_trainer_last_error(tr), "leave none for training");
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, ids, SIZE_MAX / 4, 8),
                     CHARGAN_E_INVALID);
    assert_contains(chargan_trainer_last_error(tr), "more than memory can address");
    /* the corpus set before all this is still there */
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- API misuse */

START_TEST(null_handles)
{
    chargan_tokenizer *tok = NULL;
    chargan_model *m = NULL;
    chargan_trainer *tr = NULL;
    chargan_optimizer *opt = NULL;
    uint32_t u32;
    uint64_t u64;
    int32_t id;
    size_t sz, shape[2];
    double d;
    float fl;
    const char *name;
    void *buf;
    char *s;
    chargan_sample_options so;
    chargan_sample_options_init(&so);
    chargan_model_config mc;
    chargan_model_config_init(&mc, CHARGAN_GENERATOR);
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_ADAM);
    int32_t ids[4] = {2, 2, 2, 2};
    const char *texts[2] = {"a b", "c d"};
#define INVALID(call)                                                                              \
    do {                                                                                           \
        chargan_status st_ = (call);                                                               \
        ck_assert_msg(st_ == CHARGAN_E_INVALID, "%s: status %d", #call, (int)st_);               \
        ck_assert_msg(chargan_last_error()[0] != '\0', "%s: no message", #call);                  \
    } while (0)
    INVALID(chargan_tokenizer_new(NULL, NULL));
    INVALID(chargan_tokenizer_fit(NULL, "a", 1));
    INVALID(chargan_tokenizer_vocab_size(NULL, &u32));
    INVALID(chargan_tokenizer_id_info(NULL, 2, &u32, &u64));
    INVALID(chargan_tokenizer_lookup(NULL, 'a', &id));
    INVALID(chargan_tokenizer_encode(NULL, "a", 1, ids, 4, &sz));
    INVALID(chargan_tokenizer_decode(NULL, ids, 1, (char *)ids, 4, &sz));
    INVALID(chargan_tokenizer_save_buffer(NULL, &buf, &sz));
    INVALID(chargan_tokenizer_load_buffer(NULL, 0, &tok));
    INVALID(chargan_tokenizer_save(NULL, "x"));
    INVALID(chargan_tokenizer_load(NULL, &tok));
    INVALID(chargan_tokenizer_load("x", NULL));
    INVALID(chargan_model_new(NULL, &m));
    INVALID(chargan_model_new(&mc, NULL));
    INVALID(chargan_model_get_config(NULL, &mc));
    INVALID(chargan_model_set_tokenizer(NULL, NULL));
    INVALID(chargan_model_num_params(NULL, &sz));
    INVALID(chargan_model_param_info(NULL, 0, &name, &u32, shape, &sz));
    INVALID(chargan_model_param_find(NULL, "embed", &sz));
    INVALID(chargan_model_param_get(NULL, 0, &fl, 1));
    INVALID(chargan_model_param_set(NULL, 0, &fl, 1));
    INVALID(chargan_model_num_weights(NULL, &sz));
    INVALID(chargan_model_nll(NULL, ids, 1, 4, &d));
    INVALID(chargan_model_save(NULL, "x"));
    INVALID(chargan_model_load(NULL, CHARGAN_GENERATOR, &m));
    INVALID(chargan_model_load("x", CHARGAN_GENERATOR, NULL));
    INVALID(chargan_model_sample_ids(NULL, &so, NULL, 0, ids, 4));
    INVALID(chargan_model_sample_text(NULL, &so, NULL, &s));
    INVALID(chargan_model_stream_nll(NULL, ids, 4, 1, &d));
    INVALID(chargan_nll_oracle(NULL, NULL, &so, &d));
    INVALID(chargan_optimizer_new(NULL, &opt));
    INVALID(chargan_optimizer_new(&oc, NULL));
    INVALID(chargan_optimizer_get_config(NULL, &oc));
    INVALID(chargan_optimizer_set_lr(NULL, 0.1f));
    INVALID(chargan_optimizer_steps(NULL, &u64));
    INVALID(chargan_trainer_new(NULL, NULL, NULL, NULL, NULL, &tr));
    INVALID(chargan_trainer_new(&tc, NULL, NULL, NULL, NULL, &tr));
    INVALID(chargan_trainer_get_config(NULL, &tc));
    INVALID(chargan_trainer_set_progress(NULL, NULL, NULL));
    INVALID(chargan_trainer_set_corpus_text(NULL, "a", 1));
    INVALID(chargan_trainer_set_corpus_ids(NULL, ids, 4));
    INVALID(chargan_trainer_set_corpus_sequences(NULL, ids, 1, 4));
    INVALID(chargan_trainer_mle_step(NULL, &fl));
    INVALID(chargan_trainer_mle_step_batch(NULL, ids, &fl));
    INVALID(chargan_trainer_pretrain_generator(NULL, 1));
    INVALID(chargan_trainer_d_step(NULL, &fl, &fl));
    INVALID(chargan_trainer_pretrain_discriminator(NULL, 1));
    INVALID(chargan_trainer_gan_step(NULL, &fl, &fl));
    INVALID(chargan_trainer_adversarial(NULL, 1));
    INVALID(chargan_trainer_evaluate(NULL, &d, &d));
    INVALID(chargan_trainer_global_step(NULL, &u64));
    INVALID(chargan_trainer_save(NULL, "x"));
    INVALID(chargan_trainer_load(NULL, &tr));
    INVALID(chargan_trainer_load("x", NULL));
    INVALID(chargan_trainer_eval_discriminator(NULL, 1, &d));
    INVALID(chargan_bleu(NULL, 1, texts, 2, 2, &d));
    INVALID(chargan_bleu(texts, 1, NULL, 2, 2, &d));
    INVALID(chargan_self_bleu(NULL, 2, 2, &d));
    INVALID(chargan_tokenizer_options_init_sized(NULL, sizeof(chargan_tokenizer_options)));
    INVALID(chargan_model_config_init_sized(NULL, sizeof mc, CHARGAN_GENERATOR));
    INVALID(chargan_optimizer_config_init_sized(NULL, sizeof oc, CHARGAN_ADAM));
    INVALID(chargan_trainer_config_init_sized(NULL, sizeof tc));
    INVALID(chargan_sample_options_init_sized(NULL, sizeof so));
    /* handle-less accessors and frees */
    ck_assert_ptr_null(chargan_model_tokenizer(NULL));
    ck_assert_ptr_null(chargan_trainer_generator(NULL));
    ck_assert_ptr_null(chargan_trainer_discriminator(NULL));
    ck_assert_ptr_null(chargan_trainer_optimizer(NULL, CHARGAN_GENERATOR));
    ck_assert_ptr_nonnull(chargan_tokenizer_last_error(NULL));
    ck_assert_ptr_nonnull(chargan_model_last_error(NULL));
    ck_assert_ptr_nonnull(chargan_optimizer_last_error(NULL));
    ck_assert_ptr_nonnull(chargan_trainer_last_error(NULL));
    chargan_tokenizer_free(NULL);
    chargan_model_free(NULL);
    chargan_optimizer_free(NULL);
    chargan_trainer_free(NULL);
    chargan_free(NULL);

    /* NULL outputs with real handles */
    chargan_model *g = make_gen(true);
    chargan_tokenizer *t = chargan_model_tokenizer(g);
    INVALID(chargan_tokenizer_vocab_size(t, NULL));
    INVALID(chargan_tokenizer_lookup(t, 'a', NULL));
    INVALID(chargan_tokenizer_encode(t, NULL, 3, ids, 4, &sz));
    INVALID(chargan_tokenizer_encode(t, "abc", 3, ids, 4, NULL));
    INVALID(chargan_tokenizer_decode(t, NULL, 3, (char *)ids, 4, &sz));
    /* NULL with length 0 is an empty input (an empty array's data() may be NULL) */
    chargan_tokenizer *own = make_tok();
    uint32_t v_before, v_after;
    ck_assert_int_eq(chargan_tokenizer_vocab_size(own, &v_before), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(own, NULL, 0), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_vocab_size(own, &v_after), CHARGAN_OK);
    ck_assert_uint_eq(v_after, v_before);
    chargan_tokenizer_free(own);
    sz = 99;
    ck_assert_int_eq(chargan_tokenizer_encode(t, NULL, 0, ids, 4, &sz), CHARGAN_OK);
    ck_assert_uint_eq(sz, 0);
    sz = 99;
    char empty[4] = "xyz";
    ck_assert_int_eq(chargan_tokenizer_decode(t, NULL, 0, empty, sizeof empty, &sz), CHARGAN_OK);
    ck_assert_uint_eq(sz, 0);
    ck_assert_str_eq(empty, "");
    INVALID(chargan_tokenizer_save_buffer(t, NULL, &sz));
    INVALID(chargan_tokenizer_save(t, NULL));
    INVALID(chargan_model_get_config(g, NULL));
    INVALID(chargan_model_num_params(g, NULL));
    INVALID(chargan_model_param_find(g, NULL, &sz));
    INVALID(chargan_model_param_get(g, 0, NULL, 1));
    INVALID(chargan_model_nll(g, NULL, 1, 4, &d));
    INVALID(chargan_model_nll(g, ids, 1, 4, NULL));
    INVALID(chargan_model_save(g, NULL));
    INVALID(chargan_model_sample_ids(g, NULL, NULL, 0, ids, 4));
    INVALID(chargan_model_sample_ids(g, &so, NULL, 0, NULL, 4));
    INVALID(chargan_model_sample_text(g, &so, NULL, NULL));
    INVALID(chargan_model_stream_nll(g, ids, 4, 1, NULL));
    INVALID(chargan_nll_oracle(g, NULL, &so, &d));
    INVALID(chargan_nll_oracle(g, g, NULL, &d));
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, NULL, NULL, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, NULL, NULL, &tr), CHARGAN_OK);
    INVALID(chargan_trainer_evaluate(tr, NULL, &d));
    INVALID(chargan_trainer_global_step(tr, NULL));
    INVALID(chargan_trainer_save(tr, NULL));
    INVALID(chargan_trainer_mle_step_batch(tr, NULL, &fl));
    INVALID(chargan_trainer_get_config(tr, NULL));
    /* with the handle at hand, each failure is also the handle's last one */
#define ON_HANDLE(call, last_error, text)                                                         \
    do {                                                                                           \
        ck_assert_int_eq((call), CHARGAN_E_INVALID);                                               \
        assert_contains(last_error, text);                                                         \
    } while (0)
    chargan_trainer_config small;
    small.struct_size = 16;
    chargan_optimizer_config ocfg;
    ocfg.struct_size = 1;
    chargan_optimizer *gopt = chargan_trainer_optimizer(tr, CHARGAN_GENERATOR);
    ON_HANDLE(chargan_model_num_params(g, NULL), chargan_model_last_error(g), "num_params");
    ON_HANDLE(chargan_model_num_weights(g, NULL), chargan_model_last_error(g), "num_weights");
    ON_HANDLE(chargan_model_get_config(g, NULL), chargan_model_last_error(g), "get_config");
    ON_HANDLE(chargan_trainer_global_step(tr, NULL), chargan_trainer_last_error(tr), "global_step");
    ON_HANDLE(chargan_trainer_get_config(tr, NULL), chargan_trainer_last_error(tr), "get_config");
    ON_HANDLE(chargan_trainer_get_config(tr, &small), chargan_trainer_last_error(tr),
              "struct_size 16");
    ON_HANDLE(chargan_optimizer_steps(gopt, NULL), chargan_optimizer_last_error(gopt), "steps");
    ON_HANDLE(chargan_optimizer_get_config(gopt, &ocfg), chargan_optimizer_last_error(gopt),
              "struct_size 1");
    ON_HANDLE(chargan_optimizer_get_config(gopt, NULL), chargan_optimizer_last_error(gopt),
              "cfg is NULL");
#undef ON_HANDLE
    chargan_trainer_free(tr);
#undef INVALID
}
END_TEST

/* Size-prefixed structs: too small, a newer caller's larger struct with an
 * unknown non-zero tail, and a struct_size field that disagrees. */
START_TEST(wrong_struct_sizes)
{
    union {
        chargan_model_config mc;
        chargan_trainer_config tc;
        chargan_optimizer_config oc;
        chargan_sample_options so;
        chargan_tokenizer_options to;
        unsigned char bytes[1024];
    } u;
    static const size_t smalls[] = {0, 1, sizeof(size_t), sizeof(size_t) + 3};
    for (size_t i = 0; i < 4; i++) {
        size_t s = smalls[i];
        ck_assert_int_eq(chargan_model_config_init_sized(&u.mc, s, CHARGAN_GENERATOR),
                         CHARGAN_E_INVALID);
        ck_assert_int_eq(chargan_trainer_config_init_sized(&u.tc, s), CHARGAN_E_INVALID);
        ck_assert_int_eq(chargan_optimizer_config_init_sized(&u.oc, s, CHARGAN_ADAM),
                         CHARGAN_E_INVALID);
        ck_assert_int_eq(chargan_sample_options_init_sized(&u.so, s), CHARGAN_E_INVALID);
        ck_assert_int_eq(chargan_tokenizer_options_init_sized(&u.to, s), CHARGAN_E_INVALID);
    }
    /* A larger struct: defaults in our part, zeros in the caller's tail, and
     * the struct_size the caller gave. */
    memset(u.bytes, 0xAB, sizeof u.bytes);
    ck_assert_int_eq(chargan_trainer_config_init_sized(&u.tc, sizeof u.tc + 16), CHARGAN_OK);
    ck_assert_uint_eq(u.tc.struct_size, sizeof u.tc + 16);
    for (size_t i = sizeof u.tc; i < sizeof u.tc + 16; i++)
        ck_assert_uint_eq(u.bytes[i], 0);
    ck_assert_uint_eq(u.bytes[sizeof u.tc + 16], 0xAB); /* nothing past it */

    chargan_model *g = make_gen(true);
    chargan_model *m = NULL;
    chargan_trainer *tr = NULL;
    chargan_optimizer *opt = NULL;
    /* a struct_size that lies (too small, or unknown non-zero fields) */
    chargan_model_config_init(&u.mc, CHARGAN_GENERATOR);
    u.mc.vocab_size = 10;
    u.mc.struct_size = 4;
    ck_assert_int_eq(chargan_model_new(&u.mc, &m), CHARGAN_E_INVALID);
    ck_assert_ptr_null(m);
    memset(u.bytes, 0, sizeof u.bytes);
    chargan_model_config_init_sized(&u.mc, sizeof u.mc + 8, CHARGAN_GENERATOR);
    u.mc.vocab_size = 10;
    u.bytes[sizeof u.mc + 3] = 1; /* a field this library does not know, asked for */
    ck_assert_int_eq(chargan_model_new(&u.mc, &m), CHARGAN_E_INVALID);
    u.bytes[sizeof u.mc + 3] = 0; /* left at its zero default: fine */
    ck_assert_int_eq(chargan_model_new(&u.mc, &m), CHARGAN_OK);
    chargan_model_free(m);

    /* the first published trainer config ends at gan_loss: an older
     * caller's struct is read up to there, the fields after it get their
     * defaults (whatever its memory holds past its end) */
    size_t first_layout = offsetof(chargan_trainer_config, beta_start);
    memset(u.bytes, 0xAB, sizeof u.bytes);
    ck_assert_int_eq(chargan_trainer_config_init_sized(&u.tc, first_layout - 4), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_config_init_sized(&u.tc, first_layout), CHARGAN_OK);
    ck_assert_uint_eq(u.bytes[first_layout], 0xAB); /* nothing past it written */
    u.tc.estimator = CHARGAN_GAN_NONE;
    ck_assert_int_eq(chargan_trainer_new(&u.tc, g, NULL, NULL, NULL, &tr), CHARGAN_OK);
    chargan_trainer_config got;
    chargan_trainer_config_init(&got);
    ck_assert_int_eq(chargan_trainer_get_config(tr, &got), CHARGAN_OK);
    ck_assert(got.beta_start == 1.0f);
    chargan_trainer_free(tr); /* it owned g */
    g = make_gen(true);
    tr = NULL;
    chargan_trainer_config_init(&u.tc);
    u.tc.struct_size = first_layout - 4;
    ck_assert_int_eq(chargan_trainer_new(&u.tc, g, NULL, NULL, NULL, &tr), CHARGAN_E_INVALID);
    ck_assert_ptr_null(tr);
    u.tc.struct_size = 0;
    ck_assert_int_eq(chargan_trainer_new(&u.tc, g, NULL, NULL, NULL, &tr), CHARGAN_E_INVALID);

    chargan_optimizer_config_init(&u.oc, CHARGAN_ADAM);
    u.oc.struct_size = 1;
    ck_assert_int_eq(chargan_optimizer_new(&u.oc, &opt), CHARGAN_E_INVALID);
    ck_assert_ptr_null(opt);
    chargan_optimizer_config_init(&u.oc, CHARGAN_ADAM);
    u.oc.kind = 7;
    ck_assert_int_eq(chargan_optimizer_new(&u.oc, &opt), CHARGAN_E_INVALID);
    u.oc.kind = CHARGAN_ADAM;
    u.oc.lr = NAN;
    ck_assert_int_eq(chargan_optimizer_new(&u.oc, &opt), CHARGAN_E_INVALID);

    chargan_sample_options_init(&u.so);
    u.so.struct_size = 3;
    int32_t out[300];
    char *s = NULL;
    ck_assert_int_eq(chargan_model_sample_ids(g, &u.so, NULL, 0, out, 300), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_model_sample_text(g, &u.so, NULL, &s), CHARGAN_E_INVALID);
    ck_assert_ptr_null(s);
    double d;
    ck_assert_int_eq(chargan_nll_oracle(g, g, &u.so, &d), CHARGAN_E_INVALID);

    chargan_tokenizer_options_init(&u.to);
    u.to.struct_size = 2;
    chargan_tokenizer *tok = NULL;
    ck_assert_int_eq(chargan_tokenizer_new(&u.to, &tok), CHARGAN_E_INVALID);

    /* A garbage struct_size (an uninitialised field) is refused before a
     * byte past the caller's struct is read (ASan would see the overread):
     * the struct alone is allocated, its size claims a page or all memory. */
    static const size_t garbage[] = {4097, SIZE_MAX};
    chargan_sample_options *so = malloc(sizeof *so);
    chargan_model_config *mc = malloc(sizeof *mc);
    ck_assert(so && mc);
    for (size_t i = 0; i < 2; i++) {
        chargan_sample_options_init(so);
        so->struct_size = garbage[i];
        ck_assert_int_eq(chargan_model_sample_ids(g, so, NULL, 0, out, 300), CHARGAN_E_INVALID);
        ck_assert_ptr_nonnull(strstr(chargan_model_last_error(g), "struct_size"));
        chargan_model_config_init(mc, CHARGAN_GENERATOR);
        mc->vocab_size = 10;
        mc->struct_size = garbage[i];
        m = NULL;
        ck_assert_int_eq(chargan_model_new(mc, &m), CHARGAN_E_INVALID);
        ck_assert_ptr_null(m);
        ck_assert_int_eq(chargan_model_config_init_sized(mc, garbage[i], CHARGAN_GENERATOR),
                         CHARGAN_E_INVALID);
        ck_assert_ptr_nonnull(strstr(chargan_last_error(), "struct too large"));
        mc->struct_size = garbage[i]; /* a _get_config reads nothing past it either */
        ck_assert_int_eq(chargan_model_get_config(g, mc), CHARGAN_E_INVALID);
    }
    free(so);
    free(mc);
    ck_assert_ptr_null(tok);

    /* get_config with a struct_size too small to hold the first version */
    u.mc.struct_size = 2;
    ck_assert_int_eq(chargan_model_get_config(g, &u.mc), CHARGAN_E_INVALID);
    u.oc.struct_size = 2;
    chargan_optimizer_config_init(&u.oc, CHARGAN_ADAM);
    ck_assert_int_eq(chargan_optimizer_new(&u.oc, &opt), CHARGAN_OK);
    u.oc.struct_size = 2;
    ck_assert_int_eq(chargan_optimizer_get_config(opt, &u.oc), CHARGAN_E_INVALID);
    chargan_optimizer_free(opt);
    chargan_trainer_config_init(&u.tc);
    ck_assert_int_eq(chargan_trainer_new(&u.tc, g, NULL, NULL, NULL, &tr), CHARGAN_OK);
    u.tc.struct_size = 2;
    ck_assert_int_eq(chargan_trainer_get_config(tr, &u.tc), CHARGAN_E_INVALID);
    chargan_trainer_free(tr);
}
END_TEST

/* An unknown kind is refused by the _init functions, as the header says,
 * and the struct is left as it was. */
START_TEST(unknown_kinds_in_config_init)
{
    chargan_model_config mc;
    memset(&mc, 0xAB, sizeof mc);
    ck_assert_int_eq(chargan_model_config_init(&mc, (chargan_model_kind)2), CHARGAN_E_INVALID);
    ck_assert_ptr_nonnull(strstr(chargan_last_error(), "kind 2"));
    ck_assert_int_eq(chargan_model_config_init(&mc, (chargan_model_kind)-1), CHARGAN_E_INVALID);
    ck_assert_uint_eq(((const unsigned char *)&mc)[0], 0xAB);
    chargan_optimizer_config oc;
    memset(&oc, 0xAB, sizeof oc);
    ck_assert_int_eq(chargan_optimizer_config_init(&oc, (chargan_optimizer_kind)3),
                     CHARGAN_E_INVALID);
    ck_assert_ptr_nonnull(strstr(chargan_last_error(), "got 3"));
    ck_assert_uint_eq(((const unsigned char *)&oc)[0], 0xAB);
    ck_assert_int_eq(chargan_model_config_init(&mc, CHARGAN_DISCRIMINATOR), CHARGAN_OK);
    ck_assert_int_eq(mc.kind, CHARGAN_DISCRIMINATOR);
    ck_assert_int_eq(chargan_optimizer_config_init(&oc, CHARGAN_RMSPROP), CHARGAN_OK);
    ck_assert_int_eq(oc.kind, CHARGAN_RMSPROP);
}
END_TEST

/* Calls out of order get CHARGAN_E_STATE (or CHARGAN_E_INVALID where the
 * argument is the wrong kind of thing), and change nothing. */
START_TEST(calls_out_of_order)
{
    chargan_trainer_config tc = trainer_config(CHARGAN_GAN_NONE, 1);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, make_gen(true), NULL, NULL, NULL, &tr), 0);
    float loss, acc;
    double d;
    ck_assert_int_eq(chargan_trainer_mle_step(tr, &loss), CHARGAN_E_STATE);
    assert_contains(chargan_trainer_last_error(tr), "no corpus");
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 3), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &d, NULL), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_d_step(tr, &loss, &acc), CHARGAN_E_STATE);
    assert_contains(chargan_trainer_last_error(tr), "no discriminator");
    ck_assert_int_eq(chargan_trainer_pretrain_discriminator(tr, 2), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, &loss, &loss), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_adversarial(tr, 2), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_eval_discriminator(tr, 1, &d), CHARGAN_E_STATE);
    /* with a corpus, still no discriminator */
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, text_len), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, &loss, &loss), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_d_step(tr, &loss, &acc), CHARGAN_E_STATE);
    uint64_t step;
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 0);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, &loss), CHARGAN_OK);
    chargan_trainer_free(tr);

    /* A GAN estimator without a discriminator is refused at creation. */
    chargan_model *g = make_gen(true);
    tc = trainer_config(CHARGAN_GAN_GUMBEL, 1);
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, NULL, NULL, &tr), CHARGAN_E_INVALID);
    /* A discriminator but no estimator: d steps work, gan steps do not. */
    tc = trainer_config(CHARGAN_GAN_NONE, 1);
    chargan_model *d_model = make_disc();
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, d_model, NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, text_len), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_d_step(tr, &loss, &acc), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, &loss, &loss), CHARGAN_E_STATE);
    assert_contains(chargan_trainer_last_error(tr), "estimator");
    chargan_trainer_free(tr);

    /* Models of the wrong kind, in the wrong place. */
    chargan_model *gen = make_gen(true), *disc = make_disc();
    ck_assert_int_eq(chargan_trainer_new(&tc, disc, NULL, NULL, NULL, &tr), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_new(&tc, gen, NULL, gen, NULL, &tr), CHARGAN_E_INVALID);
    int32_t out[8];
    chargan_sample_options so;
    chargan_sample_options_init(&so);
    so.length = 8;
    ck_assert_int_eq(chargan_model_sample_ids(disc, &so, NULL, 0, out, 8), CHARGAN_E_INVALID);
    int32_t ids[8] = {2, 3, 2, 3, 2, 3, 2, 3};
    ck_assert_int_eq(chargan_model_nll(disc, ids, 1, 8, &d), CHARGAN_E_INVALID);
    /* sampling text without a tokenizer */
    ck_assert_int_eq(chargan_model_set_tokenizer(gen, NULL), CHARGAN_OK);
    char *s = NULL;
    ck_assert_int_eq(chargan_model_sample_text(gen, &so, NULL, &s), CHARGAN_E_STATE);
    ck_assert_ptr_null(s);
    /* a tokenizer larger than the model's vocabulary */
    chargan_tokenizer *tok = make_tok();
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "\xe6\xbc\xa2", 3), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_set_tokenizer(gen, tok), CHARGAN_E_INVALID);
    chargan_tokenizer_free(tok);
    /* one optimizer for both models would be adopted, and freed, twice */
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_ADAM);
    chargan_optimizer *opt;
    ck_assert_int_eq(chargan_optimizer_new(&oc, &opt), CHARGAN_OK);
    tc = trainer_config(CHARGAN_GAN_GUMBEL, 1);
    ck_assert_int_eq(chargan_trainer_new(&tc, gen, opt, disc, opt, &tr), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "same optimizer");
    /* a d_opt without a discriminator: adopted and freed with nothing to do */
    chargan_trainer_config plain = trainer_config(CHARGAN_GAN_NONE, 1);
    ck_assert_int_eq(chargan_trainer_new(&plain, gen, NULL, NULL, opt, &tr), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "d_opt given without a discriminator");
    ck_assert_int_eq(chargan_trainer_new(&tc, gen, opt, disc, NULL, &tr), CHARGAN_OK);
    /* an optimizer bound to the generator cannot step another model */
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, text_len), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK);
    /* what one trainer adopted, a second would free again */
    chargan_trainer *second = NULL;
    tc = trainer_config(CHARGAN_GAN_NONE, 1);
    ck_assert_int_eq(chargan_trainer_new(&tc, chargan_trainer_generator(tr), NULL, NULL, NULL,
                                         &second), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "generator already belongs to another trainer");
    chargan_model *fresh = make_gen(true);
    ck_assert_int_eq(chargan_trainer_new(&tc, fresh, chargan_trainer_optimizer(tr,
                                         CHARGAN_GENERATOR), NULL, NULL, &second),
                     CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "g_opt already belongs");
    tc = trainer_config(CHARGAN_GAN_GUMBEL, 1);
    ck_assert_int_eq(chargan_trainer_new(&tc, fresh, NULL, chargan_trainer_discriminator(tr),
                                         NULL, &second), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "discriminator already belongs");
    ck_assert_ptr_null(second);
    chargan_trainer_free(tr);
    /* refused, the fresh model stayed ours */
    chargan_model_free(fresh);
}
END_TEST

/* A model's own tokenizer numbers its ids: fitting it (which renumbers
 * them and may pass vocab_size, so that a corpus encoded with it indexes
 * past the model's tables) is refused, however the model got it.  A copy
 * fits, and attaching it is checked against vocab_size. */
START_TEST(a_models_tokenizer_is_not_refitted)
{
    static const char more[] = "\xe2\x82\xac\xc6\x92\xe2\x80\xa0\xe2\x80\xa1";
    chargan_model *g = make_gen(true);
    chargan_tokenizer *own = chargan_model_tokenizer(g);
    uint32_t v0 = vocab_of(own);
    ck_assert_int_eq(chargan_tokenizer_fit(own, more, strlen(more)), CHARGAN_E_STATE);
    assert_contains(chargan_tokenizer_last_error(own), "belongs to a model");
    ck_assert_uint_eq(vocab_of(own), v0);
    /* loaded with the model */
    const char *path = path_of("own-tok.ckpt");
    ck_assert_int_eq(chargan_model_save(g, path), CHARGAN_OK);
    chargan_model *loaded;
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &loaded), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(chargan_model_tokenizer(loaded), more, strlen(more)),
                     CHARGAN_E_STATE);
    chargan_model_free(loaded);
    /* fitted by a trainer for a model without one */
    chargan_trainer_config tc = trainer_config(CHARGAN_GAN_NONE, 1);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, make_gen(false), NULL, NULL, NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, text_len), CHARGAN_OK);
    chargan_tokenizer *fitted = chargan_model_tokenizer(chargan_trainer_generator(tr));
    ck_assert_ptr_nonnull(fitted);
    ck_assert_int_eq(chargan_tokenizer_fit(fitted, more, strlen(more)), CHARGAN_E_STATE);
    chargan_trainer_free(tr);
    /* a copy is the caller's to fit; grown past vocab_size it cannot be attached */
    void *buf;
    size_t size;
    ck_assert_int_eq(chargan_tokenizer_save_buffer(own, &buf, &size), CHARGAN_OK);
    chargan_tokenizer *copy;
    ck_assert_int_eq(chargan_tokenizer_load_buffer(buf, size, &copy), CHARGAN_OK);
    chargan_free(buf);
    ck_assert_int_eq(chargan_tokenizer_fit(copy, more, strlen(more)), CHARGAN_OK);
    ck_assert_uint_gt(vocab_of(copy), v0);
    ck_assert_int_eq(chargan_model_set_tokenizer(g, copy), CHARGAN_E_INVALID);
    ck_assert_ptr_eq(chargan_model_tokenizer(g), own); /* the old one stays */
    chargan_tokenizer_free(copy);
    chargan_model_free(g);
}
END_TEST

/* Loaders given things that are not theirs. */
START_TEST(loading_the_wrong_thing)
{
    chargan_model *g = make_gen(true);
    const char *mpath = path_of("model.ckpt");
    ck_assert_int_eq(chargan_model_save(g, mpath), CHARGAN_OK);
    chargan_trainer *tr = NULL;
    ck_assert_int_eq(chargan_trainer_load(mpath, &tr), CHARGAN_E_NOT_FOUND);
    ck_assert_ptr_null(tr);
    chargan_model *m = NULL;
    ck_assert_int_eq(chargan_model_load(mpath, CHARGAN_DISCRIMINATOR, &m), CHARGAN_E_NOT_FOUND);
    ck_assert_int_eq(chargan_model_load(mpath, (chargan_model_kind)5, &m), CHARGAN_E_INVALID);
    ck_assert_ptr_null(m);
    chargan_tokenizer *tok = NULL;
    ck_assert_int_ne(chargan_tokenizer_load(mpath, &tok), CHARGAN_OK);
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(chargan_model_load(dir, CHARGAN_GENERATOR, &m), CHARGAN_E_IO);
    ck_assert_int_eq(chargan_model_load("/dev/null", CHARGAN_GENERATOR, &m), CHARGAN_E_IO);
    ck_assert_int_eq(chargan_model_load(path_of("none"), CHARGAN_GENERATOR, &m), CHARGAN_E_IO);
    ck_assert_int_ne(chargan_model_save(g, dir), CHARGAN_OK);
    ck_assert_int_eq(count_temporaries(), 0);
    ck_assert_ptr_null(m);
    chargan_model_free(g);
}
END_TEST

/* ---------------------------------------------------------------- suite */

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("allocation");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, allocation_failure_everywhere, 0, (int)N_ALLOC_OPS);
    tcase_add_loop_test(tc, failed_step_changes_no_counter, 0, 6);
    tcase_add_test(tc, evaluation_sizes_no_optimizer_state);
    suite_add_tcase(s, tc);

    tc = tcase_create("io");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, write_failure_everywhere, 0, 3);
    tcase_add_loop_test(tc, write_only_directory_syncs_the_file_system, 0, 3);
    tcase_add_test(tc, file_size_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("numeric");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, huge_learning_rate, 0, 3);
    tcase_add_test(tc, adam_moment_overflow);
    tcase_add_test(tc, loss_beyond_float_range);
    tcase_add_test(tc, reinforce_failure_keeps_baseline);
    suite_add_tcase(s, tc);

    tc = tcase_create("corpora");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, hostile_corpora);
    tcase_add_test(tc, corpus_with_nul_bytes);
    tcase_add_test(tc, out_of_vocabulary_corpus);
    tcase_add_test(tc, hundred_megabyte_line);
    tcase_add_test(tc, hostile_id_corpora);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, null_handles);
    tcase_add_test(tc, wrong_struct_sizes);
    tcase_add_test(tc, unknown_kinds_in_config_init);
    tcase_add_test(tc, calls_out_of_order);
    tcase_add_test(tc, loading_the_wrong_thing);
    tcase_add_test(tc, a_models_tokenizer_is_not_refitted);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(faults_suite)
