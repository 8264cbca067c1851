/*
 * fuzz_h2in.c - the scanner between the client's bytes and nghttp2
 * (src/rpc/h2in.c) on hostile byte streams fed in pseudo-random reads.
 *
 * Input: [slice seed] stream. Checks against a whole-buffer reading of the
 * same rules: the bytes passed on are the stream minus the dropped
 * RST_STREAM frames (a trailing partial frame header is held back), the
 * caller is asked about the same streams in the same order, each time with
 * every byte before the frame already passed.
 */
#include <string.h>

#include "common/fuzz_util.h"
#include "rpc/h2in.h"

#define MAX_IN 65536
#define MAX_ASKED 8192

struct out {
        uint8_t  bytes[MAX_IN];
        size_t   len;
        uint32_t asked[MAX_ASKED];
        size_t   asked_at[MAX_ASKED];
        size_t   nasked;
};

static ssize_t pass(void *ctx, const uint8_t *p, size_t n)
{
        struct out *o = ctx;
        FZ_CHECK(n > 0 && o->len + n <= MAX_IN);
        memcpy(o->bytes + o->len, p, n);
        o->len += n;
        return (ssize_t)n;
}

static bool drop(void *ctx, uint32_t id)
{
        struct out *o = ctx;
        FZ_CHECK(o->nasked < MAX_ASKED);
        o->asked[o->nasked] = id;
        o->asked_at[o->nasked++] = o->len;
        return id % 3 == 0;
}

/* The reference: one pass over the whole stream. */
static void reference(const uint8_t *p, size_t n, struct out *o)
{
        size_t i = n < H2IN_PREFACE_LEN ? n : H2IN_PREFACE_LEN;
        bool in_block = false;

        memcpy(o->bytes, p, i);
        o->len = i;
        while (n - i >= H2IN_FRAME_HDR_LEN) {
                const uint8_t *h = p + i;
                uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
                uint32_t id = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) &
                              0x7fffffffu;
                bool was_in_block = in_block, dropped = false;
                size_t end = i + H2IN_FRAME_HDR_LEN + len > n ? n : i + H2IN_FRAME_HDR_LEN + len;

                if (h[3] == 0x1 || h[3] == 0x5 || h[3] == 0x9)
                        in_block = !(h[4] & 0x4);
                if (h[3] == 0x3 && len == 4 && (id & 1) && !was_in_block)
                        dropped = drop(o, id);
                if (!dropped) {
                        memcpy(o->bytes + o->len, p + i, end - i);
                        o->len += end - i;
                }
                i = end;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct out got, want;
        struct fz_slicer sl;
        struct h2in f;

        if (size < 1 || size - 1 > MAX_IN)
                return 0;
        fz_slicer_init(&sl, data[0]);
        const uint8_t *p = data + 1;
        size_t n = size - 1, at = 0;

        memset(&got, 0, sizeof got);
        memset(&want, 0, sizeof want);
        reference(p, n, &want);
        h2in_init(&f);
        while (at < n) {
                size_t k = fz_slicer_next(&sl, n - at);
                FZ_CHECK(h2in_feed(&f, p + at, k, pass, drop, &got) == (ssize_t)k);
                at += k;
        }
        FZ_CHECK(got.len == want.len);
        FZ_CHECK(memcmp(got.bytes, want.bytes, want.len) == 0);
        FZ_CHECK(got.nasked == want.nasked);
        for (size_t i = 0; i < want.nasked; i++) {
                FZ_CHECK(got.asked[i] == want.asked[i]);
                FZ_CHECK(got.asked_at[i] == want.asked_at[i]);
        }
        return 0;
}
