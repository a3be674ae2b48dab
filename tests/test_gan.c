/* test_gan.c - the discriminator step and the adversarial estimators,
 * through the trainer:
 * - every gradient an adversarial step computes against central finite
 *   differences of the loss it stands for, rebuilt here from the documented
 *   equations: the Gumbel-softmax generator loss end to end (fixed noise,
 *   standard and relativistic, beta != 1), the REINFORCE surrogate
 *   -mean(A log p(y)) for the samples and advantages the step used, and the
 *   discriminator's own update (per-step BCE on hard samples, final-step BCE
 *   and the relativistic loss on relaxed ones, with recurrent dropout);
 * - the rewards, discounted returns and moving-average baseline by hand,
 *   and the REINFORCE gradient's mean over many steps against its exact
 *   expectation over all sequences of a tiny generator (unbiasedness);
 *   Monte-Carlo rollouts; the MLE term, d_steps and the beta schedules;
 * - that the discriminator learns, that a GAN step moves the generator, that
 *   runs are deterministic, and the error paths. */
#define _POSIX_C_SOURCE 200809L
#include "test_common.h"
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void *dup_floats(const float *p, size_t n)
{
    float *q = xcalloc(n, sizeof(float));
    memcpy(q, p, n * sizeof(float));
    return q;
}

typedef struct shape {
    int E, H, L, Z;
    float dropout;
} shape;

static chargan_model *make_model(chargan_model_kind kind, int V, shape s, uint64_t seed)
{
    chargan_model_config c;
    chargan_model_config_init(&c, kind);
    c.vocab_size = (uint32_t)V;
    c.embed_dim = (uint32_t)s.E;
    c.hidden_dim = (uint32_t)s.H;
    c.num_layers = (uint32_t)s.L;
    c.noise_dim = (uint32_t)s.Z;
    c.recurrent_dropout = s.dropout;
    c.seed = seed;
    chargan_model *m = NULL;
    ck_assert_msg(chargan_model_new(&c, &m) == CHARGAN_OK, "%s", chargan_last_error());
    return m;
}

static chargan_trainer_config trainer_config(int estimator, int T, int B, uint64_t seed)
{
    chargan_trainer_config c;
    chargan_trainer_config_init(&c);
    c.estimator = estimator;
    c.seq_len = (uint32_t)T;
    c.batch = (uint32_t)B;
    c.seed = seed;
    c.val_fraction = 0.0f;
    return c;
}

/* A trainer on a random id stream over [2, V), its discriminator trained by
 * d_opt (NULL: the default Adam). */
static chargan_trainer *make_trainer_opt(const chargan_trainer_config *c, int V, shape gs,
                                         shape ds, uint64_t seed, chargan_optimizer *d_opt)
{
    chargan_model *g = make_model(CHARGAN_GENERATOR, V, gs, seed);
    chargan_model *d = make_model(CHARGAN_DISCRIMINATOR, V, ds, seed + 1);
    chargan_trainer *tr = NULL;
    ck_assert_msg(chargan_trainer_new(c, g, NULL, d, d_opt, &tr) == CHARGAN_OK, "%s",
                  chargan_last_error());
    cg_rng rng;
    cg_rng_seed(&rng, seed + 2);
    int32_t ids[400];
    for (size_t i = 0; i < 400; i++)
        ids[i] = 2 + (int32_t)cg_rng_below(&rng, (uint64_t)V - 2);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 400), CHARGAN_OK);
    return tr;
}

/* The same with the default optimizers. */
static chargan_trainer *make_trainer(const chargan_trainer_config *c, int V, shape gs, shape ds,
                                     uint64_t seed)
{
    return make_trainer_opt(c, V, gs, ds, seed, NULL);
}

/* Moves every parameter off its initial value (so that no gradient is
 * trivially zero and the models are not at a symmetric point). */
static void jitter(chargan_model *m, uint64_t seed, float amount)
{
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    for (size_t i = 0; i < m->n_weights; i++)
        m->params[i] += amount * (2.0f * cg_rng_uniform(&rng) - 1.0f);
}

static double softplus(double x) /* log(1 + e^x), stable */
{
    return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

static double sigm(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* Mean BCE of logits against one target. */
static double mean_bce(const float *logits, size_t n, double y)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += y * softplus(-logits[i]) + (1.0 - y) * softplus(logits[i]);
    return s / (double)n;
}

/* ---------------------------------------------------------------- gradient checks */

/* Central differences of a loss rebuilt in double from float forwards, the
 * parameters perturbed in float by +-eps and the difference divided by the
 * exact distance between the perturbed floats.  The adversarial gradients
 * are small (largest elements 1e-4 to 0.15 here), so the absolute floor
 * must be small too: 2e-5, plus 1e-2 relative.  The errors are dominated by
 * the float rounding of the forwards (relative ~1e-7 of losses of order 1,
 * divided by 2 eps), then by truncation (eps^2 / 6 times a third
 * derivative).  Measured (CHARGAN_GC_REPORT=1 prints it): the worst
 * absolute error over this file is 3e-6 with eps = 1e-2 (0.14 of the
 * tolerance), 1e-5 with eps = 3e-3 and 2e-5 with eps = 2e-2.  A wrong term
 * gives an O(1) relative error: breaking terms on purpose (the relaxation's
 * Jacobian, its mean term or its beta; the relativistic sign in G's or D's
 * loss; the surrogate's scale; D's per-step heads; a dropout mask) fails
 * these checks. */
#define GC_EPS 1e-2f
#define GC_ATOL 2e-5
#define GC_RTOL 1e-2

static double gc_worst, gc_worst_abs;

static void check_close(const char *what, size_t k, double analytic, double numeric)
{
    const double err = fabs(analytic - numeric);
    const double tol = GC_ATOL + GC_RTOL * fmax(fabs(analytic), fabs(numeric));
    if (err / tol > gc_worst)
        gc_worst = err / tol;
    gc_worst_abs = fmax(gc_worst_abs, err);
    ck_assert_msg(err <= tol, "%s[%zu]: analytic %.8g vs numeric %.8g", what, k, analytic,
                  numeric);
}

/* A loss as a function of one model's parameters; returns false if the
 * evaluation is not comparable with the base point (a discrete choice, the
 * Gumbel argmax, changed). */
typedef bool (*loss_fn)(void *ctx, double *loss);

/* Checks analytic gradients (grads, a copy) of every parameter of m against
 * central differences of f.  Elements whose perturbation flips a discrete
 * choice are retried with eps / 10 and skipped if it still flips; returns
 * the number skipped. */
static size_t gradcheck_model(chargan_model *m, const float *grads, loss_fn f, void *ctx)
{
    size_t skipped = 0;
    double gmax = 0.0;
    for (size_t i = 0; i < m->n_weights; i++) /* not fmax: as surrogate_loss */
        gmax = fabs(grads[i]) > gmax ? fabs(grads[i]) : gmax;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const cg_tensor *t = &m->tensors[i];
        for (size_t k = 0; k < t->numel; k++) {
            float *w = m->params + t->offset + k;
            const float orig = *w;
            bool ok = false;
            double numeric = 0.0;
            for (float eps = GC_EPS; !ok && eps >= GC_EPS / 10; eps /= 10) {
                double lp, lm;
                *w = orig + eps;
                const float up = *w;
                bool a = f(ctx, &lp);
                *w = orig - eps;
                const float dn = *w;
                bool b = f(ctx, &lm);
                ok = a && b;
                numeric = (lp - lm) / ((double)up - (double)dn);
            }
            *w = orig;
            if (!ok) {
                skipped++;
                continue;
            }
            check_close(t->name, k, grads[t->offset + k], numeric);
        }
    }
    if (getenv("CHARGAN_GC_REPORT"))
        fprintf(stderr, "%s: worst error / tolerance %.3f (%.2g), %zu skipped, largest "
                "gradient %.3g\n", m->cfg.kind == CHARGAN_GENERATOR ? "G" : "D", gc_worst,
                gc_worst_abs, skipped, gmax);
    gc_worst = gc_worst_abs = 0.0;
    return skipped;
}

/* ---------------------------------------------------------------- Gumbel, end to end */

/* The Gumbel generator loss, rebuilt from docs/MODEL.md: from the
 * trainer's RNG state before the step, draw the real batch and the noise,
 * then generate T steps: y_t = softmax(beta (l_t + g_t)) with Gumbel noise
 * g = -log(-log u), the hard argmax fed back; the discriminator (as it is
 * after its update, in evaluation mode) reads y through its soft path; the
 * loss is mean_b softplus(-C_f) (standard) or softplus(-(C_f - C_r))
 * (relativistic, C_r on the real batch). */
typedef struct gumbel_ctx {
    chargan_trainer *tr;
    cg_rng rng0, grng0;
    double beta;
    float *soft;     /* T x B x V */
    int32_t *hard;   /* T x B: the base point's argmax */
    int32_t *now;    /* T x B: this evaluation's */
    int32_t *in;     /* B */
} gumbel_ctx;

