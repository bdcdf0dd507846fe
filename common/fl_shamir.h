/*
 * fl_shamir.h — t-of-n Shamir secret sharing of 32-byte secrets over the prime
 * field GF(p), p = 2^31 + 11 (FCP's field), as SECAGG.md §1.1 specifies.
 *
 * SecAgg shares two 32-byte secrets per client (the X25519 mask key s_sk and
 * the self-mask seed b) with its neighbours; the server reconstructs b of each
 * survivor and s_sk of each dropped client from at least t shares.
 *
 * Encoding. The secret is read as a 256-bit big-endian integer and cut into 9
 * limbs of 31 bits, most significant first: limb 0 holds the top 8 bits
 * (256 - 8*31), limbs 1..8 hold 31 bits each. Every limb is below 2^31 < p,
 * so it is a field element. Each limb j gets its own polynomial
 *     f_j(x) = limb_j + a_{j,1} x + ... + a_{j,t-1} x^{t-1}   (mod p)
 * with coefficients uniform in [0, p) (rejection sampling of 32-bit words
 * from randombytes). A share for x is the 9 values f_j(x) as big-endian u32,
 * 36 bytes. In the protocol x is 1 + the holder's position in the owner's
 * neighbour list (never 0: f(0) is the secret).
 *
 * Reconstruction is Lagrange interpolation at 0 over t shares. It refuses
 * duplicate, zero or out-of-field x, limb values >= p (a malformed share) and
 * fewer than t shares; a result whose limbs do not fit their bit widths
 * (limb 0 > 8 bits, others > 31 bits) proves the shares inconsistent and is
 * refused too (a random wrong result passes that check with probability
 * about 2^-31).
 *
 * Constant time. The splitting side handles the secret: limb extraction and
 * Horner evaluation run without secret-dependent branches or table lookups,
 * and the reduction mod p is a division by a compile-time constant, which the
 * compiler turns into multiplications. Reconstruction runs on the server over
 * values it is entitled to; it is not hardened beyond that.
 *
 * All functions are thread-safe; a fl_shamir_rec_t belongs to one thread.
 */
#ifndef FL_SHAMIR_H
#define FL_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

#define FL_SHAMIR_P 2147483659u /* 2^31 + 11, prime */
#define FL_SHAMIR_SECRET_LEN 32
#define FL_SHAMIR_LIMBS 9
#define FL_SHAMIR_SHARE_LEN 36 /* FL_SHAMIR_LIMBS big-endian u32 */
/* Cap on n and t. Far above any neighbourhood SecAgg+ builds (FCP's finder
 * stays below 12k for a million clients); keeps allocations bounded. */
#define FL_SHAMIR_MAX_SHARES 65536u

/*
 * Source of polynomial coefficients for fl_shamir_split_with(): return
 * a_{limb, degree} for limb 0..8 (most significant first) and degree
 * 1..t-1. The value must be < FL_SHAMIR_P. For tests (reproducible shares);
 * production code calls fl_shamir_split(). SECAGG.md's test coefficients
 * "a_{j,d} = 1000 j + d" mean exactly this indexing (j = limb, 0 = most
 * significant; d = degree >= 1; the constant term is the limb itself): that
 * reading reproduces its share vector (test_shamir.c).
 */
typedef uint32_t (*fl_shamir_coef_fn)(void *ctx, unsigned limb, unsigned degree);

/*
 * Split `secret` into n shares with threshold t (2 <= t <= n <=
 * FL_SHAMIR_MAX_SHARES) at the x coordinates xs[0..n-1], which must be
 * distinct, non-zero and < FL_SHAMIR_P. Share i (for xs[i]) is written to
 * shares + i * FL_SHAMIR_SHARE_LEN (caller's buffer of n * 36 bytes).
 * Coefficients come from randombytes and are wiped before return.
 * Returns 0, or FL_EINVAL (bad t, n or x, detail names it) with `shares`
 * untouched.
 */
int fl_shamir_split(const uint8_t secret[FL_SHAMIR_SECRET_LEN], unsigned t, unsigned n,
                    const uint32_t *xs, uint8_t *shares) FL_MUST_CHECK;

/* As fl_shamir_split(), with coefficients from `coef` (see fl_shamir_coef_fn).
 * For tests. */
int fl_shamir_split_with(const uint8_t secret[FL_SHAMIR_SECRET_LEN], unsigned t, unsigned n,
                         const uint32_t *xs, fl_shamir_coef_fn coef, void *ctx,
                         uint8_t *shares) FL_MUST_CHECK;

/*
 * Reconstruct a secret from `count` shares (xs[i], shares + 36 i) with
 * threshold t. All `count` shares are checked for form; the first t are
 * interpolated. Writes the secret only on success. Returns 0, or:
 *   FL_EINVAL  t out of range, count > FL_SHAMIR_MAX_SHARES;
 *   FL_ERANGE  count < t (too few shares: the protocol aborts);
 *   FL_EFORMAT an x is 0, >= p or repeated, or a limb value is >= p;
 *   FL_ECRYPTO the interpolated limbs do not fit their widths: the shares
 *              do not belong to one sharing (wrong or forged shares).
 */
int fl_shamir_reconstruct(unsigned t, size_t count, const uint32_t *xs, const uint8_t *shares,
                          uint8_t secret[FL_SHAMIR_SECRET_LEN]) FL_MUST_CHECK;

/*
 * A reconstructor that caches the Lagrange coefficients of the last x-set it
 * interpolated (FCP does the same): the server reconstructs many secrets
 * whose holders sit at the same neighbour positions, so most calls skip the
 * O(t^2) coefficient computation and cost 9 t multiplications.
 */
typedef struct fl_shamir_rec fl_shamir_rec_t;

/* A reconstructor for threshold t (2 .. FL_SHAMIR_MAX_SHARES). NULL with a
 * detail (FL_EINVAL) when t is out of range. Caller owns the result. */
fl_shamir_rec_t *fl_shamir_rec_new(unsigned t);

/* Free and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_shamir_rec_destroy(fl_shamir_rec_t **self_p);

/* As fl_shamir_reconstruct() with self's threshold, reusing the cached
 * coefficients when the first t x values equal the last call's (in order). */
int fl_shamir_rec_run(fl_shamir_rec_t *self, size_t count, const uint32_t *xs,
                      const uint8_t *shares, uint8_t secret[FL_SHAMIR_SECRET_LEN]) FL_MUST_CHECK;

/* How many calls on self reused cached coefficients (for tests and stats). */
size_t fl_shamir_rec_cache_hits(const fl_shamir_rec_t *self);

/* Field helpers, exposed for tests: a*b mod p and a^-1 mod p (a != 0 mod p;
 * Fermat, constant time). Arguments must be < FL_SHAMIR_P. */
uint32_t fl_shamir_mul(uint32_t a, uint32_t b);
uint32_t fl_shamir_inv(uint32_t a);

/* The 9 limbs of a secret (most significant first), and back. Exposed for
 * tests. fl_shamir_from_limbs returns FL_ECRYPTO if a limb exceeds its width. */
void fl_shamir_to_limbs(const uint8_t secret[FL_SHAMIR_SECRET_LEN],
                        uint32_t limbs[FL_SHAMIR_LIMBS]);
int fl_shamir_from_limbs(const uint32_t limbs[FL_SHAMIR_LIMBS],
                         uint8_t secret[FL_SHAMIR_SECRET_LEN]) FL_MUST_CHECK;

#endif
