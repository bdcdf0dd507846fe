/*
 * state.c — state-directory layout and checkpoint helpers. See state.h.
 */
#include "state.h"

#include <pwd.h>
#include <sodium.h>
#include <stdarg.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_audit.h"
#include "fl_log.h"
#include "fl_model.h"

int
coord_paths(const char *dir, coord_paths_t *p)
{
    memset(p, 0, sizeof *p);
    if (strlen(dir) >= sizeof p->dir)
        return fl_fail(FL_EINVAL, "state directory path too long: %s", dir);
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    snprintf(p->db, sizeof p->db, "%s/covey.db", dir);
    snprintf(p->config, sizeof p->config, "%s/coordinator.ini", dir);
    snprintf(p->key, sizeof p->key, "%s/server.key", dir);
    snprintf(p->pub, sizeof p->pub, "%s/server.key.pub", dir);
    snprintf(p->admin, sizeof p->admin, "%s/admin.sock", dir);
    snprintf(p->admin_endpoint, sizeof p->admin_endpoint, "ipc://%s", p->admin);
    snprintf(p->data_key, sizeof p->data_key, "%s/data.key", dir);
    snprintf(p->sign_key, sizeof p->sign_key, "%s/signing.key", dir);
    snprintf(p->sign_pub, sizeof p->sign_pub, "%s/signing.key.pub", dir);
    return 0;
}

int
coord_model_from_bytes(const char *spec, const uint8_t *bytes, size_t len, fl_params_t **out)
{
    fl_params_t *p = NULL;
    int rc = fl_model_layout(spec, &p);
    if (rc != 0)
        return rc;
    if (len != fl_params_numel(p) * sizeof(float)) {
        size_t want = fl_params_numel(p) * sizeof(float);
        fl_params_destroy(&p);
        return fl_fail(FL_EFORMAT, "checkpoint holds %zu bytes but model '%s' needs %zu", len,
                       spec, want);
    }
    memcpy(fl_params_data(p), bytes, len);
    *out = p;
    return 0;
}

void
coord_model_digest(const fl_params_t *p, uint8_t out[32])
{
    crypto_generichash(out, 32, (const unsigned char *)fl_params_data(p),
                       fl_params_numel(p) * sizeof(float), NULL, 0);
}

const char *
coord_hex(const uint8_t *d, size_t n, char *buf, size_t size)
{
    if (size < 2 * n + 1)
        n = (size - 1) / 2;
    sodium_bin2hex(buf, size, d, n);
    return buf;
}

int
coord_federation_id(fl_store_t *store, char out[65])
{
    int rc = fl_store_meta_get(store, "federation_id", out, 65);
    if (rc != 0)
        return fl_fail(rc, "the database has no federation id: %s", fl_errmsg());
    return 0;
}

/* Seal one blob for (purpose, federation, round, digest): in place in work
 * (work_cap bytes, may be NULL) when it fits, with pt copied there first;
 * otherwise into a new allocation. *out is work or the caller frees it. */
static int
s_seal(const fl_datakey_t *dk, const char *purpose, const char *fedid, int64_t round,
       const uint8_t digest[32], const void *pt, size_t len, void *work, size_t work_cap,
       uint8_t **out, size_t *outlen)
{
    uint8_t ad[FL_SEAL_AD_MAX];
    size_t adlen = 0;
    int rc = fl_seal_ad(purpose, fedid, round, digest, ad, &adlen);
    if (rc != 0)
        return rc;
    if (!work || len > work_cap || work_cap - len < FL_SEAL_OVERHEAD)
        return fl_seal(dk, ad, adlen, pt, len, out, outlen);
    memcpy(work, pt, len);
    if ((rc = fl_seal_inplace(dk, ad, adlen, work, len, work_cap, outlen)) == 0)
        *out = work;
    return rc;
}

int
coord_checkpoint_save(fl_store_t *store, const fl_datakey_t *dk, const char *fedid, int64_t round,
                      const uint8_t digest[32], const void *model, size_t model_len,
                      const void *state, size_t state_len, int64_t now_ms, void *work,
                      size_t work_cap)
{
    uint8_t *m = NULL, *st = NULL;
    size_t mlen = 0, stlen = 0;
    int rc = s_seal(dk, FL_SEAL_PURPOSE_MODEL, fedid, round, digest, model, model_len, work,
                    work_cap, &m, &mlen);
    if (rc == 0 && state_len > 0)
        rc = s_seal(dk, FL_SEAL_PURPOSE_STATE, fedid, round, digest, state, state_len, NULL, 0,
                    &st, &stlen);
    if (rc == 0)
        rc = fl_store_checkpoint_put(store, round, digest, m, mlen, st, stlen, now_ms);
    if (m != work)
        free(m);
    free(st);
    return rc;
}

/* Open one sealed blob in place; the error names what it was. */
static int
s_open(const fl_datakey_t *dk, const char *purpose, const char *what, const char *fedid,
       int64_t round, const uint8_t digest[32], uint8_t *buf, size_t len, size_t *ptlen)
{
    uint8_t ad[FL_SEAL_AD_MAX];
    size_t adlen = 0;
    int rc = fl_seal_ad(purpose, fedid, round, digest, ad, &adlen);
    if (rc == 0 && (rc = fl_unseal_inplace(dk, ad, adlen, buf, len, ptlen)) != 0)
        rc = fl_fail(rc, "%s of round %lld: %s", what, (long long)round, fl_errmsg());
    return rc;
}

int
coord_checkpoint_open(fl_store_t *store, const fl_datakey_t *dk, const char *fedid, int64_t round,
                      fl_checkpoint_info_t *info, uint8_t **model_p, size_t *model_len,
                      uint8_t **state_p, size_t *state_len)
{
    uint8_t *m = NULL, *st = NULL, digest[32];
    size_t mlen = 0, stlen = 0;
    int rc = fl_store_checkpoint_load(store, round, info, &m, &mlen, &st, &stlen);
    if (rc == 0)
        rc = s_open(dk, FL_SEAL_PURPOSE_MODEL, "checkpoint", fedid, info->round, info->digest, m,
                    mlen, &mlen);
    if (rc == 0 && st && stlen > 0)
        rc = s_open(dk, FL_SEAL_PURPOSE_STATE, "optimizer state", fedid, info->round,
                    info->digest, st, stlen, &stlen);
    if (rc == 0) {
        crypto_generichash(digest, 32, m, mlen, NULL, 0);
        if (sodium_memcmp(digest, info->digest, 32) != 0)
            rc = fl_fail(FL_ECRYPTO, "checkpoint of round %lld does not match its digest",
                         (long long)info->round);
    }
    if (rc != 0) {
        free(m);
        free(st);
        return rc;
    }
    *model_p = m;
    *model_len = mlen;
    *state_p = st;
    *state_len = st ? stlen : 0;
    return 0;
}

int
coord_audit(fl_store_t *store, const char *actor, const char *action, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    int rc = fl_audit_append(store, fl_wall_ms(), actor, action, detail, NULL);
    if (rc != 0)
        fl_error("cannot write the audit log", "action=%s reason=\"%s\"", action, fl_errmsg());
    return rc;
}

const char *
coord_local_actor(void)
{
    static char buf[96];
    struct passwd *pw = getpwuid(geteuid());
    snprintf(buf, sizeof buf, "local:%s", pw ? pw->pw_name : "unknown");
    return buf;
}
