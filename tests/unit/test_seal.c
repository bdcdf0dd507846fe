/*
 * test_seal.c — unit tests of fl_seal: sealing round trips (copy and in
 * place), the documented blob layout opened with raw libsodium, every
 * single-bit flip of blob and associated data refused, blobs moved to another
 * round / federation / purpose / digest refused, wrong key, truncation, bad
 * magic and version; the canonical associated data; the data key file (mode
 * rule naming the file, malformed files, a golden key id).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_seal.h"
#include "fl_util.h"
#include "testutil.h"

static int
setup_dir(void **state)
{
    (void)state;
    return s_tmpdir_make("seal") == 0 && sodium_init() >= 0 ? 0 : -1;
}

static const uint8_t s_digest[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* The associated data of a checkpoint model of `round` in federation "fedA". */
static size_t
s_ad(uint8_t ad[FL_SEAL_AD_MAX], const char *purpose, const char *fed, int64_t round,
     const uint8_t digest[32])
{
    size_t n = 0;
    assert_int_equal(fl_seal_ad(purpose, fed, round, digest, ad, &n), 0);
    return n;
}

static void
test_roundtrip(void **state)
{
    (void)state;
    fl_datakey_t *k = fl_datakey_generate();
    assert_non_null(k);
    uint8_t ad[FL_SEAL_AD_MAX];
    size_t adlen = s_ad(ad, FL_SEAL_PURPOSE_MODEL, "fedA", 3, s_digest);
    const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint8_t *pt = fl_xmalloc(n ? n : 1), *blob = NULL, *back = NULL, *blob2 = NULL;
        size_t blen = 0, blen2 = 0, back_len = 99;
        randombytes_buf(pt, n);
        assert_int_equal(fl_seal(k, ad, adlen, pt, n, &blob, &blen), 0);
        assert_int_equal(blen, n + FL_SEAL_OVERHEAD);
        assert_memory_equal(blob, "CVSB", 4);
        /* The ciphertext is not the plaintext. */
        if (n >= 16)
            assert_memory_not_equal(blob + FL_SEAL_HEADER_LEN, pt, n);
        assert_int_equal(fl_unseal(k, ad, adlen, blob, blen, &back, &back_len), 0);
        assert_int_equal(back_len, n);
        assert_non_null(back);
        assert_int_equal((uintptr_t)back % 64, 0);
        if (n)
            assert_memory_equal(back, pt, n);
        /* A fresh nonce each time: the same plaintext seals differently. */
        assert_int_equal(fl_seal(k, ad, adlen, pt, n, &blob2, &blen2), 0);
        assert_memory_not_equal(blob + 13, blob2 + 13, 24);
        free(pt);
        free(blob);
        free(blob2);
        free(back);
    }
    /* No associated data at all is allowed too. */
    uint8_t *blob = NULL, *back = NULL;
    size_t blen, back_len;
    assert_int_equal(fl_seal(k, NULL, 0, "hello", 5, &blob, &blen), 0);
    assert_int_equal(fl_unseal(k, NULL, 0, blob, blen, &back, &back_len), 0);
    assert_int_equal(back_len, 5);
    assert_memory_equal(back, "hello", 5);
    free(blob);
    free(back);
    fl_datakey_destroy(&k);
    assert_null(k);
    fl_datakey_destroy(&k); /* idempotent */
    fl_datakey_destroy(NULL);
}

/* The layout of fl_seal.h, opened with libsodium directly: proves the
 * documented format (header, key id, nonce position, AD = header || ad). */
