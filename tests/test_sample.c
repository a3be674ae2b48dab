/* test_sample.c - sampling from a generator: seeds, greedy limits
 * (top_k = 1, temperature -> 0, tiny top_p) against an independent argmax
 * through the training forward pass, reserved ids, sample frequencies of a
 * hand-set output layer against their distribution (temperature, top-k,
 * top-p), the sampler's and the Gumbel-max draws on a wide row, priming
 * with ids and text, batched streams, option checks and allocation
 * failures. */
#include "test_common.h"
#include "internal.h"
#include "kernels.h"
#include "layers.h"
#include "model.h"
#include "sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static void assert_contains(const char *haystack, const char *needle)
{
    ck_assert_msg(strstr(haystack, needle) != NULL, "message \"%s\" lacks \"%s\"", haystack,
                  needle);
}

/* init_scale 1 spreads the logits, so greedy choices are clear-cut (no
 * near-ties that rounding differences between code paths could flip), and
 * with H = 32 greedy decoding wanders over many ids instead of repeating one
 * (at init_scale 0.5, H = 10 it settles on a single id at once). */
static chargan_model *make_gen(uint32_t V, uint32_t Z, uint32_t L, uint64_t seed)
{
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_GENERATOR);
    c.vocab_size = V;
    c.embed_dim = 6;
    c.hidden_dim = 32;
    c.num_layers = L;
    c.noise_dim = Z;
    c.init_scale = 1.0f;
    c.seed = seed;
    chargan_model *m;
    ck_assert_int_eq(chargan_model_new(&c, &m), CHARGAN_OK);
    return m;
}

static chargan_sample_options options(uint32_t streams, uint32_t length, uint64_t seed)
{
    chargan_sample_options o;
    chargan_sample_options_init(&o);
    o.n_streams = streams;
    o.length = length;
    o.seed = seed;
    return o;
}

static int32_t *sample(chargan_model *m, const chargan_sample_options *o, const int32_t *prime,
                       size_t k)
{
    size_t n = (size_t)o->n_streams * o->length;
    int32_t *out = malloc((n ? n : 1) * sizeof *out);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(chargan_model_sample_ids(m, o, prime, k, out, n) == CHARGAN_OK, "%s",
                  chargan_model_last_error(m));
    return out;
}

/* The greedy continuation of start + prime, computed through the training
 * forward pass (cg_model_forward over the whole prefix at every step), which
 * shares no code with the step-wise inference that sampling uses.  Reserved
 * ids are excluded, as sampling does by default.  Noise-free models only. */
static void greedy_reference(chargan_model *m, const int32_t *prime, size_t k, int32_t *out,
                             size_t n)
{
    size_t T = 1 + k + n;
    int32_t *in = malloc(T * sizeof *in);
    ck_assert_ptr_nonnull(in);
    in[0] = m->cfg.start_id;
    if (k > 0) /* prime may be NULL when k is 0 */
        memcpy(in + 1, prime, k * sizeof *in);
    ck_assert_int_eq(cg_model_reserve(m, (int)T, 1), CHARGAN_OK);
    for (size_t t = 0; t < n; t++) {
        size_t len = 1 + k + t;
        cg_model_forward(m, (int)len, 1, in, NULL, NULL, false);
        const float *row = m->ws.logits + (len - 1) * (size_t)m->V;
        int32_t best = CHARGAN_NUM_RESERVED_IDS;
        float second = -INFINITY;
        for (int32_t v = best + 1; v < m->V; v++) {
            if (row[v] > row[best]) {
                second = row[best];
                best = v;
            } else if (row[v] > second) {
                second = row[v];
            }
        }
        ck_assert_msg(row[best] - second > 1e-3f, "near-tie at step %zu: pick another seed", t);
        out[t] = best;
        in[len] = best;
    }
    /* a sequence worth comparing: not one id over and over */
    int distinct = 0;
    for (size_t t = 0; t < n; t++) {
        bool seen = false;
        for (size_t u = 0; u < t && !seen; u++)
            seen = out[u] == out[t];
        distinct += !seen;
    }
    ck_assert_msg(n < 10 || distinct >= 3, "greedy output has %d distinct ids", distinct);
    free(in);
}

/* ---------------------------------------------------------------- seeds and greedy limits */

START_TEST(same_seed_same_ids_other_seed_differs)
{
    chargan_model *m = make_gen(20, 3, 2, 1);
    chargan_sample_options o = options(3, 60, 42);
    int32_t *a = sample(m, &o, NULL, 0), *b = sample(m, &o, NULL, 0);
    ck_assert(memcmp(a, b, 180 * sizeof *a) == 0);
    o.seed = 43;
    int32_t *c = sample(m, &o, NULL, 0);
    ck_assert(memcmp(a, c, 180 * sizeof *a) != 0);
    /* every id is a real one */
    for (int i = 0; i < 180; i++)
        ck_assert(a[i] >= CHARGAN_NUM_RESERVED_IDS && a[i] < 20);
    /* sampling leaves the model alone: its dropout RNG and parameters */
    cg_rng before = m->rng;
    int32_t *d = sample(m, &o, NULL, 0);
    ck_assert(memcmp(&before, &m->rng, sizeof before) == 0);
    ck_assert(memcmp(c, d, 180 * sizeof *a) == 0);
    free(a);
    free(b);
    free(c);
    free(d);
    chargan_model_free(m);
}
END_TEST

START_TEST(top_k_one_is_greedy_regardless_of_seed)
{
    for (uint32_t L = 1; L <= 2; L++) {
        chargan_model *m = make_gen(17, 0, L, 5 + L);
        int32_t ref[40];
        greedy_reference(m, NULL, 0, ref, 40);
        for (uint64_t seed = 1; seed <= 5; seed++) {
            chargan_sample_options o = options(1, 40, seed);
            o.top_k = 1;
            o.temperature = seed == 5 ? 3.0f : 1.0f; /* temperature does not matter either */
            int32_t *got = sample(m, &o, NULL, 0);
            ck_assert_msg(memcmp(got, ref, sizeof ref) == 0, "L=%u seed %llu not greedy", L,
                          (unsigned long long)seed);
            free(got);
        }
        chargan_model_free(m);
    }
}
END_TEST

