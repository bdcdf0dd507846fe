/*
 * fl_model.c — softmax regression and ReLU MLPs: spec parsing, parameter
 * layout, initialisation, forward and backward passes. See fl_model.h.
 *
 * Shapes. Layer l maps in = dims[l] to out = dims[l+1] features. For a batch
 * of n rows, with A the n x in input of the layer (x for layer 0) and W its
 * out x in weight (PyTorch's layout):
 *
 *   forward    Z  = A W^T + b            sgemm(NoTrans, Trans)   n x out, beta 1 onto rows of b
 *              A' = relu(Z)              (hidden layers; one pass in place)
 *   backward   dW = dZ^T A               sgemm(Trans, NoTrans)   out x in
 *              db = column sums of dZ    (folded into the pass that makes dZ)
 *              dA = dZ W                 sgemm(NoTrans, NoTrans) n x in, not for layer 0
 *              dZ_prev = dA * [A > 0]    (one pass, which also sums db of layer l-1)
 *
 * Workspace: act[l] (max_batch x dims[l+1]) holds layer l's output — the ReLU
 * activations of a hidden layer, the logits of the last — and is overwritten
 * in place by dZ of that layer during the backward pass, once it is no longer
 * needed; `scratch` (max_batch x widest hidden layer) receives dA before the
 * ReLU mask is applied. So a step needs no allocation and touches little memory.
 */
#include "fl_model.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_blas.h"
#include "fl_rng.h"

typedef enum { S_SOFTMAX, S_MLP } s_kind_t;

struct fl_model {
    char spec[FL_MODEL_SPEC_MAX];
    int nlayers;
    size_t dims[FL_MODEL_LAYERS_MAX + 1];
    size_t max_batch;
    fl_params_t *params;
    fl_params_t *grads;
    /* Cached tensor data pointers (stable: the layout never changes). */
    float *w[FL_MODEL_LAYERS_MAX], *b[FL_MODEL_LAYERS_MAX];
    float *gw[FL_MODEL_LAYERS_MAX], *gb[FL_MODEL_LAYERS_MAX];
    float *ws; /* one allocation holding act[] and scratch */
    float *act[FL_MODEL_LAYERS_MAX];
    float *scratch;
};

/* A parsed spec. */
typedef struct {
    s_kind_t kind;
    int nlayers;
    size_t dims[FL_MODEL_LAYERS_MAX + 1];
} s_spec_t;

/*
 * Parse a spec string into its kind and dimensions, checking every cap.
 * Returns 0 or FL_EINVAL with a detail naming the problem.
 */
