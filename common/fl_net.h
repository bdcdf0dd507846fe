/*
 * fl_net.h — ZeroMQ sockets as Covey uses them: a CURVE ROUTER for the
 * coordinator, CURVE DEALERs for agents, and whole-message send/receive of
 * Covey's frame layout.
 *
 * A Covey message is one ZeroMQ multipart message of one or two payload
 * frames: a header (a small msgpack map) and, optionally, a data frame (a
 * model or an update, which travels as its own frame so it is never copied
 * into the header). On a ROUTER the routing id of the peer comes first.
 *
 * Every socket gets: LINGER 0 (closing never blocks on an unreachable peer),
 * ZMTP heartbeats (a silent peer is dropped), MAXMSGSIZE (a peer cannot make
 * us allocate more than that for one frame; it is disconnected instead) and
 * small HWMs (bounded memory; 1 MiB frames x 64). Servers also get
 * ROUTER_MANDATORY (sending to a vanished peer fails instead of vanishing) and
 * ZAP_ENFORCE_DOMAIN (no ZAP handler means no clients, not all clients);
 * clients get IMMEDIATE (nothing queues for a connection that has not
 * completed its handshake) and reconnect backoff.
 *
 * A socket belongs to one thread (STYLE.md); these functions keep no state.
 *
 * A ROUTER forgets a departed peer (fl_net_send then says FL_ENOTFOUND) only
 * when it next receives: libzmq retires a dead connection when the socket
 * reads the connection's end marker. A server that keeps receiving, as any
 * event loop does, sees departures promptly.
 */
#ifndef FL_NET_H
#define FL_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "fl_keys.h"
#include "fl_util.h"

/* Longest routing id a ROUTER hands over (libzmq's own limit). */
#define FL_NET_MAX_RID 255

typedef struct fl_net_opts {
    int heartbeat_ivl_ms;     /* ZMQ_HEARTBEAT_IVL; 0 disables; default 2000 */
    int heartbeat_timeout_ms; /* ZMQ_HEARTBEAT_TIMEOUT; default 6000 */
    int heartbeat_ttl_ms;     /* ZMQ_HEARTBEAT_TTL asked of the peer; default 6000 */
    int64_t max_msg_size;     /* ZMQ_MAXMSGSIZE, per frame, > 0; default FL_HDR_MAX + 4 MiB */
    int sndhwm, rcvhwm;       /* ZMQ_SNDHWM / ZMQ_RCVHWM in messages; default 64 */
    int reconnect_ivl_ms;     /* client: ZMQ_RECONNECT_IVL; default 100 */
    int reconnect_ivl_max_ms; /* client: ZMQ_RECONNECT_IVL_MAX (backoff cap); default 5000 */
} fl_net_opts_t;

/* Fill o with the defaults above. Cannot fail. */
void fl_net_opts_default(fl_net_opts_t *o);

/*
 * Make a CURVE server: a ROUTER with server_kp's secret key, ZMQ_ZAP_DOMAIN
 * zap_domain (non-empty) and ZMQ_ZAP_ENFORCE_DOMAIN, the options of o (NULL:
 * defaults), bound to endpoint (e.g. "tcp://0.0.0.0:7700" or, in tests,
 * "tcp://127.0.0.1:*"). Start the context's ZAP handler (fl_zap_start)
 * first: until one runs, every handshake is refused. Caller owns *sock_out (zmq_close). Returns 0,
 * FL_EINVAL (missing or bad argument/option) or FL_EIO (socket, option or
 * bind failed; the detail names the endpoint and libzmq's reason). On
 * failure no socket is left open.
 */
int fl_net_server(void *ctx, const char *endpoint, const fl_keypair_t *server_kp,
                  const char *zap_domain, const fl_net_opts_t *o, void **sock_out) FL_MUST_CHECK;

/* The endpoint a socket actually bound (ZMQ_LAST_ENDPOINT), e.g. the port
 * chosen for "tcp://127.0.0.1:*". Returns 0, FL_ERANGE (buf too small) or
 * FL_EIO. */
int fl_net_bound_endpoint(void *sock, char *buf, size_t size) FL_MUST_CHECK;

/*
 * Make a CURVE client: a DEALER that authenticates the server by
 * server_pub_z85 and itself by client_kp, with the options of o (NULL:
 * defaults), connected to endpoint. The connection completes in the
 * background; until the server admits it, sends with ZMQ_DONTWAIT return
 * FL_ETIMEOUT (IMMEDIATE), and zmq_poll for ZMQ_POLLOUT says when it is up.
 * Caller owns *sock_out. Returns 0, FL_EINVAL (bad server key, missing
 * argument, bad option) or FL_EIO. On failure no socket is left open.
 */
int fl_net_client(void *ctx, const char *endpoint, const char *server_pub_z85,
                  const fl_keypair_t *client_kp, const fl_net_opts_t *o,
                  void **sock_out) FL_MUST_CHECK;

