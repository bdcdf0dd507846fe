/*
 * daemon.c — the coordinator's event loop and round state machine.
 *
 * One thread owns every socket: the agents' ROUTER (CurveZMQ server), the
 * admin ROUTER (ipc, mode 0600) and the timers. Rounds go
 *
 *   waiting -> train (agents pull the model in chunks, train, report "ready";
 *              the coordinator pulls one update at a time, chunk by chunk,
 *              into the streaming aggregate, and keeps it only if digest and
 *              finiteness check out) -> commit (server optimizer, checkpoint,
 *              metrics, round row: one SQLite transaction) -> eval -> waiting
 *
 * Memory is O(model): the global model and the aggregator's two buffers; an
 * update is never held whole: each chunk is checked and added into the
 * aggregator's spare buffer as it arrives, and the add takes effect only when
 * the whole update has arrived and matches its digest. What ZeroMQ holds for
 * the transfers is bounded over all agents together by the credit window
 * (fl_window.h, transfer.window): gets wait in it until their agent holds a
 * slot, and the update pulls share its budget.
 * With secure aggregation (secagg.mode = on, the default) an attempt runs
 * SecAgg+ around the same transfer (SECAGG.md 1.4): the train message
 * carries the setup; agents advertise keys (sa.adv), the coordinator routes
 * the key lists (sa.keys) and the sealed shares (sa.shr -> sa.mreq) without
 * being able to read them; each agent's "update" is then its masked,
 * quantized vector, streamed into a modular sum (fl_saserver); finally the
 * survivors reveal the shares that remove the masks (sa.unmask ->
 * sa.shares) and only the sum is ever decoded. Each key/unmask phase ends
 * when every member answered or secagg.phase_timeout passed; a phase left
 * with fewer than t agents fails the attempt, which is retried with fresh
 * keys. With secagg.identity_ca set (the active-server model) only agents
 * holding a certificate of that CA are selected, sa.adv is signed with the
 * agent's identity key, and a consistency round (sa.chk -> sa.sig) runs
 * between the masked input and the unmasking, so that agents reveal shares
 * only for a set of survivors that t of their neighbours signed.
 * An attempt that ends (all reported, or the deadline) with fewer than
 * min_fit updates is recorded as failed and retried as attempt+1. Anything an
 * agent sends that is invalid is logged with its reason, counted, answered
 * with "reject"/"error" and otherwise ignored: it never reaches the aggregate.
 */
#include "daemon.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "enroll.h"
#include "fl_aggr.h"
#include "fl_seal.h"
#include "fl_dp.h"
#include "fl_keys.h"
#include "fl_log.h"
#include "fl_model.h"
#include "fl_net.h"
#include "fl_proto.h"
#include "fl_robust.h"
#include "fl_rng.h"
#include "fl_identity.h"
#include "fl_sagraph.h"
#include "fl_saserver.h"
#include "fl_serveropt.h"
#include "fl_sign.h"
#include "fl_store.h"
#include "fl_window.h"
#include "fl_zap.h"
#include "state.h"
#include "status.h"

#define PULL_WINDOW 4              /* update chunks requested ahead */
#define PULL_STALL_MS 15000        /* an update transfer that stalls this long is dropped */
#define RETRY_BACKOFF_MS 500       /* after a failed attempt; doubles with each failure in a row */
#define RETRY_BACKOFF_MAX_MS 30000
#define ZAP_DOMAIN "covey-agents"
#define ZAP_DOMAIN_ENROLL "covey-enroll"
#define ZAP_DOMAIN_ADMIN "covey-admin"

typedef enum { PH_WAITING, PH_TRAIN, PH_EVAL, PH_COMPLETE } phase_t;

static const char *const s_phase_names[] = {"waiting", "train", "eval", "complete"};

/* An agent's part in the current round or evaluation. */
typedef enum {
    R_NONE = 0,
    R_SELECTED,  /* asked to train */
    R_READY,     /* reported an update, waiting to be pulled */
    R_PULLING,   /* its update is being pulled */
    R_RECEIVED,  /* update accepted into the aggregate */
    R_REJECTED,  /* update refused */
    R_DROPPED,   /* went silent / failed */
    R_EVAL_ASKED,
    R_EVALUATED
} role_t;

static const char *const s_role_names[] = {"none",     "selected", "ready",  "pulling",  "received",
                                           "rejected", "dropped",  "asked",  "evaluated"};

typedef struct sess {
    int64_t id;
    char name[64];
    char key[41];
    uint8_t rid[256];
    size_t rid_len;
    int64_t last_seen_ms;
    bool hello;               /* said hello on this connection: may be given tasks */
    uint64_t n_train, n_test;
    char version[32];
    role_t role;
    /* the update it reported ready */
    uint64_t n_samples, nbytes;
    double loss, acc;
    bool unclipped;
    uint8_t digest[32];
    int64_t ready_ms;
    bool sa_in;      /* selected for the secure-aggregation round in progress */
    uint32_t sa_idx; /* its index there */
    /* digests of its accepted sa.adv, sa.shr, sa.shares, sa.sig: a
     * retransmission (after a reconnection) is recognised and ignored */
    bool sa_seen[4];
    uint8_t sa_seen_digest[4][32];
    /* the identity certificate it sent in hello, and whether it is one of
     * the identity CA's for its key (checked at hello and at each reload) */
    bool has_cert, cert_ok;
    uint8_t cert[FL_CERT_LEN];
    fl_window_peer_t *wp; /* its gets waiting in the credit window (owned by it), or NULL */
} sess_t;

/*
 * The global model as agents download it: chunks are sent without copying,
 * straight from this buffer, so it must not change while a chunk is queued
 * in ZeroMQ. Each queued chunk holds a reference (released by libzmq's I/O
 * thread when the chunk is sent); the coordinator holds one more. At a
 * commit, a model nobody is reading is updated in place; otherwise the new
 * model goes into a copy and the old one is freed by its last reader.
 */
typedef struct pubref {
    atomic_int refs;
    fl_params_t *params;
} pubref_t;

static void
s_pub_release(pubref_t *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1) {
        fl_params_destroy(&r->params);
        free(r);
    }
}

/* A chunk's reference, dropped by the credit window when libzmq frees it. */
static void
s_pub_release_cb(void *ref)
{
    s_pub_release(ref);
}

static pubref_t *
s_pub_new(fl_params_t *params)
{
    pubref_t *r = fl_xcalloc(1, sizeof *r);
    atomic_init(&r->refs, 1);
    r->params = params;
    return r;
}

typedef struct coord {
    coord_config_t cfg;
    coord_paths_t paths;
    fl_store_t *store;
    fl_store_t *zap_store; /* used only by the ZAP thread */
    void *ctx, *sock, *admin, *enroll, *radmin;
    fl_zap_t *zap;
    fl_window_t *win;      /* bounds the chunks and pulls inside ZeroMQ (fl_window.h) */
    fl_keypair_t *kp;
    fl_datakey_t *dk;      /* seals checkpoints at rest */
    fl_signkey_t *sk;      /* signs every global model agents receive */
    char fedid[65];
    int64_t started_ms;
    bool exit_when_done;

    /* the global model (borrowed from gref, which owns it) */
    pubref_t *gref;
    fl_params_t *global;
    uint8_t digest[32];
    size_t model_bytes;
    int64_t rounds_done;

    fl_aggr_t *aggr;
    fl_robust_t *robust;       /* when server.aggregation is a robust rule */
    fl_sopt_t *sopt;
    bool dp;                   /* privacy.dp = central */
    fl_dp_accountant_t *acct;  /* privacy spent so far (persisted in meta) */
    double round_q;            /* sampling rate of the round in progress */
    bool adaptive;             /* privacy.adaptive_clipping = on */
    double clip;               /* the clipping norm sent to agents (adapted each round) */
    double bit_sum;            /* sum of the received updates' b_k = 1[norm <= C] - 1/2 */
    double sigma_b, z_value;   /* noise on that sum, and the value noise multiplier */
    char stop_reason[160];     /* why the federation stopped early ("" = it did not) */
    float *chunk;   /* one aligned chunk of the update in flight */

    /* secure aggregation (secagg.mode = on) of the attempt in progress */
    bool secagg;
    fl_sa_server_t *sa;      /* NULL when off, or before the first round */
    fl_sa_setup_t sa_setup;
    size_t *sa_sess;         /* index in the round -> index in sess */
    float *sa_out;           /* the decoded sum or mean (numel + 1 floats) */
    int64_t sa_deadline_ms;  /* of the key or unmask phase under way */
    crypto_generichash_state hash; /* digest of the update in flight */

    /* sessions of known agents */
    sess_t *sess;
    size_t n_sess, cap_sess;

    /* the current round / evaluation */
    phase_t phase;
    int64_t round, attempt;
    int64_t started_round_ms, deadline_ms; /* monotonic */
    int64_t deadline_wall_ms;
    int64_t expected, received, rejected, dropped;
    double loss_sum, acc_sum, n_sum; /* weighted training metrics */
    int64_t eval_round;
    double eval_loss_sum, eval_acc_sum, eval_n;
    /* failed attempts in a row, and when the next may start (backoff: an
     * attempt that cannot succeed must not be retried in a tight loop) */
    int fail_streak;
    int64_t retry_at_ms;

    /* update transfer */
    ssize_t pulling;
    size_t pull_next, pull_got;
    int64_t pull_last_ms;

    uint64_t invalid;
    uint8_t hdr[FL_HDR_MAX];
} coord_t;

static volatile sig_atomic_t s_stop = 0, s_reload = 0;

static void
s_on_signal(int sig)
{
    if (sig == SIGHUP)
        s_reload = 1;
    else
        s_stop = 1;
}

/* ---------------------------------------------------------------- sessions */

static sess_t *
s_sess_by_key(coord_t *c, const char *key)
{
    for (size_t i = 0; i < c->n_sess; i++)
        if (strcmp(c->sess[i].key, key) == 0)
            return &c->sess[i];
    return NULL;
}

static bool
s_online(const coord_t *c, const sess_t *s)
{
    return s->hello && s->rid_len > 0 &&
           fl_now_ms() - s->last_seen_ms < (int64_t)c->cfg.stale_after * 1000;
}

/* Set s->cert_ok: whether s's identity certificate is one of the identity
 * CA's and names its CURVE key (the active-server model admits no other agent
 * to a round). Once per hello and per reload, not per selection: it costs a
 * signature check. */
static void
s_cert_check(const coord_t *c, sess_t *s)
{
    uint8_t curve[32];
    s->cert_ok = c->cfg.sa_active && s->has_cert && zmq_z85_decode(curve, s->key) &&
                 sodium_memcmp(curve, FL_CERT_CURVE_PK(s->cert), 32) == 0 &&
                 fl_cert_verify(c->cfg.sa_ca_pk, s->cert) == 0;
}

/* Online and, under the active-server model, certified: may be selected to
 * train. */
static bool
s_eligible(const coord_t *c, const sess_t *s)
{
    return s_online(c, s) && (!c->secagg || !c->cfg.sa_active || s->cert_ok);
}

static bool
s_is_online_cb(const char *key, void *arg)
{
    coord_t *c = arg;
    sess_t *s = s_sess_by_key(c, key);
    return s && s_online(c, s);
}

static size_t
s_count_online(const coord_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_sess; i++)
        n += s_online(c, &c->sess[i]);
    return n;
}

static int
s_count_active_cb(const fl_agent_row_t *row, void *arg)
{
    if (strcmp(row->status, "active") == 0)
        (*(size_t *)arg)++;
    return 0;
}

/* Enrolled, non-revoked agents (the population N that sampling draws from). */
static size_t
s_count_active(coord_t *c)
{
    size_t n = 0;
    if (fl_store_agent_list(c->store, s_count_active_cb, &n) != 0)
        return c->n_sess;
    return n;
}

/*
 * The session of the sender of a message, created on first contact. The
 * sender is identified by the CURVE key the ZAP handler admitted, never by
 * anything in the message; a key revoked since the handshake is refused here.
 */
