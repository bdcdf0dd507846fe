/*
 * daemon.c — `covey-agent run`, the edge daemon, and `covey-agent keygen`.
 *
 * The main thread owns the DEALER socket to the coordinator (CurveZMQ client)
 * and a monitor of it: on every successful handshake (first connection or a
 * reconnection after an outage) the agent says hello; it pings every few
 * seconds; it pulls the global model in chunks (resuming where it stopped when
 * a transfer stalls or the connection breaks); and it serves its update to the
 * coordinator's pull requests. Training and evaluation run on a worker thread
 * so the connection stays responsive; the two threads hand jobs over an
 * inproc PAIR pipe, and an abort sets a flag the training loop checks per
 * batch. The daemon never exits because the coordinator is away.
 *
 * With secure aggregation (the train message carries a setup) the main
 * thread also runs the client side of SecAgg+ (fl_saclient) while the worker
 * trains: it advertises fresh keys, seals its shares for its neighbours,
 * opens theirs, and once both training and the share exchange are done it
 * serves the masked, quantized update instead of the plain one; at the end
 * it reveals only the shares the coordinator needs to remove the masks.
 */
#include "agent.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_blas.h"
#include "fl_cli.h"
#include "fl_data.h"
#include "fl_dp.h"
#include "fl_identity.h"
#include "fl_keys.h"
#include "fl_log.h"
#include "fl_model.h"
#include "fl_net.h"
#include "fl_partition.h"
#include "fl_proto.h"
#include "fl_saclient.h"
#include "fl_sign.h"
#include "fl_train.h"

#define GET_WINDOW 4            /* model chunks requested ahead */
#define PING_MS 2000
#define HELLO_RETRY_MS 1000
#define DOWNLOAD_STALL_MS 5000  /* re-request from where the transfer stopped */
#define DOWNLOAD_STALL_MAX_MS 30000 /* ... doubling while nothing arrives, up to this */

typedef struct agent_opts {
    const char *coordinator, *server_key, *key, *data, *test_data, *partition, *log_level;
    const char *state, *signing_key, *federation_id, *identity_ca, *identity_cert;
    size_t parts, index, threads;
    uint64_t seed;
} agent_opts_t;

/* A task handed to the worker thread and its result. */
typedef struct job {
    fl_msg_t task;        /* the train or eval message */
    int rc;               /* result code; reason in `reason` */
    char reason[256];
    uint64_t n_samples;
    double loss, acc;
    bool unclipped; /* the update's norm was within the clip bound (or no clipping) */
} job_t;

typedef struct agent {
    agent_opts_t o;
    agent_state_t st;          /* from --state DIR/agent.ini */
    bool verify;               /* models must carry a valid coordinator signature */
    uint8_t sign_pk[32];
    /* the active-server model of secure aggregation (--identity-ca): this
     * agent's identity key and certificate, and the CA its peers' must name */
    fl_identity_t *id;
    uint8_t ca_pk[32], cert[FL_CERT_LEN];
    void *ctx, *sock, *mon, *pipe;
    fl_keypair_t *kp;
    char server_pub[41];
    fl_dataset_t *train, *test;

    /* the global model: complete copy (have) and transfer in progress (dl) */
    uint8_t *mbuf;
    size_t mcap;
    bool have;
    uint8_t have_digest[32];
    bool dl_active;
    uint8_t dl_digest[32];
    size_t dl_total, dl_got, dl_next;
    int64_t dl_last_ms;
    int64_t dl_stall_ms; /* request timeout now: doubles while nothing arrives */
    crypto_generichash_state dl_hash; /* over the chunks received, in order */

    /* the task waiting for its model, and the one on the worker */
    bool pending;
    fl_msg_t pending_task;
    bool busy;
    job_t job;
    atomic_int stop_job;
    pthread_t worker;
    bool worker_started;

    /* worker-owned training state (touched only while busy or after join) */
    fl_model_t *model;
    fl_params_t *global_ref;

    /* the update ready to be pulled (served from `out`: upd, or sa_y) */
    float *upd;
    size_t upd_cap, upd_bytes;
    uint64_t upd_round, upd_attempt;
    bool upd_valid;
    const uint8_t *out;

    /* secure aggregation of the current training task (NULL when off) */
    fl_sa_client_t *sa;
    bool sa_keys_done;  /* sa.shr sent */
    bool sa_mreq_done;  /* shares exchanged: the input can be masked */
    bool sa_trained;    /* the worker's update is in upd, not yet masked */
    bool sa_masked;     /* the masked input is offered (ready sent) */
    /* the last records sent (sa.shr or sa.shares) and their task: sent again
     * when the coordinator repeats its request after a reconnection */
    fl_msg_type_t sa_resp_type;
    uint64_t sa_resp_round, sa_resp_attempt;
    uint8_t *sa_resp;
    size_t sa_resp_len;
    uint32_t *sa_y;     /* the masked input */
    size_t sa_y_cap;

    bool connected, need_hello;
    int64_t refused_backoff_ms, reconnect_at_ms; /* after a refused key */
    int64_t last_hello_ms, last_ping_ms;
    uint8_t hdr[FL_HDR_MAX];
} agent_t;

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_connect(agent_t *a);
static void s_disconnect(agent_t *a);

/* ------------------------------------------------------------ messaging */

static int
s_send(agent_t *a, const fl_msg_t *m, const void *data, size_t len)
{
    size_t hlen = 0;
    int rc = fl_msg_encode(m, a->hdr, sizeof a->hdr, &hlen);
    if (rc != 0) {
        fl_error("cannot encode message", "type=%s reason=\"%s\"", fl_msg_type_name(m->type),
                 fl_errmsg());
        return rc;
    }
    if (!a->sock)
        return fl_fail(FL_ESTATE, "not connected");
    rc = fl_net_send(a->sock, NULL, 0, a->hdr, hlen, data, len, ZMQ_DONTWAIT);
    if (rc != 0)
        fl_debug("send failed", "type=%s reason=\"%s\"", fl_msg_type_name(m->type), fl_errmsg());
    return rc;
}

static void
s_send_hello(agent_t *a)
{
    fl_msg_t m;
    fl_msg_init(&m, FL_MSG_HELLO);
    snprintf(m.version, sizeof m.version, "%s", COVEY_VERSION);
    m.n_train = a->train->n;
    m.n_test = a->test ? a->test->n : 0;
    if (a->have) {
        m.has_digest = true;
        memcpy(m.digest, a->have_digest, 32);
    }
    if (a->id) {
        m.has_cert = true;
        memcpy(m.cert, a->cert, sizeof m.cert);
    }
    a->last_hello_ms = fl_now_ms();
    if (s_send(a, &m, NULL, 0) == 0)
        fl_debug("hello sent", NULL);
}

static void
s_send_fail_ra(agent_t *a, uint64_t round, uint64_t attempt, const char *reason)
{
    fl_msg_t m;
    fl_msg_init(&m, FL_MSG_FAIL);
    m.round = round;
    m.attempt = attempt;
    fl_msg_set_reason(&m, "%s", reason);
    fl_warn("task failed", "round=%llu reason=\"%s\"", (unsigned long long)round, m.reason);
    (void)s_send(a, &m, NULL, 0);
}

