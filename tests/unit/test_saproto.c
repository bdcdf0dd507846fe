/*
 * test_saproto.c — unit tests of fl_saclient and fl_saserver: one server and
 * n clients driven in memory by handing the records from one to the other.
 * Whole rounds (full graph and Harary, n = 3..100, plain sum and weighted
 * mean) must decode to exactly what the plaintext sum of the U3 clients'
 * encodings decodes to, and to the float inputs within the quantization
 * bound; dropouts at every phase, below and above threshold; refusals of
 * malformed or hostile records on both sides (the server goes on, the client
 * aborts); forged shares; the setup check and the session id.
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
#include "fl_saclient.h"
#include "fl_sagraph.h"
#include "fl_saserver.h"
#include "fl_secagg.h"
#include "fl_shamir.h"
#include "fl_util.h"
#include "sahelp.h" /* the round driver: s_rt_t, s_run, s_check, ... */

/* Pearson correlation of a[0..n) (uint32, as numbers) with b[0..n). */
static double
s_corr(const uint32_t *a, const float *b, size_t n)
{
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++)
        ma += a[i], mb += b[i];
    ma /= (double)n, mb /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db, saa += da * da, sbb += db * db;
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0;
}

/*
 * Everything the server receives that depends on an input is its masked
 * vector (the keys are public, the envelopes are sealed for other clients).
 * Captured, no masked vector correlates with any client's true input beyond
 * chance (|r| < 6 / sqrt(words), a 6-sigma bound for independent vectors: a
 * false alarm about once in 3 million runs),
 * while the unmasked encoding itself correlates almost perfectly with its
 * input (r > 0.99): the measure would see a leak. A Harary round with
 * dropouts at every phase, so that no client's masks are all removed.
 */
static void
test_captured_inputs_uncorrelated(void **state)
{
    (void)state;
    fl_sa_setup_t s = s_setup(12, 6, 4, false, 32, 1u << 16, 1.0, 0, 4096, 77);
    s_rt_t rt;
    s_rt_init(&rt, &s, 4242);
    rt.drop[1] = DROP_SHR, rt.drop[5] = DROP_MASKED, rt.drop[9] = DROP_SHARES;
    assert_int_equal(s_run(&rt), 0);
    s_check(&rt);
    double bound = 6.0 / sqrt((double)rt.words), worst = 0;
    for (uint32_t v = 0; v < s.n; v++) {
        if (!fl_sa_server_member(rt.srv, v, 2))
            continue; /* it sent no masked input */
        const uint32_t *y = rt.y + (size_t)v * rt.words;
        for (uint32_t u = 0; u < s.n; u++) {
            double r = fabs(s_corr(y, rt.x + (size_t)u * rt.dim, rt.dim));
            if (r > worst)
                worst = r;
            if (r >= bound)
                fail_msg("masked input of %u correlates with the input of %u: r = %.4f", v, u, r);
        }
    }
    /* the measure can see a leak: the bare encoding of client 0 */
    uint32_t *q = malloc(rt.words * sizeof *q);
    assert_int_equal(fl_sa_quantize(rt.x, rt.dim, 1.0, 1u << 16, NULL, NULL, q), 0);
    assert_true(s_corr(q, rt.x, rt.dim) > 0.99);
    free(q);
    print_message("captured masked inputs vs true inputs: max |r| = %.4f (bound %.4f)\n", worst,
                  bound);
    s_rt_free(&rt);
}

/* ---- 1. whole rounds ---- */

static void
test_rounds_full(void **state)
{
    (void)state;
    static const uint32_t ns[] = {3, 4, 5, 8, 16, 33, 64};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        fl_sa_setup_t s = s_full(ns[i], 0, 10 + i);
        s_round_ok(&s, 100 + i, NULL, 0);
        fl_sa_setup_t sw = s_full(ns[i], 1000, 50 + i);
        s_round_ok(&sw, 200 + i, NULL, 0);
    }
}

static void
test_rounds_harary(void **state)
{
    (void)state;
    fl_sa_setup_t s = s_setup(16, 6, 4, false, 32, 1u << 16, 0.5, 0, 1000, 1);
    s_round_ok(&s, 1, NULL, 0);
    s.wmax = 10;
    s_round_ok(&s, 2, NULL, 0);
    s = s_setup(64, 10, 6, false, 32, 1u << 16, 1.0, 0, 1000, 2);
    s_round_ok(&s, 3, NULL, 0);
    s.wmax = 1;
    s_round_ok(&s, 4, NULL, 0);
    /* modulus 2^20 (T = 2^12; the no-wrap rule allows 2^14 for 33 clients) */
    s = s_setup(33, 8, 5, false, 20, 1u << 12, 2.0, 0, 777, 3);
    s_round_ok(&s, 5, NULL, 0);
    s.wmax = 3;
    s_round_ok(&s, 6, NULL, 0);
    /* the finder's parameters for n = 100 (gamma .05, delta .1): (16, 6) */
    fl_sagraph_params_t p;
    assert_int_equal(fl_sagraph_choose(100, .05, .1, FL_SAGRAPH_SEMI_HONEST, 0, &p), 0);
    assert_false(p.full);
    s = s_setup(100, p.k, p.t, false, 32, 1u << 16, 1.0, 0, 500, 4);
    s_round_ok(&s, 7, NULL, 0);
    s.wmax = 100;
    s_round_ok(&s, 8, NULL, 0);
}

/* ---- 2. dropouts ---- */

static void
test_dropouts(void **state)
{
    (void)state;
    /* full n = 16, t = 11: five dropouts, one or two at each phase */
    uint32_t d1[] = {3, DROP_ADV, 7, DROP_SHR, 0, DROP_MASKED, 15, DROP_MASKED, 9, DROP_SHARES};
    fl_sa_setup_t s = s_full(16, 0, 20);
    s_round_ok(&s, 11, d1, 5);
    s.wmax = 50;
    s_round_ok(&s, 12, d1, 5);

    /* Harary n = 64, k = 10, t = 6: dropouts spread over the ring, two of
     * them (dropped after sharing) next to each other */
    s = s_setup(64, 10, 6, false, 32, 1u << 16, 1.0, 0, 1000, 21);
    uint32_t *ring = s_ring_of(&s);
    uint32_t d2[] = {ring[0], DROP_ADV,     ring[8],  DROP_SHR,     ring[16], DROP_MASKED,
                     ring[17], DROP_MASKED, ring[30], DROP_SHARES, ring[45], DROP_MASKED,
                     ring[50], DROP_SHARES};
    s_round_ok(&s, 13, d2, 7);
    s.wmax = 5;
    s_round_ok(&s, 14, d2, 7);
    free(ring);

    /* Harary n = 16, k = 6, t = 4: three neighbours on the ring drop after
     * sharing; every secret keeps exactly t or more holders */
    s = s_setup(16, 6, 4, false, 32, 1u << 16, 1.0, 0, 300, 22);
    ring = s_ring_of(&s);
    uint32_t d3[] = {ring[1], DROP_MASKED, ring[2], DROP_MASKED, ring[3], DROP_MASKED};
    s_round_ok(&s, 15, d3, 3);
    free(ring);
}

