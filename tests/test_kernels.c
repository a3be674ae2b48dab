/* test_kernels.c - the small-GEMM kernel of kernels.c on every path this
 * CPU runs (portable, AVX2, AVX-512, and the automatic choice): against a
 * double-precision reference within a rounding-error bound, and bitwise
 * against a scalar model of the order kernels.h promises (one multiply-add
 * chain per element over k in order, started from C or 0).  Shapes cover
 * every row count of 1 to 33, column tails of every width, depths across
 * the kernel's k chunks and the LSTM's own shapes, with padded strides whose
 * padding must stay untouched.  Also: the accumulate / overwrite contract,
 * empty products, path selection (also from several threads at once) and
 * the transpose. */
#include "test_common.h"
#include "kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static const cg_kern_path all_paths[] = {CG_KERN_PORTABLE, CG_KERN_AVX2, CG_KERN_AVX512,
                                         CG_KERN_AUTO};
#define N_PATHS (sizeof all_paths / sizeof all_paths[0])

/* Written around and between the rows of C; must come back bit for bit. */
#define SENTINEL 12345.678f
static const float SENTINEL_VALUE = SENTINEL;

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

static void fill_random(cg_rng *rng, float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = 2.0f * cg_rng_uniform(rng) - 1.0f;
}

static int rand_in(cg_rng *rng, int lo, int hi)
{
    return lo + (int)cg_rng_below(rng, (uint64_t)(hi - lo + 1));
}

/* The portable path's multiply-add, the same expression as CG_MADD (this
 * file is built with the same flags): an fmaf where the compiler has a fast
 * one, else a product and a sum, each rounded to float where floats are
 * evaluated as floats, or evaluated wider and rounded once (x87). */
static float madd_portable(float x, float y, float z)
{
#ifdef FP_FAST_FMAF
    return fmaf(x, y, z);
#else
    return x * y + z;
#endif
}

typedef struct problem {
    int m, n, k, lda, ldb, ldc;
    bool accumulate;
    float *a, *b, *c0; /* c0: C before the call, m + 1 rows of ldc (the last is all sentinel) */
    float *fma_chain, *portable_chain; /* the scalar models, m x ldc */
    double *ref, *bound;               /* double-precision result and error bound, m x n */
} problem;

static void problem_init(problem *p, cg_rng *rng, int m, int n, int k, bool accumulate)
{
    p->m = m;
    p->n = n;
    p->k = k;
    p->accumulate = accumulate;
    p->lda = k + rand_in(rng, 0, 3);
    p->ldb = n + rand_in(rng, 0, 3);
    p->ldc = n + rand_in(rng, 0, 3);
    const size_t sa = (size_t)m * p->lda, sb = (size_t)k * p->ldb, sc = (size_t)(m + 1) * p->ldc;
    p->a = falloc(sa);
    p->b = falloc(sb);
    p->c0 = falloc(sc);
    fill_random(rng, p->a, sa);
    fill_random(rng, p->b, sb);
    for (size_t i = 0; i < sc; i++)
        p->c0[i] = SENTINEL;
    /* Overwrite must not read C: start from NaN there. */
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++)
            p->c0[(size_t)r * p->ldc + j] = accumulate ? 2.0f * cg_rng_uniform(rng) - 1.0f : NAN;

    p->fma_chain = falloc(sc);
    p->portable_chain = falloc(sc);
    memcpy(p->fma_chain, p->c0, sc * sizeof(float));
    memcpy(p->portable_chain, p->c0, sc * sizeof(float));
    p->ref = calloc((size_t)m * n + 1, sizeof(double));
    p->bound = calloc((size_t)m * n + 1, sizeof(double));
    ck_assert(p->ref && p->bound);
    /* Recursive summation of k terms onto c0 commits at most 2k roundings
     * (k with fused multiply-adds): |error| <= (2k + 1) u (|c0| + sum |a b|). */
    const double u = ldexp(1.0, -24);
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            const size_t ic = (size_t)r * p->ldc + j;
            const float start = accumulate ? p->c0[ic] : 0.0f;
            float f = start, q = start;
            double s = start, mag = fabs((double)start);
            for (int t = 0; t < k; t++) {
                const float x = p->a[(size_t)r * p->lda + t], w = p->b[(size_t)t * p->ldb + j];
                f = fmaf(x, w, f);
                q = madd_portable(x, w, q);
                s += (double)x * w;
                mag += fabs((double)x * w);
            }
            p->fma_chain[ic] = f;
            p->portable_chain[ic] = q;
            p->ref[(size_t)r * n + j] = s;
            p->bound[(size_t)r * n + j] = (2.0 * k + 1.0) * u * mag;
        }
}

