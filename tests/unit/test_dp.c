/*
 * test_dp.c — unit tests of fl_dp: the RDP accountant against SECAGG.md
 * §2.4's reference table and unit checks (and a 60-digit mpmath computation
 * of the same formulas), special cases, conversions, composition, the
 * budget check, state save/restore (exact, malformed text refused), clipping,
 * Gaussian noise, the fixed-denominator estimator and adaptive clipping
 * (including the direction of the clip update that Flower gets backwards).
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

#include "fl_dp.h"
#include "fl_rng.h"
#include "fl_util.h"

/* |got - want| <= rel * |want| */
#define assert_rel(got, want, rel)                                                                 \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (!(fabs(g_ - w_) <= (rel) * fabs(w_))) {                                                \
            print_error("%s = %.17g, expected %.17g (rel %g)\n", #got, g_, w_, (double)(rel));     \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* The value printed in SECAGG.md with `digits` decimals: |got - want| <= half
 * a unit of the last printed digit. */
#define assert_printed(got, want, decimals)                                                        \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (!(fabs(g_ - w_) <= 0.5000001 * pow(10.0, -(decimals)))) {                              \
            print_error("%s = %.12g, SECAGG.md prints %.*f\n", #got, g_, (int)(decimals), w_);     \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Reference values                                                          */
/* ------------------------------------------------------------------------ */

/*
 * SECAGG.md §2.4 table (default orders 2..63 ∪ {128,256,512,1024}). The
 * `ref` columns were recomputed for this test with mpmath at 60 digits
 * (exact binomials, the same LSE sum, the same conversions; q passed as the
 * same binary double); the `printed` columns are the spec's.
 */
typedef struct {
    double q, z;
    uint64_t steps;
    double delta;
    double eps_ref, classic_ref;
    uint32_t order, classic_order;
    double eps_printed, classic_printed;
} row_t;

static const row_t s_table[] = {
    {0.01, 1.1, 10000, 1e-5, 5.65430800014949, 6.27981102957222, 5, 5, 5.654308, 6.279811},
    {256.0 / 60000.0, 1.1, 14062, 1e-5, 2.59698117859485, 3.00909952573242, 8, 9, 2.596981,
     3.009100},
    {0.01, 1.0, 1000, 1e-5, 2.10775307545157, 2.53834754545892, 8, 8, 2.107753, 2.538348},
    {0.001, 1.0, 10000, 1e-6, 0.979541625510584, 1.27333011297258, 13, 13, 0.979542, 1.273330},
    {0.1, 2.0, 100, 1e-5, 2.58665217816753, 3.01724664817488, 8, 8, 2.586652, 3.017247},
    {1.0, 1.0, 1, 1e-5, 4.75272833681982, 5.30258509299405, 5, 6, 4.752728, 5.302585},
};
#define NTABLE (sizeof s_table / sizeof s_table[0])

static void
test_reference_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTABLE; i++) {
        const row_t *r = &s_table[i];
        fl_dp_accountant_t *a = fl_dp_accountant_new(NULL, 0);
        assert_non_null(a);
        assert_int_equal(fl_dp_accountant_add(a, r->q, r->z, r->steps), 0);
        double eps = -1, cl = -1, del = -1;
        uint32_t o = 0, oc = 0, od = 0;
        assert_int_equal(fl_dp_accountant_epsilon(a, r->delta, &eps, &o), 0);
        assert_int_equal(fl_dp_accountant_epsilon_classic(a, r->delta, &cl, &oc), 0);
        assert_rel(eps, r->eps_ref, 1e-9);
        assert_rel(cl, r->classic_ref, 1e-9);
        assert_printed(eps, r->eps_printed, 6);
        assert_printed(cl, r->classic_printed, 6);
        assert_rel(eps, r->eps_printed, 1e-6);
        assert_rel(cl, r->classic_printed, 1e-6);
        assert_int_equal(o, r->order);
        assert_int_equal(oc, r->classic_order);
        /* delta(eps) inverts eps(delta) exactly at the optimal order, and no
         * other order does better (eps is their minimum). */
        assert_int_equal(fl_dp_accountant_delta(a, eps, &del, &od), 0);
        assert_rel(del, r->delta, 1e-9);
        assert_int_equal(od, r->order);
        assert_int_equal(fl_dp_accountant_steps(a), r->steps);
        fl_dp_accountant_destroy(&a);
        assert_null(a);
    }
}

static void
test_unit_checks(void **state)
{
    (void)state;
    double r = 0;
    /* RDP(q=0.1, z=2, T=10, alpha=5) = 0.0773697 */
    assert_int_equal(fl_dp_rdp(0.1, 2.0, 10, 5, &r), 0);
    assert_rel(r, 0.0773696848979587, 1e-10);
    assert_rel(r, 0.0773697, 1e-6);
    /* TF-Privacy's test: RDP(0.01, 2.5, 50) at alpha = 5, 50, 100 */
    assert_int_equal(fl_dp_rdp(0.01, 2.5, 50, 5, &r), 0);
    assert_rel(r, 0.00218075656230788, 1e-10);
    assert_printed(r, 2.18076e-3, 8); /* printed with 6 significant digits */
    assert_int_equal(fl_dp_rdp(0.01, 2.5, 50, 50, &r), 0);
    assert_rel(r, 0.0238460375387062, 1e-10);
    assert_printed(r, 2.38460e-2, 7);
    assert_int_equal(fl_dp_rdp(0.01, 2.5, 50, 100, &r), 0);
    assert_rel(r, 167.416307548418, 1e-10);
    assert_printed(r, 167.416, 3);
    /* logA(0.01, 1.1, 32) */
    assert_rel(fl_dp_log_a(0.01, 1.1, 32), 262.5519094439537, 1e-13);
}

