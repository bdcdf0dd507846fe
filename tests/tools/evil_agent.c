/*
 * evil_agent.c — a misbehaving Covey agent for the integration tests
 * (tests/integration/test_badinput.py and test_faults.py).
 *
 * It connects like a real agent (CurveZMQ client, libcovey's fl_keys, fl_net
 * and fl_proto), says hello, pings every 2 s so that it counts as online, and
 * waits to be selected for a round. When its first "train" task arrives it
 * does ONE wrong thing, chosen by --mode, and reports everything it receives
 * on stdout so that the test can assert what the coordinator said:
 *
 *   event NAME value=V      a socket-monitor event (handshake_succeeded,
 *                           handshake_failed_auth, disconnected, ...)
 *   sent WHAT               what it sent (the misbehaviour, and the steps to it)
 *   reply DESCRIPTION       every message from the coordinator (fl_msg_describe)
 *   reply undecodable ...   a message it could not decode (should never happen)
 *   done                    the misbehaviour is over: its reply came, or
 *                           --reply-wait ms passed without one
 *   finished                after --gate FILE appeared: the task was given up
 *                           with "fail", which lets the round close
 *   exit replies=N          on SIGTERM/SIGINT or after --exit-after seconds
 *
 * Every other task (an "eval", a later round, a retried attempt) is declined
 * at once with "fail", so this agent never holds a round up by accident;
 * except in mode "zero", which sends its zero update for every train task.
 * The gate lets a test keep the round open until every misbehaving agent is
 * done (the round closes only when no selected agent is pending), so that,
 * e.g., a duplicate "ready" arrives while the round still runs.
 *
 * Modes (see s_modes): "hello" is well behaved apart from declining tasks;
 * "zero" trains nothing but sends a valid all-zero update of weight --samples
 * in every round (a deterministic participant for reference runs; with
 * --stall-round R it never answers the pulls of the first attempt of round R
 * that it sees, which keeps the coordinator in the middle of a transfer for
 * as long as a test likes); the update modes take
 * part in the round with an invalid update or transfer; the message modes
 * send one malformed or unexpected message during the round.
 *
 * This is test code: it checks what it must to follow the flow and prints
 * the rest; it trusts the coordinator it talks to.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_keys.h"
#include "fl_net.h"
#include "fl_proto.h"
#include "fl_util.h"

#define PING_MS 2000
#define OVERSIZED_BYTES (5u << 20) /* above ZMQ_MAXMSGSIZE (FL_HDR_MAX + 4 MiB) */
#define POISON_VALUE 0.01f         /* the value of every element of a non-zero update */

typedef enum {
    K_BENIGN, /* hello: decline every task */
    K_UPDATE, /* take part in the round, then misbehave in the update or its transfer */
    K_MESSAGE /* send one bad message when the task arrives */
} kind_t;

static const struct {
    const char *name;
    kind_t kind;
    const char *help;
} s_modes[] = {
    {"hello", K_BENIGN, "say hello, print replies, decline every task"},
    {"zero", K_UPDATE, "a valid all-zero update (weight --samples) in every round"},
    {"poison", K_UPDATE, "as zero, but a valid, finite update that pushes the output "
                         "biases towards class 0: model poisoning, for the robust "
                         "aggregation tests"},
    {"dupready", K_UPDATE, "as zero, then announce the same update again after its ack"},
    {"nan", K_UPDATE, "an update holding one NaN"},
    {"inf", K_UPDATE, "an update holding one +Inf"},
    {"nbytes", K_UPDATE, "ready announces model bytes + 4"},
    {"digest", K_UPDATE, "the update's bytes do not match the digest announced in ready"},
    {"stale", K_UPDATE, "ready names attempt + 1 (not the task), then fail"},
    {"updorder", K_UPDATE, "answer the first pull with a chunk 4 bytes further on"},
    {"updsize", K_UPDATE, "answer the first pull with 100 bytes only"},
    {"malformed", K_MESSAGE, "a header that is not valid msgpack (byte 0xc1)"},
    {"truncated", K_MESSAGE, "a valid hello header cut short by 5 bytes"},
    {"oversized", K_MESSAGE, "a 5 MiB data frame, above ZMQ_MAXMSGSIZE"},
    {"frames3", K_MESSAGE, "a ping header followed by two data frames"},
    {"unknowntype", K_MESSAGE, "a header of type 'bogus'"},
    {"version", K_MESSAGE, "a ping of protocol version 2"},
    {"train", K_MESSAGE, "a 'train' (a coordinator-only type) sent back to the coordinator"},
    {"extradata", K_MESSAGE, "a ping with a data frame"},
    {"updnodata", K_MESSAGE, "an 'upd' header without its data frame"},
    {"updunsolicited", K_MESSAGE, "an 'upd' that no pull asked for"},
    {"getunknown", K_MESSAGE, "a 'get' for a model digest the coordinator does not serve"},
    {"getrange", K_MESSAGE, "a 'get' starting at the end of the model"},
    {"evald", K_MESSAGE, "an 'evald' while the round trains"},
    {"nohello", K_MESSAGE, "before its first hello, a 'get' for the model (no hello first)"},
};
#define N_MODES (sizeof s_modes / sizeof s_modes[0])

