/*
 * bench_secagg.c — the cost of secure aggregation (fl_secagg, fl_shamir,
 * fl_sagraph) for m = 1M parameters, next to baselines measured in the same
 * run (SECAGG.md §1.7; issue 5 "Bench").
 *
 *   1. Client mask expansion: one client's masked vector (self mask + k
 *      pairwise ChaCha20 streams, applied chunk by chunk with
 *      fl_sa_masks_apply as a client does), as GB/s of keystream generated,
 *      next to raw crypto_stream_chacha20_ietf throughput (one 4 MiB buffer
 *      per call) and the same function called on 4 KiB pieces (the library's
 *      call pattern). Goal: >= 80% of raw.
 *   2. The client's other per-round crypto: 2 key pairs, X25519 agreements
 *      with k neighbours (2 each: share-enc and pairwise-mask keys), Shamir
 *      split of s_sk and b into k+1 shares, k envelopes sealed (and, for
 *      reference, the k envelopes opened at R2). With the active-server
 *      model (signed keys, consistency round) on top: the two Ed25519
 *      signatures a client makes (R0, R3) and the verifications it does
 *      (k + 1 certificates and R0 signatures at R1, k R3 signatures at R4).
 *   3. Server: for n = 10, 50, 100 clients (full graph up to 50, then the
 *      SecAgg+ graph of fl_sagraph_choose with gamma 0.05, delta 0.2,
 *      semi-honest) with 0% and 20% of the clients dropping after sharing
 *      (in U2, not U3): Shamir reconstruction, X25519 for the dropped
 *      clients' pairwise seeds, PRG expansion removing the masks from the
 *      summed vector. For comparison, n = 100 also with the semi-malicious
 *      SecAgg+ graph and with the full graph. Next to them the server's
 *      streaming sum of the |U3| masked vectors mod 2^32 (fl_sa_vec_add,
 *      a pool of 8 distinct vectors reused cyclically) and, as the plaintext
 *      reference, the FedAvg sum of |U3| float vectors (fl_aggr_add).
 *
 * Every server row is a real round: each client has its own keys, b, Shamir
 * shares and pairwise seeds derived with X25519 from its peers' public keys;
 * the server reconstructs from the shares the survivors reveal. The clients
 * mask (with their own seeds, in their own chunk sizes) three windows of the
 * 1M vector — the start, an unaligned middle and the end — holding small
 * random quantized inputs; the rest of the summed vector is random filler
 * (its content does not change the cost). The server unmasks the whole
 * vector, and the windows must then equal the plaintext sum of the
 * survivors' quantized inputs exactly, and every reconstructed secret must
 * equal the original: otherwise the bench aborts, since a benchmark that
 * computes a wrong result is worthless. Masking all n full client vectors
 * would cost n (k + 1) x 4 MB of keystream (over 10 GB for n = 100), which
 * part 1 already measures per client. The first window is also decoded
 * (fl_sa_dequantize) and compared with the float sum of the clipped inputs.
 *
 * The machine is shared with other workers (2 cores): figures are noisy, best
 * of a few repetitions where a run is short. Nothing passes or fails on time.
 *
 * Usage: bench_secagg [quick]   ("quick": n = 10 and 50 only)
 */
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "fl_aggr.h"
#include "fl_identity.h"
#include "fl_rng.h"
#include "fl_sagraph.h"
#include "fl_secagg.h"
#include "fl_shamir.h"
#include "fl_util.h"

#define S_M 1000000u          /* parameters */
#define S_POOL 8              /* distinct vectors reused cyclically in the sum timings */
#define S_BULK (4u << 20)     /* raw keystream: bytes per call */
#define S_PIECE 4096u         /* raw keystream: the library's piece size */
#define S_KS_TOTAL (64u << 20) /* raw keystream bytes per timing */
#define S_FULL_MAX 50u        /* full graph up to this n */
#define S_GAMMA 0.05
#define S_DELTA 0.2
#define S_CLIP 1.0
#define S_LEVELS (1u << 16)

static void
s_die(const char *what, int rc)
{
    fprintf(stderr, "bench_secagg: %s failed: %s (%s)\n", what, fl_errmsg(), fl_strerror(rc));
    exit(1);
}

#define S_CHECK(call)                                                                              \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            s_die(#call, rc_);                                                                     \
    } while (0)

