/* test_metrics.c - the metrics: stream NLL against the windowed NLL and
 * against log V for a model that knows nothing; NLL-oracle against the
 * entropy rate; BLEU and self-BLEU against nltk; every error path. */
#include "test_common.h"
#include "internal.h"
#include "model.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static chargan_model *make_generator(uint32_t V, uint32_t L, uint32_t Z, float init_scale,
                                     uint64_t seed)
{
    chargan_model_config cfg;
    chargan_model_config_init(&cfg, CHARGAN_GENERATOR);
    cfg.vocab_size = V;
    cfg.embed_dim = 5;
    cfg.hidden_dim = 8;
    cfg.num_layers = L;
    cfg.noise_dim = Z;
    cfg.init_scale = init_scale;
    cfg.seed = seed;
    chargan_model *m = NULL;
    ck_assert_int_eq(chargan_model_new(&cfg, &m), CHARGAN_OK);
    return m;
}

static chargan_model *make_discriminator(uint32_t V)
{
    chargan_model_config cfg;
    chargan_model_config_init(&cfg, CHARGAN_DISCRIMINATOR);
    cfg.vocab_size = V;
    cfg.embed_dim = 4;
    cfg.hidden_dim = 4;
    chargan_model *m = NULL;
    ck_assert_int_eq(chargan_model_new(&cfg, &m), CHARGAN_OK);
    return m;
}

static void assert_contains(const char *haystack, const char *needle)
{
    ck_assert_msg(strstr(haystack, needle) != NULL, "message \"%s\" lacks \"%s\"", haystack,
                  needle);
}

static void assert_close(double got, double want, double tol)
{
    ck_assert_msg(fabs(got - want) <= tol * (1.0 + fabs(want)), "got %.17g, want %.17g", got,
                  want);
}

/* n ids, uniform in [0, V), with the start id at every stream's first position. */
static int32_t *stream_ids(size_t n, uint32_t n_streams, int V, uint64_t seed)
{
    int32_t *ids = malloc(n * sizeof(int32_t));
    ck_assert_ptr_nonnull(ids);
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)cg_rng_below(&rng, (uint64_t)V);
    size_t L = (n - 1) / n_streams;
    for (size_t s = 0; s < n_streams; s++)
        ids[s * L] = CHARGAN_ID_START;
    return ids;
}

/* ---------------------------------------------------------------- stream NLL */

/* A model whose every parameter is 0 predicts the uniform distribution at
 * every step (h stays 0, logits are 0), so the NLL is log V exactly. */
START_TEST(stream_nll_of_a_zero_model_is_log_v)
{
    chargan_model *m = make_generator(7, 2, 3, 0.0f, 1);
    size_t count;
    ck_assert_int_eq(chargan_model_num_params(m, &count), CHARGAN_OK);
    for (size_t i = 0; i < count; i++) {
        size_t shape[2], numel;
        ck_assert_int_eq(chargan_model_param_info(m, i, NULL, NULL, shape, &numel), CHARGAN_OK);
        float *zeros = calloc(numel, sizeof(float));
        ck_assert_int_eq(chargan_model_param_set(m, i, zeros, numel), CHARGAN_OK);
        free(zeros);
    }
    int32_t *ids = stream_ids(101, 3, 7, 5);
    double nll = 0.0;
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, 101, 3, &nll), CHARGAN_OK);
    assert_close(nll, log(7.0), 1e-14);
    free(ids);
    chargan_model_free(m);
}
END_TEST

/* With the start id at each part's first position, stream s predicts
 * ids[s*L+1 .. s*L+L] after the start id from the zero-noise state: exactly
 * what chargan_model_nll does to the n_streams x L rows at ids + 1.  Equal up
 * to the BLAS's rounding (batched GEMM there, step by step here), which also
 * shows the state is carried over the whole part.  Layers 2 and a noise
 * layer: the zero-noise state is the noise layer's bias in both. */
