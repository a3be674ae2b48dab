/*
 * layers.h - the neural layers: embedding (embedding.c), LSTM (lstm.c), dense
 * heads and their losses (dense.c).  Each layer's forward and backward live
 * side by side in its file; none allocates in forward or backward: callers
 * size the workspaces once per (T, B) shape.
 *
 * Layout: row-major; sequences time-major ([T][B][D]); weights are applied to
 * row vectors (y = x W + b), so W has shape [in][out].  Backward functions
 * ACCUMULATE into parameter gradients (callers zero them per step) and
 * OVERWRITE input gradients.
 */
#ifndef CHARGAN_LAYERS_H
#define CHARGAN_LAYERS_H

#include "internal.h"
#include "kernels.h"

/* ---------------------------------------------------------------- embedding.c */

/* out[i] = table[ids[i]], n rows of dim floats.  ids must be in range. */
void cg_embedding_forward(const float *table, int dim, const int32_t *ids, size_t n, float *out);
/* dtable[ids[i]] += dout[i]. */
void cg_embedding_backward(float *dtable, int dim, const int32_t *ids, size_t n, const float *dout);
/* Soft path for relaxed one-hots: out (n x dim) = probs (n x vocab) . table (vocab x dim). */
void cg_embedding_soft_forward(const float *table, int vocab, int dim, const float *probs, size_t n,
                               float *out);
/* dtable += probs^T . dout (if dtable); dprobs = dout . table^T (if dprobs). */
void cg_embedding_soft_backward(const float *table, int vocab, int dim, const float *probs, size_t n,
                                const float *dout, float *dtable, float *dprobs);
/* dprobs (n x vocab) += dout . table^T: a soft input's gradient added to one it has already. */
void cg_embedding_soft_input_grad_add(const float *table, int vocab, int dim, const float *dout,
                                      size_t n, float *dprobs);

/* ---------------------------------------------------------------- dense.c */

/* y (n x out) = x (n x in) . w (in x out) + b (b NULL: no bias). */
void cg_dense_forward(const float *w, const float *b, int in, int out, size_t n, const float *x,
                      float *y);
/* dw += x^T dy; db += column sums of dy; dx = dy w^T (each if not NULL).
 * dx may be x: dw is computed first. */
void cg_dense_backward(const float *w, int in, int out, size_t n, const float *x, const float *dy,
                       float *dw, float *db, float *dx);

/* db (cols) += the column sums of the n x cols matrix m. */
void cg_add_column_sums(float *restrict db, const float *restrict m, size_t n, size_t cols);
/* The largest of x[0..n), n >= 1; with a NaN in x, unspecified (NaN or not). */
float cg_row_max(const float *x, size_t n);
/* In place: x[j] = e^((x[j] - m) scale), scale >= 0, exactly 0 below e^-87
 * (a probability that small is 0 to float precision next to the maximum's
 * 1); returns their sum, added in 16 double lanes.  m is subtracted before
 * scaling: x scale overflows for a huge scale (a temperature near 0), and
 * inf - inf is NaN.  The exponentials of softmax, the row softmax and the
 * sampler. */
double cg_exp_shifted(float *x, size_t n, float m, float scale);

/* Fused, numerically stable softmax cross-entropy over n rows of vocab logits.
 * Returns sum_i weight_i * -log softmax(logits_i)[targets_i] in double (weight
 * 1 when weights is NULL).  If dlogits is not NULL it receives
 * grad_scale * weight_i * (softmax_i - onehot_i); it may alias logits. */
double cg_softmax_xent(const float *logits, size_t n, int vocab, const int32_t *targets,
                       const float *weights, float grad_scale, float *dlogits);
/* Fused binary cross-entropy with logits: sum_i weight_i * BCE(sigmoid(x_i), y_i),
 * stable for any x; dlogits (if not NULL, may alias) = grad_scale * weight_i *
 * (sigmoid(x_i) - y_i).  targets are in [0, 1]. */
double cg_bce_logits(const float *logits, size_t n, const float *targets, const float *weights,
                     float grad_scale, float *dlogits);
/* In place: each row becomes softmax(scale * row), scale >= 0. */
void cg_softmax_rows(float *x, size_t n, int vocab, float scale);
/* Its backward, in place: given y = softmax(scale x) and dy = dL/dy, dy
 * becomes dL/dx = scale y (dy - <dy, y>), row by row.  dy is not y. */
void cg_softmax_rows_backward(float *dy, const float *y, size_t n, int vocab, float scale);

/* ---------------------------------------------------------------- lstm.c */

/* One LSTM layer's parameters and gradients: views into the model's blocks.
 * z = x w_ih + h_prev w_hh + b, gate blocks of `hidden` columns in the order
 * i, f, g, o; i, f, o sigmoid, g tanh; c = f*c_prev + i*g; h = o*tanh(c). */
