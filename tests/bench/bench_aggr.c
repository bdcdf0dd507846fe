/*
 * bench_aggr.c — throughput of streaming FedAvg (fl_aggr_add) next to
 * memory-bandwidth baselines measured in the same run on the same buffers,
 * and the cost of one server-optimizer step (fl_sopt_apply).
 *
 * For models of 0.2M, 1M and 10M parameters and N = 8, 32, 128 updates per
 * round it prints GB/s = bytes of updates (N x numel x 4) processed per
 * second for:
 *   read       a vectorised integer sum over each update: one read stream,
 *              the single-pass memory-bandwidth baseline;
 *   memcpy     copying each update into a staging buffer;
 *   unchecked  acc += w * u in place, float, no validation: one pass, the
 *              lower bound of any streaming add (reads u and acc, writes acc);
 *   scan+add   the alternative design: scan the whole update for NaN/Inf
 *              first, then the in-place add (two passes over the update);
 *   fl_aggr    fl_aggr_add, the path the coordinator uses: validated,
 *              all-or-nothing (fused check, spare buffer, swap);
 *   f64 acc    acc += w * u in place into a double accumulator, unchecked.
 * and the ratios fl_aggr / unchecked and fl_aggr / read.
 *
 * N distinct updates would need N x model bytes (5 GB for 10M x 128), so a
 * pool of 8 distinct updates is reused cyclically; from the 2nd pass over the
 * pool on, sizes that fit in the last-level cache are served from it. Each
 * figure is the best of a few repetitions, kernels interleaved; where one run
 * moves gigabytes (10M x 128) only read, unchecked and fl_aggr are run, to keep
 * the whole bench well under 30 s. The machine
 * is shared, so figures are noisy; nothing here passes or fails on time.
 *
 * Usage: bench_aggr [quick]   ("quick": N = 8 only)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_aggr.h"
#include "fl_rng.h"
#include "fl_serveropt.h"
#include "fl_util.h"

#define POOL 8

static volatile uint32_t s_sink;

/* ---- baseline kernels (noinline so each is timed as the library's is) ---- */

__attribute__((noinline)) static uint32_t
k_read(const float *restrict u, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &u[i], sizeof b);
        s += b;
    }
    return s;
}

__attribute__((noinline)) static void
k_axpy(float *restrict acc, const float *restrict u, size_t n, float w)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += w * u[i];
}

__attribute__((noinline)) static uint32_t
k_scan(const float *restrict u, size_t n)
{
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &u[i], sizeof b);
        b &= 0x7fffffffu;
        m = b > m ? b : m;
    }
    return m;
}

__attribute__((noinline)) static void
k_axpy_f64(double *restrict acc, const float *restrict u, size_t n, double w)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += w * (double)u[i];
}

static float *
s_alloc(size_t n)
{
    float *p = fl_xmalloc_aligned(n * sizeof(float));
    memset(p, 0, n * sizeof(float)); /* first touch outside the timings */
    return p;
}

enum { K_READ, K_MEMCPY, K_UNCHECKED, K_SCANADD, K_AGGR, K_F64, K_COUNT };

/* Time one kernel over N updates from the pool; seconds. */
static double
s_run(int kernel, int nupd, float *const pool[POOL], size_t n, float *stage, float *acc,
      double *acc64, fl_aggr_t *aggr)
{
    double t0 = fl_now();
    if (kernel == K_AGGR)
        fl_aggr_reset(aggr);
    for (int k = 0; k < nupd; k++) {
        const float *u = pool[k % POOL];
        float w = (float)(100 + k % 7); /* a sample count */
        switch (kernel) {
        case K_READ:
            s_sink += k_read(u, n);
            break;
        case K_MEMCPY:
            memcpy(stage, u, n * sizeof(float));
            break;
        case K_UNCHECKED:
            k_axpy(acc, u, n, w);
            break;
        case K_SCANADD:
            if (k_scan(u, n) < 0x7f800000u)
                k_axpy(acc, u, n, w);
            break;
        case K_AGGR:
            if (fl_aggr_add(aggr, u, n, (double)w) != 0) {
                fprintf(stderr, "bench_aggr: fl_aggr_add failed: %s\n", fl_errmsg());
                exit(1);
            }
            break;
        case K_F64:
            k_axpy_f64(acc64, u, n, (double)w);
            break;
        }
    }
    return fl_now() - t0;
}

