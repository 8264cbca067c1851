/*
 * nft.c - libnftables adapter (see nft.h).
 *
 * A context is made per call because libnftables opens its netlink socket
 * in nft_ctx_new(): the context belongs to the namespace of the thread that
 * created it, and the slot code runs in a different namespace per call.
 *
 * libnftables waits on that socket with select(): given a descriptor at or
 * above FD_SETSIZE (1024), glibc's fortified FD_SET aborts the process. An
 * agent holding a thousand sandboxes holds more descriptors than that, so
 * each call runs on a short-lived thread with a private descriptor table
 * (unshare(CLONE_FILES)) from which everything above stderr is closed: the
 * socket then gets a low number whatever the agent holds. The new thread
 * inherits the caller's network namespace (namespaces are per thread and
 * copied at clone), so the rules still land where the caller is.
 */
#include "net/nft.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include <nftables/libnftables.h>

/* TSan keeps its own view of descriptors and cannot follow a private
 * table: in TSan builds nft runs in the calling thread (test_nft skips its
 * many-descriptors case there). */
#if defined(__SANITIZE_THREAD__)
#define NFT_IN_PLACE 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NFT_IN_PLACE 1
#endif
#endif

static int nft_run_here(const char *rules, struct ha_err *err)
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

#ifndef NFT_IN_PLACE
struct nft_job {
        const char *rules;
        struct ha_err *err;
        int r;
};

static void *nft_thread(void *arg)
{
        struct nft_job *j = arg;
        /* Private table, then drop the copies of the agent's descriptors
         * (the originals stay open in the shared table). */
        if (unshare(CLONE_FILES) < 0) {
                j->r = ha_err_set(j->err, -errno, "nft: unshare(CLONE_FILES): %s", strerror(errno));
                return NULL;
        }
        if (close_range(3, ~0U, 0) < 0) {
                j->r = ha_err_set(j->err, -errno, "nft: close_range: %s", strerror(errno));
                return NULL;
        }
        j->r = nft_run_here(j->rules, j->err);
        return NULL;
}
#endif

int net_nft_run(const char *rules, struct ha_err *err)
{
#ifdef NFT_IN_PLACE
        return nft_run_here(rules, err);
#else
        struct nft_job j = { rules, err, 0 };
        pthread_t t;
        int e = pthread_create(&t, NULL, nft_thread, &j);
        if (e)
                return ha_err_set(err, -e, "nft: no thread: %s", strerror(e));
        pthread_join(t, NULL);
        return j.r;
#endif
}