static bool gumbel_loss(void *vctx, double *loss)
{
    gumbel_ctx *c = vctx;
    chargan_trainer *tr = c->tr;
    chargan_model *g = tr->gen, *d = tr->disc;
    const int T = (int)tr->cfg.seq_len, B = (int)tr->cfg.batch, V = g->V;
    tr->rng = c->rng0;
    g->rng = c->grng0;
    cg_trainer_draw_windows(tr);
    cg_windows_to_time_major(tr->windows, B, T, tr->inputs, tr->targets);
    const float *z = cg_trainer_draw_noise(tr);
    cg_trainer_seed_rows(tr); /* one sampling stream per row, as the step draws them */
    const bool fed = tr->cfg.gumbel_feed == CHARGAN_FEED_SOFT;
    (fed ? cg_model_begin_fed : cg_model_begin)(g, B, z, true);
    for (int b = 0; b < B; b++)
        c->in[b] = tr->windows[(size_t)b * (T + 1)];
    double *s = xcalloc((size_t)V, sizeof(double));
    for (int t = 0; t < T; t++) {
        /* the soft feed: step t reads y_(t-1) through G's embedding */
        const float *l = fed && t > 0 ? cg_model_step_soft(g, t, c->soft + (size_t)(t - 1) * B * V,
                                                           true)
                                      : cg_model_step(g, t, c->in, true);
        for (int b = 0; b < B; b++) {
            int best = 0;
            double mx = -INFINITY, sum = 0.0;
            for (int v = 0; v < V; v++) {
                /* the library's uniforms: floats of 23 bits (near 1 the
                 * double ones give noise 1e-5 away) */
                double u = cg_rng_uniform_openf(&tr->work.row_rng[b]);
                float noisy = l[(size_t)b * V + v] + (float)-log(-log(u));
                s[v] = noisy;
                if (noisy > s[best])
                    best = v;
                mx = fmax(mx, c->beta * s[v]);
            }
            for (int v = 0; v < V; v++)
                sum += s[v] = exp(c->beta * s[v] - mx);
            float *y = c->soft + ((size_t)t * B + b) * V;
            for (int v = 0; v < V; v++)
                y[v] = (float)(s[v] / sum);
            c->now[(size_t)t * B + b] = best;
            c->in[b] = best;
        }
    }
    free(s);
    cg_model_forward(d, T, B, NULL, c->soft, NULL, false);
    float *cf = dup_floats(d->ws.logits + (size_t)(T - 1) * B, (size_t)B);
    bool rel = tr->cfg.gan_loss == CHARGAN_LOSS_RELATIVISTIC;
    if (rel)
        cg_model_forward(d, T, B, tr->targets, NULL, NULL, false);
    double sum = 0.0;
    for (int b = 0; b < B; b++)
        sum += softplus(-(cf[b] - (rel ? d->ws.logits[(size_t)(T - 1) * B + b] : 0.0f)));
    free(cf);
    *loss = sum / B;
    /* with the hard feed a flipped argmax changes the path; the soft feed's
     * loss does not depend on it */
    return fed || memcmp(c->now, c->hard, (size_t)T * B * sizeof(int32_t)) == 0;
}

typedef struct gumbel_case {
    int gan_loss, anneal, feed;
    uint64_t gan_steps; /* where on the schedule (beta_max 4 over 4 steps) */
    double beta;        /* the beta that implies, by hand */
    shape gs, ds;
    int V, T, B;
} gumbel_case;

#define HARD CHARGAN_FEED_HARD
#define SOFT CHARGAN_FEED_SOFT
static const gumbel_case gumbel_cases[] = {
    /* standard loss at beta 1 */
    {CHARGAN_LOSS_STANDARD, CHARGAN_ANNEAL_EXP, HARD, 0, 1.0, {3, 4, 1, 0, 0}, {3, 3, 1, 0, 0}, 5,
     3, 2},
    /* standard, exp schedule half-way: beta = 4^(1/2) = 2; noise, 2 layers, dropout in G */
    {CHARGAN_LOSS_STANDARD, CHARGAN_ANNEAL_EXP, HARD, 2, 2.0, {3, 4, 2, 2, 0.3f},
     {3, 3, 1, 0, 0.3f}, 5, 3, 2},
    /* relativistic, linear schedule at 1/4: beta = 1 + 3/4 */
    {CHARGAN_LOSS_RELATIVISTIC, CHARGAN_ANNEAL_LINEAR, HARD, 1, 1.75, {4, 3, 1, 2, 0},
     {2, 3, 2, 0, 0}, 6, 4, 2},
    /* relativistic at the end of the exp schedule: beta = 4; T = 1, B = 1 */
    {CHARGAN_LOSS_RELATIVISTIC, CHARGAN_ANNEAL_EXP, HARD, 9, 4.0, {3, 3, 2, 1, 0.2f},
     {3, 2, 1, 0, 0}, 4, 1, 1},
    /* the soft feed: the gradient through every later step; one layer at beta 1 */
    {CHARGAN_LOSS_STANDARD, CHARGAN_ANNEAL_EXP, SOFT, 0, 1.0, {3, 4, 1, 0, 0}, {3, 3, 1, 0, 0}, 5,
     4, 2},
    /* soft feed, three layers (the step's gradient between them), noise and dropout, beta 2 */
    {CHARGAN_LOSS_RELATIVISTIC, CHARGAN_ANNEAL_EXP, SOFT, 2, 2.0, {3, 4, 3, 2, 0.3f},
     {3, 3, 1, 0, 0}, 5, 4, 3},
    /* soft feed, E > H, linear schedule at 1/4: beta = 1.75; T = 1 (nothing fed) */
    {CHARGAN_LOSS_STANDARD, CHARGAN_ANNEAL_LINEAR, SOFT, 1, 1.75, {5, 3, 2, 1, 0},
     {2, 3, 1, 0, 0}, 6, 1, 2},
    /* soft feed, E > H, two layers, T = 5 */
    {CHARGAN_LOSS_STANDARD, CHARGAN_ANNEAL_LINEAR, SOFT, 3, 3.25, {5, 3, 2, 0, 0.2f},
     {2, 3, 1, 0, 0}, 6, 5, 2},
};
#undef HARD
#undef SOFT

START_TEST(gumbel_generator_gradient_end_to_end)
{
    const gumbel_case *gc = &gumbel_cases[_i];
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_GUMBEL, gc->T, gc->B, 40 + _i);
    c.gan_loss = gc->gan_loss;
    c.anneal = gc->anneal;
    c.gumbel_feed = gc->feed;
    c.beta_max = 4.0f;
    c.anneal_steps = 4;
    chargan_trainer *tr = make_trainer(&c, gc->V, gc->gs, gc->ds, 40 + _i);
    chargan_model *g = tr->gen;
    jitter(g, 1, 0.3f);
    jitter(tr->disc, 2, 1.0f);
    tr->gan.gan_steps = gc->gan_steps;
    ck_assert_double_eq_tol(cg_gan_beta(tr), gc->beta, 1e-12);

    gumbel_ctx ctx = {.tr = tr, .rng0 = tr->rng, .grng0 = g->rng, .beta = gc->beta};
    float *params0 = dup_floats(g->params, g->n_weights);
    float g_loss, d_loss;
    ck_assert_int_eq(chargan_trainer_gan_step(tr, &g_loss, &d_loss), CHARGAN_OK);
    /* the step leaves G's gradient in g->grads (the optimizer reads it) and
     * its hard samples in work.fake */
    float *grads = dup_floats(g->grads, g->n_weights);
    const size_t tb = (size_t)gc->T * gc->B;
    ctx.hard = xcalloc(tb, sizeof(int32_t));
    memcpy(ctx.hard, tr->work.fake, tb * sizeof(int32_t));
    ctx.now = xcalloc(tb, sizeof(int32_t));
    ctx.in = xcalloc((size_t)gc->B, sizeof(int32_t));
    ctx.soft = xcalloc(tb * gc->V, sizeof(float));
    ck_assert_int_ne(memcmp(params0, g->params, g->n_weights * sizeof(float)), 0);
    memcpy(g->params, params0, g->n_weights * sizeof(float));

    double loss;
    ck_assert(gumbel_loss(&ctx, &loss)); /* the same samples as the step's */
    ck_assert_msg(fabs(loss - g_loss) <= 1e-5 * (1.0 + fabs(loss)), "loss %.8g vs step %.8g",
                  loss, (double)g_loss);
    for (size_t k = 0; k < tb * gc->V; k++) /* the relaxed sample the step used */
        ck_assert_msg(fabsf(ctx.soft[k] - tr->work.soft[k]) <= 1e-6f, "soft[%zu]", k);
    size_t skipped = gradcheck_model(g, grads, gumbel_loss, &ctx);
    ck_assert_uint_le(skipped, g->n_weights / 50);

    free(params0);
    free(grads);
    free(ctx.hard);
    free(ctx.now);
    free(ctx.in);
    free(ctx.soft);
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- REINFORCE */

/* The surrogate -mean(A log p(y)) for fixed samples y (fed back as inputs
 * after the window's first id) and fixed advantages A, with the noise and
 * dropout masks of the step. */
typedef struct surrogate_ctx {
    chargan_model *g;
    int T, B;
    cg_rng grng0;
    int32_t *inputs, *samples; /* T x B */
    float *adv;                /* T x B */
    float *z;                  /* B x Z or NULL */
} surrogate_ctx;

static bool surrogate_loss(void *vctx, double *loss)
{
    surrogate_ctx *c = vctx;
    chargan_model *g = c->g;
    const int V = g->V;
    g->rng = c->grng0;
    cg_model_forward(g, c->T, c->B, c->inputs, NULL, c->z, true);
    double s = 0.0;
    const size_t n = (size_t)c->T * c->B;
    for (size_t r = 0; r < n; r++) {
        const float *l = g->ws.logits + r * V;
        double mx = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++) /* not fmax: GCC 12 for arm64 crashes vectorising it */
            mx = l[v] > mx ? l[v] : mx;
        for (int v = 0; v < V; v++)
            sum += exp(l[v] - mx);
        s += c->adv[r] * (mx + log(sum) - l[c->samples[r]]);
    }
    *loss = s / (double)n;
    return true;
}

static const struct {
    shape gs;
    uint32_t rollouts;
} reinforce_cases[] = {
    {{3, 4, 1, 0, 0}, 0},
    {{3, 4, 2, 2, 0.3f}, 0}, /* noise, two layers, dropout */
    {{4, 3, 1, 2, 0}, 2},    /* Monte-Carlo rollouts */
};