static void
s_send_fail(agent_t *a, const fl_msg_t *task, const char *reason)
{
    s_send_fail_ra(a, task->round, task->attempt, reason);
}

/* ------------------------------------------------------------- the worker */

static bool
s_should_stop(void *arg)
{
    agent_t *a = arg;
    return atomic_load(&a->stop_job) != 0;
}

/* Make the worker's model fit the task's spec and batch, and load the global
 * model bytes into it. */
static int
s_prepare_model(agent_t *a, const fl_msg_t *t)
{
    int rc;
    if (!a->model || strcmp(fl_model_spec(a->model), t->spec) != 0 ||
        fl_model_max_batch(a->model) < t->batch) {
        fl_model_destroy(&a->model);
        fl_params_destroy(&a->global_ref);
        if ((rc = fl_model_new(t->spec, t->batch < 256 ? 256 : t->batch, &a->model)) != 0)
            return rc;
        a->global_ref = fl_params_dup(fl_model_params(a->model));
    }
    fl_params_t *p = fl_model_params(a->model);
    if (t->nbytes != fl_params_numel(p) * sizeof(float))
        return fl_fail(FL_EPROTO, "the model has %llu bytes but '%s' needs %zu",
                       (unsigned long long)t->nbytes, t->spec, fl_params_numel(p) * sizeof(float));
    if ((rc = fl_train_check_fit(a->model, a->train)) != 0)
        return rc;
    memcpy(fl_params_data(p), a->mbuf, t->nbytes);
    memcpy(fl_params_data(a->global_ref), a->mbuf, t->nbytes);
    return fl_params_check_finite(p);
}

static void
s_run_job(agent_t *a)
{
    job_t *j = &a->job;
    const fl_msg_t *t = &j->task;
    int rc = s_prepare_model(a, t);
    if (rc == 0 && t->type == FL_MSG_TRAIN) {
        fl_train_config_t cfg;
        fl_train_stats_t st = {0};
        fl_optim_kind_t kind;
        fl_train_config_default(&cfg);
        if ((rc = fl_optim_parse_kind(t->optimizer, &kind)) == 0) {
            fl_optim_config_default(&cfg.optim, kind);
            cfg.epochs = t->epochs;
            cfg.batch = t->batch;
            cfg.seed = t->seed ^ (a->o.seed * 0x9e3779b97f4a7c15ULL);
            cfg.optim.lr = (float)t->lr;
            if (kind == FL_OPTIM_SGD)
                cfg.optim.momentum = (float)t->momentum;
            cfg.optim.weight_decay = (float)t->weight_decay;
            cfg.optim.prox_mu = (float)t->mu;
            cfg.prox_ref = t->mu > 0 ? a->global_ref : NULL;
            cfg.cosine = false; /* a constant local rate each round, as FedAvg assumes */
            cfg.should_stop = s_should_stop;
            cfg.arg = a;
            rc = fl_train_run(a->model, a->train, &cfg, &st);
        }
        if (rc == 0) {
            const float *w = fl_params_data(fl_model_params(a->model));
            const float *g = fl_params_data(a->global_ref);
            size_t n = fl_params_numel(a->global_ref);
            for (size_t i = 0; i < n; i++)
                a->upd[i] = w[i] - g[i];
            /* differential privacy: bound this agent's influence on the sum */
            double norm = 0;
            j->unclipped = true;
            if (t->clip > 0 && (rc = fl_dp_clip(a->upd, n, t->clip, &norm)) == 0) {
                j->unclipped = fl_dp_adaclip_bit(norm, t->clip) > 0;
                if (!j->unclipped)
                    fl_debug("update clipped", "norm=%.4f clip=%.4f", norm, t->clip);
            }
            j->n_samples = a->train->n;
            j->loss = st.loss;
            j->acc = st.accuracy;
        }
    } else if (rc == 0) {
        fl_eval_stats_t ev;
        if (!a->test)
            rc = fl_fail(FL_ESTATE, "this agent has no held-out data (--test-data)");
        else if ((rc = fl_eval_run(a->model, a->test, &ev)) == 0) {
            j->n_samples = ev.samples;
            j->loss = ev.loss;
            j->acc = ev.accuracy;
        }
    }
    j->rc = rc;
    snprintf(j->reason, sizeof j->reason, "%s", rc ? fl_errmsg() : "");
}

static void *
s_worker_main(void *arg)
{
    agent_t *a = arg;
    void *pipe = zmq_socket(a->ctx, ZMQ_PAIR);
    zmq_connect(pipe, "inproc://covey-agent-worker");
    fl_blas_init_default();
    fl_blas_set_threads((int)a->o.threads);
    for (;;) {
        char cmd;
        if (zmq_recv(pipe, &cmd, 1, 0) < 0 || cmd == 'q')
            break;
        s_run_job(a);
        zmq_send(pipe, "d", 1, 0);
    }
    zmq_close(pipe);
    return NULL;
}

/* ---------------------------------------------------- secure aggregation */

static void s_send_ready(agent_t *a, const uint8_t *bytes, size_t nbytes);

/* Whether the secure-aggregation client belongs to (round, attempt). */
static bool
s_sa_mine(const agent_t *a, uint64_t round, uint64_t attempt)
{
    if (!a->sa)
        return false;
    const fl_sa_setup_t *st = fl_sa_client_setup(a->sa);
    return st->round == round && st->attempt == attempt;
}

/* Give up this round's secure aggregation: wipe its secrets, stop training
 * and tell the coordinator why. */
static void
s_sa_abort(agent_t *a, const char *why)
{
    const fl_sa_setup_t *st = fl_sa_client_setup(a->sa);
    uint64_t round = st->round, attempt = st->attempt;
    fl_sa_client_destroy(&a->sa);
    if (a->busy && a->job.task.round == round)
        atomic_store(&a->stop_job, 1);
    if (a->pending && a->pending_task.round == round)
        a->pending = false;
    s_send_fail_ra(a, round, attempt, why);
}

/* sa.adv: this round's public keys. */
static void
s_sa_send_adv(agent_t *a)
{
    const fl_sa_setup_t *st = fl_sa_client_setup(a->sa);
    fl_msg_t adv;
    fl_msg_init(&adv, FL_MSG_SA_ADV);
    adv.round = st->round;
    adv.attempt = st->attempt;
    adv.has_cpk = adv.has_spk = true;
    memcpy(adv.cpk, fl_sa_client_cpk(a->sa), 32);
    memcpy(adv.spk, fl_sa_client_spk(a->sa), 32);
    if (st->active && fl_sa_client_adv_sig(a->sa, adv.sig) == 0)
        adv.has_sig = true;
    (void)s_send(a, &adv, NULL, 0);
}

/* Keep a copy of records just sent, to send them again if asked again. */
static void
s_sa_keep(agent_t *a, fl_msg_type_t type, const fl_msg_t *m, const uint8_t *recs, size_t len)
{
    if (a->sa_resp) {
        sodium_free(a->sa_resp);
        a->sa_resp = NULL;
    }
    a->sa_resp_type = FL_MSG_NONE;
    if (!(a->sa_resp = sodium_malloc(len ? len : 1)))
        return;
    memcpy(a->sa_resp, recs, len);
    a->sa_resp_len = len;
    a->sa_resp_type = type;
    a->sa_resp_round = m->round;
    a->sa_resp_attempt = m->attempt;
}

