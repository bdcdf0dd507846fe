/*
 * commands.c — the coordinator's operator commands: init, run, status,
 * agents, rounds, export. Each parses its own options and returns the exit
 * code (0 ok, 1 failure, 2 usage). See commands.h.
 */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "daemon.h"
#include "fl_cli.h"
#include "fl_keys.h"
#include "fl_log.h"
#include "fl_model.h"
#include "fl_safetensors.h"
#include "fl_seal.h"
#include "fl_sign.h"
#include "fl_store.h"
#include "state.h"
#include "status.h"

#define DEFAULT_STATE "/var/lib/covey"


/* ------------------------------------------------------------------ init */

static void
s_usage_init(FILE *f)
{
    fprintf(f,
            "usage: covey-coordinator init --state DIR [OPTIONS]\n"
            "\n"
            "Create a coordinator state directory: the SQLite database, the coordinator's\n"
            "CURVE key pair (DIR/server.key, mode 0600, and DIR/server.key.pub), a documented\n"
            "configuration file (DIR/coordinator.ini) and the initial model (checkpoint 0).\n"
            "\n"
            "  --state DIR             the state directory (created, mode 0700)\n"
            "  --model SPEC            model architecture (default mlp:784-256-10)\n"
            "  --model-init FILE       start from this safetensors model (fine-tuning)\n"
            "  --seed N                seed of the initial weights (default 1)\n"
            "  --set SECTION.KEY=VAL   set a configuration value (repeatable), e.g.\n"
            "                          --set rounds.rounds=50 --set federation.endpoint=tcp://*:7700\n"
            "  -h, --help              show this help\n");
}