typedef struct evil {
    const char *coordinator, *server_key, *key_path, *gate;
    size_t mode;
    uint64_t samples;
    int64_t reply_wait_ms, exit_after_ms;
    uint64_t stall_round; /* zero: leave this round's first attempt's pulls unanswered */
    bool stall_set;
    uint64_t stall_attempt;

    void *ctx, *sock, *mon;
    fl_keypair_t *kp;
    char server_pub[FL_KEY_Z85_LEN + 1];
    uint8_t hdr[FL_HDR_MAX];
    bool connected, said_hello;
    int64_t last_ping_ms;
    unsigned replies;

    /* the task we misbehave in (the first train); later tasks are declined */
    bool have_task;
    fl_msg_t task;
    uint8_t *model;   /* downloaded global model (update modes) */
    size_t model_got; /* bytes of it received so far */
    float *update;    /* the update we serve (task.nbytes bytes) */
    fl_msg_t ready;   /* the ready we announced */
    bool sent_ready, sent_dup, first_pull_done;
    int64_t misbehaved_ms; /* 0 until the bad thing was sent */
    bool done, finished;
} evil_t;

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static const char *
s_mode(const evil_t *e)
{
    return s_modes[e->mode].name;
}

static bool
s_is(const evil_t *e, const char *name)
{
    return strcmp(s_mode(e), name) == 0;
}

/* Modes that take part in every round with a valid update. */
static bool
s_every_round(const evil_t *e)
{
    return s_is(e, "zero") || s_is(e, "poison");
}

/* ---------------------------------------------------------------- sending */

/* Send raw frames: header, then optional data frames (all copied). */
static int
s_send_raw(evil_t *e, const void *hdr, size_t hdr_len, const void *const *data,
           const size_t *data_len, size_t n_data)
{
    if (zmq_send(e->sock, hdr, hdr_len, ZMQ_DONTWAIT | (n_data ? ZMQ_SNDMORE : 0)) < 0)
        return fl_fail(FL_EIO, "send header: %s", zmq_strerror(errno));
    for (size_t i = 0; i < n_data; i++)
        if (zmq_send(e->sock, data[i], data_len[i], i + 1 < n_data ? ZMQ_SNDMORE : 0) < 0)
            return fl_fail(FL_EIO, "send data frame %zu: %s", i + 1, zmq_strerror(errno));
    return 0;
}

/* Encode and send a protocol message (and an optional data frame). */
static int
s_send(evil_t *e, const fl_msg_t *m, const void *data, size_t len)
{
    size_t hlen = 0;
    int rc = fl_msg_encode(m, e->hdr, sizeof e->hdr, &hlen);
    if (rc == 0)
        rc = s_send_raw(e, e->hdr, hlen, &data, &len, data ? 1 : 0);
    if (rc != 0)
        printf("send-failed type=%s reason=\"%s\"\n", fl_msg_type_name(m->type), fl_errmsg());
    return rc;
}

static void
s_send_hello(evil_t *e)
{
    fl_msg_t m;
    fl_msg_init(&m, FL_MSG_HELLO);
    snprintf(m.version, sizeof m.version, "evil-0.1");
    m.n_train = e->samples;
    m.n_test = 0;
    if (s_send(e, &m, NULL, 0) == 0) {
        e->said_hello = true;
        printf("sent hello\n");
    }
}

