/*
 * test_proto.c — unit tests of fl_proto, the coordinator <-> agent wire
 * protocol: round trips of every message type, golden bytes worked out by hand
 * from the msgpack spec, every rejection rule of docs/PROTOCOL.md with its
 * error detail, encoder refusals, data-frame checks, and a few thousand random
 * mutations and truncations of valid encodings (run under ASan by make asan).
 *
 * Malformed messages are built by re-packing a valid encoding with msgpack-c:
 * drop a key, replace a value with raw msgpack bytes given in hex, add a key or
 * duplicate one. The bytes in hex are written from the msgpack spec, not by an
 * encoder, so they are independent of the code under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "fl_proto.h"
#include "fl_rng.h"
#include "fl_util.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */

/* Parse hex digits (spaces ignored) into out; returns the byte count. */
static size_t
s_hex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v = 0;
        if (*p == ' ')
            continue;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else
            fail_msg("bad hex digit '%c'", *p);
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1);
    return n;
}

/* A message of `type` with every field set to a valid, non-trivial value. */
static void
s_full(fl_msg_t *m, fl_msg_type_t type)
{
    fl_msg_init(m, type);
    for (int i = 0; i < 32; i++)
        m->digest[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 64; i++)
        m->sig[i] = (uint8_t)(255 - i);
    switch (type) {
    case FL_MSG_HELLO:
        snprintf(m->version, sizeof m->version, "covey-agent/0.1.0");
        m->n_train = 60000, m->n_test = 10000, m->has_digest = true;
        break;
    case FL_MSG_GET:
        m->has_digest = true, m->offset = 3u << 20, m->length = FL_CHUNK_MAX;
        break;
    case FL_MSG_READY:
        m->round = 17, m->attempt = 2, m->n_samples = 1234, m->loss = 0.3125, m->acc = 0.875;
        m->has_digest = true, m->nbytes = 31400;
        break;
    case FL_MSG_UPD: m->round = UINT64_MAX, m->attempt = 1, m->offset = 1u << 20; break;
    case FL_MSG_EVALD:
        m->round = 5, m->attempt = 0, m->n_samples = 0, m->loss = 2.5, m->acc = 1.0;
        break;
    case FL_MSG_FAIL:
        m->round = 5, m->attempt = 3;
        snprintf(m->reason, sizeof m->reason, "model signature invalid: caf\xc3\xa9");
        break;
    case FL_MSG_WELCOME:
        snprintf(m->federation, sizeof m->federation, "fashion-mnist-eu");
        m->round = 42;
        break;
    case FL_MSG_TRAIN:
        m->round = 42, m->attempt = 1, m->has_digest = true, m->nbytes = 203560;
        snprintf(m->spec, sizeof m->spec, "mlp:784-256-10");
        m->epochs = 1000, m->batch = 65536, m->lr = 0.05;
        snprintf(m->optimizer, sizeof m->optimizer, "adam");
        m->momentum = 0.9, m->weight_decay = 1e-4, m->mu = 0.01;
        m->seed = 0x0123456789abcdefu, m->deadline_ms = 600000, m->has_sig = true;
        m->sa_n = 100, m->sa_idx = 99, m->sa_k = 16, m->sa_t = 6, m->sa_full = 0;
        m->sa_bits = 32, m->sa_levels = 65536, m->sa_dim = 50890, m->sa_clip = 1.5;
        m->sa_wmax = 1e5, m->has_nonce = true;
        memset(m->nonce, 0x3c, sizeof m->nonce);
        break;
    case FL_MSG_EVAL:
        m->round = 42, m->attempt = 0, m->has_digest = true, m->nbytes = 4;
        snprintf(m->spec, sizeof m->spec, "softmax:784-10");
        m->batch = 1, m->deadline_ms = FL_DEADLINE_MAX_MS, m->has_sig = true;
        break;
    case FL_MSG_CHUNK: m->has_digest = true, m->offset = 65536, m->total = 203560; break;
    case FL_MSG_PULL: m->round = 42, m->attempt = 1, m->offset = 65536, m->length = 4; break;
    case FL_MSG_ACK: m->round = 42, m->attempt = 9; break;
    case FL_MSG_REJECT:
        m->round = 41, m->attempt = 0;
        snprintf(m->reason, sizeof m->reason, "stale round 41 (current 42)");
        break;
    case FL_MSG_ERROR: snprintf(m->reason, sizeof m->reason, "send hello first"); break;
    case FL_MSG_ABORT:
        m->round = 42, m->attempt = 1;
        snprintf(m->reason, sizeof m->reason, "operator cancelled the round");
        break;
    case FL_MSG_ENROLL:
        m->has_secret = true;
        memset(m->secret, 0x5a, sizeof m->secret);
        snprintf(m->version, sizeof m->version, "0.1.0");
        break;
    case FL_MSG_ENROLLED:
        snprintf(m->federation, sizeof m->federation, "demo");
        snprintf(m->name, sizeof m->name, "edge-07");
        snprintf(m->endpoint, sizeof m->endpoint, "tcp://10.0.0.5:7700");
        break;
    case FL_MSG_ROTATE:
    case FL_MSG_ROTATED:
        snprintf(m->pubkey, sizeof m->pubkey, "rq:rM>}U?@Lns47E1%%kR.o@n%%FcmmsL/@{H8]yf7");
        break;
    case FL_MSG_SA_ADV:
        m->round = 42, m->attempt = 2, m->has_cpk = m->has_spk = true;
        memset(m->cpk, 0x11, sizeof m->cpk);
        memset(m->spk, 0x22, sizeof m->spk);
        break;
    case FL_MSG_SA_SHR:
    case FL_MSG_SA_SHARES:
    case FL_MSG_SA_KEYS:
    case FL_MSG_SA_MREQ:
    case FL_MSG_SA_UNMASK:
    case FL_MSG_SA_CHK: m->round = 42, m->attempt = 2; break;
    case FL_MSG_SA_SIG:
        m->round = 42, m->attempt = 2, m->has_sig = true;
        memset(m->sig, 0x33, sizeof m->sig);
        break;
    default: break;
    }
    /* the digest and signature bytes only where the type carries them */
    if (!m->has_digest)
        memset(m->digest, 0, sizeof m->digest);
    if (!m->has_sig)
        memset(m->sig, 0, sizeof m->sig);
    if (!m->has_secret)
        memset(m->secret, 0, sizeof m->secret);
}

static size_t
s_encode(const fl_msg_t *m, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    int rc = fl_msg_encode(m, buf, cap, &len);
    if (rc != 0)
        fail_msg("encode %s: %s", fl_msg_type_name(m->type), fl_errmsg());
    return len;
}

static bool
s_is_zeroed(const fl_msg_t *m)
{
    fl_msg_t z;
    fl_msg_init(&z, FL_MSG_NONE);
    return memcmp(&z, m, sizeof z) == 0;
}

/* Decode and expect failure with a detail containing `want`; also check that
 * the output is zeroed, whatever was in it before. */
