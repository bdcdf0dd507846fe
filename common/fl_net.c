/*
 * fl_net.c — CURVE server and client sockets with Covey's options, and
 * whole-message send/receive. See fl_net.h for the contracts and the reasons
 * behind each option.
 */
#include "fl_net.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#if defined(__has_include)
#if __has_include("fl_proto.h")
#include "fl_proto.h"
#endif
#endif

/* The largest frame is a data frame (a model or an update); headers are
 * small msgpack maps bounded by the protocol. */
#ifdef FL_HDR_MAX
#define FL_NET_HDR_MAX ((int64_t)FL_HDR_MAX)
#else
#define FL_NET_HDR_MAX ((int64_t)64 * 1024)
#endif
#define FL_NET_MAX_MSG_DEFAULT (FL_NET_HDR_MAX + (int64_t)4 * 1024 * 1024)

/* A stable libzmq 4.3 option that the headers still list under the draft API
 * (the library accepts it whether or not it was built with drafts). Without
 * it a CURVE server whose context has no ZAP handler admits every client
 * that knows the server's public key. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

/* libzmq stores the heartbeat TTL in deciseconds in 16 bits. */
#define HEARTBEAT_TTL_MAX_MS 6553599

void
fl_net_opts_default(fl_net_opts_t *o)
{
    o->heartbeat_ivl_ms = 2000;
    o->heartbeat_timeout_ms = 6000;
    o->heartbeat_ttl_ms = 6000;
    o->max_msg_size = FL_NET_MAX_MSG_DEFAULT;
    o->sndhwm = 64;
    o->rcvhwm = 64;
    o->reconnect_ivl_ms = 100;
    o->reconnect_ivl_max_ms = 5000;
}

static int
s_check_opts(const fl_net_opts_t *o)
{
    if (o->heartbeat_ivl_ms < 0 || o->heartbeat_timeout_ms < 0 || o->heartbeat_ttl_ms < 0 ||
        o->heartbeat_ttl_ms > HEARTBEAT_TTL_MAX_MS)
        return fl_fail(FL_EINVAL, "net options: heartbeat %d/%d/%d ms out of range",
                       o->heartbeat_ivl_ms, o->heartbeat_timeout_ms, o->heartbeat_ttl_ms);
    if (o->max_msg_size <= 0)
        return fl_fail(FL_EINVAL, "net options: max_msg_size %lld must be positive",
                       (long long)o->max_msg_size);
    if (o->sndhwm < 0 || o->rcvhwm < 0)
        return fl_fail(FL_EINVAL, "net options: negative HWM (%d/%d)", o->sndhwm, o->rcvhwm);
    if (o->reconnect_ivl_ms < 0 || o->reconnect_ivl_max_ms < 0)
        return fl_fail(FL_EINVAL, "net options: negative reconnect interval (%d/%d ms)",
                       o->reconnect_ivl_ms, o->reconnect_ivl_max_ms);
    return 0;
}

static int
s_setopt(void *sock, const char *endpoint, int opt, const char *name, const void *val, size_t len)
{
    if (zmq_setsockopt(sock, opt, val, len) != 0)
        return fl_fail(FL_EIO, "%s: setting %s: %s", endpoint, name, zmq_strerror(errno));
    return 0;
}

static int
s_setint(void *sock, const char *endpoint, int opt, const char *name, int val)
{
    return s_setopt(sock, endpoint, opt, name, &val, sizeof val);
}

#define SETINT(s, ep, opt, v) s_setint((s), (ep), (opt), #opt, (v))

/* The options servers and clients share. */
static int
s_common_opts(void *s, const char *ep, const fl_net_opts_t *o)
{
    int rc;
    if ((rc = SETINT(s, ep, ZMQ_LINGER, 0)) < 0 ||
        (rc = SETINT(s, ep, ZMQ_HEARTBEAT_IVL, o->heartbeat_ivl_ms)) < 0 ||
        (rc = SETINT(s, ep, ZMQ_HEARTBEAT_TIMEOUT, o->heartbeat_timeout_ms)) < 0 ||
        (rc = SETINT(s, ep, ZMQ_HEARTBEAT_TTL, o->heartbeat_ttl_ms)) < 0 ||
        (rc = SETINT(s, ep, ZMQ_SNDHWM, o->sndhwm)) < 0 ||
        (rc = SETINT(s, ep, ZMQ_RCVHWM, o->rcvhwm)) < 0 ||
        (rc = s_setopt(s, ep, ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE", &o->max_msg_size,
                       sizeof o->max_msg_size)) < 0)
        return rc;
    return 0;
}

