/*
 * optim.h - the optimizer handle's insides and the calls the model and the
 * trainer make: one update over a whole parameter block, serialisation for
 * checkpoints, and a deep copy.
 *
 * Serialised state, version 1 (little-endian, written by cg_optimizer_write;
 * a checkpoint section holds exactly this):
 *
 *   u32  version            1
 *   u32  kind               a chargan_optimizer_kind
 *   f32  lr, beta1, beta2, eps, weight_decay, momentum, rho, clip_norm
 *   u64  steps              updates taken
 *   u64  n                  parameters the state is sized for (0: no step yet)
 *   f32  m[n]               present if kind is Adam, or momentum > 0
 *   f32  v[n]               present if kind is Adam or RMSprop
 *
 * n is 0 exactly when steps is 0.
 */
#ifndef CHARGAN_OPTIM_H
#define CHARGAN_OPTIM_H

#include "internal.h"

#define CG_OPTIM_STATE_VERSION 1u

struct chargan_optimizer {
    cg_error err;
    chargan_optimizer_config cfg; /* our full-size copy */
    uint64_t steps;
    size_t n;     /* parameters the state is sized for; 0 = not yet */
    float *m, *v; /* Adam: first/second moments; SGD: m = velocity; RMSprop: v = mean
                     square, m = momentum buffer.  NULL where the algorithm needs none. */
    bool adopted; /* a trainer owns it: a second one must not (it would free it too) */
};

/* Whether the algorithm keeps m (Adam's first moment, a momentum buffer) and
 * v (a mean square) of every parameter. */
bool cg_optimizer_needs_m(const chargan_optimizer_config *cfg);
bool cg_optimizer_needs_v(const chargan_optimizer_config *cfg);

/* One update of n parameters from their gradients.  If clip_norm > 0 the
 * gradients are scaled in place so their global L2 norm is at most clip_norm.
 * The norm (before clipping) goes to *grad_norm if not NULL.  A non-finite
 * gradient norm returns CHARGAN_E_NUMERIC and changes nothing; an update that
 * overflows (parameters or state no longer finite) returns CHARGAN_E_NUMERIC
 * after the fact, the step counted.  The first call
 * sizes the state (CHARGAN_E_NOMEM possible); later calls with another n give
 * CHARGAN_E_INVALID.  Errors are recorded in opt->err. */
chargan_status cg_optimizer_step(chargan_optimizer *opt, float *params, float *grads, size_t n,
                                 double *grad_norm);
/* Sizes the state for n parameters (the model's, as every step's) before
 * the first step, a no-op after it: so that a caller can fail for memory
 * before it changes anything.  The first step calls it too. */
chargan_status cg_optimizer_reserve(chargan_optimizer *opt, size_t n);

/* cg_optimizer_step in pieces that threads can share (the trainer's
 * cg_trainer_optimizer_step), with the same bits:
 * - the squared norm of the gradient, block by block: the sum of
 *   cg_optimizer_block_sumsq over blocks 0, 1, ... in that order;
 * - begin: the arguments checked, the norm's verdict (a non-finite one fails
 *   here, nothing changed), the state sized on a first step, and the step's
 *   scalars in *u;
 * - update_range over any split of [0, n) into ranges (each may run on its
 *   own thread; the elements are independent), each returning which of
 *   params and state it left non-finite (CG_OPTIM_BAD_*);
 * - end with the ranges' results or-ed: the step counted, an overflow
 *   reported, *grad_norm written. */
#define CG_OPTIM_BLOCK 4096 /* floats */
enum { CG_OPTIM_BAD_PARAMS = 1u, CG_OPTIM_BAD_STATE = 2u };
/* The most updates an optimizer counts: its step number is used as a double. */
#define CG_OPTIM_MAX_STEPS (UINT64_C(1) << 53)

typedef struct cg_optim_update {
    double norm;
    double clip_scale; /* double: clip_norm / norm can be below FLT_MIN */
    bool clip;
    float step_size, sqrt_bc2, decay;
} cg_optim_update;

size_t cg_optimizer_blocks(size_t n);
double cg_optimizer_block_sumsq(const float *grads, size_t n, size_t block);
chargan_status cg_optimizer_update_begin(chargan_optimizer *opt, const float *params,
                                         const float *grads, size_t n, double sumsq,
                                         cg_optim_update *u);
unsigned cg_optimizer_update_range(chargan_optimizer *opt, const cg_optim_update *u,
                                   float *params, float *grads, size_t lo, size_t hi);
chargan_status cg_optimizer_update_end(chargan_optimizer *opt, const cg_optim_update *u,
                                       unsigned bad, double *grad_norm);

/* True if every value of the state (m, v) is finite. */
bool cg_optimizer_state_finite(const chargan_optimizer *opt);

/* Serialises config, step count and state (the layout above) into w; a
 * failure sticks in w->failed. */
void cg_optimizer_write(const chargan_optimizer *opt, cg_writer *w);

/* Reads what cg_optimizer_write wrote, validating every field; n must equal
 * expected_n unless either is 0.  On failure returns CHARGAN_E_FORMAT,
 * CHARGAN_E_UNSUPPORTED (unknown version or kind) or CHARGAN_E_NOMEM with a
 * message in err naming the field and its byte offset in r, and leaves *out
 * untouched. */
chargan_status cg_optimizer_read(cg_reader *r, size_t expected_n, cg_error *err,
                                 chargan_optimizer **out);

/* Deep copy; NULL on allocation failure (the thread's message says so). */
chargan_optimizer *cg_optimizer_clone(const chargan_optimizer *opt);

#endif /* CHARGAN_OPTIM_H */