__attribute__((format(printf, 1, 2), noreturn)) static void
s_wrong(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_secagg: WRONG RESULT: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static double
s_min(double a, double b)
{
    return a < b ? a : b;
}

static uint32_t *
s_alloc_u32(size_t n)
{
    uint32_t *p = fl_xmalloc_aligned(n * sizeof *p);
    memset(p, 0, n * sizeof *p); /* first touch outside the timings */
    return p;
}

static fl_sa_keypair_t *
s_keypair(void)
{
    fl_sa_keypair_t *kp = fl_sa_keypair_new();
    if (!kp)
        s_die("fl_sa_keypair_new", FL_ENOMEM);
    return kp;
}

/* ---- 1. raw keystream and client mask expansion ---- */

/* GB/s of crypto_stream_chacha20_ietf: S_KS_TOTAL bytes in calls of `piece`
 * bytes into buf (piece bytes), best of reps. */
static double
s_raw_keystream(uint8_t *buf, size_t piece, int reps)
{
    uint8_t key[32], nonce[12] = {0};
    randombytes_buf(key, sizeof key);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = fl_now();
        for (size_t done = 0; done < S_KS_TOTAL; done += piece) {
            /* a fresh block counter per piece, as the library positions it */
            crypto_stream_chacha20_ietf_xor_ic(buf, buf, piece, nonce,
                                               (uint32_t)(done / 64), key);
        }
        best = s_min(best, fl_now() - t0);
    }
    return (double)S_KS_TOTAL / best / 1e9;
}

/* One client's masked vector y = q + PRG(b) + sum of k signed pairwise
 * streams, in chunks; returns seconds (best of reps). Checks sample words
 * against fl_sa_prg. */
static double
s_client_mask(unsigned k, const uint32_t *q, uint32_t *y, int reps)
{
    fl_sa_masks_t *mk = fl_sa_masks_new(32);
    if (!mk)
        s_die("fl_sa_masks_new", FL_ENOMEM);
    uint8_t(*seeds)[32] = fl_xmalloc((k + 1) * sizeof *seeds);
    int *signs = fl_xmalloc((k + 1) * sizeof *signs);
    for (unsigned i = 0; i <= k; i++) {
        randombytes_buf(seeds[i], 32);
        signs[i] = i == 0 || i % 2 ? 1 : -1; /* self mask +, pairwise half each */
        S_CHECK(fl_sa_masks_add(mk, seeds[i], signs[i]));
    }
    const size_t chunk = 65536; /* a client masks as it serializes frames */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = fl_now();
        memcpy(y, q, S_M * sizeof *y);
        for (size_t at = 0; at < S_M; at += chunk) {
            size_t len = S_M - at < chunk ? S_M - at : chunk;
            S_CHECK(fl_sa_masks_apply(mk, at, len, y + at));
        }
        best = s_min(best, fl_now() - t0);
    }
    /* the result is what the spec says, at a few positions */
    const size_t probe[] = {0, 1, 15, 16, 1023, 1024, 65535, 65536, 500001, S_M - 1};
    for (size_t p = 0; p < sizeof probe / sizeof probe[0]; p++) {
        uint32_t want = q[probe[p]];
        for (unsigned i = 0; i <= k; i++) {
            uint32_t w;
            S_CHECK(fl_sa_prg(seeds[i], probe[p], 1, 32, &w));
            want += signs[i] > 0 ? w : (uint32_t)-w;
        }
        if (y[probe[p]] != want)
            s_wrong("masked word %zu is %u, want %u", probe[p], y[probe[p]], want);
    }
    sodium_memzero(seeds, (k + 1) * sizeof *seeds);
    free(seeds);
    free(signs);
    fl_sa_masks_destroy(&mk);
    return best;
}

/* The masking seconds of k = 16, 40, 99, for part 2's totals. */
static double s_mask_sec[3];
static const unsigned s_ks[3] = {16, 40, 99};

static void
s_bench_masks(void)
{
    uint8_t *buf = fl_xmalloc_aligned(S_BULK);
    memset(buf, 0, S_BULK);
    double bulk = 0, piece = 0;
    /* interleaved, best of each */
    for (int r = 0; r < 3; r++) {
        double b = s_raw_keystream(buf, S_BULK, 1), p = s_raw_keystream(buf, S_PIECE, 1);
        bulk = b > bulk ? b : bulk;
        piece = p > piece ? p : piece;
    }
    free(buf);
    printf("1. client mask expansion, m = %u (4 MB per stream), best of 3\n", S_M);
    printf("   raw crypto_stream_chacha20_ietf: %.2f GB/s in 4 MiB calls, %.2f GB/s in 4 KiB "
           "calls\n",
           bulk, piece);
    printf("   %4s %8s %10s %8s %12s %12s\n", "k", "streams", "keystream", "ms", "GB/s",
           "% of raw");

    uint32_t *q = s_alloc_u32(S_M), *y = s_alloc_u32(S_M);
    fl_rng_t rng;
    fl_rng_seed(&rng, 11, 1);
    for (size_t i = 0; i < S_M; i++)
        q[i] = (uint32_t)fl_rng_below(&rng, S_LEVELS + 1);
    for (int i = 0; i < 3; i++) {
        unsigned k = s_ks[i];
        double sec = s_client_mask(k, q, y, k > 50 ? 2 : 3);
        s_mask_sec[i] = sec;
        double bytes = (double)(k + 1) * S_M * 4;
        double gbs = bytes / sec / 1e9;
        printf("   %4u %8u %7.0f MB %8.1f %12.2f %5.0f%% (%3.0f%% of 4 KiB calls)%s\n", k, k + 1,
               bytes / 1e6, sec * 1e3, gbs, 100 * gbs / bulk, 100 * gbs / piece,
               k == 99 ? "  [full graph, n = 100]" : "");
        fflush(stdout);
    }
    free(q);
    free(y);
}

