/*
 * model.h - the model handle's insides, shared by model.c (structure,
 * parameters, forward/backward over a batch), sample.c, checkpoint.c,
 * trainer.c and gan.c.
 *
 * A model is embedding -> LSTM stack -> dense head.  The generator's head
 * has V outputs (softmax) and an optional noise layer maps z to the LSTM's
 * initial state; the discriminator's head has 1 output (sigmoid) read at
 * every step.  Parameters live in one block and gradients in a twin block,
 * with named views into both (as in llm.c); the optimizer steps over the
 * whole block.
 */
#ifndef CHARGAN_MODEL_H
#define CHARGAN_MODEL_H

#include "layers.h"

#define CG_MAX_LAYERS 16
#define CG_MAX_TENSORS (5 + 3 * CG_MAX_LAYERS)

typedef struct cg_tensor {
    char name[24];
    uint32_t rank;
    size_t shape[2];
    size_t offset, numel; /* into the parameter block */
} cg_tensor;

/* Activations and gradients for one (T, B) shape, allocated by
 * cg_model_reserve and reused by every step of that shape. */
typedef struct cg_workspace {
    int T, B;            /* capacity */
    int32_t *ids;        /* T x B input ids, time-major */
    float *emb;          /* T x B x E embedded inputs (soft inputs, or no table) */
    float *xtab, *dxtab; /* V x 4H: layer 0's input table for hard ids and its gradient
                            (cg_lstm_input_table); NULL when V > T*B, where it would not pay */
    bool use_table;      /* V <= T*B of the shape last reserved, not of the capacity: a
                            call's rounding must not depend on a larger earlier one */
    cg_lstm_cache cache[CG_MAX_LAYERS];
    float *logits;       /* T x B x out: logits, then their gradients */
    float *dx[2];        /* T x B x max(E, H): input gradients, ping-pong down the stack */
    float *dstep;        /* B x H: one step's gradient between layers (cg_model_backward_fed) */
    float *state;        /* B x 2LH: the initial state from the noise layer */
    float *dstate;       /* B x 2LH */
    float *h0[CG_MAX_LAYERS], *c0[CG_MAX_LAYERS];   /* B x H each */
    float *dh0[CG_MAX_LAYERS], *dc0[CG_MAX_LAYERS]; /* B x H each */
    const float *z;      /* the noise of the last forward (caller's memory), or NULL */
    const float *soft;   /* discriminator: the soft inputs of the last forward, or NULL */
    bool fed;            /* the last steps began with cg_model_begin_fed */
    int t_used, b_used;
} cg_workspace;

struct chargan_model {
    cg_error err;
    chargan_model_config cfg;
    chargan_tokenizer *tok;
    int V, E, H, L, Z, out_dim;
    size_t n_weights;
    float *params, *grads;
    size_t n_tensors;
    cg_tensor tensors[CG_MAX_TENSORS];
    /* named views into params (and, through cg_lstm_layer, grads) */
    float *embed, *dembed;
    cg_lstm_layer lstm[CG_MAX_LAYERS];
    float *noise_w, *noise_b, *dnoise_w, *dnoise_b;
    float *out_w, *out_b, *dout_w, *dout_b;
    cg_rng rng; /* dropout masks */
    /* Under MPI, a rank's batch is rows [mask_rows_before, B - mask_rows_after)
     * of the global one: mask draws pass over the other ranks' rows, so that
     * every rank draws what one process would and all keep the same RNG. */
    uint32_t mask_rows_before, mask_rows_after;
    cg_workspace ws;
    bool is_replica;     /* params belong to another model (cg_model_replica_new) */
    bool shares_grads;   /* so do grads: a replica made with share_grads */
    bool external_masks; /* forward uses masks the caller wrote into the caches */
    bool adopted;        /* a trainer owns it: a second one must not (it would free it too) */
};

/* The number of weights a (valid) configuration implies. */
double cg_model_config_weights(const chargan_model_config *cfg);
/* Validates a configuration (message through err names the field). */
chargan_status cg_model_config_check(cg_error *err, const chargan_model_config *cfg);
/* m takes tok (or NULL) as its own tokenizer, freeing the one it had: the
 * one place a model gets a tokenizer, which from then on numbers its ids
 * and so cannot be fitted (cg_tokenizer_attach).  The caller has checked
 * the vocabulary against m's. */
void cg_model_take_tokenizer(chargan_model *m, chargan_tokenizer *tok);
/* Creates a model with parameters allocated but not initialised (loaders fill them). */
chargan_status cg_model_create(cg_error *err, const chargan_model_config *cfg, chargan_model **out);
/* A replica shares m's parameters but has its own workspace and caches, so
 * several can run forward/backward on parts of one batch at once.  Its
 * gradients are its own, or with share_grads m's (for the first of a set of
 * replicas, whose gradient the others' are then added to: one buffer less).
 * Its dropout masks come from the caller (cg_model_draw_masks_into), so a
 * sharded batch sees the masks an unsharded one would.  Free with
 * chargan_model_free (which leaves what it shares alone). */
