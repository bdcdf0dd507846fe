/*
 * fl_train.h — the local training loop: shuffled mini-batch epochs of a model
 * over a dataset with an optimizer, and evaluation. The agent daemon runs it
 * for each federated round and `covey-agent train` runs it standalone.
 *
 * Buffers (batch gather, optimizer state) are allocated once per call and the
 * model's workspace is reused; nothing is allocated per step.
 */
#ifndef FL_TRAIN_H
#define FL_TRAIN_H

#include "fl_data.h"
#include "fl_model.h"
#include "fl_optim.h"

/* Figures of one epoch (progress) or of a whole run (result). */
typedef struct fl_train_stats {
    size_t epoch, epochs;  /* 1-based epoch just finished, of epochs */
    size_t samples;        /* samples processed (this epoch, or in total for the result) */
    double loss;           /* mean training loss over those samples */
    double accuracy;       /* training accuracy over those samples (during training) */
    double seconds;        /* wall time */
    double cpu_seconds;    /* process CPU time */
} fl_train_stats_t;

typedef void (*fl_train_progress_fn)(const fl_train_stats_t *epoch, void *arg);

/* Return true to stop training early (checked once per batch). */
typedef bool (*fl_train_stop_fn)(void *arg);

typedef struct fl_train_config {
    size_t epochs;             /* >= 1 */
    size_t batch;              /* 1 .. fl_model_max_batch(model) */
    uint64_t seed;             /* shuffling; epoch e uses stream e */
    fl_optim_config_t optim;
    const fl_params_t *prox_ref; /* FedProx reference weights (borrowed) or NULL */
    bool cosine;               /* decay the learning rate to 0 over the run (cosine) */
    fl_train_progress_fn progress; /* NULL: silent */
    fl_train_stop_fn should_stop;  /* NULL: never */
    void *arg;                 /* passed to progress and should_stop */
} fl_train_config_t;

/* Defaults a user gets: 5 epochs, batch 64, seed 1, default SGD with a cosine
 * decay of the learning rate over the run (it steadies the final accuracy:
 * see fl_optim_cosine_lr). */
void fl_train_config_default(fl_train_config_t *cfg);

/* Check that a dataset fits a model: same input dimension and labels below the
 * model's number of classes. FL_EINVAL naming both sides otherwise. */
int fl_train_check_fit(const fl_model_t *model, const fl_dataset_t *ds) FL_MUST_CHECK;

/*
 * Train `model` in place on `ds` per `cfg`. Fills *result (may be NULL) with
 * totals over all epochs (loss and accuracy of the last epoch). Fails with
 * FL_EINVAL on a bad configuration or a dataset that does not fit the model,
 * FL_ENONFINITE if the loss diverges to NaN/Inf (the parameters are then
 * unusable: the caller reloads them), FL_ETIMEOUT if should_stop asked to stop.
 */
int fl_train_run(fl_model_t *model, const fl_dataset_t *ds, const fl_train_config_t *cfg,
                 fl_train_stats_t *result) FL_MUST_CHECK;

/* Evaluation result over a whole dataset. */
typedef struct fl_eval_stats {
    size_t samples;
    double loss;     /* mean cross-entropy */
    double accuracy;
    double seconds;
} fl_eval_stats_t;

/* Evaluate `model` on `ds` (forward only). FL_EINVAL if the dataset does not
 * fit the model or is empty. */
int fl_eval_run(fl_model_t *model, const fl_dataset_t *ds, fl_eval_stats_t *out) FL_MUST_CHECK;

#endif
