/* gan.c - the discriminator step and the two adversarial estimators that
 * give the generator a real gradient from the discriminator:
 *
 * REINFORCE (SeqGAN family): sample B sequences, reward each step with the
 *   discriminator's per-step output r_t = 2 sigmoid(D_t) - 1 (ScratchGAN-style
 *   dense rewards) or, with rollouts, SeqGAN's Monte-Carlo estimate of the
 *   final reward of each prefix; discounted returns minus a moving-average
 *   baseline weight the log-probabilities of the sampled tokens.
 * Gumbel-softmax (RelGAN family): at each step y_t = softmax(beta (l_t + g_t))
 *   with Gumbel noise g; the discriminator reads y_t through its embedding
 *   table (the soft path) and its gradient flows back through y_t into the
 *   generator's logits and, by backpropagation through time, its weights.
 *   The hard token argmax(l_t + g_t) is fed back as the next input (RelGAN)
 *   or, with the soft feed, y_t itself (through the generator's embedding),
 *   and then the gradient also flows through every later step.
 *
 * Both start each sequence from the first id of a real window (the start id
 * for sequence corpora) and compare T generated tokens with the T real ones
 * that follow it.
 */
#include "sample.h"
#include "trainer.h"

#include <math.h>
#include <string.h>

void (*cg_test_rollout_prefix_hook)(chargan_trainer *tr, int prefix);

/* Rollouts of all B rows run together in groups of about this many
 * streams: the products of a step become large enough for the BLAS, while
 * the buffers stay those of a few hundred streams whatever K is. */
#define CG_ROLLOUT_STREAMS 512

static int rollout_group(size_t B, uint32_t K)
{
    size_t group = CG_ROLLOUT_STREAMS / B;
    return group < 1 ? 1 : group > K ? (int)K : (int)group;
}

chargan_status cg_gan_alloc(chargan_trainer *tr)
{
    size_t B = tr->cfg.batch, T = tr->cfg.seq_len, V = (size_t)tr->gen->V;
    cg_gan_work *w = &tr->work;
    cg_gan_state *g = &tr->gan;
    bool ok = (g->baseline = cg_alloc_floats(T)) != NULL;
    if (!tr->disc)
        return ok ? CHARGAN_OK : CHARGAN_E_NOMEM;
    ok = ok && (w->fake = cg_malloc(T * B * sizeof(int32_t))) != NULL;
    ok = ok && (w->weights = cg_alloc_floats(T * B)) != NULL;
    ok = ok && (w->rewards = cg_alloc_floats(T * B)) != NULL;
    ok = ok && (w->targets = cg_alloc_floats(T * B)) != NULL;
    ok = ok && (w->d_logits = cg_alloc_floats(2 * B)) != NULL;
    ok = ok && (w->row_rng = cg_malloc(B * sizeof(cg_rng))) != NULL;
    ok = ok && (w->step_mean = cg_malloc(T * sizeof(double))) != NULL;
    ok = ok && (w->next_baseline = cg_alloc_floats(T)) != NULL;
    /* Sharded steps have their own per shard; the evaluation makes this one
     * when it needs it. */
    if (ok && tr->cfg.estimator == CHARGAN_GAN_GUMBEL && !cg_gan_sharded(tr))
        ok = (w->soft = cg_alloc_float_matrix(T * B, V)) != NULL;
    if (!ok)
        return CHARGAN_E_NOMEM;
    chargan_sample_options so;
    chargan_sample_options_init(&so);
    so.allow_reserved = 1; /* policy gradients need samples from the policy itself */
    if (cg_sampler_init(&w->sampler, NULL, (int)V, &so) != CHARGAN_OK)
        return CHARGAN_E_NOMEM;
    if (tr->cfg.rollouts > 0) {
        cg_rollout_buf *rb = &w->rb;
        rb->group = rollout_group(B, tr->cfg.rollouts);
        int rows = rb->group * (int)B;
        ok = cg_infer_alloc(&rb->g, tr->gen, rows, NULL);
        if (ok && !(ok = cg_infer_alloc(&rb->d, tr->disc, rows, NULL)))
            cg_infer_free(&rb->g, tr->gen);
        if (!ok)
            rb->group = 0;
        size_t n = tr->disc->n_weights;
        const chargan_optimizer_config *oc = &tr->dopt->cfg;
        ok = ok && (rb->d_params = cg_alloc_floats(n)) != NULL;
        if (ok && cg_optimizer_needs_m(oc))
            ok = (rb->d_m = cg_alloc_floats(n)) != NULL;
        if (ok && cg_optimizer_needs_v(oc))
            ok = (rb->d_v = cg_alloc_floats(n)) != NULL;
    }
    return ok ? CHARGAN_OK : CHARGAN_E_NOMEM;
}

void cg_gan_free(chargan_trainer *tr)
{
    cg_gan_work *w = &tr->work;
    cg_sampler_free(&w->sampler);
    if (w->rb.group) {
        cg_infer_free(&w->rb.g, tr->gen);
        cg_infer_free(&w->rb.d, tr->disc);
    }
    cg_free_floats(w->rb.d_params);
    cg_free_floats(w->rb.d_m);
    cg_free_floats(w->rb.d_v);
    cg_free(w->fake);
    cg_free_floats(w->weights);
    cg_free_floats(w->rewards);
    cg_free_floats(w->targets);
    cg_free_floats(w->soft);
    cg_free_floats(w->d_logits);
    cg_free(w->row_rng);
    cg_free(w->step_mean);
    cg_free_floats(w->next_baseline);
    cg_free_floats(tr->gan.baseline);
    memset(w, 0, sizeof *w);
    tr->gan.baseline = NULL;
}

double cg_gan_beta(const chargan_trainer *tr)
{
    double frac = (double)tr->gan.gan_steps / (double)tr->cfg.anneal_steps;
    if (frac > 1.0)
        frac = 1.0;
    double b0 = tr->cfg.beta_start, bmax = tr->cfg.beta_max;
    if (tr->cfg.anneal == CHARGAN_ANNEAL_LINEAR)
        return b0 + (bmax - b0) * frac;
    return b0 * pow(bmax / b0, frac);
}

/* ------------------------------------------------------------------ generation */

/* A generated batch drawn from logits that were not finite (parameters
 * that overflow the activations) means nothing (every draw the last id),
 * and a discriminator must not learn from it.  The samplers flag such
 * draws (not_finite, cleared by each generation); whether any row of this
 * rank's batch had one is samples_not_finite().  It is not a failure by
 * itself: under MPI the other ranks may have drawn fine rows, so the flag
 * travels with the losses to every rank (d_finish, the evaluation's
 * counts), and all fail together. */
static void clear_sample_flags(chargan_trainer *tr)
{
    tr->work.sampler.not_finite = false;
    for (int s = 0; s < tr->shards.n; s++)
        tr->shards.gan[s].sampler.not_finite = false;
}

static bool samples_not_finite(const chargan_trainer *tr)
{
    bool bad = tr->work.sampler.not_finite;
    for (int s = 0; s < tr->shards.n; s++)
        bad = bad || tr->shards.gan[s].sampler.not_finite;
    return bad;
}

static chargan_status not_finite_samples(chargan_trainer *tr)
{
    return cg_fail(&tr->err, CHARGAN_E_NUMERIC, "generating a batch after step %llu: the "
                   "generator's logits are not finite (its parameters overflow the "
                   "activations; the run continues only from a checkpoint)",
                   (unsigned long long)tr->global_step);
}

/* Samples T tokens per row from the generator at temperature 1, filling the
 * generator's caches (so its backward can follow) and work.fake. */