static void
s_send_fail(evil_t *e, const fl_msg_t *task, const char *reason)
{
    fl_msg_t m;
    fl_msg_init(&m, FL_MSG_FAIL);
    m.round = task->round;
    m.attempt = task->attempt;
    snprintf(m.reason, sizeof m.reason, "%s", reason);
    if (s_send(e, &m, NULL, 0) == 0)
        printf("sent fail round=%llu attempt=%llu\n", (unsigned long long)m.round,
               (unsigned long long)m.attempt);
}

static void
s_set_done(evil_t *e)
{
    if (!e->done)
        printf("done\n");
    e->done = true;
}

static void
s_mark_misbehaved(evil_t *e, const char *what)
{
    e->misbehaved_ms = fl_now_ms();
    printf("sent %s\n", what);
}

/* ------------------------------------------------------- message modes */

/* The one bad message of a K_MESSAGE mode. */
static void
s_send_bad_message(evil_t *e)
{
    fl_msg_t m;
    size_t hlen = 0;
    static uint8_t big[OVERSIZED_BYTES];
    static const uint8_t malformed[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 't', 0xc1};
    static const uint8_t unknown[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 't',
                                      0xa5, 'b',  'o', 'g',  'u',  's'};
    static const uint8_t v2ping[] = {0x82, 0xa1, 'v', 0x02, 0xa1, 't', 0xa4, 'p', 'i', 'n', 'g'};
    static const uint8_t ping[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 't', 0xa4, 'p', 'i', 'n', 'g'};
    uint8_t four[4] = {0, 0, 0, 0};
    int rc = 0;

    if (s_is(e, "malformed")) {
        rc = s_send_raw(e, malformed, sizeof malformed, NULL, NULL, 0);
    } else if (s_is(e, "truncated")) {
        fl_msg_init(&m, FL_MSG_HELLO);
        snprintf(m.version, sizeof m.version, "evil-0.1");
        if ((rc = fl_msg_encode(&m, e->hdr, sizeof e->hdr, &hlen)) == 0)
            rc = s_send_raw(e, e->hdr, hlen - 5, NULL, NULL, 0);
    } else if (s_is(e, "oversized")) {
        /* libzmq refuses the frame before Covey sees it and drops the connection */
        const void *d[1] = {big};
        size_t dl[1] = {sizeof big};
        fl_msg_init(&m, FL_MSG_UPD);
        m.round = e->task.round;
        m.attempt = e->task.attempt;
        if ((rc = fl_msg_encode(&m, e->hdr, sizeof e->hdr, &hlen)) == 0)
            rc = s_send_raw(e, e->hdr, hlen, d, dl, 1);
    } else if (s_is(e, "frames3")) {
        const void *d[2] = {four, four};
        size_t dl[2] = {sizeof four, sizeof four};
        rc = s_send_raw(e, ping, sizeof ping, d, dl, 2);
    } else if (s_is(e, "unknowntype")) {
        rc = s_send_raw(e, unknown, sizeof unknown, NULL, NULL, 0);
    } else if (s_is(e, "version")) {
        rc = s_send_raw(e, v2ping, sizeof v2ping, NULL, NULL, 0);
    } else if (s_is(e, "train")) {
        rc = s_send(e, &e->task, NULL, 0); /* the task itself, echoed back */
    } else if (s_is(e, "extradata")) {
        const void *d[1] = {four};
        size_t dl[1] = {sizeof four};
        rc = s_send_raw(e, ping, sizeof ping, d, dl, 1);
    } else if (s_is(e, "updnodata") || s_is(e, "updunsolicited")) {
        fl_msg_init(&m, FL_MSG_UPD);
        m.round = e->task.round;
        m.attempt = e->task.attempt;
        m.offset = 0;
        if ((rc = fl_msg_encode(&m, e->hdr, sizeof e->hdr, &hlen)) == 0) {
            const void *d[1] = {four};
            size_t dl[1] = {sizeof four};
            rc = s_send_raw(e, e->hdr, hlen, d, dl, s_is(e, "updnodata") ? 0 : 1);
        }
    } else if (s_is(e, "getunknown") || s_is(e, "getrange")) {
        fl_msg_init(&m, FL_MSG_GET);
        m.has_digest = true;
        memcpy(m.digest, e->task.digest, 32);
        m.offset = e->task.nbytes;
        m.length = 4;
        if (s_is(e, "getunknown")) {
            memset(m.digest, 0xab, 32);
            m.offset = 0;
        }
        rc = s_send(e, &m, NULL, 0);
    } else if (s_is(e, "evald")) {
        fl_msg_init(&m, FL_MSG_EVALD);
        m.round = e->task.round;
        m.attempt = e->task.attempt;
        m.n_samples = 10;
        m.loss = 0.5;
        m.acc = 0.5;
        rc = s_send(e, &m, NULL, 0);
    }
    if (rc != 0)
        printf("send-failed reason=\"%s\"\n", fl_errmsg());
    s_mark_misbehaved(e, s_mode(e));
}

