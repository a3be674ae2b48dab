/* chargan_bench - libchargan's side of the benchmark against the PyTorch peer
 * (../shared/bench/torch_peer.py), written against the public API only.
 * It mirrors the peer's workloads: MLE training throughput at (E=64, H=256)
 * and (E=128, H=128), sampling throughput (32 x 256 and 1 x 2048), one
 * Gumbel-softmax and one REINFORCE adversarial step, peak memory, and
 * held-out bits/char after a fixed training budget.  Medians of --reps timed
 * repetitions after --warmup calls.  Figures go to stderr as it runs; the
 * last line of stdout is one JSON object.  It takes the peer's options
 * (--batch, --seq, --sample-len, ...), so one command line measures both on
 * the same workload; scripts/bench.sh runs both sides.
 *
 * --curve N,N,... instead trains the budget's model for those numbers of
 * steps and prints "step N train_s S val_bpc X" after each (the peer's side
 * is bench/peer_curve.py; scripts/curve.sh runs both). */
#define _POSIX_C_SOURCE 200809L
#include <chargan.h>
#include <cblas.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Timed repetitions at most (their rates are kept for the median). */
#define MAX_REPS 1000
/* Step counts a --curve may list. */
#define MAX_MARKS 32

typedef struct args {
    const char *corpus;
    int threads, reps, warmup, mle_steps, gan_steps, batch, seq, sample_batch, sample_len;
    int sample1_len;
    double budget, lr, gan_lr;
    double forget_bias; /* of every model; 0 by default, as the peer's nn.LSTM */
    double tau;         /* the Gumbel step's fixed temperature: beta_start = beta_max = 1 / tau */
    const char *gan_feed; /* --gan-feed: hard or soft ... */
    int soft_feed;        /* ... soft: the Gumbel generator reads its relaxed samples */
    uint64_t seed;
    int quick, no_budget;
    const char *only; /* --only: one timed section alone (scripts/placement.sh), or NULL */
    int plain_output_bias; /* generators keep the output bias chargan_model_new drew */
    const char *curve; /* --curve's step counts, or NULL */
} args;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, chargan_status st)
{
    fprintf(stderr, "chargan_bench: %s: %s: %s\n", what, chargan_strerror(st), chargan_last_error());
    exit(1);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        chargan_status st_ = (call);                                                               \
        if (st_ != CHARGAN_OK)                                                                     \
            die(#call, st_);                                                                       \
    } while (0)

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "chargan_bench: cannot read %s\n", path);
        exit(1);
    }
    buf[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef void (*work_fn)(void *ctx);

/* Median units per second over reps repetitions of calls calls each. */
static double timed(const args *a, work_fn fn, void *ctx, double units_per_call, int calls,
                    double *sec_per_call)
{
    for (int i = 0; i < a->warmup; i++)
        fn(ctx);
    double rates[MAX_REPS], per[MAX_REPS];
    const int reps = a->reps; /* <= MAX_REPS, checked when parsed */
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        for (int c = 0; c < calls; c++)
            fn(ctx);
        double dt = now_s() - t0;
        rates[r] = units_per_call * calls / dt;
        per[r] = dt / calls;
    }
    /* Each repetition in order, as the peer prints its reps=[...]: a run
     * disturbed part-way shows here, not in the median. */
    fprintf(stderr, "[reps]");
    for (int r = 0; r < reps; r++)
        fprintf(stderr, " %.*f", rates[r] >= 1000.0 ? 0 : 3, rates[r]);
    fprintf(stderr, "\n");
    if (sec_per_call)
        *sec_per_call = median(per, reps);
    return median(rates, reps);
}

typedef struct setup {
    const args *a;
    chargan_tokenizer *tok;
    const char *text;
    size_t len;
    uint32_t vocab;
    int32_t *val_ids; /* the held-out part (the last 10%), once asked for */
    size_t n_val;
} setup;

