/* test_layers.c - embedding (hard and soft), dense, the fused losses and the
 * scaled row softmax: forwards against naive double computations, backwards
 * against central finite differences, and the numerical edge cases of the
 * losses. */
#include "test_common.h"
#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

static float *frandom(cg_rng *rng, size_t n, float scale)
{
    float *p = falloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = scale * (2.0f * cg_rng_uniform(rng) - 1.0f);
    return p;
}

static double fdot(const float *r, const float *v, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)r[i] * v[i];
    return s;
}

static int rand_in(cg_rng *rng, int lo, int hi)
{
    return lo + (int)cg_rng_below(rng, (uint64_t)(hi - lo + 1));
}

/* Finite differences: central, step 1e-2 in float on values of magnitude
 * <= ~2.  The layers here are linear in what is perturbed (embedding, dense)
 * or smooth with small third derivatives (softmax, sigmoid: |f'''| <= 1, so
 * truncation <= eps^2/6 ~ 2e-5), and each loss is evaluated on the fewest
 * rows that depend on the perturbed value, so output rounding (~1e-7
 * relative, divided by 2 eps) stays near 1e-5.  Tolerance: 1e-4 absolute
 * plus 1e-3 relative: several times those errors, far below the O(1) error
 * of a wrong gradient. */
#define GC_EPS 1e-2f
#define GC_ATOL 1e-4
#define GC_RTOL 1e-3

static void check_close(const char *what, size_t k, double analytic, double numeric)
{
    const double err = fabs(analytic - numeric);
    const double tol = GC_ATOL + GC_RTOL * fmax(fabs(analytic), fabs(numeric));
    ck_assert_msg(err <= tol, "%s[%zu]: analytic %.8g vs numeric %.8g", what, k, analytic,
                  numeric);
}

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

/* ---------------------------------------------------------------- embedding */

typedef struct emb_problem {
    int vocab, dim;
    size_t n;
    float *table, *probs, *out, *r;
    int32_t *ids;
} emb_problem;

static double emb_loss(void *ctx)
{
    emb_problem *p = ctx;
    cg_embedding_forward(p->table, p->dim, p->ids, p->n, p->out);
    return fdot(p->r, p->out, p->n * (size_t)p->dim);
}

static double soft_loss(void *ctx)
{
    emb_problem *p = ctx;
    cg_embedding_soft_forward(p->table, p->vocab, p->dim, p->probs, p->n, p->out);
    return fdot(p->r, p->out, p->n * (size_t)p->dim);
}

static void emb_problem_init(emb_problem *p, cg_rng *rng, int vocab, int dim, size_t n)
{
    p->vocab = vocab;
    p->dim = dim;
    p->n = n;
    p->table = frandom(rng, (size_t)vocab * dim, 1.0f);
    p->probs = falloc(n * (size_t)vocab);
    /* Rows of a softmax, as a relaxed one-hot is. */
    for (size_t i = 0; i < n * (size_t)vocab; i++)
        p->probs[i] = 3.0f * cg_rng_uniform(rng);
    cg_softmax_rows(p->probs, n, vocab, 1.0f);
    p->out = falloc(n * (size_t)dim);
    p->r = frandom(rng, n * (size_t)dim, 1.0f);
    p->ids = calloc(n ? n : 1, sizeof(int32_t));
    ck_assert_ptr_nonnull(p->ids);
    for (size_t i = 0; i < n; i++)
        p->ids[i] = rand_in(rng, 0, vocab - 1);
}

static void emb_problem_free(emb_problem *p)
{
    free(p->table);
    free(p->probs);
    free(p->out);
    free(p->r);
    free(p->ids);
}

