/*
 * state.h — the coordinator's state directory: where each file lives, how it
 * is created by `init`, and the model checkpoint helpers every command shares.
 *
 *   DIR/covey.db          SQLite (WAL): agents, rounds, checkpoints, metrics
 *   DIR/coordinator.ini   configuration (see config.h)
 *   DIR/server.key        the coordinator's CURVE key pair (secret, mode 0600)
 *   DIR/server.key.pub    its public key, for agents
 *   DIR/admin.sock        the local admin socket of a running coordinator (0600)
 */
#ifndef COVEY_STATE_H
#define COVEY_STATE_H

#include <limits.h>

#include "config.h"
#include "fl_params.h"
#include "fl_store.h"

typedef struct coord_paths {
    char dir[PATH_MAX - 64];
    char db[PATH_MAX], config[PATH_MAX], key[PATH_MAX], pub[PATH_MAX], admin[PATH_MAX];
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

#endif
