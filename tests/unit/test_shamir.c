/*
 * test_shamir.c — unit tests of fl_shamir: the SECAGG.md §1.1 test vector,
 * round trips over random thresholds and subsets, the field arithmetic, the
 * Lagrange cache, and every malformed-input case (duplicate / zero /
 * out-of-field x, too few shares, limb >= p, inconsistent shares).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_rng.h"
#include "fl_shamir.h"
#include "fl_util.h"

#define L FL_SHAMIR_SHARE_LEN

static void
s_hex(const char *hex, uint8_t *out, size_t len)
{
    assert_int_equal(strlen(hex), 2 * len);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* SECAGG.md test coefficients: a_{j,d} = 1000 j + d, j = limb index (0 =
 * most significant), d = degree 1..t-1. This reading reproduces the vector. */
static uint32_t
s_test_coef(void *ctx, unsigned limb, unsigned degree)
{
    (void)ctx;
    return 1000u * limb + degree;
}

/* Reproducible uniform coefficients from fl_rng. */
static uint32_t
s_rng_coef(void *ctx, unsigned limb, unsigned degree)
{
    (void)limb;
    (void)degree;
    return (uint32_t)fl_rng_below(ctx, FL_SHAMIR_P);
}

static void
test_vector(void **state)
{
    (void)state;
    uint8_t secret[32], got[32];
    for (unsigned i = 0; i < 32; i++)
        secret[i] = (uint8_t)i;
    uint32_t limbs[9];
    static const uint32_t want_limbs[9] = {0x0,        0x810182,   0x14181c2,
                                           0x1214161,  0x40d0e0f1, 0x889098,
                                           0x5054585c, 0x30323436, 0x1c1d1e1f};
    fl_shamir_to_limbs(secret, limbs);
    assert_memory_equal(limbs, want_limbs, sizeof limbs);

    uint32_t xs[5] = {1, 2, 3, 4, 5};
    uint8_t shares[5 * L], want[L];
    assert_int_equal(fl_shamir_split_with(secret, 3, 5, xs, s_test_coef, NULL, shares), 0);
    s_hex("000000030081095501419165012158d440d100340088b7ab5054873f30326ae91c1d5ca2", want, L);
    assert_memory_equal(shares, want, L);
    /* x = 2, 4, 5 computed independently (Python, exact integers). */
    s_hex("0000000a008118fc0141b0ac012187bb40d13ebb008905d25054e5063032d8501c1dd9a9", want, L);
    assert_memory_equal(shares + 1 * L, want, L);
    s_hex("0000002400814fc601421e2601222be540d21995008a175c50562d403034573a1c1f8f43", want, L);
    assert_memory_equal(shares + 3 * L, want, L);
    s_hex("00000037008176e901426c590122a12840d2b5e8008adabf505717b3303568bd1c20c7d6", want, L);
    assert_memory_equal(shares + 4 * L, want, L);

    /* Shares {2, 4, 5} reconstruct the secret, in any order. */
    uint32_t sx[3] = {2, 4, 5};
    uint8_t sub[3 * L];
    memcpy(sub + 0 * L, shares + 1 * L, L);
    memcpy(sub + 1 * L, shares + 3 * L, L);
    memcpy(sub + 2 * L, shares + 4 * L, L);
    assert_int_equal(fl_shamir_reconstruct(3, 3, sx, sub, got), 0);
    assert_memory_equal(got, secret, 32);
    uint32_t rx[3] = {5, 2, 4};
    uint8_t rev[3 * L];
    memcpy(rev + 0 * L, shares + 4 * L, L);
    memcpy(rev + 1 * L, shares + 1 * L, L);
    memcpy(rev + 2 * L, shares + 3 * L, L);
    memset(got, 0, sizeof got);
    assert_int_equal(fl_shamir_reconstruct(3, 3, rx, rev, got), 0);
    assert_memory_equal(got, secret, 32);
}