static void check_against_windowed(uint32_t n_streams, size_t L, uint32_t layers, uint32_t Z)
{
    chargan_model *m = make_generator(11, layers, Z, 0.5f, 7);
    /* every n from n_min to n_max gives the same L: the last (n - 1) % n_streams ids are unread */
    size_t n_max = n_streams * (L + 1);
    size_t n_min = n_streams * L + 1 > 2 * n_streams ? n_streams * L + 1 : 2 * n_streams;
    int32_t *ids = stream_ids(n_max, n_streams, 11, n_streams);
    double stream = 0.0, windowed = 0.0, shorter = 0.0;
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, n_max, n_streams, &stream), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_nll(m, ids + 1, n_streams, L, &windowed), CHARGAN_OK);
    assert_close(stream, windowed, 1e-5);
    ck_assert_double_gt(stream, 1.0); /* not trivially equal */
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, n_min, n_streams, &shorter), CHARGAN_OK);
    ck_assert_msg(shorter == stream, "%.17g != %.17g", shorter, stream);
    free(ids);
    chargan_model_free(m);
}

START_TEST(stream_nll_equals_windowed_nll)
{
    check_against_windowed(1, 40, 1, 0);
    check_against_windowed(4, 50, 2, 4);
    check_against_windowed(5, 1, 1, 0); /* n = 2 * n_streams: one prediction each */
    /* more streams than one group (256): a full group and a partial one */
    check_against_windowed(300, 3, 1, 2);
}
END_TEST

/* chargan_model_nll keeps its memory in a budget: chunks of fewer
 * sequences where 64 would not fit, and sequences stepped where one would
 * not (a sequence of 10^6 ids at H = 256 took 6.4 GB).  Each way gives the
 * windowed forward's NLL up to rounding; the budget is lowered to force
 * them, and restored. */
START_TEST(model_nll_in_a_memory_budget)
{
    for (uint32_t layers = 1; layers <= 2; layers++) {
        chargan_model *m = make_generator(11, layers, layers == 2 ? 4 : 0, 0.5f, 13);
        enum { N_SEQ = 70, T = 30 };
        cg_rng rng;
        cg_rng_seed(&rng, 5);
        int32_t *ids = malloc((size_t)N_SEQ * T * sizeof(int32_t));
        for (size_t i = 0; i < (size_t)N_SEQ * T; i++)
            ids[i] = 2 + (int32_t)cg_rng_below(&rng, 9);
        const size_t saved = cg_nll_window_budget;
        double full, fewer, stepped;
        ck_assert_int_eq(chargan_model_nll(m, ids, N_SEQ, T, &full), CHARGAN_OK);
        cg_nll_window_budget = 40 * 1024; /* two rows of 30 steps */
        ck_assert_int_eq(chargan_model_nll(m, ids, N_SEQ, T, &fewer), CHARGAN_OK);
        cg_nll_window_budget = 0; /* not one row */
        ck_assert_int_eq(chargan_model_nll(m, ids, N_SEQ, T, &stepped), CHARGAN_OK);
        cg_nll_window_budget = saved;
        ck_assert_double_gt(full, 1.0);
        assert_close(fewer, full, 1e-6);
        assert_close(stepped, full, 1e-5);
        free(ids);
        chargan_model_free(m);
    }
}
END_TEST

/* The peer's split (eval_bpc_stateful in the PyTorch reference): stream s is
 * x = val[s*L .. s*L+L-1], y = val[s*L+1 .. s*L+L]; stream 0's first id is
 * never predicted, but stream 1's first id is (as stream 0's last target). */
START_TEST(stream_nll_follows_the_peers_split)
{
    chargan_model *m = make_generator(9, 1, 0, 0.5f, 3);
    /* n = 10, 3 streams: L = 3; x rows {0,1,2} {3,4,5} {6,7,8}, y rows {1,2,3} {4,5,6} {7,8,9} */
    const int32_t ids[10] = {0, 4, 5, 6, 7, 8, 2, 3, 4, 5};
    double nll = 0.0, sum = 0.0;
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, 10, 3, &nll), CHARGAN_OK);
    /* each stream on its own: one stream over its L + 1 ids */
    for (int s = 0; s < 3; s++) {
        double part = 0.0;
        ck_assert_int_eq(chargan_model_stream_nll(m, ids + 3 * s, 4, 1, &part), CHARGAN_OK);
        sum += part;
    }
    assert_close(nll, sum / 3.0, 1e-6);
    chargan_model_free(m);
}
END_TEST