START_TEST(embedding_forward_looks_up_rows)
{
    const float table[3 * 2] = {1, 2, 3, 4, 5, 6};
    const int32_t ids[4] = {2, 0, 2, 1};
    float out[8];
    cg_embedding_forward(table, 2, ids, 4, out);
    const float want[8] = {5, 6, 1, 2, 5, 6, 3, 4};
    ck_assert(memcmp(out, want, sizeof want) == 0);
    /* Backward: rows add up per id, other rows untouched. */
    float dtable[6] = {0, 0, 0, 0, 0, 0};
    const float dout[8] = {1, 1, 2, 2, 10, 10, 3, 3};
    cg_embedding_backward(dtable, 2, ids, 4, dout);
    const float wantd[6] = {2, 2, 3, 3, 11, 11};
    ck_assert(memcmp(dtable, wantd, sizeof wantd) == 0);
}
END_TEST

START_TEST(embedding_gradcheck)
{
    cg_rng rng;
    cg_rng_seed(&rng, 21);
    for (int s = 0; s < 8; s++) {
        emb_problem p;
        const int vocab = s == 0 ? 1 : rand_in(&rng, 2, 9), dim = s == 0 ? 1 : rand_in(&rng, 1, 6);
        emb_problem_init(&p, &rng, vocab, dim, s == 0 ? 1 : (size_t)rand_in(&rng, 1, 12));
        float *dtable = frandom(&rng, (size_t)vocab * dim, 1.0f), *before = falloc((size_t)vocab * dim);
        memcpy(before, dtable, (size_t)vocab * dim * sizeof(float));
        cg_embedding_backward(dtable, dim, p.ids, p.n, p.r);
        for (size_t k = 0; k < (size_t)vocab * dim; k++)
            dtable[k] -= before[k]; /* it accumulates */
        check_array("dtable", p.table, (size_t)vocab * dim, dtable, emb_loss, &p);
        free(dtable);
        free(before);
        emb_problem_free(&p);
    }
}
END_TEST

START_TEST(soft_embedding_matches_product_and_lookup)
{
    cg_rng rng;
    cg_rng_seed(&rng, 22);
    emb_problem p;
    emb_problem_init(&p, &rng, 7, 5, 9);
    cg_embedding_soft_forward(p.table, 7, 5, p.probs, 9, p.out);
    for (size_t i = 0; i < 9; i++)
        for (size_t j = 0; j < 5; j++) {
            double s = 0.0;
            for (size_t v = 0; v < 7; v++)
                s += (double)p.probs[i * 7 + v] * p.table[v * 5 + j];
            ck_assert(fabs(p.out[i * 5 + j] - s) <= 1e-6);
        }
    /* Exact one-hots select rows, bitwise like the hard lookup. */
    float *hard = falloc(9 * 5);
    memset(p.probs, 0, 9 * 7 * sizeof(float));
    for (size_t i = 0; i < 9; i++)
        p.probs[i * 7 + (size_t)p.ids[i]] = 1.0f;
    cg_embedding_soft_forward(p.table, 7, 5, p.probs, 9, p.out);
    cg_embedding_forward(p.table, 5, p.ids, 9, hard);
    ck_assert(memcmp(hard, p.out, 9 * 5 * sizeof(float)) == 0);
    free(hard);
    emb_problem_free(&p);
}
END_TEST

START_TEST(soft_embedding_gradcheck)
{
    cg_rng rng;
    cg_rng_seed(&rng, 23);
    for (int s = 0; s < 8; s++) {
        const int vocab = s == 0 ? 1 : rand_in(&rng, 2, 9), dim = s == 0 ? 1 : rand_in(&rng, 1, 6);
        const size_t n = s == 0 ? 1 : (size_t)rand_in(&rng, 1, 7);
        emb_problem p;
        emb_problem_init(&p, &rng, vocab, dim, n);
        const size_t nt = (size_t)vocab * dim, np = n * (size_t)vocab;
        float *dtable = falloc(nt), *dprobs = frandom(&rng, np, 9.0f); /* overwritten */
        float *dtable2 = falloc(nt), *dprobs2 = falloc(np);
        cg_embedding_soft_backward(p.table, vocab, dim, p.probs, n, p.r, dtable, dprobs);
        check_array("dtable", p.table, nt, dtable, soft_loss, &p);
        check_array("dprobs", p.probs, np, dprobs, soft_loss, &p);
        /* Each output on its own, and dtable accumulates. */
        cg_embedding_soft_backward(p.table, vocab, dim, p.probs, n, p.r, NULL, dprobs2);
        ck_assert(memcmp(dprobs, dprobs2, np * sizeof(float)) == 0);
        cg_embedding_soft_backward(p.table, vocab, dim, p.probs, n, p.r, dtable2, NULL);
        cg_embedding_soft_backward(p.table, vocab, dim, p.probs, n, p.r, dtable2, NULL);
        for (size_t k = 0; k < nt; k++)
            ck_assert(fabsf(dtable2[k] - 2.0f * dtable[k]) <= 1e-6f * (1.0f + fabsf(dtable[k])));
        free(dtable);
        free(dprobs);
        free(dtable2);
        free(dprobs2);
        emb_problem_free(&p);
    }
}
END_TEST

