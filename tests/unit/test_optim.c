/*
 * test_optim.c — unit tests of fl_optim: SGD (plain, momentum, weight decay),
 * Adam and FedProx steps against golden values, configuration validation, reset.
 *
 * The SGD and Adam goldens were produced by torch.optim.SGD / torch.optim.Adam
 * (PyTorch 1.13, float32) on the same start weights and gradients, so they pin
 * Covey to PyTorch's semantics; the FedProx values are worked by hand below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "fl_optim.h"
#include "fl_params.h"
#include "fl_util.h"

#define N 4
#define STEPS 3

static const float s_w0[N] = {1.0f, -0.5f, 2.0f, 0.0f};
static const float s_grads[STEPS][N] = {
    {0.2f, -0.4f, 0.1f, 0.05f},
    {-0.1f, 0.3f, 0.2f, -0.05f},
    {0.05f, 0.05f, -0.3f, 0.0f},
};

/* A params set holding one tensor of N elements, with the given values. */
static fl_params_t *
s_vec(const float *v)
{
    fl_params_t *p = fl_params_new();
    size_t shape[1] = {N};
    assert_int_equal(fl_params_add(p, "w", 1, shape), 0);
    memcpy(fl_params_data(p), v, N * sizeof(float));
    return p;
}

/* Run `steps` steps of cfg from s_w0 with s_grads (and an optional FedProx reference)
 * and compare each step's weights to want[step]. */
static void
s_check_run(const fl_optim_config_t *cfg, const float *ref, int steps, const float want[][N],
            double tol)
{
    fl_params_t *w = s_vec(s_w0), *g = s_vec(s_grads[0]), *r = ref ? s_vec(ref) : NULL;
    fl_optim_t *o = NULL;
    assert_int_equal(fl_optim_new(cfg, w, &o), 0);
    fl_optim_set_prox_ref(o, r);
    for (int s = 0; s < steps; s++) {
        memcpy(fl_params_data(g), s_grads[s], sizeof s_grads[s]);
        fl_optim_step(o, w, g);
        for (int i = 0; i < N; i++) {
            double got = fl_params_data(w)[i], exp = want[s][i];
            if (fabs(got - exp) > tol * (1.0 + fabs(exp)))
                fail_msg("%s step %d element %d: got %.9g, want %.9g",
                         fl_optim_kind_name(cfg->kind), s + 1, i, got, exp);
        }
    }
    assert_int_equal(fl_optim_steps(o), (uint64_t)steps);
    fl_optim_destroy(&o);
    assert_null(o);
    fl_params_destroy(&w);
    fl_params_destroy(&g);
    fl_params_destroy(&r);
}

static void
test_defaults_and_names(void **state)
{
    (void)state;
    fl_optim_config_t c;
    fl_optim_config_default(&c, FL_OPTIM_SGD);
    assert_int_equal(c.kind, FL_OPTIM_SGD);
    assert_true(c.lr > 0.0f && c.momentum >= 0.0f && c.momentum < 1.0f);
    assert_true(c.weight_decay == 0.0f && c.prox_mu == 0.0f);
    fl_optim_config_default(&c, FL_OPTIM_ADAM);
    assert_int_equal(c.kind, FL_OPTIM_ADAM);
    assert_true(c.lr == 1e-3f && c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f);

    fl_optim_kind_t k = FL_OPTIM_ADAM;
    assert_int_equal(fl_optim_parse_kind("sgd", &k), 0);
    assert_int_equal(k, FL_OPTIM_SGD);
    assert_int_equal(fl_optim_parse_kind("adam", &k), 0);
    assert_int_equal(k, FL_OPTIM_ADAM);
    assert_int_equal(fl_optim_parse_kind("SGD", &k), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "'SGD'"));
    assert_int_equal(fl_optim_parse_kind("", &k), FL_EINVAL);
    assert_int_equal(fl_optim_parse_kind(NULL, &k), FL_EINVAL);
    assert_int_equal(k, FL_OPTIM_ADAM);
    assert_string_equal(fl_optim_kind_name(FL_OPTIM_SGD), "sgd");
    assert_string_equal(fl_optim_kind_name(FL_OPTIM_ADAM), "adam");
    assert_string_equal(fl_optim_kind_name((fl_optim_kind_t)9), "unknown");
}