/* A round that must fail with FL_ERANGE at the given phase (DONE: in
 * finish, with every client in U3 and some silent at unmasking). */
static void
s_round_fails(const fl_sa_setup_t *s, uint64_t seed, const uint32_t *drops, size_t ndrops,
              fl_sa_phase_t at)
{
    s_rt_t rt;
    s_rt_init(&rt, s, seed);
    for (size_t i = 0; i < ndrops; i++)
        rt.drop[drops[2 * i]] = (uint8_t)drops[2 * i + 1];
    fl_sa_server_t *srv = rt.srv;
    int rc;
    if (at != FL_SA_PH_DONE) {
        rc = s_run(&rt);
        assert_int_equal(fl_sa_server_count(srv, at == FL_SA_PH_ADV      ? 1
                                                 : at == FL_SA_PH_SHR    ? 2
                                                                         : 3),
                         s->n - ndrops);
    } else {
        /* phase by phase, to look at ready() before finish */
        assert_int_equal(s_run_until(&rt, FL_SA_PH_UNMASK), 0);
        assert_false(fl_sa_server_ready(srv));
        s_answer(&rt);
        assert_false(fl_sa_server_ready(srv));
        rc = s_close(&rt);
    }
    if (rc != FL_ERANGE)
        fail_msg("want FL_ERANGE, got %s (%s)", fl_strerror(rc), fl_errmsg());
    assert_int_equal(fl_sa_server_phase(srv), FL_SA_PH_FAILED);
    assert_non_null(strstr(fl_sa_server_failure(srv), "threshold"));
    /* nothing goes on after a failure */
    assert_int_equal(fl_sa_server_finish(srv, rt.out, NULL), FL_ESTATE);
    assert_int_equal(fl_sa_server_close_adv(srv), FL_ESTATE);
    s_rt_free(&rt);
}

static void
test_below_threshold(void **state)
{
    (void)state;
    /* full n = 6, t = 5: two dropouts at any phase are one too many */
    fl_sa_setup_t s = s_full(6, 0, 30);
    uint32_t a[] = {1, DROP_ADV, 4, DROP_ADV};
    s_round_fails(&s, 31, a, 2, FL_SA_PH_ADV);
    uint32_t b[] = {0, DROP_SHR, 5, DROP_SHR};
    s_round_fails(&s, 32, b, 2, FL_SA_PH_SHR);
    uint32_t c[] = {2, DROP_MASKED, 3, DROP_MASKED};
    s_round_fails(&s, 33, c, 2, FL_SA_PH_MASKED);
    uint32_t d[] = {2, DROP_SHARES, 3, DROP_SHARES};
    s_round_fails(&s, 34, d, 2, FL_SA_PH_DONE);
    /* ... and one is fine, at every phase */
    for (uint32_t ph = DROP_ADV; ph <= DROP_SHARES; ph++) {
        uint32_t one[] = {ph, ph};
        s_round_ok(&s, 35 + ph, one, 1);
    }
    /* Harary n = 16, k = 6, t = 4: four ring neighbours drop after sharing;
     * the middle ones keep only 3 holders of their s_sk in U3 */
    s = s_setup(16, 6, 4, false, 32, 1u << 16, 1.0, 0, 300, 22);
    uint32_t *ring = s_ring_of(&s);
    uint32_t e[] = {ring[1], DROP_MASKED, ring[2], DROP_MASKED, ring[3], DROP_MASKED, ring[4],
                    DROP_MASKED};
    s_round_fails(&s, 40, e, 4, FL_SA_PH_MASKED);
    free(ring);
}

/* ---- 3. refusals: the server goes on ---- */

