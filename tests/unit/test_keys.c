/*
 * test_keys.c — unit tests of fl_keys: CURVE key pairs, key files and the
 * ssh-style permission rule, including every malformed-file case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_keys.h"
#include "fl_util.h"
#include "testutil.h"

static int
setup_dir(void **state)
{
    (void)state;
    return s_tmpdir_make("keys");
}

/* Entries of the test directory whose name starts with prefix. */
static int
s_count_prefix(const char *prefix)
{
    DIR *d = opendir(s_dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static void
test_generate(void **state)
{
    (void)state;
    fl_keypair_t *a = fl_keypair_generate(), *b = fl_keypair_generate();
    char derived[41];
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(strlen(fl_keypair_public(a)), 40);
    assert_int_equal(strlen(fl_keypair_secret(a)), 40);
    assert_int_equal(fl_key_check_z85(fl_keypair_public(a)), 0);
    assert_int_equal(fl_key_check_z85(fl_keypair_secret(a)), 0);
    /* the halves belong together, computed independently by libzmq */
    assert_int_equal(zmq_curve_public(derived, fl_keypair_secret(a)), 0);
    assert_string_equal(derived, fl_keypair_public(a));
    assert_string_not_equal(fl_keypair_public(a), fl_keypair_public(b));
    assert_string_not_equal(fl_keypair_secret(a), fl_keypair_secret(b));
    fl_keypair_destroy(&a);
    assert_null(a);
    fl_keypair_destroy(&a); /* idempotent */
    fl_keypair_destroy(NULL);
    fl_keypair_destroy(&b);
}

static void
test_save_load_roundtrip(void **state)
{
    (void)state;
    const char *path = s_tmp_path("agent.key");
    char pubpath[300], expect[256], pub[41];
    fl_keypair_t *kp = fl_keypair_generate(), *back = NULL;
    snprintf(pubpath, sizeof pubpath, "%s.pub", path);

    umask(022);
    assert_int_equal(fl_keypair_save(kp, path), 0);
    assert_int_equal(s_file_mode(path), 0600);
    assert_int_equal(s_file_mode(pubpath), 0644);

    char *text = s_read_text(path);
    snprintf(expect, sizeof expect,
             "# covey CURVE secret key -- keep private\npublic = %s\nsecret = %s\n",
             fl_keypair_public(kp), fl_keypair_secret(kp));
    assert_string_equal(text, expect);
    free(text);
    text = s_read_text(pubpath);
    snprintf(expect, sizeof expect, "# covey CURVE public key\npublic = %s\n",
             fl_keypair_public(kp));
    assert_string_equal(text, expect);
    free(text);

    assert_int_equal(fl_keypair_load(path, &back), 0);
    assert_string_equal(fl_keypair_public(back), fl_keypair_public(kp));
    assert_string_equal(fl_keypair_secret(back), fl_keypair_secret(kp));
    fl_keypair_destroy(&back);

    assert_int_equal(fl_key_load_public(pubpath, pub), 0);
    assert_string_equal(pub, fl_keypair_public(kp));
    memset(pub, 0, sizeof pub);
    assert_int_equal(fl_key_load_public(fl_keypair_public(kp), pub), 0);
    assert_string_equal(pub, fl_keypair_public(kp));

    /* an existing secret key is never overwritten, and stays intact */
    fl_keypair_t *other = fl_keypair_generate();
    assert_int_equal(fl_keypair_save(other, path), FL_EEXIST);
    assert_non_null(strstr(fl_errmsg(), path));
    assert_int_equal(fl_keypair_load(path, &back), 0);
    assert_string_equal(fl_keypair_secret(back), fl_keypair_secret(kp));
    fl_keypair_destroy(&back);
    /* no temporary files are left beside it */
    assert_int_equal(s_count_prefix("agent.key.tmp"), 0);
    fl_keypair_destroy(&other);
    fl_keypair_destroy(&kp);

    /* a missing directory fails cleanly */
    kp = fl_keypair_generate();
    assert_int_equal(fl_keypair_save(kp, s_tmp_path("nodir/x.key")), FL_EIO);
    assert_int_equal(fl_keypair_load(s_tmp_path("nodir/x.key"), &back), FL_ENOTFOUND);
    assert_null(back);
    fl_keypair_destroy(&kp);
}

/* Save a fresh key pair at `name`, return its path. */
static const char *
s_saved(const char *name)
{
    const char *path = s_tmp_path(name);
    fl_keypair_t *kp = fl_keypair_generate();
    assert_int_equal(fl_keypair_save(kp, path), 0);
    fl_keypair_destroy(&kp);
    return path;
}

static void
test_mode_refused(void **state)
{
    (void)state;
    const char *path = s_saved("mode.key");
    fl_keypair_t *kp = NULL;
    char expect[512];

    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(fl_keypair_load(path, &kp), FL_EPERM);
    assert_null(kp);
    snprintf(expect, sizeof expect,
             "key file '%s' is group/world-accessible (mode 0640); run chmod 600 %s", path, path);
    assert_string_equal(fl_errmsg(), expect);
    assert_int_equal(fl_key_check_file_mode(path), FL_EPERM);

    assert_int_equal(chmod(path, 0604), 0); /* world-readable only */
    assert_int_equal(fl_keypair_load(path, &kp), FL_EPERM);
    assert_non_null(strstr(fl_errmsg(), "(mode 0604)"));
    assert_int_equal(chmod(path, 0601), 0); /* any 077 bit, even x */
    assert_int_equal(fl_keypair_load(path, &kp), FL_EPERM);
    assert_int_equal(chmod(path, 0660), 0);
    assert_int_equal(fl_key_check_file_mode(path), FL_EPERM);

    assert_int_equal(chmod(path, 0400), 0); /* stricter than 0600 is fine */
    assert_int_equal(fl_key_check_file_mode(path), 0);
    assert_int_equal(fl_keypair_load(path, &kp), 0);
    fl_keypair_destroy(&kp);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(fl_key_check_file_mode(path), 0);

    /* a symlink is followed: the target's mode is what counts */
    const char *link = s_tmp_path("mode-link.key");
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(fl_keypair_load(link, &kp), 0);
    fl_keypair_destroy(&kp);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(fl_keypair_load(link, &kp), FL_EPERM);
    assert_int_equal(fl_key_check_file_mode(link), FL_EPERM);
}

static void
test_not_regular_or_missing(void **state)
{
    (void)state;
    fl_keypair_t *kp = NULL;
    const char *dir = s_tmp_path("adir");
    const char *fifo = s_tmp_path("afifo");

    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(fl_keypair_load(dir, &kp), FL_EPERM);
    assert_non_null(strstr(fl_errmsg(), "not a regular file"));
    assert_int_equal(fl_key_check_file_mode(dir), FL_EPERM);

    /* a FIFO must be refused, not block the open waiting for a writer */
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(fl_keypair_load(fifo, &kp), FL_EPERM);
    assert_non_null(strstr(fl_errmsg(), fifo));
    assert_int_equal(fl_keypair_load(s_tmp_path("absent.key"), &kp), FL_ENOTFOUND);
    assert_non_null(strstr(fl_errmsg(), "absent.key"));
    assert_int_equal(fl_key_check_file_mode(s_tmp_path("absent.key")), FL_ENOTFOUND);
    assert_null(kp);
}

static void
test_owner_refused(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* only root can give a file away */
    const char *path = s_saved("owner.key");
    fl_keypair_t *kp = NULL;
    assert_int_equal(chown(path, 65534, (gid_t)-1), 0);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(fl_keypair_load(path, &kp), FL_EPERM);
    assert_non_null(strstr(fl_errmsg(), "owned by uid 65534"));
    assert_non_null(strstr(fl_errmsg(), path));
    assert_int_equal(fl_key_check_file_mode(path), FL_EPERM);
    assert_null(kp);
}

/* Write `text` (mode 0600) and expect fl_keypair_load to refuse it with
 * FL_EFORMAT and a detail containing `why` and never `secret`. */
static void
s_expect_malformed(const char *text, const char *why, const char *secret)
{
    const char *path = s_tmp_path("bad.key");
    fl_keypair_t *kp = NULL;
    s_write_text(path, text, 0600);
    assert_int_equal(fl_keypair_load(path, &kp), FL_EFORMAT);
    assert_null(kp);
    if (!strstr(fl_errmsg(), why))
        fail_msg("'%s': detail '%s' lacks '%s'", text, fl_errmsg(), why);
    assert_non_null(strstr(fl_errmsg(), path));
    if (secret)
        assert_null(strstr(fl_errmsg(), secret));
}

static void
test_malformed(void **state)
{
    (void)state;
    fl_keypair_t *a = fl_keypair_generate(), *b = fl_keypair_generate();
    const char *pa = fl_keypair_public(a), *sa = fl_keypair_secret(a);
    const char *pb = fl_keypair_public(b);
    char t[2048], bad[41];

    s_expect_malformed("", "no 'public", NULL);
    s_expect_malformed("# only a comment\n\n", "no 'public", NULL);
    snprintf(t, sizeof t, "public = %s\n", pa);
    s_expect_malformed(t, "no 'secret", NULL);
    snprintf(t, sizeof t, "secret = %s\n", sa);
    s_expect_malformed(t, "no 'public", sa);
    s_expect_malformed("garbage\n", "line 1: expected", NULL);
    /* no '=' after the name ("x" first: a Z85 key may itself begin with '=') */
    snprintf(t, sizeof t, "# c\npublic = %s\nsecret x%s\n", pa, sa);
    s_expect_malformed(t, "line 3: expected", sa);
    snprintf(t, sizeof t, "publicity = %s\nsecret = %s\n", pa, sa);
    s_expect_malformed(t, "line 1: expected", sa);
    snprintf(t, sizeof t, "public = %s\npublic = %s\nsecret = %s\n", pa, pa, sa);
    s_expect_malformed(t, "line 2: second public", sa);
    snprintf(t, sizeof t, "public = %s\nsecret = %s\nsecret = %s\n", pa, sa, sa);
    s_expect_malformed(t, "line 3: second secret", sa);
    /* wrong length */
    snprintf(t, sizeof t, "public = %s\nsecret = %.39s\n", pa, sa);
    s_expect_malformed(t, "line 2: the secret key is not 40", sa);
    snprintf(t, sizeof t, "public = %sx\nsecret = %s\n", pa, sa);
    s_expect_malformed(t, "line 1: the public key is not 40", sa);
    /* bad Z85: a character outside the alphabet, and a group above 2^32 */
    memcpy(bad, sa, 41);
    bad[7] = '~';
    snprintf(t, sizeof t, "public = %s\nsecret = %s\n", pa, bad);
    s_expect_malformed(t, "line 2: the secret key is not valid Z85", bad);
    snprintf(t, sizeof t, "public = %s\nsecret = %s\n", "########################################", sa);
    s_expect_malformed(t, "line 1: the public key is not valid Z85", sa);
    /* the public key of another pair */
    snprintf(t, sizeof t, "public = %s\nsecret = %s\n", pb, sa);
    s_expect_malformed(t, "does not match the secret key", sa);
    /* far too big to be a key file */
    memset(t, '#', sizeof t - 1);
    t[sizeof t - 1] = 0;
    const char *path = s_tmp_path("big.key");
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < 3; i++)
        fputs(t, fp);
    fclose(fp);
    chmod(path, 0600);
    fl_keypair_t *kp = NULL;
    assert_int_equal(fl_keypair_load(path, &kp), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "larger than 4096"));

    /* tolerated: CRLF line ends, blanks, tabs, comments anywhere */
    snprintf(t, sizeof t, "\r\n# x\r\n  public\t=  %s  \r\n\n# y\nsecret=%s", pa, sa);
    const char *ok = s_tmp_path("ok.key");
    s_write_text(ok, t, 0600);
    assert_int_equal(fl_keypair_load(ok, &kp), 0);
    assert_string_equal(fl_keypair_public(kp), pa);
    assert_string_equal(fl_keypair_secret(kp), sa);
    fl_keypair_destroy(&kp);
    fl_keypair_destroy(&a);
    fl_keypair_destroy(&b);
}