static void
test_constant_rdp_conversion(void **state)
{
    (void)state;
    uint32_t orders[31];
    double rdp[31];
    for (int i = 0; i < 31; i++) {
        orders[i] = (uint32_t)i + 2;
        rdp[i] = 1.1;
    }
    double eps = 0;
    uint32_t o = 0;
    assert_int_equal(fl_dp_epsilon(orders, rdp, 31, 1e-5, &eps, &o), 0);
    assert_rel(eps, 1.32783806175543588, 1e-12);
    assert_printed(eps, 1.32783806176, 11);
    assert_int_equal(o, 32);
    /* by hand: 1.1 + ln(31/32) - (ln 1e-5 + ln 32)/31 */
    assert_rel(eps, 1.1 + log(31.0 / 32.0) - (log(1e-5) + log(32.0)) / 31.0, 1e-14);
}

/*
 * Opacus rdp.py's docstring: parameters [(q, sigma, steps)] =
 * [(1e-5, 1.0, 10), (1e-4, 3.0, 4)] composed by adding their compute_rdp()
 * vectors over orders range(2, 33), then get_privacy_spent(delta=1e-5)
 * -> (0.336, 23). Here: an accountant on orders 2..32 with both steps added.
 */
static void
test_opacus_docstring(void **state)
{
    (void)state;
    uint32_t orders[31];
    for (int i = 0; i < 31; i++)
        orders[30 - i] = (uint32_t)i + 2; /* given descending: the accountant sorts */
    fl_dp_accountant_t *a = fl_dp_accountant_new(orders, 31);
    assert_non_null(a);
    assert_int_equal(fl_dp_accountant_add(a, 1e-5, 1.0, 10), 0);
    assert_int_equal(fl_dp_accountant_add(a, 1e-4, 3.0, 4), 0);
    assert_int_equal(fl_dp_accountant_steps(a), 14);
    double eps = 0;
    uint32_t o = 0;
    assert_int_equal(fl_dp_accountant_epsilon(a, 1e-5, &eps, &o), 0);
    assert_rel(eps, 0.336344063392595136, 1e-9);
    assert_printed(eps, 0.3363, 4);
    assert_int_equal(o, 23);
    size_t n = 0;
    const uint32_t *ord = fl_dp_accountant_orders(a, &n);
    assert_int_equal(n, 31);
    assert_int_equal(ord[0], 2);
    assert_int_equal(ord[30], 32);
    fl_dp_accountant_destroy(&a);
}

static void
test_special_cases(void **state)
{
    (void)state;
    double r = -1;
    assert_int_equal(fl_dp_rdp(0.0, 1.0, 100, 8, &r), 0); /* no one sampled */
    assert_true(r == 0.0);
    assert_int_equal(fl_dp_rdp(0.5, 0.0, 1, 8, &r), 0); /* no noise */
    assert_true(isinf(r) && r > 0);
    assert_int_equal(fl_dp_rdp(0.0, 0.0, 1, 8, &r), 0); /* q = 0 wins */
    assert_true(r == 0.0);
    assert_int_equal(fl_dp_rdp(1.0, 2.0, 3, 10, &r), 0); /* full batch: T a / (2 z^2) */
    assert_rel(r, 3.0 * 10.0 / 8.0, 1e-15);
    assert_int_equal(fl_dp_rdp(0.5, 0.0, 0, 8, &r), 0); /* zero steps, no noise */
    assert_true(r == 0.0);

    /* q -> 1 joins the closed form continuously. */
    double near = 0;
    assert_int_equal(fl_dp_rdp(1.0 - 1e-9, 2.0, 1, 10, &near), 0);
    assert_rel(near, 10.0 / 8.0, 1e-6);

    /* alpha = 2 has the closed form log(1 + q^2 (e^{1/z^2} - 1)). */
    assert_rel(fl_dp_log_a(0.2, 1.5, 2), log1p(0.04 * expm1(1.0 / 2.25)), 1e-13);
    assert_true(isnan(fl_dp_log_a(0.0, 1.0, 4)));
    assert_true(isnan(fl_dp_log_a(0.5, 1.0, 1)));

    /* An accountant with no rounds spends nothing; infinite loss stays inf. */
    fl_dp_accountant_t *a = fl_dp_accountant_new(NULL, 0);
    double eps = -1;
    uint32_t o = 0;
    assert_int_equal(fl_dp_accountant_epsilon(a, 1e-5, &eps, &o), 0);
    assert_true(eps == 0.0);
    double del = -1;
    assert_int_equal(fl_dp_accountant_delta(a, 1.0, &del, NULL), 0);
    assert_true(del == 0.0);
    assert_int_equal(fl_dp_accountant_add(a, 0.1, 0.0, 1), 0);
    assert_int_equal(fl_dp_accountant_epsilon(a, 1e-5, &eps, &o), 0);
    assert_true(isinf(eps));
    assert_int_equal(o, 2); /* first order reported when all are infinite */
    assert_int_equal(fl_dp_accountant_epsilon_classic(a, 1e-5, &eps, NULL), 0);
    assert_true(isinf(eps));
    assert_int_equal(fl_dp_accountant_delta(a, 1.0, &del, NULL), 0);
    assert_true(del == 1.0);
    fl_dp_accountant_destroy(&a);
    fl_dp_accountant_destroy(&a); /* idempotent */
    fl_dp_accountant_destroy(NULL);
}

/* The delta^2 + expm1(-rdp) >= 0 rule gives epsilon 0 where the KL bound
 * already meets delta; the KL bound also caps fl_dp_delta. */
