/*
 * fl_audit.h — the coordinator's append-only, hash-chained audit log, kept in
 * the state database (table `audit`, schema migration 2 of fl_store.c).
 *
 * Every row holds seq (1, 2, 3, ... without gaps), a wall-clock time, who
 * acted (actor), what was done (action) and a detail, plus
 *
 *   hash = BLAKE2b-256, personal "covey-audit-v1\0\0", of
 *          prev_hash[32] || u64 BE seq || u64 BE ts_ms ||
 *          u32 BE len || actor || u32 BE len || action || u32 BE len || detail
 *
 * where prev_hash is the previous row's hash (32 zero bytes for row 1). The
 * length prefixes make the encoding unambiguous. fl_audit_verify recomputes
 * the chain and names the first row that was edited, deleted or moved.
 *
 * What the chain cannot see, and the exported head is for: anyone who can
 * write the database file can delete the LAST rows, or rewrite a row and
 * recompute every hash after it, and the chain is again consistent. So an
 * operator exports the head (fl_audit_head, e.g. `audit head` into a ticket
 * or another machine) and later checks the log against it with
 * fl_audit_verify_head, which detects a truncated or rewritten tail. Triggers
 * in the schema refuse UPDATE and DELETE on the table, which stops mistakes,
 * not an attacker (who can drop them; the chain then shows the edit).
 *
 * Suggested vocabulary (the callers decide): actor "local" (admin socket),
 * "admin:NAME", "agent:NAME", "coordinator"; action "token.create",
 * "token.use", "token.revoke", "agent.enroll", "agent.revoke",
 * "agent.rotate", "admin.add", "admin.revoke", "config.set", "round.start",
 * "round.end", ...
 */
#ifndef FL_AUDIT_H
#define FL_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "fl_store.h"
#include "fl_util.h"

#define FL_AUDIT_HASH_LEN 32
#define FL_AUDIT_ACTOR_MAX 255    /* bytes, printable (no control characters) */
#define FL_AUDIT_ACTION_MAX 64    /* bytes of [a-z0-9._-] */
#define FL_AUDIT_DETAIL_MAX 65536 /* bytes, no control characters but tab */
/* "<seq>:<64 hex>" and a NUL. */
#define FL_AUDIT_HEAD_STR_MAX 86

/* One row, borrowed for the duration of a list callback. */
typedef struct fl_audit_row {
    int64_t seq;
    int64_t ts_ms;
    const char *actor, *action, *detail;
    uint8_t prev_hash[FL_AUDIT_HASH_LEN];
    uint8_t hash[FL_AUDIT_HASH_LEN];
} fl_audit_row_t;

/*
 * Append a row: seq = last seq + 1, chained to the last row's hash. Works
 * inside the caller's write transaction (fl_store_begin; joined through a
 * savepoint, so e.g. a round's commit and its audit row are one atomic
 * commit and a rollback removes both) or outside one (its own transaction).
 * FL_EINVAL naming the field that breaks the limits above; FL_ECRYPTO if the
 * last row's hash is malformed (run fl_audit_verify); FL_EDB. *seq_out (may
 * be NULL) receives the new row's seq.
 */
int fl_audit_append(fl_store_t *s, int64_t now_ms, const char *actor, const char *action,
                    const char *detail, int64_t *seq_out) FL_MUST_CHECK;

/*
 * Recompute the chain over every row, in one read snapshot (works on a
 * read-only store). Returns 0 when intact (*first_bad_seq = 0, reason "N rows,
 * chain intact"); otherwise FL_ECRYPTO with *first_bad_seq the first row that
 * cannot be trusted and a reason (also fl_errmsg()) saying which of:
 *   - a row is missing (a gap in seq: deleted);
 *   - a row does not match its own hash (edited, or moved from another
 *     position: seq is hashed, so reordered rows fail here);
 *   - a row's prev_hash is not the previous row's hash (the previous row was
 *     rewritten with a recomputed hash, or this one was): names the previous
 *     row;
 *   - a malformed row (a hash that is not 32 bytes).
 * A deleted last row is NOT detected: see fl_audit_verify_head. reason (cap
 * bytes, may be NULL) is always NUL-terminated. FL_EDB on database errors.
 */
int fl_audit_verify(fl_store_t *s, int64_t *first_bad_seq, char *reason,
                    size_t cap) FL_MUST_CHECK;

/* The head: the last row's seq and hash (0 and 32 zero bytes when the log is
 * empty), for the operator to keep elsewhere. FL_EDB; FL_ECRYPTO if the last
 * hash is malformed. */
int fl_audit_head(fl_store_t *s, int64_t *seq, uint8_t hash[FL_AUDIT_HASH_LEN]) FL_MUST_CHECK;

/*
 * Verify the chain (fl_audit_verify), then that it still contains the
 * exported head: row `seq` exists and its hash is `hash`. Detects a truncated
 * log ("ends at row M, before the exported head": *first_bad_seq = M + 1) and
 * a rewritten log ("row seq does not match the exported head: rewritten at or
 * before row seq": *first_bad_seq = seq). Rows appended after the head are
 * fine. seq == 0 (an empty log's head) always matches. FL_ECRYPTO as above,
 * FL_EINVAL for seq < 0, FL_EDB.
 */
int fl_audit_verify_head(fl_store_t *s, int64_t seq, const uint8_t hash[FL_AUDIT_HASH_LEN],
                         int64_t *first_bad_seq, char *reason, size_t cap) FL_MUST_CHECK;

/* Head as text "<seq>:<64 hex>" (e.g. "42:9f1c...") and back. Parse:
 * FL_EINVAL naming the problem. */
void fl_audit_head_format(int64_t seq, const uint8_t hash[FL_AUDIT_HASH_LEN],
                          char out[FL_AUDIT_HEAD_STR_MAX]);
int fl_audit_head_parse(const char *text, int64_t *seq,
                        uint8_t hash[FL_AUDIT_HASH_LEN]) FL_MUST_CHECK;

typedef int (*fl_audit_cb)(const fl_audit_row_t *row, void *arg);

/* Rows ascending by seq; limit <= 0: all, else the last `limit` rows (still
 * ascending). Callback convention of fl_store's list functions: nonzero
 * stops, a negative value is returned. FL_EDB. */
int fl_audit_list(fl_store_t *s, int64_t limit, fl_audit_cb cb, void *arg) FL_MUST_CHECK;

/* The hash of one row (formula above), for tests and external verifiers.
 * Strings are NUL-terminated. Can't fail. */
void fl_audit_row_hash(const uint8_t prev_hash[FL_AUDIT_HASH_LEN], int64_t seq, int64_t ts_ms,
                       const char *actor, const char *action, const char *detail,
                       uint8_t out[FL_AUDIT_HASH_LEN]);

#endif
