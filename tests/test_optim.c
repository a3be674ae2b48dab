/* test_optim.c - the optimizers against PyTorch and against the formulas in
 * double, gradient clipping, failure handling, the public handle's argument
 * checks, and the state's serialisation (round trip, truncation, corruption,
 * allocation failures). */
#include "test_common.h"
#include "internal.h"
#include "optim.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static chargan_optimizer *make(const chargan_optimizer_config *cfg)
{
    chargan_optimizer *opt = NULL;
    ck_assert_int_eq(chargan_optimizer_new(cfg, &opt), CHARGAN_OK);
    ck_assert_ptr_nonnull(opt);
    return opt;
}

static chargan_optimizer_config config(chargan_optimizer_kind kind, float lr, float momentum,
                                       float wd)
{
    chargan_optimizer_config cfg;
    chargan_optimizer_config_init(&cfg, kind);
    cfg.lr = lr;
    cfg.momentum = momentum;
    cfg.weight_decay = wd;
    return cfg;
}

static void assert_contains(const char *haystack, const char *needle)
{
    ck_assert_msg(strstr(haystack, needle) != NULL, "message \"%s\" lacks \"%s\"", haystack,
                  needle);
}

/* A deterministic pseudo-random gradient in [-1, 1). */
static float noise(cg_rng *rng)
{
    return 2.0f * cg_rng_uniform(rng) - 1.0f;
}

/* ---------------------------------------------------------------- reference values */

/* Made with torch 1.13 (torch.optim on float32 tensors, hyper-parameters
 * rounded to float32 as the config holds them):
 *   p = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
 *   for g in G: p.grad = torch.tensor(g); opt.step()
 * with the optimizers named beside each table, printed with %.9g. */
static const float p_init[3] = {0.5f, -1.0f, 2.0f};
static const float grads_seq[3][3] = {{0.1f, -0.2f, 0.3f}, {-0.05f, 0.4f, 0.25f}, {0.3f, 0.1f, -0.6f}};

/* Adam(lr=0.01, betas=(0.9, 0.999), eps=1e-8) */
static const float ref_adam[3][3] = {
    {0.49000001f, -0.99000001f, 1.99000001f},
    {0.487336636f, -0.993661046f, 1.98008823f},
    {0.48063162f, -0.997817576f, 1.98126638f},
};
/* AdamW(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1) */
static const float ref_adamw[3][3] = {
    {0.489500016f, -0.989000022f, 1.98800004f},
    {0.486347139f, -0.991672099f, 1.97610033f},
    {0.479155779f, -0.994836986f, 1.97530234f},
};
/* SGD(lr=0.1) */
static const float ref_sgd[3][3] = {
    {0.49000001f, -0.980000019f, 1.97000003f},
    {0.495000005f, -1.01999998f, 1.94500005f},
    {0.465000004f, -1.02999997f, 2.00500011f},
};
/* SGD(lr=0.1, momentum=0.9, weight_decay=0.01) */
static const float ref_sgd_mom[3][3] = {
    {0.489499986f, -0.978999972f, 1.96800005f},
    {0.48456049f, -0.999120951f, 1.91223204f},
    {0.44963038f, -1.02623069f, 1.92012858f},
};
/* RMSprop(lr=0.01, alpha=0.99, eps=1e-8) */
static const float ref_rms[3][3] = {
    {0.400000036f, -0.899999976f, 1.89999998f},
    {0.444901347f, -0.989532292f, 1.83579183f},
    {0.351094514f, -1.01147962f, 1.91980171f},
};
/* RMSprop(lr=0.01, alpha=0.9, eps=1e-8, weight_decay=0.01, momentum=0.5) */
static const float ref_rms_mom[3][3] = {
    {0.468377233f, -0.968377233f, 1.96837723f},
    {0.465660572f, -0.980731785f, 1.93156397f},
    {0.434369743f, -0.993613601f, 1.93950868f},
};

static void check_against(const chargan_optimizer_config *cfg, const float ref[3][3])
{
    chargan_optimizer *opt = make(cfg);
    float p[3], g[3];
    memcpy(p, p_init, sizeof p);
    for (int t = 0; t < 3; t++) {
        memcpy(g, grads_seq[t], sizeof g);
        ck_assert_int_eq(cg_optimizer_step(opt, p, g, 3, NULL), CHARGAN_OK);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(fabsf(p[i] - ref[t][i]) <= 2e-6f * (1.0f + fabsf(ref[t][i])),
                          "step %d p[%d] = %.9g, torch %.9g", t + 1, i, (double)p[i],
                          (double)ref[t][i]);
        /* without clipping the gradients are left alone */
        ck_assert(memcmp(g, grads_seq[t], sizeof g) == 0);
    }
    uint64_t steps = 0;
    ck_assert_int_eq(chargan_optimizer_steps(opt, &steps), CHARGAN_OK);
    ck_assert_uint_eq(steps, 3);
    chargan_optimizer_free(opt);
}

START_TEST(adam_matches_torch)
{
    chargan_optimizer_config cfg = config(CHARGAN_ADAM, 0.01f, 0, 0);
    check_against(&cfg, ref_adam);
    cfg.weight_decay = 0.1f;
    check_against(&cfg, ref_adamw);
}
END_TEST

START_TEST(sgd_matches_torch)
{
    chargan_optimizer_config cfg = config(CHARGAN_SGD, 0.1f, 0, 0);
    check_against(&cfg, ref_sgd);
    cfg = config(CHARGAN_SGD, 0.1f, 0.9f, 0.01f);
    check_against(&cfg, ref_sgd_mom);
}
END_TEST

START_TEST(rmsprop_matches_torch)
{
    chargan_optimizer_config cfg = config(CHARGAN_RMSPROP, 0.01f, 0, 0);
    check_against(&cfg, ref_rms);
    cfg = config(CHARGAN_RMSPROP, 0.01f, 0.5f, 0.01f);
    cfg.rho = 0.9f;
    check_against(&cfg, ref_rms_mom);
}
END_TEST

/* The update rules written out in double, for a longer run. */
static void reference_step(const chargan_optimizer_config *c, int t, size_t n, double *p,
                           const double *g, double *m, double *v)
{
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        if (c->kind == CHARGAN_ADAM) {
            p[i] -= (double)c->lr * c->weight_decay * p[i];
            m[i] = c->beta1 * m[i] + (1.0 - c->beta1) * gi;
            v[i] = c->beta2 * v[i] + (1.0 - c->beta2) * gi * gi;
            double mhat = m[i] / (1.0 - pow(c->beta1, t));
            double vhat = v[i] / (1.0 - pow(c->beta2, t));
            p[i] -= c->lr * mhat / (sqrt(vhat) + c->eps);
        } else if (c->kind == CHARGAN_SGD) {
            gi += c->weight_decay * p[i];
            m[i] = c->momentum * m[i] + gi;
            p[i] -= c->lr * m[i];
        } else {
            gi += c->weight_decay * p[i];
            v[i] = c->rho * v[i] + (1.0 - c->rho) * gi * gi;
            m[i] = c->momentum * m[i] + gi / (sqrt(v[i]) + c->eps);
            p[i] -= c->lr * m[i];
        }
    }
}

