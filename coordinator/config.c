/*
 * config.c — table-driven coordinator configuration. See config.h.
 */
#include "config.h"

#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fl_log.h"
#include "fl_model.h"
#include "fl_optim.h"
#include "fl_robust.h"
#include "fl_secagg.h"
#include "fl_sign.h"
#include "fl_serveropt.h"

typedef enum { T_STR, T_U64, T_F64 } ctype_t;

typedef struct {
    const char *section, *key;
    ctype_t type;
    size_t offset, size;
    double min, max;
    const char *def;
    const char *help;
} setting_t;

#define S(sec, k, field, d, h)                                                                     \
    {sec, k, T_STR, offsetof(coord_config_t, field), sizeof(((coord_config_t *)0)->field), 0, 0, d, h}
#define U(sec, k, field, lo, hi, d, h)                                                             \
    {sec, k, T_U64, offsetof(coord_config_t, field), 0, lo, hi, d, h}
#define F(sec, k, field, lo, hi, d, h)                                                             \
    {sec, k, T_F64, offsetof(coord_config_t, field), 0, lo, hi, d, h}

static const setting_t s_settings[] = {
    S("federation", "name", name, "covey", "a name for this federation, shown by status"),
    S("federation", "endpoint", endpoint, "tcp://*:7700",
      "where agents connect (CurveZMQ); open this TCP port in the firewall"),
    S("federation", "enroll_endpoint", enroll_endpoint, "tcp://*:7701",
      "where agents enroll with a join token (CurveZMQ; accepts nothing else), or off"),
    S("federation", "admin_endpoint", admin_endpoint, "off",
      "where remote operators connect with admin keys (CurveZMQ), e.g. tcp://*:7702, or off"),
    S("model", "spec", spec, "mlp:784-256-10",
      "architecture: softmax:D-C or mlp:D-H1-...-C (fixed at init)"),
    U("model", "seed", seed, 0, 1.8e19, "1", "seed of the initial weights and of agent sampling"),
    U("rounds", "rounds", rounds, 0, 1e9, "20", "stop after this many rounds (0 = run forever)"),
    F("rounds", "target_accuracy", target_accuracy, 0, 1, "0",
      "stop once federated evaluation reaches this accuracy (0 = off)"),
    F("rounds", "fraction", fraction, 0.0001, 1, "1.0",
      "fraction of online agents sampled for each round"),
    U("rounds", "min_fit", min_fit, 1, 1e6, "2",
      "updates a round needs to complete; fewer by the deadline and it is retried"),
    U("rounds", "min_available", min_available, 1, 1e6, "2",
      "online agents needed before a round starts"),
    U("rounds", "train_timeout", train_timeout, 1, 86400, "120",
      "seconds an attempt may take (download, training, upload)"),
    U("rounds", "eval_every", eval_every, 0, 1e6, "1",
      "federated evaluation on agents' held-out data every k rounds (0 = never)"),
    F("rounds", "eval_fraction", eval_fraction, 0.0001, 1, "1.0",
      "fraction of online agents asked to evaluate"),
    U("rounds", "eval_timeout", eval_timeout, 1, 86400, "60", "seconds an evaluation may take"),
    U("rounds", "stale_after", stale_after, 2, 86400, "15",
      "seconds without a message before an agent counts as stale (offline)"),
    U("rounds", "keep_checkpoints", keep_checkpoints, 0, 1e9, "0",
      "keep only the newest N checkpoints in the database (0 = keep every round's)"),
    U("training", "epochs", epochs, 1, 1000, "2", "local epochs per round"),
    U("training", "batch", batch, 1, 65536, "32", "local mini-batch size"),
    S("training", "optimizer", optimizer, "sgd", "local optimizer: sgd or adam"),
    F("training", "lr", lr, 1e-9, 1e3, "0.02", "local learning rate"),
    F("training", "momentum", momentum, 0, 0.999999, "0.9", "local SGD momentum"),
    F("training", "weight_decay", weight_decay, 0, 1e3, "0", "local L2 weight decay"),
    F("training", "prox_mu", prox_mu, 0, 1e6, "0", "FedProx proximal term mu (0 = FedAvg)"),
    S("server", "optimizer", server_optimizer, "fedavg",
      "fedavg, fedavgm, fedadagrad, fedadam or fedyogi"),
    F("server", "lr", server_lr, 1e-9, 1e3, "1.0", "server learning rate"),
    F("server", "momentum", server_momentum, 0, 0.999999, "0.9", "fedavgm momentum"),
    F("server", "beta1", server_beta1, 0, 0.999999, "0.9", "fedadam/fedyogi beta1"),
    F("server", "beta2", server_beta2, 0, 0.999999, "0.99", "fedadam/fedyogi beta2"),
    F("server", "tau", server_tau, 1e-12, 1, "0.001", "adaptivity (epsilon) of the adaptive optimizers"),
    S("server", "aggregation", aggregation, "fedavg",
      "fedavg, or a robust rule: median, trimmed_mean:BETA, krum:F, multikrum:F:M, "
      "norm_bound:M"),
    S("privacy", "dp", dp, "off",
      "differential privacy: off, or central (agents clip, the coordinator adds Gaussian noise)"),
    F("privacy", "clip_norm", clip_norm, 1e-9, 1e9, "1.0", "L2 bound S of each agent's update"),
    F("privacy", "noise_multiplier", noise_multiplier, 0, 1e6, "1.0",
      "z: the noise on the sum has standard deviation z*S"),
    F("privacy", "delta", dp_delta, 1e-15, 0.1, "1e-5", "delta of the reported (epsilon, delta)"),
    F("privacy", "epsilon_budget", epsilon_budget, 0, 1e9, "0",
      "refuse to start a round that would take epsilon past this (0 = no budget)"),
    S("privacy", "adaptive_clipping", adaptive_clipping, "off",
      "on: adapt clip_norm each round towards the clip_quantile of the update norms "
      "(Andrew et al. 2021); clip_norm is then the starting value"),
    F("privacy", "clip_quantile", clip_quantile, 0.001, 0.999, "0.5",
      "target fraction of updates that fit under the clipping norm"),
    F("privacy", "clip_lr", clip_lr, 1e-6, 10, "0.2", "geometric learning rate of the clipping norm"),
    F("privacy", "clip_count_stddev", clip_count_stddev, 0, 1e9, "0",
      "noise on the count of unclipped updates (0 = expected participants / 20)"),
    S("secagg", "mode", secagg, "on",
      "secure aggregation (SecAgg+): on, the coordinator learns only the sum of the updates; "
      "off, it sees each one (needed by the robust aggregation rules)"),
    S("secagg", "threat", sa_threat, "semi-honest",
      "semi-honest (a curious coordinator) or semi-malicious (one that may lie about dropouts): "
      "sizes the neighbour graph and threshold"),
    F("secagg", "gamma", sa_gamma, 0, 0.5, "0.05",
      "fraction of agents assumed to collude with the coordinator"),
    F("secagg", "delta", sa_delta, 0, 0.5, "0.2", "fraction of agents the round must survive losing"),
    U("secagg", "full_max", sa_full_max, 2, 1e6, "100",
      "rounds of up to this many agents use the full graph (SecAgg), larger ones SecAgg+"),
    U("secagg", "bits", sa_bits, 8, 32, "32", "modulus 2^bits of the masked sum"),
    U("secagg", "levels", sa_levels, 2, 4294967295.0, "65536",
      "quantization levels T over [-clip, clip]; agents * T must stay below 2^bits"),
    F("secagg", "clip", sa_clip, 1e-9, 1e9, "1.0",
      "each update coordinate is clipped to [-clip, clip] (with privacy.dp = central: clip_norm)"),
    F("secagg", "max_weight", sa_max_weight, 1, 1e12, "100000",
      "an agent's sample count is capped at this when weighting the mean"),
    U("secagg", "phase_timeout", sa_phase_timeout, 1, 86400, "30",
      "seconds each key-exchange and unmasking phase waits for agents"),
    S("secagg", "identity_ca", sa_identity_ca, "",
      "the operator's identity CA public key (64 hex digits or a .pub file): agents sign their "
      "round keys and a consistency round runs, so that even a malicious coordinator learns no "
      "single update (the active-server model; needs threat = semi-malicious)"),
    U("transfer", "window", xfer_window, 1, 1e12, "1048576",
      "bytes of model chunks and update pulls in ZeroMQ at once, all agents together; "
      "more serves more agents at once (long links), and costs memory"),
    S("log", "level", log_level, "info", "debug, info, warn or error"),
};
#define N_SETTINGS (sizeof s_settings / sizeof s_settings[0])

