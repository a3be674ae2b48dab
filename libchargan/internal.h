/*
 * internal.h - what the library's compilation units share.  Never installed;
 * nothing here is exported (the build uses -fvisibility=hidden).
 *
 * Conventions: tensors are plain float arrays, row-major, with their
 * dimensions beside them.  Sequence activations are time-major: [T][B][D], so
 * one time step is a contiguous B x D matrix and all steps together are one
 * (T*B) x D matrix for the big GEMMs.
 */
#ifndef CHARGAN_INTERNAL_H
#define CHARGAN_INTERNAL_H

#include "chargan.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CG_PRINTF(a, b)
#endif

/* The most threads a trainer or a sampling call may be asked for (each uses
 * at most 64 of them). */
#define CG_MAX_THREADS_ASKED 256

/* ---------------------------------------------------------------- errors (error.c) */

/* A message longer than this keeps its start and its end (where the cause
 * is) around a "...", cut at UTF-8 character boundaries. */
#define CG_ERRMSG_MAX 1024

/* Every handle embeds one; the message of the handle's last failure. */
typedef struct cg_error {
    char msg[CG_ERRMSG_MAX];
} cg_error;

/* Records a failure: formats the message into err (if not NULL) and into the
 * calling thread's last-error buffer, and returns status so callers can write
 * `return cg_fail(&h->err, CHARGAN_E_INVALID, "...")`. */
chargan_status cg_fail(cg_error *err, chargan_status status, const char *fmt, ...) CG_PRINTF(3, 4);
chargan_status cg_vfail(cg_error *err, chargan_status status, const char *fmt, va_list ap);
/* A CHARGAN_E_IO failure at its origin, errnum (0 if none) being the errno
 * that chargan_last_errno() reports.  A failure of another status clears
 * that; one of CHARGAN_E_IO recorded with cg_fail() passes on a nested
 * call's, so the I/O failures start here, and wrap with cg_fail(). */
chargan_status cg_fail_io(cg_error *err, int errnum, const char *fmt, ...) CG_PRINTF(3, 4);
/* Copies a message recorded elsewhere (e.g. by a nested call) into err and the
 * thread's buffer, after the context fmt formats ("'%s': ", path): the two
 * elided together as one message. */
chargan_status cg_fail_from(cg_error *err, chargan_status status, const char *fmt, ...)
    CG_PRINTF(3, 4);
/* The calling thread's last message. */
const char *cg_thread_error(void);
/* Fills a caller's size-prefixed struct of dst_size bytes with our defaults
 * (our_size bytes, struct_size first), as many of them as it has room for;
 * CHARGAN_E_INVALID if dst is NULL, smaller than min_size (the struct's
 * first published version) or larger than CG_MAX_STRUCT_SIZE. */
chargan_status cg_init_struct(void *dst, size_t dst_size, const void *defaults, size_t min_size,
                              size_t our_size, const char *fn);
/* The largest struct_size taken: the structs are a few hundred bytes, so a
 * larger one is garbage (an uninitialised field), not a newer header, and is
 * refused before any byte past the caller's struct could be touched. */
#define CG_MAX_STRUCT_SIZE 4096

/* Checks an options struct's struct_size field.  It must be at least
 * min_size (the struct's first published version) and at most
 * CG_MAX_STRUCT_SIZE.  A larger size than ours comes from a newer header:
 * accepted only if the bytes we do not know are all zero, i.e. the caller
 * asks for nothing this library lacks. */
bool cg_struct_size_ok(const void *s, size_t given, size_t min_size, size_t our_size);

/* A _get_config: copies our struct (our_size bytes) into the caller's dst,
 * as much of it as dst->struct_size holds, keeping that struct_size; a newer
 * caller's fields past ours are left as they were.  CHARGAN_E_INVALID into
 * err for a struct_size below min_size or above CG_MAX_STRUCT_SIZE. */
chargan_status cg_get_struct(cg_error *err, void *dst, const void *ours, size_t our_size,
                             size_t min_size, const char *fn);

/* cg_struct_size_ok on s (a size-prefixed struct: struct_size first), or
 * CHARGAN_E_INVALID into err with one message for every such struct: fn,
 * the argument's name (what) and the _init macro that fills it (init). */
chargan_status cg_check_struct_size(cg_error *err, const void *s, size_t min_size,
                                    size_t our_size, const char *fn, const char *what,
                                    const char *init);

/* ---------------------------------------------------------------- memory (alloc.c) */

