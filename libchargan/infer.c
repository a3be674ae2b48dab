/* infer.c - cache-free generator stepping for sampling and evaluation. */
#include "infer.h"
#include "kernels.h"

#include <string.h>

void cg_infer_free(cg_infer_state *st, const chargan_model *m)
{
    for (int l = 0; l < m->L; l++) {
        cg_free_floats(st->h[l]);
        cg_free_floats(st->c[l]);
    }
    cg_free_floats(st->xw);
    cg_free_floats(st->own_xtab);
    cg_free_floats(st->emb);
    cg_free_floats(st->logits);
    cg_free_floats(st->z);
    cg_free_floats(st->state);
    cg_free(st->ids);
    memset(st, 0, sizeof *st);
}

bool cg_infer_alloc(cg_infer_state *st, const chargan_model *m, int B,
                    const cg_infer_state *shared)
{
    memset(st, 0, sizeof *st);
    st->B = B;
    size_t bh = (size_t)B * m->H;
    bool ok = true;
    for (int l = 0; l < m->L; l++) {
        ok = ok && (st->h[l] = cg_alloc_floats(bh)) != NULL;
        ok = ok && (st->c[l] = cg_alloc_floats(bh)) != NULL;
    }
    ok = ok && (st->xw = cg_alloc_floats(4 * bh)) != NULL;
    ok = ok && (st->emb = cg_alloc_floats((size_t)B * m->E)) != NULL;
    ok = ok && (st->logits = cg_alloc_floats((size_t)B * m->V)) != NULL;
    ok = ok && (st->ids = cg_malloc((size_t)B * sizeof(int32_t))) != NULL;
    if (shared)
        st->xtab = shared->xtab;
    else if (m->V <= CG_INFER_TABLE_MAX)
        ok = ok && (st->xtab = st->own_xtab = cg_alloc_floats((size_t)m->V * 4 * m->H)) != NULL;
    if (m->Z > 0) {
        ok = ok && (st->z = cg_alloc_floats((size_t)B * m->Z)) != NULL;
        ok = ok && (st->state = cg_alloc_floats(bh * 2 * m->L)) != NULL;
    }
    if (!ok)
        cg_infer_free(st, m);
    return ok;
}

void cg_infer_prepare(cg_infer_state *st, const chargan_model *m)
{
    if (st->own_xtab)
        cg_lstm_input_table(&m->lstm[0], m->V, m->embed, st->own_xtab);
}

void cg_infer_begin(cg_infer_state *st, const chargan_model *m, cg_rng *rngs)
{
    size_t bh = (size_t)st->B * m->H, H = (size_t)m->H;
    for (int l = 0; l < m->L; l++) {
        memset(st->h[l], 0, bh * sizeof(float));
        memset(st->c[l], 0, bh * sizeof(float));
    }
    if (m->Z == 0)
        return;
    int width = 2 * m->L * m->H;
    if (rngs) {
        for (int b = 0; b < st->B; b++)
            for (int i = 0; i < m->Z; i++)
                st->z[(size_t)b * m->Z + i] = cg_rng_normal(&rngs[b]);
        cg_dense_forward(m->noise_w, m->noise_b, m->Z, width, (size_t)st->B, st->z, st->state);
    } else {
        /* zero noise: the state is the bias, as in cg_model_forward with z NULL */
        for (int b = 0; b < st->B; b++)
            memcpy(st->state + (size_t)b * width, m->noise_b, (size_t)width * sizeof(float));
    }
    for (int l = 0; l < m->L; l++)
        for (int b = 0; b < st->B; b++) {
            const float *row = st->state + (size_t)b * width + 2 * l * H;
            memcpy(st->h[l] + b * H, row, H * sizeof(float));
            memcpy(st->c[l] + b * H, row + H, H * sizeof(float));
        }
}

void cg_infer_step(cg_infer_state *st, const chargan_model *m)
{
    int B = st->B;
    if (!st->xtab)
        cg_embedding_forward(m->embed, m->E, st->ids, (size_t)B, st->emb);
    const float *x = st->emb;
    for (int l = 0; l < m->L; l++) {
        if (l == 0 && st->xtab)
            cg_lstm_step_infer_ids(&m->lstm[0], B, st->xtab, st->ids, st->h[0], st->c[0], st->xw);
        else
            cg_lstm_step_infer(&m->lstm[l], B, x, st->h[l], st->c[l], st->xw);
        x = st->h[l];
    }
    /* The head: bias rows, then the small kernel (a BLAS call costs more
     * than this B x H x V product at sampling's few rows). */
    for (int b = 0; b < B; b++)
        memcpy(st->logits + (size_t)b * m->V, m->out_b, (size_t)m->V * sizeof(float));
    cg_kgemm_nn(B, m->V, m->H, x, m->H, m->out_w, m->V, st->logits, m->V, true);
}