START_TEST(temperature_to_zero_and_tiny_top_p_are_greedy)
{
    chargan_model *m = make_gen(23, 0, 1, 3);
    int32_t ref[50];
    greedy_reference(m, NULL, 0, ref, 50);
    /* down to a subnormal temperature, whose reciprocal is infinite */
    static const float temps[] = {1e-3f, 1e-6f, 1e-20f, 1e-37f, 1e-45f};
    for (int i = 0; i < 5; i++) {
        chargan_sample_options o = options(1, 50, 100 + (uint64_t)i);
        o.temperature = temps[i];
        int32_t *got = sample(m, &o, NULL, 0);
        ck_assert_msg(memcmp(got, ref, sizeof ref) == 0, "temperature %g not greedy",
                      (double)temps[i]);
        free(got);
    }
    static const float ps[] = {1e-6f, 1e-3f};
    for (int i = 0; i < 2; i++) {
        chargan_sample_options o = options(1, 50, 7);
        o.top_p = ps[i];
        int32_t *got = sample(m, &o, NULL, 0);
        ck_assert_msg(memcmp(got, ref, sizeof ref) == 0, "top_p %g not greedy", (double)ps[i]);
        free(got);
    }
    /* top_k at or above V keeps everything: the same as top_k 0 */
    chargan_sample_options o = options(2, 30, 9);
    int32_t *all = sample(m, &o, NULL, 0);
    o.top_k = 23;
    int32_t *k_v = sample(m, &o, NULL, 0);
    o.top_k = 1000;
    int32_t *k_big = sample(m, &o, NULL, 0);
    ck_assert(memcmp(all, k_v, 60 * sizeof *all) == 0);
    ck_assert(memcmp(all, k_big, 60 * sizeof *all) == 0);
    free(all);
    free(k_v);
    free(k_big);
    chargan_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- distributions */

/* A generator whose next-token distribution ignores its state: out.w = 0
 * and out.b = log(weights). */
static chargan_model *fixed_distribution(const double *weights, uint32_t V)
{
    /* tiny widths: the state is ignored anyway, and 300,000 draws stay fast */
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_GENERATOR);
    c.vocab_size = V;
    c.embed_dim = 1;
    c.hidden_dim = 2;
    c.noise_dim = 1;
    c.seed = 11;
    chargan_model *m;
    ck_assert_int_eq(chargan_model_new(&c, &m), CHARGAN_OK);
    size_t iw, ib, nw, nb;
    ck_assert_int_eq(chargan_model_param_find(m, "out.w", &iw), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_param_find(m, "out.b", &ib), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_param_info(m, iw, NULL, NULL, NULL, &nw), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_param_info(m, ib, NULL, NULL, NULL, &nb), CHARGAN_OK);
    ck_assert_uint_eq(nb, V);
    float *zeros = calloc(nw, sizeof(float)), bias[16];
    ck_assert_ptr_nonnull(zeros);
    for (uint32_t v = 0; v < V; v++)
        bias[v] = (float)log(weights[v]);
    ck_assert_int_eq(chargan_model_param_set(m, iw, zeros, nw), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_param_set(m, ib, bias, nb), CHARGAN_OK);
    free(zeros);
    return m;
}

/* Draws 4 x 10000 tokens and compares the counts with the expected
 * probabilities q (zero where a token must never appear) by Pearson's
 * chi-square; with at most 5 degrees of freedom, 20.5 is the 0.999
 * quantile.  The seed is fixed, so the statistic is too (printed on failure). */
static void check_frequencies(chargan_model *m, const chargan_sample_options *o, const double *q,
                              uint32_t V, const char *what)
{
    int32_t *ids = sample(m, o, NULL, 0);
    size_t n = (size_t)o->n_streams * o->length;
    double counts[16] = {0};
    for (size_t i = 0; i < n; i++) {
        ck_assert(ids[i] >= 0 && ids[i] < (int32_t)V);
        counts[ids[i]] += 1.0;
    }
    double chi2 = 0.0;
    for (uint32_t v = 0; v < V; v++) {
        if (q[v] == 0.0) {
            ck_assert_msg(counts[v] == 0.0, "%s: id %u drawn %g times", what, v, counts[v]);
            continue;
        }
        double e = q[v] * (double)n;
        chi2 += (counts[v] - e) * (counts[v] - e) / e;
    }
    ck_assert_msg(chi2 < 20.5, "%s: chi-square %.2f", what, chi2);
    free(ids);
}

START_TEST(frequencies_match_the_distribution)
{
    /* reserved ids 0, 1 get weight 0.5 each; real ids 2..5 get 0.1 .. 0.4 */
    static const double w[6] = {0.5, 0.5, 0.1, 0.2, 0.3, 0.4};
    chargan_model *m = fixed_distribution(w, 6);
    chargan_sample_options o = options(4, 10000, 2024);

    static const double plain[6] = {0, 0, 0.1, 0.2, 0.3, 0.4};
    check_frequencies(m, &o, plain, 6, "temperature 1");

    /* temperature 2: p^(1/2), renormalised */
    double warm[6] = {0, 0, 0, 0, 0, 0}, z = 0.0;
    for (int v = 2; v < 6; v++)
        z += sqrt(w[v]);
    for (int v = 2; v < 6; v++)
        warm[v] = sqrt(w[v]) / z;
    o.temperature = 2.0f;
    check_frequencies(m, &o, warm, 6, "temperature 2");
    /* temperature 0.5: p^2 */
    double cold[6] = {0, 0, 0, 0, 0, 0};
    z = 0.0;
    for (int v = 2; v < 6; v++)
        z += w[v] * w[v];
    for (int v = 2; v < 6; v++)
        cold[v] = w[v] * w[v] / z;
    o.temperature = 0.5f;
    check_frequencies(m, &o, cold, 6, "temperature 0.5");
    o.temperature = 1.0f;

    /* top_k 2: 0.3 and 0.4, renormalised */
    static const double k2[6] = {0, 0, 0, 0, 0.3 / 0.7, 0.4 / 0.7};
    o.top_k = 2;
    check_frequencies(m, &o, k2, 6, "top_k 2");
    o.top_k = 0;
    /* top_p: the smallest prefix by probability with mass >= p */
    o.top_p = 0.75f; /* 0.4 + 0.3 = 0.7 < 0.75: three tokens */
    static const double p75[6] = {0, 0, 0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9};
    check_frequencies(m, &o, p75, 6, "top_p 0.75");
    o.top_p = 0.5f;
    check_frequencies(m, &o, k2, 6, "top_p 0.5");
    o.top_p = 0.35f;
    static const double p35[6] = {0, 0, 0, 0, 0, 1};
    check_frequencies(m, &o, p35, 6, "top_p 0.35");
    /* top_k and top_p together: the tighter wins */
    o.top_p = 0.75f;
    o.top_k = 2;
    check_frequencies(m, &o, k2, 6, "top_k 2 and top_p 0.75");
    o.top_k = 0;
    o.top_p = 1.0f;

    /* allow_reserved: all six, weights / 2 */
    o.allow_reserved = 1;
    static const double all[6] = {0.25, 0.25, 0.05, 0.1, 0.15, 0.2};
    check_frequencies(m, &o, all, 6, "allow_reserved");
    chargan_model_free(m);
}
END_TEST