static void
test_sgd_plain(void **state)
{
    (void)state;
    /* w1 = w0 - 0.1 * g1 = {1 - 0.02, -0.5 + 0.04, 2 - 0.01, -0.005}, and so on. */
    static const float want[STEPS][N] = {
        {0.980000019f, -0.460000008f, 1.99000001f, -0.00500000035f},
        {0.99000001f, -0.49000001f, 1.97000003f, -2.04890965e-10f},
        {0.985000014f, -0.495000005f, 2.0f, -2.04890965e-10f},
    };
    fl_optim_config_t c;
    fl_optim_config_default(&c, FL_OPTIM_SGD);
    c.lr = 0.1f;
    c.momentum = 0.0f;
    s_check_run(&c, NULL, STEPS, want, 1e-6);
}

static void
test_sgd_momentum(void **state)
{
    (void)state;
    /* buf1 = g1; buf2 = 0.9 g1 + g2 = {0.08, -0.06, 0.29, -0.005}: w2 = w1 - 0.1 buf2. */
    static const float want[STEPS][N] = {
        {0.980000019f, -0.460000008f, 1.99000001f, -0.00500000035f},
        {0.972000003f, -0.453999996f, 1.96099997f, -0.00450000027f},
        {0.959800005f, -0.453599989f, 1.96490002f, -0.00405000011f},
    };
    fl_optim_config_t c;
    fl_optim_config_default(&c, FL_OPTIM_SGD);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    s_check_run(&c, NULL, STEPS, want, 1e-6);
}

static void
test_sgd_momentum_weight_decay(void **state)
{
    (void)state;
    /* d1 = g1 + 0.01 w0 = {0.21, -0.405, 0.12, 0.05}: w1 = w0 - 0.1 d1. */
    static const float want[STEPS][N] = {
        {0.978999972f, -0.459499985f, 1.98800004f, -0.00500000035f},
        {0.969120979f, -0.452590495f, 1.955212f, -0.004495f},
        {0.954260767f, -0.45091936f, 1.95374763f, -0.00403600466f},
    };
    fl_optim_config_t c;
    fl_optim_config_default(&c, FL_OPTIM_SGD);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    c.weight_decay = 0.01f;
    s_check_run(&c, NULL, STEPS, want, 1e-6);
}

static void
test_adam(void **state)
{
    (void)state;
    /* Step 1 with bias correction is w0 - lr * g / (|g| + eps), i.e. lr * sign(g). */
    static const float want[STEPS][N] = {
        {0.899999976f, -0.400000006f, 1.89999998f, -0.0999999791f},
        {0.873366296f, -0.391067505f, 1.80348182f, -0.0947368219f},
        {0.839323401f, -0.390558571f, 1.81014168f, -0.0906683877f},
    };
    fl_optim_config_t c;
    fl_optim_config_default(&c, FL_OPTIM_ADAM);
    c.lr = 0.1f;
    s_check_run(&c, NULL, STEPS, want, 2e-6);
}

static void
test_adam_weight_decay_betas_eps(void **state)
{
    (void)state;
    static const float want[STEPS][N] = {
        {0.990033209f, -0.490022182f, 1.99003327f, -0.00980392285f},
        {0.983787656f, -0.488362491f, 1.9800117f, -0.00861930009f},
        {0.976600647f, -0.487176627f, 1.97432125f, -0.00768088317f},
    };
    fl_optim_config_t c;
    fl_optim_config_default(&c, FL_OPTIM_ADAM);
    c.lr = 0.01f;
    c.beta1 = 0.8f;
    c.beta2 = 0.99f;
    c.eps = 1e-3f;
    c.weight_decay = 0.1f;
    s_check_run(&c, NULL, STEPS, want, 2e-6);
}

