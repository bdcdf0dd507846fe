/*
 * test_model.c — unit tests of fl_model: spec parsing and its errors, the
 * parameter layout, deterministic initialisation, forward pass and loss against
 * an independent double-precision reference, gradients of every tensor against
 * central finite differences, evaluate/forward consistency, and a small problem
 * that must be learnt.
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

#include "fl_blas.h"
#include "fl_model.h"
#include "fl_optim.h"
#include "fl_params.h"
#include "fl_rng.h"
#include "fl_util.h"

/* ---- spec parsing ---------------------------------------------------------------------- */

static void
test_spec_valid(void **state)
{
    (void)state;
    fl_model_t *m = NULL;
    assert_int_equal(fl_model_new("softmax:784-10", 64, &m), 0);
    assert_string_equal(fl_model_spec(m), "softmax:784-10");
    assert_int_equal(fl_model_input_dim(m), 784);
    assert_int_equal(fl_model_num_classes(m), 10);
    assert_int_equal(fl_model_max_batch(m), 64);
    fl_model_destroy(&m);
    assert_null(m);
    fl_model_destroy(&m); /* idempotent */
    fl_model_destroy(NULL);

    /* Leading zeros are accepted and dropped from the canonical spec. */
    assert_int_equal(fl_model_new("mlp:0784-256-010", 1, &m), 0);
    assert_string_equal(fl_model_spec(m), "mlp:784-256-10");
    assert_int_equal(fl_model_input_dim(m), 784);
    assert_int_equal(fl_model_num_classes(m), 10);
    fl_model_destroy(&m);

    /* The caps themselves are allowed: 16 layers; a dimension of 2^20 (as input). */
    char spec[FL_MODEL_SPEC_MAX];
    int j = snprintf(spec, sizeof spec, "mlp:3");
    for (int l = 0; l < FL_MODEL_LAYERS_MAX; l++)
        j += snprintf(spec + j, sizeof spec - (size_t)j, "-2");
    assert_int_equal(fl_model_new(spec, 2, &m), 0);
    fl_params_t *p = fl_model_params(m);
    assert_int_equal(fl_params_count(p), 2 * FL_MODEL_LAYERS_MAX);
    assert_non_null(fl_params_find(p, "fc15.weight"));
    fl_model_destroy(&m);
    fl_params_t *big = NULL;
    assert_int_equal(fl_model_layout("softmax:1048576-2", &big), 0);
    assert_int_equal(fl_params_numel(big), 2 * 1048576 + 2);
    fl_params_destroy(&big);
}

