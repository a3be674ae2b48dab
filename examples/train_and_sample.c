/* train_and_sample.c - from a corpus file to printed samples, in the fewest
 * lines: fit a tokenizer, build a generator, train it by maximum likelihood
 * for a few steps, print samples.
 *
 * Usage: train_and_sample CORPUS [STEPS [HIDDEN]]
 * Build: cc train_and_sample.c $(pkg-config --cflags --libs chargan) */
#include <chargan.h>
#include <stdio.h>
#include <stdlib.h>

/* Every call returns a status; on failure the thread's last error says why.
 * An example may exit without freeing: the process ends anyway. */
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

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS [STEPS [HIDDEN]]\n", argv[0]);
        return 2;
    }
    uint64_t steps = argc > 2 ? strtoull(argv[2], NULL, 10) : 300;
    size_t len;
    char *text = read_file(argv[1], &len);

    /* The vocabulary decides the model's input and output size. */
    chargan_tokenizer *tok;
    CHECK(chargan_tokenizer_new(NULL, &tok));
    CHECK(chargan_tokenizer_fit(tok, text, len));

    chargan_model_config mc;
    CHECK(chargan_model_config_init(&mc, CHARGAN_GENERATOR));
    CHECK(chargan_tokenizer_vocab_size(tok, &mc.vocab_size));
    mc.hidden_dim = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 128;
    chargan_model *gen;
    CHECK(chargan_model_new(&mc, &gen));
    CHECK(chargan_model_set_tokenizer(gen, tok)); /* the model keeps its own copy */
    chargan_tokenizer_free(tok);

    chargan_trainer_config tc;
    CHECK(chargan_trainer_config_init(&tc));
    tc.batch = 16;
    tc.seq_len = 32;
    chargan_trainer *tr;
    CHECK(chargan_trainer_new(&tc, gen, NULL, NULL, NULL, &tr)); /* now owns gen */
    CHECK(chargan_trainer_set_corpus_text(tr, text, len));
    CHECK(chargan_trainer_init_output_bias(tr)); /* start from the corpus's unigram distribution */
    CHECK(chargan_trainer_pretrain_generator(tr, steps));

    chargan_sample_options so;
    CHECK(chargan_sample_options_init(&so));
    so.n_streams = 2;
    so.length = 200;
    so.temperature = 0.8f;
    char *samples;
    CHECK(chargan_model_sample_text(gen, &so, NULL, &samples));
    puts(samples);

    chargan_free(samples);
    chargan_trainer_free(tr); /* frees gen too */
    free(text);
    return 0;
}
