/*
 * fl_identity.h — agents' Ed25519 identity keys and the certificates an
 * operator's identity CA issues for them: the PKI that secure aggregation
 * against an active (malicious) coordinator needs (SECAGG.md 1.1
 * "signatures", 1.5 "Active server"; docs/SECURITY.md).
 *
 * Why. The coordinator routes every key of a SecAgg round. If it could
 * invent participants (Sybils) it could run a round in which only one agent
 * is real and learn that agent's update from the "sum". So in the active
 * model every agent signs its round keys with an identity key, and a CA
 * that the operator keeps APART from the coordinator (ideally offline)
 * certifies each identity key. Agents check their peers' certificates
 * against the CA public key they were given out of band, never against
 * anything the coordinator sends; the coordinator itself holds no CA secret
 * and so cannot mint an identity.
 *
 * Identity key. Derived from the agent's CURVE secret key, so an agent has
 * one secret file, not two:
 *   seed = BLAKE2b-256(key = CURVE secret key (32 bytes),
 *                      msg = "covey-identity-v1")
 *   (id_pk, id_sk) = crypto_sign_seed_keypair(seed)
 * Rotating the CURVE key (covey-agent rotate) therefore changes the identity
 * key too, and the agent needs a new certificate.
 *
 * Certificate, FL_CERT_LEN = 128 bytes:
 *   curve_pk[32]  the agent's CURVE public key (its transport identity, as
 *                 ZAP reports it), binary
 *   id_pk[32]     its Ed25519 identity public key
 *   ca_sig[64]    Ed25519 signature by the CA over
 *                 "covey-cert-v1" 0x00 || curve_pk || id_pk
 * Text form: "covey-cert1." followed by the unpadded base64url encoding of
 * the 128 bytes (183 characters). A certificate file holds the text form and
 * a newline; surrounding whitespace is ignored when parsing.
 *
 * CA key files are fl_sign key files (fl_sign.h format, secret 0600, public
 * ".pub" next to it) with their own header line, written by
 * fl_identity_ca_save(); the CA public key is 64 hex digits, loaded with
 * fl_sign_pubkey_load().
 */
#ifndef FL_IDENTITY_H
#define FL_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "fl_sign.h"
#include "fl_util.h"

#define FL_CERT_LEN 128
#define FL_CERT_PREFIX "covey-cert1."
#define FL_CERT_TEXT_MAX 200 /* text form with its NUL: 12 + 171 + 1 fits */
#define FL_CERT_DOMAIN "covey-cert-v1"
#define FL_IDENTITY_DOMAIN "covey-identity-v1"

/* Offsets of the certificate's fields. */
#define FL_CERT_CURVE_PK(c) ((c) + 0)
#define FL_CERT_ID_PK(c) ((c) + 32)
#define FL_CERT_SIG(c) ((c) + 64)

typedef struct fl_identity fl_identity_t;

/*
 * The identity key of the agent whose CURVE secret key is `curve_secret_z85`
 * (40 Z85 characters, as fl_keypair_secret() gives it). The secret half lives
 * in guarded memory. Returns 0 and *out (caller owns it), or FL_EINVAL (not a
 * Z85 key) / FL_ENOMEM with *out untouched. Deterministic: the same CURVE key
 * always gives the same identity key.
 */
int fl_identity_derive(const char *curve_secret_z85, fl_identity_t **out) FL_MUST_CHECK;

/* Wipe, free and NULL *self_p. Accepts NULL and *self_p == NULL. */
void fl_identity_destroy(fl_identity_t **self_p);

/* The Ed25519 identity public key (32 bytes, borrowed for the life of id). */
const uint8_t *fl_identity_public(const fl_identity_t *id);

/* Sign msg[0..len) with the identity key (detached, 64 bytes). Can't fail. */
void fl_identity_sign(const fl_identity_t *id, const uint8_t *msg, size_t len,
                      uint8_t sig[FL_SIGN_SIG_LEN]);

/* Verify a detached identity signature: 0, or FL_ECRYPTO "... signature
 * invalid". */
int fl_identity_verify(const uint8_t id_pk[FL_SIGN_PK_LEN], const uint8_t *msg, size_t len,
                       const uint8_t sig[FL_SIGN_SIG_LEN]) FL_MUST_CHECK;

/*
 * The CA issues a certificate binding curve_pk to id_pk. FL_EINVAL if id_pk
 * is not a valid Ed25519 point or curve_pk is all zeros. Writes cert[0..128).
 */
int fl_cert_issue(const fl_signkey_t *ca, const uint8_t curve_pk[32], const uint8_t id_pk[32],
                  uint8_t cert[FL_CERT_LEN]) FL_MUST_CHECK;

/*
 * Check cert against the CA public key: 0, or FL_ECRYPTO "identity
 * certificate not signed by the identity CA <hex prefix>" (another CA, or a
 * modified certificate). Constant-time in the signature (libsodium).
 */
int fl_cert_verify(const uint8_t ca_pk[FL_SIGN_PK_LEN],
                   const uint8_t cert[FL_CERT_LEN]) FL_MUST_CHECK;

/* The text form (FL_CERT_PREFIX + base64url) into out[0..FL_CERT_TEXT_MAX).
 * Can't fail. */
void fl_cert_format(const uint8_t cert[FL_CERT_LEN], char out[FL_CERT_TEXT_MAX]);

/* Parse the text form (surrounding whitespace ignored). FL_EFORMAT naming
 * what is wrong (prefix, length, base64). Does NOT verify the signature. */
int fl_cert_parse(const char *text, uint8_t cert[FL_CERT_LEN]) FL_MUST_CHECK;

/*
 * A certificate given as its text form or as the path of a file holding it.
 * FL_ENOTFOUND (neither), FL_EFORMAT (naming the file), FL_EIO. Does NOT
 * verify the signature.
 */
int fl_cert_load(const char *path_or_text, uint8_t cert[FL_CERT_LEN]) FL_MUST_CHECK;

/* Write the text form and a newline to path (mode 0644, replaced). FL_EIO. */
int fl_cert_save(const uint8_t cert[FL_CERT_LEN], const char *path) FL_MUST_CHECK;

/*
 * Save a CA key like fl_signkey_save() (secret 0600 never replacing a file:
 * FL_EEXIST; public ".pub" 0644) but with the header lines
 * "# covey identity CA key (Ed25519) -- keep offline, away from the
 * coordinator" and "# covey identity CA public key (Ed25519)". Loaded with
 * fl_signkey_load() / fl_sign_pubkey_load().
 */
int fl_identity_ca_save(const fl_signkey_t *ca, const char *path) FL_MUST_CHECK;

#endif
