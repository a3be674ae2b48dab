/* seqgan_oracle - SeqGAN's synthetic experiment with its real oracle.
 *
 * The oracle (data/seqgan-oracle/oracle.bin, an LSTM over 5000 tokens) is
 * loaded into a libchargan generator through the parameter API.  A
 * generator of the same shape is trained by MLE on the oracle's 9,984
 * training sequences, then adversarially with one estimator.  Every few
 * epochs it reports NLL-oracle (the oracle's mean NLL of 9,984 generated
 * sequences, SeqGAN's metric) and NLL-test (the generator's NLL of fresh
 * oracle samples it never trained on), and, for the quality-diversity
 * frontier of Caccia et al., both figures at a list of temperatures.
 *
 *   seqgan_oracle --data data/seqgan-oracle --seed 1 --mle-epochs 120 \
 *       --gan reinforce|gumbel|none --gan-steps 200 --eval-every 10 > run.csv
 *
 * --dense-until N evaluates and sweeps the temperatures after each of the
 * first N epochs as well (where the MLE frontier lies).
 * --save PATH writes the generator after the MLE phase; --init PATH starts
 * from such a checkpoint instead of a fresh generator (with --mle-epochs 0,
 * each estimator's adversarial phase starts from the same MLE generator).
 * --gan mlecont is the control of an estimator: --gan-steps more MLE steps
 * at --gan-lr (as many generator updates, at the same rate, evaluated the
 * same way), so that what the adversarial steps do can be told from what
 * more training at a lower rate does.
 *
 * CSV on stdout: phase,epoch_or_step,temperature,nll_oracle,nll_test.
 * Progress on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <chargan.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { V = 5000, E = 32, H = 32, SEQ = 20, N_TRAIN = 9984, BATCH = 64 };

static void die(const char *what, chargan_status st)
{
    fprintf(stderr, "seqgan_oracle: %s: %s: %s\n", what, chargan_strerror(st),
            chargan_last_error());
    exit(1);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        chargan_status st_ = (call);                                                               \
        if (st_ != CHARGAN_OK)                                                                     \
            die(#call, st_);                                                                       \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static chargan_model *new_generator(uint64_t seed, float init_scale)
{
    chargan_model_config c;
    CHECK(chargan_model_config_init(&c, CHARGAN_GENERATOR));
    c.vocab_size = V;
    c.embed_dim = E;
    c.hidden_dim = H;
    c.forget_bias = 0.0f;
    c.init_scale = init_scale;
    c.start_id = 0;
    c.seed = seed;
    chargan_model *m;
    CHECK(chargan_model_new(&c, &m));
    return m;
}

static void set_param(chargan_model *m, const char *name, const float *v, size_t n)
{
    size_t index;
    CHECK(chargan_model_param_find(m, name, &index));
    CHECK(chargan_model_param_set(m, index, v, n));
}

/* oracle.bin: emb, (Wi Ui bi) (Wf Uf bf) (Wog Uog bog) (Wc Uc bc), Wo, bo as
 * little-endian float32; our gate blocks are ordered i, f, g, o. */
static chargan_model *load_oracle(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/oracle.bin", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    size_t total = (size_t)V * E + 4 * ((size_t)E * H + (size_t)H * H + H) + (size_t)H * V + V;
    float *all = malloc(total * sizeof(float));
    if (!all || fread(all, sizeof(float), total, f) != total || fgetc(f) != EOF) {
        fprintf(stderr, "seqgan_oracle: %s is not %zu floats\n", path, total);
        exit(1);
    }
    fclose(f);
    chargan_model *m = new_generator(1, 0.0f);
    const float *p = all;
    set_param(m, "embed", p, (size_t)V * E);
    p += (size_t)V * E;
    float *w_ih = calloc((size_t)E * 4 * H, 4), *w_hh = calloc((size_t)H * 4 * H, 4),
          *b = calloc(4 * H, 4);
    const int block_of[4] = {0, 1, 3, 2}; /* file order i, f, o, c -> our i, f, g, o */
    for (int gate = 0; gate < 4; gate++) {
        int blk = block_of[gate];
        for (int r = 0; r < E; r++)
            memcpy(w_ih + (size_t)r * 4 * H + blk * H, p + (size_t)r * H, H * sizeof(float));
        p += (size_t)E * H;
        for (int r = 0; r < H; r++)
            memcpy(w_hh + (size_t)r * 4 * H + blk * H, p + (size_t)r * H, H * sizeof(float));
        p += (size_t)H * H;
        memcpy(b + blk * H, p, H * sizeof(float));
        p += H;
    }
    set_param(m, "lstm.0.w_ih", w_ih, (size_t)E * 4 * H);
    set_param(m, "lstm.0.w_hh", w_hh, (size_t)H * 4 * H);
    set_param(m, "lstm.0.b", b, 4 * H);
    set_param(m, "out.w", p, (size_t)H * V);
    p += (size_t)H * V;
    set_param(m, "out.b", p, V);
    free(w_ih);
    free(w_hh);
    free(b);
    free(all);
    return m;
}

