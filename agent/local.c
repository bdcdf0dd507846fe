/*
 * local.c — `covey-agent train` and `covey-agent eval`: local training and
 * evaluation on this machine's data, without a coordinator. The same engine
 * runs inside the agent daemon for federated rounds.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "fl_blas.h"
#include "fl_cli.h"
#include "fl_data.h"
#include "fl_model.h"
#include "fl_partition.h"
#include "fl_safetensors.h"
#include "fl_train.h"

#define DEFAULT_MODEL "mlp:784-256-10"
#define DEFAULT_DATA "fashion-mnist"

typedef struct local_opts {
    const char *model, *data, *test_data, *load, *save, *partition;
    size_t parts, index, threads;
    bool json, quiet;
    fl_train_config_t train;
} local_opts_t;

static void
s_usage_train(FILE *f)
{
    fl_optim_config_t d;
    fl_optim_config_default(&d, FL_OPTIM_SGD);
    fprintf(f,
            "usage: covey-agent train [OPTIONS]\n"
            "\n"
            "Train a model on local data and report its accuracy on held-out data.\n"
            "\n"
            "Model and data:\n"
            "  --model SPEC        softmax:D-C or mlp:D-H1-...-C (default %s)\n"
            "  --data SRC          training data: fashion-mnist, idx:IMAGES,LABELS, or a .csv file\n"
            "                      (label in column 0, optional header) (default %s)\n"
            "  --test-data SRC     held-out data (default: fashion-mnist's test split when --data is\n"
            "                      fashion-mnist; otherwise required)\n"
            "  --partition SCHEME  train on one part only: iid, dirichlet:ALPHA, shards:N\n"
            "  --parts N           number of parts (with --partition; default 1)\n"
            "  --index I           which part, 0-based (with --partition; default 0)\n"
            "  --load FILE         start from this safetensors model instead of a fresh one\n"
            "  --save FILE         write the trained model as safetensors\n"
            "\n"
            "Training:\n"
            "  --epochs N          passes over the data (default 5)\n"
            "  --batch N           mini-batch size (default 64)\n"
            "  --optimizer NAME    sgd or adam (default sgd)\n"
            "  --lr X              learning rate (default %g for sgd, 0.001 for adam)\n"
            "  --momentum X        SGD momentum (default %g)\n"
            "  --weight-decay X    L2 weight decay (default %g)\n"
            "  --seed N            initialisation and shuffling seed (default 1)\n"
            "  --threads N         BLAS threads (default 1)\n"
            "\n"
            "Output:\n"
            "  --json              print the final result as one JSON object on stdout\n"
            "                      (keys test_accuracy, test_loss, samples_per_second, ...)\n"
            "  --quiet             no per-epoch progress\n"
            "  -h, --help          show this help\n",
            DEFAULT_MODEL, DEFAULT_DATA, (double)d.lr, (double)d.momentum,
            (double)d.weight_decay);
}

static void
s_usage_eval(FILE *f)
{
    fprintf(f, "usage: covey-agent eval --load FILE [OPTIONS]\n"
               "\n"
               "Evaluate a safetensors model on local data.\n"
               "\n"
               "  --load FILE         the model to evaluate (required)\n"
               "  --model SPEC        its architecture (default %s)\n"
               "  --data SRC          fashion-mnist (test split), idx:IMAGES,LABELS or a .csv file\n"
               "                      (default %s)\n"
               "  --threads N         BLAS threads (default 1)\n"
               "  --json              print the result as one JSON object\n"
               "  -h, --help          show this help\n",
               DEFAULT_MODEL, DEFAULT_DATA);
}

enum {
    OPT_MODEL = 256, OPT_DATA, OPT_TEST_DATA, OPT_LOAD, OPT_SAVE, OPT_EPOCHS, OPT_BATCH, OPT_LR,
    OPT_OPTIM, OPT_MOMENTUM, OPT_WD, OPT_SEED, OPT_THREADS, OPT_JSON, OPT_QUIET, OPT_PARTITION,
    OPT_PARTS, OPT_INDEX
};

static const struct option s_long_opts[] = {
    {"model", required_argument, NULL, OPT_MODEL},
    {"data", required_argument, NULL, OPT_DATA},
    {"test-data", required_argument, NULL, OPT_TEST_DATA},
    {"load", required_argument, NULL, OPT_LOAD},
    {"save", required_argument, NULL, OPT_SAVE},
    {"epochs", required_argument, NULL, OPT_EPOCHS},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"lr", required_argument, NULL, OPT_LR},
    {"optimizer", required_argument, NULL, OPT_OPTIM},
    {"momentum", required_argument, NULL, OPT_MOMENTUM},
    {"weight-decay", required_argument, NULL, OPT_WD},
    {"seed", required_argument, NULL, OPT_SEED},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"partition", required_argument, NULL, OPT_PARTITION},
    {"parts", required_argument, NULL, OPT_PARTS},
    {"index", required_argument, NULL, OPT_INDEX},
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parse the options shared by train and eval. Returns 0, or an exit code. */
static int
s_parse(int argc, char **argv, bool train, local_opts_t *o)
{
    bool lr_set = false;
    float lr = 0;
    int c;

    memset(o, 0, sizeof *o);
    o->model = DEFAULT_MODEL;
    o->data = DEFAULT_DATA;
    o->parts = 1;
    o->threads = 1;
    fl_train_config_default(&o->train);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", s_long_opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'h':
            if (train)
                s_usage_train(stdout);
            else
                s_usage_eval(stdout);
            return -1;
        case OPT_MODEL: o->model = optarg; break;
        case OPT_DATA: o->data = optarg; break;
        case OPT_TEST_DATA: o->test_data = optarg; break;
        case OPT_LOAD: o->load = optarg; break;
        case OPT_SAVE: o->save = optarg; break;
        case OPT_PARTITION: o->partition = optarg; break;
        case OPT_JSON: o->json = true; break;
        case OPT_QUIET: o->quiet = true; break;
        case OPT_EPOCHS: rc = fl_cli_size(optarg, "--epochs", 1, 100000, &o->train.epochs); break;
        case OPT_BATCH: rc = fl_cli_size(optarg, "--batch", 1, 65536, &o->train.batch); break;
        case OPT_SEED: rc = fl_cli_u64(optarg, "--seed", 0, UINT64_MAX, &o->train.seed); break;
        case OPT_THREADS: rc = fl_cli_size(optarg, "--threads", 1, 256, &o->threads); break;
        case OPT_PARTS: rc = fl_cli_size(optarg, "--parts", 1, 1000000, &o->parts); break;
        case OPT_INDEX: rc = fl_cli_size(optarg, "--index", 0, 999999, &o->index); break;
        case OPT_LR:
            rc = fl_cli_float(optarg, "--lr", 1e-12, 1e6, &lr);
            lr_set = true;
            break;
        case OPT_MOMENTUM:
            rc = fl_cli_float(optarg, "--momentum", 0, 0.999999, &o->train.optim.momentum);
            break;
        case OPT_WD:
            rc = fl_cli_float(optarg, "--weight-decay", 0, 1e6, &o->train.optim.weight_decay);
            break;
        case OPT_OPTIM: {
            fl_optim_kind_t kind;
            float mom = o->train.optim.momentum, wd = o->train.optim.weight_decay;
            if (fl_optim_parse_kind(optarg, &kind) != 0)
                return fl_cli_error("--optimizer: %s", fl_errmsg());
            fl_optim_config_default(&o->train.optim, kind);
            if (kind == FL_OPTIM_SGD)
                o->train.optim.momentum = mom;
            o->train.optim.weight_decay = wd;
            break;
        }
        default:
            return fl_cli_error("unknown option (try --help)");
        }
        if (rc != 0)
            return 2;
    }
    if (optind < argc)
        return fl_cli_error("unexpected argument '%s' (try --help)", argv[optind]);
    if (lr_set)
        o->train.optim.lr = lr;
    if (o->index >= o->parts)
        return fl_cli_error("--index %zu must be below --parts %zu", o->index, o->parts);
    if (!train && !o->load)
        return fl_cli_error("--load FILE is required (try --help)");
    return 0;
}