static void
test_spec_invalid(void **state)
{
    (void)state;
    char longspec[400], deep[200];
    memset(longspec, '1', sizeof longspec - 1);
    memcpy(longspec, "mlp:", 4);
    longspec[sizeof longspec - 1] = 0;
    int j = snprintf(deep, sizeof deep, "mlp:3");
    for (int l = 0; l < FL_MODEL_LAYERS_MAX + 1; l++)
        j += snprintf(deep + j, sizeof deep - (size_t)j, "-2");

    struct {
        const char *spec;
        const char *detail;
    } cases[] = {
        {"", "empty"},
        {"softmax", "missing ':'"},
        {"softmax784-10", "missing ':'"},
        {"cnn:1-2", "unknown kind 'cnn'"},
        {"Softmax:4-3", "unknown kind 'Softmax'"},
        {":4-3", "unknown kind ''"},
        {" softmax:4-3", "unknown kind ' softmax'"},
        {"softmax:", "dimension 1 ('') is not a positive integer"},
        {"softmax:784", "exactly two dimensions"},
        {"softmax:4-3-2", "exactly two dimensions"},
        {"mlp:784-10", "at least one hidden layer"},
        {"softmax:784-x", "dimension 2 ('x') is not a positive integer"},
        {"softmax:784-10x", "dimension 2 ('10x') is not a positive integer"},
        {"softmax:-3", "dimension 1 ('') is not a positive integer"},
        {"softmax:+4-3", "dimension 1 ('+4') is not a positive integer"},
        {"softmax:4--3", "dimension 2 ('') is not a positive integer"},
        {"softmax:4-3-", "dimension 3 ('') is not a positive integer"},
        {"softmax:4-3 ", "dimension 2 ('3 ') is not a positive integer"},
        {"softmax:4.5-3", "dimension 1 ('4.5') is not a positive integer"},
        {"softmax:0-3", "dimension 1 is zero"},
        {"mlp:4-0-3", "dimension 2 is zero"},
        {"softmax:4-1", "at least 2 classes"},
        {"softmax:1048577-3", "dimension 1 ('1048577') exceeds 1048576"},
        {"mlp:4-99999999999999999999999-3", "dimension 2 ('99999999999999999999999') exceeds"},
        {"mlp:1048576-1048576-1048576-2", "more than 2147483648 parameters"},
        {deep, "more than 16 layers"},
        {longspec, "longer than 255"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static char dummy;
        fl_model_t *const sentinel = (fl_model_t *)(void *)&dummy;
        fl_model_t *m = sentinel;
        fl_params_t *p = (fl_params_t *)(void *)&dummy;
        fl_errclear();
        int rc = fl_model_new(cases[i].spec, 8, &m);
        if (rc != FL_EINVAL || !strstr(fl_errmsg(), cases[i].detail))
            fail_msg("spec '%s': rc %d, detail '%s', want '%s'", cases[i].spec, rc, fl_errmsg(),
                     cases[i].detail);
        assert_ptr_equal(m, sentinel);
        fl_errclear();
        assert_int_equal(fl_model_layout(cases[i].spec, &p), FL_EINVAL);
        assert_non_null(strstr(fl_errmsg(), cases[i].detail));
        assert_ptr_equal(p, (fl_params_t *)(void *)&dummy);
    }
    fl_model_t *m = NULL;
    assert_int_equal(fl_model_new(NULL, 8, &m), FL_EINVAL);
    assert_int_equal(fl_model_new("softmax:4-3", 0, &m), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "max batch 0"));
    assert_int_equal(fl_model_new("softmax:4-3", FL_MODEL_BATCH_MAX + 1, &m), FL_EINVAL);
    /* 2^20 rows of 2^20 hidden activations: far past the workspace limit. */
    assert_int_equal(fl_model_new("mlp:1-1048576-2", FL_MODEL_BATCH_MAX, &m), FL_ERANGE);
    assert_non_null(strstr(fl_errmsg(), "workspace"));
    assert_null(m);
}

/* ---- layout and init ------------------------------------------------------------------- */

static void
test_layout(void **state)
{
    (void)state;
    char buf[256];
    fl_params_t *p = NULL;
    assert_int_equal(fl_model_layout("mlp:784-256-10", &p), 0);
    assert_string_equal(fl_params_describe(p, buf, sizeof buf),
                        "fc0.weight[256,784] fc0.bias[256] fc1.weight[10,256] fc1.bias[10]");
    assert_int_equal(fl_params_numel(p), 256 * 784 + 256 + 10 * 256 + 10);
    for (size_t i = 0; i < fl_params_numel(p); i++)
        assert_true(fl_params_data(p)[i] == 0.0f);

    fl_params_t *q = NULL;
    assert_int_equal(fl_model_layout("softmax:784-10", &q), 0);
    assert_string_equal(fl_params_describe(q, buf, sizeof buf), "fc0.weight[10,784] fc0.bias[10]");
    fl_params_destroy(&q);

    /* A model's parameters and gradients have exactly the layout of fl_model_layout. */
    fl_model_t *m = NULL;
    assert_int_equal(fl_model_new("mlp:784-256-10", 4, &m), 0);
    assert_true(fl_params_same_layout(fl_model_params(m), p));
    assert_true(fl_params_same_layout(fl_model_grads(m), p));
    assert_ptr_not_equal(fl_params_data(fl_model_params(m)), fl_params_data(fl_model_grads(m)));
    fl_model_destroy(&m);
    fl_params_destroy(&p);

    assert_int_equal(fl_model_layout("mlp:5-7-6-3", &p), 0);
    assert_string_equal(fl_params_describe(p, buf, sizeof buf),
                        "fc0.weight[7,5] fc0.bias[7] fc1.weight[6,7] fc1.bias[6] fc2.weight[3,6] "
                        "fc2.bias[3]");
    fl_params_destroy(&p);
}

