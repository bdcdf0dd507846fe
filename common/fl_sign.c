/*
 * fl_sign.c — Ed25519 model signatures (crypto_sign_detached) over a
 * domain-separated statement of federation, model round, spec and digest,
 * and the signing key files. See fl_sign.h for the formats and decisions.
 */
#include "fl_sign.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_secfile.h"

struct fl_signkey {
    uint8_t pk[FL_SIGN_PK_LEN];
    uint8_t *sk; /* sodium_malloc(crypto_sign_SECRETKEYBYTES): seed || pk */
};

/* The comment lines of the model-signing key files (fl_signkey_save). */
static const char s_secret_label[] = "covey model-signing key (Ed25519) -- keep private";
static const char s_public_label[] = "covey model-signing public key (Ed25519)";

static_assert(crypto_sign_PUBLICKEYBYTES == FL_SIGN_PK_LEN, "public key size");
static_assert(crypto_sign_BYTES == FL_SIGN_SIG_LEN, "signature size");
static_assert(crypto_sign_SEEDBYTES == 32, "seed size");

static fl_signkey_t *
s_signkey_alloc(void)
{
    if (sodium_init() < 0) {
        fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
        return NULL;
    }
    fl_signkey_t *k = fl_xcalloc(1, sizeof *k);
    k->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    if (!k->sk) {
        free(k);
        fl_fail(FL_ENOMEM, "cannot allocate guarded memory for the signing key");
        return NULL;
    }
    sodium_memzero(k->sk, crypto_sign_SECRETKEYBYTES);
    return k;
}

fl_signkey_t *
fl_signkey_generate(void)
{
    fl_signkey_t *k = s_signkey_alloc();
    if (k)
        crypto_sign_keypair(k->pk, k->sk);
    return k;
}

void
fl_signkey_destroy(fl_signkey_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_signkey_t *k = *self_p;
    sodium_free(k->sk); /* wipes before unmapping */
    free(k);
    *self_p = NULL;
}

const uint8_t *
fl_signkey_public(const fl_signkey_t *k)
{
    return k->pk;
}

void
fl_signkey_sign(const fl_signkey_t *k, const uint8_t *msg, size_t len,
                uint8_t sig[FL_SIGN_SIG_LEN])
{
    assert(k && sig && (msg || len == 0));
    crypto_sign_detached(sig, NULL, msg, len, k->sk);
}

void
fl_sign_pubkey_hex(const uint8_t pk[FL_SIGN_PK_LEN], char out[2 * FL_SIGN_PK_LEN + 1])
{
    sodium_bin2hex(out, 2 * FL_SIGN_PK_LEN + 1, pk, FL_SIGN_PK_LEN);
}

int
fl_signkey_save(const fl_signkey_t *k, const char *path)
{
    return fl_signkey_save_labelled(k, path, s_secret_label, s_public_label);
}

int
fl_signkey_save_labelled(const fl_signkey_t *k, const char *path, const char *secret_label,
                         const char *public_label)
{
    enum { TEXT_MAX = 512, LABEL_MAX = 200 };
    char pubpath[PATH_MAX], pubtext[TEXT_MAX], hex[2 * FL_SIGN_PK_LEN + 1];
    char *text = NULL;
    int rc, n;

    if (!k || !path || !*path || !secret_label || !public_label)
        return fl_fail(FL_EINVAL, "fl_signkey_save: no key, path or label");
    /* A label is one comment line: a line break in it would start a line the
     * loader does not know, and the file could not be read back. */
    if (strnlen(secret_label, LABEL_MAX) >= LABEL_MAX || strchr(secret_label, '\n') ||
        strnlen(public_label, LABEL_MAX) >= LABEL_MAX || strchr(public_label, '\n'))
        return fl_fail(FL_EINVAL, "key file '%s': a label must be one line under %d characters",
                       path, LABEL_MAX);
    if ((size_t)snprintf(pubpath, sizeof pubpath, "%s.pub", path) >= sizeof pubpath)
        return fl_fail(FL_EINVAL, "key file '%s': path too long", path);
    text = sodium_malloc(TEXT_MAX);
    if (!text)
        return fl_fail(FL_ENOMEM, "key file '%s': cannot allocate guarded memory", path);
    fl_sign_pubkey_hex(k->pk, hex);
    n = snprintf(text, TEXT_MAX, "# %s\npublic = %s\nsecret = ", secret_label, hex);
    size_t len = (size_t)n;
    /* The first 32 bytes of libsodium's secret key are the seed. */
    sodium_bin2hex(text + len, TEXT_MAX - len, k->sk, crypto_sign_SEEDBYTES);
    len += 2 * crypto_sign_SEEDBYTES;
    text[len++] = '\n';
    assert(len < TEXT_MAX); /* labels are capped: 2 + 199 + 1 + 73 + 74 */

    /* The secret first: if it cannot be written, no .pub suggests it was. */
    rc = fl_secfile_write_new(path, text, len, 0600);
    sodium_memzero(text, TEXT_MAX);
    sodium_free(text);
    if (rc < 0)
        return rc;
    n = snprintf(pubtext, sizeof pubtext, "# %s\npublic = %s\n", public_label, hex);
    assert(n > 0 && (size_t)n < sizeof pubtext);
    rc = fl_write_file_atomic(pubpath, pubtext, (size_t)n, 0644);
    if (rc < 0) {
        /* Keep the promise: no new secret file without its public half. */
        unlink(path);
        return rc;
    }
    return 0;
}