/* Send an answer: sa.sig carries its signature in a field, the others their
 * records in the data frame. */
static void
s_sa_answer(agent_t *a, fl_msg_type_t type, const fl_msg_t *req, const uint8_t *out, size_t len)
{
    fl_msg_t r;
    fl_msg_init(&r, type);
    r.round = req->round;
    r.attempt = req->attempt;
    if (type == FL_MSG_SA_SIG) {
        r.has_sig = true;
        memcpy(r.sig, out, sizeof r.sig);
        len = 0;
    }
    (void)s_send(a, &r, len ? out : NULL, len);
}

/* A request already answered (sa.keys, sa.chk or sa.unmask, repeated after a
 * reconnection): the same answer again. True if it was one. */
static bool
s_sa_repeat(agent_t *a, const fl_msg_t *m)
{
    fl_msg_type_t answer = m->type == FL_MSG_SA_KEYS     ? FL_MSG_SA_SHR
                           : m->type == FL_MSG_SA_CHK    ? FL_MSG_SA_SIG
                           : m->type == FL_MSG_SA_UNMASK ? FL_MSG_SA_SHARES
                                                         : FL_MSG_NONE;
    if (m->type == FL_MSG_SA_MREQ && s_sa_mine(a, m->round, m->attempt) && a->sa_mreq_done) {
        if (a->sa_masked) /* the masked input is offered: say so again */
            s_send_ready(a, a->out, a->upd_bytes);
        return true;
    }
    if (answer == FL_MSG_NONE || a->sa_resp_type != answer || a->sa_resp_round != m->round ||
        a->sa_resp_attempt != m->attempt)
        return false;
    fl_debug("secure aggregation: answer sent again", "type=%s", fl_msg_type_name(answer));
    s_sa_answer(a, answer, m, a->sa_resp, a->sa_resp_len);
    return true;
}

/* A training task with a secure-aggregation setup: fresh keys for it (kept
 * if the same task comes again after a reconnection), advertised at once.
 * False when the setup is unusable (the task is refused). */
static bool
s_sa_setup(agent_t *a, const fl_msg_t *m)
{
    fl_sa_setup_t st;
    if (s_sa_mine(a, m->round, m->attempt)) {
        if (!a->sa_keys_done)
            s_sa_send_adv(a); /* it may not have arrived before a reconnection */
        return true;
    }
    fl_sa_client_destroy(&a->sa);
    memset(&st, 0, sizeof st);
    st.round = m->round;
    st.attempt = m->attempt;
    st.n = (uint32_t)m->sa_n;
    st.idx = (uint32_t)m->sa_idx;
    st.k = (uint32_t)m->sa_k;
    st.t = (uint32_t)m->sa_t;
    st.full = m->sa_full != 0;
    st.bits = (unsigned)m->sa_bits;
    st.levels = (uint32_t)m->sa_levels;
    st.clip = m->sa_clip;
    st.wmax = m->sa_wmax;
    st.dim = m->sa_dim;
    st.active = m->sa_active != 0;
    memcpy(st.nonce, m->nonce, sizeof st.nonce);
    size_t numel = m->nbytes / sizeof(float);
    bool dim_ok = st.dim == numel + FL_SA_METRICS || st.dim == numel + 1 + FL_SA_METRICS;
    /* an agent given an identity CA takes part only in signed rounds: a
     * coordinator must not be able to switch the protection off */
    const char *model = a->id && !st.active
                            ? "this agent has an identity CA (--identity-ca) and takes part only "
                              "in the active-server model; the coordinator asked for a round "
                              "without signed keys"
                        : !a->id && st.active
                            ? "the coordinator runs the active-server model (signed keys); this "
                              "agent has no identity certificate (--identity-ca, --identity-cert)"
                            : NULL;
    if (!m->has_nonce || !dim_ok || model || fl_sa_client_new(&st, &a->sa) != 0 ||
        (st.active && fl_sa_client_set_identity(a->sa, a->id, a->cert, a->ca_pk) != 0)) {
        char why[400];
        snprintf(why, sizeof why, "secure aggregation setup refused: %s",
                 !m->has_nonce ? "no nonce"
                 : !dim_ok     ? "sa_dim does not match the model"
                 : model       ? model
                               : fl_errmsg());
        fl_sa_client_destroy(&a->sa);
        s_send_fail(a, m, why);
        return false;
    }
    a->sa_keys_done = a->sa_mreq_done = a->sa_trained = a->sa_masked = false;
    fl_info("secure aggregation: keys advertised", "round=%llu index=%u of=%u k=%u t=%u model=%s",
            (unsigned long long)m->round, st.idx, st.n, st.k, st.t,
            st.active ? "active" : "semi-honest");
    s_sa_send_adv(a);
    return true;
}

/* Both training and the share exchange are done: mask and offer the input. */
static void
s_sa_try_ready(agent_t *a)
{
    if (!a->sa || !a->sa_mreq_done || !a->sa_trained)
        return;
    const fl_sa_setup_t *st = fl_sa_client_setup(a->sa);
    const job_t *j = &a->job;
    size_t numel = j->task.nbytes / sizeof(float), saturated = 0;
    size_t words = (size_t)fl_sa_setup_words(st);
    a->sa_trained = false;
    size_t at = numel;
    if (st->dim == numel + 1 + FL_SA_METRICS) /* the adaptive-clipping bit, summed securely */
        a->upd[at++] = (float)(j->unclipped ? st->clip : -st->clip);
    /* the training metrics too: the coordinator learns only their mean */
    double loss = j->loss / FL_SA_LOSS_SCALE;
    a->upd[at++] = (float)(st->clip * (loss < 1.0 ? loss : 1.0));
    a->upd[at] = (float)(st->clip * j->acc);
    if (words * sizeof(uint32_t) > a->sa_y_cap) {
        free(a->sa_y);
        a->sa_y = fl_xmalloc_aligned(words * sizeof(uint32_t));
        a->sa_y_cap = words * sizeof(uint32_t);
    }
    if (fl_sa_client_mask(a->sa, a->upd, (double)j->n_samples, NULL, NULL, a->sa_y,
                          &saturated) != 0) {
        char why[300];
        snprintf(why, sizeof why, "cannot mask the update: %s", fl_errmsg());
        s_sa_abort(a, why);
        return;
    }
    if (saturated > 0)
        fl_warn("update values clipped to the secure-aggregation range", "round=%llu count=%zu "
                "clip=%g", (unsigned long long)st->round, saturated, st->clip);
    a->sa_masked = true;
    s_send_ready(a, (const uint8_t *)a->sa_y, words * sizeof(uint32_t));
}

