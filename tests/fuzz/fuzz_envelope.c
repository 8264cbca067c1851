/*
 * fuzz_envelope.c - the gRPC/Connect envelope reader (src/rpc/envelope.c)
 * fed hostile bytes in arbitrary slices, with each compressed message
 * inflated by src/rpc/gzip.c under a size limit, as the server does.
 *
 * Input: byte 0 seeds the slice sizes (DATA frames have no relation to
 * envelope boundaries), byte 1 bit 0 says whether compressed messages are
 * inflated; the rest is the stream. Checks: the reader never hands out a
 * message above its limit, the bytes handed out never exceed the input,
 * and an inflated message never exceeds the inflate limit.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/fuzz_util.h"
#include "rpc/envelope.h"
#include "rpc/gzip.h"

#define ENV_LIMIT (64u << 10)
#define INFLATE_LIMIT (256u << 10)

struct ctx {
        bool inflate;
        size_t total;
};

static int on_msg(void *vctx, uint8_t flags, uint8_t *msg, size_t len)
{
        struct ctx *c = vctx;
        FZ_CHECK(len <= ENV_LIMIT);
        FZ_CHECK(len > 0 || msg == NULL);
        c->total += len;
        if (c->inflate && (flags & 1) && len) {
                uint8_t *plain = NULL;
                size_t plen = 0;
                int r = rpc_gzip_inflate(msg, len, INFLATE_LIMIT, &plain, &plen);
                FZ_CHECK(r == 0 || r == -EMSGSIZE || r == -EBADMSG || r == -ENOMEM);
                if (r == 0)
                        FZ_CHECK(plen <= INFLATE_LIMIT);
                free(plain);
        }
        free(msg);
        /* A flag the caller refuses stops the stream, as push_cb does. */
        return (flags & 0x7e) ? -EINVAL : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        struct fz_slicer sl;
        fz_slicer_init(&sl, data[0]);
        struct ctx c = { .inflate = data[1] & 1 };
        data += 2, size -= 2;

        struct rpc_envelope_reader r;
        rpc_envelope_reader_init(&r, ENV_LIMIT);
        size_t off = 0;
        while (off < size) {
                size_t n = fz_slicer_next(&sl, size - off);
                int ret = rpc_envelope_feed(&r, data + off, n, on_msg, &c);
                FZ_CHECK(ret == 0 || ret == -EMSGSIZE || ret == -EINVAL || ret == -ENOMEM);
                if (ret == -EMSGSIZE)
                        FZ_CHECK(rpc_envelope_announced(&r) > ENV_LIMIT);
                if (ret < 0)
                        break;
                off += n;
        }
        FZ_CHECK(c.total <= size);
        (void)rpc_envelope_partial(&r);
        rpc_envelope_reader_done(&r);
        return 0;
}