/* "nohello": the first thing on the connection is a get, not a hello. */
static void
s_send_get_before_hello(evil_t *e)
{
    fl_msg_t m;
    fl_msg_init(&m, FL_MSG_GET);
    m.has_digest = true;
    memset(m.digest, 0xcd, 32);
    m.offset = 0;
    m.length = 4;
    (void)s_send(e, &m, NULL, 0);
    s_mark_misbehaved(e, "get before hello");
}

/* -------------------------------------------------------- update modes */

static void
s_request_model(evil_t *e)
{
    fl_msg_t m;
    size_t len = e->task.nbytes - e->model_got;
    fl_msg_init(&m, FL_MSG_GET);
    m.has_digest = true;
    memcpy(m.digest, e->task.digest, 32);
    m.offset = e->model_got;
    m.length = len > FL_CHUNK_DEFAULT ? FL_CHUNK_DEFAULT : len;
    (void)s_send(e, &m, NULL, 0);
}

/* The model is here: build this mode's update and announce it with "ready". */
static void
s_announce_update(evil_t *e)
{
    size_t n = e->task.nbytes / sizeof(float);
    bool zero = s_is(e, "zero") || s_is(e, "dupready");
    for (size_t i = 0; i < n; i++)
        e->update[i] = zero || s_is(e, "poison") ? 0.0f : POISON_VALUE;
    if (s_is(e, "poison") && n >= 10) {
        /* the last 10 parameters are the output layer's biases (fl_model's
         * layout): push every prediction towards class 0 */
        for (size_t i = n - 10; i < n; i++)
            e->update[i] = i == n - 10 ? 30.0f : -30.0f;
    }
    if (s_is(e, "nan"))
        e->update[n / 2] = NAN;
    if (s_is(e, "inf"))
        e->update[n / 2] = INFINITY;

    fl_msg_t *r = &e->ready;
    fl_msg_init(r, FL_MSG_READY);
    r->round = e->task.round;
    r->attempt = e->task.attempt + (s_is(e, "stale") ? 1 : 0);
    r->n_samples = e->samples;
    r->loss = 0.5;
    r->acc = 0.5;
    r->nbytes = e->task.nbytes + (s_is(e, "nbytes") ? 4 : 0);
    r->has_digest = true;
    crypto_generichash(r->digest, 32, (const uint8_t *)e->update, e->task.nbytes, NULL, 0);
    if (s_is(e, "digest"))
        r->digest[0] ^= 0x01; /* announce bytes other than the ones it will send */
    if (s_send(e, r, NULL, 0) != 0)
        return;
    e->sent_ready = true;
    if (s_is(e, "nbytes") || s_is(e, "stale") || s_is(e, "digest") || s_every_round(e))
        s_mark_misbehaved(e, "ready");
    else
        printf("sent ready\n");
}

static void
s_on_chunk(evil_t *e, const fl_msg_t *m, const uint8_t *data, size_t len)
{
    uint8_t digest[32];
    if (!e->have_task || e->sent_ready || memcmp(m->digest, e->task.digest, 32) != 0 ||
        m->offset != e->model_got || len > e->task.nbytes - e->model_got)
        return;
    memcpy(e->model + e->model_got, data, len);
    e->model_got += len;
    if (e->model_got < e->task.nbytes) {
        s_request_model(e);
        return;
    }
    crypto_generichash(digest, 32, e->model, e->task.nbytes, NULL, 0);
    printf("model received bytes=%zu digest_ok=%d\n", e->model_got,
           memcmp(digest, e->task.digest, 32) == 0);
    s_announce_update(e);
}

