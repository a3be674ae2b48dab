/* test_core.c - version, status names, error messages, RNG, CRC-32, the
 * little-endian reader/writer, UTF-8 decoding and atomic file writes. */
#define _POSIX_C_SOURCE 200809L
#include "test_common.h"
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <unistd.h>

START_TEST(version_matches_header)
{
    ck_assert_str_eq(chargan_version(), CHARGAN_VERSION_STRING);
    ck_assert_uint_eq(chargan_version_number(), CHARGAN_VERSION_NUMBER);
    ck_assert_uint_eq(CHARGAN_VERSION_NUMBER, CHARGAN_VERSION_MAJOR * 10000 +
                                                  CHARGAN_VERSION_MINOR * 100 +
                                                  CHARGAN_VERSION_PATCH);
}
END_TEST

START_TEST(strerror_names_every_status)
{
    for (int s = CHARGAN_OK; s <= CHARGAN_E_NOT_FOUND; s++) {
        const char *name = chargan_strerror((chargan_status)s);
        ck_assert_ptr_nonnull(name);
        ck_assert_str_ne(name, "unknown status");
    }
    ck_assert_str_eq(chargan_strerror((chargan_status)999), "unknown status");
    ck_assert_str_eq(chargan_strerror(CHARGAN_E_NOMEM), "out of memory");
}
END_TEST

START_TEST(fail_sets_handle_and_thread_message)
{
    cg_error err = {{0}};
    chargan_status st = cg_fail(&err, CHARGAN_E_FORMAT, "field %s at offset %d", "magic", 4);
    ck_assert_int_eq(st, CHARGAN_E_FORMAT);
    ck_assert_str_eq(err.msg, "field magic at offset 4");
    ck_assert_str_eq(chargan_last_error(), "field magic at offset 4");
    cg_fail(NULL, CHARGAN_E_IO, "inner");
    cg_fail_from(&err, CHARGAN_E_IO, "outer: ");
    ck_assert_str_eq(err.msg, "outer: inner");
}
END_TEST

/* Whether s is well-formed UTF-8 (a cut message may not split a character). */
static bool valid_utf8(const char *s)
{
    size_t len = strlen(s), off = 0;
    while (off < len) {
        uint32_t cp;
        size_t bad = 0, used = cg_utf8_decode((const uint8_t *)s + off, len - off, &cp, &bad);
        if (used == 0 || bad)
            return false;
        off += used;
    }
    return true;
}

