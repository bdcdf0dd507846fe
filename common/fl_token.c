/*
 * fl_token.c — join tokens: a fixed, versioned binary layout with length
 * prefixes, a checksum, base64url text; a defensive parser that checks every
 * length against what is left; secret hashing; durations. See fl_token.h.
 */
#include "fl_token.h"

#include <assert.h>
#include <ctype.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "fl_keys.h"
#include "fl_store.h"

static const uint8_t s_chk_personal[16] = "covey-token-chk1";
static const uint8_t s_hash_personal[16] = "covey-token-v1\0\0";

#define S_CHECKSUM_LEN 4
/* version, flags, secret, two keys, five length bytes / counts at least,
 * one byte of each string, checksum. */
#define S_BIN_MIN (2 + 96 + 2 + 2 + 2 + 2 + S_CHECKSUM_LEN)

static_assert(sizeof FL_TOKEN_PREFIX - 1 + (FL_TOKEN_BIN_MAX + 2) / 3 * 4 + 1 >= FL_TOKEN_TEXT_MAX,
              "text max covers the binary max");

fl_token_t *
fl_token_new(void)
{
    if (sodium_init() < 0) {
        fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
        return NULL;
    }
    fl_token_t *t = sodium_malloc(sizeof *t);
    if (!t) {
        fl_fail(FL_ENOMEM, "cannot allocate guarded memory for a join token");
        return NULL;
    }
    sodium_memzero(t, sizeof *t);
    return t;
}

void
fl_token_destroy(fl_token_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sodium_free(*self_p); /* wipes before unmapping */
    *self_p = NULL;
}

void
fl_token_hash_secret(const uint8_t secret[FL_TOKEN_SECRET_LEN], uint8_t hash[FL_TOKEN_HASH_LEN])
{
    crypto_generichash_blake2b_salt_personal(hash, FL_TOKEN_HASH_LEN, secret, FL_TOKEN_SECRET_LEN,
                                             NULL, 0, NULL, s_hash_personal);
}

static void
s_checksum(const uint8_t *bin, size_t len, uint8_t out[S_CHECKSUM_LEN])
{
    uint8_t h[32];
    crypto_generichash_blake2b_salt_personal(h, sizeof h, bin, len, NULL, 0, NULL,
                                             s_chk_personal);
    memcpy(out, h, S_CHECKSUM_LEN);
}

