/*
 * Tests of vm/orphan.c: recovery after a crash of the agent.
 */
#include "fctest.h"
#include "vm/orphan.h"
#include "vm/vm.h"

static char tdir[64], run_dir[128], kernel[128], rootfs[128];

static void setup(void)
{
        fct_mkdtemp(tdir, sizeof tdir);
        snprintf(run_dir, sizeof run_dir, "%s/run", tdir);
        snprintf(kernel, sizeof kernel, "%s/vmlinux", tdir);
        snprintf(rootfs, sizeof rootfs, "%s/rootfs.ext4", tdir);
        fct_write(kernel, "k", 0644);
        fct_write(rootfs, "r", 0600);
}

static void teardown(void)
{
        fct_rmrf(tdir);
}

/* Criterion runs no .fini after a skip: clean up first. */
#define skip_test(...)                          \
        do {                                    \
                teardown();                     \
                cr_skip_test(__VA_ARGS__);      \
        } while (0)

TestSuite(vm_orphan, .init = setup, .fini = teardown, .timeout = 60);

static pid_t start_and_forget(const char *bin, const char *id, uint64_t *ret_start)
{
        struct vm_config c = { .firecracker_bin = bin, .kernel_path = kernel, .run_dir = run_dir };
        struct vm_spec s = { .id = id, .rootfs_path = rootfs };
        vm *v;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_start(&c, &s, &v, &e), 0, "%s", e.msg);
        pid_t pid = vm_pid(v);
        *ret_start = vm_starttime(v);
        vm_free(v); /* the agent "crashes": the VMM runs on */
        return pid;
}

Test(vm_orphan, kills_unowned_vmms_and_removes_their_dirs_only)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256];
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        uint64_t st_live, st_orphan;
        pid_t live = start_and_forget(bin, "live-1", &st_live);
        pid_t orphan = start_and_forget(bin, "orphan-1", &st_orphan);
        char ghost[256];
        snprintf(ghost, sizeof ghost, "%s/ghost-1", run_dir);
        cr_assert_eq(mkdir(ghost, 0700), 0);
        char f[300];
        snprintf(f, sizeof f, "%s/api.sock", ghost);
        fct_write(f, "stale", 0600);

        const char *live_ids[] = { "live-1" };
        struct ha_err e = { { 0 } };
        int n = vm_cleanup_orphans(run_dir, live_ids, 1, &e);
        cr_assert_eq(n, 3, "orphan process + its dir + ghost dir, got %d: %s", n, e.msg);
        for (int i = 0; i < 200 && vm_process_alive(orphan, st_orphan); i++)
                usleep(10000);
        cr_assert_not(vm_process_alive(orphan, st_orphan), "orphan VMM still running");
        cr_assert(vm_process_alive(live, st_live), "a live VMM was killed");
        cr_assert_eq(access(ghost, F_OK), -1);
        snprintf(f, sizeof f, "%s/orphan-1", run_dir);
        cr_assert_eq(access(f, F_OK), -1);
        snprintf(f, sizeof f, "%s/live-1/api.sock", run_dir);
        cr_assert_eq(access(f, F_OK), 0, "the live VM's files were touched");
        snprintf(f, sizeof f, "%s/vmroot", run_dir);
        cr_assert_eq(access(f, F_OK), 0, "the shared mount point stays");

        /* Nothing left to do the second time. */
        cr_assert_eq(vm_cleanup_orphans(run_dir, live_ids, 1, &e), 0);
        cr_assert_eq(vm_kill_process("live-1", live, st_live, 3000), 0);
        cr_assert_not(vm_process_alive(live, st_live));
        cr_assert_eq(vm_kill_process("live-1", live, st_live, 3000), 0, "already gone is fine");
        waitpid(-1, NULL, WNOHANG);
}

Test(vm_orphan, missing_run_dir_is_nothing_to_do)
{
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_cleanup_orphans("/nonexistent/run", NULL, 0, &e), 0);
}
