/*
 * status.c — build and render the operator's view. See status.h.
 */
#include "status.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fl_dp.h"
#include "fl_model.h"
#include "state.h"

/* ------------------------------------------------------------- building */

typedef struct {
    json_t *arr;
} list_ctx_t;

static int
s_round_cb(const fl_round_row_t *r, void *arg)
{
    list_ctx_t *ctx = arg;
    json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f}", "round",
                          (json_int_t)r->round, "attempt", (json_int_t)r->attempt, "phase",
                          r->phase, "outcome", r->outcome, "started_ms",
                          (json_int_t)r->started_ms, "ended_ms", (json_int_t)r->ended_ms,
                          "expected", (json_int_t)r->expected, "received",
                          (json_int_t)r->received, "rejected", (json_int_t)r->rejected,
                          "train_loss", r->train_loss, "train_accuracy", r->train_acc);
    if (r->has_eval) {
        json_object_set_new(o, "eval_loss", json_real(r->eval_loss));
        json_object_set_new(o, "eval_accuracy", json_real(r->eval_acc));
        json_object_set_new(o, "eval_samples", json_integer((json_int_t)r->eval_n));
    }
    json_array_append_new(ctx->arr, o);
    return 0;
}

json_t *
status_rounds(fl_store_t *store, int64_t limit)
{
    list_ctx_t ctx = {json_array()};
    if (fl_store_round_list(store, limit, s_round_cb, &ctx) != 0) {
        json_decref(ctx.arr);
        return NULL;
    }
    return ctx.arr;
}

typedef struct {
    json_t *arr;
    const status_live_t *live;
    int64_t enrolled, online, stale, revoked;
} agents_ctx_t;

static int
s_agent_cb(const fl_agent_row_t *a, void *arg)
{
    agents_ctx_t *ctx = arg;
    bool revoked = strcmp(a->status, "active") != 0;
    bool online = !revoked && ctx->live && ctx->live->is_online(a->pubkey, ctx->live->arg);
    const char *state = revoked ? "revoked" : online ? "online" : ctx->live ? "stale" : "unknown";
    if (ctx->arr)
        json_array_append_new(
            ctx->arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I}", "name", a->name,
                                "public_key", a->pubkey, "state", state, "created_ms",
                                (json_int_t)a->created_ms, "last_seen_ms",
                                (json_int_t)a->last_seen_ms, "version", a->version, "n_train",
                                (json_int_t)a->n_train, "n_test", (json_int_t)a->n_test));
    if (revoked) {
        ctx->revoked++;
    } else {
        ctx->enrolled++;
        ctx->online += online;
        ctx->stale += !online;
    }
    return 0;
}

json_t *
status_agents(fl_store_t *store, const status_live_t *live)
{
    agents_ctx_t ctx = {.arr = json_array(), .live = live};
    if (fl_store_agent_list(store, s_agent_cb, &ctx) != 0) {
        json_decref(ctx.arr);
        return NULL;
    }
    return ctx.arr;
}

static json_t *
s_history(fl_store_t *store, int64_t history)
{
    /* one entry per completed round, from the round rows (they carry eval too) */
    json_t *rounds = status_rounds(store, 0), *out = json_array();
    size_t i;
    json_t *r;
    if (!rounds)
        return out;
    json_array_foreach(rounds, i, r) {
        if (strcmp(json_string_value(json_object_get(r, "phase")), "done") != 0)
            continue;
        json_t *h = json_pack("{s:O, s:O, s:O, s:O}", "round", json_object_get(r, "round"),
                              "updates", json_object_get(r, "received"), "train_loss",
                              json_object_get(r, "train_loss"), "train_accuracy",
                              json_object_get(r, "train_accuracy"));
        if (json_object_get(r, "eval_accuracy")) {
            json_object_set(h, "eval_loss", json_object_get(r, "eval_loss"));
            json_object_set(h, "eval_accuracy", json_object_get(r, "eval_accuracy"));
        }
        json_array_append_new(out, h);
    }
    json_decref(rounds);
    if (history > 0)
        while ((int64_t)json_array_size(out) > history)
            json_array_remove(out, 0);
    return out;
}

/* Differential privacy: the mode, and epsilon spent at the configured delta
 * (from the accountant the daemon persists with each round). */
