/* fuzz_model_load.c - chargan_model_load() of both kinds on an arbitrary
 * file (checksums repaired, so mutations reach the model and tokenizer
 * sections).  A model it accepts must answer queries about itself, and a
 * generator must sample ids inside its vocabulary, score them with a finite
 * NLL and, with a tokenizer attached, sample text. */
#include "fuzz_common.h"

#include "chargan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void exercise(chargan_model *m, chargan_model_kind kind)
{
    chargan_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.struct_size = sizeof cfg;
    FZ_CHECK(chargan_model_get_config(m, &cfg) == CHARGAN_OK && cfg.kind == (int32_t)kind,
             "get_config of a loaded model");
    size_t n_params = 0, n_weights = 0, total = 0;
    FZ_CHECK(chargan_model_num_params(m, &n_params) == CHARGAN_OK, "num_params");
    FZ_CHECK(chargan_model_num_weights(m, &n_weights) == CHARGAN_OK, "num_weights");
    for (size_t i = 0; i < n_params; i++) {
        const char *name = NULL;
        uint32_t rank = 0;
        size_t shape[2] = {0, 0}, numel = 0, back = 0;
        FZ_CHECK(chargan_model_param_info(m, i, &name, &rank, shape, &numel) == CHARGAN_OK,
                 "param_info(%zu)", i);
        FZ_CHECK(chargan_model_param_find(m, name, &back) == CHARGAN_OK && back == i,
                 "param_find('%s')", name);
        float *v = malloc((numel ? numel : 1) * sizeof *v);
        FZ_CHECK(v != NULL, "out of memory");
        FZ_CHECK(chargan_model_param_get(m, i, v, numel) == CHARGAN_OK, "param_get(%zu)", i);
        for (size_t k = 0; k < numel; k++)
            FZ_CHECK(isfinite(v[k]), "a loaded parameter is not finite");
        free(v);
        total += numel;
    }
    FZ_CHECK(total == n_weights, "tensors hold %zu weights, num_weights says %zu", total,
             n_weights);
    if (kind != CHARGAN_GENERATOR)
        return;

    enum { STREAMS = 2, LENGTH = 6 };
    chargan_sample_options so;
    chargan_sample_options_init(&so);
    so.n_streams = STREAMS;
    so.length = LENGTH;
    so.seed = 3;
    int32_t ids[STREAMS * LENGTH];
    int32_t prime[2] = {CHARGAN_ID_UNKNOWN, (int32_t)cfg.vocab_size - 1};
    chargan_status st = chargan_model_sample_ids(m, &so, prime, 2, ids, STREAMS * LENGTH);
    if (cfg.vocab_size <= CHARGAN_NUM_RESERVED_IDS) {
        /* nothing but reserved ids, which sampling leaves out: an error */
        FZ_CHECK(st != CHARGAN_OK, "sampled from a vocabulary of reserved ids only");
        return;
    }
    /* parameters large enough to overflow the activations leave nothing to
     * draw from, and say so */
    FZ_CHECK(st == CHARGAN_OK || st == CHARGAN_E_NUMERIC, "sample_ids: %d (%s)", (int)st,
             chargan_model_last_error(m));
    if (st == CHARGAN_OK) {
        for (size_t i = 0; i < STREAMS * LENGTH; i++)
            FZ_CHECK(ids[i] >= CHARGAN_NUM_RESERVED_IDS && (uint32_t)ids[i] < cfg.vocab_size,
                     "sampled id %d, vocabulary %u", ids[i], cfg.vocab_size);
        double nll = 0;
        st = chargan_model_nll(m, ids, STREAMS, LENGTH, &nll);
        /* finite, or said to be not: parameters can be large enough to overflow */
        FZ_CHECK((st == CHARGAN_OK && isfinite(nll) && nll >= 0) || st == CHARGAN_E_NUMERIC,
                 "nll: %d, %g", (int)st, nll);
    }
    if (chargan_model_tokenizer(m)) {
        char *text = NULL;
        st = chargan_model_sample_text(m, &so, "a\xc3\xa9", &text);
        /* The prime may hold characters the vocabulary cannot take
         * (strict, or ids past the model's): those are errors, not crashes. */
        FZ_CHECK(st == CHARGAN_OK || st == CHARGAN_E_UTF8 || st == CHARGAN_E_RANGE ||
                     st == CHARGAN_E_NUMERIC,
                 "sample_text: %d (%s)", (int)st, chargan_model_last_error(m));
        if (st == CHARGAN_OK)
            FZ_CHECK(text != NULL, "sample_text gave no text");
        chargan_free(text);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *fixed = fz_fix_checkpoint(data, size);
    const char *path = fixed ? fz_scratch_file(fixed, size) : NULL;
    free(fixed);
    if (!path)
        return 0;
    for (int kind = CHARGAN_GENERATOR; kind <= CHARGAN_DISCRIMINATOR; kind++) {
        chargan_model *m = NULL;
        chargan_status st = chargan_model_load(path, (chargan_model_kind)kind, &m);
        if (st == CHARGAN_OK) {
            exercise(m, (chargan_model_kind)kind);
            chargan_model_free(m);
            continue;
        }
        FZ_CHECK(st == CHARGAN_E_FORMAT || st == CHARGAN_E_UNSUPPORTED ||
                     st == CHARGAN_E_NOT_FOUND || st == CHARGAN_E_NOMEM,
                 "model_load returned %d (%s)", (int)st, chargan_last_error());
        FZ_CHECK(m == NULL, "a failed load wrote *out");
        FZ_CHECK(chargan_last_error()[0] != '\0', "a failed load left no message");
    }
    return 0;
}
