/* lstm.c - one LSTM layer: sequence forward, step-wise forward (for
 * generators whose next input depends on their last output), backpropagation
 * through time, and a cache-free inference step for sampling.
 *
 * The work is arranged so that almost all of it is large GEMMs: the input
 * projection of every step is one (T*B) x in x 4H product before the
 * recurrence, and the weight gradients are products over all steps at once
 * after it.  Only the recurrent product h(t-1) w_hh is done step by step,
 * with the small-GEMM kernel of kernels.c (a BLAS repacks w_hh on every one
 * of those B-row products).
 * The gate math between the products is one fused, branch-free loop per row
 * that the compiler vectorises. */
#include "kernels.h"
#include "layers.h"
#include "vmath.h"

#include <limits.h>
#include <string.h>

/* ---------------------------------------------------------------- activations */

static inline float gate_sigmoid(float x)
{
    return 1.0f / (1.0f + cg_vexpf(-x));
}

/* tanh(x) = 2 sigmoid(2x) - 1: the same single exponential, and exactly +-1
 * at the extremes.  Near 0 its error is absolute (about 1e-7), not relative,
 * which is all an LSTM needs. */
static inline float gate_tanh(float x)
{
    return 2.0f / (1.0f + cg_vexpf(-2.0f * x)) - 1.0f;
}

/* ---------------------------------------------------------------- the cache */

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* a * b + acc in size_t, false on overflow. */
static bool mul_add(size_t a, size_t b, size_t *acc)
{
    size_t p;
    if (!cg_mul_size(a, b, &p) || p > SIZE_MAX - *acc)
        return false;
    *acc += p;
    return true;
}

chargan_status cg_lstm_cache_init(cg_lstm_cache *c, int T, int B, int in, int hidden,
                                  bool with_dropout)
{
    memset(c, 0, sizeof *c);
    if (T < 1 || B < 1 || in < 1 || hidden < 1)
        return cg_fail(NULL, CHARGAN_E_INVALID,
                       "lstm cache: dimensions must be >= 1, got T=%d B=%d in=%d hidden=%d", T, B,
                       in, hidden);
    /* GEMM dimensions are ints: all steps' rows and the 4H gate columns. */
    if ((size_t)T * (size_t)B > INT_MAX || hidden > INT_MAX / 4)
        return cg_fail(NULL, CHARGAN_E_INVALID,
                       "lstm cache: T*B=%zu rows or 4*hidden=%lld columns exceed %d",
                       (size_t)T * (size_t)B, 4LL * hidden, INT_MAX);
    const size_t t = (size_t)T, bh = (size_t)B * (size_t)hidden; /* B*H <= INT_MAX * INT_MAX/4 */
    /* Sizes in floats, each view rounded to 16 floats (64 bytes). */
    size_t n_state = 0, n_gates = 0, n_step = 0, n_bh = round16(bh), n_wt = 0, total = 0;
    bool ok = mul_add(t + 1, bh, &n_state) && mul_add(t, bh * 4, &n_gates) &&
              mul_add(t, bh, &n_step) && mul_add(4 * (size_t)hidden, (size_t)hidden, &n_wt);
    if (ok) {
        n_state = round16(n_state);
        n_gates = round16(n_gates);
        n_step = round16(n_step);
        /* forward's packed copy may pad 4H up to whole panels */
        const size_t n_pack = cg_kpack_floats(hidden, 4 * hidden);
        n_wt = round16(n_pack > n_wt ? n_pack : n_wt);
        /* h, c; gates; dh, dc; w_hh_copy; with dropout: hdrop, mask */
        ok = mul_add(n_state, 2, &total) && mul_add(n_gates, 1, &total) &&
             mul_add(n_step, with_dropout ? 1 : 0, &total) &&
             mul_add(n_bh, with_dropout ? 3 : 2, &total) && mul_add(n_wt, 1, &total) &&
             total <= SIZE_MAX / sizeof(float) - 64;
    }
    float *mem = ok ? cg_alloc_floats(total) : NULL;
    if (!mem)
        return cg_fail(NULL, CHARGAN_E_NOMEM,
                       "lstm cache: cannot allocate %s floats for T=%d B=%d in=%d hidden=%d",
                       ok ? "the" : "too many", T, B, in, hidden);
    c->T = T;
    c->B = B;
    c->in = in;
    c->hidden = hidden;
    c->h = mem;
    c->c = c->h + n_state;
    c->gates = c->c + n_state;
    c->dh = c->gates + n_gates;
    c->dc = c->dh + n_bh;
    c->w_hh_copy = c->dc + n_bh;
    c->n_copy = n_wt;
    if (with_dropout) {
        c->hdrop = c->w_hh_copy + n_wt;
        c->mask = c->hdrop + n_step;
    }
    return CHARGAN_OK;
}

