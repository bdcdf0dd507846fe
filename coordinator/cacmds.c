/*
 * cacmds.c — `covey-coordinator ca init|sign|show`: the operator's identity
 * CA of secure aggregation against an active coordinator (fl_identity.h).
 * `init` makes the CA key, `sign` certifies that an identity key belongs to
 * an agent's CURVE key, `show` prints a certificate and checks it against a
 * CA public key. None of them opens a state directory: the CA key belongs on
 * another, ideally offline, machine, and the coordinator must never hold it
 * (a coordinator that could certify identities could invent participants).
 */
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "commands.h"
#include "fl_cli.h"
#include "fl_identity.h"
#include "fl_keys.h"
#include "fl_sign.h"

/* The options taking a value; a subcommand allows a set of them. */
enum { OPT_OUT, OPT_CA, OPT_AGENT_KEY, OPT_IDENTITY, OPT_CA_PUB, OPT_N };
static const char *const s_opt_names[OPT_N] = {"--out", "--ca", "--agent-key", "--identity",
                                               "--ca-pub"};

typedef struct ca_opts {
    const char *val[OPT_N]; /* NULL: not given */
    const char *cert;       /* the positional argument (show) */
    bool json;
} ca_opts_t;

static const char s_ca_usage[] =
    "usage: covey-coordinator ca init --out FILE [--json]\n"
    "       covey-coordinator ca sign --ca FILE --agent-key KEY --identity HEX --out CERT "
    "[--json]\n"
    "       covey-coordinator ca show [--ca-pub KEY] CERT [--json]\n"
    "\n"
    "The identity CA of secure aggregation against an active coordinator. Each agent\n"
    "signs its round keys with an identity key derived from its CURVE key; this CA\n"
    "certifies which identity key belongs to which agent, so that the coordinator\n"
    "cannot invent participants. Keep the CA key on another machine, ideally\n"
    "offline: the coordinator must never hold it. No state directory is used.\n"
    "'covey-coordinator ca COMMAND --help' describes each command.\n";

static const char s_init_usage[] =
    "usage: covey-coordinator ca init --out FILE [--json]\n"
    "\n"
    "Make the identity CA key: FILE holds the secret key (mode 0600) and FILE.pub\n"
    "the public key. An existing FILE is never replaced. Keep FILE offline, away\n"
    "from the coordinator's host: whoever holds it can admit identities to secure\n"
    "aggregation. Prints the CA public key (64 hex digits), which\n"
    "  - every agent is given:         covey-agent enroll ... --identity-ca KEY\n"
    "  - the coordinator is given:     secagg.identity_ca = KEY (coordinator.ini)\n"
    "\n"
    "  --out FILE   where to write the CA key (and FILE.pub)\n"
    "  --json       machine-readable output\n"
    "  -h, --help   show this help\n";

static const char s_sign_usage[] =
    "usage: covey-coordinator ca sign --ca FILE --agent-key KEY --identity HEX --out CERT "
    "[--json]\n"
    "\n"
    "Certify an agent's identity key. On the agent, 'covey-agent identity' prints its\n"
    "CURVE public key and identity key; check both with the agent's operator over a\n"
    "channel you trust, since a certificate admits that agent to every secure\n"
    "aggregation round. Writes CERT (the certificate's text, mode 0644; replaced if\n"
    "it exists) and prints the certificate. On the agent, install it with\n"
    "    covey-agent enroll --state DIR --identity-ca CA_KEY --identity-cert CERT\n"
    "\n"
    "  --ca FILE         the CA key made by 'ca init' (mode 0600)\n"
    "  --agent-key KEY   the agent's CURVE public key: Z85 (40 characters) or a .pub file\n"
    "  --identity HEX    the agent's identity public key (64 hex digits)\n"
    "  --out CERT        where to write the certificate\n"
    "  --json            machine-readable output\n"
    "  -h, --help        show this help\n";

