/*
 * fl_data.c — IDX and CSV loaders, subsets and standardisation for
 * fl_dataset_t. See fl_data.h for the contracts.
 *
 * Both loaders treat the file as hostile: sizes declared in a header are
 * capped before anything is allocated, and the IDX reader grows its buffer
 * only as bytes actually arrive, so a 100-byte file claiming 2^31 images
 * costs 100 bytes of reading and one error, not a giant allocation.
 */
#include "fl_data.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define S_IDX_MAGIC_IMAGES 0x00000803u
#define S_IDX_MAGIC_LABELS 0x00000801u
#define S_FASHION_DIR "/usr/share/datasets/fashion-mnist"
/* First allocation for an IDX body; doubled as data arrives. */
#define S_IDX_FIRST_CHUNK ((size_t)16 << 20)
/* gzread takes an unsigned length; stay well inside it. */
#define S_GZ_MAX_READ ((size_t)1 << 30)
/* At most this many characters of an offending CSV field go into a message. */
#define S_FIELD_SHOW 40

/* ------------------------------------------------------------------------ */
/* Construction and destruction                                              */

/* Allocation of a data set's big arrays: FL_ENOMEM rather than abort, since
 * their sizes come from a file. */
static int
s_alloc_arrays(size_t n, size_t dim, float **x_p, int32_t **y_p)
{
    size_t nx, bytes_x, bytes_y;
    void *x = NULL;

    if (!fl_mul_ok(n, dim, &nx) || !fl_mul_ok(nx, sizeof(float), &bytes_x) ||
        !fl_mul_ok(n, sizeof(int32_t), &bytes_y))
        return fl_fail(FL_ERANGE, "data set of %zu x %zu values is too large", n, dim);
    bytes_x = (bytes_x + 63) & ~(size_t)63;
    if (posix_memalign(&x, 64, bytes_x ? bytes_x : 64) != 0)
        return fl_fail(FL_ENOMEM, "cannot allocate %zu bytes for %zu x %zu features", bytes_x, n,
                       dim);
    int32_t *y = malloc(bytes_y ? bytes_y : 1);
    if (!y) {
        free(x);
        return fl_fail(FL_ENOMEM, "cannot allocate %zu bytes for %zu labels", bytes_y, n);
    }
    *x_p = x;
    *y_p = y;
    return 0;
}

static fl_dataset_t *
s_wrap(size_t n, size_t dim, size_t num_classes, float *x, int32_t *y)
{
    fl_dataset_t *ds = fl_xcalloc(1, sizeof *ds);
    ds->n = n;
    ds->dim = dim;
    ds->num_classes = num_classes;
    ds->x = x;
    ds->y = y;
    return ds;
}

fl_dataset_t *
fl_dataset_new(size_t n, size_t dim, size_t num_classes)
{
    size_t nx, bytes_x;
    if (!fl_mul_ok(n, dim, &nx) || !fl_mul_ok(nx, sizeof(float), &bytes_x)) {
        fprintf(stderr, "covey: fl_dataset_new(%zu, %zu): size overflow\n", n, dim);
        abort();
    }
    float *x = fl_xmalloc_aligned(bytes_x);
    memset(x, 0, bytes_x);
    int32_t *y = fl_xcalloc(n ? n : 1, sizeof(int32_t));
    return s_wrap(n, dim, num_classes, x, y);
}

void
fl_dataset_destroy(fl_dataset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_dataset_t *self = *self_p;
    free(self->x);
    free(self->y);
    free(self);
    *self_p = NULL;
}

/* ------------------------------------------------------------------------ */
/* IDX                                                                        */

static int
s_gz_open(const char *path, gzFile *gz_p)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        int e = errno;
        return fl_fail(e == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode))
        return fl_fail(FL_EIO, "%s: not a regular file", path);
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        int e = errno;
        return fl_fail(e == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: cannot open: %s", path,
                       e ? strerror(e) : "out of memory");
    }
    gzbuffer(gz, 1u << 17);
    *gz_p = gz;
    return 0;
}