void cg_lstm_cache_free(cg_lstm_cache *c)
{
    if (!c)
        return;
    cg_free_floats(c->h); /* the start of the one block */
    memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------- forward */

/* Each of the rows of `rows` x w floats at dst becomes v. */
static void fill_rows(float *dst, const float *v, size_t rows, size_t w)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(dst + r * w, v, w * sizeof(float));
}

static void copy_or_zero(float *dst, const float *src, size_t n)
{
    if (src)
        memcpy(dst, src, n * sizeof(float));
    else
        memset(dst, 0, n * sizeof(float));
}

/* The gate math of one step for B rows: z (B x 4H pre-activations) becomes
 * the activated gates; c and h of the step are written.  One pass, no
 * branches: every array is contiguous in j. */
CG_VECTOR_CLONES static void gates_forward(float *restrict z, const float *restrict c_prev,
                                           float *restrict c_out, float *restrict h_out, int B,
                                           int H)
{
    const size_t hh = (size_t)H;
    for (size_t r = 0; r < (size_t)B; r++) {
        float *restrict zi = z + r * 4 * hh, *restrict zf = z + r * 4 * hh + hh,
                        *restrict zg = z + r * 4 * hh + 2 * hh,
                        *restrict zo = z + r * 4 * hh + 3 * hh;
        const float *restrict cp = c_prev + r * hh;
        float *restrict cn = c_out + r * hh, *restrict hn = h_out + r * hh;
        for (size_t j = 0; j < hh; j++) {
            const float i = gate_sigmoid(zi[j]), f = gate_sigmoid(zf[j]), g = gate_tanh(zg[j]),
                        o = gate_sigmoid(zo[j]);
            const float cj = f * cp[j] + i * g, t = gate_tanh(cj);
            zi[j] = i;
            zf[j] = f;
            zg[j] = g;
            zo[j] = o;
            cn[j] = cj;
            hn[j] = o * t;
        }
    }
}

/* Step t's recurrent product (with the w_hh its begin took) and gate math;
 * the step's gate rows already hold x_t w_ih + b. */
static void forward_recurrent_step(cg_lstm_cache *c, int t, bool use_mask)
{
    const int B = c->B, H = c->hidden;
    const size_t bh = (size_t)B * (size_t)H, tt = (size_t)t;
    const float *h_prev = c->h + tt * bh;
    float *z = c->gates + tt * bh * 4;
    if (use_mask) {
        float *restrict hd = c->hdrop + tt * bh;
        const float *restrict m = c->mask;
        for (size_t k = 0; k < bh; k++)
            hd[k] = h_prev[k] * m[k];
        h_prev = hd;
    }
    cg_kgemm_nn_packed(B, h_prev, H, &c->w_hh_packed, z, 4 * H, true);
    gates_forward(z, c->c + tt * bh, c->c + (tt + 1) * bh, c->h + (tt + 1) * bh, B, H);
}

void cg_lstm_forward_begin(const cg_lstm_layer *L, cg_lstm_cache *c, const float *h0,
                           const float *c0)
{
    const int H = c->hidden;
    const size_t bh = (size_t)c->B * (size_t)H;
    /* Every step of the sequence reads w_hh: copied once where that is
     * faster (and the copy fits: the kernel path is the one of the cache's
     * creation unless a test forced another since). */
    const bool fits = cg_kpack_floats(H, 4 * H) <= c->n_copy;
    cg_kpack(&c->w_hh_packed, H, 4 * H, L->w_hh, 4 * H, fits ? c->w_hh_copy : NULL);
    copy_or_zero(c->h, h0, bh);
    copy_or_zero(c->c, c0, bh);
    c->t_used = 0;
    c->masked = false;
}

