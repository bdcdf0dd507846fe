/*
 * fl_saclient.c — the agent's side of one SecAgg / SecAgg+ round, and the
 * round setup both ends share (see fl_saclient.h for the records and the
 * order of calls; SECAGG.md §1.4 for the protocol).
 *
 * Session id. fl_sa_setup_sid() hashes, with fl_sa_sid(nonce, bytes, 76),
 * these 76 canonical bytes (integers big-endian, doubles as their IEEE-754
 * binary64 bit pattern, big-endian; idx and nonce are not part of them):
 *
 *   offset  size  field
 *        0    17  ASCII "covey/sa-setup/v1" (no NUL)
 *       17     8  round     u64
 *       25     8  attempt   u64
 *       33     4  n         u32
 *       37     4  k         u32
 *       41     4  t         u32
 *       45     1  full      u8 (0 or 1)
 *       46     1  bits      u8
 *       47     4  levels    u32
 *       51     8  clip      u64 (bits of the double)
 *       59     8  wmax      u64 (bits of the double)
 *       67     8  dim       u64
 *       75     1  active    u8 (0 or 1)
 *
 * so sid = BLAKE2b-256("FLSA/v1/sid" || nonce(32) || those 76 bytes).
 *
 * Positions. Everything per peer is kept in arrays indexed by the peer's
 * position in N(self) (0..k, self included), which is also the Shamir x - 1
 * of the share of self's secrets that the peer holds. A peer is "listed"
 * once sa.keys named it (the client's view of U1) and "in U2" once its
 * envelope opened in sa.mreq (the client's view of U2, self included).
 *
 * Secrets. b, the derived share-encryption keys and pairwise seeds, and the
 * shares held for peers live in one sodium_malloc block, wiped on abort and
 * on destroy; the share-encryption keys are wiped as soon as sa.mreq is
 * done, the pairwise seeds as soon as the input is masked. The records
 * handed out (sa.shr, sa.shares) are in guarded memory too, wiped on the
 * next call.
 *
 * Active model. The identity (borrowed), the certificate and the CA public
 * key come from fl_sa_client_set_identity, which also makes the R0
 * signature. sa.keys then also yields each listed peer's identity key (from
 * its certificate, verified under the CA), kept by position for R4. sa.chk
 * yields the client's view of U3 by position and its R3 message, which every
 * signature in sa.unmask must verify over: t of them mean that t neighbours
 * (at most t - 1 of them corrupt, by the choice of t) saw the same U3, so no
 * honest neighbour was told that a client dropped that this one reveals b of.
 */
#include "fl_saclient.h"

#include <assert.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fl_sagraph.h"
#include "fl_shamir.h"

#define S_SID_LABEL "covey/sa-setup/v1"
#define S_SID_BYTES (sizeof S_SID_LABEL - 1 + 8 + 8 + 4 + 4 + 4 + 1 + 1 + 4 + 8 + 8 + 8 + 1)

/* ---- setup ---- */

int
fl_sa_setup_check(const fl_sa_setup_t *s)
{
    if (s->n < 2 || s->n > FL_SAGRAPH_MAX_N)
        return fl_fail(FL_EINVAL, "sa setup: n = %u clients outside 2..%u", s->n,
                       FL_SAGRAPH_MAX_N);
    if (s->idx >= s->n)
        return fl_fail(FL_EINVAL, "sa setup: idx = %u is not below n = %u", s->idx, s->n);
    if (s->full && s->k != s->n - 1)
        return fl_fail(FL_EINVAL, "sa setup: k = %u, but the full graph of %u clients has k = %u",
                       s->k, s->n, s->n - 1);
    if (!s->full && (s->k < 2 || s->k % 2 != 0 || s->k >= s->n - 1))
        return fl_fail(FL_EINVAL,
                       "sa setup: Harary degree k = %u must be even, >= 2 and below n - 1 = %u",
                       s->k, s->n - 1);
    if (s->k + 1 > FL_SHAMIR_MAX_SHARES)
        return fl_fail(FL_EINVAL,
                       "sa setup: k = %u gives neighbourhoods of %u, above the Shamir cap of %u "
                       "shares (use a Harary graph)",
                       s->k, s->k + 1, FL_SHAMIR_MAX_SHARES);
    if (s->t < 2 || s->t > s->k + 1)
        return fl_fail(FL_EINVAL, "sa setup: threshold t = %u outside 2..k + 1 = %u", s->t,
                       s->k + 1);
    /* Against a lying coordinator a threshold of half a neighbourhood or less
     * would let it split the neighbours into two groups that each reach t
     * (SECAGG.md 1.3: the semi-malicious sizing always gives more). */
    if (s->active && 2 * (uint64_t)s->t <= (uint64_t)s->k + 1)
        return fl_fail(FL_EINVAL,
                       "sa setup: the active-server model needs a threshold above half of each "
                       "neighbourhood: t = %u, k + 1 = %u",
                       s->t, s->k + 1);
    if (s->bits < 1 || s->bits > 32)
        return fl_fail(FL_EINVAL, "sa setup: bits = %u outside 1..32", s->bits);
    /* With weights, word 0 is a sum of n values <= levels too: same rule. */
    if (fl_sa_check_levels(s->levels, s->bits, s->n) < 0)
        return fl_fail(FL_EINVAL, "sa setup: levels = %u: %s", s->levels, fl_errmsg());
    if (!(isfinite(s->clip) && s->clip > 0))
        return fl_fail(FL_EINVAL, "sa setup: clip = %g must be finite and > 0", s->clip);
    if (!(isfinite(s->wmax) && s->wmax >= 0))
        return fl_fail(FL_EINVAL, "sa setup: wmax = %g must be finite and >= 0 (0: plain sum)",
                       s->wmax);
    if (s->dim < 1 || s->dim > (UINT64_C(1) << 31))
        return fl_fail(FL_EINVAL, "sa setup: dim = %llu outside 1..2^31",
                       (unsigned long long)s->dim);
    return 0;
}

