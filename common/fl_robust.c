/*
 * fl_robust.c — Byzantine-robust aggregation (median, trimmed mean, Krum,
 * Multi-Krum, norm bounding) over a collector of the round's updates. See
 * fl_robust.h for the contracts.
 *
 * Median and trimmed mean work on blocks of coordinates: a block of every
 * update is transposed into a column buffer (contiguous reads of each
 * update, then each coordinate's n values contiguous), and each column is
 * reduced with an introselect (quickselect with a heapsort fallback, so
 * values chosen by an attacker cannot make it quadratic).
 *
 * Krum's pairwise squared distances come from a Gram matrix accumulated
 * block by block with cblas_ssyrk. Each block is centred on its mean first:
 * ||a-b||^2 = ||a||^2 + ||b||^2 - 2ab cancels catastrophically when the
 * updates are far from the origin compared with their spread, and centring
 * (distances are translation invariant, block by block) brings the norms
 * down to the scale of the distances. The blocks' Grams are summed in double.
 */
#include "fl_robust.h"

#include <assert.h>
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_params.h"

#define S_COL_BLOCK 256   /* coordinates per transposed block (median, trimmed mean) */
#define S_GRAM_BLOCK 1024 /* coordinates per ssyrk call (Krum) */
#define S_F_MAX 100000u   /* largest f / m accepted by the parser */

struct fl_robust {
    fl_robust_config_t cfg;
    size_t d, max_n;
    float **slot;   /* max_n update buffers, allocated on first use */
    double *weight; /* the weight of each held update */
    size_t count;   /* updates held */
    /* norm_bound: running sum_k w_k s_k u_k and sum_k w_k (slot[0] is the
     * buffer of the update being added) */
    double *acc;
    double wsum;
    /* the open streaming add */
    bool open;
    double open_w;
    size_t done;
};

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

const char *
fl_robust_rule_name(fl_robust_rule_t rule)
{
    switch (rule) {
    case FL_ROBUST_NONE:
        return "none";
    case FL_ROBUST_MEDIAN:
        return "median";
    case FL_ROBUST_TRIMMED_MEAN:
        return "trimmed_mean";
    case FL_ROBUST_KRUM:
        return "krum";
    case FL_ROBUST_MULTIKRUM:
        return "multikrum";
    case FL_ROBUST_NORM_BOUND:
        return "norm_bound";
    }
    return "unknown";
}

static bool
s_is_krum(fl_robust_rule_t r)
{
    return r == FL_ROBUST_KRUM || r == FL_ROBUST_MULTIKRUM;
}

/* Validate a configuration; FL_EINVAL naming the bad field. */
static int
s_check_cfg(const fl_robust_config_t *c)
{
    switch (c->rule) {
    case FL_ROBUST_NONE:
    case FL_ROBUST_MEDIAN:
        return 0;
    case FL_ROBUST_TRIMMED_MEAN:
        if (!(c->beta >= 0.0 && c->beta < 0.5))
            return fl_fail(FL_EINVAL, "trimmed_mean: beta=%g outside [0, 0.5)", c->beta);
        return 0;
    case FL_ROBUST_KRUM:
    case FL_ROBUST_MULTIKRUM:
        if (c->f > S_F_MAX || c->m > S_F_MAX)
            return fl_fail(FL_EINVAL, "%s: f=%zu or m=%zu above %u", fl_robust_rule_name(c->rule),
                           c->f, c->m, S_F_MAX);
        return 0;
    case FL_ROBUST_NORM_BOUND:
        if (!(c->bound > 0.0) || !isfinite(c->bound))
            return fl_fail(FL_EINVAL, "norm_bound: M=%g must be finite and > 0", c->bound);
        return 0;
    }
    return fl_fail(FL_EINVAL, "unknown robust aggregation rule %d", (int)c->rule);
}

/* Split spec at ':' into at most 4 fields in buf; returns the field count or
 * -1 when there are more. */
