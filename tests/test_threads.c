/* test_threads.c - the thread-safety rules of include/chargan.h: distinct
 * handles (tokenizers, models, sampling, trainers, sharded trainers, saves
 * and loads) used from several threads at once give bitwise the results of
 * a serial run; each thread keeps its own last-error message; functions
 * without a handle (metrics) run concurrently; one sampling call on several
 * threads gives the ids of one thread; a stop request from another thread
 * stops a trainer's call.  Meaningful on its own
 * (results compared with a serial run) and under ThreadSanitizer (CI's tsan
 * stage builds with -Db_sanitize=thread and runs this suite). */
#define _POSIX_C_SOURCE 200809L
#include "test_common.h"
#include "kernels.h"
#include "pool.h"
#include "trainer.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

#define N_THREADS 6

static const char text[] =
    "From fairest creatures we desire increase,\n"
    "That thereby beauty's rose might never die,\n"
    "But as the riper should by time decease,\n"
    "His tender heir might bear his memory:\n"
    "But thou contracted to thine own bright eyes,\n"
    "Feed'st thy light's flame with self-substantial fuel,\n"
    "Making a famine where abundance lies,\n"
    "Thy self thy foe, to thy sweet self too cruel:\n";

/* Inside the threads Check's ck_assert is not usable (it longjmps out of the
 * test case from the wrong thread), so a job records its first failure here
 * and the test case asserts on it afterwards. */
typedef struct job {
    int kind;
    uint64_t seed;
    uint64_t fingerprint; /* FNV-1a of everything the job computed */
    char failure[256];
} job;

static void fnv(uint64_t *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        *h ^= p[i];
        *h *= 0x100000001b3ull;
    }
}

