/*
 * fl_store.h — the coordinator's persistent state in one SQLite file.
 *
 * One database holds the federation's metadata and configuration, the
 * enrolled agents, one row per round attempt, per-agent round records,
 * checkpoints (global model and server optimizer state, as opaque bytes) and
 * per-round metrics. It is opened in WAL mode so that readers (the operator's
 * `status`, the ZAP handler's own connection) never block the writer, with
 * foreign keys on, a 5 s busy timeout and 64 KiB pages (set when the file is
 * created: big blobs commit ~2.5x faster than with 4 KiB pages).
 *
 * Durability: synchronous=NORMAL in WAL mode. A commit survives the process
 * being killed at any moment; after a power loss or an OS crash the database
 * is still consistent but may lose the commits since the last WAL checkpoint
 * (a checkpoint runs at least every 64 MiB of WAL, so after every commit of a
 * large checkpoint). Callers that want the commit of a round to be durable
 * against power loss too call fl_store_set_sync_full(s, true) before
 * fl_store_begin() (one extra fsync per commit).
 *
 * Schema: versioned with PRAGMA user_version; s_migrations[] in fl_store.c is
 * an ordered list of SQL steps, each applied in its own transaction on
 * read-write open. Adding a migration is appending one string to that array.
 * A database whose version is newer than the program knows is refused, as is
 * a SQLite file that belongs to another application (PRAGMA application_id).
 *
 * Transactions: every function below works inside an outer transaction opened
 * with fl_store_begin() and never commits it, so the commit of a round
 * (round row + checkpoint + metrics) is one atomic transaction. Outside one,
 * each call is atomic by itself (multi-statement calls use their own
 * transaction or a savepoint).
 *
 * Errors: every SQLite failure becomes FL_EDB with a detail naming the file,
 * the operation and sqlite3_errmsg(); nothing aborts on bad data in the file.
 * A store (connection) belongs to one thread; other threads open their own.
 */
#ifndef FL_STORE_H
#define FL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

struct sqlite3;
typedef struct fl_store fl_store_t;

enum {
    FL_STORE_RW = 0,      /* the file must exist; migrated to the current schema */
    FL_STORE_CREATE = 1,  /* created (mode 0600) if absent; migrated */
    FL_STORE_READONLY = 2 /* SQLITE_OPEN_READONLY: creates and migrates nothing */
};

/* Value of PRAGMA application_id in every Covey state database ("Covy"). */
#define FL_STORE_APP_ID 0x436f7679

/*
 * Open the state database at `path`. With FL_STORE_CREATE a missing file is
 * created with mode 0600 (its -wal and -shm files inherit that mode). RW and
 * CREATE set WAL mode, page size (new files only) and migrate the schema to
 * fl_store_schema_latest(). READONLY changes nothing in the database and
 * requires its schema to be exactly the current one (SQLite still creates the
 * -wal and -shm files beside it if absent, as any WAL reader does).
 * Failures: FL_ENOTFOUND naming the path (RW/READONLY and no such file);
 * FL_EDB naming the path for a file that is not a SQLite database or not a
 * Covey one, and for any SQLite error; FL_ESTATE when the schema version is
 * newer than this program knows (or, read-only, older); FL_EIO when the file
 * cannot be created; FL_EINVAL for bad flags. On failure *out is untouched.
 * Caller owns the result; release it with fl_store_destroy().
 */
int fl_store_open(const char *path, int flags, fl_store_t **out) FL_MUST_CHECK;

/* Close the store (rolling back any open transaction), free it and set
 * *self_p to NULL. Accepts NULL and a pointer to NULL. */
void fl_store_destroy(fl_store_t **self_p);

/* Schema version of the open database (PRAGMA user_version). */
int fl_store_schema_version(fl_store_t *s);

/* Schema version this program creates and migrates to. Can't fail. */
int fl_store_schema_latest(void);

/* The path the store was opened with. Borrowed for the life of s. */
const char *fl_store_path(const fl_store_t *s);

/* True when the store was opened with FL_STORE_READONLY. */
bool fl_store_readonly(const fl_store_t *s);

