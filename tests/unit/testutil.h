/*
 * testutil.h — file helpers shared by the unit tests that work on files: one
 * temporary directory per test binary (made by a group setup, removed with
 * everything in it by the group teardown), paths inside it, and writing,
 * reading and inspecting small files. Header-only (static inline) so that each
 * test stays one translation unit and no test needs a helper it does not use.
 */
#ifndef COVEY_TESTUTIL_H
#define COVEY_TESTUTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_util.h"

/* The test binary's temporary directory, set by s_tmpdir_make. */
static char s_dir[64];

/* Make s_dir as /tmp/covey-test-<tag>-XXXXXX. umask is set to 022 first so
 * the modes the tests check do not depend on the caller's umask. Returns 0 or
 * -1, as a cmocka group setup does. */
static inline int
s_tmpdir_make(const char *tag)
{
    umask(022);
    snprintf(s_dir, sizeof s_dir, "/tmp/covey-test-%s-XXXXXX", tag);
    return mkdtemp(s_dir) ? 0 : -1;
}

/* Remove `path` and, if it is a directory, everything below it (links are
 * removed, not followed). Returns 0 or -1. */
static inline int
s_rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char p[512];
        if (!d)
            return -1;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            int n = snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            if (n > 0 && (size_t)n < sizeof p)
                s_rm_tree(p);
        }
        closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

/* cmocka group teardown: remove s_dir and its contents. */
static inline int
s_tmpdir_teardown(void **state)
{
    (void)state;
    return s_rm_tree(s_dir);
}

/* `name` inside s_dir, in one of four rotating buffers (valid until the
 * fourth next call). */
static inline const char *
s_tmp_path(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", s_dir, name);
    return p;
}

/* As s_tmp_path, with any old file of that name removed. */
static inline const char *
s_tmp_fresh(const char *name)
{
    const char *p = s_tmp_path(name);
    unlink(p);
    return p;
}

/* Replace the file at `path` (an old file is unlinked, never written
 * through) by `len` bytes of `data` with permissions `mode`. */
static inline void
s_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

/* s_write_file of a NUL-terminated text. */
static inline void
s_write_text(const char *path, const char *text, mode_t mode)
{
    s_write_file(path, text, strlen(text), mode);
}

/* The whole file at `path` (at most 4 KiB), NUL-terminated. Caller frees. */
static inline char *
s_read_text(const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(fl_read_file(path, 4096, &buf, &len), 0);
    return (char *)buf;
}

/* The permission bits of `path` (links followed). */
static inline unsigned
s_file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

#endif