static json_t *
s_privacy(fl_store_t *store, const coord_config_t *cfg)
{
    json_t *p = json_pack("{s:s, s:s}", "dp", cfg->dp, "aggregation", cfg->aggregation);
    char *text = NULL;
    fl_dp_accountant_t *acct = NULL;
    double eps = 0;
    if (strcmp(cfg->dp, "off") == 0)
        return p;
    char clip[64];
    double c = cfg->clip_norm;
    if (strcmp(cfg->adaptive_clipping, "on") == 0 &&
        fl_store_meta_get(store, "dp_clip", clip, sizeof clip) == 0 &&
        fl_parse_double(clip, "dp_clip", &c) != 0)
        c = cfg->clip_norm;
    json_object_set_new(p, "clip_norm", json_real(c));
    json_object_set_new(p, "adaptive_clipping", json_boolean(strcmp(cfg->adaptive_clipping, "on") == 0));
    json_object_set_new(p, "noise_multiplier", json_real(cfg->noise_multiplier));
    json_object_set_new(p, "delta", json_real(cfg->dp_delta));
    if (cfg->epsilon_budget > 0)
        json_object_set_new(p, "epsilon_budget", json_real(cfg->epsilon_budget));
    if (fl_store_meta_dup(store, "dp_accountant", &text) == 0 &&
        fl_dp_accountant_load(text, &acct) == 0 &&
        fl_dp_accountant_epsilon(acct, cfg->dp_delta, &eps, NULL) == 0) {
        json_object_set_new(p, "epsilon", json_real(eps));
        json_object_set_new(p, "rounds_accounted",
                            json_integer((json_int_t)fl_dp_accountant_steps(acct)));
    } else {
        json_object_set_new(p, "epsilon", json_real(0));
        json_object_set_new(p, "rounds_accounted", json_integer(0));
    }
    free(text);
    fl_dp_accountant_destroy(&acct);
    return p;
}

json_t *
status_build(fl_store_t *store, const coord_config_t *cfg, const status_live_t *live,
             int64_t history)
{
    json_t *st = json_object(), *coord, *agents, *round;
    agents_ctx_t actx = {.live = live};
    fl_checkpoint_info_t ck;
    fl_round_row_t last;
    fl_params_t *layout = NULL;
    int64_t rounds_done = 0;

    json_object_set_new(st, "federation", json_string(cfg->name));
    char fedid[65];
    if (fl_store_meta_get(store, "federation_id", fedid, sizeof fedid) == 0)
        json_object_set_new(st, "federation_id", json_string(fedid));
    json_object_set_new(st, "endpoint", json_string(cfg->endpoint));
    json_object_set_new(st, "generated_ms", json_integer((json_int_t)fl_wall_ms()));
    if (fl_model_layout(cfg->spec, &layout) == 0) {
        json_object_set_new(st, "model", json_pack("{s:s, s:I}", "spec", cfg->spec, "params",
                                                   (json_int_t)fl_params_numel(layout)));
        fl_params_destroy(&layout);
    }

    coord = json_object();
    json_object_set_new(coord, "running", json_boolean(live != NULL));
    if (live) {
        json_object_set_new(coord, "pid", json_integer((json_int_t)live->pid));
        json_object_set_new(coord, "started_ms", json_integer((json_int_t)live->started_ms));
        json_object_set_new(coord, "uptime_s",
                            json_integer((json_int_t)((fl_wall_ms() - live->started_ms) / 1000)));
        json_object_set_new(coord, "invalid_messages",
                            json_integer((json_int_t)live->invalid_messages));
    }
    json_object_set_new(st, "coordinator", coord);

    if (fl_store_agent_list(store, s_agent_cb, &actx) != 0) {
        json_decref(st);
        return NULL;
    }
    agents = json_pack("{s:I, s:I, s:I, s:I}", "enrolled", (json_int_t)actx.enrolled, "online",
                       (json_int_t)actx.online, "stale", (json_int_t)actx.stale, "revoked",
                       (json_int_t)actx.revoked);
    if (!live)
        json_object_set_new(agents, "online", json_null());
    json_object_set_new(st, "agents", agents);

    if (fl_store_checkpoint_latest_info(store, &ck) == 0) {
        char hex[65];
        rounds_done = ck.round;
        json_object_set_new(st, "checkpoint",
                            json_pack("{s:I, s:s, s:I, s:I}", "round", (json_int_t)ck.round,
                                      "digest", coord_hex(ck.digest, 32, hex, sizeof hex),
                                      "created_ms", (json_int_t)ck.created_ms, "bytes",
                                      (json_int_t)ck.model_bytes));
    }
    json_object_set_new(st, "rounds_done", json_integer((json_int_t)rounds_done));
    json_object_set_new(st, "rounds_target", json_integer((json_int_t)cfg->rounds));

    round = json_object();
    if (live) {
        json_object_set_new(round, "phase", json_string(live->phase));
        json_object_set_new(round, "number", json_integer((json_int_t)live->round));
        json_object_set_new(round, "attempt", json_integer((json_int_t)live->attempt));
        json_object_set_new(round, "expected", json_integer((json_int_t)live->expected));
        json_object_set_new(round, "received", json_integer((json_int_t)live->received));
        json_object_set_new(round, "rejected", json_integer((json_int_t)live->rejected));
        json_object_set_new(round, "dropped", json_integer((json_int_t)live->dropped));
        if (live->deadline_ms > 0)
            json_object_set_new(round, "deadline_ms", json_integer((json_int_t)live->deadline_ms));
    } else if (fl_store_round_latest(store, &last) == 0) {
        json_object_set_new(round, "phase", json_string("stopped"));
        json_object_set_new(round, "number", json_integer((json_int_t)last.round));
        json_object_set_new(round, "attempt", json_integer((json_int_t)last.attempt));
        json_object_set_new(round, "last_phase", json_string(last.phase));
        json_object_set_new(round, "expected", json_integer((json_int_t)last.expected));
        json_object_set_new(round, "received", json_integer((json_int_t)last.received));
    } else {
        json_object_set_new(round, "phase", json_string("stopped"));
    }
    if (live && live->stop_reason && live->stop_reason[0])
        json_object_set_new(round, "stop_reason", json_string(live->stop_reason));
    if (live && live->sa_phase && strcmp(live->phase, "train") == 0)
        json_object_set_new(
            round, "secure_aggregation",
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I}}", "phase",
                      live->sa_phase, "model", live->sa_active ? "active" : "semi-honest",
                      "graph", live->sa_full ? "full" : "harary", "k", (json_int_t)live->sa_k,
                      "t", (json_int_t)live->sa_t, "participants", "selected",
                      (json_int_t)live->sa_counts[0], "advertised",
                      (json_int_t)live->sa_counts[1], "shared", (json_int_t)live->sa_counts[2],
                      "masked", (json_int_t)live->sa_counts[3], "signed",
                      (json_int_t)live->sa_counts[4], "unmasking",
                      (json_int_t)live->sa_counts[5]));
    json_object_set_new(st, "secure_aggregation", json_string(cfg->secagg));
    json_object_set_new(st, "round", round);
    json_object_set_new(st, "privacy", s_privacy(store, cfg));
    json_object_set_new(st, "history", s_history(store, history));
    return st;
}

