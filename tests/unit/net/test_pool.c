/*
 * test_pool.c - the slot allocator as root: many cycles and many
 * concurrent acquirers leave nothing behind (namespaces, links, routes, nft
 * table, conntrack entries, fds); exhaustion and misuse are errors; start-up
 * recovery adopts owned slots and removes everything else of the prefix.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "net/netns.h"
#include "net/pool.h"
#include "net_test.h"

TestSuite(net_pool, .timeout = 120);

static net_pool *pool_new(struct net_pool_config *pc, uint32_t slots, uint32_t warm)
{
        struct ha_err e;
        net_pool *p = NULL;

        net_pool_config_default(pc);
        net_test_config(&pc->net, slots);
        pc->warm = warm;
        cr_assert_eq(net_pool_new(pc, &p, &e), 0, "%s", e.msg);
        cr_assert_eq(net_pool_recover(p, NULL, 0, &e), 0, "%s", e.msg);
        return p;
}

static void assert_no_conntrack(const struct net_config *c)
{
        for (uint32_t s = 1; s <= c->slots; s++)
                cr_assert_eq(net_ct_count_ip(c->sandbox_range.addr + s), 0,
                             "conntrack entries of slot %u remain", s);
}

/* Each cycle's scrub makes netlink and nft calls (a thread per nft call):
 * 5-15x slower under TSan, where 1000 cycles outran the suite's timeout on a
 * loaded machine. Fewer cycles still recycle every slot many times. */
#ifdef __SANITIZE_THREAD__
#define POOL_CYCLES 250
#else
#define POOL_CYCLES 1000
#endif

Test(net_pool, thousand_acquire_release_cycles_leave_nothing)
{
        struct net_pool_config pc;
        struct net_pool_stats st;
        struct net_slot_info info;
        struct ha_err e;
        net_pool *p;
        int fds, s;

        NEED_ROOT();
        fds = net_test_fd_count();
        p = pool_new(&pc, 8, 2);
        cr_assert_eq(net_pool_start(p), 0);
        cr_assert_eq(net_pool_start(p), -EALREADY);
        cr_assert_eq(net_pool_wait_idle(p, 10000), 0);
        net_pool_stats_get(p, &st);
        cr_assert_eq(st.ready, 2);
        for (int i = 0; i < POOL_CYCLES; i++) {
                s = net_pool_acquire(p, NULL, &info, &e);
                cr_assert(s >= 1 && s <= 8, "cycle %d: %d %s", i, s, e.msg);
                cr_assert_eq(info.slot, (uint32_t)s);
                cr_assert_eq(net_pool_release(p, (uint32_t)s), 0);
                cr_assert_eq(net_pool_release(p, (uint32_t)s), -EINVAL, "double release");
        }
        cr_assert_eq(net_pool_wait_idle(p, 20000), 0);
        net_pool_stats_get(p, &st);
        cr_assert_eq(st.in_use, 0);
        cr_assert_eq(st.dirty, 0);
        cr_log_info("%d cycles: builds=%lu scrubs=%lu teardowns=%lu", POOL_CYCLES,
                    (unsigned long)st.builds, (unsigned long)st.scrubs,
                    (unsigned long)st.teardowns);
        net_pool_free(p);
        cr_assert_eq(net_test_leftovers(&pc.net), 0);
        assert_no_conntrack(&pc.net);
        cr_assert_eq(net_test_fd_count(), fds);
}

struct racer {
        net_pool       *p;
        pthread_barrier_t *bar;
        int             slot;
        struct ha_err   e;
};

static void *race(void *arg)
{
        struct racer *r = arg;
        struct net_slot_info info;

        pthread_barrier_wait(r->bar);
        r->slot = net_pool_acquire(r->p, NULL, &info, &r->e);
        /* Hold the slot until everyone has one, so all 64 are distinct. */
        pthread_barrier_wait(r->bar);
        if (r->slot > 0 && net_pool_release(r->p, (uint32_t)r->slot) < 0)
                r->slot = -999;
        return NULL;
}

