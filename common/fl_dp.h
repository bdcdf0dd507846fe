/*
 * fl_dp.h — differential privacy for DP-FedAvg (SECAGG.md §2): the RDP
 * accountant of the Poisson-sampled Gaussian mechanism, the epsilon budget
 * check, client-side L2 clipping, central Gaussian noise on the sum with the
 * fixed-denominator estimator, and adaptive clipping.
 *
 * The round, end to end (McMahan et al. ICLR'18, SECAGG.md §2.1):
 *   1. the coordinator Poisson-samples agents with probability q = m/N;
 *   2. each agent clips its update: fl_dp_clip(delta, S) (and, with adaptive
 *      clipping, reports fl_dp_adaclip_bit(norm, C));
 *   3. the coordinator sums the clipped updates UNWEIGHTED (weight 1 each: a
 *      weighted sum would change the sensitivity S the noise is calibrated
 *      to), then fl_dp_noisy_mean() adds N(0, (z S)^2) per coordinate and
 *      divides by the EXPECTED count q N, never by the realised count (the
 *      realised count depends on who was sampled, so dividing by it would leak
 *      membership and break the analysis);
 *      With adaptive clipping the noise on the value sum uses z_delta =
 *      fl_dp_adaclip_value_z(z, sigma_b) and the current clip C, the bit sum
 *      gets N(0, sigma_b^2) in fl_dp_adaclip_update(), and the pair together
 *      is the Gaussian mechanism with multiplier z: the accountant records z;
 *   4. fl_dp_accountant_add(acc, q, z, 1) records the round; the epsilon at
 *      the configured delta is fl_dp_accountant_epsilon(), and
 *      fl_dp_would_exceed() says before a round starts whether running it
 *      would take epsilon past the budget.
 *
 * Accountant: Renyi DP over integer orders (Mironov, Talwar, Zhang 2019
 * §3.3; the same sum as TF-Privacy _compute_log_a_int, Opacus
 * _compute_log_a_for_int_alpha and dp_accounting), composed additively over
 * heterogeneous rounds, converted to (epsilon, delta) with the tight bound of
 * Balle et al. 2020 Thm 21 / Canonne-Kamath-Steinke 2020 Prop 12 (as
 * dp_accounting's compute_epsilon), or the classic bound of Mironov 2017.
 *
 * Noise: Gaussian samples come from libsodium's randombytes_buf (a CSPRNG;
 * ChaCha20-based) through the Box-Muller transform in double precision, or
 * from a caller-supplied fl_rng_t for reproducible tests. Like every
 * floating-point Gaussian sampler it does not guard against the
 * floating-point side channels of Mironov 2012 (a discrete Gaussian would);
 * the noise is added to a float32 sum, whose rounding is post-processing.
 */
#ifndef FL_DP_H
#define FL_DP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_rng.h"
#include "fl_util.h"

/* ------------------------------------------------------------------------ */
/* RDP of the Poisson-sampled Gaussian mechanism                             */
/* ------------------------------------------------------------------------ */

/* Largest RDP order accepted (the default grid ends at 1024; logA's sum has
 * alpha+1 terms). */
#define FL_DP_ORDER_MAX 4096u
/* Most orders an accountant holds. */
#define FL_DP_ORDERS_MAX 512u

/*
 * log A_alpha for the sampled Gaussian mechanism with sampling rate q
 * (0 < q < 1), noise multiplier z > 0 and integer order alpha >= 2:
 *   LSE_{i=0..alpha} [ ln C(alpha,i) + i ln q + (alpha-i) log1p(-q) + (i^2-i)/(2 z^2) ]
 * with the binomial through lgamma. Returns NaN for arguments outside those
 * ranges (RDP of the edge cases is fl_dp_rdp's). This function can't fail.
 */
double fl_dp_log_a(double q, double z, uint32_t alpha);

