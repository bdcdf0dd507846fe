/*
 * test_sagraph.c — unit tests of fl_sagraph: FCP's parameter finder against
 * every expectation of graph_parameter_finder_test.cc and the SECAGG.md §1.3
 * table, the feasibility limits and invalid inputs, the full-graph fallback,
 * and the Harary graph (golden sid-derived ring from an independent
 * implementation, symmetry, positions).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fl_sagraph.h"
#include "fl_util.h"

#define SH FL_SAGRAPH_SEMI_HONEST
#define SM FL_SAGRAPH_SEMI_MALICIOUS

typedef struct {
    uint32_t n;
    double gamma, delta;
    fl_sagraph_threat_t model;
    uint32_t k, t;
} s_row_t;

/* fcp/secagg/server/graph_parameter_finder_test.cc, feasible instances
 * (FCP's NONE class is its semi-honest finder with gamma = 0). FCP checks
 * degree == k and threshold <= t; we reproduce both exactly. */
static const s_row_t s_fcp[] = {
    {100, .45, .45, SH, 92, 46},       {1000, .45, .45, SH, 822, 417},
    {10000, .45, .45, SH, 3494, 1771}, {100000, .45, .45, SH, 5508, 2788},
    {1000000, .45, .45, SH, 6240, 3156},
    {10, .33, .33, SH, 8, 4},          {100, .33, .33, SH, 68, 34},
    {1000, .33, .33, SH, 286, 150},    {10000, .33, .33, SH, 422, 221},
    {100000, .33, .33, SH, 480, 251},  {1000000, .33, .33, SH, 518, 270},
    {100, .3, .3, SM, 92, 62},         {1000, .3, .3, SM, 872, 584},
    {10000, .3, .3, SM, 4822, 3230},   {100000, .3, .3, SM, 9388, 6286},
    {1000000, .3, .3, SM, 11136, 7454},
    {10, .05, .33, SH, 4, 2},          {100, .05, .33, SH, 28, 6},
    {1000, .05, .33, SH, 72, 24},      {10000, .05, .33, SH, 86, 29},
    {100000, .05, .33, SH, 96, 32},    {1000000, .05, .33, SH, 102, 34},
    {10, .05, .33, SM, 8, 5},          {100, .05, .33, SM, 72, 39},
    {1000, .05, .33, SM, 398, 223},    {10000, .05, .33, SM, 746, 420},
    {100000, .05, .33, SM, 882, 496},  {1000000, .05, .33, SM, 970, 545},
    {10, .33, .05, SH, 4, 4},          {100, .33, .05, SH, 34, 29},
    {1000, .33, .05, SH, 78, 60},      {10000, .33, .05, SH, 92, 70},
    {100000, .33, .05, SH, 102, 77},   {1000000, .33, .05, SH, 110, 83},
    {10, .33, .05, SM, 4, 4},          {100, .33, .05, SM, 42, 37},
    {1000, .33, .05, SM, 132, 109},    {10000, .33, .05, SM, 178, 146},
    {100000, .33, .05, SM, 196, 160},  {1000000, .33, .05, SM, 212, 173},
    {10, .05, .05, SH, 2, 2},          {100, .05, .05, SH, 12, 6},
    {1000, .05, .05, SH, 30, 17},      {10000, .05, .05, SH, 34, 20},
    {100000, .05, .05, SH, 36, 21},    {1000000, .05, .05, SH, 38, 22},
    {10, .05, .05, SM, 2, 2},          {100, .05, .05, SM, 16, 11},
    {1000, .05, .05, SM, 52, 37},      {10000, .05, .05, SM, 62, 44},
    {100000, .05, .05, SM, 68, 48},    {1000000, .05, .05, SM, 74, 52},
    {10, .33, 0, SH, 4, 4},            {100, .33, 0, SH, 26, 25},
    {1000, .33, 0, SH, 38, 36},        {10000, .33, 0, SH, 42, 40},
    {100000, .33, 0, SH, 46, 44},      {1000000, .33, 0, SH, 50, 47},
    {10, .33, 0, SM, 4, 4},            {100, .33, 0, SM, 26, 26},
    {1000, .33, 0, SM, 38, 37},        {10000, .33, 0, SM, 42, 41},
    {100000, .33, 0, SM, 46, 45},      {1000000, .33, 0, SM, 50, 49},
    {10, 0, .33, SH, 4, 2},            {100, 0, .33, SH, 26, 2},
    {1000, 0, .33, SH, 38, 2},         {10000, 0, .33, SH, 42, 2},
    {100000, 0, .33, SH, 46, 2},       {1000000, 0, .33, SH, 50, 2},
    {10, 0, .33, SM, 8, 5},            {100, 0, .33, SM, 68, 35},
    {1000, 0, .33, SM, 228, 115},      {10000, 0, .33, SM, 326, 164},
    {100000, 0, .33, SM, 372, 187},    {1000000, 0, .33, SM, 410, 206},
    {10, 0, 0, SH, 2, 2},              {100, 0, 0, SH, 2, 2},
    {1000, 0, 0, SH, 2, 2},            {10000, 0, 0, SH, 2, 2},
    {100000, 0, 0, SH, 2, 2},          {1000000, 0, 0, SH, 2, 2},
    {10, 0, 0, SM, 2, 2},              {100, 0, 0, SM, 2, 2},
    {1000, 0, 0, SM, 2, 2},            {10000, 0, 0, SM, 2, 2},
    {100000, 0, 0, SM, 2, 2},          {1000000, 0, 0, SM, 2, 2},
};

