/*
 * test_saactive.c — unit tests of the active-server model of fl_saclient and
 * fl_saserver (SECAGG.md §1.5): R0 signatures and certificates from an
 * identity CA, and the R3 consistency round (sa.chk / sa.sig). The round
 * driver is sahelp.h's, shared with test_saproto. Whole rounds must decode
 * to exactly what the plaintext sum of the U3 clients' encodings decodes to,
 * with dropouts at every phase including R3; a client must abort, releasing
 * nothing, against a server that substitutes keys, invents or duplicates
 * identities, or shows clients different views of U3; the server must refuse
 * unsigned, uncertified and duplicated advertisements and bad signatures
 * without disturbing the round.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fl_identity.h"
#include "fl_saclient.h"
#include "fl_sagraph.h"
#include "fl_saserver.h"
#include "fl_sign.h"
#include "fl_util.h"
#include "sahelp.h"

static fl_sa_setup_t
s_active(fl_sa_setup_t s)
{
    s.active = true;
    return s;
}

/* A full-graph active round of n clients (t = floor(2n/3) + 1), dim 200. */
static fl_sa_setup_t
s_afull(uint32_t n, double wmax, uint64_t round)
{
    fl_sa_setup_t s = s_active(s_full(n, wmax, round));
    s.dim = 200;
    return s;
}

/* The record for client idx in the records recs[0..len) of rl bytes each. */
static uint8_t *
s_rec_of(uint8_t *recs, size_t len, size_t rl, uint32_t idx)
{
    for (size_t i = 0; i < len / rl; i++)
        if (fl_load_be32(recs + i * rl) == idx)
            return recs + i * rl;
    fail_msg("no record for client %u", idx);
    return recs; /* not reached */
}

/* An active sa.keys record for a fresh client at idx with identity `ident`
 * (certified by the CA whose public key is ca_pk): what a server that
 * invents or moves identities would forward. */
static void
s_forged_keys_rec(const fl_sa_setup_t *s, uint32_t idx, const s_ident_t *ident,
                  const uint8_t ca_pk[FL_SIGN_PK_LEN], uint8_t rec[FL_SA_REC_KEYS_ACTIVE])
{
    fl_sa_setup_t cs = *s;
    cs.idx = idx;
    fl_sa_client_t *c = NULL;
    assert_int_equal(fl_sa_client_new(&cs, &c), 0);
    assert_int_equal(fl_sa_client_set_identity(c, ident->id, ident->cert, ca_pk), 0);
    fl_store_be32(rec, idx);
    memcpy(rec + 4, fl_sa_client_cpk(c), 32);
    memcpy(rec + 36, fl_sa_client_spk(c), 32);
    assert_int_equal(fl_sa_client_adv_sig(c, rec + FL_SA_REC_KEYS), 0);
    memcpy(rec + FL_SA_REC_KEYS + FL_SIGN_SIG_LEN, ident->cert, FL_CERT_LEN);
    fl_sa_client_destroy(&c);
}

/* ---- 1. whole rounds ---- */

/*
 * Proves that the active model computes the same thing as the semi-honest
 * one: full graphs of 3, 5 and 16 and a Harary graph of 33, plain sum and
 * weighted mean, decode bit-identically to the plaintext sum of U3's
 * encodings (s_check), with drops at every phase. A client that drops in R3
 * (DROP_SIG: in U3, never signs) keeps its input in the sum; its b is rebuilt
 * from U4's shares, or the result could not be exact.
 */
static void
test_active_rounds(void **state)
{
    (void)state;
    static const uint32_t ns[] = {3, 5, 16};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        fl_sa_setup_t s = s_afull(ns[i], 0, 10 + i);
        s_round_ok(&s, 100 + i, NULL, 0);
        s = s_afull(ns[i], 1000, 20 + i);
        s_round_ok(&s, 200 + i, NULL, 0);
    }
    /* n = 5, t = 4: one client in U3 never signs */
    uint32_t one[] = {2, DROP_SIG};
    fl_sa_setup_t s = s_afull(5, 0, 30);
    s_round_ok(&s, 31, one, 1);
    /* n = 16, t = 11: one drop at each of the five phases */
    uint32_t d16[] = {3, DROP_ADV, 7, DROP_SHR, 0, DROP_MASKED, 12, DROP_SIG, 9, DROP_SHARES};
    s = s_afull(16, 0, 32);
    s_round_ok(&s, 33, d16, 5);
    s.wmax = 50;
    s_round_ok(&s, 34, d16, 5);
    /* Harary n = 33, k = 8, t = 5, modulus 2^20: drops over the ring, two
     * of them (a masked-input drop and an R3 drop) next to each other */
    s = s_active(s_setup(33, 8, 5, false, 20, 1u << 12, 2.0, 0, 300, 35));
    uint32_t *ring = s_ring_of(&s);
    uint32_t dh[] = {ring[0],  DROP_ADV, ring[8],  DROP_SHR,    ring[16], DROP_MASKED,
                     ring[17], DROP_SIG, ring[24], DROP_SHARES, ring[30], DROP_SIG};
    s_round_ok(&s, 36, dh, 6);
    s.wmax = 3;
    s_round_ok(&s, 37, dh, 6);
    free(ring);
}

