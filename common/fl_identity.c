/*
 * fl_identity.c — agents' Ed25519 identity keys, derived from their CURVE
 * secret keys, and the 128-byte certificates by which an operator's identity
 * CA binds an identity key to a CURVE public key: derivation, signatures,
 * issuing and checking certificates, their base64url text form and files,
 * and the CA key file. See fl_identity.h for the formats and the reasons.
 */
#include "fl_identity.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "fl_keys.h"

struct fl_identity {
    uint8_t pk[FL_SIGN_PK_LEN];
    uint8_t *sk; /* sodium_malloc(crypto_sign_SECRETKEYBYTES): seed || pk */
};

/* The text form: prefix, then 128 bytes as unpadded base64url (171). */
#define S_CERT_B64_LEN 171
/* What the CA signs: "covey-cert-v1" 0x00 || curve_pk || id_pk. */
#define S_CERT_MSG_LEN (sizeof FL_CERT_DOMAIN + 64)
/* Longest file fl_cert_load reads: a certificate, a newline, some slack. */
#define S_CERT_FILE_MAX 1024

static_assert(crypto_sign_PUBLICKEYBYTES == FL_SIGN_PK_LEN, "public key size");
static_assert(crypto_sign_BYTES == FL_SIGN_SIG_LEN, "signature size");
static_assert(crypto_sign_SEEDBYTES == crypto_generichash_BYTES, "seed = BLAKE2b-256");
static_assert(FL_CERT_LEN == 32 + FL_SIGN_PK_LEN + FL_SIGN_SIG_LEN, "certificate layout");
static_assert(sodium_base64_ENCODED_LEN(FL_CERT_LEN, sodium_base64_VARIANT_URLSAFE_NO_PADDING) ==
                  S_CERT_B64_LEN + 1,
              "base64url length of a certificate");
static_assert(sizeof FL_CERT_PREFIX - 1 + S_CERT_B64_LEN + 1 <= FL_CERT_TEXT_MAX,
              "the text form fits FL_CERT_TEXT_MAX");

/* ------------------------------------------------------------ identity */

int
fl_identity_derive(const char *curve_secret_z85, fl_identity_t **out)
{
    /* One guarded buffer for the CURVE secret (bytes 0..32) and the seed
     * derived from it (32..64): both are secrets and both are wiped. */
    uint8_t *secrets = NULL;
    fl_identity_t *id = NULL;
    int rc;

    if (!out)
        return fl_fail(FL_EINVAL, "identity key: no output");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    /* The detail never quotes the string: it is a secret key. */
    if (!curve_secret_z85 || strnlen(curve_secret_z85, FL_KEY_Z85_LEN + 1) != FL_KEY_Z85_LEN)
        return fl_fail(FL_EINVAL, "identity key: the CURVE secret key is not %d Z85 characters",
                       FL_KEY_Z85_LEN);
    if (!(secrets = sodium_malloc(64)))
        return fl_fail(FL_ENOMEM, "cannot allocate guarded memory for the identity key");
    if (!zmq_z85_decode(secrets, curve_secret_z85)) {
        rc = fl_fail(FL_EINVAL, "identity key: the CURVE secret key is not valid Z85");
        goto out;
    }
    id = fl_xcalloc(1, sizeof *id);
    if (!(id->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES))) {
        rc = fl_fail(FL_ENOMEM, "cannot allocate guarded memory for the identity key");
        goto out;
    }
    crypto_generichash(secrets + 32, 32, (const uint8_t *)FL_IDENTITY_DOMAIN,
                       sizeof FL_IDENTITY_DOMAIN - 1, secrets, 32);
    crypto_sign_seed_keypair(id->pk, id->sk, secrets + 32);
    *out = id;
    id = NULL;
    rc = 0;
out:
    sodium_free(secrets); /* wipes before unmapping */
    fl_identity_destroy(&id);
    return rc;
}

void
fl_identity_destroy(fl_identity_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_identity_t *id = *self_p;
    if (id->sk)
        sodium_free(id->sk); /* wipes before unmapping */
    free(id);
    *self_p = NULL;
}

const uint8_t *
fl_identity_public(const fl_identity_t *id)
{
    assert(id);
    return id->pk;
}

void
fl_identity_sign(const fl_identity_t *id, const uint8_t *msg, size_t len,
                 uint8_t sig[FL_SIGN_SIG_LEN])
{
    assert(id && sig && (msg || len == 0));
    crypto_sign_detached(sig, NULL, msg, len, id->sk);
}