/* Pearson's chi-square of counts against probabilities q (n draws). */
static double chi_square(const double *counts, const double *q, int V, double n)
{
    double chi2 = 0.0;
    for (int v = 0; v < V; v++) {
        if (q[v] == 0.0) {
            ck_assert_msg(counts[v] == 0.0, "id %d drawn %g times", v, counts[v]);
            continue;
        }
        const double e = q[v] * n;
        chi2 += (counts[v] - e) * (counts[v] - e) / e;
    }
    return chi2;
}

/* A row of 40 logits in [-1.5, 1.5] (two 16-lane blocks and a tail for the
 * vectorised loops) and its softmax in double, ids below `first` left out. */
#define WIDE_V 40
static void wide_row(float *logits, double *q, int first, double inv_t)
{
    cg_rng rng;
    cg_rng_seed(&rng, 99);
    double z = 0.0;
    for (int v = 0; v < WIDE_V; v++) {
        logits[v] = 3.0f * (cg_rng_uniform(&rng) - 0.5f);
        q[v] = v < first ? 0.0 : exp((double)logits[v] * inv_t);
        z += q[v];
    }
    for (int v = 0; v < WIDE_V; v++)
        q[v] /= z;
}

/* 0.999 quantiles of chi-square with 37 and 39 degrees of freedom. */
#define CHI2_37 69.35
#define CHI2_39 72.06

START_TEST(wide_rows_match_the_distribution)
{
    /* cg_sampler_draw on a row wider than one vector block, at two
     * temperatures: counts of 200,000 draws against the softmax. */
    const float temps[2] = {1.0f, 0.5f};
    for (int k = 0; k < 2; k++) {
        float logits[WIDE_V];
        double q[WIDE_V], counts[WIDE_V] = {0};
        wide_row(logits, q, CHARGAN_NUM_RESERVED_IDS, 1.0 / temps[k]);
        chargan_sample_options o;
        chargan_sample_options_init(&o);
        o.temperature = temps[k];
        cg_sampler sampler;
        cg_error err;
        ck_assert_int_eq(cg_sampler_init(&sampler, &err, WIDE_V, &o), CHARGAN_OK);
        cg_rng rng;
        cg_rng_seed(&rng, 5 + (uint64_t)k);
        const int n = 200000;
        for (int i = 0; i < n; i++)
            counts[cg_sampler_draw(&sampler, logits, &rng)] += 1.0;
        cg_sampler_free(&sampler);
        const double chi2 = chi_square(counts, q, WIDE_V, n);
        ck_assert_msg(chi2 < CHI2_37, "temperature %g: chi-square %.2f", (double)temps[k], chi2);
    }
}
END_TEST

START_TEST(unlikely_ids_keep_their_own_probability)
{
    /* One likely id and 2000 whose weight (5.9e-8 of its) is below half an
     * ulp of 1 in float: each is drawn with its own small probability (the
     * tail 1.2e-4 in all), not lumped onto the last id, which a float
     * running sum did (it never grew past the likely id's weight).  The
     * sorted draws of top-k and top-p end in the same code. */
    enum { V = 2003, LIKELY = CHARGAN_NUM_RESERVED_IDS, N = 200000 };
    static float logits[V];
    static int counts[V];
    const float tail = logf(5.9e-8f);
    for (int v = 0; v < V; v++)
        logits[v] = v == LIKELY ? 0.0f : tail;
    chargan_sample_options o;
    chargan_sample_options_init(&o);
    cg_sampler sampler;
    cg_error err;
    ck_assert_int_eq(cg_sampler_init(&sampler, &err, V, &o), CHARGAN_OK);
    cg_rng rng;
    cg_rng_seed(&rng, 3);
    for (int i = 0; i < N; i++)
        counts[cg_sampler_draw(&sampler, logits, &rng)]++;
    cg_sampler_free(&sampler);
    int tail_draws = 0, ids_drawn = 0;
    for (int v = LIKELY + 1; v < V; v++) {
        tail_draws += counts[v];
        ids_drawn += counts[v] > 0;
    }
    /* expected: 23.6 tail draws, on about as many ids; 0.012 of the last */
    ck_assert_msg(tail_draws >= 8 && tail_draws <= 45, "%d tail draws", tail_draws);
    ck_assert_msg(ids_drawn >= tail_draws - 2, "%d tail draws on %d ids", tail_draws, ids_drawn);
    ck_assert_msg(counts[V - 1] <= 2, "the last id drawn %d times", counts[V - 1]);
}
END_TEST

/* Top-k and top-p keep exactly the ids a full ranking keeps (larger
 * probability first, ties by the lower id; top-p the smallest prefix with
 * mass >= p), with their weights unchanged, and the draw is one of them: the
 * sampler ranks only the ids it keeps.  Rows of many ties, in three sizes of
 * vocabulary. */
static const float *rank_p;

static int rank_desc(const void *a, const void *b)
{
    const int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (rank_p[i] != rank_p[j])
        return rank_p[i] > rank_p[j] ? -1 : 1;
    return i < j ? -1 : 1;
}