static chargan_model *new_model(const setup *s, chargan_model_kind kind, int E, int H)
{
    chargan_model_config mc;
    CHECK(chargan_model_config_init(&mc, kind));
    mc.vocab_size = s->vocab;
    mc.embed_dim = (uint32_t)E;
    mc.hidden_dim = (uint32_t)H;
    /* By default 0, where the peer's nn.LSTM starts its forget gates, so
     * that they are not a difference between the two sides.  (With the
     * library's default of 1 this model learned more slowly: at 3000 steps
     * 2.275 bits/char against the peer's 2.232 and our 2.231.)  The
     * generators' output bias starts as `chargan train` starts it: see
     * new_trainer. */
    mc.forget_bias = (float)s->a->forget_bias;
    mc.seed = s->a->seed;
    chargan_model *m;
    CHECK(chargan_model_new(&mc, &m));
    CHECK(chargan_model_set_tokenizer(m, s->tok));
    return m;
}

static chargan_optimizer *new_adam(double lr)
{
    chargan_optimizer_config oc;
    CHECK(chargan_optimizer_config_init(&oc, CHARGAN_ADAM));
    oc.lr = (float)lr;
    chargan_optimizer *o;
    CHECK(chargan_optimizer_new(&oc, &o));
    return o;
}

static chargan_trainer *new_trainer(const setup *s, int E, int H, int estimator)
{
    const args *a = s->a;
    chargan_trainer_config tc;
    CHECK(chargan_trainer_config_init(&tc));
    tc.batch = (uint32_t)a->batch;
    tc.seq_len = (uint32_t)a->seq;
    tc.threads = (uint32_t)a->threads;
    tc.seed = a->seed;
    tc.estimator = estimator;
    tc.beta_start = tc.beta_max = (float)(1.0 / a->tau); /* no annealing, as the peer */
    tc.gumbel_feed = a->soft_feed ? CHARGAN_FEED_SOFT : CHARGAN_FEED_HARD;
    chargan_model *g = new_model(s, CHARGAN_GENERATOR, E, H);
    chargan_model *d = estimator ? new_model(s, CHARGAN_DISCRIMINATOR, E, H) : NULL;
    double lr = estimator ? a->gan_lr : a->lr;
    chargan_trainer *tr;
    CHECK(chargan_trainer_new(&tc, g, new_adam(lr), d, d ? new_adam(lr) : NULL, &tr));
    CHECK(chargan_trainer_set_corpus_text(tr, s->text, s->len));
    /* as `chargan train` starts every fresh generator */
    if (!a->plain_output_bias)
        CHECK(chargan_trainer_init_output_bias(tr));
    return tr;
}

static void mle_call(void *ctx)
{
    CHECK(chargan_trainer_mle_step(ctx, NULL));
}

static void gan_call(void *ctx)
{
    CHECK(chargan_trainer_gan_step(ctx, NULL, NULL));
}

typedef struct sample_ctx {
    chargan_model *m;
    chargan_sample_options o;
    int32_t *out;
    size_t cap;
} sample_ctx;

static void sample_call(void *ctx)
{
    sample_ctx *c = ctx;
    c->o.seed++;
    CHECK(chargan_model_sample_ids(c->m, &c->o, NULL, 0, c->out, c->cap));
}

static double sample_rate(const args *a, chargan_model *m, int streams, int len)
{
    sample_ctx c = {.m = m};
    CHECK(chargan_sample_options_init(&c.o));
    c.o.n_streams = (uint32_t)streams;
    c.o.length = (uint32_t)len;
    c.o.temperature = 1.0f;
    c.o.seed = a->seed;
    c.o.threads = (uint32_t)a->threads; /* the peer samples with torch's 2 threads */
    c.cap = (size_t)streams * len;
    c.out = malloc(c.cap * sizeof(int32_t));
    double rate = timed(a, sample_call, &c, (double)c.cap, 1, NULL);
    free(c.out);
    return rate;
}

/* sgemm rate at the training step's dominant shape and at 1024^3, for the
 * "fraction of the BLAS limit" figure. */
static double sgemm_gflops(int m, int n, int k)
{
    float *A = calloc((size_t)m * k, 4), *B = calloc((size_t)k * n, 4), *C = calloc((size_t)m * n, 4);
    for (size_t i = 0; i < (size_t)m * k; i++)
        A[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++)
        B[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, A, k, B, n, 0, C, n);
    int reps = 0;
    double t0 = now_s(), dt;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, A, k, B, n, 0, C, n);
        reps++;
    } while ((dt = now_s() - t0) < 1.0);
    free(A);
    free(B);
    free(C);
    return 2.0 * m * n * k * reps / dt / 1e9;
}

