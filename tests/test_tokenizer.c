/* test_tokenizer.c - the character tokenizer: options, fitting and ranking,
 * lower-casing, CRLF folding, UTF-8 policies, the encode and decode buffer
 * protocols, round trips on the bundled corpora, the vocabulary file format
 * (byte-exact, truncated at every offset, every bit flipped, hostile
 * fields), the internal fast paths and allocation failures. */
#define _POSIX_C_SOURCE 200809L
#include "test_common.h"
#include "internal.h"
#include "tokenizer.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

#define assert_msg_has(msg, needle)                                                                \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (needle))

static chargan_tokenizer *new_tok(const chargan_tokenizer_options *opts)
{
    chargan_tokenizer *tok = NULL;
    ck_assert_int_eq(chargan_tokenizer_new(opts, &tok), CHARGAN_OK);
    ck_assert_ptr_nonnull(tok);
    return tok;
}

static chargan_tokenizer *fitted(const chargan_tokenizer_options *opts, const char *text)
{
    chargan_tokenizer *tok = new_tok(opts);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, strlen(text)), CHARGAN_OK);
    return tok;
}

static uint32_t vocab(const chargan_tokenizer *tok)
{
    uint32_t v = 0;
    ck_assert_int_eq(chargan_tokenizer_vocab_size(tok, &v), CHARGAN_OK);
    return v;
}

static int32_t id_of(const chargan_tokenizer *tok, uint32_t cp)
{
    int32_t id = -1;
    ck_assert_int_eq(chargan_tokenizer_lookup(tok, cp, &id), CHARGAN_OK);
    return id;
}

static uint64_t count_of_id(const chargan_tokenizer *tok, int32_t id, uint32_t *cp)
{
    uint64_t count = 0;
    uint32_t ignored;
    ck_assert_int_eq(chargan_tokenizer_id_info(tok, id, cp ? cp : &ignored, &count), CHARGAN_OK);
    return count;
}

/* Encodes text (strlen) and returns the number of ids in ids[] (room for 64). */
static size_t enc(chargan_tokenizer *tok, const char *text, int32_t *ids)
{
    size_t n = 0;
    ck_assert_int_eq(chargan_tokenizer_encode(tok, text, strlen(text), ids, 64, &n), CHARGAN_OK);
    return n;
}

static uint8_t *save_buf(const chargan_tokenizer *tok, size_t *size)
{
    void *data = NULL;
    ck_assert_int_eq(chargan_tokenizer_save_buffer(tok, &data, size), CHARGAN_OK);
    ck_assert_ptr_nonnull(data);
    return data;
}

/* True if both tokenizers serialise to the same bytes: same options, counts and ids. */
static bool same_state(const chargan_tokenizer *a, const chargan_tokenizer *b)
{
    size_t na, nb;
    uint8_t *da = save_buf(a, &na), *db = save_buf(b, &nb);
    bool same = na == nb && memcmp(da, db, na) == 0;
    chargan_free(da);
    chargan_free(db);
    return same;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the trailing CRC-32 so a hand-made change reaches the field checks. */
static void fix_crc(uint8_t *buf, size_t size)
{
    put_le32(buf + size - 4, cg_crc32(0, buf, size - 4));
}

/* Loads buf and expects status want with needle in the thread's message;
 * *out must stay untouched on failure. */
static void expect_load(const uint8_t *buf, size_t size, chargan_status want, const char *needle)
{
    chargan_tokenizer *sentinel = (chargan_tokenizer *)(uintptr_t)0x1234;
    chargan_tokenizer *out = sentinel;
    chargan_status st = chargan_tokenizer_load_buffer(buf, size, &out);
    ck_assert_msg(st == want, "status %d, wanted %d (%s)", st, want, chargan_last_error());
    ck_assert_ptr_eq(out, sentinel);
    if (needle)
        assert_msg_has(chargan_last_error(), needle);
}

/* The options used by the format tests: every field away from its default. */
static chargan_tokenizer *format_tok(void)
{
    chargan_tokenizer_options o;
    chargan_tokenizer_options_init(&o);
    o.max_vocab = 5;
    o.lowercase = 1;
    o.fold_crlf = 0;
    o.utf8_policy = CHARGAN_UTF8_REPLACE;
    /* 3 x 'e', 2 x U+20AC, 2 x 'x', 1 x U+1F600, 1 x 'a': cap keeps 3 of 5 */
    return fitted(&o, "eEe\xE2\x82\xAC\xE2\x82\xACxX\xF0\x9F\x98\x80"
                      "a");
}

/* ---------------------------------------------------------------- options and handles */

START_TEST(options_defaults)
{
    chargan_tokenizer_options o;
    memset(&o, 0xAB, sizeof o);
    chargan_tokenizer_options_init(&o);
    ck_assert_uint_eq(o.struct_size, sizeof o);
    ck_assert_uint_eq(o.max_vocab, 0);
    ck_assert_int_eq(o.lowercase, 0);
    ck_assert_int_eq(o.fold_crlf, 1);
    ck_assert_int_eq(o.utf8_policy, CHARGAN_UTF8_STRICT);
    chargan_tokenizer_options_init(NULL); /* no crash */

    chargan_tokenizer *tok = new_tok(NULL);
    ck_assert_uint_eq(vocab(tok), CHARGAN_NUM_RESERVED_IDS);
    ck_assert_str_eq(chargan_tokenizer_last_error(tok), "");
    /* NULL options are the defaults: CRLF folded, strict UTF-8 */
    int32_t ids[64];
    ck_assert_uint_eq(enc(tok, "\r\n", ids), 1);
    size_t n;
    ck_assert_int_eq(chargan_tokenizer_encode(tok, "\xFF", 1, ids, 64, &n), CHARGAN_E_UTF8);
    chargan_tokenizer_free(tok);
    chargan_tokenizer_free(NULL);
    ck_assert_str_eq(chargan_tokenizer_last_error(NULL), "");
}
END_TEST

START_TEST(options_validated)
{
    chargan_tokenizer *tok = (chargan_tokenizer *)(uintptr_t)0x1234;
    chargan_tokenizer_options o;

    ck_assert_int_eq(chargan_tokenizer_new(NULL, NULL), CHARGAN_E_INVALID);
    assert_msg_has(chargan_last_error(), "out is NULL");

    chargan_tokenizer_options_init(&o);
    o.struct_size = sizeof o - 4;
    ck_assert_int_eq(chargan_tokenizer_new(&o, &tok), CHARGAN_E_INVALID);
    assert_msg_has(chargan_last_error(), "struct_size");
    o.struct_size = 0;
    ck_assert_int_eq(chargan_tokenizer_new(&o, &tok), CHARGAN_E_INVALID);
    ck_assert_ptr_eq(tok, (chargan_tokenizer *)(uintptr_t)0x1234);

    /* a newer caller's bigger struct: fine while the unknown tail is zero */
    struct {
        chargan_tokenizer_options o;
        uint8_t tail[16];
    } big;
    memset(&big, 0, sizeof big);
    chargan_tokenizer_options_init(&big.o);
    big.o.struct_size = sizeof big;
    big.o.lowercase = 1;
    ck_assert_int_eq(chargan_tokenizer_new(&big.o, &tok), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "A", 1), CHARGAN_OK);
    ck_assert_int_eq(id_of(tok, 'a'), 2);
    chargan_tokenizer_free(tok);
    big.tail[7] = 1;
    ck_assert_int_eq(chargan_tokenizer_new(&big.o, &tok), CHARGAN_E_INVALID);
    assert_msg_has(chargan_last_error(), "struct_size");

    for (uint32_t mv = 1; mv <= 2; mv++) {
        chargan_tokenizer_options_init(&o);
        o.max_vocab = mv;
        ck_assert_int_eq(chargan_tokenizer_new(&o, &tok), CHARGAN_E_INVALID);
        assert_msg_has(chargan_last_error(), "max_vocab");
    }
    o.max_vocab = 3;
    ck_assert_int_eq(chargan_tokenizer_new(&o, &tok), CHARGAN_OK);
    chargan_tokenizer_free(tok);

    int bad_policies[] = {-1, 2, 100};
    for (size_t i = 0; i < 3; i++) {
        chargan_tokenizer_options_init(&o);
        o.utf8_policy = bad_policies[i];
        ck_assert_int_eq(chargan_tokenizer_new(&o, &tok), CHARGAN_E_INVALID);
        assert_msg_has(chargan_last_error(), "utf8_policy");
    }
    /* any nonzero flag means on */
    chargan_tokenizer_options_init(&o);
    o.lowercase = 7;
    o.fold_crlf = 0;
    tok = fitted(&o, "a\r\n");
    int32_t ids[64];
    ck_assert_uint_eq(enc(tok, "A\r\n", ids), 3);
    ck_assert_int_eq(ids[0], id_of(tok, 'a'));
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(null_arguments_are_invalid)
{
    chargan_tokenizer *tok = fitted(NULL, "ab");
    uint32_t u32;
    int32_t id, ids[4] = {2, 3, 0, 0};
    uint64_t u64;
    size_t n;
    char buf[16];
    void *data;

    ck_assert_int_eq(chargan_tokenizer_fit(NULL, "a", 1), CHARGAN_E_INVALID);
    assert_msg_has(chargan_last_error(), "tok is NULL");
    ck_assert_int_eq(chargan_tokenizer_fit(tok, NULL, 1), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "text is NULL");
    ck_assert_int_eq(chargan_tokenizer_vocab_size(NULL, &u32), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_tokenizer_vocab_size(tok, NULL), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "size is NULL");
    ck_assert_int_eq(chargan_tokenizer_id_info(NULL, 2, &u32, &u64), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_tokenizer_id_info(tok, 2, NULL, &u64), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "codepoint is NULL");
    ck_assert_int_eq(chargan_tokenizer_lookup(NULL, 'a', &id), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_tokenizer_lookup(tok, 'a', NULL), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "id is NULL");
    ck_assert_int_eq(chargan_tokenizer_encode(NULL, "a", 1, ids, 4, &n), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_tokenizer_encode(tok, NULL, 1, ids, 4, &n), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "text is NULL");
    ck_assert_int_eq(chargan_tokenizer_encode(tok, "a", 1, ids, 4, NULL), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "n_ids is NULL");
    ck_assert_int_eq(chargan_tokenizer_decode(NULL, ids, 2, buf, 16, &n), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_tokenizer_decode(tok, NULL, 2, buf, 16, &n), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "ids is NULL");
    ck_assert_int_eq(chargan_tokenizer_decode(tok, ids, 2, buf, 16, NULL), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "len is NULL");
    ck_assert_int_eq(chargan_tokenizer_save_buffer(NULL, &data, &n), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_tokenizer_save_buffer(tok, NULL, &n), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "data is NULL");
    ck_assert_int_eq(chargan_tokenizer_save_buffer(tok, &data, NULL), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "size is NULL");
    chargan_tokenizer *out;
    ck_assert_int_eq(chargan_tokenizer_load_buffer(NULL, 4, &out), CHARGAN_E_INVALID);
    assert_msg_has(chargan_last_error(), "data is NULL");
    ck_assert_int_eq(chargan_tokenizer_load_buffer("x", 1, NULL), CHARGAN_E_INVALID);
    assert_msg_has(chargan_last_error(), "out is NULL");
    ck_assert_int_eq(chargan_tokenizer_save(NULL, "x"), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_tokenizer_save(tok, NULL), CHARGAN_E_INVALID);
    assert_msg_has(chargan_tokenizer_last_error(tok), "path is NULL");
    ck_assert_int_eq(chargan_tokenizer_load(NULL, &out), CHARGAN_E_INVALID);
    assert_msg_has(chargan_last_error(), "path is NULL");
    ck_assert_int_eq(chargan_tokenizer_load("x", NULL), CHARGAN_E_INVALID);
    assert_msg_has(chargan_last_error(), "out is NULL");

    /* the internal entry points */
    int32_t *pids;
    char *text;
    ck_assert_int_eq(cg_tokenizer_encode_alloc(NULL, "a", 1, &pids, &n), CHARGAN_E_INVALID);
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, NULL, 1, &pids, &n), CHARGAN_E_INVALID);
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, "a", 1, NULL, &n), CHARGAN_E_INVALID);
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, "a", 1, &pids, NULL), CHARGAN_E_INVALID);
    ck_assert_int_eq(cg_tokenizer_decode_alloc(NULL, ids, 1, &text, &n), CHARGAN_E_INVALID);
    ck_assert_int_eq(cg_tokenizer_decode_alloc(tok, NULL, 1, &text, &n), CHARGAN_E_INVALID);
    ck_assert_int_eq(cg_tokenizer_decode_alloc(tok, ids, 1, NULL, &n), CHARGAN_E_INVALID);
    ck_assert_int_eq(cg_tokenizer_decode_alloc(tok, ids, 1, &text, NULL), CHARGAN_E_INVALID);
    ck_assert_ptr_null(cg_tokenizer_clone(NULL));
    assert_msg_has(chargan_last_error(), "tok is NULL");

    /* the handle still works */
    ck_assert_uint_eq(vocab(tok), 4);
    chargan_tokenizer_free(tok);
}
END_TEST

