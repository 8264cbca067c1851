/*
 * Tests of src/sandbox/recover.c and store.c: records survive a restart
 * field for field; live VMMs are re-adopted with their TTL, dead ones are
 * reported FAILED and cleaned, leftovers with no record are removed; and the
 * same after a real kill -9 of a forked "agent" process mid-create and with
 * 20 sandboxes running.
 */
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "core/log.h"
#include "helpers.h"

Test(sbx_recover, records_survive_a_restart_field_for_field)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        struct sbx_kv md[] = { { "team", "red" }, { "empty", "" }, { "uni", "caf\xc3\xa9" } };
        struct sbx_kv env[] = { { "PATH", "/bin:/usr/bin" }, { "LANG", "C.UTF-8" } };
        char *allow[] = { "10.0.0.0/8", "2001:db8::/32" };
        char *deny[] = { "10.1.2.3" };
        struct sbx_spec s = spec_of("full", "base-v2.1_x");
        s.vcpus = 2;
        s.memory_mib = 512;
        s.timeout_s = 600;
        s.metadata = (struct sbx_map){ md, 3 };
        s.env = (struct sbx_map){ env, 2 };
        s.egress.mode = SBX_EGRESS_ALLOW_LIST;
        s.egress.allow_cidrs = (struct sbx_strv){ allow, 2 };
        s.egress.deny_cidrs = (struct sbx_strv){ deny, 1 };
        struct sbx_record before, after;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &before, &e), 0, "%s", e.msg);
        fix_close(&x);
        fix_open(&x);
        cr_assert_eq(sbx_mgr_get(x.m, "full", &after, &e), 0, "%s", e.msg);
        cr_assert_eq(after.state, SBX_STATE_RUNNING);
        cr_assert_eq(after.created_at_ms, before.created_at_ms);
        cr_assert_eq(after.expires_at_ms, before.expires_at_ms);
        cr_assert_str_eq(after.ip, before.ip);
        cr_assert_eq(after.slot, before.slot);
        cr_assert_str_eq(after.spec.image, "base-v2.1_x");
        cr_assert_eq(after.spec.vcpus, 2);
        cr_assert_eq(after.spec.memory_mib, 512);
        cr_assert_eq(after.spec.timeout_s, 600);
        cr_assert_eq(after.spec.metadata.n, 3);
        cr_assert_str_eq(after.spec.metadata.items[0].key, "empty");   /* sorted */
        cr_assert_str_eq(after.spec.metadata.items[0].value, "");
        cr_assert_str_eq(after.spec.metadata.items[2].value, "caf\xc3\xa9");
        cr_assert_eq(after.spec.env.n, 2);
        cr_assert_str_eq(after.spec.env.items[1].key, "PATH");
        cr_assert_str_eq(after.spec.env.items[1].value, "/bin:/usr/bin");
        cr_assert_eq(after.spec.egress.mode, SBX_EGRESS_ALLOW_LIST);
        cr_assert_eq(after.spec.egress.allow_cidrs.n, 2);
        cr_assert_str_eq(after.spec.egress.allow_cidrs.items[1], "2001:db8::/32");
        cr_assert_str_eq(after.spec.egress.deny_cidrs.items[0], "10.1.2.3");
        sbx_record_done(&before);
        sbx_record_done(&after);
        /* the same create after the restart is still idempotent */
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &after, &e), 0, "%s", e.msg);
        sbx_record_done(&after);
        cr_assert_eq(fake_calls(x.f, FAKE_VMM_START), 1);
        fix_done(&x);
}

