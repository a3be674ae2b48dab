/* dist.c - data-parallel training over MPI: the only file that includes
 * mpi.h, compiled with or without it (CHARGAN_HAVE_MPI from config.h).
 *
 * Semantics (docs/CLUSTER.md has the user's view):
 * - The application initialises MPI and hands a communicator to
 *   chargan_trainer_set_mpi_comm(); the library works on a duplicate of it,
 *   with MPI_ERRORS_RETURN, so its messages never mix with the
 *   application's and an MPI error becomes a chargan_status.
 * - cfg.batch as configured is the global batch B; once attached the trainer
 *   runs a local batch b = B / N (cfg.batch becomes b; the checkpoint and
 *   chargan_trainer_get_config() still say B).  Every rank draws the same B
 *   windows and noise rows from the shared trainer RNG and keeps rows
 *   rank * b .. rank * b + b - 1 (trainer.c), and the adversarial steps
 *   sample from one RNG stream per global row (gan.c): the N ranks together
 *   compute what one process with batch B computes, up to float rounding.
 * - Every gradient is averaged right before its optimizer step
 *   (cg_dist_allreduce_grads, the one hook trainer.c and gan.c call); the
 *   losses and accuracy that go with it are averaged in the same call, so
 *   every rank reports the global figures.
 * - Every collective is non-blocking and polled with a deadline: a rank that
 *   died or stopped makes the others fail with CHARGAN_E_IO naming the step,
 *   instead of waiting forever.  The communicator is unusable afterwards.
 */
#include "trainer.h"
#include "optim.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#if CHARGAN_HAVE_MPI
#include <mpi.h>
#endif

#define CG_DIST_DEFAULT_TIMEOUT 300.0
/* Polls without sleeping before backing off to short sleeps, so a rank that
 * waits leaves the core to the others (one core per rank is common). */
#define CG_DIST_SPIN_POLLS 1000
#define CG_DIST_SLEEP_NS 20000L

struct cg_dist {
    bool attached; /* a communicator is held */
    bool broken;   /* a collective failed or timed out: nothing more is sent */
    int rank, size;
    uint32_t global_batch, first_row;
    double timeout_s;
#if CHARGAN_HAVE_MPI
    MPI_Comm comm;
#endif
};

#if CHARGAN_HAVE_MPI /* only the collectives attach state */
static cg_dist *dist_get(chargan_trainer *tr)
{
    if (!tr->dist) {
        tr->dist = cg_calloc(1, sizeof *tr->dist);
        if (tr->dist) {
            tr->dist->size = 1;
            tr->dist->timeout_s = CG_DIST_DEFAULT_TIMEOUT;
        }
    }
    return tr->dist;
}
#endif

uint32_t cg_dist_global_batch(const chargan_trainer *tr)
{
    return tr->dist && tr->dist->attached ? tr->dist->global_batch : tr->cfg.batch;
}

uint32_t cg_dist_first_row(const chargan_trainer *tr)
{
    return tr->dist && tr->dist->attached ? tr->dist->first_row : 0;
}

bool cg_dist_writes_files(const chargan_trainer *tr)
{
    return !tr->dist || !tr->dist->attached || tr->dist->rank == 0;
}

bool cg_dist_active(const chargan_trainer *tr)
{
    return tr->dist && tr->dist->attached && tr->dist->size > 1;
}

chargan_status chargan_trainer_mpi_rank(const chargan_trainer *tr, int *rank, int *size)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_mpi_rank: NULL trainer");
    bool on = tr->dist && tr->dist->attached;
    if (rank)
        *rank = on ? tr->dist->rank : 0;
    if (size)
        *size = on ? tr->dist->size : 1;
    return CHARGAN_OK;
}

#if !CHARGAN_HAVE_MPI

