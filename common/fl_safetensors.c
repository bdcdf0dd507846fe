/*
 * fl_safetensors.c — safetensors encode/decode for fl_params_t. See
 * fl_safetensors.h for the format and the contracts.
 *
 * Decoding is done in two stages so that nothing is written on failure: s_parse()
 * validates the whole image (header length, JSON, every entry, and that the
 * tensors tile the data buffer exactly) into a table of entries that borrow
 * from the parsed JSON; only then is anything allocated from the file's sizes
 * or copied into the caller's tensors. Every size used for an allocation is
 * bounded by the real length of the image, never by a number the file declares.
 */
#include "fl_safetensors.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(float) == 4, "F32 tensors need a 4-byte float");

/* The data buffer is little-endian; on a little-endian host it is copied as is.
 * FL_SAFETENSORS_BYTEWISE forces the portable byte-by-byte path (to test it). */
#if !defined(FL_SAFETENSORS_BYTEWISE) && defined(__BYTE_ORDER__) &&                               \
    defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define S_HOST_LE 1
#else
#define S_HOST_LE 0
#endif

#define S_META_KEY "__metadata__"

/* One validated tensor entry of a header. */
typedef struct {
    const char *name; /* borrowed from the parsed header (s_file_t.root) */
    int ndim;
    size_t shape[FL_NDIM_MAX];
    size_t numel;
    size_t begin, end; /* byte range in the data buffer; end - begin == numel * 4 */
    bool matched;      /* decode into a layout: claimed by a layout tensor */
} s_entry_t;

/* A validated image: the parsed header and its entries ordered by data offset. */
typedef struct {
    json_t *root;
    json_t *meta; /* borrowed from root; NULL when absent or null */
    s_entry_t *entries;
    size_t count;
    const uint8_t *data; /* borrowed from the caller's buffer */
    size_t data_len;
} s_file_t;

static uint64_t
s_get_le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void
s_put_le64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

/* n little-endian F32 values from src (any alignment) into dst. */
static void
s_f32_from_le(float *dst, const uint8_t *src, size_t n)
{
#if S_HOST_LE
    memcpy(dst, src, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = src + 4 * i;
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24;
        memcpy(&dst[i], &u, sizeof u);
    }
#endif
}

/* n floats from src as little-endian F32 into dst (any alignment). */
static void
s_f32_to_le(uint8_t *dst, const float *src, size_t n)
{
#if S_HOST_LE
    memcpy(dst, src, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        for (int k = 0; k < 4; k++)
            dst[4 * i + (size_t)k] = (uint8_t)(u >> (8 * k));
    }
#endif
}

/* A JSON value as a size_t: a non-negative integer that fits. */
static bool
s_json_size(const json_t *v, size_t *out)
{
    if (!json_is_integer(v))
        return false;
    json_int_t i = json_integer_value(v);
    if (i < 0 || (unsigned long long)i > SIZE_MAX)
        return false;
    *out = (size_t)i;
    return true;
}

static void
s_file_free(s_file_t *f)
{
    free(f->entries);
    json_decref(f->root);
    memset(f, 0, sizeof *f);
}