START_TEST(long_messages_keep_their_cause)
{
    /* A path longer than a message holds: the message keeps its start and
     * the system's reason at its end around "...", between characters
     * (the path of two-byte characters puts every cut inside one). */
    static char path[3000];
    strcpy(path, "/nonexistent/");
    for (size_t n = strlen(path); n + 3 < sizeof path; n += 2)
        strcat(path, "\xc3\xa9");
    chargan_model *m = NULL;
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &m), CHARGAN_E_IO);
    const char *msg = chargan_last_error();
    char why[128];
    snprintf(why, sizeof why, "': %s", strerror(ENOENT));
    ck_assert_uint_lt(strlen(msg), CG_ERRMSG_MAX);
    ck_assert_uint_gt(strlen(msg), CG_ERRMSG_MAX / 2);
    ck_assert_msg(strncmp(msg, "cannot open '/nonexistent/\xc3\xa9", 28) == 0, "%.40s", msg);
    ck_assert_ptr_nonnull(strstr(msg, "..."));
    ck_assert_str_eq(msg + strlen(msg) - strlen(why), why);
    ck_assert(valid_utf8(msg));
    ck_assert_int_eq(chargan_last_errno(), ENOENT);
    /* Beyond the room formatted in (a message of 20,000 bytes): cut
     * between characters, then elided the same way. */
    cg_error err = {{0}};
    static char huge[20000];
    memset(huge, 0, sizeof huge);
    for (size_t n = 0; n + 3 < sizeof huge; n += 3)
        memcpy(huge + n, "\xe2\x82\xac", 3); /* the euro sign, three bytes */
    cg_fail(&err, CHARGAN_E_INVALID, "x%s: the end", huge);
    ck_assert_uint_lt(strlen(err.msg), CG_ERRMSG_MAX);
    ck_assert_ptr_nonnull(strstr(err.msg, "..."));
    ck_assert(valid_utf8(err.msg));
    ck_assert_str_eq(err.msg + strlen(err.msg) - strlen(": the end"), ": the end");
    ck_assert_str_eq(err.msg, chargan_last_error());
    /* Out of memory, a message about a long path (3 KB) keeps its end too:
     * it is formatted on the stack (a review found it cut at 2 KB) */
    huge[3000] = '\0';
    cg_alloc_fail_after(0);
    cg_fail(&err, CHARGAN_E_NOMEM, "x%s: out of memory", huge);
    cg_alloc_fail_after(-1);
    ck_assert_str_eq(err.msg + strlen(err.msg) - strlen(": out of memory"), ": out of memory");
    ck_assert(valid_utf8(err.msg));
    /* A nested message after a context too long for the stack, out of
     * memory: the context is cut between characters, the nested message
     * (the cause) kept whole */
    huge[3000] = '\xe2';
    cg_fail(NULL, CHARGAN_E_IO, "the cause");
    cg_alloc_fail_after(0);
    cg_fail_from(&err, CHARGAN_E_IO, "%s: ", huge);
    cg_alloc_fail_after(-1);
    ck_assert_str_eq(err.msg + strlen(err.msg) - strlen("the cause"), "the cause");
    ck_assert(valid_utf8(err.msg));
    ck_assert_uint_lt(strlen(err.msg), CG_ERRMSG_MAX);

    /* A loader that adds the path to a nested message: a vocabulary file
     * that is not one, under six directories of 100 two-byte characters */
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/long-names", cg_test_tmpdir());
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    for (int level = 0; level < 6; level++) {
        size_t n = strlen(dir);
        dir[n++] = '/';
        for (int i = 0; i < 100; i++, n += 2)
            memcpy(dir + n, "\xc3\xa9", 2);
        dir[n] = '\0';
        ck_assert_int_eq(mkdir(dir, 0755), 0);
    }
    char file[2100];
    snprintf(file, sizeof file, "%s/x.vocab", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("not a vocabulary", f);
    fclose(f);
    chargan_tokenizer *tok = NULL;
    ck_assert_int_eq(chargan_tokenizer_load(file, &tok), CHARGAN_E_FORMAT);
    msg = chargan_last_error();
    ck_assert(valid_utf8(msg));
    ck_assert_ptr_nonnull(strstr(msg, "..."));
    ck_assert_ptr_nonnull(strstr(msg, "/x.vocab': ")); /* the path's end, then the cause */
}
END_TEST

START_TEST(struct_size_accepts_zero_tail_only)
{
    unsigned char buf[32] = {0};
    ck_assert(cg_struct_size_ok(buf, 16, 16, 16));
    ck_assert(!cg_struct_size_ok(buf, 8, 16, 16));
    ck_assert(cg_struct_size_ok(buf, 32, 16, 16));
    buf[20] = 1;
    ck_assert(!cg_struct_size_ok(buf, 32, 16, 16));
    /* a size no struct has is refused, even with a zero tail to read */
    static unsigned char zeros[8192];
    ck_assert(cg_struct_size_ok(zeros, CG_MAX_STRUCT_SIZE, 16, 16));
    ck_assert(!cg_struct_size_ok(zeros, CG_MAX_STRUCT_SIZE + 1, 16, 16));
}
END_TEST

START_TEST(rng_is_deterministic_and_uniform)
{
    cg_rng a, b;
    cg_rng_seed(&a, 42);
    cg_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(cg_rng_next(&a), cg_rng_next(&b));
    cg_rng_seed(&b, 43);
    ck_assert_uint_ne(cg_rng_next(&a), cg_rng_next(&b));
    /* mean and variance of uniforms and normals within 4 standard errors */
    double su = 0, sn = 0, sn2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = cg_rng_uniform(&a);
        ck_assert(u >= 0.0f && u < 1.0f);
        su += u;
        double z = cg_rng_normal(&a);
        sn += z;
        sn2 += z * z;
    }
    ck_assert_double_eq_tol(su / n, 0.5, 4 * 0.2887 / sqrt(n));
    ck_assert_double_eq_tol(sn / n, 0.0, 4 / sqrt(n));
    ck_assert_double_eq_tol(sn2 / n, 1.0, 4 * sqrt(2.0 / n));
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++)
        hist[cg_rng_below(&a, 7)]++;
    for (int k = 0; k < 7; k++)
        ck_assert_int_lt(abs(hist[k] - 10000), 400);
    cg_rng s0, s1;
    cg_rng_seed_stream(&s0, 42, 0);
    cg_rng_seed_stream(&s1, 42, 1);
    ck_assert_uint_ne(cg_rng_next(&s0), cg_rng_next(&s1));
}
END_TEST

