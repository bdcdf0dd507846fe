/*
 * bench_train.c — how fast Covey trains locally, against the sgemm ceiling of
 * the same shapes and against PyTorch on the same machine in the same run.
 *
 * For softmax:784-10 and mlp:784-256-10 at batch 32 and 64, one BLAS thread
 * (unless COVEY_BLAS_THREADS says otherwise), on synthetic data shaped like
 * Fashion-MNIST (60000 x 784 uniform in [0,1], random labels), it measures
 * training steps (forward + backward + SGD momentum step over consecutive
 * batches): samples per second of wall time and per CPU-second. It then runs
 * the same cblas_sgemm calls the step makes, alone, for the ceiling, and
 * reports the fraction of it the whole step achieves. Finally it runs
 * tests/bench/torch_peer.py (PyTorch, torch.set_num_threads(1), same models,
 * batches, optimizer and data shapes) and prints the ratios.
 *
 * Figures only: a benchmark never passes or fails on a time. On a shared
 * machine, per-CPU-second figures are the steadier ones.
 *
 * usage: bench_train [PATH/torch_peer.py]
 *   default peer script: $COVEY_SRC/tests/bench/torch_peer.py (tests/bench/run sets COVEY_SRC)
 *   COVEY_BENCH_SECONDS  seconds per measurement (default 1.5)
 *   COVEY_PYTHON         interpreter for the peer (default python3)
 */
#include <cblas.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fl_blas.h"
#include "fl_model.h"
#include "fl_optim.h"
#include "fl_rng.h"
#include "fl_util.h"

#define N_SAMPLES 60000
#define DIM 784
#define CLASSES 10
#define N_SPECS 2
#define N_BATCHES 2

static const char *const s_specs[N_SPECS] = {"softmax:784-10", "mlp:784-256-10"};
static const size_t s_batches[N_BATCHES] = {32, 64};

typedef struct {
    double wall_sps, cpu_sps;   /* samples per second: wall, CPU */
    double step_gflops;         /* matrix-product FLOPs of the step per CPU-second */
    double ceil_gflops;         /* the same sgemm calls alone, per CPU-second */
    double step_us, gemm_us;    /* CPU time per step: whole step, its sgemm calls alone */
    bool peer;                  /* a PyTorch figure arrived */
    double peer_wall_sps, peer_cpu_sps;
} s_result_t;

static double s_seconds = 1.5;

/* Dimensions of a spec ("kind:a-b-...") — our own constant specs, so no checking. */
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
    return n; /* layers */
}

/* Training steps on consecutive batches for about s_seconds. */
static void
s_bench_train(const char *spec, size_t batch, const float *x, const int32_t *y, s_result_t *r)
{
    fl_model_t *m = NULL;
    fl_optim_t *o = NULL;
    fl_optim_config_t cfg;
    if (fl_model_new(spec, batch, &m) < 0) {
        fprintf(stderr, "bench_train: %s\n", fl_errmsg());
        exit(1);
    }
    fl_model_init(m, 1);
    fl_optim_config_default(&cfg, FL_OPTIM_SGD);
    if (fl_optim_new(&cfg, fl_model_params(m), &o) < 0) {
        fprintf(stderr, "bench_train: %s\n", fl_errmsg());
        exit(1);
    }
    size_t nb = N_SAMPLES / batch, b = 0;
    float sink = 0.0f;
    /* Warm up: OpenBLAS buffers, caches, the branch predictor. */
    for (int i = 0; i < 100; i++, b = (b + 1) % nb) {
        sink += fl_model_loss_grad(m, x + b * batch * DIM, y + b * batch, batch, NULL);
        fl_optim_step(o, fl_model_params(m), fl_model_grads(m));
    }
    uint64_t steps = 0;
    double t0 = fl_now(), c0 = fl_cpu_time(), t1, c1;
    do {
        for (int i = 0; i < 16; i++, b = (b + 1) % nb) {
            sink += fl_model_loss_grad(m, x + b * batch * DIM, y + b * batch, batch, NULL);
            fl_optim_step(o, fl_model_params(m), fl_model_grads(m));
        }
        steps += 16;
        t1 = fl_now();
    } while (t1 - t0 < s_seconds);
    c1 = fl_cpu_time();
    if (sink != sink)
        printf("  (training diverged: loss is NaN)\n");
    double samples = (double)steps * (double)batch;
    r->wall_sps = samples / (t1 - t0);
    r->cpu_sps = samples / (c1 - c0);
    r->step_us = (c1 - c0) / (double)steps * 1e6;
    r->step_gflops = fl_model_flops(m, batch, true) * (double)steps / (c1 - c0) / 1e9;
    fl_optim_destroy(&o);
    fl_model_destroy(&m);
}

