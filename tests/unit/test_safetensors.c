/*
 * test_safetensors.c — unit tests of fl_safetensors: round trips, the committed
 * fixtures written by tests/fixtures/make_safetensors.py (an independent
 * struct+json writer), an optional exchange with real torch tensors, and every
 * malformed-input case of the decoder, each checked for its code, its message
 * and for leaving the destination untouched.
 *
 * Fixtures are read from $COVEY_FIXTURES or tests/fixtures (make unit runs from
 * the repository root).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fl_params.h"
#include "fl_rng.h"
#include "fl_safetensors.h"
#include "fl_util.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static const char *
s_fixture_dir(void)
{
    const char *d = getenv("COVEY_FIXTURES");
    return d && *d ? d : "tests/fixtures";
}

static void
s_put_le64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

/* 8-byte length + `header` (unpadded) + dlen bytes of `data` (zeros when NULL). */
static uint8_t *
s_image(const char *header, const void *data, size_t dlen, size_t *len_p)
{
    size_t n = strlen(header);
    uint8_t *b = fl_xcalloc(1, 8 + n + dlen);
    s_put_le64(b, n);
    memcpy(b + 8, header, n);
    if (data && dlen)
        memcpy(b + 8 + n, data, dlen);
    *len_p = 8 + n + dlen;
    return b;
}

/* The fixtures' layout: fc0.weight [3,4], fc0.bias [3]. */
static fl_params_t *
s_tiny_layout(void)
{
    fl_params_t *p = fl_params_new();
    assert_int_equal(fl_params_add(p, "fc0.weight", 2, (size_t[]){3, 4}), 0);
    assert_int_equal(fl_params_add(p, "fc0.bias", 1, (size_t[]){3}), 0);
    return p;
}

/* The fixtures' values: weight[i] = i * 0.5, bias = -1, 0, 1. */
static fl_params_t *
s_tiny_values(void)
{
    fl_params_t *p = s_tiny_layout();
    float *w = fl_params_find(p, "fc0.weight")->data;
    for (int i = 0; i < 12; i++)
        w[i] = (float)i * 0.5f;
    float *b = fl_params_find(p, "fc0.bias")->data;
    b[0] = -1.0f, b[1] = 0.0f, b[2] = 1.0f;
    return p;
}

static void
s_check_tiny_values(const fl_params_t *p)
{
    const fl_tensor_t *w = fl_params_find(p, "fc0.weight"), *b = fl_params_find(p, "fc0.bias");
    assert_non_null(w);
    assert_non_null(b);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 3);
    assert_int_equal(w->shape[1], 4);
    assert_int_equal(b->ndim, 1);
    assert_int_equal(b->shape[0], 3);
    for (int i = 0; i < 12; i++)
        assert_true(w->data[i] == (float)i * 0.5f);
    assert_true(b->data[0] == -1.0f && b->data[1] == 0.0f && b->data[2] == 1.0f);
}

static fl_params_t *
s_random_params(uint64_t seed)
{
    fl_rng_t rng;
    fl_rng_seed(&rng, seed, 0);
    fl_params_t *p = fl_params_new();
    assert_int_equal(fl_params_add(p, "conv.weight", 4, (size_t[]){8, 3, 5, 5}), 0);
    assert_int_equal(fl_params_add(p, "conv.bias", 1, (size_t[]){8}), 0);
    assert_int_equal(fl_params_add(p, "fc.weight", 2, (size_t[]){10, 200}), 0);
    assert_int_equal(fl_params_add(p, "fc.bias", 1, (size_t[]){10}), 0);
    float *d = fl_params_data(p);
    for (size_t i = 0; i < fl_params_numel(p); i++)
        d[i] = (float)fl_rng_normal(&rng);
    d[3] = -0.0f; /* sign of zero must survive too */
    return p;
}

static void
s_assert_same_params(const fl_params_t *a, const fl_params_t *b)
{
    assert_true(fl_params_same_layout(a, b));
    assert_memory_equal(fl_params_data(a), fl_params_data(b), fl_params_numel(a) * sizeof(float));
}

/*
 * Decoding buf must fail with `code` and a message containing `substr`; `into`
 * (the tiny layout filled with sentinels) must be unchanged. When `file_level`,
 * decode_new must fail the same way (the file itself is bad); otherwise the file
 * is fine and only mismatches the layout, so decode_new must succeed.
 */
