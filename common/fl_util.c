/*
 * fl_util.c — error detail, checked allocation, clocks, strict parsing and
 * whole-file I/O for libcovey. See fl_util.h for the contracts.
 */
#include "fl_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char s_errbuf[512];

const char *
fl_strerror(int code)
{
    switch (code) {
    case FL_OK: return "success";
    case FL_EINVAL: return "invalid argument";
    case FL_EIO: return "input/output error";
    case FL_EFORMAT: return "malformed data";
    case FL_ENOMEM: return "out of memory";
    case FL_EPROTO: return "protocol error";
    case FL_ECRYPTO: return "cryptographic check failed";
    case FL_ERANGE: return "value out of range";
    case FL_ENOTFOUND: return "not found";
    case FL_ESTATE: return "invalid state";
    case FL_EDB: return "database error";
    case FL_ETIMEOUT: return "timed out";
    case FL_EPERM: return "permission denied";
    case FL_EEXIST: return "already exists";
    case FL_ENONFINITE: return "non-finite value";
    default: return "unknown error";
    }
}

int
fl_fail(int code, const char *fmt, ...)
{
    /* Formatted aside first: callers often pass fl_errmsg() itself as an
     * argument ("context: %s", fl_errmsg()), which must not be overwritten
     * while it is read. */
    char tmp[sizeof s_errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(s_errbuf, tmp, sizeof s_errbuf);
    return code;
}

const char *
fl_errmsg(void)
{
    return s_errbuf;
}

void
fl_errclear(void)
{
    s_errbuf[0] = '\0';
}

static void
s_oom(size_t size)
{
    fprintf(stderr, "covey: out of memory allocating %zu bytes\n", size);
    abort();
}

void *
fl_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        s_oom(size);
    return p;
}

void *
fl_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        s_oom(count * size);
    return p;
}

void *
fl_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        s_oom(size);
    return p;
}

void *
fl_xmalloc_aligned(size_t size)
{
    void *p = NULL;
    size_t rounded = (size + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
        s_oom(size);
    return p;
}

char *
fl_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = fl_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

bool
fl_mul_ok(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

double
fl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t
fl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
fl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double
fl_cpu_time(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

int
fl_parse_u64(const char *s, const char *what, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;

    if (!s || !*s || *s == '-' || *s == '+')
        return fl_fail(FL_EINVAL, "%s: expected a non-negative integer, got '%s'", what,
                       s ? s : "");
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return fl_fail(FL_EINVAL, "%s: expected a non-negative integer, got '%s'", what, s);
    *out = (uint64_t)v;
    return 0;
}

int
fl_parse_double(const char *s, const char *what, double *out)
{
    char *end = NULL;
    double v;

    if (!s || !*s)
        return fl_fail(FL_EINVAL, "%s: expected a number, got ''", what);
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end != '\0' || !isfinite(v))
        return fl_fail(FL_EINVAL, "%s: expected a finite number, got '%s'", what, s);
    *out = v;
    return 0;
}

int
fl_read_file(const char *path, size_t max, uint8_t **buf_p, size_t *len_p)
{
    int fd = -1, rc = FL_EIO;
    struct stat st;
    uint8_t *buf = NULL;
    size_t len, got = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = fl_fail(errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = fl_fail(FL_EIO, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        rc = fl_fail(FL_ERANGE, "%s: %lld bytes exceeds the limit of %zu", path,
                     (long long)st.st_size, max);
        goto out;
    }
    len = (size_t)st.st_size;
    buf = fl_xmalloc(len + 1);
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = fl_fail(FL_EIO, "%s: read failed: %s", path, n ? strerror(errno) : "short read");
            goto out;
        }
        got += (size_t)n;
    }
    buf[len] = 0;
    *buf_p = buf;
    *len_p = len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

int
fl_write_file_atomic(const char *path, const void *buf, size_t len, unsigned mode)
{
    char tmp[PATH_MAX];
    int fd = -1, rc = FL_EIO;
    size_t done = 0;

    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return fl_fail(FL_EINVAL, "%s: path too long", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) {
        rc = fl_fail(FL_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    if (fchmod(fd, (mode_t)mode) != 0) {
        rc = fl_fail(FL_EIO, "%s: chmod: %s", tmp, strerror(errno));
        goto out;
    }
    while (done < len) {
        ssize_t n = write(fd, (const uint8_t *)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = fl_fail(FL_EIO, "%s: write: %s", tmp, strerror(errno));
            goto out;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0) {
        rc = fl_fail(FL_EIO, "%s: fsync: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = fl_fail(FL_EIO, "%s: rename: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    return rc;
}
