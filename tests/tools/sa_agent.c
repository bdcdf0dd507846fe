/*
 * sa_agent.c — a scripted secure-aggregation participant for the integration
 * tests (tests/integration/test_secagg.py).
 *
 * It connects like a real agent (CurveZMQ, fl_keys, fl_net, fl_proto), says
 * hello, pings, and takes part in every secure-aggregation training task with
 * the client side of libcovey (fl_saclient) — but instead of training it
 * offers a KNOWN update: every coordinate equal to --value, weight
 * --samples. So a test can predict the committed model exactly (the weighted
 * mean of the survivors' values) and check that what the coordinator
 * computed is the sum of exactly the inputs it should hold.
 *
 * Faults, in round --round (default 1):
 *   --die-at adv      killed (SIGKILL) on receiving "train", before sa.adv
 *   --die-at shr      killed on receiving sa.keys, before sa.shr
 *   --die-at masked   killed on receiving sa.mreq, before its masked input
 *   --die-at sig      killed on receiving sa.chk, before sa.sig (active model)
 *   --die-at shares   killed on receiving sa.unmask, before sa.shares
 *   --forge KIND      sends one extra phase message besides the good ones:
 *       forged-adv      a second sa.adv with other keys (refused)
 *       wrong-round     sa.shr again with round + 1 (refused)
 *       truncated       sa.shr again with its last record cut short (refused)
 *       bad-shares      before its sa.shares, one whose last record has an
 *                       invalid kind byte (refused; the real one follows)
 *       forged-share    its sa.shares with one bit of its first share flipped
 *                       (well formed: only the coordinator's check of the
 *                       shares against each other can catch it)
 *       replay-adv      sa.adv again, identical (a retransmission: ignored)
 *       dup-shares      sa.shares again, identical (a retransmission: ignored)
 *       unsigned-adv    (active model) first an sa.adv without its signature
 *                       (refused), then the good one
 *       forged-sig      (active model) first an sa.sig with one bit flipped
 *                       (refused), then the good one
 * With --identity-ca KEY --identity-cert FILE it presents the certificate in
 * hello and takes part in active-server rounds (signed keys, sa.chk/sa.sig).
 * Evaluation tasks and tasks without a secure-aggregation setup are declined
 * with "fail". Every message from the coordinator is printed on stdout as
 * "reply <fl_msg_describe>"; steps as "sent ...".
 *
 * This is test code: it checks what it must to follow the flow.
 */
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_identity.h"
#include "fl_keys.h"
#include "fl_net.h"
#include "fl_proto.h"
#include "fl_saclient.h"
#include "fl_util.h"

#define PING_MS 2000

typedef struct sa_agent {
    const char *coordinator, *server_key, *key_path, *die_at, *forge, *ca_path, *cert_path;
    fl_identity_t *id;
    uint8_t ca_pk[32], cert[FL_CERT_LEN];
    double value;
    uint64_t samples, round;
    void *ctx, *sock;
    fl_keypair_t *kp;
    char server_pub[41];
    fl_sa_client_t *sa;
    fl_msg_t task;
    uint32_t *y;
    size_t y_bytes;
    bool welcomed;
    int64_t last_ping_ms, last_hello_ms;
    uint8_t hdr[FL_HDR_MAX];
} sa_agent_t;

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int
s_send(sa_agent_t *a, const fl_msg_t *m, const void *data, size_t len)
{
    size_t hlen = 0;
    int rc = fl_msg_encode(m, a->hdr, sizeof a->hdr, &hlen);
    if (rc == 0)
        rc = fl_net_send(a->sock, NULL, 0, a->hdr, hlen, data, len, ZMQ_DONTWAIT);
    if (rc != 0)
        printf("send-failed type=%s reason=\"%s\"\n", fl_msg_type_name(m->type), fl_errmsg());
    return rc;
}

static void
s_reply(sa_agent_t *a, fl_msg_type_t type, const fl_msg_t *of)
{
    fl_msg_t m;
    fl_msg_init(&m, type);
    m.round = of->round;
    m.attempt = of->attempt;
    if (type == FL_MSG_FAIL)
        snprintf(m.reason, sizeof m.reason, "sa_agent declines this task");
    (void)s_send(a, &m, NULL, 0);
}

