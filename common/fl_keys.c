/*
 * fl_keys.c — CurveZMQ key pairs in guarded memory, and the key files that
 * hold them, checked the way ssh checks identity files. See fl_keys.h. The
 * files are read and created by fl_secfile (shared with the other secret
 * files); the permission rule both apply is fl_key_check_file_mode, here.
 *
 * Every buffer that ever holds secret text (the secret itself, the file image
 * being written or read) is sodium_malloc memory and is wiped before release.
 * Error details name files and line numbers, never file content, because the
 * content may be a secret.
 */
#include "fl_keys.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_secfile.h"

struct fl_keypair {
    char public_z85[FL_KEY_Z85_LEN + 1];
    char *secret_z85; /* sodium_malloc(FL_KEY_Z85_LEN + 1) */
};

/* Key files are read and created by fl_secfile, under the same cap. */
_Static_assert(FL_KEY_FILE_MAX == FL_SECFILE_MAX, "key files are fl_secfile files");

static const char s_secret_header[] = "# covey CURVE secret key -- keep private\n";
static const char s_public_header[] = "# covey CURVE public key\n";

/* sodium_init() is idempotent and thread-safe; sodium_malloc needs it. */
static int
s_sodium_ready(void)
{
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium failed to initialise");
    return 0;
}

/* A key pair with its guarded secret buffer, both halves empty. NULL (with a
 * detail) if guarded memory cannot be had. */
static fl_keypair_t *
s_keypair_alloc(void)
{
    if (s_sodium_ready() < 0)
        return NULL;
    fl_keypair_t *kp = fl_xcalloc(1, sizeof *kp);
    kp->secret_z85 = sodium_malloc(FL_KEY_Z85_LEN + 1);
    if (!kp->secret_z85) {
        free(kp);
        fl_fail(FL_ENOMEM, "cannot allocate guarded memory for a secret key");
        return NULL;
    }
    sodium_memzero(kp->secret_z85, FL_KEY_Z85_LEN + 1);
    return kp;
}

fl_keypair_t *
fl_keypair_generate(void)
{
    fl_keypair_t *kp = s_keypair_alloc();
    if (!kp)
        return NULL;
    if (zmq_curve_keypair(kp->public_z85, kp->secret_z85) != 0) {
        fl_fail(FL_ECRYPTO, "zmq_curve_keypair: %s", zmq_strerror(errno));
        fl_keypair_destroy(&kp);
        return NULL;
    }
    return kp;
}

void
fl_keypair_destroy(fl_keypair_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_keypair_t *kp = *self_p;
    sodium_free(kp->secret_z85); /* wipes before unmapping */
    free(kp);
    *self_p = NULL;
}

const char *
fl_keypair_public(const fl_keypair_t *kp)
{
    return kp->public_z85;
}

const char *
fl_keypair_secret(const fl_keypair_t *kp)
{
    return kp->secret_z85;
}

int
fl_key_check_z85(const char *z85)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    uint8_t bin[32];
    size_t n = 0;

    if (!z85)
        return fl_fail(FL_EFORMAT, "key: missing");
    while (n <= FL_KEY_Z85_LEN && z85[n]) {
        if (!strchr(alphabet, z85[n]))
            return fl_fail(FL_EFORMAT, "key: character %zu is not in the Z85 alphabet", n + 1);
        n++;
    }
    if (n != FL_KEY_Z85_LEN)
        return fl_fail(FL_EFORMAT, "key: expected %d Z85 characters, got %s%zu",
                       FL_KEY_Z85_LEN, n > FL_KEY_Z85_LEN ? "more than " : "",
                       n > FL_KEY_Z85_LEN ? (size_t)FL_KEY_Z85_LEN : n);
    /* Characters of the alphabet can still encode a 5-character group above
     * 2^32; libzmq refuses those. */
    int ok = zmq_z85_decode(bin, z85) != NULL;
    sodium_memzero(bin, sizeof bin);
    if (!ok)
        return fl_fail(FL_EFORMAT, "key: not a valid Z85 encoding of 32 bytes");
    return 0;
}

