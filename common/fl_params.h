/*
 * fl_params.h — an ordered set of named float32 tensors held in one contiguous,
 * 64-byte aligned buffer: a model's parameters, its gradients, an update or an
 * aggregate.
 *
 * One buffer makes the whole set a single vector for optimizers, aggregation,
 * hashing and transport, while the names and shapes give each tensor its
 * meaning (and map one-to-one to safetensors entries). A layout is built once
 * with fl_params_add(); tensor data pointers stay valid until the next add.
 *
 * Wire/digest convention: the data is little-endian float32 in layout order.
 */
#ifndef FL_PARAMS_H
#define FL_PARAMS_H

#include "fl_util.h"

#define FL_NAME_MAX 64 /* tensor name, including the terminating NUL */
#define FL_NDIM_MAX 4

typedef struct fl_tensor {
    char name[FL_NAME_MAX];
    int ndim;
    size_t shape[FL_NDIM_MAX];
    size_t numel;
    size_t offset; /* element offset of this tensor in the set's buffer */
    float *data;   /* points into the set's buffer */
} fl_tensor_t;

typedef struct fl_params fl_params_t;

/* An empty set. Never NULL (allocation failure aborts). */
fl_params_t *fl_params_new(void);

/* Free the set and null *self_p; accepts NULL and *self_p == NULL. */
void fl_params_destroy(fl_params_t **self_p);

/*
 * Append a zero-filled tensor. Fails with FL_EINVAL (duplicate or empty name,
 * name too long, ndim outside 1..FL_NDIM_MAX, a zero dimension) or FL_ERANGE
 * (total size overflows or exceeds FL_PARAMS_MAX_ELEMS). Existing data is kept;
 * tensor data pointers obtained earlier are invalidated.
 */
#define FL_PARAMS_MAX_ELEMS ((size_t)1 << 31)
int fl_params_add(fl_params_t *self, const char *name, int ndim, const size_t shape[])
    FL_MUST_CHECK;

size_t fl_params_count(const fl_params_t *self);

/* Total elements over all tensors. */
size_t fl_params_numel(const fl_params_t *self);

/* The i-th tensor (i < count); borrowed from self. */
fl_tensor_t *fl_params_at(const fl_params_t *self, size_t i);

/* The tensor named `name`, or NULL. Borrowed from self. */
fl_tensor_t *fl_params_find(const fl_params_t *self, const char *name);

/* The whole buffer (numel floats). Borrowed; NULL when the set is empty. */
float *fl_params_data(const fl_params_t *self);

/* A new set with the same layout, zero-filled (dup also copies the data). */
fl_params_t *fl_params_clone_layout(const fl_params_t *self);
fl_params_t *fl_params_dup(const fl_params_t *self);

/* True when both have the same names, shapes and order. */
bool fl_params_same_layout(const fl_params_t *a, const fl_params_t *b);

/* Copy src's data into dst; FL_EINVAL naming the first difference when the
 * layouts differ. */
int fl_params_copy(fl_params_t *dst, const fl_params_t *src) FL_MUST_CHECK;

void fl_params_zero(fl_params_t *self);

/* 0 when every element is finite; FL_ENONFINITE naming the first tensor and
 * index holding NaN or Inf otherwise. */
int fl_params_check_finite(const fl_params_t *self) FL_MUST_CHECK;

/* Human-readable layout, e.g. "layer0.weight[256,784] layer0.bias[256] ...".
 * Writes at most size bytes (NUL-terminated); returns buf. */
const char *fl_params_describe(const fl_params_t *self, char *buf, size_t size);

/* Format a shape as "[256,784]" into buf; returns buf. */
const char *fl_shape_str(int ndim, const size_t shape[], char *buf, size_t size);

#endif
