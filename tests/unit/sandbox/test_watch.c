/*
 * Tests of src/sandbox/watch.c: every transition is seen, in order, with its
 * record; filters; bounded queues; deadlines and shutdown for the blocking
 * reader.
 */
#include <pthread.h>

#include "helpers.h"

Test(sbx_watch, sees_every_transition_in_order_with_records)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w, NULL), 0);
        struct sbx_record rec;
        create_ok(&x, "ev");
        cr_assert_eq(sbx_mgr_pause(x.m, "ev", false, NULL, &rec, NULL), 0);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_resume(x.m, "ev", 0, NULL, &rec, NULL), 0);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_pause(x.m, "ev", true, NULL, &rec, NULL), 0);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_resume(x.m, "ev", 0, NULL, &rec, NULL), 0);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_destroy(x.m, "ev", NULL, NULL), 0);

        static const struct {
                enum sbx_event_kind kind;
                enum sbx_state state;
                bool snap;
        } want[] = {
                { SBX_EVENT_CREATED, SBX_STATE_CREATING, false },
                { SBX_EVENT_RUNNING, SBX_STATE_RUNNING, false },
                { SBX_EVENT_PAUSED, SBX_STATE_PAUSED, false },
                { SBX_EVENT_RESUMED, SBX_STATE_RUNNING, false },
                { SBX_EVENT_PAUSED, SBX_STATE_PAUSED, true },
                { SBX_EVENT_RESUMED, SBX_STATE_RUNNING, false },
                { SBX_EVENT_DESTROYED, SBX_STATE_GONE, false },
        };
        uint64_t last_seq = 0;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
                struct sbx_event ev;
                cr_assert_eq(sbx_watch_next(w, ha_now_ms() + 1000, &ev), 0, "event %zu", i);
                cr_assert_eq(ev.kind, want[i].kind, "event %zu is %s", i, sbx_event_kind_name(ev.kind));
                cr_assert_eq(ev.rec.state, want[i].state, "event %zu state %s", i,
                             sbx_state_name(ev.rec.state));
                cr_assert_eq(ev.rec.snapshotted, want[i].snap);
                cr_assert_str_eq(ev.rec.id, "ev");
                cr_assert_str_eq(ev.rec.spec.image, "base");
                cr_assert_gt(ev.seq, last_seq);
                cr_assert_eq(ev.time_ms, atomic_load(&x.now));
                last_seq = ev.seq;
                sbx_event_done(&ev);
        }
        struct sbx_event ev;
        cr_assert_eq(sbx_watch_next(w, ha_now_ms() + 20, &ev), -ETIMEDOUT);
        sbx_watch_free(w);
        fix_done(&x);
}

Test(sbx_watch, filters_by_sandbox_id)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        sbx_watch *w;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_watch_new(x.m, "Not_Valid", &w, &e), -EINVAL);
        cr_assert_eq(sbx_watch_new(x.m, "b", &w, NULL), 0);
        create_ok(&x, "a");
        create_ok(&x, "b");
        expect_event(w, SBX_EVENT_CREATED, "b", 1000);
        expect_event(w, SBX_EVENT_RUNNING, "b", 1000);
        struct sbx_event ev;
        cr_assert_eq(sbx_watch_next(w, ha_now_ms() + 20, &ev), -ETIMEDOUT);
        sbx_watch_free(w);
        fix_done(&x);
}

Test(sbx_watch, a_full_queue_closes_the_subscription_not_the_manager)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.watch_queue_len = 4;
        fix_open(&x);
        sbx_watch *slow, *fast;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &slow, NULL), 0);
        cr_assert_eq(sbx_watch_new(x.m, NULL, &fast, NULL), 0);
        create_ok(&x, "o1");   /* 2 events */
        expect_event(fast, SBX_EVENT_CREATED, "o1", 1000);
        expect_event(fast, SBX_EVENT_RUNNING, "o1", 1000);
        create_ok(&x, "o2");   /* 4 in slow's queue */
        create_ok(&x, "o3");   /* overflow */
        expect_event(slow, SBX_EVENT_CREATED, "o1", 1000);
        expect_event(slow, SBX_EVENT_RUNNING, "o1", 1000);
        expect_event(slow, SBX_EVENT_CREATED, "o2", 1000);
        expect_event(slow, SBX_EVENT_RUNNING, "o2", 1000);
        struct sbx_event ev;
        cr_assert_eq(sbx_watch_next(slow, ha_now_ms() + 1000, &ev), -ENOBUFS);
        /* the other subscriber lost nothing */
        expect_event(fast, SBX_EVENT_CREATED, "o2", 1000);
        expect_event(fast, SBX_EVENT_RUNNING, "o2", 1000);
        expect_event(fast, SBX_EVENT_CREATED, "o3", 1000);
        expect_event(fast, SBX_EVENT_RUNNING, "o3", 1000);
        sbx_watch_free(slow);
        sbx_watch_free(fast);
        fix_done(&x);
}

