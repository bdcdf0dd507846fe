/*
 * fl_sign.h — Ed25519 signatures of global models: the coordinator signs each
 * model it commits, agents verify before they train or evaluate.
 *
 * What is signed (message format "covey-model-v1"):
 *
 *   "covey-model-v1" 0x00          15 bytes, domain separation
 *   u8 len || federation id        1..255 bytes
 *   u64 BE model round             the round whose commit produced the model
 *                                  (0: the initial model made at init)
 *   u8 len || model spec           0..255 bytes, e.g. "mlp:784-256-10"
 *   digest[32]                     BLAKE2b-256 of the model's float32 data
 *
 * Decisions, for integration:
 * - The round is the MODEL's round (its checkpoint), not the round of the
 *   message that carries it: one signature, made once at commit and storable
 *   with the checkpoint, covers every message announcing that model. A "train"
 *   task of round r carries the model of round r - 1; an "eval" task of round
 *   r carries the model of round r. The agent verifies with that mapping.
 * - The attempt is not signed: every attempt of a round trains the same model,
 *   so binding it would add no protection (a replay delivers the very model
 *   the coordinator meant) and would force a signature per retry.
 * - The spec is signed because the digest covers the numbers only: the same
 *   float32 values under another architecture would be another model.
 * - The agent needs only the coordinator's public signing key (32 bytes,
 *   carried in the join token) and the federation id (also in the token).
 *
 * Key files (secret mode 0600, checked like ssh; the seed is stored):
 *
 *   <path>      "# covey model-signing key (Ed25519) -- keep private\n"
 *               "public = <64 hex>\nsecret = <64 hex seed>\n"
 *   <path>.pub  "# covey model-signing public key (Ed25519)\npublic = <64 hex>\n"
 *
 * fl_signkey_save_labelled() writes the same files with other comment lines
 * (the identity CA key of fl_identity.h is one).
 */
#ifndef FL_SIGN_H
#define FL_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

#define FL_SIGN_PK_LEN 32
#define FL_SIGN_SIG_LEN 64
#define FL_SIGN_DOMAIN "covey-model-v1"
/* Longest signed message: 15 + 256 + 8 + 256 + 32. */
#define FL_SIGN_MSG_MAX 567

typedef struct fl_signkey fl_signkey_t;

/* A fresh Ed25519 key pair, secret half in guarded memory. Caller owns the
 * result (fl_signkey_destroy). NULL with a detail only if libsodium cannot
 * initialise or guarded memory cannot be had. */
fl_signkey_t *fl_signkey_generate(void);

/* Wipe and free; nulls *self_p; accepts NULL and *self_p == NULL. */
void fl_signkey_destroy(fl_signkey_t **self_p);

/* The public key (32 bytes). Borrowed for the life of k. */
const uint8_t *fl_signkey_public(const fl_signkey_t *k);

/*
 * Sign msg[0..len) with k: a detached 64-byte signature into sig. For
 * statements other than models (fl_identity's certificates): the caller puts
 * its own domain string first, so that no signature of one kind verifies as
 * another. Can't fail.
 */
void fl_signkey_sign(const fl_signkey_t *k, const uint8_t *msg, size_t len,
                     uint8_t sig[FL_SIGN_SIG_LEN]);

/* Public key as 64 lowercase hex digits and a NUL. Can't fail. */
void fl_sign_pubkey_hex(const uint8_t pk[FL_SIGN_PK_LEN], char out[2 * FL_SIGN_PK_LEN + 1]);

/*
 * Write k to `path` (secret, mode 0600, never replacing an existing file:
 * FL_EEXIST) and `path`.pub (public, mode 0644, replaced). The secret file
 * image is built in guarded memory and wiped. FL_EIO / FL_EINVAL naming the
 * file otherwise; no new secret file is left behind on failure.
 */
int fl_signkey_save(const fl_signkey_t *k, const char *path) FL_MUST_CHECK;

/*
 * fl_signkey_save with other comment lines: `secret_label` and `public_label`
 * become the first line ("# <label>") of the secret and the .pub file, so
 * that a file says what it holds (fl_identity_ca_save names the identity CA
 * this way). Each label is one line of under 200 characters (FL_EINVAL
 * otherwise). fl_signkey_load / fl_sign_pubkey_load ignore comment lines, so
 * they read these files like any other. Same results as fl_signkey_save.
 */
int fl_signkey_save_labelled(const fl_signkey_t *k, const char *path, const char *secret_label,
                             const char *public_label) FL_MUST_CHECK;

/*
 * Load a signing key file. *out (caller owns) untouched on failure:
 * FL_ENOTFOUND; FL_EPERM (the ssh rule: regular file, owner, no group/other
 * bits; the detail names the file and the fix); FL_EFORMAT (bad line, missing
 * or repeated field, not hex, or a public key that is not the secret's);
 * FL_EIO.
 */
int fl_signkey_load(const char *path, fl_signkey_t **out) FL_MUST_CHECK;

/*
 * A public signing key given as 64 hex digits, or as the path of a .pub file
 * written by fl_signkey_save. A file holding a secret is refused
 * (FL_EFORMAT) so secret files are not passed around as public ones.
 * FL_ENOTFOUND (neither hex nor an existing file), FL_EFORMAT, FL_EIO.
 */
int fl_sign_pubkey_load(const char *path_or_hex, uint8_t pk[FL_SIGN_PK_LEN]) FL_MUST_CHECK;

/*
 * The exact bytes signed (format above) into out[0..*len), for tests and
 * documentation. FL_EINVAL naming the field: federation id not 1..255 bytes,
 * spec over 255 bytes (NULL is taken as ""), round < 0.
 */
int fl_sign_model_message(const char *federation_id, int64_t round, const char *spec,
                          const uint8_t digest[32], uint8_t out[FL_SIGN_MSG_MAX],
                          size_t *len) FL_MUST_CHECK;

/* Sign the model statement; writes 64 bytes to sig. FL_EINVAL as above. */
int fl_sign_model(const fl_signkey_t *k, const char *federation_id, int64_t round,
                  const char *spec, const uint8_t digest[32],
                  uint8_t sig[FL_SIGN_SIG_LEN]) FL_MUST_CHECK;

/*
 * Verify a model signature with the coordinator's public key: 0 if valid;
 * FL_ECRYPTO "model signature invalid" naming the round and a digest prefix
 * when the signature does not match (other key, other federation, round, spec
 * or digest, or a modified signature); FL_EINVAL for bad arguments.
 */
int fl_verify_model(const uint8_t pk[FL_SIGN_PK_LEN], const char *federation_id, int64_t round,
                    const char *spec, const uint8_t digest[32],
                    const uint8_t sig[FL_SIGN_SIG_LEN]) FL_MUST_CHECK;

#endif
