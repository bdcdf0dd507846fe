/*
 * fl_optim.c — SGD and Adam over a whole parameter set as one vector, with
 * weight decay and the FedProx term. See fl_optim.h for the exact update rules.
 *
 * Each variant is one plain loop over contiguous arrays with restrict pointers,
 * so the compiler vectorises it at -O3: the update is memory-bound and a pass
 * per term would multiply the traffic.
 */
#include "fl_optim.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

struct fl_optim {
    fl_optim_config_t cfg;
    size_t numel;
    float *s1; /* SGD momentum buffer, or Adam's first moment */
    float *s2; /* Adam's second moment (NULL for SGD) */
    const fl_params_t *ref;
    uint64_t steps;
};

void
fl_optim_config_default(fl_optim_config_t *cfg, fl_optim_kind_t kind)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    cfg->momentum = 0.9f;
    cfg->weight_decay = 0.0f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->eps = 1e-8f;
    cfg->prox_mu = 0.0f;
    cfg->lr = kind == FL_OPTIM_ADAM ? 1e-3f : 0.02f;
}

int
fl_optim_parse_kind(const char *s, fl_optim_kind_t *out)
{
    if (s && strcmp(s, "sgd") == 0)
        *out = FL_OPTIM_SGD;
    else if (s && strcmp(s, "adam") == 0)
        *out = FL_OPTIM_ADAM;
    else
        return fl_fail(FL_EINVAL, "unknown optimizer '%s' (expected sgd or adam)", s ? s : "");
    return 0;
}

const char *
fl_optim_kind_name(fl_optim_kind_t kind)
{
    switch (kind) {
    case FL_OPTIM_SGD: return "sgd";
    case FL_OPTIM_ADAM: return "adam";
    default: return "unknown";
    }
}

/* Check each field the kind uses; FL_EINVAL naming the first bad one. */
static int
s_validate(const fl_optim_config_t *c)
{
    if (c->kind != FL_OPTIM_SGD && c->kind != FL_OPTIM_ADAM)
        return fl_fail(FL_EINVAL, "optimizer kind %d is neither sgd nor adam", (int)c->kind);
    const char *k = fl_optim_kind_name(c->kind);
    if (!(isfinite(c->lr) && c->lr > 0.0f))
        return fl_fail(FL_EINVAL, "%s: lr must be a finite number > 0, got %g", k, (double)c->lr);
    if (!(isfinite(c->weight_decay) && c->weight_decay >= 0.0f))
        return fl_fail(FL_EINVAL, "%s: weight_decay must be a finite number >= 0, got %g", k,
                       (double)c->weight_decay);
    if (!(isfinite(c->prox_mu) && c->prox_mu >= 0.0f))
        return fl_fail(FL_EINVAL, "%s: prox_mu must be a finite number >= 0, got %g", k,
                       (double)c->prox_mu);
    if (c->kind == FL_OPTIM_SGD) {
        if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
            return fl_fail(FL_EINVAL, "sgd: momentum must be in [0, 1), got %g",
                           (double)c->momentum);
    } else {
        if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
            return fl_fail(FL_EINVAL, "adam: beta1 must be in [0, 1), got %g", (double)c->beta1);
        if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
            return fl_fail(FL_EINVAL, "adam: beta2 must be in [0, 1), got %g", (double)c->beta2);
        if (!(isfinite(c->eps) && c->eps > 0.0f))
            return fl_fail(FL_EINVAL, "adam: eps must be a finite number > 0, got %g",
                           (double)c->eps);
    }
    return 0;
}

/* A zeroed state vector of n floats; NULL when the allocation fails (the size comes
 * from a model, possibly large, so this reports instead of aborting). */
