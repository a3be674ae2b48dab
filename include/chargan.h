/**
 * @file chargan.h
 * @brief The public interface of libchargan, a C11 library for training
 * and sampling character-level text GANs.
 *
 * Copyright (c) 2026 The libchargan authors.  MIT licence, see COPYING.
 *
 * How to read this header
 * -----------------------
 * - Every function returns a chargan_status (CHARGAN_OK = 0 on success) unless
 *   it says otherwise; results come back through pointer arguments, which are
 *   left untouched on failure (an array the caller gives for a function to
 *   fill may hold part of its result where the function says so).
 * - Each handle remembers a message describing its last failure
 *   (chargan_tokenizer_last_error(), chargan_model_last_error(), ...).  The
 *   calling thread also keeps the message
 *   of its last failure in chargan_last_error(), which is the only place a
 *   failed constructor or loader can report to.  Every function that takes a
 *   pointer returns CHARGAN_E_INVALID for a NULL one it needs (not repeated
 *   below).
 * - Ownership: a chargan_xxx_new() or _load() handle belongs to the caller,
 *   who releases it with chargan_xxx_free(); buffers and strings the library
 *   allocates for the caller are released with chargan_free(); pointers the
 *   library returns without "allocated" in their description are borrowed
 *   (owned by the handle, valid as long as it says).
 * - The library never prints, never exits, never aborts.  Progress and logging
 *   go through callbacks the caller installs.
 * - Handles are opaque.  chargan_xxx_free(NULL) is a no-op.
 * - Structs that cross the ABI start with their own size (`struct_size`) and
 *   are filled with defaults by chargan_xxx_init(), a macro that passes
 *   sizeof the caller's struct to chargan_xxx_init_sized(): the library never
 *   writes past the caller's struct, and fields the caller's (older) header
 *   lacks keep their defaults.  New fields are only ever appended.  Callers
 *   without the macros (ctypes, cffi) call the _sized functions with their
 *   struct's size; they return CHARGAN_E_INVALID for a NULL pointer or a size
 *   below the struct's first published version.  A struct_size above 4096
 *   bytes is refused everywhere (CHARGAN_E_INVALID): it is an uninitialised
 *   field, not a newer header, and nothing past the struct is touched.  The
 *   _get_config() functions copy what this library knows: fields of a newer
 *   caller's struct past it are left as they were (the _init() functions
 *   zero them).
 * - Thread safety: distinct handles may be used from distinct threads at the
 *   same time, with the results they give when used alone.
 *   One handle must not be used from two threads at once (the caller
 *   serialises), even through functions that take it const: they may record
 *   a failure message in it.  What a handle owns counts as that handle: the
 *   tokenizer chargan_model_tokenizer() returns belongs to its model, and the
 *   models and optimizers a trainer adopted belong to the trainer.  A handle
 *   may move between threads.  Functions without a handle are thread-safe.
 *   A trainer with threads > 1 runs its steps on worker threads of its own,
 *   started by chargan_trainer_new() or _load() and joined by
 *   chargan_trainer_free(); its progress callback runs on the calling thread.
 *   fork() does not copy them: in the child, such a trainer runs its shards
 *   one after another on the calling thread (the same results, one core).
 *   The library's threads (these, and sampling's) block every signal but
 *   those of faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS), so
 *   signals reach the application's own threads.
 *   One exception to the one-thread rule: chargan_trainer_request_stop() may
 *   be called on a trainer that another thread is using, and from a signal
 *   handler.
 *   Creating or loading a trainer also sets OpenBLAS's process-wide thread
 *   count: to 1 when the trainer shards its batches itself (threads > 1 and
 *   batch > 1), else to its threads.  tests/test_threads.c checks these
 *   rules, under ThreadSanitizer in CI.
 * - Determinism: the same seed and the same thread count give bitwise
 *   identical results.
 * - Arrays are row-major float32; token ids are int32_t.
 */
#ifndef CHARGAN_H
#define CHARGAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Version                                                            */
/* ------------------------------------------------------------------ */

/** Major version of this header: changes only with an incompatible ABI (a new SONAME). */
#define CHARGAN_VERSION_MAJOR 0
/** Minor version of this header: compatible additions. */
#define CHARGAN_VERSION_MINOR 1
/** Patch version of this header: fixes only. */
#define CHARGAN_VERSION_PATCH 0
/** The header's version as MAJOR*10000 + MINOR*100 + PATCH; compare with
 *  chargan_version_number() to detect a header/library mismatch. */
#define CHARGAN_VERSION_NUMBER \
    (CHARGAN_VERSION_MAJOR * 10000 + CHARGAN_VERSION_MINOR * 100 + CHARGAN_VERSION_PATCH)
/** The header's version as a string, "MAJOR.MINOR.PATCH". */
#define CHARGAN_VERSION_STRING "0.1.0"

/** Marks the exported functions (default visibility; the library is built
 *  with -fvisibility=hidden, so nothing else is exported). */
#if defined(_WIN32)
#define CHARGAN_API
#elif defined(__GNUC__) || defined(__clang__)
#define CHARGAN_API __attribute__((visibility("default")))
#else
#define CHARGAN_API
#endif

/** The library's version as "MAJOR.MINOR.PATCH": a static string, never
 *  NULL, never freed.  Thread-safe; cannot fail. */
CHARGAN_API const char *chargan_version(void);
/** The library's version as MAJOR*10000 + MINOR*100 + PATCH.  Compare with
 *  CHARGAN_VERSION_NUMBER to detect a header/library mismatch.  Thread-safe;
 *  cannot fail. */
CHARGAN_API unsigned chargan_version_number(void);

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

/** Status codes.  Values are fixed forever; new codes are appended. */
typedef enum chargan_status {
    CHARGAN_OK = 0,
    CHARGAN_E_INVALID = 1,      /**< invalid argument (NULL, out of range, wrong struct size) */
    CHARGAN_E_NOMEM = 2,        /**< an allocation failed */
    CHARGAN_E_IO = 3,           /**< a read, write, fsync or rename failed */
    CHARGAN_E_FORMAT = 4,       /**< a file or buffer is truncated, corrupt or inconsistent */
    CHARGAN_E_UNSUPPORTED = 5,  /**< a valid file of a version or feature this build lacks */
    CHARGAN_E_NUMERIC = 6,      /**< a loss or parameter became NaN or infinite */
    CHARGAN_E_STATE = 7,        /**< call out of order (e.g. training before a corpus is set) */
    CHARGAN_E_UTF8 = 8,         /**< invalid UTF-8 in input text */
    CHARGAN_E_RANGE = 9,        /**< an output buffer is too small, or an id is out of range */
    CHARGAN_E_CANCELLED = 10,   /**< a callback asked to stop */
    CHARGAN_E_NOT_FOUND = 11    /**< a named item (e.g. a parameter) does not exist */
} chargan_status;

/** A static, human-readable name for a status code ("invalid argument", ...).
 *  Never NULL, never freed; unknown codes give "unknown status".  Thread-safe;
 *  cannot fail. */
CHARGAN_API const char *chargan_strerror(chargan_status status);

/** The message of the calling thread's most recent failure in any chargan_
 *  function ("" if none).  Thread-local storage owned by the library: never
 *  NULL, never freed by the caller, valid until the thread's next failing
 *  call.  Thread-safe (each thread sees its own); cannot fail.  A message (this
 *  one or a handle's) is UTF-8 where the paths in it are, and at most 1023
 *  bytes: a longer one keeps its start and its end (the cause) around "...". */
CHARGAN_API const char *chargan_last_error(void);

