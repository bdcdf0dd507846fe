/*
 * sahelp.h — the in-memory SecAgg round driver shared by test_saproto
 * (semi-honest model) and test_saactive (active model): one server and n
 * clients, records handed from one to the other, drops at every phase, and
 * the check that the result is exactly the decoding of the plaintext sum of
 * the U3 clients' encodings. In the active model every client gets a fresh
 * CURVE key, the identity derived from it and a certificate from one test CA
 * (rt->ca), and the round has its R3 phase (sa.chk / sa.sig).
 * Header-only (static inline), like testutil.h, so each test stays one
 * translation unit and uses only the helpers it needs.
 */
#ifndef COVEY_SAHELP_H
#define COVEY_SAHELP_H

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
#include <zmq.h>

#include "fl_identity.h"
#include "fl_rng.h"
#include "fl_saclient.h"
#include "fl_sagraph.h"
#include "fl_saserver.h"
#include "fl_secagg.h"
#include "fl_shamir.h"
#include "fl_sign.h"
#include "fl_util.h"

static inline fl_sa_setup_t
s_setup(uint32_t n, uint32_t k, uint32_t t, bool full, unsigned bits, uint32_t levels,
        double clip, double wmax, uint64_t dim, uint64_t round)
{
    fl_sa_setup_t s = {.round = round, .attempt = 1, .n = n, .k = k, .t = t, .full = full,
                       .bits = bits, .levels = levels, .clip = clip, .wmax = wmax, .dim = dim};
    for (int i = 0; i < FL_SA_NONCE_LEN; i++)
        s.nonce[i] = (uint8_t)(round * 31 + (uint64_t)i);
    return s;
}

static inline fl_sa_setup_t
s_full(uint32_t n, double wmax, uint64_t round)
{
    return s_setup(n, n - 1, fl_sagraph_full_threshold(n), true, 32, 1u << 16, 1.0, wmax, 1000,
                   round);
}

/* ---- identities (active model) ---- */

/* An agent's identity as enrolment makes it: a fresh CURVE key pair, the
 * identity key derived from its secret, and a certificate from ca. */
typedef struct {
    fl_identity_t *id;
    uint8_t curve_pk[32];
    uint8_t cert[FL_CERT_LEN];
} s_ident_t;

static inline void
s_ident_make(const fl_signkey_t *ca, s_ident_t *ident)
{
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_non_null(zmq_z85_decode(ident->curve_pk, pub));
    assert_int_equal(fl_identity_derive(sec, &ident->id), 0);
    sodium_memzero(sec, sizeof sec);
    assert_int_equal(
        fl_cert_issue(ca, ident->curve_pk, fl_identity_public(ident->id), ident->cert), 0);
}

static inline void
s_ident_free(s_ident_t *ident)
{
    fl_identity_destroy(&ident->id);
}

/* ---- a round in memory ---- */

/* When a client drops: it never advertises, never shares, never sends its
 * masked input, never sends its unmasking shares, or (active model) never
 * signs U3 (it stays in U3, so its input counts, but not in U4). */
typedef enum { LIVE = 0, DROP_ADV, DROP_SHR, DROP_MASKED, DROP_SHARES, DROP_SIG } s_drop_t;

typedef struct {
    fl_sa_setup_t s;
    uint64_t seed;
    size_t dim, words;
    fl_sa_server_t *srv;
    fl_sa_client_t **cl;
    uint8_t *drop; /* s_drop_t per client */
    float *x;      /* [n][dim] inputs */
    double *w;     /* [n] weights */
    uint32_t *y;   /* [n][words] masked inputs */
    float *out;
    double wsum;
    fl_rng_t rng;  /* chunk sizes */
    fl_signkey_t *ca; /* active model: the identity CA */
    s_ident_t *ids;   /* [n] active model: each client's identity */
} s_rt_t;

