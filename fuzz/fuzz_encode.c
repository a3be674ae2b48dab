/* fuzz_encode.c - fitting and encoding arbitrary bytes under both
 * invalid-UTF-8 policies.  Input: a flags byte (lowercase, CRLF folding,
 * vocabulary cap), a byte choosing how much of the text to fit on, then the
 * text.  Checks the documented contract: at most one id per byte, ids in
 * the vocabulary and never the start id, the size query and a too-small
 * buffer, decoding what was encoded, strict and replace agreeing on valid
 * text, and decode(encode(text)) == text when nothing folds or caps. */
#include "fuzz_common.h"

#include "chargan.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t caps[4] = {0, 3, 8, 40};

/* Encodes text with a tokenizer of the given policy: the status, and the ids
 * in a malloc'd array of exactly the needed size. */
static chargan_status encode(chargan_tokenizer *tok, const char *text, size_t len, int32_t **out,
                             size_t *n_out)
{
    size_t need = 0;
    chargan_status st = chargan_tokenizer_encode(tok, text, len, NULL, 0, &need);
    if (st != CHARGAN_OK)
        return st;
    FZ_CHECK(need <= len, "%zu ids for %zu bytes", need, len);
    int32_t *ids = malloc((need ? need : 1) * sizeof *ids);
    FZ_CHECK(ids != NULL, "out of memory");
    size_t n = 0;
    st = chargan_tokenizer_encode(tok, text, len, ids, need, &n);
    FZ_CHECK(st == CHARGAN_OK && n == need, "encode into exactly %zu: status %d, %zu ids", need,
             (int)st, n);
    if (need > 0) {
        size_t n_small = 0;
        st = chargan_tokenizer_encode(tok, text, len, ids, need - 1, &n_small);
        FZ_CHECK(st == CHARGAN_E_RANGE && n_small == need,
                 "encode into %zu of %zu: status %d, count %zu", need - 1, need, (int)st, n_small);
        /* ids may hold anything now: encode again */
        st = chargan_tokenizer_encode(tok, text, len, ids, need, &n);
        FZ_CHECK(st == CHARGAN_OK && n == need, "second encode");
    }
    *out = ids;
    *n_out = n;
    return CHARGAN_OK;
}

static char *decode(chargan_tokenizer *tok, const int32_t *ids, size_t n, size_t *len)
{
    size_t need = 0;
    chargan_status st = chargan_tokenizer_decode(tok, ids, n, NULL, 0, &need);
    FZ_CHECK(st == CHARGAN_OK, "decode length query: %d", (int)st);
    char *buf = malloc(need + 1);
    FZ_CHECK(buf != NULL, "out of memory");
    st = chargan_tokenizer_decode(tok, ids, n, buf, need + 1, len);
    FZ_CHECK(st == CHARGAN_OK && *len == need && buf[need] == '\0', "decode: %d", (int)st);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t flags = data[0];
    size_t len = size - 2;
    size_t fit_len = data[1] == 255 ? len : len * data[1] / 255;
    /* The text in its own allocation of exactly len bytes, no NUL: an
     * over-read is an ASan report. */
    char *text = malloc(len ? len : 1);
    FZ_CHECK(text != NULL, "out of memory");
    memcpy(text, data + 2, len);

    int32_t *ids[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    chargan_status enc[2], fit[2];
    for (int policy = CHARGAN_UTF8_STRICT; policy <= CHARGAN_UTF8_REPLACE; policy++) {
        chargan_tokenizer_options opts;
        chargan_tokenizer_options_init(&opts);
        opts.lowercase = flags & 1;
        opts.fold_crlf = (flags >> 1) & 1;
        opts.max_vocab = caps[(flags >> 2) & 3];
        opts.utf8_policy = policy;
        chargan_tokenizer *tok = NULL;
        FZ_CHECK(chargan_tokenizer_new(&opts, &tok) == CHARGAN_OK, "tokenizer_new");
        chargan_status st = fit[policy] = chargan_tokenizer_fit(tok, text, fit_len);
        if (policy == CHARGAN_UTF8_STRICT)
            FZ_CHECK(st == CHARGAN_OK || st == CHARGAN_E_UTF8, "strict fit: %d", (int)st);
        else
            FZ_CHECK(st == CHARGAN_OK, "replacing fit: %d", (int)st);
        uint32_t vocab = 0;
        chargan_tokenizer_vocab_size(tok, &vocab);
        FZ_CHECK(opts.max_vocab == 0 || vocab <= opts.max_vocab, "vocab %u over cap %u", vocab,
                 opts.max_vocab);

        enc[policy] = encode(tok, text, len, &ids[policy], &n[policy]);
        if (policy == CHARGAN_UTF8_STRICT)
            FZ_CHECK(enc[policy] == CHARGAN_OK || enc[policy] == CHARGAN_E_UTF8,
                     "strict encode: %d", (int)enc[policy]);
        else
            FZ_CHECK(enc[policy] == CHARGAN_OK, "replacing encode: %d", (int)enc[policy]);
        if (enc[policy] == CHARGAN_OK) {
            for (size_t i = 0; i < n[policy]; i++)
                FZ_CHECK(ids[policy][i] >= CHARGAN_ID_UNKNOWN && (uint32_t)ids[policy][i] < vocab,
                         "id %d at %zu, vocabulary %u", ids[policy][i], i, vocab);
            size_t out_len = 0;
            char *out = decode(tok, ids[policy], n[policy], &out_len);
            bool plain = !opts.lowercase && !opts.fold_crlf && opts.max_vocab == 0 &&
                         fit_len == len && policy == CHARGAN_UTF8_STRICT;
            if (plain)
                FZ_CHECK(out_len == len && memcmp(out, text, len) == 0,
                         "decode(encode(text)) differs from the text");
            free(out);
        } else {
            FZ_CHECK(strstr(chargan_tokenizer_last_error(tok), "offset") != NULL,
                     "a UTF-8 error that names no offset: %s", chargan_tokenizer_last_error(tok));
        }
        chargan_tokenizer_free(tok);
    }
    /* Valid text fitted on a valid prefix: both policies saw the same
     * characters, so they give the same ids. */
    if (enc[CHARGAN_UTF8_STRICT] == CHARGAN_OK && fit[CHARGAN_UTF8_STRICT] == CHARGAN_OK)
        FZ_CHECK(n[0] == n[1] && memcmp(ids[0], ids[1], n[0] * sizeof(int32_t)) == 0,
                 "strict and replacing encodings of valid text differ");
    free(ids[0]);
    free(ids[1]);
    free(text);
    return 0;
}