Test(sbx_recover, adopts_live_fails_dead_and_removes_orphans)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        for (int i = 0; i < 5; i++) {
                char id[8];
                snprintf(id, sizeof id, "a%d", i);
                create_ok(&x, id);
        }
        cr_assert_eq(sbx_mgr_pause(x.m, "a1", false, NULL, &rec, NULL), 0);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_pause(x.m, "a2", true, NULL, &rec, NULL), 0);
        sbx_record_done(&rec);
        fix_close(&x);
        cr_assert_eq(x.f->forgets, 5, "every handle dropped, nothing stopped");
        int net, rootfs, vmm;
        fake_live(x.f, &net, &rootfs, &vmm);
        cr_assert_eq(vmm, 5, "closing the manager kills nothing");

        /* while the agent is down: a3's VMM dies, and a leftover appears */
        int dead_pid = fake_kill_vmm(x.f, "a3", false);
        fake_add_orphan(x.f, "ghost");

        fix_open(&x);
        cr_assert_eq(state_of(&x, "a0"), SBX_STATE_RUNNING);
        cr_assert_eq(state_of(&x, "a1"), SBX_STATE_PAUSED);
        cr_assert_eq(state_of(&x, "a4"), SBX_STATE_RUNNING);
        cr_assert_eq(sbx_mgr_get(x.m, "a2", &rec, NULL), 0);
        cr_assert_eq(rec.state, SBX_STATE_PAUSED);
        cr_assert(rec.snapshotted);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_get(x.m, "a3", &rec, NULL), 0);
        cr_assert_eq(rec.state, SBX_STATE_FAILED);
        char want[128];
        snprintf(want, sizeof want, "vmm pid %d no longer running after agent restart", dead_pid);
        cr_assert_str_eq(rec.failure, want);
        cr_assert_not(rec.has_slot);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_get(x.m, "ghost", &rec, NULL), -ENOENT);
        cr_assert_not(fake_get(x.f, "ghost", &(struct fake_ent){ 0 }), "orphan removed");
        cr_assert_not(fake_get(x.f, "a3", &(struct fake_ent){ 0 }), "dead sandbox cleaned");
        fake_live(x.f, &net, &rootfs, &vmm);
        cr_assert_eq(vmm, 4);
        cr_assert_eq(net, 4);
        cr_assert_eq(rootfs, 4);
        struct sbx_host_info hi;
        sbx_mgr_host_info(x.m, &hi);
        cr_assert_eq(hi.usage.sandboxes, 4);
        cr_assert_eq(hi.failed, 1);

        /* the failed record survives another restart as it is */
        fix_close(&x);
        fix_open(&x);
        cr_assert_eq(sbx_mgr_get(x.m, "a3", &rec, NULL), 0);
        cr_assert_str_eq(rec.failure, want);
        sbx_record_done(&rec);

        /* adopted sandboxes are fully operable */
        cr_assert_eq(sbx_mgr_pause(x.m, "a0", false, NULL, &rec, &e), 0, "%s", e.msg);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_resume(x.m, "a1", 0, NULL, &rec, &e), 0, "%s", e.msg);
        sbx_record_done(&rec);
        cr_assert_eq(sbx_mgr_resume(x.m, "a2", 0, NULL, &rec, &e), 0, "%s", e.msg);
        sbx_record_done(&rec);
        const char *ids[] = { "a0", "a1", "a2", "a3", "a4" };
        for (int i = 0; i < 5; i++)
                cr_assert_eq(sbx_mgr_destroy(x.m, ids[i], NULL, &e), 0, "%s: %s", ids[i], e.msg);
        cr_assert(fake_empty(x.f));
        cr_assert_eq(fake_violations(x.f), 0);
        fix_close(&x);
        fix_open(&x);
        size_t n;
        struct sbx_record *all;
        cr_assert_eq(sbx_mgr_list(x.m, NULL, &all, &n), 0);
        cr_assert_eq(n, 0, "destroyed records are gone from the store");
        sbx_records_free(all, n);
        fix_done(&x);
}

Test(sbx_recover, ttl_is_honoured_across_a_restart)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        struct sbx_spec s = spec_of("short", "base");
        s.timeout_s = 10;
        struct sbx_record rec;
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &rec, NULL), 0);
        sbx_record_done(&rec);
        s.id = "long";
        s.timeout_s = 1000;
        cr_assert_eq(sbx_mgr_create(x.m, &s, NULL, &rec, NULL), 0);
        sbx_record_done(&rec);
        fix_close(&x);
        atomic_fetch_add(&x.now, 20000);   /* the agent was down for 20 s */
        fix_open(&x);
        cr_assert(wait_state(&x, "short", SBX_STATE_GONE, 2000), "expired during downtime, reaped");
        cr_assert_eq(state_of(&x, "long"), SBX_STATE_RUNNING);
        fix_advance(&x, 980000);
        cr_assert(wait_state(&x, "long", SBX_STATE_GONE, 2000));
        cr_assert(fake_empty(x.f));
        fix_done(&x);
}

Test(sbx_recover, a_second_agent_on_the_same_state_dir_is_refused)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        sbx_mgr *m2 = NULL;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_new(&x.cfg, &x.be, &m2, &e), -EBUSY);
        cr_assert(strstr(e.msg, "held by another agent"), "%s", e.msg);
        fix_done(&x);
}

/* Runs |body| in a forked child "agent" that then dies by SIGKILL, never
 * closing anything. The fake backend is in shared memory, so what the child
 * left behind is what the parent's recovery finds. */
static void run_agent_and_kill(struct fix *x, void (*body)(struct fix *x))
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                body(x);
                kill(getpid(), SIGKILL);
                _exit(99);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %#x", st);
}