/* Endpoints and federation ids: printable ASCII without spaces. */
static bool
s_graphic(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Check one string field of t against its rule; its length in *n. */
static int
s_check_field(const char *value, size_t max, bool is_name, const char *what, size_t *n)
{
    *n = strnlen(value, max + 1);
    if (*n == 0 || *n > max)
        return fl_fail(FL_EINVAL, "join token: %s must be 1..%zu characters", what, max);
    if (is_name ? !fl_store_agent_name_ok(value) : !s_graphic(value, *n))
        return fl_fail(FL_EINVAL,
                       is_name ? "join token: %s: letters, digits, '.', '_' and '-' only, "
                                 "starting with a letter or digit"
                               : "join token: %s: printable characters without spaces only",
                       what);
    return 0;
}

static void
s_put_lp8(uint8_t *bin, size_t *pos, const char *s, size_t n)
{
    bin[(*pos)++] = (uint8_t)n;
    memcpy(bin + *pos, s, n);
    *pos += n;
}

/* Build the binary form of t in bin (FL_TOKEN_BIN_MAX bytes). */
static int
s_build(const fl_token_t *t, uint8_t *bin, size_t *len_p)
{
    size_t pos = 0, n;
    int rc;
    uint8_t server_key[32];

    if (fl_key_check_z85(t->server_key) < 0)
        return fl_fail(FL_EINVAL, "join token: the server key is not a 40-character Z85 key");
    if (!zmq_z85_decode(server_key, t->server_key))
        return fl_fail(FL_EINVAL, "join token: the server key is not valid Z85");
    if (t->n_endpoints < 1 || t->n_endpoints > FL_TOKEN_ENDPOINTS_MAX)
        return fl_fail(FL_EINVAL, "join token: %zu agents' endpoints (1..%d)", t->n_endpoints,
                       FL_TOKEN_ENDPOINTS_MAX);
    bin[pos++] = FL_TOKEN_VERSION;
    bin[pos++] = 0; /* flags */
    memcpy(bin + pos, t->secret, FL_TOKEN_SECRET_LEN);
    pos += FL_TOKEN_SECRET_LEN;
    memcpy(bin + pos, server_key, 32);
    pos += 32;
    memcpy(bin + pos, t->sign_key, 32);
    pos += 32;
    if ((rc = s_check_field(t->federation, FL_TOKEN_FEDERATION_MAX, false, "the federation id",
                            &n)) < 0)
        return rc;
    s_put_lp8(bin, &pos, t->federation, n);
    if ((rc = s_check_field(t->name, FL_TOKEN_NAME_MAX, true, "the agent name", &n)) < 0)
        return rc;
    s_put_lp8(bin, &pos, t->name, n);
    if ((rc = s_check_field(t->enroll_endpoint, FL_TOKEN_ENDPOINT_MAX, false,
                            "the enrollment endpoint", &n)) < 0)
        return rc;
    s_put_lp8(bin, &pos, t->enroll_endpoint, n);
    bin[pos++] = (uint8_t)t->n_endpoints;
    for (size_t i = 0; i < t->n_endpoints; i++) {
        if ((rc = s_check_field(t->endpoints[i], FL_TOKEN_ENDPOINT_MAX, false,
                                "an agents' endpoint", &n)) < 0)
            return rc;
        s_put_lp8(bin, &pos, t->endpoints[i], n);
    }
    s_checksum(bin, pos, bin + pos);
    pos += S_CHECKSUM_LEN;
    assert(pos <= FL_TOKEN_BIN_MAX);
    *len_p = pos;
    return 0;
}

int
fl_token_encode(const fl_token_t *t, char *out, size_t cap)
{
    uint8_t *bin = NULL;
    size_t len = 0;
    int rc;

    if (!t || !out)
        return fl_fail(FL_EINVAL, "join token: no token or no output");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    /* The binary form holds the secret: guarded memory. */
    if (!(bin = sodium_malloc(FL_TOKEN_BIN_MAX)))
        return fl_fail(FL_ENOMEM, "cannot allocate guarded memory for a join token");
    if ((rc = s_build(t, bin, &len)) < 0)
        goto out;
    size_t need = sizeof FL_TOKEN_PREFIX - 1 +
                  sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (cap < need) {
        rc = fl_fail(FL_ERANGE, "join token: needs %zu bytes of output, have %zu", need, cap);
        goto out;
    }
    memcpy(out, FL_TOKEN_PREFIX, sizeof FL_TOKEN_PREFIX - 1);
    sodium_bin2base64(out + sizeof FL_TOKEN_PREFIX - 1, cap - (sizeof FL_TOKEN_PREFIX - 1), bin,
                      len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    rc = 0;
out:
    sodium_memzero(bin, FL_TOKEN_BIN_MAX);
    sodium_free(bin);
    return rc;
}

int
fl_token_create(fl_token_t *t, char *out, size_t cap, uint8_t secret_hash[FL_TOKEN_HASH_LEN])
{
    int rc;
    if (!t || !out || !secret_hash)
        return fl_fail(FL_EINVAL, "join token: no token or no output");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    randombytes_buf(t->secret, FL_TOKEN_SECRET_LEN);
    if ((rc = fl_token_encode(t, out, cap)) < 0)
        return rc;
    fl_token_hash_secret(t->secret, secret_hash);
    return 0;
}

/* ---- parsing ---- */

typedef struct {
    const uint8_t *p;
    size_t left;
} s_cursor_t;

static int
s_take(s_cursor_t *c, void *dst, size_t n, const char *what)
{
    if (c->left < n)
        return fl_fail(FL_EFORMAT, "join token: truncated in %s", what);
    memcpy(dst, c->p, n);
    c->p += n;
    c->left -= n;
    return 0;
}

/* A length-prefixed string into dst (max + 1 bytes), checked by its rule. */
static int
s_take_lp8(s_cursor_t *c, char *dst, size_t max, bool is_name, const char *what)
{
    uint8_t n = 0;
    int rc;
    if ((rc = s_take(c, &n, 1, what)) < 0)
        return rc;
    if (n == 0 || n > max)
        return fl_fail(FL_EFORMAT, "join token: %s has length %u (1..%zu)", what, n, max);
    if ((rc = s_take(c, dst, n, what)) < 0)
        return rc;
    dst[n] = '\0';
    if (strlen(dst) != n || (is_name ? !fl_store_agent_name_ok(dst) : !s_graphic(dst, n)))
        return fl_fail(FL_EFORMAT, "join token: %s holds characters it may not", what);
    return 0;
}

static int
s_parse_bin(const uint8_t *bin, size_t len, fl_token_t *t)
{
    uint8_t chk[S_CHECKSUM_LEN], server_key[32], hdr[2], count = 0;
    s_cursor_t c;
    int rc;

    if (len < S_BIN_MIN)
        return fl_fail(FL_EFORMAT,
                       "join token is truncated (%zu bytes decoded, a token has at least %d); "
                       "copy the whole token",
                       len, S_BIN_MIN);
    s_checksum(bin, len - S_CHECKSUM_LEN, chk);
    if (sodium_memcmp(chk, bin + len - S_CHECKSUM_LEN, S_CHECKSUM_LEN) != 0)
        return fl_fail(FL_EFORMAT,
                       "join token checksum mismatch: the token was mistyped, truncated or "
                       "altered; copy it again");
    c.p = bin;
    c.left = len - S_CHECKSUM_LEN;
    if ((rc = s_take(&c, hdr, 2, "the header")) < 0)
        return rc;
    if (hdr[0] != FL_TOKEN_VERSION)
        return fl_fail(FL_EFORMAT,
                       "join token version %u is not supported (this program reads version %d)",
                       hdr[0], FL_TOKEN_VERSION);
    if (hdr[1] != 0)
        return fl_fail(FL_EFORMAT, "join token has unknown flags 0x%02x (made by a newer Covey?)",
                       hdr[1]);
    if ((rc = s_take(&c, t->secret, FL_TOKEN_SECRET_LEN, "the secret")) < 0 ||
        (rc = s_take(&c, server_key, 32, "the server key")) < 0 ||
        (rc = s_take(&c, t->sign_key, 32, "the signing key")) < 0 ||
        (rc = s_take_lp8(&c, t->federation, FL_TOKEN_FEDERATION_MAX, false,
                         "the federation id")) < 0 ||
        (rc = s_take_lp8(&c, t->name, FL_TOKEN_NAME_MAX, true, "the agent name")) < 0 ||
        (rc = s_take_lp8(&c, t->enroll_endpoint, FL_TOKEN_ENDPOINT_MAX, false,
                         "the enrollment endpoint")) < 0 ||
        (rc = s_take(&c, &count, 1, "the endpoint count")) < 0)
        return rc;
    if (!zmq_z85_encode(t->server_key, server_key, 32))
        return fl_fail(FL_EFORMAT, "join token: the server key cannot be encoded");
    if (count < 1 || count > FL_TOKEN_ENDPOINTS_MAX)
        return fl_fail(FL_EFORMAT, "join token: %u agents' endpoints (1..%d)", count,
                       FL_TOKEN_ENDPOINTS_MAX);
    for (size_t i = 0; i < count; i++)
        if ((rc = s_take_lp8(&c, t->endpoints[i], FL_TOKEN_ENDPOINT_MAX, false,
                             "an agents' endpoint")) < 0)
            return rc;
    t->n_endpoints = count;
    if (c.left != 0)
        return fl_fail(FL_EFORMAT, "join token: %zu unexpected bytes after the last field",
                       c.left);
    return 0;
}

int
fl_token_parse(const char *text, fl_token_t **out)
{
    const size_t plen = sizeof FL_TOKEN_PREFIX - 1;
    fl_token_t *t = NULL;
    uint8_t *bin = NULL;
    size_t bin_len = 0;
    const char *end = NULL;
    int rc;

    if (!out)
        return fl_fail(FL_EINVAL, "join token: no output");
    if (!text)
        return fl_fail(FL_EFORMAT, "join token is empty");
    /* A pasted token often brings a newline or blanks along. */
    while (isspace((unsigned char)*text))
        text++;
    size_t n = strnlen(text, FL_TOKEN_TEXT_MAX);
    while (n && isspace((unsigned char)text[n - 1]))
        n--;
    if (n == 0)
        return fl_fail(FL_EFORMAT, "join token is empty");
    if (n >= FL_TOKEN_TEXT_MAX)
        return fl_fail(FL_EFORMAT, "join token is too long (at most %d characters)",
                       FL_TOKEN_TEXT_MAX - 1);
    if (n < plen || memcmp(text, FL_TOKEN_PREFIX, plen) != 0) {
        /* "covey<digits>." is a token of another version. */
        size_t d = 5;
        while (d < n && d < 12 && isdigit((unsigned char)text[d]))
            d++;
        if (n > 5 && memcmp(text, "covey", 5) == 0 && d > 5 && d < n && text[d] == '.')
            return fl_fail(FL_EFORMAT,
                           "join token version %.*s is not supported (this program reads "
                           "'%s' tokens)",
                           (int)(d - 5), text + 5, FL_TOKEN_PREFIX);
        return fl_fail(FL_EFORMAT, "not a Covey join token (it should start with '%s')",
                       FL_TOKEN_PREFIX);
    }
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    if (!(t = fl_token_new()) || !(bin = sodium_malloc(FL_TOKEN_BIN_MAX))) {
        rc = fl_fail(FL_ENOMEM, "cannot allocate guarded memory for a join token");
        goto out;
    }
    const char *b64 = text + plen;
    size_t b64_len = n - plen;
    /* Name a character outside the alphabet where it is; with none, a
     * failed decode is the length or the last character's spare bits: a
     * cut-off token or a typo at its end. */
    for (size_t i = 0; i < b64_len; i++) {
        char ch = b64[i];
        if (!(isalnum((unsigned char)ch) || ch == '-' || ch == '_')) {
            rc = fl_fail(FL_EFORMAT,
                         "join token is not valid base64url (character %zu of %zu); copy it "
                         "again",
                         plen + i + 1, n);
            goto out;
        }
    }
    if (sodium_base642bin(bin, FL_TOKEN_BIN_MAX, b64, b64_len, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != b64 + b64_len) {
        rc = fl_fail(FL_EFORMAT,
                     "join token is truncated or its last character mistyped (not valid "
                     "base64url); copy the whole token");
        goto out;
    }
    if ((rc = s_parse_bin(bin, bin_len, t)) < 0)
        goto out;
    *out = t;
    t = NULL;
    rc = 0;
out:
    if (bin) {
        sodium_memzero(bin, FL_TOKEN_BIN_MAX);
        sodium_free(bin);
    }
    fl_token_destroy(&t);
    return rc;
}

/* ---- durations ---- */

int
fl_duration_parse(const char *s, int64_t *seconds)
{
    int64_t total = 0;
    const char *p = s;

    if (!seconds)
        return fl_fail(FL_EINVAL, "duration: no output");
    if (!s || !*s)
        return fl_fail(FL_EINVAL, "duration is empty (e.g. 90s, 30m, 1h, 7d, 1h30m)");
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return fl_fail(FL_EINVAL,
                           "bad duration '%.32s': expected a number at '%.8s' (e.g. 90s, 30m, "
                           "1h, 7d, 1h30m)",
                           s, p);
        int64_t v = 0;
        while (isdigit((unsigned char)*p)) {
            v = v * 10 + (*p - '0');
            if (v > FL_DURATION_MAX_S)
                return fl_fail(FL_EINVAL, "duration '%.32s' is too long (at most 10 years)", s);
            p++;
        }
        int64_t unit;
        switch (*p) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        case '\0':
            return fl_fail(FL_EINVAL,
                           "bad duration '%.32s': the number has no unit (s, m, h, d or w)", s);
        default:
            return fl_fail(FL_EINVAL,
                           "bad duration '%.32s': unknown unit '%c' (s, m, h, d or w)", s,
                           isprint((unsigned char)*p) ? *p : '?');
        }
        p++;
        /* v <= max and unit <= 604800: the product fits in int64_t. */
        if (v * unit > FL_DURATION_MAX_S - total)
            return fl_fail(FL_EINVAL, "duration '%.32s' is too long (at most 10 years)", s);
        total += v * unit;
    }
    if (total == 0)
        return fl_fail(FL_EINVAL, "duration '%.32s' is zero", s);
    *seconds = total;
    return 0;
}
