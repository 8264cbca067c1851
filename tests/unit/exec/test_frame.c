/*
 * test_frame.c - the guest protocol framing (src/exec/frame.c): header
 * limits, the stream reader across arbitrary read boundaries, and the
 * hand-written output encoding agreeing with protobuf-c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exec/frame.h"
#include "guest/v1/guest.pb-c.h"

Test(exec_frame, header_round_trip)
{
        uint8_t h[5];
        uint32_t len;

        exec_frame_hdr_put(h, 0x01020304);
        cr_assert_eq(h[0], 0);
        cr_assert_eq(h[1], 1);
        cr_assert_eq(h[4], 4);
        cr_assert_eq(exec_frame_hdr_parse(h, 0x7fffffff, &len), 0);
        cr_assert_eq(len, 0x01020304);
}

Test(exec_frame, rejects_length_above_limit_and_nonzero_flag)
{
        const uint8_t big[5] = { 0, 0x7f, 0xff, 0xff, 0xff };
        const uint8_t at[5] = { 0, 0, 0x10, 0, 0 };             /* exactly 1 MiB */
        const uint8_t over[5] = { 0, 0, 0x10, 0, 1 };
        const uint8_t flag[5] = { 1, 0, 0, 0, 1 };
        uint32_t len = 77;

        cr_assert_eq(exec_frame_hdr_parse(big, EXEC_FRAME_MAX, &len), -EMSGSIZE);
        cr_assert_eq(exec_frame_hdr_parse(over, EXEC_FRAME_MAX, &len), -EMSGSIZE);
        cr_assert_eq(len, 77, "ret_ untouched on failure");
        cr_assert_eq(exec_frame_hdr_parse(at, EXEC_FRAME_MAX, &len), 0);
        cr_assert_eq(len, EXEC_FRAME_MAX);
        cr_assert_eq(exec_frame_hdr_parse(flag, EXEC_FRAME_MAX, &len), -EPROTO);
}

Test(exec_frame, reader_refuses_oversized_before_allocating)
{
        struct exec_frame_reader r;
        const uint8_t big[5] = { 0, 0x7f, 0xff, 0xff, 0xff };
        const uint8_t *body;
        uint32_t len;
        uint8_t *p;
        size_t n;

        exec_frame_reader_init(&r, 1024);
        cr_assert_eq(exec_frame_reader_feed(&r, big, 5), 0);
        cr_assert_eq(exec_frame_reader_next(&r, &body, &len), -EMSGSIZE);
        cr_assert_eq(exec_frame_reader_space(&r, &p, &n), -EMSGSIZE);
        cr_assert_leq(r.cap, 64 * 1024, "no allocation sized by the bogus header");
        exec_frame_reader_done(&r);
}

/* Builds |count| frames of varying sizes (0 .. ~300 KiB) into one buffer. */
static uint8_t *make_stream(int count, size_t *ret_len)
{
        size_t cap = 0, len = 0;
        uint8_t *s = NULL;

        for (int i = 0; i < count; i++) {
                size_t body = (size_t)(i * 7919) % (300 * 1024);

                if (i % 5 == 0)
                        body = (size_t)i;
                cap = len + 5 + body;
                s = realloc(s, cap);
                exec_frame_hdr_put(s + len, (uint32_t)body);
                for (size_t k = 0; k < body; k++)
                        s[len + 5 + k] = (uint8_t)(i + k);
                len += 5 + body;
        }
        *ret_len = len;
        return s;
}

static void check_stream_with_reads_of(size_t step)
{
        struct exec_frame_reader r;
        size_t len, off = 0;
        uint8_t *s = make_stream(40, &len);
        int seen = 0;

        exec_frame_reader_init(&r, EXEC_FRAME_MAX);
        while (off < len || exec_frame_reader_pending(&r)) {
                const uint8_t *body;
                uint32_t blen;
                int k = exec_frame_reader_next(&r, &body, &blen);

                if (k == 1) {
                        size_t want = (size_t)(seen * 7919) % (300 * 1024);

                        if (seen % 5 == 0)
                                want = (size_t)seen;
                        cr_assert_eq(blen, want, "frame %d", seen);
                        for (size_t i = 0; i < blen; i++)
                                cr_assert_eq(body[i], (uint8_t)(seen + i));
                        seen++;
                        continue;
                }
                cr_assert_eq(k, 0);
                cr_assert_lt(off, len, "reader stuck with %zu bytes pending", exec_frame_reader_pending(&r));
                uint8_t *p;
                size_t room;

                cr_assert_eq(exec_frame_reader_space(&r, &p, &room), 0);
                cr_assert_geq(room, 1);
                if (room > step)
                        room = step;
                if (room > len - off)
                        room = len - off;
                memcpy(p, s + off, room);
                exec_frame_reader_commit(&r, room);
                off += room;
        }
        cr_assert_eq(seen, 40);
        cr_assert_leq(r.cap, 5 + 300 * 1024 + 64 * 1024, "buffer bounded by the largest frame");
        exec_frame_reader_done(&r);
        free(s);
}

