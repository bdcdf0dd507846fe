/*
 * fl_aggr.c — streaming weighted FedAvg. See fl_aggr.h for the design: two
 * accumulator buffers, one fused add-and-check pass into the spare one, swap
 * on success.
 */
#include "fl_aggr.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fl_params.h"

/* Bits of a float with the sign cleared; for finite values their order as
 * unsigned integers is the order of |x|, and NaN/Inf are >= this value. */
#define S_EXP_ALL_ONES 0x7f800000u
#define S_ABS_MASK 0x7fffffffu

struct fl_aggr {
    size_t numel;
    float *sum;    /* the current sum; valid when count > 0 */
    float *spare;  /* where the next add writes; becomes sum on success */
    size_t count;  /* updates added since reset */
    double weight; /* sum of the (float-rounded) weights */
    double bound;  /* sum_k w_k max|u_k|: an upper bound on every |sum[i]| */
    /* the open streaming add */
    bool open;
    float w;          /* its weight, as float */
    size_t done;      /* elements written into spare so far */
    uint32_t maxbits; /* max bits(|u|) so far */
};

/* A 64-byte aligned buffer of n floats and FL_AGGR_SCRATCH_SLACK bytes more,
 * zeroed so that its pages are touched now rather than in the first round;
 * NULL when the allocation fails. */
static float *
s_alloc_touched(size_t n)
{
    void *p = NULL;
    /* n <= FL_PARAMS_MAX_ELEMS: no overflow */
    size_t bytes = n * sizeof(float) + FL_AGGR_SCRATCH_SLACK;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

fl_aggr_t *
fl_aggr_new(size_t numel)
{
    if (numel == 0 || numel > FL_PARAMS_MAX_ELEMS) {
        fl_fail(FL_EINVAL, "aggregator size %zu outside 1..%zu elements", numel,
                FL_PARAMS_MAX_ELEMS);
        return NULL;
    }
    fl_aggr_t *self = fl_xcalloc(1, sizeof *self);
    self->numel = numel;
    self->sum = s_alloc_touched(numel);
    self->spare = s_alloc_touched(numel);
    if (!self->sum || !self->spare) {
        fl_fail(FL_ENOMEM, "aggregator: cannot allocate 2 x %zu bytes", numel * sizeof(float));
        fl_aggr_destroy(&self);
        return NULL;
    }
    return self;
}

void
fl_aggr_destroy(fl_aggr_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_aggr_t *self = *self_p;
    free(self->sum);
    free(self->spare);
    free(self);
    *self_p = NULL;
}

void
fl_aggr_reset(fl_aggr_t *self)
{
    fl_aggr_abort(self);
    /* The buffers keep stale values; count == 0 tells the next add to
     * overwrite the sum rather than read it. */
    self->count = 0;
    self->weight = 0.0;
    self->bound = 0.0;
}

/*
 * The hot loops. One pass: dst = src + w * u (or dst = w * u for the first
 * update of a round), while folding max(bits(|u[i]|)) into a register. The
 * bit maximum says both whether every element is finite (< 0x7f800000) and
 * the largest magnitude, with integer operations that vectorise (pmaxud)
 * without -ffast-math. memcpy is the strict-aliasing-safe way to read the
 * bits; the compiler turns it into a plain load. dst never aliases src or u.
 */
static uint32_t
s_axpy_checked(float *restrict dst, const float *restrict src, const float *restrict u, size_t n,
               float w)
{
    uint32_t maxbits = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &u[i], sizeof b);
        b &= S_ABS_MASK;
        maxbits = b > maxbits ? b : maxbits;
        dst[i] = src[i] + w * u[i];
    }
    return maxbits;
}

static uint32_t
s_scale_checked(float *restrict dst, const float *restrict u, size_t n, float w)
{
    uint32_t maxbits = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &u[i], sizeof b);
        b &= S_ABS_MASK;
        maxbits = b > maxbits ? b : maxbits;
        dst[i] = w * u[i];
    }
    return maxbits;
}

/* Only on the failure path: the first index that is not finite. */
static size_t
s_first_nonfinite(const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(u[i]))
            return i;
    return n;
}

/* Do [a, a+na) and [b, b+nb) overlap? (addresses compared as integers) */
static bool
s_overlap(const float *a, size_t na, const float *b, size_t nb)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + nb * sizeof(float) && y < x + na * sizeof(float);
}

int
fl_aggr_begin(fl_aggr_t *self, double weight)
{
    if (self->open) {
        fl_aggr_abort(self);
        return fl_fail(FL_ESTATE, "an update is already being added");
    }
    if (!isfinite(weight) || !(weight >= FL_AGGR_WEIGHT_MIN && weight <= FL_AGGR_WEIGHT_MAX))
        return fl_fail(FL_EINVAL, "update weight %g is not a finite number in [%g, %g]", weight,
                       FL_AGGR_WEIGHT_MIN, FL_AGGR_WEIGHT_MAX);
    self->open = true;
    self->w = (float)weight;
    self->done = 0;
    self->maxbits = 0;
    return 0;
}