chargan_status chargan_trainer_set_mpi_comm(chargan_trainer *tr, const void *comm,
                                            size_t comm_size)
{
    (void)comm_size;
    if (!tr || !comm)
        return cg_fail(tr ? &tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_set_mpi_comm: NULL %s", !tr ? "trainer" : "comm");
    return cg_fail(&tr->err, CHARGAN_E_UNSUPPORTED, "chargan_trainer_set_mpi_comm: this "
                   "libchargan was built without MPI (configure with meson -Dmpi=enabled)");
}

chargan_status chargan_trainer_set_mpi_timeout(chargan_trainer *tr, double seconds)
{
    (void)seconds;
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_set_mpi_timeout: NULL trainer");
    return cg_fail(&tr->err, CHARGAN_E_UNSUPPORTED, "chargan_trainer_set_mpi_timeout: this "
                   "libchargan was built without MPI (configure with meson -Dmpi=enabled)");
}

/* Never attached here, so the callers' cg_dist_active() test keeps them out. */
chargan_status cg_dist_allreduce_grads(chargan_trainer *tr, chargan_model *m, double *vals,
                                       int n_vals, const char *what, uint64_t step)
{
    (void)tr, (void)m, (void)vals, (void)n_vals, (void)what, (void)step;
    return CHARGAN_OK;
}

chargan_status cg_dist_allreduce_sum(chargan_trainer *tr, double *vals, size_t n,
                                     const char *what, uint64_t step)
{
    (void)tr, (void)vals, (void)n, (void)what, (void)step;
    return CHARGAN_OK;
}

chargan_status cg_dist_allreduce_mean(chargan_trainer *tr, double *vals, size_t n,
                                      const char *what, uint64_t step)
{
    (void)tr, (void)vals, (void)n, (void)what, (void)step;
    return CHARGAN_OK;
}

chargan_status cg_dist_agree_stop(chargan_trainer *tr, int *stop, uint64_t step)
{
    (void)tr, (void)stop, (void)step;
    return CHARGAN_OK;
}

void cg_dist_free(cg_dist *d)
{
    cg_free(d);
}

#else /* CHARGAN_HAVE_MPI */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Messages name the step as "<what> <step>" ("MLE step 12", "discriminator
 * update 3") and the operation ("gradient allreduce"). */
static chargan_status mpi_fail(chargan_trainer *tr, int rc, const char *op, const char *what,
                               uint64_t step)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    tr->dist->broken = true;
    return cg_fail_io(&tr->err, 0, "MPI: rank %d of %d: the %s at %s %llu failed: %s",
                      tr->dist->rank, tr->dist->size, op, what, (unsigned long long)step, msg);
}

static chargan_status broken_fail(chargan_trainer *tr, const char *what, uint64_t step)
{
    return cg_fail_io(&tr->err, 0, "MPI: rank %d of %d: cannot run %s %llu: the "
                      "communicator is unusable after an earlier failure", tr->dist->rank,
                      tr->dist->size, what, (unsigned long long)step);
}

/* Polls the requests until all complete or the deadline passes. */
static chargan_status wait_all(chargan_trainer *tr, int n, MPI_Request *req, const char *op,
                               const char *what, uint64_t step)
{
    cg_dist *d = tr->dist;
    double t0 = now_s();
    for (unsigned long polls = 0;; polls++) {
        int done = 0;
        int rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_fail(tr, rc, op, what, step);
        if (done)
            return CHARGAN_OK;
        if (polls >= CG_DIST_SPIN_POLLS) {
            struct timespec ts = {0, CG_DIST_SLEEP_NS};
            nanosleep(&ts, NULL);
        }
        if (now_s() - t0 > d->timeout_s) {
            /* A collective cannot be cancelled: the requests stay pending
             * and the communicator is given up. */
            d->broken = true;
            return cg_fail_io(&tr->err, 0, "MPI: rank %d of %d waited %g s for the other "
                              "ranks at %s %llu (%s): a rank has died or stopped; the "
                              "communicator is unusable now (the application should call "
                              "MPI_Abort)", d->rank, d->size, d->timeout_s, what,
                              (unsigned long long)step, op);
        }
    }
}

