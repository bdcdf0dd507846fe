/*
 * fl_proto.c — msgpack encoder and strict decoder for the Covey wire protocol
 * v1. See fl_proto.h for the contracts and docs/PROTOCOL.md for the rules.
 *
 * Everything is table-driven: s_fields names each field once (wire key, kind,
 * place in fl_msg_t) and s_types lists, per message type, its fields with their
 * presence and range rules. The encoder and the decoder run the same value
 * checks from those tables, which is what keeps "never emit what the peer would
 * reject" true as fields are added.
 *
 * Decoding happens in three steps:
 *   1. s_walk(): an allocation-free pass over the raw bytes that checks the
 *      msgpack is well formed, complete, at most S_DEPTH_MAX deep, with no
 *      trailing bytes. msgpack-c allocates a container's element array as soon
 *      as it reads the count, so handed a 5-byte "array of 2^32 elements" it
 *      asks for 64 GiB (the unit tests show ASan aborting on exactly that when
 *      this pass is skipped). Once the walk has seen every announced element
 *      present, the counts sum to at most len and msgpack-c allocates O(len).
 *      The walk also stops at the first container that announces more elements
 *      than bytes remain, so junk costs no more than its own length to refuse.
 *   2. msgpack_unpack_next() builds the object tree (strings and bins point
 *      into buf; nothing is copied).
 *   3. The map is checked against the type's table, field by field.
 */
#include "fl_proto.h"

#include "fl_identity.h"
#include "fl_saclient.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define S_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define S_MEMBER_SIZE(member) (sizeof(((fl_msg_t *)0)->member))
#define S_DEPTH_MAX 8             /* nesting the pre-walk accepts (v1 needs 1) */
#define S_INT_EXACT ((uint64_t)1 << 53) /* integers a double holds exactly */

/* ------------------------------------------------------------------------ */
/* Field and type tables                                                     */

typedef enum { S_UINT, S_FLOAT, S_STR, S_BIN } s_kind_t;

typedef enum {
    F_ROUND,
    F_ATTEMPT,
    F_OFFSET,
    F_LENGTH,
    F_TOTAL,
    F_NBYTES,
    F_N_SAMPLES,
    F_N_TRAIN,
    F_N_TEST,
    F_EPOCHS,
    F_BATCH,
    F_SEED,
    F_DEADLINE_MS,
    F_LOSS,
    F_ACC,
    F_LR,
    F_MOMENTUM,
    F_WEIGHT_DECAY,
    F_MU,
    F_DIGEST,
    F_MODEL,
    F_SIG,
    F_VERSION,
    F_FEDERATION,
    F_SPEC,
    F_OPTIMIZER,
    F_REASON,
    F_SECRET,
    F_NAME,
    F_ENDPOINT,
    F_PUBKEY,
    F_CLIP,
    F_UNCLIPPED,
    F_SA_N,
    F_SA_IDX,
    F_SA_K,
    F_SA_T,
    F_SA_FULL,
    F_SA_BITS,
    F_SA_LEVELS,
    F_SA_DIM,
    F_SA_CLIP,
    F_SA_WMAX,
    F_NONCE,
    F_CPK,
    F_SPK,
    F_SA_ACTIVE,
    F_CERT,
    F_COUNT
} s_field_t;

typedef struct {
    const char *key; /* wire name */
    s_kind_t kind;
    size_t off;      /* offset of the value in fl_msg_t */
    size_t size;     /* S_STR: buffer size (max length + 1); S_BIN: exact length */
    size_t has_off;  /* S_BIN: offset of its bool has_* flag */
} s_fieldinfo_t;

#define S_U(name) {#name, S_UINT, offsetof(fl_msg_t, name), 0, 0}
#define S_F(name) {#name, S_FLOAT, offsetof(fl_msg_t, name), 0, 0}
#define S_S(name) {#name, S_STR, offsetof(fl_msg_t, name), S_MEMBER_SIZE(name), 0}

static const s_fieldinfo_t s_fields[F_COUNT] = {
    [F_ROUND] = S_U(round),
    [F_ATTEMPT] = S_U(attempt),
    [F_OFFSET] = S_U(offset),
    [F_LENGTH] = S_U(length),
    [F_TOTAL] = S_U(total),
    [F_NBYTES] = S_U(nbytes),
    [F_N_SAMPLES] = S_U(n_samples),
    [F_N_TRAIN] = S_U(n_train),
    [F_N_TEST] = S_U(n_test),
    [F_EPOCHS] = S_U(epochs),
    [F_BATCH] = S_U(batch),
    [F_SEED] = S_U(seed),
    [F_DEADLINE_MS] = S_U(deadline_ms),
    [F_LOSS] = S_F(loss),
    [F_ACC] = S_F(acc),
    [F_LR] = S_F(lr),
    [F_MOMENTUM] = S_F(momentum),
    [F_WEIGHT_DECAY] = S_F(weight_decay),
    [F_MU] = S_F(mu),
    [F_DIGEST] = {"digest", S_BIN, offsetof(fl_msg_t, digest), 32, offsetof(fl_msg_t, has_digest)},
    [F_MODEL] = {"model", S_BIN, offsetof(fl_msg_t, digest), 32, offsetof(fl_msg_t, has_digest)},
    [F_SIG] = {"sig", S_BIN, offsetof(fl_msg_t, sig), 64, offsetof(fl_msg_t, has_sig)},
    [F_VERSION] = S_S(version),
    [F_FEDERATION] = S_S(federation),
    [F_SPEC] = S_S(spec),
    [F_OPTIMIZER] = S_S(optimizer),
    [F_REASON] = S_S(reason),
    [F_SECRET] = {"secret", S_BIN, offsetof(fl_msg_t, secret), 32, offsetof(fl_msg_t, has_secret)},
    [F_NAME] = S_S(name),
    [F_ENDPOINT] = S_S(endpoint),
    [F_PUBKEY] = S_S(pubkey),
    [F_CLIP] = S_F(clip),
    [F_UNCLIPPED] = S_U(unclipped),
    [F_SA_N] = S_U(sa_n),
    [F_SA_IDX] = S_U(sa_idx),
    [F_SA_K] = S_U(sa_k),
    [F_SA_T] = S_U(sa_t),
    [F_SA_FULL] = S_U(sa_full),
    [F_SA_BITS] = S_U(sa_bits),
    [F_SA_LEVELS] = S_U(sa_levels),
    [F_SA_DIM] = S_U(sa_dim),
    [F_SA_CLIP] = S_F(sa_clip),
    [F_SA_WMAX] = S_F(sa_wmax),
    [F_NONCE] = {"nonce", S_BIN, offsetof(fl_msg_t, nonce), 32, offsetof(fl_msg_t, has_nonce)},
    [F_CPK] = {"cpk", S_BIN, offsetof(fl_msg_t, cpk), 32, offsetof(fl_msg_t, has_cpk)},
    [F_SPK] = {"spk", S_BIN, offsetof(fl_msg_t, spk), 32, offsetof(fl_msg_t, has_spk)},
    [F_SA_ACTIVE] = S_U(sa_active),
    [F_CERT] = {"cert", S_BIN, offsetof(fl_msg_t, cert), FL_CERT_LEN, offsetof(fl_msg_t, has_cert)},
};

