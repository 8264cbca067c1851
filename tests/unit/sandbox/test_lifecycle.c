/*
 * Tests of src/sandbox/lifecycle.c: the state machine, idempotent create,
 * rollback of every create step, cancellation, VMM death and failed
 * releases, with the fake backend.
 */
#include <pthread.h>

#include "helpers.h"

Test(sbx_lifecycle, create_pause_resume_destroy_walks_the_state_machine)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        struct sbx_spec s = spec_of("box-1", "base");
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &rec, &e), 0, "%s", e.msg);
        cr_assert_eq(rec.state, SBX_STATE_RUNNING);
        cr_assert_str_eq(rec.id, "box-1");
        cr_assert_eq(rec.spec.vcpus, 1);
        cr_assert_eq(rec.spec.memory_mib, 256);
        cr_assert_eq(rec.spec.timeout_s, 300);
        cr_assert(rec.has_slot);
        cr_assert_str_eq(rec.ip, "10.11.0.0");
        cr_assert_eq(rec.expires_at_ms, atomic_load(&x.now) + 300000);
        cr_assert_eq(rec.created_at_ms, atomic_load(&x.now));
        sbx_record_done(&rec);

        cr_assert_eq(sbx_mgr_pause(x.m, "box-1", false, NULL, &rec, &e), 0, "%s", e.msg);
        cr_assert_eq(rec.state, SBX_STATE_PAUSED);
        cr_assert_not(rec.snapshotted);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_resume(x.m, "box-1", 0, NULL, &rec, &e), 0, "%s", e.msg);
        cr_assert_eq(rec.state, SBX_STATE_RUNNING);
        sbx_record_done(&rec);

        char path[SBX_SOCK_MAX];
        cr_assert_eq(sbx_mgr_vsock_path(x.m, "box-1", path, sizeof path, &e), 0);
        cr_assert_str_eq(path, "/fake/run/box-1/vsock.sock");

        cr_assert_eq(sbx_mgr_destroy(x.m, "box-1", NULL, &e), 0, "%s", e.msg);
        cr_assert_eq(sbx_mgr_get(x.m, "box-1", &rec, &e), -ENOENT);
        cr_assert_eq(sbx_mgr_destroy(x.m, "box-1", NULL, &e), -ENOENT);
        cr_assert(fake_empty(x.f));
        cr_assert_eq(fake_violations(x.f), 0);
        fix_done(&x);
}

Test(sbx_lifecycle, illegal_transitions_fail_precondition_naming_the_state)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        create_ok(&x, "a");
        cr_assert_eq(sbx_mgr_resume(x.m, "a", 0, NULL, &rec, &e), -EBADFD);
        cr_assert_str_eq(e.msg, "sandbox a is running, not paused");
        cr_assert_eq(sbx_mgr_pause(x.m, "a", false, NULL, &rec, &e), 0);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_pause(x.m, "a", false, NULL, &rec, &e), -EBADFD);
        cr_assert_str_eq(e.msg, "sandbox a is paused, not running");
        cr_assert_eq(sbx_mgr_vsock_path(x.m, "a", (char[8]){ 0 }, 8, &e), -EBADFD);

        /* A failed sandbox can only be destroyed (or have its TTL moved). */
        create_ok(&x, "b");
        fake_kill_vmm(x.f, "b", true);
        cr_assert(wait_state(&x, "b", SBX_STATE_FAILED, 2000));
        cr_assert_eq(sbx_mgr_pause(x.m, "b", false, NULL, &rec, &e), -EBADFD);
        cr_assert_str_eq(e.msg, "sandbox b is failed, not running");
        cr_assert_eq(sbx_mgr_resume(x.m, "b", 0, NULL, &rec, &e), -EBADFD);
        cr_assert_eq(sbx_mgr_set_timeout(x.m, "b", 60, NULL, &rec, &e), 0);
        sbx_record_done(&rec);

        cr_assert_eq(sbx_mgr_pause(x.m, "nope", false, NULL, &rec, &e), -ENOENT);
        cr_assert_eq(sbx_mgr_pause(x.m, "Bad_Id", false, NULL, &rec, &e), -EINVAL);
        cr_assert_eq(sbx_mgr_destroy(x.m, "a", NULL, &e), 0);
        cr_assert_eq(sbx_mgr_destroy(x.m, "b", NULL, &e), 0);
        cr_assert(fake_empty(x.f));
        fix_done(&x);
}

