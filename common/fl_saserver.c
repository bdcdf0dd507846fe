/*
 * fl_saserver.c — the coordinator's side of one SecAgg / SecAgg+ round (see
 * fl_saserver.h for the phases and the sets, fl_saclient.h for the records).
 *
 * State per client idx: its flags (advertised = U1, shared = U2, committed
 * input = U3, sent unmasking shares = U5), its two public keys, the
 * envelopes it sealed (one 128-byte slot per position of N(idx), kept unread
 * for routing), and, as an owner, the shares of its b (owners in U3) or
 * s_sk (owners in U2 \ U3) that its neighbours revealed, one 36-byte slot
 * per holder position. So memory is O(words + n k). Advertised keys sit in
 * a SipHash-keyed open-addressing set, so a reused key is found in O(1);
 * low-order keys are refused at sa.adv too (with one, every neighbour's key
 * agreement fails and, as the client must, it aborts).
 *
 * Active model. set_ca gives the identity CA's public key; each sa.adv then
 * carries an R0 signature and a certificate, both checked before anything
 * is kept (a client that the server forwards a bad one for would abort, so
 * refusing it here keeps the round alive for the honest ones). The
 * certificate's identity key and CURVE key go into the same key set as the
 * round keys (roles 2 and 3), so an identity reused under a second idx is
 * found in O(1). close_masked freezes U3 and moves to CHK; sa.sig adds a
 * member of U3 whose signature over the R3 message verifies to U4, and
 * close_chk computes what must be reconstructed with U4 as the holders (U3
 * members outside U4 still have their input in the sum, so their b is
 * rebuilt from U4's shares). Only U4 is asked to unmask.
 *
 * Unmasking (finish). Every secret is reconstructed from the first t shares
 * in position order; when more than t holders answered, every further share
 * is checked to lie on the same polynomial (Lagrange evaluation at its x),
 * so a forged or corrupted share is caught instead of yielding a wrong mask
 * and a silently wrong sum. With t + 2 or more shares a single bad one is
 * also found (leave one out: only without it do the rest agree), discarded,
 * and its holder reported (fl_sa_server_excluded), so one malicious holder
 * cannot make the round fail; otherwise the inconsistency is FL_ECRYPTO.
 * With exactly t shares no such check is possible (any t points fit a
 * polynomial of degree t - 1): a forged s_sk share is still caught because
 * the rebuilt public key must equal the one advertised; a forged b share is caught only by the decoder's range check
 * (FL_ERANGE), which a random mask fails with overwhelming probability for
 * any but the smallest inputs. Then, with one mask list:
 *   - for u in U3: -PRG(self seed of b_u);
 *   - for d in U2 \ U3 and v in N(d) ∩ U3: v added sgn(v - d) PRG(s_vd)
 *     (it masked against its U2 view, which included d), so add the
 *     opposite term, with s_vd derived from the rebuilt key of d and the
 *     advertised spk of v.
 */
#include "fl_saserver.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_sagraph.h"
#include "fl_shamir.h"

#define S_F_U1 1u /* advertised keys */
#define S_F_U2 2u /* sent its shares */
#define S_F_U3 4u /* committed its masked input */
#define S_F_U5 8u /* sent its unmasking shares */
#define S_F_U4 16u /* active: signed U3 (R3) */

/* Roles of the keys in the key set: the round keys, and in the active model
 * the certified identity and CURVE keys. */
enum { S_R_CPK = 0, S_R_SPK, S_R_IDPK, S_R_CURVE, S_ROLES };

/* What has to be reconstructed of an owner after close_masked. */
enum { S_NEED_NONE = 0, S_NEED_B = 1, S_NEED_SK = 2 };

struct fl_sa_server {
    fl_sa_setup_t setup;
    uint8_t sid[FL_SA_SID_LEN];
    fl_sagraph_t *graph;
    uint32_t n, size, t;
    unsigned bits;
    uint64_t words;
    fl_sa_phase_t phase;
    char failure[512];

    uint8_t *flags;   /* [n] S_F_* */
    size_t count[6];  /* |U0| .. |U5| */
    uint8_t *pks;     /* [n][64]: cpk | spk */
    uint32_t *ktab;   /* open-addressing set of advertised keys: 1 + 4 idx + role, 0 empty */
    size_t kmask;     /* table size - 1 (a power of two) */
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    uint8_t probe[crypto_scalarmult_SCALARBYTES]; /* random scalar for the low-order check */
    uint8_t **env;    /* [n]: NULL or [size][128], by position of dst in N(sender) */
    uint8_t **sh;     /* [n]: NULL or [size][36] shares | [size] present flags */
    uint32_t *shcnt;  /* [n] shares received per owner */
    uint8_t *need;    /* [n] S_NEED_* */
    uint8_t *excluded; /* [n] 1: a share it revealed was inconsistent and discarded */

    uint32_t *nb;     /* [size] scratch: a neighbourhood */
    uint8_t *seen;    /* [size] scratch */
    uint8_t *out;     /* records handed out */
    size_t out_cap;

    uint32_t *sum;    /* [words] running sum of committed inputs */
    uint32_t *in;     /* [words] the open input */
    bool open;
    uint32_t open_idx;
    uint64_t recv;    /* words of the open input received */

    /* active model */
    bool active, has_ca;
    uint8_t ca_pk[FL_SIGN_PK_LEN];
    uint8_t *certs;   /* [n][128] certificate of each advertiser */
    uint8_t *sig0;    /* [n][64] R0 signature of each advertiser */
    uint8_t *sig3;    /* [n][64] R3 signature of each member of U4 */
    uint8_t *u3map;   /* [ceil(n/8)] the U3 bitmap (sa.chk), from close_masked */
    uint8_t r3msg[FL_SA_R3_MSG_LEN];
};

const char *
fl_sa_phase_name(fl_sa_phase_t ph)
{
    switch (ph) {
    case FL_SA_PH_ADV: return "adv";
    case FL_SA_PH_SHR: return "shr";
    case FL_SA_PH_MASKED: return "masked";
    case FL_SA_PH_CHK: return "chk";
    case FL_SA_PH_UNMASK: return "unmask";
    case FL_SA_PH_DONE: return "done";
    case FL_SA_PH_FAILED: return "failed";
    default: return "unknown";
    }
}

/* The round failed: remember why (the detail of rc) and return rc. */
static int
s_failed(fl_sa_server_t *self, int rc)
{
    assert(rc < 0);
    snprintf(self->failure, sizeof self->failure, "%s", fl_errmsg());
    self->phase = FL_SA_PH_FAILED;
    return rc;
}

static int
s_wrong_phase(const fl_sa_server_t *self, const char *call, fl_sa_phase_t want)
{
    return fl_fail(FL_ESTATE, "sa server: %s in phase %s (only in %s)", call,
                   fl_sa_phase_name(self->phase), fl_sa_phase_name(want));
}