void cg_lstm_forward(const cg_lstm_layer *L, cg_lstm_cache *c, int T, const float *x,
                     const float *h0, const float *c0, bool use_mask)
{
    const int B = c->B, H = c->hidden, rows = T * B;
    cg_lstm_forward_begin(L, c, h0, c0);
    /* Bias first, then the input projection of all steps accumulated onto it:
     * the step path below does the same per step. */
    fill_rows(c->gates, L->b, (size_t)rows, 4 * (size_t)H);
    cg_sgemm(false, false, rows, 4 * H, L->in, 1.0f, x, L->in, L->w_ih, 4 * H, 1.0f, c->gates,
             4 * H);
    for (int t = 0; t < T; t++)
        forward_recurrent_step(c, t, use_mask);
    c->t_used = T;
    c->masked = use_mask;
}

/* Each of the n rows of w floats at dst becomes the row of table that ids names. */
static void gather_rows(float *dst, const float *table, const int32_t *ids, size_t n, size_t w)
{
    for (size_t r = 0; r < n; r++)
        memcpy(dst + r * w, table + (size_t)ids[r] * w, w * sizeof(float));
}

void cg_lstm_input_table(const cg_lstm_layer *L, int rows, const float *x, float *table)
{
    const int G = 4 * L->hidden;
    fill_rows(table, L->b, (size_t)rows, (size_t)G);
    cg_sgemm(false, false, rows, G, L->in, 1.0f, x, L->in, L->w_ih, G, 1.0f, table, G);
}

void cg_lstm_forward_ids(const cg_lstm_layer *L, cg_lstm_cache *c, int T, const float *table,
                         const int32_t *ids, const float *h0, const float *c0, bool use_mask)
{
    const int B = c->B;
    const size_t G = 4 * (size_t)c->hidden;
    cg_lstm_forward_begin(L, c, h0, c0);
    /* Step by step, so a step's gate rows are still in cache for its product. */
    for (int t = 0; t < T; t++) {
        const size_t row = (size_t)t * (size_t)B;
        gather_rows(c->gates + row * G, table, ids + row, (size_t)B, G);
        forward_recurrent_step(c, t, use_mask);
    }
    c->t_used = T;
    c->masked = use_mask;
}

void cg_lstm_forward_step_ids(const cg_lstm_layer *L, cg_lstm_cache *c, int t, const float *table,
                              const int32_t *ids_t, bool use_mask)
{
    (void)L; /* the table holds the input side, and begin took w_hh */
    const size_t B = (size_t)c->B, G = 4 * (size_t)c->hidden;
    gather_rows(c->gates + (size_t)t * B * G, table, ids_t, B, G);
    forward_recurrent_step(c, t, use_mask);
    c->t_used = t + 1;
    c->masked = use_mask;
}

void cg_lstm_forward_step(const cg_lstm_layer *L, cg_lstm_cache *c, int t, const float *x_t,
                          bool use_mask)
{
    const int B = c->B, H = c->hidden;
    float *z = c->gates + (size_t)t * (size_t)B * 4 * (size_t)H;
    fill_rows(z, L->b, (size_t)B, 4 * (size_t)H);
    cg_sgemm(false, false, B, 4 * H, L->in, 1.0f, x_t, L->in, L->w_ih, 4 * H, 1.0f, z, 4 * H);
    forward_recurrent_step(c, t, use_mask);
    c->t_used = t + 1;
    c->masked = use_mask;
}

/* ---------------------------------------------------------------- backward */

/* Step t's gate gradients for B rows.  dh is the gradient on h(t+1) (output
 * and recurrent parts already summed); dc, on entry the gradient on c(t+1)
 * from later steps, leaves as the gradient on c(t).  The activated gates in z
 * are replaced by dz, the gradient on the pre-activations.  tanh(c(t+1)) is
 * recomputed from c_next, the same function on the same value as forward,
 * rather than kept: it would be a seventh of the cache.  h_next gets h(t+1)
 * = o * tanh(c(t+1)) again, the forward's bits, for callers that lent the
 * output slot to the gradient on it (see cg_lstm_backward). */