/* Finite parameters whose activations overflow: the recurrent part holds
 * every hidden unit at tanh(1) (no weights, saturated gate biases), and
 * output weights of FLT_MAX make every logit +inf, so each step's NLL is
 * inf - inf.  Both NLLs say so with CHARGAN_E_NUMERIC, *nll untouched, on
 * every host, whatever the order of its float arithmetic. */
START_TEST(overflowing_activations_give_a_numeric_error)
{
    const uint32_t V = 6;
    chargan_model *m = make_generator(V, 1, 0, 0.0f, 1);
    size_t count;
    ck_assert_int_eq(chargan_model_num_params(m, &count), CHARGAN_OK);
    for (size_t i = 0; i < count; i++) {
        const char *name;
        size_t numel;
        ck_assert_int_eq(chargan_model_param_info(m, i, &name, NULL, NULL, &numel), CHARGAN_OK);
        float *v = calloc(numel, sizeof(float));
        if (!strcmp(name, "out.w")) {
            for (size_t k = 0; k < numel; k++)
                v[k] = FLT_MAX;
        } else if (!strcmp(name, "lstm.0.b")) { /* gates i, f, g, o: 1, 0, 1, 1 */
            const size_t H = numel / 4;
            for (size_t k = 0; k < numel; k++)
                v[k] = k / H == 1 ? -30.0f : 30.0f;
        }
        ck_assert_int_eq(chargan_model_param_set(m, i, v, numel), CHARGAN_OK);
        free(v);
    }
    int32_t ids[8] = {0, 2, 3, 4, 5, 2, 3, 4};
    double nll = 42.0;
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, 8, 2, &nll), CHARGAN_E_NUMERIC);
    assert_contains(chargan_model_last_error(m), "not finite");
    ck_assert_int_eq(chargan_model_nll(m, ids, 2, 4, &nll), CHARGAN_E_NUMERIC);
    assert_contains(chargan_model_last_error(m), "not finite");
    ck_assert_double_eq(nll, 42.0);
    /* sampling from it draws nothing meaningful: the same error, not ids */
    chargan_sample_options so;
    chargan_sample_options_init(&so);
    so.length = 4;
    int32_t out[16];
    for (uint32_t threads = 1; threads <= 2; threads++) {
        so.n_streams = 2 * threads;
        so.threads = threads;
        ck_assert_int_eq(chargan_model_sample_ids(m, &so, NULL, 0, out, 16), CHARGAN_E_NUMERIC);
        assert_contains(chargan_model_last_error(m), "logits are not finite");
    }
    chargan_model_free(m);
}
END_TEST

