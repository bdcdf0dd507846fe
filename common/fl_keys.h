/*
 * fl_keys.h — CurveZMQ key pairs and the files that hold them.
 *
 * A key pair is two Z85 strings of 40 characters (32-byte Curve25519 keys).
 * The secret half lives in sodium_malloc memory and is wiped when the pair is
 * destroyed; it is never logged. On disk a pair is two small text files:
 *
 *   <path>      mode 0600   "# covey CURVE secret key -- keep private\n"
 *                           "public = <z85>\nsecret = <z85>\n"
 *   <path>.pub  mode 0644   "# covey CURVE public key\npublic = <z85>\n"
 *
 * Like ssh, loading a secret key file refuses one that is not a regular file,
 * that grants any access to group or others, or that belongs to another user.
 */
#ifndef FL_KEYS_H
#define FL_KEYS_H

#include "fl_util.h"

/* Length of a Z85-encoded 32-byte key, without the terminating NUL. */
#define FL_KEY_Z85_LEN 40

/* Largest key file accepted (they are ~130 bytes; anything bigger is not ours). */
#define FL_KEY_FILE_MAX 4096

typedef struct fl_keypair fl_keypair_t;

/* Make a fresh CURVE key pair (zmq_curve_keypair). Caller owns the result and
 * frees it with fl_keypair_destroy. Returns NULL only if libsodium or libzmq
 * cannot make keys (no CURVE support, no entropy); fl_errmsg() says why. */
fl_keypair_t *fl_keypair_generate(void);

/* Wipe and free a key pair; nulls *self_p; accepts NULL and *self_p == NULL. */
void fl_keypair_destroy(fl_keypair_t **self_p);

/* The public key, Z85, 40 characters. Borrowed for the life of kp. */
const char *fl_keypair_public(const fl_keypair_t *kp);

/* The secret key, Z85, 40 characters, in guarded memory. Borrowed for the
 * life of kp; never log it or copy it into ordinary memory. */
const char *fl_keypair_secret(const fl_keypair_t *kp);

/*
 * Write kp to `path` (secret, mode 0600) and `path`.pub (public, mode 0644).
 * The secret file is created complete under a temporary name, synced, then
 * linked into place, so a reader never sees half a key. An existing `path` is
 * never overwritten (FL_EEXIST): losing a secret key loses an identity, so a
 * caller that means to replace one removes it first. An existing .pub is
 * replaced. On failure no new secret file is left behind.
 */
int fl_keypair_save(const fl_keypair_t *kp, const char *path) FL_MUST_CHECK;

/*
 * Load a secret key file written by fl_keypair_save. On success *out is a new
 * key pair the caller owns; on failure *out is untouched and:
 *   FL_ENOTFOUND  no such file;
 *   FL_EPERM      not a regular file, mode grants group/other any access
 *                 (mode & 077), or the owner is not geteuid(); the detail
 *                 names the file, its mode and the chmod that fixes it;
 *   FL_EFORMAT    larger than FL_KEY_FILE_MAX, a line that is not a comment or
 *                 `public = ...` / `secret = ...`, a missing or repeated key,
 *                 bad Z85, or a public key that is not the secret key's;
 *   FL_EIO        the file could not be read;
 *   FL_EINVAL     no path given.
 * The read buffer is guarded memory and is wiped before it is freed.
 */
int fl_keypair_load(const char *path, fl_keypair_t **out) FL_MUST_CHECK;

/*
 * A peer's public key given either as a 40-character Z85 string, taken as is,
 * or as the path of a .pub file (`public = <z85>`). Writes 40 characters and a
 * NUL to out. A file that also holds a secret key is refused (FL_EFORMAT) so
 * that secret files are not passed around as public ones. Returns 0,
 * FL_ENOTFOUND (neither a key nor an existing file), FL_EFORMAT or FL_EIO.
 */
int fl_key_load_public(const char *path_or_z85, char out[FL_KEY_Z85_LEN + 1]) FL_MUST_CHECK;

/* 0 if z85 is exactly 40 characters of the Z85 alphabet that decode to 32
 * bytes; FL_EFORMAT otherwise (the detail never echoes the string, which
 * may be a secret). */
int fl_key_check_z85(const char *z85) FL_MUST_CHECK;

/*
 * The ssh rule for secret files, alone, for any secret file (key files,
 * checkpoint keys): `path` must be a regular file owned by geteuid() whose
 * mode grants nothing to group or others. Follows symbolic links (the target
 * is what is checked). Returns 0, FL_ENOTFOUND, FL_EPERM or FL_EIO.
 */
int fl_key_check_file_mode(const char *path) FL_MUST_CHECK;

#endif