static void
test_limbs(void **state)
{
    (void)state;
    uint8_t ff[32], got[32];
    memset(ff, 0xff, sizeof ff);
    uint32_t limbs[9];
    fl_shamir_to_limbs(ff, limbs);
    assert_int_equal(limbs[0], 0xff);
    for (int j = 1; j < 9; j++)
        assert_int_equal(limbs[j], 0x7fffffff);
    assert_int_equal(fl_shamir_from_limbs(limbs, got), 0);
    assert_memory_equal(got, ff, 32);

    /* A top limb of 9 bits, or any limb of 32 bits, is not a secret. */
    memset(got, 0x5a, sizeof got);
    uint8_t keep[32];
    memcpy(keep, got, 32);
    limbs[0] = 0x100;
    assert_int_equal(fl_shamir_from_limbs(limbs, got), FL_ECRYPTO);
    assert_memory_equal(got, keep, 32); /* no partial output */
    limbs[0] = 0;
    limbs[5] = 0x80000000u;
    assert_int_equal(fl_shamir_from_limbs(limbs, got), FL_ECRYPTO);

    /* Single bits land where the big-endian reading says. */
    uint8_t one[32] = {0};
    one[31] = 1; /* bit 0 -> limb 8 bit 0 */
    fl_shamir_to_limbs(one, limbs);
    assert_int_equal(limbs[8], 1);
    memset(one, 0, 32);
    one[0] = 0x80; /* bit 255 -> limb 0 bit 7 */
    fl_shamir_to_limbs(one, limbs);
    assert_int_equal(limbs[0], 0x80);
    memset(one, 0, 32);
    one[28] = 0x80; /* bit 31 -> limb 7 bit 0 */
    fl_shamir_to_limbs(one, limbs);
    assert_int_equal(limbs[7], 1);
    assert_int_equal(limbs[8], 0);
}

static void
test_field(void **state)
{
    (void)state;
    const uint32_t p = FL_SHAMIR_P;
    assert_int_equal(fl_shamir_inv(1), 1);
    assert_int_equal(fl_shamir_inv(p - 1), p - 1); /* (-1)^-1 = -1 */
    assert_int_equal(fl_shamir_mul(p - 1, p - 1), 1);
    /* 2^31 = -11 mod p */
    assert_int_equal(fl_shamir_mul(1u << 16, 1u << 15), p - 11);
    fl_rng_t rng;
    fl_rng_seed(&rng, 7, 0);
    for (int i = 0; i < 1000; i++) {
        uint32_t a = 1 + (uint32_t)fl_rng_below(&rng, p - 1);
        assert_int_equal(fl_shamir_mul(a, fl_shamir_inv(a)), 1);
        uint32_t b = (uint32_t)fl_rng_below(&rng, p);
        assert_int_equal(fl_shamir_mul(a, b), (uint32_t)((uint64_t)a * b % p));
    }
}

/* Random secrets, thresholds and x-sets: every t-subset tried reconstructs,
 * every (t-1)-subset is refused as too few. */
static void
test_roundtrip(void **state)
{
    (void)state;
    fl_rng_t rng;
    fl_rng_seed(&rng, 42, 1);
    for (int iter = 0; iter < 60; iter++) {
        unsigned n = 2 + (unsigned)fl_rng_below(&rng, 40);
        unsigned t = 2 + (unsigned)fl_rng_below(&rng, n - 1);
        uint8_t secret[32], got[32];
        randombytes_buf(secret, sizeof secret);
        uint32_t *xs = malloc(n * sizeof *xs);
        uint32_t *perm = malloc(n * sizeof *perm);
        uint8_t *shares = malloc((size_t)n * L);
        uint8_t *sub = malloc((size_t)n * L);
        uint32_t *sx = malloc(n * sizeof *sx);
        /* x = 1 + position mostly; sometimes large field elements. */
        for (unsigned i = 0; i < n; i++)
            xs[i] = (iter % 3 == 0) ? FL_SHAMIR_P - 1 - i : 1 + i;
        assert_int_equal(fl_shamir_split(secret, t, n, xs, shares), 0);
        for (int sub_iter = 0; sub_iter < 4; sub_iter++) {
            for (unsigned i = 0; i < n; i++)
                perm[i] = i;
            fl_rng_shuffle(&rng, perm, n);
            for (unsigned i = 0; i < n; i++) {
                sx[i] = xs[perm[i]];
                memcpy(sub + (size_t)i * L, shares + (size_t)perm[i] * L, L);
            }
            memset(got, 0, sizeof got);
            assert_int_equal(fl_shamir_reconstruct(t, t, sx, sub, got), 0);
            assert_memory_equal(got, secret, 32);
            /* all n shares also work (the first t are used) */
            memset(got, 0, sizeof got);
            assert_int_equal(fl_shamir_reconstruct(t, n, sx, sub, got), 0);
            assert_memory_equal(got, secret, 32);
            assert_int_equal(fl_shamir_reconstruct(t, t - 1, sx, sub, got), FL_ERANGE);
        }
        free(xs);
        free(perm);
        free(shares);
        free(sub);
        free(sx);
    }
}