static void
s_on_pull(evil_t *e, const fl_msg_t *m)
{
    fl_msg_t u;
    size_t off = m->offset, len = m->length;
    if (!e->sent_ready || m->round != e->ready.round || m->attempt != e->ready.attempt ||
        off > e->task.nbytes || len > e->task.nbytes - off) {
        s_send_fail(e, m, "no such update");
        return;
    }
    if (e->stall_round != 0 && m->round == e->stall_round) {
        if (!e->stall_set) {
            e->stall_set = true;
            e->stall_attempt = m->attempt;
        }
        if (m->attempt == e->stall_attempt) {
            printf("stalled pull round=%llu attempt=%llu\n", (unsigned long long)m->round,
                   (unsigned long long)m->attempt);
            return;
        }
    }
    fl_msg_init(&u, FL_MSG_UPD);
    u.round = m->round;
    u.attempt = m->attempt;
    u.offset = off;
    if (!e->first_pull_done && s_is(e, "updorder") && len > 4) {
        u.offset = off + 4; /* the chunk after the one asked for */
        len -= 4;
    } else if (!e->first_pull_done && s_is(e, "updsize") && len > 100) {
        len = 100; /* fewer bytes than asked for */
    }
    (void)s_send(e, &u, (const uint8_t *)e->update + u.offset, len);
    if (!e->first_pull_done && (s_is(e, "updorder") || s_is(e, "updsize") || s_is(e, "nan") ||
                                s_is(e, "inf")))
        s_mark_misbehaved(e, "upd");
    else
        printf("sent upd offset=%llu bytes=%zu\n", (unsigned long long)u.offset, len);
    e->first_pull_done = true;
}

/* ------------------------------------------------------------- receiving */

/* A task: the first train is the one to misbehave in; any other is declined
 * (mode zero takes every train: a new one replaces the task in hand). */
static void
s_on_task(evil_t *e, const fl_msg_t *m)
{
    if (e->have_task && m->type == FL_MSG_TRAIN && m->round == e->task.round &&
        m->attempt == e->task.attempt)
        return; /* the same task again, after a reconnection */
    bool again = s_every_round(e) && m->type == FL_MSG_TRAIN;
    if ((e->have_task && !again) || m->type != FL_MSG_TRAIN ||
        s_modes[e->mode].kind == K_BENIGN || s_is(e, "nohello")) {
        s_send_fail(e, m, "evil agent: declining");
        return;
    }
    if (e->have_task) { /* zero: start over with the new task */
        free(e->model);
        free(e->update);
        e->model = NULL;
        e->update = NULL;
        e->sent_ready = e->first_pull_done = false;
    }
    e->have_task = true;
    e->task = *m;
    if (s_modes[e->mode].kind == K_MESSAGE) {
        s_send_bad_message(e);
        return;
    }
    if (m->nbytes > ((size_t)1 << 30)) {
        s_send_fail(e, m, "evil agent: model too large for a test");
        e->finished = true;
        s_set_done(e);
        return;
    }
    e->model = fl_xmalloc(m->nbytes);
    e->update = fl_xmalloc_aligned(m->nbytes);
    e->model_got = 0;
    s_request_model(e);
}

