/*
 * frame.c - framing of the guest protocol (see frame.h).
 *
 * Invariants of struct exec_frame_reader: off <= len <= cap; bytes
 * [off, len) are received and not yet returned; a header at off is only
 * trusted after exec_frame_hdr_parse() checked it against max, so the
 * buffer never grows past EXEC_FRAME_HDR_LEN + max (+ the read minimum).
 */
#include "exec/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Smallest read the reader offers: fewer, larger reads are what make a
 * GiB stream cheap. The buffer starts at this size. */
#define READER_MIN_SPACE ((size_t)64 * 1024)

/* Protobuf wire tags of the fields written by hand (field << 3 | type 2). */
#define TAG_EVENT_STDOUT 0x12   /* GuestEvent.stdout = 2 */
#define TAG_EVENT_STDERR 0x1a   /* GuestEvent.stderr = 3 */
#define TAG_OUTPUT_DATA  0x0a   /* Output.data = 1 */

void exec_frame_hdr_put(uint8_t hdr[EXEC_FRAME_HDR_LEN], uint32_t body_len)
{
        hdr[0] = 0;
        hdr[1] = (uint8_t)(body_len >> 24);
        hdr[2] = (uint8_t)(body_len >> 16);
        hdr[3] = (uint8_t)(body_len >> 8);
        hdr[4] = (uint8_t)body_len;
}

int exec_frame_hdr_parse(const uint8_t hdr[EXEC_FRAME_HDR_LEN], uint32_t max, uint32_t *ret_len)
{
        uint32_t len;

        if (hdr[0] != 0)
                return -EPROTO;
        len = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4];
        if (len > max)
                return -EMSGSIZE;
        *ret_len = len;
        return 0;
}

int exec_frame_pack(const ProtobufCMessage *msg, uint32_t max, uint8_t **ret_frame, size_t *ret_len)
{
        size_t body = protobuf_c_message_get_packed_size(msg);
        uint8_t *f;

        if (body > max)
                return -EMSGSIZE;
        f = malloc(EXEC_FRAME_HDR_LEN + body);
        if (!f)
                return -ENOMEM;
        exec_frame_hdr_put(f, (uint32_t)body);
        protobuf_c_message_pack(msg, f + EXEC_FRAME_HDR_LEN);
        *ret_frame = f;
        *ret_len = EXEC_FRAME_HDR_LEN + body;
        return 0;
}