static int
s_split(char *buf, char *fields[4])
{
    int n = 0;
    char *p = buf;
    for (;;) {
        if (n == 4)
            return -1;
        fields[n++] = p;
        char *c = strchr(p, ':');
        if (c == NULL)
            return n;
        *c = '\0';
        p = c + 1;
    }
}

static int
s_parse_count(const char *s, const char *what, size_t *out)
{
    uint64_t v = 0;
    if (fl_parse_u64(s, what, &v) < 0)
        return FL_EINVAL;
    if (v > S_F_MAX)
        return fl_fail(FL_EINVAL, "%s=%llu above %u", what, (unsigned long long)v, S_F_MAX);
    *out = (size_t)v;
    return 0;
}

int
fl_robust_parse(const char *spec, fl_robust_config_t *cfg)
{
    fl_robust_config_t c = {0};
    char buf[128];
    char *fld[4];
    int rc = FL_EINVAL;

    if (spec == NULL || spec[0] == '\0')
        return fl_fail(FL_EINVAL, "robust aggregation rule: empty");
    if (strlen(spec) >= sizeof buf)
        return fl_fail(FL_EINVAL, "robust aggregation rule '%.32s...': too long", spec);
    strcpy(buf, spec);
    int nf = s_split(buf, fld);
    const char *name = fld[0];
    if (nf < 0)
        return fl_fail(FL_EINVAL, "robust aggregation rule '%s': too many ':' fields", spec);

    if (strcmp(name, "none") == 0 || strcmp(name, "fedavg") == 0) {
        c.rule = FL_ROBUST_NONE;
        if (nf > 1)
            goto extra;
    } else if (strcmp(name, "median") == 0) {
        c.rule = FL_ROBUST_MEDIAN;
        if (nf > 1)
            goto extra;
    } else if (strcmp(name, "trimmed_mean") == 0) {
        c.rule = FL_ROBUST_TRIMMED_MEAN;
        c.beta = FL_ROBUST_BETA_DEFAULT;
        if (nf > 2)
            goto extra;
        if (nf == 2 && fl_parse_double(fld[1], "trimmed_mean beta", &c.beta) < 0)
            return FL_EINVAL;
    } else if (strcmp(name, "krum") == 0 || strcmp(name, "multikrum") == 0) {
        bool multi = name[0] == 'm';
        c.rule = multi ? FL_ROBUST_MULTIKRUM : FL_ROBUST_KRUM;
        if (nf > (multi ? 3 : 2))
            goto extra;
        if (nf >= 2 && s_parse_count(fld[1], multi ? "multikrum f" : "krum f", &c.f) < 0)
            return FL_EINVAL;
        if (nf == 3 && s_parse_count(fld[2], "multikrum m", &c.m) < 0)
            return FL_EINVAL;
        if (multi && nf == 3 && c.m == 0)
            return fl_fail(FL_EINVAL, "multikrum: m must be >= 1 (omit it for n - f)");
    } else if (strcmp(name, "norm_bound") == 0) {
        c.rule = FL_ROBUST_NORM_BOUND;
        if (nf != 2)
            return fl_fail(FL_EINVAL, "norm_bound needs its bound: 'norm_bound:M'");
        if (fl_parse_double(fld[1], "norm_bound M", &c.bound) < 0)
            return FL_EINVAL;
    } else {
        return fl_fail(FL_EINVAL,
                       "unknown robust aggregation rule '%s' (want none, median, "
                       "trimmed_mean[:beta], krum[:f], multikrum[:f[:m]] or norm_bound:M)",
                       name);
    }
    if ((rc = s_check_cfg(&c)) < 0)
        return rc;
    *cfg = c;
    return 0;
extra:
    return fl_fail(FL_EINVAL, "robust aggregation rule '%s': too many ':' fields", spec);
}

