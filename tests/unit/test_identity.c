/*
 * test_identity.c — unit tests of fl_identity: the identity key derived from
 * a CURVE secret (deterministic, distinct per key, a golden vector computed
 * independently with Python's hashlib and `cryptography`, and the derivation
 * redone here with libsodium), identity signatures, certificates (a golden
 * certificate by the RFC 8032 key, another CA refused, every single-byte
 * change refused, an invalid identity key refused at issue), the text form
 * and its parse errors, certificate files, and the CA key files.
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
#include <zmq.h>

#include "fl_identity.h"
#include "fl_keys.h"
#include "fl_sign.h"
#include "fl_util.h"
#include "testutil.h"

/* RFC 26 (CurveZMQ) example keys: the client's secret and public key, and
 * the server's secret. */
static const char s_curve_secret[] = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";
static const char s_curve_public[] = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
static const char s_curve_secret2[] = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
/* Their identity keys: seed = BLAKE2b-256(key = CURVE secret, msg =
 * "covey-identity-v1"), Ed25519 public key of that seed; computed with
 * Python 3 hashlib and cryptography 48. */
static const char s_id_pk_hex[] =
    "978a6ccb3e6da987641e0e9c72ffa6944a2f3ed8416f2fd7f3ebc3a6d848df00";
static const char s_id_pk2_hex[] =
    "6be364017a094149ef12df901b912e6147a1386911ab4a1d0cce39cc7014155b";
/* RFC 8032 section 7.1, test 1, as the identity CA. */
static const char s_ca_seed_hex[] =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char s_ca_pk_hex[] =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
/* The certificate that CA issues for the client key and s_id_pk_hex,
 * computed with Python cryptography 48 (Ed25519 is deterministic). */
static const char s_cert_text[] =
    "covey-cert1.u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRiXimzLPm2ph2QeDpxy_6aUSi8-2EFvL9fz68"
    "Om2EjfAIss_3sUZ1nyaSjHHHdg79u-p7uITBLcT25L0mYKbsqp-JJJmku8HEz2VHLD0gxto7vJFeyaPNBykLntP6O"
    "YkAQ";

static int
setup_dir(void **state)
{
    (void)state;
    return s_tmpdir_make("identity") == 0 && sodium_init() >= 0 ? 0 : -1;
}

static void
s_unhex(const char *hex, uint8_t *out, size_t n)
{
    size_t got = 0;
    assert_int_equal(sodium_hex2bin(out, n, hex, strlen(hex), NULL, &got, NULL), 0);
    assert_int_equal(got, n);
}

/* The RFC 8032 key as a CA key file. */
static fl_signkey_t *
s_rfc_ca(void)
{
    const char *path = s_tmp_fresh("rfc-ca.key");
    char text[256];
    fl_signkey_t *k = NULL;
    snprintf(text, sizeof text, "# covey identity CA key\npublic = %s\nsecret = %s\n",
             s_ca_pk_hex, s_ca_seed_hex);
    s_write_text(path, text, 0600);
    assert_int_equal(fl_signkey_load(path, &k), 0);
    return k;
}

/* A certificate by a fresh CA for the RFC 26 client key. */
static void
s_issue(const fl_signkey_t *ca, uint8_t cert[FL_CERT_LEN])
{
    uint8_t curve_pk[32], id_pk[32];
    assert_non_null(zmq_z85_decode(curve_pk, s_curve_public));
    s_unhex(s_id_pk_hex, id_pk, 32);
    assert_int_equal(fl_cert_issue(ca, curve_pk, id_pk, cert), 0);
}

