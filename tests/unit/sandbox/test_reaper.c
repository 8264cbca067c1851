/*
 * Tests of src/sandbox/reaper.c with a fake wall clock: expiry order, TTL
 * moves (set_timeout, pause, resume), limits, and that the reaper wakes per
 * expiry instead of scanning.
 */
#include "core/log.h"
#include "helpers.h"

static void create_ttl(struct fix *x, const char *id, uint32_t ttl)
{
        struct sbx_spec s = spec_of(id, "base");
        s.timeout_s = ttl;
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_create(x->m, &s, NULL, &rec, &e), 0, "%s", e.msg);
        sbx_record_done(&rec);
}

/* Next event must be |kind| for |id|; the event's reason is returned. */
static void expect_expiry(sbx_watch *w, const char *id)
{
        struct sbx_event ev;
        cr_assert_eq(sbx_watch_next(w, ha_now_ms() + 2000, &ev), 0, "no expiry of %s", id);
        cr_assert_eq(ev.kind, SBX_EVENT_EXPIRED, "got %s of %s", sbx_event_kind_name(ev.kind),
                     ev.rec.id);
        cr_assert_str_eq(ev.rec.id, id);
        cr_assert_str_eq(ev.reason, "expired");
        sbx_event_done(&ev);
        cr_assert_eq(sbx_watch_next(w, ha_now_ms() + 2000, &ev), 0);
        cr_assert_eq(ev.kind, SBX_EVENT_DESTROYED);
        cr_assert_str_eq(ev.rec.id, id);
        cr_assert_str_eq(ev.reason, "expired");
        sbx_event_done(&ev);
}

static void expect_quiet(sbx_watch *w, int ms)
{
        struct sbx_event ev;
        int r = sbx_watch_next(w, ha_now_ms() + (uint64_t)ms, &ev);
        if (r == 0) {
                cr_assert_fail("unexpected %s of %s", sbx_event_kind_name(ev.kind), ev.rec.id);
                sbx_event_done(&ev);
        }
        cr_assert_eq(r, -ETIMEDOUT);
}

Test(sbx_reaper, expires_in_ttl_order_not_creation_order)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ttl(&x, "a", 30);
        create_ttl(&x, "b", 10);
        create_ttl(&x, "c", 20);
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w, NULL), 0);
        fix_advance(&x, 9999);
        expect_quiet(w, 100);
        fix_advance(&x, 1);
        expect_expiry(w, "b");
        fix_advance(&x, 10000);
        expect_expiry(w, "c");
        expect_quiet(w, 50);
        fix_advance(&x, 10000);
        expect_expiry(w, "a");
        cr_assert(fake_empty(x.f));
        sbx_watch_free(w);
        fix_done(&x);
}

Test(sbx_reaper, many_due_at_once_all_expire_in_order)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.reaper_workers = 1;   /* one worker: destroys happen in pop order */
        x.cfg.reaper_workers_max = 1;
        fix_open(&x);
        char id[16];
        for (int i = 0; i < 50; i++) {
                snprintf(id, sizeof id, "s%02d", i);
                create_ttl(&x, id, (uint32_t)(100 - i));   /* s49 first */
        }
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w, NULL), 0);
        fix_advance(&x, 100000);
        for (int i = 49; i >= 0; i--) {
                snprintf(id, sizeof id, "s%02d", i);
                expect_expiry(w, id);
        }
        cr_assert(fake_empty(x.f));
        sbx_watch_free(w);
        fix_done(&x);
}

/* A destroy mostly waits (here: each VMM stop takes 2 s). With the pool
 * stuck at its 4 starting workers, 32 expiries due at once would take 16 s;
 * the pool grows while jobs wait, so they all end within about one stop. */