static uint8_t *
s_put_be(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> 8 * (bytes - 1 - i));
    return p + bytes;
}

static uint64_t
s_double_bits(double d)
{
    uint64_t v;
    static_assert(sizeof v == sizeof d, "binary64");
    memcpy(&v, &d, sizeof v);
    return v;
}

void
fl_sa_setup_sid(const fl_sa_setup_t *s, uint8_t sid[FL_SA_SID_LEN])
{
    uint8_t buf[S_SID_BYTES];
    uint8_t *p = buf;
    memcpy(p, S_SID_LABEL, sizeof S_SID_LABEL - 1);
    p += sizeof S_SID_LABEL - 1;
    p = s_put_be(p, s->round, 8);
    p = s_put_be(p, s->attempt, 8);
    p = s_put_be(p, s->n, 4);
    p = s_put_be(p, s->k, 4);
    p = s_put_be(p, s->t, 4);
    p = s_put_be(p, s->full ? 1 : 0, 1);
    p = s_put_be(p, s->bits, 1);
    p = s_put_be(p, s->levels, 4);
    p = s_put_be(p, s_double_bits(s->clip), 8);
    p = s_put_be(p, s_double_bits(s->wmax), 8);
    p = s_put_be(p, s->dim, 8);
    p = s_put_be(p, s->active ? 1 : 0, 1);
    assert(p == buf + sizeof buf);
    fl_sa_sid(s->nonce, buf, sizeof buf, sid);
}

uint64_t
fl_sa_setup_words(const fl_sa_setup_t *s)
{
    return s->dim + (s->wmax > 0 ? 1 : 0);
}

size_t
fl_sa_rec_keys_len(const fl_sa_setup_t *s)
{
    return s->active ? FL_SA_REC_KEYS_ACTIVE : FL_SA_REC_KEYS;
}

size_t
fl_sa_rec_unmask_len(const fl_sa_setup_t *s)
{
    return s->active ? FL_SA_REC_UNMASK_ACTIVE : FL_SA_REC_UNMASK;
}

size_t
fl_sa_chk_len(uint32_t n)
{
    return ((size_t)n + 7) / 8;
}

static_assert(FL_SA_REC_KEYS_ACTIVE == FL_SA_REC_KEYS + FL_SIGN_SIG_LEN + FL_CERT_LEN,
              "active keys record");
static_assert(FL_SA_REC_UNMASK_ACTIVE == FL_SA_REC_UNMASK + FL_SIGN_SIG_LEN,
              "active unmask record");

void
fl_sa_r0_msg(const uint8_t sid[FL_SA_SID_LEN], uint32_t idx, const uint8_t cpk[FL_SA_KEY_LEN],
             const uint8_t spk[FL_SA_KEY_LEN], uint8_t msg[FL_SA_R0_MSG_LEN])
{
    uint8_t *p = msg;
    memcpy(p, FL_SA_R0_LABEL, sizeof FL_SA_R0_LABEL - 1);
    p += sizeof FL_SA_R0_LABEL - 1;
    memcpy(p, sid, FL_SA_SID_LEN);
    p += FL_SA_SID_LEN;
    fl_store_be32(p, idx);
    p += 4;
    memcpy(p, cpk, FL_SA_KEY_LEN);
    p += FL_SA_KEY_LEN;
    memcpy(p, spk, FL_SA_KEY_LEN);
    p += FL_SA_KEY_LEN;
    assert(p == msg + FL_SA_R0_MSG_LEN);
}

void
fl_sa_r3_msg(const uint8_t sid[FL_SA_SID_LEN], const uint8_t *bitmap, size_t len,
             uint8_t msg[FL_SA_R3_MSG_LEN])
{
    uint8_t *p = msg;
    memcpy(p, FL_SA_R3_LABEL, sizeof FL_SA_R3_LABEL - 1);
    p += sizeof FL_SA_R3_LABEL - 1;
    memcpy(p, sid, FL_SA_SID_LEN);
    p += FL_SA_SID_LEN;
    crypto_generichash(p, 32, bitmap, len, NULL, 0);
    p += 32;
    assert(p == msg + FL_SA_R3_MSG_LEN);
}

/* ---- the client ---- */

typedef enum {
    S_WANT_KEYS = 0, /* made; waits for sa.keys */
    S_WANT_MREQ,     /* shares sent; waits for sa.mreq */
    S_WANT_MASK,     /* U2 known; waits for the input */
    S_WANT_CHK,      /* active: input masked; waits for sa.chk */
    S_WANT_UNMASK,   /* input masked (active: U3 signed); answers sa.unmask (maybe more
                        than once) */
    S_ABORTED
} s_state_t;

struct fl_sa_client {
    fl_sa_setup_t setup;
    uint8_t sid[FL_SA_SID_LEN];
    fl_sagraph_t *graph;
    uint32_t size;     /* k + 1 = |N(self)| */
    uint32_t self_pos; /* position of self in N(self) */
    uint32_t *nbrs;    /* N(self) in position order */
    s_state_t state;
    fl_sa_keypair_t *ckp, *skp;
    /* guarded: b[32] | enc[size][32] | pair[size][32] | sh_sk[size][36] | sh_b[size][36] */
    uint8_t *sec;
    size_t sec_len;
    uint8_t *b, *enc, *pair, *sh_sk, *sh_b;
    uint8_t *pks;    /* [size][64]: cpk | spk of each listed peer */
    uint8_t *listed; /* [size]: named in sa.keys (U1 view) */
    uint8_t *inu2;   /* [size]: envelope opened, or self (U2 view) */
    uint8_t *seen;   /* [size]: scratch for one call */
    fl_sa_peer_state_t *reveal; /* [size] */
    uint8_t *out;               /* sodium_malloc: the last records handed out */

