/*
 * test_secagg.c — unit tests of fl_secagg: the SECAGG.md §1.1 vectors (RFC
 * 7748 keys, KDF seeds, PRG words), goldens for sub-ranges, the self-mask
 * seed and sid computed by an independent implementation (Python hashlib +
 * `cryptography`), mask cancellation and chunking, share envelopes and their
 * tampering, the per-peer reveal rule, the §1.2 encoding (worked example,
 * unbiasedness, weights, no-wrap rule), and an in-process simulation of whole
 * rounds (full graph and Harary, n = 3..64, dropouts at every phase) whose
 * unmasked sum must equal the survivors' quantized sum exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_rng.h"
#include "fl_sagraph.h"
#include "fl_secagg.h"
#include "fl_shamir.h"
#include "fl_util.h"

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

static void
s_sid0(uint8_t sid[32])
{
    for (int i = 0; i < 32; i++)
        sid[i] = (uint8_t)i;
}

/* ---- vectors ---- */

static void
test_kdf_vectors(void **state)
{
    (void)state;
    uint8_t ask[32], bsk[32], want[32], sid[32], s1[32], s2[32], shared[32];
    s_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", ask, 32);
    s_hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", bsk, 32);
    fl_sa_keypair_t *a = NULL, *b = NULL;
    assert_int_equal(fl_sa_keypair_from_secret(ask, &a), 0);
    assert_int_equal(fl_sa_keypair_from_secret(bsk, &b), 0);
    /* RFC 7748 §6.1 public keys and shared secret */
    s_hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", want, 32);
    assert_memory_equal(fl_sa_keypair_pk(a), want, 32);
    s_hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", want, 32);
    assert_memory_equal(fl_sa_keypair_pk(b), want, 32);
    assert_memory_equal(fl_sa_keypair_sk(a), ask, 32);
    assert_int_equal(crypto_scalarmult(shared, ask, fl_sa_keypair_pk(b)), 0);
    s_hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", want, 32);
    assert_memory_equal(shared, want, 32);

    s_sid0(sid);
    assert_int_equal(fl_sa_derive(a, fl_sa_keypair_pk(b), sid, FL_SA_LABEL_PAIRWISE_MASK, s1), 0);
    assert_int_equal(fl_sa_derive(b, fl_sa_keypair_pk(a), sid, FL_SA_LABEL_PAIRWISE_MASK, s2), 0);
    s_hex("dcc6c63e63db3143100b5aa383126e441d435f045f3e0506d1c523a34236bd18", want, 32);
    assert_memory_equal(s1, want, 32);
    assert_memory_equal(s2, want, 32);
    assert_int_equal(fl_sa_derive(a, fl_sa_keypair_pk(b), sid, FL_SA_LABEL_SHARE_ENC, s1), 0);
    assert_int_equal(fl_sa_derive(b, fl_sa_keypair_pk(a), sid, FL_SA_LABEL_SHARE_ENC, s2), 0);
    s_hex("6ce9fb6bca3d8164e5d306ffea00870c6cae80b5bb37200bc6456d3d02941e72", want, 32);
    assert_memory_equal(s1, want, 32);
    assert_memory_equal(s2, want, 32);
    /* another sid, another seed */
    sid[0] ^= 1;
    assert_int_equal(fl_sa_derive(a, fl_sa_keypair_pk(b), sid, FL_SA_LABEL_SHARE_ENC, s1), 0);
    assert_memory_not_equal(s1, want, 32);
    fl_sa_keypair_destroy(&a);
    fl_sa_keypair_destroy(&b);
    assert_null(a);
    fl_sa_keypair_destroy(&a);
    fl_sa_keypair_destroy(NULL);
}

static void
test_derive_errors(void **state)
{
    (void)state;
    uint8_t sid[32], seed[32], keep[32], bad[32];
    s_sid0(sid);
    memset(seed, 0x77, sizeof seed);
    memcpy(keep, seed, sizeof keep);
    fl_sa_keypair_t *a = fl_sa_keypair_new();
    fl_sa_keypair_t *b = fl_sa_keypair_new();
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_not_equal(fl_sa_keypair_pk(a), fl_sa_keypair_pk(b), 32);
    /* low-order points: zero, and a point of order 8 */
    memset(bad, 0, sizeof bad);
    assert_int_equal(fl_sa_derive(a, bad, sid, FL_SA_LABEL_PAIRWISE_MASK, seed), FL_ECRYPTO);
    assert_non_null(strstr(fl_errmsg(), "low-order"));
    s_hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", bad, 32);
    assert_int_equal(fl_sa_derive(a, bad, sid, FL_SA_LABEL_SHARE_ENC, seed), FL_ECRYPTO);
    /* our own key as the peer's */
    assert_int_equal(fl_sa_derive(a, fl_sa_keypair_pk(a), sid, FL_SA_LABEL_SHARE_ENC, seed),
                     FL_EPROTO);
    assert_int_equal(fl_sa_derive(a, fl_sa_keypair_pk(b), sid, (fl_sa_label_t)9, seed), FL_EINVAL);
    assert_memory_equal(seed, keep, 32);
    /* the two labels give independent seeds */
    uint8_t s1[32], s2[32];
    assert_int_equal(fl_sa_derive(a, fl_sa_keypair_pk(b), sid, FL_SA_LABEL_PAIRWISE_MASK, s1), 0);
    assert_int_equal(fl_sa_derive(a, fl_sa_keypair_pk(b), sid, FL_SA_LABEL_SHARE_ENC, s2), 0);
    assert_memory_not_equal(s1, s2, 32);
    fl_sa_keypair_destroy(&a);
    fl_sa_keypair_destroy(&b);
}

static void
test_seed_sid_vectors(void **state)
{
    (void)state;
    uint8_t b[32], sid[32], seed[32], want[32], nonce[32];
    memset(b, 0x42, sizeof b);
    s_sid0(sid);
    fl_sa_self_seed(b, sid, seed);
    s_hex("219622b1d59c0299f1499bd5fd6674be573f77edfbfd7fea10956b8f47de460e", want, 32);
    assert_memory_equal(seed, want, 32);
    memset(nonce, 7, sizeof nonce);
    fl_sa_sid(nonce, (const uint8_t *)"params", 6, sid);
    s_hex("1c6f82e1975257087bf23f44f6d233b9b9ee89bd13f24969f908543e2062dc89", want, 32);
    assert_memory_equal(sid, want, 32);
}