Test(net_pool, sixty_four_concurrent_acquirers_get_distinct_slots)
{
        enum { N = 64 };
        static struct racer rs[N];
        struct net_pool_config pc;
        pthread_barrier_t bar;
        pthread_t t[N];
        bool seen[80] = { false };
        net_pool *p;
        int fds;

        NEED_ROOT();
        fds = net_test_fd_count();
        p = pool_new(&pc, 72, 8);
        cr_assert_eq(net_pool_start(p), 0);
        pthread_barrier_init(&bar, NULL, N);
        for (int i = 0; i < N; i++) {
                rs[i] = (struct racer){ .p = p, .bar = &bar };
                cr_assert_eq(pthread_create(&t[i], NULL, race, &rs[i]), 0);
        }
        for (int i = 0; i < N; i++)
                pthread_join(t[i], NULL);
        pthread_barrier_destroy(&bar);
        for (int i = 0; i < N; i++) {
                cr_assert(rs[i].slot >= 1 && rs[i].slot <= 72, "racer %d: %d %s", i,
                          rs[i].slot, rs[i].e.msg);
                cr_assert(!seen[rs[i].slot], "slot %d handed out twice", rs[i].slot);
                seen[rs[i].slot] = true;
        }
        cr_assert_eq(net_pool_wait_idle(p, 30000), 0);
        net_pool_free(p);
        cr_assert_eq(net_test_leftovers(&pc.net), 0);
        assert_no_conntrack(&pc.net);
        cr_assert_eq(net_test_fd_count(), fds);
}

Test(net_pool, exhaustion_is_eagain_and_misuse_is_einval)
{
        struct net_pool_config pc;
        struct ha_err e;
        net_pool *p;
        int a, b;

        NEED_ROOT();
        p = pool_new(&pc, 2, 0);
        a = net_pool_acquire(p, NULL, NULL, &e);
        b = net_pool_acquire(p, NULL, NULL, &e);
        cr_assert(a > 0 && b > 0 && a != b);
        cr_assert_eq(net_pool_acquire(p, NULL, NULL, &e), -EAGAIN);
        cr_assert(strstr(e.msg, "in use"), "%s", e.msg);
        cr_assert_eq(net_pool_release(p, 0), -EINVAL);
        cr_assert_eq(net_pool_release(p, 3), -EINVAL);
        cr_assert_eq(net_pool_recover(p, NULL, 0, &e), -EBUSY);
        /* A bad policy fails the acquire and returns the slot. */
        struct net_cidr bad = { 0x0a000001, 8 };
        struct net_egress eg = { .mode = NET_EGRESS_DENY_LIST, .cidrs = &bad, .n_cidrs = 1 };
        cr_assert_eq(net_pool_release(p, (uint32_t)a), 0);
        cr_assert_eq(net_pool_acquire(p, &eg, NULL, &e), -EINVAL);
        cr_assert_eq(net_pool_egress_set(p, (uint32_t)a, NULL, &e), -EINVAL, "not in use");
        cr_assert_eq(net_pool_release(p, (uint32_t)b), 0);
        net_pool_free(p);
        cr_assert_eq(net_test_leftovers(&pc.net), 0);
}