static void
s_expect_bad(const uint8_t *buf, size_t len, int code, const char *substr, bool file_level,
             int line)
{
    fl_params_t *into = s_tiny_layout(), *out = NULL;
    float *d = fl_params_data(into);
    for (size_t i = 0; i < fl_params_numel(into); i++)
        d[i] = 42.0f + (float)i;
    fl_params_t *before = fl_params_dup(into);

    fl_errclear();
    int rc = fl_safetensors_decode(buf, len, into);
    if (rc != code || !strstr(fl_errmsg(), substr)) {
        print_error("line %d: decode gave %d '%s', expected %d with '%s'\n", line, rc,
                    fl_errmsg(), code, substr);
        _fail(__FILE__, line);
    }
    if (!fl_params_same_layout(into, before) ||
        memcmp(fl_params_data(into), fl_params_data(before),
               fl_params_numel(into) * sizeof(float)) != 0) {
        print_error("line %d: failed decode changed its destination\n", line);
        _fail(__FILE__, line);
    }

    fl_errclear();
    rc = fl_safetensors_decode_new(buf, len, &out);
    if (file_level && (rc != code || !strstr(fl_errmsg(), substr) || out != NULL)) {
        print_error("line %d: decode_new gave %d '%s', expected %d with '%s'\n", line, rc,
                    fl_errmsg(), code, substr);
        _fail(__FILE__, line);
    }
    if (!file_level && (rc != 0 || out == NULL)) {
        print_error("line %d: decode_new of a well-formed file failed: %d '%s'\n", line, rc,
                    fl_errmsg());
        _fail(__FILE__, line);
    }
    fl_params_destroy(&out);
    fl_params_destroy(&before);
    fl_params_destroy(&into);
}

/* A header (and dlen data bytes) that is malformed in itself. */
#define BAD_FILE(hdr, dlen, code, substr)                                                          \
    do {                                                                                           \
        size_t len_;                                                                               \
        uint8_t *b_ = s_image((hdr), NULL, (dlen), &len_);                                         \
        s_expect_bad(b_, len_, (code), (substr), true, __LINE__);                                  \
        free(b_);                                                                                  \
    } while (0)

/* A well-formed file that does not match the tiny layout. */
#define BAD_LAYOUT(hdr, dlen, substr)                                                              \
    do {                                                                                           \
        size_t len_;                                                                               \
        uint8_t *b_ = s_image((hdr), NULL, (dlen), &len_);                                         \
        s_expect_bad(b_, len_, FL_EFORMAT, (substr), false, __LINE__);                             \
        free(b_);                                                                                  \
    } while (0)

/* One header entry: ENTRY("a", "[2]", "[0,8]") is "a":{"dtype":"F32","shape":[2],...}. */
#define ENTRY(name, shape, offs)                                                                   \
    "\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}"
#define HDR_W ENTRY("fc0.weight", "[3,4]", "[0,48]")
#define HDR_B ENTRY("fc0.bias", "[3]", "[48,60]")

/* ---- round trips ------------------------------------------------------------------------ */