static const setting_t *
s_find(const char *section, const char *key)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (strcmp(s_settings[i].section, section) == 0 && strcmp(s_settings[i].key, key) == 0)
            return &s_settings[i];
    return NULL;
}

/* Validate and store one value; detail names section.key. */
static int
s_apply(coord_config_t *cfg, const setting_t *s, const char *value)
{
    char *field = (char *)cfg + s->offset;
    switch (s->type) {
    case T_STR:
        if (strlen(value) >= s->size)
            return fl_fail(FL_EINVAL, "%s.%s: value longer than %zu characters", s->section,
                           s->key, s->size - 1);
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case T_U64: {
        uint64_t v;
        if (fl_parse_u64(value, s->key, &v) != 0)
            return fl_fail(FL_EINVAL, "%s.%s: expected a whole number, got '%s'", s->section,
                           s->key, value);
        if ((double)v < s->min || (double)v > s->max)
            return fl_fail(FL_EINVAL, "%s.%s: %s is out of range %.0f..%.0f", s->section, s->key,
                           value, s->min, s->max);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case T_F64: {
        double v;
        if (fl_parse_double(value, s->key, &v) != 0)
            return fl_fail(FL_EINVAL, "%s.%s: expected a number, got '%s'", s->section, s->key,
                           value);
        if (v < s->min || v > s->max)
            return fl_fail(FL_EINVAL, "%s.%s: %s is out of range %g..%g", s->section, s->key,
                           value, s->min, s->max);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    }
    return fl_fail(FL_EINVAL, "bad setting type");
}

/* Checks across settings and of enumerated values. */
static int
s_validate(const coord_config_t *cfg)
{
    fl_params_t *layout = NULL;
    fl_optim_kind_t ok;
    fl_sopt_kind_t sk;
    fl_loglevel_t lv;
    if (fl_model_layout(cfg->spec, &layout) != 0)
        return fl_fail(FL_EINVAL, "model.spec: %s", fl_errmsg());
    fl_params_destroy(&layout);
    if (fl_optim_parse_kind(cfg->optimizer, &ok) != 0)
        return fl_fail(FL_EINVAL, "training.optimizer: %s", fl_errmsg());
    if (fl_sopt_parse_kind(cfg->server_optimizer, &sk) != 0)
        return fl_fail(FL_EINVAL, "server.optimizer: %s", fl_errmsg());
    if (fl_log_parse_level(cfg->log_level, &lv) != 0)
        return fl_fail(FL_EINVAL, "log.level: %s", fl_errmsg());
    fl_robust_config_t rc;
    if (fl_robust_parse(cfg->aggregation, &rc) != 0)
        return fl_fail(FL_EINVAL, "server.aggregation: %s", fl_errmsg());
    if ((rc.rule == FL_ROBUST_KRUM || rc.rule == FL_ROBUST_MULTIKRUM) &&
        cfg->min_fit < 2 * (uint64_t)rc.f + 3)
        return fl_fail(FL_EINVAL, "server.aggregation = %s needs rounds.min_fit >= 2f+3 = %llu",
                       cfg->aggregation, (unsigned long long)(2 * (uint64_t)rc.f + 3));
    if (strcmp(cfg->adaptive_clipping, "off") != 0 && strcmp(cfg->adaptive_clipping, "on") != 0)
        return fl_fail(FL_EINVAL, "privacy.adaptive_clipping: '%s' is not off or on",
                       cfg->adaptive_clipping);
    if (strcmp(cfg->adaptive_clipping, "on") == 0 && strcmp(cfg->dp, "central") != 0)
        return fl_fail(FL_EINVAL, "privacy.adaptive_clipping = on needs privacy.dp = central");
    if (strcmp(cfg->dp, "off") != 0 && strcmp(cfg->dp, "central") != 0)
        return fl_fail(FL_EINVAL, "privacy.dp: '%s' is not off or central", cfg->dp);
    if (strcmp(cfg->dp, "central") == 0 && rc.rule != FL_ROBUST_NONE)
        return fl_fail(FL_EINVAL,
                       "privacy.dp = central needs server.aggregation = fedavg: robust rules "
                       "(%s) break the Gaussian mechanism's sensitivity analysis",
                       cfg->aggregation);
    if (strcmp(cfg->secagg, "on") != 0 && strcmp(cfg->secagg, "off") != 0)
        return fl_fail(FL_EINVAL, "secagg.mode: '%s' is not on or off", cfg->secagg);
    if (strcmp(cfg->sa_threat, "semi-honest") != 0 && strcmp(cfg->sa_threat, "semi-malicious") != 0)
        return fl_fail(FL_EINVAL, "secagg.threat: '%s' is not semi-honest or semi-malicious",
                       cfg->sa_threat);
    uint8_t ca_pk[32];
    bool active = cfg->sa_identity_ca[0] != '\0';
    if (active && fl_sign_pubkey_load(cfg->sa_identity_ca, ca_pk) != 0)
        return fl_fail(FL_EINVAL, "secagg.identity_ca: %s", fl_errmsg());
    if (active && strcmp(cfg->sa_threat, "semi-malicious") != 0)
        return fl_fail(FL_EINVAL, "secagg.identity_ca needs secagg.threat = semi-malicious: against "
                       "a coordinator that may lie, the threshold must be sized for it (SECAGG.md "
                       "1.3)");
    if (strcmp(cfg->secagg, "on") == 0 && rc.rule != FL_ROBUST_NONE)
        return fl_fail(FL_EINVAL,
                       "server.aggregation = %s needs secagg.mode = off: a robust rule must see "
                       "each update, which secure aggregation hides from the coordinator",
                       cfg->aggregation);
    if (strcmp(cfg->secagg, "on") == 0 && cfg->min_available < 2)
        return fl_fail(FL_EINVAL, "secagg.mode = on needs rounds.min_available >= 2: the secure "
                       "sum of one agent's update is that update");
    if (strcmp(cfg->secagg, "on") == 0 &&
        fl_sa_check_levels(cfg->sa_levels, (unsigned)cfg->sa_bits, cfg->min_available) != 0)
        return fl_fail(FL_EINVAL, "secagg.levels: %s (for rounds.min_available = %llu agents)",
                       fl_errmsg(), (unsigned long long)cfg->min_available);
    if (strncmp(cfg->endpoint, "tcp://", 6) != 0)
        return fl_fail(FL_EINVAL, "federation.endpoint: '%s' must start with tcp://",
                       cfg->endpoint);
    if (strcmp(cfg->enroll_endpoint, "off") != 0 && strncmp(cfg->enroll_endpoint, "tcp://", 6) != 0)
        return fl_fail(FL_EINVAL, "federation.enroll_endpoint: '%s' must start with tcp:// or be off",
                       cfg->enroll_endpoint);
    if (strcmp(cfg->admin_endpoint, "off") != 0 && strncmp(cfg->admin_endpoint, "tcp://", 6) != 0)
        return fl_fail(FL_EINVAL, "federation.admin_endpoint: '%s' must start with tcp:// or be off",
                       cfg->admin_endpoint);
    if (cfg->min_fit > cfg->min_available)
        return fl_fail(FL_EINVAL, "rounds.min_fit (%llu) cannot exceed rounds.min_available (%llu)",
                       (unsigned long long)cfg->min_fit, (unsigned long long)cfg->min_available);
    return 0;
}

void
coord_config_default(coord_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        int rc = s_apply(cfg, &s_settings[i], s_settings[i].def);
        (void)rc;
    }
}

typedef struct {
    coord_config_t *cfg;
    char err[512];
} load_ctx_t;

static int
s_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    load_ctx_t *ctx = user;
    const setting_t *s = s_find(section, name);
    if (ctx->err[0])
        return 0;
    if (!s) {
        snprintf(ctx->err, sizeof ctx->err, "unknown setting '%s' in section [%s]", name,
                 section);
        return 0;
    }
    if (s_apply(ctx->cfg, s, value) != 0) {
        snprintf(ctx->err, sizeof ctx->err, "%s", fl_errmsg());
        return 0;
    }
    return 1;
}