Test(net_pool, slots_in_use_survive_free_and_recovery_adopts_them)
{
        struct net_pool_config pc;
        struct net_pool_stats st;
        struct ha_err e;
        char path[64], link[16];
        net_pool *p;
        int s[3];

        NEED_ROOT();
        p = pool_new(&pc, 8, 0);
        for (int i = 0; i < 3; i++)
                s[i] = net_pool_acquire(p, NULL, NULL, &e);
        cr_assert(s[0] == 1 && s[1] == 2 && s[2] == 3, "%d %d %d", s[0], s[1], s[2]);
        /* A "crash": the agent goes away with three slots in use. They and
         * the host table must survive (their sandboxes outlive the agent). */
        net_pool_free(p);
        cr_assert(net_slot_is_built(&pc.net, 1) && net_slot_is_built(&pc.net, 3));
        /* More debris: a half-built slot 5 (namespace only), a stray host
         * veth numbered past N, and slot 2's namespace torn away. */
        snprintf(path, sizeof path, NET_NETNS_DIR "/%s-5", pc.net.prefix);
        cr_assert_eq(net_netns_create(path, &e), 0, "%s", e.msg);
        snprintf(link, sizeof link, "%s-h99", pc.net.prefix);
        cr_assert_eq(net_test_run((char *[]){ "ip", "link", "add", link, "type", "veth", NULL }), 0);
        snprintf(path, sizeof path, NET_NETNS_DIR "/%s-2", pc.net.prefix);
        cr_assert_eq(net_netns_remove(path), 0);

        /* Restart: sandboxes own slots 1 and 2 (2 is broken: rebuilt). */
        cr_assert_eq(net_pool_new(&pc, &p, &e), 0, "%s", e.msg);
        uint32_t owned[] = { 1, 2 };
        cr_assert_eq(net_pool_recover(p, owned, 2, &e), 0, "%s", e.msg);
        cr_assert(net_slot_is_built(&pc.net, 1));
        cr_assert(net_slot_is_built(&pc.net, 2), "owned broken slot not rebuilt");
        cr_assert(!net_slot_is_built(&pc.net, 3), "unowned slot 3 not removed");
        snprintf(path, sizeof path, NET_NETNS_DIR "/%s-5", pc.net.prefix);
        cr_assert_eq(access(path, F_OK), -1, "stray namespace kept");
        cr_assert_eq(if_nametoindex(link), 0, "stray link kept");
        net_pool_stats_get(p, &st);
        cr_assert_eq(st.in_use, 2);
        cr_assert_eq(st.free, 6);
        /* New acquires never get an adopted slot; adopted ones release. */
        int n = net_pool_acquire(p, NULL, NULL, &e);
        cr_assert_eq(n, 3, "%d %s", n, e.msg);
        cr_assert_eq(net_pool_release(p, 1), 0);
        cr_assert_eq(net_pool_release(p, 2), 0);
        cr_assert_eq(net_pool_release(p, 3), 0);
        net_pool_free(p);
        cr_assert_eq(net_test_leftovers(&pc.net), 0);
}

Test(net_pool, new_refuses_ranges_the_host_already_routes)
{
        struct net_pool_config pc;
        struct ha_err e;
        char cidr[32], dummy[16], peer[16];
        net_pool *p = NULL;

        NEED_ROOT();
        net_pool_config_default(&pc);
        net_test_config(&pc.net, 4);
        pc.warm = 0;
        /* No dummy module here: a veth end serves as a routable device. */
        snprintf(dummy, sizeof dummy, "%s-d0", pc.net.prefix);
        snprintf(peer, sizeof peer, "%s-d1", pc.net.prefix);
        struct net_cidr in = { pc.net.sandbox_range.addr + 128, 25 };
        net_cidr_format(&in, cidr, sizeof cidr);
        cr_assert_eq(net_test_run((char *[]){ "ip", "link", "add", dummy, "type", "veth", "peer", "name", peer,
                                              NULL }), 0);
        cr_assert_eq(net_test_run((char *[]){ "ip", "link", "set", dummy, "up", NULL }), 0);
        cr_assert_eq(net_test_run((char *[]){ "ip", "route", "add", cidr, "dev", dummy, NULL }), 0);
        int r = net_pool_new(&pc, &p, &e);
        net_test_run((char *[]){ "ip", "link", "del", dummy, NULL });
        cr_assert_eq(r, -EADDRINUSE, "%d %s", r, e.msg);
        cr_assert(strstr(e.msg, cidr), "%s", e.msg);
        cr_assert_null(p);
}