START_TEST(top_k_and_top_p_keep_what_a_full_ranking_keeps)
{
    static const int sizes[] = {3, 17, 300};
    static const uint32_t ks[] = {0, 1, 2, 5, 14};
    static const float ps[] = {1.0f, 0.3f, 0.5f, 0.9f, 0.999f};
    cg_rng rng;
    cg_rng_seed(&rng, 77);
    int checked = 0;
    for (size_t vi = 0; vi < sizeof sizes / sizeof sizes[0]; vi++) {
        const int V = sizes[vi];
        float *logits = malloc((size_t)V * sizeof(float)), *all = malloc((size_t)V * sizeof(float));
        int32_t *order = malloc((size_t)V * sizeof(int32_t));
        ck_assert(logits && all && order);
        for (int row = 0; row < 20; row++) {
            for (int v = 0; v < V; v++) /* 5 levels: ties everywhere */
                logits[v] = (float)cg_rng_below(&rng, 5) * (row % 2 ? 0.7f : 2.0f);
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
                    chargan_sample_options o;
                    chargan_sample_options_init(&o);
                    o.temperature = row % 3 ? 1.0f : 0.5f;
                    cg_error err = {{0}};
                    cg_sampler plain, cut;
                    ck_assert_int_eq(cg_sampler_init(&plain, &err, V, &o), CHARGAN_OK);
                    o.top_k = ks[ki];
                    o.top_p = ps[pi];
                    ck_assert_int_eq(cg_sampler_init(&cut, &err, V, &o), CHARGAN_OK);
                    cg_rng r1 = rng, r2 = rng;
                    cg_sampler_draw(&plain, logits, &r1); /* its prob: every weight */
                    memcpy(all, plain.prob, (size_t)V * sizeof(float));
                    const int32_t got = cg_sampler_draw(&cut, logits, &r2);
                    /* the reference ranking and cut */
                    const int first = CHARGAN_NUM_RESERVED_IDS, n = V - first;
                    float *w = malloc((size_t)n * sizeof(float)); /* the sampler's total */
                    ck_assert_ptr_nonnull(w);
                    memcpy(w, logits + first, (size_t)n * sizeof(float));
                    const double total = cg_exp_shifted(w, (size_t)n, cg_row_max(w, (size_t)n),
                                                        plain.inv_temperature);
                    free(w);
                    for (int i = 0; i < n; i++)
                        order[i] = first + i;
                    rank_p = all;
                    qsort(order, (size_t)n, sizeof(int32_t), rank_desc);
                    int keep = ks[ki] && (int)ks[ki] < n ? (int)ks[ki] : n;
                    double acc = 0.0;
                    for (int i = 0; i < keep && ps[pi] < 1.0f; i++)
                        if ((acc += all[order[i]]) >= ps[pi] * total) {
                            keep = i + 1;
                            break;
                        }
                    bool *kept = calloc((size_t)V, sizeof(bool));
                    ck_assert_ptr_nonnull(kept);
                    for (int i = 0; i < keep; i++)
                        kept[order[i]] = true;
                    for (int v = 0; v < V; v++)
                        ck_assert_msg(cut.prob[v] == (kept[v] ? all[v] : 0.0f),
                                      "V %d row %d k %u p %g: id %d", V, row, ks[ki],
                                      (double)ps[pi], v);
                    ck_assert_msg(kept[got], "V %d: drew %d, not kept", V, got);
                    free(kept);
                    cg_sampler_free(&plain);
                    cg_sampler_free(&cut);
                    checked++;
                }
            cg_rng_next(&rng);
        }
        free(logits);
        free(all);
        free(order);
    }
    ck_assert_int_eq(checked, 3 * 20 * 25);
}
END_TEST

START_TEST(gumbel_max_draws_from_the_softmax)
{
    /* The argmax of logits + Gumbel noise is a draw from softmax(logits),
     * and the noise itself has the Gumbel(0, 1) mean (Euler's constant)
     * and variance (pi^2 / 6). */
    float logits[WIDE_V], y[WIDE_V];
    double q[WIDE_V], counts[WIDE_V] = {0};
    wide_row(logits, q, 0, 1.0);
    cg_rng rng;
    cg_rng_seed(&rng, 11);
    const int n = 200000;
    double sum = 0.0, sum2 = 0.0;
    int not_max = 0, out_of_range = 0; /* counted: ck_assert is slow in a loop */
    for (int i = 0; i < n; i++) {
        const int32_t best = cg_gumbel_argmax(y, logits, WIDE_V, &rng);
        ck_assert(best >= 0 && best < WIDE_V);
        counts[best] += 1.0;
        for (int v = 0; v < WIDE_V; v++) {
            not_max += y[v] > y[best];
            const double g = (double)y[v] - (double)logits[v];
            out_of_range += !(g > -2.9 && g < 16.7); /* the range of 23-bit uniforms */
            sum += g;
            sum2 += g * g;
        }
    }
    ck_assert_int_eq(not_max, 0);
    ck_assert_int_eq(out_of_range, 0);
    const double chi2 = chi_square(counts, q, WIDE_V, n);
    ck_assert_msg(chi2 < CHI2_39, "chi-square %.2f", chi2);
    const double m = (double)n * WIDE_V, mean = sum / m, var = sum2 / m - mean * mean;
    /* Standard errors at 8 million draws: 0.00045 and 0.0012. */
    ck_assert_msg(fabs(mean - 0.5772156649) < 0.003, "noise mean %.5f", mean);
    ck_assert_msg(fabs(var - 1.6449340668) < 0.008, "noise variance %.5f", var);
}
END_TEST

START_TEST(reserved_ids_never_sampled_unless_allowed)
{
    /* the reserved ids are by far the likeliest */
    static const double w[8] = {1e4, 1e4, 1, 1, 1, 1, 1, 1};
    chargan_model *m = fixed_distribution(w, 8);
    chargan_sample_options o = options(8, 500, 1);
    int32_t *ids = sample(m, &o, NULL, 0);
    for (int i = 0; i < 4000; i++)
        ck_assert_int_ge(ids[i], CHARGAN_NUM_RESERVED_IDS);
    free(ids);
    /* with top_k 1 or tiny top_p too */
    o.top_k = 1;
    ids = sample(m, &o, NULL, 0);
    for (int i = 0; i < 4000; i++)
        ck_assert_int_ge(ids[i], CHARGAN_NUM_RESERVED_IDS);
    free(ids);
    o.top_k = 0;
    o.allow_reserved = 1;
    ids = sample(m, &o, NULL, 0);
    int reserved = 0;
    for (int i = 0; i < 4000; i++)
        reserved += ids[i] < CHARGAN_NUM_RESERVED_IDS;
    ck_assert_int_gt(reserved, 3900);
    free(ids);
    chargan_model_free(m);

    /* a vocabulary of reserved ids only can be sampled only with allow_reserved */
    m = make_gen(2, 0, 1, 1);
    int32_t out[4];
    o = options(1, 4, 1);
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 4), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(m), "only reserved ids");
    o.allow_reserved = 1;
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 4), CHARGAN_OK);
    chargan_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- priming */

