/*
 * fl_data.h — labelled data sets for local training and evaluation: loading
 * IDX (the MNIST format, gzip'd or plain) and CSV files into one dense float
 * matrix plus a label vector, row subsets, and per-feature standardisation.
 *
 * Data files come from outside, so every loader checks what it reads: magic
 * numbers, declared sizes against hard caps before anything is allocated,
 * truncation, trailing bytes, numbers that do not parse or are not finite.
 * A failure returns a negative FL_E* code and fl_errmsg() names the file and
 * what is wrong with it (and, for CSV, the line and column).
 */
#ifndef FL_DATA_H
#define FL_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

/* Caps on what a data file may declare; anything larger is refused before
 * any allocation. */
#define FL_IDX_MAX_ITEMS ((size_t)100000000)      /* images / labels in one file */
#define FL_IDX_MAX_ITEM_SIZE ((size_t)1 << 20)    /* rows * cols of one image */
#define FL_IDX_MAX_VALUES ((size_t)1 << 32)       /* items * rows * cols */
#define FL_CSV_MAX_BYTES ((size_t)4 << 30)        /* size of a CSV file */
#define FL_CSV_MAX_COLUMNS ((size_t)1 << 20)      /* columns of a CSV row */
#define FL_CSV_MAX_CLASS 65535                    /* largest CSV class id */

/* A data set: n samples of dim features each, with integer class labels. */
typedef struct fl_dataset {
    size_t n, dim, num_classes;
    float *x;   /* n*dim row-major, 64-byte aligned; owned, released with free() */
    int32_t *y; /* n labels in [0, num_classes); owned */
} fl_dataset_t;

/*
 * Load an IDX image file (magic 0x00000803: unsigned bytes, 3 dimensions
 * n x rows x cols) and its IDX label file (magic 0x00000801: n unsigned bytes).
 * Either file may be gzip'd or plain. Pixels are scaled to [0, 1] (x / 255);
 * dim = rows * cols; num_classes = max(label) + 1.
 *
 * Refused (FL_EFORMAT / FL_ERANGE / FL_ENOTFOUND / FL_EIO): a missing or
 * unreadable file, a wrong magic, zero or absurd dimensions (n > 100M,
 * rows*cols > 1M, n*rows*cols > 2^32 — checked before allocating), image and
 * label counts that differ, a truncated file, bytes after the declared data,
 * a corrupt gzip stream. Memory grows only as data actually arrives, so a tiny
 * file that declares a huge size costs nothing.
 *
 * On success *out is a new data set the caller owns (fl_dataset_destroy);
 * on failure *out is untouched.
 */
int fl_dataset_load_idx(const char *images_path, const char *labels_path,
                        fl_dataset_t **out) FL_MUST_CHECK;

/* CSV options. */
typedef struct fl_csv_opts {
    int label_column; /* 0-based index of the label column; -1 = last column */
    int header;       /* -1 auto-detect (a first row with a non-numeric field), 0 none, 1 present */
    char delimiter;   /* field separator */
} fl_csv_opts_t;

/* Defaults: label_column 0, header -1 (auto-detect), delimiter ','. */
void fl_csv_opts_default(fl_csv_opts_t *opts);

/*
 * Load a CSV file: one sample per line, one column holding the class label
 * (a non-negative integer < 65536, digits only), every other column a feature
 * (a finite float; strtof must consume the whole field). Spaces and tabs
 * around a field and one pair of surrounding double quotes are ignored;
 * quoted delimiters are not supported. CRLF line ends and a UTF-8 byte-order
 * mark are accepted. Every row has the same number of columns (at least 2);
 * empty lines at the end are fine, empty lines elsewhere are not.
 * num_classes = max(label) + 1. `opts` may be NULL for the defaults.
 *
 * Errors name the file, the 1-based line and the 1-based column, e.g.
 * "iris.csv:17: column 3: 'abc' is not a number". Refused: a file over 4 GiB,
 * more than 1M columns, an empty or header-only file, ragged rows, a bad
 * label or feature, NaN/Inf, a label column that does not exist.
 *
 * On success *out is a new data set the caller owns; on failure it is untouched.
 */
int fl_dataset_load_csv(const char *path, const fl_csv_opts_t *opts,
                        fl_dataset_t **out) FL_MUST_CHECK;

/*
 * Open a data set by name:
 *   "fashion-mnist"      the Fashion-MNIST train (train=true, 60000) or test
 *                        (train=false, 10000) set from
 *                        /usr/share/datasets/fashion-mnist (or the directory
 *                        in $COVEY_FASHION_MNIST_DIR); when the files are
 *                        absent the error (FL_ENOTFOUND) says to install the
 *                        package dataset-fashion-mnist.
 *   "idx:IMAGES,LABELS"  those IDX files (train ignored).
 *   "csv:PATH", or any PATH ending in ".csv"
 *                        a CSV file with the default options (train ignored).
 * Anything else is FL_EINVAL. Caller owns *out; on failure it is untouched.
 */
int fl_dataset_open(const char *source, bool train, fl_dataset_t **out) FL_MUST_CHECK;

/* A new data set of n zeroed samples (features and labels). Caller owns the
 * result. Aborts if memory runs out (sizes are the caller's, not a file's). */
fl_dataset_t *fl_dataset_new(size_t n, size_t dim, size_t num_classes);

/* Free a data set and null *self_p. Accepts NULL and a NULL *self_p. */
void fl_dataset_destroy(fl_dataset_t **self_p);

/* A new data set holding copies of rows idx[0..count) of ds (in that order),
 * with the same dim and num_classes. Every idx[i] must be < ds->n (asserted).
 * Caller owns the result. */
fl_dataset_t *fl_dataset_subset(const fl_dataset_t *ds, const uint32_t *idx, size_t count);

/* Per-feature mean and population standard deviation over all samples, into
 * the caller's arrays of ds->dim floats. The std of a constant feature (and
 * every std of an empty data set) is reported as 1, so that it can be divided
 * by. Cannot fail. */
void fl_dataset_feature_stats(const fl_dataset_t *ds, float *mean, float *std);

/* x = (x - mean) / std for every sample, per feature; mean and std hold
 * ds->dim values (typically from fl_dataset_feature_stats of the training
 * set), every std > 0 (asserted). */
void fl_dataset_standardize(fl_dataset_t *ds, const float *mean, const float *std);

#endif
