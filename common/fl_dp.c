/*
 * fl_dp.c — differential privacy for DP-FedAvg: RDP accountant of the
 * Poisson-sampled Gaussian mechanism, clipping, Gaussian noise, adaptive
 * clipping. See fl_dp.h for the contracts and SECAGG.md §2 for the
 * specification and its reference values.
 */
#include "fl_dp.h"

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* ------------------------------------------------------------------------ */
/* RDP                                                                       */
/* ------------------------------------------------------------------------ */

/* log(e^a + e^b) without overflow; -Inf stands for 0. */
static double
s_log_add(double a, double b)
{
    double hi = a > b ? a : b;
    double lo = a > b ? b : a;
    if (lo == -INFINITY)
        return hi;
    return hi + log1p(exp(lo - hi));
}

double
fl_dp_log_a(double q, double z, uint32_t alpha)
{
    if (!(q > 0.0 && q < 1.0) || !(z > 0.0) || !isfinite(z) || alpha < 2 ||
        alpha > FL_DP_ORDER_MAX)
        return NAN;
    /* A_alpha = E_{i ~ Bin(alpha, q)} exp((i^2 - i) / (2 z^2)): the alpha-th
     * moment of the privacy-loss ratio of the mixture (1-q)N(0,z^2) +
     * qN(1,z^2) against N(0,z^2) (Mironov, Talwar, Zhang 2019 §3.3). Each
     * term is formed in log space: the binomial coefficients of alpha = 1024
     * and exp((i^2-i)/(2z^2)) for small z overflow a double long before the
     * sum does. */
    double a = (double)alpha;
    double lq = log(q), l1q = log1p(-q), inv2z2 = 1.0 / (2.0 * z * z);
    double lga = lgamma(a + 1.0);
    double acc = -INFINITY;
    for (uint32_t k = 0; k <= alpha; k++) {
        double i = (double)k;
        double t = lga - lgamma(i + 1.0) - lgamma(a - i + 1.0) + i * lq + (a - i) * l1q +
                   (i * i - i) * inv2z2;
        acc = s_log_add(acc, t);
    }
    return acc;
}

/* Validate (q, z); FL_EINVAL naming the bad one. */
static int
s_check_qz(double q, double z)
{
    if (!(q >= 0.0 && q <= 1.0))
        return fl_fail(FL_EINVAL, "DP sampling rate q=%g outside [0, 1]", q);
    if (!(z >= 0.0) || !isfinite(z))
        return fl_fail(FL_EINVAL, "DP noise multiplier z=%g must be finite and >= 0", z);
    return 0;
}

static int
s_check_order(uint32_t alpha)
{
    if (alpha < 2 || alpha > FL_DP_ORDER_MAX)
        return fl_fail(FL_EINVAL, "RDP order %" PRIu32 " outside 2..%u", alpha, FL_DP_ORDER_MAX);
    return 0;
}

/* RDP of one step at order alpha; arguments already validated. */
static double
s_rdp1(double q, double z, uint32_t alpha)
{
    if (q == 0.0)
        return 0.0;
    if (z == 0.0)
        return INFINITY;
    if (q == 1.0)
        return (double)alpha / (2.0 * z * z);
    double la = fl_dp_log_a(q, z, alpha);
    /* A_alpha >= 1, so logA >= 0; a tiny negative value is rounding. */
    return la > 0.0 ? la / ((double)alpha - 1.0) : 0.0;
}

int
fl_dp_rdp(double q, double z, uint64_t steps, uint32_t alpha, double *rdp)
{
    int rc = s_check_qz(q, z);
    if (rc < 0)
        return rc;
    if ((rc = s_check_order(alpha)) < 0)
        return rc;
    double r = s_rdp1(q, z, alpha);
    /* 0 * Inf is NaN: zero steps cost nothing even without noise. */
    *rdp = steps == 0 ? 0.0 : (double)steps * r;
    return 0;
}

static int
s_check_rdp_arrays(const uint32_t *orders, const double *rdp, size_t n)
{
    if (orders == NULL || rdp == NULL || n == 0)
        return fl_fail(FL_EINVAL, "RDP conversion needs at least one order");
    for (size_t i = 0; i < n; i++) {
        if (orders[i] < 2)
            return fl_fail(FL_EINVAL, "RDP order %" PRIu32 " must be >= 2", orders[i]);
        if (!(rdp[i] >= 0.0))
            return fl_fail(FL_EINVAL, "RDP value %g at order %" PRIu32 " is negative or NaN",
                           rdp[i], orders[i]);
    }
    return 0;
}