int
coord_cmd_init(int argc, char **argv)
{
    static const struct option lo[] = {{"state", required_argument, NULL, 's'},
                                       {"model", required_argument, NULL, 'm'},
                                       {"model-init", required_argument, NULL, 'i'},
                                       {"seed", required_argument, NULL, 'S'},
                                       {"set", required_argument, NULL, 'c'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *state = NULL, *init_file = NULL;
    coord_config_t cfg;
    coord_paths_t p = {0};
    fl_store_t *store = NULL;
    fl_keypair_t *kp = NULL;
    fl_datakey_t *dk = NULL;
    fl_signkey_t *sk = NULL;
    fl_model_t *model = NULL;
    FILE *f = NULL;
    int c, rc, exit_code = 1;
    char fedid[33];
    uint8_t digest[32], rnd[16];

    fl_cli_set_prog("covey-coordinator init");
    coord_config_default(&cfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'i': init_file = optarg; break;
        case 'm':
            if (coord_config_set(&cfg, "model.spec", optarg) != 0)
                return fl_cli_error("--model: %s", fl_errmsg());
            break;
        case 'S':
            if (coord_config_set(&cfg, "model.seed", optarg) != 0)
                return fl_cli_error("--seed: %s", fl_errmsg());
            break;
        case 'c': {
            char kv[512];
            snprintf(kv, sizeof kv, "%s", optarg);
            char *eq = strchr(kv, '=');
            if (!eq)
                return fl_cli_error("--set '%s': expected SECTION.KEY=VALUE", optarg);
            *eq = 0;
            if (coord_config_set(&cfg, kv, eq + 1) != 0)
                return fl_cli_error("--set: %s", fl_errmsg());
            break;
        }
        case 'h': s_usage_init(stdout); return 0;
        default: return fl_cli_error("unknown option (try --help)");
        }
    }
    if (!state)
        return fl_cli_error("--state DIR is required (try --help)");
    if (optind < argc)
        return fl_cli_error("unexpected argument '%s'", argv[optind]);
    if (coord_config_validate(&cfg) != 0)
        return fl_cli_error("%s", fl_errmsg());
    if (coord_paths(state, &p) != 0)
        return fl_cli_fail(FL_EINVAL);
    if (mkdir(state, 0700) != 0 && errno != EEXIST)
        return fl_cli_error("cannot create %s: %s", state, strerror(errno));
    if (access(p.db, F_OK) == 0)
        return fl_cli_error("%s already holds a federation (%s exists); choose another "
                            "directory", state, p.db);

    /* the initial model: from the spec and seed, or a pretrained file */
    if ((rc = fl_model_new(cfg.spec, 1, &model)) != 0)
        goto fail;
    fl_model_init(model, cfg.seed);
    if (init_file && (rc = fl_safetensors_load(init_file, fl_model_params(model))) != 0)
        goto fail;
    if ((rc = fl_params_check_finite(fl_model_params(model))) != 0)
        goto fail;
    coord_model_digest(fl_model_params(model), digest);

    kp = fl_keypair_generate();
    dk = fl_datakey_generate();
    sk = fl_signkey_generate();
    if (!kp || !dk || !sk) {
        rc = fl_fail(FL_ENOMEM, "cannot make keys");
        goto fail;
    }
    if ((rc = fl_keypair_save(kp, p.key)) != 0 || (rc = fl_datakey_save(dk, p.data_key)) != 0 ||
        (rc = fl_signkey_save(sk, p.sign_key)) != 0)
        goto fail;
    f = fopen(p.config, "wx");
    if (!f) {
        fl_cli_error("cannot create %s: %s", p.config, strerror(errno));
        goto out;
    }
    coord_config_write(&cfg, f);
    fclose(f);
    f = NULL;

    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(fedid, sizeof fedid, rnd, sizeof rnd);
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)fl_wall_ms());
    if ((rc = fl_store_open(p.db, FL_STORE_CREATE, &store)) != 0 ||
        (rc = fl_store_begin(store)) != 0 ||
        (rc = fl_store_meta_set(store, "federation_id", fedid)) != 0 ||
        (rc = fl_store_meta_set(store, "created_ms", now)) != 0 ||
        (rc = fl_store_meta_set(store, "model_spec", cfg.spec)) != 0 ||
        (rc = coord_checkpoint_save(store, dk, fedid, 0, digest,
                                    fl_params_data(fl_model_params(model)),
                                    fl_params_numel(fl_model_params(model)) * sizeof(float), NULL,
                                    0, fl_wall_ms(), NULL, 0)) != 0 ||
        (rc = fl_store_commit(store)) != 0)
        goto fail;

    printf("Initialised federation '%s' in %s\n"
           "  model            %s (%zu parameters)%s%s\n"
           "  agents' endpoint %s\n"
           "  server key       %s (public: %s)\n"
           "  data key         %s (seals checkpoints; keep a backup apart from the database)\n"
           "  signing key      %s (public: %s.pub)\n"
           "  configuration    %s\n"
           "\n"
           "Next: covey-coordinator run --state %s\n"
           "Admit an agent:   covey-coordinator agents add NAME AGENT_PUBLIC_KEY --state %s\n",
           cfg.name, state, cfg.spec, fl_params_numel(fl_model_params(model)),
           init_file ? ", initialised from " : "", init_file ? init_file : "", cfg.endpoint, p.key,
           fl_keypair_public(kp), p.data_key, p.sign_key, p.sign_key, p.config, state, state);
    exit_code = 0;
    goto out;
fail:
    exit_code = fl_cli_fail(rc);
out:
    if (f)
        fclose(f);
    fl_store_destroy(&store);
    fl_keypair_destroy(&kp);
    fl_datakey_destroy(&dk);
    fl_signkey_destroy(&sk);
    fl_model_destroy(&model);
    return exit_code;
}

/* ------------------------------------------------------------------- run */