/*
 * Proves the signed messages are exactly the documented ones: the R0
 * signature a client advertises verifies over "FLSA/v1/r0" || sid || idx ||
 * cpk || spk built here by hand, and its R3 signature over "FLSA/v1/r3" ||
 * sid || BLAKE2b-256(bitmap); the sa.chk bitmap is LSB-first with U3's bits.
 */
static void
test_signed_messages(void **state)
{
    (void)state;
    fl_sa_setup_t s = s_afull(10, 0, 40);
    s_rt_t rt;
    s_rt_init(&rt, &s, 41);
    rt.drop[4] = DROP_MASKED;
    uint8_t sid[FL_SA_SID_LEN], m0[110], m3[74], sig[FL_SIGN_SIG_LEN];
    fl_sa_setup_sid(&s, sid);
    uint32_t u = 9;
    memcpy(m0, "FLSA/v1/r0", 10);
    memcpy(m0 + 10, sid, 32);
    m0[42] = 0, m0[43] = 0, m0[44] = 0, m0[45] = 9;
    memcpy(m0 + 46, fl_sa_client_cpk(rt.cl[u]), 32);
    memcpy(m0 + 78, fl_sa_client_spk(rt.cl[u]), 32);
    assert_int_equal(fl_sa_client_adv_sig(rt.cl[u], sig), 0);
    assert_int_equal(crypto_sign_verify_detached(sig, m0, sizeof m0,
                                                 fl_identity_public(rt.ids[u].id)),
                     0);
    assert_int_equal(s_run_until(&rt, FL_SA_PH_CHK), 0);
    assert_string_equal(fl_sa_phase_name(fl_sa_server_phase(rt.srv)), "chk");
    const uint8_t *map;
    size_t len;
    assert_int_equal(fl_sa_server_chk(rt.srv, &map, &len), 0);
    assert_int_equal(len, 2);
    assert_int_equal(map[0], 0xef); /* 0..7 but 4 */
    assert_int_equal(map[1], 0x03); /* 8, 9; bits 10..15 unused */
    s_chk(&rt, u, sig);
    memcpy(m3, "FLSA/v1/r3", 10);
    memcpy(m3 + 10, sid, 32);
    crypto_generichash(m3 + 42, 32, map, len, NULL, 0);
    assert_int_equal(crypto_sign_verify_detached(sig, m3, sizeof m3,
                                                 fl_identity_public(rt.ids[u].id)),
                     0);
    s_rt_free(&rt);
}

/* ---- 2. a malicious server against a client: sa.keys ---- */

typedef enum {
    K_SPK,        /* one peer's spk substituted */
    K_ZERO_SIG,   /* one peer's R0 signature zeroed */
    K_ROGUE_CA,   /* a peer certified by another CA (a Sybil) */
    K_SAME_ID,    /* one identity under two idx */
    K_SAME_CURVE, /* two identity keys certified for one CURVE key */
    K_SELF_CERT,  /* this client's own record with another certificate */
    K_PLAIN,      /* semi-honest records in an active round */
    K_COUNT
} s_keys_case_t;

/*
 * Proves that a client checks every peer's keys against the CA it was given,
 * not against the server: substituted keys (the server's man in the middle),
 * a zeroed signature, a peer certified by another CA (an identity the server
 * made up), the same identity or the same certified CURVE key under two idx
 * (one real agent counted twice), and a tampered own record each abort the
 * client at sa.keys, before it shares anything.
 */
