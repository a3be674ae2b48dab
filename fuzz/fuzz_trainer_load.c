/* fuzz_trainer_load.c - chargan_trainer_load() on an arbitrary file
 * (checksums repaired).  A trainer it accepts must have a consistent
 * configuration and, when its batch is small enough to be quick, take an
 * MLE step and an adversarial round on a corpus it is given. */
#include "fuzz_common.h"

#include "chargan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 65536

static void exercise(chargan_trainer *tr)
{
    chargan_trainer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.struct_size = sizeof cfg;
    FZ_CHECK(chargan_trainer_get_config(tr, &cfg) == CHARGAN_OK, "get_config");
    chargan_model *gen = chargan_trainer_generator(tr);
    chargan_model *disc = chargan_trainer_discriminator(tr);
    FZ_CHECK(gen != NULL, "a loaded trainer without a generator");
    FZ_CHECK(cfg.estimator == CHARGAN_GAN_NONE || disc != NULL, "a GAN trainer without a "
             "discriminator");
    uint64_t step = 0;
    FZ_CHECK(chargan_trainer_global_step(tr, &step) == CHARGAN_OK, "global_step");
    chargan_model_config gc;
    memset(&gc, 0, sizeof gc);
    gc.struct_size = sizeof gc;
    FZ_CHECK(chargan_model_get_config(gen, &gc) == CHARGAN_OK, "generator config");
    size_t weights = 0;
    chargan_model_num_weights(gen, &weights);
    /* Training steps only where they are quick. */
    if ((uint64_t)cfg.batch * cfg.seq_len > 64 || weights > 20000 || cfg.rollouts > 2 ||
        cfg.d_steps > 2 || gc.num_layers > 2)
        return;
    size_t n = ((size_t)cfg.seq_len + 1) * cfg.batch * 4 + 64;
    int32_t *ids = malloc(n * sizeof *ids);
    FZ_CHECK(ids != NULL, "out of memory");
    uint32_t V = gc.vocab_size;
    for (size_t i = 0; i < n; i++)
        ids[i] = V > CHARGAN_NUM_RESERVED_IDS
                     ? (int32_t)(CHARGAN_NUM_RESERVED_IDS + (i * 7 + i / 3) % (V - 2))
                     : CHARGAN_ID_UNKNOWN;
    chargan_status st = chargan_trainer_set_corpus_ids(tr, ids, n);
    free(ids);
    FZ_CHECK(st == CHARGAN_OK, "set_corpus_ids: %d (%s)", (int)st, chargan_trainer_last_error(tr));
    float loss = 0;
    st = chargan_trainer_mle_step(tr, &loss);
    FZ_CHECK(st == CHARGAN_OK || st == CHARGAN_E_NUMERIC, "mle_step: %d (%s)", (int)st,
             chargan_trainer_last_error(tr));
    FZ_CHECK(st != CHARGAN_OK || isfinite(loss), "mle_step gave a non-finite loss");
    if (disc && st == CHARGAN_OK) {
        float d_loss = 0, accuracy = 0;
        st = chargan_trainer_d_step(tr, &d_loss, &accuracy);
        FZ_CHECK(st == CHARGAN_OK || st == CHARGAN_E_NUMERIC, "d_step: %d (%s)", (int)st,
                 chargan_trainer_last_error(tr));
    }
    if (cfg.estimator != CHARGAN_GAN_NONE && st == CHARGAN_OK) {
        float g_loss = 0, d_loss = 0;
        st = chargan_trainer_gan_step(tr, &g_loss, &d_loss);
        FZ_CHECK(st == CHARGAN_OK || st == CHARGAN_E_NUMERIC, "gan_step: %d (%s)", (int)st,
                 chargan_trainer_last_error(tr));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *fixed = fz_fix_checkpoint(data, size);
    if (!fixed)
        return 0;
    /* The loader honours the configuration's batch x seq_len (up to 2^24
     * tokens) and sizes the step buffers for it: a 10 KB checkpoint of a
     * tiny model can ask for gigabytes, legitimately, since a trainer made
     * with that configuration needs them too.  Such inputs would only
     * exhaust memory here; the fuzzer skips them (see fuzz/README.md). */
    size_t len = 0;
    const uint8_t *trnr = fz_checkpoint_section(fixed, size, "TRNR", &len);
    if (trnr && len >= 8) {
        uint64_t batch = (uint64_t)trnr[0] | (uint64_t)trnr[1] << 8 | (uint64_t)trnr[2] << 16 |
                         (uint64_t)trnr[3] << 24;
        uint64_t seq = (uint64_t)trnr[4] | (uint64_t)trnr[5] << 8 | (uint64_t)trnr[6] << 16 |
                       (uint64_t)trnr[7] << 24;
        if (batch * seq > MAX_TOKENS) {
            free(fixed);
            return 0;
        }
    }
    const char *path = fz_scratch_file(fixed, size);
    free(fixed);
    if (!path)
        return 0;
    chargan_trainer *tr = NULL;
    chargan_status st = chargan_trainer_load(path, &tr);
    if (st == CHARGAN_OK) {
        exercise(tr);
        chargan_trainer_free(tr);
        return 0;
    }
    FZ_CHECK(st == CHARGAN_E_FORMAT || st == CHARGAN_E_UNSUPPORTED || st == CHARGAN_E_NOT_FOUND ||
                 st == CHARGAN_E_NOMEM,
             "trainer_load returned %d (%s)", (int)st, chargan_last_error());
    FZ_CHECK(tr == NULL, "a failed load wrote *out");
    FZ_CHECK(chargan_last_error()[0] != '\0', "a failed load left no message");
    return 0;
}
