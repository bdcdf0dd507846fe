/*
 * fl_seal.c — XChaCha20-Poly1305 sealing of blobs at rest under a data key
 * kept in guarded memory, the data key file, and the canonical associated
 * data that binds a blob to its federation, round, digest and purpose. See
 * fl_seal.h for the formats.
 */
#include "fl_seal.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_secfile.h"

struct fl_datakey {
    uint8_t *key; /* sodium_malloc(FL_SEAL_KEY_LEN) */
    uint8_t id[FL_SEAL_KEY_ID_LEN];
};

/* BLAKE2b personalisation (exactly 16 bytes) of the key id. */
static const uint8_t s_id_personal[16] = "covey-datakey-id";

static const char s_file_header[] =
    "# covey data key (XChaCha20-Poly1305) -- keep private\n"
    "# Sealed checkpoints cannot be read without it: back it up with the state.\n";

/* Header bytes covered by the AEAD's associated data: magic, version, key id. */
#define S_AUTH_HEADER_LEN 13
#define S_NONCE_OFF 13

static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == FL_SEAL_KEY_LEN, "key size");
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == 24, "nonce size");
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == FL_SEAL_TAG_LEN, "tag size");
static_assert(S_AUTH_HEADER_LEN + 24 == FL_SEAL_HEADER_LEN, "header layout");

static fl_datakey_t *
s_datakey_alloc(void)
{
    if (sodium_init() < 0) {
        fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
        return NULL;
    }
    fl_datakey_t *k = fl_xcalloc(1, sizeof *k);
    k->key = sodium_malloc(FL_SEAL_KEY_LEN);
    if (!k->key) {
        free(k);
        fl_fail(FL_ENOMEM, "cannot allocate guarded memory for the data key");
        return NULL;
    }
    sodium_memzero(k->key, FL_SEAL_KEY_LEN);
    return k;
}

static void
s_datakey_set_id(fl_datakey_t *k)
{
    crypto_generichash_blake2b_salt_personal(k->id, sizeof k->id, NULL, 0, k->key,
                                             FL_SEAL_KEY_LEN, NULL, s_id_personal);
}

fl_datakey_t *
fl_datakey_generate(void)
{
    fl_datakey_t *k = s_datakey_alloc();
    if (!k)
        return NULL;
    crypto_aead_xchacha20poly1305_ietf_keygen(k->key);
    s_datakey_set_id(k);
    return k;
}

void
fl_datakey_destroy(fl_datakey_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_datakey_t *k = *self_p;
    sodium_free(k->key); /* wipes before unmapping */
    free(k);
    *self_p = NULL;
}

void
fl_datakey_id(const fl_datakey_t *k, uint8_t id[FL_SEAL_KEY_ID_LEN])
{
    memcpy(id, k->id, FL_SEAL_KEY_ID_LEN);
}

int
fl_datakey_save(const fl_datakey_t *k, const char *path)
{
    enum { TEXT_MAX = 512 };
    char *text = NULL;
    int rc;

    if (!k || !path || !*path)
        return fl_fail(FL_EINVAL, "fl_datakey_save: no key or no path");
    text = sodium_malloc(TEXT_MAX);
    if (!text)
        return fl_fail(FL_ENOMEM, "data key file '%s': cannot allocate guarded memory", path);
    size_t hdr = sizeof s_file_header - 1;
    memcpy(text, s_file_header, hdr);
    memcpy(text + hdr, "key = ", 6);
    sodium_bin2hex(text + hdr + 6, TEXT_MAX - hdr - 6, k->key, FL_SEAL_KEY_LEN);
    size_t len = hdr + 6 + 2 * FL_SEAL_KEY_LEN;
    text[len++] = '\n';
    rc = fl_secfile_write_new(path, text, len, 0600);
    sodium_memzero(text, TEXT_MAX);
    sodium_free(text);
    return rc;
}

int
fl_datakey_load(const char *path, fl_datakey_t **out)
{
    char *text = NULL;
    size_t len = 0;
    fl_datakey_t *k = NULL;
    int rc;

    if (!path || !*path || !out)
        return fl_fail(FL_EINVAL, "fl_datakey_load: path and out are required");
    if ((rc = fl_secfile_read(path, true, &text, &len)) < 0)
        goto out;
    if (!(k = s_datakey_alloc())) {
        rc = FL_ENOMEM;
        goto out;
    }
    fl_secfile_field_t field = {.name = "key", .out = k->key, .len = FL_SEAL_KEY_LEN};
    if ((rc = fl_secfile_parse_hex(path, text, len, &field, 1)) < 0)
        goto out;
    s_datakey_set_id(k);
    *out = k;
    k = NULL;
    rc = 0;
out:
    fl_datakey_destroy(&k);
    fl_secfile_free(&text);
    return rc;
}

/* Append a length-prefixed (u8) string of 1..255 bytes. */
static int
s_put_lp8(uint8_t *out, size_t *pos, const char *s, const char *what)
{
    size_t n = s ? strnlen(s, 256) : 0;
    if (n == 0 || n > 255)
        return fl_fail(FL_EINVAL, "seal associated data: %s must be 1..255 bytes", what);
    out[(*pos)++] = (uint8_t)n;
    memcpy(out + *pos, s, n);
    *pos += n;
    return 0;
}