static const char s_show_usage[] =
    "usage: covey-coordinator ca show [--ca-pub KEY] CERT [--json]\n"
    "\n"
    "Print what an identity certificate binds: an agent's CURVE public key (Z85) and\n"
    "its identity public key (hex). CERT is the certificate's text (covey-cert1....)\n"
    "or a file holding it. With --ca-pub, also check the CA's signature: the exit\n"
    "status is 1 when the certificate was not issued by that CA (or was modified).\n"
    "\n"
    "  --ca-pub KEY   the CA public key: 64 hex digits or the CA's .pub file\n"
    "  --json         machine-readable output\n"
    "  -h, --help     show this help\n";

/*
 * Parse a subcommand's arguments (argv[0] is its name): the value options in
 * `allowed` (a mask of 1 << OPT_*), as "--opt VALUE" or "--opt=VALUE", each
 * at most once; --json; --help; and up to `max_pos` positional arguments
 * (into o->cert; "--" ends the options). Returns -1 to go on, or the exit
 * code to return: 0 after printing the usage, 2 on a usage error.
 */
static int
s_parse(int argc, char **argv, unsigned allowed, int max_pos, const char *usage, ca_opts_t *o)
{
    bool opts_done = false;
    int npos = 0;

    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || a[0] != '-' || strcmp(a, "-") == 0) {
            if (npos++ >= max_pos)
                return fl_cli_error("unexpected argument '%s' (try --help)", a);
            o->cert = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            opts_done = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else {
            size_t n = strcspn(a, "=");
            int k = 0;
            while (k < OPT_N &&
                   !(strlen(s_opt_names[k]) == n && strncmp(a, s_opt_names[k], n) == 0))
                k++;
            if (k == OPT_N || !(allowed & (1u << k)))
                return fl_cli_error("unknown option '%.*s' (try --help)", (int)n, a);
            if (o->val[k])
                return fl_cli_error("%s given twice", s_opt_names[k]);
            if (a[n] == '=')
                o->val[k] = a + n + 1;
            else if (i + 1 < argc)
                o->val[k] = argv[++i];
            else
                return fl_cli_error("%s needs a value (try --help)", s_opt_names[k]);
            if (!o->val[k][0])
                return fl_cli_error("%s: empty value", s_opt_names[k]);
        }
    }
    return -1;
}

/* The first of the options in `required` (a mask) that is missing, as a
 * usage error; -1 when all are there. */
static int
s_require(const ca_opts_t *o, unsigned required)
{
    for (int k = 0; k < OPT_N; k++)
        if ((required & (1u << k)) && !o->val[k])
            return fl_cli_error("%s is required (try --help)", s_opt_names[k]);
    return -1;
}

/* coord_emit, but a result that JSON could not hold (a file name that is
 * not UTF-8) is said as such rather than as a database failure. */
static int
s_emit(json_t *r, bool json, void (*render)(const json_t *, FILE *))
{
    if (!r)
        return fl_cli_fail(fl_fail(FL_EINVAL, "cannot print the result: a name in it is not "
                                              "UTF-8"));
    return coord_emit(r, json, render);
}

/* ------------------------------------------------------------------ init */

static void
s_render_init(const json_t *r, FILE *f)
{
    const char *key = json_string_value(json_object_get(r, "public_key"));
    const char *file = json_string_value(json_object_get(r, "ca_key"));
    fprintf(f, "%s\n", key);
    fprintf(stderr,
            "identity CA key written to %s (mode 0600), public key to %s.pub.\n"
            "Keep %s offline, away from the coordinator's host: whoever holds it can admit\n"
            "identities to secure aggregation. Give the public key above\n"
            "  - to every agent:       covey-agent enroll ... --identity-ca %s\n"
            "  - to the coordinator:   secagg.identity_ca = %s   (coordinator.ini)\n"
            "Certify an agent with:    covey-coordinator ca sign --ca %s --agent-key Z85 "
            "--identity HEX --out NAME.cert\n",
            file, file, file, key, key, file);
}

