/* trainer.h - the trainer handle's insides, shared by trainer.c (corpus,
 * batches, MLE, evaluation, checkpoints, progress) and gan.c (the
 * discriminator and adversarial steps). */
#ifndef CHARGAN_TRAINER_H
#define CHARGAN_TRAINER_H

#include "dist.h"
#include "infer.h"
#include "model.h"
#include "optim.h"
#include "packed_ids.h"
#include "pool.h"
#include "sample.h"

#include <stdatomic.h>

#define CG_MAX_SHARDS 64

/* A batch split across threads: shard s takes rows first[s] .. first[s] +
 * rows[s] - 1 and runs on a generator replica with its own workspace and
 * gradients; the gradients are summed in shard order, so a run is
 * deterministic for a given thread count. */
/* Shard s's part of an adversarial step (gan.c), beside its generator
 * replica: a sampler (its scratch is per thread) and the shard's rows of the
 * step's arrays, time-major T x rows. */
typedef struct cg_gan_shard {
    cg_sampler sampler;
    int32_t *fake;                      /* T x rows sampled ids */
    float *rewards, *weights, *targets; /* T x rows */
    float *soft;                        /* T x rows x V (Gumbel) */
    float *d_logits;                    /* 2 x rows final discriminator logits */
    int correct;
} cg_gan_shard;

typedef struct cg_shards {
    int n;
    cg_pool *pool;
    int first[CG_MAX_SHARDS], rows[CG_MAX_SHARDS];
    chargan_model *gen[CG_MAX_SHARDS];
    int32_t *inputs[CG_MAX_SHARDS], *targets[CG_MAX_SHARDS]; /* T x rows, time-major */
    double loss[CG_MAX_SHARDS]; /* each shard's part of a step's or an evaluation's loss */
    size_t valid_rows; /* evaluation: rows of the batch that hold held-out windows */
    const float *z;
    /* adversarial steps (gan.c): discriminator replicas, per-shard arrays,
     * and the phase the pool runs with its parameters */
    chargan_model *disc[CG_MAX_SHARDS];
    cg_gan_shard gan[CG_MAX_SHARDS];
    int phase;
    bool train;
    float beta;
    double *block_sums; /* cg_optimizer_blocks of the larger model: the update's norm */
} cg_shards;

enum cg_corpus_kind { CG_CORPUS_NONE = 0, CG_CORPUS_STREAM = 1, CG_CORPUS_SEQUENCES = 2 };

/* State of the adversarial estimators that must survive a checkpoint. */
typedef struct cg_gan_state {
    float *baseline;       /* T: REINFORCE moving-average baseline per step */
    uint32_t baseline_set; /* 0 until the first batch initialises it */
    uint64_t gan_steps;    /* generator updates in adversarial mode (drives beta annealing) */
} cg_gan_state;

/* SeqGAN's Monte-Carlo rollouts (gan.c): up to `group` rollouts of every
 * row run together as one batch of streams (the generator completing them,
 * the discriminator reading the completions on from its state after the
 * prefix).  The shard of rows b0 .. b0 + nb - 1 uses the streams from
 * b0 x group on, rollout k of its row b0 + i at i x n + k for a group of n. */
typedef struct cg_rollout_buf {
    cg_infer_state g, d; /* group x B streams each */
    int group;           /* the most rollouts run together */
    /* What a round changes before its rollouts, kept at its start so that a
     * stop request in the rollouts undoes the whole round: the
     * discriminator's parameters and optimizer state (n_weights floats
     * each, m and v where the optimizer has them), the counters, and the
     * random streams (the trainer's, and both models' dropout masks). */
    float *d_params, *d_m, *d_v;
    uint64_t d_opt_steps, d_updates;
    float d_last_accuracy;
    cg_rng rng, g_rng, d_rng;
} cg_rollout_buf;

/* Scratch of the adversarial steps, sized once per trainer. */
typedef struct cg_gan_work {
    int32_t *fake;     /* T x B sampled ids, time-major */
    float *weights;    /* T x B per-token weights (advantages) */
    float *rewards;    /* T x B */
    float *targets;    /* T x B discriminator targets */
    float *soft;       /* T x B x V relaxed one-hots (Gumbel, unsharded) */
    float *d_logits;   /* 2 x B saved final discriminator logits */
    cg_sampler sampler;  /* temperature 1, reserved ids allowed: the policy itself */
    cg_rng *row_rng;     /* B sampling streams, one per global row (cg_trainer_seed_rows) */
    double *step_mean;   /* T per-step mean returns (REINFORCE baseline) */
    float *next_baseline; /* T: the baseline once this step's update is made */
    cg_rollout_buf rb;   /* only with rollouts */
} cg_gan_work;

struct chargan_trainer {
    cg_error err;
    chargan_trainer_config cfg;
    chargan_model *gen, *disc;
    chargan_optimizer *gopt, *dopt;
    chargan_progress_fn progress;
    void *progress_user;
    cg_rng rng;           /* batches and noise */
    uint64_t global_step; /* generator updates */
    uint64_t d_updates;   /* discriminator updates */
    float d_last_accuracy; /* of the last discriminator update, for progress reports */
    double val_nll; /* the latest validation on this corpus, for progress reports: NaN until
                       one is made */
    /* corpus: a stream of ids (first n_train for training) or n_seq sequences
     * of seq_len (first n_train_seq for training) */
    int corpus_kind;
    cg_packed_ids ids;
    size_t n_train, n_seq, n_train_seq;
    /* step buffers, B x (T+1) windows and T x B views */
    int32_t *windows, *inputs, *targets;
    float *row_weights; /* T x B */
    float *z;           /* B x Z */
    cg_gan_state gan;
    cg_gan_work work;
    cg_shards shards;
    cg_dist *dist; /* NULL unless attached to an MPI communicator (dist.c) */
    /* chargan_trainer_request_stop() sets it from any thread or a signal
     * handler; the outermost long call clears it when it returns. */
    atomic_int stop_request;
    int long_calls; /* long calls running (a progress callback may nest one) */
};