int
fl_identity_verify(const uint8_t id_pk[FL_SIGN_PK_LEN], const uint8_t *msg, size_t len,
                   const uint8_t sig[FL_SIGN_SIG_LEN])
{
    char hex[17];

    if (!id_pk || !sig || (!msg && len))
        return fl_fail(FL_EINVAL, "identity signature: no key, message or signature");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    if (crypto_sign_verify_detached(sig, msg, len, id_pk) != 0) {
        sodium_bin2hex(hex, sizeof hex, id_pk, 8);
        return fl_fail(FL_ECRYPTO, "identity signature invalid: not made by identity key %s..",
                       hex);
    }
    return 0;
}

/* --------------------------------------------------------- certificates */

/* The statement the CA signs (format in fl_identity.h). */
static void
s_cert_message(const uint8_t curve_pk[32], const uint8_t id_pk[32], uint8_t msg[S_CERT_MSG_LEN])
{
    memcpy(msg, FL_CERT_DOMAIN, sizeof FL_CERT_DOMAIN); /* with its NUL */
    memcpy(msg + sizeof FL_CERT_DOMAIN, curve_pk, 32);
    memcpy(msg + sizeof FL_CERT_DOMAIN + 32, id_pk, 32);
}

int
fl_cert_issue(const fl_signkey_t *ca, const uint8_t curve_pk[32], const uint8_t id_pk[32],
              uint8_t cert[FL_CERT_LEN])
{
    static const uint8_t zero[32];
    uint8_t msg[S_CERT_MSG_LEN];

    if (!ca || !curve_pk || !id_pk || !cert)
        return fl_fail(FL_EINVAL, "identity certificate: no CA key, key or output");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    if (sodium_memcmp(curve_pk, zero, 32) == 0)
        return fl_fail(FL_EINVAL, "identity certificate: the agent's CURVE public key is all "
                                  "zeros");
    /* A small-order or non-canonical point would let anyone forge the
     * "identity" signatures; a key derived by fl_identity_derive never is. */
    if (!crypto_core_ed25519_is_valid_point(id_pk))
        return fl_fail(FL_EINVAL, "identity certificate: the identity key is not a valid "
                                  "Ed25519 public key (copy it again from 'covey-agent "
                                  "identity')");
    s_cert_message(curve_pk, id_pk, msg);
    /* Copied first so that curve_pk or id_pk may point into cert. */
    memmove(FL_CERT_CURVE_PK(cert), curve_pk, 32);
    memmove(FL_CERT_ID_PK(cert), id_pk, 32);
    fl_signkey_sign(ca, msg, sizeof msg, FL_CERT_SIG(cert));
    return 0;
}

int
fl_cert_verify(const uint8_t ca_pk[FL_SIGN_PK_LEN], const uint8_t cert[FL_CERT_LEN])
{
    uint8_t msg[S_CERT_MSG_LEN];
    char hex[17];

    if (!ca_pk || !cert)
        return fl_fail(FL_EINVAL, "identity certificate: no CA key or no certificate");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    s_cert_message(FL_CERT_CURVE_PK(cert), FL_CERT_ID_PK(cert), msg);
    if (crypto_sign_verify_detached(FL_CERT_SIG(cert), msg, sizeof msg, ca_pk) != 0) {
        sodium_bin2hex(hex, sizeof hex, ca_pk, 8);
        return fl_fail(FL_ECRYPTO,
                       "identity certificate not signed by the identity CA %s.. (issued by "
                       "another CA, or modified)",
                       hex);
    }
    return 0;
}