static void
test_load_public(void **state)
{
    (void)state;
    const char *secret_path = s_saved("peer.key");
    char out[41], pubpath[300], t[256];
    fl_keypair_t *kp = NULL;
    assert_int_equal(fl_keypair_load(secret_path, &kp), 0);
    snprintf(pubpath, sizeof pubpath, "%s.pub", secret_path);

    assert_int_equal(fl_key_load_public(pubpath, out), 0);
    assert_string_equal(out, fl_keypair_public(kp));
    /* .pub files are public: group/world-readable is fine */
    assert_int_equal(chmod(pubpath, 0644), 0);
    assert_int_equal(fl_key_load_public(pubpath, out), 0);
    /* a secret file is not accepted as a public one */
    assert_int_equal(fl_key_load_public(secret_path, out), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "holds a secret key"));
    assert_null(strstr(fl_errmsg(), fl_keypair_secret(kp)));
    assert_int_equal(fl_key_load_public(s_tmp_path("nope.pub"), out), FL_ENOTFOUND);
    assert_non_null(strstr(fl_errmsg(), "nope.pub"));
    assert_int_equal(fl_key_load_public("", out), FL_EINVAL);
    /* a 40-character non-key that is no file */
    assert_int_equal(fl_key_load_public("~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~", out),
                     FL_ENOTFOUND);

    const char *bad = s_tmp_path("bad.pub");
    s_write_text(bad, "public = short\n", 0644);
    assert_int_equal(fl_key_load_public(bad, out), FL_EFORMAT);
    s_write_text(bad, "# nothing\n", 0644);
    assert_int_equal(fl_key_load_public(bad, out), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "no 'public"));
    snprintf(t, sizeof t, "public = %s\n", fl_keypair_public(kp));
    s_write_text(bad, t, 0644);
    assert_int_equal(fl_key_load_public(bad, out), 0);
    assert_string_equal(out, fl_keypair_public(kp));
    fl_keypair_destroy(&kp);
}