START_TEST(crc32_known_vectors)
{
    ck_assert_uint_eq(cg_crc32(0, "123456789", 9), 0xCBF43926u);
    ck_assert_uint_eq(cg_crc32(0, "", 0), 0);
    /* incremental equals one-shot */
    uint32_t c = cg_crc32(0, "1234", 4);
    ck_assert_uint_eq(cg_crc32(c, "56789", 5), 0xCBF43926u);
}
END_TEST

START_TEST(bytes_round_trip_little_endian)
{
    cg_writer w;
    cg_writer_init(&w);
    cg_put_u32(&w, 0x01020304u);
    cg_put_u64(&w, 0x1122334455667788ull);
    cg_put_f32(&w, -1.5f);
    cg_put_f64(&w, 3.25);
    float arr[3] = {1.0f, -2.0f, 0.5f};
    cg_put_f32_array(&w, arr, 3);
    cg_put_u8(&w, 7);
    cg_patch_u32(&w, 0, 0xA0B0C0D0u);
    ck_assert(!w.failed);
    ck_assert_uint_eq(w.size, 4 + 8 + 4 + 8 + 12 + 1);
    ck_assert_uint_eq(w.data[0], 0xD0);
    ck_assert_uint_eq(w.data[4], 0x88);

    cg_reader r;
    cg_reader_init(&r, w.data, w.size);
    uint32_t u32;
    uint64_t u64;
    float f, back[3];
    double d;
    uint8_t u8;
    ck_assert(cg_get_u32(&r, &u32) && u32 == 0xA0B0C0D0u);
    ck_assert(cg_get_u64(&r, &u64) && u64 == 0x1122334455667788ull);
    ck_assert(cg_get_f32(&r, &f) && f == -1.5f);
    ck_assert(cg_get_f64(&r, &d) && d == 3.25);
    ck_assert(cg_get_f32_array(&r, back, 3));
    ck_assert(memcmp(back, arr, sizeof arr) == 0);
    ck_assert(cg_get_u8(&r, &u8) && u8 == 7);
    ck_assert_uint_eq(cg_reader_left(&r), 0);
    /* reads past the end fail and consume nothing */
    ck_assert(!cg_get_u8(&r, &u8));
    ck_assert(!cg_get_u32(&r, &u32));
    cg_reader_init(&r, w.data, 3);
    ck_assert(!cg_get_u32(&r, &u32));
    ck_assert_uint_eq(r.pos, 0);
    ck_assert(!cg_get_f32_array(&r, back, SIZE_MAX / 2));
    cg_writer_free(&w);
}
END_TEST

START_TEST(writer_reports_allocation_failure)
{
    cg_writer w;
    cg_writer_init(&w);
    cg_alloc_fail_after(0);
    cg_put_u32(&w, 1);
    cg_alloc_fail_after(-1);
    ck_assert(w.failed);
    cg_put_u32(&w, 2); /* sticks */
    ck_assert(w.failed);
    cg_writer_free(&w);
}
END_TEST

static size_t dec(const char *s, size_t len, uint32_t *cp, size_t *bad)
{
    return cg_utf8_decode((const uint8_t *)s, len, cp, bad);
}