static void
s_bench_aggr(const size_t *sizes, int nsizes, const int *ns, int nns)
{
    static const char *const names[K_COUNT] = {"read",    "memcpy",  "unchecked",
                                               "scan+add", "fl_aggr", "f64 acc"};
    fl_rng_t rng;
    fl_rng_seed(&rng, 2024, 7);

    printf("streaming FedAvg: GB/s of update bytes (N x numel x 4 B) per second, best of reps\n");
    printf("%-6s %4s", "model", "N");
    for (int k = 0; k < K_COUNT; k++)
        printf(" %9s", names[k]);
    printf(" %10s %10s\n", "aggr/unchk", "aggr/read");

    for (int si = 0; si < nsizes; si++) {
        size_t n = sizes[si];
        float *pool[POOL];
        for (int p = 0; p < POOL; p++) {
            pool[p] = s_alloc(n);
            /* distinct, finite, update-like values in [-0.01, 0.01) */
            for (size_t i = 0; i < n; i++)
                pool[p][i] = (float)((double)(fl_rng_u64(&rng) >> 40) * 0x1p-24 - 0.5) * 0.02f;
        }
        float *stage = s_alloc(n), *acc = s_alloc(n);
        double *acc64 = fl_xmalloc_aligned(n * sizeof(double));
        memset(acc64, 0, n * sizeof(double));
        fl_aggr_t *aggr = fl_aggr_new(n);
        if (!aggr) {
            fprintf(stderr, "bench_aggr: %s\n", fl_errmsg());
            exit(1);
        }

        for (int ni = 0; ni < nns; ni++) {
            int nupd = ns[ni];
            /* about 1 GB per kernel and cell: many repetitions of the short
             * runs (the best of them filters out the other workers' load),
             * one of those that already move gigabytes */
            double bytes = (double)nupd * (double)n * sizeof(float);
            int reps = (int)(1e9 / bytes);
            reps = reps < 1 ? 1 : (reps > 12 ? 12 : reps);
            double best[K_COUNT];
            for (int k = 0; k < K_COUNT; k++)
                best[k] = 1e30;
            /* Where one run moves gigabytes, only the baseline, the bound and
             * the library: the other columns are shown for smaller N. */
            bool big = bytes > 2e9;
            for (int r = 0; r < reps; r++)
                for (int k = 0; k < K_COUNT; k++) {
                    if (big && k != K_READ && k != K_UNCHECKED && k != K_AGGR)
                        continue;
                    double t = s_run(k, nupd, pool, n, stage, acc, acc64, aggr);
                    best[k] = t < best[k] ? t : best[k];
                }
            char model[16];
            snprintf(model, sizeof model, "%gM", (double)n / 1e6);
            printf("%-6s %4d", model, nupd);
            for (int k = 0; k < K_COUNT; k++)
                if (best[k] < 1e30)
                    printf(" %9.1f", bytes / best[k] / 1e9);
                else
                    printf(" %9s", "-");
            printf(" %9.0f%% %9.0f%%\n", 100.0 * best[K_UNCHECKED] / best[K_AGGR],
                   100.0 * best[K_READ] / best[K_AGGR]);
            fflush(stdout);
        }

        /* the end of a round: the mean, once */
        float *mean = stage;
        double t = fl_now();
        if (fl_aggr_mean(aggr, mean) != 0)
            exit(1);
        t = fl_now() - t;
        printf("%-6s fl_aggr_mean %.2f ms (%.1f GB/s of model)\n", "", t * 1e3,
               (double)n * sizeof(float) / t / 1e9);

        fl_aggr_destroy(&aggr);
        free(acc64);
        free(acc);
        free(stage);
        for (int p = 0; p < POOL; p++)
            free(pool[p]);
    }
}

static void
s_bench_sopt(const size_t *sizes, int nsizes)
{
    printf("\nserver optimizer step (fl_sopt_apply): ms per step, best of 3\n");
    printf("%-6s", "model");
    for (int k = 0; k < FL_SOPT_KIND_COUNT; k++)
        printf(" %11s", fl_sopt_kind_name((fl_sopt_kind_t)k));
    printf("\n");
    for (int si = 0; si < nsizes; si++) {
        size_t n = sizes[si];
        float *x = s_alloc(n), *d = s_alloc(n);
        for (size_t i = 0; i < n; i++)
            d[i] = (float)((double)(i % 1000) * 1e-5 - 5e-3);
        char model[16];
        snprintf(model, sizeof model, "%gM", (double)n / 1e6);
        printf("%-6s", model);
        for (int k = 0; k < FL_SOPT_KIND_COUNT; k++) {
            fl_sopt_config_t cfg;
            fl_sopt_t *o = NULL;
            fl_sopt_config_default(&cfg, (fl_sopt_kind_t)k);
            if (fl_sopt_new(&cfg, n, &o) != 0)
                exit(1);
            double best = 1e30;
            for (int r = 0; r < 3; r++) {
                double t = fl_now();
                fl_sopt_apply(o, x, d, n);
                t = fl_now() - t;
                best = t < best ? t : best;
            }
            printf(" %11.2f", best * 1e3);
            fl_sopt_destroy(&o);
        }
        printf("\n");
        free(x);
        free(d);
    }
}

int
main(int argc, char **argv)
{
    const size_t sizes[] = {200000, 1000000, 10000000};
    const int all_n[] = {8, 32, 128}, quick_n[] = {8};
    int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    double t0 = fl_now();

    printf("bench_aggr: fl_aggr (streaming weighted FedAvg) and fl_serveropt\n");
    printf("pool of %d distinct updates reused cyclically; shared machine: figures are noisy\n\n",
           POOL);
    s_bench_aggr(sizes, 3, quick ? quick_n : all_n, quick ? 1 : 3);
    s_bench_sopt(sizes, 3);
    printf("\nbench_aggr: %.1f s\n", fl_now() - t0);
    return 0;
}
