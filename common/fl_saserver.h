/*
 * fl_saserver.h — the coordinator's side of one SecAgg / SecAgg+ round as a
 * state machine over byte records (SECAGG.md §1.4; the record layouts and
 * the setup are in fl_saclient.h). No sockets, no clocks: the daemon sends
 * and receives the sa.* messages, decides when a phase's deadline has passed
 * and calls fl_sa_server_close_*; this module keeps the sets
 *   U0 selected, U1 advertised keys, U2 sent shares, U3 masked input
 *   committed, U4 signed U3 (active model; U4 = U3 otherwise), U5 sent
 *   unmasking shares
 * and the streamed sum of masked inputs (memory O(words + n k)).
 *
 * Phases: ADV -> SHR -> MASKED -> UNMASK -> DONE, with CHK between MASKED
 * and UNMASK in the active model (setup.active); any phase may end in
 * FAILED (too few clients left: the daemon aborts the attempt and retries
 * with a fresh setup). A message from a client not in the phase's set, a
 * second message from one client, or a malformed record is refused with
 * FL_EPROTO (detail names it) and changes nothing: the round goes on for
 * the honest clients. Calls in the wrong phase return FL_ESTATE.
 *
 * Active model (SECAGG.md §1.5): before any advertisement the daemon gives
 * the identity CA's public key (fl_sa_server_set_ca); advertisements must be
 * signed and certified (fl_sa_server_on_adv_signed), and sa.keys forwards
 * each peer's signature and certificate for the clients to check
 * themselves. After U3 is frozen the server announces it (fl_sa_server_chk,
 * sa.chk), collects the clients' signatures over it (fl_sa_server_on_sig,
 * sa.sig: U4) and forwards them in sa.unmask; only members of U4 are asked
 * to unmask. The server checks everything a client will check, so that a
 * misbehaving client is refused here instead of making honest ones abort.
 *
 * The result: with wmax > 0 the weighted mean of the U3 inputs; otherwise
 * their plain sum (the caller divides, e.g. the DP fixed denominator). It is
 * exact up to the quantization step 2 clip / levels per client.
 *
 * A server belongs to one thread.
 */
#ifndef FL_SASERVER_H
#define FL_SASERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_saclient.h"
#include "fl_util.h"

typedef enum {
    FL_SA_PH_ADV = 0,
    FL_SA_PH_SHR,
    FL_SA_PH_MASKED,
    FL_SA_PH_CHK, /* active model only: U3 announced, signatures collected */
    FL_SA_PH_UNMASK,
    FL_SA_PH_DONE,
    FL_SA_PH_FAILED
} fl_sa_phase_t;

/* "adv", "shr", "masked", "chk", "unmask", "done", "failed". Never NULL. */
const char *fl_sa_phase_name(fl_sa_phase_t ph);

typedef struct fl_sa_server fl_sa_server_t;

/* A server for setup *s (idx ignored): checks it (FL_EINVAL) and builds the
 * graph. Returns 0 and *out (caller owns it), or FL_EINVAL / FL_ENOMEM. */
int fl_sa_server_new(const fl_sa_setup_t *s, fl_sa_server_t **out) FL_MUST_CHECK;

/* Wipe, free and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_sa_server_destroy(fl_sa_server_t **self_p);

fl_sa_phase_t fl_sa_server_phase(const fl_sa_server_t *self);

/* |U0| .. |U5| for stage 0..5 (U4 = U3 in the semi-honest protocol; in the
 * active one, the members of U3 whose R3 signature was accepted). */
size_t fl_sa_server_count(const fl_sa_server_t *self, unsigned stage);

/* Whether client idx is in U<stage> (0..5). False for idx >= n. */
bool fl_sa_server_member(const fl_sa_server_t *self, uint32_t idx, unsigned stage);

/* Why the round failed (empty unless phase is FAILED). Borrowed. */
const char *fl_sa_server_failure(const fl_sa_server_t *self);

/* ---- R0 / R1 ---- */

/* Client idx advertises its keys. FL_EPROTO: idx >= n, a second adv, a key
 * already advertised by another client (or cpk == spk), a low-order key, or
 * an active round ("signed advertisement required"); FL_ESTATE. */
int fl_sa_server_on_adv(fl_sa_server_t *self, uint32_t idx, const uint8_t cpk[FL_SA_KEY_LEN],
                        const uint8_t spk[FL_SA_KEY_LEN]) FL_MUST_CHECK;