/* ---------------------------------------------------------------- fitting */

START_TEST(empty_tokenizer_and_empty_input)
{
    chargan_tokenizer *tok = new_tok(NULL);
    int32_t ids[64];
    uint32_t cp;
    /* nothing fitted: only the reserved ids, everything unknown */
    ck_assert_int_eq(id_of(tok, 'a'), CHARGAN_ID_UNKNOWN);
    ck_assert_uint_eq(enc(tok, "a\xC3\xA9", ids), 2);
    ck_assert_int_eq(ids[0], CHARGAN_ID_UNKNOWN);
    ck_assert_int_eq(ids[1], CHARGAN_ID_UNKNOWN);
    ck_assert_int_eq(chargan_tokenizer_id_info(tok, 2, &cp, NULL), CHARGAN_E_RANGE);

    ck_assert_int_eq(chargan_tokenizer_fit(tok, "", 0), CHARGAN_OK);
    ck_assert_uint_eq(vocab(tok), CHARGAN_NUM_RESERVED_IDS);
    size_t n = 99;
    ck_assert_int_eq(chargan_tokenizer_encode(tok, "", 0, ids, 0, &n), CHARGAN_OK);
    ck_assert_uint_eq(n, 0);
    char buf[4] = "xyz";
    size_t len = 99;
    ck_assert_int_eq(chargan_tokenizer_decode(tok, ids, 0, buf, sizeof buf, &len), CHARGAN_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(buf, "");
    /* an empty vocabulary saves and loads */
    size_t size;
    uint8_t *data = save_buf(tok, &size);
    ck_assert_uint_eq(size, 32);
    chargan_tokenizer *back;
    ck_assert_int_eq(chargan_tokenizer_load_buffer(data, size, &back), CHARGAN_OK);
    ck_assert_uint_eq(vocab(back), CHARGAN_NUM_RESERVED_IDS);
    chargan_free(data);
    chargan_tokenizer_free(back);
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(ids_ranked_by_count_then_code_point)
{
    /* b x3, U+20AC x3, a x2, c x2, d x1 */
    chargan_tokenizer *tok = fitted(NULL, "c\xE2\x82\xAC"
                                          "bab\xE2\x82\xAC"
                                          "dc\xE2\x82\xAC"
                                          "ab");
    ck_assert_uint_eq(vocab(tok), 7);
    uint32_t want_cp[] = {'b', 0x20AC, 'a', 'c', 'd'};
    uint64_t want_count[] = {3, 3, 2, 2, 1};
    for (int i = 0; i < 5; i++) {
        uint32_t cp;
        ck_assert_uint_eq(count_of_id(tok, i + 2, &cp), want_count[i]);
        ck_assert_uint_eq(cp, want_cp[i]);
        ck_assert_int_eq(id_of(tok, want_cp[i]), i + 2);
    }
    /* count may be NULL */
    uint32_t cp;
    ck_assert_int_eq(chargan_tokenizer_id_info(tok, 3, &cp, NULL), CHARGAN_OK);
    ck_assert_uint_eq(cp, 0x20AC);
    /* reserved and out-of-range ids have no code point */
    int32_t bad_ids[] = {CHARGAN_ID_START, CHARGAN_ID_UNKNOWN, 7, -1, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        cp = 12345;
        ck_assert_int_eq(chargan_tokenizer_id_info(tok, bad_ids[i], &cp, NULL), CHARGAN_E_RANGE);
        ck_assert_uint_eq(cp, 12345);
    }
    assert_msg_has(chargan_tokenizer_last_error(tok), "has no code point");
    /* the same counts in any order give the same ids */
    chargan_tokenizer *other = fitted(NULL, "dcc\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC"
                                            "aabbb");
    ck_assert(same_state(tok, other));
    chargan_tokenizer_free(other);
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(fit_accumulates_over_calls)
{
    chargan_tokenizer *tok = fitted(NULL, "ab");
    ck_assert_int_eq(id_of(tok, 'a'), 2);
    ck_assert_int_eq(id_of(tok, 'b'), 3);
    /* the vocabulary is rebuilt after each fit */
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "bb\xC3\xA9", 4), CHARGAN_OK);
    ck_assert_int_eq(id_of(tok, 'b'), 2);
    ck_assert_int_eq(id_of(tok, 'a'), 3);
    ck_assert_int_eq(id_of(tok, 0xE9), 4);
    ck_assert_uint_eq(count_of_id(tok, 2, NULL), 3);
    chargan_tokenizer *once = fitted(NULL, "abbb\xC3\xA9");
    ck_assert(same_state(tok, once));
    chargan_tokenizer_free(once);
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(max_vocab_cuts_the_tail)
{
    chargan_tokenizer_options o;
    chargan_tokenizer_options_init(&o);
    o.max_vocab = 4;
    chargan_tokenizer *tok = fitted(&o, "aaabbc\xE2\x82\xAC");
    ck_assert_uint_eq(vocab(tok), 4);
    ck_assert_int_eq(id_of(tok, 'a'), 2);
    ck_assert_int_eq(id_of(tok, 'b'), 3);
    ck_assert_int_eq(id_of(tok, 'c'), CHARGAN_ID_UNKNOWN);
    ck_assert_int_eq(id_of(tok, 0x20AC), CHARGAN_ID_UNKNOWN);
    int32_t ids[64];
    ck_assert_uint_eq(enc(tok, "abc\xE2\x82\xAC", ids), 4);
    int32_t want[] = {2, 3, CHARGAN_ID_UNKNOWN, CHARGAN_ID_UNKNOWN};
    ck_assert_mem_eq(ids, want, sizeof want);
    uint32_t cp;
    ck_assert_int_eq(chargan_tokenizer_id_info(tok, 4, &cp, NULL), CHARGAN_E_RANGE);

    /* ties at the cut go to the smaller code point; counts of cut characters
     * are kept, so they come back when later text makes them frequent */
    o.max_vocab = 3;
    chargan_tokenizer *small = fitted(&o, "\xE2\x82\xAC"
                                          "ba");
    ck_assert_uint_eq(vocab(small), 3);
    ck_assert_int_eq(id_of(small, 'a'), 2);
    ck_assert_int_eq(id_of(small, 'b'), CHARGAN_ID_UNKNOWN);
    ck_assert_int_eq(chargan_tokenizer_fit(small, "\xE2\x82\xAC\xE2\x82\xAC", 6), CHARGAN_OK);
    ck_assert_int_eq(id_of(small, 0x20AC), 2);
    ck_assert_uint_eq(count_of_id(small, 2, NULL), 3);
    ck_assert_int_eq(id_of(small, 'a'), CHARGAN_ID_UNKNOWN);
    chargan_tokenizer_free(small);
    chargan_tokenizer_free(tok);

    /* a cap not reached changes nothing */
    o.max_vocab = 100;
    tok = fitted(&o, "aab");
    ck_assert_uint_eq(vocab(tok), 4);
    size_t size;
    uint8_t *data = save_buf(tok, &size);
    chargan_tokenizer *back;
    ck_assert_int_eq(chargan_tokenizer_load_buffer(data, size, &back), CHARGAN_OK);
    ck_assert(same_state(tok, back));
    chargan_free(data);
    chargan_tokenizer_free(back);
    chargan_tokenizer_free(tok);
}
END_TEST

/* The documented rule, written out independently of the library's. */
static uint32_t expected_fold(uint32_t c)
{
    if (c >= 0x41 && c <= 0x5A)
        return c + 0x20;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 0x20;
    return c;
}

START_TEST(lowercase_folds_ascii_and_latin1)
{
    chargan_tokenizer_options o;
    chargan_tokenizer_options_init(&o);
    o.lowercase = 1;
    o.fold_crlf = 0;
    /* every code point below 256 once, plus a few above */
    char text[1024];
    size_t len = 0;
    for (uint32_t c = 0; c < 256; c++)
        len += cg_utf8_encode(c, (uint8_t *)text + len);
    len += cg_utf8_encode(0x178, (uint8_t *)text + len); /* Y with diaeresis: not folded */
    len += cg_utf8_encode(0x100, (uint8_t *)text + len); /* A with macron: not folded */
    chargan_tokenizer *tok = new_tok(&o);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, len), CHARGAN_OK);

    int folded = 0;
    for (uint32_t c = 0; c < 256; c++) {
        uint32_t f = expected_fold(c), cp;
        int32_t id = id_of(tok, c);
        ck_assert_int_ge(id, 2);
        uint64_t count = count_of_id(tok, id, &cp);
        ck_assert_uint_eq(cp, f);
        /* a folded pair is counted twice, everything else once */
        ck_assert_uint_eq(count, (f != c || expected_fold(c - 0x20) == c) && c >= 0x20 ? 2 : 1);
        folded += f != c;
    }
    ck_assert_int_eq(folded, 26 + 30);
    ck_assert_uint_eq(vocab(tok), 2 + 256 - 56 + 2);
    /* the edges, spelled out */
    ck_assert_int_eq(id_of(tok, 'A'), id_of(tok, 'a'));
    ck_assert_int_eq(id_of(tok, 0xC0), id_of(tok, 0xE0));
    ck_assert_int_eq(id_of(tok, 0xDE), id_of(tok, 0xFE));
    ck_assert_int_ne(id_of(tok, 0xD7), id_of(tok, 0xF7));
    ck_assert_int_ne(id_of(tok, 0xDF), id_of(tok, 0xFF));
    ck_assert_int_ne(id_of(tok, '@'), id_of(tok, '`'));
    ck_assert_int_ne(id_of(tok, '['), id_of(tok, '{'));
    ck_assert_int_ne(id_of(tok, 0x178), id_of(tok, 0xFF));
    ck_assert_int_ne(id_of(tok, 0x100), id_of(tok, 0x101));
    /* encoding folds the same way */
    int32_t a[64], b[64];
    size_t na = enc(tok, "HELLO \xC3\x80\xC3\x9E\xC3\x97", a);
    size_t nb = enc(tok, "hello \xC3\xA0\xC3\xBE\xC3\x97", b);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(a, b, na * sizeof a[0]);
    chargan_tokenizer_free(tok);

    /* without lower-casing, cases stay apart */
    tok = fitted(NULL, "Aa");
    ck_assert_int_ne(id_of(tok, 'A'), id_of(tok, 'a'));
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(crlf_folding)
{
    /* folding: "\r\n" is one '\n'; a lone '\r' stays */
    chargan_tokenizer *tok = fitted(NULL, "a\r\nb\rc\r");
    ck_assert_uint_eq(count_of_id(tok, id_of(tok, '\r'), NULL), 2);
    ck_assert_uint_eq(count_of_id(tok, id_of(tok, '\n'), NULL), 1);
    int32_t ids[64];
    ck_assert_uint_eq(enc(tok, "\r\n", ids), 1);
    ck_assert_int_eq(ids[0], id_of(tok, '\n'));
    ck_assert_uint_eq(enc(tok, "\r", ids), 1);
    ck_assert_int_eq(ids[0], id_of(tok, '\r'));
    ck_assert_uint_eq(enc(tok, "\r\r\n\n\r", ids), 4);
    int32_t want[] = {id_of(tok, '\r'), id_of(tok, '\n'), id_of(tok, '\n'), id_of(tok, '\r')};
    ck_assert_mem_eq(ids, want, sizeof want);
    /* so CRLF text comes back with LF line ends */
    size_t n = enc(tok, "a\r\nb\r\n", ids);
    char buf[16];
    size_t len;
    ck_assert_int_eq(chargan_tokenizer_decode(tok, ids, n, buf, sizeof buf, &len), CHARGAN_OK);
    ck_assert_str_eq(buf, "a\nb\n");
    /* folding looks only inside one call */
    ck_assert_int_eq(chargan_tokenizer_encode(tok, "\r\n", 1, ids, 64, &n), CHARGAN_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], id_of(tok, '\r'));
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "\r", 1), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "\n", 1), CHARGAN_OK);
    ck_assert_uint_eq(count_of_id(tok, id_of(tok, '\r'), NULL), 3);
    ck_assert_uint_eq(count_of_id(tok, id_of(tok, '\n'), NULL), 2);
    chargan_tokenizer_free(tok);

    /* not folding: '\r' and '\n' are two characters */
    chargan_tokenizer_options o;
    chargan_tokenizer_options_init(&o);
    o.fold_crlf = 0;
    tok = fitted(&o, "a\r\n");
    ck_assert_uint_eq(count_of_id(tok, id_of(tok, '\r'), NULL), 1);
    ck_assert_uint_eq(enc(tok, "\r\n", ids), 2);
    chargan_tokenizer_free(tok);
}
END_TEST