START_TEST(reinforce_gradient_is_the_surrogate_gradient)
{
    const int V = 5, T = 4, B = 3;
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_REINFORCE, T, B, 60 + _i);
    c.rollouts = reinforce_cases[_i].rollouts;
    shape ds = {3, 3, 1, 0, 0};
    chargan_trainer *tr = make_trainer(&c, V, reinforce_cases[_i].gs, ds, 60 + _i);
    chargan_model *g = tr->gen;
    jitter(g, 3, 0.3f);
    jitter(tr->disc, 4, 1.5f);
    surrogate_ctx ctx = {.g = g, .T = T, .B = B, .grng0 = g->rng};
    float *params0 = dup_floats(g->params, g->n_weights);
    float g_loss;
    ck_assert_int_eq(chargan_trainer_gan_step(tr, &g_loss, NULL), CHARGAN_OK);
    float *grads = dup_floats(g->grads, g->n_weights);
    const size_t tb = (size_t)T * B;
    ctx.samples = xcalloc(tb, sizeof(int32_t));
    memcpy(ctx.samples, tr->work.fake, tb * sizeof(int32_t));
    ctx.adv = dup_floats(tr->work.weights, tb);
    ctx.inputs = xcalloc(tb, sizeof(int32_t));
    for (int b = 0; b < B; b++) /* the window's first id, then the samples */
        ctx.inputs[b] = tr->windows[(size_t)b * (T + 1)];
    memcpy(ctx.inputs + B, ctx.samples, (tb - B) * sizeof(int32_t));
    ctx.z = g->Z ? dup_floats(tr->z, (size_t)B * g->Z) : NULL;
    memcpy(g->params, params0, g->n_weights * sizeof(float));

    double loss;
    surrogate_loss(&ctx, &loss);
    ck_assert_msg(fabs(loss - g_loss) <= 1e-5 * (1.0 + fabs(loss)), "loss %.8g vs step %.8g",
                  loss, (double)g_loss);
    bool any = false;
    for (size_t i = 0; i < g->n_weights; i++)
        any |= grads[i] != 0.0f;
    ck_assert(any);
    ck_assert_uint_eq(gradcheck_model(g, grads, surrogate_loss, &ctx), 0);
    free(params0);
    free(grads);
    free(ctx.samples);
    free(ctx.adv);
    free(ctx.inputs);
    free(ctx.z);
    chargan_trainer_free(tr);
}
END_TEST

static void set_named(chargan_model *m, const char *name, float value)
{
    size_t idx, n;
    ck_assert_int_eq(chargan_model_param_find(m, name, &idx), CHARGAN_OK);
    chargan_model_param_info(m, idx, NULL, NULL, NULL, &n);
    float *v = xcalloc(n, sizeof(float));
    for (size_t k = 0; k < n; k++)
        v[k] = value;
    ck_assert_int_eq(chargan_model_param_set(m, idx, v, n), CHARGAN_OK);
    free(v);
}

/* A discriminator frozen in practice: SGD with a step of 1e-30 moves no
 * weight of magnitude above ~1e-22, and its logit out.b + h out.w stays
 * out.b exactly while out.w is zero (it becomes ~1e-31). */
static chargan_trainer *constant_d_trainer(uint32_t rollouts, float logit, int T)
{
    const int V = 5, B = 2;
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_REINFORCE, T, B, 70);
    c.gamma = 0.5f;
    c.baseline_decay = 0.9f;
    c.rollouts = rollouts;
    chargan_model *g = make_model(CHARGAN_GENERATOR, V, (shape){3, 4, 1, 0, 0}, 70);
    chargan_model *d = make_model(CHARGAN_DISCRIMINATOR, V, (shape){3, 3, 1, 0, 0}, 71);
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_SGD);
    oc.lr = 1e-30f;
    chargan_optimizer *dopt;
    ck_assert_int_eq(chargan_optimizer_new(&oc, &dopt), CHARGAN_OK);
    set_named(d, "out.w", 0.0f);
    set_named(d, "out.b", logit);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&c, g, NULL, d, dopt, &tr), CHARGAN_OK);
    int32_t ids[50];
    for (int i = 0; i < 50; i++)
        ids[i] = 2 + i % 3;
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 50), CHARGAN_OK);
    return tr;
}

/* With D's logit ln 3 everywhere, r_t = 2 sigmoid(ln 3) - 1 = 1/2; with
 * gamma 1/2 over T = 3 the returns are 7/8, 3/4, 1/2; on the first batch each
 * row's baseline is the other row's return (advantages 0), and the moved
 * baseline the batch's mean.  With logit 0 next, r = 0, the returns are 0,
 * the advantages minus the baseline the step read (7/8, 3/4, 1/2), and the
 * moved baseline 0.9 x that. */
START_TEST(reinforce_returns_and_baseline_by_hand)
{
    chargan_trainer *tr = constant_d_trainer(0, logf(3.0f), 3);
    const int T = 3, B = 2;
    const double R1[3] = {0.875, 0.75, 0.5};
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK);
    ck_assert_uint_eq(tr->gan.baseline_set, 1);
    for (int t = 0; t < T; t++) {
        ck_assert_double_eq_tol(tr->gan.baseline[t], R1[t], 1e-6);
        for (int b = 0; b < B; b++) {
            ck_assert_double_eq_tol(tr->work.rewards[t * B + b], R1[t], 1e-6);
            ck_assert_double_eq_tol(tr->work.weights[t * B + b], 0.0, 1e-6);
        }
    }
    set_named(tr->disc, "out.w", 0.0f);
    set_named(tr->disc, "out.b", 0.0f);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK);
    for (int t = 0; t < T; t++) {
        ck_assert_double_eq_tol(tr->gan.baseline[t], 0.9 * R1[t], 1e-6);
        for (int b = 0; b < B; b++) {
            ck_assert_double_eq_tol(tr->work.rewards[t * B + b], 0.0, 1e-6);
            ck_assert_double_eq_tol(tr->work.weights[t * B + b], -R1[t], 1e-6);
        }
    }
    chargan_trainer_free(tr);

    /* rollouts: every completion scores sigmoid(ln 3) = 3/4, undiscounted */
    tr = constant_d_trainer(2, logf(3.0f), 3);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK);
    for (int k = 0; k < T * B; k++)
        ck_assert_double_eq_tol(tr->work.rewards[k], 0.75, 1e-6);
    chargan_trainer_free(tr);
}
END_TEST

/* Equal rewards (a saturated discriminator gives them) make every advantage
 * exactly 0, step after step: the moved baseline of a batch whose mean is
 * the baseline is the baseline to the bit.  Moved as decay b + (1 - decay) m,
 * it drifted by rounding from the second step (3.439 became 3.4390001), and
 * Adam's update, which divides by the gradient's scale, turned the advantages
 * of rounding error that followed into steps of about lr / 10. */
START_TEST(reinforce_equal_rewards_leave_the_generator)
{
    const int T = 4, B = 2;
    chargan_trainer *tr = constant_d_trainer(0, 1e30f, T); /* rewards 2 sigmoid - 1 = 1 */
    tr->cfg.gamma = 0.9f; /* return 3.439 at t = 0: 0.9 x + 0.1 x rounds up */
    float first[4];
    for (int step = 0; step < 8; step++) {
        ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK);
        if (step == 0)
            memcpy(first, tr->gan.baseline, sizeof first);
        for (int t = 0; t < T; t++) {
            ck_assert_msg(tr->gan.baseline[t] == first[t], "step %d: baseline[%d] %.9g, was %.9g",
                          step, t, (double)tr->gan.baseline[t], (double)first[t]);
            for (int b = 0; b < B; b++)
                ck_assert_msg(tr->work.weights[t * B + b] == 0.0f, "step %d: advantage %.3g",
                              step, (double)tr->work.weights[t * B + b]);
        }
    }
    chargan_trainer_free(tr);
}
END_TEST

/* The same, for a discriminator whose rewards differ by row and step:
 * returns and baseline recomputed from D's per-step outputs on the samples. */
START_TEST(reinforce_returns_and_baseline_recomputed)
{
    const int V = 6, T = 5, B = 4;
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_REINFORCE, T, B, 80);
    c.gamma = 0.8f;
    c.baseline_decay = 0.7f;
    chargan_trainer *tr = make_trainer(&c, V, (shape){3, 4, 1, 0, 0}, (shape){3, 4, 1, 0, 0}, 80);
    jitter(tr->disc, 5, 1.0f);
    double bl[5] = {0};
    for (int step = 0; step < 3; step++) {
        ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK);
        chargan_model *d = tr->disc;
        cg_model_forward(d, T, B, tr->work.fake, NULL, NULL, false);
        double R[5][4];
        for (int b = 0; b < B; b++) {
            double acc = 0.0;
            for (int t = T - 1; t >= 0; t--) {
                acc = (2.0 * sigm(d->ws.logits[t * B + b]) - 1.0) + 0.8 * acc;
                R[t][b] = acc;
            }
        }
        for (int t = 0; t < T; t++) {
            double mean = 0.0;
            for (int b = 0; b < B; b++)
                mean += R[t][b] / B;
            for (int b = 0; b < B; b++) {
                /* the earlier batches' baseline; on the first, the other rows' mean */
                double base = step == 0 ? (B * mean - R[t][b]) / (B - 1) : bl[t];
                ck_assert_double_eq_tol(tr->work.rewards[t * B + b], R[t][b], 1e-5);
                ck_assert_double_eq_tol(tr->work.weights[t * B + b], R[t][b] - base, 1e-5);
            }
            bl[t] = step == 0 ? mean : 0.7 * bl[t] + 0.3 * mean;
            ck_assert_double_eq_tol(tr->gan.baseline[t], bl[t], 1e-5);
        }
    }
    chargan_trainer_free(tr);
}
END_TEST

/* The REINFORCE step's generator gradient is an unbiased estimate: with both
 * models frozen (SGD, step 1e-30) and V = 3, T = 3, so that all 27 sequences
 * can be enumerated, the mean of many steps' gradients equals the exact
 * expectation -(1/T) sum_y p(y) sum_t R_t(y) grad log p(y_t | y_<t) (a
 * baseline has expectation 0 only when it does not depend on the row's own
 * return).  The mean is compared through its slope on the exact gradient:
 * about 1 +- 0.003 at these counts; a baseline that included the batch's own
 * returns gave 1/2 in both cases below (decay 0 at B = 2, and a first step). */
static chargan_model *unbiased_model(chargan_model_kind kind)
{
    const bool gen = kind == CHARGAN_GENERATOR;
    chargan_model *m = make_model(kind, 3, (shape){3, gen ? 4 : 3, 1, 0, 0}, gen ? 11 : 12);
    jitter(m, gen ? 1 : 2, gen ? 0.8f : 1.5f);
    return m;
}