#define JOB_TRY(j, call)                                                                           \
    do {                                                                                           \
        chargan_status st_ = (call);                                                               \
        if (st_ != CHARGAN_OK) {                                                                   \
            if (!(j)->failure[0])                                                                  \
                snprintf((j)->failure, sizeof (j)->failure, "%s: %s (%s)", #call,                 \
                         chargan_strerror(st_), chargan_last_error());                             \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

#define JOB_CHECK(j, cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (!(j)->failure[0])                                                                  \
                snprintf((j)->failure, sizeof (j)->failure, __VA_ARGS__);                         \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static void fingerprint_params(uint64_t *h, const chargan_model *m)
{
    size_t n = 0;
    chargan_model_num_params(m, &n);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        uint32_t rank;
        size_t shape[2], numel;
        chargan_model_param_info(m, i, &name, &rank, shape, &numel);
        float *v = malloc(numel * sizeof *v);
        if (!v)
            abort();
        chargan_model_param_get(m, i, v, numel);
        fnv(h, v, numel * sizeof *v);
        free(v);
    }
}

/* ---------------------------------------------------------------- jobs */

enum { JOB_TOKENIZER, JOB_MODEL, JOB_TRAINER, JOB_SHARDED, JOB_GAN, JOB_SAVE_LOAD, JOB_METRICS,
       N_KINDS };
static const char *const kind_names[N_KINDS] = {"tokenizer", "model", "trainer", "sharded trainer",
                                                 "gan", "save/load", "metrics"};

/* Fit, encode, decode, a strict failure at a job-specific offset, save and load. */
static void run_tokenizer(job *j)
{
    chargan_tokenizer *tok = NULL, *back = NULL;
    void *buf = NULL;
    int32_t *ids = NULL;
    char *bad = NULL;
    uint64_t h = 0xcbf29ce484222325ull;
    chargan_tokenizer_options o;
    chargan_tokenizer_options_init(&o);
    o.lowercase = (int)(j->seed & 1);
    o.max_vocab = 8 + (uint32_t)(j->seed % 20);
    size_t start = (size_t)(j->seed * 13) % 100, len = sizeof text - 1 - start;
    JOB_TRY(j, chargan_tokenizer_new(&o, &tok));
    JOB_TRY(j, chargan_tokenizer_fit(tok, text + start, len));
    ids = malloc(sizeof text * sizeof *ids);
    JOB_CHECK(j, ids != NULL, "out of memory");
    size_t n = 0;
    JOB_TRY(j, chargan_tokenizer_encode(tok, text, sizeof text - 1, ids, sizeof text, &n));
    fnv(&h, ids, n * sizeof *ids);
    char out[4 * sizeof text];
    size_t out_len = 0;
    JOB_TRY(j, chargan_tokenizer_decode(tok, ids, n, out, sizeof out, &out_len));
    fnv(&h, out, out_len);
    /* The error message names this job's offset, whatever the others do. */
    size_t bad_at = 10 + (size_t)j->seed;
    bad = malloc(sizeof text);
    JOB_CHECK(j, bad != NULL, "out of memory");
    memcpy(bad, text, sizeof text);
    bad[bad_at] = (char)0xff;
    chargan_status st = chargan_tokenizer_encode(tok, bad, sizeof text - 1, ids, sizeof text, &n);
    JOB_CHECK(j, st == CHARGAN_E_UTF8, "invalid UTF-8 gave status %d", (int)st);
    char want[32];
    snprintf(want, sizeof want, "offset %zu", bad_at);
    JOB_CHECK(j, strstr(chargan_last_error(), want) != NULL,
              "thread message \"%s\" lacks \"%s\"", chargan_last_error(), want);
    JOB_CHECK(j, strstr(chargan_tokenizer_last_error(tok), want) != NULL,
              "tokenizer message \"%s\" lacks \"%s\"", chargan_tokenizer_last_error(tok), want);
    size_t size = 0;
    JOB_TRY(j, chargan_tokenizer_save_buffer(tok, &buf, &size));
    fnv(&h, buf, size);
    JOB_TRY(j, chargan_tokenizer_load_buffer(buf, size, &back));
    uint32_t v1 = 0, v2 = 0;
    chargan_tokenizer_vocab_size(tok, &v1);
    chargan_tokenizer_vocab_size(back, &v2);
    JOB_CHECK(j, v1 == v2, "vocabulary %u after loading, %u before", v2, v1);
    j->fingerprint = h;
out:
    chargan_free(buf);
    free(ids);
    free(bad);
    chargan_tokenizer_free(back);
    chargan_tokenizer_free(tok);
}

static chargan_model *new_model(job *j, chargan_model_kind kind, uint32_t V, uint64_t seed)
{
    chargan_model_config c;
    chargan_model_config_init(&c, kind);
    c.vocab_size = V;
    c.embed_dim = 6;
    c.hidden_dim = 10;
    c.noise_dim = kind == CHARGAN_GENERATOR ? 3 : 0;
    c.recurrent_dropout = 0.1f;
    c.seed = seed;
    chargan_model *m = NULL;
    chargan_status st = chargan_model_new(&c, &m);
    if (st != CHARGAN_OK && !j->failure[0])
        snprintf(j->failure, sizeof j->failure, "chargan_model_new: %s", chargan_last_error());
    return m;
}

/* Sampling with top-k and nucleus (sample.c keeps its sort key per thread),
 * the NLL of the samples, and the text path through a tokenizer. */
static void run_model(job *j)
{
    chargan_tokenizer *tok = NULL;
    chargan_model *m = NULL;
    char *sampled = NULL;
    uint64_t h = 0xcbf29ce484222325ull;
    JOB_TRY(j, chargan_tokenizer_new(NULL, &tok));
    JOB_TRY(j, chargan_tokenizer_fit(tok, text, sizeof text - 1));
    uint32_t V = 0;
    chargan_tokenizer_vocab_size(tok, &V);
    m = new_model(j, CHARGAN_GENERATOR, V, j->seed);
    JOB_CHECK(j, m != NULL, "no model");
    JOB_TRY(j, chargan_model_set_tokenizer(m, tok));
    chargan_sample_options so;
    chargan_sample_options_init(&so);
    so.n_streams = 3;
    so.length = 40;
    so.top_k = 5 + (uint32_t)(j->seed % 3);
    so.top_p = 0.9f;
    so.temperature = 0.8f;
    so.seed = j->seed;
    int32_t ids[3 * 40];
    JOB_TRY(j, chargan_model_sample_ids(m, &so, NULL, 0, ids, 3 * 40));
    fnv(&h, ids, sizeof ids);
    double nll = 0;
    JOB_TRY(j, chargan_model_nll(m, ids, 3, 40, &nll));
    fnv(&h, &nll, sizeof nll);
    JOB_TRY(j, chargan_model_stream_nll(m, ids, 3 * 40, 2, &nll));
    fnv(&h, &nll, sizeof nll);
    so.top_k = 0;
    so.top_p = 1.0f;
    JOB_TRY(j, chargan_model_sample_text(m, &so, "Thy ", &sampled));
    fnv(&h, sampled, strlen(sampled));
    j->fingerprint = h;
out:
    chargan_free(sampled);
    chargan_model_free(m);
    chargan_tokenizer_free(tok);
}

/* A trainer of `threads` threads (shards with their own pool), MLE steps,
 * evaluation and, with an estimator, adversarial rounds.  With a path, a
 * save, a load and a step on the loaded trainer. */
static void run_trainer(job *j, uint32_t threads, int estimator, const char *path)
{
    chargan_model *g = NULL, *d = NULL;
    chargan_trainer *tr = NULL, *loaded = NULL;
    uint64_t h = 0xcbf29ce484222325ull;
    chargan_tokenizer *tok = NULL;
    JOB_TRY(j, chargan_tokenizer_new(NULL, &tok));
    JOB_TRY(j, chargan_tokenizer_fit(tok, text, sizeof text - 1));
    uint32_t V = 0;
    chargan_tokenizer_vocab_size(tok, &V);
    g = new_model(j, CHARGAN_GENERATOR, V, j->seed);
    JOB_CHECK(j, g != NULL, "no generator");
    JOB_TRY(j, chargan_model_set_tokenizer(g, tok));
    if (estimator != CHARGAN_GAN_NONE) {
        d = new_model(j, CHARGAN_DISCRIMINATOR, V, j->seed + 100);
        JOB_CHECK(j, d != NULL, "no discriminator");
    }
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = 6;
    tc.seq_len = 12;
    tc.seed = j->seed;
    tc.threads = threads;
    tc.estimator = estimator;
    tc.rollouts = estimator == CHARGAN_GAN_REINFORCE ? 1 : 0;
    JOB_TRY(j, chargan_trainer_new(&tc, g, NULL, d, NULL, &tr));
    g = d = NULL; /* the trainer owns them */
    JOB_TRY(j, chargan_trainer_set_corpus_text(tr, text, sizeof text - 1));
    for (int i = 0; i < 4; i++) {
        float loss = 0;
        JOB_TRY(j, chargan_trainer_mle_step(tr, &loss));
        fnv(&h, &loss, sizeof loss);
    }
    if (estimator != CHARGAN_GAN_NONE) {
        for (int i = 0; i < 2; i++) {
            float gl = 0, dl = 0;
            JOB_TRY(j, chargan_trainer_gan_step(tr, &gl, &dl));
            fnv(&h, &gl, sizeof gl);
            fnv(&h, &dl, sizeof dl);
        }
    }
    double nll = 0;
    JOB_TRY(j, chargan_trainer_evaluate(tr, &nll, NULL));
    fnv(&h, &nll, sizeof nll);
    fingerprint_params(&h, chargan_trainer_generator(tr));
    if (path) {
        JOB_TRY(j, chargan_trainer_save(tr, path));
        JOB_TRY(j, chargan_trainer_load(path, &loaded));
        unlink(path);
        JOB_TRY(j, chargan_trainer_set_corpus_text(loaded, text, sizeof text - 1));
        float a = 0, b = 0;
        JOB_TRY(j, chargan_trainer_mle_step(tr, &a));
        JOB_TRY(j, chargan_trainer_mle_step(loaded, &b));
        JOB_CHECK(j, memcmp(&a, &b, sizeof a) == 0, "the loaded trainer's step gives %.9g, the "
                  "original's %.9g", (double)b, (double)a);
        fnv(&h, &b, sizeof b);
    }
    j->fingerprint = h;
out:
    chargan_trainer_free(loaded);
    chargan_trainer_free(tr);
    chargan_model_free(g);
    chargan_model_free(d);
    chargan_tokenizer_free(tok);
}

static void run_metrics(job *j)
{
    static const char *const hyp[] = {"the rose might never die", "thy self thy foe",
                                      "making a famine where abundance lies"};
    static const char *const ref[] = {"that thereby beauty's rose might never die",
                                      "thy self thy foe, to thy sweet self too cruel",
                                      "making a famine where abundance lies", "feed'st thy light"};
    uint64_t h = 0xcbf29ce484222325ull;
    double bleu[4], self[4];
    JOB_TRY(j, chargan_bleu(hyp, 3, ref, 4, 5, bleu));
    JOB_TRY(j, chargan_self_bleu(ref, 4, 5, self));
    fnv(&h, bleu, sizeof bleu);
    fnv(&h, self, sizeof self);
    j->fingerprint = h;
out:
    return;
}

static void run_job(job *j)
{
    j->failure[0] = '\0';
    j->fingerprint = 0;
    char path[512];
    switch (j->kind) {
    case JOB_TOKENIZER: run_tokenizer(j); break;
    case JOB_MODEL: run_model(j); break;
    case JOB_TRAINER: run_trainer(j, 1, CHARGAN_GAN_NONE, NULL); break;
    case JOB_SHARDED: run_trainer(j, 3, CHARGAN_GAN_NONE, NULL); break;
    case JOB_GAN:
        run_trainer(j, 2, j->seed & 1 ? CHARGAN_GAN_GUMBEL : CHARGAN_GAN_REINFORCE, NULL);
        break;
    case JOB_SAVE_LOAD:
        snprintf(path, sizeof path, "%s/threads-%llu.chargan", cg_test_tmpdir(),
                 (unsigned long long)j->seed);
        run_trainer(j, 2, CHARGAN_GAN_REINFORCE, path);
        break;
    case JOB_METRICS: run_metrics(j); break;
    }
}

static void *thread_main(void *arg)
{
    run_job(arg);
    return NULL;
}

/* Runs jobs serially for the expected results, then all at once, one
 * thread each, and compares. */
static void serial_then_concurrent(job *jobs, int n)
{
    uint64_t expected[32];
    ck_assert_int_le(n, 32);
    for (int i = 0; i < n; i++) {
        run_job(&jobs[i]);
        ck_assert_msg(jobs[i].failure[0] == '\0', "serial %s job %d: %s",
                      kind_names[jobs[i].kind], i, jobs[i].failure);
        expected[i] = jobs[i].fingerprint;
    }
    pthread_t threads[32];
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, thread_main, &jobs[i]), 0);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(jobs[i].failure[0] == '\0', "concurrent %s job %d: %s",
                      kind_names[jobs[i].kind], i, jobs[i].failure);
        ck_assert_msg(jobs[i].fingerprint == expected[i],
                      "%s job %d: results in a thread differ from the serial run's",
                      kind_names[jobs[i].kind], i);
    }
}

