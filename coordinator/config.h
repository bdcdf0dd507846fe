/*
 * config.h — the coordinator's configuration: one table of every setting
 * (section, key, type, range, default, help) drives parsing of
 * STATE/coordinator.ini (inih), validation, the documented default file that
 * `init` writes, and reload on SIGHUP. Unknown sections or keys and values out
 * of range are errors that name the file, line and key.
 */
#ifndef COVEY_CONFIG_H
#define COVEY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fl_util.h"

typedef struct coord_config {
    /* [federation] */
    char name[64];
    char endpoint[256];        /* bind address for agents, e.g. tcp://0.0.0.0:7700 */
    char enroll_endpoint[256]; /* bind address for enrollment, or "off" */
    char admin_endpoint[256];  /* bind address for remote operators (CURVE), or "off" */
    /* [model] */
    char spec[128];
    uint64_t seed;
    /* [rounds] */
    uint64_t rounds;           /* stop after this many completed rounds; 0 = run forever */
    double target_accuracy;    /* stop when evaluated accuracy reaches it; 0 = off */
    double fraction;           /* fraction of online agents sampled per round */
    uint64_t min_fit;          /* updates needed for a round to complete */
    uint64_t min_available;    /* online agents needed before a round starts */
    uint64_t train_timeout;    /* seconds an attempt may take before it closes */
    uint64_t eval_every;       /* federated evaluation every k rounds; 0 = never */
    double eval_fraction;
    uint64_t eval_timeout;     /* seconds */
    uint64_t stale_after;      /* seconds without a message before an agent is stale */
    uint64_t keep_checkpoints; /* keep only the newest N checkpoints; 0 = all */
    /* [training] (sent to agents) */
    uint64_t epochs;
    uint64_t batch;
    char optimizer[16];
    double lr, momentum, weight_decay, prox_mu;
    /* [server] */
    char server_optimizer[16];
    double server_lr, server_momentum, server_beta1, server_beta2, server_tau;
    char aggregation[64];      /* fedavg or a robust rule (fl_robust_parse) */
    /* [privacy] */
    char dp[16];               /* off | central */
    double clip_norm, noise_multiplier, dp_delta, epsilon_budget;
    char adaptive_clipping[8];  /* off | on */
    double clip_quantile, clip_lr, clip_count_stddev;
    /* [secagg] */
    char secagg[8];            /* on | off */
    char sa_threat[24];        /* semi-honest | semi-malicious */
    double sa_gamma, sa_delta; /* adversarial and dropout fractions the graph is sized for */
    uint64_t sa_full_max;      /* full graph (SecAgg) up to this many agents */
    uint64_t sa_bits, sa_levels;
    double sa_clip, sa_max_weight;
    uint64_t sa_phase_timeout; /* seconds for each key/unmask phase */
    char sa_identity_ca[1024]; /* "" or the identity CA public key (hex or .pub path) */
    bool sa_active;            /* identity_ca set: the active-server model */
    uint8_t sa_ca_pk[32];      /* its key, when sa_active */
    /* [transfer] */
    uint64_t xfer_window;      /* bytes of chunks and pulls inside ZeroMQ at once (fl_window) */
    /* [log] */
    char log_level[16];
} coord_config_t;

/* Fill *cfg with the defaults of the table. */
void coord_config_default(coord_config_t *cfg);

/* Parse `path` over the defaults. FL_ENOTFOUND if absent; FL_EINVAL naming the
 * file, line and key on any unknown key, bad or out-of-range value. */
int coord_config_load(const char *path, coord_config_t *cfg) FL_MUST_CHECK;

/* Set one value by "section.key" (as `init --set` does), checking its type and
 * range; FL_EINVAL naming it. Checks across settings are coord_config_validate's. */
int coord_config_set(coord_config_t *cfg, const char *dotted, const char *value) FL_MUST_CHECK;

/* Check the settings together (model spec, enumerations, min_fit <= min_available).
 * FL_EINVAL naming the setting. */
int coord_config_validate(const coord_config_t *cfg) FL_MUST_CHECK;

/* Write a documented config file holding the values of *cfg. */
void coord_config_write(const coord_config_t *cfg, FILE *f);

#endif
