/*
 * fl_blas.c — BLAS thread count and kernel name. See fl_blas.h.
 */
#include "fl_blas.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

#include "fl_log.h"
#include "fl_util.h"

static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void
s_apply_default(void)
{
    int n = 1;
    const char *env = getenv("COVEY_BLAS_THREADS");
    if (env && *env) {
        uint64_t v;
        if (fl_parse_u64(env, "COVEY_BLAS_THREADS", &v) == 0 && v >= 1 &&
            v <= FL_BLAS_THREADS_MAX) {
            n = (int)v;
        } else {
            char q[64];
            fl_warn("ignoring COVEY_BLAS_THREADS: not an integer in 1..256", "value=%s",
                    fl_log_q(q, sizeof q, env));
        }
    }
    openblas_set_num_threads(n);
}

void
fl_blas_init_default(void)
{
    pthread_once(&s_once, s_apply_default);
}

static void
s_nothing(void)
{
}

void
fl_blas_set_threads(int n)
{
    /* Consume the once-flag so that a later fl_blas_init_default() (from
     * fl_model_new) leaves this explicit choice alone. */
    pthread_once(&s_once, s_nothing);
    if (n < 1)
        n = 1;
    if (n > FL_BLAS_THREADS_MAX)
        n = FL_BLAS_THREADS_MAX;
    openblas_set_num_threads(n);
}

int
fl_blas_threads(void)
{
    return openblas_get_num_threads();
}

const char *
fl_blas_corename(void)
{
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}