typedef struct cg_lstm_layer {
    int in, hidden;
    const float *w_ih; /* in x 4H */
    const float *w_hh; /* H x 4H */
    const float *b;    /* 4H */
    float *dw_ih, *dw_hh, *db;
} cg_lstm_layer;

/* What forward keeps for backward, for one (T, B) shape.  Allocated once, as
 * one block (h is its start) with the arrays below as 64-byte aligned views. */
typedef struct cg_lstm_cache {
    int T, B, in, hidden; /* capacity; forward may use fewer steps (t_used) */
    int t_used;           /* steps of the last forward */
    bool masked;          /* whether the last forward used the mask */
    float *h;     /* (T+1) x B x H: h[0] is the initial state, h[t+1] the output of step t */
    float *c;     /* (T+1) x B x H, likewise */
    float *gates; /* T x B x 4H activated gates; backward overwrites them with dz */
    float *mask;  /* B x H recurrent-dropout mask (already scaled by 1/(1-p)), or NULL;
                     the caller fills it before a forward with use_mask */
    float *hdrop; /* T x B x H: h[t] * mask, the recurrent input of step t, when masked */
    float *dh, *dc; /* B x H scratch for backward */
    float *w_hh_copy; /* a copy of w_hh for the recurrent products: packed by forward (when
                         the kernel path packs), then transposed (4H x H) by backward */
    size_t n_copy;          /* floats at w_hh_copy */
    cg_kpacked w_hh_packed; /* what the forward's products read: w_hh_copy or w_hh itself */
} cg_lstm_cache;

/* Allocates a cache for up to T steps of B rows; with_dropout adds mask and
 * hdrop.  Errors: CHARGAN_E_INVALID (a dimension < 1, or T*B rows or 4*hidden
 * columns beyond what an int GEMM dimension holds), CHARGAN_E_NOMEM; on
 * failure *c is left zeroed, so cg_lstm_cache_free(c) is harmless. */
chargan_status cg_lstm_cache_init(cg_lstm_cache *c, int T, int B, int in, int hidden,
                                  bool with_dropout);
void cg_lstm_cache_free(cg_lstm_cache *c);

/* Sequence forward over T steps (T <= cache capacity): one GEMM for the
 * input projection of all steps, then one recurrent GEMM per step with the
 * gate math fused.  x is T x B x in; h0, c0 are B x H (NULL = zeros).  If
 * use_mask, the cache's mask multiplies h(t-1) in the recurrent product.
 * Outputs are cache->h + B*H (T x B x H, contiguous); the final state is
 * cache->h + T*B*H and cache->c + T*B*H.  Gate nonlinearities use an inlined
 * polynomial exp (about 1 ulp), shared by every path here. */
void cg_lstm_forward(const cg_lstm_layer *L, cg_lstm_cache *c, int T, const float *x,
                     const float *h0, const float *c0, bool use_mask);

/* Step-wise forward for autoregressive generation whose inputs depend on
 * earlier outputs: begin sets the initial state and takes w_hh as the steps
 * will read it (on AVX2 a packed copy: begin again after w_hh changes); step
 * t (0, 1, 2, ... in order, t < capacity) reads x_t (B x in) and fills the cache as
 * cg_lstm_forward would, so cg_lstm_backward works after it (given all the
 * x_t as one T x B x in array).  The operations are the same in the same
 * order (bias, + x w_ih, + h w_hh, gate math); only the input GEMM is split
 * by step, so the results are bitwise equal wherever the BLAS computes a row
 * of a product independently of the number of rows.  The reference BLAS
 * does; OpenBLAS 0.3.21 does for small products but blocks larger ones by
 * shape, which changes the rounding (tests allow 1e-6 relative). */
void cg_lstm_forward_begin(const cg_lstm_layer *L, cg_lstm_cache *c, const float *h0,
                           const float *c0);
void cg_lstm_forward_step(const cg_lstm_layer *L, cg_lstm_cache *c, int t, const float *x_t,
                          bool use_mask);

/* Backpropagation through time over the t_used steps of the last forward
 * (masked or not, as that forward was).  x is the forward's input (T x B x
 * in).  dh_out (T x B x H, NULL = none) is the gradient on the outputs; dhT,
 * dcT (B x H, NULL = none) on the final state.  Accumulates into L->dw_ih,
 * dw_hh, db (each skipped if NULL) with large GEMMs over all steps; writes dx
 * (T x B x in), dh0, dc0 (B x H) when not NULL.  Consumes the cache (gates
 * become dz); h, c and hdrop stay valid.  dh_out may be the cache's own
 * outputs (c->h + B*H), so that the gradient on them needs no buffer of its
 * own: each step's gradient is read there before the step's output is
 * written back, o * tanh(c) as forward computed it, bit for bit. */
