/* kernels.c - register-blocked small GEMMs for the LSTM's recurrent products
 * (see kernels.h for what they compute and in which order).
 *
 * A tile of MR rows x NV vectors of C stays in registers while k runs: per
 * k, NV vectors of one row of B are loaded once and one element of each of
 * the MR rows of A is broadcast against them.  B is read in place; a BLAS
 * packs it into panels on every call, which at 16 rows costs about as much
 * as the product.  Tiles go column block by column block, so the panel of B
 * that a block reads is still in cache for its other row tiles, and k is cut
 * into chunks of KC so that panel fits in L1 (C is stored and reloaded
 * between chunks, in float, so the chain of roundings is unchanged).  Row
 * and column tails use the same tile with fewer rows and a masked last
 * vector: every element is summed the same way. */
#include "kernels.h"

#include <math.h>
#include <pthread.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define CG_KERN_X86 1
#include <immintrin.h>
#define CG_ALWAYS_INLINE static inline __attribute__((always_inline))
#define CG_T512 __attribute__((target("avx512f,fma")))
#define CG_T256 __attribute__((target("avx2,fma")))
#else
#define CG_KERN_X86 0
#endif

/* k per pass over C: 256 rows of a 48-column panel are 48 KB.  Measured on
 * the 2-core AVX-512 machine: k = 1024 (the backward) runs ~10% faster with
 * chunks of 256 than in one pass; shorter k is unaffected. */
#define KC 256

typedef void (*gemm_fn)(int m, int n, int k, const float *a, size_t lda, const float *b,
                        size_t ldb, float *c, size_t ldc, bool accumulate);

/* ---------------------------------------------------------------- portable */

/* One rounding (fmaf) where the hardware has it, so the chain matches the
 * vector paths; otherwise a libm fmaf would be a slow call per element. */
#ifdef FP_FAST_FMAF
#define CG_MADD(x, y, z) fmaf((x), (y), (z))
#else
#define CG_MADD(x, y, z) ((x) * (y) + (z))
#endif

/* Four rows at a time so each row of B is loaded once per four; the j loops
 * vectorise (rows of C are distinct and do not overlap B). */
static void nn_portable(int m, int n, int k, const float *a, size_t lda, const float *b,
                        size_t ldb, float *c, size_t ldc, bool accumulate)
{
    const size_t nn = (size_t)n;
    int r = 0;
    for (; r + 4 <= m; r += 4) {
        float *restrict c0 = c + (size_t)r * ldc, *restrict c1 = c0 + ldc,
                        *restrict c2 = c1 + ldc, *restrict c3 = c2 + ldc;
        const float *a0 = a + (size_t)r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        if (!accumulate)
            for (size_t j = 0; j < nn; j++)
                c0[j] = c1[j] = c2[j] = c3[j] = 0.0f;
        for (int p = 0; p < k; p++) {
            const float *restrict bp = b + (size_t)p * ldb;
            const float x0 = a0[p], x1 = a1[p], x2 = a2[p], x3 = a3[p];
            for (size_t j = 0; j < nn; j++) {
                const float w = bp[j];
                c0[j] = CG_MADD(x0, w, c0[j]);
                c1[j] = CG_MADD(x1, w, c1[j]);
                c2[j] = CG_MADD(x2, w, c2[j]);
                c3[j] = CG_MADD(x3, w, c3[j]);
            }
        }
    }
    for (; r < m; r++) {
        float *restrict cr = c + (size_t)r * ldc;
        const float *ar = a + (size_t)r * lda;
        if (!accumulate)
            for (size_t j = 0; j < nn; j++)
                cr[j] = 0.0f;
        for (int p = 0; p < k; p++) {
            const float *restrict bp = b + (size_t)p * ldb;
            const float x = ar[p];
            for (size_t j = 0; j < nn; j++)
                cr[j] = CG_MADD(x, bp[j], cr[j]);
        }
    }
}

#if CG_KERN_X86
/* ---------------------------------------------------------------- AVX-512 */

/* 8 x 48 tile: 24 accumulators, 3 vectors of B and a broadcast of the 32
 * registers; 11 loads per 24 FMAs keep both FMA pipes busy from L1.  (8 x 32
 * and 6 x 64 were slower at k = 256 on the machine of issue 4, 16 x 16 and
 * 4 x 96 much slower.) */
#define MR512 8
#define NV512 3

/* MR, NV and masked are constants at every call: the loops unroll and the
 * tile lives in registers.  masked: the last vector has only the lanes of
 * tail, the others are neither read nor written. */
