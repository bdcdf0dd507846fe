/*
 * test_token.c — unit tests of fl_token (join token text: a golden token
 * computed independently in Python, round trips, every changed character and
 * every truncation refused, bad prefix / version / flags / fields, whitespace,
 * encoder checks; durations) and of the token table of fl_store (used once,
 * then "already used"; expired; revoked; forged; one pending token per name;
 * consumption inside a transaction that rolls back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_store.h"
#include "fl_token.h"
#include "fl_util.h"
#include "testutil.h"

/* Golden token (tests/unit/test_token.c fields below), computed with Python:
 * base64.urlsafe_b64encode(bin).rstrip("=") with the checksum from
 * hashlib.blake2b(bin, digest_size=32, person=b"covey-token-chk1")[:4]. */
static const char s_golden[] =
    "covey1.AQAAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8"
    "PT4_QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8MZmVkLTAxMjNhYmNkBmVkZ2UtMRh0Y3A6Ly9jb29yZC5"
    "leGFtcGxlOjcwMDECGHRjcDovL2Nvb3JkLmV4YW1wbGU6NzAwMBN0Y3A6Ly8xMC4wLjAuMjo3MDAwBR7U_g";
/* Z85 of bytes 32..63 and the BLAKE2b hash of secret bytes 0..31 (Python). */
static const char s_golden_server_key[] = "ar.{NbQB=+c[cR@eg&FcfFLssg=mfIi5%2YjuU>)";
static const char s_golden_hash[] =
    "d9ca5e16389bdc0b3b7ef0b1b9e8d199c68509c7aa06833a9d695efab570d803";

static int
setup_dir(void **state)
{
    (void)state;
    return s_tmpdir_make("token") == 0 && sodium_init() >= 0 ? 0 : -1;
}

/* The fields of the golden token. */
static fl_token_t *
s_golden_fields(void)
{
    fl_token_t *t = fl_token_new();
    assert_non_null(t);
    for (int i = 0; i < 32; i++) {
        t->secret[i] = (uint8_t)i;
        t->sign_key[i] = (uint8_t)(64 + i);
    }
    snprintf(t->server_key, sizeof t->server_key, "%s", s_golden_server_key);
    snprintf(t->federation, sizeof t->federation, "fed-0123abcd");
    snprintf(t->name, sizeof t->name, "edge-1");
    snprintf(t->enroll_endpoint, sizeof t->enroll_endpoint, "tcp://coord.example:7001");
    t->n_endpoints = 2;
    snprintf(t->endpoints[0], sizeof t->endpoints[0], "tcp://coord.example:7000");
    snprintf(t->endpoints[1], sizeof t->endpoints[1], "tcp://10.0.0.2:7000");
    return t;
}

static void
s_assert_same(const fl_token_t *a, const fl_token_t *b)
{
    assert_memory_equal(a->secret, b->secret, 32);
    assert_string_equal(a->server_key, b->server_key);
    assert_memory_equal(a->sign_key, b->sign_key, 32);
    assert_string_equal(a->federation, b->federation);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->enroll_endpoint, b->enroll_endpoint);
    assert_int_equal(a->n_endpoints, b->n_endpoints);
    for (size_t i = 0; i < a->n_endpoints; i++)
        assert_string_equal(a->endpoints[i], b->endpoints[i]);
}

static void
test_golden(void **state)
{
    (void)state;
    fl_token_t *t = s_golden_fields(), *p = NULL;
    char text[FL_TOKEN_TEXT_MAX];
    assert_int_equal(fl_token_encode(t, text, sizeof text), 0);
    assert_string_equal(text, s_golden);
    assert_int_equal(fl_token_parse(s_golden, &p), 0);
    s_assert_same(t, p);

    uint8_t hash[32], want[32];
    fl_token_hash_secret(p->secret, hash);
    assert_int_equal(sodium_hex2bin(want, 32, s_golden_hash, 64, NULL, NULL, NULL), 0);
    assert_memory_equal(hash, want, 32);
    fl_token_destroy(&p);
    fl_token_destroy(&t);
    assert_null(t);
    fl_token_destroy(&t);
    fl_token_destroy(NULL);
}

