/*
 * seccmds.c — the coordinator's security commands: join tokens (token
 * create|list|revoke), the tamper-evident audit log (audit [verify|head]) and
 * operator keys with roles (admins add|list|revoke). Every change is audited
 * with the local user as the actor.
 */
#include <jansson.h>
#include <sodium.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "fl_audit.h"
#include "fl_cli.h"
#include "fl_keys.h"
#include "fl_sign.h"
#include "fl_store.h"
#include "fl_token.h"
#include "state.h"

#define DEFAULT_STATE_HELP "(default $COVEY_STATE or /var/lib/covey)"

/* Open the state read-write (the commands that change it). */
static int
s_open_rw(const char *state, coord_paths_t *p, coord_config_t *cfg, fl_store_t **store)
{
    int rc;
    if ((rc = coord_paths(state, p)) != 0 || (rc = coord_config_load(p->config, cfg)) != 0)
        return rc;
    return fl_store_open(p->db, FL_STORE_RW, store);
}

/* A bind address on all interfaces (host * or 0.0.0.0) -> tcp://HOST:PORT, the
 * address agents dial. */
static int
s_public_endpoint(const char *bind, const char *host, char *out, size_t size)
{
    const char *colon = strrchr(bind, ':');
    if (strncmp(bind, "tcp://", 6) != 0 || !colon || colon < bind + 6)
        return fl_fail(FL_EINVAL, "endpoint '%s' is not tcp://HOST:PORT", bind);
    size_t hostlen = (size_t)(colon - (bind + 6));
    if (hostlen == 1 && bind[6] == '*')
        snprintf(out, size, "tcp://%s%s", host, colon);
    else if (hostlen == 7 && strncmp(bind + 6, "0.0.0.0", 7) == 0)
        snprintf(out, size, "tcp://%s%s", host, colon);
    else
        snprintf(out, size, "%s", bind);
    return 0;
}

/* ----------------------------------------------------------------- tokens */

static int
s_token_cb(const fl_token_row_t *r, void *arg)
{
    json_array_append_new(arg, json_pack("{s:I, s:s, s:s, s:I, s:I, s:I}", "id", (json_int_t)r->id,
                                         "name", r->name, "state",
                                         fl_store_token_state(r, fl_wall_ms()), "created_ms",
                                         (json_int_t)r->created_ms, "expires_ms",
                                         (json_int_t)r->expires_ms, "used_ms",
                                         (json_int_t)r->used_ms));
    return 0;
}

static void
s_render_tokens(const json_t *list, FILE *f)
{
    size_t i;
    json_t *t;
    fprintf(f, "%-6s %-24s %-8s %-20s %s\n", "ID", "NAME", "STATE", "EXPIRES", "USED");
    json_array_foreach(list, i, t) {
        char exp[32] = "-", used[32] = "-";
        time_t e = (time_t)(json_integer_value(json_object_get(t, "expires_ms")) / 1000);
        time_t u = (time_t)(json_integer_value(json_object_get(t, "used_ms")) / 1000);
        struct tm tm;
        strftime(exp, sizeof exp, "%Y-%m-%d %H:%M:%S", localtime_r(&e, &tm));
        if (u)
            strftime(used, sizeof used, "%Y-%m-%d %H:%M:%S", localtime_r(&u, &tm));
        fprintf(f, "%-6lld %-24s %-8s %-20s %s\n",
                (long long)json_integer_value(json_object_get(t, "id")),
                json_string_value(json_object_get(t, "name")),
                json_string_value(json_object_get(t, "state")), exp, used);
    }
}

static const char s_token_usage[] =
    "usage: covey-coordinator token create --name NAME [--ttl DURATION] [--host HOST]\n"
    "       covey-coordinator token list [--json]\n"
    "       covey-coordinator token revoke NAME\n"
    "       (all take --state DIR " DEFAULT_STATE_HELP ")\n"
    "\n"
    "One-time join tokens. 'create' prints a token that carries the coordinator's\n"
    "endpoints and public keys and a secret; on the device, 'covey-agent enroll TOKEN'\n"
    "makes the agent's key pair and registers it as NAME. The coordinator keeps only a\n"
    "hash of the secret; a token works once and expires (--ttl, default 1h; e.g. 30m,\n"
    "2h, 7d). --host is the address agents reach this machine at (default: its host\n"
    "name), used where the endpoint binds to * or 0.0.0.0.\n";