static void
s_check_words(const uint8_t seed[32], uint64_t i0, unsigned bits, size_t n, const uint32_t *want)
{
    uint32_t got[8];
    assert_true(n <= 8);
    assert_int_equal(fl_sa_prg(seed, i0, n, bits, got), 0);
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("PRG word %llu: %08x, want %08x", (unsigned long long)(i0 + i), got[i],
                     want[i]);
}

static void
test_prg_vectors(void **state)
{
    (void)state;
    uint8_t zero[32] = {0}, ps[32];
    s_hex("dcc6c63e63db3143100b5aa383126e441d435f045f3e0506d1c523a34236bd18", ps, 32);
    /* SECAGG.md / RFC 8439 A.1 */
    s_check_words(zero, 0, 32, 4, (const uint32_t[]){0xade0b876, 0x903df1a0, 0xe56a5d40,
                                                     0x28bd8653});
    s_check_words(ps, 0, 32, 4, (const uint32_t[]){0x21b51bef, 0x219488ad, 0x9504910d,
                                                   0xd245b577});
    /* sub-ranges not aligned to blocks, across a block boundary, far in,
     * at the very end of the stream, and masked to 16 bits */
    s_check_words(ps, 13, 32, 5, (const uint32_t[]){0xff2906a6, 0x84f58460, 0xda455212,
                                                    0x2f264d41, 0x95d092ef});
    s_check_words(ps, 1000, 32, 3, (const uint32_t[]){0x55c488a6, 0x32114ee9, 0x7d723aae});
    s_check_words(ps, FL_SA_PRG_MAX_WORDS - 4, 32, 4,
                  (const uint32_t[]){0x8f7ae781, 0x3bd5eba9, 0xbbe45f3f, 0xcc5fea2d});
    s_check_words(ps, 17, 16, 4, (const uint32_t[]){0x92ef, 0x6966, 0xe89b, 0x033f});

    uint32_t out[4] = {1, 2, 3, 4};
    assert_int_equal(fl_sa_prg(ps, FL_SA_PRG_MAX_WORDS - 3, 4, 32, out), FL_ERANGE);
    assert_int_equal(fl_sa_prg(ps, UINT64_MAX, 1, 32, out), FL_ERANGE);
    assert_int_equal(fl_sa_prg(ps, 0, 4, 0, out), FL_EINVAL);
    assert_int_equal(fl_sa_prg(ps, 0, 4, 33, out), FL_EINVAL);
    assert_int_equal(out[0], 1);
    assert_int_equal(fl_sa_prg(ps, 5, 0, 32, out), 0); /* empty is fine */
}

/* Any split into chunks gives the same words as one call. */
static void
test_prg_chunks(void **state)
{
    (void)state;
    uint8_t seed[32];
    randombytes_buf(seed, sizeof seed);
    enum { N = 5000 };
    uint32_t *whole = malloc(N * sizeof *whole), *part = malloc(N * sizeof *part);
    assert_int_equal(fl_sa_prg(seed, 0, N, 32, whole), 0);
    fl_rng_t rng;
    fl_rng_seed(&rng, 3, 3);
    for (int rep = 0; rep < 5; rep++) {
        memset(part, 0, N * sizeof *part);
        for (size_t at = 0; at < N;) {
            size_t len = 1 + (size_t)fl_rng_below(&rng, rep == 4 ? 3000 : 40);
            if (len > N - at)
                len = N - at;
            assert_int_equal(fl_sa_prg(seed, at, len, 32, part + at), 0);
            at += len;
        }
        assert_memory_equal(part, whole, N * sizeof *part);
    }
    /* masked words are the low bits of the full ones */
    assert_int_equal(fl_sa_prg(seed, 0, N, 7, part), 0);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(part[i], whole[i] & 0x7f);
    free(whole);
    free(part);
}

/* ---- masks ---- */