/* All allocations go through these so tests can inject failures. */
void *cg_malloc(size_t n);
void *cg_calloc(size_t count, size_t size);
void *cg_realloc(void *p, size_t n);
void cg_free(void *p);
/* size * count with overflow detection: false if it overflows. */
bool cg_mul_size(size_t a, size_t b, size_t *out);
/* 64-byte aligned float arrays (zeroed); free with cg_free_floats.  The
 * matrix form multiplies rows x cols itself, NULL if that overflows (with a
 * 32-bit size_t, T x B x V of a large vocabulary would). */
float *cg_alloc_floats(size_t n);
float *cg_alloc_float_matrix(size_t rows, size_t cols);
void cg_free_floats(float *p);
/* Test hook: the n-th allocation from now (0-based) and every later one fail;
 * negative disables.  Returns the number of allocations since the last call. */
long cg_alloc_fail_after(long n);
/* Test hook: the size in bytes of this thread's largest allocation since the
 * last call. */
size_t cg_alloc_largest(void);
/* Bytes this thread has asked the allocator for so far: the difference
 * across a call is what the call requested. */
uint64_t cg_alloc_requested(void);

/* ---------------------------------------------------------------- memory limit (memory_limit.c) */

/* The memory this process may use, in bytes: the machine's physical memory
 * (SIZE_MAX where unknown), or its control group's limit where smaller
 * (*by_cgroup set then), measured once per process; or what the test hook
 * cg_set_memory_limit() set for this thread (0: the real one). */
size_t cg_memory_limit(bool *by_cgroup);
void cg_set_memory_limit(size_t bytes);
/* Test hook: the tree cg_memory_limit() measures (ROOT prefixed to /proc and
 * /sys; "" the real one), measured again at its next call. */
void cg_set_memory_limit_root(const char *root);
/* CHARGAN_OK if bytes fit cg_memory_limit(); else CHARGAN_E_NOMEM with the
 * message "<fmt...> N GB, more than <the machine's memory or the control
 * group's limit> (M GB)". */
chargan_status cg_check_memory(cg_error *err, uint64_t bytes, const char *fmt, ...) CG_PRINTF(3, 4);
/* The cgroup (v1 or v2) memory limit of this process, UINT64_MAX where there
 * is none or it cannot be read; *transient is set where a read failed in a
 * way a later try could avoid (out of descriptors or memory).  ROOT is
 * prefixed to every path read ("" for the real /proc and /sys; the tests'
 * fake trees otherwise). */
uint64_t cg_cgroup_memory_limit(const char *root, bool *transient);
char *cg_strdup(const char *s);

/* ---------------------------------------------------------------- random numbers (rng.c) */

/* xoshiro256** (Blackman & Vigna), seeded through splitmix64.  One per handle. */
typedef struct cg_rng {
    uint64_t s[4];
} cg_rng;

void cg_rng_seed(cg_rng *rng, uint64_t seed);
uint64_t cg_rng_next(cg_rng *rng);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float cg_rng_uniform(cg_rng *rng);
/* Uniform in (0, 1): never 0, for logs. */
double cg_rng_uniform_open(cg_rng *rng);
/* Uniform in (0, 1) as a float: (k + 1/2) 2^-23 for k on 23 random bits,
 * exact, so [2^-24, 1 - 2^-24] (as float32 frameworks draw it). */
float cg_rng_uniform_openf(cg_rng *rng);
/* Uniform integer in [0, n), unbiased. */
uint64_t cg_rng_below(cg_rng *rng, uint64_t n);
/* Standard normal (Box-Muller, no cached second value so state is all in s). */
float cg_rng_normal(cg_rng *rng);
/* Independent stream number k derived from a seed (for per-thread / per-rank RNGs). */
void cg_rng_seed_stream(cg_rng *rng, uint64_t seed, uint64_t stream);
/* Whether a state (read from a file) can be one: all zero is xoshiro's fixed
 * point, every draw 0 for ever, and no seeding makes it. */
bool cg_rng_state_valid(const cg_rng *rng);

/* ---------------------------------------------------------------- checksums (crc32.c) */

uint32_t cg_crc32(uint32_t crc, const void *data, size_t len);

/* ---------------------------------------------------------------- little-endian bytes (bytes.c) */

/* A growing output buffer.  Any failure sticks in `failed`; check once at the end. */
typedef struct cg_writer {
    uint8_t *data;
    size_t size, cap;
    bool failed;
} cg_writer;

