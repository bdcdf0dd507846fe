/*
 * fl_secagg.c — SecAgg per-client crypto, masks and float encoding. See
 * fl_secagg.h for the construction; this file says how it is made fast and
 * careful.
 *
 * Masks are applied a chunk of S_CHUNK_WORDS words at a time: for each term
 * the keystream of the chunk is produced by ChaCha20 (XOR of a constant zero
 * buffer, so no memset per term) and added to or subtracted from the 4 KiB
 * chunk of the caller's vector, which stays in L1 across all terms. Words
 * are summed in full 32-bit wrap arithmetic and masked to `bits` once per
 * chunk: 2^bits divides 2^32, so the result mod 2^bits is the same.
 */
#include "fl_secagg.h"

#include <assert.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fl_rng.h"

#define S_CHUNK_WORDS 1024
/* keystream for a chunk that starts mid-block needs up to 15 extra words */
#define S_KS_BYTES (4 * (S_CHUNK_WORDS + 16))

static const uint8_t s_zero[S_KS_BYTES];
static const uint8_t s_nonce12[12];

static const char s_label_pairwise[] = "FLSA/v1/pairwise-mask";
static const char s_label_share_enc[] = "FLSA/v1/share-enc";
static const char s_label_self[] = "FLSA/v1/self-mask";
static const char s_label_sid[] = "FLSA/v1/sid";

static int
s_sodium_ready(void)
{
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    return 0;
}

static inline uint32_t
s_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint32_t
s_bits_mask(unsigned bits)
{
    return bits >= 32 ? UINT32_MAX : (UINT32_C(1) << bits) - 1;
}

static void
s_store_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t
s_load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- key pairs ---- */

struct fl_sa_keypair {
    uint8_t pk[FL_SA_KEY_LEN];
    uint8_t *sk; /* sodium_malloc(FL_SA_KEY_LEN) */
};

/* An empty key pair with its guarded secret buffer; *rc says why not. */
static fl_sa_keypair_t *
s_keypair_alloc(int *rc)
{
    *rc = s_sodium_ready();
    if (*rc < 0)
        return NULL;
    fl_sa_keypair_t *kp = fl_xcalloc(1, sizeof *kp);
    kp->sk = sodium_malloc(FL_SA_KEY_LEN);
    if (!kp->sk) {
        free(kp);
        *rc = fl_fail(FL_ENOMEM, "secagg: cannot allocate guarded memory for a secret key");
        return NULL;
    }
    return kp;
}

fl_sa_keypair_t *
fl_sa_keypair_new(void)
{
    int rc;
    fl_sa_keypair_t *kp = s_keypair_alloc(&rc);
    if (!kp)
        return NULL;
    randombytes_buf(kp->sk, FL_SA_KEY_LEN);
    /* Fails only for a scalar that clamps to zero, which clamping rules out. */
    rc = crypto_scalarmult_base(kp->pk, kp->sk);
    assert(rc == 0);
    (void)rc;
    return kp;
}

int
fl_sa_keypair_from_secret(const uint8_t sk[FL_SA_KEY_LEN], fl_sa_keypair_t **kp_p)
{
    int rc;
    fl_sa_keypair_t *kp = s_keypair_alloc(&rc);
    if (!kp)
        return rc;
    memcpy(kp->sk, sk, FL_SA_KEY_LEN);
    if (crypto_scalarmult_base(kp->pk, kp->sk) != 0) {
        fl_sa_keypair_destroy(&kp);
        return fl_fail(FL_ECRYPTO, "secagg: secret key gives no public key");
    }
    *kp_p = kp;
    return 0;
}

void
fl_sa_keypair_destroy(fl_sa_keypair_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_sa_keypair_t *kp = *self_p;
    sodium_free(kp->sk); /* wipes */
    free(kp);
    *self_p = NULL;
}

const uint8_t *
fl_sa_keypair_pk(const fl_sa_keypair_t *self)
{
    return self->pk;
}

const uint8_t *
fl_sa_keypair_sk(const fl_sa_keypair_t *self)
{
    return self->sk;
}

/* ---- key derivation ---- */