static sess_t *
s_sess_for(coord_t *c, const char *key, const uint8_t *rid, size_t rid_len)
{
    fl_agent_row_t row;
    sess_t *s = s_sess_by_key(c, key);
    if (fl_store_agent_get_by_key(c->store, key, &row) != 0 ||
        strcmp(row.status, "active") != 0) {
        fl_warn("message from a key that is not an active agent", "key=%s", key);
        if (s)
            s->rid_len = 0;
        return NULL;
    }
    if (!s) {
        if (c->n_sess == c->cap_sess) {
            c->cap_sess = c->cap_sess ? 2 * c->cap_sess : 16;
            c->sess = fl_xrealloc(c->sess, c->cap_sess * sizeof *c->sess);
        }
        s = &c->sess[c->n_sess++];
        memset(s, 0, sizeof *s);
        s->id = row.id;
        snprintf(s->key, sizeof s->key, "%s", key);
    }
    snprintf(s->name, sizeof s->name, "%s", row.name);
    /* a new connection (another routing id) must say hello again; the gets
     * of the old one are moot (the agent resumes on the new one) */
    if (rid_len != s->rid_len || memcmp(rid, s->rid, rid_len) != 0) {
        s->hello = false;
        if (s->wp)
            fl_window_peer_reset(c->win, s->wp);
    }
    if (rid_len <= sizeof s->rid) {
        memcpy(s->rid, rid, rid_len);
        s->rid_len = rid_len;
    }
    s->last_seen_ms = fl_now_ms();
    return s;
}

/* ----------------------------------------------------------------- sending */

/* Send a message (and optional bulk frame) to an agent; failures are logged,
 * never fatal: a peer that vanished is noticed by its silence. */
static void
s_send(coord_t *c, sess_t *s, const fl_msg_t *m, const void *data, size_t data_len)
{
    size_t len = 0;
    if (s->rid_len == 0)
        return;
    if (fl_msg_encode(m, c->hdr, sizeof c->hdr, &len) != 0) {
        fl_error("cannot encode message", "type=%s reason=\"%s\"", fl_msg_type_name(m->type),
                 fl_errmsg());
        return;
    }
    int rc = fl_net_send(c->sock, s->rid, s->rid_len, c->hdr, len, data, data_len, ZMQ_DONTWAIT);
    if (rc != 0)
        fl_debug("send failed", "agent=%s type=%s reason=\"%s\"", s->name,
                 fl_msg_type_name(m->type), fl_errmsg());
}

static void
s_send_reason(coord_t *c, sess_t *s, fl_msg_type_t type, const char *reason)
{
    fl_msg_t m;
    fl_msg_init(&m, type);
    m.round = (uint64_t)c->round;
    m.attempt = (uint64_t)c->attempt;
    snprintf(m.reason, sizeof m.reason, "%s", reason);
    s_send(c, s, &m, NULL, 0);
}

/* Log, count and answer an invalid message; the sender's session goes on. */
static void
s_invalid(coord_t *c, sess_t *s, const char *name, const char *reason)
{
    c->invalid++;
    fl_warn("invalid message rejected", "agent=%s reason=\"%s\" invalid_total=%llu", name,
            reason, (unsigned long long)c->invalid);
    if (s)
        s_send_reason(c, s, FL_MSG_ERROR, reason);
}

/* ---------------------------------------------------------- round records */

static void
s_record_agent(coord_t *c, const sess_t *s, const char *status, const char *reason)
{
    fl_round_agent_row_t r;
    /* per-agent rows describe training attempts; evaluation is kept as metrics */
    if (c->phase != PH_TRAIN)
        return;
    memset(&r, 0, sizeof r);
    r.round = c->round;
    r.attempt = c->attempt;
    r.agent_id = s->id;
    snprintf(r.status, sizeof r.status, "%s", status);
    r.n_samples = (int64_t)s->n_samples;
    r.loss = s->loss;
    r.acc = s->acc;
    r.time_ms = fl_wall_ms();
    snprintf(r.reason, sizeof r.reason, "%s", reason ? reason : "");
    if (fl_store_round_agent_put(c->store, &r) != 0)
        fl_error("cannot record agent round state", "agent=%s reason=\"%s\"", s->name,
                 fl_errmsg());
}

static void
s_round_row(const coord_t *c, fl_round_row_t *r, const char *phase, const char *outcome)
{
    memset(r, 0, sizeof *r);
    r->round = c->round;
    r->attempt = c->attempt;
    snprintf(r->phase, sizeof r->phase, "%s", phase);
    snprintf(r->outcome, sizeof r->outcome, "%s", outcome);
    r->started_ms = fl_wall_ms() - (fl_now_ms() - c->started_round_ms);
    r->deadline_ms = c->deadline_wall_ms;
    r->expected = c->expected;
    r->received = c->received;
    r->rejected = c->rejected;
    r->train_loss = c->n_sum > 0 ? c->loss_sum / c->n_sum : 0;
    r->train_acc = c->n_sum > 0 ? c->acc_sum / c->n_sum : 0;
}

/* ----------------------------------------------------------------- rounds */

static void
s_fill_task(const coord_t *c, fl_msg_t *m, fl_msg_type_t type, uint64_t timeout_s)
{
    fl_msg_init(m, type);
    m->round = (uint64_t)(type == FL_MSG_EVAL ? c->eval_round : c->round);
    m->attempt = (uint64_t)c->attempt;
    m->has_digest = true;
    memcpy(m->digest, c->digest, 32);
    m->nbytes = c->model_bytes;
    snprintf(m->spec, sizeof m->spec, "%s", c->cfg.spec);
    m->batch = c->cfg.batch;
    m->deadline_ms = timeout_s * 1000;
    /* the signature names the model by the round that produced it */
    if (fl_sign_model(c->sk, c->fedid, c->rounds_done, c->cfg.spec, c->digest, m->sig) == 0)
        m->has_sig = true;
    else
        fl_error("cannot sign the model", "reason=\"%s\"", fl_errmsg());
    if (type == FL_MSG_TRAIN) {
        m->epochs = c->cfg.epochs;
        m->lr = c->cfg.lr;
        snprintf(m->optimizer, sizeof m->optimizer, "%s", c->cfg.optimizer);
        m->momentum = c->cfg.momentum;
        m->weight_decay = c->cfg.weight_decay;
        m->mu = c->cfg.prox_mu;
        m->clip = c->dp ? c->clip : 0.0;
        m->seed = c->cfg.seed * 1000003u + (uint64_t)c->round;
    }
}

/* Choose k of the online agents, uniformly, reproducibly from (seed, round, attempt). */
static size_t
s_sample(coord_t *c, double fraction, size_t min_k, size_t *chosen)
{
    size_t n = 0, k;
    uint32_t *idx = fl_xmalloc((c->n_sess + 1) * sizeof *idx);
    fl_rng_t rng;
    for (size_t i = 0; i < c->n_sess; i++)
        if (s_eligible(c, &c->sess[i]))
            idx[n++] = (uint32_t)i;
    k = (size_t)ceil(fraction * (double)n);
    if (k < min_k)
        k = min_k;
    if (k > n)
        k = n;
    fl_rng_seed(&rng, c->cfg.seed, (uint64_t)c->round * 4096u + (uint64_t)c->attempt);
    fl_rng_shuffle(&rng, idx, n);
    for (size_t i = 0; i < k; i++)
        chosen[i] = idx[i];
    free(idx);
    return k;
}

static void s_pull_cancel(coord_t *c);

static void
s_reset_roles(coord_t *c)
{
    for (size_t i = 0; i < c->n_sess; i++) {
        c->sess[i].role = R_NONE;
        c->sess[i].sa_in = false;
        memset(c->sess[i].sa_seen, 0, sizeof c->sess[i].sa_seen);
    }
    s_pull_cancel(c);
    fl_sa_server_destroy(&c->sa);
}

/* ------------------------------------------------------ secure aggregation */

/*
 * Set up secure aggregation for the k chosen agents of the attempt about to
 * start: the graph and threshold for k (SECAGG.md 1.3), a fresh nonce, the
 * encoding (with central DP: the plain sum of updates clipped to the
 * current clip_norm, plus one coordinate carrying the adaptive-clipping
 * bit; otherwise the mean weighted by sample counts). 0, or an error with
 * a detail (the attempt cannot run).
 */
static int
s_sa_begin(coord_t *c, const size_t *chosen, size_t k)
{
    fl_sa_setup_t *st = &c->sa_setup;
    fl_sagraph_params_t gp;
    fl_sagraph_threat_t threat = strcmp(c->cfg.sa_threat, "semi-malicious") == 0
                                     ? FL_SAGRAPH_SEMI_MALICIOUS
                                     : FL_SAGRAPH_SEMI_HONEST;
    int rc = fl_sagraph_choose((uint32_t)k, c->cfg.sa_gamma, c->cfg.sa_delta, threat,
                               (uint32_t)c->cfg.sa_full_max, &gp);
    if (rc != 0)
        return rc;
    memset(st, 0, sizeof *st);
    st->round = (uint64_t)c->round;
    st->attempt = (uint64_t)c->attempt;
    st->n = (uint32_t)k;
    st->k = gp.k;
    st->t = gp.t;
    st->full = gp.full;
    st->bits = (unsigned)c->cfg.sa_bits;
    st->levels = (uint32_t)c->cfg.sa_levels;
    st->clip = c->dp ? c->clip : c->cfg.sa_clip;
    st->wmax = c->dp ? 0.0 : c->cfg.sa_max_weight;
    st->dim = fl_params_numel(c->global) + (c->adaptive ? 1 : 0) + FL_SA_METRICS;
    st->active = c->cfg.sa_active;
    randombytes_buf(st->nonce, sizeof st->nonce);
    if ((rc = fl_sa_server_new(st, &c->sa)) != 0)
        return rc;
    if (st->active && (rc = fl_sa_server_set_ca(c->sa, c->cfg.sa_ca_pk)) != 0)
        return rc;
    c->sa_sess = fl_xrealloc(c->sa_sess, k * sizeof *c->sa_sess);
    for (size_t i = 0; i < k; i++) {
        c->sa_sess[i] = chosen[i];
        c->sess[chosen[i]].sa_in = true;
        c->sess[chosen[i]].sa_idx = (uint32_t)i;
    }
    c->sa_deadline_ms = fl_now_ms() + (int64_t)c->cfg.sa_phase_timeout * 1000;
    fl_info("secure aggregation set up",
            "round=%lld attempt=%lld agents=%zu graph=%s k=%u t=%u bits=%u levels=%u clip=%g "
            "model=%s",
            (long long)c->round, (long long)c->attempt, k, gp.full ? "full" : "harary", gp.k,
            gp.t, st->bits, st->levels, st->clip, st->active ? "active" : "semi-honest");
    return 0;
}

/* The train message's setup fields for session s. */
static void
s_sa_fill(const coord_t *c, const sess_t *s, fl_msg_t *m)
{
    const fl_sa_setup_t *st = &c->sa_setup;
    if (!c->sa || !s->sa_in)
        return;
    m->sa_n = st->n;
    m->sa_idx = s->sa_idx;
    m->sa_k = st->k;
    m->sa_t = st->t;
    m->sa_full = st->full;
    m->sa_bits = st->bits;
    m->sa_levels = st->levels;
    m->sa_dim = st->dim;
    m->sa_clip = st->clip;
    m->sa_wmax = st->wmax;
    m->sa_active = st->active;
    m->has_nonce = true;
    memcpy(m->nonce, st->nonce, sizeof m->nonce);
}

static bool
s_done_training(const coord_t *c)
{
    return c->cfg.rounds > 0 && (uint64_t)c->rounds_done >= c->cfg.rounds;
}

