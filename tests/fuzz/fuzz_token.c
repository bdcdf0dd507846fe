/*
 * fuzz_token.c — libFuzzer target for the parsers of what an operator types
 * or pastes: fl_token_parse() (join tokens), fl_duration_parse() (--ttl) and
 * fl_audit_head_parse() (an exported audit head). Properties:
 *   - each returns 0 or its documented error code, never crashes;
 *   - a token that parses re-encodes to exactly its (trimmed) text: the
 *     encoding is canonical, so nothing the parser accepts is ambiguous;
 *   - the input is also wrapped as a token body with a valid checksum, so
 *     the field parser behind the checksum is reached, not only the checksum;
 *   - a parsed duration is in 1..FL_DURATION_MAX_S.
 *
 * Built and run by `make fuzz` (clang, all of common/ linked), or:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -std=c17 -D_DEFAULT_SOURCE -Icommon tests/fuzz/fuzz_token.c common/*.c \
 *       $(pkg-config --cflags --libs libzmq libsodium openblas msgpack sqlite3 zlib \
 *       jansson inih) -lm -lpthread -o build/fuzz/fuzz_token
 *   build/fuzz/fuzz_token -max_total_time=60 build/fuzz/fuzz_token.corpus
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_audit.h"
#include "fl_token.h"
#include "fl_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
s_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_token: property violated: %s (%s)\n", what, fl_errmsg());
        abort();
    }
}

/* Parse `text`; if it parses, it must re-encode to itself (trimmed). */
static void
s_token(const char *text)
{
    fl_token_t *t = NULL;
    static char again[FL_TOKEN_TEXT_MAX];
    int rc = fl_token_parse(text, &t);
    s_check(rc == 0 || rc == FL_EFORMAT, "parse returns 0 or FL_EFORMAT");
    if (rc != 0) {
        s_check(t == NULL, "no output on failure");
        return;
    }
    s_check(fl_token_encode(t, again, sizeof again) == 0, "a parsed token encodes");
    const char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f')
        p++;
    size_t n = strlen(again);
    s_check(strncmp(p, again, n) == 0, "the encoding is canonical");
    uint8_t h[FL_TOKEN_HASH_LEN];
    fl_token_hash_secret(t->secret, h);
    fl_token_destroy(&t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t personal[16] = "covey-token-chk1";
    static char text[FL_TOKEN_TEXT_MAX + 16];
    static uint8_t body[FL_TOKEN_BIN_MAX + 4];
    char *s;

    if (sodium_init() < 0)
        abort();
    if (size > 8192)
        return 0;
    s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    s_token(s);
    int64_t secs = -1;
    int rc = fl_duration_parse(s, &secs);
    s_check(rc == 0 || rc == FL_EINVAL, "duration returns 0 or FL_EINVAL");
    s_check(rc != 0 || (secs >= 1 && secs <= FL_DURATION_MAX_S), "duration in range");
    int64_t seq;
    uint8_t h[32];
    rc = fl_audit_head_parse(s, &seq, h);
    s_check(rc == 0 || rc == FL_EINVAL, "head parse returns 0 or FL_EINVAL");
    s_check(rc != 0 || seq >= 0, "head seq not negative");
    free(s);

    /* The raw bytes as a token body with a correct checksum. */
    if (size <= FL_TOKEN_BIN_MAX) {
        uint8_t full[32];
        memcpy(body, data, size);
        crypto_generichash_blake2b_salt_personal(full, 32, body, size, NULL, 0, NULL, personal);
        memcpy(body + size, full, 4);
        memcpy(text, FL_TOKEN_PREFIX, sizeof FL_TOKEN_PREFIX - 1);
        sodium_bin2base64(text + sizeof FL_TOKEN_PREFIX - 1,
                          sizeof text - (sizeof FL_TOKEN_PREFIX - 1), body, size + 4,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        s_token(text);
    }
    return 0;
}