START_TEST(long_runs_follow_the_formulas)
{
    chargan_optimizer_config cfgs[5] = {
        config(CHARGAN_ADAM, 0.003f, 0, 0),      config(CHARGAN_ADAM, 0.01f, 0, 0.05f),
        config(CHARGAN_SGD, 0.05f, 0.8f, 0.02f), config(CHARGAN_RMSPROP, 0.002f, 0, 0.01f),
        config(CHARGAN_RMSPROP, 0.002f, 0.7f, 0),
    };
    cfgs[1].beta1 = 0.5f;
    cfgs[1].beta2 = 0.9f;
    enum { N = 37, STEPS = 60 };
    for (size_t k = 0; k < 5; k++) {
        chargan_optimizer *opt = make(&cfgs[k]);
        cg_rng rng;
        cg_rng_seed(&rng, 7 + k);
        float p[N], g[N];
        double pd[N], gd[N], m[N] = {0}, v[N] = {0};
        for (int i = 0; i < N; i++)
            pd[i] = p[i] = noise(&rng);
        for (int t = 1; t <= STEPS; t++) {
            for (int i = 0; i < N; i++)
                gd[i] = g[i] = noise(&rng);
            ck_assert_int_eq(cg_optimizer_step(opt, p, g, N, NULL), CHARGAN_OK);
            reference_step(&cfgs[k], t, N, pd, gd, m, v);
        }
        for (int i = 0; i < N; i++)
            ck_assert_msg(fabs(p[i] - pd[i]) < 2e-5, "config %zu p[%d] = %.9g, expected %.9g", k,
                          i, (double)p[i], pd[i]);
        chargan_optimizer_free(opt);
    }
}
END_TEST

/* ---------------------------------------------------------------- clipping and convergence */

START_TEST(clipping_scales_to_clip_norm)
{
    chargan_optimizer_config cfg = config(CHARGAN_SGD, 1.0f, 0, 0);
    cfg.clip_norm = 1.0f;
    chargan_optimizer *opt = make(&cfg);
    float p[3] = {0, 0, 0}, g[3] = {3.0f, -4.0f, 0.0f}; /* norm 5 */
    double norm = -1;
    ck_assert_int_eq(cg_optimizer_step(opt, p, g, 3, &norm), CHARGAN_OK);
    ck_assert_double_eq(norm, 5.0); /* reported before clipping */
    ck_assert_float_eq_tol(g[0], 0.6f, 1e-7f);
    ck_assert_float_eq_tol(g[1], -0.8f, 1e-7f);
    ck_assert_float_eq(g[2], 0.0f);
    double after = sqrt((double)g[0] * g[0] + (double)g[1] * g[1]);
    ck_assert_double_eq_tol(after, 1.0, 1e-7);
    /* the update used the clipped gradient */
    ck_assert_float_eq_tol(p[0], -0.6f, 1e-7f);
    ck_assert_float_eq_tol(p[1], 0.8f, 1e-7f);

    /* a gradient already within the limit is untouched */
    float small[3] = {0.3f, 0.4f, 0.0f};
    ck_assert_int_eq(cg_optimizer_step(opt, p, small, 3, &norm), CHARGAN_OK);
    ck_assert_double_eq_tol(norm, 0.5, 1e-7);
    ck_assert_float_eq(small[0], 0.3f);
    ck_assert_float_eq(small[1], 0.4f);
    chargan_optimizer_free(opt);

    /* clip_norm 0: no clipping, the norm is still reported; a large vector
     * exercises the vector lanes and the tail of the sum */
    cfg.clip_norm = 0;
    opt = make(&cfg);
    enum { N = 1003 };
    static float big_p[N], big_g[N];
    double sum = 0;
    for (int i = 0; i < N; i++) {
        big_g[i] = (float)(i % 7) - 3.0f;
        sum += (double)big_g[i] * big_g[i];
    }
    ck_assert_int_eq(cg_optimizer_step(opt, big_p, big_g, N, &norm), CHARGAN_OK);
    ck_assert_double_eq_tol(norm, sqrt(sum), 1e-9);
    ck_assert_float_eq(big_g[0], -3.0f);
    chargan_optimizer_free(opt);

    /* large clipped vector: norm after clipping is clip_norm */
    cfg.clip_norm = 2.5f;
    opt = make(&cfg);
    ck_assert_int_eq(cg_optimizer_step(opt, big_p, big_g, N, &norm), CHARGAN_OK);
    double after2 = 0;
    for (int i = 0; i < N; i++)
        after2 += (double)big_g[i] * big_g[i];
    ck_assert_double_eq_tol(sqrt(after2), 2.5, 2.5e-6);
    chargan_optimizer_free(opt);

    /* A scale clip_norm / norm below the smallest normal float (norm
     * ~1e41 here) is kept in double: in float it lost its digits, and
     * under ~1e-45 it was 0, a silent no-op step. */
    static const float limits[] = {1e-6f, 1e-3f, 5.0f};
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        cfg.clip_norm = limits[k];
        opt = make(&cfg);
        for (int i = 0; i < N; i++) {
            big_p[i] = 0.0f;
            big_g[i] = i % 2 ? 3e38f : -3e38f;
        }
        ck_assert_int_eq(cg_optimizer_step(opt, big_p, big_g, N, &norm), CHARGAN_OK);
        ck_assert(isfinite(norm) && norm > 9e39);
        double moved = 0;
        for (int i = 0; i < N; i++)
            moved += (double)big_p[i] * big_p[i];
        ck_assert_double_eq_tol(sqrt(moved) / limits[k], 1.0, 1e-6);
        chargan_optimizer_free(opt);
    }
}
END_TEST

/* The update in pieces (the trainer's threads: block sums, begin, ranges,
 * end) gives cg_optimizer_step's bits, for every kind, with and without
 * clipping, over splits at block edges and inside blocks; a range left out
 * or done twice would show. */
