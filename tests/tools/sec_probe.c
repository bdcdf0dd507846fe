/*
 * sec_probe.c — a probe of the coordinator's security boundaries for the
 * integration tests (tests/integration/test_security.py).
 *
 *   sec_probe forge TOKEN
 *       Print TOKEN with its secret replaced by 32 fresh random bytes: a
 *       well-formed token (right keys, endpoints and checksum) that no
 *       coordinator issued, as an attacker who knows everything but the
 *       secret would make. `covey-agent enroll` must be refused with it.
 *
 *   sec_probe send --endpoint EP --server-key KEY [--key FILE] --what WHAT
 *                  [--timeout MS]
 *       Connect to EP over CurveZMQ (KEY: the coordinator's public key, Z85
 *       or its .pub file; FILE: our key pair, default a fresh one), send ONE
 *       message and print what happens, one line each, on stdout:
 *
 *         public_key KEY        the key we connect with
 *         event NAME value=V    a socket-monitor event (handshake_succeeded,
 *                               handshake_failed_auth, handshake_failed_no_detail,
 *                               handshake_failed_protocol, disconnected)
 *         sent WHAT             the message went out (after the handshake)
 *         reply DESCRIPTION     the coordinator's answer (fl_msg_describe)
 *         reply undecodable     an answer that is not a valid message
 *         noreply               nothing within the timeout
 *
 *       WHAT is one of:
 *         hello          a well-formed agent "hello"
 *         ping           a well-formed agent "ping"
 *         garbage        a header frame that is not msgpack at all
 *         empty          an empty header frame
 *         enroll-random  a well-formed "enroll" carrying a random secret
 *         enroll-data    a well-formed "enroll" followed by a data frame
 *
 *       Exit status: 0 a reply came; 3 no reply in time; 4 the handshake was
 *       refused (ZAP: the key is not admitted); 1 other failures; 2 usage.
 *
 * This is test code: it prints rather than judges; the test asserts.
 */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_keys.h"
#include "fl_net.h"
#include "fl_proto.h"
#include "fl_token.h"
#include "fl_util.h"

static void
s_usage(FILE *f)
{
    fprintf(f, "usage: sec_probe forge TOKEN\n"
               "       sec_probe send --endpoint EP --server-key KEY [--key FILE] --what WHAT "
               "[--timeout MS]\n"
               "WHAT: hello, ping, garbage, empty, enroll-random, enroll-data\n"
               "(see the comment at the top of tests/tools/sec_probe.c)\n");
}

/* ------------------------------------------------------------------ forge */

static int
s_forge(const char *text)
{
    fl_token_t *t = NULL;
    char out[FL_TOKEN_TEXT_MAX];
    int rc = 1;
    if (fl_token_parse(text, &t) != 0) {
        fprintf(stderr, "sec_probe forge: %s\n", fl_errmsg());
        return 1;
    }
    randombytes_buf(t->secret, sizeof t->secret);
    if (fl_token_encode(t, out, sizeof out) != 0) {
        fprintf(stderr, "sec_probe forge: %s\n", fl_errmsg());
        goto out;
    }
    printf("%s\n", out);
    rc = 0;
out:
    fl_token_destroy(&t);
    return rc;
}

/* ------------------------------------------------------------------- send */

static const char *
s_event_name(int ev)
{
    switch (ev) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: return "handshake_succeeded";
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: return "handshake_failed_auth";
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: return "handshake_failed_no_detail";
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: return "handshake_failed_protocol";
    case ZMQ_EVENT_DISCONNECTED: return "disconnected";
    default: return "other";
    }
}

/* Build the header (and data) frame of WHAT. 0, or -1 for an unknown WHAT. */
static int
s_build(const char *what, uint8_t *hdr, size_t cap, size_t *len, bool *with_data)
{
    fl_msg_t m;
    *with_data = false;
    if (strcmp(what, "garbage") == 0) {
        /* 0xc1 is the one byte msgpack never uses */
        static const uint8_t junk[] = {0xc1, 'n', 'o', 't', ' ', 'm', 's', 'g', 'p', 'a', 'c', 'k'};
        memcpy(hdr, junk, sizeof junk);
        *len = sizeof junk;
        return 0;
    }
    if (strcmp(what, "empty") == 0) {
        *len = 0;
        return 0;
    }
    if (strcmp(what, "hello") == 0) {
        fl_msg_init(&m, FL_MSG_HELLO);
        snprintf(m.version, sizeof m.version, "sec_probe");
    } else if (strcmp(what, "ping") == 0) {
        fl_msg_init(&m, FL_MSG_PING);
    } else if (strcmp(what, "enroll-random") == 0 || strcmp(what, "enroll-data") == 0) {
        fl_msg_init(&m, FL_MSG_ENROLL);
        m.has_secret = true;
        randombytes_buf(m.secret, sizeof m.secret);
        snprintf(m.version, sizeof m.version, "sec_probe");
        *with_data = strcmp(what, "enroll-data") == 0;
    } else {
        return -1;
    }
    if (fl_msg_encode(&m, hdr, cap, len) != 0) {
        fprintf(stderr, "sec_probe: cannot encode %s: %s\n", what, fl_errmsg());
        return -1;
    }
    return 0;
}

