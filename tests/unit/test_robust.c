/*
 * test_robust.c — unit tests of fl_robust: rule parsing and the secure-
 * aggregation guard, hand-computed examples of each rule, median and trimmed
 * mean against a sort-based reference on awkward inputs, Krum against a
 * brute-force double-precision reference across Gram blocks, poisoning by 20%
 * scaled or sign-flipped updates (robust rules stay near the honest mean,
 * the plain mean does not), streaming adds, and every rejection leaving the
 * collector unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_rng.h"
#include "fl_robust.h"
#include "fl_util.h"

static fl_robust_config_t
s_cfg(const char *spec)
{
    fl_robust_config_t c;
    int rc = fl_robust_parse(spec, &c);
    if (rc != 0)
        print_error("parse '%s': %s\n", spec, fl_errmsg());
    assert_int_equal(rc, 0);
    return c;
}

static fl_robust_t *
s_new(const char *spec, size_t d, size_t max_n)
{
    fl_robust_config_t c = s_cfg(spec);
    fl_robust_t *r = fl_robust_new(&c, d, max_n);
    assert_non_null(r);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

static void
test_parse(void **state)
{
    (void)state;
    fl_robust_config_t c;
    char buf[64];
    c = s_cfg("median");
    assert_int_equal(c.rule, FL_ROBUST_MEDIAN);
    c = s_cfg("none");
    assert_int_equal(c.rule, FL_ROBUST_NONE);
    c = s_cfg("fedavg");
    assert_int_equal(c.rule, FL_ROBUST_NONE);
    c = s_cfg("trimmed_mean");
    assert_int_equal(c.rule, FL_ROBUST_TRIMMED_MEAN);
    assert_true(c.beta == FL_ROBUST_BETA_DEFAULT);
    c = s_cfg("trimmed_mean:0.1");
    assert_true(c.beta == 0.1);
    assert_string_equal(fl_robust_format(&c, buf, sizeof buf), "trimmed_mean:0.1");
    c = s_cfg("trimmed_mean:0");
    assert_true(c.beta == 0.0);
    c = s_cfg("krum");
    assert_int_equal(c.rule, FL_ROBUST_KRUM);
    assert_int_equal(c.f, 0);
    c = s_cfg("krum:2");
    assert_int_equal(c.f, 2);
    assert_string_equal(fl_robust_format(&c, buf, sizeof buf), "krum:2");
    c = s_cfg("multikrum:1");
    assert_int_equal(c.rule, FL_ROBUST_MULTIKRUM);
    assert_int_equal(c.f, 1);
    assert_int_equal(c.m, 0);
    assert_string_equal(fl_robust_format(&c, buf, sizeof buf), "multikrum:1");
    c = s_cfg("multikrum:1:3");
    assert_int_equal(c.m, 3);
    assert_string_equal(fl_robust_format(&c, buf, sizeof buf), "multikrum:1:3");
    c = s_cfg("norm_bound:2.5");
    assert_int_equal(c.rule, FL_ROBUST_NORM_BOUND);
    assert_true(c.bound == 2.5);
    assert_string_equal(fl_robust_format(&c, buf, sizeof buf), "norm_bound:2.5");
    assert_string_equal(fl_robust_format(&(fl_robust_config_t){.rule = FL_ROBUST_MEDIAN}, buf,
                                         sizeof buf),
                        "median");

    static const struct {
        const char *spec, *needle;
    } bad[] = {
        {"", "empty"},
        {"mean", "unknown robust aggregation rule 'mean'"},
        {"Median", "unknown"},
        {"median:3", "too many"},
        {"none:1", "too many"},
        {"trimmed_mean:0.5", "beta=0.5 outside [0, 0.5)"},
        {"trimmed_mean:0.7", "outside"},
        {"trimmed_mean:-0.1", "outside"},
        {"trimmed_mean:nan", "finite"},
        {"trimmed_mean:abc", "trimmed_mean beta"},
        {"trimmed_mean:", "trimmed_mean beta"},
        {"trimmed_mean:0.1:2", "too many"},
        {"krum:-1", "krum f"},
        {"krum:x", "krum f"},
        {"krum:1:2", "too many"},
        {"krum:1000000", "above"},
        {"multikrum:1:0", "m must be >= 1"},
        {"multikrum:1:2:3", "too many"},
        {"multikrum:a:2", "multikrum f"},
        {"norm_bound", "needs its bound"},
        {"norm_bound:0", "M=0"},
        {"norm_bound:-1", "must be finite and > 0"},
        {"norm_bound:inf", "finite"},
        {"norm_bound:1:2", "needs its bound"},
        {"a:b:c:d:e", "too many"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fl_robust_config_t keep = {.rule = FL_ROBUST_KRUM, .f = 77};
        int rc = fl_robust_parse(bad[i].spec, &keep);
        if (rc != FL_EINVAL || strstr(fl_errmsg(), bad[i].needle) == NULL)
            print_error("'%s': rc %d, '%s'\n", bad[i].spec, rc, fl_errmsg());
        assert_int_equal(rc, FL_EINVAL);
        assert_non_null(strstr(fl_errmsg(), bad[i].needle));
        assert_true(keep.rule == FL_ROBUST_KRUM && keep.f == 77); /* untouched */
    }
    assert_int_equal(fl_robust_parse(NULL, &c), FL_EINVAL);
    char longspec[200];
    memset(longspec, 'k', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = '\0';
    assert_int_equal(fl_robust_parse(longspec, &c), FL_EINVAL);
}

