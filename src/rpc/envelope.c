/* envelope.c - see envelope.h. */
#include "rpc/envelope.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void rpc_envelope_reader_init(struct rpc_envelope_reader *r, size_t limit)
{
        memset(r, 0, sizeof *r);
        r->limit = limit;
}

void rpc_envelope_reader_done(struct rpc_envelope_reader *r)
{
        free(r->msg);
        r->msg = NULL;
}

bool rpc_envelope_partial(const struct rpc_envelope_reader *r)
{
        return r->hdr_have > 0;
}

void rpc_envelope_put_header(uint8_t *out, uint8_t flags, uint32_t len)
{
        out[0] = flags;
        out[1] = (uint8_t)(len >> 24);
        out[2] = (uint8_t)(len >> 16);
        out[3] = (uint8_t)(len >> 8);
        out[4] = (uint8_t)len;
}

int rpc_envelope_feed(struct rpc_envelope_reader *r, const uint8_t *p, size_t n,
                      rpc_envelope_cb cb, void *ctx)
{
        while (n > 0) {
                if (r->hdr_have < RPC_ENVELOPE_HDR) {
                        size_t take = RPC_ENVELOPE_HDR - r->hdr_have;
                        if (take > n)
                                take = n;
                        memcpy(r->hdr + r->hdr_have, p, take);
                        r->hdr_have += take;
                        p += take;
                        n -= take;
                        if (r->hdr_have < RPC_ENVELOPE_HDR)
                                return 0;
                        r->flags = r->hdr[0];
                        r->len = (uint32_t)r->hdr[1] << 24 | (uint32_t)r->hdr[2] << 16 |
                                 (uint32_t)r->hdr[3] << 8 | r->hdr[4];
                        if (r->len > r->limit)
                                return -EMSGSIZE;
                        r->have = 0;
                        if (r->len > 0) {
                                r->msg = malloc(r->len);
                                if (!r->msg)
                                        return -ENOMEM;
                        }
                }
                size_t take = r->len - r->have;
                if (take > n)
                        take = n;
                if (take) {
                        memcpy(r->msg + r->have, p, take);
                        r->have += take;
                        p += take;
                        n -= take;
                }
                if (r->have == r->len) {
                        uint8_t *msg = r->msg;
                        r->msg = NULL;
                        r->hdr_have = 0;
                        int rc = cb(ctx, r->flags, msg, r->len);
                        if (rc < 0)
                                return rc;
                }
        }
        return 0;
}