chargan_status cg_dist_allreduce_grads(chargan_trainer *tr, chargan_model *m, double *vals,
                                       int n_vals, const char *what, uint64_t step)
{
    if (!cg_dist_active(tr))
        return CHARGAN_OK;
    cg_dist *d = tr->dist;
    if (d->broken)
        return broken_fail(tr, what, step);
    MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    int rc = MPI_Iallreduce(MPI_IN_PLACE, m->grads, (int)m->n_weights, MPI_FLOAT, MPI_SUM, d->comm,
                            &req[0]);
    if (rc == MPI_SUCCESS && n_vals > 0)
        rc = MPI_Iallreduce(MPI_IN_PLACE, vals, n_vals, MPI_DOUBLE, MPI_SUM, d->comm, &req[1]);
    if (rc != MPI_SUCCESS)
        return mpi_fail(tr, rc, "gradient allreduce", what, step);
    chargan_status st = wait_all(tr, 2, req, "gradient allreduce", what, step);
    if (st != CHARGAN_OK)
        return st;
    /* The sum of the ranks' batch means over N is the global batch mean
     * (equal shards); for N a power of two the scaling is exact. */
    float inv = 1.0f / (float)d->size;
    float *restrict g = m->grads;
    for (size_t i = 0; i < m->n_weights; i++)
        g[i] *= inv;
    for (int i = 0; i < n_vals; i++)
        vals[i] /= d->size;
    return CHARGAN_OK;
}

chargan_status cg_dist_allreduce_sum(chargan_trainer *tr, double *vals, size_t n,
                                     const char *what, uint64_t step)
{
    if (!cg_dist_active(tr) || n == 0)
        return CHARGAN_OK;
    cg_dist *d = tr->dist;
    if (d->broken)
        return broken_fail(tr, what, step);
    MPI_Request req = MPI_REQUEST_NULL;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, vals, (int)n, MPI_DOUBLE, MPI_SUM, d->comm, &req);
    if (rc != MPI_SUCCESS)
        return mpi_fail(tr, rc, "allreduce", what, step);
    return wait_all(tr, 1, &req, "allreduce", what, step);
}

chargan_status cg_dist_allreduce_mean(chargan_trainer *tr, double *vals, size_t n,
                                      const char *what, uint64_t step)
{
    chargan_status st = cg_dist_allreduce_sum(tr, vals, n, what, step);
    if (st != CHARGAN_OK || !cg_dist_active(tr))
        return st;
    for (size_t i = 0; i < n; i++)
        vals[i] /= tr->dist->size;
    return CHARGAN_OK;
}

chargan_status cg_dist_agree_stop(chargan_trainer *tr, int *stop, uint64_t step)
{
    if (!cg_dist_active(tr))
        return CHARGAN_OK;
    cg_dist *d = tr->dist;
    if (d->broken)
        return broken_fail(tr, "the stop vote after step", step);
    MPI_Request req = MPI_REQUEST_NULL;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, stop, 1, MPI_INT, MPI_MAX, d->comm, &req);
    if (rc != MPI_SUCCESS)
        return mpi_fail(tr, rc, "stop vote", "step", step);
    return wait_all(tr, 1, &req, "stop vote", "step", step);
}

void cg_dist_free(cg_dist *d)
{
    if (!d)
        return;
    int finalized = 1;
    MPI_Finalized(&finalized);
    /* A broken communicator may still have requests pending: leave it. */
    if (d->attached && !d->broken && !finalized)
        MPI_Comm_free(&d->comm);
    cg_free(d);
}

chargan_status chargan_trainer_set_mpi_timeout(chargan_trainer *tr, double seconds)
{
    if (!tr)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_trainer_set_mpi_timeout: NULL trainer");
    if (!(seconds > 0.0 && seconds <= 1e6))
        return cg_fail(&tr->err, CHARGAN_E_INVALID, "chargan_trainer_set_mpi_timeout: %g s not "
                       "in (0, 1e6]", seconds);
    cg_dist *d = dist_get(tr);
    if (!d)
        return cg_fail(&tr->err, CHARGAN_E_NOMEM, "out of memory for the MPI state");
    d->timeout_s = seconds;
    return CHARGAN_OK;
}

/* ------------------------------------------------------------------ attaching */

