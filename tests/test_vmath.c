/* test_vmath.c - the vectorisable e^x and ln x (vmath.h) against libm in
 * double over their whole ranges, e^x's exact 0 below -87 where asked for,
 * and the lane-wise row maximum (dense.c) against a plain scan. */
#include "test_common.h"
#include "internal.h"
#include "layers.h"
#include "vmath.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* |got - want| in units of the float spacing at want. */
static double ulps(float got, double want)
{
    int e;
    frexp(want, &e);
    const double spacing = ldexp(1.0, (e < -125 ? -125 : e) - 24);
    return fabs((double)got - want) / spacing;
}

static float from_bits(uint32_t b)
{
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}

START_TEST(exp_within_one_and_a_half_ulps)
{
    double worst = 0.0;
    float worst_x = 0.0f;
    /* Every 1009th float of [-87, 87], both signs. */
    const uint32_t top = 0x42ae0000u; /* 87.0f */
    for (uint32_t b = 0; b <= top; b += 1009)
        for (int sign = 0; sign < 2; sign++) {
            const float x = from_bits(b | (sign ? 0x80000000u : 0u));
            const double u = ulps(cg_vexpf(x), exp((double)x));
            if (u > worst)
                worst = u, worst_x = x;
        }
    ck_assert_msg(worst <= 1.5, "e^%a off by %.2f ulps", (double)worst_x, worst);
    ck_assert(cg_vexpf(0.0f) == 1.0f);
    ck_assert(cg_vexpf(-0.0f) == 1.0f);
    /* Clamped at +-87: finite, normal, never 0. */
    ck_assert(cg_vexpf(-1000.0f) == cg_vexpf(-87.0f) && cg_vexpf(-87.0f) > 0.0f);
    ck_assert(cg_vexpf(-INFINITY) == cg_vexpf(-87.0f));
    ck_assert(cg_vexpf(INFINITY) == cg_vexpf(87.0f) && isfinite(cg_vexpf(87.0f)));
    ck_assert(isnan(cg_vexpf(NAN)));
}
END_TEST

START_TEST(exp_flush_is_zero_below_minus_87)
{
    ck_assert(cg_vexpf_flush(-87.0f) == cg_vexpf(-87.0f));
    ck_assert(cg_vexpf_flush(-3.5f) == cg_vexpf(-3.5f));
    ck_assert(cg_vexpf_flush(0.0f) == 1.0f);
    ck_assert(cg_vexpf_flush(nextafterf(-87.0f, -INFINITY)) == 0.0f);
    ck_assert(cg_vexpf_flush(-1e30f) == 0.0f);
    ck_assert(cg_vexpf_flush(-INFINITY) == 0.0f);
    ck_assert(isnan(cg_vexpf_flush(NAN)));
}
END_TEST

START_TEST(log_within_one_and_a_half_ulps)
{
    double worst = 0.0;
    float worst_x = 0.0f;
    /* Every 1009th positive normal float, and every float next to 1 (where
     * ln x is tiny and a naive x - 1 would lose its relative accuracy). */
    for (uint32_t b = 0x00800000u; b < 0x7f800000u; b += 1009) {
        const float x = from_bits(b);
        const double u = ulps(cg_vlogf(x), log((double)x));
        if (x != 1.0f && u > worst)
            worst = u, worst_x = x;
    }
    float x = 1.0f;
    for (int i = 0; i < 100000; i++) {
        x = nextafterf(x, 0.0f);
        const double u = ulps(cg_vlogf(x), log((double)x));
        if (u > worst)
            worst = u, worst_x = x;
    }
    x = 1.0f;
    for (int i = 0; i < 100000; i++) {
        x = nextafterf(x, 2.0f);
        const double u = ulps(cg_vlogf(x), log((double)x));
        if (u > worst)
            worst = u, worst_x = x;
    }
    ck_assert_msg(worst <= 1.5, "ln %a off by %.2f ulps", (double)worst_x, worst);
    ck_assert(cg_vlogf(1.0f) == 0.0f);
    ck_assert(fabs(cg_vlogf(FLT_MAX) - log((double)FLT_MAX)) < 1e-5);
}
END_TEST

static float naive_max(const float *x, size_t n)
{
    float m = x[0];
    for (size_t j = 1; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

START_TEST(row_max_matches_a_scan)
{
    cg_rng rng;
    cg_rng_seed(&rng, 7);
    float x[80];
    /* Every length across the 16-lane blocks and the tail, the maximum at
     * every position, all-negative rows and zeros of both signs. */
    for (size_t n = 1; n <= 80; n++)
        for (size_t at = 0; at < n; at++) {
            const float shift = (n + at) % 3 == 0 ? -100.0f : 0.0f;
            for (size_t j = 0; j < n; j++)
                x[j] = shift + 10.0f * (cg_rng_uniform(&rng) - 0.5f);
            x[at] = shift + 6.0f;
            ck_assert_msg(cg_row_max(x, n) == x[at], "n %zu, maximum at %zu", n, at);
            ck_assert(cg_row_max(x, n) == naive_max(x, n));
        }
    const float neg[3] = {-0.0f, -1.0f, -0.0f};
    ck_assert(cg_row_max(neg, 3) == 0.0f);
    const float mixed[20] = {-0.0f, 0.0f, -5.0f, -INFINITY, [19] = -1.0f};
    ck_assert(cg_row_max(mixed, 20) == 0.0f && !signbit(cg_row_max(mixed, 20)));
    const float inf[17] = {[16] = INFINITY};
    ck_assert(cg_row_max(inf, 17) == INFINITY);
    const float lows[18] = {-FLT_MAX, -FLT_MAX, [17] = -INFINITY};
    ck_assert(cg_row_max(lows, 2) == -FLT_MAX);
    ck_assert(cg_row_max(lows + 17, 1) == -INFINITY);
}
END_TEST

static Suite *vmath_suite(void)
{
    Suite *s = suite_create("vmath");
    TCase *tc = tcase_create("functions");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, exp_within_one_and_a_half_ulps);
    tcase_add_test(tc, exp_flush_is_zero_below_minus_87);
    tcase_add_test(tc, log_within_one_and_a_half_ulps);
    tcase_add_test(tc, row_max_matches_a_scan);
    suite_add_tcase(s, tc);
    return s;
}

CG_TEST_MAIN(vmath_suite)