/* ---- 2. client per-round crypto besides masks ---- */

static void
s_bench_client_crypto(void)
{
    printf("\n2. client per-round crypto besides masks, ms, best of 10\n");
    printf("   (t = floor(2(k+1)/3)+1, an upper-end threshold; X25519 = 2k agreements)\n");
    printf("   %4s %4s %8s %9s %9s %9s %9s %9s %10s %12s\n", "k", "t", "keygen", "X25519",
           "us/agree", "shamir", "seal k", "open k", "total", "+masks 1M");
    uint8_t nonce[32], sid[32];
    randombytes_buf(nonce, sizeof nonce);
    fl_sa_sid(nonce, (const uint8_t *)"bench", 5, sid);
    for (int ki = 0; ki < 3; ki++) {
        const unsigned k = s_ks[ki], size = k + 1, t = 2 * size / 3 + 1;
        const uint64_t me = 0;
        fl_sa_keypair_t *c = s_keypair(), *s = s_keypair();
        fl_sa_keypair_t **pc = fl_xcalloc(k, sizeof *pc), **ps = fl_xcalloc(k, sizeof *ps);
        for (unsigned v = 0; v < k; v++) {
            pc[v] = s_keypair();
            ps[v] = s_keypair();
        }
        uint8_t(*key)[32] = fl_xmalloc(k * sizeof *key);
        uint8_t(*seed)[32] = fl_xmalloc(k * sizeof *seed);
        uint32_t *xs = fl_xmalloc(size * sizeof *xs);
        for (unsigned p = 0; p < size; p++)
            xs[p] = 1 + p;
        uint8_t *shs = fl_xmalloc((size_t)size * FL_SA_SHARE_LEN);
        uint8_t *shb = fl_xmalloc((size_t)size * FL_SA_SHARE_LEN);
        uint8_t *out = fl_xmalloc((size_t)k * FL_SA_ENVELOPE_LEN);
        uint8_t *in = fl_xmalloc((size_t)k * FL_SA_ENVELOPE_LEN);
        uint8_t b[32], osk[FL_SA_SHARE_LEN], ob[FL_SA_SHARE_LEN];
        randombytes_buf(b, sizeof b);
        /* the envelopes the peers sealed for us (same symmetric key) */
        for (unsigned v = 0; v < k; v++) {
            uint8_t kv[32];
            S_CHECK(fl_sa_derive(pc[v], fl_sa_keypair_pk(c), sid, FL_SA_LABEL_SHARE_ENC, kv));
            S_CHECK(fl_sa_envelope_seal(kv, sid, 1 + v, me, osk, ob,
                                        in + (size_t)v * FL_SA_ENVELOPE_LEN));
        }
        double best[5] = {1e30, 1e30, 1e30, 1e30, 1e30};
        for (int r = 0; r < 10; r++) {
            double t0 = fl_now();
            fl_sa_keypair_t *c2 = s_keypair(), *s2 = s_keypair();
            double t1 = fl_now();
            fl_sa_keypair_destroy(&c2);
            fl_sa_keypair_destroy(&s2);
            double t2 = fl_now();
            for (unsigned v = 0; v < k; v++) {
                S_CHECK(fl_sa_derive(c, fl_sa_keypair_pk(pc[v]), sid, FL_SA_LABEL_SHARE_ENC,
                                     key[v]));
                S_CHECK(fl_sa_derive(s, fl_sa_keypair_pk(ps[v]), sid, FL_SA_LABEL_PAIRWISE_MASK,
                                     seed[v]));
            }
            double t3 = fl_now();
            S_CHECK(fl_shamir_split(fl_sa_keypair_sk(s), t, size, xs, shs));
            S_CHECK(fl_shamir_split(b, t, size, xs, shb));
            double t4 = fl_now();
            for (unsigned v = 0; v < k; v++) /* position 0 is our own share */
                S_CHECK(fl_sa_envelope_seal(key[v], sid, me, 1 + v,
                                            shs + (size_t)(v + 1) * FL_SA_SHARE_LEN,
                                            shb + (size_t)(v + 1) * FL_SA_SHARE_LEN,
                                            out + (size_t)v * FL_SA_ENVELOPE_LEN));
            double t5 = fl_now();
            for (unsigned v = 0; v < k; v++)
                S_CHECK(fl_sa_envelope_open(key[v], sid, 1 + v, me,
                                            in + (size_t)v * FL_SA_ENVELOPE_LEN, osk, ob));
            double t6 = fl_now();
            best[0] = s_min(best[0], t1 - t0);
            best[1] = s_min(best[1], t3 - t2);
            best[2] = s_min(best[2], t4 - t3);
            best[3] = s_min(best[3], t5 - t4);
            best[4] = s_min(best[4], t6 - t5);
        }
        double total = best[0] + best[1] + best[2] + best[3] + best[4];
        printf("   %4u %4u %8.3f %9.2f %9.1f %9.3f %9.3f %9.3f %10.2f %12.1f\n", k, t,
               best[0] * 1e3, best[1] * 1e3, best[1] / (2.0 * k) * 1e6, best[2] * 1e3,
               best[3] * 1e3, best[4] * 1e3, total * 1e3, (total + s_mask_sec[ki]) * 1e3);
        fflush(stdout);
        for (unsigned v = 0; v < k; v++) {
            fl_sa_keypair_destroy(&pc[v]);
            fl_sa_keypair_destroy(&ps[v]);
        }
        sodium_memzero(key, k * sizeof *key);
        sodium_memzero(seed, k * sizeof *seed);
        sodium_memzero(shs, (size_t)size * FL_SA_SHARE_LEN);
        sodium_memzero(shb, (size_t)size * FL_SA_SHARE_LEN);
        free(pc), free(ps), free(key), free(seed), free(xs), free(shs), free(shb), free(out),
            free(in);
        fl_sa_keypair_destroy(&c);
        fl_sa_keypair_destroy(&s);
    }
}

