/*
 * test_sign.c — unit tests of fl_sign: a known-answer signature (RFC 8032
 * key, message and signature computed independently with Python's
 * `cryptography`), the exact signed bytes, refusal of every wrong federation,
 * round, spec, digest, key or modified signature, key files (round trip, the
 * mode rule naming the file, malformed files, public key loading).
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

#include "fl_sign.h"
#include "fl_util.h"
#include "testutil.h"

/* RFC 8032 section 7.1, test 1. */
static const char s_seed_hex[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char s_pk_hex[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
/* Ed25519 signature by that key of the model statement (federation
 * "fed-0123abcd", round 3, spec "mlp:784-256-10", digest bytes 200..231),
 * computed with Python cryptography 48. */
static const char s_sig_hex[] = "ba842a74ed8c4e7ea18ec29f7a0cbe0cc500238ec72e750ea33e0fff0d2db87e"
                                "df8a1938c99db193c633aab91e3afbd89d1bbd4c1f8eb05e97b0d7551b291300";

static int
setup_dir(void **state)
{
    (void)state;
    return s_tmpdir_make("sign") == 0 && sodium_init() >= 0 ? 0 : -1;
}

static void
s_unhex(const char *hex, uint8_t *out, size_t n)
{
    size_t got = 0;
    assert_int_equal(sodium_hex2bin(out, n, hex, strlen(hex), NULL, &got, NULL), 0);
    assert_int_equal(got, n);
}

static void
s_digest(uint8_t d[32])
{
    for (int i = 0; i < 32; i++)
        d[i] = (uint8_t)(200 + i);
}

/* The RFC 8032 key as a covey key file. */
static const char *
s_rfc_keyfile(void)
{
    const char *path = s_tmp_fresh("rfc.key");
    char text[256];
    snprintf(text, sizeof text, "# covey model-signing key (Ed25519)\npublic = %s\nsecret = %s\n",
             s_pk_hex, s_seed_hex);
    s_write_text(path, text, 0600);
    return path;
}

static void
test_known_answer(void **state)
{
    (void)state;
    fl_signkey_t *k = NULL;
    uint8_t pk[32], want_sig[64], sig[64], digest[32];
    s_unhex(s_pk_hex, pk, 32);
    s_unhex(s_sig_hex, want_sig, 64);
    s_digest(digest);

    assert_int_equal(fl_signkey_load(s_rfc_keyfile(), &k), 0);
    assert_memory_equal(fl_signkey_public(k), pk, 32);
    assert_int_equal(fl_sign_model(k, "fed-0123abcd", 3, "mlp:784-256-10", digest, sig), 0);
    assert_memory_equal(sig, want_sig, 64);
    assert_int_equal(fl_verify_model(pk, "fed-0123abcd", 3, "mlp:784-256-10", digest, want_sig), 0);
    fl_signkey_destroy(&k);
    assert_null(k);
    fl_signkey_destroy(&k);
    fl_signkey_destroy(NULL);
}

static void
test_message_bytes(void **state)
{
    (void)state;
    uint8_t msg[FL_SIGN_MSG_MAX], want[FL_SIGN_MSG_MAX], digest[32];
    size_t len = 0, w = 0;
    s_digest(digest);
    assert_int_equal(fl_sign_model_message("fed-0123abcd", 3, "mlp:784-256-10", digest, msg, &len),
                     0);
    memcpy(want, "covey-model-v1\0", 15);
    w = 15;
    want[w++] = 12;
    memcpy(want + w, "fed-0123abcd", 12);
    w += 12;
    memcpy(want + w, "\0\0\0\0\0\0\0\3", 8);
    w += 8;
    want[w++] = 14;
    memcpy(want + w, "mlp:784-256-10", 14);
    w += 14;
    memcpy(want + w, digest, 32);
    w += 32;
    assert_int_equal(len, 83); /* as computed in Python */
    assert_int_equal(len, w);
    assert_memory_equal(msg, want, w);

    /* An empty (NULL) spec is a zero-length field; the longest fields fit. */
    assert_int_equal(fl_sign_model_message("f", 0, NULL, digest, msg, &len), 0);
    assert_int_equal(len, 15 + 2 + 8 + 1 + 32);
    char l255[256];
    memset(l255, 'x', 255);
    l255[255] = '\0';
    assert_int_equal(fl_sign_model_message(l255, INT64_MAX, l255, digest, msg, &len), 0);
    assert_int_equal(len, FL_SIGN_MSG_MAX);

    char l256[257];
    memset(l256, 'x', 256);
    l256[256] = '\0';
    assert_int_equal(fl_sign_model_message(l256, 1, "s", digest, msg, &len), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "federation id"));
    assert_int_equal(fl_sign_model_message("f", 1, l256, digest, msg, &len), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "spec"));
    assert_int_equal(fl_sign_model_message("", 1, "s", digest, msg, &len), FL_EINVAL);
    assert_int_equal(fl_sign_model_message(NULL, 1, "s", digest, msg, &len), FL_EINVAL);
    assert_int_equal(fl_sign_model_message("f", -1, "s", digest, msg, &len), FL_EINVAL);
    assert_int_equal(fl_sign_model_message("f", 1, "s", NULL, msg, &len), FL_EINVAL);
}

