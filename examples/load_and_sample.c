/* load_and_sample.c - load a generator from a model file or a training
 * checkpoint and continue a prime.
 *
 * Usage: load_and_sample MODEL [PRIME [LENGTH [TEMPERATURE [SEED]]]]
 * Build: cc load_and_sample.c $(pkg-config --cflags --libs chargan) */
#include <chargan.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, chargan_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, chargan_strerror(st), chargan_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [PRIME [LENGTH [TEMPERATURE [SEED]]]]\n", argv[0]);
        return 2;
    }
    const char *prime = argc > 2 ? argv[2] : NULL;

    /* Both chargan_model_save() and chargan_trainer_save() files hold a
     * generator; the tokenizer travels inside. */
    chargan_model *gen;
    chargan_status st = chargan_model_load(argv[1], CHARGAN_GENERATOR, &gen);
    if (st != CHARGAN_OK)
        return fail(argv[1], st);

    chargan_model_config mc = {.struct_size = sizeof mc};
    size_t weights = 0;
    if ((st = chargan_model_get_config(gen, &mc)) != CHARGAN_OK ||
        (st = chargan_model_num_weights(gen, &weights)) != CHARGAN_OK) {
        chargan_model_free(gen);
        return fail("model info", st);
    }
    fprintf(stderr, "%s: vocabulary %u, %u x %u-unit LSTM, %zu weights\n", argv[1],
            mc.vocab_size, mc.num_layers, mc.hidden_dim, weights);

    chargan_sample_options so;
    chargan_sample_options_init(&so);
    so.length = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 300;
    so.temperature = argc > 4 ? strtof(argv[4], NULL) : 0.8f;
    so.seed = argc > 5 ? strtoull(argv[5], NULL, 10) : 1;
    so.top_p = 0.95f; /* drop the unlikely tail */

    char *text;
    st = chargan_model_sample_text(gen, &so, prime, &text);
    if (st != CHARGAN_OK) {
        /* The model's own message names the field (e.g. a bad temperature). */
        fprintf(stderr, "sampling: %s: %s\n", chargan_strerror(st), chargan_model_last_error(gen));
        chargan_model_free(gen);
        return 1;
    }
    puts(text);
    chargan_free(text);
    chargan_model_free(gen);
    return 0;
}
