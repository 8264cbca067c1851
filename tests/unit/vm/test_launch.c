/*
 * Tests of vm/launch.c: argv building (plain and jailer), path limits, and
 * what the child really gets (session, mount namespace, netns, fds, env,
 * signals), plus failure reporting through the error pipe.
 */
#include <dirent.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>

#include "fctest.h"
#include "core/time.h"
#include "vm/launch.h"

static char tdir[64];

static void setup(void)
{
        fct_mkdtemp(tdir, sizeof tdir);
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

TestSuite(vm_launch, .init = setup, .fini = teardown, .timeout = 60);

static void argv_str(char *const *argv, char *out, size_t size)
{
        out[0] = '\0';
        for (int i = 0; argv[i]; i++) {
                size_t l = strlen(out);
                snprintf(out + l, size - l, "%s%s", i ? " " : "", argv[i]);
        }
}

Test(vm_launch, plain_argv)
{
        struct vm_launch l = { .vmm_bin = "/usr/bin/firecracker", .id = "sbx-7",
                               .api_sock = "/run/ha/sbx-7/api.sock" };
        struct vm_argv av;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_launch_argv(&l, &av, &e), 0, "%s", e.msg);
        char s[512];
        argv_str(av.argv, s, sizeof s);
        cr_assert_str_eq(s, "/usr/bin/firecracker --api-sock /run/ha/sbx-7/api.sock --id sbx-7");
}

Test(vm_launch, jailer_argv_and_jail_root)
{
        struct vm_launch l = { .vmm_bin = "/usr/bin/firecracker", .id = "sbx-7",
                               .api_sock = "/api.sock", .jailer_bin = "/usr/bin/jailer",
                               .uid = 10007, .gid = 10008, .chroot_base = "/srv/jailer",
                               .netns_path = "/run/netns/ha-slot-7" };
        struct vm_argv av;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_launch_argv(&l, &av, &e), 0, "%s", e.msg);
        char s[512];
        argv_str(av.argv, s, sizeof s);
        cr_assert_str_eq(s, "/usr/bin/jailer --id sbx-7 --exec-file /usr/bin/firecracker "
                            "--uid 10007 --gid 10008 --chroot-base-dir /srv/jailer "
                            "--netns /run/netns/ha-slot-7 -- --api-sock /api.sock");
        char root[256];
        cr_assert_eq(vm_jail_root(&l, root, sizeof root), 0);
        cr_assert_str_eq(root, "/srv/jailer/firecracker/sbx-7/root");
        cr_assert_eq(vm_jail_root(&l, root, 20), -ENAMETOOLONG);

        l.netns_path = NULL;
        cr_assert_eq(vm_launch_argv(&l, &av, &e), 0);
        argv_str(av.argv, s, sizeof s);
        cr_assert_null(strstr(s, "--netns"));
        l.chroot_base = "relative";
        cr_assert_eq(vm_launch_argv(&l, &av, &e), -EINVAL);
        l.chroot_base = "/srv/jailer";
        l.vmm_bin = "firecracker";
        cr_assert_eq(vm_launch_argv(&l, &av, &e), -EINVAL, "jailer needs an absolute exec-file");
}

Test(vm_launch, ids_follow_firecrackers_rule)
{
        cr_assert(vm_id_is_valid("a"));
        cr_assert(vm_id_is_valid("sbx-0123-abcd"));
        char max[VM_ID_MAX + 2];
        memset(max, 'a', VM_ID_MAX);
        max[VM_ID_MAX] = '\0';
        cr_assert(vm_id_is_valid(max));
        max[VM_ID_MAX] = 'a';
        max[VM_ID_MAX + 1] = '\0';
        cr_assert_not(vm_id_is_valid(max));
        const char *bad[] = { "", "a_b", "a/b", "..", "a b", "é", NULL };
        for (int i = 0; bad[i]; i++)
                cr_assert_not(vm_id_is_valid(bad[i]), "%s", bad[i]);
        cr_assert_not(vm_id_is_valid(NULL));
}

Test(vm_launch, socket_path_limit_is_107_bytes)
{
        char p[200];
        memset(p, 'x', sizeof p);
        p[0] = '/';
        p[107] = '\0';
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_sock_path_check("API socket", p, 0, &e), 0);
        p[107] = 'x';
        p[108] = '\0';
        cr_assert_eq(vm_sock_path_check("API socket", p, 0, &e), -ENAMETOOLONG);
        cr_assert(strstr(e.msg, "API socket path is 108 bytes, the limit is 107"), "%s", e.msg);
        p[100] = '\0';
        cr_assert_eq(vm_sock_path_check("vsock", p, 11, &e), -ENAMETOOLONG, "room for _<port>");

        struct vm_launch l = { .vmm_bin = "/bin/true", .id = "x", .api_sock = p,
                               .console_log = "/dev/null" };
        p[100] = 'x';
        struct vm_proc proc;
        cr_assert_eq(vm_launch_spawn(&l, &proc, &e), -ENAMETOOLONG);
}