void openblas_set_num_threads(int) __attribute__((weak));

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* Current and peak resident memory, on stderr, so a run shows which phase
 * sets the peak. */
static void report_rss(const char *after)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return;
    char line[256];
    long rss = -1, hwm = -1, anon = -1, file = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmRSS:", 6))
            rss = atol(line + 6);
        else if (!strncmp(line, "VmHWM:", 6))
            hwm = atol(line + 6);
        else if (!strncmp(line, "RssAnon:", 8))
            anon = atol(line + 8);
        else if (!strncmp(line, "RssFile:", 8))
            file = atol(line + 8);
    }
    fclose(f);
    fprintf(stderr, "[rss] after %s: %.1f MB now (%.1f anonymous, %.1f files), %.1f MB peak\n", after,
            rss / 1024.0, anon / 1024.0, file / 1024.0, hwm / 1024.0);
}

__attribute__((format(printf, 1, 2))) static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chargan_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* Held-out bits/char of tr's generator, measured as the peer does: the
 * last 10% of the corpus as 32 contiguous streams, the state carried. */
static double held_out_bpc(setup *s, chargan_trainer *tr)
{
    if (!s->val_ids) {
        int32_t *ids = malloc(s->len * sizeof(int32_t));
        size_t n_ids;
        if (!ids)
            die("malloc", CHARGAN_E_NOMEM);
        CHECK(chargan_tokenizer_encode(s->tok, s->text, s->len, ids, s->len, &n_ids));
        size_t n_train = (size_t)((double)n_ids * 0.9);
        s->n_val = n_ids - n_train;
        if (s->a->quick && s->n_val > 8192)
            s->n_val = 8192;
        memmove(ids, ids + n_train, s->n_val * sizeof(int32_t));
        s->val_ids = ids;
    }
    double nll;
    CHECK(chargan_model_stream_nll(chargan_trainer_generator(tr), s->val_ids, s->n_val, 32, &nll));
    return nll / log(2.0);
}

/* "250,500,1000" -> ascending step counts; how many, 0 if malformed. */
static int parse_marks(const char *text, long *marks)
{
    int n = 0;
    while (*text && n < MAX_MARKS) {
        char *end;
        long v = strtol(text, &end, 10);
        if (end == text || v <= 0 || (n > 0 && v <= marks[n - 1]) || (*end && *end != ','))
            return 0;
        marks[n++] = v;
        text = *end ? end + 1 : end;
    }
    return *text ? 0 : n;
}

/* --curve: the budget's model after each listed number of steps. */
static void run_curve(setup *s)
{
    long marks[MAX_MARKS];
    const int n_marks = parse_marks(s->a->curve, marks);
    if (n_marks == 0)
        die_usage("--curve needs ascending step counts, comma-separated");
    chargan_trainer *tr = new_trainer(s, 64, 256, CHARGAN_GAN_NONE);
    long step = 0;
    double train_s = 0.0;
    for (int k = 0; k < n_marks; k++) {
        double t0 = now_s();
        for (; step < marks[k]; step++)
            CHECK(chargan_trainer_mle_step(tr, NULL));
        train_s += now_s() - t0;
        printf("step %ld train_s %.1f val_bpc %.4f\n", step, train_s, held_out_bpc(s, tr));
        fflush(stdout);
    }
    chargan_trainer_free(tr);
}

/* The sections --only can run alone, with the JSON key each reports under
 * (the full run's and the peer's). */
static const struct section {
    const char *name, *key;
    int estimator;
} sections[] = {{"mle", "mle_cps_E64_H256", CHARGAN_GAN_NONE},
                {"gumbel", "gan_steps_per_s", CHARGAN_GAN_GUMBEL},
                {"reinforce", "reinforce_steps_per_s", CHARGAN_GAN_REINFORCE}};

static const struct section *find_section(const char *name)
{
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (!strcmp(name, sections[i].name))
            return &sections[i];
    return NULL;
}