static void
s_progress(const fl_train_stats_t *st, void *arg)
{
    const local_opts_t *o = arg;
    if (o->quiet)
        return;
    fprintf(o->json ? stderr : stdout,
            "epoch %zu/%zu  loss %.4f  accuracy %.4f  %.0f samples/s  %.1fs\n", st->epoch,
            st->epochs, st->loss, st->accuracy, (double)st->samples / st->seconds, st->seconds);
    fflush(o->json ? stderr : stdout);
}

/* Load (and, with --partition, cut) the training set. */
static int
s_load_train(const local_opts_t *o, fl_dataset_t **out)
{
    fl_dataset_t *ds = NULL;
    int rc = fl_dataset_open(o->data, true, &ds);
    if (rc != 0 || !o->partition) {
        *out = ds;
        return rc;
    }
    fl_part_spec_t spec;
    if ((rc = fl_part_parse(o->partition, &spec)) != 0 ||
        (rc = fl_partition_dataset(&ds, &spec, o->parts, o->index, o->train.seed)) != 0)
        fl_dataset_destroy(&ds);
    *out = ds;
    return rc;
}

/* Build the model: fresh from the seed, or loaded from --load. */
static int
s_make_model(const local_opts_t *o, size_t batch, fl_model_t **out)
{
    fl_model_t *model = NULL;
    int rc = fl_model_new(o->model, batch, &model);
    if (rc != 0)
        return rc;
    fl_model_init(model, o->train.seed);
    if (o->load && (rc = fl_safetensors_load(o->load, fl_model_params(model))) != 0) {
        fl_model_destroy(&model);
        return rc;
    }
    *out = model;
    return 0;
}

