/*
 * Concurrency tests of the manager (src/sandbox/lifecycle.c, mgr.c): 64
 * clients create and destroy 1,000 sandboxes with no error and nothing left
 * over, while readers list and watch; and clients fighting over the same ids.
 * Run under TSan as well (build with -DHA_SANITIZE=thread).
 */
#include <pthread.h>

#include "core/log.h"
#include "helpers.h"

#define CLIENTS 64
#define SANDBOXES 1000

struct client {
        struct fix *x;
        int idx;
        int errors;
        char last_err[HA_ERR_MSG_MAX];
};

static atomic_bool stop_readers;

static void note(struct client *c, int r, const struct ha_err *e)
{
        if (r != 0) {
                c->errors++;
                snprintf(c->last_err, sizeof c->last_err, "%d %s", r, e->msg);
        }
}

static void *client_main(void *p)
{
        struct client *c = p;
        struct ha_err e = { { 0 } };
        for (int n = c->idx; n < SANDBOXES; n += CLIENTS) {
                char id[16];
                snprintf(id, sizeof id, "c-%04d", n);
                struct sbx_spec s = spec_of(id, "base");
                struct sbx_record rec;
                int r = sbx_mgr_create(c->x->m, &s, NULL, &rec, &e);
                note(c, r, &e);
                if (r == 0)
                        sbx_record_done(&rec);
                if (n % 3 == 0) {
                        r = sbx_mgr_pause(c->x->m, id, n % 2 == 0, NULL, &rec, &e);
                        note(c, r, &e);
                        if (r == 0)
                                sbx_record_done(&rec);
                        r = sbx_mgr_resume(c->x->m, id, 0, NULL, &rec, &e);
                        note(c, r, &e);
                        if (r == 0)
                                sbx_record_done(&rec);
                }
                if (n % 5 == 0) {
                        r = sbx_mgr_set_timeout(c->x->m, id, 60, NULL, &rec, &e);
                        note(c, r, &e);
                        if (r == 0)
                                sbx_record_done(&rec);
                }
                r = sbx_mgr_destroy(c->x->m, id, NULL, &e);
                note(c, r, &e);
        }
        return NULL;
}

static void *reader_main(void *p)
{
        struct fix *x = p;
        while (!atomic_load(&stop_readers)) {
                struct sbx_record *recs;
                size_t n;
                if (sbx_mgr_list(x->m, NULL, &recs, &n) == 0)
                        sbx_records_free(recs, n);
                struct sbx_host_info hi;
                sbx_mgr_host_info(x->m, &hi);
                struct sbx_record rec;
                if (sbx_mgr_get(x->m, "c-0001", &rec, NULL) == 0)
                        sbx_record_done(&rec);
                usleep(1000);
        }
        return NULL;
}

struct watcher {
        sbx_watch *w;
        long events;
        int r;
};

static void *watcher_main(void *p)
{
        struct watcher *wt = p;
        struct sbx_event ev;
        for (;;) {
                int r = sbx_watch_next(wt->w, ha_now_ms() + 100, &ev);
                if (r == 0) {
                        wt->events++;
                        sbx_event_done(&ev);
                } else if (r != -ETIMEDOUT) {
                        wt->r = r;
                        return NULL;
                }
        }
}