static void
test_server_refusals(void **state)
{
    (void)state;
    /* Harary n = 16, k = 6, t = 4, modulus 2^24; client X never advertises,
     * client D shares but sends no input */
    fl_sa_setup_t s = s_setup(16, 6, 4, false, 24, 1u << 16, 1.0, 0, 1000, 40);
    s_rt_t rt;
    s_rt_init(&rt, &s, 41);
    fl_sa_server_t *srv = rt.srv;
    uint32_t *ring = s_ring_of(&s);
    uint32_t X = ring[0], A = ring[1], B = ring[2], D = ring[8], F = ring[10];
    uint32_t far = ring[5]; /* not a neighbour of A (ring distance 4 > k/2) */
    rt.drop[X] = DROP_ADV;
    rt.drop[D] = DROP_MASKED;
    const uint8_t *recs;
    size_t len;
    uint8_t *buf = malloc(64 * 1024);

    /* R0 */
    assert_int_equal(fl_sa_server_keys_for(srv, A, &recs, &len), FL_ESTATE);
    assert_int_equal(fl_sa_server_on_adv(srv, 16, fl_sa_client_cpk(rt.cl[A]),
                                         fl_sa_client_spk(rt.cl[A])),
                     FL_EPROTO);
    assert_int_equal(fl_sa_server_on_adv(srv, 1000, fl_sa_client_cpk(rt.cl[A]),
                                         fl_sa_client_spk(rt.cl[A])),
                     FL_EPROTO);
    s_adv(&rt, A);
    /* B reusing A's cpk or spk (in either role), or one key for both */
    assert_int_equal(
        fl_sa_server_on_adv(srv, B, fl_sa_client_cpk(rt.cl[A]), fl_sa_client_spk(rt.cl[B])),
        FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "cpk"));
    assert_int_equal(
        fl_sa_server_on_adv(srv, B, fl_sa_client_cpk(rt.cl[B]), fl_sa_client_cpk(rt.cl[A])),
        FL_EPROTO);
    assert_int_equal(
        fl_sa_server_on_adv(srv, B, fl_sa_client_cpk(rt.cl[B]), fl_sa_client_cpk(rt.cl[B])),
        FL_EPROTO);
    /* a low-order key (u = 0 of order 2, u = 1 of order 4) would make every
     * neighbour abort */
    uint8_t low[32] = {0};
    assert_int_equal(fl_sa_server_on_adv(srv, B, low, fl_sa_client_spk(rt.cl[B])), FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "low-order"));
    low[0] = 1;
    assert_int_equal(fl_sa_server_on_adv(srv, B, fl_sa_client_cpk(rt.cl[B]), low), FL_EPROTO);
    assert_false(fl_sa_server_member(srv, B, 1));
    for (uint32_t u = 0; u < s.n; u++)
        if (u != X && u != A)
            s_adv(&rt, u);
    /* a second adv, with the same or new keys */
    assert_int_equal(fl_sa_server_on_adv(srv, A, fl_sa_client_cpk(rt.cl[A]),
                                         fl_sa_client_spk(rt.cl[A])),
                     FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "already"));
    uint8_t k1[32], k2[32];
    randombytes_buf(k1, 32);
    randombytes_buf(k2, 32);
    assert_int_equal(fl_sa_server_on_adv(srv, B, k1, k2), FL_EPROTO);
    assert_int_equal(fl_sa_server_count(srv, 1), 15);
    assert_int_equal(fl_sa_server_count(srv, 0), 16);
    assert_false(fl_sa_server_member(srv, X, 1));
    assert_false(fl_sa_server_member(srv, 16, 0));
    assert_int_equal(fl_sa_server_close_shr(srv), FL_ESTATE);
    assert_int_equal(fl_sa_server_close_adv(srv), 0);
    assert_int_equal(fl_sa_server_phase(srv), FL_SA_PH_SHR);

    /* R1 */
    assert_int_equal(fl_sa_server_on_adv(srv, X, k1, k2), FL_ESTATE);
    assert_int_equal(fl_sa_server_keys_for(srv, X, &recs, &len), FL_EPROTO);
    const uint8_t *shr;
    size_t shr_len;
    /* A's neighbourhood holds X, which is not in U1: sa.keys leaves it out */
    s_keys(&rt, A, &shr, &shr_len);
    assert_int_equal(shr_len, 5 * FL_SA_REC_SHR);
    memcpy(buf, shr, shr_len);
    size_t L = shr_len;
    /* from a client not in U1, or not in the round */
    assert_int_equal(fl_sa_server_on_shr(srv, X, buf, L), FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "not in U1"));
    assert_int_equal(fl_sa_server_on_shr(srv, 99, buf, L), FL_EPROTO);
    /* truncated, one missing, one too many */
    assert_int_equal(fl_sa_server_on_shr(srv, A, buf, L - 1), FL_EPROTO);
    assert_int_equal(fl_sa_server_on_shr(srv, A, buf, L - FL_SA_REC_SHR), FL_EPROTO);
    memcpy(buf + L, buf, FL_SA_REC_SHR);
    assert_int_equal(fl_sa_server_on_shr(srv, A, buf, L + FL_SA_REC_SHR), FL_EPROTO);
    /* a wrong dst: a duplicate, a non-neighbour, itself, X (not in U1), out of range */
    uint32_t dsts[] = {fl_load_be32(buf + FL_SA_REC_SHR), far, A, X, 16};
    for (size_t i = 0; i < sizeof dsts / sizeof dsts[0]; i++) {
        uint8_t save[4];
        memcpy(save, buf, 4);
        fl_store_be32(buf, dsts[i]);
        assert_int_equal(fl_sa_server_on_shr(srv, A, buf, L), FL_EPROTO);
        memcpy(buf, save, 4);
    }
    assert_false(fl_sa_server_member(srv, A, 2));
    assert_int_equal(fl_sa_server_count(srv, 2), 0);
    assert_int_equal(fl_sa_server_on_shr(srv, A, buf, L), 0);
    assert_int_equal(fl_sa_server_on_shr(srv, A, buf, L), FL_EPROTO); /* second */
    for (uint32_t u = 0; u < s.n; u++) {
        if (u == X || u == A)
            continue;
        s_keys(&rt, u, &shr, &shr_len);
        assert_int_equal(fl_sa_server_on_shr(srv, u, shr, shr_len), 0);
    }
    assert_int_equal(fl_sa_server_close_shr(srv), 0);
    assert_int_equal(fl_sa_server_count(srv, 2), 15);

    /* R2' */
    assert_int_equal(fl_sa_server_mreq_for(srv, X, &recs, &len), FL_EPROTO);
    for (uint32_t u = 0; u < s.n; u++)
        if (u != X)
            s_mask(&rt, u);
    const uint32_t *yA = rt.y + (size_t)A * rt.words;
    assert_int_equal(fl_sa_server_input_begin(srv, X), FL_EPROTO);
    assert_int_equal(fl_sa_server_input_begin(srv, 16), FL_EPROTO);
    assert_int_equal(fl_sa_server_input_chunk(srv, 0, yA, 10), FL_ESTATE); /* none open */
    assert_int_equal(fl_sa_server_input_commit(srv), FL_ESTATE);
    /* out of order: discarded */
    assert_int_equal(fl_sa_server_input_begin(srv, A), 0);
    assert_int_equal(fl_sa_server_input_chunk(srv, 0, yA, 100), 0);
    assert_int_equal(fl_sa_server_input_chunk(srv, 200, yA + 200, 100), FL_EPROTO);
    assert_int_equal(fl_sa_server_input_chunk(srv, 100, yA + 100, 100), FL_ESTATE);
    /* a word >= 2^bits: discarded */
    assert_int_equal(fl_sa_server_input_begin(srv, A), 0);
    uint32_t *bad = malloc(rt.words * sizeof *bad);
    memcpy(bad, yA, rt.words * sizeof *bad);
    bad[517] = 1u << 24;
    assert_int_equal(fl_sa_server_input_chunk(srv, 0, bad, 500), 0);
    assert_int_equal(fl_sa_server_input_chunk(srv, 500, bad + 500, rt.words - 500), FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "word 517"));
    /* a second one open; past the end; words missing at commit */
    assert_int_equal(fl_sa_server_input_begin(srv, A), 0);
    assert_int_equal(fl_sa_server_input_begin(srv, B), FL_ESTATE);
    assert_int_equal(fl_sa_server_input_chunk(srv, 0, bad, rt.words + 1), FL_EPROTO);
    assert_int_equal(fl_sa_server_input_begin(srv, A), 0);
    assert_int_equal(fl_sa_server_input_chunk(srv, 0, yA, rt.words - 1), 0);
    assert_int_equal(fl_sa_server_input_commit(srv), FL_EPROTO);
    /* begun and aborted */
    assert_int_equal(fl_sa_server_input_begin(srv, A), 0);
    assert_int_equal(fl_sa_server_input_chunk(srv, 0, bad, 500), 0);
    fl_sa_server_input_abort(srv);
    assert_int_equal(fl_sa_server_count(srv, 3), 0);
    /* the honest inputs, and a late second one */
    for (uint32_t u = 0; u < s.n; u++)
        if (u != X && u != D)
            s_input(&rt, u);
    assert_int_equal(fl_sa_server_input_begin(srv, A), FL_EPROTO);
    /* a half-sent input when U3 closes is discarded */
    assert_int_equal(fl_sa_server_input_begin(srv, D), 0);
    assert_int_equal(fl_sa_server_input_chunk(srv, 0, rt.y + (size_t)D * rt.words, 10), 0);
    assert_int_equal(fl_sa_server_close_masked(srv), 0);
    assert_int_equal(fl_sa_server_count(srv, 3), 14);
    assert_false(fl_sa_server_member(srv, D, 3));

    /* R4: F is a neighbour of D, so it reveals D's s_sk share */
    assert_int_equal(fl_sa_server_unmask_for(srv, D, &recs, &len), FL_EPROTO);
    const uint8_t *sh;
    size_t sh_len;
    s_unmask(&rt, F, &sh, &sh_len);
    L = sh_len;
    memcpy(buf, sh, L);
    size_t dead_rec = SIZE_MAX;
    for (size_t i = 0; i < L / FL_SA_REC_SHARES; i++)
        if (fl_load_be32(buf + i * FL_SA_REC_SHARES) == D)
            dead_rec = i;
    assert_true(dead_rec != SIZE_MAX);
    assert_int_equal(buf[dead_rec * FL_SA_REC_SHARES + 4], FL_SA_DEAD);
    assert_int_equal(fl_sa_server_on_shares(srv, D, buf, L), FL_EPROTO);
    assert_int_equal(fl_sa_server_on_shares(srv, X, buf, L), FL_EPROTO);
    assert_int_equal(fl_sa_server_on_shares(srv, F, buf, L - 1), FL_EPROTO);
    assert_int_equal(fl_sa_server_on_shares(srv, F, buf, L - FL_SA_REC_SHARES), FL_EPROTO);
    /* the b share of a dead client, the s_sk share of a live one */
    for (size_t i = 0; i < 2; i++) {
        size_t r = i == 0 ? dead_rec : (dead_rec + 1) % (L / FL_SA_REC_SHARES);
        buf[r * FL_SA_REC_SHARES + 4] ^= 1;
        assert_int_equal(fl_sa_server_on_shares(srv, F, buf, L), FL_EPROTO);
        assert_non_null(strstr(fl_errmsg(), "kind"));
        buf[r * FL_SA_REC_SHARES + 4] ^= 1;
    }
    /* a duplicate owner; an owner out of range; a limb outside the field */
    uint8_t save[FL_SA_REC_SHARES];
    memcpy(save, buf + FL_SA_REC_SHARES, FL_SA_REC_SHARES);
    memcpy(buf + FL_SA_REC_SHARES, buf, FL_SA_REC_SHARES);
    assert_int_equal(fl_sa_server_on_shares(srv, F, buf, L), FL_EPROTO);
    fl_store_be32(buf + FL_SA_REC_SHARES, 16);
    assert_int_equal(fl_sa_server_on_shares(srv, F, buf, L), FL_EPROTO);
    memcpy(buf + FL_SA_REC_SHARES, save, FL_SA_REC_SHARES);
    fl_store_be32(buf + FL_SA_REC_SHARES + 5 + 4 * 3, FL_SHAMIR_P);
    assert_int_equal(fl_sa_server_on_shares(srv, F, buf, L), FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "field"));
    memcpy(buf + FL_SA_REC_SHARES, save, FL_SA_REC_SHARES);
    assert_int_equal(fl_sa_server_count(srv, 5), 0);
    assert_false(fl_sa_server_ready(srv));
    assert_int_equal(fl_sa_server_on_shares(srv, F, buf, L), 0);
    assert_false(fl_sa_server_ready(srv)); /* one holder is not t */
    assert_int_equal(fl_sa_server_on_shares(srv, F, buf, L), FL_EPROTO); /* second */
    for (uint32_t u = 0; u < s.n; u++) {
        if (u == X || u == D || u == F)
            continue;
        s_unmask(&rt, u, &sh, &sh_len);
        assert_int_equal(fl_sa_server_on_shares(srv, u, sh, sh_len), 0);
    }
    assert_true(fl_sa_server_ready(srv));
    assert_int_equal(fl_sa_server_count(srv, 5), 14);
    assert_int_equal(fl_sa_server_finish(srv, rt.out, &rt.wsum), 0);
    s_check(&rt);
    assert_int_equal(fl_sa_server_finish(srv, rt.out, &rt.wsum), FL_ESTATE);
    free(buf), free(bad), free(ring);
    s_rt_free(&rt);
}

