/*
 * enroll.c — the enrollment endpoint's message handling. See enroll.h.
 */
#include "enroll.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "fl_log.h"
#include "fl_net.h"
#include "fl_proto.h"
#include "fl_token.h"
#include "state.h"

/* Answer the peer: "enrolled" or "error". */
static void
s_reply(void *sock, const fl_net_msg_t *nm, const fl_msg_t *m)
{
    uint8_t buf[1024];
    size_t len = 0;
    if (fl_msg_encode(m, buf, sizeof buf, &len) != 0 ||
        fl_net_send(sock, nm->routing_id, nm->rid_len, buf, len, NULL, 0, ZMQ_DONTWAIT) != 0)
        fl_debug("cannot answer on the enrollment endpoint", "reason=\"%s\"", fl_errmsg());
}

static void
s_refuse(void *sock, const fl_net_msg_t *nm, const char *reason, uint64_t *invalid)
{
    fl_msg_t m;
    (*invalid)++;
    fl_warn("enrollment refused", "key=%s reason=\"%s\"", nm->user_id, reason);
    fl_msg_init(&m, FL_MSG_ERROR);
    fl_msg_set_reason(&m, "%s", reason);
    s_reply(sock, nm, &m);
}

void
enroll_handle(void *sock, fl_store_t *store, const char *federation, const char *endpoint,
              uint64_t *invalid)
{
    fl_net_msg_t nm;
    fl_msg_t m;
    fl_token_row_t row;
    uint8_t hash[FL_TOKEN_HASH_LEN];
    int64_t id = 0;
    int rc = fl_net_recv(sock, true, &nm, ZMQ_DONTWAIT);

    if (rc == FL_ETIMEOUT)
        return;
    if (rc != 0) {
        (*invalid)++;
        fl_warn("malformed message on the enrollment endpoint dropped", "reason=\"%s\"",
                fl_errmsg());
        return;
    }
    if (nm.has_data || fl_msg_decode(zmq_msg_data(&nm.hdr), zmq_msg_size(&nm.hdr), &m) != 0 ||
        m.type != FL_MSG_ENROLL) {
        s_refuse(sock, &nm, "the enrollment endpoint accepts nothing but enroll", invalid);
        goto out;
    }
    fl_token_hash_secret(m.secret, hash);
    sodium_memzero(m.secret, sizeof m.secret);
    if ((rc = fl_store_begin(store)) == 0 &&
        (rc = fl_store_token_consume(store, hash, fl_wall_ms(), &row)) == 0 &&
        (rc = fl_store_agent_add(store, row.name, nm.user_id, fl_wall_ms(), &id)) == 0 &&
        (rc = coord_audit(store, row.name, "agent.enroll", "key=%s token=%lld version=%s",
                          nm.user_id, (long long)row.id, m.version)) == 0)
        rc = fl_store_commit(store);
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", fl_errmsg());
        fl_store_rollback(store);
        /* the refusal is recorded too (its own transaction) */
        (void)coord_audit(store, "unknown", "agent.enroll-refused", "key=%s reason=%s",
                          nm.user_id, why);
        s_refuse(sock, &nm, why, invalid);
        goto out;
    }
    fl_info("agent enrolled", "agent=%s key=%s", row.name, nm.user_id);
    fl_msg_init(&m, FL_MSG_ENROLLED);
    snprintf(m.federation, sizeof m.federation, "%s", federation);
    snprintf(m.name, sizeof m.name, "%s", row.name);
    snprintf(m.endpoint, sizeof m.endpoint, "%s", endpoint);
    s_reply(sock, &nm, &m);
out:
    fl_net_msg_close(&nm);
}