static void
test_client_keys_attacks(void **state)
{
    (void)state;
    fl_sa_setup_t s = s_afull(6, 0, 50);
    const uint32_t u = 0, v = 1, w = 2;
    const size_t rl = FL_SA_REC_KEYS_ACTIVE;
    uint8_t *buf = malloc(6 * rl);
    fl_signkey_t *rogue = fl_signkey_generate();
    assert_non_null(rogue);
    for (int c = -1; c < K_COUNT; c++) {
        s_rt_t rt;
        s_rt_init(&rt, &s, 51 + (uint64_t)c);
        assert_int_equal(s_run_until(&rt, FL_SA_PH_SHR), 0);
        const uint8_t *keys;
        size_t len;
        assert_int_equal(fl_sa_server_keys_for(rt.srv, u, &keys, &len), 0);
        assert_int_equal(len, 6 * rl);
        memcpy(buf, keys, len);
        uint8_t *rv = s_rec_of(buf, len, rl, v), *rw = s_rec_of(buf, len, rl, w);
        const uint8_t *ca_pk = fl_signkey_public(rt.ca);
        int want = FL_ECRYPTO;
        const char *why = NULL;
        s_ident_t x = {0};
        switch (c) {
        case K_SPK:
            rv[36 + 5] ^= 0x20;
            why = "R0 signature";
            break;
        case K_ZERO_SIG:
            memset(rv + FL_SA_REC_KEYS, 0, FL_SIGN_SIG_LEN);
            why = "R0 signature";
            break;
        case K_ROGUE_CA:
            s_ident_make(rogue, &x);
            s_forged_keys_rec(&s, v, &x, fl_signkey_public(rogue), rv);
            why = "not certified by the identity CA";
            break;
        case K_SAME_ID: /* v's identity signs for a client at w: a valid signature */
            s_forged_keys_rec(&s, w, &rt.ids[v], ca_pk, rw);
            want = FL_EPROTO;
            why = "one identity appears twice";
            break;
        case K_SAME_CURVE: /* the CA certified a second identity key for v's CURVE key */
            s_ident_make(rt.ca, &x);
            assert_int_equal(fl_cert_issue(rt.ca, rt.ids[v].curve_pk, fl_identity_public(x.id),
                                           x.cert),
                             0);
            s_forged_keys_rec(&s, w, &x, ca_pk, rw);
            want = FL_EPROTO;
            why = "certified CURVE key";
            break;
        case K_SELF_CERT:
            memcpy(s_rec_of(buf, len, rl, u) + FL_SA_REC_KEYS + FL_SIGN_SIG_LEN,
                   rv + FL_SA_REC_KEYS + FL_SIGN_SIG_LEN, FL_CERT_LEN);
            want = FL_EPROTO;
            why = "other than its own";
            break;
        case K_PLAIN: /* the first 68 bytes of each record */
            for (size_t i = 0; i < 6; i++)
                memmove(buf + i * FL_SA_REC_KEYS, buf + i * rl, FL_SA_REC_KEYS);
            len = 6 * FL_SA_REC_KEYS;
            want = FL_EPROTO;
            why = "260-byte records";
            break;
        default:
            want = 0;
            break;
        }
        const uint8_t *out = NULL;
        size_t olen = 0;
        int rc = fl_sa_client_on_keys(rt.cl[u], buf, len, &out, &olen);
        if (want == 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(olen, 5 * FL_SA_REC_SHR);
        } else {
            if (!strstr(fl_errmsg(), why))
                fail_msg("case %d: '%s' does not say '%s'", c, fl_errmsg(), why);
            assert_null(out);
            s_aborted(rt.cl[u], rc, want);
        }
        s_ident_free(&x);
        s_rt_free(&rt);
    }
    fl_signkey_destroy(&rogue);
    free(buf);
}

/* ---- 3. consistency: sa.chk and sa.unmask ---- */

/*
 * Full n = 10, t = 7: client 8 never shares (not in U2), client 9 shares but
 * sends no input (U2 \ U3). The round is brought to CHK. The victim is
 * client 0; client 3 is the one the server would like to unmask.
 */
enum { V = 0, X = 3, NOSHR = 8, DEAD = 9 };

static void
s_consistency_init(s_rt_t *rt, uint64_t seed)
{
    fl_sa_setup_t s = s_afull(10, 0, 60 + seed);
    s_rt_init(rt, &s, seed);
    rt->drop[NOSHR] = DROP_SHR;
    rt->drop[DEAD] = DROP_MASKED;
    assert_int_equal(s_run_until(rt, FL_SA_PH_CHK), 0);
}

/* The server's U3 bitmap, copied into map[2]. */
static void
s_u3(s_rt_t *rt, uint8_t map[2])
{
    const uint8_t *m;
    size_t len;
    assert_int_equal(fl_sa_server_chk(rt->srv, &m, &len), 0);
    assert_int_equal(len, 2);
    memcpy(map, m, 2);
}

/* The client aborted with `code`, its detail saying `why`, and released nothing. */
static void
s_refused(fl_sa_client_t *c, int rc, int code, const char *why, const uint8_t *out)
{
    if (!strstr(fl_errmsg(), why))
        fail_msg("'%s' does not say '%s'", fl_errmsg(), why);
    assert_null(out);
    s_aborted(c, rc, code);
}

/*
 * Proves the consistency round defeats a split view. The server tells the
 * victim that X dropped (a U3 without X) while the others sign the true U3,
 * hoping to get X's s_sk share from the victim and X's b from the others
 * (which would unmask X's input). The victim signs what it was shown, but
 * the signatures the server can forward are over the other U3: with them the
 * victim aborts (FL_ECRYPTO), without them it has only its own (FL_ERANGE).
 * Either way it releases no share.
 */
static void
test_split_view(void **state)
{
    (void)state;
    for (int strip = 0; strip < 2; strip++) {
        s_rt_t rt;
        s_consistency_init(&rt, 1 + (uint64_t)strip);
        uint8_t map[2], lie[2], sig[10][FL_SIGN_SIG_LEN];
        s_u3(&rt, map);
        memcpy(lie, map, 2);
        lie[0] &= (uint8_t)~(1u << X);
        assert_int_equal(fl_sa_client_on_chk(rt.cl[V], lie, 2, sig[V]), 0);
        /* the server cannot pass the victim's signature off as one over U3 */
        assert_int_equal(fl_sa_server_on_sig(rt.srv, V, sig[V]), FL_EPROTO);
        for (uint32_t u = 1; u < 8; u++) {
            s_chk(&rt, u, sig[u]);
            assert_int_equal(fl_sa_server_on_sig(rt.srv, u, sig[u]), 0);
        }
        assert_int_equal(fl_sa_server_close_chk(rt.srv), 0);
        /* the victim's sa.unmask, made up: X dead, the others' signatures or none */
        uint8_t um[9 * FL_SA_REC_UNMASK_ACTIVE] = {0};
        size_t m = 0;
        for (uint32_t u = 0; u < 10; u++) {
            if (u == NOSHR)
                continue;
            uint8_t *r = um + m++ * FL_SA_REC_UNMASK_ACTIVE;
            fl_store_be32(r, u);
            bool alive = (lie[u / 8] >> (u % 8) & 1) != 0;
            r[4] = alive ? FL_SA_ALIVE : FL_SA_DEAD;
            if (alive && (u == V || !strip))
                memcpy(r + FL_SA_REC_UNMASK, sig[u], FL_SIGN_SIG_LEN);
        }
        const uint8_t *out = NULL;
        size_t olen;
        int rc = fl_sa_client_on_unmask(rt.cl[V], um, m * FL_SA_REC_UNMASK_ACTIVE, &out, &olen);
        if (strip)
            s_refused(rt.cl[V], rc, FL_ERANGE, "1 neighbours signed", out);
        else
            s_refused(rt.cl[V], rc, FL_ECRYPTO, "split view", out);
        s_rt_free(&rt);
    }
}

