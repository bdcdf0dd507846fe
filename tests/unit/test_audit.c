/*
 * test_audit.c — unit tests of fl_audit: golden row hashes (computed
 * independently in Python), a chain of rows that verifies, and an attacker
 * with the database file (raw SQL through fl_store_handle, triggers dropped)
 * who edits a row, rewrites a row with a recomputed hash, deletes a middle or
 * the first row, swaps two rows' contents or positions: verify names the row.
 * A deleted last row or a rewritten tail passes the chain and is caught by
 * the exported head. Appends inside a transaction commit and roll back with
 * it; field limits; listing; heads as text; a read-only store verifies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_audit.h"
#include "fl_store.h"
#include "fl_util.h"
#include "testutil.h"

#define N_ROWS 50
#define T0 1700000000000LL

static int
setup_dir(void **state)
{
    (void)state;
    return s_tmpdir_make("audit") == 0 && sodium_init() >= 0 ? 0 : -1;
}

static fl_store_t *
s_store(const char *name, char *path_out, size_t cap)
{
    const char *path = s_tmp_path(name);
    if (path_out)
        snprintf(path_out, cap, "%s", path);
    fl_store_t *s = NULL;
    assert_int_equal(fl_store_open(path, FL_STORE_CREATE, &s), 0);
    return s;
}

/* A store with rows 1..N_ROWS: actor "admin:alice", action "config.set",
 * detail "change <seq>", ts T0 + seq. */
static fl_store_t *
s_filled(const char *name)
{
    fl_store_t *s = s_store(name, NULL, 0);
    char detail[64];
    for (int64_t i = 1; i <= N_ROWS; i++) {
        int64_t seq = 0;
        snprintf(detail, sizeof detail, "change %lld", (long long)i);
        assert_int_equal(fl_audit_append(s, T0 + i, "admin:alice", "config.set", detail, &seq), 0);
        assert_int_equal(seq, i);
    }
    return s;
}