/* Die here if this is the phase and round the test asked for. */
static void
s_maybe_die(const sa_agent_t *a, const char *phase, uint64_t round)
{
    if (a->die_at && strcmp(a->die_at, phase) == 0 && round == a->round) {
        printf("dying at %s round=%llu\n", phase, (unsigned long long)round);
        fflush(stdout);
        raise(SIGKILL);
    }
}

static bool
s_forging(const sa_agent_t *a, const char *kind, uint64_t round)
{
    return a->forge && strcmp(a->forge, kind) == 0 && round == a->round;
}

static void
s_on_train(sa_agent_t *a, const fl_msg_t *m)
{
    fl_sa_setup_t st;
    fl_msg_t adv;
    if (m->sa_n == 0) {
        s_reply(a, FL_MSG_FAIL, m);
        return;
    }
    if (a->sa && fl_sa_client_setup(a->sa)->round == m->round &&
        fl_sa_client_setup(a->sa)->attempt == m->attempt)
        return; /* the same task again after a reconnection */
    s_maybe_die(a, "adv", m->round);
    fl_sa_client_destroy(&a->sa);
    memset(&st, 0, sizeof st);
    st.round = m->round, st.attempt = m->attempt;
    st.n = (uint32_t)m->sa_n, st.idx = (uint32_t)m->sa_idx;
    st.k = (uint32_t)m->sa_k, st.t = (uint32_t)m->sa_t, st.full = m->sa_full != 0;
    st.bits = (unsigned)m->sa_bits, st.levels = (uint32_t)m->sa_levels;
    st.clip = m->sa_clip, st.wmax = m->sa_wmax, st.dim = m->sa_dim;
    st.active = m->sa_active != 0;
    memcpy(st.nonce, m->nonce, 32);
    if (fl_sa_client_new(&st, &a->sa) != 0 ||
        (st.active && fl_sa_client_set_identity(a->sa, a->id, a->cert, a->ca_pk) != 0)) {
        fl_sa_client_destroy(&a->sa);
        printf("setup-refused reason=\"%s\"\n", fl_errmsg());
        s_reply(a, FL_MSG_FAIL, m);
        return;
    }
    a->task = *m;
    fl_msg_init(&adv, FL_MSG_SA_ADV);
    adv.round = m->round, adv.attempt = m->attempt;
    adv.has_cpk = adv.has_spk = true;
    memcpy(adv.cpk, fl_sa_client_cpk(a->sa), 32);
    memcpy(adv.spk, fl_sa_client_spk(a->sa), 32);
    if (s_forging(a, "unsigned-adv", m->round) && s_send(a, &adv, NULL, 0) == 0)
        printf("sent forged unsigned-adv\n");
    if (st.active && fl_sa_client_adv_sig(a->sa, adv.sig) == 0)
        adv.has_sig = true;
    if (s_send(a, &adv, NULL, 0) == 0)
        printf("sent sa.adv round=%llu idx=%u n=%u k=%u t=%u\n", (unsigned long long)m->round,
               st.idx, st.n, st.k, st.t);
    if (s_forging(a, "replay-adv", m->round) && s_send(a, &adv, NULL, 0) == 0)
        printf("sent forged replay-adv\n");
    if (s_forging(a, "forged-adv", m->round)) {
        randombytes_buf(adv.cpk, 32);
        randombytes_buf(adv.spk, 32);
        if (s_send(a, &adv, NULL, 0) == 0)
            printf("sent forged forged-adv\n");
    }
}