/** The errno value behind the calling thread's most recent failure when
 *  that was CHARGAN_E_IO from a system call on a file (an open, read,
 *  write, fsync or rename of a load or a save: ENOENT, EACCES, ENOSPC, ...),
 *  else 0 (another status, or an I/O failure with no errno, such as MPI's
 *  or a path that is not a regular file).  It goes with chargan_last_error()
 *  and lasts as long: per thread, until the thread's next failing call.
 *  Version node CHARGAN_0.4.  Thread-safe; cannot fail. */
CHARGAN_API int chargan_last_errno(void);

/** Frees memory the library handed to the caller (the text returned by
 *  chargan_model_sample_text(), the buffer of chargan_tokenizer_save_buffer()).
 *  NULL is a no-op.  Thread-safe; cannot fail.  Not for handles: each has
 *  its own chargan_xxx_free(). */
CHARGAN_API void chargan_free(void *ptr);

/* ------------------------------------------------------------------ */
/* Tokenizer: UTF-8 characters <-> ids                                 */
/* ------------------------------------------------------------------ */

/* Reserved ids, present in every vocabulary. */
#define CHARGAN_ID_START 0   /**< start of sequence / padding; never produced by encode */
#define CHARGAN_ID_UNKNOWN 1 /**< out-of-vocabulary character */
#define CHARGAN_NUM_RESERVED_IDS 2 /**< number of reserved ids; fitted characters start here */

/** What encode does with bytes that are not valid UTF-8. */
typedef enum chargan_utf8_policy {
    CHARGAN_UTF8_STRICT = 0, /**< fail with CHARGAN_E_UTF8, naming the byte offset */
    CHARGAN_UTF8_REPLACE = 1 /**< each maximal invalid subsequence becomes CHARGAN_ID_UNKNOWN */
} chargan_utf8_policy;

/** Options of chargan_tokenizer_new(); fill with chargan_tokenizer_options_init(). */
typedef struct chargan_tokenizer_options {
    size_t struct_size;     /**< sizeof(chargan_tokenizer_options) */
    uint32_t max_vocab;     /**< cap on the vocabulary size, reserved ids included; 0 = no cap.
                                 Must be 0 or >= CHARGAN_NUM_RESERVED_IDS + 1. */
    int lowercase;          /**< nonzero: fold A-Z and Latin-1 upper-case letters (U+00C0..U+00DE
                                 except U+00D7) to lower case, both when fitting and encoding */
    int fold_crlf;          /**< nonzero (default): "\r\n" is read as "\n" */
    int utf8_policy;        /**< a chargan_utf8_policy; default CHARGAN_UTF8_STRICT */
} chargan_tokenizer_options;

/** Fills *opts with defaults: no cap, no lower-casing, CRLF folding, strict
 *  UTF-8; struct_size is the caller's size (see the notes at the top).
 *  Thread-safe.  Errors: CHARGAN_E_INVALID (NULL, struct_size too small). */
CHARGAN_API chargan_status chargan_tokenizer_options_init_sized(chargan_tokenizer_options *opts,
                                                                size_t struct_size);
/** chargan_tokenizer_options_init_sized() with the size of *opts. */
#define chargan_tokenizer_options_init(opts) \
    chargan_tokenizer_options_init_sized((opts), sizeof *(opts))

/** A tokenizer: the vocabulary mapping UTF-8 characters to ids.  Opaque;
 *  created by chargan_tokenizer_new() or chargan_tokenizer_load(), owned by
 *  the caller, released with chargan_tokenizer_free(). */
typedef struct chargan_tokenizer chargan_tokenizer;

/** Creates an empty tokenizer (only the reserved ids).  opts may be NULL for
 *  defaults.  Errors: CHARGAN_E_INVALID, CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_tokenizer_new(const chargan_tokenizer_options *opts,
                                                 chargan_tokenizer **out);
/** Frees the tokenizer; NULL is a no-op.  Cannot fail. */
CHARGAN_API void chargan_tokenizer_free(chargan_tokenizer *tok);
/** The message of this tokenizer's last failure ("" if none, or for NULL).
 *  Owned by the tokenizer, valid until its next failing call or its free. */
CHARGAN_API const char *chargan_tokenizer_last_error(const chargan_tokenizer *tok);

/** Counts the characters of text (len bytes, need not be NUL-terminated) and
 *  rebuilds the vocabulary from all text fitted so far: ids from
 *  CHARGAN_NUM_RESERVED_IDS upwards by decreasing count, ties by increasing code
 *  point, cut at max_vocab.  May be called many times.  Invalid UTF-8 follows
 *  the utf8 policy (replaced bytes are not counted).  text may be NULL when
 *  len is 0.  A failed fit counts nothing.  Errors: CHARGAN_E_INVALID,
 *  CHARGAN_E_UTF8, CHARGAN_E_NOMEM, CHARGAN_E_RANGE (a count, such as one a
 *  loaded vocabulary brought, would pass 2^64 - 1), CHARGAN_E_STATE (a
 *  model's own tokenizer, chargan_model_tokenizer()). */
CHARGAN_API chargan_status chargan_tokenizer_fit(chargan_tokenizer *tok, const char *text,
                                                 size_t len);

/** Number of ids, reserved ones included, into *size.  Errors: CHARGAN_E_INVALID. */
CHARGAN_API chargan_status chargan_tokenizer_vocab_size(const chargan_tokenizer *tok,
                                                        uint32_t *size);
/** The code point of id (reserved ids have none: CHARGAN_E_RANGE) and how many
 *  times it was seen while fitting (count may be NULL; a loaded tokenizer
 *  keeps its counts).  Errors: CHARGAN_E_INVALID, CHARGAN_E_RANGE (id out of
 *  range or reserved). */
CHARGAN_API chargan_status chargan_tokenizer_id_info(const chargan_tokenizer *tok, int32_t id,
                                                     uint32_t *codepoint, uint64_t *count);
/** The id of a code point (CHARGAN_ID_UNKNOWN if not in the vocabulary), after
 *  lower-casing if the tokenizer lower-cases.  Errors: CHARGAN_E_INVALID
 *  (also for a code point above U+10FFFF or a surrogate). */
CHARGAN_API chargan_status chargan_tokenizer_lookup(const chargan_tokenizer *tok,
                                                    uint32_t codepoint, int32_t *id);

/** Encodes len bytes of UTF-8 into ids.  At most one id per byte is produced,
 *  so cap >= len always suffices.  *n_ids receives the number of ids; if ids is
 *  NULL only the count is computed; if cap is too small, *n_ids holds the
 *  count needed and CHARGAN_E_RANGE is returned.  On any failure nothing is
 *  guaranteed in ids: the ids before an invalid byte may have been written.
 *  text may be NULL when len is 0.  Errors: CHARGAN_E_INVALID, CHARGAN_E_UTF8
 *  (message names the byte offset), CHARGAN_E_RANGE. */
CHARGAN_API chargan_status chargan_tokenizer_encode(chargan_tokenizer *tok, const char *text,
                                                    size_t len, int32_t *ids, size_t cap,
                                                    size_t *n_ids);

/** Decodes ids into UTF-8.  CHARGAN_ID_START is skipped and CHARGAN_ID_UNKNOWN
 *  becomes U+FFFD.  *len receives the byte count (without the NUL); the output
 *  is NUL-terminated when cap > *len.  buf may be NULL to query the length; a
 *  too-small cap gives CHARGAN_E_RANGE with the needed length in *len.  On
 *  any failure nothing is guaranteed in buf (the text before an id outside
 *  the vocabulary may have been written).  ids may be NULL when n_ids is 0.
 *  Errors: CHARGAN_E_INVALID, CHARGAN_E_RANGE (also for an id outside the
 *  vocabulary). */
CHARGAN_API chargan_status chargan_tokenizer_decode(chargan_tokenizer *tok, const int32_t *ids,
                                                    size_t n_ids, char *buf, size_t cap,
                                                    size_t *len);