static inline void
s_rt_init(s_rt_t *rt, const fl_sa_setup_t *s, uint64_t seed)
{
    memset(rt, 0, sizeof *rt);
    rt->s = *s;
    rt->seed = seed;
    rt->dim = (size_t)s->dim;
    rt->words = (size_t)fl_sa_setup_words(s);
    uint32_t n = s->n;
    assert_int_equal(fl_sa_server_new(s, &rt->srv), 0);
    assert_int_equal(fl_sa_server_phase(rt->srv), FL_SA_PH_ADV);
    assert_int_equal(fl_sa_server_words(rt->srv), rt->words);
    rt->cl = calloc(n, sizeof *rt->cl);
    rt->drop = calloc(n, 1);
    rt->x = malloc((size_t)n * rt->dim * sizeof *rt->x);
    rt->w = malloc(n * sizeof *rt->w);
    rt->y = calloc((size_t)n * rt->words, sizeof *rt->y);
    rt->out = malloc(rt->dim * sizeof *rt->out);
    fl_rng_seed(&rt->rng, seed, 0);
    for (uint32_t u = 0; u < n; u++) {
        fl_sa_setup_t cs = *s;
        cs.idx = u;
        assert_int_equal(fl_sa_client_new(&cs, &rt->cl[u]), 0);
        assert_false(fl_sa_client_aborted(rt->cl[u]));
        assert_int_equal(fl_sa_client_setup(rt->cl[u])->idx, u);
        fl_rng_t r;
        fl_rng_seed(&r, seed, 1 + u);
        for (size_t i = 0; i < rt->dim; i++) /* about 9% outside the clip range */
            rt->x[(size_t)u * rt->dim + i] = (float)((fl_rng_uniform(&r) * 2.2 - 1.1) * s->clip);
        rt->w[u] = s->wmax * (0.1 + 1.4 * fl_rng_uniform(&r)); /* some above wmax */
    }
    if (!s->active)
        return;
    rt->ca = fl_signkey_generate();
    assert_non_null(rt->ca);
    assert_int_equal(fl_sa_server_set_ca(rt->srv, fl_signkey_public(rt->ca)), 0);
    rt->ids = calloc(n, sizeof *rt->ids);
    for (uint32_t u = 0; u < n; u++) {
        s_ident_make(rt->ca, &rt->ids[u]);
        assert_int_equal(fl_sa_client_set_identity(rt->cl[u], rt->ids[u].id, rt->ids[u].cert,
                                                   fl_signkey_public(rt->ca)),
                         0);
    }
}

static inline void
s_rt_free(s_rt_t *rt)
{
    for (uint32_t u = 0; u < rt->s.n; u++)
        fl_sa_client_destroy(&rt->cl[u]);
    fl_sa_client_destroy(&rt->cl[0]); /* idempotent */
    fl_sa_server_destroy(&rt->srv);
    fl_sa_server_destroy(&rt->srv);
    for (uint32_t u = 0; rt->ids && u < rt->s.n; u++)
        s_ident_free(&rt->ids[u]);
    fl_signkey_destroy(&rt->ca);
    free(rt->cl), free(rt->drop), free(rt->x), free(rt->w), free(rt->y), free(rt->out);
    free(rt->ids);
}

/* The rounding randomness of client u (the same for the reference). */
static inline void
s_round_rng(const s_rt_t *rt, uint32_t u, fl_rng_t *r)
{
    fl_rng_seed(r, rt->seed, 1000 + u);
}

/* Client u's sa.adv (signed, with its certificate, in the active model). */
static inline void
s_adv(s_rt_t *rt, uint32_t u)
{
    const uint8_t *cpk = fl_sa_client_cpk(rt->cl[u]), *spk = fl_sa_client_spk(rt->cl[u]);
    if (!rt->s.active) {
        assert_int_equal(fl_sa_server_on_adv(rt->srv, u, cpk, spk), 0);
        return;
    }
    uint8_t sig[FL_SIGN_SIG_LEN];
    assert_int_equal(fl_sa_client_adv_sig(rt->cl[u], sig), 0);
    int rc = fl_sa_server_on_adv_signed(rt->srv, u, cpk, spk, sig, rt->ids[u].cert);
    if (rc != 0)
        fail_msg("client %u on_adv_signed: %s", u, fl_errmsg());
}

