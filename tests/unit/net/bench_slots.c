/*
 * bench_slots.c - network slot pool benchmark (root; not a ctest test).
 *
 *   net_bench_slots [iterations]     (default 500)
 *   net_bench_slots --stress [cycles] 64 threads acquire/release |cycles|
 *                                     times each (default 20) against one
 *                                     pool: a race driver for TSan builds,
 *                                     where Criterion cannot run
 *
 * Reports: cold build of one slot (ms, p50/p99), teardown (ms), acquire
 * latency from a warm pool (us, p50/p99), release latency (us), and the
 * refill rate of the background thread (slots built per second, and slots
 * scrubbed per second). Uses a random prefix and ranges like the tests, and
 * removes everything it made.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "net/host.h"
#include "net/pool.h"
#include "net/slot.h"

static double now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
        size_t i = (size_t)(p * (double)(n - 1) + 0.5);
        qsort(v, n, sizeof *v, cmp_d);
        return v[i];
}

static int pick_config(struct net_config *c, uint32_t slots)
{
        static const char cs[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        struct ha_err e;

        net_config_default(c);
        for (int attempt = 0; attempt < 50; attempt++) {
                uint32_t r = 0;
                if (getrandom(&r, sizeof r, 0) != sizeof r)
                        return -EIO;
                c->prefix[0] = 'b';
                for (int i = 1; i < 4; i++)
                        c->prefix[i] = cs[(r >> (i * 6)) % 36];
                c->prefix[4] = '\0';
                c->veth_range = (struct net_cidr){
                        (10u << 24) | ((100 + r % 100) << 16) | (((r >> 8) % 128) * 2) << 8, 23 };
                c->sandbox_range = (struct net_cidr){
                        (10u << 24) | ((200 + (r >> 16) % 50) << 16) | ((r >> 24) << 8), 24 };
                c->slots = slots;
                if (net_config_validate(c, &e) == 0 && net_host_check(c, &e) == 0)
                        return 0;
        }
        return -EADDRINUSE;
}

struct stress_arg {
        net_pool *p;
        int       cycles;
        int       failures;
        bool      deny;         /* half the threads apply a policy */
};

static void *stress_thread(void *arg)
{
        struct stress_arg *a = arg;
        struct net_slot_info info;
        struct ha_err e;

        struct net_egress deny = { .mode = NET_EGRESS_DENY_ALL };

        for (int i = 0; i < a->cycles; i++) {
                int s = net_pool_acquire(a->p, a->deny ? &deny : NULL, &info, &e);
                if (s < 0 || net_pool_release(a->p, (uint32_t)s) < 0)
                        a->failures++;
        }
        return NULL;
}