int
fl_sa_derive(const fl_sa_keypair_t *self, const uint8_t peer_pk[FL_SA_KEY_LEN],
             const uint8_t sid[FL_SA_SID_LEN], fl_sa_label_t label, uint8_t seed[FL_SA_SEED_LEN])
{
    const char *text;
    switch (label) {
    case FL_SA_LABEL_PAIRWISE_MASK:
        text = s_label_pairwise;
        break;
    case FL_SA_LABEL_SHARE_ENC:
        text = s_label_share_enc;
        break;
    default:
        return fl_fail(FL_EINVAL, "secagg: unknown key-derivation label %d", (int)label);
    }
    int cmp = memcmp(self->pk, peer_pk, FL_SA_KEY_LEN);
    if (cmp == 0)
        return fl_fail(FL_EPROTO, "secagg: peer public key equals our own");
    const uint8_t *lo = cmp < 0 ? self->pk : peer_pk;
    const uint8_t *hi = cmp < 0 ? peer_pk : self->pk;

    uint8_t shared[crypto_scalarmult_BYTES];
    crypto_generichash_state st;
    int rc = 0;
    if (crypto_scalarmult(shared, self->sk, peer_pk) != 0) {
        rc = fl_fail(FL_ECRYPTO, "secagg: X25519 with the peer key is zero (low-order point)");
        goto out;
    }
    if (crypto_generichash_init(&st, shared, sizeof shared, FL_SA_SEED_LEN) != 0 ||
        crypto_generichash_update(&st, (const unsigned char *)text, strlen(text)) != 0 ||
        crypto_generichash_update(&st, sid, FL_SA_SID_LEN) != 0 ||
        crypto_generichash_update(&st, lo, FL_SA_KEY_LEN) != 0 ||
        crypto_generichash_update(&st, hi, FL_SA_KEY_LEN) != 0 ||
        crypto_generichash_final(&st, seed, FL_SA_SEED_LEN) != 0)
        rc = fl_fail(FL_ECRYPTO, "secagg: BLAKE2b failed");
out:
    sodium_memzero(shared, sizeof shared);
    sodium_memzero(&st, sizeof st);
    return rc;
}

void
fl_sa_self_seed(const uint8_t b[FL_SA_SEED_LEN], const uint8_t sid[FL_SA_SID_LEN],
                uint8_t seed[FL_SA_SEED_LEN])
{
    crypto_generichash_state st;
    int rc = crypto_generichash_init(&st, b, FL_SA_SEED_LEN, FL_SA_SEED_LEN);
    rc |= crypto_generichash_update(&st, (const unsigned char *)s_label_self,
                                    sizeof s_label_self - 1);
    rc |= crypto_generichash_update(&st, sid, FL_SA_SID_LEN);
    rc |= crypto_generichash_final(&st, seed, FL_SA_SEED_LEN);
    assert(rc == 0); /* BLAKE2b fails only on bad lengths, which are constant here */
    (void)rc;
    sodium_memzero(&st, sizeof st);
}

void
fl_sa_sid(const uint8_t round_nonce[FL_SA_NONCE_LEN], const uint8_t *params, size_t len,
          uint8_t sid[FL_SA_SID_LEN])
{
    crypto_generichash_state st;
    int rc = crypto_generichash_init(&st, NULL, 0, FL_SA_SID_LEN);
    rc |= crypto_generichash_update(&st, (const unsigned char *)s_label_sid,
                                    sizeof s_label_sid - 1);
    rc |= crypto_generichash_update(&st, round_nonce, FL_SA_NONCE_LEN);
    if (len)
        rc |= crypto_generichash_update(&st, params, len);
    rc |= crypto_generichash_final(&st, sid, FL_SA_SID_LEN);
    assert(rc == 0);
    (void)rc;
}

/* ---- PRG and masks ---- */

/* Keystream of seed for words [pos, pos + cnt), cnt <= S_CHUNK_WORDS, into
 * ks; returns the byte offset in ks of word pos. Block b holds words
 * 16b .. 16b+15, so the stream starts at block pos/16. */
static size_t
s_keystream(const uint8_t seed[FL_SA_SEED_LEN], uint64_t pos, size_t cnt, uint8_t *ks)
{
    uint64_t block = pos / 16;
    size_t off = (size_t)(pos % 16);
    size_t bytes = 4 * (off + cnt);
    assert(cnt <= S_CHUNK_WORDS && block <= UINT32_MAX);
    crypto_stream_chacha20_ietf_xor_ic(ks, s_zero, bytes, s_nonce12, (uint32_t)block, seed);
    return 4 * off;
}