static void
test_masks(void **state)
{
    (void)state;
    enum { N = 3001 };
    uint8_t s[3][32];
    for (int i = 0; i < 3; i++)
        randombytes_buf(s[i], 32);
    assert_int_equal(fl_sa_pair_sign(5, 2), 1);
    assert_int_equal(fl_sa_pair_sign(2, 5), -1);

    /* client 4 and client 1 share s[0]: 4 adds, 1 subtracts; both also hold a
     * self mask. Their sum minus the self masks is the plain sum. */
    uint32_t *x4 = malloc(N * 4), *x1 = malloc(N * 4), *y4 = malloc(N * 4), *y1 = malloc(N * 4);
    uint32_t *z = calloc(N, 4), *w = malloc(N * 4);
    for (size_t i = 0; i < N; i++) {
        x4[i] = (uint32_t)(i * 7 % 1000);
        x1[i] = (uint32_t)(i * 13 % 1000);
    }
    memcpy(y4, x4, N * 4);
    memcpy(y1, x1, N * 4);
    fl_sa_masks_t *m4 = fl_sa_masks_new(32), *m1 = fl_sa_masks_new(32), *srv = fl_sa_masks_new(32);
    assert_non_null(m4);
    assert_int_equal(fl_sa_masks_add(m4, s[1], 1), 0);
    assert_int_equal(fl_sa_masks_add(m4, s[0], fl_sa_pair_sign(4, 1)), 0);
    assert_int_equal(fl_sa_masks_add(m1, s[2], 1), 0);
    assert_int_equal(fl_sa_masks_add(m1, s[0], fl_sa_pair_sign(1, 4)), 0);
    assert_int_equal(fl_sa_masks_count(m4), 2);
    assert_int_equal(fl_sa_masks_apply(m4, 0, N, y4), 0);
    /* client 1 masks in odd chunks */
    for (size_t at = 0; at < N; at += 77) {
        size_t len = N - at < 77 ? N - at : 77;
        assert_int_equal(fl_sa_masks_apply(m1, at, len, y1 + at), 0);
    }
    size_t same = 0;
    for (size_t i = 0; i < N; i++)
        same += y4[i] == x4[i];
    assert_true(same < 5); /* masked: equal only by chance (2^-32 each) */
    fl_sa_vec_add(z, y4, N, 32);
    fl_sa_vec_add(z, y1, N, 32);
    assert_int_equal(fl_sa_masks_add(srv, s[1], -1), 0);
    assert_int_equal(fl_sa_masks_add(srv, s[2], -1), 0);
    assert_int_equal(fl_sa_masks_apply(srv, 0, N, z), 0);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(z[i], x4[i] + x1[i]);

    /* many terms (growth of the guarded seed array) = sum of single PRGs,
     * at 20 bits */
    fl_sa_masks_t *many = fl_sa_masks_new(20);
    memset(z, 0, N * 4);
    uint32_t *acc = calloc(N, 4);
    for (int k = 0; k < 37; k++) {
        uint8_t seed[32];
        randombytes_buf(seed, 32);
        int sign = k % 3 ? 1 : -1;
        assert_int_equal(fl_sa_masks_add(many, seed, sign), 0);
        assert_int_equal(fl_sa_prg(seed, 100, N, 32, w), 0);
        for (size_t i = 0; i < N; i++)
            acc[i] += sign > 0 ? w[i] : -w[i];
    }
    assert_int_equal(fl_sa_masks_count(many), 37);
    assert_int_equal(fl_sa_masks_apply(many, 100, N, z), 0);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(z[i], acc[i] & 0xfffff);

    /* errors */
    uint8_t seed[32] = {0};
    assert_int_equal(fl_sa_masks_add(many, seed, 0), FL_EINVAL);
    assert_int_equal(fl_sa_masks_add(many, seed, 2), FL_EINVAL);
    memcpy(w, z, N * 4);
    assert_int_equal(fl_sa_masks_apply(many, FL_SA_PRG_MAX_WORDS, 1, z), FL_ERANGE);
    assert_memory_equal(w, z, N * 4);
    assert_null(fl_sa_masks_new(0));
    assert_null(fl_sa_masks_new(33));
    /* no terms: only reduces mod 2^bits */
    fl_sa_masks_t *none = fl_sa_masks_new(8);
    uint32_t v[3] = {0x1ff, 0x100, 7};
    assert_int_equal(fl_sa_masks_apply(none, 0, 3, v), 0);
    assert_int_equal(v[0], 0xff);
    assert_int_equal(v[1], 0);
    assert_int_equal(v[2], 7);
    fl_sa_vec_add(v, (const uint32_t[]){1, 0xff, 0xf9}, 3, 8);
    assert_int_equal(v[0], 0);
    assert_int_equal(v[1], 0xff);
    assert_int_equal(v[2], 0);

    fl_sa_masks_destroy(&none);
    fl_sa_masks_destroy(&many);
    fl_sa_masks_destroy(&m4);
    fl_sa_masks_destroy(&m1);
    fl_sa_masks_destroy(&srv);
    assert_null(srv);
    fl_sa_masks_destroy(&srv);
    fl_sa_masks_destroy(NULL);
    free(x4), free(x1), free(y4), free(y1), free(z), free(w), free(acc);
}

/* ---- envelopes ---- */

static void
test_envelope(void **state)
{
    (void)state;
    uint8_t key[32], sid[32], ssk[36], sb[36], osk[36], ob[36], env[FL_SA_ENVELOPE_LEN],
        env2[FL_SA_ENVELOPE_LEN];
    assert_int_equal(FL_SA_ENVELOPE_LEN, 128);
    assert_int_equal(FL_SA_ENVELOPE_PLAIN_LEN, 88);
    randombytes_buf(key, 32);
    s_sid0(sid);
    randombytes_buf(ssk, 36);
    randombytes_buf(sb, 36);
    assert_int_equal(fl_sa_envelope_seal(key, sid, 3, 9, ssk, sb, env), 0);
    assert_int_equal(fl_sa_envelope_seal(key, sid, 3, 9, ssk, sb, env2), 0);
    assert_memory_not_equal(env, env2, 24); /* random nonces */
    assert_int_equal(fl_sa_envelope_open(key, sid, 3, 9, env, osk, ob), 0);
    assert_memory_equal(osk, ssk, 36);
    assert_memory_equal(ob, sb, 36);

    /* wire format: nonce || XChaCha20-Poly1305(src BE || dst BE || ssk || sb,
     * AD = sid || src BE || dst BE), opened here with libsodium directly */
    uint8_t ad[48], plain[88];
    unsigned long long mlen;
    memcpy(ad, sid, 32);
    memset(ad + 32, 0, 16);
    ad[39] = 3;
    ad[47] = 9;
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &mlen, NULL, env + 24, 104,
                                                                ad, 48, env, key),
                     0);
    assert_int_equal(mlen, 88);
    assert_memory_equal(plain, ad + 32, 16);
    assert_memory_equal(plain + 16, ssk, 36);
    assert_memory_equal(plain + 52, sb, 36);

    uint8_t keep_sk[36], keep_b[36];
    memset(osk, 0xaa, 36);
    memset(ob, 0xbb, 36);
    memcpy(keep_sk, osk, 36);
    memcpy(keep_b, ob, 36);
    /* every single-bit change of the envelope is caught */
    for (size_t i = 0; i < FL_SA_ENVELOPE_LEN; i++) {
        memcpy(env2, env, sizeof env2);
        env2[i] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(fl_sa_envelope_open(key, sid, 3, 9, env2, osk, ob), FL_ECRYPTO);
    }
    /* wrong context: key, sid, src, dst (a replay to another receiver) */
    uint8_t key2[32], sid2[32];
    memcpy(key2, key, 32);
    key2[5] ^= 1;
    memcpy(sid2, sid, 32);
    sid2[31] ^= 0x80;
    assert_int_equal(fl_sa_envelope_open(key2, sid, 3, 9, env, osk, ob), FL_ECRYPTO);
    assert_int_equal(fl_sa_envelope_open(key, sid2, 3, 9, env, osk, ob), FL_ECRYPTO);
    assert_int_equal(fl_sa_envelope_open(key, sid, 4, 9, env, osk, ob), FL_ECRYPTO);
    assert_int_equal(fl_sa_envelope_open(key, sid, 3, 8, env, osk, ob), FL_ECRYPTO);
    assert_int_equal(fl_sa_envelope_open(key, sid, 9, 3, env, osk, ob), FL_ECRYPTO);
    assert_non_null(strstr(fl_errmsg(), "does not authenticate"));

    /* an authentic envelope whose inner ids disagree with its AD (a peer
     * holding the key could make one): refused as a protocol error */
    plain[15] = 10; /* dst 10 inside, 9 in the AD */
    unsigned long long clen;
    memcpy(env2, env, 24);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(env2 + 24, &clen, plain, 88, ad,
                                                                48, NULL, env2, key),
                     0);
    assert_int_equal(fl_sa_envelope_open(key, sid, 3, 9, env2, osk, ob), FL_EPROTO);
    assert_memory_equal(osk, keep_sk, 36);
    assert_memory_equal(ob, keep_b, 36);
    /* large ids round-trip (u64, big-endian) */
    assert_int_equal(fl_sa_envelope_seal(key, sid, UINT64_MAX, 1ull << 40, ssk, sb, env), 0);
    assert_int_equal(fl_sa_envelope_open(key, sid, UINT64_MAX, 1ull << 40, env, osk, ob), 0);
    assert_memory_equal(osk, ssk, 36);
}