/* The exact expected gradient of the generator's surrogate (free() it). */
static double *reinforce_exact_gradient(float gamma)
{
    enum { V = 3, T = 3, S = 27 };
    chargan_model *g = unbiased_model(CHARGAN_GENERATOR);
    chargan_model *d = unbiased_model(CHARGAN_DISCRIMINATOR);
    int32_t in[T * S], y[T * S]; /* step-major, as the models read them */
    for (int s = 0; s < S; s++) {
        const int32_t seq[T] = {s / 9, s / 3 % 3, s % 3};
        for (int t = 0; t < T; t++) {
            y[t * S + s] = seq[t];
            in[t * S + s] = t == 0 ? 2 : seq[t - 1]; /* the corpus's character starts */
        }
    }
    ck_assert_int_eq(cg_model_reserve(g, T, S), CHARGAN_OK);
    ck_assert_int_eq(cg_model_reserve(d, T, S), CHARGAN_OK);
    cg_model_forward(d, T, S, y, NULL, NULL, false);
    double R[T * S];
    for (int s = 0; s < S; s++) {
        double acc = 0.0;
        for (int t = T - 1; t >= 0; t--) {
            acc = (2.0 * sigm(d->ws.logits[t * S + s]) - 1.0) + gamma * acc;
            R[t * S + s] = acc;
        }
    }
    cg_model_forward(g, T, S, in, NULL, NULL, false);
    double logp[S] = {0};
    for (int t = 0; t < T; t++)
        for (int s = 0; s < S; s++) {
            const float *l = g->ws.logits + (size_t)(t * S + s) * V;
            const double top = fmax(fmax(l[0], l[1]), l[2]);
            const double z = exp(l[0] - top) + exp(l[1] - top) + exp(l[2] - top);
            logp[s] += l[y[t * S + s]] - top - log(z);
        }
    float w[T * S];
    for (int k = 0; k < T * S; k++)
        w[k] = (float)(exp(logp[k % S]) * R[k]);
    cg_model_zero_grad(g);
    cg_softmax_xent(g->ws.logits, (size_t)T * S, V, y, w, 1.0f / T, g->ws.logits);
    cg_model_backward(g, NULL);
    double *exact = xcalloc(g->n_weights, sizeof(double));
    for (size_t i = 0; i < g->n_weights; i++)
        exact[i] = g->grads[i];
    chargan_model_free(g);
    chargan_model_free(d);
    return exact;
}

/* The slope of the mean of n steps' generator gradients on exact. */
static double reinforce_mean_slope(float decay, bool first_steps, int n, const double *exact)
{
    const int T = 3, B = 2;
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_REINFORCE, T, B, 1000);
    c.gamma = 0.9f;
    c.baseline_decay = decay;
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, CHARGAN_SGD);
    oc.lr = 1e-30f;
    chargan_optimizer *gopt, *dopt;
    ck_assert_int_eq(chargan_optimizer_new(&oc, &gopt), CHARGAN_OK);
    ck_assert_int_eq(chargan_optimizer_new(&oc, &dopt), CHARGAN_OK);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&c, unbiased_model(CHARGAN_GENERATOR), gopt,
                                         unbiased_model(CHARGAN_DISCRIMINATOR), dopt, &tr),
                     CHARGAN_OK);
    int32_t ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = 2;
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 64), CHARGAN_OK);
    const size_t P = tr->gen->n_weights;
    double *sum = xcalloc(P, sizeof(double));
    for (int k = 0; k < n; k++) {
        if (first_steps)
            tr->gan.baseline_set = 0;
        ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK);
        for (size_t i = 0; i < P; i++)
            sum[i] += tr->gen->grads[i];
    }
    double along = 0.0, norm = 0.0;
    for (size_t i = 0; i < P; i++) {
        along += sum[i] / n * exact[i];
        norm += exact[i] * exact[i];
    }
    free(sum);
    chargan_trainer_free(tr);
    return along / norm;
}

START_TEST(reinforce_gradient_unbiased)
{
    double *exact = reinforce_exact_gradient(0.9f);
    const double moving = reinforce_mean_slope(0.0f, false, 40000, exact);
    const double first = reinforce_mean_slope(0.9f, true, 40000, exact);
    ck_assert_msg(fabs(moving - 1.0) < 0.03, "moving baseline: mean/exact slope %.4f", moving);
    ck_assert_msg(fabs(first - 1.0) < 0.03, "first step: mean/exact slope %.4f", first);
    free(exact);
}
END_TEST

START_TEST(rollout_rewards_are_probabilities)
{
    const int V = 6, T = 5, B = 3;
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_REINFORCE, T, B, 90);
    c.rollouts = 3;
    chargan_trainer *tr = make_trainer(&c, V, (shape){3, 4, 2, 0, 0}, (shape){3, 4, 1, 0, 0}, 90);
    jitter(tr->disc, 6, 1.0f);
    float *params0 = dup_floats(tr->gen->params, tr->gen->n_weights);
    float g_loss, d_loss;
    ck_assert_int_eq(chargan_trainer_gan_step(tr, &g_loss, &d_loss), CHARGAN_OK);
    ck_assert(isfinite(g_loss) && isfinite(d_loss));
    float lo = 1.0f, hi = 0.0f;
    for (int k = 0; k < T * B; k++) {
        float r = tr->work.rewards[k];
        ck_assert_msg(r >= 0.0f && r <= 1.0f, "reward[%d] = %g", k, r);
        lo = fminf(lo, r);
        hi = fmaxf(hi, r);
    }
    ck_assert_float_gt(hi - lo, 1e-3f); /* informative, not constant */
    /* the last step's reward is D's probability that the full sample is real */
    cg_model_forward(tr->disc, T, B, tr->work.fake, NULL, NULL, false);
    for (int b = 0; b < B; b++)
        ck_assert_double_eq_tol(tr->work.rewards[(T - 1) * B + b],
                                sigm(tr->disc->ws.logits[(T - 1) * B + b]), 1e-6);
    ck_assert_int_ne(memcmp(params0, tr->gen->params, tr->gen->n_weights * sizeof(float)), 0);
    free(params0);
    chargan_trainer_free(tr);
}
END_TEST

/* A generator made greedy (its head scaled by 1e5, so that each draw is the
 * argmax) completes every prefix of its own sample with the rest of that
 * sample: each rollout reward is then D's probability of the whole sample,
 * the last step's reward.  Any completion that starts from a wrong state
 * (the generator's or the discriminator's after another step, or another
 * row's) reads other tokens or from another state, and scores otherwise.
 * B = 200 runs K = 3 rollouts in groups of 2 and 1; threads split the rows. */
START_TEST(rollouts_continue_the_prefix_states)
{
    static const struct {
        int B;
        uint32_t threads;
    } cases[] = {{3, 1}, {3, 2}, {200, 1}, {200, 2}};
    const int V = 6, T = 6, B = cases[_i].B;
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_REINFORCE, T, B, 91);
    c.rollouts = 3;
    c.threads = cases[_i].threads;
    chargan_trainer *tr = make_trainer(&c, V, (shape){3, 5, 2, 2, 0}, (shape){3, 4, 2, 0, 0}, 91);
    jitter(tr->gen, 5, 2.0f);
    jitter(tr->disc, 6, 2.0f);
    chargan_model *g = tr->gen;
    for (size_t i = 0; i < (size_t)g->H * g->V; i++)
        g->out_w[i] *= 1e5f;
    for (int v = 0; v < g->V; v++)
        g->out_b[v] = 0.0f; /* the state, not a bias, picks the token */
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK);
    const float *rw = tr->work.rewards;
    float lo = 1.0f, hi = 0.0f;
    for (int b = 0; b < B; b++) {
        const float whole = rw[(size_t)(T - 1) * B + b];
        lo = fminf(lo, whole);
        hi = fmaxf(hi, whole);
        for (int t = 0; t < T - 1; t++)
            ck_assert_msg(fabsf(rw[(size_t)t * B + b] - whole) < 1e-5f,
                          "B %d, %u threads: row %d, prefix %d: %.7g, the whole sample %.7g", B,
                          c.threads, b, t, rw[(size_t)t * B + b], whole);
    }
    ck_assert_float_gt(hi - lo, 1e-3f); /* the rows' samples differ, and D tells them apart */
    chargan_trainer_free(tr);
}
END_TEST

/* Bitwise equality of two trainers' models, optimizers' step counts and
 * counters. */
static void assert_same_trainers(const chargan_trainer *a, const chargan_trainer *b)
{
    ck_assert_int_eq(memcmp(a->gen->params, b->gen->params, a->gen->n_weights * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(a->disc->params, b->disc->params,
                            a->disc->n_weights * sizeof(float)), 0);
    ck_assert_uint_eq(a->global_step, b->global_step);
    ck_assert_uint_eq(a->d_updates, b->d_updates);
    ck_assert_uint_eq(a->gopt->steps, b->gopt->steps);
    ck_assert_uint_eq(a->dopt->steps, b->dopt->steps);
}

/* Case i: 1 or 2 threads (i even or odd), the discriminator trained by
 * Adam (m and v), SGD without momentum (neither) or RMSprop with momentum
 * (both, another update) for i / 2 = 0, 1, 2. */
static chargan_trainer *stop_test_trainer(int i)
{
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_REINFORCE, 6, 3, 92);
    c.rollouts = 2;
    c.threads = (uint32_t)(1 + i % 2);
    c.report_every = 10;
    static const int kinds[] = {CHARGAN_ADAM, CHARGAN_SGD, CHARGAN_RMSPROP};
    chargan_optimizer_config oc;
    chargan_optimizer_config_init(&oc, kinds[i / 2]);
    oc.momentum = kinds[i / 2] == CHARGAN_RMSPROP ? 0.5f : 0.0f;
    chargan_optimizer *d_opt;
    ck_assert_int_eq(chargan_optimizer_new(&oc, &d_opt), CHARGAN_OK);
    return make_trainer_opt(&c, 6, (shape){3, 4, 1, 2, 0.2f}, (shape){3, 4, 1, 0, 0.2f}, 92,
                            d_opt);
}

/* Inside a running chargan_trainer_adversarial() (long_calls > 0) a stop
 * request ends a round in its rollouts and undoes all of it: the
 * discriminator's step, the counters and the random streams too, so that
 * the round taken again is the round a trainer never stopped takes.  A
 * round called on its own is not a run: it is not stopped. */
START_TEST(rollouts_stop_on_request_inside_a_run)
{
    chargan_trainer *tr = stop_test_trainer(_i);
    chargan_trainer *twin = stop_test_trainer(_i);
    float *d0 = dup_floats(tr->disc->params, tr->disc->n_weights);
    tr->long_calls = 1;
    ck_assert_int_eq(chargan_trainer_request_stop(tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_E_CANCELLED);
    ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr),
                                 "in its rollouts (prefix 1 of 5); the round is undone"));
    ck_assert_int_eq(memcmp(d0, tr->disc->params, tr->disc->n_weights * sizeof(float)), 0);
    ck_assert_uint_eq(tr->gan.baseline_set, 0);
    assert_same_trainers(tr, twin);
    tr->long_calls = 0;
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_gan_step(twin, NULL, NULL), CHARGAN_OK);
    ck_assert_uint_eq(tr->global_step, 1);
    assert_same_trainers(tr, twin);
    free(d0);
    chargan_trainer_free(tr);
    chargan_trainer_free(twin);
}
END_TEST

