/*
 * fl_train.c — mini-batch training and evaluation loops. See fl_train.h.
 */
#include "fl_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fl_rng.h"

void
fl_train_config_default(fl_train_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->epochs = 5;
    cfg->batch = 64;
    cfg->seed = 1;
    cfg->cosine = true;
    fl_optim_config_default(&cfg->optim, FL_OPTIM_SGD);
}

int
fl_train_check_fit(const fl_model_t *model, const fl_dataset_t *ds)
{
    if (ds->n == 0)
        return fl_fail(FL_EINVAL, "the dataset is empty");
    if (ds->dim != fl_model_input_dim(model))
        return fl_fail(FL_EINVAL, "the data has %zu features but model '%s' expects %zu", ds->dim,
                       fl_model_spec(model), fl_model_input_dim(model));
    if (ds->num_classes > fl_model_num_classes(model))
        return fl_fail(FL_EINVAL, "the data has %zu classes but model '%s' has %zu outputs",
                       ds->num_classes, fl_model_spec(model), fl_model_num_classes(model));
    return 0;
}

int
fl_train_run(fl_model_t *model, const fl_dataset_t *ds, const fl_train_config_t *cfg,
             fl_train_stats_t *result)
{
    fl_optim_t *optim = NULL;
    uint32_t *order = NULL;
    float *bx = NULL;
    int32_t *by = NULL;
    fl_train_stats_t st = {0};
    int rc;
    const size_t dim = ds->dim;
    const double t0 = fl_now(), c0 = fl_cpu_time();

    if ((rc = fl_train_check_fit(model, ds)) != 0)
        goto out;
    if (cfg->epochs < 1 || cfg->batch < 1 || cfg->batch > fl_model_max_batch(model)) {
        rc = fl_fail(FL_EINVAL, "epochs must be >= 1 and batch within 1..%zu (got %zu, %zu)",
                     fl_model_max_batch(model), cfg->epochs, cfg->batch);
        goto out;
    }
    if (ds->n > UINT32_MAX) {
        rc = fl_fail(FL_ERANGE, "dataset of %zu samples is too large", ds->n);
        goto out;
    }
    if ((rc = fl_optim_new(&cfg->optim, fl_model_params(model), &optim)) != 0)
        goto out;
    fl_optim_set_prox_ref(optim, cfg->prox_ref);

    order = fl_xmalloc(ds->n * sizeof *order);
    bx = fl_xmalloc_aligned(cfg->batch * dim * sizeof *bx);
    by = fl_xmalloc(cfg->batch * sizeof *by);
    st.epochs = cfg->epochs;
    const uint64_t steps_per_epoch = (ds->n + cfg->batch - 1) / cfg->batch;
    const uint64_t total_steps = steps_per_epoch * cfg->epochs;
    uint64_t step = 0;

    for (size_t e = 1; e <= cfg->epochs; e++) {
        fl_rng_t rng;
        double loss_sum = 0.0;
        size_t correct = 0;
        const double te = fl_now(), ce = fl_cpu_time();

        fl_rng_seed(&rng, cfg->seed, e);
        for (size_t i = 0; i < ds->n; i++)
            order[i] = (uint32_t)i;
        fl_rng_shuffle(&rng, order, ds->n);

        for (size_t b = 0; b < ds->n; b += cfg->batch) {
            size_t n = ds->n - b < cfg->batch ? ds->n - b : cfg->batch, ok = 0;
            if (cfg->should_stop && cfg->should_stop(cfg->arg)) {
                rc = fl_fail(FL_ETIMEOUT, "training stopped at epoch %zu", e);
                goto out;
            }
            for (size_t i = 0; i < n; i++) {
                memcpy(bx + i * dim, ds->x + (size_t)order[b + i] * dim, dim * sizeof *bx);
                by[i] = ds->y[order[b + i]];
            }
            if (cfg->cosine && (rc = fl_optim_set_lr(optim, fl_optim_cosine_lr(cfg->optim.lr, step,
                                                                                 total_steps))) != 0)
                goto out;
            step++;
            float loss = fl_model_loss_grad(model, bx, by, n, &ok);
            if (!isfinite(loss)) {
                rc = fl_fail(FL_ENONFINITE,
                             "training diverged (loss is %s at epoch %zu); try a smaller --lr",
                             isnan(loss) ? "NaN" : "Inf", e);
                goto out;
            }
            fl_optim_step(optim, fl_model_params(model), fl_model_grads(model));
            loss_sum += (double)loss * (double)n;
            correct += ok;
        }
        st.epoch = e;
        st.samples = ds->n;
        st.loss = loss_sum / (double)ds->n;
        st.accuracy = (double)correct / (double)ds->n;
        st.seconds = fl_now() - te;
        st.cpu_seconds = fl_cpu_time() - ce;
        if (cfg->progress)
            cfg->progress(&st, cfg->arg);
    }
    if (result) {
        *result = st;
        result->samples = ds->n * cfg->epochs;
        result->seconds = fl_now() - t0;
        result->cpu_seconds = fl_cpu_time() - c0;
    }
    rc = 0;
out:
    fl_optim_destroy(&optim);
    free(order);
    free(bx);
    free(by);
    return rc;
}

int
fl_eval_run(fl_model_t *model, const fl_dataset_t *ds, fl_eval_stats_t *out)
{
    double loss_sum = 0.0, t0 = fl_now();
    size_t correct = 0;
    int rc = fl_train_check_fit(model, ds);
    if (rc != 0)
        return rc;
    fl_model_evaluate(model, ds->x, ds->y, ds->n, &loss_sum, &correct);
    out->samples = ds->n;
    out->loss = loss_sum / (double)ds->n;
    out->accuracy = (double)correct / (double)ds->n;
    out->seconds = fl_now() - t0;
    return 0;
}