static void fill(job *jobs, int n, int kind)
{
    for (int i = 0; i < n; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].kind = kind;
        jobs[i].seed = (uint64_t)i + 1;
    }
}

/* ---------------------------------------------------------------- tests */

START_TEST(tokenizers_in_threads)
{
    job jobs[N_THREADS];
    fill(jobs, N_THREADS, JOB_TOKENIZER);
    serial_then_concurrent(jobs, N_THREADS);
}
END_TEST

START_TEST(models_sampling_in_threads)
{
    job jobs[N_THREADS];
    fill(jobs, N_THREADS, JOB_MODEL);
    serial_then_concurrent(jobs, N_THREADS);
}
END_TEST

START_TEST(trainers_in_threads)
{
    job jobs[4];
    fill(jobs, 4, JOB_TRAINER);
    serial_then_concurrent(jobs, 4);
}
END_TEST

/* Trainers of three threads each (a pool and generator replicas per
 * trainer), several at once: pools of different trainers share nothing. */
START_TEST(sharded_trainers_in_threads)
{
    job jobs[3];
    fill(jobs, 3, JOB_SHARDED);
    serial_then_concurrent(jobs, 3);
}
END_TEST

START_TEST(everything_at_once)
{
    job jobs[2 * N_KINDS];
    for (int i = 0; i < 2 * N_KINDS; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].kind = i % N_KINDS;
        jobs[i].seed = (uint64_t)i + 7;
    }
    serial_then_concurrent(jobs, 2 * N_KINDS);
}
END_TEST