static void
test_init_deterministic(void **state)
{
    (void)state;
    fl_model_t *a = NULL, *b = NULL;
    assert_int_equal(fl_model_new("mlp:784-256-10", 2, &a), 0);
    assert_int_equal(fl_model_new("mlp:784-256-10", 8, &b), 0);
    fl_model_init(a, 42);
    fl_model_init(b, 42);
    size_t n = fl_params_numel(fl_model_params(a));
    assert_memory_equal(fl_params_data(fl_model_params(a)), fl_params_data(fl_model_params(b)),
                        n * sizeof(float));
    fl_model_init(b, 43);
    assert_memory_not_equal(fl_params_data(fl_model_params(a)),
                            fl_params_data(fl_model_params(b)), n * sizeof(float));

    /* Each tensor is U(-1/sqrt(in), 1/sqrt(in)): inside the bound, reaching close to it,
     * centred on zero. */
    fl_params_t *p = fl_model_params(a);
    for (size_t t = 0; t < fl_params_count(p); t++) {
        const fl_tensor_t *x = fl_params_at(p, t);
        double bound = 1.0 / sqrt(t < 2 ? 784.0 : 256.0), lo = 1e9, hi = -1e9, sum = 0.0;
        for (size_t i = 0; i < x->numel; i++) {
            double v = x->data[i];
            lo = fmin(lo, v);
            hi = fmax(hi, v);
            sum += v;
        }
        assert_true(lo >= -bound && hi <= bound);
        /* the smallest tensor (fc1.bias, 10 values) is checked loosely */
        double slack = x->numel >= 256 ? 0.05 : 0.6;
        assert_true(hi > bound * (1.0 - slack) && lo < -bound * (1.0 - slack));
        assert_true(fabs(sum / (double)x->numel) < bound * (x->numel >= 256 ? 0.1 : 0.7));
    }
    fl_model_destroy(&a);
    fl_model_destroy(&b);
}

/* ---- an independent reference in double precision --------------------------------------- */

/* Parse dims from our own test specs ("kind:a-b-c"). */
static int
s_dims(const char *spec, size_t *dims)
{
    const char *p = strchr(spec, ':') + 1;
    int n = 0;
    dims[0] = 0;
    for (; *p; p++) {
        if (*p == '-')
            dims[++n] = 0;
        else
            dims[n] = dims[n] * 10 + (size_t)(*p - '0');
    }
    n++;
    return n - 1;
}

/*
 * Mean cross-entropy of the model with parameters `w` (the float layout, read as
 * double, with element k replaced by w_k + delta when k is not SIZE_MAX), computed
 * naively in double; logits (n x C) are stored when not NULL.
 */
static double
s_ref_loss(const char *spec, const float *w, size_t k, double delta, const float *x,
           const int32_t *y, size_t n, double *logits)
{
    size_t dims[20];
    int L = s_dims(spec, dims);
    double a[64 * 16], z[64 * 16];
    double loss = 0.0;
    for (size_t r = 0; r < n; r++) {
        for (size_t i = 0; i < dims[0]; i++)
            a[i] = x[r * dims[0] + i];
        size_t off = 0;
        for (int l = 0; l < L; l++) {
            size_t in = dims[l], out = dims[l + 1];
            for (size_t o = 0; o < out; o++) {
                double s = 0.0;
                for (size_t i = 0; i < in; i++) {
                    size_t idx = off + o * in + i;
                    s += ((double)w[idx] + (idx == k ? delta : 0.0)) * a[i];
                }
                size_t bidx = off + out * in + o;
                s += (double)w[bidx] + (bidx == k ? delta : 0.0);
                z[o] = (l + 1 < L && s < 0.0) ? 0.0 : s;
            }
            off += out * in + out;
            memcpy(a, z, out * sizeof(double));
        }
        size_t c = dims[L];
        double m = a[0], s = 0.0;
        for (size_t j = 1; j < c; j++)
            m = fmax(m, a[j]);
        for (size_t j = 0; j < c; j++)
            s += exp(a[j] - m);
        loss += m + log(s) - a[y[r]];
        if (logits)
            memcpy(logits + r * c, a, c * sizeof(double));
    }
    return loss / (double)n;
}