/* Output buffer of len bytes (grown as needed). */
static uint8_t *
s_out(fl_sa_server_t *self, size_t len)
{
    if (len > self->out_cap) {
        free(self->out);
        self->out = fl_xmalloc(len);
        self->out_cap = len;
    }
    return self->out;
}

int
fl_sa_server_new(const fl_sa_setup_t *s, fl_sa_server_t **out)
{
    fl_sa_setup_t setup = *s;
    setup.idx = 0; /* ignored by the server */
    int rc = fl_sa_setup_check(&setup);
    if (rc < 0)
        return rc;
    if (sodium_init() < 0)
        return fl_fail(FL_ENOMEM, "sa server: libsodium failed to initialise");
    fl_sa_server_t *self = fl_xcalloc(1, sizeof *self);
    self->setup = setup;
    self->n = setup.n;
    self->t = setup.t;
    self->bits = setup.bits;
    self->words = fl_sa_setup_words(&setup);
    fl_sa_setup_sid(&setup, self->sid);
    fl_sagraph_params_t gp = {.n = setup.n, .k = setup.k, .t = setup.t, .full = setup.full};
    if ((rc = fl_sagraph_new(&gp, self->sid, &self->graph)) < 0)
        goto fail;
    self->size = fl_sagraph_size(self->graph);
    self->count[0] = self->n;

    /* words <= 2^31 + 1 and n <= FL_SAGRAPH_MAX_N: no overflow below */
    self->sum = calloc((size_t)self->words, sizeof *self->sum);
    self->in = malloc((size_t)self->words * sizeof *self->in);
    if (!self->sum || !self->in) {
        rc = fl_fail(FL_ENOMEM, "sa server: cannot allocate two vectors of %llu words",
                     (unsigned long long)self->words);
        goto fail;
    }
    self->flags = fl_xcalloc(self->n, 1);
    self->pks = fl_xcalloc(self->n, 2 * FL_SA_KEY_LEN);
    self->active = setup.active;
    size_t cap = 16;
    /* two keys a client (four when active), load <= 1/2 */
    while (cap < (self->active ? 8 : 4) * (size_t)self->n)
        cap *= 2;
    self->ktab = fl_xcalloc(cap, sizeof *self->ktab);
    self->kmask = cap - 1;
    crypto_shorthash_keygen(self->hkey);
    randombytes_buf(self->probe, sizeof self->probe);
    self->env = fl_xcalloc(self->n, sizeof *self->env);
    self->sh = fl_xcalloc(self->n, sizeof *self->sh);
    self->shcnt = fl_xcalloc(self->n, sizeof *self->shcnt);
    self->need = fl_xcalloc(self->n, 1);
    self->excluded = fl_xcalloc(self->n, 1);
    self->nb = fl_xmalloc(self->size * sizeof *self->nb);
    self->seen = fl_xmalloc(self->size);
    if (self->active) {
        self->certs = fl_xcalloc(self->n, FL_CERT_LEN);
        self->sig0 = fl_xcalloc(self->n, FL_SIGN_SIG_LEN);
        self->sig3 = fl_xcalloc(self->n, FL_SIGN_SIG_LEN);
        self->u3map = fl_xcalloc(fl_sa_chk_len(self->n), 1);
    }
    self->phase = FL_SA_PH_ADV;
    *out = self;
    return 0;
fail:
    fl_sa_server_destroy(&self);
    return rc;
}

void
fl_sa_server_destroy(fl_sa_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_sa_server_t *self = *self_p;
    for (uint32_t i = 0; self->env && i < self->n; i++)
        free(self->env[i]);
    for (uint32_t i = 0; self->sh && i < self->n; i++)
        if (self->sh[i]) {
            /* enough shares of these reveal a client's secrets */
            sodium_memzero(self->sh[i], (size_t)self->size * (FL_SA_SHARE_LEN + 1));
            free(self->sh[i]);
        }
    if (self->in)
        sodium_memzero(self->in, (size_t)self->words * sizeof *self->in);
    fl_sagraph_destroy(&self->graph);
    free(self->env);
    free(self->sh);
    free(self->shcnt);
    free(self->need);
    free(self->excluded);
    free(self->flags);
    free(self->pks);
    free(self->ktab);
    free(self->nb);
    free(self->seen);
    free(self->out);
    free(self->sum);
    free(self->in);
    free(self->certs);
    free(self->sig0);
    free(self->sig3);
    free(self->u3map);
    sodium_memzero(self->hkey, sizeof self->hkey);
    free(self);
    *self_p = NULL;
}

fl_sa_phase_t
fl_sa_server_phase(const fl_sa_server_t *self)
{
    return self->phase;
}

size_t
fl_sa_server_count(const fl_sa_server_t *self, unsigned stage)
{
    if (stage == 4 && !self->active)
        stage = 3;
    return stage <= 5 ? self->count[stage] : 0;
}

/* The flag of U<stage> (U4 = U3 in the semi-honest model). */
static uint8_t
s_stage_flag(const fl_sa_server_t *self, unsigned stage)
{
    static const uint8_t f[6] = {0, S_F_U1, S_F_U2, S_F_U3, S_F_U4, S_F_U5};
    if (stage == 4 && !self->active)
        stage = 3;
    return stage <= 5 ? f[stage] : 0xff;
}

/* The set whose members hold the shares the server unmasks with, and are
 * asked for them: U4 in the active model, U3 otherwise. */
static uint8_t
s_holder_flag(const fl_sa_server_t *self)
{
    return s_stage_flag(self, 4);
}

bool
fl_sa_server_member(const fl_sa_server_t *self, uint32_t idx, unsigned stage)
{
    if (idx >= self->n || stage > 5)
        return false;
    uint8_t f = s_stage_flag(self, stage);
    return (self->flags[idx] & f) == f;
}

const char *
fl_sa_server_failure(const fl_sa_server_t *self)
{
    return self->phase == FL_SA_PH_FAILED ? self->failure : "";
}

/* |N(u) ∩ U<flag>|, u included when it is a member. */
static uint32_t
s_members_near(fl_sa_server_t *self, uint32_t u, uint8_t flag)
{
    fl_sagraph_neighbours(self->graph, u, self->nb);
    uint32_t c = 0;
    for (uint32_t p = 0; p < self->size; p++)
        c += (self->flags[self->nb[p]] & flag) != 0;
    return c;
}