/* The defaults but for the batch, window length and threads of a test. */
static chargan_trainer_config small_config(uint32_t batch, uint32_t seq_len, uint32_t threads)
{
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = batch;
    tc.seq_len = seq_len;
    tc.threads = threads;
    return tc;
}

/* A trainer of tc around a small generator (V 40, E 6, H 10, Z 3) and, with
 * an estimator, a small discriminator (E 5, H 7). */
static chargan_trainer *small_trainer(const chargan_trainer_config *tc)
{
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_GENERATOR);
    c.vocab_size = 40;
    c.embed_dim = 6;
    c.hidden_dim = 10;
    c.noise_dim = 3;
    c.seed = 5;
    chargan_model *g, *d = NULL;
    ck_assert_int_eq(chargan_model_new(&c, &g), CHARGAN_OK);
    if (tc->estimator != CHARGAN_GAN_NONE) {
        chargan_model_config_init(&c, CHARGAN_DISCRIMINATOR);
        c.vocab_size = 40;
        c.embed_dim = 5;
        c.hidden_dim = 7;
        c.seed = 6;
        ck_assert_int_eq(chargan_model_new(&c, &d), CHARGAN_OK);
    }
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(tc, g, NULL, d, NULL, &tr), CHARGAN_OK);
    return tr;
}

/* A sharded trainer computes the gradient of the unsharded one: the same
 * seed with 1 and 3 threads gives the same losses up to float rounding. */