static int
s_check_range(uint64_t i0, size_t n)
{
    if (i0 > FL_SA_PRG_MAX_WORDS || n > FL_SA_PRG_MAX_WORDS - i0)
        return fl_fail(FL_ERANGE,
                       "secagg: PRG words %llu..+%zu beyond the stream's %llu words",
                       (unsigned long long)i0, n, (unsigned long long)FL_SA_PRG_MAX_WORDS);
    return 0;
}

int
fl_sa_prg(const uint8_t seed[FL_SA_SEED_LEN], uint64_t i0, size_t n, unsigned bits,
          uint32_t *out)
{
    if (bits < 1 || bits > 32)
        return fl_fail(FL_EINVAL, "secagg: modulus bits %u outside 1..32", bits);
    int rc = s_check_range(i0, n);
    if (rc < 0)
        return rc;
    if ((rc = s_sodium_ready()) < 0)
        return rc;
    uint32_t mask = s_bits_mask(bits);
    uint8_t ks[S_KS_BYTES];
    for (size_t done = 0; done < n;) {
        uint64_t pos = i0 + done;
        size_t cnt = n - done;
        size_t room = S_CHUNK_WORDS - (size_t)(pos % 16);
        if (cnt > room)
            cnt = room;
        const uint8_t *w = ks + s_keystream(seed, pos, cnt, ks);
        for (size_t j = 0; j < cnt; j++)
            out[done + j] = s_le32(w + 4 * j) & mask;
        done += cnt;
    }
    sodium_memzero(ks, sizeof ks);
    return 0;
}

int
fl_sa_pair_sign(uint64_t u, uint64_t v)
{
    assert(u != v);
    return u > v ? 1 : -1;
}

struct fl_sa_masks {
    unsigned bits;
    size_t count, cap;
    uint8_t *seeds; /* sodium_malloc(cap * FL_SA_SEED_LEN) */
    int8_t *signs;
};

fl_sa_masks_t *
fl_sa_masks_new(unsigned bits)
{
    if (bits < 1 || bits > 32) {
        fl_fail(FL_EINVAL, "secagg: modulus bits %u outside 1..32", bits);
        return NULL;
    }
    if (s_sodium_ready() < 0)
        return NULL;
    fl_sa_masks_t *self = fl_xcalloc(1, sizeof *self);
    self->bits = bits;
    self->cap = 8;
    self->seeds = sodium_malloc(self->cap * FL_SA_SEED_LEN);
    self->signs = fl_xmalloc(self->cap);
    if (!self->seeds) {
        fl_fail(FL_ENOMEM, "secagg: cannot allocate guarded memory for mask seeds");
        fl_sa_masks_destroy(&self);
    }
    return self;
}

void
fl_sa_masks_destroy(fl_sa_masks_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_sa_masks_t *self = *self_p;
    sodium_free(self->seeds); /* wipes; accepts NULL */
    free(self->signs);
    free(self);
    *self_p = NULL;
}

int
fl_sa_masks_add(fl_sa_masks_t *self, const uint8_t seed[FL_SA_SEED_LEN], int sign)
{
    if (sign != 1 && sign != -1)
        return fl_fail(FL_EINVAL, "secagg: mask sign %d is not +1 or -1", sign);
    if (self->count == self->cap) {
        /* Guarded memory has no realloc: copy into a block twice as large. */
        size_t cap = 2 * self->cap, bytes;
        if (!fl_mul_ok(cap, FL_SA_SEED_LEN, &bytes))
            return fl_fail(FL_ENOMEM, "secagg: too many mask terms");
        uint8_t *seeds = sodium_malloc(bytes);
        if (!seeds)
            return fl_fail(FL_ENOMEM, "secagg: cannot allocate guarded memory for %zu seeds",
                           cap);
        memcpy(seeds, self->seeds, self->count * FL_SA_SEED_LEN);
        sodium_free(self->seeds);
        self->seeds = seeds;
        self->signs = fl_xrealloc(self->signs, cap);
        self->cap = cap;
    }
    memcpy(self->seeds + self->count * FL_SA_SEED_LEN, seed, FL_SA_SEED_LEN);
    self->signs[self->count] = (int8_t)sign;
    self->count++;
    return 0;
}

size_t
fl_sa_masks_count(const fl_sa_masks_t *self)
{
    return self->count;
}