/* Freeze a set: every member must keep t members in its neighbourhood. */
static int
s_close_set(fl_sa_server_t *self, uint8_t flag, unsigned stage, fl_sa_phase_t next)
{
    if (self->count[stage] < self->t)
        return s_failed(self, fl_fail(FL_ERANGE,
                                      "sa server: U%u has %zu clients, fewer than the threshold "
                                      "%u",
                                      stage, self->count[stage], self->t));
    for (uint32_t u = 0; u < self->n; u++) {
        if (!(self->flags[u] & flag))
            continue;
        uint32_t c = s_members_near(self, u, flag);
        if (c < self->t)
            return s_failed(self, fl_fail(FL_ERANGE,
                                          "sa server: client %u has %u members of U%u in its "
                                          "neighbourhood (itself included), fewer than the "
                                          "threshold %u",
                                          u, c, stage, self->t));
    }
    self->phase = next;
    return 0;
}

/* ---- R0 / R1 ---- */

static size_t
s_key_slot(const fl_sa_server_t *self, const uint8_t key[FL_SA_KEY_LEN])
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, FL_SA_KEY_LEN, self->hkey);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof h; i++)
        v = v << 8 | h[i];
    return (size_t)(v & self->kmask);
}

static const char *const s_role_name[S_ROLES] = {"cpk", "spk", "identity key",
                                                  "certified CURVE key"};

/* Where client c's key of a role is kept. */
static const uint8_t *
s_key_at(const fl_sa_server_t *self, uint32_t c, uint32_t role)
{
    if (role < S_R_IDPK)
        return self->pks + (size_t)c * 2 * FL_SA_KEY_LEN + role * FL_SA_KEY_LEN;
    const uint8_t *cert = self->certs + (size_t)c * FL_CERT_LEN;
    return role == S_R_IDPK ? FL_CERT_ID_PK(cert) : FL_CERT_CURVE_PK(cert);
}

/* The entry (1 + 4 idx + role) of a kept key, or 0. */
static uint32_t
s_key_find(const fl_sa_server_t *self, const uint8_t key[FL_SA_KEY_LEN])
{
    for (size_t i = s_key_slot(self, key);; i = (i + 1) & self->kmask) {
        uint32_t e = self->ktab[i];
        if (e == 0)
            return 0;
        if (memcmp(s_key_at(self, (e - 1) / S_ROLES, (e - 1) % S_ROLES), key, FL_SA_KEY_LEN) ==
            0)
            return e;
    }
}

static void
s_key_insert(fl_sa_server_t *self, uint32_t idx, uint32_t role)
{
    size_t i = s_key_slot(self, s_key_at(self, idx, role));
    while (self->ktab[i] != 0)
        i = (i + 1) & self->kmask;
    self->ktab[i] = 1 + S_ROLES * idx + role;
}

/* A key (of the given role) that another client already uses: FL_EPROTO
 * naming both, or 0. */
static int
s_key_unused(const fl_sa_server_t *self, uint32_t idx, uint32_t role, const uint8_t *key)
{
    uint32_t e = s_key_find(self, key);
    if (!e)
        return 0;
    return fl_fail(FL_EPROTO, "sa.adv: %sclient %u's %s is the %s client %u advertised",
                   role >= S_R_IDPK ? "one identity appears twice: " : "", idx,
                   s_role_name[role], s_role_name[(e - 1) % S_ROLES], (e - 1) / S_ROLES);
}

/* The checks of sa.adv in both models: a fresh idx of the round, and two
 * distinct keys that are not low-order points and not already advertised. */