/* Start the next attempt of the next round if enough agents are online. */
static void
s_maybe_start_round(coord_t *c)
{
    if (c->phase != PH_WAITING)
        return;
    if (s_done_training(c)) {
        c->phase = PH_COMPLETE;
        fl_info("federation complete", "rounds=%lld", (long long)c->rounds_done);
        return;
    }
    size_t online = 0;
    for (size_t i = 0; i < c->n_sess; i++)
        online += s_eligible(c, &c->sess[i]);
    if (online < c->cfg.min_available || (c->secagg && online < 2) ||
        fl_now_ms() < c->retry_at_ms)
        return;

    size_t *chosen = fl_xmalloc((c->n_sess + 1) * sizeof *chosen);
    /* secure aggregation needs two agents: the sum of one update is that update */
    size_t k = s_sample(c, c->cfg.fraction,
                        c->secagg && c->cfg.min_fit < 2 ? 2 : c->cfg.min_fit, chosen);
    fl_round_row_t row;
    fl_msg_t m;

    if (c->dp) {
        /* with adaptive clipping the count of unclipped updates is noised too,
         * so the value noise is z_delta (the round stays a Gaussian
         * mechanism with multiplier z, which the accountant records) */
        c->z_value = c->cfg.noise_multiplier;
        if (c->adaptive) {
            c->sigma_b = c->cfg.clip_count_stddev > 0 ? c->cfg.clip_count_stddev
                                                      : (double)k / FL_DP_ADACLIP_SIGMA_B_DIV;
            if (fl_dp_adaclip_value_z(c->cfg.noise_multiplier, c->sigma_b, &c->z_value) != 0) {
                snprintf(c->stop_reason, sizeof c->stop_reason, "adaptive clipping: %s",
                         fl_errmsg());
                fl_error("cannot start the round", "reason=\"%s\"", c->stop_reason);
                c->phase = PH_COMPLETE;
                free(chosen);
                return;
            }
        }
        /* q: the chance that a given enrolled agent takes part in this round */
        size_t enrolled = s_count_active(c);
        c->round_q = enrolled > 0 ? (double)k / (double)enrolled : 1.0;
        if (c->round_q > 1.0)
            c->round_q = 1.0;
        bool exceed = false;
        double after = 0;
        if (c->cfg.epsilon_budget > 0 &&
            fl_dp_would_exceed(c->acct, c->round_q, c->cfg.noise_multiplier, 1, c->cfg.dp_delta,
                               c->cfg.epsilon_budget, &exceed, &after) == 0 &&
            exceed) {
            snprintf(c->stop_reason, sizeof c->stop_reason,
                     "privacy budget: round %lld would take epsilon to %.4f > budget %.4f",
                     (long long)c->round, after, c->cfg.epsilon_budget);
            fl_error("refusing to start a round that would exceed the privacy budget",
                     "round=%lld epsilon_after=%.4f budget=%.4f delta=%g", (long long)c->round,
                     after, c->cfg.epsilon_budget, c->cfg.dp_delta);
            c->phase = PH_COMPLETE;
            free(chosen);
            return;
        }
    }

    s_reset_roles(c);
    if (c->secagg && s_sa_begin(c, chosen, k) != 0) {
        snprintf(c->stop_reason, sizeof c->stop_reason, "secure aggregation: %s", fl_errmsg());
        fl_error("cannot start the round", "reason=\"%s\"", c->stop_reason);
        c->phase = PH_COMPLETE;
        free(chosen);
        return;
    }
    fl_aggr_reset(c->aggr);
    if (c->robust)
        fl_robust_reset(c->robust);
    c->phase = PH_TRAIN;
    c->expected = (int64_t)k;
    c->received = c->rejected = c->dropped = 0;
    c->loss_sum = c->acc_sum = c->n_sum = 0;
    c->bit_sum = 0;
    c->started_round_ms = fl_now_ms();
    c->deadline_ms = c->started_round_ms + (int64_t)c->cfg.train_timeout * 1000;
    c->deadline_wall_ms = fl_wall_ms() + (int64_t)c->cfg.train_timeout * 1000;

    s_round_row(c, &row, "train", "");
    if (fl_store_begin(c->store) != 0 || fl_store_round_put(c->store, &row) != 0) {
        fl_error("cannot record the round start", "reason=\"%s\"", fl_errmsg());
        fl_store_rollback(c->store);
        c->phase = PH_WAITING;
        free(chosen);
        return;
    }
    for (size_t i = 0; i < k; i++) {
        sess_t *s = &c->sess[chosen[i]];
        s->role = R_SELECTED;
        s->n_samples = 0;
        s->loss = s->acc = 0;
        s_record_agent(c, s, "selected", NULL);
    }
    if (coord_audit(c->store, "coordinator", "round.start", "round=%lld attempt=%lld selected=%zu",
                    (long long)c->round, (long long)c->attempt, k) != 0 ||
        fl_store_commit(c->store) != 0) {
        fl_error("cannot commit the round start", "reason=\"%s\"", fl_errmsg());
        fl_store_rollback(c->store);
    }
    fl_info("round started", "round=%lld attempt=%lld selected=%zu online=%zu deadline_s=%llu",
            (long long)c->round, (long long)c->attempt, k, online,
            (unsigned long long)c->cfg.train_timeout);
    s_fill_task(c, &m, FL_MSG_TRAIN, c->cfg.train_timeout);
    for (size_t i = 0; i < k; i++) {
        s_sa_fill(c, &c->sess[chosen[i]], &m);
        s_send(c, &c->sess[chosen[i]], &m, NULL, 0);
    }
    free(chosen);
}

/* Tell agents still working on this attempt to stop. */
static void
s_abort_pending(coord_t *c, const char *reason)
{
    for (size_t i = 0; i < c->n_sess; i++) {
        sess_t *s = &c->sess[i];
        if (s->role == R_SELECTED || s->role == R_READY || s->role == R_PULLING ||
            s->role == R_EVAL_ASKED) {
            s_send_reason(c, s, FL_MSG_ABORT, reason);
            s_record_agent(c, s, "dropped", reason);
            s->role = R_DROPPED;
        }
    }
    s_pull_cancel(c);
}

static void s_start_eval(coord_t *c);

/* The attempt failed (why): agents still on it are told, the failure is
 * recorded and audited, and the round is retried as the next attempt. The
 * global model is untouched. */
static void
s_fail_attempt(coord_t *c, const char *why)
{
    fl_round_row_t row;
    s_abort_pending(c, "round attempt failed");
    s_round_row(c, &row, "failed", why);
    row.ended_ms = fl_wall_ms();
    if (fl_store_round_put(c->store, &row) != 0)
        fl_error("cannot record the failed attempt", "reason=\"%s\"", fl_errmsg());
    (void)coord_audit(c->store, "coordinator", "round.fail", "round=%lld attempt=%lld reason=%s",
                      (long long)c->round, (long long)c->attempt, why);
    int64_t backoff = RETRY_BACKOFF_MS << (c->fail_streak < 6 ? c->fail_streak : 6);
    if (backoff > RETRY_BACKOFF_MAX_MS)
        backoff = RETRY_BACKOFF_MAX_MS;
    c->fail_streak++;
    c->retry_at_ms = fl_now_ms() + backoff;
    fl_warn("round attempt failed; retrying", "round=%lld attempt=%lld reason=\"%s\" "
            "retry_in_ms=%lld", (long long)c->round, (long long)c->attempt, why,
            (long long)backoff);
    c->attempt++;
    c->phase = PH_WAITING;
}

/* The secure result of the attempt into mean[0..numel): remove the masks,
 * decode, and under central DP add the noise to the sum over the expected
 * count (and read the adaptive-clipping count from its coordinate). */
static int
s_sa_mean(coord_t *c, float *mean)
{
    size_t numel = fl_params_numel(c->global);
    double wsum = 0;
    int rc = fl_sa_server_finish(c->sa, c->sa_out, &wsum);
    uint32_t ex[32];
    size_t nex = fl_sa_server_excluded(c->sa, ex, 32);
    for (size_t i = 0; i < nex && i < 32; i++) {
        sess_t *s = &c->sess[c->sa_sess[ex[i]]];
        c->invalid++;
        fl_warn("secure aggregation: a forged share was discarded", "round=%lld agent=%s "
                "invalid_total=%llu", (long long)c->round, s->name,
                (unsigned long long)c->invalid);
    }
    if (rc != 0)
        return rc;
    /* the training metrics: a weighted mean, or (DP) a sum over the agents */
    const float *met = c->sa_out + numel + (c->adaptive ? 1 : 0);
    double per = c->dp ? wsum : 1.0, clip = c->sa_setup.clip;
    c->n_sum = (double)c->received;
    c->loss_sum = c->n_sum * (double)met[0] / per / clip * FL_SA_LOSS_SCALE;
    c->acc_sum = c->n_sum * (double)met[1] / per / clip;
    if (!c->dp) {
        memcpy(mean, c->sa_out, numel * sizeof *mean);
        return 0;
    }
    if (c->adaptive) /* sum of +-clip, one per agent: the sum of b_k = +-1/2 */
        c->bit_sum = (double)c->sa_out[numel] / (2.0 * c->sa_setup.clip);
    return fl_dp_noisy_mean(c->sa_out, numel, c->z_value, c->clip, (double)c->expected, NULL,
                            mean);
}

static void s_drop_get_cb(size_t tag, const fl_window_req_t *req, void *arg);

/* The commit seals the new model in the aggregator's free buffer. */
_Static_assert(FL_AGGR_SCRATCH_SLACK >= FL_SEAL_OVERHEAD, "a sealed model fits in the scratch");

/* Close the training attempt: aggregate and commit, or record the failure. */
static int
s_finish_attempt(coord_t *c)
{
    char why[300];
    fl_round_row_t row;

    if ((uint64_t)c->received < c->cfg.min_fit) {
        snprintf(why, sizeof why, "only %lld of %lld updates (min_fit %llu)",
                 (long long)c->received, (long long)c->expected,
                 (unsigned long long)c->cfg.min_fit);
        s_fail_attempt(c, why);
        return 0;
    }
    s_abort_pending(c, "round closed");

    /* AGGREGATE: the mean delta (into the aggregator's free buffer), then the server optimizer. */
    float *mean = fl_aggr_scratch(c->aggr);
    size_t numel = fl_params_numel(c->global);
    int arc;
    if (c->sa)
        arc = s_sa_mean(c, mean);
    else if (c->robust)
        arc = fl_robust_result(c->robust, mean, NULL, NULL);
    else if (c->dp) /* the noisy sum over the EXPECTED count (SECAGG.md 2.1) */
        arc = fl_dp_noisy_mean(fl_aggr_sum(c->aggr), numel, c->z_value, c->clip,
                               (double)c->expected, NULL, mean);
    else
        arc = fl_aggr_mean(c->aggr, mean);
    if (!mean || arc != 0) {
        /* e.g. Krum with fewer than 2f+3 updates: this attempt fails and is
         * retried; the global model is untouched */
        snprintf(why, sizeof why, "aggregation failed: %s", fl_errmsg());
        s_fail_attempt(c, why);
        return 0;
    }
    if (c->robust && fl_robust_count(c->robust) == 0) {
        fl_error("aggregation failed", "reason=\"no update held\"");
        return -1;
    }
    if (atomic_load(&c->gref->refs) > 1) {
        /* chunks of this model are still queued: the new model goes elsewhere */
        pubref_t *next = s_pub_new(fl_params_dup(c->global));
        s_pub_release(c->gref);
        c->gref = next;
        c->global = next->params;
    }
    fl_sopt_apply(c->sopt, fl_params_data(c->global), mean, fl_params_numel(c->global));
    if (fl_params_check_finite(c->global) != 0) {
        fl_error("the new global model is not finite; refusing to commit it",
                 "reason=\"%s\"", fl_errmsg());
        return -1;
    }
    coord_model_digest(c->global, c->digest);
    /* gets still queued name the model just replaced */
    fl_window_drop_all(c->win, s_drop_get_cb, c);

    /* COMMIT: round row, checkpoint and metrics in one transaction. */
    char hexd[65];
    size_t state_len = fl_sopt_state_size(c->sopt);
    uint8_t *state = fl_xmalloc(state_len ? state_len : 1);
    fl_sopt_state_export(c->sopt, state);
    s_round_row(c, &row, "done", "ok");
    row.ended_ms = fl_wall_ms();
    int rc = fl_store_begin(c->store);
    if (rc == 0)
        rc = fl_store_round_put(c->store, &row);
    if (rc == 0)
        rc = coord_checkpoint_save(c->store, c->dk, c->fedid, c->round, c->digest,
                                   fl_params_data(c->global), c->model_bytes, state, state_len,
                                   fl_wall_ms(), mean, fl_aggr_scratch_bytes(c->aggr));
    if (rc == 0)
        rc = fl_store_metric_put(c->store, c->round, "train_loss", row.train_loss);
    if (rc == 0)
        rc = fl_store_metric_put(c->store, c->round, "train_accuracy", row.train_acc);
    if (rc == 0)
        rc = fl_store_metric_put(c->store, c->round, "updates", (double)c->received);
    if (rc == 0)
        rc = coord_audit(c->store, "coordinator", "round.commit",
                         "round=%lld attempt=%lld updates=%lld rejected=%lld model=%s",
                         (long long)c->round, (long long)c->attempt, (long long)c->received,
                         (long long)c->rejected, coord_hex(c->digest, 32, hexd, sizeof hexd));
    if (rc == 0 && c->adaptive) {
        /* the bits are noised too; then C moves towards the target quantile */
        fl_dp_adaclip_t st;
        char text[64];
        rc = fl_dp_adaclip_init(&st, c->clip, c->cfg.clip_quantile, c->cfg.clip_lr, c->sigma_b,
                                (double)c->expected);
        if (rc == 0)
            rc = fl_dp_adaclip_update(&st, c->bit_sum, NULL, NULL);
        if (rc == 0) {
            fl_info("clipping norm adapted", "round=%lld from=%.6g to=%.6g unclipped_bits=%.1f",
                    (long long)c->round, c->clip, st.clip, c->bit_sum);
            c->clip = st.clip;
            snprintf(text, sizeof text, "%.17g", c->clip);
            rc = fl_store_meta_set(c->store, "dp_clip", text);
        }
        if (rc == 0)
            rc = fl_store_metric_put(c->store, c->round, "clip_norm", c->clip);
    }
    if (rc == 0 && c->dp) {
        double eps = 0;
        char *text = NULL;
        rc = fl_dp_accountant_add(c->acct, c->round_q, c->cfg.noise_multiplier, 1);
        if (rc == 0 && (rc = fl_dp_accountant_epsilon(c->acct, c->cfg.dp_delta, &eps, NULL)) == 0 &&
            (text = fl_dp_accountant_save(c->acct)) != NULL) {
            rc = fl_store_meta_set(c->store, "dp_accountant", text);
            if (rc == 0)
                rc = fl_store_metric_put(c->store, c->round, "epsilon", eps);
        }
        free(text);
    }
    if (rc == 0 && c->cfg.keep_checkpoints > 0) {
        int64_t pruned = 0;
        rc = fl_store_checkpoint_prune(c->store, (int64_t)c->cfg.keep_checkpoints, &pruned);
    }
    if (rc == 0)
        rc = fl_store_commit(c->store);
    free(state);
    if (rc != 0) {
        /* The in-memory model is ahead of the database; restarting from the
         * last committed checkpoint is the only consistent way on. */
        fl_error("cannot commit the round; stopping (restart resumes from the last checkpoint)",
                 "round=%lld reason=\"%s\"", (long long)c->round, fl_errmsg());
        fl_store_rollback(c->store);
        return -1;
    }
    char hex[17];
    fl_info("round committed",
            "round=%lld attempt=%lld updates=%lld rejected=%lld train_loss=%.4f "
            "train_accuracy=%.4f seconds=%.2f model=%s",
            (long long)c->round, (long long)c->attempt, (long long)c->received,
            (long long)c->rejected, row.train_loss, row.train_acc,
            (double)(fl_now_ms() - c->started_round_ms) / 1000.0,
            coord_hex(c->digest, 8, hex, sizeof hex));
    c->rounds_done = c->round;
    c->round++;
    c->attempt = 1;
    c->fail_streak = 0;
    c->phase = PH_WAITING;
    if (c->cfg.eval_every > 0 && (uint64_t)c->rounds_done % c->cfg.eval_every == 0)
        s_start_eval(c);
    return 0;
}

