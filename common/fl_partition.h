/*
 * fl_partition.h — deterministic partitions of a labelled data set into
 * `parts` disjoint parts for federated experiments: IID, label-skewed by
 * Dirichlet(alpha) draws, or label shards (McMahan et al.).
 *
 * Part `index` of `parts` is a pure function of (labels, spec, parts, seed):
 * every agent can compute its own part alone and the parts are disjoint and
 * together cover every sample. All randomness comes from fl_rng, so the
 * result is identical on every machine.
 */
#ifndef FL_PARTITION_H
#define FL_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "fl_data.h"
#include "fl_util.h"

typedef enum { FL_PART_IID = 0, FL_PART_DIRICHLET = 1, FL_PART_SHARDS = 2 } fl_part_scheme_t;

typedef struct fl_part_spec {
    fl_part_scheme_t scheme;
    double alpha;           /* FL_PART_DIRICHLET: concentration, > 0 */
    size_t shards_per_part; /* FL_PART_SHARDS: >= 1 */
} fl_part_spec_t;

/* Largest shards_per_part accepted by fl_part_parse. */
#define FL_PART_MAX_SHARDS 1000000

/* Tries of the Dirichlet draw before giving up on the minimum part size. */
#define FL_PART_DIRICHLET_TRIES 100

/*
 * Parse "iid", "dirichlet:ALPHA" (ALPHA a finite number > 0) or "shards:K"
 * (an integer 1 <= K <= 1000000) into *out. Returns 0, or FL_EINVAL with a
 * detail naming the bad text; *out is untouched on failure.
 */
int fl_part_parse(const char *s, fl_part_spec_t *out) FL_MUST_CHECK;

/* Write the spec in the form fl_part_parse reads ("iid", "dirichlet:0.5",
 * "shards:2") into buf (truncated to size) and return buf. */
const char *fl_part_describe(const fl_part_spec_t *spec, char *buf, size_t size);

/*
 * Compute part `index` of `parts` of the n samples whose labels (each in
 * [0, num_classes)) are given, with the scheme in spec and the given seed.
 * On success *idx_p is a new array (caller frees; sorted ascending, possibly
 * empty for a Dirichlet part when n < 2*parts) of *count_p sample indices.
 *
 *   iid        shuffle 0..n-1, cut into `parts` contiguous slices whose sizes
 *              differ by at most one.
 *   dirichlet  per class, proportions over the parts from Dirichlet(alpha)
 *              (normalised Gamma draws); that class's shuffled samples are
 *              cut at the cumulative proportions. The whole draw is repeated
 *              (at most FL_PART_DIRICHLET_TRIES times, deterministically)
 *              until every part holds at least min(10, n/parts/2) samples.
 *   shards     sort by label (stable), cut into parts*shards_per_part
 *              near-equal shards, shuffle the shard ids, give each part
 *              shards_per_part of them.
 *
 * Errors (nothing allocated): FL_EINVAL for a NULL argument, parts == 0,
 * index >= parts, parts > n, an unknown scheme or bad alpha, a label outside
 * [0, num_classes); FL_ERANGE for n >= 2^32, shards that cannot be made
 * (parts*shards_per_part > n) or a Dirichlet minimum that no try met.
 */
int fl_partition(const int32_t *labels, size_t n, size_t num_classes, const fl_part_spec_t *spec,
                 size_t parts, size_t index, uint64_t seed, uint32_t **idx_p,
                 size_t *count_p) FL_MUST_CHECK;

/*
 * Replace *ds_p by its part `index` of `parts` (a new dataset holding those
 * rows; the old one is destroyed). On failure *ds_p is unchanged.
 */
int fl_partition_dataset(fl_dataset_t **ds_p, const fl_part_spec_t *spec, size_t parts,
                         size_t index, uint64_t seed) FL_MUST_CHECK;

#endif
