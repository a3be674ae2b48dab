/* test_lstm.c - the LSTM layer: forward against an independent double
 * precision reference, backward against central finite differences (every
 * parameter and input, with and without recurrent dropout, one and two stacked
 * layers), step-wise and inference forwards against the sequence forward, and
 * the cache's allocation and argument errors. */
#include "test_common.h"
#include "kernels.h"
#include "layers.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

static void fill_uniform(cg_rng *rng, float *p, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        p[i] = scale * (2.0f * cg_rng_uniform(rng) - 1.0f);
}

/* A layer with its own parameter and gradient arrays. */
typedef struct layer {
    cg_lstm_layer L;
    float *w_ih, *w_hh, *b, *dw_ih, *dw_hh, *db;
} layer;

static void layer_init(layer *l, cg_rng *rng, int in, int H, float scale)
{
    const size_t G = 4 * (size_t)H;
    l->w_ih = falloc((size_t)in * G);
    l->w_hh = falloc((size_t)H * G);
    l->b = falloc(G);
    l->dw_ih = falloc((size_t)in * G);
    l->dw_hh = falloc((size_t)H * G);
    l->db = falloc(G);
    fill_uniform(rng, l->w_ih, (size_t)in * G, scale);
    fill_uniform(rng, l->w_hh, (size_t)H * G, scale);
    fill_uniform(rng, l->b, G, scale);
    l->L = (cg_lstm_layer){.in = in, .hidden = H, .w_ih = l->w_ih, .w_hh = l->w_hh, .b = l->b,
                           .dw_ih = l->dw_ih, .dw_hh = l->dw_hh, .db = l->db};
}

static void layer_zero_grads(layer *l)
{
    const size_t G = 4 * (size_t)l->L.hidden;
    memset(l->dw_ih, 0, (size_t)l->L.in * G * sizeof(float));
    memset(l->dw_hh, 0, (size_t)l->L.hidden * G * sizeof(float));
    memset(l->db, 0, G * sizeof(float));
}

static void layer_free(layer *l)
{
    free(l->w_ih);
    free(l->w_hh);
    free(l->b);
    free(l->dw_ih);
    free(l->dw_hh);
    free(l->db);
}

static void cache_init_ok(cg_lstm_cache *c, int T, int B, int in, int H, bool dropout)
{
    ck_assert_int_eq(cg_lstm_cache_init(c, T, B, in, H, dropout), CHARGAN_OK);
}

/* A recurrent-dropout mask as the model makes it: 0 or 1/(1-p). */
static void fill_mask(cg_rng *rng, float *m, size_t n, float p)
{
    for (size_t i = 0; i < n; i++)
        m[i] = cg_rng_uniform(rng) < p ? 0.0f : 1.0f / (1.0f - p);
}

static double dot(const double *r, const float *v, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += r[i] * v[i];
    return s;
}

/* Gradient comparison.  The finite difference is taken in float with step
 * eps = 1e-2 on values of magnitude <= ~1.  Two errors compete: the float
 * rounding of the outputs (relative 6e-8, summed over the functional and
 * divided by 2 eps) and the truncation error (eps^2/6 times a third
 * derivative, O(1) for compositions of sigmoid and tanh: ~2e-5).  Measured
 * over the shapes here the worst error is 0.15 of the tolerance below with
 * eps = 1e-2, and 0.35 with eps = 5e-3 or 2e-2 (rounding, resp. truncation,
 * taking over), so 1e-2 is the sweet spot.  Tolerance: 2e-4 absolute plus
 * 2e-3 relative, 6x the worst seen, and far below the O(1) relative error
 * that a wrong or missing term gives (checked by breaking terms on purpose). */
#define GC_EPS 1e-2f
#define GC_ATOL 2e-4
#define GC_RTOL 2e-3

static void check_close(const char *what, size_t k, double analytic, double numeric)
{
    const double err = fabs(analytic - numeric);
    const double tol = GC_ATOL + GC_RTOL * fmax(fabs(analytic), fabs(numeric));
    ck_assert_msg(err <= tol, "%s[%zu]: analytic %.8g vs numeric %.8g", what, k, analytic,
                  numeric);
}

/* ---------------------------------------------------------------- one layer */

/* One gradient-check problem: a layer, its inputs and a fixed random linear
 * functional L = r_out . outputs + r_h . h_T + r_c . c_T. */
typedef struct problem {
    int T, B, in, H;
    bool masked;
    layer l;
    cg_lstm_cache c;
    float *x, *h0, *c0;
    double *r_out, *r_h, *r_c;
} problem;

static double *dalloc_random(cg_rng *rng, size_t n)
{
    double *p = calloc(n, sizeof(double));
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = 2.0 * cg_rng_uniform(rng) - 1.0;
    return p;
}

static void problem_init(problem *p, cg_rng *rng, int T, int B, int in, int H, bool masked,
                         int extra_capacity)
{
    memset(p, 0, sizeof *p);
    p->T = T;
    p->B = B;
    p->in = in;
    p->H = H;
    p->masked = masked;
    layer_init(&p->l, rng, in, H, 0.5f);
    /* Capacity above T checks that only t_used steps are used. */
    cache_init_ok(&p->c, T + extra_capacity, B, in, H, masked);
    const size_t bh = (size_t)B * (size_t)H;
    if (masked)
        fill_mask(rng, p->c.mask, bh, 0.3f);
    p->x = falloc((size_t)T * B * in);
    p->h0 = falloc(bh);
    p->c0 = falloc(bh);
    fill_uniform(rng, p->x, (size_t)T * B * in, 1.0f);
    fill_uniform(rng, p->h0, bh, 0.5f);
    fill_uniform(rng, p->c0, bh, 0.5f);
    p->r_out = dalloc_random(rng, (size_t)T * bh);
    p->r_h = dalloc_random(rng, bh);
    p->r_c = dalloc_random(rng, bh);
}

static void problem_free(problem *p)
{
    layer_free(&p->l);
    cg_lstm_cache_free(&p->c);
    free(p->x);
    free(p->h0);
    free(p->c0);
    free(p->r_out);
    free(p->r_h);
    free(p->r_c);
}

static double problem_loss(problem *p)
{
    const size_t bh = (size_t)p->B * (size_t)p->H, T = (size_t)p->T;
    cg_lstm_forward(&p->l.L, &p->c, p->T, p->x, p->h0, p->c0, p->masked);
    return dot(p->r_out, p->c.h + bh, T * bh) + dot(p->r_h, p->c.h + T * bh, bh) +
           dot(p->r_c, p->c.c + T * bh, bh);
}

static float *to_float(const double *d, size_t n)
{
    float *f = falloc(n);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)d[i];
    return f;
}

