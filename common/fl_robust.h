/*
 * fl_robust.h — Byzantine-robust aggregation for the coordinator when secure
 * aggregation is off (SECAGG.md §3): coordinate-wise median, trimmed mean,
 * Krum / Multi-Krum and norm bounding.
 *
 * A collector is used like fl_aggr: new for a round's update size, add each
 * agent's update (whole or in chunks), then result. Unlike FedAvg, median,
 * trimmed mean and Krum need every update at once, so the collector holds
 * all n of them: O(n d) memory, allocated per update as they arrive (one
 * buffer per slot, kept across reset for the next round). Norm bounding
 * needs one update at a time and keeps O(d).
 *
 * Rules and how the weights (sample counts claimed by the agents) are used:
 *   median          per coordinate, the median of the n values (even n: the
 *                   mean of the two middle ones); unweighted.
 *   trimmed_mean:b  per coordinate, drop the floor(b n) largest and smallest
 *                   values and average the rest; 0 <= b < 0.5 (pick b above
 *                   the expected fraction of attackers); unweighted.
 *   krum:f          the update minimising the sum of squared distances to
 *                   its n-f-2 nearest neighbours; needs n >= 2f+3; unweighted.
 *   multikrum:f:m   the weighted mean of the m updates of lowest Krum score
 *                   (m = 0, or omitted: n - f); needs n >= 2f+3 and m <= n.
 *   norm_bound:M    each update scaled by 1/max(1, ||u||/M), then the
 *                   weighted mean (Sun et al. 2019).
 * Unweighted rules ignore the weights on purpose: a weight is a claim by the
 * agent, and honouring it would let one agent outvote the rest.
 *
 * None of these can run under secure aggregation, which shows the
 * coordinator only the sum (fl_robust_check_compatible). They also change the
 * sensitivity of the aggregate, so the Gaussian-sum DP analysis of fl_dp
 * does not cover them without re-analysis.
 *
 * A collector belongs to one thread.
 */
#ifndef FL_ROBUST_H
#define FL_ROBUST_H

#include <stdbool.h>
#include <stddef.h>

#include "fl_util.h"

typedef enum {
    FL_ROBUST_NONE = 0, /* plain FedAvg (fl_aggr); not a collector rule */
    FL_ROBUST_MEDIAN,
    FL_ROBUST_TRIMMED_MEAN,
    FL_ROBUST_KRUM,
    FL_ROBUST_MULTIKRUM,
    FL_ROBUST_NORM_BOUND,
} fl_robust_rule_t;

typedef struct fl_robust_config {
    fl_robust_rule_t rule;
    double beta;  /* trimmed_mean: fraction trimmed at each end, [0, 0.5) */
    size_t f;     /* krum, multikrum: Byzantine updates tolerated */
    size_t m;     /* multikrum: updates averaged; 0 = n - f */
    double bound; /* norm_bound: M > 0 */
} fl_robust_config_t;

/* Default trimmed fraction when "trimmed_mean" has none (Flower's 0.2). */
#define FL_ROBUST_BETA_DEFAULT 0.2
/* Largest |element| accepted in an update: keeps the float Gram matrix of
 * Krum and the double sums far from overflow. */
#define FL_ROBUST_VALUE_MAX 1e15f
/* Most updates a collector holds (Krum keeps an n x n distance matrix). */
#define FL_ROBUST_MAX_N 4096
/* Bounds of an update's weight, as fl_aggr. */
#define FL_ROBUST_WEIGHT_MIN 1e-9
#define FL_ROBUST_WEIGHT_MAX 1e12

/*
 * Parse a rule: "none" (or "fedavg"), "median", "trimmed_mean[:beta]",
 * "krum[:f]", "multikrum[:f[:m]]", "norm_bound:M". Returns 0 and fills *cfg,
 * or FL_EINVAL naming the problem (unknown rule, bad or out-of-range number,
 * extra fields); *cfg untouched on failure.
 */
int fl_robust_parse(const char *spec, fl_robust_config_t *cfg) FL_MUST_CHECK;