char *
fl_robust_format(const fl_robust_config_t *cfg, char *buf, size_t size)
{
    const char *name = fl_robust_rule_name(cfg->rule);
    switch (cfg->rule) {
    case FL_ROBUST_TRIMMED_MEAN:
        snprintf(buf, size, "%s:%g", name, cfg->beta);
        break;
    case FL_ROBUST_KRUM:
        snprintf(buf, size, "%s:%zu", name, cfg->f);
        break;
    case FL_ROBUST_MULTIKRUM:
        if (cfg->m > 0)
            snprintf(buf, size, "%s:%zu:%zu", name, cfg->f, cfg->m);
        else
            snprintf(buf, size, "%s:%zu", name, cfg->f);
        break;
    case FL_ROBUST_NORM_BOUND:
        snprintf(buf, size, "%s:%g", name, cfg->bound);
        break;
    default:
        snprintf(buf, size, "%s", name);
        break;
    }
    return buf;
}

int
fl_robust_check_compatible(const fl_robust_config_t *cfg, bool secagg_on)
{
    if (secagg_on && cfg->rule != FL_ROBUST_NONE)
        return fl_fail(FL_EINVAL,
                       "robust aggregation (%s) cannot be combined with secure aggregation, "
                       "which hides individual updates",
                       fl_robust_rule_name(cfg->rule));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Collector                                                                 */
/* ------------------------------------------------------------------------ */

fl_robust_t *
fl_robust_new(const fl_robust_config_t *cfg, size_t d, size_t max_n)
{
    if (cfg == NULL) {
        fl_fail(FL_EINVAL, "robust aggregation: no configuration");
        return NULL;
    }
    if (s_check_cfg(cfg) < 0)
        return NULL;
    if (cfg->rule == FL_ROBUST_NONE) {
        fl_fail(FL_EINVAL, "robust aggregation: rule 'none' is plain FedAvg (use fl_aggr)");
        return NULL;
    }
    if (d == 0 || d > FL_PARAMS_MAX_ELEMS) {
        fl_fail(FL_EINVAL, "robust aggregation: update size %zu outside 1..%zu", d,
                FL_PARAMS_MAX_ELEMS);
        return NULL;
    }
    if (max_n == 0 || max_n > FL_ROBUST_MAX_N) {
        fl_fail(FL_EINVAL, "robust aggregation: max updates %zu outside 1..%d", max_n,
                FL_ROBUST_MAX_N);
        return NULL;
    }
    if (s_is_krum(cfg->rule) && max_n < 2 * cfg->f + 3) {
        fl_fail(FL_EINVAL, "%s with f=%zu needs n >= 2f+3 = %zu updates, but at most %zu arrive",
                fl_robust_rule_name(cfg->rule), cfg->f, 2 * cfg->f + 3, max_n);
        return NULL;
    }
    if (cfg->rule == FL_ROBUST_MULTIKRUM && cfg->m > max_n) {
        fl_fail(FL_EINVAL, "multikrum: m=%zu exceeds the %zu updates that can arrive", cfg->m,
                max_n);
        return NULL;
    }
    fl_robust_t *self = fl_xcalloc(1, sizeof *self);
    self->cfg = *cfg;
    self->d = d;
    self->max_n = max_n;
    size_t nslots = cfg->rule == FL_ROBUST_NORM_BOUND ? 1 : max_n;
    self->slot = fl_xcalloc(nslots, sizeof *self->slot);
    self->weight = fl_xcalloc(max_n, sizeof *self->weight);
    return self;
}

void
fl_robust_destroy(fl_robust_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    fl_robust_t *self = *self_p;
    size_t nslots = self->cfg.rule == FL_ROBUST_NORM_BOUND ? 1 : self->max_n;
    for (size_t i = 0; i < nslots; i++)
        free(self->slot[i]);
    free(self->slot);
    free(self->weight);
    free(self->acc);
    free(self);
    *self_p = NULL;
}

void
fl_robust_reset(fl_robust_t *self)
{
    self->count = 0;
    self->wsum = 0;
    self->open = false;
    self->done = 0;
}

size_t
fl_robust_count(const fl_robust_t *self)
{
    return self->count;
}

size_t
fl_robust_dim(const fl_robust_t *self)
{
    return self->d;
}

/* A d-float, 64-byte aligned buffer, or NULL. */
static void *
s_alloc(size_t n, size_t elem)
{
    void *p = NULL;
    size_t bytes = n * elem; /* n <= 2^31, elem <= 8: no overflow */
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0)
        return NULL;
    return p;
}