/* The active-server model's extra client crypto for k neighbours, seconds
 * (best of 10): R0 and R3 signatures, k + 1 certificate and R0-signature
 * checks at R1, k R3-signature checks at R4. */
static double
s_active_client(unsigned k)
{
    fl_signkey_t *ca = fl_signkey_generate();
    fl_identity_t *id = NULL;
    char pub[41], sec[41];
    uint8_t curve[32], cert[FL_CERT_LEN], msg[128], sig[FL_SIGN_SIG_LEN];
    if (!ca || zmq_curve_keypair(pub, sec) != 0 || !zmq_z85_decode(curve, pub))
        s_wrong("cannot make the test CA or CURVE key");
    S_CHECK(fl_identity_derive(sec, &id));
    sodium_memzero(sec, sizeof sec);
    S_CHECK(fl_cert_issue(ca, curve, fl_identity_public(id), cert));
    randombytes_buf(msg, sizeof msg);
    fl_identity_sign(id, msg, sizeof msg, sig);
    double best = 1e30;
    for (int r = 0; r < 10; r++) {
        double t0 = fl_now();
        fl_identity_sign(id, msg, 110, sig);                  /* R0 */
        for (unsigned v = 0; v <= k; v++) {                   /* R1 */
            S_CHECK(fl_cert_verify(fl_signkey_public(ca), cert));
            S_CHECK(fl_identity_verify(fl_identity_public(id), msg, 110, sig));
        }
        fl_identity_sign(id, msg, 74, sig);                   /* R3 */
        for (unsigned v = 0; v < k; v++)                      /* R4 */
            S_CHECK(fl_identity_verify(fl_identity_public(id), msg, 74, sig));
        best = s_min(best, fl_now() - t0);
    }
    fl_identity_destroy(&id);
    fl_signkey_destroy(&ca);
    return best;
}

static void
s_bench_active(void)
{
    printf("\n2b. active-server model (identity CA): the client's extra crypto per round, ms, "
           "best of 10\n");
    printf("   (2 signatures; k + 1 certificates and R0 signatures checked at R1, k R3 "
           "signatures at R4)\n");
    printf("   %4s %10s %12s\n", "k", "extra ms", "us/verify");
    for (int ki = 0; ki < 3; ki++) {
        unsigned k = s_ks[ki];
        double sec = s_active_client(k);
        printf("   %4u %10.2f %12.1f\n", k, sec * 1e3, sec / (3.0 * k + 2) * 1e6);
        fflush(stdout);
    }
}

/* ---- 3. server unmasking ---- */

typedef struct {
    fl_sa_keypair_t *s; /* mask key pair (the c pair and envelopes are part 2's) */
    uint8_t b[32];
    bool alive; /* in U3; everyone is in U2 (the dropouts come after sharing) */
} s_client_t;

