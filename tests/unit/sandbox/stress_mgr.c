/*
 * stress_mgr.c - the manager's concurrency scenarios as a plain program (no
 * Criterion), so it also runs under ThreadSanitizer: Criterion cannot start
 * under TSan (Snaipe/Criterion#274). Registered with ctest as
 * sandbox/stress_mgr; exits 0 when every check holds.
 *
 *  A. 64 clients create, pause/resume (half with snapshots), set timeouts and
 *     destroy 1,000 sandboxes while readers list and a watcher consumes
 *     events: no error, every event delivered, nothing left over.
 *  B. Chaos: 16 clients create and destroy 8 shared ids while a thread kills
 *     VMMs (reported like a real exit watcher) and another advances a fake
 *     clock so the reaper expires sandboxes: only documented errors, and at
 *     the end nothing is half there.
 *  C. Restart with 200 sandboxes (20 VMMs died, 50 expired while down):
 *     recovery runs while a client lists and creates; creates are refused
 *     until ready, then work; the right ones are adopted, failed, reaped.
 *  D. Store writers that never pause while the checkpointer and the inline
 *     WAL backstop race: no write error, WAL stays bounded.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "fake_backend.h"
#include "sandbox/sbx.h"
#include "sandbox/store.h"

#define CLIENTS 64
#define SANDBOXES 1000

static int failures;

#define CHECK(cond, ...)                                                    \
        do {                                                                \
                if (!(cond)) {                                              \
                        fprintf(stderr, "stress_mgr:%d: check failed: ", __LINE__); \
                        fprintf(stderr, __VA_ARGS__);                       \
                        fprintf(stderr, "\n");                              \
                        failures++;                                         \
                }                                                           \
        } while (0)

struct env {
        struct fake *f;
        struct sbx_backend be;
        struct sbx_config cfg;
        sbx_mgr *m;
        char dir[128];
        _Atomic int64_t now;
        atomic_bool stop;
};

static int64_t env_clock(void *ctx)
{
        struct env *v = ctx;
        return atomic_load(&v->now);
}

static int env_open(struct env *v)
{
        memset(v, 0, sizeof *v);
        snprintf(v->dir, sizeof v->dir, "/tmp/ha-sbx-stress-%d-XXXXXX", (int)getpid());
        if (!mkdtemp(v->dir) || !(v->f = fake_new(false)))
                return -1;
        fake_backend(v->f, &v->be);
        sbx_config_init(&v->cfg);
        v->cfg.state_dir = v->dir;
        v->cfg.host_vcpus = 4096;
        v->cfg.host_memory_mib = 1u << 24;
        v->cfg.max_sandboxes = 4096;
        v->cfg.watch_queue_len = 16384;
        v->cfg.clock = env_clock;
        v->cfg.clock_ctx = v;
        atomic_store(&v->now, 1700000000000LL);
        struct ha_err e = { { 0 } };
        if (sbx_mgr_new(&v->cfg, &v->be, &v->m, &e) < 0 || sbx_mgr_recover(v->m, &e) < 0) {
                fprintf(stderr, "open: %s\n", e.msg);
                return -1;
        }
        v->f->mgr = v->m;
        return 0;
}

static void env_close(struct env *v)
{
        static const char *const names[] = { "state.db", "state.db-wal", "state.db-shm", "lock" };
        char p[256];
        sbx_mgr_free(v->m);
        for (size_t i = 0; i < 4; i++) {
                snprintf(p, sizeof p, "%s/%s", v->dir, names[i]);
                unlink(p);
        }
        rmdir(v->dir);
        fake_free(v->f);
}

static bool leftovers(struct env *v)
{
        int n, r, m;
        fake_live(v->f, &n, &r, &m);
        CHECK(n == 0 && r == 0 && m == 0, "left over: %d slots, %d clones, %d vmms", n, r, m);
        CHECK(fake_violations(v->f) == 0, "%ld double releases / out-of-order calls",
              fake_violations(v->f));
        return n || r || m;
}

/* --- A --- */

struct client {
        struct env *v;
        int idx;
        int errors;
        char last[HA_ERR_MSG_MAX + 16];
};