static void
test_derive(void **state)
{
    (void)state;
    fl_identity_t *a = NULL, *b = NULL, *c = NULL;
    uint8_t want[32], want2[32];
    s_unhex(s_id_pk_hex, want, 32);
    s_unhex(s_id_pk2_hex, want2, 32);

    assert_int_equal(fl_identity_derive(s_curve_secret, &a), 0);
    assert_int_equal(fl_identity_derive(s_curve_secret, &b), 0);
    assert_int_equal(fl_identity_derive(s_curve_secret2, &c), 0);
    assert_memory_equal(fl_identity_public(a), want, 32); /* golden vector */
    assert_memory_equal(fl_identity_public(b), want, 32); /* deterministic */
    assert_memory_equal(fl_identity_public(c), want2, 32);
    assert_memory_not_equal(fl_identity_public(a), fl_identity_public(c), 32);

    /* The derivation of fl_identity.h, redone with libsodium alone. */
    uint8_t curve_sk[32], seed[32], pk[32], sk[64];
    assert_non_null(zmq_z85_decode(curve_sk, s_curve_secret));
    crypto_generichash(seed, sizeof seed, (const uint8_t *)"covey-identity-v1", 17, curve_sk,
                       sizeof curve_sk);
    crypto_sign_seed_keypair(pk, sk, seed);
    assert_memory_equal(pk, want, 32);
    /* The same key signs: a signature by sk verifies as the identity's. */
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, (const uint8_t *)"m", 1, sk);
    assert_int_equal(fl_identity_verify(fl_identity_public(a), (const uint8_t *)"m", 1, sig), 0);

    /* Not a CURVE secret: refused, *out untouched, never echoed. */
    fl_identity_t *none = NULL;
    assert_int_equal(fl_identity_derive("short", &none), FL_EINVAL);
    assert_int_equal(fl_identity_derive("D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%c~", &none),
                     FL_EINVAL); /* '~' is not Z85 */
    assert_null(strstr(fl_errmsg(), "IlAW"));
    assert_int_equal(fl_identity_derive(NULL, &none), FL_EINVAL);
    assert_null(none);

    fl_identity_destroy(&a);
    assert_null(a);
    fl_identity_destroy(&a); /* idempotent */
    fl_identity_destroy(NULL);
    fl_identity_destroy(&b);
    fl_identity_destroy(&c);
}

static void
test_sign_verify(void **state)
{
    (void)state;
    fl_identity_t *id = NULL, *other = NULL;
    uint8_t msg[100], sig[FL_SIGN_SIG_LEN];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)i;
    assert_int_equal(fl_identity_derive(s_curve_secret, &id), 0);
    assert_int_equal(fl_identity_derive(s_curve_secret2, &other), 0);

    fl_identity_sign(id, msg, sizeof msg, sig);
    assert_int_equal(fl_identity_verify(fl_identity_public(id), msg, sizeof msg, sig), 0);
    assert_int_equal(fl_identity_verify(fl_identity_public(other), msg, sizeof msg, sig),
                     FL_ECRYPTO);
    assert_non_null(strstr(fl_errmsg(), "identity signature invalid"));
    msg[50] ^= 0x08;
    assert_int_equal(fl_identity_verify(fl_identity_public(id), msg, sizeof msg, sig), FL_ECRYPTO);
    msg[50] ^= 0x08;
    sig[10] ^= 0x01;
    assert_int_equal(fl_identity_verify(fl_identity_public(id), msg, sizeof msg, sig), FL_ECRYPTO);
    sig[10] ^= 0x01;
    assert_int_equal(fl_identity_verify(fl_identity_public(id), msg, sizeof msg, sig), 0);
    /* The empty message is a message too. */
    fl_identity_sign(id, NULL, 0, sig);
    assert_int_equal(fl_identity_verify(fl_identity_public(id), NULL, 0, sig), 0);

    fl_identity_destroy(&id);
    fl_identity_destroy(&other);
}

static void
test_cert_golden(void **state)
{
    (void)state;
    fl_signkey_t *ca = s_rfc_ca();
    uint8_t cert[FL_CERT_LEN], parsed[FL_CERT_LEN], ca_pk[32], curve_pk[32], id_pk[32];
    char text[FL_CERT_TEXT_MAX];

    s_issue(ca, cert);
    fl_cert_format(cert, text);
    assert_string_equal(text, s_cert_text);
    assert_int_equal(strlen(text), 183);
    assert_int_equal(fl_cert_parse(s_cert_text, parsed), 0);
    assert_memory_equal(parsed, cert, FL_CERT_LEN);

    /* The fields are where fl_identity.h says. */
    assert_non_null(zmq_z85_decode(curve_pk, s_curve_public));
    s_unhex(s_id_pk_hex, id_pk, 32);
    assert_memory_equal(FL_CERT_CURVE_PK(cert), curve_pk, 32);
    assert_memory_equal(FL_CERT_ID_PK(cert), id_pk, 32);
    /* ... and the signature is over the documented statement. */
    uint8_t msg[14 + 64];
    memcpy(msg, "covey-cert-v1", 14); /* with its NUL */
    memcpy(msg + 14, curve_pk, 32);
    memcpy(msg + 46, id_pk, 32);
    s_unhex(s_ca_pk_hex, ca_pk, 32);
    assert_int_equal(crypto_sign_verify_detached(FL_CERT_SIG(cert), msg, sizeof msg, ca_pk), 0);
    assert_int_equal(fl_cert_verify(ca_pk, cert), 0);
    fl_signkey_destroy(&ca);
}