/* keys_for -> on_keys: the client's sa.shr records (borrowed from it). */
static inline void
s_keys(s_rt_t *rt, uint32_t u, const uint8_t **shr, size_t *shr_len)
{
    const uint8_t *keys;
    size_t len;
    size_t rl = fl_sa_rec_keys_len(&rt->s);
    assert_int_equal(fl_sa_server_keys_for(rt->srv, u, &keys, &len), 0);
    assert_true(len % rl == 0);
    int rc = fl_sa_client_on_keys(rt->cl[u], keys, len, shr, shr_len);
    if (rc != 0)
        fail_msg("client %u on_keys: %s", u, fl_errmsg());
    assert_int_equal(*shr_len, len / rl * FL_SA_REC_SHR - FL_SA_REC_SHR);
}

static inline void
s_saturation_ref(const s_rt_t *rt, uint32_t u, uint32_t wq, size_t *sat)
{
    double scale = rt->s.wmax > 0 ? (double)wq / rt->s.levels : 1.0;
    size_t c = 0;
    for (size_t i = 0; i < rt->dim; i++)
        c += fabs(scale * rt->x[(size_t)u * rt->dim + i]) > rt->s.clip;
    *sat = c;
}

/* mreq_for -> on_mreq -> mask into y[u]. */
static inline void
s_mask(s_rt_t *rt, uint32_t u)
{
    const uint8_t *mreq;
    size_t len;
    assert_int_equal(fl_sa_server_mreq_for(rt->srv, u, &mreq, &len), 0);
    int rc = fl_sa_client_on_mreq(rt->cl[u], mreq, len);
    if (rc != 0)
        fail_msg("client %u on_mreq: %s", u, fl_errmsg());
    fl_rng_t r;
    s_round_rng(rt, u, &r);
    uint32_t *y = rt->y + (size_t)u * rt->words;
    size_t sat = 0, want = 0;
    rc = fl_sa_client_mask(rt->cl[u], rt->x + (size_t)u * rt->dim, rt->w[u], fl_sa_rand_fl_rng,
                           &r, y, &sat);
    if (rc != 0)
        fail_msg("client %u mask: %s", u, fl_errmsg());
    /* the reference encoding: the masked input must hide it */
    uint32_t *q = malloc(rt->words * sizeof *q);
    s_round_rng(rt, u, &r);
    if (rt->s.wmax > 0)
        assert_int_equal(fl_sa_quantize_weighted(rt->x + (size_t)u * rt->dim, rt->dim, rt->w[u],
                                                 rt->s.wmax, rt->s.clip, rt->s.levels,
                                                 fl_sa_rand_fl_rng, &r, q),
                         0);
    else
        assert_int_equal(fl_sa_quantize(rt->x + (size_t)u * rt->dim, rt->dim, rt->s.clip,
                                        rt->s.levels, fl_sa_rand_fl_rng, &r, q),
                         0);
    size_t same = 0;
    for (size_t i = 0; i < rt->words; i++)
        same += y[i] == q[i];
    assert_true(same <= rt->words / 8 + 2);
    uint32_t lim = rt->s.bits == 32 ? UINT32_MAX : (1u << rt->s.bits) - 1;
    for (size_t i = 0; i < rt->words; i++)
        assert_true(y[i] <= lim);
    s_saturation_ref(rt, u, q[0], &want);
    assert_int_equal(sat, want);
    free(q);
}

/* input_begin, the words in random chunks, commit. */
static inline void
s_input(s_rt_t *rt, uint32_t u)
{
    const uint32_t *y = rt->y + (size_t)u * rt->words;
    assert_int_equal(fl_sa_server_input_begin(rt->srv, u), 0);
    for (size_t at = 0; at < rt->words;) {
        size_t len = 1 + (size_t)fl_rng_below(&rt->rng, 300);
        if (len > rt->words - at)
            len = rt->words - at;
        assert_int_equal(fl_sa_server_input_chunk(rt->srv, at, y + at, len), 0);
        at += len;
    }
    assert_int_equal(fl_sa_server_input_commit(rt->srv), 0);
}

