/*
 * test_aggr.c — unit tests of fl_aggr (streaming weighted FedAvg): the
 * weighted mean against hand-computed values and against a naive double
 * computation, and every rejection leaving the aggregate bit-for-bit as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_aggr.h"
#include "fl_seal.h"
#include "fl_rng.h"
#include "fl_util.h"

static void
test_hand_weighted_mean(void **state)
{
    (void)state;
    fl_aggr_t *a = fl_aggr_new(3);
    assert_non_null(a);
    assert_int_equal(fl_aggr_numel(a), 3);
    const float u1[3] = {1, 2, 3}, u2[3] = {4, 5, 6}, u3[3] = {-8, 0.5f, 0};
    float out[3];

    assert_int_equal(fl_aggr_add(a, u1, 3, 1.0), 0);
    assert_int_equal(fl_aggr_add(a, u2, 3, 3.0), 0);
    assert_int_equal(fl_aggr_count(a), 2);
    assert_true(fl_aggr_weight(a) == 4.0);
    /* sum = 1*u1 + 3*u2 = {13, 17, 21}; mean = sum / 4 — all exact in float */
    const float *s = fl_aggr_sum(a);
    assert_non_null(s);
    assert_true(s[0] == 13.0f && s[1] == 17.0f && s[2] == 21.0f);
    assert_int_equal(fl_aggr_mean(a, out), 0);
    assert_true(out[0] == 3.25f && out[1] == 4.25f && out[2] == 5.25f);

    /* + 4*u3: sum = {-19, 19, 21}, weight 8, mean = {-2.375, 2.375, 2.625} */
    assert_int_equal(fl_aggr_add(a, u3, 3, 4.0), 0);
    assert_int_equal(fl_aggr_mean(a, out), 0);
    assert_true(out[0] == -2.375f && out[1] == 2.375f && out[2] == 2.625f);
    assert_int_equal(fl_aggr_count(a), 3);
    assert_true(fl_aggr_weight(a) == 8.0);

    /* fractional weights: 0.25*{1,2,3} + 0.75*{4,5,6} -> {3.25, 4.25, 5.25} */
    fl_aggr_reset(a);
    assert_int_equal(fl_aggr_add(a, u1, 3, 0.25), 0);
    assert_int_equal(fl_aggr_add(a, u2, 3, 0.75), 0);
    assert_int_equal(fl_aggr_mean(a, out), 0);
    assert_true(out[0] == 3.25f && out[1] == 4.25f && out[2] == 5.25f);

    /* the weight is applied as float, and the total sums those floats */
    fl_aggr_reset(a);
    assert_int_equal(fl_aggr_add(a, u1, 3, 0.1), 0);
    assert_int_equal(fl_aggr_add(a, u1, 3, 0.1), 0);
    assert_true(fl_aggr_weight(a) == 2.0 * (double)0.1f);
    assert_int_equal(fl_aggr_mean(a, out), 0);
    assert_true(out[0] == 1.0f && out[1] == 2.0f && out[2] == 3.0f);
    fl_aggr_destroy(&a);
    assert_null(a);
    fl_aggr_destroy(&a); /* idempotent */
    fl_aggr_destroy(NULL);
}

/* Many random updates streamed in equal the mean computed naively in double,
 * within float accumulation error. Odd sizes exercise the vector tails. */
