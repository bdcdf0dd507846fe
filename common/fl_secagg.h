/*
 * fl_secagg.h — the per-client cryptography of SecAgg / SecAgg+ and the
 * server's unmasking arithmetic (SECAGG.md §1.1, §1.2, §1.4). No messages, no
 * protocol state machine: the daemons wire these into the phases.
 *
 * Crypto suite (libsodium):
 *   key pairs   X25519, two fresh pairs per client per round: c (encrypts
 *               shares) and s (pairwise masks).
 *   agreement   X25519(sk_u, pk_v), refused when the result is all zero
 *               (a low-order peer key).
 *   KDF         seed = BLAKE2b-256(key = X25519(sk_u, pk_v),
 *                       label || sid || min(pk_u, pk_v) || max(pk_u, pk_v))
 *               (min/max by memcmp), label "FLSA/v1/pairwise-mask" (with the
 *               s keys) or "FLSA/v1/share-enc" (with the c keys). Both ends
 *               get the same seed.
 *   self mask   BLAKE2b-256(key = b_u, "FLSA/v1/self-mask" || sid), b_u 32
 *               random bytes shared with Shamir.
 *   sid         BLAKE2b-256("FLSA/v1/sid" || round_nonce(32) || params).
 *   PRG         ChaCha20-IETF(key = seed, nonce = 0^12); word i is LE32 of
 *               keystream bytes 4i..4i+3, masked to `bits` bits. Any
 *               sub-range of words can be produced on its own (block
 *               counter i/16), so vectors are masked in chunks.
 *   envelope    XChaCha20-Poly1305-IETF, random 24-byte nonce,
 *               AD = sid || src || dst, plaintext src || dst || share(s_sk)
 *               || share(b) (8 + 8 + 36 + 36 = 88 bytes); wire form nonce ||
 *               ciphertext || tag = 128 bytes. src, dst are u64 big-endian.
 *
 * Masking, in Z_M with M = 2^bits (1 <= bits <= 32):
 *   client u:  y_u = q_u + PRG(b_u) + sum_{v in N(u) ∩ U2, v != u} sgn(u - v) PRG(s_uv)
 *              i.e. add the pairwise mask when u > v, subtract when u < v
 *              ("<" on round indices, as Bonawitz, Flower and FCP).
 *   server:    z = sum_{u in U3} y_u - sum_{u in U3} PRG(b_u)
 *                  - sum_{d in U2 \ U3} sum_{v in N(d) ∩ U3} sgn(v - d) PRG(s_vd)
 *              = sum_{u in U3} q_u   (exactly, mod M).
 * Both are a fl_sa_masks_t: a list of (seed, ±1) terms applied to a buffer
 * chunk by chunk, so neither side needs more than O(chunk) extra memory.
 *
 * Encoding (§1.2): clip to [-c, c], v = (x + c) T / (2c) in [0, T],
 * stochastic rounding (unbiased); the sum of n encodings decodes as
 * S (2c / T) - n c. The weighted variant puts w_q = round(min(w, W) / W T)
 * in element 0 and encodes x w_q / T; the decoded weighted mean divides by
 * sum w_q / T.
 *
 * Secrets (b_u, sk, seeds, shares) passed in are borrowed; this module keeps
 * its own copies only in sodium_malloc memory and wipes its temporaries.
 * Everything is thread-safe except that an object belongs to one thread.
 */
#ifndef FL_SECAGG_H
#define FL_SECAGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_shamir.h"
#include "fl_util.h"

#define FL_SA_KEY_LEN 32   /* X25519 public or secret key */
#define FL_SA_SEED_LEN 32  /* PRG seed, b_u, derived keys */
#define FL_SA_SID_LEN 32
#define FL_SA_NONCE_LEN 32 /* round nonce from the server */
#define FL_SA_SHARE_LEN FL_SHAMIR_SHARE_LEN                  /* 36 */
#define FL_SA_ENVELOPE_PLAIN_LEN (8 + 8 + 2 * FL_SA_SHARE_LEN) /* 88 */
#define FL_SA_ENVELOPE_LEN (24 + FL_SA_ENVELOPE_PLAIN_LEN + 16) /* 128 */
/* The ChaCha20-IETF block counter is 32 bits: 2^32 blocks of 16 words. */
#define FL_SA_PRG_MAX_WORDS (UINT64_C(1) << 36)

/* ---- key pairs and key derivation ---- */

typedef struct fl_sa_keypair fl_sa_keypair_t;

/* A fresh random X25519 key pair, the secret in guarded memory. NULL (with a
 * detail) only if guarded memory cannot be had. Caller owns the result. */
fl_sa_keypair_t *fl_sa_keypair_new(void);

/* The key pair of a known secret key (the server rebuilding a dropped
 * client's s key from its reconstructed secret): the public key is
 * recomputed, so the caller can compare it with the advertised one. Returns
 * 0 and *kp_p (caller owns it), or FL_ENOMEM / FL_ECRYPTO. */
int fl_sa_keypair_from_secret(const uint8_t sk[FL_SA_KEY_LEN],
                              fl_sa_keypair_t **kp_p) FL_MUST_CHECK;