static void
test_peer_reveal(void **state)
{
    (void)state;
    fl_sa_peer_state_t alive = FL_SA_PEER_SEALED, dead = FL_SA_PEER_SEALED;
    assert_int_equal(fl_sa_peer_reveal(&alive, false), 0);
    assert_int_equal(fl_sa_peer_reveal(&alive, false), 0); /* a repeat is harmless */
    assert_int_equal(fl_sa_peer_reveal(&alive, true), FL_ESTATE);
    assert_int_equal(alive, FL_SA_PEER_REVEALED_B);
    assert_int_equal(fl_sa_peer_reveal(&dead, true), 0);
    assert_int_equal(fl_sa_peer_reveal(&dead, false), FL_ESTATE);
    assert_non_null(strstr(fl_errmsg(), "revealing both"));
    assert_int_equal(dead, FL_SA_PEER_REVEALED_SK);
}

/* ---- encoding ---- */

static void
test_levels(void **state)
{
    (void)state;
    assert_int_equal(fl_sa_check_levels(1u << 16, 32, 10000), 0); /* the default */
    assert_int_equal(fl_sa_check_levels(1u << 22, 32, 1000), 0);
    assert_int_equal(fl_sa_check_levels((1u << 22) + 1, 32, 1000), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "4194304"));
    assert_int_equal(fl_sa_check_levels(1u << 18, 32, 10000), 0);
    assert_int_equal(fl_sa_check_levels((1u << 18) + 1, 32, 10000), FL_EINVAL);
    assert_int_equal(fl_sa_check_levels(1u << 22, 32, 1023), 0);
    assert_int_equal(fl_sa_check_levels(1u << 22, 32, 1024), FL_EINVAL); /* Flower's issue 4 */
    assert_int_equal(fl_sa_check_levels(1u << 31, 32, 1), 0);
    assert_int_equal(fl_sa_check_levels(1, 8, 255), 0);
    assert_int_equal(fl_sa_check_levels(1, 8, 256), FL_EINVAL);
    assert_int_equal(fl_sa_check_levels(0, 32, 10), FL_EINVAL);
    assert_int_equal(fl_sa_check_levels(16, 32, 0), FL_EINVAL);
    assert_int_equal(fl_sa_check_levels(16, 0, 10), FL_EINVAL);
    assert_int_equal(fl_sa_check_levels(16, 33, 10), FL_EINVAL);
}

/* SECAGG.md §1.2 worked example. */
static void
test_quantize_example(void **state)
{
    (void)state;
    const float x[3] = {-1.5f, -0.25f, 0.3f};
    uint32_t q[3];
    fl_rng_t rng;
    fl_rng_seed(&rng, 1, 2);
    int up = 0, draws = 20000;
    for (int i = 0; i < draws; i++) {
        assert_int_equal(fl_sa_quantize(x, 3, 1.0, 65536, fl_sa_rand_fl_rng, &rng, q), 0);
        assert_int_equal(q[0], 0);
        assert_int_equal(q[1], 24576);
        assert_true(q[2] == 42598 || q[2] == 42599);
        up += q[2] == 42599;
    }
    /* (0.3f + 1) * 32768 = 42598.40078: P[up] = 0.4008, sd 0.0035 */
    double f = (double)up / draws;
    assert_true(fabs(f - 0.4008) < 0.015);

    uint32_t s[1] = {3 * 24576};
    float out[1];
    assert_int_equal(s[0], 73728);
    assert_int_equal(fl_sa_dequantize(s, 1, 3, 1.0, 65536, out), 0);
    assert_true(out[0] == -0.75f);
}

/* E[q] = v: the mean over draws approaches v for arbitrary values; with the
 * default (randombytes) source too. */
static void
test_quantize_unbiased(void **state)
{
    (void)state;
    enum { M = 64, DRAWS = 4000 };
    float x[M];
    uint32_t q[M];
    double sum[M] = {0};
    fl_rng_t rng;
    fl_rng_seed(&rng, 5, 0);
    const double c = 0.5, T = 1000;
    for (int i = 0; i < M; i++)
        x[i] = (float)(fl_rng_uniform(&rng) * 1.4 - 0.7); /* some beyond the clip */
    for (int d = 0; d < DRAWS; d++) {
        assert_int_equal(
            fl_sa_quantize(x, M, c, (uint32_t)T, d % 2 ? NULL : fl_sa_rand_fl_rng, &rng, q), 0);
        for (int i = 0; i < M; i++) {
            assert_true(q[i] <= T);
            sum[i] += q[i];
        }
    }
    for (int i = 0; i < M; i++) {
        double xc = fmin(fmax(x[i], -c), c);
        double v = (xc + c) * T / (2 * c);
        double mean = sum[i] / DRAWS;
        /* Bernoulli sd <= 0.5 / sqrt(4000) = 0.0079; 6 sd */
        if (fabs(mean - v) > 0.048)
            fail_msg("element %d: mean %f, v %f", i, mean, v);
        if (xc == c)
            assert_true(sum[i] == T * DRAWS);
        if (xc == -c)
            assert_true(sum[i] == 0);
    }
}