int
fl_sa_masks_apply(const fl_sa_masks_t *self, uint64_t i0, size_t n, uint32_t *buf)
{
    int rc = s_check_range(i0, n);
    if (rc < 0)
        return rc;
    uint32_t mask = s_bits_mask(self->bits);
    uint8_t ks[S_KS_BYTES];
    for (size_t done = 0; done < n;) {
        uint64_t pos = i0 + done;
        size_t cnt = n - done;
        size_t room = S_CHUNK_WORDS - (size_t)(pos % 16);
        if (cnt > room)
            cnt = room;
        uint32_t *b = buf + done;
        for (size_t k = 0; k < self->count; k++) {
            const uint8_t *w = ks + s_keystream(self->seeds + k * FL_SA_SEED_LEN, pos, cnt, ks);
            if (self->signs[k] > 0)
                for (size_t j = 0; j < cnt; j++)
                    b[j] += s_le32(w + 4 * j);
            else
                for (size_t j = 0; j < cnt; j++)
                    b[j] -= s_le32(w + 4 * j);
        }
        for (size_t j = 0; j < cnt; j++)
            b[j] &= mask;
        done += cnt;
    }
    sodium_memzero(ks, sizeof ks);
    return 0;
}

void
fl_sa_vec_add(uint32_t *acc, const uint32_t *y, size_t n, unsigned bits)
{
    assert(bits >= 1 && bits <= 32);
    uint32_t mask = s_bits_mask(bits);
    for (size_t j = 0; j < n; j++)
        acc[j] = (acc[j] + y[j]) & mask;
}

/* ---- share envelopes ---- */

#define S_AD_LEN (FL_SA_SID_LEN + 16)
#define S_NPUB crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define S_ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES  /* 16 */

static void
s_envelope_ad(const uint8_t sid[FL_SA_SID_LEN], uint64_t src, uint64_t dst, uint8_t ad[S_AD_LEN])
{
    memcpy(ad, sid, FL_SA_SID_LEN);
    s_store_be64(ad + FL_SA_SID_LEN, src);
    s_store_be64(ad + FL_SA_SID_LEN + 8, dst);
}

int
fl_sa_envelope_seal(const uint8_t key[FL_SA_SEED_LEN], const uint8_t sid[FL_SA_SID_LEN],
                    uint64_t src, uint64_t dst, const uint8_t share_sk[FL_SA_SHARE_LEN],
                    const uint8_t share_b[FL_SA_SHARE_LEN], uint8_t out[FL_SA_ENVELOPE_LEN])
{
    static_assert(FL_SA_ENVELOPE_LEN == S_NPUB + FL_SA_ENVELOPE_PLAIN_LEN + S_ABYTES,
                  "envelope layout");
    int rc = s_sodium_ready();
    if (rc < 0)
        return rc;
    uint8_t ad[S_AD_LEN], plain[FL_SA_ENVELOPE_PLAIN_LEN];
    s_envelope_ad(sid, src, dst, ad);
    s_store_be64(plain, src);
    s_store_be64(plain + 8, dst);
    memcpy(plain + 16, share_sk, FL_SA_SHARE_LEN);
    memcpy(plain + 16 + FL_SA_SHARE_LEN, share_b, FL_SA_SHARE_LEN);
    randombytes_buf(out, S_NPUB);
    unsigned long long clen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(out + S_NPUB, &clen, plain, sizeof plain, ad,
                                                   sizeof ad, NULL, out, key) != 0 ||
        clen != FL_SA_ENVELOPE_PLAIN_LEN + S_ABYTES)
        rc = fl_fail(FL_ECRYPTO, "secagg: XChaCha20-Poly1305 encryption failed");
    sodium_memzero(plain, sizeof plain);
    return rc;
}

int
fl_sa_envelope_open(const uint8_t key[FL_SA_SEED_LEN], const uint8_t sid[FL_SA_SID_LEN],
                    uint64_t src, uint64_t dst, const uint8_t in[FL_SA_ENVELOPE_LEN],
                    uint8_t share_sk[FL_SA_SHARE_LEN], uint8_t share_b[FL_SA_SHARE_LEN])
{
    int rc = s_sodium_ready();
    if (rc < 0)
        return rc;
    uint8_t ad[S_AD_LEN], plain[FL_SA_ENVELOPE_PLAIN_LEN];
    s_envelope_ad(sid, src, dst, ad);
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &mlen, NULL, in + S_NPUB,
                                                   FL_SA_ENVELOPE_LEN - S_NPUB, ad, sizeof ad,
                                                   in, key) != 0 ||
        mlen != FL_SA_ENVELOPE_PLAIN_LEN) {
        rc = fl_fail(FL_ECRYPTO,
                     "secagg: share envelope from %llu to %llu does not authenticate",
                     (unsigned long long)src, (unsigned long long)dst);
        goto out;
    }
    uint64_t in_src = s_load_be64(plain), in_dst = s_load_be64(plain + 8);
    if (in_src != src || in_dst != dst) {
        rc = fl_fail(FL_EPROTO,
                     "secagg: share envelope from %llu to %llu says it is from %llu to %llu",
                     (unsigned long long)src, (unsigned long long)dst,
                     (unsigned long long)in_src, (unsigned long long)in_dst);
        goto out;
    }
    memcpy(share_sk, plain + 16, FL_SA_SHARE_LEN);
    memcpy(share_b, plain + 16 + FL_SA_SHARE_LEN, FL_SA_SHARE_LEN);