/* Launches vm_fakefc with the given extras and waits for its socket. */
static void launch_fake(struct vm_launch *l, struct vm_proc *p, char *api, char *log, char *bin)
{
        fct_wrapper(tdir, "ok", bin, 256);
        snprintf(api, 128, "%s/api.sock", tdir);
        snprintf(log, 128, "%s/console.log", tdir);
        l->vmm_bin = bin;
        l->id = "t1";
        l->api_sock = api;
        l->console_log = log;
        struct ha_err e = { { 0 } };
        int r = vm_launch_spawn(l, p, &e);
        cr_assert_eq(r, 0, "spawn: %d %s", r, e.msg);
        r = vm_launch_wait_ready(p, api, 3000, log, NULL, &e);
        cr_assert_eq(r, 0, "ready: %d %s", r, e.msg);
}

/* Reads until EOF: a /proc seq file (mountinfo) gives about a page per
 * read(), and a machine with many mounts has more than that before ours. */
static char *slurp(const char *p)
{
        static char buf[1 << 20];
        size_t have = 0;
        ssize_t n;
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "%s", p);
        while (have < sizeof buf - 1 && (n = read(fd, buf + have, sizeof buf - 1 - have)) > 0)
                have += (size_t)n;
        close(fd);
        buf[have] = '\0';
        return buf;
}

static unsigned long long status_mask(pid_t pid, const char *key)
{
        char p[64], *s;
        snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
        s = strstr(slurp(p), key);
        cr_assert_not_null(s);
        return strtoull(s + strlen(key), NULL, 16);
}

Test(vm_launch, child_gets_own_session_clean_fds_env_and_signals)
{
        /* A leaky fd (no O_CLOEXEC), an ignored and a blocked signal. */
        int leak = open("/dev/null", O_RDONLY);
        cr_assert_gt(leak, 2);
        signal(SIGPIPE, SIG_IGN);
        sigset_t blk;
        sigemptyset(&blk);
        sigaddset(&blk, SIGTERM);
        sigprocmask(SIG_BLOCK, &blk, NULL);

        struct vm_launch l = { 0 };
        struct vm_proc p;
        char api[128], log[128], bin[256], rec[128];
        launch_fake(&l, &p, api, log, bin);
        cr_assert_eq(getsid(p.pid), p.pid);
        cr_assert_eq(getpgid(p.pid), p.pid);
        cr_assert_neq(getpgid(p.pid), getpgid(0));
        cr_assert_eq(status_mask(p.pid, "SigBlk:"), 0, "signal mask reset");
        cr_assert_eq(status_mask(p.pid, "SigIgn:"), 0, "ignored signals reset");
        uint64_t st;
        cr_assert_eq(vm_proc_starttime(p.pid, &st), 0);
        cr_assert_eq(st, p.starttime);

        snprintf(rec, sizeof rec, "%s/requests.log", tdir);
        char *r = slurp(rec);
        cr_assert(strstr(r, "FDS 0 1 2\n"), "fds leaked into the VMM: %s", r);
        cr_assert(strstr(r, "ENV /usr/sbin:/usr/bin:/sbin:/bin\n"), "%s", r);
        cr_assert(strstr(r, "HOME unset\n"), "clean environment: %s", r);
        cr_assert(strstr(slurp(log), "fakefc: starting id=t1"), "stdout goes to the log");

        struct vm_exit ex;
        cr_assert_eq(vm_proc_kill(&p, 3000, &ex), 0);
        cr_assert(ex.known);
        cr_assert_eq(ex.signal, SIGKILL);
        cr_assert(fct_pid_gone(p.pid));
        cr_assert_eq(p.pidfd, -1);
        close(leak);
}