/* ---------------------------------------------------------------- UTF-8 policies */

START_TEST(strict_utf8_names_the_offset)
{
    chargan_tokenizer *tok = fitted(NULL, "abc");
    chargan_tokenizer *before = fitted(NULL, "abc");
    int32_t ids[64];
    size_t n = 77;
    /* fitting fails and counts nothing of the text, not even its valid prefix */
    ck_assert_int_eq(chargan_tokenizer_fit(tok,
                                           "zz\xC3\xA9\xFF"
                                           "c",
                                           6),
                     CHARGAN_E_UTF8);
    assert_msg_has(chargan_tokenizer_last_error(tok), "byte offset 4");
    assert_msg_has(chargan_last_error(), "byte offset 4");
    ck_assert(same_state(tok, before));
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "\xE4\xB8\x80\xE4\xB8", 5), CHARGAN_E_UTF8);
    assert_msg_has(chargan_tokenizer_last_error(tok), "byte offset 3");
    ck_assert(same_state(tok, before));
    /* a '\r' just before the bad byte is rolled back too */
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "\r\n\r\x80", 4), CHARGAN_E_UTF8);
    ck_assert(same_state(tok, before));
    /* and the next fit ranks as if the failed ones never happened */
    ck_assert_int_eq(chargan_tokenizer_fit(tok, "d", 1), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(before, "d", 1), CHARGAN_OK);
    ck_assert(same_state(tok, before));
    ck_assert_int_eq(id_of(tok, 0x4E00), CHARGAN_ID_UNKNOWN);

    struct {
        const char *text;
        size_t len, offset;
    } cases[] = {
        {"\x80", 1, 0},                 /* lone continuation */
        {"ab\xC0\xAF", 4, 2},           /* overlong */
        {"\xC3\xA9\xED\xA0\x80", 5, 2}, /* surrogate */
        {"a\xF4\x90\x80\x80", 5, 1},    /* above U+10FFFF */
        {"abc\xE2\x82", 5, 3},          /* cut at the end */
        {"\r\n\xFE", 3, 2},             /* after a folded CRLF: offsets are in the input */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", cases[i].offset);
        n = 77;
        ck_assert_int_eq(chargan_tokenizer_encode(tok, cases[i].text, cases[i].len, ids, 64, &n),
                         CHARGAN_E_UTF8);
        assert_msg_has(chargan_tokenizer_last_error(tok), want);
        ck_assert_uint_eq(n, 77); /* untouched */
        /* also when only counting */
        ck_assert_int_eq(chargan_tokenizer_encode(tok, cases[i].text, cases[i].len, NULL, 0, &n),
                         CHARGAN_E_UTF8);
    }
    chargan_tokenizer_free(before);
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(replace_policy_one_unknown_per_maximal_subsequence)
{
    chargan_tokenizer_options o;
    chargan_tokenizer_options_init(&o);
    o.utf8_policy = CHARGAN_UTF8_REPLACE;
    chargan_tokenizer *tok = new_tok(&o);
    /* replaced bytes are not counted */
    ck_assert_int_eq(chargan_tokenizer_fit(tok,
                                           "a\xFF\xFE"
                                           "b\xE2\x82"
                                           "a",
                                           7),
                     CHARGAN_OK);
    ck_assert_uint_eq(vocab(tok), 4);
    ck_assert_int_eq(id_of(tok, 'a'), 2);
    ck_assert_int_eq(id_of(tok, 'b'), 3);
    ck_assert_int_eq(id_of(tok, 0xFFFD), CHARGAN_ID_UNKNOWN);
    size_t size;
    uint8_t *data = save_buf(tok, &size);
    ck_assert_uint_eq(size, 32 + 2 * 12); /* two entries, nothing for the bad bytes */
    chargan_free(data);

    const int32_t U = CHARGAN_ID_UNKNOWN;
    struct {
        const char *text;
        size_t len;
        int32_t want[8];
        size_t n;
    } cases[] = {
        {"a\xFF"
         "b",
         3,
         {2, U, 3},
         3},
        {"\xE2\x82"
         "a",
         3,
         {U, 2},
         2},                               /* E2 82 is one maximal subsequence */
        {"\xF0\x9F\x98", 3, {U}, 1},       /* truncated 4-byte sequence */
        {"\xC0\xAF", 2, {U, U}, 2},        /* C0 can start nothing: two */
        {"\xED\xA0\x80", 3, {U, U, U}, 3}, /* surrogate: ED then two strays */
        {"\xF4\x90\x80\x80"
         "b",
         5,
         {U, U, U, U, 3},
         5},
        {"\xE2\x82\xE2\x82\xAC", 5, {U, U}, 2}, /* a bad prefix, then a valid char */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t ids[16];
        size_t n = 0;
        ck_assert_int_eq(chargan_tokenizer_encode(tok, cases[i].text, cases[i].len, ids, 16, &n),
                         CHARGAN_OK);
        ck_assert_msg(n == cases[i].n, "case %zu: %zu ids, wanted %zu", i, n, cases[i].n);
        ck_assert_mem_eq(ids, cases[i].want, n * sizeof ids[0]);
    }
    /* decoding an unknown id gives U+FFFD */
    int32_t ids[64];
    size_t n = enc(tok, "a\xFF", ids);
    char buf[16];
    size_t len;
    ck_assert_int_eq(chargan_tokenizer_decode(tok, ids, n, buf, sizeof buf, &len), CHARGAN_OK);
    ck_assert_str_eq(buf, "a\xEF\xBF\xBD");
    chargan_tokenizer_free(tok);
}
END_TEST