START_TEST(utf8_decode_accepts_valid_rejects_invalid)
{
    uint32_t cp;
    size_t bad;
    ck_assert_uint_eq(dec("A", 1, &cp, &bad), 1);
    ck_assert_uint_eq(cp, 'A');
    ck_assert_uint_eq(dec("\xC3\xA9", 2, &cp, &bad), 2);
    ck_assert_uint_eq(cp, 0xE9);
    ck_assert_uint_eq(dec("\xE2\x82\xAC", 3, &cp, &bad), 3);
    ck_assert_uint_eq(cp, 0x20AC);
    ck_assert_uint_eq(dec("\xF0\x9F\x98\x80", 4, &cp, &bad), 4);
    ck_assert_uint_eq(cp, 0x1F600);
    ck_assert_uint_eq(dec("\xF4\x8F\xBF\xBF", 4, &cp, &bad), 4);
    ck_assert_uint_eq(cp, 0x10FFFF);
    /* invalid: lone continuation, overlongs, surrogates, > U+10FFFF, truncation */
    ck_assert_uint_eq(dec("\x80", 1, &cp, &bad), 0);
    ck_assert_uint_eq(bad, 1);
    ck_assert_uint_eq(dec("\xC0\xAF", 2, &cp, &bad), 0);
    ck_assert_uint_eq(bad, 1);
    ck_assert_uint_eq(dec("\xE0\x80\xAF", 3, &cp, &bad), 0);
    ck_assert_uint_eq(bad, 1);
    ck_assert_uint_eq(dec("\xED\xA0\x80", 3, &cp, &bad), 0);
    ck_assert_uint_eq(bad, 1);
    ck_assert_uint_eq(dec("\xF4\x90\x80\x80", 4, &cp, &bad), 0);
    ck_assert_uint_eq(dec("\xF5\x80", 2, &cp, &bad), 0);
    ck_assert_uint_eq(dec("\xE2\x82", 2, &cp, &bad), 0);
    ck_assert_uint_eq(bad, 2);
    ck_assert_uint_eq(dec("\xE2\x82X", 3, &cp, &bad), 0);
    ck_assert_uint_eq(bad, 2);
    /* encode round-trips every scalar value in a sample */
    uint32_t samples[] = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0x10000, 0x10FFFF};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        uint8_t buf[4];
        size_t n = cg_utf8_encode(samples[i], buf);
        ck_assert_uint_eq(cg_utf8_decode(buf, n, &cp, &bad), n);
        ck_assert_uint_eq(cp, samples[i]);
    }
}
END_TEST

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

