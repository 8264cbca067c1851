/*
 * fuzz_guest_frame.c - the guest protocol's frame reader (src/exec/frame.c,
 * also compiled into guest/) on a hostile byte stream, fed through the
 * space/commit interface in arbitrary pieces, with every frame body decoded
 * as both sides do: the output fast path, then GuestEvent (host side) and
 * GuestRequest (guest side) with protobuf-c.
 *
 * Input: byte 0 seeds the piece sizes; the rest is the stream. Checks: no
 * body above the max, a body recognised by exec_frame_output_parse()
 * re-encodes to the same bytes with exec_frame_output_prefix(), a message
 * that unpacks re-packs under the max, and errors are final.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/fuzz_util.h"
#include "exec/frame.h"
#include "guest/v1/guest.pb-c.h"

#define MAX (64u << 10)

static void check_body(const uint8_t *body, uint32_t len)
{
        enum exec_stream st;
        const uint8_t *d;
        size_t dl;
        if (exec_frame_output_parse(body, len, &st, &d, &dl) == 1) {
                FZ_CHECK(d >= body && d + dl <= body + len);
                FZ_CHECK(st == EXEC_STREAM_STDOUT || st == EXEC_STREAM_STDERR);
                if (dl >= 1 && dl <= EXEC_OUTPUT_CHUNK_MAX) {
                        uint8_t *buf = malloc(EXEC_OUTPUT_PREFIX_MAX + dl);
                        FZ_CHECK(buf != NULL);
                        memcpy(buf + EXEC_OUTPUT_PREFIX_MAX, d, dl);
                        size_t pl = exec_frame_output_prefix(buf + EXEC_OUTPUT_PREFIX_MAX, st, dl);
                        FZ_CHECK(pl <= EXEC_OUTPUT_PREFIX_MAX);
                        /* The prefix's frame body must be what we parsed. */
                        FZ_CHECK(pl - EXEC_FRAME_HDR_LEN + dl == len);
                        FZ_CHECK(memcmp(buf + EXEC_OUTPUT_PREFIX_MAX - pl + EXEC_FRAME_HDR_LEN, body,
                                        len) == 0);
                        free(buf);
                }
        }
        ProtobufCMessage *ev = protobuf_c_message_unpack(&hostagent__guest__v1__guest_event__descriptor,
                                                         NULL, len, body);
        ProtobufCMessage *rq = protobuf_c_message_unpack(&hostagent__guest__v1__guest_request__descriptor,
                                                         NULL, len, body);
        ProtobufCMessage *ms[2] = { ev, rq };
        for (int i = 0; i < 2; i++) {
                if (!ms[i])
                        continue;
                uint8_t *f = NULL;
                size_t fl = 0;
                int r = exec_frame_pack(ms[i], MAX, &f, &fl);
                FZ_CHECK(r == 0 || r == -EMSGSIZE);
                if (r == 0) {
                        uint32_t bl;
                        FZ_CHECK(exec_frame_hdr_parse(f, MAX, &bl) == 0);
                        FZ_CHECK(bl + EXEC_FRAME_HDR_LEN == fl);
                }
                free(f);
                protobuf_c_message_free_unpacked(ms[i], NULL);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        struct fz_slicer sl;
        fz_slicer_init(&sl, data[0]);
        data++, size--;

        struct exec_frame_reader r;
        exec_frame_reader_init(&r, MAX);
        size_t off = 0;
        int err = 0;
        while (off < size && !err) {
                uint8_t *p;
                size_t room;
                int ret = exec_frame_reader_space(&r, &p, &room);
                if (ret < 0) {
                        FZ_CHECK(ret == -EMSGSIZE || ret == -EPROTO || ret == -ENOMEM);
                        break;
                }
                FZ_CHECK(room >= 1);
                size_t n = fz_slicer_next(&sl, size - off);
                if (n > room)
                        n = room;
                memcpy(p, data + off, n);
                exec_frame_reader_commit(&r, n);
                off += n;
                for (;;) {
                        const uint8_t *body;
                        uint32_t len;
                        ret = exec_frame_reader_next(&r, &body, &len);
                        if (ret == 0)
                                break;
                        if (ret < 0) {
                                FZ_CHECK(ret == -EMSGSIZE || ret == -EPROTO);
                                /* Errors are final. */
                                FZ_CHECK(exec_frame_reader_next(&r, &body, &len) == ret);
                                err = ret;
                                break;
                        }
                        FZ_CHECK(ret == 1 && len <= MAX);
                        check_body(body, len);
                }
        }
        FZ_CHECK(exec_frame_reader_pending(&r) <= EXEC_FRAME_HDR_LEN + MAX);
        exec_frame_reader_done(&r);

        /* The handshake path: the same bytes appended at once. */
        exec_frame_reader_init(&r, MAX);
        if (exec_frame_reader_feed(&r, data, size) == 0) {
                const uint8_t *body;
                uint32_t len;
                while (exec_frame_reader_next(&r, &body, &len) == 1)
                        FZ_CHECK(len <= MAX);
        }
        exec_frame_reader_done(&r);
        return 0;
}