START_TEST(sharded_mle_matches_one_thread)
{
    float loss[2][6];
    for (int v = 0; v < 2; v++) {
        chargan_trainer_config tc = small_config(7, 10, v ? 3 : 1);
        tc.seed = 9;
        chargan_trainer *tr = small_trainer(&tc);
        ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, sizeof text - 1), CHARGAN_OK);
        for (int i = 0; i < 6; i++)
            ck_assert_int_eq(chargan_trainer_mle_step(tr, &loss[v][i]), CHARGAN_OK);
        chargan_trainer_free(tr);
    }
    for (int i = 0; i < 6; i++)
        ck_assert_msg(fabsf(loss[0][i] - loss[1][i]) <= 1e-4f * fabsf(loss[0][i]),
                      "step %d: loss %.7g with one thread, %.7g with three", i,
                      (double)loss[0][i], (double)loss[1][i]);
}
END_TEST

/* REINFORCE with rollouts on two threads: each shard completes its own rows
 * (at batch 200 the 3 rollouts run in a group of 2, then of 1, and a shard
 * in the smaller group must not write where the other is still in the
 * larger), so the same seed gives the same bits every time; under TSan
 * (.ci/run) a shared row is a reported race. */
START_TEST(sharded_rollouts_are_deterministic)
{
    uint64_t h[2];
    for (int v = 0; v < 2; v++) {
        chargan_trainer_config tc = small_config(200, 4, 2);
        tc.seed = 11;
        tc.estimator = CHARGAN_GAN_REINFORCE;
        tc.rollouts = 3;
        chargan_trainer *tr = small_trainer(&tc);
        ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, sizeof text - 1), CHARGAN_OK);
        h[v] = 0xcbf29ce484222325ull;
        for (int i = 0; i < 2; i++) {
            float gl, dl;
            ck_assert_int_eq(chargan_trainer_gan_step(tr, &gl, &dl), CHARGAN_OK);
            fnv(&h[v], &gl, sizeof gl);
        }
        fingerprint_params(&h[v], chargan_trainer_generator(tr));
        chargan_trainer_free(tr);
    }
    ck_assert_msg(h[0] == h[1], "fingerprints %016llx and %016llx", (unsigned long long)h[0],
                  (unsigned long long)h[1]);
}
END_TEST

/* fork() copies a trainer but not its threads: the child's steps run the
 * shards one after another and give the parent's bits (they waited for ever
 * on workers that were not there), and its free returns. */
START_TEST(a_forked_child_trains_as_the_parent)
{
    chargan_trainer_config tc = small_config(4, 10, 2);
    tc.seed = 9;
    chargan_trainer *tr = small_trainer(&tc);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, sizeof text - 1), CHARGAN_OK);
    float parent[3], child[3];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(60); /* a hang ends as a signal the parent sees */
        close(fds[0]);
        int ok = 1;
        for (int i = 0; i < 3; i++)
            ok &= chargan_trainer_mle_step(tr, &child[i]) == CHARGAN_OK;
        chargan_trainer_free(tr);
        ok &= write(fds[1], child, sizeof child) == (ssize_t)sizeof child;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(chargan_trainer_mle_step(tr, &parent[i]), CHARGAN_OK);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child %s %d",
                  WIFSIGNALED(status) ? "died of signal" : "exited with",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    ck_assert_int_eq(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    close(fds[0]);
    ck_assert_msg(memcmp(parent, child, sizeof parent) == 0, "losses %a %a %a, the child's %a %a %a",
                  (double)parent[0], (double)parent[1], (double)parent[2], (double)child[0],
                  (double)child[1], (double)child[2]);
    chargan_trainer_free(tr);
}
END_TEST

/* A generator of 80,040 parameters (over the 16 blocks from which a sharded
 * trainer's gradient sum and update run on its threads) in a trainer of three
 * threads (uneven slices), with opt as its generator's optimizer (NULL: the
 * default).  *g is the trainer's generator. */
static chargan_trainer *threaded_update_trainer(chargan_optimizer *opt, chargan_model **g)
{
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_GENERATOR);
    c.vocab_size = 40;
    c.embed_dim = 16;
    c.hidden_dim = 128;
    c.seed = 3;
    ck_assert_int_eq(chargan_model_new(&c, g), CHARGAN_OK);
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = 6;
    tc.seq_len = 8;
    tc.threads = 3;
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&tc, *g, opt, NULL, NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(tr->shards.n, 3);
    ck_assert_uint_ge((*g)->n_weights, 16 * CG_OPTIM_BLOCK);
    return tr;
}

/* got and want (one thread's) hold the same bits; the first that differs
 * is named with what (say "step 1: parameter"). */
static void assert_same_bits(const float *got, const float *want, size_t n, const char *what)
{
    size_t i = 0;
    while (i < n && !memcmp(&got[i], &want[i], sizeof(float)))
        i++;
    ck_assert_msg(i == n, "%s %zu of %zu is %a, one thread gives %a", what, i, n, (double)got[i],
                  (double)want[i]);
}