/* Wipe, free and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_sa_keypair_destroy(fl_sa_keypair_t **self_p);

/* The public key (32 bytes) and the secret key (32 bytes, guarded memory, to
 * be Shamir-shared; never logged). Borrowed from self. */
const uint8_t *fl_sa_keypair_pk(const fl_sa_keypair_t *self);
const uint8_t *fl_sa_keypair_sk(const fl_sa_keypair_t *self);

typedef enum {
    FL_SA_LABEL_PAIRWISE_MASK = 0, /* "FLSA/v1/pairwise-mask", with the s keys */
    FL_SA_LABEL_SHARE_ENC = 1      /* "FLSA/v1/share-enc", with the c keys */
} fl_sa_label_t;

/*
 * The seed shared by self and the owner of peer_pk (see the KDF above),
 * written to seed[32]. Returns 0, or FL_ECRYPTO when X25519 yields zero (a
 * low-order peer key: the peer is misbehaving), FL_EPROTO when peer_pk is
 * self's own public key, FL_EINVAL for an unknown label. seed untouched on
 * failure.
 */
int fl_sa_derive(const fl_sa_keypair_t *self, const uint8_t peer_pk[FL_SA_KEY_LEN],
                 const uint8_t sid[FL_SA_SID_LEN], fl_sa_label_t label,
                 uint8_t seed[FL_SA_SEED_LEN]) FL_MUST_CHECK;

/* The self-mask seed of b (BLAKE2b-256(key = b, "FLSA/v1/self-mask" || sid)).
 * Can't fail. */
void fl_sa_self_seed(const uint8_t b[FL_SA_SEED_LEN], const uint8_t sid[FL_SA_SID_LEN],
                     uint8_t seed[FL_SA_SEED_LEN]);

/* The session id of a round: BLAKE2b-256("FLSA/v1/sid" || round_nonce ||
 * params[0..len)), params being the canonical SETUP parameter bytes. Can't
 * fail. */
void fl_sa_sid(const uint8_t round_nonce[FL_SA_NONCE_LEN], const uint8_t *params, size_t len,
               uint8_t sid[FL_SA_SID_LEN]);

/* ---- PRG and masks ---- */

/*
 * Words i0 .. i0+n-1 of the PRG of seed, each masked to `bits` bits, into
 * out[0..n-1]. Returns 0, or FL_EINVAL (bits outside 1..32) / FL_ERANGE
 * (i0 + n > FL_SA_PRG_MAX_WORDS) with out untouched.
 */
int fl_sa_prg(const uint8_t seed[FL_SA_SEED_LEN], uint64_t i0, size_t n, unsigned bits,
              uint32_t *out) FL_MUST_CHECK;

/* +1 when u > v (the pairwise mask is added), -1 when u < v (subtracted).
 * u != v (asserted). */
int fl_sa_pair_sign(uint64_t u, uint64_t v);

typedef struct fl_sa_masks fl_sa_masks_t;

/* An empty list of mask terms for modulus 2^bits (1..32). NULL with a detail
 * (FL_EINVAL) for bad bits, or when guarded memory cannot be had. Caller
 * owns the result. */
fl_sa_masks_t *fl_sa_masks_new(unsigned bits);

/* Wipe, free and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_sa_masks_destroy(fl_sa_masks_t **self_p);

/* Append the term sign * PRG(seed), sign +1 or -1 (seed copied into guarded
 * memory). Returns 0, or FL_EINVAL (bad sign) / FL_ENOMEM. */
int fl_sa_masks_add(fl_sa_masks_t *self, const uint8_t seed[FL_SA_SEED_LEN],
                    int sign) FL_MUST_CHECK;

/* Number of terms so far. */
size_t fl_sa_masks_count(const fl_sa_masks_t *self);

/*
 * buf[j] = (buf[j] + sum over terms of sign * PRG(seed)[i0 + j]) mod 2^bits
 * for j < n: masks (client) or unmasks (server) the chunk of the vector that
 * starts at word i0. Chunks may come in any order and size; the result does
 * not depend on the split. Returns 0, or FL_ERANGE (i0 + n >
 * FL_SA_PRG_MAX_WORDS) with buf untouched.
 */
int fl_sa_masks_apply(const fl_sa_masks_t *self, uint64_t i0, size_t n,
                      uint32_t *buf) FL_MUST_CHECK;

/* acc[j] = (acc[j] + y[j]) mod 2^bits for j < n: the server's running sum of
 * masked vectors. bits 1..32 (asserted). Can't fail. */
void fl_sa_vec_add(uint32_t *acc, const uint32_t *y, size_t n, unsigned bits);

/* ---- share envelopes ---- */

/*
 * Seal src's shares of its s secret key and of its b for dst, under the
 * share-enc key the two derived (fl_sa_derive(..., FL_SA_LABEL_SHARE_ENC)),
 * into out[FL_SA_ENVELOPE_LEN] with a random nonce. Can't fail in practice;
 * returns FL_ECRYPTO if libsodium does.
 */
