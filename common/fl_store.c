/*
 * fl_store.c — the coordinator's state database (SQLite, WAL). See
 * fl_store.h for the contracts and DESIGN.md "State" for what is kept.
 *
 * Every statement is prepared, bound and finalized within one call (no
 * statement cache), so list callbacks may call back into the store and no
 * statement is ever left holding a read snapshot. User data only ever
 * reaches SQLite as bound parameters; the few formatted statements carry
 * integers produced by this file (schema version).
 */
#include "fl_store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fl_store {
    sqlite3 *db;
    char *path;
    bool readonly;
    int version; /* PRAGMA user_version after open (and migration) */
};

/* Pages of 64 KiB: a 100 MB blob commits ~2.5x faster than with 4 KiB. */
#define S_PAGE_SIZE 65536
#define S_BUSY_TIMEOUT_MS 5000
/* Truncate the WAL back to this size after a checkpoint, so one big
 * checkpoint commit does not leave a 100+ MB -wal file behind forever. */
#define S_JOURNAL_SIZE_LIMIT (64 * 1024 * 1024)
#define S_META_KEY_MAX 255
#define S_META_VALUE_MAX (1024 * 1024)
#define S_METRIC_NAME_MAX 127

/*
 * Schema migrations, in order: s_migrations[i] takes the database from
 * version i to version i + 1 and runs in one transaction together with the
 * PRAGMA user_version update (and, for the first, PRAGMA application_id).
 * Never edit a step that has shipped; add a migration by appending a string.
 */
static const char *const s_migrations[] = {
    /* 1: initial schema. */
    "CREATE TABLE meta ("
    "  key   TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL"
    ") WITHOUT ROWID;"
    /* AUTOINCREMENT: an agent id is never reused, so audit rows and round
     * records keep naming the agent they meant. */
    "CREATE TABLE agents ("
    "  id           INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name         TEXT NOT NULL UNIQUE,"
    "  pubkey       TEXT NOT NULL UNIQUE,"
    "  status       TEXT NOT NULL CHECK (status IN ('active', 'revoked')),"
    "  created_ms   INTEGER NOT NULL,"
    "  last_seen_ms INTEGER NOT NULL DEFAULT 0,"
    "  version      TEXT NOT NULL DEFAULT '',"
    "  n_train      INTEGER NOT NULL DEFAULT 0,"
    "  n_test       INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE rounds ("
    "  round       INTEGER NOT NULL CHECK (round >= 0),"
    "  attempt     INTEGER NOT NULL CHECK (attempt >= 0),"
    "  phase       TEXT NOT NULL"
    "              CHECK (phase IN ('train', 'aggregate', 'eval', 'done', 'failed')),"
    "  outcome     TEXT NOT NULL DEFAULT '',"
    "  started_ms  INTEGER NOT NULL DEFAULT 0,"
    "  ended_ms    INTEGER NOT NULL DEFAULT 0,"
    "  deadline_ms INTEGER NOT NULL DEFAULT 0,"
    "  expected    INTEGER NOT NULL DEFAULT 0,"
    "  received    INTEGER NOT NULL DEFAULT 0,"
    "  rejected    INTEGER NOT NULL DEFAULT 0,"
    "  train_loss  REAL,"
    "  train_acc   REAL,"
    "  has_eval    INTEGER NOT NULL DEFAULT 0,"
    "  eval_loss   REAL,"
    "  eval_acc    REAL,"
    "  eval_n      INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (round, attempt)"
    ") WITHOUT ROWID;"
    "CREATE TABLE round_agents ("
    "  round     INTEGER NOT NULL,"
    "  attempt   INTEGER NOT NULL,"
    "  agent_id  INTEGER NOT NULL REFERENCES agents (id),"
    "  status    TEXT NOT NULL"
    "            CHECK (status IN ('selected', 'received', 'rejected', 'dropped', 'evaluated')),"
    "  n_samples INTEGER NOT NULL DEFAULT 0,"
    "  loss      REAL,"
    "  acc       REAL,"
    "  time_ms   INTEGER NOT NULL DEFAULT 0,"
    "  reason    TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (round, attempt, agent_id),"
    "  FOREIGN KEY (round, attempt) REFERENCES rounds (round, attempt)"
    ") WITHOUT ROWID;"
    "CREATE INDEX round_agents_by_agent ON round_agents (agent_id);"
    /* Checkpoint metadata stays small so that listing it never reads the
     * blobs' overflow pages; the bytes live in checkpoint_blobs (a rowid
     * table, as incremental blob I/O requires). */
    "CREATE TABLE checkpoints ("
    "  round       INTEGER PRIMARY KEY CHECK (round >= 0),"
    "  digest      BLOB NOT NULL CHECK (length(digest) = 32),"
    "  created_ms  INTEGER NOT NULL,"
    "  model_bytes INTEGER NOT NULL CHECK (model_bytes > 0),"
    "  state_bytes INTEGER NOT NULL CHECK (state_bytes >= 0)"
    ");"
    "CREATE TABLE checkpoint_blobs ("
    "  id    INTEGER PRIMARY KEY,"
    "  round INTEGER NOT NULL REFERENCES checkpoints (round) ON DELETE CASCADE,"
    "  kind  TEXT NOT NULL CHECK (kind IN ('model', 'state')),"
    "  data  BLOB NOT NULL,"
    "  UNIQUE (round, kind)"
    ");"
    "CREATE TABLE metrics ("
    "  round INTEGER NOT NULL CHECK (round >= 0),"
    "  name  TEXT NOT NULL,"
    "  value REAL,"
    "  PRIMARY KEY (round, name)"
    ") WITHOUT ROWID;"
    "CREATE INDEX metrics_by_name ON metrics (name, round);",

    /* 2: security baseline — join tokens, admin keys, the audit log. */
    /* A token is stored as the hash of its secret only (fl_token.h), so the
     * database cannot be used to forge one. Rows are kept after use, expiry
     * or revocation: they are the record of who was invited when. */
    "CREATE TABLE tokens ("
    "  id          INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name        TEXT NOT NULL,"
    "  secret_hash BLOB NOT NULL UNIQUE CHECK (length(secret_hash) = 32),"
    "  created_ms  INTEGER NOT NULL,"
    "  expires_ms  INTEGER NOT NULL,"
    "  used_ms     INTEGER,"
    "  revoked     INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))"
    ");"
    "CREATE INDEX tokens_by_name ON tokens (name);"
    /* Remote operators: CURVE public keys with a role. A revoked admin keeps
     * its name and key, so a revoked key can never be added back. */
    "CREATE TABLE admins ("
    "  id         INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name       TEXT NOT NULL UNIQUE,"
    "  pubkey     TEXT NOT NULL UNIQUE,"
    "  role       TEXT NOT NULL CHECK (role IN ('viewer', 'operator')),"
    "  created_ms INTEGER NOT NULL,"
    "  revoked    INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),"
    "  revoked_ms INTEGER NOT NULL DEFAULT 0"
    ");"
    /* The hash-chained audit log (fl_audit.h). seq is assigned by
     * fl_audit_append as the last seq + 1, so a gap is a deleted row. The
     * triggers keep this program (and careless hands) from editing it; an
     * attacker with the file can drop them, which the chain then reveals. */
    "CREATE TABLE audit ("
    "  seq       INTEGER PRIMARY KEY CHECK (seq >= 1),"
    "  ts_ms     INTEGER NOT NULL,"
    "  actor     TEXT NOT NULL,"
    "  action    TEXT NOT NULL,"
    "  detail    TEXT NOT NULL,"
    "  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),"
    "  hash      BLOB NOT NULL CHECK (length(hash) = 32)"
    ");"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
};

static const char *const *s_steps = s_migrations;
static int s_nsteps = (int)(sizeof s_migrations / sizeof s_migrations[0]);

static const char s_z85_alphabet[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/* ---- small helpers ---- */

int
fl_store_dberr(fl_store_t *s, const char *op)
{
    return fl_fail(FL_EDB, "%s: %s: %s (SQLite code %d)", s->path, op, sqlite3_errmsg(s->db),
                   sqlite3_extended_errcode(s->db));
}

static int
s_exec(fl_store_t *s, const char *sql, const char *op)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return fl_store_dberr(s, op);
    return 0;
}

static int
s_prepare(fl_store_t *s, const char *sql, const char *op, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return fl_store_dberr(s, op);
    }
    return 0;
}

/* Bind a string of at most `max` bytes (a fixed-size struct field need not
 * be searched beyond its end). SQLITE_TRANSIENT is not needed: every
 * statement is stepped before the caller's data can change. */
static int
s_bind_text(sqlite3_stmt *st, int i, const char *text, size_t max)
{
    size_t len = strnlen(text, max);
    return sqlite3_bind_text(st, i, text, (int)len, SQLITE_STATIC);
}

/* Run a statement that returns no rows to completion. */
static int
s_step_done(fl_store_t *s, sqlite3_stmt *st, const char *op)
{
    if (sqlite3_step(st) != SQLITE_DONE)
        return fl_store_dberr(s, op);
    return 0;
}

/* One step of a query: 1 on a row, 0 when there are no more, or the
 * database error. */
static int
s_step_row(fl_store_t *s, sqlite3_stmt *st, const char *op)
{
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        return 1;
    if (step == SQLITE_DONE)
        return 0;
    return fl_store_dberr(s, op);
}

/* s_prepare, then bind `text` (at most `max` bytes) to ?1. On failure *st
 * is finalized and NULL. */
static int
s_prepare_text(fl_store_t *s, const char *sql, const char *op, const char *text, size_t max,
               sqlite3_stmt **st)
{
    int rc = s_prepare(s, sql, op, st);
    if (rc == 0 && s_bind_text(*st, 1, text, max) != SQLITE_OK) {
        rc = fl_store_dberr(s, op);
        sqlite3_finalize(*st);
        *st = NULL;
    }
    return rc;
}

