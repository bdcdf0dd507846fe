/*
 * fl_rng.h — deterministic pseudo-random numbers for initialisation, shuffling,
 * sampling and partitioning (xoshiro256**, seeded by splitmix64).
 *
 * Not for secrets: keys, nonces and masks come from libsodium. The same
 * (seed, stream) always gives the same sequence on every platform, which is
 * what makes experiments and partitions reproducible.
 */
#ifndef FL_RNG_H
#define FL_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct fl_rng {
    uint64_t s[4];
} fl_rng_t;

/* Seed from (seed, stream): distinct streams give independent sequences. */
void fl_rng_seed(fl_rng_t *rng, uint64_t seed, uint64_t stream);

uint64_t fl_rng_u64(fl_rng_t *rng);

/* Uniform integer in [0, n), unbiased; n must be > 0. */
uint64_t fl_rng_below(fl_rng_t *rng, uint64_t n);

/* Uniform double in [0, 1). */
double fl_rng_uniform(fl_rng_t *rng);

/* Standard normal N(0, 1). */
double fl_rng_normal(fl_rng_t *rng);

/* Gamma(shape, 1) for shape > 0 (Marsaglia-Tsang). */
double fl_rng_gamma(fl_rng_t *rng, double shape);

/* Fisher-Yates shuffle of n indices in place. */
void fl_rng_shuffle(fl_rng_t *rng, uint32_t *idx, size_t n);

#endif
