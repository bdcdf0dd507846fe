/*
 * enroll.c — `covey-agent enroll TOKEN --state DIR`: make this agent's key
 * pair on the device (the secret never leaves it), register the public key
 * with the coordinator over its enrollment endpoint (CurveZMQ to the key the
 * token names) by presenting the token's one-time secret, and write
 * DIR/agent.ini so that `covey-agent run --state DIR` needs nothing else.
 * Also the reader of that file.
 *
 * The identity of secure aggregation against an active coordinator
 * (fl_identity.h) is installed here too: --identity-ca at enrolment, and,
 * once the CA has certified the identity key that `covey-agent identity`
 * prints, `enroll --state DIR --identity-cert FILE` without a token adds the
 * certificate to an enrolled agent. (It cannot come with the token: the key
 * pair it certifies is made by the enrolment.)
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "agent.h"
#include "fl_cli.h"
#include "fl_identity.h"
#include "fl_keys.h"
#include "fl_log.h"
#include "fl_net.h"
#include "fl_proto.h"
#include "fl_sign.h"
#include "fl_token.h"

#define ENROLL_TIMEOUT_MS 30000

/* --------------------------------------------------------- agent.ini */

typedef struct {
    agent_state_t *st;
    char err[256];
} ini_ctx_t;

static int
s_ini(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx_t *c = user;
    agent_state_t *st = c->st;
    struct {
        const char *sec, *key;
        char *dst;
        size_t size;
    } strs[] = {
        {"coordinator", "endpoint", st->endpoint, sizeof st->endpoint},
        {"coordinator", "server_key", st->server_key, sizeof st->server_key},
        {"coordinator", "signing_key", st->signing_key, sizeof st->signing_key},
        {"coordinator", "federation_id", st->federation_id, sizeof st->federation_id},
        {"agent", "name", st->name, sizeof st->name},
        {"agent", "key", st->key, sizeof st->key},
        {"agent", "identity_ca", st->identity_ca, sizeof st->identity_ca},
        {"agent", "identity_cert", st->identity_cert, sizeof st->identity_cert},
        {"data", "data", st->data, sizeof st->data},
        {"data", "test_data", st->test_data, sizeof st->test_data},
        {"data", "partition", st->partition, sizeof st->partition},
    };
    struct {
        const char *sec, *key;
        unsigned long long *dst;
    } nums[] = {{"data", "parts", &st->parts}, {"data", "index", &st->index}, {"data", "seed", &st->seed}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (strcmp(section, strs[i].sec) == 0 && strcmp(name, strs[i].key) == 0) {
            if (strlen(value) >= strs[i].size) {
                snprintf(c->err, sizeof c->err, "%s.%s is too long", section, name);
                return 0;
            }
            memcpy(strs[i].dst, value, strlen(value) + 1);
            return 1;
        }
    }
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strcmp(section, nums[i].sec) == 0 && strcmp(name, nums[i].key) == 0) {
            uint64_t v;
            if (fl_parse_u64(value, name, &v) != 0) {
                snprintf(c->err, sizeof c->err, "%s.%s: '%s' is not a whole number", section,
                         name, value);
                return 0;
            }
            *nums[i].dst = v;
            return 1;
        }
    }
    snprintf(c->err, sizeof c->err, "unknown setting '%s' in section [%s]", name, section);
    return 0;
}

int
agent_state_load(const char *dir, agent_state_t *st)
{
    char path[PATH_MAX];
    ini_ctx_t c = {.st = st};
    memset(st, 0, sizeof *st);
    st->parts = 1;
    st->seed = 1;
    snprintf(path, sizeof path, "%s/agent.ini", dir);
    int line = ini_parse(path, s_ini, &c);
    if (line == -1)
        return fl_fail(FL_ENOTFOUND, "%s: cannot open (run 'covey-agent enroll TOKEN --state %s')",
                       path, dir);
    if (line != 0)
        return fl_fail(FL_EINVAL, "%s:%d: %s", path, line, c.err[0] ? c.err : "syntax error");
    if (!st->endpoint[0] || !st->server_key[0] || !st->key[0])
        return fl_fail(FL_EINVAL, "%s: coordinator.endpoint, coordinator.server_key and agent.key "
                       "are required", path);
    return 0;
}

