/*
 * fl_zap.h — the ZAP handler (ZeroMQ RFC 27) that decides which CURVE clients
 * a server socket admits.
 *
 * libzmq asks the handler bound at inproc://zeromq.zap.01 of the socket's
 * context about every handshake. This one runs in its own thread, admits only
 * the CURVE mechanism, and asks a caller-supplied check (for Covey: "is this
 * public key an enrolled, non-revoked agent?") about each client key. An
 * admitted connection gets User-Id = the client's Z85 public key, so every
 * message it sends can be attributed with zmq_msg_gets(msg, "User-Id")
 * (fl_net_recv does this). Refusals are logged with the key and domain
 * (public keys are not secret), at most once a minute per key, because a
 * refused client keeps reconnecting.
 *
 * Order matters: start the handler before binding any CURVE server socket on
 * the context, and stop it after closing them, before zmq_ctx_term. Server
 * sockets made by fl_net_server set ZMQ_ZAP_ENFORCE_DOMAIN, so while no
 * handler runs they refuse every client instead of admitting everyone.
 *
 * NULL and PLAIN handshakes are refused: a socket without CURVE on the same
 * context (e.g. the local ipc:// admin socket) must not set ZMQ_ZAP_DOMAIN,
 * which keeps libzmq from asking ZAP about it at all.
 */
#ifndef FL_ZAP_H
#define FL_ZAP_H

#include "fl_util.h"

/*
 * Decide on one CURVE client: return 1 to admit it, anything else to refuse.
 * `domain` is the server socket's ZMQ_ZAP_DOMAIN; `client_pub_z85` the
 * client's public key (40 Z85 characters). Both are borrowed for the call.
 * Called in the ZAP thread, once per handshake, so it must be safe against
 * the threads that change whatever `arg` points to; it should be quick
 * (handshakes wait for it).
 */
typedef int (*fl_zap_check_fn)(const char *domain, const char *client_pub_z85, void *arg);

typedef struct fl_zap fl_zap_t;

/*
 * Bind the handler on zmq_ctx (before returning, so a server socket bound
 * afterwards is covered) and start its thread. Caller owns *out and stops it
 * with fl_zap_stop. Returns 0, FL_EINVAL (NULL ctx or check), FL_EEXIST (the
 * context already has a ZAP handler) or FL_EIO.
 */
int fl_zap_start(void *zmq_ctx, fl_zap_check_fn check, void *arg, fl_zap_t **out) FL_MUST_CHECK;

/* Tell the thread to stop, join it (its sockets are closed when this
 * returns), free, null *self_p. Accepts NULL and *self_p == NULL. Call before
 * zmq_ctx_term of the context. */
void fl_zap_stop(fl_zap_t **self_p);

/* Handshakes admitted / refused so far (refused includes non-CURVE and
 * malformed requests). Safe to call from any thread. */
uint64_t fl_zap_admitted(const fl_zap_t *z);
uint64_t fl_zap_refused(const fl_zap_t *z);

#endif