static void
test_stream_equals_naive(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 7, 1003, 40000};
    const size_t K = 60;
    fl_rng_t rng;
    fl_rng_seed(&rng, 42, 1);

    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        fl_aggr_t *a = fl_aggr_new(n);
        float *u = malloc(n * sizeof *u), *out = malloc(n * sizeof *out);
        double *num = calloc(n, sizeof *num), *mag = calloc(n, sizeof *mag), wsum = 0;
        assert_non_null(a);
        assert_non_null(u);
        assert_non_null(out);
        assert_non_null(num);
        assert_non_null(mag);
        for (size_t k = 0; k < K; k++) {
            double w = (double)(1 + fl_rng_below(&rng, 1000)); /* sample counts */
            double scale = k % 3 == 0 ? 1e-3 : (k % 3 == 1 ? 1.0 : 50.0);
            for (size_t i = 0; i < n; i++) {
                u[i] = (float)(fl_rng_normal(&rng) * scale);
                num[i] += w * (double)u[i];
                mag[i] += w * fabs((double)u[i]);
            }
            wsum += w;
            assert_int_equal(fl_aggr_add(a, u, n, w), 0);
        }
        assert_int_equal(fl_aggr_count(a), K);
        assert_true(fl_aggr_weight(a) == wsum);
        assert_int_equal(fl_aggr_mean(a, out), 0);
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double ref = num[i] / wsum;
            /* float sum of K terms: error <= ~K * 2^-24 * sum|w u| */
            double tol = (double)K * 6e-8 * mag[i] / wsum + 1e-30;
            double err = fabs((double)out[i] - ref);
            assert_true(err <= tol);
            worst = fmax(worst, err / tol);
        }
        (void)worst;
        free(u);
        free(out);
        free(num);
        free(mag);
        fl_aggr_destroy(&a);
    }
}

/* A snapshot of everything observable about an aggregator. */
typedef struct {
    size_t n, count;
    double weight;
    float *sum;  /* copy of fl_aggr_sum, or NULL when empty */
    float *mean; /* copy of fl_aggr_mean, or NULL when empty */
} snap_t;

static void
snap_take(const fl_aggr_t *a, snap_t *s)
{
    s->n = fl_aggr_numel(a);
    s->count = fl_aggr_count(a);
    s->weight = fl_aggr_weight(a);
    s->sum = s->mean = NULL;
    if (s->count) {
        s->sum = malloc(s->n * sizeof(float));
        s->mean = malloc(s->n * sizeof(float));
        assert_non_null(s->sum);
        assert_non_null(s->mean);
        memcpy(s->sum, fl_aggr_sum(a), s->n * sizeof(float));
        assert_int_equal(fl_aggr_mean(a, s->mean), 0);
    }
}

static void
snap_assert_same(const fl_aggr_t *a, const snap_t *s)
{
    assert_int_equal(fl_aggr_count(a), s->count);
    assert_memory_equal(&s->weight, &(double){fl_aggr_weight(a)}, sizeof(double));
    if (!s->count) {
        float out[1] = {123.0f};
        assert_null(fl_aggr_sum(a));
        assert_int_equal(fl_aggr_mean(a, out), FL_ESTATE);
        return;
    }
    float *mean = malloc(s->n * sizeof(float));
    assert_non_null(mean);
    assert_int_equal(fl_aggr_mean(a, mean), 0);
    assert_memory_equal(fl_aggr_sum(a), s->sum, s->n * sizeof(float));
    assert_memory_equal(mean, s->mean, s->n * sizeof(float));
    free(mean);
}

static void
snap_free(snap_t *s)
{
    free(s->sum);
    free(s->mean);
}

/* Every bad update named in the contract, at the first, a middle and the last
 * index, is refused with the aggregate unchanged — both on an empty
 * aggregator (first-add path) and on one holding updates. */