static void child_open(struct fix *x)
{
        struct ha_err e = { { 0 } };
        if (sbx_mgr_new(&x->cfg, &x->be, &x->m, &e) < 0 || sbx_mgr_recover(x->m, &e) < 0)
                _exit(2);
        x->f->mgr = NULL;   /* the parent's pointer means nothing here */
}

static void twenty_then_die(struct fix *x)
{
        child_open(x);
        for (int i = 0; i < 20; i++) {
                char id[8];
                snprintf(id, sizeof id, "k%02d", i);
                struct sbx_spec s = spec_of(id, "base");
                s.timeout_s = i < 5 ? 10 : 1000;   /* k00..k04 expire during the downtime */
                struct sbx_record rec;
                if (sbx_mgr_create(x->m, &s, NULL, &rec, NULL) < 0)
                        _exit(3);
                sbx_record_done(&rec);
        }
}

Test(sbx_recover, kill_9_with_20_running_then_restart)
{
        struct fix x;
        fix_init(&x, true);
        ha_log_setup(HA_LOG_WARN, HA_LOG_TEXT, 2);
        run_agent_and_kill(&x, twenty_then_die);
        int net, rootfs, vmm;
        fake_live(x.f, &net, &rootfs, &vmm);
        cr_assert_eq(vmm, 20, "the VMMs outlive the agent");
        atomic_fetch_add(&x.now, 30000);
        fake_add_orphan(x.f, "leftover");

        fix_open(&x);
        for (int i = 5; i < 20; i++) {
                char id[8];
                snprintf(id, sizeof id, "k%02d", i);
                cr_assert_eq(state_of(&x, id), SBX_STATE_RUNNING, "%s re-adopted", id);
        }
        for (int i = 0; i < 5; i++) {
                char id[8];
                snprintf(id, sizeof id, "k%02d", i);
                cr_assert(wait_state(&x, id, SBX_STATE_GONE, 2000), "%s reaped", id);
        }
        cr_assert_not(fake_get(x.f, "leftover", &(struct fake_ent){ 0 }));
        fake_live(x.f, &net, &rootfs, &vmm);
        cr_assert_eq(vmm, 15);
        cr_assert_eq(net, 15);
        cr_assert_eq(rootfs, 15);
        cr_assert_eq(fake_calls(x.f, FAKE_VMM_ADOPT), 20);
        for (int i = 5; i < 20; i++) {
                char id[8];
                snprintf(id, sizeof id, "k%02d", i);
                cr_assert_eq(sbx_mgr_destroy(x.m, id, NULL, NULL), 0);
        }
        cr_assert(fake_empty(x.f));
        cr_assert_eq(fake_violations(x.f), 0);
        fix_done(&x);
}

static void die_mid_create(struct fix *x)
{
        child_open(x);
        fake_delay(x->f, FAKE_VMM_WAIT_READY, 60000);
        struct sbx_spec s = spec_of("half", "base");
        struct sbx_record rec;
        /* Dies inside create: a watchdog thread is overkill, the parent
         * cannot signal us mid-call either, so the child kills itself from
         * a second thread once the VMM has booted. */
        (void)sbx_mgr_create(x->m, &s, NULL, &rec, NULL);
        _exit(4);
}

static void *suicide_when_booted(void *p)
{
        struct fix *x = p;
        struct fake_ent fe;
        for (int i = 0; i < 5000; i++) {
                if (fake_get(x->f, "half", &fe) && fe.booted)
                        kill(getpid(), SIGKILL);
                usleep(1000);
        }
        _exit(5);
}

static void die_mid_create_with_watchdog(struct fix *x)
{
        pthread_t t;
        pthread_create(&t, NULL, suicide_when_booted, x);
        die_mid_create(x);
}

Test(sbx_recover, kill_9_mid_create_is_rolled_back_at_restart)
{
        struct fix x;
        fix_init(&x, true);
        run_agent_and_kill(&x, die_mid_create_with_watchdog);
        int net, rootfs, vmm;
        fake_live(x.f, &net, &rootfs, &vmm);
        cr_assert_eq(vmm, 1, "the child died with half a sandbox");
        fake_delay(x.f, FAKE_VMM_WAIT_READY, 0);
        fix_open(&x);
        cr_assert_eq(state_of(&x, "half"), SBX_STATE_GONE);
        cr_assert(fake_empty(x.f), "recovery finished the rollback");
        cr_assert_eq(fake_violations(x.f), 0);
        fix_close(&x);
        fix_open(&x);
        size_t n;
        struct sbx_record *all;
        cr_assert_eq(sbx_mgr_list(x.m, NULL, &all, &n), 0);
        cr_assert_eq(n, 0);
        sbx_records_free(all, n);
        /* the id is usable again */
        create_ok(&x, "half");
        fix_done(&x);
}