START_TEST(pieces_match_the_whole_step)
{
    chargan_optimizer_config cfgs[5] = {
        config(CHARGAN_ADAM, 0.003f, 0, 0.01f), config(CHARGAN_SGD, 0.05f, 0, 0.02f),
        config(CHARGAN_SGD, 0.05f, 0.8f, 0),    config(CHARGAN_RMSPROP, 0.002f, 0, 0.01f),
        config(CHARGAN_RMSPROP, 0.002f, 0.7f, 0),
    };
    enum { N = 3 * CG_OPTIM_BLOCK + 1000, STEPS = 3 };
    const size_t cuts[][4] = {{0, CG_OPTIM_BLOCK, 2 * CG_OPTIM_BLOCK, N},
                              {0, 17, 2 * CG_OPTIM_BLOCK + 5, N}};
    float *p1 = calloc(N, sizeof(float)), *p2 = calloc(N, sizeof(float)),
          *g1 = calloc(N, sizeof(float)), *g2 = calloc(N, sizeof(float));
    ck_assert(p1 && p2 && g1 && g2);
    for (size_t k = 0; k < 5 * 2 * 2; k++) {
        chargan_optimizer_config cfg = cfgs[k / 4];
        cfg.clip_norm = k % 2 ? 10.0f : 0.0f; /* the gradients' norm is about 64 */
        const size_t *cut = cuts[k / 2 % 2];
        chargan_optimizer *whole = make(&cfg), *pieces = make(&cfg);
        cg_rng rng;
        cg_rng_seed(&rng, 40 + k);
        for (size_t i = 0; i < N; i++)
            p1[i] = p2[i] = noise(&rng);
        for (int t = 0; t < STEPS; t++) {
            for (size_t i = 0; i < N; i++)
                g1[i] = g2[i] = noise(&rng);
            double n1 = -1, n2 = -2, sumsq = 0;
            ck_assert_int_eq(cg_optimizer_step(whole, p1, g1, N, &n1), CHARGAN_OK);
            double sums[4];
            ck_assert_uint_eq(cg_optimizer_blocks(N), 4);
            for (size_t b = 4; b-- > 0;) /* computed in any order, added in block order */
                sums[b] = cg_optimizer_block_sumsq(g2, N, b);
            for (size_t b = 0; b < 4; b++)
                sumsq += sums[b];
            cg_optim_update u;
            ck_assert_int_eq(cg_optimizer_update_begin(pieces, p2, g2, N, sumsq, &u), CHARGAN_OK);
            unsigned bad = 0;
            for (int r = 2; r >= 0; r--) /* any order, as threads would */
                bad |= cg_optimizer_update_range(pieces, &u, p2, g2, cut[r], cut[r + 1]);
            ck_assert_int_eq(cg_optimizer_update_end(pieces, &u, bad, &n2), CHARGAN_OK);
            ck_assert_msg(memcmp(&n1, &n2, sizeof n1) == 0, "config %zu: norms %.17g, %.17g", k,
                          n1, n2);
        }
        ck_assert_msg(memcmp(p1, p2, N * sizeof(float)) == 0, "config %zu: parameters differ", k);
        ck_assert_msg(memcmp(g1, g2, N * sizeof(float)) == 0, "config %zu: gradients differ", k);
        for (int a = 0; a < 2; a++) {
            const float *s1 = a ? whole->v : whole->m, *s2 = a ? pieces->v : pieces->m;
            ck_assert(!s1 == !s2);
            ck_assert_msg(!s1 || memcmp(s1, s2, N * sizeof(float)) == 0, "config %zu: %s differs",
                          k, a ? "v" : "m");
        }
        uint64_t steps;
        ck_assert_int_eq(chargan_optimizer_steps(pieces, &steps), CHARGAN_OK);
        ck_assert_uint_eq(steps, STEPS);
        chargan_optimizer_free(whole);
        chargan_optimizer_free(pieces);
    }
    free(p1);
    free(p2);
    free(g1);
    free(g2);
}
END_TEST