static void
s_handle_msg(evil_t *e)
{
    fl_net_msg_t nm;
    fl_msg_t m;
    char desc[1024];
    int rc = fl_net_recv(e->sock, false, &nm, ZMQ_DONTWAIT);
    if (rc == FL_ETIMEOUT)
        return;
    e->replies++;
    if (rc != 0) {
        printf("reply undecodable transport reason=\"%s\"\n", fl_errmsg());
        return;
    }
    if (fl_msg_decode(zmq_msg_data(&nm.hdr), zmq_msg_size(&nm.hdr), &m) != 0) {
        printf("reply undecodable reason=\"%s\"\n", fl_errmsg());
        fl_net_msg_close(&nm);
        return;
    }
    printf("reply %s%s\n", fl_msg_describe(&m, desc, sizeof desc),
           nm.has_data ? " +data" : "");
    bool after = e->misbehaved_ms > 0 && !e->done;
    switch (m.type) {
    case FL_MSG_TRAIN:
    case FL_MSG_EVAL: s_on_task(e, &m); break;
    case FL_MSG_CHUNK:
        if (nm.has_data)
            s_on_chunk(e, &m, zmq_msg_data(&nm.data), zmq_msg_size(&nm.data));
        break;
    case FL_MSG_PULL: s_on_pull(e, &m); break;
    case FL_MSG_ACK:
        if (s_is(e, "dupready") && e->sent_ready && !e->sent_dup) {
            e->sent_dup = true;
            if (s_send(e, &e->ready, NULL, 0) == 0)
                s_mark_misbehaved(e, "duplicate ready");
        } else if (after && s_every_round(e)) {
            s_set_done(e);
        }
        break;
    case FL_MSG_REJECT:
    case FL_MSG_ERROR:
        if (after)
            s_set_done(e);
        break;
    default: break;
    }
    fl_net_msg_close(&nm);
}

static void
s_handle_monitor(evil_t *e)
{
    int ev = 0, val = 0;
    if (fl_net_monitor_read(e->mon, &ev, &val, ZMQ_DONTWAIT) != 0)
        return;
    const char *name = ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED         ? "handshake_succeeded"
                       : ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH      ? "handshake_failed_auth"
                       : ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ? "handshake_failed_no_detail"
                       : ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL  ? "handshake_failed_protocol"
                       : ev == ZMQ_EVENT_DISCONNECTED               ? "disconnected"
                                                                    : "other";
    printf("event %s value=%d\n", name, val);
    if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        e->connected = true;
        if (s_is(e, "nohello") && e->misbehaved_ms == 0)
            s_send_get_before_hello(e);
        else
            s_send_hello(e);
    } else if (ev == ZMQ_EVENT_DISCONNECTED) {
        e->connected = false;
    }
}

static void
s_timers(evil_t *e)
{
    int64_t now = fl_now_ms();
    if (e->connected && now - e->last_ping_ms >= PING_MS) {
        fl_msg_t m;
        fl_msg_init(&m, FL_MSG_PING);
        e->last_ping_ms = now;
        (void)s_send(e, &m, NULL, 0);
    }
    if (e->misbehaved_ms > 0 && !e->done && now - e->misbehaved_ms >= e->reply_wait_ms) {
        printf("no reply within %lld ms\n", (long long)e->reply_wait_ms);
        s_set_done(e);
    }
    /* "nohello" says hello once its reply (or the wait) is over */
    if (s_is(e, "nohello") && e->done && !e->said_hello && e->connected)
        s_send_hello(e);
    if (e->done && !e->finished && (!e->gate || access(e->gate, F_OK) == 0)) {
        e->finished = true;
        /* zero and dupready end received; every other mode gives its task up */
        if (e->have_task && !s_every_round(e) && !s_is(e, "dupready"))
            s_send_fail(e, &e->task, "evil agent: done");
        printf("finished\n");
    }
}

/* --------------------------------------------------------------- startup */

static void
s_usage(FILE *f)
{
    fprintf(f, "usage: evil_agent --coordinator EP --server-key KEY --key FILE --mode MODE\n"
               "                  [--gate FILE] [--samples N] [--reply-wait MS] [--exit-after S]\n"
               "                  [--stall-round R]\n"
               "\n"
               "A misbehaving Covey agent for the integration tests; prints what it receives.\n"
               "\n"
               "  --gate FILE       after the misbehaviour, give the task up once FILE exists\n"
               "  --samples N       n_train in hello and n_samples of the update (default 1000)\n"
               "  --reply-wait MS   how long to wait for the reply to the misbehaviour (5000)\n"
               "  --exit-after S    exit after S seconds (default 600)\n"
               "  --stall-round R   zero: never answer the pulls of round R's first attempt\n"
               "\nModes:\n");
    for (size_t i = 0; i < N_MODES; i++)
        fprintf(f, "  %-15s %s\n", s_modes[i].name, s_modes[i].help);
}