static void
test_adam_any_length(void **state)
{
    (void)state;
    /* 11 elements, element i behaving as golden element i % 4: the result must not
     * depend on whether an element falls in the vectorised body or the scalar tail. */
    static const float want[STEPS][N] = {
        {0.899999976f, -0.400000006f, 1.89999998f, -0.0999999791f},
        {0.873366296f, -0.391067505f, 1.80348182f, -0.0947368219f},
        {0.839323401f, -0.390558571f, 1.81014168f, -0.0906683877f},
    };
    enum { M = 11 };
    fl_params_t *w = fl_params_new(), *g = NULL, *r = NULL;
    assert_int_equal(fl_params_add(w, "w", 1, (size_t[]){M}), 0);
    g = fl_params_clone_layout(w);
    r = fl_params_clone_layout(w);
    for (int i = 0; i < M; i++)
        fl_params_data(w)[i] = s_w0[i % N];
    fl_optim_config_t c;
    fl_optim_config_default(&c, FL_OPTIM_ADAM);
    c.lr = 0.1f;
    c.prox_mu = 0.25f; /* with the reference equal to... */
    fl_optim_t *o = NULL;
    assert_int_equal(fl_optim_new(&c, w, &o), 0);
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < M; i++)
            fl_params_data(g)[i] = s_grads[s][i % N];
        /* ...the current weights, the proximal term is zero: same goldens. */
        assert_int_equal(fl_params_copy(r, w), 0);
        fl_optim_set_prox_ref(o, r);
        fl_optim_step(o, w, g);
        for (int i = 0; i < M; i++)
            if (fabs(fl_params_data(w)[i] - want[s][i % N]) > 2e-6)
                fail_msg("step %d element %d: got %.9g, want %.9g", s + 1, i,
                         (double)fl_params_data(w)[i], (double)want[s][i % N]);
    }
    fl_optim_destroy(&o);
    fl_params_destroy(&w);
    fl_params_destroy(&g);
    fl_params_destroy(&r);
}

static const float s_ref[N] = {0.5f, 0.0f, 1.0f, 1.0f};

static void
test_fedprox_sgd(void **state)
{
    (void)state;
    /* mu = 0.5, ref = {0.5, 0, 1, 1}, lr 0.1:
     *   d1 = g1 + 0.5 (w0 - ref) = {0.45, -0.65, 0.6, -0.45}
     *   w1 = w0 - 0.1 d1         = {0.955, -0.435, 1.94, 0.045}
     * plain SGD, step 2:
     *   d2 = g2 + 0.5 (w1 - ref) = {0.1275, 0.0825, 0.67, -0.5275}
     *   w2 = w1 - 0.1 d2         = {0.94225, -0.44325, 1.873, 0.09775}
     * with momentum 0.9, step 2:
     *   buf2 = 0.9 d1 + d2       = {0.5325, -0.5025, 1.21, -0.9325}
     *   w2 = w1 - 0.1 buf2       = {0.90175, -0.38475, 1.819, 0.13825} */
    static const float plain[2][N] = {
        {0.955f, -0.435f, 1.94f, 0.045f},
        {0.94225f, -0.44325f, 1.873f, 0.09775f},
    };
    static const float mom[2][N] = {
        {0.955f, -0.435f, 1.94f, 0.045f},
        {0.90175f, -0.38475f, 1.819f, 0.13825f},
    };
    fl_optim_config_t c;
    fl_optim_config_default(&c, FL_OPTIM_SGD);
    c.lr = 0.1f;
    c.prox_mu = 0.5f;
    c.momentum = 0.0f;
    s_check_run(&c, s_ref, 2, plain, 1e-6);
    c.momentum = 0.9f;
    s_check_run(&c, s_ref, 2, mom, 1e-6);

    /* mu = 0 disables the term even with a reference; so does a NULL reference. */
    static const float nop[1][N] = {{0.980000019f, -0.460000008f, 1.99000001f, -0.005f}};
    c.momentum = 0.0f;
    c.prox_mu = 0.0f;
    s_check_run(&c, s_ref, 1, nop, 1e-6);
    c.prox_mu = 0.5f;
    s_check_run(&c, NULL, 1, nop, 1e-6);
}

static void
test_fedprox_adam(void **state)
{
    (void)state;
    /* The first Adam step moves each weight by lr * sign(d1), with d1 as above:
     * {0.45, -0.65, 0.6, -0.45} -> w1 = w0 - 0.1 * {1, -1, 1, -1}. */
    static const float want[1][N] = {{0.9f, -0.4f, 1.9f, 0.1f}};
    fl_optim_config_t c;
    fl_optim_config_default(&c, FL_OPTIM_ADAM);
    c.lr = 0.1f;
    c.prox_mu = 0.5f;
    s_check_run(&c, s_ref, 1, want, 1e-6);
}