/*
 * Transactions. fl_store_begin() opens a write transaction (BEGIN IMMEDIATE,
 * so it waits up to the busy timeout for another writer instead of failing
 * later); fl_store_begin_read() opens a read transaction, a consistent
 * snapshot for a reader that makes several queries (works read-only).
 * FL_ESTATE if a transaction is already open; fl_store_begin() on a
 * read-only store fails with FL_EDB. fl_store_commit() commits;
 * on failure nothing was committed and the transaction is rolled back
 * (FL_EDB), FL_ESTATE if none is open. fl_store_rollback() is harmless when
 * no transaction is open and returns 0 or FL_EDB.
 */
int fl_store_begin(fl_store_t *s) FL_MUST_CHECK;
int fl_store_begin_read(fl_store_t *s) FL_MUST_CHECK;
int fl_store_commit(fl_store_t *s) FL_MUST_CHECK;
int fl_store_rollback(fl_store_t *s);

/* True while a transaction opened by fl_store_begin*() is open. */
bool fl_store_in_transaction(fl_store_t *s);

/* synchronous=FULL (true) or NORMAL (false, the default) for this
 * connection's later commits. FL_ESTATE inside a transaction. */
int fl_store_set_sync_full(fl_store_t *s, bool full) FL_MUST_CHECK;

/*
 * Federation metadata and configuration: string key -> string value
 * (federation_id, created_ms, config.*). Keys are 1..255 bytes without
 * control characters; values are at most 1 MiB (FL_EINVAL otherwise).
 * fl_store_meta_get copies the value with its NUL into buf: FL_ENOTFOUND
 * if the key is absent, FL_ERANGE if it does not fit (buf then untouched).
 * fl_store_meta_dup returns a copy the caller frees. fl_store_meta_delete
 * removes a key: FL_ENOTFOUND if it was absent.
 */
int fl_store_meta_set(fl_store_t *s, const char *key, const char *value) FL_MUST_CHECK;
int fl_store_meta_get(fl_store_t *s, const char *key, char *buf, size_t size) FL_MUST_CHECK;
int fl_store_meta_dup(fl_store_t *s, const char *key, char **value_p) FL_MUST_CHECK;
int fl_store_meta_delete(fl_store_t *s, const char *key) FL_MUST_CHECK;

/* ---- agents ---- */

#define FL_AGENT_NAME_MAX 63 /* characters, [A-Za-z0-9._-] */
#define FL_Z85_KEY_LEN 40    /* a 32-byte CURVE public key in Z85 */

typedef struct fl_agent_row {
    int64_t id;
    char name[64];
    char pubkey[41]; /* Z85 CURVE public key, 40 chars */
    char status[16]; /* "active" | "revoked" */
    int64_t created_ms, last_seen_ms; /* last_seen_ms 0: never seen */
    char version[32];                 /* "" until the agent reports it */
    int64_t n_train, n_test;
} fl_agent_row_t;

/* True if `name` is a valid agent name / `key` a valid 40-char Z85 key.
 * Can't fail. */
bool fl_store_agent_name_ok(const char *name);
bool fl_store_z85_key_ok(const char *key);

/*
 * Enroll an agent with status "active". FL_EINVAL naming the bad field
 * ("agent name", "public key"); FL_EEXIST naming "agent name 'x'" or
 * "public key" when taken (revoked agents keep their name and key).
 * *id_out (may be NULL) receives the new id.
 */
int fl_store_agent_add(fl_store_t *s, const char *name, const char *pubkey_z85, int64_t now_ms,
                       int64_t *id_out) FL_MUST_CHECK;

/* Look an agent up; FL_ENOTFOUND naming what was looked for. */
int fl_store_agent_get_by_key(fl_store_t *s, const char *pubkey_z85, fl_agent_row_t *out) FL_MUST_CHECK;
int fl_store_agent_get_by_name(fl_store_t *s, const char *name, fl_agent_row_t *out) FL_MUST_CHECK;
int fl_store_agent_get_by_id(fl_store_t *s, int64_t id, fl_agent_row_t *out) FL_MUST_CHECK;

/* Set status "active" or "revoked" (FL_EINVAL otherwise); FL_ENOTFOUND. */
int fl_store_agent_set_status(fl_store_t *s, const char *name, const char *status) FL_MUST_CHECK;

/* Key rotation: FL_EINVAL for a bad key, FL_EEXIST if another agent holds
 * it, FL_ENOTFOUND for an unknown name. Setting the agent's own key is a
 * no-op. */