typedef enum {
    U_ALIVE_AS_DEAD, /* X, in the signed U3, listed dead */
    U_DEAD_AS_ALIVE, /* DEAD, not in U3, listed alive */
    U_OMITTED,       /* X left out */
    U_FEW_SIGS,      /* t - 1 valid signatures */
    U_T_SIGS,        /* exactly t: fine */
    U_SIG_ON_DEAD,   /* a signature on DEAD's record */
    U_BAD_SIG,       /* one signature altered, the others fine */
    U_PLAIN,         /* semi-honest records */
    U_COUNT
} s_unmask_case_t;

/*
 * Proves a client reveals shares only for the U3 it signed, and only when t
 * neighbours signed that same U3: an alive member listed dead, a dropped one
 * listed alive, a member left out, t - 1 valid signatures (t are enough, its
 * own included), a signature on a dead record, and one bad signature each
 * abort it before any share is released.
 */
static void
test_client_unmask_attacks(void **state)
{
    (void)state;
    const size_t rl = FL_SA_REC_UNMASK_ACTIVE;
    for (int c = -1; c < U_COUNT; c++) {
        s_rt_t rt;
        s_consistency_init(&rt, 10 + (uint64_t)c);
        /* before signing U3 the client does not unmask */
        const uint8_t *out = NULL;
        size_t olen;
        uint8_t um[9 * FL_SA_REC_UNMASK_ACTIVE];
        if (c == -1) {
            assert_int_equal(fl_sa_server_unmask_for(rt.srv, V, &out, &olen), FL_ESTATE);
            s_refused(rt.cl[V], fl_sa_client_on_unmask(rt.cl[V], um, 0, &out, &olen),
                      FL_ESTATE, "waiting for sa.chk", out);
            s_rt_free(&rt);
            s_consistency_init(&rt, 10 + (uint64_t)c);
        }
        assert_int_equal(s_step(&rt), 0); /* everyone signs */
        assert_int_equal(fl_sa_server_phase(rt.srv), FL_SA_PH_UNMASK);
        const uint8_t *recs;
        size_t len;
        assert_int_equal(fl_sa_server_unmask_for(rt.srv, V, &recs, &len), 0);
        assert_int_equal(len, 9 * rl);
        memcpy(um, recs, len);
        uint8_t *rx = s_rec_of(um, len, rl, X), *rd = s_rec_of(um, len, rl, DEAD);
        assert_int_equal(rd[4], FL_SA_DEAD);
        int want = FL_EPROTO;
        const char *why = "";
        switch (c) {
        case U_ALIVE_AS_DEAD:
            rx[4] = FL_SA_DEAD;
            memset(rx + 5, 0, FL_SIGN_SIG_LEN);
            why = "listed dead";
            break;
        case U_DEAD_AS_ALIVE:
            rd[4] = FL_SA_ALIVE;
            why = "listed alive";
            break;
        case U_OMITTED:
            memmove(rx, rx + rl, (size_t)(um + len - rx) - rl);
            len -= rl;
            why = "neither alive nor dead";
            break;
        case U_FEW_SIGS: /* 8 signed; zero two of the peers' */
        case U_T_SIGS:   /* zero one of them */
            for (uint32_t p = 1; p <= (c == U_FEW_SIGS ? 2u : 1u); p++)
                memset(s_rec_of(um, len, rl, p) + 5, 0, FL_SIGN_SIG_LEN);
            want = c == U_FEW_SIGS ? FL_ERANGE : 0;
            why = "6 neighbours signed";
            break;
        case U_SIG_ON_DEAD:
            memcpy(rd + 5, rx + 5, FL_SIGN_SIG_LEN);
            why = "signature for dead client";
            break;
        case U_BAD_SIG:
            rx[5 + 17] ^= 0x01;
            want = FL_ECRYPTO;
            why = "not over the U3";
            break;
        case U_PLAIN:
            for (size_t i = 0; i < 9; i++)
                memmove(um + i * FL_SA_REC_UNMASK, um + i * rl, FL_SA_REC_UNMASK);
            len = 9 * FL_SA_REC_UNMASK;
            why = "69-byte records";
            break;
        default:
            want = 0;
            break;
        }
        out = NULL;
        int rc = fl_sa_client_on_unmask(rt.cl[V], um, len, &out, &olen);
        if (want == 0) {
            if (rc != 0)
                fail_msg("case %d: %s", c, fl_errmsg());
            assert_int_equal(olen, len / rl * FL_SA_REC_SHARES);
            assert_int_equal(fl_sa_server_on_shares(rt.srv, V, out, olen), 0);
        } else {
            s_refused(rt.cl[V], rc, want, why, out);
        }
        s_rt_free(&rt);
    }
}