/*
 * RDP at order alpha (integer, 2 .. FL_DP_ORDER_MAX) of `steps` compositions
 * of the sampled Gaussian mechanism: steps * logA(alpha) / (alpha - 1), with
 * the special cases q = 0 -> 0, z = 0 -> +Inf, q = 1 -> steps*alpha/(2 z^2).
 * Returns 0 and writes *rdp (possibly +Inf), or FL_EINVAL naming the bad
 * argument (q outside [0,1], z negative or not finite, alpha out of range).
 */
int fl_dp_rdp(double q, double z, uint64_t steps, uint32_t alpha, double *rdp) FL_MUST_CHECK;

/*
 * (epsilon, delta) from RDP values rdp[i] at orders[i] (n >= 1 orders, each
 * >= 2 and distinct; rdp[i] >= 0, +Inf allowed), for 0 < delta < 1:
 *
 * fl_dp_epsilon (tight; Balle et al. 2020 Thm 21):
 *   eps = max(0, min_a [ rdp + log1p(-1/a) - (ln delta + ln a)/(a-1) ]),
 *   where an order with delta^2 + expm1(-rdp) >= 0 gives 0 (the KL bound
 *   delta <= sqrt(1 - e^-rdp) already holds) and orders <= 1.01 are skipped.
 * fl_dp_epsilon_classic (Mironov 2017 Prop 3):
 *   eps = min_a rdp + ln(1/delta)/(a-1).
 * fl_dp_delta, for eps >= 0:
 *   delta = min(1, min_a min(sqrt(1-e^-rdp), exp((a-1)(rdp - eps + log1p(-1/a)) - ln a))).
 *
 * Write the result and the order attaining it (*best_order may be NULL; when
 * every order gives +Inf the first order is reported and eps is +Inf).
 * Return 0, or FL_EINVAL (nothing written) for bad delta/eps, a NULL or empty
 * array, an order < 2, or an RDP value negative or NaN.
 */
int fl_dp_epsilon(const uint32_t *orders, const double *rdp, size_t n, double delta, double *eps,
                  uint32_t *best_order) FL_MUST_CHECK;
int fl_dp_epsilon_classic(const uint32_t *orders, const double *rdp, size_t n, double delta,
                          double *eps, uint32_t *best_order) FL_MUST_CHECK;
int fl_dp_delta(const uint32_t *orders, const double *rdp, size_t n, double eps, double *delta,
                uint32_t *best_order) FL_MUST_CHECK;

/* ------------------------------------------------------------------------ */
/* The accountant                                                            */
/* ------------------------------------------------------------------------ */

typedef struct fl_dp_accountant fl_dp_accountant_t;

/* The default orders: 2..63 and 128, 256, 512, 1024 (66 orders;
 * dp_accounting's integer subset). Borrowed, static. */
const uint32_t *fl_dp_default_orders(size_t *n);

/*
 * A new accountant with zero privacy loss over `orders` (n orders, each in
 * 2..FL_DP_ORDER_MAX, distinct; copied and sorted), or over the default
 * orders when orders is NULL. Returns NULL with a detail (FL_EINVAL) for bad
 * orders or n outside 1..FL_DP_ORDERS_MAX. Caller owns the result.
 */
fl_dp_accountant_t *fl_dp_accountant_new(const uint32_t *orders, size_t n);

/* Free the accountant and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_dp_accountant_destroy(fl_dp_accountant_t **self_p);

/* A copy of the accountant. Caller owns the result. Never NULL. */
fl_dp_accountant_t *fl_dp_accountant_dup(const fl_dp_accountant_t *self);

/*
 * Compose `steps` rounds of the sampled Gaussian mechanism with sampling rate
 * q in [0, 1] and noise multiplier z >= 0 (z = 0 makes the loss infinite)
 * into the accountant. FL_EINVAL (accountant unchanged) for bad q, z or
 * steps == 0.
 */
int fl_dp_accountant_add(fl_dp_accountant_t *self, double q, double z, uint64_t steps)
    FL_MUST_CHECK;

/* Epsilon spent at `delta` (tight conversion, see fl_dp_epsilon), the
 * classic bound, and delta at `eps`; 0 with no rounds. Same errors as the
 * array functions. */
int fl_dp_accountant_epsilon(const fl_dp_accountant_t *self, double delta, double *eps,
                             uint32_t *best_order) FL_MUST_CHECK;
