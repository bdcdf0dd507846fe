/*
 * test_store.c — unit tests of fl_store, the coordinator's SQLite state:
 * open modes and schema migrations, agents, rounds, per-agent round records,
 * checkpoints (incl. multi-MB blobs), metrics, transactions, and a writer and
 * a read-only reader on the same WAL file. Each test uses its own database in
 * a temporary directory under /tmp; the files are also inspected with raw
 * SQLite to check what fl_store promises about them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_rng.h"
#include "fl_store.h"
#include "fl_util.h"
#include "testutil.h"

static int
s_setup(void **state)
{
    (void)state;
    return s_tmpdir_make("store");
}

/* A fresh path in the test directory (any old files of that name removed). */
static const char *
s_path(char *buf, size_t size, const char *name)
{
    char p[512];
    snprintf(buf, size, "%s/%s", s_dir, name);
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", buf, suffix[i]);
        unlink(p);
    }
    return buf;
}

static bool
s_exists_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A valid Z85 key: the Z85 encoding of 32 bytes derived from `seed`. */
static void
s_key(unsigned seed, char out[41])
{
    uint8_t raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)(seed * 131u + (unsigned)i * 7u + 1u);
    assert_non_null(zmq_z85_encode(out, raw, 32));
}

static fl_store_t *
s_create(const char *path)
{
    fl_store_t *s = NULL;
    int rc = fl_store_open(path, FL_STORE_CREATE, &s);
    if (rc != 0)
        fail_msg("open %s: %s", path, fl_errmsg());
    return s;
}

/* Raw SQLite: one integer from a query on `path` (a separate connection). */
static int64_t
s_raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void
s_raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