static void
test_rejects_leave_aggregate_unchanged(void **state)
{
    (void)state;
    const size_t n = 1001;
    fl_aggr_t *a = fl_aggr_new(n);
    float *good = malloc(n * sizeof(float)), *bad = malloc((n + 1) * sizeof(float));
    assert_non_null(a);
    assert_non_null(good);
    assert_non_null(bad);
    for (size_t i = 0; i < n; i++)
        good[i] = (float)i * 0.25f - 100.0f;

    for (int filled = 0; filled <= 2; filled++) {
        fl_aggr_reset(a);
        for (int k = 0; k < filled; k++)
            assert_int_equal(fl_aggr_add(a, good, n, 10.0 + k), 0);
        snap_t s;
        snap_take(a, &s);

        /* size mismatch, both sizes named */
        assert_int_equal(fl_aggr_add(a, good, n - 1, 1.0), FL_EINVAL);
        assert_non_null(strstr(fl_errmsg(), "1000"));
        assert_non_null(strstr(fl_errmsg(), "1001"));
        snap_assert_same(a, &s);
        memcpy(bad, good, n * sizeof(float));
        bad[n] = 1.0f;
        assert_int_equal(fl_aggr_add(a, bad, n + 1, 1.0), FL_EINVAL);
        assert_non_null(strstr(fl_errmsg(), "1002"));
        snap_assert_same(a, &s);
        assert_int_equal(fl_aggr_add(a, NULL, n, 1.0), FL_EINVAL);
        snap_assert_same(a, &s);

        /* bad weights */
        const double weights[] = {0.0, -1.0, -0.0, NAN, INFINITY, -INFINITY, 1e13, 1e-12};
        for (size_t j = 0; j < sizeof weights / sizeof weights[0]; j++) {
            assert_int_equal(fl_aggr_add(a, good, n, weights[j]), FL_EINVAL);
            assert_non_null(strstr(fl_errmsg(), "weight"));
            snap_assert_same(a, &s);
        }

        /* NaN, +Inf, -Inf at the first, a middle and the last index */
        const float poison[] = {NAN, -NAN, INFINITY, -INFINITY};
        const size_t where[] = {0, 517, n - 1};
        for (size_t p = 0; p < 4; p++)
            for (size_t w = 0; w < 3; w++) {
                memcpy(bad, good, n * sizeof(float));
                bad[where[w]] = poison[p];
                assert_int_equal(fl_aggr_add(a, bad, n, 2.0), FL_ENONFINITE);
                char idx[32];
                snprintf(idx, sizeof idx, "element %zu ", where[w]);
                assert_non_null(strstr(fl_errmsg(), idx));
                assert_non_null(strstr(fl_errmsg(), p < 2 ? "NaN" : "Inf"));
                snap_assert_same(a, &s);
            }
        /* several bad values: the first is named */
        memcpy(bad, good, n * sizeof(float));
        bad[900] = NAN;
        bad[300] = INFINITY;
        assert_int_equal(fl_aggr_add(a, bad, n, 2.0), FL_ENONFINITE);
        assert_non_null(strstr(fl_errmsg(), "element 300 "));
        snap_assert_same(a, &s);

        /* an update that would let the float sum overflow */
        memcpy(bad, good, n * sizeof(float));
        bad[517] = 1e30f;
        assert_int_equal(fl_aggr_add(a, bad, n, 1e9), FL_ERANGE);
        snap_assert_same(a, &s);

        /* and a good update is still accepted afterwards */
        assert_int_equal(fl_aggr_add(a, good, n, 1.0), 0);
        assert_int_equal(fl_aggr_count(a), s.count + 1);
        snap_free(&s);
    }
    free(good);
    free(bad);
    fl_aggr_destroy(&a);
}

/* The overflow bound accumulates: huge but finite updates are accepted until
 * the sum could overflow, and the mean of what was accepted is finite. */