/* The masked input of the known update, announced with "ready". */
static void
s_send_masked(sa_agent_t *a)
{
    const fl_sa_setup_t *st = fl_sa_client_setup(a->sa);
    size_t dim = (size_t)st->dim, words = (size_t)fl_sa_setup_words(st);
    float *x = fl_xmalloc(dim * sizeof *x);
    fl_msg_t m;
    for (size_t i = 0; i < dim; i++)
        x[i] = (float)a->value;
    free(a->y);
    a->y = fl_xmalloc(words * sizeof *a->y);
    a->y_bytes = words * sizeof *a->y;
    int rc = fl_sa_client_mask(a->sa, x, (double)a->samples, NULL, NULL, a->y, NULL);
    free(x);
    if (rc != 0) {
        printf("mask-failed reason=\"%s\"\n", fl_errmsg());
        return;
    }
    fl_msg_init(&m, FL_MSG_READY);
    m.round = st->round, m.attempt = st->attempt;
    m.n_samples = a->samples, m.loss = 0.5, m.acc = 0.5;
    m.nbytes = a->y_bytes, m.has_digest = true;
    crypto_generichash(m.digest, 32, (const uint8_t *)a->y, a->y_bytes, NULL, 0);
    if (s_send(a, &m, NULL, 0) == 0)
        printf("sent ready bytes=%zu\n", a->y_bytes);
}

static void
s_on_sa(sa_agent_t *a, const fl_msg_t *m, const uint8_t *data, size_t len)
{
    const uint8_t *out = NULL;
    size_t out_len = 0;
    fl_msg_t r;
    int rc;
    if (!a->sa || fl_sa_client_setup(a->sa)->round != m->round ||
        fl_sa_client_setup(a->sa)->attempt != m->attempt) {
        printf("ignored %s for another round\n", fl_msg_type_name(m->type));
        return;
    }
    fl_msg_init(&r, m->type == FL_MSG_SA_KEYS ? FL_MSG_SA_SHR : FL_MSG_SA_SHARES);
    r.round = m->round, r.attempt = m->attempt;
    if (m->type == FL_MSG_SA_CHK) {
        s_maybe_die(a, "sig", m->round);
        fl_msg_init(&r, FL_MSG_SA_SIG);
        r.round = m->round, r.attempt = m->attempt, r.has_sig = true;
        if (fl_sa_client_on_chk(a->sa, data, len, r.sig) != 0) {
            printf("client-aborted at=sa.chk reason=\"%s\"\n", fl_errmsg());
            s_reply(a, FL_MSG_FAIL, m);
            fl_sa_client_destroy(&a->sa);
            return;
        }
        if (s_forging(a, "forged-sig", m->round)) {
            r.sig[7] ^= 0x10;
            if (s_send(a, &r, NULL, 0) == 0)
                printf("sent forged forged-sig\n");
            r.sig[7] ^= 0x10;
        }
        if (s_send(a, &r, NULL, 0) == 0)
            printf("sent sa.sig\n");
        return;
    }
    if (m->type == FL_MSG_SA_KEYS) {
        s_maybe_die(a, "shr", m->round);
        rc = fl_sa_client_on_keys(a->sa, data, len, &out, &out_len);
    } else if (m->type == FL_MSG_SA_MREQ) {
        s_maybe_die(a, "masked", m->round);
        rc = fl_sa_client_on_mreq(a->sa, data, len);
    } else {
        s_maybe_die(a, "shares", m->round);
        rc = fl_sa_client_on_unmask(a->sa, data, len, &out, &out_len);
    }
    if (rc != 0) {
        printf("client-aborted at=%s reason=\"%s\"\n", fl_msg_type_name(m->type), fl_errmsg());
        s_reply(a, FL_MSG_FAIL, m);
        fl_sa_client_destroy(&a->sa);
        return;
    }
    if (m->type == FL_MSG_SA_MREQ) {
        s_send_masked(a);
        return;
    }
    if (r.type == FL_MSG_SA_SHARES && s_forging(a, "bad-shares", m->round)) {
        uint8_t *bad = fl_xmalloc(out_len);
        memcpy(bad, out, out_len);
        bad[out_len - FL_SA_REC_SHARES + 4] = 7; /* the kind byte: neither b nor s_sk */
        if (s_send(a, &r, bad, out_len) == 0)
            printf("sent forged bad-shares\n");
        free(bad);
    }
    uint8_t *forged = NULL;
    if (r.type == FL_MSG_SA_SHARES && s_forging(a, "forged-share", m->round)) {
        forged = fl_xmalloc(out_len);
        memcpy(forged, out, out_len);
        forged[5 + 4 * 4 + 3] ^= 0x02; /* low bit 1 of limb 4: stays in the field */
        out = forged;
        printf("sent forged forged-share\n");
    }
    if (s_send(a, &r, out, out_len) == 0)
        printf("sent %s records=%zu\n", fl_msg_type_name(r.type),
               out_len / (r.type == FL_MSG_SA_SHR ? FL_SA_REC_SHR : FL_SA_REC_SHARES));
    free(forged);
    if (r.type == FL_MSG_SA_SHR && s_forging(a, "wrong-round", m->round)) {
        r.round++;
        if (s_send(a, &r, out, out_len) == 0)
            printf("sent forged wrong-round\n");
    }
    if (r.type == FL_MSG_SA_SHR && s_forging(a, "truncated", m->round) &&
        s_send(a, &r, out, out_len - 1) == 0)
        printf("sent forged truncated\n");
    if (r.type == FL_MSG_SA_SHARES && s_forging(a, "dup-shares", m->round) &&
        s_send(a, &r, out, out_len) == 0)
        printf("sent forged dup-shares\n");

}