static void
s_start_eval(coord_t *c)
{
    size_t *chosen = fl_xmalloc((c->n_sess + 1) * sizeof *chosen);
    size_t k = s_sample(c, c->cfg.eval_fraction, 1, chosen);
    fl_msg_t m;
    if (k == 0) {
        free(chosen);
        return;
    }
    s_reset_roles(c);
    c->phase = PH_EVAL;
    c->eval_round = c->rounds_done;
    c->eval_loss_sum = c->eval_acc_sum = c->eval_n = 0;
    c->expected = (int64_t)k;
    c->received = c->rejected = c->dropped = 0;
    c->started_round_ms = fl_now_ms();
    c->deadline_ms = c->started_round_ms + (int64_t)c->cfg.eval_timeout * 1000;
    c->deadline_wall_ms = fl_wall_ms() + (int64_t)c->cfg.eval_timeout * 1000;
    s_fill_task(c, &m, FL_MSG_EVAL, c->cfg.eval_timeout);
    for (size_t i = 0; i < k; i++) {
        c->sess[chosen[i]].role = R_EVAL_ASKED;
        s_send(c, &c->sess[chosen[i]], &m, NULL, 0);
    }
    fl_info("evaluation started", "round=%lld agents=%zu", (long long)c->eval_round, k);
    free(chosen);
}

static void
s_finish_eval(coord_t *c)
{
    fl_round_row_t row;
    s_abort_pending(c, "evaluation closed");
    c->phase = PH_WAITING;
    if (c->eval_n <= 0) {
        fl_warn("evaluation got no results", "round=%lld", (long long)c->eval_round);
        return;
    }
    double loss = c->eval_loss_sum / c->eval_n, acc = c->eval_acc_sum / c->eval_n;
    int rc = fl_store_begin(c->store);
    if (rc == 0)
        rc = fl_store_metric_put(c->store, c->eval_round, "eval_loss", loss);
    if (rc == 0)
        rc = fl_store_metric_put(c->store, c->eval_round, "eval_accuracy", acc);
    if (rc == 0)
        rc = fl_store_metric_put(c->store, c->eval_round, "eval_samples", c->eval_n);
    /* the round's own row carries its evaluation too */
    for (int64_t a = 64; rc == 0 && a >= 1; a--) {
        if (fl_store_round_get(c->store, c->eval_round, a, &row) != 0)
            continue;
        if (strcmp(row.phase, "done") != 0)
            continue;
        row.has_eval = 1;
        row.eval_loss = loss;
        row.eval_acc = acc;
        row.eval_n = (int64_t)c->eval_n;
        rc = fl_store_round_put(c->store, &row);
        break;
    }
    if (rc == 0)
        rc = fl_store_commit(c->store);
    if (rc != 0) {
        fl_error("cannot record the evaluation", "reason=\"%s\"", fl_errmsg());
        fl_store_rollback(c->store);
    }
    fl_info("evaluation done", "round=%lld agents=%lld samples=%.0f eval_loss=%.4f "
            "eval_accuracy=%.4f",
            (long long)c->eval_round, (long long)c->received, c->eval_n, loss, acc);
    if (c->cfg.target_accuracy > 0 && acc >= c->cfg.target_accuracy) {
        fl_info("target accuracy reached", "accuracy=%.4f target=%.4f", acc,
                c->cfg.target_accuracy);
        c->cfg.rounds = (uint64_t)c->rounds_done;
    }
}

/* -------------------------------------------------------- update transfer */

static void
s_pull_more(coord_t *c)
{
    sess_t *s = &c->sess[c->pulling];
    fl_msg_t m;
    while (s->nbytes > c->pull_next && c->pull_next - c->pull_got < PULL_WINDOW * FL_CHUNK_DEFAULT) {
        size_t len = s->nbytes - c->pull_next;
        if (len > FL_CHUNK_DEFAULT)
            len = FL_CHUNK_DEFAULT;
        /* the pulls share the credit window with the chunks (fl_window.h) */
        if (!fl_window_may_pull(c->win, c->pull_next - c->pull_got, len))
            break;
        fl_msg_init(&m, FL_MSG_PULL);
        m.round = (uint64_t)c->round;
        m.attempt = (uint64_t)c->attempt;
        m.offset = c->pull_next;
        m.length = len;
        s_send(c, s, &m, NULL, 0);
        c->pull_next += len;
    }
}

static void s_update_refused(coord_t *c, sess_t *s, const char *reason);

/* Send the chunk answering req of the agent whose gets p holds. */
static void
s_send_chunk(coord_t *c, fl_window_peer_t *p, const fl_window_req_t *req)
{
    sess_t *s = &c->sess[fl_window_peer_tag(p)];
    fl_msg_t r;
    size_t len = 0;
    zmq_msg_t data;

    fl_msg_init(&r, FL_MSG_CHUNK);
    r.has_digest = true;
    memcpy(r.digest, c->digest, 32);
    r.offset = req->offset;
    r.total = c->model_bytes;
    if (s->rid_len == 0 || fl_msg_encode(&r, c->hdr, sizeof c->hdr, &len) != 0) {
        fl_window_peer_reset(c->win, p);
        return;
    }
    /* no copy: the chunk references the published model (see pubref_t) */
    atomic_fetch_add(&c->gref->refs, 1);
    void *hint = fl_window_chunk_hint(c->win, p, req, s_pub_release_cb, c->gref);
    zmq_msg_init_data(&data, (uint8_t *)fl_params_data(c->global) + req->offset, req->length,
                      fl_window_chunk_free, hint);
    if (fl_net_send_msg(c->sock, s->rid, s->rid_len, c->hdr, len, &data, ZMQ_DONTWAIT) != 0) {
        /* gone, or its queue is full: it resumes after a reconnection or a pause */
        fl_debug("send failed", "agent=%s type=chunk reason=\"%s\"", s->name, fl_errmsg());
        fl_window_peer_reset(c->win, p);
    }
}

/* Send the chunks the credit window lets go now. */
static void
s_xfer_serve(coord_t *c)
{
    fl_window_peer_t *p;
    fl_window_req_t req;
    while (fl_window_next(c->win, &p, &req))
        s_send_chunk(c, p, &req);
}

/*
 * Move the bulk transfers on as far as the credit window allows: learn which
 * chunks ZeroMQ has released, refill the update pulls first (one upload at a
 * time, PULL_WINDOW deep), then send the chunks of the agents holding slots.
 * Runs on every pass of the event loop, so also when ZeroMQ released a chunk
 * (the window's fd is polled).
 */
static void
s_xfer_pump(coord_t *c)
{
    fl_window_update(c->win, fl_now_ms());
    if (c->pulling >= 0)
        s_pull_more(c);
    fl_window_set_pulls(c->win, c->pulling >= 0 ? c->pull_next - c->pull_got : 0);
    s_xfer_serve(c);
}

/* A queued get of a model no longer served: answered as a get arriving now
 * would be (not counted as invalid: it was valid when it came). */
static void
s_drop_get_cb(size_t tag, const fl_window_req_t *req, void *arg)
{
    coord_t *c = arg;
    fl_debug("queued get dropped: the global model has moved on", "agent=%s offset=%llu",
             c->sess[tag].name, (unsigned long long)req->offset);
    s_send_reason(c, &c->sess[tag], FL_MSG_ERROR,
                  "get: unknown model digest (the global model has moved on)");
}

/* The aggregation rule in use: the streaming FedAvg sum, or a robust
 * collector. Same contract as fl_aggr_begin/chunk/commit/abort. */
static int
s_agg_begin(coord_t *c, const sess_t *s, double weight)
{
    if (c->sa) /* a masked vector, into the modular sum */
        return fl_sa_server_input_begin(c->sa, s->sa_idx);
    return c->robust ? fl_robust_begin(c->robust, weight) : fl_aggr_begin(c->aggr, weight);
}

static int
s_agg_chunk(coord_t *c, size_t offset, const float *data, size_t n)
{
    if (c->sa)
        return fl_sa_server_input_chunk(c->sa, offset, (const uint32_t *)(const void *)data, n);
    return c->robust ? fl_robust_chunk(c->robust, offset, data, n)
                     : fl_aggr_chunk(c->aggr, offset, data, n);
}

static int
s_agg_commit(coord_t *c)
{
    if (c->sa)
        return fl_sa_server_input_commit(c->sa);
    return c->robust ? fl_robust_commit(c->robust) : fl_aggr_commit(c->aggr);
}

static void
s_agg_abort(coord_t *c)
{
    if (c->sa)
        fl_sa_server_input_abort(c->sa);
    else if (c->robust)
        fl_robust_abort(c->robust);
    else
        fl_aggr_abort(c->aggr);
}

/* Stop the transfer under way: the open add is discarded, the sum untouched. */
static void
s_pull_cancel(coord_t *c)
{
    if (c->pulling >= 0)
        s_agg_abort(c);
    c->pulling = -1;
}

/* Start pulling the oldest ready update if no transfer is under way. */
static void
s_pull_next_ready(coord_t *c)
{
    ssize_t best = -1;
    if (c->pulling >= 0 || c->phase != PH_TRAIN)
        return;
    for (size_t i = 0; i < c->n_sess; i++)
        if (c->sess[i].role == R_READY &&
            (best < 0 || c->sess[i].ready_ms < c->sess[best].ready_ms))
            best = (ssize_t)i;
    if (best < 0)
        return;
    sess_t *s = &c->sess[best];
    /* under DP every update weighs the same: its sensitivity is the clip bound */
    if (s_agg_begin(c, s, c->dp ? 1.0 : (double)s->n_samples) != 0) {
        char why[200];
        snprintf(why, sizeof why, "update refused: %s", fl_errmsg());
        s_update_refused(c, s, why);
        s_pull_next_ready(c);
        return;
    }
    crypto_generichash_init(&c->hash, NULL, 0, 32);
    c->pulling = best;
    s->role = R_PULLING;
    c->pull_next = c->pull_got = 0;
    c->pull_last_ms = fl_now_ms();
    s_pull_more(c);
}

static void
s_update_refused(coord_t *c, sess_t *s, const char *reason)
{
    c->rejected++;
    s->role = R_REJECTED;
    s_record_agent(c, s, "rejected", reason);
    s_send_reason(c, s, FL_MSG_REJECT, reason);
    fl_warn("update rejected", "round=%lld agent=%s reason=\"%s\"", (long long)c->round,
            s->name, reason);
}

