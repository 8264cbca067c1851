/*
 * frame.h - the guest protocol's framing, shared by the host client
 * (src/exec/) and the guest agent (guest/, which compiles frame.c into its
 * static binary). Depends on libc and protobuf-c only, on purpose.
 *
 * A frame is 1 flag byte (always 0: no compression), a 4-byte big-endian
 * body length and a protobuf body (hostagent.guest.v1.GuestRequest from the
 * host, GuestEvent from the guest; proto/guest/v1/guest.proto).
 *
 * Output chunks are the hot path (a GiB of stdout must stream at pipe
 * speed), so they have a hand-written encoding that lets the guest read a
 * pipe straight into its send buffer behind a prefix written afterwards,
 * and lets the host point at the bytes in its receive buffer without a
 * copy. The bytes are ordinary protobuf: protobuf-c decodes them too.
 */
#ifndef EXEC_FRAME_H
#define EXEC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define EXEC_FRAME_HDR_LEN 5
/* Largest body either side accepts. Checked against the header before any
 * allocation, so a hostile or broken peer cannot make us reserve more. */
#define EXEC_FRAME_MAX (1u << 20)
/* The guest reads a pipe in chunks of at most this; a chunk is sent as soon
 * as it is read, whatever its size. Big enough for pipe-speed throughput,
 * small enough that 64 busy commands stay within a few MiB. */
#define EXEC_OUTPUT_CHUNK_MAX ((size_t)128 * 1024)
/* Room needed in front of output data for the frame header and the two
 * protobuf tag/length pairs (5 + 1 + 5 + 1 + 5, rounded up). */
#define EXEC_OUTPUT_PREFIX_MAX 24

enum exec_stream {
        EXEC_STREAM_STDOUT = 1,
        EXEC_STREAM_STDERR = 2,
};

/* Writes a header for a body of |body_len| bytes. */
void exec_frame_hdr_put(uint8_t hdr[EXEC_FRAME_HDR_LEN], uint32_t body_len);

/* Parses a header. Returns 0, -EPROTO (flag byte not 0), -EMSGSIZE (length
 * over |max|). */
int exec_frame_hdr_parse(const uint8_t hdr[EXEC_FRAME_HDR_LEN], uint32_t max,
                         uint32_t *ret_len);

/* Packs |msg| into a new frame (header + body). On success *ret_frame is
 * malloc'd and owned by the caller. Returns 0, -EMSGSIZE (body over |max|),
 * -ENOMEM. */
int exec_frame_pack(const ProtobufCMessage *msg, uint32_t max, uint8_t **ret_frame,
                    size_t *ret_len);

/* Writes the frame header and GuestEvent tags for an output event carrying
 * the |data_len| bytes that start at |data|; the prefix ends exactly at
 * |data|, so the caller must have left EXEC_OUTPUT_PREFIX_MAX bytes of room
 * before it. Returns the prefix length; the frame is then
 * [data - ret, data + data_len). |data_len| must be 1..EXEC_OUTPUT_CHUNK_MAX. */
size_t exec_frame_output_prefix(uint8_t *data, enum exec_stream stream, size_t data_len);

/* Recognises a body that is exactly one output event as written by
 * exec_frame_output_prefix(). Returns 1 and points *ret_data into |body|
 * (no copy), 0 when the body is anything else (decode it with protobuf-c),
 * never an error. */
int exec_frame_output_parse(const uint8_t *body, size_t len, enum exec_stream *ret_stream,
                            const uint8_t **ret_data, size_t *ret_len);

/*
 * A receive buffer that turns a byte stream into frames. It starts small and
 * grows to fit the frame being received, never past EXEC_FRAME_HDR_LEN +
 * max. Usage: exec_frame_reader_space() -> read(2) into it ->
 * exec_frame_reader_commit() -> exec_frame_reader_next() until it returns 0.
 */
struct exec_frame_reader {
        uint8_t *buf;
        size_t cap;
        size_t off;     /* first unconsumed byte */
        size_t len;     /* end of received bytes */
        uint32_t max;   /* immutable after init */
};

void exec_frame_reader_init(struct exec_frame_reader *r, uint32_t max);
void exec_frame_reader_done(struct exec_frame_reader *r);

/* Free room to read into, at least 1 byte. Bodies returned by
 * exec_frame_reader_next() become invalid (the buffer may move). Returns
 * 0, -ENOMEM, -EMSGSIZE / -EPROTO (the pending header is bad). */
int exec_frame_reader_space(struct exec_frame_reader *r, uint8_t **ret_p, size_t *ret_n);
/* Records that |n| bytes were written at the space returned last. */
void exec_frame_reader_commit(struct exec_frame_reader *r, size_t n);
/* Appends |n| bytes (for data that arrived with a handshake). Returns 0 or
 * -ENOMEM / -EMSGSIZE / -EPROTO. */
int exec_frame_reader_feed(struct exec_frame_reader *r, const void *p, size_t n);

/* Takes the next complete frame. Returns 1 with *ret_body / *ret_len
 * (borrowed, valid until the next exec_frame_reader_space() or _feed()),
 * 0 when more bytes are needed, -EMSGSIZE (length over max), -EPROTO
 * (flag byte not 0). Errors are final: the stream is unusable. */
int exec_frame_reader_next(struct exec_frame_reader *r, const uint8_t **ret_body,
                           uint32_t *ret_len);

/* Bytes received but not yet returned as frames. */
size_t exec_frame_reader_pending(const struct exec_frame_reader *r);

#endif