/* The same through the public calls, the request arriving while round 2's
 * rollouts run (as from a signal handler): the call returns
 * CHARGAN_E_CANCELLED having reported its one finished round, and three
 * more rounds then give the bits of four rounds never stopped. */
static int reported_step;

static int remember_step(const chargan_progress *p, void *user)
{
    (void)user;
    reported_step = (int)p->step;
    return 0;
}

static void stop_in_round_two(chargan_trainer *tr, int prefix)
{
    if (tr->global_step == 1 && prefix == 2)
        chargan_trainer_request_stop(tr);
}

START_TEST(rollouts_stopped_run_resumes_bitwise)
{
    chargan_trainer *tr = stop_test_trainer(_i);
    chargan_trainer *twin = stop_test_trainer(_i);
    ck_assert_int_eq(chargan_trainer_set_progress(tr, remember_step, NULL), CHARGAN_OK);
    reported_step = -1;
    cg_test_rollout_prefix_hook = stop_in_round_two;
    chargan_status st = chargan_trainer_adversarial(tr, 5);
    cg_test_rollout_prefix_hook = NULL;
    ck_assert_int_eq(st, CHARGAN_E_CANCELLED);
    ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr), "prefix 3 of 5"));
    ck_assert_int_eq(reported_step, 1);
    ck_assert_uint_eq(tr->global_step, 1);
    ck_assert_int_eq(chargan_trainer_adversarial(tr, 3), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_adversarial(twin, 4), CHARGAN_OK);
    assert_same_trainers(tr, twin);
    chargan_trainer_free(tr);
    chargan_trainer_free(twin);
}
END_TEST

/* ---------------------------------------------------------------- the discriminator's update */

/* The discriminator's loss, rebuilt: hard samples, per-step BCE (mean over
 * T x B) of real (target 1) plus fake (target 0); relaxed samples, the same
 * on the final step only; relativistic, mean softplus(-(C_r - C_f)) with the
 * fake forward first.  Training mode, with the masks the update drew. */
typedef struct d_ctx {
    chargan_trainer *tr;
    cg_rng drng0;
    int mode; /* 0 hard, 1 relaxed standard, 2 relaxed relativistic */
    float *logits_real, *logits_fake; /* final-step logits of the last evaluation */
} d_ctx;

static bool d_loss_fn(void *vctx, double *loss)
{
    d_ctx *c = vctx;
    chargan_trainer *tr = c->tr;
    chargan_model *d = tr->disc;
    const int T = (int)tr->cfg.seq_len, B = (int)tr->cfg.batch;
    const size_t last = (size_t)(T - 1) * B, tb = (size_t)T * B;
    d->rng = c->drng0;
    if (c->mode == 2) {
        cg_model_forward(d, T, B, NULL, tr->work.soft, NULL, true);
        memcpy(c->logits_fake, d->ws.logits + last, (size_t)B * sizeof(float));
        cg_model_forward(d, T, B, tr->targets, NULL, NULL, true);
        memcpy(c->logits_real, d->ws.logits + last, (size_t)B * sizeof(float));
        double s = 0.0;
        for (int b = 0; b < B; b++)
            s += softplus(-((double)c->logits_real[b] - c->logits_fake[b]));
        *loss = s / B;
        return true;
    }
    const bool soft = c->mode == 1;
    cg_model_forward(d, T, B, tr->targets, NULL, NULL, true);
    memcpy(c->logits_real, d->ws.logits + last, (size_t)B * sizeof(float));
    *loss = soft ? mean_bce(d->ws.logits + last, (size_t)B, 1.0) : mean_bce(d->ws.logits, tb, 1.0);
    if (soft)
        cg_model_forward(d, T, B, NULL, tr->work.soft, NULL, true);
    else
        cg_model_forward(d, T, B, tr->work.fake, NULL, NULL, true);
    memcpy(c->logits_fake, d->ws.logits + last, (size_t)B * sizeof(float));
    *loss += soft ? mean_bce(d->ws.logits + last, (size_t)B, 0.0)
                  : mean_bce(d->ws.logits, tb, 0.0);
    return true;
}

/* chargan_trainer_d_step's gradient (left in d->grads), its loss and its
 * accuracy, for each of the three losses, with recurrent dropout in D. */
START_TEST(discriminator_update_gradient)
{
    const int V = 5, T = 3, B = 3;
    const int estimator = _i == 0 ? CHARGAN_GAN_REINFORCE : CHARGAN_GAN_GUMBEL;
    chargan_trainer_config c = trainer_config(estimator, T, B, 100 + _i);
    c.gan_loss = _i == 2 ? CHARGAN_LOSS_RELATIVISTIC : CHARGAN_LOSS_STANDARD;
    chargan_trainer *tr = make_trainer(&c, V, (shape){3, 4, 1, 2, 0}, (shape){3, 3, 2, 0, 0.4f},
                                       100 + _i);
    chargan_model *d = tr->disc;
    jitter(tr->gen, 7, 0.5f);
    jitter(d, 8, 0.5f);
    d_ctx ctx = {.tr = tr, .drng0 = d->rng, .mode = _i};
    ctx.logits_real = xcalloc((size_t)B, sizeof(float));
    ctx.logits_fake = xcalloc((size_t)B, sizeof(float));
    float *params0 = dup_floats(d->params, d->n_weights);
    float loss, acc;
    ck_assert_int_eq(chargan_trainer_d_step(tr, &loss, &acc), CHARGAN_OK);
    ck_assert_uint_eq(tr->d_updates, 1);
    float *grads = dup_floats(d->grads, d->n_weights);
    ck_assert_int_ne(memcmp(params0, d->params, d->n_weights * sizeof(float)), 0);
    memcpy(d->params, params0, d->n_weights * sizeof(float));
    double want;
    d_loss_fn(&ctx, &want);
    ck_assert_msg(fabs(want - loss) <= 1e-5 * (1.0 + want), "loss %.8g vs step %.8g", want,
                  (double)loss);
    int correct = 0;
    for (int b = 0; b < B; b++)
        correct += (ctx.logits_real[b] > 0.0f) + (ctx.logits_fake[b] < 0.0f);
    ck_assert_float_eq(acc, (float)correct / (2 * B));
    ck_assert_uint_eq(gradcheck_model(d, grads, d_loss_fn, &ctx), 0);
    free(params0);
    free(grads);
    free(ctx.logits_real);
    free(ctx.logits_fake);
    chargan_trainer_free(tr);
}
END_TEST

/* Under the relativistic loss the discriminator's output bias has no
 * gradient (the loss sees C(real) - C(fake) only): it stays where it was, on
 * 1 and 2 threads.  The two passes left a rounding residue that Adam scaled
 * up to steps of up to lr, a different walk per thread count. */
START_TEST(relativistic_loss_leaves_the_output_bias)
{
    const int V = 7, T = 5, B = 6;
    for (uint32_t threads = 1; threads <= 2; threads++) {
        chargan_trainer_config c = trainer_config(CHARGAN_GAN_GUMBEL, T, B, 31);
        c.gan_loss = CHARGAN_LOSS_RELATIVISTIC;
        c.threads = threads;
        chargan_trainer *tr = make_trainer(&c, V, (shape){3, 8, 1, 0, 0}, (shape){3, 8, 1, 0, 0},
                                           31);
        const float b0 = tr->disc->out_b[0];
        for (int k = 0; k < 30; k++) {
            ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, NULL), CHARGAN_OK);
            ck_assert(tr->disc->dout_b[0] == 0.0f);
        }
        ck_assert_msg(tr->disc->out_b[0] == b0, "%u threads: out.b moved from %.9g to %.9g",
                      threads, (double)b0, (double)tr->disc->out_b[0]);
        chargan_trainer_free(tr);
    }
}
END_TEST

/* Pre-training D (E 8, H 16) on sonnet windows of 24 characters against an
 * untrained generator's samples (hard ones, and relaxed ones for the Gumbel
 * estimator), batches of 16.  Measured: the accuracy over 10 fresh batches,
 * each measured before its update, is 0.56 / 0.50 at the start, 0.94 / 1.00
 * after 40 updates, and 1.00 (hard) / 0.99 (relaxed) after the 100 here. */
START_TEST(discriminator_learns)
{
    size_t len;
    char *text = cg_test_read_file(cg_test_corpus_path("sonnets.txt"), &len);
    chargan_tokenizer *tok;
    ck_assert_int_eq(chargan_tokenizer_new(NULL, &tok), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, len), CHARGAN_OK);
    uint32_t V;
    chargan_tokenizer_vocab_size(tok, &V);
    chargan_model *g = make_model(CHARGAN_GENERATOR, (int)V, (shape){8, 16, 1, 0, 0}, 5);
    chargan_model *d = make_model(CHARGAN_DISCRIMINATOR, (int)V, (shape){8, 16, 1, 0, 0}, 6);
    ck_assert_int_eq(chargan_model_set_tokenizer(g, tok), CHARGAN_OK);
    chargan_tokenizer_free(tok);
    chargan_trainer_config c = trainer_config(_i == 0 ? CHARGAN_GAN_NONE : CHARGAN_GAN_GUMBEL, 24,
                                              16, 9);
    chargan_trainer *tr;
    ck_assert_int_eq(chargan_trainer_new(&c, g, NULL, d, NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_text(tr, text, len), CHARGAN_OK);
    free(text);
    float acc0;
    ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, &acc0), CHARGAN_OK);
    const int steps = 100;
    ck_assert_int_eq(chargan_trainer_pretrain_discriminator(tr, steps), CHARGAN_OK);
    double acc = 0.0;
    for (int k = 0; k < 10; k++) {
        float a;
        ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, &a), CHARGAN_OK);
        acc += a / 10.0;
    }
    if (getenv("CHARGAN_GC_REPORT"))
        fprintf(stderr, "discriminator accuracy %.3f (first batch %.3f)\n", acc, (double)acc0);
    ck_assert_msg(acc > 0.9, "accuracy %.3f after %d updates", acc, steps);
    ck_assert_uint_eq(tr->d_updates, steps + 11);
    uint64_t opt_steps;
    chargan_optimizer_steps(chargan_trainer_optimizer(tr, CHARGAN_DISCRIMINATOR), &opt_steps);
    ck_assert_uint_eq(opt_steps, steps + 11);
    ck_assert_uint_eq(tr->global_step, 0); /* G untouched */
    chargan_trainer_free(tr);
}
END_TEST