/* Canonical text of a rule ("trimmed_mean:0.2", "multikrum:1:3", ...) into
 * buf (size bytes, NUL-terminated, truncated if short). Returns buf. */
char *fl_robust_format(const fl_robust_config_t *cfg, char *buf, size_t size);

/* The rule's name ("median", ...). Never NULL. */
const char *fl_robust_rule_name(fl_robust_rule_t rule);

/*
 * 0 when the rule can run with secure aggregation set as `secagg_on`;
 * FL_EINVAL "robust aggregation (<rule>) cannot be combined with secure
 * aggregation, which hides individual updates" when a robust rule (anything
 * but none) is asked for together with secure aggregation.
 */
int fl_robust_check_compatible(const fl_robust_config_t *cfg, bool secagg_on) FL_MUST_CHECK;

typedef struct fl_robust fl_robust_t;

/*
 * A collector for up to max_n updates of d floats (d in 1..2^31, max_n in
 * 1..FL_ROBUST_MAX_N, and max_n >= 2f+3 for Krum rules). Validates cfg (as fl_robust_parse
 * would). Allocates nothing per update yet. Returns NULL with a detail
 * (FL_EINVAL) on a bad argument. Caller owns the result.
 */
fl_robust_t *fl_robust_new(const fl_robust_config_t *cfg, size_t d, size_t max_n);

/* Free the collector and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_robust_destroy(fl_robust_t **self_p);

/* Drop the updates (keeping their buffers) for a new round. Aborts an open
 * streaming add. This function can't fail. */
void fl_robust_reset(fl_robust_t *self);

/*
 * Add one update (d floats, borrowed for the call) with its weight.
 * Fails, leaving the collector exactly as it was, with:
 *   FL_EINVAL     update NULL, d differs from the collector's (both named),
 *                 weight not finite or outside [FL_ROBUST_WEIGHT_MIN,
 *                 FL_ROBUST_WEIGHT_MAX];
 *   FL_ENONFINITE an element is NaN or Inf (its index named);
 *   FL_ERANGE     an element's magnitude exceeds FL_ROBUST_VALUE_MAX, or
 *                 max_n updates are already held;
 *   FL_ESTATE     a streaming add is open.
 */
int fl_robust_add(fl_robust_t *self, const float *update, size_t d, double weight)
    FL_MUST_CHECK;

/*
 * Streaming add, as fl_aggr_begin/chunk/commit/abort: begin(weight), chunks
 * at offsets 0, n1, n1+n2, ... in order, commit once all d elements were
 * given. Any failure aborts the open add; until commit succeeds the
 * collector's updates are unchanged. Errors as fl_robust_add, plus FL_EINVAL
 * for an out-of-order chunk and FL_ESTATE for begin while open or
 * chunk/commit while not open or commit of an incomplete update.
 */
int fl_robust_begin(fl_robust_t *self, double weight) FL_MUST_CHECK;
int fl_robust_chunk(fl_robust_t *self, size_t offset, const float *data, size_t n) FL_MUST_CHECK;
int fl_robust_commit(fl_robust_t *self) FL_MUST_CHECK;
void fl_robust_abort(fl_robust_t *self);

/* Updates held since the last reset. */
size_t fl_robust_count(const fl_robust_t *self);

/* Elements per update. */
size_t fl_robust_dim(const fl_robust_t *self);

/*
 * The robust aggregate of the updates held, into out (d floats, caller's).
 * Returns FL_ESTATE when no update is held or a streaming add is open, and
 * FL_EINVAL with a detail when the rule needs more updates than are held
 * (Krum: n >= 2f+3; Multi-Krum: m <= n); out untouched on failure. For Krum
 * rules, *selected (may be NULL; array of at least count() entries) receives
 * the indices (in add order) of the chosen updates, lowest score first, and
 * *nselected their number; other rules set *nselected to 0.
 * The collector is unchanged: result may be called again.
 */
int fl_robust_result(fl_robust_t *self, float *out, size_t *selected, size_t *nselected)
    FL_MUST_CHECK;

#endif