/* The windows the clients mask for real: start, unaligned middle, end. */
static const size_t s_win_at[3] = {0, S_M / 2 - 777, S_M - 4096};
static const size_t s_win_len[3] = {3000, 2500, 4096};

typedef struct {
    uint32_t *pool[S_POOL]; /* masked-vector stand-ins for the sum timing */
    float *fpool[S_POOL];   /* float updates for the FedAvg reference */
    uint32_t *acc, *z, *z0;
    fl_aggr_t *aggr;
} s_server_bufs_t;

static void
s_server_row(uint32_t n, uint32_t full_max, fl_sagraph_threat_t model, double drop,
             s_server_bufs_t *sb, uint64_t rngseed)
{
    fl_rng_t rng;
    fl_rng_seed(&rng, rngseed, 5);
    fl_sagraph_params_t gp;
    S_CHECK(fl_sagraph_choose(n, S_GAMMA, S_DELTA, model, full_max, &gp));
    uint8_t nonce[32], sid[32];
    randombytes_buf(nonce, sizeof nonce);
    fl_sa_sid(nonce, (const uint8_t *)"bench", 5, sid);
    fl_sagraph_t *g = NULL;
    S_CHECK(fl_sagraph_new(&gp, sid, &g));
    const uint32_t size = fl_sagraph_size(g), t = gp.t;
    S_CHECK(fl_sa_check_levels(S_LEVELS, 32, n));

    /* clients; the dropped ones are a random 20% */
    s_client_t *cl = fl_xcalloc(n, sizeof *cl);
    uint32_t *perm = fl_xmalloc(n * sizeof *perm);
    for (uint32_t u = 0; u < n; u++)
        perm[u] = u;
    fl_rng_shuffle(&rng, perm, n);
    const uint32_t nd = (uint32_t)(drop * n + 0.5), n3 = n - nd;
    for (uint32_t u = 0; u < n; u++) {
        cl[u].s = s_keypair();
        randombytes_buf(cl[u].b, 32);
    }
    for (uint32_t i = 0; i < n; i++)
        cl[perm[i]].alive = i >= nd;

    /* R1': owner u splits s_sk and b over N(u); shares [owner][pos] (the
     * envelopes that carry them are measured in part 2) */
    uint32_t *xs = fl_xmalloc(size * sizeof *xs);
    for (uint32_t p = 0; p < size; p++)
        xs[p] = 1 + p;
    uint8_t *shs = fl_xmalloc((size_t)n * size * FL_SA_SHARE_LEN);
    uint8_t *shb = fl_xmalloc((size_t)n * size * FL_SA_SHARE_LEN);
    for (uint32_t u = 0; u < n; u++) {
        S_CHECK(fl_shamir_split(fl_sa_keypair_sk(cl[u].s), t, size, xs,
                                shs + (size_t)u * size * FL_SA_SHARE_LEN));
        S_CHECK(fl_shamir_split(cl[u].b, t, size, xs, shb + (size_t)u * size * FL_SA_SHARE_LEN));
    }

    /* R2': each survivor masks its quantized input in the windows with its
     * own seeds (pairwise seeds by X25519 with its neighbours' keys), in
     * chunks of its own; the server sums. Outside the windows the sum is
     * random filler. */
    uint32_t *z0 = sb->z0;
    memcpy(z0, sb->pool[S_POOL - 1], S_M * sizeof *z0);
    size_t wtot = 0;
    for (int w = 0; w < 3; w++) {
        memset(z0 + s_win_at[w], 0, s_win_len[w] * sizeof *z0);
        wtot += s_win_len[w];
    }
    uint32_t *want = fl_xcalloc(wtot, sizeof *want);
    double *xsum = fl_xcalloc(wtot, sizeof *xsum); /* plaintext float sum, clipped */
    float *x = fl_xmalloc(wtot * sizeof *x);
    uint32_t *q = fl_xmalloc(wtot * sizeof *q), *y = fl_xmalloc(wtot * sizeof *y);
    uint32_t *nb = fl_xmalloc(size * sizeof *nb);
    for (uint32_t u = 0; u < n; u++) {
        if (!cl[u].alive)
            continue;
        fl_sa_masks_t *mk = fl_sa_masks_new(32);
        if (!mk)
            s_die("fl_sa_masks_new", FL_ENOMEM);
        uint8_t seed[32];
        fl_sa_self_seed(cl[u].b, sid, seed);
        S_CHECK(fl_sa_masks_add(mk, seed, 1));
        fl_sagraph_neighbours(g, u, nb);
        for (uint32_t p = 0; p < size; p++) {
            uint32_t v = nb[p];
            if (v == u)
                continue;
            S_CHECK(fl_sa_derive(cl[u].s, fl_sa_keypair_pk(cl[v].s), sid,
                                 FL_SA_LABEL_PAIRWISE_MASK, seed));
            S_CHECK(fl_sa_masks_add(mk, seed, fl_sa_pair_sign(u, v)));
        }
        sodium_memzero(seed, sizeof seed);
        for (size_t i = 0; i < wtot; i++) /* small random updates */
            x[i] = (float)(fl_rng_normal(&rng) * 0.3);
        S_CHECK(fl_sa_quantize(x, wtot, S_CLIP, S_LEVELS, fl_sa_rand_fl_rng, &rng, q));
        memcpy(y, q, wtot * sizeof *y);
        size_t off = 0;
        for (int w = 0; w < 3; w++) {
            for (size_t at = 0; at < s_win_len[w];) {
                size_t len = 1 + (size_t)fl_rng_below(&rng, 1500);
                if (len > s_win_len[w] - at)
                    len = s_win_len[w] - at;
                S_CHECK(fl_sa_masks_apply(mk, s_win_at[w] + at, len, y + off + at));
                at += len;
            }
            fl_sa_vec_add(z0 + s_win_at[w], y + off, s_win_len[w], 32);
            off += s_win_len[w];
        }
        for (size_t i = 0; i < wtot; i++) {
            want[i] += q[i];
            xsum[i] += x[i] < -S_CLIP ? -S_CLIP : (x[i] > S_CLIP ? S_CLIP : x[i]);
        }
        fl_sa_masks_destroy(&mk);
    }

    /* R4': each survivor reveals, per owner in its neighbourhood, the b
     * share (owner alive) or the s_sk share (owner dropped) */
    bool *got = fl_xcalloc((size_t)n * size, sizeof *got); /* [owner][pos] */
    for (uint32_t h = 0; h < n; h++) {
        if (!cl[h].alive)
            continue;
        fl_sagraph_neighbours(g, h, nb);
        for (uint32_t p = 0; p < size; p++) {
            int64_t pos = fl_sagraph_position(g, nb[p], h);
            if (pos < 0)
                s_wrong("graph not symmetric: %u in N(%u) but not back", nb[p], h);
            got[(size_t)nb[p] * size + (size_t)pos] = true;
        }
    }

    /* The server, timed: reconstruct, derive the dropped clients' seeds,
     * expand and subtract. Repeated on a copy of the sum where short. */
    uint8_t(*secret)[32] = sodium_malloc((size_t)n * 32);
    if (!secret)
        s_die("sodium_malloc", FL_ENOMEM);
    uint32_t *cx = fl_xmalloc(size * sizeof *cx);
    uint8_t *cs = fl_xmalloc((size_t)size * FL_SA_SHARE_LEN);
    size_t terms = n3 + 0;
    for (uint32_t d = 0; d < n; d++)
        if (!cl[d].alive) {
            fl_sagraph_neighbours(g, d, nb);
            for (uint32_t p = 0; p < size; p++)
                terms += nb[p] != d && cl[nb[p]].alive;
        }
    const double ks_bytes = (double)terms * S_M * 4;
    const int reps = ks_bytes < 5e8 ? 3 : (ks_bytes < 3e9 ? 2 : 1);
    double best[3] = {1e30, 1e30, 1e30}, best_all = 1e30;
    for (int r = 0; r < reps; r++) {
        memcpy(sb->z, z0, S_M * sizeof *z0);
        double t0 = fl_now();
        fl_shamir_rec_t *rec = fl_shamir_rec_new(t);
        fl_sa_masks_t *um = fl_sa_masks_new(32);
        if (!rec || !um)
            s_die("fl_shamir_rec_new / fl_sa_masks_new", FL_ENOMEM);
        for (uint32_t o = 0; o < n; o++) {
            const uint8_t *src = (cl[o].alive ? shb : shs) + (size_t)o * size * FL_SA_SHARE_LEN;
            size_t cnt = 0;
            for (uint32_t p = 0; p < size; p++) {
                if (!got[(size_t)o * size + p])
                    continue;
                cx[cnt] = 1 + p;
                memcpy(cs + cnt * FL_SA_SHARE_LEN, src + (size_t)p * FL_SA_SHARE_LEN,
                       FL_SA_SHARE_LEN);
                cnt++;
            }
            S_CHECK(fl_shamir_rec_run(rec, cnt, cx, cs, secret[o]));
            if (cl[o].alive) {
                uint8_t seed[32];
                fl_sa_self_seed(secret[o], sid, seed);
                S_CHECK(fl_sa_masks_add(um, seed, -1));
                sodium_memzero(seed, sizeof seed);
            }
        }
        double t1 = fl_now();
        for (uint32_t d = 0; d < n; d++) {
            if (cl[d].alive)
                continue;
            fl_sa_keypair_t *kd = NULL;
            S_CHECK(fl_sa_keypair_from_secret(secret[d], &kd));
            if (sodium_memcmp(fl_sa_keypair_pk(kd), fl_sa_keypair_pk(cl[d].s), 32) != 0)
                s_wrong("client %u: reconstructed s key differs from the advertised one", d);
            fl_sagraph_neighbours(g, d, nb);
            for (uint32_t p = 0; p < size; p++) {
                uint32_t v = nb[p];
                if (v == d || !cl[v].alive)
                    continue;
                uint8_t seed[32];
                S_CHECK(fl_sa_derive(kd, fl_sa_keypair_pk(cl[v].s), sid,
                                     FL_SA_LABEL_PAIRWISE_MASK, seed));
                S_CHECK(fl_sa_masks_add(um, seed, -fl_sa_pair_sign(v, d)));
                sodium_memzero(seed, sizeof seed);
            }
            fl_sa_keypair_destroy(&kd);
        }
        double t2 = fl_now();
        if (fl_sa_masks_count(um) != terms)
            s_wrong("%zu mask terms, want %zu", fl_sa_masks_count(um), terms);
        const size_t chunk = 65536;
        for (size_t at = 0; at < S_M; at += chunk)
            S_CHECK(fl_sa_masks_apply(um, at, S_M - at < chunk ? S_M - at : chunk, sb->z + at));
        fl_sa_masks_destroy(&um);
        fl_shamir_rec_destroy(&rec);
        double t3 = fl_now();
        best[0] = s_min(best[0], t1 - t0);
        best[1] = s_min(best[1], t2 - t1);
        best[2] = s_min(best[2], t3 - t2);
        best_all = s_min(best_all, t3 - t0);

        /* verify: secrets, and the windows equal the plaintext quantized sum */
        for (uint32_t o = 0; o < n; o++) {
            const uint8_t *orig = cl[o].alive ? cl[o].b : fl_sa_keypair_sk(cl[o].s);
            if (sodium_memcmp(secret[o], orig, 32) != 0)
                s_wrong("client %u: reconstructed %s differs from the original", o,
                        cl[o].alive ? "b" : "s_sk");
        }
        size_t off = 0;
        for (int w = 0; w < 3; w++)
            for (size_t i = 0; i < s_win_len[w]; i++, off++)
                if (sb->z[s_win_at[w] + i] != want[off])
                    s_wrong("unmasked word %zu is %u, plaintext quantized sum %u",
                            s_win_at[w] + i, sb->z[s_win_at[w] + i], want[off]);
    }
    /* and the first window decodes to the float sum of the clipped inputs
     * within the quantization bound (n3 steps of 2c/T) */
    {
        float *dec = fl_xmalloc(s_win_len[0] * sizeof *dec);
        S_CHECK(fl_sa_dequantize(sb->z, s_win_len[0], n3, S_CLIP, S_LEVELS, dec));
        double bound = n3 * 2 * S_CLIP / S_LEVELS + 1e-5 * n3;
        for (size_t i = 0; i < s_win_len[0]; i++)
            if (fabs(dec[i] - xsum[i]) > bound)
                s_wrong("word %zu decodes to %g, plaintext float sum %g", i, (double)dec[i],
                        xsum[i]);
        free(dec);
    }

    /* the server's streaming sum of |U3| masked vectors, and plaintext FedAvg */
    double sum = 1e30, fedavg = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = fl_now();
        memset(sb->acc, 0, S_M * sizeof *sb->acc);
        for (uint32_t i = 0; i < n3; i++)
            fl_sa_vec_add(sb->acc, sb->pool[i % S_POOL], S_M, 32);
        double t1 = fl_now();
        fl_aggr_reset(sb->aggr);
        for (uint32_t i = 0; i < n3; i++)
            S_CHECK(fl_aggr_add(sb->aggr, sb->fpool[i % S_POOL], S_M, 100.0 + i % 7));
        double t2 = fl_now();
        sum = s_min(sum, t1 - t0);
        fedavg = s_min(fedavg, t2 - t1);
    }

    char graph[24];
    snprintf(graph, sizeof graph, "%s k=%u t=%u",
             gp.full ? "full" : (model == FL_SAGRAPH_SEMI_HONEST ? "H/SH" : "H/SM"), gp.k, t);
    printf("   %4u %-18s %4.0f%% %4u %5zu %8.1f %8.1f %9.1f %9.1f %8.1f %8.1f %7.1fx %5d\n", n,
           graph, drop * 100, n3, terms, best[0] * 1e3, best[1] * 1e3, best[2] * 1e3,
           best_all * 1e3, sum * 1e3, fedavg * 1e3, (best_all + sum) / fedavg, reps);
    fflush(stdout);

    sodium_free(secret);
    for (uint32_t u = 0; u < n; u++)
        fl_sa_keypair_destroy(&cl[u].s);
    free(cl), free(perm), free(xs), free(shs), free(shb), free(want), free(xsum), free(x), free(q), free(y),
        free(nb), free(got), free(cx), free(cs);
    fl_sagraph_destroy(&g);
}

