/*
 * fuzz_seal.c — libFuzzer target for fl_unseal() / fl_unseal_inplace(), the
 * readers of sealed blobs from disk (checkpoints, the agent's cached model).
 * Properties, whatever the bytes:
 *   - the result is FL_EFORMAT or FL_ECRYPTO with no output, never a crash,
 *     never an accepted blob (forging a Poly1305 tag is out of reach);
 *   - the copying and in-place readers agree;
 *   - the first bytes are also used as a plaintext that must round-trip.
 *
 * Built and run by `make fuzz` (clang, all of common/ linked).
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_seal.h"
#include "fl_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
s_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_seal: property violated: %s (%s)\n", what, fl_errmsg());
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fl_datakey_t *key;
    static const uint8_t ad[] = "fuzz associated data";
    uint8_t *out = NULL, *copy;
    size_t outlen = 0, ptlen = 0;

    if (!key && !(key = fl_datakey_generate()))
        abort();
    if (size > 65536)
        return 0;
    int rc = fl_unseal(key, ad, sizeof ad, data, size, &out, &outlen);
    s_check(rc == FL_EFORMAT || rc == FL_ECRYPTO, "unseal refuses arbitrary bytes");
    s_check(out == NULL, "no output on failure");
    copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    int rc2 = fl_unseal_inplace(key, ad, sizeof ad, copy, size, &ptlen);
    s_check(rc2 == rc, "the in-place reader agrees");
    free(copy);

    uint8_t *blob = NULL;
    size_t blen = 0;
    s_check(fl_seal(key, ad, sizeof ad, data, size, &blob, &blen) == 0, "seal");
    s_check(fl_unseal(key, ad, sizeof ad, blob, blen, &out, &outlen) == 0, "round trip");
    s_check(outlen == size && (size == 0 || memcmp(out, data, size) == 0), "same bytes back");
    free(out);
    free(blob);
    return 0;
}