/* SECAGG.md §1.3 table. */
static const s_row_t s_spec[] = {
    {100, .05, .10, SH, 16, 6},    {500, .05, .10, SH, 32, 17},   {1000, .05, .10, SH, 36, 19},
    {5000, .05, .10, SH, 40, 21},  {10000, .05, .10, SH, 42, 22}, {100, .05, .10, SM, 26, 16},
    {500, .05, .10, SM, 66, 44},   {1000, .05, .10, SM, 78, 52},  {5000, .05, .10, SM, 90, 60},
    {10000, .05, .10, SM, 96, 64}, {100, .10, .20, SH, 28, 11},   {500, .10, .20, SH, 58, 28},
    {1000, .10, .20, SH, 66, 31},  {5000, .10, .20, SH, 76, 36},  {10000, .10, .20, SH, 78, 37},
    {100, .10, .20, SM, 52, 32},   {500, .10, .20, SM, 152, 97},  {1000, .10, .20, SM, 194, 124},
    {5000, .10, .20, SM, 260, 166}, {10000, .10, .20, SM, 280, 179},
    {100, .05, .33, SH, 28, 6},    {500, .05, .33, SH, 64, 21},   {1000, .05, .33, SH, 72, 24},
    {5000, .05, .33, SH, 86, 29},  {10000, .05, .33, SH, 86, 29},
};

static void
s_check_rows(const s_row_t *rows, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const s_row_t *r = &rows[i];
        uint32_t k = 0, t = 0;
        int rc = fl_sagraph_find(r->n, r->gamma, r->delta, r->model, &k, &t);
        if (rc != 0 || k != r->k || t != r->t)
            fail_msg("n=%u gamma=%g delta=%g %s: got rc=%d (k=%u, t=%u), want (%u, %u)", r->n,
                     r->gamma, r->delta, r->model == SH ? "SH" : "SM", rc, k, t, r->k, r->t);
    }
}

static void
test_fcp_expectations(void **state)
{
    (void)state;
    s_check_rows(s_fcp, sizeof s_fcp / sizeof s_fcp[0]);
}

static void
test_spec_table(void **state)
{
    (void)state;
    s_check_rows(s_spec, sizeof s_spec / sizeof s_spec[0]);
}

static void
test_find_invalid(void **state)
{
    (void)state;
    uint32_t k = 77, t = 77;
    /* FCP's infeasible / invalid instances */
    assert_int_equal(fl_sagraph_find(0, .1, .1, SH, &k, &t), FL_EINVAL);
    assert_int_equal(fl_sagraph_find(1000, .1, 1., SH, &k, &t), FL_EINVAL);
    assert_int_equal(fl_sagraph_find(1000, .1, -1., SH, &k, &t), FL_EINVAL);
    assert_int_equal(fl_sagraph_find(1000, .5, .5, SH, &k, &t), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "<= 0.9"));
    assert_int_equal(fl_sagraph_find(1000, .5, .5, SM, &k, &t), FL_EINVAL);
    assert_int_equal(fl_sagraph_find(1000, .33, .33, SM, &k, &t), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "semi-malicious"));
    assert_int_equal(fl_sagraph_find(1000, NAN, .1, SH, &k, &t), FL_EINVAL);
    assert_int_equal(fl_sagraph_find(1000, .1, NAN, SH, &k, &t), FL_EINVAL);
    assert_int_equal(fl_sagraph_find(FL_SAGRAPH_MAX_N + 1, .1, .1, SH, &k, &t), FL_EINVAL);
    assert_int_equal(fl_sagraph_find(1000, .1, .1, (fl_sagraph_threat_t)7, &k, &t), FL_EINVAL);
    /* limits are inclusive: gamma + delta = 0.9 is allowed */
    assert_int_equal(fl_sagraph_find(1000, .45, .45, SH, &k, &t), 0);
    /* feasible rates but too few clients for any degree */
    assert_int_equal(fl_sagraph_find(10, .45, .45, SH, &k, &t), FL_ENOTFOUND);
    assert_int_equal(fl_sagraph_find(3, .05, .05, SH, &k, &t), FL_ENOTFOUND);
    assert_int_equal(k, 822); /* from the successful call above; untouched since */
    assert_int_equal(t, 417);
}

