/* tokenizer.c - the character-level tokenizer: UTF-8 code points <-> ids
 * ranked by frequency, and its vocabulary file (docs/FORMATS.md).
 *
 * Counts live in a direct table for U+0000..U+00FF and an open-addressing
 * hash map for the rest; the vocabulary is the ranked list of every counted
 * character, cut at max_vocab.  Encoding looks code points up the same way
 * (a 256-entry id table that already includes lower-casing, then a hash map),
 * so it allocates nothing and costs one table load per ASCII byte.
 *
 * Rules callers may rely on:
 * - decode(encode(text)) == text for text whose characters are all in the
 *   vocabulary, except that with fold_crlf each "\r\n" comes back as "\n"
 *   (and with lowercase, folded letters come back in lower case);
 * - CRLF folding looks only inside one call: a "\r" ending one fit or encode
 *   and a "\n" starting the next are two characters;
 * - a failed fit (invalid UTF-8 under the strict policy, or out of memory)
 *   leaves the counts and the vocabulary exactly as they were. */
#include "tokenizer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- file format constants */

static const uint8_t vocab_magic[8] = {'C', 'G', 'V', 'O', 'C', 'A', 'B', '\0'};
#define VOCAB_VERSION 1u
#define VOCAB_HEADER_SIZE 28u
#define VOCAB_ENTRY_SIZE 12u
#define VOCAB_CRC_SIZE 4u
/* More entries than code points cannot be valid (no duplicates). */
#define VOCAB_MAX_ENTRIES 0x110000u
#define VOCAB_MAX_FILE_SIZE ((size_t)64 << 20)

#define MAX_CODEPOINT 0x10FFFFu
#define REPLACEMENT_CHAR 0xFFFDu

/* ---------------------------------------------------------------- code point -> u64 hash map */

/* Open addressing, linear probing, capacity a power of two kept at least
 * twice the length so probes stay short and always reach an empty slot. */
#define EMPTY_KEY 0xFFFFFFFFu /* not a code point */

typedef struct cp_slot {
    uint32_t key;
    uint64_t val;
} cp_slot;

typedef struct cp_map {
    cp_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t len;
} cp_map;

static inline size_t cp_hash(uint32_t x)
{
    /* lowbias32 (Chris Wellons): code points are dense in small ranges. */
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

static inline cp_slot *map_find(const cp_map *m, uint32_t key)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = cp_hash(key) & mask;; i = (i + 1) & mask) {
        cp_slot *s = &m->slots[i];
        if (s->key == key)
            return s;
        if (s->key == EMPTY_KEY)
            return NULL;
    }
}

/* Inserts a key known to be absent into a map known to have room. */
static void map_put_new(cp_map *m, uint32_t key, uint64_t val)
{
    size_t mask = m->cap - 1;
    size_t i = cp_hash(key) & mask;
    while (m->slots[i].key != EMPTY_KEY)
        i = (i + 1) & mask;
    m->slots[i].key = key;
    m->slots[i].val = val;
    m->len++;
}

/* Makes room for n entries in all.  On failure the map is unchanged.  n never
 * exceeds the number of code points, so the sizes below cannot overflow. */
static bool map_reserve(cp_map *m, size_t n)
{
    if (n <= m->cap / 2)
        return true;
    size_t cap = 16;
    while (cap / 2 < n)
        cap *= 2;
    cp_slot *slots = cg_malloc(cap * sizeof(cp_slot));
    if (!slots)
        return false;
    for (size_t i = 0; i < cap; i++)
        slots[i].key = EMPTY_KEY;
    cp_map grown = {slots, cap, 0};
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key != EMPTY_KEY)
            map_put_new(&grown, m->slots[i].key, m->slots[i].val);
    cg_free(m->slots);
    *m = grown;
    return true;
}

static void map_free(cp_map *m)
{
    cg_free(m->slots);
    memset(m, 0, sizeof *m);
}

static bool map_copy(cp_map *dst, const cp_map *src)
{
    memset(dst, 0, sizeof *dst);
    if (src->cap == 0)
        return true;
    dst->slots = cg_malloc(src->cap * sizeof(cp_slot));
    if (!dst->slots)
        return false;
    memcpy(dst->slots, src->slots, src->cap * sizeof(cp_slot));
    dst->cap = src->cap;
    dst->len = src->len;
    return true;
}

/* ---------------------------------------------------------------- the handle */

typedef struct vocab_entry {
    uint32_t cp;
    uint64_t count;
} vocab_entry;

struct chargan_tokenizer {
    cg_error err;
    chargan_tokenizer_options opts; /* ours: struct_size = sizeof, flags 0 or 1 */
    uint64_t low_counts[256];       /* counts of U+0000..U+00FF */
    cp_map high_counts;             /* counts of U+0100 and up (0 after a rolled-back fit) */
    vocab_entry *entries;           /* every counted character, ranked; entry i has id i + 2 */
    size_t n_entries;
    uint32_t vocab_size;  /* reserved ids + the entries kept under max_vocab */
    int32_t low_ids[256]; /* id of each code point < 256, lower-casing applied */
    cp_map high_ids;      /* code point >= 256 -> id, for entries inside the vocabulary */
    bool attached;        /* a model's: its ids are the model's, so it is not fitted again */
};