static int
s_adv_check(fl_sa_server_t *self, uint32_t idx, const uint8_t cpk[FL_SA_KEY_LEN],
            const uint8_t spk[FL_SA_KEY_LEN])
{
    if (idx >= self->n)
        return fl_fail(FL_EPROTO, "sa.adv from client %u, but the round has %u", idx, self->n);
    if (self->flags[idx] & S_F_U1)
        return fl_fail(FL_EPROTO, "sa.adv: client %u advertised its keys already", idx);
    if (memcmp(cpk, spk, FL_SA_KEY_LEN) == 0)
        return fl_fail(FL_EPROTO, "sa.adv: client %u advertises one key as both cpk and spk",
                       idx);
    const uint8_t *keys[2] = {cpk, spk};
    for (uint32_t r = 0; r < 2; r++) {
        /* A low-order key makes every neighbour's key agreement fail, and
         * each of them would abort: refuse it here. X25519 with a clamped
         * scalar (a multiple of 8) gives zero exactly for those points. */
        uint8_t q[crypto_scalarmult_BYTES];
        int lo = crypto_scalarmult(q, self->probe, keys[r]);
        sodium_memzero(q, sizeof q);
        if (lo != 0)
            return fl_fail(FL_EPROTO, "sa.adv: client %u's %s is a low-order point", idx,
                           s_role_name[r]);
        int rc = s_key_unused(self, idx, r, keys[r]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Keep client idx's checked round keys: it joins U1. */
static void
s_adv_keep(fl_sa_server_t *self, uint32_t idx, const uint8_t cpk[FL_SA_KEY_LEN],
           const uint8_t spk[FL_SA_KEY_LEN])
{
    memcpy(self->pks + (size_t)idx * 2 * FL_SA_KEY_LEN, cpk, FL_SA_KEY_LEN);
    memcpy(self->pks + (size_t)idx * 2 * FL_SA_KEY_LEN + FL_SA_KEY_LEN, spk, FL_SA_KEY_LEN);
    s_key_insert(self, idx, S_R_CPK);
    s_key_insert(self, idx, S_R_SPK);
    self->flags[idx] |= S_F_U1;
    self->count[1]++;
}

int
fl_sa_server_on_adv(fl_sa_server_t *self, uint32_t idx, const uint8_t cpk[FL_SA_KEY_LEN],
                    const uint8_t spk[FL_SA_KEY_LEN])
{
    if (self->phase != FL_SA_PH_ADV)
        return s_wrong_phase(self, "sa.adv", FL_SA_PH_ADV);
    if (self->active)
        return fl_fail(FL_EPROTO,
                       "sa.adv from client %u: signed advertisement required (active round)",
                       idx);
    int rc = s_adv_check(self, idx, cpk, spk);
    if (rc < 0)
        return rc;
    s_adv_keep(self, idx, cpk, spk);
    return 0;
}

int
fl_sa_server_set_ca(fl_sa_server_t *self, const uint8_t ca_pk[FL_SIGN_PK_LEN])
{
    if (!self->active)
        return fl_fail(FL_ESTATE, "sa server: an identity CA is for active rounds only");
    if (self->phase != FL_SA_PH_ADV || self->count[1] != 0)
        return fl_fail(FL_ESTATE, "sa server: the identity CA must be set before any sa.adv");
    memcpy(self->ca_pk, ca_pk, FL_SIGN_PK_LEN);
    self->has_ca = true;
    return 0;
}

int
fl_sa_server_on_adv_signed(fl_sa_server_t *self, uint32_t idx, const uint8_t cpk[FL_SA_KEY_LEN],
                           const uint8_t spk[FL_SA_KEY_LEN], const uint8_t sig[FL_SIGN_SIG_LEN],
                           const uint8_t cert[FL_CERT_LEN])
{
    if (self->phase != FL_SA_PH_ADV)
        return s_wrong_phase(self, "sa.adv", FL_SA_PH_ADV);
    if (!self->active)
        return fl_fail(FL_ESTATE, "sa server: a signed sa.adv in a semi-honest round");
    if (!self->has_ca)
        return fl_fail(FL_ESTATE, "sa server: no identity CA set (fl_sa_server_set_ca)");
    int rc = s_adv_check(self, idx, cpk, spk);
    if (rc < 0)
        return rc;
    if (fl_cert_verify(self->ca_pk, cert) < 0)
        return fl_fail(FL_EPROTO, "sa.adv from client %u: not certified by the identity CA (%s)",
                       idx, fl_errmsg());
    uint8_t msg[FL_SA_R0_MSG_LEN];
    fl_sa_r0_msg(self->sid, idx, cpk, spk, msg);
    if (fl_identity_verify(FL_CERT_ID_PK(cert), msg, sizeof msg, sig) < 0)
        return fl_fail(FL_EPROTO,
                       "sa.adv from client %u: the R0 signature does not verify under the "
                       "certified identity key",
                       idx);
    if ((rc = s_key_unused(self, idx, S_R_IDPK, FL_CERT_ID_PK(cert))) < 0 ||
        (rc = s_key_unused(self, idx, S_R_CURVE, FL_CERT_CURVE_PK(cert))) < 0)
        return rc;
    memcpy(self->certs + (size_t)idx * FL_CERT_LEN, cert, FL_CERT_LEN);
    memcpy(self->sig0 + (size_t)idx * FL_SIGN_SIG_LEN, sig, FL_SIGN_SIG_LEN);
    s_key_insert(self, idx, S_R_IDPK);
    s_key_insert(self, idx, S_R_CURVE);
    s_adv_keep(self, idx, cpk, spk);
    return 0;
}

int
fl_sa_server_close_adv(fl_sa_server_t *self)
{
    if (self->phase != FL_SA_PH_ADV)
        return s_wrong_phase(self, "close_adv", FL_SA_PH_ADV);
    return s_close_set(self, S_F_U1, 1, FL_SA_PH_SHR);
}

int
fl_sa_server_keys_for(fl_sa_server_t *self, uint32_t idx, const uint8_t **out, size_t *out_len)
{
    if (self->phase != FL_SA_PH_SHR)
        return s_wrong_phase(self, "keys_for", FL_SA_PH_SHR);
    if (idx >= self->n || !(self->flags[idx] & S_F_U1))
        return fl_fail(FL_EPROTO, "sa.keys for client %u, which is not in U1", idx);
    size_t rl = fl_sa_rec_keys_len(&self->setup);
    uint8_t *o = s_out(self, (size_t)self->size * rl);
    size_t m = 0;
    fl_sagraph_neighbours(self->graph, idx, self->nb);
    for (uint32_t p = 0; p < self->size; p++) {
        uint32_t v = self->nb[p];
        if (!(self->flags[v] & S_F_U1))
            continue;
        uint8_t *r = o + m * rl;
        fl_store_be32(r, v);
        memcpy(r + 4, self->pks + (size_t)v * 2 * FL_SA_KEY_LEN, 2 * FL_SA_KEY_LEN);
        if (self->active) {
            memcpy(r + FL_SA_REC_KEYS, self->sig0 + (size_t)v * FL_SIGN_SIG_LEN,
                   FL_SIGN_SIG_LEN);
            memcpy(r + FL_SA_REC_KEYS + FL_SIGN_SIG_LEN, self->certs + (size_t)v * FL_CERT_LEN,
                   FL_CERT_LEN);
        }
        m++;
    }
    *out = o;
    *out_len = m * rl;
    return 0;
}

int
fl_sa_server_on_shr(fl_sa_server_t *self, uint32_t idx, const uint8_t *recs, size_t len)
{
    if (self->phase != FL_SA_PH_SHR)
        return s_wrong_phase(self, "sa.shr", FL_SA_PH_SHR);
    if (idx >= self->n || !(self->flags[idx] & S_F_U1))
        return fl_fail(FL_EPROTO, "sa.shr from client %u, which is not in U1", idx);
    if (self->flags[idx] & S_F_U2)
        return fl_fail(FL_EPROTO, "sa.shr: client %u sent its shares already", idx);
    if (len % FL_SA_REC_SHR != 0)
        return fl_fail(FL_EPROTO,
                       "sa.shr from client %u: %zu bytes is not a whole number of %d-byte "
                       "records",
                       idx, len, FL_SA_REC_SHR);
    size_t cnt = len / FL_SA_REC_SHR;
    uint32_t want = s_members_near(self, idx, S_F_U1) - 1;
    if (cnt != want)
        return fl_fail(FL_EPROTO,
                       "sa.shr from client %u: %zu records, want one for each of its %u peers "
                       "in U1",
                       idx, cnt, want);
    memset(self->seen, 0, self->size);
    for (size_t i = 0; i < cnt; i++) {
        uint32_t dst = fl_load_be32(recs + i * FL_SA_REC_SHR);
        if (dst >= self->n)
            return fl_fail(FL_EPROTO,
                           "sa.shr from client %u: record %zu is for client %u, but the round has "
                           "%u",
                           idx, i, dst, self->n);
        int64_t pos = fl_sagraph_position(self->graph, idx, dst);
        if (pos < 0)
            return fl_fail(FL_EPROTO,
                           "sa.shr from client %u: record %zu is for client %u, which is not a "
                           "neighbour",
                           idx, i, dst);
        if (dst == idx)
            return fl_fail(FL_EPROTO, "sa.shr from client %u: record %zu is for itself", idx, i);
        if (!(self->flags[dst] & S_F_U1))
            return fl_fail(FL_EPROTO,
                           "sa.shr from client %u: record %zu is for client %u, which is not in "
                           "U1",
                           idx, i, dst);
        if (self->seen[pos])
            return fl_fail(FL_EPROTO,
                           "sa.shr from client %u: record %zu is a second one for client %u", idx,
                           i, dst);
        self->seen[pos] = 1;
    }
    /* cnt records for distinct members of N(idx) ∩ U1 \ {idx}, and cnt is
     * their number: exactly one each. */
    uint8_t *env = fl_xmalloc((size_t)self->size * FL_SA_ENVELOPE_LEN);
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * FL_SA_REC_SHR;
        int64_t pos = fl_sagraph_position(self->graph, idx, fl_load_be32(r));
        memcpy(env + (size_t)pos * FL_SA_ENVELOPE_LEN, r + 4, FL_SA_ENVELOPE_LEN);
    }
    self->env[idx] = env;
    self->flags[idx] |= S_F_U2;
    self->count[2]++;
    return 0;
}

int
fl_sa_server_close_shr(fl_sa_server_t *self)
{
    if (self->phase != FL_SA_PH_SHR)
        return s_wrong_phase(self, "close_shr", FL_SA_PH_SHR);
    return s_close_set(self, S_F_U2, 2, FL_SA_PH_MASKED);
}

int
fl_sa_server_mreq_for(fl_sa_server_t *self, uint32_t idx, const uint8_t **out, size_t *out_len)
{
    if (self->phase != FL_SA_PH_MASKED)
        return s_wrong_phase(self, "mreq_for", FL_SA_PH_MASKED);
    if (idx >= self->n || !(self->flags[idx] & S_F_U2))
        return fl_fail(FL_EPROTO, "sa.mreq for client %u, which is not in U2", idx);
    uint8_t *o = s_out(self, (size_t)self->size * FL_SA_REC_MREQ);
    size_t m = 0;
    fl_sagraph_neighbours(self->graph, idx, self->nb);
    for (uint32_t p = 0; p < self->size; p++) {
        uint32_t v = self->nb[p];
        if (v == idx || !(self->flags[v] & S_F_U2))
            continue;
        /* v sealed one for every member of N(v) ∩ U1, idx among them */
        int64_t q = fl_sagraph_position(self->graph, v, idx);
        assert(q >= 0 && self->env[v]);
        fl_store_be32(o + m * FL_SA_REC_MREQ, v);
        memcpy(o + m * FL_SA_REC_MREQ + 4, self->env[v] + (size_t)q * FL_SA_ENVELOPE_LEN,
               FL_SA_ENVELOPE_LEN);
        m++;
    }
    *out = o;
    *out_len = m * FL_SA_REC_MREQ;
    return 0;
}

/* ---- R2': masked inputs ---- */

uint64_t
fl_sa_server_words(const fl_sa_server_t *self)
{
    return self->words;
}

int
fl_sa_server_input_begin(fl_sa_server_t *self, uint32_t idx)
{
    if (self->phase != FL_SA_PH_MASKED)
        return s_wrong_phase(self, "input_begin", FL_SA_PH_MASKED);
    if (self->open)
        return fl_fail(FL_ESTATE, "sa server: input of client %u is open; commit or abort it first",
                       self->open_idx);
    if (idx >= self->n || !(self->flags[idx] & S_F_U2))
        return fl_fail(FL_EPROTO, "sa masked input from client %u, which is not in U2", idx);
    if (self->flags[idx] & S_F_U3)
        return fl_fail(FL_EPROTO, "sa masked input: client %u committed its input already", idx);
    self->open = true;
    self->open_idx = idx;
    self->recv = 0;
    return 0;
}

int
fl_sa_server_input_chunk(fl_sa_server_t *self, uint64_t off, const uint32_t *w, size_t n)
{
    if (self->phase != FL_SA_PH_MASKED)
        return s_wrong_phase(self, "input_chunk", FL_SA_PH_MASKED);
    if (!self->open)
        return fl_fail(FL_ESTATE, "sa server: input chunk with no input open");
    uint32_t idx = self->open_idx;
    int rc = 0;
    if (off != self->recv)
        rc = fl_fail(FL_EPROTO,
                     "sa masked input from client %u: chunk at word %llu, want word %llu; input "
                     "discarded",
                     idx, (unsigned long long)off, (unsigned long long)self->recv);
    else if (n > self->words - self->recv)
        rc = fl_fail(FL_EPROTO,
                     "sa masked input from client %u: chunk of %zu words at %llu runs past the "
                     "%llu words; input discarded",
                     idx, n, (unsigned long long)off, (unsigned long long)self->words);
    else if (self->bits < 32) {
        uint32_t lim = UINT32_C(1) << self->bits;
        for (size_t j = 0; j < n; j++)
            if (w[j] >= lim) {
                rc = fl_fail(FL_EPROTO,
                             "sa masked input from client %u: word %llu is %u, not below 2^%u; "
                             "input discarded",
                             idx, (unsigned long long)(off + j), w[j], self->bits);
                break;
            }
    }
    if (rc < 0) {
        fl_sa_server_input_abort(self);
        return rc;
    }
    if (n)
        memcpy(self->in + off, w, n * sizeof *w);
    self->recv += n;
    return 0;
}

int
fl_sa_server_input_commit(fl_sa_server_t *self)
{
    if (self->phase != FL_SA_PH_MASKED)
        return s_wrong_phase(self, "input_commit", FL_SA_PH_MASKED);
    if (!self->open)
        return fl_fail(FL_ESTATE, "sa server: input commit with no input open");
    uint32_t idx = self->open_idx;
    if (self->recv != self->words) {
        int rc = fl_fail(FL_EPROTO,
                         "sa masked input from client %u: %llu of %llu words; input discarded",
                         idx, (unsigned long long)self->recv, (unsigned long long)self->words);
        fl_sa_server_input_abort(self);
        return rc;
    }
    fl_sa_vec_add(self->sum, self->in, (size_t)self->words, self->bits);
    self->open = false;
    self->flags[idx] |= S_F_U3;
    self->count[3]++;
    return 0;
}

void
fl_sa_server_input_abort(fl_sa_server_t *self)
{
    self->open = false;
    self->recv = 0;
}

/*
 * What must be reconstructed once U3 is frozen: b of each member of U3, s_sk
 * of each member of U2 \ U3 with a neighbour in U3; each from at least t
 * holders in the set `holders` (U3, or U4 in the active model). Sets need[]
 * and returns 0, or fails the round (FL_ERANGE).
 */
static int
s_plan_unmask(fl_sa_server_t *self, uint8_t holders, unsigned stage)
{
    memset(self->need, S_NEED_NONE, self->n);
    for (uint32_t u = 0; u < self->n; u++) {
        uint8_t f = self->flags[u];
        if (!(f & S_F_U2))
            continue;
        bool alive = (f & S_F_U3) != 0;
        if (!alive && s_members_near(self, u, S_F_U3) == 0)
            continue; /* nobody masked with u's key any more: nothing to remove */
        uint32_t h = s_members_near(self, u, holders);
        if (h < self->t)
            return s_failed(self, fl_fail(FL_ERANGE,
                                          "sa server: the %s of client %u has %u holders in U%u, "
                                          "fewer than the threshold %u",
                                          alive ? "b" : "s_sk", u, h, stage, self->t));
        self->need[u] = alive ? S_NEED_B : S_NEED_SK;
    }
    return 0;
}

int
fl_sa_server_close_masked(fl_sa_server_t *self)
{
    if (self->phase != FL_SA_PH_MASKED)
        return s_wrong_phase(self, "close_masked", FL_SA_PH_MASKED);
    fl_sa_server_input_abort(self); /* a late input is discarded */
    if (self->count[3] < self->t)
        return s_failed(self, fl_fail(FL_ERANGE,
                                      "sa server: U3 has %zu clients, fewer than the threshold %u",
                                      self->count[3], self->t));
    /* In the active model U4 is a subset of U3: failing here saves a round trip. */
    int rc = s_plan_unmask(self, S_F_U3, 3);
    if (rc < 0)
        return rc;
    if (!self->active) {
        self->phase = FL_SA_PH_UNMASK;
        return 0;
    }
    size_t blen = fl_sa_chk_len(self->n);
    memset(self->u3map, 0, blen);
    for (uint32_t u = 0; u < self->n; u++)
        if (self->flags[u] & S_F_U3)
            self->u3map[u / 8] = (uint8_t)(self->u3map[u / 8] | 1u << (u % 8));
    fl_sa_r3_msg(self->sid, self->u3map, blen, self->r3msg);
    self->phase = FL_SA_PH_CHK;
    return 0;
}

/* ---- R3 (active model) ---- */

int
fl_sa_server_chk(fl_sa_server_t *self, const uint8_t **out, size_t *out_len)
{
    if (self->phase != FL_SA_PH_CHK)
        return s_wrong_phase(self, "chk", FL_SA_PH_CHK);
    *out = self->u3map;
    *out_len = fl_sa_chk_len(self->n);
    return 0;
}

int
fl_sa_server_on_sig(fl_sa_server_t *self, uint32_t idx, const uint8_t sig[FL_SIGN_SIG_LEN])
{
    if (self->phase != FL_SA_PH_CHK)
        return s_wrong_phase(self, "sa.sig", FL_SA_PH_CHK);
    if (idx >= self->n || !(self->flags[idx] & S_F_U3))
        return fl_fail(FL_EPROTO, "sa.sig from client %u, which is not in U3", idx);
    if (self->flags[idx] & S_F_U4)
        return fl_fail(FL_EPROTO, "sa.sig: client %u signed U3 already", idx);
    if (fl_identity_verify(FL_CERT_ID_PK(self->certs + (size_t)idx * FL_CERT_LEN), self->r3msg,
                           sizeof self->r3msg, sig) < 0)
        return fl_fail(FL_EPROTO,
                       "sa.sig from client %u: the signature does not verify over U3 under its "
                       "identity key",
                       idx);
    memcpy(self->sig3 + (size_t)idx * FL_SIGN_SIG_LEN, sig, FL_SIGN_SIG_LEN);
    self->flags[idx] |= S_F_U4;
    self->count[4]++;
    return 0;
}

int
fl_sa_server_close_chk(fl_sa_server_t *self)
{
    if (self->phase != FL_SA_PH_CHK)
        return s_wrong_phase(self, "close_chk", FL_SA_PH_CHK);
    /* Every member of U4 must see t signatures among its neighbours, or it
     * will (rightly) refuse to unmask; then the secrets need t holders in U4. */
    int rc = s_close_set(self, S_F_U4, 4, FL_SA_PH_CHK);
    if (rc < 0)
        return rc;
    if ((rc = s_plan_unmask(self, S_F_U4, 4)) < 0)
        return rc;
    self->phase = FL_SA_PH_UNMASK;
    return 0;
}

/* ---- R4 ---- */

int
fl_sa_server_unmask_for(fl_sa_server_t *self, uint32_t idx, const uint8_t **out, size_t *out_len)
{
    if (self->phase != FL_SA_PH_UNMASK)
        return s_wrong_phase(self, "unmask_for", FL_SA_PH_UNMASK);
    if (idx >= self->n || !(self->flags[idx] & s_holder_flag(self)))
        return fl_fail(FL_EPROTO, "sa.unmask for client %u, which is not in U%u", idx,
                       self->active ? 4 : 3);
    size_t rl = fl_sa_rec_unmask_len(&self->setup);
    uint8_t *o = s_out(self, (size_t)self->size * rl);
    size_t m = 0;
    fl_sagraph_neighbours(self->graph, idx, self->nb);
    for (uint32_t p = 0; p < self->size; p++) {
        uint32_t v = self->nb[p];
        if (!(self->flags[v] & S_F_U2))
            continue;
        uint8_t *r = o + m * rl;
        fl_store_be32(r, v);
        r[4] = (self->flags[v] & S_F_U3) ? FL_SA_ALIVE : FL_SA_DEAD;
        if (self->active) {
            if (self->flags[v] & S_F_U4)
                memcpy(r + FL_SA_REC_UNMASK, self->sig3 + (size_t)v * FL_SIGN_SIG_LEN,
                       FL_SIGN_SIG_LEN);
            else
                memset(r + FL_SA_REC_UNMASK, 0, FL_SIGN_SIG_LEN);
        }
        m++;
    }
    *out = o;
    *out_len = m * rl;
    return 0;
}

int
fl_sa_server_on_shares(fl_sa_server_t *self, uint32_t idx, const uint8_t *recs, size_t len)
{
    if (self->phase != FL_SA_PH_UNMASK)
        return s_wrong_phase(self, "sa.shares", FL_SA_PH_UNMASK);
    if (idx >= self->n || !(self->flags[idx] & s_holder_flag(self)))
        return fl_fail(FL_EPROTO, "sa.shares from client %u, which is not in U%u", idx,
                       self->active ? 4 : 3);
    if (self->flags[idx] & S_F_U5)
        return fl_fail(FL_EPROTO, "sa.shares: client %u sent its shares already", idx);
    if (len % FL_SA_REC_SHARES != 0)
        return fl_fail(FL_EPROTO,
                       "sa.shares from client %u: %zu bytes is not a whole number of %d-byte "
                       "records",
                       idx, len, FL_SA_REC_SHARES);
    size_t cnt = len / FL_SA_REC_SHARES;
    uint32_t want = s_members_near(self, idx, S_F_U2);
    if (cnt != want)
        return fl_fail(FL_EPROTO,
                       "sa.shares from client %u: %zu records, want one for each of the %u "
                       "members of U2 in its neighbourhood",
                       idx, cnt, want);
    memset(self->seen, 0, self->size);
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * FL_SA_REC_SHARES;
        uint32_t o = fl_load_be32(r);
        if (o >= self->n)
            return fl_fail(FL_EPROTO,
                           "sa.shares from client %u: record %zu is for client %u, but the round "
                           "has %u",
                           idx, i, o, self->n);
        int64_t pos = fl_sagraph_position(self->graph, idx, o);
        if (pos < 0)
            return fl_fail(FL_EPROTO,
                           "sa.shares from client %u: record %zu is for client %u, which is not "
                           "a neighbour",
                           idx, i, o);
        if (!(self->flags[o] & S_F_U2))
            return fl_fail(FL_EPROTO,
                           "sa.shares from client %u: record %zu is for client %u, which is not "
                           "in U2",
                           idx, i, o);
        if (self->seen[pos])
            return fl_fail(FL_EPROTO,
                           "sa.shares from client %u: record %zu is a second one for client %u",
                           idx, i, o);
        self->seen[pos] = 1;
        bool alive = (self->flags[o] & S_F_U3) != 0;
        uint8_t kind = r[4];
        if (kind != (alive ? FL_SA_ALIVE : FL_SA_DEAD))
            return fl_fail(FL_EPROTO,
                           "sa.shares from client %u: record %zu has kind %u for client %u, "
                           "which is %s (want its %s share)",
                           idx, i, kind, o, alive ? "alive" : "dead", alive ? "b" : "s_sk");
        for (unsigned j = 0; j < FL_SHAMIR_LIMBS; j++)
            if (fl_load_be32(r + 5 + 4 * j) >= FL_SHAMIR_P)
                return fl_fail(FL_EPROTO,
                               "sa.shares from client %u: record %zu (client %u) limb %u is not "
                               "a field element",
                               idx, i, o, j);
    }
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *r = recs + i * FL_SA_REC_SHARES;
        uint32_t o = fl_load_be32(r);
        int64_t q = fl_sagraph_position(self->graph, o, idx); /* holder position in N(o) */
        assert(q >= 0);
        if (!self->sh[o])
            self->sh[o] = fl_xcalloc(self->size, FL_SA_SHARE_LEN + 1);
        uint8_t *present = self->sh[o] + (size_t)self->size * FL_SA_SHARE_LEN;
        assert(!present[q]);
        memcpy(self->sh[o] + (size_t)q * FL_SA_SHARE_LEN, r + 5, FL_SA_SHARE_LEN);
        present[q] = 1;
        self->shcnt[o]++;
    }
    self->flags[idx] |= S_F_U5;
    self->count[5]++;
    return 0;
}

