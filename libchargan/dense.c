/* dense.c - the affine output heads and the losses fused with them: softmax
 * cross-entropy for the generator's next-character prediction, binary
 * cross-entropy with logits for the discriminator, and a scaled row softmax
 * for sampling temperature and Gumbel-softmax relaxation. */
#include "layers.h"

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

/* db += the column sums of the n x cols matrix m. */
static void add_column_sums(float *restrict db, const float *restrict m, size_t n, size_t cols)
{
    for (size_t i = 0; i < n; i++) {
        const float *row = m + i * cols;
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
        add_column_sums(db, dy, n, (size_t)out);
    if (dx)
        cg_sgemm(false, true, (int)n, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
}

static float row_max(const float *x, size_t n)
{
    float m = x[0];
    for (size_t j = 1; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
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
        const float m = row_max(x, v);
        /* Exponentials of x - max are in (0, 1]: no overflow, and the largest
         * is exactly 1 so the sum is never 0.  They are parked in dlogits so
         * the gradient pass does not compute them twice. */
        double sum = 0.0;
        if (dlogits) {
            float *d = dlogits + i * v;
            for (size_t j = 0; j < v; j++) {
                d[j] = expf(x[j] - m);
                sum += d[j];
            }
        } else {
            for (size_t j = 0; j < v; j++)
                sum += expf(x[j] - m);
        }
        /* m - xt is exact in double, so uniform logits give exactly log V. */
        loss += (double)w * (log(sum) + ((double)m - (double)xt));
        if (dlogits) {
            float *d = dlogits + i * v;
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
        for (size_t j = 0; j < v; j++)
            r[j] *= scale;
        const float m = row_max(r, v);
        double sum = 0.0;
        for (size_t j = 0; j < v; j++) {
            r[j] = expf(r[j] - m);
            sum += r[j];
        }
        const float inv = (float)(1.0 / sum);
        for (size_t j = 0; j < v; j++)
            r[j] *= inv;
    }
}