static void problem_free(problem *p)
{
    free(p->a);
    free(p->b);
    free(p->c0);
    free(p->fma_chain);
    free(p->portable_chain);
    free(p->ref);
    free(p->bound);
}

/* Runs p on path (if available) and checks everything about its result. */
static void check_path(const problem *p, cg_kern_path path)
{
    const size_t sc = (size_t)(p->m + 1) * p->ldc;
    float *c = falloc(sc);
    memcpy(c, p->c0, sc * sizeof(float));
    const bool ran = cg_kgemm_nn_on(path, p->m, p->n, p->k, p->a, p->lda, p->b, p->ldb, c, p->ldc,
                                    p->accumulate);
    ck_assert(ran == cg_kern_available(path));
    if (!ran) {
        ck_assert(memcmp(c, p->c0, sc * sizeof(float)) == 0);
        free(c);
        return;
    }
    const cg_kern_path real = path == CG_KERN_AUTO ? cg_kern_active() : path;
    const float *model = real == CG_KERN_PORTABLE ? p->portable_chain : p->fma_chain;
    /* Check's assertions report each pass to the parent process: find the
     * first bad element in plain C, then assert once. */
    int bad_r = -1, bad_j = -1;
    const char *why = "";
    for (int r = 0; r <= p->m && bad_r < 0; r++)
        for (int j = 0; j < p->ldc; j++) {
            const size_t ic = (size_t)r * p->ldc + j;
            if (r == p->m || j >= p->n) {
                if (memcmp(&c[ic], &SENTINEL_VALUE, sizeof(float)) != 0)
                    why = "padding written";
            } else if (!(fabs(c[ic] - p->ref[(size_t)r * p->n + j]) <=
                         p->bound[(size_t)r * p->n + j])) {
                why = "beyond the rounding bound of the double reference";
            } else if (memcmp(&c[ic], &model[ic], sizeof(float)) != 0) {
                why = "not the bits of the scalar chain";
            }
            if (*why) {
                bad_r = r;
                bad_j = j;
                break;
            }
        }
    if (bad_r >= 0) {
        const size_t ic = (size_t)bad_r * p->ldc + bad_j;
        const bool inside = bad_r < p->m && bad_j < p->n;
        ck_abort_msg("%s m=%d n=%d k=%d acc=%d: C[%d][%d] = %a (%.9g) %s: reference %.12g, "
                     "bound %.3g, chain %a",
                     cg_kern_path_name(path), p->m, p->n, p->k, p->accumulate, bad_r, bad_j, c[ic],
                     c[ic], why, inside ? p->ref[(size_t)bad_r * p->n + bad_j] : 0.0,
                     inside ? p->bound[(size_t)bad_r * p->n + bad_j] : 0.0, model[ic]);
    }
    /* The AVX2 path packs B for products that reuse it: from the packed copy
     * the same bits, padding untouched. */
    if (path == CG_KERN_AVX2) {
        const size_t np = cg_kpack_floats_on(path, p->k, p->n);
        ck_assert(p->k == 0 || np >= (size_t)p->k * (size_t)p->n);
        float *panels = np ? falloc(np) : NULL, *cp = falloc(sc);
        memcpy(cp, p->c0, sc * sizeof(float));
        cg_kpacked packed;
        cg_kpack_on(path, &packed, p->k, p->n, p->b, p->ldb, panels);
        ck_assert(packed.panels == panels);
        cg_kgemm_nn_packed(p->m, p->a, p->lda, &packed, cp, p->ldc, p->accumulate);
        ck_assert_msg(memcmp(cp, c, sc * sizeof(float)) == 0, "packed m=%d n=%d k=%d acc=%d: not "
                      "the bits of the product read in place", p->m, p->n, p->k, p->accumulate);
        free(panels);
        free(cp);
    }
    free(c);
}

static void check_shape(cg_rng *rng, int m, int n, int k, bool accumulate)
{
    problem p;
    problem_init(&p, rng, m, n, k, accumulate);
    for (size_t i = 0; i < N_PATHS; i++)
        check_path(&p, all_paths[i]);
    problem_free(&p);
}