/*
 * The ceiling: exactly the cblas_sgemm calls of one training step (same shapes,
 * transposes, leading dimensions and beta, same input rows), nothing else. The
 * step's own preparation of C (bias rows before the forward products, clearing
 * before dW) counts as the step's non-gemm work, not as part of the ceiling.
 */
static void
s_bench_gemm(const char *spec, size_t batch, const float *x, s_result_t *r)
{
    size_t dims[FL_MODEL_LAYERS_MAX + 1];
    int L = s_dims(spec, dims);
    float *w[FL_MODEL_LAYERS_MAX], *gw[FL_MODEL_LAYERS_MAX], *act[FL_MODEL_LAYERS_MAX];
    size_t widest = 1;
    for (int l = 0; l < L; l++) {
        size_t in = dims[l], out = dims[l + 1];
        w[l] = fl_xmalloc_aligned(in * out * sizeof(float));
        gw[l] = fl_xmalloc_aligned(in * out * sizeof(float));
        act[l] = fl_xmalloc_aligned(batch * out * sizeof(float));
        for (size_t i = 0; i < in * out; i++)
            w[l][i] = 0.01f;
        memset(act[l], 0, batch * out * sizeof(float));
        if (in > widest)
            widest = in;
    }
    float *scratch = fl_xmalloc_aligned(batch * widest * sizeof(float));
    memset(scratch, 0, batch * widest * sizeof(float));
    int n = (int)batch;
    size_t nb = N_SAMPLES / batch, b = 0;
    uint64_t steps = 0;
    double t0 = 0.0, c0 = 0.0, t1, c1;
    for (int warm = 1; warm >= 0; warm--) {
        steps = 0;
        t0 = fl_now();
        c0 = fl_cpu_time();
        do {
            for (int i = 0; i < 16; i++, b = (b + 1) % nb) {
                const float *in_buf = x + b * batch * DIM;
                for (int l = 0; l < L; l++) {
                    int in = (int)dims[l], out = (int)dims[l + 1];
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f,
                                l ? act[l - 1] : in_buf, in, w[l], in, 1.0f, act[l], out);
                }
                for (int l = L - 1; l >= 0; l--) {
                    int in = (int)dims[l], out = (int)dims[l + 1];
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, act[l],
                                out, l ? act[l - 1] : in_buf, in, 1.0f, gw[l], in);
                    if (l > 0)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f,
                                    act[l], out, w[l], in, 0.0f, scratch, in);
                }
            }
            steps += 16;
            t1 = fl_now();
        } while (t1 - t0 < (warm ? 0.1 : s_seconds / 2));
    }
    c1 = fl_cpu_time();
    double flops = 0.0;
    for (int l = 0; l < L; l++)
        flops += 2.0 * (double)batch * (double)dims[l] * (double)dims[l + 1] * (l ? 3.0 : 2.0);
    r->ceil_gflops = flops * (double)steps / (c1 - c0) / 1e9;
    r->gemm_us = (c1 - c0) / (double)steps * 1e6;
    for (int l = 0; l < L; l++) {
        free(w[l]);
        free(gw[l]);
        free(act[l]);
    }
    free(scratch);
}

/* Run the PyTorch peer and file its JSON results into res[spec][batch]. */
static void
s_run_peer(const char *script, float lr, float momentum, s_result_t res[N_SPECS][N_BATCHES])
{
    if (!script || access(script, R_OK) != 0) {
        printf("peer: torch_peer.py not found (pass its path or set COVEY_SRC)\n");
        return;
    }
    const char *py = getenv("COVEY_PYTHON");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' --models %s,%s --batches %zu,%zu --samples %d --seconds %.3f "
             "--lr %.9g --momentum %.9g 2>&1",
             py && *py ? py : "python3", script, s_specs[0], s_specs[1], s_batches[0],
             s_batches[1], N_SAMPLES, s_seconds, (double)lr, (double)momentum);
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    if (!f) {
        printf("peer: cannot run %s\n", cmd);
        return;
    }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *j = line[0] == '{' ? json_loads(line, 0, &err) : NULL;
        const char *model = j ? json_string_value(json_object_get(j, "model")) : NULL;
        if (!model) {
            printf("%s%s", strncmp(line, "peer", 4) == 0 ? "" : "peer: ", line);
            json_decref(j);
            continue;
        }
        size_t batch = (size_t)json_integer_value(json_object_get(j, "batch"));
        for (int s = 0; s < N_SPECS; s++)
            for (int b = 0; b < N_BATCHES; b++)
                if (strcmp(model, s_specs[s]) == 0 && batch == s_batches[b]) {
                    res[s][b].peer = true;
                    res[s][b].peer_wall_sps =
                        json_number_value(json_object_get(j, "samples_per_s"));
                    res[s][b].peer_cpu_sps =
                        json_number_value(json_object_get(j, "samples_per_cpu_s"));
                }
        json_decref(j);
    }
    int st = pclose(f);
    if (st != 0)
        printf("peer: exited with status %d\n", st);
}