/* sa.keys, sa.mreq, sa.chk and sa.unmask from the coordinator. */
static void
s_on_sa(agent_t *a, const fl_msg_t *m, const uint8_t *data, size_t len)
{
    const uint8_t *out = NULL;
    size_t out_len = 0;
    uint8_t sig[FL_SIGN_SIG_LEN];
    int rc;
    fl_msg_type_t answer = m->type == FL_MSG_SA_KEYS  ? FL_MSG_SA_SHR
                           : m->type == FL_MSG_SA_CHK ? FL_MSG_SA_SIG
                                                      : FL_MSG_SA_SHARES;
    if (s_sa_repeat(a, m))
        return;
    if (!s_sa_mine(a, m->round, m->attempt)) {
        fl_warn("secure-aggregation message for another round ignored", "type=%s round=%llu",
                fl_msg_type_name(m->type), (unsigned long long)m->round);
        return;
    }
    if (m->type == FL_MSG_SA_KEYS) {
        rc = fl_sa_client_on_keys(a->sa, data, len, &out, &out_len);
    } else if (m->type == FL_MSG_SA_MREQ) {
        rc = fl_sa_client_on_mreq(a->sa, data, len);
    } else if (m->type == FL_MSG_SA_CHK) {
        rc = fl_sa_client_on_chk(a->sa, data, len, sig);
        out = sig;
        out_len = sizeof sig;
    } else {
        rc = fl_sa_client_on_unmask(a->sa, data, len, &out, &out_len);
    }
    if (rc != 0) {
        char why[300];
        snprintf(why, sizeof why, "secure aggregation aborted at %s: %s",
                 fl_msg_type_name(m->type), fl_errmsg());
        s_sa_abort(a, why);
        return;
    }
    fl_debug("secure aggregation step", "type=%s round=%llu", fl_msg_type_name(m->type),
             (unsigned long long)m->round);
    if (m->type == FL_MSG_SA_MREQ) {
        a->sa_mreq_done = true;
        s_sa_try_ready(a);
        return;
    }
    s_sa_answer(a, answer, m, out, out_len);
    s_sa_keep(a, answer, m, out, out_len);
    if (m->type == FL_MSG_SA_KEYS)
        a->sa_keys_done = true;
    if (m->type == FL_MSG_SA_UNMASK) {
        /* this client's part is over: its secrets go */
        fl_info("secure aggregation: unmasking shares sent", "round=%llu",
                (unsigned long long)m->round);
        fl_sa_client_destroy(&a->sa);
    }
}

/* ---------------------------------------------------------- task handling */

static void
s_start_job(agent_t *a, const fl_msg_t *task)
{
    size_t extra = (1 + FL_SA_METRICS) * sizeof(float); /* secure aggregation's coordinates */
    if (task->nbytes + extra > a->upd_cap) {
        free(a->upd);
        a->upd = fl_xmalloc_aligned(task->nbytes + extra);
        a->upd_cap = task->nbytes + extra;
    }
    if (task->type == FL_MSG_TRAIN)
        a->upd_valid = false; /* the buffer is about to be rewritten */
    memset(&a->job, 0, sizeof a->job);
    a->job.task = *task;
    atomic_store(&a->stop_job, 0);
    a->busy = true;
    a->pending = false;
    fl_info(task->type == FL_MSG_TRAIN ? "training" : "evaluating",
            "round=%llu attempt=%llu spec=%s epochs=%llu batch=%llu",
            (unsigned long long)task->round, (unsigned long long)task->attempt, task->spec,
            (unsigned long long)task->epochs, (unsigned long long)task->batch);
    zmq_send(a->pipe, "j", 1, 0);
}

static void
s_request_chunks(agent_t *a)
{
    fl_msg_t m;
    while (a->dl_next < a->dl_total && a->dl_next - a->dl_got < GET_WINDOW * FL_CHUNK_DEFAULT) {
        size_t len = a->dl_total - a->dl_next;
        if (len > FL_CHUNK_DEFAULT)
            len = FL_CHUNK_DEFAULT;
        fl_msg_init(&m, FL_MSG_GET);
        m.has_digest = true;
        memcpy(m.digest, a->dl_digest, 32);
        m.offset = a->dl_next;
        m.length = len;
        if (s_send(a, &m, NULL, 0) != 0)
            break;
        a->dl_next += len;
    }
}

/* Whether the task's model carries a valid signature of the coordinator
 * (always true when models are not verified); if not, the refusal is logged
 * and reported with "fail". */
static bool
s_signature_ok(agent_t *a, const fl_msg_t *t)
{
    /* a training task of round r starts from the model of round r-1 */
    int64_t model_round = (int64_t)t->round - (t->type == FL_MSG_TRAIN ? 1 : 0);
    if (!a->verify || (t->has_sig && fl_verify_model(a->sign_pk, a->o.federation_id, model_round,
                                                     t->spec, t->digest, t->sig) == 0))
        return true;
    char why[256];
    snprintf(why, sizeof why, "refusing to %s: %s", t->type == FL_MSG_TRAIN ? "train" : "evaluate",
             t->has_sig ? fl_errmsg() : "the model carries no signature");
    fl_error("model signature check failed", "round=%llu reason=\"%s\"",
             (unsigned long long)t->round, why);
    s_send_fail(a, t, why);
    return false;
}

/* Start the pending task if its model is here; otherwise fetch (or resume). */
static void
s_advance(agent_t *a)
{
    if (!a->pending || a->busy)
        return;
    const fl_msg_t *t = &a->pending_task;
    if (a->have && sodium_memcmp(a->have_digest, t->digest, 32) == 0) {
        if (!s_signature_ok(a, t)) {
            a->pending = false;
            return;
        }
        s_start_job(a, t);
        return;
    }
    if (a->dl_active && sodium_memcmp(a->dl_digest, t->digest, 32) == 0 &&
        a->dl_total == t->nbytes)
        return; /* already under way (a reconnection resumed it: s_handle_monitor) */
    if (t->nbytes > a->mcap) {
        free(a->mbuf);
        a->mbuf = fl_xmalloc_aligned(t->nbytes);
        a->mcap = t->nbytes;
    }
    a->have = false;
    a->dl_active = true;
    memcpy(a->dl_digest, t->digest, 32);
    a->dl_total = t->nbytes;
    a->dl_got = a->dl_next = 0;
    crypto_generichash_init(&a->dl_hash, NULL, 0, 32);
    a->dl_last_ms = fl_now_ms();
    a->dl_stall_ms = DOWNLOAD_STALL_MS;
    fl_info("downloading the global model", "bytes=%zu", a->dl_total);
    s_request_chunks(a);
}

static void
s_on_task(agent_t *a, const fl_msg_t *m)
{
    if (m->nbytes == 0 || m->nbytes % 4 != 0 || m->nbytes > ((size_t)1 << 34)) {
        s_send_fail(a, m, "model size is not a positive multiple of 4 bytes");
        return;
    }
    /* a model it would refuse: no keys advertised, no download */
    if (m->type == FL_MSG_TRAIN && m->sa_n > 0 && !s_sa_mine(a, m->round, m->attempt) &&
        !s_signature_ok(a, m))
        return;
    if (m->type == FL_MSG_TRAIN && m->sa_n > 0 && !s_sa_setup(a, m))
        return;
    if (m->type == FL_MSG_TRAIN && s_sa_mine(a, m->round, m->attempt) &&
        (a->sa_trained || a->sa_masked)) {
        /* trained already (its input is masked once, never twice) */
        if (a->sa_masked)
            s_send_ready(a, a->out, a->upd_bytes);
        return;
    }
    if (m->type == FL_MSG_TRAIN && m->sa_n == 0)
        fl_sa_client_destroy(&a->sa);
    if (a->busy) {
        if (a->job.task.round == m->round && a->job.task.attempt == m->attempt &&
            a->job.task.type == m->type)
            return; /* the same task again (after a reconnect): keep working */
        atomic_store(&a->stop_job, 1);
    }
    a->pending = true;
    a->pending_task = *m;
    s_advance(a);
}

