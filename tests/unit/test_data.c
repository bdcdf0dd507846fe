/*
 * test_data.c — unit tests of fl_data: IDX (gzip'd and plain) and CSV loading
 * from small files written into a temporary directory, every malformed-input
 * case refused with a named reason, fl_dataset_open sources, the real
 * Fashion-MNIST set when installed, subsets and standardisation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "fl_data.h"
#include "fl_util.h"
#include "testutil.h"

/* |a - b| <= eps, computed in double. */
#define NEAR(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

/* ---- fixtures ---------------------------------------------------------- */

static const char *
s_write(const char *name, const void *data, size_t len, bool gz)
{
    const char *path = s_tmp_path(name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        if (len)
            assert_int_equal(gzwrite(f, data, (unsigned)len), (int)len);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        s_write_file(path, data, len, 0644);
    }
    return path;
}

static const char *
s_write_str(const char *name, const char *text)
{
    return s_write(name, text, strlen(text), false);
}

static void
s_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX image file image: header for (n, rows, cols) followed by `have`
 * pixel bytes (pixel i has value (i * 37) % 256). Caller frees. */
static uint8_t *
s_idx_images(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t have, size_t *len)
{
    uint8_t *b = malloc(16 + have);
    assert_non_null(b);
    s_be32(b, magic);
    s_be32(b + 4, n);
    s_be32(b + 8, rows);
    s_be32(b + 12, cols);
    for (size_t i = 0; i < have; i++)
        b[16 + i] = (uint8_t)((i * 37) % 256);
    *len = 16 + have;
    return b;
}

static uint8_t *
s_idx_labels(uint32_t magic, uint32_t n, const uint8_t *labels, size_t have, size_t *len)
{
    uint8_t *b = malloc(8 + have);
    assert_non_null(b);
    s_be32(b, magic);
    s_be32(b + 4, n);
    memcpy(b + 8, labels, have);
    *len = 8 + have;
    return b;
}

/* Standard good pair: 3 images of 2x3, labels {0, 4, 2}. */
static const uint8_t s_labels3[3] = {0, 4, 2};

static void
s_write_good_pair(const char *img_name, const char *lab_name, bool gz_img, bool gz_lab)
{
    size_t len;
    uint8_t *b = s_idx_images(0x803, 3, 2, 3, 18, &len);
    s_write(img_name, b, len, gz_img);
    free(b);
    b = s_idx_labels(0x801, 3, s_labels3, 3, &len);
    s_write(lab_name, b, len, gz_lab);
    free(b);
}

static int
s_setup(void **state)
{
    (void)state;
    return s_tmpdir_make("data");
}

/* Expect a load failure with `code` and `needle` in the message, and *out
 * left alone. */
#define EXPECT_FAIL(call, code, needle)                                                            \
    do {                                                                                           \
        fl_dataset_t *ds_ = (fl_dataset_t *)0x1;                                                   \
        fl_errclear();                                                                             \
        int rc_ = (call);                                                                          \
        if (rc_ != (code) || !strstr(fl_errmsg(), (needle)))                                       \
            print_error("got rc %d, message '%s'; wanted rc %d with '%s'\n", rc_, fl_errmsg(),     \
                        (int)(code), (needle));                                                    \
        assert_int_equal(rc_, (code));                                                             \
        assert_non_null(strstr(fl_errmsg(), (needle)));                                            \
        assert_ptr_equal(ds_, (fl_dataset_t *)0x1);                                                \
    } while (0)

/* ---- IDX --------------------------------------------------------------- */

static void
s_check_good(const fl_dataset_t *ds)
{
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->dim, 6);
    assert_int_equal(ds->num_classes, 5); /* max label 4 + 1 */
    assert_true(((uintptr_t)ds->x & 63) == 0);
    for (size_t i = 0; i < 18; i++)
        NEAR(ds->x[i], (float)((i * 37) % 256) / 255.0f, 1e-7);
    NEAR(ds->x[7], 3.0f / 255.0f, 1e-7); /* pixel 7 = 3 */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(ds->y[i], s_labels3[i]);
}

