/*
 * state.h — the coordinator's state directory: where each file lives, how it
 * is created by `init`, and the model checkpoint helpers every command shares.
 *
 *   DIR/covey.db          SQLite (WAL): agents, rounds, checkpoints, metrics
 *   DIR/coordinator.ini   configuration (see config.h)
 *   DIR/server.key        the coordinator's CURVE key pair (secret, mode 0600)
 *   DIR/server.key.pub    its public key, for agents
 *   DIR/data.key          the data key sealing checkpoints at rest (0600)
 *   DIR/signing.key       the Ed25519 key signing every global model (0600)
 *   DIR/signing.key.pub   its public key, for agents
 *   DIR/admin.sock        the local admin socket of a running coordinator (0600)
 */
#ifndef COVEY_STATE_H
#define COVEY_STATE_H

#include <limits.h>

#include "config.h"
#include "fl_params.h"
#include "fl_seal.h"
#include "fl_store.h"

typedef struct coord_paths {
    char dir[PATH_MAX - 64];
    char db[PATH_MAX], config[PATH_MAX], key[PATH_MAX], pub[PATH_MAX], admin[PATH_MAX];
    char data_key[PATH_MAX], sign_key[PATH_MAX], sign_pub[PATH_MAX];
    char admin_endpoint[PATH_MAX + 8];
} coord_paths_t;

/* Fill the paths for state directory `dir`. FL_EINVAL if the path is too long. */
int coord_paths(const char *dir, coord_paths_t *p) FL_MUST_CHECK;

/* Build the model's parameter set for `spec` from raw little-endian float32
 * bytes (a checkpoint). FL_EFORMAT naming the sizes when they do not match.
 * Caller owns *out. */
int coord_model_from_bytes(const char *spec, const uint8_t *bytes, size_t len, fl_params_t **out)
    FL_MUST_CHECK;

/* BLAKE2b-256 of a parameter set's bytes (the model digest agents see). */
void coord_model_digest(const fl_params_t *p, uint8_t out[32]);

/* Hex of the first `n` bytes of a digest, for humans ("3fa2c1..."). */
const char *coord_hex(const uint8_t *d, size_t n, char *buf, size_t size);

/*
 * Append an audit row (actor, action, printf-style detail); logs (never
 * fails the caller) when the row cannot be written. Inside the caller's
 * transaction it is part of it. Returns 0 or the error code.
 */
int coord_audit(fl_store_t *store, const char *actor, const char *action, const char *fmt, ...)
    FL_PRINTF(4, 5);

/* The actor name of a local command: "local:USER". */
const char *coord_local_actor(void);

/* The federation id (meta "federation_id") into out. */
int coord_federation_id(fl_store_t *store, char out[65]) FL_MUST_CHECK;

/*
 * Store a checkpoint sealed at rest: the model bytes and the server
 * optimizer state (may be empty) are each sealed with XChaCha20-Poly1305
 * under the data key, with associated data binding federation, round and
 * model digest, so a blob edited or moved to another row does not open.
 * Works inside the caller's transaction. `work` (may be NULL) is a buffer of
 * work_cap bytes the caller does not need now: when the sealed model
 * (model_len + FL_SEAL_OVERHEAD) fits, the model is sealed there, in place,
 * instead of in a new model-sized allocation (the coordinator's peak memory
 * at each commit).
 */
int coord_checkpoint_save(fl_store_t *store, const fl_datakey_t *dk, const char *fedid,
                          int64_t round, const uint8_t digest[32], const void *model,
                          size_t model_len, const void *state, size_t state_len, int64_t now_ms,
                          void *work, size_t work_cap) FL_MUST_CHECK;

/*
 * Load and open the checkpoint of `round` (< 0: the latest). On success the
 * caller owns *model_p and *state_p (plaintext; state may be NULL/0). A blob
 * that does not open (modified, moved, wrong data key) is FL_ECRYPTO naming
 * the round; the digest of the opened model is checked too.
 */
int coord_checkpoint_open(fl_store_t *store, const fl_datakey_t *dk, const char *fedid,
                          int64_t round, fl_checkpoint_info_t *info, uint8_t **model_p,
                          size_t *model_len, uint8_t **state_p, size_t *state_len) FL_MUST_CHECK;

#endif