static int
s_parse(const char *spec, s_spec_t *out)
{
    s_spec_t sp = {0};
    if (!spec || !*spec)
        return fl_fail(FL_EINVAL, "model spec is empty (expected e.g. softmax:784-10 or "
                                  "mlp:784-256-10)");
    size_t len = strnlen(spec, FL_MODEL_SPEC_MAX);
    if (len >= FL_MODEL_SPEC_MAX)
        return fl_fail(FL_EINVAL, "model spec is longer than %d characters",
                       FL_MODEL_SPEC_MAX - 1);
    const char *colon = strchr(spec, ':');
    if (!colon)
        return fl_fail(FL_EINVAL, "model spec '%s': missing ':' after the kind (expected e.g. "
                                  "softmax:784-10 or mlp:784-256-10)", spec);
    size_t klen = (size_t)(colon - spec);
    if (klen == 7 && strncmp(spec, "softmax", 7) == 0)
        sp.kind = S_SOFTMAX;
    else if (klen == 3 && strncmp(spec, "mlp", 3) == 0)
        sp.kind = S_MLP;
    else
        return fl_fail(FL_EINVAL, "model spec '%s': unknown kind '%.*s' (expected softmax or mlp)",
                       spec, (int)klen, spec);

    /* Dimensions: decimal integers separated by '-'. */
    int ndims = 0;
    const char *p = colon + 1;
    for (;;) {
        const char *start = p;
        size_t v = 0;
        while (*p >= '0' && *p <= '9') {
            if (v <= FL_MODEL_DIM_MAX)
                v = v * 10 + (size_t)(*p - '0');
            p++;
        }
        if (p == start || (*p != '-' && *p != '\0')) {
            const char *end = p;
            while (*end && *end != '-')
                end++;
            return fl_fail(FL_EINVAL, "model spec '%s': dimension %d ('%.*s') is not a positive "
                                      "integer", spec, ndims + 1, (int)(end - start), start);
        }
        if (v == 0)
            return fl_fail(FL_EINVAL, "model spec '%s': dimension %d is zero", spec, ndims + 1);
        if (v > FL_MODEL_DIM_MAX)
            return fl_fail(FL_EINVAL, "model spec '%s': dimension %d ('%.*s') exceeds %zu", spec,
                           ndims + 1, (int)(p - start), start, FL_MODEL_DIM_MAX);
        if (ndims == FL_MODEL_LAYERS_MAX + 1)
            return fl_fail(FL_EINVAL, "model spec '%s': more than %d layers", spec,
                           FL_MODEL_LAYERS_MAX);
        sp.dims[ndims++] = v;
        if (*p == '\0')
            break;
        p++; /* the '-' */
    }
    if (sp.kind == S_SOFTMAX && ndims != 2)
        return fl_fail(FL_EINVAL, "model spec '%s': softmax takes exactly two dimensions "
                                  "(inputs-classes), got %d", spec, ndims);
    if (sp.kind == S_MLP && ndims < 3)
        return fl_fail(FL_EINVAL, "model spec '%s': mlp needs at least one hidden layer "
                                  "(inputs-hidden-...-classes; use softmax:D-C for none)", spec);
    if (sp.dims[ndims - 1] < 2)
        return fl_fail(FL_EINVAL, "model spec '%s': at least 2 classes are needed, got %zu", spec,
                       sp.dims[ndims - 1]);
    sp.nlayers = ndims - 1;

    size_t total = 0;
    for (int l = 0; l < sp.nlayers; l++) {
        size_t nw;
        /* dims are <= 2^20, so neither product nor sum can overflow 64 bits; keep the checks
         * honest anyway. */
        if (!fl_mul_ok(sp.dims[l + 1], sp.dims[l] + 1, &nw) || total + nw < total ||
            total + nw > FL_PARAMS_MAX_ELEMS)
            return fl_fail(FL_EINVAL, "model spec '%s': more than %zu parameters", spec,
                           FL_PARAMS_MAX_ELEMS);
        total += nw;
    }
    *out = sp;
    return 0;
}

/* Canonical spec text of a parsed spec. */
static void
s_format(const s_spec_t *sp, char *buf, size_t size)
{
    size_t j = (size_t)snprintf(buf, size, "%s:", sp->kind == S_SOFTMAX ? "softmax" : "mlp");
    for (int i = 0; i <= sp->nlayers && j < size; i++)
        j += (size_t)snprintf(buf + j, size - j, i ? "-%zu" : "%zu", sp->dims[i]);
}

/* Build the zeroed parameter set of a parsed spec. */
static int
s_build_layout(const s_spec_t *sp, fl_params_t **params_p)
{
    fl_params_t *params = fl_params_new();
    int rc = 0;
    for (int l = 0; l < sp->nlayers && rc == 0; l++) {
        char name[FL_NAME_MAX];
        size_t wshape[2] = {sp->dims[l + 1], sp->dims[l]};
        snprintf(name, sizeof name, "fc%d.weight", l);
        rc = fl_params_add(params, name, 2, wshape);
        if (rc == 0) {
            snprintf(name, sizeof name, "fc%d.bias", l);
            rc = fl_params_add(params, name, 1, &wshape[0]);
        }
    }
    if (rc < 0) {
        fl_params_destroy(&params);
        return rc;
    }
    *params_p = params;
    return 0;
}

int
fl_model_layout(const char *spec, fl_params_t **params_p)
{
    s_spec_t sp = {0};
    int rc = s_parse(spec, &sp);
    if (rc < 0)
        return rc;
    return s_build_layout(&sp, params_p);
}

/* Workspace floats rounded up to whole cache lines, so each buffer is 64-byte aligned. */
static size_t
s_round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