bool
fl_sa_server_ready(const fl_sa_server_t *self)
{
    if (self->phase != FL_SA_PH_UNMASK)
        return false;
    for (uint32_t u = 0; u < self->n; u++)
        if (self->need[u] != S_NEED_NONE && self->shcnt[u] < self->t)
            return false;
    return true;
}

bool
fl_sa_server_checkable(fl_sa_server_t *self)
{
    if (!fl_sa_server_ready(self))
        return false;
    for (uint32_t u = 0; u < self->n; u++) {
        if (self->need[u] == S_NEED_NONE)
            continue;
        uint32_t holders = s_members_near(self, u, s_holder_flag(self)), want = self->t + 2;
        if (self->shcnt[u] < (holders < want ? holders : want))
            return false;
    }
    return true;
}

/* ---- unmasking ---- */

static inline uint32_t
s_fsub(uint32_t a, uint32_t b)
{
    return (uint32_t)(((uint64_t)a + FL_SHAMIR_P - b) % FL_SHAMIR_P);
}

/*
 * Whether shares t..cnt-1 lie on the polynomial of degree < t through the
 * first t (limb by limb). For each further x = z, f(z) = sum_i y_i L_i(z),
 * L_i(z) = w_i prod_{m != i} (z - x_m), w_i = 1 / prod_{m != i} (x_i - x_m);
 * the products are formed from prefix and suffix products, so a check costs
 * O(t) multiplications per share after O(t^2) once.
 */