/* A VMM that runs but cannot be adopted is stopped (by id, no handle), its
 * sandbox reported FAILED; a failing orphan sweep does not keep the agent
 * from serving. */
Test(sbx_recover, unadoptable_vmm_is_stopped_and_orphan_failure_is_not_fatal)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ok(&x, "stubborn");
        create_ok(&x, "fine");
        fix_close(&x);
        fake_fail(x.f, FAKE_VMM_ADOPT, EIO, 2);   /* both tries for "fine" (ids load sorted) */
        fake_fail(x.f, FAKE_CLEANUP_ORPHANS, EIO, 1);
        fix_open(&x);
        struct sbx_record rec;
        cr_assert_eq(sbx_mgr_get(x.m, "fine", &rec, NULL), 0);
        cr_assert_eq(rec.state, SBX_STATE_FAILED);
        sbx_record_done(&rec);
        cr_assert_eq(state_of(&x, "stubborn"), SBX_STATE_RUNNING);
        cr_assert_not(fake_get(x.f, "fine", &(struct fake_ent){ 0 }), "its VMM was stopped");
        int net, rootfs, vmm;
        fake_live(x.f, &net, &rootfs, &vmm);
        cr_assert_eq(vmm, 1);
        cr_assert_eq(fake_violations(x.f), 0);
        fix_done(&x);
}

/* A crash between the VMM's pause/resume and the store write: recovery
 * believes the VMM, and the sandbox stays operable. */
Test(sbx_recover, interrupted_pause_or_resume_is_corrected_from_the_vmm)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ok(&x, "was-paused");
        create_ok(&x, "was-running");
        cr_assert_eq(sbx_mgr_pause(x.m, "was-paused", false, NULL, NULL, NULL), 0);
        fix_close(&x);
        fake_set_paused(x.f, "was-paused", false);   /* resumed, record not written */
        fake_set_paused(x.f, "was-running", true);   /* paused, record not written */
        fix_open(&x);
        cr_assert_eq(state_of(&x, "was-paused"), SBX_STATE_RUNNING);
        cr_assert_eq(state_of(&x, "was-running"), SBX_STATE_PAUSED);
        cr_assert_eq(sbx_mgr_resume(x.m, "was-running", 0, NULL, NULL, NULL), 0);
        cr_assert_eq(sbx_mgr_pause(x.m, "was-paused", false, NULL, NULL, NULL), 0);
        fix_close(&x);
        fix_open(&x);   /* the corrections were persisted */
        cr_assert_eq(state_of(&x, "was-paused"), SBX_STATE_PAUSED);
        cr_assert_eq(state_of(&x, "was-running"), SBX_STATE_RUNNING);
        cr_assert_eq(fake_violations(x.f), 0);
        fix_done(&x);
}

static int row_state(const char *dir, const char *id)
{
        char path[300];
        snprintf(path, sizeof path, "%s/state.db", dir);
        sqlite3 *db;
        sqlite3_stmt *q;
        int st = -1;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
                return -2;
        if (sqlite3_prepare_v2(db, "SELECT state FROM sandboxes WHERE id = ?1", -1, &q, NULL) ==
            SQLITE_OK) {
                sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
                if (sqlite3_step(q) == SQLITE_ROW)
                        st = sqlite3_column_int(q, 0);
                sqlite3_finalize(q);
        }
        sqlite3_close(db);
        return st;
}

/* Every answer is preceded by its store write: another reader of the
 * database sees the new state as soon as the call returns. */
Test(sbx_recover, each_transition_is_on_disk_before_the_call_returns)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_ok(&x, "d");
        cr_assert_eq(row_state(x.dir, "d"), SBX_STATE_RUNNING);
        cr_assert_eq(sbx_mgr_pause(x.m, "d", false, NULL, NULL, NULL), 0);
        cr_assert_eq(row_state(x.dir, "d"), SBX_STATE_PAUSED);
        cr_assert_eq(sbx_mgr_resume(x.m, "d", 0, NULL, NULL, NULL), 0);
        cr_assert_eq(row_state(x.dir, "d"), SBX_STATE_RUNNING);
        fake_kill_vmm(x.f, "d", true);
        cr_assert(wait_state(&x, "d", SBX_STATE_FAILED, 2000));
        uint64_t until = ha_now_ms() + 2000;
        while (row_state(x.dir, "d") != SBX_STATE_FAILED && ha_now_ms() < until)
                usleep(1000);   /* the janitor persists right after the state flips */
        cr_assert_eq(row_state(x.dir, "d"), SBX_STATE_FAILED);
        cr_assert_eq(sbx_mgr_destroy(x.m, "d", NULL, NULL), 0);
        cr_assert_eq(row_state(x.dir, "d"), -1, "deleted");
        fix_done(&x);
}
