/*
 * fl_zap.c — a ZAP handler (RFC 27) in its own thread. See fl_zap.h.
 *
 * The thread owns two sockets: a REP bound at inproc://zeromq.zap.01, where
 * libzmq's sessions send one request per handshake, and a PAIR that
 * fl_zap_stop() writes to when it is time to go. It sleeps in zmq_poll on both;
 * nothing spins. Both sockets are created and bound by fl_zap_start() in the
 * caller's thread, so that a bind failure (a second handler on the same
 * context) is reported to the caller and so that the handler exists before
 * the function returns; pthread_create is the full memory barrier that
 * libzmq asks for when a socket changes threads.
 *
 * Requests come from libzmq itself, but the handler still checks every frame
 * it reads and answers anything odd with 500 rather than trusting it.
 */
#include "fl_zap.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "fl_keys.h"
#include "fl_log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_MAX_FRAMES 8        /* CURVE requests have 7 frames; more are malformed */
#define ZAP_RECENT 16           /* refused keys remembered for log rate-limiting */
#define ZAP_RELOG_MS (60 * 1000) /* log a refused key again after this long */

struct fl_zap {
    void *zap;      /* REP at ZAP_ENDPOINT; the thread's */
    void *pipe_in;  /* PAIR, the thread's end of the stop pipe */
    void *pipe_out; /* PAIR, the caller's end */
    pthread_t thread;
    fl_zap_check_fn check;
    void *arg;
    _Atomic uint64_t admitted, refused;
    struct {
        char key[48]; /* a Z85 key or a mechanism name */
        int64_t at_ms;
    } recent[ZAP_RECENT]; /* the thread's only */
};

/* True when a refusal of `key` should be logged at warn level: the first one,
 * then at most once per ZAP_RELOG_MS, because a refused client reconnects
 * every few seconds for as long as it runs. */
static bool
s_should_warn(fl_zap_t *z, const char *key)
{
    int64_t now = fl_now_ms();
    int victim = 0;
    for (int i = 0; i < ZAP_RECENT; i++) {
        if (z->recent[i].key[0] && strcmp(z->recent[i].key, key) == 0) {
            if (now - z->recent[i].at_ms < ZAP_RELOG_MS)
                return false;
            z->recent[i].at_ms = now;
            return true;
        }
        if (!z->recent[i].key[0] ||
            (z->recent[victim].key[0] && z->recent[i].at_ms < z->recent[victim].at_ms))
            victim = i;
    }
    snprintf(z->recent[victim].key, sizeof z->recent[victim].key, "%s", key);
    z->recent[victim].at_ms = now;
    return true;
}

/* Copy a frame into a NUL-terminated string; false if it does not fit or
 * holds a NUL. */
static bool
s_frame_str(zmq_msg_t *f, char *buf, size_t size)
{
    size_t n = zmq_msg_size(f);
    if (n >= size || memchr(zmq_msg_data(f), 0, n))
        return false;
    memcpy(buf, zmq_msg_data(f), n);
    buf[n] = '\0';
    return true;
}

static bool
s_frame_is(zmq_msg_t *f, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(f) == n && memcmp(zmq_msg_data(f), s, n) == 0;
}

/* Send the six-frame ZAP reply. */
static void
s_reply(fl_zap_t *z, zmq_msg_t *reqid, const char *status, const char *text, const char *user)
{
    const void *rid = reqid ? zmq_msg_data(reqid) : "";
    size_t rid_len = reqid ? zmq_msg_size(reqid) : 0;
    if (zmq_send(z->zap, "1.0", 3, ZMQ_SNDMORE) < 0 ||
        zmq_send(z->zap, rid, rid_len, ZMQ_SNDMORE) < 0 ||
        zmq_send(z->zap, status, strlen(status), ZMQ_SNDMORE) < 0 ||
        zmq_send(z->zap, text, strlen(text), ZMQ_SNDMORE) < 0 ||
        zmq_send(z->zap, user, strlen(user), ZMQ_SNDMORE) < 0 ||
        zmq_send(z->zap, "", 0, 0) < 0)
        fl_error("ZAP reply failed", "error=\"%s\"", zmq_strerror(errno));
}