CG_VECTOR_CLONES static void gates_backward(float *restrict z, const float *restrict dh,
                                            float *restrict dc, const float *restrict c_prev,
                                            const float *restrict c_next,
                                            float *restrict h_next, int B, int H)
{
    const size_t hh = (size_t)H;
    for (size_t r = 0; r < (size_t)B; r++) {
        float *restrict zi = z + r * 4 * hh, *restrict zf = z + r * 4 * hh + hh,
                        *restrict zg = z + r * 4 * hh + 2 * hh,
                        *restrict zo = z + r * 4 * hh + 3 * hh;
        const float *restrict dhr = dh + r * hh, *restrict cp = c_prev + r * hh,
                              *restrict cn = c_next + r * hh;
        float *restrict dcr = dc + r * hh, *restrict hn = h_next + r * hh;
        for (size_t j = 0; j < hh; j++) {
            const float i = zi[j], f = zf[j], g = zg[j], o = zo[j], t = gate_tanh(cn[j]);
            hn[j] = o * t;
            const float d = dcr[j] + dhr[j] * o * (1.0f - t * t); /* dL/dc(t+1), all paths */
            zi[j] = d * g * i * (1.0f - i);
            zf[j] = d * cp[j] * f * (1.0f - f);
            zg[j] = d * i * (1.0f - g * g);
            zo[j] = dhr[j] * t * o * (1.0f - o);
            dcr[j] = d * f;
        }
    }
}

/* dtable[ids[r]] += row r of dz, for the n rows of width w. */
CG_VECTOR_CLONES static void scatter_add_rows(float *restrict dtable, const float *restrict dz,
                                              const int32_t *ids, size_t n, size_t w)
{
    for (size_t r = 0; r < n; r++) {
        float *restrict dst = dtable + (size_t)ids[r] * w;
        const float *restrict src = dz + r * w;
        for (size_t j = 0; j < w; j++)
            dst[j] += src[j];
    }
}

void cg_lstm_backward_begin(const cg_lstm_layer *L, cg_lstm_cache *c, const float *dhT,
                            const float *dcT, bool want_dh0)
{
    const int T = c->t_used, H = c->hidden, G = 4 * H;
    const size_t bh = (size_t)c->B * (size_t)H;
    copy_or_zero(c->dh, dhT, bh);
    copy_or_zero(c->dc, dcT, bh);
    /* The recurrent products read w_hh^T: one transpose per backward (a few
     * steps' worth of time) lets each step be an NN product.  The copy is
     * the cache's, so shards sharing the weights do not race. */
    if (T > 1 || (T == 1 && want_dh0)) {
        cg_ktranspose(H, G, L->w_hh, G, c->w_hh_copy, H);
        cg_kpack(&c->w_hh_packed, H, G, L->w_hh, G, NULL); /* the copy is not forward's now */
    }
}

/* The step's body; for a table-fed layer (dtable) each dz row is added to
 * dtable's row of its id as soon as it is computed. */
static void backward_step(const cg_lstm_layer *L, cg_lstm_cache *c, int t, const float *dh_out_t,
                          const int32_t *ids_t, float *dtable, float *dx_t, float *dh0)
{
    const int B = c->B, H = c->hidden, G = 4 * H;
    const size_t tt = (size_t)t, bh = (size_t)B * (size_t)H;
    float *dh = c->dh;
    if (dh_out_t) {
        const float *restrict g = dh_out_t;
        for (size_t k = 0; k < bh; k++)
            dh[k] += g[k];
    }
    float *dz = c->gates + tt * bh * 4;
    gates_backward(dz, dh, c->dc, c->c + tt * bh, c->c + (tt + 1) * bh, c->h + (tt + 1) * bh, B,
                   H);
    if (dtable)
        scatter_add_rows(dtable, dz, ids_t, (size_t)B, (size_t)G);
    if (dx_t)
        cg_sgemm(false, true, B, L->in, G, 1.0f, dz, G, L->w_ih, G, 0.0f, dx_t, L->in);
    /* The gradient on h(t), the recurrent input of step t; at t = 0 it is
     * dh0, written straight there (and skipped if nobody wants it). */
    float *dst = t > 0 ? dh : dh0;
    if (!dst)
        return;
    cg_kgemm_nn(B, H, G, dz, G, c->w_hh_copy, H, dst, H, false);
    if (c->masked) {
        const float *restrict m = c->mask;
        for (size_t k = 0; k < bh; k++)
            dst[k] *= m[k];
    }
}