Test(net_pool, debris_in_the_way_of_a_build_is_removed)
{
        struct net_pool_config pc;
        struct ha_err e;
        char path[64];
        net_pool *p = NULL;

        NEED_ROOT();
        net_pool_config_default(&pc);
        net_test_config(&pc.net, 2);
        pc.warm = 0;
        cr_assert_eq(net_pool_new(&pc, &p, &e), 0, "%s", e.msg);
        /* No recovery ran, and a namespace of slot 1 is in the way. */
        snprintf(path, sizeof path, NET_NETNS_DIR "/%s-1", pc.net.prefix);
        cr_assert_eq(net_netns_create(path, &e), 0, "%s", e.msg);
        cr_assert_eq(net_pool_acquire(p, NULL, NULL, &e), 1, "%s", e.msg);
        cr_assert(net_slot_is_built(&pc.net, 1));
        cr_assert_eq(net_pool_release(p, 1), 0);
        net_pool_free(p);
        cr_assert_eq(net_test_leftovers(&pc.net), 0);
}

Test(net_pool, background_build_failure_rolls_back_and_retries)
{
        struct net_pool_config pc;
        struct net_pool_stats st;
        struct net_fault f = { .fail_at = 3 };   /* the first build's NS_LO */
        struct ha_err e;
        net_pool *p = NULL;

        NEED_ROOT();
        net_pool_config_default(&pc);
        net_test_config(&pc.net, 4);
        pc.warm = 2;
        pc.fault = &f;                           /* only the refill thread builds */
        cr_assert_eq(net_pool_new(&pc, &p, &e), 0, "%s", e.msg);
        cr_assert_eq(net_pool_recover(p, NULL, 0, &e), 0, "%s", e.msg);
        cr_assert_eq(net_pool_start(p), 0);
        cr_assert_eq(net_pool_wait_idle(p, 10000), 0);
        net_pool_stats_get(p, &st);
        cr_assert_eq(st.build_failures, 1);
        cr_assert_eq(st.builds, 2);
        cr_assert_eq(st.ready, 2);
        net_pool_free(p);
        cr_assert_eq(net_test_leftovers(&pc.net), 0);
}

Test(net_pool, a_slot_whose_address_someone_else_routes_is_quarantined)
{
        struct net_pool_config pc;
        struct net_pool_stats st;
        struct net_slot_addr a;
        struct ha_err e;
        char dst[32];
        net_pool *p;

        NEED_ROOT();
        p = pool_new(&pc, 4, 0);
        cr_assert_eq(net_slot_addr_make(&pc.net, 1, &a), 0);
        snprintf(dst, sizeof dst, "%s/32", a.sandbox_ip_str);
        /* Not ours: another program's route to slot 1's address. */
        cr_assert_eq(net_test_run((char *[]){ "ip", "route", "add", "blackhole", dst, NULL }), 0);
        int r = net_pool_acquire(p, NULL, NULL, &e);
        cr_assert_eq(r, -EADDRINUSE, "%d %s", r, e.msg);
        cr_assert(strstr(e.msg, "slot 1 step HOST_ROUTE") && strstr(e.msg, "held by something else"),
                  "%s", e.msg);
        /* The slot sits out instead of failing every acquire after it. */
        cr_assert_eq(net_pool_acquire(p, NULL, NULL, &e), 2, "%s", e.msg);
        cr_assert_eq(net_pool_acquire(p, NULL, NULL, &e), 3, "%s", e.msg);
        net_pool_stats_get(p, &st);
        cr_assert_eq(st.quarantined, 1);
        cr_assert_eq(st.in_use, 2);
        cr_assert_eq(st.free, 1);
        /* Neither the failed build nor a teardown of slot 1 took that route. */
        struct ha_err te;
        cr_assert_eq(net_slot_teardown(&pc.net, 1, &te), 0, "%s", te.msg);
        cr_assert_eq(net_test_run((char *[]){ "ip", "route", "del", "blackhole", dst, NULL }), 0,
                     "the foreign route is gone");
        cr_assert_eq(net_pool_release(p, 2), 0);
        cr_assert_eq(net_pool_release(p, 3), 0);
        net_pool_free(p);
        cr_assert_eq(net_test_leftovers(&pc.net), 0);
}