/* ---------------------------------------------------------------- GAN steps */

/* A GAN step gives every tensor of G a gradient (a real path from D, with no
 * MLE term) and moves its parameters, for each estimator. */
START_TEST(gan_step_moves_the_generator)
{
    static const int est[] = {CHARGAN_GAN_REINFORCE, CHARGAN_GAN_GUMBEL, CHARGAN_GAN_GUMBEL};
    const int V = 6, T = 4, B = 3;
    chargan_trainer_config c = trainer_config(est[_i], T, B, 110);
    c.mle_weight = 0.0f;
    c.gan_loss = _i == 2 ? CHARGAN_LOSS_RELATIVISTIC : CHARGAN_LOSS_STANDARD;
    chargan_trainer *tr = make_trainer(&c, V, (shape){3, 4, 2, 2, 0}, (shape){3, 4, 1, 0, 0}, 110);
    chargan_model *g = tr->gen;
    jitter(tr->disc, 9, 0.5f);
    float *g0 = dup_floats(g->params, g->n_weights);
    float *d0 = dup_floats(tr->disc->params, tr->disc->n_weights);
    float g_loss, d_loss;
    ck_assert_int_eq(chargan_trainer_gan_step(tr, &g_loss, &d_loss), CHARGAN_OK);
    ck_assert(isfinite(g_loss) && isfinite(d_loss));
    for (size_t i = 0; i < g->n_tensors; i++) {
        const cg_tensor *t = &g->tensors[i];
        double norm = 0.0;
        bool moved = false;
        for (size_t k = 0; k < t->numel; k++) {
            norm += (double)g->grads[t->offset + k] * g->grads[t->offset + k];
            moved |= g->params[t->offset + k] != g0[t->offset + k];
        }
        /* noise.w sees z, every other tensor every step */
        ck_assert_msg(norm > 0.0, "%s has no gradient", t->name);
        ck_assert_msg(moved, "%s did not move", t->name);
    }
    ck_assert_int_ne(memcmp(d0, tr->disc->params, tr->disc->n_weights * sizeof(float)), 0);
    uint64_t step;
    ck_assert_int_eq(chargan_trainer_global_step(tr, &step), CHARGAN_OK);
    ck_assert_uint_eq(step, 1);
    ck_assert_uint_eq(tr->gan.gan_steps, 1);
    free(g0);
    free(d0);
    chargan_trainer_free(tr);
}
END_TEST

START_TEST(d_steps_per_generator_step)
{
    chargan_trainer_config c = trainer_config(_i == 0 ? CHARGAN_GAN_REINFORCE : CHARGAN_GAN_GUMBEL,
                                              3, 2, 120);
    c.d_steps = 3;
    chargan_trainer *tr = make_trainer(&c, 5, (shape){3, 3, 1, 0, 0}, (shape){3, 3, 1, 0, 0}, 120);
    for (int k = 1; k <= 2; k++) {
        ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_OK);
        uint64_t gs, ds;
        chargan_optimizer_steps(chargan_trainer_optimizer(tr, CHARGAN_GENERATOR), &gs);
        chargan_optimizer_steps(chargan_trainer_optimizer(tr, CHARGAN_DISCRIMINATOR), &ds);
        ck_assert_uint_eq(gs, (uint64_t)k);
        ck_assert_uint_eq(ds, 3 * (uint64_t)k);
        ck_assert_uint_eq(tr->d_updates, 3 * (uint64_t)k);
        ck_assert_uint_eq(tr->gan.gan_steps, (uint64_t)k);
    }
    chargan_trainer_free(tr);
}
END_TEST

/* mle_weight w adds w x the MLE loss (and gradient) of a fresh real batch,
 * drawn after the adversarial part: two trainers that differ only in w run
 * the same adversarial part, and differ by exactly that term. */
START_TEST(mle_term_is_added_with_its_weight)
{
    const int V = 6, T = 4, B = 3;
    const float w = 0.7f;
    chargan_trainer *tr[2];
    float loss[2];
    float *grads[2];
    for (int k = 0; k < 2; k++) {
        chargan_trainer_config c = trainer_config(
            _i == 0 ? CHARGAN_GAN_REINFORCE : CHARGAN_GAN_GUMBEL, T, B, 130);
        c.mle_weight = k == 0 ? 0.0f : w;
        tr[k] = make_trainer(&c, V, (shape){3, 4, 1, 2, 0}, (shape){3, 3, 1, 0, 0}, 130);
        ck_assert_int_eq(chargan_trainer_gan_step(tr[k], &loss[k], NULL), CHARGAN_OK);
        grads[k] = dup_floats(tr[k]->gen->grads, tr[k]->gen->n_weights);
    }
    /* the MLE batch is what tr[1] drew last; evaluate it at the parameters
     * before the step (tr[0]'s generator before its step: reset both) */
    chargan_model *g = tr[1]->gen;
    chargan_model *fresh = make_model(CHARGAN_GENERATOR, V, (shape){3, 4, 1, 2, 0}, 130);
    memcpy(g->params, fresh->params, g->n_weights * sizeof(float));
    chargan_model_free(fresh);
    const size_t n = (size_t)T * B;
    cg_windows_to_time_major(tr[1]->windows, B, T, tr[1]->inputs, tr[1]->targets);
    cg_model_forward(g, T, B, tr[1]->inputs, NULL, tr[1]->z, true);
    double mle = cg_softmax_xent(g->ws.logits, n, V, tr[1]->targets, NULL, 1.0f / n,
                                 g->ws.logits) / n;
    cg_model_zero_grad(g);
    cg_model_backward(g, NULL);
    ck_assert_msg(fabs((loss[1] - loss[0]) - w * mle) <= 1e-5, "%.8g - %.8g vs %g x %.8g",
                  (double)loss[1], (double)loss[0], (double)w, mle);
    for (size_t i = 0; i < g->n_weights; i++) {
        double want = grads[0][i] + w * g->grads[i];
        ck_assert_msg(fabs(grads[1][i] - want) <= 1e-6 + 1e-4 * fabs(want), "grad %zu: %g vs %g",
                      i, grads[1][i], want);
    }
    for (int k = 0; k < 2; k++) {
        free(grads[k]);
        chargan_trainer_free(tr[k]);
    }
}
END_TEST

START_TEST(beta_schedules)
{
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_GUMBEL, 3, 2, 140);
    c.beta_max = 100.0f;
    c.anneal_steps = 10;
    chargan_trainer *tr = make_trainer(&c, 5, (shape){3, 3, 1, 0, 0}, (shape){3, 3, 1, 0, 0}, 140);
    /* exp: beta_max^(s / anneal_steps), clamped at the end */
    static const struct {
        uint64_t s;
        double exp_beta, lin_beta;
    } at[] = {{0, 1.0, 1.0}, {5, 10.0, 50.5}, {10, 100.0, 100.0}, {25, 100.0, 100.0},
              {1, 1.584893192461113, 10.9}};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        tr->gan.gan_steps = at[k].s;
        tr->cfg.anneal = CHARGAN_ANNEAL_EXP;
        ck_assert_double_eq_tol(cg_gan_beta(tr), at[k].exp_beta, 1e-9);
        tr->cfg.anneal = CHARGAN_ANNEAL_LINEAR;
        ck_assert_double_eq_tol(cg_gan_beta(tr), at[k].lin_beta, 1e-9);
    }
    /* from beta_start: the same ratio per step (exp), the same increment (linear) */
    tr->cfg.beta_start = 4.0f;
    static const struct {
        uint64_t s;
        double exp_beta, lin_beta;
    } from4[] = {{0, 4.0, 4.0}, {5, 20.0, 52.0}, {10, 100.0, 100.0}, {11, 100.0, 100.0}};
    for (size_t k = 0; k < sizeof from4 / sizeof from4[0]; k++) {
        tr->gan.gan_steps = from4[k].s;
        tr->cfg.anneal = CHARGAN_ANNEAL_EXP;
        ck_assert_double_eq_tol(cg_gan_beta(tr), from4[k].exp_beta, 1e-9);
        tr->cfg.anneal = CHARGAN_ANNEAL_LINEAR;
        ck_assert_double_eq_tol(cg_gan_beta(tr), from4[k].lin_beta, 1e-9);
    }
    /* beta_start = beta_max: a fixed temperature (tau = 1 / beta), either schedule */
    tr->cfg.beta_start = tr->cfg.beta_max = 0.5f;
    for (tr->gan.gan_steps = 0; tr->gan.gan_steps < 20; tr->gan.gan_steps += 7) {
        tr->cfg.anneal = CHARGAN_ANNEAL_EXP;
        ck_assert(cg_gan_beta(tr) == 0.5);
        tr->cfg.anneal = CHARGAN_ANNEAL_LINEAR;
        ck_assert(cg_gan_beta(tr) == 0.5);
    }
    tr->cfg.beta_start = 1.0f;
    tr->cfg.beta_max = 1.0f; /* the default: no annealing */
    for (tr->gan.gan_steps = 0; tr->gan.gan_steps < 20; tr->gan.gan_steps += 7)
        ck_assert(cg_gan_beta(tr) == 1.0);
    /* steps drive the schedule */
    tr->cfg.beta_max = 100.0f;
    tr->gan.gan_steps = 0;
    ck_assert_int_eq(chargan_trainer_adversarial(tr, 5), CHARGAN_OK);
    ck_assert_uint_eq(tr->gan.gan_steps, 5);
    ck_assert_double_eq_tol(cg_gan_beta(tr), 50.5, 1e-9);
    chargan_trainer_free(tr);
}
END_TEST

/* Progress reports of the adversarial phase carry the discriminator's loss
 * and accuracy: the accuracy of the round's last discriminator update, a
 * count of correct answers over 2 B, so a multiple of 1 / (2 B). */