_Static_assert(F_COUNT <= 64, "the decoder tracks seen fields in a uint64_t");

/* Presence: required, or optional; R_NIL = nil is accepted and means absent. */
enum { R_REQ = 1, R_NIL = 2 };

/* Value rules for floats and strings. */
typedef enum { FR_FINITE, FR_POS, FR_NONNEG, FR_UNIT, FR_UNIT_OPEN } s_frule_t;
typedef enum { SR_ANY, SR_OPTIMIZER } s_srule_t;

typedef struct {
    s_field_t field;
    unsigned flags;
    unsigned rule;  /* s_frule_t for floats, s_srule_t for strings */
    uint64_t min, max, align; /* uints: min <= v <= max, v % align == 0 */
} s_rule_t;

#define RU(f) {f, R_REQ, 0, 0, UINT64_MAX, 1}
#define RUR(f, lo, hi, al) {f, R_REQ, 0, lo, hi, al}
#define RF(f, r) {f, R_REQ, r, 0, 0, 1}
#define RS(f) {f, R_REQ, SR_ANY, 0, 0, 1}
#define RB(f) {f, R_REQ, 0, 0, 0, 1}
#define RB_OPT(f) {f, 0, 0, 0, 0, 1}
#define RB_NIL(f) {f, R_NIL, 0, 0, 0, 1}
#define RUR_OPT(f, lo, hi) {f, 0, 0, lo, hi, 1}
#define RF_OPT(f, r) {f, 0, r, 0, 0, 1}

/* Agent -> coordinator. */
static const s_rule_t s_hello[] = {RS(F_VERSION), RU(F_N_TRAIN), RU(F_N_TEST), RB_NIL(F_MODEL),
                                   RB_OPT(F_CERT)};
static const s_rule_t s_get[] = {
    RB(F_DIGEST),
    RUR(F_OFFSET, 0, FL_MODEL_MAX - 1, 1),
    RUR(F_LENGTH, 1, FL_CHUNK_MAX, 1),
};
static const s_rule_t s_ready[] = {
    RU(F_ROUND),
    RU(F_ATTEMPT),
    RUR(F_N_SAMPLES, 1, UINT64_MAX, 1),
    RF(F_LOSS, FR_NONNEG),
    RF(F_ACC, FR_UNIT),
    RB(F_DIGEST),
    RUR(F_NBYTES, 4, FL_MODEL_MAX, 4),
    RUR(F_UNCLIPPED, 0, 1, 1),
};
static const s_rule_t s_upd[] = {RU(F_ROUND), RU(F_ATTEMPT), RUR(F_OFFSET, 0, FL_MODEL_MAX - 4, 4)};
static const s_rule_t s_evald[] = {
    RU(F_ROUND), RU(F_ATTEMPT), RU(F_N_SAMPLES), RF(F_LOSS, FR_NONNEG), RF(F_ACC, FR_UNIT),
};
static const s_rule_t s_fail[] = {RU(F_ROUND), RU(F_ATTEMPT), RS(F_REASON)};

