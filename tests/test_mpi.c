/* test_mpi.c - data-parallel training over MPI, run as
 *
 *     mpirun -np 2 test_mpi CORPUS
 *
 * (tests/mpi/run.sh adds what a container needs).  Not a Check suite: Check
 * forks every case, and an MPI process must not fork.  Every rank runs every
 * check in the same order and the verdict is agreed over the ranks
 * (MPI_Allreduce), so rank 0 prints one TAP line per check for all of them.
 *
 * The claim under test: N ranks with global batch B compute what one process
 * with batch B computes, up to float rounding (a different summation order of
 * the gradients).  Each rank runs the single-process reference itself (same
 * seed, batch B, no communicator) and the data-parallel run, and compares the
 * loss curves step by step and the final parameters.  Tolerance: every loss
 * and every parameter within LOSS_TOL / PARAM_TOL of the reference
 * (absolute, on values of order 1); the ranks' parameters must be identical
 * bit for bit.
 */
#include "model.h"
#include "optim.h"
#include "trainer.h"

#include <mpi.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOSS_TOL 1e-4
#define PARAM_TOL 1e-4
#define BATCH 8
#define SEQ 16

static int rank, size, n_checks, n_failed;
static char *corpus;
static size_t corpus_len;

/* One check, agreed over the ranks: passes only if it passes on every rank. */
static int check(int ok, const char *fmt, ...)
{
    int all = ok != 0;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    n_checks++;
    n_failed += !all;
    if (rank == 0) {
        va_list ap;
        va_start(ap, fmt);
        printf("%s %d - ", all ? "ok" : "not ok", n_checks);
        vprintf(fmt, ap);
        printf("\n");
        va_end(ap);
        fflush(stdout);
    }
    if (!ok)
        fprintf(stderr, "# rank %d: failed: %s\n", rank, chargan_last_error());
    return all;
}

typedef struct run_cfg {
    const char *name;
    int32_t estimator;
    uint32_t d_steps, rollouts, noise_dim;
    float mle_weight;
    int32_t gan_loss;
    float dropout; /* recurrent dropout of both models */
} run_cfg;

static chargan_status make_trainer(const run_cfg *rc, uint32_t batch, chargan_trainer **out)
{
    chargan_model *gen = NULL, *disc = NULL;
    chargan_model_config mc;
    chargan_model_config_init(&mc, CHARGAN_GENERATOR);
    mc.vocab_size = 96;
    mc.embed_dim = 16;
    mc.hidden_dim = 32;
    mc.noise_dim = rc->noise_dim;
    mc.recurrent_dropout = rc->dropout;
    mc.seed = 11;
    chargan_status st = chargan_model_new(&mc, &gen);
    if (st == CHARGAN_OK && rc->estimator != CHARGAN_GAN_NONE) {
        chargan_model_config dc;
        chargan_model_config_init(&dc, CHARGAN_DISCRIMINATOR);
        dc.vocab_size = 96;
        dc.embed_dim = 16;
        dc.hidden_dim = 32;
        dc.recurrent_dropout = rc->dropout;
        dc.seed = 12;
        st = chargan_model_new(&dc, &disc);
    }
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = batch;
    tc.seq_len = SEQ;
    tc.seed = 5;
    tc.report_every = 1000;
    tc.estimator = rc->estimator;
    tc.d_steps = rc->d_steps ? rc->d_steps : 1;
    tc.rollouts = rc->rollouts;
    tc.mle_weight = rc->mle_weight;
    tc.gan_loss = rc->gan_loss;
    tc.beta_max = 10.0f;
    tc.anneal_steps = 10;
    if (st == CHARGAN_OK)
        st = chargan_trainer_new(&tc, gen, NULL, disc, NULL, out);
    if (st != CHARGAN_OK) {
        chargan_model_free(gen);
        chargan_model_free(disc);
        return st;
    }
    st = chargan_trainer_set_corpus_text(*out, corpus, corpus_len);
    if (st != CHARGAN_OK) {
        chargan_trainer_free(*out);
        *out = NULL;
    }
    return st;
}