static void generate_hard(chargan_trainer *tr, const float *z, bool train)
{
    chargan_model *g = tr->gen;
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    int32_t *fake = tr->work.fake;
    clear_sample_flags(tr);
    cg_trainer_seed_rows(tr);
    cg_model_begin(g, B, z, train);
    for (int b = 0; b < B; b++)
        tr->inputs[b] = tr->windows[(size_t)b * (T + 1)];
    const int32_t *in = tr->inputs;
    for (int t = 0; t < T; t++) {
        const float *logits = cg_model_step(g, t, in, train);
        int32_t *out = fake + (size_t)t * B;
        for (int b = 0; b < B; b++)
            out[b] = cg_sampler_draw(&tr->work.sampler, logits + (size_t)b * g->V,
                                     &tr->work.row_rng[b]);
        if (t + 1 < T) {
            /* the step's ids are kept in the workspace; feed the samples next */
            memcpy(g->ws.ids + (size_t)(t + 1) * B, out, (size_t)B * sizeof(int32_t));
            in = g->ws.ids + (size_t)(t + 1) * B;
        }
    }
}

/* Whether the Gumbel generator reads its relaxed samples (the soft feed). */
static bool soft_fed(const chargan_trainer *tr)
{
    return tr->cfg.gumbel_feed == CHARGAN_FEED_SOFT;
}

/* Step t of a relaxed generation over rows: on the ids in, or with the soft
 * feed (t > 0) on the previous step's relaxed sample, block t - 1 of soft
 * (T x rows x V). */
static const float *relaxed_step(chargan_model *g, int t, int rows, const int32_t *in,
                                 const float *soft, bool fed, bool train)
{
    if (fed && t > 0)
        return cg_model_step_soft(g, t, soft + (size_t)(t - 1) * rows * g->V, train);
    return cg_model_step(g, t, in, train);
}

/* The relaxation's backward for cg_model_backward_fed: block t of the
 * gradient on y = softmax(beta (l + g)) becomes the gradient on l. */
typedef struct relaxation {
    const float *soft; /* T x rows x V */
    size_t rows;
    int V;
    float beta;
} relaxation;

static void relaxation_backward(void *ctx, int t, float *d)
{
    const relaxation *r = ctx;
    cg_softmax_rows_backward(d, r->soft + (size_t)t * r->rows * (size_t)r->V, r->rows, r->V,
                             r->beta);
}

/* G's backward from D's gradient on the relaxed sample (in G's logits
 * buffer, soft: T x rows x V), through the relaxation and, with the soft
 * feed, through the feed. */
static void relaxed_backward(chargan_model *g, bool fed, const float *soft, int T, int rows,
                             float beta)
{
    cg_model_zero_grad(g);
    if (fed) {
        relaxation r = {soft, (size_t)rows, g->V, beta};
        cg_model_backward_fed(g, soft, relaxation_backward, &r);
        return;
    }
    cg_softmax_rows_backward(g->ws.logits, soft, (size_t)T * rows, g->V, beta);
    cg_model_backward(g, NULL);
}

/* One relaxed step's rows: y = softmax(beta (logits + g)) with Gumbel
 * noise g from each row's stream, and the hard tokens argmax(logits + g). */
static void relax_rows(float *y, int32_t *hard, const float *logits, int rows, int V,
                       cg_rng *rng, float beta)
{
    for (int b = 0; b < rows; b++)
        hard[b] = cg_gumbel_argmax(y + (size_t)b * V, logits + (size_t)b * V, V, &rng[b]);
    cg_softmax_rows(y, (size_t)rows, V, beta);
}

/* Relaxed generation: work.soft[t] = softmax(beta (logits + g)), the hard
 * argmax or (soft feed) work.soft[t] fed back; work.fake holds the hard
 * tokens. */
static void generate_gumbel(chargan_trainer *tr, const float *z, float beta, bool train)
{
    chargan_model *g = tr->gen;
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len, V = g->V;
    const bool fed = soft_fed(tr);
    cg_trainer_seed_rows(tr);
    (fed ? cg_model_begin_fed : cg_model_begin)(g, B, z, train);
    for (int b = 0; b < B; b++)
        tr->inputs[b] = tr->windows[(size_t)b * (T + 1)];
    const int32_t *in = tr->inputs;
    for (int t = 0; t < T; t++) {
        const float *logits = relaxed_step(g, t, B, in, tr->work.soft, fed, train);
        int32_t *out = tr->work.fake + (size_t)t * B;
        relax_rows(tr->work.soft + (size_t)t * B * V, out, logits, B, V, tr->work.row_rng, beta);
        if (t + 1 < T) {
            memcpy(g->ws.ids + (size_t)(t + 1) * B, out, (size_t)B * sizeof(int32_t));
            in = g->ws.ids + (size_t)(t + 1) * B;
        }
    }
}

/* ------------------------------------------------------------------ discriminator */

/* Final-step logits of the last discriminator forward (B values). */
static const float *final_logits(const chargan_model *d, int T, int B)
{
    return d->ws.logits + (size_t)(T - 1) * B;
}

/* Per-step BCE over all T x B logits against one target, gradients in place. */
static double bce_all_steps(chargan_model *d, int T, int B, float target, float *targets)
{
    size_t n = (size_t)T * B;
    for (size_t i = 0; i < n; i++)
        targets[i] = target;
    return cg_bce_logits(d->ws.logits, n, targets, NULL, 1.0f / (float)n, d->ws.logits) / (double)n;
}

/* BCE on the final step only; other steps get zero gradient. */
static double bce_final(chargan_model *d, int T, int B, float target, float *targets)
{
    size_t before = (size_t)(T - 1) * B;
    for (int b = 0; b < B; b++)
        targets[b] = target;
    float *last = d->ws.logits + before;
    double loss = cg_bce_logits(last, (size_t)B, targets, NULL, 1.0f / (float)B, last) / B;
    memset(d->ws.logits, 0, before * sizeof(float));
    return loss;
}

/* Rows of the first B logits that are not finite. */
static int count_not_finite(const float *logits, int B)
{
    int n = 0;
    for (int b = 0; b < B; b++)
        n += !isfinite(logits[b]);
    return n;
}

static int count_correct(const float *logits, int B, bool real)
{
    int n = 0;
    for (int b = 0; b < B; b++)
        n += real ? logits[b] > 0.0f : logits[b] < 0.0f;
    return n;
}

/* Discriminator forward on real (tr->targets, time-major) or fake input. */
static void d_forward_real(chargan_trainer *tr, bool train)
{
    cg_model_forward(tr->disc, (int)tr->cfg.seq_len, (int)tr->cfg.batch, tr->targets, NULL, NULL,
                     train);
}

static void d_forward_fake(chargan_trainer *tr, bool soft, bool train)
{
    int T = (int)tr->cfg.seq_len, B = (int)tr->cfg.batch;
    if (soft)
        cg_model_forward(tr->disc, T, B, NULL, tr->work.soft, NULL, train);
    else
        cg_model_forward(tr->disc, T, B, tr->work.fake, NULL, NULL, train);
}

/* One discriminator update on the current real batch (tr->targets) and the
 * current fake batch (work.fake or work.soft).  Per-step heads for hard
 * samples; the final head (and optionally the relativistic loss) for soft
 * ones, as RelGAN does. */
static chargan_status d_finish(chargan_trainer *tr, double loss, int correct, float *loss_out,
                               float *acc_out);

/* The relativistic loss depends on C(real) - C(fake) only, so the output
 * bias has no gradient: the two passes' sums leave a rounding residue that
 * Adam would scale up to a step of up to lr, differently per thread count. */
static void relativistic_bias_gradient(chargan_model *d)
{
    d->dout_b[0] = 0.0f;
}