/* The attacker: raw SQL on the file, after dropping the triggers. */
static void
s_sql(fl_store_t *s, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(fl_store_handle(s), sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
}

static void
s_untrigger(fl_store_t *s)
{
    s_sql(s, "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete");
}

/* Verify; expect a break at `seq` whose reason holds `want`. */
static void
s_expect_broken(fl_store_t *s, int64_t seq, const char *want)
{
    int64_t bad = -1;
    char reason[512];
    assert_int_equal(fl_audit_verify(s, &bad, reason, sizeof reason), FL_ECRYPTO);
    if (bad != seq || !strstr(reason, want))
        fail_msg("expected row %lld / '%s', got row %lld: %s", (long long)seq, want,
                 (long long)bad, reason);
    assert_string_equal(fl_errmsg(), reason);
}

static void
s_expect_intact(fl_store_t *s, int64_t rows)
{
    int64_t bad = -1;
    char reason[128], want[64];
    if (fl_audit_verify(s, &bad, reason, sizeof reason) != 0)
        fail_msg("verify: %s", reason);
    assert_int_equal(bad, 0);
    snprintf(want, sizeof want, "%lld rows, chain intact", (long long)rows);
    assert_string_equal(reason, want);
}

static void
s_unhex(const char *hex, uint8_t out[32])
{
    assert_int_equal(sodium_hex2bin(out, 32, hex, 64, NULL, NULL, NULL), 0);
}

/* Fetch row seq's hash from the table. */
static void
s_row_hash_of(fl_store_t *s, int64_t seq, uint8_t out[32])
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(fl_store_handle(s), "SELECT hash FROM audit WHERE seq = ?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, seq);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_bytes(st, 0), 32);
    memcpy(out, sqlite3_column_blob(st, 0), 32);
    sqlite3_finalize(st);
}

static void
test_golden(void **state)
{
    (void)state;
    /* BLAKE2b-256(person "covey-audit-v1\0\0") of the documented encoding,
     * computed with Python's hashlib. */
    uint8_t want1[32], want2[32], h[32], zero[32] = {0};
    s_unhex("c934a3232a10063bdcdb7f93189cd6fbe7a766c185a0c3e37b5fa61f9161850a", want1);
    s_unhex("07d78c86ae23ed5924c32de2e3e3e0e7f10db7db7fc6cde7eef65124713c2740", want2);
    fl_audit_row_hash(zero, 1, T0, "local", "token.create", "name=edge-1", h);
    assert_memory_equal(h, want1, 32);
    fl_audit_row_hash(want1, 2, T0 + 500, "admin:alice", "agent.revoke", "", h);
    assert_memory_equal(h, want2, 32);

    /* The same two rows appended to a store carry those hashes. */
    fl_store_t *s = s_store("golden.db", NULL, 0);
    assert_int_equal(fl_audit_append(s, T0, "local", "token.create", "name=edge-1", NULL), 0);
    assert_int_equal(fl_audit_append(s, T0 + 500, "admin:alice", "agent.revoke", "", NULL), 0);
    s_row_hash_of(s, 1, h);
    assert_memory_equal(h, want1, 32);
    s_row_hash_of(s, 2, h);
    assert_memory_equal(h, want2, 32);
    int64_t seq = 0;
    assert_int_equal(fl_audit_head(s, &seq, h), 0);
    assert_int_equal(seq, 2);
    assert_memory_equal(h, want2, 32);
    s_expect_intact(s, 2);
    fl_store_destroy(&s);
}

static void
test_empty_and_intact(void **state)
{
    (void)state;
    fl_store_t *s = s_store("empty.db", NULL, 0);
    int64_t seq = -1, bad = -1;
    uint8_t h[32], zero[32] = {0};
    char reason[128];
    s_expect_intact(s, 0);
    assert_int_equal(fl_audit_head(s, &seq, h), 0);
    assert_int_equal(seq, 0);
    assert_memory_equal(h, zero, 32);
    assert_int_equal(fl_audit_verify_head(s, 0, zero, &bad, reason, sizeof reason), 0);
    fl_store_destroy(&s);

    s = s_filled("intact.db");
    s_expect_intact(s, N_ROWS);
    /* The schema refuses edits by this program (or a careless operator). */
    assert_int_not_equal(sqlite3_exec(fl_store_handle(s),
                                      "UPDATE audit SET detail = 'x' WHERE seq = 3", NULL, NULL,
                                      NULL),
                         SQLITE_OK);
    assert_non_null(strstr(sqlite3_errmsg(fl_store_handle(s)), "append-only"));
    assert_int_not_equal(sqlite3_exec(fl_store_handle(s), "DELETE FROM audit WHERE seq = 50", NULL,
                                      NULL, NULL),
                         SQLITE_OK);
    s_expect_intact(s, N_ROWS);
    fl_store_destroy(&s);
}

static void
test_edited_row(void **state)
{
    (void)state;
    fl_store_t *s = s_filled("edit.db");
    s_untrigger(s);
    s_sql(s, "UPDATE audit SET detail = 'change 17 (harmless)' WHERE seq = 17");
    s_expect_broken(s, 17, "row 17 does not match its hash: edited");
    fl_store_destroy(&s);

    /* Every column counts: time, actor, action. */
    const char *edits[] = {
        "UPDATE audit SET ts_ms = ts_ms + 1 WHERE seq = 30",
        "UPDATE audit SET actor = 'admin:bob' WHERE seq = 30",
        "UPDATE audit SET action = 'config.get' WHERE seq = 30",
        "UPDATE audit SET prev_hash = zeroblob(32) WHERE seq = 30",
        "UPDATE audit SET hash = zeroblob(32) WHERE seq = 30",
        "UPDATE audit SET detail = CAST('change 30' || char(0) || 'x' AS BLOB) WHERE seq = 30",
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "edit%zu.db", i);
        s = s_filled(name);
        s_untrigger(s);
        s_sql(s, edits[i]);
        s_expect_broken(s, 30, "row 30");
        fl_store_destroy(&s);
    }

    /* A hash that is not 32 bytes (the CHECK is gone with a rebuilt table). */
    s = s_filled("malformed.db");
    s_sql(s, "PRAGMA ignore_check_constraints = ON");
    s_untrigger(s);
    s_sql(s, "UPDATE audit SET hash = x'0102' WHERE seq = 8");
    s_expect_broken(s, 8, "row 8 is malformed");
    fl_store_destroy(&s);
}