/* unmask_for -> on_unmask: the client's sa.shares records (borrowed). */
static inline void
s_unmask(s_rt_t *rt, uint32_t u, const uint8_t **sh, size_t *sh_len)
{
    const uint8_t *um;
    size_t len;
    assert_int_equal(fl_sa_server_unmask_for(rt->srv, u, &um, &len), 0);
    int rc = fl_sa_client_on_unmask(rt->cl[u], um, len, sh, sh_len);
    if (rc != 0)
        fail_msg("client %u on_unmask: %s", u, fl_errmsg());
    assert_int_equal(*sh_len, len / fl_sa_rec_unmask_len(&rt->s) * FL_SA_REC_SHARES);
}

/* Active model: chk -> on_chk, client u's R3 signature into sig. */
static inline void
s_chk(s_rt_t *rt, uint32_t u, uint8_t sig[FL_SIGN_SIG_LEN])
{
    const uint8_t *map;
    size_t len;
    assert_int_equal(fl_sa_server_chk(rt->srv, &map, &len), 0);
    assert_int_equal(len, fl_sa_chk_len(rt->s.n));
    int rc = fl_sa_client_on_chk(rt->cl[u], map, len, sig);
    if (rc != 0)
        fail_msg("client %u on_chk: %s", u, fl_errmsg());
}

/* The clients' answers in the server's current phase: every member of the
 * phase's set answers, but those that drop here. */
static inline void
s_answer(s_rt_t *rt)
{
    fl_sa_server_t *srv = rt->srv;
    fl_sa_phase_t ph = fl_sa_server_phase(srv);
    const uint8_t *recs;
    size_t len;
    uint8_t sig[FL_SIGN_SIG_LEN];
    for (uint32_t u = 0; u < rt->s.n; u++) {
        uint8_t d = rt->drop[u];
        switch (ph) {
        case FL_SA_PH_ADV:
            if (d != DROP_ADV)
                s_adv(rt, u);
            break;
        case FL_SA_PH_SHR:
            if (!fl_sa_server_member(srv, u, 1))
                break;
            s_keys(rt, u, &recs, &len);
            if (d != DROP_SHR)
                assert_int_equal(fl_sa_server_on_shr(srv, u, recs, len), 0);
            break;
        case FL_SA_PH_MASKED:
            if (!fl_sa_server_member(srv, u, 2))
                break;
            s_mask(rt, u);
            if (d != DROP_MASKED)
                s_input(rt, u);
            break;
        case FL_SA_PH_CHK:
            if (!fl_sa_server_member(srv, u, 3))
                break;
            s_chk(rt, u, sig);
            if (d != DROP_SIG)
                assert_int_equal(fl_sa_server_on_sig(srv, u, sig), 0);
            break;
        case FL_SA_PH_UNMASK:
            if (!fl_sa_server_member(srv, u, 4))
                break;
            s_unmask(rt, u, &recs, &len);
            if (d != DROP_SHARES)
                assert_int_equal(fl_sa_server_on_shares(srv, u, recs, len), 0);
            break;
        default:
            fail_msg("s_answer in phase %s", fl_sa_phase_name(ph));
        }
    }
}

/* Close the server's current phase (finish, for UNMASK): 0 or its code. */
static inline int
s_close(s_rt_t *rt)
{
    fl_sa_server_t *srv = rt->srv;
    switch (fl_sa_server_phase(srv)) {
    case FL_SA_PH_ADV: return fl_sa_server_close_adv(srv);
    case FL_SA_PH_SHR: return fl_sa_server_close_shr(srv);
    case FL_SA_PH_MASKED: return fl_sa_server_close_masked(srv);
    case FL_SA_PH_CHK: return fl_sa_server_close_chk(srv);
    default: return fl_sa_server_finish(srv, rt->out, &rt->wsum);
    }
}

/* One phase of the round: the answers, then the close. Returns 0, or the
 * code of the close_* (or finish) that failed (the server is then FAILED). */