static void
s_on_pull(sa_agent_t *a, const fl_msg_t *m)
{
    fl_msg_t r;
    if (!a->y || m->offset > a->y_bytes || m->length > a->y_bytes - m->offset)
        return;
    fl_msg_init(&r, FL_MSG_UPD);
    r.round = m->round, r.attempt = m->attempt, r.offset = m->offset;
    (void)s_send(a, &r, (const uint8_t *)a->y + m->offset, m->length);
}

static void
s_handle_msg(sa_agent_t *a)
{
    fl_net_msg_t nm;
    fl_msg_t m;
    char desc[512];
    if (fl_net_recv(a->sock, false, &nm, ZMQ_DONTWAIT) != 0)
        return;
    if (fl_msg_decode(zmq_msg_data(&nm.hdr), zmq_msg_size(&nm.hdr), &m) != 0) {
        printf("reply undecodable reason=\"%s\"\n", fl_errmsg());
        fl_net_msg_close(&nm);
        return;
    }
    if (m.type != FL_MSG_PULL)
        printf("reply %s\n", fl_msg_describe(&m, desc, sizeof desc));
    const uint8_t *data = nm.has_data ? zmq_msg_data(&nm.data) : NULL;
    size_t len = nm.has_data ? zmq_msg_size(&nm.data) : 0;
    switch (m.type) {
    case FL_MSG_WELCOME: a->welcomed = true; break;
    case FL_MSG_TRAIN: s_on_train(a, &m); break;
    case FL_MSG_EVAL: s_reply(a, FL_MSG_FAIL, &m); break;
    case FL_MSG_SA_KEYS:
    case FL_MSG_SA_MREQ:
    case FL_MSG_SA_CHK:
    case FL_MSG_SA_UNMASK:
        if (fl_msg_check_data(&m, len) == 0)
            s_on_sa(a, &m, data, len);
        break;
    case FL_MSG_PULL: s_on_pull(a, &m); break;
    default: break;
    }
    fl_net_msg_close(&nm);
}

