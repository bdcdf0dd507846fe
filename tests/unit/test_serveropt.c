/*
 * test_serveropt.c — unit tests of fl_serveropt: each optimizer's steps
 * against golden values, checkpoint export/import (exact resumption, every
 * malformed state refused with the optimizer unchanged), configuration
 * validation and kind parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fl_serveropt.h"
#include "fl_util.h"

#define N 4
#define STEPS 3

static const float s_x0[N] = {0.5f, -1.0f, 2.0f, 0.0f};
/* Pseudo-gradients of three rounds; the zeros exercise 0 / (sqrt(0) + tau)
 * and Yogi's sign(0). */
static const float s_delta[STEPS][N] = {
    {0.1f, -0.2f, 0.0f, 0.3f},
    {0.05f, 0.1f, -0.4f, 0.3f},
    {-0.2f, 0.0f, 0.1f, 0.01f},
};

typedef struct {
    fl_sopt_kind_t kind;
    float lr, momentum, beta1, beta2, tau;
    double x[STEPS][N]; /* global model after each step */
} golden_t;

/*
 * Golden values computed independently in float64 (PyTorch tensors, the
 * update rules as written in fl_serveropt.h, m0 = v0 = 0); float32 results
 * differ from them by at most 2.5e-7. Step 1 by hand: fedadam/fedyogi give
 * m = 0.1 d, v = 0.01 d^2, so x += lr * 0.1 d / (0.1 |d| + tau) ~ lr sign(d);
 * fedadagrad gives x += lr d / (|d| + tau).
 */
static const golden_t s_golden[] = {
    {FL_SOPT_FEDAVG, 1.0f, 0, 0, 0, 0,
     {{0.600000000, -1.200000000, 2.000000000, 0.300000000},
      {0.650000000, -1.100000000, 1.600000000, 0.600000000},
      {0.450000000, -1.100000000, 1.700000000, 0.610000000}}},
    {FL_SOPT_FEDAVGM, 1.0f, 0.9f, 0, 0, 0,
     {{0.600000000, -1.200000000, 2.000000000, 0.300000000},
      {0.740000000, -1.280000000, 1.600000000, 0.870000000},
      {0.666000000, -1.352000000, 1.340000000, 1.393000000}}},
    {FL_SOPT_FEDAVGM, 0.5f, 0.5f, 0, 0, 0,
     {{0.550000000, -1.100000000, 2.000000000, 0.150000000},
      {0.600000000, -1.100000000, 1.800000000, 0.375000000},
      {0.525000000, -1.100000000, 1.750000000, 0.492500000}}},
    {FL_SOPT_FEDADAGRAD, 0.1f, 0, 0, 0, 1e-9f,
     {{0.599999999, -1.100000000, 2.000000000, 0.100000000},
      {0.644721358, -1.055278640, 1.900000000, 0.170710678},
      {0.557434202, -1.055278640, 1.924253563, 0.173067046}}},
    {FL_SOPT_FEDADAM, 0.1f, 0, 0.9f, 0.99f, 1e-9f,
     {{0.599999990, -1.099999995, 2.000000000, 0.099999997},
      {0.725723690, -1.135921054, 1.900000003, 0.234687422},
      {0.693358324, -1.168412874, 1.836641881, 0.358856614}}},
    {FL_SOPT_FEDYOGI, 0.01f, 0, 0.9f, 0.99f, 1e-3f,
     {{0.509090909, -1.009523810, 2.000000000, 0.009677419},
      {0.520584841, -1.012948367, 1.990243902, 0.022803074},
      {0.517490274, -1.016030469, 1.984087296, 0.034849707}}},
};
#define NGOLDEN (sizeof s_golden / sizeof s_golden[0])

static fl_sopt_config_t
s_cfg_of(const golden_t *g)
{
    fl_sopt_config_t c = {g->kind, g->lr, g->momentum, g->beta1, g->beta2, g->tau};
    return c;
}