int
fl_dp_epsilon(const uint32_t *orders, const double *rdp, size_t n, double delta, double *eps,
              uint32_t *best_order)
{
    int rc = s_check_rdp_arrays(orders, rdp, n);
    if (rc < 0)
        return rc;
    if (!(delta > 0.0 && delta < 1.0))
        return fl_fail(FL_EINVAL, "DP delta=%g outside (0, 1)", delta);
    double best = INFINITY;
    uint32_t best_a = orders[0];
    double ld = log(delta);
    for (size_t i = 0; i < n; i++) {
        double a = (double)orders[i], r = rdp[i], e;
        if (delta * delta + expm1(-r) >= 0.0) {
            /* delta <= sqrt(1 - exp(-KL)) already holds (Pinsker-type bound
             * through KL <= RDP): epsilon 0 at this order. */
            e = 0.0;
        } else if (a > 1.01) {
            /* Balle et al. 2020 Thm 21; unstable as alpha -> 1. */
            e = r + log1p(-1.0 / a) - (ld + log(a)) / (a - 1.0);
        } else {
            e = INFINITY;
        }
        if (e < best) {
            best = e;
            best_a = orders[i];
        }
    }
    *eps = best > 0.0 ? best : 0.0;
    if (best_order != NULL)
        *best_order = best_a;
    return 0;
}

int
fl_dp_epsilon_classic(const uint32_t *orders, const double *rdp, size_t n, double delta,
                      double *eps, uint32_t *best_order)
{
    int rc = s_check_rdp_arrays(orders, rdp, n);
    if (rc < 0)
        return rc;
    if (!(delta > 0.0 && delta < 1.0))
        return fl_fail(FL_EINVAL, "DP delta=%g outside (0, 1)", delta);
    double best = INFINITY;
    uint32_t best_a = orders[0];
    double l1d = -log(delta);
    for (size_t i = 0; i < n; i++) {
        double e = rdp[i] + l1d / ((double)orders[i] - 1.0);
        if (e < best) {
            best = e;
            best_a = orders[i];
        }
    }
    *eps = best;
    if (best_order != NULL)
        *best_order = best_a;
    return 0;
}