/* One integer through the store's own connection. */
static int64_t
s_conn_int(fl_store_t *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(fl_store_handle(s), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void
s_assert_err(int rc, int code, const char *needle)
{
    if (rc != code)
        fail_msg("expected %d (%s), got %d: %s", code, fl_strerror(code), rc, fl_errmsg());
    if (needle && !strstr(fl_errmsg(), needle))
        fail_msg("error detail '%s' lacks '%s'", fl_errmsg(), needle);
}

/* ---- open, files, schema ---- */

static void
test_create_reopen_persists(void **state)
{
    (void)state;
    char path[256], wal[300], buf[64];
    s_path(path, sizeof path, "persist.db");
    snprintf(wal, sizeof wal, "%s-wal", path);

    fl_store_t *s = s_create(path);
    assert_int_equal(fl_store_schema_version(s), fl_store_schema_latest());
    assert_true(fl_store_schema_latest() >= 1);
    assert_string_equal(fl_store_path(s), path);
    assert_false(fl_store_readonly(s));

    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* Connection settings. */
    assert_int_equal(s_conn_int(s, "PRAGMA foreign_keys"), 1);
    assert_int_equal(s_conn_int(s, "PRAGMA busy_timeout"), 5000);
    assert_int_equal(s_conn_int(s, "PRAGMA synchronous"), 1); /* NORMAL */
    assert_int_equal(s_conn_int(s, "PRAGMA page_size"), 65536);

    assert_int_equal(fl_store_meta_set(s, "federation_id", "fed-1234"), 0);
    int64_t id = 0;
    char key[41];
    s_key(1, key);
    assert_int_equal(fl_store_agent_add(s, "edge-01", key, 1000, &id), 0);
    /* The WAL holds the commit and inherits the database's mode. */
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    fl_store_destroy(&s);
    assert_null(s);
    fl_store_destroy(&s); /* idempotent */
    fl_store_destroy(NULL);

    /* Closing the last connection checkpoints the WAL into the file itself. */
    assert_false(s_exists_file(wal));
    assert_int_equal(s_raw_int(path, "PRAGMA page_size"), 65536);
    assert_int_equal(s_raw_int(path, "PRAGMA user_version"), fl_store_schema_latest());
    assert_int_equal(s_raw_int(path, "PRAGMA application_id"), FL_STORE_APP_ID);
    assert_int_equal(s_raw_int(path, "PRAGMA auto_vacuum"), 0);
    assert_int_equal(s_raw_int(path, "SELECT count(*) FROM agents WHERE name = 'edge-01'"), 1);
    assert_int_equal(s_raw_int(path, "SELECT count(*) FROM pragma_journal_mode "
                                     "WHERE journal_mode = 'wal'"), 1);

    /* Reopen (RW and CREATE on an existing file) and find everything. */
    assert_int_equal(fl_store_open(path, FL_STORE_RW, &s), 0);
    assert_int_equal(fl_store_meta_get(s, "federation_id", buf, sizeof buf), 0);
    assert_string_equal(buf, "fed-1234");
    fl_agent_row_t a;
    assert_int_equal(fl_store_agent_get_by_id(s, id, &a), 0);
    assert_string_equal(a.name, "edge-01");
    fl_store_destroy(&s);
    s = s_create(path);
    assert_int_equal(fl_store_meta_get(s, "federation_id", buf, sizeof buf), 0);
    fl_store_destroy(&s);

    /* Bad arguments. */
    s_assert_err(fl_store_open(path, 7, &s), FL_EINVAL, "flags");
    s_assert_err(fl_store_open("", FL_STORE_RW, &s), FL_EINVAL, NULL);
    s_assert_err(fl_store_open(s_dir, FL_STORE_RW, &s), FL_EIO, s_dir);
    s_assert_err(fl_store_open("/nonexistent-dir-covey/x.db", FL_STORE_CREATE, &s), FL_EIO,
                 "/nonexistent-dir-covey/x.db");
    assert_null(s);
}

static void
test_missing_file(void **state)
{
    (void)state;
    char path[256];
    fl_store_t *s = NULL;
    s_path(path, sizeof path, "missing.db");
    s_assert_err(fl_store_open(path, FL_STORE_READONLY, &s), FL_ENOTFOUND, path);
    assert_null(s);
    assert_false(s_exists_file(path));
    s_assert_err(fl_store_open(path, FL_STORE_RW, &s), FL_ENOTFOUND, path);
    assert_false(s_exists_file(path));
}

static void
test_not_a_database(void **state)
{
    (void)state;
    char path[256], buf[4096];
    fl_store_t *s = NULL;
    s_path(path, sizeof path, "text.db");
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = "this is not a database\n"[i % 23];
    assert_int_equal(fl_write_file_atomic(path, buf, sizeof buf, 0600), 0);

    s_assert_err(fl_store_open(path, FL_STORE_RW, &s), FL_EDB, path);
    assert_non_null(strstr(fl_errmsg(), "not a SQLite database"));
    s_assert_err(fl_store_open(path, FL_STORE_CREATE, &s), FL_EDB, "not a SQLite database");
    s_assert_err(fl_store_open(path, FL_STORE_READONLY, &s), FL_EDB, "not a SQLite database");
    assert_null(s);
    /* Untouched. */
    uint8_t *back = NULL;
    size_t len = 0;
    assert_int_equal(fl_read_file(path, 1 << 20, &back, &len), 0);
    assert_int_equal(len, sizeof buf);
    assert_memory_equal(back, buf, sizeof buf);
    free(back);

    /* A SQLite database of some other program. */
    s_path(path, sizeof path, "foreign.db");
    s_raw_exec(path, "CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('hi')");
    s_assert_err(fl_store_open(path, FL_STORE_RW, &s), FL_EDB, "not a Covey state database");
    assert_non_null(strstr(fl_errmsg(), path));
    s_raw_exec(path, "PRAGMA application_id = 1234");
    s_assert_err(fl_store_open(path, FL_STORE_READONLY, &s), FL_EDB, "not a Covey");
    assert_int_equal(s_raw_int(path, "SELECT count(*) FROM sqlite_master"), 1);
    assert_null(s);
}

static void
test_newer_version_refused(void **state)
{
    (void)state;
    char path[256];
    fl_store_t *s = s_create(s_path(path, sizeof path, "newer.db"));
    fl_store_destroy(&s);
    s_raw_exec(path, "PRAGMA user_version = 999");
    s_assert_err(fl_store_open(path, FL_STORE_RW, &s), FL_ESTATE, "newer");
    assert_non_null(strstr(fl_errmsg(), "999"));
    assert_non_null(strstr(fl_errmsg(), path));
    s_assert_err(fl_store_open(path, FL_STORE_CREATE, &s), FL_ESTATE, "newer");
    s_assert_err(fl_store_open(path, FL_STORE_READONLY, &s), FL_ESTATE, "newer");
    assert_null(s);
    assert_int_equal(s_raw_int(path, "PRAGMA user_version"), 999);
}

static void
test_migrations(void **state)
{
    (void)state;
    char path[256];
    int n = fl_store_schema_latest();
    fl_store_t *s = s_create(s_path(path, sizeof path, "migrate.db"));
    assert_int_equal(fl_store_meta_set(s, "k", "v"), 0);
    fl_store_destroy(&s);

    /* Reopening an up-to-date database changes nothing. */
    s = s_create(path);
    assert_int_equal(fl_store_schema_version(s), n);
    fl_store_destroy(&s);
    int64_t objects = s_raw_int(path, "SELECT count(*) FROM sqlite_master");

    /* Two appended steps; the first n entries are never run on this file. */
    const char *steps[16];
    assert_true(n + 3 <= 16);
    for (int i = 0; i < n; i++)
        steps[i] = "SELECT no_such_function_never_run()";
    steps[n] = "CREATE TABLE extra1 (x INTEGER)";
    steps[n + 1] = "CREATE TABLE extra2 (y INTEGER); INSERT INTO extra2 VALUES (42)";
    steps[n + 2] = "CREATE TABLE extra3 (z INTEGER); INSERT INTO no_such_table VALUES (1)";

    /* Read-only refuses an older schema rather than migrating it. */
    fl_store_testing_set_migrations(steps, n + 2);
    s_assert_err(fl_store_open(path, FL_STORE_READONLY, &s), FL_ESTATE, "older");
    assert_int_equal(s_raw_int(path, "PRAGMA user_version"), n);

    assert_int_equal(fl_store_open(path, FL_STORE_RW, &s), 0);
    assert_int_equal(fl_store_schema_version(s), n + 2);
    assert_int_equal(s_conn_int(s, "SELECT count(*) FROM extra2"), 1);
    fl_store_destroy(&s);
    /* Idempotent: a second open runs nothing again. */
    assert_int_equal(fl_store_open(path, FL_STORE_RW, &s), 0);
    assert_int_equal(fl_store_schema_version(s), n + 2);
    assert_int_equal(s_conn_int(s, "SELECT count(*) FROM extra2"), 1);
    assert_int_equal(s_conn_int(s, "SELECT count(*) FROM sqlite_master"), objects + 2);
    fl_store_destroy(&s);

    /* A failing step is rolled back whole and names itself. */
    fl_store_testing_set_migrations(steps, n + 3);
    s_assert_err(fl_store_open(path, FL_STORE_RW, &s), FL_EDB, "migration");
    char want[64];
    snprintf(want, sizeof want, "%d -> %d", n + 2, n + 3);
    assert_non_null(strstr(fl_errmsg(), want));
    assert_non_null(strstr(fl_errmsg(), "no_such_table"));
    assert_null(s);
    assert_int_equal(s_raw_int(path, "PRAGMA user_version"), n + 2);
    assert_int_equal(s_raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'extra3'"),
                     0);

    /* Back to the built-in list: this file is now newer than the program. */
    fl_store_testing_set_migrations(NULL, 0);
    assert_int_equal(fl_store_schema_latest(), n);
    s_assert_err(fl_store_open(path, FL_STORE_RW, &s), FL_ESTATE, "newer");

    /* An empty existing file is an empty database: RW initialises it. */
    s_path(path, sizeof path, "empty.db");
    assert_int_equal(fl_write_file_atomic(path, "", 0, 0600), 0);
    s_assert_err(fl_store_open(path, FL_STORE_READONLY, &s), FL_ESTATE, "not initialised");
    assert_int_equal(fl_store_open(path, FL_STORE_RW, &s), 0);
    assert_int_equal(fl_store_schema_version(s), n);
    assert_int_equal(s_conn_int(s, "PRAGMA page_size"), 65536);
    fl_store_destroy(&s);
}

static void
test_readonly(void **state)
{
    (void)state;
    char path[256], wal[300], key[41], key2[41], buf[32];
    s_path(path, sizeof path, "ro.db");
    snprintf(wal, sizeof wal, "%s-wal", path);
    s_key(3, key);
    s_key(4, key2);
    fl_store_t *s = s_create(path);
    int64_t id = 0;
    assert_int_equal(fl_store_agent_add(s, "edge-ro", key, 5, &id), 0);
    assert_int_equal(fl_store_meta_set(s, "federation_id", "f"), 0);
    fl_store_destroy(&s);
    assert_false(s_exists_file(wal));

    /* The coordinator is down: status opens the file read-only. */
    assert_int_equal(fl_store_open(path, FL_STORE_READONLY, &s), 0);
    assert_true(fl_store_readonly(s));
    assert_int_equal(fl_store_schema_version(s), fl_store_schema_latest());
    fl_agent_row_t a;
    assert_int_equal(fl_store_agent_get_by_name(s, "edge-ro", &a), 0);
    assert_int_equal(a.id, id);
    int64_t got = 0;
    assert_int_equal(fl_store_agent_key_active(s, key, &got), 1);
    assert_int_equal(got, id);
    assert_int_equal(fl_store_meta_get(s, "federation_id", buf, sizeof buf), 0);
    assert_int_equal(fl_store_begin_read(s), 0);
    assert_int_equal(fl_store_agent_get_by_id(s, id, &a), 0);
    assert_int_equal(fl_store_commit(s), 0);

    /* Writes fail cleanly with FL_EDB and change nothing. */
    s_assert_err(fl_store_meta_set(s, "x", "y"), FL_EDB, "readonly");
    assert_non_null(strstr(fl_errmsg(), path));
    s_assert_err(fl_store_agent_add(s, "edge-2", key2, 6, NULL), FL_EDB, "readonly");
    s_assert_err(fl_store_agent_set_status(s, "edge-ro", "revoked"), FL_EDB, NULL);
    s_assert_err(fl_store_begin(s), FL_EDB, NULL);
    uint8_t digest[32] = {1}, model[8] = {2};
    s_assert_err(fl_store_checkpoint_put(s, 1, digest, model, sizeof model, NULL, 0, 7), FL_EDB,
                 NULL);
    assert_false(fl_store_in_transaction(s));
    fl_store_destroy(&s);
    assert_int_equal(s_raw_int(path, "SELECT count(*) FROM agents"), 1);
    assert_int_equal(s_raw_int(path, "SELECT count(*) FROM meta WHERE key = 'x'"), 0);
    assert_int_equal(s_raw_int(path, "SELECT count(*) FROM checkpoints"), 0);
}

/* ---- meta ---- */

static void
test_meta(void **state)
{
    (void)state;
    char path[256], buf[16], small[4];
    fl_store_t *s = s_create(s_path(path, sizeof path, "meta.db"));
    s_assert_err(fl_store_meta_get(s, "created_ms", buf, sizeof buf), FL_ENOTFOUND, "created_ms");
    assert_int_equal(fl_store_meta_set(s, "created_ms", "1700000000000"), 0);
    assert_int_equal(fl_store_meta_get(s, "created_ms", buf, sizeof buf), 0);
    assert_string_equal(buf, "1700000000000");
    assert_int_equal(fl_store_meta_set(s, "created_ms", "12"), 0); /* upsert */
    assert_int_equal(fl_store_meta_get(s, "created_ms", buf, sizeof buf), 0);
    assert_string_equal(buf, "12");
    /* Exactly fits / one byte short. */
    assert_int_equal(fl_store_meta_set(s, "config.rounds", "abc"), 0);
    memcpy(small, "zzzz", 4);
    assert_int_equal(fl_store_meta_get(s, "config.rounds", small, 4), 0);
    assert_string_equal(small, "abc");
    memcpy(small, "zzzz", 4);
    s_assert_err(fl_store_meta_get(s, "config.rounds", small, 3), FL_ERANGE, "config.rounds");
    assert_memory_equal(small, "zzzz", 4);
    /* Strings with quotes and SQL are data, not SQL. */
    const char *evil = "'); DROP TABLE meta; --";
    assert_int_equal(fl_store_meta_set(s, evil, evil), 0);
    char *dup = NULL;
    assert_int_equal(fl_store_meta_dup(s, evil, &dup), 0);
    assert_string_equal(dup, evil);
    free(dup);
    assert_int_equal(fl_store_meta_set(s, "empty", ""), 0);
    assert_int_equal(fl_store_meta_get(s, "empty", buf, 1), 0);
    assert_string_equal(buf, "");
    assert_int_equal(fl_store_meta_delete(s, "empty"), 0);
    s_assert_err(fl_store_meta_delete(s, "empty"), FL_ENOTFOUND, "empty");
    s_assert_err(fl_store_meta_set(s, "", "v"), FL_EINVAL, "meta key");
    s_assert_err(fl_store_meta_set(s, "a\nb", "v"), FL_EINVAL, "meta key");
    s_assert_err(fl_store_meta_set(s, "k", NULL), FL_EINVAL, NULL);
    fl_store_destroy(&s);
}

/* ---- agents ---- */

typedef struct {
    char names[8][64];
    int n;
    int stop_after;
    int stop_value;
} s_agent_acc_t;

static int
s_agent_cb(const fl_agent_row_t *row, void *arg)
{
    s_agent_acc_t *acc = arg;
    assert_true(acc->n < 8);
    snprintf(acc->names[acc->n], sizeof acc->names[0], "%s", row->name);
    acc->n++;
    return acc->n == acc->stop_after ? acc->stop_value : 0;
}

static void
test_agents(void **state)
{
    (void)state;
    char path[256], k1[41], k2[41], k3[41], k4[41];
    fl_store_t *s = s_create(s_path(path, sizeof path, "agents.db"));
    s_key(10, k1);
    s_key(11, k2);
    s_key(12, k3);
    s_key(13, k4);

    int64_t id1 = 0, id2 = 0, id3 = 0;
    assert_int_equal(fl_store_agent_add(s, "zeta", k1, 100, &id1), 0);
    assert_int_equal(fl_store_agent_add(s, "alpha", k2, 200, &id2), 0);
    assert_int_equal(fl_store_agent_add(s, "Mid.node_7-x", k3, 300, &id3), 0);
    assert_true(id1 > 0 && id2 > id1 && id3 > id2);

    /* Taken name / key, and bad fields, each named. */
    s_assert_err(fl_store_agent_add(s, "zeta", k4, 1, NULL), FL_EEXIST, "agent name 'zeta'");
    s_assert_err(fl_store_agent_add(s, "other", k1, 1, NULL), FL_EEXIST, "public key");
    assert_non_null(strstr(fl_errmsg(), "zeta"));
    const char *bad_names[] = {"", "a b", "-rf", "..", ".hidden", "x/y", "caf\xc3\xa9", "a;b",
                               "a'b"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        s_assert_err(fl_store_agent_add(s, bad_names[i], k4, 1, NULL), FL_EINVAL, "agent name");
    s_assert_err(fl_store_agent_add(s, NULL, k4, 1, NULL), FL_EINVAL, "agent name");
    char longname[65];
    memset(longname, 'n', 64);
    longname[64] = '\0';
    s_assert_err(fl_store_agent_add(s, longname, k4, 1, NULL), FL_EINVAL, "agent name");
    longname[63] = '\0'; /* 63 characters: the maximum */
    int64_t idl = 0;
    assert_int_equal(fl_store_agent_add(s, longname, k4, 1, &idl), 0);

    char badkey[48];
    memcpy(badkey, k4, 41);
    badkey[39] = '\0'; /* 39 chars */
    s_assert_err(fl_store_agent_add(s, "kx", badkey, 1, NULL), FL_EINVAL, "public key");
    snprintf(badkey, sizeof badkey, "%sA", k2); /* 41 chars */
    s_assert_err(fl_store_agent_add(s, "kx", badkey, 1, NULL), FL_EINVAL, "public key");
    memcpy(badkey, k2, 41);
    badkey[7] = '~'; /* not in the Z85 alphabet */
    s_assert_err(fl_store_agent_add(s, "kx", badkey, 1, NULL), FL_EINVAL, "public key");
    badkey[7] = ',';
    s_assert_err(fl_store_agent_add(s, "kx", badkey, 1, NULL), FL_EINVAL, "public key");
    memcpy(badkey, "#####", 5); /* a group above 2^32 - 1 */
    memcpy(badkey + 5, k2 + 5, 36);
    s_assert_err(fl_store_agent_add(s, "kx", badkey, 1, NULL), FL_EINVAL, "public key");
    s_assert_err(fl_store_agent_add(s, "kx", NULL, 1, NULL), FL_EINVAL, "public key");
    /* A real CURVE key pair's public half is accepted. */
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_true(fl_store_z85_key_ok(pub));
    assert_true(fl_store_z85_key_ok("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")); /* ZMQ RFC 32 */
    assert_false(fl_store_z85_key_ok(NULL));

    /* Lookups. */
    fl_agent_row_t a;
    assert_int_equal(fl_store_agent_get_by_key(s, k2, &a), 0);
    assert_int_equal(a.id, id2);
    assert_string_equal(a.name, "alpha");
    assert_string_equal(a.pubkey, k2);
    assert_string_equal(a.status, "active");
    assert_int_equal(a.created_ms, 200);
    assert_int_equal(a.last_seen_ms, 0);
    assert_string_equal(a.version, "");
    assert_int_equal(fl_store_agent_get_by_name(s, "Mid.node_7-x", &a), 0);
    assert_int_equal(a.id, id3);
    assert_int_equal(fl_store_agent_get_by_id(s, id1, &a), 0);
    assert_string_equal(a.name, "zeta");
    s_assert_err(fl_store_agent_get_by_name(s, "nobody", &a), FL_ENOTFOUND, "nobody");
    s_assert_err(fl_store_agent_get_by_id(s, 9999, &a), FL_ENOTFOUND, "9999");
    s_assert_err(fl_store_agent_get_by_key(s, pub, &a), FL_ENOTFOUND, "public key");

    /* Revocation takes effect for the ZAP check at once. */
    int64_t got = -1;
    assert_int_equal(fl_store_agent_key_active(s, k1, &got), 1);
    assert_int_equal(got, id1);
    assert_int_equal(fl_store_agent_set_status(s, "zeta", "revoked"), 0);
    got = -1;
    assert_int_equal(fl_store_agent_key_active(s, k1, &got), 0);
    assert_int_equal(got, -1);
    assert_int_equal(fl_store_agent_get_by_name(s, "zeta", &a), 0);
    assert_string_equal(a.status, "revoked");
    /* A revoked agent keeps its name and key. */
    s_assert_err(fl_store_agent_add(s, "zeta2", k1, 1, NULL), FL_EEXIST, "public key");
    assert_int_equal(fl_store_agent_set_status(s, "zeta", "active"), 0);
    assert_int_equal(fl_store_agent_key_active(s, k1, NULL), 1);
    assert_int_equal(fl_store_agent_key_active(s, pub, NULL), 0);
    assert_int_equal(fl_store_agent_key_active(s, "short", NULL), 0);
    assert_int_equal(fl_store_agent_key_active(s, NULL, NULL), 0);
    s_assert_err(fl_store_agent_set_status(s, "zeta", "paused"), FL_EINVAL, "paused");
    s_assert_err(fl_store_agent_set_status(s, "ghost", "revoked"), FL_ENOTFOUND, "ghost");

    /* Key rotation. */
    assert_int_equal(fl_store_agent_set_key(s, "alpha", pub), 0);
    assert_int_equal(fl_store_agent_get_by_key(s, pub, &a), 0);
    assert_int_equal(a.id, id2);
    s_assert_err(fl_store_agent_get_by_key(s, k2, &a), FL_ENOTFOUND, NULL);
    assert_int_equal(fl_store_agent_key_active(s, k2, NULL), 0);
    assert_int_equal(fl_store_agent_key_active(s, pub, NULL), 1);
    s_assert_err(fl_store_agent_set_key(s, "alpha", k1), FL_EEXIST, "zeta");
    assert_int_equal(fl_store_agent_set_key(s, "alpha", pub), 0); /* its own key: no-op */
    s_assert_err(fl_store_agent_set_key(s, "alpha", "bad"), FL_EINVAL, "public key");
    s_assert_err(fl_store_agent_set_key(s, "ghost", k2), FL_ENOTFOUND, "ghost");

    /* Seen. */
    assert_int_equal(fl_store_agent_seen(s, id3, 5000, "covey-agent 0.1.0", 60000, 10000), 0);
    assert_int_equal(fl_store_agent_get_by_id(s, id3, &a), 0);
    assert_int_equal(a.last_seen_ms, 5000);
    assert_string_equal(a.version, "covey-agent 0.1.0");
    assert_int_equal(a.n_train, 60000);
    assert_int_equal(a.n_test, 10000);
    assert_int_equal(fl_store_agent_seen(s, id3, 6000, NULL, -1, -1), 0); /* keep the rest */
    assert_int_equal(fl_store_agent_get_by_id(s, id3, &a), 0);
    assert_int_equal(a.last_seen_ms, 6000);
    assert_string_equal(a.version, "covey-agent 0.1.0");
    assert_int_equal(a.n_train, 60000);
    assert_int_equal(a.n_test, 10000);
    s_assert_err(fl_store_agent_seen(s, 4242, 1, NULL, 0, 0), FL_ENOTFOUND, "4242");
    s_assert_err(fl_store_agent_seen(s, id3, 1, "0123456789012345678901234567890123", 0, 0),
                 FL_EINVAL, "version");
    s_assert_err(fl_store_agent_seen(s, id3, 1, "v\n", 0, 0), FL_EINVAL, "version");

    /* List: ordered by name (bytewise), and callbacks can stop it. */
    s_agent_acc_t acc = {.stop_after = -1};
    assert_int_equal(fl_store_agent_list(s, s_agent_cb, &acc), 0);
    assert_int_equal(acc.n, 4);
    assert_string_equal(acc.names[0], "Mid.node_7-x");
    assert_string_equal(acc.names[1], "alpha");
    assert_string_equal(acc.names[2], longname);
    assert_string_equal(acc.names[3], "zeta");
    acc = (s_agent_acc_t){.stop_after = 2, .stop_value = 1};
    assert_int_equal(fl_store_agent_list(s, s_agent_cb, &acc), 0);
    assert_int_equal(acc.n, 2);
    acc = (s_agent_acc_t){.stop_after = 1, .stop_value = -42};
    assert_int_equal(fl_store_agent_list(s, s_agent_cb, &acc), -42);
    assert_int_equal(acc.n, 1);
    fl_store_destroy(&s);
}

/* ---- rounds ---- */

static fl_round_row_t
s_round(int64_t round, int64_t attempt, const char *phase, const char *outcome)
{
    fl_round_row_t r;
    memset(&r, 0, sizeof r);
    r.round = round;
    r.attempt = attempt;
    snprintf(r.phase, sizeof r.phase, "%s", phase);
    snprintf(r.outcome, sizeof r.outcome, "%s", outcome);
    r.started_ms = 1000 * round;
    r.deadline_ms = 1000 * round + 500;
    r.expected = 3;
    r.train_loss = NAN;
    r.train_acc = NAN;
    r.eval_loss = NAN;
    r.eval_acc = NAN;
    return r;
}

typedef struct {
    int64_t round[8], attempt[8];
    int n;
} s_round_acc_t;

static int
s_round_cb(const fl_round_row_t *row, void *arg)
{
    s_round_acc_t *acc = arg;
    assert_true(acc->n < 8);
    acc->round[acc->n] = row->round;
    acc->attempt[acc->n] = row->attempt;
    acc->n++;
    return 0;
}

static void
test_rounds(void **state)
{
    (void)state;
    char path[256];
    fl_store_t *s = s_create(s_path(path, sizeof path, "rounds.db"));
    fl_round_row_t r, g;
    int64_t n = -1;

    s_assert_err(fl_store_round_latest(s, &g), FL_ENOTFOUND, "no rounds");
    assert_int_equal(fl_store_round_count_done(s, &n), 0);
    assert_int_equal(n, 0);

    r = s_round(1, 0, "train", "");
    assert_int_equal(fl_store_round_put(s, &r), 0);
    assert_int_equal(fl_store_round_get(s, 1, 0, &g), 0);
    assert_string_equal(g.phase, "train");
    assert_string_equal(g.outcome, "");
    assert_true(isnan(g.train_loss) && isnan(g.train_acc));
    assert_int_equal(g.has_eval, 0);
    assert_int_equal(g.deadline_ms, 1500);

    /* Upsert the same (round, attempt) to done, with every field set. */
    r = s_round(1, 0, "done", "ok");
    r.ended_ms = 1900;
    r.received = 3;
    r.rejected = 1;
    r.train_loss = 0.6931;
    r.train_acc = 0.5;
    r.has_eval = 1;
    r.eval_loss = 0.7;
    r.eval_acc = 0.48;
    r.eval_n = 2000;
    assert_int_equal(fl_store_round_put(s, &r), 0);
    assert_int_equal(fl_store_round_get(s, 1, 0, &g), 0);
    assert_string_equal(g.phase, "done");
    assert_string_equal(g.outcome, "ok");
    assert_int_equal(g.ended_ms, 1900);
    assert_int_equal(g.expected, 3);
    assert_int_equal(g.received, 3);
    assert_int_equal(g.rejected, 1);
    assert_true(g.train_loss == 0.6931 && g.train_acc == 0.5);
    assert_int_equal(g.has_eval, 1);
    assert_true(g.eval_loss == 0.7 && g.eval_acc == 0.48);
    assert_int_equal(g.eval_n, 2000);

    r = s_round(2, 0, "failed", "only 2 of 3 updates");
    assert_int_equal(fl_store_round_put(s, &r), 0);
    r = s_round(2, 1, "done", "ok");
    assert_int_equal(fl_store_round_put(s, &r), 0);
    r = s_round(3, 0, "aggregate", "");
    assert_int_equal(fl_store_round_put(s, &r), 0);

    assert_int_equal(fl_store_round_latest(s, &g), 0);
    assert_int_equal(g.round, 3);
    assert_int_equal(g.attempt, 0);
    assert_string_equal(g.phase, "aggregate");
    assert_int_equal(fl_store_round_get(s, 2, 0, &g), 0);
    assert_string_equal(g.outcome, "only 2 of 3 updates");
    s_assert_err(fl_store_round_get(s, 2, 7, &g), FL_ENOTFOUND, "round 2 attempt 7");

    s_round_acc_t acc = {0};
    assert_int_equal(fl_store_round_list(s, 0, s_round_cb, &acc), 0);
    assert_int_equal(acc.n, 4);
    int64_t want_r[] = {1, 2, 2, 3}, want_a[] = {0, 0, 1, 0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(acc.round[i], want_r[i]);
        assert_int_equal(acc.attempt[i], want_a[i]);
    }
    acc = (s_round_acc_t){0};
    assert_int_equal(fl_store_round_list(s, 2, s_round_cb, &acc), 0);
    assert_int_equal(acc.n, 2);
    assert_int_equal(acc.round[0], 2);
    assert_int_equal(acc.attempt[0], 1);
    assert_int_equal(acc.round[1], 3);
    acc = (s_round_acc_t){0};
    assert_int_equal(fl_store_round_list(s, 100, s_round_cb, &acc), 0);
    assert_int_equal(acc.n, 4);
    assert_int_equal(acc.round[0], 1);

    assert_int_equal(fl_store_round_count_done(s, &n), 0);
    assert_int_equal(n, 2);

    /* Bad rows. */
    r = s_round(4, 0, "sleeping", "");
    s_assert_err(fl_store_round_put(s, &r), FL_EINVAL, "phase");
    r = s_round(-1, 0, "train", "");
    s_assert_err(fl_store_round_put(s, &r), FL_EINVAL, NULL);
    r = s_round(4, -1, "train", "");
    s_assert_err(fl_store_round_put(s, &r), FL_EINVAL, NULL);
    r = s_round(4, 0, "train", "");
    memset(r.outcome, 'x', sizeof r.outcome); /* not NUL-terminated */
    s_assert_err(fl_store_round_put(s, &r), FL_EINVAL, "outcome");
    memset(r.phase, 'd', sizeof r.phase);
    s_assert_err(fl_store_round_put(s, &r), FL_EINVAL, "phase");
    s_assert_err(fl_store_round_put(s, NULL), FL_EINVAL, NULL);
    assert_int_equal(fl_store_round_latest(s, &g), 0);
    assert_int_equal(g.round, 3);
    fl_store_destroy(&s);
}

typedef struct {
    fl_round_agent_row_t rows[4];
    int n;
} s_ra_acc_t;

static int
s_ra_cb(const fl_round_agent_row_t *row, void *arg)
{
    s_ra_acc_t *acc = arg;
    assert_true(acc->n < 4);
    acc->rows[acc->n++] = *row;
    return 0;
}

static void
test_round_agents(void **state)
{
    (void)state;
    char path[256], k1[41], k2[41];
    fl_store_t *s = s_create(s_path(path, sizeof path, "round_agents.db"));
    s_key(20, k1);
    s_key(21, k2);
    int64_t a1 = 0, a2 = 0;
    assert_int_equal(fl_store_agent_add(s, "b-agent", k1, 1, &a1), 0);
    assert_int_equal(fl_store_agent_add(s, "a-agent", k2, 1, &a2), 0);
    fl_round_row_t r = s_round(1, 0, "train", "");
    assert_int_equal(fl_store_round_put(s, &r), 0);

    fl_round_agent_row_t ra = {.round = 1, .attempt = 0, .agent_id = a2, .status = "selected",
                               .loss = NAN, .acc = NAN};
    assert_int_equal(fl_store_round_agent_put(s, &ra), 0);
    ra.agent_id = a1;
    assert_int_equal(fl_store_round_agent_put(s, &ra), 0);
    /* Upsert a1 to received with its report. */
    ra = (fl_round_agent_row_t){.round = 1, .attempt = 0, .agent_id = a1, .status = "received",
                                .n_samples = 6000, .loss = 0.25, .acc = 0.91, .time_ms = 1234};
    assert_int_equal(fl_store_round_agent_put(s, &ra), 0);
    ra = (fl_round_agent_row_t){.round = 1, .attempt = 0, .agent_id = a2, .status = "rejected",
                                .loss = NAN, .acc = NAN, .reason = "non-finite update"};
    assert_int_equal(fl_store_round_agent_put(s, &ra), 0);

    s_ra_acc_t acc = {0};
    assert_int_equal(fl_store_round_agent_list(s, 1, 0, s_ra_cb, &acc), 0);
    assert_int_equal(acc.n, 2);
    assert_int_equal(acc.rows[0].agent_id, a1); /* ordered by agent id */
    assert_string_equal(acc.rows[0].status, "received");
    assert_int_equal(acc.rows[0].n_samples, 6000);
    assert_true(acc.rows[0].loss == 0.25 && acc.rows[0].acc == 0.91);
    assert_int_equal(acc.rows[0].time_ms, 1234);
    assert_string_equal(acc.rows[0].reason, "");
    assert_int_equal(acc.rows[1].agent_id, a2);
    assert_string_equal(acc.rows[1].status, "rejected");
    assert_string_equal(acc.rows[1].reason, "non-finite update");
    assert_true(isnan(acc.rows[1].loss));
    acc = (s_ra_acc_t){0};
    assert_int_equal(fl_store_round_agent_list(s, 1, 1, s_ra_cb, &acc), 0);
    assert_int_equal(acc.n, 0);

    /* Missing parents and bad fields. */
    ra = (fl_round_agent_row_t){.round = 9, .attempt = 0, .agent_id = a1, .status = "selected"};
    s_assert_err(fl_store_round_agent_put(s, &ra), FL_ENOTFOUND, "no round 9 attempt 0");
    ra = (fl_round_agent_row_t){.round = 1, .attempt = 0, .agent_id = 777, .status = "selected"};
    s_assert_err(fl_store_round_agent_put(s, &ra), FL_ENOTFOUND, "no agent with id 777");
    ra = (fl_round_agent_row_t){.round = 1, .attempt = 0, .agent_id = a1, .status = "lost"};
    s_assert_err(fl_store_round_agent_put(s, &ra), FL_EINVAL, "status");
    ra = (fl_round_agent_row_t){.round = 1, .attempt = 0, .agent_id = a1, .status = "dropped"};
    memset(ra.reason, 'r', sizeof ra.reason);
    s_assert_err(fl_store_round_agent_put(s, &ra), FL_EINVAL, "reason");
    fl_store_destroy(&s);
}

/* ---- checkpoints ---- */

static uint8_t *
s_random_bytes(size_t n, uint64_t seed)
{
    fl_rng_t rng;
    fl_rng_seed(&rng, seed, 0);
    uint8_t *p = fl_xmalloc(n);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = fl_rng_u64(&rng);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
    return p;
}

static void
test_checkpoints(void **state)
{
    (void)state;
    char path[256];
    fl_store_t *s = s_create(s_path(path, sizeof path, "ckpt.db"));
    fl_checkpoint_info_t info;
    uint8_t *m = NULL, *st = NULL;
    size_t ml = 0, sl = 0;

    s_assert_err(fl_store_checkpoint_latest_info(s, &info), FL_ENOTFOUND, "no checkpoint");
    s_assert_err(fl_store_checkpoint_load(s, -1, &info, &m, &ml, &st, &sl), FL_ENOTFOUND, NULL);

    uint8_t d0[32], d5[32];
    for (int i = 0; i < 32; i++) {
        d0[i] = (uint8_t)i;
        d5[i] = (uint8_t)(255 - i);
    }
    const uint8_t small[5] = {1, 2, 3, 4, 5};
    assert_int_equal(fl_store_checkpoint_put(s, 0, d0, small, sizeof small, NULL, 0, 111), 0);

    /* A multi-MB model (odd size) and optimizer state. */
    size_t big_n = 5 * 1024 * 1024 + 13, state_n = 1024 * 1024 + 1;
    uint8_t *big = s_random_bytes(big_n, 5), *sstate = s_random_bytes(state_n, 6);
    assert_int_equal(fl_store_checkpoint_put(s, 5, d5, big, big_n, sstate, state_n, 555), 0);

    assert_int_equal(fl_store_checkpoint_latest_info(s, &info), 0);
    assert_int_equal(info.round, 5);
    assert_memory_equal(info.digest, d5, 32);
    assert_int_equal(info.created_ms, 555);
    assert_int_equal(info.model_bytes, (int64_t)big_n);
    assert_int_equal(info.state_bytes, (int64_t)state_n);

    memset(&info, 0, sizeof info);
    assert_int_equal(fl_store_checkpoint_load(s, -1, &info, &m, &ml, &st, &sl), 0);
    assert_int_equal(info.round, 5);
    assert_int_equal(ml, big_n);
    assert_int_equal(sl, state_n);
    assert_memory_equal(m, big, big_n);
    assert_memory_equal(st, sstate, state_n);
    assert_int_equal((uintptr_t)m % 64, 0);
    free(m);
    free(st);

    assert_int_equal(fl_store_checkpoint_load(s, 0, &info, &m, &ml, &st, &sl), 0);
    assert_int_equal(info.round, 0);
    assert_memory_equal(info.digest, d0, 32);
    assert_int_equal(ml, sizeof small);
    assert_memory_equal(m, small, sizeof small);
    assert_null(st);
    assert_int_equal(sl, 0);
    free(m);

    /* Missing round; duplicate refused and the stored one unchanged. */
    m = (uint8_t *)0x1;
    s_assert_err(fl_store_checkpoint_load(s, 3, &info, &m, &ml, &st, &sl), FL_ENOTFOUND, "round 3");
    assert_ptr_equal(m, (uint8_t *)0x1); /* no partial output */
    s_assert_err(fl_store_checkpoint_put(s, 5, d0, small, sizeof small, NULL, 0, 9), FL_EEXIST,
                 "round 5");
    assert_int_equal(fl_store_checkpoint_load(s, 5, NULL, &m, &ml, &st, &sl), 0);
    assert_int_equal(ml, big_n);
    assert_memory_equal(m, big, big_n);
    free(m);
    free(st);

    /* Bad arguments. */
    s_assert_err(fl_store_checkpoint_put(s, 6, d0, small, 0, NULL, 0, 1), FL_EINVAL, NULL);
    s_assert_err(fl_store_checkpoint_put(s, 6, NULL, small, 5, NULL, 0, 1), FL_EINVAL, NULL);
    s_assert_err(fl_store_checkpoint_put(s, -2, d0, small, 5, NULL, 0, 1), FL_EINVAL, NULL);
    s_assert_err(fl_store_checkpoint_put(s, 6, d0, small, 5, NULL, 3, 1), FL_EINVAL, NULL);
    s_assert_err(fl_store_checkpoint_put(s, 6, d0, small, fl_store_blob_max(s) + 1, NULL, 0, 1),
                 FL_ERANGE, "limit");
    assert_true(fl_store_blob_max(s) >= 500u * 1000 * 1000);

    /* The bytes live in checkpoint_blobs, the metadata table stays small. */
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(fl_store_handle(s),
                                        "SELECT sum(length(data)) FROM checkpoint_blobs", -1, &q,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(q, 0), (int64_t)(big_n + state_n + sizeof small));
    sqlite3_finalize(q);

    /* Prune keeps the newest, and its blobs go with the others. */
    assert_int_equal(fl_store_checkpoint_put(s, 7, d0, small, sizeof small, small, 2, 777), 0);
    int64_t deleted = -1;
    s_assert_err(fl_store_checkpoint_prune(s, 0, &deleted), FL_EINVAL, NULL);
    assert_int_equal(fl_store_checkpoint_prune(s, 1, &deleted), 0);
    assert_int_equal(deleted, 2);
    s_assert_err(fl_store_checkpoint_load(s, 5, NULL, &m, &ml, &st, &sl), FL_ENOTFOUND, NULL);
    assert_int_equal(s_conn_int(s, "SELECT count(*) FROM checkpoint_blobs"), 2);
    assert_int_equal(fl_store_checkpoint_load(s, -1, &info, &m, &ml, &st, &sl), 0);
    assert_int_equal(info.round, 7);
    assert_int_equal(sl, 2);
    assert_memory_equal(st, small, 2);
    free(m);
    free(st);
    fl_store_destroy(&s);

    /* After close and reopen the big blob is still byte-exact. */
    assert_int_equal(fl_store_open(path, FL_STORE_RW, &s), 0);
    assert_int_equal(fl_store_checkpoint_put(s, 8, d5, big, big_n, NULL, 0, 888), 0);
    fl_store_destroy(&s);
    assert_int_equal(fl_store_open(path, FL_STORE_READONLY, &s), 0);
    assert_int_equal(fl_store_checkpoint_load(s, 8, &info, &m, &ml, &st, &sl), 0);
    assert_int_equal(ml, big_n);
    assert_memory_equal(m, big, big_n);
    assert_null(st);
    free(m);
    fl_store_destroy(&s);
    free(big);
    free(sstate);
}

/* ---- metrics ---- */

typedef struct {
    int64_t round[8];
    char name[8][32];
    double value[8];
    int n;
} s_metric_acc_t;

static int
s_metric_cb(int64_t round, const char *name, double value, void *arg)
{
    s_metric_acc_t *acc = arg;
    assert_true(acc->n < 8);
    acc->round[acc->n] = round;
    snprintf(acc->name[acc->n], sizeof acc->name[0], "%s", name);
    acc->value[acc->n] = value;
    acc->n++;
    return 0;
}

static void
test_metrics(void **state)
{
    (void)state;
    char path[256];
    fl_store_t *s = s_create(s_path(path, sizeof path, "metrics.db"));
    assert_int_equal(fl_store_metric_put(s, 2, "train_loss", 0.4), 0);
    assert_int_equal(fl_store_metric_put(s, 1, "train_loss", 0.5), 0);
    assert_int_equal(fl_store_metric_put(s, 1, "eval_accuracy", 0.8), 0);
    assert_int_equal(fl_store_metric_put(s, 1, "train_loss", 0.45), 0); /* upsert */
    assert_int_equal(fl_store_metric_put(s, 3, "epsilon", NAN), 0);

    s_metric_acc_t acc = {0};
    assert_int_equal(fl_store_metric_list(s, "train_loss", s_metric_cb, &acc), 0);
    assert_int_equal(acc.n, 2);
    assert_int_equal(acc.round[0], 1);
    assert_true(acc.value[0] == 0.45);
    assert_int_equal(acc.round[1], 2);
    assert_true(acc.value[1] == 0.4);

    acc = (s_metric_acc_t){0};
    assert_int_equal(fl_store_metric_list(s, NULL, s_metric_cb, &acc), 0);
    assert_int_equal(acc.n, 4);
    assert_int_equal(acc.round[0], 1);
    assert_string_equal(acc.name[0], "eval_accuracy");
    assert_string_equal(acc.name[1], "train_loss");
    assert_int_equal(acc.round[2], 2);
    assert_string_equal(acc.name[3], "epsilon");
    assert_true(isnan(acc.value[3]));

    acc = (s_metric_acc_t){0};
    assert_int_equal(fl_store_metric_list(s, "nope", s_metric_cb, &acc), 0);
    assert_int_equal(acc.n, 0);
    s_assert_err(fl_store_metric_put(s, 1, "", 1.0), FL_EINVAL, "metric");
    s_assert_err(fl_store_metric_put(s, -1, "x", 1.0), FL_EINVAL, "metric");
    s_assert_err(fl_store_metric_put(s, 1, NULL, 1.0), FL_EINVAL, "metric");
    fl_store_destroy(&s);
}

/* ---- transactions ---- */

static void
test_transactions(void **state)
{
    (void)state;
    char path[256], key[41];
    s_key(30, key);
    fl_store_t *s = s_create(s_path(path, sizeof path, "tx.db"));
    uint8_t digest[32] = {9};
    const uint8_t model[100] = {7};
    fl_agent_row_t a;
    fl_round_row_t g;
    fl_checkpoint_info_t info;
    s_metric_acc_t acc = {0};

    s_assert_err(fl_store_commit(s), FL_ESTATE, "no transaction");
    assert_int_equal(fl_store_rollback(s), 0);

    /* The commit of a round, rolled back: nothing remains. */
    assert_int_equal(fl_store_begin(s), 0);
    assert_true(fl_store_in_transaction(s));
    s_assert_err(fl_store_begin(s), FL_ESTATE, "already open");
    s_assert_err(fl_store_set_sync_full(s, true), FL_ESTATE, NULL);
    assert_int_equal(fl_store_agent_add(s, "tx-agent", key, 1, NULL), 0);
    fl_round_row_t r = s_round(1, 0, "done", "ok");
    assert_int_equal(fl_store_round_put(s, &r), 0);
    assert_int_equal(fl_store_checkpoint_put(s, 1, digest, model, sizeof model, NULL, 0, 1), 0);
    assert_int_equal(fl_store_metric_put(s, 1, "train_loss", 0.3), 0);
    assert_int_equal(fl_store_meta_set(s, "k", "v"), 0);
    assert_int_equal(fl_store_rollback(s), 0);
    assert_false(fl_store_in_transaction(s));
    s_assert_err(fl_store_agent_get_by_name(s, "tx-agent", &a), FL_ENOTFOUND, NULL);
    s_assert_err(fl_store_round_latest(s, &g), FL_ENOTFOUND, NULL);
    s_assert_err(fl_store_checkpoint_latest_info(s, &info), FL_ENOTFOUND, NULL);
    assert_int_equal(fl_store_metric_list(s, NULL, s_metric_cb, &acc), 0);
    assert_int_equal(acc.n, 0);
    assert_int_equal(s_conn_int(s, "SELECT count(*) FROM checkpoint_blobs"), 0);

    /* The same, committed, with FULL sync for this commit. */
    assert_int_equal(fl_store_set_sync_full(s, true), 0);
    assert_int_equal(s_conn_int(s, "PRAGMA synchronous"), 2);
    assert_int_equal(fl_store_begin(s), 0);
    assert_int_equal(fl_store_round_put(s, &r), 0);
    assert_int_equal(fl_store_checkpoint_put(s, 1, digest, model, sizeof model, NULL, 0, 1), 0);
    assert_int_equal(fl_store_metric_put(s, 1, "train_loss", 0.3), 0);
    /* A failing call inside the transaction undoes only itself. */
    s_assert_err(fl_store_checkpoint_put(s, 1, digest, model, sizeof model, NULL, 0, 1), FL_EEXIST,
                 NULL);
    assert_true(fl_store_in_transaction(s));
    assert_int_equal(fl_store_commit(s), 0);
    assert_int_equal(fl_store_set_sync_full(s, false), 0);
    assert_int_equal(fl_store_round_latest(s, &g), 0);
    assert_string_equal(g.phase, "done");
    assert_int_equal(fl_store_checkpoint_latest_info(s, &info), 0);
    assert_int_equal(info.round, 1);
    assert_int_equal(s_conn_int(s, "SELECT count(*) FROM checkpoint_blobs"), 1);

    /* Destroy with an open transaction rolls it back. */
    assert_int_equal(fl_store_begin(s), 0);
    assert_int_equal(fl_store_metric_put(s, 2, "train_loss", 0.2), 0);
    fl_store_destroy(&s);
    assert_int_equal(s_raw_int(path, "SELECT count(*) FROM metrics"), 1);
}

/* ---- a writer and a read-only reader on the same WAL file ---- */

static void
test_two_connections(void **state)
{
    (void)state;
    char path[256], k1[41], k2[41];
    s_key(40, k1);
    s_key(41, k2);
    fl_store_t *w = s_create(s_path(path, sizeof path, "two.db"));
    fl_store_t *r = NULL;
    fl_agent_row_t a;
    assert_int_equal(fl_store_agent_add(w, "one", k1, 1, NULL), 0);
    assert_int_equal(fl_store_open(path, FL_STORE_READONLY, &r), 0);
    assert_int_equal(fl_store_agent_get_by_name(r, "one", &a), 0);

    /* Uncommitted writes are invisible; committed ones appear. */
    assert_int_equal(fl_store_begin(w), 0);
    int64_t id2 = 0;
    assert_int_equal(fl_store_agent_add(w, "two", k2, 2, &id2), 0);
    s_assert_err(fl_store_agent_get_by_name(r, "two", &a), FL_ENOTFOUND, NULL);
    assert_int_equal(fl_store_agent_key_active(r, k2, NULL), 0);
    assert_int_equal(fl_store_commit(w), 0);
    assert_int_equal(fl_store_agent_get_by_name(r, "two", &a), 0);
    assert_int_equal(fl_store_agent_key_active(r, k2, NULL), 1);

    /* A read transaction is a snapshot. */
    assert_int_equal(fl_store_begin_read(r), 0);
    assert_int_equal(fl_store_agent_key_active(r, k2, NULL), 1);
    assert_int_equal(fl_store_agent_set_status(w, "two", "revoked"), 0);
    assert_int_equal(fl_store_agent_key_active(r, k2, NULL), 1);
    assert_int_equal(fl_store_commit(r), 0);
    assert_int_equal(fl_store_agent_key_active(r, k2, NULL), 0);

    /* The reader sees a checkpoint committed while it is open. */
    uint8_t digest[32] = {3};
    size_t n = 2 * 1024 * 1024 + 5;
    uint8_t *model = s_random_bytes(n, 77), *m = NULL, *st = NULL;
    size_t ml = 0, sl = 0;
    assert_int_equal(fl_store_checkpoint_put(w, 4, digest, model, n, NULL, 0, 4), 0);
    assert_int_equal(fl_store_checkpoint_load(r, -1, NULL, &m, &ml, &st, &sl), 0);
    assert_int_equal(ml, n);
    assert_memory_equal(m, model, n);
    free(m);
    free(model);

    /* The writer closes; the reader still reads the committed data. */
    fl_store_destroy(&w);
    assert_int_equal(fl_store_agent_get_by_id(r, id2, &a), 0);
    assert_string_equal(a.status, "revoked");
    fl_store_destroy(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_reopen_persists),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_not_a_database),
        cmocka_unit_test(test_newer_version_refused),
        cmocka_unit_test(test_migrations),
        cmocka_unit_test(test_readonly),
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_agents),
        cmocka_unit_test(test_rounds),
        cmocka_unit_test(test_round_agents),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_two_connections),
    };
    return cmocka_run_group_tests(tests, s_setup, s_tmpdir_teardown);
}