/* Read up to len bytes; *got_p < len only at the end of the stream. */
static int
s_gz_read(gzFile gz, const char *path, void *buf, size_t len, size_t *got_p)
{
    size_t got = 0;
    while (got < len) {
        size_t ask = len - got < S_GZ_MAX_READ ? len - got : S_GZ_MAX_READ;
        int r = gzread(gz, (uint8_t *)buf + got, (unsigned)ask);
        if (r < 0) {
            int zerr = 0;
            const char *msg = gzerror(gz, &zerr);
            size_t plen = strlen(path);
            /* zlib prefixes its message with the path; we add our own. */
            if (msg && strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
                msg += plen + 2;
            return fl_fail(zerr == Z_ERRNO ? FL_EIO : FL_EFORMAT, "%s: read error: %s", path,
                           msg && *msg ? msg : "corrupt gzip stream");
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *got_p = got;
    return 0;
}

static uint32_t
s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Read a header of 4 + 4*ndims bytes into magic and dims[]. */
static int
s_idx_header(gzFile gz, const char *path, uint32_t want_magic, const char *what,
             size_t ndims, size_t *dims)
{
    uint8_t hdr[16];
    size_t hlen = 4 + 4 * ndims, got = 0;
    int rc;

    assert(hlen <= sizeof hdr);
    if ((rc = s_gz_read(gz, path, hdr, 4, &got)) < 0)
        return rc;
    if (got < 4)
        return fl_fail(FL_EFORMAT, "%s: truncated IDX header (%zu bytes)", path, got);
    uint32_t magic = s_be32(hdr);
    if (magic != want_magic)
        return fl_fail(FL_EFORMAT, "%s: bad magic 0x%08x (expected 0x%08x: IDX %s)", path, magic,
                       want_magic, what);
    if ((rc = s_gz_read(gz, path, hdr + 4, hlen - 4, &got)) < 0)
        return rc;
    if (got < hlen - 4)
        return fl_fail(FL_EFORMAT, "%s: truncated IDX header (%zu bytes)", path, 4 + got);
    for (size_t d = 0; d < ndims; d++)
        dims[d] = s_be32(hdr + 4 + 4 * d);
    return 0;
}

/*
 * Read exactly `want` bytes of body into a new buffer, growing it as data
 * arrives, then insist that the stream ends there. Caller frees *buf_p.
 */
static int
s_idx_body(gzFile gz, const char *path, const char *what, size_t want, uint8_t **buf_p)
{
    size_t cap = want < S_IDX_FIRST_CHUNK ? want : S_IDX_FIRST_CHUNK, got = 0;
    uint8_t *buf = malloc(cap ? cap : 1), extra;
    int rc;

    if (!buf)
        return fl_fail(FL_ENOMEM, "%s: cannot allocate %zu bytes", path, cap);
    while (got < want) {
        size_t n = 0;
        if (got == cap) {
            size_t ncap = cap > want / 2 ? want : cap * 2;
            uint8_t *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                rc = fl_fail(FL_ENOMEM, "%s: cannot allocate %zu bytes", path, ncap);
                goto out;
            }
            buf = nbuf;
            cap = ncap;
        }
        if ((rc = s_gz_read(gz, path, buf + got, cap - got, &n)) < 0)
            goto out;
        got += n;
        if (got < cap) {
            rc = fl_fail(FL_EFORMAT,
                         "%s: truncated: header declares %zu bytes of %s, file holds %zu", path,
                         want, what, got);
            goto out;
        }
    }
    size_t n = 0;
    if ((rc = s_gz_read(gz, path, &extra, 1, &n)) < 0)
        goto out;
    if (n != 0) {
        rc = fl_fail(FL_EFORMAT, "%s: unexpected bytes after the %zu declared bytes of %s", path,
                     want, what);
        goto out;
    }
    /* All data present but the gzip trailer cut off: zlib reports it only as
     * a soft error at the end of the stream. */
    int zerr = Z_OK;
    gzerror(gz, &zerr);
    if (zerr != Z_OK) {
        rc = fl_fail(FL_EFORMAT, "%s: truncated or corrupt gzip stream after the %s", path, what);
        goto out;
    }
    *buf_p = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    return rc;
}

int
fl_dataset_load_idx(const char *images_path, const char *labels_path, fl_dataset_t **out)
{
    gzFile gi = NULL, gl = NULL;
    uint8_t *pix = NULL, *lab = NULL;
    float *x = NULL;
    int32_t *y = NULL;
    size_t idims[3] = {0, 0, 0}, ldims[1] = {0}, n, dim, total;
    int rc;

    if (!images_path || !labels_path || !out)
        return fl_fail(FL_EINVAL, "fl_dataset_load_idx: NULL argument");
    if ((rc = s_gz_open(images_path, &gi)) < 0)
        goto out;
    if ((rc = s_idx_header(gi, images_path, S_IDX_MAGIC_IMAGES,
                           "unsigned-byte images, 3 dimensions", 3, idims)) < 0)
        goto out;
    n = idims[0];
    if (n == 0 || idims[1] == 0 || idims[2] == 0) {
        rc = fl_fail(FL_EFORMAT, "%s: empty image set (%zu x %zu x %zu)", images_path, idims[0],
                     idims[1], idims[2]);
        goto out;
    }
    if (n > FL_IDX_MAX_ITEMS) {
        rc = fl_fail(FL_ERANGE, "%s: %zu images declared, more than the limit of %zu",
                     images_path, n, FL_IDX_MAX_ITEMS);
        goto out;
    }
    if (!fl_mul_ok(idims[1], idims[2], &dim) || dim > FL_IDX_MAX_ITEM_SIZE) {
        rc = fl_fail(FL_ERANGE, "%s: image size %zu x %zu exceeds the limit of %zu values",
                     images_path, idims[1], idims[2], FL_IDX_MAX_ITEM_SIZE);
        goto out;
    }
    if (!fl_mul_ok(n, dim, &total) || total > FL_IDX_MAX_VALUES) {
        rc = fl_fail(FL_ERANGE, "%s: %zu images of %zu x %zu exceed the limit of %zu values",
                     images_path, n, idims[1], idims[2], FL_IDX_MAX_VALUES);
        goto out;
    }

    if ((rc = s_gz_open(labels_path, &gl)) < 0)
        goto out;
    if ((rc = s_idx_header(gl, labels_path, S_IDX_MAGIC_LABELS, "unsigned-byte labels, 1 dimension",
                           1, ldims)) < 0)
        goto out;
    if (ldims[0] != n) {
        rc = fl_fail(FL_EFORMAT, "%s holds %zu images but %s holds %zu labels", images_path, n,
                     labels_path, ldims[0]);
        goto out;
    }

    if ((rc = s_idx_body(gl, labels_path, "labels", n, &lab)) < 0)
        goto out;
    if ((rc = s_idx_body(gi, images_path, "pixels", total, &pix)) < 0)
        goto out;
    if ((rc = s_alloc_arrays(n, dim, &x, &y)) < 0)
        goto out;

    float lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = (float)v / 255.0f;
    for (size_t i = 0; i < total; i++)
        x[i] = lut[pix[i]];
    uint8_t maxlab = 0;
    for (size_t i = 0; i < n; i++) {
        y[i] = lab[i];
        if (lab[i] > maxlab)
            maxlab = lab[i];
    }
    *out = s_wrap(n, dim, (size_t)maxlab + 1, x, y);
    x = NULL;
    y = NULL;
    rc = 0;
out:
    if (gi)
        gzclose(gi);
    if (gl)
        gzclose(gl);
    free(pix);
    free(lab);
    free(x);
    free(y);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                        */

void
fl_csv_opts_default(fl_csv_opts_t *opts)
{
    opts->label_column = 0;
    opts->header = -1;
    opts->delimiter = ',';
}

/* A field of a CSV line: [s, s+len) after trimming. */
typedef struct {
    char *s;
    size_t len;
} s_field_t;

typedef struct {
    const char *path;
    char delim;
} s_csv_t;

static bool
s_is_trim(const s_csv_t *c, char ch)
{
    return (ch == ' ' || ch == '\t') && ch != c->delim;
}

/* Split off the field starting at *pp within a line ending at `end`; advance
 * *pp past its delimiter. Returns false when the line is exhausted. */
static bool
s_next_field(const s_csv_t *c, char **pp, char *end, bool *more, s_field_t *f)
{
    char *p = *pp, *q = p;
    if (!*more)
        return false;
    while (q < end && *q != c->delim)
        q++;
    *more = q < end;
    *pp = q < end ? q + 1 : end;
    while (p < q && s_is_trim(c, *p))
        p++;
    while (q > p && s_is_trim(c, q[-1]))
        q--;
    if (q - p >= 2 && *p == '"' && q[-1] == '"') {
        p++;
        q--;
    }
    f->s = p;
    f->len = (size_t)(q - p);
    return true;
}

/* Parse a field as a float; the whole field must be consumed. Copies the
 * field, so the buffer is not modified. */
static bool
s_parse_float(const s_field_t *f, float *v)
{
    char small[64], *tmp = f->len < sizeof small ? small : fl_xmalloc(f->len + 1);
    char *end = NULL;
    bool ok;

    memcpy(tmp, f->s, f->len);
    tmp[f->len] = 0;
    errno = 0;
    *v = strtof(tmp, &end);
    /* ERANGE on underflow still leaves a finite (tiny) value, which is fine. */
    ok = f->len > 0 && end == tmp + f->len;
    if (tmp != small)
        free(tmp);
    return ok;
}

static int
s_parse_label(const s_field_t *f, int32_t *v)
{
    uint32_t acc = 0;
    if (f->len == 0 || f->len > 5)
        return -1;
    for (size_t i = 0; i < f->len; i++) {
        if (f->s[i] < '0' || f->s[i] > '9')
            return -1;
        acc = acc * 10 + (uint32_t)(f->s[i] - '0');
    }
    if (acc > FL_CSV_MAX_CLASS)
        return -1;
    *v = (int32_t)acc;
    return 0;
}

static bool
s_blank(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r')
            return false;
    return true;
}

/* The end of the line starting at p (its '\n' or the end of the buffer), and
 * the end of its content (before a '\r'). */
static char *
s_line_end(char *p, char *bufend, char **content_end)
{
    char *nl = memchr(p, '\n', (size_t)(bufend - p));
    char *e = nl ? nl : bufend;
    *content_end = (e > p && e[-1] == '\r') ? e - 1 : e;
    return e;
}

int
fl_dataset_load_csv(const char *path, const fl_csv_opts_t *opts, fl_dataset_t **out)
{
    fl_csv_opts_t o;
    uint8_t *raw = NULL;
    size_t len = 0, ncols = 0, lines = 0, nonblank = 0, rows, dim, label_col;
    float *x = NULL;
    int32_t *y = NULL;
    int rc;

    if (!path || !out)
        return fl_fail(FL_EINVAL, "fl_dataset_load_csv: NULL argument");
    if (opts)
        o = *opts;
    else
        fl_csv_opts_default(&o);
    if (o.header < -1 || o.header > 1)
        return fl_fail(FL_EINVAL, "%s: CSV header option must be -1, 0 or 1, got %d", path,
                       o.header);
    if (o.delimiter == '\0' || o.delimiter == '\n' || o.delimiter == '\r' ||
        o.delimiter == '"' || (o.delimiter >= '0' && o.delimiter <= '9') ||
        o.delimiter == '.' || o.delimiter == '-' || o.delimiter == '+')
        return fl_fail(FL_EINVAL, "%s: unusable CSV delimiter 0x%02x", path,
                       (unsigned)(unsigned char)o.delimiter);
    if (o.label_column < -1)
        return fl_fail(FL_EINVAL, "%s: label column %d (use -1 for the last column)", path,
                       o.label_column);

    if ((rc = fl_read_file(path, FL_CSV_MAX_BYTES, &raw, &len)) < 0)
        return rc;
    s_csv_t c = {path, o.delimiter};
    char *buf = (char *)raw, *bufend = buf + len, *start = buf;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        start += 3;

    /* Pass 1: count lines with content, find the first, count its columns. */
    char *first = NULL, *first_end = NULL;
    for (char *p = start; p < bufend;) {
        char *ce, *e = s_line_end(p, bufend, &ce);
        if (!s_blank(p, ce)) {
            if (!first) {
                first = p;
                first_end = ce;
            }
            nonblank++;
        }
        p = e + 1;
    }
    if (!first) {
        rc = fl_fail(FL_EFORMAT, "%s: empty file", path);
        goto out;
    }
    ncols = 1;
    for (char *p = first; p < first_end; p++) {
        if (*p == o.delimiter && ++ncols > FL_CSV_MAX_COLUMNS) {
            rc = fl_fail(FL_ERANGE, "%s: more than %zu columns", path, FL_CSV_MAX_COLUMNS);
            goto out;
        }
    }
    if (ncols < 2) {
        rc = fl_fail(FL_EFORMAT, "%s: %zu column: need a label column and at least one feature "
                     "(is the delimiter '%c'?)", path, ncols, o.delimiter);
        goto out;
    }
    if (o.label_column >= 0 && (size_t)o.label_column >= ncols) {
        rc = fl_fail(FL_EINVAL, "%s: label column %d does not exist (the file has %zu columns)",
                     path, o.label_column, ncols);
        goto out;
    }
    label_col = o.label_column < 0 ? ncols - 1 : (size_t)o.label_column;
    dim = ncols - 1;

    int header = o.header;
    if (header < 0) {
        /* Auto-detect: a first row with any field that is not a number. */
        char *p = first;
        bool more = true;
        s_field_t f;
        float v;
        header = 0;
        while (s_next_field(&c, &p, first_end, &more, &f))
            if (!s_parse_float(&f, &v)) {
                header = 1;
                break;
            }
    }
    rows = nonblank - (size_t)header;
    if (rows == 0) {
        rc = fl_fail(FL_EFORMAT, "%s: no data rows (only a header)", path);
        goto out;
    }
    if (rows > UINT32_MAX) {
        rc = fl_fail(FL_ERANGE, "%s: %zu rows, more than the limit of %u", path, rows, UINT32_MAX);
        goto out;
    }
    if ((rc = s_alloc_arrays(rows, dim, &x, &y)) < 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", fl_errmsg());
        rc = fl_fail(rc, "%s: %s", path, why);
        goto out;
    }

    /* Pass 2: parse every data row. */
    size_t row = 0, blank_line = 0;
    int32_t maxlab = 0;
    bool skip_header = header == 1;
    for (char *p = start; p < bufend;) {
        char *ce, *e = s_line_end(p, bufend, &ce);
        lines++;
        if (s_blank(p, ce)) {
            if (!blank_line)
                blank_line = lines;
            p = e + 1;
            continue;
        }
        if (blank_line) {
            rc = fl_fail(FL_EFORMAT, "%s:%zu: empty line in the middle of the data", path,
                         blank_line);
            goto out;
        }
        if (skip_header) {
            /* The header must have as many columns as the data; the first
             * line set ncols, so there is nothing more to check. */
            skip_header = false;
            p = e + 1;
            continue;
        }
        assert(row < rows);
        float *xr = x + row * dim;
        char *q = p;
        bool more = true;
        size_t col = 0, j = 0;
        s_field_t f;
        while (s_next_field(&c, &q, ce, &more, &f)) {
            if (col >= ncols) {
                col++; /* ragged: count them all for the message below */
                continue;
            }
            int show = (int)(f.len < S_FIELD_SHOW ? f.len : S_FIELD_SHOW);
            if (col == label_col) {
                if (s_parse_label(&f, &y[row]) < 0) {
                    rc = fl_fail(FL_EFORMAT,
                                 "%s:%zu: column %zu: '%.*s' is not a valid label (expected an "
                                 "integer class id 0..%d)",
                                 path, lines, col + 1, show, f.s, FL_CSV_MAX_CLASS);
                    goto out;
                }
                if (y[row] > maxlab)
                    maxlab = y[row];
            } else {
                float v;
                if (!s_parse_float(&f, &v)) {
                    rc = fl_fail(FL_EFORMAT, "%s:%zu: column %zu: '%.*s' is not a number", path,
                                 lines, col + 1, show, f.s);
                    goto out;
                }
                if (!isfinite(v)) {
                    rc = fl_fail(FL_EFORMAT, "%s:%zu: column %zu: '%.*s' is not a finite number",
                                 path, lines, col + 1, show, f.s);
                    goto out;
                }
                xr[j++] = v;
            }
            col++;
        }
        if (col != ncols) {
            rc = fl_fail(FL_EFORMAT, "%s:%zu: %zu columns, expected %zu", path, lines, col, ncols);
            goto out;
        }
        row++;
        p = e + 1;
    }
    assert(row == rows);
    *out = s_wrap(rows, dim, (size_t)maxlab + 1, x, y);
    x = NULL;
    y = NULL;
    rc = 0;
out:
    free(raw);
    free(x);
    free(y);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Sources by name                                                            */

static bool
s_ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static int
s_open_fashion(bool train, fl_dataset_t **out)
{
    const char *dir = getenv("COVEY_FASHION_MNIST_DIR");
    const char *pre = train ? "train" : "t10k";
    char images[PATH_MAX], labels[PATH_MAX];
    struct stat st;

    if (!dir || !*dir)
        dir = S_FASHION_DIR;
    if ((size_t)snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, pre) >=
            sizeof images ||
        (size_t)snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, pre) >=
            sizeof labels)
        return fl_fail(FL_EINVAL, "fashion-mnist: directory name too long: %s", dir);
    const char *missing = stat(images, &st) != 0 ? images : stat(labels, &st) != 0 ? labels : NULL;
    if (missing)
        return fl_fail(FL_ENOTFOUND,
                       "fashion-mnist: %s not found: install the package dataset-fashion-mnist "
                       "(or set COVEY_FASHION_MNIST_DIR to a directory holding its files)",
                       missing);
    return fl_dataset_load_idx(images, labels, out);
}

int
fl_dataset_open(const char *source, bool train, fl_dataset_t **out)
{
    if (!source || !out)
        return fl_fail(FL_EINVAL, "fl_dataset_open: NULL argument");
    if (strcmp(source, "fashion-mnist") == 0)
        return s_open_fashion(train, out);
    if (strncmp(source, "idx:", 4) == 0) {
        const char *comma = strchr(source + 4, ',');
        if (!comma || comma == source + 4 || comma[1] == '\0')
            return fl_fail(FL_EINVAL, "data source '%s': expected idx:IMAGES,LABELS", source);
        char *images = fl_xstrdup(source + 4);
        images[comma - (source + 4)] = '\0';
        int rc = fl_dataset_load_idx(images, comma + 1, out);
        free(images);
        return rc;
    }
    if (strncmp(source, "csv:", 4) == 0) {
        if (source[4] == '\0')
            return fl_fail(FL_EINVAL, "data source '%s': expected csv:PATH", source);
        return fl_dataset_load_csv(source + 4, NULL, out);
    }
    if (s_ends_with(source, ".csv"))
        return fl_dataset_load_csv(source, NULL, out);
    return fl_fail(FL_EINVAL,
                   "unknown data source '%s' (expected fashion-mnist, idx:IMAGES,LABELS, csv:PATH "
                   "or a path ending in .csv)",
                   source);
}

/* ------------------------------------------------------------------------ */
/* Subsets and statistics                                                     */

fl_dataset_t *
fl_dataset_subset(const fl_dataset_t *ds, const uint32_t *idx, size_t count)
{
    fl_dataset_t *sub = fl_dataset_new(count, ds->dim, ds->num_classes);
    for (size_t i = 0; i < count; i++) {
        assert(idx[i] < ds->n);
        memcpy(sub->x + i * ds->dim, ds->x + (size_t)idx[i] * ds->dim, ds->dim * sizeof(float));
        sub->y[i] = ds->y[idx[i]];
    }
    return sub;
}

void
fl_dataset_feature_stats(const fl_dataset_t *ds, float *mean, float *std)
{
    size_t dim = ds->dim, n = ds->n;
    double *acc = fl_xcalloc(dim ? dim : 1, sizeof(double));

    /* Two passes in double: exact zero variance for a constant feature and no
     * cancellation from E[x^2] - E[x]^2. */
    for (size_t i = 0; i < n; i++) {
        const float *r = ds->x + i * dim;
        for (size_t j = 0; j < dim; j++)
            acc[j] += r[j];
    }
    for (size_t j = 0; j < dim; j++) {
        acc[j] = n ? acc[j] / (double)n : 0.0;
        mean[j] = (float)acc[j];
    }
    double *var = fl_xcalloc(dim ? dim : 1, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        const float *r = ds->x + i * dim;
        for (size_t j = 0; j < dim; j++) {
            double d = (double)r[j] - acc[j];
            var[j] += d * d;
        }
    }
    for (size_t j = 0; j < dim; j++) {
        double sd = n ? sqrt(var[j] / (double)n) : 0.0;
        /* A (nearly) constant feature carries no information; dividing it by
         * 1 keeps it at zero after centring instead of blowing up noise. */
        std[j] = sd > 1e-6 * (fabs(acc[j]) + 1e-6) ? (float)sd : 1.0f;
    }
    free(acc);
    free(var);
}

void
fl_dataset_standardize(fl_dataset_t *ds, const float *mean, const float *std)
{
    size_t dim = ds->dim;
    float *inv = fl_xmalloc((dim ? dim : 1) * sizeof(float));
    for (size_t j = 0; j < dim; j++) {
        assert(std[j] > 0.0f);
        inv[j] = 1.0f / std[j];
    }
    for (size_t i = 0; i < ds->n; i++) {
        float *r = ds->x + i * dim;
        for (size_t j = 0; j < dim; j++)
            r[j] = (r[j] - mean[j]) * inv[j];
    }
    free(inv);
}
