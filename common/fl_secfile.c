/*
 * fl_secfile.c — secret text files in guarded memory, checked the way ssh
 * checks identity files (the rule itself is fl_key_check_file_mode), parsed
 * without echoing content, and created without replacing. See fl_secfile.h.
 */
#include "fl_secfile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_keys.h"

int
fl_secfile_read(const char *path, bool check_mode, char **text_p, size_t *len_p)
{
    int fd = -1, rc = FL_EIO;
    char *buf = NULL;
    size_t len = 0;
    struct stat fst, pst;

    if (!path || !*path || !text_p || !len_p)
        return fl_fail(FL_EINVAL, "fl_secfile_read: path and outputs are required");
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    /* O_NONBLOCK keeps a FIFO planted at `path` from blocking the open. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return fl_fail(errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "key file '%s': %s", path,
                       strerror(errno));
    if (fstat(fd, &fst) != 0) {
        rc = fl_fail(FL_EIO, "key file '%s': fstat: %s", path, strerror(errno));
        goto out;
    }
    if (check_mode) {
        /* The shared rule names the file, its mode and the fix. It looks at
         * the path; the opened file must then be the one it looked at, and
         * must itself obey the rule (a file swapped in between is refused). */
        if ((rc = fl_key_check_file_mode(path)) < 0)
            goto out;
        if (stat(path, &pst) != 0 || pst.st_dev != fst.st_dev || pst.st_ino != fst.st_ino ||
            !S_ISREG(fst.st_mode) || fst.st_uid != geteuid() || (fst.st_mode & 077)) {
            rc = fl_fail(FL_EPERM, "key file '%s' changed while it was being opened", path);
            goto out;
        }
    } else if (!S_ISREG(fst.st_mode)) {
        rc = fl_fail(FL_EFORMAT, "key file '%s' is not a regular file", path);
        goto out;
    }
    buf = sodium_malloc(FL_SECFILE_MAX + 1);
    if (!buf) {
        rc = fl_fail(FL_ENOMEM, "key file '%s': cannot allocate guarded memory", path);
        goto out;
    }
    /* Read to EOF rather than trust st_size; one byte past the cap tells an
     * oversized file from a full one. */
    for (;;) {
        ssize_t n = read(fd, buf + len, FL_SECFILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = fl_fail(FL_EIO, "key file '%s': read: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > FL_SECFILE_MAX) {
            rc = fl_fail(FL_EFORMAT, "key file '%s' is larger than %d bytes; not a key file", path,
                         FL_SECFILE_MAX);
            goto out;
        }
    }
    buf[len] = '\0';
    *text_p = buf;
    *len_p = len;
    buf = NULL;
    rc = 0;
out:
    if (buf) {
        sodium_memzero(buf, FL_SECFILE_MAX + 1);
        sodium_free(buf);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

void
fl_secfile_free(char **text_p)
{
    if (!text_p || !*text_p)
        return;
    sodium_memzero(*text_p, FL_SECFILE_MAX + 1);
    sodium_free(*text_p);
    *text_p = NULL;
}

static bool
s_is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

int
fl_secfile_parse_hex(const char *path, const char *text, size_t len, fl_secfile_field_t *fields,
                     size_t n)
{
    size_t pos = 0;
    int lineno = 0;

    for (size_t f = 0; f < n; f++)
        fields[f].found = false;
    while (pos < len) {
        const char *line = text + pos;
        size_t ll = 0;
        while (pos + ll < len && line[ll] != '\n')
            ll++;
        pos += ll + 1;
        lineno++;
        while (ll && s_is_blank(line[ll - 1]))
            ll--;
        while (ll && s_is_blank(*line)) {
            line++;
            ll--;
        }
        if (ll == 0 || line[0] == '#')
            continue;

        size_t k = 0;
        while (k < ll && (isalnum((unsigned char)line[k]) || line[k] == '_'))
            k++;
        fl_secfile_field_t *field = NULL;
        for (size_t f = 0; f < n; f++)
            if (strlen(fields[f].name) == k && memcmp(line, fields[f].name, k) == 0)
                field = &fields[f];
        size_t v = k;
        while (v < ll && s_is_blank(line[v]))
            v++;
        if (!field || v == ll || line[v] != '=') {
            char names[128];
            size_t used = 0;
            names[0] = '\0';
            for (size_t f = 0; f < n && used < sizeof names; f++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s'%s = <hex>'",
                                         f == 0 ? "" : f + 1 == n ? " or " : ", ", fields[f].name);
            return fl_fail(FL_EFORMAT, "key file '%s' line %d: expected %s", path, lineno, names);
        }
        v++;
        while (v < ll && s_is_blank(line[v]))
            v++;
        if (field->found)
            return fl_fail(FL_EFORMAT, "key file '%s' line %d: second '%s'", path, lineno,
                           field->name);
        size_t bin_len = 0;
        const char *end = NULL;
        if (ll - v != 2 * field->len ||
            sodium_hex2bin(field->out, field->len, line + v, ll - v, NULL, &bin_len, &end) != 0 ||
            bin_len != field->len || end != line + ll)
            return fl_fail(FL_EFORMAT, "key file '%s' line %d: '%s' is not %zu hex digits", path,
                           lineno, field->name, 2 * field->len);
        field->found = true;
    }
    for (size_t f = 0; f < n; f++)
        if (!fields[f].found && !fields[f].optional)
            return fl_fail(FL_EFORMAT, "key file '%s': no '%s = <hex>' line", path,
                           fields[f].name);
    return 0;
}

/* fsync the directory holding `path`, so that a new name survives a crash. */
static void
s_sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (n == 0)
        snprintf(dir, sizeof dir, "/");
    else if (n < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)n, path);
    else
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int
fl_secfile_write_new(const char *path, const void *buf, size_t len, unsigned mode)
{
    char tmp[PATH_MAX];
    int fd = -1, rc = FL_EIO;
    size_t done = 0;

    if (!path || !*path)
        return fl_fail(FL_EINVAL, "key file: no path given");
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= sizeof tmp)
        return fl_fail(FL_EINVAL, "key file '%s': path too long", path);
    /* mkstemp creates the temporary O_EXCL with mode 0600: the secret is
     * never readable by others, not even for a moment. */
    fd = mkstemp(tmp);
    if (fd < 0)
        return fl_fail(FL_EIO, "key file '%s': cannot create a temporary file: %s", path,
                       strerror(errno));
    if (fchmod(fd, (mode_t)mode) != 0) {
        rc = fl_fail(FL_EIO, "key file '%s': chmod: %s", tmp, strerror(errno));
        goto out;
    }
    while (done < len) {
        ssize_t w = write(fd, (const char *)buf + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = fl_fail(FL_EIO, "key file '%s': write: %s", tmp, strerror(errno));
            goto out;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0) {
        rc = fl_fail(FL_EIO, "key file '%s': fsync: %s", tmp, strerror(errno));
        goto out;
    }
    /* link() fails with EEXIST rather than replace an existing file. */
    if (link(tmp, path) != 0) {
        rc = errno == EEXIST
                 ? fl_fail(FL_EEXIST, "key file '%s' already exists; not overwriting it", path)
                 : fl_fail(FL_EIO, "key file '%s': %s", path, strerror(errno));
        goto out;
    }
    s_sync_dir(path);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}