static chargan_status d_update(chargan_trainer *tr, bool soft, float *loss_out, float *acc_out)
{
    chargan_model *d = tr->disc;
    int T = (int)tr->cfg.seq_len, B = (int)tr->cfg.batch;
    float *tg = tr->work.targets;
    double loss;
    int correct = 0;
    cg_model_zero_grad(d);
    if (soft && tr->cfg.gan_loss == CHARGAN_LOSS_RELATIVISTIC) {
        /* L_D = mean BCE(C(real) - C(fake), 1): both logits first, then the
         * two backward passes (each needs its own forward's cache). */
        float *cr = tr->work.d_logits, *cf = tr->work.d_logits + B;
        cg_rng before_fake = d->rng; /* the fake forward is redone below with the same masks */
        d_forward_fake(tr, true, true);
        memcpy(cf, final_logits(d, T, B), (size_t)B * sizeof(float));
        d_forward_real(tr, true);
        memcpy(cr, final_logits(d, T, B), (size_t)B * sizeof(float));
        cg_rng after_real = d->rng;
        correct = count_correct(cr, B, true) + count_correct(cf, B, false);
        loss = 0.0;
        for (int b = 0; b < B; b++) {
            float x = cr[b] - cf[b];
            float one = 1.0f, dx;
            loss += cg_bce_logits(&x, 1, &one, NULL, 1.0f / (float)B, &dx);
            tg[b] = dx; /* d loss / d C(real); d loss / d C(fake) = -dx */
        }
        loss /= B;
        memset(d->ws.logits, 0, (size_t)T * B * sizeof(float));
        memcpy(d->ws.logits + (size_t)(T - 1) * B, tg, (size_t)B * sizeof(float));
        cg_model_backward(d, NULL);
        /* Recurrent dropout: the gradient of C(fake) must use the masks its
         * value was computed with, not a fresh draw. */
        d->rng = before_fake;
        d_forward_fake(tr, true, true);
        d->rng = after_real;
        memset(d->ws.logits, 0, (size_t)T * B * sizeof(float));
        for (int b = 0; b < B; b++)
            d->ws.logits[(size_t)(T - 1) * B + b] = -tg[b];
        cg_model_backward(d, NULL);
        relativistic_bias_gradient(d);
    } else {
        d_forward_real(tr, true);
        correct += count_correct(final_logits(d, T, B), B, true);
        loss = soft ? bce_final(d, T, B, 1.0f, tg) : bce_all_steps(d, T, B, 1.0f, tg);
        cg_model_backward(d, NULL);
        d_forward_fake(tr, soft, true);
        correct += count_correct(final_logits(d, T, B), B, false);
        loss += soft ? bce_final(d, T, B, 0.0f, tg) : bce_all_steps(d, T, B, 0.0f, tg);
        cg_model_backward(d, NULL);
    }
    return d_finish(tr, loss, correct, loss_out, acc_out);
}

/* The end of a discriminator update, its gradient (summed over the batch)
 * in d->grads: averaging over MPI ranks, then the optimizer step. */
static chargan_status d_finish(chargan_trainer *tr, double loss, int correct, float *loss_out,
                               float *acc_out)
{
    chargan_model *d = tr->disc;
    int B = (int)tr->cfg.batch;
    double vals[3] = {loss, (double)correct, samples_not_finite(tr) ? 1.0 : 0.0};
    chargan_status st = cg_dist_allreduce_grads(tr, d, vals, 3, "discriminator update",
                                                tr->d_updates + 1);
    if (st != CHARGAN_OK)
        return st;
    if (vals[2] > 0.0) /* on any rank: nothing is updated on any */
        return not_finite_samples(tr);
    loss = vals[0];
    if (!isfinite((float)loss)) /* as the float the caller gets too */
        return cg_fail(&tr->err, CHARGAN_E_NUMERIC, "discriminator update %llu: the loss is not "
                       "finite", (unsigned long long)tr->d_updates + 1);
    st = cg_trainer_optimizer_step(tr, tr->dopt, d, NULL);
    if (st != CHARGAN_OK)
        return cg_fail(&tr->err, st, "discriminator update %llu: %s",
                       (unsigned long long)tr->d_updates + 1, tr->dopt->err.msg);
    tr->d_updates++;
    tr->d_last_accuracy = (float)(vals[1] / (2.0 * B));
    if (loss_out)
        *loss_out = (float)loss;
    if (acc_out)
        *acc_out = tr->d_last_accuracy;
    return CHARGAN_OK;
}

/* A fresh real batch (tr->windows, tr->targets time-major). */
static void draw_real(chargan_trainer *tr)
{
    cg_trainer_draw_windows(tr);
    cg_windows_to_time_major(tr->windows, (int)tr->cfg.batch, (int)tr->cfg.seq_len, tr->inputs,
                             tr->targets);
}

static chargan_status sharded_d_step(chargan_trainer *tr, float *loss, float *accuracy);

chargan_status cg_gan_d_step(chargan_trainer *tr, float *loss, float *accuracy)
{
    if (cg_gan_sharded(tr))
        return sharded_d_step(tr, loss, accuracy);
    bool soft = tr->cfg.estimator == CHARGAN_GAN_GUMBEL;
    draw_real(tr);
    const float *z = cg_trainer_draw_noise(tr);
    if (soft)
        generate_gumbel(tr, z, (float)cg_gan_beta(tr), false);
    else
        generate_hard(tr, z, false);
    return d_update(tr, soft, loss, accuracy);
}

/* ------------------------------------------------------------------ REINFORCE */

/* Sets every layer's state of the n rollouts of rows b0 .. b0 + nb - 1 (view
 * rows bi x n + k) to those rows' state after `step` steps of a forward. */
static void replicate_state(cg_infer_state *view, const chargan_model *m, int step, int B, int b0,
                            int nb, int n)
{
    const size_t H = (size_t)m->H;
    for (int l = 0; l < m->L; l++) {
        const float *h = m->ws.cache[l].h + ((size_t)step * B + b0) * H;
        const float *c = m->ws.cache[l].c + ((size_t)step * B + b0) * H;
        for (int i = 0; i < nb * n; i++) {
            memcpy(view->h[l] + (size_t)i * H, h + (size_t)(i / n) * H, H * sizeof(float));
            memcpy(view->c[l] + (size_t)i * H, c + (size_t)(i / n) * H, H * sizeof(float));
        }
    }
}

/* Prefix t's rewards of rows b0 .. b0 + nb - 1: every rollout of those rows
 * completed by the generator from its state after step t and read by the
 * discriminator from its state after the prefix (both forwards' caches),
 * the rollouts of a group as one batch, row b's draws from its own stream
 * (step by step, rollout by rollout within a group).  Rows are independent,
 * so threads take disjoint ranges. */
static void rollout_prefix(chargan_trainer *tr, int t, int b0, int nb, cg_sampler *sampler)
{
    const chargan_model *g = tr->gen, *d = tr->disc;
    const int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len, K = (int)tr->cfg.rollouts;
    const cg_rollout_buf *rb = &tr->work.rb;
    /* Groups as of the global batch, so that a row's draws come in the same
     * order on any number of MPI ranks (never more rollouts than rb->group). */
    const int group = rollout_group(cg_dist_global_batch(tr), tr->cfg.rollouts);
    const int32_t *prefix_end = tr->work.fake + (size_t)t * B + b0;
    float *rw = tr->work.rewards + (size_t)t * B + b0;
    for (int bi = 0; bi < nb; bi++)
        rw[bi] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += group) {
        const int n = K - k0 < group ? K - k0 : group, rows = n * nb;
        /* rows b0 x rb->group on, whatever n: a shard never reaches into
         * the rows of another still in a larger group */
        cg_infer_state gv, dv;
        cg_infer_view(&gv, &rb->g, g, b0 * rb->group, rows);
        cg_infer_view(&dv, &rb->d, d, b0 * rb->group, rows);
        replicate_state(&gv, g, t + 1, B, b0, nb, n);
        replicate_state(&dv, d, t + 1, B, b0, nb, n);
        for (int i = 0; i < rows; i++)
            gv.ids[i] = prefix_end[i / n];
        for (int s = t + 1; s < T; s++) {
            cg_infer_step(&gv, g);
            for (int i = 0; i < rows; i++)
                gv.ids[i] = cg_sampler_draw(sampler, gv.logits + (size_t)i * g->V,
                                            &tr->work.row_rng[b0 + i / n]);
            memcpy(dv.ids, gv.ids, (size_t)rows * sizeof(int32_t));
            cg_infer_advance(&dv, d);
        }
        cg_dense_forward(d->out_w, d->out_b, d->H, d->out_dim, (size_t)rows, dv.h[d->L - 1],
                         dv.logits);
        for (int i = 0; i < rows; i++)
            rw[i / n] += cg_sigmoidf(dv.logits[i]) / (float)K;
    }
}