/* ------------------------------------------------------------ rendering */

static json_int_t
s_int(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static const char *
s_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void
s_duration(json_int_t secs, char *buf, size_t size)
{
    if (secs >= 86400)
        snprintf(buf, size, "%lldd %lldh", (long long)(secs / 86400), (long long)(secs % 86400 / 3600));
    else if (secs >= 3600)
        snprintf(buf, size, "%lldh %lldm", (long long)(secs / 3600), (long long)(secs % 3600 / 60));
    else if (secs >= 60)
        snprintf(buf, size, "%lldm %llds", (long long)(secs / 60), (long long)(secs % 60));
    else
        snprintf(buf, size, "%llds", (long long)secs);
}

static void
s_time(json_int_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

/* A sparkline of up to `width` values of `key` from the history. */
static void
s_sparkline(const json_t *hist, const char *key, FILE *f)
{
    static const char *const bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    size_t n = json_array_size(hist), from = n > 40 ? n - 40 : 0;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = from; i < n; i++) {
        json_t *v = json_object_get(json_array_get(hist, i), key);
        if (v) {
            lo = fmin(lo, json_number_value(v));
            hi = fmax(hi, json_number_value(v));
        }
    }
    for (size_t i = from; i < n; i++) {
        json_t *v = json_object_get(json_array_get(hist, i), key);
        if (!v) {
            fputs(" ", f);
            continue;
        }
        int k = hi > lo ? (int)((json_number_value(v) - lo) / (hi - lo) * 7.0 + 0.5) : 7;
        fputs(bars[k < 0 ? 0 : k > 7 ? 7 : k], f);
    }
}

void
status_render(const json_t *st, FILE *f)
{
    const json_t *coord = json_object_get(st, "coordinator"), *agents = json_object_get(st, "agents"),
                 *round = json_object_get(st, "round"), *ck = json_object_get(st, "checkpoint"),
                 *hist = json_object_get(st, "history"), *model = json_object_get(st, "model");
    char buf[64], buf2[64];
    bool running = json_is_true(json_object_get(coord, "running"));

    fprintf(f, "Covey federation '%s' (id %s)\n", s_str(st, "federation"),
            s_str(st, "federation_id"));
    if (running) {
        s_duration(s_int(coord, "uptime_s"), buf, sizeof buf);
        fprintf(f, "  coordinator   running (pid %lld), up %s, agents connect to %s\n",
                (long long)s_int(coord, "pid"), buf, s_str(st, "endpoint"));
    } else {
        fprintf(f, "  coordinator   NOT RUNNING (showing the database, read-only)\n");
    }
    if (model)
        fprintf(f, "  model         %s (%lld parameters)\n", s_str(model, "spec"),
                (long long)s_int(model, "params"));
    fprintf(f, "  rounds        %lld done of %s\n", (long long)s_int(st, "rounds_done"),
            s_int(st, "rounds_target") ? (snprintf(buf2, sizeof buf2, "%lld",
                                                   (long long)s_int(st, "rounds_target")),
                                          buf2)
                                       : "unlimited");
    const char *phase = s_str(round, "phase");
    if (strcmp(phase, "train") == 0 || strcmp(phase, "eval") == 0) {
        json_int_t exp = s_int(round, "expected"), got = s_int(round, "received");
        int width = 20, fill = exp > 0 ? (int)(got * width / exp) : 0;
        fprintf(f, "  round         %lld (attempt %lld) %s  [", (long long)s_int(round, "number"),
                (long long)s_int(round, "attempt"),
                strcmp(phase, "train") == 0 ? "training" : "evaluating");
        for (int i = 0; i < width; i++)
            fputs(i < fill ? "#" : ".", f);
        fprintf(f, "] %lld/%lld", (long long)got, (long long)exp);
        if (s_int(round, "rejected") || s_int(round, "dropped"))
            fprintf(f, " (%lld rejected, %lld dropped)", (long long)s_int(round, "rejected"),
                    (long long)s_int(round, "dropped"));
        json_int_t left = (s_int(round, "deadline_ms") - fl_wall_ms()) / 1000;
        s_duration(left > 0 ? left : 0, buf, sizeof buf);
        fprintf(f, ", deadline in %s\n", buf);
        json_t *sa = json_object_get(round, "secure_aggregation");
        if (sa) {
            json_t *p = json_object_get(sa, "participants");
            bool active = strcmp(s_str(sa, "model"), "active") == 0;
            fprintf(f, "  secagg        %s graph k=%lld t=%lld%s, phase %s: %lld selected, "
                    "%lld keys, %lld shared, %lld masked, ",
                    s_str(sa, "graph"), (long long)s_int(sa, "k"), (long long)s_int(sa, "t"),
                    active ? " (active model)" : "", s_str(sa, "phase"),
                    (long long)s_int(p, "selected"), (long long)s_int(p, "advertised"),
                    (long long)s_int(p, "shared"), (long long)s_int(p, "masked"));
            if (active)
                fprintf(f, "%lld signed, ", (long long)s_int(p, "signed"));
            fprintf(f, "%lld unmasking\n", (long long)s_int(p, "unmasking"));
        }
    } else if (running) {
        fprintf(f, "  round         %s (next: %lld)\n",
                strcmp(phase, "complete") == 0 ? "federation complete" : "waiting for agents",
                (long long)s_int(round, "number"));
    } else if (json_object_get(round, "number")) {
        fprintf(f, "  round         last %lld (attempt %lld, %s)\n",
                (long long)s_int(round, "number"), (long long)s_int(round, "attempt"),
                s_str(round, "last_phase"));
    }
    if (running)
        fprintf(f, "  agents        %lld enrolled, %lld online, %lld stale, %lld revoked\n",
                (long long)s_int(agents, "enrolled"), (long long)s_int(agents, "online"),
                (long long)s_int(agents, "stale"), (long long)s_int(agents, "revoked"));
    else
        fprintf(f, "  agents        %lld enrolled, %lld revoked (online unknown)\n",
                (long long)s_int(agents, "enrolled"), (long long)s_int(agents, "revoked"));
    if (ck) {
        s_time(s_int(ck, "created_ms"), buf, sizeof buf);
        fprintf(f, "  checkpoint    round %lld, %.16s..., %.1f MB, %s\n",
                (long long)s_int(ck, "round"), s_str(ck, "digest"),
                (double)s_int(ck, "bytes") / 1e6, buf);
    }
    if (!json_object_get(round, "secure_aggregation"))
        fprintf(f, "  secagg        %s\n",
                strcmp(s_str(st, "secure_aggregation"), "on") == 0
                    ? "on: the coordinator sees only the sum of the updates"
                    : "OFF: the coordinator sees each agent's update");
    const json_t *priv = json_object_get(st, "privacy");
    if (priv && strcmp(s_str(priv, "dp"), "off") != 0) {
        fprintf(f, "  privacy       %s DP: epsilon %.3f at delta %g after %lld rounds "
                   "(clip %g, noise x%g)",
                s_str(priv, "dp"), json_number_value(json_object_get(priv, "epsilon")),
                json_number_value(json_object_get(priv, "delta")),
                (long long)s_int(priv, "rounds_accounted"),
                json_number_value(json_object_get(priv, "clip_norm")),
                json_number_value(json_object_get(priv, "noise_multiplier")));
        if (json_object_get(priv, "epsilon_budget"))
            fprintf(f, ", budget %.3f", json_number_value(json_object_get(priv, "epsilon_budget")));
        fputc('\n', f);
    } else if (priv) {
        fprintf(f, "  privacy       differential privacy off; aggregation %s\n",
                s_str(priv, "aggregation"));
    }
    if (json_object_get(round, "stop_reason"))
        fprintf(f, "  stopped       %s\n", s_str(round, "stop_reason"));
    if (running && s_int(coord, "invalid_messages"))
        fprintf(f, "  rejected      %lld invalid messages since start\n",
                (long long)s_int(coord, "invalid_messages"));

    size_t n = json_array_size(hist);
    if (n > 0) {
        fprintf(f, "\n  accuracy  ");
        s_sparkline(hist, "eval_accuracy", f);
        fprintf(f, "\n  loss      ");
        s_sparkline(hist, "train_loss", f);
        fprintf(f, "\n\n  %6s %8s %11s %10s %10s %9s\n", "round", "updates", "train_loss",
                "train_acc", "eval_loss", "eval_acc");
        for (size_t i = n > 10 ? n - 10 : 0; i < n; i++) {
            json_t *h = json_array_get(hist, i);
            fprintf(f, "  %6lld %8lld %11.4f %10.4f", (long long)s_int(h, "round"),
                    (long long)s_int(h, "updates"),
                    json_number_value(json_object_get(h, "train_loss")),
                    json_number_value(json_object_get(h, "train_accuracy")));
            if (json_object_get(h, "eval_accuracy"))
                fprintf(f, " %10.4f %9.4f\n", json_number_value(json_object_get(h, "eval_loss")),
                        json_number_value(json_object_get(h, "eval_accuracy")));
            else
                fprintf(f, " %10s %9s\n", "-", "-");
        }
    }
}

void
status_render_agents(const json_t *agents, FILE *f)
{
    size_t i;
    json_t *a;
    char seen[32];
    fprintf(f, "%-20s %-8s %-20s %8s %8s %-10s %s\n", "NAME", "STATE", "LAST SEEN", "TRAIN",
            "TEST", "VERSION", "PUBLIC KEY");
    json_array_foreach(agents, i, a) {
        json_int_t ls = s_int(a, "last_seen_ms");
        if (ls > 0)
            s_time(ls, seen, sizeof seen);
        else
            snprintf(seen, sizeof seen, "never");
        fprintf(f, "%-20s %-8s %-20s %8lld %8lld %-10s %s\n", s_str(a, "name"), s_str(a, "state"),
                seen, (long long)s_int(a, "n_train"), (long long)s_int(a, "n_test"),
                s_str(a, "version")[0] ? s_str(a, "version") : "-", s_str(a, "public_key"));
    }
}

void
status_render_rounds(const json_t *rounds, FILE *f)
{
    size_t i;
    json_t *r;
    char started[32];
    fprintf(f, "%6s %7s %-9s %-19s %8s %8s %10s %9s %9s  %s\n", "ROUND", "ATTEMPT", "PHASE",
            "STARTED", "UPDATES", "REJECTED", "TRAIN_LOSS", "TRAIN_ACC", "EVAL_ACC", "OUTCOME");
    json_array_foreach(rounds, i, r) {
        s_time(s_int(r, "started_ms"), started, sizeof started);
        fprintf(f, "%6lld %7lld %-9s %-19s %4lld/%-3lld %8lld %10.4f %9.4f ",
                (long long)s_int(r, "round"), (long long)s_int(r, "attempt"), s_str(r, "phase"),
                started, (long long)s_int(r, "received"), (long long)s_int(r, "expected"),
                (long long)s_int(r, "rejected"), json_number_value(json_object_get(r, "train_loss")),
                json_number_value(json_object_get(r, "train_accuracy")));
        if (json_object_get(r, "eval_accuracy"))
            fprintf(f, "%9.4f", json_number_value(json_object_get(r, "eval_accuracy")));
        else
            fprintf(f, "%9s", "-");
        fprintf(f, "  %s\n", s_str(r, "outcome"));
    }
}