    /* active model */
    const fl_identity_t *id; /* borrowed; NULL until set_identity */
    uint8_t cert[FL_CERT_LEN];
    uint8_t ca_pk[FL_SIGN_PK_LEN];
    uint8_t sig0[FL_SIGN_SIG_LEN];  /* this client's R0 signature */
    uint8_t *idpk;                  /* [size][32]: identity key of each listed peer */
    uint8_t *inu3;                  /* [size]: in the U3 this client signed */
    uint8_t r3msg[FL_SA_R3_MSG_LEN]; /* the R3 message this client signed */
};

/* Drop the previous output records and make room for len bytes (guarded). */
static int
s_out_alloc(fl_sa_client_t *self, size_t len)
{
    sodium_free(self->out); /* wipes; accepts NULL */
    self->out = sodium_malloc(len ? len : 1);
    if (!self->out)
        return fl_fail(FL_ENOMEM, "sa client: cannot allocate %zu bytes of guarded memory", len);
    return 0;
}

/* Abort the client after a failed call: wipe every secret it holds, keep
 * the error detail, return rc. */
static int
s_abort(fl_sa_client_t *self, int rc)
{
    assert(rc < 0);
    self->state = S_ABORTED;
    if (self->sec)
        sodium_memzero(self->sec, self->sec_len);
    sodium_free(self->out);
    self->out = NULL;
    return rc;
}

/* FL_ESTATE for a call in the wrong state (aborting unless aborted already). */
static int
s_wrong_state(fl_sa_client_t *self, const char *call)
{
    static const char *const want[] = {"sa.keys",   "sa.mreq", "the masked input",
                                       "sa.chk",    "sa.unmask", "nothing (aborted)"};
    int rc = fl_fail(FL_ESTATE, "sa client %u: %s out of order (waiting for %s)",
                     self->setup.idx, call, want[self->state]);
    return self->state == S_ABORTED ? rc : s_abort(self, rc);
}

int
fl_sa_client_new(const fl_sa_setup_t *s, fl_sa_client_t **out)
{
    int rc = fl_sa_setup_check(s);
    if (rc < 0)
        return rc;
    fl_sa_client_t *self = fl_xcalloc(1, sizeof *self);
    self->setup = *s;
    fl_sa_setup_sid(s, self->sid);
    fl_sagraph_params_t gp = {.n = s->n, .k = s->k, .t = s->t, .full = s->full};
    if ((rc = fl_sagraph_new(&gp, self->sid, &self->graph)) < 0)
        goto fail;
    self->size = fl_sagraph_size(self->graph);
    self->nbrs = fl_xmalloc(self->size * sizeof *self->nbrs);
    fl_sagraph_neighbours(self->graph, s->idx, self->nbrs);
    int64_t sp = fl_sagraph_position(self->graph, s->idx, s->idx);
    assert(sp >= 0);
    self->self_pos = (uint32_t)sp;

    self->ckp = fl_sa_keypair_new();
    self->skp = fl_sa_keypair_new();
    /* size <= FL_SHAMIR_MAX_SHARES (checked), so no overflow */
    self->sec_len = FL_SA_SEED_LEN +
                    (size_t)self->size * (2 * FL_SA_SEED_LEN + 2 * FL_SA_SHARE_LEN);
    self->sec = sodium_malloc(self->sec_len);
    if (!self->ckp || !self->skp || !self->sec) {
        rc = fl_fail(FL_ENOMEM, "sa client: cannot allocate guarded memory for its secrets");
        goto fail;
    }
    sodium_memzero(self->sec, self->sec_len);
    self->b = self->sec;
    self->enc = self->b + FL_SA_SEED_LEN;
    self->pair = self->enc + (size_t)self->size * FL_SA_SEED_LEN;
    self->sh_sk = self->pair + (size_t)self->size * FL_SA_SEED_LEN;
    self->sh_b = self->sh_sk + (size_t)self->size * FL_SA_SHARE_LEN;
    randombytes_buf(self->b, FL_SA_SEED_LEN);

    self->pks = fl_xcalloc(self->size, 2 * FL_SA_KEY_LEN);
    self->listed = fl_xcalloc(self->size, 1);
    self->inu2 = fl_xcalloc(self->size, 1);
    self->seen = fl_xcalloc(self->size, 1);
    self->reveal = fl_xcalloc(self->size, sizeof *self->reveal);
    if (s->active) {
        self->idpk = fl_xcalloc(self->size, FL_SIGN_PK_LEN);
        self->inu3 = fl_xcalloc(self->size, 1);
    }
    self->state = S_WANT_KEYS;
    *out = self;
    return 0;
fail:
    fl_sa_client_destroy(&self);
    return rc;
}

void
fl_sa_client_destroy(fl_sa_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_sa_client_t *self = *self_p;
    fl_sagraph_destroy(&self->graph);
    fl_sa_keypair_destroy(&self->ckp);
    fl_sa_keypair_destroy(&self->skp);
    sodium_free(self->sec); /* wipes */
    sodium_free(self->out);
    free(self->nbrs);
    free(self->pks);
    free(self->listed);
    free(self->inu2);
    free(self->seen);
    free(self->reveal);
    free(self->idpk);
    free(self->inu3);
    free(self);
    *self_p = NULL;
}

const uint8_t *
fl_sa_client_cpk(const fl_sa_client_t *self)
{
    return fl_sa_keypair_pk(self->ckp);
}

const uint8_t *
fl_sa_client_spk(const fl_sa_client_t *self)
{
    return fl_sa_keypair_pk(self->skp);
}

const fl_sa_setup_t *
fl_sa_client_setup(const fl_sa_client_t *self)
{
    return &self->setup;
}

bool
fl_sa_client_aborted(const fl_sa_client_t *self)
{
    return self->state == S_ABORTED;
}

/* ---- active model: the identity ---- */

