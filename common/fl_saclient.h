/*
 * fl_saclient.h — the agent's side of one SecAgg / SecAgg+ round as a state
 * machine over byte records (SECAGG.md §1.4, docs/PROTOCOL.md "Secure
 * aggregation"). No sockets and no msgpack: the daemon moves the records in
 * the data frame of the sa.* messages; this module checks them and answers.
 * It also defines the round's setup (shared with fl_saserver) and the record
 * layouts both ends use.
 *
 * A round, as the client sees it:
 *   setup    (in "train")  fl_sa_client_new: fresh c and s key pairs, random b
 *                          (active: fl_sa_client_set_identity)
 *   R0  ->   sa.adv        fl_sa_client_cpk / _spk (active: + fl_sa_client_adv_sig
 *                          and the agent's certificate)
 *   R1  <-   sa.keys       fl_sa_client_on_keys -> the sa.shr records
 *   R2  <-   sa.mreq       fl_sa_client_on_mreq (defines this client's U2)
 *   R2' ->   masked input  fl_sa_client_mask (sent as the "update", ready/pull)
 *   R3  <-   sa.chk        active only: fl_sa_client_on_chk -> the sa.sig signature
 *   R4  <-   sa.unmask     fl_sa_client_on_unmask -> the sa.shares records
 * Calls out of this order fail with FL_ESTATE. Any failure (a malformed or
 * inconsistent record, too few peers, a key agreement that fails) ABORTS the
 * client: every later call returns FL_ESTATE, and the daemon reports the
 * round as failed. A client never reveals both the b share and the s_sk share
 * of one peer (fl_sa_peer_reveal).
 *
 * Two server models (SECAGG.md §1.5), chosen by the setup's `active` flag:
 *   semi-honest  (active = false) the coordinator follows the protocol.
 *   active       (active = true) the coordinator may lie. Every agent holds an
 *                Ed25519 identity key certified by the operator's identity CA
 *                (fl_identity.h) and signs its round keys (R0); clients check
 *                every peer's certificate against the CA public key THEY were
 *                given, never against anything the server sends, so the server
 *                cannot invent peers (Sybils). After the masked inputs the
 *                server announces U3 (R3, sa.chk); every client signs it, and
 *                reveals shares in R4 only when at least t of its neighbours
 *                signed the very U3 it signed (the consistency round: the
 *                server cannot tell some clients that a peer dropped and others
 *                that it did not, which would let it unmask that peer's input).
 *
 * Signed messages (Ed25519 with the identity key, detached; sid is the
 * round's session id, fl_sa_setup_sid):
 *   R0  "FLSA/v1/r0" || sid || idx (u32 BE) || cpk[32] || spk[32]   110 bytes
 *   R3  "FLSA/v1/r3" || sid || BLAKE2b-256(U3 bitmap)                74 bytes
 * The labels are ASCII without a NUL.
 *
 * Records (all integers big-endian; a data frame is a whole number of them):
 *   keys    idx u32 | cpk[32] | spk[32]                  68 bytes
 *   keys    (active) idx u32 | cpk[32] | spk[32] | sig[64] | cert[128]
 *           sig = idx's R0 signature, cert its FL_CERT_LEN certificate
 *                                                        260 bytes
 *   shr     dst u32 | envelope[128]                      132 bytes
 *   mreq    src u32 | envelope[128]                      132 bytes
 *   chk     (active; the whole sa.chk data frame) the U3 bitmap: ceil(n/8)
 *           bytes, bit (i % 8) (LSB first) of byte i / 8 set when client idx i
 *           is in U3, unused high bits of the last byte zero
 *   unmask  idx u32 | status u8 (0 alive, 1 dead)        5 bytes
 *   unmask  (active) idx u32 | status u8 | sig[64]       69 bytes
 *           sig = idx's R3 signature when idx is alive and signed U3 (is in
 *           U4), else all zeros
 *   shares  owner u32 | kind u8 (0 b, 1 s_sk) | share[36] 41 bytes
 * (fl_sa_rec_keys_len / fl_sa_rec_unmask_len give the size for a setup.)
 *
 * The masked input is words = dim (+ 1 when weighted) uint32 values, each
 * below 2^bits, sent as little-endian bytes.
 *
 * Secrets (s_sk, c_sk, b, shares, derived seeds) live in sodium_malloc memory
 * and are wiped on destroy. A client belongs to one thread.
 */
