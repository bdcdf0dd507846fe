/*
 * fl_secfile.h — the small text files that hold secrets other than CURVE keys
 * (the data key of fl_seal, the signing key of fl_sign): reading one into
 * guarded memory under the ssh permission rule, parsing its `name = <hex>`
 * lines, and creating one atomically without ever replacing an existing file.
 *
 * The format is the one fl_keys uses for CURVE keys, with hex values:
 *
 *   # a comment saying what the file is and that it is private
 *   key = 0123...cdef
 *
 * Blank lines and lines starting with '#' are ignored; every other line is
 * `name = value` with a name the caller expects, at most once each. Details of
 * errors name the file and line, never the content (it may be a secret).
 */
#ifndef FL_SECFILE_H
#define FL_SECFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

/* Largest secret file accepted (ours are ~200 bytes). */
#define FL_SECFILE_MAX 4096

/*
 * Read the file at `path` into guarded (sodium_malloc) memory, NUL-terminated.
 * With check_mode, the file must pass fl_key_check_file_mode() (a regular file
 * owned by geteuid(), nothing granted to group or others) and the file opened
 * must be the file checked; without it (public files) it must be a regular
 * file. Release *text_p with fl_secfile_free(). Returns 0, FL_ENOTFOUND,
 * FL_EPERM (naming the file, its mode and the fix), FL_EFORMAT (larger than
 * FL_SECFILE_MAX, or not a regular file when !check_mode), FL_EIO, FL_ENOMEM.
 * On failure *text_p is untouched.
 */
int fl_secfile_read(const char *path, bool check_mode, char **text_p, size_t *len_p) FL_MUST_CHECK;

/* Wipe and free a buffer from fl_secfile_read; nulls *text_p; accepts NULL. */
void fl_secfile_free(char **text_p);

/* One `name = <hex>` line the caller expects: `len` bytes decoded into `out`
 * (which the caller provides, in guarded memory for secrets). A field is
 * required unless `optional`; `found` is set by fl_secfile_parse_hex. */
typedef struct fl_secfile_field {
    const char *name;
    uint8_t *out;
    size_t len;
    bool optional;
    bool found;
} fl_secfile_field_t;

/*
 * Parse the text of a secret file: every field must appear at most once (and
 * each required one exactly once) with exactly 2*len hex digits; any other non-comment line is an error. Returns 0
 * or FL_EFORMAT naming `path` and the line (or the missing field). On failure
 * the outputs may hold partial data; the caller wipes them.
 */
int fl_secfile_parse_hex(const char *path, const char *text, size_t len, fl_secfile_field_t *fields,
                         size_t n) FL_MUST_CHECK;

/*
 * Create `path` holding buf[0..len) with permission `mode`, atomically and
 * never replacing an existing file: a private temporary beside it is written,
 * fsync'd and link()ed into place. FL_EEXIST if `path` exists (losing a secret
 * key loses data or an identity, so a caller that means to replace one removes
 * it first), FL_EIO / FL_EINVAL otherwise, naming the file. No file is left
 * behind on failure.
 */
int fl_secfile_write_new(const char *path, const void *buf, size_t len, unsigned mode) FL_MUST_CHECK;

#endif
