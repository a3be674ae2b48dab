/* infer.h - cache-free, step-by-step generator inference for many streams at
 * once: the state (h, c per layer) is updated in place and nothing is kept
 * for a backward pass.  Shared by sampling (sample.c) and the metrics
 * (metrics.c); all buffers are sized once by cg_infer_alloc, so stepping
 * allocates nothing. */
#ifndef CHARGAN_INFER_H
#define CHARGAN_INFER_H

#include "model.h"

typedef struct cg_infer_state {
    int B;                                      /* streams (rows) */
    float *h[CG_MAX_LAYERS], *c[CG_MAX_LAYERS]; /* B x H each */
    float *xw, *emb, *logits, *z, *state;       /* scratch; logits is B x V */
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
 * stream's next token land in st->logits. */
void cg_infer_step(cg_infer_state *st, const chargan_model *m);

#endif /* CHARGAN_INFER_H */