Test(sbx_concurrency, clients_64_create_and_destroy_1000_with_nothing_left, .timeout = 240)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.watch_queue_len = 16384;
        ha_log_setup(HA_LOG_ERROR, HA_LOG_TEXT, 2);
        fix_open(&x);
        struct watcher wt = { 0 };
        cr_assert_eq(sbx_watch_new(x.m, NULL, &wt.w, NULL), 0);
        pthread_t wth, rth[2], th[CLIENTS];
        pthread_create(&wth, NULL, watcher_main, &wt);
        atomic_store(&stop_readers, false);
        for (int i = 0; i < 2; i++)
                pthread_create(&rth[i], NULL, reader_main, &x);
        struct client c[CLIENTS];
        for (int i = 0; i < CLIENTS; i++) {
                c[i] = (struct client){ .x = &x, .idx = i };
                cr_assert_eq(pthread_create(&th[i], NULL, client_main, &c[i]), 0);
        }
        for (int i = 0; i < CLIENTS; i++) {
                pthread_join(th[i], NULL);
                cr_assert_eq(c[i].errors, 0, "client %d: %d errors, last: %s", i, c[i].errors,
                             c[i].last_err);
        }
        atomic_store(&stop_readers, true);
        for (int i = 0; i < 2; i++)
                pthread_join(rth[i], NULL);
        sbx_mgr_drain(x.m);   /* ends the watcher with -ESHUTDOWN */
        pthread_join(wth, NULL);
        cr_assert_eq(wt.r, -ESHUTDOWN);
        /* created + running + destroyed, + paused/resumed for every third */
        long want = SANDBOXES * 3L + 2L * ((SANDBOXES + 2) / 3);
        cr_assert_eq(wt.events, want, "%ld events, want %ld", wt.events, want);
        sbx_watch_free(wt.w);

        cr_assert(fake_empty(x.f));
        cr_assert_eq(fake_violations(x.f), 0);
        cr_assert_eq(x.f->net_acquired, SANDBOXES);
        cr_assert_eq(x.f->net_released, SANDBOXES);
        cr_assert_eq(x.f->vmm_started, SANDBOXES);
        cr_assert_eq(x.f->vmm_stopped, SANDBOXES);
        struct sbx_host_info hi;
        sbx_mgr_host_info(x.m, &hi);
        cr_assert_eq(hi.usage.sandboxes, 0);
        cr_assert_eq(hi.usage.vcpus, 0);
        cr_assert_eq(hi.usage.memory_mib, 0);
        fix_close(&x);
        fix_open(&x);
        struct sbx_record *recs;
        size_t n;
        cr_assert_eq(sbx_mgr_list(x.m, NULL, &recs, &n), 0);
        cr_assert_eq(n, 0, "%zu records left in the store", n);
        sbx_records_free(recs, n);
        fix_done(&x);
}

/* Clients fight over 8 ids: creates race destroys of the same id. Errors
 * are the documented ones; at the end nothing is half there. */
static void *fighter_main(void *p)
{
        struct client *c = p;
        for (int n = 0; n < 60; n++) {
                char id[8];
                snprintf(id, sizeof id, "f%d", (c->idx + n) % 8);
                struct ha_err e = { { 0 } };
                int r;
                if ((c->idx + n) % 2 == 0) {
                        struct sbx_spec s = spec_of(id, "base");
                        struct sbx_record rec;
                        r = sbx_mgr_create(c->x->m, &s, NULL, &rec, &e);
                        if (r == 0)
                                sbx_record_done(&rec);
                        else if (r != -ECANCELED)
                                note(c, r, &e);
                } else {
                        r = sbx_mgr_destroy(c->x->m, id, NULL, &e);
                        if (r != 0 && r != -ENOENT)
                                note(c, r, &e);
                }
        }
        return NULL;
}

Test(sbx_concurrency, creates_and_destroys_racing_on_the_same_ids, .timeout = 120)
{
        struct fix x;
        fix_init(&x, false);
        ha_log_setup(HA_LOG_ERROR, HA_LOG_TEXT, 2);
        fix_open(&x);
        fake_delay(x.f, FAKE_VMM_WAIT_READY, 2);
        pthread_t th[16];
        struct client c[16];
        for (int i = 0; i < 16; i++) {
                c[i] = (struct client){ .x = &x, .idx = i };
                pthread_create(&th[i], NULL, fighter_main, &c[i]);
        }
        for (int i = 0; i < 16; i++) {
                pthread_join(th[i], NULL);
                cr_assert_eq(c[i].errors, 0, "client %d: %s", i, c[i].last_err);
        }
        for (int i = 0; i < 8; i++) {
                char id[8];
                snprintf(id, sizeof id, "f%d", i);
                enum sbx_state st = state_of(&x, id);
                cr_assert(st == SBX_STATE_RUNNING || st == SBX_STATE_GONE, "%s is %s", id,
                          sbx_state_name(st));
                int r = sbx_mgr_destroy(x.m, id, NULL, NULL);
                cr_assert(r == 0 || r == -ENOENT);
        }
        cr_assert(fake_empty(x.f));
        cr_assert_eq(fake_violations(x.f), 0);
        fix_done(&x);
}