/** Serialises the tokenizer (format in docs/FORMATS.md) into a buffer the
 *  library allocates; *data belongs to the caller, who releases it with
 *  chargan_free().  Errors: CHARGAN_E_INVALID, CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_tokenizer_save_buffer(const chargan_tokenizer *tok,
                                                         void **data, size_t *size);
/** Parses a buffer written by chargan_tokenizer_save_buffer().  Every field is
 *  validated; a truncated, corrupt or hostile buffer gives CHARGAN_E_FORMAT or
 *  CHARGAN_E_UNSUPPORTED (message in chargan_last_error()), never a crash.
 *  The data is copied: *out belongs to the caller (chargan_tokenizer_free()).
 *  Errors: also CHARGAN_E_INVALID, CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_tokenizer_load_buffer(const void *data, size_t size,
                                                         chargan_tokenizer **out);
/** Writes the tokenizer to path atomically (temporary file, fsync, rename,
 *  fsync of the directory): a failure leaves any previous file intact, except
 *  one of the last sync, whose message says the new file replaced it.  As
 *  every save, it replaces
 *  only a regular file (or a link to one, or to nothing): a directory,
 *  device, FIFO or socket at path is refused and left alone.  Errors:
 *  CHARGAN_E_INVALID, CHARGAN_E_IO (message names the path and the system
 *  error), CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_tokenizer_save(chargan_tokenizer *tok, const char *path);
/** Reads a file written by chargan_tokenizer_save(); validated as in
 *  chargan_tokenizer_load_buffer().  *out belongs to the caller.  Errors:
 *  CHARGAN_E_INVALID, CHARGAN_E_IO, CHARGAN_E_FORMAT, CHARGAN_E_UNSUPPORTED,
 *  CHARGAN_E_NOMEM (message in chargan_last_error()). */
CHARGAN_API chargan_status chargan_tokenizer_load(const char *path, chargan_tokenizer **out);

/* ------------------------------------------------------------------ */
/* Model: generator or discriminator                                   */
/* ------------------------------------------------------------------ */

/** Which network a model is. */
typedef enum chargan_model_kind {
    CHARGAN_GENERATOR = 0,    /**< z -> (h0, c0); embedding -> LSTM -> dense softmax over the vocabulary */
    CHARGAN_DISCRIMINATOR = 1 /**< embedding -> LSTM -> dense sigmoid at every step */
} chargan_model_kind;

/** Architecture and initialisation of a model; fill with chargan_model_config_init(). */
typedef struct chargan_model_config {
    size_t struct_size;      /**< sizeof(chargan_model_config) */
    int32_t kind;            /**< a chargan_model_kind */
    uint32_t vocab_size;     /**< V, >= 2 */
    uint32_t embed_dim;      /**< E, default 64 */
    uint32_t hidden_dim;     /**< H, default 256 */
    uint32_t num_layers;     /**< stacked LSTM layers, default 1 */
    uint32_t noise_dim;      /**< generator: Z, dimension of the noise vector (0: zero initial state) */
    int32_t start_id;        /**< generator: the input at the first step, default CHARGAN_ID_START */
    float forget_bias;       /**< added to the forget-gate bias at initialisation, default 1 */
    float recurrent_dropout; /**< dropout on h(t-1) in the recurrent product while training, one
                                  mask per sequence (Gal & Ghahramani); 0 <= p < 1, default 0 */
    float init_scale;        /**< 0 (default): PyTorch-like init, U(-1/sqrt(H), 1/sqrt(H)) for LSTM
                                  and dense, N(0,1) for the embedding; > 0: every weight N(0, scale) */
    uint64_t seed;           /**< seeds initialisation and the model's own RNG (dropout, sampling) */
} chargan_model_config;

/** Fills *cfg with the defaults above for the given kind (vocab_size 0: the
 *  caller sets it).  Thread-safe.  Errors: CHARGAN_E_INVALID (NULL,
 *  struct_size too small, unknown kind). */
CHARGAN_API chargan_status chargan_model_config_init_sized(chargan_model_config *cfg,
                                                           size_t struct_size,
                                                           chargan_model_kind kind);
/** chargan_model_config_init_sized() with the size of *cfg. */
#define chargan_model_config_init(cfg, kind) \
    chargan_model_config_init_sized((cfg), sizeof *(cfg), (kind))

/** A generator or a discriminator: its configuration, parameters, optional
 *  tokenizer and its own RNG.  Opaque; created by chargan_model_new() or
 *  chargan_model_load() and owned by the caller (chargan_model_free()), unless
 *  a trainer adopted it. */
typedef struct chargan_model chargan_model;

/** Creates and initialises a model.  Errors: CHARGAN_E_INVALID (message names
 *  the field), CHARGAN_E_NOMEM.  *out belongs to the caller. */
CHARGAN_API chargan_status chargan_model_new(const chargan_model_config *cfg,
                                             chargan_model **out);
/** Frees the model and its tokenizer; NULL is a no-op.  Never free a model a
 *  trainer adopted (the trainer frees it).  Cannot fail. */
CHARGAN_API void chargan_model_free(chargan_model *model);
/** The message of this model's last failure ("" if none; "NULL model" for
 *  NULL).  Owned by the model, valid until its next failing call or its free. */
CHARGAN_API const char *chargan_model_last_error(const chargan_model *model);
/** Copies the model's configuration into *cfg (up to cfg->struct_size bytes;
 *  set cfg->struct_size first).  Errors: CHARGAN_E_INVALID (NULL,
 *  struct_size too small). */
CHARGAN_API chargan_status chargan_model_get_config(const chargan_model *model,
                                                    chargan_model_config *cfg);

/** Attaches a copy of tok to the model, replacing any previous one; it is saved
 *  with the model and used by the text functions.  tok may be NULL to detach.
 *  The tokenizer's vocabulary must not exceed the model's vocab_size.  The
 *  caller keeps tok.  Errors: CHARGAN_E_INVALID (also for a vocabulary larger
 *  than vocab_size), CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_model_set_tokenizer(chargan_model *model,
                                                       const chargan_tokenizer *tok);
/** The attached tokenizer or NULL; borrowed: owned by the model, valid until
 *  chargan_model_set_tokenizer() or chargan_model_free().  Do not free it.  It
 *  numbers the model's ids, so chargan_tokenizer_fit() refuses it
 *  (CHARGAN_E_STATE); fit a copy and attach that instead. */
CHARGAN_API chargan_tokenizer *chargan_model_tokenizer(const chargan_model *model);

/* Parameter access: the model's tensors in a fixed order with stable names,
 * e.g. "embed" [V,E], "lstm.0.w_ih" [I,4H], "lstm.0.w_hh" [H,4H], "lstm.0.b" [4H]
 * (gate blocks in the order i, f, g, o; the input is a row vector, z = x W_ih +
 * h W_hh + b), "noise.w" [Z, 2*L*H], "noise.b" [2*L*H], "out.w" [H,V or 1],
 * "out.b" [V or 1].  See docs/MODEL.md for the equations. */

/** Number of parameter tensors, into *count.  Errors: CHARGAN_E_INVALID. */
CHARGAN_API chargan_status chargan_model_num_params(const chargan_model *model, size_t *count);
/** Name (static for the model's lifetime), rank (1 or 2), shape and element
 *  count of tensor index.  shape must hold 2 entries; unused ones are 1.
 *  Any output pointer may be NULL.  Errors: CHARGAN_E_INVALID (NULL model),
 *  CHARGAN_E_RANGE (index out of range). */
CHARGAN_API chargan_status chargan_model_param_info(const chargan_model *model, size_t index,
                                                    const char **name, uint32_t *rank,
                                                    size_t shape[2], size_t *numel);
/** The index of the tensor called name.  Errors: CHARGAN_E_INVALID,
 *  CHARGAN_E_NOT_FOUND (no such tensor). */