static uint64_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* What every rank must agree on, as u64s compared by MIN and MAX. */
enum {
    AG_BATCH, AG_SEQ, AG_ESTIMATOR, AG_D_STEPS, AG_ROLLOUTS, AG_GAMMA, AG_DECAY, AG_MLE_WEIGHT,
    AG_BETA_START, AG_BETA_MAX, AG_ANNEAL, AG_ANNEAL_STEPS, AG_GAN_LOSS, AG_GUMBEL_FEED,
    AG_VAL_FRACTION, AG_G_WEIGHTS, AG_D_WEIGHTS, AG_VOCAB, AG_GLOBAL_STEP, AG_D_UPDATES,
    AG_GAN_STEPS, AG_G_OPT_STEPS, AG_D_OPT_STEPS, AG_CORPUS_KIND, AG_CORPUS_IDS, AG_CORPUS_CRC,
    AG_REPORT_EVERY, AG_VAL_EVERY, AG_G_DROPOUT, AG_D_DROPOUT, AG_SEED,
    AG_G_OPT, /* the generator's optimizer settings, then the discriminator's */
    AG_OPT_N = 9,
    AG_D_OPT = AG_G_OPT + AG_OPT_N,
    AG_N = AG_D_OPT + AG_OPT_N
};
/* The optimizer settings at AG_G_OPT and AG_D_OPT, in this order. */
static const char *const ag_opt_names[AG_OPT_N] = {"kind", "lr", "beta1", "beta2", "eps",
                                            "weight_decay", "momentum", "rho", "clip_norm"};
static const char *const ag_names[AG_G_OPT] = {
    "batch", "seq_len", "estimator", "d_steps", "rollouts", "gamma", "baseline_decay",
    "mle_weight", "beta_start", "beta_max", "anneal", "anneal_steps", "gan_loss", "gumbel_feed",
    "val_fraction", "generator weights", "discriminator weights", "vocabulary size", "global step",
    "discriminator updates", "adversarial steps", "generator optimizer steps",
    "discriminator optimizer steps", "corpus kind", "corpus length", "corpus CRC-32",
    /* each a collective when due: ranks that differ would wait on one another */
    "report_every", "val_every",
    "generator's recurrent_dropout", "discriminator's recurrent_dropout",
    /* rank 0's RNGs are everyone's after attaching, but the discriminator's
     * evaluation seeds its own stream from it */
    "seed"};

static void optimizer_values(const chargan_optimizer *o, uint64_t *v)
{
    if (!o) {
        memset(v, 0, AG_OPT_N * sizeof *v);
        return;
    }
    const chargan_optimizer_config *c = &o->cfg;
    v[0] = (uint64_t)(uint32_t)c->kind;
    v[1] = f32_bits(c->lr);
    v[2] = f32_bits(c->beta1);
    v[3] = f32_bits(c->beta2);
    v[4] = f32_bits(c->eps);
    v[5] = f32_bits(c->weight_decay);
    v[6] = f32_bits(c->momentum);
    v[7] = f32_bits(c->rho);
    v[8] = f32_bits(c->clip_norm);
}

/* The name of agreement value i, in buf when it is an optimizer's setting. */
static const char *ag_name(int i, char *buf, size_t size)
{
    if (i < AG_G_OPT)
        return ag_names[i];
    bool gen = i < AG_D_OPT;
    snprintf(buf, size, "%s optimizer's %s", gen ? "generator" : "discriminator",
             ag_opt_names[i - (gen ? AG_G_OPT : AG_D_OPT)]);
    return buf;
}

