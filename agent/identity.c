/*
 * identity.c — `covey-agent identity (--key FILE | --state DIR)`: print this
 * agent's CURVE public key and the Ed25519 identity key derived from its
 * CURVE secret key (fl_identity.h), with the command the operator of the
 * identity CA runs to certify them. With --state, also say whether the
 * certificate installed in agent.ini (if any) still matches the key: a
 * rotated key needs a new certificate.
 */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "agent.h"
#include "fl_cli.h"
#include "fl_identity.h"
#include "fl_keys.h"
#include "fl_sign.h"

static void
s_usage(void)
{
    printf("usage: covey-agent identity (--key FILE | --state DIR) [--json]\n"
           "\n"
           "Print this agent's CURVE public key (Z85) and its identity public key (hex),\n"
           "which is derived from the CURVE secret key: secure aggregation against an\n"
           "active coordinator needs it certified by the operator's identity CA. Send both\n"
           "keys to the CA's operator, who runs the command printed here, then install the\n"
           "certificate with\n"
           "    covey-agent enroll --state DIR --identity-ca CA_KEY --identity-cert FILE\n"
           "A new key pair (keygen --force, rotation) means a new identity and certificate.\n"
           "\n"
           "  --key FILE    this agent's key pair (from 'covey-agent keygen')\n"
           "  --state DIR   the agent's state directory (from 'covey-agent enroll')\n"
           "  --json        machine-readable output\n"
           "  -h, --help    show this help\n");
}

/*
 * Where the certificate of agent.ini stands: "" without one, else "valid",
 * or why it is of no use (another key, another CA, unreadable). Never fails:
 * the keys are worth printing whatever the certificate's state.
 */
static void
s_cert_status(const agent_state_t *st, const uint8_t curve_pk[32], const uint8_t id_pk[32],
              char *out, size_t size)
{
    uint8_t cert[FL_CERT_LEN], ca_pk[FL_SIGN_PK_LEN];

    out[0] = 0;
    if (!st->identity_cert[0])
        return;
    if (fl_cert_load(st->identity_cert, cert) != 0 ||
        (st->identity_ca[0] && fl_sign_pubkey_load(st->identity_ca, ca_pk) != 0) ||
        (st->identity_ca[0] && fl_cert_verify(ca_pk, cert) != 0))
        snprintf(out, size, "%s", fl_errmsg());
    else if (sodium_memcmp(FL_CERT_CURVE_PK(cert), curve_pk, 32) != 0 ||
             sodium_memcmp(FL_CERT_ID_PK(cert), id_pk, 32) != 0)
        snprintf(out, size, "certifies another key (a rotated key needs a new certificate)");
    else
        snprintf(out, size, "valid");
}

/* A name that can stand in a shell command unquoted, as NAME.cert. */
static bool
s_plain_name(const char *name)
{
    return name[0] && name[0] != '-' &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
               strlen(name);
}

int
agent_cmd_identity(int argc, char **argv)
{
    static const struct option lo[] = {{"key", required_argument, NULL, 'k'},
                                       {"state", required_argument, NULL, 's'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *key = NULL, *dir = NULL;
    bool json = false;
    agent_state_t st;
    fl_keypair_t *kp = NULL;
    fl_identity_t *id = NULL;
    uint8_t curve_pk[32];
    char id_hex[2 * FL_SIGN_PK_LEN + 1], cmd[512], cert_status[512] = "";
    int c, rc;

    fl_cli_set_prog("covey-agent identity");
    memset(&st, 0, sizeof st);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'k': key = optarg; break;
        case 's': dir = optarg; break;
        case 'j': json = true; break;
        case 'h': s_usage(); return 0;
        default: return fl_cli_error("unknown option (try --help)");
        }
    }
    if (optind < argc)
        return fl_cli_error("unexpected argument '%s' (try --help)", argv[optind]);
    if (!key == !dir)
        return fl_cli_error("give --key FILE or --state DIR (try --help)");
    if (sodium_init() < 0)
        return fl_cli_error("libsodium failed to initialise");
    if (dir) {
        if ((rc = agent_state_load(dir, &st)) != 0)
            return fl_cli_fail(rc);
        key = st.key;
    }
    if ((rc = fl_keypair_load(key, &kp)) != 0 ||
        (rc = fl_identity_derive(fl_keypair_secret(kp), &id)) != 0) {
        fl_keypair_destroy(&kp);
        return fl_cli_fail(rc);
    }
    const char *z85 = fl_keypair_public(kp);
    fl_sign_pubkey_hex(fl_identity_public(id), id_hex);
    zmq_z85_decode(curve_pk, z85); /* checked when the key was loaded */
    s_cert_status(&st, curve_pk, fl_identity_public(id), cert_status, sizeof cert_status);
    /* Z85 holds shell metacharacters ($ & < > ( ) * ? ! ...) but no quote:
     * single quotes make the command safe to paste. */
    snprintf(cmd, sizeof cmd,
             "covey-coordinator ca sign --ca CA.key --agent-key '%s' --identity %s --out %s.cert",
             z85, id_hex, s_plain_name(st.name) ? st.name : "NAME");
    if (json) {
        json_t *j = json_pack("{s:s, s:s, s:s}", "curve_public_key", z85, "identity_public_key",
                              id_hex, "sign_command", cmd);
        if (st.identity_cert[0])
            json_object_set_new(j, "certificate",
                                json_pack("{s:s, s:s, s:b}", "file", st.identity_cert, "status",
                                          cert_status, "valid",
                                          strcmp(cert_status, "valid") == 0));
        json_dumpf(j, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(j);
    } else {
        printf("curve public key     %s\n"
               "identity public key  %s\n",
               z85, id_hex);
        if (st.identity_cert[0])
            printf("certificate          %s: %s\n", st.identity_cert, cert_status);
        printf("\nTo certify this identity, the operator of the identity CA runs (where the CA\n"
               "key is kept):\n"
               "    %s\n",
               cmd);
    }
    fl_identity_destroy(&id);
    fl_keypair_destroy(&kp);
    return 0;
}