static int
s_send(int argc, char **argv)
{
    static const struct option lo[] = {{"endpoint", required_argument, NULL, 'e'},
                                       {"server-key", required_argument, NULL, 's'},
                                       {"key", required_argument, NULL, 'k'},
                                       {"what", required_argument, NULL, 'w'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {NULL, 0, NULL, 0}};
    const char *endpoint = NULL, *server = NULL, *keyfile = NULL, *what = NULL;
    uint64_t timeout_ms = 5000;
    char server_pub[FL_KEY_Z85_LEN + 1];
    fl_keypair_t *kp = NULL;
    void *ctx = NULL, *sock = NULL, *mon = NULL;
    uint8_t hdr[1024];
    size_t len = 0;
    bool with_data = false, sent = false;
    int c, exit_code = 1;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'e': endpoint = optarg; break;
        case 's': server = optarg; break;
        case 'k': keyfile = optarg; break;
        case 'w': what = optarg; break;
        case 't':
            if (fl_parse_u64(optarg, "--timeout", &timeout_ms) != 0 || timeout_ms > 600000) {
                fprintf(stderr, "sec_probe: bad --timeout\n");
                return 2;
            }
            break;
        default: s_usage(stderr); return 2;
        }
    }
    if (!endpoint || !server || !what || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    if (s_build(what, hdr, sizeof hdr, &len, &with_data) != 0) {
        fprintf(stderr, "sec_probe: unknown --what '%s'\n", what);
        return 2;
    }
    if (fl_key_load_public(server, server_pub) != 0 ||
        (keyfile ? fl_keypair_load(keyfile, &kp) : ((kp = fl_keypair_generate()) ? 0 : -1)) != 0) {
        fprintf(stderr, "sec_probe: %s\n", fl_errmsg());
        goto out;
    }
    printf("public_key %s\n", fl_keypair_public(kp));
    ctx = zmq_ctx_new();
    if (fl_net_client_monitored(ctx, endpoint, server_pub, kp, NULL, &sock, &mon) != 0) {
        fprintf(stderr, "sec_probe: %s\n", fl_errmsg());
        goto out;
    }
    int64_t deadline = fl_now_ms() + (int64_t)timeout_ms;
    exit_code = 3;
    while (fl_now_ms() < deadline) {
        if (!sent) {
            /* IMMEDIATE: the send succeeds only once the handshake is done */
            int rc = fl_net_send(sock, NULL, 0, hdr, len, with_data ? "x" : NULL,
                                 with_data ? 1 : 0, ZMQ_DONTWAIT);
            if (rc == 0) {
                sent = true;
                printf("sent %s\n", what);
            } else if (rc != FL_ETIMEOUT) {
                fprintf(stderr, "sec_probe: send: %s\n", fl_errmsg());
                exit_code = 1;
                goto out;
            }
        }
        zmq_pollitem_t items[2] = {{sock, 0, ZMQ_POLLIN, 0}, {mon, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, 50) < 0)
            continue;
        if (items[1].revents & ZMQ_POLLIN) {
            int ev = 0, value = 0;
            while (fl_net_monitor_read(mon, &ev, &value, ZMQ_DONTWAIT) == 0) {
                printf("event %s value=%d\n", s_event_name(ev), value);
                if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                    exit_code = 4; /* libzmq does not retry a refused key */
                    goto out;
                }
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            fl_net_msg_t nm;
            fl_msg_t m;
            char desc[512];
            if (fl_net_recv(sock, false, &nm, ZMQ_DONTWAIT) != 0) {
                printf("reply undecodable transport=\"%s\"\n", fl_errmsg());
            } else {
                if (fl_msg_decode(zmq_msg_data(&nm.hdr), zmq_msg_size(&nm.hdr), &m) != 0)
                    printf("reply undecodable reason=\"%s\"\n", fl_errmsg());
                else
                    printf("reply %s\n", fl_msg_describe(&m, desc, sizeof desc));
                fl_net_msg_close(&nm);
            }
            exit_code = 0;
            goto out;
        }
    }
    printf("noreply\n");
out:
    if (mon)
        zmq_close(mon);
    if (sock) {
        (void)zmq_socket_monitor(sock, NULL, 0);
        zmq_close(sock);
    }
    if (ctx)
        zmq_ctx_term(ctx);
    fl_keypair_destroy(&kp);
    return exit_code;
}

int
main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (sodium_init() < 0) {
        fprintf(stderr, "sec_probe: libsodium failed to initialise\n");
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "forge") == 0)
        return s_forge(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "send") == 0)
        return s_send(argc - 1, argv + 1);
    s_usage(argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) ? stdout
                                                                                          : stderr);
    return argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) ? 0 : 2;
}