static void
test_kl_rules(void **state)
{
    (void)state;
    uint32_t orders[] = {2, 3};
    double tiny[] = {1e-12, 1e-12};
    double eps = -1;
    uint32_t o = 0;
    assert_int_equal(fl_dp_epsilon(orders, tiny, 2, 1e-5, &eps, &o), 0);
    assert_true(eps == 0.0);
    assert_int_equal(o, 2);
    /* just above delta^2 the rule stops applying and the bound is positive */
    double small[] = {2e-10, 2e-10};
    assert_int_equal(fl_dp_epsilon(orders, small, 2, 1e-5, &eps, &o), 0);
    assert_true(eps > 0.0);

    uint32_t o2[] = {2};
    double r2[] = {1e-4};
    double del = -1;
    assert_int_equal(fl_dp_delta(o2, r2, 1, 0.0, &del, NULL), 0);
    assert_rel(del, sqrt(-expm1(-1e-4)), 1e-12);
    /* with eps large the RDP bound wins: exp((a-1)(r - eps + log1p(-1/a)) - ln a) */
    assert_int_equal(fl_dp_delta(o2, r2, 1, 5.0, &del, NULL), 0);
    assert_rel(del, exp((1e-4 - 5.0 + log1p(-0.5)) - log(2.0)), 1e-12);
}

static void
test_conversion_errors(void **state)
{
    (void)state;
    uint32_t orders[] = {2, 3};
    double rdp[] = {0.1, 0.2};
    double eps = 42;
    uint32_t o = 7;
    assert_int_equal(fl_dp_epsilon(orders, rdp, 2, 0.0, &eps, &o), FL_EINVAL);
    assert_int_equal(fl_dp_epsilon(orders, rdp, 2, 1.0, &eps, &o), FL_EINVAL);
    assert_int_equal(fl_dp_epsilon(orders, rdp, 2, NAN, &eps, &o), FL_EINVAL);
    assert_int_equal(fl_dp_epsilon(orders, rdp, 0, 1e-5, &eps, &o), FL_EINVAL);
    assert_int_equal(fl_dp_epsilon(NULL, rdp, 2, 1e-5, &eps, &o), FL_EINVAL);
    assert_int_equal(fl_dp_epsilon_classic(orders, rdp, 2, -1.0, &eps, &o), FL_EINVAL);
    assert_int_equal(fl_dp_delta(orders, rdp, 2, -1.0, &eps, &o), FL_EINVAL);
    assert_int_equal(fl_dp_delta(orders, rdp, 2, INFINITY, &eps, &o), FL_EINVAL);
    double bad[] = {0.1, -0.2};
    assert_int_equal(fl_dp_epsilon(orders, bad, 2, 1e-5, &eps, &o), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "order 3"));
    double nan[] = {NAN, 0.2};
    assert_int_equal(fl_dp_epsilon(orders, nan, 2, 1e-5, &eps, &o), FL_EINVAL);
    uint32_t one[] = {1, 3};
    assert_int_equal(fl_dp_epsilon(one, rdp, 2, 1e-5, &eps, &o), FL_EINVAL);
    assert_true(eps == 42 && o == 7); /* nothing written */

    double r = 5;
    assert_int_equal(fl_dp_rdp(1.5, 1.0, 1, 4, &r), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "q=1.5"));
    assert_int_equal(fl_dp_rdp(-0.1, 1.0, 1, 4, &r), FL_EINVAL);
    assert_int_equal(fl_dp_rdp(NAN, 1.0, 1, 4, &r), FL_EINVAL);
    assert_int_equal(fl_dp_rdp(0.1, -1.0, 1, 4, &r), FL_EINVAL);
    assert_int_equal(fl_dp_rdp(0.1, INFINITY, 1, 4, &r), FL_EINVAL);
    assert_int_equal(fl_dp_rdp(0.1, 1.0, 1, 1, &r), FL_EINVAL);
    assert_int_equal(fl_dp_rdp(0.1, 1.0, 1, FL_DP_ORDER_MAX + 1, &r), FL_EINVAL);
    assert_true(r == 5);
}