static bool
s_consistent(unsigned t, size_t cnt, const uint32_t *xs, const uint8_t *shares)
{
    if (cnt <= t)
        return true;
    uint32_t *w = fl_xmalloc(3 * (size_t)t * sizeof *w);
    uint32_t *pre = w + t, *coef = w + 2 * (size_t)t;
    for (unsigned i = 0; i < t; i++) {
        uint32_t den = 1;
        for (unsigned m = 0; m < t; m++)
            if (m != i)
                den = fl_shamir_mul(den, s_fsub(xs[i], xs[m]));
        w[i] = fl_shamir_inv(den); /* the x are distinct (checked) */
    }
    bool ok = true;
    for (size_t j = t; j < cnt && ok; j++) {
        uint32_t z = xs[j];
        uint32_t acc = 1;
        for (unsigned i = 0; i < t; i++) { /* pre[i] = prod_{m < i} (z - x_m) */
            pre[i] = acc;
            acc = fl_shamir_mul(acc, s_fsub(z, xs[i]));
        }
        uint32_t suf = 1;
        for (unsigned i = t; i-- > 0;) { /* coef[i] = w_i prod_{m != i} (z - x_m) */
            coef[i] = fl_shamir_mul(w[i], fl_shamir_mul(pre[i], suf));
            suf = fl_shamir_mul(suf, s_fsub(z, xs[i]));
        }
        for (unsigned l = 0; l < FL_SHAMIR_LIMBS && ok; l++) {
            uint64_t f = 0;
            for (unsigned i = 0; i < t; i++)
                f = (f + (uint64_t)coef[i] *
                             fl_load_be32(shares + (size_t)i * FL_SHAMIR_SHARE_LEN + 4 * l)) %
                    FL_SHAMIR_P;
            ok = f == fl_load_be32(shares + j * FL_SHAMIR_SHARE_LEN + 4 * l);
        }
    }
    free(w);
    return ok;
}