static int
s_token_create(const coord_common_opts_t *o, int argc, char **argv)
{
    const char *name = NULL, *ttl = "1h";
    char host[256] = "";
    coord_paths_t p = {0};
    coord_config_t cfg;
    fl_store_t *store = NULL;
    fl_token_t *t = NULL;
    char text[FL_TOKEN_TEXT_MAX], fedid[65];
    uint8_t hash[FL_TOKEN_HASH_LEN];
    int64_t secs = 0, now = fl_wall_ms();
    int rc, exit_code = 1;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc)
            ttl = argv[++i];
        else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            snprintf(host, sizeof host, "%s", argv[++i]);
        else
            return fl_cli_error("token create: unexpected argument '%s' (try --help)", argv[i]);
    }
    if (!name)
        return fl_cli_error("token create: --name NAME is required");
    if (fl_duration_parse(ttl, &secs) != 0)
        return fl_cli_error("--ttl: %s", fl_errmsg());
    if (!host[0] && gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    if (!(t = fl_token_new()))
        return fl_cli_fail(FL_ENOMEM);
    if ((rc = s_open_rw(o->state, &p, &cfg, &store)) != 0 ||
        (rc = coord_federation_id(store, fedid)) != 0 ||
        (rc = fl_key_load_public(p.pub, t->server_key)) != 0 ||
        (rc = fl_sign_pubkey_load(p.sign_pub, t->sign_key)) != 0)
        goto fail;
    if (strcmp(cfg.enroll_endpoint, "off") == 0) {
        rc = fl_fail(FL_ESTATE, "enrollment is off (federation.enroll_endpoint = off)");
        goto fail;
    }
    if (strlen(fedid) >= sizeof t->federation) {
        rc = fl_fail(FL_EFORMAT, "federation id too long");
        goto fail;
    }
    memcpy(t->federation, fedid, strlen(fedid) + 1);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_endpoints = 1;
    if ((rc = s_public_endpoint(cfg.enroll_endpoint, host, t->enroll_endpoint,
                                sizeof t->enroll_endpoint)) != 0 ||
        (rc = s_public_endpoint(cfg.endpoint, host, t->endpoints[0], sizeof t->endpoints[0])) != 0 ||
        (rc = fl_token_create(t, text, sizeof text, hash)) != 0)
        goto fail;
    if ((rc = fl_store_begin(store)) != 0 ||
        (rc = fl_store_token_add(store, name, hash, now, now + secs * 1000, NULL)) != 0 ||
        (rc = coord_audit(store, coord_local_actor(), "token.create", "name=%s ttl_s=%lld", name,
                          (long long)secs)) != 0 ||
        (rc = fl_store_commit(store)) != 0) {
        fl_store_rollback(store);
        goto fail;
    }
    printf("%s\n", text);
    fprintf(stderr,
            "join token for agent '%s', valid once for %s. On the device run:\n"
            "    covey-agent enroll TOKEN --state /var/lib/covey-agent\n"
            "It enrolls over %s; agents then connect to %s.\n",
            name, ttl, t->enroll_endpoint, t->endpoints[0]);
    exit_code = 0;
    goto out;
fail:
    exit_code = fl_cli_fail(rc);
out:
    sodium_memzero(text, sizeof text);
    fl_token_destroy(&t);
    fl_store_destroy(&store);
    return exit_code;
}

int
coord_cmd_token(int argc, char **argv)
{
    coord_common_opts_t o = {.passthrough = true};
    coord_paths_t p = {0};
    coord_config_t cfg;
    fl_store_t *store = NULL;
    int rc;

    fl_cli_set_prog("covey-coordinator token");
    if ((rc = coord_parse_common(argc, argv, &o, s_token_usage, NULL)) != 0 || o.help) {
        free(o.args);
        return rc;
    }
    const char *sub = o.nargs ? o.args[0] : "list";
    if (strcmp(sub, "create") == 0) {
        /* create's own options came through as positional arguments */
        rc = s_token_create(&o, o.nargs - 1, o.args + 1);
    } else if (strcmp(sub, "list") == 0) {
        if ((rc = coord_open_readonly(o.state, &p, &cfg, &store)) == 0) {
            json_t *list = json_array();
            if (fl_store_token_list(store, s_token_cb, list) != 0) {
                json_decref(list);
                list = NULL;
            }
            rc = coord_emit(list, o.json, s_render_tokens);
        } else {
            rc = fl_cli_fail(rc);
        }
    } else if (strcmp(sub, "revoke") == 0 && o.nargs == 2) {
        int64_t n = 0;
        if ((rc = s_open_rw(o.state, &p, &cfg, &store)) == 0 && (rc = fl_store_begin(store)) == 0 &&
            (rc = fl_store_token_revoke(store, o.args[1], &n)) == 0 &&
            (rc = coord_audit(store, coord_local_actor(), "token.revoke", "name=%s count=%lld",
                              o.args[1], (long long)n)) == 0)
            rc = fl_store_commit(store);
        if (rc != 0) {
            fl_store_rollback(store);
            rc = fl_cli_fail(rc);
        } else {
            printf("revoked %lld join token(s) for '%s'\n", (long long)n, o.args[1]);
        }
    } else {
        rc = fl_cli_error("unknown or incomplete subcommand (try --help)");
    }
    fl_store_destroy(&store);
    free(o.args);
    return rc;
}