START_TEST(atomic_write_replaces_and_cleans_up)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/atomic", cg_test_tmpdir());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/file.bin", dir);
    cg_error err = {{0}};
    ck_assert_int_eq(cg_write_file_atomic(&err, path, "first", 5), CHARGAN_OK);
    ck_assert_int_eq(cg_write_file_atomic(&err, path, "second!", 7), CHARGAN_OK);
    uint8_t *data;
    size_t size;
    ck_assert_int_eq(cg_read_file(&err, path, 100, NULL, &data, &size), CHARGAN_OK);
    ck_assert_uint_eq(size, 7);
    ck_assert(memcmp(data, "second!", 7) == 0);
    cg_free(data);
    ck_assert_int_eq(count_entries(dir), 1);
    /* size cap */
    ck_assert_int_eq(cg_read_file(&err, path, 3, NULL, &data, &size), CHARGAN_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "file.bin"));
    /* a directory that does not exist: an I/O error naming the path, nothing left */
    ck_assert_int_eq(cg_write_file_atomic(&err, "/nonexistent-dir/x.bin", "a", 1), CHARGAN_E_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent-dir/x.bin"));
    ck_assert_int_eq(cg_read_file(&err, "/nonexistent-file", 10, NULL, &data, &size), CHARGAN_E_IO);
    ck_assert_int_eq(cg_read_file(&err, dir, 10, NULL, &data, &size), CHARGAN_E_IO);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* The reads of a whole file refuse a FIFO at once (opening one without a
 * writer used to wait for a writer), and a file whose head its check refuses
 * is refused before anything is allocated for its body. */
static chargan_status refuse_x(cg_error *err, const char *path, const uint8_t *head, size_t n)
{
    if (n == CG_FILE_HEAD && head[0] == 'X')
        return cg_fail(err, CHARGAN_E_FORMAT, "%s starts with X", path);
    return CHARGAN_OK;
}

/* Writes the n bytes at body to path, a checkpoint's 24-byte header (the
 * given version and section count, a valid CRC) written over their start. */
static void write_checkpoint_head(const char *path, char *body, size_t n, uint32_t version,
                                  uint32_t sections)
{
    uint8_t *h = (uint8_t *)body;
    memcpy(h, "CHARGAN", 8);
    const uint32_t words[3] = {version, 0x01020304u, sections};
    for (int w = 0; w < 3; w++)
        for (int b = 0; b < 4; b++)
            h[8 + 4 * w + b] = (uint8_t)(words[w] >> (8 * b));
    const uint32_t crc = cg_crc32(0, h, 20);
    for (int b = 0; b < 4; b++)
        h[20 + b] = (uint8_t)(crc >> (8 * b));
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(body, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Resident memory of this process, in bytes (/proc/self/statm). */
static size_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Float arrays are zero, 64-byte aligned, and a large one costs memory only
 * where it is written: room reserved for a checkpoint's batch (a 2 kB file
 * asked for 2.7 GB of buffers, all zeroed at once) or a workspace for the
 * largest call is address space until used. */
START_TEST(float_arrays_cost_memory_when_used)
{
    const size_t n = (size_t)64 << 20; /* 256 MB */
#ifdef __GLIBC__
    mallopt(M_PERTURB, 0); /* meson test sets MALLOC_PERTURB_: calloc would write its zeros */
#endif
    size_t before = resident_bytes();
    float *a = cg_alloc_floats(n);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq((uintptr_t)a % 64, 0);
    size_t after = resident_bytes();
    for (size_t i = 0; i < n; i += 4096)
        ck_assert(a[i] == 0.0f);
    ck_assert(a[n - 1] == 0.0f);
    a[n - 1] = 1.0f;
    /* glibc's calloc leaves fresh pages as they are; valgrind's writes zeros */
#ifdef __GLIBC__
    if (!getenv("CHARGAN_TEST_VALGRIND"))
        ck_assert_uint_lt(after - before, (size_t)16 << 20);
#endif
    (void)before, (void)after;
    cg_free_floats(a);
    cg_free_floats(NULL);
    for (size_t k = 1; k < 200; k += 37) { /* small ones: aligned, zero, each its own */
        float *s = cg_alloc_floats(k), *t = cg_alloc_floats(k);
        ck_assert_ptr_nonnull(s);
        ck_assert_ptr_nonnull(t);
        ck_assert_uint_eq((uintptr_t)s % 64, 0);
        for (size_t i = 0; i < k; i++)
            ck_assert(s[i] == 0.0f && t[i] == 0.0f);
        for (size_t i = 0; i < k; i++)
            s[i] = 1.0f;
        for (size_t i = 0; i < k; i++)
            ck_assert(t[i] == 0.0f);
        cg_free_floats(s);
        cg_free_floats(t);
    }
}
END_TEST

START_TEST(read_file_refuses_fifo_and_foreign_head)
{
    char path[600];
    snprintf(path, sizeof path, "%s/fifo", cg_test_tmpdir());
    unlink(path);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    cg_error err = {{0}};
    uint8_t *data;
    size_t size;
    ck_assert_int_eq(cg_read_file(&err, path, 100, NULL, &data, &size), CHARGAN_E_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
    chargan_model *m;
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &m), CHARGAN_E_IO);
    chargan_tokenizer *tok;
    ck_assert_int_eq(chargan_tokenizer_load(path, &tok), CHARGAN_E_IO);
    unlink(path);

    /* a megabyte of X: the check sees 24 bytes, and the call takes no memory */
    snprintf(path, sizeof path, "%s/xxx", cg_test_tmpdir());
    const size_t big = 1 << 20;
    char *xs = malloc(big);
    ck_assert_ptr_nonnull(xs);
    memset(xs, 'X', big);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(xs, 1, big, f), big);
    ck_assert_int_eq(fclose(f), 0);
    cg_alloc_largest();
    ck_assert_int_eq(cg_read_file(&err, path, big, refuse_x, &data, &size), CHARGAN_E_FORMAT);
    ck_assert_str_eq(err.msg + strlen(path), " starts with X");
    ck_assert_uint_eq(cg_alloc_largest(), 0);
    /* nor does a model load of it, which fails at the magic as before */
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &m), CHARGAN_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(chargan_last_error(), "bad magic"));
    ck_assert_uint_lt(cg_alloc_largest(), 4096);
    /* our magic, and a header wrong after it: judged before the body too */
    static const struct {
        uint32_t version, sections;
        const char *needle;
    } heads[] = {{0, 1, "format version 0"}, {2, 1, "format version 2"},
                 {1, 33, "33 sections at offset 16"}};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        write_checkpoint_head(path, xs, big, heads[i].version, heads[i].sections);
        cg_alloc_largest();
        ck_assert_int_ne(chargan_model_load(path, CHARGAN_GENERATOR, &m), CHARGAN_OK);
        ck_assert_msg(strstr(chargan_last_error(), heads[i].needle), "%s", chargan_last_error());
        ck_assert_uint_lt(cg_alloc_largest(), 4096);
    }
    /* a head the check accepts: the whole file, as before */
    xs[0] = 'Y';
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(xs, 1, big, f), big);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(cg_read_file(&err, path, big, refuse_x, &data, &size), CHARGAN_OK);
    ck_assert_uint_eq(size, big);
    ck_assert_mem_eq(data, xs, big);
    cg_free(data);
    /* and a valid checkpoint header before more bytes than the memory the
     * process may use (the test hook's, a byte less): refused before the body is
     * read, where reading it could get the process killed by the kernel */
    write_checkpoint_head(path, xs, big, 1, 1);
    cg_set_memory_limit(big - 1);
    cg_alloc_largest();
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &m), CHARGAN_E_NOMEM);
    ck_assert_uint_lt(cg_alloc_largest(), 4096);
    ck_assert_msg(strstr(chargan_last_error(), "is 0.00105 GB, more than this machine's memory "
                                               "(0.00105 GB)"),
                  "%s", chargan_last_error());
    ck_assert_int_eq(truncate(path, (off_t)big - 1), 0); /* as much: read, refused for its section */
    ck_assert_int_eq(chargan_model_load(path, CHARGAN_GENERATOR, &m), CHARGAN_E_FORMAT);
    ck_assert_uint_ge(cg_alloc_largest(), big);
    cg_set_memory_limit(0);
    free(xs);
    unlink(path);
}
END_TEST

