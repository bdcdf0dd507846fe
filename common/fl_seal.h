/*
 * fl_seal.h — blobs sealed at rest: the coordinator's checkpoints and the
 * agent's cached model, encrypted and authenticated with
 * XChaCha20-Poly1305-IETF under a 32-byte data key made at `init`.
 *
 * Associated data binds each blob to where it belongs: build it with
 * fl_seal_ad() from a purpose (model or optimizer state, coordinator or
 * agent), the federation id, the round and the model digest, so that a blob
 * copied to another row, round, federation or purpose fails to open, as does
 * a modified blob or one opened with another data key.
 *
 * Sealed blob, format version 1 (FL_SEAL_OVERHEAD = 53 bytes added):
 *
 *   offset  size  field
 *   0       4     magic "CVSB"
 *   4       1     format version (1)
 *   5       8     key id: BLAKE2b-64 keyed with the data key, personal
 *                 "covey-datakey-id", of the empty message (names the key
 *                 without revealing anything about it)
 *   13      24    random nonce
 *   37      len   ciphertext
 *   37+len  16    Poly1305 tag
 *
 * The AEAD's associated data is the first 13 bytes (magic, version, key id)
 * followed by the caller's associated data, so the header cannot be altered
 * either. Random 192-bit nonces make nonce reuse negligible for any number of
 * blobs under one key.
 *
 * Data key file (mode 0600, checked with fl_key_check_file_mode like ssh):
 *
 *   # covey data key (XChaCha20-Poly1305) -- keep private
 *   # Sealed checkpoints cannot be read without it: back it up with the state.
 *   key = <64 hex digits>
 */
#ifndef FL_SEAL_H
#define FL_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

#define FL_SEAL_MAGIC "CVSB"
#define FL_SEAL_VERSION 1
#define FL_SEAL_KEY_LEN 32
#define FL_SEAL_KEY_ID_LEN 8
#define FL_SEAL_HEADER_LEN 37 /* magic 4 + version 1 + key id 8 + nonce 24 */
#define FL_SEAL_TAG_LEN 16
#define FL_SEAL_OVERHEAD (FL_SEAL_HEADER_LEN + FL_SEAL_TAG_LEN)

/* Largest caller associated data accepted by fl_seal / fl_unseal. */
#define FL_SEAL_AD_CALLER_MAX 4096

/* Purposes for fl_seal_ad: a blob sealed for one cannot be opened as another
 * (e.g. the optimizer state put in place of the model). */
#define FL_SEAL_PURPOSE_MODEL "checkpoint.model"
#define FL_SEAL_PURPOSE_STATE "checkpoint.state"
#define FL_SEAL_PURPOSE_AGENT_MODEL "agent.model"

/* Largest result of fl_seal_ad: version 1 + (1 + 255) purpose + (1 + 255)
 * federation id + 8 round + 32 digest. */
#define FL_SEAL_AD_MAX 553

typedef struct fl_datakey fl_datakey_t;

/* A fresh random data key in guarded memory. Caller owns the result and
 * releases it with fl_datakey_destroy. NULL (with a detail) only if libsodium
 * cannot initialise or guarded memory cannot be had. */
fl_datakey_t *fl_datakey_generate(void);

/* Wipe and free a data key; nulls *self_p; accepts NULL and *self_p == NULL. */
void fl_datakey_destroy(fl_datakey_t **self_p);

/* The key id written into every blob sealed under k (8 bytes, see above), for
 * display ("data key 1f2e...") and for telling a wrong key from a modified
 * blob. Can't fail. */
void fl_datakey_id(const fl_datakey_t *k, uint8_t id[FL_SEAL_KEY_ID_LEN]);

/*
 * Write k to a new file `path`, mode 0600, atomically; an existing file is
 * never replaced (FL_EEXIST), because a lost data key loses every checkpoint
 * sealed under it. FL_EIO / FL_EINVAL naming the file otherwise. The file
 * image is built in guarded memory and wiped.
 */
int fl_datakey_save(const fl_datakey_t *k, const char *path) FL_MUST_CHECK;