Test(sbx_reaper, pool_grows_while_expiries_wait)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.reaper_workers = 4;
        x.cfg.reaper_workers_max = 64;
        fix_open(&x);
        char id[16];
        for (int i = 0; i < 32; i++) {
                snprintf(id, sizeof id, "g%02d", i);
                create_ttl(&x, id, 10);
        }
        fake_delay(x.f, FAKE_VMM_STOP, 2000);
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w, NULL), 0);
        uint64_t t0 = ha_now_ms();
        fix_advance(&x, 10000);
        int destroyed = 0;
        struct sbx_event ev;
        /* 10 s: five times one stop, and well under the 16 s of a fixed pool. */
        while (destroyed < 32 && sbx_watch_next(w, t0 + 10000, &ev) == 0) {
                destroyed += ev.kind == SBX_EVENT_DESTROYED;
                sbx_event_done(&ev);
        }
        cr_assert_eq(destroyed, 32, "only %d of 32 destroyed after %llu ms", destroyed,
                     (unsigned long long)(ha_now_ms() - t0));
        cr_assert(fake_empty(x.f));
        sbx_watch_free(w);
        fix_done(&x);
}

Test(sbx_reaper, set_timeout_extends_and_shortens)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ttl(&x, "k", 10);
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w, NULL), 0);
        fix_advance(&x, 5000);
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_set_timeout(x.m, "k", 100, NULL, &rec, &e), 0, "%s", e.msg);
        cr_assert_eq(rec.expires_at_ms, atomic_load(&x.now) + 100000);
        sbx_record_done(&rec);
        fix_advance(&x, 50000);   /* past the original expiry */
        expect_quiet(w, 100);
        cr_assert_eq(state_of(&x, "k"), SBX_STATE_RUNNING);
        cr_assert_eq(sbx_mgr_set_timeout(x.m, "k", 1, NULL, &rec, &e), 0);
        sbx_record_done(&rec);
        expect_quiet(w, 50);
        fix_advance(&x, 1000);
        expect_expiry(w, "k");
        sbx_watch_free(w);
        fix_done(&x);
}

Test(sbx_reaper, paused_sandboxes_keep_their_own_ttl_and_resume_sets_a_new_one)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.paused_ttl_s = 50;
        fix_open(&x);
        create_ttl(&x, "p", 10);
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_pause(x.m, "p", false, NULL, &rec, &e), 0);
        cr_assert_eq(rec.expires_at_ms, atomic_load(&x.now) + 50000);
        sbx_record_done(&rec);
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w, NULL), 0);
        fix_advance(&x, 20000);   /* past the running TTL, within the paused one */
        expect_quiet(w, 100);
        cr_assert_eq(state_of(&x, "p"), SBX_STATE_PAUSED);

        cr_assert_eq(sbx_mgr_resume(x.m, "p", 30, NULL, &rec, &e), 0);
        cr_assert_eq(rec.expires_at_ms, atomic_load(&x.now) + 30000);
        sbx_record_done(&rec);
        expect_event(w, SBX_EVENT_RESUMED, "p", 1000);
        fix_advance(&x, 29999);
        expect_quiet(w, 50);
        fix_advance(&x, 1);
        expect_expiry(w, "p");

        /* resume without a timeout: the sandbox's own TTL */
        create_ttl(&x, "q", 40);
        expect_event(w, SBX_EVENT_CREATED, "q", 1000);
        expect_event(w, SBX_EVENT_RUNNING, "q", 1000);
        cr_assert_eq(sbx_mgr_pause(x.m, "q", false, NULL, &rec, &e), 0);
        sbx_record_done(&rec);
        expect_event(w, SBX_EVENT_PAUSED, "q", 1000);
        fix_advance(&x, 50000);   /* paused TTL elapses */
        expect_expiry(w, "q");
        create_ttl(&x, "r", 40);
        cr_assert_eq(sbx_mgr_pause(x.m, "r", false, NULL, &rec, &e), 0);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_resume(x.m, "r", 0, NULL, &rec, &e), 0);
        cr_assert_eq(rec.expires_at_ms, atomic_load(&x.now) + 40000);
        sbx_record_done(&rec);
        sbx_watch_free(w);
        fix_done(&x);
}