START_TEST(prime_ids)
{
    chargan_model *m = make_gen(19, 0, 2, 8);
    static const int32_t prime[] = {5, 9, 2, 14, 0, 1}; /* reserved ids may be fed */
    int32_t ref[30];
    greedy_reference(m, prime, 6, ref, 30);
    chargan_sample_options o = options(3, 30, 1);
    o.top_k = 1;
    int32_t *got = sample(m, &o, prime, 6);
    for (int b = 0; b < 3; b++)
        ck_assert_msg(memcmp(got + 30 * b, ref, sizeof ref) == 0, "stream %d", b);
    /* the prime matters */
    int32_t plain[30];
    greedy_reference(m, NULL, 0, plain, 30);
    ck_assert(memcmp(plain, ref, sizeof ref) != 0);
    free(got);
    /* ids outside the vocabulary, a NULL prime with a length */
    int32_t out[90];
    const int32_t bad[] = {3, 19};
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, bad, 2, out, 90), CHARGAN_E_RANGE);
    assert_contains(chargan_model_last_error(m), "position 1");
    const int32_t neg[] = {-1};
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, neg, 1, out, 90), CHARGAN_E_RANGE);
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 2, out, 90), CHARGAN_E_INVALID);
    /* a prime but nothing to generate */
    o.length = 0;
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, prime, 6, out, 0), CHARGAN_OK);
    chargan_model_free(m);
}
END_TEST

static chargan_model *text_model(const char *corpus, uint32_t extra_ids, uint32_t Z)
{
    chargan_tokenizer *tok;
    ck_assert_int_eq(chargan_tokenizer_new(NULL, &tok), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, corpus, strlen(corpus)), CHARGAN_OK);
    uint32_t V;
    ck_assert_int_eq(chargan_tokenizer_vocab_size(tok, &V), CHARGAN_OK);
    chargan_model *m = make_gen(V + extra_ids, Z, 1, 2);
    ck_assert_int_eq(chargan_model_set_tokenizer(m, tok), CHARGAN_OK);
    chargan_tokenizer_free(tok);
    return m;
}

/* prime + decode(ids) for each stream, joined by "\n\n": what sample_text
 * must return, built from sample_ids and the tokenizer. */
static char *expected_text(chargan_model *m, const chargan_sample_options *o, const char *prime)
{
    chargan_tokenizer *tok = chargan_model_tokenizer(m);
    int32_t pid[64];
    size_t k = 0;
    if (prime)
        ck_assert_int_eq(chargan_tokenizer_encode(tok, prime, strlen(prime), pid, 64, &k),
                         CHARGAN_OK);
    int32_t *ids = sample(m, o, pid, k);
    size_t cap = 16 + (size_t)o->n_streams * (o->length + k + 2) * 4;
    char *text = malloc(cap), *row = malloc(cap);
    int32_t *seq = malloc((k + o->length + 1) * sizeof *seq);
    ck_assert(text && row && seq);
    text[0] = 0;
    for (uint32_t b = 0; b < o->n_streams; b++) {
        memcpy(seq, pid, k * sizeof *seq);
        memcpy(seq + k, ids + (size_t)b * o->length, o->length * sizeof *seq);
        size_t len;
        ck_assert_int_eq(chargan_tokenizer_decode(tok, seq, k + o->length, row, cap, &len),
                         CHARGAN_OK);
        if (b)
            strcat(text, "\n\n");
        strcat(text, row);
    }
    free(ids);
    free(row);
    free(seq);
    return text;
}

START_TEST(sample_text_and_text_prime)
{
    const char *corpus = "to be or not to be, that is the question:\n";
    chargan_model *m = text_model(corpus, 0, 2);
    chargan_sample_options o = options(2, 40, 77);
    char *text = NULL;
    ck_assert_int_eq(chargan_model_sample_text(m, &o, "that ", &text), CHARGAN_OK);
    ck_assert_ptr_nonnull(text);
    ck_assert(strncmp(text, "that ", 5) == 0);
    char *want = expected_text(m, &o, "that ");
    ck_assert_str_eq(text, want);
    /* each stream is the prime and its own 40 characters: the second
     * stream's copy of the prime follows a separator */
    ck_assert_ptr_nonnull(strstr(text + 5, "\n\nthat "));
    chargan_free(text);
    free(want);

    /* no prime (NULL or ""): the samples alone */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(chargan_model_sample_text(m, &o, i ? "" : NULL, &text), CHARGAN_OK);
        want = expected_text(m, &o, NULL);
        ck_assert_str_eq(text, want);
        chargan_free(text);
        free(want);
    }
    /* a prime character outside the vocabulary is fed as UNKNOWN and comes
     * back as U+FFFD */
    o.n_streams = 1;
    ck_assert_int_eq(chargan_model_sample_text(m, &o, "zx", &text), CHARGAN_OK);
    ck_assert(strncmp(text, "\xEF\xBF\xBD\xEF\xBF\xBD", 6) == 0);
    chargan_free(text);
    /* invalid UTF-8 in the prime */
    text = (char *)1;
    ck_assert_int_eq(chargan_model_sample_text(m, &o, "to \xC3(", &text), CHARGAN_E_UTF8);
    ck_assert_ptr_eq(text, (char *)1);
    /* length 0: the prime alone; two streams of nothing are one separator */
    o.length = 0;
    ck_assert_int_eq(chargan_model_sample_text(m, &o, "to be", &text), CHARGAN_OK);
    ck_assert_str_eq(text, "to be");
    chargan_free(text);
    o.n_streams = 2;
    ck_assert_int_eq(chargan_model_sample_text(m, &o, NULL, &text), CHARGAN_OK);
    ck_assert_str_eq(text, "\n\n");
    chargan_free(text);
    chargan_model_free(m);
}
END_TEST

/* U+0000 is a character like any other: sample_text_len says how long the
 * text is, NUL bytes and all, and its bytes are the streams' decodings. */