typedef enum {
    C_NO_SELF,     /* the bitmap omits the client */
    C_SHORT,       /* one byte short */
    C_LONG,        /* one byte too many */
    C_STRAY,       /* a bit beyond client n - 1 */
    C_NOT_IN_U2,   /* a neighbour that sent no shares marked in U3 */
    C_FEW,         /* t - 1 neighbours in U3 */
    C_TWICE,       /* a second sa.chk */
    C_BEFORE_MASK, /* sa.chk before the masked input */
    C_COUNT
} s_chk_case_t;

/*
 * Proves a client signs only a U3 it can stand behind: a bitmap without
 * itself, of the wrong length, with bits beyond n, naming a neighbour it did
 * not mask with, or with fewer than t of its neighbours aborts it; so does a
 * second sa.chk (one client never signs two U3s) or one before its input.
 */
static void
test_client_chk_attacks(void **state)
{
    (void)state;
    for (int c = -1; c < C_COUNT; c++) {
        s_rt_t rt;
        fl_sa_setup_t s = s_afull(10, 0, 80);
        s_rt_init(&rt, &s, 81 + (uint64_t)c);
        rt.drop[NOSHR] = DROP_SHR;
        rt.drop[DEAD] = DROP_MASKED;
        uint8_t map[3] = {0}, sig[FL_SIGN_SIG_LEN];
        size_t len = 2;
        int want = FL_EPROTO;
        if (c == C_BEFORE_MASK) {
            assert_int_equal(s_run_until(&rt, FL_SA_PH_MASKED), 0);
            const uint8_t *mreq;
            size_t mlen;
            assert_int_equal(fl_sa_server_mreq_for(rt.srv, V, &mreq, &mlen), 0);
            assert_int_equal(fl_sa_client_on_mreq(rt.cl[V], mreq, mlen), 0);
            map[0] = 0xff;
            want = FL_ESTATE;
        } else {
            assert_int_equal(s_run_until(&rt, FL_SA_PH_CHK), 0);
            s_u3(&rt, map);
            assert_int_equal(map[0], 0xff);
            assert_int_equal(map[1], 0x00);
        }
        switch (c) {
        case C_NO_SELF: map[0] &= (uint8_t)~(1u << V); break;
        case C_SHORT: len = 1; break;
        case C_LONG: len = 3; break;
        case C_STRAY: map[1] = 0x40; break;
        case C_NOT_IN_U2: map[1] = 1u << (NOSHR - 8); break;
        case C_FEW: /* 0..7 less two: 6 < t = 7 */
            map[0] = 0x3f;
            want = FL_ERANGE;
            break;
        case C_TWICE:
            assert_int_equal(fl_sa_client_on_chk(rt.cl[V], map, len, sig), 0);
            want = FL_ESTATE;
            break;
        case C_BEFORE_MASK: break;
        default: want = 0; break;
        }
        int rc = fl_sa_client_on_chk(rt.cl[V], map, len, sig);
        if (want == 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(fl_sa_server_on_sig(rt.srv, V, sig), 0);
        } else {
            s_aborted(rt.cl[V], rc, want);
        }
        s_rt_free(&rt);
    }
}

/* ---- 4. server refusals ---- */

/* on_adv_signed refused with FL_EPROTO, naming `why`, and nothing kept. */
static void
s_adv_refused(fl_sa_server_t *srv, uint32_t idx, const uint8_t *cpk, const uint8_t *spk,
              const uint8_t *sig, const uint8_t *cert, const char *why)
{
    size_t before = fl_sa_server_count(srv, 1);
    bool member = fl_sa_server_member(srv, idx, 1);
    int rc = fl_sa_server_on_adv_signed(srv, idx, cpk, spk, sig, cert);
    if (rc != FL_EPROTO || !strstr(fl_errmsg(), why))
        fail_msg("want FL_EPROTO saying '%s', got %s (%s)", why, fl_strerror(rc), fl_errmsg());
    assert_int_equal(fl_sa_server_count(srv, 1), before);
    assert_int_equal(fl_sa_server_member(srv, idx, 1), member);
}

/*
 * Proves the server refuses, without disturbing the round, what would make
 * honest clients abort: a plain sa.adv in an active round, a certificate from
 * another CA, a bad or misplaced R0 signature, an identity (or certified
 * CURVE key) already used by another idx; in R3 a forged signature, one over
 * another U3, one from outside U3, a second one; and it asks only U4 to
 * unmask. The round then completes exactly (s_check).
 */