static int32_t *read_sequences(const char *dir, size_t *n_out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/train.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(1);
    }
    size_t cap = (size_t)N_TRAIN * SEQ, n = 0;
    int32_t *ids = malloc(cap * sizeof(int32_t));
    long v;
    while (n < cap && fscanf(f, "%ld", &v) == 1) {
        if (v < 0 || v >= V) {
            fprintf(stderr, "seqgan_oracle: id %ld out of range in %s\n", v, path);
            exit(1);
        }
        ids[n++] = (int32_t)v;
    }
    fclose(f);
    if (n % SEQ) {
        fprintf(stderr, "seqgan_oracle: %s holds %zu ids, not a multiple of %d\n", path, n, SEQ);
        exit(1);
    }
    *n_out = n / SEQ;
    return ids;
}

static chargan_sample_options sample_opts(uint32_t n, float temperature, uint64_t seed)
{
    chargan_sample_options o;
    CHECK(chargan_sample_options_init(&o));
    o.n_streams = n;
    o.length = SEQ;
    o.temperature = temperature;
    o.seed = seed;
    o.allow_reserved = 1; /* ids 0 and 1 are ordinary tokens of the oracle's vocabulary */
    return o;
}

/* NLL-test at temperature t: the NLL of held-out oracle samples under the
 * generator's temperature-scaled distribution softmax(logits / t), obtained
 * by scaling a copy of the output layer. */
static double nll_test(chargan_model *g, const int32_t *test, size_t n_test, float t,
                       const char *tmp_path)
{
    if (t == 1.0f) {
        double nll;
        CHECK(chargan_model_nll(g, test, n_test, SEQ, &nll));
        return nll;
    }
    CHECK(chargan_model_save(g, tmp_path));
    chargan_model *c;
    CHECK(chargan_model_load(tmp_path, CHARGAN_GENERATOR, &c));
    size_t iw, ib;
    CHECK(chargan_model_param_find(c, "out.w", &iw));
    CHECK(chargan_model_param_find(c, "out.b", &ib));
    float *w = malloc((size_t)H * V * sizeof(float)), *b = malloc(V * sizeof(float));
    CHECK(chargan_model_param_get(c, iw, w, (size_t)H * V));
    CHECK(chargan_model_param_get(c, ib, b, V));
    for (size_t i = 0; i < (size_t)H * V; i++)
        w[i] /= t;
    for (size_t i = 0; i < V; i++)
        b[i] /= t;
    CHECK(chargan_model_param_set(c, iw, w, (size_t)H * V));
    CHECK(chargan_model_param_set(c, ib, b, V));
    double nll;
    CHECK(chargan_model_nll(c, test, n_test, SEQ, &nll));
    free(w);
    free(b);
    chargan_model_free(c);
    return nll;
}

typedef struct run {
    chargan_model *oracle;
    const int32_t *test;
    size_t n_test;
    uint64_t seed;
    const float *temps;
    int n_temps;
    uint32_t n_eval;
    const char *tmp_path;
} run;