int fl_store_agent_set_key(fl_store_t *s, const char *name, const char *pubkey_z85) FL_MUST_CHECK;

/* Record that agent `id` was heard from. `version` NULL keeps the stored one
 * (otherwise at most 31 printable characters, FL_EINVAL); n_train / n_test
 * < 0 keep the stored counts. FL_ENOTFOUND for an unknown id. */
int fl_store_agent_seen(fl_store_t *s, int64_t id, int64_t now_ms, const char *version,
                        int64_t n_train, int64_t n_test) FL_MUST_CHECK;

/* Callbacks of the list functions return 0 to go on, nonzero to stop; a
 * negative value is also returned by the list function (to pass an error
 * out), a positive one makes it return 0. Rows are borrowed for the call. */
typedef int (*fl_agent_cb)(const fl_agent_row_t *row, void *arg);

/* Every agent, ordered by name. */
int fl_store_agent_list(fl_store_t *s, fl_agent_cb cb, void *arg) FL_MUST_CHECK;

/* For the ZAP handler (on its own connection): 1 if `pubkey_z85` belongs to
 * an active agent (its id in *id_out, which may be NULL), 0 if unknown,
 * revoked or not a valid key, < 0 (FL_EDB) on a database error. */
int fl_store_agent_key_active(fl_store_t *s, const char *pubkey_z85, int64_t *id_out);

/* ---- rounds: one row per (round, attempt); a retried round gets attempt+1 ---- */

typedef struct fl_round_row {
    int64_t round;
    int64_t attempt;
    char phase[16];   /* "train" | "aggregate" | "eval" | "done" | "failed" */
    char outcome[64]; /* "" while running; "ok", or why it failed */
    int64_t started_ms, ended_ms, deadline_ms;
    int64_t expected, received, rejected;
    double train_loss, train_acc; /* weighted means of agents' reports; NaN: none */
    int has_eval;
    double eval_loss, eval_acc;
    int64_t eval_n;
} fl_round_row_t;

/* Insert or replace the row (round, attempt). FL_EINVAL for round or
 * attempt < 0, an unknown phase or a string that is not NUL-terminated. */
int fl_store_round_put(fl_store_t *s, const fl_round_row_t *r) FL_MUST_CHECK;
/* FL_ENOTFOUND naming the round and attempt. */
int fl_store_round_get(fl_store_t *s, int64_t round, int64_t attempt, fl_round_row_t *out) FL_MUST_CHECK;
/* The highest (round, attempt); FL_ENOTFOUND when there are no rounds. */
int fl_store_round_latest(fl_store_t *s, fl_round_row_t *out) FL_MUST_CHECK;

typedef int (*fl_round_cb)(const fl_round_row_t *row, void *arg);
/* Rows ascending by (round, attempt); limit <= 0: all, else the last
 * `limit` rows, still ascending. */
int fl_store_round_list(fl_store_t *s, int64_t limit, fl_round_cb cb, void *arg) FL_MUST_CHECK;
/* Number of distinct rounds with phase "done". */
int fl_store_round_count_done(fl_store_t *s, int64_t *n) FL_MUST_CHECK;

/* ---- per-agent round records ---- */

typedef struct fl_round_agent_row {
    int64_t round, attempt, agent_id;
    char status[16]; /* "selected" | "received" | "rejected" | "dropped" | "evaluated" */
    int64_t n_samples;
    double loss, acc; /* NaN: not reported */
    int64_t time_ms;
    char reason[128];
} fl_round_agent_row_t;

/* Insert or replace the row (round, attempt, agent_id). The round row and
 * the agent must exist (FL_ENOTFOUND otherwise); FL_EINVAL for an unknown
 * status or a string that is not NUL-terminated. */
int fl_store_round_agent_put(fl_store_t *s, const fl_round_agent_row_t *r) FL_MUST_CHECK;

typedef int (*fl_round_agent_cb)(const fl_round_agent_row_t *row, void *arg);
/* Records of one round attempt, ordered by agent_id. */
int fl_store_round_agent_list(fl_store_t *s, int64_t round, int64_t attempt, fl_round_agent_cb cb,
                              void *arg) FL_MUST_CHECK;

/* ---- checkpoints: the global model plus the server optimizer state ---- */