static void
test_reset(void **state)
{
    (void)state;
    fl_optim_config_t c;
    fl_optim_kind_t kinds[2] = {FL_OPTIM_SGD, FL_OPTIM_ADAM};
    for (int k = 0; k < 2; k++) {
        fl_optim_config_default(&c, kinds[k]);
        c.lr = 0.1f;
        c.prox_mu = 0.5f;
        fl_params_t *w = s_vec(s_w0), *g = s_vec(s_grads[0]), *r = s_vec(s_ref);
        fl_params_t *fresh_w = s_vec(s_w0);
        fl_optim_t *o = NULL, *fresh = NULL;
        assert_int_equal(fl_optim_new(&c, w, &o), 0);
        assert_int_equal(fl_optim_new(&c, w, &fresh), 0);
        fl_optim_set_prox_ref(o, r);
        for (int s = 0; s < STEPS; s++) {
            memcpy(fl_params_data(g), s_grads[s], sizeof s_grads[s]);
            fl_optim_step(o, w, g);
        }
        assert_int_equal(fl_optim_steps(o), STEPS);
        fl_optim_reset(o);
        assert_int_equal(fl_optim_steps(o), 0);
        /* After reset, a step from the start weights equals the first step of a fresh
         * optimizer without a reference (reset forgets it too). */
        assert_int_equal(fl_params_copy(w, fresh_w), 0);
        memcpy(fl_params_data(g), s_grads[1], sizeof s_grads[1]);
        fl_optim_step(o, w, g);
        fl_optim_step(fresh, fresh_w, g);
        assert_memory_equal(fl_params_data(w), fl_params_data(fresh_w), N * sizeof(float));
        fl_optim_destroy(&o);
        fl_optim_destroy(&fresh);
        fl_optim_destroy(&fresh); /* idempotent */
        fl_params_destroy(&w);
        fl_params_destroy(&g);
        fl_params_destroy(&r);
        fl_params_destroy(&fresh_w);
    }
}

static void
test_set_lr_and_cosine(void **state)
{
    (void)state;
    fl_optim_config_t c;
    fl_optim_config_default(&c, FL_OPTIM_SGD);
    c.lr = 0.1f;
    c.momentum = 0.0f;
    fl_params_t *w = s_vec(s_w0), *g = s_vec(s_grads[0]);
    fl_optim_t *o = NULL;
    assert_int_equal(fl_optim_new(&c, w, &o), 0);
    assert_int_equal(fl_optim_set_lr(o, 0.5f), 0);
    assert_true(fl_optim_config(o)->lr == 0.5f);
    fl_optim_step(o, w, g);
    /* w0[0] - 0.5 * 0.2 */
    assert_true(fabsf(fl_params_data(w)[0] - 0.9f) < 1e-7f);
    assert_int_equal(fl_optim_set_lr(o, 0.0f), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "lr"));
    assert_int_equal(fl_optim_set_lr(o, NAN), FL_EINVAL);
    assert_int_equal(fl_optim_set_lr(o, -1.0f), FL_EINVAL);
    assert_true(fl_optim_config(o)->lr == 0.5f);
    fl_optim_destroy(&o);
    fl_params_destroy(&w);
    fl_params_destroy(&g);

    assert_true(fl_optim_cosine_lr(0.2f, 0, 100) == 0.2f);
    assert_true(fabsf(fl_optim_cosine_lr(0.2f, 50, 100) - 0.1f) < 1e-7f);
    assert_true(fabsf(fl_optim_cosine_lr(0.2f, 25, 100) - 0.2f * 0.8535534f) < 1e-7f);
    assert_true(fl_optim_cosine_lr(0.2f, 100, 100) < 1e-9f);
    assert_true(fl_optim_cosine_lr(0.2f, 500, 100) < 1e-9f);
    assert_true(fl_optim_cosine_lr(0.2f, 7, 0) == 0.2f);
}

/* fl_optim_new must refuse cfg with FL_EINVAL, a detail containing `field`, and leave
 * *out alone. */
