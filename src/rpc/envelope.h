/*
 * envelope.h - length-prefixed messages: 1 flag byte, 4-byte big-endian
 * length, payload. gRPC, gRPC-Web and Connect streaming all frame this way;
 * only the meaning of the flag bits differs (compressed 0x01; Connect
 * end-stream 0x02; gRPC-Web trailers 0x80).
 *
 * The reader reassembles messages from arbitrary slices (DATA frames have no
 * relation to envelope boundaries) and checks each length against the limit
 * before it allocates anything.
 */
#ifndef HA_RPC_ENVELOPE_H
#define HA_RPC_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RPC_ENVELOPE_HDR 5

struct rpc_envelope_reader {
        size_t limit;           /* largest payload accepted */
        uint8_t hdr[RPC_ENVELOPE_HDR];
        size_t hdr_have;
        uint8_t flags;
        uint32_t len;
        uint8_t *msg;           /* payload being filled */
        size_t have;
};

/* Called once per complete message; takes ownership of |msg| (malloc'd;
 * NULL when |len| is 0). Returns 0 to go on, or a -errno to stop. */
typedef int (*rpc_envelope_cb)(void *ctx, uint8_t flags, uint8_t *msg, size_t len);

void rpc_envelope_reader_init(struct rpc_envelope_reader *r, size_t limit);
void rpc_envelope_reader_done(struct rpc_envelope_reader *r);
/* Consumes all of |p|. Returns 0, -EMSGSIZE (a length above the limit: the
 * reader is then unusable), -ENOMEM, or what |cb| returned. */
int rpc_envelope_feed(struct rpc_envelope_reader *r, const uint8_t *p, size_t n,
                      rpc_envelope_cb cb, void *ctx);
/* True when a message has started but not ended (truncated input at EOF). */
bool rpc_envelope_partial(const struct rpc_envelope_reader *r);
/* The length the last header announced (for error messages after -EMSGSIZE). */
static inline uint32_t rpc_envelope_announced(const struct rpc_envelope_reader *r)
{
        return r->len;
}

/* Writes a 5-byte header. */
void rpc_envelope_put_header(uint8_t *out, uint8_t flags, uint32_t len);

#endif