#ifndef FL_SACLIENT_H
#define FL_SACLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_identity.h"
#include "fl_secagg.h"
#include "fl_sign.h"
#include "fl_util.h"

#define FL_SA_REC_KEYS 68
#define FL_SA_REC_KEYS_ACTIVE 260 /* 4 + 32 + 32 + FL_SIGN_SIG_LEN + FL_CERT_LEN */
#define FL_SA_REC_SHR 132
#define FL_SA_REC_MREQ 132
#define FL_SA_REC_UNMASK 5
#define FL_SA_REC_UNMASK_ACTIVE 69 /* 4 + 1 + FL_SIGN_SIG_LEN */
#define FL_SA_REC_SHARES 41
#define FL_SA_REC_CHK 1 /* the sa.chk frame is a bitmap: ceil(n/8) bytes */

/* The signed messages (see above) and their lengths. */
#define FL_SA_R0_LABEL "FLSA/v1/r0"
#define FL_SA_R3_LABEL "FLSA/v1/r3"
#define FL_SA_R0_MSG_LEN (10 + FL_SA_SID_LEN + 4 + 2 * FL_SA_KEY_LEN)
#define FL_SA_R3_MSG_LEN (10 + FL_SA_SID_LEN + 32)

/* The masked input's coordinates after the model's parameters (docs/PROTOCOL.md
 * 7.1): with adaptive clipping one coordinate of +-clip (the update fitted
 * under the clipping norm or not), then always two for the training metrics,
 * clip * min(loss / FL_SA_LOSS_SCALE, 1) and clip * accuracy, so that the
 * coordinator learns only their (weighted) mean, never one agent's. */
#define FL_SA_METRICS 2
#define FL_SA_LOSS_SCALE 16.0

#define FL_SA_ALIVE 0  /* unmask status, and shares kind "b" */
#define FL_SA_DEAD 1   /* unmask status, and shares kind "s_sk" */

/*
 * The parameters of one round, sent to each selected agent in "train" (the
 * sa_* fields). Everything but idx is the same for all clients of the round.
 */
typedef struct fl_sa_setup {
    uint64_t round, attempt;
    uint32_t n;      /* clients in the round (U0), 2 .. FL_SAGRAPH_MAX_N */
    uint32_t idx;    /* this client's index, < n (ignored by the server) */
    uint32_t k;      /* neighbours besides oneself: n - 1 when full */
    uint32_t t;      /* Shamir threshold, 2 .. k + 1 */
    bool full;       /* full graph (SecAgg) rather than Harary (SecAgg+) */
    unsigned bits;   /* modulus 2^bits, 1 .. 32 */
    uint32_t levels; /* quantization levels T; fl_sa_check_levels(T, bits, n) */
    double clip;     /* per-coordinate clip range c > 0 */
    double wmax;     /* weighted mean with max weight W > 0; 0 = plain sum */
    uint64_t dim;    /* floats per input, 1 .. 2^31 */
    uint8_t nonce[FL_SA_NONCE_LEN]; /* random, from the coordinator */
    bool active;     /* active-server model: signed keys (R0) + consistency round (R3) */
} fl_sa_setup_t;

/*
 * Check every field of *s (the ranges above, k and t consistent with n and
 * full, T within the no-wrap rule for n; in the active model t above half of
 * each neighbourhood, 2t > k + 1). Returns 0 or FL_EINVAL with a detail
 * naming the field.
 */
int fl_sa_setup_check(const fl_sa_setup_t *s) FL_MUST_CHECK;

/*
 * The session id of the round: fl_sa_sid(nonce, canonical bytes of every
 * field but idx and nonce, `active` included: 76 bytes, laid out in
 * fl_saclient.c). Both ends compute it, so the neighbour ring (derived from
 * sid) is fixed by the setup, and an active and a semi-honest round never
 * share a sid (nor a signature). Can't fail on a checked setup.
 */
void fl_sa_setup_sid(const fl_sa_setup_t *s, uint8_t sid[FL_SA_SID_LEN]);

/* Input words: dim, plus 1 for the weight when wmax > 0. */
uint64_t fl_sa_setup_words(const fl_sa_setup_t *s);

