/*
 * fl_model.h — the models Covey trains locally, built from a spec string, with
 * their forward and backward passes on cblas_sgemm.
 *
 * Specs:
 *   "softmax:D-C"         one linear layer D -> C, softmax output (multinomial
 *                         logistic regression);
 *   "mlp:D-H1-...-Hk-C"   k >= 1 hidden linear layers with ReLU, then a linear
 *                         layer to C classes with softmax output.
 * Every dimension is a decimal integer in 1..FL_MODEL_DIM_MAX (C >= 2), at most
 * FL_MODEL_LAYERS_MAX linear layers, at most FL_PARAMS_MAX_ELEMS parameters.
 * The loss is the mean softmax cross-entropy (PyTorch nn.CrossEntropyLoss).
 *
 * Parameter layout (stable; the wire format, checkpoints and safetensors
 * export depend on it): for each linear layer i = 0, 1, ... in order,
 *   "fc<i>.weight"  shape [out, in], row-major (as PyTorch nn.Linear.weight)
 *   "fc<i>.bias"    shape [out]
 * e.g. softmax:784-10 -> fc0.weight[10,784] fc0.bias[10];
 *      mlp:784-256-10 -> fc0.weight[256,784] fc0.bias[256] fc1.weight[10,256] fc1.bias[10].
 * The gradients set has the same layout.
 *
 * Performance: every matrix product is one cblas_sgemm; bias, ReLU, softmax and
 * their gradients are single fused passes over contiguous rows; the workspace
 * for max_batch rows is allocated (and its pages touched) once in
 * fl_model_new(), so a training step allocates nothing. A model belongs to one
 * thread at a time.
 */
#ifndef FL_MODEL_H
#define FL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_params.h"
#include "fl_util.h"

#define FL_MODEL_DIM_MAX ((size_t)1 << 20) /* largest width of any layer */
#define FL_MODEL_LAYERS_MAX 16             /* linear layers */
#define FL_MODEL_BATCH_MAX ((size_t)1 << 20)
#define FL_MODEL_SPEC_MAX 256 /* longest spec string accepted, including the NUL */
#define FL_MODEL_WORKSPACE_MAX ((size_t)8 << 30) /* bytes of activations for max_batch rows */

typedef struct fl_model fl_model_t;

/*
 * A model for `spec` with a workspace for batches of up to max_batch rows
 * (1..FL_MODEL_BATCH_MAX). Parameters start at zero: call fl_model_init() or
 * copy parameters in. Also applies the default BLAS thread count
 * (fl_blas_init_default()).
 * Fails with FL_EINVAL naming what is wrong in the spec or max_batch,
 * FL_ERANGE when the workspace would exceed FL_MODEL_WORKSPACE_MAX, or
 * FL_ENOMEM when it cannot be allocated; *model_p is untouched on failure.
 * (The parameters themselves are allocated through fl_params, which aborts
 * when memory runs out.) Caller owns the result (fl_model_destroy()).
 */
int fl_model_new(const char *spec, size_t max_batch, fl_model_t **model_p) FL_MUST_CHECK;

/*
 * The parameter layout of `spec`, zero-filled, without a model or workspace
 * (what the coordinator needs). Same errors as fl_model_new(). Caller owns
 * *params_p (fl_params_destroy()).
 */
int fl_model_layout(const char *spec, fl_params_t **params_p) FL_MUST_CHECK;

/* Free the model and null *self_p; accepts NULL and *self_p == NULL. */
void fl_model_destroy(fl_model_t **self_p);

/* The canonical spec ("mlp:784-256-10"). Borrowed from self. */
const char *fl_model_spec(const fl_model_t *self);

size_t fl_model_input_dim(const fl_model_t *self);
size_t fl_model_num_classes(const fl_model_t *self);
size_t fl_model_max_batch(const fl_model_t *self);

/* The parameters, in the layout above. Borrowed from self; the data may be
 * read and written between calls (an optimizer step, a copy of the global
 * model), but no tensor may be added. */
fl_params_t *fl_model_params(fl_model_t *self);

/* The gradients of the last fl_model_loss_grad(), same layout as the
 * parameters. Borrowed from self. */
fl_params_t *fl_model_grads(fl_model_t *self);

/*
 * Deterministic initialisation from `seed`, as PyTorch's nn.Linear default:
 * weight and bias of each layer uniform in [-1/sqrt(in), 1/sqrt(in)]. The same
 * seed gives the same parameters on every platform. Can't fail.
 */
void fl_model_init(fl_model_t *self, uint64_t seed);

/*
 * Forward and backward pass on n rows (1..max_batch) of x (row-major n x D)
 * with labels y (each in [0, C): asserted, so the caller validates data first).
 * Returns the mean softmax cross-entropy over the batch and fills the
 * gradients (means over the batch). If `correct` is not NULL, *correct is the
 * number of rows whose arg-max logit equals the label. Allocates nothing;
 * can't fail.
 */
float fl_model_loss_grad(fl_model_t *self, const float *x, const int32_t *y, size_t n,
                         size_t *correct);

/* Forward pass on n rows (1..max_batch) of x, writing the n x C logits
 * (row-major) to `logits`. Gradients are left alone. Can't fail. */
void fl_model_forward(fl_model_t *self, const float *x, size_t n, float *logits);

/*
 * Forward pass over any number n of rows (in chunks of max_batch): sets
 * *loss_sum to the sum of the per-row cross-entropies and *correct to the
 * number of rows whose arg-max logit equals the label (either pointer may be
 * NULL). Labels are asserted in [0, C). Gradients are left alone. Can't fail.
 */
void fl_model_evaluate(fl_model_t *self, const float *x, const int32_t *y, size_t n,
                       double *loss_sum, size_t *correct);

/*
 * Floating-point operations of the matrix products of one pass on n rows:
 * the forward pass, or (train) forward plus backward — what a training step
 * costs, used to report GFLOP/s. Can't fail.
 */
double fl_model_flops(const fl_model_t *self, size_t n, bool train);

#endif