/* Central differences of loss() in every element of v[0..n), compared with g. */
static void check_array(const char *what, float *v, size_t n, const float *g,
                        double (*loss)(void *), void *ctx)
{
    for (size_t k = 0; k < n; k++) {
        const float v0 = v[k], vp = v0 + GC_EPS, vm = v0 - GC_EPS;
        v[k] = vp;
        const double lp = loss(ctx);
        v[k] = vm;
        const double lm = loss(ctx);
        v[k] = v0;
        check_close(what, k, g[k], (lp - lm) / ((double)vp - (double)vm));
    }
}

static double problem_loss_cb(void *ctx)
{
    return problem_loss(ctx);
}

static void gradcheck_one_layer(cg_rng *rng, int T, int B, int in, int H, bool masked,
                                int extra_capacity)
{
    problem p;
    problem_init(&p, rng, T, B, in, H, masked, extra_capacity);
    const size_t bh = (size_t)B * H, G = 4 * (size_t)H, nx = (size_t)T * B * in;
    float *r_out = to_float(p.r_out, (size_t)T * bh), *r_h = to_float(p.r_h, bh),
          *r_c = to_float(p.r_c, bh);
    /* The double r and its float copy must define the same functional. */
    for (size_t i = 0; i < (size_t)T * bh; i++)
        p.r_out[i] = r_out[i];
    for (size_t i = 0; i < bh; i++) {
        p.r_h[i] = r_h[i];
        p.r_c[i] = r_c[i];
    }

    float *dx = falloc(nx), *dh0 = falloc(bh), *dc0 = falloc(bh);
    layer_zero_grads(&p.l);
    problem_loss(&p);
    ck_assert_int_eq(p.c.t_used, T);
    ck_assert(p.c.masked == masked);
    cg_lstm_backward(&p.l.L, &p.c, p.x, r_out, r_h, r_c, dx, dh0, dc0);

    check_array("dw_ih", p.l.w_ih, (size_t)in * G, p.l.dw_ih, problem_loss_cb, &p);
    check_array("dw_hh", p.l.w_hh, (size_t)H * G, p.l.dw_hh, problem_loss_cb, &p);
    check_array("db", p.l.b, G, p.l.db, problem_loss_cb, &p);
    check_array("dx", p.x, nx, dx, problem_loss_cb, &p);
    check_array("dh0", p.h0, bh, dh0, problem_loss_cb, &p);
    check_array("dc0", p.c0, bh, dc0, problem_loss_cb, &p);

    free(r_out);
    free(r_h);
    free(r_c);
    free(dx);
    free(dh0);
    free(dc0);
    problem_free(&p);
}

START_TEST(gradcheck_fixed_shapes)
{
    cg_rng rng;
    cg_rng_seed(&rng, 1000 + (uint64_t)_i);
    static const int shapes[][4] = {{1, 1, 1, 1}, {1, 1, 3, 2}, {1, 3, 2, 3}, {4, 1, 2, 3},
                                    {3, 2, 4, 3}, {5, 3, 3, 4}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *d = shapes[s];
        gradcheck_one_layer(&rng, d[0], d[1], d[2], d[3], _i == 1, (int)(s % 2));
    }
}
END_TEST

START_TEST(gradcheck_random_shapes)
{
    cg_rng rng;
    cg_rng_seed(&rng, 77);
    for (int s = 0; s < 12; s++) {
        const int T = 1 + (int)cg_rng_below(&rng, 6), B = 1 + (int)cg_rng_below(&rng, 4),
                  in = 1 + (int)cg_rng_below(&rng, 5), H = 1 + (int)cg_rng_below(&rng, 5);
        gradcheck_one_layer(&rng, T, B, in, H, s % 2 == 1, (int)cg_rng_below(&rng, 3));
    }
}
END_TEST

/* Only some gradient inputs: NULL dh_out, dhT, dcT mean zero; NULL outputs
 * and NULL parameter gradients are skipped; the rest is unchanged. */
START_TEST(backward_null_arguments)
{
    cg_rng rng;
    cg_rng_seed(&rng, 5);
    const int T = 3, B = 2, in = 3, H = 4;
    const size_t bh = (size_t)B * H, G = 4 * (size_t)H, nx = (size_t)T * B * in;
    problem p;
    problem_init(&p, &rng, T, B, in, H, false, 0);
    float *zeros = falloc((size_t)T * bh);
    float *dx_a = falloc(nx), *dx_b = falloc(nx), *dh0_a = falloc(bh), *dh0_b = falloc(bh);
    float *dc0_a = falloc(bh), *dc0_b = falloc(bh);
    float *dwih = falloc((size_t)in * G), *dwhh = falloc((size_t)H * G), *db = falloc(G);

    /* Explicit zeros everywhere. */
    layer_zero_grads(&p.l);
    problem_loss(&p);
    float *r_h = to_float(p.r_h, bh);
    cg_lstm_backward(&p.l.L, &p.c, p.x, zeros, r_h, zeros, dx_a, dh0_a, dc0_a);
    memcpy(dwih, p.l.dw_ih, (size_t)in * G * sizeof(float));
    memcpy(dwhh, p.l.dw_hh, (size_t)H * G * sizeof(float));
    memcpy(db, p.l.db, G * sizeof(float));
    /* NULLs. */
    layer_zero_grads(&p.l);
    problem_loss(&p);
    cg_lstm_backward(&p.l.L, &p.c, p.x, NULL, r_h, NULL, dx_b, dh0_b, dc0_b);
    ck_assert(memcmp(dx_a, dx_b, nx * sizeof(float)) == 0);
    ck_assert(memcmp(dh0_a, dh0_b, bh * sizeof(float)) == 0);
    ck_assert(memcmp(dc0_a, dc0_b, bh * sizeof(float)) == 0);
    ck_assert(memcmp(dwih, p.l.dw_ih, (size_t)in * G * sizeof(float)) == 0);
    ck_assert(memcmp(dwhh, p.l.dw_hh, (size_t)H * G * sizeof(float)) == 0);
    ck_assert(memcmp(db, p.l.db, G * sizeof(float)) == 0);

    /* Weight gradients accumulate: a second backward doubles them. */
    problem_loss(&p);
    cg_lstm_backward(&p.l.L, &p.c, p.x, NULL, r_h, NULL, NULL, NULL, NULL);
    for (size_t k = 0; k < G; k++)
        ck_assert_float_eq_tol(p.l.db[k], 2.0f * db[k], 1e-6f * (1.0f + fabsf(db[k])));

    /* No parameter gradients, no outputs: nothing written, nothing crashes. */
    cg_lstm_layer frozen = p.l.L;
    frozen.dw_ih = frozen.dw_hh = frozen.db = NULL;
    problem_loss(&p);
    cg_lstm_backward(&frozen, &p.c, p.x, NULL, NULL, NULL, NULL, NULL, NULL);

    /* NULL h0, c0 are zeros. */
    memset(p.h0, 0, bh * sizeof(float));
    memset(p.c0, 0, bh * sizeof(float));
    problem_loss(&p);
    float *out_a = falloc((size_t)T * bh);
    memcpy(out_a, p.c.h + bh, (size_t)T * bh * sizeof(float));
    cg_lstm_forward(&p.l.L, &p.c, T, p.x, NULL, NULL, false);
    ck_assert(memcmp(out_a, p.c.h + bh, (size_t)T * bh * sizeof(float)) == 0);

    free(out_a);
    free(r_h);
    free(zeros);
    free(dx_a);
    free(dx_b);
    free(dh0_a);
    free(dh0_b);
    free(dc0_a);
    free(dc0_b);
    free(dwih);
    free(dwhh);
    free(db);
    problem_free(&p);
}
END_TEST