/* Copy a text column into a fixed-size field, truncating safely: a value
 * longer than the field can only come from an edited database. */
static void
s_col_text(sqlite3_stmt *st, int col, char *buf, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    size_t len = (t && n > 0) ? (size_t)n : 0;
    if (len >= size)
        len = size - 1;
    if (len)
        memcpy(buf, t, len);
    buf[len] = '\0';
}

static double
s_col_double(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NAN; /* SQLite stores NaN as NULL */
    return sqlite3_column_double(st, col);
}

/* A value of an integer PRAGMA. */
static int
s_pragma_int(fl_store_t *s, const char *sql, int *value)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, sql, sql, &st);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = fl_store_dberr(s, sql);
        goto out;
    }
    *value = sqlite3_column_int(st, 0);
out:
    sqlite3_finalize(st);
    return rc;
}

/*
 * Make a multi-statement operation atomic: outside a transaction open a
 * write transaction of its own, inside the caller's open a savepoint, so
 * that a failure undoes this operation only and the caller's transaction
 * stays usable. *mode_p remembers which for s_atomic_end().
 */
enum { S_OWN_TX = 1, S_SAVEPOINT = 2 };

static int
s_atomic_begin(fl_store_t *s, int *mode_p, const char *op)
{
    if (sqlite3_get_autocommit(s->db)) {
        *mode_p = S_OWN_TX;
        return s_exec(s, "BEGIN IMMEDIATE", op);
    }
    *mode_p = S_SAVEPOINT;
    return s_exec(s, "SAVEPOINT fl_store_op", op);
}

/* Finish what s_atomic_begin started: commit when rc == 0, else undo and
 * keep the detail of the original failure. Returns the final code. */
static int
s_atomic_end(fl_store_t *s, int mode, int rc, const char *op)
{
    if (rc == 0) {
        rc = s_exec(s, mode == S_OWN_TX ? "COMMIT" : "RELEASE fl_store_op", op);
        if (rc == 0)
            return 0;
    }
    /* Errors of the undo are ignored: SQLite may already have rolled the
     * whole transaction back (e.g. on SQLITE_FULL), which is what we want. */
    if (mode == S_OWN_TX) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    } else {
        sqlite3_exec(s->db, "ROLLBACK TO fl_store_op; RELEASE fl_store_op", NULL, NULL, NULL);
    }
    return rc;
}

/* A read of several statements sees one snapshot: open a read transaction
 * unless the caller already has a transaction. */
static int
s_read_begin(fl_store_t *s, bool *own_p, const char *op)
{
    *own_p = false;
    if (!sqlite3_get_autocommit(s->db))
        return 0;
    int rc = s_exec(s, "BEGIN", op);
    if (rc == 0)
        *own_p = true;
    return rc;
}

static void
s_read_end(fl_store_t *s, bool own)
{
    /* Ending a read transaction releases the snapshot; it cannot lose data. */
    if (own && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
}

/* Fold a list callback's stop value into a list function's result. */
static int
s_cb_result(int c)
{
    return c < 0 ? c : 0;
}

static bool
s_printable(const char *str, size_t max)
{
    size_t n = strnlen(str, max + 1);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)str[i] < 0x20 || str[i] == 0x7f)
            return false;
    return true;
}

/* ---- open, migrate, close ---- */

void
fl_store_testing_set_migrations(const char *const *steps, int n)
{
    if (steps) {
        s_steps = steps;
        s_nsteps = n;
    } else {
        s_steps = s_migrations;
        s_nsteps = (int)(sizeof s_migrations / sizeof s_migrations[0]);
    }
}

int
fl_store_schema_latest(void)
{
    return s_nsteps;
}

/*
 * Apply the missing migrations, one transaction each. The version is read
 * again under the write lock, so two processes opening the same old file
 * at once do not both migrate it.
 */