/* The buffer the open add writes into. */
static float *
s_pending(fl_robust_t *self)
{
    return self->cfg.rule == FL_ROBUST_NORM_BOUND ? self->slot[0] : self->slot[self->count];
}

int
fl_robust_begin(fl_robust_t *self, double weight)
{
    if (self->open) {
        fl_robust_abort(self);
        return fl_fail(FL_ESTATE, "robust aggregation: an add is already open");
    }
    if (!(weight >= FL_ROBUST_WEIGHT_MIN && weight <= FL_ROBUST_WEIGHT_MAX))
        return fl_fail(FL_EINVAL, "robust aggregation: weight %g outside [%g, %g]", weight,
                       FL_ROBUST_WEIGHT_MIN, FL_ROBUST_WEIGHT_MAX);
    if (self->count >= self->max_n)
        return fl_fail(FL_ERANGE, "robust aggregation: already holding the maximum %zu updates",
                       self->max_n);
    size_t s = self->cfg.rule == FL_ROBUST_NORM_BOUND ? 0 : self->count;
    if (self->slot[s] == NULL && (self->slot[s] = s_alloc(self->d, sizeof(float))) == NULL)
        return fl_fail(FL_ENOMEM, "robust aggregation: cannot allocate update %zu (%zu floats)",
                       self->count + 1, self->d);
    if (self->cfg.rule == FL_ROBUST_NORM_BOUND && self->acc == NULL &&
        (self->acc = s_alloc(self->d, sizeof(double))) == NULL)
        return fl_fail(FL_ENOMEM, "robust aggregation: cannot allocate the sum (%zu doubles)",
                       self->d);
    self->open = true;
    self->open_w = weight;
    self->done = 0;
    return 0;
}

int
fl_robust_chunk(fl_robust_t *self, size_t offset, const float *data, size_t n)
{
    int rc;
    if (!self->open)
        return fl_fail(FL_ESTATE, "robust aggregation: chunk without begin");
    if (offset != self->done || n > self->d - self->done || (data == NULL && n > 0)) {
        rc = fl_fail(FL_EINVAL,
                     "robust aggregation: chunk [%zu, +%zu) out of order or past the end "
                     "(expected offset %zu of %zu)",
                     offset, n, self->done, self->d);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        float v = data[i];
        if (!isfinite(v)) {
            rc = fl_fail(FL_ENONFINITE, "robust aggregation: update element %zu is not finite",
                         offset + i);
            goto fail;
        }
        if (fabsf(v) > FL_ROBUST_VALUE_MAX) {
            rc = fl_fail(FL_ERANGE, "robust aggregation: update element %zu = %g exceeds %g",
                         offset + i, (double)v, (double)FL_ROBUST_VALUE_MAX);
            goto fail;
        }
    }
    if (n > 0)
        memcpy(s_pending(self) + offset, data, n * sizeof *data);
    self->done += n;
    return 0;
fail:
    fl_robust_abort(self);
    return rc;
}

int
fl_robust_commit(fl_robust_t *self)
{
    if (!self->open)
        return fl_fail(FL_ESTATE, "robust aggregation: commit without begin");
    if (self->done != self->d) {
        size_t done = self->done;
        fl_robust_abort(self);
        return fl_fail(FL_ESTATE, "robust aggregation: commit after %zu of %zu elements", done,
                       self->d);
    }
    double w = self->open_w;
    if (self->cfg.rule == FL_ROBUST_NORM_BOUND) {
        const float *u = self->slot[0];
        double s0 = 0;
        for (size_t i = 0; i < self->d; i++)
            s0 += (double)u[i] * u[i];
        double norm = sqrt(s0);
        double scale = norm > self->cfg.bound ? self->cfg.bound / norm : 1.0;
        double ws = w * scale;
        if (self->count == 0) {
            for (size_t i = 0; i < self->d; i++)
                self->acc[i] = ws * u[i];
        } else {
            for (size_t i = 0; i < self->d; i++)
                self->acc[i] += ws * u[i];
        }
        self->wsum += w;
    }
    self->weight[self->count] = w;
    self->count++;
    self->open = false;
    self->done = 0;
    return 0;
}