/* Coordinator -> agent. */
static const s_rule_t s_welcome[] = {RS(F_FEDERATION), RU(F_ROUND)};
static const s_rule_t s_train[] = {
    RU(F_ROUND),
    RU(F_ATTEMPT),
    RB(F_DIGEST),
    RUR(F_NBYTES, 4, FL_MODEL_MAX, 4),
    RS(F_SPEC),
    RUR(F_EPOCHS, 1, FL_EPOCHS_MAX, 1),
    RUR(F_BATCH, 1, FL_BATCH_MAX, 1),
    RF(F_LR, FR_POS),
    {F_OPTIMIZER, R_REQ, SR_OPTIMIZER, 0, 0, 1},
    RF(F_MOMENTUM, FR_UNIT_OPEN),
    RF(F_WEIGHT_DECAY, FR_NONNEG),
    RF(F_MU, FR_NONNEG),
    RF(F_CLIP, FR_NONNEG),
    RU(F_SEED),
    RUR(F_DEADLINE_MS, 1, FL_DEADLINE_MAX_MS, 1),
    RB_OPT(F_SIG),
    /* secure aggregation: absent (sa_n 0) when it is off; fl_sa_setup_check()
     * judges the combination */
    RUR_OPT(F_SA_N, 0, 1000000),
    RUR_OPT(F_SA_IDX, 0, 1000000),
    RUR_OPT(F_SA_K, 0, 1000000),
    RUR_OPT(F_SA_T, 0, 1000001),
    RUR_OPT(F_SA_FULL, 0, 1),
    RUR_OPT(F_SA_BITS, 0, 32),
    RUR_OPT(F_SA_LEVELS, 0, UINT32_MAX),
    RUR_OPT(F_SA_DIM, 0, (uint64_t)1 << 31),
    RF_OPT(F_SA_CLIP, FR_NONNEG),
    RF_OPT(F_SA_WMAX, FR_NONNEG),
    RB_OPT(F_NONCE),
    RUR_OPT(F_SA_ACTIVE, 0, 1),
};
static const s_rule_t s_eval[] = {
    RU(F_ROUND),
    RU(F_ATTEMPT),
    RB(F_DIGEST),
    RUR(F_NBYTES, 4, FL_MODEL_MAX, 4),
    RS(F_SPEC),
    RUR(F_BATCH, 1, FL_BATCH_MAX, 1),
    RUR(F_DEADLINE_MS, 1, FL_DEADLINE_MAX_MS, 1),
    RB_OPT(F_SIG),
};
static const s_rule_t s_chunk[] = {
    RB(F_DIGEST),
    RUR(F_OFFSET, 0, FL_MODEL_MAX - 1, 1),
    RUR(F_TOTAL, 4, FL_MODEL_MAX, 4),
};
/* Update chunks hold whole float32 values, so pulls are 4-byte aligned. */
static const s_rule_t s_pull[] = {
    RU(F_ROUND),
    RU(F_ATTEMPT),
    RUR(F_OFFSET, 0, FL_MODEL_MAX - 4, 4),
    RUR(F_LENGTH, 4, FL_CHUNK_MAX, 4),
};
static const s_rule_t s_ack[] = {RU(F_ROUND), RU(F_ATTEMPT)};
static const s_rule_t s_reject[] = {RU(F_ROUND), RU(F_ATTEMPT), RS(F_REASON)};
static const s_rule_t s_error[] = {RS(F_REASON)};
static const s_rule_t s_abort[] = {RU(F_ROUND), RU(F_ATTEMPT), RS(F_REASON)};
static const s_rule_t s_enroll[] = {RB(F_SECRET), RS(F_VERSION)};
static const s_rule_t s_enrolled[] = {RS(F_FEDERATION), RS(F_NAME), RS(F_ENDPOINT)};
static const s_rule_t s_rotate[] = {RS(F_PUBKEY)};
static const s_rule_t s_sa_adv[] = {RU(F_ROUND), RU(F_ATTEMPT), RB(F_CPK), RB(F_SPK), RB_OPT(F_SIG)};
static const s_rule_t s_sa_sig[] = {RU(F_ROUND), RU(F_ATTEMPT), RB(F_SIG)};
static const s_rule_t s_sa_records[] = {RU(F_ROUND), RU(F_ATTEMPT)};

typedef struct {
    const char *name;
    const s_rule_t *rules;
    size_t n_rules;
    bool from_agent;
    bool has_data;
} s_typeinfo_t;

#define S_T(name, rules, agent, data) {name, rules, S_ARRAY_LEN(rules), agent, data}

static const s_typeinfo_t s_types[FL_MSG_LAST + 1] = {
    [FL_MSG_NONE] = {"none", NULL, 0, false, false},
    [FL_MSG_HELLO] = S_T("hello", s_hello, true, false),
    [FL_MSG_PING] = {"ping", NULL, 0, true, false},
    [FL_MSG_GET] = S_T("get", s_get, true, false),
    [FL_MSG_READY] = S_T("ready", s_ready, true, false),
    [FL_MSG_UPD] = S_T("upd", s_upd, true, true),
    [FL_MSG_EVALD] = S_T("evald", s_evald, true, false),
    [FL_MSG_FAIL] = S_T("fail", s_fail, true, false),
    [FL_MSG_WELCOME] = S_T("welcome", s_welcome, false, false),
    [FL_MSG_TRAIN] = S_T("train", s_train, false, false),
    [FL_MSG_EVAL] = S_T("eval", s_eval, false, false),
    [FL_MSG_CHUNK] = S_T("chunk", s_chunk, false, true),
    [FL_MSG_PULL] = S_T("pull", s_pull, false, false),
    [FL_MSG_ACK] = S_T("ack", s_ack, false, false),
    [FL_MSG_REJECT] = S_T("reject", s_reject, false, false),
    [FL_MSG_ERROR] = S_T("error", s_error, false, false),
    [FL_MSG_ABORT] = S_T("abort", s_abort, false, false),
    [FL_MSG_ENROLL] = S_T("enroll", s_enroll, true, false),
    [FL_MSG_ENROLLED] = S_T("enrolled", s_enrolled, false, false),
    [FL_MSG_ROTATE] = S_T("rotate", s_rotate, true, false),
    [FL_MSG_ROTATED] = S_T("rotated", s_rotate, false, false),
    [FL_MSG_SA_ADV] = S_T("sa.adv", s_sa_adv, true, false),
    [FL_MSG_SA_SHR] = S_T("sa.shr", s_sa_records, true, true),
    [FL_MSG_SA_SHARES] = S_T("sa.shares", s_sa_records, true, true),
    [FL_MSG_SA_KEYS] = S_T("sa.keys", s_sa_records, false, true),
    [FL_MSG_SA_MREQ] = S_T("sa.mreq", s_sa_records, false, true),
    [FL_MSG_SA_UNMASK] = S_T("sa.unmask", s_sa_records, false, true),
    [FL_MSG_SA_CHK] = S_T("sa.chk", s_sa_records, false, true),
    [FL_MSG_SA_SIG] = S_T("sa.sig", s_sa_sig, true, false),
};

static bool
s_type_valid(fl_msg_type_t t)
{
    return t > FL_MSG_NONE && t <= FL_MSG_LAST;
}

const char *
fl_msg_type_name(fl_msg_type_t t)
{
    if ((unsigned)t > (unsigned)FL_MSG_LAST)
        return "unknown";
    return s_types[t].name;
}