static void
test_cert_verify(void **state)
{
    (void)state;
    fl_signkey_t *ca = fl_signkey_generate(), *other = fl_signkey_generate();
    uint8_t cert[FL_CERT_LEN], bad[FL_CERT_LEN];
    char prefix[17];
    assert_non_null(ca);
    assert_non_null(other);

    s_issue(ca, cert);
    assert_int_equal(fl_cert_verify(fl_signkey_public(ca), cert), 0);
    /* Another CA's key: refused, naming the CA that was asked. */
    assert_int_equal(fl_cert_verify(fl_signkey_public(other), cert), FL_ECRYPTO);
    sodium_bin2hex(prefix, sizeof prefix, fl_signkey_public(other), 8);
    assert_non_null(strstr(fl_errmsg(), "not signed by the identity CA"));
    assert_non_null(strstr(fl_errmsg(), prefix));
    /* Any single byte changed, in any field: refused. */
    for (size_t i = 0; i < FL_CERT_LEN; i++) {
        memcpy(bad, cert, FL_CERT_LEN);
        bad[i] ^= (uint8_t)(1u << (i % 8));
        if (fl_cert_verify(fl_signkey_public(ca), bad) != FL_ECRYPTO)
            fail_msg("a certificate with byte %zu changed was accepted", i);
    }
    assert_int_equal(fl_cert_verify(fl_signkey_public(ca), cert), 0);
    fl_signkey_destroy(&ca);
    fl_signkey_destroy(&other);
}

static void
test_cert_issue_refuses(void **state)
{
    (void)state;
    fl_signkey_t *ca = fl_signkey_generate();
    uint8_t cert[FL_CERT_LEN], curve_pk[32], id_pk[32], zero[32] = {0};
    assert_non_null(zmq_z85_decode(curve_pk, s_curve_public));
    s_unhex(s_id_pk_hex, id_pk, 32);

    memset(cert, 0xAA, sizeof cert);
    /* Not a point on the curve (y = 2 has no x). */
    uint8_t off_curve[32] = {2};
    assert_int_equal(fl_cert_issue(ca, curve_pk, off_curve, cert), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "not a valid Ed25519 public key"));
    /* Small order: the identity (y = 1) and zero (y = 0, order 4). */
    uint8_t identity_point[32] = {1};
    assert_int_equal(fl_cert_issue(ca, curve_pk, identity_point, cert), FL_EINVAL);
    assert_int_equal(fl_cert_issue(ca, curve_pk, zero, cert), FL_EINVAL);
    /* An all-zero CURVE key is no agent's. */
    assert_int_equal(fl_cert_issue(ca, zero, id_pk, cert), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "all zeros"));
    assert_int_equal(fl_cert_issue(NULL, curve_pk, id_pk, cert), FL_EINVAL);
    for (size_t i = 0; i < sizeof cert; i++)
        assert_int_equal(cert[i], 0xAA); /* nothing written */
    assert_int_equal(fl_cert_issue(ca, curve_pk, id_pk, cert), 0);
    fl_signkey_destroy(&ca);
}