static void
test_overflow_bound(void **state)
{
    (void)state;
    fl_aggr_t *a = fl_aggr_new(2);
    const float big[2] = {4e36f, -4e36f};
    float out[2];
    assert_int_equal(fl_aggr_add(a, big, 2, 1.0), 0);
    assert_int_equal(fl_aggr_add(a, big, 2, 1.0), 0);
    assert_int_equal(fl_aggr_add(a, big, 2, 1.0), FL_ERANGE); /* 1.2e37 > 1e37 */
    assert_int_equal(fl_aggr_count(a), 2);
    assert_int_equal(fl_aggr_mean(a, out), 0);
    assert_true(out[0] == 4e36f && out[1] == -4e36f);

    /* The largest floats at the smallest weight: the mean is clamped finite. */
    const float max[2] = {FLT_MAX, -FLT_MAX};
    fl_aggr_reset(a);
    assert_int_equal(fl_aggr_add(a, max, 2, FL_AGGR_WEIGHT_MIN), 0);
    assert_int_equal(fl_aggr_mean(a, out), 0);
    assert_true(isfinite(out[0]) && isfinite(out[1]));
    assert_true(out[0] >= 0.9999f * FLT_MAX && out[1] <= -0.9999f * FLT_MAX);

    /* Weights found by search for which the float rounding of the sum makes
     * sum / weight exceed FLT_MAX by more than half an ulp: without the clamp
     * the mean would round to +-Inf. */
    fl_aggr_reset(a);
    assert_int_equal(fl_aggr_add(a, max, 2, 7.5380278729570422e-09), 0);
    assert_int_equal(fl_aggr_add(a, max, 2, 5.3210918917710249e-08), 0);
    assert_true((float)((double)fl_aggr_sum(a)[0] / fl_aggr_weight(a)) == INFINITY);
    assert_int_equal(fl_aggr_mean(a, out), 0);
    assert_true(out[0] == FLT_MAX && out[1] == -FLT_MAX);
    fl_aggr_destroy(&a);
}

static void
test_reset_and_empty(void **state)
{
    (void)state;
    fl_aggr_t *a = fl_aggr_new(5);
    const float u[5] = {1, -2, 3.5f, 0, 1e-3f}, v[5] = {9, 9, 9, 9, 9};
    float out[5] = {7, 7, 7, 7, 7};

    /* empty: FL_ESTATE, output untouched */
    assert_int_equal(fl_aggr_mean(a, out), FL_ESTATE);
    assert_true(out[0] == 7 && out[4] == 7);
    assert_null(fl_aggr_sum(a));
    assert_int_equal(fl_aggr_count(a), 0);
    assert_true(fl_aggr_weight(a) == 0.0);

    assert_int_equal(fl_aggr_add(a, v, 5, 100.0), 0);
    assert_int_equal(fl_aggr_add(a, v, 5, 3.0), 0);
    fl_aggr_reset(a);
    assert_int_equal(fl_aggr_count(a), 0);
    assert_true(fl_aggr_weight(a) == 0.0);
    assert_null(fl_aggr_sum(a));
    assert_int_equal(fl_aggr_mean(a, out), FL_ESTATE);

    /* nothing of the previous round leaks into the next */
    assert_int_equal(fl_aggr_add(a, u, 5, 2.0), 0);
    assert_int_equal(fl_aggr_mean(a, out), 0);
    assert_memory_equal(out, u, sizeof u);
    assert_int_equal(fl_aggr_count(a), 1);
    assert_true(fl_aggr_weight(a) == 2.0);
    fl_aggr_reset(a);
    fl_aggr_reset(a); /* twice is fine */
    assert_int_equal(fl_aggr_add(a, u, 5, 1.0), 0);
    assert_int_equal(fl_aggr_mean(a, out), 0);
    assert_memory_equal(out, u, sizeof u);
    fl_aggr_destroy(&a);
}

static void
test_new_rejects_bad_size(void **state)
{
    (void)state;
    assert_null(fl_aggr_new(0));
    assert_non_null(strstr(fl_errmsg(), "size 0"));
    assert_null(fl_aggr_new(((size_t)1 << 31) + 1));
}

/* Chunked adds give bit-identical sums to whole adds, and any failure in the
 * middle of a chunked add leaves the sum as it was. */