int
fl_model_new(const char *spec, size_t max_batch, fl_model_t **model_p)
{
    s_spec_t sp = {0};
    fl_model_t *self = NULL;
    int rc = s_parse(spec, &sp);
    if (rc < 0)
        return rc;
    if (max_batch < 1 || max_batch > FL_MODEL_BATCH_MAX)
        return fl_fail(FL_EINVAL, "model '%s': max batch %zu outside 1..%zu", spec, max_batch,
                       FL_MODEL_BATCH_MAX);

    /* Workspace size; dims and max_batch are <= 2^20 and layers <= 16, so this fits 64 bits
     * with room to spare, but the products are checked all the same. */
    size_t ws_floats = 0, widest_hidden = 0, part;
    for (int l = 0; l < sp.nlayers; l++) {
        if (!fl_mul_ok(max_batch, sp.dims[l + 1], &part))
            return fl_fail(FL_ENOMEM, "model '%s': workspace size overflows", spec);
        ws_floats += s_round16(part);
        if (l + 1 < sp.nlayers && sp.dims[l + 1] > widest_hidden)
            widest_hidden = sp.dims[l + 1];
    }
    if (!fl_mul_ok(max_batch, widest_hidden, &part) ||
        !fl_mul_ok(ws_floats + s_round16(part), sizeof(float), &part))
        return fl_fail(FL_ENOMEM, "model '%s': workspace size overflows", spec);
    size_t ws_bytes = part;
    if (ws_bytes > FL_MODEL_WORKSPACE_MAX)
        return fl_fail(FL_ERANGE, "model '%s': a batch of %zu needs a %zu MiB workspace (limit %zu "
                                  "MiB)", spec, max_batch, ws_bytes >> 20,
                       FL_MODEL_WORKSPACE_MAX >> 20);

    self = fl_xcalloc(1, sizeof *self);
    s_format(&sp, self->spec, sizeof self->spec);
    self->nlayers = sp.nlayers;
    memcpy(self->dims, sp.dims, sizeof self->dims);
    self->max_batch = max_batch;
    rc = s_build_layout(&sp, &self->params);
    if (rc < 0)
        goto out;
    self->grads = fl_params_clone_layout(self->params);
    for (int l = 0; l < sp.nlayers; l++) {
        self->w[l] = fl_params_at(self->params, (size_t)(2 * l))->data;
        self->b[l] = fl_params_at(self->params, (size_t)(2 * l + 1))->data;
        self->gw[l] = fl_params_at(self->grads, (size_t)(2 * l))->data;
        self->gb[l] = fl_params_at(self->grads, (size_t)(2 * l + 1))->data;
    }

    void *mem = NULL;
    if (posix_memalign(&mem, 64, ws_bytes ? ws_bytes : 64) != 0) {
        rc = fl_fail(FL_ENOMEM, "model '%s': cannot allocate a %zu-byte workspace for batch %zu",
                     spec, ws_bytes, max_batch);
        goto out;
    }
    /* Touch every page now: first-touch faults cost ~14 us per page, which would otherwise
     * land on the first training steps. */
    memset(mem, 0, ws_bytes);
    self->ws = mem;
    float *p = self->ws;
    for (int l = 0; l < sp.nlayers; l++) {
        self->act[l] = p;
        p += s_round16(max_batch * sp.dims[l + 1]);
    }
    self->scratch = widest_hidden ? p : NULL;

    fl_blas_init_default();
    *model_p = self;
    self = NULL;
    rc = 0;
out:
    fl_model_destroy(&self);
    return rc;
}

void
fl_model_destroy(fl_model_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_model_t *self = *self_p;
    fl_params_destroy(&self->params);
    fl_params_destroy(&self->grads);
    free(self->ws);
    free(self);
    *self_p = NULL;
}

const char *
fl_model_spec(const fl_model_t *self)
{
    return self->spec;
}

size_t
fl_model_input_dim(const fl_model_t *self)
{
    return self->dims[0];
}

size_t
fl_model_num_classes(const fl_model_t *self)
{
    return self->dims[self->nlayers];
}