/* ---------------------------------------------------------------- two stacked layers */

typedef struct stack {
    int T, B, in, H1, H2;
    bool masked;
    layer l1, l2;
    cg_lstm_cache c1, c2;
    float *x, *h01, *c01, *h02, *c02;
    float *r_out, *r_h1, *r_c1, *r_h2, *r_c2; /* float values, used in double */
} stack;

static float *frandom(cg_rng *rng, size_t n, float scale)
{
    float *p = falloc(n);
    fill_uniform(rng, p, n, scale);
    return p;
}

static double fdot(const float *r, const float *v, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)r[i] * v[i];
    return s;
}

/* L = r_out . (top outputs) + final-state terms of both layers. */
static double stack_loss(void *ctx)
{
    stack *s = ctx;
    const size_t T = (size_t)s->T, b1 = (size_t)s->B * s->H1, b2 = (size_t)s->B * s->H2;
    cg_lstm_forward(&s->l1.L, &s->c1, s->T, s->x, s->h01, s->c01, s->masked);
    cg_lstm_forward(&s->l2.L, &s->c2, s->T, s->c1.h + b1, s->h02, s->c02, s->masked);
    return fdot(s->r_out, s->c2.h + b2, T * b2) + fdot(s->r_h2, s->c2.h + T * b2, b2) +
           fdot(s->r_c2, s->c2.c + T * b2, b2) + fdot(s->r_h1, s->c1.h + T * b1, b1) +
           fdot(s->r_c1, s->c1.c + T * b1, b1);
}