void cg_lstm_backward_step(const cg_lstm_layer *L, cg_lstm_cache *c, int t, const float *dh_out_t,
                           float *dx_t, float *dh0)
{
    backward_step(L, c, t, dh_out_t, NULL, NULL, dx_t, dh0);
}

void cg_lstm_backward_end(const cg_lstm_layer *L, cg_lstm_cache *c, const float *x, bool table_fed,
                          float *dx, float *dh0, float *dc0)
{
    const int T = c->t_used, B = c->B, H = c->hidden, G = 4 * H, rows = T * B;
    const size_t bh = (size_t)B * (size_t)H;
    if (T == 0 && dh0)
        memcpy(dh0, c->dh, bh * sizeof(float));
    if (dc0)
        memcpy(dc0, c->dc, bh * sizeof(float));
    if (rows == 0)
        return; /* begin without steps: nothing to add, no x to read */
    /* Weight gradients over all steps at once.  The recurrent inputs h(0) ..
     * h(T-1) are contiguous at the start of c->h (or of c->hdrop). */
    const float *dzall = c->gates;
    if (L->dw_ih)
        cg_sgemm(true, false, L->in, G, rows, 1.0f, x, L->in, dzall, G, 1.0f, L->dw_ih, G);
    if (L->dw_hh)
        cg_sgemm(true, false, H, G, rows, 1.0f, c->masked ? c->hdrop : c->h, H, dzall, G, 1.0f,
                 L->dw_hh, G);
    if (L->db && !table_fed)
        cg_add_column_sums(L->db, dzall, (size_t)rows, (size_t)G);
    if (dx)
        cg_sgemm(false, true, rows, L->in, G, 1.0f, dzall, G, L->w_ih, G, 0.0f, dx, L->in);
}

/* Backpropagation through time, then the weight gradients.  The input side
 * is either x (dw_ih, dx from it) or, for a table-fed layer, ids (into
 * dtable). */
static void backward_impl(const cg_lstm_layer *L, cg_lstm_cache *c, const float *x,
                          const int32_t *ids, float *dtable, const float *dh_out,
                          const float *dhT, const float *dcT, float *dx, float *dh0, float *dc0)
{
    const size_t B = (size_t)c->B, bh = B * (size_t)c->hidden;
    cg_lstm_backward_begin(L, c, dhT, dcT, dh0 != NULL);
    for (int t = c->t_used - 1; t >= 0; t--)
        backward_step(L, c, t, dh_out ? dh_out + (size_t)t * bh : NULL,
                      ids ? ids + (size_t)t * B : NULL, dtable, NULL, dh0);
    cg_lstm_backward_end(L, c, x, dtable != NULL, dx, dh0, dc0);
}

void cg_lstm_backward(const cg_lstm_layer *L, cg_lstm_cache *c, const float *x,
                      const float *dh_out, const float *dhT, const float *dcT, float *dx,
                      float *dh0, float *dc0)
{
    backward_impl(L, c, x, NULL, NULL, dh_out, dhT, dcT, dx, dh0, dc0);
}

void cg_lstm_backward_ids(const cg_lstm_layer *L, cg_lstm_cache *c, const int32_t *ids,
                          float *dtable, int table_rows, const float *x_table,
                          const float *dh_out, const float *dhT, const float *dcT,
                          float *dx_table, float *dh0, float *dc0)
{
    const int G = 4 * c->hidden;
    cg_lstm_layer l = *L;
    l.dw_ih = NULL; /* from dtable below */
    memset(dtable, 0, (size_t)table_rows * (size_t)G * sizeof(float));
    backward_impl(&l, c, NULL, ids, dtable, dh_out, dhT, dcT, NULL, dh0, dc0);
    if (c->t_used == 0)
        return;
    /* z = table[id] + ..., table = b + x_table w_ih: the gradients of b,
     * w_ih and x_table are those of the table's rows. */
    if (L->db)
        cg_add_column_sums(L->db, dtable, (size_t)table_rows, (size_t)G);
    if (L->dw_ih)
        cg_sgemm(true, false, L->in, G, table_rows, 1.0f, x_table, L->in, dtable, G, 1.0f,
                 L->dw_ih, G);
    if (dx_table)
        cg_sgemm(false, true, table_rows, L->in, G, 1.0f, dtable, G, L->w_ih, G, 1.0f, dx_table,
                 L->in);
}

