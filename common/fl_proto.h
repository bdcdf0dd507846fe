/*
 * fl_proto.h — the wire protocol between the coordinator and its agents
 * (version 1): one flat struct for every message type, a strict msgpack
 * decoder and an encoder that refuses to emit anything the decoder would
 * refuse. docs/PROTOCOL.md is the normative description; this module is its
 * reference implementation and the two are kept in step.
 *
 * Framing (done by the transport, not here): each message is one ZeroMQ frame
 * holding a msgpack map of at most FL_HDR_MAX bytes — the header this module
 * encodes and decodes — optionally followed by ONE binary data frame of at most
 * FL_CHUNK_MAX bytes ("chunk" and "upd" only; see fl_msg_check_data()). The
 * sender's identity is its CURVE public key as reported by ZAP, never a field.
 *
 * Every decoded field has been validated: msgpack type, string length and
 * content, bin length, finite floats, ranges. A message that fails any check is
 * refused as a whole with FL_EPROTO and a detail naming the type and field, so
 * callers can log it, count it and carry on.
 */
#ifndef FL_PROTO_H
#define FL_PROTO_H

#include "fl_util.h"

#define FL_PROTO_VERSION 1
#define FL_HDR_MAX 65536u            /* largest header frame, in bytes */
#define FL_CHUNK_MAX (4u << 20)      /* largest data frame, in bytes */
#define FL_CHUNK_DEFAULT (1u << 18)  /* chunk length agents and coordinator ask for: 256 KiB.
                                      * ZeroMQ's CURVE engine keeps ONE encrypted copy of the
                                      * chunk it is writing per connection (queued chunks are
                                      * zero-copy), so the coordinator's transfer memory is
                                      * about one chunk per agent holding a slot of its credit
                                      * window (fl_window.h), not per agent; smaller chunks
                                      * would cut what is in flight on high-latency links. */

/* Largest model or update the protocol describes (2^31 float32 values, the
 * same bound as FL_PARAMS_MAX_ELEMS): caps nbytes, total and offsets so that
 * offset + length arithmetic in consumers can never overflow. */
#define FL_MODEL_MAX ((uint64_t)1 << 33)
/* Longest deadline a task may carry: 30 days, in milliseconds. */
#define FL_DEADLINE_MAX_MS ((uint64_t)30 * 24 * 3600 * 1000)
/* Largest epochs and batch values a task may carry. */
#define FL_EPOCHS_MAX 1000u
#define FL_BATCH_MAX 65536u

typedef enum {
    FL_MSG_NONE = 0,
    /* agent -> coordinator */
    FL_MSG_HELLO,
    FL_MSG_PING,
    FL_MSG_GET,
    FL_MSG_READY,
    FL_MSG_UPD,
    FL_MSG_EVALD,
    FL_MSG_FAIL,
    /* coordinator -> agent */
    FL_MSG_WELCOME,
    FL_MSG_TRAIN,
    FL_MSG_EVAL,
    FL_MSG_CHUNK,
    FL_MSG_PULL,
    FL_MSG_ACK,
    FL_MSG_REJECT,
    FL_MSG_ERROR,
    FL_MSG_ABORT,
    /* enrollment endpoint and key rotation (security baseline) */
    FL_MSG_ENROLL,   /* agent -> coordinator: secret, version */
    FL_MSG_ENROLLED, /* coordinator -> agent: federation, name, endpoint */
    FL_MSG_ROTATE,   /* agent -> coordinator: pubkey (its new CURVE public key) */
    FL_MSG_ROTATED,  /* coordinator -> agent: pubkey (now registered) */
    /* secure aggregation (SECAGG.md 1.4; records in fl_saclient.h) */
    FL_MSG_SA_ADV,    /* agent -> coordinator: cpk, spk */
    FL_MSG_SA_SHR,    /* agent -> coordinator: + data frame of shr records */
    FL_MSG_SA_SHARES, /* agent -> coordinator: + data frame of shares records */
    FL_MSG_SA_KEYS,   /* coordinator -> agent: + data frame of keys records */
    FL_MSG_SA_MREQ,   /* coordinator -> agent: + data frame of mreq records */
    FL_MSG_SA_UNMASK, /* coordinator -> agent: + data frame of unmask records */
    /* the consistency round of the active-server model (SECAGG.md 1.4 R3) */
    FL_MSG_SA_CHK, /* coordinator -> agent: + data frame, the U3 bitmap */
    FL_MSG_SA_SIG  /* agent -> coordinator: sig, its signature of U3 */
} fl_msg_type_t;

#define FL_MSG_LAST FL_MSG_SA_SIG /* highest valid type */

/*
 * One message of any type. Only the fields of its type are meaningful (see the
 * table in docs/PROTOCOL.md); the others are zero after fl_msg_init() and
 * fl_msg_decode(), and the encoder ignores them. Strings are NUL-terminated.
 * has_digest covers "digest" and, in "hello", "model" (false = nil/absent);
 * has_sig covers the optional "sig" of "train" and "eval".
 */