/* The replicas' gradients are summed on the trainer's threads, each thread a
 * slice of the parameters: the sum, in replica order, of one thread, bit for
 * bit. */
START_TEST(sharded_gradient_sum_matches_one_thread)
{
    chargan_model *g;
    chargan_trainer *tr = threaded_update_trainer(NULL, &g);
    cg_shards *sh = &tr->shards;
    ck_assert_ptr_eq(sh->gen[0]->grads, g->grads); /* replica 0 writes the model's own */
    const size_t n = g->n_weights;
    float *expect = malloc(n * sizeof(float));
    ck_assert(expect);
    cg_rng rng;
    cg_rng_seed(&rng, 12);
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < n; i++)
            sh->gen[s]->grads[i] = 2.0f * cg_rng_uniform(&rng) - 1.0f;
    for (size_t i = 0; i < n; i++)
        expect[i] = (g->grads[i] + sh->gen[1]->grads[i]) + sh->gen[2]->grads[i];
    cg_shards_sum_grads(sh, g, sh->gen);
    assert_same_bits(g->grads, expect, n, "gradient");
    free(expect);
    chargan_trainer_free(tr);
}
END_TEST

/* The trainer's optimizer update runs on its threads, each taking whole
 * blocks (cg_trainer_optimizer_step).  Its result is cg_optimizer_step's on
 * one thread, bit for bit: parameters, the clipped gradient and the norm,
 * over three steps (fresh state, then state), clipped and not. */
START_TEST(sharded_update_matches_one_thread_update)
{
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_ADAM);
    oc.lr = 0.01f;
    oc.weight_decay = 0.01f;
    oc.clip_norm = 200.0f; /* the norms below: about 327 (clipped), 163, 327 */
    chargan_optimizer *opt, *reference;
    ck_assert_int_eq(chargan_optimizer_new(&oc, &opt), CHARGAN_OK);
    ck_assert_int_eq(chargan_optimizer_new(&oc, &reference), CHARGAN_OK);
    chargan_model *g;
    chargan_trainer *tr = threaded_update_trainer(opt, &g);
    const size_t n = g->n_weights;
    float *params = malloc(n * sizeof(float)), *grads = malloc(n * sizeof(float));
    ck_assert(params && grads);
    memcpy(params, g->params, n * sizeof(float));
    cg_rng rng;
    cg_rng_seed(&rng, 8);
    for (int step = 0; step < 3; step++) {
        const float range = step == 1 ? 1.0f : 2.0f;
        for (size_t i = 0; i < n; i++)
            grads[i] = g->grads[i] = range * (2.0f * cg_rng_uniform(&rng) - 1.0f);
        double norm = -1, expect_norm = -2;
        ck_assert_int_eq(cg_trainer_optimizer_step(tr, opt, g, &norm), CHARGAN_OK);
        ck_assert_int_eq(cg_optimizer_step(reference, params, grads, n, &expect_norm), CHARGAN_OK);
        ck_assert_msg(memcmp(&norm, &expect_norm, sizeof norm) == 0,
                      "step %d: norm %.17g, one thread gives %.17g", step, norm, expect_norm);
        char what[32];
        snprintf(what, sizeof what, "step %d: parameter", step);
        assert_same_bits(g->params, params, n, what);
        snprintf(what, sizeof what, "step %d: gradient", step);
        assert_same_bits(g->grads, grads, n, what);
    }
    free(params);
    free(grads);
    chargan_optimizer_free(reference);
    chargan_trainer_free(tr);
}
END_TEST

/* One sampling call on several threads: streams split across threads, and
 * fewer streams than threads sharing each step (H = 128: two slices of the
 * units, barriers between layers).  The same ids as on one thread; under
 * ThreadSanitizer, no race between the threads of the call. */
START_TEST(sampling_on_threads_matches_one_thread)
{
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_GENERATOR);
    c.vocab_size = 30;
    c.embed_dim = 8;
    c.hidden_dim = 128;
    c.num_layers = 2;
    c.noise_dim = 3;
    c.seed = 4;
    chargan_model *g;
    ck_assert_int_eq(chargan_model_new(&c, &g), CHARGAN_OK);
    const uint32_t streams[] = {1, 2, 5};
    for (size_t k = 0; k < 3; k++) {
        chargan_sample_options o;
        chargan_sample_options_init(&o);
        o.n_streams = streams[k];
        o.length = 40;
        o.seed = 8;
        int32_t one[5 * 40], many[5 * 40];
        ck_assert_int_eq(chargan_model_sample_ids(g, &o, NULL, 0, one, 200), CHARGAN_OK);
        o.threads = 3;
        ck_assert_int_eq(chargan_model_sample_ids(g, &o, NULL, 0, many, 200), CHARGAN_OK);
        if (cg_kern_active() != CG_KERN_PORTABLE) /* a BLAS may round rows differently */
            ck_assert_msg(memcmp(one, many, streams[k] * 40 * sizeof *one) == 0, "%u streams",
                          streams[k]);
    }
    chargan_model_free(g);
}
END_TEST