/* ---------------------------------------------------------------- buffers */

START_TEST(encode_buffer_protocol)
{
    chargan_tokenizer *tok = fitted(NULL, "abc");
    const char *text = "ab\xC3\xA9"
                       "c"; /* 5 bytes, 4 ids */
    size_t n = 0;
    ck_assert_int_eq(chargan_tokenizer_encode(tok, text, 5, NULL, 0, &n), CHARGAN_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(chargan_tokenizer_encode(tok, text, 5, NULL, 1000, &n), CHARGAN_OK);
    ck_assert_uint_eq(n, 4);
    int32_t ids[8];
    for (size_t cap = 0; cap < 4; cap++) {
        for (int i = 0; i < 8; i++)
            ids[i] = -7;
        n = 0;
        ck_assert_int_eq(chargan_tokenizer_encode(tok, text, 5, ids, cap, &n), CHARGAN_E_RANGE);
        ck_assert_uint_eq(n, 4);
        for (size_t i = cap; i < 8; i++)
            ck_assert_int_eq(ids[i], -7); /* nothing past cap */
    }
    assert_msg_has(chargan_tokenizer_last_error(tok), "do not fit");
    ck_assert_int_eq(chargan_tokenizer_encode(tok, text, 5, ids, 4, &n), CHARGAN_OK);
    int32_t want[] = {2, 3, CHARGAN_ID_UNKNOWN, 4};
    ck_assert_mem_eq(ids, want, sizeof want);
    ck_assert_int_eq(ids[4], -7);
    /* len bytes, not NUL-terminated; an embedded NUL is a character */
    ck_assert_int_eq(chargan_tokenizer_encode(tok, "a\0b", 3, ids, 8, &n), CHARGAN_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[1], CHARGAN_ID_UNKNOWN);
    ck_assert_int_eq(chargan_tokenizer_encode(tok, "abc", 1, ids, 8, &n), CHARGAN_OK);
    ck_assert_uint_eq(n, 1);
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(decode_buffer_protocol)
{
    chargan_tokenizer *tok = fitted(NULL, "a\xE2\x82\xAC\xE2\x82\xAC");
    ck_assert_int_eq(id_of(tok, 0x20AC), 2);
    int32_t ids[] = {CHARGAN_ID_START, 3, 2, CHARGAN_ID_UNKNOWN, CHARGAN_ID_START};
    const char *want = "a\xE2\x82\xAC\xEF\xBF\xBD"; /* START skipped, UNKNOWN is U+FFFD */
    size_t len = 0;
    ck_assert_int_eq(chargan_tokenizer_decode(tok, ids, 5, NULL, 0, &len), CHARGAN_OK);
    ck_assert_uint_eq(len, 7);
    ck_assert_int_eq(chargan_tokenizer_decode(tok, ids, 5, NULL, 3, &len), CHARGAN_OK);
    ck_assert_uint_eq(len, 7);
    char buf[16];
    for (size_t cap = 0; cap < 7; cap++) {
        memset(buf, '#', sizeof buf);
        len = 0;
        ck_assert_int_eq(chargan_tokenizer_decode(tok, ids, 5, buf, cap, &len), CHARGAN_E_RANGE);
        ck_assert_uint_eq(len, 7);
        for (size_t i = cap; i < sizeof buf; i++)
            ck_assert_int_eq(buf[i], '#');
    }
    assert_msg_has(chargan_tokenizer_last_error(tok), "do not fit");
    /* exactly the length: all bytes, no terminator */
    memset(buf, '#', sizeof buf);
    ck_assert_int_eq(chargan_tokenizer_decode(tok, ids, 5, buf, 7, &len), CHARGAN_OK);
    ck_assert_uint_eq(len, 7);
    ck_assert_mem_eq(buf, want, 7);
    ck_assert_int_eq(buf[7], '#');
    /* one more: terminated */
    ck_assert_int_eq(chargan_tokenizer_decode(tok, ids, 5, buf, 8, &len), CHARGAN_OK);
    ck_assert_str_eq(buf, want);

    /* ids outside the vocabulary */
    int32_t bad[] = {2, 4};
    len = 99;
    ck_assert_int_eq(chargan_tokenizer_decode(tok, bad, 2, buf, sizeof buf, &len), CHARGAN_E_RANGE);
    assert_msg_has(chargan_tokenizer_last_error(tok), "ids[1] = 4");
    ck_assert_uint_eq(len, 99);
    bad[1] = -3;
    ck_assert_int_eq(chargan_tokenizer_decode(tok, bad, 2, NULL, 0, &len), CHARGAN_E_RANGE);
    assert_msg_has(chargan_tokenizer_last_error(tok), "ids[1] = -3");
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(lookup_by_code_point)
{
    chargan_tokenizer *tok = fitted(NULL, "\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
                                          "a");
    ck_assert_int_eq(id_of(tok, 0x1F600), 2);
    ck_assert_int_eq(id_of(tok, 'a'), 3);
    ck_assert_int_eq(id_of(tok, 0x1F601), CHARGAN_ID_UNKNOWN);
    ck_assert_int_eq(id_of(tok, 0x10FFFF), CHARGAN_ID_UNKNOWN);
    ck_assert_int_eq(id_of(tok, 0), CHARGAN_ID_UNKNOWN);
    uint32_t bad[] = {0xD800, 0xDFFF, 0x110000, 0xFFFFFFFF};
    for (size_t i = 0; i < 4; i++) {
        int32_t id = -5;
        ck_assert_int_eq(chargan_tokenizer_lookup(tok, bad[i], &id), CHARGAN_E_INVALID);
        ck_assert_int_eq(id, -5);
        assert_msg_has(chargan_tokenizer_last_error(tok), "not a Unicode scalar value");
    }
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(many_distinct_code_points)
{
    /* 3000 CJK characters, character k seen (k % 7) + 1 times, interleaved:
     * grows the hash maps many times; every id must map back. */
    const uint32_t n_chars = 3000;
    size_t cap = 3 * 7 * n_chars, len = 0;
    char *text = malloc(cap);
    for (uint32_t rep = 0; rep < 7; rep++)
        for (uint32_t k = 0; k < n_chars; k++)
            if (k % 7 >= rep)
                len += cg_utf8_encode(0x4E00 + k, (uint8_t *)text + len);
    chargan_tokenizer *tok = new_tok(NULL);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, len), CHARGAN_OK);
    ck_assert_uint_eq(vocab(tok), n_chars + 2);
    uint64_t prev_count = UINT64_MAX;
    uint32_t prev_cp = 0;
    for (uint32_t id = 2; id < n_chars + 2; id++) {
        uint32_t cp;
        uint64_t count = count_of_id(tok, (int32_t)id, &cp);
        ck_assert_uint_eq(count, (cp - 0x4E00) % 7 + 1);
        ck_assert(count < prev_count || (count == prev_count && cp > prev_cp));
        ck_assert_int_eq(id_of(tok, cp), (int32_t)id);
        prev_count = count;
        prev_cp = cp;
    }
    /* encode maps every character to its own id */
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, text, len, &ids, &n), CHARGAN_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ge(ids[i], 2);
    char *back;
    size_t back_len;
    ck_assert_int_eq(cg_tokenizer_decode_alloc(tok, ids, n, &back, &back_len), CHARGAN_OK);
    ck_assert_uint_eq(back_len, len);
    ck_assert_mem_eq(back, text, len);
    cg_free(back);
    cg_free(ids);
    chargan_tokenizer_free(tok);
    free(text);
}
END_TEST

/* ---------------------------------------------------------------- corpora */

START_TEST(round_trip_sonnets)
{
    size_t size;
    char *text = cg_test_read_file(cg_test_corpus_path("sonnets.txt"), &size);
    ck_assert_ptr_nonnull(strstr(text, "\r\n")); /* the file keeps its CRLF line ends */

    /* without folding: byte-exact */
    chargan_tokenizer_options o;
    chargan_tokenizer_options_init(&o);
    o.fold_crlf = 0;
    chargan_tokenizer *tok = new_tok(&o);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, size), CHARGAN_OK);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, text, size, &ids, &n), CHARGAN_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ge(ids[i], 2); /* everything fitted is in the vocabulary */
    char *back;
    size_t len;
    ck_assert_int_eq(cg_tokenizer_decode_alloc(tok, ids, n, &back, &len), CHARGAN_OK);
    ck_assert_uint_eq(len, size);
    ck_assert_mem_eq(back, text, size);
    ck_assert_int_eq(back[len], '\0');
    /* the public calls agree with the internal ones */
    int32_t *ids2 = malloc(size * sizeof *ids2);
    size_t n2;
    ck_assert_int_eq(chargan_tokenizer_encode(tok, text, size, ids2, size, &n2), CHARGAN_OK);
    ck_assert_uint_eq(n2, n);
    ck_assert_mem_eq(ids2, ids, n * sizeof *ids);
    free(ids2);
    cg_free(back);
    cg_free(ids);
    chargan_tokenizer_free(tok);

    /* with folding: the same text with LF line ends */
    tok = new_tok(NULL);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, size), CHARGAN_OK);
    ck_assert_int_eq(id_of(tok, '\r'), CHARGAN_ID_UNKNOWN);
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, text, size, &ids, &n), CHARGAN_OK);
    ck_assert_int_eq(cg_tokenizer_decode_alloc(tok, ids, n, &back, &len), CHARGAN_OK);
    char *lf = malloc(size + 1);
    size_t m = 0;
    for (size_t i = 0; i < size; i++)
        if (!(text[i] == '\r' && i + 1 < size && text[i + 1] == '\n'))
            lf[m++] = text[i];
    ck_assert_uint_eq(len, m);
    ck_assert_uint_eq(n, m); /* the sonnets are ASCII */
    ck_assert_mem_eq(back, lf, m);
    free(lf);
    cg_free(back);
    cg_free(ids);
    chargan_tokenizer_free(tok);
    free(text);
}
END_TEST

