/*
 * fl_partition.c — IID, Dirichlet and shard partitions. See fl_partition.h.
 *
 * Each call recomputes the whole assignment of every sample to a part from
 * (labels, spec, parts, seed) and then keeps the requested part: O(n) work
 * per call, which is what lets each agent derive its own part independently
 * and still agree with everyone else on who holds what.
 */
#include "fl_partition.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_rng.h"

/* fl_rng streams, one per scheme, so that schemes never share a sequence. */
#define S_STREAM_BASE 0x70617274ULL /* "part" */
/* Cap on num_classes: the per-class offsets array is allocated from it. */
#define S_MAX_CLASSES ((size_t)1 << 24)

int
fl_part_parse(const char *s, fl_part_spec_t *out)
{
    fl_part_spec_t spec = {FL_PART_IID, 0.0, 0};

    if (!s || !out)
        return fl_fail(FL_EINVAL, "fl_part_parse: NULL argument");
    if (strcmp(s, "iid") == 0) {
        /* nothing more */
    } else if (strcmp(s, "dirichlet") == 0) {
        return fl_fail(FL_EINVAL, "partition 'dirichlet' needs an alpha, e.g. dirichlet:0.5");
    } else if (strncmp(s, "dirichlet:", 10) == 0) {
        double a = 0.0;
        if (fl_parse_double(s + 10, "alpha", &a) < 0 || !(a > 0.0))
            return fl_fail(FL_EINVAL,
                           "partition '%s': alpha must be a finite number greater than 0", s);
        spec.scheme = FL_PART_DIRICHLET;
        spec.alpha = a;
    } else if (strcmp(s, "shards") == 0) {
        return fl_fail(FL_EINVAL, "partition 'shards' needs a shard count, e.g. shards:2");
    } else if (strncmp(s, "shards:", 7) == 0) {
        uint64_t k = 0;
        if (fl_parse_u64(s + 7, "shards", &k) < 0 || k < 1 || k > FL_PART_MAX_SHARDS)
            return fl_fail(FL_EINVAL,
                           "partition '%s': shards per part must be an integer from 1 to %d", s,
                           FL_PART_MAX_SHARDS);
        spec.scheme = FL_PART_SHARDS;
        spec.shards_per_part = (size_t)k;
    } else {
        return fl_fail(FL_EINVAL,
                       "unknown partition '%s' (expected iid, dirichlet:ALPHA or shards:K)", s);
    }
    *out = spec;
    return 0;
}

const char *
fl_part_describe(const fl_part_spec_t *spec, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    switch (spec->scheme) {
    case FL_PART_IID:
        snprintf(buf, size, "iid");
        break;
    case FL_PART_DIRICHLET: {
        /* Shortest form that reads back as the same alpha. */
        char num[32];
        snprintf(num, sizeof num, "%.15g", spec->alpha);
        if (strtod(num, NULL) != spec->alpha)
            snprintf(num, sizeof num, "%.17g", spec->alpha);
        snprintf(buf, size, "dirichlet:%s", num);
        break;
    }
    case FL_PART_SHARDS:
        snprintf(buf, size, "shards:%zu", spec->shards_per_part);
        break;
    default:
        snprintf(buf, size, "unknown(%d)", (int)spec->scheme);
        break;
    }
    return buf;
}

static int
s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Start of slice k when n items are cut into `parts` near-equal contiguous
 * slices (the first n % parts slices get one more). No overflow for n < 2^32. */
static size_t
s_slice_start(size_t n, size_t parts, size_t k)
{
    assert(parts > 0);
    size_t base = n / parts, rem = n % parts;
    return k * base + (k < rem ? k : rem);
}

/* Sample indices grouped by label, ascending within each class (a stable
 * counting sort). order has n entries; off has num_classes + 1. */
static void
s_group_by_label(const int32_t *labels, size_t n, size_t num_classes, uint32_t *order,
                 size_t *off)
{
    memset(off, 0, (num_classes + 1) * sizeof *off);
    for (size_t i = 0; i < n; i++)
        off[(size_t)labels[i] + 1]++;
    for (size_t c = 0; c < num_classes; c++)
        off[c + 1] += off[c];
    size_t *pos = fl_xmalloc((num_classes ? num_classes : 1) * sizeof *pos);
    memcpy(pos, off, num_classes * sizeof *pos);
    for (size_t i = 0; i < n; i++)
        order[pos[labels[i]]++] = (uint32_t)i;
    free(pos);
}

