/* test_trainer.c - the trainer handle: MLE on the sonnets against the
 * corpus's unigram entropy, evaluation, progress reports and cancelling,
 * corpus modes and their errors, calls out of order, configuration checks,
 * ownership on failure, numeric failures, determinism. */
#define _POSIX_C_SOURCE 200809L
#include "test_common.h"
#include "internal.h"
#include "model.h"
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LN2 0.69314718055994530942

/* ---------------------------------------------------------------- helpers */

static void assert_contains(const char *haystack, const char *needle)
{
    ck_assert_msg(strstr(haystack, needle) != NULL, "message \"%s\" lacks \"%s\"", haystack,
                  needle);
}

static chargan_model *make_gen(uint32_t V, uint32_t E, uint32_t H, uint32_t Z, float dropout,
                               uint64_t seed)
{
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_GENERATOR);
    c.vocab_size = V;
    c.embed_dim = E;
    c.hidden_dim = H;
    c.noise_dim = Z;
    c.recurrent_dropout = dropout;
    c.seed = seed;
    chargan_model *m;
    ck_assert_int_eq(chargan_model_new(&c, &m), CHARGAN_OK);
    return m;
}

static chargan_model *make_disc(uint32_t V)
{
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_DISCRIMINATOR);
    c.vocab_size = V;
    c.embed_dim = 4;
    c.hidden_dim = 6;
    chargan_model *m;
    ck_assert_int_eq(chargan_model_new(&c, &m), CHARGAN_OK);
    return m;
}

static chargan_trainer_config small_config(void)
{
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = 4;
    tc.seq_len = 8;
    tc.seed = 3;
    return tc;
}

static chargan_trainer *make_trainer(const chargan_trainer_config *tc, chargan_model *g)
{
    chargan_trainer *tr;
    ck_assert_msg(chargan_trainer_new(tc, g, NULL, NULL, NULL, &tr) == CHARGAN_OK, "%s",
                  chargan_last_error());
    return tr;
}

/* A pseudo-random id stream over [2, V). */
static int32_t *id_stream(size_t n, uint32_t V, uint64_t seed)
{
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    int32_t *ids = malloc(n * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = 2 + (int32_t)cg_rng_below(&rng, V - 2);
    return ids;
}

static const char small_text[] =
    "from fairest creatures we desire increase,\n"
    "that thereby beauty's rose might never die,\n"
    "but as the riper should by time decease,\n"
    "his tender heir might bear his memory:\n"
    "but thou contracted to thine own bright eyes,\n"
    "feed'st thy light's flame with self-substantial fuel,\n"
    "making a famine where abundance lies,\n"
    "thy self thy foe, to thy sweet self too cruel:\n";

static float *params_copy(const chargan_model *m)
{
    float *p = malloc(m->n_weights * sizeof(float));
    ck_assert_ptr_nonnull(p);
    memcpy(p, m->params, m->n_weights * sizeof(float));
    return p;
}

/* ---------------------------------------------------------------- learning */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Shannon entropy (bits per character) of the tokenizer's character counts. */
static double unigram_entropy(const chargan_tokenizer *tok)
{
    uint32_t V;
    ck_assert_int_eq(chargan_tokenizer_vocab_size(tok, &V), CHARGAN_OK);
    double total = 0.0, sum_c_log_c = 0.0;
    for (int32_t id = CHARGAN_NUM_RESERVED_IDS; id < (int32_t)V; id++) {
        uint32_t cp;
        uint64_t count;
        ck_assert_int_eq(chargan_tokenizer_id_info(tok, id, &cp, &count), CHARGAN_OK);
        total += (double)count;
        sum_c_log_c += (double)count * log2((double)count);
    }
    return log2(total) - sum_c_log_c / total;
}

/* E=32, H=64, one layer; B=16, T=32, Adam lr 1e-2 clipped at 5; the last
 * 10% of data/sonnets.txt held out.  Measured (release build, OpenBLAS,
 * one thread; CHARGAN_TEST_VERBOSE=1 prints them):
 *   vocabulary 63 ids (61 characters after CRLF folding), log2(63) = 5.98
 *   untrained model            6.05 bits/char on the held-out part
 *   unigram entropy            4.48 bits/char (of the whole corpus)
 *   after 500 steps            2.80 bits/char (1.94 nats), 1.1 s of CPU
 * so the model beats the unigram model by 1.7 bits/char; the test asks
 * for 0.5. */
START_TEST(mle_on_sonnets_beats_unigram_entropy)
{
    size_t len;
    char *text = cg_test_read_file(cg_test_corpus_path("sonnets.txt"), &len);
    chargan_tokenizer *tok;
    ck_assert_int_eq(chargan_tokenizer_new(NULL, &tok), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, len), CHARGAN_OK);
    uint32_t V;
    ck_assert_int_eq(chargan_tokenizer_vocab_size(tok, &V), CHARGAN_OK);
    double h1 = unigram_entropy(tok);

    chargan_model *g = make_gen(V, 32, 64, 0, 0.0f, 1);
    ck_assert_int_eq(chargan_model_set_tokenizer(g, tok), CHARGAN_OK);
    chargan_tokenizer_free(tok);
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = 16;
    tc.seq_len = 32;
    tc.seed = 1;
    tc.report_every = 1000;
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_ADAM);
    oc.lr = 1e-2f;
    oc.clip_norm = 5.0f;
    chargan_optimizer *opt;
    ck_assert_int_eq(chargan_optimizer_new(&oc, &opt), CHARGAN_OK);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, g, opt, NULL, NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, len), CHARGAN_OK);

    double nll0, bpc0;
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll0, &bpc0), CHARGAN_OK);
    ck_assert_double_eq_tol(bpc0, nll0 / LN2, 1e-12);
    /* an untrained model is close to uniform over the vocabulary */
    ck_assert_msg(fabs(bpc0 - log2((double)V)) < 0.5, "untrained: %.3f bits/char, log2 V %.3f",
                  bpc0, log2((double)V));

    double t0 = now_s();
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 500), CHARGAN_OK);
    double nll, bpc;
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, &bpc), CHARGAN_OK);
    double secs = now_s() - t0;
    if (getenv("CHARGAN_TEST_VERBOSE"))
        fprintf(stderr, "sonnets: V=%u log2V=%.3f untrained=%.3f unigram=%.3f trained=%.3f "
                "bits/char (%.3f nats) in %.2f s\n", V, log2((double)V), bpc0, h1, bpc, nll, secs);
    ck_assert_msg(bpc < h1 - 0.5, "validation %.3f bits/char, unigram entropy %.3f", bpc, h1);
    uint64_t step;
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 500);
    chargan_trainer_free(tr);
    free(text);
}
END_TEST

/* ---------------------------------------------------------------- progress */

typedef struct progress_log {
    int calls, cancel_at;
    chargan_progress seen[16];
} progress_log;

static int on_progress(const chargan_progress *p, void *user)
{
    progress_log *log = user;
    if (log->calls < 16)
        log->seen[log->calls] = *p;
    log->calls++;
    return log->cancel_at && log->calls == log->cancel_at;
}