static void
test_idx_plain_and_gzip(void **state)
{
    (void)state;
    fl_dataset_t *ds = NULL;

    s_write_good_pair("i.gz", "l.gz", true, true);
    assert_int_equal(fl_dataset_load_idx(s_tmp_path("i.gz"), s_tmp_path("l.gz"), &ds), 0);
    s_check_good(ds);
    fl_dataset_destroy(&ds);
    assert_null(ds);
    fl_dataset_destroy(&ds);

    s_write_good_pair("i.raw", "l.raw", false, false);
    assert_int_equal(fl_dataset_load_idx(s_tmp_path("i.raw"), s_tmp_path("l.raw"), &ds), 0);
    s_check_good(ds);
    fl_dataset_destroy(&ds);

    /* mixed, through fl_dataset_open("idx:...") */
    char src[600];
    snprintf(src, sizeof src, "idx:%s,%s", s_tmp_path("i.gz"), s_tmp_path("l.raw"));
    assert_int_equal(fl_dataset_open(src, true, &ds), 0);
    s_check_good(ds);
    fl_dataset_destroy(&ds);

    /* extreme pixel values scale to exactly 0 and 1 */
    uint8_t img[16 + 2] = {0}, lab[9] = {0};
    s_be32(img, 0x803);
    s_be32(img + 4, 1);
    s_be32(img + 8, 1);
    s_be32(img + 12, 2);
    img[16] = 0;
    img[17] = 255;
    s_be32(lab, 0x801);
    s_be32(lab + 4, 1);
    s_write("ext_i", img, sizeof img, false);
    s_write("ext_l", lab, sizeof lab, true);
    assert_int_equal(fl_dataset_load_idx(s_tmp_path("ext_i"), s_tmp_path("ext_l"), &ds), 0);
    assert_true(ds->x[0] == 0.0f && ds->x[1] == 1.0f);
    assert_int_equal(ds->num_classes, 1);
    fl_dataset_destroy(&ds);
}

static void
test_idx_truncated_images(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = s_idx_images(0x803, 3, 2, 3, 17, &len); /* one pixel short */
    s_write("ti", b, len, true);
    free(b);
    s_write_good_pair("dummy_i", "tl_ok", false, false);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("ti"), s_tmp_path("tl_ok"), &ds_), FL_EFORMAT,
                "truncated: header declares 18 bytes of pixels, file holds 17");
    assert_non_null(strstr(fl_errmsg(), s_tmp_path("ti")));
}

static void
test_idx_truncated_labels(void **state)
{
    (void)state;
    size_t len;
    s_write_good_pair("tli", "unused", true, false);
    uint8_t *b = s_idx_labels(0x801, 3, s_labels3, 2, &len);
    s_write("tl", b, len, false);
    free(b);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("tli"), s_tmp_path("tl"), &ds_), FL_EFORMAT,
                "truncated: header declares 3 bytes of labels, file holds 2");
    assert_non_null(strstr(fl_errmsg(), s_tmp_path("tl")));
}

static void
test_idx_truncated_header_and_gzip(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = s_idx_images(0x803, 3, 2, 3, 18, &len);
    s_write("th", b, 10, false); /* magic + half the dims */
    s_write_good_pair("unused_i", "thl", false, false);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("th"), s_tmp_path("thl"), &ds_), FL_EFORMAT,
                "truncated IDX header");

    /* A gzip stream cut in the middle of its compressed data. */
    s_write("full.gz", b, len, true);
    uint8_t *gz = NULL;
    size_t gzlen = 0;
    assert_int_equal(fl_read_file(s_tmp_path("full.gz"), 1 << 20, &gz, &gzlen), 0);
    s_write("cut.gz", gz, gzlen - 12, false); /* drop part of data and the trailer */
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("cut.gz"), s_tmp_path("thl"), &ds_), FL_EFORMAT,
                "cut.gz: truncated");

    /* Only the 8-byte gzip trailer (CRC, length) missing: all data present. */
    s_write("notrailer.gz", gz, gzlen - 8, false);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("notrailer.gz"), s_tmp_path("thl"), &ds_),
                FL_EFORMAT, "truncated or corrupt gzip");

    /* A flipped CRC byte. */
    gz[gzlen - 6] ^= 0xff;
    s_write("badcrc.gz", gz, gzlen, false);
    char want[512];
    snprintf(want, sizeof want, "%s: read error: incorrect data check", s_tmp_path("badcrc.gz"));
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("badcrc.gz"), s_tmp_path("thl"), &ds_), FL_EFORMAT,
                want);
    free(gz);
    free(b);
}