START_TEST(sample_text_len_keeps_nul_characters)
{
    chargan_tokenizer *tok;
    ck_assert_int_eq(chargan_tokenizer_new(NULL, &tok), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "a\0b\0a\0", 6), CHARGAN_OK);
    uint32_t V;
    ck_assert_int_eq(chargan_tokenizer_vocab_size(tok, &V), CHARGAN_OK);
    chargan_model *m = make_gen(V, 0, 1, 3);
    ck_assert_int_eq(chargan_model_set_tokenizer(m, tok), CHARGAN_OK);
    chargan_tokenizer_free(tok);
    chargan_sample_options o = options(2, 64, 5);
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(chargan_model_sample_text_len(m, &o, "b", &text, &len), CHARGAN_OK);
    ck_assert_uint_eq(len, 2 * 65 + 2); /* one byte a character, and the separator */
    ck_assert_uint_eq(text[len], 0);
    ck_assert_ptr_nonnull(memchr(text, 0, len)); /* a NUL among 128 draws over 3 characters */
    int32_t prime_id;
    ck_assert_int_eq(chargan_tokenizer_lookup(chargan_model_tokenizer(m), 'b', &prime_id),
                     CHARGAN_OK);
    int32_t *ids = sample(m, &o, &prime_id, 1);
    for (uint32_t b = 0; b < 2; b++) {
        int32_t seq[65];
        seq[0] = prime_id;
        memcpy(seq + 1, ids + (size_t)b * 64, 64 * sizeof *seq);
        char row[128];
        size_t n;
        ck_assert_int_eq(chargan_tokenizer_decode(chargan_model_tokenizer(m), seq, 65, row,
                                                  sizeof row, &n), CHARGAN_OK);
        ck_assert_uint_eq(n, 65);
        ck_assert_mem_eq(text + b * 67, row, 65);
        if (b == 0)
            ck_assert_mem_eq(text + 65, "\n\n", 2);
    }
    free(ids);
    /* sample_text gives the same bytes, which C strings end at the first NUL */
    char *plain = NULL;
    ck_assert_int_eq(chargan_model_sample_text(m, &o, "b", &plain), CHARGAN_OK);
    ck_assert_mem_eq(plain, text, len + 1);
    ck_assert_int_eq(chargan_model_sample_text_len(m, &o, "b", &plain, NULL), CHARGAN_E_INVALID);
    chargan_free(plain);
    chargan_free(text);
    chargan_model_free(m);
}
END_TEST

START_TEST(sample_text_without_tokenizer_is_state_error)
{
    chargan_model *m = make_gen(10, 0, 1, 1);
    chargan_sample_options o = options(1, 5, 1);
    char *text = (char *)1;
    ck_assert_int_eq(chargan_model_sample_text(m, &o, "ab", &text), CHARGAN_E_STATE);
    ck_assert_ptr_eq(text, (char *)1);
    assert_contains(chargan_model_last_error(m), "no tokenizer");
    ck_assert_int_eq(chargan_model_sample_text(m, &o, NULL, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_model_sample_text(NULL, &o, NULL, &text), CHARGAN_E_INVALID);
    chargan_model_free(m);
}
END_TEST

START_TEST(sample_text_with_vocabulary_larger_than_tokenizer)
{
    /* The model may have more ids than its tokenizer (the header allows it);
     * those ids have no character, so text sampling never draws them. */
    chargan_model *m = text_model("abcabc", 20, 0);
    /* make the ids without a character by far the likeliest */
    size_t ib;
    ck_assert_int_eq(chargan_model_param_find(m, "out.b", &ib), CHARGAN_OK);
    float bias[25] = {0};
    for (int v = 5; v < 25; v++)
        bias[v] = 10.0f;
    ck_assert_int_eq(chargan_model_param_set(m, ib, bias, 25), CHARGAN_OK);
    chargan_sample_options o = options(2, 200, 5);
    char *text;
    ck_assert_msg(chargan_model_sample_text(m, &o, "a", &text) == CHARGAN_OK, "%s",
                  chargan_model_last_error(m));
    ck_assert_uint_eq(strlen(text), 2 * 201 + 2);
    for (const char *c = text; *c; c++)
        ck_assert(*c == 'a' || *c == 'b' || *c == 'c' || *c == '\n');
    chargan_free(text);
    /* sample_ids itself draws from the whole vocabulary */
    int32_t *ids = sample(m, &o, NULL, 0);
    int beyond = 0;
    for (int i = 0; i < 400; i++)
        beyond += ids[i] >= 5;
    ck_assert_int_gt(beyond, 350);
    free(ids);
    chargan_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- streams, options */

START_TEST(batched_streams_are_deterministic)
{
    chargan_model *m = make_gen(21, 4, 2, 6);
    chargan_sample_options o = options(2, 80, 31);
    int32_t *a = sample(m, &o, NULL, 0), *b = sample(m, &o, NULL, 0);
    ck_assert(memcmp(a, b, 160 * sizeof *a) == 0);
    /* the two streams are independent draws, not copies */
    ck_assert(memcmp(a, a + 80, 80 * sizeof *a) != 0);
    /* each stream has its own RNG stream: stream 0 alone is stream 0 of
     * two (every product is the small kernel's, which sums each row the same
     * way whatever the row count; a BLAS fallback may not) */
    o.n_streams = 1;
    int32_t *c = sample(m, &o, NULL, 0), *d = sample(m, &o, NULL, 0);
    ck_assert(memcmp(c, d, 80 * sizeof *c) == 0);
    if (cg_kern_active() != CG_KERN_PORTABLE)
        ck_assert(memcmp(a, c, 80 * sizeof *c) == 0);
    /* many streams at once */
    o.n_streams = 64;
    o.length = 20;
    int32_t *e = sample(m, &o, NULL, 0), *f = sample(m, &o, NULL, 0);
    ck_assert(memcmp(e, f, 64 * 20 * sizeof *e) == 0);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
    chargan_model_free(m);
}
END_TEST

/* The streams split across threads: the same ids for every thread count,
 * including more threads than streams, with a prime, noise and two layers. */
START_TEST(threads_do_not_change_the_output)
{
    chargan_model *m = make_gen(23, 4, 2, 9);
    const int32_t prime[3] = {5, 7, 9};
    chargan_sample_options o = options(13, 40, 77);
    o.temperature = 0.8f;
    int32_t *one = sample(m, &o, prime, 3);
    uint32_t counts[] = {2, 3, 8, 13, 20, 64};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        o.threads = counts[i];
        int32_t *many = sample(m, &o, prime, 3);
        if (cg_kern_active() != CG_KERN_PORTABLE)
            ck_assert_msg(memcmp(one, many, 13 * 40 * sizeof *one) == 0, "threads %u", counts[i]);
        /* the same call twice: always the same */
        int32_t *again = sample(m, &o, prime, 3);
        ck_assert(memcmp(many, again, 13 * 40 * sizeof *one) == 0);
        free(many);
        free(again);
    }
    /* top-k and top-p keep per-thread scratch: still the same */
    o.top_k = 5;
    o.top_p = 0.9f;
    o.threads = 1;
    int32_t *a = sample(m, &o, NULL, 0);
    o.threads = 4;
    int32_t *b = sample(m, &o, NULL, 0);
    if (cg_kern_active() != CG_KERN_PORTABLE)
        ck_assert(memcmp(a, b, 13 * 40 * sizeof *a) == 0);
    free(a);
    free(b);
    free(one);
    chargan_model_free(m);
}
END_TEST

/* Fewer streams than threads: the threads share each step, each a slice of
 * the hidden units and the vocabulary (H >= 128 for two of them).  Same ids
 * as one thread, with noise, a prime, two layers, and a vocabulary too large
 * for the input table. */
START_TEST(threads_sharing_steps_do_not_change_the_output)
{
    static const struct {
        uint32_t V, H, L, Z;
    } shapes[] = {{23, 128, 1, 0}, {37, 200, 2, 3}, {4100, 128, 1, 2}};
    const int32_t prime[2] = {4, 6};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        chargan_model_config c;
        chargan_model_config_init(&c, CHARGAN_GENERATOR);
        c.vocab_size = shapes[k].V;
        c.embed_dim = 8;
        c.hidden_dim = shapes[k].H;
        c.num_layers = shapes[k].L;
        c.noise_dim = shapes[k].Z;
        c.init_scale = 1.0f;
        c.seed = 3 + k;
        chargan_model *m;
        ck_assert_int_eq(chargan_model_new(&c, &m), CHARGAN_OK);
        for (uint32_t streams = 1; streams <= 3; streams += 2) {
            chargan_sample_options o = options(streams, 30, 11);
            int32_t *one = sample(m, &o, prime, 2);
            for (uint32_t threads = 2; threads <= 5; threads++) {
                o.threads = threads;
                int32_t *many = sample(m, &o, prime, 2);
                if (cg_kern_active() != CG_KERN_PORTABLE)
                    ck_assert_msg(memcmp(one, many, streams * 30 * sizeof *one) == 0,
                                  "shape %zu, %u streams, %u threads", k, streams, threads);
                free(many);
            }
            free(one);
        }
        chargan_model_free(m);
    }
}
END_TEST

