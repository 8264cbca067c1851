#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/envelope.h"

struct got {
        int n;
        uint8_t flags[8];
        size_t len[8];
        char data[8][64];
};

static int collect(void *ctx, uint8_t flags, uint8_t *msg, size_t len)
{
        struct got *g = ctx;
        g->flags[g->n] = flags;
        g->len[g->n] = len;
        if (len)
                memcpy(g->data[g->n], msg, len < 64 ? len : 64);
        g->n++;
        free(msg);
        return 0;
}

Test(rpc_envelope, reassembles_messages_split_at_every_byte)
{
        const uint8_t in[] = { 0, 0, 0, 0, 3, 'a', 'b', 'c', 1, 0, 0, 0, 0, 0x80, 0, 0, 0, 2, 'x', 'y' };
        struct rpc_envelope_reader r;
        struct got g = { 0 };
        rpc_envelope_reader_init(&r, 1024);
        for (size_t i = 0; i < sizeof in; i++)
                cr_assert_eq(rpc_envelope_feed(&r, &in[i], 1, collect, &g), 0);
        cr_assert_eq(g.n, 3);
        cr_assert_eq(g.len[0], 3);
        cr_assert(memcmp(g.data[0], "abc", 3) == 0);
        cr_assert_eq(g.flags[1], 1);
        cr_assert_eq(g.len[1], 0);
        cr_assert_eq(g.flags[2], 0x80);
        cr_assert(!rpc_envelope_partial(&r));
        rpc_envelope_reader_done(&r);
}

Test(rpc_envelope, rejects_length_above_limit_before_allocating)
{
        const uint8_t in[5] = { 0, 0x7f, 0xff, 0xff, 0xff };
        struct rpc_envelope_reader r;
        struct got g = { 0 };
        rpc_envelope_reader_init(&r, 4u << 20);
        cr_assert_eq(rpc_envelope_feed(&r, in, sizeof in, collect, &g), -EMSGSIZE);
        cr_assert_eq(rpc_envelope_announced(&r), 0x7fffffffu);
        cr_assert_eq(g.n, 0);
        rpc_envelope_reader_done(&r);
}

Test(rpc_envelope, message_exactly_at_limit_passes)
{
        uint8_t in[5 + 16] = { 0, 0, 0, 0, 16 };
        struct rpc_envelope_reader r;
        struct got g = { 0 };
        rpc_envelope_reader_init(&r, 16);
        cr_assert_eq(rpc_envelope_feed(&r, in, sizeof in, collect, &g), 0);
        cr_assert_eq(g.n, 1);
        rpc_envelope_reader_done(&r);
}

Test(rpc_envelope, partial_header_or_body_is_reported)
{
        const uint8_t in[] = { 0, 0, 0, 0, 4, 'a' };
        struct rpc_envelope_reader r;
        struct got g = { 0 };
        rpc_envelope_reader_init(&r, 64);
        cr_assert_eq(rpc_envelope_feed(&r, in, 3, collect, &g), 0);
        cr_assert(rpc_envelope_partial(&r));
        cr_assert_eq(rpc_envelope_feed(&r, in + 3, 3, collect, &g), 0);
        cr_assert(rpc_envelope_partial(&r));
        rpc_envelope_reader_done(&r);   /* frees the half-filled body */
}