/* A model initialised with `seed`, plus n random rows in [-1, 1] and labels. */
static fl_model_t *
s_setup(const char *spec, size_t max_batch, size_t n, uint64_t seed, float **x_p, int32_t **y_p)
{
    fl_model_t *m = NULL;
    assert_int_equal(fl_model_new(spec, max_batch, &m), 0);
    fl_model_init(m, seed);
    size_t d = fl_model_input_dim(m), c = fl_model_num_classes(m);
    fl_rng_t rng;
    fl_rng_seed(&rng, seed, 99);
    float *x = fl_xmalloc(n * d * sizeof(float));
    int32_t *y = fl_xmalloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n * d; i++)
        x[i] = (float)(2.0 * fl_rng_uniform(&rng) - 1.0);
    for (size_t i = 0; i < n; i++)
        y[i] = (int32_t)fl_rng_below(&rng, c);
    /* Scale the weights up so that the gradients are not tiny and the hidden units are
     * clearly on one side of the ReLU kink or the other. */
    float *w = fl_params_data(fl_model_params(m));
    for (size_t i = 0; i < fl_params_numel(fl_model_params(m)); i++)
        w[i] *= 2.0f;
    *x_p = x;
    *y_p = y;
    return m;
}

/* ---- gradient check --------------------------------------------------------------------- */

static void
s_gradcheck(const char *spec)
{
    const size_t n = 4;
    float *x;
    int32_t *y;
    fl_model_t *m = s_setup(spec, n, n, 7, &x, &y);
    fl_params_t *params = fl_model_params(m), *grads = fl_model_grads(m);
    /* Poison the gradients: every element must be written by loss_grad. */
    for (size_t i = 0; i < fl_params_numel(grads); i++)
        fl_params_data(grads)[i] = NAN;

    size_t correct = 999;
    float loss = fl_model_loss_grad(m, x, y, n, &correct);
    double ref = s_ref_loss(spec, fl_params_data(params), SIZE_MAX, 0.0, x, y, n, NULL);
    if (fabs(loss - ref) > 1e-5 * (1.0 + ref))
        fail_msg("%s: loss %.8g, reference %.8g", spec, (double)loss, ref);
    assert_true(correct <= n);

    /* Every element of every tensor against a central difference of the double
     * reference (h small enough for truncation error ~1e-9, and exact in double). */
    const double h = 1e-5;
    double worst = 0.0;
    for (size_t t = 0; t < fl_params_count(grads); t++) {
        const fl_tensor_t *g = fl_params_at(grads, t);
        for (size_t i = 0; i < g->numel; i++) {
            size_t k = g->offset + i;
            double up = s_ref_loss(spec, fl_params_data(params), k, h, x, y, n, NULL);
            double down = s_ref_loss(spec, fl_params_data(params), k, -h, x, y, n, NULL);
            double num = (up - down) / (2.0 * h), got = g->data[i];
            double err = fabs(got - num) / (1e-4 + fabs(num));
            if (!(err < 1e-3))
                fail_msg("%s: d loss / d %s[%zu] = %.8g, finite difference %.8g", spec, g->name,
                         i, got, num);
            worst = fmax(worst, err);
        }
    }

    /* The same check with the model's own float forward pass (through evaluate), with a
     * larger step suited to float32: the model differentiates the function it computes. */
    float *w = fl_params_data(params);
    const float hf = 1e-2f;
    for (size_t k = 0; k < fl_params_numel(params); k += 3) {
        float saved = w[k];
        double up, down;
        w[k] = saved + hf;
        fl_model_evaluate(m, x, y, n, &up, NULL);
        w[k] = saved - hf;
        fl_model_evaluate(m, x, y, n, &down, NULL);
        w[k] = saved;
        double num = (up - down) / (double)n / (2.0 * (double)hf);
        double got = fl_params_data(grads)[k];
        if (fabs(got - num) > 2e-3 + 2e-2 * fabs(num))
            fail_msg("%s: float check of element %zu: %.6g vs %.6g", spec, k, got, num);
    }
    fl_model_destroy(&m);
    free(x);
    free(y);
}