typedef struct fl_msg {
    fl_msg_type_t type;
    uint64_t round, attempt, offset, length, total, nbytes, n_samples, n_train, n_test, epochs,
        batch, seed, deadline_ms;
    double loss, acc, lr, momentum, weight_decay, mu;
    double clip; /* train: L2 bound the agent clips its update to (differential privacy); 0 = none */
    uint64_t unclipped; /* ready: 1 if the update's norm was within clip (adaptive clipping) */
    /* train: the secure-aggregation setup (fl_sa_setup_t); sa_n = 0: none */
    uint64_t sa_n, sa_idx, sa_k, sa_t, sa_full, sa_bits, sa_levels, sa_dim;
    uint64_t sa_active; /* train: 1 = active-server model (signed keys, R3) */
    double sa_clip, sa_wmax;
    bool has_nonce;
    uint8_t nonce[32];
    bool has_cpk, has_spk;
    uint8_t cpk[32], spk[32]; /* sa.adv: the round's X25519 public keys */
    bool has_digest;
    uint8_t digest[32]; /* "digest" or "model" (hello) */
    bool has_sig;
    uint8_t sig[64]; /* train/eval: model signature; sa.adv: R0 signature; sa.sig: R3 */
    bool has_cert;
    uint8_t cert[128]; /* hello: the agent's identity certificate (fl_identity.h) */
    bool has_secret;
    uint8_t secret[32]; /* enroll: the join token's secret */
    char version[32], federation[64], spec[128], optimizer[16], reason[256];
    char name[64], endpoint[256], pubkey[41];
} fl_msg_t;

/* The wire name of a type ("hello", "train", ...); "none" for FL_MSG_NONE and
 * "unknown" for values outside the enum. Never NULL; static storage. */
const char *fl_msg_type_name(fl_msg_type_t t);

/* Zero every byte of *m (padding included, so structs compare with memcmp)
 * and set its type. Can't fail. */
void fl_msg_init(fl_msg_t *m, fl_msg_type_t type);

/* True for the types an agent sends (hello .. fail), false for the
 * coordinator's and for invalid values. A receiver refuses a valid message that
 * travels the wrong way. */
bool fl_msg_from_agent(fl_msg_type_t t);

/* True for the types that are followed by one data frame ("chunk", "upd",
 * and the sa.* record messages other than sa.adv). */
bool fl_msg_has_data(fl_msg_type_t t);

/*
 * Encode *m as a msgpack map into buf[0..cap) (caller-owned, reusable) and set
 * *len_out to the number of bytes written. The encoding is canonical: "v", "t",
 * then the type's fields in table order, shortest integers, float64 floats.
 * Returns FL_EINVAL (detail names type and field) if *m breaks any rule the
 * decoder checks — the encoder never emits what the peer would refuse — or
 * FL_ERANGE if the encoding does not fit in cap bytes. On failure *len_out is
 * untouched and the contents of buf are unspecified.
 */
int fl_msg_encode(const fl_msg_t *m, uint8_t *buf, size_t cap, size_t *len_out) FL_MUST_CHECK;

/*
 * Decode one header frame into *out, validating every field. buf is borrowed
 * for the call only (strings are copied). Returns 0, or FL_EPROTO with a detail
 * naming the type and field, e.g. "train: field 'lr' must be a finite number
 * > 0" ("message: ..." when the type is not yet known). A frame longer than
 * FL_HDR_MAX is refused before parsing. On failure *out is zeroed (type
 * FL_MSG_NONE): never partially filled, never uninitialised.
 */
int fl_msg_decode(const uint8_t *buf, size_t len, fl_msg_t *out) FL_MUST_CHECK;

/*
 * Check the data frame that followed a decoded header: data_len bytes (0 when
 * there was none). "chunk": 1..FL_CHUNK_MAX bytes and offset + data_len <=
 * total. "upd": 4..FL_CHUNK_MAX bytes, a multiple of 4 (whole float32 values).
 * sa.keys, sa.shr, sa.mreq, sa.unmask, sa.shares, sa.chk: 1..FL_CHUNK_MAX
 * bytes, a whole number of the type's records (sa.keys and sa.unmask: of
 * either mode's records; the state machine checks the exact mode). Every other type: no data frame (data_len == 0). Returns 0 or FL_EPROTO with
 * a detail. Whether an "upd" stays within the announced update size is the
 * receiver's check (it knows nbytes from "ready").
 */
int fl_msg_check_data(const fl_msg_t *m, size_t data_len) FL_MUST_CHECK;

/*
 * Set m->reason from a printf-style format, made safe to send: control
 * characters and invalid UTF-8 become '?', the result is cut at a character
 * boundary to fit (255 bytes), and an empty result becomes "unspecified". So a
 * reason built from fl_errmsg() or a peer's text always encodes. Can't fail.
 */
void fl_msg_set_reason(fl_msg_t *m, const char *fmt, ...) FL_PRINTF(2, 3);

/*
 * A one-line logfmt description of *m for logs: the type then its fields,
 * e.g. "t=get digest=3f9a01c2.. offset=0 length=1048576". Digests and
 * signatures are shortened; strings are quoted with control bytes escaped.
 * Writes at most cap bytes (truncating) into buf and returns buf.
 */
const char *fl_msg_describe(const fl_msg_t *m, char *buf, size_t cap);

#endif