START_TEST(option_validation)
{
    chargan_model *m = make_gen(12, 0, 1, 1);
    int32_t out[64];
    chargan_sample_options o;
    chargan_sample_options_init(&o);
    ck_assert_uint_eq(o.struct_size, sizeof o);
    ck_assert_uint_eq(o.n_streams, 1);
    ck_assert_uint_eq(o.length, 256);
    ck_assert(o.temperature == 1.0f && o.top_p == 1.0f);
    ck_assert_uint_eq(o.top_k, 0);
    ck_assert_int_eq(o.allow_reserved, 0);
    ck_assert_uint_eq(o.threads, 0);

    o = options(1, 8, 1);
    o.threads = 257; /* a trainer's limit too; 64 are used at most */
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 64), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(m), "threads 257");
    o.threads = 64;
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 64), CHARGAN_OK);
    int32_t more[64];
    o.threads = 256;
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, more, 64), CHARGAN_OK);
    ck_assert_mem_eq(more, out, 8 * sizeof *out);

    /* Checked before the output's cap (as chargan.h says): a call with
     * cap 0 validates the options.  They were checked only when sampling
     * began, so cap 0 gave CHARGAN_E_RANGE. */
    static const float bad_t[] = {0.0f, -1.0f, NAN, INFINITY, -0.0f};
    for (int i = 0; i < 5; i++) {
        o = options(1, 8, 1);
        o.temperature = bad_t[i];
        for (size_t cap = 0; cap <= 64; cap += 64) {
            ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, cap), CHARGAN_E_INVALID);
            assert_contains(chargan_model_last_error(m), "temperature");
        }
    }
    static const float bad_p[] = {0.0f, -0.5f, 1.0001f, NAN, INFINITY};
    for (int i = 0; i < 5; i++) {
        o = options(1, 8, 1);
        o.top_p = bad_p[i];
        for (size_t cap = 0; cap <= 64; cap += 64) {
            ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, cap), CHARGAN_E_INVALID);
            assert_contains(chargan_model_last_error(m), "top_p");
        }
    }
    o = options(0, 8, 1);
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 64), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(m), "n_streams");
    o = options(65537, 1, 1);
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 64), CHARGAN_E_INVALID);
    o = options(65536, 65536, 1);
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 64), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(m), "too many");
    char *text;
    ck_assert_int_eq(chargan_model_sample_text(m, &o, NULL, &text), CHARGAN_E_INVALID);
    /* the output must hold n_streams x length ids */
    o = options(4, 16, 1);
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 63), CHARGAN_E_RANGE);
    assert_contains(chargan_model_last_error(m), "64 needed");
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 64), CHARGAN_OK);
    /* NULLs, the struct size, the model kind */
    ck_assert_int_eq(chargan_model_sample_ids(m, NULL, NULL, 0, out, 64), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, NULL, 64), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_model_sample_ids(NULL, &o, NULL, 0, out, 64), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_model_sample_text(m, NULL, NULL, &text), CHARGAN_E_INVALID);
    o.struct_size = 4;
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 64), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(m), "struct_size");
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_DISCRIMINATOR);
    c.vocab_size = 12;
    chargan_model *d;
    ck_assert_int_eq(chargan_model_new(&c, &d), CHARGAN_OK);
    o = options(1, 8, 1);
    ck_assert_int_eq(chargan_model_sample_ids(d, &o, NULL, 0, out, 64), CHARGAN_E_INVALID);
    assert_contains(chargan_model_last_error(d), "not a generator");
    chargan_model_free(d);
    chargan_model_free(m);
}
END_TEST