int
fl_seal_ad(const char *purpose, const char *federation_id, int64_t round,
           const uint8_t digest[32], uint8_t out[FL_SEAL_AD_MAX], size_t *outlen)
{
    uint8_t buf[FL_SEAL_AD_MAX];
    size_t pos = 0;
    int rc;

    if (!digest || !out || !outlen)
        return fl_fail(FL_EINVAL, "seal associated data: digest and output are required");
    if (round < 0)
        return fl_fail(FL_EINVAL, "seal associated data: round %lld is negative",
                       (long long)round);
    buf[pos++] = 1; /* encoding version */
    if ((rc = s_put_lp8(buf, &pos, purpose, "the purpose")) < 0 ||
        (rc = s_put_lp8(buf, &pos, federation_id, "the federation id")) < 0)
        return rc;
    uint64_t r = (uint64_t)round;
    for (int i = 7; i >= 0; i--)
        buf[pos++] = (uint8_t)(r >> (8 * i));
    memcpy(buf + pos, digest, 32);
    pos += 32;
    assert(pos <= FL_SEAL_AD_MAX);
    memcpy(out, buf, pos);
    *outlen = pos;
    return 0;
}

/* The AEAD's associated data: the authenticated header then the caller's.
 * Caller frees the result. */
static uint8_t *
s_full_ad(const uint8_t *header, const uint8_t *ad, size_t adlen, size_t *len_p)
{
    uint8_t *full = fl_xmalloc(S_AUTH_HEADER_LEN + adlen);
    memcpy(full, header, S_AUTH_HEADER_LEN);
    if (adlen)
        memcpy(full + S_AUTH_HEADER_LEN, ad, adlen);
    *len_p = S_AUTH_HEADER_LEN + adlen;
    return full;
}

static int
s_check_args(const uint8_t *ad, size_t adlen, const char *op)
{
    if (adlen > FL_SEAL_AD_CALLER_MAX || (adlen && !ad))
        return fl_fail(FL_EINVAL, "%s: associated data of %zu bytes (at most %d, non-NULL)", op,
                       adlen, FL_SEAL_AD_CALLER_MAX);
    return 0;
}

/* Seal the plaintext already at buf + FL_SEAL_HEADER_LEN, in place. */
static void
s_seal_at(const fl_datakey_t *k, const uint8_t *ad, size_t adlen, uint8_t *buf, size_t len)
{
    uint8_t *ct = buf + FL_SEAL_HEADER_LEN;
    size_t full_len;

    memcpy(buf, FL_SEAL_MAGIC, 4);
    buf[4] = FL_SEAL_VERSION;
    memcpy(buf + 5, k->id, FL_SEAL_KEY_ID_LEN);
    randombytes_buf(buf + S_NONCE_OFF, 24);
    uint8_t *full = s_full_ad(buf, ad, adlen, &full_len);
    /* In-place encryption (ct == pt) is supported by libsodium. */
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ct, ct + len, NULL, ct, len, full,
                                                        full_len, NULL, buf + S_NONCE_OFF,
                                                        k->key);
    free(full);
}