/* The whole update has been streamed into the open add: keep it only if it
 * matches the digest announced in "ready" and the aggregator accepts it. */
static void
s_update_complete(coord_t *c, sess_t *s)
{
    uint8_t digest[32];
    fl_msg_t m;
    crypto_generichash_final(&c->hash, digest, 32);
    if (sodium_memcmp(digest, s->digest, 32) != 0) {
        s_pull_cancel(c);
        s_update_refused(c, s, "update bytes do not match the digest announced in ready");
        return;
    }
    c->pulling = -1;
    if (s_agg_commit(c) != 0) {
        char why[256];
        snprintf(why, sizeof why, "update refused: %s", fl_errmsg());
        s_update_refused(c, s, why);
        return;
    }
    c->received++;
    c->bit_sum += s->unclipped ? 0.5 : -0.5;
    c->loss_sum += s->loss * (double)s->n_samples;
    c->acc_sum += s->acc * (double)s->n_samples;
    c->n_sum += (double)s->n_samples;
    s->role = R_RECEIVED;
    s_record_agent(c, s, "received", NULL);
    fl_msg_init(&m, FL_MSG_ACK);
    m.round = (uint64_t)c->round;
    m.attempt = (uint64_t)c->attempt;
    s_send(c, s, &m, NULL, 0);
    fl_info("update received", "round=%lld agent=%s samples=%llu loss=%.4f received=%lld/%lld",
            (long long)c->round, s->name, (unsigned long long)s->n_samples, s->loss,
            (long long)c->received, (long long)c->expected);
}

/* ------------------------------------------- secure aggregation phases */

/* Agents of U<from> not (yet) in U<to> that are still expected to answer
 * (online, not dropped or rejected). */
static size_t
s_sa_waiting(const coord_t *c, unsigned from, unsigned to)
{
    size_t n = 0, k = fl_sa_server_count(c->sa, 0);
    for (size_t i = 0; i < k; i++) {
        const sess_t *s = &c->sess[c->sa_sess[i]];
        if (fl_sa_server_member(c->sa, (uint32_t)i, from) &&
            !fl_sa_server_member(c->sa, (uint32_t)i, to) && s->role != R_DROPPED &&
            s->role != R_REJECTED && s_online(c, s))
            n++;
    }
    return n;
}

/* The message a phase opens with: sent to the members of U<to> (the agents
 * of U<to - 1> left out are dropped and told `left_out`), answered by
 * joining U<done>. */
typedef struct {
    fl_msg_type_t type;
    unsigned to, done;
    int (*get)(fl_sa_server_t *, uint32_t, const uint8_t **, size_t *);
    const char *left_out;
} sa_phase_msg_t;

/* The U3 bitmap of the consistency round: the same for every agent. */
static int
s_sa_chk_for(fl_sa_server_t *sa, uint32_t idx, const uint8_t **out, size_t *out_len)
{
    (void)idx;
    return fl_sa_server_chk(sa, out, out_len);
}

#define S_NO_MASKED "secure aggregation: no masked input in time"

/* The opening message of phase ph, or NULL (adv opens with "train", done
 * and failed with none). The active-server model (signed keys) inserts the
 * consistency round: sa.chk goes to U3, and sa.unmask to the U4 that signed. */
static const sa_phase_msg_t *
s_sa_phase_msg(const coord_t *c, fl_sa_phase_t ph)
{
    static const sa_phase_msg_t keys = {FL_MSG_SA_KEYS, 1, 2, fl_sa_server_keys_for,
                                        "secure aggregation: no keys advertised in time"};
    static const sa_phase_msg_t mreq = {FL_MSG_SA_MREQ, 2, 3, fl_sa_server_mreq_for,
                                        "secure aggregation: no shares sent in time"};
    static const sa_phase_msg_t chk = {FL_MSG_SA_CHK, 3, 4, s_sa_chk_for, S_NO_MASKED};
    static const sa_phase_msg_t unmask = {FL_MSG_SA_UNMASK, 3, 5, fl_sa_server_unmask_for,
                                          S_NO_MASKED};
    static const sa_phase_msg_t unmask_signed = {
        FL_MSG_SA_UNMASK, 4, 5, fl_sa_server_unmask_for,
        "secure aggregation: no consistency signature in time"};
    switch (ph) {
    case FL_SA_PH_SHR: return &keys;
    case FL_SA_PH_MASKED: return &mreq;
    case FL_SA_PH_CHK: return &chk;
    case FL_SA_PH_UNMASK: return c->sa_setup.active ? &unmask_signed : &unmask;
    default: return NULL;
    }
}

/* Send session s (index idx) the records of pm. */
static void
s_sa_send_records(coord_t *c, sess_t *s, uint32_t idx, const sa_phase_msg_t *pm)
{
    const uint8_t *recs;
    size_t len;
    fl_msg_t m;
    fl_msg_init(&m, pm->type);
    m.round = (uint64_t)c->round;
    m.attempt = (uint64_t)c->attempt;
    if (pm->get(c->sa, idx, &recs, &len) == 0 && len > 0)
        s_send(c, s, &m, recs, len);
    else
        fl_error("secure aggregation: no records for an agent", "agent=%s type=%s reason=\"%s\"",
                 s->name, fl_msg_type_name(pm->type), fl_errmsg());
}

/* The phase just opened: send its message to every member (see sa_phase_msg_t). */
static void
s_sa_send_phase(coord_t *c)
{
    const sa_phase_msg_t *pm = s_sa_phase_msg(c, fl_sa_server_phase(c->sa));
    size_t k = fl_sa_server_count(c->sa, 0);
    for (size_t i = 0; pm && i < k; i++) {
        sess_t *s = &c->sess[c->sa_sess[i]];
        if (fl_sa_server_member(c->sa, (uint32_t)i, pm->to)) {
            s_sa_send_records(c, s, (uint32_t)i, pm);
        } else if (fl_sa_server_member(c->sa, (uint32_t)i, pm->to - 1) && s->role != R_DROPPED &&
                   s->role != R_REJECTED) {
            s_send_reason(c, s, FL_MSG_ABORT, pm->left_out);
            s_record_agent(c, s, "dropped", pm->left_out);
            s->role = R_DROPPED;
            c->dropped++;
        }
    }
}

/* A phase ended with too few agents: the attempt fails and is retried. */
static void
s_sa_failed(coord_t *c, const char *what)
{
    char why[300];
    snprintf(why, sizeof why, "secure aggregation %s: %s", what, fl_errmsg());
    s_fail_attempt(c, why);
}

/*
 * Close a key phase, whose members (U<from>) answer by joining U<to>, once
 * all of them have answered or its deadline has passed, and open the next
 * with a fresh deadline. True if it closed; false while it waits, or when too
 * few answered (the attempt has then failed, as `what`).
 */
static bool
s_sa_close(coord_t *c, int64_t now, unsigned from, unsigned to, int (*close)(fl_sa_server_t *),
           const char *what)
{
    if (s_sa_waiting(c, from, to) > 0 && now < c->sa_deadline_ms)
        return false;
    if (close(c->sa) != 0) {
        s_sa_failed(c, what);
        return false;
    }
    s_sa_send_phase(c);
    c->sa_deadline_ms = now + (int64_t)c->cfg.sa_phase_timeout * 1000;
    return true;
}

/*
 * Move the secure-aggregation attempt on: close the phase under way when
 * every agent still in it has answered or its deadline has passed, and start
 * the next. Called after every sa.* message and from the timer.
 */
static void
s_sa_progress(coord_t *c, int64_t now)
{
    int64_t next = now + (int64_t)c->cfg.sa_phase_timeout * 1000;
    if (!c->sa || c->phase != PH_TRAIN)
        return;
    switch (fl_sa_server_phase(c->sa)) {
    case FL_SA_PH_ADV:
        if (s_sa_close(c, now, 0, 1, fl_sa_server_close_adv, "key advertisement"))
            fl_info("secure aggregation: keys advertised", "round=%lld u1=%zu of=%zu",
                    (long long)c->round, fl_sa_server_count(c->sa, 1),
                    fl_sa_server_count(c->sa, 0));
        return;
    case FL_SA_PH_SHR:
        if (s_sa_close(c, now, 1, 2, fl_sa_server_close_shr, "share exchange"))
            fl_info("secure aggregation: shares routed", "round=%lld u2=%zu",
                    (long long)c->round, fl_sa_server_count(c->sa, 2));
        return;
    case FL_SA_PH_MASKED: {
        size_t pending = 0;
        for (size_t i = 0; i < c->n_sess; i++) {
            role_t r = c->sess[i].role;
            pending += c->sess[i].sa_in && (r == R_SELECTED || r == R_READY || r == R_PULLING);
        }
        if (pending > 0 && now < c->deadline_ms)
            return;
        if (pending)
            fl_warn("round deadline passed", "round=%lld pending=%zu", (long long)c->round,
                    pending);
        s_abort_pending(c, "round closed");
        if (fl_sa_server_close_masked(c->sa) != 0) {
            s_sa_failed(c, "masked input collection");
            return;
        }
        s_sa_send_phase(c);
        c->sa_deadline_ms = next;
        fl_info(c->sa_setup.active ? "secure aggregation: consistency check"
                                   : "secure aggregation: unmasking",
                "round=%lld u3=%zu", (long long)c->round, fl_sa_server_count(c->sa, 3));
        return;
    }
    case FL_SA_PH_CHK:
        if (s_sa_close(c, now, 3, 4, fl_sa_server_close_chk, "consistency check"))
            fl_info("secure aggregation: unmasking", "round=%lld u3=%zu u4=%zu",
                    (long long)c->round, fl_sa_server_count(c->sa, 3),
                    fl_sa_server_count(c->sa, 4));
        return;
    case FL_SA_PH_UNMASK:
        /* not at the first t shares of each secret: as many as can be had
         * (t + 2 find a single forged share), within the deadline (U4 = U3
         * unless the consistency round ran) */
        if (!fl_sa_server_checkable(c->sa) && s_sa_waiting(c, 4, 5) > 0 &&
            now < c->sa_deadline_ms)
            return;
        if (!fl_sa_server_ready(c->sa))
            fl_warn("unmasking ended without enough shares", "round=%lld u5=%zu",
                    (long long)c->round, fl_sa_server_count(c->sa, 5));
        if (s_finish_attempt(c) != 0)
            s_stop = 2;
        return;
    default: return;
    }
}

/* --------------------------------------------------------------- handlers */

static bool
s_is_current(const coord_t *c, const fl_msg_t *m, int64_t round)
{
    return (int64_t)m->round == round && (int64_t)m->attempt == c->attempt;
}

/*
 * A get is queued in the credit window (fl_window.h), and answered once its
 * agent holds a slot: the window bounds the encrypted copies ZeroMQ makes of
 * chunks, over all agents together.
 */
static void
s_on_get(coord_t *c, sess_t *s, const fl_msg_t *m)
{
    if (sodium_memcmp(m->digest, c->digest, 32) != 0) {
        s_invalid(c, s, s->name, "get: unknown model digest (the global model has moved on)");
        return;
    }
    if (m->offset >= c->model_bytes || m->length > c->model_bytes - m->offset) {
        s_invalid(c, s, s->name, "get: range outside the model");
        return;
    }
    if (!s->wp)
        s->wp = fl_window_peer_new(c->win, (size_t)(s - c->sess));
    int rc = fl_window_push(c->win, s->wp, m->offset, (uint32_t)m->length, c->model_bytes,
                            fl_now_ms());
    if (rc < 0) {
        char why[128];
        snprintf(why, sizeof why, "get: %s", fl_errmsg());
        s_invalid(c, s, s->name, why);
        return;
    }
    if (rc == 1)
        fl_debug("get already queued", "agent=%s offset=%llu", s->name,
                 (unsigned long long)m->offset);
    s_xfer_serve(c);
}