static int
s_cmp_offset(const void *a, const void *b)
{
    const s_entry_t *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int
s_check_meta(json_t *meta)
{
    const char *key;
    json_t *val;

    if (!json_is_object(meta))
        return fl_fail(FL_EFORMAT, "\"" S_META_KEY "\" is not a JSON object");
    json_object_foreach (meta, key, val) {
        if (!json_is_string(val))
            return fl_fail(FL_EFORMAT, "\"" S_META_KEY "\" value of '%.64s' is not a string",
                           key);
    }
    return 0;
}

/* Validate one header entry `key: val` against a data buffer of data_len bytes. */
static int
s_parse_entry(const char *key, const json_t *val, size_t data_len, s_entry_t *e)
{
    char shape_s[128];
    size_t klen = strlen(key), bytes;
    const json_t *dtype, *shape, *offs;

    memset(e, 0, sizeof *e);
    e->name = key;
    if (klen == 0)
        return fl_fail(FL_EFORMAT, "empty tensor name");
    if (klen >= FL_NAME_MAX)
        return fl_fail(FL_EFORMAT, "tensor name '%.40s...' is too long (%zu bytes, at most %d)",
                       key, klen, FL_NAME_MAX - 1);
    if (!json_is_object(val))
        return fl_fail(FL_EFORMAT, "tensor '%s': entry is not a JSON object", key);

    dtype = json_object_get(val, "dtype");
    if (!dtype)
        return fl_fail(FL_EFORMAT, "tensor '%s': missing \"dtype\"", key);
    if (!json_is_string(dtype))
        return fl_fail(FL_EFORMAT, "tensor '%s': \"dtype\" is not a string", key);
    if (strcmp(json_string_value(dtype), "F32") != 0)
        return fl_fail(FL_EFORMAT, "tensor '%s': dtype %.16s not supported (only F32)", key,
                       json_string_value(dtype));

    shape = json_object_get(val, "shape");
    if (!shape)
        return fl_fail(FL_EFORMAT, "tensor '%s': missing \"shape\"", key);
    if (!json_is_array(shape))
        return fl_fail(FL_EFORMAT, "tensor '%s': \"shape\" is not an array", key);
    size_t nd = json_array_size(shape);
    if (nd == 0)
        return fl_fail(FL_EFORMAT,
                       "tensor '%s': shape [] has no dimensions (scalars are not supported; "
                       "1..%d dimensions allowed)",
                       key, FL_NDIM_MAX);
    if (nd > FL_NDIM_MAX)
        return fl_fail(FL_EFORMAT, "tensor '%s': shape has %zu dimensions (1..%d allowed)", key,
                       nd, FL_NDIM_MAX);
    e->ndim = (int)nd;
    for (size_t d = 0; d < nd; d++)
        if (!s_json_size(json_array_get(shape, d), &e->shape[d]))
            return fl_fail(FL_EFORMAT,
                           "tensor '%s': shape element %zu is not a non-negative integer", key, d);
    fl_shape_str(e->ndim, e->shape, shape_s, sizeof shape_s);
    /* fl_params cannot hold an empty tensor, so refuse it here with the reason. */
    for (size_t d = 0; d < nd; d++)
        if (e->shape[d] == 0)
            return fl_fail(FL_EFORMAT,
                           "tensor '%s': shape %s has a zero dimension (empty tensors are not "
                           "supported)",
                           key, shape_s);
    e->numel = 1;
    for (size_t d = 0; d < nd; d++)
        if (!fl_mul_ok(e->numel, e->shape[d], &e->numel))
            return fl_fail(FL_ERANGE, "tensor '%s': shape %s: element count overflows", key,
                           shape_s);
    if (e->numel > FL_PARAMS_MAX_ELEMS)
        return fl_fail(FL_ERANGE, "tensor '%s': shape %s has %zu elements (at most %zu)", key,
                       shape_s, e->numel, FL_PARAMS_MAX_ELEMS);
    if (!fl_mul_ok(e->numel, sizeof(float), &bytes))
        return fl_fail(FL_ERANGE, "tensor '%s': shape %s: byte size overflows", key, shape_s);

    offs = json_object_get(val, "data_offsets");
    if (!offs)
        return fl_fail(FL_EFORMAT, "tensor '%s': missing \"data_offsets\"", key);
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !s_json_size(json_array_get(offs, 0), &e->begin) ||
        !s_json_size(json_array_get(offs, 1), &e->end))
        return fl_fail(FL_EFORMAT,
                       "tensor '%s': \"data_offsets\" is not a [begin, end] pair of "
                       "non-negative integers",
                       key);
    if (e->begin > e->end)
        return fl_fail(FL_EFORMAT, "tensor '%s': data_offsets [%zu,%zu] end before they begin",
                       key, e->begin, e->end);
    if (e->end > data_len)
        return fl_fail(FL_EFORMAT,
                       "tensor '%s': data_offsets [%zu,%zu] out of range of the %zu-byte data "
                       "buffer",
                       key, e->begin, e->end, data_len);
    if (e->end - e->begin != bytes)
        return fl_fail(FL_EFORMAT,
                       "tensor '%s': data_offsets [%zu,%zu] span %zu bytes but shape %s of F32 "
                       "needs %zu",
                       key, e->begin, e->end, e->end - e->begin, shape_s, bytes);
    return 0;
}

/*
 * Validate the whole image buf[0..len) into *f (entries ordered by data
 * offset). On failure *f is empty and owns nothing.
 */