START_TEST(progress_reports_and_cancel)
{
    chargan_model *g = make_gen(40, 8, 16, 0, 0.0f, 1);
    chargan_trainer_config tc = small_config();
    tc.report_every = 10;
    chargan_trainer *tr = make_trainer(&tc, g);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text)),
                     CHARGAN_OK);
    progress_log log = {0};
    ck_assert_int_eq(chargan_trainer_set_progress(tr, on_progress, &log), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 25), CHARGAN_OK);
    ck_assert_int_eq(log.calls, 3); /* steps 10, 20 and the last, 25 */
    static const uint64_t steps[] = {10, 20, 25};
    double elapsed = 0.0;
    for (int i = 0; i < 3; i++) {
        const chargan_progress *p = &log.seen[i];
        ck_assert_uint_eq(p->struct_size, sizeof(chargan_progress));
        ck_assert_int_eq(p->phase, CHARGAN_PHASE_MLE);
        ck_assert_uint_eq(p->step, steps[i]);
        ck_assert_uint_eq(p->total, 25);
        ck_assert_uint_eq(p->global_step, steps[i]);
        ck_assert_msg(isfinite(p->loss) && p->loss > 0.0 && p->loss < 10.0, "loss %g", p->loss);
        ck_assert(isnan(p->d_loss) && isnan(p->d_accuracy));
        ck_assert(p->tokens_per_s >= 0.0 && isfinite(p->tokens_per_s));
        ck_assert(p->elapsed_s >= elapsed);
        elapsed = p->elapsed_s;
    }
    /* validation only at the end (val_every 0) */
    ck_assert(isnan(log.seen[0].val_nll) && isnan(log.seen[1].val_nll));
    ck_assert(isfinite(log.seen[2].val_nll));
    ck_assert_double_eq_tol(log.seen[2].val_bpc, log.seen[2].val_nll / LN2, 1e-12);
    double nll;
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_OK);
    ck_assert(nll == log.seen[2].val_nll);

    /* the callback asks to stop at its second call: after step 20 of 50; its
     * reports carry the first call's validation, the latest made */
    const double first_val = log.seen[2].val_nll;
    memset(&log, 0, sizeof log);
    log.cancel_at = 2;
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 50), CHARGAN_E_CANCELLED);
    assert_contains(chargan_trainer_last_error(tr), "step 20");
    ck_assert_int_eq(log.calls, 2);
    ck_assert(log.seen[0].val_nll == first_val && log.seen[1].val_nll == first_val);
    ck_assert(isfinite(log.seen[1].val_bpc));
    ck_assert_uint_eq(log.seen[1].global_step, 45);
    uint64_t step;
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 45);
    /* the trainer is consistent and goes on */
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    /* another corpus: its held-out part is not measured yet */
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text) - 7),
                     CHARGAN_OK);
    memset(&log, 0, sizeof log);
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 10), CHARGAN_OK);
    ck_assert_int_eq(log.calls, 1);
    ck_assert(isfinite(log.seen[0].val_nll)); /* the last step validates */
    memset(&log, 0, sizeof log);
    log.cancel_at = 1;
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text)),
                     CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 20), CHARGAN_E_CANCELLED);
    ck_assert(isnan(log.seen[0].val_nll) && isnan(log.seen[0].val_bpc));

    /* val_every: a validation at each report that falls on it */
    tc.val_every = 5;
    tc.report_every = 5;
    chargan_trainer *t2 = make_trainer(&tc, make_gen(40, 8, 16, 0, 0.0f, 1));
    ck_assert_int_eq(chargan_trainer_set_corpus_text(t2, small_text, strlen(small_text)),
                     CHARGAN_OK);
    memset(&log, 0, sizeof log);
    ck_assert_int_eq(chargan_trainer_set_progress(t2, on_progress, &log), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_pretrain_generator(t2, 10), CHARGAN_OK);
    ck_assert_int_eq(log.calls, 2);
    ck_assert(isfinite(log.seen[0].val_nll) && isfinite(log.seen[1].val_nll));
    ck_assert(log.seen[1].val_nll < log.seen[0].val_nll + 0.5);
    /* removing the callback */
    ck_assert_int_eq(chargan_trainer_set_progress(t2, NULL, NULL), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_pretrain_generator(t2, 10), CHARGAN_OK);
    ck_assert_int_eq(log.calls, 2);
    ck_assert_int_eq(chargan_trainer_set_progress(NULL, on_progress, NULL), CHARGAN_E_INVALID);
    chargan_trainer_free(t2);
    chargan_trainer_free(tr);
}
END_TEST

/* Asks its trainer to stop at the report of step stop_at, and lets the call
 * go on, or with also_cancel stops it itself too. */
typedef struct stop_asker {
    chargan_trainer *tr;
    uint64_t stop_at;
    int also_cancel;
    int then_evaluate; /* and evaluates (a nested long call), which must stop */
    int calls;
} stop_asker;

static int request_stop_in_report(const chargan_progress *p, void *user)
{
    stop_asker *a = user;
    a->calls++;
    if (p->step != a->stop_at)
        return 0;
    ck_assert_int_eq(chargan_trainer_request_stop(a->tr), CHARGAN_OK);
    if (a->then_evaluate) {
        double nll;
        ck_assert_int_eq(chargan_trainer_evaluate(a->tr, &nll, NULL), CHARGAN_E_CANCELLED);
    }
    return a->also_cancel;
}

START_TEST(request_stop_at_step_boundaries)
{
    chargan_trainer_config tc = small_config();
    tc.report_every = 5;
    chargan_trainer *tr = make_trainer(&tc, make_gen(40, 8, 16, 0, 0.0f, 1));
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text)),
                     CHARGAN_OK);
    stop_asker asker = {.tr = tr};
    ck_assert_int_eq(chargan_trainer_set_progress(tr, request_stop_in_report, &asker),
                     CHARGAN_OK);
    uint64_t step;

    /* a request made between calls stops the next one before its first step... */
    ck_assert_int_eq(chargan_trainer_request_stop(tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 20), CHARGAN_E_CANCELLED);
    assert_contains(chargan_trainer_last_error(tr), "chargan_trainer_request_stop before step 1");
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 0);
    ck_assert_int_eq(asker.calls, 0); /* no step, nothing to report */
    /* ...and is used up by it */
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 3), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 3);

    /* asked at the report of step 10 of 20: the call stops there, steps kept */
    asker = (stop_asker){.tr = tr, .stop_at = 10};
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 20), CHARGAN_E_CANCELLED);
    assert_contains(chargan_trainer_last_error(tr), "after step 10");
    ck_assert_int_eq(asker.calls, 2);
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 13);

    /* evaluation: a pending request stops it before its first batch; the
     * next evaluation runs whole and gives what an uninterrupted one gives */
    double nll, again = NAN;
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_request_stop(tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &again, NULL), CHARGAN_E_CANCELLED);
    assert_contains(chargan_trainer_last_error(tr), "chargan_trainer_request_stop");
    ck_assert(isnan(again));
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &again, NULL), CHARGAN_OK);
    ck_assert(again == nll);

    /* a request after the last step's check is answered by that call's return */
    asker = (stop_asker){.tr = tr, .stop_at = 5};
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 5), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 5), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 23);
    /* so is one made before a call that cannot start */
    ck_assert_int_eq(chargan_trainer_request_stop(tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_pretrain_discriminator(tr, 5), CHARGAN_E_STATE);

    /* the callback stops the call while a request is pending: it answers both */
    asker = (stop_asker){.tr = tr, .stop_at = 5, .also_cancel = 1};
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 10), CHARGAN_E_CANCELLED);
    assert_contains(chargan_trainer_last_error(tr), "progress callback after step 5");
    asker = (stop_asker){.tr = tr};
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 5), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 33);

    /* a long call made from the callback stops and leaves the request to the
     * outer call, which stops too */
    asker = (stop_asker){.tr = tr, .stop_at = 5, .then_evaluate = 1};
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 10), CHARGAN_E_CANCELLED);
    assert_contains(chargan_trainer_last_error(tr), "request_stop after step 5");
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 38);
    asker = (stop_asker){.tr = tr};
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 1), CHARGAN_OK);

    ck_assert_int_eq(chargan_trainer_request_stop(NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "NULL trainer");
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- corpora */

START_TEST(corpus_errors)
{
    chargan_trainer_config tc = small_config(); /* T = 8: a window is 9 ids */
    chargan_trainer *tr = make_trainer(&tc, make_gen(20, 4, 6, 0, 0.0f, 1));
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, NULL, 3), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(NULL, "abc", 3), CHARGAN_E_INVALID);
    /* the first fit attaches a tokenizer; invalid UTF-8 fails it */
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, "ab\xff\xfe", 4), CHARGAN_E_UTF8);
    /* 8 ids, none held out: one short of a window */
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, "abcabcab", 8), CHARGAN_E_INVALID);
    assert_contains(chargan_trainer_last_error(tr), "corpus too short");
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_E_STATE);

    int32_t *ids = id_stream(100, 20, 1);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, NULL, 10), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(NULL, ids, 10), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 0), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 8), CHARGAN_E_INVALID);
    /* 10 ids with 10% held out leave 9: one window, the minimum */
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 10), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    ids[50] = 20;
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 100), CHARGAN_E_RANGE);
    assert_contains(chargan_trainer_last_error(tr), "position 50");
    ids[50] = -1;
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 100), CHARGAN_E_RANGE);
    ids[50] = 5;
    /* a failed call leaves the previous corpus in place */
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);

    /* the held-out part of the 10-id corpus is one id: no window to validate */
    double nll;
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_E_STATE);
    assert_contains(chargan_trainer_last_error(tr), "no held-out data");
    ck_assert_int_eq(chargan_trainer_evaluate(tr, NULL, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_evaluate(NULL, &nll, NULL), CHARGAN_E_INVALID);
    /* 100 ids: 10 held out, one window of 9 */
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 100), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_OK);

    /* sequences */
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, ids, 10, 7), CHARGAN_E_INVALID);
    assert_contains(chargan_trainer_last_error(tr), "seq_len is 8");
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, NULL, 10, 8), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(NULL, ids, 10, 8), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, ids, 0, 8), CHARGAN_E_INVALID);
    ids[30] = 99;
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, ids, 10, 8), CHARGAN_E_RANGE);
    ids[30] = 3;
    /* 5 sequences, none held out (5 x 0.1 rounds down): evaluate has nothing */
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, ids, 5, 8), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_E_STATE);
    free(ids);
    chargan_trainer_free(tr);

    /* val_fraction 0: nothing held out */
    tc.val_fraction = 0.0f;
    tr = make_trainer(&tc, make_gen(60, 4, 6, 0, 0.0f, 1));
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text)),
                     CHARGAN_OK);
    /* training succeeds without validation, and leaves no failure behind */
    ck_assert_int_eq(chargan_model_num_params(NULL, NULL), CHARGAN_E_INVALID);
    char before[512];
    snprintf(before, sizeof before, "%s", chargan_last_error());
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 2), CHARGAN_OK);
    ck_assert_str_eq(chargan_trainer_last_error(tr), "");
    ck_assert_str_eq(chargan_last_error(), before);
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_E_STATE);
    chargan_trainer_free(tr);

    /* a tokenizer larger than the generator's vocabulary cannot be attached */
    tr = make_trainer(&tc, make_gen(5, 4, 6, 0, 0.0f, 1));
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text)),
                     CHARGAN_E_INVALID);
    assert_contains(chargan_trainer_last_error(tr), "vocab_size");
    chargan_trainer_free(tr);
}
END_TEST