typedef struct rollout_job {
    chargan_trainer *tr;
    int t;
} rollout_job;

static void rollout_shard(void *ctx, int s)
{
    rollout_job *job = ctx;
    cg_shards *sh = &job->tr->shards;
    rollout_prefix(job->tr, job->t, sh->first[s], sh->rows[s], &sh->gan[s].sampler);
}

/* Whether a stop request may end this round in its rollouts: inside a
 * running chargan_trainer_adversarial(), not under MPI (the ranks vote at
 * reports instead). */
static bool rollouts_may_stop(const chargan_trainer *tr)
{
    return tr->cfg.rollouts > 0 && tr->long_calls > 0 && !cg_dist_active(tr);
}

/* Keeps (keep) or puts back what a round changes before its rollouts (the
 * generator and the baseline change only after them): each part's live
 * state beside the copy kept of it. */
static void round_start(chargan_trainer *tr, bool keep)
{
    cg_rollout_buf *rb = &tr->work.rb;
    chargan_optimizer *o = tr->dopt;
    const size_t bytes = tr->disc->n_weights * sizeof(float);
    const struct {
        void *live, *kept;
        size_t size;
    } parts[] = {
        {tr->disc->params, rb->d_params, bytes},
        {o->m, rb->d_m, bytes},
        {o->v, rb->d_v, bytes},
        {&o->steps, &rb->d_opt_steps, sizeof o->steps},
        {&tr->d_updates, &rb->d_updates, sizeof tr->d_updates},
        {&tr->d_last_accuracy, &rb->d_last_accuracy, sizeof tr->d_last_accuracy},
        {&tr->rng, &rb->rng, sizeof tr->rng},
        {&tr->gen->rng, &rb->g_rng, sizeof tr->gen->rng},
        {&tr->disc->rng, &rb->d_rng, sizeof tr->disc->rng},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i].live) /* m or v where the optimizer keeps none */
            memcpy(keep ? parts[i].kept : parts[i].live, keep ? parts[i].live : parts[i].kept,
                   parts[i].size);
}

/* SeqGAN's Monte-Carlo estimate: for each prefix t < T-1, complete the
 * sequence `rollouts` times from the generator's state after step t and
 * average sigmoid(D) on the completions' final step.  rewards[T-1] is D of
 * the sampled sequence itself.  Written into work.rewards (T x B); with
 * threads, each shard's rows on its thread.  With may_stop
 * (rollouts_may_stop) a stop request ends the estimate before its next
 * prefix, a round taking minutes at long seq_len; the caller undoes the
 * round. */
static chargan_status rollout_rewards(chargan_trainer *tr, bool may_stop)
{
    chargan_model *g = tr->gen, *d = tr->disc;
    const int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    cg_model_forward(d, T, B, tr->work.fake, NULL, NULL, false);
    const float *fl = final_logits(d, T, B);
    for (int b = 0; b < B; b++)
        tr->work.rewards[(size_t)(T - 1) * B + b] = cg_sigmoidf(fl[b]);
    cg_infer_prepare(&tr->work.rb.g, g);
    cg_infer_prepare(&tr->work.rb.d, d);
    for (int t = 0; t < T - 1; t++) {
        if (cg_test_rollout_prefix_hook)
            cg_test_rollout_prefix_hook(tr, t);
        if (may_stop && cg_trainer_stop_requested(tr))
            return cg_fail(&tr->err, CHARGAN_E_CANCELLED, "adversarial round %llu: stopped by "
                           "chargan_trainer_request_stop in its rollouts (prefix %d of %d); the "
                           "round is undone", (unsigned long long)tr->global_step + 1, t + 1,
                           T - 1);
        if (tr->shards.n > 1) {
            rollout_job job = {tr, t};
            cg_pool_run(tr->shards.pool, rollout_shard, &job);
        } else {
            rollout_prefix(tr, t, 0, B, &tr->work.sampler);
        }
    }
    return CHARGAN_OK;
}

/* Per-step rewards 2 sigmoid(D_t) - 1 from the (updated) discriminator,
 * then discounted returns. */
static void dense_returns(chargan_trainer *tr)
{
    chargan_model *d = tr->disc;
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    float gamma = tr->cfg.gamma;
    float *R = tr->work.rewards;
    cg_model_forward(d, T, B, tr->work.fake, NULL, NULL, false);
    for (int b = 0; b < B; b++) {
        float acc = 0.0f;
        for (int t = T - 1; t >= 0; t--) {
            float r = 2.0f * cg_sigmoidf(d->ws.logits[(size_t)t * B + b]) - 1.0f;
            acc = r + gamma * acc;
            R[(size_t)t * B + b] = acc;
        }
    }
}

/* Advantages: returns minus a baseline that does not depend on the row's own
 * return (one that did, such as this batch's mean, would shrink the expected
 * gradient by that return's share of it: by (1 - decay) / B a step, by half
 * at B = 2 on the first step).  The baseline is the moving average of each
 * step's batch-mean return over the earlier batches; on the first batch, the
 * mean of the other rows' returns (none at a global batch of 1).  Under MPI
 * the means are of the global batch, so every rank keeps the same baseline.
 * The moved baseline goes to work.next_baseline, kept by commit_baseline(). */
static chargan_status advantages(chargan_trainer *tr)
{
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    float decay = tr->cfg.baseline_decay;
    float *R = tr->work.rewards, *bl = tr->gan.baseline, *next = tr->work.next_baseline;
    double *mean = tr->work.step_mean;
    for (int t = 0; t < T; t++) {
        mean[t] = 0.0;
        for (int b = 0; b < B; b++)
            mean[t] += R[(size_t)t * B + b];
        mean[t] /= B;
    }
    chargan_status st = cg_dist_allreduce_mean(tr, mean, (size_t)T, "adversarial step",
                                               tr->global_step + 1);
    if (st != CHARGAN_OK)
        return st;
    const double rows = (double)cg_dist_global_batch(tr);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            const float r = R[(size_t)t * B + b];
            double base = bl[t];
            if (!tr->gan.baseline_set)
                base = rows > 1.0 ? (rows * mean[t] - r) / (rows - 1.0) : 0.0;
            tr->work.weights[(size_t)t * B + b] = (float)(r - base);
        }
        /* bl + (1 - decay)(m - bl), not decay bl + (1 - decay) m: a batch whose
         * mean is the baseline leaves it exactly as it is (the other form
         * rounds, and equal rewards, as from a saturated discriminator, then
         * gave advantages of rounding error that Adam's update magnified) */
        const float m = (float)mean[t];
        next[t] = tr->gan.baseline_set ? bl[t] + (1.0f - decay) * (m - bl[t]) : m;
    }
    return CHARGAN_OK;
}

/* The baseline moves with the generator's update, so that a step that fails
 * (a reward that is not finite among them) leaves it as it was. */
static chargan_status commit_baseline(chargan_trainer *tr, chargan_status update)
{
    if (update == CHARGAN_OK) {
        memcpy(tr->gan.baseline, tr->work.next_baseline, (size_t)tr->cfg.seq_len * sizeof(float));
        tr->gan.baseline_set = 1;
    }
    return update;
}