/* The size of one sa.keys record (FL_SA_REC_KEYS or FL_SA_REC_KEYS_ACTIVE)
 * and of one sa.unmask record (FL_SA_REC_UNMASK or FL_SA_REC_UNMASK_ACTIVE)
 * in the setup's model. */
size_t fl_sa_rec_keys_len(const fl_sa_setup_t *s);
size_t fl_sa_rec_unmask_len(const fl_sa_setup_t *s);

/* The length of the sa.chk bitmap of a round of n clients: ceil(n / 8). */
size_t fl_sa_chk_len(uint32_t n);

/* The R0 message that client idx signs for its keys (layout above). */
void fl_sa_r0_msg(const uint8_t sid[FL_SA_SID_LEN], uint32_t idx, const uint8_t cpk[FL_SA_KEY_LEN],
                  const uint8_t spk[FL_SA_KEY_LEN], uint8_t msg[FL_SA_R0_MSG_LEN]);

/* The R3 message over the U3 bitmap bitmap[0..len) (layout above). */
void fl_sa_r3_msg(const uint8_t sid[FL_SA_SID_LEN], const uint8_t *bitmap, size_t len,
                  uint8_t msg[FL_SA_R3_MSG_LEN]);

typedef struct fl_sa_client fl_sa_client_t;

/*
 * A client for setup *s: checks it (FL_EINVAL), builds the graph, makes
 * fresh c and s X25519 key pairs and a random b. Returns 0 and *out (caller
 * owns it), or FL_EINVAL / FL_ENOMEM with *out untouched.
 */
int fl_sa_client_new(const fl_sa_setup_t *s, fl_sa_client_t **out) FL_MUST_CHECK;

/* Wipe, free and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_sa_client_destroy(fl_sa_client_t **self_p);

/* The public keys to advertise in sa.adv (32 bytes each, borrowed). */
const uint8_t *fl_sa_client_cpk(const fl_sa_client_t *self);
const uint8_t *fl_sa_client_spk(const fl_sa_client_t *self);

/* The setup the client was made with (borrowed). */
const fl_sa_setup_t *fl_sa_client_setup(const fl_sa_client_t *self);

/* Whether the client has aborted (a call failed). */
bool fl_sa_client_aborted(const fl_sa_client_t *self);

/*
 * Active model: the agent's identity key and its certificate, and the CA
 * public key that every peer's certificate must verify under. id is
 * borrowed and must outlive the client; cert and ca_pk are copied. Computes
 * the R0 signature over this client's keys. Returns 0, or (the client is
 * unchanged and NOT aborted: this is local configuration):
 *   FL_ESTATE   the setup is not active, or sa.keys was processed already
 *               (or the client aborted);
 *   FL_ECRYPTO  cert does not verify under ca_pk;
 *   FL_EINVAL   cert certifies another identity key than id's.
 * Required, in the active model, before fl_sa_client_adv_sig and
 * fl_sa_client_on_keys. May be called again before sa.keys (replaces).
 */
int fl_sa_client_set_identity(fl_sa_client_t *self, const fl_identity_t *id,
                              const uint8_t cert[FL_CERT_LEN],
                              const uint8_t ca_pk[FL_SIGN_PK_LEN]) FL_MUST_CHECK;

/* Active model: the R0 signature to send in sa.adv, next to cpk, spk and the
 * agent's certificate. FL_ESTATE (not aborting) when the setup is not active
 * or no identity is set. */
int fl_sa_client_adv_sig(fl_sa_client_t *self, uint8_t sig[FL_SIGN_SIG_LEN]) FL_MUST_CHECK;

/*
 * R1: the sa.keys records (len bytes; fl_sa_rec_keys_len each). Checks:
 * whole records; every idx is in N(self) and appears once; self appears with
 * exactly its own keys; all keys distinct; at least t entries; key agreement
 * with every peer works. In the active model also (identity required, else
 * FL_ESTATE): every certificate verifies under the CA public key given to
 * fl_sa_client_set_identity (FL_ECRYPTO "... not certified by the identity
 * CA"); every R0 signature verifies under its certificate's identity key
 * (FL_ECRYPTO); no identity key and no certified CURVE key appears twice
 * (FL_EPROTO "one identity appears twice": a Sybil); self's record carries
 * this client's own certificate and signature. The identity keys are kept
 * for R4. Then Shamir-shares s_sk and b (threshold t, x = 1 + position in
 * N(self)) among the listed clients, keeps its own share and seals one
 * envelope per peer. On success *out / *out_len are the sa.shr records
 * (borrowed from self, valid until the next call). FL_EPROTO (bad record,
 * detail names it), FL_ERANGE (fewer than t), FL_ECRYPTO (key agreement, a
 * certificate or signature), FL_ESTATE; all abort.
 */
