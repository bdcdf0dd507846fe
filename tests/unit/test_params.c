/*
 * test_params.c — unit tests of fl_params (named tensor sets), fl_util and fl_rng.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "fl_params.h"
#include "fl_rng.h"
#include "fl_util.h"

static void
test_layout_and_data(void **state)
{
    (void)state;
    fl_params_t *p = fl_params_new();
    size_t w[2] = {3, 4}, b[1] = {3};
    assert_int_equal(fl_params_add(p, "l0.weight", 2, w), 0);
    float *d0 = fl_params_find(p, "l0.weight")->data;
    d0[5] = 7.0f;
    assert_int_equal(fl_params_add(p, "l0.bias", 1, b), 0);
    assert_int_equal(fl_params_count(p), 2);
    assert_int_equal(fl_params_numel(p), 15);
    /* data survives the re-allocation of a later add */
    assert_true(fl_params_find(p, "l0.weight")->data[5] == 7.0f);
    assert_ptr_equal(fl_params_at(p, 1)->data, fl_params_data(p) + 12);
    assert_null(fl_params_find(p, "nope"));

    char buf[128];
    assert_string_equal(fl_params_describe(p, buf, sizeof buf), "l0.weight[3,4] l0.bias[3]");

    fl_params_t *q = fl_params_dup(p);
    assert_true(fl_params_same_layout(p, q));
    assert_true(fl_params_find(q, "l0.weight")->data[5] == 7.0f);
    fl_params_zero(q);
    assert_true(fl_params_data(q)[5] == 0.0f);
    assert_int_equal(fl_params_copy(q, p), 0);
    assert_true(fl_params_data(q)[5] == 7.0f);
    fl_params_destroy(&q);
    assert_null(q);
    fl_params_destroy(&q); /* idempotent */
    fl_params_destroy(&p);
}

static void
test_add_rejects_bad_input(void **state)
{
    (void)state;
    fl_params_t *p = fl_params_new();
    size_t s[2] = {2, 2}, z[2] = {2, 0}, huge[2] = {(size_t)1 << 40, (size_t)1 << 40};
    assert_int_equal(fl_params_add(p, "a", 2, s), 0);
    assert_int_equal(fl_params_add(p, "a", 2, s), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "duplicate"));
    assert_int_equal(fl_params_add(p, "", 2, s), FL_EINVAL);
    assert_int_equal(fl_params_add(p, "b", 0, s), FL_EINVAL);
    assert_int_equal(fl_params_add(p, "b", 5, s), FL_EINVAL);
    assert_int_equal(fl_params_add(p, "b", 2, z), FL_EINVAL);
    assert_int_equal(fl_params_add(p, "b", 2, huge), FL_ERANGE);
    char longname[100];
    memset(longname, 'x', sizeof longname - 1);
    longname[99] = 0;
    assert_int_equal(fl_params_add(p, longname, 2, s), FL_EINVAL);
    assert_int_equal(fl_params_count(p), 1);

    fl_params_t *q = fl_params_new();
    assert_int_equal(fl_params_add(q, "a", 1, (size_t[]){4}), 0);
    assert_int_equal(fl_params_copy(q, p), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "layouts differ"));
    fl_params_destroy(&q);
    fl_params_destroy(&p);
}

static void
test_finite_check(void **state)
{
    (void)state;
    fl_params_t *p = fl_params_new();
    assert_int_equal(fl_params_add(p, "w", 1, (size_t[]){10}), 0);
    assert_int_equal(fl_params_check_finite(p), 0);
    fl_params_data(p)[3] = NAN;
    assert_int_equal(fl_params_check_finite(p), FL_ENONFINITE);
    assert_non_null(strstr(fl_errmsg(), "element 3 is NaN"));
    fl_params_data(p)[3] = INFINITY;
    assert_int_equal(fl_params_check_finite(p), FL_ENONFINITE);
    fl_params_destroy(&p);
}

static void
test_parse_numbers(void **state)
{
    (void)state;
    uint64_t u;
    double d;
    assert_int_equal(fl_parse_u64("42", "epochs", &u), 0);
    assert_int_equal(u, 42);
    assert_int_equal(fl_parse_u64("-1", "epochs", &u), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "epochs"));
    assert_int_equal(fl_parse_u64("4x", "epochs", &u), FL_EINVAL);
    assert_int_equal(fl_parse_u64("", "epochs", &u), FL_EINVAL);
    assert_int_equal(fl_parse_double("0.05", "lr", &d), 0);
    assert_true(d == 0.05);
    assert_int_equal(fl_parse_double("nan", "lr", &d), FL_EINVAL);
    assert_int_equal(fl_parse_double("1e999", "lr", &d), FL_EINVAL);
}

/* Wrapping the current detail into a new one must not garble it. */
static void
test_fail_wraps_its_own_detail(void **state)
{
    (void)state;
    (void)fl_fail(FL_EIO, "inner reason %d", 42);
    assert_int_equal(fl_fail(FL_ECRYPTO, "outer context: %s", fl_errmsg()), FL_ECRYPTO);
    assert_string_equal(fl_errmsg(), "outer context: inner reason 42");
}

static void
test_rng_deterministic_and_distributions(void **state)
{
    (void)state;
    fl_rng_t a, b, c;
    fl_rng_seed(&a, 1, 0);
    fl_rng_seed(&b, 1, 0);
    fl_rng_seed(&c, 1, 1);
    for (int i = 0; i < 100; i++) {
        uint64_t x = fl_rng_u64(&a);
        assert_true(x == fl_rng_u64(&b));
        (void)fl_rng_u64(&c);
    }
    fl_rng_seed(&a, 1, 0);
    assert_true(fl_rng_u64(&a) != fl_rng_u64(&c));

    /* moments of normal and gamma, and uniformity of below() */
    double s = 0, s2 = 0, g = 0;
    size_t counts[5] = {0};
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double z = fl_rng_normal(&a);
        s += z;
        s2 += z * z;
        g += fl_rng_gamma(&a, 0.5);
        counts[fl_rng_below(&a, 5)]++;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1.0) < 0.02);
    assert_true(fabs(g / n - 0.5) < 0.01);
    for (int k = 0; k < 5; k++)
        assert_true(fabs((double)counts[k] / n - 0.2) < 0.005);

    uint32_t idx[50];
    for (uint32_t i = 0; i < 50; i++)
        idx[i] = i;
    fl_rng_shuffle(&a, idx, 50);
    uint64_t seen = 0;
    for (int i = 0; i < 50; i++)
        seen |= 1ULL << idx[i];
    assert_true(seen == (1ULL << 50) - 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_and_data),
        cmocka_unit_test(test_add_rejects_bad_input),
        cmocka_unit_test(test_finite_check),
        cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_fail_wraps_its_own_detail),
        cmocka_unit_test(test_rng_deterministic_and_distributions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