int
main(int argc, char **argv)
{
    const char *env = getenv("COVEY_BENCH_SECONDS");
    if (env && atof(env) > 0.0)
        s_seconds = atof(env);
    char script_buf[1024];
    const char *script = argc > 1 ? argv[1] : NULL;
    const char *src = getenv("COVEY_SRC");
    if (!script && src && *src) {
        snprintf(script_buf, sizeof script_buf, "%s/tests/bench/torch_peer.py", src);
        script = script_buf;
    }

    double start = fl_now();
    fl_blas_init_default();
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("bench_train: local training steps (forward + backward + SGD momentum)\n");
    printf("blas: OpenBLAS core %s, %d thread(s), OPENBLAS_CORETYPE=%s\n", fl_blas_corename(),
           fl_blas_threads(), ct ? ct : "(unset)");

    /* Synthetic data with Fashion-MNIST's shapes. */
    float *x = fl_xmalloc_aligned((size_t)N_SAMPLES * DIM * sizeof(float));
    int32_t *y = fl_xmalloc((size_t)N_SAMPLES * sizeof(int32_t));
    fl_rng_t rng;
    fl_rng_seed(&rng, 2024, 0);
    for (size_t i = 0; i < (size_t)N_SAMPLES * DIM; i++)
        x[i] = (float)(fl_rng_u64(&rng) >> 40) * 0x1.0p-24f;
    for (size_t i = 0; i < N_SAMPLES; i++)
        y[i] = (int32_t)fl_rng_below(&rng, CLASSES);
    printf("data: %d x %d synthetic, uniform in [0,1), %d classes; %.1f s per measurement\n",
           N_SAMPLES, DIM, CLASSES, s_seconds);

    s_result_t res[N_SPECS][N_BATCHES];
    memset(res, 0, sizeof res);
    printf("\n%-16s %5s %12s %14s %9s %9s %9s %10s %8s\n", "covey", "batch", "samples/s",
           "samples/cpu-s", "us/step", "gemm us", "GFLOP/s", "ceil GF/s", "%ceil");
    for (int s = 0; s < N_SPECS; s++)
        for (int b = 0; b < N_BATCHES; b++) {
            s_result_t *r = &res[s][b];
            s_bench_train(s_specs[s], s_batches[b], x, y, r);
            s_bench_gemm(s_specs[s], s_batches[b], x, r);
            printf("%-16s %5zu %12.0f %14.0f %9.1f %9.1f %9.1f %10.1f %7.0f%%\n", s_specs[s],
                   s_batches[b], r->wall_sps, r->cpu_sps, r->step_us, r->gemm_us,
                   r->step_gflops, r->ceil_gflops, 100.0 * r->step_gflops / r->ceil_gflops);
            fflush(stdout);
        }
    free(x);
    free(y);

    fl_optim_config_t cfg;
    fl_optim_config_default(&cfg, FL_OPTIM_SGD);
    printf("\n");
    s_run_peer(script, cfg.lr, cfg.momentum, res);

    printf("\n%-16s %5s %14s %14s %11s %11s %8s\n", "covey/pytorch", "batch", "covey s/cpu-s",
           "torch s/cpu-s", "x (cpu-s)", "x (wall)", "%ceil");
    for (int s = 0; s < N_SPECS; s++)
        for (int b = 0; b < N_BATCHES; b++) {
            const s_result_t *r = &res[s][b];
            char tc[32] = "n/a", rc[32] = "n/a", rw[32] = "n/a";
            if (r->peer && r->peer_cpu_sps > 0 && r->peer_wall_sps > 0) {
                snprintf(tc, sizeof tc, "%.0f", r->peer_cpu_sps);
                snprintf(rc, sizeof rc, "%.2fx", r->cpu_sps / r->peer_cpu_sps);
                snprintf(rw, sizeof rw, "%.2fx", r->wall_sps / r->peer_wall_sps);
            }
            printf("%-16s %5zu %14.0f %14s %11s %11s %7.0f%%\n", s_specs[s], s_batches[b],
                   r->cpu_sps, tc, rc, rw, 100.0 * r->step_gflops / r->ceil_gflops);
        }
    printf("goals: >= 2.5x PyTorch per CPU-second on the MLP, >= 4x on softmax; "
           ">= 70%% of the sgemm ceiling on the MLP\n");
    printf("bench_train: %.1f s (figures, not a pass/fail; noisy on a shared machine)\n",
           fl_now() - start);
    return 0;
}