static void
test_steps_match_golden(void **state)
{
    (void)state;
    for (size_t t = 0; t < NGOLDEN; t++) {
        const golden_t *g = &s_golden[t];
        fl_sopt_config_t cfg = s_cfg_of(g);
        fl_sopt_t *o = NULL;
        float x[N];
        assert_int_equal(fl_sopt_new(&cfg, N, &o), 0);
        assert_non_null(o);
        assert_int_equal(fl_sopt_config(o)->kind, g->kind);
        memcpy(x, s_x0, sizeof x);
        for (int s = 0; s < STEPS; s++) {
            fl_sopt_apply(o, x, s_delta[s], N);
            assert_int_equal(fl_sopt_step(o), (uint64_t)s + 1);
            for (int i = 0; i < N; i++) {
                double err = fabs((double)x[i] - g->x[s][i]);
                if (err > 2e-6)
                    fail_msg("%s case %zu step %d x[%d] = %.9f, expected %.9f",
                             fl_sopt_kind_name(g->kind), t, s + 1, i, (double)x[i], g->x[s][i]);
            }
        }
        fl_sopt_destroy(&o);
        assert_null(o);
        fl_sopt_destroy(&o);
        fl_sopt_destroy(NULL);
    }
}

/* Adaptive kinds on an all-zero pseudo-gradient: no 0/0, the model stays. */
static void
test_zero_delta_is_a_no_op(void **state)
{
    (void)state;
    const float zero[N] = {0};
    for (int k = 0; k < FL_SOPT_KIND_COUNT; k++) {
        fl_sopt_config_t cfg;
        fl_sopt_config_default(&cfg, (fl_sopt_kind_t)k);
        fl_sopt_t *o = NULL;
        float x[N];
        memcpy(x, s_x0, sizeof x);
        assert_int_equal(fl_sopt_new(&cfg, N, &o), 0);
        for (int s = 0; s < 3; s++)
            fl_sopt_apply(o, x, zero, N);
        assert_memory_equal(x, s_x0, sizeof x);
        fl_sopt_destroy(&o);
    }
}

static void
test_defaults_and_names(void **state)
{
    (void)state;
    fl_sopt_config_t c;
    fl_sopt_config_default(&c, FL_SOPT_FEDAVG);
    assert_true(c.kind == FL_SOPT_FEDAVG && c.lr == 1.0f);
    fl_sopt_config_default(&c, FL_SOPT_FEDAVGM);
    assert_true(c.lr == 1.0f && c.momentum == 0.9f);
    fl_sopt_config_default(&c, FL_SOPT_FEDADAGRAD);
    assert_true(c.lr == 0.1f && c.tau == 1e-9f);
    fl_sopt_config_default(&c, FL_SOPT_FEDADAM);
    assert_true(c.lr == 0.1f && c.beta1 == 0.9f && c.beta2 == 0.99f && c.tau == 1e-9f);
    fl_sopt_config_default(&c, FL_SOPT_FEDYOGI);
    assert_true(c.lr == 0.01f && c.beta1 == 0.9f && c.beta2 == 0.99f && c.tau == 1e-3f);
    for (int k = 0; k < FL_SOPT_KIND_COUNT; k++) {
        fl_sopt_config_default(&c, (fl_sopt_kind_t)k);
        assert_int_equal(fl_sopt_config_check(&c), 0);
    }

    const char *names[] = {"fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi"};
    for (int k = 0; k < FL_SOPT_KIND_COUNT; k++) {
        fl_sopt_kind_t got = FL_SOPT_FEDYOGI;
        assert_int_equal(fl_sopt_parse_kind(names[k], &got), 0);
        assert_int_equal(got, k);
        assert_string_equal(fl_sopt_kind_name((fl_sopt_kind_t)k), names[k]);
    }
    const char *bad[] = {"", "FedAdam", "adam", "fedadam ", "fedav", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fl_sopt_kind_t got = FL_SOPT_FEDYOGI;
        assert_int_equal(fl_sopt_parse_kind(bad[i], &got), FL_EINVAL);
        assert_int_equal(got, FL_SOPT_FEDYOGI); /* untouched */
        assert_non_null(strstr(fl_errmsg(), "fedyogi"));
    }
    assert_string_equal(fl_sopt_kind_name((fl_sopt_kind_t)99), "unknown");
}

