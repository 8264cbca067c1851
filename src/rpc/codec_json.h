/*
 * codec_json.h - the protobuf JSON mapping for protobuf-c messages, driven
 * by the protobuf-c descriptors plus the descriptor index (json_name,
 * map entries, Any's type registry).
 *
 * Output follows protobuf's canonical JSON: compact, fields in field-number
 * order, lowerCamelCase json_name keys, implicit-presence fields omitted at
 * their default (proto3 `optional`, message and oneof fields emitted when
 * set), 64-bit integers as strings, bytes as padded standard base64, enums
 * by name (numbers when unknown), NaN/Infinity as strings, maps as objects,
 * google.protobuf.Timestamp as RFC 3339 and Duration as "1.5s", Any as
 * {"@type": ..., fields} for types of the descriptor set.
 *
 * Input accepts the lenient forms protobuf parsers accept: both json_name
 * and the proto field name, integers as numbers or strings (exponent form
 * when integral), enum names or numbers, standard or URL-safe base64 with
 * or without padding, null as "default", Timestamp offsets and 1-9
 * fractional digits. Everything else is rejected with -EINVAL and a message
 * naming the field (see rpc_json_decode()).
 *
 * Types the rpc_descset does not know (not registered with it) still work:
 * their JSON names are computed (lowerCamelCase) and their map fields are
 * seen as repeated entry messages, since only the set marks map entries.
 *
 * Both functions are thread-safe: they only read the descriptors and the
 * rpc_descset.
 */
#ifndef RPC_CODEC_JSON_H
#define RPC_CODEC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc/descset.h"

struct ha_buf;
struct ha_err;

/* Default input limit when opts->max_len is 0: gRPC's default message
 * size, so a JSON body cannot be larger than its proto twin may be. */
#define RPC_JSON_DEFAULT_MAX_LEN (4u << 20)
/* Objects and arrays nested deeper than this are refused: bounds the
 * decoder's recursion (stack) on hostile input. */
#define RPC_JSON_MAX_DEPTH 64

struct rpc_json_opts {
        /* Skip unknown fields and unknown enum names (the field then keeps
         * its default) instead of failing. */
        bool ignore_unknown;
        /* Largest input accepted, in bytes; 0: RPC_JSON_DEFAULT_MAX_LEN. */
        size_t max_len;
};

/*
 * Appends the JSON of |msg| to |out| (its limit bounds the output).
 * Strings that are not valid UTF-8 are emitted with U+FFFD in place of the
 * bad bytes (the proto codec carries them; JSON cannot).
 * Returns 0; -EMSGSIZE (|out| limit), -ENOMEM, or -EINVAL when the message
 * cannot be represented: a Timestamp or Duration out of range, an Any whose
 * type is not in |ds| or whose value does not parse. On failure |out| is
 * left at its previous length.
 */
int rpc_json_encode(const ProtobufCMessage *msg, const rpc_descset *ds, struct ha_buf *out);

/*
 * Parses |json| (|len| bytes) as a message of type |d|. |opts| may be NULL.
 * On success returns 0 and *ret is a message to free with
 * protobuf_c_message_free_unpacked(*ret, NULL) (everything is allocated
 * with malloc, exactly as protobuf_c_message_unpack() would).
 * Returns -EINVAL with |err| (may be NULL) naming the problem and the field
 * path, e.g. `unknown field "foo" in hostagent.v1.CreateSandboxRequest`,
 * `field "egress.mode": unknown value "X" for enum hostagent.v1.EgressPolicy.Mode`,
 * `field "vcpus": 4294967296 is out of range for uint32`,
 * `invalid JSON at offset 12: expected ':'`; -ENOMEM. *ret is untouched
 * on failure and nothing is leaked.
 */
int rpc_json_decode(const ProtobufCMessageDescriptor *d, const rpc_descset *ds,
                    const uint8_t *json, size_t len, const struct rpc_json_opts *opts,
                    ProtobufCMessage **ret, struct ha_err *err);

#endif