static inline int
s_step(s_rt_t *rt)
{
    s_answer(rt);
    return s_close(rt);
}

/* Run phases until the server is in phase `stop` (UNMASK or earlier), or a
 * close_* fails: returns 0 or its code. */
static inline int
s_run_until(s_rt_t *rt, fl_sa_phase_t stop)
{
    int rc = 0;
    while (rc == 0 && fl_sa_server_phase(rt->srv) != stop)
        rc = s_step(rt);
    return rc;
}

/* Run the round with the drops in rt->drop. Returns 0, or the code of the
 * close_* or finish that failed (the server is then FAILED). */
static inline int
s_run(s_rt_t *rt)
{
    int rc = s_run_until(rt, FL_SA_PH_UNMASK);
    return rc ? rc : s_step(rt);
}

/* The result is exactly the decoding of the plaintext sum of the U3
 * clients' encodings, and within the quantization bound of their inputs. */
static inline void
s_check(s_rt_t *rt)
{
    const fl_sa_setup_t *s = &rt->s;
    fl_sa_server_t *srv = rt->srv;
    assert_int_equal(fl_sa_server_phase(srv), FL_SA_PH_DONE);
    assert_string_equal(fl_sa_server_failure(srv), "");
    uint32_t mask = s->bits == 32 ? UINT32_MAX : (1u << s->bits) - 1;
    uint32_t *S = calloc(rt->words, sizeof *S), *q = malloc(rt->words * sizeof *q);
    uint32_t *wq = calloc(s->n, sizeof *wq);
    uint64_t n3 = 0;
    uint64_t n4 = 0;
    for (uint32_t u = 0; u < s->n; u++) {
        uint8_t d = rt->drop[u];
        bool in3 = d == LIVE || d == DROP_SHARES || d == DROP_SIG;
        bool in4 = s->active ? d == LIVE || d == DROP_SHARES : in3;
        assert_int_equal(fl_sa_server_member(srv, u, 3), in3);
        assert_int_equal(fl_sa_server_member(srv, u, 4), in4);
        assert_int_equal(fl_sa_server_member(srv, u, 5), d == LIVE);
        n4 += in4;
        if (!in3)
            continue;
        n3++;
        fl_rng_t r;
        s_round_rng(rt, u, &r);
        if (s->wmax > 0)
            assert_int_equal(fl_sa_quantize_weighted(rt->x + (size_t)u * rt->dim, rt->dim,
                                                     rt->w[u], s->wmax, s->clip, s->levels,
                                                     fl_sa_rand_fl_rng, &r, q),
                             0);
        else
            assert_int_equal(fl_sa_quantize(rt->x + (size_t)u * rt->dim, rt->dim, s->clip,
                                            s->levels, fl_sa_rand_fl_rng, &r, q),
                             0);
        wq[u] = q[0];
        for (size_t i = 0; i < rt->words; i++)
            S[i] = (S[i] + q[i]) & mask;
    }
    assert_int_equal(fl_sa_server_count(srv, 3), n3);
    assert_int_equal(fl_sa_server_count(srv, 4), n4);
    float *ref = malloc(rt->dim * sizeof *ref);
    double step = 2 * s->clip / s->levels;
    if (s->wmax > 0) {
        double wsum;
        assert_int_equal(
            fl_sa_dequantize_weighted(S, rt->dim, n3, s->clip, s->levels, ref, &wsum), 0);
        assert_true(wsum == rt->wsum);
        assert_memory_equal(ref, rt->out, rt->dim * sizeof *ref);
        /* the weighted mean of the clipped, weight-scaled inputs */
        double wtot = 0;
        for (uint32_t u = 0; u < s->n; u++)
            if (fl_sa_server_member(srv, u, 3))
                wtot += (double)wq[u] / s->levels;
        assert_true(fabs(wtot - wsum) < 1e-9);
        for (size_t i = 0; i < rt->dim; i++) {
            double num = 0;
            for (uint32_t u = 0; u < s->n; u++)
                if (fl_sa_server_member(srv, u, 3))
                    num += fmin(fmax((double)rt->x[(size_t)u * rt->dim + i] * wq[u] / s->levels,
                                     -s->clip),
                                s->clip);
            double want = num / wtot;
            if (!(fabs(rt->out[i] - want) <= (double)n3 * step / wtot + 1e-5 * (1 + fabs(want))))
                fail_msg("coordinate %zu: weighted mean %g, plaintext %g", i, (double)rt->out[i],
                         want);
        }
    } else {
        assert_int_equal(fl_sa_dequantize(S, rt->dim, n3, s->clip, s->levels, ref), 0);
        assert_true(rt->wsum == (double)n3);
        assert_memory_equal(ref, rt->out, rt->dim * sizeof *ref);
        for (size_t i = 0; i < rt->dim; i++) {
            double want = 0;
            for (uint32_t u = 0; u < s->n; u++)
                if (fl_sa_server_member(srv, u, 3))
                    want += fmin(fmax(rt->x[(size_t)u * rt->dim + i], -s->clip), s->clip);
            if (!(fabs(rt->out[i] - want) <= (double)n3 * step + 1e-5 * (1 + fabs(want))))
                fail_msg("coordinate %zu: sum %g, plaintext %g", i, (double)rt->out[i], want);
        }
    }
    free(S), free(q), free(wq), free(ref);
}