/* Active model: the public key of the identity CA that must have certified
 * every advertiser (copied). FL_ESTATE unless the round is active and no
 * advertisement has been accepted yet (it may be set again until then). */
int fl_sa_server_set_ca(fl_sa_server_t *self,
                        const uint8_t ca_pk[FL_SIGN_PK_LEN]) FL_MUST_CHECK;

/*
 * Active model: client idx advertises its keys with its R0 signature (over
 * "FLSA/v1/r0" || sid || idx || cpk || spk, fl_saclient.h) and its
 * certificate. Refused with FL_EPROTO, changing nothing: everything
 * fl_sa_server_on_adv refuses; a certificate that does not verify under the
 * CA; a signature that does not verify under the certified identity key; an
 * identity key or certified CURVE key that another client of this round
 * advertised ("one identity appears twice"). FL_ESTATE in a semi-honest
 * round, before fl_sa_server_set_ca, or outside ADV.
 */
int fl_sa_server_on_adv_signed(fl_sa_server_t *self, uint32_t idx,
                               const uint8_t cpk[FL_SA_KEY_LEN], const uint8_t spk[FL_SA_KEY_LEN],
                               const uint8_t sig[FL_SIGN_SIG_LEN],
                               const uint8_t cert[FL_CERT_LEN]) FL_MUST_CHECK;

/* All advertisements are in (or the deadline passed): U1 is frozen. Moves to
 * SHR and returns 0, or to FAILED and returns FL_ERANGE when some client of
 * U1 has fewer than t members of U1 in its neighbourhood (itself included). */
int fl_sa_server_close_adv(fl_sa_server_t *self) FL_MUST_CHECK;

/* The sa.keys records for idx in U1: N(idx) ∩ U1 with their keys, idx
 * included (active model: with their R0 signatures and certificates,
 * FL_SA_REC_KEYS_ACTIVE each). Borrowed, valid until the next call.
 * FL_ESTATE / FL_EPROTO. */
int fl_sa_server_keys_for(fl_sa_server_t *self, uint32_t idx, const uint8_t **out,
                          size_t *out_len) FL_MUST_CHECK;

/* Client idx (in U1) sends its sealed shares: exactly one record for every
 * member of N(idx) ∩ U1 other than itself. The envelopes are kept, unread,
 * for routing. FL_EPROTO (anything else) / FL_ESTATE. */
int fl_sa_server_on_shr(fl_sa_server_t *self, uint32_t idx, const uint8_t *recs,
                        size_t len) FL_MUST_CHECK;

/* U2 is frozen (clients of U1 that sent shares). Moves to MASKED, or to
 * FAILED (FL_ERANGE) when some client of U2 has fewer than t members of U2
 * in its neighbourhood. */
int fl_sa_server_close_shr(fl_sa_server_t *self) FL_MUST_CHECK;

/* The sa.mreq records for idx in U2: the envelopes addressed to idx by the
 * other members of U2. Borrowed, valid until the next call. */
int fl_sa_server_mreq_for(fl_sa_server_t *self, uint32_t idx, const uint8_t **out,
                          size_t *out_len) FL_MUST_CHECK;

/* ---- R2': masked inputs, streamed into the sum ---- */

/* Words per masked input (fl_sa_setup_words). */
uint64_t fl_sa_server_words(const fl_sa_server_t *self);

/* Open client idx's input (idx in U2, none committed yet for it, no other
 * open). FL_EPROTO / FL_ESTATE. */
int fl_sa_server_input_begin(fl_sa_server_t *self, uint32_t idx) FL_MUST_CHECK;

/* The next n words of the open input, starting at word `off` (chunks must
 * come in order: off = words received so far). Every word must be below
 * 2^bits. On FL_EPROTO the open input is discarded; the sum is untouched. */
int fl_sa_server_input_chunk(fl_sa_server_t *self, uint64_t off, const uint32_t *w,
                             size_t n) FL_MUST_CHECK;

/* All words received: add the input to the sum, idx joins U3. FL_EPROTO
 * when words are missing (the input is discarded). */
int fl_sa_server_input_commit(fl_sa_server_t *self) FL_MUST_CHECK;

/* Discard the open input (if any); the sum is untouched. */
void fl_sa_server_input_abort(fl_sa_server_t *self);