static void
test_quantize_errors(void **state)
{
    (void)state;
    float x[3] = {0.1f, NAN, 0.2f};
    uint32_t q[4] = {9, 9, 9, 9};
    assert_int_equal(fl_sa_quantize(x, 3, 1.0, 100, NULL, NULL, q), FL_ENONFINITE);
    assert_non_null(strstr(fl_errmsg(), "element 1"));
    x[1] = INFINITY;
    assert_int_equal(fl_sa_quantize_weighted(x, 3, 1, 2, 1.0, 100, NULL, NULL, q), FL_ENONFINITE);
    for (int i = 0; i < 4; i++)
        assert_int_equal(q[i], 9); /* nothing written */
    x[1] = 0;
    assert_int_equal(fl_sa_quantize(x, 3, 0.0, 100, NULL, NULL, q), FL_EINVAL);
    assert_int_equal(fl_sa_quantize(x, 3, NAN, 100, NULL, NULL, q), FL_EINVAL);
    assert_int_equal(fl_sa_quantize(x, 3, 1.0, 0, NULL, NULL, q), FL_EINVAL);
    assert_int_equal(fl_sa_quantize_weighted(x, 3, -1, 2, 1.0, 100, NULL, NULL, q), FL_EINVAL);
    assert_int_equal(fl_sa_quantize_weighted(x, 3, 1, 0, 1.0, 100, NULL, NULL, q), FL_EINVAL);
    assert_int_equal(fl_sa_quantize_weighted(x, 3, NAN, 2, 1.0, 100, NULL, NULL, q), FL_EINVAL);

    float out[3];
    uint32_t s[3] = {300, 299, 0};
    assert_int_equal(fl_sa_dequantize(s, 3, 3, 1.0, 100, out), 0);
    assert_int_equal(fl_sa_dequantize(s, 3, 2, 1.0, 100, out), FL_ERANGE); /* 300 > 2 x 100 */
    assert_non_null(strstr(fl_errmsg(), "element 0"));
    assert_int_equal(fl_sa_dequantize(s, 3, 0, 1.0, 100, out), FL_EINVAL);
    assert_int_equal(fl_sa_dequantize(s, 3, 3, -1.0, 100, out), FL_EINVAL);
    uint32_t sw[3] = {0, 100, 100};
    assert_int_equal(fl_sa_dequantize_weighted(sw, 2, 2, 1.0, 100, out, NULL), FL_ERANGE);
    assert_non_null(strstr(fl_errmsg(), "zero"));
    sw[0] = 50;
    sw[2] = 201;
    assert_int_equal(fl_sa_dequantize_weighted(sw, 2, 2, 1.0, 100, out, NULL), FL_ERANGE);
    assert_non_null(strstr(fl_errmsg(), "element 2"));
}

/* Weighted encoding: element 0 carries w_q, the decoded mean is the
 * w_q-weighted mean of the clipped inputs within the quantization bound. */
static void
test_quantize_weighted(void **state)
{
    (void)state;
    enum { M = 10 };
    const double c = 2.0, W = 1000;
    const uint32_t T = 1u << 16;
    const double weights[3] = {500, 250, 5000}; /* the last is capped at W */
    float x[3][M];
    uint32_t q[3][M + 1], s[M + 1] = {0};
    fl_rng_t rng;
    fl_rng_seed(&rng, 11, 0);
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < M; i++)
            x[k][i] = (float)(fl_rng_normal(&rng));
        assert_int_equal(fl_sa_quantize_weighted(x[k], M, weights[k], W, c, T,
                                                 fl_sa_rand_fl_rng, &rng, q[k]),
                         0);
        fl_sa_vec_add(s, q[k], M + 1, 32);
    }
    assert_int_equal(q[0][0], 32768);
    assert_int_equal(q[1][0], 16384);
    assert_int_equal(q[2][0], 65536);
    float out[M];
    double wsum = 0;
    assert_int_equal(fl_sa_dequantize_weighted(s, M, 3, c, T, out, &wsum), 0);
    assert_true(fabs(wsum - 1.75) < 1e-12);
    for (int i = 0; i < M; i++) {
        double num = 0;
        for (int k = 0; k < 3; k++)
            num += fmin(fmax((double)x[k][i] * q[k][0] / T, -c), c);
        double want = num / wsum;
        double bound = 3 * (2 * c / T) / wsum + 1e-6;
        if (fabs(out[i] - want) > bound)
            fail_msg("element %d: %f, want %f (bound %g)", i, out[i], want, bound);
    }
}

/* ---- a whole round, in process ---- */

/* When a client stops: never, before sending its shares (not in U2), after
 * sharing but before its masked input (U2 \ U3), or after its masked input
 * but before answering the unmask request (in U3, silent in R4). */
enum { LIVE = 0, DROP_R1 = 1, DROP_R2 = 2, DROP_R4 = 3 };

typedef struct {
    fl_sa_keypair_t *c, *s;
    uint8_t b[32];
    float *x;
    uint32_t *q, *y;
    int stage;
    /* what this client holds of each owner's secrets (indexed by owner) */
    uint8_t (*sh_sk)[FL_SA_SHARE_LEN];
    uint8_t (*sh_b)[FL_SA_SHARE_LEN];
    bool *has;
    fl_sa_peer_state_t *reveal;
} s_client_t;

typedef struct {
    uint32_t n, k, t;
    bool full, weighted;
    unsigned bits;
    uint32_t levels;
    double clip;
    size_t m;
    uint64_t seed;
    int n_r1, n_r2, n_r4; /* how many drop where; placed at random */
    const int *stages;    /* or an explicit stage per client */
} s_round_t;

static bool
s_in_u2(const s_client_t *c)
{
    return c->stage != DROP_R1;
}

static bool
s_in_u3(const s_client_t *c)
{
    return c->stage == LIVE || c->stage == DROP_R4;
}

/*
 * Run one round; returns 0 and checks the result, or returns the error the
 * server hit unmasking (FL_ERANGE when some secret had fewer than t shares).
 */
