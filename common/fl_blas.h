/*
 * fl_blas.h — how libcovey uses OpenBLAS: the number of BLAS threads and the
 * kernel in use.
 *
 * Covey trains with one BLAS thread by default: on the small machines it runs
 * on (and with the batch sizes of federated training) a second thread rarely
 * pays for its synchronisation, and agents share their machine with other
 * work. COVEY_BLAS_THREADS=N in the environment asks for N threads instead.
 */
#ifndef FL_BLAS_H
#define FL_BLAS_H

/* Upper bound accepted for COVEY_BLAS_THREADS and fl_blas_set_threads(). */
#define FL_BLAS_THREADS_MAX 256

/*
 * Apply the default thread count once per process: 1, or COVEY_BLAS_THREADS=N
 * (1..FL_BLAS_THREADS_MAX; an invalid value is logged and ignored). Later
 * calls do nothing, and neither does the first one after fl_blas_set_threads(),
 * so an explicit choice is never overridden. fl_model_new() calls it. Can't fail.
 */
void fl_blas_init_default(void);

/* Use n BLAS threads (clamped to 1..FL_BLAS_THREADS_MAX). Can't fail. */
void fl_blas_set_threads(int n);

/* The number of threads OpenBLAS will use. */
int fl_blas_threads(void);

/* The name of the OpenBLAS kernel in use ("Haswell", "SkylakeX", ...), as
 * openblas_get_corename() gives it. Borrowed, static; never NULL. */
const char *fl_blas_corename(void);

#endif
