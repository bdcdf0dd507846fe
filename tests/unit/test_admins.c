/*
 * test_admins.c — unit tests of the admin keys and roles of fl_store
 * (migration 2): add, look up, list, revoke, the key check the ZAP handler
 * uses, duplicates and bad fields; revoked names and keys stay taken.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_store.h"
#include "fl_util.h"
#include "testutil.h"

#define T0 1700000000000LL

static int
setup_dir(void **state)
{
    (void)state;
    return s_tmpdir_make("admins");
}

static fl_store_t *
s_store(const char *name)
{
    fl_store_t *s = NULL;
    assert_int_equal(fl_store_open(s_tmp_path(name), FL_STORE_CREATE, &s), 0);
    return s;
}

/* A fresh valid CURVE public key, Z85. */
static void
s_key(char out[41])
{
    char secret[41];
    assert_int_equal(zmq_curve_keypair(out, secret), 0);
}

typedef struct {
    int n;
    char names[8][64];
    bool revoked[8];
} s_seen_t;

static int
s_collect(const fl_admin_row_t *row, void *arg)
{
    s_seen_t *seen = arg;
    snprintf(seen->names[seen->n], 64, "%s", row->name);
    seen->revoked[seen->n++] = row->revoked;
    return 0;
}

static int
s_stop(const fl_admin_row_t *row, void *arg)
{
    (void)row;
    (*(int *)arg)++;
    return 1;
}

static void
test_admins(void **state)
{
    (void)state;
    fl_store_t *s = s_store("admins.db");
    char k1[41], k2[41], k3[41], role[16];
    fl_admin_row_t a;
    int64_t id1 = 0, id2 = 0;
    s_key(k1);
    s_key(k2);
    s_key(k3);

    assert_int_equal(fl_store_admin_add(s, "zoe", k1, FL_ADMIN_VIEWER, T0, &id1), 0);
    assert_int_equal(fl_store_admin_add(s, "alice", k2, FL_ADMIN_OPERATOR, T0 + 1, &id2), 0);
    assert_true(id1 > 0 && id2 > id1);

    assert_int_equal(fl_store_admin_get_by_key(s, k1, &a), 0);
    assert_int_equal(a.id, id1);
    assert_string_equal(a.name, "zoe");
    assert_string_equal(a.pubkey, k1);
    assert_string_equal(a.role, "viewer");
    assert_int_equal(a.created_ms, T0);
    assert_false(a.revoked);
    assert_int_equal(a.revoked_ms, 0);
    assert_int_equal(fl_store_admin_get_by_name(s, "alice", &a), 0);
    assert_string_equal(a.role, "operator");
    assert_int_equal(fl_store_admin_get_by_key(s, k3, &a), FL_ENOTFOUND);
    assert_non_null(strstr(fl_errmsg(), "no admin with public key"));
    assert_int_equal(fl_store_admin_get_by_name(s, "nobody", &a), FL_ENOTFOUND);
    assert_non_null(strstr(fl_errmsg(), "nobody"));

    /* The ZAP / authorisation check. */
    memset(role, 0, sizeof role);
    assert_int_equal(fl_store_admin_key_active(s, k1, role), 1);
    assert_string_equal(role, "viewer");
    assert_int_equal(fl_store_admin_key_active(s, k2, role), 1);
    assert_string_equal(role, "operator");
    assert_int_equal(fl_store_admin_key_active(s, k2, NULL), 1);
    assert_int_equal(fl_store_admin_key_active(s, k3, role), 0);
    assert_int_equal(fl_store_admin_key_active(s, "not a key", role), 0);
    assert_int_equal(fl_store_admin_key_active(s, NULL, role), 0);

    /* Duplicates. */
    assert_int_equal(fl_store_admin_add(s, "zoe", k3, FL_ADMIN_OPERATOR, T0, NULL), FL_EEXIST);
    assert_non_null(strstr(fl_errmsg(), "admin name 'zoe' is taken"));
    assert_int_equal(fl_store_admin_add(s, "bob", k1, FL_ADMIN_OPERATOR, T0, NULL), FL_EEXIST);
    assert_non_null(strstr(fl_errmsg(), "admin 'zoe'"));

    /* Bad fields. */
    assert_int_equal(fl_store_admin_add(s, "bob", k3, "root", T0, NULL), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "role 'root'"));
    assert_int_equal(fl_store_admin_add(s, "bob", k3, NULL, T0, NULL), FL_EINVAL);
    assert_int_equal(fl_store_admin_add(s, "bob", "short", FL_ADMIN_VIEWER, T0, NULL), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "public key"));
    assert_int_equal(fl_store_admin_add(s, "bad name", k3, FL_ADMIN_VIEWER, T0, NULL), FL_EINVAL);
    assert_non_null(strstr(fl_errmsg(), "admin name"));
    assert_int_equal(fl_store_admin_add(s, "", k3, FL_ADMIN_VIEWER, T0, NULL), FL_EINVAL);
    assert_int_equal(fl_store_admin_add(s, NULL, k3, FL_ADMIN_VIEWER, T0, NULL), FL_EINVAL);
    assert_true(fl_store_admin_role_ok("viewer"));
    assert_true(fl_store_admin_role_ok("operator"));
    assert_false(fl_store_admin_role_ok("Operator"));
    assert_false(fl_store_admin_role_ok(NULL));

    /* Revocation bites at once and is final. */
    assert_int_equal(fl_store_admin_revoke(s, "alice", T0 + 50), 0);
    assert_int_equal(fl_store_admin_key_active(s, k2, role), 0);
    assert_int_equal(fl_store_admin_get_by_key(s, k2, &a), 0);
    assert_true(a.revoked);
    assert_int_equal(a.revoked_ms, T0 + 50);
    assert_int_equal(fl_store_admin_revoke(s, "alice", T0 + 60), FL_ESTATE);
    assert_non_null(strstr(fl_errmsg(), "already revoked"));
    assert_int_equal(fl_store_admin_revoke(s, "nobody", T0), FL_ENOTFOUND);
    assert_int_equal(fl_store_admin_add(s, "alice", k3, FL_ADMIN_OPERATOR, T0, NULL), FL_EEXIST);
    assert_non_null(strstr(fl_errmsg(), "revoked"));
    assert_int_equal(fl_store_admin_add(s, "alice2", k2, FL_ADMIN_OPERATOR, T0, NULL), FL_EEXIST);
    assert_non_null(strstr(fl_errmsg(), "revoked"));
    /* The other admin is untouched. */
    assert_int_equal(fl_store_admin_key_active(s, k1, role), 1);

    /* Listing: by name, revoked ones included; a callback can stop it. */
    s_seen_t seen = {0};
    assert_int_equal(fl_store_admin_list(s, s_collect, &seen), 0);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.names[0], "alice");
    assert_true(seen.revoked[0]);
    assert_string_equal(seen.names[1], "zoe");
    assert_false(seen.revoked[1]);
    int calls = 0;
    assert_int_equal(fl_store_admin_list(s, s_stop, &calls), 0);
    assert_int_equal(calls, 1);

    /* Persisted. */
    char path[512];
    snprintf(path, sizeof path, "%s", fl_store_path(s));
    fl_store_destroy(&s);
    assert_int_equal(fl_store_open(path, FL_STORE_READONLY, &s), 0);
    assert_int_equal(fl_store_admin_key_active(s, k1, role), 1);
    assert_int_equal(fl_store_admin_key_active(s, k2, role), 0);
    fl_store_destroy(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admins),
    };
    return cmocka_run_group_tests(tests, setup_dir, s_tmpdir_teardown);
}