/* Adds mle_weight x the MLE gradient of a fresh real batch to G's gradients. */
static chargan_status add_mle_term(chargan_trainer *tr, double *loss)
{
    chargan_model *g = tr->gen;
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    size_t n = (size_t)B * T;
    draw_real(tr);
    cg_model_forward(g, T, B, tr->inputs, NULL, cg_trainer_draw_noise(tr), true);
    double l = cg_softmax_xent(g->ws.logits, n, g->V, tr->targets, NULL,
                               tr->cfg.mle_weight / (float)n, g->ws.logits);
    if (!isfinite(l))
        return cg_fail(&tr->err, CHARGAN_E_NUMERIC, "adversarial step %llu: the MLE term is not "
                       "finite", (unsigned long long)tr->global_step + 1);
    cg_model_backward(g, NULL);
    *loss += tr->cfg.mle_weight * l / (double)n;
    return CHARGAN_OK;
}

static chargan_status g_update(chargan_trainer *tr, double loss, float *g_loss)
{
    chargan_model *g = tr->gen;
    if (tr->cfg.mle_weight > 0.0f) {
        chargan_status st = add_mle_term(tr, &loss);
        if (st != CHARGAN_OK)
            return st;
    }
    chargan_status st = cg_dist_allreduce_grads(tr, g, &loss, 1, "adversarial step",
                                                tr->global_step + 1);
    if (st != CHARGAN_OK)
        return st;
    if (!isfinite((float)loss)) /* as the float the caller gets too */
        return cg_fail(&tr->err, CHARGAN_E_NUMERIC, "adversarial step %llu: the generator loss is "
                       "not finite", (unsigned long long)tr->global_step + 1);
    st = cg_trainer_optimizer_step(tr, tr->gopt, g, NULL);
    if (st != CHARGAN_OK)
        return cg_fail(&tr->err, st, "adversarial step %llu: %s",
                       (unsigned long long)tr->global_step + 1, tr->gopt->err.msg);
    tr->global_step++;
    tr->gan.gan_steps++;
    if (g_loss)
        *g_loss = (float)loss;
    return CHARGAN_OK;
}

static chargan_status reinforce_step(chargan_trainer *tr, float *g_loss, float *d_loss)
{
    chargan_model *g = tr->gen;
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    size_t n = (size_t)B * T;
    chargan_status st = CHARGAN_OK;
    const bool may_stop = rollouts_may_stop(tr);
    if (may_stop)
        round_start(tr, true);
    /* sample with the generator's caches kept for its backward */
    draw_real(tr);
    generate_hard(tr, cg_trainer_draw_noise(tr), true);
    double d_sum = 0.0;
    for (uint32_t k = 0; k < tr->cfg.d_steps; k++) {
        float l;
        if (k > 0)
            draw_real(tr); /* fresh real data; the fake batch stays the one G is updated on */
        if ((st = d_update(tr, false, &l, NULL)) != CHARGAN_OK)
            return st;
        d_sum += l;
    }
    if (tr->cfg.rollouts > 0)
        st = rollout_rewards(tr, may_stop);
    else
        dense_returns(tr);
    if (st == CHARGAN_E_CANCELLED)
        round_start(tr, false); /* the round undone */
    if (st != CHARGAN_OK || (st = advantages(tr)) != CHARGAN_OK)
        return st;
    /* loss = -mean(A_t log p(y_t)): softmax cross-entropy weighted by A_t */
    cg_model_zero_grad(g);
    int32_t *targets = tr->work.fake;
    double loss = cg_softmax_xent(g->ws.logits, n, g->V, targets, tr->work.weights,
                                  1.0f / (float)n, g->ws.logits) / (double)n;
    cg_model_backward(g, NULL);
    if (d_loss)
        *d_loss = (float)(d_sum / tr->cfg.d_steps);
    return commit_baseline(tr, g_update(tr, loss, g_loss));
}

/* ------------------------------------------------------------------ Gumbel-softmax */

static chargan_status gumbel_step(chargan_trainer *tr, float *g_loss, float *d_loss)
{
    chargan_model *g = tr->gen, *d = tr->disc;
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    float beta = (float)cg_gan_beta(tr);
    chargan_status st;
    draw_real(tr);
    generate_gumbel(tr, cg_trainer_draw_noise(tr), beta, true);
    double d_sum = 0.0;
    for (uint32_t k = 0; k < tr->cfg.d_steps; k++) {
        float l;
        if (k > 0)
            draw_real(tr);
        if ((st = d_update(tr, true, &l, NULL)) != CHARGAN_OK)
            return st;
        d_sum += l;
    }
    /* Generator loss through the updated discriminator on the same relaxed sample. */
    float *last = d->ws.logits + (size_t)(T - 1) * B;
    float *cr = tr->work.d_logits;
    bool rel = tr->cfg.gan_loss == CHARGAN_LOSS_RELATIVISTIC;
    if (rel) {
        d_forward_real(tr, false);
        memcpy(cr, final_logits(d, T, B), (size_t)B * sizeof(float));
    }
    d_forward_fake(tr, true, false);
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        /* non-saturating: -log sigmoid(C_f); relativistic: -log sigmoid(C_f - C_r) */
        float x = rel ? last[b] - cr[b] : last[b], one = 1.0f, dx;
        loss += cg_bce_logits(&x, 1, &one, NULL, 1.0f / (float)B, &dx);
        last[b] = dx;
    }
    loss /= B;
    memset(d->ws.logits, 0, (size_t)(T - 1) * B * sizeof(float));
    /* D's gradient on the relaxed sample goes where G's logits were (G's
     * backward needs only its gradient there), then through the relaxation
     * y = softmax(beta (l + g)).  D is not updated here. */
    cg_model_backward_input(d, g->ws.logits);
    relaxed_backward(g, soft_fed(tr), tr->work.soft, T, B, beta);
    if (d_loss)
        *d_loss = (float)(d_sum / tr->cfg.d_steps);
    return g_update(tr, loss, g_loss);
}

/* ------------------------------------------------------------------ split across threads */

/* With threads > 1 (and no rollouts) the adversarial steps run on the
 * trainer's shards: shard s takes rows first[s] .. first[s] + rows[s] - 1 of
 * the batch on a generator and a discriminator replica, and each phase of a
 * step (generation, the discriminator's passes, rewards, the generator's
 * backward) is one cg_pool_run over the shards.  What couples rows is done
 * in between on the calling thread: dropout masks are drawn there in the
 * order an unsharded forward draws them, rows sample from their own RNG
 * streams (cg_trainer_seed_rows), the REINFORCE baseline averages over the
 * whole batch, and the replicas' gradients are summed in shard order into
 * the model's, which then goes through the same update as unsharded
 * (d_finish, g_update).  So a step is deterministic for a given thread
 * count and equal to the unsharded one up to float rounding. */

enum shard_phase {
    PH_GEN_HARD,
    PH_GEN_GUMBEL,
    PH_D_REAL,
    PH_D_FAKE_HARD,
    PH_D_FAKE_SOFT,
    PH_D_REL_FAKE,
    PH_D_REL_REAL,
    PH_D_REL_REDO,
    PH_REWARDS,
    PH_G_REINFORCE,
    PH_G_GUMBEL,
};

chargan_status cg_gan_shards_alloc(chargan_trainer *tr)
{
    cg_shards *sh = &tr->shards;
    size_t T = tr->cfg.seq_len, V = (size_t)tr->gen->V;
    bool relaxed = tr->cfg.estimator == CHARGAN_GAN_GUMBEL;
    chargan_sample_options so;
    chargan_sample_options_init(&so);
    so.allow_reserved = 1; /* as the trainer's own sampler: the policy itself */
    for (int s = 0; s < sh->n; s++) {
        cg_gan_shard *gs = &sh->gan[s];
        int rows = sh->rows[s];
        size_t cells = T * (size_t)rows;
        bool ok = cg_model_replica_new(tr->disc, s == 0, &sh->disc[s]) == CHARGAN_OK &&
                  cg_model_reserve(sh->disc[s], (int)T, rows) == CHARGAN_OK &&
                  cg_sampler_init(&gs->sampler, NULL, (int)V, &so) == CHARGAN_OK;
        ok = ok && (gs->fake = cg_malloc(cells * sizeof(int32_t))) != NULL;
        ok = ok && (gs->rewards = cg_alloc_floats(cells)) != NULL;
        ok = ok && (gs->weights = cg_alloc_floats(cells)) != NULL;
        ok = ok && (gs->targets = cg_alloc_floats(cells)) != NULL;
        ok = ok && (gs->d_logits = cg_alloc_floats(2 * (size_t)rows)) != NULL;
        if (ok && relaxed)
            ok = (gs->soft = cg_alloc_float_matrix(cells, V)) != NULL;
        if (!ok)
            return CHARGAN_E_NOMEM;
    }
    return CHARGAN_OK;
}