static int
s_parse(const uint8_t *buf, size_t len, s_file_t *f)
{
    json_error_t jerr;
    const char *key;
    json_t *val;
    uint64_t n;
    size_t k = 0, pos = 0;
    int rc;

    memset(f, 0, sizeof *f);
    if (!buf || len < 8)
        return fl_fail(FL_EFORMAT, "safetensors: %zu bytes is too short for the 8-byte header "
                       "length", buf ? len : 0);
    n = s_get_le64(buf);
    if (n > FL_SAFETENSORS_HEADER_MAX)
        return fl_fail(FL_ERANGE, "safetensors: header length %llu exceeds the limit of %zu bytes",
                       (unsigned long long)n, FL_SAFETENSORS_HEADER_MAX);
    if (n > len - 8)
        return fl_fail(FL_EFORMAT, "safetensors: header length %llu runs past the end of the "
                       "%zu-byte file", (unsigned long long)n, len);
    /* As the reference reader does, require an object right away (no leading padding). */
    if (n == 0 || buf[8] != '{')
        return fl_fail(FL_EFORMAT, "safetensors: header is not a JSON object (does not start "
                       "with '{')");
    /* Trailing JSON whitespace (the writer's 0x20 padding) is accepted by jansson's EOF check. */
    f->root = json_loadb((const char *)buf + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!f->root) {
        rc = fl_fail(FL_EFORMAT, "safetensors: header is not valid JSON: %s (header byte %d)",
                     jerr.text, jerr.position);
        goto out;
    }
    if (!json_is_object(f->root)) {
        rc = fl_fail(FL_EFORMAT, "safetensors: header is not a JSON object");
        goto out;
    }
    f->data = buf + 8 + n;
    f->data_len = len - 8 - (size_t)n;

    size_t nkeys = json_object_size(f->root);
    size_t ntensors = nkeys - (json_object_get(f->root, S_META_KEY) ? 1 : 0);
    if (ntensors > FL_SAFETENSORS_TENSORS_MAX) {
        rc = fl_fail(FL_ERANGE, "safetensors: %zu tensors exceed the limit of %d", ntensors,
                     FL_SAFETENSORS_TENSORS_MAX);
        goto out;
    }
    f->entries = fl_xcalloc(nkeys + 1, sizeof(s_entry_t));
    json_object_foreach (f->root, key, val) {
        if (strcmp(key, S_META_KEY) == 0) {
            /* The reference reader takes an optional map, so null means none. */
            if (json_is_null(val))
                continue;
            if ((rc = s_check_meta(val)) != 0)
                goto out;
            f->meta = val;
            continue;
        }
        if ((rc = s_parse_entry(key, val, f->data_len, &f->entries[k])) != 0)
            goto out;
        k++;
    }
    f->count = k;

    /* The entries must tile the data buffer: no overlap, no hole, nothing left over. */
    qsort(f->entries, f->count, sizeof(s_entry_t), s_cmp_offset);
    for (size_t i = 0; i < f->count; i++) {
        const s_entry_t *e = &f->entries[i];
        if (e->begin < pos) {
            rc = fl_fail(FL_EFORMAT, "safetensors: tensors '%s' and '%s' overlap in the data "
                         "buffer (bytes %zu..%zu)", f->entries[i - 1].name, e->name, e->begin,
                         pos);
            goto out;
        }
        if (e->begin > pos) {
            rc = fl_fail(FL_EFORMAT, "safetensors: hole in the data buffer: bytes %zu..%zu "
                         "before tensor '%s' belong to no tensor", pos, e->begin, e->name);
            goto out;
        }
        pos = e->end;
    }
    if (pos != f->data_len) {
        rc = fl_fail(FL_EFORMAT, "safetensors: hole in the data buffer: bytes %zu..%zu after "
                     "the last tensor belong to no tensor", pos, f->data_len);
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        s_file_free(f);
    return rc;
}

static int
s_cmp_name(const void *a, const void *b)
{
    const s_entry_t *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static s_entry_t *
s_lookup(s_entry_t **by_name, size_t count, const char *name)
{
    s_entry_t key = {.name = name}, *kp = &key;
    s_entry_t **hit = bsearch(&kp, by_name, count, sizeof *by_name, s_cmp_name);
    return hit ? *hit : NULL;
}

int
fl_safetensors_decode(const uint8_t *buf, size_t len, fl_params_t *into)
{
    s_file_t f;
    s_entry_t **by_name = NULL;
    size_t n = fl_params_count(into);
    char want[128], got[128];
    int rc = s_parse(buf, len, &f);

    if (rc != 0)
        return rc;
    by_name = fl_xcalloc(f.count + 1, sizeof *by_name);
    for (size_t i = 0; i < f.count; i++)
        by_name[i] = &f.entries[i];
    qsort(by_name, f.count, sizeof *by_name, s_cmp_name);

    /* Check everything first: `into` must be untouched on failure. */
    for (size_t i = 0; i < n; i++) {
        const fl_tensor_t *t = fl_params_at(into, i);
        s_entry_t *e = s_lookup(by_name, f.count, t->name);
        fl_shape_str(t->ndim, t->shape, want, sizeof want);
        if (!e) {
            rc = fl_fail(FL_EFORMAT, "tensor '%s' (shape %s) is missing from the file", t->name,
                         want);
            goto out;
        }
        bool same = e->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = e->shape[d] == t->shape[d];
        if (!same) {
            rc = fl_fail(FL_EFORMAT, "tensor '%s': expected shape %s, found %s", t->name, want,
                         fl_shape_str(e->ndim, e->shape, got, sizeof got));
            goto out;
        }
        e->matched = true;
    }
    for (size_t i = 0; i < f.count; i++)
        if (!f.entries[i].matched) {
            rc = fl_fail(FL_EFORMAT, "unexpected tensor '%s' in the file (not in the layout %s)",
                         f.entries[i].name, fl_params_describe(into, want, sizeof want));
            goto out;
        }

    for (size_t i = 0; i < n; i++) {
        fl_tensor_t *t = fl_params_at(into, i);
        const s_entry_t *e = s_lookup(by_name, f.count, t->name);
        assert(e && e->numel == t->numel);
        s_f32_from_le(t->data, f.data + e->begin, t->numel);
    }
    rc = 0;
out:
    free(by_name);
    s_file_free(&f);
    return rc;
}

int
fl_safetensors_decode_new(const uint8_t *buf, size_t len, fl_params_t **out)
{
    s_file_t f;
    fl_params_t *p = NULL;
    int rc = s_parse(buf, len, &f);

    if (rc != 0)
        return rc;
    /* The entries tile the data buffer, so the whole set is data_len / 4 floats. */
    if (f.data_len / sizeof(float) > FL_PARAMS_MAX_ELEMS) {
        rc = fl_fail(FL_ERANGE, "safetensors: %zu bytes of tensors exceed the limit of %zu "
                     "elements", f.data_len, FL_PARAMS_MAX_ELEMS);
        goto out;
    }
    p = fl_params_new();
    for (size_t i = 0; i < f.count; i++) {
        const s_entry_t *e = &f.entries[i];
        if ((rc = fl_params_add(p, e->name, e->ndim, e->shape)) != 0)
            goto out;
    }
    assert(fl_params_numel(p) * sizeof(float) == f.data_len);
    /* Layout order is offset order and both are contiguous: one copy does it all. */
    if (f.count)
        s_f32_from_le(fl_params_data(p), f.data, fl_params_numel(p));
    *out = p;
    p = NULL;
    rc = 0;
out:
    fl_params_destroy(&p);
    s_file_free(&f);
    return rc;
}

void
fl_safetensors_meta_free(char ***meta_p)
{
    if (!meta_p || !*meta_p)
        return;
    for (char **m = *meta_p; *m; m++)
        free(*m);
    free(*meta_p);
    *meta_p = NULL;
}

int
fl_safetensors_meta(const uint8_t *buf, size_t len, char ***meta_p)
{
    s_file_t f;
    const char *key;
    json_t *val;
    size_t k = 0;
    int rc = s_parse(buf, len, &f);

    if (rc != 0)
        return rc;
    size_t n = f.meta ? json_object_size(f.meta) : 0;
    char **meta = fl_xcalloc(2 * n + 1, sizeof(char *));
    if (f.meta) {
        json_object_foreach (f.meta, key, val) {
            meta[k++] = fl_xstrdup(key);
            meta[k++] = fl_xstrdup(json_string_value(val));
        }
    }
    meta[k] = NULL;
    *meta_p = meta;
    s_file_free(&f);
    return 0;
}

/* Build the header object for `p` and `meta` into *root_p (see fl_safetensors_encode). */
static int
s_build_header(const fl_params_t *p, const char *const *meta, json_t **root_p)
{
    json_t *root = json_object(), *m = NULL;
    size_t off = 0;
    int rc = FL_EINVAL;

    if (meta && meta[0]) {
        m = json_object();
        for (size_t i = 0; meta[i]; i += 2) {
            if (!meta[i + 1]) {
                rc = fl_fail(FL_EINVAL, "metadata key '%s' has no value", meta[i]);
                goto out;
            }
            if (json_object_get(m, meta[i])) {
                rc = fl_fail(FL_EINVAL, "duplicate metadata key '%s'", meta[i]);
                goto out;
            }
            json_t *v = json_string(meta[i + 1]);
            if (!v) {
                rc = fl_fail(FL_EINVAL, "metadata value of '%s' is not valid UTF-8", meta[i]);
                goto out;
            }
            if (json_object_set_new(m, meta[i], v) != 0) {
                rc = fl_fail(FL_EINVAL, "metadata key '%s' is not valid UTF-8", meta[i]);
                goto out;
            }
        }
        json_object_set_new(root, S_META_KEY, m);
        m = NULL;
    }
    for (size_t i = 0; i < fl_params_count(p); i++) {
        const fl_tensor_t *t = fl_params_at(p, i);
        if (strcmp(t->name, S_META_KEY) == 0) {
            rc = fl_fail(FL_EINVAL, "tensor name '%s' is reserved by safetensors", t->name);
            goto out;
        }
        json_t *e = json_object(), *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
        json_object_set_new(e, "dtype", json_string("F32"));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets",
                            json_pack("[II]", (json_int_t)off,
                                      (json_int_t)(off + t->numel * sizeof(float))));
        off += t->numel * sizeof(float);
        if (json_object_set_new(root, t->name, e) != 0) {
            rc = fl_fail(FL_EINVAL, "tensor name '%s' is not valid UTF-8", t->name);
            goto out;
        }
    }
    *root_p = root;
    root = NULL;
    rc = 0;
out:
    json_decref(m);
    json_decref(root);
    return rc;
}

int
fl_safetensors_encode(const fl_params_t *p, const char *const *meta, uint8_t **buf_p,
                      size_t *len_p)
{
    json_t *root = NULL;
    uint8_t *buf = NULL;
    size_t hlen, padded, data_len, total;
    int rc = s_build_header(p, meta, &root);

    if (rc != 0)
        return rc;
    hlen = json_dumpb(root, NULL, 0, JSON_COMPACT);
    if (hlen == 0) {
        rc = fl_fail(FL_EINVAL, "safetensors: cannot serialize the header");
        goto out;
    }
    /* Pad with spaces so that the data starts 8-byte aligned, as the reference writer does. */
    padded = hlen + (8 - hlen % 8) % 8;
    if (fl_params_count(p) > FL_SAFETENSORS_TENSORS_MAX) {
        rc = fl_fail(FL_ERANGE, "safetensors: %zu tensors exceed the limit of %d",
                     fl_params_count(p), FL_SAFETENSORS_TENSORS_MAX);
        goto out;
    }
    if (padded > FL_SAFETENSORS_HEADER_MAX) {
        rc = fl_fail(FL_ERANGE, "safetensors: header of %zu bytes exceeds the limit of %zu",
                     padded, FL_SAFETENSORS_HEADER_MAX);
        goto out;
    }
    /* numel <= FL_PARAMS_MAX_ELEMS, so these cannot overflow on a 64-bit size_t. */
    if (!fl_mul_ok(fl_params_numel(p), sizeof(float), &data_len) ||
        __builtin_add_overflow(8 + padded, data_len, &total)) {
        rc = fl_fail(FL_ERANGE, "safetensors: %zu elements do not fit in memory",
                     fl_params_numel(p));
        goto out;
    }
    buf = malloc(total);
    if (!buf) {
        rc = fl_fail(FL_ENOMEM, "safetensors: cannot allocate %zu bytes", total);
        goto out;
    }
    s_put_le64(buf, padded);
    size_t w = json_dumpb(root, (char *)buf + 8, hlen, JSON_COMPACT);
    assert(w == hlen);
    (void)w;
    memset(buf + 8 + hlen, ' ', padded - hlen);
    if (data_len)
        s_f32_to_le(buf + 8 + padded, fl_params_data(p), fl_params_numel(p));
    *buf_p = buf;
    *len_p = total;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    json_decref(root);
    return rc;
}

/* Prefix the current error detail with `path` and return rc. */
static int
s_with_path(const char *path, int rc)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s", fl_errmsg());
    return fl_fail(rc, "%s: %s", path, detail);
}

int
fl_safetensors_save(const char *path, const fl_params_t *p, const char *const *meta)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = fl_safetensors_encode(p, meta, &buf, &len);

    if (rc != 0)
        return s_with_path(path, rc);
    /* fl_write_file_atomic's details already name the file. */
    rc = fl_write_file_atomic(path, buf, len, 0644);
    free(buf);
    return rc;
}

int
fl_safetensors_load(const char *path, fl_params_t *into)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = fl_read_file(path, FL_SAFETENSORS_FILE_MAX, &buf, &len);

    if (rc != 0)
        return rc; /* fl_read_file's details already name the file */
    rc = fl_safetensors_decode(buf, len, into);
    free(buf);
    return rc != 0 ? s_with_path(path, rc) : 0;
}

int
fl_safetensors_load_new(const char *path, fl_params_t **out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = fl_read_file(path, FL_SAFETENSORS_FILE_MAX, &buf, &len);

    if (rc != 0)
        return rc;
    rc = fl_safetensors_decode_new(buf, len, out);
    free(buf);
    return rc != 0 ? s_with_path(path, rc) : 0;
}
