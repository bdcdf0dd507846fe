/*
 * test_partition.c — unit tests of fl_partition: spec parsing, determinism,
 * disjoint and covering parts for every scheme, the label skew that each
 * scheme is meant to produce, and the refused arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fl_partition.h"
#include "fl_rng.h"
#include "fl_util.h"

#define N 10000
#define C 10

static int32_t s_balanced[N]; /* exactly N/C of each class, shuffled */
static int32_t s_random[N];   /* uniform random classes */

static int
s_setup(void **state)
{
    (void)state;
    fl_rng_t rng;
    uint32_t perm[N];
    fl_rng_seed(&rng, 42, 0);
    for (uint32_t i = 0; i < N; i++)
        perm[i] = i;
    fl_rng_shuffle(&rng, perm, N);
    for (size_t i = 0; i < N; i++) {
        s_balanced[i] = (int32_t)(perm[i] % C);
        s_random[i] = (int32_t)fl_rng_below(&rng, C);
    }
    return 0;
}

/* All parts of one partition. */
typedef struct {
    size_t parts;
    uint32_t *idx[200];
    size_t count[200];
} s_all_t;

static void
s_all_free(s_all_t *a)
{
    for (size_t k = 0; k < a->parts; k++)
        free(a->idx[k]);
}

static void
s_partition_all(const int32_t *labels, const char *spec_s, size_t parts, uint64_t seed,
                s_all_t *a)
{
    fl_part_spec_t spec;
    assert_true(parts <= 200);
    assert_int_equal(fl_part_parse(spec_s, &spec), 0);
    a->parts = parts;
    for (size_t k = 0; k < parts; k++)
        assert_int_equal(fl_partition(labels, N, C, &spec, parts, k, seed, &a->idx[k],
                                      &a->count[k]),
                         0);
}

/* Every part sorted ascending; together disjoint and covering 0..N-1. */
static void
s_check_cover(const s_all_t *a)
{
    static uint8_t seen[N];
    size_t total = 0;
    memset(seen, 0, sizeof seen);
    for (size_t k = 0; k < a->parts; k++) {
        for (size_t i = 0; i < a->count[k]; i++) {
            uint32_t v = a->idx[k][i];
            assert_true(v < N);
            assert_int_equal(seen[v], 0);
            seen[v] = 1;
            if (i > 0)
                assert_true(a->idx[k][i - 1] < v);
        }
        total += a->count[k];
    }
    assert_int_equal(total, N);
}

static bool
s_same(const s_all_t *a, const s_all_t *b)
{
    if (a->parts != b->parts)
        return false;
    for (size_t k = 0; k < a->parts; k++)
        if (a->count[k] != b->count[k] ||
            memcmp(a->idx[k], b->idx[k], a->count[k] * sizeof(uint32_t)) != 0)
            return false;
    return true;
}

/* Mean over parts of the total-variation distance between a part's label
 * distribution and the global one. */
static double
s_mean_tv(const int32_t *labels, const s_all_t *a)
{
    double global[C] = {0}, tv_sum = 0;
    for (size_t i = 0; i < N; i++)
        global[labels[i]] += 1.0 / N;
    for (size_t k = 0; k < a->parts; k++) {
        double local[C] = {0}, tv = 0;
        for (size_t i = 0; i < a->count[k]; i++)
            local[labels[a->idx[k][i]]] += 1.0 / (double)a->count[k];
        for (int c = 0; c < C; c++)
            tv += fabs(local[c] - global[c]);
        tv_sum += tv / 2;
    }
    return tv_sum / (double)a->parts;
}

static size_t
s_distinct_labels(const int32_t *labels, const uint32_t *idx, size_t count)
{
    bool has[C] = {false};
    size_t d = 0;
    for (size_t i = 0; i < count; i++)
        if (!has[labels[idx[i]]]) {
            has[labels[idx[i]]] = true;
            d++;
        }
    return d;
}

/* ---- parsing ------------------------------------------------------------ */

static void
s_expect_parse_error(const char *s, const char *needle)
{
    fl_part_spec_t spec = {FL_PART_SHARDS, 9.0, 9};
    fl_errclear();
    int rc = fl_part_parse(s, &spec);
    if (rc != FL_EINVAL || !strstr(fl_errmsg(), needle))
        print_error("'%s': rc %d, message '%s'; wanted '%s'\n", s, rc, fl_errmsg(), needle);
    assert_int_equal(rc, FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), needle));
    assert_true(spec.scheme == FL_PART_SHARDS && spec.alpha == 9.0 && spec.shards_per_part == 9);
}