void cg_lstm_backward(const cg_lstm_layer *L, cg_lstm_cache *c, const float *x,
                      const float *dh_out, const float *dhT, const float *dcT, float *dx,
                      float *dh0, float *dc0);

/* The same backpropagation a step at a time, for a forward whose inputs
 * depend on earlier outputs (each step's output gradient then needs a later
 * step's input gradient): begin (dhT, dcT as above; want_dh0 if the last
 * step will ask for dh0), then steps t = t_used - 1 down to 0, each adding
 * dh_out_t (B x H, NULL = none; it may be dx_t: it is read before dx_t is
 * written) and writing dx_t (B x in) if not NULL, and
 * dh0 at t = 0 if not NULL; then end, which adds the weight gradients over
 * all steps as cg_lstm_backward does (x: the forward's T x B x in inputs;
 * table_fed: no db from here, as for a table-fed layer) and writes dx (all
 * steps at once, when not NULL), dh0 for a forward without steps, and dc0.
 * cg_lstm_backward is begin, every step without dx_t, end. */
void cg_lstm_backward_begin(const cg_lstm_layer *L, cg_lstm_cache *c, const float *dhT,
                            const float *dcT, bool want_dh0);
void cg_lstm_backward_step(const cg_lstm_layer *L, cg_lstm_cache *c, int t, const float *dh_out_t,
                           float *dx_t, float *dh0);
void cg_lstm_backward_end(const cg_lstm_layer *L, cg_lstm_cache *c, const float *x, bool table_fed,
                          float *dx, float *dh0, float *dc0);

/* A first layer whose input rows are rows of an embedding table x_table
 * (rows x in) looked up by id needs no input GEMM per token: its input
 * projection is a table of one row per id, table (rows x 4H) = b + x_table
 * w_ih, and step t's gate rows start as table[ids].  For rows (the
 * vocabulary) below T*B this saves the (T*B) x in x 4H products of the
 * forward, of dw_ih and of dx.  The forwards below equal cg_lstm_forward and
 * cg_lstm_forward_step on the looked-up rows up to the BLAS's rounding of
 * the table; they fill the cache the same way. */
void cg_lstm_input_table(const cg_lstm_layer *L, int rows, const float *x_table, float *table);
void cg_lstm_forward_ids(const cg_lstm_layer *L, cg_lstm_cache *c, int T, const float *table,
                         const int32_t *ids, const float *h0, const float *c0, bool use_mask);
void cg_lstm_forward_step_ids(const cg_lstm_layer *L, cg_lstm_cache *c, int t, const float *table,
                              const int32_t *ids_t, bool use_mask);
/* Backward of a table-fed forward (ids: its T x B ids).  As cg_lstm_backward,
 * except that the input side goes through dtable (table_rows x 4H scratch,
 * overwritten with the gradient on the table): dw_ih += x_table^T dtable,
 * db += its column sums, and dx_table (if not NULL, table_rows x in: the
 * embedding's gradient) ACCUMULATES dtable w_ih^T.  dh_out may be the
 * cache's outputs, as for cg_lstm_backward. */
void cg_lstm_backward_ids(const cg_lstm_layer *L, cg_lstm_cache *c, const int32_t *ids,
                          float *dtable, int table_rows, const float *x_table,
                          const float *dh_out, const float *dhT, const float *dcT,
                          float *dx_table, float *dh0, float *dc0);

/* Inference step without a cache: h, c (B x H) are updated in place from x
 * (B x in).  xw is scratch of B x 4H.  Same gate math as the forward; equal
 * to it up to the BLAS's rounding. */
void cg_lstm_step_infer(const cg_lstm_layer *L, int B, const float *x, float *h, float *c,
                        float *xw);
/* The same for a table-fed layer: the gate rows start as table[ids[b]]. */
void cg_lstm_step_infer_ids(const cg_lstm_layer *L, int B, const float *table, const int32_t *ids,
                            float *h, float *c, float *xw);
/* Either step for hidden units [u0, u1) only, so threads can share a step:
 * the input is table rows of ids (table not NULL) or x; h_prev (B x H, all
 * units) is read, and only those units' columns of xw (B x 4H), c and h_out
 * are written.  h_out may be h_prev only when [u0, u1) is every unit. */
void cg_lstm_step_infer_units(const cg_lstm_layer *L, int B, const float *table,
                              const int32_t *ids, const float *x, const float *h_prev,
                              float *h_out, float *c, float *xw, int u0, int u1);

#endif /* CHARGAN_LAYERS_H */