/* A whole round with drops; it must succeed and be right. */
static inline void
s_round_ok(const fl_sa_setup_t *s, uint64_t seed, const uint32_t *drops, size_t ndrops)
{
    s_rt_t rt;
    s_rt_init(&rt, s, seed);
    for (size_t i = 0; i < ndrops; i++)
        rt.drop[drops[2 * i]] = (uint8_t)drops[2 * i + 1];
    int rc = s_run(&rt);
    if (rc != 0)
        fail_msg("n=%u k=%u t=%u full=%d wmax=%g: %s (%s)", s->n, s->k, s->t, s->full, s->wmax,
                 fl_strerror(rc), fl_errmsg());
    s_check(&rt);
    s_rt_free(&rt);
}


/* The ring of a Harary setup: ring[pos] = client. Caller frees. */
static inline uint32_t *
s_ring_of(const fl_sa_setup_t *s)
{
    uint8_t sid[FL_SA_SID_LEN];
    fl_sa_setup_sid(s, sid);
    fl_sagraph_params_t gp = {.n = s->n, .k = s->k, .t = s->t, .full = s->full};
    fl_sagraph_t *g = NULL;
    assert_int_equal(fl_sagraph_new(&gp, sid, &g), 0);
    uint32_t *ring = malloc(s->n * sizeof *ring);
    for (uint32_t u = 0; u < s->n; u++)
        ring[fl_sagraph_ring_pos(g, u)] = u;
    fl_sagraph_destroy(&g);
    return ring;
}

/* The client failed with `code`, is aborted, and refuses everything. */
static inline void
s_aborted(fl_sa_client_t *c, int rc, int code)
{
    if (rc != code)
        fail_msg("want %s, got %s (%s)", fl_strerror(code), fl_strerror(rc), fl_errmsg());
    assert_true(fl_sa_client_aborted(c));
    const uint8_t *out;
    size_t olen;
    uint8_t rec[FL_SA_REC_UNMASK_ACTIVE] = {0}, sig[FL_SIGN_SIG_LEN];
    assert_int_equal(fl_sa_client_on_keys(c, rec, 0, &out, &olen), FL_ESTATE);
    assert_int_equal(fl_sa_client_on_mreq(c, rec, 0), FL_ESTATE);
    assert_int_equal(fl_sa_client_on_chk(c, rec, 1, sig), FL_ESTATE);
    assert_int_equal(fl_sa_client_on_unmask(c, rec, fl_sa_rec_unmask_len(fl_sa_client_setup(c)),
                                            &out, &olen),
                     FL_ESTATE);
    float x = 0;
    uint32_t y[2];
    assert_int_equal(fl_sa_client_mask(c, &x, 1, NULL, NULL, y, NULL), FL_ESTATE);
    assert_true(fl_sa_client_aborted(c));
}


#endif