static int
s_iid(size_t n, size_t parts, size_t index, uint64_t seed, uint32_t **idx_p, size_t *count_p)
{
    fl_rng_t rng;
    uint32_t *perm = fl_xmalloc(n * sizeof *perm);
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    fl_rng_seed(&rng, seed, S_STREAM_BASE + FL_PART_IID);
    fl_rng_shuffle(&rng, perm, n);
    size_t lo = s_slice_start(n, parts, index), hi = s_slice_start(n, parts, index + 1);
    uint32_t *idx = fl_xmalloc((hi - lo ? hi - lo : 1) * sizeof *idx);
    memcpy(idx, perm + lo, (hi - lo) * sizeof *idx);
    qsort(idx, hi - lo, sizeof *idx, s_cmp_u32);
    free(perm);
    *idx_p = idx;
    *count_p = hi - lo;
    return 0;
}

static int
s_dirichlet(const int32_t *labels, size_t n, size_t num_classes, double alpha, size_t parts,
            size_t index, uint64_t seed, uint32_t **idx_p, size_t *count_p)
{
    fl_rng_t rng;
    uint32_t *order = fl_xmalloc(n * sizeof *order);
    uint32_t *assign = fl_xmalloc(n * sizeof *assign);
    size_t *off = fl_xmalloc((num_classes + 1) * sizeof *off);
    size_t *sizes = fl_xmalloc(parts * sizeof *sizes);
    double *prop = fl_xmalloc(parts * sizeof *prop);
    size_t min_size = n / parts / 2 < 10 ? n / parts / 2 : 10, smallest = 0;
    bool ok = false;
    int rc;

    s_group_by_label(labels, n, num_classes, order, off);
    fl_rng_seed(&rng, seed, S_STREAM_BASE + FL_PART_DIRICHLET);
    for (int attempt = 0; attempt < FL_PART_DIRICHLET_TRIES && !ok; attempt++) {
        memset(sizes, 0, parts * sizeof *sizes);
        for (size_t c = 0; c < num_classes; c++) {
            size_t m = off[c + 1] - off[c];
            uint32_t *seg = order + off[c];
            double sum = 0.0, cum = 0.0;
            if (m == 0)
                continue;
            /* Each attempt reshuffles the previous attempt's order: still a
             * pure function of the seed. */
            fl_rng_shuffle(&rng, seg, m);
            for (size_t j = 0; j < parts; j++) {
                prop[j] = fl_rng_gamma(&rng, alpha);
                sum += prop[j];
            }
            if (!(sum > 0.0)) {
                /* Every Gamma draw underflowed (tiny alpha): the limit of
                 * Dirichlet(alpha -> 0) puts all the mass on one part. */
                memset(prop, 0, parts * sizeof *prop);
                prop[fl_rng_below(&rng, parts)] = 1.0;
                sum = 1.0;
            }
            size_t lo = 0;
            for (size_t j = 0; j < parts; j++) {
                size_t hi;
                cum += prop[j];
                if (j + 1 == parts) {
                    hi = m;
                } else {
                    double b = floor(cum / sum * (double)m);
                    hi = b >= (double)m ? m : (size_t)b;
                    if (hi < lo)
                        hi = lo;
                }
                for (size_t k = lo; k < hi; k++)
                    assign[seg[k]] = (uint32_t)j;
                sizes[j] += hi - lo;
                lo = hi;
            }
        }
        smallest = sizes[0];
        for (size_t j = 1; j < parts; j++)
            if (sizes[j] < smallest)
                smallest = sizes[j];
        ok = smallest >= min_size;
    }
    if (!ok) {
        rc = fl_fail(FL_ERANGE,
                     "dirichlet:%g over %zu parts: no draw in %d tries gave every part at least "
                     "%zu samples (smallest %zu); use a larger alpha or fewer parts",
                     alpha, parts, FL_PART_DIRICHLET_TRIES, min_size, smallest);
        goto out;
    }
    size_t count = sizes[index], k = 0;
    uint32_t *idx = fl_xmalloc((count ? count : 1) * sizeof *idx);
    for (size_t i = 0; i < n; i++)
        if (assign[i] == index)
            idx[k++] = (uint32_t)i;
    assert(k == count);
    *idx_p = idx;
    *count_p = count;
    rc = 0;
out:
    free(order);
    free(assign);
    free(off);
    free(sizes);
    free(prop);
    return rc;
}