static void
test_create_roundtrip(void **state)
{
    (void)state;
    fl_token_t *t = s_golden_fields(), *p = NULL;
    char a[FL_TOKEN_TEXT_MAX], b[FL_TOKEN_TEXT_MAX];
    uint8_t ha[32], hb[32], hp[32];
    assert_int_equal(fl_token_create(t, a, sizeof a, ha), 0);
    assert_int_equal(strncmp(a, "covey1.", 7), 0);
    assert_int_equal(fl_token_parse(a, &p), 0);
    s_assert_same(t, p);
    fl_token_hash_secret(p->secret, hp);
    assert_memory_equal(ha, hp, 32);
    fl_token_destroy(&p);
    /* A second token for the same fields has another secret. */
    assert_int_equal(fl_token_create(t, b, sizeof b, hb), 0);
    assert_string_not_equal(a, b);
    assert_memory_not_equal(ha, hb, 32);

    /* The most an encoding can hold. */
    memset(t->federation, 'f', FL_TOKEN_FEDERATION_MAX);
    t->federation[FL_TOKEN_FEDERATION_MAX] = '\0';
    memset(t->name, 'n', FL_TOKEN_NAME_MAX);
    t->name[FL_TOKEN_NAME_MAX] = '\0';
    memset(t->enroll_endpoint, 'e', FL_TOKEN_ENDPOINT_MAX);
    t->enroll_endpoint[FL_TOKEN_ENDPOINT_MAX] = '\0';
    t->n_endpoints = FL_TOKEN_ENDPOINTS_MAX;
    for (size_t i = 0; i < FL_TOKEN_ENDPOINTS_MAX; i++) {
        memset(t->endpoints[i], (int)('a' + i), FL_TOKEN_ENDPOINT_MAX);
        t->endpoints[i][FL_TOKEN_ENDPOINT_MAX] = '\0';
    }
    assert_int_equal(fl_token_create(t, a, sizeof a, ha), 0);
    assert_int_equal(strlen(a), FL_TOKEN_TEXT_MAX - 1);
    assert_int_equal(fl_token_parse(a, &p), 0);
    s_assert_same(t, p);
    fl_token_destroy(&p);
    /* Too small an output: refused, untouched. */
    memset(b, 'Z', sizeof b);
    assert_int_equal(fl_token_encode(t, b, FL_TOKEN_TEXT_MAX - 1), FL_ERANGE);
    assert_int_equal(b[0], 'Z');
    fl_token_destroy(&t);
}

/* Every character of the body changed to any other base64url character is
 * caught (checksum or encoding), and so is every truncation. */
static void
test_typos_and_truncation(void **state)
{
    (void)state;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char text[sizeof s_golden];
    fl_token_t *p = NULL;
    size_t n = strlen(s_golden);
    int checksum = 0, encoding = 0;
    for (size_t i = 7; i < n; i++) {
        for (size_t j = 0; j < 64; j += 7) { /* 10 replacements per position */
            if (alphabet[j] == s_golden[i])
                continue;
            memcpy(text, s_golden, sizeof text);
            text[i] = alphabet[j];
            assert_int_equal(fl_token_parse(text, &p), FL_EFORMAT);
            assert_null(p);
            if (strstr(fl_errmsg(), "checksum mismatch"))
                checksum++;
            else if (strstr(fl_errmsg(), "last character mistyped"))
                encoding++; /* only in the last character's unused bits */
            else
                fail_msg("position %zu: unexpected '%s'", i, fl_errmsg());
        }
    }
    assert_true(checksum > 0);
    assert_true(encoding < 64);
    for (size_t len = 0; len < n; len++) {
        memcpy(text, s_golden, len);
        text[len] = '\0';
        assert_int_equal(fl_token_parse(text, &p), FL_EFORMAT);
        assert_null(p);
    }
    /* A typical truncation names itself (or the checksum catches it). */
    memcpy(text, s_golden, 60);
    text[60] = '\0';
    assert_int_equal(fl_token_parse(text, &p), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "truncated"));
    memcpy(text, s_golden, n - 8);
    text[n - 8] = '\0';
    assert_int_equal(fl_token_parse(text, &p), FL_EFORMAT);
    assert_true(strstr(fl_errmsg(), "checksum") || strstr(fl_errmsg(), "base64url"));
}