static void
test_secagg_guard(void **state)
{
    (void)state;
    static const char *const rules[] = {"median", "trimmed_mean:0.2", "krum:1", "multikrum:1:2",
                                        "norm_bound:1"};
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        fl_robust_config_t c = s_cfg(rules[i]);
        assert_int_equal(fl_robust_check_compatible(&c, false), 0);
        assert_int_equal(fl_robust_check_compatible(&c, true), FL_EINVAL);
        char want[200];
        snprintf(want, sizeof want,
                 "robust aggregation (%s) cannot be combined with secure aggregation, "
                 "which hides individual updates",
                 fl_robust_rule_name(c.rule));
        assert_string_equal(fl_errmsg(), want);
    }
    fl_robust_config_t c = s_cfg("median");
    assert_int_equal(fl_robust_check_compatible(&c, true), FL_EINVAL);
    assert_string_equal(fl_errmsg(), "robust aggregation (median) cannot be combined with "
                                     "secure aggregation, which hides individual updates");
    c = s_cfg("none");
    assert_int_equal(fl_robust_check_compatible(&c, true), 0);
}

/* ------------------------------------------------------------------------ */
/* Hand-computed examples                                                    */
/* ------------------------------------------------------------------------ */

static const float s_u5[5][3] = {
    {1, 5, -1}, {2, 4, -2}, {3, 3, -3}, {4, 2, -4}, {100, 1, 50},
};

static void
s_add_rows(fl_robust_t *r, const float (*u)[3], size_t n)
{
    for (size_t k = 0; k < n; k++)
        assert_int_equal(fl_robust_add(r, u[k], 3, 1.0), 0);
}

static void
test_median_by_hand(void **state)
{
    (void)state;
    fl_robust_t *r = s_new("median", 3, 8);
    float out[3];
    size_t nsel = 99;
    /* odd n = 5: columns {1,2,3,4,100}, {5,4,3,2,1}, {-1,-2,-3,-4,50} */
    s_add_rows(r, s_u5, 5);
    assert_int_equal(fl_robust_result(r, out, NULL, &nsel), 0);
    assert_int_equal(nsel, 0);
    assert_true(out[0] == 3.0f && out[1] == 3.0f && out[2] == -2.0f);
    /* result is repeatable (the collector is not consumed) */
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_true(out[0] == 3.0f && out[1] == 3.0f && out[2] == -2.0f);
    /* even n = 4: mean of the two middle values */
    fl_robust_reset(r);
    assert_int_equal(fl_robust_count(r), 0);
    s_add_rows(r, s_u5, 4);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_true(out[0] == 2.5f && out[1] == 3.5f && out[2] == -2.5f);
    /* n = 1: the update itself */
    fl_robust_reset(r);
    s_add_rows(r, s_u5 + 4, 1);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_memory_equal(out, s_u5[4], sizeof out);
    fl_robust_destroy(&r);
    assert_null(r);
    fl_robust_destroy(&r);
    fl_robust_destroy(NULL);
}

