/*
 * fl_aggr.h — streaming weighted FedAvg for the coordinator.
 *
 * Each agent's update (delta = local - global, numel float32 values) is added
 * into one running weighted sum as soon as it arrives, so the coordinator's
 * memory is O(model) however many agents report, never O(agents x model).
 * When the round closes, fl_aggr_mean() gives sum_k w_k u_k / sum_k w_k, the
 * pseudo-gradient that fl_serveropt applies to the global model.
 *
 * An update from a peer is untrusted: it is rejected, and the aggregate left
 * bit-for-bit as it was, when its size or weight is wrong, when it holds a NaN
 * or an Inf, or when it is so large that the float sum could overflow.
 *
 * How it is fast and still all-or-nothing: the aggregator owns two
 * accumulator buffers. fl_aggr_add() reads the current sum and the update
 * once, writes sum + w * update into the spare buffer and folds the
 * finiteness check into the same pass (it is nearly free there); only when
 * the whole update proved valid are the buffers swapped. A failed add has
 * written only the spare buffer, so the sum is unchanged without any undo.
 * This costs a second accumulator (8 bytes per parameter in all) but reads
 * the update once. Validating the whole update in a separate pass and then
 * adding in place (the other all-or-nothing design) measured as fast for
 * models that fit in cache and 1.2-1.5x slower for 1M-10M parameters; the
 * fused add runs at 70-97% of an unchecked in-place add
 * (tests/bench/bench_aggr.c prints all three).
 *
 * Precision: the sum is kept in float32. The rounding error of a float sum of
 * N terms is at most about N * 6e-8 of sum_k |w_k u_k| and typically
 * sqrt(N) * 6e-8 of it — for hundreds of agents far below the noise already
 * in each update (local SGD, quantisation, DP noise). A double accumulator
 * moves 20 instead of 12 bytes per parameter per update, doubles the
 * accumulator memory, and even unchecked measured 1.3-2x slower than the
 * float one.
 *
 * An aggregator belongs to one thread.
 */
#ifndef FL_AGGR_H
#define FL_AGGR_H

#include <stddef.h>

#include "fl_util.h"

/* Accepted range of an update's weight (typically its sample count). The
 * bounds keep w in float range and w * u meaningful. */
#define FL_AGGR_WEIGHT_MIN 1e-9
#define FL_AGGR_WEIGHT_MAX 1e12

/* Upper bound on sum_k w_k max_i |u_k[i]| over the updates since the last
 * reset. An update that would take it past this is refused with FL_ERANGE:
 * below it no element of the float sum can overflow (FLT_MAX is ~3.4e38). */
#define FL_AGGR_SUM_MAX 1e37

typedef struct fl_aggr fl_aggr_t;

/*
 * A new, empty aggregator for updates of `numel` elements (1 ..
 * FL_PARAMS_MAX_ELEMS). Both accumulator buffers are allocated and touched
 * here, once, so that no round pays the first-touch cost of fresh pages.
 * Returns NULL with a detail (fl_errmsg) when numel is out of range
 * (FL_EINVAL) or the buffers cannot be allocated. Caller owns the result.
 */
fl_aggr_t *fl_aggr_new(size_t numel);

/* Free the aggregator and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_aggr_destroy(fl_aggr_t **self_p);

/* Empty the sum (count 0, weight 0) for a new round. Keeps the buffers, so
 * nothing is re-allocated or re-touched; O(1) — the next add overwrites the
 * sum instead of adding to it. This function can't fail. */
void fl_aggr_reset(fl_aggr_t *self);

/*
 * Add `weight` x `update` (numel float32 values, borrowed for the call, not
 * overlapping the aggregator's own buffers) to the sum.
 *
 * Fails, with the sum, count and weight bit-for-bit unchanged, with:
 *   FL_EINVAL     numel differs from the aggregator's (both sizes named), or
 *                 weight is not finite or outside [FL_AGGR_WEIGHT_MIN,
 *                 FL_AGGR_WEIGHT_MAX]; update NULL;
 *   FL_ENONFINITE an element is NaN or Inf (the first such index named);
 *   FL_ERANGE     the update is so large that the sum could overflow float
 *                 (see FL_AGGR_SUM_MAX).
 * The weight is applied as float: the total weight sums the float-rounded
 * weights, so the mean stays exactly weighted (integers below 2^24 are exact).
 */
int fl_aggr_add(fl_aggr_t *self, const float *update, size_t numel, double weight) FL_MUST_CHECK;

/*
 * Streaming add, for updates that arrive in pieces (network chunks): the
 * coordinator never holds a whole update, only the sum and the spare buffer,
 * so its memory stays at 2 x model for aggregation.
 *
 *   fl_aggr_begin(weight)                       open an add; FL_EINVAL on a bad weight,
 *                                               FL_ESTATE if one is already open
 *   fl_aggr_chunk(offset, data, n) ...          elements [offset, offset+n) in order:
 *                                               offset must equal the elements given so far
 *                                               (FL_EINVAL otherwise, naming both);
 *                                               FL_ENONFINITE naming the element
 *   fl_aggr_commit()                            all numel elements given: the add takes
 *                                               effect (FL_ESTATE if incomplete, FL_ERANGE
 *                                               if too large, as fl_aggr_add)
 *   fl_aggr_abort()                             discard the open add (can't fail)
 *
 * Until fl_aggr_commit succeeds the sum, count and weight are bit-for-bit
 * unchanged; any failure of begin/chunk/commit aborts the open add.
 */
int fl_aggr_begin(fl_aggr_t *self, double weight) FL_MUST_CHECK;
int fl_aggr_chunk(fl_aggr_t *self, size_t offset, const float *data, size_t n) FL_MUST_CHECK;
int fl_aggr_commit(fl_aggr_t *self) FL_MUST_CHECK;
void fl_aggr_abort(fl_aggr_t *self);

/* True while a streaming add is open. */
bool fl_aggr_open(const fl_aggr_t *self);

/* The spare buffer (numel floats), free for the caller's use — typically as
 * the output of fl_aggr_mean() at the end of a round — while no add is open.
 * Overwritten by the next add. Borrowed from self. */
float *fl_aggr_scratch(fl_aggr_t *self);

/* The scratch buffer holds numel floats and this many bytes more, so that a
 * model of numel floats sealed for storage (fl_seal: + FL_SEAL_OVERHEAD)
 * fits in it: the commit needs no model-sized allocation of its own. */
#define FL_AGGR_SCRATCH_SLACK 64

/* Bytes fl_aggr_scratch() may be written with: numel * 4 + slack. */
size_t fl_aggr_scratch_bytes(const fl_aggr_t *self);

/* Number of updates added since the last reset. */
size_t fl_aggr_count(const fl_aggr_t *self);

/* Total weight of the updates added since the last reset (0 when empty). */
double fl_aggr_weight(const fl_aggr_t *self);

/* Number of elements per update (as given to fl_aggr_new). */
size_t fl_aggr_numel(const fl_aggr_t *self);

/* The running weighted sum sum_k w_k u_k (numel floats), or NULL when empty.
 * Borrowed until the next add, reset or destroy on self; read-only. */
const float *fl_aggr_sum(const fl_aggr_t *self);

/*
 * Write the weighted mean out[i] = sum_k w_k u_k[i] / sum_k w_k into `out`
 * (numel floats, caller-owned). Computed in double per element and rounded
 * once; the result is finite (rounding past FLT_MAX is clamped). Returns
 * FL_ESTATE, leaving out untouched, when no update was added since the reset.
 */
int fl_aggr_mean(const fl_aggr_t *self, float *out) FL_MUST_CHECK;

#endif
