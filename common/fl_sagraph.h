/*
 * fl_sagraph.h — the SecAgg+ neighbour graph and the choice of its degree k
 * and Shamir threshold t (SECAGG.md §1.3).
 *
 * Graphs. In SecAgg (the full graph) every client shares with every other:
 * N(u) = all n clients, in index order, so the Shamir x of holder v is
 * 1 + v. In SecAgg+ the clients sit on a ring in a random order and N(u) is
 * the k+1 clients at ring offsets -k/2 .. +k/2 from u, u included (a Harary
 * graph H(k, n), k even); the x of holder v is 1 + its position in N(u),
 * i.e. 1 + (offset + k/2). N(u) is listed in that position order. Both
 * relations are symmetric: v in N(u) iff u in N(v).
 *
 * The ring order is derived from the session id, so a coordinator that does
 * not control sid cannot pick it (SECAGG.md §1.5):
 *     key  = BLAKE2b-256("FLSA/v1/harary" || sid)              (unkeyed)
 *     w_i  = LE32 of ChaCha20-IETF(key, nonce 0^12) keystream bytes 4i..4i+3
 *     ring = identity; for i = n-1 down to 1: draw words w until
 *            w < 2^32 - (2^32 mod (i+1)), j = w mod (i+1), swap ring[i], ring[j]
 * ring[p] is the client at ring position p. (Fisher-Yates with unbiased
 * rejection; the test carries a golden ring computed by an independent
 * implementation.)
 *
 * Parameters. fl_sagraph_find() is FCP's graph_parameter_finder.cc: the
 * smallest even k (from 2) such that, for n clients of which a fraction
 * gamma are adversarial and a fraction delta drop out, the graph of honest
 * survivors stays connected except with probability 2^-41 and a threshold t
 * exists with (a) no client having t adversarial neighbours except with
 * probability 2^-41 / n and (b) every client keeping t surviving neighbours
 * except with probability 2^-20 / n (hypergeometric tails, evaluated with
 * lgamma); t = t1 + 1 with t1 the adversarial tail quantile, and in the
 * semi-malicious model t1 <- ceil((t1 + k - 1.25) / 2). It reproduces every
 * (k, t) of FCP's graph_parameter_finder_test.cc and the SECAGG.md §1.3
 * table (test_sagraph.c checks them all).
 *
 * Thread-safe (lgamma_r); a graph is immutable once built.
 */
#ifndef FL_SAGRAPH_H
#define FL_SAGRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

#define FL_SAGRAPH_SID_LEN 32
/* FCP's bound on the finder; also the cap on graph sizes here. */
#define FL_SAGRAPH_MAX_N 1000000u

typedef enum {
    FL_SAGRAPH_SEMI_HONEST = 0,   /* curious server: follows the protocol */
    FL_SAGRAPH_SEMI_MALICIOUS = 1 /* server may lie about dropouts (FCP SEMI_MALICIOUS_SERVER) */
} fl_sagraph_threat_t;

typedef struct fl_sagraph_params {
    uint32_t n;  /* clients in the round (U0) */
    uint32_t k;  /* neighbours besides oneself: even for Harary, n-1 for the full graph */
    uint32_t t;  /* Shamir threshold */
    bool full;   /* the full graph (SecAgg) rather than a Harary graph (SecAgg+) */
} fl_sagraph_params_t;

/*
 * FCP's parameter finder (see top). gamma, delta in [0, 1); the instance must
 * satisfy gamma + delta <= 0.9 (semi-honest) or gamma + 2 delta <= 0.9
 * (semi-malicious); 1 <= n <= FL_SAGRAPH_MAX_N. On success writes *k (even,
 * 2 <= k < n-1) and *t (2 <= t <= k) and returns 0. Returns FL_EINVAL (detail
 * names the bad value or the violated limit) or FL_ENOTFOUND when no k < n-1
 * works (small n with large gamma + delta); *k, *t untouched on failure.
 */
int fl_sagraph_find(uint32_t n, double gamma, double delta, fl_sagraph_threat_t model,
                    uint32_t *k, uint32_t *t) FL_MUST_CHECK;

/* The full-graph threshold floor(2n/3) + 1 (SECAGG.md §1.3): valid in both
 * threat models while fewer than n/3 clients are corrupt; tolerates fewer
 * than n/3 dropouts. */
uint32_t fl_sagraph_full_threshold(uint32_t n);

/*
 * The graph to use for n clients (2 <= n <= FL_SAGRAPH_MAX_N): the full graph
 * with t = fl_sagraph_full_threshold(n) when n <= full_max or when
 * fl_sagraph_find() finds nothing (FCP's fallback); otherwise the Harary
 * parameters it finds. Returns 0, or FL_EINVAL (bad n, gamma, delta or a
 * violated feasibility limit — an operator's configuration error, detail
 * says which). *out untouched on failure.
 */
int fl_sagraph_choose(uint32_t n, double gamma, double delta, fl_sagraph_threat_t model,
                      uint32_t full_max, fl_sagraph_params_t *out) FL_MUST_CHECK;

typedef struct fl_sagraph fl_sagraph_t;

/*
 * Build the graph for `params` (as fl_sagraph_choose() gives; t is carried,
 * not used) and, for a Harary graph, the ring derived from sid (unused for
 * the full graph; may be NULL then). Returns 0 and *graph_p (caller owns it),
 * or FL_EINVAL when n is outside 2..FL_SAGRAPH_MAX_N, a Harary k is odd, < 2
 * or > n-1, a full graph's k is not n-1, t is outside 2..k+1, or sid is
 * missing.
 */
int fl_sagraph_new(const fl_sagraph_params_t *params, const uint8_t *sid,
                   fl_sagraph_t **graph_p) FL_MUST_CHECK;

/* Free and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_sagraph_destroy(fl_sagraph_t **self_p);

/* The parameters the graph was built with. Borrowed from self. */
const fl_sagraph_params_t *fl_sagraph_params(const fl_sagraph_t *self);

/* k + 1: the size of every N(u). */
uint32_t fl_sagraph_size(const fl_sagraph_t *self);

/* Write N(u) (fl_sagraph_size() client indices, in position order, u
 * included) to out. u < n (asserted). Can't fail. */
void fl_sagraph_neighbours(const fl_sagraph_t *self, uint32_t u, uint32_t *out);

/* The position of v in N(u) (0..k), or -1 when v is not u's neighbour.
 * The Shamir x of v's share of u's secrets is 1 + this. u, v < n. */
int64_t fl_sagraph_position(const fl_sagraph_t *self, uint32_t u, uint32_t v);

/* The client at position pos (0..k) of N(u). */
uint32_t fl_sagraph_at(const fl_sagraph_t *self, uint32_t u, uint32_t pos);

/* Ring position of client u (its index for the full graph). */
uint32_t fl_sagraph_ring_pos(const fl_sagraph_t *self, uint32_t u);

#endif