static void note(struct client *c, int r, const struct ha_err *e)
{
        if (r) {
                c->errors++;
                snprintf(c->last, sizeof c->last, "%d %s", r, e->msg);
        }
}

static void *client_a(void *p)
{
        struct client *c = p;
        sbx_mgr *m = c->v->m;
        struct ha_err e = { { 0 } };
        struct sbx_record rec;
        for (int n = c->idx; n < SANDBOXES; n += CLIENTS) {
                char id[16];
                snprintf(id, sizeof id, "a-%04d", n);
                struct sbx_spec s = { .id = id, .image = "base" };
                int r = sbx_mgr_create(m, &s, NULL, &rec, &e);
                note(c, r, &e);
                if (r == 0)
                        sbx_record_done(&rec);
                if (n % 3 == 0) {
                        r = sbx_mgr_pause(m, id, n % 2 == 0, NULL, &rec, &e);
                        note(c, r, &e);
                        if (r == 0)
                                sbx_record_done(&rec);
                        r = sbx_mgr_resume(m, id, 0, NULL, &rec, &e);
                        note(c, r, &e);
                        if (r == 0)
                                sbx_record_done(&rec);
                }
                if (n % 5 == 0) {
                        r = sbx_mgr_set_timeout(m, id, 60, NULL, &rec, &e);
                        note(c, r, &e);
                        if (r == 0)
                                sbx_record_done(&rec);
                }
                note(c, sbx_mgr_destroy(m, id, NULL, &e), &e);
        }
        return NULL;
}

static void *reader(void *p)
{
        struct env *v = p;
        while (!atomic_load(&v->stop)) {
                struct sbx_record *recs;
                size_t n;
                if (sbx_mgr_list(v->m, NULL, &recs, &n) == 0)
                        sbx_records_free(recs, n);
                struct sbx_host_info hi;
                sbx_mgr_host_info(v->m, &hi);
                usleep(500);
        }
        return NULL;
}

struct watcher {
        sbx_watch *w;
        long events;
        int end;
};

static void *watcher(void *p)
{
        struct watcher *wt = p;
        struct sbx_event ev;
        for (;;) {
                int r = sbx_watch_next(wt->w, ha_now_ms() + 100, &ev);
                if (r == 0) {
                        wt->events++;
                        sbx_event_done(&ev);
                } else if (r != -ETIMEDOUT) {
                        wt->end = r;
                        return NULL;
                }
        }
}

static void scenario_a(void)
{
        struct env v;
        if (env_open(&v) < 0) {
                CHECK(0, "env_open");
                return;
        }
        struct watcher wt = { 0 };
        CHECK(sbx_watch_new(v.m, NULL, &wt.w, NULL) == 0, "watch");
        pthread_t wth, rth[2], th[CLIENTS];
        pthread_create(&wth, NULL, watcher, &wt);
        for (int i = 0; i < 2; i++)
                pthread_create(&rth[i], NULL, reader, &v);
        static struct client c[CLIENTS];
        uint64_t t0 = ha_now_ms();
        for (int i = 0; i < CLIENTS; i++) {
                c[i] = (struct client){ .v = &v, .idx = i };
                pthread_create(&th[i], NULL, client_a, &c[i]);
        }
        for (int i = 0; i < CLIENTS; i++) {
                pthread_join(th[i], NULL);
                CHECK(c[i].errors == 0, "client %d: %d errors, last %s", i, c[i].errors, c[i].last);
        }
        uint64_t took = ha_now_ms() - t0;
        atomic_store(&v.stop, true);
        for (int i = 0; i < 2; i++)
                pthread_join(rth[i], NULL);
        sbx_mgr_drain(v.m);
        pthread_join(wth, NULL);
        long want = SANDBOXES * 3L + 2L * ((SANDBOXES + 2) / 3);
        CHECK(wt.end == -ESHUTDOWN, "watcher ended with %d", wt.end);
        CHECK(wt.events == want, "%ld events, want %ld", wt.events, want);
        sbx_watch_free(wt.w);
        leftovers(&v);
        CHECK(v.f->vmm_started == SANDBOXES, "%ld vmm starts", v.f->vmm_started);
        struct sbx_host_info hi;
        sbx_mgr_host_info(v.m, &hi);
        CHECK(hi.usage.sandboxes == 0 && hi.usage.vcpus == 0 && hi.usage.memory_mib == 0,
              "usage not back to zero");
        printf("A: %d clients, %d sandboxes, %ld events in %llu ms\n", CLIENTS, SANDBOXES,
               wt.events, (unsigned long long)took);
        env_close(&v);
}

