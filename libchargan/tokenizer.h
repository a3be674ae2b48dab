/*
 * tokenizer.h - what other library units use of the tokenizer (tokenizer.c)
 * beyond the public chargan_tokenizer_* functions: allocating fast paths for
 * whole corpora, deep copies for models that keep their own tokenizer, and
 * serialisation straight into a writer for checkpoints.
 *
 * Every function takes a valid tokenizer (no NULL checks beyond the public
 * ones); failures are recorded in tok's last error and the thread's message.
 */
#ifndef CHARGAN_TOKENIZER_H
#define CHARGAN_TOKENIZER_H

#include "internal.h"

/* Encodes len bytes of UTF-8 into a cg_malloc'd array *ids of *n ids (free
 * with cg_free; never NULL on success, even for empty text).  Same rules and
 * errors as chargan_tokenizer_encode(), plus CHARGAN_E_NOMEM.  *ids and *n are
 * untouched on failure. */
chargan_status cg_tokenizer_encode_alloc(chargan_tokenizer *tok, const char *text, size_t len,
                                         int32_t **ids, size_t *n);

/* Encodes text[*pos..len) until cap (>= 1) ids are written or the text ends, *n of
 * them, and moves *pos past the characters encoded: pieces encoded so, from
 * *pos = 0 on, are the ids of one chargan_tokenizer_encode() call, because
 * len stays the whole text's (a CR LF pair or a UTF-8 sequence is never cut).
 * Errors as chargan_tokenizer_encode()'s (strict policy). */
chargan_status cg_tokenizer_encode_some(chargan_tokenizer *tok, const char *text, size_t len,
                                        size_t *pos, int32_t *ids, size_t cap, size_t *n);

/* Decodes n ids into a cg_malloc'd NUL-terminated string *text of *len bytes
 * (free with cg_free or chargan_free).  Same rules and errors as
 * chargan_tokenizer_decode(), plus CHARGAN_E_NOMEM. */
chargan_status cg_tokenizer_decode_alloc(chargan_tokenizer *tok, const int32_t *ids, size_t n,
                                         char **text, size_t *len);

/* A deep copy (options, counts, vocabulary; the error message starts empty).
 * NULL on allocation failure, with the thread's message set. */
chargan_tokenizer *cg_tokenizer_clone(const chargan_tokenizer *tok);

/* Marks tok as a model's own (chargan_model_tokenizer): it can no longer be
 * fitted, which would renumber the model's ids. */
void cg_tokenizer_attach(chargan_tokenizer *tok);

/* Number of ids, reserved ones included (>= CHARGAN_NUM_RESERVED_IDS). */
uint32_t cg_tokenizer_vocab_size(const chargan_tokenizer *tok);

/* Appends the vocabulary format of docs/FORMATS.md (the exact bytes
 * chargan_tokenizer_save_buffer() returns) to w; an allocation failure sticks
 * in w->failed.  chargan_tokenizer_load_buffer() reads it back. */
void cg_tokenizer_write(const chargan_tokenizer *tok, cg_writer *w);

#endif /* CHARGAN_TOKENIZER_H */