static inline bool is_scalar_value(uint32_t cp)
{
    return cp <= MAX_CODEPOINT && (cp < 0xD800 || cp > 0xDFFF);
}

/* The documented lower-casing: ASCII A-Z and Latin-1 U+00C0..U+00DE except
 * U+00D7 (the multiplication sign) move up by 0x20. */
static inline bool is_folded_upper(uint32_t cp)
{
    return (cp >= 'A' && cp <= 'Z') || (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7);
}

static inline uint32_t fold_case(const chargan_tokenizer *tok, uint32_t cp)
{
    return tok->opts.lowercase && is_folded_upper(cp) ? cp + 0x20 : cp;
}

static void reset_vocab(chargan_tokenizer *tok)
{
    cg_free(tok->entries);
    tok->entries = NULL;
    tok->n_entries = 0;
    tok->vocab_size = CHARGAN_NUM_RESERVED_IDS;
    for (int c = 0; c < 256; c++)
        tok->low_ids[c] = CHARGAN_ID_UNKNOWN;
    map_free(&tok->high_ids);
}

static void tokenizer_options_defaults(chargan_tokenizer_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->max_vocab = 0;
    opts->lowercase = 0;
    opts->fold_crlf = 1;
    opts->utf8_policy = CHARGAN_UTF8_STRICT;
}

chargan_status chargan_tokenizer_options_init_sized(chargan_tokenizer_options *opts,
                                                    size_t struct_size)
{
    chargan_tokenizer_options defaults;
    tokenizer_options_defaults(&defaults);
    return cg_init_struct(opts, struct_size, &defaults, sizeof defaults, sizeof defaults,
                          "chargan_tokenizer_options_init");
}

/* Validates opts into *mine (normalised); err may be NULL. */
static chargan_status take_options(cg_error *err, const chargan_tokenizer_options *opts,
                                   chargan_tokenizer_options *mine)
{
    chargan_tokenizer_options_init(mine);
    if (!opts)
        return CHARGAN_OK;
    if (cg_check_struct_size(err, opts, sizeof *opts, sizeof *opts, "tokenizer options", "opts",
                             "chargan_tokenizer_options_init") != CHARGAN_OK)
        return CHARGAN_E_INVALID;
    if (opts->max_vocab != 0 && opts->max_vocab < CHARGAN_NUM_RESERVED_IDS + 1)
        return cg_fail(err, CHARGAN_E_INVALID,
                       "tokenizer options: max_vocab %u must be 0 (no cap) or at least %d",
                       opts->max_vocab, CHARGAN_NUM_RESERVED_IDS + 1);
    if (opts->utf8_policy != CHARGAN_UTF8_STRICT && opts->utf8_policy != CHARGAN_UTF8_REPLACE)
        return cg_fail(err, CHARGAN_E_INVALID,
                       "tokenizer options: utf8_policy %d is neither CHARGAN_UTF8_STRICT (0) nor "
                       "CHARGAN_UTF8_REPLACE (1)",
                       opts->utf8_policy);
    mine->max_vocab = opts->max_vocab;
    mine->lowercase = opts->lowercase != 0;
    mine->fold_crlf = opts->fold_crlf != 0;
    mine->utf8_policy = opts->utf8_policy;
    return CHARGAN_OK;
}

static chargan_tokenizer *alloc_tokenizer(const chargan_tokenizer_options *mine)
{
    chargan_tokenizer *tok = cg_calloc(1, sizeof *tok);
    if (!tok)
        return NULL;
    tok->opts = *mine;
    reset_vocab(tok);
    return tok;
}

chargan_status chargan_tokenizer_new(const chargan_tokenizer_options *opts, chargan_tokenizer **out)
{
    if (!out)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_new: out is NULL");
    chargan_tokenizer_options mine;
    chargan_status st = take_options(NULL, opts, &mine);
    if (st != CHARGAN_OK)
        return st;
    chargan_tokenizer *tok = alloc_tokenizer(&mine);
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_NOMEM, "out of memory creating a tokenizer");
    *out = tok;
    return CHARGAN_OK;
}

void chargan_tokenizer_free(chargan_tokenizer *tok)
{
    if (!tok)
        return;
    map_free(&tok->high_counts);
    map_free(&tok->high_ids);
    cg_free(tok->entries);
    cg_free(tok);
}

const char *chargan_tokenizer_last_error(const chargan_tokenizer *tok)
{
    return tok ? tok->err.msg : "";
}

/* Functions that take a const handle still record their failure in it: the
 * handle is never a const object (the library allocates it) and the header's
 * one-thread-per-handle rule covers the write. */
static cg_error *err_of(const chargan_tokenizer *tok)
{
    return (cg_error *)&tok->err;
}

/* ---------------------------------------------------------------- reading characters */

/* What next_char found at s[*i]. */
enum { CH_SKIP = -1, CH_INVALID = -2 };

/* Reads the character at s[*i] (i < len) and advances *i past it.  Returns
 * its code point, case-folded; CH_SKIP for a '\r' folded into the '\n' that
 * follows; CH_INVALID for a maximal invalid subsequence (of *bad bytes). */