static void
test_idx_wrong_magic(void **state)
{
    (void)state;
    size_t len;
    s_write_good_pair("mi", "ml", false, false);
    uint8_t *b = s_idx_images(0x802, 3, 2, 3, 18, &len); /* 2 dims declared */
    s_write("bad_magic_i", b, len, false);
    free(b);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("bad_magic_i"), s_tmp_path("ml"), &ds_), FL_EFORMAT,
                "bad magic 0x00000802 (expected 0x00000803");

    b = s_idx_images(0xD03, 3, 2, 3, 18, &len); /* float data type */
    s_write("float_i", b, len, true);
    free(b);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("float_i"), s_tmp_path("ml"), &ds_), FL_EFORMAT,
                "bad magic 0x00000d03");

    /* images and labels swapped */
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("ml"), s_tmp_path("mi"), &ds_), FL_EFORMAT,
                "bad magic 0x00000801");
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("mi"), s_tmp_path("mi"), &ds_), FL_EFORMAT,
                "bad magic 0x00000803 (expected 0x00000801");
}

static void
test_idx_absurd_dimensions(void **state)
{
    (void)state;
    size_t len;
    s_write_good_pair("unused2", "al", false, false);

    /* 2^31 images declared in a 34-byte file: refused on the header alone. */
    uint8_t *b = s_idx_images(0x803, 0x80000000u, 28, 28, 18, &len);
    s_write("huge_n", b, len, false);
    free(b);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("huge_n"), s_tmp_path("al"), &ds_), FL_ERANGE,
                "2147483648 images declared, more than the limit");

    b = s_idx_images(0x803, 3, 2000, 2000, 18, &len);
    s_write("huge_img", b, len, true);
    free(b);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("huge_img"), s_tmp_path("al"), &ds_), FL_ERANGE,
                "image size 2000 x 2000 exceeds the limit");

    b = s_idx_images(0x803, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0, &len);
    s_write("huge_all", b, len, false);
    free(b);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("huge_all"), s_tmp_path("al"), &ds_), FL_ERANGE,
                "limit");

    b = s_idx_images(0x803, 10000, 1000, 1000, 0, &len); /* 10^10 values */
    s_write("huge_total", b, len, false);
    free(b);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("huge_total"), s_tmp_path("al"), &ds_), FL_ERANGE,
                "exceed the limit of 4294967296 values");

    /* Within the caps (1M x 28 x 28) but a tiny file: the buffer grows only
     * with data that exists, so this is a cheap "truncated", not a 784 MB
     * allocation. */
    b = s_idx_images(0x803, 1000000, 28, 28, 18, &len);
    s_write("big_tiny", b, len, true);
    free(b);
    uint8_t lab[8];
    s_be32(lab, 0x801);
    s_be32(lab + 4, 1000000);
    s_write("big_tiny_l", lab, sizeof lab, false);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("big_tiny"), s_tmp_path("big_tiny_l"), &ds_),
                FL_EFORMAT, "truncated: header declares 1000000 bytes of labels, file holds 0");

    b = s_idx_images(0x803, 0, 28, 28, 0, &len);
    s_write("zero_n", b, len, false);
    free(b);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("zero_n"), s_tmp_path("al"), &ds_), FL_EFORMAT,
                "empty image set (0 x 28 x 28)");
}