static chargan_status attach(chargan_trainer *tr)
{
    MPI_Comm world = MPI_COMM_WORLD;
    chargan_status st = chargan_trainer_set_mpi_timeout(tr, 60.0);
    return st == CHARGAN_OK ? chargan_trainer_set_mpi_comm(tr, &world, sizeof world) : st;
}

/* The curve: MLE steps, then (GAN) discriminator steps and adversarial
 * rounds; every loss and accuracy in order. */
#define MLE_STEPS 6
#define D_STEPS 3
#define GAN_STEPS 8
#define MAX_CURVE (MLE_STEPS + 2 * D_STEPS + 2 * GAN_STEPS)

static chargan_status run_curve(chargan_trainer *tr, const run_cfg *rc, float *curve, int *n)
{
    chargan_status st = CHARGAN_OK;
    *n = 0;
    for (int i = 0; i < MLE_STEPS && st == CHARGAN_OK; i++)
        st = chargan_trainer_mle_step(tr, &curve[(*n)++]);
    if (rc->estimator == CHARGAN_GAN_NONE)
        return st;
    for (int i = 0; i < D_STEPS && st == CHARGAN_OK; i++, *n += 2)
        st = chargan_trainer_d_step(tr, &curve[*n], &curve[*n + 1]);
    for (int i = 0; i < GAN_STEPS && st == CHARGAN_OK; i++, *n += 2)
        st = chargan_trainer_gan_step(tr, &curve[*n], &curve[*n + 1]);
    return st;
}

/* The largest difference between two models' parameters, leaving out the
 * tensor called skip (NULL: none). */
static double max_param_diff(const chargan_model *a, const chargan_model *b, const char *skip)
{
    if (!a || !b)
        return a == b ? 0.0 : INFINITY;
    double m = 0.0;
    for (size_t t = 0; t < a->n_tensors; t++) {
        const cg_tensor *x = &a->tensors[t];
        if (skip && strcmp(x->name, skip) == 0)
            continue;
        for (size_t i = x->offset; i < x->offset + x->numel; i++) {
            double d = fabs((double)a->params[i] - (double)b->params[i]);
            m = d > m || isnan(d) ? d : m;
        }
    }
    return m;
}

