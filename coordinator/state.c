/*
 * state.c — state-directory layout and checkpoint helpers. See state.h.
 */
#include "state.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

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