static void
test_idx_count_mismatch_and_trailing(void **state)
{
    (void)state;
    size_t len;
    s_write_good_pair("ci", "cl", false, false);
    uint8_t *b = s_idx_labels(0x801, 2, s_labels3, 2, &len);
    s_write("cl2", b, len, false);
    free(b);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("ci"), s_tmp_path("cl2"), &ds_), FL_EFORMAT,
                "holds 3 images but");
    assert_non_null(strstr(fl_errmsg(), "holds 2 labels"));

    /* trailing garbage after the declared data is not ignored silently */
    uint8_t four[4] = {0, 4, 2, 9};
    b = s_idx_labels(0x801, 3, four, 4, &len);
    s_write("cl_trailing", b, len, true);
    free(b);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("ci"), s_tmp_path("cl_trailing"), &ds_), FL_EFORMAT,
                "unexpected bytes after the 3 declared bytes of labels");
}

static void
test_idx_missing_file(void **state)
{
    (void)state;
    s_write_good_pair("xi", "xl", false, false);
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("nope-images"), s_tmp_path("xl"), &ds_),
                FL_ENOTFOUND, "nope-images");
    EXPECT_FAIL(fl_dataset_load_idx(s_tmp_path("xi"), s_tmp_path("nope-labels"), &ds_),
                FL_ENOTFOUND, "nope-labels");
    EXPECT_FAIL(fl_dataset_load_idx(s_dir, s_tmp_path("xl"), &ds_), FL_EIO, "not a regular file");
}

/* ---- CSV --------------------------------------------------------------- */

static fl_csv_opts_t
s_opts(int label_column, int header, char delim)
{
    fl_csv_opts_t o;
    fl_csv_opts_default(&o);
    assert_int_equal(o.label_column, 0);
    assert_int_equal(o.header, -1);
    assert_int_equal(o.delimiter, ',');
    o.label_column = label_column;
    o.header = header;
    o.delimiter = delim;
    return o;
}

static void
test_csv_header_variants(void **state)
{
    (void)state;
    fl_dataset_t *ds = NULL;
    const char *p = s_write_str("h.csv", "label,a,b\n1,0.5,2\n0,-1,3e2\n");
    fl_csv_opts_t with = s_opts(0, 1, ','), without = s_opts(0, 0, ',');

    /* explicit header, auto-detected header, default options */
    for (int k = 0; k < 3; k++) {
        fl_csv_opts_t auto_ = s_opts(0, -1, ',');
        const fl_csv_opts_t *o = k == 0 ? &with : k == 1 ? &auto_ : NULL;
        assert_int_equal(fl_dataset_load_csv(p, o, &ds), 0);
        assert_int_equal(ds->n, 2);
        assert_int_equal(ds->dim, 2);
        assert_int_equal(ds->num_classes, 2);
        assert_int_equal(ds->y[0], 1);
        assert_int_equal(ds->y[1], 0);
        assert_true(ds->x[0] == 0.5f && ds->x[1] == 2.0f && ds->x[2] == -1.0f &&
                    ds->x[3] == 300.0f);
        assert_true(((uintptr_t)ds->x & 63) == 0);
        fl_dataset_destroy(&ds);
    }

    /* no header: auto-detect sees numbers; explicit 0 too */
    p = s_write_str("nh.csv", "2, 1.25 ,\t2\n0,3,4\n");
    assert_int_equal(fl_dataset_load_csv(p, NULL, &ds), 0);
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->num_classes, 3);
    assert_true(ds->x[0] == 1.25f && ds->x[1] == 2.0f);
    fl_dataset_destroy(&ds);
    assert_int_equal(fl_dataset_load_csv(p, &without, &ds), 0);
    assert_int_equal(ds->n, 2);
    fl_dataset_destroy(&ds);

    /* header present but declared absent: its first field is a bad label */
    EXPECT_FAIL(fl_dataset_load_csv(s_tmp_path("h.csv"), &without, &ds_), FL_EFORMAT,
                "h.csv:1: column 1: 'label' is not a valid label");

    /* header declared on a file without one: the first data row is lost */
    assert_int_equal(fl_dataset_load_csv(p, &with, &ds), 0);
    assert_int_equal(ds->n, 1);
    fl_dataset_destroy(&ds);
}