Test(sbx_reaper, timeouts_above_the_maximum_are_invalid)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.max_ttl_s = 100;
        x.cfg.default_ttl_s = 50;
        x.cfg.paused_ttl_s = 1000;
        fix_open(&x);
        struct sbx_spec s = spec_of("t", "base");
        s.timeout_s = 101;
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &rec, &e), -EINVAL);
        cr_assert_str_eq(e.msg, "timeout_seconds 101 above the maximum 100");
        s.timeout_s = 0;
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &rec, &e), 0);
        cr_assert_eq(rec.spec.timeout_s, 50);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_set_timeout(x.m, "t", 101, NULL, &rec, &e), -EINVAL);
        cr_assert_eq(sbx_mgr_set_timeout(x.m, "t", 0, NULL, &rec, &e), -EINVAL);
        cr_assert_eq(sbx_mgr_pause(x.m, "t", false, NULL, &rec, &e), 0);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_set_timeout(x.m, "t", 1000, NULL, &rec, &e), 0, "%s", e.msg);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_set_timeout(x.m, "t", 1001, NULL, &rec, &e), -EINVAL);
        cr_assert_eq(sbx_mgr_resume(x.m, "t", 101, NULL, &rec, &e), -EINVAL);
        fix_done(&x);
}

static _Atomic long clock_reads;

static int64_t counting_clock(void *ctx)
{
        struct fix *x = ctx;
        atomic_fetch_add(&clock_reads, 1);
        return atomic_load(&x->now);
}

/* The reaper looks at the heap top per wake-up: a wake with nothing due
 * reads the clock once, whatever the number of sandboxes. */
Test(sbx_reaper, wakes_do_not_scan_all_sandboxes)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.clock = counting_clock;
        ha_log_setup(HA_LOG_WARN, HA_LOG_TEXT, 2);
        fix_open(&x);
        char id[16];
        for (int i = 0; i < 500; i++) {
                snprintf(id, sizeof id, "n%d", i);
                create_ttl(&x, id, 1000);
        }
        usleep(50000);
        long before = atomic_load(&clock_reads);
        for (int i = 0; i < 10; i++) {
                fix_advance(&x, 1000);
                usleep(5000);
        }
        long reads = atomic_load(&clock_reads) - before;
        /* one read per wake-up (kicks may coalesce on a loaded host), never
         * one per sandbox */
        cr_assert_leq(reads, 20, "%ld clock reads for 10 wake-ups", reads);
        cr_assert_geq(reads, 1);
        fix_done(&x);
}

/* A failed sandbox keeps its TTL and is reaped like the others. */
Test(sbx_reaper, failed_sandboxes_expire_too)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ttl(&x, "f", 10);
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w, NULL), 0);
        fake_kill_vmm(x.f, "f", true);
        expect_event(w, SBX_EVENT_FAILED, "f", 2000);
        fix_advance(&x, 10000);
        expect_expiry(w, "f");
        sbx_watch_free(w);
        fix_done(&x);
}

/* A destroy whose release failed is retried by the reaper a minute later. */
Test(sbx_reaper, failed_cleanup_is_retried_after_a_minute)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ttl(&x, "retry", 1000);
        fake_fail(x.f, FAKE_ROOTFS_REMOVE, EBUSY, 1);
        cr_assert_eq(sbx_mgr_destroy(x.m, "retry", NULL, NULL), -EBUSY);
        cr_assert_eq(state_of(&x, "retry"), SBX_STATE_FAILED);
        fix_advance(&x, 59000);
        usleep(50000);
        cr_assert_eq(state_of(&x, "retry"), SBX_STATE_FAILED);
        fix_advance(&x, 1000);
        cr_assert(wait_state(&x, "retry", SBX_STATE_GONE, 2000));
        cr_assert(fake_empty(x.f));
        fix_done(&x);
}