static void
s_print_result(const local_opts_t *o, const fl_eval_stats_t *ev, const fl_train_stats_t *tr)
{
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "model", json_string(o->model));
        json_object_set_new(j, "test_samples", json_integer((json_int_t)ev->samples));
        json_object_set_new(j, "test_accuracy", json_real(ev->accuracy));
        json_object_set_new(j, "test_loss", json_real(ev->loss));
        if (tr) {
            json_object_set_new(j, "epochs", json_integer((json_int_t)tr->epochs));
            json_object_set_new(j, "train_samples", json_integer((json_int_t)(tr->samples / tr->epochs)));
            json_object_set_new(j, "train_loss", json_real(tr->loss));
            json_object_set_new(j, "train_accuracy", json_real(tr->accuracy));
            json_object_set_new(j, "samples_per_second", json_real((double)tr->samples / tr->seconds));
            json_object_set_new(j, "samples_per_cpu_second",
                                json_real((double)tr->samples / tr->cpu_seconds));
            json_object_set_new(j, "train_seconds", json_real(tr->seconds));
        } else {
            json_object_set_new(j, "samples_per_second", json_real((double)ev->samples / ev->seconds));
        }
        json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(j);
        return;
    }
    printf("test loss %.4f  test accuracy %.4f  samples/s %.0f\n", ev->loss, ev->accuracy,
           tr ? (double)tr->samples / tr->seconds : (double)ev->samples / ev->seconds);
}

int
agent_cmd_train(int argc, char **argv)
{
    local_opts_t o;
    fl_dataset_t *train = NULL, *test = NULL;
    fl_model_t *model = NULL;
    fl_train_stats_t tr;
    fl_eval_stats_t ev;
    int rc, exit_code = 1;

    fl_cli_set_prog("covey-agent train");
    if ((rc = s_parse(argc, argv, true, &o)) != 0)
        return rc < 0 ? 0 : rc;
    if (!o.test_data && strcmp(o.data, "fashion-mnist") != 0)
        return fl_cli_error("--test-data is required with --data %s (try --help)", o.data);
    fl_blas_init_default();
    fl_blas_set_threads((int)o.threads);

    if ((rc = s_load_train(&o, &train)) != 0 ||
        (rc = fl_dataset_open(o.test_data ? o.test_data : o.data, false, &test)) != 0 ||
        (rc = s_make_model(&o, o.train.batch, &model)) != 0 ||
        (rc = fl_train_check_fit(model, train)) != 0 || (rc = fl_train_check_fit(model, test)) != 0) {
        exit_code = fl_cli_fail(rc);
        goto out;
    }
    if (!o.quiet)
        fprintf(o.json ? stderr : stdout,
                "training %s on %zu samples (%s), %zu epochs, batch %zu, %s lr %g, BLAS %s x%d\n",
                fl_model_spec(model), train->n, o.data, o.train.epochs, o.train.batch,
                fl_optim_kind_name(o.train.optim.kind), (double)o.train.optim.lr,
                fl_blas_corename(), fl_blas_threads());
    o.train.progress = s_progress;
    o.train.arg = &o;
    if ((rc = fl_train_run(model, train, &o.train, &tr)) != 0 ||
        (rc = fl_eval_run(model, test, &ev)) != 0) {
        exit_code = fl_cli_fail(rc);
        goto out;
    }
    if (o.save && (rc = fl_safetensors_save(o.save, fl_model_params(model), NULL)) != 0) {
        exit_code = fl_cli_fail(rc);
        goto out;
    }
    s_print_result(&o, &ev, &tr);
    exit_code = 0;
out:
    fl_model_destroy(&model);
    fl_dataset_destroy(&train);
    fl_dataset_destroy(&test);
    return exit_code;
}

int
agent_cmd_eval(int argc, char **argv)
{
    local_opts_t o;
    fl_dataset_t *test = NULL;
    fl_model_t *model = NULL;
    fl_eval_stats_t ev;
    int rc, exit_code = 1;

    fl_cli_set_prog("covey-agent eval");
    if ((rc = s_parse(argc, argv, false, &o)) != 0)
        return rc < 0 ? 0 : rc;
    fl_blas_init_default();
    fl_blas_set_threads((int)o.threads);
    if ((rc = fl_dataset_open(o.data, false, &test)) != 0 ||
        (rc = s_make_model(&o, 256, &model)) != 0 || (rc = fl_eval_run(model, test, &ev)) != 0) {
        exit_code = fl_cli_fail(rc);
        goto out;
    }
    s_print_result(&o, &ev, NULL);
    exit_code = 0;
out:
    fl_model_destroy(&model);
    fl_dataset_destroy(&test);
    return exit_code;
}