/* ---------------------------------------------------------------- dense */

typedef struct dense_problem {
    int in, out;
    size_t n;
    float *w, *b, *x, *y, *r;
} dense_problem;

static double dense_loss(void *ctx)
{
    dense_problem *p = ctx;
    cg_dense_forward(p->w, p->b, p->in, p->out, p->n, p->x, p->y);
    return fdot(p->r, p->y, p->n * (size_t)p->out);
}

START_TEST(dense_forward_matches_naive)
{
    cg_rng rng;
    cg_rng_seed(&rng, 31);
    const int in = 6, out = 5;
    const size_t n = 7;
    float *w = frandom(&rng, (size_t)in * out, 1.0f), *b = frandom(&rng, (size_t)out, 1.0f);
    float *x = frandom(&rng, n * in, 1.0f), *y = frandom(&rng, n * out, 1.0f);
    float *y0 = frandom(&rng, n * out, 1.0f);
    cg_dense_forward(w, b, in, out, n, x, y);
    cg_dense_forward(w, NULL, in, out, n, x, y0); /* no bias: y overwritten, not added to */
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < out; j++) {
            double s = 0.0;
            for (int k = 0; k < in; k++)
                s += (double)x[i * in + (size_t)k] * w[(size_t)k * out + (size_t)j];
            ck_assert(fabs(y0[i * out + (size_t)j] - s) <= 1e-5);
            ck_assert(fabs(y[i * out + (size_t)j] - (s + b[j])) <= 1e-5);
        }
    free(w);
    free(b);
    free(x);
    free(y);
    free(y0);
}
END_TEST

START_TEST(dense_gradcheck)
{
    cg_rng rng;
    cg_rng_seed(&rng, 32);
    for (int s = 0; s < 10; s++) {
        dense_problem p;
        p.in = s == 0 ? 1 : rand_in(&rng, 1, 7);
        p.out = s == 0 ? 1 : rand_in(&rng, 1, 7);
        p.n = s == 0 ? 1 : (size_t)rand_in(&rng, 1, 8);
        const size_t nw = (size_t)p.in * p.out, nx = p.n * p.in, ny = p.n * p.out;
        p.w = frandom(&rng, nw, 1.0f);
        p.b = frandom(&rng, (size_t)p.out, 1.0f);
        p.x = frandom(&rng, nx, 1.0f);
        p.y = falloc(ny);
        p.r = frandom(&rng, ny, 1.0f);
        float *dw = falloc(nw), *db = falloc((size_t)p.out), *dx = frandom(&rng, nx, 5.0f);
        cg_dense_backward(p.w, p.in, p.out, p.n, p.x, p.r, dw, db, dx);
        check_array("dw", p.w, nw, dw, dense_loss, &p);
        check_array("db", p.b, (size_t)p.out, db, dense_loss, &p);
        check_array("dx", p.x, nx, dx, dense_loss, &p);
        /* dw and db accumulate; dx is overwritten; NULL skips. */
        float *dx2 = frandom(&rng, nx, 5.0f);
        cg_dense_backward(p.w, p.in, p.out, p.n, p.x, p.r, dw, db, NULL);
        cg_dense_backward(p.w, p.in, p.out, p.n, p.x, p.r, NULL, NULL, dx2);
        ck_assert(memcmp(dx, dx2, nx * sizeof(float)) == 0);
        float *dw1 = falloc(nw), *db1 = falloc((size_t)p.out);
        cg_dense_backward(p.w, p.in, p.out, p.n, p.x, p.r, dw1, db1, NULL);
        for (size_t k = 0; k < nw; k++)
            ck_assert(fabsf(dw[k] - 2.0f * dw1[k]) <= 1e-6f * (1.0f + fabsf(dw1[k])));
        for (int k = 0; k < p.out; k++)
            ck_assert(fabsf(db[k] - 2.0f * db1[k]) <= 1e-6f * (1.0f + fabsf(db1[k])));
        float *bufs[] = {p.w, p.b, p.x, p.y, p.r, dw, db, dx, dx2, dw1, db1};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            free(bufs[i]);
    }
}
END_TEST