/* The ssh rule applied to the stat of an opened file or of a path. */
static int
s_check_stat(const char *path, const struct stat *st)
{
    if (!S_ISREG(st->st_mode))
        return fl_fail(FL_EPERM, "key file '%s' is not a regular file", path);
    if (st->st_uid != geteuid())
        return fl_fail(FL_EPERM,
                       "key file '%s' is owned by uid %ld, not by uid %ld that runs this "
                       "program; run chown %ld %s",
                       path, (long)st->st_uid, (long)geteuid(), (long)geteuid(), path);
    if (st->st_mode & 077)
        return fl_fail(FL_EPERM,
                       "key file '%s' is group/world-accessible (mode %04o); run chmod 600 %s",
                       path, (unsigned)(st->st_mode & 07777), path);
    return 0;
}

int
fl_key_check_file_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return fl_fail(errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "key file '%s': %s", path,
                       strerror(errno));
    return s_check_stat(path, &st);
}

/*
 * Parse key file text: blank lines, `#` comments, `public = <z85>` and
 * `secret = <z85>`, each key at most once, surrounding blanks ignored.
 * `pub` receives the public key; `secret` (guarded memory, 41 bytes) the
 * secret key, or NULL when the caller wants a public file only, in which case
 * a secret line is an error. Details name the line, never its content.
 */
static int
s_parse_key_text(const char *path, const char *text, size_t len, char *pub, char *secret)
{
    bool have_pub = false, have_secret = false;
    size_t pos = 0;
    int lineno = 0;

    while (pos < len) {
        const char *line = text + pos;
        size_t n = 0;
        while (pos + n < len && line[n] != '\n')
            n++;
        pos += n + 1;
        lineno++;
        while (n && isspace((unsigned char)line[n - 1]))
            n--;
        while (n && isspace((unsigned char)*line)) {
            line++;
            n--;
        }
        if (n == 0 || line[0] == '#')
            continue;

        size_t k = 0;
        while (k < n && isalpha((unsigned char)line[k]))
            k++;
        bool is_pub = k == 6 && memcmp(line, "public", 6) == 0;
        bool is_secret = k == 6 && memcmp(line, "secret", 6) == 0;
        size_t v = k;
        while (v < n && (line[v] == ' ' || line[v] == '\t'))
            v++;
        if ((!is_pub && !is_secret) || v == n || line[v] != '=')
            return fl_fail(FL_EFORMAT,
                           "key file '%s' line %d: expected 'public = <key>' or "
                           "'secret = <key>'",
                           path, lineno);
        v++;
        while (v < n && (line[v] == ' ' || line[v] == '\t'))
            v++;
        const char *what = is_pub ? "public" : "secret";
        if ((is_pub && have_pub) || (is_secret && have_secret))
            return fl_fail(FL_EFORMAT, "key file '%s' line %d: second %s key", path, lineno,
                           what);
        if (is_secret && !secret)
            return fl_fail(FL_EFORMAT,
                           "key file '%s' holds a secret key; give the public (.pub) file", path);
        if (n - v != FL_KEY_Z85_LEN)
            return fl_fail(FL_EFORMAT,
                           "key file '%s' line %d: the %s key is not %d Z85 characters", path,
                           lineno, what, FL_KEY_Z85_LEN);
        char *dst = is_pub ? pub : secret;
        memcpy(dst, line + v, FL_KEY_Z85_LEN);
        dst[FL_KEY_Z85_LEN] = '\0';
        if (fl_key_check_z85(dst) < 0)
            return fl_fail(FL_EFORMAT, "key file '%s' line %d: the %s key is not valid Z85",
                           path, lineno, what);
        if (is_pub)
            have_pub = true;
        else
            have_secret = true;
    }
    if (!have_pub)
        return fl_fail(FL_EFORMAT, "key file '%s': no 'public = <key>' line", path);
    if (secret && !have_secret)
        return fl_fail(FL_EFORMAT, "key file '%s': no 'secret = <key>' line", path);
    return 0;
}

