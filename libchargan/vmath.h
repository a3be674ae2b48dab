/* vmath.h - e^x and ln x in plain float arithmetic, for the loops that apply
 * them to whole rows (gate nonlinearities, softmax, Gumbel noise).  libm's
 * expf and log are opaque calls that keep such a loop scalar; these inline
 * functions have no branches and no calls, so the compiler vectorises the
 * loop (16 lanes in the x86-64-v4 clone of a CG_VECTOR_CLONES function).
 * Both are Cephes' single-precision routines: about 1 ulp, the same bits in
 * every clone (ISO C mode: no contraction into FMAs). */
#ifndef CHARGAN_VMATH_H
#define CHARGAN_VMATH_H

#include <stdint.h>
#include <string.h>

/* e^x: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, and
 * 2^n assembled in the exponent bits.  |x| is clamped to 87 so 2^n stays a
 * normal float: e^x is never 0 or infinite (callers that need an exact 0 for
 * very negative x test for it, as cg_vexpf_flush does).  NaN passes through
 * as NaN. */
static inline float cg_vexpf(float x)
{
    /* The clamp works on the bits: a float comparison may trap under the
     * default -ftrapping-math, and GCC then keeps the branch, which stops
     * the loop from vectorising.  Magnitudes order like their bit patterns;
     * anything above infinity's pattern is a NaN and is kept. */
    uint32_t xb;
    memcpy(&xb, &x, sizeof xb);
    const int32_t mag = (int32_t)(xb & 0x7fffffffu), lim = 0x42ae0000; /* 87.0f */
    int32_t cm = mag < lim ? mag : lim;
    cm = mag > 0x7f800000 ? mag : cm;
    xb = (xb & 0x80000000u) | (uint32_t)cm;
    memcpy(&x, &xb, sizeof x);
    /* Adding 1.5 * 2^23 rounds x log2(e) to an integer held in the low
     * mantissa bits (correct for |n| < 2^22; here |n| <= 127). */
    const float shifter = 12582912.0f;
    const float t = x * 1.44269504088896341f + shifter;
    const float n = t - shifter;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f; /* ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t tb, sb;
    memcpy(&tb, &t, sizeof tb);
    sb = (tb - 0x4B400000u + 127u) << 23; /* (n + 127) in the exponent field */
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    return p * scale;
}

/* e^x for x <= 0 that is exactly 0 below -87, where cg_vexpf stops at
 * e^-87 (libm's expf is subnormal or 0 there): for probabilities, where
 * "impossible" must stay impossible, as with a temperature near 0. */
static inline float cg_vexpf_flush(float x)
{
    /* x < -87 tested on the bits, as in cg_vexpf: negative floats order
     * like their patterns, -87's is 0xc2ae0000, -infinity's 0xff800000, and
     * the negative NaNs' lie above it (NaN still gives NaN). */
    uint32_t xb, eb;
    memcpy(&xb, &x, sizeof xb);
    const float e = cg_vexpf(x);
    memcpy(&eb, &e, sizeof eb);
    eb &= xb > 0xc2ae0000u && xb <= 0xff800000u ? 0u : 0xffffffffu;
    float out;
    memcpy(&out, &eb, sizeof out);
    return out;
}

/* ln x for a positive normal float x (the callers' arguments are: uniform
 * draws and their logarithms' magnitudes).  x = m 2^e with m in
 * [sqrt(1/2), sqrt(2)), a degree-9 polynomial in f = m - 1, which is exact
 * (Sterbenz), so ln x keeps its relative accuracy next to x = 1. */
static inline float cg_vlogf(float x)
{
    uint32_t xb;
    memcpy(&xb, &x, sizeof xb);
    /* Subtracting sqrt(1/2)'s pattern splits x at sqrt(1/2) instead of 1:
     * the exponent is what is left above the mantissa, and the mantissa is
     * put back into [sqrt(1/2), sqrt(2)). */
    const uint32_t off = 0x3f3504f3u; /* sqrt(1/2) */
    const uint32_t d = xb - off;
    const float e = (float)((int32_t)d >> 23);
    const uint32_t mb = (d & 0x007fffffu) + off;
    float m;
    memcpy(&m, &mb, sizeof m);
    const float f = m - 1.0f, z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y += e * -2.12194440e-4f; /* ln2 in two parts, as in cg_vexpf */
    y += z * -0.5f;
    return (f + y) + e * 0.693359375f;
}

#endif