CHARGAN_API chargan_status chargan_model_param_find(const chargan_model *model, const char *name,
                                                    size_t *index);
/** Copies tensor index out into the caller's dst (n must equal its element
 *  count).  Errors: CHARGAN_E_INVALID (NULL, wrong n), CHARGAN_E_RANGE (index
 *  out of range). */
CHARGAN_API chargan_status chargan_model_param_get(const chargan_model *model, size_t index,
                                                   float *dst, size_t n);
/** Copies values into tensor index (n must equal its element count; all
 *  values finite, else nothing is changed).  Errors: CHARGAN_E_INVALID (NULL,
 *  wrong n), CHARGAN_E_RANGE (index out of range), CHARGAN_E_NUMERIC (a value
 *  not finite). */
CHARGAN_API chargan_status chargan_model_param_set(chargan_model *model, size_t index,
                                                   const float *src, size_t n);
/** Total number of scalar parameters, into *count.  Errors: CHARGAN_E_INVALID. */
CHARGAN_API chargan_status chargan_model_num_weights(const chargan_model *model, size_t *count);

/** Mean negative log-likelihood (nats per predicted token) of n_seq sequences
 *  of length seq_len (ids row-major, seq_len at most 10^6), each preceded by
 *  the start id and predicted from a zero noise vector.  Memory stays within
 *  a few hundred MB whatever the lengths (long sequences are stepped rather
 *  than run as one batched forward, which changes the last bits).  Errors: CHARGAN_E_INVALID, CHARGAN_E_RANGE
 *  (id outside the vocabulary), CHARGAN_E_NOMEM, CHARGAN_E_NUMERIC (the NLL is
 *  not finite: parameters so large that the activations overflow; *nll is
 *  left as it was). Generator only. */
CHARGAN_API chargan_status chargan_model_nll(chargan_model *model, const int32_t *ids,
                                             size_t n_seq, size_t seq_len, double *nll);

/** Saves the model (configuration, tokenizer if attached, parameters) as a
 *  checkpoint file, atomically (a failure leaves any previous file intact,
 *  except one of the directory's sync after the rename, whose message says
 *  the new file replaced it).
 *  Errors: CHARGAN_E_INVALID, CHARGAN_E_NUMERIC (a parameter not finite),
 *  CHARGAN_E_IO, CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_model_save(chargan_model *model, const char *path);
/** Loads a model from a checkpoint file written by chargan_model_save() or
 *  chargan_trainer_save(); kind selects the generator or the discriminator.
 *  Errors: CHARGAN_E_IO, CHARGAN_E_FORMAT, CHARGAN_E_UNSUPPORTED, CHARGAN_E_NOT_FOUND
 *  (the file has no model of that kind), CHARGAN_E_NOMEM (also, before it is
 *  read, a file as large as the memory the process may use: the machine's,
 *  or its control group's limit where smaller), CHARGAN_E_INVALID.
 *  *out belongs to the caller; the message is in chargan_last_error(). */
CHARGAN_API chargan_status chargan_model_load(const char *path, chargan_model_kind kind,
                                              chargan_model **out);

/* ------------------------------------------------------------------ */
/* Sampling                                                            */
/* ------------------------------------------------------------------ */

/** Options of the sampling functions; fill with chargan_sample_options_init(). */
typedef struct chargan_sample_options {
    size_t struct_size;  /**< sizeof(chargan_sample_options) */
    uint32_t n_streams;  /**< independent sequences sampled as one batch, default 1 */
    uint32_t length;     /**< tokens to generate per stream (after the prime), default 256 */
    float temperature;   /**< > 0, default 1 */
    uint32_t top_k;      /**< keep the k most likely tokens (of equal ones, the lower ids);
                              0 = all (default) */
    float top_p;         /**< nucleus: keep the smallest set with mass >= p (p as the float
                              it is: 0.1f is a little above 0.1); 1 = all (default).  With
                              top_k too, the tokens both keep.  The mass is that of the
                              (temperature-scaled) distribution over the ids that may be drawn
                              (without the start and unknown ids unless allow_reserved), not
                              of the top k's renormalised */
    uint64_t seed;       /**< sampling RNG seed; same seed, same output */
    int allow_reserved;  /**< nonzero: the start and unknown ids may be sampled; default 0 */
    uint32_t threads;    /**< threads the streams are split across, 0 to 256, at most 64
                              used; 0 or 1 = the calling thread only (default 0) */
} chargan_sample_options;

/** Fills *opts with the defaults above (seed 1).  Thread-safe.
 *  Errors: CHARGAN_E_INVALID (NULL, struct_size too small). */
CHARGAN_API chargan_status chargan_sample_options_init_sized(chargan_sample_options *opts,
                                                             size_t struct_size);
/** chargan_sample_options_init_sized() with the size of *opts. */
#define chargan_sample_options_init(opts) chargan_sample_options_init_sized((opts), sizeof *(opts))

/** Samples n_streams x length ids into out (row-major, caller-allocated, cap
 *  elements).  prime (prime_len ids, may be 0) is fed after the start id to
 *  every stream before sampling begins.  Generator only.  Stream i draws
 *  from its own RNG, seeded with opts->seed and i alone (not the model's),
 *  so the same seed gives the same output, whatever opts->threads is (on
 *  x86-64 with AVX2 or AVX-512, where every product is the library's own
 *  kernel; elsewhere the BLAS may round differently for other thread
 *  counts); the parameters are not changed.  With threads > 1 the call reads
 *  the model from several threads and returns when all are done.
 *  Errors: CHARGAN_E_INVALID (options out of range, a discriminator;
 *  checked before cap, so a call with a non-NULL out and cap 0 validates
 *  the options),
 *  CHARGAN_E_RANGE (cap too small, a prime id outside the vocabulary),
 *  CHARGAN_E_NUMERIC (the model's logits are not finite: parameters that
 *  overflow the activations; out then holds no meaningful ids),
 *  CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_model_sample_ids(chargan_model *model,
                                                    const chargan_sample_options *opts,
                                                    const int32_t *prime, size_t prime_len,
                                                    int32_t *out, size_t cap);
/** Like chargan_model_sample_ids() but through the attached tokenizer: prime is
 *  UTF-8 text (may be NULL), and *text receives the n_streams samples decoded
 *  (prime included), separated by a single "\n\n"; NUL-terminated, allocated by
 *  the library, release with chargan_free().  Errors as above, plus
 *  CHARGAN_E_STATE if no tokenizer is attached, and CHARGAN_E_UTF8 for a
 *  prime that is not valid UTF-8 where the tokenizer's policy is strict (the
 *  message gives the byte offset). */
CHARGAN_API chargan_status chargan_model_sample_text(chargan_model *model,
                                                     const chargan_sample_options *opts,
                                                     const char *prime, char **text);
/** chargan_model_sample_text(), and the text's length in bytes into *len: a
 *  vocabulary with U+0000 puts NUL bytes inside the text, where C string
 *  functions would stop.  (Version node CHARGAN_0.2.) */
CHARGAN_API chargan_status chargan_model_sample_text_len(chargan_model *model,
                                                         const chargan_sample_options *opts,
                                                         const char *prime, char **text,
                                                         size_t *len);

/* ------------------------------------------------------------------ */
/* Optimizer                                                           */
/* ------------------------------------------------------------------ */

/** Update rules. */
typedef enum chargan_optimizer_kind {
    CHARGAN_ADAM = 0,    /**< Adam (AdamW with weight_decay) */
    CHARGAN_SGD = 1,     /**< with (optional) momentum */
    CHARGAN_RMSPROP = 2
} chargan_optimizer_kind;