static void
test_verify_refuses(void **state)
{
    (void)state;
    fl_signkey_t *k = fl_signkey_generate(), *other = fl_signkey_generate();
    assert_non_null(k);
    assert_non_null(other);
    const uint8_t *pk = fl_signkey_public(k);
    uint8_t digest[32], sig[64], d2[32];
    randombytes_buf(digest, 32);
    assert_int_equal(fl_sign_model(k, "fedA", 5, "softmax:784-10", digest, sig), 0);
    assert_int_equal(fl_verify_model(pk, "fedA", 5, "softmax:784-10", digest, sig), 0);

    assert_int_equal(fl_verify_model(pk, "fedA", 4, "softmax:784-10", digest, sig), FL_ECRYPTO);
    assert_non_null(strstr(fl_errmsg(), "model signature invalid"));
    assert_non_null(strstr(fl_errmsg(), "round 4"));
    assert_int_equal(fl_verify_model(pk, "fedA", 6, "softmax:784-10", digest, sig), FL_ECRYPTO);
    assert_int_equal(fl_verify_model(pk, "fedB", 5, "softmax:784-10", digest, sig), FL_ECRYPTO);
    assert_int_equal(fl_verify_model(pk, "fedA", 5, "softmax:784-11", digest, sig), FL_ECRYPTO);
    assert_int_equal(fl_verify_model(pk, "fedA", 5, "", digest, sig), FL_ECRYPTO);
    assert_int_equal(fl_verify_model(fl_signkey_public(other), "fedA", 5, "softmax:784-10", digest,
                                     sig),
                     FL_ECRYPTO);
    /* Every bit of the digest matters. */
    for (int i = 0; i < 256; i++) {
        memcpy(d2, digest, 32);
        d2[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(fl_verify_model(pk, "fedA", 5, "softmax:784-10", d2, sig), FL_ECRYPTO);
    }
    /* Every bit of the signature matters. */
    for (int i = 0; i < 512; i++) {
        sig[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(fl_verify_model(pk, "fedA", 5, "softmax:784-10", digest, sig),
                         FL_ECRYPTO);
        sig[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* An all-zero public key or signature is refused, not accepted. */
    uint8_t zero[64] = {0};
    assert_int_equal(fl_verify_model(zero, "fedA", 5, "softmax:784-10", digest, sig), FL_ECRYPTO);
    assert_int_equal(fl_verify_model(pk, "fedA", 5, "softmax:784-10", digest, zero), FL_ECRYPTO);
    assert_int_equal(fl_verify_model(pk, "fedA", 5, "softmax:784-10", digest, sig), 0);
    /* Bad arguments are EINVAL, not a crypto verdict. */
    assert_int_equal(fl_verify_model(pk, "", 5, "s", digest, sig), FL_EINVAL);
    assert_int_equal(fl_verify_model(NULL, "f", 5, "s", digest, sig), FL_EINVAL);
    assert_int_equal(fl_sign_model(k, "f", -2, "s", digest, sig), FL_EINVAL);
    fl_signkey_destroy(&k);
    fl_signkey_destroy(&other);
}

static void
test_keyfiles(void **state)
{
    (void)state;
    const char *path = s_tmp_fresh("sign.key");
    char pubpath[300];
    snprintf(pubpath, sizeof pubpath, "%s.pub", path);
    fl_signkey_t *k = fl_signkey_generate(), *l = NULL;
    struct stat st;
    assert_int_equal(fl_signkey_save(k, path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(pubpath, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(fl_signkey_save(k, path), FL_EEXIST);

    assert_int_equal(fl_signkey_load(path, &l), 0);
    assert_memory_equal(fl_signkey_public(l), fl_signkey_public(k), 32);
    uint8_t digest[32] = {7}, sig[64];
    assert_int_equal(fl_sign_model(l, "fedA", 1, "s", digest, sig), 0);
    assert_int_equal(fl_verify_model(fl_signkey_public(k), "fedA", 1, "s", digest, sig), 0);
    fl_signkey_destroy(&l);

    /* Public key: from the .pub file, from hex; a secret file is refused. */
    uint8_t pk[32];
    char hex[65];
    assert_int_equal(fl_sign_pubkey_load(pubpath, pk), 0);
    assert_memory_equal(pk, fl_signkey_public(k), 32);
    fl_sign_pubkey_hex(fl_signkey_public(k), hex);
    assert_int_equal(strlen(hex), 64);
    memset(pk, 0, 32);
    assert_int_equal(fl_sign_pubkey_load(hex, pk), 0);
    assert_memory_equal(pk, fl_signkey_public(k), 32);
    assert_int_equal(fl_sign_pubkey_load(path, pk), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "secret key"));
    assert_int_equal(fl_sign_pubkey_load("nothex", pk), FL_ENOTFOUND);
    hex[10] = 'z';
    assert_int_equal(fl_sign_pubkey_load(hex, pk), FL_ENOTFOUND);

    /* The mode rule names the file. */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(fl_signkey_load(path, &l), FL_EPERM);
    assert_null(l);
    assert_non_null(strstr(fl_errmsg(), path));
    assert_non_null(strstr(fl_errmsg(), "0640"));
    assert_int_equal(chmod(path, 0600), 0);
    fl_signkey_destroy(&k);
}

static void
test_keyfile_malformed(void **state)
{
    (void)state;
    const char *path = s_tmp_fresh("bad.key");
    fl_signkey_t *k = NULL;
    char text[512], other_pk[65];
    /* Another valid public key: the RFC's with one digit changed is not on
     * the key's own derivation. */
    snprintf(other_pk, sizeof other_pk, "%s", s_pk_hex);
    other_pk[0] = 'e';

    struct {
        const char *pub, *secret, *want;
    } cases[] = {
        {other_pk, s_seed_hex, "does not match"},
        {NULL, s_seed_hex, "no 'public = <hex>'"},
        {s_pk_hex, NULL, "no 'secret = <hex>'"},
        {s_pk_hex, "9d61", "hex digits"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = (size_t)snprintf(text, sizeof text, "# test\n");
        if (cases[i].pub)
            n += (size_t)snprintf(text + n, sizeof text - n, "public = %s\n", cases[i].pub);
        if (cases[i].secret)
            snprintf(text + n, sizeof text - n, "secret = %s\n", cases[i].secret);
        s_write_text(path, text, 0600);
        assert_int_equal(fl_signkey_load(path, &k), FL_EFORMAT);
        assert_null(k);
        if (!strstr(fl_errmsg(), cases[i].want))
            fail_msg("case %zu: '%s' lacks '%s'", i, fl_errmsg(), cases[i].want);
        assert_null(strstr(fl_errmsg(), "9d61b1")); /* never echoes the secret */
    }
    snprintf(text, sizeof text, "public = %s\nsecret = %s\nsecret = %s\n", s_pk_hex, s_seed_hex,
             s_seed_hex);
    s_write_text(path, text, 0600);
    assert_int_equal(fl_signkey_load(path, &k), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "line 3"));
    assert_int_equal(fl_signkey_load(s_tmp_fresh("missing.key"), &k), FL_ENOTFOUND);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_message_bytes),
        cmocka_unit_test(test_verify_refuses),
        cmocka_unit_test(test_keyfiles),
        cmocka_unit_test(test_keyfile_malformed),
    };
    return cmocka_run_group_tests(tests, setup_dir, s_tmpdir_teardown);
}