/* ---------------------------------------------------------------- softmax cross-entropy */

/* -log softmax(x)[t] in double, the naive way (fine for moderate x). */
static double naive_xent(const float *x, int vocab, int t)
{
    double s = 0.0;
    for (int j = 0; j < vocab; j++)
        s += exp((double)x[j]);
    return log(s) - x[t];
}

typedef struct xent_row {
    float *x;
    int vocab;
    int32_t target;
    float weight;
} xent_row;

static double xent_row_loss(void *ctx)
{
    xent_row *r = ctx;
    return cg_softmax_xent(r->x, 1, r->vocab, &r->target, &r->weight, 1.0f, NULL);
}

START_TEST(softmax_xent_gradcheck)
{
    cg_rng rng;
    cg_rng_seed(&rng, 41);
    for (int s = 0; s < 12; s++) {
        const int vocab = s == 0 ? 2 : rand_in(&rng, 2, 12);
        const size_t n = s == 0 ? 1 : (size_t)rand_in(&rng, 1, 6);
        const bool weighted = s % 2 == 1;
        const float grad_scale = s % 3 == 0 ? 1.0f : 0.25f;
        float *x = frandom(&rng, n * vocab, 2.0f), *d = frandom(&rng, n * vocab, 9.0f);
        float *w = weighted ? falloc(n) : NULL;
        int32_t *t = calloc(n, sizeof(int32_t));
        ck_assert_ptr_nonnull(t);
        for (size_t i = 0; i < n; i++) {
            t[i] = rand_in(&rng, 0, vocab - 1);
            if (w)
                w[i] = i == 0 ? 0.0f : 2.0f * cg_rng_uniform(&rng); /* a zero weight too */
        }
        const double loss = cg_softmax_xent(x, n, vocab, t, w, grad_scale, d);
        /* The loss against the naive formula; without dlogits it is the same. */
        double want = 0.0;
        for (size_t i = 0; i < n; i++)
            want += (w ? w[i] : 1.0) * naive_xent(x + i * vocab, vocab, t[i]);
        ck_assert(fabs(loss - want) <= 1e-6 * (1.0 + fabs(want)));
        ck_assert(cg_softmax_xent(x, n, vocab, t, w, grad_scale, NULL) == loss);
        /* Row by row: the gradient divided by grad_scale is that of the
         * row's weighted loss (which is all that depends on the row). */
        for (size_t i = 0; i < n; i++) {
            xent_row row = {x + i * vocab, vocab, t[i], w ? w[i] : 1.0f};
            float *g = falloc((size_t)vocab);
            for (int j = 0; j < vocab; j++)
                g[j] = d[i * vocab + (size_t)j] / grad_scale;
            check_array("dlogits", row.x, (size_t)vocab, g, xent_row_loss, &row);
            free(g);
        }
        /* In place: dlogits == logits gives the same loss and gradient. */
        ck_assert(cg_softmax_xent(x, n, vocab, t, w, grad_scale, x) == loss);
        ck_assert(memcmp(x, d, n * vocab * sizeof(float)) == 0);
        free(x);
        free(d);
        free(w);
        free(t);
    }
}
END_TEST