void
fl_cert_format(const uint8_t cert[FL_CERT_LEN], char out[FL_CERT_TEXT_MAX])
{
    const size_t plen = sizeof FL_CERT_PREFIX - 1;
    memcpy(out, FL_CERT_PREFIX, plen);
    sodium_bin2base64(out + plen, FL_CERT_TEXT_MAX - plen, cert, FL_CERT_LEN,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
fl_cert_parse(const char *text, uint8_t cert[FL_CERT_LEN])
{
    const size_t plen = sizeof FL_CERT_PREFIX - 1;
    uint8_t bin[FL_CERT_LEN];
    size_t n, bin_len = 0;
    const char *end = NULL;

    if (!cert)
        return fl_fail(FL_EINVAL, "identity certificate: no output");
    if (!text)
        return fl_fail(FL_EFORMAT, "identity certificate is empty");
    /* A pasted certificate often brings a newline or blanks along. */
    while (isspace((unsigned char)*text))
        text++;
    n = strnlen(text, S_CERT_FILE_MAX + 1);
    if (n > S_CERT_FILE_MAX)
        return fl_fail(FL_EFORMAT, "identity certificate is too long (over %d characters)",
                       S_CERT_FILE_MAX);
    while (n && isspace((unsigned char)text[n - 1]))
        n--;
    if (n == 0)
        return fl_fail(FL_EFORMAT, "identity certificate is empty");
    if (n < plen || memcmp(text, FL_CERT_PREFIX, plen) != 0)
        return fl_fail(FL_EFORMAT, "not a Covey identity certificate (it should start with '%s')",
                       FL_CERT_PREFIX);
    const char *b64 = text + plen;
    size_t b64_len = n - plen;
    for (size_t i = 0; i < b64_len; i++) {
        char ch = b64[i];
        if (!(isalnum((unsigned char)ch) || ch == '-' || ch == '_'))
            return fl_fail(FL_EFORMAT,
                           "identity certificate is not valid base64url (character %zu); copy "
                           "it again",
                           plen + i + 1);
    }
    if (b64_len != S_CERT_B64_LEN)
        return fl_fail(FL_EFORMAT,
                       "identity certificate has %zu characters after '%s', expected %d "
                       "(cut off, or something appended?)",
                       b64_len, FL_CERT_PREFIX, S_CERT_B64_LEN);
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    /* With the length right, only the spare bits of the last character can
     * make the decoding fail: a typo there. */
    if (sodium_base642bin(bin, sizeof bin, b64, b64_len, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        bin_len != FL_CERT_LEN || end != b64 + b64_len)
        return fl_fail(FL_EFORMAT, "identity certificate is not valid base64url (its last "
                                   "character is mistyped); copy it again");
    memcpy(cert, bin, FL_CERT_LEN);
    return 0;
}

int
fl_cert_load(const char *path_or_text, uint8_t cert[FL_CERT_LEN])
{
    uint8_t *buf = NULL;
    size_t len = 0;
    struct stat st;
    int rc;

    if (!path_or_text || !*path_or_text || !cert)
        return fl_fail(FL_EINVAL, "identity certificate: none given");
    /* An existing file of that name wins over the reading as text. */
    if (stat(path_or_text, &st) != 0 && errno == ENOENT) {
        const char *t = path_or_text;
        while (isspace((unsigned char)*t))
            t++;
        /* Any "covey-cert..." is meant as one: the parser says what is wrong. */
        if (strncmp(t, "covey-cert", 10) == 0)
            return fl_cert_parse(path_or_text, cert);
        return fl_fail(FL_ENOTFOUND,
                       "identity certificate '%.80s' is neither a certificate ('%s...') nor an "
                       "existing file",
                       path_or_text, FL_CERT_PREFIX);
    }
    rc = fl_read_file(path_or_text, S_CERT_FILE_MAX, &buf, &len);
    if (rc == FL_ERANGE)
        rc = fl_fail(FL_EFORMAT, "identity certificate file '%s' is larger than %d bytes: not a "
                                 "certificate",
                     path_or_text, S_CERT_FILE_MAX);
    if (rc < 0)
        goto out;
    if (memchr(buf, 0, len)) {
        rc = fl_fail(FL_EFORMAT, "identity certificate file '%s' holds a NUL byte: not a "
                                 "certificate",
                     path_or_text);
        goto out;
    }
    if (fl_cert_parse((const char *)buf, cert) < 0) {
        /* Name the file: the parser's detail alone does not say which one. */
        rc = fl_fail(FL_EFORMAT, "identity certificate file '%s': %s", path_or_text, fl_errmsg());
        goto out;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

int
fl_cert_save(const uint8_t cert[FL_CERT_LEN], const char *path)
{
    char text[FL_CERT_TEXT_MAX + 1];

    if (!cert || !path || !*path)
        return fl_fail(FL_EINVAL, "identity certificate: no certificate or no path");
    fl_cert_format(cert, text);
    size_t n = strlen(text);
    text[n++] = '\n';
    return fl_write_file_atomic(path, text, n, 0644);
}

/* ------------------------------------------------------------- CA key */

int
fl_identity_ca_save(const fl_signkey_t *ca, const char *path)
{
    return fl_signkey_save_labelled(
        ca, path, "covey identity CA key (Ed25519) -- keep offline, away from the coordinator",
        "covey identity CA public key (Ed25519)");
}