void
fl_robust_abort(fl_robust_t *self)
{
    self->open = false;
    self->done = 0;
}

int
fl_robust_add(fl_robust_t *self, const float *update, size_t d, double weight)
{
    if (self->open)
        return fl_fail(FL_ESTATE, "robust aggregation: add while a streaming add is open");
    if (update == NULL)
        return fl_fail(FL_EINVAL, "robust aggregation: NULL update");
    if (d != self->d)
        return fl_fail(FL_EINVAL, "robust aggregation: update has %zu elements, expected %zu", d,
                       self->d);
    int rc = fl_robust_begin(self, weight);
    if (rc < 0)
        return rc;
    if ((rc = fl_robust_chunk(self, 0, update, d)) < 0)
        return rc;
    return fl_robust_commit(self);
}

/* ------------------------------------------------------------------------ */
/* Selection                                                                 */
/* ------------------------------------------------------------------------ */

static void
s_swap(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

static void
s_insertion(float *a, size_t lo, size_t hi) /* sorts a[lo..hi] inclusive */
{
    for (size_t i = lo + 1; i <= hi; i++) {
        float v = a[i];
        size_t j = i;
        while (j > lo && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

static void
s_sift(float *a, size_t start, size_t end, size_t root) /* heap on a[start..end) */
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= end - start)
            return;
        if (child + 1 < end - start && a[start + child] < a[start + child + 1])
            child++;
        if (!(a[start + root] < a[start + child]))
            return;
        s_swap(&a[start + root], &a[start + child]);
        root = child;
    }
}

static void
s_heapsort(float *a, size_t lo, size_t hi) /* sorts a[lo..hi] inclusive */
{
    size_t n = hi - lo + 1;
    for (size_t i = n / 2; i-- > 0;)
        s_sift(a, lo, lo + n, i);
    for (size_t end = n; end > 1; end--) {
        s_swap(&a[lo], &a[lo + end - 1]);
        s_sift(a, lo, lo + end - 1, 0);
    }
}

/*
 * Introselect: rearrange a[lo..hi] so that a[k] holds the value it would
 * hold sorted, everything before it <= a[k] and everything after >= a[k].
 * Quickselect with a median-of-three pivot; after 2 log2(n) + 4 rounds that
 * did not converge (adversarial input), the rest is heapsorted.
 */
static void
s_select(float *a, size_t lo, size_t hi, size_t k)
{
    unsigned budget = 4;
    for (size_t m = hi - lo + 1; m > 1; m >>= 1)
        budget += 2;
    while (hi > lo) {
        if (hi - lo < 16) {
            s_insertion(a, lo, hi);
            return;
        }
        if (budget-- == 0) {
            s_heapsort(a, lo, hi);
            return;
        }
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < a[lo])
            s_swap(&a[mid], &a[lo]);
        if (a[hi] < a[lo])
            s_swap(&a[hi], &a[lo]);
        if (a[hi] < a[mid])
            s_swap(&a[hi], &a[mid]);
        float pivot = a[mid];
        /* Hoare partition: afterwards a[lo..j] <= pivot <= a[j+1..hi]. */
        size_t i = lo, j = hi;
        for (;;) {
            while (a[i] < pivot)
                i++;
            while (pivot < a[j])
                j--;
            if (i >= j)
                break;
            s_swap(&a[i], &a[j]);
            i++;
            j--;
        }
        if (k <= j)
            hi = j;
        else
            lo = j + 1;
    }
}