START_TEST(round_trip_tinyshakespeare)
{
    size_t size;
    char *text = cg_test_read_file(cg_test_corpus_path("tinyshakespeare.txt"), &size);
    chargan_tokenizer *tok = new_tok(NULL);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, size), CHARGAN_OK);
    ck_assert_uint_eq(vocab(tok), 65 + 2); /* 65 distinct characters (data/README.md) */
    ck_assert_int_eq(id_of(tok, ' '), 2);  /* the most frequent */
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, text, size, &ids, &n), CHARGAN_OK);
    ck_assert_uint_eq(n, size);
    char *back;
    size_t len;
    ck_assert_int_eq(cg_tokenizer_decode_alloc(tok, ids, n, &back, &len), CHARGAN_OK);
    ck_assert_uint_eq(len, size);
    ck_assert_mem_eq(back, text, size);
    cg_free(back);
    cg_free(ids);
    chargan_tokenizer_free(tok);
    free(text);
}
END_TEST

/* ---------------------------------------------------------------- the internal API */

START_TEST(internal_alloc_paths_and_clone)
{
    chargan_tokenizer *tok = fitted(NULL, "hello \xE2\x82\xAC");
    int32_t *ids = (int32_t *)(uintptr_t)0x1;
    size_t n = 55;
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, "", 0, &ids, &n), CHARGAN_OK);
    ck_assert_ptr_nonnull(ids);
    ck_assert_uint_eq(n, 0);
    cg_free(ids);
    /* a UTF-8 error frees the buffer and leaves the outputs alone */
    ids = (int32_t *)(uintptr_t)0x1;
    n = 55;
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, "ab\xFF", 3, &ids, &n), CHARGAN_E_UTF8);
    ck_assert_ptr_eq(ids, (int32_t *)(uintptr_t)0x1);
    ck_assert_uint_eq(n, 55);
    assert_msg_has(chargan_tokenizer_last_error(tok), "byte offset 2");
    /* a length whose id array cannot exist fails before reading anything */
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, "a", SIZE_MAX / 2, &ids, &n), CHARGAN_E_NOMEM);
    ck_assert_ptr_eq(ids, (int32_t *)(uintptr_t)0x1);
    /* decode_alloc: empty, and a bad id */
    char *text = NULL;
    int32_t some[] = {CHARGAN_ID_START, 99};
    ck_assert_int_eq(cg_tokenizer_decode_alloc(tok, some, 1, &text, &n), CHARGAN_OK);
    ck_assert_str_eq(text, "");
    ck_assert_uint_eq(n, 0);
    chargan_free(text); /* either free works */
    ck_assert_int_eq(cg_tokenizer_decode_alloc(tok, some, 2, &text, &n), CHARGAN_E_RANGE);
    ck_assert_uint_eq(cg_tokenizer_vocab_size(tok), vocab(tok));

    /* clones are equal and independent */
    chargan_tokenizer *copy = cg_tokenizer_clone(tok);
    ck_assert_ptr_nonnull(copy);
    ck_assert(same_state(tok, copy));
    ck_assert_str_eq(chargan_tokenizer_last_error(copy), "");
    ck_assert_int_eq(chargan_tokenizer_fit(copy, "zzz\xE2\x82\xAC", 6), CHARGAN_OK);
    ck_assert(!same_state(tok, copy));
    ck_assert_int_eq(id_of(tok, 'z'), CHARGAN_ID_UNKNOWN);
    ck_assert_int_eq(id_of(copy, 'z'), 2);
    chargan_tokenizer *fresh = new_tok(NULL);
    chargan_tokenizer *fresh_copy = cg_tokenizer_clone(fresh);
    ck_assert(same_state(fresh, fresh_copy));
    chargan_tokenizer_free(fresh_copy);
    chargan_tokenizer_free(fresh);

    /* cg_tokenizer_write appends exactly the save_buffer bytes */
    cg_writer w;
    cg_writer_init(&w);
    cg_put_u32(&w, 0xDEADBEEF);
    cg_tokenizer_write(tok, &w);
    ck_assert(!w.failed);
    size_t size;
    uint8_t *data = save_buf(tok, &size);
    ck_assert_uint_eq(w.size, 4 + size);
    ck_assert_mem_eq(w.data + 4, data, size);
    chargan_tokenizer *back;
    ck_assert_int_eq(chargan_tokenizer_load_buffer(w.data + 4, w.size - 4, &back), CHARGAN_OK);
    ck_assert(same_state(tok, back));
    chargan_tokenizer_free(back);
    chargan_free(data);
    cg_writer_free(&w);
    chargan_tokenizer_free(copy);
    chargan_tokenizer_free(tok);
}
END_TEST

/* Pieces of every size from 1 on cut the text wherever an id ends: next to
 * CR LF pairs (folded or not), multi-byte and invalid sequences, letters
 * that lower-case; joined they are one encode's ids, and a strict-policy
 * error names the text's offset, not the piece's. */
