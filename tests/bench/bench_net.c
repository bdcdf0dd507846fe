/*
 * bench_net.c — the transport ceilings a model transfer is measured against:
 * CurveZMQ as Covey configures it (fl_net_server / fl_net_client / fl_keys /
 * fl_zap), plain ZeroMQ with the same options but the NULL mechanism, and raw
 * TCP, all over tcp://127.0.0.1, in 1 MiB messages (FL_CHUNK_DEFAULT, the
 * chunk the agents ask for); and BLAKE2b, the digest agents and coordinator
 * compute over every model and update.
 *
 * Two ZeroMQ patterns, both ROUTER (server, the coordinator's side) to DEALER
 * (client, the agent's side), server and client each with their own context
 * (own I/O thread, as two processes would have):
 *   stream    the server pushes N messages [header][1 MiB] as fast as the
 *             peer's queue takes them (ZMQ_DONTWAIT, waiting for POLLOUT on a
 *             full queue, as a ROUTER in Covey must);
 *   window 4  the client asks for each 1 MiB with a small request and keeps 4
 *             requests outstanding: the pattern of the agents' model download
 *             ("get" / "chunk"), without any of Covey's message handling.
 * GB/s = 10^9 bytes of payload per second, from the first send to the last
 * receive; best of three repetitions, interleaved. Every run is bounded by a
 * deadline (RUN_DEADLINE_S); a run that hits it reports what it moved, marked.
 *
 * Figures only; never passes or fails on a time. The machine is shared.
 *
 * usage: bench_net [--json]
 *   --json   print one JSON object with the figures (for bench_federation.py)
 *   COVEY_BENCH_NET_MIB  MiB per CurveZMQ run (default 128; plain ZeroMQ moves
 *                        2x that, TCP 4x)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_keys.h"
#include "fl_net.h"
#include "fl_proto.h"
#include "fl_util.h"
#include "fl_zap.h"

#define MSG_BYTES ((size_t)FL_CHUNK_DEFAULT)
#define WINDOW 4
#define RUN_DEADLINE_S 10.0
#define REPS 3
#define ZAP_DOMAIN "bench-net"

typedef enum { MECH_CURVE, MECH_NULL } mech_t;
typedef enum { PAT_STREAM, PAT_WINDOW } pattern_t;

/* One run, shared by the server (main thread) and the client thread. */
typedef struct run {
    mech_t mech;
    pattern_t pat;
    size_t n_msgs;
    char endpoint[128];
    char server_pub[FL_KEY_Z85_LEN + 1];
    fl_keypair_t *client_kp;
    double deadline;     /* fl_now() */
    /* client results */
    size_t got;
    double t_last;       /* fl_now() at the last receive */
    int rc;
} run_t;

static uint8_t *s_payload;

static int
s_admit_all(const char *domain, const char *key, void *arg)
{
    (void)domain;
    (void)key;
    (void)arg;
    return 1;
}

/* The options fl_net sets, on a socket without CURVE (the NULL mechanism). */
static int
s_plain_opts(void *s, bool server)
{
    fl_net_opts_t o;
    int one = 1, zero = 0;
    fl_net_opts_default(&o);
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &o.heartbeat_ivl_ms, sizeof(int)) != 0 ||
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &o.heartbeat_timeout_ms, sizeof(int)) != 0 ||
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TTL, &o.heartbeat_ttl_ms, sizeof(int)) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &o.sndhwm, sizeof(int)) != 0 ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &o.rcvhwm, sizeof(int)) != 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &o.max_msg_size, sizeof o.max_msg_size) != 0)
        return fl_fail(FL_EIO, "plain socket options: %s", zmq_strerror(errno));
    if (server && zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0)
        return fl_fail(FL_EIO, "ROUTER_MANDATORY: %s", zmq_strerror(errno));
    if (!server && (zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one) != 0 ||
                    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &o.reconnect_ivl_ms, sizeof(int)) != 0))
        return fl_fail(FL_EIO, "client options: %s", zmq_strerror(errno));
    return 0;
}

/* Wait until sock can take (events = ZMQ_POLLOUT) or has (ZMQ_POLLIN) a
 * message, or the deadline passes. Returns 0 or FL_ETIMEOUT. */
static int
s_wait(void *sock, short events, double deadline)
{
    while (fl_now() < deadline) {
        zmq_pollitem_t it = {sock, 0, events, 0};
        if (zmq_poll(&it, 1, 50) > 0 && (it.revents & events))
            return 0;
    }
    return fl_fail(FL_ETIMEOUT, "deadline passed");
}