static void agreement_values(const chargan_trainer *tr, uint64_t *v)
{
    const chargan_trainer_config *c = &tr->cfg;
    v[AG_BATCH] = c->batch;
    v[AG_SEQ] = c->seq_len;
    v[AG_ESTIMATOR] = (uint64_t)(uint32_t)c->estimator;
    v[AG_D_STEPS] = c->d_steps;
    v[AG_ROLLOUTS] = c->rollouts;
    v[AG_GAMMA] = f32_bits(c->gamma);
    v[AG_DECAY] = f32_bits(c->baseline_decay);
    v[AG_MLE_WEIGHT] = f32_bits(c->mle_weight);
    v[AG_BETA_START] = f32_bits(c->beta_start);
    v[AG_BETA_MAX] = f32_bits(c->beta_max);
    v[AG_ANNEAL] = (uint64_t)(uint32_t)c->anneal;
    v[AG_ANNEAL_STEPS] = c->anneal_steps;
    v[AG_GAN_LOSS] = (uint64_t)(uint32_t)c->gan_loss;
    v[AG_GUMBEL_FEED] = (uint64_t)(uint32_t)c->gumbel_feed;
    v[AG_VAL_FRACTION] = f32_bits(c->val_fraction);
    v[AG_G_WEIGHTS] = tr->gen->n_weights;
    v[AG_D_WEIGHTS] = tr->disc ? tr->disc->n_weights : 0;
    v[AG_VOCAB] = (uint64_t)tr->gen->V;
    v[AG_GLOBAL_STEP] = tr->global_step;
    v[AG_D_UPDATES] = tr->d_updates;
    v[AG_GAN_STEPS] = tr->gan.gan_steps;
    v[AG_G_OPT_STEPS] = tr->gopt->steps;
    v[AG_D_OPT_STEPS] = tr->dopt ? tr->dopt->steps : 0;
    v[AG_CORPUS_KIND] = (uint64_t)tr->corpus_kind;
    v[AG_CORPUS_IDS] = tr->ids.n;
    v[AG_CORPUS_CRC] = cg_crc32(0, tr->ids.data, cg_packed_ids_bytes(&tr->ids));
    v[AG_REPORT_EVERY] = c->report_every;
    v[AG_VAL_EVERY] = c->val_every;
    v[AG_G_DROPOUT] = f32_bits(tr->gen->cfg.recurrent_dropout);
    v[AG_D_DROPOUT] = tr->disc ? f32_bits(tr->disc->cfg.recurrent_dropout) : 0;
    v[AG_SEED] = c->seed;
    optimizer_values(tr->gopt, v + AG_G_OPT);
    optimizer_values(tr->dopt, v + AG_D_OPT);
}

static chargan_status check_agreement(chargan_trainer *tr)
{
    uint64_t mine[AG_N], lo[AG_N], hi[AG_N];
    agreement_values(tr, mine);
    MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    cg_dist *d = tr->dist;
    int rc = MPI_Iallreduce(mine, lo, AG_N, MPI_UINT64_T, MPI_MIN, d->comm, &req[0]);
    if (rc == MPI_SUCCESS)
        rc = MPI_Iallreduce(mine, hi, AG_N, MPI_UINT64_T, MPI_MAX, d->comm, &req[1]);
    if (rc != MPI_SUCCESS)
        return mpi_fail(tr, rc, "configuration check", "step", tr->global_step);
    chargan_status st = wait_all(tr, 2, req, "configuration check", "step", tr->global_step);
    if (st != CHARGAN_OK)
        return st;
    char name[64];
    for (int i = 0; i < AG_N; i++)
        if (lo[i] != hi[i])
            return cg_fail(&tr->err, CHARGAN_E_INVALID, "chargan_trainer_set_mpi_comm: the ranks "
                           "disagree on the %s (this rank %llu; from %llu to %llu over the "
                           "ranks): every rank needs the same configuration, corpus and "
                           "checkpoint", ag_name(i, name, sizeof name), (unsigned long long)mine[i],
                           (unsigned long long)lo[i], (unsigned long long)hi[i]);
    return CHARGAN_OK;
}

/* Rank 0's parameters, optimizer moments, RNGs (the trainer's and the
 * models' dropout RNGs) and baseline to all ranks. */