static void
s_usage(FILE *f)
{
    fprintf(f, "usage: sa_agent --coordinator EP --server-key KEY --key FILE [--value V]\n"
               "                [--samples N] [--round R] [--die-at PHASE] [--forge KIND]\n"
               "                [--exit-after S] [--identity-ca KEY --identity-cert FILE]\n"
               "A scripted secure-aggregation participant with a known update (see the\n"
               "comment at the top of tests/tools/sa_agent.c).\n");
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"coordinator", required_argument, NULL, 'c'}, {"server-key", required_argument, NULL, 'k'},
        {"key", required_argument, NULL, 'K'},         {"value", required_argument, NULL, 'v'},
        {"samples", required_argument, NULL, 's'},     {"round", required_argument, NULL, 'r'},
        {"die-at", required_argument, NULL, 'd'},      {"forge", required_argument, NULL, 'f'},
        {"exit-after", required_argument, NULL, 'x'},  {"help", no_argument, NULL, 'h'},
        {"identity-ca", required_argument, NULL, 'A'}, {"identity-cert", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0}};
    sa_agent_t *a = fl_xcalloc(1, sizeof *a);
    uint64_t exit_s = 600;
    struct sigaction sa;
    int c, code = 1;
    a->samples = 1000;
    a->round = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'c': a->coordinator = optarg; break;
        case 'k': a->server_key = optarg; break;
        case 'K': a->key_path = optarg; break;
        case 'v': a->value = atof(optarg); break;
        case 's':
            if (fl_parse_u64(optarg, "--samples", &a->samples) != 0 || a->samples == 0)
                return 2;
            break;
        case 'r':
            if (fl_parse_u64(optarg, "--round", &a->round) != 0)
                return 2;
            break;
        case 'd': a->die_at = optarg; break;
        case 'f': a->forge = optarg; break;
        case 'A': a->ca_path = optarg; break;
        case 'C': a->cert_path = optarg; break;
        case 'x':
            if (fl_parse_u64(optarg, "--exit-after", &exit_s) != 0)
                return 2;
            break;
        case 'h': s_usage(stdout); free(a); return 0;
        default: s_usage(stderr); free(a); return 2;
        }
    }
    if (!a->coordinator || !a->server_key || !a->key_path) {
        s_usage(stderr);
        free(a);
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (sodium_init() < 0 || fl_keypair_load(a->key_path, &a->kp) != 0 ||
        fl_key_load_public(a->server_key, a->server_pub) != 0) {
        fprintf(stderr, "sa_agent: %s\n", fl_errmsg());
        goto out;
    }
    if (a->ca_path && (fl_sign_pubkey_load(a->ca_path, a->ca_pk) != 0 || !a->cert_path ||
                       fl_cert_load(a->cert_path, a->cert) != 0 ||
                       fl_identity_derive(fl_keypair_secret(a->kp), &a->id) != 0)) {
        fprintf(stderr, "sa_agent: identity: %s\n", a->cert_path ? fl_errmsg() : "no cert");
        goto out;
    }
    a->ctx = zmq_ctx_new();
    if (fl_net_client(a->ctx, a->coordinator, a->server_pub, a->kp, NULL, &a->sock) != 0) {
        fprintf(stderr, "sa_agent: %s\n", fl_errmsg());
        goto out;
    }
    printf("started value=%g samples=%llu public_key=%s\n", a->value,
           (unsigned long long)a->samples, fl_keypair_public(a->kp));
    int64_t until = fl_now_ms() + (int64_t)exit_s * 1000;
    while (!s_stop && fl_now_ms() < until) {
        zmq_pollitem_t item = {a->sock, 0, ZMQ_POLLIN, 0};
        int64_t now = fl_now_ms();
        if (!a->welcomed && now - a->last_hello_ms > 1000) {
            fl_msg_t h;
            fl_msg_init(&h, FL_MSG_HELLO);
            snprintf(h.version, sizeof h.version, "sa-agent-0.1");
            h.n_train = a->samples;
            if (a->id) {
                h.has_cert = true;
                memcpy(h.cert, a->cert, sizeof h.cert);
            }
            (void)s_send(a, &h, NULL, 0);
            a->last_hello_ms = now;
        }
        if (now - a->last_ping_ms > PING_MS) {
            fl_msg_t p;
            fl_msg_init(&p, FL_MSG_PING);
            (void)s_send(a, &p, NULL, 0);
            a->last_ping_ms = now;
        }
        if (zmq_poll(&item, 1, 100) > 0)
            for (int i = 0; i < 64; i++) {
                int ev = 0;
                size_t evlen = sizeof ev;
                s_handle_msg(a);
                if (zmq_getsockopt(a->sock, ZMQ_EVENTS, &ev, &evlen) != 0 || !(ev & ZMQ_POLLIN))
                    break;
            }
    }
    printf("exit\n");
    code = 0;
out:
    if (a->sock)
        zmq_close(a->sock);
    if (a->ctx)
        zmq_ctx_term(a->ctx);
    fl_keypair_destroy(&a->kp);
    fl_identity_destroy(&a->id);
    fl_sa_client_destroy(&a->sa);
    free(a->y);
    free(a);
    return code;
}