/* Coefficients are fresh for every sharing: two sharings of the same secret
 * give different shares, and a zero secret does not give zero shares. */
static void
test_shares_random(void **state)
{
    (void)state;
    uint8_t secret[32] = {0};
    uint32_t xs[3] = {1, 2, 3};
    uint8_t a[3 * L], b[3 * L];
    assert_int_equal(fl_shamir_split(secret, 3, 3, xs, a), 0);
    assert_int_equal(fl_shamir_split(secret, 3, 3, xs, b), 0);
    assert_memory_not_equal(a, b, 2 * L);
    /* An all-zero secret does not give zero shares. */
    uint8_t zero[L] = {0};
    assert_memory_not_equal(a, zero, L);
}

static void
test_split_errors(void **state)
{
    (void)state;
    uint8_t secret[32] = {1};
    uint8_t shares[4 * L];
    uint8_t keep[4 * L];
    memset(shares, 0xee, sizeof shares);
    memcpy(keep, shares, sizeof keep);
    uint32_t xs[4] = {1, 2, 3, 4};
    assert_int_equal(fl_shamir_split(secret, 1, 4, xs, shares), FL_EINVAL); /* t < 2 */
    assert_int_equal(fl_shamir_split(secret, 5, 4, xs, shares), FL_EINVAL); /* t > n */
    assert_int_equal(fl_shamir_split(secret, 2, FL_SHAMIR_MAX_SHARES + 1, xs, shares),
                     FL_EINVAL);
    uint32_t dup[4] = {1, 2, 2, 4};
    assert_int_equal(fl_shamir_split(secret, 2, 4, dup, shares), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "more than once"));
    uint32_t zero[4] = {1, 0, 3, 4};
    assert_int_equal(fl_shamir_split(secret, 2, 4, zero, shares), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "zero"));
    uint32_t big[4] = {1, 2, FL_SHAMIR_P, 4};
    assert_int_equal(fl_shamir_split(secret, 2, 4, big, shares), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "outside the field"));
    assert_memory_equal(shares, keep, sizeof keep);
}

static void
test_reconstruct_errors(void **state)
{
    (void)state;
    uint8_t secret[32], got[32], keep[32];
    for (int i = 0; i < 32; i++)
        secret[i] = (uint8_t)(0xa0 + i);
    fl_rng_t rng;
    fl_rng_seed(&rng, 9, 9);
    uint32_t xs[5] = {1, 2, 3, 4, 5};
    uint8_t shares[5 * L], bad[5 * L];
    assert_int_equal(fl_shamir_split_with(secret, 3, 5, xs, s_rng_coef, &rng, shares), 0);
    memset(got, 0x33, sizeof got);
    memcpy(keep, got, sizeof keep);

    /* too few */
    assert_int_equal(fl_shamir_reconstruct(3, 2, xs, shares, got), FL_ERANGE);
    assert_non_null(strstr(fl_errmsg(), "fewer than the threshold"));
    assert_int_equal(fl_shamir_reconstruct(3, 0, xs, shares, got), FL_ERANGE);
    /* bad threshold */
    assert_int_equal(fl_shamir_reconstruct(1, 5, xs, shares, got), FL_EINVAL);
    /* duplicate x: the duplicate may be beyond the first t, still refused */
    uint32_t dup[5] = {1, 2, 3, 4, 2};
    assert_int_equal(fl_shamir_reconstruct(3, 5, dup, shares, got), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "more than once"));
    uint32_t zero[3] = {0, 2, 3};
    assert_int_equal(fl_shamir_reconstruct(3, 3, zero, shares, got), FL_EFORMAT);
    uint32_t big[3] = {1, 0xffffffffu, 3};
    assert_int_equal(fl_shamir_reconstruct(3, 3, big, shares, got), FL_EFORMAT);
    /* limb >= p: a malformed share */
    memcpy(bad, shares, sizeof bad);
    memset(bad + 2 * L + 8, 0xff, 4);
    assert_int_equal(fl_shamir_reconstruct(3, 3, xs, bad, got), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "not a field element"));
    /* p itself, exactly */
    memcpy(bad, shares, sizeof bad);
    bad[L + 0] = 0x80, bad[L + 1] = 0x00, bad[L + 2] = 0x00, bad[L + 3] = 0x0b;
    assert_int_equal(fl_shamir_reconstruct(3, 3, xs, bad, got), FL_EFORMAT);
    /* a wrong (but well-formed) share: the result does not fit the limb
     * widths. Deterministic here (fixed coefficients): every tampering of
     * one share below is caught. */
    for (int which = 0; which < 3; which++)
        for (int limb = 0; limb < 9; limb++) {
            memcpy(bad, shares, sizeof bad);
            uint8_t *p = bad + which * L + 4 * limb + 3;
            *p = (uint8_t)(*p ^ 1);
            int rc = fl_shamir_reconstruct(3, 3, xs, bad, got);
            if (rc == 0) /* would be a 2^-31 coincidence; then it must differ */
                assert_memory_not_equal(got, secret, 32);
            else
                assert_int_equal(rc, FL_ECRYPTO);
        }
    /* shares of a different x-set labelling: swapping two x labels */
    uint32_t swapped[3] = {2, 1, 3};
    int rc = fl_shamir_reconstruct(3, 3, swapped, shares, got);
    assert_true(rc == FL_ECRYPTO || (rc == 0 && memcmp(got, secret, 32) != 0));
    memcpy(got, keep, 32);
    assert_int_equal(fl_shamir_reconstruct(3, 3, swapped, shares, got), rc);
    if (rc < 0)
        assert_memory_equal(got, keep, 32); /* no partial output */
    assert_int_equal(fl_shamir_rec_new(1) == NULL, 1);
}