static chargan_status broadcast_state(chargan_trainer *tr)
{
    cg_dist *d = tr->dist;
    MPI_Request req[16];
    int n = 0, rc = MPI_SUCCESS;
    chargan_model *models[2] = {tr->gen, tr->disc};
    chargan_optimizer *opts[2] = {tr->gopt, tr->dopt};
    for (int k = 0; k < 2 && rc == MPI_SUCCESS; k++) {
        chargan_model *m = models[k];
        if (!m)
            continue;
        rc = MPI_Ibcast(m->params, (int)m->n_weights, MPI_FLOAT, 0, d->comm, &req[n++]);
        if (rc == MPI_SUCCESS)
            rc = MPI_Ibcast(m->rng.s, 4, MPI_UINT64_T, 0, d->comm, &req[n++]);
        /* Equal step counts (checked) mean equally sized moments. */
        chargan_optimizer *o = opts[k];
        if (rc == MPI_SUCCESS && o->m && o->n == m->n_weights)
            rc = MPI_Ibcast(o->m, (int)o->n, MPI_FLOAT, 0, d->comm, &req[n++]);
        if (rc == MPI_SUCCESS && o->v && o->n == m->n_weights)
            rc = MPI_Ibcast(o->v, (int)o->n, MPI_FLOAT, 0, d->comm, &req[n++]);
    }
    if (rc == MPI_SUCCESS)
        rc = MPI_Ibcast(tr->rng.s, 4, MPI_UINT64_T, 0, d->comm, &req[n++]);
    if (rc == MPI_SUCCESS)
        rc = MPI_Ibcast(tr->gan.baseline, (int)tr->cfg.seq_len, MPI_FLOAT, 0, d->comm, &req[n++]);
    if (rc == MPI_SUCCESS)
        rc = MPI_Ibcast(&tr->gan.baseline_set, 1, MPI_UINT32_T, 0, d->comm, &req[n++]);
    if (rc != MPI_SUCCESS) {
        /* the ones started must finish before their buffers are reused */
        wait_all(tr, n - 1, req, "state broadcast", "step", tr->global_step);
        return mpi_fail(tr, rc, "state broadcast", "step", tr->global_step);
    }
    return wait_all(tr, n, req, "state broadcast", "step", tr->global_step);
}

/* This rank's status after a vote in which `bad` says whether any rank
 * failed: its own failure, or the news of another's. */
static chargan_status after_vote(chargan_trainer *tr, chargan_status st, int bad)
{
    if (st == CHARGAN_OK && bad)
        return cg_fail(&tr->err, CHARGAN_E_STATE, "chargan_trainer_set_mpi_comm: another rank "
                       "failed to attach (see its message)");
    return st;
}

/* Every rank learns whether all of them succeeded, so they fail together. */
static chargan_status agree_ok(chargan_trainer *tr, chargan_status st)
{
    int bad = st != CHARGAN_OK;
    MPI_Request req = MPI_REQUEST_NULL;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, tr->dist->comm, &req);
    if (rc != MPI_SUCCESS)
        return mpi_fail(tr, rc, "attach vote", "step", tr->global_step);
    chargan_status st2 = wait_all(tr, 1, &req, "attach vote", "step", tr->global_step);
    return st2 != CHARGAN_OK ? st2 : after_vote(tr, st, bad);
}

static chargan_status attach(chargan_trainer *tr, int size)
{
    chargan_status st = check_agreement(tr);
    if (st != CHARGAN_OK)
        return st;
    if (tr->gen->n_weights > INT_MAX || (tr->disc && tr->disc->n_weights > INT_MAX))
        return cg_fail(&tr->err, CHARGAN_E_INVALID, "chargan_trainer_set_mpi_comm: more than "
                       "%d weights in one model (MPI counts are int)", INT_MAX);
    uint32_t B = tr->cfg.batch;
    if (B % (uint32_t)size != 0)
        return cg_fail(&tr->err, CHARGAN_E_INVALID, "chargan_trainer_set_mpi_comm: batch %u is "
                       "not a multiple of the %d ranks (the global batch is split evenly)", B,
                       size);
    if ((st = broadcast_state(tr)) != CHARGAN_OK)
        return st;
    uint32_t b = B / (uint32_t)size;
    /* The local batch's buffers are made before the vote and put in place
     * only if every rank made its own: going back needs no allocation. */
    cg_trainer_buffers made;
    bool prepared = false;
    if (size > 1) {
        st = cg_trainer_prepare_local_batch(tr, b, &made);
        prepared = st == CHARGAN_OK;
    }
    st = agree_ok(tr, st);
    if (st != CHARGAN_OK) {
        if (prepared)
            cg_trainer_discard_buffers(tr, &made);
        return st;
    }
    if (prepared)
        cg_trainer_commit_local_batch(tr, b, &made);
    tr->dist->global_batch = B;
    tr->dist->first_row = (uint32_t)tr->dist->rank * b;
    /* every rank draws the whole batch's dropout masks and keeps its rows */
    chargan_model *models[2] = {tr->gen, tr->disc};
    for (int k = 0; k < 2; k++)
        if (models[k]) {
            models[k]->mask_rows_before = tr->dist->first_row;
            models[k]->mask_rows_after = B - tr->dist->first_row - b;
        }
    return CHARGAN_OK;
}