/* Read one request (all its frames) and answer it. */
static void
s_handle_request(fl_zap_t *z)
{
    zmq_msg_t f[ZAP_MAX_FRAMES];
    int nf = 0, more = 1;
    bool too_many = false;
    char domain[256], address[64], mech[32], key[FL_KEY_Z85_LEN + 1];
    char qdomain[300], qaddr[100], qmech[64];

    /* A REP socket hands over a whole request or nothing; frames beyond the
     * cap are read and dropped so the socket stays in step. */
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_init(&tmp);
        if (zmq_msg_recv(&tmp, z->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&tmp);
            if (nf > 0)
                fl_error("ZAP request cut short", "error=\"%s\"", zmq_strerror(errno));
            goto out;
        }
        more = zmq_msg_more(&tmp);
        if (nf < ZAP_MAX_FRAMES) {
            f[nf++] = tmp;
        } else {
            too_many = true;
            zmq_msg_close(&tmp);
        }
    }

    zmq_msg_t *reqid = nf >= 2 ? &f[1] : NULL;
    if (too_many || nf < 6 || !s_frame_is(&f[0], "1.0") || !s_frame_str(&f[2], domain, sizeof domain) ||
        !s_frame_str(&f[5], mech, sizeof mech)) {
        atomic_fetch_add_explicit(&z->refused, 1, memory_order_relaxed);
        fl_error("ZAP refused a malformed request", "frames=%s%d", too_many ? ">" : "", nf);
        s_reply(z, reqid, "500", "malformed ZAP request", "");
        goto out;
    }
    if (!s_frame_str(&f[3], address, sizeof address))
        snprintf(address, sizeof address, "?");
    fl_log_q(qdomain, sizeof qdomain, domain);
    fl_log_q(qaddr, sizeof qaddr, address);
    fl_log_q(qmech, sizeof qmech, mech);

    if (strcmp(mech, "CURVE") != 0) {
        atomic_fetch_add_explicit(&z->refused, 1, memory_order_relaxed);
        if (s_should_warn(z, mech))
            fl_warn("ZAP refused a client without CURVE", "domain=%s mechanism=%s address=%s",
                    qdomain, qmech, qaddr);
        s_reply(z, reqid, "400", "only CURVE is accepted", "");
        goto out;
    }
    if (nf != 7 || zmq_msg_size(&f[6]) != 32) {
        atomic_fetch_add_explicit(&z->refused, 1, memory_order_relaxed);
        fl_error("ZAP refused a malformed CURVE request", "frames=%d", nf);
        s_reply(z, reqid, "500", "malformed CURVE credentials", "");
        goto out;
    }
    if (!zmq_z85_encode(key, zmq_msg_data(&f[6]), 32)) {
        atomic_fetch_add_explicit(&z->refused, 1, memory_order_relaxed);
        s_reply(z, reqid, "500", "cannot encode the client key", "");
        goto out;
    }
    if (z->check(domain, key, z->arg) == 1) {
        atomic_fetch_add_explicit(&z->admitted, 1, memory_order_relaxed);
        fl_debug("ZAP admitted a client", "domain=%s key=%s address=%s", qdomain, key, qaddr);
        s_reply(z, reqid, "200", "OK", key);
    } else {
        atomic_fetch_add_explicit(&z->refused, 1, memory_order_relaxed);
        /* Public keys are not secret: naming the key is what lets an
         * operator tell a revoked agent from a stranger. */
        if (s_should_warn(z, key))
            fl_warn("ZAP refused a client key", "domain=%s key=%s address=%s", qdomain, key,
                    qaddr);
        else
            fl_debug("ZAP refused a client key", "domain=%s key=%s address=%s", qdomain, key,
                     qaddr);
        s_reply(z, reqid, "400", "key not admitted", "");
    }
out:
    for (int i = 0; i < nf; i++)
        zmq_msg_close(&f[i]);
}