int
coord_cmd_run(int argc, char **argv)
{
    static const struct option lo[] = {{"state", required_argument, NULL, 's'},
                                       {"exit-when-done", no_argument, NULL, 'x'},
                                       {"log-level", required_argument, NULL, 'l'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    coord_run_opts_t o = {.state_dir = NULL};
    fl_loglevel_t lv;
    int c;
    fl_cli_set_prog("covey-coordinator run");
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 's': o.state_dir = optarg; break;
        case 'x': o.exit_when_done = true; break;
        case 'l':
            if (fl_log_parse_level(optarg, &lv) != 0)
                return fl_cli_error("--log-level: %s", fl_errmsg());
            o.log_level = optarg;
            break;
        case 'h':
            printf("usage: covey-coordinator run --state DIR [OPTIONS]\n"
                   "\n"
                   "Run the coordinator daemon: agents connect over CurveZMQ to the configured\n"
                   "endpoint; operators use 'status' on this machine. Logs go to stderr in\n"
                   "logfmt. SIGTERM/SIGINT stop it cleanly; SIGHUP reloads the configuration.\n"
                   "\n"
                   "  --state DIR          the state directory made by 'init'\n"
                   "  --exit-when-done     exit once the configured rounds are complete\n"
                   "  --log-level LEVEL    debug, info, warn or error (overrides [log] level)\n"
                   "  -h, --help           show this help\n");
            return 0;
        default: return fl_cli_error("unknown option (try --help)");
        }
    }
    if (!o.state_dir)
        return fl_cli_error("--state DIR is required (try --help)");
    return coord_run(&o);
}

/* ---------------------------------------------- status, agents, rounds */

/*
 * Parse --state DIR, --json, --watch[=SECS], --help and positional arguments.
 * Parsed by hand rather than with getopt because positional arguments are
 * often CURVE keys, and Z85 keys may begin with '-', even "--" (a 40-character
 * Z85 key is always taken as an argument). "--" ends the options.
 */
int
coord_parse_common(int argc, char **argv, coord_common_opts_t *o, const char *usage, int *watch)
{
    bool opts_done = false, pass = o->passthrough;
    memset(o, 0, sizeof *o);
    o->passthrough = pass;
    o->state = getenv("COVEY_STATE") ? getenv("COVEY_STATE") : DEFAULT_STATE;
    o->args = fl_xcalloc((size_t)argc + 1, sizeof *o->args);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || strncmp(a, "--", 2) != 0 || strcmp(a, "--") == 0) {
            if (!opts_done && strcmp(a, "--") == 0)
                opts_done = true;
            else if (!opts_done && strcmp(a, "-h") == 0)
                goto help;
            else
                o->args[o->nargs++] = argv[i];
        } else if (strcmp(a, "--help") == 0) {
            goto help;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if ((strcmp(a, "--remote") == 0 || strcmp(a, "--server-key") == 0 ||
                    strcmp(a, "--key") == 0) && !o->passthrough) {
            if (i + 1 >= argc)
                return fl_cli_error("%s needs a value (try --help)", a);
            const char **dst = a[2] == 'r' ? &o->remote : a[2] == 's' ? &o->server_key : &o->key;
            *dst = argv[++i];
        } else if (strcmp(a, "--state") == 0 || strncmp(a, "--state=", 8) == 0) {
            if (a[7] == '=')
                o->state = a + 8;
            else if (i + 1 < argc)
                o->state = argv[++i];
            else
                return fl_cli_error("--state needs a directory (try --help)");
        } else if (watch && (strcmp(a, "--watch") == 0 || strncmp(a, "--watch=", 8) == 0)) {
            uint64_t secs = 2;
            if (a[7] == '=' && fl_cli_u64(a + 8, "--watch", 1, 3600, &secs) != 0)
                return 2;
            *watch = (int)secs;
        } else if (o->passthrough || (strlen(a) == 40 && fl_key_check_z85(a) == 0)) {
            /* (a Z85 key that happens to begin with "--": 1 in 7225 keys) */
            o->args[o->nargs++] = argv[i];
        } else {
            return fl_cli_error("unknown option '%s' (try --help)", a);
        }
    }
    if (o->remote && (!o->server_key || !o->key))
        return fl_cli_error("--remote needs --server-key and --key (try --help)");
    return 0;