/* Send one whole message, waiting for room (never blocking past the deadline). */
static int
s_send(void *sock, const uint8_t *rid, size_t rid_len, const void *hdr, size_t hlen,
       const void *data, size_t dlen, double deadline)
{
    for (;;) {
        int rc = fl_net_send(sock, rid, rid_len, hdr, hlen, data, dlen, ZMQ_DONTWAIT);
        if (rc != FL_ETIMEOUT)
            return rc;
        if (s_wait(sock, ZMQ_POLLOUT, deadline) != 0)
            return FL_ETIMEOUT;
    }
}

static int
s_recv(void *sock, bool router, fl_net_msg_t *m, double deadline)
{
    for (;;) {
        int rc = fl_net_recv(sock, router, m, ZMQ_DONTWAIT);
        if (rc != FL_ETIMEOUT)
            return rc;
        if (s_wait(sock, ZMQ_POLLIN, deadline) != 0)
            return FL_ETIMEOUT;
    }
}

static void *
s_client_main(void *arg)
{
    run_t *r = arg;
    void *ctx = zmq_ctx_new(), *sock = NULL;
    static const char hello[] = "hello", get[] = "get 1 MiB";
    size_t asked = 0;
    fl_net_msg_t m;
    int rc;

    if (r->mech == MECH_CURVE) {
        rc = fl_net_client(ctx, r->endpoint, r->server_pub, r->client_kp, NULL, &sock);
    } else {
        rc = (sock = zmq_socket(ctx, ZMQ_DEALER)) ? s_plain_opts(sock, false) : FL_EIO;
        if (rc == 0 && zmq_connect(sock, r->endpoint) != 0)
            rc = fl_fail(FL_EIO, "connect %s: %s", r->endpoint, zmq_strerror(errno));
    }
    if (rc != 0)
        goto out;
    /* IMMEDIATE: the hello waits for the handshake to complete */
    if ((rc = s_send(sock, NULL, 0, hello, sizeof hello, NULL, 0, r->deadline)) != 0)
        goto out;
    while (r->got < r->n_msgs) {
        if (r->pat == PAT_WINDOW) {
            while (asked < r->n_msgs && asked - r->got < WINDOW) {
                if ((rc = s_send(sock, NULL, 0, get, sizeof get, NULL, 0, r->deadline)) != 0)
                    goto out;
                asked++;
            }
        }
        if ((rc = s_recv(sock, false, &m, r->deadline)) != 0)
            goto out;
        bool ok = m.has_data && zmq_msg_size(&m.data) == MSG_BYTES;
        fl_net_msg_close(&m);
        if (!ok) {
            rc = fl_fail(FL_EPROTO, "client: unexpected message");
            goto out;
        }
        r->got++;
        r->t_last = fl_now();
    }
    rc = 0;
out:
    r->rc = rc;
    if (sock)
        zmq_close(sock);
    zmq_ctx_term(ctx);
    return NULL;
}