static void
s_on_ready(coord_t *c, sess_t *s, const fl_msg_t *m)
{
    if (c->phase != PH_TRAIN || !s_is_current(c, m, c->round)) {
        c->invalid++;
        s_send_reason(c, s, FL_MSG_REJECT, "stale round: this attempt is not in progress");
        fl_warn("stale update refused", "agent=%s round=%llu attempt=%llu", s->name,
                (unsigned long long)m->round, (unsigned long long)m->attempt);
        return;
    }
    if (s->role != R_SELECTED) {
        c->invalid++;
        s_send_reason(c, s, FL_MSG_REJECT,
                      s->role == R_NONE ? "not selected for this round" : "duplicate update");
        fl_warn("unexpected update refused", "agent=%s role=%s", s->name, s_role_names[s->role]);
        return;
    }
    if (c->sa && (fl_sa_server_phase(c->sa) != FL_SA_PH_MASKED ||
                  !fl_sa_server_member(c->sa, s->sa_idx, 2))) {
        c->invalid++;
        s_send_reason(c, s, FL_MSG_REJECT,
                      "secure aggregation: masked input outside its phase or from an agent "
                      "that did not share its keys");
        fl_warn("unexpected masked input refused", "agent=%s sa_phase=%s", s->name,
                fl_sa_phase_name(fl_sa_server_phase(c->sa)));
        return;
    }
    s->n_samples = m->n_samples;
    s->loss = m->loss;
    s->acc = m->acc;
    s->nbytes = m->nbytes;
    s->unclipped = m->unclipped != 0;
    memcpy(s->digest, m->digest, 32);
    /* with secure aggregation the update is the masked vector: 4 bytes a word */
    uint64_t want = c->sa ? fl_sa_server_words(c->sa) * 4 : c->model_bytes;
    if (m->nbytes != want) {
        char why[160];
        snprintf(why, sizeof why, "%s has %llu bytes but %s %llu",
                 c->sa ? "masked input" : "update", (unsigned long long)m->nbytes,
                 c->sa ? "the setup gives" : "the model has", (unsigned long long)want);
        s_update_refused(c, s, why);
        return;
    }
    s->role = R_READY;
    s->ready_ms = fl_now_ms();
    s_pull_next_ready(c);
}

static void
s_on_upd(coord_t *c, sess_t *s, const fl_msg_t *m, const uint8_t *data, size_t len)
{
    if (c->phase != PH_TRAIN || c->pulling < 0 || &c->sess[c->pulling] != s ||
        !s_is_current(c, m, c->round)) {
        s_invalid(c, s, s->name, "upd: no transfer of this update is under way");
        return;
    }
    size_t want = s->nbytes - c->pull_got;
    if (want > FL_CHUNK_DEFAULT)
        want = FL_CHUNK_DEFAULT;
    if (m->offset != c->pull_got || len != want) {
        char why[160];
        snprintf(why, sizeof why, "upd: chunk at offset %llu with %zu bytes, expected offset %zu "
                 "with %zu bytes", (unsigned long long)m->offset, len, c->pull_got, want);
        s_pull_cancel(c);
        s_update_refused(c, s, why);
        s_pull_next_ready(c);
        return;
    }
    /* copied to an aligned buffer: the frame's bytes need not be float-aligned */
    memcpy(c->chunk, data, len);
    crypto_generichash_update(&c->hash, data, len);
    if (s_agg_chunk(c, c->pull_got / sizeof(float), c->chunk, len / sizeof(float)) != 0) {
        char why[256];
        snprintf(why, sizeof why, "update refused: %s", fl_errmsg());
        c->pulling = -1; /* the aggregator has already discarded the open add */
        s_update_refused(c, s, why);
        s_pull_next_ready(c);
        return;
    }
    c->pull_got += len;
    c->pull_last_ms = fl_now_ms();
    if (c->pull_got == s->nbytes)
        s_update_complete(c, s);
    else
        s_pull_more(c);
    s_pull_next_ready(c);
}

static void
s_on_evald(coord_t *c, sess_t *s, const fl_msg_t *m)
{
    if (c->phase != PH_EVAL || m->round != (uint64_t)c->eval_round || s->role != R_EVAL_ASKED) {
        c->invalid++;
        fl_warn("evaluation result refused", "agent=%s round=%llu reason=\"no evaluation of "
                "this round is in progress\"", s->name, (unsigned long long)m->round);
        s_send_reason(c, s, FL_MSG_REJECT, "no evaluation of this round is in progress");
        return;
    }
    s->role = R_EVALUATED;
    s->n_samples = m->n_samples;
    s->loss = m->loss;
    s->acc = m->acc;
    c->received++;
    c->eval_loss_sum += m->loss * (double)m->n_samples;
    c->eval_acc_sum += m->acc * (double)m->n_samples;
    c->eval_n += (double)m->n_samples;
    s_record_agent(c, s, "evaluated", NULL);
}

static void
s_on_fail(coord_t *c, sess_t *s, const fl_msg_t *m)
{
    fl_warn("agent could not do its task", "agent=%s round=%llu reason=\"%s\"", s->name,
            (unsigned long long)m->round, m->reason);
    if ((c->phase == PH_TRAIN && s->role == R_SELECTED && s_is_current(c, m, c->round)) ||
        (c->phase == PH_EVAL && s->role == R_EVAL_ASKED)) {
        s->role = R_DROPPED;
        c->dropped++;
        s_record_agent(c, s, "dropped", m->reason);
    }
}

/* After a reconnection: the phase message s may have missed, again, unless
 * it has answered it (for sa.mreq, answering is its "ready": its role has
 * moved on from selected before its input joins U3). */
static void
s_sa_resend(coord_t *c, sess_t *s)
{
    if (!c->sa || !s->sa_in || c->phase != PH_TRAIN)
        return;
    const sa_phase_msg_t *pm = s_sa_phase_msg(c, fl_sa_server_phase(c->sa));
    if (!pm || !fl_sa_server_member(c->sa, s->sa_idx, pm->to) ||
        fl_sa_server_member(c->sa, s->sa_idx, pm->done) ||
        (pm->type == FL_MSG_SA_MREQ && s->role != R_SELECTED))
        return;
    fl_debug("secure aggregation: phase message sent again", "agent=%s type=%s", s->name,
             fl_msg_type_name(pm->type));
    s_sa_send_records(c, s, s->sa_idx, pm);
}

/* A secure-aggregation message from s: is s in the attempt in progress?
 * (Logged, counted and answered when not.) */
static bool
s_sa_accept(coord_t *c, sess_t *s, const fl_msg_t *m)
{
    if (c->sa && c->phase == PH_TRAIN && s->sa_in && s_is_current(c, m, c->round))
        return true;
    if (c->sa && s->sa_in && m->round == c->sa_setup.round && m->attempt == c->sa_setup.attempt) {
        /* the attempt it belongs to has just closed (e.g. unmasked as soon as
         * t shares were in): late, not invalid */
        fl_debug("late secure-aggregation message ignored", "agent=%s type=%s round=%llu",
                 s->name, fl_msg_type_name(m->type), (unsigned long long)m->round);
        return false;
    }
    char why[160];
    snprintf(why, sizeof why, "%s: no secure-aggregation round of this agent is in progress",
             fl_msg_type_name(m->type));
    s_invalid(c, s, s->name, why);
    return false;
}

/* sa.adv under the model of the round: signed with the identity key of the
 * certificate the agent presented in hello, or plain. */
static int
s_sa_on_adv(coord_t *c, const sess_t *s, const fl_msg_t *m)
{
    if (!c->sa_setup.active)
        return fl_sa_server_on_adv(c->sa, s->sa_idx, m->cpk, m->spk);
    if (!m->has_sig || !s->has_cert)
        return fl_fail(FL_EPROTO, "sa.adv: the active-server model needs a signature (sig) and "
                       "an identity certificate (in hello)");
    return fl_sa_server_on_adv_signed(c->sa, s->sa_idx, m->cpk, m->spk, m->sig, s->cert);
}

/* sa.adv, sa.shr, sa.shares and sa.sig: into the round's state, then maybe
 * on. An exact copy of one already accepted is a retransmission (the agent
 * could not know whether it arrived before a reconnection): ignored. */
static void
s_on_sa(coord_t *c, sess_t *s, const fl_msg_t *m, const uint8_t *data, size_t len)
{
    int rc;
    uint8_t digest[32];
    crypto_generichash_state h;
    unsigned kind = m->type == FL_MSG_SA_ADV   ? 0
                    : m->type == FL_MSG_SA_SHR ? 1
                    : m->type == FL_MSG_SA_SIG ? 3
                                               : 2;
    if (!s_sa_accept(c, s, m))
        return;
    crypto_generichash_init(&h, NULL, 0, sizeof digest);
    if (m->type == FL_MSG_SA_ADV) {
        crypto_generichash_update(&h, m->cpk, sizeof m->cpk);
        crypto_generichash_update(&h, m->spk, sizeof m->spk);
    }
    if (m->has_sig)
        crypto_generichash_update(&h, m->sig, sizeof m->sig);
    if (len > 0)
        crypto_generichash_update(&h, data, len);
    crypto_generichash_final(&h, digest, sizeof digest);
    if (s->sa_seen[kind] && sodium_memcmp(digest, s->sa_seen_digest[kind], 32) == 0) {
        fl_debug("secure aggregation: retransmission ignored", "agent=%s type=%s", s->name,
                 fl_msg_type_name(m->type));
        return;
    }
    if (m->type == FL_MSG_SA_ADV)
        rc = s_sa_on_adv(c, s, m);
    else if (m->type == FL_MSG_SA_SIG)
        rc = fl_sa_server_on_sig(c->sa, s->sa_idx, m->sig);
    else if (m->type == FL_MSG_SA_SHR)
        rc = fl_sa_server_on_shr(c->sa, s->sa_idx, data, len);
    else
        rc = fl_sa_server_on_shares(c->sa, s->sa_idx, data, len);
    if (rc != 0) {
        s_invalid(c, s, s->name, fl_errmsg());
        return;
    }
    s->sa_seen[kind] = true;
    memcpy(s->sa_seen_digest[kind], digest, 32);
    fl_debug("secure aggregation message", "agent=%s type=%s", s->name,
             fl_msg_type_name(m->type));
    s_sa_progress(c, fl_now_ms());
}

static void
s_on_hello(coord_t *c, sess_t *s, const fl_msg_t *m)
{
    fl_msg_t r;
    s->hello = true;
    s->n_train = m->n_train;
    s->n_test = m->n_test;
    snprintf(s->version, sizeof s->version, "%s", m->version);
    s->has_cert = m->has_cert;
    memcpy(s->cert, m->cert, sizeof s->cert);
    s_cert_check(c, s);
    if (c->secagg && c->cfg.sa_active && !s->cert_ok)
        fl_warn("agent has no valid identity certificate: it is not selected while "
                "secagg.identity_ca is set",
                "agent=%s cert=%s hint=\"%s\"", s->name, s->has_cert ? "invalid" : "none",
                s->has_cert ? "not signed by the identity CA, or not for this agent's key"
                            : "covey-agent run --identity-cert FILE");
    if (fl_store_agent_seen(c->store, s->id, fl_wall_ms(), m->version, (int64_t)m->n_train,
                            (int64_t)m->n_test) != 0)
        fl_warn("cannot record agent contact", "agent=%s reason=\"%s\"", s->name, fl_errmsg());
    fl_info("agent connected", "agent=%s version=%s n_train=%llu n_test=%llu online=%zu",
            s->name, m->version, (unsigned long long)m->n_train, (unsigned long long)m->n_test,
            s_count_online(c));
    fl_msg_init(&r, FL_MSG_WELCOME);
    snprintf(r.federation, sizeof r.federation, "%s", c->cfg.name);
    r.round = (uint64_t)c->round;
    s_send(c, s, &r, NULL, 0);
    /* An agent that reconnects in the middle of its task is asked again. */
    if (c->phase == PH_TRAIN && s->role == R_SELECTED) {
        s_fill_task(c, &r, FL_MSG_TRAIN,
                    (uint64_t)((c->deadline_ms - fl_now_ms()) / 1000 > 0
                                   ? (c->deadline_ms - fl_now_ms()) / 1000
                                   : 1));
        s_sa_fill(c, s, &r);
        s_send(c, s, &r, NULL, 0);
    }
    s_sa_resend(c, s);
}