static int
s_migrate(fl_store_t *s)
{
    char sql[96];
    int rc = 0;
    for (;;) {
        int v = 0;
        rc = s_exec(s, "BEGIN IMMEDIATE", "begin schema migration");
        if (rc < 0)
            return rc;
        rc = s_pragma_int(s, "PRAGMA user_version", &v);
        if (rc < 0)
            goto fail;
        if (v > s_nsteps) {
            rc = fl_fail(FL_ESTATE,
                         "%s: database schema version %d is newer than this program "
                         "supports (%d); upgrade Covey",
                         s->path, v, s_nsteps);
            goto fail;
        }
        if (v == s_nsteps)
            break;
        if (sqlite3_exec(s->db, s_steps[v], NULL, NULL, NULL) != SQLITE_OK) {
            rc = fl_fail(FL_EDB, "%s: schema migration %d -> %d failed: %s", s->path, v, v + 1,
                         sqlite3_errmsg(s->db));
            goto fail;
        }
        if (v == 0) {
            snprintf(sql, sizeof sql, "PRAGMA application_id = %d", FL_STORE_APP_ID);
            rc = s_exec(s, sql, "set application_id");
            if (rc < 0)
                goto fail;
        }
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        rc = s_exec(s, sql, "set schema version");
        if (rc < 0)
            goto fail;
        rc = s_exec(s, "COMMIT", "commit schema migration");
        if (rc < 0)
            goto fail;
    }
    /* Up to date: end the (empty) transaction. */
    return s_exec(s, "COMMIT", "end schema migration");
fail:
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* The first read of the file: tells a SQLite database from anything else. */
static int
s_header_err(fl_store_t *s, int rc)
{
    if ((sqlite3_extended_errcode(s->db) & 0xff) == SQLITE_NOTADB)
        return fl_fail(FL_EDB, "%s: not a SQLite database (%s)", s->path, sqlite3_errmsg(s->db));
    return rc;
}

/* Check that the file is a Covey state database this program can use. */
static int
s_check_identity(fl_store_t *s, int *version_p)
{
    int app_id = 0, version = 0, objects = 0;
    int rc = s_pragma_int(s, "PRAGMA application_id", &app_id);
    if (rc < 0)
        return s_header_err(s, rc);
    rc = s_pragma_int(s, "PRAGMA user_version", &version);
    if (rc < 0)
        return s_header_err(s, rc);
    rc = s_pragma_int(s, "SELECT count(*) FROM sqlite_master", &objects);
    if (rc < 0)
        return s_header_err(s, rc);
    if (app_id != FL_STORE_APP_ID && (app_id != 0 || version != 0 || objects != 0))
        return fl_fail(FL_EDB,
                       "%s: a SQLite database, but not a Covey state database "
                       "(application_id 0x%08x, user_version %d, %d schema objects)",
                       s->path, (unsigned)app_id, version, objects);
    if (version > s_nsteps)
        return fl_fail(FL_ESTATE,
                       "%s: database schema version %d is newer than this program supports "
                       "(%d); upgrade Covey",
                       s->path, version, s_nsteps);
    *version_p = version;
    return 0;
}

/* Per-connection settings of a writable store, and WAL mode (which the file
 * keeps). The page size must be set before the first table is created; on
 * an existing file it is a no-op. */
static int
s_configure_rw(fl_store_t *s)
{
    char sql[64];
    sqlite3_stmt *st = NULL;
    int rc;

    snprintf(sql, sizeof sql, "PRAGMA page_size = %d", S_PAGE_SIZE);
    if ((rc = s_exec(s, sql, "set page_size")) < 0)
        return rc;
    /* Free pages of deleted checkpoints are reused by the next ones; full
     * auto-vacuum would move big blobs around at every commit. */
    if ((rc = s_exec(s, "PRAGMA auto_vacuum = NONE", "set auto_vacuum")) < 0)
        return rc;
    if ((rc = s_prepare(s, "PRAGMA journal_mode = WAL", "set WAL mode", &st)) < 0)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = fl_store_dberr(s, "set WAL mode");
        goto out;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (!mode || strcmp(mode, "wal") != 0) {
        rc = fl_fail(FL_EDB, "%s: cannot switch to WAL mode (journal mode stays '%s')", s->path,
                     mode ? mode : "?");
        goto out;
    }
    snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %d", S_JOURNAL_SIZE_LIMIT);
    if ((rc = s_exec(s, sql, "set journal_size_limit")) < 0)
        goto out;
    rc = s_exec(s, "PRAGMA synchronous = NORMAL", "set synchronous");
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_open(const char *path, int flags, fl_store_t **out)
{
    fl_store_t *s = NULL;
    struct stat sb;
    int rc = FL_EDB;

    if (!path || !*path || !out)
        return fl_fail(FL_EINVAL, "fl_store_open: path and out are required");
    if (flags != FL_STORE_RW && flags != FL_STORE_CREATE && flags != FL_STORE_READONLY)
        return fl_fail(FL_EINVAL, "%s: bad open flags %d", path, flags);

    if (stat(path, &sb) != 0) {
        if (errno != ENOENT)
            return fl_fail(FL_EIO, "%s: %s", path, strerror(errno));
        if (flags != FL_STORE_CREATE)
            return fl_fail(FL_ENOTFOUND, "%s: no such state database", path);
        /* Create the file ourselves so that it is born 0600: SQLite would use
         * 0644 and give the -wal and -shm files the database's mode. */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return fl_fail(FL_EIO, "%s: cannot create: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
    } else if (!S_ISREG(sb.st_mode)) {
        return fl_fail(FL_EIO, "%s: not a regular file", path);
    }

    s = fl_xcalloc(1, sizeof *s);
    s->path = fl_xstrdup(path);
    s->readonly = flags == FL_STORE_READONLY;
    int oflags = (s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, oflags, NULL) != SQLITE_OK) {
        rc = s->db ? fl_store_dberr(s, "open") : fl_fail(FL_ENOMEM, "%s: sqlite3_open_v2", path);
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, S_BUSY_TIMEOUT_MS);

    int version = 0;
    if ((rc = s_check_identity(s, &version)) < 0)
        goto out;
    if ((rc = s_exec(s, "PRAGMA foreign_keys = ON", "enable foreign keys")) < 0)
        goto out;
    /* Deleted checkpoint pages are not zeroed (that would rewrite 100 MB at
     * every prune); b-tree pages still are. Checkpoints are encrypted. */
    if ((rc = s_exec(s, "PRAGMA secure_delete = FAST", "set secure_delete")) < 0)
        goto out;

    if (s->readonly) {
        if (version != s_nsteps) {
            rc = fl_fail(FL_ESTATE,
                         version == 0 ? "%s: not initialised (schema version %d, expected %d)"
                                      : "%s: schema version %d is older than this program's %d; "
                                        "open it read-write once (start the coordinator) to migrate",
                         path, version, s_nsteps);
            goto out;
        }
    } else {
        if ((rc = s_configure_rw(s)) < 0 || (rc = s_migrate(s)) < 0)
            goto out;
        if ((rc = s_pragma_int(s, "PRAGMA user_version", &version)) < 0)
            goto out;
    }
    s->version = version;
    *out = s;
    s = NULL;
    rc = 0;
out:
    fl_store_destroy(&s);
    return rc;
}

void
fl_store_destroy(fl_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_store_t *s = *self_p;
    if (s->db) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(s->db);
    }
    free(s->path);
    free(s);
    *self_p = NULL;
}

int
fl_store_schema_version(fl_store_t *s)
{
    return s->version;
}

const char *
fl_store_path(const fl_store_t *s)
{
    return s->path;
}

bool
fl_store_readonly(const fl_store_t *s)
{
    return s->readonly;
}

struct sqlite3 *
fl_store_handle(fl_store_t *s)
{
    return s->db;
}

size_t
fl_store_blob_max(fl_store_t *s)
{
    /* The limit applies to the whole record; leave room for its header and
     * the other columns. sqlite3_blob_write takes int offsets. */
    int lim = sqlite3_limit(s->db, SQLITE_LIMIT_LENGTH, -1);
    return lim > 4096 ? (size_t)lim - 4096 : 0;
}

/* ---- transactions ---- */

bool
fl_store_in_transaction(fl_store_t *s)
{
    return !sqlite3_get_autocommit(s->db);
}

int
fl_store_begin(fl_store_t *s)
{
    if (!sqlite3_get_autocommit(s->db))
        return fl_fail(FL_ESTATE, "%s: begin: a transaction is already open", s->path);
    /* SQLite would grant BEGIN IMMEDIATE and fail only at the first write. */
    if (s->readonly)
        return fl_fail(FL_EDB, "%s: begin: attempt to write a readonly database (opened "
                       "read-only)", s->path);
    return s_exec(s, "BEGIN IMMEDIATE", "begin transaction");
}

int
fl_store_begin_read(fl_store_t *s)
{
    if (!sqlite3_get_autocommit(s->db))
        return fl_fail(FL_ESTATE, "%s: begin: a transaction is already open", s->path);
    return s_exec(s, "BEGIN", "begin read transaction");
}

int
fl_store_commit(fl_store_t *s)
{
    if (sqlite3_get_autocommit(s->db))
        return fl_fail(FL_ESTATE, "%s: commit: no transaction is open", s->path);
    int rc = s_exec(s, "COMMIT", "commit");
    if (rc < 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int
fl_store_rollback(fl_store_t *s)
{
    if (sqlite3_get_autocommit(s->db))
        return 0;
    return s_exec(s, "ROLLBACK", "rollback");
}

int
fl_store_set_sync_full(fl_store_t *s, bool full)
{
    if (!sqlite3_get_autocommit(s->db))
        return fl_fail(FL_ESTATE, "%s: synchronous cannot change inside a transaction", s->path);
    return s_exec(s, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                  "set synchronous");
}

/* ---- meta ---- */

static int
s_check_meta_key(fl_store_t *s, const char *key)
{
    if (!key || !*key || !s_printable(key, S_META_KEY_MAX))
        return fl_fail(FL_EINVAL, "%s: bad meta key '%.64s': 1..%d printable bytes", s->path,
                       key ? key : "(null)", S_META_KEY_MAX);
    return 0;
}

int
fl_store_meta_set(fl_store_t *s, const char *key, const char *value)
{
    sqlite3_stmt *st = NULL;
    int rc = s_check_meta_key(s, key);
    if (rc < 0)
        return rc;
    if (!value || strnlen(value, S_META_VALUE_MAX + 1) > S_META_VALUE_MAX)
        return fl_fail(FL_EINVAL, "%s: meta '%s': value missing or longer than %d bytes", s->path,
                       key, S_META_VALUE_MAX);
    if ((rc = s_prepare(s,
                        "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        "set meta", &st)) < 0)
        return rc;
    if (s_bind_text(st, 1, key, S_META_KEY_MAX) != SQLITE_OK ||
        s_bind_text(st, 2, value, S_META_VALUE_MAX) != SQLITE_OK) {
        rc = fl_store_dberr(s, "set meta");
        goto out;
    }
    rc = s_step_done(s, st, "set meta");
out:
    sqlite3_finalize(st);
    return rc;
}

/* Find the meta row of `key`; on success the statement is on the row. */
static int
s_meta_find(fl_store_t *s, const char *key, sqlite3_stmt **st_p)
{
    sqlite3_stmt *st = NULL;
    int rc = s_check_meta_key(s, key);
    if (rc < 0)
        return rc;
    if ((rc = s_prepare_text(s, "SELECT value FROM meta WHERE key = ?1", "get meta", key,
                             S_META_KEY_MAX, &st)) < 0)
        return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = fl_fail(FL_ENOTFOUND, "%s: no meta key '%s'", s->path, key);
        goto fail;
    }
    if (step != SQLITE_ROW) {
        rc = fl_store_dberr(s, "get meta");
        goto fail;
    }
    *st_p = st;
    return 0;
fail:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_meta_get(fl_store_t *s, const char *key, char *buf, size_t size)
{
    sqlite3_stmt *st = NULL;
    int rc = s_meta_find(s, key, &st);
    if (rc < 0)
        return rc;
    const unsigned char *v = sqlite3_column_text(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    if (!buf || n + 1 > size) {
        rc = fl_fail(FL_ERANGE, "%s: meta '%s': value of %zu bytes does not fit in %zu", s->path,
                     key, n, size);
        goto out;
    }
    if (n)
        memcpy(buf, v, n);
    buf[n] = '\0';
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_meta_dup(fl_store_t *s, const char *key, char **value_p)
{
    sqlite3_stmt *st = NULL;
    int rc = s_meta_find(s, key, &st);
    if (rc < 0)
        return rc;
    const unsigned char *v = sqlite3_column_text(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    char *copy = malloc(n + 1);
    if (!copy) {
        rc = fl_fail(FL_ENOMEM, "%s: meta '%s': cannot allocate %zu bytes", s->path, key, n + 1);
        goto out;
    }
    if (n)
        memcpy(copy, v, n);
    copy[n] = '\0';
    *value_p = copy;
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_meta_delete(fl_store_t *s, const char *key)
{
    sqlite3_stmt *st = NULL;
    int rc = s_check_meta_key(s, key);
    if (rc < 0)
        return rc;
    if ((rc = s_prepare_text(s, "DELETE FROM meta WHERE key = ?1", "delete meta", key,
                             S_META_KEY_MAX, &st)) < 0)
        return rc;
    if ((rc = s_step_done(s, st, "delete meta")) < 0)
        goto out;
    if (sqlite3_changes(s->db) == 0)
        rc = fl_fail(FL_ENOTFOUND, "%s: no meta key '%s'", s->path, key);
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- agents ---- */

bool
fl_store_agent_name_ok(const char *name)
{
    if (!name)
        return false;
    size_t n = strnlen(name, FL_AGENT_NAME_MAX + 1);
    if (n == 0 || n > FL_AGENT_NAME_MAX)
        return false;
    /* The first character is alphanumeric, so a name is never ".", "..",
     * or something a command line would take for an option. */
    if (!((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z') ||
          (name[0] >= '0' && name[0] <= '9')))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool
fl_store_z85_key_ok(const char *key)
{
    if (!key || strnlen(key, FL_Z85_KEY_LEN + 1) != FL_Z85_KEY_LEN)
        return false;
    /* Each group of 5 characters encodes 4 bytes, so its value must fit
     * in 32 bits ("#####" is 85^5 - 1 > 2^32 - 1). */
    for (size_t g = 0; g < FL_Z85_KEY_LEN; g += 5) {
        uint64_t v = 0;
        for (size_t i = g; i < g + 5; i++) {
            const char *p = key[i] ? strchr(s_z85_alphabet, key[i]) : NULL;
            if (!p)
                return false;
            v = v * 85 + (uint64_t)(p - s_z85_alphabet);
        }
        if (v > UINT32_MAX)
            return false;
    }
    return true;
}

static int
s_check_agent_name(fl_store_t *s, const char *name)
{
    if (!fl_store_agent_name_ok(name))
        return fl_fail(FL_EINVAL,
                       "%s: bad agent name '%.70s': 1..%d characters of [A-Za-z0-9._-], "
                       "starting with a letter or digit",
                       s->path, name ? name : "(null)", FL_AGENT_NAME_MAX);
    return 0;
}

static int
s_check_key(fl_store_t *s, const char *key)
{
    if (!fl_store_z85_key_ok(key))
        return fl_fail(FL_EINVAL, "%s: bad public key: not a %d-character Z85 CURVE key", s->path,
                       FL_Z85_KEY_LEN);
    return 0;
}

#define S_AGENT_COLS \
    "id, name, pubkey, status, created_ms, last_seen_ms, version, n_train, n_test"

static void
s_read_agent(sqlite3_stmt *st, fl_agent_row_t *a)
{
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(st, 0);
    s_col_text(st, 1, a->name, sizeof a->name);
    s_col_text(st, 2, a->pubkey, sizeof a->pubkey);
    s_col_text(st, 3, a->status, sizeof a->status);
    a->created_ms = sqlite3_column_int64(st, 4);
    a->last_seen_ms = sqlite3_column_int64(st, 5);
    s_col_text(st, 6, a->version, sizeof a->version);
    a->n_train = sqlite3_column_int64(st, 7);
    a->n_test = sqlite3_column_int64(st, 8);
}

/* Name of the agent other than `except` (may be NULL) holding `key`, into
 * holder (64 bytes): 1 found, 0 not, < 0 error. */
static int
s_key_holder(fl_store_t *s, const char *key, const char *except, char holder[64])
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, "SELECT name FROM agents WHERE pubkey = ?1 AND name IS NOT ?2",
                       "look up public key", &st);
    if (rc < 0)
        return rc;
    if (s_bind_text(st, 1, key, FL_Z85_KEY_LEN) != SQLITE_OK ||
        (except ? s_bind_text(st, 2, except, FL_AGENT_NAME_MAX)
                : sqlite3_bind_null(st, 2)) != SQLITE_OK) {
        rc = fl_store_dberr(s, "look up public key");
        goto out;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        s_col_text(st, 0, holder, 64);
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = fl_store_dberr(s, "look up public key");
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_agent_add(fl_store_t *s, const char *name, const char *pubkey_z85, int64_t now_ms,
                   int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    fl_agent_row_t existing;
    char holder[64];
    int rc;

    if ((rc = s_check_agent_name(s, name)) < 0 || (rc = s_check_key(s, pubkey_z85)) < 0)
        return rc;
    /* Look first, to say which of the two is taken; the UNIQUE constraints
     * still decide if another connection races us. */
    rc = fl_store_agent_get_by_name(s, name, &existing);
    if (rc == 0)
        return fl_fail(FL_EEXIST, "%s: agent name '%s' is taken", s->path, name);
    if (rc != FL_ENOTFOUND)
        return rc;
    if ((rc = s_key_holder(s, pubkey_z85, NULL, holder)) < 0)
        return rc;
    if (rc == 1)
        return fl_fail(FL_EEXIST, "%s: public key is already enrolled (agent '%s')", s->path,
                       holder);

    if ((rc = s_prepare(s,
                        "INSERT INTO agents (name, pubkey, status, created_ms) "
                        "VALUES (?1, ?2, 'active', ?3)",
                        "add agent", &st)) < 0)
        return rc;
    if (s_bind_text(st, 1, name, FL_AGENT_NAME_MAX) != SQLITE_OK ||
        s_bind_text(st, 2, pubkey_z85, FL_Z85_KEY_LEN) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, now_ms) != SQLITE_OK) {
        rc = fl_store_dberr(s, "add agent");
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
            rc = fl_fail(FL_EEXIST, "%s: agent '%s': agent name or public key is taken (%s)",
                         s->path, name, sqlite3_errmsg(s->db));
        else
            rc = fl_store_dberr(s, "add agent");
        goto out;
    }
    if (id_out)
        *id_out = sqlite3_last_insert_rowid(s->db);
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

/* Run a one-row agent query bound to either a text or an integer. */
static int
s_agent_get(fl_store_t *s, const char *sql, const char *text, size_t text_max, int64_t id,
            fl_agent_row_t *out, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, sql, "get agent", &st);
    if (rc < 0)
        return rc;
    int brc = text ? s_bind_text(st, 1, text, text_max) : sqlite3_bind_int64(st, 1, id);
    if (brc != SQLITE_OK) {
        rc = fl_store_dberr(s, "get agent");
        goto out;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        s_read_agent(st, out);
    else if (step == SQLITE_DONE)
        rc = text ? fl_fail(FL_ENOTFOUND, "%s: no agent with %s '%.64s'", s->path, what, text)
                  : fl_fail(FL_ENOTFOUND, "%s: no agent with id %lld", s->path, (long long)id);
    else
        rc = fl_store_dberr(s, "get agent");
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_agent_get_by_key(fl_store_t *s, const char *pubkey_z85, fl_agent_row_t *out)
{
    if (!pubkey_z85)
        return fl_fail(FL_EINVAL, "%s: get agent: no public key given", s->path);
    return s_agent_get(s, "SELECT " S_AGENT_COLS " FROM agents WHERE pubkey = ?1", pubkey_z85,
                       FL_Z85_KEY_LEN + 1, 0, out, "public key");
}

int
fl_store_agent_get_by_name(fl_store_t *s, const char *name, fl_agent_row_t *out)
{
    if (!name)
        return fl_fail(FL_EINVAL, "%s: get agent: no name given", s->path);
    return s_agent_get(s, "SELECT " S_AGENT_COLS " FROM agents WHERE name = ?1", name,
                       FL_AGENT_NAME_MAX + 1, 0, out, "name");
}

int
fl_store_agent_get_by_id(fl_store_t *s, int64_t id, fl_agent_row_t *out)
{
    return s_agent_get(s, "SELECT " S_AGENT_COLS " FROM agents WHERE id = ?1", NULL, 0, id, out,
                       "id");
}

/* UPDATE agents ... WHERE name = ?1 with ?2 = value; FL_ENOTFOUND if no row. */
static int
s_agent_update(fl_store_t *s, const char *sql, const char *name, const char *value,
               size_t value_max, const char *op)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, sql, op, &st);
    if (rc < 0)
        return rc;
    if (s_bind_text(st, 1, name, FL_AGENT_NAME_MAX + 1) != SQLITE_OK ||
        s_bind_text(st, 2, value, value_max) != SQLITE_OK) {
        rc = fl_store_dberr(s, op);
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
            rc = fl_fail(FL_EEXIST, "%s: %s of agent '%s': %s", s->path, op, name,
                         sqlite3_errmsg(s->db));
        else
            rc = fl_store_dberr(s, op);
        goto out;
    }
    if (sqlite3_changes(s->db) == 0)
        rc = fl_fail(FL_ENOTFOUND, "%s: no agent named '%.64s'", s->path, name);
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_agent_set_status(fl_store_t *s, const char *name, const char *status)
{
    if (!name)
        return fl_fail(FL_EINVAL, "%s: set agent status: no name given", s->path);
    if (!status || (strcmp(status, "active") != 0 && strcmp(status, "revoked") != 0))
        return fl_fail(FL_EINVAL, "%s: bad agent status '%.32s' (active or revoked)", s->path,
                       status ? status : "(null)");
    return s_agent_update(s, "UPDATE agents SET status = ?2 WHERE name = ?1", name, status, 16,
                          "set agent status");
}

int
fl_store_agent_set_key(fl_store_t *s, const char *name, const char *pubkey_z85)
{
    char holder[64];
    int rc;
    if (!name)
        return fl_fail(FL_EINVAL, "%s: set agent key: no name given", s->path);
    if ((rc = s_check_key(s, pubkey_z85)) < 0)
        return rc;
    if ((rc = s_key_holder(s, pubkey_z85, name, holder)) < 0)
        return rc;
    if (rc == 1)
        return fl_fail(FL_EEXIST, "%s: public key is already enrolled (agent '%s')", s->path,
                       holder);
    return s_agent_update(s, "UPDATE agents SET pubkey = ?2 WHERE name = ?1", name, pubkey_z85,
                          FL_Z85_KEY_LEN, "set agent key");
}

int
fl_store_agent_seen(fl_store_t *s, int64_t id, int64_t now_ms, const char *version,
                    int64_t n_train, int64_t n_test)
{
    sqlite3_stmt *st = NULL;
    fl_agent_row_t unused;
    int rc;

    if (version && !s_printable(version, sizeof unused.version - 1))
        return fl_fail(FL_EINVAL, "%s: agent %lld: bad version string (at most %zu printable "
                       "characters)", s->path, (long long)id, sizeof unused.version - 1);
    if ((rc = s_prepare(s,
                        "UPDATE agents SET last_seen_ms = ?2, version = coalesce(?3, version),"
                        " n_train = CASE WHEN ?4 < 0 THEN n_train ELSE ?4 END,"
                        " n_test = CASE WHEN ?5 < 0 THEN n_test ELSE ?5 END"
                        " WHERE id = ?1",
                        "record agent seen", &st)) < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || sqlite3_bind_int64(st, 2, now_ms) != SQLITE_OK ||
        (version ? s_bind_text(st, 3, version, sizeof unused.version)
                 : sqlite3_bind_null(st, 3)) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, n_train) != SQLITE_OK ||
        sqlite3_bind_int64(st, 5, n_test) != SQLITE_OK) {
        rc = fl_store_dberr(s, "record agent seen");
        goto out;
    }
    if ((rc = s_step_done(s, st, "record agent seen")) < 0)
        goto out;
    if (sqlite3_changes(s->db) == 0)
        rc = fl_fail(FL_ENOTFOUND, "%s: no agent with id %lld", s->path, (long long)id);
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_agent_list(fl_store_t *s, fl_agent_cb cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    fl_agent_row_t row;
    int rc = s_prepare(s, "SELECT " S_AGENT_COLS " FROM agents ORDER BY name", "list agents", &st);
    if (rc < 0)
        return rc;
    while ((rc = s_step_row(s, st, "list agents")) == 1) {
        s_read_agent(st, &row);
        int c = cb(&row, arg);
        if (c) {
            rc = s_cb_result(c);
            goto out;
        }
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_agent_key_active(fl_store_t *s, const char *pubkey_z85, int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    if (!fl_store_z85_key_ok(pubkey_z85))
        return 0;
    int rc = s_prepare_text(s, "SELECT id, status = 'active' FROM agents WHERE pubkey = ?1",
                            "check agent key", pubkey_z85, FL_Z85_KEY_LEN, &st);
    if (rc < 0)
        return rc;
    if ((rc = s_step_row(s, st, "check agent key")) == 1) {
        rc = sqlite3_column_int(st, 1) != 0;
        if (rc && id_out)
            *id_out = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- rounds ---- */

static bool
s_in_set(const char *value, size_t max, const char *const *set)
{
    if (strnlen(value, max) >= max)
        return false; /* not NUL-terminated within its field */
    for (; *set; set++)
        if (strcmp(value, *set) == 0)
            return true;
    return false;
}

static const char *const s_phases[] = {"train", "aggregate", "eval", "done", "failed", NULL};
static const char *const s_ra_statuses[] = {"selected", "received", "rejected", "dropped",
                                            "evaluated", NULL};

#define S_ROUND_COLS \
    "round, attempt, phase, outcome, started_ms, ended_ms, deadline_ms, expected, received, " \
    "rejected, train_loss, train_acc, has_eval, eval_loss, eval_acc, eval_n"

static void
s_read_round(sqlite3_stmt *st, fl_round_row_t *r)
{
    memset(r, 0, sizeof *r);
    r->round = sqlite3_column_int64(st, 0);
    r->attempt = sqlite3_column_int64(st, 1);
    s_col_text(st, 2, r->phase, sizeof r->phase);
    s_col_text(st, 3, r->outcome, sizeof r->outcome);
    r->started_ms = sqlite3_column_int64(st, 4);
    r->ended_ms = sqlite3_column_int64(st, 5);
    r->deadline_ms = sqlite3_column_int64(st, 6);
    r->expected = sqlite3_column_int64(st, 7);
    r->received = sqlite3_column_int64(st, 8);
    r->rejected = sqlite3_column_int64(st, 9);
    r->train_loss = s_col_double(st, 10);
    r->train_acc = s_col_double(st, 11);
    r->has_eval = sqlite3_column_int(st, 12) != 0;
    r->eval_loss = s_col_double(st, 13);
    r->eval_acc = s_col_double(st, 14);
    r->eval_n = sqlite3_column_int64(st, 15);
}

int
fl_store_round_put(fl_store_t *s, const fl_round_row_t *r)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (!r || r->round < 0 || r->attempt < 0)
        return fl_fail(FL_EINVAL, "%s: bad round row (round %lld, attempt %lld)", s->path,
                       r ? (long long)r->round : -1LL, r ? (long long)r->attempt : -1LL);
    if (!s_in_set(r->phase, sizeof r->phase, s_phases))
        return fl_fail(FL_EINVAL, "%s: round %lld: bad phase '%.15s'", s->path,
                       (long long)r->round, r->phase);
    if (strnlen(r->outcome, sizeof r->outcome) >= sizeof r->outcome)
        return fl_fail(FL_EINVAL, "%s: round %lld: outcome is not NUL-terminated", s->path,
                       (long long)r->round);
    if ((rc = s_prepare(s,
                        "INSERT INTO rounds (" S_ROUND_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                        " ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                        " ON CONFLICT (round, attempt) DO UPDATE SET phase = excluded.phase,"
                        " outcome = excluded.outcome, started_ms = excluded.started_ms,"
                        " ended_ms = excluded.ended_ms, deadline_ms = excluded.deadline_ms,"
                        " expected = excluded.expected, received = excluded.received,"
                        " rejected = excluded.rejected, train_loss = excluded.train_loss,"
                        " train_acc = excluded.train_acc, has_eval = excluded.has_eval,"
                        " eval_loss = excluded.eval_loss, eval_acc = excluded.eval_acc,"
                        " eval_n = excluded.eval_n",
                        "put round", &st)) < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, r->round) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, r->attempt) != SQLITE_OK ||
        s_bind_text(st, 3, r->phase, sizeof r->phase) != SQLITE_OK ||
        s_bind_text(st, 4, r->outcome, sizeof r->outcome) != SQLITE_OK ||
        sqlite3_bind_int64(st, 5, r->started_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st, 6, r->ended_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st, 7, r->deadline_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st, 8, r->expected) != SQLITE_OK ||
        sqlite3_bind_int64(st, 9, r->received) != SQLITE_OK ||
        sqlite3_bind_int64(st, 10, r->rejected) != SQLITE_OK ||
        sqlite3_bind_double(st, 11, r->train_loss) != SQLITE_OK ||
        sqlite3_bind_double(st, 12, r->train_acc) != SQLITE_OK ||
        sqlite3_bind_int(st, 13, r->has_eval != 0) != SQLITE_OK ||
        sqlite3_bind_double(st, 14, r->eval_loss) != SQLITE_OK ||
        sqlite3_bind_double(st, 15, r->eval_acc) != SQLITE_OK ||
        sqlite3_bind_int64(st, 16, r->eval_n) != SQLITE_OK) {
        rc = fl_store_dberr(s, "put round");
        goto out;
    }
    rc = s_step_done(s, st, "put round");
out:
    sqlite3_finalize(st);
    return rc;
}

/* One round row from a query bound to (?1, ?2) = (a, b) when nbind is 2. */
static int
s_round_one(fl_store_t *s, const char *sql, int nbind, int64_t a, int64_t b, fl_round_row_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, sql, "get round", &st);
    if (rc < 0)
        return rc;
    if (nbind == 2 &&
        (sqlite3_bind_int64(st, 1, a) != SQLITE_OK || sqlite3_bind_int64(st, 2, b) != SQLITE_OK)) {
        rc = fl_store_dberr(s, "get round");
        goto out;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        s_read_round(st, out);
    else if (step == SQLITE_DONE)
        rc = nbind == 2 ? fl_fail(FL_ENOTFOUND, "%s: no round %lld attempt %lld", s->path,
                                  (long long)a, (long long)b)
                        : fl_fail(FL_ENOTFOUND, "%s: no rounds recorded", s->path);
    else
        rc = fl_store_dberr(s, "get round");
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_round_get(fl_store_t *s, int64_t round, int64_t attempt, fl_round_row_t *out)
{
    return s_round_one(s, "SELECT " S_ROUND_COLS " FROM rounds WHERE round = ?1 AND attempt = ?2",
                       2, round, attempt, out);
}

int
fl_store_round_latest(fl_store_t *s, fl_round_row_t *out)
{
    return s_round_one(s,
                       "SELECT " S_ROUND_COLS
                       " FROM rounds ORDER BY round DESC, attempt DESC LIMIT 1",
                       0, 0, 0, out);
}

int
fl_store_round_list(fl_store_t *s, int64_t limit, fl_round_cb cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    fl_round_row_t row;
    int rc = s_prepare(s,
                       "SELECT * FROM (SELECT " S_ROUND_COLS " FROM rounds"
                       " ORDER BY round DESC, attempt DESC LIMIT ?1) ORDER BY round, attempt",
                       "list rounds", &st);
    if (rc < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, limit > 0 ? limit : -1) != SQLITE_OK) {
        rc = fl_store_dberr(s, "list rounds");
        goto out;
    }
    while ((rc = s_step_row(s, st, "list rounds")) == 1) {
        s_read_round(st, &row);
        int c = cb(&row, arg);
        if (c) {
            rc = s_cb_result(c);
            goto out;
        }
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_round_count_done(fl_store_t *s, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, "SELECT count(DISTINCT round) FROM rounds WHERE phase = 'done'",
                       "count rounds", &st);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = fl_store_dberr(s, "count rounds");
    else
        *n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* ---- per-agent round records ---- */

/* 1 if the one-row query bound to (?1[, ?2]) finds a row, 0 if not, < 0. */
static int
s_exists(fl_store_t *s, const char *sql, int nbind, int64_t a, int64_t b)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, sql, "look up row", &st);
    if (rc < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, a) != SQLITE_OK ||
        (nbind == 2 && sqlite3_bind_int64(st, 2, b) != SQLITE_OK)) {
        rc = fl_store_dberr(s, "look up row");
        goto out;
    }
    rc = s_step_row(s, st, "look up row");
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_round_agent_put(fl_store_t *s, const fl_round_agent_row_t *r)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (!r)
        return fl_fail(FL_EINVAL, "%s: put round agent: no row", s->path);
    if (!s_in_set(r->status, sizeof r->status, s_ra_statuses))
        return fl_fail(FL_EINVAL, "%s: round %lld agent %lld: bad status '%.15s'", s->path,
                       (long long)r->round, (long long)r->agent_id, r->status);
    if (strnlen(r->reason, sizeof r->reason) >= sizeof r->reason)
        return fl_fail(FL_EINVAL, "%s: round %lld agent %lld: reason is not NUL-terminated",
                       s->path, (long long)r->round, (long long)r->agent_id);
    if ((rc = s_prepare(s,
                        "INSERT INTO round_agents (round, attempt, agent_id, status, n_samples,"
                        " loss, acc, time_ms, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                        " ON CONFLICT (round, attempt, agent_id) DO UPDATE SET"
                        " status = excluded.status, n_samples = excluded.n_samples,"
                        " loss = excluded.loss, acc = excluded.acc, time_ms = excluded.time_ms,"
                        " reason = excluded.reason",
                        "put round agent", &st)) < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, r->round) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, r->attempt) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, r->agent_id) != SQLITE_OK ||
        s_bind_text(st, 4, r->status, sizeof r->status) != SQLITE_OK ||
        sqlite3_bind_int64(st, 5, r->n_samples) != SQLITE_OK ||
        sqlite3_bind_double(st, 6, r->loss) != SQLITE_OK ||
        sqlite3_bind_double(st, 7, r->acc) != SQLITE_OK ||
        sqlite3_bind_int64(st, 8, r->time_ms) != SQLITE_OK ||
        s_bind_text(st, 9, r->reason, sizeof r->reason) != SQLITE_OK) {
        rc = fl_store_dberr(s, "put round agent");
        goto out;
    }
    if (sqlite3_step(st) == SQLITE_DONE)
        goto out;
    if (sqlite3_extended_errcode(s->db) != SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = fl_store_dberr(s, "put round agent");
        goto out;
    }
    /* Say which parent is missing. */
    sqlite3_finalize(st);
    st = NULL;
    rc = s_exists(s, "SELECT 1 FROM agents WHERE id = ?1", 1, r->agent_id, 0);
    if (rc == 0) {
        rc = fl_fail(FL_ENOTFOUND, "%s: put round agent: no agent with id %lld", s->path,
                     (long long)r->agent_id);
    } else if (rc > 0) {
        rc = fl_fail(FL_ENOTFOUND, "%s: put round agent: no round %lld attempt %lld", s->path,
                     (long long)r->round, (long long)r->attempt);
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_round_agent_list(fl_store_t *s, int64_t round, int64_t attempt, fl_round_agent_cb cb,
                          void *arg)
{
    sqlite3_stmt *st = NULL;
    fl_round_agent_row_t row;
    int rc = s_prepare(s,
                       "SELECT round, attempt, agent_id, status, n_samples, loss, acc, time_ms,"
                       " reason FROM round_agents WHERE round = ?1 AND attempt = ?2"
                       " ORDER BY agent_id",
                       "list round agents", &st);
    if (rc < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, round) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, attempt) != SQLITE_OK) {
        rc = fl_store_dberr(s, "list round agents");
        goto out;
    }
    while ((rc = s_step_row(s, st, "list round agents")) == 1) {
        memset(&row, 0, sizeof row);
        row.round = sqlite3_column_int64(st, 0);
        row.attempt = sqlite3_column_int64(st, 1);
        row.agent_id = sqlite3_column_int64(st, 2);
        s_col_text(st, 3, row.status, sizeof row.status);
        row.n_samples = sqlite3_column_int64(st, 4);
        row.loss = s_col_double(st, 5);
        row.acc = s_col_double(st, 6);
        row.time_ms = sqlite3_column_int64(st, 7);
        s_col_text(st, 8, row.reason, sizeof row.reason);
        int c = cb(&row, arg);
        if (c) {
            rc = s_cb_result(c);
            goto out;
        }
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- checkpoints ---- */

/* Insert one blob row of `len` zero bytes and fill it in place with
 * incremental blob I/O: SQLite then never holds a copy of the whole blob
 * (a 100 MB record buffer would cost ~0.35 s of first-touch page faults). */
static int
s_blob_insert(fl_store_t *s, int64_t round, const char *kind, const void *data, size_t len)
{
    sqlite3_stmt *st = NULL;
    sqlite3_blob *blob = NULL;
    int rc = s_prepare(s, "INSERT INTO checkpoint_blobs (round, kind, data) VALUES (?1, ?2, ?3)",
                       "insert checkpoint blob", &st);
    if (rc < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, round) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_zeroblob64(st, 3, (sqlite3_uint64)len) != SQLITE_OK) {
        rc = fl_store_dberr(s, "insert checkpoint blob");
        goto out;
    }
    if ((rc = s_step_done(s, st, "insert checkpoint blob")) < 0)
        goto out;
    if (sqlite3_blob_open(s->db, "main", "checkpoint_blobs", "data", sqlite3_last_insert_rowid(s->db),
                          1, &blob) != SQLITE_OK) {
        rc = fl_store_dberr(s, "open checkpoint blob for writing");
        goto out;
    }
    /* len <= fl_store_blob_max() < INT_MAX, checked by the caller. */
    if (sqlite3_blob_write(blob, data, (int)len, 0) != SQLITE_OK) {
        rc = fl_store_dberr(s, "write checkpoint blob");
        goto out;
    }
out:
    if (blob && sqlite3_blob_close(blob) != SQLITE_OK && rc == 0)
        rc = fl_store_dberr(s, "close checkpoint blob");
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_checkpoint_put(fl_store_t *s, int64_t round, const uint8_t digest[32], const void *model,
                        size_t model_len, const void *state, size_t state_len, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int mode = 0, rc;
    size_t max = fl_store_blob_max(s);

    if (round < 0 || !digest || !model || model_len == 0 || (!state && state_len))
        return fl_fail(FL_EINVAL, "%s: checkpoint of round %lld: bad arguments (round >= 0, a "
                       "digest and a non-empty model are required)", s->path, (long long)round);
    if (!state)
        state_len = 0;
    if (model_len > max || state_len > max)
        return fl_fail(FL_ERANGE, "%s: checkpoint of round %lld: a blob of %zu bytes exceeds "
                       "the limit of %zu bytes", s->path, (long long)round,
                       model_len > state_len ? model_len : state_len, max);

    if ((rc = s_atomic_begin(s, &mode, "begin checkpoint")) < 0)
        return rc;
    rc = s_exists(s, "SELECT 1 FROM checkpoints WHERE round = ?1", 1, round, 0);
    if (rc > 0)
        rc = fl_fail(FL_EEXIST, "%s: round %lld already has a checkpoint", s->path,
                     (long long)round);
    if (rc < 0)
        goto out;
    if ((rc = s_prepare(s,
                        "INSERT INTO checkpoints (round, digest, created_ms, model_bytes,"
                        " state_bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                        "insert checkpoint", &st)) < 0)
        goto out;
    if (sqlite3_bind_int64(st, 1, round) != SQLITE_OK ||
        sqlite3_bind_blob(st, 2, digest, 32, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, now_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, (sqlite3_int64)model_len) != SQLITE_OK ||
        sqlite3_bind_int64(st, 5, (sqlite3_int64)state_len) != SQLITE_OK) {
        rc = fl_store_dberr(s, "insert checkpoint");
        goto out;
    }
    if ((rc = s_step_done(s, st, "insert checkpoint")) < 0)
        goto out;
    if ((rc = s_blob_insert(s, round, "model", model, model_len)) < 0)
        goto out;
    if (state_len && (rc = s_blob_insert(s, round, "state", state, state_len)) < 0)
        goto out;
out:
    sqlite3_finalize(st);
    return s_atomic_end(s, mode, rc, "commit checkpoint");
}

#define S_CKPT_COLS "round, digest, created_ms, model_bytes, state_bytes"

/* Checkpoint metadata of `round` (< 0: the newest). */
static int
s_checkpoint_info(fl_store_t *s, int64_t round, fl_checkpoint_info_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s,
                       round < 0 ? "SELECT " S_CKPT_COLS " FROM checkpoints ORDER BY round DESC"
                                   " LIMIT 1"
                                 : "SELECT " S_CKPT_COLS " FROM checkpoints WHERE round = ?1",
                       "get checkpoint", &st);
    if (rc < 0)
        return rc;
    if (round >= 0 && sqlite3_bind_int64(st, 1, round) != SQLITE_OK) {
        rc = fl_store_dberr(s, "get checkpoint");
        goto out;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = round < 0 ? fl_fail(FL_ENOTFOUND, "%s: no checkpoint stored", s->path)
                       : fl_fail(FL_ENOTFOUND, "%s: no checkpoint for round %lld", s->path,
                                 (long long)round);
        goto out;
    }
    if (step != SQLITE_ROW) {
        rc = fl_store_dberr(s, "get checkpoint");
        goto out;
    }
    memset(out, 0, sizeof *out);
    out->round = sqlite3_column_int64(st, 0);
    const void *d = sqlite3_column_blob(st, 1);
    if (!d || sqlite3_column_bytes(st, 1) != 32) {
        rc = fl_fail(FL_EDB, "%s: checkpoint of round %lld: digest is not 32 bytes", s->path,
                     (long long)out->round);
        goto out;
    }
    memcpy(out->digest, d, 32);
    out->created_ms = sqlite3_column_int64(st, 2);
    out->model_bytes = sqlite3_column_int64(st, 3);
    out->state_bytes = sqlite3_column_int64(st, 4);
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_checkpoint_latest_info(fl_store_t *s, fl_checkpoint_info_t *out)
{
    return s_checkpoint_info(s, -1, out);
}

/* Read the blob `kind` of `round` into a new 64-byte aligned buffer of
 * exactly `expect` bytes (the metadata's size). */
static int
s_blob_load(fl_store_t *s, int64_t round, const char *kind, int64_t expect, uint8_t **buf_p)
{
    sqlite3_stmt *st = NULL;
    sqlite3_blob *blob = NULL;
    void *buf = NULL;
    int rc = s_prepare(s, "SELECT id FROM checkpoint_blobs WHERE round = ?1 AND kind = ?2",
                       "find checkpoint blob", &st);
    if (rc < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, round) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = fl_store_dberr(s, "find checkpoint blob");
        goto out;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = fl_fail(FL_EDB, "%s: checkpoint of round %lld: %s blob is missing", s->path,
                     (long long)round, kind);
        goto out;
    }
    if (step != SQLITE_ROW) {
        rc = fl_store_dberr(s, "find checkpoint blob");
        goto out;
    }
    if (sqlite3_blob_open(s->db, "main", "checkpoint_blobs", "data", sqlite3_column_int64(st, 0),
                          0, &blob) != SQLITE_OK) {
        rc = fl_store_dberr(s, "open checkpoint blob");
        goto out;
    }
    int n = sqlite3_blob_bytes(blob);
    if ((int64_t)n != expect || n <= 0) {
        rc = fl_fail(FL_EDB, "%s: checkpoint of round %lld: %s blob is %d bytes, metadata says "
                     "%lld", s->path, (long long)round, kind, n, (long long)expect);
        goto out;
    }
    size_t alloc = ((size_t)n + 63) & ~(size_t)63;
    if (posix_memalign(&buf, 64, alloc) != 0) {
        buf = NULL;
        rc = fl_fail(FL_ENOMEM, "%s: checkpoint of round %lld: cannot allocate %d bytes for the "
                     "%s", s->path, (long long)round, n, kind);
        goto out;
    }
    if (sqlite3_blob_read(blob, buf, n, 0) != SQLITE_OK) {
        rc = fl_store_dberr(s, "read checkpoint blob");
        goto out;
    }
    *buf_p = buf;
    buf = NULL;
out:
    free(buf);
    if (blob)
        sqlite3_blob_close(blob);
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_checkpoint_load(fl_store_t *s, int64_t round, fl_checkpoint_info_t *info,
                         uint8_t **model_p, size_t *model_len, uint8_t **state_p,
                         size_t *state_len)
{
    fl_checkpoint_info_t ci = {0};
    uint8_t *model = NULL, *state = NULL;
    bool own = false;
    int rc;

    if (!model_p || !model_len || !state_p || !state_len)
        return fl_fail(FL_EINVAL, "%s: load checkpoint: output pointers are required", s->path);
    if ((rc = s_read_begin(s, &own, "begin checkpoint load")) < 0)
        return rc;
    if ((rc = s_checkpoint_info(s, round, &ci)) < 0)
        goto out;
    if ((rc = s_blob_load(s, ci.round, "model", ci.model_bytes, &model)) < 0)
        goto out;
    if (ci.state_bytes > 0 && (rc = s_blob_load(s, ci.round, "state", ci.state_bytes, &state)) < 0)
        goto out;
    if (info)
        *info = ci;
    *model_p = model;
    *model_len = (size_t)ci.model_bytes;
    *state_p = state;
    *state_len = (size_t)ci.state_bytes;
    model = state = NULL;
out:
    s_read_end(s, own);
    free(model);
    free(state);
    return rc;
}

int
fl_store_checkpoint_prune(fl_store_t *s, int64_t keep, int64_t *deleted)
{
    sqlite3_stmt *st = NULL;
    if (keep < 1)
        return fl_fail(FL_EINVAL, "%s: prune checkpoints: keep must be >= 1, not %lld", s->path,
                       (long long)keep);
    /* The blobs go with their checkpoint (ON DELETE CASCADE), in this one
     * statement, so the prune is atomic by itself. */
    int rc = s_prepare(s,
                       "DELETE FROM checkpoints WHERE round NOT IN"
                       " (SELECT round FROM checkpoints ORDER BY round DESC LIMIT ?1)",
                       "prune checkpoints", &st);
    if (rc < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, keep) != SQLITE_OK) {
        rc = fl_store_dberr(s, "prune checkpoints");
        goto out;
    }
    if ((rc = s_step_done(s, st, "prune checkpoints")) < 0)
        goto out;
    if (deleted)
        *deleted = sqlite3_changes(s->db);
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- metrics ---- */

int
fl_store_metric_put(fl_store_t *s, int64_t round, const char *name, double value)
{
    sqlite3_stmt *st = NULL;
    if (round < 0 || !name || !*name || !s_printable(name, S_METRIC_NAME_MAX))
        return fl_fail(FL_EINVAL, "%s: bad metric (round %lld, name '%.64s')", s->path,
                       (long long)round, name ? name : "(null)");
    int rc = s_prepare(s,
                       "INSERT INTO metrics (round, name, value) VALUES (?1, ?2, ?3)"
                       " ON CONFLICT (round, name) DO UPDATE SET value = excluded.value",
                       "put metric", &st);
    if (rc < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, round) != SQLITE_OK ||
        s_bind_text(st, 2, name, S_METRIC_NAME_MAX) != SQLITE_OK ||
        sqlite3_bind_double(st, 3, value) != SQLITE_OK) {
        rc = fl_store_dberr(s, "put metric");
        goto out;
    }
    rc = s_step_done(s, st, "put metric");
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_metric_list(fl_store_t *s, const char *name, fl_metric_cb cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    char nbuf[S_METRIC_NAME_MAX + 1];
    int rc = s_prepare(s,
                       name ? "SELECT round, name, value FROM metrics WHERE name = ?1"
                              " ORDER BY round"
                            : "SELECT round, name, value FROM metrics ORDER BY round, name",
                       "list metrics", &st);
    if (rc < 0)
        return rc;
    if (name && s_bind_text(st, 1, name, S_METRIC_NAME_MAX + 1) != SQLITE_OK) {
        rc = fl_store_dberr(s, "list metrics");
        goto out;
    }
    while ((rc = s_step_row(s, st, "list metrics")) == 1) {
        s_col_text(st, 1, nbuf, sizeof nbuf);
        int c = cb(sqlite3_column_int64(st, 0), nbuf, s_col_double(st, 2), arg);
        if (c) {
            rc = s_cb_result(c);
            goto out;
        }
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- join tokens ---- */

#define S_TOKEN_COLS "id, name, created_ms, expires_ms, used_ms, revoked"

static void
s_read_token(sqlite3_stmt *st, fl_token_row_t *t)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    s_col_text(st, 1, t->name, sizeof t->name);
    t->created_ms = sqlite3_column_int64(st, 2);
    t->expires_ms = sqlite3_column_int64(st, 3);
    t->used_ms = sqlite3_column_type(st, 4) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 4);
    t->revoked = sqlite3_column_int(st, 5) != 0;
}

const char *
fl_store_token_state(const fl_token_row_t *row, int64_t now_ms)
{
    if (row->used_ms != 0)
        return "used";
    if (row->revoked)
        return "revoked";
    if (now_ms >= row->expires_ms)
        return "expired";
    return "unused";
}

/* 1 if a row of `sql` bound to ?1 = text (and ?2 = n when sql uses it)
 * exists, 0 if not, < 0 on error. */
static int
s_exists_text(fl_store_t *s, const char *sql, const char *text, size_t max, int64_t n,
              const char *op)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, sql, op, &st);
    if (rc < 0)
        return rc;
    if (s_bind_text(st, 1, text, max) != SQLITE_OK ||
        (sqlite3_bind_parameter_count(st) >= 2 && sqlite3_bind_int64(st, 2, n) != SQLITE_OK)) {
        rc = fl_store_dberr(s, op);
        goto out;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = 1;
    else if (step != SQLITE_DONE)
        rc = fl_store_dberr(s, op);
out:
    sqlite3_finalize(st);
    return rc;
}

/* The body of token_add, inside s_atomic_begin/end: the "one usable token
 * per name" rule is a look-up, not a constraint, so it and the insert must
 * see the same database. */
static int
s_token_add(fl_store_t *s, const char *name, const uint8_t secret_hash[32], int64_t created_ms,
            int64_t expires_ms, int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    int rc;

    /* Say plainly why the token could never be used, at creation rather
     * than at enrollment; the UNIQUE constraint still guards the hash. */
    rc = s_exists_text(s, "SELECT 1 FROM agents WHERE name = ?1", name, FL_AGENT_NAME_MAX, 0,
                       "add token");
    if (rc < 0)
        return rc;
    if (rc == 1)
        return fl_fail(FL_EEXIST, "%s: an agent named '%s' is already enrolled", s->path, name);
    rc = s_exists_text(s,
                       "SELECT 1 FROM tokens WHERE name = ?1 AND used_ms IS NULL"
                       " AND revoked = 0 AND expires_ms > ?2",
                       name, FL_AGENT_NAME_MAX, created_ms, "add token");
    if (rc < 0)
        return rc;
    if (rc == 1)
        return fl_fail(FL_EEXIST,
                       "%s: a join token for '%s' is still unused and unexpired; revoke it "
                       "first",
                       s->path, name);

    if ((rc = s_prepare(s,
                        "INSERT INTO tokens (name, secret_hash, created_ms, expires_ms)"
                        " VALUES (?1, ?2, ?3, ?4)",
                        "add token", &st)) < 0)
        return rc;
    if (s_bind_text(st, 1, name, FL_AGENT_NAME_MAX) != SQLITE_OK ||
        sqlite3_bind_blob(st, 2, secret_hash, 32, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, created_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, expires_ms) != SQLITE_OK) {
        rc = fl_store_dberr(s, "add token");
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE
                 ? fl_fail(FL_EEXIST, "%s: a token with this secret already exists", s->path)
                 : fl_store_dberr(s, "add token");
        goto out;
    }
    if (id_out)
        *id_out = sqlite3_last_insert_rowid(s->db);
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_token_add(fl_store_t *s, const char *name, const uint8_t secret_hash[32],
                   int64_t created_ms, int64_t expires_ms, int64_t *id_out)
{
    int mode = 0, rc;
    if (!fl_store_agent_name_ok(name))
        return fl_fail(FL_EINVAL,
                       "%s: bad token name '%.70s': an agent name, 1..%d characters of "
                       "[A-Za-z0-9._-], starting with a letter or digit",
                       s->path, name ? name : "(null)", FL_AGENT_NAME_MAX);
    if (!secret_hash)
        return fl_fail(FL_EINVAL, "%s: add token: no secret hash", s->path);
    if (expires_ms <= created_ms)
        return fl_fail(FL_EINVAL, "%s: token for '%s' would expire before it is created", s->path,
                       name);
    if ((rc = s_atomic_begin(s, &mode, "add token")) < 0)
        return rc;
    int64_t id = 0;
    rc = s_token_add(s, name, secret_hash, created_ms, expires_ms, &id);
    rc = s_atomic_end(s, mode, rc, "add token");
    if (rc == 0 && id_out)
        *id_out = id;
    return rc;
}

/* The body of consume, inside s_atomic_begin/end. */
static int
s_token_consume(fl_store_t *s, const uint8_t secret_hash[32], int64_t now_ms, fl_token_row_t *t)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, "SELECT " S_TOKEN_COLS " FROM tokens WHERE secret_hash = ?1",
                       "use token", &st);
    if (rc < 0)
        return rc;
    if (sqlite3_bind_blob(st, 1, secret_hash, 32, SQLITE_STATIC) != SQLITE_OK) {
        rc = fl_store_dberr(s, "use token");
        goto out;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = fl_fail(FL_ENOTFOUND,
                     "unknown join token (forged, mistyped, or made by another coordinator)");
        goto out;
    }
    if (step != SQLITE_ROW) {
        rc = fl_store_dberr(s, "use token");
        goto out;
    }
    s_read_token(st, t);
    sqlite3_finalize(st);
    st = NULL;

    const char *state = fl_store_token_state(t, now_ms);
    if (strcmp(state, "unused") != 0)
        return fl_fail(FL_EPERM, "join token %s (for '%s')%s",
                       strcmp(state, "used") == 0 ? "already used" : state, t->name,
                       strcmp(state, "expired") == 0 ? "; ask for a new one" : "");
    if ((rc = s_prepare(s,
                        "UPDATE tokens SET used_ms = ?2 WHERE id = ?1 AND used_ms IS NULL"
                        " AND revoked = 0",
                        "use token", &st)) < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, t->id) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, now_ms) != SQLITE_OK) {
        rc = fl_store_dberr(s, "use token");
        goto out;
    }
    if ((rc = s_step_done(s, st, "use token")) < 0)
        goto out;
    /* Cannot happen under the write lock taken above; kept as the rule. */
    if (sqlite3_changes(s->db) != 1)
        rc = fl_fail(FL_EPERM, "join token already used (for '%s')", t->name);
    t->used_ms = now_ms;
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_token_consume(fl_store_t *s, const uint8_t secret_hash[32], int64_t now_ms,
                       fl_token_row_t *out)
{
    fl_token_row_t t;
    int mode = 0, rc;

    if (!secret_hash)
        return fl_fail(FL_EINVAL, "%s: use token: no secret hash", s->path);
    if ((rc = s_atomic_begin(s, &mode, "use token")) < 0)
        return rc;
    rc = s_token_consume(s, secret_hash, now_ms, &t);
    rc = s_atomic_end(s, mode, rc, "use token");
    if (rc == 0 && out)
        *out = t;
    return rc;
}

int
fl_store_token_revoke(fl_store_t *s, const char *name, int64_t *n_revoked)
{
    sqlite3_stmt *st = NULL;
    if (!name)
        return fl_fail(FL_EINVAL, "%s: revoke token: no name given", s->path);
    int rc = s_prepare_text(s,
                            "UPDATE tokens SET revoked = 1 WHERE name = ?1 AND used_ms IS NULL"
                            " AND revoked = 0",
                            "revoke token", name, FL_AGENT_NAME_MAX + 1, &st);
    if (rc < 0)
        return rc;
    if ((rc = s_step_done(s, st, "revoke token")) < 0)
        goto out;
    int n = sqlite3_changes(s->db);
    if (n == 0) {
        rc = fl_fail(FL_ENOTFOUND, "%s: no unused join token for '%.64s'", s->path, name);
        goto out;
    }
    if (n_revoked)
        *n_revoked = n;
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_token_list(fl_store_t *s, fl_token_cb cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    fl_token_row_t row;
    int rc = s_prepare(s, "SELECT " S_TOKEN_COLS " FROM tokens ORDER BY id", "list tokens", &st);
    if (rc < 0)
        return rc;
    while ((rc = s_step_row(s, st, "list tokens")) == 1) {
        s_read_token(st, &row);
        int c = cb(&row, arg);
        if (c) {
            rc = s_cb_result(c);
            goto out;
        }
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- admins ---- */

#define S_ADMIN_COLS "id, name, pubkey, role, created_ms, revoked, revoked_ms"

bool
fl_store_admin_role_ok(const char *role)
{
    return role && (strcmp(role, FL_ADMIN_VIEWER) == 0 || strcmp(role, FL_ADMIN_OPERATOR) == 0);
}

static void
s_read_admin(sqlite3_stmt *st, fl_admin_row_t *a)
{
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(st, 0);
    s_col_text(st, 1, a->name, sizeof a->name);
    s_col_text(st, 2, a->pubkey, sizeof a->pubkey);
    s_col_text(st, 3, a->role, sizeof a->role);
    a->created_ms = sqlite3_column_int64(st, 4);
    a->revoked = sqlite3_column_int(st, 5) != 0;
    a->revoked_ms = sqlite3_column_int64(st, 6);
}

/* One admin by name or key: FL_ENOTFOUND naming what was looked for. */
static int
s_admin_get(fl_store_t *s, const char *sql, const char *text, size_t max, fl_admin_row_t *out,
            const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare_text(s, sql, "get admin", text, max, &st);
    if (rc < 0)
        return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        s_read_admin(st, out);
    else if (step == SQLITE_DONE)
        rc = fl_fail(FL_ENOTFOUND, "%s: no admin with %s '%.64s'", s->path, what, text);
    else
        rc = fl_store_dberr(s, "get admin");
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_admin_get_by_key(fl_store_t *s, const char *pubkey_z85, fl_admin_row_t *out)
{
    if (!pubkey_z85 || !out)
        return fl_fail(FL_EINVAL, "%s: get admin: no public key given", s->path);
    return s_admin_get(s, "SELECT " S_ADMIN_COLS " FROM admins WHERE pubkey = ?1", pubkey_z85,
                       FL_Z85_KEY_LEN + 1, out, "public key");
}

int
fl_store_admin_get_by_name(fl_store_t *s, const char *name, fl_admin_row_t *out)
{
    if (!name || !out)
        return fl_fail(FL_EINVAL, "%s: get admin: no name given", s->path);
    return s_admin_get(s, "SELECT " S_ADMIN_COLS " FROM admins WHERE name = ?1", name,
                       FL_AGENT_NAME_MAX + 1, out, "name");
}

int
fl_store_admin_add(fl_store_t *s, const char *name, const char *pubkey_z85, const char *role,
                   int64_t now_ms, int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    fl_admin_row_t existing = {0};
    int rc;

    if (!fl_store_agent_name_ok(name))
        return fl_fail(FL_EINVAL,
                       "%s: bad admin name '%.70s': 1..%d characters of [A-Za-z0-9._-], "
                       "starting with a letter or digit",
                       s->path, name ? name : "(null)", FL_AGENT_NAME_MAX);
    if ((rc = s_check_key(s, pubkey_z85)) < 0)
        return rc;
    if (!fl_store_admin_role_ok(role))
        return fl_fail(FL_EINVAL, "%s: bad admin role '%.32s' (viewer or operator)", s->path,
                       role ? role : "(null)");
    rc = fl_store_admin_get_by_name(s, name, &existing);
    if (rc == 0)
        return fl_fail(FL_EEXIST, "%s: admin name '%s' is taken%s", s->path, name,
                       existing.revoked ? " (by a revoked admin)" : "");
    if (rc != FL_ENOTFOUND)
        return rc;
    rc = fl_store_admin_get_by_key(s, pubkey_z85, &existing);
    if (rc == 0)
        return fl_fail(FL_EEXIST, "%s: public key is already an admin key (admin '%s'%s)",
                       s->path, existing.name, existing.revoked ? ", revoked" : "");
    if (rc != FL_ENOTFOUND)
        return rc;

    if ((rc = s_prepare(s,
                        "INSERT INTO admins (name, pubkey, role, created_ms)"
                        " VALUES (?1, ?2, ?3, ?4)",
                        "add admin", &st)) < 0)
        return rc;
    if (s_bind_text(st, 1, name, FL_AGENT_NAME_MAX) != SQLITE_OK ||
        s_bind_text(st, 2, pubkey_z85, FL_Z85_KEY_LEN) != SQLITE_OK ||
        s_bind_text(st, 3, role, 16) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, now_ms) != SQLITE_OK) {
        rc = fl_store_dberr(s, "add admin");
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE
                 ? fl_fail(FL_EEXIST, "%s: admin '%s': name or public key is taken (%s)",
                           s->path, name, sqlite3_errmsg(s->db))
                 : fl_store_dberr(s, "add admin");
        goto out;
    }
    if (id_out)
        *id_out = sqlite3_last_insert_rowid(s->db);
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_admin_revoke(fl_store_t *s, const char *name, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    fl_admin_row_t a = {0};
    int rc;

    if ((rc = fl_store_admin_get_by_name(s, name, &a)) < 0)
        return rc;
    if (a.revoked)
        return fl_fail(FL_ESTATE, "%s: admin '%s' is already revoked", s->path, a.name);
    if ((rc = s_prepare(s,
                        "UPDATE admins SET revoked = 1, revoked_ms = ?2"
                        " WHERE name = ?1 AND revoked = 0",
                        "revoke admin", &st)) < 0)
        return rc;
    if (s_bind_text(st, 1, name, FL_AGENT_NAME_MAX + 1) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, now_ms) != SQLITE_OK) {
        rc = fl_store_dberr(s, "revoke admin");
        goto out;
    }
    if ((rc = s_step_done(s, st, "revoke admin")) < 0)
        goto out;
    /* Another connection revoked it between the look-up and the update. */
    if (sqlite3_changes(s->db) == 0)
        rc = fl_fail(FL_ESTATE, "%s: admin '%s' is already revoked", s->path, a.name);
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_admin_list(fl_store_t *s, fl_admin_cb cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    fl_admin_row_t row;
    int rc = s_prepare(s, "SELECT " S_ADMIN_COLS " FROM admins ORDER BY name", "list admins", &st);
    if (rc < 0)
        return rc;
    while ((rc = s_step_row(s, st, "list admins")) == 1) {
        s_read_admin(st, &row);
        int c = cb(&row, arg);
        if (c) {
            rc = s_cb_result(c);
            goto out;
        }
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_store_admin_key_active(fl_store_t *s, const char *pubkey_z85, char role[16])
{
    fl_admin_row_t a = {0};
    if (!fl_store_z85_key_ok(pubkey_z85))
        return 0;
    int rc = fl_store_admin_get_by_key(s, pubkey_z85, &a);
    if (rc == FL_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (a.revoked || !fl_store_admin_role_ok(a.role))
        return 0;
    if (role)
        snprintf(role, 16, "%s", a.role);
    return 1;
}