int
fl_signkey_load(const char *path, fl_signkey_t **out)
{
    char *text = NULL;
    size_t len = 0;
    fl_signkey_t *k = NULL;
    uint8_t *seed = NULL;
    uint8_t derived[FL_SIGN_PK_LEN];
    int rc;

    if (!path || !*path || !out)
        return fl_fail(FL_EINVAL, "fl_signkey_load: path and out are required");
    if ((rc = fl_secfile_read(path, true, &text, &len)) < 0)
        goto out;
    if (!(k = s_signkey_alloc())) {
        rc = FL_ENOMEM;
        goto out;
    }
    /* The seed gets its own guarded buffer: seed_keypair overwrites sk while
     * it still reads the seed, so the two must not alias. */
    if (!(seed = sodium_malloc(crypto_sign_SEEDBYTES))) {
        rc = fl_fail(FL_ENOMEM, "cannot allocate guarded memory for the signing key");
        goto out;
    }
    fl_secfile_field_t fields[2] = {
        {.name = "public", .out = k->pk, .len = FL_SIGN_PK_LEN},
        {.name = "secret", .out = seed, .len = crypto_sign_SEEDBYTES},
    };
    if ((rc = fl_secfile_parse_hex(path, text, len, fields, 2)) < 0)
        goto out;
    crypto_sign_seed_keypair(derived, k->sk, seed);
    if (sodium_memcmp(derived, k->pk, FL_SIGN_PK_LEN) != 0) {
        rc = fl_fail(FL_EFORMAT, "key file '%s': the public key does not match the secret key",
                     path);
        goto out;
    }
    *out = k;
    k = NULL;
    rc = 0;
out:
    if (seed)
        sodium_free(seed); /* wipes */
    fl_signkey_destroy(&k);
    fl_secfile_free(&text);
    return rc;
}

int
fl_sign_pubkey_load(const char *path_or_hex, uint8_t pk[FL_SIGN_PK_LEN])
{
    char *text = NULL;
    uint8_t *secret = NULL;
    uint8_t tmp[FL_SIGN_PK_LEN];
    size_t len = 0, bin_len = 0;
    const char *end = NULL;
    struct stat st;
    int rc;

    if (!path_or_hex || !*path_or_hex || !pk)
        return fl_fail(FL_EINVAL, "public signing key: empty");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    /* An existing file of that name wins over the reading as hex. */
    if (stat(path_or_hex, &st) != 0 && errno == ENOENT) {
        size_t n = strlen(path_or_hex);
        if (n == 2 * FL_SIGN_PK_LEN &&
            sodium_hex2bin(tmp, sizeof tmp, path_or_hex, n, NULL, &bin_len, &end) == 0 &&
            bin_len == FL_SIGN_PK_LEN && end == path_or_hex + n) {
            memcpy(pk, tmp, FL_SIGN_PK_LEN);
            return 0;
        }
        return fl_fail(FL_ENOTFOUND,
                       "public signing key '%s' is neither 64 hex digits nor an existing file",
                       path_or_hex);
    }
    if ((rc = fl_secfile_read(path_or_hex, false, &text, &len)) < 0)
        goto out;
    if (!(secret = sodium_malloc(crypto_sign_SEEDBYTES))) {
        rc = fl_fail(FL_ENOMEM, "cannot allocate guarded memory");
        goto out;
    }
    fl_secfile_field_t fields[2] = {
        {.name = "public", .out = tmp, .len = FL_SIGN_PK_LEN},
        {.name = "secret", .out = secret, .len = crypto_sign_SEEDBYTES, .optional = true},
    };
    if ((rc = fl_secfile_parse_hex(path_or_hex, text, len, fields, 2)) < 0)
        goto out;
    if (fields[1].found) {
        rc = fl_fail(FL_EFORMAT, "key file '%s' holds a secret key; give the public (.pub) file",
                     path_or_hex);
        goto out;
    }
    memcpy(pk, tmp, FL_SIGN_PK_LEN);
    rc = 0;
out:
    if (secret)
        sodium_free(secret);
    fl_secfile_free(&text);
    return rc;
}