static int
s_ca_init(int argc, char **argv)
{
    ca_opts_t o;
    fl_signkey_t *ca = NULL;
    char hex[2 * FL_SIGN_PK_LEN + 1], pub[PATH_MAX + 8];
    int rc;

    fl_cli_set_prog("covey-coordinator ca init");
    if ((rc = s_parse(argc, argv, 1u << OPT_OUT, 0, s_init_usage, &o)) >= 0 ||
        (rc = s_require(&o, 1u << OPT_OUT)) >= 0)
        return rc;
    const char *out = o.val[OPT_OUT];
    if (!(ca = fl_signkey_generate()))
        return fl_cli_fail(FL_ENOMEM);
    if ((rc = fl_identity_ca_save(ca, out)) != 0) {
        fl_signkey_destroy(&ca);
        return fl_cli_fail(rc);
    }
    fl_sign_pubkey_hex(fl_signkey_public(ca), hex);
    fl_signkey_destroy(&ca);
    snprintf(pub, sizeof pub, "%s.pub", out);
    return s_emit(json_pack("{s:s, s:s, s:s}", "ca_key", out, "ca_public_file", pub,
                            "public_key", hex),
                  o.json, s_render_init);
}

/* ------------------------------------------------------------------ sign */

static void
s_render_sign(const json_t *r, FILE *f)
{
    fprintf(f, "%s\n", json_string_value(json_object_get(r, "certificate")));
    fprintf(stderr,
            "certificate for agent key %s written to %s.\n"
            "Copy it to the agent and install it there with:\n"
            "    covey-agent enroll --state DIR --identity-ca %s --identity-cert %s\n",
            json_string_value(json_object_get(r, "curve_public_key")),
            json_string_value(json_object_get(r, "file")),
            json_string_value(json_object_get(r, "ca_public_key")),
            json_string_value(json_object_get(r, "file")));
}

static int
s_ca_sign(int argc, char **argv)
{
    const unsigned opts = 1u << OPT_CA | 1u << OPT_AGENT_KEY | 1u << OPT_IDENTITY | 1u << OPT_OUT;
    ca_opts_t o;
    fl_signkey_t *ca = NULL;
    char z85[FL_KEY_Z85_LEN + 1], text[FL_CERT_TEXT_MAX];
    char id_hex[2 * FL_SIGN_PK_LEN + 1], ca_hex[2 * FL_SIGN_PK_LEN + 1];
    uint8_t curve_pk[32], id_pk[FL_SIGN_PK_LEN], ca_pk[FL_SIGN_PK_LEN], cert[FL_CERT_LEN];
    size_t id_len = 0;
    const char *end = NULL;
    int rc;

    fl_cli_set_prog("covey-coordinator ca sign");
    if ((rc = s_parse(argc, argv, opts, 0, s_sign_usage, &o)) >= 0 ||
        (rc = s_require(&o, opts)) >= 0)
        return rc;
    const char *id = o.val[OPT_IDENTITY];
    if (strlen(id) != 2 * FL_SIGN_PK_LEN ||
        sodium_hex2bin(id_pk, sizeof id_pk, id, strlen(id), NULL, &id_len, &end) != 0 ||
        id_len != sizeof id_pk || end != id + strlen(id))
        return fl_cli_error("--identity: expected the agent's identity key, 64 hex digits "
                            "(from 'covey-agent identity')");
    /* Z85 or a .pub file; fl_key_load_public checks the Z85. */
    if ((rc = fl_key_load_public(o.val[OPT_AGENT_KEY], z85)) != 0)
        return fl_cli_fail(fl_fail(rc, "--agent-key: %s", fl_errmsg()));
    if (!zmq_z85_decode(curve_pk, z85))
        return fl_cli_error("--agent-key: not a CURVE public key");
    /* The CA's public half given by mistake: say so, rather than what the
     * secret-file loader would say of it (its mode, its missing secret). */
    if (fl_sign_pubkey_load(o.val[OPT_CA], ca_pk) == 0)
        return fl_cli_error("--ca: '%s' is a public key; give the CA's secret key file (made by "
                            "'ca init')",
                            o.val[OPT_CA]);
    if ((rc = fl_signkey_load(o.val[OPT_CA], &ca)) != 0 ||
        (rc = fl_cert_issue(ca, curve_pk, id_pk, cert)) != 0 ||
        (rc = fl_cert_save(cert, o.val[OPT_OUT])) != 0) {
        fl_signkey_destroy(&ca);
        return fl_cli_fail(rc);
    }
    fl_sign_pubkey_hex(fl_signkey_public(ca), ca_hex);
    fl_signkey_destroy(&ca);
    fl_sign_pubkey_hex(id_pk, id_hex);
    fl_cert_format(cert, text);
    return s_emit(json_pack("{s:s, s:s, s:s, s:s, s:s}", "certificate", text, "file",
                            o.val[OPT_OUT], "curve_public_key", z85, "identity_public_key",
                            id_hex, "ca_public_key", ca_hex),
                  o.json, s_render_sign);
}