/* One ZeroMQ run; returns payload GB/s (0 on failure), *partial if the deadline cut it. */
static double
s_zmq_run(mech_t mech, pattern_t pat, size_t n_msgs, const fl_keypair_t *server_kp,
          fl_keypair_t *client_kp, bool *partial)
{
    static const char hdr[48] = "chunk header, about the size of Covey's";
    run_t r;
    void *ctx = zmq_ctx_new(), *sock = NULL;
    fl_zap_t *zap = NULL;
    pthread_t th;
    bool started = false;
    fl_net_msg_t m;
    uint8_t rid[FL_NET_MAX_RID];
    size_t rid_len = 0, sent = 0;
    double t0 = 0, gbs = 0;
    int rc;

    memset(&r, 0, sizeof r);
    r.mech = mech;
    r.pat = pat;
    r.n_msgs = n_msgs;
    r.client_kp = client_kp;
    r.deadline = fl_now() + RUN_DEADLINE_S;
    *partial = false;
    if (mech == MECH_CURVE) {
        if ((rc = fl_zap_start(ctx, s_admit_all, NULL, &zap)) != 0 ||
            (rc = fl_net_server(ctx, "tcp://127.0.0.1:*", server_kp, ZAP_DOMAIN, NULL, &sock)) !=
                0)
            goto out;
        snprintf(r.server_pub, sizeof r.server_pub, "%s", fl_keypair_public(server_kp));
    } else {
        rc = (sock = zmq_socket(ctx, ZMQ_ROUTER)) ? s_plain_opts(sock, true) : FL_EIO;
        if (rc == 0 && zmq_bind(sock, "tcp://127.0.0.1:*") != 0)
            rc = fl_fail(FL_EIO, "bind: %s", zmq_strerror(errno));
        if (rc != 0)
            goto out;
    }
    if ((rc = fl_net_bound_endpoint(sock, r.endpoint, sizeof r.endpoint)) != 0)
        goto out;
    if (pthread_create(&th, NULL, s_client_main, &r) != 0) {
        rc = fl_fail(FL_EIO, "cannot start the client thread");
        goto out;
    }
    started = true;
    if ((rc = s_recv(sock, true, &m, r.deadline)) != 0) /* the hello */
        goto out;
    memcpy(rid, m.routing_id, m.rid_len);
    rid_len = m.rid_len;
    fl_net_msg_close(&m);
    t0 = fl_now();
    while (sent < n_msgs) {
        if (pat == PAT_WINDOW) {
            if ((rc = s_recv(sock, true, &m, r.deadline)) != 0)
                goto out;
            fl_net_msg_close(&m);
        }
        if ((rc = s_send(sock, rid, rid_len, hdr, sizeof hdr, s_payload, MSG_BYTES,
                         r.deadline)) != 0)
            goto out;
        sent++;
    }
out:
    if (started) {
        /* the client stops at its deadline at the latest */
        pthread_join(th, NULL);
        if (r.got > 0 && r.t_last > t0)
            gbs = (double)r.got * (double)MSG_BYTES / (r.t_last - t0) / 1e9;
        *partial = r.got < n_msgs;
        if (r.rc != 0 && r.rc != FL_ETIMEOUT)
            fprintf(stderr, "bench_net: client: %s\n", fl_errmsg());
    }
    if (rc != 0 && rc != FL_ETIMEOUT)
        fprintf(stderr, "bench_net: server: %s\n", fl_errmsg());
    if (sock)
        zmq_close(sock);
    fl_zap_stop(&zap);
    zmq_ctx_term(ctx);
    return gbs;
}

/* ---------------------------------------------------------------- raw TCP */

typedef struct tcp_run {
    int port;
    size_t bytes, got;
    double t_last;
} tcp_run_t;

static void *
s_tcp_client(void *arg)
{
    tcp_run_t *r = arg;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
    struct timeval tv = {.tv_sec = (time_t)RUN_DEADLINE_S};
    uint8_t *buf = fl_xmalloc(MSG_BYTES);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        goto out;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto out;
    while (r->got < r->bytes) {
        ssize_t n = read(fd, buf, MSG_BYTES);
        if (n <= 0)
            break;
        r->got += (size_t)n;
    }
    r->t_last = fl_now();
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

static double
s_tcp_run(size_t bytes, bool *partial)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t slen = sizeof sa;
    struct timeval tv = {.tv_sec = (time_t)RUN_DEADLINE_S};
    tcp_run_t r = {.bytes = bytes};
    pthread_t th;
    double t0, gbs = 0;
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0), fd = -1;

    *partial = true;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &slen) != 0) {
        if (lfd >= 0)
            close(lfd);
        return 0;
    }
    setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); /* bounds accept() */
    r.port = ntohs(sa.sin_port);
    if (pthread_create(&th, NULL, s_tcp_client, &r) != 0) {
        close(lfd);
        return 0;
    }
    fd = accept(lfd, NULL, NULL);
    t0 = fl_now();
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        for (size_t sent = 0; sent < bytes;) {
            ssize_t n = write(fd, s_payload, MSG_BYTES);
            if (n <= 0)
                break;
            sent += (size_t)n;
        }
        close(fd); /* the reader sees the end once it has everything */
    }
    pthread_join(th, NULL);
    close(lfd);
    if (r.got > 0 && r.t_last > t0)
        gbs = (double)r.got / (r.t_last - t0) / 1e9;
    *partial = r.got < bytes;
    return gbs;
}

static double
s_blake2b(void)
{
    uint8_t digest[32];
    size_t total = (size_t)64 * MSG_BYTES;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        crypto_generichash_state st;
        double t = fl_now();
        crypto_generichash_init(&st, NULL, 0, 32);
        for (size_t off = 0; off < total; off += MSG_BYTES)
            crypto_generichash_update(&st, s_payload, MSG_BYTES);
        crypto_generichash_final(&st, digest, 32);
        t = fl_now() - t;
        if ((double)total / t / 1e9 > best)
            best = (double)total / t / 1e9;
    }
    return best;
}