/* ---------------------------------------------------------------- inference */

/* The gate math of an inference step for hidden units [u0, u1): from the
 * pre-activations in xw (B x 4H), c (B x H) is updated in place and h_out
 * (B x H) written, in those columns only. */
CG_VECTOR_CLONES static void infer_gates(const float *xw, float *h_out, float *c, int B, int H,
                                         int u0, int u1)
{
    const size_t hh = (size_t)H, G = 4 * hh;
    for (size_t r = 0; r < (size_t)B; r++) {
        const float *zr = xw + r * G;
        const float *restrict zi = zr, *restrict zf = zr + hh, *restrict zg = zr + 2 * hh,
                              *restrict zo = zr + 3 * hh;
        float *restrict hr = h_out + r * hh, *restrict cr = c + r * hh;
        for (size_t j = (size_t)u0; j < (size_t)u1; j++) {
            const float i = gate_sigmoid(zi[j]), f = gate_sigmoid(zf[j]), g = gate_tanh(zg[j]),
                        o = gate_sigmoid(zo[j]);
            const float cj = f * cr[j] + i * g;
            cr[j] = cj;
            hr[j] = o * gate_tanh(cj);
        }
    }
}

/* xw's columns of units [u0, u1) in each of the four gate blocks (all 4H
 * columns at once when the slice is every unit) += a (B x k) times those
 * columns of w (k x 4H). */
static void add_product_units(int B, int H, int k, const float *a, const float *w, float *xw,
                              int u0, int u1)
{
    const int G = 4 * H;
    if (u0 == 0 && u1 == H) {
        cg_kgemm_nn(B, G, k, a, k, w, G, xw, G, true);
        return;
    }
    for (int g = 0; g < 4; g++)
        cg_kgemm_nn(B, u1 - u0, k, a, k, w + g * H + u0, G, xw + g * H + u0, G, true);
}

void cg_lstm_step_infer_units(const cg_lstm_layer *L, int B, const float *table,
                              const int32_t *ids, const float *x, const float *h_prev,
                              float *h_out, float *c, float *xw, int u0, int u1)
{
    const int H = L->hidden;
    const size_t G = 4 * (size_t)H, w = (size_t)(u1 - u0);
    /* Same order of operations as the forward: bias (or the table row, which
     * holds bias + x w_ih), + x w_ih, + h w_hh.  Both products are the small
     * kernel's, which sums each element the same way whatever B is and
     * whichever columns a call covers (a BLAS may not): a stream's output
     * depends neither on how many streams share the call nor on how the
     * units are split across threads.  One row streams the weights once, as
     * gemv would. */
    for (size_t r = 0; r < (size_t)B; r++) {
        const float *src = table ? table + (size_t)ids[r] * G : L->b;
        for (size_t g = 0; g < 4; g++)
            memcpy(xw + r * G + g * (size_t)H + (size_t)u0, src + g * (size_t)H + (size_t)u0,
                   w * sizeof(float));
    }
    if (!table)
        add_product_units(B, H, L->in, x, L->w_ih, xw, u0, u1);
    add_product_units(B, H, H, h_prev, L->w_hh, xw, u0, u1);
    infer_gates(xw, h_out, c, B, H, u0, u1);
}

void cg_lstm_step_infer(const cg_lstm_layer *L, int B, const float *x, float *h, float *c,
                        float *xw)
{
    cg_lstm_step_infer_units(L, B, NULL, NULL, x, h, h, c, xw, 0, L->hidden);
}

void cg_lstm_step_infer_ids(const cg_lstm_layer *L, int B, const float *table, const int32_t *ids,
                            float *h, float *c, float *xw)
{
    cg_lstm_step_infer_units(L, B, table, ids, NULL, h, h, c, xw, 0, L->hidden);
}