int
fl_dp_delta(const uint32_t *orders, const double *rdp, size_t n, double eps, double *delta,
            uint32_t *best_order)
{
    int rc = s_check_rdp_arrays(orders, rdp, n);
    if (rc < 0)
        return rc;
    if (!(eps >= 0.0) || !isfinite(eps))
        return fl_fail(FL_EINVAL, "DP epsilon=%g must be finite and >= 0", eps);
    double best = INFINITY; /* log delta */
    uint32_t best_a = orders[0];
    for (size_t i = 0; i < n; i++) {
        double a = (double)orders[i], r = rdp[i];
        /* The KL bound delta <= sqrt(1 - e^-rdp), then the RDP bound. */
        double ld = r == 0.0 ? -INFINITY : 0.5 * log1p(-exp(-r));
        if (a > 1.01) {
            double b = (a - 1.0) * (r - eps + log1p(-1.0 / a)) - log(a);
            if (b < ld)
                ld = b;
        }
        if (ld < best) {
            best = ld;
            best_a = orders[i];
        }
    }
    double d = exp(best);
    *delta = d < 1.0 ? d : 1.0;
    if (best_order != NULL)
        *best_order = best_a;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Accountant                                                                */
/* ------------------------------------------------------------------------ */

struct fl_dp_accountant {
    size_t n;
    uint32_t *orders; /* ascending, distinct */
    double *rdp;      /* accumulated RDP at each order */
    uint64_t steps;
};

static const uint32_t s_default_orders[] = {
    2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18,  19,  20,  21,   22, 23,
    24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,  41,  42,  43,   44, 45,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62,  63,  128, 256,  512,
    1024,
};
#define S_NDEFAULT (sizeof s_default_orders / sizeof s_default_orders[0])

const uint32_t *
fl_dp_default_orders(size_t *n)
{
    *n = S_NDEFAULT;
    return s_default_orders;
}

static int
s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static fl_dp_accountant_t *
s_acc_alloc(size_t n)
{
    fl_dp_accountant_t *self = fl_xcalloc(1, sizeof *self);
    self->n = n;
    self->orders = fl_xcalloc(n, sizeof *self->orders);
    self->rdp = fl_xcalloc(n, sizeof *self->rdp);
    return self;
}

fl_dp_accountant_t *
fl_dp_accountant_new(const uint32_t *orders, size_t n)
{
    if (orders == NULL)
        orders = fl_dp_default_orders(&n);
    if (n == 0 || n > FL_DP_ORDERS_MAX) {
        fl_fail(FL_EINVAL, "RDP accountant: %zu orders, need 1..%u", n, FL_DP_ORDERS_MAX);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s_check_order(orders[i]) < 0)
            return NULL;
    }
    fl_dp_accountant_t *self = s_acc_alloc(n);
    memcpy(self->orders, orders, n * sizeof *orders);
    qsort(self->orders, n, sizeof *self->orders, s_cmp_u32);
    for (size_t i = 1; i < n; i++) {
        if (self->orders[i] == self->orders[i - 1]) {
            fl_fail(FL_EINVAL, "RDP accountant: order %" PRIu32 " given twice", self->orders[i]);
            fl_dp_accountant_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void
fl_dp_accountant_destroy(fl_dp_accountant_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    fl_dp_accountant_t *self = *self_p;
    free(self->orders);
    free(self->rdp);
    free(self);
    *self_p = NULL;
}

fl_dp_accountant_t *
fl_dp_accountant_dup(const fl_dp_accountant_t *self)
{
    fl_dp_accountant_t *c = s_acc_alloc(self->n);
    memcpy(c->orders, self->orders, self->n * sizeof *self->orders);
    memcpy(c->rdp, self->rdp, self->n * sizeof *self->rdp);
    c->steps = self->steps;
    return c;
}

/* Per-order RDP of `steps` steps of (q, z) into out[]; arguments checked. */
static int
s_step_rdp(const fl_dp_accountant_t *self, double q, double z, uint64_t steps, double *out)
{
    int rc = s_check_qz(q, z);
    if (rc < 0)
        return rc;
    if (steps == 0)
        return fl_fail(FL_EINVAL, "RDP accountant: zero steps");
    for (size_t i = 0; i < self->n; i++)
        out[i] = (double)steps * s_rdp1(q, z, self->orders[i]);
    return 0;
}

int
fl_dp_accountant_add(fl_dp_accountant_t *self, double q, double z, uint64_t steps)
{
    double *add = fl_xmalloc(self->n * sizeof *add);
    int rc = s_step_rdp(self, q, z, steps, add);
    if (rc < 0)
        goto out;
    if (steps > UINT64_MAX - self->steps) {
        rc = fl_fail(FL_ERANGE, "RDP accountant: step count overflows");
        goto out;
    }
    for (size_t i = 0; i < self->n; i++)
        self->rdp[i] += add[i];
    self->steps += steps;
out:
    free(add);
    return rc;
}

int
fl_dp_accountant_epsilon(const fl_dp_accountant_t *self, double delta, double *eps,
                         uint32_t *best_order)
{
    return fl_dp_epsilon(self->orders, self->rdp, self->n, delta, eps, best_order);
}

int
fl_dp_accountant_epsilon_classic(const fl_dp_accountant_t *self, double delta, double *eps,
                                 uint32_t *best_order)
{
    return fl_dp_epsilon_classic(self->orders, self->rdp, self->n, delta, eps, best_order);
}

int
fl_dp_accountant_delta(const fl_dp_accountant_t *self, double eps, double *delta,
                       uint32_t *best_order)
{
    return fl_dp_delta(self->orders, self->rdp, self->n, eps, delta, best_order);
}

uint64_t
fl_dp_accountant_steps(const fl_dp_accountant_t *self)
{
    return self->steps;
}

const uint32_t *
fl_dp_accountant_orders(const fl_dp_accountant_t *self, size_t *n)
{
    *n = self->n;
    return self->orders;
}

const double *
fl_dp_accountant_rdp(const fl_dp_accountant_t *self)
{
    return self->rdp;
}

int
fl_dp_would_exceed(const fl_dp_accountant_t *self, double q, double z, uint64_t steps,
                   double delta, double eps_budget, bool *exceed, double *eps_after)
{
    int rc;
    double *r = fl_xmalloc(self->n * sizeof *r);
    if (!(eps_budget > 0.0) || isnan(eps_budget)) {
        rc = fl_fail(FL_EINVAL, "DP epsilon budget %g must be > 0", eps_budget);
        goto out;
    }
    if ((rc = s_step_rdp(self, q, z, steps, r)) < 0)
        goto out;
    for (size_t i = 0; i < self->n; i++)
        r[i] += self->rdp[i];
    double e = INFINITY;
    if ((rc = fl_dp_epsilon(self->orders, r, self->n, delta, &e, NULL)) < 0)
        goto out;
    *exceed = e > eps_budget;
    if (eps_after != NULL)
        *eps_after = e;
out:
    free(r);
    return rc;
}

#define S_STATE_MAGIC "covey-rdp 1\n"

char *
fl_dp_accountant_save(const fl_dp_accountant_t *self)
{
    /* header + per order "<u32> <%.17g>\n": at most 10 + 1 + 24 + 1 bytes */
    size_t cap = 128 + self->n * 40;
    char *buf = fl_xmalloc(cap);
    int len = snprintf(buf, cap, S_STATE_MAGIC "steps %" PRIu64 "\norders %zu\n", self->steps,
                       self->n);
    assert(len > 0 && (size_t)len < cap);
    size_t off = (size_t)len;
    for (size_t i = 0; i < self->n; i++) {
        len = snprintf(buf + off, cap - off, "%" PRIu32 " %.17g\n", self->orders[i],
                       self->rdp[i]);
        assert(len > 0 && (size_t)len < cap - off);
        off += (size_t)len;
    }
    return buf;
}

/* Parse "<u64>\n"-style unsigned from *p, leaving *p after it; false on a
 * missing or out-of-range number. No sign, no leading space. */
static bool
s_parse_uint(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || v > max)
        return false;
    *out = (uint64_t)v;
    *p = end;
    return true;
}

static bool
s_expect(const char **p, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

int
fl_dp_accountant_load(const char *text, fl_dp_accountant_t **out)
{
    fl_dp_accountant_t *self = NULL;
    int rc = FL_EFORMAT;
    uint64_t steps = 0, n = 0;
    const char *p = text;

    if (text == NULL)
        return fl_fail(FL_EINVAL, "RDP accountant state: NULL");
    if (strnlen(text, FL_DP_STATE_MAX + 1) > FL_DP_STATE_MAX)
        return fl_fail(FL_EFORMAT, "RDP accountant state longer than %zu bytes", FL_DP_STATE_MAX);
    if (!s_expect(&p, S_STATE_MAGIC)) {
        rc = fl_fail(FL_EFORMAT, "RDP accountant state: bad header (want 'covey-rdp 1')");
        goto out;
    }
    if (!s_expect(&p, "steps ") || !s_parse_uint(&p, UINT64_MAX, &steps) || !s_expect(&p, "\n")) {
        rc = fl_fail(FL_EFORMAT, "RDP accountant state: bad 'steps' line");
        goto out;
    }
    if (!s_expect(&p, "orders ") || !s_parse_uint(&p, FL_DP_ORDERS_MAX, &n) ||
        !s_expect(&p, "\n") || n == 0) {
        rc = fl_fail(FL_EFORMAT, "RDP accountant state: bad 'orders' line (1..%u orders)",
                     FL_DP_ORDERS_MAX);
        goto out;
    }
    self = s_acc_alloc((size_t)n);
    self->steps = steps;
    for (size_t i = 0; i < self->n; i++) {
        uint64_t a = 0;
        if (!s_parse_uint(&p, FL_DP_ORDER_MAX, &a) || a < 2 || !s_expect(&p, " ")) {
            rc = fl_fail(FL_EFORMAT, "RDP accountant state: order line %zu: bad order", i + 1);
            goto out;
        }
        if (i > 0 && a <= self->orders[i - 1]) {
            rc = fl_fail(FL_EFORMAT, "RDP accountant state: order line %zu: orders not ascending",
                         i + 1);
            goto out;
        }
        /* strtod accepts leading space and hex; demand a plain number or inf. */
        if (*p != 'i' && (*p < '0' || *p > '9')) {
            rc = fl_fail(FL_EFORMAT, "RDP accountant state: order %" PRIu64 ": bad RDP value", a);
            goto out;
        }
        char *end = NULL;
        errno = 0;
        double r = strtod(p, &end);
        size_t plain = strspn(p, "0123456789.eE+-"); /* no hex, no nan(...) */
        if (end == p || (errno != 0 && errno != ERANGE) || !(r >= 0.0) ||
            (isinf(r) ? strncmp(p, "inf\n", 4) != 0 : (size_t)(end - p) != plain)) {
            rc = fl_fail(FL_EFORMAT, "RDP accountant state: order %" PRIu64 ": bad RDP value", a);
            goto out;
        }
        p = end;
        if (!s_expect(&p, "\n")) {
            rc = fl_fail(FL_EFORMAT, "RDP accountant state: order %" PRIu64 ": trailing text", a);
            goto out;
        }
        self->orders[i] = (uint32_t)a;
        self->rdp[i] = r;
    }
    if (*p != '\0') {
        rc = fl_fail(FL_EFORMAT, "RDP accountant state: trailing text after %" PRIu64 " orders",
                     n);
        goto out;
    }
    *out = self;
    self = NULL;
    rc = 0;
out:
    fl_dp_accountant_destroy(&self);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Clipping                                                                  */
/* ------------------------------------------------------------------------ */

double
fl_dp_l2_norm(const float *x, size_t n)
{
    /* Four partial sums let the compiler vectorise without -ffast-math. */
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)x[i] * x[i];
        s1 += (double)x[i + 1] * x[i + 1];
        s2 += (double)x[i + 2] * x[i + 2];
        s3 += (double)x[i + 3] * x[i + 3];
    }
    for (; i < n; i++)
        s0 += (double)x[i] * x[i];
    return sqrt((s0 + s1) + (s2 + s3));
}

/* Scale that brings a vector of norm `norm` to at most `clip`: 1 when it is
 * already inside. When clipping, shave 2^-22 so that the float rounding of
 * each product (at most 2^-24 relative) and of the double norm cannot leave
 * the result above clip: the sensitivity bound must hold exactly. */
static double
s_clip_scale(double norm, double clip)
{
    if (norm <= clip)
        return 1.0;
    return clip / norm * (1.0 - 0x1p-22);
}

static void
s_scale(float *x, size_t n, double s)
{
    if (s == 1.0)
        return;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)x[i] * s);
}