/* ------------------------------------------------------------------ audit */

static int
s_audit_cb(const fl_audit_row_t *r, void *arg)
{
    char hex[65];
    json_array_append_new(arg, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s}", "seq",
                                         (json_int_t)r->seq, "ts_ms", (json_int_t)r->ts_ms,
                                         "actor", r->actor, "action", r->action, "detail",
                                         r->detail, "hash",
                                         coord_hex(r->hash, 32, hex, sizeof hex)));
    return 0;
}

static void
s_render_audit(const json_t *list, FILE *f)
{
    size_t i;
    json_t *r;
    fprintf(f, "%6s %-19s %-22s %-22s %s\n", "SEQ", "TIME", "ACTOR", "ACTION", "DETAIL");
    json_array_foreach(list, i, r) {
        char ts[32];
        time_t t = (time_t)(json_integer_value(json_object_get(r, "ts_ms")) / 1000);
        struct tm tm;
        strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
        fprintf(f, "%6lld %-19s %-22s %-22s %s\n",
                (long long)json_integer_value(json_object_get(r, "seq")), ts,
                json_string_value(json_object_get(r, "actor")),
                json_string_value(json_object_get(r, "action")),
                json_string_value(json_object_get(r, "detail")));
    }
}

static const char s_audit_usage[] =
    "usage: covey-coordinator audit [list] [--json] [--state DIR]\n"
    "       covey-coordinator audit verify [--head SEQ:HASH] [--state DIR]\n"
    "       covey-coordinator audit head [--state DIR]\n"
    "\n"
    "The append-only audit log: enrolments, token use, revocations, rotations,\n"
    "admin commands with their caller, configuration changes, rounds. Each row holds\n"
    "BLAKE2b(previous hash || row), so 'verify' detects an edited, deleted or\n"
    "reordered row and names the first one. 'head' prints SEQ:HASH of the last row:\n"
    "keep it elsewhere, and 'verify --head SEQ:HASH' later detects a rewritten or\n"
    "truncated tail, which the chain alone cannot.\n";

int
coord_cmd_audit(int argc, char **argv)
{
    coord_common_opts_t o = {.passthrough = true};
    coord_paths_t p = {0};
    coord_config_t cfg;
    fl_store_t *store = NULL;
    int rc;

    fl_cli_set_prog("covey-coordinator audit");
    if ((rc = coord_parse_common(argc, argv, &o, s_audit_usage, NULL)) != 0 || o.help) {
        free(o.args);
        return rc;
    }
    const char *sub = o.nargs ? o.args[0] : "list";
    if ((rc = coord_open_readonly(o.state, &p, &cfg, &store)) != 0) {
        free(o.args);
        return fl_cli_fail(rc);
    }
    if (strcmp(sub, "list") == 0) {
        json_t *list = json_array();
        if (fl_audit_list(store, 0, s_audit_cb, list) != 0) {
            json_decref(list);
            list = NULL;
        }
        rc = coord_emit(list, o.json, s_render_audit);
    } else if (strcmp(sub, "verify") == 0) {
        int64_t bad = 0, seq = 0;
        uint8_t hash[32];
        char reason[512] = "";
        if (o.nargs == 3 && strcmp(o.args[1], "--head") == 0) {
            if (fl_audit_head_parse(o.args[2], &seq, hash) != 0)
                rc = fl_cli_error("--head: %s", fl_errmsg());
            else
                rc = fl_audit_verify_head(store, seq, hash, &bad, reason, sizeof reason);
        } else if (o.nargs == 1) {
            rc = fl_audit_verify(store, &bad, reason, sizeof reason);
        } else {
            rc = fl_cli_error("usage: audit verify [--head SEQ:HASH]");
        }
        if (rc == 0) {
            printf("audit log intact\n");
        } else if (rc != 2) {
            fprintf(stderr, "covey-coordinator audit: AUDIT LOG TAMPERED: %s\n",
                    reason[0] ? reason : fl_errmsg());
            rc = 1;
        }
    } else if (strcmp(sub, "head") == 0) {
        int64_t seq = 0;
        uint8_t hash[32];
        char text[FL_AUDIT_HEAD_STR_MAX];
        if ((rc = fl_audit_head(store, &seq, hash)) != 0) {
            rc = fl_cli_fail(rc);
        } else {
            fl_audit_head_format(seq, hash, text);
            printf("%s\n", text);
        }
    } else {
        rc = fl_cli_error("unknown subcommand '%s' (try --help)", sub);
    }
    fl_store_destroy(&store);
    free(o.args);
    return rc;
}