static void
test_choose(void **state)
{
    (void)state;
    fl_sagraph_params_t p;
    assert_int_equal(fl_sagraph_full_threshold(3), 3);
    assert_int_equal(fl_sagraph_full_threshold(10), 7);
    assert_int_equal(fl_sagraph_full_threshold(100), 67);
    assert_int_equal(fl_sagraph_full_threshold(2), 2);

    /* small n: full graph */
    assert_int_equal(fl_sagraph_choose(64, .05, .2, SM, 100, &p), 0);
    assert_true(p.full);
    assert_int_equal(p.n, 64);
    assert_int_equal(p.k, 63);
    assert_int_equal(p.t, 43);
    /* above full_max: Harary from the finder */
    assert_int_equal(fl_sagraph_choose(1000, .05, .10, SM, 100, &p), 0);
    assert_false(p.full);
    assert_int_equal(p.k, 78);
    assert_int_equal(p.t, 52);
    /* the finder finds nothing: FCP's full-graph fallback */
    assert_int_equal(fl_sagraph_choose(10, .45, .45, SH, 0, &p), 0);
    assert_true(p.full);
    assert_int_equal(p.k, 9);
    assert_int_equal(p.t, 7);
    /* configuration errors are errors even for the full graph */
    p.n = 12345;
    assert_int_equal(fl_sagraph_choose(50, .5, .5, SH, 100, &p), FL_EINVAL);
    assert_int_equal(fl_sagraph_choose(1, .05, .05, SH, 100, &p), FL_EINVAL);
    assert_int_equal(p.n, 12345);
}

static void
test_harary_golden(void **state)
{
    (void)state;
    /* rings from an independent implementation (Python: hashlib BLAKE2b,
     * `cryptography` ChaCha20), per the derivation in fl_sagraph.h */
    uint8_t sid[32], zero[32] = {0};
    for (int i = 0; i < 32; i++)
        sid[i] = (uint8_t)i;
    static const uint32_t ring10[10] = {7, 3, 4, 0, 9, 6, 8, 2, 5, 1};
    static const uint32_t ring20[20] = {7, 19, 14, 8,  18, 9,  5, 16, 6,  2,
                                        13, 3, 0,  11, 1,  12, 15, 10, 17, 4};
    fl_sagraph_params_t p = {.n = 10, .k = 4, .t = 3, .full = false};
    fl_sagraph_t *g = NULL;
    assert_int_equal(fl_sagraph_new(&p, sid, &g), 0);
    for (uint32_t r = 0; r < 10; r++)
        assert_int_equal(fl_sagraph_ring_pos(g, ring10[r]), r);
    uint32_t nb[5];
    fl_sagraph_neighbours(g, 7, nb); /* ring position 0: positions 8, 9, 0, 1, 2 */
    static const uint32_t want[5] = {5, 1, 7, 3, 4};
    assert_memory_equal(nb, want, sizeof want);
    assert_int_equal(fl_sagraph_position(g, 7, 5), 0);
    assert_int_equal(fl_sagraph_position(g, 7, 7), 2);
    assert_int_equal(fl_sagraph_position(g, 7, 4), 4);
    assert_int_equal(fl_sagraph_position(g, 7, 9), -1);
    assert_int_equal(fl_sagraph_size(g), 5);
    assert_int_equal(fl_sagraph_params(g)->t, 3);
    fl_sagraph_destroy(&g);
    assert_null(g);

    p.n = 20;
    p.k = 6;
    assert_int_equal(fl_sagraph_new(&p, zero, &g), 0);
    for (uint32_t r = 0; r < 20; r++)
        assert_int_equal(fl_sagraph_ring_pos(g, ring20[r]), r);
    fl_sagraph_destroy(&g);
}

/* Structural properties on many graphs: N(u) has k+1 distinct members with u
 * in the middle, position/at agree, and the relation is symmetric. */