static inline int64_t next_char(const chargan_tokenizer *tok, const uint8_t *s, size_t len,
                                size_t *i, size_t *bad)
{
    uint8_t b = s[*i];
    if (b < 0x80) {
        if (b == '\r' && tok->opts.fold_crlf && *i + 1 < len && s[*i + 1] == '\n') {
            *i += 1;
            return CH_SKIP;
        }
        *i += 1;
        return fold_case(tok, b);
    }
    uint32_t cp;
    size_t n = cg_utf8_decode(s + *i, len - *i, &cp, bad);
    if (n == 0) {
        *i += *bad;
        return CH_INVALID;
    }
    *i += n;
    return fold_case(tok, cp);
}

/* The fact alone: what to do about it depends on the caller (a C program
 * may choose CHARGAN_UTF8_REPLACE, a command-line user converts the file). */
static chargan_status utf8_error(cg_error *err, const uint8_t *s, size_t offset)
{
    return cg_fail(err, CHARGAN_E_UTF8, "invalid UTF-8 at byte offset %zu (byte 0x%02X)", offset,
                   s[offset]);
}

/* ---------------------------------------------------------------- fitting */

/* Adds the characters of s[0..len) to the counts.  On failure *stop is the
 * offset of the character that was not counted; those before it were. */
static chargan_status count_text(chargan_tokenizer *tok, const uint8_t *s, size_t len, size_t *stop)
{
    size_t i = 0, bad;
    while (i < len) {
        size_t at = i;
        int64_t c = next_char(tok, s, len, &i, &bad);
        if (c == CH_INVALID && tok->opts.utf8_policy == CHARGAN_UTF8_STRICT) {
            *stop = at;
            return utf8_error(&tok->err, s, at);
        }
        if (c < 0) /* CH_SKIP, and replaced bytes under CHARGAN_UTF8_REPLACE, count nothing */
            continue;
        uint64_t *count;
        cp_slot *slot;
        if (c < 256) {
            count = &tok->low_counts[c];
        } else if ((slot = map_find(&tok->high_counts, (uint32_t)c)) != NULL) {
            count = &slot->val;
        } else if (map_reserve(&tok->high_counts, tok->high_counts.len + 1)) {
            map_put_new(&tok->high_counts, (uint32_t)c, 1);
            continue;
        } else {
            *stop = at;
            return cg_fail(&tok->err, CHARGAN_E_NOMEM,
                           "out of memory counting characters (at byte offset %zu)", at);
        }
        /* Only a loaded vocabulary's counts get this large: wrapping to 0
         * would silently re-rank the ids. */
        if (*count == UINT64_MAX) {
            *stop = at;
            return cg_fail(&tok->err, CHARGAN_E_RANGE,
                           "the count of U+%04" PRIX64 " would overflow (at byte offset %zu)",
                           (uint64_t)c, at);
        }
        (*count)++;
    }
    *stop = len;
    return CHARGAN_OK;
}

/* Undoes count_text() for the characters starting before stop.  They fold
 * the same way: a '\r' just before stop was not followed by '\n' (a failing
 * character never starts with '\n'). */
static void uncount_text(chargan_tokenizer *tok, const uint8_t *s, size_t len, size_t stop)
{
    size_t i = 0, bad;
    while (i < stop) {
        int64_t c = next_char(tok, s, len, &i, &bad);
        if (c >= 0 && c < 256) {
            tok->low_counts[c]--;
        } else if (c >= 256) {
            /* count_text inserted it (the test only guards the invariant); it
             * stays in the map with count 0, never ranked */
            cp_slot *slot = map_find(&tok->high_counts, (uint32_t)c);
            if (slot)
                slot->val--;
        }
    }
}

/* The fit rule: decreasing count, then increasing code point. */
static int rank_cmp(const void *pa, const void *pb)
{
    const vocab_entry *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return (a->cp > b->cp) - (a->cp < b->cp);
}

static inline bool ranks_before(const vocab_entry *a, const vocab_entry *b)
{
    return rank_cmp(a, b) < 0;
}

/* Rebuilds the ranked entries and the lookup tables from the counts.  On
 * failure the tokenizer keeps its previous vocabulary. */