static void
test_accountant_composition(void **state)
{
    (void)state;
    /* Heterogeneous rounds add their RDP order by order. */
    fl_dp_accountant_t *a = fl_dp_accountant_new(NULL, 0);
    assert_int_equal(fl_dp_accountant_add(a, 0.05, 1.2, 30), 0);
    assert_int_equal(fl_dp_accountant_add(a, 0.02, 0.9, 70), 0);
    assert_int_equal(fl_dp_accountant_add(a, 0.0, 0.9, 5), 0); /* skipped rounds: free */
    size_t n = 0;
    const uint32_t *ord = fl_dp_accountant_orders(a, &n);
    const double *rdp = fl_dp_accountant_rdp(a);
    assert_int_equal(n, 66);
    assert_int_equal(ord[0], 2);
    assert_int_equal(ord[61], 63);
    assert_int_equal(ord[65], 1024);
    for (size_t i = 0; i < n; i++) {
        double r1, r2;
        assert_int_equal(fl_dp_rdp(0.05, 1.2, 30, ord[i], &r1), 0);
        assert_int_equal(fl_dp_rdp(0.02, 0.9, 70, ord[i], &r2), 0);
        assert_rel(rdp[i], r1 + r2, 1e-14);
    }
    assert_int_equal(fl_dp_accountant_steps(a), 105);

    /* One add of k steps equals k adds of one step. */
    fl_dp_accountant_t *b = fl_dp_accountant_new(NULL, 0);
    fl_dp_accountant_t *c = fl_dp_accountant_new(NULL, 0);
    assert_int_equal(fl_dp_accountant_add(b, 0.01, 1.1, 50), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(fl_dp_accountant_add(c, 0.01, 1.1, 1), 0);
    double eb, ec;
    assert_int_equal(fl_dp_accountant_epsilon(b, 1e-5, &eb, NULL), 0);
    assert_int_equal(fl_dp_accountant_epsilon(c, 1e-5, &ec, NULL), 0);
    assert_rel(eb, ec, 1e-12);

    /* dup is independent */
    fl_dp_accountant_t *d = fl_dp_accountant_dup(b);
    assert_int_equal(fl_dp_accountant_add(d, 0.01, 1.1, 50), 0);
    double ed, eb2;
    assert_int_equal(fl_dp_accountant_epsilon(d, 1e-5, &ed, NULL), 0);
    assert_int_equal(fl_dp_accountant_epsilon(b, 1e-5, &eb2, NULL), 0);
    assert_true(ed > eb);
    assert_true(eb2 == eb);

    /* bad steps leave the accountant unchanged */
    assert_int_equal(fl_dp_accountant_add(b, 0.01, 1.1, 0), FL_EINVAL);
    assert_int_equal(fl_dp_accountant_add(b, 2.0, 1.1, 1), FL_EINVAL);
    assert_int_equal(fl_dp_accountant_add(b, 0.01, -1.0, 1), FL_EINVAL);
    assert_int_equal(fl_dp_accountant_epsilon(b, 1e-5, &eb2, NULL), 0);
    assert_true(eb2 == eb);
    assert_int_equal(fl_dp_accountant_steps(b), 50);

    fl_dp_accountant_destroy(&a);
    fl_dp_accountant_destroy(&b);
    fl_dp_accountant_destroy(&c);
    fl_dp_accountant_destroy(&d);
}

static void
test_accountant_new_errors(void **state)
{
    (void)state;
    uint32_t dup[] = {2, 5, 5};
    assert_null(fl_dp_accountant_new(dup, 3));
    assert_non_null(strstr(fl_errmsg(), "order 5 given twice"));
    uint32_t one[] = {1, 5};
    assert_null(fl_dp_accountant_new(one, 2));
    uint32_t big[] = {2, FL_DP_ORDER_MAX + 1};
    assert_null(fl_dp_accountant_new(big, 2));
    uint32_t ok[] = {7};
    assert_null(fl_dp_accountant_new(ok, 0));
    assert_null(fl_dp_accountant_new(ok, FL_DP_ORDERS_MAX + 1));
    fl_dp_accountant_t *a = fl_dp_accountant_new(ok, 1);
    assert_non_null(a);
    fl_dp_accountant_destroy(&a);
    size_t n = 0;
    const uint32_t *def = fl_dp_default_orders(&n);
    assert_int_equal(n, 66);
    assert_int_equal(def[0], 2);
    assert_int_equal(def[61], 63);
    assert_int_equal(def[62], 128);
    assert_int_equal(def[65], 1024);
}

static void
test_would_exceed(void **state)
{
    (void)state;
    fl_dp_accountant_t *a = fl_dp_accountant_new(NULL, 0);
    assert_int_equal(fl_dp_accountant_add(a, 0.01, 1.1, 9999), 0);
    double before = 0;
    assert_int_equal(fl_dp_accountant_epsilon(a, 1e-5, &before, NULL), 0);
    bool ex = true;
    double after = 0;
    /* After the 10000th round epsilon is 5.654308 (the table's first row). */
    assert_int_equal(fl_dp_would_exceed(a, 0.01, 1.1, 1, 1e-5, 5.7, &ex, &after), 0);
    assert_false(ex);
    assert_rel(after, 5.65430800014949, 1e-9);
    assert_int_equal(fl_dp_would_exceed(a, 0.01, 1.1, 1, 1e-5, 5.654, &ex, NULL), 0);
    assert_true(ex);
    assert_true(before < 5.654); /* the round before still fits */
    /* unchanged by the checks */
    double again = 0;
    assert_int_equal(fl_dp_accountant_epsilon(a, 1e-5, &again, NULL), 0);
    assert_true(again == before);
    assert_int_equal(fl_dp_accountant_steps(a), 9999);
    /* no noise: always exceeds */
    assert_int_equal(fl_dp_would_exceed(a, 0.01, 0.0, 1, 1e-5, 1e9, &ex, &after), 0);
    assert_true(ex);
    assert_true(isinf(after));
    /* errors */
    ex = false;
    assert_int_equal(fl_dp_would_exceed(a, 0.01, 1.1, 1, 1e-5, 0.0, &ex, NULL), FL_EINVAL);
    assert_int_equal(fl_dp_would_exceed(a, 0.01, 1.1, 1, 1e-5, NAN, &ex, NULL), FL_EINVAL);
    assert_int_equal(fl_dp_would_exceed(a, 0.01, 1.1, 1, 0.0, 5.0, &ex, NULL), FL_EINVAL);
    assert_int_equal(fl_dp_would_exceed(a, 1.01, 1.1, 1, 1e-5, 5.0, &ex, NULL), FL_EINVAL);
    assert_int_equal(fl_dp_would_exceed(a, 0.01, 1.1, 0, 1e-5, 5.0, &ex, NULL), FL_EINVAL);
    assert_false(ex);
    fl_dp_accountant_destroy(&a);
}

static void
test_save_load(void **state)
{
    (void)state;
    fl_dp_accountant_t *a = fl_dp_accountant_new(NULL, 0);
    assert_int_equal(fl_dp_accountant_add(a, 256.0 / 60000.0, 1.1, 14062), 0);
    assert_int_equal(fl_dp_accountant_add(a, 0.3, 0.7, 3), 0);
    char *text = fl_dp_accountant_save(a);
    assert_non_null(text);
    assert_true(strncmp(text, "covey-rdp 1\nsteps 14065\norders 66\n2 ", 36) == 0);
    fl_dp_accountant_t *b = NULL;
    assert_int_equal(fl_dp_accountant_load(text, &b), 0);
    assert_non_null(b);
    size_t na, nb;
    const uint32_t *oa = fl_dp_accountant_orders(a, &na);
    const uint32_t *ob = fl_dp_accountant_orders(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(oa, ob, na * sizeof *oa);
    /* bit-exact: 17 significant digits round-trip a double */
    assert_memory_equal(fl_dp_accountant_rdp(a), fl_dp_accountant_rdp(b), na * sizeof(double));
    assert_int_equal(fl_dp_accountant_steps(b), 14065);
    /* and it continues where it left off */
    assert_int_equal(fl_dp_accountant_add(a, 0.01, 1.0, 1), 0);
    assert_int_equal(fl_dp_accountant_add(b, 0.01, 1.0, 1), 0);
    double ea, eb;
    assert_int_equal(fl_dp_accountant_epsilon(a, 1e-5, &ea, NULL), 0);
    assert_int_equal(fl_dp_accountant_epsilon(b, 1e-5, &eb, NULL), 0);
    assert_true(ea == eb);
    free(text);
    fl_dp_accountant_destroy(&b);

    /* infinite loss round-trips */
    assert_int_equal(fl_dp_accountant_add(a, 0.1, 0.0, 1), 0);
    text = fl_dp_accountant_save(a);
    assert_int_equal(fl_dp_accountant_load(text, &b), 0);
    assert_true(isinf(fl_dp_accountant_rdp(b)[0]));
    free(text);
    fl_dp_accountant_destroy(&b);
    fl_dp_accountant_destroy(&a);
}

static void
test_load_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "covey-rdp 2\nsteps 1\norders 1\n2 0.5\n",
        "covey-rdp 1\nsteps -1\norders 1\n2 0.5\n",
        "covey-rdp 1\nsteps 1\norders 0\n",
        "covey-rdp 1\nsteps 1\norders 513\n2 0.5\n",
        "covey-rdp 1\nsteps 1\norders 2\n2 0.5\n",           /* truncated */
        "covey-rdp 1\nsteps 1\norders 1\n2 0.5",              /* no final newline */
        "covey-rdp 1\nsteps 1\norders 1\n1 0.5\n",            /* order 1 */
        "covey-rdp 1\nsteps 1\norders 1\n4097 0.5\n",         /* order too large */
        "covey-rdp 1\nsteps 1\norders 2\n3 0.5\n3 0.6\n",     /* duplicate */
        "covey-rdp 1\nsteps 1\norders 2\n3 0.5\n2 0.6\n",     /* descending */
        "covey-rdp 1\nsteps 1\norders 1\n2 -0.5\n",           /* negative */
        "covey-rdp 1\nsteps 1\norders 1\n2 nan\n",            /* NaN */
        "covey-rdp 1\nsteps 1\norders 1\n2 1e999\n",          /* overflow */
        "covey-rdp 1\nsteps 1\norders 1\n2 0x1p3\n",          /* hex float */
        "covey-rdp 1\nsteps 1\norders 1\n2  0.5\n",           /* extra space */
        "covey-rdp 1\nsteps 1\norders 1\n2 0.5 x\n",          /* trailing field */
        "covey-rdp 1\nsteps 1\norders 1\n2 0.5\nextra",       /* trailing text */
        "covey-rdp 1\nsteps 99999999999999999999\norders 1\n2 0.5\n",
        "covey-rdp 1\norders 1\nsteps 1\n2 0.5\n",            /* lines swapped */
    };
    fl_dp_accountant_t *sentinel = (fl_dp_accountant_t *)(uintptr_t)0x1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fl_dp_accountant_t *out = sentinel;
        int rc = fl_dp_accountant_load(bad[i], &out);
        if (rc != FL_EFORMAT)
            print_error("case %zu: rc %d for '%s'\n", i, rc, bad[i]);
        assert_int_equal(rc, FL_EFORMAT);
        assert_true(out == sentinel);
        assert_true(strlen(fl_errmsg()) > 0);
    }
    /* oversized input refused before parsing */
    size_t big = FL_DP_STATE_MAX + 10;
    char *huge = fl_xmalloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = '\0';
    fl_dp_accountant_t *out = sentinel;
    assert_int_equal(fl_dp_accountant_load(huge, &out), FL_EFORMAT);
    assert_true(out == sentinel);
    free(huge);
    /* a minimal valid state */
    assert_int_equal(fl_dp_accountant_load("covey-rdp 1\nsteps 0\norders 1\n7 inf\n", &out), 0);
    assert_true(isinf(fl_dp_accountant_rdp(out)[0]));
    fl_dp_accountant_destroy(&out);
}