/* The reconstructor reuses its coefficients for an identical first-t x-set
 * and recomputes them for a new one; the results stay right either way. */
static void
test_cache(void **state)
{
    (void)state;
    unsigned t = 4, n = 7;
    uint32_t xs[7] = {1, 2, 3, 4, 5, 6, 7};
    fl_shamir_rec_t *rec = fl_shamir_rec_new(t);
    assert_non_null(rec);
    uint8_t shares[7 * L], sub[4 * L], secret[32], got[32];
    uint32_t pick[2][4] = {{2, 3, 5, 7}, {1, 3, 5, 6}};
    for (int owner = 0; owner < 6; owner++) {
        randombytes_buf(secret, sizeof secret);
        assert_int_equal(fl_shamir_split(secret, t, n, xs, shares), 0);
        const uint32_t *px = pick[owner % 2 == 0 && owner < 4 ? 0 : 1];
        for (unsigned i = 0; i < t; i++)
            memcpy(sub + i * L, shares + (px[i] - 1) * L, L);
        assert_int_equal(fl_shamir_rec_run(rec, t, px, sub, got), 0);
        assert_memory_equal(got, secret, 32);
    }
    /* sets used: 0,1(new),0(new),1(new),1(hit),1(hit) */
    assert_int_equal(fl_shamir_rec_cache_hits(rec), 2);
    fl_shamir_rec_destroy(&rec);
    assert_null(rec);
    fl_shamir_rec_destroy(&rec);
    fl_shamir_rec_destroy(NULL);
}

/* A SecAgg+-sized sharing (k = 872 neighbours, t = 584): still quick. */
static void
test_large(void **state)
{
    (void)state;
    unsigned n = 873, t = 584;
    uint32_t *xs = malloc(n * sizeof *xs);
    uint8_t *shares = malloc((size_t)n * L);
    for (unsigned i = 0; i < n; i++)
        xs[i] = 1 + i;
    uint8_t secret[32], got[32];
    randombytes_buf(secret, sizeof secret);
    assert_int_equal(fl_shamir_split(secret, t, n, xs, shares), 0);
    /* use the last t shares */
    assert_int_equal(fl_shamir_reconstruct(t, t, xs + (n - t), shares + (size_t)(n - t) * L, got),
                     0);
    assert_memory_equal(got, secret, 32);
    free(xs);
    free(shares);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),        cmocka_unit_test(test_limbs),
        cmocka_unit_test(test_field),         cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_shares_random), cmocka_unit_test(test_split_errors),
        cmocka_unit_test(test_reconstruct_errors), cmocka_unit_test(test_cache),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