static chargan_status rebuild_vocab(chargan_tokenizer *tok)
{
    size_t n = 0;
    for (int c = 0; c < 256; c++)
        n += tok->low_counts[c] != 0;
    for (size_t i = 0; i < tok->high_counts.cap; i++)
        n += tok->high_counts.slots[i].key != EMPTY_KEY && tok->high_counts.slots[i].val != 0;
    vocab_entry *entries = cg_malloc(n * sizeof *entries); /* n <= 0x110000 */
    if (!entries)
        return cg_fail(&tok->err, CHARGAN_E_NOMEM, "out of memory ranking %zu characters", n);
    size_t k = 0;
    for (uint32_t c = 0; c < 256; c++)
        if (tok->low_counts[c] != 0)
            entries[k++] = (vocab_entry){c, tok->low_counts[c]};
    for (size_t i = 0; i < tok->high_counts.cap; i++) {
        const cp_slot *s = &tok->high_counts.slots[i];
        if (s->key != EMPTY_KEY && s->val != 0)
            entries[k++] = (vocab_entry){s->key, s->val};
    }
    qsort(entries, n, sizeof *entries, rank_cmp);

    size_t kept = n;
    if (tok->opts.max_vocab != 0 && kept > tok->opts.max_vocab - CHARGAN_NUM_RESERVED_IDS)
        kept = tok->opts.max_vocab - CHARGAN_NUM_RESERVED_IDS;
    size_t n_high = 0;
    for (size_t i = 0; i < kept; i++)
        n_high += entries[i].cp >= 256;
    cp_map ids = {0};
    if (n_high > 0 && !map_reserve(&ids, n_high)) {
        cg_free(entries);
        return cg_fail(&tok->err, CHARGAN_E_NOMEM, "out of memory indexing %zu characters", n_high);
    }
    int32_t raw[256];
    for (int c = 0; c < 256; c++)
        raw[c] = CHARGAN_ID_UNKNOWN;
    for (size_t i = 0; i < kept; i++) {
        int32_t id = (int32_t)(i + CHARGAN_NUM_RESERVED_IDS);
        if (entries[i].cp < 256)
            raw[entries[i].cp] = id;
        else
            map_put_new(&ids, entries[i].cp, (uint64_t)id);
    }

    reset_vocab(tok);
    tok->entries = entries;
    tok->n_entries = n;
    tok->vocab_size = (uint32_t)(kept + CHARGAN_NUM_RESERVED_IDS);
    for (uint32_t c = 0; c < 256; c++)
        tok->low_ids[c] = raw[fold_case(tok, c)];
    tok->high_ids = ids;
    return CHARGAN_OK;
}

chargan_status chargan_tokenizer_fit(chargan_tokenizer *tok, const char *text, size_t len)
{
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_fit: tok is NULL");
    /* A refit would renumber the characters and could pass the model's
     * vocab_size: ids the model then reads past its tables. */
    if (tok->attached)
        return cg_fail(&tok->err, CHARGAN_E_STATE, "chargan_tokenizer_fit: this tokenizer "
                       "belongs to a model, whose ids it numbers; fit a copy and attach that");
    /* (NULL, 0) is empty text, as an empty array's data() may be: nothing reads it */
    if (!text && len > 0)
        return cg_fail(&tok->err, CHARGAN_E_INVALID, "chargan_tokenizer_fit: text is NULL");
    const uint8_t *s = (const uint8_t *)text;
    size_t stop;
    chargan_status st = count_text(tok, s, len, &stop);
    if (st == CHARGAN_OK)
        st = rebuild_vocab(tok);
    /* A failed fit leaves the counts as they were, so the next one is exact. */
    if (st != CHARGAN_OK)
        uncount_text(tok, s, len, stop);
    return st;
}

/* ---------------------------------------------------------------- queries */

uint32_t cg_tokenizer_vocab_size(const chargan_tokenizer *tok)
{
    return tok->vocab_size;
}

chargan_status chargan_tokenizer_vocab_size(const chargan_tokenizer *tok, uint32_t *size)
{
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_vocab_size: tok is NULL");
    if (!size)
        return cg_fail(err_of(tok), CHARGAN_E_INVALID,
                       "chargan_tokenizer_vocab_size: size is NULL");
    *size = tok->vocab_size;
    return CHARGAN_OK;
}

chargan_status chargan_tokenizer_id_info(const chargan_tokenizer *tok, int32_t id,
                                         uint32_t *codepoint, uint64_t *count)
{
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_id_info: tok is NULL");
    if (!codepoint)
        return cg_fail(err_of(tok), CHARGAN_E_INVALID,
                       "chargan_tokenizer_id_info: codepoint is NULL");
    if (id < CHARGAN_NUM_RESERVED_IDS || (uint32_t)id >= tok->vocab_size)
        return cg_fail(err_of(tok), CHARGAN_E_RANGE,
                       "id %d has no code point (reserved ids are 0..%d, characters %d..%u)", id,
                       CHARGAN_NUM_RESERVED_IDS - 1, CHARGAN_NUM_RESERVED_IDS, tok->vocab_size - 1);
    const vocab_entry *e = &tok->entries[id - CHARGAN_NUM_RESERVED_IDS];
    *codepoint = e->cp;
    if (count)
        *count = e->count;
    return CHARGAN_OK;
}

static inline int32_t lookup_id(const chargan_tokenizer *tok, uint32_t cp)
{
    if (cp < 256)
        return tok->low_ids[cp];
    const cp_slot *s = map_find(&tok->high_ids, cp);
    return s ? (int32_t)s->val : CHARGAN_ID_UNKNOWN;
}

chargan_status chargan_tokenizer_lookup(const chargan_tokenizer *tok, uint32_t codepoint,
                                        int32_t *id)
{
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_lookup: tok is NULL");
    if (!id)
        return cg_fail(err_of(tok), CHARGAN_E_INVALID, "chargan_tokenizer_lookup: id is NULL");
    if (!is_scalar_value(codepoint))
        return cg_fail(err_of(tok), CHARGAN_E_INVALID,
                       "chargan_tokenizer_lookup: 0x%X is not a Unicode scalar value", codepoint);
    *id = lookup_id(tok, codepoint);
    return CHARGAN_OK;
}

