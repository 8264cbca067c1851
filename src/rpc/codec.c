/*
 * codec.c - message codecs: protobuf binary (protobuf-c) and protobuf JSON
 * (codec_json_*.c, driven by the embedded descriptors). Protocols pick one
 * per call from the content type; handlers never see which.
 *
 * The descriptor index is built once, on first use, from the descriptor set
 * compiled into the binary; it is immutable afterwards, so every thread may
 * read it without locks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "rpc/codec_json.h"
#include "rpc/rpc_int.h"

static rpc_descset *g_ds;
static pthread_once_t g_ds_once = PTHREAD_ONCE_INIT;

static void ds_init(void)
{
        struct ha_err err = { "" };
        if (rpc_descset_new_embedded(&g_ds, &err) < 0)
                ha_log_error("rpc.descriptors_failed", "err=\"%s\"", err.msg);
}

const rpc_descset *rpc_descriptors(void)
{
        pthread_once(&g_ds_once, ds_init);
        return g_ds;
}

int rpc_codec_decode(enum rpc_codec_id id, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                     size_t n, ProtobufCMessage **ret, char *why, size_t why_len)
{
        if (id == RPC_CODEC_PROTO) {
                ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, p);
                if (!m) {
                        snprintf(why, why_len, "cannot decode %s: invalid protobuf (%zu bytes)", d->name, n);
                        return -EBADMSG;
                }
                *ret = m;
                return 0;
        }
        struct ha_err err = { "" };
        struct rpc_json_opts opts = { .max_len = n + 1 };
        int r = rpc_json_decode(d, rpc_descriptors(), p ? p : (const uint8_t *)"", n, &opts, ret, &err);
        if (r < 0) {
                snprintf(why, why_len, "cannot decode %s from JSON: %s", d->name,
                         r == -ENOMEM ? "out of memory" : err.msg);
                return -EBADMSG;
        }
        return 0;
}

int rpc_codec_encode(enum rpc_codec_id id, const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len)
{
        if (id == RPC_CODEC_PROTO) {
                size_t n = protobuf_c_message_get_packed_size(m);
                uint8_t *b = malloc(n ? n : 1);
                if (!b)
                        return -ENOMEM;
                protobuf_c_message_pack(m, b);
                *ret = b;
                *ret_len = n;
                return 0;
        }
        struct ha_buf b;
        /* JSON may be several times the proto size; the message limit is
         * checked by the caller on the result. */
        ha_buf_init(&b, 64u << 20);
        int r = rpc_json_encode(m, rpc_descriptors(), &b);
        if (r < 0) {
                ha_buf_done(&b);
                return r;
        }
        *ret = ha_buf_steal(&b, ret_len);
        if (!*ret) {
                *ret = malloc(1);
                if (!*ret)
                        return -ENOMEM;
        }
        return 0;
}

enum rpc_code rpc_codec_decode_error_code(enum rpc_codec_id id)
{
        /* gRPC libraries answer INTERNAL to bytes that are not protobuf;
         * Connect answers invalid_argument to JSON that does not fit. */
        return id == RPC_CODEC_PROTO ? RPC_INTERNAL : RPC_INVALID_ARGUMENT;
}