size_t
fl_model_max_batch(const fl_model_t *self)
{
    return self->max_batch;
}

fl_params_t *
fl_model_params(fl_model_t *self)
{
    return self->params;
}

fl_params_t *
fl_model_grads(fl_model_t *self)
{
    return self->grads;
}

void
fl_model_init(fl_model_t *self, uint64_t seed)
{
    fl_rng_t rng;
    fl_rng_seed(&rng, seed, 0);
    for (int l = 0; l < self->nlayers; l++) {
        size_t in = self->dims[l], out = self->dims[l + 1];
        double bound = 1.0 / sqrt((double)in);
        for (size_t i = 0; i < out * in; i++)
            self->w[l][i] = (float)((2.0 * fl_rng_uniform(&rng) - 1.0) * bound);
        for (size_t i = 0; i < out; i++)
            self->b[l][i] = (float)((2.0 * fl_rng_uniform(&rng) - 1.0) * bound);
    }
}

double
fl_model_flops(const fl_model_t *self, size_t n, bool train)
{
    double flops = 0.0;
    for (int l = 0; l < self->nlayers; l++) {
        double mac = (double)n * (double)self->dims[l] * (double)self->dims[l + 1];
        flops += 2.0 * mac;     /* forward */
        if (train) {
            flops += 2.0 * mac; /* dW */
            if (l > 0)
                flops += 2.0 * mac; /* dA */
        }
    }
    return flops;
}

/* Every row of the n x m block z set to b. */
static void
s_broadcast_rows(float *restrict z, const float *restrict b, size_t n, size_t m)
{
    for (size_t r = 0; r < n; r++)
        memcpy(z + r * m, b, m * sizeof *z);
}

/*
 * ReLU in place over n contiguous values. Written `v < 0 ? 0 : v` so that a NaN
 * propagates (as torch.relu does) instead of being hidden as 0.
 */
static void
s_relu(float *restrict z, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = z[i];
        z[i] = v < 0.0f ? 0.0f : v;
    }
}

/*
 * The forward pass on n rows; the logits go to `logits` (n x C), or to the last
 * activation buffer when it is NULL.
 */
static void
s_forward(fl_model_t *self, const float *x, size_t n, float *logits)
{
    const float *in_buf = x;
    for (int l = 0; l < self->nlayers; l++) {
        size_t in = self->dims[l], out = self->dims[l + 1];
        bool last = l + 1 == self->nlayers;
        float *z = last && logits ? logits : self->act[l];
        /* Z starts as the bias in every row and sgemm adds A W^T to it (beta = 1): the bias
         * costs no pass of its own, and OpenBLAS skips its slower beta = 0 clearing pass. */
        s_broadcast_rows(z, self->b[l], n, out);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)out, (int)in, 1.0f,
                    in_buf, (int)in, self->w[l], (int)in, 1.0f, z, (int)out);
        if (!last)
            s_relu(z, n * out);
        in_buf = z;
    }
}

/* Index of the largest of z[0..c) (the first one on ties, as torch.argmax). */
static size_t
s_argmax(const float *z, size_t c, float *max_p)
{
    size_t am = 0;
    float m = z[0];
    for (size_t j = 1; j < c; j++)
        if (z[j] > m) {
            m = z[j];
            am = j;
        }
    *max_p = m;
    return am;
}

/*
 * Softmax, cross-entropy and its gradient in one pass over the n x c logits z,
 * which are replaced by dL/dz = (softmax(z) - onehot(y)) / n; db receives the
 * column sums of that gradient (the last layer's bias gradient). Returns the
 * summed cross-entropy.
 */