static void
test_trimmed_mean_by_hand(void **state)
{
    (void)state;
    float out[3];
    /* beta 0.2, n 5: drop 1 at each end */
    fl_robust_t *r = s_new("trimmed_mean:0.2", 3, 5);
    s_add_rows(r, s_u5, 5);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_true(out[0] == 3.0f && out[1] == 3.0f && out[2] == -2.0f);
    fl_robust_destroy(&r);
    /* beta 0.39: floor(1.95) = 1, same */
    r = s_new("trimmed_mean:0.39", 3, 5);
    s_add_rows(r, s_u5, 5);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_true(out[0] == 3.0f && out[1] == 3.0f && out[2] == -2.0f);
    /* beta 0.4 -> floor(2.0) = 2: the median */
    fl_robust_destroy(&r);
    r = s_new("trimmed_mean:0.4", 3, 5);
    s_add_rows(r, s_u5, 5);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_true(out[0] == 3.0f && out[1] == 3.0f && out[2] == -2.0f);
    fl_robust_destroy(&r);
    /* beta 0.1 -> floor(0.5) = 0: the plain mean (110/5, 15/5, 40/5) */
    r = s_new("trimmed_mean:0.1", 3, 5);
    s_add_rows(r, s_u5, 5);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_true(out[0] == 22.0f && out[1] == 3.0f && out[2] == 8.0f);
    /* n = 4, beta 0.25 -> drop 1: {2,3} {3,4} {-2,-3} */
    fl_robust_destroy(&r);
    r = s_new("trimmed_mean:0.25", 3, 5);
    s_add_rows(r, s_u5, 4);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_true(out[0] == 2.5f && out[1] == 3.5f && out[2] == -2.5f);
    fl_robust_destroy(&r);
}

/*
 * Krum on the line: 0, 1, 2.5, 3, 100 with f = 1 (n - f - 2 = 2 neighbours).
 * Scores: 0 -> 1 + 6.25 = 7.25; 1 -> 1 + 2.25 = 3.25; 2.5 -> 0.25 + 2.25 =
 * 2.5; 3 -> 0.25 + 4 = 4.25; 100 -> 97^2 + 97.5^2. Order: 2.5, 1, 3, 0, 100.
 */
static void
test_krum_by_hand(void **state)
{
    (void)state;
    static const float pts[5] = {0.0f, 1.0f, 2.5f, 3.0f, 100.0f};
    static const double w[5] = {1, 2, 1, 1, 1};
    float out[1];
    size_t sel[5], nsel = 0;

    fl_robust_t *r = s_new("krum:1", 1, 5);
    for (int k = 0; k < 5; k++)
        assert_int_equal(fl_robust_add(r, &pts[k], 1, w[k]), 0);
    assert_int_equal(fl_robust_result(r, out, sel, &nsel), 0);
    assert_int_equal(nsel, 1);
    assert_int_equal(sel[0], 2);
    assert_true(out[0] == 2.5f); /* the update itself, not an average */
    fl_robust_destroy(&r);

    /* Multi-Krum m = 3: weighted mean of 2.5 (w 1), 1 (w 2), 3 (w 1) */
    r = s_new("multikrum:1:3", 1, 5);
    for (int k = 0; k < 5; k++)
        assert_int_equal(fl_robust_add(r, &pts[k], 1, w[k]), 0);
    assert_int_equal(fl_robust_result(r, out, sel, &nsel), 0);
    assert_int_equal(nsel, 3);
    assert_int_equal(sel[0], 2);
    assert_int_equal(sel[1], 1);
    assert_int_equal(sel[2], 3);
    assert_float_equal(out[0], 7.5f / 4.0f, 1e-7);
    fl_robust_destroy(&r);

    /* Multi-Krum default m = n - f = 4: everything but 100, weighted */
    r = s_new("multikrum:1", 1, 5);
    for (int k = 0; k < 5; k++)
        assert_int_equal(fl_robust_add(r, &pts[k], 1, w[k]), 0);
    assert_int_equal(fl_robust_result(r, out, sel, &nsel), 0);
    assert_int_equal(nsel, 4);
    assert_int_equal(sel[3], 0);
    assert_float_equal(out[0], (2.5f + 2.0f + 3.0f + 0.0f) / 5.0f, 1e-7);
    fl_robust_destroy(&r);

    /* 2-D, f = 0 (n - 2 = 4 neighbours): a unit square, its centre and a
     * far point. Centre: 4 x 0.5 = 2; corners: 0.5 + 1 + 1 + 2 = 4.5. */
    static const float sq[6][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0.5f, 0.5f}, {10, 10}};
    float o2[2];
    r = s_new("krum", 2, 6);
    for (int k = 0; k < 6; k++)
        assert_int_equal(fl_robust_add(r, sq[k], 2, 1.0), 0);
    assert_int_equal(fl_robust_result(r, o2, sel, &nsel), 0);
    assert_int_equal(sel[0], 4);
    assert_true(o2[0] == 0.5f && o2[1] == 0.5f);
    fl_robust_destroy(&r);
}