START_TEST(softmax_xent_uniform_and_extreme_logits)
{
    /* Uniform logits: log V per row, whatever the common value. */
    const int vocab = 37;
    float x[3 * 37], d[3 * 37];
    for (int i = 0; i < 3 * vocab; i++)
        x[i] = i < vocab ? 0.0f : (i < 2 * vocab ? 1e4f : -3.5f);
    const int32_t t[3] = {0, 5, 36};
    const double loss = cg_softmax_xent(x, 3, vocab, t, NULL, 1.0f, d);
    ck_assert_double_eq_tol(loss, 3.0 * log(37.0), 1e-12);
    for (int i = 0; i < 3 * vocab; i++) {
        const double want = 1.0 / vocab - ((i % vocab) == t[i / vocab] ? 1.0 : 0.0);
        ck_assert(fabs(d[i] - want) <= 1e-7);
    }
    /* Logits far apart: no overflow, the exact limit values. */
    const float big[3] = {1e30f, -1e30f, 0.0f};
    const int32_t t0 = 0, t1 = 1;
    float g[3];
    ck_assert(cg_softmax_xent(big, 1, 3, &t0, NULL, 1.0f, g) == 0.0);
    ck_assert(g[0] == 0.0f && g[1] == 0.0f && g[2] == 0.0f);
    const double l1 = cg_softmax_xent(big, 1, 3, &t1, NULL, 1.0f, g);
    ck_assert_msg(isfinite(l1) && l1 == 2.0 * (double)big[0], "loss %a, not 2 x %a", l1,
                  (double)big[0]);
    ck_assert(g[0] == 1.0f && g[1] == -1.0f && g[2] == 0.0f);
    /* n = 0: nothing. */
    ck_assert(cg_softmax_xent(big, 0, 3, &t0, NULL, 1.0f, g) == 0.0);
}
END_TEST

/* ---------------------------------------------------------------- binary cross-entropy */

typedef struct bce_one {
    float x, y, w;
} bce_one;

static double bce_one_loss(void *ctx)
{
    bce_one *b = ctx;
    return cg_bce_logits(&b->x, 1, &b->y, &b->w, 1.0f, NULL);
}

START_TEST(bce_logits_gradcheck)
{
    cg_rng rng;
    cg_rng_seed(&rng, 51);
    const size_t n = 40;
    float *x = frandom(&rng, n, 6.0f), *y = falloc(n), *w = falloc(n), *d = falloc(n);
    for (size_t i = 0; i < n; i++) {
        y[i] = i % 3 == 0 ? 0.0f : (i % 3 == 1 ? 1.0f : cg_rng_uniform(&rng)); /* soft labels too */
        w[i] = 2.0f * cg_rng_uniform(&rng);
    }
    for (int weighted = 0; weighted < 2; weighted++) {
        const float *wp = weighted ? w : NULL;
        const double loss = cg_bce_logits(x, n, y, wp, 0.5f, d);
        double want = 0.0;
        for (size_t i = 0; i < n; i++) {
            const double s = 1.0 / (1.0 + exp(-(double)x[i]));
            want += (wp ? wp[i] : 1.0) * -(y[i] * log(s) + (1.0 - y[i]) * log(1.0 - s));
        }
        ck_assert(fabs(loss - want) <= 1e-9 * (1.0 + want));
        ck_assert(cg_bce_logits(x, n, y, wp, 0.5f, NULL) == loss);
        for (size_t i = 0; i < n; i++) {
            bce_one one = {x[i], y[i], wp ? wp[i] : 1.0f};
            const float g = d[i] / 0.5f;
            check_array("dlogits", &one.x, 1, &g, bce_one_loss, &one);
        }
        /* In place. */
        float *xc = falloc(n);
        memcpy(xc, x, n * sizeof(float));
        ck_assert(cg_bce_logits(xc, n, y, wp, 0.5f, xc) == loss);
        ck_assert(memcmp(xc, d, n * sizeof(float)) == 0);
        free(xc);
    }
    free(x);
    free(y);
    free(w);
    free(d);
}
END_TEST