/* ----------------------------------------------------------------- admins */

static int
s_admin_cb(const fl_admin_row_t *r, void *arg)
{
    json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:b, s:I}", "name", r->name,
                                         "public_key", r->pubkey, "role", r->role, "revoked",
                                         r->revoked, "created_ms", (json_int_t)r->created_ms));
    return 0;
}

static void
s_render_admins(const json_t *list, FILE *f)
{
    size_t i;
    json_t *a;
    fprintf(f, "%-20s %-9s %-8s %s\n", "NAME", "ROLE", "STATE", "PUBLIC KEY");
    json_array_foreach(list, i, a) {
        fprintf(f, "%-20s %-9s %-8s %s\n", json_string_value(json_object_get(a, "name")),
                json_string_value(json_object_get(a, "role")),
                json_is_true(json_object_get(a, "revoked")) ? "revoked" : "active",
                json_string_value(json_object_get(a, "public_key")));
    }
}

static const char s_admins_usage[] =
    "usage: covey-coordinator admins [list] [--json]\n"
    "       covey-coordinator admins add NAME PUBLIC_KEY --role viewer|operator\n"
    "       covey-coordinator admins revoke NAME\n"
    "       (all take --state DIR " DEFAULT_STATE_HELP ")\n"
    "\n"
    "Operator keys for remote administration over CURVE. A viewer may read status\n"
    "and listings; an operator may do everything. Make a key pair with\n"
    "'covey-agent keygen --out admin.key' and add its public key here.\n";

int
coord_cmd_admins(int argc, char **argv)
{
    coord_common_opts_t o = {.passthrough = true};
    coord_paths_t p = {0};
    coord_config_t cfg;
    fl_store_t *store = NULL;
    int rc;

    fl_cli_set_prog("covey-coordinator admins");
    if ((rc = coord_parse_common(argc, argv, &o, s_admins_usage, NULL)) != 0 || o.help) {
        free(o.args);
        return rc;
    }
    const char *sub = o.nargs ? o.args[0] : "list";
    if (strcmp(sub, "list") == 0) {
        if ((rc = coord_open_readonly(o.state, &p, &cfg, &store)) == 0) {
            json_t *list = json_array();
            if (fl_store_admin_list(store, s_admin_cb, list) != 0) {
                json_decref(list);
                list = NULL;
            }
            rc = coord_emit(list, o.json, s_render_admins);
        } else {
            rc = fl_cli_fail(rc);
        }
    } else if (strcmp(sub, "add") == 0 && o.nargs == 5 && strcmp(o.args[3], "--role") == 0) {
        char key[41];
        if ((rc = fl_key_load_public(o.args[2], key)) == 0 &&
            (rc = s_open_rw(o.state, &p, &cfg, &store)) == 0 && (rc = fl_store_begin(store)) == 0 &&
            (rc = fl_store_admin_add(store, o.args[1], key, o.args[4], fl_wall_ms(), NULL)) == 0 &&
            (rc = coord_audit(store, coord_local_actor(), "admin.add", "name=%s role=%s key=%s",
                              o.args[1], o.args[4], key)) == 0)
            rc = fl_store_commit(store);
        if (rc != 0) {
            fl_store_rollback(store);
            rc = fl_cli_fail(rc);
        } else {
            printf("admin '%s' added as %s\n", o.args[1], o.args[4]);
        }
    } else if (strcmp(sub, "revoke") == 0 && o.nargs == 2) {
        if ((rc = s_open_rw(o.state, &p, &cfg, &store)) == 0 && (rc = fl_store_begin(store)) == 0 &&
            (rc = fl_store_admin_revoke(store, o.args[1], fl_wall_ms())) == 0 &&
            (rc = coord_audit(store, coord_local_actor(), "admin.revoke", "name=%s",
                              o.args[1])) == 0)
            rc = fl_store_commit(store);
        if (rc != 0) {
            fl_store_rollback(store);
            rc = fl_cli_fail(rc);
        } else {
            printf("admin '%s' revoked\n", o.args[1]);
        }
    } else {
        rc = fl_cli_error("unknown or incomplete subcommand (try --help)");
    }
    fl_store_destroy(&store);
    free(o.args);
    return rc;
}