/** Settings of an optimizer; fill with chargan_optimizer_config_init(). */
typedef struct chargan_optimizer_config {
    size_t struct_size;   /**< sizeof(chargan_optimizer_config) */
    int32_t kind;         /**< a chargan_optimizer_kind, default CHARGAN_ADAM */
    float lr;             /**< learning rate, default 2e-3 */
    float beta1;          /**< Adam, default 0.9 */
    float beta2;          /**< Adam, default 0.999 */
    float eps;            /**< Adam and RMSprop, default 1e-8 */
    float weight_decay;   /**< decoupled (AdamW-style) for Adam, L2 for the others; default 0 */
    float momentum;       /**< SGD and RMSprop, default 0 */
    float rho;            /**< RMSprop decay of the squared-gradient average, default 0.99 */
    float clip_norm;      /**< clip the global gradient norm to this; 0 = no clipping (default) */
} chargan_optimizer_config;

/** Fills *cfg with the defaults above for the given kind.  Thread-safe.
 *  Errors: CHARGAN_E_INVALID (NULL, struct_size too small, unknown kind). */
CHARGAN_API chargan_status chargan_optimizer_config_init_sized(chargan_optimizer_config *cfg,
                                                              size_t struct_size,
                                                              chargan_optimizer_kind kind);
/** chargan_optimizer_config_init_sized() with the size of *cfg. */
#define chargan_optimizer_config_init(cfg, kind) \
    chargan_optimizer_config_init_sized((cfg), sizeof *(cfg), (kind))

/** An optimizer and its state (moments, step count).  Opaque; created by
 *  chargan_optimizer_new() and owned by the caller (chargan_optimizer_free()),
 *  unless a trainer adopted it. */
typedef struct chargan_optimizer chargan_optimizer;

/** Creates an optimizer.  Its state is sized on the first step for the model
 *  it is applied to; from then on it only accepts that model's shape.
 *  *out belongs to the caller.  Errors: CHARGAN_E_INVALID (message names the
 *  field), CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_optimizer_new(const chargan_optimizer_config *cfg,
                                                 chargan_optimizer **out);
/** Frees the optimizer; NULL is a no-op.  Never free one a trainer adopted.
 *  Cannot fail. */
CHARGAN_API void chargan_optimizer_free(chargan_optimizer *opt);
/** The message of this optimizer's last failure ("" if none; "NULL
 *  optimizer" for NULL).  Owned by the optimizer, valid until its next
 *  failing call or its free. */
CHARGAN_API const char *chargan_optimizer_last_error(const chargan_optimizer *opt);
/** Copies the optimizer's settings (the current learning rate included) into
 *  *cfg, up to cfg->struct_size bytes (set it first).  Errors:
 *  CHARGAN_E_INVALID (NULL, struct_size too small). */
CHARGAN_API chargan_status chargan_optimizer_get_config(const chargan_optimizer *opt,
                                                        chargan_optimizer_config *cfg);
/** Changes the learning rate (schedules); takes effect at the next step.
 *  Errors: CHARGAN_E_INVALID (lr not finite or not above 0). */
CHARGAN_API chargan_status chargan_optimizer_set_lr(chargan_optimizer *opt, float lr);
/** Number of steps taken, into *steps.  Errors: CHARGAN_E_INVALID. */
CHARGAN_API chargan_status chargan_optimizer_steps(const chargan_optimizer *opt, uint64_t *steps);

/* ------------------------------------------------------------------ */
/* Trainer                                                             */
/* ------------------------------------------------------------------ */

/** How the discriminator's judgement reaches the generator (see docs/GUIDE.md). */
typedef enum chargan_gan_estimator {
    CHARGAN_GAN_NONE = 0,      /**< no adversarial training (MLE only) */
    CHARGAN_GAN_REINFORCE = 1, /**< SeqGAN family: policy gradient with discriminator rewards */
    CHARGAN_GAN_GUMBEL = 2     /**< RelGAN family: Gumbel-softmax relaxation */
} chargan_gan_estimator;

/** The adversarial loss of the Gumbel-softmax estimator. */
typedef enum chargan_gan_loss {
    CHARGAN_LOSS_STANDARD = 0,    /**< non-saturating GAN loss */
    CHARGAN_LOSS_RELATIVISTIC = 1 /**< RSGAN */
} chargan_gan_loss;

/** Schedule of the Gumbel-softmax inverse temperature beta from beta_start
 *  (default 1) to beta_max; s = min(step / anneal_steps, 1). */
typedef enum chargan_anneal {
    CHARGAN_ANNEAL_EXP = 0,   /**< beta = beta_start (beta_max / beta_start)^s */
    CHARGAN_ANNEAL_LINEAR = 1 /**< beta = beta_start + (beta_max - beta_start) s */
} chargan_anneal;

/** What the Gumbel-softmax generator reads at its next step. */
typedef enum chargan_gumbel_feed {
    CHARGAN_FEED_HARD = 0, /**< the hard token argmax(l + g), as RelGAN: no gradient through it */
    CHARGAN_FEED_SOFT = 1  /**< the relaxed sample y itself (layer 0 reads y . embedding): the
                                gradient also flows through every later step */
} chargan_gumbel_feed;

/** Settings of a trainer; fill with chargan_trainer_config_init(). */
typedef struct chargan_trainer_config {
    size_t struct_size;      /**< sizeof(chargan_trainer_config) */
    uint32_t batch;          /**< B, sequences per step, default 32 */
    uint32_t seq_len;        /**< T, predicted tokens per sequence, default 64 */
    float val_fraction;      /**< held-out tail of the corpus, default 0.1 */
    uint64_t seed;           /**< seeds batches, noise and sampling, default 1 */
    uint32_t threads;        /**< compute threads, default 1; a step uses at most one per
                                  batch row and at most 64 */
    uint32_t report_every;   /**< steps between progress callbacks, default 100 */
    uint32_t val_every;      /**< steps between validation runs (0 = only at the end of each
                                  chargan_trainer_pretrain_generator or _adversarial call),
                                  default 0; the latest result is in the next progress report */
    /* adversarial training (the GAN step) */
    int32_t estimator;       /**< a chargan_gan_estimator, default CHARGAN_GAN_NONE */
    uint32_t d_steps;        /**< discriminator steps per generator step, default 1 */
    float gamma;             /**< REINFORCE: discount of per-step rewards, default 0.9 */
    float baseline_decay;    /**< REINFORCE: moving-average baseline decay, default 0.9 */
    uint32_t rollouts;       /**< REINFORCE: Monte-Carlo rollouts per prefix (0 = per-step rewards);
                                  a step then runs about rollouts x seq_len^2 / 2 generator
                                  and as many discriminator steps (the discriminator reads each
                                  completion from its state after the prefix), quadratic in
                                  seq_len; up to 512 / batch rollouts of every row run as one
                                  batch (about 512 streams at most), on the threads; a stop
                                  request ends a running chargan_trainer_adversarial() before the
                                  step's next prefix and undoes the round */
    float mle_weight;        /**< weight of an MLE term mixed into the generator loss, default 0 */
    float beta_max;          /**< Gumbel: final inverse temperature, >= beta_start, <= 1e6,
                                  default 1 (no annealing) */
    int32_t anneal;          /**< Gumbel: a chargan_anneal, default CHARGAN_ANNEAL_EXP */
    uint32_t anneal_steps;   /**< Gumbel: steps over which beta goes from beta_start to
                                  beta_max, default 1000 */
    int32_t gan_loss;        /**< Gumbel: a chargan_gan_loss, default CHARGAN_LOSS_STANDARD */
    /* Added after the first layout: a caller whose struct_size ends above
     * (built against an older header) gets the defaults below. */
    float beta_start;        /**< Gumbel: initial inverse temperature (1 / tau) in [1e-3, 1e6];
                                  default 1, and 0 means 1 */
    int32_t gumbel_feed;     /**< Gumbel: a chargan_gumbel_feed, default CHARGAN_FEED_HARD */
} chargan_trainer_config;