static void
test_bad_text(void **state)
{
    (void)state;
    fl_token_t *p = NULL;
    struct {
        const char *text, *want;
    } cases[] = {
        {"", "empty"},
        {" \n\t", "empty"},
        {"hello", "not a Covey join token"},
        {"COVEY1.AAAA", "not a Covey join token"},
        {"covey.AAAA", "not a Covey join token"},
        {"coveyX.AAAA", "not a Covey join token"},
        {"covey2.AQAAAQ", "version 2 is not supported"},
        {"covey12.AAAA", "version 12 is not supported"},
        {"covey1.", "truncated"},
        {"covey1.A", "truncated"},
        {"covey1.AAAAA", "truncated"},
        {"covey1.AAAA AAAA", "base64url (character 12 of 16)"},
        {"covey1.AAAA=", "base64url (character 12"},
        {"covey1.AA+A", "base64url (character 10"},
        {"covey1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
         "checksum mismatch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(fl_token_parse(cases[i].text, &p), FL_EFORMAT);
        assert_null(p);
        if (!strstr(fl_errmsg(), cases[i].want))
            fail_msg("case %zu: '%s' lacks '%s'", i, fl_errmsg(), cases[i].want);
    }
    assert_int_equal(fl_token_parse(NULL, &p), FL_EFORMAT);
    assert_int_equal(fl_token_parse(s_golden, NULL), FL_EINVAL);

    char *huge = fl_xmalloc(FL_TOKEN_TEXT_MAX + 100);
    memcpy(huge, "covey1.", 7);
    memset(huge + 7, 'A', FL_TOKEN_TEXT_MAX + 92);
    huge[FL_TOKEN_TEXT_MAX + 99] = '\0';
    assert_int_equal(fl_token_parse(huge, &p), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "too long"));
    free(huge);

    /* Surrounding whitespace of a pasted token is ignored. */
    char padded[sizeof s_golden + 8];
    snprintf(padded, sizeof padded, "  %s\r\n", s_golden);
    assert_int_equal(fl_token_parse(padded, &p), 0);
    assert_string_equal(p->name, "edge-1");
    fl_token_destroy(&p);
    /* The error never echoes the token (it holds the secret). */
    char text[sizeof s_golden];
    memcpy(text, s_golden, sizeof text);
    text[20] = text[20] == 'A' ? 'B' : 'A';
    assert_int_equal(fl_token_parse(text, &p), FL_EFORMAT);
    assert_null(strstr(fl_errmsg(), "AQAAAQIDBAUG"));
}

/* Binary forms with a correct checksum but a bad field: what only a crafted
 * (or future) token can hold. */
