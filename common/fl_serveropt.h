/*
 * fl_serveropt.h — server optimizers: how the coordinator turns a round's
 * aggregated mean delta into the next global model.
 *
 * The weighted mean of the agents' updates, Δ = mean_k(local_k - global)
 * (fl_aggr_mean), is used as a pseudo-gradient pointing downhill, following
 * Reddi et al. 2021, "Adaptive Federated Optimization" (ICLR), and Flower's
 * strategies of the same names. Per element, with m and v starting at zero:
 *
 *   fedavg      x += lr Δ
 *   fedavgm     m  = momentum m + Δ;                    x += lr m
 *   fedadagrad  v += Δ²;                                x += lr Δ / (sqrt(v) + tau)
 *   fedadam     m  = b1 m + (1 - b1) Δ;  v = b2 v + (1 - b2) Δ²;
 *                                                       x += lr m / (sqrt(v) + tau)
 *   fedyogi     m as fedadam;  v = v - (1 - b2) Δ² sign(v - Δ²);
 *                                                       x += lr m / (sqrt(v) + tau)
 *
 * Choices, and where they differ from the paper or from Flower:
 * - v starts at 0 (m too), as in Flower's FedAdagrad/FedAdam/FedYogi. The
 *   paper allows any v_{-1} >= tau²; the difference only shows in the first
 *   rounds, and only where |Δ| is comparable to tau.
 * - fedavgm: m = Δ in round 1, as in Flower's FedAvgM and torch.optim.SGD.
 *   Default momentum 0.9 (Hsu et al. 2019) where Flower's default is 0.0,
 *   which would make FedAvgM identical to FedAvg.
 * - fedadam has no bias correction, as in the paper's Algorithm 2 and in
 *   Flower's FedAdam before bias correction was added; Flower's current
 *   FedAdam scales lr by sqrt(1 - b2^(t+1)) / (1 - b1^(t+1)), t the round
 *   number. fedadagrad uses Δ itself as the numerator (Flower fixes b1 = 0).
 * - Everything is float32, as the model is.
 *
 * Defaults (fl_sopt_config_default), Flower's except fedavgm's momentum:
 *   fedavg      lr 1
 *   fedavgm     lr 1,    momentum 0.9
 *   fedadagrad  lr 0.1,  tau 1e-9
 *   fedadam     lr 0.1,  b1 0.9, b2 0.99, tau 1e-9
 *   fedyogi     lr 0.01, b1 0.9, b2 0.99, tau 1e-3
 *
 * The optimizer state (m, v, step count) can be exported and imported so a
 * restarted coordinator continues exactly where its checkpoint left off. An
 * optimizer belongs to one thread.
 */
#ifndef FL_SERVEROPT_H
#define FL_SERVEROPT_H

#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

typedef enum {
    FL_SOPT_FEDAVG = 0,
    FL_SOPT_FEDAVGM,
    FL_SOPT_FEDADAGRAD,
    FL_SOPT_FEDADAM,
    FL_SOPT_FEDYOGI
} fl_sopt_kind_t;

#define FL_SOPT_KIND_COUNT 5

/* Hyper-parameters. Fields a kind does not use are ignored (not validated). */
typedef struct fl_sopt_config {
    fl_sopt_kind_t kind;
    float lr;       /* server learning rate (eta), every kind: finite, > 0 */
    float momentum; /* fedavgm: [0, 1) */
    float beta1;    /* fedadam, fedyogi: [0, 1) */
    float beta2;    /* fedadam, fedyogi: [0, 1) */
    float tau;      /* fedadagrad, fedadam, fedyogi: adaptivity, finite, > 0 */
} fl_sopt_config_t;

/* Fill *cfg with the defaults of `kind` listed above (unused fields 0). An
 * unknown kind gives fedavg's defaults with cfg->kind = kind, which
 * fl_sopt_new then rejects. This function can't fail. */
void fl_sopt_config_default(fl_sopt_config_t *cfg, fl_sopt_kind_t kind);

/* Parse "fedavg", "fedavgm", "fedadagrad", "fedadam" or "fedyogi" (exact,
 * lower case). Returns 0, or FL_EINVAL naming the string and the choices;
 * *out is untouched on failure. */
int fl_sopt_parse_kind(const char *s, fl_sopt_kind_t *out) FL_MUST_CHECK;

/* "fedavg", ...; "unknown" for a value outside the enum. Static string. */
const char *fl_sopt_kind_name(fl_sopt_kind_t k);

/* Check a configuration: FL_EINVAL naming the kind, the field and its value
 * when a used field is out of range. */
int fl_sopt_config_check(const fl_sopt_config_t *cfg) FL_MUST_CHECK;

typedef struct fl_sopt fl_sopt_t;

/*
 * A new optimizer for a model of `numel` parameters (1 .. FL_PARAMS_MAX_ELEMS)
 * with zeroed state (step 0). The configuration is copied. Returns 0 and sets
 * *out (caller owns it), or FL_EINVAL (bad configuration, field named; bad
 * numel) / FL_ENOMEM, leaving *out untouched.
 */
int fl_sopt_new(const fl_sopt_config_t *cfg, size_t numel, fl_sopt_t **out) FL_MUST_CHECK;

/* Free the optimizer and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_sopt_destroy(fl_sopt_t **self_p);

/* The configuration in use (borrowed, lives as long as self). */
const fl_sopt_config_t *fl_sopt_config(const fl_sopt_t *self);

/* Number of fl_sopt_apply calls so far (including imported ones). */
uint64_t fl_sopt_step(const fl_sopt_t *self);

/*
 * One server step: update the state with `mean_delta` and move `global`
 * (both numel floats, caller-owned, not overlapping) in place. numel must
 * equal the optimizer's (asserted: a programming error, not peer input).
 * mean_delta is expected finite (fl_aggr guarantees it). This function can't
 * fail.
 */
void fl_sopt_apply(fl_sopt_t *self, float *global, const float *mean_delta, size_t numel);

/*
 * Checkpointing. The state is a 32-byte header followed by the state arrays
 * as little-endian float32: m (fedavgm, fedadam, fedyogi), then v
 * (fedadagrad, fedadam, fedyogi). fedavg has no arrays.
 *
 *   offset  0  magic "CVSO"
 *           4  u32 format version (1)
 *           8  u32 kind (fl_sopt_kind_t)
 *          12  u32 number of arrays that follow
 *          16  u64 numel
 *          24  u64 step
 *          32  arrays, numel floats each
 *
 * fl_sopt_state_size: the exact size in bytes. fl_sopt_state_export writes
 * that many bytes to `out` (caller-owned); it can't fail.
 */
size_t fl_sopt_state_size(const fl_sopt_t *self);
void fl_sopt_state_export(const fl_sopt_t *self, uint8_t *out);

/*
 * Load a state made by fl_sopt_state_export of an optimizer of the same kind
 * and size. Everything is validated before anything is changed: on failure
 * self is unchanged and the result is FL_EFORMAT naming what was wrong
 * (truncated or oversized buffer, bad magic, unknown version, other kind,
 * other numel, wrong array count, a NaN/Inf value, a negative v).
 */
int fl_sopt_state_import(fl_sopt_t *self, const uint8_t *buf, size_t len) FL_MUST_CHECK;

#endif
