/*
 * helpers.h - shared set-up for the sandbox manager tests: a temporary state
 * dir with a per-run unique name, a fake wall clock, the fake backend, and
 * small wrappers. Header-only (static functions) so every test_*.c stays one
 * translation unit plus the fake backend library.
 */
#ifndef HA_TEST_SBX_HELPERS_H
#define HA_TEST_SBX_HELPERS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/time.h"
#include "fake_backend.h"
#include "sandbox/backend.h"
#include "sandbox/sbx.h"

struct fix {
        struct fake *f;
        struct sbx_backend be;
        struct sbx_config cfg;
        sbx_mgr *m;
        char dir[256];
        _Atomic int64_t now;      /* fake wall clock, ms */
};

static inline int64_t fake_clock(void *ctx)
{
        struct fix *x = ctx;
        return atomic_load(&x->now);
}

static inline void fix_advance(struct fix *x, int64_t ms)
{
        atomic_fetch_add(&x->now, ms);
        sbx_mgr_clock_changed(x->m);
}

/* Opens the manager on x->dir and recovers. */
static inline void fix_open(struct fix *x)
{
        struct ha_err e = { { 0 } };
        int r = sbx_mgr_new(&x->cfg, &x->be, &x->m, &e);
        cr_assert_eq(r, 0, "sbx_mgr_new: %d %s", r, e.msg);
        x->f->mgr = x->m;
        r = sbx_mgr_recover(x->m, &e);
        cr_assert_eq(r, 0, "sbx_mgr_recover: %d %s", r, e.msg);
        cr_assert(sbx_mgr_ready(x->m));
}

static inline void fix_close(struct fix *x)
{
        sbx_mgr_free(x->m);
        x->m = NULL;
        x->f->mgr = NULL;
}

/* |shared_fake|: fake state in shared memory (fork tests). */
static inline void fix_init(struct fix *x, bool shared_fake)
{
        memset(x, 0, sizeof *x);
        snprintf(x->dir, sizeof x->dir, "/tmp/ha-sbx-test-%d-XXXXXX", (int)getpid());
        cr_assert_not_null(mkdtemp(x->dir));
        x->f = fake_new(shared_fake);
        cr_assert_not_null(x->f);
        fake_backend(x->f, &x->be);
        sbx_config_init(&x->cfg);
        x->cfg.state_dir = x->dir;
        x->cfg.host_vcpus = 1024;
        x->cfg.host_memory_mib = 1u << 20;
        x->cfg.max_sandboxes = 2048;
        x->cfg.clock = fake_clock;
        x->cfg.clock_ctx = x;
        atomic_store(&x->now, 1700000000000LL);
}

static inline void fix_rmdir(const char *dir)
{
        static const char *const names[] = { "state.db", "state.db-wal", "state.db-shm", "lock" };
        char p[512];
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                snprintf(p, sizeof p, "%s/%s", dir, names[i]);
                unlink(p);
        }
        rmdir(dir);
}

static inline void fix_done(struct fix *x)
{
        if (x->m)
                fix_close(x);
        fix_rmdir(x->dir);
        fake_free(x->f);
}

static inline struct sbx_spec spec_of(const char *id, const char *image)
{
        struct sbx_spec s;
        memset(&s, 0, sizeof s);
        s.id = (char *)id;
        s.image = (char *)image;
        return s;
}

/* Creates |id| with defaults; asserts success; returns the state. */
static inline enum sbx_state create_ok(struct fix *x, const char *id)
{
        struct sbx_spec s = spec_of(id, "base");
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        int r = sbx_mgr_create(x->m, &s, NULL, &rec, &e);
        cr_assert_eq(r, 0, "create %s: %d %s", id, r, e.msg);
        enum sbx_state st = rec.state;
        sbx_record_done(&rec);
        return st;
}

static inline enum sbx_state state_of(struct fix *x, const char *id)
{
        struct sbx_record rec;
        if (sbx_mgr_get(x->m, id, &rec, NULL) < 0)
                return SBX_STATE_GONE;
        enum sbx_state st = rec.state;
        sbx_record_done(&rec);
        return st;
}

/* Waits up to |ms| for the next event; asserts its kind and id. */
static inline void expect_event(sbx_watch *w, enum sbx_event_kind kind, const char *id, int ms)
{
        struct sbx_event ev;
        int r = sbx_watch_next(w, ha_now_ms() + (uint64_t)ms, &ev);
        cr_assert_eq(r, 0, "waiting for %s of %s: %d", sbx_event_kind_name(kind), id, r);
        cr_assert_eq(ev.kind, kind, "event %s of %s, expected %s of %s (reason %s)",
                     sbx_event_kind_name(ev.kind), ev.rec.id, sbx_event_kind_name(kind), id,
                     ev.reason);
        cr_assert_str_eq(ev.rec.id, id);
        sbx_event_done(&ev);
}

/* Polls until |id| reaches |st| or |ms| pass. */
static inline bool wait_state(struct fix *x, const char *id, enum sbx_state st, int ms)
{
        uint64_t until = ha_now_ms() + (uint64_t)ms;
        while (ha_now_ms() < until) {
                if (state_of(x, id) == st)
                        return true;
                usleep(2000);
        }
        return state_of(x, id) == st;
}

#endif