help:
    fputs(usage, stdout);
    o->help = true;
    return 0;
}

/*
 * Ask the running coordinator: over the local admin socket (DIR/admin.sock),
 * or with --remote over CURVE with an admin key. Returns the JSON reply, or
 * NULL: when no coordinator answers within the timeout (locally: it is not
 * running; *refused stays false), or when it answered with an error (the
 * reason in fl_errmsg(); *refused set).
 */
static json_t *
s_admin_call(const coord_common_opts_t *o, const coord_paths_t *p, json_t *req, bool *refused)
{
    struct stat st;
    json_t *reply = NULL;
    fl_keypair_t *kp = NULL;
    char server[41];
    *refused = false;
    if (!o->remote && stat(p->admin, &st) != 0)
        return NULL;
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0, timeout = 5000, is_server = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    if (o->remote) {
        if (fl_key_load_public(o->server_key, server) != 0 ||
            fl_keypair_load(o->key, &kp) != 0) {
            *refused = true;
            goto out;
        }
        zmq_setsockopt(s, ZMQ_CURVE_SERVER, &is_server, sizeof is_server);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, fl_keypair_public(kp), 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, fl_keypair_secret(kp), 40);
    }
    if (zmq_connect(s, o->remote ? o->remote : p->admin_endpoint) == 0) {
        char *body = json_dumps(req, JSON_COMPACT);
        if (zmq_send(s, body, strlen(body), 0) >= 0) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, 0) >= 0) {
                json_error_t err;
                reply = json_loadb(zmq_msg_data(&m), zmq_msg_size(&m), 0, &err);
            }
            zmq_msg_close(&m);
        }
        free(body);
    }
    if (!reply && o->remote) {
        *refused = true;
        fl_fail(FL_ETIMEOUT, "no answer from %s (is the admin endpoint on, the key admitted as an "
                "admin, --server-key right?)", o->remote);
    }
out:
    zmq_close(s);
    zmq_ctx_term(ctx);
    fl_keypair_destroy(&kp);
    if (reply && json_object_get(reply, "error")) {
        fl_fail(FL_EPERM, "coordinator: %s", json_string_value(json_object_get(reply, "error")));
        json_decref(reply);
        *refused = true;
        return NULL;
    }
    return reply;
}

/* s_admin_call with a request {"cmd": cmd}. */
static json_t *
s_admin_request(const coord_common_opts_t *o, const coord_paths_t *p, const char *cmd,
                bool *refused)
{
    json_t *req = json_pack("{s:s}", "cmd", cmd);
    json_t *reply = s_admin_call(o, p, req, refused);
    json_decref(req);
    return reply;
}

/* Open the state read-only (for when the coordinator is down). */
int
coord_open_readonly(const char *state, coord_paths_t *p, coord_config_t *cfg, fl_store_t **store)
{
    int rc;
    if ((rc = coord_paths(state, p)) != 0)
        return rc;
    if ((rc = coord_config_load(p->config, cfg)) != 0)
        return rc;
    return fl_store_open(p->db, FL_STORE_READONLY, store);
}

static void
s_print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    fputc('\n', stdout);
}

/* Print a listing as JSON or through `render`, and release it; a NULL listing
 * is a database failure. Returns the exit code. */
int
coord_emit(json_t *list, bool json, void (*render)(const json_t *, FILE *))
{
    if (!list)
        return fl_cli_fail(FL_EDB);
    if (json)
        s_print_json(list);
    else
        render(list, stdout);
    json_decref(list);
    return 0;
}