/* ---------------------------------------------------------------- encoding */

/* Encodes s[*pos..len), writing the first cap ids; counts them all, or with
 * stop_when_full stops once cap are written, *pos after the last character
 * encoded.  len is the whole text's even then, so a CR LF pair or a UTF-8
 * sequence is never cut and error offsets stay the text's. */
static chargan_status encode_core(chargan_tokenizer *tok, const uint8_t *s, size_t len,
                                  size_t *pos, int32_t *ids, size_t cap, bool stop_when_full,
                                  size_t *n_ids)
{
    const bool strict = tok->opts.utf8_policy == CHARGAN_UTF8_STRICT;
    const bool crlf = tok->opts.fold_crlf;
    const int32_t *low = tok->low_ids;
    size_t i = *pos, k = 0;
    while (i < len && (k < cap || !stop_when_full)) {
        uint8_t b = s[i];
        int32_t id;
        if (b < 0x80) {
            /* the fast path: ASCII, lower-casing already in the table */
            if (b == '\r' && crlf && i + 1 < len && s[i + 1] == '\n') {
                i++;
                continue;
            }
            id = low[b];
            i++;
        } else {
            uint32_t cp;
            size_t bad;
            size_t n = cg_utf8_decode(s + i, len - i, &cp, &bad);
            if (n == 0) {
                if (strict)
                    return utf8_error(&tok->err, s, i);
                id = CHARGAN_ID_UNKNOWN;
                i += bad;
            } else {
                id = lookup_id(tok, cp);
                i += n;
            }
        }
        if (k < cap)
            ids[k] = id;
        k++;
    }
    *pos = i;
    *n_ids = k;
    return CHARGAN_OK;
}

chargan_status chargan_tokenizer_encode(chargan_tokenizer *tok, const char *text, size_t len,
                                        int32_t *ids, size_t cap, size_t *n_ids)
{
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_encode: tok is NULL");
    if ((!text && len > 0) || !n_ids)
        return cg_fail(&tok->err, CHARGAN_E_INVALID, "chargan_tokenizer_encode: %s is NULL",
                       !n_ids ? "n_ids" : "text");
    size_t n, pos = 0;
    chargan_status st = encode_core(tok, (const uint8_t *)text, len, &pos, ids, ids ? cap : 0,
                                    false, &n);
    if (st != CHARGAN_OK)
        return st;
    *n_ids = n;
    if (ids && n > cap)
        return cg_fail(&tok->err, CHARGAN_E_RANGE,
                       "chargan_tokenizer_encode: %zu ids do not fit in a buffer of %zu", n, cap);
    return CHARGAN_OK;
}

chargan_status cg_tokenizer_encode_alloc(chargan_tokenizer *tok, const char *text, size_t len,
                                         int32_t **ids, size_t *n)
{
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_INVALID, "cg_tokenizer_encode_alloc: tok is NULL");
    if (!text || !ids || !n)
        return cg_fail(&tok->err, CHARGAN_E_INVALID, "cg_tokenizer_encode_alloc: NULL argument");
    /* One id per byte at most: one pass into a buffer of len ids. */
    size_t bytes;
    int32_t *buf = NULL;
    if (cg_mul_size(len, sizeof *buf, &bytes))
        buf = cg_malloc(bytes);
    if (!buf)
        return cg_fail(&tok->err, CHARGAN_E_NOMEM, "out of memory encoding %zu bytes", len);
    size_t count, pos = 0;
    chargan_status st = encode_core(tok, (const uint8_t *)text, len, &pos, buf, len, false, &count);
    if (st != CHARGAN_OK) {
        cg_free(buf);
        return st;
    }
    *ids = buf;
    *n = count;
    return CHARGAN_OK;
}

chargan_status cg_tokenizer_encode_some(chargan_tokenizer *tok, const char *text, size_t len,
                                        size_t *pos, int32_t *ids, size_t cap, size_t *n)
{
    return encode_core(tok, (const uint8_t *)text, len, pos, ids, cap, true, n);
}

/* ---------------------------------------------------------------- decoding */

/* Decodes ids, writing the bytes that fit in cap (0 when buf is NULL); *len
 * gets the full length. */
static chargan_status decode_core(chargan_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                  uint8_t *buf, size_t cap, size_t *len)
{
    size_t pos = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        uint32_t cp;
        if (id == CHARGAN_ID_START)
            continue;
        if (id == CHARGAN_ID_UNKNOWN)
            cp = REPLACEMENT_CHAR;
        else if (id > CHARGAN_ID_UNKNOWN && (uint32_t)id < tok->vocab_size)
            cp = tok->entries[id - CHARGAN_NUM_RESERVED_IDS].cp;
        else
            return cg_fail(&tok->err, CHARGAN_E_RANGE,
                           "chargan_tokenizer_decode: ids[%zu] = %d is outside the vocabulary "
                           "(0..%u)",
                           i, id, tok->vocab_size - 1);
        if (cp < 0x80) { /* the common case, without the copy below */
            if (pos < cap)
                buf[pos] = (uint8_t)cp;
            pos++;
            continue;
        }
        uint8_t utf8[4];
        size_t n = cg_utf8_encode(cp, utf8);
        if (buf && cap >= n && pos <= cap - n)
            memcpy(buf + pos, utf8, n);
        pos += n;
    }
    *len = pos;
    return CHARGAN_OK;
}