START_TEST(corpus_text_uses_attached_tokenizer)
{
    /* the generator's tokenizer is kept: characters it lacks become UNKNOWN */
    chargan_tokenizer *tok;
    ck_assert_int_eq(chargan_tokenizer_new(NULL, &tok), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "abc", 3), CHARGAN_OK);
    chargan_model *g = make_gen(5, 4, 6, 0, 0.0f, 1);
    ck_assert_int_eq(chargan_model_set_tokenizer(g, tok), CHARGAN_OK);
    chargan_tokenizer_free(tok);
    chargan_trainer_config tc = small_config();
    tc.val_fraction = 0.0f;
    chargan_trainer *tr = make_trainer(&tc, g);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, "abcxyzabcxyz", 12), CHARGAN_OK);
    ck_assert_uint_eq(tr->ids.n, 12);
    int32_t id;
    cg_packed_ids_read(&tr->ids, 3, 1, &id);
    ck_assert_int_eq(id, CHARGAN_ID_UNKNOWN);
    uint32_t V;
    ck_assert_int_eq(chargan_tokenizer_vocab_size(chargan_model_tokenizer(g), &V), CHARGAN_OK);
    ck_assert_uint_eq(V, 5);
    chargan_trainer_free(tr);
}
END_TEST

START_TEST(sequences_corpus)
{
    /* 40 sequences of 8, 4 held out: evaluate equals chargan_model_nll on
     * them; with 3 threads and batches of 3 it runs on the shards, and the
     * second batch is one held-out row and two of padding. */
    const uint32_t V = 12;
    int32_t *ids = id_stream(40 * 8, V, 9);
    chargan_trainer_config tc = small_config();
    if (_i == 1) {
        tc.threads = 3;
        tc.batch = 3;
    }
    chargan_trainer *tr = make_trainer(&tc, make_gen(V, 6, 8, 2, 0.0f, 4));
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, ids, 40, 8), CHARGAN_OK);
    ck_assert_uint_eq(tr->n_train_seq, 36);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    /* every training window is the start id and one whole training sequence */
    cg_trainer_draw_windows(tr);
    for (uint32_t b = 0; b < tc.batch; b++) {
        const int32_t *w = tr->windows + b * (tc.seq_len + 1);
        ck_assert_int_eq(w[0], CHARGAN_ID_START);
        bool found = false;
        for (int s = 0; s < 36 && !found; s++)
            found = memcmp(w + 1, ids + s * 8, 8 * sizeof(int32_t)) == 0;
        ck_assert(found);
    }
    double nll, ref;
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_nll(chargan_trainer_generator(tr), ids + 36 * 8, 4, 8, &ref),
                     CHARGAN_OK);
    ck_assert_msg(fabs(nll - ref) < 1e-6 * ref, "evaluate %.9g, model_nll %.9g", nll, ref);
    free(ids);
    chargan_trainer_free(tr);
}
END_TEST

/* chargan_trainer_init_output_bias on a stream (_i = 0) and on sequences
 * (_i = 1): the bias becomes the add-one-half smoothed log frequencies of
 * the training part's ids, counted here from the ids given; the held-out
 * part (all CHARGAN_ID_UNKNOWN here) counts for nothing, and no other
 * parameter moves. */
START_TEST(init_output_bias_is_log_unigram)
{
    const uint32_t V = 12;
    const size_t n = 400, T = 8;
    int32_t *ids = id_stream(n, V, 21);
    for (size_t i = 0; i < n; i += 3)
        ids[i] = 5; /* a skewed distribution: a uniform one hides a wrong count */
    const size_t n_train = _i == 0 ? n - n / 10 : (n / T - n / T / 10) * T;
    for (size_t i = n_train; i < n; i++)
        ids[i] = CHARGAN_ID_UNKNOWN;
    chargan_trainer_config tc = small_config();
    chargan_trainer *tr = make_trainer(&tc, make_gen(V, 4, 6, 0, 0.0f, 7));
    chargan_model *g = chargan_trainer_generator(tr);
    size_t ib;
    ck_assert_int_eq(chargan_model_param_find(g, "out.b", &ib), CHARGAN_OK);
    float *before = params_copy(g);

    ck_assert_int_eq(chargan_trainer_init_output_bias(tr), CHARGAN_E_STATE);
    assert_contains(chargan_trainer_last_error(tr), "no corpus");
    ck_assert_int_eq(chargan_trainer_init_output_bias(NULL), CHARGAN_E_INVALID);
    if (_i == 0)
        ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, n), CHARGAN_OK);
    else
        ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, ids, n / T, T), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_init_output_bias(tr), CHARGAN_OK);

    double count[12] = {0};
    for (size_t i = 0; i < n_train; i++)
        count[ids[i]] += 1.0;
    ck_assert_double_eq(count[CHARGAN_ID_UNKNOWN], 0.0);
    float bias[12];
    ck_assert_int_eq(chargan_model_param_get(g, ib, bias, V), CHARGAN_OK);
    double mass = 0.0;
    for (uint32_t v = 0; v < V; v++) {
        double want = log((count[v] + 0.5) / ((double)n_train + 0.5 * V));
        ck_assert_msg(fabs(bias[v] - want) < 1e-6 * fabs(want), "id %u: bias %.9g, want %.9g", v,
                      bias[v], want);
        mass += exp(bias[v]);
    }
    ck_assert_msg(fabs(mass - 1.0) < 1e-5, "softmax of the bias sums to %.9g", mass);
    ck_assert_float_lt(bias[CHARGAN_ID_START], bias[2] - 3.0f); /* never a target: 0.5 of ~24 */

    /* everything but the output bias as it was */
    const size_t first = g->tensors[ib].offset;
    for (size_t i = 0; i < g->n_weights; i++)
        if (i < first || i >= first + V)
            ck_assert_msg(g->params[i] == before[i], "parameter %zu changed", i);
    free(before);
    free(ids);
    chargan_trainer_free(tr);
}
END_TEST

/* The corpus is packed one, two or four bytes per id by its largest id;
 * every width reads back what went in, at any offset. */
START_TEST(packed_ids_every_width)
{
    const struct {
        int32_t top;
        int width;
    } cases[] = {{1, 1}, {255, 1}, {256, 2}, {65535, 2}, {65536, 4}, {(1 << 21) - 1, 4}};
    const size_t n = 1000;
    int32_t *ids = malloc(n * sizeof *ids), *back = malloc(n * sizeof *back);
    ck_assert(ids && back);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t i = 0; i < n; i++)
            ids[i] = (int32_t)((i * 7919u) % ((uint32_t)cases[c].top + 1));
        ids[n / 2] = cases[c].top;
        cg_packed_ids p;
        ck_assert(cg_packed_ids_init(&p, ids, n));
        ck_assert_int_eq(p.width, cases[c].width);
        ck_assert_uint_eq(cg_packed_ids_bytes(&p), n * (size_t)cases[c].width);
        for (size_t first = 0; first < n; first += 97) {
            size_t count = n - first < 131 ? n - first : 131;
            memset(back, 0xff, count * sizeof *back);
            cg_packed_ids_read(&p, first, count, back);
            ck_assert_msg(memcmp(back, ids + first, count * sizeof *back) == 0,
                          "top %d: ids %zu.. differ", (int)cases[c].top, first);
        }
        cg_packed_ids_free(&p);
        ck_assert_ptr_null(p.data);
    }
    cg_packed_ids p;
    ck_assert(cg_packed_ids_init(&p, ids, 0)); /* empty: nothing allocated */
    ck_assert_ptr_null(p.data);
    cg_packed_ids_free(&p);
    free(ids);
    free(back);
}
END_TEST

/* Built from pieces with room and a width to spare, the packed ids are
 * cg_packed_ids_init's: narrowed to the largest id stored, room given back. */