Test(vm_launch, private_mounts_and_setns)
{
        if (geteuid() != 0)
                skip_test("needs root: namespaces");
        /* A named network namespace of our own: a child unshares and its
         * namespace file is bind-mounted onto <tdir>/netns. */
        char nsfile[128];
        snprintf(nsfile, sizeof nsfile, "%s/netns", tdir);
        fct_write(nsfile, "", 0644);
        pid_t c = fork();
        cr_assert_geq(c, 0);
        if (c == 0) {
                if (unshare(CLONE_NEWNET) < 0 ||
                    mount("/proc/self/ns/net", nsfile, NULL, MS_BIND, NULL) < 0)
                        _exit(1);
                _exit(0);
        }
        int st;
        waitpid(c, &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        struct stat nst;
        cr_assert_eq(stat(nsfile, &nst), 0);

        char kernel[128], rootfs[128], mnt[128], kdst[160], rdst[160];
        snprintf(kernel, sizeof kernel, "%s/vmlinux", tdir);
        snprintf(rootfs, sizeof rootfs, "%s/disk", tdir);
        snprintf(mnt, sizeof mnt, "%s/vmroot", tdir);
        snprintf(kdst, sizeof kdst, "%s/kernel", mnt);
        snprintf(rdst, sizeof rdst, "%s/rootfs", mnt);
        fct_write(kernel, "k", 0644);
        fct_write(rootfs, "r", 0600);
        cr_assert_eq(mkdir(mnt, 0755), 0);
        struct vm_launch l = { .netns_path = nsfile, .tmpfs_dir = mnt,
                               .binds = { { kernel, kdst, true }, { rootfs, rdst, false } },
                               .n_binds = 2 };
        struct vm_proc p;
        char api[128], log[128], bin[256], rec[128];
        launch_fake(&l, &p, api, log, bin);

        snprintf(rec, sizeof rec, "%s/requests.log", tdir);
        char want[64];
        snprintf(want, sizeof want, "NETNS %lu\n", (unsigned long)nst.st_ino);
        cr_assert(strstr(slurp(rec), want), "not in the slot netns: %s", slurp(rec));

        /* The VMM sees kernel (read-only) and rootfs in its tmpfs... */
        char mi[128];
        snprintf(mi, sizeof mi, "/proc/%d/mountinfo", (int)p.pid);
        char *m = slurp(mi);
        cr_assert(strstr(m, mnt), "no tmpfs in the VMM's namespace");
        cr_assert(strstr(m, kdst), "kernel not bound");
        cr_assert(strstr(m, rdst), "rootfs not bound");
        /* ...and the host sees none of it. */
        cr_assert_null(strstr(slurp("/proc/self/mountinfo"), mnt), "mount leaked to the host");
        cr_assert_eq(access(kdst, F_OK), -1);

        cr_assert_eq(vm_proc_kill(&p, 3000, NULL), 0);
        umount2(nsfile, MNT_DETACH);
}

Test(vm_launch, failing_step_is_reported_with_its_path)
{
        if (geteuid() != 0)
                skip_test("needs root: namespaces");
        char notns[128], bin[256], log[128], api[128];
        snprintf(notns, sizeof notns, "%s/not-a-netns", tdir);
        fct_write(notns, "", 0644);
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        snprintf(api, sizeof api, "%s/api.sock", tdir);
        snprintf(log, sizeof log, "%s/console.log", tdir);
        struct vm_launch l = { .vmm_bin = bin, .id = "t2", .api_sock = api, .console_log = log,
                               .netns_path = notns };
        struct vm_proc p;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_launch_spawn(&l, &p, &e), -EINVAL);
        cr_assert(strstr(e.msg, "setns into"), "%s", e.msg);
        cr_assert(strstr(e.msg, notns), "%s", e.msg);

        l.netns_path = "/nonexistent/netns";
        cr_assert_eq(vm_launch_spawn(&l, &p, &e), -ENOENT);
        cr_assert(strstr(e.msg, "network namespace /nonexistent/netns"), "%s", e.msg);

        l.netns_path = NULL;
        l.vmm_bin = "/nonexistent/firecracker";
        cr_assert_eq(vm_launch_spawn(&l, &p, &e), -ENOENT);
        cr_assert(strstr(e.msg, "VMM binary /nonexistent/firecracker"), "%s", e.msg);
        /* No child left behind by any of these. */
        cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1);
        cr_assert_eq(errno, ECHILD);
}

Test(vm_launch, stale_socket_is_removed_before_spawning)
{
        struct vm_launch l = { 0 };
        struct vm_proc p;
        char api[128], log[128], bin[256];
        snprintf(api, sizeof api, "%s/api.sock", tdir);
        fct_write(api, "stale", 0644);
        launch_fake(&l, &p, api, log, bin);
        struct stat st;
        cr_assert_eq(stat(api, &st), 0);
        cr_assert(S_ISSOCK(st.st_mode), "a fresh socket replaced the stale file");
        cr_assert_eq(vm_proc_kill(&p, 3000, NULL), 0);
}