static void
test_norm_bound_by_hand(void **state)
{
    (void)state;
    static const float u[2][2] = {{3, 4}, {0.3f, 0.4f}};
    float out[2];
    fl_robust_t *r = s_new("norm_bound:1", 2, 10);
    assert_int_equal(fl_robust_add(r, u[0], 2, 1.0), 0); /* -> (0.6, 0.8) */
    assert_int_equal(fl_robust_add(r, u[1], 2, 1.0), 0); /* inside: unchanged */
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_float_equal(out[0], 0.45f, 1e-7);
    assert_float_equal(out[1], 0.6f, 1e-7);
    /* weighted: (0.6 + 3 * 0.3) / 4, (0.8 + 3 * 0.4) / 4 */
    fl_robust_reset(r);
    assert_int_equal(fl_robust_add(r, u[0], 2, 1.0), 0);
    assert_int_equal(fl_robust_add(r, u[1], 2, 3.0), 0);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_float_equal(out[0], 0.375f, 1e-7);
    assert_float_equal(out[1], 0.5f, 1e-7);
    assert_int_equal(fl_robust_count(r), 2);
    fl_robust_destroy(&r);
}

/* ------------------------------------------------------------------------ */
/* Against references                                                        */
/* ------------------------------------------------------------------------ */

static int
s_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Columns with duplicates, sorted and reversed runs, constants, organ
 * pipes: median and trimmed mean equal a sort-based reference. */
static void
test_coordinatewise_vs_sort(void **state)
{
    (void)state;
    enum { D = 600 }; /* > 2 column blocks, last one partial */
    static const size_t ns[] = {1, 2, 3, 16, 17, 37, 64, 101};
    fl_rng_t rng;
    fl_rng_seed(&rng, 99, 0);
    float *u = fl_xmalloc(101 * D * sizeof *u);
    float *col = fl_xmalloc(101 * sizeof *col);
    float med[D], tm[D];
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        size_t n = ns[t];
        for (size_t k = 0; k < n; k++) {
            for (size_t j = 0; j < D; j++) {
                float v;
                switch (j % 6) {
                case 0: v = (float)fl_rng_normal(&rng); break;
                case 1: v = (float)fl_rng_below(&rng, 3); break; /* many ties */
                case 2: v = (float)k; break;                     /* sorted */
                case 3: v = -(float)k; break;                    /* reversed */
                case 4: v = 7.0f; break;                         /* constant */
                default: v = (float)(k < n / 2 ? k : n - k); break; /* organ pipe */
                }
                u[k * D + j] = v;
            }
        }
        fl_robust_t *rm = s_new("median", D, 101);
        fl_robust_t *rt = s_new("trimmed_mean:0.3", D, 101);
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(fl_robust_add(rm, u + k * D, D, 1.0), 0);
            assert_int_equal(fl_robust_add(rt, u + k * D, D, 1.0), 0);
        }
        assert_int_equal(fl_robust_result(rm, med, NULL, NULL), 0);
        assert_int_equal(fl_robust_result(rt, tm, NULL, NULL), 0);
        size_t trim = (size_t)floor(0.3 * (double)n);
        for (size_t j = 0; j < D; j++) {
            for (size_t k = 0; k < n; k++)
                col[k] = u[k * D + j];
            qsort(col, n, sizeof *col, s_cmp_float);
            float want = n % 2 ? col[n / 2]
                               : (float)(0.5 * ((double)col[n / 2 - 1] + (double)col[n / 2]));
            assert_true(med[j] == want);
            double s = 0;
            for (size_t k = trim; k < n - trim; k++)
                s += col[k];
            double want_tm = s / (double)(n - 2 * trim);
            assert_true(fabs((double)tm[j] - want_tm) <= 1e-6 * fmax(1.0, fabs(want_tm)));
        }
        fl_robust_destroy(&rm);
        fl_robust_destroy(&rt);
    }
    free(u);
    free(col);
}

