/*
 * pool.c - the slot allocator (see pool.h for the life cycle).
 *
 * Each slot number sits in exactly one place: the free stack (nothing
 * built), the ready stack (built and clean), the dirty ring (released, not
 * yet scrubbed), or nowhere while it is in use or busy (being built,
 * scrubbed or torn down by one thread, which owns it meanwhile). That
 * invariant makes every acquire and release a push or pop under one mutex,
 * O(1), and makes a double release detectable. The lock is never held
 * across netlink, nftables or namespace work: a slot is marked busy under
 * the lock, worked on unlocked, then committed.
 *
 * Lock order: only p->lock; nothing else is taken under it.
 */
#include "net/pool.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "net/host.h"
#include "net/pool_int.h"

/* ---- slot number containers (all under p->lock) ------------------------ */

void net_pool_free_push(net_pool *p, uint32_t s)
{
        p->state[s] = SLOT_FREE;
        p->free_stk[p->n_free++] = s;
}

void net_pool_ready_push(net_pool *p, uint32_t s)
{
        p->state[s] = SLOT_READY;
        p->ready_stk[p->n_ready++] = s;
}

static void dirty_push(net_pool *p, uint32_t s)
{
        p->state[s] = SLOT_DIRTY;
        p->dirty_ring[(p->dirty_head + p->n_dirty) % p->cfg.slots] = s;
        p->n_dirty++;
}

static uint32_t dirty_pop(net_pool *p)
{
        uint32_t s = p->dirty_ring[p->dirty_head];

        p->dirty_head = (p->dirty_head + 1) % p->cfg.slots;
        p->n_dirty--;
        return s;
}

static uint64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Takes a slot whose build just failed (nothing of it is left) back: to the
 * free stack, or out of rotation when the failure is the slot's own. */
static void settle_failed_build(net_pool *p, uint32_t s, int r)
{
        if (r != -EADDRINUSE && r != -EEXIST) {
                net_pool_free_push(p, s);
                return;
        }
        p->state[s] = SLOT_QUARANTINED;
        p->quarantine_until[s] = mono_ms() + QUARANTINE_MS;
        p->n_quarantined++;
        ha_log_warn("net.slot.quarantined", "slot=%u errno=%d for_ms=%d", s, -r, QUARANTINE_MS);
}

/* Returns slots whose quarantine is over to the free stack. */
static void quarantine_expire(net_pool *p)
{
        if (p->n_quarantined == 0)
                return;
        uint64_t now = mono_ms();
        for (uint32_t s = 1; s <= p->cfg.slots; s++) {
                if (p->state[s] == SLOT_QUARANTINED && p->quarantine_until[s] <= now) {
                        p->n_quarantined--;
                        net_pool_free_push(p, s);
                }
        }
}

/* Puts every FREE slot on the free stack, lowest number on top. */
void net_pool_free_stack_rebuild(net_pool *p)
{
        p->n_free = 0;
        for (uint32_t s = p->cfg.slots; s >= 1; s--)
                if (p->state[s] == SLOT_FREE)
                        p->free_stk[p->n_free++] = s;
}

/* ---- public ------------------------------------------------------------ */

void net_pool_config_default(struct net_pool_config *c)
{
        memset(c, 0, sizeof *c);
        net_config_default(&c->net);
        c->warm = 8;
}

int net_pool_new(const struct net_pool_config *cfg, net_pool **ret_pool,
                 struct ha_err *err)
{
        pthread_condattr_t ca;
        net_pool *p;
        uint32_t n;
        int r;

        r = net_config_validate(&cfg->net, err);
        if (r < 0)
                return r;
        n = cfg->net.slots;
        if (cfg->warm > n)
                return ha_err_set(err, -EINVAL, "warm pool %u exceeds %u slots", cfg->warm, n);
        r = net_host_check(&cfg->net, err);
        if (r < 0)
                return r;

        p = calloc(1, sizeof *p);
        if (!p)
                return ha_err_set(err, -ENOMEM, "out of memory");
        p->cfg = cfg->net;
        p->warm = cfg->warm;
        p->fault = cfg->fault;
        p->state = calloc(n + 1, sizeof *p->state);
        p->egress_set = calloc(n + 1, sizeof *p->egress_set);
        p->host_pkts = malloc((n + 1) * sizeof *p->host_pkts);
        p->free_stk = calloc(n, sizeof *p->free_stk);
        p->ready_stk = calloc(n, sizeof *p->ready_stk);
        p->dirty_ring = calloc(n, sizeof *p->dirty_ring);
        p->quarantine_until = calloc(n + 1, sizeof *p->quarantine_until);
        if (!p->state || !p->egress_set || !p->host_pkts || !p->free_stk || !p->ready_stk ||
            !p->dirty_ring || !p->quarantine_until) {
                r = ha_err_set(err, -ENOMEM, "out of memory");
                goto out_free;
        }
        for (uint32_t s = 0; s <= n; s++)
                p->host_pkts[s] = NET_PKTS_UNKNOWN;
        r = net_host_setup(&p->cfg, err);
        if (r < 0)
                goto out_free;
        pthread_mutex_init(&p->lock, NULL);
        /* Timed waits use CLOCK_MONOTONIC: wall-clock jumps must not stretch
         * or skip the back-off. */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->work, &ca);
        pthread_cond_init(&p->idle, &ca);
        pthread_condattr_destroy(&ca);
        net_pool_free_stack_rebuild(p);
        p->st.slots = n;
        *ret_pool = p;
        return 0;

