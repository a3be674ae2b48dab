/* infer.h - cache-free, step-by-step inference for many streams at once
 * (generators; discriminators through cg_infer_advance): the state (h, c
 * per layer) is updated in place and nothing is kept
 * for a backward pass.  Shared by sampling (sample.c) and the metrics
 * (metrics.c); all buffers are sized once by cg_infer_alloc, so stepping
 * allocates nothing. */
#ifndef CHARGAN_INFER_H
#define CHARGAN_INFER_H

#include "model.h"
#include "pool.h"

typedef struct cg_infer_state {
    int B;                                      /* streams (rows) */
    float *h[CG_MAX_LAYERS], *c[CG_MAX_LAYERS]; /* B x H each */
    float *xw, *emb, *logits, *z, *state;       /* scratch; logits is B x out_dim */
    const float *xtab; /* V x 4H: the first layer's input table (cg_lstm_input_table), or
                          NULL for a vocabulary above CG_INFER_TABLE_MAX ids */
    float *own_xtab;   /* xtab when this state built it, else NULL (shared) */
    int32_t *ids;                               /* B ids: the next input of each stream */
} cg_infer_state;

/* Above this many ids the first layer projects its input row by row:
 * building the table (V x E x 4H per cg_infer_begin) would cost more than a
 * short sample saves. */
#define CG_INFER_TABLE_MAX 4096

/* Allocates buffers for B streams of model m; false (nothing held) if out of
 * memory.  shared: another state whose input table this one reads (states
 * stepping the same model on other threads), or NULL to own one. */
bool cg_infer_alloc(cg_infer_state *st, const chargan_model *m, int B,
                    const cg_infer_state *shared);
void cg_infer_free(cg_infer_state *st, const chargan_model *m);
/* Builds the input table from the current parameters (if the state owns
 * one); once before stepping, and before any state sharing it steps. */
void cg_infer_prepare(cg_infer_state *st, const chargan_model *m);
/* Sets every layer's initial state: from fresh standard-normal noise, row b's
 * drawn from rngs[b], or from a zero noise vector (the noise layer's bias)
 * when rngs is NULL; zero when the model has no noise layer. */
void cg_infer_begin(cg_infer_state *st, const chargan_model *m, cg_rng *rngs);
/* Feeds st->ids (one per stream) through the stack; the logits of each
 * stream's next token land in st->logits (a generator's). */
void cg_infer_step(cg_infer_state *st, const chargan_model *m);
/* The same without the head: only the states move (a discriminator, whose
 * head is read once, at the last step). */
void cg_infer_advance(cg_infer_state *st, const chargan_model *m);
/* Rows [r0, r0 + rows) of st as a state of their own: the same buffers at
 * those rows (the input table shared, nothing owned), so that threads can
 * step disjoint rows of one state.  Not to be freed or prepared. */
void cg_infer_view(cg_infer_state *view, const cg_infer_state *st, const chargan_model *m, int r0,
                   int rows);

/* Fewer streams than threads: P threads share every step of the same B
 * streams.  Thread s owns a slice of each layer's hidden units (its columns
 * of the gates, c and h) and of the vocabulary (its logits); they meet at a
 * barrier after each layer and after the logits.  h alternates between two
 * buffers per layer so that a step reads the previous h while writing the
 * next.  Every element is computed as cg_infer_step computes it, so the
 * logits are the same bits. */
typedef struct cg_infer_split {
    cg_infer_state st;            /* B rows; h[l] is the h of even steps, c[l] is shared */
    float *h_odd[CG_MAX_LAYERS];  /* the h of odd steps */
    float *emb;                   /* P x B x E: each thread's embedded input, without a table */
    int P;
    cg_barrier barrier;
} cg_infer_split;

bool cg_infer_split_alloc(cg_infer_split *sp, const chargan_model *m, int B, int P);
void cg_infer_split_free(cg_infer_split *sp, const chargan_model *m);
/* Thread s's part of step t (counted from 0 after cg_infer_begin on sp->st)
 * on ids (B); when it returns, sp->st.logits holds the whole step's logits
 * for every thread. */
void cg_infer_split_step(cg_infer_split *sp, const chargan_model *m, int s, uint64_t t,
                         const int32_t *ids);

#endif /* CHARGAN_INFER_H */