/* --only: one section at E=64 H=256 as the full run times it, and its JSON
 * key alone (bench/peer_section.py --section on the peer's side). */
static void run_only(const setup *s, const struct section *sec)
{
    const args *a = s->a;
    chargan_trainer *tr = new_trainer(s, 64, 256, sec->estimator);
    double rate = sec->estimator == CHARGAN_GAN_NONE
                      ? timed(a, mle_call, tr, (double)a->batch * a->seq, a->mle_steps, NULL)
                      : timed(a, gan_call, tr, 1.0, a->gan_steps, NULL);
    printf("{\"%s\": %.3f}\n", sec->key, rate);
    chargan_trainer_free(tr);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: chargan_bench [--corpus FILE] [--threads N] [--quick] [--no-budget] [--budget S]\n"
            "         [--reps N] [--warmup N] [--seed S] [--batch B] [--seq T] [--mle-steps N]\n"
            "         [--gan-steps N] [--sample-batch N] [--sample-len N] [--lr LR] [--gan-lr LR]\n"
            "         [--tau T] [--gan-feed hard|soft] [--forget-bias B] [--plain-output-bias]\n"
            "         [--curve N,N,...] [--only mle|gumbel|reinforce]\n"
            "The options are the peer's (torch_peer.py), so one command line serves both, and\n"
            "are taken as its argparse takes them (--opt=VALUE, a unique prefix of a name);\n"
            "--forget-bias (default 0, as the peer's), --plain-output-bias (generators keep\n"
            "the output bias the model drew instead of chargan_trainer_init_output_bias's), --curve\n"
            "(bench/peer_curve.py's --steps on the peer's side) and --only (one section at\n"
            "E=64 H=256 alone, as bench/peer_section.py --section on the peer's side) are ours.\n");
}

/* What an option's value is, and where it is kept in args. */
typedef enum { OPT_FLAG, OPT_COUNT, OPT_REAL, OPT_SEED, OPT_TEXT, OPT_PEER_ONLY } opt_kind;

typedef struct bench_option {
    const char *name;
    opt_kind kind;
    size_t offset;
} bench_option;

static const bench_option bench_options[] = {
    {"--corpus", OPT_TEXT, offsetof(args, corpus)},
    {"--threads", OPT_COUNT, offsetof(args, threads)},
    {"--quick", OPT_FLAG, offsetof(args, quick)},
    {"--no-budget", OPT_FLAG, offsetof(args, no_budget)},
    {"--plain-output-bias", OPT_FLAG, offsetof(args, plain_output_bias)},
    {"--budget", OPT_REAL, offsetof(args, budget)},
    {"--reps", OPT_COUNT, offsetof(args, reps)},
    {"--warmup", OPT_COUNT, offsetof(args, warmup)},
    {"--seed", OPT_SEED, offsetof(args, seed)},
    {"--batch", OPT_COUNT, offsetof(args, batch)},
    {"--seq", OPT_COUNT, offsetof(args, seq)},
    {"--mle-steps", OPT_COUNT, offsetof(args, mle_steps)},
    {"--gan-steps", OPT_COUNT, offsetof(args, gan_steps)},
    {"--sample-batch", OPT_COUNT, offsetof(args, sample_batch)},
    {"--sample-len", OPT_COUNT, offsetof(args, sample_len)},
    {"--lr", OPT_REAL, offsetof(args, lr)},
    {"--gan-lr", OPT_REAL, offsetof(args, gan_lr)},
    {"--tau", OPT_REAL, offsetof(args, tau)},
    {"--gan-feed", OPT_TEXT, offsetof(args, gan_feed)},
    {"--forget-bias", OPT_REAL, offsetof(args, forget_bias)},
    {"--curve", OPT_TEXT, offsetof(args, curve)},
    {"--only", OPT_TEXT, offsetof(args, only)},
    /* the peer's guards against a busy machine; this side runs as it finds it */
    {"--wait-idle", OPT_PEER_ONLY, 0},
    {"--retries", OPT_PEER_ONLY, 0},
};
#define N_BENCH_OPTIONS (sizeof bench_options / sizeof bench_options[0])

