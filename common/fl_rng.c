/*
 * fl_rng.c — xoshiro256** (Blackman & Vigna) with splitmix64 seeding, plus the
 * distributions libcovey needs. See fl_rng.h.
 */
#include "fl_rng.h"

#include <assert.h>
#include <math.h>

static uint64_t
s_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t
s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void
fl_rng_seed(fl_rng_t *rng, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    for (int i = 0; i < 4; i++)
        rng->s[i] = s_splitmix(&x);
}

uint64_t
fl_rng_u64(fl_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

uint64_t
fl_rng_below(fl_rng_t *rng, uint64_t n)
{
    assert(n > 0);
    /* Lemire's nearly divisionless method. */
    __uint128_t m = (__uint128_t)fl_rng_u64(rng) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = -n % n;
        while (lo < t) {
            m = (__uint128_t)fl_rng_u64(rng) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double
fl_rng_uniform(fl_rng_t *rng)
{
    return (double)(fl_rng_u64(rng) >> 11) * 0x1.0p-53;
}

double
fl_rng_normal(fl_rng_t *rng)
{
    double u1, u2;
    do
        u1 = fl_rng_uniform(rng);
    while (u1 <= 0.0);
    u2 = fl_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double
fl_rng_gamma(fl_rng_t *rng, double shape)
{
    assert(shape > 0.0);
    if (shape < 1.0) {
        /* Boost: Gamma(a) = Gamma(a+1) * U^(1/a). */
        double u;
        do
            u = fl_rng_uniform(rng);
        while (u <= 0.0);
        return fl_rng_gamma(rng, shape + 1.0) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v, u;
        do {
            x = fl_rng_normal(rng);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        u = fl_rng_uniform(rng);
        if (u < 1.0 - 0.0331 * x * x * x * x)
            return d * v;
        if (u > 0.0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

void
fl_rng_shuffle(fl_rng_t *rng, uint32_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)fl_rng_below(rng, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}