static void
test_server_refusals(void **state)
{
    (void)state;
    /* full n = 8, t = 6: client 6 sends no input, client 7 never signs U3 */
    fl_sa_setup_t s = s_afull(8, 0, 90);
    s_rt_t rt;
    s_rt_init(&rt, &s, 91);
    fl_sa_server_t *srv = rt.srv;
    rt.drop[6] = DROP_MASKED;
    rt.drop[7] = DROP_SIG;
    fl_signkey_t *rogue = fl_signkey_generate();
    s_ident_t x = {0}, y = {0};
    s_ident_make(rogue, &x);
    s_ident_make(rt.ca, &y);
    const uint8_t *cpk[2], *spk[2];
    uint8_t sig[2][FL_SIGN_SIG_LEN], bad[FL_SIGN_SIG_LEN];
    for (uint32_t u = 0; u < 2; u++) {
        cpk[u] = fl_sa_client_cpk(rt.cl[u]);
        spk[u] = fl_sa_client_spk(rt.cl[u]);
        assert_int_equal(fl_sa_client_adv_sig(rt.cl[u], sig[u]), 0);
    }

    /* R0 */
    assert_int_equal(fl_sa_server_on_adv(srv, 0, cpk[0], spk[0]), FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "signed advertisement required"));
    uint8_t rec[FL_SA_REC_KEYS_ACTIVE];
    const uint8_t *rk = rec + 4, *rs = rec + 36, *rsig = rec + 68, *rcert = rec + 132;
    s_forged_keys_rec(&s, 0, &x, fl_signkey_public(rogue), rec); /* a Sybil of another CA */
    s_adv_refused(srv, 0, rk, rs, rsig, rcert, "identity CA");
    memcpy(bad, sig[0], sizeof bad);
    bad[9] ^= 0x80;
    s_adv_refused(srv, 0, cpk[0], spk[0], bad, rt.ids[0].cert, "R0 signature");
    s_adv_refused(srv, 0, cpk[0], spk[1], sig[0], rt.ids[0].cert, "R0 signature"); /* keys */
    s_adv_refused(srv, 1, cpk[0], spk[0], sig[0], rt.ids[0].cert, "R0 signature"); /* idx */
    s_adv_refused(srv, 0, cpk[0], spk[0], sig[0], rt.ids[1].cert, "R0 signature"); /* cert */
    s_adv(&rt, 0);
    /* client 0's identity again under idx 1, with a valid signature */
    s_forged_keys_rec(&s, 1, &rt.ids[0], fl_signkey_public(rt.ca), rec);
    s_adv_refused(srv, 1, rk, rs, rsig, rcert, "one identity appears twice");
    /* another identity key certified for client 0's CURVE key */
    assert_int_equal(
        fl_cert_issue(rt.ca, rt.ids[0].curve_pk, fl_identity_public(y.id), y.cert), 0);
    s_forged_keys_rec(&s, 1, &y, fl_signkey_public(rt.ca), rec);
    s_adv_refused(srv, 1, rk, rs, rsig, rcert, "certified CURVE key");
    /* and the semi-honest refusals still hold */
    s_adv_refused(srv, 0, cpk[0], spk[0], sig[0], rt.ids[0].cert, "already");
    s_adv_refused(srv, 8, cpk[0], spk[0], sig[0], rt.ids[0].cert, "round has 8");
    assert_int_equal(fl_sa_server_set_ca(srv, fl_signkey_public(rogue)), FL_ESTATE);
    const uint8_t *um;
    size_t len;
    assert_int_equal(fl_sa_server_chk(srv, &um, &len), FL_ESTATE);
    for (uint32_t u = 1; u < 8; u++)
        s_adv(&rt, u);
    assert_int_equal(fl_sa_server_count(srv, 1), 8);
    assert_int_equal(s_close(&rt), 0);
    assert_int_equal(s_run_until(&rt, FL_SA_PH_CHK), 0);
    assert_int_equal(fl_sa_server_count(srv, 3), 7);
    assert_int_equal(fl_sa_server_count(srv, 4), 0);

    /* R3: client 4's signature is checked; 6 is not in U3; 7 never signs */
    uint8_t sig3[8][FL_SIGN_SIG_LEN];
    for (uint32_t u = 0; u < 8; u++)
        if (u != 6)
            s_chk(&rt, u, sig3[u]);
    assert_int_equal(fl_sa_server_on_sig(srv, 4, sig3[3]), FL_EPROTO); /* another's */
    assert_int_equal(fl_sa_server_on_sig(srv, 1, sig[1]), FL_EPROTO);  /* its R0 one */
    memcpy(bad, sig3[4], sizeof bad);
    bad[40] ^= 0x04;
    assert_int_equal(fl_sa_server_on_sig(srv, 4, bad), FL_EPROTO);     /* altered */
    assert_non_null(strstr(fl_errmsg(), "does not verify"));
    assert_int_equal(fl_sa_server_on_sig(srv, 6, sig3[0]), FL_EPROTO); /* not in U3 */
    assert_non_null(strstr(fl_errmsg(), "not in U3"));
    assert_int_equal(fl_sa_server_on_sig(srv, 8, sig3[4]), FL_EPROTO); /* not in the round */
    assert_false(fl_sa_server_member(srv, 4, 4));
    for (uint32_t u = 0; u < 6; u++)
        assert_int_equal(fl_sa_server_on_sig(srv, u, sig3[u]), 0);
    assert_int_equal(fl_sa_server_on_sig(srv, 4, sig3[4]), FL_EPROTO); /* twice */
    assert_non_null(strstr(fl_errmsg(), "already"));
    assert_int_equal(fl_sa_server_count(srv, 4), 6);
    assert_true(fl_sa_server_member(srv, 4, 4));
    assert_false(fl_sa_server_member(srv, 7, 4));
    assert_int_equal(fl_sa_server_close_chk(srv), 0);
    assert_int_equal(fl_sa_server_on_sig(srv, 7, sig3[7]), FL_ESTATE); /* too late */

    /* R4: only U4 is asked; 7's record carries no signature, 6 is dead */
    assert_int_equal(fl_sa_server_unmask_for(srv, 7, &um, &len), FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "not in U4"));
    assert_int_equal(fl_sa_server_on_shares(srv, 7, rec, 0), FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "not in U4"));
    assert_int_equal(fl_sa_server_unmask_for(srv, 0, &um, &len), 0);
    assert_int_equal(len, 8 * FL_SA_REC_UNMASK_ACTIVE);
    uint8_t got[8 * FL_SA_REC_UNMASK_ACTIVE];
    memcpy(got, um, len);
    static const uint8_t zero[FL_SIGN_SIG_LEN];
    for (uint32_t u = 0; u < 8; u++) {
        const uint8_t *r = s_rec_of(got, len, FL_SA_REC_UNMASK_ACTIVE, u);
        assert_int_equal(r[4], u == 6 ? FL_SA_DEAD : FL_SA_ALIVE);
        if (u >= 6)
            assert_memory_equal(r + 5, zero, FL_SIGN_SIG_LEN);
        else
            assert_memory_equal(r + 5, sig3[u], FL_SIGN_SIG_LEN);
    }
    assert_int_equal(s_step(&rt), 0);
    s_check(&rt);
    s_ident_free(&x);
    s_ident_free(&y);
    fl_signkey_destroy(&rogue);
    s_rt_free(&rt);
}