static void evaluate(const run *r, chargan_model *g, const char *phase, long when, bool sweep)
{
    int n = sweep ? r->n_temps : 1;
    for (int i = 0; i < n; i++) {
        float t = sweep ? r->temps[i] : 1.0f;
        chargan_sample_options o = sample_opts(r->n_eval, t, r->seed * 7919 + (uint64_t)when);
        double oracle_nll, test_nll;
        CHECK(chargan_nll_oracle(g, r->oracle, &o, &oracle_nll));
        test_nll = nll_test(g, r->test, r->n_test, t, r->tmp_path);
        printf("%s,%ld,%.2f,%.4f,%.4f\n", phase, when, (double)t, oracle_nll, test_nll);
        fflush(stdout);
        if (t == 1.0f)
            fprintf(stderr, "[%s %ld] NLL-oracle %.3f NLL-test %.3f\n", phase, when, oracle_nll,
                    test_nll);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: seqgan_oracle [--data DIR] [--seed S] [--mle-epochs N] [--gan "
                    "none|reinforce|gumbel|mlecont] [--gan-steps N] [--eval-every N] [--gan-eval-every N] "
                    "[--sweep-every N] [--dense-until N] [--threads N] [--gan-lr X] [--mle-weight X] "
                    "[--beta-max X] [--gan-feed hard|soft] [--rollouts K] [--n-eval N] "
                    "[--tmp PATH] [--init CKPT] [--save CKPT]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *dir = "data/seqgan-oracle", *gan = "none", *tmp = "/tmp/seqgan_oracle_tmp.ckpt";
    const char *init = NULL, *save = NULL;
    long mle_epochs = 120, gan_steps = 200, eval_every = 10, gan_eval_every = 20, sweep_every = 40;
    long dense_until = 0; /* sweep after every epoch up to this one */
    uint64_t seed = 1;
    int threads = 2;
    uint32_t rollouts = 0, n_eval = N_TRAIN;
    double gan_lr = 1e-4, mle_weight = 0.0, beta_max = 100.0;
    int soft_feed = 0; /* --gan-feed soft: the Gumbel generator reads its relaxed samples */
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(o, "--data"))
            dir = v;
        else if (!strcmp(o, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (!strcmp(o, "--mle-epochs"))
            mle_epochs = atol(v);
        else if (!strcmp(o, "--gan"))
            gan = v;
        else if (!strcmp(o, "--gan-steps"))
            gan_steps = atol(v);
        else if (!strcmp(o, "--eval-every"))
            eval_every = atol(v);
        else if (!strcmp(o, "--gan-eval-every"))
            gan_eval_every = atol(v);
        else if (!strcmp(o, "--dense-until"))
            dense_until = atol(v);
        else if (!strcmp(o, "--sweep-every"))
            sweep_every = atol(v);
        else if (!strcmp(o, "--threads"))
            threads = atoi(v);
        else if (!strcmp(o, "--gan-lr"))
            gan_lr = atof(v);
        else if (!strcmp(o, "--mle-weight"))
            mle_weight = atof(v);
        else if (!strcmp(o, "--beta-max"))
            beta_max = atof(v);
        else if (!strcmp(o, "--gan-feed") && (!strcmp(v, "hard") || !strcmp(v, "soft")))
            soft_feed = !strcmp(v, "soft");
        else if (!strcmp(o, "--rollouts"))
            rollouts = (uint32_t)atoi(v);
        else if (!strcmp(o, "--n-eval"))
            n_eval = (uint32_t)atoi(v);
        else if (!strcmp(o, "--tmp"))
            tmp = v;
        else if (!strcmp(o, "--init"))
            init = v;
        else if (!strcmp(o, "--save"))
            save = v;
        else
            usage();
    }
    const bool control = !strcmp(gan, "mlecont");
    int estimator = !strcmp(gan, "reinforce")          ? CHARGAN_GAN_REINFORCE
                    : !strcmp(gan, "gumbel")           ? CHARGAN_GAN_GUMBEL
                    : !strcmp(gan, "none") || control ? CHARGAN_GAN_NONE
                                                       : -1;
    if (estimator < 0 || eval_every < 1 || gan_eval_every < 1 || sweep_every < 1)
        usage();

    chargan_model *oracle = load_oracle(dir);
    size_t n_train;
    int32_t *train = read_sequences(dir, &n_train);
    double oracle_train;
    CHECK(chargan_model_nll(oracle, train, n_train, SEQ, &oracle_train));
    fprintf(stderr, "oracle scores train.txt (%zu sequences) at %.4f nats/token (published 5.761)\n",
            n_train, oracle_train);
    /* A held-out test set: fresh oracle samples, a seed no run uses for anything else. */
    size_t n_test = 5000;
    int32_t *test = malloc(n_test * SEQ * sizeof(int32_t));
    chargan_sample_options to = sample_opts((uint32_t)n_test, 1.0f, 424242);
    CHECK(chargan_model_sample_ids(oracle, &to, NULL, 0, test, n_test * SEQ));
    printf("phase,when,temperature,nll_oracle,nll_test\n");

    chargan_model *g;
    if (init)
        CHECK(chargan_model_load(init, CHARGAN_GENERATOR, &g));
    else
        g = new_generator(seed, 0.1f);
    chargan_model *d = NULL;
    if (estimator != CHARGAN_GAN_NONE) {
        chargan_model_config dc;
        CHECK(chargan_model_config_init(&dc, CHARGAN_DISCRIMINATOR));
        dc.vocab_size = V;
        dc.embed_dim = 64;
        dc.hidden_dim = 64;
        dc.seed = seed + 1000;
        CHECK(chargan_model_new(&dc, &d));
    }
    chargan_optimizer_config oc;
    CHECK(chargan_optimizer_config_init(&oc, CHARGAN_ADAM));
    oc.lr = 0.01f;
    oc.clip_norm = 5.0f;
    chargan_optimizer *gopt, *dopt = NULL;
    CHECK(chargan_optimizer_new(&oc, &gopt));
    if (d) {
        oc.lr = 1e-4f;
        oc.clip_norm = 5.0f;
        CHECK(chargan_optimizer_new(&oc, &dopt));
    }
    chargan_trainer_config tc;
    CHECK(chargan_trainer_config_init(&tc));
    tc.batch = BATCH;
    tc.seq_len = SEQ;
    tc.val_fraction = 0.0f;
    tc.seed = seed;
    tc.threads = (uint32_t)threads;
    tc.estimator = estimator;
    tc.rollouts = rollouts;
    tc.mle_weight = (float)mle_weight;
    tc.beta_max = (float)beta_max;
    tc.gumbel_feed = soft_feed ? CHARGAN_FEED_SOFT : CHARGAN_FEED_HARD;
    tc.anneal_steps = (uint32_t)(gan_steps > 0 ? gan_steps : 1);
    chargan_trainer *tr;
    CHECK(chargan_trainer_new(&tc, g, gopt, d, dopt, &tr));
    CHECK(chargan_trainer_set_corpus_sequences(tr, train, n_train, SEQ));
    g = chargan_trainer_generator(tr);

    static const float temps[] = {0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 1.1f, 1.2f};
    run r = {oracle, test, n_test, seed, temps, 8, n_eval, tmp};
    long steps_per_epoch = (long)(n_train / BATCH);
    double t0 = now_s();
    evaluate(&r, g, "mle", 0, false);
    for (long e = 1; e <= mle_epochs; e++) {
        CHECK(chargan_trainer_pretrain_generator(tr, (uint64_t)steps_per_epoch));
        /* The MLE frontier's best points come from the first epochs, before
         * over-fitting: --dense-until sweeps every one of them. */
        bool dense = e <= dense_until;
        if (dense || e % eval_every == 0 || e == mle_epochs) {
            fprintf(stderr, "[mle %ld] %.0f s\n", e, now_s() - t0);
            evaluate(&r, g, "mle", e, dense || e % sweep_every == 0 || e == mle_epochs);
        }
    }
    fprintf(stderr, "MLE: %ld epochs in %.0f s\n", mle_epochs, now_s() - t0);
    if (save)
        CHECK(chargan_model_save(g, save));
    if (estimator != CHARGAN_GAN_NONE || control) {
        chargan_optimizer_set_lr(chargan_trainer_optimizer(tr, CHARGAN_GENERATOR), (float)gan_lr);
        if (!control) {
            CHECK(chargan_trainer_pretrain_discriminator(tr, 3 * (uint64_t)steps_per_epoch));
            fprintf(stderr, "discriminator pre-trained\n");
        }
        for (long s = 1; s <= gan_steps; s++) {
            float gl, dl = NAN; /* the control: generator updates by MLE alone */
            CHECK(control ? chargan_trainer_mle_step(tr, &gl)
                          : chargan_trainer_gan_step(tr, &gl, &dl));
            if (s % gan_eval_every == 0 || s == gan_steps) {
                fprintf(stderr, "[%s %ld] %.0f s, g loss %.4f d loss %.4f\n", gan, s, now_s() - t0,
                        (double)gl, (double)dl);
                evaluate(&r, g, gan, s, s == gan_steps);
            }
        }
    }
    fprintf(stderr, "done in %.0f s\n", now_s() - t0);
    remove(tmp);
    chargan_trainer_free(tr);
    chargan_model_free(oracle);
    free(train);
    free(test);
    return 0;
}