START_TEST(packed_ids_from_pieces)
{
    const int32_t tops[] = {1, 255, 256, 65535, 65536};
    const size_t n = 1000;
    int32_t *ids = malloc(n * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (size_t c = 0; c < sizeof tops / sizeof tops[0]; c++) {
        for (size_t i = 0; i < n; i++)
            ids[i] = (int32_t)((i * 7919u) % ((uint32_t)tops[c] + 1));
        ids[n / 3] = tops[c];
        cg_packed_ids want, got;
        ck_assert(cg_packed_ids_init(&want, ids, n));
        ck_assert(cg_packed_ids_begin(&got, n + 500, 1 << 20));
        ck_assert_int_eq(got.width, 4);
        for (size_t first = 0; first < n; first += 97)
            cg_packed_ids_append(&got, ids + first, n - first < 97 ? n - first : 97);
        cg_packed_ids_finish(&got);
        ck_assert_uint_eq(got.n, n);
        ck_assert_int_eq(got.width, want.width);
        ck_assert_uint_eq(got.cap, n);
        ck_assert_mem_eq(got.data, want.data, cg_packed_ids_bytes(&want));
        cg_packed_ids_free(&want);
        cg_packed_ids_free(&got);
    }
    cg_packed_ids p;
    ck_assert(cg_packed_ids_begin(&p, 10, 3));
    cg_packed_ids_finish(&p); /* nothing appended: nothing kept */
    ck_assert_ptr_null(p.data);
    ck_assert_uint_eq(p.n, 0);
    cg_packed_ids_free(&p);
    free(ids);
}
END_TEST

/* A text corpus is encoded in pieces of CORPUS_PIECE ids: over several
 * pieces, with characters of one to four bytes and CR LF pairs across their
 * ends, the trainer holds the ids of one encode of the whole text.  The
 * ids' room is the text's characters, not its bytes: _i = 1 is CJK text
 * with more than 256 characters (two bytes an id, three bytes a character),
 * where that room is the largest allocation of the call; _i = 2 has invalid
 * UTF-8 read with the replace policy, whose stray continuation bytes are ids
 * of their own, more ids than characters, so the room must grow. */
START_TEST(corpus_text_in_pieces_equals_one_encode)
{
    static const char *const mixed[] = {"a", "B", "\r\n", " ", "\xC3\xA9", "\xE2\x82\xAC",
                                        "\xF0\x9F\x98\x80", "\n", "z"};
    static const char *const invalid[] = {"a", "\x80", "\xBF\xBF\xBF", "\xE2\x82", "\xC3\xA9",
                                          "\xF0\x9F\x98", "\r\n", "\xFF"};
    const size_t cap = _i == 1 ? 1200000 : 400000;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    size_t len = 0, characters = 0;
    uint64_t x = 12345;
    while (len + 4 < cap) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        char cjk[4];
        const char *u;
        if (_i == 1) { /* one of U+4E00 .. U+4F2B, 300 characters */
            unsigned cp = 0x4E00 + (unsigned)((x >> 33) % 300);
            cjk[0] = (char)(0xE0 | (cp >> 12));
            cjk[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            cjk[2] = (char)(0x80 | (cp & 0x3F));
            cjk[3] = '\0';
            u = cjk;
        } else if (_i == 2) {
            u = invalid[(x >> 33) % (sizeof invalid / sizeof invalid[0])];
        } else {
            u = mixed[(x >> 33) % (sizeof mixed / sizeof mixed[0])];
        }
        memcpy(text + len, u, strlen(u));
        len += strlen(u);
        characters++;
    }
    chargan_trainer_config tc = small_config();
    chargan_model *g = make_gen(_i == 1 ? 400 : 40, 4, 6, 0, 0.0f, 1);
    if (_i == 2) { /* the default policy would refuse the text */
        chargan_tokenizer_options o;
        chargan_tokenizer_options_init(&o);
        o.utf8_policy = CHARGAN_UTF8_REPLACE;
        chargan_tokenizer *fitted;
        ck_assert_int_eq(chargan_tokenizer_new(&o, &fitted), CHARGAN_OK);
        ck_assert_int_eq(chargan_tokenizer_fit(fitted, text, len), CHARGAN_OK);
        ck_assert_int_eq(chargan_model_set_tokenizer(g, fitted), CHARGAN_OK);
        chargan_tokenizer_free(fitted);
    }
    chargan_trainer *tr = make_trainer(&tc, g);
    cg_alloc_largest(); /* from here */
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, len), CHARGAN_OK);
    size_t largest = cg_alloc_largest();
    chargan_tokenizer *tok = chargan_model_tokenizer(tr->gen);
    size_t n;
    ck_assert_int_eq(chargan_tokenizer_encode(tok, text, len, NULL, 0, &n), CHARGAN_OK);
    ck_assert_uint_gt(n, 3 * 65536); /* several pieces */
    if (_i == 1) {
        ck_assert_uint_eq(n, characters);
        ck_assert_uint_eq(largest, 2 * characters); /* not 2 * len */
    }
    if (_i == 2) { /* more ids than bytes that start a character */
        size_t starts = 0;
        for (size_t k = 0; k < len; k++)
            starts += ((unsigned char)text[k] & 0xC0) != 0x80;
        ck_assert_uint_gt(n, starts);
    }
    int32_t *ids = malloc(n * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    ck_assert_int_eq(chargan_tokenizer_encode(tok, text, len, ids, n, &n), CHARGAN_OK);
    cg_packed_ids want;
    ck_assert(cg_packed_ids_init(&want, ids, n));
    ck_assert_uint_eq(tr->ids.n, n);
    ck_assert_int_eq(tr->ids.width, want.width);
    ck_assert_int_eq(tr->ids.width, _i == 1 ? 2 : 1);
    ck_assert_mem_eq(tr->ids.data, want.data, cg_packed_ids_bytes(&want));
    cg_packed_ids_free(&want);
    free(ids);
    free(text);
    chargan_trainer_free(tr);
}
END_TEST

/* A vocabulary beyond one byte: training windows are slices of the corpus,
 * ids above 255 included. */
START_TEST(corpus_ids_beyond_one_byte)
{
    const uint32_t V = 300;
    const size_t n = 2000;
    int32_t *ids = id_stream(n, V, 5);
    chargan_trainer_config tc = small_config();
    chargan_trainer *tr = make_trainer(&tc, make_gen(V, 4, 6, 0, 0.0f, 1));
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, n), CHARGAN_OK);
    ck_assert_int_eq(tr->ids.width, 2);
    bool high = false;
    for (int k = 0; k < 20; k++) {
        cg_trainer_draw_windows(tr);
        for (uint32_t b = 0; b < tc.batch; b++) {
            const int32_t *w = tr->windows + b * (tc.seq_len + 1);
            bool found = false;
            for (size_t s = 0; s + tc.seq_len < n && !found; s++)
                found = memcmp(w, ids + s, (tc.seq_len + 1) * sizeof(int32_t)) == 0;
            ck_assert(found);
            for (uint32_t t = 0; t <= tc.seq_len; t++)
                high = high || w[t] > 255;
        }
    }
    ck_assert(high);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    free(ids);
    chargan_trainer_free(tr);
}
END_TEST

START_TEST(mle_step_batch_matches_model_nll)
{
    /* No noise and no dropout: the step's loss is the NLL the model gives the
     * rows before the update, as chargan_model_nll computes it. */
    const uint32_t V = 15;
    chargan_trainer_config tc = small_config();
    chargan_trainer *tr = make_trainer(&tc, make_gen(V, 5, 7, 0, 0.0f, 2));
    chargan_model *g = chargan_trainer_generator(tr);
    size_t row = tc.seq_len + 1;
    int32_t *batch = id_stream(tc.batch * row, V, 5);
    int32_t *seqs = malloc(tc.batch * tc.seq_len * sizeof(int32_t));
    ck_assert_ptr_nonnull(seqs);
    for (uint32_t b = 0; b < tc.batch; b++) {
        batch[b * row] = CHARGAN_ID_START;
        memcpy(seqs + b * tc.seq_len, batch + b * row + 1, tc.seq_len * sizeof(int32_t));
    }
    double ref;
    ck_assert_int_eq(chargan_model_nll(g, seqs, tc.batch, tc.seq_len, &ref), CHARGAN_OK);
    float *before = params_copy(g);
    float loss;
    ck_assert_int_eq(chargan_trainer_mle_step_batch(tr, batch, &loss), CHARGAN_OK);
    ck_assert_msg(fabs(loss - ref) < 1e-5 * ref, "step loss %.9g, model_nll %.9g", loss, ref);
    ck_assert(memcmp(before, g->params, g->n_weights * sizeof(float)) != 0);
    uint64_t step;
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 1);
    /* a second step on the same rows lowers their NLL */
    double after;
    ck_assert_int_eq(chargan_trainer_mle_step_batch(tr, batch, NULL), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_nll(g, seqs, tc.batch, tc.seq_len, &after), CHARGAN_OK);
    ck_assert(after < ref);
    /* errors: ids outside the vocabulary, NULL */
    memcpy(before, g->params, g->n_weights * sizeof(float));
    batch[7] = (int32_t)V;
    ck_assert_int_eq(chargan_trainer_mle_step_batch(tr, batch, &loss), CHARGAN_E_RANGE);
    assert_contains(chargan_trainer_last_error(tr), "position 7");
    batch[7] = -3;
    ck_assert_int_eq(chargan_trainer_mle_step_batch(tr, batch, &loss), CHARGAN_E_RANGE);
    ck_assert_int_eq(chargan_trainer_mle_step_batch(tr, NULL, &loss), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_mle_step_batch(NULL, batch, &loss), CHARGAN_E_INVALID);
    ck_assert(memcmp(before, g->params, g->n_weights * sizeof(float)) == 0);
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 2);
    free(before);
    free(seqs);
    free(batch);
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- order, config, ownership */