int fl_sa_client_on_keys(fl_sa_client_t *self, const uint8_t *recs, size_t len,
                         const uint8_t **out, size_t *out_len) FL_MUST_CHECK;

/*
 * R2: the sa.mreq records. Every src must be a peer listed in sa.keys
 * (not self), appear once, and its envelope must open with src -> self;
 * those srcs and self form this client's U2, of which there must be at
 * least t. FL_EPROTO / FL_ECRYPTO / FL_ERANGE / FL_ESTATE, aborting.
 */
int fl_sa_client_on_mreq(fl_sa_client_t *self, const uint8_t *recs, size_t len) FL_MUST_CHECK;

/*
 * R2': encode x[0..dim) (weighted by `weight` when the setup's wmax > 0)
 * and mask it into y[0..words): y = q + PRG(b) + sum over U2 peers v of
 * sgn(self - v) PRG(s_self,v) mod 2^bits. rnd/ctx drive stochastic
 * rounding (NULL: randombytes). *saturated (may be NULL) gets the number of
 * coordinates outside [-clip, clip] that were clipped. Requires on_mreq.
 * FL_ENONFINITE for a NaN/Inf in x, FL_EINVAL for a bad weight, FL_ESTATE;
 * these do NOT abort (the caller may report a failed task instead).
 */
int fl_sa_client_mask(fl_sa_client_t *self, const float *x, double weight, fl_sa_rand_fn rnd,
                      void *ctx, uint32_t *y, size_t *saturated) FL_MUST_CHECK;

/*
 * R3 (active model only): the sa.chk frame, the U3 bitmap bitmap[0..len).
 * Valid once fl_sa_client_mask has succeeded. Checks: len == ceil(n/8) and
 * the unused high bits are zero; this client is in U3; every neighbour in
 * U3 is in this client's U2 view (it sent shares to this client, so this
 * client masked against it); at least t neighbours (self included) are in
 * U3. Then keeps U3 and writes the R3 signature (to send in sa.sig) to sig.
 * FL_EPROTO / FL_ERANGE, aborting; FL_ESTATE (aborting) before the masked
 * input, for a second sa.chk, or in a semi-honest round.
 */
int fl_sa_client_on_chk(fl_sa_client_t *self, const uint8_t *bitmap, size_t len,
                        uint8_t sig[FL_SIGN_SIG_LEN]) FL_MUST_CHECK;

/*
 * R4: the sa.unmask records (fl_sa_rec_unmask_len each). Checks: whole
 * records; every idx in this client's U2 and listed once; self listed alive;
 * at least t alive; a peer is never asked for the share opposite to one
 * already revealed. In the active model (fl_sa_client_on_chk first, else
 * FL_ESTATE) also: the alive records are exactly N(self) ∩ U2view ∩ U3 and
 * the dead ones exactly N(self) ∩ U2view \ U3, U3 being the bitmap this
 * client signed (FL_EPROTO); a nonzero signature only on an alive record
 * (FL_EPROTO), and it must verify under that peer's identity key (from
 * sa.keys) over this client's own R3 message (FL_ECRYPTO); at least t valid
 * signatures, its own included when present (FL_ERANGE). Everything is
 * checked before any share is released. Then *out / *out_len are the
 * sa.shares records: the b share of every alive idx and the s_sk share of
 * every dead one (borrowed, valid until the next call). FL_EPROTO /
 * FL_ERANGE / FL_ECRYPTO / FL_ESTATE, aborting. The same request may be
 * answered again (a resend) with the same records.
 */
int fl_sa_client_on_unmask(fl_sa_client_t *self, const uint8_t *recs, size_t len,
                           const uint8_t **out, size_t *out_len) FL_MUST_CHECK;

#endif