/* ------------------------------------------------------------------ show */

static void
s_render_show(const json_t *r, FILE *f)
{
    const json_t *ok = json_object_get(r, "signature_valid");
    fprintf(f, "curve public key     %s\n",
            json_string_value(json_object_get(r, "curve_public_key")));
    fprintf(f, "identity public key  %s\n",
            json_string_value(json_object_get(r, "identity_public_key")));
    if (json_is_null(ok))
        fprintf(f, "signature            not checked (give --ca-pub KEY)\n");
    else
        fprintf(f, "signature            %s identity CA %s\n",
                json_is_true(ok) ? "valid, issued by" : "INVALID for",
                json_string_value(json_object_get(r, "ca_public_key")));
}

static int
s_ca_show(int argc, char **argv)
{
    ca_opts_t o;
    char z85[FL_KEY_Z85_LEN + 1], id_hex[2 * FL_SIGN_PK_LEN + 1], ca_hex[2 * FL_SIGN_PK_LEN + 1];
    uint8_t cert[FL_CERT_LEN], ca_pk[FL_SIGN_PK_LEN];
    int rc, vrc = 0;

    fl_cli_set_prog("covey-coordinator ca show");
    if ((rc = s_parse(argc, argv, 1u << OPT_CA_PUB, 1, s_show_usage, &o)) >= 0)
        return rc;
    if (!o.cert)
        return fl_cli_error("CERT is required: a certificate's text or file (try --help)");
    if (o.val[OPT_CA_PUB] && (rc = fl_sign_pubkey_load(o.val[OPT_CA_PUB], ca_pk)) != 0)
        return fl_cli_fail(fl_fail(rc, "--ca-pub: %s", fl_errmsg()));
    if ((rc = fl_cert_load(o.cert, cert)) != 0)
        return fl_cli_fail(rc);
    zmq_z85_encode(z85, FL_CERT_CURVE_PK(cert), 32);
    fl_sign_pubkey_hex(FL_CERT_ID_PK(cert), id_hex);
    json_t *r = json_pack("{s:s, s:s}", "curve_public_key", z85, "identity_public_key", id_hex);
    if (o.val[OPT_CA_PUB]) {
        fl_sign_pubkey_hex(ca_pk, ca_hex);
        vrc = fl_cert_verify(ca_pk, cert); /* its detail stays until fl_cli_fail below */
        json_object_set_new(r, "ca_public_key", json_string(ca_hex));
        json_object_set_new(r, "signature_valid", json_boolean(vrc == 0));
    } else {
        json_object_set_new(r, "ca_public_key", json_null());
        json_object_set_new(r, "signature_valid", json_null());
    }
    if ((rc = s_emit(r, o.json, s_render_show)) != 0)
        return rc;
    return vrc == 0 ? 0 : fl_cli_fail(vrc);
}

/* --------------------------------------------------------------- dispatch */

int
coord_cmd_ca(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } subs[] = {{"init", s_ca_init}, {"sign", s_ca_sign}, {"show", s_ca_show}};

    fl_cli_set_prog("covey-coordinator ca");
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        fputs(s_ca_usage, stdout);
        return 0;
    }
    if (sodium_init() < 0)
        return fl_cli_error("libsodium failed to initialise");
    for (size_t i = 0; argc >= 2 && i < sizeof subs / sizeof subs[0]; i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].fn(argc - 1, argv + 1);
    if (argc < 2)
        fl_cli_error("a command is required: init, sign or show");
    else
        fl_cli_error("unknown command '%s': init, sign or show", argv[1]);
    fputs(s_ca_usage, stderr);
    return 2;
}