START_TEST(calls_out_of_order)
{
    chargan_trainer_config tc = small_config();
    chargan_trainer *tr = make_trainer(&tc, make_gen(30, 4, 6, 0, 0.0f, 1));
    float loss, acc;
    double nll;
    ck_assert_int_eq(chargan_trainer_mle_step(tr, &loss), CHARGAN_E_STATE);
    assert_contains(chargan_trainer_last_error(tr), "no corpus");
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 3), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_E_STATE);
    /* without a discriminator or estimator, with or without a corpus */
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_int_eq(chargan_trainer_d_step(tr, &loss, &acc), CHARGAN_E_STATE);
        ck_assert_int_eq(chargan_trainer_pretrain_discriminator(tr, 2), CHARGAN_E_STATE);
        ck_assert_int_eq(chargan_trainer_gan_step(tr, &loss, NULL), CHARGAN_E_STATE);
        ck_assert_int_eq(chargan_trainer_adversarial(tr, 2), CHARGAN_E_STATE);
        /* zero steps of a phase that cannot run fail as more would */
        ck_assert_int_eq(chargan_trainer_pretrain_discriminator(tr, 0), CHARGAN_E_STATE);
        ck_assert_int_eq(chargan_trainer_adversarial(tr, 0), CHARGAN_E_STATE);
        ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text)),
                         CHARGAN_OK);
    }
    /* NULL handles */
    ck_assert_int_eq(chargan_trainer_mle_step(NULL, &loss), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_pretrain_generator(NULL, 1), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_d_step(NULL, NULL, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_gan_step(NULL, NULL, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_pretrain_discriminator(NULL, 1), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_adversarial(NULL, 1), CHARGAN_E_INVALID);
    uint64_t step;
    ck_assert_int_eq(chargan_trainer_global_step(NULL, &step), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_global_step(tr, NULL), CHARGAN_E_INVALID);
    ck_assert_ptr_null(chargan_trainer_generator(NULL));
    ck_assert_ptr_null(chargan_trainer_discriminator(tr));
    ck_assert_ptr_null(chargan_trainer_optimizer(tr, CHARGAN_DISCRIMINATOR));
    ck_assert_ptr_nonnull(chargan_trainer_optimizer(tr, CHARGAN_GENERATOR));
    ck_assert_ptr_null(chargan_trainer_optimizer(tr, (chargan_model_kind)5));
    ck_assert_ptr_null(chargan_trainer_optimizer(NULL, CHARGAN_GENERATOR));
    ck_assert_str_eq(chargan_trainer_last_error(NULL), "NULL trainer");
    /* zero steps do nothing */
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 0), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 0);
    chargan_trainer_free(tr);
    chargan_trainer_free(NULL);
}
END_TEST

typedef struct config_case {
    const char *field;
    void (*set)(chargan_trainer_config *c);
} config_case;

#define CASE(name, stmt)                                                                           \
    static void set_##name(chargan_trainer_config *c) { stmt; }
CASE(batch0, c->batch = 0)
CASE(batch_big, c->batch = 65537)
CASE(seq0, c->seq_len = 0)
CASE(seq_big, c->seq_len = 65537)
CASE(tokens, (c->batch = 65536, c->seq_len = 1024))
CASE(valneg, c->val_fraction = -0.01f)
CASE(valbig, c->val_fraction = 0.95f)
CASE(valnan, c->val_fraction = NAN)
CASE(threads0, c->threads = 0)
CASE(threads_big, c->threads = 257)
CASE(report0, c->report_every = 0)
CASE(estneg, c->estimator = -1)
CASE(estbig, c->estimator = 3)
CASE(d0, c->d_steps = 0)
CASE(dbig, c->d_steps = 1001)
CASE(gammaneg, c->gamma = -0.1f)
CASE(gammabig, c->gamma = 1.01f)
CASE(gammanan, c->gamma = NAN)
CASE(decayneg, c->baseline_decay = -0.1f)
CASE(decay1, c->baseline_decay = 1.0f)
CASE(rollouts, c->rollouts = 65)
CASE(mleneg, c->mle_weight = -1.0f)
CASE(mlebig, c->mle_weight = 2e6f)
CASE(mleinf, c->mle_weight = INFINITY)
CASE(betalow, c->beta_max = 0.5f)
CASE(betabig, c->beta_max = 2e6f)
CASE(betanan, c->beta_max = NAN)
CASE(startlow, c->beta_start = 5e-4f)
CASE(startbig, c->beta_start = 2e6f)
CASE(startnan, c->beta_start = NAN)
CASE(startabove, (c->beta_start = 4.0f, c->beta_max = 2.0f))
CASE(feed, c->gumbel_feed = 2)
CASE(feedneg, c->gumbel_feed = -1)
CASE(anneal, c->anneal = 2)
CASE(anneal_steps, c->anneal_steps = 0)
CASE(gan_loss, c->gan_loss = 2)
CASE(size_small, c->struct_size = 8)
#undef CASE

START_TEST(every_invalid_config_field)
{
    static const config_case cases[] = {
        {"batch", set_batch0},          {"batch", set_batch_big},
        {"seq_len", set_seq0},          {"seq_len", set_seq_big},
        {"batch x seq_len", set_tokens}, {"val_fraction", set_valneg},
        {"val_fraction", set_valbig},   {"val_fraction", set_valnan},
        {"threads", set_threads0},      {"threads", set_threads_big},
        {"report_every", set_report0},  {"estimator", set_estneg},
        {"estimator", set_estbig},      {"d_steps", set_d0},
        {"d_steps", set_dbig},          {"gamma", set_gammaneg},
        {"gamma", set_gammabig},        {"gamma", set_gammanan},
        {"baseline_decay", set_decayneg}, {"baseline_decay", set_decay1},
        {"rollouts", set_rollouts},     {"mle_weight", set_mleneg},
        {"mle_weight", set_mlebig},     {"mle_weight", set_mleinf},
        {"beta_max", set_betalow},      {"beta_max", set_betabig},
        {"beta_max", set_betanan},      {"beta_start", set_startlow},
        {"beta_start", set_startbig},   {"beta_start", set_startnan},
        {"beta_max", set_startabove},   {"gumbel_feed", set_feed},
        {"gumbel_feed", set_feedneg},   {"anneal", set_anneal},
        {"anneal_steps", set_anneal_steps}, {"gan_loss", set_gan_loss},
        {"struct_size", set_size_small},
    };
    chargan_model *g = make_gen(10, 4, 4, 0, 0.0f, 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        chargan_trainer_config tc;
        chargan_trainer_config_init(&tc);
        cases[i].set(&tc);
        chargan_trainer *tr = (chargan_trainer *)1;
        ck_assert_msg(chargan_trainer_new(&tc, g, NULL, NULL, NULL, &tr) == CHARGAN_E_INVALID,
                      "case %zu (%s) accepted", i, cases[i].field);
        ck_assert_ptr_eq(tr, (chargan_trainer *)1);
        assert_contains(chargan_last_error(), cases[i].field);
    }
    /* a struct from a newer header: accepted only if the unknown tail is zero */
    struct {
        chargan_trainer_config c;
        uint64_t extra;
    } big;
    memset(&big, 0, sizeof big);
    chargan_trainer_config_init(&big.c);
    big.c.struct_size = sizeof big;
    big.extra = 1;
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&big.c, g, NULL, NULL, NULL, &tr), CHARGAN_E_INVALID);
    big.extra = 0;
    ck_assert_int_eq(chargan_trainer_new(&big.c, g, NULL, NULL, NULL, &tr), CHARGAN_OK);
    chargan_trainer_free(tr); /* it adopted g */

    /* the pair of models */
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    g = make_gen(10, 4, 4, 0, 0.0f, 1);
    chargan_model *d = make_disc(10), *d11 = make_disc(11);
    ck_assert_int_eq(chargan_trainer_new(NULL, g, NULL, NULL, NULL, &tr), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_new(&tc, NULL, NULL, NULL, NULL, &tr), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, NULL, NULL, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_new(&tc, d, NULL, NULL, NULL, &tr), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "'generator' is a discriminator");
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, g, NULL, &tr), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "'discriminator' is a generator");
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, d11, NULL, &tr), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "vocabularies differ");
    tc.estimator = CHARGAN_GAN_REINFORCE;
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, NULL, NULL, &tr), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "needs a discriminator");
    /* every failure left the models with the caller */
    chargan_model_free(g);
    chargan_model_free(d);
    chargan_model_free(d11);
}
END_TEST