int
fl_sign_model_message(const char *federation_id, int64_t round, const char *spec,
                      const uint8_t digest[32], uint8_t out[FL_SIGN_MSG_MAX], size_t *len)
{
    size_t pos = 0;
    if (!digest || !out || !len)
        return fl_fail(FL_EINVAL, "model signature: digest and output are required");
    size_t nf = federation_id ? strnlen(federation_id, 256) : 0;
    if (nf == 0 || nf > 255)
        return fl_fail(FL_EINVAL, "model signature: the federation id must be 1..255 bytes");
    size_t ns = spec ? strnlen(spec, 256) : 0;
    if (ns > 255)
        return fl_fail(FL_EINVAL, "model signature: the model spec must be at most 255 bytes");
    if (round < 0)
        return fl_fail(FL_EINVAL, "model signature: round %lld is negative", (long long)round);

    memcpy(out, FL_SIGN_DOMAIN, sizeof FL_SIGN_DOMAIN); /* with its NUL */
    pos += sizeof FL_SIGN_DOMAIN;
    out[pos++] = (uint8_t)nf;
    memcpy(out + pos, federation_id, nf);
    pos += nf;
    for (int i = 7; i >= 0; i--)
        out[pos++] = (uint8_t)((uint64_t)round >> (8 * i));
    out[pos++] = (uint8_t)ns;
    if (ns)
        memcpy(out + pos, spec, ns);
    pos += ns;
    memcpy(out + pos, digest, 32);
    pos += 32;
    assert(pos <= FL_SIGN_MSG_MAX);
    *len = pos;
    return 0;
}

int
fl_sign_model(const fl_signkey_t *k, const char *federation_id, int64_t round, const char *spec,
              const uint8_t digest[32], uint8_t sig[FL_SIGN_SIG_LEN])
{
    uint8_t msg[FL_SIGN_MSG_MAX];
    size_t len = 0;
    int rc;

    if (!k || !sig)
        return fl_fail(FL_EINVAL, "model signature: no key or no output");
    if ((rc = fl_sign_model_message(federation_id, round, spec, digest, msg, &len)) < 0)
        return rc;
    crypto_sign_detached(sig, NULL, msg, len, k->sk);
    return 0;
}

int
fl_verify_model(const uint8_t pk[FL_SIGN_PK_LEN], const char *federation_id, int64_t round,
                const char *spec, const uint8_t digest[32], const uint8_t sig[FL_SIGN_SIG_LEN])
{
    uint8_t msg[FL_SIGN_MSG_MAX];
    size_t len = 0;
    char hex[17];
    int rc;

    if (!pk || !sig)
        return fl_fail(FL_EINVAL, "model signature: no public key or no signature");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    if ((rc = fl_sign_model_message(federation_id, round, spec, digest, msg, &len)) < 0)
        return rc;
    if (crypto_sign_verify_detached(sig, msg, len, pk) != 0) {
        sodium_bin2hex(hex, sizeof hex, digest, 8);
        return fl_fail(FL_ECRYPTO,
                       "model signature invalid (model of round %lld, digest %s..): not signed "
                       "by this coordinator's key for this federation, round, spec and digest",
                       (long long)round, hex);
    }
    return 0;
}
