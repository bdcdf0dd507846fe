/*
 * fl_shamir.c — Shamir secret sharing of 32-byte secrets over GF(2^31 + 11).
 * See fl_shamir.h for the encoding and the checks.
 */
#include "fl_shamir.h"

#include <assert.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct fl_shamir_rec {
    unsigned t;
    bool cached;    /* xs/lambda hold a valid x-set */
    uint32_t *xs;     /* t x values of the cached set, in call order */
    uint32_t *lambda; /* their Lagrange coefficients at 0 */
    size_t hits;
};

/* Width in bits of limb j: the top limb holds what is left of 256 bits. */
static unsigned
s_limb_bits(unsigned j)
{
    return j == 0 ? 256 - 31 * (FL_SHAMIR_LIMBS - 1) : 31;
}

/* z mod p. The divisor is a compile-time constant, so this compiles to
 * multiplications and shifts: no data-dependent timing from a div unit. */
static inline uint32_t
s_mod(uint64_t z)
{
    return (uint32_t)(z % FL_SHAMIR_P);
}

uint32_t
fl_shamir_mul(uint32_t a, uint32_t b)
{
    return s_mod((uint64_t)a * b);
}

/* a^(p-2): the exponent is public, so square-and-multiply over its bits
 * branches only on public data. */
uint32_t
fl_shamir_inv(uint32_t a)
{
    assert(a != 0 && a < FL_SHAMIR_P);
    uint32_t e = FL_SHAMIR_P - 2, r = 1, b = a;
    while (e) {
        if (e & 1)
            r = fl_shamir_mul(r, b);
        b = fl_shamir_mul(b, b);
        e >>= 1;
    }
    return r;
}

/* Bit i (0 = least significant) of the 256-bit big-endian integer s. */
static inline uint32_t
s_bit(const uint8_t *s, unsigned i)
{
    return (uint32_t)(s[31 - i / 8] >> (i % 8)) & 1u;
}

/* Bit by bit, so that the only branches are on public bit positions. */
void
fl_shamir_to_limbs(const uint8_t secret[FL_SHAMIR_SECRET_LEN], uint32_t limbs[FL_SHAMIR_LIMBS])
{
    for (unsigned j = 0; j < FL_SHAMIR_LIMBS; j++) {
        unsigned low = 31 * (FL_SHAMIR_LIMBS - 1 - j);
        uint32_t v = 0;
        for (unsigned k = 0; k < s_limb_bits(j); k++)
            v |= s_bit(secret, low + k) << k;
        limbs[j] = v;
    }
}

int
fl_shamir_from_limbs(const uint32_t limbs[FL_SHAMIR_LIMBS], uint8_t secret[FL_SHAMIR_SECRET_LEN])
{
    for (unsigned j = 0; j < FL_SHAMIR_LIMBS; j++)
        if (limbs[j] >> s_limb_bits(j))
            return fl_fail(FL_ECRYPTO,
                           "shamir: reconstructed limb %u does not fit %u bits: the shares are "
                           "inconsistent (wrong or forged)",
                           j, s_limb_bits(j));
    uint8_t out[FL_SHAMIR_SECRET_LEN] = {0};
    for (unsigned j = 0; j < FL_SHAMIR_LIMBS; j++) {
        unsigned low = 31 * (FL_SHAMIR_LIMBS - 1 - j);
        for (unsigned k = 0; k < s_limb_bits(j); k++) {
            unsigned i = low + k;
            out[31 - i / 8] |= (uint8_t)(((limbs[j] >> k) & 1u) << (i % 8));
        }
    }
    memcpy(secret, out, sizeof out);
    sodium_memzero(out, sizeof out);
    return 0;
}

static int
s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Check that xs[0..n-1] are distinct, non-zero and in the field. */
static int
s_check_xs(const uint32_t *xs, size_t n, int code)
{
    for (size_t i = 0; i < n; i++)
        if (xs[i] == 0 || xs[i] >= FL_SHAMIR_P)
            return fl_fail(code, "shamir: x coordinate %u (share %zu) is %s", xs[i], i,
                           xs[i] == 0 ? "zero" : "outside the field");
    uint32_t *sorted = fl_xmalloc(n * sizeof *sorted);
    memcpy(sorted, xs, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, s_cmp_u32);
    int rc = 0;
    for (size_t i = 1; i < n; i++)
        if (sorted[i] == sorted[i - 1]) {
            rc = fl_fail(code, "shamir: x coordinate %u appears more than once", sorted[i]);
            break;
        }
    free(sorted);
    return rc;
}