START_TEST(encode_in_pieces_equals_one_encode)
{
    static const char text[] = "Ab\r\n\r\nC\xC3\x89t\xC3\xA9\r\xE2\x82\xAC\xE2\x82x\xF0\x9F\x98\x80"
                               "\x80\xC0\xAF\r\nZ\xED\xA0\x80\r";
    const size_t len = sizeof text - 1;
    for (int variant = 0; variant < 4; variant++) {
        chargan_tokenizer_options o;
        chargan_tokenizer_options_init(&o);
        o.utf8_policy = CHARGAN_UTF8_REPLACE;
        o.lowercase = variant & 1;
        o.fold_crlf = (variant >> 1) & 1;
        chargan_tokenizer *tok = new_tok(&o);
        ck_assert_int_eq(chargan_tokenizer_fit(tok, text, len), CHARGAN_OK);
        int32_t whole[64], joined[64], piece[64];
        size_t n_whole;
        ck_assert_int_eq(chargan_tokenizer_encode(tok, text, len, whole, 64, &n_whole), CHARGAN_OK);
        for (size_t cap = 1; cap <= n_whole + 1; cap++) {
            size_t pos = 0, n_joined = 0, n;
            while (pos < len) {
                ck_assert_int_eq(cg_tokenizer_encode_some(tok, text, len, &pos, piece, cap, &n),
                                 CHARGAN_OK);
                ck_assert_uint_ge(n, 1);
                ck_assert_uint_le(n, cap);
                ck_assert_uint_le(n_joined + n, 64);
                memcpy(joined + n_joined, piece, n * sizeof *piece);
                n_joined += n;
            }
            ck_assert_uint_eq(pos, len);
            ck_assert_uint_eq(n_joined, n_whole);
            ck_assert_mem_eq(joined, whole, n_whole * sizeof *whole);
        }
        chargan_tokenizer_free(tok);
    }
    /* strict: the first piece is fine, the second stops at the bad byte */
    chargan_tokenizer *tok = fitted(NULL, "abc");
    size_t pos = 0, n;
    int32_t ids[2];
    ck_assert_int_eq(cg_tokenizer_encode_some(tok, "ab\xFF", 3, &pos, ids, 2, &n), CHARGAN_OK);
    ck_assert_uint_eq(pos, 2);
    ck_assert_int_eq(cg_tokenizer_encode_some(tok, "ab\xFF", 3, &pos, ids, 2, &n), CHARGAN_E_UTF8);
    assert_msg_has(chargan_tokenizer_last_error(tok), "byte offset 2");
    chargan_tokenizer_free(tok);
}
END_TEST

/* ---------------------------------------------------------------- the vocabulary format */

START_TEST(format_is_byte_exact)
{
    chargan_tokenizer *tok = format_tok();
    size_t size;
    uint8_t *data = save_buf(tok, &size);
    /* the layout of docs/FORMATS.md, written out by hand */
    uint8_t want[28 + 5 * 12 + 4] = {'C', 'G', 'V', 'O', 'C', 'A', 'B', 0};
    put_le32(want + 8, 1);  /* version */
    put_le32(want + 12, 5); /* max_vocab */
    want[16] = 1;           /* lowercase */
    want[17] = 0;           /* fold_crlf */
    want[18] = 1;           /* utf8_policy: replace */
    want[19] = 0;           /* reserved */
    put_le32(want + 20, 5); /* vocab_size: 2 reserved + 3 kept */
    put_le32(want + 24, 5); /* entries: all 5 counted characters */
    uint32_t cps[] = {'e', 'x', 0x20AC, 'a', 0x1F600};
    uint64_t counts[] = {3, 2, 2, 1, 1};
    for (int i = 0; i < 5; i++) {
        put_le32(want + 28 + 12 * i, cps[i]);
        put_le64(want + 32 + 12 * i, counts[i]);
    }
    put_le32(want + 88, cg_crc32(0, want, 88));
    ck_assert_uint_eq(size, sizeof want);
    ck_assert_mem_eq(data, want, sizeof want);

    chargan_tokenizer *back;
    ck_assert_int_eq(chargan_tokenizer_load_buffer(data, size, &back), CHARGAN_OK);
    ck_assert_uint_eq(vocab(back), 5);
    ck_assert_int_eq(id_of(back, 'E'), 2); /* lower-casing came back */
    ck_assert_int_eq(id_of(back, 0x20AC), 4);
    ck_assert_int_eq(id_of(back, 'a'), CHARGAN_ID_UNKNOWN); /* cut by the cap */
    int32_t ids[64];
    size_t n;
    ck_assert_int_eq(chargan_tokenizer_encode(back, "\r\n\xFF", 3, ids, 64, &n), CHARGAN_OK);
    ck_assert_uint_eq(n, 3); /* no CRLF folding, bad bytes replaced */
    chargan_free(data);
    chargan_tokenizer_free(back);
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(save_load_round_trip)
{
    size_t size;
    char *text = cg_test_read_file(cg_test_corpus_path("sonnets.txt"), &size);
    chargan_tokenizer_options o;
    chargan_tokenizer_options_init(&o);
    o.max_vocab = 40;
    chargan_tokenizer *tok = new_tok(&o);
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text, size / 2), CHARGAN_OK);

    size_t dsize;
    uint8_t *data = save_buf(tok, &dsize);
    chargan_tokenizer *back;
    ck_assert_int_eq(chargan_tokenizer_load_buffer(data, dsize, &back), CHARGAN_OK);
    ck_assert(same_state(tok, back));
    ck_assert_str_eq(chargan_tokenizer_last_error(back), "");
    int32_t *a, *b;
    size_t na, nb;
    ck_assert_int_eq(cg_tokenizer_encode_alloc(tok, text, size, &a, &na), CHARGAN_OK);
    ck_assert_int_eq(cg_tokenizer_encode_alloc(back, text, size, &b, &nb), CHARGAN_OK);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(a, b, na * sizeof *a);
    cg_free(a);
    cg_free(b);
    /* counts beyond the cap are saved: fitting on after a load is exact */
    ck_assert_int_eq(chargan_tokenizer_fit(tok, text + size / 2, size - size / 2), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(back, text + size / 2, size - size / 2), CHARGAN_OK);
    ck_assert(same_state(tok, back));
    chargan_tokenizer_free(back);
    chargan_free(data);

    /* through a file */
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.bin", cg_test_tmpdir());
    ck_assert_int_eq(chargan_tokenizer_save(tok, path), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_load(path, &back), CHARGAN_OK);
    ck_assert(same_state(tok, back));
    chargan_tokenizer_free(back);
    unlink(path);
    chargan_tokenizer_free(tok);
    free(text);
}
END_TEST