static int
s_check_clip(double clip)
{
    if (!(clip > 0.0) || !isfinite(clip))
        return fl_fail(FL_EINVAL, "DP clipping norm %g must be finite and > 0", clip);
    return 0;
}

int
fl_dp_clip(float *x, size_t n, double clip, double *norm)
{
    int rc = s_check_clip(clip);
    if (rc < 0)
        return rc;
    double nr = fl_dp_l2_norm(x, n);
    if (!isfinite(nr))
        return fl_fail(FL_ENONFINITE, "DP clipping: update holds NaN or Inf");
    s_scale(x, n, s_clip_scale(nr, clip));
    if (norm != NULL)
        *norm = nr;
    return 0;
}

int
fl_dp_clip_segments(float *x, const size_t *len, const double *clip, size_t nseg, double *norms)
{
    int rc = 0;
    double *nr = fl_xcalloc(nseg ? nseg : 1, sizeof *nr);
    size_t off = 0;
    /* Check everything before scaling anything: x untouched on failure. */
    for (size_t j = 0; j < nseg; j++) {
        if ((rc = s_check_clip(clip[j])) < 0)
            goto out;
        nr[j] = fl_dp_l2_norm(x + off, len[j]);
        if (!isfinite(nr[j])) {
            rc = fl_fail(FL_ENONFINITE, "DP clipping: segment %zu holds NaN or Inf", j);
            goto out;
        }
        off += len[j];
    }
    off = 0;
    for (size_t j = 0; j < nseg; j++) {
        s_scale(x + off, len[j], s_clip_scale(nr[j], clip[j]));
        off += len[j];
        if (norms != NULL)
            norms[j] = nr[j];
    }
out:
    free(nr);
    return rc;
}