static void
test_harary_structure(void **state)
{
    (void)state;
    uint8_t sid[32] = {0};
    static const uint32_t ns[] = {3, 4, 5, 16, 33, 64, 101};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        uint32_t n = ns[a];
        for (uint32_t k = 2; k <= n - 1; k += 2) {
            sid[0] = (uint8_t)n;
            sid[1] = (uint8_t)k;
            fl_sagraph_params_t p = {.n = n, .k = k, .t = 2, .full = false};
            fl_sagraph_t *g = NULL;
            assert_int_equal(fl_sagraph_new(&p, sid, &g), 0);
            uint32_t *nb = malloc((k + 1) * sizeof *nb);
            bool *seen = calloc(n, sizeof *seen);
            for (uint32_t u = 0; u < n; u++) {
                fl_sagraph_neighbours(g, u, nb);
                assert_int_equal(nb[k / 2], u);
                memset(seen, 0, n * sizeof *seen);
                for (uint32_t i = 0; i <= k; i++) {
                    assert_true(nb[i] < n);
                    assert_false(seen[nb[i]]);
                    seen[nb[i]] = true;
                    assert_int_equal(fl_sagraph_position(g, u, nb[i]), i);
                    assert_int_equal(fl_sagraph_at(g, u, i), nb[i]);
                }
                uint32_t count = 0;
                for (uint32_t v = 0; v < n; v++) {
                    int64_t pos = fl_sagraph_position(g, u, v);
                    assert_int_equal(pos >= 0, seen[v]);
                    assert_int_equal(pos >= 0, fl_sagraph_position(g, v, u) >= 0);
                    count += pos >= 0;
                }
                assert_int_equal(count, k + 1);
            }
            free(nb);
            free(seen);
            fl_sagraph_destroy(&g);
        }
    }
}

/* Different sessions give different rings; the same session the same. */
static void
test_harary_sid(void **state)
{
    (void)state;
    uint8_t s1[32] = {1}, s2[32] = {2};
    fl_sagraph_params_t p = {.n = 50, .k = 8, .t = 5, .full = false};
    fl_sagraph_t *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(fl_sagraph_new(&p, s1, &a), 0);
    assert_int_equal(fl_sagraph_new(&p, s1, &b), 0);
    assert_int_equal(fl_sagraph_new(&p, s2, &c), 0);
    int same_ab = 1, same_ac = 1;
    for (uint32_t u = 0; u < 50; u++) {
        same_ab &= fl_sagraph_ring_pos(a, u) == fl_sagraph_ring_pos(b, u);
        same_ac &= fl_sagraph_ring_pos(a, u) == fl_sagraph_ring_pos(c, u);
    }
    assert_true(same_ab);
    assert_false(same_ac);
    fl_sagraph_destroy(&a);
    fl_sagraph_destroy(&b);
    fl_sagraph_destroy(&c);
}

static void
test_full(void **state)
{
    (void)state;
    fl_sagraph_params_t p = {.n = 7, .k = 6, .t = 5, .full = true};
    fl_sagraph_t *g = NULL;
    assert_int_equal(fl_sagraph_new(&p, NULL, &g), 0);
    uint32_t nb[7];
    for (uint32_t u = 0; u < 7; u++) {
        fl_sagraph_neighbours(g, u, nb);
        for (uint32_t v = 0; v < 7; v++) {
            assert_int_equal(nb[v], v);
            assert_int_equal(fl_sagraph_position(g, u, v), v); /* x = 1 + index */
        }
        assert_int_equal(fl_sagraph_ring_pos(g, u), u);
    }
    fl_sagraph_destroy(&g);
}

static void
test_new_invalid(void **state)
{
    (void)state;
    uint8_t sid[32] = {0};
    fl_sagraph_t *g = (fl_sagraph_t *)0x1;
    fl_sagraph_params_t bad[] = {
        {.n = 10, .k = 3, .t = 2, .full = false},  /* odd k */
        {.n = 10, .k = 10, .t = 2, .full = false}, /* k > n-1 */
        {.n = 10, .k = 0, .t = 2, .full = false},  /* k < 2 */
        {.n = 10, .k = 4, .t = 6, .full = false},  /* t > k+1 */
        {.n = 10, .k = 4, .t = 1, .full = false},  /* t < 2 */
        {.n = 10, .k = 8, .t = 7, .full = true},   /* full graph with k != n-1 */
        {.n = 1, .k = 0, .t = 2, .full = true},    /* n < 2 */
        {.n = FL_SAGRAPH_MAX_N + 1, .k = 4, .t = 3, .full = false},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(fl_sagraph_new(&bad[i], sid, &g), FL_EINVAL);
    fl_sagraph_params_t p = {.n = 10, .k = 4, .t = 3, .full = false};
    assert_int_equal(fl_sagraph_new(&p, NULL, &g), FL_EINVAL); /* Harary needs sid */
    assert_ptr_equal(g, (fl_sagraph_t *)0x1);
    fl_sagraph_destroy(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fcp_expectations), cmocka_unit_test(test_spec_table),
        cmocka_unit_test(test_find_invalid),      cmocka_unit_test(test_choose),
        cmocka_unit_test(test_harary_golden),     cmocka_unit_test(test_harary_structure),
        cmocka_unit_test(test_harary_sid),        cmocka_unit_test(test_full),
        cmocka_unit_test(test_new_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