int
coord_config_load(const char *path, coord_config_t *cfg)
{
    coord_config_t tmp;
    load_ctx_t ctx = {.cfg = &tmp};
    coord_config_default(&tmp);
    int line = ini_parse(path, s_ini_handler, &ctx);
    if (line == -1)
        return fl_fail(FL_ENOTFOUND, "%s: cannot open the configuration file", path);
    if (line != 0)
        return fl_fail(FL_EINVAL, "%s:%d: %s", path, line,
                       ctx.err[0] ? ctx.err : "syntax error");
    if (s_validate(&tmp) != 0)
        return fl_fail(FL_EINVAL, "%s: %s", path, fl_errmsg());
    /* validated: the identity CA key loads */
    tmp.sa_active = tmp.sa_identity_ca[0] != '\0' &&
                    fl_sign_pubkey_load(tmp.sa_identity_ca, tmp.sa_ca_pk) == 0;
    *cfg = tmp;
    return 0;
}

int
coord_config_set(coord_config_t *cfg, const char *dotted, const char *value)
{
    char section[64];
    const char *dot = strchr(dotted, '.');
    if (!dot || (size_t)(dot - dotted) >= sizeof section)
        return fl_fail(FL_EINVAL, "'%s': expected SECTION.KEY", dotted);
    memcpy(section, dotted, (size_t)(dot - dotted));
    section[dot - dotted] = 0;
    const setting_t *s = s_find(section, dot + 1);
    if (!s)
        return fl_fail(FL_EINVAL, "unknown setting '%s'", dotted);
    return s_apply(cfg, s, value);
}