static int
s_write_state(const char *dir, const agent_state_t *st)
{
    char path[PATH_MAX], buf[16384]; /* every field at its longest fits */
    int n = snprintf(buf, sizeof buf,
                     "; covey-agent configuration, written by 'covey-agent enroll'.\n"
                     "; 'covey-agent run --state %s' reads it; flags on the command line win.\n"
                     "\n[coordinator]\n"
                     "; the coordinator's agents endpoint and public keys (from the join token)\n"
                     "endpoint = %s\nserver_key = %s\nsigning_key = %s\nfederation_id = %s\n"
                     "\n[agent]\nname = %s\n; this agent's key pair (secret, mode 0600)\nkey = %s\n"
                     "; secure aggregation against an active coordinator: the identity CA's\n"
                     "; public key and this agent's certificate (see 'covey-agent identity\n"
                     "; --help'); empty: none\nidentity_ca = %s\nidentity_cert = %s\n"
                     "\n[data]\n; training data: fashion-mnist, idx:IMAGES,LABELS or a .csv file\n"
                     "data = %s\n; held-out data for federated evaluation (empty: none, or "
                     "fashion-mnist's test split)\ntest_data = %s\n"
                     "; experiments only: use one part of the data (iid, dirichlet:A, shards:N)\n"
                     "partition = %s\nparts = %llu\nindex = %llu\nseed = %llu\n",
                     dir, st->endpoint, st->server_key, st->signing_key, st->federation_id,
                     st->name, st->key, st->identity_ca, st->identity_cert, st->data,
                     st->test_data, st->partition, st->parts, st->index, st->seed);
    if (n < 0 || (size_t)n >= sizeof buf)
        return fl_fail(FL_ERANGE, "agent configuration too long");
    /* inih reads lines of at most INI_MAX_LINE bytes and splits longer ones
     * into lines it cannot parse: refuse to write a file it would misread. */
    for (const char *line = buf; *line;) {
        size_t len = strcspn(line, "\n");
        if (len + 2 > INI_MAX_LINE)
            return fl_fail(FL_ERANGE, "agent configuration: '%.40s...' is too long for agent.ini "
                                      "(a line holds at most %d characters; use a shorter path)",
                           line, INI_MAX_LINE - 2);
        line += len + (line[len] == '\n');
    }
    snprintf(path, sizeof path, "%s/agent.ini", dir);
    return fl_write_file_atomic(path, buf, (size_t)n, 0600);
}

/* ----------------------------------------------------------- identity */

/*
 * Check the identity settings before any is written, and fill them in st:
 * `ca` (64 hex digits or the CA's .pub file) must be a public signing key,
 * written as hex; `cert` (NULL: none) must be a certificate file that this
 * CA signed for this agent: its CURVE key is kp's and its identity key the
 * one derived from kp's secret (the key 'covey-agent identity' printed).
 * The certificate is recorded by its absolute path. Returns 0 or an FL_E*
 * code with the reason; st is changed only on success.
 */