/* ------------------------------------------------------------------------ */
/* Clipping                                                                  */
/* ------------------------------------------------------------------------ */

static void
test_norm_and_clip(void **state)
{
    (void)state;
    float v[] = {3.0f, -4.0f, 0.0f};
    assert_true(fl_dp_l2_norm(v, 3) == 5.0);
    double nr = 0;
    assert_int_equal(fl_dp_clip(v, 3, 1.0, &nr), 0);
    assert_true(nr == 5.0);
    assert_float_equal(v[0], 0.6f, 1e-6);
    assert_float_equal(v[1], -0.8f, 1e-6);
    assert_true(v[2] == 0.0f);
    assert_true(fl_dp_l2_norm(v, 3) <= 1.0); /* never above S after rounding */

    /* inside the ball: bit-for-bit untouched */
    float w[] = {0.1f, 0.2f, -0.3f};
    float w0[3];
    memcpy(w0, w, sizeof w);
    assert_int_equal(fl_dp_clip(w, 3, 1.0, NULL), 0);
    assert_memory_equal(w, w0, sizeof w);

    /* the zero vector */
    float z[4] = {0};
    assert_int_equal(fl_dp_clip(z, 4, 1.0, &nr), 0);
    assert_true(nr == 0.0);

    /* many elements: double accumulation. 1e6 * 0.1f^2 summed in float
     * would drift by ~1e-3 relative; exact is 1000 * (double)0.1f. */
    size_t n = 1000000;
    float *big = fl_xmalloc(n * sizeof *big);
    for (size_t i = 0; i < n; i++)
        big[i] = 0.1f;
    assert_rel(fl_dp_l2_norm(big, n), 1000.0 * (double)0.1f, 1e-10);
    /* clipped norm lands just under S for many sizes */
    assert_int_equal(fl_dp_clip(big, n, 3.0, NULL), 0);
    double after = fl_dp_l2_norm(big, n);
    assert_true(after <= 3.0);
    assert_rel(after, 3.0, 1e-6);
    free(big);

    /* errors: x untouched */
    float bad[] = {1.0f, NAN, 2.0f};
    assert_int_equal(fl_dp_clip(bad, 3, 1.0, NULL), FL_ENONFINITE);
    assert_true(bad[0] == 1.0f && bad[2] == 2.0f);
    float inf[] = {1.0f, INFINITY};
    assert_int_equal(fl_dp_clip(inf, 2, 1.0, NULL), FL_ENONFINITE);
    assert_true(inf[0] == 1.0f);
    float ok[] = {3.0f, 4.0f};
    assert_int_equal(fl_dp_clip(ok, 2, 0.0, NULL), FL_EINVAL);
    assert_int_equal(fl_dp_clip(ok, 2, -1.0, NULL), FL_EINVAL);
    assert_int_equal(fl_dp_clip(ok, 2, NAN, NULL), FL_EINVAL);
    assert_int_equal(fl_dp_clip(ok, 2, INFINITY, NULL), FL_EINVAL);
    assert_true(ok[0] == 3.0f && ok[1] == 4.0f);
}