static int stress(int cycles)
{
        enum { THREADS = 64 };
        static struct stress_arg args[THREADS];
        struct net_pool_config pc;
        struct net_pool_stats st;
        pthread_t t[THREADS];
        struct ha_err e;
        net_pool *p;
        int failures = 0;
        double t0;

        net_pool_config_default(&pc);
        if (pick_config(&pc.net, 80) < 0)
                return 1;
        if (net_pool_new(&pc, &p, &e) < 0 || net_pool_recover(p, NULL, 0, &e) < 0 ||
            net_pool_start(p) < 0) {
                fprintf(stderr, "pool: %s\n", e.msg);
                return 1;
        }
        t0 = now_us();
        for (int i = 0; i < THREADS; i++) {
                args[i] = (struct stress_arg){ .p = p, .cycles = cycles, .deny = i % 2 };
                pthread_create(&t[i], NULL, stress_thread, &args[i]);
        }
        for (int i = 0; i < THREADS; i++) {
                pthread_join(t[i], NULL);
                failures += args[i].failures;
        }
        net_pool_wait_idle(p, 60000);
        net_pool_stats_get(p, &st);
        printf("stress: %d threads x %d cycles in %.0f ms, failures=%d builds=%lu scrubs=%lu "
               "teardowns=%lu in_use=%u\n", THREADS, cycles, (now_us() - t0) / 1e3, failures,
               (unsigned long)st.builds, (unsigned long)st.scrubs,
               (unsigned long)st.teardowns, st.in_use);
        net_pool_free(p);
        return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
        int iters = argc > 1 ? atoi(argv[1]) : 500;
        enum { COLD = 30, WARM = 16, SLOTS = 64 };
        struct net_pool_config pc;
        struct net_pool_stats st;
        struct ha_err e;
        double build[COLD], down[COLD], t0, t1, *acq, *rel;
        net_pool *p;
        int s;

        if (geteuid() != 0) {
                fprintf(stderr, "bench_slots: needs root\n");
                return 77;
        }
        if (argc > 1 && strcmp(argv[1], "--stress") == 0)
                return stress(argc > 2 ? atoi(argv[2]) : 20);
        if (iters < 10)
                iters = 10;
        acq = calloc((size_t)iters, sizeof *acq);
        rel = calloc((size_t)iters, sizeof *rel);
        if (!acq || !rel)
                return 1;
        net_pool_config_default(&pc);
        if (pick_config(&pc.net, SLOTS) < 0) {
                fprintf(stderr, "bench_slots: no free address ranges\n");
                return 1;
        }
        pc.warm = WARM;
        printf("prefix=%s slots=%d warm=%d iterations=%d\n", pc.net.prefix, SLOTS, WARM, iters);

        /* Cold build and teardown of one slot, one at a time. */
        if (net_host_setup(&pc.net, &e) < 0) {
                fprintf(stderr, "host setup: %s\n", e.msg);
                return 1;
        }
        for (int i = 0; i < COLD; i++) {
                t0 = now_us();
                if (net_slot_build(&pc.net, 1, NULL, &e) < 0) {
                        fprintf(stderr, "build: %s\n", e.msg);
                        return 1;
                }
                t1 = now_us();
                net_slot_teardown(&pc.net, 1, &e);
                build[i] = (t1 - t0) / 1e3;
                down[i] = (now_us() - t1) / 1e3;
        }
        printf("cold build   ms: p50 %.2f  p99 %.2f\n", pct(build, COLD, 0.5), pct(build, COLD, 0.99));
        printf("teardown     ms: p50 %.2f  p99 %.2f\n", pct(down, COLD, 0.5), pct(down, COLD, 0.99));

        if (net_pool_new(&pc, &p, &e) < 0 || net_pool_recover(p, NULL, 0, &e) < 0) {
                fprintf(stderr, "pool: %s\n", e.msg);
                return 1;
        }
        /* Refill rate: an empty pool filling WARM slots in the background. */
        t0 = now_us();
        net_pool_start(p);
        if (net_pool_wait_idle(p, 60000) < 0) {
                fprintf(stderr, "pool never filled\n");
                return 1;
        }
        t1 = now_us();
        printf("refill build slots/s: %.1f (%d slots in %.1f ms)\n",
               WARM / ((t1 - t0) / 1e6), WARM, (t1 - t0) / 1e3);

        /* Acquire from a warm pool, release; wait for the scrub in between so
         * every acquire finds a ready slot. */
        for (int i = 0; i < iters; i++) {
                t0 = now_us();
                s = net_pool_acquire(p, NULL, NULL, &e);
                t1 = now_us();
                if (s < 0) {
                        fprintf(stderr, "acquire: %s\n", e.msg);
                        return 1;
                }
                net_pool_release(p, (uint32_t)s);
                rel[i] = now_us() - t1;
                acq[i] = t1 - t0;
                net_pool_wait_idle(p, 10000);
        }
        printf("acquire (warm) us: p50 %.1f  p99 %.1f\n", pct(acq, (size_t)iters, 0.5),
               pct(acq, (size_t)iters, 0.99));
        printf("release      us: p50 %.1f  p99 %.1f\n", pct(rel, (size_t)iters, 0.5),
               pct(rel, (size_t)iters, 0.99));

        /* Scrub rate: release WARM slots at once, time until all are clean. */
        int held[WARM];
        for (int i = 0; i < WARM; i++)
                held[i] = net_pool_acquire(p, NULL, NULL, &e);
        net_pool_wait_idle(p, 60000);   /* the refill thread rebuilds WARM more */
        t0 = now_us();
        for (int i = 0; i < WARM; i++)
                net_pool_release(p, (uint32_t)held[i]);
        net_pool_wait_idle(p, 60000);
        t1 = now_us();
        net_pool_stats_get(p, &st);
        printf("released slots scrubbed or torn down /s: %.1f (%d in %.1f ms)\n",
               WARM / ((t1 - t0) / 1e6), WARM, (t1 - t0) / 1e3);
        printf("stats: builds=%lu scrubs=%lu teardowns=%lu failures=%lu\n",
               (unsigned long)st.builds, (unsigned long)st.scrubs,
               (unsigned long)st.teardowns, (unsigned long)st.build_failures);
        net_pool_free(p);
        free(acq);
        free(rel);
        return 0;
}
