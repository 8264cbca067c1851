/*
 * fuzz_json.c - the protobuf JSON decoder (src/rpc/codec_json_dec.c) on
 * hostile JSON, and the round trip through the encoder.
 *
 * Input: byte 0 picks the message type (common/fuzz_types.c) and, bit 7,
 * ignore_unknown; the rest is the JSON text. When it decodes:
 * encode -> e1 must succeed (whatever the decoder accepts must be
 * representable), decode(e1) must succeed, encode -> e2, and e1 == e2
 * (canonical output is a fixed point).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/fuzz_types.h"
#include "common/fuzz_util.h"
#include "core/buf.h"
#include "core/err.h"
#include "rpc/codec_json.h"
#include "rpc/rpc_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        const ProtobufCMessageDescriptor *d = fz_type_pick(data[0] & 0x7f);
        struct rpc_json_opts opts = { .ignore_unknown = data[0] & 0x80, .max_len = 1u << 20 };
        const rpc_descset *ds = rpc_descriptors();
        FZ_CHECK(ds != NULL);
        data++, size--;

        ProtobufCMessage *m = NULL, *m2 = NULL;
        struct ha_err err = { "" };
        int r = rpc_json_decode(d, ds, data, size, &opts, &m, &err);
        FZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
        if (r < 0) {
                FZ_CHECK(r != -EINVAL || err.msg[0] != '\0');
                return 0;
        }
        struct ha_buf e1, e2;
        ha_buf_init(&e1, 8u << 20);
        ha_buf_init(&e2, 8u << 20);
        r = rpc_json_encode(m, ds, &e1);
        if (r != 0)
                fprintf(stderr, "encode of a decoded %s failed: %d\n", d->name, r);
        FZ_CHECK(r == 0);
        r = rpc_json_decode(d, ds, e1.data, e1.len, &opts, &m2, &err);
        if (r != 0)
                fprintf(stderr, "re-decode of %.*s failed: %s\n", (int)e1.len, (const char *)e1.data,
                        err.msg);
        FZ_CHECK(r == 0);
        FZ_CHECK(rpc_json_encode(m2, ds, &e2) == 0);
        if (e1.len != e2.len || memcmp(e1.data, e2.data, e1.len) != 0)
                fprintf(stderr, "unstable round trip:\n e1=%.*s\n e2=%.*s\n", (int)e1.len,
                        (const char *)e1.data, (int)e2.len, (const char *)e2.data);
        FZ_CHECK(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);
        protobuf_c_message_free_unpacked(m, NULL);
        protobuf_c_message_free_unpacked(m2, NULL);
        ha_buf_done(&e1);
        ha_buf_done(&e2);
        return 0;
}