/* ---- 3. refusals: the client aborts ---- */

/* n clients of a setup, with sa.keys listing every neighbour; optionally
 * each has answered sa.keys (its sa.shr records copied into shr). */
typedef struct {
    fl_sa_setup_t s;
    fl_sagraph_t *g;
    uint32_t size;
    fl_sa_client_t **cl;
    uint8_t *shr; /* [n][size * 132] */
} s_world_t;

static size_t
s_world_keys(const s_world_t *w, uint32_t u, uint8_t *buf)
{
    size_t m = 0;
    for (uint32_t p = 0; p < w->size; p++) {
        uint32_t v = fl_sagraph_at(w->g, u, p);
        uint8_t *r = buf + m++ * FL_SA_REC_KEYS;
        fl_store_be32(r, v);
        memcpy(r + 4, fl_sa_client_cpk(w->cl[v]), 32);
        memcpy(r + 36, fl_sa_client_spk(w->cl[v]), 32);
    }
    return m * FL_SA_REC_KEYS;
}

/* The sa.mreq records for u: every peer's envelope for u. */
static size_t
s_world_mreq(const s_world_t *w, uint32_t u, uint8_t *buf)
{
    size_t m = 0;
    for (uint32_t p = 0; p < w->size; p++) {
        uint32_t v = fl_sagraph_at(w->g, u, p);
        if (v == u)
            continue;
        const uint8_t *sv = w->shr + (size_t)v * w->size * FL_SA_REC_SHR;
        bool found = false;
        for (uint32_t i = 0; i + 1 < w->size; i++)
            if (fl_load_be32(sv + i * FL_SA_REC_SHR) == u) {
                uint8_t *r = buf + m++ * FL_SA_REC_MREQ;
                fl_store_be32(r, v);
                memcpy(r + 4, sv + i * FL_SA_REC_SHR + 4, FL_SA_ENVELOPE_LEN);
                found = true;
            }
        assert_true(found);
    }
    return m * FL_SA_REC_MREQ;
}

static void
s_world_init(s_world_t *w, const fl_sa_setup_t *s, bool share)
{
    memset(w, 0, sizeof *w);
    w->s = *s;
    uint8_t sid[FL_SA_SID_LEN];
    fl_sa_setup_sid(s, sid);
    fl_sagraph_params_t gp = {.n = s->n, .k = s->k, .t = s->t, .full = s->full};
    assert_int_equal(fl_sagraph_new(&gp, sid, &w->g), 0);
    w->size = fl_sagraph_size(w->g);
    w->cl = calloc(s->n, sizeof *w->cl);
    w->shr = calloc((size_t)s->n * w->size, FL_SA_REC_SHR);
    for (uint32_t u = 0; u < s->n; u++) {
        fl_sa_setup_t cs = *s;
        cs.idx = u;
        assert_int_equal(fl_sa_client_new(&cs, &w->cl[u]), 0);
    }
    if (!share)
        return;
    uint8_t *keys = malloc((size_t)w->size * FL_SA_REC_KEYS);
    for (uint32_t u = 0; u < s->n; u++) {
        size_t len = s_world_keys(w, u, keys), olen;
        const uint8_t *out;
        assert_int_equal(fl_sa_client_on_keys(w->cl[u], keys, len, &out, &olen), 0);
        assert_int_equal(olen, (size_t)(w->size - 1) * FL_SA_REC_SHR);
        memcpy(w->shr + (size_t)u * w->size * FL_SA_REC_SHR, out, olen);
    }
    free(keys);
}

static void
s_world_free(s_world_t *w)
{
    for (uint32_t u = 0; u < w->s.n; u++)
        fl_sa_client_destroy(&w->cl[u]);
    fl_sagraph_destroy(&w->g);
    free(w->cl), free(w->shr);
}

/* Harary n = 8, k = 4, t = 3: client 0's neighbours are ring +-2 */
static fl_sa_setup_t
s_small(void)
{
    return s_setup(8, 4, 3, false, 32, 1u << 16, 1.0, 0, 1, 60);
}