/* Krum's Gram-matrix distances against brute force in double, over several
 * Gram blocks (d = 2500 > 2 x 1024) and with updates far from the origin
 * (a common offset of 1000 that centring must remove). */
static void
test_krum_vs_bruteforce(void **state)
{
    (void)state;
    enum { N = 12, D = 2500, F = 2 };
    fl_rng_t rng;
    fl_rng_seed(&rng, 7, 3);
    float *u = fl_xmalloc(N * D * sizeof *u);
    for (size_t k = 0; k < N; k++) {
        double spread = 0.5 + 0.1 * (double)k; /* distinct scales: well-separated scores */
        for (size_t j = 0; j < D; j++)
            u[k * D + j] = (float)(1000.0 + spread * fl_rng_normal(&rng));
    }
    double score[N];
    size_t order[N];
    for (size_t i = 0; i < N; i++) {
        double dist[N];
        size_t r = 0;
        for (size_t k = 0; k < N; k++) {
            if (k == i)
                continue;
            double s = 0;
            for (size_t j = 0; j < D; j++) {
                double e = (double)u[i * D + j] - (double)u[k * D + j];
                s += e * e;
            }
            dist[r++] = s;
        }
        /* sum of the N - F - 2 smallest */
        for (size_t a = 0; a < r; a++)
            for (size_t b = a + 1; b < r; b++)
                if (dist[b] < dist[a]) {
                    double t = dist[a];
                    dist[a] = dist[b];
                    dist[b] = t;
                }
        score[i] = 0;
        for (size_t a = 0; a < N - F - 2; a++)
            score[i] += dist[a];
        order[i] = i;
    }
    for (size_t a = 0; a < N; a++)
        for (size_t b = a + 1; b < N; b++)
            if (score[order[b]] < score[order[a]]) {
                size_t t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
    char spec[32];
    snprintf(spec, sizeof spec, "multikrum:%d:%d", F, N);
    fl_robust_t *r = s_new(spec, D, N);
    for (size_t k = 0; k < N; k++)
        assert_int_equal(fl_robust_add(r, u + k * D, D, 1.0), 0);
    float *out = fl_xmalloc(D * sizeof *out);
    size_t sel[N], nsel = 0;
    assert_int_equal(fl_robust_result(r, out, sel, &nsel), 0);
    assert_int_equal(nsel, N);
    for (size_t a = 0; a < N; a++)
        assert_int_equal(sel[a], order[a]);
    /* m = n: the plain mean */
    for (size_t j = 0; j < D; j += 97) {
        double s = 0;
        for (size_t k = 0; k < N; k++)
            s += u[k * D + j];
        assert_float_equal(out[j], (float)(s / N), 1e-3);
    }
    fl_robust_destroy(&r);
    free(out);
    free(u);
}

/* ------------------------------------------------------------------------ */
/* Poisoning                                                                 */
/* ------------------------------------------------------------------------ */

enum { P_N = 20, P_D = 1000 };

static bool
s_is_attacker(size_t k)
{
    return k % 5 == 3; /* 4 of 20, interleaved: 3, 8, 13, 18 */
}

/* ||a - b|| / ||b|| */
static double
s_rel_err(const float *a, const double *b, size_t n)
{
    double e = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        nb += b[i] * b[i];
    }
    return sqrt(e / nb);
}