/* --- B --- */

static void *chaos_client(void *p)
{
        struct client *c = p;
        sbx_mgr *m = c->v->m;
        struct sbx_record rec;
        for (int n = 0; n < 150; n++) {
                char id[8];
                snprintf(id, sizeof id, "b%d", (c->idx * 7 + n) % 8);
                struct ha_err e = { { 0 } };
                int r;
                switch ((c->idx + n) % 4) {
                case 0:
                case 1: {
                        struct sbx_spec s = { .id = id, .image = "base", .timeout_s = 5 };
                        r = sbx_mgr_create(m, &s, NULL, &rec, &e);
                        if (r == 0)
                                sbx_record_done(&rec);
                        /* destroyed or its VMM killed while creating */
                        /* destroyed while creating, or its VMM killed
                         * mid-create (the fake answers a dead VMM with
                         * -ECONNREFUSED / -ECONNRESET) */
                        if (r != 0 && r != -ECANCELED && r != -EIO && r != -ECONNREFUSED &&
                            r != -ECONNRESET)
                                note(c, r, &e);
                        break;
                }
                case 2:
                        r = sbx_mgr_pause(m, id, n % 2, NULL, &rec, &e);
                        if (r == 0)
                                sbx_record_done(&rec);
                        /* -EPROTO: the fake refuses to pause a killed VMM */
                        if (r == 0 || r == -ENOENT || r == -EBADFD || r == -EPROTO)
                                break;
                        note(c, r, &e);
                        break;
                default:
                        r = sbx_mgr_destroy(m, id, NULL, &e);
                        if (r != 0 && r != -ENOENT)
                                note(c, r, &e);
                }
                if (n % 10 == 0) {
                        r = sbx_mgr_resume(m, id, 0, NULL, &rec, &e);
                        if (r == 0)
                                sbx_record_done(&rec);
                        else if (r != -ENOENT && r != -EBADFD && r != -EPROTO)
                                note(c, r, &e);
                }
        }
        return NULL;
}

static void *killer(void *p)
{
        struct env *v = p;
        unsigned n = 0;
        while (!atomic_load(&v->stop)) {
                char id[8];
                snprintf(id, sizeof id, "b%u", n++ % 8);
                fake_kill_vmm(v->f, id, true);
                usleep(3000);
        }
        return NULL;
}

static void *ticker(void *p)
{
        struct env *v = p;
        while (!atomic_load(&v->stop)) {
                atomic_fetch_add(&v->now, 1000);
                sbx_mgr_clock_changed(v->m);
                usleep(1000);
        }
        return NULL;
}

static void scenario_b(void)
{
        struct env v;
        if (env_open(&v) < 0) {
                CHECK(0, "env_open");
                return;
        }
        fake_delay(v.f, FAKE_VMM_WAIT_READY, 2);
        struct watcher wt = { 0 };
        CHECK(sbx_watch_new(v.m, NULL, &wt.w, NULL) == 0, "watch");
        pthread_t wth, kth, tth, th[16];
        pthread_create(&wth, NULL, watcher, &wt);
        pthread_create(&kth, NULL, killer, &v);
        pthread_create(&tth, NULL, ticker, &v);
        static struct client c[16];
        for (int i = 0; i < 16; i++) {
                c[i] = (struct client){ .v = &v, .idx = i };
                pthread_create(&th[i], NULL, chaos_client, &c[i]);
        }
        for (int i = 0; i < 16; i++) {
                pthread_join(th[i], NULL);
                CHECK(c[i].errors == 0, "chaos client %d: %d errors, last %s", i, c[i].errors,
                      c[i].last);
        }
        atomic_store(&v.stop, true);
        pthread_join(kth, NULL);
        pthread_join(tth, NULL);
        for (int i = 0; i < 8; i++) {
                char id[8];
                snprintf(id, sizeof id, "b%d", i);
                struct ha_err e = { { 0 } };
                int r = sbx_mgr_destroy(v.m, id, NULL, &e);
                CHECK(r == 0 || r == -ENOENT, "final destroy %s: %d %s", id, r, e.msg);
        }
        sbx_mgr_drain(v.m);
        pthread_join(wth, NULL);
        sbx_watch_free(wt.w);
        leftovers(&v);
        printf("B: chaos done, %ld events, %ld vmm starts, %ld kills observed\n", wt.events,
               v.f->vmm_started, fake_calls(v.f, FAKE_VMM_STOP));
        env_close(&v);
}