int fl_dp_accountant_epsilon_classic(const fl_dp_accountant_t *self, double delta, double *eps,
                                     uint32_t *best_order) FL_MUST_CHECK;
int fl_dp_accountant_delta(const fl_dp_accountant_t *self, double eps, double *delta,
                           uint32_t *best_order) FL_MUST_CHECK;

/* Total steps composed so far. */
uint64_t fl_dp_accountant_steps(const fl_dp_accountant_t *self);

/* The orders (ascending) and the accumulated RDP at each; *n gets their
 * number. Borrowed until the next call that changes self. */
const uint32_t *fl_dp_accountant_orders(const fl_dp_accountant_t *self, size_t *n);
const double *fl_dp_accountant_rdp(const fl_dp_accountant_t *self);

/*
 * Budget check before a round: would composing `steps` more rounds with
 * (q, z) take epsilon at `delta` past `eps_budget`? Writes *exceed and, when
 * eps_after is not NULL, the epsilon the accountant would report afterwards.
 * The accountant is not changed. FL_EINVAL for bad q, z, steps, delta or a
 * budget that is not a positive number.
 */
int fl_dp_would_exceed(const fl_dp_accountant_t *self, double q, double z, uint64_t steps,
                       double delta, double eps_budget, bool *exceed, double *eps_after)
    FL_MUST_CHECK;

/*
 * The accountant's state as a NUL-terminated text string (fits a
 * fl_store_meta value), exact: the RDP values are written with 17
 * significant digits, which round-trip doubles. Format:
 *   covey-rdp 1\nsteps <u64>\norders <n>\n<alpha> <rdp>\n ... (n lines)
 * Caller frees the result. Never NULL.
 */
char *fl_dp_accountant_save(const fl_dp_accountant_t *self);

/*
 * Restore an accountant from fl_dp_accountant_save() text (at most
 * FL_DP_STATE_MAX bytes). FL_EFORMAT naming the line for malformed text
 * (wrong header, bad number, orders not ascending/in range, an RDP value
 * negative or NaN, trailing garbage); *out untouched on failure. Caller owns
 * *out.
 */
#define FL_DP_STATE_MAX ((size_t)64 * 1024)
int fl_dp_accountant_load(const char *text, fl_dp_accountant_t **out) FL_MUST_CHECK;

/* ------------------------------------------------------------------------ */
/* Clipping and noise                                                        */
/* ------------------------------------------------------------------------ */

/* L2 norm of x[0..n), accumulated in double. Returns NaN or Inf when an
 * element is not finite. This function can't fail. */
double fl_dp_l2_norm(const float *x, size_t n);

/*
 * Client-side clipping (flat): x <- x * min(1, S / ||x||_2). Writes the norm
 * before clipping into *norm (may be NULL; adaptive clipping needs it).
 * FL_EINVAL for S not positive and finite; FL_ENONFINITE (x untouched) when x
 * holds a NaN or Inf.
 */
int fl_dp_clip(float *x, size_t n, double clip, double *norm) FL_MUST_CHECK;

/*
 * Per-layer clipping: x is split into nseg consecutive segments of len[j]
 * elements (summing to the whole vector), segment j clipped to clip[j]. The
 * whole vector then has norm at most sqrt(sum_j clip[j]^2), the S to
 * calibrate the noise to (fl_dp_per_layer_bound). norms (may be NULL)
 * receives each segment's norm before clipping. Errors as fl_dp_clip, x
 * untouched.
 */
int fl_dp_clip_segments(float *x, const size_t *len, const double *clip, size_t nseg,
                        double *norms) FL_MUST_CHECK;
double fl_dp_per_layer_bound(const double *clip, size_t nseg);

/*
 * Standard normal samples: out[0..n) ~ N(0, 1), i.i.d., by Box-Muller in
 * double from 53-bit uniforms. rng NULL: uniforms from libsodium's
 * randombytes_buf (CSPRNG, what production uses); otherwise from *rng
 * (deterministic, for tests). This function can't fail (aborts if libsodium
 * cannot initialise).
 */