/* The option called name (len bytes): its exact name, or else the only one
 * it begins, as argparse resolves abbreviations. */
static const bench_option *find_option(const char *name, size_t len)
{
    const bench_option *found = NULL;
    int matches = 0;
    for (size_t k = 0; k < N_BENCH_OPTIONS; k++) {
        const bench_option *o = &bench_options[k];
        if (strncmp(o->name, name, len) != 0)
            continue;
        if (o->name[len] == '\0')
            return o;
        found = o;
        matches++;
    }
    if (matches > 1)
        die_usage("ambiguous option %.*s", (int)len, name);
    if (!found)
        die_usage("unknown option %.*s (see --help)", (int)len, name);
    return found;
}

static void set_option(args *a, const bench_option *o, const char *value)
{
    void *field = (char *)a + o->offset;
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_FLAG: *(int *)field = 1; return;
    case OPT_PEER_ONLY: return;
    case OPT_TEXT: *(const char **)field = value; return;
    case OPT_COUNT: {
        long v = strtol(value, &end, 10);
        long lo = strcmp(o->name, "--warmup") ? 1 : 0;
        if (*value == '\0' || *end != '\0' || errno || v < lo || v > 1000000)
            die_usage("%s needs a whole number from %ld to 1000000, got '%s'", o->name, lo, value);
        *(int *)field = (int)v;
        return;
    }
    case OPT_REAL: {
        double v = strtod(value, &end);
        if (*value == '\0' || *end != '\0' || !isfinite(v))
            die_usage("%s needs a finite number, got '%s'", o->name, value);
        *(double *)field = v;
        return;
    }
    case OPT_SEED: {
        unsigned long long v = strtoull(value, &end, 10);
        if (*value == '\0' || *end != '\0' || errno || strchr(value, '-')) /* strtoull takes -1 */
            die_usage("%s needs a whole number >= 0, got '%s'", o->name, value);
        *(uint64_t *)field = v;
        return;
    }
    }
}

static void parse_args(int argc, char **argv, args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            die_usage("unexpected argument '%s' (see --help)", arg);
        const char *eq = strchr(arg, '=');
        const bench_option *o = find_option(arg, eq ? (size_t)(eq - arg) : strlen(arg));
        if (o->kind == OPT_FLAG) {
            if (eq)
                die_usage("%s takes no value", o->name);
            set_option(a, o, NULL);
            continue;
        }
        if (!eq && i + 1 >= argc)
            die_usage("%s needs a value", o->name);
        set_option(a, o, eq ? eq + 1 : argv[++i]);
    }
    /* the peer's softmax(x / tau) is the library's beta = 1 / tau, held fixed */
    if (!(a->tau >= 1e-6 && a->tau <= 1e3))
        die_usage("--tau must be in [1e-6, 1e3] (beta = 1 / tau in [1e-3, 1e6])");
    if (strcmp(a->gan_feed, "hard") && strcmp(a->gan_feed, "soft"))
        die_usage("--gan-feed is hard or soft");
    a->soft_feed = !strcmp(a->gan_feed, "soft");
}