void cg_gan_shards_free(cg_shards *sh)
{
    for (int s = 0; s < CG_MAX_SHARDS; s++) {
        cg_gan_shard *gs = &sh->gan[s];
        chargan_model_free(sh->disc[s]);
        sh->disc[s] = NULL;
        cg_sampler_free(&gs->sampler);
        cg_free(gs->fake);
        cg_free_floats(gs->rewards);
        cg_free_floats(gs->weights);
        cg_free_floats(gs->targets);
        cg_free_floats(gs->soft);
        cg_free_floats(gs->d_logits);
        memset(gs, 0, sizeof *gs);
    }
}

bool cg_gan_sharded(const chargan_trainer *tr)
{
    return tr->shards.n > 1 && tr->cfg.rollouts == 0;
}

/* Shard s's rows of tr->windows, time-major: inputs[s] (its first T ids per
 * row, of which generation reads step 0) and targets[s] (the real text). */
static void shard_windows(chargan_trainer *tr, int s)
{
    cg_shards *sh = &tr->shards;
    int T = (int)tr->cfg.seq_len;
    cg_windows_to_time_major(tr->windows + (size_t)sh->first[s] * (T + 1), sh->rows[s], T,
                             sh->inputs[s], sh->targets[s]);
}

static void shard_generate(chargan_trainer *tr, int s, bool relaxed)
{
    cg_shards *sh = &tr->shards;
    cg_gan_shard *gs = &sh->gan[s];
    chargan_model *g = sh->gen[s];
    const int T = (int)tr->cfg.seq_len, rows = sh->rows[s], first = sh->first[s], V = g->V;
    cg_rng *rng = tr->work.row_rng + first;
    const bool fed = relaxed && soft_fed(tr);
    const float *z = sh->z ? sh->z + (size_t)first * g->Z : NULL;
    shard_windows(tr, s);
    (fed ? cg_model_begin_fed : cg_model_begin)(g, rows, z, sh->train);
    const int32_t *in = sh->inputs[s];
    for (int t = 0; t < T; t++) {
        const float *logits = relaxed_step(g, t, rows, in, gs->soft, fed, sh->train);
        int32_t *out = gs->fake + (size_t)t * rows;
        if (relaxed) { /* as generate_gumbel */
            relax_rows(gs->soft + (size_t)t * rows * V, out, logits, rows, V, rng, sh->beta);
        } else { /* as generate_hard */
            for (int b = 0; b < rows; b++)
                out[b] = cg_sampler_draw(&gs->sampler, logits + (size_t)b * V, &rng[b]);
        }
        if (t + 1 < T) {
            memcpy(g->ws.ids + (size_t)(t + 1) * rows, out, (size_t)rows * sizeof(int32_t));
            in = g->ws.ids + (size_t)(t + 1) * rows;
        }
    }
}

/* One discriminator pass of the standard loss on the shard's real or fake
 * rows: forward, BCE (per step for hard samples, the final step for soft
 * ones, scaled by the whole batch), backward into the replica. */
static void shard_d_pass(chargan_trainer *tr, int s, int phase)
{
    cg_shards *sh = &tr->shards;
    cg_gan_shard *gs = &sh->gan[s];
    chargan_model *d = sh->disc[s];
    const int T = (int)tr->cfg.seq_len, rows = sh->rows[s], B = (int)tr->cfg.batch;
    const bool real = phase == PH_D_REAL, final_only = tr->cfg.estimator == CHARGAN_GAN_GUMBEL;
    if (real) {
        shard_windows(tr, s);
        cg_model_forward(d, T, rows, sh->targets[s], NULL, NULL, true);
    } else if (phase == PH_D_FAKE_SOFT) {
        cg_model_forward(d, T, rows, NULL, gs->soft, NULL, true);
    } else {
        cg_model_forward(d, T, rows, gs->fake, NULL, NULL, true);
    }
    gs->correct += count_correct(final_logits(d, T, rows), rows, real);
    const float target = real ? 1.0f : 0.0f;
    if (final_only) {
        size_t before = (size_t)(T - 1) * rows;
        float *last = d->ws.logits + before;
        for (int b = 0; b < rows; b++)
            gs->targets[b] = target;
        sh->loss[s] += cg_bce_logits(last, (size_t)rows, gs->targets, NULL, 1.0f / (float)B, last);
        memset(d->ws.logits, 0, before * sizeof(float));
    } else {
        size_t n = (size_t)T * rows;
        for (size_t i = 0; i < n; i++)
            gs->targets[i] = target;
        sh->loss[s] += cg_bce_logits(d->ws.logits, n, gs->targets, NULL,
                                     1.0f / ((float)T * (float)B), d->ws.logits);
    }
    cg_model_backward(d, NULL);
}

/* The relativistic loss in three phases, as d_update: C(fake), then C(real)
 * with the loss and the real backward, then the fake forward again (with
 * the same masks) and its backward. */
static void shard_d_relativistic(chargan_trainer *tr, int s, int phase)
{
    cg_shards *sh = &tr->shards;
    cg_gan_shard *gs = &sh->gan[s];
    chargan_model *d = sh->disc[s];
    const int T = (int)tr->cfg.seq_len, rows = sh->rows[s], B = (int)tr->cfg.batch;
    float *cr = gs->d_logits, *cf = gs->d_logits + rows, *tg = gs->targets;
    float *last = d->ws.logits + (size_t)(T - 1) * rows;
    if (phase == PH_D_REL_FAKE) {
        cg_model_forward(d, T, rows, NULL, gs->soft, NULL, true);
        memcpy(cf, last, (size_t)rows * sizeof(float));
        return;
    }
    if (phase == PH_D_REL_REAL) {
        shard_windows(tr, s);
        cg_model_forward(d, T, rows, sh->targets[s], NULL, NULL, true);
        memcpy(cr, last, (size_t)rows * sizeof(float));
        gs->correct += count_correct(cr, rows, true) + count_correct(cf, rows, false);
        for (int b = 0; b < rows; b++) {
            float x = cr[b] - cf[b], one = 1.0f, dx;
            sh->loss[s] += cg_bce_logits(&x, 1, &one, NULL, 1.0f / (float)B, &dx);
            tg[b] = dx;
        }
        memset(d->ws.logits, 0, (size_t)T * rows * sizeof(float));
        memcpy(last, tg, (size_t)rows * sizeof(float));
        cg_model_backward(d, NULL);
        return;
    }
    cg_model_forward(d, T, rows, NULL, gs->soft, NULL, true);
    memset(d->ws.logits, 0, (size_t)T * rows * sizeof(float));
    for (int b = 0; b < rows; b++)
        last[b] = -tg[b];
    cg_model_backward(d, NULL);
}

/* REINFORCE's per-step rewards and discounted returns of the shard's rows
 * (as dense_returns), from the updated discriminator. */
static void shard_rewards(chargan_trainer *tr, int s)
{
    cg_shards *sh = &tr->shards;
    cg_gan_shard *gs = &sh->gan[s];
    chargan_model *d = sh->disc[s];
    const int T = (int)tr->cfg.seq_len, rows = sh->rows[s];
    const float gamma = tr->cfg.gamma;
    cg_model_forward(d, T, rows, gs->fake, NULL, NULL, false);
    for (int b = 0; b < rows; b++) {
        float acc = 0.0f;
        for (int t = T - 1; t >= 0; t--) {
            float r = 2.0f * cg_sigmoidf(d->ws.logits[(size_t)t * rows + b]) - 1.0f;
            acc = r + gamma * acc;
            gs->rewards[(size_t)t * rows + b] = acc;
        }
    }
}