START_TEST(atomic_write_to_full_disk_leaves_old_file)
{
    /* /dev/full fails every write with ENOSPC; we cannot rename over it, but
     * we can check a write into a directory we cannot create files in. */
    cg_error err = {{0}};
    if (geteuid() == 0)
        return; /* root writes anywhere: covered by the fault-injection tests */
    ck_assert_int_eq(cg_write_file_atomic(&err, "/proc/x.bin", "a", 1), CHARGAN_E_IO);
}
END_TEST

/* Writes CONTENT to ROOT/PATH, making the directories on the way. */
static void fake_file(const char *root, const char *path, const char *content)
{
    char full[1024];
    snprintf(full, sizeof full, "%s%s", root, path);
    for (char *slash = strchr(full + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(full, 0700);
        *slash = '/';
    }
    FILE *f = fopen(full, "w");
    ck_assert_msg(f != NULL, "%s", full);
    fputs(content, f);
    fclose(f);
}

/* cg_cgroup_memory_limit of a tree whose files can all be opened. */
static uint64_t limit_of(const char *root)
{
    bool transient = true;
    const uint64_t limit = cg_cgroup_memory_limit(root, &transient);
    ck_assert(!transient);
    return limit;
}

/* A fresh fake root for one case: ROOT/proc/self/{cgroup,mountinfo}. */
static void fake_root(char *root, size_t size, const char *name, const char *cgroup,
                      const char *mountinfo)
{
    snprintf(root, size, "%s/%s", cg_test_tmpdir(), name);
    mkdir(root, 0700);
    fake_file(root, "/proc/self/cgroup", cgroup);
    fake_file(root, "/proc/self/mountinfo", mountinfo);
}

#define V2_MOUNT "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
#define V1_MOUNT "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"

/* The control group's memory limit, read from fake /proc and /sys trees the
 * way the kernel lays them out: cgroup v2 (a parent's smaller limit counts
 * up to the mount, "max" is none, a container's namespaced view, a mount of
 * a subtree, whose root group counts), v1
 * (memory.stat's limit with the ancestors', else the group's own; a
 * hierarchy shared with other controllers), both at once (the smaller),
 * and files that are missing, malformed or out of range (no limit). */
START_TEST(cgroup_memory_limit_from_fake_trees)
{
    char root[512];
    fake_root(root, sizeof root, "v2", "0::/a/b\n", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" V2_MOUNT);
    fake_file(root, "/sys/fs/cgroup/a/b/memory.max", "max\n");
    fake_file(root, "/sys/fs/cgroup/a/memory.max", "1073741824\n");
    ck_assert_uint_eq(limit_of(root), 1073741824u);
    fake_file(root, "/sys/fs/cgroup/a/b/memory.max", "5000\n");
    ck_assert_uint_eq(limit_of(root), 5000u);
    fake_file(root, "/sys/fs/memory.max", "100\n"); /* above the mount: not read */
    ck_assert_uint_eq(limit_of(root), 5000u);

    /* a container's view: its own group is "/", the mount shows it */
    fake_root(root, sizeof root, "ns", "0::/\n", V2_MOUNT);
    fake_file(root, "/sys/fs/cgroup/memory.max", "7777\n");
    ck_assert_uint_eq(limit_of(root), 7777u);

    /* a mount of a subtree, at a path with an escaped space */
    fake_root(root, sizeof root, "sub", "0::/job/x/task\n",
              "30 23 0:26 /job/x /my\\040cg rw - cgroup2 cgroup2 rw\n");
    fake_file(root, "/my cg/task/memory.max", "4096\n");
    ck_assert_uint_eq(limit_of(root), 4096u);
    fake_file(root, "/my cg/memory.max", "2048\n"); /* the mount shows /job/x: it counts */
    ck_assert_uint_eq(limit_of(root), 2048u);

    /* the first cgroup2 mount shows another subtree: the one that shows the group counts */
    fake_root(root, sizeof root, "other", "0::/job\n",
              "40 23 0:26 /other /mnt/other rw - cgroup2 cgroup2 rw\n" V2_MOUNT);
    fake_file(root, "/mnt/other/memory.max", "1048576\n");
    fake_file(root, "/sys/fs/cgroup/job/memory.max", "max\n");
    ck_assert_uint_eq(limit_of(root), UINT64_MAX);
    fake_file(root, "/sys/fs/cgroup/job/memory.max", "3000\n");
    ck_assert_uint_eq(limit_of(root), 3000u);
    /* two mounts show the group: the one with the shortest root, which shows
     * the limit of a group above it too */
    fake_root(root, sizeof root, "two", "0::/a/job/x\n",
              "40 23 0:26 /a/job /mnt/job rw - cgroup2 cgroup2 rw\n" V2_MOUNT);
    fake_file(root, "/sys/fs/cgroup/a/memory.max", "100\n");
    ck_assert_uint_eq(limit_of(root), 100u);
    /* a group outside the namespace ("/../sib"): no mount shows it */
    fake_root(root, sizeof root, "sib", "0::/../sib\n", V2_MOUNT);
    fake_file(root, "/sys/fs/cgroup/cgroup.procs", "");
    fake_file(root, "/sys/fs/sib/memory.max", "100\n"); /* /sys/fs/cgroup/../sib */
    ck_assert_uint_eq(limit_of(root), UINT64_MAX);
    /* a namespace's view from outside it (root "/.."): not the group's */
    fake_root(root, sizeof root, "outside", "0::/\n",
              "30 23 0:26 /.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    fake_file(root, "/sys/fs/cgroup/memory.max", "100\n");
    ck_assert_uint_eq(limit_of(root), UINT64_MAX);

    /* v1: the hierarchical limit first, then the group's own */
    fake_root(root, sizeof root, "v1", "5:cpu,cpuacct:/\n4:memory:/job\n0::/\n",
              "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n" V1_MOUNT);
    fake_file(root, "/sys/fs/cgroup/memory/job/memory.limit_in_bytes", "999999\n");
    ck_assert_uint_eq(limit_of(root), 999999u);
    fake_file(root, "/sys/fs/cgroup/memory/job/memory.stat",
              "cache 0\nhierarchical_memory_limit 123456\nhierarchical_memsw_limit 9\n");
    ck_assert_uint_eq(limit_of(root), 123456u);

    /* v1's memory controller shared with another; hybrid: the smaller of both */
    fake_root(root, sizeof root, "hybrid", "3:blkio,memory:/j\n0::/k\n",
              "35 31 0:32 / /sys/fs/cgroup/mem rw - cgroup cgroup rw,blkio,memory\n" V2_MOUNT);
    fake_file(root, "/sys/fs/cgroup/mem/j/memory.limit_in_bytes", "9223372036854771712\n");
    ck_assert_uint_eq(limit_of(root), 9223372036854771712u);
    fake_file(root, "/sys/fs/cgroup/k/memory.max", "65536\n");
    ck_assert_uint_eq(limit_of(root), 65536u);
    fake_file(root, "/sys/fs/cgroup/mem/j/memory.limit_in_bytes", "512\n");
    ck_assert_uint_eq(limit_of(root), 512u);

    /* what cannot be read or parsed is no limit */
    static const char *const bad[] = {"", "\n", "12abc\n", "-5\n", " 7\n", "0x10\n",
                                      "99999999999999999999999\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fake_root(root, sizeof root, "bad", "0::/g\n", V2_MOUNT);
        fake_file(root, "/sys/fs/cgroup/g/memory.max", bad[i]);
        ck_assert_msg(limit_of(root) == UINT64_MAX, "memory.max \"%s\"", bad[i]);
    }
    fake_root(root, sizeof root, "nomount", "0::/g\n", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n");
    fake_file(root, "/sys/fs/cgroup/g/memory.max", "100\n");
    ck_assert_uint_eq(limit_of(root), UINT64_MAX);
    fake_root(root, sizeof root, "garbage", "0:\n::\nx\n4:memory:relative\n",
              "\n- cgroup2\n1 2 3 4\n" V1_MOUNT);
    ck_assert_uint_eq(limit_of(root), UINT64_MAX);
    snprintf(root, sizeof root, "%s/absent", cg_test_tmpdir());
    ck_assert_uint_eq(limit_of(root), UINT64_MAX);

    /* out of descriptors: no limit found, and said to be worth another try */
    fake_root(root, sizeof root, "fds", "0::/g\n", V2_MOUNT);
    fake_file(root, "/sys/fs/cgroup/g/memory.max", "100\n");
    struct rlimit saved, few;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
    few = saved;
    few.rlim_cur = 0; /* every open fails with EMFILE */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &few), 0);
    bool transient = false;
    const uint64_t starved = cg_cgroup_memory_limit(root, &transient);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    ck_assert_uint_eq(starved, UINT64_MAX);
    ck_assert(transient);
    ck_assert_uint_eq(limit_of(root), 100u);
    /* the process's measurement: a starved one goes by physical memory and
     * is taken again at the next call; a complete one is kept */
    cg_set_memory_limit_root(root);
    bool by_cgroup;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &few), 0);
    const size_t starved_limit = cg_memory_limit(&by_cgroup);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    ck_assert(!by_cgroup && starved_limit > 100);
    ck_assert_uint_eq(cg_memory_limit(&by_cgroup), 100u);
    ck_assert(by_cgroup);
    fake_file(root, "/sys/fs/cgroup/g/memory.max", "200\n");
    ck_assert_uint_eq(cg_memory_limit(&by_cgroup), 100u);
    cg_set_memory_limit_root("");

    /* the limit in use is never above the machine's memory */
    const size_t limit = cg_memory_limit(&by_cgroup);
    const uint64_t physical = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    ck_assert_uint_le(limit, physical > SIZE_MAX ? SIZE_MAX : physical); /* i386: SIZE_MAX */
    ck_assert_uint_le(limit, limit_of(""));
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, version_matches_header);
    tcase_add_test(tc, strerror_names_every_status);
    tcase_add_test(tc, fail_sets_handle_and_thread_message);
    tcase_add_test(tc, long_messages_keep_their_cause);
    tcase_add_test(tc, struct_size_accepts_zero_tail_only);
    tcase_add_test(tc, rng_is_deterministic_and_uniform);
    tcase_add_test(tc, crc32_known_vectors);
    tcase_add_test(tc, bytes_round_trip_little_endian);
    tcase_add_test(tc, writer_reports_allocation_failure);
    tcase_add_test(tc, utf8_decode_accepts_valid_rejects_invalid);
    tcase_add_test(tc, atomic_write_replaces_and_cleans_up);
    tcase_add_test(tc, read_file_refuses_fifo_and_foreign_head);
    tcase_add_test(tc, float_arrays_cost_memory_when_used);
    tcase_add_test(tc, atomic_write_to_full_disk_leaves_old_file);
    tcase_add_test(tc, cgroup_memory_limit_from_fake_trees);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(core_suite)