/* Honest updates mu + N(0, 0.05^2); attackers send 100x or -1x their own. */
static void
test_poisoning(void **state)
{
    (void)state;
    fl_rng_t rng;
    fl_rng_seed(&rng, 1234, 0);
    float *u = fl_xmalloc(P_N * P_D * sizeof *u);
    double mu[P_D], honest[P_D] = {0};
    for (size_t j = 0; j < P_D; j++)
        mu[j] = fl_rng_normal(&rng);
    for (size_t k = 0; k < P_N; k++)
        for (size_t j = 0; j < P_D; j++)
            u[k * P_D + j] = (float)(mu[j] + 0.05 * fl_rng_normal(&rng));
    for (size_t k = 0; k < P_N; k++)
        if (!s_is_attacker(k))
            for (size_t j = 0; j < P_D; j++)
                honest[j] += u[k * P_D + j] / (double)(P_N - 4);

    static const char *const robust[] = {"median", "trimmed_mean:0.2", "krum:4",
                                         "multikrum:4"};
    static const double attack[] = {100.0, -1.0};
    float *bad = fl_xmalloc(P_D * sizeof *bad);
    float out[P_D];
    for (size_t a = 0; a < 2; a++) {
        /* plain mean: visibly poisoned */
        double plain[P_D] = {0};
        for (size_t k = 0; k < P_N; k++) {
            double s = s_is_attacker(k) ? attack[a] : 1.0;
            for (size_t j = 0; j < P_D; j++)
                plain[j] += s * u[k * P_D + j] / P_N;
        }
        for (size_t j = 0; j < P_D; j++)
            out[j] = (float)plain[j];
        double plain_err = s_rel_err(out, honest, P_D);
        assert_true(plain_err > 0.3); /* 19.8 (x100) and 0.4 (sign flip) */

        for (size_t r = 0; r < sizeof robust / sizeof robust[0]; r++) {
            fl_robust_t *c = s_new(robust[r], P_D, P_N);
            for (size_t k = 0; k < P_N; k++) {
                const float *v = u + k * P_D;
                if (s_is_attacker(k)) {
                    for (size_t j = 0; j < P_D; j++)
                        bad[j] = (float)(attack[a] * v[j]);
                    v = bad;
                }
                assert_int_equal(fl_robust_add(c, v, P_D, 1.0), 0);
            }
            size_t sel[P_N], nsel = 0;
            assert_int_equal(fl_robust_result(c, out, sel, &nsel), 0);
            double err = s_rel_err(out, honest, P_D);
            if (!(err < 0.1))
                print_error("%s under attack x%g: rel err %g (plain mean %g)\n", robust[r],
                            attack[a], err, plain_err);
            assert_true(err < 0.1);
            assert_true(err < plain_err / 3);
            /* Krum and Multi-Krum choose honest updates only */
            for (size_t i = 0; i < nsel; i++)
                assert_false(s_is_attacker(sel[i]));
            if (strcmp(robust[r], "multikrum:4") == 0) {
                assert_int_equal(nsel, P_N - 4); /* exactly the honest ones */
                assert_true(err < 1e-5);
            }
            fl_robust_destroy(&c);
        }
    }

    /* Norm bounding tames the scaled attack (not the sign flip, by design):
     * M a little above the honest norms (~sqrt(P_D) = 31.6). */
    fl_robust_t *c = s_new("norm_bound:35", P_D, P_N);
    for (size_t k = 0; k < P_N; k++) {
        const float *v = u + k * P_D;
        if (s_is_attacker(k)) {
            for (size_t j = 0; j < P_D; j++)
                bad[j] = 100.0f * v[j];
            v = bad;
        }
        assert_int_equal(fl_robust_add(c, v, P_D, 1.0), 0);
    }
    assert_int_equal(fl_robust_result(c, out, NULL, NULL), 0);
    assert_true(s_rel_err(out, honest, P_D) < 0.1);
    fl_robust_destroy(&c);
    free(bad);
    free(u);
}

/* ------------------------------------------------------------------------ */
/* Errors and streaming                                                      */
/* ------------------------------------------------------------------------ */

static void
test_new_errors(void **state)
{
    (void)state;
    fl_robust_config_t c = s_cfg("krum:2");
    assert_null(fl_robust_new(&c, 10, 6)); /* max_n < 2f+3 = 7 */
    assert_non_null(strstr(fl_errmsg(), "n >= 2f+3 = 7"));
    fl_robust_t *r = fl_robust_new(&c, 10, 7);
    assert_non_null(r);
    fl_robust_destroy(&r);
    c = s_cfg("multikrum:0:9");
    assert_null(fl_robust_new(&c, 10, 8));
    c = s_cfg("median");
    assert_null(fl_robust_new(&c, 0, 8));
    assert_null(fl_robust_new(&c, 10, 0));
    assert_null(fl_robust_new(&c, 10, FL_ROBUST_MAX_N + 1));
    assert_null(fl_robust_new(NULL, 10, 8));
    c = s_cfg("none");
    assert_null(fl_robust_new(&c, 10, 8));
    /* configurations that did not come through the parser */
    fl_robust_config_t bad = {.rule = FL_ROBUST_TRIMMED_MEAN, .beta = 0.5};
    assert_null(fl_robust_new(&bad, 10, 8));
    assert_non_null(strstr(fl_errmsg(), "beta"));
    bad.beta = NAN;
    assert_null(fl_robust_new(&bad, 10, 8));
    bad = (fl_robust_config_t){.rule = FL_ROBUST_NORM_BOUND, .bound = 0};
    assert_null(fl_robust_new(&bad, 10, 8));
    bad = (fl_robust_config_t){.rule = (fl_robust_rule_t)42};
    assert_null(fl_robust_new(&bad, 10, 8));
}