START_TEST(get_config_round_trip)
{
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = 3;
    tc.seq_len = 7;
    tc.val_fraction = 0.25f;
    tc.seed = 0x123456789abcdefull;
    tc.threads = 2;
    tc.report_every = 17;
    tc.val_every = 40;
    tc.estimator = CHARGAN_GAN_GUMBEL;
    tc.d_steps = 3;
    tc.gamma = 0.8f;
    tc.baseline_decay = 0.5f;
    tc.rollouts = 4;
    tc.mle_weight = 0.25f;
    tc.beta_start = 2.5f;
    tc.gumbel_feed = CHARGAN_FEED_SOFT;
    tc.beta_max = 100.0f;
    tc.anneal = CHARGAN_ANNEAL_LINEAR;
    tc.anneal_steps = 77;
    tc.gan_loss = CHARGAN_LOSS_RELATIVISTIC;
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, make_gen(10, 4, 4, 0, 0.0f, 1), NULL, make_disc(10),
                                         NULL, &tr),
                     CHARGAN_OK);
    chargan_trainer_config got;
    memset(&got, 0xAB, sizeof got);
    got.struct_size = sizeof got;
    ck_assert_int_eq(chargan_trainer_get_config(tr, &got), CHARGAN_OK);
    ck_assert_uint_eq(got.struct_size, sizeof got);
    ck_assert_uint_eq(got.batch, 3);
    ck_assert_uint_eq(got.seq_len, 7);
    ck_assert(got.val_fraction == 0.25f);
    ck_assert_uint_eq(got.seed, 0x123456789abcdefull);
    ck_assert_uint_eq(got.threads, 2);
    ck_assert_uint_eq(got.report_every, 17);
    ck_assert_uint_eq(got.val_every, 40);
    ck_assert_int_eq(got.estimator, CHARGAN_GAN_GUMBEL);
    ck_assert_uint_eq(got.d_steps, 3);
    /* against the float 0.8f, not the constant: where float arithmetic is
     * done wider (x87, s390x), 0.8f itself has the wider precision */
    const float gamma = 0.8f;
    ck_assert(got.gamma == gamma && got.baseline_decay == 0.5f);
    ck_assert_uint_eq(got.rollouts, 4);
    ck_assert(got.mle_weight == 0.25f && got.beta_max == 100.0f);
    ck_assert_int_eq(got.anneal, CHARGAN_ANNEAL_LINEAR);
    ck_assert_uint_eq(got.anneal_steps, 77);
    ck_assert_int_eq(got.gan_loss, CHARGAN_LOSS_RELATIVISTIC);
    ck_assert(got.beta_start == 2.5f);
    ck_assert_int_eq(got.gumbel_feed, CHARGAN_FEED_SOFT);
    chargan_trainer_free(tr);
    /* beta_start 0 (a zeroed field) reads as the default, 1 */
    tc.beta_start = 0.0f;
    ck_assert_int_eq(chargan_trainer_new(&tc, make_gen(10, 4, 4, 0, 0.0f, 1), NULL, make_disc(10),
                                         NULL, &tr),
                     CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_get_config(tr, &got), CHARGAN_OK);
    ck_assert(got.beta_start == 1.0f);
    /* errors */
    got.struct_size = 4;
    ck_assert_int_eq(chargan_trainer_get_config(tr, &got), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_get_config(tr, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_get_config(NULL, &got), CHARGAN_E_INVALID);
    /* the trainer adopted the models and made both optimizers */
    ck_assert_ptr_nonnull(chargan_trainer_discriminator(tr));
    ck_assert_ptr_nonnull(chargan_trainer_optimizer(tr, CHARGAN_DISCRIMINATOR));
    chargan_trainer_free(tr);
}
END_TEST

/* On failure the caller keeps the models and any optimizers it passed:
 * freeing them afterwards must be neither a leak nor a double free (run
 * under `meson test --setup valgrind`). */
START_TEST(trainer_new_allocation_failures_leave_ownership)
{
    for (int variant = 0; variant < 3; variant++) {
        chargan_trainer_config tc = small_config();
        if (variant == 2) {
            tc.estimator = CHARGAN_GAN_REINFORCE;
            tc.rollouts = 2;
            tc.threads = 2;
        }
        long k;
        for (k = 0; k < 10000; k++) {
            chargan_model *g = make_gen(60, 4, 6, variant ? 3 : 0, variant ? 0.2f : 0.0f, 1);
            chargan_model *d = variant == 2 ? make_disc(60) : NULL;
            chargan_optimizer *go = NULL, *dopt = NULL;
            if (variant >= 1) {
                chargan_optimizer_config oc;
                chargan_optimizer_config_init(&oc, CHARGAN_SGD);
                ck_assert_int_eq(chargan_optimizer_new(&oc, &go), CHARGAN_OK);
                if (d)
                    ck_assert_int_eq(chargan_optimizer_new(&oc, &dopt), CHARGAN_OK);
            }
            chargan_trainer *tr = NULL;
            cg_alloc_fail_after(k);
            chargan_status st = chargan_trainer_new(&tc, g, go, d, dopt, &tr);
            cg_alloc_fail_after(-1);
            if (st == CHARGAN_OK) {
                ck_assert_ptr_eq(chargan_trainer_generator(tr), g);
                ck_assert_ptr_eq(chargan_trainer_discriminator(tr), d);
                if (go)
                    ck_assert_ptr_eq(chargan_trainer_optimizer(tr, CHARGAN_GENERATOR), go);
                ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text,
                                                                 strlen(small_text)),
                                 CHARGAN_OK);
                ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
                chargan_trainer_free(tr);
                break;
            }
            ck_assert_msg(st == CHARGAN_E_NOMEM, "variant %d, allocation %ld: %d (%s)", variant,
                          k, (int)st, chargan_last_error());
            ck_assert_ptr_null(tr);
            chargan_model_free(g);
            chargan_model_free(d);
            chargan_optimizer_free(go);
            chargan_optimizer_free(dopt);
        }
        ck_assert_msg(k > 0 && k < 10000, "variant %d: %ld", variant, k);
    }
}
END_TEST

/* Buffers beyond the machine's memory are refused when they are reserved
 * (they are address space until a step writes them, and that step would be
 * killed by the kernel): at creation and at the load of a checkpoint, whose
 * batch and seq_len choose the size.  The machine's memory is the test
 * hook's 1 MB; the same trainer is made and loaded without it. */
START_TEST(buffers_beyond_machine_memory)
{
    chargan_trainer_config tc = small_config();
    tc.batch = 64;
    tc.seq_len = 256; /* the generator's logits alone: 64 x 256 x 60 floats, 3.9 MB */
    chargan_model *g = make_gen(60, 4, 6, 0, 0.0f, 1);
    chargan_trainer *tr = NULL;
    cg_set_memory_limit(1u << 20);
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, NULL, NULL, &tr), CHARGAN_E_NOMEM);
    cg_set_memory_limit(0);
    ck_assert_ptr_null(tr);
    ck_assert_msg(strstr(chargan_last_error(), "batch 64 x 256 need") &&
                      strstr(chargan_last_error(), "more than this machine's memory (0.00105 GB)"),
                  "%s", chargan_last_error());
    tr = make_trainer(&tc, g); /* the generator is still the caller's */
    char path[4096];
    snprintf(path, sizeof path, "%s/big-batch.ckpt", cg_test_tmpdir());
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    chargan_trainer_free(tr);
    tr = NULL;
    cg_set_memory_limit(1u << 20);
    ck_assert_int_eq(chargan_trainer_load(path, &tr), CHARGAN_E_NOMEM);
    cg_set_memory_limit(0);
    ck_assert_ptr_null(tr);
    ck_assert_msg(strstr(chargan_last_error(), "more than this machine's memory"), "%s",
                  chargan_last_error());
    ck_assert_int_eq(chargan_trainer_load(path, &tr), CHARGAN_OK);
    chargan_trainer_free(tr);
    remove(path);
}
END_TEST

/* The step counters stop at 2^53, the most a checkpoint holds: a step that
 * would count past it is refused and changes nothing, so every file the
 * trainer writes loads (one resumed at 2^53 wrote 2^53 + 1, which its loader
 * refused).  The discriminator's count moves by d_steps in a round. */