static void
s_on_chunk(agent_t *a, const fl_msg_t *m, const uint8_t *data, size_t len)
{
    uint8_t digest[32];
    if (!a->dl_active || sodium_memcmp(m->digest, a->dl_digest, 32) != 0 ||
        m->total != a->dl_total)
        return; /* a chunk of a transfer we no longer want */
    size_t want = a->dl_total - a->dl_got < FL_CHUNK_DEFAULT ? a->dl_total - a->dl_got
                                                             : FL_CHUNK_DEFAULT;
    if (m->offset != a->dl_got || len != want) {
        fl_debug("out-of-order chunk ignored", "offset=%llu expected=%zu",
                 (unsigned long long)m->offset, a->dl_got);
        return;
    }
    memcpy(a->mbuf + a->dl_got, data, len);
    /* hashed as it arrives (chunks are accepted only in order), so the
     * transfer needs no second pass over the model at the end */
    crypto_generichash_update(&a->dl_hash, data, len);
    a->dl_got += len;
    a->dl_last_ms = fl_now_ms();
    a->dl_stall_ms = DOWNLOAD_STALL_MS;
    if (a->dl_got < a->dl_total) {
        s_request_chunks(a);
        return;
    }
    a->dl_active = false;
    crypto_generichash_final(&a->dl_hash, digest, 32);
    if (sodium_memcmp(digest, a->dl_digest, 32) != 0) {
        if (a->pending)
            s_send_fail(a, &a->pending_task, "downloaded model does not match its digest");
        a->pending = false;
        return;
    }
    a->have = true;
    memcpy(a->have_digest, digest, 32);
    fl_info("global model received", "bytes=%zu", a->dl_total);
    s_advance(a);
}

static void
s_on_pull(agent_t *a, const fl_msg_t *m)
{
    fl_msg_t r;
    if (!a->upd_valid || !a->out || m->round != a->upd_round || m->attempt != a->upd_attempt ||
        m->offset > a->upd_bytes || m->length > a->upd_bytes - m->offset) {
        fl_warn("pull for an update we do not hold", "round=%llu", (unsigned long long)m->round);
        return;
    }
    fl_msg_init(&r, FL_MSG_UPD);
    r.round = m->round;
    r.attempt = m->attempt;
    r.offset = m->offset;
    (void)s_send(a, &r, a->out + m->offset, m->length);
}

/* Offer `bytes` (the update, or the masked input) to the coordinator's pulls. */
/* A "ready" or "evald" carrying the finished job's task and metrics. */
static void
s_result_msg(const agent_t *a, fl_msg_type_t type, fl_msg_t *m)
{
    const job_t *j = &a->job;
    fl_msg_init(m, type);
    m->round = j->task.round;
    m->attempt = j->task.attempt;
    m->n_samples = j->n_samples;
    m->loss = j->loss;
    m->acc = j->acc;
}

static void
s_send_ready(agent_t *a, const uint8_t *bytes, size_t nbytes)
{
    const job_t *j = &a->job;
    fl_msg_t m;
    s_result_msg(a, FL_MSG_READY, &m);
    m.nbytes = nbytes;
    /* under secure aggregation the clipping bit and the metrics travel inside
     * the masked sum, not here */
    m.unclipped = j->unclipped && !a->sa ? 1 : 0;
    if (a->sa)
        m.loss = m.acc = 0;
    m.has_digest = true;
    crypto_generichash(m.digest, 32, bytes, nbytes, NULL, 0);
    a->out = bytes;
    a->upd_bytes = nbytes;
    a->upd_round = m.round;
    a->upd_attempt = m.attempt;
    a->upd_valid = true;
    fl_info(a->sa ? "masked update ready" : "update ready",
            "round=%llu samples=%llu loss=%.4f accuracy=%.4f", (unsigned long long)m.round,
            (unsigned long long)m.n_samples, j->loss, j->acc);
    (void)s_send(a, &m, NULL, 0);
}

/* The worker finished: report the result. */
static void
s_on_job_done(agent_t *a)
{
    job_t *j = &a->job;
    fl_msg_t m;
    a->busy = false;
    if (j->rc != 0) {
        if (j->rc != FL_ETIMEOUT)
            s_send_fail(a, &j->task, j->reason);
        else
            fl_info("task aborted", "round=%llu", (unsigned long long)j->task.round);
    } else if (j->task.type == FL_MSG_TRAIN && s_sa_mine(a, j->task.round, j->task.attempt)) {
        a->sa_trained = true; /* masked once the shares are exchanged */
        s_sa_try_ready(a);
    } else if (j->task.type == FL_MSG_TRAIN) {
        s_send_ready(a, (const uint8_t *)a->upd, j->task.nbytes);
    } else {
        s_result_msg(a, FL_MSG_EVALD, &m);
        fl_info("evaluation done", "round=%llu samples=%llu loss=%.4f accuracy=%.4f",
                (unsigned long long)m.round, (unsigned long long)m.n_samples, m.loss, m.acc);
        (void)s_send(a, &m, NULL, 0);
    }
    s_advance(a);
}

static void
s_handle_msg(agent_t *a)
{
    fl_net_msg_t nm;
    fl_msg_t m;
    int rc = fl_net_recv(a->sock, false, &nm, ZMQ_DONTWAIT);
    if (rc == FL_ETIMEOUT)
        return;
    if (rc != 0) {
        fl_warn("malformed message from the coordinator dropped", "reason=\"%s\"", fl_errmsg());
        return;
    }
    if (fl_msg_decode(zmq_msg_data(&nm.hdr), zmq_msg_size(&nm.hdr), &m) != 0) {
        fl_warn("invalid message from the coordinator dropped", "reason=\"%s\"", fl_errmsg());
        fl_net_msg_close(&nm);
        return;
    }
    if (fl_msg_has_data(m.type) != nm.has_data ||
        (nm.has_data && m.type != FL_MSG_CHUNK &&
         fl_msg_check_data(&m, zmq_msg_size(&nm.data)) != 0)) {
        fl_warn("message with a missing, unexpected or malformed data frame dropped", "type=%s",
                fl_msg_type_name(m.type));
        fl_net_msg_close(&nm);
        return;
    }
    switch (m.type) {
    case FL_MSG_WELCOME:
        a->need_hello = false;
        fl_info("connected", "federation=%s round=%llu", m.federation,
                (unsigned long long)m.round);
        break;
    case FL_MSG_TRAIN:
    case FL_MSG_EVAL: s_on_task(a, &m); break;
    case FL_MSG_CHUNK: s_on_chunk(a, &m, zmq_msg_data(&nm.data), zmq_msg_size(&nm.data)); break;
    case FL_MSG_PULL: s_on_pull(a, &m); break;
    case FL_MSG_SA_KEYS:
    case FL_MSG_SA_MREQ:
    case FL_MSG_SA_CHK:
    case FL_MSG_SA_UNMASK: s_on_sa(a, &m, zmq_msg_data(&nm.data), zmq_msg_size(&nm.data)); break;
    case FL_MSG_ACK:
        fl_info("update accepted", "round=%llu", (unsigned long long)m.round);
        break;
    case FL_MSG_REJECT:
        fl_warn("coordinator refused our result", "round=%llu reason=\"%s\"",
                (unsigned long long)m.round, m.reason);
        break;
    case FL_MSG_ABORT:
        if (a->busy && a->job.task.round == m.round)
            atomic_store(&a->stop_job, 1);
        if (a->pending && a->pending_task.round == m.round)
            a->pending = false;
        if (s_sa_mine(a, m.round, m.attempt))
            fl_sa_client_destroy(&a->sa);
        fl_info("task cancelled by the coordinator", "round=%llu reason=\"%s\"",
                (unsigned long long)m.round, m.reason);
        break;
    case FL_MSG_ERROR:
        fl_warn("coordinator reported an error", "reason=\"%s\"", m.reason);
        break;
    default:
        fl_warn("unexpected message type from the coordinator", "type=%s",
                fl_msg_type_name(m.type));
    }
    fl_net_msg_close(&nm);
}