int
fl_net_server(void *ctx, const char *endpoint, const fl_keypair_t *server_kp,
              const char *zap_domain, const fl_net_opts_t *o, void **sock_out)
{
    fl_net_opts_t def;
    void *s = NULL;
    int rc;

    if (!ctx || !endpoint || !server_kp || !sock_out)
        return fl_fail(FL_EINVAL, "fl_net_server: missing context, endpoint, key or result");
    if (!zap_domain || !*zap_domain)
        return fl_fail(FL_EINVAL, "%s: a CURVE server needs a ZAP domain", endpoint);
    if (!o) {
        fl_net_opts_default(&def);
        o = &def;
    }
    if ((rc = s_check_opts(o)) < 0)
        return rc;
    if (!(s = zmq_socket(ctx, ZMQ_ROUTER)))
        return fl_fail(FL_EIO, "%s: zmq_socket: %s", endpoint, zmq_strerror(errno));
    if ((rc = s_common_opts(s, endpoint, o)) < 0 ||
        (rc = SETINT(s, endpoint, ZMQ_ROUTER_MANDATORY, 1)) < 0 ||
        (rc = SETINT(s, endpoint, ZMQ_CURVE_SERVER, 1)) < 0 ||
        (rc = s_setopt(s, endpoint, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY",
                       fl_keypair_secret(server_kp), FL_KEY_Z85_LEN)) < 0 ||
        (rc = s_setopt(s, endpoint, ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN", zap_domain,
                       strlen(zap_domain))) < 0 ||
        (rc = SETINT(s, endpoint, ZMQ_ZAP_ENFORCE_DOMAIN, 1)) < 0)
        goto out;
    if (zmq_bind(s, endpoint) != 0) {
        rc = fl_fail(FL_EIO, "%s: bind: %s", endpoint, zmq_strerror(errno));
        goto out;
    }
    *sock_out = s;
    s = NULL;
    rc = 0;
out:
    if (s)
        zmq_close(s);
    return rc;
}

int
fl_net_bound_endpoint(void *sock, char *buf, size_t size)
{
    size_t len = size;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, buf, &len) != 0)
        return errno == EINVAL ? fl_fail(FL_ERANGE, "last endpoint: buffer of %zu bytes too small",
                                         size)
                               : fl_fail(FL_EIO, "last endpoint: %s", zmq_strerror(errno));
    return 0;
}

/* A configured CURVE client DEALER, not yet connected (see fl_net_client). */
static int
s_client_socket(void *ctx, const char *endpoint, const char *server_pub_z85,
                const fl_keypair_t *client_kp, const fl_net_opts_t *o, void **sock_out)
{
    fl_net_opts_t def;
    void *s = NULL;
    int rc;

    if (!ctx || !endpoint || !client_kp || !sock_out)
        return fl_fail(FL_EINVAL, "fl_net_client: missing context, endpoint, key or result");
    if (fl_key_check_z85(server_pub_z85) < 0)
        return fl_fail(FL_EINVAL, "%s: server public key: %s", endpoint, fl_errmsg());
    if (!o) {
        fl_net_opts_default(&def);
        o = &def;
    }
    if ((rc = s_check_opts(o)) < 0)
        return rc;
    if (!(s = zmq_socket(ctx, ZMQ_DEALER)))
        return fl_fail(FL_EIO, "%s: zmq_socket: %s", endpoint, zmq_strerror(errno));
    if ((rc = s_common_opts(s, endpoint, o)) < 0 ||
        (rc = SETINT(s, endpoint, ZMQ_IMMEDIATE, 1)) < 0 ||
        (rc = SETINT(s, endpoint, ZMQ_RECONNECT_IVL, o->reconnect_ivl_ms)) < 0 ||
        (rc = SETINT(s, endpoint, ZMQ_RECONNECT_IVL_MAX, o->reconnect_ivl_max_ms)) < 0 ||
        (rc = s_setopt(s, endpoint, ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", server_pub_z85,
                       FL_KEY_Z85_LEN)) < 0 ||
        (rc = s_setopt(s, endpoint, ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY",
                       fl_keypair_public(client_kp), FL_KEY_Z85_LEN)) < 0 ||
        (rc = s_setopt(s, endpoint, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY",
                       fl_keypair_secret(client_kp), FL_KEY_Z85_LEN)) < 0) {
        zmq_close(s);
        return rc;
    }
    *sock_out = s;
    return 0;
}

/* Connect a socket made by s_client_socket; closes it on failure. */
static int
s_client_connect(void *s, const char *endpoint)
{
    if (zmq_connect(s, endpoint) != 0) {
        int rc = fl_fail(FL_EIO, "%s: connect: %s", endpoint, zmq_strerror(errno));
        zmq_close(s);
        return rc;
    }
    return 0;
}