static void
test_clip_segments(void **state)
{
    (void)state;
    /* layer 0: (3, 4) clipped to 1; layer 1: (0.5) inside 2; layer 2: (0, 12, 5) to 6.5 */
    float x[] = {3.0f, 4.0f, 0.5f, 0.0f, 12.0f, 5.0f};
    size_t len[] = {2, 1, 3};
    double clip[] = {1.0, 2.0, 6.5};
    double norms[3];
    assert_int_equal(fl_dp_clip_segments(x, len, clip, 3, norms), 0);
    assert_true(norms[0] == 5.0 && norms[1] == 0.5 && norms[2] == 13.0);
    assert_float_equal(x[0], 0.6f, 1e-6);
    assert_float_equal(x[1], 0.8f, 1e-6);
    assert_true(x[2] == 0.5f);
    assert_float_equal(x[4], 6.0f, 1e-5);
    assert_float_equal(x[5], 2.5f, 1e-5);
    assert_true(fl_dp_l2_norm(x, 6) <= fl_dp_per_layer_bound(clip, 3));
    assert_rel(fl_dp_per_layer_bound(clip, 3), sqrt(1.0 + 4.0 + 42.25), 1e-15);

    /* a bad later segment leaves every segment untouched */
    float y[] = {3.0f, 4.0f, NAN};
    size_t len2[] = {2, 1};
    double clip2[] = {1.0, 1.0};
    assert_int_equal(fl_dp_clip_segments(y, len2, clip2, 2, NULL), FL_ENONFINITE);
    assert_true(y[0] == 3.0f && y[1] == 4.0f);
    float u[] = {3.0f, 4.0f, 1.0f};
    double clip3[] = {1.0, 0.0};
    assert_int_equal(fl_dp_clip_segments(u, len2, clip3, 2, NULL), FL_EINVAL);
    assert_true(u[0] == 3.0f && u[1] == 4.0f);
}

/* ------------------------------------------------------------------------ */
/* Noise                                                                     */
/* ------------------------------------------------------------------------ */

/* Sample moments of n draws: mean within 5 standard errors of 0, variance
 * of 1, fourth moment of 3, two-sided 1.96 tail of 5%. */
static void
s_check_standard_normal(const double *g, size_t n)
{
    double s1 = 0, s2 = 0, s4 = 0, tail = 0;
    for (size_t i = 0; i < n; i++) {
        s1 += g[i];
        s2 += g[i] * g[i];
        s4 += g[i] * g[i] * g[i] * g[i];
        tail += fabs(g[i]) > 1.959964;
    }
    double dn = (double)n;
    assert_true(fabs(s1 / dn) < 5.0 / sqrt(dn));
    assert_true(fabs(s2 / dn - 1.0) < 5.0 * sqrt(2.0 / dn));
    assert_true(fabs(s4 / dn - 3.0) < 5.0 * sqrt(96.0 / dn));
    assert_true(fabs(tail / dn - 0.05) < 5.0 * sqrt(0.05 * 0.95 / dn));
}