static double
s_softmax_xent_grad(float *restrict z, const int32_t *restrict y, size_t n, size_t c,
                    float *restrict db, size_t *correct)
{
    double loss = 0.0;
    size_t ok = 0;
    float inv_n = 1.0f / (float)n;
    memset(db, 0, c * sizeof *db);
    for (size_t r = 0; r < n; r++) {
        float *restrict row = z + r * c;
        assert(y[r] >= 0 && (size_t)y[r] < c);
        size_t t = (size_t)y[r];
        float m;
        ok += s_argmax(row, c, &m) == t;
        /* s starts from the first term, so that it is visibly > 0 before the log. */
        float zt = row[t], s = expf(row[0] - m);
        row[0] = s;
        for (size_t j = 1; j < c; j++) {
            float e = expf(row[j] - m);
            row[j] = e;
            s += e;
        }
        loss += (double)(m + logf(s) - zt);
        float k = inv_n / s;
        for (size_t j = 0; j < c; j++) {
            float g = row[j] * k;
            row[j] = g;
            db[j] += g;
        }
        row[t] -= inv_n;
        db[t] -= inv_n;
    }
    if (correct)
        *correct = ok;
    return loss;
}

/*
 * ReLU backward in one pass: dz[r][j] = a[r][j] > 0 ? da[r][j] : 0, written over the
 * activations a, while db sums the columns of dz (that layer's bias gradient).
 */
static void
s_relu_back(float *restrict a, const float *restrict da, size_t n, size_t m,
            float *restrict db)
{
    memset(db, 0, m * sizeof *db);
    for (size_t r = 0; r < n; r++) {
        float *restrict arow = a + r * m;
        const float *restrict drow = da + r * m;
        for (size_t j = 0; j < m; j++) {
            float g = arow[j] > 0.0f ? drow[j] : 0.0f;
            arow[j] = g;
            db[j] += g;
        }
    }
}

float
fl_model_loss_grad(fl_model_t *self, const float *x, const int32_t *y, size_t n, size_t *correct)
{
    assert(n >= 1 && n <= self->max_batch);
    int L = self->nlayers;
    size_t c = self->dims[L];

    s_forward(self, x, n, NULL);
    double loss = s_softmax_xent_grad(self->act[L - 1], y, n, c, self->gb[L - 1], correct);

    for (int l = L - 1; l >= 0; l--) {
        size_t in = self->dims[l], out = self->dims[l + 1];
        const float *a_in = l == 0 ? x : self->act[l - 1];
        const float *dz = self->act[l];
        /* dW = dZ^T A. Cleared with memset and accumulated with beta = 1: OpenBLAS's own
         * beta = 0 pass over C is markedly slower than memset for a C this large. */
        memset(self->gw[l], 0, out * in * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)n, 1.0f, dz,
                    (int)out, a_in, (int)in, 1.0f, self->gw[l], (int)in);
        if (l == 0)
            break; /* no one needs dX */
        /* dA = dZ W, then the ReLU mask turns it into dZ of layer l-1 in place of its
         * activations (which dW above was the last to need). */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)out, 1.0f,
                    dz, (int)out, self->w[l], (int)in, 0.0f, self->scratch, (int)in);
        s_relu_back(self->act[l - 1], self->scratch, n, in, self->gb[l - 1]);
    }
    return (float)(loss / (double)n);
}

void
fl_model_forward(fl_model_t *self, const float *x, size_t n, float *logits)
{
    assert(n >= 1 && n <= self->max_batch);
    assert(logits);
    s_forward(self, x, n, logits);
}

void
fl_model_evaluate(fl_model_t *self, const float *x, const int32_t *y, size_t n,
                  double *loss_sum, size_t *correct)
{
    size_t d = self->dims[0], c = self->dims[self->nlayers], ok = 0;
    double loss = 0.0;
    for (size_t start = 0; start < n; start += self->max_batch) {
        size_t m = n - start < self->max_batch ? n - start : self->max_batch;
        s_forward(self, x + start * d, m, NULL);
        const float *z = self->act[self->nlayers - 1];
        for (size_t r = 0; r < m; r++) {
            const float *row = z + r * c;
            int32_t t = y[start + r];
            assert(t >= 0 && (size_t)t < c);
            float mx;
            ok += s_argmax(row, c, &mx) == (size_t)t;
            float s = expf(row[0] - mx);
            for (size_t j = 1; j < c; j++)
                s += expf(row[j] - mx);
            loss += (double)(mx + logf(s) - row[t]);
        }
    }
    if (loss_sum)
        *loss_sum = loss;
    if (correct)
        *correct = ok;
}