static void *
s_zap_thread(void *self)
{
    fl_zap_t *z = self;
    zmq_pollitem_t items[2] = {{z->pipe_in, 0, ZMQ_POLLIN, 0}, {z->zap, 0, ZMQ_POLLIN, 0}};

    for (;;) {
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            /* ETERM: the context is ending without fl_zap_stop. Leaving
             * unbinds the handler; enforcing servers then refuse everyone. */
            if (errno != ETERM)
                fl_error("ZAP handler stopped", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN)
            break;
        if (items[1].revents & ZMQ_POLLIN)
            s_handle_request(z);
    }
    zmq_close(z->zap);
    zmq_close(z->pipe_in);
    return NULL;
}

static void *
s_socket(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    if (s) {
        int zero = 0;
        (void)zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    }
    return s;
}

int
fl_zap_start(void *zmq_ctx, fl_zap_check_fn check, void *arg, fl_zap_t **out)
{
    fl_zap_t *z = NULL;
    char pipe_ep[64];
    sigset_t all, old;
    int rc = FL_EIO, err;

    if (!zmq_ctx || !check || !out)
        return fl_fail(FL_EINVAL, "fl_zap_start: missing context, check or result");
    z = fl_xcalloc(1, sizeof *z);
    z->check = check;
    z->arg = arg;
    atomic_init(&z->admitted, 0);
    atomic_init(&z->refused, 0);
    if (!(z->zap = s_socket(zmq_ctx, ZMQ_REP)) || !(z->pipe_in = s_socket(zmq_ctx, ZMQ_PAIR)) ||
        !(z->pipe_out = s_socket(zmq_ctx, ZMQ_PAIR))) {
        rc = fl_fail(FL_EIO, "ZAP handler: zmq_socket: %s", zmq_strerror(errno));
        goto out;
    }
    if (zmq_bind(z->zap, ZAP_ENDPOINT) != 0) {
        rc = errno == EADDRINUSE
                 ? fl_fail(FL_EEXIST, "ZAP handler: this context already has one at %s",
                           ZAP_ENDPOINT)
                 : fl_fail(FL_EIO, "ZAP handler: bind %s: %s", ZAP_ENDPOINT, zmq_strerror(errno));
        goto out;
    }
    snprintf(pipe_ep, sizeof pipe_ep, "inproc://fl-zap-stop-%p", (void *)z);
    if (zmq_bind(z->pipe_in, pipe_ep) != 0 || zmq_connect(z->pipe_out, pipe_ep) != 0) {
        rc = fl_fail(FL_EIO, "ZAP handler: stop pipe %s: %s", pipe_ep, zmq_strerror(errno));
        goto out;
    }
    /* The thread takes no signals: the daemon's main thread handles them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&z->thread, NULL, s_zap_thread, z);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        rc = fl_fail(FL_EIO, "ZAP handler: pthread_create: %s", strerror(err));
        goto out;
    }
    *out = z;
    z = NULL;
    rc = 0;
out:
    if (z) {
        if (z->zap)
            zmq_close(z->zap);
        if (z->pipe_in)
            zmq_close(z->pipe_in);
        if (z->pipe_out)
            zmq_close(z->pipe_out);
        free(z);
    }
    return rc;
}

void
fl_zap_stop(fl_zap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_zap_t *z = *self_p;
    /* If this send fails the context is terminating, and the thread leaves
     * on ETERM by itself; either way the join below returns. */
    if (zmq_send(z->pipe_out, "", 0, 0) < 0)
        fl_debug("ZAP stop signal not sent", "error=\"%s\"", zmq_strerror(errno));
    pthread_join(z->thread, NULL);
    zmq_close(z->pipe_out);
    free(z);
    *self_p = NULL;
}

uint64_t
fl_zap_admitted(const fl_zap_t *z)
{
    return atomic_load_explicit(&z->admitted, memory_order_relaxed);
}

uint64_t
fl_zap_refused(const fl_zap_t *z)
{
    return atomic_load_explicit(&z->refused, memory_order_relaxed);
}
