/*
 * h2in.h - the client's HTTP/2 bytes on their way to nghttp2.
 *
 * Passes every byte through unchanged, in order, except RST_STREAM frames
 * the caller chooses to drop. Why: gRPC's C core (grpcio, the Ruby, PHP
 * and C# clients, grpc++) can send RST_STREAM for a stream whose HEADERS
 * it never sent, when a call is cancelled right after it got its stream id
 * (grpc/grpc#19655, #38758). RFC 9113 makes that a connection error, and
 * nghttp2 ends the connection with PROTOCOL_ERROR ("RST_STREAM: stream in
 * idle"), failing every other call on it with UNAVAILABLE. gRPC's own C++
 * server ignores such frames; so do we (see conn.c: within a rate).
 *
 * The scanner only reads frame headers (9 bytes: length, type, flags,
 * stream id): payloads stream through untouched, a header split across
 * reads is held back until it is whole. Before asking about an RST_STREAM
 * it hands over everything before it, so the caller's decision sees the
 * session as the frame would.
 */
#ifndef HA_RPC_H2IN_H
#define HA_RPC_H2IN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H2IN_PREFACE_LEN 24             /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
#define H2IN_FRAME_HDR_LEN 9

struct h2in {
        uint32_t preface_left;          /* preface bytes still to pass */
        uint32_t payload_left;          /* payload bytes of the current frame still to go */
        bool     dropping;              /* ... and they are dropped, not passed */
        bool     in_header_block;       /* a HEADERS/CONTINUATION without END_HEADERS came last */
        uint8_t  hdr_len;               /* bytes of a split frame header held in hdr */
        uint8_t  hdr[H2IN_FRAME_HDR_LEN];
};

/* Hands |n| bytes on; returns >= 0, or < 0 to stop (returned by h2in_feed). */
typedef ssize_t (*h2in_pass_fn)(void *ctx, const uint8_t *p, size_t n);
/* True to drop the RST_STREAM (4-byte payload) for client stream |id|. */
typedef bool (*h2in_drop_rst_fn)(void *ctx, uint32_t id);

/* A server-side scanner: the client preface comes first. */
void h2in_init(struct h2in *f);

/* Scans |n| bytes of |p|, passing them on in order except dropped frames.
 * Returns |n|, or the first negative value |pass| returned. */
ssize_t h2in_feed(struct h2in *f, const uint8_t *p, size_t n, h2in_pass_fn pass,
                  h2in_drop_rst_fn drop, void *ctx);

#endif