int
coord_cmd_status(int argc, char **argv)
{
    coord_common_opts_t o = {0};
    coord_paths_t p = {0};
    coord_config_t cfg;
    fl_store_t *store = NULL;
    int watch = 0, rc, exit_code = 1;
    fl_cli_set_prog("covey-coordinator status");
    if ((rc = coord_parse_common(argc, argv, &o,
                             "usage: covey-coordinator status [--state DIR] [--json] "
                             "[--watch[=SECS]]\n"
                             "\n"
                             "The federation at a glance: coordinator, round and phase with "
                             "progress and\ndeadline, agents online/stale, last checkpoint, "
                             "metric history.\nAsks the running coordinator over its admin "
                             "socket; when it is down, reads\nthe database read-only and says "
                             "so.\n\n"
                             "  --state DIR     state directory (default $COVEY_STATE or "
                             DEFAULT_STATE ")\n"
                             "  --json          machine-readable output\n"
                             "  --watch[=SECS]  refresh every SECS seconds (default 2)\n"
                             "  --remote EP     ask a coordinator elsewhere over CURVE, e.g.\n"
                             "                  tcp://coord:7702 (its admin endpoint), with\n"
                             "  --server-key K  its public key (Z85 or server.key.pub) and\n"
                             "  --key FILE      your admin key pair (see 'admins --help')\n"
                             "  -h, --help      show this help\n",
                             &watch)) != 0 ||
        o.help) {
        free(o.args);
        return rc;
    }
    if (o.nargs) {
        rc = fl_cli_error("unexpected argument '%s' (try --help)", o.args[0]);
        free(o.args);
        return rc;
    }
    free(o.args);
    do {
        json_t *st = NULL;
        bool refused = false;
        if (o.remote) {
            if (!(st = s_admin_request(&o, &p, "status", &refused)))
                return fl_cli_fail(FL_EPERM);
        } else {
            if ((rc = coord_open_readonly(o.state, &p, &cfg, &store)) != 0)
                return fl_cli_fail(rc);
            st = s_admin_request(&o, &p, "status", &refused);
            if (!st && !refused)
                st = status_build(store, &cfg, NULL, 0);
            fl_store_destroy(&store);
            if (!st)
                return fl_cli_fail(FL_EDB);
        }
        if (watch)
            fputs("\033[H\033[2J", stdout);
        if (o.json)
            s_print_json(st);
        else
            status_render(st, stdout);
        fflush(stdout);
        json_decref(st);
        exit_code = 0;
        if (watch)
            sleep((unsigned)watch);
    } while (watch);
    return exit_code;
}

static void
s_usage_agents(FILE *f)
{
    fprintf(f, "usage: covey-coordinator agents [list] [--state DIR] [--json]\n"
               "       covey-coordinator agents add NAME PUBLIC_KEY [--state DIR]\n"
               "       covey-coordinator agents revoke NAME [--state DIR]\n"
               "       covey-coordinator agents rotate NAME NEW_PUBLIC_KEY [--state DIR]\n"
               "\n"
               "List the enrolled agents, admit an agent by its CURVE public key (the 40-character\n"
               "Z85 key printed by 'covey-agent keygen', or its .pub file), revoke one (its\n"
               "key is refused at once, on every message), or move one to a new key (the old\n"
               "key is refused from then on). Every change is audited.\n"
               "\n"
               "  --state DIR     state directory (default $COVEY_STATE or " DEFAULT_STATE ")\n"
               "  --json          machine-readable output (list)\n"
               "  -h, --help      show this help\n");
}

static int s_agents(const coord_common_opts_t *op, const char *sub, char **args, int nargs);

int
coord_cmd_agents(int argc, char **argv)
{
    coord_common_opts_t o = {0};
    const char *sub = "list";
    int rc, exit_code;
    char usage[2048];
    FILE *uf = fmemopen(usage, sizeof usage, "w");
    s_usage_agents(uf);
    fclose(uf);

    fl_cli_set_prog("covey-coordinator agents");
    if ((rc = coord_parse_common(argc, argv, &o, usage, NULL)) != 0 || o.help) {
        free(o.args);
        return rc;
    }
    int nargs = o.nargs;
    char **args = o.args;
    if (nargs > 0) {
        sub = args[0];
        args++;
        nargs--;
    }
    exit_code = s_agents(&o, sub, args, nargs);
    free(o.args);
    return exit_code;
}

