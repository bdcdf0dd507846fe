/*
 * fl_serveropt.c — server optimizers (FedAvg, FedAvgM, FedAdagrad, FedAdam,
 * FedYogi) and their checkpointable state. See fl_serveropt.h for the update
 * rules and the choices made.
 */
#include "fl_serveropt.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fl_params.h"

#define S_MAGIC "CVSO"
#define S_VERSION 1u
#define S_HEADER 32u

struct fl_sopt {
    fl_sopt_config_t cfg;
    size_t numel;
    uint64_t step;
    float *m; /* first moment / momentum, or NULL when the kind has none */
    float *v; /* second moment, or NULL */
};

static const char *const s_names[FL_SOPT_KIND_COUNT] = {"fedavg", "fedavgm", "fedadagrad",
                                                         "fedadam", "fedyogi"};

static bool
s_kind_ok(fl_sopt_kind_t k)
{
    return (unsigned)k < FL_SOPT_KIND_COUNT;
}

static bool
s_has_m(fl_sopt_kind_t k)
{
    return k == FL_SOPT_FEDAVGM || k == FL_SOPT_FEDADAM || k == FL_SOPT_FEDYOGI;
}

static bool
s_has_v(fl_sopt_kind_t k)
{
    return k == FL_SOPT_FEDADAGRAD || k == FL_SOPT_FEDADAM || k == FL_SOPT_FEDYOGI;
}

static uint32_t
s_narrays(fl_sopt_kind_t k)
{
    return (uint32_t)s_has_m(k) + (uint32_t)s_has_v(k);
}

const char *
fl_sopt_kind_name(fl_sopt_kind_t k)
{
    return s_kind_ok(k) ? s_names[k] : "unknown";
}

int
fl_sopt_parse_kind(const char *s, fl_sopt_kind_t *out)
{
    for (unsigned k = 0; s && k < FL_SOPT_KIND_COUNT; k++)
        if (strcmp(s, s_names[k]) == 0) {
            *out = (fl_sopt_kind_t)k;
            return 0;
        }
    return fl_fail(FL_EINVAL,
                   "unknown server optimizer '%s' (fedavg, fedavgm, fedadagrad, fedadam, fedyogi)",
                   s ? s : "");
}

void
fl_sopt_config_default(fl_sopt_config_t *cfg, fl_sopt_kind_t kind)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    cfg->lr = 1.0f;
    switch (kind) {
    case FL_SOPT_FEDAVGM:
        cfg->momentum = 0.9f;
        break;
    case FL_SOPT_FEDADAGRAD:
        cfg->lr = 0.1f;
        cfg->tau = 1e-9f;
        break;
    case FL_SOPT_FEDADAM:
        cfg->lr = 0.1f;
        cfg->beta1 = 0.9f;
        cfg->beta2 = 0.99f;
        cfg->tau = 1e-9f;
        break;
    case FL_SOPT_FEDYOGI:
        cfg->lr = 0.01f;
        cfg->beta1 = 0.9f;
        cfg->beta2 = 0.99f;
        cfg->tau = 1e-3f;
        break;
    case FL_SOPT_FEDAVG:
    default:
        break;
    }
}

/* Is x in [0, 1)? (false for NaN) */
static bool
s_unit(float x)
{
    return x >= 0.0f && x < 1.0f;
}

int
fl_sopt_config_check(const fl_sopt_config_t *cfg)
{
    fl_sopt_kind_t k = cfg->kind;
    const char *name = fl_sopt_kind_name(k);

    if (!s_kind_ok(k))
        return fl_fail(FL_EINVAL, "server optimizer kind %d is not one of 0..%d", (int)k,
                       FL_SOPT_KIND_COUNT - 1);
    if (!(isfinite(cfg->lr) && cfg->lr > 0.0f))
        return fl_fail(FL_EINVAL, "%s: lr = %g must be a finite number > 0", name,
                       (double)cfg->lr);
    if (k == FL_SOPT_FEDAVGM && !s_unit(cfg->momentum))
        return fl_fail(FL_EINVAL, "%s: momentum = %g must be in [0, 1)", name,
                       (double)cfg->momentum);
    if (k == FL_SOPT_FEDADAM || k == FL_SOPT_FEDYOGI) {
        if (!s_unit(cfg->beta1))
            return fl_fail(FL_EINVAL, "%s: beta1 = %g must be in [0, 1)", name,
                           (double)cfg->beta1);
        if (!s_unit(cfg->beta2))
            return fl_fail(FL_EINVAL, "%s: beta2 = %g must be in [0, 1)", name,
                           (double)cfg->beta2);
    }
    /* tau > 0 also keeps lr * m / (sqrt(v) + tau) away from 0 / 0 where Δ
     * has always been zero. */
    if (s_has_v(k) && !(isfinite(cfg->tau) && cfg->tau > 0.0f))
        return fl_fail(FL_EINVAL, "%s: tau = %g must be a finite number > 0", name,
                       (double)cfg->tau);
    return 0;
}