/* The generator's REINFORCE gradient on the shard's rows (advantages in
 * work.weights, batch-wide). */
static void shard_g_reinforce(chargan_trainer *tr, int s)
{
    cg_shards *sh = &tr->shards;
    cg_gan_shard *gs = &sh->gan[s];
    chargan_model *g = sh->gen[s];
    const int T = (int)tr->cfg.seq_len, rows = sh->rows[s], B = (int)tr->cfg.batch;
    for (int t = 0; t < T; t++)
        memcpy(gs->weights + (size_t)t * rows, tr->work.weights + (size_t)t * B + sh->first[s],
               (size_t)rows * sizeof(float));
    cg_model_zero_grad(g);
    sh->loss[s] = cg_softmax_xent(g->ws.logits, (size_t)T * rows, g->V, gs->fake, gs->weights,
                                  1.0f / ((float)B * (float)T), g->ws.logits);
    cg_model_backward(g, NULL);
}

/* The generator's gradient through the relaxation on the shard's rows (as
 * gumbel_step): the updated discriminator's input gradient, then the
 * generator's backward. */
static void shard_g_gumbel(chargan_trainer *tr, int s)
{
    cg_shards *sh = &tr->shards;
    cg_gan_shard *gs = &sh->gan[s];
    chargan_model *g = sh->gen[s], *d = sh->disc[s];
    const int T = (int)tr->cfg.seq_len, rows = sh->rows[s], B = (int)tr->cfg.batch;
    const float beta = sh->beta;
    float *last = d->ws.logits + (size_t)(T - 1) * rows, *cr = gs->d_logits;
    const bool rel = tr->cfg.gan_loss == CHARGAN_LOSS_RELATIVISTIC;
    if (rel) {
        shard_windows(tr, s);
        cg_model_forward(d, T, rows, sh->targets[s], NULL, NULL, false);
        memcpy(cr, last, (size_t)rows * sizeof(float));
    }
    cg_model_forward(d, T, rows, NULL, gs->soft, NULL, false);
    sh->loss[s] = 0.0;
    for (int b = 0; b < rows; b++) {
        float x = rel ? last[b] - cr[b] : last[b], one = 1.0f, dx;
        sh->loss[s] += cg_bce_logits(&x, 1, &one, NULL, 1.0f / (float)B, &dx);
        last[b] = dx;
    }
    memset(d->ws.logits, 0, (size_t)(T - 1) * rows * sizeof(float));
    cg_model_backward_input(d, g->ws.logits); /* as gumbel_step */
    relaxed_backward(g, soft_fed(tr), gs->soft, T, rows, beta);
}

static void shard_run(void *ctx, int s)
{
    chargan_trainer *tr = ctx;
    switch (tr->shards.phase) {
    case PH_GEN_HARD: shard_generate(tr, s, false); break;
    case PH_GEN_GUMBEL: shard_generate(tr, s, true); break;
    case PH_D_REAL:
    case PH_D_FAKE_HARD:
    case PH_D_FAKE_SOFT: shard_d_pass(tr, s, tr->shards.phase); break;
    case PH_D_REL_FAKE:
    case PH_D_REL_REAL:
    case PH_D_REL_REDO: shard_d_relativistic(tr, s, tr->shards.phase); break;
    case PH_REWARDS: shard_rewards(tr, s); break;
    case PH_G_REINFORCE: shard_g_reinforce(tr, s); break;
    default: shard_g_gumbel(tr, s); break;
    }
}

static void run_phase(chargan_trainer *tr, int phase)
{
    tr->shards.phase = phase;
    cg_pool_run(tr->shards.pool, shard_run, tr);
}

/* Before a training forward of the discriminator replicas: the masks an
 * unsharded forward would draw from tr->disc's RNG. */
static void d_masks(chargan_trainer *tr)
{
    if (tr->disc->cfg.recurrent_dropout > 0.0f)
        cg_model_draw_masks_into(tr->disc, tr->shards.disc, tr->shards.n, tr->shards.rows);
}

/* generate_hard / generate_gumbel on the shards. */
static void sharded_generate(chargan_trainer *tr, const float *z, bool relaxed, float beta,
                             bool train)
{
    cg_shards *sh = &tr->shards;
    cg_trainer_seed_rows(tr);
    if (train && tr->gen->cfg.recurrent_dropout > 0.0f)
        cg_model_draw_masks_into(tr->gen, sh->gen, sh->n, sh->rows);
    sh->z = z;
    sh->train = train;
    sh->beta = beta;
    clear_sample_flags(tr);
    run_phase(tr, relaxed ? PH_GEN_GUMBEL : PH_GEN_HARD);
}

/* d_update on the shards. */
static chargan_status sharded_d_update(chargan_trainer *tr, bool soft, float *loss_out,
                                       float *acc_out)
{
    cg_shards *sh = &tr->shards;
    chargan_model *d = tr->disc;
    int T = (int)tr->cfg.seq_len, B = (int)tr->cfg.batch;
    for (int s = 0; s < sh->n; s++) {
        cg_model_zero_grad(sh->disc[s]);
        sh->loss[s] = 0.0;
        sh->gan[s].correct = 0;
    }
    double scale;
    if (soft && tr->cfg.gan_loss == CHARGAN_LOSS_RELATIVISTIC) {
        cg_rng before_fake = d->rng;
        d_masks(tr);
        run_phase(tr, PH_D_REL_FAKE);
        d_masks(tr);
        run_phase(tr, PH_D_REL_REAL);
        cg_rng after_real = d->rng;
        d->rng = before_fake;
        d_masks(tr);
        d->rng = after_real;
        run_phase(tr, PH_D_REL_REDO);
        scale = B;
    } else {
        d_masks(tr);
        run_phase(tr, PH_D_REAL);
        d_masks(tr);
        run_phase(tr, soft ? PH_D_FAKE_SOFT : PH_D_FAKE_HARD);
        scale = soft ? B : (double)T * B;
    }
    int correct = 0;
    for (int s = 0; s < sh->n; s++)
        correct += sh->gan[s].correct;
    cg_shards_sum_grads(sh, d, sh->disc);
    if (soft && tr->cfg.gan_loss == CHARGAN_LOSS_RELATIVISTIC)
        relativistic_bias_gradient(d);
    return d_finish(tr, cg_shards_loss_sum(sh) / scale, correct, loss_out, acc_out);
}

/* The round's d_steps discriminator updates, each on a fresh real batch
 * after the first; *d_loss (may be NULL) gets their mean loss. */
static chargan_status sharded_d_rounds(chargan_trainer *tr, bool soft, float *d_loss)
{
    double sum = 0.0;
    for (uint32_t k = 0; k < tr->cfg.d_steps; k++) {
        float l;
        if (k > 0)
            draw_real(tr);
        chargan_status st = sharded_d_update(tr, soft, &l, NULL);
        if (st != CHARGAN_OK)
            return st;
        sum += l;
    }
    if (d_loss)
        *d_loss = (float)(sum / tr->cfg.d_steps);
    return CHARGAN_OK;
}