static void
test_check_z85(void **state)
{
    (void)state;
    fl_keypair_t *kp = fl_keypair_generate();
    char k[64];
    assert_int_equal(fl_key_check_z85(fl_keypair_public(kp)), 0);
    assert_int_equal(fl_key_check_z85("0000000000000000000000000000000000000000"), 0);
    assert_int_equal(fl_key_check_z85(NULL), FL_EFORMAT);
    assert_int_equal(fl_key_check_z85(""), FL_EFORMAT);
    snprintf(k, sizeof k, "%.39s", fl_keypair_public(kp));
    assert_int_equal(fl_key_check_z85(k), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "got 39"));
    snprintf(k, sizeof k, "%s0", fl_keypair_public(kp));
    assert_int_equal(fl_key_check_z85(k), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "more than 40"));
    snprintf(k, sizeof k, "%s", fl_keypair_public(kp));
    k[39] = '"';
    assert_int_equal(fl_key_check_z85(k), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "character 40"));
    k[39] = ' ';
    assert_int_equal(fl_key_check_z85(k), FL_EFORMAT);
    /* every character is in the alphabet, but "#####" is 84 * (85^4 + ... + 1) > 2^32 */
    assert_int_equal(fl_key_check_z85("########################################"), FL_EFORMAT);
    assert_non_null(strstr(fl_errmsg(), "not a valid Z85"));
    fl_keypair_destroy(&kp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_mode_refused),
        cmocka_unit_test(test_not_regular_or_missing),
        cmocka_unit_test(test_owner_refused),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_load_public),
        cmocka_unit_test(test_check_z85),
    };
    return cmocka_run_group_tests(tests, setup_dir, s_tmpdir_teardown);
}
