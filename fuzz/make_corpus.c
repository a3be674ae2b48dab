/* make_corpus.c - writes the fuzz targets' seed corpora: tiny models and
 * trainer checkpoints (every estimator), vocabularies, texts and command
 * lines, into DIR/<target>/.  Deterministic (fixed seeds), so running it
 * again rewrites the committed files byte for byte:
 *     build/fuzz/fuzz-make-corpus fuzz/corpus
 */
#define _POSIX_C_SOURCE 200809L
#include "chargan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char text[] =
    "From fairest creatures we desire increase,\n"
    "That thereby beauty's rose might never die,\n"
    "But as the riper should by time decease,\n"
    "His tender heir might bear his memory:\n";

static const char *out_dir;

#define TRY(call)                                                                                  \
    do {                                                                                           \
        chargan_status st_ = (call);                                                               \
        if (st_ != CHARGAN_OK) {                                                                   \
            fprintf(stderr, "make_corpus: %s: %s: %s\n", #call, chargan_strerror(st_),             \
                    chargan_last_error());                                                         \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static const char *path_of(const char *target, const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    return path;
}

static void write_file(const char *target, const char *name, const void *data, size_t size)
{
    const char *path = path_of(target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "make_corpus: cannot write %s\n", path);
        exit(1);
    }
}

static chargan_tokenizer *fitted(int lowercase, uint32_t max_vocab, const char *t)
{
    chargan_tokenizer_options o;
    chargan_tokenizer_options_init(&o);
    o.lowercase = lowercase;
    o.max_vocab = max_vocab;
    chargan_tokenizer *tok;
    TRY(chargan_tokenizer_new(&o, &tok));
    TRY(chargan_tokenizer_fit(tok, t, strlen(t)));
    return tok;
}

static chargan_model *tiny_model(chargan_model_kind kind, uint32_t vocab, uint32_t layers,
                                 uint32_t noise)
{
    chargan_model_config c;
    chargan_model_config_init(&c, kind);
    c.vocab_size = vocab;
    c.embed_dim = 3;
    c.hidden_dim = 4;
    c.num_layers = layers;
    c.noise_dim = kind == CHARGAN_GENERATOR ? noise : 0;
    c.seed = 11;
    chargan_model *m;
    TRY(chargan_model_new(&c, &m));
    return m;
}

static void models(void)
{
    chargan_tokenizer *tok = fitted(1, 12, text);
    uint32_t V;
    TRY(chargan_tokenizer_vocab_size(tok, &V));
    chargan_model *g = tiny_model(CHARGAN_GENERATOR, V, 1, 2);
    TRY(chargan_model_set_tokenizer(g, tok));
    TRY(chargan_model_save(g, path_of("model_load", "generator-tokenizer.chargan")));
    chargan_model_free(g);
    g = tiny_model(CHARGAN_GENERATOR, 5, 2, 0);
    TRY(chargan_model_save(g, path_of("model_load", "generator-2layers.chargan")));
    chargan_model_free(g);
    chargan_model *d = tiny_model(CHARGAN_DISCRIMINATOR, V, 1, 0);
    TRY(chargan_model_save(d, path_of("model_load", "discriminator.chargan")));
    chargan_model_free(d);
    chargan_tokenizer_free(tok);
}

static void trainer(const char *name, int estimator, uint32_t rollouts, uint32_t threads)
{
    chargan_tokenizer *tok = fitted(0, 10, text);
    uint32_t V;
    TRY(chargan_tokenizer_vocab_size(tok, &V));
    chargan_model *g = tiny_model(CHARGAN_GENERATOR, V, 1, 2);
    TRY(chargan_model_set_tokenizer(g, tok));
    chargan_tokenizer_free(tok);
    chargan_model *d = estimator != CHARGAN_GAN_NONE ? tiny_model(CHARGAN_DISCRIMINATOR, V, 1, 0)
                                                     : NULL;
    chargan_trainer_config c;
    chargan_trainer_config_init(&c);
    c.batch = 3;
    c.seq_len = 5;
    c.threads = threads;
    c.estimator = estimator;
    c.rollouts = rollouts;
    c.seed = 5;
    if (estimator == CHARGAN_GAN_GUMBEL) {
        c.beta_start = 2.0f; /* with the soft feed: the trainer section's tail is present */
        c.beta_max = 10.0f;
        c.anneal = CHARGAN_ANNEAL_LINEAR;
        c.gan_loss = CHARGAN_LOSS_RELATIVISTIC;
        c.gumbel_feed = CHARGAN_FEED_SOFT;
    }
    chargan_trainer *tr;
    TRY(chargan_trainer_new(&c, g, NULL, d, NULL, &tr));
    TRY(chargan_trainer_set_corpus_text(tr, text, strlen(text)));
    TRY(chargan_trainer_pretrain_generator(tr, 2));
    if (d)
        TRY(chargan_trainer_adversarial(tr, 2));
    TRY(chargan_trainer_save(tr, path_of("trainer_load", name)));
    /* A trainer checkpoint is also a model file. */
    TRY(chargan_trainer_save(tr, path_of("model_load", name)));
    chargan_trainer_free(tr);
}

static void vocabularies(void)
{
    static const struct {
        const char *name;
        int lowercase;
        uint32_t max_vocab;
        const char *text;
    } v[] = {
        {"empty.vocab", 0, 0, ""},
        {"sonnet.vocab", 0, 0, text},
        {"lowercase-capped.vocab", 1, 8, text},
        {"unicode.vocab", 0, 0, "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc3\x89T\xc3\x89"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        chargan_tokenizer *tok = fitted(v[i].lowercase, v[i].max_vocab, v[i].text);
        void *buf;
        size_t size;
        TRY(chargan_tokenizer_save_buffer(tok, &buf, &size));
        write_file("tokenizer_load", v[i].name, buf, size);
        chargan_free(buf);
        chargan_tokenizer_free(tok);
    }
}

static void texts(void)
{
    /* flags byte (bit 0 lowercase, bit 1 fold CRLF, bits 2-3 cap), fit fraction, text */
    static const struct {
        const char *name;
        const char *bytes;
        size_t size;
    } t[] = {
#define T(name, s) {name, s, sizeof s - 1}
        T("ascii", "\x00\xff" "Shall I compare thee to a summer's day?\n"),
        T("half-fitted", "\x00\x80" "Thou art more lovely and more temperate:\n"),
        T("crlf-lowercase", "\x03\xff" "Rough Winds\r\ndo shake\r\rthe DARLING buds\r\n"),
        T("capped", "\x0c\xff" "aaaaabbbbcccdde"),
        T("utf8", "\x00\xff" "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc3\x89T\xc3\x89"),
        T("invalid-utf8", "\x00\xff" "ok \xc3 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf \xff\xfe"),
        T("truncated-tail", "\x00\xff" "caf\xc3\xa9\xe2\x82"),
#undef T
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        write_file("encode", t[i].name, t[i].bytes, t[i].size);
}

static void command_lines(void)
{
    static const struct {
        const char *name;
        const char *bytes;
        size_t size;
    } c[] = {
#define C(name, s) {name, s, sizeof s - 1}
        C("long-options", "--hidden\0" "256\0--steps=1000\0--lr\0" "0.002\0--estimator\0gumbel\0corpus.txt"),
        C("short-options", "-q\0-H64\0-n\0" "5\0-o\0out.chargan\0in.txt"),
        C("end-of-options", "--temperature=0.8\0--\0--not-an-option\0-"),
        C("bad-values", "--hidden\0" "0\0--lr=-1\0--steps=18446744073709551616\0--estimator=x"),
        C("help", "--output\0x\0--help"),
        C("clip-rounds-to-zero", "--clip\0" "1e-50"), /* 0 means off: refused */
        C("clip-zero", "--clip=0\0--clip\0-0"),
#undef C
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        write_file("cli_args", c[i].name, c[i].bytes, c[i].size);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    mkdir(out_dir, 0777);
    models();
    trainer("mle.chargan", CHARGAN_GAN_NONE, 0, 1);
    trainer("mle-threads.chargan", CHARGAN_GAN_NONE, 0, 2);
    trainer("reinforce.chargan", CHARGAN_GAN_REINFORCE, 0, 1);
    trainer("reinforce-rollouts.chargan", CHARGAN_GAN_REINFORCE, 1, 1);
    trainer("gumbel.chargan", CHARGAN_GAN_GUMBEL, 0, 1);
    vocabularies();
    texts();
    command_lines();
    return 0;
}