chargan_status chargan_tokenizer_decode(chargan_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                        char *buf, size_t cap, size_t *len)
{
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_decode: tok is NULL");
    if ((!ids && n_ids > 0) || !len)
        return cg_fail(&tok->err, CHARGAN_E_INVALID, "chargan_tokenizer_decode: %s is NULL",
                       !len ? "len" : "ids");
    size_t n;
    chargan_status st = decode_core(tok, ids, n_ids, (uint8_t *)buf, buf ? cap : 0, &n);
    if (st != CHARGAN_OK)
        return st;
    *len = n;
    if (!buf)
        return CHARGAN_OK;
    if (n > cap)
        return cg_fail(&tok->err, CHARGAN_E_RANGE,
                       "chargan_tokenizer_decode: %zu bytes do not fit in a buffer of %zu", n, cap);
    if (cap > n)
        buf[n] = '\0';
    return CHARGAN_OK;
}

chargan_status cg_tokenizer_decode_alloc(chargan_tokenizer *tok, const int32_t *ids, size_t n,
                                         char **text, size_t *len)
{
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_INVALID, "cg_tokenizer_decode_alloc: tok is NULL");
    if (!ids || !text || !len)
        return cg_fail(&tok->err, CHARGAN_E_INVALID, "cg_tokenizer_decode_alloc: NULL argument");
    size_t need;
    chargan_status st = decode_core(tok, ids, n, NULL, 0, &need);
    if (st != CHARGAN_OK)
        return st;
    char *buf = cg_malloc(need + 1); /* need <= 4 * n: no overflow */
    if (!buf)
        return cg_fail(&tok->err, CHARGAN_E_NOMEM, "out of memory decoding %zu bytes", need);
    decode_core(tok, ids, n, (uint8_t *)buf, need, &need);
    buf[need] = '\0';
    *text = buf;
    *len = need;
    return CHARGAN_OK;
}

/* ---------------------------------------------------------------- copies */

void cg_tokenizer_attach(chargan_tokenizer *tok)
{
    tok->attached = true;
}

chargan_tokenizer *cg_tokenizer_clone(const chargan_tokenizer *tok)
{
    if (!tok) {
        cg_fail(NULL, CHARGAN_E_INVALID, "cg_tokenizer_clone: tok is NULL");
        return NULL;
    }
    chargan_tokenizer *c = cg_malloc(sizeof *c);
    if (!c)
        goto oom;
    memcpy(c, tok, sizeof *c);
    c->err.msg[0] = '\0';
    c->attached = false;
    c->entries = NULL;
    memset(&c->high_counts, 0, sizeof c->high_counts);
    memset(&c->high_ids, 0, sizeof c->high_ids);
    if (!map_copy(&c->high_counts, &tok->high_counts) || !map_copy(&c->high_ids, &tok->high_ids))
        goto oom;
    c->entries = cg_malloc(tok->n_entries * sizeof *tok->entries);
    if (!c->entries)
        goto oom;
    if (tok->n_entries)
        memcpy(c->entries, tok->entries, tok->n_entries * sizeof *tok->entries);
    return c;
oom:
    chargan_tokenizer_free(c);
    cg_fail(NULL, CHARGAN_E_NOMEM, "out of memory copying a tokenizer");
    return NULL;
}

/* ---------------------------------------------------------------- saving */

void cg_tokenizer_write(const chargan_tokenizer *tok, cg_writer *w)
{
    size_t start = w->size;
    cg_put_bytes(w, vocab_magic, sizeof vocab_magic);
    cg_put_u32(w, VOCAB_VERSION);
    cg_put_u32(w, tok->opts.max_vocab);
    cg_put_u8(w, (uint8_t)tok->opts.lowercase);
    cg_put_u8(w, (uint8_t)tok->opts.fold_crlf);
    cg_put_u8(w, (uint8_t)tok->opts.utf8_policy);
    cg_put_u8(w, 0);
    cg_put_u32(w, tok->vocab_size);
    cg_put_u32(w, (uint32_t)tok->n_entries);
    for (size_t i = 0; i < tok->n_entries; i++) {
        cg_put_u32(w, tok->entries[i].cp);
        cg_put_u64(w, tok->entries[i].count);
    }
    if (!w->failed)
        cg_put_u32(w, cg_crc32(0, w->data + start, w->size - start));
}

chargan_status chargan_tokenizer_save_buffer(const chargan_tokenizer *tok, void **data,
                                             size_t *size)
{
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_save_buffer: tok is NULL");
    if (!data || !size)
        return cg_fail(err_of(tok), CHARGAN_E_INVALID, "chargan_tokenizer_save_buffer: %s is NULL",
                       !data ? "data" : "size");
    cg_writer w;
    cg_writer_init(&w);
    cg_tokenizer_write(tok, &w);
    if (w.failed) {
        cg_writer_free(&w);
        return cg_fail(err_of(tok), CHARGAN_E_NOMEM, "out of memory serialising a vocabulary");
    }
    *data = w.data;
    *size = w.size;
    return CHARGAN_OK;
}

