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
 *   R0  ->   sa.adv        fl_sa_client_cpk / _spk
 *   R1  <-   sa.keys       fl_sa_client_on_keys -> the sa.shr records
 *   R2  <-   sa.mreq       fl_sa_client_on_mreq (defines this client's U2)
 *   R2' ->   masked input  fl_sa_client_mask (sent as the "update", ready/pull)
 *   R4  <-   sa.unmask     fl_sa_client_on_unmask -> the sa.shares records
 * Calls out of this order fail with FL_ESTATE. Any failure (a malformed or
 * inconsistent record, too few peers, a key agreement that fails) ABORTS the
 * client: every later call returns FL_ESTATE, and the daemon reports the
 * round as failed. A client never reveals both the b share and the s_sk share
 * of one peer (fl_sa_peer_reveal).
 *
 * Records (all integers big-endian; a data frame is a whole number of them):
 *   keys    idx u32 | cpk[32] | spk[32]                  68 bytes
 *   shr     dst u32 | envelope[128]                      132 bytes
 *   mreq    src u32 | envelope[128]                      132 bytes
 *   unmask  idx u32 | status u8 (0 alive, 1 dead)        5 bytes
 *   shares  owner u32 | kind u8 (0 b, 1 s_sk) | share[36] 41 bytes
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

#include "fl_secagg.h"
#include "fl_util.h"

#define FL_SA_REC_KEYS 68
#define FL_SA_REC_SHR 132
#define FL_SA_REC_MREQ 132
#define FL_SA_REC_UNMASK 5
#define FL_SA_REC_SHARES 41

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
} fl_sa_setup_t;

/*
 * Check every field of *s (the ranges above, k and t consistent with n and
 * full, T within the no-wrap rule for n). Returns 0 or FL_EINVAL with a
 * detail naming the field.
 */
int fl_sa_setup_check(const fl_sa_setup_t *s) FL_MUST_CHECK;

/*
 * The session id of the round: fl_sa_sid(nonce, canonical bytes of every
 * field but idx and nonce). Both ends compute it, so the neighbour ring
 * (derived from sid) is fixed by the setup. Can't fail on a checked setup.
 */
void fl_sa_setup_sid(const fl_sa_setup_t *s, uint8_t sid[FL_SA_SID_LEN]);

/* Input words: dim, plus 1 for the weight when wmax > 0. */
uint64_t fl_sa_setup_words(const fl_sa_setup_t *s);

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
 * R1: the sa.keys records (len bytes). Checks: whole records; every idx is
 * in N(self) and appears once; self appears with exactly its own keys; all
 * keys distinct; at least t entries; key agreement with every peer works.
 * Then Shamir-shares s_sk and b (threshold t, x = 1 + position in N(self))
 * among the listed clients, keeps its own share and seals one envelope per
 * peer. On success *out / *out_len are the sa.shr records (borrowed from
 * self, valid until the next call). FL_EPROTO (bad record, detail names
 * it), FL_ERANGE (fewer than t), FL_ECRYPTO (key agreement), FL_ESTATE.
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
 * R4: the sa.unmask records. Checks: whole records; every idx in this
 * client's U2 and listed once; self listed alive; at least t alive; a peer
 * is never asked for the share opposite to one already revealed. Then
 * *out / *out_len are the sa.shares records: the b share of every alive
 * idx and the s_sk share of every dead one (borrowed, valid until the next
 * call). FL_EPROTO / FL_ERANGE / FL_ESTATE, aborting.
 */
int fl_sa_client_on_unmask(fl_sa_client_t *self, const uint8_t *recs, size_t len,
                           const uint8_t **out, size_t *out_len) FL_MUST_CHECK;

#endif