static void
s_handle_agent_msg(coord_t *c)
{
    fl_net_msg_t nm;
    fl_msg_t m;
    int rc = fl_net_recv(c->sock, true, &nm, ZMQ_DONTWAIT);
    if (rc == FL_ETIMEOUT)
        return;
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", fl_errmsg());
        sess_t *s = rc == FL_EPROTO && nm.user_id[0] && nm.rid_len
                        ? s_sess_for(c, nm.user_id, nm.routing_id, nm.rid_len)
                        : NULL;
        if (s) {
            s_invalid(c, s, s->name, why); /* counted, logged and answered */
        } else {
            c->invalid++;
            fl_warn("malformed transport message dropped", "reason=\"%s\"", why);
        }
        return;
    }
    sess_t *s = s_sess_for(c, nm.user_id, nm.routing_id, nm.rid_len);
    if (!s) {
        c->invalid++;
        fl_net_msg_close(&nm);
        return;
    }
    rc = fl_msg_decode(zmq_msg_data(&nm.hdr), zmq_msg_size(&nm.hdr), &m);
    if (rc != 0) {
        s_invalid(c, s, s->name, fl_errmsg());
        fl_net_msg_close(&nm);
        return;
    }
    bool wants_data = fl_msg_has_data(m.type);
    if (wants_data != nm.has_data) {
        char why[96];
        snprintf(why, sizeof why, wants_data ? "%s without its data frame"
                                             : "%s: unexpected data frame",
                 fl_msg_type_name(m.type));
        s_invalid(c, s, s->name, why);
        fl_net_msg_close(&nm);
        return;
    }
    if (wants_data && m.type != FL_MSG_UPD &&
        fl_msg_check_data(&m, zmq_msg_size(&nm.data)) != 0) {
        s_invalid(c, s, s->name, fl_errmsg());
        fl_net_msg_close(&nm);
        return;
    }
    if (!s->hello && m.type != FL_MSG_HELLO) {
        s_invalid(c, s, s->name, "send hello first");
        fl_net_msg_close(&nm);
        return;
    }
    switch (m.type) {
    case FL_MSG_HELLO: s_on_hello(c, s, &m); break;
    case FL_MSG_PING: break;
    case FL_MSG_GET: s_on_get(c, s, &m); break;
    case FL_MSG_READY: s_on_ready(c, s, &m); break;
    case FL_MSG_UPD:
        s_on_upd(c, s, &m, zmq_msg_data(&nm.data), zmq_msg_size(&nm.data));
        break;
    case FL_MSG_EVALD: s_on_evald(c, s, &m); break;
    case FL_MSG_FAIL: s_on_fail(c, s, &m); break;
    case FL_MSG_SA_ADV:
    case FL_MSG_SA_SHR:
    case FL_MSG_SA_SHARES:
    case FL_MSG_SA_SIG:
        s_on_sa(c, s, &m, nm.has_data ? zmq_msg_data(&nm.data) : NULL,
                nm.has_data ? zmq_msg_size(&nm.data) : 0);
        break;
    default: {
        char why[96];
        snprintf(why, sizeof why, "message type '%s' is not accepted from agents",
                 fl_msg_type_name(m.type));
        s_invalid(c, s, s->name, why);
    }
    }
    fl_net_msg_close(&nm);
}

/* ------------------------------------------------------------ admin socket */

static void
s_live(coord_t *c, status_live_t *l)
{
    memset(l, 0, sizeof *l);
    l->pid = (int64_t)getpid();
    l->started_ms = c->started_ms;
    l->phase = s_phase_names[c->phase];
    l->round = c->phase == PH_EVAL ? c->eval_round : c->round;
    l->attempt = c->attempt;
    l->expected = c->phase == PH_TRAIN || c->phase == PH_EVAL ? c->expected : 0;
    l->received = c->received;
    l->rejected = c->rejected;
    l->dropped = c->dropped;
    l->deadline_ms = c->phase == PH_TRAIN || c->phase == PH_EVAL ? c->deadline_wall_ms : 0;
    l->online = (int64_t)s_count_online(c);
    l->invalid_messages = c->invalid;
    l->stop_reason = c->stop_reason;
    if (c->sa) {
        l->sa_phase = fl_sa_phase_name(fl_sa_server_phase(c->sa));
        l->sa_k = c->sa_setup.k;
        l->sa_t = c->sa_setup.t;
        l->sa_full = c->sa_setup.full;
        l->sa_active = c->sa_setup.active;
        for (unsigned i = 0; i < 6; i++)
            l->sa_counts[i] = (int64_t)fl_sa_server_count(c->sa, i);
    }
    l->is_online = s_is_online_cb;
    l->arg = c;
}

/*
 * Revoke an agent on an operator's request: the key is refused from the next
 * message on (and by ZAP at the next handshake); audited with the caller.
 */
static json_t *
s_admin_revoke(coord_t *c, const char *actor, const char *name)
{
    fl_agent_row_t row;
    int rc;
    if (!name)
        return json_pack("{s:s}", "error", "revoke needs \"name\"");
    if ((rc = fl_store_begin(c->store)) == 0 &&
        (rc = fl_store_agent_get_by_name(c->store, name, &row)) == 0 &&
        (rc = fl_store_agent_set_status(c->store, name, "revoked")) == 0 &&
        (rc = coord_audit(c->store, actor, "agent.revoke", "name=%s key=%s", name, row.pubkey)) ==
            0)
        rc = fl_store_commit(c->store);
    if (rc != 0) {
        json_t *e = json_pack("{s:s}", "error", fl_errmsg());
        fl_store_rollback(c->store);
        return e;
    }
    sess_t *s = s_sess_by_key(c, row.pubkey);
    if (s)
        s->rid_len = 0; /* offline at once */
    fl_info("agent revoked", "agent=%s by=%s", name, actor);
    return json_pack("{s:s, s:s}", "revoked", name, "by", actor);
}

/*
 * One request on an admin socket: the local one (ipc, mode 0600: whoever can
 * open it is this machine's operator) or the remote one (CURVE; the caller's
 * key is an admin key, checked on every request, with its role). Requests
 * are JSON {"cmd": "status"|"agents"|"revoke", ...}; replies are JSON.
 * Viewers may read (status, agents); operators may also revoke. Remote
 * requests, and every change, are audited with the caller.
 */
static void
s_handle_admin(coord_t *c, void *sock, bool remote)
{
    zmq_msg_t frames[8];
    int n = 0, more = 1;
    char actor[96] = "local:admin-socket", role[16] = "operator";
    while (more && n < 8) {
        zmq_msg_init(&frames[n]);
        if (zmq_msg_recv(&frames[n], sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frames[n]);
            break;
        }
        more = zmq_msg_more(&frames[n]);
        n++;
    }
    while (more) { /* drain an oversized envelope */
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, sock, ZMQ_DONTWAIT) < 0)
            more = 0;
        else
            more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    if (n < 2)
        goto out;
    json_t *reply = NULL, *req = NULL;
    if (remote) {
        fl_admin_row_t adm;
        const char *key = zmq_msg_gets(&frames[n - 1], "User-Id");
        if (!key || fl_store_admin_get_by_key(c->store, key, &adm) != 0 || adm.revoked) {
            c->invalid++;
            fl_warn("admin request from a key that is not an active admin", "key=%s",
                    key ? key : "?");
            reply = json_pack("{s:s}", "error", "permission denied: not an active admin key");
            goto answer;
        }
        snprintf(actor, sizeof actor, "admin:%s", adm.name);
        snprintf(role, sizeof role, "%s", adm.role);
    }
    json_error_t jerr;
    req = json_loadb(zmq_msg_data(&frames[n - 1]), zmq_msg_size(&frames[n - 1]), 0, &jerr);
    const char *cmd = req ? json_string_value(json_object_get(req, "cmd")) : NULL;
    status_live_t live;
    s_live(c, &live);
    if (remote)
        (void)coord_audit(c->store, actor, "admin.command", "cmd=%s role=%s",
                          cmd ? cmd : "(invalid)", role);
    if (!cmd) {
        reply = json_pack("{s:s}", "error", "expected a JSON object with a \"cmd\" string");
    } else if (strcmp(cmd, "status") == 0) {
        json_int_t hist = json_integer_value(json_object_get(req, "history"));
        reply = status_build(c->store, &c->cfg, &live, hist);
    } else if (strcmp(cmd, "agents") == 0) {
        reply = status_agents(c->store, &live);
    } else if (strcmp(cmd, "revoke") == 0) {
        if (strcmp(role, "operator") != 0) {
            (void)coord_audit(c->store, actor, "admin.denied", "cmd=revoke role=%s", role);
            fl_warn("admin request denied", "by=%s role=%s cmd=revoke", actor, role);
            reply = json_pack("{s:s}", "error", "permission denied: a viewer may not revoke");
        } else {
            reply = s_admin_revoke(c, actor, json_string_value(json_object_get(req, "name")));
        }
    } else {
        reply = json_pack("{s:s}", "error", "unknown command");
    }
answer:
    if (!reply)
        reply = json_pack("{s:s}", "error", fl_errmsg());
    char *body = json_dumps(reply, JSON_COMPACT);
    for (int i = 0; i < n - 1; i++)
        zmq_send(sock, zmq_msg_data(&frames[i]), zmq_msg_size(&frames[i]),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, body, strlen(body), ZMQ_DONTWAIT);
    free(body);
    json_decref(reply);
    json_decref(req);
out:
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
}

/* ------------------------------------------------------------------ timers */

static void
s_tick(coord_t *c)
{
    int64_t now = fl_now_ms();
    s_xfer_pump(c);
    if (c->phase == PH_TRAIN) {
        /* silent agents drop out; a stalled transfer is dropped */
        for (size_t i = 0; i < c->n_sess; i++) {
            sess_t *s = &c->sess[i];
            bool pending = s->role == R_SELECTED || s->role == R_READY || s->role == R_PULLING;
            if (pending && !s_online(c, s)) {
                if (s->role == R_PULLING)
                    s_pull_cancel(c);
                s->role = R_DROPPED;
                c->dropped++;
                s_record_agent(c, s, "dropped", "went silent");
                fl_warn("agent dropped out of the round", "round=%lld agent=%s",
                        (long long)c->round, s->name);
            }
        }
        if (c->pulling >= 0 && now - c->pull_last_ms > PULL_STALL_MS) {
            sess_t *s = &c->sess[c->pulling];
            s_pull_cancel(c);
            s->role = R_DROPPED;
            c->dropped++;
            s_record_agent(c, s, "dropped", "update transfer stalled");
        }
        s_pull_next_ready(c);
        size_t pending = 0;
        for (size_t i = 0; i < c->n_sess; i++) {
            role_t r = c->sess[i].role;
            pending += r == R_SELECTED || r == R_READY || r == R_PULLING;
        }
        if (c->sa) {
            s_sa_progress(c, now);
        } else if (pending == 0 || now >= c->deadline_ms) {
            if (pending)
                fl_warn("round deadline passed", "round=%lld pending=%zu", (long long)c->round,
                        pending);
            if (s_finish_attempt(c) != 0)
                s_stop = 2;
        }
    } else if (c->phase == PH_EVAL) {
        size_t pending = 0;
        for (size_t i = 0; i < c->n_sess; i++) {
            sess_t *s = &c->sess[i];
            if (s->role == R_EVAL_ASKED && !s_online(c, s)) {
                s->role = R_DROPPED;
                c->dropped++;
            }
            pending += s->role == R_EVAL_ASKED;
        }
        if (pending == 0 || now >= c->deadline_ms)
            s_finish_eval(c);
    }
    if (c->phase == PH_WAITING)
        s_maybe_start_round(c);
}

/* ---------------------------------------------------------- start and stop */

static int
s_zap_check(const char *domain, const char *key, void *arg)
{
    coord_t *c = arg;
    int64_t id;
    if (strcmp(domain, ZAP_DOMAIN_ENROLL) == 0)
        return 1; /* anyone may knock; only a valid join token gets further */
    if (strcmp(domain, ZAP_DOMAIN_ADMIN) == 0) {
        char role[16];
        return fl_store_admin_key_active(c->zap_store, key, role) == 1;
    }
    if (strcmp(domain, ZAP_DOMAIN) != 0)
        return 0;
    return fl_store_agent_key_active(c->zap_store, key, &id) == 1;
}

/* Load the last committed checkpoint and work out where the rounds resume. */
static int
s_resume(coord_t *c)
{
    fl_checkpoint_info_t info;
    uint8_t *model = NULL, *state = NULL;
    size_t model_len = 0, state_len = 0;
    fl_round_row_t last;
    int rc = coord_checkpoint_open(c->store, c->dk, c->fedid, -1, &info, &model, &model_len,
                                   &state, &state_len);
    if (rc == FL_ENOTFOUND)
        return fl_fail(rc, "no checkpoint to start from (%s); run covey-coordinator init",
                       fl_errmsg());
    if (rc != 0)
        return rc;
    rc = coord_model_from_bytes(c->cfg.spec, model, model_len, &c->global);
    if (rc == 0)
        c->gref = s_pub_new(c->global);
    if (rc == 0 && state_len > 0)
        rc = fl_sopt_state_import(c->sopt, state, state_len);
    free(model);
    free(state);
    if (rc != 0)
        return rc;
    coord_model_digest(c->global, c->digest);
    if (sodium_memcmp(c->digest, info.digest, 32) != 0)
        return fl_fail(FL_ECRYPTO, "checkpoint of round %lld does not match its digest",
                       (long long)info.round);
    c->model_bytes = fl_params_numel(c->global) * sizeof(float);
    c->rounds_done = info.round;
    c->round = info.round + 1;
    c->attempt = 1;
    if (fl_store_round_latest(c->store, &last) == 0 && last.round == c->round) {
        c->attempt = last.attempt + 1;
        if (strcmp(last.phase, "failed") != 0) {
            snprintf(last.outcome, sizeof last.outcome, "interrupted: coordinator restarted");
            snprintf(last.phase, sizeof last.phase, "failed");
            last.ended_ms = fl_wall_ms();
            if (fl_store_round_put(c->store, &last) != 0)
                return fl_fail(FL_EDB, "cannot close the interrupted round: %s", fl_errmsg());
            fl_warn("round interrupted by a restart will be retried", "round=%lld attempt=%lld",
                    (long long)last.round, (long long)c->attempt);
        }
    }
    return 0;
}