/* --------------------------------------------------------------- driver */

typedef struct row {
    const char *key, *transport, *pattern;
    mech_t mech;
    pattern_t pat;
    int scale; /* x the CurveZMQ MiB */
    double gbs;
    bool partial;
    size_t mib;
} row_t;

int
main(int argc, char **argv)
{
    row_t rows[] = {
        {"curve_stream", "CurveZMQ (fl_net)", "stream", MECH_CURVE, PAT_STREAM, 1, 0, 0, 0},
        {"curve_window", "CurveZMQ (fl_net)", "window 4", MECH_CURVE, PAT_WINDOW, 1, 0, 0, 0},
        {"plain_stream", "ZeroMQ NULL mech", "stream", MECH_NULL, PAT_STREAM, 2, 0, 0, 0},
        {"plain_window", "ZeroMQ NULL mech", "window 4", MECH_NULL, PAT_WINDOW, 2, 0, 0, 0},
    };
    const size_t n_rows = sizeof rows / sizeof rows[0];
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    size_t mib = 128;
    const char *env = getenv("COVEY_BENCH_NET_MIB");
    fl_keypair_t *skp = NULL, *ckp = NULL;
    double t_start = fl_now(), tcp = 0, b2 = 0;
    bool tcp_partial = false;

    if (env) {
        uint64_t v;
        if (fl_parse_u64(env, "COVEY_BENCH_NET_MIB", &v) != 0 || v < 8 || v > 4096) {
            fprintf(stderr, "bench_net: COVEY_BENCH_NET_MIB must be 8..4096\n");
            return 2;
        }
        mib = (size_t)v;
    }
    if (sodium_init() < 0 || !(skp = fl_keypair_generate()) || !(ckp = fl_keypair_generate())) {
        fprintf(stderr, "bench_net: cannot make keys: %s\n", fl_errmsg());
        return 1;
    }
    s_payload = fl_xmalloc(MSG_BYTES);
    randombytes_buf(s_payload, MSG_BYTES);

    /* interleave the repetitions so that a burst of load elsewhere hits all kinds */
    for (int rep = 0; rep < REPS; rep++) {
        for (size_t i = 0; i < n_rows; i++) {
            bool partial;
            rows[i].mib = mib * (size_t)rows[i].scale;
            double g = s_zmq_run(rows[i].mech, rows[i].pat, rows[i].mib, skp, ckp, &partial);
            if (g > rows[i].gbs) {
                rows[i].gbs = g;
                rows[i].partial = partial;
            }
        }
        bool partial;
        double g = s_tcp_run(mib * 4 * MSG_BYTES, &partial);
        if (g > tcp) {
            tcp = g;
            tcp_partial = partial;
        }
    }
    b2 = s_blake2b();

    if (json) {
        printf("{\"msg_bytes\": %zu", MSG_BYTES);
        for (size_t i = 0; i < n_rows; i++)
            printf(", \"%s\": %.4f", rows[i].key, rows[i].gbs);
        printf(", \"tcp_stream\": %.4f, \"blake2b\": %.4f}\n", tcp, b2);
    } else {
        printf("bench_net: transport ceilings over tcp://127.0.0.1, 1 MiB messages, fl_net's\n"
               "socket options (HWM 64, heartbeats, MAXMSGSIZE); server and client in their own\n"
               "contexts; GB/s = 10^9 payload bytes/s, best of %d; shared machine: noisy\n\n",
               REPS);
        printf("%-20s %-10s %6s %8s %10s\n", "transport", "pattern", "MiB", "GB/s", "vs TCP");
        for (size_t i = 0; i < n_rows; i++)
            printf("%-20s %-10s %6zu %8.3f %9.0f%%%s\n", rows[i].transport, rows[i].pattern,
                   rows[i].mib, rows[i].gbs, tcp > 0 ? 100 * rows[i].gbs / tcp : 0,
                   rows[i].partial ? "  (deadline: partial)" : "");
        printf("%-20s %-10s %6zu %8.3f %10s%s\n", "raw TCP", "stream", mib * 4, tcp, "100%",
               tcp_partial ? "  (deadline: partial)" : "");
        printf("\nBLAKE2b (crypto_generichash, 1 MiB updates): %.3f GB/s, the digest that agents\n"
               "and the coordinator compute over every model and update\n",
               b2);
        printf("\nbench_net: %.1f s\n", fl_now() - t_start);
    }
    free(s_payload);
    fl_keypair_destroy(&skp);
    fl_keypair_destroy(&ckp);
    return 0;
}