void
fl_msg_init(fl_msg_t *m, fl_msg_type_t type)
{
    assert(m);
    memset(m, 0, sizeof *m);
    m->type = type;
}

bool
fl_msg_from_agent(fl_msg_type_t t)
{
    return s_type_valid(t) && s_types[t].from_agent;
}

bool
fl_msg_has_data(fl_msg_type_t t)
{
    return s_type_valid(t) && s_types[t].has_data;
}

/* ------------------------------------------------------------------------ */
/* Text helpers                                                               */

/*
 * Length (1..4) of the well-formed UTF-8 sequence at s[0..n), storing its code
 * point in *cp; 0 if the bytes there are not well-formed UTF-8 (stray
 * continuation, overlong form, surrogate, beyond U+10FFFF, cut short).
 */
static size_t
s_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1fu, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0fu, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/* C0 controls (NUL included), DEL and C1 controls: bytes that would let a
 * peer's text forge log lines or drive a terminal. */
static bool
s_is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* What is wrong with the string s[0..n) as protocol text, or NULL if nothing. */
static const char *
s_text_problem(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = s_utf8_seq(s + i, n - i, &cp);
        if (k == 0)
            return "must be valid UTF-8";
        if (s_is_control(cp))
            return "must not contain NUL or control characters";
        i += k;
    }
    return NULL;
}

/* Render untrusted bytes for an error detail: printable ASCII as is, anything
 * else as \xNN, at most 40 input bytes then "...". Returns dst. */
static const char *
s_escape(char *dst, size_t cap, const uint8_t *s, size_t n)
{
    size_t o = 0;
    assert(cap >= 8);
    for (size_t i = 0; i < n; i++) {
        if (i == 40 || o + 8 > cap) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\' && s[i] != '\'')
            dst[o++] = (char)s[i];
        else
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", s[i]);
    }
    dst[o] = '\0';
    return dst;
}

static const char *
s_objname(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "unsigned integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative integer";
    case MSGPACK_OBJECT_FLOAT32: return "float32";
    case MSGPACK_OBJECT_FLOAT64: return "float64";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_EXT: return "ext";
    default: return "unknown msgpack type";
    }
}

/* ------------------------------------------------------------------------ */
/* Value checks shared by the encoder (code FL_EINVAL) and decoder (FL_EPROTO) */

static int
s_check_uint(int code, const char *tn, const s_rule_t *r, uint64_t v)
{
    const char *key = s_fields[r->field].key;
    if (v < r->min || v > r->max) {
        if (r->max == UINT64_MAX)
            return fl_fail(code, "%s: field '%s' must be >= %" PRIu64 " (got %" PRIu64 ")", tn,
                           key, r->min, v);
        return fl_fail(code, "%s: field '%s' must be in %" PRIu64 "..%" PRIu64 " (got %" PRIu64 ")",
                       tn, key, r->min, r->max, v);
    }
    if (r->align > 1 && v % r->align != 0)
        return fl_fail(code, "%s: field '%s' must be a multiple of %" PRIu64 " (got %" PRIu64 ")",
                       tn, key, r->align, v);
    return 0;
}

static int
s_check_float(int code, const char *tn, const s_rule_t *r, double v)
{
    bool ok;
    const char *want;
    switch ((s_frule_t)r->rule) {
    case FR_POS: ok = isfinite(v) && v > 0, want = "a finite number > 0"; break;
    case FR_NONNEG: ok = isfinite(v) && v >= 0, want = "a finite number >= 0"; break;
    case FR_UNIT: ok = v >= 0 && v <= 1, want = "a number in [0, 1]"; break;
    case FR_UNIT_OPEN: ok = v >= 0 && v < 1, want = "a number in [0, 1)"; break;
    case FR_FINITE:
    default: ok = isfinite(v), want = "a finite number"; break;
    }
    if (!ok)
        return fl_fail(code, "%s: field '%s' must be %s (got %g)", tn, s_fields[r->field].key, want,
                       v);
    return 0;
}

static int
s_check_str(int code, const char *tn, const s_rule_t *r, const uint8_t *s, size_t n)
{
    const s_fieldinfo_t *fi = &s_fields[r->field];
    const char *problem;
    if (n == 0)
        return fl_fail(code, "%s: field '%s' must not be empty", tn, fi->key);
    if (n > fi->size - 1)
        return fl_fail(code, "%s: field '%s' must be at most %zu bytes (got %zu)", tn, fi->key,
                       fi->size - 1, n);
    problem = s_text_problem(s, n);
    if (problem)
        return fl_fail(code, "%s: field '%s' %s", tn, fi->key, problem);
    if (r->rule == SR_OPTIMIZER && !(n == 3 && memcmp(s, "sgd", 3) == 0)
        && !(n == 4 && memcmp(s, "adam", 4) == 0)) {
        char esc[200];
        return fl_fail(code, "%s: field '%s' must be \"sgd\" or \"adam\" (got '%s')", tn, fi->key,
                       s_escape(esc, sizeof esc, s, n));
    }
    return 0;
}

