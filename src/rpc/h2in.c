/*
 * h2in.c - see h2in.h.
 */
#include "rpc/h2in.h"

#include <string.h>

#define FRAME_HEADERS 0x1
#define FRAME_RST_STREAM 0x3
#define FRAME_PUSH_PROMISE 0x5
#define FRAME_CONTINUATION 0x9
#define FLAG_END_HEADERS 0x4

void h2in_init(struct h2in *f)
{
        memset(f, 0, sizeof *f);
        f->preface_left = H2IN_PREFACE_LEN;
}

/* What a complete frame header |h| means for the frame: true to drop it.
 * Sets the payload to follow. */
static bool on_header(struct h2in *f, const uint8_t *h, h2in_drop_rst_fn drop, void *ctx)
{
        uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        uint8_t type = h[3], flags = h[4];
        uint32_t id = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) &
                      0x7fffffffu;
        bool in_block = f->in_header_block, dropped = false;

        if (type == FRAME_HEADERS || type == FRAME_PUSH_PROMISE || type == FRAME_CONTINUATION)
                f->in_header_block = !(flags & FLAG_END_HEADERS);
        /* Only a well-formed RST_STREAM on a client stream, outside a header
         * block: anything odd stays nghttp2's to judge. */
        if (type == FRAME_RST_STREAM && len == 4 && (id & 1) && !in_block)
                dropped = drop(ctx, id);
        f->payload_left = len;
        f->dropping = dropped && len > 0;
        return dropped;
}

ssize_t h2in_feed(struct h2in *f, const uint8_t *p, size_t n, h2in_pass_fn pass,
                  h2in_drop_rst_fn drop, void *ctx)
{
        size_t i = 0, seg = 0;  /* bytes [seg, i) are to be passed, not yet passed */
        ssize_t r;

/* Hands on what is pending: before a decision and before a gap. */
#define FLUSH()                                                 \
        do {                                                    \
                if (i > seg) {                                  \
                        r = pass(ctx, p + seg, i - seg);        \
                        if (r < 0)                              \
                                return r;                       \
                }                                               \
                seg = i;                                        \
        } while (0)

        while (i < n) {
                size_t k;
                if (f->preface_left) {
                        k = n - i < f->preface_left ? n - i : f->preface_left;
                        i += k;
                        f->preface_left -= (uint32_t)k;
                        continue;
                }
                if (f->payload_left) {
                        k = n - i < f->payload_left ? n - i : f->payload_left;
                        if (f->dropping) {
                                FLUSH();
                                i += k;
                                seg = i;
                        } else {
                                i += k;
                        }
                        f->payload_left -= (uint32_t)k;
                        if (!f->payload_left)
                                f->dropping = false;
                        continue;
                }
                if (f->hdr_len == 0 && n - i >= H2IN_FRAME_HDR_LEN) {
                        /* Whole header in this chunk: decide in place. An
                         * RST_STREAM is decided with everything before it
                         * handed on. */
                        if (p[i + 3] == FRAME_RST_STREAM)
                                FLUSH();
                        if (on_header(f, p + i, drop, ctx)) {
                                i += H2IN_FRAME_HDR_LEN;
                                seg = i;
                        } else {
                                i += H2IN_FRAME_HDR_LEN;
                        }
                        continue;
                }
                /* A header split across chunks: hold its bytes back. */
                if (f->hdr_len == 0)
                        FLUSH();
                k = H2IN_FRAME_HDR_LEN - f->hdr_len;
                if (k > n - i)
                        k = n - i;
                memcpy(f->hdr + f->hdr_len, p + i, k);
                f->hdr_len += (uint8_t)k;
                i += k;
                seg = i;
                if (f->hdr_len < H2IN_FRAME_HDR_LEN)
                        break;
                f->hdr_len = 0;
                if (!on_header(f, f->hdr, drop, ctx)) {
                        r = pass(ctx, f->hdr, H2IN_FRAME_HDR_LEN);
                        if (r < 0)
                                return r;
                }
        }
        FLUSH();
#undef FLUSH
        return (ssize_t)n;
}