static void
test_krum_too_few(void **state)
{
    (void)state;
    fl_robust_t *r = s_new("krum:2", 2, 10);
    float out[2] = {9, 9};
    float v[2] = {1, 2};
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), FL_ESTATE); /* empty */
    for (int k = 0; k < 6; k++)
        assert_int_equal(fl_robust_add(r, v, 2, 1.0), 0);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "needs n >= 2f+3 = 7 updates, got 6"));
    assert_true(out[0] == 9 && out[1] == 9);
    assert_int_equal(fl_robust_add(r, v, 2, 1.0), 0);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_true(out[0] == 1 && out[1] == 2);
    fl_robust_destroy(&r);

    /* Multi-Krum m larger than the updates that arrived */
    r = s_new("multikrum:0:5", 2, 10);
    for (int k = 0; k < 4; k++)
        assert_int_equal(fl_robust_add(r, v, 2, 1.0), 0);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "m=5 exceeds the 4 updates"));
    fl_robust_destroy(&r);
}

/* Every rejected add leaves the collector as it was: same count, same
 * result bit for bit. */
static void
test_add_rejections(void **state)
{
    (void)state;
    static const char *const rules[] = {"median", "trimmed_mean:0.2", "krum:0", "multikrum:0:2",
                                        "norm_bound:2"};
    for (size_t t = 0; t < sizeof rules / sizeof rules[0]; t++) {
        fl_robust_t *r = s_new(rules[t], 3, 4);
        float before[3], after[3];
        s_add_rows(r, s_u5, 3);
        assert_int_equal(fl_robust_result(r, before, NULL, NULL), 0);

        float nan[3] = {1, NAN, 2};
        float inf[3] = {1, 2, -INFINITY};
        float huge[3] = {1, 2e15f, 3};
        float ok[3] = {1, 1, 1};
        assert_int_equal(fl_robust_add(r, nan, 3, 1.0), FL_ENONFINITE);
        assert_non_null(strstr(fl_errmsg(), "element 1"));
        assert_int_equal(fl_robust_add(r, inf, 3, 1.0), FL_ENONFINITE);
        assert_non_null(strstr(fl_errmsg(), "element 2"));
        assert_int_equal(fl_robust_add(r, huge, 3, 1.0), FL_ERANGE);
        assert_int_equal(fl_robust_add(r, ok, 2, 1.0), FL_EINVAL);
        assert_non_null(strstr(fl_errmsg(), "2 elements, expected 3"));
        assert_int_equal(fl_robust_add(r, NULL, 3, 1.0), FL_EINVAL);
        assert_int_equal(fl_robust_add(r, ok, 3, 0.0), FL_EINVAL);
        assert_int_equal(fl_robust_add(r, ok, 3, NAN), FL_EINVAL);
        assert_int_equal(fl_robust_add(r, ok, 3, 1e13), FL_EINVAL);
        /* a streamed update that fails half-way */
        assert_int_equal(fl_robust_begin(r, 1.0), 0);
        assert_int_equal(fl_robust_chunk(r, 0, ok, 2), 0);
        assert_int_equal(fl_robust_chunk(r, 2, nan, 1), 0);
        fl_robust_abort(r);
        assert_int_equal(fl_robust_begin(r, 1.0), 0);
        assert_int_equal(fl_robust_chunk(r, 0, ok, 2), 0);
        assert_int_equal(fl_robust_chunk(r, 2, nan + 1, 1), FL_ENONFINITE);
        assert_int_equal(fl_robust_commit(r), FL_ESTATE); /* the failure closed the add */

        assert_int_equal(fl_robust_count(r), 3);
        assert_int_equal(fl_robust_result(r, after, NULL, NULL), 0);
        assert_memory_equal(before, after, sizeof before);

        /* full: the 4th fits, the 5th is refused */
        assert_int_equal(fl_robust_add(r, ok, 3, 1.0), 0);
        assert_int_equal(fl_robust_add(r, ok, 3, 1.0), FL_ERANGE);
        assert_int_equal(fl_robust_count(r), 4);
        assert_int_equal(fl_robust_dim(r), 3);
        fl_robust_destroy(&r);
    }
}