typedef struct {
    fl_sopt_kind_t kind;
    const char *field; /* expected in the error detail */
    float lr, momentum, beta1, beta2, tau;
} badcfg_t;

static void
test_config_validation(void **state)
{
    (void)state;
    const badcfg_t bad[] = {
        {FL_SOPT_FEDAVG, "lr", 0.0f, 0, 0, 0, 0},
        {FL_SOPT_FEDAVG, "lr", -1.0f, 0, 0, 0, 0},
        {FL_SOPT_FEDAVG, "lr", NAN, 0, 0, 0, 0},
        {FL_SOPT_FEDAVG, "lr", INFINITY, 0, 0, 0, 0},
        {FL_SOPT_FEDAVGM, "momentum", 1.0f, 1.0f, 0, 0, 0},
        {FL_SOPT_FEDAVGM, "momentum", 1.0f, -0.1f, 0, 0, 0},
        {FL_SOPT_FEDAVGM, "momentum", 1.0f, NAN, 0, 0, 0},
        {FL_SOPT_FEDADAGRAD, "tau", 0.1f, 0, 0, 0, 0.0f},
        {FL_SOPT_FEDADAGRAD, "tau", 0.1f, 0, 0, 0, -1e-3f},
        {FL_SOPT_FEDADAGRAD, "lr", -0.1f, 0, 0, 0, 1e-9f},
        {FL_SOPT_FEDADAM, "beta1", 0.1f, 0, 1.0f, 0.99f, 1e-9f},
        {FL_SOPT_FEDADAM, "beta1", 0.1f, 0, -0.5f, 0.99f, 1e-9f},
        {FL_SOPT_FEDADAM, "beta2", 0.1f, 0, 0.9f, 1.5f, 1e-9f},
        {FL_SOPT_FEDADAM, "beta2", 0.1f, 0, 0.9f, NAN, 1e-9f},
        {FL_SOPT_FEDADAM, "tau", 0.1f, 0, 0.9f, 0.99f, INFINITY},
        {FL_SOPT_FEDYOGI, "beta2", 0.01f, 0, 0.9f, 1.0f, 1e-3f},
        {FL_SOPT_FEDYOGI, "tau", 0.01f, 0, 0.9f, 0.99f, NAN},
        {(fl_sopt_kind_t)7, "kind", 1.0f, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fl_sopt_config_t c = {bad[i].kind, bad[i].lr, bad[i].momentum, bad[i].beta1,
                              bad[i].beta2, bad[i].tau};
        fl_sopt_t *o = (fl_sopt_t *)&c; /* a sentinel: must stay untouched */
        assert_int_equal(fl_sopt_new(&c, N, &o), FL_EINVAL);
        assert_ptr_equal(o, (fl_sopt_t *)&c);
        if (!strstr(fl_errmsg(), bad[i].field))
            fail_msg("case %zu: '%s' does not name %s", i, fl_errmsg(), bad[i].field);
    }
    /* fields a kind does not use are ignored */
    fl_sopt_config_t c = {FL_SOPT_FEDAVG, 1.0f, 7.0f, NAN, -3.0f, -1.0f};
    fl_sopt_t *o = NULL;
    assert_int_equal(fl_sopt_new(&c, N, &o), 0);
    fl_sopt_destroy(&o);
    /* bad size */
    fl_sopt_config_default(&c, FL_SOPT_FEDADAM);
    assert_int_equal(fl_sopt_new(&c, 0, &o), FL_EINVAL);
    assert_null(o);
    assert_int_equal(fl_sopt_new(&c, ((size_t)1 << 31) + 1, &o), FL_EINVAL);
    assert_null(o);
}

static uint8_t *
s_export(const fl_sopt_t *o, size_t *len)
{
    *len = fl_sopt_state_size(o);
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    fl_sopt_state_export(o, b);
    return b;
}

/* Two steps, checkpoint, import into a fresh optimizer, one more step: the
 * resumed run is bit-for-bit the uninterrupted one. */
static void
test_state_round_trip(void **state)
{
    (void)state;
    for (int k = 0; k < FL_SOPT_KIND_COUNT; k++) {
        fl_sopt_config_t cfg;
        fl_sopt_config_default(&cfg, (fl_sopt_kind_t)k);
        fl_sopt_t *a = NULL, *b = NULL;
        float xa[N], xb[N];
        assert_int_equal(fl_sopt_new(&cfg, N, &a), 0);
        assert_int_equal(fl_sopt_new(&cfg, N, &b), 0);
        memcpy(xa, s_x0, sizeof xa);
        fl_sopt_apply(a, xa, s_delta[0], N);
        fl_sopt_apply(a, xa, s_delta[1], N);

        size_t len;
        uint8_t *st = s_export(a, &len);
        size_t narrays = k == FL_SOPT_FEDAVG                              ? 0
                         : (k == FL_SOPT_FEDAVGM || k == FL_SOPT_FEDADAGRAD) ? 1
                                                                             : 2;
        assert_int_equal(len, 32 + narrays * N * sizeof(float));
        assert_memory_equal(st, "CVSO", 4);
        assert_int_equal(st[8], k);  /* kind, little-endian */
        assert_int_equal(st[16], N); /* numel */
        assert_int_equal(st[24], 2); /* step */
        assert_int_equal(fl_sopt_state_import(b, st, len), 0);
        assert_int_equal(fl_sopt_step(b), 2);
        memcpy(xb, xa, sizeof xb); /* the global model comes from the model checkpoint */

        fl_sopt_apply(a, xa, s_delta[2], N);
        fl_sopt_apply(b, xb, s_delta[2], N);
        assert_memory_equal(xa, xb, sizeof xa);
        assert_int_equal(fl_sopt_step(b), 3);
        size_t la, lb;
        uint8_t *sa = s_export(a, &la), *sb = s_export(b, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(sa, sb, la);
        free(sa);
        free(sb);
        free(st);
        fl_sopt_destroy(&a);
        fl_sopt_destroy(&b);
    }
}

/* Patch a little-endian u32/f32 at byte offset `off`. */
static void
s_put32(uint8_t *p, size_t off, uint32_t x)
{
    for (int i = 0; i < 4; i++)
        p[off + (size_t)i] = (uint8_t)(x >> (8 * i));
}

static uint32_t
s_fbits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static void
test_state_import_rejects(void **state)
{
    (void)state;
    fl_sopt_config_t cfg;
    fl_sopt_config_default(&cfg, FL_SOPT_FEDADAM);
    fl_sopt_t *o = NULL, *src = NULL;
    float x[N];
    assert_int_equal(fl_sopt_new(&cfg, N, &o), 0);
    assert_int_equal(fl_sopt_new(&cfg, N, &src), 0);
    memcpy(x, s_x0, sizeof x);
    fl_sopt_apply(o, x, s_delta[0], N); /* o has non-trivial state to protect */
    fl_sopt_apply(src, x, s_delta[1], N);
    fl_sopt_apply(src, x, s_delta[2], N);

    size_t olen, len;
    uint8_t *before = s_export(o, &olen);
    uint8_t *good = s_export(src, &len);
    uint8_t *buf = malloc(len + 8);
    assert_non_null(buf);
    const size_t m0 = 32, v0 = 32 + N * sizeof(float);

    struct {
        const char *what;
        size_t off; /* patch at this offset (SIZE_MAX: none) */
        uint32_t val;
        size_t len; /* length passed */
    } cases[] = {
        {"shorter than", SIZE_MAX, 0, 0},
        {"shorter than", SIZE_MAX, 0, 31},
        {"truncated", SIZE_MAX, 0, 32},
        {"truncated", SIZE_MAX, 0, len - 1},
        {"trailing", SIZE_MAX, 0, len + 1},
        {"magic", 0, 0x58585858u /* "XXXX" */, len},
        {"version", 4, 2, len},
        {"is for fedyogi", 8, FL_SOPT_FEDYOGI, len},
        {"is for unknown", 8, 77, len},
        {"arrays", 12, 1, len},
        {"parameters", 16, N + 1, len},
        {"parameters", 20, 1, len}, /* high half of numel */
        {"m[0] is NaN", m0, 0x7fc00000u, len},
        {"m[3] is Inf", m0 + 12, s_fbits(-INFINITY), len},
        {"v[2] is Inf", v0 + 8, s_fbits(INFINITY), len},
        {"v[3] is NaN", v0 + 12, 0xffc00001u, len},
        {"v[1] is negative", v0 + 4, s_fbits(-1e-6f), len},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(buf, good, len);
        memset(buf + len, 0, 8);
        if (cases[i].off != SIZE_MAX)
            s_put32(buf, cases[i].off, cases[i].val);
        assert_int_equal(fl_sopt_state_import(o, buf, cases[i].len), FL_EFORMAT);
        if (!strstr(fl_errmsg(), cases[i].what))
            fail_msg("case %zu: '%s' does not say '%s'", i, fl_errmsg(), cases[i].what);
        size_t l2;
        uint8_t *after = s_export(o, &l2);
        assert_int_equal(l2, olen);
        assert_memory_equal(after, before, olen);
        free(after);
    }
    assert_int_equal(fl_sopt_state_import(o, NULL, 0), FL_EFORMAT);

    /* a state of another size (same kind) */
    fl_sopt_t *other = NULL;
    assert_int_equal(fl_sopt_new(&cfg, N + 1, &other), 0);
    size_t lo;
    uint8_t *so = s_export(other, &lo);
    assert_int_equal(fl_sopt_state_import(o, so, lo), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "5 parameters"));
    free(so);
    fl_sopt_destroy(&other);

    /* a state of another kind with the same layout (fedyogi: m and v) */
    fl_sopt_config_default(&cfg, FL_SOPT_FEDYOGI);
    assert_int_equal(fl_sopt_new(&cfg, N, &other), 0);
    so = s_export(other, &lo);
    assert_int_equal(lo, len);
    assert_int_equal(fl_sopt_state_import(o, so, lo), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "fedyogi"));
    free(so);
    fl_sopt_destroy(&other);

    /* -0.0 in v is fine, and the valid state still imports */
    memcpy(buf, good, len);
    s_put32(buf, v0, 0x80000000u);
    assert_int_equal(fl_sopt_state_import(o, buf, len), 0);
    assert_int_equal(fl_sopt_step(o), 2);
    assert_int_equal(fl_sopt_state_import(o, good, len), 0);
    size_t l3;
    uint8_t *now = s_export(o, &l3);
    assert_memory_equal(now, good, len);
    free(now);

    /* fedavg: header only */
    fl_sopt_config_default(&cfg, FL_SOPT_FEDAVG);
    assert_int_equal(fl_sopt_new(&cfg, N, &other), 0);
    assert_int_equal(fl_sopt_state_size(other), 32);
    fl_sopt_apply(other, x, s_delta[0], N);
    so = s_export(other, &lo);
    fl_sopt_t *fresh = NULL;
    assert_int_equal(fl_sopt_new(&cfg, N, &fresh), 0);
    assert_int_equal(fl_sopt_state_import(fresh, so, lo), 0);
    assert_int_equal(fl_sopt_step(fresh), 1);
    assert_int_equal(fl_sopt_state_import(fresh, good, len), FL_EFORMAT);
    free(so);
    fl_sopt_destroy(&fresh);
    fl_sopt_destroy(&other);

    free(buf);
    free(good);
    free(before);
    fl_sopt_destroy(&o);
    fl_sopt_destroy(&src);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_match_golden),
        cmocka_unit_test(test_zero_delta_is_a_no_op),
        cmocka_unit_test(test_defaults_and_names),
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_import_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
