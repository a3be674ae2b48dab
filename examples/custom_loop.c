/* custom_loop.c - a training loop of your own through the step API: one
 * chargan_trainer_mle_step() at a time, a learning-rate schedule, a log line
 * every few steps, validation and a checkpoint every few more, and resuming
 * from that checkpoint when it exists.
 *
 * Usage: custom_loop CORPUS CHECKPOINT [STEPS [SAVE_EVERY [LOG_EVERY]]]
 * Run it twice with a larger STEPS the second time: it picks up where the
 * checkpoint left off and continues exactly as one long run would (the
 * checkpoint holds the optimizer and RNG states; the schedule depends on the
 * step alone), unless a step failed numerically: then it went back to the
 * checkpoint at half the rate, which a later run does not know.
 * Build: cc custom_loop.c $(pkg-config --cflags --libs chargan) -lm  (it calls pow and log) */
#include <chargan.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BASE_LR 3e-3f
#define LR_HALF_LIFE 200.0 /* steps */
#define MAX_BACKOFFS 5

#define CHECK(call)                                                                  \
    do {                                                                             \
        chargan_status st_ = (call);                                                 \
        if (st_ != CHARGAN_OK) {                                                     \
            fprintf(stderr, "%s: %s\n", chargan_strerror(st_), chargan_last_error()); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
        perror(path);
        exit(1);
    }
    fclose(f);
    *len = (size_t)size;
    return text;
}

static double now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A fresh trainer: tokenizer fitted on the corpus, a small generator. */
static chargan_trainer *new_trainer(const char *text, size_t len)
{
    chargan_tokenizer *tok;
    CHECK(chargan_tokenizer_new(NULL, &tok));
    CHECK(chargan_tokenizer_fit(tok, text, len));
    chargan_model_config mc;
    CHECK(chargan_model_config_init(&mc, CHARGAN_GENERATOR));
    CHECK(chargan_tokenizer_vocab_size(tok, &mc.vocab_size));
    mc.embed_dim = 32;
    mc.hidden_dim = 96;
    chargan_model *gen;
    CHECK(chargan_model_new(&mc, &gen));
    CHECK(chargan_model_set_tokenizer(gen, tok));
    chargan_tokenizer_free(tok);

    chargan_optimizer_config oc;
    CHECK(chargan_optimizer_config_init(&oc, CHARGAN_ADAM));
    oc.lr = BASE_LR;
    oc.clip_norm = 5.0f;
    chargan_optimizer *opt;
    CHECK(chargan_optimizer_new(&oc, &opt));

    chargan_trainer_config tc;
    CHECK(chargan_trainer_config_init(&tc));
    tc.batch = 16;
    tc.seq_len = 48;
    tc.seed = 7;
    chargan_trainer *tr;
    CHECK(chargan_trainer_new(&tc, gen, opt, NULL, NULL, &tr)); /* adopts gen and opt */
    return tr;
}

/* Exponential decay, halving every LR_HALF_LIFE steps.  A function of the
 * step alone, so a resumed run follows the same schedule. */
static float schedule(uint64_t step)
{
    return BASE_LR * (float)pow(0.5, (double)step / LR_HALF_LIFE);
}

/* The trainer to go on with: the checkpoint's when there is one (*resumed),
 * else a fresh one; with the corpus set (a checkpoint holds none: the same
 * text gives the same split). */