static void gradcheck_stack(cg_rng *rng, int T, int B, int in, int H1, int H2, bool masked)
{
    stack s = {.T = T, .B = B, .in = in, .H1 = H1, .H2 = H2, .masked = masked};
    const size_t b1 = (size_t)B * H1, b2 = (size_t)B * H2, nx = (size_t)T * B * in;
    layer_init(&s.l1, rng, in, H1, 0.5f);
    layer_init(&s.l2, rng, H1, H2, 0.5f);
    cache_init_ok(&s.c1, T, B, in, H1, masked);
    cache_init_ok(&s.c2, T, B, H1, H2, masked);
    if (masked) {
        fill_mask(rng, s.c1.mask, b1, 0.25f);
        fill_mask(rng, s.c2.mask, b2, 0.25f);
    }
    s.x = frandom(rng, nx, 1.0f);
    s.h01 = frandom(rng, b1, 0.5f);
    s.c01 = frandom(rng, b1, 0.5f);
    s.h02 = frandom(rng, b2, 0.5f);
    s.c02 = frandom(rng, b2, 0.5f);
    s.r_out = frandom(rng, (size_t)T * b2, 1.0f);
    s.r_h1 = frandom(rng, b1, 1.0f);
    s.r_c1 = frandom(rng, b1, 1.0f);
    s.r_h2 = frandom(rng, b2, 1.0f);
    s.r_c2 = frandom(rng, b2, 1.0f);

    float *dx1 = falloc(nx), *dx2 = falloc((size_t)T * b1);
    float *dh01 = falloc(b1), *dc01 = falloc(b1), *dh02 = falloc(b2), *dc02 = falloc(b2);
    layer_zero_grads(&s.l1);
    layer_zero_grads(&s.l2);
    stack_loss(&s);
    /* The upper layer's input gradient is the lower layer's output gradient. */
    cg_lstm_backward(&s.l2.L, &s.c2, s.c1.h + b1, s.r_out, s.r_h2, s.r_c2, dx2, dh02, dc02);
    cg_lstm_backward(&s.l1.L, &s.c1, s.x, dx2, s.r_h1, s.r_c1, dx1, dh01, dc01);

    const size_t G1 = 4 * (size_t)H1, G2 = 4 * (size_t)H2;
    check_array("l1.dw_ih", s.l1.w_ih, (size_t)in * G1, s.l1.dw_ih, stack_loss, &s);
    check_array("l1.dw_hh", s.l1.w_hh, (size_t)H1 * G1, s.l1.dw_hh, stack_loss, &s);
    check_array("l1.db", s.l1.b, G1, s.l1.db, stack_loss, &s);
    check_array("l2.dw_ih", s.l2.w_ih, (size_t)H1 * G2, s.l2.dw_ih, stack_loss, &s);
    check_array("l2.dw_hh", s.l2.w_hh, (size_t)H2 * G2, s.l2.dw_hh, stack_loss, &s);
    check_array("l2.db", s.l2.b, G2, s.l2.db, stack_loss, &s);
    check_array("dx", s.x, nx, dx1, stack_loss, &s);
    check_array("l1.dh0", s.h01, b1, dh01, stack_loss, &s);
    check_array("l1.dc0", s.c01, b1, dc01, stack_loss, &s);
    check_array("l2.dh0", s.h02, b2, dh02, stack_loss, &s);
    check_array("l2.dc0", s.c02, b2, dc02, stack_loss, &s);

    float *bufs[] = {dx1, dx2, dh01, dc01, dh02, dc02, s.x, s.h01, s.c01, s.h02, s.c02,
                     s.r_out, s.r_h1, s.r_c1, s.r_h2, s.r_c2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    layer_free(&s.l1);
    layer_free(&s.l2);
    cg_lstm_cache_free(&s.c1);
    cg_lstm_cache_free(&s.c2);
}

START_TEST(gradcheck_two_stacked_layers)
{
    cg_rng rng;
    cg_rng_seed(&rng, 31);
    gradcheck_stack(&rng, 4, 2, 3, 3, 2, false);
    gradcheck_stack(&rng, 3, 3, 2, 2, 4, true);
    gradcheck_stack(&rng, 1, 1, 2, 3, 3, false);
    gradcheck_stack(&rng, 1, 1, 1, 1, 1, true);
}
END_TEST

/* ---------------------------------------------------------------- forward reference */

static double sigm(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* The LSTM straight from its equations, per element, in double, from the
 * same float parameters.  hs, cs: (T+1) x B x H, [0] the initial state. */
static void reference_forward(const layer *l, int T, int B, const float *x, const float *h0,
                              const float *c0, const float *mask, double *hs, double *cs)
{
    const int in = l->L.in, H = l->L.hidden, G = 4 * H;
    for (int k = 0; k < B * H; k++) {
        hs[k] = h0 ? h0[k] : 0.0;
        cs[k] = c0 ? c0[k] : 0.0;
    }
    for (int t = 0; t < T; t++) {
        for (int r = 0; r < B; r++) {
            const double *hp = hs + ((size_t)t * B + r) * H, *cp = cs + ((size_t)t * B + r) * H;
            double *hn = hs + ((size_t)(t + 1) * B + r) * H, *cn = cs + ((size_t)(t + 1) * B + r) * H;
            const float *xr = x + ((size_t)t * B + r) * in;
            for (int j = 0; j < H; j++) {
                double z[4];
                for (int q = 0; q < 4; q++) {
                    const int col = q * H + j;
                    double s = l->b[col];
                    for (int k = 0; k < in; k++)
                        s += (double)xr[k] * l->w_ih[(size_t)k * G + col];
                    for (int k = 0; k < H; k++)
                        s += hp[k] * (mask ? mask[r * H + k] : 1.0) * l->w_hh[(size_t)k * G + col];
                    z[q] = s;
                }
                const double i = sigm(z[0]), f = sigm(z[1]), g = tanh(z[2]), o = sigm(z[3]);
                cn[j] = f * cp[j] + i * g;
                hn[j] = o * tanh(cn[j]);
            }
        }
    }
}

static void check_forward_against_reference(cg_rng *rng, int T, int B, int in, int H, bool masked,
                                            float scale, bool zero_state)
{
    layer l;
    layer_init(&l, rng, in, H, scale);
    cg_lstm_cache c;
    cache_init_ok(&c, T, B, in, H, masked);
    const size_t bh = (size_t)B * H, ns = (size_t)(T + 1) * bh;
    if (masked)
        fill_mask(rng, c.mask, bh, 0.5f);
    float *x = frandom(rng, (size_t)T * B * in, 2.0f);
    float *h0 = zero_state ? NULL : frandom(rng, bh, 1.0f);
    float *c0 = zero_state ? NULL : frandom(rng, bh, 2.0f);
    double *hs = calloc(ns, sizeof(double)), *cs = calloc(ns, sizeof(double));
    ck_assert(hs && cs);
    reference_forward(&l, T, B, x, h0, c0, masked ? c.mask : NULL, hs, cs);
    cg_lstm_forward(&l.L, &c, T, x, h0, c0, masked);
    /* The float forward differs from the double one by the rounding of the
     * two dot products (length in + H, relative ~1e-7 each), of the ~1 ulp
     * exponential, and of tanh near 0 taken as 2 sigmoid(2x) - 1 (absolute
     * ~1e-7), carried through at most 7 steps.  The worst seen is 3.3e-7 on
     * h (absolute) and c (relative to 1 + |c|); 2e-6 leaves 6x margin and
     * still catches a polynomial coefficient off in its fourth digit. */
    for (size_t k = 0; k < ns; k++) {
        const double eh = fabs(c.h[k] - hs[k]), ec = fabs(c.c[k] - cs[k]) / (1.0 + fabs(cs[k]));
        ck_assert_msg(eh <= 2e-6, "h[%zu] = %.9g, reference %.9g", k, c.h[k], hs[k]);
        ck_assert_msg(ec <= 2e-6, "c[%zu] = %.9g, reference %.9g", k, c.c[k], cs[k]);
    }
    /* The cached output gates agree with the states: h = o tanh(c). */
    for (size_t k = 0; k < (size_t)T * bh; k++) {
        const size_t row = k / (size_t)H, j = k % (size_t)H;
        const float o = c.gates[row * 4 * H + 3 * (size_t)H + j];
        ck_assert(fabs((double)o * tanh(cs[bh + k]) - c.h[bh + k]) <= 2e-6);
    }
    if (masked) {
        for (size_t k = 0; k < (size_t)T * bh; k++)
            ck_assert(c.hdrop[k] == c.h[k] * c.mask[k % bh]);
    }
    free(hs);
    free(cs);
    free(x);
    free(h0);
    free(c0);
    layer_free(&l);
    cg_lstm_cache_free(&c);
}

START_TEST(forward_matches_double_reference)
{
    cg_rng rng;
    cg_rng_seed(&rng, 9);
    check_forward_against_reference(&rng, 1, 1, 1, 1, false, 0.5f, false);
    check_forward_against_reference(&rng, 1, 1, 4, 3, true, 0.5f, true);
    check_forward_against_reference(&rng, 7, 3, 5, 6, false, 0.5f, false);
    check_forward_against_reference(&rng, 7, 3, 5, 6, true, 0.5f, false);
    check_forward_against_reference(&rng, 5, 2, 9, 17, false, 0.3f, true);
    /* Large weights: pre-activations up to ~50, saturated gates. */
    check_forward_against_reference(&rng, 6, 4, 8, 5, false, 4.0f, false);
    check_forward_against_reference(&rng, 6, 4, 8, 5, true, 4.0f, false);
    for (int s = 0; s < 6; s++)
        check_forward_against_reference(&rng, 1 + (int)cg_rng_below(&rng, 7),
                                        1 + (int)cg_rng_below(&rng, 4),
                                        1 + (int)cg_rng_below(&rng, 9),
                                        1 + (int)cg_rng_below(&rng, 9), s % 2 == 0, 1.0f,
                                        s % 3 == 0);
}
END_TEST

/* Extreme pre-activations give exact saturation, never inf or NaN; a NaN
 * input stays visible in the output rather than being clamped away. */
START_TEST(forward_saturates_and_propagates_nan)
{
    cg_rng rng;
    cg_rng_seed(&rng, 3);
    layer l;
    layer_init(&l, &rng, 1, 2, 0.0f);
    for (int q = 0; q < 8; q++)
        l.w_ih[q] = 1.0f; /* every gate of both units sees x */
    cg_lstm_cache c;
    cache_init_ok(&c, 3, 1, 1, 2, false);
    const float x[3] = {1e30f, -1e30f, 200.0f};
    cg_lstm_forward(&l.L, &c, 3, x, NULL, NULL, false);
    /* step 0: i = f = o = 1, g = 1: c = 1, h = tanh(1) */
    ck_assert_float_eq_tol(c.c[2], 1.0f, 1e-7f);
    ck_assert_float_eq_tol(c.h[2], tanhf(1.0f), 1e-6f);
    /* step 1: all gates shut (i = f = o = 0, g = -1): c = 0, h = 0 */
    ck_assert(fabsf(c.c[4]) <= 1e-30f && fabsf(c.h[4]) <= 1e-30f);
    for (size_t k = 0; k < 8 * 3; k++)
        ck_assert(isfinite(c.gates[k]) && c.gates[k] >= -1.0f && c.gates[k] <= 1.0f);
    const float xn[1] = {NAN};
    cg_lstm_forward(&l.L, &c, 1, xn, NULL, NULL, false);
    ck_assert(isnan(c.h[2]) && isnan(c.h[3]));
    layer_free(&l);
    cg_lstm_cache_free(&c);
}
END_TEST

/* The gate nonlinearities on their own: one unit, every gate weight 1, zero
 * state, so the cached gates are sigmoid(x) and tanh(x) and tanh_c is
 * tanh(sigmoid(x) tanh(x)), for x swept over [-30, 30] in B rows.  The
 * library's exp is a polynomial (Cephes, ~1 ulp): sigmoid must be within
 * 4e-7 relative (a few ulp, also deep in the tail where it is ~1e-13; worst
 * seen 1.5e-7) and tanh within 4e-7 absolute (worst seen 1.8e-7: 2
 * sigmoid(2x) - 1 loses relative accuracy near 0, which an LSTM does not
 * need). */
START_TEST(gate_nonlinearities_are_accurate)
{
    const int B = 6001;
    layer l;
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    layer_init(&l, &rng, 1, 1, 0.0f);
    for (int q = 0; q < 4; q++)
        l.w_ih[q] = 1.0f;
    cg_lstm_cache c;
    cache_init_ok(&c, 1, B, 1, 1, false);
    float *x = falloc((size_t)B);
    for (int r = 0; r < B; r++)
        x[r] = -30.0f + 0.01f * (float)r;
    cg_lstm_forward(&l.L, &c, 1, x, NULL, NULL, false);
    for (int r = 0; r < B; r++) {
        const double xr = x[r], s = sigm(xr), t = tanh(xr);
        const float *g = c.gates + 4 * (size_t)r;
        ck_assert_msg(fabs(g[0] - s) <= 4e-7 * s, "sigmoid(%.9g) = %.9g, want %.9g", xr, g[0], s);
        ck_assert(g[1] == g[0] && g[3] == g[0]);
        ck_assert_msg(fabs(g[2] - t) <= 4e-7, "tanh(%.9g) = %.9g, want %.9g", xr, g[2], t);
        /* h = o tanh(c), c = i g: tanh's accuracy at c */
        ck_assert(fabs(c.h[B + r] - (double)g[3] * tanh((double)g[0] * g[2])) <= 4e-7);
    }
    free(x);
    layer_free(&l);
    cg_lstm_cache_free(&c);
}
END_TEST

/* Backward after begin and no step: the state gradients pass straight
 * through and no weight gradient changes. */
START_TEST(backward_after_zero_steps)
{
    cg_rng rng;
    cg_rng_seed(&rng, 8);
    const int B = 2, H = 3;
    const size_t bh = (size_t)B * H;
    layer l;
    layer_init(&l, &rng, 2, H, 0.5f);
    layer_zero_grads(&l);
    cg_lstm_cache c;
    cache_init_ok(&c, 2, B, 2, H, true);
    float *h0 = frandom(&rng, bh, 1.0f), *dhT = frandom(&rng, bh, 1.0f),
          *dcT = frandom(&rng, bh, 1.0f), *dh0 = falloc(bh), *dc0 = falloc(bh);
    cg_lstm_forward_begin(&l.L, &c, h0, NULL);
    ck_assert_int_eq(c.t_used, 0);
    ck_assert(memcmp(c.h, h0, bh * sizeof(float)) == 0);
    for (size_t k = 0; k < bh; k++)
        ck_assert(c.c[k] == 0.0f);
    cg_lstm_backward(&l.L, &c, NULL, NULL, dhT, dcT, NULL, dh0, dc0);
    ck_assert(memcmp(dh0, dhT, bh * sizeof(float)) == 0);
    ck_assert(memcmp(dc0, dcT, bh * sizeof(float)) == 0);
    for (size_t k = 0; k < 4 * (size_t)H; k++)
        ck_assert(l.db[k] == 0.0f && l.dw_hh[k] == 0.0f);
    free(h0);
    free(dhT);
    free(dcT);
    free(dh0);
    free(dc0);
    layer_free(&l);
    cg_lstm_cache_free(&c);
}
END_TEST

/* ---------------------------------------------------------------- step-wise and inference */

static void check_step_matches_sequence(cg_rng *rng, int T, int B, int in, int H, bool masked)
{
    layer l;
    layer_init(&l, rng, in, H, 0.3f);
    cg_lstm_cache a, s;
    cache_init_ok(&a, T, B, in, H, masked);
    cache_init_ok(&s, T, B, in, H, masked);
    const size_t bh = (size_t)B * H, nx = (size_t)T * B * in;
    if (masked) {
        fill_mask(rng, a.mask, bh, 0.2f);
        memcpy(s.mask, a.mask, bh * sizeof(float));
    }
    float *x = frandom(rng, nx, 1.0f), *h0 = frandom(rng, bh, 0.5f), *c0 = frandom(rng, bh, 0.5f);
    cg_lstm_forward(&l.L, &a, T, x, h0, c0, masked);
    cg_lstm_forward_begin(&l.L, &s, h0, c0);
    for (int t = 0; t < T; t++)
        cg_lstm_forward_step(&l.L, &s, t, x + (size_t)t * B * in, masked);
    ck_assert_int_eq(s.t_used, T);
    ck_assert(s.masked == masked);

    /* The same operations in the same order; only the input GEMM is split by
     * step.  A BLAS may round a row differently in a product with fewer rows
     * (OpenBLAS 0.3.21 does for the largest shape here: its blocking depends
     * on the shape), so allow 1e-6 relative, ~10 ulp; the small shapes come
     * out bitwise equal with both OpenBLAS and the reference BLAS. */
    const struct {
        const char *name;
        const float *p, *q;
        size_t n;
    } arrays[] = {{"h", a.h, s.h, (size_t)(T + 1) * bh},
                  {"c", a.c, s.c, (size_t)(T + 1) * bh},
                  {"gates", a.gates, s.gates, (size_t)T * bh * 4},
                  {"hdrop", a.hdrop, s.hdrop, masked ? (size_t)T * bh : 0}};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        for (size_t k = 0; k < arrays[i].n; k++)
            ck_assert_msg(fabsf(arrays[i].p[k] - arrays[i].q[k]) <=
                              1e-6f * (1.0f + fabsf(arrays[i].p[k])),
                          "%s[%zu]: sequence %.9g, step-wise %.9g", arrays[i].name, k,
                          arrays[i].p[k], arrays[i].q[k]);

    /* Backward works the same after either. */
    float *dh_out = frandom(rng, (size_t)T * bh, 1.0f), *dx_a = falloc(nx), *dx_s = falloc(nx);
    cg_lstm_backward(&l.L, &a, x, dh_out, NULL, NULL, dx_a, NULL, NULL);
    cg_lstm_backward(&l.L, &s, x, dh_out, NULL, NULL, dx_s, NULL, NULL);
    for (size_t k = 0; k < nx; k++)
        ck_assert(fabsf(dx_a[k] - dx_s[k]) <= 1e-5f * (1.0f + fabsf(dx_a[k])));

    free(dh_out);
    free(dx_a);
    free(dx_s);
    free(x);
    free(h0);
    free(c0);
    layer_free(&l);
    cg_lstm_cache_free(&a);
    cg_lstm_cache_free(&s);
}

START_TEST(step_forward_matches_sequence_forward)
{
    cg_rng rng;
    cg_rng_seed(&rng, 11);
    check_step_matches_sequence(&rng, 1, 1, 1, 1, false);
    check_step_matches_sequence(&rng, 5, 1, 3, 4, true);
    check_step_matches_sequence(&rng, 6, 3, 4, 5, false);
    check_step_matches_sequence(&rng, 6, 3, 4, 5, true);
    /* Big enough that OpenBLAS packs, blocks and threads. */
    check_step_matches_sequence(&rng, 8, 16, 64, 96, true);
}
END_TEST

static void check_infer_matches_sequence(cg_rng *rng, int T, int B, int in, int H)
{
    layer l;
    layer_init(&l, rng, in, H, 0.3f);
    cg_lstm_cache a;
    cache_init_ok(&a, T, B, in, H, false);
    const size_t bh = (size_t)B * H;
    float *x = frandom(rng, (size_t)T * B * in, 1.0f), *h = frandom(rng, bh, 0.5f),
          *c = frandom(rng, bh, 0.5f), *xw = falloc(bh * 4);
    cg_lstm_forward(&l.L, &a, T, x, h, c, false);
    /* gemv (B = 1) or a B-row GEMM instead of one (T*B)-row GEMM: the same
     * sums, possibly rounded in another order: 1e-6 relative is ~10 ulp. */
    for (int t = 0; t < T; t++) {
        cg_lstm_step_infer(&l.L, B, x + (size_t)t * B * in, h, c, xw);
        for (size_t k = 0; k < bh; k++) {
            const float hr = a.h[(size_t)(t + 1) * bh + k], cr = a.c[(size_t)(t + 1) * bh + k];
            ck_assert_msg(fabsf(h[k] - hr) <= 1e-6f * (1.0f + fabsf(hr)), "t=%d h[%zu] %.9g vs %.9g",
                          t, k, h[k], hr);
            ck_assert_msg(fabsf(c[k] - cr) <= 1e-6f * (1.0f + fabsf(cr)), "t=%d c[%zu] %.9g vs %.9g",
                          t, k, c[k], cr);
        }
    }
    free(x);
    free(h);
    free(c);
    free(xw);
    layer_free(&l);
    cg_lstm_cache_free(&a);
}

START_TEST(infer_step_matches_sequence_forward)
{
    cg_rng rng;
    cg_rng_seed(&rng, 13);
    check_infer_matches_sequence(&rng, 1, 1, 1, 1);
    check_infer_matches_sequence(&rng, 9, 1, 7, 8);
    check_infer_matches_sequence(&rng, 9, 3, 7, 8);
    check_infer_matches_sequence(&rng, 4, 1, 64, 128);
}
END_TEST

/* ---------------------------------------------------------------- cache errors */

START_TEST(cache_init_rejects_bad_dimensions)
{
    cg_lstm_cache c;
    static const int bad[][4] = {{0, 1, 1, 1}, {1, 0, 1, 1}, {1, 1, 0, 1}, {1, 1, 1, 0},
                                 {-3, 1, 1, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&c, 0xff, sizeof c);
        ck_assert_int_eq(cg_lstm_cache_init(&c, bad[i][0], bad[i][1], bad[i][2], bad[i][3], false),
                         CHARGAN_E_INVALID);
        ck_assert_ptr_null(c.h);
        ck_assert_ptr_nonnull(strstr(chargan_last_error(), "dimensions must be >= 1"));
    }
    /* Rows of all steps and gate columns must fit an int GEMM dimension. */
    ck_assert_int_eq(cg_lstm_cache_init(&c, INT_MAX / 2 + 1, 2, 1, 1, false), CHARGAN_E_INVALID);
    ck_assert_ptr_nonnull(strstr(chargan_last_error(), "T*B=2147483648"));
    ck_assert_int_eq(cg_lstm_cache_init(&c, 1, 1, 1, INT_MAX / 4 + 1, false), CHARGAN_E_INVALID);
    ck_assert_ptr_nonnull(strstr(chargan_last_error(), "4*hidden"));
    /* Valid dimensions whose arrays cannot be addressed: refused before any
     * allocation is tried. */
    ck_assert_int_eq(cg_lstm_cache_init(&c, INT_MAX, 1, 1, INT_MAX / 4, true), CHARGAN_E_NOMEM);
    ck_assert_ptr_nonnull(strstr(chargan_last_error(), "too many floats"));
    ck_assert_ptr_null(c.h);
    cg_lstm_cache_free(&c);
    cg_lstm_cache_free(NULL);
}
END_TEST

START_TEST(cache_init_reports_allocation_failure)
{
    cg_lstm_cache c;
    for (int dropout = 0; dropout < 2; dropout++) {
        memset(&c, 0xff, sizeof c);
        cg_alloc_fail_after(0);
        ck_assert_int_eq(cg_lstm_cache_init(&c, 4, 2, 3, 5, dropout), CHARGAN_E_NOMEM);
        cg_alloc_fail_after(-1);
        ck_assert_ptr_nonnull(strstr(chargan_last_error(), "cannot allocate the floats"));
        ck_assert_ptr_null(c.h);
        ck_assert_ptr_null(c.mask);
        cg_lstm_cache_free(&c); /* harmless on the zeroed struct */
        ck_assert_int_eq(cg_lstm_cache_init(&c, 4, 2, 3, 5, dropout), CHARGAN_OK);
        ck_assert_int_eq(cg_alloc_fail_after(-1), 1); /* one block, one allocation */
        ck_assert(dropout ? c.mask != NULL && c.hdrop != NULL : c.mask == NULL && c.hdrop == NULL);
        /* Views are 64-byte aligned and do not overlap: write them all. */
        float *views[] = {c.h, c.c, c.gates, c.dh, c.dc, c.hdrop, c.mask};
        for (size_t i = 0; i < sizeof views / sizeof views[0]; i++)
            if (views[i])
                ck_assert_uint_eq((uintptr_t)views[i] % 64, 0);
        memset(c.h, 0, 5 * 2 * 5 * sizeof(float));
        memset(c.c, 0, 5 * 2 * 5 * sizeof(float));
        memset(c.gates, 0, 4 * 2 * 20 * sizeof(float));
        memset(c.dh, 0, 2 * 5 * sizeof(float));
        memset(c.dc, 0, 2 * 5 * sizeof(float));
        if (dropout) {
            memset(c.hdrop, 0, 4 * 2 * 5 * sizeof(float));
            memset(c.mask, 0, 2 * 5 * sizeof(float));
        }
        cg_lstm_cache_free(&c);
        ck_assert_ptr_null(c.h);
    }
}
END_TEST

/* ---------------------------------------------------------------- kernel paths */

/* One forward and backward, then w_hh changes (as an update would) and a
 * step-wise forward and backward on the same cache: everything the layer
 * computes, concatenated into out (callers compare two paths' bits). */
static size_t forward_backward_twice(int T, int B, int in, int H, float *out)
{
    cg_rng rng;
    cg_rng_seed(&rng, 77);
    layer l;
    layer_init(&l, &rng, in, H, 0.4f);
    cg_lstm_cache c;
    cache_init_ok(&c, T, B, in, H, false);
    const size_t bh = (size_t)B * H, nx = (size_t)T * B * in, nw = (size_t)H * 4 * H;
    float *x = frandom(&rng, nx, 1.0f), *dh_out = frandom(&rng, (size_t)T * bh, 1.0f);
    float *dx = falloc(nx);
    size_t n = 0;
    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            cg_lstm_forward(&l.L, &c, T, x, NULL, NULL, false);
        } else {
            for (size_t i = 0; i < nw; i++)
                l.w_hh[i] *= 0.9f;
            cg_lstm_forward_begin(&l.L, &c, NULL, NULL);
            for (int t = 0; t < T; t++)
                cg_lstm_forward_step(&l.L, &c, t, x + (size_t)t * B * in, false);
        }
        memcpy(out + n, c.h, (size_t)(T + 1) * bh * sizeof(float));
        n += (size_t)(T + 1) * bh;
        cg_lstm_backward(&l.L, &c, x, dh_out, NULL, NULL, dx, NULL, NULL);
        memcpy(out + n, dx, nx * sizeof(float));
        n += nx;
        memcpy(out + n, l.dw_hh, nw * sizeof(float));
        n += nw;
    }
    free(x);
    free(dh_out);
    free(dx);
    layer_free(&l);
    cg_lstm_cache_free(&c);
    return n;
}