static size_t varint_size(uint32_t v)
{
        size_t n = 1;

        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

static size_t varint_put(uint8_t *p, uint32_t v)
{
        size_t n = 0;

        while (v >= 0x80) {
                p[n++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        p[n++] = (uint8_t)v;
        return n;
}

/* Reads a varint of at most 32 bits from [p + *pos, p + len). Returns 0 or
 * -1 (truncated or too long). */
static int varint_get(const uint8_t *p, size_t len, size_t *pos, uint32_t *ret)
{
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 35; shift += 7) {
                uint8_t b;

                if (*pos >= len)
                        return -1;
                b = p[(*pos)++];
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        if (v > UINT32_MAX)
                                return -1;
                        *ret = (uint32_t)v;
                        return 0;
                }
        }
        return -1;
}

size_t exec_frame_output_prefix(uint8_t *data, enum exec_stream stream, size_t data_len)
{
        uint8_t tmp[EXEC_OUTPUT_PREFIX_MAX];
        uint32_t dlen = (uint32_t)data_len;
        uint32_t inner = 1 + (uint32_t)varint_size(dlen) + dlen;
        uint32_t body = 1 + (uint32_t)varint_size(inner) + inner;
        size_t n = EXEC_FRAME_HDR_LEN;

        exec_frame_hdr_put(tmp, body);
        tmp[n++] = stream == EXEC_STREAM_STDERR ? TAG_EVENT_STDERR : TAG_EVENT_STDOUT;
        n += varint_put(tmp + n, inner);
        tmp[n++] = TAG_OUTPUT_DATA;
        n += varint_put(tmp + n, dlen);
        memcpy(data - n, tmp, n);
        return n;
}

int exec_frame_output_parse(const uint8_t *body, size_t len, enum exec_stream *ret_stream,
                            const uint8_t **ret_data, size_t *ret_len)
{
        size_t pos = 1;
        uint32_t inner, dlen;
        enum exec_stream s;

        if (len < 2)
                return 0;
        if (body[0] == TAG_EVENT_STDOUT)
                s = EXEC_STREAM_STDOUT;
        else if (body[0] == TAG_EVENT_STDERR)
                s = EXEC_STREAM_STDERR;
        else
                return 0;
        if (varint_get(body, len, &pos, &inner) < 0 || inner != len - pos)
                return 0;
        if (inner == 0) {               /* Output{} with empty data */
                dlen = 0;
        } else {
                if (body[pos++] != TAG_OUTPUT_DATA)
                        return 0;
                if (varint_get(body, len, &pos, &dlen) < 0 || dlen != len - pos)
                        return 0;
        }
        *ret_stream = s;
        *ret_data = body + pos;
        *ret_len = dlen;
        return 1;
}

void exec_frame_reader_init(struct exec_frame_reader *r, uint32_t max)
{
        memset(r, 0, sizeof *r);
        r->max = max;
}

void exec_frame_reader_done(struct exec_frame_reader *r)
{
        free(r->buf);
        memset(r, 0, sizeof *r);
}

size_t exec_frame_reader_pending(const struct exec_frame_reader *r)
{
        return r->len - r->off;
}

int exec_frame_reader_space(struct exec_frame_reader *r, uint8_t **ret_p, size_t *ret_n)
{
        size_t pending = r->len - r->off;
        size_t target = pending + 1;

        if (pending >= EXEC_FRAME_HDR_LEN) {
                uint32_t body;
                int k = exec_frame_hdr_parse(r->buf + r->off, r->max, &body);

                if (k < 0)
                        return k;
                if ((size_t)EXEC_FRAME_HDR_LEN + body > target)
                        target = (size_t)EXEC_FRAME_HDR_LEN + body;
        }
        if (target < READER_MIN_SPACE)
                target = READER_MIN_SPACE;

        if (r->off + target > r->cap) {
                /* Move the partial frame to the front; grow only when even
                 * the whole buffer is too small for it. */
                if (pending && r->off)
                        memmove(r->buf, r->buf + r->off, pending);
                r->off = 0;
                r->len = pending;
                if (target > r->cap) {
                        uint8_t *nb = realloc(r->buf, target);

                        if (!nb)
                                return -ENOMEM;
                        r->buf = nb;
                        r->cap = target;
                }
        }
        *ret_p = r->buf + r->len;
        *ret_n = r->cap - r->len;
        return 0;
}

void exec_frame_reader_commit(struct exec_frame_reader *r, size_t n)
{
        r->len += n;
}

int exec_frame_reader_feed(struct exec_frame_reader *r, const void *p, size_t n)
{
        const uint8_t *src = p;

        while (n) {
                uint8_t *dst;
                size_t room;
                int k = exec_frame_reader_space(r, &dst, &room);

                if (k < 0)
                        return k;
                if (room > n)
                        room = n;
                memcpy(dst, src, room);
                exec_frame_reader_commit(r, room);
                src += room;
                n -= room;
        }
        return 0;
}

int exec_frame_reader_next(struct exec_frame_reader *r, const uint8_t **ret_body, uint32_t *ret_len)
{
        size_t pending = r->len - r->off;
        uint32_t body;
        int k;

        if (pending < EXEC_FRAME_HDR_LEN)
                return 0;
        k = exec_frame_hdr_parse(r->buf + r->off, r->max, &body);
        if (k < 0)
                return k;
        if (pending - EXEC_FRAME_HDR_LEN < body)
                return 0;
        *ret_body = r->buf + r->off + EXEC_FRAME_HDR_LEN;
        *ret_len = body;
        r->off += EXEC_FRAME_HDR_LEN + body;
        return 1;
}