static void
test_parse_and_describe(void **state)
{
    (void)state;
    fl_part_spec_t spec;
    char buf[64];

    assert_int_equal(fl_part_parse("iid", &spec), 0);
    assert_int_equal(spec.scheme, FL_PART_IID);
    assert_string_equal(fl_part_describe(&spec, buf, sizeof buf), "iid");
    assert_int_equal(fl_part_parse("dirichlet:0.5", &spec), 0);
    assert_int_equal(spec.scheme, FL_PART_DIRICHLET);
    assert_true(spec.alpha == 0.5);
    assert_string_equal(fl_part_describe(&spec, buf, sizeof buf), "dirichlet:0.5");
    assert_int_equal(fl_part_parse("dirichlet:0.1", &spec), 0);
    assert_string_equal(fl_part_describe(&spec, buf, sizeof buf), "dirichlet:0.1");
    assert_int_equal(fl_part_parse("dirichlet:1e-3", &spec), 0);
    assert_true(spec.alpha == 1e-3);
    assert_string_equal(fl_part_describe(&spec, buf, sizeof buf), "dirichlet:0.001");
    assert_int_equal(fl_part_parse("shards:2", &spec), 0);
    assert_int_equal(spec.scheme, FL_PART_SHARDS);
    assert_int_equal(spec.shards_per_part, 2);
    assert_string_equal(fl_part_describe(&spec, buf, sizeof buf), "shards:2");
    /* truncation is safe */
    assert_string_equal(fl_part_describe(&spec, buf, 4), "sha");

    s_expect_parse_error("", "unknown partition ''");
    s_expect_parse_error("IID", "unknown partition 'IID'");
    s_expect_parse_error("iid:3", "unknown partition 'iid:3'");
    s_expect_parse_error("dirichlet", "needs an alpha");
    s_expect_parse_error("dirichlet:", "alpha must be a finite number greater than 0");
    s_expect_parse_error("dirichlet:0", "'dirichlet:0': alpha must be");
    s_expect_parse_error("dirichlet:-0.5", "'dirichlet:-0.5': alpha must be");
    s_expect_parse_error("dirichlet:abc", "'dirichlet:abc': alpha must be");
    s_expect_parse_error("dirichlet:0.5x", "'dirichlet:0.5x': alpha must be");
    s_expect_parse_error("dirichlet:nan", "'dirichlet:nan': alpha must be");
    s_expect_parse_error("dirichlet:inf", "'dirichlet:inf': alpha must be");
    s_expect_parse_error("shards", "needs a shard count");
    s_expect_parse_error("shards:0", "'shards:0': shards per part must be an integer from 1");
    s_expect_parse_error("shards:1.5", "'shards:1.5': shards per part");
    s_expect_parse_error("shards:-2", "'shards:-2': shards per part");
    s_expect_parse_error("shards:1000001", "'shards:1000001': shards per part");
}

/* ---- properties of each scheme ----------------------------------------- */

static void
test_iid(void **state)
{
    (void)state;
    s_all_t a, b, c;
    s_partition_all(s_random, "iid", 7, 1, &a);
    s_check_cover(&a);
    for (size_t k = 0; k < 7; k++) /* 10000 = 7 * 1428 + 4 */
        assert_int_equal(a.count[k], k < 4 ? 1429 : 1428);
    s_partition_all(s_random, "iid", 7, 1, &b);
    assert_true(s_same(&a, &b));
    s_partition_all(s_random, "iid", 7, 2, &c);
    assert_false(s_same(&a, &c));
    assert_true(s_mean_tv(s_random, &a) < 0.06);
    s_all_free(&a);
    s_all_free(&b);
    s_all_free(&c);

    /* parts == n: one sample each; parts == 1: everything */
    fl_part_spec_t spec = {FL_PART_IID, 0, 0};
    uint32_t *idx = NULL;
    size_t count = 0;
    assert_int_equal(fl_partition(s_random, 5, C, &spec, 5, 4, 3, &idx, &count), 0);
    assert_int_equal(count, 1);
    free(idx);
    assert_int_equal(fl_partition(s_random, N, C, &spec, 1, 0, 3, &idx, &count), 0);
    assert_int_equal(count, N);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(idx[i], i);
    free(idx);
}