out_free:
        free(p->quarantine_until);
        free(p->dirty_ring);
        free(p->ready_stk);
        free(p->free_stk);
        free(p->host_pkts);
        free(p->egress_set);
        free(p->state);
        free(p);
        return r;
}

static void log_failure(const char *event, uint32_t slot, int r, const struct ha_err *e)
{
        ha_log_warn(event, "slot=%u errno=%d msg=\"%s\"", slot, -r, e->msg);
}

/* Takes a slot the caller owns (state BUSY) back to ready or free after a
 * scrub; tears it down when the warm pool is full or the scrub failed. */
static void settle_scrubbed(net_pool *p, uint32_t s, int r, struct ha_err *e)
{
        uint64_t pkts;

        /* Keep up to twice |warm| clean slots: the refill thread tops the
         * pool up as soon as an acquire takes one, so with a cap of |warm| a
         * steady acquire/release cycle would build one slot and tear down
         * another (~40 ms of kernel work) for every sandbox. */
        if (r == 0 && p->n_ready < 2 * p->warm) {
                net_pool_ready_push(p, s);
                p->st.scrubs++;
                return;
        }
        if (r < 0)
                log_failure("net.slot.scrub_failed", s, r, e);
        pkts = r == 0 ? p->host_pkts[s] : NET_PKTS_UNKNOWN;
        p->host_pkts[s] = NET_PKTS_UNKNOWN;
        pthread_mutex_unlock(&p->lock);
        r = net_slot_teardown_since(&p->cfg, s, pkts, e);
        if (r < 0)
                log_failure("net.slot.teardown_failed", s, r, e);
        pthread_mutex_lock(&p->lock);
        p->st.teardowns++;
        net_pool_free_push(p, s);
}

/* Builds slot |s|. A namespace or link already holding its name can only be
 * debris of ours (names carry our prefix) that recovery did not see, e.g.
 * when net_pool_recover() was not called: remove it and build once more,
 * rather than failing on that slot forever. */
static int build_fresh(net_pool *p, uint32_t s, struct ha_err *err)
{
        uint64_t pkts;
        int r = net_slot_build(&p->cfg, s, p->fault, err);

        if (r == -EEXIST) {
                ha_log_warn("net.slot.debris_removed", "slot=%u msg=\"%s\"", s, err ? err->msg : "");
                net_slot_teardown(&p->cfg, s, NULL);
                r = net_slot_build(&p->cfg, s, p->fault, err);
        }
        /* A new veth: the host holds no entry of the address that a
         * sandbox made (teardown flushed them), so counting starts here. */
        pkts = r == 0 ? net_slot_host_packets(&p->cfg, s) : NET_PKTS_UNKNOWN;
        pthread_mutex_lock(&p->lock);
        p->host_pkts[s] = pkts;
        pthread_mutex_unlock(&p->lock);
        return r;
}

static bool pool_idle(const net_pool *p)
{
        bool want_more = p->started && p->n_ready < p->warm && p->n_free > 0;
        return p->n_dirty == 0 && p->busy == 0 && !want_more;
}