/* ---------------------------------------------------------------- products */

/* Every row count from 1 to 33 (tiles of 8 and 6 rows and their tails),
 * each with a column count and depth drawn from lists of tails. */
START_TEST(every_row_count)
{
    static const int ns[] = {16, 17, 48, 53, 64, 1, 8, 15, 31, 33, 47, 49, 96, 100, 7, 1040};
    static const int ks[] = {1, 37, 300, 2, 16, 255, 256, 257, 5};
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    for (int m = 1; m <= 33; m++) {
        const int n = ns[m % (int)(sizeof ns / sizeof ns[0])];
        const int k = ks[m % (int)(sizeof ks / sizeof ks[0])];
        check_shape(&rng, m, n, k, _i == 1);
    }
}
END_TEST

/* One row (sampling one stream) has its own kernels: column tails and
 * depths around their four-deep unrolling. */
START_TEST(one_row)
{
    static const int ns[] = {1, 7, 8, 9, 15, 16, 17, 33, 48, 53, 256, 1024, 1031};
    static const int ks[] = {0, 1, 3, 4, 5, 7, 8, 255, 256, 257, 300};
    cg_rng rng;
    cg_rng_seed(&rng, 5);
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
            check_shape(&rng, 1, ns[i], ks[j], _i == 1);
}
END_TEST

/* Every column count from 1 to 100 (blocks of 48 and 16, vectors of 16 and
 * 8, masked tails), then around the LSTM's widths. */
START_TEST(every_column_tail)
{
    cg_rng rng;
    cg_rng_seed(&rng, 2);
    for (int n = 1; n <= 100; n++)
        check_shape(&rng, 9, n, 13, _i == 1);
    static const int wide[] = {127, 128, 129, 255, 256, 257, 511, 513, 1023, 1024, 1025, 1040};
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
        check_shape(&rng, 3, wide[i], 20, _i == 1);
}
END_TEST

/* Depths from 0 across the 256-deep chunks the kernel splits k into: C is
 * stored and reloaded between chunks without changing a bit. */
START_TEST(depths_across_chunks)
{
    static const int ks[] = {0, 1, 2, 3, 8, 15, 16, 17, 100, 255, 256, 257, 300, 511, 512, 513, 1024, 1030};
    cg_rng rng;
    cg_rng_seed(&rng, 3);
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        check_shape(&rng, 10, 50, ks[i], _i == 1);
}
END_TEST

/* The products the LSTM makes: forward z += h w_hh (B x 4H x H) and
 * backward dh = dz w_hh^T (B x H x 4H), H = 128 and 256. */
START_TEST(lstm_shapes)
{
    cg_rng rng;
    cg_rng_seed(&rng, 4);
    check_shape(&rng, 16, 1024, 256, true);
    check_shape(&rng, 32, 512, 128, true);
    check_shape(&rng, 64, 512, 128, true);
    check_shape(&rng, 16, 256, 1024, false);
    check_shape(&rng, 32, 128, 512, false);
}
END_TEST

/* A row's result does not depend on the rows beside it or their number. */
START_TEST(rows_are_independent)
{
    const int m = 33, n = 100, k = 70;
    cg_rng rng;
    cg_rng_seed(&rng, 5);
    float *a = falloc((size_t)m * k), *b = falloc((size_t)k * n), *c0 = falloc((size_t)m * n),
          *all = falloc((size_t)m * n), *part = falloc((size_t)m * n);
    fill_random(&rng, a, (size_t)m * k);
    fill_random(&rng, b, (size_t)k * n);
    fill_random(&rng, c0, (size_t)m * n);
    for (size_t i = 0; i < N_PATHS; i++) {
        if (!cg_kern_available(all_paths[i]))
            continue;
        memcpy(all, c0, (size_t)m * n * sizeof(float));
        memcpy(part, c0, (size_t)m * n * sizeof(float));
        ck_assert(cg_kgemm_nn_on(all_paths[i], m, n, k, a, k, b, n, all, n, true));
        /* Groups of 1, 2, 3, ... rows. */
        for (int r = 0, g = 1; r < m; r += g, g++) {
            const int rows = m - r < g ? m - r : g;
            ck_assert(cg_kgemm_nn_on(all_paths[i], rows, n, k, a + (size_t)r * k, k, b, n,
                                     part + (size_t)r * n, n, true));
        }
        ck_assert_msg(memcmp(all, part, (size_t)m * n * sizeof(float)) == 0, "%s",
                      cg_kern_path_name(all_paths[i]));
    }
    free(a);
    free(b);
    free(c0);
    free(all);
    free(part);
}
END_TEST