static void
test_streaming(void **state)
{
    (void)state;
    enum { D = 1000 };
    fl_rng_t rng;
    fl_rng_seed(&rng, 5, 5);
    float u[5][D];
    for (int k = 0; k < 5; k++)
        for (int j = 0; j < D; j++)
            u[k][j] = (float)fl_rng_normal(&rng);
    static const char *const rules[] = {"median", "trimmed_mean:0.2", "multikrum:1:2",
                                        "norm_bound:20"};
    for (size_t t = 0; t < sizeof rules / sizeof rules[0]; t++) {
        fl_robust_t *whole = s_new(rules[t], D, 5);
        fl_robust_t *stream = s_new(rules[t], D, 5);
        for (int k = 0; k < 5; k++) {
            assert_int_equal(fl_robust_add(whole, u[k], D, 1.0 + k), 0);
            assert_int_equal(fl_robust_begin(stream, 1.0 + k), 0);
            size_t off = 0, step = 77 + (size_t)k;
            while (off < D) {
                size_t n = D - off < step ? D - off : step;
                assert_int_equal(fl_robust_chunk(stream, off, u[k] + off, n), 0);
                off += n;
            }
            assert_int_equal(fl_robust_chunk(stream, D, NULL, 0), 0); /* empty chunk */
            assert_int_equal(fl_robust_commit(stream), 0);
        }
        float a[D], b[D];
        assert_int_equal(fl_robust_result(whole, a, NULL, NULL), 0);
        assert_int_equal(fl_robust_result(stream, b, NULL, NULL), 0);
        assert_memory_equal(a, b, sizeof a);
        fl_robust_destroy(&whole);
        fl_robust_destroy(&stream);
    }

    /* protocol errors */
    fl_robust_t *r = s_new("median", D, 5);
    float out[D];
    assert_int_equal(fl_robust_chunk(r, 0, u[0], 10), FL_ESTATE);
    assert_int_equal(fl_robust_commit(r), FL_ESTATE);
    assert_int_equal(fl_robust_begin(r, 1.0), 0);
    assert_int_equal(fl_robust_add(r, u[0], D, 1.0), FL_ESTATE); /* open: refused, kept open */
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), FL_ESTATE);
    assert_int_equal(fl_robust_chunk(r, 0, u[0], 10), 0);
    assert_int_equal(fl_robust_chunk(r, 20, u[0] + 20, 10), FL_EINVAL); /* gap */
    assert_non_null(strstr(fl_errmsg(), "expected offset 10"));
    assert_int_equal(fl_robust_begin(r, 1.0), 0);
    assert_int_equal(fl_robust_chunk(r, 0, u[0], D + 1), FL_EINVAL); /* past the end */
    assert_int_equal(fl_robust_begin(r, 1.0), 0);
    assert_int_equal(fl_robust_chunk(r, 0, u[0], 10), 0);
    assert_int_equal(fl_robust_commit(r), FL_ESTATE); /* incomplete */
    assert_non_null(strstr(fl_errmsg(), "after 10 of 1000"));
    assert_int_equal(fl_robust_begin(r, 1.0), 0);
    assert_int_equal(fl_robust_begin(r, 1.0), FL_ESTATE); /* twice: aborts */
    assert_int_equal(fl_robust_count(r), 0);
    /* reset drops an open add and the updates; buffers are reused */
    assert_int_equal(fl_robust_add(r, u[1], D, 1.0), 0);
    assert_int_equal(fl_robust_begin(r, 1.0), 0);
    fl_robust_reset(r);
    assert_int_equal(fl_robust_count(r), 0);
    assert_int_equal(fl_robust_add(r, u[2], D, 1.0), 0);
    assert_int_equal(fl_robust_result(r, out, NULL, NULL), 0);
    assert_memory_equal(out, u[2], sizeof out);
    fl_robust_destroy(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_secagg_guard),
        cmocka_unit_test(test_median_by_hand),
        cmocka_unit_test(test_trimmed_mean_by_hand),
        cmocka_unit_test(test_krum_by_hand),
        cmocka_unit_test(test_norm_bound_by_hand),
        cmocka_unit_test(test_coordinatewise_vs_sort),
        cmocka_unit_test(test_krum_vs_bruteforce),
        cmocka_unit_test(test_poisoning),
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_krum_too_few),
        cmocka_unit_test(test_add_rejections),
        cmocka_unit_test(test_streaming),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