static void
test_gaussian(void **state)
{
    (void)state;
    size_t n = 200001; /* odd: the last Box-Muller pair is half used */
    double *g = fl_xmalloc(n * sizeof *g);
    double *h = fl_xmalloc(n * sizeof *h);

    /* CSPRNG: right distribution, and two runs differ */
    fl_dp_gaussian(g, n, NULL);
    s_check_standard_normal(g, n);
    fl_dp_gaussian(h, n, NULL);
    assert_true(memcmp(g, h, n * sizeof *g) != 0);

    /* injected fl_rng: reproducible and also N(0,1) */
    fl_rng_t r1, r2;
    fl_rng_seed(&r1, 42, 7);
    fl_rng_seed(&r2, 42, 7);
    fl_dp_gaussian(g, n, &r1);
    fl_dp_gaussian(h, n, &r2);
    assert_memory_equal(g, h, n * sizeof *g);
    s_check_standard_normal(g, n);
    free(g);
    free(h);

    /* fl_dp_add_noise: stddev scales, 0 is the identity */
    float x[4] = {1, 2, 3, 4};
    assert_int_equal(fl_dp_add_noise(x, 4, 0.0, NULL), 0);
    assert_true(x[0] == 1 && x[1] == 2 && x[2] == 3 && x[3] == 4);
    assert_int_equal(fl_dp_add_noise(x, 4, -1.0, NULL), FL_EINVAL);
    assert_int_equal(fl_dp_add_noise(x, 4, NAN, NULL), FL_EINVAL);
    size_t m = 100000;
    float *y = fl_xcalloc(m, sizeof *y);
    fl_rng_seed(&r1, 3, 0);
    assert_int_equal(fl_dp_add_noise(y, m, 2.5, &r1), 0);
    double s2 = 0;
    for (size_t i = 0; i < m; i++)
        s2 += (double)y[i] * y[i];
    assert_true(fabs(sqrt(s2 / (double)m) - 2.5) < 2.5 * 5.0 * sqrt(0.5 / (double)m));
    free(y);
}

static void
test_noisy_mean_fixed_denominator(void **state)
{
    (void)state;
    /* Three clipped updates summed; q N = 10 expected agents. Without noise
     * the estimator divides by 10, NOT by the 3 that reported. */
    float sum[] = {0.3f, -0.6f, 1.5f};
    float out[3];
    assert_int_equal(fl_dp_noisy_mean(sum, 3, 0.0, 1.0, 10.0, NULL, out), 0);
    assert_float_equal(out[0], 0.03f, 1e-8);
    assert_float_equal(out[1], -0.06f, 1e-8);
    assert_float_equal(out[2], 0.15f, 1e-8);

    /* With noise: out - sum/m has stddev z S / m. */
    size_t n = 100000;
    float *s = fl_xmalloc(n * sizeof *s);
    float *o = fl_xmalloc(n * sizeof *o);
    for (size_t i = 0; i < n; i++)
        s[i] = (float)(i % 7) - 3.0f;
    fl_rng_t rng;
    fl_rng_seed(&rng, 11, 0);
    double z = 1.1, S = 0.5, m = 20.0;
    assert_int_equal(fl_dp_noisy_mean(s, n, z, S, m, &rng, o), 0);
    double e1 = 0, e2 = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)o[i] - (double)s[i] / m;
        e1 += e;
        e2 += e * e;
    }
    double sd = z * S / m;
    assert_true(fabs(e1 / (double)n) < 5.0 * sd / sqrt((double)n));
    assert_true(fabs(sqrt(e2 / (double)n) / sd - 1.0) < 5.0 * sqrt(0.5 / (double)n));

    /* in place (sum == out) with the same seed gives the same result */
    fl_rng_seed(&rng, 11, 0);
    assert_int_equal(fl_dp_noisy_mean(s, n, z, S, m, &rng, s), 0);
    assert_memory_equal(s, o, n * sizeof *s);
    free(s);
    free(o);

    /* errors leave out untouched */
    float keep[3] = {9, 9, 9};
    assert_int_equal(fl_dp_noisy_mean(sum, 3, 1.0, 1.0, 0.0, NULL, keep), FL_EINVAL);
    assert_int_equal(fl_dp_noisy_mean(sum, 3, 1.0, 0.0, 5.0, NULL, keep), FL_EINVAL);
    assert_int_equal(fl_dp_noisy_mean(sum, 3, -1.0, 1.0, 5.0, NULL, keep), FL_EINVAL);
    assert_int_equal(fl_dp_noisy_mean(sum, 3, 1.0, 1.0, INFINITY, NULL, keep), FL_EINVAL);
    float nan[] = {1.0f, NAN, 0.0f};
    assert_int_equal(fl_dp_noisy_mean(nan, 3, 1.0, 1.0, 5.0, NULL, keep), FL_ENONFINITE);
    assert_true(keep[0] == 9 && keep[1] == 9 && keep[2] == 9);
}

/* ------------------------------------------------------------------------ */
/* Adaptive clipping                                                         */
/* ------------------------------------------------------------------------ */

static void
test_adaclip_sign(void **state)
{
    (void)state;
    assert_true(fl_dp_adaclip_bit(0.5, 1.0) == 0.5);  /* unclipped counts +1/2 */
    assert_true(fl_dp_adaclip_bit(1.0, 1.0) == 0.5);  /* norm == C is not clipped */
    assert_true(fl_dp_adaclip_bit(1.5, 1.0) == -0.5); /* clipped */

    /* Near-noiseless bits (sigma_b tiny): all m = 10 updates UNCLIPPED ->
     * b~ = 1 -> C shrinks by exactly exp(-eta (1 - gamma)). */
    fl_dp_adaclip_t st;
    assert_int_equal(fl_dp_adaclip_init(&st, 1.0, 0.5, 0.2, 1e-12, 10.0), 0);
    fl_rng_t rng;
    fl_rng_seed(&rng, 5, 0);
    double frac = -1, sum = 0;
    for (int k = 0; k < 10; k++)
        sum += fl_dp_adaclip_bit(0.1, st.clip);
    assert_int_equal(fl_dp_adaclip_update(&st, sum, &rng, &frac), 0);
    assert_rel(frac, 1.0, 1e-9);
    assert_rel(st.clip, exp(-0.1), 1e-9);
    assert_true(st.clip < 1.0); /* DECREASES (Flower would increase it) */

    /* All clipped -> b~ = 0 -> C grows by exp(eta gamma). */
    assert_int_equal(fl_dp_adaclip_init(&st, 1.0, 0.5, 0.2, 1e-12, 10.0), 0);
    sum = 0;
    for (int k = 0; k < 10; k++)
        sum += fl_dp_adaclip_bit(5.0, st.clip);
    assert_int_equal(fl_dp_adaclip_update(&st, sum, &rng, &frac), 0);
    assert_true(fabs(frac) < 1e-9);
    assert_rel(st.clip, exp(0.1), 1e-9);
    assert_true(st.clip > 1.0);

    /* Exactly gamma unclipped: no move. */
    assert_int_equal(fl_dp_adaclip_init(&st, 2.0, 0.3, 0.2, 1e-12, 10.0), 0);
    sum = 3 * 0.5 + 7 * -0.5;
    assert_int_equal(fl_dp_adaclip_update(&st, sum, &rng, &frac), 0);
    assert_rel(frac, 0.3, 1e-9);
    assert_rel(st.clip, 2.0, 1e-9);
}