/** Fills *cfg with the defaults above.  Thread-safe.
 *  Errors: CHARGAN_E_INVALID (NULL, struct_size too small). */
CHARGAN_API chargan_status chargan_trainer_config_init_sized(chargan_trainer_config *cfg,
                                                             size_t struct_size);
/** chargan_trainer_config_init_sized() with the size of *cfg. */
#define chargan_trainer_config_init(cfg) chargan_trainer_config_init_sized((cfg), sizeof *(cfg))

/** What the progress callback sees. */
typedef enum chargan_phase {
    CHARGAN_PHASE_MLE = 0,           /**< chargan_trainer_pretrain_generator() */
    CHARGAN_PHASE_DISCRIMINATOR = 1, /**< chargan_trainer_pretrain_discriminator() */
    CHARGAN_PHASE_ADVERSARIAL = 2,   /**< chargan_trainer_adversarial() */
    CHARGAN_PHASE_EVAL = 3           /**< reserved, never reported: validation results come
                                          in the other phases' val_nll and val_bpc */
} chargan_phase;

/** A progress report, passed to the chargan_progress_fn; valid only during
 *  the call (the library owns it). */
typedef struct chargan_progress {
    size_t struct_size;   /**< the library's sizeof(chargan_progress); read only fields below it */
    int32_t phase;        /**< a chargan_phase */
    uint64_t step;        /**< steps done in this phase's call */
    uint64_t total;       /**< steps asked for in this call */
    uint64_t global_step; /**< generator steps over the trainer's life */
    double loss;          /**< mean training loss since the last report (G's in adversarial phases) */
    double d_loss;        /**< discriminator loss (NaN if none) */
    double d_accuracy;    /**< discriminator accuracy on real vs generated (NaN if none) */
    double val_nll;       /**< latest validation NLL in nats/token, of this call or an earlier
                               one on this corpus (NaN if not measured yet) */
    double val_bpc;       /**< the same in bits per character */
    double tokens_per_s;  /**< training throughput since the last report */
    double elapsed_s;     /**< seconds since the call began */
} chargan_progress;

/** Called every report_every steps and at the end of each call; return nonzero
 *  to stop (the call then returns CHARGAN_E_CANCELLED after a consistent step).
 *  To stop from another thread or a signal handler: chargan_trainer_request_stop(). */
typedef int (*chargan_progress_fn)(const chargan_progress *progress, void *user);

/** A trainer: a generator, an optional discriminator, their optimizers, the
 *  corpus, the RNG and the step counters.  Opaque; created by
 *  chargan_trainer_new() or chargan_trainer_load(), owned by the caller
 *  (chargan_trainer_free()). */
typedef struct chargan_trainer chargan_trainer;

/** Creates a trainer.  generator (required) and discriminator (NULL unless a GAN
 *  estimator is used) are adopted: on success the trainer owns them and the
 *  optimizers and frees them with itself (reach them through the accessors);
 *  on failure ownership stays with the caller.  g_opt and d_opt may be NULL
 *  for a default Adam, and must not be the same optimizer; d_opt must be
 *  NULL without a discriminator.  A model or
 *  optimizer another trainer adopted cannot be given again.  *out belongs to
 *  the caller.  Errors:
 *  CHARGAN_E_INVALID (message names the field; also for models that do not
 *  fit together, or one already adopted), CHARGAN_E_NOMEM (also when the
 *  buffers for batch x seq_len would exceed the machine's physical memory,
 *  or the memory limit of the process's control group (cgroup v1 or v2)
 *  where that is smaller: reserved, they would be written by the first step,
 *  and the kernel would kill the process). */
CHARGAN_API chargan_status chargan_trainer_new(const chargan_trainer_config *cfg,
                                               chargan_model *generator,
                                               chargan_optimizer *g_opt,
                                               chargan_model *discriminator,
                                               chargan_optimizer *d_opt,
                                               chargan_trainer **out);
/** Frees the trainer with the models and optimizers it owns; NULL is a
 *  no-op.  Cannot fail. */
CHARGAN_API void chargan_trainer_free(chargan_trainer *tr);
/** The message of this trainer's last failure ("" if none; "NULL trainer"
 *  for NULL).  Owned by the trainer, valid until its next failing call or its
 *  free. */
CHARGAN_API const char *chargan_trainer_last_error(const chargan_trainer *tr);
/** Copies the trainer's configuration into *cfg, up to cfg->struct_size
 *  bytes (set it first).  Errors: CHARGAN_E_INVALID (NULL, struct_size too small). */
CHARGAN_API chargan_status chargan_trainer_get_config(const chargan_trainer *tr,
                                                      chargan_trainer_config *cfg);
/** The generator: borrowed, owned by the trainer, valid until
 *  chargan_trainer_free(); NULL for a NULL trainer.  The trainer's thread
 *  rule covers it: do not use it while the trainer runs on another thread. */
CHARGAN_API chargan_model *chargan_trainer_generator(const chargan_trainer *tr);
/** The discriminator, borrowed as chargan_trainer_generator(); NULL if none. */
CHARGAN_API chargan_model *chargan_trainer_discriminator(const chargan_trainer *tr);
/** The optimizer of the generator or the discriminator, borrowed as
 *  chargan_trainer_generator(); NULL if none or for an unknown kind. */
CHARGAN_API chargan_optimizer *chargan_trainer_optimizer(const chargan_trainer *tr,
                                                         chargan_model_kind which);
/** Installs (fn non-NULL) or removes (NULL) the progress callback, called on
 *  the calling thread from inside the training functions; user is passed
 *  through and stays the caller's.  Errors: CHARGAN_E_INVALID. */
CHARGAN_API chargan_status chargan_trainer_set_progress(chargan_trainer *tr,
                                                        chargan_progress_fn fn, void *user);
/** Asks the trainer's long calls to stop (version node CHARGAN_0.3): the
 *  one function that may be called while another thread is inside a call on
 *  tr, and, with tr non-NULL, async-signal-safe (it only sets a flag), so a
 *  SIGINT handler can call it.  chargan_trainer_pretrain_generator(),
 *  _pretrain_discriminator() and _adversarial() honour the request before
 *  their next step (the steps done are kept and reported to the progress
 *  callback; _adversarial() with rollouts also before a round's next prefix,
 *  undoing the whole round, its discriminator steps and random draws
 *  included, so that the run continues as if never stopped),
 *  chargan_trainer_evaluate() before its next batch of windows,
 *  as does the validation inside the three (its result is then dropped),
 *  and chargan_trainer_eval_discriminator() before its next batch; the call
 *  returns CHARGAN_E_CANCELLED.  The running call answers the request,
 *  whether it stops or had passed its last check: it is used up when that
 *  call returns (when the outer one returns, for one of them made from a
 *  progress callback: both stop).  A request made while none of the five
 *  runs waits for the next one, which then stops before its first step.
 *  Under MPI the three phases honour it at the next progress report instead
 *  (report_every) and the discriminator's evaluation before its next batch,
 *  where the ranks vote: one rank's request stops them all.  tr must stay valid
 *  until this returns: free the trainer only when no thread or handler can
 *  still ask.  Errors: CHARGAN_E_INVALID (NULL). */
CHARGAN_API chargan_status chargan_trainer_request_stop(chargan_trainer *tr);