/* The careful attacker edits row 17 and recomputes its hash: row 18 no
 * longer chains to it, and verify names row 17. */
static void
test_rewritten_row(void **state)
{
    (void)state;
    fl_store_t *s = s_filled("rewrite.db");
    uint8_t prev[32], h[32];
    s_untrigger(s);
    s_row_hash_of(s, 16, prev);
    fl_audit_row_hash(prev, 17, T0 + 17, "admin:alice", "config.set", "nothing happened", h);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(fl_store_handle(s),
                                        "UPDATE audit SET detail = 'nothing happened', hash = ?1"
                                        " WHERE seq = 17",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    s_expect_broken(s, 17, "row 18 does not chain to row 17: row 17 (or row 18) was rewritten");
    fl_store_destroy(&s);

    /* Row 1 rewritten with a non-zero prev_hash and a matching hash. */
    s = s_filled("rewrite1.db");
    s_untrigger(s);
    uint8_t fake_prev[32];
    memset(fake_prev, 0xab, 32);
    fl_audit_row_hash(fake_prev, 1, T0 + 1, "admin:alice", "config.set", "change 1", h);
    assert_int_equal(sqlite3_prepare_v2(fl_store_handle(s),
                                        "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = 1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(st, 1, fake_prev, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, h, 32, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    s_expect_broken(s, 1, "row 1 does not start the chain");
    fl_store_destroy(&s);
}

static void
test_deleted_rows(void **state)
{
    (void)state;
    fl_store_t *s = s_filled("delete.db");
    s_untrigger(s);
    s_sql(s, "DELETE FROM audit WHERE seq = 23");
    s_expect_broken(s, 23, "row 23 is missing (the log jumps from row 22 to row 24): deleted");
    fl_store_destroy(&s);

    s = s_filled("delete-range.db");
    s_untrigger(s);
    s_sql(s, "DELETE FROM audit WHERE seq BETWEEN 10 AND 12");
    s_expect_broken(s, 10, "row 10 is missing");
    fl_store_destroy(&s);

    s = s_filled("delete-first.db");
    s_untrigger(s);
    s_sql(s, "DELETE FROM audit WHERE seq <= 2");
    s_expect_broken(s, 1, "rows 1..2 are missing");
    fl_store_destroy(&s);

    /* Deleted, then the later rows renumbered to close the gap. */
    s = s_filled("renumber.db");
    s_untrigger(s);
    s_sql(s, "DELETE FROM audit WHERE seq = 23; UPDATE audit SET seq = seq - 1 WHERE seq > 23");
    s_expect_broken(s, 23, "row 23 does not match its hash");
    fl_store_destroy(&s);
}

static void
test_reordered_rows(void **state)
{
    (void)state;
    /* Contents of rows 10 and 11 swapped, each keeping its seq and hashes. */
    fl_store_t *s = s_filled("swap.db");
    s_untrigger(s);
    s_sql(s, "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (10, 11);"
             "UPDATE audit SET ts_ms = (SELECT ts_ms FROM t WHERE seq = 21 - audit.seq),"
             " actor = (SELECT actor FROM t WHERE seq = 21 - audit.seq),"
             " action = (SELECT action FROM t WHERE seq = 21 - audit.seq),"
             " detail = (SELECT detail FROM t WHERE seq = 21 - audit.seq)"
             " WHERE seq IN (10, 11)");
    s_expect_broken(s, 10, "row 10 does not match its hash");
    fl_store_destroy(&s);

    /* Whole rows 10 and 11 (hashes included) swapped: positions changed. */
    s = s_filled("swap-whole.db");
    s_untrigger(s);
    s_sql(s, "UPDATE audit SET seq = 1000 WHERE seq = 10; UPDATE audit SET seq = 10 WHERE seq = 11;"
             "UPDATE audit SET seq = 11 WHERE seq = 1000");
    s_expect_broken(s, 10, "row 10 does not match its hash: edited, or moved");
    fl_store_destroy(&s);
}

/* What the chain alone cannot see, the exported head does. */
static void
test_head(void **state)
{
    (void)state;
    fl_store_t *s = s_filled("head.db");
    int64_t seq = 0, bad = -1;
    uint8_t head[32], h[32];
    char reason[256], text[FL_AUDIT_HEAD_STR_MAX];
    assert_int_equal(fl_audit_head(s, &seq, head), 0);
    assert_int_equal(seq, N_ROWS);
    assert_int_equal(fl_audit_verify_head(s, seq, head, &bad, reason, sizeof reason), 0);
    assert_int_equal(bad, 0);
    assert_non_null(strstr(reason, "exported head (row 50) present"));

    /* As text and back. */
    fl_audit_head_format(seq, head, text);
    assert_int_equal(strlen(text), 3 + 64);
    assert_int_equal(strncmp(text, "50:", 3), 0);
    int64_t pseq = 0;
    assert_int_equal(fl_audit_head_parse(text, &pseq, h), 0);
    assert_int_equal(pseq, 50);
    assert_memory_equal(h, head, 32);
    const char *bad_heads[] = {"", "50", "50:", ":abcd", "x:00", "-1:00",
                               "50:0000000000000000000000000000000000000000000000000000000000000",
                               "99999999999999999999:00"};
    for (size_t i = 0; i < sizeof bad_heads / sizeof bad_heads[0]; i++)
        assert_int_equal(fl_audit_head_parse(bad_heads[i], &pseq, h), FL_EINVAL);

    /* Rows appended after the export are fine. */
    assert_int_equal(fl_audit_append(s, T0 + 100, "coordinator", "round.start", "round=4", NULL), 0);
    assert_int_equal(fl_audit_verify_head(s, seq, head, &bad, reason, sizeof reason), 0);

    /* The last row deleted: the chain is still consistent... */
    s_untrigger(s);
    s_sql(s, "DELETE FROM audit WHERE seq >= 50");
    s_expect_intact(s, N_ROWS - 1);
    /* ...but the exported head is gone. */
    assert_int_equal(fl_audit_verify_head(s, seq, head, &bad, reason, sizeof reason), FL_ECRYPTO);
    assert_int_equal(bad, 50);
    assert_non_null(strstr(reason, "ends at row 49, before the exported head (row 50)"));
    assert_non_null(strstr(reason, "deleted"));
    fl_store_destroy(&s);

    /* The tail rewritten from row 40 on, every hash recomputed. */
    s = s_filled("tail.db");
    assert_int_equal(fl_audit_head(s, &seq, head), 0);
    s_untrigger(s);
    uint8_t prev[32];
    s_row_hash_of(s, 39, prev);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(fl_store_handle(s),
                                        "UPDATE audit SET detail = ?2, prev_hash = ?3, hash = ?4"
                                        " WHERE seq = ?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int64_t i = 40; i <= N_ROWS; i++) {
        char detail[64];
        snprintf(detail, sizeof detail, "%s %lld", i == 40 ? "nothing at" : "change",
                 (long long)i);
        fl_audit_row_hash(prev, i, T0 + i, "admin:alice", "config.set", detail, h);
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, i);
        sqlite3_bind_text(st, 2, detail, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, prev, 32, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 4, h, 32, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        memcpy(prev, h, 32);
    }
    sqlite3_finalize(st);
    s_expect_intact(s, N_ROWS);
    assert_int_equal(fl_audit_verify_head(s, seq, head, &bad, reason, sizeof reason), FL_ECRYPTO);
    assert_int_equal(bad, 50);
    assert_non_null(strstr(reason, "row 50 does not match the exported head"));
    assert_non_null(strstr(reason, "rewritten"));
    /* A broken chain is reported first, by verify_head too. */
    s_sql(s, "DELETE FROM audit WHERE seq = 5");
    assert_int_equal(fl_audit_verify_head(s, seq, head, &bad, reason, sizeof reason), FL_ECRYPTO);
    assert_int_equal(bad, 5);
    assert_int_equal(fl_audit_verify_head(s, -1, head, &bad, reason, sizeof reason), FL_EINVAL);
    fl_store_destroy(&s);
}

static int
s_count_agents(const fl_agent_row_t *row, void *arg)
{
    (void)row;
    (*(int *)arg)++;
    return 0;
}

static void
test_transactions(void **state)
{
    (void)state;
    fl_store_t *s = s_filled("tx.db");
    int64_t seq = 0;
    int n = 0;
    const char *key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

    /* Rolled back with the caller's transaction: both gone. */
    assert_int_equal(fl_store_begin(s), 0);
    assert_int_equal(fl_store_agent_add(s, "edge-1", key, T0, NULL), 0);
    assert_int_equal(fl_audit_append(s, T0 + 60, "local", "agent.enroll", "name=edge-1", &seq), 0);
    assert_int_equal(seq, N_ROWS + 1);
    assert_int_equal(fl_audit_append(s, T0 + 61, "local", "agent.note", "second", &seq), 0);
    assert_int_equal(seq, N_ROWS + 2);
    /* A refused append inside leaves the transaction usable. */
    assert_int_equal(fl_audit_append(s, T0, "local", "Bad Action", "", NULL), FL_EINVAL);
    assert_true(fl_store_in_transaction(s));
    assert_int_equal(fl_store_rollback(s), 0);
    assert_int_equal(fl_store_agent_list(s, s_count_agents, &n), 0);
    assert_int_equal(n, 0);
    s_expect_intact(s, N_ROWS);

    /* Committed with it: both there, and seq continues without a gap. */
    assert_int_equal(fl_store_begin(s), 0);
    assert_int_equal(fl_store_agent_add(s, "edge-1", key, T0, NULL), 0);
    assert_int_equal(fl_audit_append(s, T0 + 62, "local", "agent.enroll", "name=edge-1", &seq), 0);
    assert_int_equal(seq, N_ROWS + 1);
    assert_int_equal(fl_store_commit(s), 0);
    assert_int_equal(fl_store_agent_list(s, s_count_agents, &n), 0);
    assert_int_equal(n, 1);
    s_expect_intact(s, N_ROWS + 1);
    fl_store_destroy(&s);
}

static void
test_field_limits(void **state)
{
    (void)state;
    fl_store_t *s = s_store("limits.db", NULL, 0);
    char *big = fl_xmalloc(FL_AUDIT_DETAIL_MAX + 2);
    memset(big, 'd', FL_AUDIT_DETAIL_MAX + 1);
    big[FL_AUDIT_DETAIL_MAX + 1] = '\0';
    assert_int_equal(fl_audit_append(s, T0, "local", "x.y", big, NULL), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "detail"));
    big[FL_AUDIT_DETAIL_MAX] = '\0';
    assert_int_equal(fl_audit_append(s, T0, "local", "x.y", big, NULL), 0);
    free(big);

    assert_int_equal(fl_audit_append(s, T0, "", "x.y", "", NULL), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "actor"));
    assert_int_equal(fl_audit_append(s, T0, NULL, "x.y", "", NULL), FL_EINVAL);
    assert_int_equal(fl_audit_append(s, T0, "a\x1b[31m", "x.y", "", NULL), FL_EINVAL);
    assert_int_equal(fl_audit_append(s, T0, "local", "", "", NULL), FL_EINVAL);
    assert_int_equal(fl_audit_append(s, T0, "local", "Token.Create", "", NULL), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "action"));
    assert_int_equal(fl_audit_append(s, T0, "local", "a b", "", NULL), FL_EINVAL);
    assert_int_equal(fl_audit_append(s, T0, "local", "x.y", "line\nbreak", NULL), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "control character at byte 4"));
    assert_int_equal(fl_audit_append(s, T0, "local", "x.y", NULL, NULL), FL_EINVAL);
    /* Tabs and UTF-8 are fine in the detail; an empty detail too. */
    assert_int_equal(fl_audit_append(s, T0, "admin:zoë", "x.y", "a\tb — ü", NULL), 0);
    assert_int_equal(fl_audit_append(s, T0, "local", "x.y", "", NULL), 0);
    s_expect_intact(s, 3);
    fl_store_destroy(&s);
}