/*
 * Watch sock's connections: zmq_socket_monitor for ZMQ_EVENT_HANDSHAKE_SUCCEEDED,
 * _HANDSHAKE_FAILED_NO_DETAIL / _PROTOCOL / _AUTH and _DISCONNECTED, delivered
 * to a new PAIR socket, *mon_out, that the caller polls (ZMQ_POLLIN), reads
 * with fl_net_monitor_read and closes with zmq_close (before zmq_ctx_term;
 * before or after sock), in sock's thread. On a socket that is already
 * connecting, events before the call are lost: a client that waits for
 * _HANDSHAKE_SUCCEEDED uses fl_net_client_monitored instead.
 *
 * Why a client needs it: with libzmq 4.3.4, a client whose key the server's
 * ZAP handler refuses gets ZMQ_EVENT_HANDSHAKE_FAILED_AUTH (value = the ZAP
 * status, 400) and is then never retried on that socket, even once the key
 * is admitted; an agent must close the socket and make a new one (and tell
 * its operator the key was refused). A wrong server key shows as
 * _HANDSHAKE_FAILED_NO_DETAIL and is retried every reconnect interval;
 * a server that is down shows no handshake events at all.
 * Returns 0 or FL_EIO.
 */
int fl_net_monitor(void *ctx, void *sock, void **mon_out) FL_MUST_CHECK;

/*
 * fl_net_client with its monitor (as fl_net_monitor) attached and connected
 * BEFORE the socket connects, so that no event can be lost: with
 * fl_net_client then fl_net_monitor, a handshake that completes in between
 * (a busy machine) emits ZMQ_EVENT_HANDSHAKE_SUCCEEDED to nobody, and a
 * client that waits for it to say hello waits forever. Caller owns both
 * sockets. Returns 0, or as fl_net_client / fl_net_monitor, with nothing
 * left open on failure.
 */
int fl_net_client_monitored(void *ctx, const char *endpoint, const char *server_pub_z85,
                            const fl_keypair_t *client_kp, const fl_net_opts_t *o,
                            void **sock_out, void **mon_out) FL_MUST_CHECK;

/* Read one event from a monitor made by fl_net_monitor: *event is a
 * ZMQ_EVENT_* code, *value its value (the ZAP status for _FAILED_AUTH, an
 * errno-like code for the other failures). flags: 0 or ZMQ_DONTWAIT.
 * Returns 0, FL_ETIMEOUT (nothing to read) or FL_EIO. */
int fl_net_monitor_read(void *mon, int *event, int *value, int flags) FL_MUST_CHECK;

/*
 * As fl_net_send, but the data frame is a prepared zmq message (for example
 * zmq_msg_init_data over a buffer the caller keeps alive with a reference
 * count: no copy of bulk data). On success libzmq owns *data; on failure it
 * is closed here (so its free function runs). Same return codes.
 */
int fl_net_send_msg(void *sock, const void *routing_id, size_t rid_len, const void *hdr,
                    size_t hdr_len, zmq_msg_t *data, int flags) FL_MUST_CHECK;

/*
 * Send [routing_id] [hdr] [data] as one multipart message. routing_id is
 * NULL on a DEALER, the peer's routing id (fl_net_msg_t.routing_id) on a
 * ROUTER; data NULL for a header-only message. All buffers are copied, so
 * they are the caller's again when this returns. flags: 0 or ZMQ_DONTWAIT;
 * a ROUTER must pass ZMQ_DONTWAIT, so that one slow agent cannot stall the
 * coordinator. Returns 0; FL_ETIMEOUT (EAGAIN: the peer's queue is full, or
 * a client not yet connected); FL_ENOTFOUND (EHOSTUNREACH: no peer with that
 * routing id; it has gone); FL_EIO otherwise. Nothing is sent on failure.
 */
int fl_net_send(void *sock, const void *routing_id, size_t rid_len, const void *hdr,
                size_t hdr_len, const void *data, size_t data_len, int flags) FL_MUST_CHECK;

/* One received message. The frames are received in place (no copy): read
 * them with zmq_msg_data / zmq_msg_size, and release with fl_net_msg_close. */
typedef struct fl_net_msg {
    uint8_t routing_id[FL_NET_MAX_RID]; /* ROUTER only: the sender, for replies */
    size_t rid_len;                     /* 0 on a DEALER */
    char user_id[FL_KEY_Z85_LEN + 1];   /* sender's CURVE public key (ZAP User-Id),
                                           "" if the connection has none (DEALER side) */
    zmq_msg_t hdr, data;                /* header frame; data frame if has_data */
    bool has_data;
} fl_net_msg_t;

/*
 * Receive one whole message into m (any previous content must have been
 * closed). router says whether sock is a ROUTER (first frame = routing id).
 * flags: 0 (block) or ZMQ_DONTWAIT. Returns 0 and a message the caller
 * releases with fl_net_msg_close; FL_ETIMEOUT (EAGAIN: nothing to receive);
 * FL_EPROTO for a message of the wrong shape — no payload frame, more than
 * two, or a routing id over FL_NET_MAX_RID bytes — which is read to its end
 * and dropped, so the socket stays usable (the caller logs fl_errmsg(), which
 * names the sender's key, and carries on); FL_EIO otherwise. On failure m
 * holds no frames (fl_net_msg_close on it is harmless), but after FL_EPROTO
 * it keeps routing_id/rid_len and user_id, so a ROUTER can answer the sender.
 */
int fl_net_recv(void *sock, bool router, fl_net_msg_t *m, int flags) FL_MUST_CHECK;

/* Release the frames of m; m is then empty and may be closed again or
 * reused for fl_net_recv. */
void fl_net_msg_close(fl_net_msg_t *m);

#endif