double
fl_dp_per_layer_bound(const double *clip, size_t nseg)
{
    double s = 0;
    for (size_t j = 0; j < nseg; j++)
        s += clip[j] * clip[j];
    return sqrt(s);
}

/* ------------------------------------------------------------------------ */
/* Gaussian noise                                                            */
/* ------------------------------------------------------------------------ */

#define S_BATCH 256 /* uniforms drawn per randombytes_buf call */

/* A source of 64-bit words: the CSPRNG in batches, or the caller's fl_rng. */
typedef struct {
    fl_rng_t *rng;
    uint64_t buf[S_BATCH];
    size_t pos;
} s_src_t;

static void
s_src_init(s_src_t *src, fl_rng_t *rng)
{
    src->rng = rng;
    src->pos = S_BATCH;
    if (rng == NULL && sodium_init() < 0) {
        fprintf(stderr, "fl_dp: libsodium failed to initialise\n");
        abort();
    }
}

static uint64_t
s_src_u64(s_src_t *src)
{
    if (src->rng != NULL)
        return fl_rng_u64(src->rng);
    if (src->pos == S_BATCH) {
        randombytes_buf(src->buf, sizeof src->buf);
        src->pos = 0;
    }
    return src->buf[src->pos++];
}

static void
s_src_done(s_src_t *src)
{
    /* The uniforms determine the noise; do not leave them on the stack. */
    if (src->rng == NULL)
        sodium_memzero(src->buf, sizeof src->buf);
}