/* Rules that relate two fields of one message. */
static int
s_check_cross(int code, fl_msg_type_t type, const fl_msg_t *m)
{
    if (type == FL_MSG_CHUNK && m->offset >= m->total)
        return fl_fail(code, "chunk: field 'offset' must be < total %" PRIu64 " (got %" PRIu64 ")",
                       m->total, m->offset);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Encoder                                                                    */

typedef struct {
    uint8_t *buf;
    size_t cap, len;
} s_wbuf_t;

/* msgpack_packer write callback into a fixed buffer: -1 once it is full, which
 * every msgpack_pack_* call passes back. */
static int
s_wbuf_write(void *data, const char *p, size_t n)
{
    s_wbuf_t *w = data;
    if (n > w->cap - w->len)
        return -1;
    if (n > 0)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

/* Check every field of m that its type carries, as the decoder would. */
static int
s_validate(const fl_msg_t *m, const s_typeinfo_t *ti)
{
    const char *base = (const char *)m;
    for (size_t i = 0; i < ti->n_rules; i++) {
        const s_rule_t *r = &ti->rules[i];
        const s_fieldinfo_t *fi = &s_fields[r->field];
        const void *p = base + fi->off;
        int rc = 0;
        switch (fi->kind) {
        case S_UINT: rc = s_check_uint(FL_EINVAL, ti->name, r, *(const uint64_t *)p); break;
        case S_FLOAT: rc = s_check_float(FL_EINVAL, ti->name, r, *(const double *)p); break;
        case S_STR: {
            size_t n = strnlen(p, fi->size);
            if (n == fi->size)
                return fl_fail(FL_EINVAL, "%s: field '%s' is not NUL-terminated within %zu bytes",
                               ti->name, fi->key, fi->size);
            rc = s_check_str(FL_EINVAL, ti->name, r, p, n);
            break;
        }
        case S_BIN:
            if ((r->flags & R_REQ) && !*(const bool *)(base + fi->has_off))
                return fl_fail(FL_EINVAL, "%s: field '%s' missing (its has_ flag is false)",
                               ti->name, fi->key);
            break;
        }
        if (rc < 0)
            return rc;
    }
    return s_check_cross(FL_EINVAL, m->type, m);
}

int
fl_msg_encode(const fl_msg_t *m, uint8_t *buf, size_t cap, size_t *len_out)
{
    s_wbuf_t w = {buf, cap, 0};
    msgpack_packer pk;
    const s_typeinfo_t *ti;
    const char *base = (const char *)m;
    size_t n_fields = 2;
    int rc, bad = 0;

    assert(m && len_out && (buf || cap == 0));
    if (!s_type_valid(m->type))
        return fl_fail(FL_EINVAL, "encode: invalid message type %d", (int)m->type);
    ti = &s_types[m->type];
    rc = s_validate(m, ti);
    if (rc < 0)
        return rc;

    /* An optional bin is left out when absent, except that nil-able ones are
     * written as nil: the canonical form of "hello" always carries "model". */
    for (size_t i = 0; i < ti->n_rules; i++) {
        const s_fieldinfo_t *fi = &s_fields[ti->rules[i].field];
        if (fi->kind != S_BIN || ti->rules[i].flags || *(const bool *)(base + fi->has_off))
            n_fields++;
    }

    msgpack_packer_init(&pk, &w, s_wbuf_write);
    bad |= msgpack_pack_map(&pk, n_fields);
    bad |= msgpack_pack_str_with_body(&pk, "v", 1);
    bad |= msgpack_pack_uint64(&pk, FL_PROTO_VERSION);
    bad |= msgpack_pack_str_with_body(&pk, "t", 1);
    bad |= msgpack_pack_str_with_body(&pk, ti->name, strlen(ti->name));
    for (size_t i = 0; i < ti->n_rules; i++) {
        const s_rule_t *r = &ti->rules[i];
        const s_fieldinfo_t *fi = &s_fields[r->field];
        const void *p = base + fi->off;
        bool has = fi->kind != S_BIN || *(const bool *)(base + fi->has_off);
        if (!has && !(r->flags & (R_REQ | R_NIL)))
            continue;
        bad |= msgpack_pack_str_with_body(&pk, fi->key, strlen(fi->key));
        switch (fi->kind) {
        case S_UINT: bad |= msgpack_pack_uint64(&pk, *(const uint64_t *)p); break;
        case S_FLOAT: bad |= msgpack_pack_double(&pk, *(const double *)p); break;
        case S_STR: bad |= msgpack_pack_str_with_body(&pk, p, strlen(p)); break;
        case S_BIN:
            if (has)
                bad |= msgpack_pack_bin_with_body(&pk, p, fi->size);
            else
                bad |= msgpack_pack_nil(&pk);
            break;
        }
    }
    if (bad)
        return fl_fail(FL_ERANGE, "%s: encoding does not fit in %zu bytes", ti->name, cap);
    /* Cannot trigger with v1's field sizes (the largest message is < 1 KiB),
     * but a field added later must not slip past the receiver's limit. */
    if (w.len > FL_HDR_MAX)
        return fl_fail(FL_ERANGE, "%s: encoding of %zu bytes exceeds FL_HDR_MAX", ti->name, w.len);
    *len_out = w.len;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Decoder                                                                    */

/*
 * Walk one msgpack object at p[0..len) without allocating: well formed (no
 * 0xc1, nothing cut short), at most S_DEPTH_MAX levels of containers, and no
 * container announcing more elements than bytes remain (each element needs at
 * least one). Sets *end to the offset just past the object.
 */
static int
s_walk(const uint8_t *p, size_t len, size_t *end)
{
    uint64_t pending[S_DEPTH_MAX + 1];
    int top = 0;
    size_t i = 0;

    pending[0] = 1;
    while (top >= 0) {
        if (pending[top] == 0) {
            top--;
            continue;
        }
        pending[top]--;
        if (i >= len)
            return fl_fail(FL_EPROTO, "message: msgpack truncated at byte %zu", i);
        size_t at = i;
        uint8_t b = p[i++];
        uint64_t skip = 0, kids = 0, n = 0;
        size_t nlen = 0;  /* bytes of the big-endian length or count after b */
        enum { K_FIXED, K_DATA, K_ARRAY, K_MAP } kind = K_FIXED;

        if (b <= 0x7f || b >= 0xe0) {
            /* positive or negative fixint */
        } else if (b <= 0x8f) {
            kids = 2u * (b & 0x0fu);
        } else if (b <= 0x9f) {
            kids = b & 0x0fu;
        } else if (b <= 0xbf) {
            skip = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc0: case 0xc2: case 0xc3: break;
            case 0xc4: case 0xd9: kind = K_DATA, nlen = 1; break;  /* bin8, str8 */
            case 0xc5: case 0xda: kind = K_DATA, nlen = 2; break;  /* bin16, str16 */
            case 0xc6: case 0xdb: kind = K_DATA, nlen = 4; break;  /* bin32, str32 */
            case 0xc7: kind = K_DATA, nlen = 1, skip = 1; break;   /* ext8 (+type) */
            case 0xc8: kind = K_DATA, nlen = 2, skip = 1; break;   /* ext16 */
            case 0xc9: kind = K_DATA, nlen = 4, skip = 1; break;   /* ext32 */
            case 0xca: skip = 4; break;                            /* float32 */
            case 0xcb: skip = 8; break;                            /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;                 /* (u)int8 */
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                            /* fixext1 */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;                           /* fixext16 */
            case 0xdc: kind = K_ARRAY, nlen = 2; break;
            case 0xdd: kind = K_ARRAY, nlen = 4; break;
            case 0xde: kind = K_MAP, nlen = 2; break;
            case 0xdf: kind = K_MAP, nlen = 4; break;
            default: /* 0xc1 is never used */
                return fl_fail(FL_EPROTO, "message: invalid msgpack byte 0x%02x at %zu", b, at);
            }
        }
        if (nlen > len - i)
            return fl_fail(FL_EPROTO, "message: msgpack truncated at byte %zu", at);
        for (size_t k = 0; k < nlen; k++)
            n = (n << 8) | p[i++];
        if (kind == K_DATA)
            skip += n;
        else if (kind == K_ARRAY)
            kids = n;
        else if (kind == K_MAP)
            kids = 2 * n;
        if (skip > len - i)
            return fl_fail(FL_EPROTO, "message: msgpack truncated at byte %zu", at);
        i += (size_t)skip;
        if (kids > 0) {
            if (kids > len - i)
                return fl_fail(FL_EPROTO,
                               "message: container at byte %zu announces %" PRIu64
                               " elements but %zu bytes remain", at, kids, len - i);
            if (top == S_DEPTH_MAX)
                return fl_fail(FL_EPROTO, "message: msgpack nested deeper than %d levels",
                               S_DEPTH_MAX);
            pending[++top] = kids;
        }
    }
    *end = i;
    return 0;
}

static bool
s_key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n
        && memcmp(k->via.str.ptr, name, n) == 0;
}

/* Check one field's value o against rule r and store it into m. */
static int
s_decode_field(const char *tn, const s_rule_t *r, const msgpack_object *o, fl_msg_t *m)
{
    const s_fieldinfo_t *fi = &s_fields[r->field];
    char *p = (char *)m + fi->off;
    int rc;

    switch (fi->kind) {
    case S_UINT:
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return fl_fail(FL_EPROTO, "%s: field '%s' must be an unsigned integer (got %s)", tn,
                           fi->key, s_objname(o));
        rc = s_check_uint(FL_EPROTO, tn, r, o->via.u64);
        if (rc < 0)
            return rc;
        memcpy(p, &o->via.u64, sizeof(uint64_t));
        return 0;

    case S_FLOAT: {
        /* Floats may arrive as float32, float64, or — as some encoders write
         * whole numbers — as integers, which are taken only where a double
         * holds them exactly. */
        double v;
        if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) {
            v = o->via.f64;
        } else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= S_INT_EXACT) {
            v = (double)o->via.u64;
        } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER
                   && o->via.i64 >= -(int64_t)S_INT_EXACT) {
            v = (double)o->via.i64;
        } else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                   || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            return fl_fail(FL_EPROTO,
                           "%s: field '%s' must be a number; integers beyond 2^53 are refused",
                           tn, fi->key);
        } else {
            return fl_fail(FL_EPROTO, "%s: field '%s' must be a number (got %s)", tn, fi->key,
                           s_objname(o));
        }
        rc = s_check_float(FL_EPROTO, tn, r, v);
        if (rc < 0)
            return rc;
        memcpy(p, &v, sizeof v);
        return 0;
    }

    case S_STR: {
        if (o->type != MSGPACK_OBJECT_STR)
            return fl_fail(FL_EPROTO, "%s: field '%s' must be a string (got %s)", tn, fi->key,
                           s_objname(o));
        const uint8_t *s = (const uint8_t *)o->via.str.ptr;
        size_t n = o->via.str.size;
        rc = s_check_str(FL_EPROTO, tn, r, s, n);
        if (rc < 0)
            return rc;
        memcpy(p, s, n);
        p[n] = '\0';
        return 0;
    }

    case S_BIN:
        if (o->type == MSGPACK_OBJECT_NIL && (r->flags & R_NIL))
            return 0; /* has_* stays false */
        if (o->type != MSGPACK_OBJECT_BIN)
            return fl_fail(FL_EPROTO, "%s: field '%s' must be a %zu-byte bin%s (got %s)", tn,
                           fi->key, fi->size, (r->flags & R_NIL) ? " or nil" : "", s_objname(o));
        if (o->via.bin.size != fi->size)
            return fl_fail(FL_EPROTO, "%s: field '%s' must be a %zu-byte bin (got %u bytes)", tn,
                           fi->key, fi->size, (unsigned)o->via.bin.size);
        memcpy(p, o->via.bin.ptr, fi->size);
        *(bool *)((char *)m + fi->has_off) = true;
        return 0;
    }
    return fl_fail(FL_EPROTO, "%s: field '%s' has an unknown kind", tn, fi->key);
}