int
fl_seal(const fl_datakey_t *k, const uint8_t *ad, size_t adlen, const void *pt, size_t len,
        uint8_t **out, size_t *outlen)
{
    int rc;
    if (!k)
        return fl_fail(FL_EINVAL, "seal: no data key");
    if ((rc = s_check_args(ad, adlen, "seal")) < 0)
        return rc;
    if (!out || !outlen || (len && !pt))
        return fl_fail(FL_EINVAL, "seal: plaintext and outputs are required");
    if (len > SIZE_MAX - FL_SEAL_OVERHEAD ||
        len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
        return fl_fail(FL_ERANGE, "seal: %zu bytes is too large to seal", len);
    size_t total = len + FL_SEAL_OVERHEAD;
    uint8_t *blob = malloc(total);
    if (!blob)
        return fl_fail(FL_ENOMEM, "seal: cannot allocate %zu bytes", total);
    if (len)
        memcpy(blob + FL_SEAL_HEADER_LEN, pt, len);
    s_seal_at(k, ad, adlen, blob, len);
    *out = blob;
    *outlen = total;
    return 0;
}

int
fl_seal_inplace(const fl_datakey_t *k, const uint8_t *ad, size_t adlen, uint8_t *buf, size_t len,
                size_t cap, size_t *outlen)
{
    int rc;
    if (!k)
        return fl_fail(FL_EINVAL, "seal: no data key");
    if ((rc = s_check_args(ad, adlen, "seal")) < 0)
        return rc;
    if (!buf || !outlen)
        return fl_fail(FL_EINVAL, "seal: buffer and output are required");
    if (len > SIZE_MAX - FL_SEAL_OVERHEAD || cap < len + FL_SEAL_OVERHEAD ||
        len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
        return fl_fail(FL_ERANGE, "seal: %zu bytes need a buffer of %zu + %d bytes, have %zu",
                       len, len, FL_SEAL_OVERHEAD, cap);
    memmove(buf + FL_SEAL_HEADER_LEN, buf, len);
    s_seal_at(k, ad, adlen, buf, len);
    *outlen = len + FL_SEAL_OVERHEAD;
    return 0;
}

static void
s_hex(const uint8_t *bin, size_t n, char *out, size_t cap)
{
    sodium_bin2hex(out, cap, bin, n);
}

/* Check everything about a blob that can be checked without decrypting. */
static int
s_check_blob(const fl_datakey_t *k, const uint8_t *blob, size_t len)
{
    if (len < 4 || (len < FL_SEAL_OVERHEAD && memcmp(blob, FL_SEAL_MAGIC, 4) == 0))
        return fl_fail(FL_EFORMAT,
                       "sealed blob is truncated (%zu bytes; a sealed blob has at least %d)", len,
                       FL_SEAL_OVERHEAD);
    if (memcmp(blob, FL_SEAL_MAGIC, 4) != 0)
        return fl_fail(FL_EFORMAT,
                       "not a sealed blob (bad magic; an unencrypted or foreign blob?)");
    if (blob[4] != FL_SEAL_VERSION)
        return fl_fail(FL_EFORMAT,
                       "sealed blob format version %u is not supported (this program reads "
                       "version %d)",
                       blob[4], FL_SEAL_VERSION);
    /* Not secret: ids are public and a mismatch only improves the message. */
    if (memcmp(blob + 5, k->id, FL_SEAL_KEY_ID_LEN) != 0) {
        char have[2 * FL_SEAL_KEY_ID_LEN + 1], want[2 * FL_SEAL_KEY_ID_LEN + 1];
        s_hex(blob + 5, FL_SEAL_KEY_ID_LEN, have, sizeof have);
        s_hex(k->id, FL_SEAL_KEY_ID_LEN, want, sizeof want);
        return fl_fail(FL_ECRYPTO,
                       "authentication failed: sealed under a different data key (key id %s; "
                       "the loaded data key is %s)",
                       have, want);
    }
    return 0;
}

/* Decrypt blob[FL_SEAL_HEADER_LEN..len - tag) into pt (may equal the
 * ciphertext's address). */
static int
s_open_to(const fl_datakey_t *k, const uint8_t *ad, size_t adlen, const uint8_t *blob,
          size_t len, uint8_t *pt)
{
    size_t ctlen = len - FL_SEAL_OVERHEAD, full_len;
    const uint8_t *ct = blob + FL_SEAL_HEADER_LEN;
    uint8_t *full = s_full_ad(blob, ad, adlen, &full_len);
    int ok = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                 pt, NULL, ct, ctlen, ct + ctlen, full, full_len, blob + S_NONCE_OFF, k->key) == 0;
    free(full);
    if (!ok)
        return fl_fail(FL_ECRYPTO,
                       "authentication failed: the sealed blob was modified, moved to another "
                       "round, federation or purpose, or sealed under a different data key");
    return 0;
}

int
fl_unseal(const fl_datakey_t *k, const uint8_t *ad, size_t adlen, const uint8_t *blob,
          size_t bloblen, uint8_t **out, size_t *outlen)
{
    void *pt = NULL;
    int rc;

    if (!k)
        return fl_fail(FL_EINVAL, "unseal: no data key");
    if ((rc = s_check_args(ad, adlen, "unseal")) < 0)
        return rc;
    if (!blob || !out || !outlen)
        return fl_fail(FL_EINVAL, "unseal: blob and outputs are required");
    if ((rc = s_check_blob(k, blob, bloblen)) < 0)
        return rc;
    size_t ptlen = bloblen - FL_SEAL_OVERHEAD;
    /* 64-byte aligned like fl_store's checkpoint buffers, so a model can be
     * used where it lands; never a NULL buffer, even for no plaintext. */
    if (posix_memalign(&pt, 64, ptlen ? ptlen : 64) != 0)
        return fl_fail(FL_ENOMEM, "unseal: cannot allocate %zu bytes", ptlen);
    if ((rc = s_open_to(k, ad, adlen, blob, bloblen, pt)) < 0) {
        free(pt);
        return rc;
    }
    *out = pt;
    *outlen = ptlen;
    return 0;
}

int
fl_unseal_inplace(const fl_datakey_t *k, const uint8_t *ad, size_t adlen, uint8_t *buf,
                  size_t len, size_t *ptlen)
{
    int rc;
    if (!k)
        return fl_fail(FL_EINVAL, "unseal: no data key");
    if ((rc = s_check_args(ad, adlen, "unseal")) < 0)
        return rc;
    if (!buf || !ptlen)
        return fl_fail(FL_EINVAL, "unseal: buffer and output are required");
    if ((rc = s_check_blob(k, buf, len)) < 0)
        return rc;
    /* In-place decryption (pt == ct) is supported by libsodium. */
    if ((rc = s_open_to(k, ad, adlen, buf, len, buf + FL_SEAL_HEADER_LEN)) < 0)
        return rc;
    *ptlen = len - FL_SEAL_OVERHEAD;
    memmove(buf, buf + FL_SEAL_HEADER_LEN, *ptlen);
    return 0;
}