CG_ALWAYS_INLINE CG_T512 void tile512(const int MR, const int NV, const bool masked, __mmask16 tail,
                                      int k, const float *a, size_t lda, const float *b,
                                      size_t ldb, float *c, size_t ldc, bool accumulate)
{
    __m512 acc[MR512][NV512];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            acc[r][v] = accumulate ? _mm512_maskz_loadu_ps(masked && v == NV - 1 ? tail : 0xffff,
                                                           c + (size_t)r * ldc + 16 * v)
                                   : _mm512_setzero_ps();
    for (int p = 0; p < k; p++) {
        const float *bp = b + (size_t)p * ldb;
        __m512 w[NV512];
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            w[v] = masked && v == NV - 1 ? _mm512_maskz_loadu_ps(tail, bp + 16 * v)
                                         : _mm512_loadu_ps(bp + 16 * v);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const __m512 x = _mm512_set1_ps(a[(size_t)r * lda + (size_t)p]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_fmadd_ps(x, w[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            float *dst = c + (size_t)r * ldc + 16 * v;
            if (masked && v == NV - 1)
                _mm512_mask_storeu_ps(dst, tail, acc[r][v]);
            else
                _mm512_storeu_ps(dst, acc[r][v]);
        }
}

/* mr (1 .. MR512) rows of one column block. */
CG_ALWAYS_INLINE CG_T512 void rows512(int mr, const int NV, const bool masked, __mmask16 tail,
                                      int k, const float *a, size_t lda, const float *b,
                                      size_t ldb, float *c, size_t ldc, bool accumulate)
{
    switch (mr) {
    case 8: tile512(8, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    case 7: tile512(7, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    case 6: tile512(6, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    case 5: tile512(5, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    case 4: tile512(4, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    case 3: tile512(3, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    case 2: tile512(2, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    default: tile512(1, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    }
}

/* One row (sampling a single stream) is a vector-matrix product bound by
 * reading B, which at the LSTM's sizes comes from L3: B is streamed four
 * rows at a time, contiguously, with the row of C in L1 updated once per
 * four FMAs; each element's chain of FMAs over k is unchanged. */
CG_T512 static void row_avx512(int n, int k, const float *a, const float *b, size_t ldb, float *c,
                               bool accumulate)
{
    const int full = n / 16;
    const __mmask16 tail = (__mmask16)((1u << (n % 16)) - 1u);
    if (!accumulate) {
        for (int v = 0; v < full; v++)
            _mm512_storeu_ps(c + 16 * v, _mm512_setzero_ps());
        if (tail)
            _mm512_mask_storeu_ps(c + 16 * full, tail, _mm512_setzero_ps());
    }
    int p = 0;
    for (; p + 4 <= k; p += 4) {
        const __m512 x0 = _mm512_set1_ps(a[p]), x1 = _mm512_set1_ps(a[p + 1]),
                     x2 = _mm512_set1_ps(a[p + 2]), x3 = _mm512_set1_ps(a[p + 3]);
        const float *b0 = b + (size_t)p * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
        for (int v = 0; v < full; v++) {
            __m512 acc = _mm512_loadu_ps(c + 16 * v);
            acc = _mm512_fmadd_ps(x0, _mm512_loadu_ps(b0 + 16 * v), acc);
            acc = _mm512_fmadd_ps(x1, _mm512_loadu_ps(b1 + 16 * v), acc);
            acc = _mm512_fmadd_ps(x2, _mm512_loadu_ps(b2 + 16 * v), acc);
            acc = _mm512_fmadd_ps(x3, _mm512_loadu_ps(b3 + 16 * v), acc);
            _mm512_storeu_ps(c + 16 * v, acc);
        }
        if (tail) {
            const int o = 16 * full;
            __m512 acc = _mm512_maskz_loadu_ps(tail, c + o);
            acc = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(tail, b0 + o), acc);
            acc = _mm512_fmadd_ps(x1, _mm512_maskz_loadu_ps(tail, b1 + o), acc);
            acc = _mm512_fmadd_ps(x2, _mm512_maskz_loadu_ps(tail, b2 + o), acc);
            acc = _mm512_fmadd_ps(x3, _mm512_maskz_loadu_ps(tail, b3 + o), acc);
            _mm512_mask_storeu_ps(c + o, tail, acc);
        }
    }
    for (; p < k; p++) {
        const __m512 x = _mm512_set1_ps(a[p]);
        const float *bp = b + (size_t)p * ldb;
        for (int v = 0; v < full; v++)
            _mm512_storeu_ps(c + 16 * v, _mm512_fmadd_ps(x, _mm512_loadu_ps(bp + 16 * v),
                                                         _mm512_loadu_ps(c + 16 * v)));
        if (tail)
            _mm512_mask_storeu_ps(c + 16 * full, tail,
                                  _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(tail, bp + 16 * full),
                                                  _mm512_maskz_loadu_ps(tail, c + 16 * full)));
    }
}

CG_T512 static void nn_avx512(int m, int n, int k, const float *a, size_t lda, const float *b,
                              size_t ldb, float *c, size_t ldc, bool accumulate)
{
    if (m == 1) {
        row_avx512(n, k, a, b, ldb, c, accumulate);
        return;
    }
    int j = 0;
    for (; j + 16 * NV512 <= n; j += 16 * NV512)
        for (int r = 0; r < m; r += MR512)
            rows512(m - r < MR512 ? m - r : MR512, NV512, false, 0xffff, k, a + (size_t)r * lda,
                    lda, b + j, ldb, c + (size_t)r * ldc + j, ldc, accumulate);
    /* The last columns one vector at a time, the last one masked. */
    for (; j < n; j += 16) {
        const __mmask16 tail = (__mmask16)((1u << (n - j < 16 ? n - j : 16)) - 1u);
        for (int r = 0; r < m; r += MR512)
            rows512(m - r < MR512 ? m - r : MR512, 1, true, tail, k, a + (size_t)r * lda, lda,
                    b + j, ldb, c + (size_t)r * ldc + j, ldc, accumulate);
    }
}

/* ---------------------------------------------------------------- AVX2 */

/* 6 x 16 tile: 12 accumulators, 2 vectors of B and a broadcast of the 16
 * registers (the classic Haswell shape). */
#define MR256 6
#define NV256 2

/* maskload/maskstore lanes: the first w of 8. */
CG_T256 static inline __m256i lanes256(int w)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

CG_ALWAYS_INLINE CG_T256 void tile256(const int MR, const int NV, const bool masked, __m256i tail,
                                      int k, const float *a, size_t lda, const float *b,
                                      size_t ldb, float *c, size_t ldc, bool accumulate)
{
    __m256 acc[MR256][NV256];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            const float *src = c + (size_t)r * ldc + 8 * v;
            acc[r][v] = !accumulate             ? _mm256_setzero_ps()
                        : masked && v == NV - 1 ? _mm256_maskload_ps(src, tail)
                                                : _mm256_loadu_ps(src);
        }
    for (int p = 0; p < k; p++) {
        const float *bp = b + (size_t)p * ldb;
        __m256 w[NV256];
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            w[v] = masked && v == NV - 1 ? _mm256_maskload_ps(bp + 8 * v, tail)
                                         : _mm256_loadu_ps(bp + 8 * v);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const __m256 x = _mm256_broadcast_ss(a + (size_t)r * lda + (size_t)p);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm256_fmadd_ps(x, w[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            float *dst = c + (size_t)r * ldc + 8 * v;
            if (masked && v == NV - 1)
                _mm256_maskstore_ps(dst, tail, acc[r][v]);
            else
                _mm256_storeu_ps(dst, acc[r][v]);
        }
}

CG_ALWAYS_INLINE CG_T256 void rows256(int mr, const int NV, const bool masked, __m256i tail,
                                      int k, const float *a, size_t lda, const float *b,
                                      size_t ldb, float *c, size_t ldc, bool accumulate)
{
    switch (mr) {
    case 6: tile256(6, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    case 5: tile256(5, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    case 4: tile256(4, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    case 3: tile256(3, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    case 2: tile256(2, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    default: tile256(1, NV, masked, tail, k, a, lda, b, ldb, c, ldc, accumulate); break;
    }
}

/* row_avx512 in 8 lanes: one row streams B four rows at a time. */
CG_T256 static void row_avx2(int n, int k, const float *a, const float *b, size_t ldb, float *c,
                             bool accumulate)
{
    const int full = n / 8;
    const __m256i tail = lanes256(n % 8);
    const bool has_tail = n % 8 != 0;
    if (!accumulate) {
        for (int v = 0; v < full; v++)
            _mm256_storeu_ps(c + 8 * v, _mm256_setzero_ps());
        if (has_tail)
            _mm256_maskstore_ps(c + 8 * full, tail, _mm256_setzero_ps());
    }
    int p = 0;
    for (; p + 4 <= k; p += 4) {
        const __m256 x0 = _mm256_broadcast_ss(a + p), x1 = _mm256_broadcast_ss(a + p + 1),
                     x2 = _mm256_broadcast_ss(a + p + 2), x3 = _mm256_broadcast_ss(a + p + 3);
        const float *b0 = b + (size_t)p * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
        for (int v = 0; v < full; v++) {
            __m256 acc = _mm256_loadu_ps(c + 8 * v);
            acc = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b0 + 8 * v), acc);
            acc = _mm256_fmadd_ps(x1, _mm256_loadu_ps(b1 + 8 * v), acc);
            acc = _mm256_fmadd_ps(x2, _mm256_loadu_ps(b2 + 8 * v), acc);
            acc = _mm256_fmadd_ps(x3, _mm256_loadu_ps(b3 + 8 * v), acc);
            _mm256_storeu_ps(c + 8 * v, acc);
        }
        if (has_tail) {
            const int o = 8 * full;
            __m256 acc = _mm256_maskload_ps(c + o, tail);
            acc = _mm256_fmadd_ps(x0, _mm256_maskload_ps(b0 + o, tail), acc);
            acc = _mm256_fmadd_ps(x1, _mm256_maskload_ps(b1 + o, tail), acc);
            acc = _mm256_fmadd_ps(x2, _mm256_maskload_ps(b2 + o, tail), acc);
            acc = _mm256_fmadd_ps(x3, _mm256_maskload_ps(b3 + o, tail), acc);
            _mm256_maskstore_ps(c + o, tail, acc);
        }
    }
    for (; p < k; p++) {
        const __m256 x = _mm256_broadcast_ss(a + p);
        const float *bp = b + (size_t)p * ldb;
        for (int v = 0; v < full; v++)
            _mm256_storeu_ps(c + 8 * v, _mm256_fmadd_ps(x, _mm256_loadu_ps(bp + 8 * v),
                                                        _mm256_loadu_ps(c + 8 * v)));
        if (has_tail)
            _mm256_maskstore_ps(c + 8 * full, tail,
                                _mm256_fmadd_ps(x, _mm256_maskload_ps(bp + 8 * full, tail),
                                                _mm256_maskload_ps(c + 8 * full, tail)));
    }
}

/* The tiles over B's columns, 16 at a time and then 8 (the last masked).
 * Block jb (columns 16 jb .. 16 jb + 15) starts at b + jb * block_stride,
 * its rows ldb floats apart: read in place, block_stride is 16; from
 * cg_kpack's panels, it is a panel (k x 16) and ldb is 16.  The same tiles
 * in the same order either way, so the same sums. */
CG_T256 static void tiles_avx2(int m, int n, int k, const float *a, size_t lda, const float *b,
                               size_t ldb, size_t block_stride, float *c, size_t ldc,
                               bool accumulate)
{
    const __m256i all = lanes256(8);
    int j = 0;
    for (; j + 8 * NV256 <= n; j += 8 * NV256)
        for (int r = 0; r < m; r += MR256)
            rows256(m - r < MR256 ? m - r : MR256, NV256, false, all, k, a + (size_t)r * lda,
                    lda, b + (size_t)(j / 16) * block_stride, ldb, c + (size_t)r * ldc + j, ldc,
                    accumulate);
    for (; j < n; j += 8) {
        const __m256i tail = lanes256(n - j < 8 ? n - j : 8);
        const float *bj = b + (size_t)(j / 16) * block_stride + j % 16;
        for (int r = 0; r < m; r += MR256)
            rows256(m - r < MR256 ? m - r : MR256, 1, true, tail, k, a + (size_t)r * lda, lda,
                    bj, ldb, c + (size_t)r * ldc + j, ldc, accumulate);
    }
}

CG_T256 static void nn_avx2(int m, int n, int k, const float *a, size_t lda, const float *b,
                            size_t ldb, float *c, size_t ldc, bool accumulate)
{
    if (m == 1)
        row_avx2(n, k, a, b, ldb, c, accumulate);
    else
        tiles_avx2(m, n, k, a, lda, b, ldb, 16, c, ldc, accumulate);
}
#endif /* CG_KERN_X86 */

/* ---------------------------------------------------------------- dispatch */

static pthread_once_t choose_once = PTHREAD_ONCE_INIT;
static cg_kern_path detected = CG_KERN_PORTABLE; /* the best this CPU runs */
static cg_kern_path chosen = CG_KERN_PORTABLE;   /* the one in use: detected unless forced */

static void choose_path(void)
{
#if CG_KERN_X86
    /* libgcc's checks include the OS's support (XCR0) for the registers. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        detected = CG_KERN_AVX512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        detected = CG_KERN_AVX2;
#endif
    chosen = detected;
}

cg_kern_path cg_kern_active(void)
{
    pthread_once(&choose_once, choose_path);
    return chosen;
}

bool cg_kern_force_path(cg_kern_path path)
{
    if (path == CG_KERN_AUTO || !cg_kern_available(path))
        return false;
    chosen = path;
    return true;
}

bool cg_kern_available(cg_kern_path path)
{
    pthread_once(&choose_once, choose_path);
    switch (path) {
    case CG_KERN_AUTO:
    case CG_KERN_PORTABLE: return true;
    case CG_KERN_AVX2:
    case CG_KERN_AVX512: return detected >= path; /* AVX-512F CPUs have AVX2 and FMA */
    }
    return false;
}

const char *cg_kern_path_name(cg_kern_path path)
{
    switch (path) {
    case CG_KERN_AUTO: return "auto";
    case CG_KERN_PORTABLE: return "portable";
    case CG_KERN_AVX2: return "avx2";
    case CG_KERN_AVX512: return "avx512";
    }
    return "unknown";
}

bool cg_kgemm_nn_on(cg_kern_path path, int m, int n, int k, const float *a, int lda,
                    const float *b, int ldb, float *c, int ldc, bool accumulate)
{
    if (path == CG_KERN_AUTO)
        path = cg_kern_active();
    else if (!cg_kern_available(path))
        return false;
    gemm_fn fn = nn_portable;
#if CG_KERN_X86
    if (path == CG_KERN_AVX512)
        fn = nn_avx512;
    else if (path == CG_KERN_AVX2)
        fn = nn_avx2;
#endif
    if (m <= 0 || n <= 0)
        return true;
    if (k < 0)
        k = 0;
    /* One pass when k is 0, so C is zeroed (or left) as for any k. */
    for (int k0 = 0; k0 == 0 || k0 < k; k0 += KC)
        fn(m, n, k - k0 < KC ? k - k0 : KC, a + k0, (size_t)lda, b + (size_t)k0 * (size_t)ldb,
           (size_t)ldb, c, (size_t)ldc, accumulate || k0 > 0);
    return true;
}

void cg_kgemm_nn(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c,
                 int ldc, bool accumulate)
{
    /* Without a vector path the BLAS is the faster of the two (the portable
     * kernel reaches a third of OpenBLAS's speed at these shapes). */
    if (cg_kern_active() == CG_KERN_PORTABLE && m > 0 && n > 0) {
        cg_sgemm(false, false, m, n, k, 1.0f, a, lda, b, ldb, accumulate ? 1.0f : 0.0f, c, ldc);
        return;
    }
    cg_kgemm_nn_on(CG_KERN_AUTO, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

size_t cg_kpack_floats_on(cg_kern_path path, int k, int n)
{
    if (path == CG_KERN_AUTO)
        path = cg_kern_active();
    if (path != CG_KERN_AVX2 || !cg_kern_available(path) || k <= 0 || n <= 0)
        return 0;
    return (size_t)k * (((size_t)n + 15) / 16 * 16);
}

size_t cg_kpack_floats(int k, int n)
{
    return cg_kpack_floats_on(CG_KERN_AUTO, k, n);
}

void cg_kpack_on(cg_kern_path path, cg_kpacked *p, int k, int n, const float *b, int ldb,
                 float *buf)
{
    *p = (cg_kpacked){.b = b, .k = k, .n = n, .ldb = ldb};
    if (!buf || cg_kpack_floats_on(path, k, n) == 0)
        return;
    /* panel jb: k rows of 16, the columns past n zero */
    for (int j0 = 0; j0 < n; j0 += 16) {
        float *panel = buf + (size_t)(j0 / 16) * (size_t)k * 16;
        const int w = n - j0 < 16 ? n - j0 : 16;
        for (int r = 0; r < k; r++) {
            const float *src = b + (size_t)r * (size_t)ldb + j0;
            float *dst = panel + (size_t)r * 16;
            for (int x = 0; x < 16; x++)
                dst[x] = x < w ? src[x] : 0.0f;
        }
    }
    p->panels = buf;
}

void cg_kpack(cg_kpacked *p, int k, int n, const float *b, int ldb, float *buf)
{
    cg_kpack_on(CG_KERN_AUTO, p, k, n, b, ldb, buf);
}

void cg_kgemm_nn_packed(int m, const float *a, int lda, const cg_kpacked *p, float *c, int ldc,
                        bool accumulate)
{
#if CG_KERN_X86
    /* One row reads B in place (row_avx2): a panel's two vectors per k give
     * its chains of FMAs too little to overlap. */
    if (p->panels && m > 1) { /* panels exist only for k > 0 and n > 0 (cg_kpack) */
        const int k = p->k;
        const size_t stride = (size_t)k * 16;
        for (int k0 = 0; k0 < k; k0 += KC)
            tiles_avx2(m, p->n, k - k0 < KC ? k - k0 : KC, a + k0, (size_t)lda,
                       p->panels + (size_t)k0 * 16, 16, stride, c, (size_t)ldc,
                       accumulate || k0 > 0);
        return;
    }
#endif
    cg_kgemm_nn(m, p->n, p->k, a, lda, p->b, p->ldb, c, ldc, accumulate);
}

#if CG_KERN_X86
/* dst's 16 x 16 tile = src's transposed, in registers: pairs of rows
 * interleaved at 1, 2, 4 and 8 floats (unpack, then two rounds of 128-bit
 * lane shuffles).  For the LSTM's 256 x 1024 w_hh on the 2-core AVX-512
 * machine, about 40 us against the scalar loop's 230 (release builds): that
 * loop reads a column of 16 lines per stored line. */
CG_T512 static void tile16_avx512(const float *src, size_t ls, float *dst, size_t ld)
{
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(src + (size_t)i * ls);
    for (int i = 0; i < 16; i += 2) { /* t[i], t[i+1]: rows i and i+1 interleaved */
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* pairs of rows 4 apart, as doubles */
        const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]),
                      c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 4; i++) { /* 128-bit lanes: even and odd of groups 4 apart */
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
    }
    for (int j = 0; j < 16; j++)
        _mm512_storeu_ps(dst + (size_t)j * ld, r[j]);
}

/* The same for an 8 x 8 tile in AVX registers: rows interleaved at 1 and 2
 * floats, then the 128-bit halves exchanged.  The AVX2 path's 256 x 1024
 * transpose: about 50 us on the same machine. */
CG_T256 static void tile8_avx2(const float *src, size_t ls, float *dst, size_t ld)
{
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(src + (size_t)i * ls);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int j = 0; j < 4; j++) {
        _mm256_storeu_ps(dst + (size_t)j * ld, _mm256_permute2f128_ps(r[j], r[j + 4], 0x20));
        _mm256_storeu_ps(dst + (size_t)(j + 4) * ld, _mm256_permute2f128_ps(r[j], r[j + 4], 0x31));
    }
}
#endif

/* Tiles of 16 x 16: a row of the tile's source and of its destination are
 * each one 64-byte line.  Whole tiles in registers on the vector paths; the
 * edges, and the portable path, element by element. */
void cg_ktranspose(int rows, int cols, const float *src, int lds, float *dst, int ldd)
{
    const size_t ls = (size_t)lds, ld = (size_t)ldd;
#if CG_KERN_X86
    const cg_kern_path path = cg_kern_active();
#endif
    for (int i0 = 0; i0 < rows; i0 += 16)
        for (int j0 = 0; j0 < cols; j0 += 16) {
            const int ie = rows - i0 < 16 ? rows : i0 + 16, je = cols - j0 < 16 ? cols : j0 + 16;
#if CG_KERN_X86
            if (path >= CG_KERN_AVX2 && ie - i0 == 16 && je - j0 == 16) {
                const float *s0 = src + (size_t)i0 * ls + (size_t)j0;
                float *d0 = dst + (size_t)j0 * ld + (size_t)i0;
                if (path == CG_KERN_AVX512) {
                    tile16_avx512(s0, ls, d0, ld);
                } else { /* four 8 x 8 quarters, each to its mirror */
                    tile8_avx2(s0, ls, d0, ld);
                    tile8_avx2(s0 + 8, ls, d0 + 8 * ld, ld);
                    tile8_avx2(s0 + 8 * ls, ls, d0 + 8, ld);
                    tile8_avx2(s0 + 8 * ls + 8, ls, d0 + 8 * ld + 8, ld);
                }
                continue;
            }
#endif
            for (int j = j0; j < je; j++)
                for (int i = i0; i < ie; i++)
                    dst[(size_t)j * ld + (size_t)i] = src[(size_t)i * ls + (size_t)j];
        }
}