/** Sets the corpus from UTF-8 text, encoded with the generator's tokenizer
 *  (fitted on the text first if the generator has none).  The last
 *  val_fraction of the ids is held out.  Training draws random windows of
 *  seq_len + 1 ids.  Any text is either taken or refused with the trainer
 *  unchanged (no corpus replaced, no tokenizer attached):
 *  - empty text (text may be NULL when len is 0), one character, or fewer
 *    training ids than a window: CHARGAN_E_INVALID ("corpus too short");
 *  - invalid UTF-8 (binary data included): CHARGAN_E_UTF8 naming the byte
 *    offset, unless the tokenizer's policy is CHARGAN_UTF8_REPLACE;
 *  - characters outside the tokenizer's vocabulary become
 *    CHARGAN_ID_UNKNOWN; text made only of them is refused (CHARGAN_E_INVALID);
 *  - NUL bytes are characters like any other, and there is no limit on the
 *    length of a line (len bounds the text; one 100 MB line is fine).
 *  The trainer keeps its own copy of the ids, packed one byte each when the
 *  vocabulary has at most 256 ids (two or four bytes otherwise), and needs
 *  no more than that and 256 kB while encoding; the text may be freed after
 *  the call.
 *  Errors: CHARGAN_E_INVALID, CHARGAN_E_UTF8, CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_trainer_set_corpus_text(chargan_trainer *tr, const char *text,
                                                           size_t len);
/** Sets the corpus as one stream of ids (windows as above); the ids are
 *  copied.  Errors: CHARGAN_E_INVALID (too short), CHARGAN_E_RANGE (an id
 *  outside the vocabulary), CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_trainer_set_corpus_ids(chargan_trainer *tr, const int32_t *ids,
                                                          size_t n);
/** Sets the corpus as n_seq separate sequences of exactly seq_len ids (the
 *  trainer's seq_len); each is predicted after the start id, as in SeqGAN's
 *  synthetic experiment.  The last val_fraction of the sequences is held out.
 *  The ids are copied.  Errors: CHARGAN_E_INVALID (seq_len not the trainer's,
 *  no sequence), CHARGAN_E_RANGE (an id outside the vocabulary), CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_trainer_set_corpus_sequences(chargan_trainer *tr,
                                                                const int32_t *ids, size_t n_seq,
                                                                size_t seq_len);
/** Sets the generator's output bias to the log frequencies of the ids in
 *  the corpus's training part, add-one-half smoothed (an id it never holds,
 *  like CHARGAN_ID_START, gets about log(1 / (2 n)) for n training ids):
 *  before any other learning the model then predicts the unigram
 *  distribution, which training from a random bias spends its first hundreds
 *  of steps finding.  Meant for a fresh generator, before MLE training
 *  (`chargan train` does it for every model it creates; on tinyshakespeare,
 *  E=64 H=256, it gave 0.04 bits/char less after 3000 steps: see
 *  docs/MODEL.md).  Only the output bias changes.  Version node
 *  CHARGAN_0.2.  Errors: CHARGAN_E_INVALID, CHARGAN_E_STATE (no corpus),
 *  CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_trainer_init_output_bias(chargan_trainer *tr);

/** One MLE step of the generator on a random training batch; *loss (may be
 *  NULL) receives the batch's mean NLL in nats.  Errors: CHARGAN_E_STATE (no
 *  corpus), CHARGAN_E_NUMERIC, whose message names the step: either the loss
 *  or a gradient is not finite, or a finite gradient would overflow the
 *  optimizer's float state (its square in Adam's or RMSprop's second moment;
 *  clipping avoids it) or Adam's step size (nothing is updated: models, optimizers and
 *  step counts are as before, while the random streams have moved past the
 *  step's batch, noise and masks, so a retry draws others), or the update
 *  itself overflowed (a learning rate far too large): then the parameters or
 *  the optimizer state are no longer finite, chargan_trainer_save() refuses
 *  them, and the run continues only from a checkpoint.  The same holds for
 *  every training call below; and each refuses with CHARGAN_E_INVALID a step
 *  that would take a step count past 2^53, the most a checkpoint holds. */
CHARGAN_API chargan_status chargan_trainer_mle_step(chargan_trainer *tr, float *loss);
/** One MLE step on caller-supplied data: batch x (seq_len + 1) ids, row-major;
 *  the first id of each row is the input before the first prediction.  Under
 *  MPI every rank passes the same global batch and trains on its rows.
 *  Errors: CHARGAN_E_INVALID, CHARGAN_E_RANGE (an id outside the
 *  vocabulary), CHARGAN_E_NUMERIC, CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_trainer_mle_step_batch(chargan_trainer *tr, const int32_t *ids,
                                                          float *loss);
/** Runs steps MLE steps with progress reports (phase CHARGAN_PHASE_MLE).
 *  Errors: those of chargan_trainer_mle_step(), CHARGAN_E_CANCELLED (the
 *  callback or chargan_trainer_request_stop() asked to stop; the steps done
 *  are kept). */
CHARGAN_API chargan_status chargan_trainer_pretrain_generator(chargan_trainer *tr, uint64_t steps);
/** One discriminator step (real windows vs generator samples); *loss and
 *  *accuracy may be NULL.  Errors: CHARGAN_E_STATE (no discriminator, no
 *  corpus), CHARGAN_E_NUMERIC, CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_trainer_d_step(chargan_trainer *tr, float *loss,
                                                  float *accuracy);
/** Runs steps discriminator steps with progress reports (phase
 *  CHARGAN_PHASE_DISCRIMINATOR).  Errors: those of chargan_trainer_d_step(),
 *  CHARGAN_E_CANCELLED. */
CHARGAN_API chargan_status chargan_trainer_pretrain_discriminator(chargan_trainer *tr,
                                                                  uint64_t steps);
/** One adversarial round: d_steps discriminator steps, then one generator step
 *  with the configured estimator.  *g_loss and *d_loss may be NULL.  Each
 *  discriminator step is its own update: one that fails updates nothing and
 *  ends the round, and a generator step that fails keeps the round's
 *  discriminator steps.
 *  Errors: CHARGAN_E_STATE (estimator CHARGAN_GAN_NONE, no discriminator, no
 *  corpus), CHARGAN_E_NUMERIC, CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_trainer_gan_step(chargan_trainer *tr, float *g_loss,
                                                    float *d_loss);
/** Runs steps adversarial rounds with progress reports (phase
 *  CHARGAN_PHASE_ADVERSARIAL).  Errors: those of chargan_trainer_gan_step(),
 *  CHARGAN_E_CANCELLED. */
CHARGAN_API chargan_status chargan_trainer_adversarial(chargan_trainer *tr, uint64_t steps);

/** Validation NLL of the generator on the held-out part (nats/token); bpc
 *  (may be NULL) gets bits per token.  Windows of seq_len from the state a
 *  zero noise vector gives (a zero state without a noise input).
 *  Errors: CHARGAN_E_STATE (no corpus or no held-out data), CHARGAN_E_NUMERIC,
 *  CHARGAN_E_NOMEM, CHARGAN_E_CANCELLED (chargan_trainer_request_stop()). */
CHARGAN_API chargan_status chargan_trainer_evaluate(chargan_trainer *tr, double *nll, double *bpc);

/** Generator steps taken over the trainer's life (restored by load).
 *  Errors: CHARGAN_E_INVALID. */
CHARGAN_API chargan_status chargan_trainer_global_step(const chargan_trainer *tr, uint64_t *step);

/** Writes a checkpoint: configuration, tokenizer, both models, optimizer
 *  states, RNG states, step counters and the corpus split; atomically (a crash
 *  leaves the previous file intact).  A model whose parameters, or an
 *  optimizer whose state, are not finite is refused (CHARGAN_E_NUMERIC).  A
 *  failed write (CHARGAN_E_IO: full disk, file-size limit, ...) names the
 *  file and the cause, removes its temporary file, and leaves the previous
 *  file intact (or the complete new one, when only the final sync of the
 *  directory failed: the message says so).  A process killed during the save leaves the previous
 *  file intact and a stray PATH.tmp-XXXXXX beside it.  A file replaced
 *  keeps its permission bits where it keeps its owner and group (the
 *  saver's, or given back by a saver that may, as root); a new one gets
 *  0666 less the umask, as any file the process creates (so do all saves).
 *  Errors: also
 *  CHARGAN_E_INVALID, CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_trainer_save(chargan_trainer *tr, const char *path);
/** Restores a trainer from a checkpoint; the resumed run continues bitwise
 *  identically to one never interrupted.  The corpus is not stored: set it
 *  again (same text) before training.  *out belongs to the caller.  Errors
 *  as chargan_model_load() (CHARGAN_E_NOT_FOUND: a model-only checkpoint),
 *  and CHARGAN_E_NOMEM as chargan_trainer_new() (a checkpoint whose batch
 *  needs more memory than the process may use: the machine's, or its
 *  control group's limit where smaller). */
