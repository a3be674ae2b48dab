/* fuzz_tokenizer_load.c - chargan_tokenizer_load_buffer() on arbitrary
 * bytes (trailing CRC repaired).  A buffer it accepts must save back to the
 * same bytes (the format is canonical), and the tokenizer must answer every
 * query about its ids consistently. */
#include "fuzz_common.h"

#include "chargan.h"

#include <stdlib.h>
#include <string.h>

static const char sample_text[] = "Shall I compare thee\r\nto a summer's day? \xc3\x89t\xc3\xa9 \xe2\x82\xac";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *fixed = fz_fix_vocabulary(data, size);
    if (!fixed)
        return 0;
    chargan_tokenizer *tok = NULL;
    chargan_status st = chargan_tokenizer_load_buffer(fixed, size, &tok);
    if (st != CHARGAN_OK) {
        FZ_CHECK(st == CHARGAN_E_FORMAT || st == CHARGAN_E_UNSUPPORTED || st == CHARGAN_E_NOMEM,
                 "load_buffer returned %d", (int)st);
        FZ_CHECK(tok == NULL, "failed load wrote *out");
        FZ_CHECK(chargan_last_error()[0] != '\0', "failed load without a message");
        free(fixed);
        return 0;
    }

    /* Canonical: saving gives back exactly the bytes loaded. */
    void *saved = NULL;
    size_t saved_size = 0;
    st = chargan_tokenizer_save_buffer(tok, &saved, &saved_size);
    FZ_CHECK(st == CHARGAN_OK, "save_buffer of a loaded tokenizer: %d", (int)st);
    FZ_CHECK(saved_size == size && memcmp(saved, fixed, size) == 0,
             "a loaded vocabulary saves to different bytes (%zu vs %zu)", saved_size, size);
    chargan_free(saved);

    uint32_t vocab = 0;
    FZ_CHECK(chargan_tokenizer_vocab_size(tok, &vocab) == CHARGAN_OK &&
                 vocab >= CHARGAN_NUM_RESERVED_IDS,
             "vocab_size %u", vocab);
    for (uint32_t id = CHARGAN_NUM_RESERVED_IDS; id < vocab && id < 512; id++) {
        uint32_t cp = 0;
        uint64_t count = 0;
        FZ_CHECK(chargan_tokenizer_id_info(tok, (int32_t)id, &cp, &count) == CHARGAN_OK,
                 "id_info(%u) failed", id);
        FZ_CHECK(count > 0, "id %u has count 0", id);
        int32_t back = -1;
        FZ_CHECK(chargan_tokenizer_lookup(tok, cp, &back) == CHARGAN_OK && back == (int32_t)id,
                 "lookup(U+%04X) gives %d, not %u", cp, back, id);
    }
    uint32_t cp_past = 0;
    FZ_CHECK(chargan_tokenizer_id_info(tok, (int32_t)vocab, &cp_past, NULL) == CHARGAN_E_RANGE,
             "id_info past the vocabulary");

    /* Encode (replacing or refusing bad bytes, as the loaded policy says) and decode. */
    int32_t ids[sizeof sample_text];
    size_t n = 0;
    st = chargan_tokenizer_encode(tok, sample_text, sizeof sample_text - 1, ids,
                                  sizeof sample_text, &n);
    FZ_CHECK(st == CHARGAN_OK, "encoding valid UTF-8: %d", (int)st);
    for (size_t i = 0; i < n; i++)
        FZ_CHECK(ids[i] >= CHARGAN_ID_UNKNOWN && (uint32_t)ids[i] < vocab, "id %d", ids[i]);
    size_t len = 0;
    char out[4 * sizeof sample_text];
    st = chargan_tokenizer_decode(tok, ids, n, out, sizeof out, &len);
    FZ_CHECK(st == CHARGAN_OK && len < sizeof out && out[len] == '\0', "decode: %d", (int)st);

    chargan_tokenizer_free(tok);
    free(fixed);
    return 0;
}