static chargan_status sharded_reinforce_step(chargan_trainer *tr, float *g_loss, float *d_loss)
{
    cg_shards *sh = &tr->shards;
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    chargan_status st;
    draw_real(tr);
    sharded_generate(tr, cg_trainer_draw_noise(tr), false, 1.0f, true);
    if ((st = sharded_d_rounds(tr, false, d_loss)) != CHARGAN_OK)
        return st;
    run_phase(tr, PH_REWARDS);
    for (int s = 0; s < sh->n; s++)
        for (int t = 0; t < T; t++)
            memcpy(tr->work.rewards + (size_t)t * B + sh->first[s],
                   sh->gan[s].rewards + (size_t)t * sh->rows[s],
                   (size_t)sh->rows[s] * sizeof(float));
    if ((st = advantages(tr)) != CHARGAN_OK)
        return st;
    run_phase(tr, PH_G_REINFORCE);
    cg_shards_sum_grads(sh, tr->gen, sh->gen);
    return commit_baseline(tr, g_update(tr, cg_shards_loss_sum(sh) / ((double)B * T), g_loss));
}

static chargan_status sharded_gumbel_step(chargan_trainer *tr, float *g_loss, float *d_loss)
{
    cg_shards *sh = &tr->shards;
    float beta = (float)cg_gan_beta(tr);
    chargan_status st;
    draw_real(tr);
    sharded_generate(tr, cg_trainer_draw_noise(tr), true, beta, true);
    if ((st = sharded_d_rounds(tr, true, d_loss)) != CHARGAN_OK)
        return st;
    run_phase(tr, PH_G_GUMBEL);
    cg_shards_sum_grads(sh, tr->gen, sh->gen);
    return g_update(tr, cg_shards_loss_sum(sh) / (double)tr->cfg.batch, g_loss);
}

static chargan_status sharded_d_step(chargan_trainer *tr, float *loss, float *accuracy)
{
    bool soft = tr->cfg.estimator == CHARGAN_GAN_GUMBEL;
    draw_real(tr);
    sharded_generate(tr, cg_trainer_draw_noise(tr), soft, (float)cg_gan_beta(tr), false);
    return sharded_d_update(tr, soft, loss, accuracy);
}

chargan_status cg_gan_step(chargan_trainer *tr, float *g_loss, float *d_loss)
{
    if (cg_gan_sharded(tr))
        return tr->cfg.estimator == CHARGAN_GAN_GUMBEL ? sharded_gumbel_step(tr, g_loss, d_loss)
                                                       : sharded_reinforce_step(tr, g_loss, d_loss);
    if (tr->cfg.estimator == CHARGAN_GAN_GUMBEL)
        return gumbel_step(tr, g_loss, d_loss);
    return reinforce_step(tr, g_loss, d_loss);
}

/* ------------------------------------------------------------------ evaluation */

/* Before batch k: CHARGAN_E_CANCELLED if a stop is requested.  Under MPI
 * the ranks vote, so that all stop before the same batch and none is left
 * in the collective sum of the counts. */
static chargan_status eval_stop_point(chargan_trainer *tr, uint32_t k)
{
    int mine = cg_trainer_stop_requested(tr), stop = mine;
    chargan_status st = cg_dist_agree_stop(tr, &stop, tr->global_step);
    if (st != CHARGAN_OK || !stop)
        return st;
    return cg_fail(&tr->err, CHARGAN_E_CANCELLED, "chargan_trainer_eval_discriminator: stopped "
                   "by %s before batch %u", mine ? "chargan_trainer_request_stop" : "another rank",
                   k + 1);
}

static chargan_status eval_discriminator(chargan_trainer *tr, uint32_t n_batches,
                                         double *accuracy)
{
    if (!tr->disc)
        return cg_fail(&tr->err, CHARGAN_E_STATE, "chargan_trainer_eval_discriminator: no "
                       "discriminator");
    size_t n_windows = cg_trainer_val_count(tr);
    if (tr->corpus_kind == CG_CORPUS_NONE || n_windows == 0)
        return cg_fail(&tr->err, CHARGAN_E_STATE, "chargan_trainer_eval_discriminator: no corpus "
                       "or no held-out window");
    int B = (int)tr->cfg.batch, T = (int)tr->cfg.seq_len;
    bool soft = tr->cfg.estimator == CHARGAN_GAN_GUMBEL;
    /* A trainer whose steps run on shards has no full-batch relaxed-sample
     * buffer: made here for the evaluation, and freed after it. */
    bool made_soft = soft && !tr->work.soft;
    if (made_soft && !(tr->work.soft = cg_alloc_float_matrix((size_t)T * B, (size_t)tr->gen->V)))
        return cg_fail(&tr->err, CHARGAN_E_NOMEM, "chargan_trainer_eval_discriminator: out of "
                       "memory for the relaxed samples");
    /* Unsharded, on the models' own workspaces; a trainer that runs its
     * steps on shards gives them back afterwards. */
    chargan_status st = cg_trainer_full_workspaces(tr);
    if (st != CHARGAN_OK)
        goto done;
    /* Its own RNG stream, so measuring does not perturb training. */
    cg_rng saved = tr->rng;
    cg_rng_seed_stream(&tr->rng, tr->cfg.seed, 0x6576616cu /* "eval" */);
    /* Batches of the global batch size; under MPI this rank judges its rows
     * of each (B of them from row `mine` on) and the ranks add up their
     * counts, so that N ranks give what one process gives. */
    size_t global = cg_dist_global_batch(tr), mine = cg_dist_first_row(tr);
    /* judged correctly, judged, and rows drawn or judged from logits that
     * were not finite (a broken generator's samples: the hard ones flagged
     * by the sampler, the relaxed ones NaN into the discriminator) */
    double counts[3] = {0.0, 0.0, 0.0};
    for (uint32_t k = 0; k < n_batches; k++) {
        if ((st = eval_stop_point(tr, k)) != CHARGAN_OK)
            break;
        size_t first = ((size_t)k * global) % n_windows;
        bool any = first + mine < n_windows; /* else: padding, counted nowhere */
        size_t rows = cg_trainer_val_windows(tr, any ? first + mine : first, n_windows);
        rows = any ? rows : 0;
        cg_windows_to_time_major(tr->windows, B, T, tr->inputs, tr->targets);
        d_forward_real(tr, false);
        counts[0] += count_correct(final_logits(tr->disc, T, B), (int)rows, true);
        counts[2] += count_not_finite(final_logits(tr->disc, T, B), (int)rows);
        const float *z = cg_trainer_draw_noise(tr);
        if (soft)
            generate_gumbel(tr, z, (float)cg_gan_beta(tr), false);
        else
            generate_hard(tr, z, false);
        counts[2] += samples_not_finite(tr);
        d_forward_fake(tr, soft, false);
        counts[0] += count_correct(final_logits(tr->disc, T, B), (int)rows, false);
        counts[2] += count_not_finite(final_logits(tr->disc, T, B), (int)rows);
        counts[1] += 2.0 * (double)rows;
    }
    tr->rng = saved;
    if (!cg_trainer_keeps_full_workspaces(tr)) {
        cg_model_release(tr->gen);
        cg_model_release(tr->disc);
    }
    /* sums of whole numbers below 2^53: exact in any order */
    if (st == CHARGAN_OK)
        st = cg_dist_allreduce_sum(tr, counts, 3, "discriminator evaluation after step",
                                   tr->global_step);
    if (st == CHARGAN_OK && counts[2] > 0.0)
        st = cg_fail(&tr->err, CHARGAN_E_NUMERIC, "chargan_trainer_eval_discriminator: logits "
                     "that are not finite (the generator's or the discriminator's parameters "
                     "overflow the activations)");
    if (st == CHARGAN_OK)
        *accuracy = counts[0] / counts[1];
done:
    if (made_soft) {
        cg_free_floats(tr->work.soft);
        tr->work.soft = NULL;
    }
    return st;
}

chargan_status chargan_trainer_eval_discriminator(chargan_trainer *tr, uint32_t n_batches,
                                                  double *accuracy)
{
    if (!tr || !accuracy || n_batches == 0)
        return cg_fail(tr ? &tr->err : NULL, CHARGAN_E_INVALID,
                       "chargan_trainer_eval_discriminator: NULL argument or n_batches 0");
    cg_trainer_begin_long_call(tr);
    return cg_trainer_end_long_call(tr, eval_discriminator(tr, n_batches, accuracy));
}