/*
 * Load the data key file `path`. On success *out is a new key the caller
 * owns; on failure *out is untouched and: FL_ENOTFOUND (no such file);
 * FL_EPERM (not a regular file, mode grants group/other anything, or owned by
 * another user: the detail names the file, its mode and the chmod that fixes
 * it); FL_EFORMAT (not a data key file: bad line, missing or repeated key,
 * not 64 hex digits); FL_EIO.
 */
int fl_datakey_load(const char *path, fl_datakey_t **out) FL_MUST_CHECK;

/*
 * Build the canonical associated data binding a blob to its place:
 *   0x01 || u8 len || purpose || u8 len || federation_id || u64 BE round ||
 *   digest[32]
 * Length prefixes make the encoding unambiguous. purpose and federation_id
 * are 1..255 bytes; round >= 0; digest is the BLAKE2b-256 of the model the
 * blob holds (for the optimizer state: of the model it goes with). Writes
 * *outlen (<= FL_SEAL_AD_MAX) bytes to out. FL_EINVAL naming the bad field.
 */
int fl_seal_ad(const char *purpose, const char *federation_id, int64_t round,
               const uint8_t digest[32], uint8_t out[FL_SEAL_AD_MAX], size_t *outlen) FL_MUST_CHECK;

/*
 * Seal pt[0..len) under k with associated data ad[0..adlen) (adlen <=
 * FL_SEAL_AD_CALLER_MAX; ad may be NULL when adlen is 0). *out is a malloc'd
 * blob of *outlen = len + FL_SEAL_OVERHEAD bytes the caller frees with free().
 * FL_EINVAL for bad arguments, FL_ERANGE if len is too large, FL_ENOMEM if the
 * blob cannot be allocated. No output on failure.
 */
int fl_seal(const fl_datakey_t *k, const uint8_t *ad, size_t adlen, const void *pt, size_t len,
            uint8_t **out, size_t *outlen) FL_MUST_CHECK;

/*
 * Seal in place, for big models without a second copy: buf[0..len) holds the
 * plaintext and buf has room for cap >= len + FL_SEAL_OVERHEAD bytes (FL_ERANGE
 * otherwise, buf untouched). On success buf[0..*outlen) is the sealed blob.
 */
int fl_seal_inplace(const fl_datakey_t *k, const uint8_t *ad, size_t adlen, uint8_t *buf,
                    size_t len, size_t cap, size_t *outlen) FL_MUST_CHECK;

/*
 * Open a sealed blob. On success *out is a 64-byte aligned buffer of *outlen =
 * bloblen - FL_SEAL_OVERHEAD bytes that the caller frees with free() (a
 * non-NULL buffer even when the plaintext is empty). Failures, with no output:
 *   FL_EFORMAT  not a sealed blob (bad magic), an unknown format version, or
 *               shorter than FL_SEAL_OVERHEAD (truncated);
 *   FL_ECRYPTO  sealed under a different data key (the key ids differ), or
 *               "authentication failed": the blob was modified, moved to
 *               another round, federation or purpose, or sealed under a
 *               different data key;
 *   FL_ENOMEM   the plaintext buffer cannot be allocated; FL_EINVAL.
 * Callers add what the blob was ("checkpoint of round 3: ...").
 */
int fl_unseal(const fl_datakey_t *k, const uint8_t *ad, size_t adlen, const uint8_t *blob,
              size_t bloblen, uint8_t **out, size_t *outlen) FL_MUST_CHECK;

/*
 * Open in place: buf[0..len) is a sealed blob; on success buf[0..*ptlen)
 * holds the plaintext (moved to the start of buf, so its alignment is buf's).
 * Same failures as fl_unseal. On failure the header is unchanged but the
 * rest of buf is unspecified (libsodium wipes the would-be plaintext, which
 * here is the ciphertext): a blob that fails is not usable anyway.
 */
int fl_unseal_inplace(const fl_datakey_t *k, const uint8_t *ad, size_t adlen, uint8_t *buf,
                      size_t len, size_t *ptlen) FL_MUST_CHECK;

#endif