static void
test_chunked_add(void **state)
{
    (void)state;
    enum { N = 1000 };
    static float u1[N], u2[N], bad[N], whole[N], chunked[N];
    for (int i = 0; i < N; i++) {
        u1[i] = (float)i * 0.001f - 0.3f;
        u2[i] = (float)(N - i) * 0.002f;
        bad[i] = u2[i];
    }
    bad[777] = NAN;
    fl_aggr_t *a = fl_aggr_new(N), *b = fl_aggr_new(N);
    assert_int_equal(fl_aggr_add(a, u1, N, 3.0), 0);
    assert_int_equal(fl_aggr_add(a, u2, N, 5.0), 0);

    assert_int_equal(fl_aggr_begin(b, 3.0), 0);
    assert_true(fl_aggr_open(b));
    assert_null(fl_aggr_scratch(b));
    assert_int_equal(fl_aggr_chunk(b, 0, u1, 400), 0);
    assert_int_equal(fl_aggr_chunk(b, 400, u1 + 400, 600), 0);
    assert_int_equal(fl_aggr_commit(b), 0);
    assert_false(fl_aggr_open(b));
    memcpy(chunked, fl_aggr_sum(b), sizeof chunked);

    /* a NaN in the second piece: aborted, sum unchanged */
    assert_int_equal(fl_aggr_begin(b, 5.0), 0);
    assert_int_equal(fl_aggr_chunk(b, 0, bad, 500), 0);
    assert_int_equal(fl_aggr_chunk(b, 500, bad + 500, 500), FL_ENONFINITE);
    assert_non_null(strstr(fl_errmsg(), "element 777"));
    assert_false(fl_aggr_open(b));
    assert_memory_equal(fl_aggr_sum(b), chunked, sizeof chunked);
    /* a gap: refused and aborted */
    assert_int_equal(fl_aggr_begin(b, 5.0), 0);
    assert_int_equal(fl_aggr_chunk(b, 0, u2, 100), 0);
    assert_int_equal(fl_aggr_chunk(b, 200, u2 + 200, 100), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "does not continue at element 100"));
    assert_int_equal(fl_aggr_commit(b), FL_ESTATE);
    /* incomplete commit: refused */
    assert_int_equal(fl_aggr_begin(b, 5.0), 0);
    assert_int_equal(fl_aggr_chunk(b, 0, u2, 999), 0);
    assert_int_equal(fl_aggr_commit(b), FL_ESTATE);
    assert_non_null(strstr(fl_errmsg(), "999 of 1000"));
    assert_int_equal(fl_aggr_count(b), 1);
    assert_memory_equal(fl_aggr_sum(b), chunked, sizeof chunked);
    /* bad weight */
    assert_int_equal(fl_aggr_begin(b, -1.0), FL_EINVAL);
    assert_false(fl_aggr_open(b));

    /* the good second update in pieces: identical to the whole adds */
    assert_int_equal(fl_aggr_begin(b, 5.0), 0);
    for (int off = 0; off < N; off += 128)
        assert_int_equal(fl_aggr_chunk(b, (size_t)off, u2 + off, (size_t)(N - off < 128 ? N - off : 128)), 0);
    assert_int_equal(fl_aggr_commit(b), 0);
    assert_memory_equal(fl_aggr_sum(a), fl_aggr_sum(b), sizeof whole);
    /* the mean can go into the scratch buffer */
    assert_int_equal(fl_aggr_mean(a, whole), 0);
    float *scratch = fl_aggr_scratch(b);
    assert_non_null(scratch);
    assert_int_equal(fl_aggr_mean(b, scratch), 0);
    assert_memory_equal(whole, scratch, sizeof whole);
    /* and holds a sealed copy of a model of its size (the commit seals there):
     * every byte of it may be written (ASan would see an overrun) */
    assert_int_equal(fl_aggr_scratch_bytes(b), sizeof whole + FL_AGGR_SCRATCH_SLACK);
    assert_true(FL_AGGR_SCRATCH_SLACK >= FL_SEAL_OVERHEAD);
    memset(scratch, 0xab, fl_aggr_scratch_bytes(b));
    assert_int_equal(((const uint8_t *)scratch)[fl_aggr_scratch_bytes(b) - 1], 0xab);
    fl_aggr_destroy(&a);
    fl_aggr_destroy(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_weighted_mean),
        cmocka_unit_test(test_stream_equals_naive),
        cmocka_unit_test(test_rejects_leave_aggregate_unchanged),
        cmocka_unit_test(test_overflow_bound),
        cmocka_unit_test(test_reset_and_empty),
        cmocka_unit_test(test_new_rejects_bad_size),
        cmocka_unit_test(test_chunked_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