CHARGAN_API chargan_status chargan_trainer_load(const char *path, chargan_trainer **out);

/* ------------------------------------------------------------------ */
/* Data-parallel training over MPI (version node CHARGAN_0.2; docs/CLUSTER.md) */
/* ------------------------------------------------------------------ */

/** Makes the trainer one rank of a data-parallel run over the MPI
 *  communicator *comm (a pointer to an MPI_Comm, comm_size ==
 *  sizeof(MPI_Comm): this header does not include mpi.h, and the ABI is the
 *  same with and without MPI).  The library never calls MPI_Init: the
 *  application initialises MPI before and finalises it after the trainer is
 *  freed.  Collective: every rank of comm calls it, after setting the same
 *  corpus, with the same configuration.
 *
 *  cfg.batch stays the GLOBAL batch B and must be a multiple of the number of
 *  ranks N: every step all ranks draw the same B windows (and the same noise)
 *  from the shared seed, and rank r computes rows r B/N .. (r+1) B/N - 1.
 *  Sampling in the adversarial steps uses one RNG stream per global row, so
 *  a run on N ranks follows the run on one rank with batch B up to float
 *  rounding.  Gradients of the generator and the discriminator are averaged
 *  (MPI_Allreduce) before every optimizer step, as are the reported losses,
 *  the discriminator accuracy and the REINFORCE baseline.  Every rank draws
 *  the recurrent-dropout masks of the whole batch and keeps its rows, so
 *  dropout too follows one process, and a checkpoint's RNGs are every rank's.
 *  The call copies rank 0's parameters, optimizer moments, RNGs and baseline
 *  to all ranks and checks that the configuration (the trainer's, both
 *  optimizers' and the models' dropout), corpus, step counters and parameter
 *  counts agree.  A rank that cannot attach (no corpus, attached already)
 *  fails, and so do the others, without waiting for it.
 *
 *  chargan_trainer_save() writes only on rank 0 (other ranks return
 *  CHARGAN_OK without writing); any rank can load the checkpoint and attach
 *  again, with any N that divides the batch.  A collective that does not
 *  complete within the timeout (chargan_trainer_set_mpi_timeout) fails with
 *  CHARGAN_E_IO naming the step; the communicator is then unusable and the
 *  application should call MPI_Abort.
 *
 *  Errors: CHARGAN_E_UNSUPPORTED (built without MPI), CHARGAN_E_INVALID (NULL,
 *  comm_size wrong, batch not a multiple of N, ranks that disagree),
 *  CHARGAN_E_STATE (MPI not initialised, no corpus, already attached),
 *  CHARGAN_E_IO (MPI failure), CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_trainer_set_mpi_comm(chargan_trainer *tr, const void *comm,
                                                        size_t comm_size);
/** Seconds a rank waits for the others in one collective before failing
 *  (default 300; 0 < seconds <= 1e6).  Local, not collective.
 *  Errors: CHARGAN_E_UNSUPPORTED (built without MPI), CHARGAN_E_INVALID. */
CHARGAN_API chargan_status chargan_trainer_set_mpi_timeout(chargan_trainer *tr, double seconds);
/** This trainer's rank and the number of ranks (0 and 1 when not attached or
 *  built without MPI).  Either pointer may be NULL.  Errors: CHARGAN_E_INVALID. */
CHARGAN_API chargan_status chargan_trainer_mpi_rank(const chargan_trainer *tr, int *rank,
                                                    int *size);

/* ------------------------------------------------------------------ */
/* Metrics                                                             */
/* ------------------------------------------------------------------ */

/** NLL of one long id stream (nats/token): the stream is cut into n_streams
 *  contiguous parts that are read in parallel, the state carried across the
 *  whole part, from a zero noise vector.  With L = (n - 1) / n_streams, part s
 *  reads ids[s L] to ids[s L + L - 1] and predicts the id after each, so
 *  ids[1] to ids[n_streams L] are each predicted once (a part starts at the
 *  id its predecessor predicted last; the rest of the division is left out).
 *  The way char-RNN work reports held-out bits per character.
 *  Generator only.  Errors: CHARGAN_E_INVALID (n < 2 * n_streams),
 *  CHARGAN_E_RANGE (id outside the vocabulary), CHARGAN_E_NOMEM,
 *  CHARGAN_E_NUMERIC (not finite, as chargan_model_nll()). */
CHARGAN_API chargan_status chargan_model_stream_nll(chargan_model *model, const int32_t *ids,
                                                    size_t n, uint32_t n_streams, double *nll);

/** NLL-oracle (SeqGAN): samples opts->n_streams sequences of opts->length
 *  tokens from generator (after its start id) and returns the mean per-token
 *  NLL that oracle (any generator of the same vocabulary) gives them, each
 *  scored after the oracle's start id.  Errors: as chargan_model_sample_ids()
 *  and chargan_model_nll(), CHARGAN_E_INVALID if the vocabularies differ. */
CHARGAN_API chargan_status chargan_nll_oracle(chargan_model *generator, chargan_model *oracle,
                                              const chargan_sample_options *opts, double *nll);

/** Corpus BLEU as the text-GAN literature reports it (Texygen's protocol):
 *  for each hypothesis, sentence BLEU-n against ALL references (uniform
 *  weights over 1..n-grams, clipped counts, brevity penalty against the
 *  closest reference length, smoothing "method 1" of Chen & Cherry 2014:
 *  0.1 added to a zero n-gram match count), averaged over hypotheses.
 *  Words are maximal runs of non-white-space bytes.  bleu receives max_n - 1
 *  values: BLEU-2 .. BLEU-max_n (2 <= max_n <= 8).  Thread-safe.
 *  Errors: CHARGAN_E_INVALID (NULL, counts 0, max_n out of range), CHARGAN_E_NOMEM. */
CHARGAN_API chargan_status chargan_bleu(const char *const *hypotheses, size_t n_hyp,
                                        const char *const *references, size_t n_ref,
                                        uint32_t max_n, double *bleu);
/** Self-BLEU: each text scored against all the others, never itself (a text
 *  is excluded by position, so duplicates elsewhere still count), averaged.
 *  n >= 2.  Same output and errors as chargan_bleu(). */
CHARGAN_API chargan_status chargan_self_bleu(const char *const *texts, size_t n, uint32_t max_n,
                                             double *bleu);

/** Discriminator accuracy on n_batches batches of held-out real windows
 *  against as many generated batches (final-step head, threshold 0.5).
 *  Changes no parameter.  Under MPI it is collective: each rank judges its
 *  rows and every rank gets the accuracy of the whole batches.  Errors:
 *  CHARGAN_E_STATE (no discriminator, no corpus or no held-out data),
 *  CHARGAN_E_NUMERIC (the generator's logits are not finite, so its samples
 *  mean nothing; the discriminator steps refuse them likewise),
 *  CHARGAN_E_CANCELLED (chargan_trainer_request_stop(), before the next
 *  batch; under MPI on any rank), CHARGAN_E_IO (MPI). */
CHARGAN_API chargan_status chargan_trainer_eval_discriminator(chargan_trainer *tr,
                                                              uint32_t n_batches,
                                                              double *accuracy);

#ifdef __cplusplus
}
#endif

#endif /* CHARGAN_H */