START_TEST(quadratic_converges)
{
    /* minimise sum_i a_i (p_i - c_i)^2 from p = 0 */
    chargan_optimizer_config cfgs[5] = {
        config(CHARGAN_ADAM, 0.05f, 0, 0),       config(CHARGAN_SGD, 0.1f, 0, 0),
        config(CHARGAN_SGD, 0.05f, 0.9f, 0),     config(CHARGAN_RMSPROP, 0.01f, 0, 0),
        config(CHARGAN_RMSPROP, 0.005f, 0.5f, 0),
    };
    const float a[4] = {1.0f, 2.0f, 0.5f, 3.0f}, c[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    for (int k = 0; k < 5; k++) {
        chargan_optimizer *opt = make(&cfgs[k]);
        float p[4] = {0}, g[4];
        for (int step = 0; step < 2000; step++) {
            for (int i = 0; i < 4; i++)
                g[i] = 2.0f * a[i] * (p[i] - c[i]);
            ck_assert_int_eq(cg_optimizer_step(opt, p, g, 4, NULL), CHARGAN_OK);
        }
        for (int i = 0; i < 4; i++)
            ck_assert_msg(fabsf(p[i] - c[i]) < 0.02f, "config %d p[%d] = %g, expected %g", k, i,
                          (double)p[i], (double)c[i]);
        chargan_optimizer_free(opt);
    }
}
END_TEST

/* ---------------------------------------------------------------- step failures */

START_TEST(non_finite_gradient_changes_nothing)
{
    const float bad_values[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        chargan_optimizer_config cfg = config(CHARGAN_ADAM, 0.01f, 0, 0);
        cfg.clip_norm = 1.0f;
        chargan_optimizer *opt = make(&cfg);
        float p[3] = {1, 2, 3}, g[3] = {0.5f, bad_values[b], 0.25f};
        double norm = 42;
        /* before the state exists: it is not created */
        ck_assert_int_eq(cg_optimizer_step(opt, p, g, 3, &norm), CHARGAN_E_NUMERIC);
        ck_assert_uint_eq(opt->n, 0);
        ck_assert_ptr_null(opt->m);
        assert_contains(chargan_optimizer_last_error(opt), "gradient 1 of 3");
        /* after: params, grads, state, steps and *grad_norm all unchanged */
        float good[3] = {0.1f, 0.2f, 0.3f};
        ck_assert_int_eq(cg_optimizer_step(opt, p, good, 3, NULL), CHARGAN_OK);
        float p_before[3], m_before[3], v_before[3], g_before[3];
        memcpy(p_before, p, sizeof p);
        memcpy(m_before, opt->m, sizeof m_before);
        memcpy(v_before, opt->v, sizeof v_before);
        g[0] = 100.0f; /* would be clipped */
        memcpy(g_before, g, sizeof g);
        ck_assert_int_eq(cg_optimizer_step(opt, p, g, 3, &norm), CHARGAN_E_NUMERIC);
        ck_assert_str_eq(chargan_last_error(), chargan_optimizer_last_error(opt));
        ck_assert(memcmp(p, p_before, sizeof p) == 0);
        ck_assert(memcmp(g, g_before, sizeof g) == 0);
        ck_assert(memcmp(opt->m, m_before, sizeof m_before) == 0);
        ck_assert(memcmp(opt->v, v_before, sizeof v_before) == 0);
        ck_assert_uint_eq(opt->steps, 1);
        ck_assert_double_eq(norm, 42);
        chargan_optimizer_free(opt);
    }
    /* the last element: the search for the culprit stops there */
    chargan_optimizer_config cfg = config(CHARGAN_SGD, 0.01f, 0, 0);
    chargan_optimizer *opt = make(&cfg);
    float p[9] = {0}, g[9] = {0, 0, 0, 0, 0, 0, 0, 0, NAN};
    ck_assert_int_eq(cg_optimizer_step(opt, p, g, 9, NULL), CHARGAN_E_NUMERIC);
    assert_contains(chargan_optimizer_last_error(opt), "gradient 8 of 9");
    chargan_optimizer_free(opt);
}
END_TEST

/* A finite gradient whose square would overflow the float second moment
 * (Adam, RMSprop), or an Adam step size beyond float, is refused before
 * anything is written: the step overflowed v and left a state no step or
 * save could use, and its message blamed the learning rate.  A gradient
 * that clipping brings down is taken; SGD, with no second moment, takes it. */
START_TEST(overflowing_gradient_changes_nothing)
{
    const int kinds[3] = {CHARGAN_ADAM, CHARGAN_RMSPROP, CHARGAN_SGD};
    for (int k = 0; k < 3; k++) {
        chargan_optimizer_config cfg = config(kinds[k], 2e-3f, 0, 0);
        chargan_optimizer *opt = make(&cfg);
        float p[3] = {1, 2, 3}, good[3] = {0.1f, 0.2f, 0.3f};
        ck_assert_int_eq(cg_optimizer_step(opt, p, good, 3, NULL), CHARGAN_OK);
        float p_before[3], g[3] = {0.5f, -1e25f, 0.25f};
        memcpy(p_before, p, sizeof p);
        chargan_status st = cg_optimizer_step(opt, p, g, 3, NULL);
        if (kinds[k] == CHARGAN_SGD) {
            ck_assert_int_eq(st, CHARGAN_OK);
            ck_assert(isfinite(p[1]));
        } else {
            ck_assert_int_eq(st, CHARGAN_E_NUMERIC);
            assert_contains(chargan_optimizer_last_error(opt),
                            "gradient 1 of 3 is -1e+25, too large for the second moment");
            assert_contains(chargan_optimizer_last_error(opt), "nothing updated");
            ck_assert(memcmp(p, p_before, sizeof p) == 0);
            ck_assert_uint_eq(opt->steps, 1);
            ck_assert(cg_optimizer_state_finite(opt));
            /* the same gradient clipped is taken, and the state stays finite */
            opt->cfg.clip_norm = 1.0f;
            ck_assert_int_eq(cg_optimizer_step(opt, p, g, 3, NULL), CHARGAN_OK);
            ck_assert(cg_optimizer_state_finite(opt) && isfinite(p[1]));
        }
        chargan_optimizer_free(opt);
    }
    /* a norm beyond the bound, of elements that are not: taken (a million
     * gradients of 1e18, norm 1e21, each (1 - beta2) g^2 = 1e33) */
    {
        chargan_optimizer_config big = config(CHARGAN_ADAM, 2e-3f, 0, 0);
        chargan_optimizer *o = make(&big);
        const size_t n = 1000000;
        float *pp = calloc(n, sizeof *pp), *gg = malloc(n * sizeof *gg);
        ck_assert(pp && gg);
        for (size_t i = 0; i < n; i++)
            gg[i] = 1e18f;
        for (int step = 0; step < 3; step++) {
            float *g2 = malloc(n * sizeof *g2);
            ck_assert_ptr_nonnull(g2);
            memcpy(g2, gg, n * sizeof *g2);
            ck_assert_msg(cg_optimizer_step(o, pp, g2, n, NULL) == CHARGAN_OK, "%s",
                          chargan_optimizer_last_error(o));
            free(g2);
        }
        ck_assert(cg_optimizer_state_finite(o));
        free(pp);
        free(gg);
        chargan_optimizer_free(o);
    }
    /* a gradient whose square alone fits, repeated: the second moment grows
     * to the edge and the step that would pass it is refused (3.7e20: w g^2
     * is 0.4 FLT_MAX; the third step's v would be 1.2 FLT_MAX) */
    for (int k = 0; k < 2; k++) {
        chargan_optimizer_config edge = config(kinds[k], 2e-3f, 0, 0);
        if (kinds[k] == CHARGAN_RMSPROP)
            edge.rho = 0.999f;
        chargan_optimizer *o = make(&edge);
        float pe[1] = {1.0f};
        chargan_status st = CHARGAN_OK;
        int steps = 0;
        for (; steps < 6 && st == CHARGAN_OK; steps++) {
            float ge[1] = {3.7e20f};
            st = cg_optimizer_step(o, pe, ge, 1, NULL);
        }
        ck_assert_int_eq(st, CHARGAN_E_NUMERIC);
        assert_contains(chargan_optimizer_last_error(o), "too large for the second moment");
        ck_assert_msg(cg_optimizer_state_finite(o) && isfinite(pe[0]), "kind %d", kinds[k]);
        chargan_optimizer_free(o);
    }
    /* Adam's first step size lr / (1 - beta1): 1e32 / 6e-8 is beyond float */
    chargan_optimizer_config cfg = config(CHARGAN_ADAM, 1e32f, 0, 0);
    cfg.beta1 = 0.99999994f;
    chargan_optimizer *opt = make(&cfg);
    float p[3] = {1, 2, 3}, g[3] = {0.1f, 0.2f, 0.3f};
    ck_assert_int_eq(cg_optimizer_step(opt, p, g, 3, NULL), CHARGAN_E_NUMERIC);
    assert_contains(chargan_optimizer_last_error(opt), "step size");
    ck_assert(p[0] == 1 && p[1] == 2 && p[2] == 3);
    ck_assert_uint_eq(opt->steps, 0);
    chargan_optimizer_free(opt);
}
END_TEST

START_TEST(step_rejects_bad_arguments)
{
    chargan_optimizer_config cfg = config(CHARGAN_ADAM, 0.01f, 0, 0);
    chargan_optimizer *opt = make(&cfg);
    float p[4] = {0}, g[4] = {1, 1, 1, 1};
    ck_assert_int_eq(cg_optimizer_step(NULL, p, g, 4, NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "opt is NULL");
    ck_assert_int_eq(cg_optimizer_step(opt, NULL, g, 4, NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_optimizer_last_error(opt), "params is NULL");
    ck_assert_int_eq(cg_optimizer_step(opt, p, NULL, 4, NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_optimizer_last_error(opt), "grads is NULL");
    ck_assert_int_eq(cg_optimizer_step(opt, p, g, 0, NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_optimizer_last_error(opt), "n is 0");
    ck_assert_uint_eq(opt->steps, 0);
    /* sized on the first step; another n is refused and nothing changes */
    ck_assert_int_eq(cg_optimizer_step(opt, p, g, 4, NULL), CHARGAN_OK);
    ck_assert_uint_eq(opt->n, 4);
    float before[4];
    memcpy(before, p, sizeof p);
    ck_assert_int_eq(cg_optimizer_step(opt, p, g, 3, NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_optimizer_last_error(opt), "sized for 4 parameters, got 3");
    ck_assert(memcmp(p, before, sizeof p) == 0);
    ck_assert_uint_eq(opt->steps, 1);
    chargan_optimizer_free(opt);
}
END_TEST

/* ---------------------------------------------------------------- the public handle */

START_TEST(config_init_sets_documented_defaults)
{
    chargan_optimizer_config cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    chargan_optimizer_config_init(&cfg, CHARGAN_RMSPROP);
    ck_assert_uint_eq(cfg.struct_size, sizeof cfg);
    ck_assert_int_eq(cfg.kind, CHARGAN_RMSPROP);
    ck_assert_float_eq(cfg.lr, 2e-3f);
    ck_assert_float_eq(cfg.beta1, 0.9f);
    ck_assert_float_eq(cfg.beta2, 0.999f);
    ck_assert_float_eq(cfg.eps, 1e-8f);
    ck_assert_float_eq(cfg.weight_decay, 0.0f);
    ck_assert_float_eq(cfg.momentum, 0.0f);
    ck_assert_float_eq(cfg.rho, 0.99f);
    ck_assert_float_eq(cfg.clip_norm, 0.0f);
    chargan_optimizer_config_init(NULL, CHARGAN_ADAM); /* no-op */
    for (int k = CHARGAN_ADAM; k <= CHARGAN_RMSPROP; k++) {
        chargan_optimizer_config_init(&cfg, (chargan_optimizer_kind)k);
        chargan_optimizer *opt = make(&cfg);
        chargan_optimizer_free(opt);
    }
    chargan_optimizer_free(NULL);
    ck_assert_str_eq(chargan_optimizer_last_error(NULL), "NULL optimizer");
}
END_TEST

/* Sets one float field of cfg by name. */
static void set_field(chargan_optimizer_config *cfg, const char *name, float value)
{
    if (!strcmp(name, "lr")) cfg->lr = value;
    else if (!strcmp(name, "beta1")) cfg->beta1 = value;
    else if (!strcmp(name, "beta2")) cfg->beta2 = value;
    else if (!strcmp(name, "eps")) cfg->eps = value;
    else if (!strcmp(name, "weight_decay")) cfg->weight_decay = value;
    else if (!strcmp(name, "momentum")) cfg->momentum = value;
    else if (!strcmp(name, "rho")) cfg->rho = value;
    else if (!strcmp(name, "clip_norm")) cfg->clip_norm = value;
    else ck_abort_msg("no field %s", name);
}

static const struct bad_value {
    const char *field;
    float value;
} bad_values[] = {
    {"lr", 0.0f},           {"lr", -1e-3f},         {"lr", NAN},          {"lr", INFINITY},
    {"beta1", -0.1f},       {"beta1", 1.0f},        {"beta1", NAN},       {"beta2", 1.0f},
    {"beta2", -1e-9f},      {"beta2", NAN},         {"eps", 0.0f},        {"eps", -1e-8f},
    {"eps", INFINITY},      {"eps", NAN},           {"weight_decay", -0.1f},
    {"weight_decay", NAN},  {"weight_decay", INFINITY}, {"momentum", 1.0f}, {"momentum", -0.5f},
    {"momentum", NAN},      {"rho", 1.0f},          {"rho", -0.01f},      {"rho", NAN},
    {"clip_norm", -1.0f},   {"clip_norm", NAN},     {"clip_norm", INFINITY},
};
#define N_BAD_VALUES (sizeof bad_values / sizeof bad_values[0])

START_TEST(new_rejects_every_invalid_field)
{
    chargan_optimizer *opt = (chargan_optimizer *)0x1;
    for (size_t k = 0; k < N_BAD_VALUES; k++) {
        chargan_optimizer_config cfg;
        chargan_optimizer_config_init(&cfg, CHARGAN_ADAM);
        set_field(&cfg, bad_values[k].field, bad_values[k].value);
        ck_assert_int_eq(chargan_optimizer_new(&cfg, &opt), CHARGAN_E_INVALID);
        char want[64];
        snprintf(want, sizeof want, "%s must be", bad_values[k].field);
        assert_contains(chargan_last_error(), want);
        ck_assert_ptr_eq(opt, (chargan_optimizer *)0x1);
    }
    /* edge values that are valid */
    chargan_optimizer_config cfg;
    chargan_optimizer_config_init(&cfg, CHARGAN_SGD);
    cfg.beta1 = 0.0f;
    cfg.beta2 = 0.0f;
    cfg.momentum = 0.0f;
    cfg.rho = 0.0f;
    cfg.weight_decay = 0.0f;
    cfg.clip_norm = 0.0f;
    cfg.lr = 1e-30f;
    ck_assert_int_eq(chargan_optimizer_new(&cfg, &opt), CHARGAN_OK);
    chargan_optimizer_free(opt);

    opt = (chargan_optimizer *)0x1;
    const int32_t bad_kinds[3] = {-1, 3, INT32_MAX};
    for (int k = 0; k < 3; k++) {
        chargan_optimizer_config_init(&cfg, CHARGAN_ADAM);
        cfg.kind = bad_kinds[k];
        ck_assert_int_eq(chargan_optimizer_new(&cfg, &opt), CHARGAN_E_INVALID);
        assert_contains(chargan_last_error(), "kind must be");
    }
    ck_assert_int_eq(chargan_optimizer_new(NULL, &opt), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "cfg is NULL");
    chargan_optimizer_config_init(&cfg, CHARGAN_ADAM);
    ck_assert_int_eq(chargan_optimizer_new(&cfg, NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "out is NULL");
    ck_assert_ptr_eq(opt, (chargan_optimizer *)0x1);
}
END_TEST

START_TEST(struct_size_is_checked)
{
    chargan_optimizer *opt = NULL;
    /* a caller with a newer, larger struct: accepted when the tail is zero */
    struct {
        chargan_optimizer_config cfg;
        uint32_t newer_field;
    } big;
    memset(&big, 0, sizeof big);
    chargan_optimizer_config_init(&big.cfg, CHARGAN_ADAM);
    big.cfg.struct_size = sizeof big;
    big.cfg.lr = 0.125f;
    ck_assert_int_eq(chargan_optimizer_new(&big.cfg, &opt), CHARGAN_OK);
    big.newer_field = 1;
    chargan_optimizer *opt2 = NULL;
    ck_assert_int_eq(chargan_optimizer_new(&big.cfg, &opt2), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "struct_size");
    ck_assert_ptr_null(opt2);
    /* too small */
    chargan_optimizer_config cfg;
    chargan_optimizer_config_init(&cfg, CHARGAN_ADAM);
    cfg.struct_size = 0;
    ck_assert_int_eq(chargan_optimizer_new(&cfg, &opt2), CHARGAN_E_INVALID);
    cfg.struct_size = offsetof(chargan_optimizer_config, clip_norm);
    ck_assert_int_eq(chargan_optimizer_new(&cfg, &opt2), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "struct_size");
    ck_assert_ptr_null(opt2);

    /* get_config: exact size */
    memset(&cfg, 0, sizeof cfg);
    cfg.struct_size = sizeof cfg;
    ck_assert_int_eq(chargan_optimizer_get_config(opt, &cfg), CHARGAN_OK);
    ck_assert_uint_eq(cfg.struct_size, sizeof cfg);
    ck_assert_float_eq(cfg.lr, 0.125f);
    ck_assert_float_eq(cfg.beta2, 0.999f);
    /* larger: our bytes copied, the caller's size kept, its tail untouched */
    memset(&big, 0, sizeof big);
    big.newer_field = 77;
    big.cfg.struct_size = sizeof big;
    ck_assert_int_eq(chargan_optimizer_get_config(opt, &big.cfg), CHARGAN_OK);
    ck_assert_uint_eq(big.cfg.struct_size, sizeof big);
    ck_assert_float_eq(big.cfg.lr, 0.125f);
    ck_assert_uint_eq(big.newer_field, 77);
    /* the first published size, which may lack the trailing padding */
    memset(&cfg, 0, sizeof cfg);
    cfg.struct_size = offsetof(chargan_optimizer_config, clip_norm) + sizeof(float);
    cfg.clip_norm = 9.0f;
    ck_assert_int_eq(chargan_optimizer_get_config(opt, &cfg), CHARGAN_OK);
    ck_assert_float_eq(cfg.clip_norm, 0.0f);
    /* too small */
    cfg.struct_size = 8;
    cfg.lr = 3.0f;
    ck_assert_int_eq(chargan_optimizer_get_config(opt, &cfg), CHARGAN_E_INVALID);
    assert_contains(chargan_optimizer_last_error(opt), "struct_size 8");
    ck_assert_float_eq(cfg.lr, 3.0f);
    ck_assert_int_eq(chargan_optimizer_get_config(NULL, &cfg), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "opt is NULL");
    ck_assert_int_eq(chargan_optimizer_get_config(opt, NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "cfg is NULL");
    chargan_optimizer_free(opt);
}
END_TEST

START_TEST(set_lr_and_steps)
{
    chargan_optimizer_config cfg = config(CHARGAN_SGD, 0.5f, 0, 0);
    chargan_optimizer *opt = make(&cfg);
    ck_assert_int_eq(chargan_optimizer_set_lr(opt, 0.25f), CHARGAN_OK);
    float p[1] = {1.0f}, g[1] = {1.0f};
    ck_assert_int_eq(cg_optimizer_step(opt, p, g, 1, NULL), CHARGAN_OK);
    ck_assert_float_eq(p[0], 0.75f); /* the new rate is used */
    const float bad[3] = {0.0f, -1.0f, NAN};
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(chargan_optimizer_set_lr(opt, bad[k]), CHARGAN_E_INVALID);
        assert_contains(chargan_optimizer_last_error(opt), "lr must be finite and > 0");
    }
    ck_assert_int_eq(chargan_optimizer_set_lr(opt, INFINITY), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_optimizer_get_config(opt, &cfg), CHARGAN_OK);
    ck_assert_float_eq(cfg.lr, 0.25f);
    ck_assert_int_eq(chargan_optimizer_set_lr(NULL, 0.1f), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "opt is NULL");
    uint64_t steps = 99;
    ck_assert_int_eq(chargan_optimizer_steps(opt, &steps), CHARGAN_OK);
    ck_assert_uint_eq(steps, 1);
    ck_assert_int_eq(chargan_optimizer_steps(NULL, &steps), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "opt is NULL");
    ck_assert_int_eq(chargan_optimizer_steps(opt, NULL), CHARGAN_E_INVALID);
    assert_contains(chargan_last_error(), "steps is NULL");
    ck_assert_uint_eq(steps, 1);
    chargan_optimizer_free(opt);
}
END_TEST

/* ---------------------------------------------------------------- serialisation */

/* Every kind of state: Adam (m, v), SGD without state, SGD with velocity,
 * RMSprop (v), RMSprop with momentum (m, v). */
static chargan_optimizer_config state_config(int which)
{
    switch (which) {
    case 0: {
        chargan_optimizer_config c = config(CHARGAN_ADAM, 0.01f, 0, 0.01f);
        c.clip_norm = 2.0f;
        return c;
    }
    case 1: return config(CHARGAN_SGD, 0.1f, 0, 0);
    case 2: return config(CHARGAN_SGD, 0.1f, 0.9f, 0.001f);
    case 3: return config(CHARGAN_RMSPROP, 0.01f, 0, 0);
    default: return config(CHARGAN_RMSPROP, 0.01f, 0.5f, 0.01f);
    }
}
#define N_STATE_CONFIGS 5

enum { RT_N = 11 };

static void random_grads(cg_rng *rng, float *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = 3.0f * noise(rng);
}

/* An optimizer of config which after `steps` steps from a fixed start, with
 * its parameters in p. */
static chargan_optimizer *trained(int which, int steps, float p[RT_N], cg_rng *rng)
{
    chargan_optimizer_config cfg = state_config(which);
    chargan_optimizer *opt = make(&cfg);
    cg_rng_seed(rng, 1234);
    for (int i = 0; i < RT_N; i++)
        p[i] = noise(rng);
    float g[RT_N];
    for (int s = 0; s < steps; s++) {
        random_grads(rng, g, RT_N);
        ck_assert_int_eq(cg_optimizer_step(opt, p, g, RT_N, NULL), CHARGAN_OK);
    }
    return opt;
}

/* a and b take the same further steps; their parameters stay bitwise equal. */
static void continue_identically(chargan_optimizer *a, chargan_optimizer *b, float *pa, float *pb,
                                 cg_rng *rng)
{
    float ga[RT_N], gb[RT_N];
    for (int s = 0; s < 5; s++) {
        random_grads(rng, ga, RT_N);
        memcpy(gb, ga, sizeof gb);
        double na, nb;
        ck_assert_int_eq(cg_optimizer_step(a, pa, ga, RT_N, &na), CHARGAN_OK);
        ck_assert_int_eq(cg_optimizer_step(b, pb, gb, RT_N, &nb), CHARGAN_OK);
        ck_assert(na == nb);
        ck_assert(memcmp(pa, pb, RT_N * sizeof(float)) == 0);
    }
    ck_assert_uint_eq(a->steps, b->steps);
}

/* Field by field: padding bytes need not agree. */
static void assert_same_config(const chargan_optimizer_config *a, const chargan_optimizer_config *b)
{
    ck_assert_uint_eq(a->struct_size, b->struct_size);
    ck_assert_int_eq(a->kind, b->kind);
    ck_assert(a->lr == b->lr && a->beta1 == b->beta1 && a->beta2 == b->beta2);
    ck_assert(a->eps == b->eps && a->weight_decay == b->weight_decay);
    ck_assert(a->momentum == b->momentum && a->rho == b->rho && a->clip_norm == b->clip_norm);
}

START_TEST(write_read_round_trip_continues_bitwise)
{
    for (int which = 0; which < N_STATE_CONFIGS; which++) {
        for (int steps = 0; steps <= 3; steps += 3) {
            cg_rng rng;
            float p[RT_N], p2[RT_N];
            chargan_optimizer *opt = trained(which, steps, p, &rng);
            cg_writer w;
            cg_writer_init(&w);
            cg_optimizer_write(opt, &w);
            ck_assert(!w.failed);
            cg_reader r;
            cg_reader_init(&r, w.data, w.size);
            chargan_optimizer *back = NULL;
            cg_error err = {{0}};
            ck_assert_int_eq(cg_optimizer_read(&r, RT_N, &err, &back), CHARGAN_OK);
            ck_assert_uint_eq(cg_reader_left(&r), 0);
            ck_assert_uint_eq(back->steps, (uint64_t)steps);
            assert_same_config(&back->cfg, &opt->cfg);
            /* writing the copy gives the same bytes */
            cg_writer w2;
            cg_writer_init(&w2);
            cg_optimizer_write(back, &w2);
            ck_assert_uint_eq(w2.size, w.size);
            ck_assert(memcmp(w2.data, w.data, w.size) == 0);
            cg_writer_free(&w2);
            /* expected_n 0 accepts any size */
            cg_reader_init(&r, w.data, w.size);
            chargan_optimizer *any = NULL;
            ck_assert_int_eq(cg_optimizer_read(&r, 0, &err, &any), CHARGAN_OK);
            chargan_optimizer_free(any);

            memcpy(p2, p, sizeof p);
            continue_identically(opt, back, p, p2, &rng);
            chargan_optimizer_free(back);
            chargan_optimizer_free(opt);
            cg_writer_free(&w);
        }
    }
}
END_TEST

START_TEST(clone_continues_bitwise)
{
    for (int which = 0; which < N_STATE_CONFIGS; which++) {
        for (int steps = 0; steps <= 2; steps += 2) {
            cg_rng rng;
            float p[RT_N], p2[RT_N];
            chargan_optimizer *opt = trained(which, steps, p, &rng);
            chargan_optimizer *copy = cg_optimizer_clone(opt);
            ck_assert_ptr_nonnull(copy);
            ck_assert(copy->m == NULL || copy->m != opt->m);
            memcpy(p2, p, sizeof p);
            continue_identically(opt, copy, p, p2, &rng);
            chargan_optimizer_free(copy);
            chargan_optimizer_free(opt);
        }
    }
    ck_assert_ptr_null(cg_optimizer_clone(NULL));
    assert_contains(chargan_last_error(), "opt is NULL");
}
END_TEST

static uint8_t *serialised(int which, int steps, size_t *size)
{
    cg_rng rng;
    float p[RT_N];
    chargan_optimizer *opt = trained(which, steps, p, &rng);
    cg_writer w;
    cg_writer_init(&w);
    cg_optimizer_write(opt, &w);
    ck_assert(!w.failed);
    chargan_optimizer_free(opt);
    *size = w.size;
    return w.data; /* cg_free */
}

static chargan_status read_bytes(const uint8_t *data, size_t size, size_t expected_n,
                                 cg_error *err)
{
    cg_reader r;
    cg_reader_init(&r, data, size);
    chargan_optimizer *out = (chargan_optimizer *)0x1;
    chargan_status st = cg_optimizer_read(&r, expected_n, err, &out);
    if (st == CHARGAN_OK) {
        chargan_optimizer_free(out);
    } else {
        ck_assert_ptr_eq(out, (chargan_optimizer *)0x1);
        ck_assert_str_eq(err->msg, chargan_last_error());
    }
    return st;
}

START_TEST(truncation_at_every_offset_fails_cleanly)
{
    for (int which = 0; which < N_STATE_CONFIGS; which++) {
        size_t size;
        uint8_t *data = serialised(which, 2, &size);
        cg_error err = {{0}};
        ck_assert_int_eq(read_bytes(data, size, RT_N, &err), CHARGAN_OK);
        for (size_t cut = 0; cut < size; cut++) {
            ck_assert_int_eq(read_bytes(data, cut, RT_N, &err), CHARGAN_E_FORMAT);
            ck_assert(strstr(err.msg, "truncated") || strstr(err.msg, "bytes are left"));
        }
        cg_free(data);
    }
    /* the message names the field */
    size_t size;
    uint8_t *data = serialised(0, 2, &size);
    cg_error err = {{0}};
    ck_assert_int_eq(read_bytes(data, 2, RT_N, &err), CHARGAN_E_FORMAT);
    assert_contains(err.msg, "truncated at byte 0 reading version");
    ck_assert_int_eq(read_bytes(data, 10, RT_N, &err), CHARGAN_E_FORMAT);
    assert_contains(err.msg, "reading lr");
    ck_assert_int_eq(read_bytes(data, 60, RT_N, &err), CHARGAN_E_FORMAT);
    assert_contains(err.msg, "n at byte 48 is 11, which needs 2 arrays");
    cg_free(data);
}
END_TEST

/* Byte offsets of the serialised fields. */
enum {
    OFF_VERSION = 0, OFF_KIND = 4, OFF_LR = 8, OFF_CLIP = 36, OFF_STEPS = 40, OFF_N = 48,
    OFF_M = 56
};

static void put_u32_at(uint8_t *d, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        d[off + i] = (uint8_t)(v >> (8 * i));
}

static void put_u64_at(uint8_t *d, size_t off, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        d[off + i] = (uint8_t)(v >> (8 * i));
}

static void put_f32_at(uint8_t *d, size_t off, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32_at(d, off, v);
}

START_TEST(corrupt_fields_are_rejected)
{
    size_t size;
    uint8_t *orig = serialised(0, 2, &size); /* Adam: m and v */
    uint8_t *d = malloc(size);
    cg_error err = {{0}};
#define RESET() memcpy(d, orig, size)

    RESET();
    put_u32_at(d, OFF_VERSION, 2);
    ck_assert_int_eq(read_bytes(d, size, RT_N, &err), CHARGAN_E_UNSUPPORTED);
    assert_contains(err.msg, "version at byte 0 is 2");

    const uint32_t kinds[2] = {3, 0x80000000u};
    for (int k = 0; k < 2; k++) {
        RESET();
        put_u32_at(d, OFF_KIND, kinds[k]);
        ck_assert_int_eq(read_bytes(d, size, RT_N, &err), CHARGAN_E_UNSUPPORTED);
        assert_contains(err.msg, "kind at byte 4");
    }

    /* every float field, every way it can be wrong */
    static const char *const order[8] = {"lr",           "beta1",    "beta2", "eps",
                                         "weight_decay", "momentum", "rho",   "clip_norm"};
    for (size_t k = 0; k < N_BAD_VALUES; k++) {
        size_t f = 0;
        while (strcmp(order[f], bad_values[k].field))
            f++;
        RESET();
        put_f32_at(d, OFF_LR + 4 * f, bad_values[k].value);
        ck_assert_int_eq(read_bytes(d, size, RT_N, &err), CHARGAN_E_FORMAT);
        char want[64];
        snprintf(want, sizeof want, "%s at byte %zu must be", order[f], OFF_LR + 4 * f);
        assert_contains(err.msg, want);
    }

    /* n against the model */
    RESET();
    ck_assert_int_eq(read_bytes(d, size, RT_N + 1, &err), CHARGAN_E_FORMAT);
    assert_contains(err.msg, "n at byte 48 is 11, expected 12");
    /* n against the bytes there, before allocating */
    const uint64_t huge[3] = {RT_N + 1, (uint64_t)1 << 40, UINT64_MAX / 2};
    for (int k = 0; k < 3; k++) {
        RESET();
        put_u64_at(d, OFF_N, huge[k]);
        cg_alloc_fail_after(0); /* proves nothing is allocated */
        ck_assert_int_eq(read_bytes(d, size, 0, &err), CHARGAN_E_FORMAT);
        cg_alloc_fail_after(-1);
        /* a 32-bit size_t cannot hold the larger ones at all */
        assert_contains(err.msg, huge[k] > SIZE_MAX ? "too large for this machine"
                                                    : "bytes are left");
    }
#if SIZE_MAX < UINT64_MAX
    RESET();
    put_u64_at(d, OFF_N, (uint64_t)SIZE_MAX + 1);
    ck_assert_int_eq(read_bytes(d, size, 0, &err), CHARGAN_E_FORMAT);
    assert_contains(err.msg, "too large for this machine");
#endif
    /* steps and n disagree */
    RESET();
    put_u64_at(d, OFF_STEPS, 0);
    ck_assert_int_eq(read_bytes(d, size, RT_N, &err), CHARGAN_E_FORMAT);
    assert_contains(err.msg, "after 0 steps");
    RESET();
    put_u64_at(d, OFF_N, 0);
    ck_assert_int_eq(read_bytes(d, size, RT_N, &err), CHARGAN_E_FORMAT);
    assert_contains(err.msg, "n at byte 48 is 0 after 2 steps");

    /* state values */
    RESET();
    put_f32_at(d, OFF_M + 4 * 3, NAN);
    ck_assert_int_eq(read_bytes(d, size, RT_N, &err), CHARGAN_E_FORMAT);
    assert_contains(err.msg, "m[3] at byte 68 must be finite");
    RESET();
    put_f32_at(d, OFF_M + 4 * RT_N + 4 * 5, -1.0f);
    ck_assert_int_eq(read_bytes(d, size, RT_N, &err), CHARGAN_E_FORMAT);
    assert_contains(err.msg, "v[5] at byte 120 must be finite and >= 0");
    RESET();
    put_f32_at(d, OFF_M + 4 * RT_N, INFINITY);
    ck_assert_int_eq(read_bytes(d, size, RT_N, &err), CHARGAN_E_FORMAT);
    assert_contains(err.msg, "v[0]");
    /* a negative moment or velocity is fine: only the square average must be >= 0 */
    RESET();
    put_f32_at(d, OFF_M, -5.0f);
    ck_assert_int_eq(read_bytes(d, size, RT_N, &err), CHARGAN_OK);

    /* NULL arguments */
    cg_reader r;
    cg_reader_init(&r, orig, size);
    chargan_optimizer *out = NULL;
    ck_assert_int_eq(cg_optimizer_read(NULL, 0, &err, &out), CHARGAN_E_INVALID);
    assert_contains(err.msg, "r is NULL");
    ck_assert_int_eq(cg_optimizer_read(&r, 0, &err, NULL), CHARGAN_E_INVALID);
    assert_contains(err.msg, "out is NULL");
    ck_assert_int_eq(cg_optimizer_read(&r, 0, NULL, &out), CHARGAN_OK); /* err may be NULL */
    chargan_optimizer_free(out);
#undef RESET
    free(d);
    cg_free(orig);
}
END_TEST

START_TEST(state_without_arrays_reads_any_n)
{
    /* SGD without momentum keeps no arrays: n is checked only against the model */
    size_t size;
    uint8_t *d = serialised(1, 2, &size);
    ck_assert_uint_eq(size, OFF_M);
    cg_error err = {{0}};
    ck_assert_int_eq(read_bytes(d, size, RT_N, &err), CHARGAN_OK);
    ck_assert_int_eq(read_bytes(d, size, RT_N + 1, &err), CHARGAN_E_FORMAT);
    cg_free(d);
}
END_TEST

/* ---------------------------------------------------------------- allocation failures */

START_TEST(allocation_failures_return_nomem)
{
    chargan_optimizer_config cfg = config(CHARGAN_RMSPROP, 0.01f, 0.5f, 0);
    chargan_optimizer *opt = NULL;
    /* new */
    cg_alloc_fail_after(0);
    ck_assert_int_eq(chargan_optimizer_new(&cfg, &opt), CHARGAN_E_NOMEM);
    cg_alloc_fail_after(-1);
    ck_assert_ptr_null(opt);
    assert_contains(chargan_last_error(), "out of memory");

    /* the first step: each of its two allocations */
    for (long k = 0;; k++) {
        opt = make(&cfg);
        float p[5] = {1, 2, 3, 4, 5}, g[5] = {1, 1, 1, 1, 1};
        cg_alloc_fail_after(k);
        chargan_status st = cg_optimizer_step(opt, p, g, 5, NULL);
        cg_alloc_fail_after(-1);
        if (st == CHARGAN_OK) {
            ck_assert_int_eq(k, 2);
            chargan_optimizer_free(opt);
            break;
        }
        ck_assert_int_eq(st, CHARGAN_E_NOMEM);
        assert_contains(chargan_optimizer_last_error(opt), "out of memory");
        ck_assert_uint_eq(opt->n, 0);
        ck_assert_ptr_null(opt->m);
        ck_assert_ptr_null(opt->v);
        ck_assert_uint_eq(opt->steps, 0);
        ck_assert_float_eq(p[0], 1.0f);
        /* a later step with memory succeeds */
        ck_assert_int_eq(cg_optimizer_step(opt, p, g, 5, NULL), CHARGAN_OK);
        chargan_optimizer_free(opt);
    }

    /* read and clone: every allocation of each */
    for (int which = 0; which < N_STATE_CONFIGS; which++) {
        cg_rng rng;
        float p[RT_N];
        chargan_optimizer *src = trained(which, 2, p, &rng);
        cg_writer w;
        cg_writer_init(&w);
        cg_optimizer_write(src, &w);
        ck_assert(!w.failed);
        long k;
        for (k = 0;; k++) {
            cg_reader r;
            cg_reader_init(&r, w.data, w.size);
            chargan_optimizer *back = (chargan_optimizer *)0x1;
            cg_error err = {{0}};
            cg_alloc_fail_after(k);
            chargan_status st = cg_optimizer_read(&r, RT_N, &err, &back);
            cg_alloc_fail_after(-1);
            if (st == CHARGAN_OK) {
                chargan_optimizer_free(back);
                break;
            }
            ck_assert_int_eq(st, CHARGAN_E_NOMEM);
            assert_contains(err.msg, "out of memory");
            ck_assert_ptr_eq(back, (chargan_optimizer *)0x1);
        }
        ck_assert_int_eq(k, 1 + (src->m != NULL) + (src->v != NULL));
        for (k = 0;; k++) {
            cg_alloc_fail_after(k);
            chargan_optimizer *copy = cg_optimizer_clone(src);
            cg_alloc_fail_after(-1);
            if (copy) {
                chargan_optimizer_free(copy);
                break;
            }
            assert_contains(chargan_last_error(), "out of memory");
        }
        ck_assert_int_eq(k, 1 + (src->m != NULL) + (src->v != NULL));
        cg_writer_free(&w);
        chargan_optimizer_free(src);
    }
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, adam_matches_torch);
    tcase_add_test(tc, sgd_matches_torch);
    tcase_add_test(tc, rmsprop_matches_torch);
    tcase_add_test(tc, long_runs_follow_the_formulas);
    tcase_add_test(tc, clipping_scales_to_clip_norm);
    tcase_add_test(tc, pieces_match_the_whole_step);
    tcase_add_test(tc, quadratic_converges);
    tcase_add_test(tc, non_finite_gradient_changes_nothing);
    tcase_add_test(tc, overflowing_gradient_changes_nothing);
    tcase_add_test(tc, step_rejects_bad_arguments);
    tcase_add_test(tc, config_init_sets_documented_defaults);
    tcase_add_test(tc, new_rejects_every_invalid_field);
    tcase_add_test(tc, struct_size_is_checked);
    tcase_add_test(tc, set_lr_and_steps);
    tcase_add_test(tc, write_read_round_trip_continues_bitwise);
    tcase_add_test(tc, clone_continues_bitwise);
    tcase_add_test(tc, truncation_at_every_offset_fails_cleanly);
    tcase_add_test(tc, corrupt_fields_are_rejected);
    tcase_add_test(tc, state_without_arrays_reads_any_n);
    tcase_add_test(tc, allocation_failures_return_nomem);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(optim_suite)