int
fl_sa_client_set_identity(fl_sa_client_t *self, const fl_identity_t *id,
                          const uint8_t cert[FL_CERT_LEN], const uint8_t ca_pk[FL_SIGN_PK_LEN])
{
    const fl_sa_setup_t *s = &self->setup;
    if (!s->active)
        return fl_fail(FL_ESTATE, "sa client %u: an identity is for active rounds only", s->idx);
    if (self->state != S_WANT_KEYS)
        return fl_fail(FL_ESTATE, "sa client %u: the identity must be set before sa.keys",
                       s->idx);
    if (fl_cert_verify(ca_pk, cert) < 0)
        return fl_fail(FL_ECRYPTO, "sa client %u: its own certificate: %s", s->idx, fl_errmsg());
    if (memcmp(FL_CERT_ID_PK(cert), fl_identity_public(id), FL_SIGN_PK_LEN) != 0)
        return fl_fail(FL_EINVAL,
                       "sa client %u: the certificate is for another identity key than the "
                       "agent's",
                       s->idx);
    self->id = id;
    memcpy(self->cert, cert, FL_CERT_LEN);
    memcpy(self->ca_pk, ca_pk, FL_SIGN_PK_LEN);
    uint8_t msg[FL_SA_R0_MSG_LEN];
    fl_sa_r0_msg(self->sid, s->idx, fl_sa_client_cpk(self), fl_sa_client_spk(self), msg);
    fl_identity_sign(id, msg, sizeof msg, self->sig0);
    return 0;
}

int
fl_sa_client_adv_sig(fl_sa_client_t *self, uint8_t sig[FL_SIGN_SIG_LEN])
{
    if (!self->setup.active || !self->id)
        return fl_fail(FL_ESTATE, "sa client %u: %s", self->setup.idx,
                       self->setup.active ? "no identity set (fl_sa_client_set_identity)"
                                          : "no R0 signature in a semi-honest round");
    memcpy(sig, self->sig0, FL_SIGN_SIG_LEN);
    return 0;
}

/* ---- R1: sa.keys -> sa.shr ---- */

/* A public key with the client (position) and role it was listed for. */
typedef struct {
    uint8_t key[FL_SA_KEY_LEN];
    uint32_t idx;
    const char *role;
} s_key_ref_t;

static int
s_cmp_key_ref(const void *a, const void *b)
{
    return memcmp(((const s_key_ref_t *)a)->key, ((const s_key_ref_t *)b)->key, FL_SA_KEY_LEN);
}

/* Sort refs[0..m) by key and return the first of two equal keys (the other
 * follows it), or NULL: O(m log m) even for a full graph of thousands. */
static const s_key_ref_t *
s_find_dup(s_key_ref_t *refs, size_t m)
{
    qsort(refs, m, sizeof *refs, s_cmp_key_ref);
    for (size_t i = 1; i < m; i++)
        if (memcmp(refs[i - 1].key, refs[i].key, FL_SA_KEY_LEN) == 0)
            return &refs[i - 1];
    return NULL;
}

/* Check that the 2 cnt keys of the listed clients are pairwise distinct. */
static int
s_check_distinct(const fl_sa_client_t *self, size_t cnt)
{
    s_key_ref_t *refs = fl_xmalloc(2 * cnt * sizeof *refs);
    size_t m = 0;
    for (uint32_t p = 0; p < self->size; p++) {
        if (!self->listed[p])
            continue;
        for (int r = 0; r < 2; r++) {
            memcpy(refs[m].key, self->pks + (size_t)p * 2 * FL_SA_KEY_LEN + r * FL_SA_KEY_LEN,
                   FL_SA_KEY_LEN);
            refs[m].idx = self->nbrs[p];
            refs[m].role = r ? "spk" : "cpk";
            m++;
        }
    }
    assert(m == 2 * cnt);
    const s_key_ref_t *d = s_find_dup(refs, m);
    int rc = 0;
    if (d)
        rc = fl_fail(FL_EPROTO, "sa.keys: the %s of client %u equals the %s of client %u",
                     d[0].role, d[0].idx, d[1].role, d[1].idx);
    free(refs);
    return rc;
}

/* Active model: no identity key and no certified CURVE key is listed twice
 * (with one agent under two idx the server could make up most of a
 * neighbourhood from one real agent's keys). recs holds cnt active records. */
static int
s_check_identities(const uint8_t *recs, size_t cnt)
{
    static const struct {
        size_t off;
        const char *role;
    } field[2] = {
        {FL_SA_REC_KEYS + FL_SIGN_SIG_LEN + 32, "identity key"}, /* FL_CERT_ID_PK */
        {FL_SA_REC_KEYS + FL_SIGN_SIG_LEN + 0, "certified CURVE key"}, /* FL_CERT_CURVE_PK */
    };
    s_key_ref_t *refs = fl_xmalloc(cnt * sizeof *refs);
    int rc = 0;
    for (int f = 0; f < 2 && rc == 0; f++) {
        for (size_t i = 0; i < cnt; i++) {
            const uint8_t *r = recs + i * FL_SA_REC_KEYS_ACTIVE;
            memcpy(refs[i].key, r + field[f].off, FL_SA_KEY_LEN);
            refs[i].idx = fl_load_be32(r);
            refs[i].role = field[f].role;
        }
        const s_key_ref_t *d = s_find_dup(refs, cnt);
        if (d)
            rc = fl_fail(FL_EPROTO,
                         "sa.keys: one identity appears twice: clients %u and %u have the same "
                         "%s (a Sybil)",
                         d[0].idx, d[1].idx, d[0].role);
    }
    free(refs);
    return rc;
}

/* Active model: record i of sa.keys, for client v at position pos: its
 * certificate must verify under the CA and its R0 signature under the
 * certified identity key (self's: be exactly its own). Keeps the key. */
