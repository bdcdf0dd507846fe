/*
 * fl_audit.c — the hash-chained audit log on the store's SQLite connection:
 * append (joining the caller's transaction), chain verification that names
 * the first bad row, the exported head and its check, listing. See
 * fl_audit.h for the format and for what the chain can and cannot detect.
 */
#include "fl_audit.h"

#include <ctype.h>
#include <inttypes.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const uint8_t s_personal[16] = "covey-audit-v1\0\0";

/* ---- hashing ---- */

static void
s_put_u64(crypto_generichash_blake2b_state *h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    crypto_generichash_blake2b_update(h, b, sizeof b);
}

static void
s_put_str(crypto_generichash_blake2b_state *h, const void *s, size_t n)
{
    uint8_t b[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    crypto_generichash_blake2b_update(h, b, sizeof b);
    if (n)
        crypto_generichash_blake2b_update(h, s, n);
}

/* The row hash over explicit lengths: what is read back from SQLite may hold
 * bytes a C string would cut (an attacker's NUL). Lengths fit in u32: the
 * store caps text far below 4 GiB. */
static void
s_row_hash(const uint8_t prev[FL_AUDIT_HASH_LEN], int64_t seq, int64_t ts_ms, const void *actor,
           size_t actor_len, const void *action, size_t action_len, const void *detail,
           size_t detail_len, uint8_t out[FL_AUDIT_HASH_LEN])
{
    crypto_generichash_blake2b_state h;
    crypto_generichash_blake2b_init_salt_personal(&h, NULL, 0, FL_AUDIT_HASH_LEN, NULL, s_personal);
    crypto_generichash_blake2b_update(&h, prev, FL_AUDIT_HASH_LEN);
    s_put_u64(&h, (uint64_t)seq);
    s_put_u64(&h, (uint64_t)ts_ms);
    s_put_str(&h, actor, actor_len);
    s_put_str(&h, action, action_len);
    s_put_str(&h, detail, detail_len);
    crypto_generichash_blake2b_final(&h, out, FL_AUDIT_HASH_LEN);
}

void
fl_audit_row_hash(const uint8_t prev_hash[FL_AUDIT_HASH_LEN], int64_t seq, int64_t ts_ms,
                  const char *actor, const char *action, const char *detail,
                  uint8_t out[FL_AUDIT_HASH_LEN])
{
    /* sodium_init only selects the fastest BLAKE2b; hashing works without. */
    int init = sodium_init();
    (void)init;
    s_row_hash(prev_hash, seq, ts_ms, actor, strlen(actor), action, strlen(action), detail,
               strlen(detail), out);
}

/* ---- append ---- */

static int
s_check_fields(const char *actor, const char *action, const char *detail)
{
    size_t n;
    if (!actor || (n = strnlen(actor, FL_AUDIT_ACTOR_MAX + 1)) == 0 || n > FL_AUDIT_ACTOR_MAX)
        return fl_fail(FL_EINVAL, "audit: the actor must be 1..%d bytes", FL_AUDIT_ACTOR_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)actor[i] < 0x20 || actor[i] == 0x7f)
            return fl_fail(FL_EINVAL, "audit: the actor holds a control character");
    if (!action || (n = strnlen(action, FL_AUDIT_ACTION_MAX + 1)) == 0 || n > FL_AUDIT_ACTION_MAX)
        return fl_fail(FL_EINVAL, "audit: the action must be 1..%d bytes", FL_AUDIT_ACTION_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = action[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return fl_fail(FL_EINVAL, "audit: bad action '%.64s' (only a-z 0-9 . _ -)", action);
    }
    if (!detail || (n = strnlen(detail, FL_AUDIT_DETAIL_MAX + 1)) > FL_AUDIT_DETAIL_MAX)
        return fl_fail(FL_EINVAL, "audit: the detail must be 0..%d bytes", FL_AUDIT_DETAIL_MAX);
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)detail[i] < 0x20 && detail[i] != '\t') || detail[i] == 0x7f)
            return fl_fail(FL_EINVAL, "audit: the detail holds a control character at byte %zu",
                           i);
    return 0;
}