typedef struct d_reports {
    int n;
    double loss[8], accuracy[8];
} d_reports;

static int record_d(const chargan_progress *p, void *user)
{
    d_reports *r = user;
    if (p->phase == CHARGAN_PHASE_ADVERSARIAL && r->n < 8) {
        r->loss[r->n] = p->d_loss;
        r->accuracy[r->n] = p->d_accuracy;
        r->n++;
    }
    return 0;
}

START_TEST(adversarial_reports_discriminator_accuracy)
{
    enum { B = 5 };
    static const int estimators[] = {CHARGAN_GAN_REINFORCE, CHARGAN_GAN_GUMBEL};
    chargan_trainer_config c = trainer_config(estimators[_i], 4, B, 160);
    c.report_every = 1;
    chargan_trainer *tr = make_trainer(&c, 6, (shape){3, 4, 1, 0, 0}, (shape){3, 4, 1, 0, 0}, 160);
    d_reports r = {0};
    ck_assert_int_eq(chargan_trainer_set_progress(tr, record_d, &r), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_adversarial(tr, 6), CHARGAN_OK);
    ck_assert_int_eq(r.n, 6);
    double any = 0.0;
    for (int k = 0; k < r.n; k++) {
        double count = r.accuracy[k] * 2 * B;
        ck_assert_msg(r.accuracy[k] >= 0.0 && r.accuracy[k] <= 1.0 &&
                          fabs(count - round(count)) < 1e-5,
                      "report %d: accuracy %g", k, r.accuracy[k]);
        ck_assert(isfinite(r.loss[k]) && r.loss[k] > 0.0);
        any += r.accuracy[k];
    }
    /* an untrained discriminator is right about half the time, not never */
    ck_assert_msg(any > 0.0, "the accuracy was reported as 0 in every round");
    chargan_trainer_free(tr);
}
END_TEST

/* A stop request made in a report stops the adversarial and discriminator
 * phases after that step, the steps done kept; one made between calls stops
 * the next before its first step. */
static int stop_at_third_report(const chargan_progress *p, void *user)
{
    if (p->step == 3)
        chargan_trainer_request_stop(user);
    return 0;
}

START_TEST(adversarial_phases_honour_stop_requests)
{
    static const int estimators[] = {CHARGAN_GAN_REINFORCE, CHARGAN_GAN_GUMBEL};
    chargan_trainer_config c = trainer_config(estimators[_i], 4, 3, 170);
    c.report_every = 1;
    chargan_trainer *tr = make_trainer(&c, 6, (shape){3, 4, 1, 0, 0}, (shape){3, 4, 1, 0, 0}, 170);
    ck_assert_int_eq(chargan_trainer_set_progress(tr, stop_at_third_report, tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_adversarial(tr, 10), CHARGAN_E_CANCELLED);
    ck_assert_uint_eq(tr->global_step, 3);
    ck_assert_uint_eq(tr->d_updates, 3);
    ck_assert_int_eq(chargan_trainer_pretrain_discriminator(tr, 10), CHARGAN_E_CANCELLED);
    ck_assert_uint_eq(tr->d_updates, 6);
    ck_assert_int_eq(chargan_trainer_set_progress(tr, NULL, NULL), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_request_stop(tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_adversarial(tr, 10), CHARGAN_E_CANCELLED);
    ck_assert_int_eq(chargan_trainer_request_stop(tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_pretrain_discriminator(tr, 10), CHARGAN_E_CANCELLED);
    ck_assert_uint_eq(tr->global_step, 3);
    ck_assert_uint_eq(tr->d_updates, 6);
    ck_assert_int_eq(chargan_trainer_adversarial(tr, 2), CHARGAN_OK);
    ck_assert_uint_eq(tr->global_step, 5);
    chargan_trainer_free(tr);
}
END_TEST

/* A progress callback that, at step 2, asks to stop and then evaluates the
 * discriminator: the evaluation stops, and leaves the request to the phase. */
typedef struct {
    chargan_trainer *tr;
    chargan_status nested;
} nested_eval;

static int evaluate_when_asked(const chargan_progress *p, void *user)
{
    nested_eval *n = user;
    if (p->step == 2) {
        double acc;
        chargan_trainer_request_stop(n->tr);
        n->nested = chargan_trainer_eval_discriminator(n->tr, 2, &acc);
    }
    return 0;
}

/* The discriminator's evaluation stops before its next batch when asked,
 * changes nothing (the next gives the accuracy of one never stopped) and
 * answers the request when it returns; made from a progress callback, it
 * stops and leaves the request to the phase, which stops too. */
START_TEST(discriminator_evaluation_honours_stop_requests)
{
    static const int estimators[] = {CHARGAN_GAN_REINFORCE, CHARGAN_GAN_GUMBEL};
    chargan_trainer_config c = trainer_config(estimators[_i], 4, 3, 171);
    c.val_fraction = 0.25f;
    c.report_every = 1;
    chargan_trainer *tr = make_trainer(&c, 6, (shape){3, 4, 1, 0, 0}, (shape){3, 4, 1, 0, 0}, 171);
    double first = -1.0, stopped = -1.0, again = -1.0;
    ck_assert_int_eq(chargan_trainer_eval_discriminator(tr, 3, &first), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_request_stop(tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_eval_discriminator(tr, 3, &stopped), CHARGAN_E_CANCELLED);
    ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr), "before batch 1"));
    ck_assert(stopped == -1.0);
    ck_assert_int_eq(chargan_trainer_eval_discriminator(tr, 3, &again), CHARGAN_OK);
    ck_assert(again == first);
    nested_eval n = {tr, CHARGAN_OK};
    ck_assert_int_eq(chargan_trainer_set_progress(tr, evaluate_when_asked, &n), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_adversarial(tr, 10), CHARGAN_E_CANCELLED);
    ck_assert_int_eq(n.nested, CHARGAN_E_CANCELLED);
    ck_assert_uint_eq(tr->global_step, 2);
    ck_assert_int_eq(chargan_trainer_adversarial(tr, 1), CHARGAN_OK);
    ck_assert_uint_eq(tr->global_step, 3);
    chargan_trainer_free(tr);
}
END_TEST

/* Two trainers with the same seed are bitwise identical after 3 GAN steps of
 * each estimator; another seed differs. */
START_TEST(gan_steps_are_deterministic)
{
    static const struct {
        int estimator, gan_loss;
        uint32_t rollouts;
        float mle_weight;
    } cfgs[] = {{CHARGAN_GAN_REINFORCE, 0, 0, 0.0f},
                {CHARGAN_GAN_REINFORCE, 0, 2, 0.5f},
                {CHARGAN_GAN_GUMBEL, CHARGAN_LOSS_STANDARD, 0, 0.0f},
                {CHARGAN_GAN_GUMBEL, CHARGAN_LOSS_RELATIVISTIC, 0, 0.5f}};
    chargan_trainer *tr[3];
    float loss[3][3];
    for (int k = 0; k < 3; k++) {
        chargan_trainer_config c = trainer_config(cfgs[_i].estimator, 4, 3, k < 2 ? 150 : 151);
        c.gan_loss = cfgs[_i].gan_loss;
        c.rollouts = cfgs[_i].rollouts;
        c.mle_weight = cfgs[_i].mle_weight;
        c.beta_max = 10.0f;
        c.anneal_steps = 3;
        tr[k] = make_trainer(&c, 6, (shape){3, 4, 2, 2, 0.2f}, (shape){3, 4, 1, 0, 0.2f}, 150);
        for (int s = 0; s < 3; s++)
            ck_assert_int_eq(chargan_trainer_gan_step(tr[k], &loss[k][s], NULL), CHARGAN_OK);
    }
    for (int k = 1; k < 3; k++) {
        bool same_g = memcmp(tr[0]->gen->params, tr[k]->gen->params,
                             tr[0]->gen->n_weights * sizeof(float)) == 0;
        bool same_d = memcmp(tr[0]->disc->params, tr[k]->disc->params,
                             tr[0]->disc->n_weights * sizeof(float)) == 0;
        bool same_loss = memcmp(loss[0], loss[k], sizeof loss[0]) == 0;
        ck_assert(same_g == (k == 1) && same_d == (k == 1) && same_loss == (k == 1));
    }
    for (int k = 0; k < 3; k++)
        chargan_trainer_free(tr[k]);
}
END_TEST

/* The trainer's models are handles the caller may use between steps: the
 * NLL of a few sequences (which sizes the generator's workspace for its own
 * shape) must not disturb the next steps. */
START_TEST(public_calls_between_steps)
{
    chargan_trainer *tr[2];
    for (int k = 0; k < 2; k++) {
        chargan_trainer_config c = trainer_config(
            _i == 0 ? CHARGAN_GAN_REINFORCE : CHARGAN_GAN_GUMBEL, 6, 4, 160);
        c.mle_weight = 0.5f;
        c.val_fraction = 0.2f;
        tr[k] = make_trainer(&c, 7, (shape){3, 4, 2, 2, 0.2f}, (shape){3, 4, 1, 0, 0}, 160);
    }
    int32_t seqs[3 * 2] = {2, 3, 4, 5, 6, 2};
    double nll;
    ck_assert_int_eq(chargan_model_nll(chargan_trainer_generator(tr[1]), seqs, 3, 2, &nll),
                     CHARGAN_OK);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(chargan_trainer_gan_step(tr[k], NULL, NULL), CHARGAN_OK);
        ck_assert_int_eq(chargan_trainer_mle_step(tr[k], NULL), CHARGAN_OK);
        ck_assert_int_eq(chargan_trainer_d_step(tr[k], NULL, NULL), CHARGAN_OK);
        ck_assert_int_eq(chargan_trainer_evaluate(tr[k], &nll, NULL), CHARGAN_OK);
        if (k == 0)
            ck_assert_int_eq(chargan_model_nll(tr[0]->gen, seqs, 1, 6, &nll), CHARGAN_OK);
    }
    ck_assert_int_eq(memcmp(tr[0]->gen->params, tr[1]->gen->params,
                            tr[0]->gen->n_weights * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(tr[0]->disc->params, tr[1]->disc->params,
                            tr[0]->disc->n_weights * sizeof(float)), 0);

    /* sizing the workspace back can run out of memory: each step says so,
     * and works once memory is back */
    for (int which = 0; which < 5; which++) {
        chargan_status st;
        ck_assert_int_eq(chargan_model_nll(tr[0]->gen, seqs, 3, 2, &nll), CHARGAN_OK);
        cg_alloc_fail_after(0);
        if (which == 0)
            st = chargan_trainer_gan_step(tr[0], NULL, NULL);
        else if (which == 1)
            st = chargan_trainer_mle_step(tr[0], NULL);
        else if (which == 2)
            st = chargan_trainer_d_step(tr[0], NULL, NULL);
        else if (which == 3)
            st = chargan_trainer_evaluate(tr[0], &nll, NULL);
        else
            st = chargan_trainer_mle_step_batch(tr[0], tr[0]->windows, NULL);
        cg_alloc_fail_after(-1);
        ck_assert_int_eq(st, CHARGAN_E_NOMEM);
        ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr[0]), "workspace"));
    }
    ck_assert_int_eq(chargan_trainer_gan_step(tr[0], NULL, NULL), CHARGAN_OK);
    for (int k = 0; k < 2; k++)
        chargan_trainer_free(tr[k]);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(failed_round_writes_no_loss)
{
    /* The generator's update overflows (output weights of +-3e38) after the
     * round's discriminator step has its loss: the call fails with neither
     * output written (d_loss was). */
    const shape s = {4, 8, 1, 0, 0};
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_REINFORCE, 8, 4, 171);
    chargan_trainer *tr = make_trainer(&c, 31, s, s, 172);
    chargan_model *g = chargan_trainer_generator(tr);
    size_t idx, n;
    ck_assert_int_eq(chargan_model_param_find(g, "out.w", &idx), CHARGAN_OK);
    ck_assert_int_eq(chargan_model_param_info(g, idx, NULL, NULL, NULL, &n), CHARGAN_OK);
    float *w = malloc(n * sizeof *w);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < n; i++)
        w[i] = i % 2 ? 3e38f : -3e38f;
    ck_assert_int_eq(chargan_model_param_set(g, idx, w, n), CHARGAN_OK);
    free(w);
    float g_loss = -42.0f, d_loss = -42.0f;
    ck_assert_int_eq(chargan_trainer_gan_step(tr, &g_loss, &d_loss), CHARGAN_E_NUMERIC);
    ck_assert(g_loss == -42.0f);
    ck_assert(d_loss == -42.0f);
    chargan_trainer_free(tr);
}
END_TEST