static int
s_check_signed_keys(fl_sa_client_t *self, const uint8_t *r, size_t i, uint32_t v, int64_t pos)
{
    const uint8_t *sig = r + FL_SA_REC_KEYS, *cert = sig + FL_SIGN_SIG_LEN;
    if (v == self->setup.idx) {
        if (memcmp(cert, self->cert, FL_CERT_LEN) != 0 ||
            memcmp(sig, self->sig0, FL_SIGN_SIG_LEN) != 0)
            return fl_fail(FL_EPROTO,
                           "sa.keys: record %zu gives this client (%u) a certificate or R0 "
                           "signature other than its own",
                           i, v);
    } else {
        if (fl_cert_verify(self->ca_pk, cert) < 0)
            return fl_fail(FL_ECRYPTO,
                           "sa.keys: record %zu: client %u is not certified by the identity CA "
                           "(%s)",
                           i, v, fl_errmsg());
        uint8_t msg[FL_SA_R0_MSG_LEN];
        fl_sa_r0_msg(self->sid, v, r + 4, r + 4 + FL_SA_KEY_LEN, msg);
        if (fl_identity_verify(FL_CERT_ID_PK(cert), msg, sizeof msg, sig) < 0)
            return fl_fail(FL_ECRYPTO,
                           "sa.keys: record %zu: the R0 signature of client %u does not verify "
                           "under its certified identity key (keys substituted?)",
                           i, v);
    }
    memcpy(self->idpk + (size_t)pos * FL_SIGN_PK_LEN, FL_CERT_ID_PK(cert), FL_SIGN_PK_LEN);
    return 0;
}

/* Parse and check the sa.keys records into listed/pks; returns the count. */
static int
s_parse_keys(fl_sa_client_t *self, const uint8_t *recs, size_t len, size_t *cnt_p)
{
    const fl_sa_setup_t *s = &self->setup;
    size_t rl = fl_sa_rec_keys_len(s);
    if (len % rl != 0)
        return fl_fail(FL_EPROTO, "sa.keys: %zu bytes is not a whole number of %zu-byte records",
                       len, rl);
    size_t cnt = len / rl;
    if (cnt > self->size)
        return fl_fail(FL_EPROTO,
                       "sa.keys: %zu records, but client %u has only %u neighbours (itself "
                       "included)",
                       cnt, s->idx, self->size);
    memset(self->listed, 0, self->size);
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * rl;
        uint32_t v = fl_load_be32(r);
        if (v >= s->n)
            return fl_fail(FL_EPROTO, "sa.keys: record %zu lists client %u, but the round has %u",
                           i, v, s->n);
        int64_t pos = fl_sagraph_position(self->graph, s->idx, v);
        if (pos < 0)
            return fl_fail(FL_EPROTO,
                           "sa.keys: record %zu lists client %u, which is not a neighbour of "
                           "client %u",
                           i, v, s->idx);
        if (self->listed[pos])
            return fl_fail(FL_EPROTO, "sa.keys: record %zu lists client %u a second time", i, v);
        if (v == s->idx && (memcmp(r + 4, fl_sa_client_cpk(self), FL_SA_KEY_LEN) != 0 ||
                            memcmp(r + 4 + FL_SA_KEY_LEN, fl_sa_client_spk(self),
                                   FL_SA_KEY_LEN) != 0))
            return fl_fail(FL_EPROTO,
                           "sa.keys: record %zu gives this client (%u) keys other than its own",
                           i, v);
        if (s->active) {
            int rc = s_check_signed_keys(self, r, i, v, pos);
            if (rc < 0)
                return rc;
        }
        self->listed[pos] = 1;
        memcpy(self->pks + (size_t)pos * 2 * FL_SA_KEY_LEN, r + 4, 2 * FL_SA_KEY_LEN);
    }
    if (!self->listed[self->self_pos])
        return fl_fail(FL_EPROTO, "sa.keys: this client (%u) is not listed", s->idx);
    int rc = s_check_distinct(self, cnt);
    if (rc == 0 && s->active)
        rc = s_check_identities(recs, cnt);
    if (rc < 0)
        return rc;
    if (cnt < s->t)
        return fl_fail(FL_ERANGE,
                       "sa.keys: %zu clients listed (this one included), fewer than the "
                       "threshold %u",
                       cnt, s->t);
    *cnt_p = cnt;
    return 0;
}