int
fl_aggr_chunk(fl_aggr_t *self, size_t offset, const float *data, size_t n)
{
    if (!self->open)
        return fl_fail(FL_ESTATE, "no update is being added");
    if (!data || offset != self->done || n > self->numel - self->done) {
        size_t done = self->done;
        fl_aggr_abort(self);
        return fl_fail(FL_EINVAL,
                       "update piece [%zu, +%zu) does not continue at element %zu of %zu", offset,
                       n, done, self->numel);
    }
    /* The kernels take restrict pointers; passing the aggregator's own
     * buffers back in is a programming error. */
    assert(!s_overlap(data, n, self->sum, self->numel) &&
           !s_overlap(data, n, self->spare, self->numel));
    uint32_t maxbits = self->count ? s_axpy_checked(self->spare + offset, self->sum + offset, data,
                                                    n, self->w)
                                   : s_scale_checked(self->spare + offset, data, n, self->w);
    /* Only self->spare has been written: failing leaves the sum as it was. */
    if (maxbits >= S_EXP_ALL_ONES) {
        size_t i = s_first_nonfinite(data, n);
        assert(i < n);
        fl_aggr_abort(self);
        return fl_fail(FL_ENONFINITE, "update element %zu of %zu is %s", offset + i,
                       self->numel, isnan(data[i]) ? "NaN" : "Inf");
    }
    self->maxbits = maxbits > self->maxbits ? maxbits : self->maxbits;
    self->done += n;
    return 0;
}

int
fl_aggr_commit(fl_aggr_t *self)
{
    if (!self->open)
        return fl_fail(FL_ESTATE, "no update is being added");
    if (self->done != self->numel) {
        size_t done = self->done;
        fl_aggr_abort(self);
        return fl_fail(FL_ESTATE, "update incomplete: %zu of %zu elements", done, self->numel);
    }
    float maxabs;
    memcpy(&maxabs, &self->maxbits, sizeof maxabs);
    double bound = self->bound + (double)self->w * (double)maxabs;
    if (bound > FL_AGGR_SUM_MAX) {
        float w = self->w;
        fl_aggr_abort(self);
        return fl_fail(FL_ERANGE,
                       "update too large to aggregate: max |x| = %g at weight %g would let the "
                       "float sum overflow (bound %g > %g)",
                       (double)maxabs, (double)w, bound, FL_AGGR_SUM_MAX);
    }
    float *t = self->sum;
    self->sum = self->spare;
    self->spare = t;
    self->count++;
    self->weight += (double)self->w;
    self->bound = bound;
    self->open = false;
    return 0;
}

void
fl_aggr_abort(fl_aggr_t *self)
{
    self->open = false;
    self->done = 0;
}

bool
fl_aggr_open(const fl_aggr_t *self)
{
    return self->open;
}

float *
fl_aggr_scratch(fl_aggr_t *self)
{
    return self->open ? NULL : self->spare;
}

size_t
fl_aggr_scratch_bytes(const fl_aggr_t *self)
{
    return self->numel * sizeof(float) + FL_AGGR_SCRATCH_SLACK;
}

int
fl_aggr_add(fl_aggr_t *self, const float *update, size_t numel, double weight)
{
    int rc;
    if (!update)
        return fl_fail(FL_EINVAL, "update is NULL");
    if (numel != self->numel)
        return fl_fail(FL_EINVAL, "update has %zu elements, the model has %zu", numel,
                       self->numel);
    if ((rc = fl_aggr_begin(self, weight)) != 0 ||
        (rc = fl_aggr_chunk(self, 0, update, numel)) != 0)
        return rc;
    return fl_aggr_commit(self);
}

size_t
fl_aggr_count(const fl_aggr_t *self)
{
    return self->count;
}

double
fl_aggr_weight(const fl_aggr_t *self)
{
    return self->weight;
}

size_t
fl_aggr_numel(const fl_aggr_t *self)
{
    return self->numel;
}

const float *
fl_aggr_sum(const fl_aggr_t *self)
{
    return self->count ? self->sum : NULL;
}

/* out = sum * inv, computed in double and rounded once; vectorises. */
static void
s_scale_out(float *restrict out, const float *restrict sum, size_t n, double inv)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (float)((double)sum[i] * inv);
}

/* The same, clamped to the float range (scalar; see fl_aggr_mean). */
static void
s_scale_out_clamped(float *restrict out, const float *restrict sum, size_t n, double inv)
{
    const double hi = (double)FLT_MAX;
    for (size_t i = 0; i < n; i++) {
        double m = (double)sum[i] * inv;
        m = m > hi ? hi : m;
        m = m < -hi ? -hi : m;
        out[i] = (float)m;
    }
}

int
fl_aggr_mean(const fl_aggr_t *self, float *out)
{
    if (self->count == 0)
        return fl_fail(FL_ESTATE, "no update has been aggregated since the last reset");
    assert(self->weight > 0.0);
    double inv = 1.0 / self->weight;
    /* Mathematically |mean| <= max |u| <= FLT_MAX, but the float rounding of
     * the sum can push a mean of near-FLT_MAX values past it. bound * inv
     * bounds every |sum[i] * inv| up to that rounding (a relative
     * count * 2^-24), so below FLT_MAX / 2 the plain loop cannot overflow;
     * only absurd updates take the clamped one. */
    if (self->bound * inv <= (double)FLT_MAX / 2)
        s_scale_out(out, self->sum, self->numel, inv);
    else
        s_scale_out_clamped(out, self->sum, self->numel, inv);
    return 0;
}