/* Connection events from the socket monitor. */
static void
s_handle_monitor(agent_t *a)
{
    int event = 0, value = 0;
    if (fl_net_monitor_read(a->mon, &event, &value, ZMQ_DONTWAIT) != 0)
        return;
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        a->connected = true;
        a->need_hello = true;
        a->refused_backoff_ms = 0;
        s_send_hello(a);
        if (a->dl_active) { /* resume the model transfer on the new connection */
            a->dl_next = a->dl_got;
            a->dl_last_ms = fl_now_ms();
            s_request_chunks(a);
        }
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
        if (a->connected)
            fl_warn("lost the coordinator; reconnecting", "endpoint=%s", a->o.coordinator);
        a->connected = false;
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        /* libzmq never retries a socket whose key was refused: make a new one
         * later, backing off, in case the operator admits the key meanwhile. */
        a->refused_backoff_ms = a->refused_backoff_ms ? a->refused_backoff_ms * 2 : 5000;
        if (a->refused_backoff_ms > 60000)
            a->refused_backoff_ms = 60000;
        a->reconnect_at_ms = fl_now_ms() + a->refused_backoff_ms;
        fl_warn("the coordinator refused this agent's key (is it admitted, or revoked?); "
                "retrying",
                "endpoint=%s public_key=%s status=%d retry_in_s=%lld", a->o.coordinator,
                fl_keypair_public(a->kp), value, (long long)(a->refused_backoff_ms / 1000));
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
               event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        fl_warn("handshake with the coordinator failed (is --server-key the coordinator's "
                "public key?)",
                "endpoint=%s", a->o.coordinator);
    }
}

static void
s_timers(agent_t *a)
{
    int64_t now = fl_now_ms();
    if (a->reconnect_at_ms && now >= a->reconnect_at_ms) {
        a->reconnect_at_ms = 0;
        s_disconnect(a);
        if (s_connect(a) != 0)
            fl_error("cannot reconnect", "reason=\"%s\"", fl_errmsg());
    }
    if (a->connected && a->need_hello && now - a->last_hello_ms >= HELLO_RETRY_MS)
        s_send_hello(a);
    if (a->connected && now - a->last_ping_ms >= PING_MS) {
        fl_msg_t m;
        fl_msg_init(&m, FL_MSG_PING);
        a->last_ping_ms = now;
        (void)s_send(a, &m, NULL, 0);
    }
    /* Nothing arrived for a request timeout: ask again from where it stopped.
     * The coordinator may simply be serving other agents first (its credit
     * window, docs/PROTOCOL.md 4.3), so the timeout doubles while nothing
     * arrives, and only the first re-request of a wait is logged at info. */
    if (a->dl_active && a->connected && now - a->dl_last_ms >= a->dl_stall_ms) {
        if (a->dl_stall_ms == DOWNLOAD_STALL_MS)
            fl_info("model transfer stalled; resuming", "offset=%zu of=%zu", a->dl_got,
                    a->dl_total);
        else
            fl_debug("model transfer still waiting; asking again", "offset=%zu of=%zu wait_ms=%lld",
                     a->dl_got, a->dl_total, (long long)a->dl_stall_ms);
        a->dl_next = a->dl_got;
        a->dl_last_ms = now;
        a->dl_stall_ms = a->dl_stall_ms * 2 < DOWNLOAD_STALL_MAX_MS ? a->dl_stall_ms * 2
                                                                    : DOWNLOAD_STALL_MAX_MS;
        s_request_chunks(a);
    }
}

/* ---------------------------------------------------------- start and stop */

static int
s_load_data(agent_t *a)
{
    fl_part_spec_t spec;
    int rc = fl_dataset_open(a->o.data, true, &a->train);
    if (rc != 0)
        return rc;
    if (a->o.partition && ((rc = fl_part_parse(a->o.partition, &spec)) != 0 ||
                           (rc = fl_partition_dataset(&a->train, &spec, a->o.parts, a->o.index,
                                             a->o.seed)) != 0))
        return rc;
    const char *test = a->o.test_data;
    if (!test && strcmp(a->o.data, "fashion-mnist") == 0)
        test = a->o.data;
    if (test && (rc = fl_dataset_open(test, false, &a->test)) != 0)
        return rc;
    if (a->test && a->o.partition) {
        /* each agent holds a slice of the held-out data too (iid) */
        fl_part_spec_t iid = {.scheme = FL_PART_IID};
        if ((rc = fl_partition_dataset(&a->test, &iid, a->o.parts, a->o.index, a->o.seed)) != 0)
            return rc;
    }
    return 0;
}

static void
s_disconnect(agent_t *a)
{
    if (a->mon)
        zmq_close(a->mon);
    if (a->sock)
        zmq_close(a->sock);
    a->mon = a->sock = NULL;
    a->connected = false;
}

/* A fresh DEALER to the coordinator and its monitor. */
static int
s_connect(agent_t *a)
{
    fl_net_opts_t no;
    int rc;
    fl_net_opts_default(&no);
    if ((rc = fl_net_client_monitored(a->ctx, a->o.coordinator, a->server_pub, a->kp, &no,
                                      &a->sock, &a->mon)) != 0) {
        s_disconnect(a);
        return rc;
    }
    return 0;
}

/*
 * --identity-ca and --identity-cert: the certificate must be the CA's and
 * name this agent's CURVE key and the identity key derived from it (after a
 * key rotation the agent needs a new certificate).
 */