static void deadline_in(struct timespec *ts, int ms)
{
        clock_gettime(CLOCK_MONOTONIC, ts);
        ts->tv_sec += ms / 1000;
        ts->tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

static void *refill_main(void *arg)
{
        net_pool *p = arg;
        struct ha_err e;
        struct timespec ts;
        uint32_t s;
        int r;

        pthread_mutex_lock(&p->lock);
        while (!p->stop) {
                quarantine_expire(p);
                if (p->n_dirty > 0) {
                        uint64_t pkts;
                        bool reset;
                        s = dirty_pop(p);
                        p->state[s] = SLOT_BUSY;
                        p->busy++;
                        reset = p->egress_set[s];
                        pkts = p->host_pkts[s];
                        pthread_mutex_unlock(&p->lock);
                        r = net_slot_scrub(&p->cfg, s, reset, &pkts, &e);
                        pthread_mutex_lock(&p->lock);
                        p->host_pkts[s] = pkts;
                        if (r == 0)
                                p->egress_set[s] = false;
                        settle_scrubbed(p, s, r, &e);
                        p->busy--;
                        pthread_cond_broadcast(&p->idle);
                        continue;
                }
                if (p->n_ready + p->building < p->warm && p->n_free > 0) {
                        s = p->free_stk[--p->n_free];
                        p->state[s] = SLOT_BUSY;
                        p->busy++;
                        p->building++;
                        pthread_mutex_unlock(&p->lock);
                        r = build_fresh(p, s, &e);
                        pthread_mutex_lock(&p->lock);
                        p->busy--;
                        p->building--;
                        if (r == 0) {
                                p->st.builds++;
                                net_pool_ready_push(p, s);
                                pthread_cond_broadcast(&p->idle);
                                continue;
                        }
                        p->st.build_failures++;
                        log_failure("net.slot.build_failed", s, r, &e);
                        settle_failed_build(p, s, r);
                        pthread_cond_broadcast(&p->idle);
                        deadline_in(&ts, REFILL_BACKOFF_MS);
                        while (!p->stop &&
                               pthread_cond_timedwait(&p->work, &p->lock, &ts) != ETIMEDOUT)
                                ;
                        continue;
                }
                pthread_cond_broadcast(&p->idle);
                if (p->n_quarantined > 0) {
                        /* Look again when quarantines may have ended. */
                        deadline_in(&ts, REFILL_BACKOFF_MS);
                        pthread_cond_timedwait(&p->work, &p->lock, &ts);
                } else {
                        pthread_cond_wait(&p->work, &p->lock);
                }
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int net_pool_start(net_pool *p)
{
        int r;

        pthread_mutex_lock(&p->lock);
        if (p->started) {
                pthread_mutex_unlock(&p->lock);
                return -EALREADY;
        }
        r = pthread_create(&p->thread, NULL, refill_main, p);
        if (r == 0)
                p->started = true;
        pthread_mutex_unlock(&p->lock);
        return -r;
}

int net_pool_acquire(net_pool *p, const struct net_egress *eg,
                     struct net_slot_info *ret_info, struct ha_err *err)
{
        enum { FROM_READY, FROM_DIRTY, FROM_FREE } from;
        bool custom = eg && eg->mode != NET_EGRESS_ALLOW_ALL, reset = false;
        struct net_slot_info info;
        uint64_t pkts = NET_PKTS_UNKNOWN;
        uint32_t s;
        int r;

        /* A bad policy must not cost a slot build or scrub. */
        r = net_egress_validate(eg, err);
        if (r < 0)
                return r;
        pthread_mutex_lock(&p->lock);
        quarantine_expire(p);
        if (p->n_ready > 0) {
                s = p->ready_stk[--p->n_ready];
                p->state[s] = SLOT_IN_USE;
                from = FROM_READY;
        } else if (p->n_free > 0) {
                /* Building (~5 ms) beats scrubbing here: a scrub walks the
                 * host's whole conntrack table twice. */
                s = p->free_stk[--p->n_free];
                p->state[s] = SLOT_BUSY;
                p->busy++;
                from = FROM_FREE;
        } else if (p->n_dirty > 0) {
                s = dirty_pop(p);
                p->state[s] = SLOT_BUSY;
                p->busy++;
                reset = p->egress_set[s];
                pkts = p->host_pkts[s];
                from = FROM_DIRTY;
        } else {
                uint32_t q = p->n_quarantined;
                pthread_mutex_unlock(&p->lock);
                if (q)
                        return ha_err_set(err, -EAGAIN,
                                          "all %u network slots are in use or quarantined (%u "
                                          "after failed builds; see net.slot.quarantined)",
                                          p->cfg.slots, q);
                return ha_err_set(err, -EAGAIN, "all %u network slots are in use",
                                  p->cfg.slots);
        }
        p->touched = true;
        /* Set before the rules go in, so a failure half-way still resets. A
         * dirty slot's old policy is removed by the scrub below. */
        p->egress_set[s] = custom;
        pthread_mutex_unlock(&p->lock);
        /* Woken after the unlock, the refill thread does not contend for it. */
        pthread_cond_signal(&p->work);

        if (from == FROM_DIRTY) {
                r = net_slot_scrub(&p->cfg, s, reset, &pkts, err);
                pthread_mutex_lock(&p->lock);
                p->host_pkts[s] = pkts;
                pthread_mutex_unlock(&p->lock);
                if (r < 0) {
                        /* Start over from nothing rather than hand out a slot
                         * in an unknown state. */
                        net_slot_teardown(&p->cfg, s, NULL);
                        from = FROM_FREE;
                }
        }
        if (from == FROM_FREE)
                r = build_fresh(p, s, err);
        if (from != FROM_READY) {
                pthread_mutex_lock(&p->lock);
                p->busy--;
                if (r < 0) {
                        p->st.build_failures++;
                        settle_failed_build(p, s, r);
                } else {
                        if (from == FROM_FREE)
                                p->st.builds++;
                        else
                                p->st.scrubs++;
                        p->state[s] = SLOT_IN_USE;
                }
                pthread_cond_broadcast(&p->idle);
                pthread_mutex_unlock(&p->lock);
                if (r < 0)
                        return r;
        }
        if (custom) {
                r = net_slot_egress_set(&p->cfg, s, eg, err);
                if (r < 0) {
                        net_pool_release(p, s);
                        return r;
                }
        }
        if (ret_info) {
                net_slot_info_make(&p->cfg, s, &info);
                *ret_info = info;
        }
        return (int)s;
}

int net_pool_release(net_pool *p, uint32_t slot)
{
        pthread_mutex_lock(&p->lock);
        if (slot < 1 || slot > p->cfg.slots || p->state[slot] != SLOT_IN_USE) {
                pthread_mutex_unlock(&p->lock);
                return -EINVAL;
        }
        dirty_push(p, slot);
        pthread_mutex_unlock(&p->lock);
        pthread_cond_signal(&p->work);
        return 0;
}

int net_pool_egress_set(net_pool *p, uint32_t slot, const struct net_egress *eg,
                        struct ha_err *err)
{
        bool in_use;

        pthread_mutex_lock(&p->lock);
        in_use = slot >= 1 && slot <= p->cfg.slots && p->state[slot] == SLOT_IN_USE;
        if (in_use)
                p->egress_set[slot] = true;
        pthread_mutex_unlock(&p->lock);
        if (!in_use)
                return ha_err_set(err, -EINVAL, "slot %u is not in use", slot);
        return net_slot_egress_set(&p->cfg, slot, eg, err);
}

int net_pool_info(const net_pool *p, uint32_t slot, struct net_slot_info *ret)
{
        return net_slot_info_make(&p->cfg, slot, ret);
}

const struct net_config *net_pool_net_config(const net_pool *p)
{
        return &p->cfg;
}

void net_pool_stats_get(net_pool *p, struct net_pool_stats *ret)
{
        uint32_t in_use = 0;

        pthread_mutex_lock(&p->lock);
        for (uint32_t s = 1; s <= p->cfg.slots; s++)
                in_use += p->state[s] == SLOT_IN_USE;
        *ret = p->st;
        ret->free = p->n_free;
        ret->ready = p->n_ready;
        ret->dirty = p->n_dirty;
        ret->busy = p->busy;
        ret->in_use = in_use;
        ret->quarantined = p->n_quarantined;
        pthread_mutex_unlock(&p->lock);
}

int net_pool_wait_idle(net_pool *p, int timeout_ms)
{
        struct timespec ts;
        int r = 0;

        deadline_in(&ts, timeout_ms);
        pthread_mutex_lock(&p->lock);
        while (!pool_idle(p) && r == 0) {
                if (!p->started) {
                        r = -EBUSY;     /* nobody will make progress */
                        break;
                }
                if (pthread_cond_timedwait(&p->idle, &p->lock, &ts) == ETIMEDOUT)
                        r = pool_idle(p) ? 0 : -ETIMEDOUT;
        }
        pthread_mutex_unlock(&p->lock);
        return r;
}

void net_pool_free(net_pool *p)
{
        bool in_use = false;
        struct ha_err e;

        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
        if (p->started)
                pthread_join(p->thread, NULL);

        /* The thread is gone and the caller promises no concurrent calls. */
        for (uint32_t s = 1; s <= p->cfg.slots; s++) {
                if (p->state[s] == SLOT_READY || p->state[s] == SLOT_DIRTY ||
                    p->state[s] == SLOT_BUSY) {
                        if (net_slot_teardown_since(&p->cfg, s, p->host_pkts[s], &e) < 0)
                                ha_log_warn("net.slot.teardown_failed", "slot=%u msg=\"%s\"",
                                            s, e.msg);
                } else if (p->state[s] == SLOT_IN_USE) {
                        in_use = true;
                }
        }
        if (!in_use && net_host_remove(&p->cfg, &e) < 0)
                ha_log_warn("net.host.remove_failed", "msg=\"%s\"", e.msg);
        pthread_cond_destroy(&p->idle);
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->lock);
        free(p->quarantine_until);
        free(p->dirty_ring);
        free(p->ready_stk);
        free(p->free_stk);
        free(p->host_pkts);
        free(p->egress_set);
        free(p->state);
        free(p);
}