/* The body of append: read the last row, insert the next. */
static int
s_append(fl_store_t *s, int64_t now_ms, const char *actor, const char *action, const char *detail,
         int64_t *seq_out)
{
    sqlite3 *db = fl_store_handle(s);
    sqlite3_stmt *st = NULL;
    uint8_t prev[FL_AUDIT_HASH_LEN] = {0}, hash[FL_AUDIT_HASH_LEN];
    int64_t seq = 1;
    int rc = 0;

    if (sqlite3_prepare_v2(db, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1, &st,
                           NULL) != SQLITE_OK)
        return fl_store_dberr(s, "audit: read the last row");
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        int64_t last = sqlite3_column_int64(st, 0);
        const void *h = sqlite3_column_blob(st, 1);
        if (!h || sqlite3_column_bytes(st, 1) != FL_AUDIT_HASH_LEN) {
            rc = fl_fail(FL_ECRYPTO,
                         "audit: row %lld has a malformed hash; run 'audit verify' before "
                         "appending",
                         (long long)last);
            goto out;
        }
        memcpy(prev, h, FL_AUDIT_HASH_LEN);
        seq = last + 1;
    } else if (step != SQLITE_DONE) {
        rc = fl_store_dberr(s, "audit: read the last row");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;

    s_row_hash(prev, seq, now_ms, actor, strlen(actor), action, strlen(action), detail,
               strlen(detail), hash);
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO audit (seq, ts_ms, actor, action, detail, prev_hash, hash)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                           -1, &st, NULL) != SQLITE_OK)
        return fl_store_dberr(s, "audit: append");
    if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, now_ms) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, actor, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 5, detail, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(st, 6, prev, FL_AUDIT_HASH_LEN, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(st, 7, hash, FL_AUDIT_HASH_LEN, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        rc = fl_store_dberr(s, "audit: append");
        goto out;
    }
    if (seq_out)
        *seq_out = seq;
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_audit_append(fl_store_t *s, int64_t now_ms, const char *actor, const char *action,
                const char *detail, int64_t *seq_out)
{
    int rc;
    if (!s)
        return fl_fail(FL_EINVAL, "audit: no store");
    if ((rc = s_check_fields(actor, action, detail)) < 0)
        return rc;
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    sqlite3 *db = fl_store_handle(s);

    if (!fl_store_in_transaction(s)) {
        /* Our own write transaction: BEGIN IMMEDIATE takes the write lock
         * before the last row is read, so two writers cannot both append
         * the same seq. */
        if ((rc = fl_store_begin(s)) < 0)
            return rc;
        rc = s_append(s, now_ms, actor, action, detail, seq_out);
        if (rc == 0)
            return fl_store_commit(s);
        (void)fl_store_rollback(s);
        return rc;
    }
    /* Inside the caller's transaction: a savepoint, so a failure here
     * undoes only this row and the caller's transaction stays usable. */
    if (sqlite3_exec(db, "SAVEPOINT fl_audit", NULL, NULL, NULL) != SQLITE_OK)
        return fl_store_dberr(s, "audit: savepoint");
    rc = s_append(s, now_ms, actor, action, detail, seq_out);
    if (rc == 0 && sqlite3_exec(db, "RELEASE fl_audit", NULL, NULL, NULL) != SQLITE_OK)
        rc = fl_store_dberr(s, "audit: release savepoint");
    if (rc < 0 && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK TO fl_audit; RELEASE fl_audit", NULL, NULL, NULL);
    return rc;
}

/* ---- verification ---- */

/* Record a verification failure in reason (if any) and fl_errmsg. */
static int FL_PRINTF(5, 6)
s_broken(int64_t *first_bad, int64_t seq, char *reason, size_t cap, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    /* The analyzer misreads va_start in this static function (fl_fail's
     * identical code passes). */
    vsnprintf(buf, sizeof buf, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    if (first_bad)
        *first_bad = seq;
    if (reason && cap)
        snprintf(reason, cap, "%s", buf);
    return fl_fail(FL_ECRYPTO, "%s", buf);
}

/* Walk the chain. On success *n_rows and the last row's seq and hash. */
static int
s_verify_chain(fl_store_t *s, int64_t *n_rows, int64_t *last_seq, uint8_t last_hash[32],
               int64_t *first_bad, char *reason, size_t cap)
{
    sqlite3 *db = fl_store_handle(s);
    sqlite3_stmt *st = NULL;
    uint8_t prev[FL_AUDIT_HASH_LEN] = {0}, h[FL_AUDIT_HASH_LEN];
    int64_t expect = 1, n = 0;
    int rc = 0, step;

    if (sqlite3_prepare_v2(db,
                           "SELECT seq, ts_ms, actor, action, detail, prev_hash, hash"
                           " FROM audit ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        return fl_store_dberr(s, "audit verify");
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        int64_t ts = sqlite3_column_int64(st, 1);
        /* Text first, then its byte count (the SQLite rule for conversions). */
        const void *actor = sqlite3_column_text(st, 2);
        size_t actor_len = (size_t)sqlite3_column_bytes(st, 2);
        const void *action = sqlite3_column_text(st, 3);
        size_t action_len = (size_t)sqlite3_column_bytes(st, 3);
        const void *detail = sqlite3_column_text(st, 4);
        size_t detail_len = (size_t)sqlite3_column_bytes(st, 4);
        const uint8_t *ph = sqlite3_column_blob(st, 5);
        int ph_len = sqlite3_column_bytes(st, 5);
        const uint8_t *hh = sqlite3_column_blob(st, 6);
        int hh_len = sqlite3_column_bytes(st, 6);

        if (seq != expect) {
            if (seq > expect && expect == 1)
                rc = s_broken(first_bad, 1, reason, cap,
                              "audit rows 1..%" PRId64 " are missing (the log starts at row "
                              "%" PRId64 "): deleted",
                              seq - 1, seq);
            else if (seq > expect)
                rc = s_broken(first_bad, expect, reason, cap,
                              "audit row %" PRId64 " is missing (the log jumps from row %" PRId64
                              " to row %" PRId64 "): deleted",
                              expect, expect - 1, seq);
            else
                rc = s_broken(first_bad, expect, reason, cap,
                              "audit row %" PRId64 " is out of sequence (seq %" PRId64 ")",
                              expect, seq);
            goto out;
        }
        if (!ph || ph_len != FL_AUDIT_HASH_LEN || !hh || hh_len != FL_AUDIT_HASH_LEN) {
            rc = s_broken(first_bad, seq, reason, cap,
                          "audit row %" PRId64 " is malformed (a hash is not 32 bytes): edited",
                          seq);
            goto out;
        }
        s_row_hash(ph, seq, ts, actor, actor ? actor_len : 0, action, action ? action_len : 0,
                   detail, detail ? detail_len : 0, h);
        if (sodium_memcmp(h, hh, FL_AUDIT_HASH_LEN) != 0) {
            rc = s_broken(first_bad, seq, reason, cap,
                          "audit row %" PRId64 " does not match its hash: edited, or moved "
                          "from another position",
                          seq);
            goto out;
        }
        if (sodium_memcmp(ph, prev, FL_AUDIT_HASH_LEN) != 0) {
            if (seq == 1)
                rc = s_broken(first_bad, 1, reason, cap,
                              "audit row 1 does not start the chain (its prev_hash is not "
                              "zero): rewritten with recomputed hashes");
            else
                rc = s_broken(first_bad, seq - 1, reason, cap,
                              "audit row %" PRId64 " does not chain to row %" PRId64
                              ": row %" PRId64 " (or row %" PRId64
                              ") was rewritten with recomputed hashes",
                              seq, seq - 1, seq - 1, seq);
            goto out;
        }
        memcpy(prev, hh, FL_AUDIT_HASH_LEN);
        expect = seq + 1;
        n++;
    }
    if (step != SQLITE_DONE) {
        rc = fl_store_dberr(s, "audit verify");
        goto out;
    }
    *n_rows = n;
    *last_seq = expect - 1;
    memcpy(last_hash, prev, FL_AUDIT_HASH_LEN);
out:
    sqlite3_finalize(st);
    return rc;
}

/* Verification reads one snapshot: a read transaction unless the caller has one. */
static int
s_snapshot_begin(fl_store_t *s, bool *own)
{
    *own = false;
    if (fl_store_in_transaction(s))
        return 0;
    int rc = fl_store_begin_read(s);
    if (rc == 0)
        *own = true;
    return rc;
}

static void
s_snapshot_end(fl_store_t *s, bool own)
{
    /* Ending a read transaction releases the snapshot; nothing to lose. */
    if (own)
        (void)fl_store_rollback(s);
}

int
fl_audit_verify(fl_store_t *s, int64_t *first_bad_seq, char *reason, size_t cap)
{
    int64_t n = 0, last = 0;
    uint8_t head[FL_AUDIT_HASH_LEN];
    bool own;
    int rc;

    if (first_bad_seq)
        *first_bad_seq = 0;
    if (reason && cap)
        reason[0] = '\0';
    if (!s)
        return fl_fail(FL_EINVAL, "audit verify: no store");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    if ((rc = s_snapshot_begin(s, &own)) < 0)
        return rc;
    rc = s_verify_chain(s, &n, &last, head, first_bad_seq, reason, cap);
    s_snapshot_end(s, own);
    if (rc == 0 && reason && cap)
        snprintf(reason, cap, "%" PRId64 " rows, chain intact", n);
    return rc;
}

int
fl_audit_head(fl_store_t *s, int64_t *seq, uint8_t hash[FL_AUDIT_HASH_LEN])
{
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (!s || !seq || !hash)
        return fl_fail(FL_EINVAL, "audit head: store and outputs are required");
    if (sqlite3_prepare_v2(fl_store_handle(s),
                           "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1, &st,
                           NULL) != SQLITE_OK)
        return fl_store_dberr(s, "audit head");
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const void *h = sqlite3_column_blob(st, 1);
        int64_t last = sqlite3_column_int64(st, 0);
        if (!h || sqlite3_column_bytes(st, 1) != FL_AUDIT_HASH_LEN) {
            rc = fl_fail(FL_ECRYPTO, "audit head: row %lld has a malformed hash",
                         (long long)last);
            goto out;
        }
        *seq = last;
        memcpy(hash, h, FL_AUDIT_HASH_LEN);
    } else if (step == SQLITE_DONE) {
        *seq = 0;
        memset(hash, 0, FL_AUDIT_HASH_LEN);
    } else {
        rc = fl_store_dberr(s, "audit head");
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int
fl_audit_verify_head(fl_store_t *s, int64_t seq, const uint8_t hash[FL_AUDIT_HASH_LEN],
                     int64_t *first_bad_seq, char *reason, size_t cap)
{
    int64_t n = 0, last = 0;
    uint8_t head[FL_AUDIT_HASH_LEN];
    sqlite3_stmt *st = NULL;
    bool own = false;
    int rc;

    if (first_bad_seq)
        *first_bad_seq = 0;
    if (reason && cap)
        reason[0] = '\0';
    if (!s || !hash || seq < 0)
        return fl_fail(FL_EINVAL, "audit verify: bad exported head (seq %lld)", (long long)seq);
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    if ((rc = s_snapshot_begin(s, &own)) < 0)
        return rc;
    if ((rc = s_verify_chain(s, &n, &last, head, first_bad_seq, reason, cap)) < 0)
        goto out;
    if (seq == 0)
        goto ok;
    if (last < seq) {
        rc = s_broken(first_bad_seq, last + 1, reason, cap,
                      "the audit log ends at row %" PRId64 ", before the exported head (row "
                      "%" PRId64 "): rows %" PRId64 "..%" PRId64 " were deleted",
                      last, seq, last + 1, seq);
        goto out;
    }
    if (sqlite3_prepare_v2(fl_store_handle(s), "SELECT hash FROM audit WHERE seq = ?1", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_bind_int64(st, 1, seq) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        /* The chain walk saw row seq in this same snapshot. */
        rc = fl_store_dberr(s, "audit verify head");
        goto out;
    }
    if (sqlite3_column_bytes(st, 0) != FL_AUDIT_HASH_LEN ||
        sodium_memcmp(sqlite3_column_blob(st, 0), hash, FL_AUDIT_HASH_LEN) != 0) {
        rc = s_broken(first_bad_seq, seq, reason, cap,
                      "audit row %" PRId64 " does not match the exported head: the log was "
                      "rewritten at or before row %" PRId64 " (hashes recomputed)",
                      seq, seq);
        goto out;
    }
ok:
    if (reason && cap)
        snprintf(reason, cap,
                 "%" PRId64 " rows, chain intact, exported head (row %" PRId64 ") present", n,
                 seq);
    rc = 0;
out:
    sqlite3_finalize(st);
    s_snapshot_end(s, own);
    return rc;
}

void
fl_audit_head_format(int64_t seq, const uint8_t hash[FL_AUDIT_HASH_LEN],
                     char out[FL_AUDIT_HEAD_STR_MAX])
{
    char hex[2 * FL_AUDIT_HASH_LEN + 1];
    sodium_bin2hex(hex, sizeof hex, hash, FL_AUDIT_HASH_LEN);
    snprintf(out, FL_AUDIT_HEAD_STR_MAX, "%" PRId64 ":%s", seq, hex);
}

int
fl_audit_head_parse(const char *text, int64_t *seq, uint8_t hash[FL_AUDIT_HASH_LEN])
{
    uint8_t h[FL_AUDIT_HASH_LEN];
    size_t bin_len = 0;
    const char *end = NULL;
    int64_t v = 0;
    const char *p = text;

    if (!text || !seq || !hash)
        return fl_fail(FL_EINVAL, "audit head: nothing to parse");
    if (!isdigit((unsigned char)*p))
        return fl_fail(FL_EINVAL, "bad audit head: expected '<seq>:<64 hex digits>'");
    while (isdigit((unsigned char)*p)) {
        if (v > (INT64_MAX - 9) / 10)
            return fl_fail(FL_EINVAL, "bad audit head: seq out of range");
        v = v * 10 + (*p++ - '0');
    }
    if (*p++ != ':')
        return fl_fail(FL_EINVAL, "bad audit head: expected '<seq>:<64 hex digits>'");
    size_t n = strlen(p);
    if (n != 2 * FL_AUDIT_HASH_LEN ||
        sodium_hex2bin(h, sizeof h, p, n, NULL, &bin_len, &end) != 0 ||
        bin_len != FL_AUDIT_HASH_LEN || end != p + n)
        return fl_fail(FL_EINVAL, "bad audit head: the hash is not 64 hex digits");
    *seq = v;
    memcpy(hash, h, FL_AUDIT_HASH_LEN);
    return 0;
}

/* ---- listing ---- */

int
fl_audit_list(fl_store_t *s, int64_t limit, fl_audit_cb cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    fl_audit_row_t row;
    int rc = 0, step;

    if (!s || !cb)
        return fl_fail(FL_EINVAL, "audit list: store and callback are required");
    const char *sql =
        limit > 0 ? "SELECT * FROM (SELECT seq, ts_ms, actor, action, detail, prev_hash, hash"
                    " FROM audit ORDER BY seq DESC LIMIT ?1) ORDER BY seq"
                  : "SELECT seq, ts_ms, actor, action, detail, prev_hash, hash FROM audit"
                    " ORDER BY seq";
    if (sqlite3_prepare_v2(fl_store_handle(s), sql, -1, &st, NULL) != SQLITE_OK)
        return fl_store_dberr(s, "audit list");
    if (limit > 0 && sqlite3_bind_int64(st, 1, limit) != SQLITE_OK) {
        rc = fl_store_dberr(s, "audit list");
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&row, 0, sizeof row);
        row.seq = sqlite3_column_int64(st, 0);
        row.ts_ms = sqlite3_column_int64(st, 1);
        const char *t;
        row.actor = (t = (const char *)sqlite3_column_text(st, 2)) ? t : "";
        row.action = (t = (const char *)sqlite3_column_text(st, 3)) ? t : "";
        row.detail = (t = (const char *)sqlite3_column_text(st, 4)) ? t : "";
        /* A malformed hash (an edited file) is listed as zeros; verify
         * reports it. */
        if (sqlite3_column_bytes(st, 5) == FL_AUDIT_HASH_LEN)
            memcpy(row.prev_hash, sqlite3_column_blob(st, 5), FL_AUDIT_HASH_LEN);
        if (sqlite3_column_bytes(st, 6) == FL_AUDIT_HASH_LEN)
            memcpy(row.hash, sqlite3_column_blob(st, 6), FL_AUDIT_HASH_LEN);
        int c = cb(&row, arg);
        if (c) {
            rc = c < 0 ? c : 0;
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = fl_store_dberr(s, "audit list");
out:
    sqlite3_finalize(st);
    return rc;
}