typedef struct fl_checkpoint_info {
    int64_t round;
    uint8_t digest[32];
    int64_t created_ms;
    int64_t model_bytes, state_bytes;
} fl_checkpoint_info_t;

/*
 * Store the checkpoint of `round` (>= 0): metadata in `checkpoints`, the
 * bytes in `checkpoint_blobs`, written with incremental blob I/O (no copy of
 * the model is made). model_len must be >= 1; state may be NULL / 0. Each
 * blob is at most fl_store_blob_max() bytes (FL_ERANGE). FL_EEXIST if that
 * round already has a checkpoint. Atomic; inside an outer transaction it
 * joins it.
 */
int fl_store_checkpoint_put(fl_store_t *s, int64_t round, const uint8_t digest[32], const void *model,
                            size_t model_len, const void *state, size_t state_len,
                            int64_t now_ms) FL_MUST_CHECK;

/* The newest checkpoint's metadata; FL_ENOTFOUND when there is none. */
int fl_store_checkpoint_latest_info(fl_store_t *s, fl_checkpoint_info_t *out) FL_MUST_CHECK;

/*
 * Load the checkpoint of `round` (round < 0: the newest). info may be NULL.
 * *model_p and *state_p are 64-byte aligned buffers the caller releases
 * with free(); *state_p is NULL and *state_len 0 when there is no state.
 * FL_ENOTFOUND naming the round; FL_ENOMEM if the buffers cannot be
 * allocated; FL_EDB if the blobs disagree with the metadata. No partial
 * output on failure.
 */
int fl_store_checkpoint_load(fl_store_t *s, int64_t round, fl_checkpoint_info_t *info,
                             uint8_t **model_p, size_t *model_len, uint8_t **state_p,
                             size_t *state_len) FL_MUST_CHECK;

/* Delete all checkpoints but the newest `keep` (>= 1, FL_EINVAL otherwise);
 * *deleted (may be NULL) receives how many went. Freed pages are reused. */
int fl_store_checkpoint_prune(fl_store_t *s, int64_t keep, int64_t *deleted) FL_MUST_CHECK;

/* Largest blob (model or state) this SQLite build stores, in bytes. */
size_t fl_store_blob_max(fl_store_t *s);

/* ---- metrics: (round, name) -> value, e.g. train_loss, eval_accuracy ---- */

/* Insert or replace. Names are 1..127 bytes without control characters
 * (FL_EINVAL); round >= 0. NaN is stored as NULL and read back as NaN. */
int fl_store_metric_put(fl_store_t *s, int64_t round, const char *name, double value) FL_MUST_CHECK;

typedef int (*fl_metric_cb)(int64_t round, const char *name, double value, void *arg);
/* Metrics named `name` (NULL: all), ascending by round, then name. */
int fl_store_metric_list(fl_store_t *s, const char *name, fl_metric_cb cb, void *arg) FL_MUST_CHECK;

/* ---- join tokens (migration 2): only the hash of each secret is kept ---- */

typedef struct fl_token_row {
    int64_t id;
    char name[64];      /* the agent name the token enrolls */
    int64_t created_ms, expires_ms;
    int64_t used_ms;    /* 0: not used */
    bool revoked;
} fl_token_row_t;

/*
 * Record a new token: `name` (an agent name, FL_EINVAL otherwise), the
 * fl_token_hash_secret() of its secret, its creation time and expiry
 * (expires_ms > created_ms, FL_EINVAL otherwise). FL_EEXIST naming the name
 * when an agent of that name is enrolled, or when a token for that name is
 * still usable at created_ms (revoke it first), or (practically impossible)
 * when the hash is taken. *id_out (may be NULL) receives the token id.
 */
int fl_store_token_add(fl_store_t *s, const char *name, const uint8_t secret_hash[32],
                       int64_t created_ms, int64_t expires_ms, int64_t *id_out) FL_MUST_CHECK;

/*
 * Use a token, atomically: the token with this secret hash must exist, be
 * unused, not revoked and not expired at now_ms (expired when now_ms >=
 * expires_ms); it is then marked used at now_ms and its row (as updated) is
 * copied to *out (may be NULL). Failures, with nothing changed:
 *   FL_ENOTFOUND "unknown join token" (forged, mistyped, or another
 *                coordinator's);
 *   FL_EPERM     "join token already used (for 'x')" / "join token revoked
 *                (...)" / "join token expired (...)", checked in that order.
 * Inside an outer transaction it joins it, so the enrollment that consumes
 * a token and adds the agent is one atomic commit. The lookup by hash is
 * not constant-time; it needs not be (the hash of a 256-bit random secret).
 */