/* An MPI call of chargan_trainer_set_mpi_comm failed with rc. */
static chargan_status attach_mpi_fail(chargan_trainer *tr, int rc)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return cg_fail_io(&tr->err, 0, "chargan_trainer_set_mpi_comm: %s", msg);
}

/* What keeps this rank from attaching, found before any collective of the
 * trainer's own: CHARGAN_OK, or the failure (reported on the handle). */
static chargan_status attach_precheck(chargan_trainer *tr)
{
    if (tr->dist && tr->dist->attached)
        return cg_fail(&tr->err, CHARGAN_E_STATE, "chargan_trainer_set_mpi_comm: the trainer is "
                       "already attached to a communicator");
    if (tr->corpus_kind == CG_CORPUS_NONE)
        return cg_fail(&tr->err, CHARGAN_E_STATE, "chargan_trainer_set_mpi_comm: no corpus: set "
                       "the same corpus on every rank first");
    if (!dist_get(tr))
        return cg_fail(&tr->err, CHARGAN_E_NOMEM, "out of memory for the MPI state");
    return CHARGAN_OK;
}

chargan_status chargan_trainer_set_mpi_comm(chargan_trainer *tr, const void *comm,
                                            size_t comm_size)
{
    if (!tr || !comm)
        return cg_fail(tr ? &tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_set_mpi_comm: NULL %s", !tr ? "trainer" : "comm");
    if (comm_size != sizeof(MPI_Comm))
        return cg_fail(&tr->err, CHARGAN_E_INVALID, "chargan_trainer_set_mpi_comm: comm_size "
                       "%zu, but this library's MPI_Comm has %zu bytes (pass "
                       "sizeof(MPI_Comm); was it built against another MPI?)", comm_size,
                       sizeof(MPI_Comm));
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (!initialized || finalized)
        return cg_fail(&tr->err, CHARGAN_E_STATE, "chargan_trainer_set_mpi_comm: MPI is %s (the "
                       "application calls MPI_Init before and MPI_Finalize after)",
                       finalized ? "already finalised" : "not initialised");
    /* The failures above are the same on every rank or need no partner.
     * The ones below may hit one rank alone (its corpus failed to load),
     * and a rank that returned at once would leave the others waiting in
     * the first collective for ever: every rank takes part in the
     * communicator's duplication and a vote on them first.  (Blocking, as
     * the duplication is, and not agree_ok's: this rank may have no MPI
     * state to poll with, if it could not allocate one.) */
    MPI_Comm user, dup = MPI_COMM_NULL;
    memcpy(&user, comm, sizeof user);
    int rc = MPI_Comm_dup(user, &dup);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    chargan_status st = attach_precheck(tr);
    int bad = st != CHARGAN_OK;
    if (rc == MPI_SUCCESS)
        rc = MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, dup);
    if (rc != MPI_SUCCESS) {
        if (dup != MPI_COMM_NULL)
            MPI_Comm_free(&dup);
        return attach_mpi_fail(tr, rc);
    }
    if (bad) {
        MPI_Comm_free(&dup);
        return after_vote(tr, st, bad);
    }
    cg_dist *d = tr->dist;
    d->comm = dup;
    rc = MPI_Comm_rank(d->comm, &d->rank);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_size(d->comm, &d->size);
    if (rc != MPI_SUCCESS) {
        MPI_Comm_free(&d->comm);
        return attach_mpi_fail(tr, rc);
    }
    d->broken = false;
    st = attach(tr, d->size);
    if (st != CHARGAN_OK) {
        if (!d->broken)
            MPI_Comm_free(&d->comm);
        d->rank = 0;
        d->size = 1;
        return st;
    }
    d->attached = true;
    return CHARGAN_OK;
}

#endif /* CHARGAN_HAVE_MPI */