/* Median (or trimmed mean with `trim` dropped at each end) of the n values
 * of one column, which is reordered. */
static double
s_column_reduce(float *a, size_t n, fl_robust_rule_t rule, size_t trim)
{
    if (rule == FL_ROBUST_MEDIAN) {
        size_t k = n / 2;
        s_select(a, 0, n - 1, k);
        if (n % 2 == 1)
            return a[k];
        float lo = a[0];
        for (size_t i = 1; i < k; i++)
            lo = a[i] > lo ? a[i] : lo;
        return 0.5 * ((double)lo + (double)a[k]);
    }
    size_t top = n - trim - 1;
    if (trim > 0) {
        s_select(a, 0, n - 1, trim);
        s_select(a, trim, n - 1, top);
    }
    double s = 0;
    for (size_t i = trim; i <= top; i++)
        s += a[i];
    return s / (double)(n - 2 * trim);
}

static float
s_to_float(double v)
{
    if (v > FLT_MAX)
        return FLT_MAX;
    if (v < -FLT_MAX)
        return -FLT_MAX;
    return (float)v;
}

static void
s_coordinatewise(const fl_robust_t *self, float *out)
{
    size_t n = self->count, d = self->d;
    size_t trim = 0;
    if (self->cfg.rule == FL_ROBUST_TRIMMED_MEAN)
        trim = (size_t)floor(self->cfg.beta * (double)n);
    assert(2 * trim < n);
    float *col = fl_xmalloc(S_COL_BLOCK * n * sizeof *col); /* n <= FL_ROBUST_MAX_N */
    for (size_t c0 = 0; c0 < d; c0 += S_COL_BLOCK) {
        size_t b = d - c0 < S_COL_BLOCK ? d - c0 : S_COL_BLOCK;
        for (size_t k = 0; k < n; k++) {
            const float *u = self->slot[k] + c0;
            for (size_t j = 0; j < b; j++)
                col[j * n + k] = u[j];
        }
        for (size_t j = 0; j < b; j++)
            out[c0 + j] = s_to_float(s_column_reduce(col + j * n, n, self->cfg.rule, trim));
    }
    free(col);
}

/* ------------------------------------------------------------------------ */
/* Krum                                                                      */
/* ------------------------------------------------------------------------ */

static int
s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double score;
    size_t idx;
} s_scored_t;

static int
s_cmp_scored(const void *a, const void *b)
{
    const s_scored_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx); /* ties: first added wins */
}

/* Squared distances of all pairs into dist (n x n, row-major, double). */
static void
s_pairwise(const fl_robust_t *self, double *dist)
{
    size_t n = self->count, d = self->d;
    size_t B = d < S_GRAM_BLOCK ? d : S_GRAM_BLOCK;
    float *x = fl_xmalloc(n * B * sizeof *x);
    float *g = fl_xmalloc(n * n * sizeof *g);
    double *mean = fl_xmalloc(B * sizeof *mean);
    memset(dist, 0, n * n * sizeof *dist); /* the Gram, upper triangle, first */
    for (size_t c0 = 0; c0 < d; c0 += B) {
        size_t b = d - c0 < B ? d - c0 : B;
        for (size_t j = 0; j < b; j++)
            mean[j] = 0;
        for (size_t k = 0; k < n; k++) {
            const float *u = self->slot[k] + c0;
            for (size_t j = 0; j < b; j++)
                mean[j] += u[j];
        }
        for (size_t j = 0; j < b; j++)
            mean[j] /= (double)n;
        for (size_t k = 0; k < n; k++) {
            const float *u = self->slot[k] + c0;
            for (size_t j = 0; j < b; j++)
                x[k * b + j] = (float)((double)u[j] - mean[j]);
        }
        /* g = x x^T (upper triangle), x is n x b row-major. */
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)b, 1.0f, x, (int)b,
                    0.0f, g, (int)n);
        for (size_t i = 0; i < n; i++)
            for (size_t j = i; j < n; j++)
                dist[i * n + j] += g[i * n + j];
    }
    /* d_ij = G_ii + G_jj - 2 G_ij, mirrored; clamp rounding below 0. */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            double v = dist[i * n + i] + dist[j * n + j] - 2.0 * dist[i * n + j];
            v = v > 0.0 ? v : 0.0;
            dist[i * n + j] = v;
            dist[j * n + i] = v;
        }
    }
    for (size_t i = 0; i < n; i++)
        dist[i * n + i] = 0;
    free(x);
    free(g);
    free(mean);
}