static int
s_shards(const int32_t *labels, size_t n, size_t num_classes, size_t per_part, size_t parts,
         size_t index, uint64_t seed, uint32_t **idx_p, size_t *count_p)
{
    size_t nshards;
    fl_rng_t rng;

    if (!fl_mul_ok(parts, per_part, &nshards) || nshards > n)
        return fl_fail(FL_ERANGE,
                       "shards:%zu over %zu parts needs at least %zu x %zu samples, have %zu",
                       per_part, parts, parts, per_part, n);
    uint32_t *order = fl_xmalloc(n * sizeof *order);
    size_t *off = fl_xmalloc((num_classes + 1) * sizeof *off);
    uint32_t *shard_ids = fl_xmalloc(nshards * sizeof *shard_ids);
    s_group_by_label(labels, n, num_classes, order, off);
    for (size_t s = 0; s < nshards; s++)
        shard_ids[s] = (uint32_t)s;
    fl_rng_seed(&rng, seed, S_STREAM_BASE + FL_PART_SHARDS);
    fl_rng_shuffle(&rng, shard_ids, nshards);

    const uint32_t *mine = shard_ids + index * per_part;
    size_t count = 0, k = 0;
    for (size_t j = 0; j < per_part; j++)
        count += s_slice_start(n, nshards, mine[j] + (size_t)1) -
                 s_slice_start(n, nshards, mine[j]);
    uint32_t *idx = fl_xmalloc((count ? count : 1) * sizeof *idx);
    for (size_t j = 0; j < per_part; j++) {
        size_t lo = s_slice_start(n, nshards, mine[j]);
        size_t hi = s_slice_start(n, nshards, mine[j] + (size_t)1);
        memcpy(idx + k, order + lo, (hi - lo) * sizeof *idx);
        k += hi - lo;
    }
    assert(k == count);
    qsort(idx, count, sizeof *idx, s_cmp_u32);
    free(order);
    free(off);
    free(shard_ids);
    *idx_p = idx;
    *count_p = count;
    return 0;
}

int
fl_partition(const int32_t *labels, size_t n, size_t num_classes, const fl_part_spec_t *spec,
             size_t parts, size_t index, uint64_t seed, uint32_t **idx_p, size_t *count_p)
{
    if (!spec || !idx_p || !count_p || (n > 0 && !labels))
        return fl_fail(FL_EINVAL, "fl_partition: NULL argument");
    if (parts == 0)
        return fl_fail(FL_EINVAL, "partition: the number of parts must be at least 1");
    if (index >= parts)
        return fl_fail(FL_EINVAL, "partition: part index %zu out of range (%zu parts)", index,
                       parts);
    if (n > UINT32_MAX)
        return fl_fail(FL_ERANGE, "partition: %zu samples, more than the limit of %u", n,
                       UINT32_MAX);
    if (parts > n)
        return fl_fail(FL_EINVAL, "partition: cannot split %zu samples into %zu parts", n, parts);
    if (spec->scheme != FL_PART_IID) {
        if (num_classes == 0 || num_classes > S_MAX_CLASSES)
            return fl_fail(FL_ERANGE, "partition: %zu classes (expected 1 to %zu)", num_classes,
                           S_MAX_CLASSES);
        for (size_t i = 0; i < n; i++)
            if (labels[i] < 0 || (size_t)labels[i] >= num_classes)
                return fl_fail(FL_EINVAL, "partition: label %d of sample %zu outside [0, %zu)",
                               (int)labels[i], i, num_classes);
    }
    switch (spec->scheme) {
    case FL_PART_IID:
        return s_iid(n, parts, index, seed, idx_p, count_p);
    case FL_PART_DIRICHLET:
        if (!(spec->alpha > 0.0) || !isfinite(spec->alpha))
            return fl_fail(FL_EINVAL, "partition: dirichlet alpha %g must be finite and > 0",
                           spec->alpha);
        return s_dirichlet(labels, n, num_classes, spec->alpha, parts, index, seed, idx_p,
                           count_p);
    case FL_PART_SHARDS:
        if (spec->shards_per_part < 1)
            return fl_fail(FL_EINVAL, "partition: shards per part must be at least 1");
        return s_shards(labels, n, num_classes, spec->shards_per_part, parts, index, seed, idx_p,
                        count_p);
    default:
        return fl_fail(FL_EINVAL, "partition: unknown scheme %d", (int)spec->scheme);
    }
}

int
fl_partition_dataset(fl_dataset_t **ds_p, const fl_part_spec_t *spec, size_t parts, size_t index,
                     uint64_t seed)
{
    uint32_t *idx = NULL;
    size_t count = 0;
    fl_dataset_t *ds = *ds_p;
    int rc = fl_partition(ds->y, ds->n, ds->num_classes, spec, parts, index, seed, &idx, &count);
    if (rc != 0)
        return rc;
    fl_dataset_t *sub = fl_dataset_subset(ds, idx, count);
    free(idx);
    fl_dataset_destroy(ds_p);
    *ds_p = sub;
    return 0;
}