static int
s_load_identity(agent_t *a)
{
    int rc;
    uint8_t curve[32];
    if (!a->o.identity_ca)
        return 0;
    if ((rc = fl_sign_pubkey_load(a->o.identity_ca, a->ca_pk)) != 0 ||
        (rc = fl_cert_load(a->o.identity_cert, a->cert)) != 0)
        return rc;
    if (fl_cert_verify(a->ca_pk, a->cert) != 0)
        return fl_fail(FL_ECRYPTO, "%s: %s", a->o.identity_cert, fl_errmsg());
    if (!zmq_z85_decode(curve, fl_keypair_public(a->kp)) ||
        sodium_memcmp(curve, FL_CERT_CURVE_PK(a->cert), 32) != 0)
        return fl_fail(FL_EINVAL, "%s certifies another CURVE key than %s's (was the key "
                       "rotated? ask the operator for a new certificate: covey-agent identity)",
                       a->o.identity_cert, a->o.key);
    if ((rc = fl_identity_derive(fl_keypair_secret(a->kp), &a->id)) != 0)
        return rc;
    if (sodium_memcmp(fl_identity_public(a->id), FL_CERT_ID_PK(a->cert), 32) != 0)
        return fl_fail(FL_EINVAL, "%s certifies another identity key than %s's", a->o.identity_cert,
                       a->o.key);
    fl_info("identity certificate loaded: secure aggregation runs in the active-server model",
            "identity_ca=%02x%02x%02x%02x..", a->ca_pk[0], a->ca_pk[1], a->ca_pk[2], a->ca_pk[3]);
    return 0;
}

static int
s_setup(agent_t *a)
{
    int rc;
    if (a->o.signing_key) {
        if ((rc = fl_sign_pubkey_load(a->o.signing_key, a->sign_pk)) != 0)
            return rc;
        a->verify = true;
    } else {
        fl_warn("no --signing-key: models from the coordinator are NOT verified (enroll with a "
                "join token, or pass --signing-key and --federation-id)",
                NULL);
    }
    if ((rc = fl_keypair_load(a->o.key, &a->kp)) != 0 ||
        (rc = fl_key_load_public(a->o.server_key, a->server_pub)) != 0 ||
        (rc = s_load_identity(a)) != 0 || (rc = s_load_data(a)) != 0)
        return rc;
    a->ctx = zmq_ctx_new();
    a->pipe = zmq_socket(a->ctx, ZMQ_PAIR);
    zmq_bind(a->pipe, "inproc://covey-agent-worker");
    if (pthread_create(&a->worker, NULL, s_worker_main, a) != 0)
        return fl_fail(FL_EIO, "cannot start the worker thread");
    a->worker_started = true;

    return s_connect(a);
}

static void
s_teardown(agent_t *a)
{
    if (a->worker_started) {
        atomic_store(&a->stop_job, 1);
        if (a->busy) { /* wait for the job to notice the stop flag */
            char d;
            (void)zmq_recv(a->pipe, &d, 1, 0);
        }
        zmq_send(a->pipe, "q", 1, 0);
        pthread_join(a->worker, NULL);
    }
    s_disconnect(a);
    if (a->pipe)
        zmq_close(a->pipe);
    if (a->ctx)
        zmq_ctx_term(a->ctx);
    fl_keypair_destroy(&a->kp);
    fl_identity_destroy(&a->id);
    fl_dataset_destroy(&a->train);
    fl_dataset_destroy(&a->test);
    fl_model_destroy(&a->model);
    fl_params_destroy(&a->global_ref);
    free(a->mbuf);
    free(a->upd);
    fl_sa_client_destroy(&a->sa);
    free(a->sa_y);
    if (a->sa_resp)
        sodium_free(a->sa_resp);
}

static void
s_usage_run(FILE *f)
{
    fprintf(f,
            "usage: covey-agent run --coordinator tcp://HOST:PORT --server-key KEY --key FILE\n"
            "                       [--data SRC] [OPTIONS]\n"
            "\n"
            "Run the agent daemon: connect to the coordinator over CurveZMQ, train on local\n"
            "data when asked and send back the update, evaluate when asked. Reconnects by\n"
            "itself, with backoff, whenever the coordinator is unreachable. Logs to stderr\n"
            "(logfmt); SIGTERM/SIGINT stop it.\n"
            "\n"
            "  --state DIR         read everything below from DIR/agent.ini, written by\n"
            "                      'covey-agent enroll' (flags given here win)\n"
            "  --coordinator EP    the coordinator's agents endpoint, e.g. tcp://10.0.0.5:7700\n"
            "  --server-key KEY    the coordinator's public key: 40 Z85 characters or its\n"
            "                      server.key.pub file\n"
            "  --key FILE          this agent's key pair (from 'covey-agent keygen'; mode 0600)\n"
            "  --signing-key KEY   the coordinator's model-signing public key (hex or its\n"
            "                      signing.key.pub); with it, unsigned or badly signed models\n"
            "                      are refused\n"
            "  --federation-id ID  the federation id the signatures name (with --signing-key)\n"
            "  --identity-ca KEY   the operator's identity CA public key (hex or .pub file):\n"
            "                      secure aggregation then runs only in the active-server\n"
            "                      model, where peers' keys must carry this CA's certificates\n"
            "  --identity-cert F   this agent's certificate from 'covey-coordinator ca sign'\n"
            "                      (with --identity-ca; see 'covey-agent identity')\n"
            "  --data SRC          training data: fashion-mnist, idx:IMAGES,LABELS or a .csv\n"
            "                      (default fashion-mnist)\n"
            "  --test-data SRC     held-out data for federated evaluation (default: the test\n"
            "                      split for fashion-mnist)\n"
            "  --partition SCHEME  use one part of the data only (experiments): iid,\n"
            "                      dirichlet:ALPHA or shards:N, with --parts N --index I\n"
            "  --seed N            partition and shuffling seed (default 1)\n"
            "  --threads N         BLAS threads (default 1)\n"
            "  --log-level LEVEL   debug, info, warn or error (default info)\n"
            "  -h, --help          show this help\n");
}