/* Uniform coefficients by rejection: a 32-bit word is kept when < p (about
 * half of them). Words come from randombytes in batches. */
typedef struct {
    uint32_t buf[128];
    size_t used;
} s_coef_rng_t;

static uint32_t
s_random_coef(void *ctx, unsigned limb, unsigned degree)
{
    (void)limb;
    (void)degree;
    s_coef_rng_t *r = ctx;
    for (;;) {
        if (r->used == sizeof r->buf / sizeof r->buf[0]) {
            randombytes_buf(r->buf, sizeof r->buf);
            r->used = 0;
        }
        uint32_t w = r->buf[r->used++];
        if (w < FL_SHAMIR_P)
            return w;
    }
}

int
fl_shamir_split_with(const uint8_t secret[FL_SHAMIR_SECRET_LEN], unsigned t, unsigned n,
                     const uint32_t *xs, fl_shamir_coef_fn coef, void *ctx, uint8_t *shares)
{
    if (n > FL_SHAMIR_MAX_SHARES || t < 2 || t > n)
        return fl_fail(FL_EINVAL, "shamir: threshold %u with %u shares (need 2 <= t <= n <= %u)",
                       t, n, FL_SHAMIR_MAX_SHARES);
    int rc = s_check_xs(xs, n, FL_EINVAL);
    if (rc < 0)
        return rc;
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");

    /* a[j * (t-1) + d-1] = a_{j,d}: together with the shares they determine
     * the secret, so they live in guarded memory and are wiped. */
    size_t ncoef = (size_t)FL_SHAMIR_LIMBS * (t - 1);
    uint32_t *a = sodium_malloc(ncoef * sizeof *a);
    if (!a)
        return fl_fail(FL_ENOMEM, "shamir: cannot allocate guarded memory for %zu coefficients",
                       ncoef);
    for (unsigned j = 0; j < FL_SHAMIR_LIMBS; j++)
        for (unsigned d = 1; d < t; d++) {
            uint32_t c = coef(ctx, j, d);
            assert(c < FL_SHAMIR_P);
            a[(size_t)j * (t - 1) + d - 1] = c;
        }

    uint32_t limbs[FL_SHAMIR_LIMBS];
    fl_shamir_to_limbs(secret, limbs);
    for (unsigned i = 0; i < n; i++) {
        uint64_t x = xs[i];
        for (unsigned j = 0; j < FL_SHAMIR_LIMBS; j++) {
            /* Horner: f(x) = (...(a_{t-1} x + a_{t-2}) x + ... + a_1) x + limb. */
            const uint32_t *aj = a + (size_t)j * (t - 1);
            uint64_t v = aj[t - 2];
            for (unsigned d = t - 2; d >= 1; d--)
                v = s_mod(v * x + aj[d - 1]);
            v = s_mod(v * x + limbs[j]);
            fl_store_be32(shares + (size_t)i * FL_SHAMIR_SHARE_LEN + 4 * j, (uint32_t)v);
        }
    }
    sodium_memzero(limbs, sizeof limbs);
    sodium_free(a); /* wipes */
    return 0;
}

int
fl_shamir_split(const uint8_t secret[FL_SHAMIR_SECRET_LEN], unsigned t, unsigned n,
                const uint32_t *xs, uint8_t *shares)
{
    s_coef_rng_t rng = {.used = sizeof rng.buf / sizeof rng.buf[0]};
    int rc = fl_shamir_split_with(secret, t, n, xs, s_random_coef, &rng, shares);
    sodium_memzero(&rng, sizeof rng);
    return rc;
}