static void
s_bench_server(bool quick)
{
    printf("\n3. server unmasking, m = %u, words mod 2^32; graph: full for n <= %u, else "
           "fl_sagraph_choose(gamma %.2f, delta %.2f, semi-honest);\n",
           S_M, S_FULL_MAX, S_GAMMA, S_DELTA);
    printf("   (n = 100 again: H/SM the semi-malicious SecAgg+ graph, full the SecAgg graph)\n"
           "   dropouts after sharing (U2 \\ U3); ms; shamir = all secrets reconstructed, "
           "x25519 = dropped clients' seeds,\n   prg = masks removed from the sum, unmask = "
           "the three; sum = streaming sum of |U3| masked vectors (fl_sa_vec_add);\n"
           "   fedavg = plaintext reference, fl_aggr_add of |U3| float vectors; overhead = "
           "(unmask + sum) / fedavg\n");
    printf("   %4s %-18s %5s %4s %5s %8s %8s %9s %9s %8s %8s %8s %5s\n", "n", "graph", "drop",
           "|U3|", "PRGs", "shamir", "x25519", "prg", "unmask", "sum", "fedavg", "overhd",
           "reps");
    s_server_bufs_t sb;
    fl_rng_t rng;
    fl_rng_seed(&rng, 99, 3);
    for (int p = 0; p < S_POOL; p++) {
        sb.pool[p] = s_alloc_u32(S_M);
        sb.fpool[p] = fl_xmalloc_aligned(S_M * sizeof(float));
        for (size_t i = 0; i < S_M; i++) {
            sb.pool[p][i] = (uint32_t)fl_rng_u64(&rng);
            sb.fpool[p][i] = (float)((double)(fl_rng_u64(&rng) >> 40) * 0x1p-24 - 0.5) * 0.02f;
        }
    }
    sb.acc = s_alloc_u32(S_M);
    sb.z = s_alloc_u32(S_M);
    sb.z0 = s_alloc_u32(S_M);
    sb.aggr = fl_aggr_new(S_M);
    if (!sb.aggr)
        s_die("fl_aggr_new", FL_ENOMEM);
    /* the brief's rows, then for comparison at n = 100: the semi-malicious
     * SecAgg+ graph (SECAGG.md's advice for an untrusted coordinator) and the
     * full graph (what SecAgg+ saves) */
    static const struct {
        uint32_t n, full_max;
        fl_sagraph_threat_t model;
    } rows[] = {{10, S_FULL_MAX, FL_SAGRAPH_SEMI_HONEST},
                {50, S_FULL_MAX, FL_SAGRAPH_SEMI_HONEST},
                {100, S_FULL_MAX, FL_SAGRAPH_SEMI_HONEST},
                {100, S_FULL_MAX, FL_SAGRAPH_SEMI_MALICIOUS},
                {100, 100, FL_SAGRAPH_SEMI_HONEST}};
    const int nrows = quick ? 2 : (int)(sizeof rows / sizeof rows[0]);
    for (int i = 0; i < nrows; i++)
        for (int d = 0; d < 2; d++)
            s_server_row(rows[i].n, rows[i].full_max, rows[i].model, d ? 0.2 : 0.0, &sb,
                         (uint64_t)(1000 * i + d));
    printf("   verified: every reconstructed secret equals the original, and the unmasked sum "
           "equals the\n   plaintext sum of the survivors' quantized inputs in all %zu checked "
           "words of every row\n",
           s_win_len[0] + s_win_len[1] + s_win_len[2]);
    for (int p = 0; p < S_POOL; p++) {
        free(sb.pool[p]);
        free(sb.fpool[p]);
    }
    free(sb.acc), free(sb.z), free(sb.z0);
    fl_aggr_destroy(&sb.aggr);
}

int
main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    if (sodium_init() < 0) {
        fprintf(stderr, "bench_secagg: sodium_init failed\n");
        return 1;
    }
    double t0 = fl_now();
    printf("bench_secagg: SecAgg / SecAgg+ costs (fl_secagg, fl_shamir, fl_sagraph), libsodium "
           "%s\n",
           sodium_version_string());
    printf("shared, noisy machine (2 cores, other workers): best of a few runs; nothing passes "
           "or fails on time\n\n");
    s_bench_masks();
    s_bench_client_crypto();
    s_bench_active();
    s_bench_server(quick);
    printf("\nbench_secagg: %.1f s\n", fl_now() - t0);
    return 0;
}