/* Everything a backward computed, for comparing two backwards: dx, dh0, dc0
 * (the caller's arrays, adopted) and copies of the layer's dw_ih, dw_hh, db. */
enum { N_GRADIENTS = 6 };

static void take_gradients(const layer *l, float *dx, float *dh0, float *dc0, size_t nx,
                           size_t bh, float *out[N_GRADIENTS], size_t sizes[N_GRADIENTS])
{
    const size_t G = 4 * (size_t)l->L.hidden;
    const size_t n[N_GRADIENTS] = {nx, bh, bh, (size_t)l->L.in * G, (size_t)l->L.hidden * G, G};
    const float *w[3] = {l->dw_ih, l->dw_hh, l->db};
    float *mine[3] = {dx, dh0, dc0};
    for (int k = 0; k < N_GRADIENTS; k++) {
        sizes[k] = n[k];
        if (k < 3) {
            out[k] = mine[k];
        } else {
            out[k] = falloc(n[k]);
            memcpy(out[k], w[k - 3], n[k] * sizeof(float));
        }
    }
}

/* Asserts that gradients from..N_GRADIENTS-1 of two backwards have the same
 * bits (what names the case), then frees both sets. */
static void same_gradients_then_free(float *a[N_GRADIENTS], float *b[N_GRADIENTS],
                                     const size_t sizes[N_GRADIENTS], int from, const char *what)
{
    for (int k = from; k < N_GRADIENTS; k++)
        ck_assert_msg(memcmp(a[k], b[k], sizes[k] * sizeof(float)) == 0, "%s: gradient %d differs",
                      what, k);
    for (int k = 0; k < N_GRADIENTS; k++) {
        free(a[k]);
        free(b[k]);
    }
}