static void
s_expect_reject(const uint8_t *buf, size_t len, const char *want)
{
    fl_msg_t out;
    memset(&out, 0xa5, sizeof out);
    int rc = fl_msg_decode(buf, len, &out);
    if (rc != FL_EPROTO)
        fail_msg("expected rejection with '%s', got rc %d (%s)", want, rc, fl_errmsg());
    if (!strstr(fl_errmsg(), want))
        fail_msg("detail '%s' does not contain '%s'", fl_errmsg(), want);
    assert_true(s_is_zeroed(&out));
}

static void
s_expect_reject_hex(const char *hex, const char *want)
{
    uint8_t buf[512];
    size_t n = s_hex(hex, buf, sizeof buf);
    s_expect_reject(buf, n, want);
}

typedef enum { OP_DROP, OP_SET, OP_ADD, OP_DUP } s_op_t;

/*
 * Re-pack the valid encoding of s_full(type) with one change: drop `key`, set
 * its value to the raw msgpack bytes `hex`, add `key` = hex at the end, or
 * repeat the entry `key` at the end. Returns the new length.
 */
static size_t
s_mutate(fl_msg_type_t type, s_op_t op, const char *key, const char *hex, uint8_t *out,
         size_t cap)
{
    fl_msg_t m;
    uint8_t enc[2048], raw[1024];
    size_t enc_len, raw_len = 0, off = 0, klen = strlen(key);
    msgpack_unpacked up;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bool found = false;

    s_full(&m, type);
    enc_len = s_encode(&m, enc, sizeof enc);
    if (hex)
        raw_len = s_hex(hex, raw, sizeof raw);
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, (const char *)enc, enc_len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    const msgpack_object_map *map = &up.data.via.map;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t n = map->size + (op == OP_DROP ? (size_t)-1 : op == OP_SET ? 0 : 1);
    msgpack_pack_map(&pk, n);
    const msgpack_object *dup_val = NULL;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        bool hit = k->via.str.size == klen && memcmp(k->via.str.ptr, key, klen) == 0;
        found |= hit;
        if (hit && op == OP_DROP)
            continue;
        msgpack_pack_object(&pk, *k);
        if (hit && op == OP_SET)
            msgpack_sbuffer_write(&sb, (const char *)raw, raw_len);
        else
            msgpack_pack_object(&pk, map->ptr[i].val);
        if (hit)
            dup_val = &map->ptr[i].val;
    }
    if (op == OP_ADD || op == OP_DUP) {
        msgpack_pack_str_with_body(&pk, key, klen);
        if (op == OP_ADD)
            msgpack_sbuffer_write(&sb, (const char *)raw, raw_len);
        else
            msgpack_pack_object(&pk, *dup_val);
    }
    if (op != OP_ADD && !found)
        fail_msg("%s has no key '%s'", fl_msg_type_name(type), key);
    assert_true(sb.size <= cap);
    memcpy(out, sb.data, sb.size);
    n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&up);
    return n;
}

/* A msgpack str of n copies of 'a', as hex ("d9 NN 6161..."). */
static const char *
s_str_hex(size_t n)
{
    static char hex[1200];
    size_t o = 0;
    assert_true(n * 2 + 8 < sizeof hex);
    o += (size_t)snprintf(hex, sizeof hex, n < 256 ? "d9%02zx" : "da%04zx", n);
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(hex + o, sizeof hex - o, "61");
    return hex;
}

/* A msgpack bin of n bytes 0x11, as hex. */
static const char *
s_bin_hex(size_t n)
{
    static char hex[300];
    size_t o = 0;
    assert_true(n * 2 + 8 < sizeof hex);
    o += (size_t)snprintf(hex, sizeof hex, "c4%02zx", n);
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(hex + o, sizeof hex - o, "11");
    return hex;
}

/* ------------------------------------------------------------------------ */
/* Names, directions, round trips                                             */

static void
test_type_names_and_directions(void **state)
{
    (void)state;
    static const char *names[] = {"none", "hello", "ping", "get", "ready", "upd", "evald",
                                  "fail", "welcome", "train", "eval", "chunk", "pull", "ack",
                                  "reject", "error", "abort", "enroll", "enrolled", "rotate",
                                  "rotated", "sa.adv", "sa.shr", "sa.shares", "sa.keys",
                                  "sa.mreq", "sa.unmask", "sa.chk", "sa.sig"};
    assert_int_equal(sizeof names / sizeof names[0], FL_MSG_LAST + 1);
    for (int t = 0; t <= FL_MSG_LAST; t++) {
        assert_string_equal(fl_msg_type_name((fl_msg_type_t)t), names[t]);
        assert_int_equal(fl_msg_from_agent((fl_msg_type_t)t),
                         (t >= FL_MSG_HELLO && t <= FL_MSG_FAIL) || t == FL_MSG_ENROLL ||
                             t == FL_MSG_ROTATE || (t >= FL_MSG_SA_ADV && t <= FL_MSG_SA_SHARES) ||
                             t == FL_MSG_SA_SIG);
        assert_int_equal(fl_msg_has_data((fl_msg_type_t)t),
                         t == FL_MSG_CHUNK || t == FL_MSG_UPD ||
                             (t >= FL_MSG_SA_SHR && t <= FL_MSG_SA_CHK));
    }
    assert_string_equal(fl_msg_type_name((fl_msg_type_t)99), "unknown");
    assert_string_equal(fl_msg_type_name((fl_msg_type_t)-1), "unknown");
    assert_false(fl_msg_from_agent((fl_msg_type_t)99));
    assert_false(fl_msg_has_data((fl_msg_type_t)99));
}

static void
s_round_trip(const fl_msg_t *m)
{
    uint8_t buf[2048];
    size_t len = s_encode(m, buf, sizeof buf);
    fl_msg_t out;
    memset(&out, 0x5a, sizeof out);
    if (fl_msg_decode(buf, len, &out) != 0)
        fail_msg("decode %s: %s", fl_msg_type_name(m->type), fl_errmsg());
    if (memcmp(m, &out, sizeof out) != 0)
        fail_msg("round trip of %s changed the message", fl_msg_type_name(m->type));
    /* canonical: re-encoding gives the same bytes */
    uint8_t buf2[2048];
    size_t len2 = s_encode(&out, buf2, sizeof buf2);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
}