chargan_status chargan_tokenizer_save(chargan_tokenizer *tok, const char *path)
{
    if (!tok)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_save: tok is NULL");
    if (!path)
        return cg_fail(&tok->err, CHARGAN_E_INVALID, "chargan_tokenizer_save: path is NULL");
    void *data;
    size_t size;
    chargan_status st = chargan_tokenizer_save_buffer(tok, &data, &size);
    if (st != CHARGAN_OK)
        return st;
    st = cg_write_file_atomic(&tok->err, path, data, size);
    cg_free(data);
    return st;
}

/* ---------------------------------------------------------------- loading */

#define BAD(...) cg_fail(NULL, CHARGAN_E_FORMAT, "vocabulary: " __VA_ARGS__)

static chargan_status truncated(const cg_reader *r, const char *field, size_t need)
{
    return BAD("truncated at byte offset %zu reading field '%s' (%zu bytes, %zu left)", r->pos,
               field, need, cg_reader_left(r));
}

/* Offsets of the header fields (docs/FORMATS.md). */
enum {
    OFF_VERSION = 8,
    OFF_MAX_VOCAB = 12,
    OFF_LOWERCASE = 16,
    OFF_FOLD_CRLF = 17,
    OFF_UTF8_POLICY = 18,
    OFF_RESERVED = 19,
    OFF_VOCAB_SIZE = 20,
    OFF_N_ENTRIES = 24
};