/* A zeroed (touched), 64-byte aligned array of n floats; NULL on failure. */
static float *
s_alloc_zero(size_t n)
{
    void *p = NULL;
    size_t bytes = n * sizeof(float); /* n <= FL_PARAMS_MAX_ELEMS: no overflow */
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

int
fl_sopt_new(const fl_sopt_config_t *cfg, size_t numel, fl_sopt_t **out)
{
    fl_sopt_t *self = NULL;
    int rc = fl_sopt_config_check(cfg);

    if (rc < 0)
        goto out;
    if (numel == 0 || numel > FL_PARAMS_MAX_ELEMS) {
        rc = fl_fail(FL_EINVAL, "%s: model size %zu outside 1..%zu elements",
                     fl_sopt_kind_name(cfg->kind), numel, FL_PARAMS_MAX_ELEMS);
        goto out;
    }
    self = fl_xcalloc(1, sizeof *self);
    self->cfg = *cfg;
    self->numel = numel;
    if (s_has_m(cfg->kind) && !(self->m = s_alloc_zero(numel)))
        goto nomem;
    if (s_has_v(cfg->kind) && !(self->v = s_alloc_zero(numel)))
        goto nomem;
    *out = self;
    self = NULL;
    rc = 0;
    goto out;
nomem:
    rc = fl_fail(FL_ENOMEM, "%s: cannot allocate the state of %zu parameters",
                 fl_sopt_kind_name(cfg->kind), numel);
out:
    fl_sopt_destroy(&self);
    return rc;
}

void
fl_sopt_destroy(fl_sopt_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_sopt_t *self = *self_p;
    free(self->m);
    free(self->v);
    free(self);
    *self_p = NULL;
}

const fl_sopt_config_t *
fl_sopt_config(const fl_sopt_t *self)
{
    return &self->cfg;
}

uint64_t
fl_sopt_step(const fl_sopt_t *self)
{
    return self->step;
}

/*
 * The per-kind loops. They are plain element-wise loops over restrict
 * pointers so that -O3 vectorises them; the coefficients are computed once in
 * float so every step uses the same values.
 */
static void
s_fedavg(float *restrict x, const float *restrict d, size_t n, float lr)
{
    for (size_t i = 0; i < n; i++)
        x[i] += lr * d[i];
}

static void
s_fedavgm(float *restrict x, float *restrict m, const float *restrict d, size_t n, float lr,
          float mu)
{
    for (size_t i = 0; i < n; i++) {
        m[i] = mu * m[i] + d[i];
        x[i] += lr * m[i];
    }
}

static void
s_fedadagrad(float *restrict x, float *restrict v, const float *restrict d, size_t n, float lr,
             float tau)
{
    for (size_t i = 0; i < n; i++) {
        v[i] += d[i] * d[i];
        x[i] += lr * d[i] / (sqrtf(v[i]) + tau);
    }
}

static void
s_fedadam(float *restrict x, float *restrict m, float *restrict v, const float *restrict d,
          size_t n, const fl_sopt_config_t *cfg)
{
    const float b1 = cfg->beta1, c1 = 1.0f - cfg->beta1;
    const float b2 = cfg->beta2, c2 = 1.0f - cfg->beta2;
    const float lr = cfg->lr, tau = cfg->tau;
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + c1 * d[i];
        v[i] = b2 * v[i] + c2 * (d[i] * d[i]);
        x[i] += lr * m[i] / (sqrtf(v[i]) + tau);
    }
}

static void
s_fedyogi(float *restrict x, float *restrict m, float *restrict v, const float *restrict d,
          size_t n, const fl_sopt_config_t *cfg)
{
    const float b1 = cfg->beta1, c1 = 1.0f - cfg->beta1;
    const float c2 = 1.0f - cfg->beta2;
    const float lr = cfg->lr, tau = cfg->tau;
    for (size_t i = 0; i < n; i++) {
        float d2 = d[i] * d[i];
        float diff = v[i] - d2;
        float sign = diff > 0.0f ? 1.0f : (diff < 0.0f ? -1.0f : 0.0f);
        m[i] = b1 * m[i] + c1 * d[i];
        v[i] = v[i] - c2 * d2 * sign;
        x[i] += lr * m[i] / (sqrtf(v[i]) + tau);
    }
}

void
fl_sopt_apply(fl_sopt_t *self, float *global, const float *mean_delta, size_t numel)
{
    const fl_sopt_config_t *cfg = &self->cfg;

    assert(numel == self->numel);
    switch (cfg->kind) {
    case FL_SOPT_FEDAVG:
        s_fedavg(global, mean_delta, numel, cfg->lr);
        break;
    case FL_SOPT_FEDAVGM:
        s_fedavgm(global, self->m, mean_delta, numel, cfg->lr, cfg->momentum);
        break;
    case FL_SOPT_FEDADAGRAD:
        s_fedadagrad(global, self->v, mean_delta, numel, cfg->lr, cfg->tau);
        break;
    case FL_SOPT_FEDADAM:
        s_fedadam(global, self->m, self->v, mean_delta, numel, cfg);
        break;
    case FL_SOPT_FEDYOGI:
        s_fedyogi(global, self->m, self->v, mean_delta, numel, cfg);
        break;
    }
    self->step++;
}