int fl_sa_envelope_seal(const uint8_t key[FL_SA_SEED_LEN], const uint8_t sid[FL_SA_SID_LEN],
                        uint64_t src, uint64_t dst, const uint8_t share_sk[FL_SA_SHARE_LEN],
                        const uint8_t share_b[FL_SA_SHARE_LEN],
                        uint8_t out[FL_SA_ENVELOPE_LEN]) FL_MUST_CHECK;

/*
 * Open an envelope that claims to come from src for dst. Returns 0 and the
 * two shares, or FL_ECRYPTO (wrong key, sid, src or dst, or any bit of the
 * envelope altered) / FL_EPROTO (authentic, but the src/dst inside differ
 * from the expected ones), with the outputs untouched.
 */
int fl_sa_envelope_open(const uint8_t key[FL_SA_SEED_LEN], const uint8_t sid[FL_SA_SID_LEN],
                        uint64_t src, uint64_t dst, const uint8_t in[FL_SA_ENVELOPE_LEN],
                        uint8_t share_sk[FL_SA_SHARE_LEN],
                        uint8_t share_b[FL_SA_SHARE_LEN]) FL_MUST_CHECK;

/* ---- a holder's per-peer state: never both shares ---- */

/*
 * What a client has revealed of a peer's secrets at unmasking (FCP's
 * per-peer states): nothing yet, the b share (the peer is alive), or the
 * s_sk share (the peer dropped). Revealing both would let the server unmask
 * that peer's input.
 */
typedef enum {
    FL_SA_PEER_SEALED = 0,
    FL_SA_PEER_REVEALED_B = 1,
    FL_SA_PEER_REVEALED_SK = 2
} fl_sa_peer_state_t;

/*
 * Record that the b share (dead = false) or the s_sk share (dead = true) of a
 * peer is being revealed. Returns 0 (also when repeating the same reveal), or
 * FL_ESTATE, with *state unchanged, when the other share was revealed
 * already: the caller must abort the round instead of answering.
 */
int fl_sa_peer_reveal(fl_sa_peer_state_t *state, bool dead) FL_MUST_CHECK;

/* ---- encoding floats ---- */

/* A source of uniform 64-bit words for stochastic rounding (NULL means a
 * ChaCha20 stream keyed from randombytes). */
typedef uint64_t (*fl_sa_rand_fn)(void *ctx);

/* fl_sa_rand_fn over an fl_rng_t (ctx), for reproducible tests. */
uint64_t fl_sa_rand_fl_rng(void *ctx);

/*
 * The no-wrap rule: n_max clients' values in [0, T] must sum below 2^bits,
 * enforced as T <= 2^(bits - ceil(log2(n_max + 1))) (which implies n_max T
 * < 2^bits). Returns 0, or FL_EINVAL naming the largest T allowed (or the
 * bad argument: bits outside 1..32, T or n_max 0).
 */
int fl_sa_check_levels(uint64_t levels, unsigned bits, uint64_t n_max) FL_MUST_CHECK;

/*
 * Encode x[0..m-1]: clip to [-clip, clip], scale to [0, levels], round
 * stochastically (q = floor(v) + Bernoulli(v - floor(v)), so E[q] = v), into
 * q[0..m-1]. rnd NULL: randomness from randombytes. Returns 0, or FL_EINVAL
 * (clip not finite and > 0, levels 0) / FL_ENONFINITE (an x is NaN or Inf,
 * index named), with q untouched.
 */
int fl_sa_quantize(const float *x, size_t m, double clip, uint32_t levels, fl_sa_rand_fn rnd,
                   void *ctx, uint32_t *q) FL_MUST_CHECK;

/*
 * Weighted encoding into q[0..m] (m + 1 words): q[0] = w_q = round(min(weight,
 * max_weight) / max_weight * levels), q[1..m] = fl_sa_quantize of x * w_q /
 * levels. weight >= 0 and max_weight > 0, both finite (FL_EINVAL otherwise).
 */
int fl_sa_quantize_weighted(const float *x, size_t m, double weight, double max_weight,
                            double clip, uint32_t levels, fl_sa_rand_fn rnd, void *ctx,
                            uint32_t *q) FL_MUST_CHECK;

/*
 * Decode the sum s[0..m-1] of n clients' encodings: out[i] = s[i] (2 clip /
 * levels) - n clip. Returns 0, or FL_EINVAL (n 0, bad clip or levels) /
 * FL_ERANGE (some s[i] > n levels: the sum wrapped or a client sent values
 * out of range; index named).
 */
int fl_sa_dequantize(const uint32_t *s, size_t m, uint64_t n, double clip, uint32_t levels,
                     float *out) FL_MUST_CHECK;

/*
 * Decode the sum s[0..m] of n weighted encodings into the weighted mean
 * out[0..m-1] = (s[i+1] (2 clip / levels) - n clip) / (s[0] / levels), and
 * the weight total s[0] / levels into *weight_sum (may be NULL). FL_ERANGE
 * when s[0] is 0 or any s[i] > n levels.
 */
int fl_sa_dequantize_weighted(const uint32_t *s, size_t m, uint64_t n, double clip,
                              uint32_t levels, float *out, double *weight_sum) FL_MUST_CHECK;

#endif