/* NaN and infinity pass through as in the scalar sums. */
START_TEST(nan_and_inf_propagate)
{
    const int m = 9, n = 40, k = 5;
    float a[9 * 5], b[5 * 40], c[9 * 40];
    for (int i = 0; i < m * k; i++)
        a[i] = 0.5f;
    for (int i = 0; i < k * n; i++)
        b[i] = (i % n) == 33 ? INFINITY : 1.0f;
    a[7 * k + 2] = NAN;
    for (size_t i = 0; i < N_PATHS; i++) {
        if (!cg_kern_available(all_paths[i]))
            continue;
        ck_assert(cg_kgemm_nn_on(all_paths[i], m, n, k, a, k, b, n, c, n, false));
        int wrong = 0;
        for (int r = 0; r < m; r++)
            for (int j = 0; j < n; j++) {
                const float v = c[r * n + j];
                wrong += r == 7 ? !isnan(v) : j == 33 ? !(isinf(v) && v > 0) : v != 2.5f;
            }
        ck_assert_msg(wrong == 0, "%s: %d wrong", cg_kern_path_name(all_paths[i]), wrong);
    }
}
END_TEST

/* ---------------------------------------------------------------- edge cases */

START_TEST(empty_products)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 1, 1, 1, 1, 1};
    for (size_t i = 0; i < N_PATHS; i++) {
        const cg_kern_path path = all_paths[i];
        if (!cg_kern_available(path))
            continue;
        float c[6] = {7, 7, 7, 7, 7, 7};
        /* k == 0: C + nothing, or 0. */
        ck_assert(cg_kgemm_nn_on(path, 2, 3, 0, a, 1, b, 3, c, 3, true));
        for (int j = 0; j < 6; j++)
            ck_assert(c[j] == 7.0f);
        ck_assert(cg_kgemm_nn_on(path, 2, 2, 0, a, 1, b, 3, c, 3, false));
        ck_assert(c[0] == 0.0f && c[1] == 0.0f && c[2] == 7.0f && c[3] == 0.0f && c[4] == 0.0f &&
                  c[5] == 7.0f);
        /* No rows or no columns: nothing is touched (a negative k counts as 0). */
        ck_assert(cg_kgemm_nn_on(path, 0, 3, 2, a, 2, b, 3, c, 3, false));
        ck_assert(cg_kgemm_nn_on(path, 2, 0, 2, a, 2, b, 3, c, 3, false));
        ck_assert(c[2] == 7.0f && c[5] == 7.0f && c[0] == 0.0f);
        c[0] = 9.0f;
        ck_assert(cg_kgemm_nn_on(path, 1, 1, -5, a, 2, b, 3, c, 3, false));
        ck_assert(c[0] == 0.0f);
    }
    /* The automatic entry point behaves the same. */
    float c[2] = {NAN, NAN};
    cg_kgemm_nn(1, 2, 3, a, 3, b, 2, c, 2, false);
    ck_assert(c[0] == 6.0f && c[1] == 6.0f);
    cg_kgemm_nn(1, 2, 3, a, 3, b, 2, c, 2, true);
    ck_assert(c[0] == 12.0f && c[1] == 12.0f);
}
END_TEST

/* A path this build or CPU cannot run is refused and C is left alone. */
START_TEST(unavailable_path_is_refused)
{
    const cg_kern_path bogus = (cg_kern_path)99;
    float a[1] = {1}, b[1] = {2}, c[1] = {3};
    ck_assert(!cg_kern_available(bogus));
    ck_assert(!cg_kgemm_nn_on(bogus, 1, 1, 1, a, 1, b, 1, c, 1, false));
    ck_assert(c[0] == 3.0f);
    ck_assert_str_eq(cg_kern_path_name(bogus), "unknown");
    for (size_t i = 0; i < N_PATHS; i++)
        if (!cg_kern_available(all_paths[i])) {
            ck_assert(!cg_kgemm_nn_on(all_paths[i], 1, 1, 1, a, 1, b, 1, c, 1, false));
            ck_assert(c[0] == 3.0f);
        }
}
END_TEST

/* ---------------------------------------------------------------- selection */