static void
test_round_trip_every_type(void **state)
{
    (void)state;
    fl_msg_t m;
    for (int t = FL_MSG_HELLO; t <= FL_MSG_LAST; t++) {
        s_full(&m, (fl_msg_type_t)t);
        s_round_trip(&m);
    }
    /* the optional parts absent: hello without a model, train/eval unsigned */
    s_full(&m, FL_MSG_HELLO);
    m.has_digest = false;
    memset(m.digest, 0, sizeof m.digest);
    s_round_trip(&m);
    s_full(&m, FL_MSG_TRAIN);
    m.has_sig = false;
    memset(m.sig, 0, sizeof m.sig);
    s_round_trip(&m);
    /* boundary values */
    s_full(&m, FL_MSG_TRAIN);
    m.epochs = 1, m.batch = 1, m.momentum = 0, m.weight_decay = 0, m.mu = 0, m.lr = 1e-300;
    m.deadline_ms = 1, m.nbytes = FL_MODEL_MAX, m.seed = UINT64_MAX;
    snprintf(m.optimizer, sizeof m.optimizer, "sgd");
    memset(m.spec, 'x', sizeof m.spec - 1);
    s_round_trip(&m);
    s_full(&m, FL_MSG_READY);
    m.loss = 0, m.acc = 0, m.n_samples = 1, m.nbytes = 4;
    s_round_trip(&m);
    s_full(&m, FL_MSG_CHUNK);
    m.offset = FL_MODEL_MAX - 1, m.total = FL_MODEL_MAX;
    s_round_trip(&m);
    s_full(&m, FL_MSG_FAIL);
    memset(m.reason, 'r', sizeof m.reason - 1);
    s_round_trip(&m);
}

/* ------------------------------------------------------------------------ */
/* Golden bytes, worked out by hand from the msgpack spec                     */

static void
s_expect_golden(const fl_msg_t *m, const char *hex)
{
    uint8_t want[256], got[256];
    size_t n = s_hex(hex, want, sizeof want);
    size_t len = s_encode(m, got, sizeof got);
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    fl_msg_t back;
    assert_int_equal(fl_msg_decode(want, n, &back), 0);
    assert_memory_equal(&back, m, sizeof back);
}

static void
test_golden_bytes(void **state)
{
    (void)state;
    fl_msg_t m;

    /* {"v": 1, "t": "ping"}: fixmap(2), fixstr "v", fixint 1, fixstr "t", fixstr "ping" */
    fl_msg_init(&m, FL_MSG_PING);
    s_expect_golden(&m, "82 a176 01 a174 a470696e67");

    /* {"v":1, "t":"get", "digest": bin8(32) 00..1f, "offset": uint32 1048576, "length": uint8 200} */
    fl_msg_init(&m, FL_MSG_GET);
    m.has_digest = true;
    for (int i = 0; i < 32; i++)
        m.digest[i] = (uint8_t)i;
    m.offset = 1048576, m.length = 200;
    s_expect_golden(&m, "85 a176 01 a174 a3676574"
                        " a6646967657374 c420 000102030405060708090a0b0c0d0e0f"
                        "101112131415161718191a1b1c1d1e1f"
                        " a66f6666736574 ce00100000"
                        " a66c656e677468 ccc8");

    /* evald: uint16 300; floats always as float64 (0.5 = 3fe0.., 0.75 = 3fe8..) */
    fl_msg_init(&m, FL_MSG_EVALD);
    m.round = 3, m.attempt = 0, m.n_samples = 300, m.loss = 0.5, m.acc = 0.75;
    s_expect_golden(&m, "87 a176 01 a174 a56576616c64"
                        " a5726f756e64 03 a7617474656d7074 00"
                        " a96e5f73616d706c6573 cd012c"
                        " a46c6f7373 cb3fe0000000000000"
                        " a3616363 cb3fe8000000000000");

    /* hello without a model: the canonical form writes "model": nil */
    fl_msg_init(&m, FL_MSG_HELLO);
    snprintf(m.version, sizeof m.version, "x");
    m.n_train = 0, m.n_test = 65535;
    s_expect_golden(&m, "86 a176 01 a174 a568656c6c6f"
                        " a776657273696f6e a178"
                        " a76e5f747261696e 00 a66e5f74657374 cdffff"
                        " a56d6f64656c c0");
}

/* Encodings another msgpack library might produce: other key order, other
 * integer widths, float32, integers for floats, absent optional fields. */