static int
s_check_identity(agent_state_t *st, const char *ca, const char *cert, const fl_keypair_t *kp)
{
    uint8_t ca_pk[FL_SIGN_PK_LEN], c[FL_CERT_LEN], curve_pk[32];
    char abs[PATH_MAX];
    fl_identity_t *id = NULL;
    int rc;

    assert(!cert || kp);
    if ((rc = fl_sign_pubkey_load(ca, ca_pk)) != 0)
        return fl_fail(rc, "--identity-ca: %s", fl_errmsg());
    if (cert) {
        if ((rc = fl_cert_load(cert, c)) != 0)
            return rc;
        if (!realpath(cert, abs) || strpbrk(abs, "\r\n"))
            return fl_fail(FL_EINVAL, "--identity-cert '%.80s': give the certificate's file", cert);
        if ((rc = fl_cert_verify(ca_pk, c)) != 0)
            return fl_fail(rc, "%s: %s", cert, fl_errmsg());
        if ((rc = fl_identity_derive(fl_keypair_secret(kp), &id)) != 0)
            return rc;
        zmq_z85_decode(curve_pk, fl_keypair_public(kp)); /* checked when loaded */
        bool mine = sodium_memcmp(FL_CERT_CURVE_PK(c), curve_pk, 32) == 0 &&
                    sodium_memcmp(FL_CERT_ID_PK(c), fl_identity_public(id), 32) == 0;
        fl_identity_destroy(&id);
        if (!mine)
            return fl_fail(FL_EINVAL,
                           "%s certifies another agent's key, not this one (%s): have 'covey-agent "
                           "identity --state DIR' certified",
                           cert, fl_keypair_public(kp));
    }
    fl_sign_pubkey_hex(ca_pk, st->identity_ca);
    if (cert)
        snprintf(st->identity_cert, sizeof st->identity_cert, "%s", abs);
    return 0;
}

/*
 * `enroll --state DIR --identity-ca KEY --identity-cert FILE` without a
 * token: install (or replace) the identity of an enrolled agent. Either
 * option may be left out while agent.ini already holds it; whatever ends up
 * there is checked as a whole. Returns the exit code.
 */
static int
s_update_identity(const char *dir, const char *ca, const char *cert)
{
    agent_state_t st;
    fl_keypair_t *kp = NULL;
    char old_cert[sizeof st.identity_cert];
    int rc;

    if ((rc = agent_state_load(dir, &st)) != 0)
        return fl_cli_fail(rc);
    if (!ca && !st.identity_ca[0])
        return fl_cli_error("--identity-ca KEY is required: %s/agent.ini names no identity CA",
                            dir);
    snprintf(old_cert, sizeof old_cert, "%s", st.identity_cert);
    if (!cert && old_cert[0])
        cert = old_cert;
    if ((rc = fl_keypair_load(st.key, &kp)) == 0 &&
        (rc = s_check_identity(&st, ca ? ca : st.identity_ca, cert, kp)) == 0)
        rc = s_write_state(dir, &st);
    fl_keypair_destroy(&kp);
    if (rc != 0)
        return fl_cli_fail(rc);
    printf("identity CA %s%s%s written to %s/agent.ini\n", st.identity_ca,
           st.identity_cert[0] ? " and certificate " : "", st.identity_cert, dir);
    return 0;
}

/* ------------------------------------------------------------- enroll */

/* Present the token's secret on the enrollment endpoint and wait for the
 * answer. *reply receives "enrolled" (0) or the coordinator's reason. */
static int
s_exchange(const fl_token_t *t, const fl_keypair_t *kp, fl_msg_t *reply)
{
    void *ctx = zmq_ctx_new(), *sock = NULL;
    fl_net_opts_t no;
    fl_msg_t m;
    uint8_t hdr[1024];
    size_t len = 0;
    int rc;

    fl_net_opts_default(&no);
    if ((rc = fl_net_client(ctx, t->enroll_endpoint, t->server_key, kp, &no, &sock)) != 0)
        goto out;
    fl_msg_init(&m, FL_MSG_ENROLL);
    m.has_secret = true;
    memcpy(m.secret, t->secret, sizeof m.secret);
    snprintf(m.version, sizeof m.version, "%s", COVEY_VERSION);
    rc = fl_msg_encode(&m, hdr, sizeof hdr, &len);
    sodium_memzero(&m, sizeof m);
    if (rc != 0)
        goto out;
    /* IMMEDIATE is set: the send waits (bounded) for the handshake */
    int64_t deadline = fl_now_ms() + ENROLL_TIMEOUT_MS;
    while ((rc = fl_net_send(sock, NULL, 0, hdr, len, NULL, 0, ZMQ_DONTWAIT)) == FL_ETIMEOUT &&
           fl_now_ms() < deadline)
        usleep(50000);
    sodium_memzero(hdr, sizeof hdr);
    if (rc != 0) {
        rc = fl_fail(FL_ETIMEOUT, "cannot reach the enrollment endpoint %s (is the coordinator "
                     "running, the port open, and the token's key right?)", t->enroll_endpoint);
        goto out;
    }
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    int left = (int)(deadline - fl_now_ms());
    if (zmq_poll(&item, 1, left > 0 ? left : 1) <= 0) {
        rc = fl_fail(FL_ETIMEOUT, "no answer from %s", t->enroll_endpoint);
        goto out;
    }
    fl_net_msg_t nm;
    if ((rc = fl_net_recv(sock, false, &nm, ZMQ_DONTWAIT)) != 0)
        goto out;
    rc = fl_msg_decode(zmq_msg_data(&nm.hdr), zmq_msg_size(&nm.hdr), reply);
    fl_net_msg_close(&nm);
out:
    if (sock)
        zmq_close(sock);
    zmq_ctx_term(ctx);
    return rc;
}