/* U3 is frozen. Moves to UNMASK (active model: CHK), or to FAILED
 * (FL_ERANGE) when fewer than t clients are in U3, or some secret to be
 * reconstructed (b of each U3 member, s_sk of each U2 \ U3 member with a
 * neighbour in U3) has fewer than t holders in U3. */
int fl_sa_server_close_masked(fl_sa_server_t *self) FL_MUST_CHECK;

/* ---- R3 (active model) ---- */

/* The sa.chk frame, the same for every member of U3: the U3 bitmap
 * (fl_saclient.h), fl_sa_chk_len(n) bytes. Borrowed, valid until the server
 * is destroyed. FL_ESTATE outside CHK. */
int fl_sa_server_chk(fl_sa_server_t *self, const uint8_t **out, size_t *out_len) FL_MUST_CHECK;

/* Client idx's sa.sig: its R3 signature over "FLSA/v1/r3" || sid ||
 * BLAKE2b-256(U3 bitmap). idx joins U4 when it is in U3, has not signed yet
 * and the signature verifies under its certified identity key; FL_EPROTO
 * otherwise (nothing changes). FL_ESTATE outside CHK. */
int fl_sa_server_on_sig(fl_sa_server_t *self, uint32_t idx,
                        const uint8_t sig[FL_SIGN_SIG_LEN]) FL_MUST_CHECK;

/* U4 is frozen. Moves to UNMASK, or to FAILED (FL_ERANGE) when fewer than t
 * clients are in U4, some member of U4 has fewer than t members of U4 in its
 * neighbourhood (itself included: it could not see t signatures and would
 * refuse to unmask), or some secret to be reconstructed (b of each U3
 * member, signed or not: its input is in the sum; s_sk of each U2 \ U3
 * member with a neighbour in U3) has fewer than t holders in U4. */
int fl_sa_server_close_chk(fl_sa_server_t *self) FL_MUST_CHECK;

/* ---- R4 ---- */

/* The sa.unmask records for idx in U3 (active model: in U4): N(idx) ∩ U3
 * alive, N(idx) ∩ (U2 \ U3) dead; active model: with the R3 signature of
 * each alive one that is in U4, zeros otherwise (FL_SA_REC_UNMASK_ACTIVE
 * each). Borrowed, valid until the next call. */
int fl_sa_server_unmask_for(fl_sa_server_t *self, uint32_t idx, const uint8_t **out,
                            size_t *out_len) FL_MUST_CHECK;

/* Client idx (in U3; active model: in U4) reveals shares: exactly the
 * records its unmask asked for (kind b for alive owners, s_sk for dead ones).
 * FL_EPROTO / FL_ESTATE. */
int fl_sa_server_on_shares(fl_sa_server_t *self, uint32_t idx, const uint8_t *recs,
                           size_t len) FL_MUST_CHECK;

/* Whether every needed secret already has at least t shares: the least
 * fl_sa_server_finish() needs. */
bool fl_sa_server_ready(const fl_sa_server_t *self);

/* Whether every needed secret has at least t + 2 shares, or those of all its
 * holders in U3 (active model: U4): as many as can be had to check shares against each other
 * (and to find a single forged one). The daemon waits for this, within its
 * deadline, before it finishes. */
bool fl_sa_server_checkable(fl_sa_server_t *self);

/*
 * Reconstruct every needed secret, remove all masks from the sum and decode
 * it into out[0..dim): the weighted mean (wmax > 0, and the weight total in
 * *weight_sum) or the plain sum (wmax == 0, *weight_sum = |U3|). weight_sum
 * may be NULL. Moves to DONE and returns 0, or to FAILED and returns
 * FL_ERANGE (a secret with fewer than t shares, a decoded value out of
 * range) / FL_ECRYPTO (shares that do not reconstruct or are inconsistent in a
 * way that cannot be put down to one share, a reconstructed s_sk that does
 * not match its advertised key).
 */
int fl_sa_server_finish(fl_sa_server_t *self, float *out, double *weight_sum) FL_MUST_CHECK;

/*
 * The clients (up to cap written to out; the count returned) that revealed a
 * share inconsistent with the others' during fl_sa_server_finish(): the
 * forged or corrupted share was discarded and the secret rebuilt without it.
 * Finding it needs at least t + 2 shares of that secret and a single bad one
 * among them; otherwise finish fails with FL_ECRYPTO.
 */
size_t fl_sa_server_excluded(const fl_sa_server_t *self, uint32_t *out, size_t cap);

#endif