START_TEST(bce_logits_extremes_are_exact)
{
    const float x[6] = {1000.0f, -1000.0f, 1000.0f, -1000.0f, 1e30f, -1e30f};
    const float y[6] = {0.0f, 1.0f, 1.0f, 0.0f, 0.0f, 1.0f};
    float d[6];
    for (int i = 0; i < 6; i++) {
        const double l = cg_bce_logits(x + i, 1, y + i, NULL, 1.0f, d + i);
        /* Confident and wrong: exactly |x|; confident and right: exactly 0
         * (e^-1000 underflows; log1p of it is 0). */
        const double want = (i == 2 || i == 3) ? 0.0 : fabs((double)x[i]);
        ck_assert_msg(l == want, "bce(%g, %g) = %.17g", x[i], y[i], l);
        const float g = (x[i] > 0 ? 1.0f : 0.0f) - y[i];
        ck_assert(d[i] == g);
    }
    /* Zero logit: log 2 whatever the label, gradient 1/2 - y. */
    const float z = 0.0f, half = 0.5f;
    ck_assert_double_eq_tol(cg_bce_logits(&z, 1, &half, NULL, 1.0f, d), log(2.0), 1e-15);
    ck_assert(d[0] == 0.0f);
    /* The tail is kept, not rounded away: bce(40, 1) = log1p(e^-40). */
    const float forty = 40.0f, one = 1.0f;
    ck_assert_double_eq_tol(cg_bce_logits(&forty, 1, &one, NULL, 1.0f, NULL), log1p(exp(-40.0)),
                            1e-30);
}
END_TEST

/* ---------------------------------------------------------------- softmax rows */

START_TEST(softmax_rows_normalises_with_scale)
{
    cg_rng rng;
    cg_rng_seed(&rng, 61);
    const int vocab = 11;
    const size_t n = 5;
    float *x = frandom(&rng, n * vocab, 5.0f), *orig = falloc(n * vocab);
    memcpy(orig, x, n * vocab * sizeof(float));
    const float scales[4] = {1.0f, 2.0f, 0.25f, 0.0f};
    for (int s = 0; s < 4; s++) {
        memcpy(x, orig, n * vocab * sizeof(float));
        cg_softmax_rows(x, n, vocab, scales[s]);
        for (size_t i = 0; i < n; i++) {
            double sum = 0.0, z = 0.0;
            for (int j = 0; j < vocab; j++) {
                sum += x[i * vocab + (size_t)j];
                z += exp((double)scales[s] * orig[i * vocab + (size_t)j]);
            }
            ck_assert(fabs(sum - 1.0) <= 1e-6);
            for (int j = 0; j < vocab; j++) {
                const double want = exp((double)scales[s] * orig[i * vocab + (size_t)j]) / z;
                ck_assert(fabs(x[i * vocab + (size_t)j] - want) <= 1e-6 * (1.0 + want) );
            }
        }
    }
    /* Huge values (a low temperature): no overflow, the maximum wins. */
    float big[4] = {1e4f, 2e4f, -1e4f, 2e4f};
    cg_softmax_rows(big, 1, 4, 10.0f);
    ck_assert(big[0] == 0.0f && big[1] == 0.5f && big[2] == 0.0f && big[3] == 0.5f);
    free(x);
    free(orig);
}
END_TEST

static Suite *layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("embedding");
    tcase_add_test(tc, embedding_forward_looks_up_rows);
    tcase_add_test(tc, embedding_gradcheck);
    tcase_add_test(tc, soft_embedding_matches_product_and_lookup);
    tcase_add_test(tc, soft_embedding_gradcheck);
    suite_add_tcase(s, tc);
    tc = tcase_create("dense");
    tcase_add_test(tc, dense_forward_matches_naive);
    tcase_add_test(tc, dense_gradcheck);
    suite_add_tcase(s, tc);
    tc = tcase_create("losses");
    tcase_add_test(tc, softmax_xent_gradcheck);
    tcase_add_test(tc, softmax_xent_uniform_and_extreme_logits);
    tcase_add_test(tc, bce_logits_gradcheck);
    tcase_add_test(tc, bce_logits_extremes_are_exact);
    tcase_add_test(tc, softmax_rows_normalises_with_scale);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(layers_suite)