/* The gradient on the outputs may be given in the outputs themselves
 * (c->h + B*H, as the model does for its top layer): the same gradients, bit
 * for bit, as from a buffer of its own, and h the forward's again after. */
START_TEST(backward_takes_dh_out_in_the_outputs)
{
    const int T = 5, B = 3, in = 4, H = 8;
    const size_t bh = (size_t)B * H, nx = (size_t)T * B * in, nh = (size_t)(T + 1) * bh;
    for (int masked = 0; masked < 2; masked++) {
        cg_rng rng;
        cg_rng_seed(&rng, 31 + (uint64_t)masked);
        layer l;
        layer_init(&l, &rng, in, H, 0.5f);
        cg_lstm_cache c;
        cache_init_ok(&c, T, B, in, H, masked);
        if (masked)
            fill_mask(&rng, c.mask, bh, 0.3f);
        float *x = frandom(&rng, nx, 1.0f), *h0 = frandom(&rng, bh, 0.5f);
        float *c0 = frandom(&rng, bh, 0.5f), *dh_out = frandom(&rng, (size_t)T * bh, 1.0f);
        float *h_fwd = falloc(nh), *got[2][N_GRADIENTS];
        size_t sizes[N_GRADIENTS];
        for (int shared = 0; shared < 2; shared++) {
            float *dx = falloc(nx), *dh0 = falloc(bh), *dc0 = falloc(bh);
            layer_zero_grads(&l);
            cg_lstm_forward(&l.L, &c, T, x, h0, c0, masked);
            memcpy(h_fwd, c.h, nh * sizeof(float));
            const float *g = dh_out;
            if (shared) {
                memcpy(c.h + bh, dh_out, (size_t)T * bh * sizeof(float));
                g = c.h + bh;
            }
            cg_lstm_backward(&l.L, &c, x, g, NULL, NULL, dx, dh0, dc0);
            ck_assert_msg(memcmp(c.h, h_fwd, nh * sizeof(float)) == 0,
                          "masked %d shared %d: h is not the forward's after backward", masked,
                          shared);
            take_gradients(&l, dx, dh0, dc0, nx, bh, got[shared], sizes);
        }
        same_gradients_then_free(got[0], got[1], sizes, 0, masked ? "masked" : "unmasked");
        free(x);
        free(h0);
        free(c0);
        free(dh_out);
        free(h_fwd);
        layer_free(&l);
        cg_lstm_cache_free(&c);
    }
}
END_TEST