static void
test_roundtrip_encode_decode(void **state)
{
    (void)state;
    fl_params_t *p = s_random_params(1), *q = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;

    assert_int_equal(fl_safetensors_encode(p, NULL, &buf, &len), 0);
    /* Layout: u64 N (a multiple of 8, padded with spaces), JSON, then the floats. */
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[i];
    assert_int_equal(n % 8, 0);
    assert_int_equal(len, 8 + n + fl_params_numel(p) * 4);
    assert_int_equal(buf[8], '{');
    size_t end = 8 + (size_t)n;
    while (buf[end - 1] == ' ')
        end--;
    assert_int_equal(buf[end - 1], '}');
    assert_true(8 + n - end < 8);
    assert_memory_equal(buf + 8 + n, fl_params_data(p), fl_params_numel(p) * 4);
    assert_null(strstr((const char *)buf + 8, "__metadata__"));

    assert_int_equal(fl_safetensors_decode_new(buf, len, &q), 0);
    s_assert_same_params(p, q);

    /* Into an existing layout, over stale values. */
    fl_params_t *r = fl_params_clone_layout(p);
    for (size_t i = 0; i < fl_params_numel(r); i++)
        fl_params_data(r)[i] = 9.0f;
    assert_int_equal(fl_safetensors_decode(buf, len, r), 0);
    s_assert_same_params(p, r);

    /* Encoding what was decoded gives the same bytes. */
    uint8_t *buf2 = NULL;
    size_t len2 = 0;
    assert_int_equal(fl_safetensors_encode(q, NULL, &buf2, &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);

    free(buf2);
    free(buf);
    fl_params_destroy(&r);
    fl_params_destroy(&q);
    fl_params_destroy(&p);
}

static void
test_decode_other_order(void **state)
{
    (void)state;
    fl_params_t *p = s_random_params(2);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(fl_safetensors_encode(p, NULL, &buf, &len), 0);

    /* The same tensors, listed in the reverse order. */
    fl_params_t *rev = fl_params_new();
    for (size_t i = fl_params_count(p); i-- > 0;) {
        const fl_tensor_t *t = fl_params_at(p, i);
        assert_int_equal(fl_params_add(rev, t->name, t->ndim, t->shape), 0);
    }
    assert_int_equal(fl_safetensors_decode(buf, len, rev), 0);
    for (size_t i = 0; i < fl_params_count(p); i++) {
        const fl_tensor_t *a = fl_params_at(p, i), *b = fl_params_find(rev, a->name);
        assert_non_null(b);
        assert_ptr_equal(b, fl_params_at(rev, fl_params_count(p) - 1 - i));
        assert_memory_equal(a->data, b->data, a->numel * sizeof(float));
    }
    free(buf);
    fl_params_destroy(&rev);
    fl_params_destroy(&p);
}

static void
test_metadata(void **state)
{
    (void)state;
    fl_params_t *p = s_tiny_values();
    const char *meta[] = {"format", "pt", "round", "17", "note", "\"quoted\" \\ é", NULL};
    uint8_t *buf = NULL;
    size_t len = 0;
    char **got = NULL;

    assert_int_equal(fl_safetensors_encode(p, meta, &buf, &len), 0);
    assert_int_equal(fl_safetensors_meta(buf, len, &got), 0);
    for (int i = 0; i < 6; i++)
        assert_string_equal(got[i], meta[i]);
    assert_null(got[6]);
    fl_safetensors_meta_free(&got);
    assert_null(got);
    fl_safetensors_meta_free(&got); /* idempotent */
    free(buf);

    /* No metadata: an empty list, and no "__metadata__" written for an empty array. */
    const char *none[] = {NULL};
    assert_int_equal(fl_safetensors_encode(p, none, &buf, &len), 0);
    assert_null(strstr((const char *)buf + 8, "__metadata__"));
    assert_int_equal(fl_safetensors_meta(buf, len, &got), 0);
    assert_null(got[0]);
    fl_safetensors_meta_free(&got);
    free(buf);

    /* "__metadata__": null is what the reference reader takes as "none". */
    size_t ilen;
    uint8_t *img = s_image("{\"__metadata__\":null," HDR_W "," HDR_B "}", NULL, 60, &ilen);
    assert_int_equal(fl_safetensors_meta(img, ilen, &got), 0);
    assert_null(got[0]);
    fl_safetensors_meta_free(&got);
    free(img);

    /* A bad image gives no metadata. */
    img = s_image("{\"__metadata__\":{\"a\":1}}", NULL, 0, &ilen);
    assert_int_equal(fl_safetensors_meta(img, ilen, &got), FL_EFORMAT);
    assert_null(got);
    free(img);
    fl_params_destroy(&p);
}

static void
test_encode_rejects(void **state)
{
    (void)state;
    fl_params_t *p = s_tiny_values();
    static uint8_t sentinel[] = "untouched";
    uint8_t *buf = sentinel;
    size_t len = 12345;

    const char *odd[] = {"format", NULL};
    assert_int_equal(fl_safetensors_encode(p, odd, &buf, &len), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "metadata key 'format' has no value"));
    const char *dup[] = {"a", "1", "a", "2", NULL};
    assert_int_equal(fl_safetensors_encode(p, dup, &buf, &len), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "duplicate metadata key 'a'"));
    const char *badval[] = {"a", "\xff\xfe", NULL};
    assert_int_equal(fl_safetensors_encode(p, badval, &buf, &len), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "not valid UTF-8"));
    const char *badkey[] = {"\xc3", "x", NULL};
    assert_int_equal(fl_safetensors_encode(p, badkey, &buf, &len), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "not valid UTF-8"));
    assert_string_equal((const char *)buf, "untouched");
    assert_int_equal(len, 12345);

    fl_params_t *r = fl_params_new();
    assert_int_equal(fl_params_add(r, "__metadata__", 1, (size_t[]){2}), 0);
    assert_int_equal(fl_safetensors_encode(r, NULL, &buf, &len), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "'__metadata__' is reserved"));
    fl_params_destroy(&r);

    r = fl_params_new();
    assert_int_equal(fl_params_add(r, "bad\xff", 1, (size_t[]){2}), 0);
    assert_int_equal(fl_safetensors_encode(r, NULL, &buf, &len), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "not valid UTF-8"));
    assert_string_equal((const char *)buf, "untouched");
    fl_params_destroy(&r);
    fl_params_destroy(&p);
}

static void
test_empty_set(void **state)
{
    (void)state;
    fl_params_t *e = fl_params_new(), *q = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;

    assert_int_equal(fl_safetensors_encode(e, NULL, &buf, &len), 0);
    assert_int_equal(len, 16);
    assert_memory_equal(buf, "\x08\0\0\0\0\0\0\0{}      ", 16);
    assert_int_equal(fl_safetensors_decode_new(buf, len, &q), 0);
    assert_int_equal(fl_params_count(q), 0);
    assert_int_equal(fl_safetensors_decode(buf, len, e), 0);
    fl_params_destroy(&q);
    free(buf);

    /* "{}" unpadded decodes too; into a non-empty layout it is a missing tensor. */
    BAD_LAYOUT("{}", 0, "tensor 'fc0.weight' (shape [3,4]) is missing");
    fl_params_destroy(&e);
}

static void
test_header_padding(void **state)
{
    (void)state;
    fl_params_t *q = NULL, *tiny = s_tiny_values();
    size_t len;
    /* More spaces than the writer would add are still padding. */
    uint8_t *b = s_image("{" HDR_W "," HDR_B "}                   ", fl_params_data(tiny), 60,
                         &len);
    assert_int_equal(fl_safetensors_decode_new(b, len, &q), 0);
    s_check_tiny_values(q);
    fl_params_destroy(&q);
    free(b);
    fl_params_destroy(&tiny);
}

