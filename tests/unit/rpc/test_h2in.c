/*
 * test_h2in.c - the scanner between the client's bytes and nghttp2: every
 * byte passes in order except the RST_STREAM frames the caller drops, the
 * caller is asked only about well-formed client RST_STREAMs outside header
 * blocks, with everything before the frame already handed on, however the
 * bytes are split into reads.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "rpc/h2in.h"

struct sink {
        uint8_t  out[1024];
        size_t   len;
        uint32_t asked[16];
        size_t   asked_at[16];          /* bytes passed when asked */
        int      nasked;
        int      fail_after;            /* pass fails once this many bytes went (0: never) */
};

static ssize_t pass(void *ctx, const uint8_t *p, size_t n)
{
        struct sink *s = ctx;
        cr_assert_leq(s->len + n, sizeof s->out);
        memcpy(s->out + s->len, p, n);
        s->len += n;
        if (s->fail_after && s->len >= (size_t)s->fail_after)
                return -505;
        return (ssize_t)n;
}

/* Drops client streams 7 and 9 (9 sits inside a header block: never asked). */
static bool drop(void *ctx, uint32_t id)
{
        struct sink *s = ctx;
        cr_assert_lt(s->nasked, 16);
        s->asked[s->nasked] = id;
        s->asked_at[s->nasked++] = s->len;
        return id == 7 || id == 9;
}

static size_t frame(uint8_t *p, uint32_t len, uint8_t type, uint8_t flags, uint32_t id)
{
        p[0] = (uint8_t)(len >> 16);
        p[1] = (uint8_t)(len >> 8);
        p[2] = (uint8_t)len;
        p[3] = type;
        p[4] = flags;
        p[5] = (uint8_t)(id >> 24);
        p[6] = (uint8_t)(id >> 16);
        p[7] = (uint8_t)(id >> 8);
        p[8] = (uint8_t)id;
        for (uint32_t i = 0; i < len; i++)
                p[9 + i] = (uint8_t)(0xa0 + i);
        return 9 + len;
}

/* The input, and what must come out (the input without RST_STREAM 7). */
static size_t build(uint8_t *in, uint8_t *want, size_t *want_len, size_t *rst7_at)
{
        size_t n = 0, w;
        memcpy(in, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", H2IN_PREFACE_LEN);
        n = H2IN_PREFACE_LEN;
        n += frame(in + n, 6, 0x4, 0, 0);               /* SETTINGS */
        n += frame(in + n, 5, 0x1, 0x4, 1);             /* HEADERS 1, END_HEADERS */
        *rst7_at = n;
        w = frame(in + n, 4, 0x3, 0, 7);                /* RST_STREAM 7: dropped */
        memcpy(want, in, n);
        *want_len = n;
        n += w;
        size_t rest = n;
        n += frame(in + n, 10, 0x0, 0, 1);              /* DATA 1 */
        n += frame(in + n, 3, 0x1, 0, 3);               /* HEADERS 3, no END_HEADERS */
        n += frame(in + n, 4, 0x3, 0, 9);               /* RST 9 inside the block: not asked */
        n += frame(in + n, 2, 0x9, 0x4, 3);             /* CONTINUATION 3, END_HEADERS */
        n += frame(in + n, 4, 0x3, 0, 11);              /* RST 11: asked, kept */
        n += frame(in + n, 4, 0x3, 0, 2);               /* RST 2 (even): not asked */
        n += frame(in + n, 5, 0x3, 0, 13);              /* RST 13, bad length: not asked */
        n += frame(in + n, 0, 0x4, 0x1, 0);             /* SETTINGS ACK */
        memcpy(want + *want_len, in + rest, n - rest);
        *want_len += n - rest;
        return n;
}

static void check(const struct sink *s, const uint8_t *want, size_t want_len, size_t rst7_at)
{
        cr_assert_eq(s->len, want_len);
        cr_assert_eq(memcmp(s->out, want, want_len), 0);
        cr_assert_eq(s->nasked, 2);
        cr_assert_eq(s->asked[0], 7u);
        cr_assert_eq(s->asked_at[0], rst7_at, "asked before the bytes ahead of it were passed");
        cr_assert_eq(s->asked[1], 11u);
}

/* Feeds the input in reads ending at |cuts| (ascending) and the rest, and
 * checks the outcome. */
static void run(const size_t *cuts, size_t ncuts)
{
        uint8_t in[512], want[512];
        size_t want_len, rst7_at, n = build(in, want, &want_len, &rst7_at), at = 0;
        struct h2in f;
        struct sink s = { 0 };

        h2in_init(&f);
        for (size_t i = 0; i <= ncuts; i++) {
                size_t end = i < ncuts ? cuts[i] : n;
                cr_assert_eq(h2in_feed(&f, in + at, end - at, pass, drop, &s), (ssize_t)(end - at));
                at = end;
        }
        check(&s, want, want_len, rst7_at);
}

Test(rpc_h2in, one_read)
{
        run(NULL, 0);
}

Test(rpc_h2in, every_split_into_two_and_three_reads)
{
        uint8_t in[512], want[512];
        size_t want_len, rst7_at, n = build(in, want, &want_len, &rst7_at);

        for (size_t a = 0; a <= n; a++)
                for (size_t b = a; b <= n; b += 7)
                        run((size_t[]){ a, b }, 2);
}

Test(rpc_h2in, byte_by_byte)
{
        uint8_t in[512], want[512];
        size_t cuts[512], want_len, rst7_at, n = build(in, want, &want_len, &rst7_at);

        for (size_t i = 0; i < n; i++)
                cuts[i] = i + 1;
        run(cuts, n);
}

Test(rpc_h2in, a_failing_pass_stops_the_feed_with_its_error)
{
        uint8_t in[512], want[512];
        size_t want_len, rst7_at, n = build(in, want, &want_len, &rst7_at);
        struct h2in f;
        struct sink s = { .fail_after = 40 };

        h2in_init(&f);
        cr_assert_eq(h2in_feed(&f, in, n, pass, drop, &s), -505);
        cr_assert_eq(s.nasked, 0, "went on past the error");
}