static void
test_documented_layout(void **state)
{
    (void)state;
    const char *path = s_tmp_fresh("layout.key");
    char text[256];
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(100 + i);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, key, 32);
    snprintf(text, sizeof text, "# test\nkey = %s\n", hex);
    s_write_text(path, text, 0600);
    fl_datakey_t *k = NULL;
    assert_int_equal(fl_datakey_load(path, &k), 0);

    /* Golden key id: BLAKE2b-64(key=key, personal "covey-datakey-id") of "",
     * computed with Python's hashlib. */
    uint8_t id[8], want_id[8];
    fl_datakey_id(k, id);
    assert_int_equal(sodium_hex2bin(want_id, 8, "60c52ea258064cef", 16, NULL, NULL, NULL), 0);
    assert_memory_equal(id, want_id, 8);

    uint8_t ad[FL_SEAL_AD_MAX];
    size_t adlen = s_ad(ad, FL_SEAL_PURPOSE_STATE, "fedA", 7, s_digest);
    const char pt[] = "the optimizer state of round 7";
    uint8_t *blob = NULL;
    size_t blen = 0;
    assert_int_equal(fl_seal(k, ad, adlen, pt, sizeof pt, &blob, &blen), 0);
    assert_memory_equal(blob, "CVSB", 4);
    assert_int_equal(blob[4], 1);
    assert_memory_equal(blob + 5, want_id, 8);

    uint8_t full_ad[13 + FL_SEAL_AD_MAX], out[sizeof pt];
    memcpy(full_ad, blob, 13);
    memcpy(full_ad + 13, ad, adlen);
    unsigned long long outlen = 0;
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
                         out, &outlen, NULL, blob + 37, blen - 37, full_ad, 13 + adlen, blob + 13,
                         key),
                     0);
    assert_int_equal(outlen, sizeof pt);
    assert_memory_equal(out, pt, sizeof pt);
    /* Without the header in the AD, it does not open: the header is bound. */
    assert_int_not_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(out, &outlen, NULL, blob + 37,
                                                                     blen - 37, ad, adlen,
                                                                     blob + 13, key),
                         0);
    free(blob);
    fl_datakey_destroy(&k);
}

static void
test_ad_encoding(void **state)
{
    (void)state;
    uint8_t ad[FL_SEAL_AD_MAX], want[FL_SEAL_AD_MAX];
    size_t n = 0, w = 0;
    assert_int_equal(fl_seal_ad("checkpoint.model", "fed-1", 0x0102030405060708LL, s_digest, ad,
                                &n),
                     0);
    want[w++] = 1;
    want[w++] = 16;
    memcpy(want + w, "checkpoint.model", 16);
    w += 16;
    want[w++] = 5;
    memcpy(want + w, "fed-1", 5);
    w += 5;
    for (uint8_t b = 1; b <= 8; b++)
        want[w++] = b;
    memcpy(want + w, s_digest, 32);
    w += 32;
    assert_int_equal(n, w);
    assert_memory_equal(ad, want, w);

    char long_id[300];
    memset(long_id, 'f', sizeof long_id);
    long_id[256] = '\0';
    assert_int_equal(fl_seal_ad("p", long_id, 1, s_digest, ad, &n), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "federation id"));
    long_id[255] = '\0'; /* 255 bytes: the longest allowed */
    assert_int_equal(fl_seal_ad(long_id, long_id, 1, s_digest, ad, &n), 0);
    assert_int_equal(n, FL_SEAL_AD_MAX);
    assert_int_equal(fl_seal_ad("", "fed", 1, s_digest, ad, &n), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "purpose"));
    assert_int_equal(fl_seal_ad(NULL, "fed", 1, s_digest, ad, &n), FL_EINVAL);
    assert_int_equal(fl_seal_ad("p", "fed", -1, s_digest, ad, &n), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "negative"));
    assert_int_equal(fl_seal_ad("p", "fed", 1, NULL, ad, &n), FL_EINVAL);
}

/* Every single-bit change of the blob, and of the associated data, is
 * refused; the header's bits give format errors, the rest crypto errors. */