static int
s_krum(const fl_robust_t *self, float *out, size_t *selected, size_t *nselected)
{
    size_t n = self->count, f = self->cfg.f, d = self->d;
    if (n < 2 * f + 3)
        return fl_fail(FL_EINVAL, "%s with f=%zu needs n >= 2f+3 = %zu updates, got %zu",
                       fl_robust_rule_name(self->cfg.rule), f, 2 * f + 3, n);
    size_t m = 1;
    if (self->cfg.rule == FL_ROBUST_MULTIKRUM) {
        m = self->cfg.m > 0 ? self->cfg.m : n - f;
        if (m > n)
            return fl_fail(FL_EINVAL, "multikrum: m=%zu exceeds the %zu updates received", m, n);
    }
    size_t nn = n - f - 2; /* neighbours scored: >= f + 1 >= 1 */
    double *dist = fl_xmalloc(n * n * sizeof *dist);
    double *row = fl_xmalloc(n * sizeof *row);
    s_scored_t *sc = fl_xmalloc(n * sizeof *sc);
    s_pairwise(self, dist);
    for (size_t i = 0; i < n; i++) {
        size_t r = 0;
        for (size_t j = 0; j < n; j++)
            if (j != i)
                row[r++] = dist[i * n + j];
        qsort(row, r, sizeof *row, s_cmp_double);
        double s = 0;
        for (size_t j = 0; j < nn; j++)
            s += row[j];
        sc[i].score = s;
        sc[i].idx = i;
    }
    qsort(sc, n, sizeof *sc, s_cmp_scored);
    if (m == 1) {
        memcpy(out, self->slot[sc[0].idx], d * sizeof *out);
    } else {
        double wsum = 0;
        for (size_t k = 0; k < m; k++)
            wsum += self->weight[sc[k].idx];
        /* Weighted mean of the chosen, element by element in double. */
        for (size_t i = 0; i < d; i++) {
            double s = 0;
            for (size_t k = 0; k < m; k++)
                s += self->weight[sc[k].idx] * (double)self->slot[sc[k].idx][i];
            out[i] = s_to_float(s / wsum);
        }
    }
    if (selected != NULL)
        for (size_t k = 0; k < m; k++)
            selected[k] = sc[k].idx;
    if (nselected != NULL)
        *nselected = m;
    free(dist);
    free(row);
    free(sc);
    return 0;
}

int
fl_robust_result(fl_robust_t *self, float *out, size_t *selected, size_t *nselected)
{
    if (self->open)
        return fl_fail(FL_ESTATE, "robust aggregation: result while an add is open");
    if (self->count == 0)
        return fl_fail(FL_ESTATE, "robust aggregation: no update received");
    if (nselected != NULL && !s_is_krum(self->cfg.rule))
        *nselected = 0;
    switch (self->cfg.rule) {
    case FL_ROBUST_MEDIAN:
    case FL_ROBUST_TRIMMED_MEAN:
        s_coordinatewise(self, out);
        return 0;
    case FL_ROBUST_KRUM:
    case FL_ROBUST_MULTIKRUM:
        return s_krum(self, out, selected, nselected);
    case FL_ROBUST_NORM_BOUND:
        for (size_t i = 0; i < self->d; i++)
            out[i] = s_to_float(self->acc[i] / self->wsum);
        return 0;
    case FL_ROBUST_NONE:
        break;
    }
    assert(!"unreachable: rule checked by fl_robust_new");
    return FL_ESTATE;
}