/* Backward a step at a time (begin, steps with dx_t, end) gives the whole
 * backward's weight, state and carried gradients bit for bit (the same
 * operations in the same order), and its input gradient up to the BLAS's
 * rounding of a product split by step. */
START_TEST(stepwise_backward_matches_whole_backward)
{
    static const int shapes[][4] = {{1, 1, 1, 1}, {5, 3, 4, 8}, {6, 7, 9, 5}, {4, 16, 64, 96}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int T = shapes[i][0], B = shapes[i][1], in = shapes[i][2], H = shapes[i][3];
        const size_t bh = (size_t)B * H, nx = (size_t)T * B * in;
        cg_rng rng;
        cg_rng_seed(&rng, 50 + i);
        problem p; /* its functional's weights serve as the output and state gradients */
        problem_init(&p, &rng, T, B, in, H, i & 1, 2);
        float *dh_out = to_float(p.r_out, (size_t)T * bh), *dhT = to_float(p.r_h, bh);
        float *dcT = to_float(p.r_c, bh);
        const cg_lstm_layer *L = &p.l.L;
        float *got[2][N_GRADIENTS];
        size_t sizes[N_GRADIENTS];
        for (int stepwise = 0; stepwise < 2; stepwise++) {
            float *dx = falloc(nx), *dh0 = falloc(bh), *dc0 = falloc(bh);
            layer_zero_grads(&p.l);
            cg_lstm_forward(L, &p.c, T, p.x, p.h0, p.c0, p.masked);
            if (stepwise) {
                cg_lstm_backward_begin(L, &p.c, dhT, dcT, true);
                for (int t = T - 1; t >= 0; t--)
                    cg_lstm_backward_step(L, &p.c, t, dh_out + (size_t)t * bh,
                                          dx + (size_t)t * B * in, dh0);
                cg_lstm_backward_end(L, &p.c, p.x, false, NULL, dh0, dc0);
            } else {
                cg_lstm_backward(L, &p.c, p.x, dh_out, dhT, dcT, dx, dh0, dc0);
            }
            take_gradients(&p.l, dx, dh0, dc0, nx, bh, got[stepwise], sizes);
        }
        const float *dx_whole = got[0][0], *dx_steps = got[1][0];
        for (size_t k = 0; k < nx; k++)
            ck_assert_msg(fabsf(dx_whole[k] - dx_steps[k]) <= 1e-6f * (1.0f + fabsf(dx_whole[k])),
                          "shape %zu: dx[%zu] whole %.9g, step-wise %.9g", i, k, dx_whole[k],
                          dx_steps[k]);
        char what[32];
        snprintf(what, sizeof what, "shape %zu", i);
        same_gradients_then_free(got[0], got[1], sizes, 1, what); /* dx: compared above */
        free(dh_out);
        free(dhT);
        free(dcT);
        problem_free(&p);
    }
}
END_TEST

