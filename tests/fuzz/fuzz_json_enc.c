/*
 * fuzz_json_enc.c - the protobuf JSON encoder (src/rpc/codec_json_enc.c)
 * on messages unpacked from hostile protobuf bytes (what a handler may
 * echo back: strings that are not UTF-8, out-of-range Timestamps, unknown
 * enum numbers, Any with garbage), then the round trip.
 *
 * Input: byte 0 picks the type; the rest is protobuf wire format. When it
 * unpacks and encodes: decode(e1) must succeed, encode -> e2, e1 == e2.
 * Encoding may refuse (-EINVAL: not representable in JSON) but never crash.
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
        const ProtobufCMessageDescriptor *d = fz_type_pick(data[0]);
        const rpc_descset *ds = rpc_descriptors();
        FZ_CHECK(ds != NULL);
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
        if (!m)
                return 0;
        struct ha_buf e1, e2;
        ha_buf_init(&e1, 8u << 20);
        ha_buf_init(&e2, 8u << 20);
        int r = rpc_json_encode(m, ds, &e1);
        FZ_CHECK(r == 0 || r == -EINVAL || r == -EMSGSIZE || r == -ENOMEM);
        if (r < 0) {
                FZ_CHECK(e1.len == 0);
                goto done;
        }
        ProtobufCMessage *m2 = NULL;
        struct ha_err err = { "" };
        struct rpc_json_opts opts = { .max_len = 8u << 20 };
        r = rpc_json_decode(d, ds, e1.data, e1.len, &opts, &m2, &err);
        /* Wire-format maps may repeat a key (the last one wins): the
         * encoder keeps only the last entry per key, so its JSON always
         * decodes (finding fixed; the input stays in regressions/). */
        if (r != 0)
                fprintf(stderr, "decode of own output %.*s failed: %s\n", (int)e1.len,
                        (const char *)e1.data, err.msg);
        FZ_CHECK(r == 0);
        FZ_CHECK(rpc_json_encode(m2, ds, &e2) == 0);
        if (e1.len != e2.len || memcmp(e1.data, e2.data, e1.len) != 0)
                fprintf(stderr, "unstable round trip:\n e1=%.*s\n e2=%.*s\n", (int)e1.len,
                        (const char *)e1.data, (int)e2.len, (const char *)e2.data);
        FZ_CHECK(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);
        protobuf_c_message_free_unpacked(m2, NULL);
done:
        protobuf_c_message_free_unpacked(m, NULL);
        ha_buf_done(&e1);
        ha_buf_done(&e2);
        return 0;
}