static void
test_gradcheck_mlp(void **state)
{
    (void)state;
    s_gradcheck("mlp:5-7-6-3");
}

static void
test_gradcheck_softmax(void **state)
{
    (void)state;
    s_gradcheck("softmax:4-3");
}

static void
test_gradcheck_batch_of_one(void **state)
{
    (void)state;
    /* n = 1 < max_batch: only the rows given take part. */
    float *x;
    int32_t *y;
    fl_model_t *m = s_setup("mlp:3-4-2", 8, 8, 3, &x, &y);
    float loss = fl_model_loss_grad(m, x, y, 1, NULL);
    double ref = s_ref_loss("mlp:3-4-2", fl_params_data(fl_model_params(m)), SIZE_MAX, 0.0, x,
                            y, 1, NULL);
    assert_true(fabs(loss - ref) < 1e-5 * (1.0 + ref));
    const fl_tensor_t *gb = fl_params_find(fl_model_grads(m), "fc1.bias");
    double up = s_ref_loss("mlp:3-4-2", fl_params_data(fl_model_params(m)), gb->offset, 1e-5, x,
                           y, 1, NULL);
    double down = s_ref_loss("mlp:3-4-2", fl_params_data(fl_model_params(m)), gb->offset, -1e-5,
                             x, y, 1, NULL);
    assert_true(fabs(gb->data[0] - (up - down) / 2e-5) < 1e-4);
    /* For one row the output-bias gradient is softmax - onehot: it sums to zero. */
    assert_true(fabs(gb->data[0] + gb->data[1]) < 1e-6);
    fl_model_destroy(&m);
    free(x);
    free(y);
}

/* ---- forward / evaluate ----------------------------------------------------------------- */

static void
test_forward_evaluate_consistency(void **state)
{
    (void)state;
    const char *spec = "mlp:5-7-6-3";
    const size_t n = 10, mb = 4, c = 3;
    float *x;
    int32_t *y;
    fl_model_t *m = s_setup(spec, mb, n, 11, &x, &y);

    /* Forward in chunks of max_batch against the reference logits. */
    double ref_logits[10 * 3];
    s_ref_loss(spec, fl_params_data(fl_model_params(m)), SIZE_MAX, 0.0, x, y, n, ref_logits);
    float logits[10 * 3];
    for (size_t s = 0; s < n; s += mb)
        fl_model_forward(m, x + s * 5, n - s < mb ? n - s : mb, logits + s * c);
    double loss_sum = 0.0;
    size_t correct = 0;
    for (size_t r = 0; r < n; r++) {
        size_t am = 0;
        for (size_t j = 0; j < c; j++) {
            assert_true(fabs(logits[r * c + j] - ref_logits[r * c + j]) < 1e-5);
            if (logits[r * c + j] > logits[r * c + am])
                am = j;
        }
        correct += am == (size_t)y[r];
        double mx = fmax(fmax(ref_logits[r * c], ref_logits[r * c + 1]), ref_logits[r * c + 2]);
        double s = 0.0;
        for (size_t j = 0; j < c; j++)
            s += exp(ref_logits[r * c + j] - mx);
        loss_sum += mx + log(s) - ref_logits[r * c + (size_t)y[r]];
    }

    /* Evaluate over all n rows (chunks 4, 4, 2) gives the same sums and leaves the
     * gradients alone. */
    fl_params_zero(fl_model_grads(m));
    double ev_loss = -1.0;
    size_t ev_correct = 999;
    fl_model_evaluate(m, x, y, n, &ev_loss, &ev_correct);
    assert_true(fabs(ev_loss - loss_sum) < 1e-5 * (1.0 + loss_sum));
    assert_int_equal(ev_correct, correct);
    for (size_t i = 0; i < fl_params_numel(fl_model_grads(m)); i++)
        assert_true(fl_params_data(fl_model_grads(m))[i] == 0.0f);

    /* loss_grad on a full batch agrees with evaluate on the same rows. */
    size_t lg_correct;
    float lg = fl_model_loss_grad(m, x, y, mb, &lg_correct);
    double ev4;
    size_t c4;
    fl_model_evaluate(m, x, y, mb, &ev4, &c4);
    assert_true(fabs((double)lg * (double)mb - ev4) < 1e-5 * (1.0 + ev4));
    assert_int_equal(lg_correct, c4);

    /* Zero rows: zero sums. */
    fl_model_evaluate(m, x, y, 0, &ev4, &c4);
    assert_true(ev4 == 0.0);
    assert_int_equal(c4, 0);
    fl_model_destroy(&m);
    free(x);
    free(y);
}