void cg_writer_init(cg_writer *w);
void cg_writer_free(cg_writer *w);
void cg_put_bytes(cg_writer *w, const void *p, size_t n);
void cg_put_u8(cg_writer *w, uint8_t v);
void cg_put_u32(cg_writer *w, uint32_t v);
void cg_put_u64(cg_writer *w, uint64_t v);
void cg_put_f32(cg_writer *w, float v);
void cg_put_f64(cg_writer *w, double v);
void cg_put_f32_array(cg_writer *w, const float *v, size_t n);
/* Overwrites 4 bytes at offset (for lengths and checksums written afterwards). */
void cg_patch_u32(cg_writer *w, size_t offset, uint32_t v);
void cg_patch_u64(cg_writer *w, size_t offset, uint64_t v);

/* A bounded reader: every get checks the bytes left and fails (returns false)
 * rather than reading past the end. */
typedef struct cg_reader {
    const uint8_t *data;
    size_t size, pos;
} cg_reader;

void cg_reader_init(cg_reader *r, const void *data, size_t size);
size_t cg_reader_left(const cg_reader *r);
bool cg_get_bytes(cg_reader *r, void *dst, size_t n);
bool cg_get_view(cg_reader *r, const uint8_t **p, size_t n);
bool cg_get_u8(cg_reader *r, uint8_t *v);
bool cg_get_u32(cg_reader *r, uint32_t *v);
bool cg_get_u64(cg_reader *r, uint64_t *v);
bool cg_get_f32(cg_reader *r, float *v);
bool cg_get_f64(cg_reader *r, double *v);
bool cg_get_f32_array(cg_reader *r, float *dst, size_t n);

/* ---------------------------------------------------------------- files (file.c) */

/* Writes size bytes to path atomically: PATH.tmp-XXXXXX, fsync, rename, fsync
 * of the directory.  On failure the old file is intact and no temporary is
 * left behind. */
chargan_status cg_write_file_atomic(cg_error *err, const char *path, const void *data, size_t size);
/* Reads a whole regular file of at most max_size bytes, and at most
 * cg_memory_limit() (CHARGAN_E_NOMEM), into a cg_malloc'd buffer.
 * check_head (NULL: none) judges its first CG_FILE_HEAD bytes (n: fewer if
 * the file is shorter) before the rest is read or any memory is taken: what
 * it returns other than CHARGAN_OK is the call's. */
enum { CG_FILE_HEAD = 24 }; /* a checkpoint's header */
typedef chargan_status (*cg_file_head_check)(cg_error *err, const char *path, const uint8_t *head,
                                             size_t n);
chargan_status cg_read_file(cg_error *err, const char *path, size_t max_size,
                            cg_file_head_check check_head, uint8_t **data, size_t *size);
/* Test hook: in this thread, the n-th system call of cg_write_file_atomic from
 * now (0-based: mkstemp, fchmod where a file is replaced, each write, fsync,
 * the directory's access check (Linux), close, the directory's open, rename,
 * the directory's fsync) and every later one fail with errno errnum;
 * negative n disables.  Returns the number of such calls since the last
 * call.  cg_io_fail_at: the n-th call alone. */
long cg_io_fail_after(long n, int errnum);
long cg_io_fail_at(long n, int errnum);

/* ---------------------------------------------------------------- UTF-8 (utf8.c) */

/* Decodes one code point at s[0..len).  Returns the number of bytes used (1-4)
 * or 0 if the bytes there are not valid UTF-8 (overlong, surrogate, > U+10FFFF,
 * truncated); then *bad_len is the length of the maximal invalid subsequence. */
size_t cg_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp, size_t *bad_len);
/* Encodes cp (must be valid) into out (4 bytes room); returns the byte count. */
size_t cg_utf8_encode(uint32_t cp, uint8_t *out);

/* ---------------------------------------------------------------- BLAS (blas.c) */

/* The only place that calls cblas_*.  Row-major; trans_a/trans_b are booleans. */
void cg_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);
/* Sets the BLAS library's thread count where it has a way to (OpenBLAS). */
void cg_blas_set_threads(int n);
/* Name of the BLAS in use, for reports. */
const char *cg_blas_name(void);

/* ---------------------------------------------------------------- math helpers */

/* For the hot elementwise loops (gate math, softmax, optimizer): GCC also
 * compiles the function for x86-64-v4 (AVX-512) and v3 (AVX2 + FMA) and picks
 * one at load time from what the CPU supports.  The baseline x86-64 build
 * would otherwise run them 4 lanes wide.  Each clone's rounding is fixed, so
 * results are deterministic on a given machine.  Not under ThreadSanitizer:
 * its instrumented ifunc resolvers run before its runtime and crash. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && \
    !defined(__SANITIZE_THREAD__)
#define CG_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CG_VECTOR_CLONES
#endif

#include <math.h>
static inline float cg_sigmoidf(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

#endif /* CHARGAN_INTERNAL_H */