Test(vm_launch, exit_before_socket_is_echild_with_status_and_log)
{
        char api[128], log[128];
        snprintf(api, sizeof api, "%s/api.sock", tdir);
        snprintf(log, sizeof log, "%s/console.log", tdir);
        struct vm_launch l = { .vmm_bin = "/bin/false", .id = "t3", .api_sock = api,
                               .console_log = log };
        struct vm_proc p;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_launch_spawn(&l, &p, &e), 0, "%s", e.msg);
        struct vm_exit ex;
        cr_assert_eq(vm_launch_wait_ready(&p, api, 3000, log, &ex, &e), -ECHILD);
        cr_assert(ex.known);
        cr_assert_eq(ex.code, 1);
        cr_assert(strstr(e.msg, "exited with code 1 before opening its API socket"), "%s", e.msg);
        cr_assert(fct_pid_gone(p.pid), "reaped");
        close(p.pidfd);

        char bin[256];
        fct_wrapper(tdir, "exit-on-start", bin, sizeof bin);
        l.vmm_bin = bin;
        cr_assert_eq(vm_launch_spawn(&l, &p, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_launch_wait_ready(&p, api, 3000, log, &ex, &e), -ECHILD);
        cr_assert(strstr(e.msg, "log: fakefc: starting id=t3 mode=exit-on-start|fakefc: Failed to bind the API "
                                "socket: Address in use"),
                  "%s", e.msg);
        close(p.pidfd);
}

Test(vm_launch, wait_ready_times_out_and_leaves_the_process_to_the_caller)
{
        char api[128], log[128];
        snprintf(api, sizeof api, "%s/api.sock", tdir);
        snprintf(log, sizeof log, "%s/console.log", tdir);
        char bin[256], script[256];
        snprintf(bin, sizeof bin, "%s/sleeper", tdir);
        snprintf(script, sizeof script, "#!/bin/sh\nexec /bin/sleep 600\n");
        fct_write(bin, script, 0755);
        struct vm_launch l = { .vmm_bin = bin, .id = "t4", .api_sock = api, .console_log = log };
        struct vm_proc p;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_launch_spawn(&l, &p, &e), 0, "%s", e.msg);
        uint64_t t0 = ha_now_ms();
        cr_assert_eq(vm_launch_wait_ready(&p, api, 200, log, NULL, &e), -ETIMEDOUT);
        uint64_t dt = ha_now_ms() - t0;
        cr_assert_geq(dt, 200);
        cr_assert_lt(dt, 1500);
        cr_assert(vm_process_alive(p.pid, p.starttime));
        struct vm_exit ex;
        cr_assert_eq(vm_proc_kill(&p, 3000, &ex), 0);
        cr_assert_eq(ex.signal, SIGKILL);
        cr_assert(fct_pid_gone(p.pid));
}

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        cr_assert_not_null(d);
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

Test(vm_launch, every_child_step_failing_is_reported_and_leaves_nothing)
{
        if (geteuid() != 0)
                skip_test("needs root: namespaces");
        char nsfile[128];
        snprintf(nsfile, sizeof nsfile, "%s/netns", tdir);
        fct_write(nsfile, "", 0644);
        pid_t c = fork();
        cr_assert_geq(c, 0);
        if (c == 0)
                _exit(unshare(CLONE_NEWNET) < 0 ||
                      mount("/proc/self/ns/net", nsfile, NULL, MS_BIND, NULL) < 0);
        int st;
        waitpid(c, &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

        char kernel[128], mnt[128], kdst[160], api[128], log[128], bin[256];
        snprintf(kernel, sizeof kernel, "%s/vmlinux", tdir);
        snprintf(mnt, sizeof mnt, "%s/vmroot", tdir);
        snprintf(kdst, sizeof kdst, "%s/kernel", mnt);
        snprintf(api, sizeof api, "%s/api.sock", tdir);
        snprintf(log, sizeof log, "%s/console.log", tdir);
        fct_write(kernel, "k", 0644);
        cr_assert_eq(mkdir(mnt, 0755), 0);
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        const char *words[] = { "setsid", "unshare", "rprivate", "tmpfs", "create bind target",
                                "bind mount", "read-only", "setns", "redirect stdio",
                                "close_range", "execve" };
        int fds = count_fds();
        for (int step = 1; step <= VM_LAUNCH_STEPS; step++) {
                struct vm_launch l = { .vmm_bin = bin, .id = "inj", .api_sock = api,
                                       .console_log = log, .netns_path = nsfile,
                                       .tmpfs_dir = mnt,
                                       .binds = { { kernel, kdst, true } },
                                       .n_binds = 1,
                                       .inject_step = step,
                                       .inject_errno = EPERM };
                struct vm_proc p;
                struct ha_err e = { { 0 } };
                cr_assert_eq(vm_launch_spawn(&l, &p, &e), -EPERM, "step %d: %s", step, e.msg);
                cr_assert(strstr(e.msg, words[step - 1]), "step %d: %s", step, e.msg);
                cr_assert(strstr(e.msg, "Operation not permitted"), "%s", e.msg);
                cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "step %d left a child", step);
                cr_assert_eq(count_fds(), fds, "step %d leaked an fd", step);
                cr_assert_eq(access(api, F_OK), -1);
        }
        cr_assert_null(strstr(slurp("/proc/self/mountinfo"), mnt), "mount leaked to the host");
        umount2(nsfile, MNT_DETACH);
}
