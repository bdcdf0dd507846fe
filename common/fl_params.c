/*
 * fl_params.c — named float32 tensors in one contiguous buffer. See fl_params.h.
 */
#include "fl_params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fl_params {
    fl_tensor_t *tensors;
    size_t count;
    size_t cap;
    float *data;
    size_t numel;
    size_t data_cap; /* elements allocated; grows with headroom so a layout builds in O(total) */
};

fl_params_t *
fl_params_new(void)
{
    return fl_xcalloc(1, sizeof(fl_params_t));
}

void
fl_params_destroy(fl_params_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_params_t *self = *self_p;
    free(self->tensors);
    free(self->data);
    free(self);
    *self_p = NULL;
}

static void
s_rebase(fl_params_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        self->tensors[i].data = self->data + self->tensors[i].offset;
}

const char *
fl_shape_str(int ndim, const size_t shape[], char *buf, size_t size)
{
    size_t j = 0;
    if (size == 0)
        return buf;
    buf[0] = 0;
    j += (size_t)snprintf(buf + j, size - j, "[");
    for (int d = 0; d < ndim && j < size; d++)
        j += (size_t)snprintf(buf + j, size - j, d ? ",%zu" : "%zu", shape[d]);
    if (j < size)
        snprintf(buf + j, size - j, "]");
    return buf;
}

int
fl_params_add(fl_params_t *self, const char *name, int ndim, const size_t shape[])
{
    size_t numel = 1, total;

    if (!name || !*name || strlen(name) >= FL_NAME_MAX)
        return fl_fail(FL_EINVAL, "tensor name '%s' is empty or longer than %d bytes",
                       name ? name : "", FL_NAME_MAX - 1);
    if (fl_params_find(self, name))
        return fl_fail(FL_EINVAL, "duplicate tensor name '%s'", name);
    if (ndim < 1 || ndim > FL_NDIM_MAX)
        return fl_fail(FL_EINVAL, "tensor '%s': %d dimensions (1..%d allowed)", name, ndim,
                       FL_NDIM_MAX);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 0)
            return fl_fail(FL_EINVAL, "tensor '%s': dimension %d is zero", name, d);
        if (!fl_mul_ok(numel, shape[d], &numel) || numel > FL_PARAMS_MAX_ELEMS)
            return fl_fail(FL_ERANGE, "tensor '%s': too many elements", name);
    }
    total = self->numel + numel;
    if (total > FL_PARAMS_MAX_ELEMS)
        return fl_fail(FL_ERANGE, "tensor set exceeds %zu elements", FL_PARAMS_MAX_ELEMS);

    if (self->count == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 8;
        self->tensors = fl_xrealloc(self->tensors, self->cap * sizeof(fl_tensor_t));
    }
    if (total > self->data_cap) {
        /* ~6% headroom: amortised linear growth, little memory left unused */
        size_t cap = total + total / 16 + 1024;
        if (cap > FL_PARAMS_MAX_ELEMS)
            cap = FL_PARAMS_MAX_ELEMS;
        float *data = fl_xmalloc_aligned(cap * sizeof(float));
        if (self->numel)
            memcpy(data, self->data, self->numel * sizeof(float));
        free(self->data);
        self->data = data;
        self->data_cap = cap;
    }
    memset(self->data + self->numel, 0, numel * sizeof(float));

    fl_tensor_t *t = &self->tensors[self->count++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->numel = numel;
    t->offset = self->numel;
    self->numel = total;
    s_rebase(self);
    return 0;
}

size_t
fl_params_count(const fl_params_t *self)
{
    return self->count;
}

size_t
fl_params_numel(const fl_params_t *self)
{
    return self->numel;
}

fl_tensor_t *
fl_params_at(const fl_params_t *self, size_t i)
{
    return i < self->count ? &self->tensors[i] : NULL;
}

fl_tensor_t *
fl_params_find(const fl_params_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->tensors[i].name, name) == 0)
            return &self->tensors[i];
    return NULL;
}

float *
fl_params_data(const fl_params_t *self)
{
    return self->data;
}

fl_params_t *
fl_params_clone_layout(const fl_params_t *self)
{
    fl_params_t *c = fl_params_new();
    c->cap = self->count ? self->count : 1;
    c->count = self->count;
    c->tensors = fl_xmalloc(c->cap * sizeof(fl_tensor_t));
    memcpy(c->tensors, self->tensors, self->count * sizeof(fl_tensor_t));
    c->numel = self->numel;
    c->data_cap = self->numel ? self->numel : 1;
    c->data = fl_xmalloc_aligned(c->data_cap * sizeof(float));
    memset(c->data, 0, self->numel * sizeof(float));
    s_rebase(c);
    return c;
}

fl_params_t *
fl_params_dup(const fl_params_t *self)
{
    fl_params_t *c = fl_params_clone_layout(self);
    if (self->numel)
        memcpy(c->data, self->data, self->numel * sizeof(float));
    return c;
}

bool
fl_params_same_layout(const fl_params_t *a, const fl_params_t *b)
{
    if (a->count != b->count || a->numel != b->numel)
        return false;
    for (size_t i = 0; i < a->count; i++) {
        const fl_tensor_t *x = &a->tensors[i], *y = &b->tensors[i];
        if (strcmp(x->name, y->name) != 0 || x->ndim != y->ndim)
            return false;
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] != y->shape[d])
                return false;
    }
    return true;
}

int
fl_params_copy(fl_params_t *dst, const fl_params_t *src)
{
    if (!fl_params_same_layout(dst, src)) {
        char a[256], b[256];
        return fl_fail(FL_EINVAL, "tensor layouts differ: %s vs %s",
                       fl_params_describe(dst, a, sizeof a), fl_params_describe(src, b, sizeof b));
    }
    if (src->numel)
        memcpy(dst->data, src->data, src->numel * sizeof(float));
    return 0;
}

void
fl_params_zero(fl_params_t *self)
{
    if (self->numel)
        memset(self->data, 0, self->numel * sizeof(float));
}

int
fl_params_check_finite(const fl_params_t *self)
{
    for (size_t i = 0; i < self->count; i++) {
        const fl_tensor_t *t = &self->tensors[i];
        for (size_t j = 0; j < t->numel; j++)
            if (!isfinite(t->data[j]))
                return fl_fail(FL_ENONFINITE, "tensor '%s' element %zu is %s", t->name, j,
                               isnan(t->data[j]) ? "NaN" : "Inf");
    }
    return 0;
}

const char *
fl_params_describe(const fl_params_t *self, char *buf, size_t size)
{
    size_t j = 0;
    char shape[64];
    if (size == 0)
        return buf;
    buf[0] = 0;
    for (size_t i = 0; i < self->count && j < size; i++) {
        const fl_tensor_t *t = &self->tensors[i];
        j += (size_t)snprintf(buf + j, size - j, "%s%s%s", i ? " " : "", t->name,
                              fl_shape_str(t->ndim, t->shape, shape, sizeof shape));
    }
    return buf;
}