typedef enum {
    K_MISSING_SELF,
    K_SELF_ALTERED,
    K_DUP_IDX,
    K_FEW,
    K_NON_NEIGHBOUR,
    K_OUT_OF_RANGE,
    K_SAME_KEY,
    K_TRUNCATED,
    K_LOW_ORDER,
    K_COUNT
} s_keys_case_t;

static void
test_client_keys_refusals(void **state)
{
    (void)state;
    fl_sa_setup_t s = s_small();
    const uint32_t u = 0;
    uint8_t *buf = malloc(64 * FL_SA_REC_KEYS);
    for (int c = -1; c < K_COUNT; c++) {
        s_world_t w;
        s_world_init(&w, &s, false);
        fl_sa_client_t *cl = w.cl[u];
        size_t len = s_world_keys(&w, u, buf);
        size_t cnt = len / FL_SA_REC_KEYS;
        assert_int_equal(cnt, 5);
        uint32_t self_rec = (uint32_t)fl_sagraph_position(w.g, u, u);
        uint32_t other = (self_rec + 1) % 5, other2 = (self_rec + 2) % 5;
        int want = FL_EPROTO;
        switch (c) {
        case K_MISSING_SELF:
            memcpy(buf + self_rec * FL_SA_REC_KEYS, buf + (cnt - 1) * FL_SA_REC_KEYS,
                   FL_SA_REC_KEYS);
            len -= FL_SA_REC_KEYS; /* (if self was last, it is just cut off) */
            break;
        case K_SELF_ALTERED:
            buf[self_rec * FL_SA_REC_KEYS + 4 + 32 + 7] ^= 0x10; /* its spk */
            break;
        case K_DUP_IDX:
            memcpy(buf + other * FL_SA_REC_KEYS, buf + other2 * FL_SA_REC_KEYS, 4);
            break;
        case K_FEW: { /* self and one peer: 2 < t = 3 */
            uint8_t two[2 * FL_SA_REC_KEYS];
            memcpy(two, buf + self_rec * FL_SA_REC_KEYS, FL_SA_REC_KEYS);
            memcpy(two + FL_SA_REC_KEYS, buf + other * FL_SA_REC_KEYS, FL_SA_REC_KEYS);
            memcpy(buf, two, sizeof two);
            len = 2 * FL_SA_REC_KEYS;
            want = FL_ERANGE;
            break;
        }
        case K_NON_NEIGHBOUR: {
            uint32_t far = 0;
            for (uint32_t v = 0; v < s.n; v++)
                if (fl_sagraph_position(w.g, u, v) < 0)
                    far = v;
            assert_true(far != 0);
            fl_store_be32(buf + other * FL_SA_REC_KEYS, far);
            break;
        }
        case K_OUT_OF_RANGE:
            fl_store_be32(buf + other * FL_SA_REC_KEYS, 8);
            break;
        case K_SAME_KEY: /* a peer's spk equal to another's cpk */
            memcpy(buf + other * FL_SA_REC_KEYS + 36, buf + other2 * FL_SA_REC_KEYS + 4, 32);
            break;
        case K_TRUNCATED:
            len -= 3;
            break;
        case K_LOW_ORDER: /* the identity point: X25519 gives zero */
            memset(buf + other * FL_SA_REC_KEYS + 4, 0, 32);
            want = FL_ECRYPTO;
            break;
        default: /* -1: the honest records */
            want = 0;
            break;
        }
        const uint8_t *out;
        size_t olen;
        /* masking and sa.mreq before sa.keys: out of order */
        float x = 0.5f;
        uint32_t y[1];
        if (c == -1) {
            assert_int_equal(fl_sa_client_mask(cl, &x, 1, NULL, NULL, y, NULL), FL_ESTATE);
            assert_false(fl_sa_client_aborted(cl)); /* mask never aborts */
        }
        int rc = fl_sa_client_on_keys(cl, buf, len, &out, &olen);
        if (want == 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(olen, 4 * FL_SA_REC_SHR);
            for (size_t i = 0; i < 4; i++) {
                uint32_t dst = fl_load_be32(out + i * FL_SA_REC_SHR);
                assert_true(dst != u && fl_sagraph_position(w.g, u, dst) >= 0);
            }
            /* a second sa.keys is out of order, and aborts */
            s_aborted(cl, fl_sa_client_on_keys(cl, buf, len, &out, &olen), FL_ESTATE);
        } else {
            s_aborted(cl, rc, want);
        }
        s_world_free(&w);
    }
    /* sa.mreq first: out of order, aborting */
    s_world_t w;
    s_world_init(&w, &s, false);
    s_aborted(w.cl[1], fl_sa_client_on_mreq(w.cl[1], buf, 0), FL_ESTATE);
    s_world_free(&w);
    free(buf);
}

typedef enum {
    M_FLIPPED,
    M_NON_PEER,
    M_SELF,
    M_DUP,
    M_WRONG_DST,
    M_FEW,
    M_TRUNCATED,
    M_COUNT
} s_mreq_case_t;

static void
test_client_mreq_refusals(void **state)
{
    (void)state;
    fl_sa_setup_t s = s_small();
    const uint32_t u = 0;
    uint8_t *buf = malloc(64 * FL_SA_REC_MREQ);
    for (int c = -1; c < M_COUNT; c++) {
        s_world_t w;
        s_world_init(&w, &s, true);
        fl_sa_client_t *cl = w.cl[u];
        size_t len = s_world_mreq(&w, u, buf);
        assert_int_equal(len, 4 * FL_SA_REC_MREQ);
        int want = FL_EPROTO;
        switch (c) {
        case M_FLIPPED: /* one bit of the ciphertext */
            buf[2 * FL_SA_REC_MREQ + 4 + 60] ^= 0x04;
            want = FL_ECRYPTO;
            break;
        case M_NON_PEER: {
            uint32_t far = 0;
            for (uint32_t v = 0; v < s.n; v++)
                if (fl_sagraph_position(w.g, u, v) < 0)
                    far = v;
            fl_store_be32(buf + FL_SA_REC_MREQ, far);
            break;
        }
        case M_SELF:
            fl_store_be32(buf + FL_SA_REC_MREQ, u);
            break;
        case M_DUP:
            memcpy(buf + FL_SA_REC_MREQ, buf, FL_SA_REC_MREQ);
            break;
        case M_WRONG_DST: { /* an envelope of peer v for another client w */
            uint32_t v = fl_load_be32(buf), other = u;
            const uint8_t *sv = w.shr + (size_t)v * w.size * FL_SA_REC_SHR;
            for (uint32_t i = 0; i + 1 < w.size; i++)
                if (fl_load_be32(sv + i * FL_SA_REC_SHR) != u) {
                    other = fl_load_be32(sv + i * FL_SA_REC_SHR);
                    memcpy(buf + 4, sv + i * FL_SA_REC_SHR + 4, FL_SA_ENVELOPE_LEN);
                    break;
                }
            assert_true(other != u);
            want = FL_ECRYPTO;
            break;
        }
        case M_FEW: /* one peer: with self 2 < t = 3 */
            len = FL_SA_REC_MREQ;
            want = FL_ERANGE;
            break;
        case M_TRUNCATED:
            len -= 1;
            break;
        default:
            want = 0;
            break;
        }
        int rc = fl_sa_client_on_mreq(cl, buf, len);
        if (want == 0) {
            assert_int_equal(rc, 0);
            s_aborted(cl, fl_sa_client_on_mreq(cl, buf, len), FL_ESTATE);
        } else {
            s_aborted(cl, rc, want);
        }
        s_world_free(&w);
    }
    free(buf);
}

