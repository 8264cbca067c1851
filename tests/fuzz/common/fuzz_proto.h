/*
 * fuzz_proto.h - drives the server's wire protocols (rpc_proto_grpc,
 * rpc_proto_grpc_web, rpc_proto_connect from src/rpc/) the way the loop
 * does for one stream, on a hand-built rpc_call, without sockets or
 * nghttp2: begin (header parsing: timeouts, encodings, Connect GET query),
 * on_data in pieces (envelopes, gRPC-Web text base64), on_end, decoding of
 * every request message (gzip + proto/JSON codec), then the response path
 * (headers, one framed message, the status with hostile metadata, finish)
 * and a check that what would go on the wire parses back.
 *
 * Input layout:
 *   byte 0: piece-size seed; byte 1: bits 0-1 method kind, bits 2-6 status
 *   code (mod 17), bit 7 Connect requires connect-protocol-version;
 *   then a text block ending at the first "\n\n":
 *     line 1: the :path (with a query for Connect GET)
 *     then "name: value" request headers, ">name: value" response
 *     trailers, "!text" the status message;
 *   then the request body.
 * The wrappers fix the :method and content-type a target is about;
 * a "content-type:" or ":method:" line in the block overrides them.
 */
#ifndef FUZZ_PROTO_H
#define FUZZ_PROTO_H

#include <stddef.h>
#include <stdint.h>

void fz_proto_run(const char *method, const char *content_type, const uint8_t *data, size_t size);

#endif