fl_shamir_rec_t *
fl_shamir_rec_new(unsigned t)
{
    if (t < 2 || t > FL_SHAMIR_MAX_SHARES) {
        fl_fail(FL_EINVAL, "shamir: threshold %u outside 2..%u", t, FL_SHAMIR_MAX_SHARES);
        return NULL;
    }
    fl_shamir_rec_t *self = fl_xcalloc(1, sizeof *self);
    self->t = t;
    self->xs = fl_xmalloc(t * sizeof *self->xs);
    self->lambda = fl_xmalloc(t * sizeof *self->lambda);
    return self;
}

void
fl_shamir_rec_destroy(fl_shamir_rec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_shamir_rec_t *self = *self_p;
    free(self->xs);
    free(self->lambda);
    free(self);
    *self_p = NULL;
}

size_t
fl_shamir_rec_cache_hits(const fl_shamir_rec_t *self)
{
    return self->hits;
}

/* lambda_i = prod_{j != i} x_j / (x_j - x_i), the Lagrange basis at 0. The
 * x are distinct and non-zero (checked), so every denominator is invertible. */
static void
s_lagrange(unsigned t, const uint32_t *xs, uint32_t *lambda)
{
    for (unsigned i = 0; i < t; i++) {
        uint32_t num = 1, den = 1;
        for (unsigned j = 0; j < t; j++) {
            if (j == i)
                continue;
            num = fl_shamir_mul(num, xs[j]);
            den = fl_shamir_mul(den, (uint32_t)(((uint64_t)xs[j] + FL_SHAMIR_P - xs[i]) %
                                                FL_SHAMIR_P));
        }
        lambda[i] = fl_shamir_mul(num, fl_shamir_inv(den));
    }
}

int
fl_shamir_rec_run(fl_shamir_rec_t *self, size_t count, const uint32_t *xs, const uint8_t *shares,
                  uint8_t secret[FL_SHAMIR_SECRET_LEN])
{
    unsigned t = self->t;
    if (count > FL_SHAMIR_MAX_SHARES)
        return fl_fail(FL_EINVAL, "shamir: %zu shares exceed the cap %u", count,
                       FL_SHAMIR_MAX_SHARES);
    if (count < t)
        return fl_fail(FL_ERANGE, "shamir: %zu shares are fewer than the threshold %u", count, t);
    int rc = s_check_xs(xs, count, FL_EFORMAT);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < count; i++)
        for (unsigned j = 0; j < FL_SHAMIR_LIMBS; j++) {
            uint32_t y = fl_load_be32(shares + i * FL_SHAMIR_SHARE_LEN + 4 * j);
            if (y >= FL_SHAMIR_P)
                return fl_fail(FL_EFORMAT,
                               "shamir: share %zu (x=%u) limb %u = %u is not a field element", i,
                               xs[i], j, y);
        }

    if (self->cached && memcmp(self->xs, xs, t * sizeof *xs) == 0) {
        self->hits++;
    } else {
        s_lagrange(t, xs, self->lambda);
        memcpy(self->xs, xs, t * sizeof *xs);
        self->cached = true;
    }

    uint32_t limbs[FL_SHAMIR_LIMBS];
    for (unsigned j = 0; j < FL_SHAMIR_LIMBS; j++) {
        uint64_t acc = 0;
        for (unsigned i = 0; i < t; i++) {
            uint32_t y = fl_load_be32(shares + (size_t)i * FL_SHAMIR_SHARE_LEN + 4 * j);
            acc = s_mod(acc + (uint64_t)self->lambda[i] * y);
        }
        limbs[j] = (uint32_t)acc;
    }
    rc = fl_shamir_from_limbs(limbs, secret);
    sodium_memzero(limbs, sizeof limbs);
    return rc;
}

int
fl_shamir_reconstruct(unsigned t, size_t count, const uint32_t *xs, const uint8_t *shares,
                      uint8_t secret[FL_SHAMIR_SECRET_LEN])
{
    fl_shamir_rec_t *rec = fl_shamir_rec_new(t);
    if (!rec)
        return FL_EINVAL;
    int rc = fl_shamir_rec_run(rec, count, xs, shares, secret);
    fl_shamir_rec_destroy(&rec);
    return rc;
}