static void
test_save_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/covey-st-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);

    fl_params_t *p = s_random_params(3), *q = NULL;
    const char *meta[] = {"format", "pt", NULL};
    assert_int_equal(fl_safetensors_save(path, p, meta), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    assert_int_equal(fl_safetensors_load_new(path, &q), 0);
    s_assert_same_params(p, q);
    fl_params_zero(q);
    assert_int_equal(fl_safetensors_load(path, q), 0);
    s_assert_same_params(p, q);

    /* Saving again replaces the file atomically with the new contents. */
    fl_params_t *tiny = s_tiny_values();
    assert_int_equal(fl_safetensors_save(path, tiny, NULL), 0);
    fl_params_t *before = fl_params_dup(q);
    assert_int_equal(fl_safetensors_load(path, q), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), path));
    assert_non_null(strstr(fl_errmsg(), "is missing from the file"));
    s_assert_same_params(before, q);
    fl_params_destroy(&q);
    assert_int_equal(fl_safetensors_load_new(path, &q), 0);
    s_check_tiny_values(q);
    fl_params_destroy(&q);

    /* Errors name the path. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope.safetensors", dir);
    assert_int_equal(fl_safetensors_load_new(missing, &q), FL_ENOTFOUND);
    assert_non_null(strstr(fl_errmsg(), missing));
    assert_null(q);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("short", f);
    fclose(f);
    assert_int_equal(fl_safetensors_load_new(path, &q), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), path));
    assert_non_null(strstr(fl_errmsg(), "too short"));
    assert_null(q);
    char nodir[160];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir.safetensors", dir);
    assert_int_equal(fl_safetensors_save(nodir, tiny, NULL), FL_EIO);
    assert_non_null(strstr(fl_errmsg(), nodir));
    const char *odd[] = {"k", NULL};
    assert_int_equal(fl_safetensors_save(path, tiny, odd), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), path));

    unlink(path);
    rmdir(dir);
    fl_params_destroy(&before);
    fl_params_destroy(&tiny);
    fl_params_destroy(&p);
}

/* ---- the independent writer's fixtures ------------------------------------------------- */

static uint8_t *
s_read_fixture(const char *name, size_t *len_p)
{
    char path[512];
    uint8_t *buf = NULL;
    snprintf(path, sizeof path, "%s/%s", s_fixture_dir(), name);
    int rc = fl_read_file(path, 1 << 20, &buf, len_p);
    if (rc != 0)
        fail_msg("cannot read fixture: %s", fl_errmsg());
    return buf;
}

static void
test_fixture_tiny(void **state)
{
    (void)state;
    char path[512];
    fl_params_t *into = s_tiny_layout(), *q = NULL;
    snprintf(path, sizeof path, "%s/tiny.safetensors", s_fixture_dir());

    assert_int_equal(fl_safetensors_load(path, into), 0);
    s_check_tiny_values(into);
    assert_int_equal(fl_safetensors_load_new(path, &q), 0);
    s_check_tiny_values(q);
    assert_true(fl_params_same_layout(q, into)); /* written in layout order */
    fl_params_destroy(&q);

    /* The C encoder writes exactly the bytes the Python writer wrote. */
    size_t flen = 0, clen = 0;
    uint8_t *fix = s_read_fixture("tiny.safetensors", &flen), *mine = NULL;
    fl_params_t *v = s_tiny_values();
    const char *meta[] = {"format", "pt", NULL};
    assert_int_equal(fl_safetensors_encode(v, meta, &mine, &clen), 0);
    assert_int_equal(clen, flen);
    assert_memory_equal(mine, fix, flen);

    char **m = NULL;
    assert_int_equal(fl_safetensors_meta(fix, flen, &m), 0);
    assert_string_equal(m[0], "format");
    assert_string_equal(m[1], "pt");
    assert_null(m[2]);
    fl_safetensors_meta_free(&m);

    free(mine);
    free(fix);
    fl_params_destroy(&v);
    fl_params_destroy(&into);
}

static void
test_fixture_sorted(void **state)
{
    (void)state;
    char path[512];
    fl_params_t *into = s_tiny_layout(), *q = NULL;
    snprintf(path, sizeof path, "%s/tiny_sorted.safetensors", s_fixture_dir());

    /* The reference writer's order (by name) differs from the layout's. */
    assert_int_equal(fl_safetensors_load(path, into), 0);
    s_check_tiny_values(into);
    assert_int_equal(fl_safetensors_load_new(path, &q), 0);
    s_check_tiny_values(q);
    assert_string_equal(fl_params_at(q, 0)->name, "fc0.bias"); /* data-offset order */
    assert_string_equal(fl_params_at(q, 1)->name, "fc0.weight");
    fl_params_destroy(&q);
    fl_params_destroy(&into);
}

/* ---- real torch tensors (skipped when no python3 can import torch) ----------------------- */