static void
test_cert_text(void **state)
{
    (void)state;
    fl_signkey_t *ca = fl_signkey_generate();
    uint8_t cert[FL_CERT_LEN], back[FL_CERT_LEN];
    char text[FL_CERT_TEXT_MAX], buf[512];
    s_issue(ca, cert);
    fl_cert_format(cert, text);
    assert_int_equal(strncmp(text, FL_CERT_PREFIX, strlen(FL_CERT_PREFIX)), 0);
    assert_int_equal(fl_cert_parse(text, back), 0);
    assert_memory_equal(back, cert, FL_CERT_LEN);
    /* Surrounding whitespace is not part of it. */
    snprintf(buf, sizeof buf, " \t\n%s\r\n\n", text);
    memset(back, 0, sizeof back);
    assert_int_equal(fl_cert_parse(buf, back), 0);
    assert_memory_equal(back, cert, FL_CERT_LEN);

    struct {
        const char *name, *want;
        char text[512];
    } cases[] = {
        {"empty", "empty", ""},
        {"blank", "empty", " \n "},
        {"bad prefix", "should start with 'covey-cert1.'", ""},
        {"other version", "should start with", ""},
        {"short", "expected 171", ""},
        {"long", "expected 171", ""},
        {"bad base64", "not valid base64url (character 50)", ""},
        {"trailing junk", "not valid base64url (character 184)", ""},
        {"padding", "not valid base64url", ""},
        {"last character", "last character", ""},
    };
    snprintf(cases[2].text, sizeof cases[2].text, "covey-token1.%s", text + 12);
    snprintf(cases[3].text, sizeof cases[3].text, "covey-cert2.%s", text + 12);
    snprintf(cases[4].text, sizeof cases[4].text, "%.182s", text);
    snprintf(cases[5].text, sizeof cases[5].text, "%sA", text);
    snprintf(cases[6].text, sizeof cases[6].text, "%s", text);
    cases[6].text[49] = '+'; /* standard base64, not base64url */
    snprintf(cases[7].text, sizeof cases[7].text, "%s junk", text);
    snprintf(cases[8].text, sizeof cases[8].text, "%s=", text);
    /* 128 = 42 * 3 + 2: the last character carries 2 spare bits, which must
     * be zero; 'B' sets one. */
    snprintf(cases[9].text, sizeof cases[9].text, "%.182s%c", text,
             text[182] == 'B' ? 'C' : 'B');
    char big[2048];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big, FL_CERT_PREFIX, 12);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(back, 0x55, sizeof back);
        if (fl_cert_parse(cases[i].text, back) != FL_EFORMAT)
            fail_msg("case '%s' was not refused with FL_EFORMAT", cases[i].name);
        if (!strstr(fl_errmsg(), cases[i].want))
            fail_msg("case '%s': '%s' lacks '%s'", cases[i].name, fl_errmsg(), cases[i].want);
        for (size_t j = 0; j < sizeof back; j++)
            assert_int_equal(back[j], 0x55); /* no partial output */
    }
    assert_int_equal(fl_cert_parse(big, back), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "too long"));
    assert_int_equal(fl_cert_parse(NULL, back), FL_EFORMAT);
    fl_signkey_destroy(&ca);
}

static void
test_cert_files(void **state)
{
    (void)state;
    fl_signkey_t *ca = fl_signkey_generate();
    uint8_t cert[FL_CERT_LEN], back[FL_CERT_LEN];
    char text[FL_CERT_TEXT_MAX], want[FL_CERT_TEXT_MAX + 1];
    s_issue(ca, cert);
    fl_cert_format(cert, text);

    /* From the text. */
    assert_int_equal(fl_cert_load(text, back), 0);
    assert_memory_equal(back, cert, FL_CERT_LEN);
    /* Saved: the text form and a newline, 0644; loaded back from the file. */
    const char *path = s_tmp_fresh("agent.cert");
    assert_int_equal(fl_cert_save(cert, path), 0);
    char *got = s_read_text(path);
    snprintf(want, sizeof want, "%s\n", text);
    assert_string_equal(got, want);
    free(got);
    assert_int_equal(s_file_mode(path), 0644);
    memset(back, 0, sizeof back);
    assert_int_equal(fl_cert_load(path, back), 0);
    assert_memory_equal(back, cert, FL_CERT_LEN);
    /* Saved again: replaced. */
    uint8_t cert2[FL_CERT_LEN];
    s_issue(ca, cert2);
    cert2[100] ^= 1;
    assert_int_equal(fl_cert_save(cert2, path), 0);
    assert_int_equal(fl_cert_load(path, back), 0);
    assert_memory_equal(back, cert2, FL_CERT_LEN);

    /* Neither a certificate nor a file. */
    assert_int_equal(fl_cert_load(s_tmp_fresh("missing.cert"), back), FL_ENOTFOUND);
    assert_non_null(strstr(fl_errmsg(), "neither"));
    assert_int_equal(fl_cert_load("covey-token1.abc", back), FL_ENOTFOUND);
    /* Looks like a certificate but is not one: the parse error. */
    assert_int_equal(fl_cert_load("covey-cert1.abc", back), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "expected 171"));
    assert_int_equal(fl_cert_load(" covey-cert2.abc", back), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "should start with 'covey-cert1.'"));
    /* A file that is not a certificate: refused, naming the file. */
    const char *junk = s_tmp_fresh("junk.cert");
    s_write_text(junk, "hello\n", 0644);
    assert_int_equal(fl_cert_load(junk, back), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), junk));
    assert_non_null(strstr(fl_errmsg(), "should start with"));
    s_write_file(junk, "covey-cert1.\0abc", 16, 0644);
    assert_int_equal(fl_cert_load(junk, back), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "NUL"));
    char big[3000];
    memset(big, ' ', sizeof big);
    s_write_file(junk, big, sizeof big, 0644);
    assert_int_equal(fl_cert_load(junk, back), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), junk));
    /* A directory is not a certificate file. */
    assert_int_equal(fl_cert_load(s_dir, back), FL_EIO);
    fl_signkey_destroy(&ca);
}