static void
test_flops(void **state)
{
    (void)state;
    fl_model_t *m = NULL;
    assert_int_equal(fl_model_new("mlp:784-256-10", 64, &m), 0);
    /* forward 2*n*(784*256 + 256*10); backward dW of both layers, dA of the second only */
    double fwd = 2.0 * 64 * (784.0 * 256 + 256.0 * 10);
    assert_true(fl_model_flops(m, 64, false) == fwd);
    assert_true(fl_model_flops(m, 64, true) == 2 * fwd + 2.0 * 64 * 256 * 10);
    fl_model_destroy(&m);
}

/* ---- learning --------------------------------------------------------------------------- */

static void
test_learns_small_problem(void **state)
{
    (void)state;
    /* Three Gaussian blobs in 4 dimensions; an MLP trained with the default SGD must fit
     * them: the loss falls by more than 10x and every training point is classified right. */
    const size_t n = 96, d = 4, b = 16;
    static const float centres[3][4] = {{2, 0, 0, 1}, {-1, 2, 0, -1}, {0, -2, 2, 0}};
    float *x = fl_xmalloc(n * d * sizeof(float));
    int32_t *y = fl_xmalloc(n * sizeof(int32_t));
    fl_rng_t rng;
    fl_rng_seed(&rng, 5, 0);
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 3);
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = centres[y[i]][j] + 0.3f * (float)fl_rng_normal(&rng);
    }
    const char *specs[2] = {"mlp:4-16-3", "softmax:4-3"};
    for (int s = 0; s < 2; s++) {
        fl_model_t *m = NULL;
        assert_int_equal(fl_model_new(specs[s], b, &m), 0);
        fl_model_init(m, 1);
        fl_optim_config_t cfg;
        fl_optim_config_default(&cfg, FL_OPTIM_SGD);
        fl_optim_t *o = NULL;
        assert_int_equal(fl_optim_new(&cfg, fl_model_params(m), &o), 0);
        double first, last;
        size_t correct;
        fl_model_evaluate(m, x, y, n, &first, NULL);
        for (int epoch = 0; epoch < 30; epoch++)
            for (size_t i = 0; i < n; i += b) {
                fl_model_loss_grad(m, x + i * d, y + i, b, NULL);
                fl_optim_step(o, fl_model_params(m), fl_model_grads(m));
            }
        fl_model_evaluate(m, x, y, n, &last, &correct);
        if (!(last < first / 10.0) || correct != n)
            fail_msg("%s: loss %.4f -> %.4f, %zu/%zu correct", specs[s], first / (double)n,
                     last / (double)n, correct, n);
        assert_int_equal(fl_params_check_finite(fl_model_params(m)), 0);
        fl_optim_destroy(&o);
        fl_model_destroy(&m);
    }
    free(x);
    free(y);
}

static void
test_blas_threads(void **state)
{
    (void)state;
    fl_blas_init_default();
    assert_true(fl_blas_threads() >= 1);
    fl_blas_set_threads(1);
    assert_int_equal(fl_blas_threads(), 1);
    fl_blas_init_default(); /* does not override an explicit choice */
    assert_int_equal(fl_blas_threads(), 1);
    assert_non_null(fl_blas_corename());
    assert_true(strlen(fl_blas_corename()) > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_valid),
        cmocka_unit_test(test_spec_invalid),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_init_deterministic),
        cmocka_unit_test(test_gradcheck_mlp),
        cmocka_unit_test(test_gradcheck_softmax),
        cmocka_unit_test(test_gradcheck_batch_of_one),
        cmocka_unit_test(test_forward_evaluate_consistency),
        cmocka_unit_test(test_flops),
        cmocka_unit_test(test_learns_small_problem),
        cmocka_unit_test(test_blas_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