static int
s_run_round(const s_round_t *r)
{
    const uint32_t n = r->n;
    const size_t words = r->m + (r->weighted ? 1 : 0);
    fl_rng_t rng;
    fl_rng_seed(&rng, r->seed, 77);
    uint8_t nonce[32], sid[32];
    randombytes_buf(nonce, sizeof nonce);
    fl_sa_sid(nonce, (const uint8_t *)"setup", 5, sid);

    fl_sagraph_params_t gp = {.n = n, .k = r->full ? n - 1 : r->k, .t = r->t, .full = r->full};
    fl_sagraph_t *g = NULL;
    assert_int_equal(fl_sagraph_new(&gp, sid, &g), 0);
    const uint32_t size = fl_sagraph_size(g), t = r->t;
    assert_int_equal(fl_sa_check_levels(r->levels, r->bits, n), 0);

    s_client_t *cl = calloc(n, sizeof *cl);
    uint32_t *perm = malloc(n * sizeof *perm);
    for (uint32_t u = 0; u < n; u++)
        perm[u] = u;
    fl_rng_shuffle(&rng, perm, n);
    for (uint32_t i = 0; i < n; i++) {
        int st = LIVE;
        if (r->stages)
            st = r->stages[i];
        else if (i < (uint32_t)r->n_r1)
            st = DROP_R1;
        else if (i < (uint32_t)(r->n_r1 + r->n_r2))
            st = DROP_R2;
        else if (i < (uint32_t)(r->n_r1 + r->n_r2 + r->n_r4))
            st = DROP_R4;
        cl[r->stages ? i : perm[i]].stage = st;
    }

    /* Setup and R0: keys, b, the update and its encoding */
    for (uint32_t u = 0; u < n; u++) {
        s_client_t *c = &cl[u];
        c->c = fl_sa_keypair_new();
        c->s = fl_sa_keypair_new();
        assert_non_null(c->c);
        assert_non_null(c->s);
        randombytes_buf(c->b, 32);
        c->x = malloc(r->m * sizeof *c->x);
        c->q = malloc(words * sizeof *c->q);
        c->y = malloc(words * sizeof *c->y);
        for (size_t i = 0; i < r->m; i++)
            c->x[i] = (float)(fl_rng_normal(&rng) * r->clip * 0.6);
        double weight = 1 + (double)fl_rng_below(&rng, 900); /* some above W = 500 */
        if (r->weighted)
            assert_int_equal(fl_sa_quantize_weighted(c->x, r->m, weight, 500, r->clip, r->levels,
                                                     fl_sa_rand_fl_rng, &rng, c->q),
                             0);
        else
            assert_int_equal(
                fl_sa_quantize(c->x, r->m, r->clip, r->levels, fl_sa_rand_fl_rng, &rng, c->q), 0);
        c->sh_sk = calloc(n, FL_SA_SHARE_LEN);
        c->sh_b = calloc(n, FL_SA_SHARE_LEN);
        c->has = calloc(n, sizeof *c->has);
        c->reveal = calloc(n, sizeof *c->reveal);
    }

    /* R1': each client in U2 shares s_sk and b over N(u) (x = 1 + position),
     * keeps its own share and seals the others; the server only routes. */
    uint8_t *mail = calloc((size_t)n * n, FL_SA_ENVELOPE_LEN); /* [src][dst] */
    uint32_t *xs = malloc(size * sizeof *xs);
    uint8_t *shs = malloc((size_t)size * FL_SA_SHARE_LEN);
    uint8_t *shb = malloc((size_t)size * FL_SA_SHARE_LEN);
    for (uint32_t p = 0; p < size; p++)
        xs[p] = 1 + p;
    for (uint32_t u = 0; u < n; u++) {
        if (!s_in_u2(&cl[u]))
            continue;
        assert_int_equal(fl_shamir_split(fl_sa_keypair_sk(cl[u].s), t, size, xs, shs), 0);
        assert_int_equal(fl_shamir_split(cl[u].b, t, size, xs, shb), 0);
        for (uint32_t p = 0; p < size; p++) {
            uint32_t v = fl_sagraph_at(g, u, p);
            const uint8_t *ss = shs + (size_t)p * FL_SA_SHARE_LEN;
            const uint8_t *sb = shb + (size_t)p * FL_SA_SHARE_LEN;
            if (v == u) {
                memcpy(cl[u].sh_sk[u], ss, FL_SA_SHARE_LEN);
                memcpy(cl[u].sh_b[u], sb, FL_SA_SHARE_LEN);
                cl[u].has[u] = true;
                continue;
            }
            uint8_t key[32];
            assert_int_equal(fl_sa_derive(cl[u].c, fl_sa_keypair_pk(cl[v].c), sid,
                                          FL_SA_LABEL_SHARE_ENC, key),
                             0);
            assert_int_equal(fl_sa_envelope_seal(key, sid, u, v, ss, sb,
                                                 mail + ((size_t)u * n + v) * FL_SA_ENVELOPE_LEN),
                             0);
        }
    }

    /* R2/R2': clients that go on open their peers' envelopes (from N(u) ∩
     * U2), then mask their input against the same peers, in chunks. */
    for (uint32_t u = 0; u < n; u++) {
        s_client_t *c = &cl[u];
        if (!s_in_u3(c))
            continue;
        fl_sa_masks_t *mk = fl_sa_masks_new(r->bits);
        uint8_t seed[32];
        fl_sa_self_seed(c->b, sid, seed);
        assert_int_equal(fl_sa_masks_add(mk, seed, 1), 0);
        uint32_t peers = 0;
        for (uint32_t p = 0; p < size; p++) {
            uint32_t v = fl_sagraph_at(g, u, p);
            if (v == u || !s_in_u2(&cl[v]))
                continue;
            uint8_t key[32];
            assert_int_equal(fl_sa_derive(c->c, fl_sa_keypair_pk(cl[v].c), sid,
                                          FL_SA_LABEL_SHARE_ENC, key),
                             0);
            assert_int_equal(fl_sa_envelope_open(key, sid, v, u,
                                                 mail + ((size_t)v * n + u) * FL_SA_ENVELOPE_LEN,
                                                 c->sh_sk[v], c->sh_b[v]),
                             0);
            c->has[v] = true;
            peers++;
            assert_int_equal(fl_sa_derive(c->s, fl_sa_keypair_pk(cl[v].s), sid,
                                          FL_SA_LABEL_PAIRWISE_MASK, seed),
                             0);
            assert_int_equal(fl_sa_masks_add(mk, seed, fl_sa_pair_sign(u, v)), 0);
        }
        if (peers + 1 < t) { /* the client would abort: below threshold */
            fl_sa_masks_destroy(&mk);
            c->stage = DROP_R2;
            continue;
        }
        memcpy(c->y, c->q, words * sizeof *c->y);
        for (size_t at = 0; at < words;) {
            size_t len = 1 + (size_t)fl_rng_below(&rng, 50);
            if (len > words - at)
                len = words - at;
            assert_int_equal(fl_sa_masks_apply(mk, at, len, c->y + at), 0);
            at += len;
        }
        size_t same = 0;
        for (size_t i = 0; i < words; i++)
            same += c->y[i] == c->q[i];
        assert_true(same <= words / 8 + 2); /* the masked input hides q */
        fl_sa_masks_destroy(&mk);
        sodium_memzero(seed, sizeof seed);
    }

    /* Server: the running sum of masked inputs of U3. */
    uint32_t *z = calloc(words, sizeof *z);
    uint32_t n3 = 0;
    for (uint32_t u = 0; u < n; u++)
        if (s_in_u3(&cl[u])) {
            fl_sa_vec_add(z, cl[u].y, words, r->bits);
            n3++;
        }

    /* R4/R4': each live client reveals, per neighbour, the b share of the
     * alive (in U3) and the s_sk share of the dead (U2 \ U3); never both. */
    uint8_t *rb = calloc((size_t)n * size, FL_SA_SHARE_LEN); /* [owner][pos] */
    uint8_t *rs = calloc((size_t)n * size, FL_SA_SHARE_LEN);
    bool *got_b = calloc((size_t)n * size, 1), *got_s = calloc((size_t)n * size, 1);
    for (uint32_t h = 0; h < n; h++) {
        s_client_t *c = &cl[h];
        if (c->stage != LIVE)
            continue;
        for (uint32_t p = 0; p < size; p++) {
            uint32_t o = fl_sagraph_at(g, h, p);
            if (!c->has[o])
                continue;
            bool dead = !s_in_u3(&cl[o]);
            assert_int_equal(fl_sa_peer_reveal(&c->reveal[o], dead), 0);
            /* a server asking for the other share too is refused */
            assert_int_equal(fl_sa_peer_reveal(&c->reveal[o], !dead), FL_ESTATE);
            int64_t pos = fl_sagraph_position(g, o, h);
            assert_true(pos >= 0);
            size_t at = (size_t)o * size + (size_t)pos;
            if (dead) {
                memcpy(rs + at * FL_SA_SHARE_LEN, c->sh_sk[o], FL_SA_SHARE_LEN);
                got_s[at] = true;
            } else {
                memcpy(rb + at * FL_SA_SHARE_LEN, c->sh_b[o], FL_SA_SHARE_LEN);
                got_b[at] = true;
            }
        }
    }

    /* Server unmasking. */
    int rc = 0;
    fl_shamir_rec_t *rec = fl_shamir_rec_new(t);
    fl_sa_masks_t *um = fl_sa_masks_new(r->bits);
    uint32_t *cx = malloc(size * sizeof *cx);
    uint8_t *cs = malloc((size_t)size * FL_SA_SHARE_LEN);
    for (uint32_t o = 0; o < n && rc == 0; o++) {
        if (!s_in_u2(&cl[o]))
            continue;
        bool alive = s_in_u3(&cl[o]);
        const uint8_t *src = alive ? rb : rs;
        const bool *got = alive ? got_b : got_s;
        size_t cnt = 0;
        for (uint32_t p = 0; p < size; p++) {
            size_t at = (size_t)o * size + p;
            if (!got[at])
                continue;
            cx[cnt] = 1 + p;
            memcpy(cs + cnt * FL_SA_SHARE_LEN, src + at * FL_SA_SHARE_LEN, FL_SA_SHARE_LEN);
            cnt++;
        }
        uint8_t secret[32];
        rc = fl_shamir_rec_run(rec, cnt, cx, cs, secret);
        if (rc < 0)
            break;
        if (alive) {
            assert_memory_equal(secret, cl[o].b, 32);
            uint8_t seed[32];
            fl_sa_self_seed(secret, sid, seed);
            assert_int_equal(fl_sa_masks_add(um, seed, -1), 0);
        } else {
            fl_sa_keypair_t *kd = NULL;
            assert_int_equal(fl_sa_keypair_from_secret(secret, &kd), 0);
            /* the reconstructed key matches the one d advertised */
            assert_memory_equal(fl_sa_keypair_pk(kd), fl_sa_keypair_pk(cl[o].s), 32);
            for (uint32_t p = 0; p < size; p++) {
                uint32_t v = fl_sagraph_at(g, o, p);
                if (v == o || !s_in_u3(&cl[v]))
                    continue;
                uint8_t seed[32];
                assert_int_equal(fl_sa_derive(kd, fl_sa_keypair_pk(cl[v].s), sid,
                                              FL_SA_LABEL_PAIRWISE_MASK, seed),
                                 0);
                assert_int_equal(fl_sa_masks_add(um, seed, -fl_sa_pair_sign(v, o)), 0);
            }
            fl_sa_keypair_destroy(&kd);
        }
        sodium_memzero(secret, sizeof secret);
    }
    if (rc == 0) {
        /* unmask in chunks of 64 words, O(chunk) working memory */
        for (size_t at = 0; at < words; at += 64)
            assert_int_equal(fl_sa_masks_apply(um, at, words - at < 64 ? words - at : 64, z + at),
                             0);
        /* exact: z = sum of the survivors' encodings mod 2^bits */
        uint32_t mask = r->bits == 32 ? UINT32_MAX : (1u << r->bits) - 1;
        for (size_t i = 0; i < words; i++) {
            uint32_t want = 0;
            for (uint32_t u = 0; u < n; u++)
                if (s_in_u3(&cl[u]))
                    want += cl[u].q[i];
            if (z[i] != (want & mask))
                fail_msg("word %zu: unmasked %u, want %u", i, z[i], want & mask);
        }
        /* and the decoding is within the quantization bound */
        float *out = malloc(r->m * sizeof *out);
        double step = 2 * r->clip / r->levels;
        if (r->weighted) {
            double wsum;
            assert_int_equal(
                fl_sa_dequantize_weighted(z, r->m, n3, r->clip, r->levels, out, &wsum), 0);
            for (size_t i = 0; i < r->m; i++) {
                double num = 0;
                for (uint32_t u = 0; u < n; u++)
                    if (s_in_u3(&cl[u]))
                        num += fmin(fmax((double)cl[u].x[i] * cl[u].q[0] / r->levels, -r->clip),
                                    r->clip);
                double want = num / wsum;
                assert_true(fabs(out[i] - want) <= n3 * step / wsum + 1e-5 * (1 + fabs(want)));
            }
        } else {
            assert_int_equal(fl_sa_dequantize(z, r->m, n3, r->clip, r->levels, out), 0);
            for (size_t i = 0; i < r->m; i++) {
                double want = 0;
                for (uint32_t u = 0; u < n; u++)
                    if (s_in_u3(&cl[u]))
                        want += fmin(fmax(cl[u].x[i], -r->clip), r->clip);
                assert_true(fabs(out[i] - want) <= n3 * step + 1e-5 * (1 + fabs(want)));
            }
        }
        free(out);
    }

    for (uint32_t u = 0; u < n; u++) {
        fl_sa_keypair_destroy(&cl[u].c);
        fl_sa_keypair_destroy(&cl[u].s);
        free(cl[u].x), free(cl[u].q), free(cl[u].y);
        free(cl[u].sh_sk), free(cl[u].sh_b), free(cl[u].has), free(cl[u].reveal);
    }
    free(cl), free(perm), free(mail), free(xs), free(shs), free(shb), free(z);
    free(rb), free(rs), free(got_b), free(got_s), free(cx), free(cs);
    fl_shamir_rec_destroy(&rec);
    fl_sa_masks_destroy(&um);
    fl_sagraph_destroy(&g);
    return rc;
}

