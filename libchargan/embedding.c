/* embedding.c - token embedding: a table lookup for hard ids and, for the
 * relaxed one-hot vectors a GAN generator emits, the same lookup written as a
 * product with the table.  Forward and backward side by side. */
#include "layers.h"

#include <string.h>

void cg_embedding_forward(const float *table, int dim, const int32_t *ids, size_t n, float *out)
{
    const size_t d = (size_t)dim;
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * d, table + (size_t)ids[i] * d, d * sizeof(float));
}

void cg_embedding_backward(float *dtable, int dim, const int32_t *ids, size_t n, const float *dout)
{
    const size_t d = (size_t)dim;
    /* Sequential over i: repeated ids accumulate in a fixed order, so the
     * result does not depend on anything but the inputs. */
    for (size_t i = 0; i < n; i++) {
        float *row = dtable + (size_t)ids[i] * d;
        const float *g = dout + i * d;
        for (size_t j = 0; j < d; j++)
            row[j] += g[j];
    }
}

void cg_embedding_soft_forward(const float *table, int vocab, int dim, const float *probs, size_t n,
                               float *out)
{
    cg_sgemm(false, false, (int)n, dim, vocab, 1.0f, probs, vocab, table, dim, 0.0f, out, dim);
}

/* dprobs = dout . table^T, or += with add. */
static void soft_input_grad(const float *table, int vocab, int dim, const float *dout, size_t n,
                            bool add, float *dprobs)
{
    cg_sgemm(false, true, (int)n, vocab, dim, 1.0f, dout, dim, table, dim, add ? 1.0f : 0.0f,
             dprobs, vocab);
}

void cg_embedding_soft_backward(const float *table, int vocab, int dim, const float *probs, size_t n,
                                const float *dout, float *dtable, float *dprobs)
{
    if (dtable)
        cg_sgemm(true, false, vocab, dim, (int)n, 1.0f, probs, vocab, dout, dim, 1.0f, dtable,
                 dim);
    if (dprobs)
        soft_input_grad(table, vocab, dim, dout, n, false, dprobs);
}

void cg_embedding_soft_input_grad_add(const float *table, int vocab, int dim, const float *dout,
                                      size_t n, float *dprobs)
{
    soft_input_grad(table, vocab, dim, dout, n, true, dprobs);
}
