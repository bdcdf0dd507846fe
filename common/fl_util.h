/*
 * fl_util.h — the ground every libcovey module stands on: error codes and the
 * thread-local error detail that names what was wrong, checked allocation,
 * clocks, and small helpers shared by the coordinator and the agent.
 *
 * Error discipline (see STYLE.md): functions that can fail return 0 or a
 * negative FL_E* code; on failure they record a human-readable detail with
 * fl_fail(), which fl_errmsg() returns until the next failure on the same
 * thread. Small allocations that fail abort through fl_xmalloc(); sizes that
 * come from outside are capped and checked before any allocation.
 */
#ifndef FL_UTIL_H
#define FL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The release of the programs and of the wire protocol implementation. */
#define COVEY_VERSION "0.1.0"

#define FL_MUST_CHECK __attribute__((warn_unused_result))
#define FL_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Error codes; always negative so that callers can write `if (rc < 0)`. */
enum {
    FL_OK = 0,
    FL_EINVAL = -1,    /* bad argument, option or configuration value */
    FL_EIO = -2,       /* an operating-system call on a file or socket failed */
    FL_EFORMAT = -3,   /* malformed file or data (bad magic, truncated, not a number) */
    FL_ENOMEM = -4,    /* a large allocation failed */
    FL_EPROTO = -5,    /* malformed or unexpected protocol message */
    FL_ECRYPTO = -6,   /* authentication, signature or decryption failure */
    FL_ERANGE = -7,    /* a size or value outside its permitted range */
    FL_ENOTFOUND = -8, /* no such file, key, agent, round ... */
    FL_ESTATE = -9,    /* operation not valid in the current state */
    FL_EDB = -10,      /* the SQLite database reported an error */
    FL_ETIMEOUT = -11, /* a deadline passed */
    FL_EPERM = -12,    /* permission denied (file mode, role, revoked key) */
    FL_EEXIST = -13,   /* already exists */
    FL_ENONFINITE = -14 /* a tensor holds NaN or Inf */
};

/* Name of an error code ("invalid argument", ...). Never NULL. */
const char *fl_strerror(int code);

/*
 * Record `code` with a printf-style detail for this thread and return `code`,
 * so a failing path can end with `return fl_fail(FL_EFORMAT, "...", ...)`.
 * The detail should name the offending thing (file, field, value).
 */
int fl_fail(int code, const char *fmt, ...) FL_PRINTF(2, 3);

/* The detail of the last fl_fail() on this thread ("" when none). Borrowed
 * until the next fl_fail() on this thread. */
const char *fl_errmsg(void);

/* Clear this thread's error detail. */
void fl_errclear(void);

/* Allocation that cannot fail: aborts the process with a message when the
 * allocator does (small allocations only; sizes from outside are checked
 * first). fl_xmalloc_aligned returns 64-byte aligned memory, released with free(). */
void *fl_xmalloc(size_t size);
void *fl_xcalloc(size_t count, size_t size);
void *fl_xrealloc(void *ptr, size_t size);
void *fl_xmalloc_aligned(size_t size);
char *fl_xstrdup(const char *s);

/* Overflow-checked a*b; returns false (and leaves *out alone) on overflow. */
bool fl_mul_ok(size_t a, size_t b, size_t *out);

/* Monotonic clock in seconds / milliseconds; wall clock in milliseconds since
 * the epoch. */
double fl_now(void);
int64_t fl_now_ms(void);
int64_t fl_wall_ms(void);

/* CPU time consumed by this process, in seconds (user + system). */
double fl_cpu_time(void);

/* Strict number parsing: the whole string must be a number in range.
 * Return 0 or FL_EINVAL with a detail naming `what`. */
int fl_parse_u64(const char *s, const char *what, uint64_t *out) FL_MUST_CHECK;
int fl_parse_double(const char *s, const char *what, double *out) FL_MUST_CHECK;

/* Read a whole file into a malloc'd buffer (NUL-terminated for convenience).
 * Files larger than `max` are refused with FL_ERANGE. Caller frees *buf_p. */
int fl_read_file(const char *path, size_t max, uint8_t **buf_p, size_t *len_p) FL_MUST_CHECK;

/* Write a file atomically: a temporary beside `path`, fsync, rename. `mode` is
 * the permission of the new file (e.g. 0600 for secrets). */
int fl_write_file_atomic(const char *path, const void *buf, size_t len, unsigned mode) FL_MUST_CHECK;

/* Big-endian 32-bit integers in byte buffers (wire records, shares). */
static inline uint32_t
fl_load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void
fl_store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