typedef enum {
    U_BOTH,
    U_SELF_DEAD,
    U_SELF_MISSING,
    U_NOT_IN_U2,
    U_FEW_ALIVE,
    U_BAD_STATUS,
    U_FLIP,
    U_TRUNCATED,
    U_BEFORE_MASK,
    U_COUNT
} s_unmask_case_t;

static void
test_client_unmask_refusals(void **state)
{
    (void)state;
    fl_sa_setup_t s = s_small();
    const uint32_t u = 0;
    uint8_t *mreq = malloc(64 * FL_SA_REC_MREQ), *um = malloc(64 * FL_SA_REC_UNMASK);
    for (int c = -1; c < U_COUNT; c++) {
        s_world_t w;
        s_world_init(&w, &s, true);
        fl_sa_client_t *cl = w.cl[u];
        size_t len = s_world_mreq(&w, u, mreq);
        uint32_t missing = UINT32_MAX;
        if (c == U_NOT_IN_U2) { /* one peer's envelope never came */
            missing = fl_load_be32(mreq + 3 * FL_SA_REC_MREQ);
            len -= FL_SA_REC_MREQ;
        }
        assert_int_equal(fl_sa_client_on_mreq(cl, mreq, len), 0);
        float x = 0.25f;
        uint32_t y[1];
        size_t sat = 7;
        if (c != U_BEFORE_MASK) {
            assert_int_equal(fl_sa_client_mask(cl, &x, 1, NULL, NULL, y, &sat), 0);
            assert_int_equal(sat, 0);
            /* masking twice would leak the difference of the inputs */
            assert_int_equal(fl_sa_client_mask(cl, &x, 1, NULL, NULL, y, &sat), FL_ESTATE);
            assert_false(fl_sa_client_aborted(cl));
        }
        /* all neighbours alive but the last one (dead) */
        size_t m = 0;
        for (uint32_t p = 0; p < w.size; p++) {
            uint32_t v = fl_sagraph_at(w.g, u, p);
            if (v == missing)
                continue;
            fl_store_be32(um + m * FL_SA_REC_UNMASK, v);
            um[m * FL_SA_REC_UNMASK + 4] = FL_SA_ALIVE;
            m++;
        }
        size_t dead = m - 1;
        if (fl_load_be32(um + dead * FL_SA_REC_UNMASK) == u)
            dead--;
        um[dead * FL_SA_REC_UNMASK + 4] = FL_SA_DEAD;
        size_t ulen = m * FL_SA_REC_UNMASK;
        size_t self_rec = 0;
        while (fl_load_be32(um + self_rec * FL_SA_REC_UNMASK) != u)
            self_rec++;
        int want = FL_EPROTO;
        const uint8_t *out;
        size_t olen;
        switch (c) {
        case U_BOTH: { /* the dead peer listed alive too, in place of another */
            size_t other = (self_rec + 1) % m;
            if (other == dead)
                other = (other + 1) % m;
            memcpy(um + other * FL_SA_REC_UNMASK, um + dead * FL_SA_REC_UNMASK,
                   FL_SA_REC_UNMASK);
            um[other * FL_SA_REC_UNMASK + 4] = FL_SA_ALIVE;
            break;
        }
        case U_SELF_DEAD:
            um[self_rec * FL_SA_REC_UNMASK + 4] = FL_SA_DEAD;
            break;
        case U_SELF_MISSING:
            memcpy(um + self_rec * FL_SA_REC_UNMASK, um + (m - 1) * FL_SA_REC_UNMASK,
                   FL_SA_REC_UNMASK);
            ulen -= FL_SA_REC_UNMASK; /* (if self was last, it is just cut off) */
            break;
        case U_NOT_IN_U2:
            fl_store_be32(um + ulen, missing);
            um[ulen + 4] = FL_SA_DEAD;
            ulen += FL_SA_REC_UNMASK;
            break;
        case U_FEW_ALIVE: /* all but self dead: 1 < t = 3 */
            for (size_t i = 0; i < m; i++)
                if (i != self_rec)
                    um[i * FL_SA_REC_UNMASK + 4] = FL_SA_DEAD;
            want = FL_ERANGE;
            break;
        case U_BAD_STATUS:
            um[dead * FL_SA_REC_UNMASK + 4] = 2;
            break;
        case U_FLIP: { /* first call fine; then a live peer listed dead */
            assert_int_equal(fl_sa_client_on_unmask(cl, um, ulen, &out, &olen), 0);
            size_t alive = (self_rec + 1) % m;
            if (alive == dead)
                alive = (alive + 1) % m;
            um[alive * FL_SA_REC_UNMASK + 4] = FL_SA_DEAD;
            want = FL_ESTATE;
            break;
        }
        case U_TRUNCATED:
            ulen -= 2;
            break;
        case U_BEFORE_MASK:
            want = FL_ESTATE;
            break;
        default:
            want = 0;
            break;
        }
        int rc = fl_sa_client_on_unmask(cl, um, ulen, &out, &olen);
        if (want == 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(olen, m * FL_SA_REC_SHARES);
            for (size_t i = 0; i < m; i++) {
                assert_memory_equal(out + i * FL_SA_REC_SHARES, um + i * FL_SA_REC_UNMASK, 5);
                assert_int_equal(out[i * FL_SA_REC_SHARES + 4], i == dead ? FL_SA_DEAD : 0);
            }
            /* the same request again is answered the same way */
            uint8_t *copy = malloc(olen);
            memcpy(copy, out, olen);
            assert_int_equal(fl_sa_client_on_unmask(cl, um, ulen, &out, &olen), 0);
            assert_memory_equal(copy, out, olen);
            free(copy);
            assert_false(fl_sa_client_aborted(cl));
        } else {
            if (c == U_BOTH)
                assert_non_null(strstr(fl_errmsg(), "second time"));
            s_aborted(cl, rc, want);
        }
        s_world_free(&w);
    }
    free(mreq), free(um);
}

