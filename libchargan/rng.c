/* rng.c - xoshiro256** seeded by splitmix64: small, fast, documented, and
 * its whole state is four words that checkpoints can store. */
#include "internal.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void cg_rng_seed(cg_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

void cg_rng_seed_stream(cg_rng *rng, uint64_t seed, uint64_t stream)
{
    /* Mix the stream number through splitmix64 first so streams 0, 1, 2...
     * of one seed land far apart in seed space. */
    uint64_t x = stream;
    cg_rng_seed(rng, seed ^ splitmix64(&x));
}

bool cg_rng_state_valid(const cg_rng *rng)
{
    return (rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) != 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t cg_rng_next(cg_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float cg_rng_uniform(cg_rng *rng)
{
    return (float)(cg_rng_next(rng) >> 40) * 0x1.0p-24f;
}

double cg_rng_uniform_open(cg_rng *rng)
{
    return ((double)(cg_rng_next(rng) >> 11) + 0.5) * 0x1.0p-53;
}

float cg_rng_uniform_openf(cg_rng *rng)
{
    return ((float)(cg_rng_next(rng) >> 41) + 0.5f) * 0x1.0p-23f;
}

uint64_t cg_rng_below(cg_rng *rng, uint64_t n)
{
    /* Rejection from the top bits: unbiased for every n. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = cg_rng_next(rng);
    while (x >= limit);
    return x % n;
}

float cg_rng_normal(cg_rng *rng)
{
    double u1 = cg_rng_uniform_open(rng);
    double u2 = cg_rng_uniform_open(rng);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