static int
s_agents(const coord_common_opts_t *op, const char *sub, char **args, int nargs)
{
    const coord_common_opts_t o = *op;
    coord_paths_t p = {0};
    coord_config_t cfg;
    fl_store_t *store = NULL;
    int rc, exit_code = 1;

    if (strcmp(sub, "list") == 0) {
        bool refused = false;
        if (nargs)
            return fl_cli_error("unexpected argument '%s'", args[0]);
        if (o.remote) {
            json_t *list = s_admin_request(&o, &p, "agents", &refused);
            return list ? coord_emit(list, o.json, status_render_agents) : fl_cli_fail(FL_EPERM);
        }
        if ((rc = coord_open_readonly(o.state, &p, &cfg, &store)) != 0)
            return fl_cli_fail(rc);
        json_t *list = s_admin_request(&o, &p, "agents", &refused);
        if (!list && !refused)
            list = status_agents(store, NULL);
        fl_store_destroy(&store);
        return coord_emit(list, o.json, status_render_agents);
    }
    if (strcmp(sub, "revoke") == 0 && o.remote) {
        bool refused = false;
        if (nargs != 1)
            return fl_cli_error("usage: agents revoke NAME");
        json_t *req = json_pack("{s:s, s:s}", "cmd", "revoke", "name", args[0]);
        json_t *reply = s_admin_call(&o, &p, req, &refused);
        json_decref(req);
        if (!reply)
            return fl_cli_fail(FL_EPERM);
        printf("agent '%s' revoked\n", args[0]);
        json_decref(reply);
        return 0;
    }
    if (strcmp(sub, "add") == 0 || strcmp(sub, "revoke") == 0 || strcmp(sub, "rotate") == 0) {
        bool with_key = strcmp(sub, "revoke") != 0;
        char key[41] = "";
        int64_t id;
        if (nargs != (with_key ? 2 : 1))
            return fl_cli_error("usage: agents %s NAME%s", sub, with_key ? " PUBLIC_KEY" : "");
        if ((rc = coord_paths(o.state, &p)) != 0 ||
            (rc = fl_store_open(p.db, FL_STORE_RW, &store)) != 0)
            return fl_cli_fail(rc);
        /* the change and its audit row commit together */
        fl_agent_row_t before;
        if (!with_key && fl_store_agent_get_by_name(store, args[0], &before) == 0)
            snprintf(key, sizeof key, "%s", before.pubkey); /* audited: the key revoked */
        if ((!with_key || (rc = fl_key_load_public(args[1], key)) == 0) &&
            (rc = fl_store_begin(store)) == 0) {
            if (strcmp(sub, "add") == 0)
                rc = fl_store_agent_add(store, args[0], key, fl_wall_ms(), &id);
            else if (strcmp(sub, "rotate") == 0)
                rc = fl_store_agent_set_key(store, args[0], key);
            else
                rc = fl_store_agent_set_status(store, args[0], "revoked");
            if (rc == 0 && (rc = coord_audit(store, coord_local_actor(), sub[0] == 'a' ? "agent.add"
                                             : sub[0] == 'r' && sub[1] == 'o' ? "agent.rotate"
                                                                               : "agent.revoke",
                                             "name=%s key=%s", args[0], key)) == 0)
                rc = fl_store_commit(store);
        }
        if (rc != 0) {
            fl_store_rollback(store);
            exit_code = fl_cli_fail(rc);
        } else {
            printf("agent '%s' %s\n", args[0],
                   sub[0] == 'a' ? "admitted" : sub[1] == 'o' ? "now uses the new key" : "revoked");
            exit_code = 0;
        }
        fl_store_destroy(&store);
        return exit_code;
    }
    return fl_cli_error("unknown subcommand '%s' (try --help)", sub);
}