Test(sbx_lifecycle, generated_ids_are_valid_and_distinct)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        struct sbx_record a, b;
        struct sbx_spec s = spec_of(NULL, "base");
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &a, NULL), 0);
        s.id = "";
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &b, NULL), 0);
        cr_assert(sbx_id_valid(a.id));
        cr_assert(sbx_id_valid(b.id));
        cr_assert_str_neq(a.id, b.id);
        sbx_record_done(&a);
        sbx_record_done(&b);
        fix_done(&x);
}

Test(sbx_lifecycle, create_is_idempotent_on_the_id)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        struct sbx_kv md1[] = { { "team", "red" }, { "app", "x" } };
        struct sbx_kv md2[] = { { "app", "x" }, { "team", "red" } };   /* same, other order */
        struct sbx_spec s = spec_of("same", "base");
        s.metadata = (struct sbx_map){ md1, 2 };
        struct sbx_record r1, r2;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &r1, &e), 0, "%s", e.msg);
        s.metadata = (struct sbx_map){ md2, 2 };
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &r2, &e), 0, "%s", e.msg);
        cr_assert_eq(r1.created_at_ms, r2.created_at_ms);
        cr_assert_eq(r1.slot, r2.slot);
        cr_assert_eq(fake_calls(x.f, FAKE_NET_ACQUIRE), 1, "the second create acquired nothing");
        sbx_record_done(&r1);
        sbx_record_done(&r2);

        s.vcpus = 2;
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &r2, &e), -EEXIST);
        cr_assert(strstr(e.msg, "already exists with a different spec"), "%s", e.msg);
        s.vcpus = 0;
        s.image = "other";
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &r2, &e), -EEXIST);
        fix_done(&x);
}

struct create_arg {
        struct fix *x;
        const char *id;
        int r;
        struct sbx_record rec;
};

static void *create_thread(void *p)
{
        struct create_arg *a = p;
        struct sbx_spec s = spec_of(a->id, "base");
        a->r = sbx_mgr_create(a->x->m, &s, NULL, &a->rec, NULL);
        return NULL;
}

Test(sbx_lifecycle, concurrent_creates_of_one_id_build_one_sandbox)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        fake_delay(x.f, FAKE_VMM_WAIT_READY, 100);
        pthread_t t[8];
        struct create_arg a[8];
        for (int i = 0; i < 8; i++) {
                a[i] = (struct create_arg){ .x = &x, .id = "dup" };
                pthread_create(&t[i], NULL, create_thread, &a[i]);
        }
        for (int i = 0; i < 8; i++) {
                pthread_join(t[i], NULL);
                cr_assert_eq(a[i].r, 0);
                /* joiners wait for the create in flight: all see it running */
                cr_assert_eq(a[i].rec.state, SBX_STATE_RUNNING);
                sbx_record_done(&a[i].rec);
        }
        cr_assert_eq(fake_calls(x.f, FAKE_VMM_START), 1);
        fix_done(&x);
}

/* Every create step fails in turn: the create fails with that error and
 * nothing is held afterwards, nothing was released twice, and the id is
 * free again. */
Test(sbx_lifecycle, each_failing_create_step_leaves_nothing)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, NULL, &w, NULL), 0);
        for (int step = 0; step < FAKE_CREATE_STEPS; step++) {
                char id[32];
                snprintf(id, sizeof id, "step-%d", step);
                fake_fail(x.f, (enum fake_step)step, EIO, 1);
                struct sbx_spec s = spec_of(id, "base");
                struct sbx_record rec;
                struct ha_err e = { { 0 } };
                int r = sbx_mgr_create(x.m, &s, NULL, &rec, &e);
                cr_assert_eq(r, -EIO, "step %d: %d %s", step, r, e.msg);
                cr_assert(strstr(e.msg, "injected failure"), "step %d: %s", step, e.msg);
                cr_assert(fake_empty(x.f), "step %d left something", step);
                cr_assert_eq(fake_violations(x.f), 0, "step %d", step);
                cr_assert_eq(sbx_mgr_get(x.m, id, &rec, NULL), -ENOENT);
                expect_event(w, SBX_EVENT_CREATED, id, 1000);
                expect_event(w, SBX_EVENT_FAILED, id, 1000);
                expect_event(w, SBX_EVENT_DESTROYED, id, 1000);
                /* the id works again afterwards */
                cr_assert_eq(create_ok(&x, id), SBX_STATE_RUNNING);
                expect_event(w, SBX_EVENT_CREATED, id, 1000);
                expect_event(w, SBX_EVENT_RUNNING, id, 1000);
                cr_assert_eq(sbx_mgr_destroy(x.m, id, NULL, NULL), 0);
                expect_event(w, SBX_EVENT_DESTROYED, id, 1000);
        }
        struct sbx_host_info hi;
        sbx_mgr_host_info(x.m, &hi);
        cr_assert_eq(hi.usage.sandboxes, 0);
        cr_assert_eq(hi.usage.vcpus, 0);
        cr_assert_eq(hi.usage.memory_mib, 0);
        sbx_watch_free(w);
        fix_done(&x);
}

