/*
 * codec.c - message codecs: protobuf binary (protobuf-c) and protobuf JSON
 * (codec_json.c, driven by the embedded descriptors). Protocols pick one per
 * call from the content type; handlers never see which.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "rpc/rpc_int.h"

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
        snprintf(why, why_len, "the JSON codec is not available");
        return -EBADMSG;
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
        return -ENOTSUP;
}

enum rpc_code rpc_codec_decode_error_code(enum rpc_codec_id id)
{
        /* gRPC libraries answer INTERNAL to bytes that are not protobuf;
         * Connect answers invalid_argument to JSON that does not fit. */
        return id == RPC_CODEC_PROTO ? RPC_INTERNAL : RPC_INVALID_ARGUMENT;
}