void fl_dp_gaussian(double *out, size_t n, fl_rng_t *rng);

/*
 * Add N(0, stddev^2) to each of x[0..n) in place (rng as fl_dp_gaussian).
 * FL_EINVAL for stddev negative or not finite.
 */
int fl_dp_add_noise(float *x, size_t n, double stddev, fl_rng_t *rng) FL_MUST_CHECK;

/*
 * The DP-FedAvg estimator of SECAGG.md §2.1 (fixed denominator):
 *   out[i] = (sum[i] + N(0, (z*clip)^2)) / expected_count
 * where sum is the UNWEIGHTED sum of the clipped updates and expected_count
 * is q*N, the expected number of sampled agents — never the realised count.
 * sum and out may be the same buffer. FL_EINVAL (out untouched) for z
 * negative, clip or expected_count not positive, non-finite arguments or a
 * non-finite element of sum (FL_ENONFINITE).
 */
int fl_dp_noisy_mean(const float *sum, size_t n, double z, double clip, double expected_count,
                     fl_rng_t *rng, float *out) FL_MUST_CHECK;

/* ------------------------------------------------------------------------ */
/* Adaptive clipping (Andrew et al. NeurIPS'21, SECAGG.md §2.2)              */
/* ------------------------------------------------------------------------ */

/* Defaults (TFF gaussian_adaptive, Flower): C0, target quantile gamma,
 * learning rate eta; sigma_b = expected_count / 20. */
#define FL_DP_ADACLIP_C0 0.1
#define FL_DP_ADACLIP_GAMMA 0.5
#define FL_DP_ADACLIP_ETA 0.2
#define FL_DP_ADACLIP_SIGMA_B_DIV 20.0

typedef struct fl_dp_adaclip {
    double clip;           /* the current clipping norm C */
    double gamma;          /* target quantile of the update norms, in (0, 1) */
    double eta;            /* geometric learning rate, > 0 */
    double sigma_b;        /* stddev of the noise on the summed bits, > 0 */
    double expected_count; /* m = q N, the denominator of the bit average */
} fl_dp_adaclip_t;

/*
 * Initialise the state; sigma_b <= 0 selects the default expected_count/20.
 * FL_EINVAL naming the bad value (clip0, eta, expected_count not positive and
 * finite; gamma outside (0, 1)).
 */
int fl_dp_adaclip_init(fl_dp_adaclip_t *st, double clip0, double gamma, double eta,
                       double sigma_b, double expected_count) FL_MUST_CHECK;

/* The agent's report b_k = 1[norm <= clip] - 1/2: +1/2 when its update was
 * NOT clipped, -1/2 when it was. Counts unclipped updates (Andrew et al.,
 * TF-Privacy `record <= C`), not clipped ones as Flower does. */
double fl_dp_adaclip_bit(double norm, double clip);

/*
 * Server update from the (unweighted) sum of the agents' bits:
 *   b~ = clamp((bit_sum + N(0, sigma_b^2)) / m + 1/2, 0, 1)
 *   C  <- C * exp(-eta (b~ - gamma))
 * b~ estimates the fraction of unclipped updates: when more than gamma of
 * them fit under C, C shrinks, and it grows when fewer do. Writes b~ to
 * *frac when not NULL. rng as fl_dp_gaussian. FL_EINVAL for a non-finite
 * bit_sum (state unchanged).
 */
int fl_dp_adaclip_update(fl_dp_adaclip_t *st, double bit_sum, fl_rng_t *rng, double *frac)
    FL_MUST_CHECK;

/*
 * Noise multiplier for the value sum when the bits are also noised, so that
 * the round as a whole is the Gaussian mechanism with multiplier z:
 *   z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2),   requires z < 2 sigma_b.
 * FL_EINVAL with a detail when z >= 2 sigma_b (the bit noise alone would use
 * up the privacy budget) or an argument is not positive and finite.
 */
int fl_dp_adaclip_value_z(double z, double sigma_b, double *z_delta) FL_MUST_CHECK;

#endif