/* chargan_last_error() is per thread: every thread fails differently, waits
 * until all have failed, then finds its own message. */
static pthread_barrier_t barrier;

static void *fail_and_check(void *arg)
{
    job *j = arg;
    char name[64];
    snprintf(name, sizeof name, "/nonexistent-%llu/model.chargan", (unsigned long long)j->seed);
    chargan_model *m = NULL;
    chargan_status st = chargan_model_load(name, CHARGAN_GENERATOR, &m);
    pthread_barrier_wait(&barrier);
    if (st != CHARGAN_E_IO)
        snprintf(j->failure, sizeof j->failure, "load gave status %d", (int)st);
    else if (!strstr(chargan_last_error(), name))
        snprintf(j->failure, sizeof j->failure, "message \"%s\" lacks \"%s\"",
                 chargan_last_error(), name);
    return NULL;
}

START_TEST(last_error_is_per_thread)
{
    job jobs[N_THREADS];
    fill(jobs, N_THREADS, JOB_METRICS);
    pthread_t threads[N_THREADS];
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, N_THREADS), 0);
    for (int i = 0; i < N_THREADS; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, fail_and_check, &jobs[i]), 0);
    for (int i = 0; i < N_THREADS; i++)
        ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < N_THREADS; i++)
        ck_assert_msg(jobs[i].failure[0] == '\0', "thread %d: %s", i, jobs[i].failure);
}
END_TEST

/* Which shards ran with SIGINT and SIGTERM blocked: 1, and 2 if SIGSEGV
 * was blocked too. */
static void note_blocked(void *ctx, int shard)
{
    int *blocked = ctx;
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    blocked[shard] = sigismember(&mask, SIGINT) == 1 && sigismember(&mask, SIGTERM) == 1;
    blocked[shard] += blocked[shard] && sigismember(&mask, SIGSEGV) == 1;
}

/* The library's worker threads block every signal but faults', so that the
 * process's signals reach the application's threads and a crash handler
 * still runs; the caller's mask is its own. */
START_TEST(workers_block_signals)
{
    sigset_t before, after;
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    ck_assert(!sigismember(&before, SIGINT));
    cg_pool *pool = cg_pool_new(3);
    ck_assert_ptr_nonnull(pool);
    int blocked[3] = {-1, -1, -1};
    cg_pool_run(pool, note_blocked, blocked);
    cg_pool_free(pool);
    ck_assert_int_eq(blocked[0], 0); /* shard 0 runs on the calling thread */
    ck_assert_int_eq(blocked[1], 1);
    ck_assert_int_eq(blocked[2], 1);
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    ck_assert(!sigismember(&after, SIGINT) && !sigismember(&after, SIGTERM));
}
END_TEST

/* A thread that asks a trainer to stop once its progress has reported
 * step ask_after, delay_us later. */
typedef struct stop_race {
    chargan_trainer *tr;
    int ask_after;
    useconds_t delay_us;
    atomic_int reported; /* the step of the latest report */
} stop_race;

static int note_report(const chargan_progress *p, void *user)
{
    stop_race *r = user;
    atomic_store(&r->reported, (int)p->step);
    return 0;
}

static void *request_after_report(void *arg)
{
    stop_race *r = arg;
    while (atomic_load(&r->reported) < r->ask_after)
        usleep(100);
    usleep(r->delay_us);
    chargan_trainer_request_stop(r->tr);
    return NULL;
}

/* pretrain_generator(steps) while r's thread asks r->tr to stop. */
static chargan_status pretrain_while_asked(stop_race *r, uint64_t steps)
{
    ck_assert_int_eq(chargan_trainer_set_progress(r->tr, note_report, r), CHARGAN_OK);
    pthread_t asker;
    ck_assert_int_eq(pthread_create(&asker, NULL, request_after_report, r), 0);
    chargan_status st = chargan_trainer_pretrain_generator(r->tr, steps);
    ck_assert_int_eq(pthread_join(asker, NULL), 0);
    ck_assert_int_eq(chargan_trainer_set_progress(r->tr, NULL, NULL), CHARGAN_OK);
    return st;
}

/* chargan_trainer_request_stop from another thread while a sharded trainer
 * trains: the call stops at a step boundary, the steps since its last
 * report reported, and the trainer goes on afterwards. */