/* Check the map against its type's table and fill *out (already zeroed). */
static int
s_decode_map(const msgpack_object_map *map, fl_msg_t *out)
{
    const msgpack_object *vo = NULL, *to = NULL;
    const s_typeinfo_t *ti;
    fl_msg_type_t type = FL_MSG_NONE;
    uint64_t seen = 0;
    char esc[200];
    int rc;

    /* First "v" and "t", wherever they are in the map: the version decides how
     * to read the rest and the type names the table. */
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        const msgpack_object **slot = s_key_is(k, "v") ? &vo : s_key_is(k, "t") ? &to : NULL;
        if (!slot)
            continue;
        if (*slot)
            return fl_fail(FL_EPROTO, "message: duplicate field '%.*s'", 1, k->via.str.ptr);
        *slot = &map->ptr[i].val;
    }
    if (!vo)
        return fl_fail(FL_EPROTO, "message: field 'v' missing");
    if (vo->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return fl_fail(FL_EPROTO, "message: field 'v' must be an unsigned integer (got %s)",
                       s_objname(vo));
    if (vo->via.u64 != FL_PROTO_VERSION)
        return fl_fail(FL_EPROTO, "message: unsupported protocol version %" PRIu64
                       " (this side speaks %d)", vo->via.u64, FL_PROTO_VERSION);
    if (!to)
        return fl_fail(FL_EPROTO, "message: field 't' missing");
    if (to->type != MSGPACK_OBJECT_STR)
        return fl_fail(FL_EPROTO, "message: field 't' must be a string (got %s)", s_objname(to));
    for (int t = FL_MSG_NONE + 1; t <= FL_MSG_LAST; t++) {
        if (s_key_is(to, s_types[t].name)) {
            type = (fl_msg_type_t)t;
            break;
        }
    }
    if (type == FL_MSG_NONE) {
        const uint8_t *s = (const uint8_t *)to->via.str.ptr;
        size_t n = to->via.str.size;
        s_escape(esc, sizeof esc, s, n);
        return fl_fail(FL_EPROTO, "message: unknown type '%s'", esc);
    }
    ti = &s_types[type];

    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        const s_rule_t *r = NULL;
        if (k->type != MSGPACK_OBJECT_STR)
            return fl_fail(FL_EPROTO, "%s: map key #%u is not a string (got %s)", ti->name, i,
                           s_objname(k));
        if (&map->ptr[i].val == vo || &map->ptr[i].val == to)
            continue;
        for (size_t j = 0; j < ti->n_rules && !r; j++) {
            if (s_key_is(k, s_fields[ti->rules[j].field].key))
                r = &ti->rules[j];
        }
        if (!r)
            return fl_fail(FL_EPROTO, "%s: unknown field '%s'", ti->name,
                           s_escape(esc, sizeof esc, (const uint8_t *)k->via.str.ptr,
                                    k->via.str.size));
        uint64_t bit = (uint64_t)1 << r->field;
        if (seen & bit)
            return fl_fail(FL_EPROTO, "%s: duplicate field '%s'", ti->name,
                           s_fields[r->field].key);
        seen |= bit;
        rc = s_decode_field(ti->name, r, &map->ptr[i].val, out);
        if (rc < 0)
            return rc;
    }
    for (size_t j = 0; j < ti->n_rules; j++) {
        const s_rule_t *r = &ti->rules[j];
        if ((r->flags & R_REQ) && !(seen & ((uint64_t)1 << r->field)))
            return fl_fail(FL_EPROTO, "%s: field '%s' missing", ti->name, s_fields[r->field].key);
    }
    rc = s_check_cross(FL_EPROTO, type, out);
    if (rc < 0)
        return rc;
    out->type = type;
    return 0;
}