static void
test_ca_files(void **state)
{
    (void)state;
    fl_signkey_t *ca = fl_signkey_generate(), *back = NULL;
    uint8_t pk[FL_SIGN_PK_LEN], cert[FL_CERT_LEN];
    const char *path = s_tmp_fresh("ca.key");
    char pubpath[512];
    snprintf(pubpath, sizeof pubpath, "%s.pub", path);
    unlink(pubpath);

    assert_int_equal(fl_identity_ca_save(ca, path), 0);
    assert_int_equal(s_file_mode(path), 0600);
    assert_int_equal(s_file_mode(pubpath), 0644);
    char *text = s_read_text(path);
    assert_non_null(strstr(text, "# covey identity CA key (Ed25519) -- keep offline, away from "
                                 "the coordinator\npublic = "));
    free(text);
    text = s_read_text(pubpath);
    assert_int_equal(strncmp(text, "# covey identity CA public key (Ed25519)\npublic = ", 50), 0);
    assert_null(strstr(text, "secret"));
    free(text);

    /* Never replaced. */
    fl_signkey_t *other = fl_signkey_generate();
    assert_int_equal(fl_identity_ca_save(other, path), FL_EEXIST);
    fl_signkey_destroy(&other);

    /* Read back by the signing-key loaders, the same key. */
    assert_int_equal(fl_signkey_load(path, &back), 0);
    assert_memory_equal(fl_signkey_public(back), fl_signkey_public(ca), FL_SIGN_PK_LEN);
    assert_int_equal(fl_sign_pubkey_load(pubpath, pk), 0);
    assert_memory_equal(pk, fl_signkey_public(ca), FL_SIGN_PK_LEN);
    /* The secret file is not a public one. */
    assert_int_equal(fl_sign_pubkey_load(path, pk), FL_EFORMAT);
    /* What the loaded key issues, the saved public key verifies. */
    s_issue(back, cert);
    assert_int_equal(fl_cert_verify(pk, cert), 0);

    /* The model-signing files keep their own header. */
    const char *mpath = s_tmp_fresh("model.key");
    snprintf(pubpath, sizeof pubpath, "%s.pub", mpath);
    unlink(pubpath);
    assert_int_equal(fl_signkey_save(ca, mpath), 0);
    text = s_read_text(mpath);
    assert_int_equal(strncmp(text, "# covey model-signing key (Ed25519) -- keep private\n", 52), 0);
    free(text);
    /* A label of two lines would write a file that cannot be read back. */
    assert_int_equal(fl_signkey_save_labelled(ca, s_tmp_fresh("x.key"), "a\nb", "c"), FL_EINVAL);
    assert_int_equal(access(s_tmp_path("x.key"), F_OK), -1);

    fl_signkey_destroy(&ca);
    fl_signkey_destroy(&back);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derive),          cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_cert_golden),     cmocka_unit_test(test_cert_verify),
        cmocka_unit_test(test_cert_issue_refuses), cmocka_unit_test(test_cert_text),
        cmocka_unit_test(test_cert_files),      cmocka_unit_test(test_ca_files),
    };
    return cmocka_run_group_tests(tests, setup_dir, s_tmpdir_teardown);
}