int
fl_net_client(void *ctx, const char *endpoint, const char *server_pub_z85,
              const fl_keypair_t *client_kp, const fl_net_opts_t *o, void **sock_out)
{
    void *s = NULL;
    int rc = s_client_socket(ctx, endpoint, server_pub_z85, client_kp, o, &s);
    if (rc == 0 && (rc = s_client_connect(s, endpoint)) == 0)
        *sock_out = s;
    return rc;
}

int
fl_net_client_monitored(void *ctx, const char *endpoint, const char *server_pub_z85,
                        const fl_keypair_t *client_kp, const fl_net_opts_t *o, void **sock_out,
                        void **mon_out)
{
    void *s = NULL, *mon = NULL;
    int rc = s_client_socket(ctx, endpoint, server_pub_z85, client_kp, o, &s);
    if (rc != 0)
        return rc;
    if (!mon_out) {
        zmq_close(s);
        return fl_fail(FL_EINVAL, "fl_net_client_monitored: missing monitor result");
    }
    if ((rc = fl_net_monitor(ctx, s, &mon)) != 0) {
        zmq_close(s);
        return rc;
    }
    if ((rc = s_client_connect(s, endpoint)) != 0) {
        zmq_close(mon);
        return rc;
    }
    *sock_out = s;
    *mon_out = mon;
    return 0;
}

int
fl_net_monitor(void *ctx, void *sock, void **mon_out)
{
    char ep[64];
    void *mon = NULL;
    int zero = 0;
    const int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                       ZMQ_EVENT_DISCONNECTED;

    /* One monitor per socket, so the socket's address names it uniquely. */
    snprintf(ep, sizeof ep, "inproc://fl-net-monitor-%p", sock);
    if (zmq_socket_monitor(sock, ep, events) != 0)
        return fl_fail(FL_EIO, "monitor %s: %s", ep, zmq_strerror(errno));
    if (!(mon = zmq_socket(ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero) != 0 || zmq_connect(mon, ep) != 0) {
        int rc = fl_fail(FL_EIO, "monitor %s: %s", ep, zmq_strerror(errno));
        if (mon)
            zmq_close(mon);
        (void)zmq_socket_monitor(sock, NULL, 0);
        return rc;
    }
    *mon_out = mon;
    return 0;
}

int
fl_net_monitor_read(void *mon, int *event, int *value, int flags)
{
    zmq_msg_t f;
    uint16_t ev = 0;
    uint32_t val = 0;
    bool ok = false;

    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, mon, flags & ZMQ_DONTWAIT) < 0) {
        int rc = errno == EAGAIN ? fl_fail(FL_ETIMEOUT, "monitor: no event")
                                 : fl_fail(FL_EIO, "monitor: %s", zmq_strerror(errno));
        zmq_msg_close(&f);
        return rc;
    }
    /* Version 1 events: [u16 event, u32 value] [endpoint]. */
    if (zmq_msg_size(&f) == 6) {
        memcpy(&ev, zmq_msg_data(&f), 2);
        memcpy(&val, (const uint8_t *)zmq_msg_data(&f) + 2, 4);
        ok = true;
    }
    int more = zmq_msg_more(&f);
    zmq_msg_close(&f);
    while (more) {
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, mon, 0) < 0) {
            zmq_msg_close(&f);
            if (errno == EINTR)
                continue;
            break;
        }
        more = zmq_msg_more(&f);
        zmq_msg_close(&f);
    }
    if (!ok)
        return fl_fail(FL_EIO, "monitor: malformed event");
    *event = ev;
    *value = (int)val;
    return 0;
}

static int
s_send_error(const char *what)
{
    int err = errno;
    if (err == EAGAIN)
        return fl_fail(FL_ETIMEOUT, "send %s: peer queue full or no connected peer", what);
    if (err == EHOSTUNREACH)
        return fl_fail(FL_ENOTFOUND, "send %s: no peer with this routing id (gone)", what);
    return fl_fail(FL_EIO, "send %s: %s", what, zmq_strerror(err));
}

int
fl_net_send(void *sock, const void *routing_id, size_t rid_len, const void *hdr, size_t hdr_len,
            const void *data, size_t data_len, int flags)
{
    /* Only ZMQ_DONTWAIT is meaningful here: a caller's ZMQ_SNDMORE would
     * glue this message to the next one. */
    flags &= ZMQ_DONTWAIT;
    if (!hdr)
        hdr = ""; /* libzmq refuses NULL even for zero bytes */
    /* libzmq checks the HWM and the peer on the first frame only, and the
     * rest of a message always follows it; so a failure is on the first
     * frame, and nothing has been queued when it is reported. */
    if (routing_id && zmq_send(sock, routing_id, rid_len, flags | ZMQ_SNDMORE) < 0)
        return s_send_error("routing id");
    if (zmq_send(sock, hdr, hdr_len, flags | (data ? ZMQ_SNDMORE : 0)) < 0)
        return s_send_error("header");
    if (data && zmq_send(sock, data, data_len, flags) < 0)
        return s_send_error("data");
    return 0;
}

