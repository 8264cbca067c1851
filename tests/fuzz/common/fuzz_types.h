/*
 * fuzz_types.h - the message types the codec targets pick from: the public
 * API's requests and responses (maps, oneofs, enums, 64-bit integers,
 * bytes, Timestamp, Duration, Any via google.rpc.Status), the test
 * service's messages, and the guest protocol's two top-level messages.
 */
#ifndef FUZZ_TYPES_H
#define FUZZ_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

extern const ProtobufCMessageDescriptor *const fz_types[];
extern const size_t fz_ntypes;

/* The type byte |b| selects. */
const ProtobufCMessageDescriptor *fz_type_pick(uint8_t b);

#endif