static void
s_craft(const uint8_t *bin, size_t len, char *out, size_t cap)
{
    static const uint8_t personal[16] = "covey-token-chk1";
    uint8_t buf[4096], h[32];
    memcpy(buf, bin, len);
    crypto_generichash_blake2b_salt_personal(h, 32, buf, len, NULL, 0, NULL, personal);
    memcpy(buf + len, h, 4);
    memcpy(out, "covey1.", 7);
    sodium_bin2base64(out + 7, cap - 7, buf, len + 4, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static size_t
s_golden_bin(uint8_t *bin)
{
    size_t len = 0;
    const char *b64 = s_golden + 7;
    assert_int_equal(sodium_base642bin(bin, 4096, b64, strlen(b64), NULL, &len, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    return len - 4; /* without its checksum */
}

static void
test_crafted_fields(void **state)
{
    (void)state;
    uint8_t bin[4096], mod[4096];
    char text[FL_TOKEN_TEXT_MAX + 64];
    fl_token_t *p = NULL;
    size_t len = s_golden_bin(bin);
    /* Offsets in the golden layout. */
    const size_t fed_len_at = 98, name_len_at = 98 + 1 + 12, enroll_len_at = name_len_at + 1 + 6;
    const size_t count_at = enroll_len_at + 1 + 24;

    /* Sanity: recrafting the unmodified binary gives the golden token. */
    s_craft(bin, len, text, sizeof text);
    assert_string_equal(text, s_golden);

    struct {
        size_t at;
        uint8_t value;
        const char *want;
    } cases[] = {
        {0, 2, "version 2 is not supported"},
        {0, 0, "version 0 is not supported"},
        {1, 1, "unknown flags"},
        {fed_len_at, 0, "federation id has length 0"},
        {fed_len_at, 200, "federation id has length 200"},
        {fed_len_at, 13, "holds characters"}, /* swallows the name's length byte */
        {name_len_at, 64, "agent name has length 64"},
        {name_len_at + 1, '-', "agent name holds characters"},
        {name_len_at + 1, ' ', "agent name holds characters"},
        {enroll_len_at + 4, ' ', "enrollment endpoint holds characters"},
        {enroll_len_at + 4, 0, "enrollment endpoint holds characters"},
        {count_at, 0, "0 agents' endpoints"},
        {count_at, 9, "9 agents' endpoints"},
        {count_at, 3, "truncated"},
        {count_at, 1, "unexpected bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(mod, bin, len);
        mod[cases[i].at] = cases[i].value;
        s_craft(mod, len, text, sizeof text);
        assert_int_equal(fl_token_parse(text, &p), FL_EFORMAT);
        assert_null(p);
        if (!strstr(fl_errmsg(), cases[i].want))
            fail_msg("case %zu: '%s' lacks '%s'", i, fl_errmsg(), cases[i].want);
    }
    /* Trailing bytes after the last endpoint. */
    memcpy(mod, bin, len);
    mod[len] = 0;
    s_craft(mod, len + 1, text, sizeof text);
    assert_int_equal(fl_token_parse(text, &p), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "unexpected bytes"));
    /* Every shorter binary with a valid checksum is refused too. */
    for (size_t n = 0; n < len; n++) {
        s_craft(bin, n, text, sizeof text);
        assert_int_equal(fl_token_parse(text, &p), FL_EFORMAT);
        assert_null(p);
    }
}

static void
test_encode_checks(void **state)
{
    (void)state;
    fl_token_t *t = s_golden_fields();
    char text[FL_TOKEN_TEXT_MAX];

    snprintf(t->server_key, sizeof t->server_key, "tooshort");
    assert_int_equal(fl_token_encode(t, text, sizeof text), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "server key"));
    fl_token_destroy(&t);

    t = s_golden_fields();
    t->n_endpoints = 0;
    assert_int_equal(fl_token_encode(t, text, sizeof text), FL_EINVAL);
    t->n_endpoints = FL_TOKEN_ENDPOINTS_MAX + 1;
    assert_int_equal(fl_token_encode(t, text, sizeof text), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "endpoints"));
    fl_token_destroy(&t);

    t = s_golden_fields();
    t->name[0] = '\0';
    assert_int_equal(fl_token_encode(t, text, sizeof text), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "agent name"));
    snprintf(t->name, sizeof t->name, "bad name");
    assert_int_equal(fl_token_encode(t, text, sizeof text), FL_EINVAL);
    snprintf(t->name, sizeof t->name, "-dash");
    assert_int_equal(fl_token_encode(t, text, sizeof text), FL_EINVAL);
    fl_token_destroy(&t);

    t = s_golden_fields();
    snprintf(t->endpoints[1], sizeof t->endpoints[1], "tcp://host name:1");
    assert_int_equal(fl_token_encode(t, text, sizeof text), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "endpoint"));
    fl_token_destroy(&t);

    t = s_golden_fields();
    t->federation[0] = '\0';
    assert_int_equal(fl_token_encode(t, text, sizeof text), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "federation"));
    fl_token_destroy(&t);
    assert_int_equal(fl_token_encode(NULL, text, sizeof text), FL_EINVAL);
}