/* mask() refusals that do not abort. */
static void
test_client_mask_errors(void **state)
{
    (void)state;
    fl_sa_setup_t s = s_small();
    s.dim = 3;
    s.wmax = 10;
    s_world_t w;
    s_world_init(&w, &s, true);
    uint8_t *mreq = malloc(64 * FL_SA_REC_MREQ);
    size_t len = s_world_mreq(&w, 0, mreq);
    assert_int_equal(fl_sa_client_on_mreq(w.cl[0], mreq, len), 0);
    float x[3] = {0.5f, NAN, 0.1f};
    uint32_t y[4];
    size_t sat;
    assert_int_equal(fl_sa_client_mask(w.cl[0], x, 1, NULL, NULL, y, &sat), FL_ENONFINITE);
    x[1] = 3.0f;
    assert_int_equal(fl_sa_client_mask(w.cl[0], x, -1, NULL, NULL, y, &sat), FL_EINVAL);
    assert_int_equal(fl_sa_client_mask(w.cl[0], x, NAN, NULL, NULL, y, &sat), FL_EINVAL);
    assert_false(fl_sa_client_aborted(w.cl[0]));
    /* weight 10 = wmax: w_q = T, so 3.0 saturates; weight 2: 3.0 * 0.2 = 0.6 does not */
    assert_int_equal(fl_sa_client_mask(w.cl[0], x, 10, NULL, NULL, y, &sat), 0);
    assert_int_equal(sat, 1);
    s_world_free(&w);
    s_world_init(&w, &s, true);
    len = s_world_mreq(&w, 0, mreq);
    assert_int_equal(fl_sa_client_on_mreq(w.cl[0], mreq, len), 0);
    assert_int_equal(fl_sa_client_mask(w.cl[0], x, 2, NULL, NULL, y, &sat), 0);
    assert_int_equal(sat, 0);
    s_world_free(&w);
    free(mreq);
}

/* ---- 4. forged shares ---- */

/* Run a full n = 8 (t = 6) round with drops, holder h flipping one bit of
 * its share of owner o's secret (limb 4) in sa.shares. Returns finish's
 * code. */
static int
s_forged(uint32_t h, uint32_t o, const uint32_t *drops, size_t ndrops, uint64_t seed)
{
    fl_sa_setup_t s = s_full(8, 0, 70 + seed);
    s_rt_t rt;
    s_rt_init(&rt, &s, seed);
    for (size_t i = 0; i < ndrops; i++)
        rt.drop[drops[2 * i]] = (uint8_t)drops[2 * i + 1];
    fl_sa_server_t *srv = rt.srv;
    const uint8_t *recs;
    size_t len;
    assert_int_equal(s_run_until(&rt, FL_SA_PH_UNMASK), 0);
    bool forged = false;
    for (uint32_t u = 0; u < s.n; u++) {
        if (!fl_sa_server_member(srv, u, 3))
            continue;
        s_unmask(&rt, u, &recs, &len);
        if (rt.drop[u] == DROP_SHARES)
            continue;
        uint8_t *copy = malloc(len);
        memcpy(copy, recs, len);
        if (u == h)
            for (size_t i = 0; i < len / FL_SA_REC_SHARES; i++)
                if (fl_load_be32(copy + i * FL_SA_REC_SHARES) == o) {
                    /* flip bit 1 of limb 4, or bit 31 if that left the field */
                    uint8_t *limb = copy + i * FL_SA_REC_SHARES + 5 + 4 * 4;
                    uint32_t v = fl_load_be32(limb) ^ 0x02u;
                    fl_store_be32(limb, v < FL_SHAMIR_P ? v : (v ^ 0x02u) ^ 0x80000000u);
                    forged = true;
                }
        assert_int_equal(fl_sa_server_on_shares(srv, u, copy, len), 0);
        free(copy);
    }
    assert_true(forged);
    assert_true(fl_sa_server_ready(srv));
    int rc = fl_sa_server_finish(srv, rt.out, &rt.wsum);
    if (rc == 0) {
        s_check(&rt); /* would fail: a forged share went unnoticed */
        /* it was found, discarded, and its holder named */
        uint32_t ex[8];
        assert_int_equal(fl_sa_server_excluded(srv, ex, 8), 1);
        assert_int_equal(ex[0], h);
    } else {
        assert_int_equal(fl_sa_server_phase(srv), FL_SA_PH_FAILED);
    }
    s_rt_free(&rt);
    return rc;
}

static void
test_forged_share(void **state)
{
    (void)state;
    /* all 8 holders answer (t = 6, so t + 2 shares): a forged b share is
     * caught wherever it sits, found by leaving one out, discarded, and the
     * round still gives the exact sum (s_forged checks it and the holder) */
    assert_int_equal(s_forged(0, 5, NULL, 0, 1), 0); /* among the first t */
    assert_int_equal(s_forged(7, 2, NULL, 0, 2), 0); /* beyond them */
    assert_int_equal(s_forged(6, 6, NULL, 0, 3), 0); /* its own b share */
    /* t + 1 shares (one holder silent): the forgery shows, but which share
     * it is cannot be told: the round fails rather than risk a wrong sum */
    uint32_t one[] = {4, DROP_SHARES};
    assert_int_equal(s_forged(0, 5, one, 1, 6), FL_ECRYPTO);
    assert_non_null(strstr(fl_errmsg(), "client 5's b"));
    assert_non_null(strstr(fl_errmsg(), "t + 2 shares would be needed"));
    /* exactly t shares of a dropped client's s_sk: the rebuilt key does not
     * match its advertised spk */
    uint32_t d[] = {3, DROP_MASKED, 4, DROP_SHARES};
    assert_int_equal(s_forged(1, 3, d, 2, 4), FL_ECRYPTO);
    assert_non_null(strstr(fl_errmsg(), "client 3"));
    /* exactly t shares of a b: no share can be told wrong (any t points fit
     * a polynomial), but the wrong mask makes the sum decode out of range */
    uint32_t e[] = {4, DROP_SHARES, 5, DROP_SHARES};
    int rc = s_forged(1, 2, e, 2, 5);
    assert_true(rc == FL_ECRYPTO || rc == FL_ERANGE);
    /* and an honest round with the same drops goes through */
    fl_sa_setup_t s = s_full(8, 0, 75);
    s_round_ok(&s, 5, d, 2);
}

/* ---- 5. the setup check ---- */