static void *ask_active(void *out)
{
    *(cg_kern_path *)out = cg_kern_active();
    return NULL;
}

START_TEST(path_selection)
{
    ck_assert_str_eq(cg_kern_path_name(CG_KERN_AUTO), "auto");
    ck_assert_str_eq(cg_kern_path_name(CG_KERN_PORTABLE), "portable");
    ck_assert_str_eq(cg_kern_path_name(CG_KERN_AVX2), "avx2");
    ck_assert_str_eq(cg_kern_path_name(CG_KERN_AVX512), "avx512");
    ck_assert(cg_kern_available(CG_KERN_AUTO));
    ck_assert(cg_kern_available(CG_KERN_PORTABLE));
    /* The first call may be this one, from several threads at once. */
    pthread_t th[4];
    cg_kern_path got[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, ask_active, &got[i]), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    const cg_kern_path active = cg_kern_active();
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(got[i], active);
    ck_assert(cg_kern_available(active));
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const cg_kern_path expect = __builtin_cpu_supports("avx512f") ? CG_KERN_AVX512
                                : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                                    ? CG_KERN_AVX2
                                    : CG_KERN_PORTABLE;
    ck_assert_int_eq(active, expect);
    ck_assert(cg_kern_available(CG_KERN_AVX2) == (expect >= CG_KERN_AVX2));
    ck_assert(cg_kern_available(CG_KERN_AVX512) == (expect == CG_KERN_AVX512));
#else
    ck_assert_int_eq(active, CG_KERN_PORTABLE);
    ck_assert(!cg_kern_available(CG_KERN_AVX2) && !cg_kern_available(CG_KERN_AVX512));
#endif
}
END_TEST

/* ---------------------------------------------------------------- transpose */

/* On each path the CPU has (_i): whole 16 x 16 tiles, edges and strides. */
START_TEST(transpose_is_exact)
{
    const cg_kern_path path = (cg_kern_path)_i, before = cg_kern_active();
    if (!cg_kern_available(path))
        return;
    ck_assert(path == before || cg_kern_force_path(path));
    static const int shapes[][2] = {{1, 1}, {3, 5}, {16, 16}, {17, 33}, {40, 7}, {48, 32},
                                    {256, 1024}};
    cg_rng rng;
    cg_rng_seed(&rng, 6);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], cols = shapes[s][1];
        const int lds = cols + rand_in(&rng, 0, 3), ldd = rows + rand_in(&rng, 0, 3);
        float *src = falloc((size_t)rows * lds), *dst = falloc((size_t)(cols + 1) * ldd);
        fill_random(&rng, src, (size_t)rows * lds);
        for (size_t i = 0; i < (size_t)(cols + 1) * ldd; i++)
            dst[i] = SENTINEL;
        cg_ktranspose(rows, cols, src, lds, dst, ldd);
        size_t bad = 0; /* 1 + the index of the first wrong value */
        for (int j = 0; j <= cols && !bad; j++)
            for (int i = 0; i < ldd && !bad; i++) {
                const float v = dst[(size_t)j * ldd + i];
                if (j == cols || i >= rows ? v != SENTINEL_VALUE : v != src[(size_t)i * lds + j])
                    bad = 1 + (size_t)j * ldd + i;
            }
        ck_assert_msg(!bad, "%s, %d x %d: dst[%zu] wrong", cg_kern_path_name(path), rows, cols,
                      bad - 1);
        free(src);
        free(dst);
    }
    cg_kern_force_path(before);
}
END_TEST

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("products");
    /* Loops: 0 overwrites C, 1 accumulates onto it. */
    tcase_add_loop_test(tc, every_row_count, 0, 2);
    tcase_add_loop_test(tc, one_row, 0, 2);
    tcase_add_loop_test(tc, every_column_tail, 0, 2);
    tcase_add_loop_test(tc, depths_across_chunks, 0, 2);
    tcase_add_test(tc, lstm_shapes);
    tcase_add_test(tc, rows_are_independent);
    tcase_add_test(tc, nan_and_inf_propagate);
    suite_add_tcase(s, tc);
    tc = tcase_create("edges");
    tcase_add_test(tc, empty_products);
    tcase_add_test(tc, unavailable_path_is_refused);
    tcase_add_test(tc, path_selection);
    tcase_add_loop_test(tc, transpose_is_exact, CG_KERN_PORTABLE, CG_KERN_AVX512 + 1);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(kernels_suite)