/* A release failing during a rollback keeps a FAILED record holding what is
 * left; destroy retries and then nothing is left. */
Test(sbx_lifecycle, failed_release_keeps_a_failed_record_that_destroy_retries)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        fake_fail(x.f, FAKE_VMM_BOOT, EIO, 1);
        fake_fail(x.f, FAKE_ROOTFS_REMOVE, EBUSY, 1);
        struct sbx_spec s = spec_of("leaky", "base");
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &rec, &e), -EIO);
        cr_assert_eq(sbx_mgr_get(x.m, "leaky", &rec, &e), 0);
        cr_assert_eq(rec.state, SBX_STATE_FAILED);
        cr_assert(strstr(rec.failure, "cleanup failed"), "%s", rec.failure);
        sbx_record_done(&rec);
        int net, rootfs, vmm;
        fake_live(x.f, &net, &rootfs, &vmm);
        cr_assert_eq(vmm, 0);
        cr_assert_eq(rootfs, 1);
        cr_assert_eq(net, 1);
        struct sbx_host_info hi;
        sbx_mgr_host_info(x.m, &hi);
        cr_assert_eq(hi.usage.sandboxes, 0, "a failed sandbox holds no budget");
        cr_assert_eq(hi.failed, 1);

        cr_assert_eq(sbx_mgr_destroy(x.m, "leaky", NULL, &e), 0, "%s", e.msg);
        cr_assert(fake_empty(x.f));
        cr_assert_eq(fake_violations(x.f), 0);

        /* Same for a destroy whose release fails. */
        create_ok(&x, "stuck");
        fake_fail(x.f, FAKE_VMM_STOP, EBUSY, 1);
        cr_assert_eq(sbx_mgr_destroy(x.m, "stuck", NULL, &e), -EBUSY);
        cr_assert(strstr(e.msg, "vmm_stop"), "%s", e.msg);
        cr_assert_eq(state_of(&x, "stuck"), SBX_STATE_FAILED);
        cr_assert_eq(sbx_mgr_destroy(x.m, "stuck", NULL, &e), 0, "%s", e.msg);
        cr_assert(fake_empty(x.f));
        fix_done(&x);
}

static atomic_bool cancel_flag;

static bool cancelled(void *ctx)
{
        (void)ctx;
        return atomic_load(&cancel_flag);
}

struct canceller {
        int after_ms;
};

static void *cancel_later(void *p)
{
        struct canceller *c = p;
        usleep((useconds_t)c->after_ms * 1000);
        atomic_store(&cancel_flag, true);
        return NULL;
}

/* The caller cancels while the guest boots: create rolls back completely
 * and returns promptly. */
Test(sbx_lifecycle, cancelled_create_rolls_back_completely)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        fake_delay(x.f, FAKE_VMM_WAIT_READY, 5000);
        atomic_store(&cancel_flag, false);
        struct canceller c = { 50 };
        pthread_t t;
        pthread_create(&t, NULL, cancel_later, &c);
        const struct sbx_cancel cancel = { cancelled, NULL };
        struct sbx_spec s = spec_of("cx", "base");
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        uint64_t t0 = ha_now_ms();
        int r = sbx_mgr_create(x.m, &s, &cancel, &rec, &e);
        uint64_t took = ha_now_ms() - t0;
        pthread_join(t, NULL);
        cr_assert_eq(r, -ECANCELED, "%d %s", r, e.msg);
        cr_assert_lt(took, 1000, "cancel noticed after %lu ms", (unsigned long)took);
        cr_assert_eq(sbx_mgr_get(x.m, "cx", &rec, NULL), -ENOENT);
        cr_assert(fake_empty(x.f));
        cr_assert_eq(fake_violations(x.f), 0);

        struct sbx_host_info hi;
        sbx_mgr_host_info(x.m, &hi);
        cr_assert_eq(hi.usage.sandboxes, 0);

        /* Cancelled before it starts: nothing is even acquired. */
        long acquired = fake_calls(x.f, FAKE_NET_ACQUIRE);
        s.id = "cy";
        cr_assert_eq(sbx_mgr_create(x.m, &s, &cancel, &rec, &e), -ECANCELED);
        cr_assert_eq(fake_calls(x.f, FAKE_NET_ACQUIRE), acquired);
        cr_assert_eq(sbx_mgr_get(x.m, "cy", &rec, NULL), -ENOENT);
        fix_done(&x);
}