int
fl_net_send_msg(void *sock, const void *routing_id, size_t rid_len, const void *hdr,
                size_t hdr_len, zmq_msg_t *data, int flags)
{
    flags &= ZMQ_DONTWAIT;
    if (!hdr)
        hdr = "";
    if (routing_id && zmq_send(sock, routing_id, rid_len, flags | ZMQ_SNDMORE) < 0) {
        int rc = s_send_error("routing id");
        zmq_msg_close(data);
        return rc;
    }
    if (zmq_send(sock, hdr, hdr_len, flags | ZMQ_SNDMORE) < 0) {
        int rc = s_send_error("header");
        zmq_msg_close(data);
        return rc;
    }
    if (zmq_msg_send(data, sock, flags) < 0) {
        int rc = s_send_error("data");
        zmq_msg_close(data);
        return rc;
    }
    return 0;
}

void
fl_net_msg_close(fl_net_msg_t *m)
{
    zmq_msg_close(&m->hdr);
    zmq_msg_close(&m->data);
    zmq_msg_init(&m->hdr);
    zmq_msg_init(&m->data);
    m->has_data = false;
    m->rid_len = 0;
    m->user_id[0] = '\0';
}

int
fl_net_recv(void *sock, bool router, fl_net_msg_t *m, int flags)
{
    zmq_msg_t f;
    int payload = 0, rc = 0;
    size_t long_rid = 0;
    bool first = true;

    m->rid_len = 0;
    m->user_id[0] = '\0';
    m->has_data = false;
    zmq_msg_init(&m->hdr);
    zmq_msg_init(&m->data);
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, sock, flags & ZMQ_DONTWAIT) < 0) {
        rc = errno == EAGAIN ? fl_fail(FL_ETIMEOUT, "receive: no message")
                             : fl_fail(FL_EIO, "receive: %s", zmq_strerror(errno));
        zmq_msg_close(&f);
        return rc;
    }
    /* Every frame of the message is read, even after it is known to be
     * wrong, so that the next receive starts at the next message. The rest
     * of a multipart message is already here once its first frame is. */
    for (;;) {
        int more = zmq_msg_more(&f);
        if (first && router) {
            size_t n = zmq_msg_size(&f);
            if (n > sizeof m->routing_id) {
                long_rid = n;
            } else {
                memcpy(m->routing_id, zmq_msg_data(&f), n);
                m->rid_len = n;
            }
            zmq_msg_close(&f);
        } else if (++payload == 1) {
            zmq_msg_move(&m->hdr, &f);
            const char *uid = zmq_msg_gets(&m->hdr, "User-Id");
            if (uid && strlen(uid) == FL_KEY_Z85_LEN)
                memcpy(m->user_id, uid, FL_KEY_Z85_LEN + 1);
        } else if (payload == 2) {
            zmq_msg_move(&m->data, &f);
            m->has_data = true;
        } else {
            zmq_msg_close(&f);
        }
        first = false;
        if (!more)
            break;
        zmq_msg_init(&f);
        while (zmq_msg_recv(&f, sock, 0) < 0) {
            if (errno != EINTR) {
                rc = fl_fail(FL_EIO, "receive: frame %d: %s", payload + 1, zmq_strerror(errno));
                zmq_msg_close(&f);
                goto out;
            }
        }
    }
    if (long_rid)
        rc = fl_fail(FL_EPROTO, "message refused: routing id of %zu bytes (limit %d)", long_rid,
                     FL_NET_MAX_RID);
    else if (payload < 1 || payload > 2)
        rc = fl_fail(FL_EPROTO,
                     "message refused from %s: %d payload frames (expected header and "
                     "optional data)",
                     m->user_id[0] ? m->user_id : "an unidentified peer", payload);
out:
    if (rc < 0) {
        /* a refused message keeps who sent it (routing id and User-Id), so
         * the receiver can answer with an error; its frames are released */
        size_t rid_len = rc == FL_EPROTO ? m->rid_len : 0;
        char uid[sizeof m->user_id];
        memcpy(uid, m->user_id, sizeof uid);
        fl_net_msg_close(m);
        m->rid_len = rid_len;
        if (rc == FL_EPROTO)
            memcpy(m->user_id, uid, sizeof uid);
    }
    return rc;
}