static void
test_duration(void **state)
{
    (void)state;
    struct {
        const char *s;
        int64_t want;
    } ok[] = {
        {"90s", 90},        {"30m", 1800},       {"1h", 3600},   {"7d", 604800},
        {"2w", 1209600},    {"1h30m", 5400},     {"1d12h", 129600}, {"0h1s", 1},
        {"3660d", 316224000}, {"007m", 420},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -1;
        if (fl_duration_parse(ok[i].s, &v) != 0)
            fail_msg("'%s': %s", ok[i].s, fl_errmsg());
        assert_int_equal(v, ok[i].want);
    }
    struct {
        const char *s, *want;
    } bad[] = {
        {"", "empty"},
        {"10", "no unit"},
        {"1x", "unknown unit 'x'"},
        {"1H", "unknown unit 'H'"},
        {"h", "expected a number"},
        {"1h ", "expected a number"},
        {" 1h", "expected a number"},
        {"-1h", "expected a number"},
        {"1.5h", "unknown unit '.'"},
        {"0s", "zero"},
        {"0h0m", "zero"},
        {"3661d", "too long"},
        {"99999999999999999999s", "too long"},
        {"9223372036854775807s", "too long"},
        {"3660d1s", "too long"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = -7;
        assert_int_equal(fl_duration_parse(bad[i].s, &v), FL_EINVAL);
        assert_int_equal(v, -7);
        if (!strstr(fl_errmsg(), bad[i].want))
            fail_msg("'%s': '%s' lacks '%s'", bad[i].s, fl_errmsg(), bad[i].want);
    }
    int64_t v;
    assert_int_equal(fl_duration_parse(NULL, &v), FL_EINVAL);
}

/* ---- the token table ---- */

static fl_store_t *
s_store(const char *name)
{
    fl_store_t *s = NULL;
    assert_int_equal(fl_store_open(s_tmp_path(name), FL_STORE_CREATE, &s), 0);
    return s;
}

static void
s_hash(uint8_t h[32])
{
    uint8_t secret[32];
    randombytes_buf(secret, 32);
    fl_token_hash_secret(secret, h);
}

static void
test_store_consume(void **state)
{
    (void)state;
    fl_store_t *s = s_store("consume.db");
    uint8_t h1[32], h2[32], h3[32], forged[32];
    int64_t id = 0;
    fl_token_row_t row;
    const int64_t t0 = 1700000000000;

    /* End to end: create, parse as the agent would, hash, consume. */
    fl_token_t *t = s_golden_fields(), *p = NULL;
    char text[FL_TOKEN_TEXT_MAX];
    assert_int_equal(fl_token_create(t, text, sizeof text, h1), 0);
    assert_int_equal(fl_store_token_add(s, t->name, h1, t0, t0 + 3600000, &id), 0);
    assert_true(id > 0);
    assert_int_equal(fl_token_parse(text, &p), 0);
    uint8_t agent_hash[32];
    fl_token_hash_secret(p->secret, agent_hash);
    assert_int_equal(fl_store_token_consume(s, agent_hash, t0 + 1000, &row), 0);
    assert_string_equal(row.name, "edge-1");
    assert_int_equal(row.id, id);
    assert_int_equal(row.used_ms, t0 + 1000);
    assert_string_equal(fl_store_token_state(&row, t0 + 2000), "used");
    /* Once only. */
    assert_int_equal(fl_store_token_consume(s, agent_hash, t0 + 2000, &row), FL_EPERM);
    assert_non_null(strstr(fl_errmsg(), "token already used"));
    assert_non_null(strstr(fl_errmsg(), "edge-1"));
    fl_token_destroy(&p);
    fl_token_destroy(&t);

    /* Expiry: usable up to the last millisecond before expires_ms. */
    s_hash(h2);
    s_hash(h3);
    assert_int_equal(fl_store_token_add(s, "edge-2", h2, t0, t0 + 60000, NULL), 0);
    assert_int_equal(fl_store_token_consume(s, h2, t0 + 60000, NULL), FL_EPERM);
    assert_non_null(strstr(fl_errmsg(), "token expired"));
    assert_int_equal(fl_store_token_add(s, "edge-3", h3, t0, t0 + 60000, NULL), 0);
    assert_int_equal(fl_store_token_consume(s, h3, t0 + 59999, NULL), 0);

    /* A forged token: unknown hash. */
    s_hash(forged);
    assert_int_equal(fl_store_token_consume(s, forged, t0, NULL), FL_ENOTFOUND);
    assert_non_null(strstr(fl_errmsg(), "unknown join token"));
    /* The database holds the hash, never the secret. */
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(fl_store_handle(s),
                                        "SELECT secret_hash FROM tokens WHERE name = 'edge-1'", -1,
                                        &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_bytes(st, 0), 32);
    assert_memory_equal(sqlite3_column_blob(st, 0), h1, 32);
    sqlite3_finalize(st);
    fl_store_destroy(&s);
}

typedef struct {
    int n;
    char states[8][16];
} s_seen_t;

/* Collect each token's state, judged at a fixed "now". */
static int
s_collect_state(const fl_token_row_t *r, void *arg)
{
    s_seen_t *seen = arg;
    snprintf(seen->states[seen->n++], 16, "%s", fl_store_token_state(r, 1700000000000 + 100000));
    return 0;
}

static void
test_store_revoke_and_rules(void **state)
{
    (void)state;
    fl_store_t *s = s_store("revoke.db");
    uint8_t h1[32], h2[32], h3[32];
    int64_t n = 0;
    const int64_t t0 = 1700000000000;
    s_hash(h1);
    s_hash(h2);
    s_hash(h3);

    assert_int_equal(fl_store_token_add(s, "cam-7", h1, t0, t0 + 1000, NULL), 0);
    /* One usable token per name at a time. */
    assert_int_equal(fl_store_token_add(s, "cam-7", h2, t0 + 10, t0 + 5000, NULL), FL_EEXIST);
    assert_non_null(strstr(fl_errmsg(), "still unused"));
    assert_int_equal(fl_store_token_revoke(s, "cam-7", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(fl_store_token_consume(s, h1, t0 + 1, NULL), FL_EPERM);
    assert_non_null(strstr(fl_errmsg(), "token revoked"));
    assert_int_equal(fl_store_token_revoke(s, "cam-7", &n), FL_ENOTFOUND);
    assert_non_null(strstr(fl_errmsg(), "cam-7"));
    /* After revocation (or expiry) a new token for the name is fine. */
    assert_int_equal(fl_store_token_add(s, "cam-7", h2, t0 + 10, t0 + 5000, NULL), 0);
    assert_int_equal(fl_store_token_add(s, "cam-7", h3, t0 + 5000, t0 + 9000, NULL), 0);
    /* The same hash twice (a replayed creation) is refused. */
    assert_int_equal(fl_store_token_add(s, "cam-8", h3, t0, t0 + 1000, NULL), FL_EEXIST);

    /* Revoke affects unused tokens only: a used one stays "used". */
    assert_int_equal(fl_store_token_consume(s, h3, t0 + 5001, NULL), 0);
    assert_int_equal(fl_store_token_revoke(s, "cam-7", &n), 0);
    assert_int_equal(n, 1); /* h2 (expired but unused) */
    assert_int_equal(fl_store_token_consume(s, h3, t0 + 5002, NULL), FL_EPERM);
    assert_non_null(strstr(fl_errmsg(), "already used"));

    /* An enrolled agent's name cannot get a token. */
    assert_int_equal(fl_store_agent_add(s, "edge-9", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
                                        t0, NULL),
                     0);
    uint8_t h4[32];
    s_hash(h4);
    assert_int_equal(fl_store_token_add(s, "edge-9", h4, t0, t0 + 1000, NULL), FL_EEXIST);
    assert_non_null(strstr(fl_errmsg(), "already enrolled"));
    /* Field rules. */
    assert_int_equal(fl_store_token_add(s, "bad name", h4, t0, t0 + 1000, NULL), FL_EINVAL);
    assert_int_equal(fl_store_token_add(s, "ok", h4, t0, t0, NULL), FL_EINVAL);
    assert_int_equal(fl_store_token_add(s, "ok", NULL, t0, t0 + 1, NULL), FL_EINVAL);

    /* Listing: oldest first, with their states. */
    s_seen_t seen = {0};
    assert_int_equal(fl_store_token_list(s, s_collect_state, &seen), 0);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.states[0], "revoked");
    assert_string_equal(seen.states[1], "revoked");
    assert_string_equal(seen.states[2], "used");
    fl_store_destroy(&s);
}

static void
test_store_transaction(void **state)
{
    (void)state;
    fl_store_t *s = s_store("tx.db");
    uint8_t h[32];
    const int64_t t0 = 1700000000000;
    s_hash(h);
    assert_int_equal(fl_store_token_add(s, "edge-1", h, t0, t0 + 60000, NULL), 0);

    /* Consume and add the agent in one transaction; roll back: unused again. */
    assert_int_equal(fl_store_begin(s), 0);
    assert_int_equal(fl_store_token_consume(s, h, t0 + 1, NULL), 0);
    assert_int_equal(fl_store_agent_add(s, "edge-1", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
                                        t0 + 1, NULL),
                     0);
    /* A failed consume inside leaves the caller's transaction usable. */
    assert_int_equal(fl_store_token_consume(s, h, t0 + 2, NULL), FL_EPERM);
    assert_true(fl_store_in_transaction(s));
    assert_int_equal(fl_store_rollback(s), 0);
    fl_agent_row_t a;
    assert_int_equal(fl_store_agent_get_by_name(s, "edge-1", &a), FL_ENOTFOUND);

    assert_int_equal(fl_store_begin(s), 0);
    assert_int_equal(fl_store_token_consume(s, h, t0 + 3, NULL), 0);
    assert_int_equal(fl_store_commit(s), 0);
    assert_int_equal(fl_store_token_consume(s, h, t0 + 4, NULL), FL_EPERM);
    fl_store_destroy(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_create_roundtrip),
        cmocka_unit_test(test_typos_and_truncation),
        cmocka_unit_test(test_bad_text),
        cmocka_unit_test(test_crafted_fields),
        cmocka_unit_test(test_encode_checks),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_store_consume),
        cmocka_unit_test(test_store_revoke_and_rules),
        cmocka_unit_test(test_store_transaction),
    };
    return cmocka_run_group_tests(tests, setup_dir, s_tmpdir_teardown);
}