/* A regression pin: the partition is part of an experiment's definition, so
 * a change of algorithm or random stream must be deliberate. The values were
 * produced by this implementation and checked for the invariants above. */
static void
test_pinned_outputs(void **state)
{
    (void)state;
    fl_part_spec_t spec = {FL_PART_IID, 0, 0};
    uint32_t *idx = NULL;
    size_t count = 0;
    static const int32_t labels[12] = {0};
    assert_int_equal(fl_partition(labels, 12, 1, &spec, 3, 0, 2024, &idx, &count), 0);
    assert_int_equal(count, 4);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 2);
    assert_int_equal(idx[2], 6);
    assert_int_equal(idx[3], 7);
    free(idx);

    /* part sizes of dirichlet:0.5 and the first index of each shards part */
    static const size_t dir_sizes[10] = {511, 482, 1115, 919, 798, 1805, 1485, 995, 986, 904};
    static const uint32_t shard_first[10] = {20, 4, 4664, 4763, 16, 6, 5, 0, 5119, 15};
    s_all_t a;
    s_partition_all(s_balanced, "dirichlet:0.5", 10, 7, &a);
    for (size_t k = 0; k < 10; k++)
        assert_int_equal(a.count[k], dir_sizes[k]);
    s_all_free(&a);
    s_partition_all(s_balanced, "shards:2", 10, 3, &a);
    for (size_t k = 0; k < 10; k++)
        assert_int_equal(a.idx[k][0], shard_first[k]);
    s_all_free(&a);
}

static void
test_dirichlet(void **state)
{
    (void)state;
    s_all_t a, b, lo, hi;
    const size_t parts = 10;

    s_partition_all(s_balanced, "dirichlet:0.5", parts, 7, &a);
    s_check_cover(&a);
    for (size_t k = 0; k < parts; k++)
        assert_true(a.count[k] >= 10);
    s_partition_all(s_balanced, "dirichlet:0.5", parts, 7, &b);
    assert_true(s_same(&a, &b));
    s_all_free(&b);
    s_partition_all(s_balanced, "dirichlet:0.5", parts, 8, &b);
    assert_false(s_same(&a, &b));
    s_all_free(&b);

    s_partition_all(s_balanced, "dirichlet:0.1", parts, 7, &lo);
    s_check_cover(&lo);
    for (size_t k = 0; k < parts; k++)
        assert_true(lo.count[k] >= 10);
    s_partition_all(s_balanced, "dirichlet:0.1", parts, 7, &b);
    assert_true(s_same(&lo, &b));
    s_all_free(&b);
    s_partition_all(s_balanced, "dirichlet:100", parts, 7, &hi);
    s_check_cover(&hi);
    s_partition_all(s_balanced, "iid", parts, 7, &b);

    double tv_iid = s_mean_tv(s_balanced, &b), tv_100 = s_mean_tv(s_balanced, &hi),
           tv_05 = s_mean_tv(s_balanced, &a), tv_01 = s_mean_tv(s_balanced, &lo);
    print_message("mean TV from global: iid %.3f  dir:100 %.3f  dir:0.5 %.3f  dir:0.1 %.3f\n",
                  tv_iid, tv_100, tv_05, tv_01);
    assert_true(tv_iid < 0.06);
    assert_true(tv_01 > 0.5);
    assert_true(tv_01 > 5 * tv_iid);
    assert_true(tv_01 > tv_100 + 0.3);
    assert_true(tv_05 > tv_100);
    s_all_free(&a);
    s_all_free(&b);
    s_all_free(&lo);
    s_all_free(&hi);

    /* many parts, small alpha, still covering and above the minimum */
    s_partition_all(s_random, "dirichlet:0.3", 100, 5, &a);
    s_check_cover(&a);
    for (size_t k = 0; k < 100; k++)
        assert_true(a.count[k] >= 10);
    s_all_free(&a);
}