START_TEST(error_paths)
{
    const shape s = {3, 3, 1, 0, 0};
    chargan_trainer_config c = trainer_config(CHARGAN_GAN_REINFORCE, 3, 2, 170);
    chargan_model *g = make_model(CHARGAN_GENERATOR, 5, s, 1);
    chargan_model *d = make_model(CHARGAN_DISCRIMINATOR, 5, s, 2);
    chargan_model *d6 = make_model(CHARGAN_DISCRIMINATOR, 6, s, 3);
    chargan_trainer *tr = NULL;

    /* an estimator without a discriminator; mismatched vocabularies; swapped
     * kinds: invalid, and the caller keeps the models */
    ck_assert_int_eq(chargan_trainer_new(&c, g, NULL, NULL, NULL, &tr), CHARGAN_E_INVALID);
    ck_assert_ptr_nonnull(strstr(chargan_last_error(), "discriminator"));
    ck_assert_int_eq(chargan_trainer_new(&c, g, NULL, d6, NULL, &tr), CHARGAN_E_INVALID);
    ck_assert_ptr_nonnull(strstr(chargan_last_error(), "vocabularies differ"));
    ck_assert_int_eq(chargan_trainer_new(&c, d, NULL, g, NULL, &tr), CHARGAN_E_INVALID);
    ck_assert_ptr_null(tr);
    c.estimator = 3;
    ck_assert_int_eq(chargan_trainer_new(&c, g, NULL, d, NULL, &tr), CHARGAN_E_INVALID);
    ck_assert_ptr_nonnull(strstr(chargan_last_error(), "estimator"));
    chargan_model_free(d6);

    /* no estimator: gan_step refuses (with and without a discriminator) */
    c.estimator = CHARGAN_GAN_NONE;
    chargan_model *g2 = make_model(CHARGAN_GENERATOR, 5, s, 4);
    ck_assert_int_eq(chargan_trainer_new(&c, g2, NULL, NULL, NULL, &tr), CHARGAN_OK);
    int32_t ids[20] = {2, 3, 4, 2, 3, 4, 2, 3, 4, 2, 3, 4, 2, 3, 4, 2, 3, 4, 2, 3};
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 20), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_E_STATE);
    ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr), "estimator"));
    ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, NULL), CHARGAN_E_STATE);
    ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr), "discriminator"));
    ck_assert_int_eq(chargan_trainer_pretrain_discriminator(tr, 2), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_adversarial(tr, 2), CHARGAN_E_STATE);
    chargan_trainer_free(tr);
    ck_assert_int_eq(chargan_trainer_new(&c, g, NULL, d, NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 20), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, NULL), CHARGAN_OK); /* pre-training is fine */
    chargan_trainer_free(tr);

    /* no corpus yet; NULL trainer */
    c.estimator = CHARGAN_GAN_GUMBEL;
    g = make_model(CHARGAN_GENERATOR, 5, s, 5);
    d = make_model(CHARGAN_DISCRIMINATOR, 5, s, 6);
    ck_assert_int_eq(chargan_trainer_new(&c, g, NULL, d, NULL, &tr), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_E_STATE);
    ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr), "corpus"));
    ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, NULL), CHARGAN_E_STATE);
    ck_assert_int_eq(chargan_trainer_gan_step(NULL, NULL, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_d_step(NULL, NULL, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_adversarial(NULL, 1), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_pretrain_discriminator(NULL, 1), CHARGAN_E_INVALID);

    /* a discriminator gone non-finite: its update refuses, nothing moves */
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 20), CHARGAN_OK);
    d->params[d->tensors[d->n_tensors - 1].offset] = NAN; /* out.b */
    float *g0 = dup_floats(g->params, g->n_weights);
    ck_assert_int_eq(chargan_trainer_gan_step(tr, NULL, NULL), CHARGAN_E_NUMERIC);
    ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr), "discriminator update 1"));
    ck_assert_int_eq(chargan_trainer_d_step(tr, NULL, NULL), CHARGAN_E_NUMERIC);
    ck_assert_int_eq(memcmp(g0, g->params, g->n_weights * sizeof(float)), 0);
    ck_assert_uint_eq(tr->d_updates, 0);
    ck_assert_uint_eq(tr->global_step, 0);
    free(g0);
    chargan_trainer_free(tr);
}
END_TEST

/* An allocation failure at each point of creating an adversarial trainer
 * reports CHARGAN_E_NOMEM and leaks nothing (the caller keeps the models). */
START_TEST(allocation_failures)
{
    const shape s = {3, 3, 2, 2, 0.1f};
    int failures = 0;
    for (long k = 0; k < 400; k++) {
        chargan_trainer_config c = trainer_config(
            _i == 0 ? CHARGAN_GAN_REINFORCE : CHARGAN_GAN_GUMBEL, 3, 2, 180);
        c.rollouts = _i == 0 ? 2 : 0;
        chargan_model *g = make_model(CHARGAN_GENERATOR, 5, s, 1);
        chargan_model *d = make_model(CHARGAN_DISCRIMINATOR, 5, (shape){3, 3, 1, 0, 0}, 2);
        chargan_trainer *tr = NULL;
        cg_alloc_fail_after(k);
        chargan_status st = chargan_trainer_new(&c, g, NULL, d, NULL, &tr);
        cg_alloc_fail_after(-1);
        if (st == CHARGAN_OK) {
            chargan_trainer_free(tr);
            break;
        }
        ck_assert_int_eq(st, CHARGAN_E_NOMEM);
        chargan_model_free(g);
        chargan_model_free(d);
        failures++;
    }
    ck_assert_int_gt(failures, 10);
}
END_TEST

/* ---------------------------------------------------------------- suite */

static Suite *gan_suite(void)
{
    Suite *s = suite_create("gan");
    TCase *tc = tcase_create("gradcheck");
    tcase_add_loop_test(tc, gumbel_generator_gradient_end_to_end, 0,
                        (int)(sizeof gumbel_cases / sizeof gumbel_cases[0]));
    tcase_add_loop_test(tc, reinforce_gradient_is_the_surrogate_gradient, 0,
                        (int)(sizeof reinforce_cases / sizeof reinforce_cases[0]));
    tcase_add_loop_test(tc, discriminator_update_gradient, 0, 3);
    tcase_add_test(tc, relativistic_loss_leaves_the_output_bias);
    suite_add_tcase(s, tc);
    tc = tcase_create("estimators");
    tcase_add_test(tc, reinforce_returns_and_baseline_by_hand);
    tcase_add_test(tc, reinforce_equal_rewards_leave_the_generator);
    tcase_add_test(tc, reinforce_returns_and_baseline_recomputed);
    tcase_add_test(tc, reinforce_gradient_unbiased);
    tcase_add_test(tc, rollout_rewards_are_probabilities);
    tcase_add_loop_test(tc, rollouts_continue_the_prefix_states, 0, 4);
    tcase_add_loop_test(tc, rollouts_stop_on_request_inside_a_run, 0, 6);
    tcase_add_loop_test(tc, rollouts_stopped_run_resumes_bitwise, 0, 6);
    tcase_add_loop_test(tc, discriminator_learns, 0, 2);
    tcase_add_loop_test(tc, gan_step_moves_the_generator, 0, 3);
    tcase_add_loop_test(tc, d_steps_per_generator_step, 0, 2);
    tcase_add_loop_test(tc, mle_term_is_added_with_its_weight, 0, 2);
    tcase_add_test(tc, beta_schedules);
    tcase_add_loop_test(tc, adversarial_reports_discriminator_accuracy, 0, 2);
    tcase_add_loop_test(tc, adversarial_phases_honour_stop_requests, 0, 2);
    tcase_add_loop_test(tc, discriminator_evaluation_honours_stop_requests, 0, 2);
    tcase_add_loop_test(tc, gan_steps_are_deterministic, 0, 4);
    tcase_add_loop_test(tc, public_calls_between_steps, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, failed_round_writes_no_loss);
    tcase_add_test(tc, error_paths);
    tcase_add_loop_test(tc, allocation_failures, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(gan_suite)
