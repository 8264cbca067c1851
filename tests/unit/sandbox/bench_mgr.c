/*
 * bench_mgr.c - latency of the sandbox manager itself, with the fake backend
 * (every backend call returns at once), so the figures are the manager's own
 * cost: validation, admission, locking, SQLite writes (WAL, synchronous=
 * NORMAL; 4 row writes per create, 2 per destroy) and event fan-out.
 *
 *   sbx_bench_mgr [N per level] [state parent dir]
 *
 * For concurrency 1, 8 and 32: N creates (create -> RUNNING returned) spread
 * over the threads, then N destroys; prints p50/p99 of each and creates per
 * second. Then the resident memory per live sandbox with N alive.
 * Build: cmake --build <dir> --target sbx_bench_mgr (not part of `all`).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "fake_backend.h"
#include "sandbox/sbx.h"

struct run {
        sbx_mgr *m;
        int n, conc, level;
        uint64_t *create_ns, *destroy_ns;
        atomic_int next;
        atomic_int errors;
};

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, int n, double p)
{
        qsort(v, (size_t)n, sizeof *v, cmp_u64);
        int i = (int)(p * (n - 1) + 0.5);
        return (double)v[i] / 1000.0;
}

static void *creator(void *p)
{
        struct run *r = p;
        for (;;) {
                int i = atomic_fetch_add(&r->next, 1);
                if (i >= r->n)
                        return NULL;
                char id[24];
                snprintf(id, sizeof id, "l%d-%d", r->level, i);
                struct sbx_spec s = { .id = id, .image = "base" };
                struct sbx_record rec;
                uint64_t t0 = ha_now_ns();
                int e = sbx_mgr_create(r->m, &s, NULL, &rec, NULL);
                r->create_ns[i] = ha_now_ns() - t0;
                if (e)
                        atomic_fetch_add(&r->errors, 1);
                else
                        sbx_record_done(&rec);
        }
}

static void *destroyer(void *p)
{
        struct run *r = p;
        for (;;) {
                int i = atomic_fetch_add(&r->next, 1);
                if (i >= r->n)
                        return NULL;
                char id[24];
                snprintf(id, sizeof id, "l%d-%d", r->level, i);
                uint64_t t0 = ha_now_ns();
                if (sbx_mgr_destroy(r->m, id, NULL, NULL))
                        atomic_fetch_add(&r->errors, 1);
                r->destroy_ns[i] = ha_now_ns() - t0;
        }
}

static long rss_kib(void)
{
        long pages = 0, resident = 0;
        FILE *f = fopen("/proc/self/statm", "re");
        if (!f)
                return 0;
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
                resident = 0;
        fclose(f);
        return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static double phase(struct run *r, void *(*fn)(void *))
{
        pthread_t th[64];
        atomic_store(&r->next, 0);
        uint64_t t0 = ha_now_ns();
        for (int i = 0; i < r->conc; i++)
                pthread_create(&th[i], NULL, fn, r);
        for (int i = 0; i < r->conc; i++)
                pthread_join(th[i], NULL);
        return (double)(ha_now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
        int n = argc > 1 ? atoi(argv[1]) : 2000;
        const char *parent = argc > 2 ? argv[2] : "/tmp";
        if (n <= 0 || n > 4000) {
                fprintf(stderr, "N must be 1..4000\n");
                return 2;
        }
        ha_log_setup(HA_LOG_ERROR, HA_LOG_TEXT, 2);
        char dir[256];
        snprintf(dir, sizeof dir, "%s/ha-sbx-bench-%d-XXXXXX", parent, (int)getpid());
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        struct fake *f = fake_new(false);
        struct sbx_backend be;
        fake_backend(f, &be);
        struct sbx_config cfg;
        sbx_config_init(&cfg);
        cfg.state_dir = dir;
        cfg.max_sandboxes = 4096;
        cfg.host_vcpus = 4096;
        cfg.host_memory_mib = 1u << 24;
        sbx_mgr *m;
        struct ha_err e = { { 0 } };
        if (sbx_mgr_new(&cfg, &be, &m, &e) < 0 || sbx_mgr_recover(m, &e) < 0) {
                fprintf(stderr, "manager: %s\n", e.msg);
                return 1;
        }
        /* one watcher, as with a control plane attached */
        sbx_watch *w = NULL;
        (void)sbx_watch_new(m, NULL, &w, NULL);

        struct run r = { .m = m, .n = n };
        r.create_ns = calloc((size_t)n, sizeof *r.create_ns);
        r.destroy_ns = calloc((size_t)n, sizeof *r.destroy_ns);
        static const int levels[] = { 1, 8, 32 };
        printf("sandbox manager, fake backend, %d sandboxes per level, state in %s\n", n, dir);
        printf("%-5s %14s %14s %14s %12s %14s %14s\n", "conc", "create p50 us", "create p90 us",
               "create p99 us", "creates/s", "destroy p50 us", "destroy p99 us");
        for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
                r.conc = levels[l];
                r.level = (int)l;
                long rss0 = rss_kib();
                double tc = phase(&r, creator);
                long rss1 = rss_kib();
                /* drain the watcher so its queue does not count as growth */
                struct sbx_event ev;
                while (w && sbx_watch_next(w, ha_now_ms(), &ev) == 0)
                        sbx_event_done(&ev);
                double td = phase(&r, destroyer);
                while (w && sbx_watch_next(w, ha_now_ms(), &ev) == 0)
                        sbx_event_done(&ev);
                printf("%-5d %14.1f %14.1f %14.1f %12.0f %14.1f %14.1f\n", r.conc,
                       pct_us(r.create_ns, n, 0.50), pct_us(r.create_ns, n, 0.90),
                       pct_us(r.create_ns, n, 0.99), n / tc,
                       pct_us(r.destroy_ns, n, 0.50), pct_us(r.destroy_ns, n, 0.99));
                if (l == 0)
                        printf("      rss with %d live sandboxes: +%ld KiB (%.1f KiB per sandbox, incl. queued events)\n",
                               n, rss1 - rss0, (double)(rss1 - rss0) / n);
                (void)td;
        }
        int errors = atomic_load(&r.errors);
        sbx_watch_free(w);
        sbx_mgr_free(m);
        static const char *const names[] = { "state.db", "state.db-wal", "state.db-shm", "lock" };
        char p[512];
        for (size_t i = 0; i < 4; i++) {
                snprintf(p, sizeof p, "%s/%s", dir, names[i]);
                unlink(p);
        }
        rmdir(dir);
        bool empty = fake_empty(f);
        fake_free(f);
        free(r.create_ns);
        free(r.destroy_ns);
        printf("errors: %d, left over: %s\n", errors, empty ? "nothing" : "SOMETHING");
        return errors || !empty;
}