static void
test_bit_flips(void **state)
{
    (void)state;
    fl_datakey_t *k = fl_datakey_generate();
    uint8_t ad[FL_SEAL_AD_MAX];
    size_t adlen = s_ad(ad, FL_SEAL_PURPOSE_MODEL, "fedA", 3, s_digest);
    uint8_t pt[40], *blob = NULL, *out = NULL;
    size_t blen = 0, outlen = 0;
    randombytes_buf(pt, sizeof pt);
    assert_int_equal(fl_seal(k, ad, adlen, pt, sizeof pt, &blob, &blen), 0);

    for (size_t i = 0; i < blen; i++) {
        for (int bit = 0; bit < 8; bit++) {
            blob[i] ^= (uint8_t)(1u << bit);
            out = NULL;
            int rc = fl_unseal(k, ad, adlen, blob, blen, &out, &outlen);
            if (i < 5)
                assert_int_equal(rc, FL_EFORMAT); /* magic, version */
            else
                assert_int_equal(rc, FL_ECRYPTO); /* key id, nonce, ciphertext, tag */
            assert_null(out);
            blob[i] ^= (uint8_t)(1u << bit);
        }
    }
    for (size_t i = 0; i < adlen; i++) {
        for (int bit = 0; bit < 8; bit++) {
            ad[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(fl_unseal(k, ad, adlen, blob, blen, &out, &outlen), FL_ECRYPTO);
            ad[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Untouched, it still opens. */
    assert_int_equal(fl_unseal(k, ad, adlen, blob, blen, &out, &outlen), 0);
    assert_memory_equal(out, pt, sizeof pt);
    free(out);
    free(blob);
    fl_datakey_destroy(&k);
}

/* A blob sealed for one place does not open in another. */
static void
test_moved_blob(void **state)
{
    (void)state;
    fl_datakey_t *k = fl_datakey_generate();
    uint8_t ad3[FL_SEAL_AD_MAX], other[FL_SEAL_AD_MAX], *blob = NULL, *out = NULL;
    size_t n3 = s_ad(ad3, FL_SEAL_PURPOSE_MODEL, "fedA", 3, s_digest), n, blen, outlen;
    assert_int_equal(fl_seal(k, ad3, n3, "model bytes", 11, &blob, &blen), 0);

    n = s_ad(other, FL_SEAL_PURPOSE_MODEL, "fedA", 4, s_digest);
    assert_int_equal(fl_unseal(k, other, n, blob, blen, &out, &outlen), FL_ECRYPTO);
    assert_non_null(strstr(fl_errmsg(), "authentication failed"));
    assert_non_null(strstr(fl_errmsg(), "moved to another round"));
    n = s_ad(other, FL_SEAL_PURPOSE_MODEL, "fedB", 3, s_digest);
    assert_int_equal(fl_unseal(k, other, n, blob, blen, &out, &outlen), FL_ECRYPTO);
    n = s_ad(other, FL_SEAL_PURPOSE_STATE, "fedA", 3, s_digest);
    assert_int_equal(fl_unseal(k, other, n, blob, blen, &out, &outlen), FL_ECRYPTO);
    n = s_ad(other, FL_SEAL_PURPOSE_AGENT_MODEL, "fedA", 3, s_digest);
    assert_int_equal(fl_unseal(k, other, n, blob, blen, &out, &outlen), FL_ECRYPTO);
    uint8_t d2[32];
    memcpy(d2, s_digest, 32);
    d2[31] ^= 0x80;
    n = s_ad(other, FL_SEAL_PURPOSE_MODEL, "fedA", 3, d2);
    assert_int_equal(fl_unseal(k, other, n, blob, blen, &out, &outlen), FL_ECRYPTO);
    /* Truncating the AD to a prefix is a different AD. */
    assert_int_equal(fl_unseal(k, ad3, n3 - 1, blob, blen, &out, &outlen), FL_ECRYPTO);
    assert_int_equal(fl_unseal(k, NULL, 0, blob, blen, &out, &outlen), FL_ECRYPTO);
    assert_null(out);
    assert_int_equal(fl_unseal(k, ad3, n3, blob, blen, &out, &outlen), 0);
    free(out);
    free(blob);
    fl_datakey_destroy(&k);
}

static void
test_wrong_key(void **state)
{
    (void)state;
    fl_datakey_t *k1 = fl_datakey_generate(), *k2 = fl_datakey_generate();
    uint8_t *blob = NULL, *out = NULL;
    size_t blen, outlen;
    uint8_t id1[8], id2[8];
    fl_datakey_id(k1, id1);
    fl_datakey_id(k2, id2);
    assert_memory_not_equal(id1, id2, 8);
    assert_int_equal(fl_seal(k1, NULL, 0, "secret model", 12, &blob, &blen), 0);
    assert_int_equal(fl_unseal(k2, NULL, 0, blob, blen, &out, &outlen), FL_ECRYPTO);
    assert_non_null(strstr(fl_errmsg(), "different data key"));
    assert_null(out);
    /* Even with the key id forged to match, the tag refuses it. */
    memcpy(blob + 5, id2, 8);
    assert_int_equal(fl_unseal(k2, NULL, 0, blob, blen, &out, &outlen), FL_ECRYPTO);
    assert_non_null(strstr(fl_errmsg(), "authentication failed"));
    assert_null(out);
    free(blob);
    fl_datakey_destroy(&k1);
    fl_datakey_destroy(&k2);
}

static void
test_truncated_and_foreign(void **state)
{
    (void)state;
    fl_datakey_t *k = fl_datakey_generate();
    uint8_t *blob = NULL, *out = NULL;
    size_t blen, outlen;
    assert_int_equal(fl_seal(k, NULL, 0, "0123456789", 10, &blob, &blen), 0);
    for (size_t n = 0; n < blen; n++) {
        int rc = fl_unseal(k, NULL, 0, blob, n, &out, &outlen);
        assert_true(rc == FL_EFORMAT || rc == FL_ECRYPTO);
        if (n < FL_SEAL_OVERHEAD) {
            assert_int_equal(rc, FL_EFORMAT);
            assert_non_null(strstr(fl_errmsg(), "truncated"));
        }
        assert_null(out);
    }
    /* One byte too many is refused as well. */
    uint8_t *longer = fl_xmalloc(blen + 1);
    memcpy(longer, blob, blen);
    longer[blen] = 0;
    assert_int_equal(fl_unseal(k, NULL, 0, longer, blen + 1, &out, &outlen), FL_ECRYPTO);
    free(longer);

    /* Plain (never sealed) bytes. */
    uint8_t plain[100] = {0};
    assert_int_equal(fl_unseal(k, NULL, 0, plain, sizeof plain, &out, &outlen), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "not a sealed blob"));
    /* A future format version. */
    blob[4] = 2;
    assert_int_equal(fl_unseal(k, NULL, 0, blob, blen, &out, &outlen), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "version 2"));
    assert_null(out);
    free(blob);

    /* Bad arguments. */
    uint8_t big_ad[FL_SEAL_AD_CALLER_MAX + 1] = {0};
    assert_int_equal(fl_seal(k, big_ad, sizeof big_ad, "x", 1, &blob, &blen), FL_EINVAL);
    assert_int_equal(fl_seal(NULL, NULL, 0, "x", 1, &blob, &blen), FL_EINVAL);
    assert_int_equal(fl_seal(k, NULL, 3, "x", 1, &blob, &blen), FL_EINVAL);
    assert_int_equal(fl_unseal(k, NULL, 0, NULL, 60, &out, &outlen), FL_EINVAL);
    fl_datakey_destroy(&k);
}

static void
test_inplace(void **state)
{
    (void)state;
    fl_datakey_t *k = fl_datakey_generate();
    uint8_t ad[FL_SEAL_AD_MAX];
    size_t adlen = s_ad(ad, FL_SEAL_PURPOSE_AGENT_MODEL, "fedA", 9, s_digest);
    const size_t n = 4096;
    size_t cap = n + FL_SEAL_OVERHEAD, blen = 0, ptlen = 0;
    uint8_t *buf = NULL, *orig = fl_xmalloc(n);
    assert_int_equal(posix_memalign((void **)&buf, 64, cap), 0);
    randombytes_buf(orig, n);
    memcpy(buf, orig, n);

    /* Too small a buffer: refused, nothing touched. */
    assert_int_equal(fl_seal_inplace(k, ad, adlen, buf, n, cap - 1, &blen), FL_ERANGE);
    assert_memory_equal(buf, orig, n);

    assert_int_equal(fl_seal_inplace(k, ad, adlen, buf, n, cap, &blen), 0);
    assert_int_equal(blen, cap);
    /* The copying variant opens what the in-place one sealed. */
    uint8_t *out = NULL;
    size_t outlen = 0;
    assert_int_equal(fl_unseal(k, ad, adlen, buf, blen, &out, &outlen), 0);
    assert_int_equal(outlen, n);
    assert_memory_equal(out, orig, n);
    free(out);

    /* Wrong round: refused; a format error leaves the buffer as it was. */
    uint8_t other[FL_SEAL_AD_MAX];
    size_t olen = s_ad(other, FL_SEAL_PURPOSE_AGENT_MODEL, "fedA", 10, s_digest);
    uint8_t *copy = fl_xmalloc(blen);
    memcpy(copy, buf, blen);
    assert_int_equal(fl_unseal_inplace(k, other, olen, copy, blen, &ptlen), FL_ECRYPTO);
    free(copy);
    buf[0] ^= 1;
    assert_int_equal(fl_unseal_inplace(k, ad, adlen, buf, blen, &ptlen), FL_EFORMAT);
    buf[0] ^= 1;

    assert_int_equal(fl_unseal_inplace(k, ad, adlen, buf, blen, &ptlen), 0);
    assert_int_equal(ptlen, n);
    assert_memory_equal(buf, orig, n);
    free(buf);
    free(orig);
    fl_datakey_destroy(&k);
}

static void
test_keyfile(void **state)
{
    (void)state;
    const char *path = s_tmp_fresh("data.key");
    fl_datakey_t *k = fl_datakey_generate(), *l = NULL;
    struct stat st;
    assert_int_equal(fl_datakey_save(k, path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* Never replaced. */
    assert_int_equal(fl_datakey_save(k, path), FL_EEXIST);
    assert_non_null(strstr(fl_errmsg(), path));

    uint8_t *text = NULL;
    size_t len = 0;
    assert_int_equal(fl_read_file(path, 4096, &text, &len), 0);
    assert_non_null(strstr((char *)text, "# covey data key"));
    assert_non_null(strstr((char *)text, "\nkey = "));
    free(text);

    assert_int_equal(fl_datakey_load(path, &l), 0);
    uint8_t id1[8], id2[8];
    fl_datakey_id(k, id1);
    fl_datakey_id(l, id2);
    assert_memory_equal(id1, id2, 8);
    uint8_t *blob = NULL, *out = NULL;
    size_t blen, outlen;
    assert_int_equal(fl_seal(k, NULL, 0, "abc", 3, &blob, &blen), 0);
    assert_int_equal(fl_unseal(l, NULL, 0, blob, blen, &out, &outlen), 0);
    assert_memory_equal(out, "abc", 3);
    free(out);
    free(blob);
    fl_datakey_destroy(&l);

    /* Group-readable: refused, naming the file and the fix. */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(fl_datakey_load(path, &l), FL_EPERM);
    assert_null(l);
    assert_non_null(strstr(fl_errmsg(), path));
    assert_non_null(strstr(fl_errmsg(), "0640"));
    assert_non_null(strstr(fl_errmsg(), "chmod 600"));
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(fl_datakey_load(path, &l), FL_EPERM);
    assert_int_equal(chmod(path, 0400), 0); /* stricter is fine */
    assert_int_equal(fl_datakey_load(path, &l), 0);
    fl_datakey_destroy(&l);

    /* A symbolic link to a good file is followed; a directory is refused. */
    const char *link_path = s_tmp_fresh("link.key");
    assert_int_equal(symlink(path, link_path), 0);
    assert_int_equal(fl_datakey_load(link_path, &l), 0);
    fl_datakey_destroy(&l);
    const char *dir = s_tmp_fresh("dir.key");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(fl_datakey_load(dir, &l), FL_EPERM);
    assert_int_equal(fl_datakey_load(s_tmp_fresh("missing.key"), &l), FL_ENOTFOUND);
    assert_non_null(strstr(fl_errmsg(), "missing.key"));
    fl_datakey_destroy(&k);
}

static void
test_keyfile_malformed(void **state)
{
    (void)state;
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    char good[128];
    snprintf(good, sizeof good, "key = %s\n", hex);
    struct {
        const char *text, *want;
    } cases[] = {
        {"", "no 'key = <hex>' line"},
        {"# only a comment\n", "no 'key = <hex>' line"},
        {"key = 0001\n", "line 1"},
        {"key = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g\n", "hex digits"},
        {"key 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "line 1"},
        {"secret = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "line 1"},
        {"key = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
         "key = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
         "second 'key'"},
        {"# c\n\nkey = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\njunk\n",
         "line 4"},
    };
    const char *path = s_tmp_fresh("bad.key");
    fl_datakey_t *k = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unlink(path);
        s_write_text(path, cases[i].text, 0600);
        assert_int_equal(fl_datakey_load(path, &k), FL_EFORMAT);
        assert_null(k);
        if (!strstr(fl_errmsg(), cases[i].want))
            fail_msg("case %zu: '%s' lacks '%s'", i, fl_errmsg(), cases[i].want);
        assert_non_null(strstr(fl_errmsg(), path));
        /* The detail never echoes the key material. */
        assert_null(strstr(fl_errmsg(), "0a0b0c"));
    }
    /* Comments, blank lines and surrounding blanks are fine. */
    unlink(path);
    char ok[256];
    snprintf(ok, sizeof ok, "# covey data key\n\n   key\t=  %s  \n# end\n", hex);
    s_write_text(path, ok, 0600);
    assert_int_equal(fl_datakey_load(path, &k), 0);
    fl_datakey_destroy(&k);
    unlink(path);
    s_write_text(path, good, 0600);
    assert_int_equal(fl_datakey_load(path, &k), 0);
    fl_datakey_destroy(&k);

    /* Oversized. */
    unlink(path);
    char *huge = fl_xcalloc(1, 5000);
    memset(huge, '#', 4999);
    s_write_text(path, huge, 0600);
    free(huge);
    assert_int_equal(fl_datakey_load(path, &k), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "larger than"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_documented_layout),
        cmocka_unit_test(test_ad_encoding),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_moved_blob),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_truncated_and_foreign),
        cmocka_unit_test(test_inplace),
        cmocka_unit_test(test_keyfile),
        cmocka_unit_test(test_keyfile_malformed),
    };
    return cmocka_run_group_tests(tests, setup_dir, s_tmpdir_teardown);
}