int
fl_sa_client_on_keys(fl_sa_client_t *self, const uint8_t *recs, size_t len,
                     const uint8_t **out, size_t *out_len)
{
    if (self->state != S_WANT_KEYS)
        return s_wrong_state(self, "sa.keys");
    const fl_sa_setup_t *s = &self->setup;
    if (s->active && !self->id)
        return s_abort(self, fl_fail(FL_ESTATE,
                                     "sa client %u: sa.keys in an active round before "
                                     "fl_sa_client_set_identity",
                                     s->idx));
    size_t cnt = 0;
    int rc = s_parse_keys(self, recs, len, &cnt);
    if (rc < 0)
        return s_abort(self, rc);

    /* Key agreement with every listed peer: the share-encryption key (c
     * keys) and the pairwise mask seed (s keys). */
    for (uint32_t p = 0; p < self->size; p++) {
        if (!self->listed[p] || p == self->self_pos)
            continue;
        const uint8_t *pk = self->pks + (size_t)p * 2 * FL_SA_KEY_LEN;
        rc = fl_sa_derive(self->ckp, pk, self->sid, FL_SA_LABEL_SHARE_ENC,
                          self->enc + (size_t)p * FL_SA_SEED_LEN);
        if (rc == 0)
            rc = fl_sa_derive(self->skp, pk + FL_SA_KEY_LEN, self->sid,
                              FL_SA_LABEL_PAIRWISE_MASK, self->pair + (size_t)p * FL_SA_SEED_LEN);
        if (rc < 0)
            return s_abort(self, fl_fail(rc, "sa.keys: key agreement with client %u: %s",
                                         self->nbrs[p], fl_errmsg()));
    }

    /* Share s_sk and b among the listed clients (the U1 view, self too),
     * holder at position p getting x = 1 + p. */
    uint32_t *xs = fl_xmalloc(cnt * sizeof *xs);
    uint32_t *hp = fl_xmalloc(cnt * sizeof *hp);
    size_t m = 0;
    for (uint32_t p = 0; p < self->size; p++)
        if (self->listed[p]) {
            hp[m] = p;
            xs[m++] = 1 + p;
        }
    assert(m == cnt);
    size_t shlen = cnt * FL_SA_SHARE_LEN;
    uint8_t *shares = sodium_malloc(2 * shlen); /* sk shares | b shares */
    if (!shares) {
        rc = fl_fail(FL_ENOMEM, "sa.keys: cannot allocate guarded memory for %zu shares", cnt);
        goto out;
    }
    if ((rc = fl_shamir_split(fl_sa_keypair_sk(self->skp), s->t, (unsigned)cnt, xs, shares)) <
            0 ||
        (rc = fl_shamir_split(self->b, s->t, (unsigned)cnt, xs, shares + shlen)) < 0)
        goto out;
    if ((rc = s_out_alloc(self, (cnt - 1) * FL_SA_REC_SHR)) < 0)
        goto out;
    uint8_t *o = self->out;
    for (size_t i = 0; i < cnt; i++) {
        uint32_t p = hp[i];
        const uint8_t *ssk = shares + i * FL_SA_SHARE_LEN;
        const uint8_t *sb = shares + shlen + i * FL_SA_SHARE_LEN;
        if (p == self->self_pos) { /* keep own shares */
            memcpy(self->sh_sk + (size_t)p * FL_SA_SHARE_LEN, ssk, FL_SA_SHARE_LEN);
            memcpy(self->sh_b + (size_t)p * FL_SA_SHARE_LEN, sb, FL_SA_SHARE_LEN);
            continue;
        }
        fl_store_be32(o, self->nbrs[p]);
        rc = fl_sa_envelope_seal(self->enc + (size_t)p * FL_SA_SEED_LEN, self->sid, s->idx,
                                 self->nbrs[p], ssk, sb, o + 4);
        if (rc < 0)
            goto out;
        o += FL_SA_REC_SHR;
    }
    assert(o == self->out + (cnt - 1) * FL_SA_REC_SHR);
    *out = self->out;
    *out_len = (cnt - 1) * FL_SA_REC_SHR;
    self->state = S_WANT_MREQ;
out:
    sodium_free(shares);
    free(xs);
    free(hp);
    return rc < 0 ? s_abort(self, rc) : 0;
}

/* ---- R2: sa.mreq ---- */

int
fl_sa_client_on_mreq(fl_sa_client_t *self, const uint8_t *recs, size_t len)
{
    if (self->state != S_WANT_MREQ)
        return s_wrong_state(self, "sa.mreq");
    const fl_sa_setup_t *s = &self->setup;
    int rc = 0;
    if (len % FL_SA_REC_MREQ != 0)
        return s_abort(self, fl_fail(FL_EPROTO,
                                     "sa.mreq: %zu bytes is not a whole number of %d-byte records",
                                     len, FL_SA_REC_MREQ));
    size_t cnt = len / FL_SA_REC_MREQ;
    if (cnt >= self->size)
        return s_abort(self, fl_fail(FL_EPROTO,
                                     "sa.mreq: %zu records, but client %u has only %u peers",
                                     cnt, s->idx, self->size - 1));
    memset(self->inu2, 0, self->size);
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * FL_SA_REC_MREQ;
        uint32_t src = fl_load_be32(r);
        int64_t pos = src < s->n ? fl_sagraph_position(self->graph, s->idx, src) : -1;
        if (pos < 0)
            return s_abort(self, fl_fail(FL_EPROTO,
                                         "sa.mreq: record %zu is from client %u, which is not a "
                                         "neighbour of client %u",
                                         i, src, s->idx));
        if (src == s->idx)
            return s_abort(self, fl_fail(FL_EPROTO,
                                         "sa.mreq: record %zu claims to come from this client "
                                         "(%u)",
                                         i, src));
        if (!self->listed[pos])
            return s_abort(self, fl_fail(FL_EPROTO,
                                         "sa.mreq: record %zu is from client %u, which sa.keys "
                                         "did not list",
                                         i, src));
        if (self->inu2[pos])
            return s_abort(self, fl_fail(FL_EPROTO,
                                         "sa.mreq: record %zu is a second one from client %u", i,
                                         src));
        rc = fl_sa_envelope_open(self->enc + (size_t)pos * FL_SA_SEED_LEN, self->sid, src,
                                 s->idx, r + 4, self->sh_sk + (size_t)pos * FL_SA_SHARE_LEN,
                                 self->sh_b + (size_t)pos * FL_SA_SHARE_LEN);
        if (rc < 0)
            return s_abort(self, fl_fail(rc, "sa.mreq: record %zu (from client %u): %s", i, src,
                                         fl_errmsg()));
        self->inu2[pos] = 1;
    }
    self->inu2[self->self_pos] = 1;
    if (cnt + 1 < s->t)
        return s_abort(self, fl_fail(FL_ERANGE,
                                     "sa.mreq: %zu peers sent shares; with this client that is "
                                     "fewer than the threshold %u",
                                     cnt, s->t));
    /* The share-encryption keys have done their work. */
    sodium_memzero(self->enc, (size_t)self->size * FL_SA_SEED_LEN);
    self->state = S_WANT_MASK;
    return 0;
}

/* ---- R2': the masked input ---- */