static void
test_setup_check(void **state)
{
    (void)state;
    fl_sa_setup_t ok = s_full(10, 0, 1);
    assert_int_equal(fl_sa_setup_check(&ok), 0);
    fl_sa_setup_t h = s_setup(16, 6, 4, false, 32, 1u << 16, 1.0, 2.0, 10, 1);
    assert_int_equal(fl_sa_setup_check(&h), 0);
    assert_int_equal(fl_sa_setup_words(&h), 11);
    assert_int_equal(fl_sa_setup_words(&ok), 1000);

    struct {
        fl_sa_setup_t s;
        const char *field;
    } bad[32];
    size_t nb = 0;
#define BAD(base, stmt, name)                                                                      \
    do {                                                                                           \
        bad[nb].s = base;                                                                          \
        fl_sa_setup_t *b_ = &bad[nb].s;                                                            \
        stmt;                                                                                      \
        bad[nb++].field = name;                                                                    \
    } while (0)
    BAD(ok, b_->n = 1, "n =");
    BAD(ok, (b_->n = FL_SAGRAPH_MAX_N + 1, b_->k = b_->n - 1), "n =");
    BAD(ok, b_->idx = 10, "idx");
    BAD(ok, b_->k = 8, "k =");                  /* full with k != n - 1 */
    BAD(h, b_->k = 5, "k =");                   /* odd Harary degree */
    BAD(h, b_->k = 0, "k =");
    BAD(h, b_->k = 15, "k =");                  /* not below n - 1 */
    BAD(h, (b_->n = 100000, b_->full = true, b_->k = 99999), "Shamir");
    BAD(h, b_->t = 8, "t =");                   /* > k + 1 */
    BAD(h, b_->t = 1, "t =");
    BAD(ok, b_->bits = 0, "bits");
    BAD(ok, b_->bits = 33, "bits");
    BAD(ok, b_->levels = 0, "levels");
    BAD(ok, (b_->bits = 20, b_->levels = 1u << 17), "levels"); /* 10 clients: at most 2^16 */
    BAD(ok, b_->levels = 1u << 29, "levels");
    BAD(ok, b_->clip = 0, "clip");
    BAD(ok, b_->clip = -1, "clip");
    BAD(ok, b_->clip = INFINITY, "clip");
    BAD(ok, b_->clip = NAN, "clip");
    BAD(ok, b_->wmax = NAN, "wmax");
    BAD(ok, b_->wmax = -1, "wmax");
    BAD(ok, b_->wmax = INFINITY, "wmax");
    BAD(ok, b_->dim = 0, "dim");
    BAD(ok, b_->dim = (UINT64_C(1) << 31) + 1, "dim");
#undef BAD
    for (size_t i = 0; i < nb; i++) {
        int rc = fl_sa_setup_check(&bad[i].s);
        if (rc != FL_EINVAL || !strstr(fl_errmsg(), bad[i].field))
            fail_msg("case %zu: %s (%s), want a detail naming '%s'", i, fl_strerror(rc),
                     fl_errmsg(), bad[i].field);
        fl_sa_client_t *c = NULL;
        fl_sa_server_t *srv = NULL;
        assert_int_equal(fl_sa_client_new(&bad[i].s, &c), FL_EINVAL);
        assert_null(c);
        if (bad[i].s.idx < bad[i].s.n) { /* the server ignores idx */
            assert_int_equal(fl_sa_server_new(&bad[i].s, &srv), FL_EINVAL);
            assert_null(srv);
        }
    }
    /* the boundaries that are fine */
    fl_sa_setup_t b = ok;
    b.dim = UINT64_C(1) << 31;
    assert_int_equal(fl_sa_setup_check(&b), 0);
    b = ok;
    b.levels = 1u << 28; /* 10 clients, 4 bits */
    assert_int_equal(fl_sa_setup_check(&b), 0);
    b = h;
    b.t = b.k + 1;
    assert_int_equal(fl_sa_setup_check(&b), 0);
    b = s_full(2, 0, 1);
    b.t = 2;
    assert_int_equal(fl_sa_setup_check(&b), 0);
    b = ok;
    b.idx = 10;
    fl_sa_server_t *srv = NULL;
    assert_int_equal(fl_sa_server_new(&b, &srv), 0); /* idx ignored */
    assert_string_equal(fl_sa_phase_name(fl_sa_server_phase(srv)), "adv");
    assert_int_equal(fl_sa_server_count(srv, 0), 10);
    assert_int_equal(fl_sa_server_count(srv, 9), 0);
    assert_false(fl_sa_server_member(srv, 0, 1));
    assert_true(fl_sa_server_member(srv, 9, 0));
    assert_false(fl_sa_server_member(srv, 10, 0));
    assert_false(fl_sa_server_ready(srv));
    assert_string_equal(fl_sa_server_failure(srv), "");
    fl_sa_server_destroy(&srv);
    assert_null(srv);
    fl_sa_server_destroy(NULL);
    fl_sa_client_destroy(NULL);
    assert_string_equal(fl_sa_phase_name(FL_SA_PH_SHR), "shr");
    assert_string_equal(fl_sa_phase_name(FL_SA_PH_MASKED), "masked");
    assert_string_equal(fl_sa_phase_name(FL_SA_PH_UNMASK), "unmask");
    assert_string_equal(fl_sa_phase_name(FL_SA_PH_DONE), "done");
    assert_string_equal(fl_sa_phase_name(FL_SA_PH_FAILED), "failed");
    assert_non_null(fl_sa_phase_name((fl_sa_phase_t)42));
}

/* ---- 6. the session id ---- */

static void
test_sid(void **state)
{
    (void)state;
    fl_sa_setup_t s = s_setup(16, 6, 4, false, 24, 1u << 12, 0.75, 3.5, 1234, 77);
    s.attempt = 2;
    uint8_t a[32], b[32];
    fl_sa_setup_sid(&s, a);
    fl_sa_setup_t c = s;
    c.idx = 9; /* idx is not part of it */
    fl_sa_setup_sid(&c, b);
    assert_memory_equal(a, b, 32);

    /* the documented layout, hashed independently */
    uint8_t bytes[76], want[32];
    memcpy(bytes, "covey/sa-setup/v1", 17);
    uint8_t *p = bytes + 17;
    uint64_t clip, wmax;
    memcpy(&clip, &s.clip, 8);
    memcpy(&wmax, &s.wmax, 8);
    const struct {
        uint64_t v;
        unsigned len;
    } f[] = {{s.round, 8}, {s.attempt, 8}, {s.n, 4},      {s.k, 4},    {s.t, 4}, {0, 1},
             {s.bits, 1},  {s.levels, 4},  {clip, 8},     {wmax, 8},   {s.dim, 8}, {0, 1}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        for (unsigned j = 0; j < f[i].len; j++)
            *p++ = (uint8_t)(f[i].v >> 8 * (f[i].len - 1 - j));
    assert_true(p == bytes + sizeof bytes);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)"FLSA/v1/sid", 11);
    crypto_generichash_update(&st, s.nonce, 32);
    crypto_generichash_update(&st, bytes, sizeof bytes);
    crypto_generichash_final(&st, want, 32);
    assert_memory_equal(a, want, 32);

    /* every field but idx changes it */
    for (int i = 0; i < 14; i++) {
        c = s;
        switch (i) {
        case 0: c.round++; break;
        case 1: c.attempt++; break;
        case 2: c.n++; break;
        case 3: c.k += 2; break;
        case 4: c.t++; break;
        case 5: c.bits--; break;
        case 6: c.levels++; break;
        case 7: c.clip = nextafter(c.clip, 1); break;
        case 8: c.wmax = 0; break;
        case 9: c.dim++; break;
        case 10: c.nonce[31] ^= 1; break;
        case 11: c.full = true; break;
        case 12: c.active = true; break;
        default: c.nonce[0] ^= 0x80; break;
        }
        fl_sa_setup_sid(&c, b);
        if (memcmp(a, b, 32) == 0)
            fail_msg("changing field %d leaves the sid unchanged", i);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setup_check),
        cmocka_unit_test(test_sid),
        cmocka_unit_test(test_rounds_full),
        cmocka_unit_test(test_captured_inputs_uncorrelated),
        cmocka_unit_test(test_rounds_harary),
        cmocka_unit_test(test_dropouts),
        cmocka_unit_test(test_below_threshold),
        cmocka_unit_test(test_server_refusals),
        cmocka_unit_test(test_client_keys_refusals),
        cmocka_unit_test(test_client_mreq_refusals),
        cmocka_unit_test(test_client_unmask_refusals),
        cmocka_unit_test(test_client_mask_errors),
        cmocka_unit_test(test_forged_share),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