int
agent_cmd_enroll(int argc, char **argv)
{
    static const struct option lo[] = {
        {"state", required_argument, NULL, 's'},     {"data", required_argument, NULL, 'd'},
        {"test-data", required_argument, NULL, 't'}, {"partition", required_argument, NULL, 'p'},
        {"parts", required_argument, NULL, 'P'},     {"index", required_argument, NULL, 'i'},
        {"seed", required_argument, NULL, 'S'},      {"help", no_argument, NULL, 'h'},
        {"identity-ca", required_argument, NULL, 'C'},
        {"identity-cert", required_argument, NULL, 'E'},
        {NULL, 0, NULL, 0}};
    const char *dir = NULL, *identity_ca = NULL, *identity_cert = NULL;
    bool data_opts = false; /* an option that only a first enrolment takes */
    agent_state_t st;
    fl_token_t *t = NULL;
    fl_keypair_t *kp = NULL;
    fl_msg_t reply;
    int c, rc, exit_code = 1;
    uint64_t v;

    fl_cli_set_prog("covey-agent enroll");
    memset(&st, 0, sizeof st);
    snprintf(st.data, sizeof st.data, "fashion-mnist");
    st.parts = 1;
    st.seed = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        data_opts |= c != 's' && c != 'C' && c != 'E' && c != 'h';
        switch (c) {
        case 's': dir = optarg; break;
        case 'C': identity_ca = optarg; break;
        case 'E': identity_cert = optarg; break;
        case 'd': snprintf(st.data, sizeof st.data, "%s", optarg); break;
        case 't': snprintf(st.test_data, sizeof st.test_data, "%s", optarg); break;
        case 'p': snprintf(st.partition, sizeof st.partition, "%s", optarg); break;
        case 'P':
            if (fl_cli_u64(optarg, "--parts", 1, 1000000, &v) != 0)
                return 2;
            st.parts = v;
            break;
        case 'i':
            if (fl_cli_u64(optarg, "--index", 0, 999999, &v) != 0)
                return 2;
            st.index = v;
            break;
        case 'S':
            if (fl_cli_u64(optarg, "--seed", 0, UINT64_MAX, &v) != 0)
                return 2;
            st.seed = v;
            break;
        case 'h':
            printf("usage: covey-agent enroll TOKEN --state DIR [--data SRC] [--test-data SRC]\n"
                   "                          [--identity-ca KEY]\n"
                   "       covey-agent enroll --state DIR [--identity-ca KEY] "
                   "[--identity-cert FILE]\n"
                   "\n"
                   "Join a federation with a one-time token from 'covey-coordinator token create'.\n"
                   "Makes this agent's key pair in DIR/agent.key (mode 0600; the secret key never\n"
                   "leaves this device), registers its public key over the coordinator's\n"
                   "enrollment endpoint, and writes DIR/agent.ini, so that afterwards\n"
                   "    covey-agent run --state DIR\n"
                   "needs no other flag. --data/--test-data/--partition/--parts/--index/--seed\n"
                   "are stored there too (see 'covey-agent run --help').\n"
                   "\n"
                   "Secure aggregation against an active coordinator also needs this agent's\n"
                   "identity certified by the operator's identity CA:\n"
                   "  --identity-ca KEY     the CA's public key (64 hex digits or its .pub file)\n"
                   "  --identity-cert FILE  this agent's certificate from 'covey-coordinator ca\n"
                   "                        sign'; it must be issued by that CA for this agent's\n"
                   "                        key, so it is added after enrolment, without TOKEN:\n"
                   "    covey-agent enroll TOKEN --state DIR --identity-ca KEY\n"
                   "    covey-agent identity --state DIR  (send its output to the CA operator)\n"
                   "    covey-agent enroll --state DIR --identity-cert FILE\n"
                   "Both are stored in DIR/agent.ini (identity_ca, identity_cert).\n");
            return 0;
        default: return fl_cli_error("unknown option (try --help)");
        }
    }
    if (sodium_init() < 0)
        return fl_cli_error("libsodium failed to initialise");
    if (optind == argc && dir && (identity_ca || identity_cert)) {
        if (data_opts)
            return fl_cli_error("without TOKEN only --identity-ca and --identity-cert can be "
                                "changed (edit %s/agent.ini for the rest)", dir);
        return s_update_identity(dir, identity_ca, identity_cert);
    }
    if (optind != argc - 1 || !dir)
        return fl_cli_error("usage: covey-agent enroll TOKEN --state DIR (try --help)");
    if (identity_cert)
        return fl_cli_error("--identity-cert cannot come with TOKEN: the certificate is for the "
                            "key pair this enrolment makes. Enroll, run 'covey-agent identity "
                            "--state %s', have it certified, then 'covey-agent enroll --state %s "
                            "--identity-cert FILE'",
                            dir, dir);
    /* Checked before the token is spent. */
    if (identity_ca && (rc = s_check_identity(&st, identity_ca, NULL, NULL)) != 0)
        return fl_cli_fail(rc);
    if ((rc = fl_token_parse(argv[optind], &t)) != 0)
        return fl_cli_fail(rc);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fl_cli_error("cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    snprintf(st.key, sizeof st.key, "%s/agent.key", dir);
    if (access(st.key, F_OK) == 0) {
        fl_cli_error("%s exists: this directory already holds an agent (use another --state)",
                     st.key);
        goto out;
    }
    kp = fl_keypair_generate();
    if (!kp || (rc = s_exchange(t, kp, &reply)) != 0) {
        exit_code = fl_cli_fail(rc ? rc : FL_ENOMEM);
        goto out;
    }
    if (reply.type != FL_MSG_ENROLLED) {
        fl_cli_error("the coordinator refused the enrollment: %s",
                     reply.type == FL_MSG_ERROR ? reply.reason : "unexpected answer");
        goto out;
    }
    snprintf(st.endpoint, sizeof st.endpoint, "%s", t->endpoints[0]);
    snprintf(st.server_key, sizeof st.server_key, "%s", t->server_key);
    fl_sign_pubkey_hex(t->sign_key, st.signing_key);
    snprintf(st.federation_id, sizeof st.federation_id, "%s", t->federation);
    snprintf(st.name, sizeof st.name, "%s", reply.name);
    if ((rc = fl_keypair_save(kp, st.key)) != 0 || (rc = s_write_state(dir, &st)) != 0) {
        exit_code = fl_cli_fail(rc);
        goto out;
    }
    printf("enrolled as '%s' in federation '%s'; start with: covey-agent run --state %s\n",
           st.name, reply.federation, dir);
    if (st.identity_ca[0])
        printf("identity CA %s recorded; to certify this agent's identity, run\n"
               "    covey-agent identity --state %s\n"
               "and add the certificate with: covey-agent enroll --state %s --identity-cert FILE\n",
               st.identity_ca, dir, dir);
    exit_code = 0;
out:
    fl_token_destroy(&t);
    fl_keypair_destroy(&kp);
    return exit_code;
}
