/* mle_curve - held-out bits/char after given numbers of MLE steps, for
 * comparing how fast libchargan and the PyTorch peer learn per step
 * (bench/peer_curve.py is the peer's side; scripts/curve.sh runs both).
 *
 * The model and training are the benchmark's 60 s budget run (E=64, H=256,
 * B=32, T=64, Adam lr 2e-3, random windows of the first 90%), evaluated
 * as it is: the last 10% as 32 contiguous streams, the state carried.
 * Per-step curves that agree say the 60 s figure measures speed alone.
 * The training time (evaluations excluded) is printed too.
 *
 * usage: mle_curve [--corpus FILE] [--threads N] [--seed N] [--lr LR]
 *                  [--forget-bias B] [--steps N,N,...]
 * One line per mark: "step N train_s S val_bpc X". */
#define _POSIX_C_SOURCE 200809L
#include <chargan.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_MARKS 32

#define CHECK(call)                                                                                \
    do {                                                                                           \
        chargan_status st_ = (call);                                                               \
        if (st_ != CHARGAN_OK) {                                                                   \
            fprintf(stderr, "mle_curve: %s failed: %s\n", #call, chargan_strerror(st_));           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    long len = -1;
    if (f && fseek(f, 0, SEEK_END) == 0)
        len = ftell(f);
    char *buf = len > 0 ? malloc((size_t)len) : NULL;
    if (!buf || fseek(f, 0, SEEK_SET) != 0 || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "mle_curve: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* "250,500,1000" -> ascending step counts; returns how many, 0 if malformed. */
static int parse_marks(const char *s, long *marks)
{
    int n = 0;
    while (*s && n < MAX_MARKS) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || (n > 0 && v <= marks[n - 1]) || (*end && *end != ','))
            return 0;
        marks[n++] = v;
        s = *end ? end + 1 : end;
    }
    return *s ? 0 : n;
}

int main(int argc, char **argv)
{
    const char *corpus = "data/tinyshakespeare.txt";
    int threads = 2;
    uint64_t seed = 1234;
    double lr = 2e-3, forget_bias = 0.0;
    long marks[MAX_MARKS];
    int n_marks = parse_marks("250,500,1000,1500,2000,3000", marks);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(o, "--corpus"))
            corpus = v;
        else if (v && !strcmp(o, "--threads"))
            threads = atoi(v);
        else if (v && !strcmp(o, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (v && !strcmp(o, "--lr"))
            lr = atof(v);
        else if (v && !strcmp(o, "--forget-bias"))
            forget_bias = atof(v);
        else if (v && !strcmp(o, "--steps"))
            n_marks = parse_marks(v, marks);
        else {
            fprintf(stderr, "usage: mle_curve [--corpus FILE] [--threads N] [--seed N] [--lr LR]\n"
                            "                 [--forget-bias B] [--steps N,N,...]\n");
            return 2;
        }
        i++;
        if (n_marks == 0 || threads < 1) {
            fprintf(stderr, "mle_curve: bad %s %s\n", o, v);
            return 2;
        }
    }

    size_t len;
    char *text = read_file(corpus, &len);
    chargan_tokenizer *tok;
    uint32_t vocab;
    CHECK(chargan_tokenizer_new(NULL, &tok));
    CHECK(chargan_tokenizer_fit(tok, text, len));
    CHECK(chargan_tokenizer_vocab_size(tok, &vocab));

    chargan_model_config mc;
    CHECK(chargan_model_config_init(&mc, CHARGAN_GENERATOR));
    mc.vocab_size = vocab;
    mc.embed_dim = 64;
    mc.hidden_dim = 256;
    mc.forget_bias = (float)forget_bias;
    mc.seed = seed;
    chargan_model *g;
    CHECK(chargan_model_new(&mc, &g));
    CHECK(chargan_model_set_tokenizer(g, tok));
    chargan_optimizer_config oc;
    CHECK(chargan_optimizer_config_init(&oc, CHARGAN_ADAM));
    oc.lr = (float)lr;
    chargan_optimizer *opt;
    CHECK(chargan_optimizer_new(&oc, &opt));
    chargan_trainer_config tc;
    CHECK(chargan_trainer_config_init(&tc));
    tc.batch = 32;
    tc.seq_len = 64;
    tc.threads = (uint32_t)threads;
    tc.seed = seed;
    chargan_trainer *tr;
    CHECK(chargan_trainer_new(&tc, g, opt, NULL, NULL, &tr));
    CHECK(chargan_trainer_set_corpus_text(tr, text, len));

    /* the held-out ids as the benchmark takes them: the last 10% */
    int32_t *ids = malloc(len * sizeof *ids);
    size_t n_ids;
    if (!ids) {
        fprintf(stderr, "mle_curve: out of memory\n");
        return 1;
    }
    CHECK(chargan_tokenizer_encode(tok, text, len, ids, len, &n_ids));
    size_t n_train = (size_t)((double)n_ids * 0.9);

    printf("# libchargan %s threads=%d seed=%llu lr=%g forget_bias=%g\n", chargan_version(),
           threads, (unsigned long long)seed, lr, forget_bias);
    long step = 0;
    double train_s = 0.0;
    for (int k = 0; k < n_marks; k++) {
        double t0 = now_s();
        for (; step < marks[k]; step++)
            CHECK(chargan_trainer_mle_step(tr, NULL));
        train_s += now_s() - t0;
        double nll;
        CHECK(chargan_model_stream_nll(chargan_trainer_generator(tr), ids + n_train,
                                       n_ids - n_train, 32, &nll));
        printf("step %ld train_s %.1f val_bpc %.4f\n", step, train_s, nll / log(2.0));
        fflush(stdout);
    }
    free(ids);
    chargan_trainer_free(tr);
    chargan_tokenizer_free(tok);
    free(text);
    return 0;
}