chargan_status cg_model_replica_new(chargan_model *m, bool share_grads, chargan_model **out);
/* Draws m's recurrent-dropout masks for a batch split into n replicas, in
 * the order an unsharded forward would draw them, into each replica's caches
 * (rows[s] rows each; replicas must be reserved for that many rows). */
void cg_model_draw_masks_into(chargan_model *m, chargan_model *const *replicas, int n,
                              const int *rows);
/* Sizes the workspace for T steps of B rows (no-op if it already fits). */
chargan_status cg_model_reserve(chargan_model *m, int T, int B);
/* Frees the workspace (the next reserve allocates it again). */
void cg_model_release(chargan_model *m);
void cg_model_zero_grad(chargan_model *m);
/* True if every parameter is finite. */
bool cg_model_params_finite(const chargan_model *m);

/* Teacher-forced forward over T steps of B rows.  ids is T x B (time-major)
 * or NULL when soft (T x B x V relaxed one-hots, discriminator only) is given.
 * z is B x Z noise (generator; NULL = zero noise).  train enables recurrent
 * dropout.  Logits land in m->ws.logits (T x B x out_dim).  Inputs must stay
 * alive until the backward. */
void cg_model_forward(chargan_model *m, int T, int B, const int32_t *ids, const float *soft,
                      const float *z, bool train);
/* Backward of the last forward, with the logits' gradients already written
 * into m->ws.logits.  Accumulates parameter gradients; dsoft (T x B x V, may
 * be NULL) receives the gradient on soft inputs. */
void cg_model_backward(chargan_model *m, float *dsoft);
/* The same backward for the gradient on soft inputs alone (into dsoft):
 * no parameter gradient is computed or touched, which saves the weight
 * products (a generator learning through a discriminator it does not
 * update).  Does nothing after a forward on hard ids. */
void cg_model_backward_input(chargan_model *m, float *dsoft);

/* Step-wise generator forward for autoregressive generation: begin with
 * noise z (may be NULL), then steps t = 0, 1, ... each reading B ids and
 * returning that step's logits (B x V inside m->ws.logits).  The caches are
 * filled as cg_model_forward would, so cg_model_backward works afterwards. */
void cg_model_begin(chargan_model *m, int B, const float *z, bool train);
float *cg_model_step(chargan_model *m, int t, const int32_t *ids_t, bool train);

/* Generation fed with its own relaxed samples (Gumbel-softmax with the soft
 * feed): begin_fed, then step 0 on ids (cg_model_step) and each later step t
 * on a soft input soft_t (B x V rows of probabilities: layer 0 reads
 * soft_t . embedding).  After such steps the backward is
 * cg_model_backward_fed, which carries the gradient through the feed: soft
 * is the T x B x V array whose block t fed step t + 1 (its last block is
 * read by nobody), m->ws.logits holds the gradient on each block from
 * elsewhere (the discriminator's), and to_logits(ctx, t, d) turns d, the
 * B x V gradient on block t with the feed's part added, into the gradient
 * on step t's logits, in place.  Parameter gradients accumulate as in
 * cg_model_backward. */
typedef void (*cg_soft_grad_fn)(void *ctx, int t, float *d);
void cg_model_begin_fed(chargan_model *m, int B, const float *z, bool train);
float *cg_model_step_soft(chargan_model *m, int t, const float *soft_t, bool train);
void cg_model_backward_fed(chargan_model *m, const float *soft, cg_soft_grad_fn to_logits,
                           void *ctx);

/* Bytes above which chargan_model_nll steps its sequences instead of running
 * the windowed forward (metrics.c; a variable so that tests can lower it). */
extern size_t cg_nll_window_budget;
/* Mean NLL helper used by chargan_model_nll and evaluation: rows of
 * batch-major windows (B x (T+1)): ids[b][0..T-1] in, ids[b][1..T] out.
 * Returns the summed NLL in nats; uses the workspace. */
chargan_status cg_model_window_nll(chargan_model *m, const int32_t *windows, int B, int T,
                                   double *nll_sum);
/* Converts batch-major windows (B x (T+1)) into time-major inputs and targets (T x B each). */
void cg_windows_to_time_major(const int32_t *windows, int B, int T, int32_t *inputs,
                              int32_t *targets);

/* CHARGAN_E_RANGE (message names the position) if any of n ids is outside [0, V). */
chargan_status cg_check_ids(cg_error *err, const int32_t *ids, size_t n, int V);

/* Serialisation of a model's configuration and parameters (checkpoint.c). */
void cg_model_write(const chargan_model *m, cg_writer *w);
chargan_status cg_model_read(cg_reader *r, cg_error *err, chargan_model **out);

#endif /* CHARGAN_MODEL_H */