/* Whether every rank holds these exact bits. */
static int same_on_all_ranks(const chargan_model *m)
{
    if (!m)
        return 1;
    uint64_t c = cg_crc32(0, m->params, m->n_weights * sizeof(float)), lo = c, hi = c;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

static void equivalence(const run_cfg *rc, uint32_t batch)
{
    float ref[MAX_CURVE], dist[MAX_CURVE];
    int n_ref = 0, n_dist = 0;
    chargan_trainer *a = NULL, *b = NULL;
    chargan_status st = make_trainer(rc, batch, &a);
    if (st == CHARGAN_OK)
        st = run_curve(a, rc, ref, &n_ref);
    if (!check(st == CHARGAN_OK, "%s: the one-process reference with batch %d runs", rc->name,
               (int)batch))
        goto out;
    st = make_trainer(rc, batch, &b);
    if (st == CHARGAN_OK)
        st = attach(b);
    if (st == CHARGAN_OK)
        st = run_curve(b, rc, dist, &n_dist);
    if (!check(st == CHARGAN_OK && n_dist == n_ref, "%s: %d ranks with global batch %d run",
               rc->name, size, (int)batch))
        goto out;
    double worst = 0.0;
    int at = 0;
    for (int i = 0; i < n_ref; i++) {
        double d = fabs((double)ref[i] - (double)dist[i]);
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    if (rank == 0)
        printf("# %s: %d values, largest difference %.3g (value %d: %.6f vs %.6f)\n", rc->name,
               n_ref, worst, at, (double)ref[at], (double)dist[at]);
    check(worst <= LOSS_TOL, "%s: the loss curve on %d ranks is the reference's within %g "
          "(largest difference %.3g)", rc->name, size, LOSS_TOL, worst);
    /* The relativistic loss C(real) - C(fake) cannot see the discriminator's
     * output bias: its gradient is zero in exact arithmetic and rounding
     * noise (1e-9) in floats, which Adam scales to steps of about lr, so
     * that one tensor drifts differently in any two summation orders. */
    const char *skip = rc->gan_loss == CHARGAN_LOSS_RELATIVISTIC ? "out.b" : NULL;
    double pg = max_param_diff(a->gen, b->gen, NULL), pd = max_param_diff(a->disc, b->disc, skip);
    check(pg <= PARAM_TOL && pd <= PARAM_TOL, "%s: final parameters within %g of the reference "
          "(generator %.3g, discriminator %.3g%s)", rc->name, PARAM_TOL, pg, pd,
          skip ? " but its output bias" : "");
    check(same_on_all_ranks(b->gen) && same_on_all_ranks(b->disc),
          "%s: every rank holds the same parameters, bit for bit", rc->name);
out:
    chargan_trainer_free(a);
    chargan_trainer_free(b);
}

static void errors(void)
{
    static const run_cfg mle = {"MLE", CHARGAN_GAN_NONE, 1, 0, 0, 0.0f, 0, 0.0f};
    MPI_Comm world = MPI_COMM_WORLD;
    chargan_trainer *tr = NULL;
    chargan_status st = make_trainer(&mle, BATCH, &tr);
    if (!check(st == CHARGAN_OK, "a trainer for the error checks"))
        return;
    check(chargan_trainer_set_mpi_comm(NULL, &world, sizeof world) == CHARGAN_E_INVALID &&
              chargan_trainer_set_mpi_comm(tr, NULL, sizeof world) == CHARGAN_E_INVALID,
          "set_mpi_comm: NULL trainer or comm -> CHARGAN_E_INVALID");
    st = chargan_trainer_set_mpi_comm(tr, &world, sizeof world + 1);
    check(st == CHARGAN_E_INVALID && strstr(chargan_trainer_last_error(tr), "comm_size"),
          "set_mpi_comm: a wrong comm_size -> CHARGAN_E_INVALID naming comm_size");
    check(chargan_trainer_set_mpi_timeout(tr, 0.0) == CHARGAN_E_INVALID &&
              chargan_trainer_set_mpi_timeout(tr, NAN) == CHARGAN_E_INVALID &&
              chargan_trainer_set_mpi_timeout(NULL, 1.0) == CHARGAN_E_INVALID,
          "set_mpi_timeout: 0, NaN or a NULL trainer -> CHARGAN_E_INVALID");
    int r = -1, s = -1;
    check(chargan_trainer_mpi_rank(tr, &r, &s) == CHARGAN_OK && r == 0 && s == 1 &&
              chargan_trainer_mpi_rank(NULL, &r, &s) == CHARGAN_E_INVALID,
          "mpi_rank: 0 of 1 before attaching; NULL trainer -> CHARGAN_E_INVALID");
    st = attach(tr);
    check(st == CHARGAN_OK, "set_mpi_comm attaches (%s)", chargan_strerror(st));
    check(chargan_trainer_mpi_rank(tr, &r, &s) == CHARGAN_OK && r == rank && s == size,
          "mpi_rank: this rank and the world's size once attached");
    chargan_trainer_config tc;
    memset(&tc, 0, sizeof tc);
    tc.struct_size = sizeof tc;
    check(chargan_trainer_get_config(tr, &tc) == CHARGAN_OK && tc.batch == BATCH &&
              tr->cfg.batch == BATCH / (uint32_t)size,
          "get_config says the global batch %d; the rank computes %d rows", BATCH, BATCH / size);
    st = attach(tr);
    check(st == CHARGAN_E_STATE, "attaching twice -> CHARGAN_E_STATE");
    chargan_trainer_free(tr);
    tr = NULL;

    /* no corpus yet */
    chargan_model *gen = NULL;
    chargan_model_config mc;
    chargan_model_config_init(&mc, CHARGAN_GENERATOR);
    mc.vocab_size = 96;
    mc.hidden_dim = 8;
    mc.embed_dim = 4;
    chargan_trainer_config cfg;
    chargan_trainer_config_init(&cfg);
    cfg.batch = 4;
    cfg.seq_len = 8;
    st = chargan_model_new(&mc, &gen);
    if (st == CHARGAN_OK && (st = chargan_trainer_new(&cfg, gen, NULL, NULL, NULL, &tr)) != CHARGAN_OK)
        chargan_model_free(gen);
    check(st == CHARGAN_OK && attach(tr) == CHARGAN_E_STATE &&
              strstr(chargan_trainer_last_error(tr), "corpus"),
          "set_mpi_comm before a corpus -> CHARGAN_E_STATE");
    chargan_trainer_free(tr);
    tr = NULL;

    if (size > 1) {
        /* a batch the ranks cannot share evenly */
        st = make_trainer(&mle, (uint32_t)size + 1, &tr);
        check(st == CHARGAN_OK && attach(tr) == CHARGAN_E_INVALID &&
                  strstr(chargan_trainer_last_error(tr), "multiple"),
              "a batch of %d on %d ranks -> CHARGAN_E_INVALID on every rank", size + 1, size);
        int r2 = -1, s2 = -1;
        check(chargan_trainer_mpi_rank(tr, &r2, &s2) == CHARGAN_OK && r2 == 0 && s2 == 1 &&
                  chargan_trainer_mle_step(tr, NULL) == CHARGAN_OK,
              "after a failed attach the trainer still trains alone");
        chargan_trainer_free(tr);
        tr = NULL;
        /* ranks that disagree, each time on one setting: the optimizer's
         * diverged silently, report_every (a collective when due) aborted
         * the job in MPI_ERR_TRUNCATE */
        static const char *const settings[] = {"mle_weight", "generator optimizer's lr",
                                               "report_every", "seed"};
        for (int k = 0; k < 4; k++) {
            st = make_trainer(&mle, BATCH, &tr);
            if (st == CHARGAN_OK && rank == 1) {
                if (k == 0)
                    tr->cfg.mle_weight = 0.5f;
                else if (k == 1)
                    tr->gopt->cfg.lr *= 2.0f;
                else if (k == 2)
                    tr->cfg.report_every = 1;
                else
                    tr->cfg.seed += 1;
            }
            char want[64];
            snprintf(want, sizeof want, "disagree on the %s", settings[k]);
            check(st == CHARGAN_OK && attach(tr) == CHARGAN_E_INVALID &&
                      strstr(chargan_trainer_last_error(tr), want),
                  "ranks with different %s -> CHARGAN_E_INVALID naming it", settings[k]);
            chargan_trainer_free(tr);
            tr = NULL;
        }
        /* one rank without a corpus (its file failed to load): it returned
         * at once and the others waited in the communicator's duplication */
        run_cfg tiny = mle;
        st = make_trainer(&tiny, BATCH, &tr);
        if (st == CHARGAN_OK && rank == 1) {
            chargan_trainer_free(tr);
            tr = NULL;
            chargan_model *g1 = NULL;
            st = chargan_model_new(&mc, &g1);
            if (st == CHARGAN_OK &&
                (st = chargan_trainer_new(&cfg, g1, NULL, NULL, NULL, &tr)) != CHARGAN_OK)
                chargan_model_free(g1);
        }
        st = st == CHARGAN_OK ? attach(tr) : st;
        check(st == CHARGAN_E_STATE && strstr(chargan_trainer_last_error(tr),
                                              rank == 1 ? "no corpus" : "another rank"),
              "a rank without a corpus -> CHARGAN_E_STATE on every rank, none waiting");
        chargan_trainer_free(tr);
        tr = NULL;
    }
}

/* Caller-supplied batches (mle_step_batch) and the discriminator's
 * evaluation: the global batch on every rank, N ranks as one process; and
 * the evaluation's stop requests. */
/* An attach that runs out of memory (allocation k and every later one
 * failing, as a real shortage does) fails on every rank and leaves each
 * trainer as it was: it trains and saves on its own, with the global batch.
 * With others_too 0 the last rank runs out at k: a rank whose re-sizing
 * failed was left with no buffers at all, and the next
 * chargan_trainer_mle_step_batch or save crashed.  With others_too 1 the last
 * rank fails at once and the others at k: one that had re-sized and could
 * not size back for the global batch trained alone on half of it. */
static void attach_out_of_memory(const char *dir, int others_too)
{
    static const run_cfg mle = {"MLE", CHARGAN_GAN_NONE, 1, 0, 0, 0.0f, 0, 0.0f};
    char path[1024];
    snprintf(path, sizeof path, "%s/oom-rank%d.ckpt", dir, rank);
    int usable = 1, failed_attaches = 0;
    long k;
    const long k_max = others_too ? 120 : 500; /* others_too: never succeeds */
    for (k = 0; k < k_max; k++) {
        chargan_trainer *tr = NULL;
        if (make_trainer(&mle, BATCH, &tr) != CHARGAN_OK) {
            usable = 0;
            break;
        }
        chargan_status st = chargan_trainer_set_mpi_timeout(tr, 60.0);
        MPI_Comm world = MPI_COMM_WORLD;
        if (rank == size - 1)
            cg_alloc_fail_after(others_too ? 0 : k);
        else if (others_too)
            cg_alloc_fail_after(k);
        if (st == CHARGAN_OK)
            st = chargan_trainer_set_mpi_comm(tr, &world, sizeof world);
        cg_alloc_fail_after(-1);
        int failed = st != CHARGAN_OK, any;
        MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (any) {
            failed_attaches++;
            int32_t ids[BATCH * (SEQ + 1)];
            for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
                ids[i] = 3 + (int32_t)(i % 40);
            float loss;
            int r = -1, n = -1;
            usable &= failed && chargan_trainer_mpi_rank(tr, &r, &n) == CHARGAN_OK && r == 0 &&
                      n == 1 && tr->cfg.batch == BATCH &&
                      chargan_trainer_mle_step(tr, &loss) == CHARGAN_OK &&
                      chargan_trainer_mle_step_batch(tr, ids, &loss) == CHARGAN_OK &&
                      chargan_trainer_save(tr, path) == CHARGAN_OK;
        }
        chargan_trainer_free(tr);
        if (!any)
            break;
    }
    check(usable && failed_attaches > 0 && (others_too || k < k_max),
          "an attach out of memory on %s fails on every rank and leaves trainers that train and "
          "save with the global batch (%d failed attaches)",
          others_too ? "every rank" : "the last rank", failed_attaches);
    unlink(path);
}

static void batches_and_evaluation(void)
{
    static const run_cfg rf = {"REINFORCE", CHARGAN_GAN_REINFORCE, 1, 0, 0, 0.0f, 0, 0.0f};
    chargan_trainer *a = NULL, *b = NULL;
    chargan_status st = make_trainer(&rf, BATCH, &a);
    if (st == CHARGAN_OK)
        st = make_trainer(&rf, BATCH, &b);
    if (st == CHARGAN_OK)
        st = attach(b);
    if (!check(st == CHARGAN_OK, "two trainers, one attached"))
        goto out;
    int32_t ids[BATCH * (SEQ + 1)];
    for (int i = 0; i < BATCH * (SEQ + 1); i++)
        ids[i] = 2 + (int32_t)((i * 7 + i / 5) % 60);
    float la = 0.0f, lb = 0.0f;
    for (int k = 0; k < 3 && st == CHARGAN_OK; k++) {
        st = chargan_trainer_mle_step_batch(a, ids, &la);
        if (st == CHARGAN_OK)
            st = chargan_trainer_mle_step_batch(b, ids, &lb);
    }
    check(st == CHARGAN_OK && fabs((double)la - (double)lb) <= LOSS_TOL &&
              max_param_diff(a->gen, b->gen, NULL) <= PARAM_TOL,
          "mle_step_batch: %d ranks train on the whole given batch as one process "
          "(loss %.6f vs %.6f)", size, (double)la, (double)lb);
    for (int k = 0; k < 2 && st == CHARGAN_OK; k++) {
        st = chargan_trainer_d_step(a, NULL, NULL);
        if (st == CHARGAN_OK)
            st = chargan_trainer_d_step(b, NULL, NULL);
    }
    double acc_a = -1.0, acc_b = -2.0;
    if (st == CHARGAN_OK)
        st = chargan_trainer_eval_discriminator(a, 3, &acc_a);
    if (st == CHARGAN_OK)
        st = chargan_trainer_eval_discriminator(b, 3, &acc_b);
    double lo = acc_b, hi = acc_b;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    /* 3 batches of 8 real and 8 generated rows: one judgement is 1/48 */
    check(st == CHARGAN_OK && lo == hi && fabs(acc_a - acc_b) < 1.0 / 48.0,
          "eval_discriminator: the same accuracy on every rank, one process's (%.6f vs %.6f)",
          acc_a, acc_b);
    /* A stop request on the last rank stops every rank's evaluation before
     * its first batch (none left waiting in the sum); the next runs whole. */
    if (st == CHARGAN_OK) {
        if (rank == size - 1)
            chargan_trainer_request_stop(b);
        st = chargan_trainer_eval_discriminator(b, 3, &acc_b);
        const char *why = rank == size - 1 ? "chargan_trainer_request_stop" : "another rank";
        check(st == CHARGAN_E_CANCELLED && strstr(chargan_trainer_last_error(b), why) != NULL,
              "eval_discriminator: a request on rank %d stops every rank (this rank: status %d, "
              "\"%s\")", size - 1, (int)st, chargan_trainer_last_error(b));
        double acc = -1.0;
        st = chargan_trainer_eval_discriminator(b, 3, &acc);
        check(st == CHARGAN_OK && acc == hi, "eval_discriminator: the next runs whole (%.6f)", acc);
    }
out:
    chargan_trainer_free(a);
    chargan_trainer_free(b);
}

/* A stop request on the last rank stops every rank at the next progress
 * report's vote, after the same step; none is left for the next call. */
static void stop_requests(void)
{
    static const run_cfg mle = {"MLE", CHARGAN_GAN_NONE, 1, 0, 0, 0.0f, 0, 0.0f};
    chargan_trainer *tr = NULL;
    chargan_status st = make_trainer(&mle, BATCH, &tr);
    if (st == CHARGAN_OK) {
        tr->cfg.report_every = 4; /* the same on every rank, before attaching */
        st = attach(tr);
    }
    if (!check(st == CHARGAN_OK, "a trainer attached for stop requests"))
        goto out;
    if (rank == size - 1)
        chargan_trainer_request_stop(tr);
    st = chargan_trainer_pretrain_generator(tr, 20);
    uint64_t step = 0;
    chargan_trainer_global_step(tr, &step);
    const char *why = rank == size - 1 ? "chargan_trainer_request_stop" : "another rank";
    check(st == CHARGAN_E_CANCELLED && step == 4 &&
              strstr(chargan_trainer_last_error(tr), why) != NULL,
          "a request on rank %d stops every rank after step 4 (this rank: status %d, step "
          "%llu, \"%s\")", size - 1, (int)st, (unsigned long long)step,
          chargan_trainer_last_error(tr));
    st = chargan_trainer_pretrain_generator(tr, 3);
    chargan_trainer_global_step(tr, &step);
    check(st == CHARGAN_OK && step == 7, "the next call runs whole on every rank (step %llu)",
          (unsigned long long)step);
out:
    chargan_trainer_free(tr);
}

static void set_param(chargan_model *m, const char *name, const float *v, size_t n)
{
    size_t idx;
    if (chargan_model_param_find(m, name, &idx) != CHARGAN_OK ||
        chargan_model_param_set(m, idx, v, n) != CHARGAN_OK)
        check(0, "set %s", name);
}

/* A generator whose logits overflow on some rows only (h = tanh(z), and the
 * last id's logit 3e38 h + 1.15e38 is infinite for z above about 0.98): a
 * rank whose rows overflow must not leave the collective order, or the
 * others wait in the gradient allreduce (they did, until the timeout); the
 * failure travels with the losses, and every rank returns the same status. */
static void broken_rows(void)
{
    enum { V = 8, N = 2000 };
    static int32_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = 2 + (i * 7 + i / 5) % (V - 2);
    static const char *const modes[] = {"d_step", "gan_step", "eval_discriminator"};
    for (int mode = 0; mode < 3; mode++) {
        int same = 1, numeric = 0;
        for (uint64_t seed = 1; seed <= 12; seed++) {
            chargan_model *gen = NULL, *disc = NULL;
            chargan_model_config mc;
            chargan_model_config_init(&mc, CHARGAN_GENERATOR);
            mc.vocab_size = V, mc.embed_dim = 2, mc.hidden_dim = 1, mc.noise_dim = 1;
            chargan_model_config dc;
            chargan_model_config_init(&dc, CHARGAN_DISCRIMINATOR);
            dc.vocab_size = V, dc.embed_dim = 4, dc.hidden_dim = 4;
            if (chargan_model_new(&mc, &gen) != CHARGAN_OK ||
                chargan_model_new(&dc, &disc) != CHARGAN_OK) {
                check(0, "broken rows: models");
                return;
            }
            /* i ~ 0, f ~ 1, o ~ 1, no input or recurrence: h = tanh(c0) = tanh(z) */
            float zero[8] = {0}, b[4] = {-30.0f, 30.0f, 0.0f, 30.0f};
            float nw[2] = {0.0f, 1.0f}, ow[V] = {0}, ob[V] = {0};
            ow[V - 1] = 3e38f, ob[V - 1] = 1.15e38f;
            set_param(gen, "lstm.0.w_ih", zero, 8);
            set_param(gen, "lstm.0.w_hh", zero, 4);
            set_param(gen, "lstm.0.b", b, 4);
            set_param(gen, "noise.w", nw, 2);
            set_param(gen, "noise.b", zero, 2);
            set_param(gen, "out.w", ow, V);
            set_param(gen, "out.b", ob, V);
            chargan_trainer_config tc;
            chargan_trainer_config_init(&tc);
            tc.batch = 8, tc.seq_len = 4, tc.seed = seed, tc.report_every = 1000;
            tc.estimator = CHARGAN_GAN_REINFORCE;
            chargan_trainer *tr = NULL;
            chargan_status st = chargan_trainer_new(&tc, gen, NULL, disc, NULL, &tr);
            if (st == CHARGAN_OK)
                st = chargan_trainer_set_corpus_ids(tr, ids, N);
            if (st == CHARGAN_OK)
                st = chargan_trainer_set_mpi_timeout(tr, 20.0);
            MPI_Comm world = MPI_COMM_WORLD;
            if (st == CHARGAN_OK)
                st = chargan_trainer_set_mpi_comm(tr, &world, sizeof world);
            int attached = st == CHARGAN_OK;
            MPI_Allreduce(MPI_IN_PLACE, &attached, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
            if (!attached) {
                check(0, "broken rows: a trainer attached (seed %llu: %s)",
                      (unsigned long long)seed, chargan_last_error());
                chargan_trainer_free(tr);
                return;
            }
            float loss, acc;
            double accuracy;
            st = mode == 0   ? chargan_trainer_d_step(tr, &loss, &acc)
                 : mode == 1 ? chargan_trainer_gan_step(tr, &loss, &acc)
                             : chargan_trainer_eval_discriminator(tr, 1, &accuracy);
            int lo = (int)st, hi = (int)st;
            MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
            MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
            same = same && lo == hi;
            numeric += st == CHARGAN_E_NUMERIC;
            chargan_trainer_free(tr);
        }
        check(same && numeric > 0, "%s on rows that overflow on some ranks only: the same "
              "status on every rank, CHARGAN_E_NUMERIC for %d of 12 seeds", modes[mode], numeric);
    }
}

/* Rank 0 writes the checkpoint; every rank loads it, attaches, and goes on
 * exactly as the run that was not interrupted. */
static void checkpoints(const char *dir)
{
    /* with dropout: every rank's masks come from the one RNG the checkpoint holds */
    static const run_cfg rf = {"REINFORCE", CHARGAN_GAN_REINFORCE, 1, 0, 0, 0.0f, 0, 0.3f};
    char path[4096];
    snprintf(path, sizeof path, "%s/mpi.ckpt", dir);
    chargan_trainer *a = NULL, *b = NULL;
    float curve[MAX_CURVE], again[4], cont[4];
    int n = 0;
    chargan_status st = make_trainer(&rf, BATCH, &a);
    if (st == CHARGAN_OK)
        st = attach(a);
    if (st == CHARGAN_OK)
        st = run_curve(a, &rf, curve, &n);
    if (rank == 0)
        unlink(path);
    MPI_Barrier(MPI_COMM_WORLD);
    if (st == CHARGAN_OK)
        st = chargan_trainer_save(a, rank == 0 ? path : "/nonexistent-dir/never-written");
    MPI_Barrier(MPI_COMM_WORLD);
    check(st == CHARGAN_OK && access(path, R_OK) == 0,
          "save: rank 0 writes the checkpoint, the other ranks return CHARGAN_OK and write nothing");
    if (st == CHARGAN_OK)
        st = chargan_trainer_load(path, &b);
    if (st == CHARGAN_OK)
        st = chargan_trainer_set_corpus_text(b, corpus, corpus_len);
    if (st == CHARGAN_OK)
        st = attach(b);
    check(st == CHARGAN_OK && b->cfg.batch == BATCH / (uint32_t)size,
          "every rank loads the checkpoint (global batch %d) and attaches", BATCH);
    for (int i = 0; i < 2 && st == CHARGAN_OK; i++) {
        st = chargan_trainer_gan_step(a, &cont[2 * i], &cont[2 * i + 1]);
        if (st == CHARGAN_OK)
            st = chargan_trainer_gan_step(b, &again[2 * i], &again[2 * i + 1]);
    }
    check(st == CHARGAN_OK && memcmp(cont, again, sizeof cont) == 0 &&
              max_param_diff(a->gen, b->gen, NULL) == 0.0 &&
              max_param_diff(a->disc, b->disc, NULL) == 0.0,
          "the resumed run continues bit for bit like the uninterrupted one");
    chargan_trainer_free(a);
    chargan_trainer_free(b);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc != 3) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np N test_mpi CORPUS TMPDIR\n");
        MPI_Finalize();
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    corpus = malloc(40000);
    corpus_len = f && corpus ? fread(corpus, 1, 40000, f) : 0;
    if (f)
        fclose(f);
    if (rank == 0)
        printf("# %d ranks; global batch %d, seq_len %d\n", size, BATCH, SEQ);

    static const run_cfg configs[] = {
        {"MLE", CHARGAN_GAN_NONE, 1, 0, 0, 0.0f, CHARGAN_LOSS_STANDARD, 0.0f},
        {"MLE with noise", CHARGAN_GAN_NONE, 1, 0, 4, 0.0f, CHARGAN_LOSS_STANDARD, 0.0f},
        {"REINFORCE", CHARGAN_GAN_REINFORCE, 1, 0, 0, 0.0f, CHARGAN_LOSS_STANDARD, 0.0f},
        {"REINFORCE, rollouts, 2 D steps, MLE term", CHARGAN_GAN_REINFORCE, 2, 2, 0, 0.5f,
         CHARGAN_LOSS_STANDARD, 0.0f},
        {"Gumbel", CHARGAN_GAN_GUMBEL, 1, 0, 0, 0.0f, CHARGAN_LOSS_STANDARD, 0.0f},
        {"Gumbel, RSGAN loss, noise", CHARGAN_GAN_GUMBEL, 1, 0, 4, 0.0f,
         CHARGAN_LOSS_RELATIVISTIC, 0.0f},
        {"MLE, dropout", CHARGAN_GAN_NONE, 1, 0, 0, 0.0f, CHARGAN_LOSS_STANDARD, 0.3f},
        {"REINFORCE, dropout", CHARGAN_GAN_REINFORCE, 1, 0, 0, 0.0f, CHARGAN_LOSS_STANDARD, 0.3f},
        {"Gumbel, dropout", CHARGAN_GAN_GUMBEL, 1, 0, 0, 0.0f, CHARGAN_LOSS_STANDARD, 0.3f},
    };
    if (check(corpus_len > 1000, "read the corpus %s", argv[1])) {
        errors();
        attach_out_of_memory(argv[2], 0);
        attach_out_of_memory(argv[2], 1);
        for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
            equivalence(&configs[i], BATCH);
        /* 8 rollouts run in groups of 512 / 128 = 4 on any number of ranks
         * (grouped by the local batch, 2 ranks took all 8 at once: other draws) */
        static const run_cfg rollouts8 = {"REINFORCE, 8 rollouts, batch 128",
                                          CHARGAN_GAN_REINFORCE, 1, 8, 0, 0.0f,
                                          CHARGAN_LOSS_STANDARD, 0.0f};
        equivalence(&rollouts8, 128);
        batches_and_evaluation();
        stop_requests();
        broken_rows();
        checkpoints(argv[2]);
    }
    if (rank == 0)
        printf("1..%d\n", n_checks);
    free(corpus);
    MPI_Finalize();
    return n_failed ? 1 : 0;
}
