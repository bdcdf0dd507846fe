/*
 * bench_net.c — loopback throughput of Covey's sockets: 1 MiB data frames
 * (plus a small header frame) from a DEALER to a ROUTER over
 * tcp://127.0.0.1, in one process, the receiver in its own thread.
 *
 * Configurations, measured in the same run so the ratios hold on a busy
 * machine:
 *   curve/fl_net     fl_net_server + fl_net_client (CURVE, Covey's options)
 *   curve/hwm=N      the same with other HWMs
 *   curve/zmq-dflt   CURVE with libzmq's default options
 *   null/fl_net-opts plain ZeroMQ (no security), Covey's HWMs
 * Prints GB/s (10^9 bytes of data frame per second, at the receiver, after
 * a warm-up) and CPU seconds per GB. Measures and prints; passes or fails
 * on nothing but errors.
 *
 *   build/bench/bench_net [messages] [frame_bytes]   (defaults 256, 1048576)
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "fl_keys.h"
#include "fl_log.h"
#include "fl_net.h"
#include "fl_util.h"
#include "fl_zap.h"

#define WARMUP 8

typedef struct {
    void *sock;
    int total;
    size_t frame;
    double t_start, t_end;
    int bad;
} rx_t;

static void *
s_receiver(void *arg)
{
    rx_t *rx = arg;
    fl_net_msg_t m;
    for (int i = 0; i < rx->total; i++) {
        if (fl_net_recv(rx->sock, true, &m, 0) != 0) {
            fprintf(stderr, "bench_net: receive: %s\n", fl_errmsg());
            rx->bad++;
            break;
        }
        if (!m.has_data || zmq_msg_size(&m.data) != rx->frame)
            rx->bad++;
        fl_net_msg_close(&m);
        if (i + 1 == WARMUP)
            rx->t_start = fl_now();
    }
    rx->t_end = fl_now();
    return NULL;
}

static int
s_admit_all(const char *domain, const char *key, void *arg)
{
    (void)domain;
    (void)key;
    (void)arg;
    return 1;
}

static void
s_setint(void *s, int opt, int v)
{
    if (zmq_setsockopt(s, opt, &v, sizeof v) != 0) {
        fprintf(stderr, "bench_net: setsockopt %d: %s\n", opt, zmq_strerror(errno));
        exit(1);
    }
}

enum { MODE_FLNET, MODE_CURVE_DEFAULT, MODE_NULL };

/* Make a connected pair for one configuration; 0 or -1. */
static int
s_pair(void *ctx, int mode, int hwm, const fl_keypair_t *skp, const fl_keypair_t *ckp,
       void **srv, void **cli)
{
    char ep[128];
    size_t len = sizeof ep;

    if (mode == MODE_FLNET) {
        fl_net_opts_t o;
        fl_net_opts_default(&o);
        if (hwm > 0)
            o.sndhwm = o.rcvhwm = hwm;
        if (fl_net_server(ctx, "tcp://127.0.0.1:*", skp, "bench", &o, srv) != 0 ||
            fl_net_bound_endpoint(*srv, ep, sizeof ep) != 0 ||
            fl_net_client(ctx, ep, fl_keypair_public(skp), ckp, &o, cli) != 0) {
            fprintf(stderr, "bench_net: %s\n", fl_errmsg());
            return -1;
        }
        return 0;
    }
    *srv = zmq_socket(ctx, ZMQ_ROUTER);
    *cli = zmq_socket(ctx, ZMQ_DEALER);
    s_setint(*srv, ZMQ_LINGER, 0);
    s_setint(*cli, ZMQ_LINGER, 0);
    if (mode == MODE_CURVE_DEFAULT) {
        s_setint(*srv, ZMQ_CURVE_SERVER, 1);
        zmq_setsockopt(*srv, ZMQ_CURVE_SECRETKEY, fl_keypair_secret(skp), 40);
        zmq_setsockopt(*srv, ZMQ_ZAP_DOMAIN, "bench", 5);
        zmq_setsockopt(*cli, ZMQ_CURVE_SERVERKEY, fl_keypair_public(skp), 40);
        zmq_setsockopt(*cli, ZMQ_CURVE_PUBLICKEY, fl_keypair_public(ckp), 40);
        zmq_setsockopt(*cli, ZMQ_CURVE_SECRETKEY, fl_keypair_secret(ckp), 40);
    } else {
        s_setint(*srv, ZMQ_SNDHWM, hwm);
        s_setint(*srv, ZMQ_RCVHWM, hwm);
        s_setint(*cli, ZMQ_SNDHWM, hwm);
        s_setint(*cli, ZMQ_RCVHWM, hwm);
    }
    if (zmq_bind(*srv, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(*srv, ZMQ_LAST_ENDPOINT, ep, &len) != 0 || zmq_connect(*cli, ep) != 0) {
        fprintf(stderr, "bench_net: %s\n", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static int
s_run(void *ctx, const char *name, int mode, int hwm, const fl_keypair_t *skp,
      const fl_keypair_t *ckp, int n, size_t frame, const uint8_t *blob)
{
    void *srv = NULL, *cli = NULL;
    rx_t rx = {.total = n + WARMUP, .frame = frame};
    pthread_t th;
    int rc = -1;

    if (s_pair(ctx, mode, hwm, skp, ckp, &srv, &cli) != 0)
        goto out;
    /* The receiver thread takes the server socket over; pthread_create is
     * the memory barrier libzmq asks for. */
    rx.sock = srv;
    double cpu0 = fl_cpu_time();
    if (pthread_create(&th, NULL, s_receiver, &rx) != 0)
        goto out;
    for (int i = 0; i < n + WARMUP; i++) {
        if (fl_net_send(cli, NULL, 0, "hdr", 3, blob, frame, 0) != 0) {
            fprintf(stderr, "bench_net: send: %s\n", fl_errmsg());
            break;
        }
    }
    pthread_join(th, NULL);
    double cpu = fl_cpu_time() - cpu0;
    if (rx.bad) {
        fprintf(stderr, "bench_net: %s: %d bad messages\n", name, rx.bad);
        goto out;
    }
    double secs = rx.t_end - rx.t_start;
    double gb = (double)n * (double)frame / 1e9;
    printf("%-20s %8.3f GB/s   %6.2f ms/msg   %5.2f CPU s/GB (both ends)\n", name, gb / secs,
           secs * 1e3 / n, cpu / ((double)(n + WARMUP) * (double)frame / 1e9));
    rc = 0;
out:
    if (cli)
        zmq_close(cli);
    if (srv)
        zmq_close(srv);
    return rc;
}

int
main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 256;
    size_t frame = argc > 2 ? (size_t)atol(argv[2]) : (size_t)1 << 20;
    void *ctx = zmq_ctx_new();
    fl_zap_t *zap = NULL;
    fl_keypair_t *skp = fl_keypair_generate(), *ckp = fl_keypair_generate();
    uint8_t *blob = malloc(frame);
    int rc = 0;

    if (n <= 0 || frame == 0 || !ctx || !skp || !ckp || !blob) {
        fprintf(stderr, "usage: bench_net [messages>0] [frame_bytes>0]\n");
        return 2;
    }
    for (size_t i = 0; i < frame; i++)
        blob[i] = (uint8_t)(i * 2654435761u >> 13);
    if (fl_zap_start(ctx, s_admit_all, NULL, &zap) != 0) {
        fprintf(stderr, "bench_net: %s\n", fl_errmsg());
        return 1;
    }
    printf("bench_net: %d x %zu-byte frames over tcp://127.0.0.1, libzmq %d.%d.%d\n", n, frame,
           ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH);
    rc |= s_run(ctx, "curve/fl_net", MODE_FLNET, 0, skp, ckp, n, frame, blob);
    rc |= s_run(ctx, "curve/hwm=4", MODE_FLNET, 4, skp, ckp, n, frame, blob);
    rc |= s_run(ctx, "curve/hwm=1000", MODE_FLNET, 1000, skp, ckp, n, frame, blob);
    rc |= s_run(ctx, "curve/zmq-defaults", MODE_CURVE_DEFAULT, 0, skp, ckp, n, frame, blob);
    rc |= s_run(ctx, "null/hwm=64", MODE_NULL, 64, skp, ckp, 4 * n, frame, blob);
    fl_zap_stop(&zap);
    zmq_ctx_term(ctx);
    fl_keypair_destroy(&skp);
    fl_keypair_destroy(&ckp);
    free(blob);
    return rc ? 1 : 0;
}