/* Exchange shares i and j (and their x) in the arrays of s_reconstruct. */
static void
s_swap_share(uint32_t *xs, uint8_t *shs, size_t i, size_t j)
{
    uint8_t tmp[FL_SA_SHARE_LEN];
    uint32_t x = xs[i];
    xs[i] = xs[j];
    xs[j] = x;
    memcpy(tmp, shs + i * FL_SA_SHARE_LEN, FL_SA_SHARE_LEN);
    memcpy(shs + i * FL_SA_SHARE_LEN, shs + j * FL_SA_SHARE_LEN, FL_SA_SHARE_LEN);
    memcpy(shs + j * FL_SA_SHARE_LEN, tmp, FL_SA_SHARE_LEN);
    sodium_memzero(tmp, sizeof tmp);
}

/* Reconstruct owner o's needed secret into secret[32] from all the shares
 * its neighbours revealed: the first t interpolated, the rest checked
 * against them; a single inconsistent share among t + 2 or more is found,
 * discarded and its holder recorded (fl_sa_server_excluded). */
static int
s_reconstruct(fl_sa_server_t *self, fl_shamir_rec_t *rec, uint32_t o, uint32_t *xs,
              uint8_t *shs, uint8_t *secret)
{
    const char *what = self->need[o] == S_NEED_B ? "b" : "s_sk";
    size_t cnt = 0;
    if (self->sh[o]) {
        const uint8_t *present = self->sh[o] + (size_t)self->size * FL_SA_SHARE_LEN;
        for (uint32_t q = 0; q < self->size; q++) {
            if (!present[q])
                continue;
            xs[cnt] = 1 + q;
            memcpy(shs + cnt * FL_SA_SHARE_LEN, self->sh[o] + (size_t)q * FL_SA_SHARE_LEN,
                   FL_SA_SHARE_LEN);
            cnt++;
        }
    }
    if (cnt < self->t)
        return fl_fail(FL_ERANGE,
                       "sa server: the %s of client %u has %zu shares, fewer than the threshold "
                       "%u",
                       what, o, cnt, self->t);
    if (!s_consistent(self->t, cnt, xs, shs)) {
        /* One forged share among at least t + 2 can be told apart: without
         * it the others lie on one polynomial (at least t + 1 points, so a
         * remaining bad one would still show), with it they do not. */
        size_t bad = cnt;
        for (size_t j = 0; cnt >= (size_t)self->t + 2 && j < cnt && bad == cnt; j++) {
            s_swap_share(xs, shs, j, cnt - 1);
            if (s_consistent(self->t, cnt - 1, xs, shs))
                bad = j;
            s_swap_share(xs, shs, j, cnt - 1);
        }
        if (bad == cnt)
            return fl_fail(FL_ECRYPTO,
                           "sa server: the %zu shares of client %u's %s are inconsistent (a "
                           "forged or corrupted share that %s)",
                           cnt, o, what,
                           cnt >= (size_t)self->t + 2 ? "is not a single one"
                                                      : "t + 2 shares would be needed to find");
        self->excluded[fl_sagraph_at(self->graph, o, xs[bad] - 1)] = 1;
        s_swap_share(xs, shs, bad, cnt - 1);
        cnt--;
    }
    int rc = fl_shamir_rec_run(rec, cnt, xs, shs, secret);
    if (rc < 0)
        return fl_fail(rc == FL_ERANGE || rc == FL_ENOMEM ? rc : FL_ECRYPTO,
                       "sa server: the shares of client %u's %s do not reconstruct: %s", o, what,
                       fl_errmsg());
    return 0;
}