START_TEST(step_counters_stop_at_two_to_the_53)
{
    const uint64_t max = UINT64_C(1) << 53;
    chargan_trainer_config tc = small_config();
    tc.estimator = CHARGAN_GAN_REINFORCE;
    tc.d_steps = 3;
    chargan_model *g = make_gen(60, 4, 6, 0, 0.0f, 1);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, g, NULL, make_disc(60), NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text)),
                     CHARGAN_OK);
    tr->global_step = max - 1;
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    ck_assert_uint_eq(tr->global_step, max);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_E_INVALID);
    ck_assert_msg(strstr(chargan_trainer_last_error(tr), "past 2^53"), "%s",
                  chargan_trainer_last_error(tr));
    ck_assert_uint_eq(tr->global_step, max);
    char path[4096];
    snprintf(path, sizeof path, "%s/counters.ckpt", cg_test_tmpdir());
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    chargan_trainer *back;
    ck_assert_msg(chargan_trainer_load(path, &back) == CHARGAN_OK, "%s", chargan_last_error());
    chargan_trainer_free(back);
    remove(path);
    /* a round: 3 discriminator updates, refused 2 short of them */
    tr->global_step = 0;
    tr->d_updates = max - 2;
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_E_INVALID);
    ck_assert_uint_eq(tr->d_updates, max - 2);
    ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, NULL), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, NULL), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, NULL), CHARGAN_E_INVALID);
    tr->d_updates = 0;
    tr->gan.gan_steps = max;
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK); /* not an adversarial one */
    chargan_trainer_free(tr);
}
END_TEST

START_TEST(corpus_allocation_failures)
{
    chargan_trainer_config tc = small_config();
    chargan_trainer *tr = make_trainer(&tc, make_gen(60, 4, 6, 0, 0.0f, 1));
    int32_t *ids = id_stream(200, 60, 3);
    /* the text corpus: fitting and attaching a tokenizer, then encoding */
    long k;
    for (k = 0; k < 10000; k++) {
        cg_alloc_fail_after(k);
        chargan_status st = chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text));
        cg_alloc_fail_after(-1);
        if (st == CHARGAN_OK)
            break;
        ck_assert_msg(st == CHARGAN_E_NOMEM, "allocation %ld: %d (%s)", k, (int)st,
                      chargan_trainer_last_error(tr));
    }
    ck_assert(k > 0 && k < 10000);
    /* the optimizer sizes its state at the first step; after that, steps
     * and evaluation allocate nothing */
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    cg_alloc_fail_after(0);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 200), CHARGAN_E_NOMEM);
    ck_assert_int_eq(chargan_trainer_set_corpus_sequences(tr, ids, 25, 8), CHARGAN_E_NOMEM);
    ck_assert_int_eq(chargan_trainer_init_output_bias(tr), CHARGAN_E_NOMEM);
    /* steps allocate nothing */
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    double nll;
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_OK);
    cg_alloc_fail_after(-1);
    free(ids);
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- numerics, determinism */

/* AdamW with lr 1e38 and weight decay 1e38: the decay factor 1 - lr wd is
 * beyond float, so the first update sends the parameters to infinity, and
 * the next loss is not finite.  (beta1 0: a step size lr / (1 - beta1^t)
 * beyond float would be refused before the update, and a loss or gradient
 * that overflows leaves the parameters as they were.) */
static chargan_optimizer *overflowing_adam(void)
{
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_ADAM);
    oc.lr = 1e38f;
    oc.beta1 = 0.0f;
    oc.weight_decay = 1e38f;
    chargan_optimizer *opt;
    ck_assert_int_eq(chargan_optimizer_new(&oc, &opt), CHARGAN_OK);
    return opt;
}

START_TEST(huge_learning_rate_is_a_numeric_failure)
{
    chargan_optimizer *opt = overflowing_adam();
    chargan_trainer_config tc = small_config();
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, make_gen(40, 4, 6, 2, 0.0f, 1), opt, NULL, NULL, &tr),
                     CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text)),
                     CHARGAN_OK);
    chargan_status st = CHARGAN_OK;
    uint64_t before = 0;
    for (int i = 0; i < 20 && st == CHARGAN_OK; i++) {
        ck_assert_int_eq(chargan_trainer_global_step(tr, &before), CHARGAN_OK);
        st = chargan_trainer_mle_step(tr, NULL);
    }
    ck_assert_int_eq(st, CHARGAN_E_NUMERIC);
    char want[64];
    snprintf(want, sizeof want, "MLE step %llu", (unsigned long long)before + 1);
    assert_contains(chargan_trainer_last_error(tr), want);
    /* the failed step counted nothing */
    uint64_t after;
    ck_assert_int_eq(chargan_trainer_global_step(tr, &after), CHARGAN_OK);
    ck_assert_uint_eq(after, before);
    /* the parameters are not finite: saving refuses, and names the step */
    char path[512];
    snprintf(path, sizeof path, "%s/numeric.ckpt", cg_test_tmpdir());
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_E_NUMERIC);
    assert_contains(chargan_trainer_last_error(tr), "non-finite");
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_null(f);
    ck_assert_int_eq(chargan_model_save(chargan_trainer_generator(tr), path), CHARGAN_E_NUMERIC);
    /* pretraining stops at the same failure */
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 5), CHARGAN_E_NUMERIC);
    double nll;
    ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_E_NUMERIC);
    chargan_trainer_free(tr);
    rmdir(cg_test_tmpdir());
}
END_TEST

/* A generator whose parameters overflowed draws meaningless ids (every
 * draw the last id) or NaN relaxed samples: the discriminator's steps and
 * its evaluation refuse them (REINFORCE's trained on them and reported
 * success, the Gumbel evaluation reported an accuracy), on one thread and
 * on shards. */
START_TEST(discriminator_refuses_a_broken_generator)
{
    const bool gumbel = _i >= 2;
    chargan_optimizer *opt = overflowing_adam();
    chargan_trainer_config tc = small_config();
    tc.estimator = gumbel ? CHARGAN_GAN_GUMBEL : CHARGAN_GAN_REINFORCE;
    tc.threads = _i % 2 ? 3 : 1;
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, make_gen(40, 4, 6, 0, 0.0f, 1), opt, make_disc(40),
                                         NULL, &tr),
                     CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text)),
                     CHARGAN_OK);
    chargan_status st = CHARGAN_OK;
    for (int i = 0; i < 20 && st == CHARGAN_OK; i++)
        st = chargan_trainer_mle_step(tr, NULL);
    ck_assert_int_eq(st, CHARGAN_E_NUMERIC);
    chargan_model *d = chargan_trainer_discriminator(tr);
    float *before = params_copy(d);
    float loss, acc;
    ck_assert_int_eq(chargan_trainer_d_step(tr, &loss, &acc), CHARGAN_E_NUMERIC);
    assert_contains(chargan_trainer_last_error(tr),
                    gumbel ? "not finite" : "logits are not finite");
    ck_assert_int_eq(chargan_trainer_pretrain_discriminator(tr, 3), CHARGAN_E_NUMERIC);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_E_NUMERIC);
    double accuracy = -1.0;
    ck_assert_int_eq(chargan_trainer_eval_discriminator(tr, 2, &accuracy), CHARGAN_E_NUMERIC);
    ck_assert(accuracy == -1.0);
    ck_assert_msg(memcmp(before, d->params, d->n_weights * sizeof(float)) == 0,
                  "the discriminator learnt from a broken generator's samples");
    free(before);
    chargan_trainer_free(tr);
}
END_TEST

static float *train_params(uint64_t trainer_seed, uint32_t threads, bool evaluate_between,
                           size_t *n)
{
    chargan_trainer_config tc = small_config();
    tc.seed = trainer_seed;
    tc.threads = threads;
    chargan_trainer *tr = make_trainer(&tc, make_gen(60, 6, 8, 3, 0.25f, 77));
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, small_text, strlen(small_text)),
                     CHARGAN_OK);
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
        double nll;
        if (evaluate_between)
            ck_assert_int_eq(chargan_trainer_evaluate(tr, &nll, NULL), CHARGAN_OK);
    }
    float *p = params_copy(chargan_trainer_generator(tr));
    *n = chargan_trainer_generator(tr)->n_weights;
    chargan_trainer_free(tr);
    return p;
}

START_TEST(same_seed_same_parameters)
{
    size_t n;
    float *a = train_params(7, 1, false, &n);
    float *b = train_params(7, 1, false, &n);
    ck_assert_msg(memcmp(a, b, n * sizeof(float)) == 0, "same seed, different parameters");
    /* evaluating between steps draws nothing from the trainer's RNG */
    float *c = train_params(7, 1, true, &n);
    ck_assert(memcmp(a, c, n * sizeof(float)) == 0);
    /* another seed draws other windows, noise and masks */
    float *d = train_params(8, 1, false, &n);
    ck_assert(memcmp(a, d, n * sizeof(float)) != 0);
    /* two threads: deterministic for that thread count too */
    float *e = train_params(7, 2, false, &n);
    float *f = train_params(7, 2, false, &n);
    ck_assert(memcmp(e, f, n * sizeof(float)) == 0);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
}
END_TEST

/* A public call of a larger shape on the trainer's generator grows its
 * workspace past the vocabulary (V <= T*B: an input table appears); the
 * trainer's next steps, whose shape is below it, must not take the table
 * path that rounds otherwise (they did: the parameters differed). */