static int
s_parse_run(int argc, char **argv, agent_opts_t *o, agent_state_t *st)
{
    static const struct option lo[] = {
        {"coordinator", required_argument, NULL, 'c'}, {"server-key", required_argument, NULL, 'k'},
        {"key", required_argument, NULL, 'K'},         {"data", required_argument, NULL, 'd'},
        {"test-data", required_argument, NULL, 't'},   {"partition", required_argument, NULL, 'p'},
        {"parts", required_argument, NULL, 'P'},       {"index", required_argument, NULL, 'i'},
        {"seed", required_argument, NULL, 's'},        {"threads", required_argument, NULL, 'T'},
        {"log-level", required_argument, NULL, 'l'},   {"help", no_argument, NULL, 'h'},
        {"state", required_argument, NULL, 'D'},       {"signing-key", required_argument, NULL, 'g'},
        {"federation-id", required_argument, NULL, 'F'},
        {"identity-ca", required_argument, NULL, 'A'}, {"identity-cert", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0}};
    int c;
    bool parts_set = false, index_set = false, seed_set = false;
    memset(o, 0, sizeof *o);
    o->parts = 1;
    o->threads = 1;
    o->seed = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'c': o->coordinator = optarg; break;
        case 'k': o->server_key = optarg; break;
        case 'K': o->key = optarg; break;
        case 'd': o->data = optarg; break;
        case 't': o->test_data = optarg; break;
        case 'p': o->partition = optarg; break;
        case 'l': o->log_level = optarg; break;
        case 'D': o->state = optarg; break;
        case 'g': o->signing_key = optarg; break;
        case 'F': o->federation_id = optarg; break;
        case 'A': o->identity_ca = optarg; break;
        case 'C': o->identity_cert = optarg; break;
        case 'P':
            rc = fl_cli_size(optarg, "--parts", 1, 1000000, &o->parts);
            parts_set = true;
            break;
        case 'i':
            rc = fl_cli_size(optarg, "--index", 0, 999999, &o->index);
            index_set = true;
            break;
        case 's':
            rc = fl_cli_u64(optarg, "--seed", 0, UINT64_MAX, &o->seed);
            seed_set = true;
            break;
        case 'T': rc = fl_cli_size(optarg, "--threads", 1, 256, &o->threads); break;
        case 'h': s_usage_run(stdout); return -1;
        default: return fl_cli_error("unknown option (try --help)");
        }
        if (rc != 0)
            return 2;
    }
    if (optind < argc)
        return fl_cli_error("unexpected argument '%s' (try --help)", argv[optind]);
    if (o->state) {
        /* what enroll wrote; flags given on the command line win */
        if (agent_state_load(o->state, st) != 0)
            return fl_cli_error("%s", fl_errmsg());
#define S_DEFAULT(field, value)                                                                    \
    if (!o->field && (value)[0])                                                                   \
        o->field = (value);
        S_DEFAULT(coordinator, st->endpoint)
        S_DEFAULT(server_key, st->server_key)
        S_DEFAULT(key, st->key)
        S_DEFAULT(signing_key, st->signing_key)
        S_DEFAULT(federation_id, st->federation_id)
        S_DEFAULT(identity_ca, st->identity_ca)
        S_DEFAULT(identity_cert, st->identity_cert)
        S_DEFAULT(data, st->data)
        S_DEFAULT(test_data, st->test_data)
        S_DEFAULT(partition, st->partition)
#undef S_DEFAULT
        if (!parts_set)
            o->parts = (size_t)st->parts;
        if (!index_set)
            o->index = (size_t)st->index;
        if (!seed_set)
            o->seed = st->seed;
    }
    if (!o->data)
        o->data = "fashion-mnist";
    if (!o->coordinator || !o->server_key || !o->key)
        return fl_cli_error("--coordinator, --server-key and --key (or --state DIR after "
                            "'covey-agent enroll') are required (try --help)");
    if (!o->signing_key != !o->federation_id)
        return fl_cli_error("--signing-key and --federation-id go together");
    if (!o->identity_ca != !o->identity_cert)
        return fl_cli_error("--identity-ca and --identity-cert go together");
    if (o->index >= o->parts)
        return fl_cli_error("--index %zu must be below --parts %zu", o->index, o->parts);
    return 0;
}

int
agent_cmd_run(int argc, char **argv)
{
    agent_t *a = fl_xcalloc(1, sizeof *a);
    struct sigaction sa;
    fl_loglevel_t lv;
    int rc, exit_code = 1;

    fl_cli_set_prog("covey-agent run");
    if ((rc = s_parse_run(argc, argv, &a->o, &a->st)) != 0) {
        free(a);
        return rc < 0 ? 0 : rc;
    }
    if (a->o.log_level) {
        if (fl_log_parse_level(a->o.log_level, &lv) != 0) {
            free(a);
            return fl_cli_error("--log-level: %s", fl_errmsg());
        }
        fl_log_set_level(lv);
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (sodium_init() < 0 || s_setup(a) != 0) {
        fl_error("agent cannot start", "reason=\"%s\"", fl_errmsg());
        goto out;
    }
    fl_info("agent started", "coordinator=%s public_key=%s n_train=%zu n_test=%zu pid=%ld",
            a->o.coordinator, fl_keypair_public(a->kp), a->train->n, a->test ? a->test->n : 0,
            (long)getpid());
    while (!s_stop) {
        /* the pipe first: the sockets are absent while a reconnect is pending */
        zmq_pollitem_t items[3] = {{a->pipe, 0, ZMQ_POLLIN, 0},
                                   {a->sock, 0, ZMQ_POLLIN, 0},
                                   {a->mon, 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, a->sock ? 3 : 1, 200);
        if (n < 0) {
            if (zmq_errno() != EINTR) {
                fl_error("poll failed", "reason=\"%s\"", zmq_strerror(zmq_errno()));
                break;
            }
            continue; /* EINTR: the loop condition sees the signal */
        }
        if (!a->sock && !a->reconnect_at_ms)
            a->reconnect_at_ms = fl_now_ms() + 5000;
        for (int i = 0; i < 64 && a->sock && (items[1].revents & ZMQ_POLLIN); i++) {
            int ev = 0;
            size_t evlen = sizeof ev;
            s_handle_msg(a);
            if (zmq_getsockopt(a->sock, ZMQ_EVENTS, &ev, &evlen) != 0 || !(ev & ZMQ_POLLIN))
                break;
        }
        if (a->mon && (items[2].revents & ZMQ_POLLIN))
            s_handle_monitor(a);
        if (items[0].revents & ZMQ_POLLIN) {
            char d;
            if (zmq_recv(a->pipe, &d, 1, ZMQ_DONTWAIT) == 1)
                s_on_job_done(a);
        }
        s_timers(a);
    }
    fl_info("agent stopping", NULL);
    exit_code = 0;
out:
    s_teardown(a);
    free(a);
    return exit_code;
}

/* ------------------------------------------------------------------ keygen */

int
agent_cmd_keygen(int argc, char **argv)
{
    static const struct option lo[] = {{"out", required_argument, NULL, 'o'},
                                       {"force", no_argument, NULL, 'f'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *out = NULL;
    bool force = false;
    int c, rc;
    fl_cli_set_prog("covey-agent keygen");
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'f': force = true; break;
        case 'h':
            printf("usage: covey-agent keygen --out FILE [--force]\n"
                   "\n"
                   "Make this agent's CURVE key pair on this device: FILE holds the secret key\n"
                   "(mode 0600; it never leaves the device) and FILE.pub the public key, which\n"
                   "the operator admits with 'covey-coordinator agents add NAME KEY'.\n"
                   "\n"
                   "  --out FILE    where to write the key pair\n"
                   "  --force       overwrite an existing FILE\n");
            return 0;
        default: return fl_cli_error("unknown option (try --help)");
        }
    }
    if (!out)
        return fl_cli_error("--out FILE is required (try --help)");
    if (!force && access(out, F_OK) == 0)
        return fl_cli_error("%s exists; refusing to overwrite a key (use --force)", out);
    if (sodium_init() < 0)
        return fl_cli_error("libsodium failed to initialise");
    if (force) { /* fl_keypair_save never overwrites a key: remove the old pair first */
        char pub[PATH_MAX];
        snprintf(pub, sizeof pub, "%s.pub", out);
        unlink(out);
        unlink(pub);
    }
    fl_keypair_t *kp = fl_keypair_generate();
    rc = fl_keypair_save(kp, out);
    if (rc == 0)
        printf("%s\n", fl_keypair_public(kp));
    fl_keypair_destroy(&kp);
    return rc == 0 ? 0 : fl_cli_fail(rc);
}