out:
    sodium_memzero(plain, sizeof plain);
    return rc;
}

/* ---- per-peer reveal state ---- */

int
fl_sa_peer_reveal(fl_sa_peer_state_t *state, bool dead)
{
    fl_sa_peer_state_t want = dead ? FL_SA_PEER_REVEALED_SK : FL_SA_PEER_REVEALED_B;
    if (*state != FL_SA_PEER_SEALED && *state != want)
        return fl_fail(FL_ESTATE,
                       "secagg: asked for the %s share of a peer whose %s share was revealed "
                       "already; revealing both would expose its input",
                       dead ? "s_sk" : "b", dead ? "b" : "s_sk");
    *state = want;
    return 0;
}

/* ---- encoding floats ---- */

uint64_t
fl_sa_rand_fl_rng(void *ctx)
{
    return fl_rng_u64(ctx);
}

/* The default rounding randomness: a ChaCha20 stream under a fresh random
 * key (one getrandom per call instead of one per element). */
typedef struct {
    uint8_t key[32];
    uint64_t buf[64];
    size_t used;
    uint32_t block;
} s_stream_rand_t;

static uint64_t
s_stream_rand(void *ctx)
{
    s_stream_rand_t *r = ctx;
    if (r->used == sizeof r->buf / sizeof r->buf[0]) {
        crypto_stream_chacha20_ietf_xor_ic((uint8_t *)r->buf, s_zero, sizeof r->buf, s_nonce12,
                                           r->block, r->key);
        r->block += (uint32_t)(sizeof r->buf / 64);
        r->used = 0;
    }
    return r->buf[r->used++];
}

int
fl_sa_check_levels(uint64_t levels, unsigned bits, uint64_t n_max)
{
    if (bits < 1 || bits > 32)
        return fl_fail(FL_EINVAL, "secagg: modulus bits %u outside 1..32", bits);
    if (levels == 0 || n_max == 0)
        return fl_fail(FL_EINVAL, "secagg: quantization levels %llu and clients %llu must be > 0",
                       (unsigned long long)levels, (unsigned long long)n_max);
    /* ceil(log2(n_max + 1)) is the bit length of n_max */
    unsigned c = 0;
    for (uint64_t v = n_max; v; v >>= 1)
        c++;
    if (c > bits)
        return fl_fail(FL_EINVAL,
                       "secagg: %llu clients cannot be summed without wrapping modulo 2^%u at "
                       "any quantization level",
                       (unsigned long long)n_max, bits);
    uint64_t max_levels = UINT64_C(1) << (bits - c);
    if (levels > max_levels)
        return fl_fail(FL_EINVAL,
                       "secagg: %llu quantization levels would let the sum of %llu clients wrap "
                       "modulo 2^%u; use at most %llu = 2^(%u - ceil(log2(%llu + 1)))",
                       (unsigned long long)levels, (unsigned long long)n_max, bits,
                       (unsigned long long)max_levels, bits, (unsigned long long)n_max);
    return 0;
}

static int
s_check_encoding(double clip, uint32_t levels)
{
    if (!(isfinite(clip) && clip > 0))
        return fl_fail(FL_EINVAL, "secagg: clipping range %g must be finite and > 0", clip);
    if (levels == 0)
        return fl_fail(FL_EINVAL, "secagg: quantization levels must be > 0");
    return 0;
}