/* Full graph, n = 3..64, dropouts at every phase up to n - t in all. */
static void
test_round_full(void **state)
{
    (void)state;
    static const uint32_t ns[] = {3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 24, 33, 48, 64};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        uint32_t n = ns[i], t = fl_sagraph_full_threshold(n);
        int slack = (int)(n - t); /* dropouts the round survives */
        s_round_t r = {.n = n, .t = t, .full = true, .bits = 32, .levels = 1u << 16,
                       .clip = 1.0, .m = 37 + i * 11, .seed = 100 + i,
                       .n_r1 = slack / 3, .n_r2 = (slack + 1) / 3,
                       .n_r4 = slack - slack / 3 - (slack + 1) / 3, .weighted = (i % 3 == 2)};
        if (s_run_round(&r) != 0)
            fail_msg("full graph n=%u t=%u: %s", n, t, fl_errmsg());
    }
}

/* Harary graphs (SecAgg+), including a modulus below 2^32. */
static void
test_round_harary(void **state)
{
    (void)state;
    /* n = 64, k = 16, t = 9: six dropouts leave >= 11 responders in any
     * neighbourhood of 17 */
    s_round_t r = {.n = 64, .k = 16, .t = 9, .bits = 32, .levels = 1u << 16, .clip = 0.5,
                   .m = 300, .seed = 1, .n_r1 = 2, .n_r2 = 2, .n_r4 = 2};
    assert_int_equal(s_run_round(&r), 0);
    /* n = 33, k = 8, t = 5, M = 2^20, T = 2^12 (the no-wrap rule allows 2^14) */
    s_round_t r2 = {.n = 33, .k = 8, .t = 5, .bits = 20, .levels = 1u << 12, .clip = 1.0,
                    .m = 129, .seed = 2, .n_r1 = 1, .n_r2 = 1, .n_r4 = 1, .weighted = true};
    assert_int_equal(s_run_round(&r2), 0);
    /* the finder's parameters for n = 50 (gamma .05, delta .1, SH): (k, t) */
    fl_sagraph_params_t p;
    assert_int_equal(fl_sagraph_choose(50, .05, .1, FL_SAGRAPH_SEMI_HONEST, 0, &p), 0);
    assert_false(p.full);
    s_round_t r3 = {.n = 50, .k = p.k, .t = p.t, .bits = 32, .levels = 1u << 16, .clip = 1.0,
                    .m = 64, .seed = 3, .n_r2 = 1};
    assert_int_equal(s_run_round(&r3), 0);
}

