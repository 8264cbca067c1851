/*
 * nft.c - libnftables adapter (see nft.h).
 *
 * A context is made per call because libnftables opens its netlink socket
 * in nft_ctx_new(): the context belongs to the namespace of the thread that
 * created it, and the slot code runs in a different namespace per call.
 */
#include "net/nft.h"

#include <errno.h>
#include <string.h>

#include <nftables/libnftables.h>

int net_nft_run(const char *rules, struct ha_err *err)
{
        struct nft_ctx *ctx;
        const char *msg;
        size_t n;
        int r = 0;

        ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!ctx)
                return ha_err_set(err, -ENOMEM, "nft: no context");
        if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0) {
                r = ha_err_set(err, -ENOMEM, "nft: no buffers");
                goto out_free;
        }
        if (nft_run_cmd_from_buffer(ctx, rules) != 0) {
                msg = nft_ctx_get_error_buffer(ctx);
                msg = msg ? msg : "unknown error";
                n = strcspn(msg, "\n");
                r = ha_err_set(err, -EIO, "nft: %.*s", (int)(n > 200 ? 200 : n), msg);
        }
out_free:
        nft_ctx_free(ctx);
        return r;
}