int
fl_keypair_load(const char *path, fl_keypair_t **out)
{
    char *text = NULL;
    size_t len = 0;
    fl_keypair_t *kp = NULL;
    char derived[FL_KEY_Z85_LEN + 1];
    int rc;

    if ((rc = fl_secfile_read(path, true, &text, &len)) < 0)
        goto out;
    if (!(kp = s_keypair_alloc())) {
        rc = FL_ENOMEM;
        goto out;
    }
    if ((rc = s_parse_key_text(path, text, len, kp->public_z85, kp->secret_z85)) < 0)
        goto out;
    /* A file whose halves do not belong together would make a server that
     * clients cannot authenticate, or a client that the server admits under
     * another agent's name: refuse it here, where the cause is plain. */
    if (zmq_curve_public(derived, kp->secret_z85) != 0) {
        rc = fl_fail(FL_EFORMAT, "key file '%s': the secret key is not usable: %s", path,
                     zmq_strerror(errno));
        goto out;
    }
    if (strcmp(derived, kp->public_z85) != 0) {
        rc = fl_fail(FL_EFORMAT, "key file '%s': the public key does not match the secret key",
                     path);
        goto out;
    }
    *out = kp;
    kp = NULL;
    rc = 0;
out:
    fl_keypair_destroy(&kp);
    fl_secfile_free(&text);
    return rc;
}

int
fl_key_load_public(const char *path_or_z85, char out[FL_KEY_Z85_LEN + 1])
{
    char pub[FL_KEY_Z85_LEN + 1];
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    int rc;

    if (!path_or_z85 || !*path_or_z85)
        return fl_fail(FL_EINVAL, "public key: empty");
    /* A 40-character path can be valid Z85 ("/" and "." are in the alphabet),
     * so an existing file of that name wins over the reading as a key. */
    if (stat(path_or_z85, &st) != 0 && fl_key_check_z85(path_or_z85) == 0) {
        memcpy(out, path_or_z85, FL_KEY_Z85_LEN + 1);
        return 0;
    }
    rc = fl_secfile_read(path_or_z85, false, &text, &len);
    if (rc == FL_ENOTFOUND) {
        rc = fl_fail(FL_ENOTFOUND, "public key '%s' is neither a Z85 key nor an existing file",
                     path_or_z85);
        goto out;
    }
    if (rc < 0)
        goto out;
    if ((rc = s_parse_key_text(path_or_z85, text, len, pub, NULL)) < 0)
        goto out;
    memcpy(out, pub, sizeof pub);
    rc = 0;
out:
    fl_secfile_free(&text);
    return rc;
}

int
fl_keypair_save(const fl_keypair_t *kp, const char *path)
{
    enum { TEXT_MAX = 256 };
    char pubpath[PATH_MAX], pubtext[TEXT_MAX];
    char *text = NULL;
    int rc, n;

    if (!kp || !path || !*path)
        return fl_fail(FL_EINVAL, "fl_keypair_save: no key pair or no path");
    if ((size_t)snprintf(pubpath, sizeof pubpath, "%s.pub", path) >= sizeof pubpath)
        return fl_fail(FL_EINVAL, "key file '%s': path too long", path);
    if ((rc = s_sodium_ready()) < 0)
        return rc;
    text = sodium_malloc(TEXT_MAX);
    if (!text)
        return fl_fail(FL_ENOMEM, "key file '%s': cannot allocate guarded memory", path);
    n = snprintf(text, TEXT_MAX, "%spublic = %s\nsecret = %s\n", s_secret_header,
                 kp->public_z85, kp->secret_z85);
    assert(n > 0 && n < TEXT_MAX);
    if ((rc = fl_secfile_write_new(path, text, (size_t)n, 0600)) < 0)
        goto out;
    n = snprintf(pubtext, sizeof pubtext, "%spublic = %s\n", s_public_header, kp->public_z85);
    assert(n > 0 && n < TEXT_MAX);
    if ((rc = fl_write_file_atomic(pubpath, pubtext, (size_t)n, 0644)) < 0) {
        /* No half-saved pair: the secret file is new (link refused to
         * replace one), so removing it restores the state before the call. */
        unlink(path);
        goto out;
    }
    rc = 0;
out:
    sodium_memzero(text, TEXT_MAX);
    sodium_free(text);
    return rc;
}