static void
s_expect_invalid(const fl_optim_config_t *cfg, const char *field)
{
    fl_params_t *w = s_vec(s_w0);
    static char dummy;
    fl_optim_t *const sentinel = (fl_optim_t *)(void *)&dummy; /* must survive the failure */
    fl_optim_t *o = sentinel;
    fl_errclear();
    assert_int_equal(fl_optim_new(cfg, w, &o), FL_EINVAL);
    assert_ptr_equal(o, sentinel);
    if (!strstr(fl_errmsg(), field))
        fail_msg("error '%s' does not name '%s'", fl_errmsg(), field);
    fl_params_destroy(&w);
}

static void
test_config_validation(void **state)
{
    (void)state;
    fl_optim_config_t c;
    const float nan = NAN, inf = INFINITY;
    struct {
        fl_optim_kind_t kind;
        float *field_of_c; /* set below */
        float value;
        const char *name;
    } cases[] = {
        {FL_OPTIM_SGD, &c.lr, 0.0f, "lr"},
        {FL_OPTIM_SGD, &c.lr, -0.1f, "lr"},
        {FL_OPTIM_SGD, &c.lr, nan, "lr"},
        {FL_OPTIM_SGD, &c.lr, inf, "lr"},
        {FL_OPTIM_ADAM, &c.lr, 0.0f, "lr"},
        {FL_OPTIM_SGD, &c.momentum, 1.0f, "momentum"},
        {FL_OPTIM_SGD, &c.momentum, -0.1f, "momentum"},
        {FL_OPTIM_SGD, &c.momentum, nan, "momentum"},
        {FL_OPTIM_SGD, &c.weight_decay, -1e-4f, "weight_decay"},
        {FL_OPTIM_ADAM, &c.weight_decay, nan, "weight_decay"},
        {FL_OPTIM_SGD, &c.weight_decay, inf, "weight_decay"},
        {FL_OPTIM_ADAM, &c.beta1, 1.0f, "beta1"},
        {FL_OPTIM_ADAM, &c.beta1, -0.5f, "beta1"},
        {FL_OPTIM_ADAM, &c.beta2, 1.0f, "beta2"},
        {FL_OPTIM_ADAM, &c.beta2, nan, "beta2"},
        {FL_OPTIM_ADAM, &c.eps, 0.0f, "eps"},
        {FL_OPTIM_ADAM, &c.eps, -1e-8f, "eps"},
        {FL_OPTIM_ADAM, &c.eps, inf, "eps"},
        {FL_OPTIM_SGD, &c.prox_mu, -0.01f, "prox_mu"},
        {FL_OPTIM_ADAM, &c.prox_mu, nan, "prox_mu"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_optim_config_default(&c, cases[i].kind);
        *cases[i].field_of_c = cases[i].value;
        s_expect_invalid(&c, cases[i].name);
    }
    fl_optim_config_default(&c, FL_OPTIM_SGD);
    c.kind = (fl_optim_kind_t)7;
    s_expect_invalid(&c, "kind");

    /* Fields a kind does not use are not checked: SGD ignores eps and betas, Adam
     * ignores momentum. */
    fl_params_t *w = s_vec(s_w0);
    fl_optim_t *o = NULL;
    fl_optim_config_default(&c, FL_OPTIM_SGD);
    c.eps = 0.0f;
    c.beta1 = 2.0f;
    assert_int_equal(fl_optim_new(&c, w, &o), 0);
    assert_true(fl_optim_config(o)->lr == c.lr);
    fl_optim_destroy(&o);
    fl_optim_config_default(&c, FL_OPTIM_ADAM);
    c.momentum = 5.0f;
    assert_int_equal(fl_optim_new(&c, w, &o), 0);
    fl_optim_destroy(&o);
    /* Boundary values that are valid. */
    fl_optim_config_default(&c, FL_OPTIM_SGD);
    c.momentum = 0.0f;
    c.weight_decay = 0.0f;
    c.prox_mu = 0.0f;
    assert_int_equal(fl_optim_new(&c, w, &o), 0);
    fl_optim_destroy(&o);
    fl_params_destroy(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_names),
        cmocka_unit_test(test_sgd_plain),
        cmocka_unit_test(test_sgd_momentum),
        cmocka_unit_test(test_sgd_momentum_weight_decay),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_adam_weight_decay_betas_eps),
        cmocka_unit_test(test_adam_any_length),
        cmocka_unit_test(test_fedprox_sgd),
        cmocka_unit_test(test_fedprox_adam),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_set_lr_and_cosine),
        cmocka_unit_test(test_config_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