static int
s_setup(coord_t *c, const coord_run_opts_t *opts)
{
    fl_sopt_config_t sc;
    fl_sopt_kind_t sk;
    fl_net_opts_t no;
    fl_loglevel_t lv;
    int rc;

    c->pulling = -1;
    c->started_ms = fl_wall_ms();
    c->exit_when_done = opts->exit_when_done;
    if ((rc = coord_paths(opts->state_dir, &c->paths)) != 0 ||
        (rc = coord_config_load(c->paths.config, &c->cfg)) != 0)
        return rc;
    if (fl_log_parse_level(opts->log_level ? opts->log_level : c->cfg.log_level, &lv) == 0)
        fl_log_set_level(lv);
    if ((rc = fl_keypair_load(c->paths.key, &c->kp)) != 0)
        return rc;
    if ((rc = fl_datakey_load(c->paths.data_key, &c->dk)) != 0 ||
        (rc = fl_signkey_load(c->paths.sign_key, &c->sk)) != 0)
        return rc;
    if ((rc = fl_store_open(c->paths.db, FL_STORE_RW, &c->store)) != 0 ||
        (rc = fl_store_open(c->paths.db, FL_STORE_READONLY, &c->zap_store)) != 0 ||
        (rc = coord_federation_id(c->store, c->fedid)) != 0)
        return rc;

    if (fl_sopt_parse_kind(c->cfg.server_optimizer, &sk) != 0)
        return fl_fail(FL_EINVAL, "server.optimizer: %s", fl_errmsg());
    fl_sopt_config_default(&sc, sk);
    sc.lr = (float)c->cfg.server_lr;
    sc.momentum = (float)c->cfg.server_momentum;
    sc.beta1 = (float)c->cfg.server_beta1;
    sc.beta2 = (float)c->cfg.server_beta2;
    sc.tau = (float)c->cfg.server_tau;
    fl_params_t *layout = NULL;
    if ((rc = fl_model_layout(c->cfg.spec, &layout)) != 0)
        return rc;
    size_t numel = fl_params_numel(layout);
    fl_params_destroy(&layout);
    if ((rc = fl_sopt_new(&sc, numel, &c->sopt)) != 0 || (rc = s_resume(c)) != 0)
        return rc;
    if (!(c->aggr = fl_aggr_new(numel)))
        return FL_ENOMEM;
    fl_robust_config_t rcfg;
    if ((rc = fl_robust_parse(c->cfg.aggregation, &rcfg)) != 0)
        return rc;
    if (rcfg.rule != FL_ROBUST_NONE && !(c->robust = fl_robust_new(&rcfg, numel, FL_ROBUST_MAX_N)))
        return FL_EINVAL;
    c->dp = strcmp(c->cfg.dp, "central") == 0;
    c->adaptive = c->dp && strcmp(c->cfg.adaptive_clipping, "on") == 0;
    c->clip = c->cfg.clip_norm;
    char clip_text[64];
    if (c->adaptive && fl_store_meta_get(c->store, "dp_clip", clip_text, sizeof clip_text) == 0 &&
        fl_parse_double(clip_text, "dp_clip", &c->clip) != 0)
        return fl_fail(FL_EFORMAT, "the stored clipping norm is unreadable: %s", fl_errmsg());
    char *acct_text = NULL;
    if (fl_store_meta_dup(c->store, "dp_accountant", &acct_text) == 0) {
        rc = fl_dp_accountant_load(acct_text, &c->acct);
        free(acct_text);
        if (rc != 0)
            return fl_fail(rc, "the stored privacy accountant is unreadable: %s", fl_errmsg());
    } else {
        c->acct = fl_dp_accountant_new(NULL, 0);
    }
    c->chunk = fl_xmalloc_aligned(FL_CHUNK_MAX);
    c->secagg = strcmp(c->cfg.secagg, "on") == 0;
    if (c->secagg)
        c->sa_out = fl_xmalloc_aligned((numel + 1 + FL_SA_METRICS) * sizeof(float));

    if (!(c->win = fl_window_new(c->cfg.xfer_window)))
        return FL_EIO;
    c->ctx = zmq_ctx_new();
    if ((rc = fl_zap_start(c->ctx, s_zap_check, c, &c->zap)) != 0)
        return rc;
    fl_net_opts_default(&no);
    if ((rc = fl_net_server(c->ctx, c->cfg.endpoint, c->kp, ZAP_DOMAIN, &no, &c->sock)) != 0)
        return rc;
    if (strcmp(c->cfg.enroll_endpoint, "off") != 0 &&
        (rc = fl_net_server(c->ctx, c->cfg.enroll_endpoint, c->kp, ZAP_DOMAIN_ENROLL, &no,
                            &c->enroll)) != 0)
        return rc;
    if (strcmp(c->cfg.admin_endpoint, "off") != 0 &&
        (rc = fl_net_server(c->ctx, c->cfg.admin_endpoint, c->kp, ZAP_DOMAIN_ADMIN, &no,
                            &c->radmin)) != 0)
        return rc;

    /* The admin socket is for this user only: created under umask 077. */
    c->admin = zmq_socket(c->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(c->admin, ZMQ_LINGER, &linger, sizeof linger);
    unlink(c->paths.admin);
    mode_t old = umask(077);
    int brc = zmq_bind(c->admin, c->paths.admin_endpoint);
    umask(old);
    if (brc != 0)
        return fl_fail(FL_EIO, "cannot bind the admin socket %s: %s", c->paths.admin,
                       zmq_strerror(zmq_errno()));
    chmod(c->paths.admin, 0600);
    return 0;
}

static void
s_teardown(coord_t *c)
{
    if (c->admin) {
        zmq_close(c->admin);
        unlink(c->paths.admin);
    }
    if (c->sock)
        zmq_close(c->sock);
    if (c->enroll)
        zmq_close(c->enroll);
    if (c->radmin)
        zmq_close(c->radmin);
    fl_zap_stop(&c->zap);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    fl_store_destroy(&c->zap_store);
    fl_store_destroy(&c->store);
    fl_keypair_destroy(&c->kp);
    fl_datakey_destroy(&c->dk);
    fl_signkey_destroy(&c->sk);
    /* after zmq_ctx_term: every queued chunk has released its reference */
    fl_window_destroy(&c->win);
    if (c->gref)
        s_pub_release(c->gref);
    c->global = NULL;
    fl_aggr_destroy(&c->aggr);
    fl_robust_destroy(&c->robust);
    fl_dp_accountant_destroy(&c->acct);
    fl_sopt_destroy(&c->sopt);
    free(c->chunk);
    free(c->sess);
    fl_sa_server_destroy(&c->sa);
    free(c->sa_sess);
    free(c->sa_out);
}

static void
s_reload_config(coord_t *c)
{
    coord_config_t fresh;
    fl_loglevel_t lv;
    if (coord_config_load(c->paths.config, &fresh) != 0) {
        fl_error("configuration reload refused; keeping the running configuration",
                 "reason=\"%s\"", fl_errmsg());
        return;
    }
    if (strcmp(fresh.spec, c->cfg.spec) != 0 || strcmp(fresh.endpoint, c->cfg.endpoint) != 0 ||
        strcmp(fresh.server_optimizer, c->cfg.server_optimizer) != 0 ||
        strcmp(fresh.aggregation, c->cfg.aggregation) != 0 || strcmp(fresh.dp, c->cfg.dp) != 0 ||
        strcmp(fresh.secagg, c->cfg.secagg) != 0)
        fl_warn("model.spec, federation.endpoint, server.optimizer, server.aggregation, "
                "privacy.dp and secagg.mode take effect at the next start",
                NULL);
    snprintf(fresh.secagg, sizeof fresh.secagg, "%s", c->cfg.secagg);
    snprintf(fresh.spec, sizeof fresh.spec, "%s", c->cfg.spec);
    snprintf(fresh.endpoint, sizeof fresh.endpoint, "%s", c->cfg.endpoint);
    snprintf(fresh.server_optimizer, sizeof fresh.server_optimizer, "%s",
             c->cfg.server_optimizer);
    snprintf(fresh.aggregation, sizeof fresh.aggregation, "%s", c->cfg.aggregation);
    snprintf(fresh.dp, sizeof fresh.dp, "%s", c->cfg.dp);
    c->cfg = fresh;
    for (size_t i = 0; i < c->n_sess; i++) /* secagg.identity_ca may have changed */
        s_cert_check(c, &c->sess[i]);
    fl_window_set_budget(c->win, c->cfg.xfer_window);
    if (fl_log_parse_level(c->cfg.log_level, &lv) == 0)
        fl_log_set_level(lv);
    fl_info("configuration reloaded", "path=%s", c->paths.config);
    (void)coord_audit(c->store, "signal:SIGHUP", "config.reload", "path=%s", c->paths.config);
    if (c->phase == PH_COMPLETE && !s_done_training(c))
        c->phase = PH_WAITING;
}

int
coord_run(const coord_run_opts_t *opts)
{
    coord_t *c = fl_xcalloc(1, sizeof *c);
    struct sigaction sa;
    int exit_code = 1;

    fl_log_set_component("coordinator");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (sodium_init() < 0 || s_setup(c, opts) != 0) {
        fl_error("coordinator cannot start", "reason=\"%s\"", fl_errmsg());
        goto out;
    }
    (void)coord_audit(c->store, "coordinator", "coordinator.start", "pid=%ld round=%lld",
                      (long)getpid(), (long long)c->round);
    char hex[17];
    fl_info("coordinator started",
            "federation=%s endpoint=%s model=%s params=%zu round=%lld checkpoint=%s pid=%ld",
            c->cfg.name, c->cfg.endpoint, c->cfg.spec, fl_params_numel(c->global),
            (long long)c->round, coord_hex(c->digest, 8, hex, sizeof hex), (long)getpid());

    while (!s_stop) {
        /* the optional sockets last; absent ones are not polled */
        /* the credit window's fd: ZeroMQ released a chunk (fl_window.h) */
        zmq_pollitem_t items[5] = {{c->sock, 0, ZMQ_POLLIN, 0},
                                   {c->admin, 0, ZMQ_POLLIN, 0},
                                   {NULL, fl_window_fd(c->win), ZMQ_POLLIN, 0}};
        int ni = 3, ie = -1, ir = -1;
        if (c->enroll) {
            ie = ni;
            items[ni++] = (zmq_pollitem_t){c->enroll, 0, ZMQ_POLLIN, 0};
        }
        if (c->radmin) {
            ir = ni;
            items[ni++] = (zmq_pollitem_t){c->radmin, 0, ZMQ_POLLIN, 0};
        }
        int n = zmq_poll(items, ni, 100);
        if (n < 0 && zmq_errno() != EINTR) {
            fl_error("poll failed", "reason=\"%s\"", zmq_strerror(zmq_errno()));
            break;
        }
        if (s_reload) {
            s_reload = 0;
            s_reload_config(c);
        }
        /* Bounded batches so that timers and the admin socket stay responsive. */
        for (int i = 0; n > 0 && i < 256 && (items[0].revents & ZMQ_POLLIN); i++) {
            int ev = 0;
            size_t evlen = sizeof ev;
            s_handle_agent_msg(c);
            if (zmq_getsockopt(c->sock, ZMQ_EVENTS, &ev, &evlen) != 0 || !(ev & ZMQ_POLLIN))
                break;
        }
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            s_handle_admin(c, c->admin, false);
        if (n > 0 && ie >= 0 && (items[ie].revents & ZMQ_POLLIN))
            enroll_handle(c->enroll, c->store, c->cfg.name, c->cfg.endpoint, &c->invalid);
        if (n > 0 && ir >= 0 && (items[ir].revents & ZMQ_POLLIN))
            s_handle_admin(c, c->radmin, true);
        s_tick(c);
        if (c->exit_when_done && c->phase == PH_COMPLETE)
            break;
    }
    exit_code = s_stop == 2 ? 1 : 0;
    fl_info("coordinator stopping", "rounds_done=%lld invalid_messages=%llu",
            (long long)c->rounds_done, (unsigned long long)c->invalid);
out:
    s_teardown(c);
    free(c);
    return exit_code;
}