/* With the default noise (sigma_b = m/20), C converges from either side to
 * the gamma quantile of the update norms. */
static void
test_adaclip_converges(void **state)
{
    (void)state;
    enum { M = 100, ROUNDS = 400 };
    double norms[M];
    for (int k = 0; k < M; k++)
        norms[k] = 1.0 + (double)k; /* median 50.5; 40% / 60% quantiles 41 / 61 */
    double starts[] = {FL_DP_ADACLIP_C0, 1e4};
    fl_rng_t rng;
    fl_rng_seed(&rng, 2024, 1);
    for (int s = 0; s < 2; s++) {
        fl_dp_adaclip_t st;
        assert_int_equal(fl_dp_adaclip_init(&st, starts[s], FL_DP_ADACLIP_GAMMA,
                                             FL_DP_ADACLIP_ETA, 0.0, (double)M),
                         0);
        assert_rel(st.sigma_b, 5.0, 1e-15); /* default m/20 */
        double avg = 0;
        for (int r = 0; r < ROUNDS; r++) {
            double sum = 0;
            for (int k = 0; k < M; k++)
                sum += fl_dp_adaclip_bit(norms[k], st.clip);
            double before = st.clip;
            assert_int_equal(fl_dp_adaclip_update(&st, sum, &rng, NULL), 0);
            if (r == 0) /* first move is toward the quantile */
                assert_true(s == 0 ? st.clip > before : st.clip < before);
            if (r >= ROUNDS - 100)
                avg += st.clip / 100.0;
        }
        assert_true(avg > 41.0 && avg < 61.0);
    }
}

static void
test_adaclip_value_z_and_errors(void **state)
{
    (void)state;
    double zd = 0;
    assert_int_equal(fl_dp_adaclip_value_z(1.0, 5.0, &zd), 0);
    assert_rel(zd, 1.0 / sqrt(1.0 - 1.0 / 100.0), 1e-15);
    assert_true(zd > 1.0); /* value noise slightly larger than z */
    assert_int_equal(fl_dp_adaclip_value_z(1.0, 0.5, &zd), FL_EINVAL); /* z == 2 sigma_b */
    assert_non_null(strstr(fl_errmsg(), "2*sigma_b"));
    assert_int_equal(fl_dp_adaclip_value_z(3.0, 1.0, &zd), FL_EINVAL);
    assert_int_equal(fl_dp_adaclip_value_z(0.0, 1.0, &zd), FL_EINVAL);
    assert_int_equal(fl_dp_adaclip_value_z(1.0, NAN, &zd), FL_EINVAL);

    fl_dp_adaclip_t st = {0};
    assert_int_equal(fl_dp_adaclip_init(&st, 0.0, 0.5, 0.2, 0, 10), FL_EINVAL);
    assert_int_equal(fl_dp_adaclip_init(&st, 0.1, 0.0, 0.2, 0, 10), FL_EINVAL);
    assert_int_equal(fl_dp_adaclip_init(&st, 0.1, 1.0, 0.2, 0, 10), FL_EINVAL);
    assert_int_equal(fl_dp_adaclip_init(&st, 0.1, 0.5, 0.0, 0, 10), FL_EINVAL);
    assert_int_equal(fl_dp_adaclip_init(&st, 0.1, 0.5, 0.2, 0, 0), FL_EINVAL);
    assert_int_equal(fl_dp_adaclip_init(&st, 0.1, 0.5, 0.2, INFINITY, 10), FL_EINVAL);
    assert_int_equal(fl_dp_adaclip_init(&st, 0.1, 0.5, 0.2, 0, 10), 0);
    double c = st.clip;
    assert_int_equal(fl_dp_adaclip_update(&st, NAN, NULL, NULL), FL_EINVAL);
    assert_true(st.clip == c);
    /* CSPRNG path runs */
    assert_int_equal(fl_dp_adaclip_update(&st, 5.0, NULL, NULL), 0);
    assert_true(st.clip > 0.0 && isfinite(st.clip));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_table),
        cmocka_unit_test(test_unit_checks),
        cmocka_unit_test(test_constant_rdp_conversion),
        cmocka_unit_test(test_opacus_docstring),
        cmocka_unit_test(test_special_cases),
        cmocka_unit_test(test_kl_rules),
        cmocka_unit_test(test_conversion_errors),
        cmocka_unit_test(test_accountant_composition),
        cmocka_unit_test(test_accountant_new_errors),
        cmocka_unit_test(test_would_exceed),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_load_malformed),
        cmocka_unit_test(test_norm_and_clip),
        cmocka_unit_test(test_clip_segments),
        cmocka_unit_test(test_gaussian),
        cmocka_unit_test(test_noisy_mean_fixed_denominator),
        cmocka_unit_test(test_adaclip_sign),
        cmocka_unit_test(test_adaclip_converges),
        cmocka_unit_test(test_adaclip_value_z_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