int main(int argc, char **argv)
{
    args a = {.corpus = "data/tinyshakespeare.txt", .threads = 2, .reps = 5, .warmup = 3,
              .mle_steps = 10, .gan_steps = 3, .batch = 32, .seq = 64, .sample_batch = 32,
              .sample_len = 256, .sample1_len = 2048, .budget = 60.0, .lr = 2e-3, .gan_lr = 1e-4,
              .seed = 1234, .tau = 1.0, .gan_feed = "hard"};
    parse_args(argc, argv, &a);
    const struct section *only = a.only ? find_section(a.only) : NULL;
    if (a.only && !only)
        die_usage("--only takes mle, gumbel or reinforce");
    if (a.quick) {
        a.reps = 3, a.warmup = 1, a.mle_steps = 1, a.gan_steps = 1, a.sample_len = 32;
        a.sample1_len = 256, a.budget = 2.0;
    }
    if (a.reps > MAX_REPS)
        die_usage("--reps is at most %d", MAX_REPS);
    if (openblas_set_num_threads)
        openblas_set_num_threads(a.threads);

    size_t len;
    char *text = read_file(a.corpus, &len);
    setup s = {.a = &a, .text = text, .len = len};
    CHECK(chargan_tokenizer_new(NULL, &s.tok));
    CHECK(chargan_tokenizer_fit(s.tok, text, len));
    CHECK(chargan_tokenizer_vocab_size(s.tok, &s.vocab));
    fprintf(stderr, "libchargan %s threads=%d vocab=%u (%u characters + %d reserved ids) chars=%zu "
                    "quick=%d\n", chargan_version(), a.threads, s.vocab,
            s.vocab - CHARGAN_NUM_RESERVED_IDS, CHARGAN_NUM_RESERVED_IDS, len, a.quick);
    if (a.curve || only) { /* the modes that run one thing instead of the comparison */
        if (a.curve)
            run_curve(&s);
        else
            run_only(&s, only);
        free(s.val_ids);
        chargan_tokenizer_free(s.tok);
        free(text);
        return 0;
    }
    double chars_per_step = (double)a.batch * a.seq;
    report_rss("loading the corpus");

    /* (a) MLE */
    chargan_trainer *t64 = new_trainer(&s, 64, 256, CHARGAN_GAN_NONE);
    report_rss("creating a trainer");
    double spc64;
    double mle64 = timed(&a, mle_call, t64, chars_per_step, a.mle_steps, &spc64);
    fprintf(stderr, "[mle E=64 H=256] %.0f chars/s (%.1f ms/step)\n", mle64, spc64 * 1e3);
    report_rss("MLE E=64 H=256");
    chargan_trainer *t128 = new_trainer(&s, 128, 128, CHARGAN_GAN_NONE);
    double spc128;
    double mle128 = timed(&a, mle_call, t128, chars_per_step, a.mle_steps, &spc128);
    fprintf(stderr, "[mle E=128 H=128] %.0f chars/s (%.1f ms/step)\n", mle128, spc128 * 1e3);
    report_rss("MLE E=128 H=128");
    /* FLOPs per character of a 1-layer LSTM LM, forward + backward */
    double H = 256, E = 64, V = s.vocab;
    double flops_per_char = 24 * H * H + 16 * E * H + 6 * H * V;
    double gflops = mle64 * flops_per_char / 1e9;

    /* (b) sampling, from the E=64 H=256 generator */
    chargan_model *g64 = chargan_trainer_generator(t64);
    double samp = sample_rate(&a, g64, a.sample_batch, a.sample_len);
    fprintf(stderr, "[sample %dx%d] %.0f chars/s\n", a.sample_batch, a.sample_len, samp);
    double samp128 = sample_rate(&a, chargan_trainer_generator(t128), a.sample_batch, a.sample_len);
    fprintf(stderr, "[sample E=128 H=128] %.0f chars/s\n", samp128);
    args one_stream = a;
    one_stream.warmup = 1; /* the peer's one-stream section warms up once, whatever --warmup */
    double samp1 = sample_rate(&one_stream, g64, 1, a.sample1_len);
    fprintf(stderr, "[sample 1x%d] %.0f chars/s\n", a.sample1_len, samp1);
    report_rss("sampling");
    chargan_trainer_free(t128);
    chargan_trainer_free(t64);

    /* (c) adversarial steps */
    chargan_trainer *tg = new_trainer(&s, 64, 256, CHARGAN_GAN_GUMBEL);
    double gan_spc;
    double gan = timed(&a, gan_call, tg, 1.0, a.gan_steps, &gan_spc);
    fprintf(stderr, "[gan gumbel E=64 H=256 feed=%s tau=%g] %.3f steps/s (%.1f ms/step)\n",
            a.soft_feed ? "soft" : "hard", a.tau, gan, gan_spc * 1e3);
    report_rss("Gumbel steps");
    chargan_trainer_free(tg);
    chargan_trainer *trf = new_trainer(&s, 64, 256, CHARGAN_GAN_REINFORCE);
    double rf_spc;
    double rf = timed(&a, gan_call, trf, 1.0, a.gan_steps, &rf_spc);
    fprintf(stderr, "[reinforce E=64 H=256] %.3f steps/s (%.1f ms/step)\n", rf, rf_spc * 1e3);
    report_rss("REINFORCE steps");
    chargan_trainer_free(trf);
    double rss = peak_rss_mb();
    /* sgemm's rate, after the peak memory is read (its 1024^3 matrices and
     * OpenBLAS's buffers are the benchmark's, not the library's), with the
     * benchmark's thread count (trainers that shard the batch set OpenBLAS
     * to one thread). */
    if (openblas_set_num_threads)
        openblas_set_num_threads(a.threads);
    double sgemm_step = sgemm_gflops(a.batch * a.seq, 1024, 256);
    double sgemm_big = sgemm_gflops(1024, 1024, 1024);
    fprintf(stderr, "[flops] training %.1f GFLOP/s; sgemm %d threads: %.1f GFLOP/s at %dx1024x256, "
                    "%.1f at 1024^3\n", gflops, a.threads, sgemm_step, a.batch * a.seq, sgemm_big);
    report_rss("sgemm");

    /* (d) held-out bits/char after a fixed budget (held_out_bpc) */
    double val_bpc = NAN, val_bpc_win = NAN;
    long budget_steps = 0;
    if (!a.no_budget) {
        chargan_trainer *tb = new_trainer(&s, 64, 256, CHARGAN_GAN_NONE);
        double t0 = now_s();
        while (now_s() - t0 < a.budget) {
            CHECK(chargan_trainer_mle_step(tb, NULL));
            budget_steps++;
        }
        val_bpc = held_out_bpc(&s, tb);
        double nll, bpc_w;
        CHECK(chargan_trainer_evaluate(tb, &nll, &bpc_w));
        val_bpc_win = bpc_w;
        fprintf(stderr, "[budget %.0fs] steps=%ld val_bpc(stateful)=%.4f val_bpc(win%d)=%.4f\n",
                a.budget, budget_steps, val_bpc, a.seq, val_bpc_win);
        chargan_trainer_free(tb);
    }

    printf("{\"mle_cps_E64_H256\": %.1f, \"mle_ms_per_step_E64_H256\": %.3f, "
           "\"mle_cps_E128_H128\": %.1f, \"mle_ms_per_step_E128_H128\": %.3f, "
           "\"train_gflops_E64_H256\": %.2f, \"sgemm_gflops_step_shape\": %.2f, "
           "\"sgemm_gflops_1024\": %.2f, \"sample_cps\": %.1f, \"sample_cps_E128_H128\": %.1f, "
           "\"sample1_cps\": %.1f, \"gan_steps_per_s\": %.4f, \"gan_ms_per_step\": %.3f, "
           "\"reinforce_steps_per_s\": %.4f, \"reinforce_ms_per_step\": %.3f, "
           "\"peak_rss_mb\": %.1f, ",
           mle64, spc64 * 1e3, mle128, spc128 * 1e3, gflops, sgemm_step, sgemm_big, samp, samp128,
           samp1, gan, gan_spc * 1e3, rf, rf_spc * 1e3, rss);
    if (!a.no_budget) /* like the peer, no budget figures when none was run */
        printf("\"val_bpc_60s\": %.4f, \"val_bpc_60s_win64\": %.4f, \"budget_steps\": %ld, "
               "\"budget_s\": %.1f, ", val_bpc, val_bpc_win, budget_steps, a.budget);
    printf("\"threads\": %d, \"vocab\": %u, \"batch\": %d, \"seq\": %d, \"sample_batch\": %d, "
           "\"sample_len\": %d, \"sample1_len\": %d, \"forget_bias\": %g, \"output_bias\": \"%s\", "
           "\"tau\": %g, \"gan_feed\": \"%s\", \"version\": \"%s\", \"quick\": %s}\n",
           a.threads, s.vocab, a.batch, a.seq, a.sample_batch, a.sample_len, a.sample1_len,
           a.forget_bias, a.plain_output_bias ? "plain" : "unigram", a.tau,
           a.soft_feed ? "soft" : "hard", chargan_version(), a.quick ? "true" : "false");
    free(s.val_ids);
    chargan_tokenizer_free(s.tok);
    free(text);
    return 0;
}