/* --- C --- */

struct early {
        struct env *v;
        atomic_int shutdown_seen, created, other;
};

/* Hammers a manager that is still recovering: reads work, mutations get
 * -ESHUTDOWN until ready, then succeed. */
static void *early_client(void *p)
{
        struct early *c = p;
        int n = 0;
        while (!atomic_load(&c->v->stop)) {
                struct sbx_record *recs;
                size_t cnt;
                if (sbx_mgr_list(c->v->m, NULL, &recs, &cnt) == 0)
                        sbx_records_free(recs, cnt);
                char id[16];
                snprintf(id, sizeof id, "e-%d", n);
                struct sbx_spec s = { .id = id, .image = "base" };
                int r = sbx_mgr_create(c->v->m, &s, NULL, NULL, NULL);
                if (r == -ESHUTDOWN) {
                        atomic_fetch_add(&c->shutdown_seen, 1);
                } else if (r == 0) {
                        atomic_fetch_add(&c->created, 1);
                        n++;
                } else {
                        atomic_fetch_add(&c->other, 1);
                }
                usleep(200);
        }
        return NULL;
}

static void scenario_c(void)
{
        struct env v;
        if (env_open(&v) < 0) {
                CHECK(0, "env_open");
                return;
        }
        for (int i = 0; i < 200; i++) {
                char id[16];
                snprintf(id, sizeof id, "r-%03d", i);
                struct sbx_spec s = { .id = id, .image = "base", .timeout_s = i % 4 == 0 ? 5 : 600 };
                CHECK(sbx_mgr_create(v.m, &s, NULL, NULL, NULL) == 0, "create %s", id);
        }
        sbx_mgr_free(v.m);
        for (int i = 0; i < 200; i += 10) {   /* 20 die while the agent is down */
                char id[16];
                snprintf(id, sizeof id, "r-%03d", i + 1);
                fake_kill_vmm(v.f, id, false);
        }
        atomic_fetch_add(&v.now, 10000);      /* 50 expired meanwhile */
        struct ha_err e = { { 0 } };
        CHECK(sbx_mgr_new(&v.cfg, &v.be, &v.m, &e) == 0, "reopen: %s", e.msg);
        v.f->mgr = v.m;
        struct early ec = { .v = &v };
        pthread_t t;
        pthread_create(&t, NULL, early_client, &ec);
        /* Wait on events, not on sleeps: a loaded CI machine may not run the
         * client for a while. */
        uint64_t until = ha_now_ms() + 10000;
        while (atomic_load(&ec.shutdown_seen) == 0 && ha_now_ms() < until)
                usleep(1000);
        CHECK(sbx_mgr_recover(v.m, &e) == 0, "recover: %s", e.msg);
        while (atomic_load(&ec.created) < 3 && ha_now_ms() < until)
                usleep(1000);
        atomic_store(&v.stop, true);
        pthread_join(t, NULL);
        int refused = atomic_load(&ec.shutdown_seen), created = atomic_load(&ec.created);
        CHECK(refused > 0 && created >= 3 && atomic_load(&ec.other) == 0,
              "early client: %d refused, %d created, %d other errors", refused, created,
              atomic_load(&ec.other));
        struct sbx_host_info hi;
        until = ha_now_ms() + 10000;
        do {
                usleep(10000);
                sbx_mgr_host_info(v.m, &hi);
        } while (hi.running != 130 + (uint32_t)created && ha_now_ms() < until);
        /* Of 200: the 50 with ids divisible by 4 expired (reaped once the
         * reaper is armed), the 20 odd ones whose VMM died are FAILED, 130
         * were re-adopted; plus what the early client created. */
        CHECK(hi.running == 130 + (uint32_t)created, "%u running, want %d", hi.running,
              130 + created);
        CHECK(hi.failed == 20, "%u failed, want 20", hi.failed);
        struct sbx_record *recs;
        size_t n;
        CHECK(sbx_mgr_list(v.m, NULL, &recs, &n) == 0, "list");
        for (size_t i = 0; i < n; i++) {
                /* An expired one (r-NNN, NNN divisible by 4) may still be
                 * listed while the reaper destroys it (seen under TSan):
                 * gone by the time we destroy it is its expected end too. */
                int r = sbx_mgr_destroy(v.m, recs[i].id, NULL, &e);
                bool expiring = strncmp(recs[i].id, "r-", 2) == 0 && atoi(recs[i].id + 2) % 4 == 0;
                CHECK(r == 0 || (r == -ENOENT && expiring), "destroy %s: %d %s", recs[i].id, r, e.msg);
        }
        sbx_records_free(recs, n);
        leftovers(&v);
        printf("C: recovery under load: %d creates refused while recovering, %d after\n",
               refused, created);
        env_close(&v);
}