/* Every allocation of a sample_ids call (at most 60 ids) failing in turn
 * gives CHARGAN_E_NOMEM; the call that succeeds gives the ids of an
 * undisturbed one. */
static void assert_sample_ids_survive_allocation_failures(chargan_model *m,
                                                          const chargan_sample_options *o)
{
    int32_t out[60], ref[60];
    size_t n = (size_t)o->n_streams * o->length;
    ck_assert(n <= 60);
    ck_assert_int_eq(chargan_model_sample_ids(m, o, NULL, 0, ref, n), CHARGAN_OK);
    long k;
    for (k = 0; k < 1000; k++) {
        cg_alloc_fail_after(k);
        chargan_status st = chargan_model_sample_ids(m, o, NULL, 0, out, n);
        cg_alloc_fail_after(-1);
        if (st == CHARGAN_OK)
            break;
        ck_assert_int_eq(st, CHARGAN_E_NOMEM);
    }
    ck_assert(k > 0 && k < 1000);
    ck_assert(memcmp(out, ref, n * sizeof *out) == 0);
}

/* A buffer's rows x cols that overflows a size_t is refused, not wrapped to
 * a small buffer the steps then overrun.  With a 32-bit size_t, the logits
 * of 65536 streams over a vocabulary of 2^21 (the largest) are such a
 * product, 2^37; on 64-bit hosts that call would try to allocate 512 GB,
 * so it is made on 32-bit ones only. */
START_TEST(sizes_beyond_a_32_bit_size_t_are_refused)
{
    /* products that wrap to 0, which a plain multiplication would allocate */
    ck_assert_ptr_null(cg_alloc_float_matrix(SIZE_MAX / 2 + 1, 2));
    ck_assert_ptr_null(cg_alloc_float_matrix(4, SIZE_MAX / 4 + 1));
    float *one = cg_alloc_float_matrix(0, 5);
    ck_assert_ptr_nonnull(one);
    cg_free_floats(one);
#if SIZE_MAX <= UINT32_MAX
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_GENERATOR);
    c.vocab_size = 1u << 21;
    c.embed_dim = 1;
    c.hidden_dim = 1;
    chargan_model *m;
    ck_assert_int_eq(chargan_model_new(&c, &m), CHARGAN_OK);
    chargan_sample_options o = options(65536, 1, 1);
    int32_t *out = malloc(65536 * sizeof *out);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(chargan_model_sample_ids(m, &o, NULL, 0, out, 65536), CHARGAN_E_NOMEM);
    free(out);
    chargan_model_free(m);
#endif
}
END_TEST

START_TEST(allocation_failures)
{
    chargan_model *m = text_model("the quick brown fox jumps over the lazy dog", 0, 3);
    chargan_sample_options o = options(3, 20, 9);
    o.top_k = 5;
    o.top_p = 0.9f;
    /* on the calling thread, and split across threads (each shard's buffers, the pool) */
    o.threads = 0;
    assert_sample_ids_survive_allocation_failures(m, &o);
    o.threads = 3;
    assert_sample_ids_survive_allocation_failures(m, &o);
    o.threads = 0;
    long k;
    /* fewer streams than threads: the threads share each step (H = 128) */
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_GENERATOR);
    c.vocab_size = 12;
    c.hidden_dim = 128;
    c.noise_dim = 2;
    chargan_model *wide;
    ck_assert_int_eq(chargan_model_new(&c, &wide), CHARGAN_OK);
    chargan_sample_options w = options(2, 30, 5);
    w.threads = 3;
    assert_sample_ids_survive_allocation_failures(wide, &w);
    chargan_model_free(wide);
    char *want;
    ck_assert_int_eq(chargan_model_sample_text(m, &o, "the ", &want), CHARGAN_OK);
    for (k = 0; k < 1000; k++) {
        char *text = NULL;
        cg_alloc_fail_after(k);
        chargan_status st = chargan_model_sample_text(m, &o, "the ", &text);
        cg_alloc_fail_after(-1);
        if (st == CHARGAN_OK) {
            ck_assert_str_eq(text, want);
            chargan_free(text);
            break;
        }
        ck_assert_int_eq(st, CHARGAN_E_NOMEM);
        ck_assert_ptr_null(text);
    }
    ck_assert(k > 0 && k < 1000);
    chargan_free(want);
    chargan_model_free(m);
}
END_TEST

static Suite *sample_suite(void)
{
    Suite *s = suite_create("sample");
    TCase *tc = tcase_create("greedy");
    tcase_add_test(tc, same_seed_same_ids_other_seed_differs);
    tcase_add_test(tc, top_k_one_is_greedy_regardless_of_seed);
    tcase_add_test(tc, temperature_to_zero_and_tiny_top_p_are_greedy);
    suite_add_tcase(s, tc);

    tc = tcase_create("distribution");
    tcase_add_test(tc, frequencies_match_the_distribution);
    tcase_add_test(tc, wide_rows_match_the_distribution);
    tcase_add_test(tc, unlikely_ids_keep_their_own_probability);
    tcase_add_test(tc, gumbel_max_draws_from_the_softmax);
    tcase_add_test(tc, top_k_and_top_p_keep_what_a_full_ranking_keeps);
    tcase_add_test(tc, reserved_ids_never_sampled_unless_allowed);
    suite_add_tcase(s, tc);

    tc = tcase_create("prime");
    tcase_add_test(tc, prime_ids);
    tcase_add_test(tc, sample_text_and_text_prime);
    tcase_add_test(tc, sample_text_len_keeps_nul_characters);
    tcase_add_test(tc, sample_text_without_tokenizer_is_state_error);
    tcase_add_test(tc, sample_text_with_vocabulary_larger_than_tokenizer);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_test(tc, batched_streams_are_deterministic);
    tcase_add_test(tc, threads_do_not_change_the_output);
    tcase_add_test(tc, threads_sharing_steps_do_not_change_the_output);
    tcase_add_test(tc, option_validation);
    tcase_add_test(tc, allocation_failures);
    tcase_add_test(tc, sizes_beyond_a_32_bit_size_t_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(sample_suite)