/* ---- state (de)serialisation: explicit little-endian, any host order ---- */

static void
s_put_u32(uint8_t *p, uint32_t x)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(x >> (8 * i));
}

static void
s_put_u64(uint8_t *p, uint64_t x)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(x >> (8 * i));
}

static uint32_t
s_get_u32(const uint8_t *p)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++)
        x |= (uint32_t)p[i] << (8 * i);
    return x;
}

static uint64_t
s_get_u64(const uint8_t *p)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)p[i] << (8 * i);
    return x;
}

static void
s_put_floats(uint8_t *out, const float *a, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out, a, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &a[i], sizeof b);
        s_put_u32(out + 4 * i, b);
    }
#endif
}

static void
s_get_floats(float *a, const uint8_t *in, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(a, in, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t b = s_get_u32(in + 4 * i);
        memcpy(&a[i], &b, sizeof b);
    }
#endif
}

size_t
fl_sopt_state_size(const fl_sopt_t *self)
{
    /* numel <= FL_PARAMS_MAX_ELEMS (2^31): 2 arrays of 4-byte floats fit. */
    return S_HEADER + (size_t)s_narrays(self->cfg.kind) * self->numel * sizeof(float);
}

void
fl_sopt_state_export(const fl_sopt_t *self, uint8_t *out)
{
    size_t bytes = self->numel * sizeof(float);
    uint8_t *p = out + S_HEADER;

    memcpy(out, S_MAGIC, 4);
    s_put_u32(out + 4, S_VERSION);
    s_put_u32(out + 8, (uint32_t)self->cfg.kind);
    s_put_u32(out + 12, s_narrays(self->cfg.kind));
    s_put_u64(out + 16, (uint64_t)self->numel);
    s_put_u64(out + 24, self->step);
    if (self->m) {
        s_put_floats(p, self->m, self->numel);
        p += bytes;
    }
    if (self->v)
        s_put_floats(p, self->v, self->numel);
}

/* Check one serialised array: every value finite and, for v, not negative
 * (v is a sum or average of squares). Returns 0 or FL_EFORMAT naming it. */
static int
s_check_array(const uint8_t *p, size_t n, const char *what, bool nonneg)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t b = s_get_u32(p + 4 * i);
        if ((b & 0x7f800000u) == 0x7f800000u)
            return fl_fail(FL_EFORMAT, "optimizer state: %s[%zu] is %s", what, i,
                           (b & 0x007fffffu) ? "NaN" : "Inf");
        if (nonneg && (b & 0x80000000u) && (b & 0x7fffffffu))
            return fl_fail(FL_EFORMAT, "optimizer state: %s[%zu] is negative", what, i);
    }
    return 0;
}

int
fl_sopt_state_import(fl_sopt_t *self, const uint8_t *buf, size_t len)
{
    fl_sopt_kind_t kind = self->cfg.kind;
    size_t want = fl_sopt_state_size(self);
    size_t n = self->numel;
    const uint8_t *p;
    int rc;

    if (!buf || len < S_HEADER)
        return fl_fail(FL_EFORMAT, "optimizer state: %zu bytes, shorter than the %u-byte header",
                       buf ? len : 0, S_HEADER);
    if (memcmp(buf, S_MAGIC, 4) != 0)
        return fl_fail(FL_EFORMAT, "optimizer state: bad magic (not a Covey optimizer state)");
    uint32_t version = s_get_u32(buf + 4);
    if (version != S_VERSION)
        return fl_fail(FL_EFORMAT, "optimizer state: format version %u, this build reads %u",
                       version, S_VERSION);
    uint32_t k = s_get_u32(buf + 8);
    if (k != (uint32_t)kind)
        return fl_fail(FL_EFORMAT, "optimizer state is for %s (kind %u), this optimizer is %s",
                       fl_sopt_kind_name((fl_sopt_kind_t)k), k, fl_sopt_kind_name(kind));
    uint32_t narrays = s_get_u32(buf + 12);
    if (narrays != s_narrays(kind))
        return fl_fail(FL_EFORMAT, "optimizer state: %u arrays, %s has %u", narrays,
                       fl_sopt_kind_name(kind), s_narrays(kind));
    uint64_t numel = s_get_u64(buf + 16);
    if (numel != (uint64_t)n)
        return fl_fail(FL_EFORMAT, "optimizer state: %llu parameters, the model has %zu",
                       (unsigned long long)numel, n);
    if (len != want)
        return fl_fail(FL_EFORMAT, "optimizer state: %zu bytes, expected %zu (%s)", len, want,
                       len < want ? "truncated" : "trailing data");
    p = buf + S_HEADER;
    if (self->m && (rc = s_check_array(p, n, "m", false)) < 0)
        return rc;
    if (self->v && (rc = s_check_array(p + (self->m ? n * sizeof(float) : 0), n, "v", true)) < 0)
        return rc;

    /* Valid: only now change anything. */
    self->step = s_get_u64(buf + 24);
    if (self->m) {
        s_get_floats(self->m, p, n);
        p += n * sizeof(float);
    }
    if (self->v)
        s_get_floats(self->v, p, n);
    return 0;
}