static void
test_torch_exchange(void **state)
{
    (void)state;
    char dir[] = "/tmp/covey-st-XXXXXX", path[256], cmd[1024];
    assert_non_null(mkdtemp(dir));

    /* Covey -> torch: the script checks these values with torch.frombuffer. */
    fl_params_t *c = fl_params_new();
    assert_int_equal(fl_params_add(c, "lin.weight", 2, (size_t[]){2, 3}), 0);
    assert_int_equal(fl_params_add(c, "lin.bias", 1, (size_t[]){2}), 0);
    for (int i = 0; i < 6; i++)
        fl_params_find(c, "lin.weight")->data[i] = ((float)i - 2.5f) / 4.0f;
    fl_params_find(c, "lin.bias")->data[0] = 0.125f;
    fl_params_find(c, "lin.bias")->data[1] = -3.0f;
    const char *meta[] = {"producer", "covey", NULL};
    snprintf(path, sizeof path, "%s/covey.safetensors", dir);
    assert_int_equal(fl_safetensors_save(path, c, meta), 0);

    /* The script exits 77 when its python3 has no torch (the pyenv python3 on PATH may
     * not; Debian's python3-torch lives in /usr/bin/python3). */
    const char *pythons[] = {getenv("COVEY_PYTHON"), "python3", "/usr/bin/python3"};
    int status = -1;
    for (size_t i = 0; i < sizeof pythons / sizeof pythons[0]; i++) {
        if (!pythons[i] || !*pythons[i])
            continue;
        snprintf(cmd, sizeof cmd, "%s %s/make_safetensors.py --torch %s", pythons[i],
                 s_fixture_dir(), dir);
        status = system(cmd);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 77) && status != 127 << 8)
            break;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 77 || WEXITSTATUS(status) == 127) {
        snprintf(path, sizeof path, "%s/covey.safetensors", dir);
        unlink(path);
        rmdir(dir);
        fl_params_destroy(&c);
        print_message("no python3 with torch: skipping\n");
        skip();
    }
    assert_int_equal(WEXITSTATUS(status), 0);

    /* torch -> Covey: a real nn.Linear(5, 3), values listed as hex floats. */
    fl_params_t *t = NULL;
    snprintf(path, sizeof path, "%s/torch.safetensors", dir);
    assert_int_equal(fl_safetensors_load_new(path, &t), 0);
    assert_int_equal(fl_params_count(t), 2);
    assert_string_equal(fl_params_at(t, 0)->name, "bias"); /* written sorted by name */
    assert_string_equal(fl_params_at(t, 1)->name, "weight");
    fl_params_t *layout = fl_params_new(); /* torch's state_dict order */
    assert_int_equal(fl_params_add(layout, "weight", 2, (size_t[]){3, 5}), 0);
    assert_int_equal(fl_params_add(layout, "bias", 1, (size_t[]){3}), 0);
    assert_int_equal(fl_safetensors_load(path, layout), 0);

    snprintf(path, sizeof path, "%s/torch_expected.txt", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (getline(&line, &cap, f) > 0) {
        char *save = NULL, *name = strtok_r(line, " \n", &save);
        const fl_tensor_t *a = fl_params_find(t, name), *b = fl_params_find(layout, name);
        assert_non_null(a);
        assert_non_null(b);
        size_t k = 0;
        for (char *tok; (tok = strtok_r(NULL, " \n", &save)) != NULL; k++) {
            assert_true(k < a->numel);
            float want = strtof(tok, NULL);
            assert_true(a->data[k] == want);
            assert_true(b->data[k] == want);
        }
        assert_int_equal(k, a->numel);
        lines++;
    }
    assert_int_equal(lines, 2);
    free(line);
    fclose(f);

    static const char *files[] = {"covey.safetensors", "torch.safetensors", "torch_expected.txt"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    assert_int_equal(rmdir(dir), 0);
    fl_params_destroy(&layout);
    fl_params_destroy(&t);
    fl_params_destroy(&c);
}

/* ---- malformed input ---------------------------------------------------------------------- */

static void
test_bad_lengths(void **state)
{
    (void)state;
    size_t len;
    uint8_t *good = s_image("{" HDR_W "," HDR_B "}", NULL, 60, &len);

    /* Every truncation below 8 bytes, and no buffer at all. */
    for (size_t n = 0; n < 8; n++)
        s_expect_bad(good, n, FL_EFORMAT, "too short for the 8-byte header length", true,
                     __LINE__);
    s_expect_bad(NULL, 0, FL_EFORMAT, "too short", true, __LINE__);

    /* Header length one past the end, and a file cut inside the header or data. */
    uint8_t *b = fl_xmalloc(len);
    memcpy(b, good, len);
    s_put_le64(b, len - 8 + 1);
    s_expect_bad(b, len, FL_EFORMAT, "runs past the end of the", true, __LINE__);
    s_expect_bad(good, 20, FL_EFORMAT, "runs past the end of the 20-byte file", true, __LINE__);
    s_expect_bad(good, len - 1, FL_EFORMAT, "out of range of the 59-byte data buffer", true,
                 __LINE__);

    /* Absurd header lengths are refused before anything is allocated. */
    s_put_le64(b, (uint64_t)1 << 62);
    s_expect_bad(b, len, FL_ERANGE, "header length 4611686018427387904 exceeds the limit", true,
                 __LINE__);
    s_put_le64(b, UINT64_MAX);
    s_expect_bad(b, len, FL_ERANGE, "exceeds the limit", true, __LINE__);
    s_put_le64(b, FL_SAFETENSORS_HEADER_MAX + 1);
    s_expect_bad(b, len, FL_ERANGE, "exceeds the limit of 104857600 bytes", true, __LINE__);

    /* An empty header. */
    s_put_le64(b, 0);
    s_expect_bad(b, 8, FL_EFORMAT, "not a JSON object", true, __LINE__);
    free(b);
    free(good);
}

static void
test_bad_json(void **state)
{
    (void)state;
    BAD_FILE("{\"fc0.weight\":", 0, FL_EFORMAT, "not valid JSON");
    BAD_FILE("{" HDR_W "," HDR_B "} x", 60, FL_EFORMAT, "not valid JSON");
    {
        /* NUL bytes are not padding. */
        static const char h[] = "{" HDR_W "," HDR_B "}\0\0\0";
        size_t hl = sizeof h - 1, len = 8 + hl + 60;
        uint8_t *b = fl_xcalloc(1, len);
        s_put_le64(b, hl);
        memcpy(b + 8, h, hl);
        s_expect_bad(b, len, FL_EFORMAT, "header is not valid JSON", true, __LINE__);
        free(b);
    }
    BAD_FILE("{\"fc0.w\xff\":{}}", 0, FL_EFORMAT, "not valid JSON");
    BAD_FILE("[1,2]", 0, FL_EFORMAT, "header is not a JSON object");
    BAD_FILE("\"text\"", 0, FL_EFORMAT, "header is not a JSON object");
    BAD_FILE(" {}", 0, FL_EFORMAT, "header is not a JSON object");
    /* Duplicate keys are refused, not resolved one way or the other. */
    BAD_FILE("{" HDR_W "," HDR_W "}", 48, FL_EFORMAT, "duplicate object key");
    BAD_FILE("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0, FL_EFORMAT, "duplicate");
}

static void
test_bad_entries(void **state)
{
    (void)state;
    BAD_FILE("{\"fc0.weight\":[1]}", 48, FL_EFORMAT,
             "tensor 'fc0.weight': entry is not a JSON object");
    BAD_FILE("{\"fc0.weight\":{\"shape\":[3,4],\"data_offsets\":[0,48]}}", 48, FL_EFORMAT,
             "tensor 'fc0.weight': missing \"dtype\"");
    BAD_FILE("{\"fc0.weight\":{\"dtype\":\"F32\",\"data_offsets\":[0,48]}}", 48, FL_EFORMAT,
             "tensor 'fc0.weight': missing \"shape\"");
    BAD_FILE("{\"fc0.weight\":{\"dtype\":\"F32\",\"shape\":[3,4]}}", 48, FL_EFORMAT,
             "tensor 'fc0.weight': missing \"data_offsets\"");
    BAD_FILE("{\"fc0.weight\":{\"dtype\":32,\"shape\":[3,4],\"data_offsets\":[0,48]}}", 48,
             FL_EFORMAT, "tensor 'fc0.weight': \"dtype\" is not a string");
    BAD_FILE("{\"fc0.weight\":{\"dtype\":\"F16\",\"shape\":[3,4],\"data_offsets\":[0,24]}}", 24,
             FL_EFORMAT, "tensor 'fc0.weight': dtype F16 not supported (only F32)");
    BAD_FILE("{\"fc0.weight\":{\"dtype\":\"I64\",\"shape\":[3,4],\"data_offsets\":[0,96]}}", 96,
             FL_EFORMAT, "tensor 'fc0.weight': dtype I64 not supported (only F32)");
    BAD_FILE("{\"fc0.weight\":{\"dtype\":\"f32\",\"shape\":[3,4],\"data_offsets\":[0,48]}}", 48,
             FL_EFORMAT, "dtype f32 not supported");
}

static void
test_bad_shapes(void **state)
{
    (void)state;
    BAD_FILE("{" ENTRY("a", "3", "[0,12]") "}", 12, FL_EFORMAT,
             "tensor 'a': \"shape\" is not an array");
    BAD_FILE("{" ENTRY("a", "[3,-4]", "[0,12]") "}", 12, FL_EFORMAT,
             "tensor 'a': shape element 1 is not a non-negative integer");
    BAD_FILE("{" ENTRY("a", "[3.0]", "[0,12]") "}", 12, FL_EFORMAT,
             "shape element 0 is not a non-negative integer");
    BAD_FILE("{" ENTRY("a", "[\"3\"]", "[0,12]") "}", 12, FL_EFORMAT,
             "shape element 0 is not a non-negative integer");
    BAD_FILE("{" ENTRY("a", "[]", "[0,4]") "}", 4, FL_EFORMAT,
             "tensor 'a': shape [] has no dimensions (scalars are not supported");
    BAD_FILE("{" ENTRY("a", "[1,1,1,1,1]", "[0,4]") "}", 4, FL_EFORMAT,
             "tensor 'a': shape has 5 dimensions (1..4 allowed)");
    BAD_FILE("{" ENTRY("a", "[3,0]", "[0,0]") "}", 0, FL_EFORMAT,
             "tensor 'a': shape [3,0] has a zero dimension (empty tensors are not supported)");
    /* Declared sizes far beyond the file: refused before any allocation. */
    BAD_FILE("{" ENTRY("a", "[4294967296,4294967296,4294967296]", "[0,16]") "}", 16, FL_ERANGE,
             "tensor 'a': shape [4294967296,4294967296,4294967296]: element count overflows");
    BAD_FILE("{" ENTRY("a", "[65536,65536]", "[0,16]") "}", 16, FL_ERANGE,
             "tensor 'a': shape [65536,65536] has 4294967296 elements (at most 2147483648)");
    BAD_FILE("{" ENTRY("a", "[1073741824]", "[0,4294967296]") "}", 16, FL_EFORMAT,
             "tensor 'a': data_offsets [0,4294967296] out of range of the 16-byte data buffer");
    BAD_FILE("{" ENTRY("a", "[3]", "[0,99999999999999999999]") "}", 12, FL_EFORMAT,
             "not valid JSON");
}

static void
test_bad_offsets(void **state)
{
    (void)state;
    BAD_FILE("{" HDR_W "," ENTRY("fc0.bias", "[3]", "[48,64]") "}", 60, FL_EFORMAT,
             "tensor 'fc0.bias': data_offsets [48,64] out of range of the 60-byte data buffer");
    BAD_FILE("{" HDR_W "," ENTRY("fc0.bias", "[3]", "[60,48]") "}", 60, FL_EFORMAT,
             "tensor 'fc0.bias': data_offsets [60,48] end before they begin");
    BAD_FILE("{" HDR_W "," ENTRY("fc0.bias", "[3]", "[48]") "}", 60, FL_EFORMAT,
             "tensor 'fc0.bias': \"data_offsets\" is not a [begin, end] pair");
    BAD_FILE("{" HDR_W "," ENTRY("fc0.bias", "[3]", "[48,60,72]") "}", 60, FL_EFORMAT,
             "\"data_offsets\" is not a [begin, end] pair");
    BAD_FILE("{" HDR_W "," ENTRY("fc0.bias", "[3]", "[-12,0]") "}", 60, FL_EFORMAT,
             "\"data_offsets\" is not a [begin, end] pair");
    BAD_FILE("{" HDR_W "," ENTRY("fc0.bias", "[3]", "{\"begin\":48}") "}", 60, FL_EFORMAT,
             "\"data_offsets\" is not a [begin, end] pair");
    /* end - begin must be numel * 4. */
    BAD_FILE("{" ENTRY("fc0.weight", "[3,4]", "[0,44]") "," ENTRY("fc0.bias", "[3]", "[44,56]") "}",
             56, FL_EFORMAT,
             "tensor 'fc0.weight': data_offsets [0,44] span 44 bytes but shape [3,4] of F32 "
             "needs 48");
    /* Overlap, holes, and bytes left over after the last tensor. */
    BAD_FILE("{" ENTRY("a", "[2]", "[0,8]") "," ENTRY("b", "[2]", "[4,12]") "}", 12, FL_EFORMAT,
             "tensors 'a' and 'b' overlap in the data buffer");
    BAD_FILE("{" ENTRY("a", "[2]", "[0,8]") "," ENTRY("b", "[2]", "[0,8]") "}", 8, FL_EFORMAT,
             "overlap");
    BAD_FILE("{" ENTRY("a", "[2]", "[0,8]") "," ENTRY("b", "[2]", "[12,20]") "}", 20, FL_EFORMAT,
             "hole in the data buffer: bytes 8..12 before tensor 'b'");
    BAD_FILE("{" ENTRY("b", "[2]", "[4,12]") "}", 12, FL_EFORMAT,
             "hole in the data buffer: bytes 0..4 before tensor 'b'");
    BAD_FILE("{" HDR_W "," HDR_B "}", 64, FL_EFORMAT,
             "hole in the data buffer: bytes 60..64 after the last tensor");
    BAD_FILE("{}", 4, FL_EFORMAT, "hole in the data buffer: bytes 0..4");
}

static void
test_bad_metadata_and_names(void **state)
{
    (void)state;
    BAD_FILE("{\"__metadata__\":{\"format\":1}," HDR_W "," HDR_B "}", 60, FL_EFORMAT,
             "\"__metadata__\" value of 'format' is not a string");
    BAD_FILE("{\"__metadata__\":{\"format\":{\"x\":\"y\"}}," HDR_W "," HDR_B "}", 60, FL_EFORMAT,
             "value of 'format' is not a string");
    BAD_FILE("{\"__metadata__\":\"pt\"," HDR_W "," HDR_B "}", 60, FL_EFORMAT,
             "\"__metadata__\" is not a JSON object");
    BAD_FILE("{\"__metadata__\":[\"pt\"]," HDR_W "," HDR_B "}", 60, FL_EFORMAT,
             "\"__metadata__\" is not a JSON object");
    /* 64 bytes: one more than FL_NAME_MAX - 1. */
#define NAME63 "123456789012345678901234567890123456789012345678901234567890123"
#define NAME64 "n" NAME63
    BAD_FILE("{" ENTRY(NAME64, "[1]", "[0,4]") "}", 4, FL_EFORMAT,
             "is too long (64 bytes, at most 63)");
    BAD_FILE("{" ENTRY("", "[1]", "[0,4]") "}", 4, FL_EFORMAT, "empty tensor name");
    BAD_FILE("{\"a\\u0000b\":{}}", 0, FL_EFORMAT, "not valid JSON");

    /* 63 bytes is the longest name that fits. */
    fl_params_t *q = NULL;
    size_t len;
    uint8_t *b = s_image("{" ENTRY(NAME63, "[1]", "[0,4]") "}", NULL, 4, &len);
    assert_int_equal(fl_safetensors_decode_new(b, len, &q), 0);
    assert_string_equal(fl_params_at(q, 0)->name, NAME63);
    fl_params_destroy(&q);
    free(b);
#undef NAME64
#undef NAME63

    /* Unknown fields in an entry are ignored, as by the reference reader. */
    b = s_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":7}}", NULL,
                4, &len);
    assert_int_equal(fl_safetensors_decode_new(b, len, &q), 0);
    fl_params_destroy(&q);
    free(b);
}

/* A header of n one-float tensors "t0", "t1", ... (data all zero). */
static uint8_t *
s_many_image(size_t n, size_t *len_p)
{
    size_t cap = 64 + n * 96, j = 0; /* an entry is at most ~80 bytes */
    char *h = fl_xmalloc(cap);
    j += (size_t)snprintf(h + j, cap - j, "{");
    for (size_t i = 0; i < n; i++)
        j += (size_t)snprintf(h + j, cap - j,
                              "%s\"t%zu\":{\"dtype\":\"F32\",\"shape\":[1],"
                              "\"data_offsets\":[%zu,%zu]}",
                              i ? "," : "", i, 4 * i, 4 * i + 4);
    snprintf(h + j, cap - j, "}");
    uint8_t *b = s_image(h, NULL, 4 * n, len_p);
    free(h);
    return b;
}

static void
test_tensor_count_cap(void **state)
{
    (void)state;
    size_t len;
    char **meta = NULL;
    fl_params_t *q = NULL;

    uint8_t *b = s_many_image(FL_SAFETENSORS_TENSORS_MAX, &len);
    assert_int_equal(fl_safetensors_meta(b, len, &meta), 0); /* parses and validates it all */
    fl_safetensors_meta_free(&meta);
    assert_int_equal(fl_safetensors_decode_new(b, len, &q), 0);
    assert_int_equal(fl_params_count(q), FL_SAFETENSORS_TENSORS_MAX);
    free(b);

    b = s_many_image(FL_SAFETENSORS_TENSORS_MAX + 1, &len);
    s_expect_bad(b, len, FL_ERANGE, "16385 tensors exceed the limit of 16384", true, __LINE__);
    free(b);

    /* The encoder refuses to write what the decoder would refuse to read. */
    assert_int_equal(fl_params_add(q, "one.more", 1, (size_t[]){1}), 0);
    uint8_t *enc = NULL;
    assert_int_equal(fl_safetensors_encode(q, NULL, &enc, &len), FL_ERANGE);
    assert_non_null(strstr(fl_errmsg(), "16385 tensors exceed the limit"));
    assert_null(enc);
    fl_params_destroy(&q);
}

static void
test_layout_mismatch(void **state)
{
    (void)state;
    BAD_LAYOUT("{" ENTRY("fc0.weight", "[4,3]", "[0,48]") "," HDR_B "}", 60,
               "tensor 'fc0.weight': expected shape [3,4], found [4,3]");
    BAD_LAYOUT("{" ENTRY("fc0.weight", "[12]", "[0,48]") "," HDR_B "}", 60,
               "tensor 'fc0.weight': expected shape [3,4], found [12]");
    BAD_LAYOUT("{" HDR_W "," ENTRY("fc0.bias", "[3,1]", "[48,60]") "}", 60,
               "tensor 'fc0.bias': expected shape [3], found [3,1]");
    BAD_LAYOUT("{" HDR_W "}", 48, "tensor 'fc0.bias' (shape [3]) is missing from the file");
    BAD_LAYOUT("{" HDR_W "," ENTRY("fc0.Bias", "[3]", "[48,60]") "}", 60,
               "tensor 'fc0.bias' (shape [3]) is missing");
    BAD_LAYOUT("{" HDR_W "," HDR_B "," ENTRY("extra", "[2]", "[60,68]") "}", 68,
               "unexpected tensor 'extra' in the file");
    BAD_LAYOUT("{\"__metadata__\":{\"fc0.bias\":\"x\"}," HDR_W "}", 48,
               "tensor 'fc0.bias' (shape [3]) is missing");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_encode_decode),
        cmocka_unit_test(test_decode_other_order),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_empty_set),
        cmocka_unit_test(test_header_padding),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_fixture_tiny),
        cmocka_unit_test(test_fixture_sorted),
        cmocka_unit_test(test_torch_exchange),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_bad_offsets),
        cmocka_unit_test(test_bad_metadata_and_names),
        cmocka_unit_test(test_layout_mismatch),
        cmocka_unit_test(test_tensor_count_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
