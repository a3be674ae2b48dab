/* dense.c - the affine output heads and the losses fused with them: softmax
 * cross-entropy for the generator's next-character prediction, binary
 * cross-entropy with logits for the discriminator, and a scaled row softmax
 * for sampling temperature and Gumbel-softmax relaxation. */
#include "layers.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

void cg_dense_forward(const float *w, const float *b, int in, int out, size_t n, const float *x,
                      float *y)
{
    const size_t o = (size_t)out;
    /* The bias goes in first and the product accumulates onto it (beta = 1),
     * which saves a second pass over y. */
    if (b) {
        for (size_t i = 0; i < n; i++)
            memcpy(y + i * o, b, o * sizeof(float));
    }
    cg_sgemm(false, false, (int)n, out, in, 1.0f, x, in, w, out, b ? 1.0f : 0.0f, y, out);
}

CG_VECTOR_CLONES void cg_add_column_sums(float *restrict db, const float *restrict m, size_t n,
                                         size_t cols)
{
    for (size_t i = 0; i < n; i++) {
        const float *restrict row = m + i * cols;
        for (size_t j = 0; j < cols; j++)
            db[j] += row[j];
    }
}

void cg_dense_backward(const float *w, int in, int out, size_t n, const float *x, const float *dy,
                       float *dw, float *db, float *dx)
{
    if (dw)
        cg_sgemm(true, false, in, out, (int)n, 1.0f, x, in, dy, out, 1.0f, dw, out);
    if (db)
        cg_add_column_sums(db, dy, n, (size_t)out);
    if (dx)
        cg_sgemm(false, true, (int)n, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
}

/* Row reductions run in LANES independent partial results, combined in lane
 * order at the end: a loop of one running sum or maximum is not vectorised
 * (that would reorder its operations), one of 16 lanes is, and its order is
 * still fixed, so every clone gives the same bits. */
#define LANES 16

/* A float's bits as an integer that orders like the float (for all but
 * NaNs): a negative float's magnitude bits are flipped.  The map is its own
 * inverse.  The maximum is taken on these because GCC does not vectorise a
 * float comparison that may trap (-ftrapping-math), and does integer ones. */
static inline int32_t order_key(int32_t bits)
{
    return bits ^ (int32_t)((uint32_t)(bits >> 31) >> 1);
}

static inline int32_t key_of(float x)
{
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return order_key(bits);
}

/* NaNs in x give an unspecified result (NaN or not): softmax rows with a NaN
 * come out NaN either way. */
CG_VECTOR_CLONES float cg_row_max(const float *x, size_t n)
{
    int32_t lane[LANES];
    for (size_t k = 0; k < LANES; k++)
        lane[k] = key_of(x[0]);
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (size_t k = 0; k < LANES; k++) {
            const int32_t key = key_of(x[j + k]);
            lane[k] = key > lane[k] ? key : lane[k];
        }
    for (; j < n; j++) {
        const int32_t key = key_of(x[j]);
        lane[0] = key > lane[0] ? key : lane[0];
    }
    int32_t m = lane[0];
    for (size_t k = 1; k < LANES; k++)
        m = lane[k] > m ? lane[k] : m;
    m = order_key(m);
    float out;
    memcpy(&out, &m, sizeof out);
    return out;
}

CG_VECTOR_CLONES double cg_exp_shifted(float *restrict x, size_t n, float m, float scale)
{
    double lane[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (size_t k = 0; k < LANES; k++) {
            x[j + k] = cg_vexpf_flush((x[j + k] - m) * scale);
            lane[k] += x[j + k];
        }
    double sum = 0.0;
    for (size_t k = 0; k < LANES; k++)
        sum += lane[k];
    for (; j < n; j++) {
        x[j] = cg_vexpf_flush((x[j] - m) * scale);
        sum += x[j];
    }
    return sum;
}

/* The sum of e^(x[j] - m), x left as it is; added as cg_exp_shifted adds. */
CG_VECTOR_CLONES static double exp_shifted_sum(const float *restrict x, float m, size_t n)
{
    double lane[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (size_t k = 0; k < LANES; k++)
            lane[k] += cg_vexpf_flush(x[j + k] - m);
    double sum = 0.0;
    for (size_t k = 0; k < LANES; k++)
        sum += lane[k];
    for (; j < n; j++)
        sum += cg_vexpf_flush(x[j] - m);
    return sum;
}

double cg_softmax_xent(const float *logits, size_t n, int vocab, const int32_t *targets,
                       const float *weights, float grad_scale, float *dlogits)
{
    const size_t v = (size_t)vocab;
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *x = logits + i * v;
        const float w = weights ? weights[i] : 1.0f;
        const float xt = x[targets[i]]; /* read before dlogits (maybe x) is written */
        const float m = cg_row_max(x, v);
        /* Exponentials of x - max are in (0, 1]: no overflow, and the largest
         * is exactly 1 so the sum is never 0.  They are parked in dlogits so
         * the gradient pass does not compute them twice. */
        double sum;
        float *d = dlogits ? dlogits + i * v : NULL;
        if (d) {
            if (d != x)
                memcpy(d, x, v * sizeof(float));
            sum = cg_exp_shifted(d, v, m, 1.0f);
        } else {
            sum = exp_shifted_sum(x, m, v);
        }
        /* m - xt is exact in double, so uniform logits give exactly log V. */
        loss += (double)w * (log(sum) + ((double)m - (double)xt));
        if (d) {
            const float scale = (float)((double)grad_scale * w / sum);
            for (size_t j = 0; j < v; j++)
                d[j] *= scale;
            d[targets[i]] -= grad_scale * w;
        }
    }
    return loss;
}

double cg_bce_logits(const float *logits, size_t n, const float *targets, const float *weights,
                     float grad_scale, float *dlogits)
{
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double x = logits[i], y = targets[i];
        const double w = weights ? weights[i] : 1.0;
        /* -y log s(x) - (1-y) log(1-s(x)) = max(x,0) - x y + log(1 + e^-|x|):
         * the exponent is never positive, so nothing overflows, and log1p
         * keeps the tail exact when e^-|x| is tiny. */
        const double e = exp(-fabs(x));
        loss += w * (fmax(x, 0.0) - x * y + log1p(e));
        if (dlogits) {
            /* s(x) from the same e: 1/(1+e) for x >= 0, e/(1+e) below. */
            const double s = (x >= 0.0 ? 1.0 : e) / (1.0 + e);
            dlogits[i] = (float)((double)grad_scale * w * (s - y));
        }
    }
    return loss;
}

void cg_softmax_rows(float *x, size_t n, int vocab, float scale)
{
    const size_t v = (size_t)vocab;
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * v;
        const float inv = (float)(1.0 / cg_exp_shifted(r, v, cg_row_max(r, v), scale));
        for (size_t j = 0; j < v; j++)
            r[j] *= inv;
    }
}

/* <a, b> over n floats, added in float lanes (then in double). */
CG_VECTOR_CLONES static float lane_dot(const float *restrict a, const float *restrict b, size_t n)
{
    float lane[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (size_t k = 0; k < LANES; k++)
            lane[k] += a[j + k] * b[j + k];
    double sum = 0.0;
    for (size_t k = 0; k < LANES; k++)
        sum += lane[k];
    for (; j < n; j++)
        sum += a[j] * b[j];
    return (float)sum;
}

void cg_softmax_rows_backward(float *dy, const float *y, size_t n, int vocab, float scale)
{
    const size_t v = (size_t)vocab;
    for (size_t i = 0; i < n; i++) {
        float *restrict d = dy + i * v;
        const float *restrict r = y + i * v;
        const float dot = lane_dot(d, r, v);
        for (size_t j = 0; j < v; j++)
            d[j] = scale * r[j] * (d[j] - dot);
    }
}