int
coord_config_validate(const coord_config_t *cfg)
{
    return s_validate(cfg);
}

/* Write text as "; " comment lines of at most 78 columns, breaking at spaces
 * (inih reads lines of at most 200 bytes: a long help must not become one). */
static void
s_write_comment(FILE *f, const char *text)
{
    const size_t width = 76;
    while (*text) {
        size_t n = strlen(text), cut = n;
        if (n > width) {
            cut = width;
            while (cut > 0 && text[cut] != ' ')
                cut--;
            if (cut == 0) /* one long word: cut it */
                cut = width;
        }
        fprintf(f, "; %.*s\n", (int)cut, text);
        text += cut;
        while (*text == ' ')
            text++;
    }
}

void
coord_config_write(const coord_config_t *cfg, FILE *f)
{
    const char *section = "";
    fprintf(f, "; Covey coordinator configuration. Reloaded on SIGHUP (model.spec and\n"
               "; federation.endpoint take effect at the next start).\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting_t *s = &s_settings[i];
        const char *field = (const char *)cfg + s->offset;
        if (strcmp(section, s->section) != 0) {
            section = s->section;
            fprintf(f, "\n[%s]\n", section);
        }
        char help[600];
        snprintf(help, sizeof help, "%s (default %s)", s->help, s->def[0] ? s->def : "empty");
        s_write_comment(f, help);
        fprintf(f, "%s = ", s->key);
        if (s->type == T_STR) {
            fprintf(f, "%s\n", field);
        } else if (s->type == T_U64) {
            uint64_t v;
            memcpy(&v, field, sizeof v);
            fprintf(f, "%llu\n", (unsigned long long)v);
        } else {
            double v;
            memcpy(&v, field, sizeof v);
            fprintf(f, "%.10g\n", v);
        }
    }
}