int
fl_sa_client_mask(fl_sa_client_t *self, const float *x, double weight, fl_sa_rand_fn rnd,
                  void *ctx, uint32_t *y, size_t *saturated)
{
    /* Masking twice with the same masks would reveal the difference of the
     * two inputs, so the input is masked once; failures leave y holding
     * nothing useful and the client where it was (they do not abort). */
    if (self->state != S_WANT_MASK)
        return fl_fail(FL_ESTATE, "sa client %u: %s", self->setup.idx,
                       self->state == S_ABORTED     ? "aborted; nothing to mask"
                       : self->state < S_WANT_MASK ? "cannot mask before sa.mreq"
                                                   : "the input is masked already");
    const fl_sa_setup_t *s = &self->setup;
    size_t dim = (size_t)s->dim;
    size_t words = (size_t)fl_sa_setup_words(s);
    bool weighted = s->wmax > 0;
    int rc = weighted ? fl_sa_quantize_weighted(x, dim, weight, s->wmax, s->clip, s->levels, rnd,
                                                ctx, y)
                      : fl_sa_quantize(x, dim, s->clip, s->levels, rnd, ctx, y);
    if (rc < 0)
        return rc;
    if (saturated) {
        /* exactly the coordinates the quantizer clipped */
        double scale = weighted ? (double)y[0] / s->levels : 1.0;
        size_t sat = 0;
        for (size_t i = 0; i < dim; i++) {
            double v = scale * x[i];
            sat += v > s->clip || v < -s->clip;
        }
        *saturated = sat;
    }

    uint8_t *seed = sodium_malloc(FL_SA_SEED_LEN);
    fl_sa_masks_t *mk = fl_sa_masks_new(s->bits);
    if (!seed || !mk) {
        rc = fl_fail(FL_ENOMEM, "sa client %u: cannot allocate guarded memory for masks", s->idx);
        goto out;
    }
    fl_sa_self_seed(self->b, self->sid, seed);
    if ((rc = fl_sa_masks_add(mk, seed, 1)) < 0)
        goto out;
    for (uint32_t p = 0; p < self->size; p++) {
        if (!self->inu2[p] || p == self->self_pos)
            continue;
        rc = fl_sa_masks_add(mk, self->pair + (size_t)p * FL_SA_SEED_LEN,
                             fl_sa_pair_sign(s->idx, self->nbrs[p]));
        if (rc < 0)
            goto out;
    }
    if ((rc = fl_sa_masks_apply(mk, 0, words, y)) < 0)
        goto out;
    /* The pairwise seeds are not needed any more. */
    sodium_memzero(self->pair, (size_t)self->size * FL_SA_SEED_LEN);
    self->state = s->active ? S_WANT_CHK : S_WANT_UNMASK;
out:
    if (rc < 0)
        sodium_memzero(y, words * sizeof *y); /* never leave the bare encoding behind */
    fl_sa_masks_destroy(&mk);
    sodium_free(seed);
    return rc;
}

/* ---- R3: sa.chk -> sa.sig (active model) ---- */

int
fl_sa_client_on_chk(fl_sa_client_t *self, const uint8_t *bitmap, size_t len,
                    uint8_t sig[FL_SIGN_SIG_LEN])
{
    const fl_sa_setup_t *s = &self->setup;
    if (!s->active && self->state != S_ABORTED)
        return s_abort(self, fl_fail(FL_ESTATE, "sa client %u: sa.chk in a semi-honest round",
                                     s->idx));
    if (self->state != S_WANT_CHK)
        return s_wrong_state(self, "sa.chk");
    size_t want = fl_sa_chk_len(s->n);
    if (len != want)
        return s_abort(self, fl_fail(FL_EPROTO,
                                     "sa.chk: a U3 bitmap of %zu bytes, want %zu for %u clients",
                                     len, want, s->n));
    if (s->n % 8 != 0 && (bitmap[len - 1] >> (s->n % 8)) != 0)
        return s_abort(self, fl_fail(FL_EPROTO,
                                     "sa.chk: the U3 bitmap sets bits beyond client %u", s->n - 1));
    uint32_t in3 = 0;
    for (uint32_t p = 0; p < self->size; p++) {
        uint32_t v = self->nbrs[p];
        self->inu3[p] = (uint8_t)(bitmap[v / 8] >> (v % 8) & 1);
        if (self->inu3[p] && !self->inu2[p])
            return s_abort(self, fl_fail(FL_EPROTO,
                                         "sa.chk: client %u is in U3, but it sent this client "
                                         "(%u) no shares, so this client did not mask with it",
                                         v, s->idx));
        in3 += self->inu3[p];
    }
    if (!self->inu3[self->self_pos])
        return s_abort(self, fl_fail(FL_EPROTO, "sa.chk: this client (%u) is not in U3", s->idx));
    if (in3 < s->t)
        return s_abort(self, fl_fail(FL_ERANGE,
                                     "sa.chk: %u neighbours of client %u (itself included) are in "
                                     "U3, fewer than the threshold %u",
                                     in3, s->idx, s->t));
    fl_sa_r3_msg(self->sid, bitmap, len, self->r3msg);
    fl_identity_sign(self->id, self->r3msg, sizeof self->r3msg, sig);
    self->state = S_WANT_UNMASK;
    return 0;
}

/* ---- R4: sa.unmask -> sa.shares ---- */

/*
 * Active model: the checks of sa.unmask beyond the semi-honest ones, on
 * records already known to name distinct members of this client's U2 view
 * (seen[pos] = 1 + status): every member is listed, alive exactly when it is
 * in the U3 this client signed; signatures only on alive records, each
 * valid over this client's R3 message; at least t of them.
 */