/* q[i] = stochastic rounding of (clip(scale * x[i]) + c) T / 2c. */
static int
s_quantize(const float *x, size_t m, double scale, double clip, uint32_t levels,
           fl_sa_rand_fn rnd, void *ctx, uint32_t *q)
{
    int rc = s_check_encoding(clip, levels);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < m; i++) /* first, so that a refused update writes nothing */
        if (!isfinite(x[i]))
            return fl_fail(FL_ENONFINITE, "secagg: element %zu of the update is %g", i,
                           (double)x[i]);
    s_stream_rand_t own;
    if (!rnd) {
        if ((rc = s_sodium_ready()) < 0)
            return rc;
        randombytes_buf(own.key, sizeof own.key);
        own.used = sizeof own.buf / sizeof own.buf[0];
        own.block = 0;
        rnd = s_stream_rand;
        ctx = &own;
    }
    const double T = levels, k = T / (2 * clip);
    for (size_t i = 0; i < m; i++) {
        double xc = fmin(fmax(scale * x[i], -clip), clip);
        double v = fmin(fmax((xc + clip) * k, 0), T);
        double fl = floor(v);
        double frac = v - fl;
        double u = (double)(rnd(ctx) >> 11) * 0x1p-53; /* uniform in [0, 1) */
        q[i] = (uint32_t)fl + (u < frac);
    }
    if (rnd == s_stream_rand)
        sodium_memzero(&own, sizeof own);
    return 0;
}

int
fl_sa_quantize(const float *x, size_t m, double clip, uint32_t levels, fl_sa_rand_fn rnd,
               void *ctx, uint32_t *q)
{
    return s_quantize(x, m, 1.0, clip, levels, rnd, ctx, q);
}

int
fl_sa_quantize_weighted(const float *x, size_t m, double weight, double max_weight, double clip,
                        uint32_t levels, fl_sa_rand_fn rnd, void *ctx, uint32_t *q)
{
    if (!(isfinite(weight) && weight >= 0))
        return fl_fail(FL_EINVAL, "secagg: weight %g must be finite and >= 0", weight);
    if (!(isfinite(max_weight) && max_weight > 0))
        return fl_fail(FL_EINVAL, "secagg: maximum weight %g must be finite and > 0", max_weight);
    int rc = s_check_encoding(clip, levels);
    if (rc < 0)
        return rc;
    double ratio = fmin(weight, max_weight) / max_weight;
    uint32_t wq = (uint32_t)floor(ratio * levels + 0.5);
    if (wq > levels)
        wq = levels;
    rc = s_quantize(x, m, (double)wq / levels, clip, levels, rnd, ctx, q + 1);
    if (rc == 0)
        q[0] = wq;
    return rc;
}

static int
s_check_sum(const uint32_t *s, size_t m, uint64_t n, uint32_t levels, size_t base)
{
    uint64_t max = n * (uint64_t)levels; /* n <= 2^32 (checked), so no overflow */
    for (size_t i = 0; i < m; i++)
        if (s[i] > max)
            return fl_fail(FL_ERANGE,
                           "secagg: summed element %zu is %u, above %llu clients x %u levels: "
                           "the sum wrapped or a client sent values out of range",
                           base + i, s[i], (unsigned long long)n, levels);
    return 0;
}

int
fl_sa_dequantize(const uint32_t *s, size_t m, uint64_t n, double clip, uint32_t levels,
                 float *out)
{
    int rc = s_check_encoding(clip, levels);
    if (rc < 0)
        return rc;
    if (n == 0 || n > UINT32_MAX)
        return fl_fail(FL_EINVAL, "secagg: %llu clients in the sum", (unsigned long long)n);
    if ((rc = s_check_sum(s, m, n, levels, 0)) < 0)
        return rc;
    const double step = 2 * clip / levels, off = (double)n * clip;
    for (size_t i = 0; i < m; i++)
        out[i] = (float)(s[i] * step - off);
    return 0;
}

int
fl_sa_dequantize_weighted(const uint32_t *s, size_t m, uint64_t n, double clip, uint32_t levels,
                          float *out, double *weight_sum)
{
    int rc = s_check_encoding(clip, levels);
    if (rc < 0)
        return rc;
    if (n == 0 || n > UINT32_MAX)
        return fl_fail(FL_EINVAL, "secagg: %llu clients in the sum", (unsigned long long)n);
    if ((rc = s_check_sum(s, m + 1, n, levels, 0)) < 0)
        return rc;
    if (s[0] == 0)
        return fl_fail(FL_ERANGE, "secagg: the weights sum to zero");
    const double step = 2 * clip / levels, off = (double)n * clip;
    const double w = (double)s[0] / levels;
    for (size_t i = 0; i < m; i++)
        out[i] = (float)((s[i + 1] * step - off) / w);
    if (weight_sum)
        *weight_sum = w;
    return 0;
}
