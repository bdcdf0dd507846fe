/*
 * fuzz_proto.c — libFuzzer target for fl_msg_decode(), the decoder of every
 * header frame a peer sends, plus the properties that must hold whatever it
 * is fed:
 *   - it returns 0 or FL_EPROTO, and on FL_EPROTO leaves the message zeroed;
 *   - anything it accepts, fl_msg_encode() accepts too, and decoding that
 *     encoding gives the same message and re-encoding it the same bytes
 *     (the canonical form is a fixed point);
 *   - fl_msg_describe() and fl_msg_check_data() are safe on any decoded message;
 *   - fl_msg_set_reason() turns any bytes into a reason that encodes.
 *
 * Build and run from the repository root (clang 14; each run ~60 s):
 *
 *   mkdir -p build/fuzz/corpus_proto
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -Icommon tests/fuzz/fuzz_proto.c common/fl_proto.c common/fl_util.c \
 *       -lmsgpackc -lm -o build/fuzz/fuzz_proto
 *   # optional seed corpus: one valid encoding of every message type
 *   clang -g -O1 -DFUZZ_PROTO_SEEDS -Icommon tests/fuzz/fuzz_proto.c \
 *       common/fl_proto.c common/fl_util.c -lmsgpackc -lm -o build/fuzz/fuzz_proto_seeds
 *   build/fuzz/fuzz_proto_seeds build/fuzz/corpus_proto
 *   build/fuzz/fuzz_proto -max_total_time=60 -max_len=4096 \
 *       -dict=tests/fuzz/fuzz_proto.dict build/fuzz/corpus_proto
 *
 * (-fno-sanitize-recover=all makes UBSan findings fatal, so libFuzzer reports
 * them as crashes rather than printing and carrying on.) A crash leaves a
 * crash-<sha1> file; replay it with `build/fuzz/fuzz_proto crash-<sha1>`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_proto.h"
#include "fl_util.h"

static void
s_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_proto: property violated: %s (%s)\n", what, fl_errmsg());
        abort();
    }
}

#ifndef FUZZ_PROTO_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fl_msg_t zero; /* all bytes 0, as fl_msg_init() leaves a message */
    fl_msg_t m, back;
    uint8_t enc[4096], enc2[4096];
    size_t len = 0, len2 = 0;
    char text[1024];

    memset(&m, 0xa5, sizeof m);
    int rc = fl_msg_decode(data, size, &m);
    if (rc != 0) {
        s_check(rc == FL_EPROTO, "decode fails only with FL_EPROTO");
        s_check(memcmp(&m, &zero, sizeof m) == 0, "failed decode leaves the message zeroed");
    } else {
        s_check(m.type > FL_MSG_NONE && m.type <= FL_MSG_LAST, "decoded type is valid");
        s_check(fl_msg_encode(&m, enc, sizeof enc, &len) == 0, "accepted message re-encodes");
        s_check(len <= size + 64, "canonical encoding is not much longer than the input");
        s_check(fl_msg_decode(enc, len, &back) == 0, "canonical encoding decodes");
        s_check(memcmp(&m, &back, sizeof m) == 0, "decode(encode(m)) == m");
        s_check(fl_msg_encode(&back, enc2, sizeof enc2, &len2) == 0, "second encode");
        s_check(len == len2 && memcmp(enc, enc2, len) == 0, "canonical form is a fixed point");
        fl_msg_describe(&m, text, sizeof text);
        s_check(strlen(text) < sizeof text, "describe terminates");
        for (size_t d = 0; d < 3; d++) {
            size_t dl = d == 0 ? 0 : d == 1 ? size : (size_t)m.offset;
            int crc = fl_msg_check_data(&m, dl);
            s_check(crc == 0 || crc == FL_EPROTO, "check_data returns 0 or FL_EPROTO");
        }
    }

    /* Any bytes as a reason: sanitised, bounded, and always encodable. */
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    fl_msg_init(&m, FL_MSG_ERROR);
    fl_msg_set_reason(&m, "%s", text);
    s_check(strlen(m.reason) > 0 && strlen(m.reason) < sizeof m.reason, "reason length");
    s_check(fl_msg_encode(&m, enc, sizeof enc, &len) == 0, "sanitised reason encodes");
    return 0;
}

#else /* FUZZ_PROTO_SEEDS: write one valid encoding of every type into argv[1] */

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    for (int t = FL_MSG_NONE + 1; t <= FL_MSG_LAST; t++) {
        fl_msg_t m;
        uint8_t buf[4096];
        size_t len;
        char path[4096];

        fl_msg_init(&m, (fl_msg_type_t)t);
        m.round = 7, m.attempt = 1, m.n_samples = 100, m.loss = 0.5, m.acc = 0.25;
        m.nbytes = 31400, m.offset = 4096, m.length = 65536, m.total = 31400;
        m.n_train = 60000, m.n_test = 10000, m.epochs = 2, m.batch = 32, m.lr = 0.1;
        m.momentum = 0.9, m.weight_decay = 1e-4, m.mu = 0.01, m.seed = 42;
        m.deadline_ms = 60000, m.has_digest = true, m.has_sig = (t == FL_MSG_TRAIN);
        memset(m.digest, 0x5c, sizeof m.digest);
        memset(m.sig, 0x3a, sizeof m.sig);
        snprintf(m.version, sizeof m.version, "0.1.0");
        snprintf(m.federation, sizeof m.federation, "demo");
        snprintf(m.spec, sizeof m.spec, "mlp:784-32-10");
        snprintf(m.optimizer, sizeof m.optimizer, "sgd");
        snprintf(m.reason, sizeof m.reason, "stale round");
        if (fl_msg_encode(&m, buf, sizeof buf, &len) != 0) {
            fprintf(stderr, "%s: %s\n", fl_msg_type_name(m.type), fl_errmsg());
            return 1;
        }
        snprintf(path, sizeof path, "%s/seed-%s", argv[1], fl_msg_type_name(m.type));
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
            perror(path);
            return 1;
        }
    }
    return 0;
}

#endif