/* close_chk fails the round with FL_ERANGE naming the threshold, and
 * nothing goes on after it. */
static void
s_chk_fails(const fl_sa_setup_t *s, uint64_t seed, const uint32_t *drops, size_t ndrops,
            const char *why)
{
    s_rt_t rt;
    s_rt_init(&rt, s, seed);
    for (size_t i = 0; i < ndrops; i++)
        rt.drop[drops[i]] = DROP_SIG;
    assert_int_equal(s_run_until(&rt, FL_SA_PH_CHK), 0);
    int rc = s_step(&rt);
    if (rc != FL_ERANGE || !strstr(fl_sa_server_failure(rt.srv), why))
        fail_msg("want FL_ERANGE saying '%s', got %s (%s)", why, fl_strerror(rc),
                 fl_sa_server_failure(rt.srv));
    assert_int_equal(fl_sa_server_phase(rt.srv), FL_SA_PH_FAILED);
    assert_non_null(strstr(fl_sa_server_failure(rt.srv), "threshold"));
    const uint8_t *out;
    size_t len;
    assert_int_equal(fl_sa_server_unmask_for(rt.srv, 0, &out, &len), FL_ESTATE);
    assert_int_equal(fl_sa_server_close_chk(rt.srv), FL_ESTATE);
    assert_int_equal(fl_sa_server_finish(rt.srv, rt.out, NULL), FL_ESTATE);
    s_rt_free(&rt);
}

/*
 * Proves close_chk fails cleanly rather than start an unmasking that cannot
 * finish or that clients would refuse: U4 below t; a member of U4 with fewer
 * than t signers around it; the b of a client that did not sign with fewer
 * than t holders in U4 (while every member still sees t signers).
 */
static void
test_chk_below_threshold(void **state)
{
    (void)state;
    fl_sa_setup_t s = s_afull(6, 0, 100); /* t = 5 */
    uint32_t two[] = {1, 4};
    s_chk_fails(&s, 101, two, 2, "U4 has 4 clients");
    /* Harary n = 16, k = 6, t = 4 */
    s = s_active(s_setup(16, 6, 4, false, 32, 1u << 16, 1.0, 0, 100, 102));
    uint32_t *ring = s_ring_of(&s);
    uint32_t around[] = {ring[15], ring[1], ring[2], ring[3]}; /* ring[0] sees 3 */
    s_chk_fails(&s, 103, around, 4, "members of U4 in its neighbourhood");
    uint32_t run[] = {ring[1], ring[2], ring[3], ring[4]}; /* ring[2]'s b: 3 holders */
    s_chk_fails(&s, 104, run, 4, "holders in U4");
    /* one fewer is fine: every b keeps t holders, every member t signers */
    uint32_t three[] = {ring[1], DROP_SIG, ring[2], DROP_SIG, ring[3], DROP_SIG};
    s_round_ok(&s, 105, three, 3);
    free(ring);
}

/* ---- 5. configuration ---- */

/*
 * Proves an active and a semi-honest round never share a sid (so no
 * signature of one is valid in the other), and that the identity is checked
 * when it is set: a certificate for another identity key or from another CA
 * is refused, as are identities in a semi-honest round or after sa.keys; an
 * active client without one does not advertise and aborts at sa.keys; the
 * server takes a CA only in an active round before any advertisement.
 */