int
fl_msg_decode(const uint8_t *buf, size_t len, fl_msg_t *out)
{
    msgpack_unpacked up;
    size_t end = 0, off = 0;
    int rc;

    assert(out && (buf || len == 0));
    fl_msg_init(out, FL_MSG_NONE);
    msgpack_unpacked_init(&up);
    if (len > FL_HDR_MAX) {
        rc = fl_fail(FL_EPROTO, "message: header of %zu bytes exceeds FL_HDR_MAX (%u)", len,
                     FL_HDR_MAX);
        goto out;
    }
    if (len == 0) {
        rc = fl_fail(FL_EPROTO, "message: empty header frame");
        goto out;
    }
    rc = s_walk(buf, len, &end);
    if (rc < 0)
        goto out;
    if (end != len) {
        rc = fl_fail(FL_EPROTO, "message: %zu trailing bytes after the msgpack map", len - end);
        goto out;
    }
    if (msgpack_unpack_next(&up, (const char *)buf, len, &off) != MSGPACK_UNPACK_SUCCESS
        || off != len) {
        /* The walk accepted it, so only an allocation failure gets here. */
        rc = fl_fail(FL_EPROTO, "message: msgpack-c could not unpack the header");
        goto out;
    }
    if (up.data.type != MSGPACK_OBJECT_MAP) {
        rc = fl_fail(FL_EPROTO, "message: not a msgpack map (got %s)", s_objname(&up.data));
        goto out;
    }
    rc = s_decode_map(&up.data.via.map, out);
out:
    msgpack_unpacked_destroy(&up);
    if (rc < 0)
        fl_msg_init(out, FL_MSG_NONE);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Data frames, reasons, descriptions                                         */

/* Record length of a secure-aggregation message's data frame; *alt gets the
 * active-server model's length for the types whose records it extends (else
 * the same). */
static size_t
s_sa_record_len(fl_msg_type_t t, size_t *alt)
{
    size_t rec;
    switch (t) {
    case FL_MSG_SA_KEYS: *alt = FL_SA_REC_KEYS_ACTIVE; return FL_SA_REC_KEYS;
    case FL_MSG_SA_UNMASK: *alt = FL_SA_REC_UNMASK_ACTIVE; return FL_SA_REC_UNMASK;
    case FL_MSG_SA_SHR: rec = FL_SA_REC_SHR; break;
    case FL_MSG_SA_MREQ: rec = FL_SA_REC_MREQ; break;
    case FL_MSG_SA_CHK: rec = FL_SA_REC_CHK; break;
    default: rec = FL_SA_REC_SHARES; break;
    }
    *alt = rec;
    return rec;
}

int
fl_msg_check_data(const fl_msg_t *m, size_t data_len)
{
    const char *tn = fl_msg_type_name(m->type);
    switch (m->type) {
    case FL_MSG_CHUNK:
    case FL_MSG_UPD:
        if (data_len == 0)
            return fl_fail(FL_EPROTO, "%s: data frame missing", tn);
        if (data_len > FL_CHUNK_MAX)
            return fl_fail(FL_EPROTO, "%s: data frame of %zu bytes exceeds FL_CHUNK_MAX (%u)", tn,
                           data_len, FL_CHUNK_MAX);
        if (m->type == FL_MSG_CHUNK) {
            if (m->offset >= m->total || data_len > m->total - m->offset)
                return fl_fail(FL_EPROTO,
                               "chunk: data frame of %zu bytes at offset %" PRIu64
                               " runs past total %" PRIu64, data_len, m->offset, m->total);
        } else {
            if (data_len % 4 != 0)
                return fl_fail(FL_EPROTO,
                               "upd: data frame of %zu bytes is not a whole number of float32",
                               data_len);
            if (m->offset > FL_MODEL_MAX || data_len > FL_MODEL_MAX - m->offset)
                return fl_fail(FL_EPROTO, "upd: data frame at offset %" PRIu64
                               " runs past FL_MODEL_MAX", m->offset);
        }
        return 0;
    case FL_MSG_SA_KEYS:
    case FL_MSG_SA_SHR:
    case FL_MSG_SA_MREQ:
    case FL_MSG_SA_UNMASK:
    case FL_MSG_SA_SHARES:
    case FL_MSG_SA_CHK: {
        size_t alt, rec = s_sa_record_len(m->type, &alt);
        if (data_len == 0)
            return fl_fail(FL_EPROTO, "%s: data frame missing", tn);
        if (data_len > FL_CHUNK_MAX)
            return fl_fail(FL_EPROTO, "%s: data frame of %zu bytes exceeds FL_CHUNK_MAX (%u)", tn,
                           data_len, FL_CHUNK_MAX);
        if (data_len % rec != 0 && data_len % alt != 0) {
            if (alt != rec)
                return fl_fail(FL_EPROTO, "%s: data frame of %zu bytes is not a whole number of "
                               "%zu-byte (or, active model, %zu-byte) records", tn, data_len,
                               rec, alt);
            return fl_fail(FL_EPROTO, "%s: data frame of %zu bytes is not a whole number of "
                           "%zu-byte records", tn, data_len, rec);
        }
        return 0;
    }
    default:
        if (data_len != 0)
            return fl_fail(FL_EPROTO, "%s: unexpected data frame of %zu bytes", tn, data_len);
        return 0;
    }
}

void
fl_msg_set_reason(fl_msg_t *m, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    size_t n, o = 0, cap = sizeof m->reason - 1;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    n = k < 0 ? 0 : strnlen(tmp, sizeof tmp);
    for (size_t i = 0; i < n && o < cap;) {
        uint32_t cp;
        size_t s = s_utf8_seq((const uint8_t *)tmp + i, n - i, &cp);
        if (s == 0 || s_is_control(cp)) {
            m->reason[o++] = '?';
            i += s ? s : 1;
        } else if (o + s <= cap) {
            memcpy(m->reason + o, tmp + i, s);
            o += s;
            i += s;
        } else {
            break; /* never split a character */
        }
    }
    m->reason[o] = '\0';
    if (o == 0)
        snprintf(m->reason, sizeof m->reason, "unspecified");
}

typedef struct {
    char *buf;
    size_t cap, len;
} s_sbuf_t;

static void s_append(s_sbuf_t *sb, const char *fmt, ...) FL_PRINTF(2, 3);

/* Append to sb, truncating silently at its capacity. */
static void
s_append(s_sbuf_t *sb, const char *fmt, ...)
{
    va_list ap;
    int k;
    if (sb->len + 1 >= sb->cap)
        return;
    va_start(ap, fmt);
    k = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        sb->len = sb->len + (size_t)k < sb->cap ? sb->len + (size_t)k : sb->cap - 1;
}

const char *
fl_msg_describe(const fl_msg_t *m, char *buf, size_t cap)
{
    s_sbuf_t sb = {buf, cap, 0};
    const char *base = (const char *)m;
    const s_typeinfo_t *ti;

    assert(m && (buf || cap == 0));
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    s_append(&sb, "t=%s", fl_msg_type_name(m->type));
    if (!s_type_valid(m->type))
        return buf;
    ti = &s_types[m->type];
    for (size_t i = 0; i < ti->n_rules; i++) {
        const s_fieldinfo_t *fi = &s_fields[ti->rules[i].field];
        const void *p = base + fi->off;
        switch (fi->kind) {
        case S_UINT: s_append(&sb, " %s=%" PRIu64, fi->key, *(const uint64_t *)p); break;
        case S_FLOAT: s_append(&sb, " %s=%.6g", fi->key, *(const double *)p); break;
        case S_STR: {
            char esc[1100];
            const uint8_t *s = p;
            size_t o = 0, n = strnlen(p, fi->size);
            /* logfmt quoting; bytes outside printable ASCII are escaped so a
             * description never carries control characters into a log. */
            for (size_t j = 0; j < n && o + 5 < sizeof esc; j++) {
                if (s[j] == '"' || s[j] == '\\') {
                    esc[o++] = '\\';
                    esc[o++] = (char)s[j];
                } else if (s[j] >= 0x20 && s[j] < 0x7f) {
                    esc[o++] = (char)s[j];
                } else {
                    o += (size_t)snprintf(esc + o, sizeof esc - o, "\\x%02x", s[j]);
                }
            }
            esc[o] = '\0';
            s_append(&sb, " %s=\"%s\"", fi->key, esc);
            break;
        }
        case S_BIN: {
            const uint8_t *b = p;
            if (*(const bool *)(base + fi->has_off))
                s_append(&sb, " %s=%02x%02x%02x%02x..", fi->key, b[0], b[1], b[2], b[3]);
            else if (ti->rules[i].flags & R_NIL)
                s_append(&sb, " %s=nil", fi->key);
            break;
        }
        }
    }
    return buf;
}