int
coord_cmd_rounds(int argc, char **argv)
{
    coord_common_opts_t o = {0};
    coord_paths_t p = {0};
    coord_config_t cfg;
    fl_store_t *store = NULL;
    int rc;
    fl_cli_set_prog("covey-coordinator rounds");
    if ((rc = coord_parse_common(argc, argv, &o,
                             "usage: covey-coordinator rounds [--state DIR] [--json]\n"
                             "\n"
                             "Every round attempt with its phase, outcome, updates and metrics.\n"
                             "\n"
                             "  --state DIR     state directory (default $COVEY_STATE or " DEFAULT_STATE ")\n"
                             "  --json          machine-readable output\n"
                             "  -h, --help      show this help\n",
                             NULL)) != 0 ||
        o.help || o.nargs) {
        if (rc == 0 && o.nargs)
            rc = fl_cli_error("unexpected argument '%s'", o.args[0]);
        free(o.args);
        return rc;
    }
    free(o.args);
    if ((rc = coord_open_readonly(o.state, &p, &cfg, &store)) != 0)
        return fl_cli_fail(rc);
    json_t *list = status_rounds(store, 0);
    fl_store_destroy(&store);
    return coord_emit(list, o.json, status_render_rounds);
}

int
coord_cmd_export(int argc, char **argv)
{
    static const struct option lo[] = {{"state", required_argument, NULL, 's'},
                                       {"round", required_argument, NULL, 'r'},
                                       {"out", required_argument, NULL, 'o'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *state = getenv("COVEY_STATE") ? getenv("COVEY_STATE") : DEFAULT_STATE, *out = NULL;
    int64_t round = -1;
    int c, rc;
    coord_paths_t p = {0};
    coord_config_t cfg;
    fl_store_t *store = NULL;
    fl_params_t *params = NULL;
    fl_checkpoint_info_t info;
    fl_datakey_t *dk = NULL;
    uint8_t *model = NULL, *st = NULL;
    size_t mlen = 0, slen = 0;

    fl_cli_set_prog("covey-coordinator export");
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'o': out = optarg; break;
        case 'r': {
            uint64_t r;
            if (fl_cli_u64(optarg, "--round", 0, INT64_MAX, &r) != 0)
                return 2;
            round = (int64_t)r;
            break;
        }
        case 'h':
            printf("usage: covey-coordinator export --out FILE.safetensors [--round N] "
                   "[--state DIR]\n"
                   "\n"
                   "Write the global model of round N (default: the latest checkpoint) as a\n"
                   "safetensors file, loadable by PyTorch (safetensors.torch.load_file) and by\n"
                   "'covey-agent eval --load'.\n");
            return 0;
        default: return fl_cli_error("unknown option (try --help)");
        }
    }
    if (!out)
        return fl_cli_error("--out FILE is required (try --help)");
    char fedid[65];
    if ((rc = coord_open_readonly(state, &p, &cfg, &store)) != 0 ||
        (rc = fl_datakey_load(p.data_key, &dk)) != 0 ||
        (rc = coord_federation_id(store, fedid)) != 0 ||
        (rc = coord_checkpoint_open(store, dk, fedid, round, &info, &model, &mlen, &st, &slen)) !=
            0 ||
        (rc = coord_model_from_bytes(cfg.spec, model, mlen, &params)) != 0) {
        rc = fl_cli_fail(rc);
        goto done;
    }
    const char *meta[] = {"format", "pt", "covey_model", cfg.spec, NULL};
    if ((rc = fl_safetensors_save(out, params, meta)) != 0) {
        rc = fl_cli_fail(rc);
        goto done;
    }
    printf("exported the global model of round %lld (%s) to %s\n", (long long)info.round,
           cfg.spec, out);
    rc = 0;
done:
    free(model);
    free(st);
    fl_datakey_destroy(&dk);
    fl_params_destroy(&params);
    fl_store_destroy(&store);
    return rc;
}