/* Cancelling at each step boundary in turn: the sandbox is either fully
 * running (cancel came after the commit) or fully gone. */
Test(sbx_lifecycle, cancel_at_any_point_is_all_or_nothing)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        for (int step = 0; step < FAKE_CREATE_STEPS; step++)
                fake_delay(x.f, (enum fake_step)step, 10);
        for (int at = 0; at < 80; at += 7) {
                char id[16];
                snprintf(id, sizeof id, "c%d", at);
                atomic_store(&cancel_flag, false);
                struct canceller c = { at };
                pthread_t t;
                pthread_create(&t, NULL, cancel_later, &c);
                const struct sbx_cancel cancel = { cancelled, NULL };
                struct sbx_spec s = spec_of(id, "base");
                struct sbx_record rec;
                int r = sbx_mgr_create(x.m, &s, &cancel, &rec, NULL);
                pthread_join(t, NULL);
                if (r == 0) {
                        cr_assert_eq(rec.state, SBX_STATE_RUNNING);
                        sbx_record_done(&rec);
                        cr_assert_eq(state_of(&x, id), SBX_STATE_RUNNING);
                        struct fake_ent fe;
                        cr_assert(fake_get(x.f, id, &fe));
                        cr_assert(fe.net && fe.rootfs && fe.vmm && fe.alive);
                        cr_assert_eq(sbx_mgr_destroy(x.m, id, NULL, NULL), 0);
                } else {
                        cr_assert_eq(r, -ECANCELED);
                        cr_assert_eq(state_of(&x, id), SBX_STATE_GONE);
                }
                cr_assert(fake_empty(x.f), "cancel at %d ms left something", at);
        }
        cr_assert_eq(fake_violations(x.f), 0);
        fix_done(&x);
}

struct destroy_arg {
        struct fix *x;
        int r;
};

static void *destroy_soon(void *p)
{
        struct destroy_arg *a = p;
        /* once the create is under way, however slow the host */
        for (int i = 0; i < 5000 && state_of(a->x, "dc") != SBX_STATE_CREATING; i++)
                usleep(1000);
        a->r = sbx_mgr_destroy(a->x->m, "dc", NULL, NULL);
        return NULL;
}

Test(sbx_lifecycle, destroy_during_create_rolls_the_create_back)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        fake_delay(x.f, FAKE_VMM_WAIT_READY, 5000);
        struct destroy_arg a = { &x, 1 };
        pthread_t t;
        pthread_create(&t, NULL, destroy_soon, &a);
        struct sbx_spec s = spec_of("dc", "base");
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        int r = sbx_mgr_create(x.m, &s, NULL, &rec, &e);
        pthread_join(t, NULL);
        cr_assert_eq(r, -ECANCELED, "%d %s", r, e.msg);
        cr_assert(strstr(e.msg, "destroyed while creating"), "%s", e.msg);
        cr_assert_eq(a.r, 0);
        cr_assert(fake_empty(x.f));
        fix_done(&x);
}

Test(sbx_lifecycle, vmm_exit_marks_failed_and_releases_everything)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        sbx_watch *w;
        cr_assert_eq(sbx_watch_new(x.m, "dies", &w, NULL), 0);
        create_ok(&x, "dies");
        expect_event(w, SBX_EVENT_CREATED, "dies", 1000);
        expect_event(w, SBX_EVENT_RUNNING, "dies", 1000);
        int pid = fake_kill_vmm(x.f, "dies", true);
        cr_assert_gt(pid, 0);
        struct sbx_event ev;
        cr_assert_eq(sbx_watch_next(w, ha_now_ms() + 2000, &ev), 0);
        cr_assert_eq(ev.kind, SBX_EVENT_FAILED);
        cr_assert_eq(ev.rec.state, SBX_STATE_FAILED);
        cr_assert(strstr(ev.rec.failure, "(status 137, signal 9): killed by test"), "%s",
                  ev.rec.failure);
        cr_assert_not(ev.rec.has_slot);
        sbx_event_done(&ev);
        cr_assert(fake_empty(x.f));
        /* a stale report (old pid) is ignored */
        cr_assert_eq(sbx_mgr_vmm_exited(x.m, "dies", pid, 0, "late"), -ESRCH);
        struct sbx_record rec;
        cr_assert_eq(sbx_mgr_get(x.m, "dies", &rec, NULL), 0);
        cr_assert_eq(rec.state, SBX_STATE_FAILED);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_destroy(x.m, "dies", NULL, NULL), 0);
        expect_event(w, SBX_EVENT_DESTROYED, "dies", 1000);
        sbx_watch_free(w);
        fix_done(&x);
}