static int
s_parse(int argc, char **argv, evil_t *e)
{
    static const struct option lo[] = {
        {"coordinator", required_argument, NULL, 'c'}, {"server-key", required_argument, NULL, 'k'},
        {"key", required_argument, NULL, 'K'},         {"mode", required_argument, NULL, 'm'},
        {"gate", required_argument, NULL, 'g'},        {"samples", required_argument, NULL, 's'},
        {"reply-wait", required_argument, NULL, 'w'},  {"exit-after", required_argument, NULL, 'x'},
        {"stall-round", required_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *mode = NULL;
    uint64_t wait_ms = 5000, exit_s = 600;
    int c;
    e->samples = 1000;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'c': e->coordinator = optarg; break;
        case 'k': e->server_key = optarg; break;
        case 'K': e->key_path = optarg; break;
        case 'm': mode = optarg; break;
        case 'g': e->gate = optarg; break;
        case 's':
            if (fl_parse_u64(optarg, "--samples", &e->samples) != 0 || e->samples == 0)
                return 2;
            break;
        case 'w':
            if (fl_parse_u64(optarg, "--reply-wait", &wait_ms) != 0 || wait_ms > 3600000)
                return 2;
            break;
        case 'x':
            if (fl_parse_u64(optarg, "--exit-after", &exit_s) != 0 || exit_s > 86400)
                return 2;
            break;
        case 'r':
            if (fl_parse_u64(optarg, "--stall-round", &e->stall_round) != 0)
                return 2;
            break;
        case 'h': s_usage(stdout); return -1;
        default: return 2;
        }
    }
    if (!e->coordinator || !e->server_key || !e->key_path || !mode) {
        s_usage(stderr);
        return 2;
    }
    for (e->mode = 0; e->mode < N_MODES; e->mode++)
        if (strcmp(s_modes[e->mode].name, mode) == 0)
            break;
    if (e->mode == N_MODES) {
        fprintf(stderr, "evil_agent: unknown mode '%s' (try --help)\n", mode);
        return 2;
    }
    e->reply_wait_ms = (int64_t)wait_ms;
    e->exit_after_ms = (int64_t)exit_s * 1000;
    return 0;
}

int
main(int argc, char **argv)
{
    evil_t *e = fl_xcalloc(1, sizeof *e);
    struct sigaction sa;
    int rc, exit_code = 1;

    setvbuf(stdout, NULL, _IOLBF, 0); /* the test reads stdout while we run */
    if ((rc = s_parse(argc, argv, e)) != 0) {
        free(e);
        return rc < 0 ? 0 : rc;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (sodium_init() < 0 || fl_keypair_load(e->key_path, &e->kp) != 0 ||
        fl_key_load_public(e->server_key, e->server_pub) != 0) {
        fprintf(stderr, "evil_agent: %s\n", fl_errmsg());
        goto out;
    }
    e->ctx = zmq_ctx_new();
    if (fl_net_client_monitored(e->ctx, e->coordinator, e->server_pub, e->kp, NULL, &e->sock,
                                &e->mon) != 0) {
        fprintf(stderr, "evil_agent: %s\n", fl_errmsg());
        goto out;
    }
    printf("started mode=%s public_key=%s pid=%ld\n", s_mode(e), fl_keypair_public(e->kp),
           (long)getpid());
    int64_t until = fl_now_ms() + e->exit_after_ms;
    while (!s_stop && fl_now_ms() < until) {
        zmq_pollitem_t items[2] = {{e->sock, 0, ZMQ_POLLIN, 0}, {e->mon, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, 100) < 0)
            continue; /* EINTR: the loop condition sees the signal */
        for (int i = 0; i < 64 && (items[0].revents & ZMQ_POLLIN); i++) {
            int ev = 0;
            size_t evlen = sizeof ev;
            s_handle_msg(e);
            if (zmq_getsockopt(e->sock, ZMQ_EVENTS, &ev, &evlen) != 0 || !(ev & ZMQ_POLLIN))
                break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            s_handle_monitor(e);
        s_timers(e);
    }
    printf("exit replies=%u\n", e->replies);
    exit_code = 0;
out:
    if (e->mon)
        zmq_close(e->mon);
    if (e->sock) {
        (void)zmq_socket_monitor(e->sock, NULL, 0);
        zmq_close(e->sock);
    }
    if (e->ctx)
        zmq_ctx_term(e->ctx);
    fl_keypair_destroy(&e->kp);
    free(e->model);
    free(e->update);
    free(e);
    return exit_code;
}