START_TEST(stream_nll_rejects_bad_arguments)
{
    chargan_model *m = make_generator(6, 1, 0, 0.0f, 1);
    int32_t ids[8] = {0, 2, 3, 4, 5, 2, 3, 4};
    double nll = 42.0;
    ck_assert_int_eq(chargan_model_stream_nll(NULL, ids, 8, 1, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "NULL");
    ck_assert_int_eq(chargan_model_stream_nll(m, NULL, 8, 1, &nll), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, 8, 1, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, 8, 0, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(m), "n >= 2 * n_streams");
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, 7, 4, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(m), "7 ids cannot feed 4 streams");
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, 1, 1, &nll), CHARGAN_E_INVALID);
    ck_assert_double_eq(nll, 42.0);
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, 8, 4, &nll), CHARGAN_OK); /* the limit */
    nll = 42.0;
    ids[5] = 6;
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, 8, 1, &nll), CHARGAN_E_RANGE);
    assert_contains(chargan_model_last_error(m), "position 5");
    ids[5] = -1;
    ck_assert_int_eq(chargan_model_stream_nll(m, ids, 8, 1, &nll), CHARGAN_E_RANGE);
    ids[5] = 2;
    ck_assert_double_eq(nll, 42.0);
    chargan_model *d = make_discriminator(6);
    ck_assert_int_eq(chargan_model_stream_nll(d, ids, 8, 1, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(d), "not a generator");
    chargan_model_free(d);
    /* the two allocations: targets, then the inference state's buffers */
    for (long k = 0; k < 2; k++) {
        cg_alloc_fail_after(k);
        ck_assert_int_eq(chargan_model_stream_nll(m, ids, 8, 2, &nll), CHARGAN_E_NOMEM);
        cg_alloc_fail_after(-1);
        assert_contains(chargan_model_last_error(m), "out of memory");
    }
    ck_assert_double_eq(nll, 42.0);
    chargan_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- NLL-oracle */

static chargan_sample_options oracle_opts(uint32_t n_streams, uint32_t length, uint64_t seed)
{
    chargan_sample_options o;
    chargan_sample_options_init(&o);
    o.n_streams = n_streams;
    o.length = length;
    o.seed = seed;
    o.allow_reserved = 1; /* sample from the model's own distribution, all of it */
    return o;
}

/* Mean entropy (nats) of m's next-token distributions along B sequences of
 * T ids (row-major), each read after the start id. */
static double mean_entropy(chargan_model *m, const int32_t *ids, int B, int T)
{
    ck_assert_int_eq(cg_model_reserve(m, T, B), CHARGAN_OK);
    int32_t *in = malloc((size_t)T * B * sizeof(int32_t));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            in[(size_t)t * B + b] = t == 0 ? CHARGAN_ID_START : ids[(size_t)b * T + t - 1];
    cg_model_forward(m, T, B, in, NULL, NULL, false);
    double total = 0.0;
    for (size_t r = 0; r < (size_t)T * B; r++) {
        const float *x = m->ws.logits + r * m->V;
        double max = x[0], z = 0.0, ez = 0.0;
        for (int j = 1; j < m->V; j++)
            max = x[j] > max ? x[j] : max;
        for (int j = 0; j < m->V; j++) {
            double e = exp(x[j] - max);
            z += e;
            ez += e * (x[j] - max);
        }
        total += log(z) - ez / z; /* H = log Z - E[x - max] */
    }
    free(in);
    return total / ((double)T * B);
}

/* Scored by itself at temperature 1, a generator's samples cost on average
 * its entropy rate; any other model costs more (the cross-entropy exceeds
 * the entropy by the KL divergence). */
START_TEST(nll_oracle_of_a_model_against_itself_is_its_entropy_rate)
{
    chargan_model *g = make_generator(12, 1, 0, 1.0f, 11);
    chargan_model *other = make_generator(12, 1, 0, 1.0f, 12);
    chargan_sample_options o = oracle_opts(1024, 16, 3);
    double self = 0.0, cross = 0.0;
    ck_assert_int_eq(chargan_nll_oracle(g, g, &o, &self), CHARGAN_OK);
    ck_assert_int_eq(chargan_nll_oracle(g, other, &o, &cross), CHARGAN_OK);

    /* exactly: chargan_model_nll of the oracle on chargan_model_sample_ids' output */
    int32_t *ids = malloc(1024 * 16 * sizeof(int32_t));
    ck_assert_int_eq(chargan_model_sample_ids(g, &o, NULL, 0, ids, 1024 * 16), CHARGAN_OK);
    double direct = 0.0;
    ck_assert_int_eq(chargan_model_nll(other, ids, 1024, 16, &direct), CHARGAN_OK);
    ck_assert_msg(direct == cross, "%.17g != %.17g", direct, cross);

    /* Same samples, so self - entropy is the mean of 16384 zero-mean terms
     * -log p(x_t) - H(p_t), whose standard error is about 0.01. */
    double entropy = mean_entropy(g, ids, 1024, 16);
    ck_assert_msg(fabs(self - entropy) < 0.05, "self %.6f, entropy %.6f", self, entropy);
    ck_assert_double_lt(entropy, log(12.0) - 0.3); /* a peaked model: the test has teeth */
    ck_assert_msg(cross > self + 0.5, "cross %.6f, self %.6f", cross, self);
    free(ids);
    chargan_model_free(g);
    chargan_model_free(other);
}
END_TEST

START_TEST(nll_oracle_rejects_bad_arguments)
{
    chargan_model *g = make_generator(8, 1, 0, 0.0f, 1);
    chargan_model *o9 = make_generator(9, 1, 0, 0.0f, 2);
    chargan_model *d = make_discriminator(8);
    chargan_sample_options o = oracle_opts(4, 5, 1);
    double nll = 42.0;
    ck_assert_int_eq(chargan_nll_oracle(NULL, g, &o, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "NULL argument");
    ck_assert_int_eq(chargan_nll_oracle(g, NULL, &o, &nll), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_nll_oracle(g, g, NULL, &nll), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_nll_oracle(g, g, &o, NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(g), "NULL argument");

    chargan_sample_options bad = o;
    bad.struct_size = sizeof bad - 1;
    ck_assert_int_eq(chargan_nll_oracle(g, g, &bad, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(g), "struct_size");

    ck_assert_int_eq(chargan_nll_oracle(g, o9, &o, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(g), "vocabularies differ");

    bad = o;
    bad.n_streams = 0;
    ck_assert_int_eq(chargan_nll_oracle(g, g, &bad, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(g), "0 streams of 5 tokens");
    bad = o;
    bad.length = 0;
    ck_assert_int_eq(chargan_nll_oracle(g, g, &bad, &nll), CHARGAN_E_INVALID);
    bad.n_streams = 65536;
    bad.length = 8192; /* 2^29 tokens */
    ck_assert_int_eq(chargan_nll_oracle(g, g, &bad, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(g), "at most");

    /* failures of the sampling (generator) and of the scoring (oracle) */
    bad = o;
    bad.temperature = 0.0f;
    ck_assert_int_eq(chargan_nll_oracle(g, g, &bad, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(g), "temperature");
    ck_assert_int_eq(chargan_nll_oracle(d, g, &o, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(d), "not a generator");
    ck_assert_int_eq(chargan_nll_oracle(g, d, &o, &nll), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(d), "not a generator");
    assert_contains(chargan_model_last_error(g), "scoring with the oracle: ");
    assert_contains(chargan_model_last_error(g), "not a generator");

    cg_alloc_fail_after(0);
    ck_assert_int_eq(chargan_nll_oracle(g, g, &o, &nll), CHARGAN_E_NOMEM);
    cg_alloc_fail_after(-1);
    assert_contains(chargan_model_last_error(g), "out of memory");
    ck_assert_double_eq(nll, 42.0);
    ck_assert_int_eq(chargan_nll_oracle(g, g, &o, &nll), CHARGAN_OK);
    ck_assert_double_gt(nll, 0.0);
    chargan_model_free(g);
    chargan_model_free(o9);
    chargan_model_free(d);
}
END_TEST

/* ---------------------------------------------------------------- BLEU against nltk */

/*
 * Reference values from nltk 3.8 (Debian 12's python3-nltk, Python 3.11.2),
 * printed with repr():
 *
 *   from nltk.translate.bleu_score import sentence_bleu, SmoothingFunction
 *   def bleu(hyps, refs, n, skip_self=False):
 *       f = SmoothingFunction().method1
 *       w = tuple(1. / n for _ in range(n))
 *       H = [h.split() for h in hyps]   # bytes objects: split on ASCII white space
 *       R = [r.split() for r in refs]
 *       s = [sentence_bleu(R[:i] + R[i + 1:] if skip_self else R, h, w,
 *                          smoothing_function=f) for i, h in enumerate(H)]
 *       return sum(s) / len(s)
 *
 * bleu(hyps, refs, n) for n = 2..8 on the corpus below, bleu([h], refs, n)
 * for each hypothesis alone, bleu(t, t, n, True) (self-BLEU) and
 * bleu(t, t, n) (self included, as two well-known implementations do) for
 * the sets below, and sonnets.txt's first 200 non-blank lines against the
 * next 200.  tests/metrics_nltk_check.py repeats this live when nltk is
 * installed.
 */
static const char *const refs_a[] = {
    "the cat sat on the mat", "there is a cat on the mat", "a cat is on the mat the cat",
    "dogs chase cats",
};
static const char *const hyps_a[] = {
    "the cat the cat on the mat",      /* repeated n-grams, clipped */
    "the the the the the the the",     /* the textbook clipping case */
    "cat",                             /* shorter than every n > 1 */
    "on the",
    "",                                /* empty: 0 */
    "completely unrelated words here", /* no unigram match: 0, not smoothed */
    "there is a cat on the mat",       /* equal to a reference: 1 */
    "a cat",
    "mat the cat sat",                 /* closest reference length 3: no penalty */
    "the cat sat on the",              /* closest 6: penalty */
    "the cat is on the mat the cat",   /* 8 words, references of 7 and 9: the shorter */
    "  the\tcat\r\nsat \v on\fthe   mat  ", /* every ASCII white space separates */
};
#define N_HYPS_A (sizeof hyps_a / sizeof hyps_a[0])

static const double nltk_a[7] = { /* BLEU-2 .. BLEU-8 */
    0.5637958127101289, 0.4935847956911612, 0.42982025390778617, 0.39071840050011897,
    0.3502018066957014, 0.30376159164775013, 0.24445708044299405,
};
static const double nltk_a_each[N_HYPS_A][4] = { /* BLEU-2 .. BLEU-5 */
    {0.7559289460184544, 0.6114214174657597, 0.488923022434901, 0.28573809127083305},
    {0.06900655593423542, 0.04566711403962942, 0.039281465090051315, 0.03801245254500842},
    {0.04279677428117006, 0.029157102899024897, 0.024066394763145416, 0.021449196910150414},
    {0.6065306597126334, 0.2815265937365952, 0.19180183554164504, 0.15235361344267181},
    {0.0, 0.0, 0.0, 0.0},
    {0.0, 0.0, 0.0, 0.0},
    {1.0, 1.0, 1.0, 1.0},
    {0.6065306597126334, 0.2815265937365952, 0.19180183554164504, 0.15235361344267181},
    {1.0, 1.0, 0.5623413251903491, 0.39810717055349726},
    {0.8187307530779819, 0.8187307530779819, 0.8187307530779819, 0.8187307530779819},
    {0.8660254037844386, 0.8549879733383485, 0.8408964152537145, 0.8218759147586129},
    {1.0, 1.0, 1.0, 1.0},
};

/* nltk sums five or fewer logs with math.fsum and we do not: ulps apart. */
#define NLTK_TOL 1e-13

START_TEST(bleu_matches_nltk)
{
    double out[7];
    ck_assert_int_eq(chargan_bleu(hyps_a, N_HYPS_A, refs_a, 4, 8, out), CHARGAN_OK);
    for (int i = 0; i < 7; i++)
        assert_close(out[i], nltk_a[i], NLTK_TOL);
    for (size_t h = 0; h < N_HYPS_A; h++) {
        ck_assert_int_eq(chargan_bleu(hyps_a + h, 1, refs_a, 4, 5, out), CHARGAN_OK);
        for (int i = 0; i < 4; i++)
            assert_close(out[i], nltk_a_each[h][i], NLTK_TOL);
    }
}
END_TEST

typedef struct self_case {
    const char *name;
    const char *texts[6];
    size_t n;
    double self[4], with_self[4]; /* BLEU-2 .. BLEU-5 */
} self_case;

static const self_case self_cases[] = {
    {"identical pair", {"the cat sat on the mat", "the cat sat on the mat"}, 2,
     {1.0, 1.0, 1.0, 1.0}, {1.0, 1.0, 1.0, 1.0}},
    /* the test that catches self-inclusion: 0 here, 1 (or so) with it */
    {"unrelated", {"alpha beta gamma delta", "one two three four", "red green blue yellow"}, 3,
     {0.0, 0.0, 0.0, 0.0}, {1.0, 1.0, 1.0, 0.6309573444801932}},
    {"duplicates", {"a b c d", "a b c d", "a b x y", "p q r s", "a b c", "b c d a b"}, 6,
     {0.6498960450465227, 0.5840124874559126, 0.48151122620499875, 0.3251956330597408},
     {1.0, 1.0, 0.9270568875317249, 0.6536560914123783}},
    /* unique lengths: leaving oneself out moves the closest reference length */
    {"lengths", {"a b c d e f", "a b c", "a b c d e f g h i", "c d e", "a"}, 5,
     {0.7376587997298145, 0.7297910394280237, 0.547228790922753, 0.47232199618120474},
     {0.8632455532033676, 0.8430886938006378, 0.6605021182769182, 0.590940732070621}},
};

START_TEST(self_bleu_matches_nltk_and_excludes_self)
{
    for (size_t c = 0; c < sizeof self_cases / sizeof self_cases[0]; c++) {
        const self_case *sc = &self_cases[c];
        double self[4], with_self[4];
        ck_assert_int_eq(chargan_self_bleu(sc->texts, sc->n, 5, self), CHARGAN_OK);
        ck_assert_int_eq(chargan_bleu(sc->texts, sc->n, sc->texts, sc->n, 5, with_self),
                         CHARGAN_OK);
        for (int i = 0; i < 4; i++) {
            ck_assert_msg(fabs(self[i] - sc->self[i]) <= NLTK_TOL, "%s: self-BLEU-%d %.17g, "
                          "nltk %.17g", sc->name, i + 2, self[i], sc->self[i]);
            ck_assert_msg(fabs(with_self[i] - sc->with_self[i]) <= NLTK_TOL, "%s: BLEU-%d %.17g, "
                          "nltk %.17g", sc->name, i + 2, with_self[i], sc->with_self[i]);
        }
    }
}
END_TEST

/* Non-blank lines of sonnets.txt (CRLF kept: \r is white space), in place. */
static size_t sonnet_lines(char *text, const char **lines, size_t cap)
{
    size_t n = 0;
    for (char *p = text; p && n < cap;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (strspn(p, " \t\r\v\f") < strlen(p))
            lines[n++] = p;
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

START_TEST(bleu_on_sonnets_matches_nltk)
{
    static const double bleu[4] = {0.16185607688210768, 0.07419659433382787,
                                   0.05278859714100351, 0.04574775604890083};
    static const double self[4] = {0.20989022817224562, 0.09983152584342633,
                                   0.06470471184895694, 0.05348462235928127};
    char *text = cg_test_read_file(cg_test_corpus_path("sonnets.txt"), NULL);
    const char *lines[400];
    ck_assert_uint_eq(sonnet_lines(text, lines, 400), 400);
    double out[4];
    ck_assert_int_eq(chargan_bleu(lines, 200, lines + 200, 200, 5, out), CHARGAN_OK);
    for (int i = 0; i < 4; i++)
        assert_close(out[i], bleu[i], NLTK_TOL);
    ck_assert_int_eq(chargan_self_bleu(lines, 200, 5, out), CHARGAN_OK);
    for (int i = 0; i < 4; i++)
        assert_close(out[i], self[i], NLTK_TOL);
    free(text);
}
END_TEST

/* The O(1) exclusion (largest count over references, second largest, and
 * who holds the largest) against excluding by hand: each text scored with
 * chargan_bleu against all the others.  A 4-word vocabulary makes repeated
 * n-grams, ties between references and duplicate texts common. */
START_TEST(self_bleu_equals_bleu_against_the_others)
{
    enum { N = 40 };
    static const char *const words[4] = {"w", "x", "yy", "z"};
    char buf[N][64];
    const char *texts[N], *others[N - 1];
    cg_rng rng;
    cg_rng_seed(&rng, 99);
    for (int i = 0; i < N; i++) {
        size_t len = 0, n_words = cg_rng_below(&rng, 13); /* 0 .. 12 words */
        buf[i][0] = '\0';
        for (size_t w = 0; w < n_words; w++)
            len += (size_t)snprintf(buf[i] + len, sizeof buf[i] - len, "%s ",
                                    words[cg_rng_below(&rng, 4)]);
        texts[i] = buf[i];
    }
    texts[7] = texts[3]; /* duplicates by position */
    texts[20] = texts[3];
    for (uint32_t max_n = 2; max_n <= 8; max_n++) {
        double self[7], sum[7] = {0};
        ck_assert_int_eq(chargan_self_bleu(texts, N, max_n, self), CHARGAN_OK);
        for (int i = 0; i < N; i++) {
            for (int j = 0, k = 0; j < N; j++)
                if (j != i)
                    others[k++] = texts[j];
            double one[7];
            ck_assert_int_eq(chargan_bleu(texts + i, 1, others, N - 1, max_n, one), CHARGAN_OK);
            for (uint32_t n = 0; n + 2 <= max_n; n++)
                sum[n] += one[n];
        }
        for (uint32_t n = 0; n + 2 <= max_n; n++)
            assert_close(self[n], sum[n] / N, 1e-14);
    }
}
END_TEST

START_TEST(bleu_rejects_bad_arguments)
{
    const char *const two[2] = {"a b", "b c"};
    const char *const with_null[2] = {"a b", NULL};
    double out[7] = {42.0, 42.0, 42.0, 42.0, 42.0, 42.0, 42.0};
    ck_assert_int_eq(chargan_bleu(NULL, 2, two, 2, 4, out), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "NULL argument");
    ck_assert_int_eq(chargan_bleu(two, 2, NULL, 2, 4, out), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_bleu(two, 2, two, 2, 4, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_bleu(two, 0, two, 2, 4, out), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "0 hypotheses");
    ck_assert_int_eq(chargan_bleu(two, 2, two, 0, 4, out), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "0 references");
    ck_assert_int_eq(chargan_bleu(two, 2, two, 2, 1, out), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "max_n 1 not in [2, 8]");
    ck_assert_int_eq(chargan_bleu(two, 2, two, 2, 9, out), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_bleu(with_null, 2, two, 2, 4, out), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "hypotheses[1] is NULL");
    ck_assert_int_eq(chargan_bleu(two, 2, with_null, 2, 4, out), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "references[1] is NULL");

    ck_assert_int_eq(chargan_self_bleu(NULL, 2, 4, out), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_self_bleu(two, 2, 4, NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "NULL argument");
    ck_assert_int_eq(chargan_self_bleu(two, 1, 4, out), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "1 texts");
    ck_assert_int_eq(chargan_self_bleu(two, 2, 1, out), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_self_bleu(two, 2, 9, out), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "max_n 9");
    ck_assert_int_eq(chargan_self_bleu(with_null, 2, 4, out), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "texts[1] is NULL");
    for (int i = 0; i < 7; i++)
        ck_assert_double_eq(out[i], 42.0);
}
END_TEST

/* Every allocation in turn fails: NOMEM, the output untouched, nothing leaked
 * (meson test --setup valgrind checks the last). */
START_TEST(bleu_allocation_failures_return_nomem)
{
    for (int self = 0; self < 2; self++) {
        long k = 0;
        for (;; k++) {
            double out[3] = {42.0, 42.0, 42.0};
            cg_alloc_fail_after(k);
            chargan_status st = self ? chargan_self_bleu(refs_a, 4, 4, out)
                                     : chargan_bleu(hyps_a, N_HYPS_A, refs_a, 4, 4, out);
            cg_alloc_fail_after(-1);
            if (st == CHARGAN_OK)
                break;
            ck_assert_int_eq(st, CHARGAN_E_NOMEM);
            assert_contains(chargan_last_error(), "out of memory");
            for (int i = 0; i < 3; i++)
                ck_assert_double_eq(out[i], 42.0);
        }
        ck_assert_int_ge(k, 5); /* the word table's and the n-gram table's allocations */
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, stream_nll_of_a_zero_model_is_log_v);
    tcase_add_test(tc, stream_nll_equals_windowed_nll);
    tcase_add_test(tc, model_nll_in_a_memory_budget);
    tcase_add_test(tc, stream_nll_follows_the_peers_split);
    tcase_add_test(tc, stream_nll_rejects_bad_arguments);
    tcase_add_test(tc, overflowing_activations_give_a_numeric_error);
    tcase_add_test(tc, nll_oracle_of_a_model_against_itself_is_its_entropy_rate);
    tcase_add_test(tc, nll_oracle_rejects_bad_arguments);
    tcase_add_test(tc, bleu_matches_nltk);
    tcase_add_test(tc, self_bleu_matches_nltk_and_excludes_self);
    tcase_add_test(tc, bleu_on_sonnets_matches_nltk);
    tcase_add_test(tc, self_bleu_equals_bleu_against_the_others);
    tcase_add_test(tc, bleu_rejects_bad_arguments);
    tcase_add_test(tc, bleu_allocation_failures_return_nomem);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(make_suite)