START_TEST(request_stop_from_another_thread)
{
    chargan_trainer_config tc = small_config(4, 8, 2);
    tc.report_every = 50;
    chargan_trainer *tr = small_trainer(&tc);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, strlen(text)), CHARGAN_OK);
    /* a millisecond after the first report: most likely between two */
    stop_race race = {.tr = tr, .ask_after = 1, .delay_us = 1000};
    ck_assert_int_eq(pretrain_while_asked(&race, 100000000), CHARGAN_E_CANCELLED);
    uint64_t step;
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_ge(step, 50);
    ck_assert_uint_lt(step, 100000000);
    ck_assert_uint_eq(step, (uint64_t)atomic_load(&race.reported)); /* the last steps reported */
    char expect[64];
    snprintf(expect, sizeof expect, "after step %llu", (unsigned long long)step);
    ck_assert_msg(strstr(chargan_trainer_last_error(tr), expect), "\"%s\" lacks \"%s\"",
                  chargan_trainer_last_error(tr), expect);
    ck_assert_int_eq(chargan_trainer_pretrain_generator(tr, 2), CHARGAN_OK);
    chargan_trainer_free(tr);
}
END_TEST

/* A request during the last step or the final validation that follows it
 * (a long one here: half of a 1 MB corpus) stops the call there, the
 * validation dropped. */
START_TEST(request_stop_during_the_final_validation)
{
    size_t n = 2700 * (sizeof text - 1);
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < n; i += sizeof text - 1)
        memcpy(big + i, text, sizeof text - 1);
    chargan_trainer_config tc = small_config(4, 8, 1);
    tc.report_every = 1;
    tc.val_fraction = 0.5f;
    chargan_trainer *tr = small_trainer(&tc);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, big, n), CHARGAN_OK);
    free(big);
    stop_race race = {.tr = tr, .ask_after = 2}; /* at once: in step 3 or its validation */
    chargan_status st = pretrain_while_asked(&race, 3);
    ck_assert_msg(st == CHARGAN_E_CANCELLED, "status %d: %s", (int)st,
                  chargan_trainer_last_error(tr));
    ck_assert_msg(strstr(chargan_trainer_last_error(tr), "after step 3"), "%s",
                  chargan_trainer_last_error(tr));
    ck_assert_int_eq(atomic_load(&race.reported), 3);
    ck_assert_int_eq(chargan_trainer_mle_step(tr, NULL), CHARGAN_OK);
    chargan_trainer_free(tr);
}
END_TEST

/* Creating a trainer sets OpenBLAS's threads: one when the trainer shards
 * the batch over its own, else the trainer's count.  Weak references, as
 * the library's: NULL with the reference BLAS, which has no threads. */
extern void openblas_set_num_threads(int) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));

static int blas_threads_after_trainer(uint32_t threads, uint32_t batch)
{
    chargan_trainer_config tc = small_config(batch, 8, threads);
    chargan_trainer *tr = small_trainer(&tc);
    int n = openblas_get_num_threads();
    chargan_trainer_free(tr);
    return n;
}

START_TEST(trainer_sets_blas_threads)
{
    if (!openblas_set_num_threads || !openblas_get_num_threads)
        return; /* the reference BLAS */
    openblas_set_num_threads(2);
    ck_assert_int_eq(blas_threads_after_trainer(2, 4), 1); /* two shards */
    ck_assert_int_eq(blas_threads_after_trainer(3, 1), 3); /* one row: no shards */
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("separate handles");
    tcase_add_test(tc, tokenizers_in_threads);
    tcase_add_test(tc, models_sampling_in_threads);
    tcase_add_test(tc, trainers_in_threads);
    tcase_add_test(tc, sharded_trainers_in_threads);
    tcase_add_test(tc, everything_at_once);
    tcase_add_test(tc, last_error_is_per_thread);
    suite_add_tcase(s, tc);
    tc = tcase_create("sharded trainer");
    tcase_add_test(tc, sharded_mle_matches_one_thread);
    tcase_add_test(tc, sharded_rollouts_are_deterministic);
    tcase_add_test(tc, a_forked_child_trains_as_the_parent);
    tcase_add_test(tc, sharded_gradient_sum_matches_one_thread);
    tcase_add_test(tc, sharded_update_matches_one_thread_update);
    tcase_add_test(tc, trainer_sets_blas_threads);
    tcase_add_test(tc, request_stop_from_another_thread);
    tcase_add_test(tc, request_stop_during_the_final_validation);
    tcase_add_test(tc, workers_block_signals);
    suite_add_tcase(s, tc);
    tc = tcase_create("threaded sampling");
    tcase_add_test(tc, sampling_on_threads_matches_one_thread);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(threads_suite)
