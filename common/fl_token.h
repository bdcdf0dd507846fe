/*
 * fl_token.h — one-time join tokens, and durations ("1h", "7d") for their
 * lifetimes.
 *
 * `covey-coordinator token create --name NAME --ttl 1h` prints a token; the
 * operator hands it to the device and `covey-agent enroll TOKEN` needs
 * nothing else: the token says where the coordinator is, which keys it
 * holds, and carries a 32-byte random secret that proves the agent was
 * invited. The coordinator stores only fl_token_hash_secret(secret) (see
 * fl_store_token_*), so its database cannot be used to forge tokens.
 *
 * Text form: "covey1." followed by the unpadded base64url encoding of the
 * binary form (v1), all fields length-checked on parsing:
 *
 *   u8      version (1)
 *   u8      flags (0; any other value is refused)
 *   32      secret
 *   32      coordinator CURVE public key (shown as Z85)
 *   32      coordinator Ed25519 model-signing public key
 *   u8 n    federation id, n = 1..63 bytes
 *   u8 n    agent name, n = 1..63 bytes ([A-Za-z0-9._-], as agent names)
 *   u8 n    enrollment endpoint, n = 1..255 printable bytes, no spaces
 *   u8 k    number of agents' endpoints, k = 1..FL_TOKEN_ENDPOINTS_MAX,
 *           then k times: u8 n, endpoint (1..255 printable bytes, no spaces)
 *   4       checksum: first 4 bytes of BLAKE2b-256 (personal
 *           "covey-token-chk1") of all the bytes before it
 *
 * The checksum catches typos and truncation before anything is sent; it is
 * not a MAC (the secret and CURVE do the authenticating). A token is ~180-250
 * characters; surrounding whitespace (a pasted newline) is ignored.
 */
#ifndef FL_TOKEN_H
#define FL_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

#define FL_TOKEN_PREFIX "covey1."
#define FL_TOKEN_VERSION 1
#define FL_TOKEN_SECRET_LEN 32
#define FL_TOKEN_HASH_LEN 32
#define FL_TOKEN_ENDPOINTS_MAX 8
#define FL_TOKEN_ENDPOINT_MAX 255
#define FL_TOKEN_FEDERATION_MAX 63
#define FL_TOKEN_NAME_MAX 63
/* Largest binary form: 2 + 96 + 64 + 64 + 256 + 1 + 8 * 256 + 4. */
#define FL_TOKEN_BIN_MAX 2535
/* Largest token text, NUL included: prefix + base64 of FL_TOKEN_BIN_MAX + NUL. */
#define FL_TOKEN_TEXT_MAX 3388

/*
 * A token's fields. Lives in guarded memory because it holds the secret:
 * make one with fl_token_new(), release it with fl_token_destroy().
 */
typedef struct fl_token {
    uint8_t secret[FL_TOKEN_SECRET_LEN];
    char server_key[41];                    /* coordinator CURVE public key, Z85 */
    uint8_t sign_key[32];                   /* coordinator Ed25519 public key */
    char federation[FL_TOKEN_FEDERATION_MAX + 1];
    char name[FL_TOKEN_NAME_MAX + 1];       /* the name the agent enrolls as */
    char enroll_endpoint[FL_TOKEN_ENDPOINT_MAX + 1];
    size_t n_endpoints;                     /* 1..FL_TOKEN_ENDPOINTS_MAX */
    char endpoints[FL_TOKEN_ENDPOINTS_MAX][FL_TOKEN_ENDPOINT_MAX + 1];
} fl_token_t;

/* A zeroed token in guarded memory. Caller owns it (fl_token_destroy). NULL
 * with a detail if libsodium cannot initialise or memory cannot be had. */
fl_token_t *fl_token_new(void);

/* Wipe and free; nulls *self_p; accepts NULL and *self_p == NULL. */
void fl_token_destroy(fl_token_t **self_p);

/*
 * Encode t (every field set, secret included) as token text into out[0..cap),
 * NUL-terminated. FL_EINVAL naming the field that breaks a rule above;
 * FL_ERANGE if cap is too small (FL_TOKEN_TEXT_MAX always suffices). out is
 * untouched on failure. Deterministic: the same fields give the same text.
 */
int fl_token_encode(const fl_token_t *t, char *out, size_t cap) FL_MUST_CHECK;

/*
 * Make a new token: fill t->secret with 32 random bytes, encode t into out
 * (as fl_token_encode) and write fl_token_hash_secret(t->secret) to
 * secret_hash, which is what the coordinator stores. Same failures as
 * fl_token_encode; on failure out and secret_hash are untouched.
 */
int fl_token_create(fl_token_t *t, char *out, size_t cap,
                    uint8_t secret_hash[FL_TOKEN_HASH_LEN]) FL_MUST_CHECK;

/*
 * Parse token text. On success *out is a new token the caller owns; on
 * failure *out is untouched and the FL_EFORMAT detail says which of: empty,
 * too long, not a Covey token (bad prefix), an unknown token version
 * ("covey2." or an inner version byte), not base64url (naming the position),
 * truncated, checksum mismatch (mistyped, truncated or altered), unknown
 * flags, or a field (naming it) out of its rules. The detail never echoes
 * the token, which holds a secret. FL_ENOMEM if guarded memory fails.
 */
int fl_token_parse(const char *text, fl_token_t **out) FL_MUST_CHECK;

/* BLAKE2b-256 of the secret, personal "covey-token-v1\0\0": what the
 * coordinator stores and looks tokens up by. Can't fail. */
void fl_token_hash_secret(const uint8_t secret[FL_TOKEN_SECRET_LEN],
                          uint8_t hash[FL_TOKEN_HASH_LEN]);

/*
 * Parse a duration: one or more <integer><unit> groups, units s, m, h, d, w
 * (seconds, minutes, hours, days, weeks), e.g. "90s", "30m", "1h", "7d",
 * "1h30m". Writes seconds to *seconds. FL_EINVAL naming the string for: empty,
 * a number without a unit, an unknown unit, a stray character, zero, or more
 * than FL_DURATION_MAX_S (10 years; also guards overflow).
 */
#define FL_DURATION_MAX_S ((int64_t)10 * 366 * 24 * 3600)
int fl_duration_parse(const char *s, int64_t *seconds) FL_MUST_CHECK;

#endif