static void
test_csv_label_column(void **state)
{
    (void)state;
    fl_dataset_t *ds = NULL;
    fl_csv_opts_t last = s_opts(-1, -1, ','), mid = s_opts(1, -1, ',');

    const char *p = s_write_str("last.csv", "f1,f2,class\n1.5,2.5,3\n-0.5,1e-3,7\n\n\n");
    assert_int_equal(fl_dataset_load_csv(p, &last, &ds), 0);
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->dim, 2);
    assert_int_equal(ds->num_classes, 8);
    assert_int_equal(ds->y[0], 3);
    assert_int_equal(ds->y[1], 7);
    assert_true(ds->x[0] == 1.5f && ds->x[1] == 2.5f && ds->x[2] == -0.5f &&
                ds->x[3] == 1e-3f);
    fl_dataset_destroy(&ds);

    /* the same file with the label taken from the middle column */
    EXPECT_FAIL(fl_dataset_load_csv(p, &mid, &ds_), FL_EFORMAT,
                "last.csv:2: column 2: '2.5' is not a valid label");

    p = s_write_str("mid.csv", "0.5,2,0.25\n0.75,1,1.25\n");
    assert_int_equal(fl_dataset_load_csv(p, &mid, &ds), 0);
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->num_classes, 3);
    assert_int_equal(ds->y[0], 2);
    assert_int_equal(ds->y[1], 1);
    assert_true(ds->x[0] == 0.5f && ds->x[1] == 0.25f && ds->x[2] == 0.75f &&
                ds->x[3] == 1.25f);
    fl_dataset_destroy(&ds);
}

static void
test_csv_delimiter_bom_crlf_quotes(void **state)
{
    (void)state;
    fl_dataset_t *ds = NULL;
    fl_csv_opts_t semi = s_opts(-1, -1, ';');

    const char *p = s_write_str("semi.csv", "\xEF\xBB\xBF\"a\";\"b\";\"y\"\r\n"
                                            "1,5;\"2\";1\r\n"
                                            "3;4;0\r\n"
                                            "\r\n");
    /* ',' is not the delimiter here, so "1,5" is not a number */
    EXPECT_FAIL(fl_dataset_load_csv(p, &semi, &ds_), FL_EFORMAT,
                "semi.csv:2: column 1: '1,5' is not a number");
    p = s_write_str("semi2.csv", "\xEF\xBB\xBF\"a\";\"b\";\"y\"\r\n"
                                 "1.5;\"2\";1\r\n"
                                 "3;4;0\r\n"
                                 "\r\n");
    assert_int_equal(fl_dataset_load_csv(p, &semi, &ds), 0);
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->dim, 2);
    assert_true(ds->x[0] == 1.5f && ds->x[1] == 2.0f && ds->x[2] == 3.0f && ds->x[3] == 4.0f);
    assert_int_equal(ds->y[0], 1);
    assert_int_equal(ds->y[1], 0);
    fl_dataset_destroy(&ds);

    /* with the default ',' delimiter, the same file has one column */
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT, "need a label column");
}

