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
    ok = ok && (st->xw = cg_alloc_float_matrix(bh, 4)) != NULL;
    ok = ok && (st->emb = cg_alloc_float_matrix((size_t)B, (size_t)m->E)) != NULL;
    ok = ok && (st->logits = cg_alloc_float_matrix((size_t)B, (size_t)m->out_dim)) != NULL;
    ok = ok && (st->ids = cg_malloc((size_t)B * sizeof(int32_t))) != NULL;
    if (shared)
        st->xtab = shared->xtab;
    else if (m->V <= CG_INFER_TABLE_MAX)
        ok = ok && (st->xtab = st->own_xtab =
                        cg_alloc_float_matrix((size_t)m->V, 4 * (size_t)m->H)) != NULL;
    if (m->Z > 0) {
        ok = ok && (st->z = cg_alloc_float_matrix((size_t)B, (size_t)m->Z)) != NULL;
        ok = ok && (st->state = cg_alloc_float_matrix(bh, 2 * (size_t)m->L)) != NULL;
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

/* Columns [v0, v1) of the head's logits for x (B x H): bias rows, then the
 * small kernel (a BLAS call costs more than this product at sampling's few
 * rows, and the kernel sums a column alike whichever columns a call
 * covers). */
static void head_columns(cg_infer_state *st, const chargan_model *m, const float *x, int v0,
                         int v1)
{
    const int B = st->B, V = m->V;
    for (int b = 0; b < B; b++)
        memcpy(st->logits + (size_t)b * V + v0, m->out_b + v0, (size_t)(v1 - v0) * sizeof(float));
    cg_kgemm_nn(B, v1 - v0, m->H, x, m->H, m->out_w + v0, V, st->logits + v0, V, true);
}

void cg_infer_advance(cg_infer_state *st, const chargan_model *m)
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
}

void cg_infer_view(cg_infer_state *view, const cg_infer_state *st, const chargan_model *m, int r0,
                   int rows)
{
    const size_t r = (size_t)r0, H = (size_t)m->H;
    memset(view, 0, sizeof *view);
    view->B = rows;
    for (int l = 0; l < m->L; l++) {
        view->h[l] = st->h[l] + r * H;
        view->c[l] = st->c[l] + r * H;
    }
    view->xw = st->xw + r * 4 * H;
    view->emb = st->emb + r * (size_t)m->E;
    view->logits = st->logits + r * (size_t)m->out_dim;
    view->xtab = st->xtab;
    view->ids = st->ids + r;
}

void cg_infer_step(cg_infer_state *st, const chargan_model *m)
{
    cg_infer_advance(st, m);
    head_columns(st, m, st->h[m->L - 1], 0, m->V);
}

/* ---------------------------------------------------------------- one step, several threads */

bool cg_infer_split_alloc(cg_infer_split *sp, const chargan_model *m, int B, int P)
{
    memset(sp, 0, sizeof *sp);
    if (!cg_infer_alloc(&sp->st, m, B, NULL))
        return false;
    bool ok = true;
    for (int l = 0; l < m->L; l++)
        ok = ok && (sp->h_odd[l] = cg_alloc_float_matrix((size_t)B, (size_t)m->H)) != NULL;
    if (!sp->st.xtab)
        ok = ok && (sp->emb = cg_alloc_float_matrix((size_t)P * B, (size_t)m->E)) != NULL;
    if (!ok) {
        cg_infer_split_free(sp, m);
        return false;
    }
    sp->P = P;
    cg_barrier_init(&sp->barrier, (unsigned)P);
    return true;
}

void cg_infer_split_free(cg_infer_split *sp, const chargan_model *m)
{
    for (int l = 0; l < m->L; l++)
        cg_free_floats(sp->h_odd[l]);
    cg_free_floats(sp->emb);
    cg_infer_free(&sp->st, m);
    memset(sp, 0, sizeof *sp);
}

/* Thread s's share [*lo, *hi) of n columns, in whole blocks of 16 (64-byte
 * lines) so no two threads write one line. */
static void split_range(int n, int s, int P, int *lo, int *hi)
{
    const int blocks = (n + 15) / 16;
    *lo = 16 * (int)((long)blocks * s / P);
    *hi = 16 * (int)((long)blocks * (s + 1) / P);
    *lo = *lo < n ? *lo : n;
    *hi = *hi < n ? *hi : n;
}

void cg_infer_split_step(cg_infer_split *sp, const chargan_model *m, int s, uint64_t t,
                         const int32_t *ids)
{
    cg_infer_state *st = &sp->st;
    const int B = st->B, H = m->H, V = m->V;
    const float *x = NULL;
    if (!st->xtab) {
        float *emb = sp->emb + (size_t)s * B * m->E;
        cg_embedding_forward(m->embed, m->E, ids, (size_t)B, emb);
        x = emb;
    }
    int u0, u1;
    split_range(H, s, sp->P, &u0, &u1);
    for (int l = 0; l < m->L; l++) {
        float *h_prev = t & 1 ? sp->h_odd[l] : st->h[l], *h_next = t & 1 ? st->h[l] : sp->h_odd[l];
        const float *table = l == 0 ? st->xtab : NULL;
        if (u0 < u1)
            cg_lstm_step_infer_units(&m->lstm[l], B, table, ids, x, h_prev, h_next, st->c[l],
                                     st->xw, u0, u1);
        cg_barrier_wait(&sp->barrier);
        x = h_next;
    }
    int v0, v1;
    split_range(V, s, sp->P, &v0, &v1);
    if (v0 < v1)
        head_columns(st, m, x, v0, v1);
    cg_barrier_wait(&sp->barrier);
}