Test(sbx_lifecycle, vmm_exit_during_create_rolls_back)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        fake_delay(x.f, FAKE_VMM_WAIT_READY, 3000);
        pthread_t t;
        struct create_arg a = { .x = &x, .id = "early" };
        pthread_create(&t, NULL, create_thread, &a);
        struct fake_ent fe;
        uint64_t until = ha_now_ms() + 2000;
        while (!(fake_get(x.f, "early", &fe) && fe.booted) && ha_now_ms() < until)
                usleep(1000);
        fake_kill_vmm(x.f, "early", true);
        pthread_join(t, NULL);
        cr_assert_eq(a.r, -EIO);
        cr_assert(fake_empty(x.f));
        cr_assert_eq(state_of(&x, "early"), SBX_STATE_GONE);
        fix_done(&x);
}

Test(sbx_lifecycle, snapshot_pause_frees_the_process_and_resume_restores)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ok(&x, "snap");
        struct fake_ent fe;
        cr_assert(fake_get(x.f, "snap", &fe));
        int pid0 = fe.pid;
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_pause(x.m, "snap", true, NULL, &rec, &e), 0, "%s", e.msg);
        cr_assert(rec.snapshotted);
        cr_assert_eq(rec.state, SBX_STATE_PAUSED);
        sbx_record_done(&rec);
        cr_assert(fake_get(x.f, "snap", &fe));
        cr_assert(fe.snap);
        cr_assert_not(fe.alive);
        cr_assert_eq(sbx_mgr_resume(x.m, "snap", 0, NULL, &rec, &e), 0, "%s", e.msg);
        cr_assert_not(rec.snapshotted);
        sbx_record_done(&rec);
        cr_assert(fake_get(x.f, "snap", &fe));
        cr_assert(fe.alive);
        cr_assert_neq(fe.pid, pid0);
        cr_assert_eq(fake_calls(x.f, FAKE_VMM_RESTORE), 1);
        /* the new process is the one exit reports are matched against */
        cr_assert_eq(sbx_mgr_vmm_exited(x.m, "snap", pid0, 0, "old"), -ESRCH);
        cr_assert_eq(sbx_mgr_destroy(x.m, "snap", NULL, NULL), 0);
        cr_assert(fake_empty(x.f));
        fix_done(&x);
}

Test(sbx_lifecycle, failed_pause_or_resume_keeps_the_state)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ok(&x, "p");
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        fake_fail(x.f, FAKE_VMM_PAUSE, EIO, 1);
        cr_assert_eq(sbx_mgr_pause(x.m, "p", false, NULL, &rec, &e), -EIO);
        cr_assert(strstr(e.msg, "vmm pause"), "%s", e.msg);
        cr_assert_eq(state_of(&x, "p"), SBX_STATE_RUNNING);
        cr_assert_eq(sbx_mgr_pause(x.m, "p", false, NULL, &rec, &e), 0);
        sbx_record_done(&rec);
        fake_fail(x.f, FAKE_VMM_RESUME, EIO, 1);
        cr_assert_eq(sbx_mgr_resume(x.m, "p", 0, NULL, &rec, &e), -EIO);
        cr_assert_eq(state_of(&x, "p"), SBX_STATE_PAUSED);
        fix_done(&x);
}

Test(sbx_lifecycle, nothing_mutates_before_recovery_or_after_drain)
{
        struct fix x;
        fix_init(&x, false);
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_new(&x.cfg, &x.be, &x.m, &e), 0);
        cr_assert_not(sbx_mgr_ready(x.m));
        struct sbx_spec s = spec_of("early", "base");
        struct sbx_record rec;
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &rec, &e), -ESHUTDOWN);
        cr_assert(strstr(e.msg, "recovering"), "%s", e.msg);
        cr_assert_eq(sbx_mgr_recover(x.m, &e), 0);
        cr_assert(sbx_mgr_ready(x.m));
        sbx_mgr_drain(x.m);
        cr_assert_not(sbx_mgr_ready(x.m));
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &rec, &e), -ESHUTDOWN);
        fix_done(&x);
}