typedef struct {
    int n;
    int64_t seqs[64];
    char last_detail[64];
} s_list_t;

static int
s_collect(const fl_audit_row_t *row, void *arg)
{
    s_list_t *l = arg;
    l->seqs[l->n++] = row->seq;
    snprintf(l->last_detail, sizeof l->last_detail, "%s", row->detail);
    return l->n == 64 ? 1 : 0;
}

static int
s_fail_cb(const fl_audit_row_t *row, void *arg)
{
    (void)row;
    (void)arg;
    return FL_ESTATE;
}

static void
test_list_and_readonly(void **state)
{
    (void)state;
    char path[512];
    fl_store_t *s = s_store("list.db", path, sizeof path);
    for (int i = 1; i <= 12; i++)
        assert_int_equal(fl_audit_append(s, T0 + i, "local", "round.end", i % 2 ? "odd" : "even",
                                         NULL),
                         0);
    s_list_t l = {0};
    assert_int_equal(fl_audit_list(s, 5, s_collect, &l), 0);
    assert_int_equal(l.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(l.seqs[i], 8 + i);
    assert_string_equal(l.last_detail, "even");
    memset(&l, 0, sizeof l);
    assert_int_equal(fl_audit_list(s, 0, s_collect, &l), 0);
    assert_int_equal(l.n, 12);
    assert_int_equal(l.seqs[0], 1);
    assert_int_equal(fl_audit_list(s, 0, s_fail_cb, NULL), FL_ESTATE);
    fl_store_destroy(&s);

    /* `audit verify` can run on a read-only store. */
    assert_int_equal(fl_store_open(path, FL_STORE_READONLY, &s), 0);
    s_expect_intact(s, 12);
    int64_t seq;
    uint8_t h[32];
    assert_int_equal(fl_audit_head(s, &seq, h), 0);
    assert_int_equal(seq, 12);
    assert_int_equal(fl_audit_append(s, T0, "local", "x.y", "", NULL), FL_EDB);
    fl_store_destroy(&s);
}

/* A database made before migration 2 gains the tables, keeping its data. */
static void
test_migration_from_v1(void **state)
{
    (void)state;
    char path[512];
    fl_store_t *s = s_store("v1.db", path, sizeof path);
    const char *key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    fl_agent_row_t a;
    assert_int_equal(fl_store_schema_version(s), 2);
    assert_int_equal(fl_store_agent_add(s, "edge-1", key, T0, NULL), 0);
    /* Take the file back to version 1: migration 2's objects removed. */
    s_sql(s, "DROP TABLE audit; DROP TABLE admins; DROP TABLE tokens; PRAGMA user_version = 1");
    fl_store_destroy(&s);

    assert_int_equal(fl_store_open(path, FL_STORE_READONLY, &s), FL_ESTATE);
    assert_int_equal(fl_store_open(path, FL_STORE_RW, &s), 0);
    assert_int_equal(fl_store_schema_version(s), 2);
    assert_int_equal(fl_store_agent_get_by_name(s, "edge-1", &a), 0);
    assert_int_equal(fl_audit_append(s, T0, "coordinator", "schema.migrate", "1 -> 2", NULL), 0);
    s_expect_intact(s, 1);
    /* The triggers came back with the table. */
    assert_int_not_equal(sqlite3_exec(fl_store_handle(s), "DELETE FROM audit", NULL, NULL, NULL),
                         SQLITE_OK);
    fl_store_destroy(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_empty_and_intact),
        cmocka_unit_test(test_edited_row),
        cmocka_unit_test(test_rewritten_row),
        cmocka_unit_test(test_deleted_rows),
        cmocka_unit_test(test_reordered_rows),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_field_limits),
        cmocka_unit_test(test_list_and_readonly),
        cmocka_unit_test(test_migration_from_v1),
    };
    return cmocka_run_group_tests(tests, setup_dir, s_tmpdir_teardown);
}
