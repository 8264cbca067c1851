/*
 * pool.h - the network slot allocator: the module's entry point for the
 * sandbox manager.
 *
 * Slots 1..N are either free (nothing built), ready (built, clean, waiting),
 * in use (owned by a sandbox), or dirty (released, waiting to be scrubbed).
 * Acquire takes a ready slot in O(1); a background thread keeps |warm|
 * slots ready and scrubs released ones (conntrack flushed in the namespace
 * and for the sandbox address on the host, egress reset to allow-all)
 * before they are handed out again. Release is O(1): it only queues.
 * All functions are thread-safe.
 *
 * Life cycle (daemon start):
 *   net_pool_new()      validate config, check host routes, host table
 *   net_pool_recover()  adopt slots of live sandboxes, remove every other
 *                       namespace, link and route with our prefix
 *   net_pool_start()    start prebuilding
 *   ... net_pool_acquire() / net_pool_release() ...
 *   net_pool_free()     at shutdown; slots in use survive for the next run
 */
#ifndef NET_POOL_H
#define NET_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/egress.h"
#include "net/slot.h"
#include "net/slot_addr.h"

typedef struct net_pool net_pool;

struct net_pool_config {
        struct net_config net;
        /* Slots kept built and clean ahead of demand (default 8; 0 = build
         * on acquire). Released slots are kept clean up to twice this and
         * torn down beyond it. */
        uint32_t          warm;
        /* Tests only: failure injection for every build (NULL otherwise).
         * Not thread-safe: do not combine with net_pool_start(). */
        struct net_fault *fault;
};

struct net_pool_stats {
        uint32_t slots, free, ready, in_use, dirty, busy; /* busy: building/scrubbing */
        uint32_t quarantined;   /* out of rotation for a while after a failed build */
        uint64_t builds, build_failures, scrubs, teardowns;
};

/* Fills |c| with defaults (net_config_default(), warm = 8). */
void net_pool_config_default(struct net_pool_config *c);

/* Validates |cfg|, checks the host's routes against its ranges, enables
 * forwarding and installs the host table. Builds nothing yet. Returns 0,
 * -EINVAL (bad config), -EADDRINUSE (a host route overlaps), or -errno;
 * |err| says what. */
int net_pool_new(const struct net_pool_config *cfg, net_pool **ret_pool,
                 struct ha_err *err);

/* Start-up recovery, before net_pool_start() and any acquire (else
 * -EBUSY). Slots listed in |owned| (numbers of live sandboxes) are adopted
 * as in use: kept when intact, rebuilt when not. Every other namespace,
 * host veth and route with our prefix or in our ranges is removed. Returns
 * 0, -EINVAL (a number outside 1..N), or the first -errno of a slot that
 * could not be rebuilt (it still counts as in use, so it is never handed
 * out twice; releasing it cleans it up). */
int net_pool_recover(net_pool *p, const uint32_t *owned, size_t n_owned,
                     struct ha_err *err);

/* Starts the background thread that keeps |warm| slots ready and scrubs
 * released ones. Returns 0, -EALREADY, or -errno. */
int net_pool_start(net_pool *p);

/* Takes a slot and applies |eg| (NULL = allow all). A ready slot comes
 * first (microseconds); else one is built here (milliseconds); else a
 * released one is scrubbed here.
 * Returns the slot number (>= 1) and fills |ret_info|, or -EAGAIN when all
 * N slots are in use (or quarantined), or -errno (the slot goes back to the
 * pool; after -EADDRINUSE or -EEXIST, errors of that slot alone, it is
 * quarantined for a minute so the next acquire takes another). */
int net_pool_acquire(net_pool *p, const struct net_egress *eg,
                     struct net_slot_info *ret_info, struct ha_err *err);

/* Gives back a slot taken by acquire (or adopted); it is scrubbed before
 * reuse. Call it only after the sandbox's VMM has exited: the scrub and a
 * teardown act on the namespace the VMM runs in. Returns 0, or -EINVAL
 * when |slot| is not in use (double release). */
int net_pool_release(net_pool *p, uint32_t slot);

/* Replaces the egress policy of an in-use slot. Returns 0, -EINVAL (not in
 * use, or bad policy), or -errno. */
int net_pool_egress_set(net_pool *p, uint32_t slot, const struct net_egress *eg,
                        struct ha_err *err);

/* Names and addresses of |slot| (pure). Returns 0 or -ERANGE. */
int net_pool_info(const net_pool *p, uint32_t slot, struct net_slot_info *ret);

/* The validated config the pool runs with (immutable). */
const struct net_config *net_pool_net_config(const net_pool *p);

void net_pool_stats_get(net_pool *p, struct net_pool_stats *ret);

/* Waits until nothing is dirty or being built and |warm| slots (or all
 * free ones) are ready. Returns 0, -ETIMEDOUT, or -EBUSY when work is
 * pending but net_pool_start() was never called. For tests, benchmarks
 * and an orderly shutdown. */
int net_pool_wait_idle(net_pool *p, int timeout_ms);

/* Stops the thread and tears down every ready and dirty slot. Slots in use
 * are left alone (their sandboxes outlive the agent; the next run adopts
 * them) and so is the host table while any remain: release every slot
 * first for a clean host (tests). No other call may run concurrently.
 * NULL is a no-op. */
void net_pool_free(net_pool *p);

#endif