/* The AVX2 path reads w_hh from a copy packed at each forward's begin; it
 * must give the AVX-512 path's bits (the two sum alike), also after the
 * weights change between forwards on one cache.  Needs both paths. */
START_TEST(avx2_packed_forward_matches_avx512)
{
    if (!cg_kern_available(CG_KERN_AVX512))
        return; /* no second path to compare with on this CPU */
    static const int shapes[][4] = {{5, 3, 4, 8}, {4, 7, 6, 13}, {3, 16, 10, 64}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int T = shapes[i][0], B = shapes[i][1], in = shapes[i][2], H = shapes[i][3];
        const size_t cap = 2 * ((size_t)(T + 1) * B * H + (size_t)T * B * in + (size_t)H * 4 * H);
        float *a = falloc(cap), *b = falloc(cap);
        ck_assert(cg_kern_force_path(CG_KERN_AVX512));
        size_t na = forward_backward_twice(T, B, in, H, a);
        ck_assert(cg_kern_force_path(CG_KERN_AVX2));
        size_t nb = forward_backward_twice(T, B, in, H, b);
        ck_assert(cg_kern_force_path(CG_KERN_AVX512));
        ck_assert_uint_eq(na, nb);
        for (size_t k = 0; k < na; k++)
            ck_assert_msg(memcmp(&a[k], &b[k], sizeof(float)) == 0,
                          "T=%d B=%d in=%d H=%d: value %zu is %a on AVX-512, %a on AVX2", T, B, in,
                          H, k, a[k], b[k]);
        free(a);
        free(b);
    }
}
END_TEST

/* The "avx2" test case runs the reference and gradient checks with the
 * kernels on the AVX2 path (packed forward weights) where the CPU has more. */
static cg_kern_path path_before;

static void use_avx2(void)
{
    path_before = cg_kern_active();
    cg_kern_force_path(CG_KERN_AVX2);
}

static void restore_path(void)
{
    cg_kern_force_path(path_before);
}

static Suite *lstm_suite(void)
{
    Suite *s = suite_create("lstm");
    TCase *tc = tcase_create("forward");
    tcase_add_test(tc, forward_matches_double_reference);
    tcase_add_test(tc, forward_saturates_and_propagates_nan);
    tcase_add_test(tc, gate_nonlinearities_are_accurate);
    tcase_add_test(tc, step_forward_matches_sequence_forward);
    tcase_add_test(tc, infer_step_matches_sequence_forward);
    tcase_add_test(tc, cache_init_rejects_bad_dimensions);
    tcase_add_test(tc, cache_init_reports_allocation_failure);
    suite_add_tcase(s, tc);
    tc = tcase_create("gradcheck");
    tcase_add_loop_test(tc, gradcheck_fixed_shapes, 0, 2); /* without, with dropout mask */
    tcase_add_test(tc, gradcheck_random_shapes);
    tcase_add_test(tc, gradcheck_two_stacked_layers);
    tcase_add_test(tc, backward_null_arguments);
    tcase_add_test(tc, backward_takes_dh_out_in_the_outputs);
    tcase_add_test(tc, stepwise_backward_matches_whole_backward);
    tcase_add_test(tc, backward_after_zero_steps);
    suite_add_tcase(s, tc);
    tc = tcase_create("avx2");
    tcase_add_checked_fixture(tc, use_avx2, restore_path);
    tcase_add_test(tc, avx2_packed_forward_matches_avx512);
    tcase_add_test(tc, forward_matches_double_reference);
    tcase_add_test(tc, step_forward_matches_sequence_forward);
    tcase_add_loop_test(tc, gradcheck_fixed_shapes, 0, 2);
    tcase_add_test(tc, gradcheck_random_shapes);
    tcase_add_test(tc, gradcheck_two_stacked_layers);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(lstm_suite)