/* --- D --- */

static atomic_int writers_done;

struct writer {
        struct sbx_store *st;
        int idx;
        int errors;
};

static void *store_writer(void *p)
{
        struct writer *w = p;
        for (int i = 0; i < 6000; i++) {
                struct sbx_row row;
                memset(&row, 0, sizeof row);
                snprintf(row.rec.id, sizeof row.rec.id, "w%d-%d", w->idx, i % 300);
                snprintf(row.res.id, sizeof row.res.id, "%s", row.rec.id);
                row.rec.state = SBX_STATE_RUNNING;
                row.rec.spec.image = "base";
                if (sbx_store_put(w->st, &row, NULL) < 0)
                        w->errors++;
        }
        atomic_fetch_add(&writers_done, 1);
        return NULL;
}

/* Writers that never pause, with the background checkpointer and the
 * inline backstop racing each other: no error, bounded WAL. */
static void scenario_d(void)
{
        char dir[128], wal[160];
        snprintf(dir, sizeof dir, "/tmp/ha-sbx-stress-d-%d-XXXXXX", (int)getpid());
        if (!mkdtemp(dir)) {
                CHECK(0, "mkdtemp");
                return;
        }
        struct sbx_store *st;
        struct ha_err e = { { 0 } };
        CHECK(sbx_store_open(dir, &st, &e) == 0, "store: %s", e.msg);
        struct writer w[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
                w[i] = (struct writer){ st, i, 0 };
                pthread_create(&t[i], NULL, store_writer, &w[i]);
        }
        snprintf(wal, sizeof wal, "%s/state.db-wal", dir);
        off_t max = 0;
        while (atomic_load(&writers_done) < 4) {
                struct stat sb;
                if (stat(wal, &sb) == 0 && sb.st_size > max)
                        max = sb.st_size;
                usleep(2000);
        }
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        for (int i = 0; i < 4; i++)
                CHECK(w[i].errors == 0, "writer %d: %d errors", i, w[i].errors);
        CHECK(max < (48l << 20), "WAL grew to %lld bytes", (long long)max);
        sbx_store_close(st);
        static const char *const names[] = { "state.db", "state.db-wal", "state.db-shm", "lock" };
        char p[256];
        for (size_t i = 0; i < 4; i++) {
                snprintf(p, sizeof p, "%s/%s", dir, names[i]);
                unlink(p);
        }
        rmdir(dir);
        printf("D: 24000 store writes from 4 threads, WAL peak %lld KiB\n", (long long)max / 1024);
}

int main(void)
{
        ha_log_setup(HA_LOG_ERROR, HA_LOG_TEXT, 2);
        scenario_a();
        scenario_b();
        scenario_c();
        scenario_d();
        if (failures) {
                fprintf(stderr, "stress_mgr: %d checks failed\n", failures);
                return 1;
        }
        printf("stress_mgr: ok\n");
        return 0;
}