static int
s_check_unmask_signed(fl_sa_client_t *self, const uint8_t *recs, size_t cnt)
{
    const fl_sa_setup_t *s = &self->setup;
    static const uint8_t zero[FL_SIGN_SIG_LEN];
    for (uint32_t p = 0; p < self->size; p++) {
        if (!self->inu2[p])
            continue;
        if (!self->seen[p])
            return fl_fail(FL_EPROTO,
                           "sa.unmask: client %u, in this client's U2, is listed neither alive "
                           "nor dead",
                           self->nbrs[p]);
        bool alive = self->seen[p] == 1 + FL_SA_ALIVE;
        if (alive != (self->inu3[p] != 0))
            return fl_fail(FL_EPROTO,
                           "sa.unmask: client %u is listed %s, but the U3 this client signed "
                           "has it %s",
                           self->nbrs[p], alive ? "alive" : "dead",
                           alive ? "out (dropped)" : "in (alive)");
    }
    size_t valid = 0;
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * FL_SA_REC_UNMASK_ACTIVE;
        const uint8_t *sig = r + FL_SA_REC_UNMASK;
        uint32_t v = fl_load_be32(r);
        if (sodium_memcmp(sig, zero, sizeof zero) == 0)
            continue;
        if (r[4] != FL_SA_ALIVE)
            return fl_fail(FL_EPROTO,
                           "sa.unmask: record %zu carries a signature for dead client %u", i, v);
        uint32_t pos = (uint32_t)fl_sagraph_position(self->graph, s->idx, v);
        if (fl_identity_verify(self->idpk + (size_t)pos * FL_SIGN_PK_LEN, self->r3msg,
                               sizeof self->r3msg, sig) < 0)
            return fl_fail(FL_ECRYPTO,
                           "sa.unmask: record %zu: client %u's signature is not over the U3 "
                           "this client signed (a split view?)",
                           i, v);
        valid++;
    }
    if (valid < s->t)
        return fl_fail(FL_ERANGE,
                       "sa.unmask: %zu neighbours signed the U3 this client signed, fewer than "
                       "the threshold %u",
                       valid, s->t);
    return 0;
}

int
fl_sa_client_on_unmask(fl_sa_client_t *self, const uint8_t *recs, size_t len,
                       const uint8_t **out, size_t *out_len)
{
    if (self->state != S_WANT_UNMASK)
        return s_wrong_state(self, "sa.unmask");
    const fl_sa_setup_t *s = &self->setup;
    size_t rl = fl_sa_rec_unmask_len(s);
    if (len % rl != 0)
        return s_abort(self,
                       fl_fail(FL_EPROTO,
                               "sa.unmask: %zu bytes is not a whole number of %zu-byte records",
                               len, rl));
    size_t cnt = len / rl;
    if (cnt > self->size)
        return s_abort(self, fl_fail(FL_EPROTO,
                                     "sa.unmask: %zu records, but client %u has only %u "
                                     "neighbours (itself included)",
                                     cnt, s->idx, self->size));

    /* Check everything before any reveal state changes. */
    memset(self->seen, 0, self->size);
    size_t alive = 0;
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * rl;
        uint32_t v = fl_load_be32(r);
        uint8_t st = r[4];
        int64_t pos = v < s->n ? fl_sagraph_position(self->graph, s->idx, v) : -1;
        if (pos < 0)
            return s_abort(self, fl_fail(FL_EPROTO,
                                         "sa.unmask: record %zu names client %u, which is not a "
                                         "neighbour of client %u",
                                         i, v, s->idx));
        if (!self->inu2[pos])
            return s_abort(self, fl_fail(FL_EPROTO,
                                         "sa.unmask: record %zu names client %u, which is not in "
                                         "this client's U2 (no shares from it)",
                                         i, v));
        if (st != FL_SA_ALIVE && st != FL_SA_DEAD)
            return s_abort(self, fl_fail(FL_EPROTO,
                                         "sa.unmask: record %zu has status %u (0 alive, 1 dead)",
                                         i, st));
        if (self->seen[pos])
            return s_abort(self, fl_fail(FL_EPROTO,
                                         "sa.unmask: record %zu lists client %u a second time "
                                         "(first %s, now %s)",
                                         i, v, self->seen[pos] == 1 ? "alive" : "dead",
                                         st == FL_SA_ALIVE ? "alive" : "dead"));
        self->seen[pos] = (uint8_t)(1 + st);
        if (v == s->idx && st == FL_SA_DEAD)
            return s_abort(self, fl_fail(FL_EPROTO,
                                         "sa.unmask: record %zu lists this client (%u) as dead",
                                         i, v));
        fl_sa_peer_state_t prev = self->reveal[pos];
        fl_sa_peer_state_t want = st == FL_SA_DEAD ? FL_SA_PEER_REVEALED_SK : FL_SA_PEER_REVEALED_B;
        if (prev != FL_SA_PEER_SEALED && prev != want)
            return s_abort(self, fl_fail(FL_ESTATE,
                                         "sa.unmask: client %u is listed %s, but an earlier "
                                         "sa.unmask listed it %s; revealing both shares would "
                                         "expose its input",
                                         v, st == FL_SA_DEAD ? "dead" : "alive",
                                         st == FL_SA_DEAD ? "alive" : "dead"));
        alive += st == FL_SA_ALIVE;
    }
    if (self->seen[self->self_pos] != 1 + FL_SA_ALIVE)
        return s_abort(self, fl_fail(FL_EPROTO, "sa.unmask: this client (%u) is not listed alive",
                                     s->idx));
    if (alive < s->t)
        return s_abort(self, fl_fail(FL_ERANGE,
                                     "sa.unmask: %zu clients listed alive, fewer than the "
                                     "threshold %u",
                                     alive, s->t));
    int rc = s->active ? s_check_unmask_signed(self, recs, cnt) : 0;
    if (rc < 0)
        return s_abort(self, rc);

    rc = s_out_alloc(self, cnt * FL_SA_REC_SHARES);
    if (rc < 0)
        return s_abort(self, rc);
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * rl;
        uint32_t v = fl_load_be32(r);
        bool dead = r[4] == FL_SA_DEAD;
        uint32_t pos = (uint32_t)fl_sagraph_position(self->graph, s->idx, v);
        rc = fl_sa_peer_reveal(&self->reveal[pos], dead);
        assert(rc == 0); /* checked above */
        (void)rc;
        uint8_t *o = self->out + i * FL_SA_REC_SHARES;
        fl_store_be32(o, v);
        o[4] = dead ? FL_SA_DEAD : FL_SA_ALIVE;
        memcpy(o + 5, (dead ? self->sh_sk : self->sh_b) + (size_t)pos * FL_SA_SHARE_LEN,
               FL_SA_SHARE_LEN);
    }
    *out = self->out;
    *out_len = cnt * FL_SA_REC_SHARES;
    return 0;
}