/* Below threshold the server cannot unmask and says so cleanly. */
static void
test_round_below_threshold(void **state)
{
    (void)state;
    /* full graph n = 6, t = 5: two drop after sharing, four answer */
    s_round_t r = {.n = 6, .t = 5, .full = true, .bits = 32, .levels = 1u << 16, .clip = 1.0,
                   .m = 20, .seed = 4, .n_r2 = 2};
    assert_int_equal(s_run_round(&r), FL_ERANGE);
    assert_non_null(strstr(fl_errmsg(), "fewer than the threshold"));
    /* Harary n = 12, k = 4, t = 4: nine clients silent at unmasking leave
     * three responders, wherever the sid-derived ring puts them */
    s_round_t r2 = {.n = 12, .k = 4, .t = 4, .bits = 32, .levels = 1u << 16, .clip = 1.0,
                    .m = 20, .seed = 5, .n_r4 = 9};
    assert_int_equal(s_run_round(&r2), FL_ERANGE);
    /* and at the limit it still works: full graph n = 6, t = 5, one dropout */
    s_round_t r3 = {.n = 6, .t = 5, .full = true, .bits = 32, .levels = 1u << 16, .clip = 1.0,
                    .m = 20, .seed = 6, .n_r2 = 1};
    assert_int_equal(s_run_round(&r3), 0);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kdf_vectors),
        cmocka_unit_test(test_derive_errors),
        cmocka_unit_test(test_seed_sid_vectors),
        cmocka_unit_test(test_prg_vectors),
        cmocka_unit_test(test_prg_chunks),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_peer_reveal),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_quantize_example),
        cmocka_unit_test(test_quantize_unbiased),
        cmocka_unit_test(test_quantize_errors),
        cmocka_unit_test(test_quantize_weighted),
        cmocka_unit_test(test_round_full),
        cmocka_unit_test(test_round_harary),
        cmocka_unit_test(test_round_below_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