Test(sbx_watch, next_honours_its_deadline_for_cancel_polling)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w, NULL), 0);
        struct sbx_event ev;
        uint64_t t0 = ha_now_ms();
        cr_assert_eq(sbx_watch_next(w, t0 + 100, &ev), -ETIMEDOUT);
        uint64_t took = ha_now_ms() - t0;
        cr_assert_geq(took, 100);
        cr_assert_lt(took, 1000, "took %lu ms", (unsigned long)took);   /* loaded CI hosts */
        sbx_watch_free(w);
        fix_done(&x);
}

struct reader {
        sbx_watch *w;
        int r;
        uint64_t took;
};

static void *read_blocking(void *p)
{
        struct reader *rd = p;
        struct sbx_event ev;
        uint64_t t0 = ha_now_ms();
        rd->r = sbx_watch_next(rd->w, t0 + 10000, &ev);
        rd->took = ha_now_ms() - t0;
        if (rd->r == 0)
                sbx_event_done(&ev);
        return NULL;
}

Test(sbx_watch, drain_wakes_blocked_readers)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        struct reader rd = { 0 };
        cr_assert_eq(sbx_watch_new(x.m, NULL, &rd.w, NULL), 0);
        pthread_t t;
        pthread_create(&t, NULL, read_blocking, &rd);
        usleep(50000);
        sbx_mgr_drain(x.m);
        pthread_join(t, NULL);
        cr_assert_eq(rd.r, -ESHUTDOWN);
        cr_assert_lt(rd.took, 1000);
        sbx_watch *w2;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w2, NULL), -ESHUTDOWN);
        sbx_watch_free(rd.w);
        fix_done(&x);
}

Test(sbx_watch, watcher_limit)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.max_watchers = 2;
        fix_open(&x);
        sbx_watch *a, *b, *c;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_watch_new(x.m, NULL, &a, NULL), 0);
        cr_assert_eq(sbx_watch_new(x.m, NULL, &b, NULL), 0);
        cr_assert_eq(sbx_watch_new(x.m, NULL, &c, &e), -EAGAIN);
        cr_assert_str_eq(e.msg, "too many watchers: 2 of 2");
        struct sbx_host_info hi;
        sbx_mgr_host_info(x.m, &hi);
        cr_assert_eq(hi.watchers, 2);
        sbx_watch_free(a);
        cr_assert_eq(sbx_watch_new(x.m, NULL, &c, NULL), 0);
        sbx_watch_free(b);
        sbx_watch_free(c);
        fix_done(&x);
}

struct cycler {
        struct fix *x;
        int i;
};

static void *cycle(void *p)
{
        struct cycler *c = p;
        char id[16];
        struct sbx_record rec;
        for (int n = 0; n < 20; n++) {
                snprintf(id, sizeof id, "w%d-%d", c->i, n);
                struct sbx_spec s = spec_of(id, "base");
                cr_assert_eq(sbx_mgr_create(c->x->m, &s, NULL, &rec, NULL), 0);
                sbx_record_done(&rec);
                cr_assert_eq(sbx_mgr_pause(c->x->m, id, false, NULL, &rec, NULL), 0);
                sbx_record_done(&rec);
                cr_assert_eq(sbx_mgr_resume(c->x->m, id, 0, NULL, &rec, NULL), 0);
                sbx_record_done(&rec);
                cr_assert_eq(sbx_mgr_destroy(c->x->m, id, NULL, NULL), 0);
        }
        return NULL;
}

/* Under concurrency every sandbox's own events still come in order. */
Test(sbx_watch, per_sandbox_order_holds_under_concurrency)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.watch_queue_len = 4096;
        fix_open(&x);
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w, NULL), 0);
        pthread_t t[8];
        struct cycler c[8];
        for (int i = 0; i < 8; i++) {
                c[i] = (struct cycler){ &x, i };
                pthread_create(&t[i], NULL, cycle, &c[i]);
        }
        for (int i = 0; i < 8; i++)
                pthread_join(t[i], NULL);
        static const enum sbx_event_kind seq[] = { SBX_EVENT_CREATED, SBX_EVENT_RUNNING,
                                                   SBX_EVENT_PAUSED, SBX_EVENT_RESUMED,
                                                   SBX_EVENT_DESTROYED };
        int pos[8][20] = { { 0 } };
        int total = 0;
        struct sbx_event ev;
        while (sbx_watch_next(w, ha_now_ms() + 100, &ev) == 0) {
                int i, n;
                cr_assert_eq(sscanf(ev.rec.id, "w%d-%d", &i, &n), 2);
                cr_assert_lt(pos[i][n], 5);
                cr_assert_eq(ev.kind, seq[pos[i][n]], "%s: event %d is %s", ev.rec.id, pos[i][n],
                             sbx_event_kind_name(ev.kind));
                pos[i][n]++;
                total++;
                sbx_event_done(&ev);
        }
        cr_assert_eq(total, 8 * 20 * 5);
        sbx_watch_free(w);
        fix_done(&x);
}
