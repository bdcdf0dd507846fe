/*
 * fl_saclient.c — the agent's side of one SecAgg / SecAgg+ round, and the
 * round setup both ends share (see fl_saclient.h for the records and the
 * order of calls; SECAGG.md §1.4 for the protocol).
 *
 * Session id. fl_sa_setup_sid() hashes, with fl_sa_sid(nonce, bytes, 75),
 * these 75 canonical bytes (integers big-endian, doubles as their IEEE-754
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
 *
 * so sid = BLAKE2b-256("FLSA/v1/sid" || nonce(32) || those 75 bytes).
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
#define S_SID_BYTES (sizeof S_SID_LABEL - 1 + 8 + 8 + 4 + 4 + 4 + 1 + 1 + 4 + 8 + 8 + 8)

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
    assert(p == buf + sizeof buf);
    fl_sa_sid(s->nonce, buf, sizeof buf, sid);
}

uint64_t
fl_sa_setup_words(const fl_sa_setup_t *s)
{
    return s->dim + (s->wmax > 0 ? 1 : 0);
}

/* ---- the client ---- */

typedef enum {
    S_WANT_KEYS = 0, /* made; waits for sa.keys */
    S_WANT_MREQ,     /* shares sent; waits for sa.mreq */
    S_WANT_MASK,     /* U2 known; waits for the input */
    S_WANT_UNMASK,   /* input masked; answers sa.unmask (maybe more than once) */
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
    static const char *const want[] = {"sa.keys", "sa.mreq", "the masked input", "sa.unmask",
                                       "nothing (aborted)"};
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

/* Check that the 2 cnt keys of the listed clients are pairwise distinct
 * (sorted, so O(cnt log cnt) even for a full graph of thousands). */
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
    qsort(refs, m, sizeof *refs, s_cmp_key_ref);
    int rc = 0;
    for (size_t i = 1; i < m; i++)
        if (memcmp(refs[i - 1].key, refs[i].key, FL_SA_KEY_LEN) == 0) {
            rc = fl_fail(FL_EPROTO, "sa.keys: the %s of client %u equals the %s of client %u",
                         refs[i - 1].role, refs[i - 1].idx, refs[i].role, refs[i].idx);
            break;
        }
    free(refs);
    return rc;
}

/* Parse and check the sa.keys records into listed/pks; returns the count. */
static int
s_parse_keys(fl_sa_client_t *self, const uint8_t *recs, size_t len, size_t *cnt_p)
{
    const fl_sa_setup_t *s = &self->setup;
    if (len % FL_SA_REC_KEYS != 0)
        return fl_fail(FL_EPROTO, "sa.keys: %zu bytes is not a whole number of %d-byte records",
                       len, FL_SA_REC_KEYS);
    size_t cnt = len / FL_SA_REC_KEYS;
    if (cnt > self->size)
        return fl_fail(FL_EPROTO,
                       "sa.keys: %zu records, but client %u has only %u neighbours (itself "
                       "included)",
                       cnt, s->idx, self->size);
    memset(self->listed, 0, self->size);
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * FL_SA_REC_KEYS;
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
        self->listed[pos] = 1;
        memcpy(self->pks + (size_t)pos * 2 * FL_SA_KEY_LEN, r + 4, 2 * FL_SA_KEY_LEN);
    }
    if (!self->listed[self->self_pos])
        return fl_fail(FL_EPROTO, "sa.keys: this client (%u) is not listed", s->idx);
    int rc = s_check_distinct(self, cnt);
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
    self->state = S_WANT_UNMASK;
out:
    if (rc < 0)
        sodium_memzero(y, words * sizeof *y); /* never leave the bare encoding behind */
    fl_sa_masks_destroy(&mk);
    sodium_free(seed);
    return rc;
}

/* ---- R4: sa.unmask -> sa.shares ---- */

int
fl_sa_client_on_unmask(fl_sa_client_t *self, const uint8_t *recs, size_t len,
                       const uint8_t **out, size_t *out_len)
{
    if (self->state != S_WANT_UNMASK)
        return s_wrong_state(self, "sa.unmask");
    const fl_sa_setup_t *s = &self->setup;
    if (len % FL_SA_REC_UNMASK != 0)
        return s_abort(self,
                       fl_fail(FL_EPROTO,
                               "sa.unmask: %zu bytes is not a whole number of %d-byte records",
                               len, FL_SA_REC_UNMASK));
    size_t cnt = len / FL_SA_REC_UNMASK;
    if (cnt > self->size)
        return s_abort(self, fl_fail(FL_EPROTO,
                                     "sa.unmask: %zu records, but client %u has only %u "
                                     "neighbours (itself included)",
                                     cnt, s->idx, self->size));

    /* Check everything before any reveal state changes. */
    memset(self->seen, 0, self->size);
    size_t alive = 0;
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * FL_SA_REC_UNMASK;
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

    int rc = s_out_alloc(self, cnt * FL_SA_REC_SHARES);
    if (rc < 0)
        return s_abort(self, rc);
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * FL_SA_REC_UNMASK;
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