static void
test_decode_foreign_encodings(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t n;
    fl_msg_t m;

    /* {"t":"ack", "attempt": int8 5, "round": uint16 256, "v": uint64 1} */
    n = s_hex("84 a174 a361636b a7617474656d7074 d005 a5726f756e64 cd0100"
              " a176 cf0000000000000001", buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_int_equal(m.type, FL_MSG_ACK);
    assert_int_equal(m.round, 256);
    assert_int_equal(m.attempt, 5);

    /* evald with loss float32 0.5, acc as integer 1, n_samples 0 */
    n = s_hex("87 a176 01 a174 a56576616c64 a5726f756e64 01 a7617474656d7074 02"
              " a96e5f73616d706c6573 00 a46c6f7373 ca3f000000 a3616363 01", buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_true(m.loss == 0.5);
    assert_true(m.acc == 1.0);
    assert_int_equal(m.n_samples, 0);

    /* integers for floats in "train": lr 3 (fixint), momentum 0, mu -0 is not an int */
    n = s_mutate(FL_MSG_TRAIN, OP_SET, "lr", "03", buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_true(m.lr == 3.0);
    n = s_mutate(FL_MSG_TRAIN, OP_SET, "momentum", "d000", buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_true(m.momentum == 0.0);
    /* an integer exactly 2^53 is still exact */
    n = s_mutate(FL_MSG_TRAIN, OP_SET, "lr", "cf0020000000000000", buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_true(m.lr == 9007199254740992.0);

    /* hello: "model" nil or absent both mean no model */
    n = s_mutate(FL_MSG_HELLO, OP_SET, "model", "c0", buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_false(m.has_digest);
    n = s_mutate(FL_MSG_HELLO, OP_DROP, "model", NULL, buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_false(m.has_digest);
    n = s_mutate(FL_MSG_HELLO, OP_SET, "model", s_bin_hex(32), buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_true(m.has_digest);
    assert_int_equal(m.digest[31], 0x11);

    /* train without "sig" */
    n = s_mutate(FL_MSG_TRAIN, OP_DROP, "sig", NULL, buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_false(m.has_sig);

    /* strings as str8 / str16 and bins as bin16 are fine; UTF-8 is fine */
    n = s_mutate(FL_MSG_ERROR, OP_SET, "reason", "da0005 636166c3a9", buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_string_equal(m.reason, "caf\xc3\xa9");
    n = s_mutate(FL_MSG_GET, OP_SET, "digest",
                 "c50020 0000000000000000000000000000000000000000000000000000000000000001", buf,
                 sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_int_equal(m.digest[31], 1);
}

/* ------------------------------------------------------------------------ */
/* Rejections                                                                 */

static void
test_reject_framing(void **state)
{
    (void)state;
    uint8_t big[FL_HDR_MAX + 1];
    uint8_t buf[64];
    size_t n;

    s_expect_reject(NULL, 0, "message: empty header frame");
    s_expect_reject_hex("91 01", "message: not a msgpack map (got array)");
    s_expect_reject_hex("c0", "message: not a msgpack map (got nil)");
    s_expect_reject_hex("a4 70696e67", "not a msgpack map (got str)");
    s_expect_reject_hex("c1", "message: invalid msgpack byte 0xc1 at 0");
    s_expect_reject_hex("82 a176 01 a174", "message: msgpack truncated");
    s_expect_reject_hex("82 a176 01 a174 a470696e", "message: msgpack truncated");
    s_expect_reject_hex("82 a176 01 a174 a470696e67 c0", "message: 1 trailing bytes");
    s_expect_reject_hex("82 a176 01 a174 a470696e67 82", "message: 1 trailing bytes");
    /* containers that announce more elements than the frame can hold are
     * refused before msgpack-c allocates for them (ASan would flag the 64 GiB
     * request otherwise) */
    s_expect_reject_hex("dd ffffffff", "announces 4294967295 elements but 0 bytes remain");
    s_expect_reject_hex("df ffffffff 01", "announces 8589934590 elements");
    s_expect_reject_hex("83 a176 01 a174 a470696e67 a178 dd 10000000 c0c0",
                        "announces 268435456 elements");
    s_expect_reject_hex("c6 ffffffff 00", "message: msgpack truncated at byte 0");
    /* nesting */
    s_expect_reject_hex("83 a176 01 a174 a470696e67 a178 919191919191919191 c0",
                        "message: msgpack nested deeper than 8 levels");
    /* non-string map key */
    s_expect_reject_hex("83 a176 01 a174 a470696e67 01 01", "ping: map key #2 is not a string");
    s_expect_reject_hex("83 a176 01 a174 a470696e67 c403787878 01",
                        "ping: map key #2 is not a string (got bin)");

    /* over FL_HDR_MAX: refused before parsing, whatever the bytes */
    memset(big, 0, sizeof big);
    s_expect_reject(big, sizeof big, "exceeds FL_HDR_MAX (65536)");
    /* exactly FL_HDR_MAX: parsed (and refused for its unknown field) */
    n = s_hex("83 a176 01 a174 a470696e67 a178 db", buf, sizeof buf);
    memcpy(big, buf, n);
    uint32_t slen = (uint32_t)(FL_HDR_MAX - n - 4);
    big[n] = (uint8_t)(slen >> 24), big[n + 1] = (uint8_t)(slen >> 16);
    big[n + 2] = (uint8_t)(slen >> 8), big[n + 3] = (uint8_t)slen;
    memset(big + n + 4, 'a', slen);
    s_expect_reject(big, FL_HDR_MAX, "ping: unknown field 'x'");
}

typedef struct {
    fl_msg_type_t type;
    s_op_t op;
    const char *key;
    const char *hex; /* raw msgpack value (OP_SET, OP_ADD) */
    const char *want;
} s_case_t;

static const s_case_t s_cases[] = {
    /* version and type */
    {FL_MSG_PING, OP_SET, "v", "02", "message: unsupported protocol version 2 (this side speaks 1)"},
    {FL_MSG_PING, OP_SET, "v", "00", "message: unsupported protocol version 0"},
    {FL_MSG_PING, OP_SET, "v", "a131", "message: field 'v' must be an unsigned integer (got str)"},
    {FL_MSG_PING, OP_SET, "v", "ff", "message: field 'v' must be an unsigned integer (got negative"},
    {FL_MSG_PING, OP_SET, "v", "cb3ff0000000000000", "field 'v' must be an unsigned integer (got float64)"},
    {FL_MSG_PING, OP_DROP, "v", NULL, "message: field 'v' missing"},
    {FL_MSG_PING, OP_DROP, "t", NULL, "message: field 't' missing"},
    {FL_MSG_PING, OP_SET, "t", "a3666f6f", "message: unknown type 'foo'"},
    {FL_MSG_PING, OP_SET, "t", "a450494e47", "message: unknown type 'PING'"},
    {FL_MSG_PING, OP_SET, "t", "a0", "message: unknown type ''"},
    {FL_MSG_PING, OP_SET, "t", "a5 70696e6700", "message: unknown type 'ping\\x00'"},
    {FL_MSG_PING, OP_SET, "t", "a8 73612e7365747570", "unknown type 'sa.setup'"},
    {FL_MSG_PING, OP_SET, "t", "01", "message: field 't' must be a string (got unsigned integer)"},
    {FL_MSG_PING, OP_SET, "t", "c40470696e67", "message: field 't' must be a string (got bin)"},
    {FL_MSG_PING, OP_DUP, "t", NULL, "message: duplicate field 't'"},
    {FL_MSG_PING, OP_DUP, "v", NULL, "message: duplicate field 'v'"},
    /* unknown and duplicate fields */
    {FL_MSG_PING, OP_ADD, "bogus", "01", "ping: unknown field 'bogus'"},
    {FL_MSG_PING, OP_ADD, "lr", "01", "ping: unknown field 'lr'"},
    {FL_MSG_PING, OP_ADD, "b\x01'", "01", "ping: unknown field 'b\\x01\\x27'"},
    {FL_MSG_READY, OP_DUP, "round", NULL, "ready: duplicate field 'round'"},
    {FL_MSG_HELLO, OP_DUP, "model", NULL, "hello: duplicate field 'model'"},
    {FL_MSG_ACK, OP_ADD, "digest", "c0", "ack: unknown field 'digest'"},
    /* missing required fields */
    {FL_MSG_HELLO, OP_DROP, "version", NULL, "hello: field 'version' missing"},
    {FL_MSG_GET, OP_DROP, "digest", NULL, "get: field 'digest' missing"},
    {FL_MSG_READY, OP_DROP, "nbytes", NULL, "ready: field 'nbytes' missing"},
    {FL_MSG_UPD, OP_DROP, "offset", NULL, "upd: field 'offset' missing"},
    {FL_MSG_EVALD, OP_DROP, "acc", NULL, "evald: field 'acc' missing"},
    {FL_MSG_FAIL, OP_DROP, "reason", NULL, "fail: field 'reason' missing"},
    {FL_MSG_WELCOME, OP_DROP, "federation", NULL, "welcome: field 'federation' missing"},
    {FL_MSG_TRAIN, OP_DROP, "seed", NULL, "train: field 'seed' missing"},
    {FL_MSG_TRAIN, OP_DROP, "digest", NULL, "train: field 'digest' missing"},
    {FL_MSG_EVAL, OP_DROP, "deadline_ms", NULL, "eval: field 'deadline_ms' missing"},
    {FL_MSG_CHUNK, OP_DROP, "total", NULL, "chunk: field 'total' missing"},
    {FL_MSG_PULL, OP_DROP, "length", NULL, "pull: field 'length' missing"},
    {FL_MSG_ACK, OP_DROP, "attempt", NULL, "ack: field 'attempt' missing"},
    {FL_MSG_REJECT, OP_DROP, "round", NULL, "reject: field 'round' missing"},
    {FL_MSG_ERROR, OP_DROP, "reason", NULL, "error: field 'reason' missing"},
    {FL_MSG_ABORT, OP_DROP, "reason", NULL, "abort: field 'reason' missing"},
    /* wrong msgpack type */
    {FL_MSG_GET, OP_SET, "offset", "a131", "get: field 'offset' must be an unsigned integer (got str)"},
    {FL_MSG_HELLO, OP_SET, "n_train", "ff", "hello: field 'n_train' must be an unsigned integer (got negative integer)"},
    {FL_MSG_HELLO, OP_SET, "n_test", "d3ffffffffffffffff", "field 'n_test' must be an unsigned integer (got negative integer)"},
    {FL_MSG_HELLO, OP_SET, "n_train", "cb3ff0000000000000", "field 'n_train' must be an unsigned integer (got float64)"},
    {FL_MSG_ACK, OP_SET, "round", "ca3f800000", "ack: field 'round' must be an unsigned integer (got float32)"},
    {FL_MSG_HELLO, OP_SET, "n_train", "9101", "field 'n_train' must be an unsigned integer (got array)"},
    {FL_MSG_WELCOME, OP_SET, "round", "c3", "welcome: field 'round' must be an unsigned integer (got bool)"},
    {FL_MSG_ACK, OP_SET, "attempt", "d40100", "ack: field 'attempt' must be an unsigned integer (got ext)"},
    {FL_MSG_ACK, OP_SET, "attempt", "80", "field 'attempt' must be an unsigned integer (got map)"},
    {FL_MSG_ACK, OP_SET, "attempt", "c0", "field 'attempt' must be an unsigned integer (got nil)"},
    {FL_MSG_READY, OP_SET, "loss", "a3302e31", "ready: field 'loss' must be a number (got str)"},
    {FL_MSG_TRAIN, OP_SET, "lr", "c2", "train: field 'lr' must be a number (got bool)"},
    {FL_MSG_TRAIN, OP_SET, "lr", "cf0020000000000001", "train: field 'lr' must be a number; integers beyond 2^53 are refused"},
    {FL_MSG_ABORT, OP_SET, "reason", "c403616263", "abort: field 'reason' must be a string (got bin)"},
    {FL_MSG_HELLO, OP_SET, "version", "01", "hello: field 'version' must be a string (got unsigned integer)"},
    {FL_MSG_GET, OP_SET, "digest", "c0", "get: field 'digest' must be a 32-byte bin (got nil)"},
    {FL_MSG_HELLO, OP_SET, "model", "a3616263", "hello: field 'model' must be a 32-byte bin or nil (got str)"},
    {FL_MSG_TRAIN, OP_SET, "sig", "c0", "train: field 'sig' must be a 64-byte bin (got nil)"},
    /* strings */
    {FL_MSG_HELLO, OP_SET, "version", "a0", "hello: field 'version' must not be empty"},
    {FL_MSG_HELLO, OP_SET, "version", "a3610062", "hello: field 'version' must not contain NUL or control characters"},
    {FL_MSG_FAIL, OP_SET, "reason", "a3610a62", "fail: field 'reason' must not contain NUL or control characters"},
    {FL_MSG_FAIL, OP_SET, "reason", "a21b5b", "must not contain NUL or control characters"},
    {FL_MSG_FAIL, OP_SET, "reason", "a2c29b", "must not contain NUL or control characters"},
    {FL_MSG_FAIL, OP_SET, "reason", "a17f", "must not contain NUL or control characters"},
    {FL_MSG_FAIL, OP_SET, "reason", "a2c328", "fail: field 'reason' must be valid UTF-8"},
    {FL_MSG_FAIL, OP_SET, "reason", "a2c0af", "must be valid UTF-8"},           /* overlong '/' */
    {FL_MSG_FAIL, OP_SET, "reason", "a3eda080", "must be valid UTF-8"},         /* surrogate */
    {FL_MSG_FAIL, OP_SET, "reason", "a4f4908080", "must be valid UTF-8"},       /* > U+10FFFF */
    {FL_MSG_FAIL, OP_SET, "reason", "a2e282", "must be valid UTF-8"},           /* cut short */
    {FL_MSG_TRAIN, OP_SET, "optimizer", "a7726d7370726f70", "train: field 'optimizer' must be \"sgd\" or \"adam\" (got 'rmsprop')"},
    {FL_MSG_TRAIN, OP_SET, "optimizer", "a3534744", "must be \"sgd\" or \"adam\" (got 'SGD')"},
    /* bins of the wrong length */
    {FL_MSG_GET, OP_SET, "digest", "c40100", "get: field 'digest' must be a 32-byte bin (got 1 bytes)"},
    {FL_MSG_TRAIN, OP_SET, "digest", "c400", "train: field 'digest' must be a 32-byte bin (got 0 bytes)"},
    /* non-finite floats */
    {FL_MSG_TRAIN, OP_SET, "lr", "cb7ff8000000000000", "train: field 'lr' must be a finite number > 0 (got nan)"},
    {FL_MSG_TRAIN, OP_SET, "lr", "cb7ff0000000000000", "train: field 'lr' must be a finite number > 0 (got inf)"},
    {FL_MSG_READY, OP_SET, "loss", "ca7f800000", "ready: field 'loss' must be a finite number >= 0 (got inf)"},
    {FL_MSG_READY, OP_SET, "acc", "ca7fc00000", "ready: field 'acc' must be a number in [0, 1] (got nan)"},
    {FL_MSG_TRAIN, OP_SET, "mu", "cbfff0000000000000", "train: field 'mu' must be a finite number >= 0 (got -inf)"},
    {FL_MSG_TRAIN, OP_SET, "weight_decay", "cb7ff0000000000000", "train: field 'weight_decay' must be a finite number >= 0"},
    {FL_MSG_TRAIN, OP_SET, "momentum", "cb7ff8000000000001", "train: field 'momentum' must be a number in [0, 1)"},
    {FL_MSG_EVALD, OP_SET, "loss", "cb7ff8000000000000", "evald: field 'loss' must be a finite number >= 0"},
    /* out-of-range values */
    {FL_MSG_TRAIN, OP_SET, "lr", "00", "train: field 'lr' must be a finite number > 0 (got 0)"},
    {FL_MSG_TRAIN, OP_SET, "lr", "cbbff0000000000000", "train: field 'lr' must be a finite number > 0 (got -1)"},
    {FL_MSG_READY, OP_SET, "loss", "cbbfb999999999999a", "ready: field 'loss' must be a finite number >= 0 (got -0.1)"},
    {FL_MSG_READY, OP_SET, "acc", "cb3ff8000000000000", "ready: field 'acc' must be a number in [0, 1] (got 1.5)"},
    {FL_MSG_EVALD, OP_SET, "acc", "ff", "evald: field 'acc' must be a number in [0, 1] (got -1)"},
    {FL_MSG_TRAIN, OP_SET, "momentum", "cb3ff0000000000000", "train: field 'momentum' must be a number in [0, 1) (got 1)"},
    {FL_MSG_TRAIN, OP_SET, "weight_decay", "ff", "train: field 'weight_decay' must be a finite number >= 0 (got -1)"},
    {FL_MSG_TRAIN, OP_SET, "epochs", "00", "train: field 'epochs' must be in 1..1000 (got 0)"},
    {FL_MSG_TRAIN, OP_SET, "epochs", "cd03e9", "train: field 'epochs' must be in 1..1000 (got 1001)"},
    {FL_MSG_TRAIN, OP_SET, "batch", "00", "train: field 'batch' must be in 1..65536 (got 0)"},
    {FL_MSG_EVAL, OP_SET, "batch", "ce00010001", "eval: field 'batch' must be in 1..65536 (got 65537)"},
    {FL_MSG_TRAIN, OP_SET, "deadline_ms", "00", "train: field 'deadline_ms' must be in 1..2592000000 (got 0)"},
    {FL_MSG_EVAL, OP_SET, "deadline_ms", "ce9a7ec801", "eval: field 'deadline_ms' must be in 1..2592000000 (got 2592000001)"},
    {FL_MSG_TRAIN, OP_SET, "nbytes", "06", "train: field 'nbytes' must be a multiple of 4 (got 6)"},
    {FL_MSG_TRAIN, OP_SET, "nbytes", "00", "train: field 'nbytes' must be in 4..8589934592 (got 0)"},
    {FL_MSG_READY, OP_SET, "nbytes", "cf0000000200000004", "ready: field 'nbytes' must be in 4..8589934592 (got 8589934596)"},
    {FL_MSG_READY, OP_SET, "n_samples", "00", "ready: field 'n_samples' must be >= 1 (got 0)"},
    {FL_MSG_GET, OP_SET, "length", "00", "get: field 'length' must be in 1..4194304 (got 0)"},
    {FL_MSG_GET, OP_SET, "length", "ce00400001", "get: field 'length' must be in 1..4194304 (got 4194305)"},
    {FL_MSG_GET, OP_SET, "offset", "cf0000000200000000", "get: field 'offset' must be in 0..8589934591 (got 8589934592)"},
    {FL_MSG_UPD, OP_SET, "offset", "02", "upd: field 'offset' must be a multiple of 4 (got 2)"},
    {FL_MSG_PULL, OP_SET, "length", "06", "pull: field 'length' must be a multiple of 4 (got 6)"},
    {FL_MSG_PULL, OP_SET, "length", "00", "pull: field 'length' must be in 4..4194304 (got 0)"},
    {FL_MSG_CHUNK, OP_SET, "offset", "ce00031b28", "chunk: field 'offset' must be < total 203560 (got 203560)"},
    {FL_MSG_CHUNK, OP_SET, "total", "00", "chunk: field 'total' must be in 4..8589934592 (got 0)"},
    {FL_MSG_CHUNK, OP_SET, "total", "ce00031b29", "chunk: field 'total' must be a multiple of 4 (got 203561)"},
};

static void
s_run_case(const s_case_t *c)
{
    uint8_t buf[2048];
    size_t n = s_mutate(c->type, c->op, c->key, c->hex, buf, sizeof buf);
    s_expect_reject(buf, n, c->want);
}

static void
test_reject_fields(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        if (!s_cases[i].want)
            continue;
        s_run_case(&s_cases[i]);
    }
    /* cases whose values are long: a bin of n bytes ('b') or a str of n 'a's ('s') */
    static const struct {
        s_case_t c;
        char gen;
        size_t n;
    } more[] = {
        {{FL_MSG_TRAIN, OP_ADD, "model", NULL, "train: unknown field 'model'"}, 'b', 32},
        {{FL_MSG_GET, OP_SET, "digest", NULL, "get: field 'digest' must be a 32-byte bin (got 31 bytes)"}, 'b', 31},
        {{FL_MSG_READY, OP_SET, "digest", NULL, "ready: field 'digest' must be a 32-byte bin (got 33 bytes)"}, 'b', 33},
        {{FL_MSG_TRAIN, OP_SET, "sig", NULL, "train: field 'sig' must be a 64-byte bin (got 63 bytes)"}, 'b', 63},
        {{FL_MSG_EVAL, OP_SET, "sig", NULL, "eval: field 'sig' must be a 64-byte bin (got 65 bytes)"}, 'b', 65},
        {{FL_MSG_HELLO, OP_SET, "model", NULL, "hello: field 'model' must be a 32-byte bin (got 64 bytes)"}, 'b', 64},
        {{FL_MSG_READY, OP_SET, "digest", NULL, "ready: field 'digest' must be a 32-byte bin (got str)"}, 's', 32},
        {{FL_MSG_HELLO, OP_SET, "version", NULL, "hello: field 'version' must be at most 31 bytes (got 32)"}, 's', 32},
        {{FL_MSG_WELCOME, OP_SET, "federation", NULL, "welcome: field 'federation' must be at most 63 bytes (got 64)"}, 's', 64},
        {{FL_MSG_TRAIN, OP_SET, "spec", NULL, "train: field 'spec' must be at most 127 bytes (got 128)"}, 's', 128},
        {{FL_MSG_TRAIN, OP_SET, "optimizer", NULL, "train: field 'optimizer' must be at most 15 bytes (got 16)"}, 's', 16},
        {{FL_MSG_FAIL, OP_SET, "reason", NULL, "fail: field 'reason' must be at most 255 bytes (got 256)"}, 's', 256},
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        s_case_t c = more[i].c;
        c.hex = more[i].gen == 'b' ? s_bin_hex(more[i].n) : s_str_hex(more[i].n);
        s_run_case(&c);
    }
    /* and the longest allowed lengths pass */
    uint8_t buf[2048];
    fl_msg_t m;
    size_t n = s_mutate(FL_MSG_FAIL, OP_SET, "reason", s_str_hex(255), buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_int_equal(strlen(m.reason), 255);
    n = s_mutate(FL_MSG_HELLO, OP_SET, "version", s_str_hex(31), buf, sizeof buf);
    assert_int_equal(fl_msg_decode(buf, n, &m), 0);
    assert_int_equal(strlen(m.version), 31);
}

/* ------------------------------------------------------------------------ */
/* Encoder refusals                                                           */

static void
s_expect_encode_fail(const fl_msg_t *m, int code, const char *want)
{
    uint8_t buf[2048];
    size_t len = 12345;
    int rc = fl_msg_encode(m, buf, sizeof buf, &len);
    if (rc != code)
        fail_msg("expected encode rc %d ('%s'), got %d (%s)", code, want, rc, fl_errmsg());
    if (!strstr(fl_errmsg(), want))
        fail_msg("detail '%s' does not contain '%s'", fl_errmsg(), want);
    assert_int_equal(len, 12345); /* untouched */
}

static void
test_encode_refuses_invalid(void **state)
{
    (void)state;
    fl_msg_t m;

    fl_msg_init(&m, FL_MSG_NONE);
    s_expect_encode_fail(&m, FL_EINVAL, "encode: invalid message type 0");
    m.type = (fl_msg_type_t)77;
    s_expect_encode_fail(&m, FL_EINVAL, "encode: invalid message type 77");

    s_full(&m, FL_MSG_TRAIN);
    m.lr = NAN;
    s_expect_encode_fail(&m, FL_EINVAL, "train: field 'lr' must be a finite number > 0");
    s_full(&m, FL_MSG_TRAIN);
    m.momentum = 1.0;
    s_expect_encode_fail(&m, FL_EINVAL, "train: field 'momentum' must be a number in [0, 1)");
    s_full(&m, FL_MSG_TRAIN);
    m.has_digest = false;
    s_expect_encode_fail(&m, FL_EINVAL, "train: field 'digest' missing");
    s_full(&m, FL_MSG_TRAIN);
    snprintf(m.optimizer, sizeof m.optimizer, "sgdx");
    s_expect_encode_fail(&m, FL_EINVAL, "train: field 'optimizer' must be \"sgd\" or \"adam\"");
    s_full(&m, FL_MSG_TRAIN);
    m.epochs = 0;
    s_expect_encode_fail(&m, FL_EINVAL, "train: field 'epochs' must be in 1..1000 (got 0)");
    s_full(&m, FL_MSG_TRAIN);
    m.spec[0] = '\0';
    s_expect_encode_fail(&m, FL_EINVAL, "train: field 'spec' must not be empty");
    s_full(&m, FL_MSG_HELLO);
    memset(m.version, 'a', sizeof m.version);
    s_expect_encode_fail(&m, FL_EINVAL, "hello: field 'version' is not NUL-terminated within 32");
    s_full(&m, FL_MSG_ERROR);
    snprintf(m.reason, sizeof m.reason, "line one\nline two");
    s_expect_encode_fail(&m, FL_EINVAL, "error: field 'reason' must not contain NUL or control");
    s_full(&m, FL_MSG_ERROR);
    snprintf(m.reason, sizeof m.reason, "bad \xff byte");
    s_expect_encode_fail(&m, FL_EINVAL, "error: field 'reason' must be valid UTF-8");
    s_full(&m, FL_MSG_CHUNK);
    m.offset = m.total;
    s_expect_encode_fail(&m, FL_EINVAL, "chunk: field 'offset' must be < total");
    s_full(&m, FL_MSG_PULL);
    m.length = 6;
    s_expect_encode_fail(&m, FL_EINVAL, "pull: field 'length' must be a multiple of 4");
    s_full(&m, FL_MSG_GET);
    m.length = 0;
    s_expect_encode_fail(&m, FL_EINVAL, "get: field 'length' must be in 1..4194304");
    s_full(&m, FL_MSG_READY);
    m.acc = -0.5;
    s_expect_encode_fail(&m, FL_EINVAL, "ready: field 'acc' must be a number in [0, 1]");
    s_full(&m, FL_MSG_READY);
    m.n_samples = 0;
    s_expect_encode_fail(&m, FL_EINVAL, "ready: field 'n_samples' must be >= 1");

    /* fields of other types are ignored, not validated */
    s_full(&m, FL_MSG_PING);
    m.lr = NAN, m.epochs = 0;
    uint8_t buf[64];
    assert_int_equal(s_encode(&m, buf, sizeof buf), 11);

    /* too small a buffer: FL_ERANGE for every capacity below the size */
    s_full(&m, FL_MSG_TRAIN);
    uint8_t big[2048];
    size_t need = s_encode(&m, big, sizeof big);
    for (size_t cap = 0; cap < need; cap++) {
        size_t len = 999;
        assert_int_equal(fl_msg_encode(&m, cap ? big : NULL, cap, &len), FL_ERANGE);
        assert_int_equal(len, 999);
    }
    assert_non_null(strstr(fl_errmsg(), "train: encoding does not fit"));
    size_t len = 0;
    assert_int_equal(fl_msg_encode(&m, big, need, &len), 0);
    assert_int_equal(len, need);
}

/* ------------------------------------------------------------------------ */
/* Data frames, reasons, descriptions                                         */

static void
test_check_data(void **state)
{
    (void)state;
    fl_msg_t m;

    s_full(&m, FL_MSG_CHUNK); /* offset 1 MiB of 203560? no: set a consistent one */
    m.offset = 200000, m.total = 203560;
    assert_int_equal(fl_msg_check_data(&m, 3560), 0);
    assert_int_equal(fl_msg_check_data(&m, 1), 0);
    assert_int_equal(fl_msg_check_data(&m, 3561), FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "chunk: data frame of 3561 bytes at offset 200000 runs past total 203560"));
    assert_int_equal(fl_msg_check_data(&m, 0), FL_EPROTO);
    assert_string_equal(fl_errmsg(), "chunk: data frame missing");
    m.offset = 0, m.total = FL_MODEL_MAX;
    assert_int_equal(fl_msg_check_data(&m, FL_CHUNK_MAX), 0);
    assert_int_equal(fl_msg_check_data(&m, FL_CHUNK_MAX + 1), FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "exceeds FL_CHUNK_MAX"));

    s_full(&m, FL_MSG_UPD);
    assert_int_equal(fl_msg_check_data(&m, 4), 0);
    assert_int_equal(fl_msg_check_data(&m, FL_CHUNK_MAX), 0);
    assert_int_equal(fl_msg_check_data(&m, 6), FL_EPROTO);
    assert_non_null(strstr(fl_errmsg(), "not a whole number of float32"));
    assert_int_equal(fl_msg_check_data(&m, 0), FL_EPROTO);
    m.offset = FL_MODEL_MAX - 4;
    assert_int_equal(fl_msg_check_data(&m, 4), 0);
    assert_int_equal(fl_msg_check_data(&m, 8), FL_EPROTO);

    /* secure-aggregation records: whole records only (sa.keys and sa.unmask
     * of either model: 68 or 260, 5 or 69 bytes) */
    static const struct { fl_msg_type_t t; size_t rec, bad; } sa[] = {
        {FL_MSG_SA_KEYS, 68, 7 * 68 + 1},      {FL_MSG_SA_KEYS, 260, 7 * 260 + 1},
        {FL_MSG_SA_SHR, 132, 7 * 132 + 1},     {FL_MSG_SA_MREQ, 132, 7 * 132 + 1},
        {FL_MSG_SA_UNMASK, 5, 7 * 5 + 1},      {FL_MSG_SA_UNMASK, 69, 7 * 69 + 1},
        {FL_MSG_SA_SHARES, 41, 7 * 41 + 1}};
    for (size_t i = 0; i < sizeof sa / sizeof sa[0]; i++) {
        s_full(&m, sa[i].t);
        assert_int_equal(fl_msg_check_data(&m, sa[i].rec), 0);
        assert_int_equal(fl_msg_check_data(&m, 7 * sa[i].rec), 0);
        assert_int_equal(fl_msg_check_data(&m, sa[i].bad), FL_EPROTO);
        assert_non_null(strstr(fl_errmsg(), "not a whole number of"));
        assert_int_equal(fl_msg_check_data(&m, 0), FL_EPROTO);
        assert_non_null(strstr(fl_errmsg(), "data frame missing"));
        assert_int_equal(fl_msg_check_data(&m, FL_CHUNK_MAX + sa[i].rec), FL_EPROTO);
    }

    for (int t = FL_MSG_HELLO; t <= FL_MSG_LAST; t++) {
        if (fl_msg_has_data((fl_msg_type_t)t))
            continue;
        s_full(&m, (fl_msg_type_t)t);
        assert_int_equal(fl_msg_check_data(&m, 0), 0);
        assert_int_equal(fl_msg_check_data(&m, 4), FL_EPROTO);
        assert_non_null(strstr(fl_errmsg(), "unexpected data frame of 4 bytes"));
    }
}

static void
test_set_reason(void **state)
{
    (void)state;
    fl_msg_t m;
    uint8_t buf[1024];
    size_t len;
    char longs[600];

    fl_msg_init(&m, FL_MSG_ERROR);
    fl_msg_set_reason(&m, "bad %s at %d", "field", 7);
    assert_string_equal(m.reason, "bad field at 7");
    fl_msg_set_reason(&m, "two\nlines\tand \x1b[31mred\x7f \xc2\x9b \xff\xfe caf\xc3\xa9");
    assert_string_equal(m.reason, "two?lines?and ?[31mred? ? ?? caf\xc3\xa9");
    assert_int_equal(fl_msg_encode(&m, buf, sizeof buf, &len), 0);
    fl_msg_set_reason(&m, "%s", "");
    assert_string_equal(m.reason, "unspecified");

    /* cut to 255 bytes at a character boundary: 254 'a' then a 2-byte char */
    memset(longs, 'a', 254);
    memcpy(longs + 254, "\xc3\xa9zz", 5);
    fl_msg_set_reason(&m, "%s", longs);
    assert_int_equal(strlen(m.reason), 254);
    assert_int_equal(fl_msg_encode(&m, buf, sizeof buf, &len), 0);
    memset(longs, 'b', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    fl_msg_set_reason(&m, "%s", longs);
    assert_int_equal(strlen(m.reason), 255);
    assert_int_equal(fl_msg_encode(&m, buf, sizeof buf, &len), 0);
}

static void
test_describe(void **state)
{
    (void)state;
    fl_msg_t m;
    char buf[512];

    fl_msg_init(&m, FL_MSG_GET);
    m.has_digest = true;
    m.digest[0] = 0x3f, m.digest[1] = 0x9a, m.digest[2] = 0x01, m.digest[3] = 0xc2;
    m.offset = 0, m.length = 1048576;
    assert_string_equal(fl_msg_describe(&m, buf, sizeof buf),
                        "t=get digest=3f9a01c2.. offset=0 length=1048576");
    fl_msg_init(&m, FL_MSG_HELLO);
    snprintf(m.version, sizeof m.version, "v\"1\n");
    assert_string_equal(fl_msg_describe(&m, buf, sizeof buf),
                        "t=hello version=\"v\\\"1\\x0a\" n_train=0 n_test=0 model=nil");
    fl_msg_init(&m, FL_MSG_EVALD);
    m.loss = 0.25, m.acc = 1;
    assert_string_equal(fl_msg_describe(&m, buf, sizeof buf),
                        "t=evald round=0 attempt=0 n_samples=0 loss=0.25 acc=1");
    assert_string_equal(fl_msg_describe(&m, buf, 8), "t=evald");
    fl_msg_init(&m, (fl_msg_type_t)50);
    assert_string_equal(fl_msg_describe(&m, buf, sizeof buf), "t=unknown");
    s_full(&m, FL_MSG_TRAIN);
    fl_msg_describe(&m, buf, sizeof buf);
    assert_non_null(strstr(buf, " optimizer=\"adam\""));
    assert_non_null(strstr(buf, " sig=fffefdfc.."));
}

/* ------------------------------------------------------------------------ */
/* Random mutations and truncations                                           */

static void
s_check_mutant(const uint8_t *buf, size_t len, size_t *n_ok)
{
    fl_msg_t m, back;
    uint8_t enc[2048];
    size_t elen;
    memset(&m, 0xcc, sizeof m);
    int rc = fl_msg_decode(buf, len, &m);
    if (rc != 0) {
        assert_int_equal(rc, FL_EPROTO);
        assert_true(fl_errmsg()[0] != '\0');
        assert_true(s_is_zeroed(&m));
        return;
    }
    (*n_ok)++;
    /* whatever the decoder accepts, the encoder accepts and reproduces */
    if (fl_msg_encode(&m, enc, sizeof enc, &elen) != 0)
        fail_msg("decoded %s but cannot re-encode: %s", fl_msg_type_name(m.type), fl_errmsg());
    assert_int_equal(fl_msg_decode(enc, elen, &back), 0);
    assert_memory_equal(&m, &back, sizeof m);
}

static void
test_random_mutations(void **state)
{
    (void)state;
    static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0xa0, 0xbf,
                                          0xc0, 0xc1, 0xc4, 0xca, 0xcb, 0xcc, 0xcf, 0xd0,
                                          0xd3, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff};
    fl_rng_t rng;
    size_t n_ok = 0, n_total = 0;

    fl_rng_seed(&rng, 20240601, 7);
    for (int t = FL_MSG_HELLO; t <= FL_MSG_LAST; t++) {
        fl_msg_t m;
        uint8_t base[2048], buf[2100];
        s_full(&m, (fl_msg_type_t)t);
        size_t blen = s_encode(&m, base, sizeof base);

        /* every strict prefix is refused */
        for (size_t cut = 0; cut < blen; cut++) {
            fl_msg_t out;
            assert_int_equal(fl_msg_decode(base, cut, &out), FL_EPROTO);
            assert_true(s_is_zeroed(&out));
        }
        for (int k = 0; k < 600; k++, n_total++) {
            size_t len = blen;
            memcpy(buf, base, blen);
            int n_mut = 1 + (int)fl_rng_below(&rng, 3);
            for (int j = 0; j < n_mut && len > 0; j++) {
                size_t at = (size_t)fl_rng_below(&rng, len);
                switch (fl_rng_below(&rng, 6)) {
                case 0: buf[at] ^= (uint8_t)(1u << fl_rng_below(&rng, 8)); break;
                case 1: buf[at] = interesting[fl_rng_below(&rng, sizeof interesting)]; break;
                case 2: buf[at] = (uint8_t)fl_rng_u64(&rng); break;
                case 3: len = at; break; /* truncate */
                case 4:                  /* insert a byte */
                    if (len < sizeof buf) {
                        memmove(buf + at + 1, buf + at, len - at);
                        buf[at] = (uint8_t)fl_rng_u64(&rng);
                        len++;
                    }
                    break;
                default: /* delete a byte */
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                    break;
                }
            }
            s_check_mutant(buf, len, &n_ok);
        }
    }
    /* some mutants (a changed digit, a changed digest byte) stay valid */
    assert_true(n_ok > 0);
    assert_true(n_ok < n_total);
    print_message("  %zu of %zu mutants decoded (and re-encoded identically)\n", n_ok, n_total);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names_and_directions),
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_golden_bytes),
        cmocka_unit_test(test_decode_foreign_encodings),
        cmocka_unit_test(test_reject_framing),
        cmocka_unit_test(test_reject_fields),
        cmocka_unit_test(test_encode_refuses_invalid),
        cmocka_unit_test(test_check_data),
        cmocka_unit_test(test_set_reason),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_random_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