int fl_store_token_consume(fl_store_t *s, const uint8_t secret_hash[32], int64_t now_ms,
                           fl_token_row_t *out) FL_MUST_CHECK;

/* Revoke every unused, unrevoked token for `name` (expired ones included);
 * *n_revoked (may be NULL) receives how many. FL_ENOTFOUND "no unused join
 * token for 'x'" when there is none. */
int fl_store_token_revoke(fl_store_t *s, const char *name, int64_t *n_revoked) FL_MUST_CHECK;

typedef int (*fl_token_cb)(const fl_token_row_t *row, void *arg);
/* Every token, oldest first (by id). */
int fl_store_token_list(fl_store_t *s, fl_token_cb cb, void *arg) FL_MUST_CHECK;

/* "used", "revoked", "expired" or "unused" at now_ms, in that order of
 * precedence (the same order consume reports). Static storage; can't fail. */
const char *fl_store_token_state(const fl_token_row_t *row, int64_t now_ms);

/* ---- admin keys and roles (migration 2): remote operators over CURVE ---- */

#define FL_ADMIN_VIEWER "viewer"     /* status and listings */
#define FL_ADMIN_OPERATOR "operator" /* everything */

typedef struct fl_admin_row {
    int64_t id;
    char name[64];   /* [A-Za-z0-9._-], as agent names */
    char pubkey[41]; /* Z85 CURVE public key */
    char role[16];   /* "viewer" | "operator" */
    int64_t created_ms;
    bool revoked;
    int64_t revoked_ms; /* 0 unless revoked */
} fl_admin_row_t;

/* True for "viewer" and "operator". Can't fail. */
bool fl_store_admin_role_ok(const char *role);

/* Add an admin. FL_EINVAL naming the bad field (name, public key, role);
 * FL_EEXIST naming the name or the key's holder when taken (revoked admins
 * keep theirs). *id_out (may be NULL) receives the id. */
int fl_store_admin_add(fl_store_t *s, const char *name, const char *pubkey_z85, const char *role,
                       int64_t now_ms, int64_t *id_out) FL_MUST_CHECK;

/* Look an admin up, revoked or not (check row.revoked); FL_ENOTFOUND. */
int fl_store_admin_get_by_key(fl_store_t *s, const char *pubkey_z85, fl_admin_row_t *out) FL_MUST_CHECK;
int fl_store_admin_get_by_name(fl_store_t *s, const char *name, fl_admin_row_t *out) FL_MUST_CHECK;

/* Revoke: FL_ENOTFOUND for an unknown name, FL_ESTATE if already revoked. */
int fl_store_admin_revoke(fl_store_t *s, const char *name, int64_t now_ms) FL_MUST_CHECK;

typedef int (*fl_admin_cb)(const fl_admin_row_t *row, void *arg);
/* Every admin, revoked ones included, ordered by name. */
int fl_store_admin_list(fl_store_t *s, fl_admin_cb cb, void *arg) FL_MUST_CHECK;

/* For the ZAP handler and for authorising each command: 1 if `pubkey_z85`
 * belongs to an admin that is not revoked (the role is copied to role, 16
 * bytes, which may be NULL), 0 if unknown, revoked or not a valid key,
 * < 0 (FL_EDB) on a database error. */
int fl_store_admin_key_active(fl_store_t *s, const char *pubkey_z85, char role[16]);

/* ---- for modules that own tables added by migrations here (audit, tokens) ---- */

/* The SQLite connection, borrowed for the life of s: use prepared statements
 * on it, never begin/commit through it (use fl_store_begin/commit). */
struct sqlite3 *fl_store_handle(fl_store_t *s);

/* Record FL_EDB with a detail naming the file, `op` and sqlite3_errmsg(),
 * and return FL_EDB: the same error detail as the store's own functions. */
int fl_store_dberr(fl_store_t *s, const char *op);

/* Tests only: replace the migration list (NULL restores the built-in one).
 * Not thread-safe; affects stores opened afterwards. */
void fl_store_testing_set_migrations(const char *const *steps, int n);

#endif