size_t
fl_sa_server_excluded(const fl_sa_server_t *self, uint32_t *out, size_t cap)
{
    size_t k = 0;
    for (uint32_t u = 0; u < self->n; u++)
        if (self->excluded[u]) {
            if (k < cap)
                out[k] = u;
            k++;
        }
    return k;
}

/* The unmasking terms of owner o (need[o] set) into um. */
static int
s_unmask_terms(fl_sa_server_t *self, fl_sa_masks_t *um, uint32_t o, const uint8_t *secret,
               uint8_t *seed)
{
    int rc;
    if (self->need[o] == S_NEED_B) {
        fl_sa_self_seed(secret, self->sid, seed);
        return fl_sa_masks_add(um, seed, -1);
    }
    fl_sa_keypair_t *kd = NULL;
    if ((rc = fl_sa_keypair_from_secret(secret, &kd)) < 0)
        return rc;
    const uint8_t *spk_d = self->pks + (size_t)o * 2 * FL_SA_KEY_LEN + FL_SA_KEY_LEN;
    if (memcmp(fl_sa_keypair_pk(kd), spk_d, FL_SA_KEY_LEN) != 0) {
        rc = fl_fail(FL_ECRYPTO,
                     "sa server: the reconstructed s_sk of dropped client %u does not match the "
                     "spk it advertised (forged or corrupted shares)",
                     o);
        goto out;
    }
    fl_sagraph_neighbours(self->graph, o, self->nb);
    for (uint32_t p = 0; p < self->size; p++) {
        uint32_t v = self->nb[p];
        if (v == o || !(self->flags[v] & S_F_U3))
            continue;
        const uint8_t *spk_v = self->pks + (size_t)v * 2 * FL_SA_KEY_LEN + FL_SA_KEY_LEN;
        if (fl_sa_derive(kd, spk_v, self->sid, FL_SA_LABEL_PAIRWISE_MASK, seed) < 0) {
            rc = fl_fail(FL_ECRYPTO, "sa server: pairwise seed of clients %u and %u: %s", v, o,
                         fl_errmsg());
            goto out;
        }
        /* v added sgn(v - d) PRG(s_vd); take it out */
        if ((rc = fl_sa_masks_add(um, seed, -fl_sa_pair_sign(v, o))) < 0)
            goto out;
    }
    rc = 0;
out:
    fl_sa_keypair_destroy(&kd);
    return rc;
}

int
fl_sa_server_finish(fl_sa_server_t *self, float *out, double *weight_sum)
{
    if (self->phase != FL_SA_PH_UNMASK)
        return s_wrong_phase(self, "finish", FL_SA_PH_UNMASK);
    int rc = 0;
    fl_shamir_rec_t *rec = fl_shamir_rec_new(self->t);
    fl_sa_masks_t *um = fl_sa_masks_new(self->bits);
    uint8_t *sec = sodium_malloc(2 * FL_SA_SEED_LEN); /* secret | seed */
    uint32_t *xs = fl_xmalloc(self->size * sizeof *xs);
    uint8_t *shs = fl_xmalloc((size_t)self->size * FL_SA_SHARE_LEN);
    if (!rec || !um || !sec) {
        rc = fl_fail(FL_ENOMEM, "sa server: cannot allocate the unmasking state");
        goto out;
    }
    for (uint32_t o = 0; o < self->n; o++) {
        if (self->need[o] == S_NEED_NONE)
            continue;
        if ((rc = s_reconstruct(self, rec, o, xs, shs, sec)) < 0 ||
            (rc = s_unmask_terms(self, um, o, sec, sec + FL_SA_SEED_LEN)) < 0)
            goto out;
        sodium_memzero(sec, 2 * FL_SA_SEED_LEN);
    }
    if ((rc = fl_sa_masks_apply(um, 0, (size_t)self->words, self->sum)) < 0)
        goto out;
    size_t dim = (size_t)self->setup.dim;
    uint64_t n3 = self->count[3];
    if (self->setup.wmax > 0) {
        rc = fl_sa_dequantize_weighted(self->sum, dim, n3, self->setup.clip, self->setup.levels,
                                       out, weight_sum);
    } else {
        rc = fl_sa_dequantize(self->sum, dim, n3, self->setup.clip, self->setup.levels, out);
        if (rc == 0 && weight_sum)
            *weight_sum = (double)n3;
    }
    if (rc < 0)
        rc = fl_fail(rc, "sa server: decoding the unmasked sum of %llu inputs: %s",
                     (unsigned long long)n3, fl_errmsg());
out:
    sodium_free(sec); /* wipes; accepts NULL */
    sodium_memzero(shs, (size_t)self->size * FL_SA_SHARE_LEN);
    free(shs);
    free(xs);
    fl_sa_masks_destroy(&um);
    fl_shamir_rec_destroy(&rec);
    if (rc < 0)
        return s_failed(self, rc);
    self->phase = FL_SA_PH_DONE;
    return 0;
}