static void
test_shards(void **state)
{
    (void)state;
    s_all_t a, b;

    /* balanced classes of 1000, 20 shards of 500: each shard inside one class */
    s_partition_all(s_balanced, "shards:2", 10, 3, &a);
    s_check_cover(&a);
    for (size_t k = 0; k < 10; k++) {
        assert_int_equal(a.count[k], 1000);
        size_t d = s_distinct_labels(s_balanced, a.idx[k], a.count[k]);
        assert_true(d >= 1 && d <= 2);
    }
    s_partition_all(s_balanced, "shards:2", 10, 3, &b);
    assert_true(s_same(&a, &b));
    s_all_free(&b);
    s_partition_all(s_balanced, "shards:2", 10, 4, &b);
    assert_false(s_same(&a, &b));
    s_all_free(&a);
    s_all_free(&b);

    /* uneven classes and 100 parts (200 shards of 50): a shard may straddle
     * two classes, so at most 4 labels per part, typically 2 */
    s_partition_all(s_random, "shards:2", 100, 3, &a);
    s_check_cover(&a);
    size_t dsum = 0;
    for (size_t k = 0; k < 100; k++) {
        assert_int_equal(a.count[k], 100);
        size_t d = s_distinct_labels(s_random, a.idx[k], a.count[k]);
        assert_true(d <= 4);
        dsum += d;
    }
    assert_true(dsum <= 250); /* mean <= 2.5 */
    assert_true(s_mean_tv(s_random, &a) > 0.7);
    s_all_free(&a);

    /* uneven sizes: 10000 into 3 parts x 3 shards (sizes 1112 / 1111) */
    s_partition_all(s_random, "shards:3", 3, 9, &a);
    s_check_cover(&a);
    s_all_free(&a);
}

/* ---- refused arguments -------------------------------------------------- */

static void
s_expect_fail(const int32_t *labels, size_t n, size_t nc, const char *spec_s, size_t parts,
              size_t index, int code, const char *needle)
{
    fl_part_spec_t spec;
    uint32_t *idx = (uint32_t *)0x1;
    size_t count = 77;
    assert_int_equal(fl_part_parse(spec_s, &spec), 0);
    fl_errclear();
    int rc = fl_partition(labels, n, nc, &spec, parts, index, 1, &idx, &count);
    if (rc != code || !strstr(fl_errmsg(), needle))
        print_error("%s parts=%zu index=%zu: rc %d, message '%s'; wanted '%s'\n", spec_s, parts,
                    index, rc, fl_errmsg(), needle);
    assert_int_equal(rc, code);
    assert_non_null(strstr(fl_errmsg(), needle));
    assert_ptr_equal(idx, (uint32_t *)0x1);
    assert_int_equal(count, 77);
}

static void
test_errors(void **state)
{
    (void)state;
    s_expect_fail(s_random, N, C, "iid", 0, 0, FL_EINVAL, "at least 1");
    s_expect_fail(s_random, N, C, "iid", 4, 4, FL_EINVAL, "part index 4 out of range (4 parts)");
    s_expect_fail(s_random, 5, C, "iid", 6, 0, FL_EINVAL, "cannot split 5 samples into 6 parts");
    s_expect_fail(s_random, 0, C, "dirichlet:0.5", 1, 0, FL_EINVAL, "cannot split 0 samples");
    s_expect_fail(s_random, 100, C, "shards:2", 60, 0, FL_ERANGE,
                  "shards:2 over 60 parts needs at least 60 x 2 samples, have 100");
    s_expect_fail(s_random, N, 5, "shards:2", 10, 0, FL_EINVAL, "outside [0, 5)");
    s_expect_fail(s_random, N, 0, "dirichlet:0.5", 10, 0, FL_ERANGE, "0 classes");
    /* alpha so small that each class lands on one part: 10 classes cannot
     * fill 100 parts with 10 samples each */
    s_expect_fail(s_random, N, C, "dirichlet:0.001", 100, 0, FL_ERANGE,
                  "no draw in 100 tries gave every part at least 10 samples");

    fl_part_spec_t bad = {FL_PART_DIRICHLET, -1.0, 0};
    uint32_t *idx = NULL;
    size_t count = 0;
    assert_int_equal(fl_partition(s_random, N, C, &bad, 2, 0, 1, &idx, &count), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "alpha"));
    bad.scheme = (fl_part_scheme_t)9;
    assert_int_equal(fl_partition(s_random, N, C, &bad, 2, 0, 1, &idx, &count), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "unknown scheme 9"));
    assert_null(idx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_describe),
        cmocka_unit_test(test_iid),
        cmocka_unit_test(test_pinned_outputs),
        cmocka_unit_test(test_dirichlet),
        cmocka_unit_test(test_shards),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, s_setup, NULL);
}