static chargan_trainer *open_trainer(const char *ckpt, const char *text, size_t len,
                                     bool *resumed)
{
    chargan_trainer *tr;
    FILE *existing = fopen(ckpt, "rb");
    *resumed = existing != NULL; /* the pointer is not read after fclose */
    if (*resumed) {
        fclose(existing);
        CHECK(chargan_trainer_load(ckpt, &tr));
    } else {
        tr = new_trainer(text, len);
    }
    CHECK(chargan_trainer_set_corpus_text(tr, text, len));
    if (!*resumed) /* a fresh generator starts from the corpus's unigram distribution */
        CHECK(chargan_trainer_init_output_bias(tr));
    return tr;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CORPUS CHECKPOINT [STEPS [SAVE_EVERY [LOG_EVERY]]]\n", argv[0]);
        return 2;
    }
    const char *ckpt = argv[2];
    uint64_t steps = argc > 3 ? strtoull(argv[3], NULL, 10) : 500;
    uint64_t save_every = argc > 4 ? strtoull(argv[4], NULL, 10) : 100;
    uint64_t log_every = argc > 5 ? strtoull(argv[5], NULL, 10) : 10;
    if (steps == 0 || save_every == 0 || log_every == 0) {
        fprintf(stderr, "STEPS, SAVE_EVERY and LOG_EVERY must be positive\n");
        return 2;
    }
    size_t len;
    char *text = read_file(argv[1], &len);

    bool resumed;
    chargan_trainer *tr = open_trainer(ckpt, text, len, &resumed);
    chargan_trainer_config tc = {.struct_size = sizeof tc};
    CHECK(chargan_trainer_get_config(tr, &tc));
    uint64_t step;
    CHECK(chargan_trainer_global_step(tr, &step));
    if (resumed)
        printf("resumed from %s at step %llu\n", ckpt, (unsigned long long)step);

    double loss_sum = 0, t0 = now();
    uint64_t logged = 0;
    float lr_scale = 1.0f;
    int backoffs = 0;
    while (step < steps) {
        chargan_optimizer *opt = chargan_trainer_optimizer(tr, CHARGAN_GENERATOR);
        CHECK(chargan_optimizer_set_lr(opt, lr_scale * schedule(step)));
        float loss;
        chargan_status st = chargan_trainer_mle_step(tr, &loss);
        if (st == CHARGAN_E_NUMERIC && backoffs < MAX_BACKOFFS) {
            /* A loss or gradient that is not finite updated nothing, but an
             * update that overflowed left parameters that are not: either way,
             * go back to the last checkpoint (or the start) at half the rate.
             * (The halving is this run's: a later resume starts at full rate.) */
            fprintf(stderr, "step %llu: %s\n", (unsigned long long)step + 1,
                    chargan_trainer_last_error(tr));
            chargan_trainer_free(tr);
            tr = open_trainer(ckpt, text, len, &resumed);
            CHECK(chargan_trainer_global_step(tr, &step));
            fprintf(stderr, "going back to %s, step %llu, at half the learning rate\n",
                    resumed ? ckpt : "the start", (unsigned long long)step);
            loss_sum = 0;
            logged = 0;
            lr_scale *= 0.5f;
            backoffs++;
            continue;
        }
        CHECK(st);
        CHECK(chargan_trainer_global_step(tr, &step));
        loss_sum += loss;
        logged++;
        if (step % log_every == 0 || step == steps) {
            double t = now();
            double tokens = (double)logged * tc.batch * tc.seq_len;
            printf("step %5llu  loss %.4f  (%.3f bits/char)  lr %.2e  %.0f chars/s\n",
                   (unsigned long long)step, loss_sum / (double)logged,
                   loss_sum / (double)logged / log(2.0), lr_scale * schedule(step),
                   t > t0 ? tokens / (t - t0) : 0.0);
            fflush(stdout);
            loss_sum = 0;
            logged = 0;
            t0 = t;
        }
        if (step % save_every == 0 || step == steps) {
            double nll, bpc;
            CHECK(chargan_trainer_evaluate(tr, &nll, &bpc));
            CHECK(chargan_trainer_save(tr, ckpt)); /* atomic: a crash keeps the old file */
            printf("step %5llu  validation %.4f nats/char (%.3f bits/char)  saved %s\n",
                   (unsigned long long)step, nll, bpc, ckpt);
            fflush(stdout);
        }
    }
    chargan_trainer_free(tr);
    free(text);
    return 0;
}