/* Tests only: called before each prefix of a round's rollouts (gan.c), as
 * a stop request from another thread would arrive there. */
extern void (*cg_test_rollout_prefix_hook)(chargan_trainer *tr, int prefix);

/* Sizes the models' own workspaces for the full batch.  The steps need them
 * only where they do not run on the shards' replicas; callers that always
 * use them (evaluation of the discriminator) call this first. */
chargan_status cg_trainer_full_workspaces(chargan_trainer *tr);
/* Whether the models keep full-batch workspaces between calls. */
bool cg_trainer_keeps_full_workspaces(const chargan_trainer *tr);
/* m's gradients = the sum of its sh->n replicas', in replica order for
 * each parameter, so a given thread count gives the same bits; replica 0
 * made them in place (it shares m's, cg_model_replica_new).  On the shards'
 * threads, each a slice of the parameters, for models of 16 blocks or more. */
void cg_shards_sum_grads(cg_shards *sh, chargan_model *m, chargan_model *const *replicas);
/* cg_optimizer_step(opt, m's parameters and gradients, grad_norm) on the
 * shards' threads when there are several and m is big enough to gain, the
 * parameters split by whole blocks of the norm; the same bits either way. */
chargan_status cg_trainer_optimizer_step(chargan_trainer *tr, chargan_optimizer *opt,
                                         chargan_model *m, double *grad_norm);
/* The shards' losses (sh->loss), summed in shard order. */
double cg_shards_loss_sum(const cg_shards *sh);
/* Fills tr->windows with B random training windows of T+1 ids. */
void cg_trainer_draw_windows(chargan_trainer *tr);
/* Number of held-out windows, and filling tr->windows with those from
 * `first` on (returns the real rows; the rest of the batch repeats one). */
size_t cg_trainer_val_count(const chargan_trainer *tr);
size_t cg_trainer_val_windows(chargan_trainer *tr, size_t first, size_t n_windows);
/* Fills tr->z with fresh N(0,1) noise (if the generator takes noise); returns it or NULL. */
const float *cg_trainer_draw_noise(chargan_trainer *tr);
/* Seeds work.row_rng: one draw from tr->rng, then stream (draw, global row)
 * for each row, so a row's samples do not depend on how the batch is split. */
void cg_trainer_seed_rows(chargan_trainer *tr);
/* Stop requests (chargan_trainer_request_stop): whether one is pending; and
 * the bracket of every long call (the phases, evaluate and the
 * discriminator's evaluation): the outermost answers any request when it
 * returns, whether it stopped or had passed its last check, while a call
 * made from a progress callback leaves the request to it, so that both stop. */
bool cg_trainer_stop_requested(chargan_trainer *tr);
void cg_trainer_begin_long_call(chargan_trainer *tr);
chargan_status cg_trainer_end_long_call(chargan_trainer *tr, chargan_status st);
/* Re-sizing the step buffers for a local batch (dist.c, on attaching), in
 * two phases so that the ranks can vote between them: the new buffers are
 * made beside the trainer's own (on failure, nothing is changed), then
 * either put in place, the REINFORCE baseline kept and the old ones freed,
 * or discarded.  Neither allocates, so neither can fail. */
typedef struct cg_trainer_buffers {
    int32_t *windows, *inputs, *targets;
    float *row_weights, *z, *baseline;
    cg_gan_work work;
    cg_shards shards;
} cg_trainer_buffers;
chargan_status cg_trainer_prepare_local_batch(chargan_trainer *tr, uint32_t batch,
                                              cg_trainer_buffers *made);
void cg_trainer_commit_local_batch(chargan_trainer *tr, uint32_t batch, cg_trainer_buffers *made);
void cg_trainer_discard_buffers(chargan_trainer *tr, cg_trainer_buffers *made);

/* gan.c */
/* The adversarial part of the shards: discriminator replicas and per-shard
 * arrays (after the generator replicas exist).  Free with cg_gan_shards_free. */
chargan_status cg_gan_shards_alloc(chargan_trainer *tr);
void cg_gan_shards_free(cg_shards *sh);
chargan_status cg_gan_alloc(chargan_trainer *tr);
void cg_gan_free(chargan_trainer *tr);
chargan_status cg_gan_d_step(chargan_trainer *tr, float *loss, float *accuracy);
/* One adversarial round: d_steps discriminator updates, then one generator
 * update with the configured estimator. */
chargan_status cg_gan_step(chargan_trainer *tr, float *g_loss, float *d_loss);
/* Whether the adversarial steps run on the shards (threads > 1, no rollouts). */
bool cg_gan_sharded(const chargan_trainer *tr);
/* Current Gumbel inverse temperature. */
double cg_gan_beta(const chargan_trainer *tr);

#endif