START_TEST(larger_public_call_leaves_steps_alone)
{
    enum { V = 200, B = 2, T = 12, LONG_T = 100 };
    float *params[2];
    size_t n = 0;
    for (int k = 0; k < 2; k++) {
        chargan_trainer_config tc = small_config();
        tc.batch = B;
        tc.seq_len = T;
        chargan_trainer *tr = make_trainer(&tc, make_gen(V, 6, 8, 0, 0.0f, 5));
        int32_t *ids = id_stream(4000, V, 9);
        ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 4000), CHARGAN_OK);
        chargan_model *g = chargan_trainer_generator(tr);
        for (int i = 0; i < 4; i++) {
            ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
            double nll;
            if (k == 1) /* B sequences of LONG_T + 1 ids: LONG_T * B >= V */
                ck_assert_int_eq(chargan_model_nll(g, ids, B, LONG_T + 1, &nll), CHARGAN_OK);
        }
        ck_assert(k == 0 || g->ws.xtab != NULL); /* the table is there, unused by the steps */
        params[k] = params_copy(g);
        n = g->n_weights;
        free(ids);
        chargan_trainer_free(tr);
    }
    ck_assert_msg(memcmp(params[0], params[1], n * sizeof(float)) == 0,
                  "a longer chargan_model_nll call between steps changed the training");
    free(params[0]);
    free(params[1]);
}
END_TEST

/* ---------------------------------------------------------------- adversarial steps on threads */

typedef struct gan_case {
    int estimator, gan_loss;
    float g_dropout, d_dropout;
    uint32_t d_steps;
    int gumbel_feed;
} gan_case;

static const gan_case gan_cases[] = {
    {CHARGAN_GAN_REINFORCE, CHARGAN_LOSS_STANDARD, 0.0f, 0.0f, 1, CHARGAN_FEED_HARD},
    {CHARGAN_GAN_REINFORCE, CHARGAN_LOSS_STANDARD, 0.25f, 0.2f, 2, CHARGAN_FEED_HARD},
    {CHARGAN_GAN_GUMBEL, CHARGAN_LOSS_STANDARD, 0.25f, 0.2f, 1, CHARGAN_FEED_HARD},
    {CHARGAN_GAN_GUMBEL, CHARGAN_LOSS_RELATIVISTIC, 0.25f, 0.2f, 2, CHARGAN_FEED_HARD},
    {CHARGAN_GAN_GUMBEL, CHARGAN_LOSS_STANDARD, 0.25f, 0.2f, 1, CHARGAN_FEED_SOFT},
    {CHARGAN_GAN_GUMBEL, CHARGAN_LOSS_RELATIVISTIC, 0.0f, 0.0f, 2, CHARGAN_FEED_SOFT},
};

/* Both models' parameters, concatenated, after a discriminator step and two
 * adversarial steps with `threads` threads (SGD, so that the parameters
 * differ as the gradients do). */
static float *gan_params(const gan_case *gc, uint32_t threads, size_t *n)
{
    enum { V = 9 };
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = 7; /* split unevenly */
    tc.seq_len = 6;
    tc.seed = 21;
    tc.val_fraction = 0.0f;
    tc.threads = threads;
    tc.estimator = gc->estimator;
    tc.gan_loss = gc->gan_loss;
    tc.d_steps = gc->d_steps;
    tc.gumbel_feed = gc->gumbel_feed;
    tc.beta_max = 3.0f;
    tc.anneal_steps = 2;
    chargan_model *g = make_gen(V, 4, 6, 2, gc->g_dropout, 31);
    chargan_model_config dc;
    chargan_model_config_init(&dc, CHARGAN_DISCRIMINATOR);
    dc.vocab_size = V;
    dc.embed_dim = 3;
    dc.hidden_dim = 5;
    dc.recurrent_dropout = gc->d_dropout;
    dc.seed = 32;
    chargan_model *d;
    ck_assert_int_eq(chargan_model_new(&dc, &d), CHARGAN_OK);
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_SGD);
    oc.lr = 0.05f;
    chargan_optimizer *go, *dopt;
    ck_assert_int_eq(chargan_optimizer_new(&oc, &go), CHARGAN_OK);
    ck_assert_int_eq(chargan_optimizer_new(&oc, &dopt), CHARGAN_OK);
    chargan_trainer *tr;
    ck_assert_msg(chargan_trainer_new(&tc, g, go, d, dopt, &tr) == CHARGAN_OK, "%s",
                  chargan_last_error());
    ck_assert_int_eq(tr->shards.n, threads > 1 ? (int)threads : 0);
    int32_t *ids = id_stream(300, V, 5);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 300), CHARGAN_OK);
    free(ids);
    float loss, acc, gl, dl;
    ck_assert_int_eq(chargan_trainer_d_step(tr, &loss, &acc), CHARGAN_OK);
    ck_assert(isfinite(loss) && acc >= 0.0f && acc <= 1.0f);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(chargan_trainer_gan_step(tr, &gl, &dl) == CHARGAN_OK, "%s",
                      chargan_trainer_last_error(tr));
        ck_assert(isfinite(gl) && isfinite(dl));
    }
    /* Sharded, the steps run on the replicas: the models hold no full-batch
     * workspace (it would double the activation memory). */
    ck_assert(threads > 1 ? !g->ws.ids && !d->ws.ids : g->ws.ids && d->ws.ids);
    *n = g->n_weights + d->n_weights;
    float *p = malloc(*n * sizeof(float));
    ck_assert_ptr_nonnull(p);
    memcpy(p, g->params, g->n_weights * sizeof(float));
    memcpy(p + g->n_weights, d->params, d->n_weights * sizeof(float));
    chargan_trainer_free(tr);
    return p;
}

/* With threads the adversarial steps run on shards (gan.c): the same bits
 * for the same thread count, and the unsharded result up to the rounding of
 * sums taken in another order (same samples: each row has its own RNG
 * stream, each dropout mask is drawn as unsharded). */
START_TEST(sharded_gan_steps_match_unsharded)
{
    const gan_case *gc = &gan_cases[_i];
    size_t n;
    float *one = gan_params(gc, 1, &n);
    float *a = gan_params(gc, 2, &n);
    float *b = gan_params(gc, 2, &n);
    float *c = gan_params(gc, 3, &n);
    ck_assert_msg(memcmp(a, b, n * sizeof(float)) == 0, "two threads, two results");
    for (size_t i = 0; i < n; i++) {
        const float tol = 1e-5f + 1e-4f * fabsf(one[i]);
        ck_assert_msg(fabsf(a[i] - one[i]) <= tol && fabsf(c[i] - one[i]) <= tol,
                      "parameter %zu: 1 thread %.9g, 2 threads %.9g, 3 threads %.9g", i, one[i],
                      a[i], c[i]);
    }
    free(one);
    free(a);
    free(b);
    free(c);
}
END_TEST

static Suite *trainer_suite(void)
{
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("learning");
    tcase_add_test(tc, mle_on_sonnets_beats_unigram_entropy);
    tcase_add_test(tc, progress_reports_and_cancel);
    tcase_add_test(tc, request_stop_at_step_boundaries);
    suite_add_tcase(s, tc);

    tc = tcase_create("corpus");
    tcase_add_test(tc, corpus_errors);
    tcase_add_test(tc, corpus_text_uses_attached_tokenizer);
    tcase_add_loop_test(tc, sequences_corpus, 0, 2);
    tcase_add_loop_test(tc, init_output_bias_is_log_unigram, 0, 2);
    tcase_add_test(tc, mle_step_batch_matches_model_nll);
    tcase_add_test(tc, packed_ids_every_width);
    tcase_add_test(tc, packed_ids_from_pieces);
    tcase_add_loop_test(tc, corpus_text_in_pieces_equals_one_encode, 0, 3);
    tcase_add_test(tc, corpus_ids_beyond_one_byte);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_test(tc, calls_out_of_order);
    tcase_add_test(tc, every_invalid_config_field);
    tcase_add_test(tc, get_config_round_trip);
    tcase_add_test(tc, huge_learning_rate_is_a_numeric_failure);
    tcase_add_loop_test(tc, discriminator_refuses_a_broken_generator, 0, 4);
    tcase_add_test(tc, same_seed_same_parameters);
    tcase_add_test(tc, larger_public_call_leaves_steps_alone);
    tcase_add_loop_test(tc, sharded_gan_steps_match_unsharded, 0,
                        sizeof gan_cases / sizeof gan_cases[0]);
    suite_add_tcase(s, tc);

    tc = tcase_create("alloc");
    tcase_add_test(tc, trainer_new_allocation_failures_leave_ownership);
    tcase_add_test(tc, corpus_allocation_failures);
    tcase_add_test(tc, buffers_beyond_machine_memory);
    tcase_add_test(tc, step_counters_stop_at_two_to_the_53);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(trainer_suite)