chargan_status chargan_tokenizer_load_buffer(const void *data, size_t size, chargan_tokenizer **out)
{
    if (!data || !out)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_load_buffer: %s is NULL",
                       !data ? "data" : "out");
    cg_reader r;
    cg_reader_init(&r, data, size);
    const uint8_t *magic;
    if (!cg_get_view(&r, &magic, sizeof vocab_magic))
        return truncated(&r, "magic", sizeof vocab_magic);
    if (memcmp(magic, vocab_magic, sizeof vocab_magic) != 0)
        return BAD("byte offset 0: field 'magic' is not \"CGVOCAB\\0\" (not a vocabulary)");
    uint32_t version;
    if (!cg_get_u32(&r, &version))
        return truncated(&r, "version", 4);
    /* Checked before anything else: a newer format may lay the rest out differently. */
    if (version > VOCAB_VERSION)
        return cg_fail(NULL, CHARGAN_E_UNSUPPORTED,
                       "vocabulary: byte offset %d: format version %u is newer than this "
                       "library's (%u)",
                       OFF_VERSION, version, VOCAB_VERSION);
    if (version == 0)
        return BAD("byte offset %d: field 'version' is 0 (versions start at 1)", OFF_VERSION);

    uint32_t max_vocab, vocab_size, n_entries;
    uint8_t lowercase, fold_crlf, policy, reserved;
    if (!cg_get_u32(&r, &max_vocab))
        return truncated(&r, "max_vocab", 4);
    if (!cg_get_u8(&r, &lowercase))
        return truncated(&r, "lowercase", 1);
    if (!cg_get_u8(&r, &fold_crlf))
        return truncated(&r, "fold_crlf", 1);
    if (!cg_get_u8(&r, &policy))
        return truncated(&r, "utf8_policy", 1);
    if (!cg_get_u8(&r, &reserved))
        return truncated(&r, "reserved", 1);
    if (!cg_get_u32(&r, &vocab_size))
        return truncated(&r, "vocab_size", 4);
    if (!cg_get_u32(&r, &n_entries))
        return truncated(&r, "entry_count", 4);

    /* Sizes before anything is read further or allocated. */
    if (n_entries > VOCAB_MAX_ENTRIES)
        return BAD("byte offset %d: field 'entry_count' is %u, more than the %u code points",
                   OFF_N_ENTRIES, n_entries, VOCAB_MAX_ENTRIES);
    size_t body = (size_t)n_entries * VOCAB_ENTRY_SIZE + VOCAB_CRC_SIZE;
    if (cg_reader_left(&r) != body)
        return BAD("byte offset %u: %u entries and a checksum need %zu bytes, %zu %s",
                   VOCAB_HEADER_SIZE, n_entries, body, cg_reader_left(&r),
                   cg_reader_left(&r) < body ? "left (truncated)" : "follow (trailing bytes)");
    size_t crc_off = VOCAB_HEADER_SIZE + (size_t)n_entries * VOCAB_ENTRY_SIZE;
    const uint8_t *bytes = data;
    uint32_t stored = (uint32_t)bytes[crc_off] | (uint32_t)bytes[crc_off + 1] << 8 |
                      (uint32_t)bytes[crc_off + 2] << 16 | (uint32_t)bytes[crc_off + 3] << 24;
    uint32_t computed = cg_crc32(0, bytes, crc_off);
    if (stored != computed)
        return BAD("byte offset %zu: field 'crc32' is 0x%08X but the bytes before it give 0x%08X",
                   crc_off, stored, computed);

    /* The checksum holds: now the values. */
    if (max_vocab != 0 && max_vocab < CHARGAN_NUM_RESERVED_IDS + 1)
        return BAD("byte offset %d: field 'max_vocab' is %u (0 or at least %d)", OFF_MAX_VOCAB,
                   max_vocab, CHARGAN_NUM_RESERVED_IDS + 1);
    if (lowercase > 1)
        return BAD("byte offset %d: field 'lowercase' is %u (0 or 1)", OFF_LOWERCASE, lowercase);
    if (fold_crlf > 1)
        return BAD("byte offset %d: field 'fold_crlf' is %u (0 or 1)", OFF_FOLD_CRLF, fold_crlf);
    if (policy > CHARGAN_UTF8_REPLACE)
        return BAD("byte offset %d: field 'utf8_policy' is %u (0 or 1)", OFF_UTF8_POLICY, policy);
    if (reserved != 0)
        return BAD("byte offset %d: field 'reserved' is %u (must be 0)", OFF_RESERVED, reserved);
    uint64_t kept = n_entries;
    if (max_vocab != 0 && kept > max_vocab - CHARGAN_NUM_RESERVED_IDS)
        kept = max_vocab - CHARGAN_NUM_RESERVED_IDS;
    if (vocab_size != kept + CHARGAN_NUM_RESERVED_IDS)
        return BAD("byte offset %d: field 'vocab_size' is %u but %u entries under max_vocab %u "
                   "give %llu",
                   OFF_VOCAB_SIZE, vocab_size, n_entries, max_vocab,
                   (unsigned long long)(kept + CHARGAN_NUM_RESERVED_IDS));

    /* Entries: valid, ranked as fitting ranks them; no allocation yet. */
    size_t n_high = 0;
    vocab_entry prev = {0, 0};
    for (uint32_t i = 0; i < n_entries; i++) {
        size_t off = r.pos;
        vocab_entry e;
        cg_get_u32(&r, &e.cp); /* cannot fail: the size was checked */
        cg_get_u64(&r, &e.count);
        if (!is_scalar_value(e.cp))
            return BAD("byte offset %zu: entry %u: code point 0x%X is not a Unicode scalar value",
                       off, i, e.cp);
        if (lowercase && is_folded_upper(e.cp))
            return BAD("byte offset %zu: entry %u: code point U+%04X is upper case but the "
                       "vocabulary lower-cases",
                       off, i, e.cp);
        if (e.count == 0)
            return BAD("byte offset %zu: entry %u: count is 0", off + 4, i);
        if (i > 0 && !ranks_before(&prev, &e))
            return BAD("byte offset %zu: entry %u (U+%04X, count %llu) does not rank after entry "
                       "%u (U+%04X, count %llu): counts must decrease, ties by increasing code "
                       "point",
                       off, i, e.cp, (unsigned long long)e.count, i - 1, prev.cp,
                       (unsigned long long)prev.count);
        n_high += e.cp >= 256;
        prev = e;
    }

    chargan_tokenizer_options opts;
    chargan_tokenizer_options_init(&opts);
    opts.max_vocab = max_vocab;
    opts.lowercase = lowercase;
    opts.fold_crlf = fold_crlf;
    opts.utf8_policy = policy;
    chargan_tokenizer *tok = alloc_tokenizer(&opts);
    if (!tok || (n_high > 0 && !map_reserve(&tok->high_counts, n_high))) {
        chargan_tokenizer_free(tok);
        return cg_fail(NULL, CHARGAN_E_NOMEM, "out of memory loading a vocabulary of %u entries",
                       n_entries);
    }
    cg_reader_init(&r, data, crc_off);
    r.pos = VOCAB_HEADER_SIZE;
    for (uint32_t i = 0; i < n_entries; i++) {
        size_t off = r.pos;
        vocab_entry e;
        cg_get_u32(&r, &e.cp);
        cg_get_u64(&r, &e.count);
        bool dup;
        if (e.cp < 256) {
            dup = tok->low_counts[e.cp] != 0;
            tok->low_counts[e.cp] = e.count;
        } else {
            dup = map_find(&tok->high_counts, e.cp) != NULL;
            if (!dup)
                map_put_new(&tok->high_counts, e.cp, e.count);
        }
        if (dup) {
            chargan_tokenizer_free(tok);
            return BAD("byte offset %zu: entry %u: code point U+%04X appears twice", off, i, e.cp);
        }
    }
    chargan_status st = rebuild_vocab(tok);
    if (st != CHARGAN_OK) {
        chargan_tokenizer_free(tok);
        return cg_fail(NULL, st, "out of memory loading a vocabulary of %u entries", n_entries);
    }
    tok->err.msg[0] = '\0';
    *out = tok;
    return CHARGAN_OK;
}

chargan_status chargan_tokenizer_load(const char *path, chargan_tokenizer **out)
{
    if (!path || !out)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_tokenizer_load: %s is NULL",
                       !path ? "path" : "out");
    uint8_t *data;
    size_t size;
    chargan_status st = cg_read_file(NULL, path, VOCAB_MAX_FILE_SIZE, NULL, &data, &size);
    if (st != CHARGAN_OK)
        return st;
    st = chargan_tokenizer_load_buffer(data, size, out);
    cg_free(data);
    if (st != CHARGAN_OK)
        cg_fail_from(NULL, st, "'%s': ", path);
    return st;
}