static void
test_csv_bad_fields(void **state)
{
    (void)state;
    const char *p = s_write_str("iris.csv", "y,a,b,c\n0,1,2,3\n1,4,5,abc\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "iris.csv:3: column 4: 'abc' is not a number");

    p = s_write_str("partial.csv", "0,1,2\n1,4,5x\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "partial.csv:2: column 3: '5x' is not a number");

    p = s_write_str("emptyfield.csv", "0,1,2\n1,,5\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "emptyfield.csv:2: column 2: '' is not a number");

    p = s_write_str("nan.csv", "0,1,2\n1,nan,5\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "nan.csv:2: column 2: 'nan' is not a finite number");
    p = s_write_str("inf.csv", "0,1,2\n1,2,-inf\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "inf.csv:2: column 3: '-inf' is not a finite number");
    p = s_write_str("ovf.csv", "0,1,2\n1,2,1e39\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "ovf.csv:2: column 3: '1e39' is not a finite number");
}

static void
test_csv_bad_labels(void **state)
{
    (void)state;
    const char *p = s_write_str("neg.csv", "0,1,2\n-1,1,2\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "neg.csv:2: column 1: '-1' is not a valid label");
    p = s_write_str("frac.csv", "0,1,2\n1.5,1,2\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "frac.csv:2: column 1: '1.5' is not a valid label");
    p = s_write_str("big.csv", "0,1,2\n65536,1,2\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "big.csv:2: column 1: '65536' is not a valid label");
    fl_csv_opts_t last = s_opts(-1, 0, ',');
    p = s_write_str("lastneg.csv", "1,2,0\n1,2,-3\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, &last, &ds_), FL_EFORMAT,
                "lastneg.csv:2: column 3: '-3' is not a valid label");

    /* the largest id is fine */
    fl_dataset_t *ds = NULL;
    p = s_write_str("maxlab.csv", "65535,1\n");
    assert_int_equal(fl_dataset_load_csv(p, NULL, &ds), 0);
    assert_int_equal(ds->num_classes, 65536);
    fl_dataset_destroy(&ds);
}

static void
test_csv_shape_errors(void **state)
{
    (void)state;
    const char *p = s_write_str("ragged.csv", "0,1,2\n1,4\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "ragged.csv:2: 2 columns, expected 3");
    p = s_write_str("ragged2.csv", "a,b,c\n0,1,2\n1,4,5,6,7\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT,
                "ragged2.csv:3: 5 columns, expected 3");

    p = s_write_str("empty.csv", "");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT, "empty.csv: empty file");
    p = s_write_str("blank.csv", "\n  \r\n\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT, "blank.csv: empty file");
    p = s_write_str("hdr.csv", "label,a,b\n\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT, "hdr.csv: no data rows");

    p = s_write_str("gap.csv", "0,1,2\n\n1,4,5\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT, "gap.csv:2: empty line");

    p = s_write_str("onecol.csv", "0\n1\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_EFORMAT, "need a label column");

    fl_csv_opts_t far = s_opts(5, -1, ',');
    p = s_write_str("far.csv", "0,1,2\n");
    EXPECT_FAIL(fl_dataset_load_csv(p, &far, &ds_), FL_EINVAL,
                "label column 5 does not exist (the file has 3 columns)");
    fl_csv_opts_t bad = s_opts(-2, -1, ',');
    EXPECT_FAIL(fl_dataset_load_csv(p, &bad, &ds_), FL_EINVAL, "label column -2");
    bad = s_opts(0, 2, ',');
    EXPECT_FAIL(fl_dataset_load_csv(p, &bad, &ds_), FL_EINVAL, "header option");
    bad = s_opts(0, -1, '.');
    EXPECT_FAIL(fl_dataset_load_csv(p, &bad, &ds_), FL_EINVAL, "delimiter");

    EXPECT_FAIL(fl_dataset_load_csv(s_tmp_path("missing.csv"), NULL, &ds_), FL_ENOTFOUND,
                "missing.csv");

    /* 2^20 + 1 columns: over the cap (a 2 MB file) */
    size_t ncols = FL_CSV_MAX_COLUMNS + 1, len = 2 * ncols;
    char *wide = malloc(len);
    assert_non_null(wide);
    for (size_t i = 0; i < ncols; i++) {
        wide[2 * i] = '0';
        wide[2 * i + 1] = i + 1 < ncols ? ',' : '\n';
    }
    p = s_write("wide.csv", wide, len, false);
    free(wide);
    EXPECT_FAIL(fl_dataset_load_csv(p, NULL, &ds_), FL_ERANGE,
                "wide.csv: more than 1048576 columns");
}

/* ---- fl_dataset_open ---------------------------------------------------- */

static void
test_open_sources(void **state)
{
    (void)state;
    fl_dataset_t *ds = NULL;
    const char *p = s_write_str("open.csv", "1,0.5\n0,0.25\n");
    char src[600];

    assert_int_equal(fl_dataset_open(p, true, &ds), 0);
    assert_int_equal(ds->n, 2);
    fl_dataset_destroy(&ds);
    snprintf(src, sizeof src, "csv:%s", p);
    assert_int_equal(fl_dataset_open(src, false, &ds), 0);
    assert_int_equal(ds->n, 2);
    fl_dataset_destroy(&ds);
    /* csv: prefix works whatever the file is called */
    const char *q = s_write_str("open.data", "1,0.5\n");
    snprintf(src, sizeof src, "csv:%s", q);
    assert_int_equal(fl_dataset_open(src, false, &ds), 0);
    assert_int_equal(ds->n, 1);
    fl_dataset_destroy(&ds);

    EXPECT_FAIL(fl_dataset_open("mnist", true, &ds_), FL_EINVAL, "unknown data source 'mnist'");
    EXPECT_FAIL(fl_dataset_open("idx:only-one", true, &ds_), FL_EINVAL,
                "expected idx:IMAGES,LABELS");
    EXPECT_FAIL(fl_dataset_open("idx:a,", true, &ds_), FL_EINVAL, "expected idx:IMAGES,LABELS");
    EXPECT_FAIL(fl_dataset_open("csv:", true, &ds_), FL_EINVAL, "expected csv:PATH");

    /* fashion-mnist from a directory without the files */
    const char *old = getenv("COVEY_FASHION_MNIST_DIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("COVEY_FASHION_MNIST_DIR", s_dir, 1);
    EXPECT_FAIL(fl_dataset_open("fashion-mnist", true, &ds_), FL_ENOTFOUND,
                "install the package dataset-fashion-mnist");
    assert_non_null(strstr(fl_errmsg(), "train-images-idx3-ubyte.gz"));
    EXPECT_FAIL(fl_dataset_open("fashion-mnist", false, &ds_), FL_ENOTFOUND,
                "t10k-images-idx3-ubyte.gz");

    /* ... and from a directory holding (tiny) files of that name */
    s_write_good_pair("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", true, true);
    assert_int_equal(fl_dataset_open("fashion-mnist", false, &ds), 0);
    s_check_good(ds);
    fl_dataset_destroy(&ds);
    if (saved) {
        setenv("COVEY_FASHION_MNIST_DIR", saved, 1);
        free(saved);
    } else {
        unsetenv("COVEY_FASHION_MNIST_DIR");
    }
}

static void
test_fashion_mnist_real(void **state)
{
    (void)state;
    struct stat st;
    const char *dir = getenv("COVEY_FASHION_MNIST_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz",
             dir && *dir ? dir : "/usr/share/datasets/fashion-mnist");
    if (stat(path, &st) != 0) {
        print_message("Fashion-MNIST not installed (%s); skipping\n", path);
        skip();
    }
    fl_dataset_t *tr = NULL, *te = NULL;
    double t0 = fl_now();
    assert_int_equal(fl_dataset_open("fashion-mnist", true, &tr), 0);
    double t1 = fl_now();
    assert_int_equal(fl_dataset_open("fashion-mnist", false, &te), 0);
    print_message("Fashion-MNIST train loaded in %.3f s\n", t1 - t0);

    assert_int_equal(tr->n, 60000);
    assert_int_equal(tr->dim, 784);
    assert_int_equal(tr->num_classes, 10);
    assert_int_equal(te->n, 10000);
    assert_int_equal(te->dim, 784);
    assert_int_equal(te->num_classes, 10);
    size_t count[10] = {0}, tcount[10] = {0};
    for (size_t i = 0; i < tr->n; i++)
        count[tr->y[i]]++;
    for (size_t i = 0; i < te->n; i++)
        tcount[te->y[i]]++;
    for (int c = 0; c < 10; c++) {
        assert_int_equal(count[c], 6000);
        assert_int_equal(tcount[c], 1000);
    }
    float lo = 1, hi = 0;
    double sum = 0;
    for (size_t i = 0; i < tr->n * tr->dim; i++) {
        lo = fminf(lo, tr->x[i]);
        hi = fmaxf(hi, tr->x[i]);
        sum += tr->x[i];
    }
    assert_true(lo == 0.0f && hi == 1.0f);
    /* The published mean pixel of Fashion-MNIST train is 0.2860. */
    NEAR(sum / (double)(tr->n * tr->dim), 0.2860, 0.0005);
    fl_dataset_destroy(&tr);
    fl_dataset_destroy(&te);
}

/* ---- subset and standardisation ---------------------------------------- */

static void
test_subset_and_standardize(void **state)
{
    (void)state;
    fl_dataset_t *ds = fl_dataset_new(4, 3, 6);
    const float x[12] = {1, 7, 0, 2, 7, 0, 3, 7, 10, 4, 7, 10};
    memcpy(ds->x, x, sizeof x);
    for (int i = 0; i < 4; i++)
        ds->y[i] = i + 1;

    uint32_t idx[2] = {3, 1};
    fl_dataset_t *sub = fl_dataset_subset(ds, idx, 2);
    assert_int_equal(sub->n, 2);
    assert_int_equal(sub->dim, 3);
    assert_int_equal(sub->num_classes, 6);
    assert_true(((uintptr_t)sub->x & 63) == 0);
    assert_memory_equal(sub->x, x + 9, 3 * sizeof(float));
    assert_memory_equal(sub->x + 3, x + 3, 3 * sizeof(float));
    assert_int_equal(sub->y[0], 4);
    assert_int_equal(sub->y[1], 2);
    fl_dataset_destroy(&sub);
    sub = fl_dataset_subset(ds, idx, 0);
    assert_int_equal(sub->n, 0);
    fl_dataset_destroy(&sub);

    /* column 0: 1..4, mean 2.5, population std sqrt(1.25); column 1
     * constant (std reported 1); column 2: 0,0,10,10, mean 5, std 5 */
    float mean[3], sd[3];
    fl_dataset_feature_stats(ds, mean, sd);
    NEAR(mean[0], 2.5, 1e-6);
    NEAR(sd[0], 1.118033989, 1e-6);
    NEAR(mean[1], 7.0, 1e-6);
    assert_true(sd[1] == 1.0f);
    NEAR(mean[2], 5.0, 1e-6);
    NEAR(sd[2], 5.0, 1e-6);

    fl_dataset_standardize(ds, mean, sd);
    NEAR(ds->x[0], -1.5 / 1.118033989, 1e-5);
    NEAR(ds->x[9], 1.5 / 1.118033989, 1e-5);
    for (int i = 0; i < 4; i++)
        assert_true(ds->x[i * 3 + 1] == 0.0f);
    NEAR(ds->x[2], -1.0, 1e-6);
    NEAR(ds->x[11], 1.0, 1e-6);
    fl_dataset_feature_stats(ds, mean, sd);
    NEAR(mean[0], 0.0, 1e-6);
    NEAR(sd[0], 1.0, 1e-6);
    NEAR(mean[2], 0.0, 1e-6);
    NEAR(sd[2], 1.0, 1e-6);
    fl_dataset_destroy(&ds);

    /* empty data set: mean 0, std 1 */
    ds = fl_dataset_new(0, 2, 1);
    fl_dataset_feature_stats(ds, mean, sd);
    assert_true(mean[0] == 0.0f && sd[0] == 1.0f && sd[1] == 1.0f);
    fl_dataset_destroy(&ds);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_plain_and_gzip),
        cmocka_unit_test(test_idx_truncated_images),
        cmocka_unit_test(test_idx_truncated_labels),
        cmocka_unit_test(test_idx_truncated_header_and_gzip),
        cmocka_unit_test(test_idx_wrong_magic),
        cmocka_unit_test(test_idx_absurd_dimensions),
        cmocka_unit_test(test_idx_count_mismatch_and_trailing),
        cmocka_unit_test(test_idx_missing_file),
        cmocka_unit_test(test_csv_header_variants),
        cmocka_unit_test(test_csv_label_column),
        cmocka_unit_test(test_csv_delimiter_bom_crlf_quotes),
        cmocka_unit_test(test_csv_bad_fields),
        cmocka_unit_test(test_csv_bad_labels),
        cmocka_unit_test(test_csv_shape_errors),
        cmocka_unit_test(test_open_sources),
        cmocka_unit_test(test_fashion_mnist_real),
        cmocka_unit_test(test_subset_and_standardize),
    };
    return cmocka_run_group_tests(tests, s_setup, s_tmpdir_teardown);
}