/* Each release step of a destroy fails in turn: the sandbox is FAILED and
 * holds exactly what was not released; a second destroy finishes. */
Test(sbx_lifecycle, each_failing_release_step_is_retried_by_destroy)
{
        static const enum fake_step steps[] = { FAKE_VMM_STOP, FAKE_ROOTFS_REMOVE, FAKE_NET_RELEASE };
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        for (size_t i = 0; i < 3; i++) {
                create_ok(&x, "rel");
                fake_fail(x.f, steps[i], EBUSY, 1);
                struct ha_err e = { { 0 } };
                cr_assert_eq(sbx_mgr_destroy(x.m, "rel", NULL, &e), -EBUSY, "step %zu", i);
                struct sbx_record rec;
                cr_assert_eq(sbx_mgr_get(x.m, "rel", &rec, NULL), 0);
                cr_assert_eq(rec.state, SBX_STATE_FAILED);
                cr_assert(strstr(rec.failure, "destroy failed"), "%s", rec.failure);
                sbx_record_done(&rec);
                int net, rootfs, vmm;
                fake_live(x.f, &net, &rootfs, &vmm);
                cr_assert_eq(vmm, i < 1 ? 1 : 0, "step %zu", i);
                cr_assert_eq(rootfs, i < 2 ? 1 : 0, "step %zu", i);
                cr_assert_eq(net, 1, "step %zu", i);
                cr_assert_eq(sbx_mgr_destroy(x.m, "rel", NULL, &e), 0, "%s", e.msg);
                cr_assert(fake_empty(x.f));
        }
        cr_assert_eq(fake_violations(x.f), 0);
        fix_done(&x);
}

struct pause_arg {
        struct fix *x;
        int r;
};

static void *pause_thread(void *p)
{
        struct pause_arg *a = p;
        a->r = sbx_mgr_pause(a->x->m, "mid", false, NULL, NULL, NULL);
        return NULL;
}

/* A VMM exit reported while a pause is in flight is handled when the pause
 * ends: the sandbox becomes FAILED and releases everything. */
Test(sbx_lifecycle, vmm_exit_during_an_operation_is_handled_after_it)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ok(&x, "mid");
        fake_delay(x.f, FAKE_VMM_PAUSE, 200);
        struct pause_arg a = { &x, 1 };
        pthread_t t;
        pthread_create(&t, NULL, pause_thread, &a);
        usleep(50000);
        cr_assert_gt(fake_kill_vmm(x.f, "mid", true), 0);
        pthread_join(t, NULL);
        /* the fake refuses to pause a dead VMM, or paused it just before, or
         * (slow host) the pause started after the sandbox had failed */
        cr_assert(a.r == 0 || a.r == -EPROTO || a.r == -EBADFD, "%d", a.r);
        cr_assert(wait_state(&x, "mid", SBX_STATE_FAILED, 2000));
        cr_assert(fake_empty(x.f));
        fix_done(&x);
}

struct recreate_arg {
        struct fix *x;
        int r;
};

static void *recreate_other_spec(void *p)
{
        struct recreate_arg *a = p;
        for (int i = 0; i < 5000 && state_of(a->x, "reuse") != SBX_STATE_STOPPING; i++)
                usleep(1000);
        struct sbx_spec s = spec_of("reuse", "other-image");
        a->r = sbx_mgr_create(a->x->m, &s, NULL, NULL, NULL);
        return NULL;
}

/* A create with another spec for an id being destroyed waits for the
 * destroy and then reuses the id, instead of ALREADY_EXISTS. */
Test(sbx_lifecycle, create_waits_for_a_destroy_in_flight_of_the_same_id)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ok(&x, "reuse");
        fake_delay(x.f, FAKE_VMM_STOP, 200);
        struct recreate_arg a = { &x, 1 };
        pthread_t t;
        pthread_create(&t, NULL, recreate_other_spec, &a);
        cr_assert_eq(sbx_mgr_destroy(x.m, "reuse", NULL, NULL), 0);
        pthread_join(t, NULL);
        cr_assert_eq(a.r, 0);
        struct sbx_record rec;
        cr_assert_eq(sbx_mgr_get(x.m, "reuse", &rec, NULL), 0);
        cr_assert_str_eq(rec.spec.image, "other-image");
        cr_assert_eq(rec.state, SBX_STATE_RUNNING);
        sbx_record_done(&rec);
        fix_done(&x);
}