static void
test_config(void **state)
{
    (void)state;
    fl_sa_setup_t plain = s_full(5, 0, 110), act = s_active(plain);
    uint8_t a[32], b[32];
    fl_sa_setup_sid(&plain, a);
    fl_sa_setup_sid(&act, b);
    assert_memory_not_equal(a, b, 32);
    assert_int_equal(fl_sa_rec_keys_len(&plain), 68);
    assert_int_equal(fl_sa_rec_keys_len(&act), 260);
    assert_int_equal(fl_sa_rec_unmask_len(&plain), 5);
    assert_int_equal(fl_sa_rec_unmask_len(&act), 69);
    assert_int_equal(fl_sa_chk_len(8), 1);
    assert_int_equal(fl_sa_chk_len(9), 2);
    /* a lying coordinator must not get a threshold of half a neighbourhood:
     * two halves could then each reach it */
    fl_sa_setup_t low = act;
    low.t = 3; /* k + 1 = 5 */
    assert_int_equal(fl_sa_setup_check(&low), 0);
    low.t = 2;
    assert_int_equal(fl_sa_setup_check(&low), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "above half of each neighbourhood"));
    low.active = false;
    assert_int_equal(fl_sa_setup_check(&low), 0);

    fl_signkey_t *ca = fl_signkey_generate(), *rogue = fl_signkey_generate();
    const uint8_t *ca_pk = fl_signkey_public(ca);
    s_ident_t me = {0}, other = {0}, sybil = {0};
    s_ident_make(ca, &me);
    s_ident_make(ca, &other);
    s_ident_make(rogue, &sybil);
    fl_sa_client_t *c = NULL, *p = NULL;
    uint8_t sig[FL_SIGN_SIG_LEN];
    assert_int_equal(fl_sa_client_new(&act, &c), 0);
    assert_int_equal(fl_sa_client_adv_sig(c, sig), FL_ESTATE);
    assert_int_equal(fl_sa_client_set_identity(c, me.id, other.cert, ca_pk), FL_EINVAL);
    assert_int_equal(fl_sa_client_set_identity(c, me.id, me.cert, fl_signkey_public(rogue)),
                     FL_ECRYPTO);
    assert_int_equal(fl_sa_client_set_identity(c, sybil.id, sybil.cert, ca_pk), FL_ECRYPTO);
    assert_false(fl_sa_client_aborted(c)); /* configuration errors do not abort */
    assert_int_equal(fl_sa_client_adv_sig(c, sig), FL_ESTATE);
    /* without an identity an active client refuses sa.keys */
    const uint8_t *out;
    size_t olen;
    uint8_t keys[FL_SA_REC_KEYS_ACTIVE] = {0};
    s_aborted(c, fl_sa_client_on_keys(c, keys, sizeof keys, &out, &olen), FL_ESTATE);
    assert_int_equal(fl_sa_client_set_identity(c, me.id, me.cert, ca_pk), FL_ESTATE);
    fl_sa_client_destroy(&c);

    /* a semi-honest client has no identity, no R0 signature, no sa.chk */
    assert_int_equal(fl_sa_client_new(&plain, &p), 0);
    assert_int_equal(fl_sa_client_set_identity(p, me.id, me.cert, ca_pk), FL_ESTATE);
    assert_int_equal(fl_sa_client_adv_sig(p, sig), FL_ESTATE);
    uint8_t map[1] = {0x1f};
    s_aborted(p, fl_sa_client_on_chk(p, map, 1, sig), FL_ESTATE);
    fl_sa_client_destroy(&p);

    /* the server: a CA only when active, before any sa.adv */
    fl_sa_server_t *srv = NULL;
    assert_int_equal(fl_sa_server_new(&plain, &srv), 0);
    assert_int_equal(fl_sa_server_set_ca(srv, ca_pk), FL_ESTATE);
    assert_int_equal(fl_sa_server_on_adv_signed(srv, 0, keys, keys, sig, me.cert), FL_ESTATE);
    fl_sa_server_destroy(&srv);
    assert_int_equal(fl_sa_server_new(&act, &srv), 0);
    assert_int_equal(fl_sa_server_on_adv_signed(srv, 0, keys, keys, sig, me.cert), FL_ESTATE);
    assert_non_null(strstr(fl_errmsg(), "fl_sa_server_set_ca"));
    assert_int_equal(fl_sa_server_set_ca(srv, fl_signkey_public(rogue)), 0);
    assert_int_equal(fl_sa_server_set_ca(srv, ca_pk), 0); /* replaced */
    assert_int_equal(fl_sa_server_close_chk(srv), FL_ESTATE);
    assert_int_equal(fl_sa_server_on_sig(srv, 0, sig), FL_ESTATE);
    fl_sa_server_destroy(&srv);

    s_ident_free(&me);
    s_ident_free(&other);
    s_ident_free(&sybil);
    fl_signkey_destroy(&ca);
    fl_signkey_destroy(&rogue);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_signed_messages),
        cmocka_unit_test(test_active_rounds),
        cmocka_unit_test(test_client_keys_attacks),
        cmocka_unit_test(test_split_view),
        cmocka_unit_test(test_client_unmask_attacks),
        cmocka_unit_test(test_client_chk_attacks),
        cmocka_unit_test(test_server_refusals),
        cmocka_unit_test(test_chk_below_threshold),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