START_TEST(file_errors)
{
    chargan_tokenizer *tok = fitted(NULL, "abc");
    chargan_tokenizer *out = NULL;
    char path[512];

    ck_assert_int_eq(chargan_tokenizer_save(tok, "/nonexistent-dir/vocab.bin"), CHARGAN_E_IO);
    assert_msg_has(chargan_tokenizer_last_error(tok), "/nonexistent-dir/vocab.bin");
    ck_assert_int_eq(chargan_tokenizer_load("/nonexistent-dir/vocab.bin", &out), CHARGAN_E_IO);
    assert_msg_has(chargan_last_error(), "/nonexistent-dir/vocab.bin");
    ck_assert_ptr_null(out);

    /* a corrupt file: the message names the file and the field */
    snprintf(path, sizeof path, "%s/corrupt.bin", cg_test_tmpdir());
    FILE *f = fopen(path, "wb");
    fputs("CGVOCAX", f);
    fputc(0, f);
    fclose(f);
    ck_assert_int_eq(chargan_tokenizer_load(path, &out), CHARGAN_E_FORMAT);
    assert_msg_has(chargan_last_error(), "corrupt.bin");
    assert_msg_has(chargan_last_error(), "magic");
    ck_assert_ptr_null(out);
    unlink(path);

    /* a file over the size cap is refused before it is read */
    snprintf(path, sizeof path, "%s/huge.bin", cg_test_tmpdir());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, ((off_t)64 << 20) + 1), 0); /* sparse */
    close(fd);
    ck_assert_int_eq(chargan_tokenizer_load(path, &out), CHARGAN_E_FORMAT);
    assert_msg_has(chargan_last_error(), "huge.bin");
    ck_assert_ptr_null(out);
    unlink(path);
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(truncated_at_every_offset)
{
    chargan_tokenizer *tok = format_tok();
    size_t size;
    uint8_t *data = save_buf(tok, &size);
    for (size_t cut = 0; cut < size; cut++) {
        /* a copy of exactly cut bytes, so valgrind and ASan see any over-read */
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, data, cut);
        expect_load(part, cut, CHARGAN_E_FORMAT, NULL);
        free(part);
    }
    /* each header field names itself and where it starts */
    struct {
        size_t cut, at;
        const char *needle;
    } fields[] = {{0, 0, "'magic'"},          {7, 0, "'magic'"},         {8, 8, "'version'"},
                  {11, 8, "'version'"},       {12, 12, "'max_vocab'"},   {16, 16, "'lowercase'"},
                  {17, 17, "'fold_crlf'"},    {18, 18, "'utf8_policy'"}, {19, 19, "'reserved'"},
                  {20, 20, "'vocab_size'"},   {26, 24, "'entry_count'"}, {28, 28, "truncated"},
                  {size - 1, 28, "truncated"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        expect_load(data, fields[i].cut, CHARGAN_E_FORMAT, fields[i].needle);
        char at[32];
        snprintf(at, sizeof at, "byte offset %zu", fields[i].at);
        assert_msg_has(chargan_last_error(), at);
    }
    /* and bytes after the checksum are refused too */
    uint8_t *longer = malloc(size + 1);
    memcpy(longer, data, size);
    longer[size] = 0;
    expect_load(longer, size + 1, CHARGAN_E_FORMAT, "trailing");
    free(longer);
    chargan_free(data);
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(every_bit_flip_is_caught)
{
    chargan_tokenizer *tok = format_tok();
    size_t size;
    uint8_t *data = save_buf(tok, &size);
    uint8_t *copy = malloc(size);
    int unsupported = 0;
    for (size_t bit = 0; bit < size * 8; bit++) {
        memcpy(copy, data, size);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        chargan_tokenizer *out = NULL;
        chargan_status st = chargan_tokenizer_load_buffer(copy, size, &out);
        if (st == CHARGAN_OK) {
            /* only if the checksum were fooled: then it must be a valid file */
            size_t n;
            uint8_t *again = save_buf(out, &n);
            ck_assert_uint_eq(n, size);
            ck_assert_mem_eq(again, copy, size);
            chargan_free(again);
            chargan_tokenizer_free(out);
            continue;
        }
        ck_assert_msg(st == CHARGAN_E_FORMAT || st == CHARGAN_E_UNSUPPORTED, "bit %zu: %d", bit,
                      st);
        ck_assert_ptr_null(out);
        unsupported += st == CHARGAN_E_UNSUPPORTED;
    }
    ck_assert_int_eq(unsupported, 31); /* every flip of the version but its lowest bit */
    free(copy);
    chargan_free(data);
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(versions)
{
    chargan_tokenizer *tok = format_tok();
    size_t size;
    uint8_t *data = save_buf(tok, &size);
    uint32_t newer[] = {2, 7, 0xFFFFFFFF};
    for (size_t i = 0; i < 3; i++) {
        put_le32(data + 8, newer[i]);
        /* refused before anything after the version is read: the rest may
         * be laid out differently, so nothing of it is checked */
        expect_load(data, 12, CHARGAN_E_UNSUPPORTED, "newer");
        expect_load(data, size, CHARGAN_E_UNSUPPORTED, "byte offset 8");
    }
    put_le32(data + 8, 0);
    fix_crc(data, size);
    expect_load(data, size, CHARGAN_E_FORMAT, "'version' is 0");
    chargan_free(data);
    chargan_tokenizer_free(tok);
}
END_TEST

/* One hostile change to a valid buffer; the checksum is fixed afterwards
 * when fix is set, so the field checks behind it are reached. */
typedef struct hostile {
    const char *what;
    size_t offset;
    int width; /* 1, 4 or 8 bytes */
    uint64_t value;
    bool fix;
    chargan_status want;
    const char *needle;
} hostile;

START_TEST(hostile_fields)
{
    chargan_tokenizer *tok = format_tok();
    size_t size;
    uint8_t *data = save_buf(tok, &size);
    uint8_t *copy = malloc(size);
    /* entries: 0 'e' x3, 1 'x' x2, 2 U+20AC x2, 3 'a' x1, 4 U+1F600 x1 */
    const hostile cases[] = {
        {"magic", 0, 1, 'X', true, CHARGAN_E_FORMAT, "'magic'"},
        {"magic NUL", 7, 1, 'X', true, CHARGAN_E_FORMAT, "'magic'"},
        {"huge count", 24, 4, 0xFFFFFFFF, true, CHARGAN_E_FORMAT, "'entry_count' is 4294967295"},
        {"count past cap", 24, 4, 0x110001, true, CHARGAN_E_FORMAT, "more than"},
        {"count at cap, short", 24, 4, 0x110000, true, CHARGAN_E_FORMAT, "left (truncated)"},
        {"count too big", 24, 4, 6, false, CHARGAN_E_FORMAT, "left (truncated)"},
        {"count too small", 24, 4, 4, false, CHARGAN_E_FORMAT, "trailing"},
        {"checksum", 88, 4, 0, false, CHARGAN_E_FORMAT, "byte offset 88: field 'crc32'"},
        {"flip, no fix", 40, 1, 'y', false, CHARGAN_E_FORMAT, "'crc32'"},
        {"max_vocab 1", 12, 4, 1, true, CHARGAN_E_FORMAT, "byte offset 12: field 'max_vocab'"},
        {"max_vocab 2", 12, 4, 2, true, CHARGAN_E_FORMAT, "'max_vocab' is 2"},
        {"lowercase 2", 16, 1, 2, true, CHARGAN_E_FORMAT, "byte offset 16: field 'lowercase'"},
        {"fold_crlf 9", 17, 1, 9, true, CHARGAN_E_FORMAT, "byte offset 17: field 'fold_crlf'"},
        {"policy 2", 18, 1, 2, true, CHARGAN_E_FORMAT, "byte offset 18: field 'utf8_policy'"},
        {"reserved", 19, 1, 1, true, CHARGAN_E_FORMAT, "byte offset 19: field 'reserved'"},
        {"vocab_size", 20, 4, 6, true, CHARGAN_E_FORMAT, "byte offset 20: field 'vocab_size'"},
        {"vocab_size huge", 20, 4, 0xFFFFFFFF, true, CHARGAN_E_FORMAT, "'vocab_size'"},
        {"cap vs size", 12, 4, 6, true, CHARGAN_E_FORMAT, "'vocab_size' is 5"},
        {"surrogate", 28, 4, 0xD800, true, CHARGAN_E_FORMAT, "byte offset 28: entry 0"},
        {"above max", 40, 4, 0x110000, true, CHARGAN_E_FORMAT, "0x110000 is not"},
        {"all ones", 76, 4, 0xFFFFFFFF, true, CHARGAN_E_FORMAT, "byte offset 76: entry 4"},
        {"upper case", 28, 4, 'E', true, CHARGAN_E_FORMAT, "upper case"},
        {"Latin-1 upper", 76, 4, 0xC0, true, CHARGAN_E_FORMAT, "U+00C0 is upper case"},
        {"zero count", 80, 8, 0, true, CHARGAN_E_FORMAT, "byte offset 80: entry 4: count is 0"},
        {"counts rise", 44, 8, 4, true, CHARGAN_E_FORMAT,
         "byte offset 40: entry 1 (U+0078, count 4) does not rank after entry 0"},
        {"tie order", 52, 4, 'd', true, CHARGAN_E_FORMAT, "byte offset 52: entry 2"},
        {"adjacent twin", 40, 4, 0x20AC, true, CHARGAN_E_FORMAT, "does not rank after"},
        {"distant twin", 64, 4, 'e', true, CHARGAN_E_FORMAT, "U+0065 appears twice"},
        {"distant twin high", 76, 4, 0x20AC, true, CHARGAN_E_FORMAT, "U+20AC appears twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const hostile *h = &cases[i];
        memcpy(copy, data, size);
        if (h->width == 1)
            copy[h->offset] = (uint8_t)h->value;
        else if (h->width == 4)
            put_le32(copy + h->offset, (uint32_t)h->value);
        else
            put_le64(copy + h->offset, h->value);
        if (h->fix)
            fix_crc(copy, size);
        chargan_tokenizer *out = NULL;
        chargan_status st = chargan_tokenizer_load_buffer(copy, size, &out);
        ck_assert_msg(st == h->want, "%s: status %d (%s)", h->what, st, chargan_last_error());
        ck_assert_ptr_null(out);
        ck_assert_msg(strstr(chargan_last_error(), h->needle), "%s: message \"%s\" lacks \"%s\"",
                      h->what, chargan_last_error(), h->needle);
    }
    free(copy);
    chargan_free(data);
    chargan_tokenizer_free(tok);
}
END_TEST

/* Counts a loaded vocabulary brings can be at the top of their range: a
 * fit that would wrap one fails and changes nothing (a wrapped count would
 * silently re-rank the ids). */
START_TEST(fit_refuses_to_wrap_a_loaded_count)
{
    chargan_tokenizer *tok = format_tok();
    size_t size;
    uint8_t *data = save_buf(tok, &size);
    /* entries 0 'e', 1 'x', 2 U+20AC: all at the largest count (ties rank by code point) */
    put_le64(data + 32, UINT64_MAX);
    put_le64(data + 44, UINT64_MAX);
    put_le64(data + 56, UINT64_MAX);
    fix_crc(data, size);
    chargan_tokenizer *big;
    ck_assert_int_eq(chargan_tokenizer_load_buffer(data, size, &big), CHARGAN_OK);
    ck_assert_int_eq(chargan_tokenizer_fit(big, "abe", 3), CHARGAN_E_RANGE);
    const char *msg = chargan_tokenizer_last_error(big);
    ck_assert_ptr_nonnull(strstr(msg, "count of U+0065 would overflow"));
    ck_assert_ptr_nonnull(strstr(msg, "byte offset 2"));
    ck_assert_int_eq(chargan_tokenizer_fit(big, "ab\xe2\x82\xac", 5), CHARGAN_E_RANGE);
    ck_assert_ptr_nonnull(strstr(chargan_tokenizer_last_error(big), "U+20AC"));
    size_t size2;
    uint8_t *again = save_buf(big, &size2);
    ck_assert_uint_eq(size2, size);
    ck_assert_mem_eq(again, data, size); /* 'a' and 'b' were counted back out */
    ck_assert_int_eq(id_of(big, 'e'), 2);
    chargan_free(again);
    chargan_free(data);
    chargan_tokenizer_free(big);
    chargan_tokenizer_free(tok);
}
END_TEST

START_TEST(hostile_count_with_matching_length)
{
    /* a buffer really as long as a huge entry count claims: every entry is
     * read; then a duplicate at the very end is found */
    const uint32_t n = 200000;
    size_t size = 28 + (size_t)n * 12 + 4;
    uint8_t *buf = calloc(1, size);
    memcpy(buf, "CGVOCAB", 8);
    put_le32(buf + 8, 1);
    buf[17] = 1;
    put_le32(buf + 20, n + 2);
    put_le32(buf + 24, n);
    for (uint32_t i = 0; i < n; i++) {
        put_le32(buf + 28 + 12 * (size_t)i, 0x10000 + i);
        put_le64(buf + 32 + 12 * (size_t)i, 1);
    }
    fix_crc(buf, size);
    chargan_tokenizer *tok = NULL;
    ck_assert_int_eq(chargan_tokenizer_load_buffer(buf, size, &tok), CHARGAN_OK);
    ck_assert_uint_eq(vocab(tok), n + 2);
    ck_assert_int_eq(id_of(tok, 0x10000 + n - 1), (int32_t)n + 1);
    chargan_tokenizer_free(tok);
    /* entry 0 becomes the last one's twin with a higher count: still ranked */
    put_le32(buf + 28, 0x10000 + n - 1);
    put_le64(buf + 32, 2);
    fix_crc(buf, size);
    expect_load(buf, size, CHARGAN_E_FORMAT, "appears twice");
    free(buf);
}
END_TEST

/* ---------------------------------------------------------------- allocation failures */

/* Runs op with the k-th allocation failing for k = 0, 1, ... until it
 * succeeds; every failure must be CHARGAN_E_NOMEM and leave tok (if any) as
 * it was.  Returns the number of failures seen. */
typedef chargan_status (*tok_op)(chargan_tokenizer *tok, void *ctx);

static int fail_each_allocation(chargan_tokenizer *tok, tok_op op, void *ctx)
{
    size_t before_size = 0;
    uint8_t *before = tok ? save_buf(tok, &before_size) : NULL;
    int failures = 0;
    for (long k = 0;; k++) {
        cg_alloc_fail_after(k);
        chargan_status st = op(tok, ctx);
        cg_alloc_fail_after(-1);
        if (st == CHARGAN_OK)
            break;
        ck_assert_msg(st == CHARGAN_E_NOMEM, "k = %ld: status %d (%s)", k, st,
                      chargan_last_error());
        assert_msg_has(chargan_last_error(), "out of memory");
        failures++;
        if (tok) {
            size_t now_size;
            uint8_t *now = save_buf(tok, &now_size);
            ck_assert_msg(now_size == before_size && memcmp(now, before, now_size) == 0,
                          "k = %ld: the tokenizer changed", k);
            chargan_free(now);
        }
        ck_assert_int_lt(k, 1000);
    }
    chargan_free(before);
    return failures;
}

typedef struct text_ctx {
    const char *text;
    size_t len;
    chargan_tokenizer *made; /* what a constructor op produced */
    void *data;
    size_t size;
} text_ctx;

static chargan_status op_new(chargan_tokenizer *tok, void *ctx)
{
    (void)tok;
    text_ctx *c = ctx;
    return chargan_tokenizer_new(NULL, &c->made);
}

static chargan_status op_fit(chargan_tokenizer *tok, void *ctx)
{
    text_ctx *c = ctx;
    return chargan_tokenizer_fit(tok, c->text, c->len);
}

static chargan_status op_encode(chargan_tokenizer *tok, void *ctx)
{
    text_ctx *c = ctx;
    int32_t ids[1024];
    size_t n;
    return chargan_tokenizer_encode(tok, c->text, c->len, ids, 1024, &n);
}

static chargan_status op_encode_alloc(chargan_tokenizer *tok, void *ctx)
{
    text_ctx *c = ctx;
    int32_t *ids;
    size_t n;
    chargan_status st = cg_tokenizer_encode_alloc(tok, c->text, c->len, &ids, &n);
    if (st == CHARGAN_OK)
        cg_free(ids);
    return st;
}

static chargan_status op_decode_alloc(chargan_tokenizer *tok, void *ctx)
{
    (void)ctx;
    int32_t ids[] = {2, 3, 4, CHARGAN_ID_UNKNOWN};
    char *text;
    size_t len;
    chargan_status st = cg_tokenizer_decode_alloc(tok, ids, 4, &text, &len);
    if (st == CHARGAN_OK)
        cg_free(text);
    return st;
}

static chargan_status op_save_buffer(chargan_tokenizer *tok, void *ctx)
{
    (void)ctx;
    void *data;
    size_t size;
    chargan_status st = chargan_tokenizer_save_buffer(tok, &data, &size);
    if (st == CHARGAN_OK)
        chargan_free(data);
    return st;
}

static chargan_status op_save_file(chargan_tokenizer *tok, void *ctx)
{
    return chargan_tokenizer_save(tok, ((text_ctx *)ctx)->text);
}

static chargan_status op_load_buffer(chargan_tokenizer *tok, void *ctx)
{
    (void)tok;
    text_ctx *c = ctx;
    return chargan_tokenizer_load_buffer(c->data, c->size, &c->made);
}

static chargan_status op_load_file(chargan_tokenizer *tok, void *ctx)
{
    (void)tok;
    text_ctx *c = ctx;
    return chargan_tokenizer_load(c->text, &c->made);
}

static chargan_status op_clone(chargan_tokenizer *tok, void *ctx)
{
    text_ctx *c = ctx;
    c->made = cg_tokenizer_clone(tok);
    return c->made ? CHARGAN_OK : CHARGAN_E_NOMEM;
}

START_TEST(allocation_failures_leak_nothing)
{
    /* 300 distinct characters above U+00FF make the count map grow several times */
    char text[2048];
    size_t len = 0;
    for (uint32_t k = 0; k < 300; k++) {
        len += cg_utf8_encode(0x400 + k, (uint8_t *)text + len);
        text[len++] = (char)('a' + k % 26);
    }
    text_ctx c = {text, len, NULL, NULL, 0};

    ck_assert_int_ge(fail_each_allocation(NULL, op_new, &c), 1);
    chargan_tokenizer *tok = c.made;

    /* fitting a fresh tokenizer, then one with counts already (a failed fit
     * keeps the count map it grew, so later tries fail further on) */
    ck_assert_int_ge(fail_each_allocation(tok, op_fit, &c), 3);
    chargan_tokenizer *ref = new_tok(NULL);
    ck_assert_int_eq(chargan_tokenizer_fit(ref, text, len), CHARGAN_OK);
    ck_assert(same_state(tok, ref));
    text_ctx more = {"\xE2\x82\xAC\xE2\x82\xAC more text", 16, NULL, NULL, 0};
    ck_assert_int_ge(fail_each_allocation(tok, op_fit, &more), 2);
    ck_assert_int_eq(chargan_tokenizer_fit(ref, more.text, more.len), CHARGAN_OK);
    ck_assert(same_state(tok, ref));

    /* encode allocates nothing; the internal paths do */
    ck_assert_int_eq(fail_each_allocation(tok, op_encode, &c), 0);
    ck_assert_int_ge(fail_each_allocation(tok, op_encode_alloc, &c), 1);
    ck_assert_int_ge(fail_each_allocation(tok, op_decode_alloc, &c), 1);
    ck_assert_int_ge(fail_each_allocation(tok, op_save_buffer, &c), 1);

    ck_assert_int_ge(fail_each_allocation(tok, op_clone, &c), 2);
    ck_assert(same_state(tok, c.made));
    chargan_tokenizer_free(c.made);

    c.data = save_buf(tok, &c.size);
    ck_assert_int_ge(fail_each_allocation(NULL, op_load_buffer, &c), 3);
    ck_assert(same_state(tok, c.made));
    chargan_tokenizer_free(c.made);
    chargan_free(c.data);

    char path[512];
    snprintf(path, sizeof path, "%s/oom.bin", cg_test_tmpdir());
    text_ctx file = {path, 0, NULL, NULL, 0};
    ck_assert_int_ge(fail_each_allocation(tok, op_save_file, &file), 2);
    ck_assert_int_ge(fail_each_allocation(NULL, op_load_file, &file), 2);
    ck_assert(same_state(tok, file.made));
    chargan_tokenizer_free(file.made);
    unlink(path);

    /* after all that, the handle works */
    int32_t ids[8];
    size_t n;
    ck_assert_int_eq(chargan_tokenizer_encode(tok, "more", 4, ids, 8, &n), CHARGAN_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_ge(ids[0], 2);
    chargan_tokenizer_free(ref);
    chargan_tokenizer_free(tok);
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_add_test(tc, options_defaults);
    tcase_add_test(tc, options_validated);
    tcase_add_test(tc, null_arguments_are_invalid);
    tcase_add_test(tc, empty_tokenizer_and_empty_input);
    tcase_add_test(tc, ids_ranked_by_count_then_code_point);
    tcase_add_test(tc, fit_accumulates_over_calls);
    tcase_add_test(tc, max_vocab_cuts_the_tail);
    tcase_add_test(tc, lowercase_folds_ascii_and_latin1);
    tcase_add_test(tc, crlf_folding);
    tcase_add_test(tc, encode_in_pieces_equals_one_encode);
    tcase_add_test(tc, strict_utf8_names_the_offset);
    tcase_add_test(tc, replace_policy_one_unknown_per_maximal_subsequence);
    tcase_add_test(tc, encode_buffer_protocol);
    tcase_add_test(tc, decode_buffer_protocol);
    tcase_add_test(tc, lookup_by_code_point);
    tcase_add_test(tc, many_distinct_code_points);
    tcase_add_test(tc, round_trip_sonnets);
    tcase_add_test(tc, round_trip_tinyshakespeare);
    tcase_add_test(tc, internal_alloc_paths_and_clone);
    tcase_add_test(tc, format_is_byte_exact);
    tcase_add_test(tc, save_load_round_trip);
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, truncated_at_every_offset);
    tcase_add_test(tc, every_bit_flip_is_caught);
    tcase_add_test(tc, versions);
    tcase_add_test(tc, hostile_fields);
    tcase_add_test(tc, hostile_count_with_matching_length);
    tcase_add_test(tc, fit_refuses_to_wrap_a_loaded_count);
    tcase_add_test(tc, allocation_failures_leak_nothing);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(tokenizer_suite)