Test(exec_frame, reader_handles_partial_reads)
{
        check_stream_with_reads_of(1);
        check_stream_with_reads_of(3);
        check_stream_with_reads_of(4096);
        check_stream_with_reads_of(1 << 20);
}

Test(exec_frame, output_prefix_is_protobuf_and_parses_without_copy)
{
        static const size_t sizes[] = { 1, 127, 128, 16383, 16384, 100000, EXEC_OUTPUT_CHUNK_MAX };

        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                size_t n = sizes[i];
                uint8_t *buf = malloc(EXEC_OUTPUT_PREFIX_MAX + n);
                uint8_t *data = buf + EXEC_OUTPUT_PREFIX_MAX;
                enum exec_stream st;
                const uint8_t *d;
                size_t dl;
                uint32_t blen;

                for (size_t k = 0; k < n; k++)
                        data[k] = (uint8_t)(k * 31);
                size_t pre = exec_frame_output_prefix(data, i % 2 ? EXEC_STREAM_STDERR : EXEC_STREAM_STDOUT, n);
                uint8_t *frame = data - pre;

                cr_assert_leq(pre, EXEC_OUTPUT_PREFIX_MAX);
                cr_assert_eq(exec_frame_hdr_parse(frame, EXEC_FRAME_MAX, &blen), 0);
                cr_assert_eq(blen + 5, pre + n);
                cr_assert_eq(exec_frame_output_parse(frame + 5, blen, &st, &d, &dl), 1);
                cr_assert_eq(st, i % 2 ? EXEC_STREAM_STDERR : EXEC_STREAM_STDOUT);
                cr_assert_eq(d, data, "points into the frame, no copy");
                cr_assert_eq(dl, n);

                Hostagent__Guest__V1__GuestEvent *ev =
                        hostagent__guest__v1__guest_event__unpack(NULL, blen, frame + 5);
                cr_assert_not_null(ev, "protobuf-c decodes the hand-made bytes");
                cr_assert_eq(ev->kind_case, i % 2 ? HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_STDERR
                                                  : HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_STDOUT);
                cr_assert_eq(ev->stdout->data.len, n);
                cr_assert(memcmp(ev->stdout->data.data, data, n) == 0);
                hostagent__guest__v1__guest_event__free_unpacked(ev, NULL);
                free(buf);
        }
}

Test(exec_frame, output_parse_declines_other_events)
{
        Hostagent__Guest__V1__GuestEvent ev = HOSTAGENT__GUEST__V1__GUEST_EVENT__INIT;
        Hostagent__Guest__V1__Exited ex = HOSTAGENT__GUEST__V1__EXITED__INIT;
        const uint8_t trunc[] = { 0x12, 0x05, 0x0a, 0x03, 'a' };
        const uint8_t *d;
        enum exec_stream st;
        size_t dl;
        uint8_t *frame;
        size_t flen;

        ex.exit_code = 3;
        ev.kind_case = HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_EXITED;
        ev.exited = &ex;
        cr_assert_eq(exec_frame_pack(&ev.base, EXEC_FRAME_MAX, &frame, &flen), 0);
        cr_assert_eq(exec_frame_output_parse(frame + 5, flen - 5, &st, &d, &dl), 0);
        cr_assert_eq(exec_frame_output_parse(trunc, sizeof trunc, &st, &d, &dl), 0);
        free(frame);
        frame = NULL;
        cr_assert_eq(exec_frame_pack(&ev.base, 2, &frame, &flen), -EMSGSIZE, "body over the limit");
        cr_assert_null(frame);
}