/* Box-Muller: two independent N(0,1) from two uniforms. u1 in (0, 1] (53
 * bits, so log(u1) is finite and the tail reaches |x| ~ 8.6), u2 in [0, 1). */
static void
s_box_muller(s_src_t *src, double *a, double *b)
{
    double u1 = (double)((s_src_u64(src) >> 11) + 1) * 0x1p-53;
    double u2 = (double)(s_src_u64(src) >> 11) * 0x1p-53;
    double r = sqrt(-2.0 * log(u1));
    double t = 2.0 * M_PI * u2;
    *a = r * cos(t);
    *b = r * sin(t);
}

static void
s_gaussian(s_src_t *src, double *out, size_t n)
{
    size_t i = 0;
    for (; i + 2 <= n; i += 2)
        s_box_muller(src, &out[i], &out[i + 1]);
    if (i < n) {
        double spare;
        s_box_muller(src, &out[i], &spare);
    }
}

void
fl_dp_gaussian(double *out, size_t n, fl_rng_t *rng)
{
    s_src_t src;
    s_src_init(&src, rng);
    s_gaussian(&src, out, n);
    s_src_done(&src);
}

/* Clamp a finite double into float range (rounding past FLT_MAX). */
static float
s_to_float(double v)
{
    if (v > FLT_MAX)
        return FLT_MAX;
    if (v < -FLT_MAX)
        return -FLT_MAX;
    return (float)v;
}

/* out[i] = (in[i] + stddev * N(0,1)) * scale, noise generated in blocks. */
static void
s_noise_pass(const float *in, float *out, size_t n, double stddev, double scale, fl_rng_t *rng)
{
    s_src_t src;
    double g[S_BATCH];
    s_src_init(&src, rng);
    for (size_t off = 0; off < n; off += S_BATCH) {
        size_t k = n - off < S_BATCH ? n - off : S_BATCH;
        s_gaussian(&src, g, k);
        for (size_t i = 0; i < k; i++)
            out[off + i] = s_to_float(((double)in[off + i] + stddev * g[i]) * scale);
    }
    sodium_memzero(g, sizeof g);
    s_src_done(&src);
}

int
fl_dp_add_noise(float *x, size_t n, double stddev, fl_rng_t *rng)
{
    if (!(stddev >= 0.0) || !isfinite(stddev))
        return fl_fail(FL_EINVAL, "DP noise stddev %g must be finite and >= 0", stddev);
    s_noise_pass(x, x, n, stddev, 1.0, rng);
    return 0;
}