static float *
s_state_new(size_t n)
{
    void *p = NULL;
    size_t bytes = (n ? n : 16) * sizeof(float);
    if (posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    memset(p, 0, bytes); /* also takes the first-touch page faults now, not in a step */
    return p;
}

int
fl_optim_new(const fl_optim_config_t *cfg, const fl_params_t *layout, fl_optim_t **out)
{
    fl_optim_t *self = NULL;
    int rc = s_validate(cfg);
    if (rc < 0)
        return rc;
    self = fl_xcalloc(1, sizeof *self);
    self->cfg = *cfg;
    self->numel = fl_params_numel(layout);
    self->s1 = s_state_new(self->numel);
    if (cfg->kind == FL_OPTIM_ADAM)
        self->s2 = s_state_new(self->numel);
    if (!self->s1 || (cfg->kind == FL_OPTIM_ADAM && !self->s2)) {
        rc = fl_fail(FL_ENOMEM, "%s: cannot allocate state for %zu parameters",
                     fl_optim_kind_name(cfg->kind), self->numel);
        goto out;
    }
    *out = self;
    self = NULL;
    rc = 0;
out:
    fl_optim_destroy(&self);
    return rc;
}

void
fl_optim_destroy(fl_optim_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_optim_t *self = *self_p;
    free(self->s1);
    free(self->s2);
    free(self);
    *self_p = NULL;
}

const fl_optim_config_t *
fl_optim_config(const fl_optim_t *self)
{
    return &self->cfg;
}

void
fl_optim_set_prox_ref(fl_optim_t *self, const fl_params_t *ref)
{
    assert(!ref || fl_params_numel(ref) == self->numel);
    self->ref = ref;
}

void
fl_optim_reset(fl_optim_t *self)
{
    memset(self->s1, 0, self->numel * sizeof(float));
    if (self->s2)
        memset(self->s2, 0, self->numel * sizeof(float));
    self->steps = 0;
    self->ref = NULL;
}

int
fl_optim_set_lr(fl_optim_t *self, float lr)
{
    if (!(isfinite(lr) && lr > 0.0f))
        return fl_fail(FL_EINVAL, "%s: lr must be a finite number > 0, got %g",
                       fl_optim_kind_name(self->cfg.kind), (double)lr);
    self->cfg.lr = lr;
    return 0;
}

float
fl_optim_cosine_lr(float lr0, uint64_t step, uint64_t total)
{
    if (total == 0)
        return lr0;
    if (step > total)
        step = total;
    double t = (double)step / (double)total;
    return (float)((double)lr0 * 0.5 * (1.0 + cos(3.14159265358979323846 * t)));
}

uint64_t
fl_optim_steps(const fl_optim_t *self)
{
    return self->steps;
}

/* The gradient with weight decay added, as torch.optim does (grad.add(w, alpha=wd)). The
 * FedProx term is added by the loops that have a reference, so the others skip its load. */
static inline float
s_grad(float g, float w, float wd)
{
    return g + wd * w;
}

static void
s_sgd(float *restrict w, const float *restrict g, float *restrict buf, const float *restrict ref,
      size_t n, float lr, float mom, float wd, float mu)
{
    if (ref && mom != 0.0f) {
        for (size_t i = 0; i < n; i++) {
            float d = s_grad(g[i], w[i], wd) + mu * (w[i] - ref[i]);
            float b = mom * buf[i] + d;
            buf[i] = b;
            w[i] -= lr * b;
        }
    } else if (ref) {
        for (size_t i = 0; i < n; i++)
            w[i] -= lr * (s_grad(g[i], w[i], wd) + mu * (w[i] - ref[i]));
    } else if (mom != 0.0f) {
        for (size_t i = 0; i < n; i++) {
            float b = mom * buf[i] + s_grad(g[i], w[i], wd);
            buf[i] = b;
            w[i] -= lr * b;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            w[i] -= lr * s_grad(g[i], w[i], wd);
    }
}

/*
 * Adam over n elements. The square root keeps compilers from vectorising this loop
 * (sqrtf may set errno, and -fno-math-errno is not ours to choose), so on x86-64 the
 * body runs four elements at a time on SSE2 intrinsics, with the same operations in the
 * same order as the scalar tail below; other targets use the scalar loop throughout.
 */
static void
s_adam(float *restrict w, const float *restrict g, float *restrict m, float *restrict v,
       const float *restrict ref, size_t n, float step_size, float bc2_sqrt,
       const fl_optim_config_t *c, float mu)
{
    float b1 = c->beta1, b2 = c->beta2, wd = c->weight_decay, eps = c->eps;
    float a1 = 1.0f - b1, a2 = 1.0f - b2;
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), va1 = _mm_set1_ps(a1),
                 va2 = _mm_set1_ps(a2), vwd = _mm_set1_ps(wd), vmu = _mm_set1_ps(mu),
                 veps = _mm_set1_ps(eps), vbc = _mm_set1_ps(bc2_sqrt),
                 vss = _mm_set1_ps(step_size);
    for (; i + 4 <= n; i += 4) {
        __m128 wi = _mm_loadu_ps(w + i);
        __m128 d = _mm_add_ps(_mm_loadu_ps(g + i), _mm_mul_ps(vwd, wi));
        if (ref)
            d = _mm_add_ps(d, _mm_mul_ps(vmu, _mm_sub_ps(wi, _mm_loadu_ps(ref + i))));
        __m128 mi = _mm_add_ps(_mm_mul_ps(vb1, _mm_loadu_ps(m + i)), _mm_mul_ps(va1, d));
        __m128 vi = _mm_add_ps(_mm_mul_ps(vb2, _mm_loadu_ps(v + i)),
                               _mm_mul_ps(_mm_mul_ps(va2, d), d));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vbc), veps);
        _mm_storeu_ps(w + i, _mm_sub_ps(wi, _mm_mul_ps(vss, _mm_div_ps(mi, denom))));
    }
#endif
    for (; i < n; i++) {
        float d = s_grad(g[i], w[i], wd);
        if (ref)
            d += mu * (w[i] - ref[i]);
        float mi = b1 * m[i] + a1 * d;
        float vi = b2 * v[i] + a2 * d * d;
        m[i] = mi;
        v[i] = vi;
        w[i] -= step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

void
fl_optim_step(fl_optim_t *self, fl_params_t *params, const fl_params_t *grads)
{
    assert(fl_params_numel(params) == self->numel && fl_params_numel(grads) == self->numel);
    const fl_optim_config_t *c = &self->cfg;
    float *w = fl_params_data(params);
    const float *g = fl_params_data(grads);
    const float *ref = self->ref && c->prox_mu > 0.0f ? fl_params_data(self->ref) : NULL;
    self->steps++;
    if (self->numel == 0)
        return;
    if (c->kind == FL_OPTIM_SGD) {
        s_sgd(w, g, self->s1, ref, self->numel, c->lr, c->momentum, c->weight_decay, c->prox_mu);
    } else {
        /* Bias corrections in double, as PyTorch computes them in Python floats. */
        double t = (double)self->steps;
        double bc1 = 1.0 - pow((double)c->beta1, t);
        double bc2 = 1.0 - pow((double)c->beta2, t);
        s_adam(w, g, self->s1, self->s2, ref, self->numel, (float)((double)c->lr / bc1),
               (float)sqrt(bc2), c, c->prox_mu);
    }
}