int
fl_dp_noisy_mean(const float *sum, size_t n, double z, double clip, double expected_count,
                 fl_rng_t *rng, float *out)
{
    if (!(z >= 0.0) || !isfinite(z))
        return fl_fail(FL_EINVAL, "DP noise multiplier z=%g must be finite and >= 0", z);
    int rc = s_check_clip(clip);
    if (rc < 0)
        return rc;
    if (!(expected_count > 0.0) || !isfinite(expected_count))
        return fl_fail(FL_EINVAL, "DP expected count q*N=%g must be finite and > 0",
                       expected_count);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(sum[i]))
            return fl_fail(FL_ENONFINITE, "DP noisy mean: sum element %zu is not finite", i);
    }
    /* The denominator is q*N, the EXPECTED number of sampled agents, fixed
     * before sampling: the realised count is data-dependent (it reveals
     * whether one more agent took part), so dividing by it would break the
     * sensitivity bound S / (qN) that the noise is calibrated to. */
    s_noise_pass(sum, out, n, z * clip, 1.0 / expected_count, rng);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Adaptive clipping                                                         */
/* ------------------------------------------------------------------------ */

static bool
s_pos(double v)
{
    return v > 0.0 && isfinite(v);
}

int
fl_dp_adaclip_init(fl_dp_adaclip_t *st, double clip0, double gamma, double eta, double sigma_b,
                   double expected_count)
{
    if (!s_pos(clip0))
        return fl_fail(FL_EINVAL, "adaptive clipping: initial clip %g must be finite and > 0",
                       clip0);
    if (!(gamma > 0.0 && gamma < 1.0))
        return fl_fail(FL_EINVAL, "adaptive clipping: target quantile %g outside (0, 1)", gamma);
    if (!s_pos(eta))
        return fl_fail(FL_EINVAL, "adaptive clipping: learning rate %g must be finite and > 0",
                       eta);
    if (!s_pos(expected_count))
        return fl_fail(FL_EINVAL, "adaptive clipping: expected count %g must be finite and > 0",
                       expected_count);
    if (isnan(sigma_b) || !isfinite(sigma_b))
        return fl_fail(FL_EINVAL, "adaptive clipping: sigma_b %g must be finite", sigma_b);
    st->clip = clip0;
    st->gamma = gamma;
    st->eta = eta;
    st->expected_count = expected_count;
    st->sigma_b = sigma_b > 0.0 ? sigma_b : expected_count / FL_DP_ADACLIP_SIGMA_B_DIV;
    return 0;
}

double
fl_dp_adaclip_bit(double norm, double clip)
{
    /* Counts UNCLIPPED updates (Andrew et al.; TF-Privacy `record <= C`). */
    return norm <= clip ? 0.5 : -0.5;
}

int
fl_dp_adaclip_update(fl_dp_adaclip_t *st, double bit_sum, fl_rng_t *rng, double *frac)
{
    if (!isfinite(bit_sum))
        return fl_fail(FL_EINVAL, "adaptive clipping: bit sum %g is not finite", bit_sum);
    double g;
    fl_dp_gaussian(&g, 1, rng);
    double b = (bit_sum + st->sigma_b * g) / st->expected_count + 0.5;
    b = b < 0.0 ? 0.0 : (b > 1.0 ? 1.0 : b);
    /* b estimates the fraction of updates that fit under C. More than gamma
     * fit -> b - gamma > 0 -> C shrinks toward the gamma quantile; fewer fit
     * -> C grows. (Flower counts clipped updates with this same sign and so
     * moves C the wrong way.) */
    st->clip *= exp(-st->eta * (b - st->gamma));
    if (frac != NULL)
        *frac = b;
    return 0;
}

int
fl_dp_adaclip_value_z(double z, double sigma_b, double *z_delta)
{
    if (!s_pos(z) || !s_pos(sigma_b))
        return fl_fail(FL_EINVAL, "adaptive clipping: z=%g and sigma_b=%g must be finite and > 0",
                       z, sigma_b);
    if (z >= 2.0 * sigma_b)
        return fl_fail(FL_EINVAL,
                       "adaptive clipping: noise multiplier z=%g must be below 2*sigma_b=%g "
                       "(the clipped-count noise alone would use the whole privacy budget; "
                       "raise sigma_b, i.e. the expected clients per round, or lower z)",
                       z, 2.0 * sigma_b);
    double v = 1.0 / (z * z) - 1.0 / (4.0 * sigma_b * sigma_b);
    *z_delta = 1.0 / sqrt(v);
    return 0;
}
