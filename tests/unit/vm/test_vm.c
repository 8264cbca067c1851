/*
 * Tests of vm/vm.c: the whole driver path (launch in a private mount
 * namespace, API configuration, pause/resume, snapshot, restore, stop)
 * against vm_fakefc, and the spec conformance of every body it sent.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>

#include "core/time.h"
#include "fctest.h"
#include "vm/vm.h"

static char tdir[64];
static char run_dir[128], kernel[128], rootfs[128];

static void setup(void)
{
        fct_mkdtemp(tdir, sizeof tdir);
        snprintf(run_dir, sizeof run_dir, "%s/run", tdir);
        snprintf(kernel, sizeof kernel, "%s/vmlinux", tdir);
        snprintf(rootfs, sizeof rootfs, "%s/rootfs.ext4", tdir);
        fct_write(kernel, "ELF kernel\n", 0644);
        fct_write(rootfs, "ext4 image\n", 0600);
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

TestSuite(vm, .init = setup, .fini = teardown, .timeout = 60);

static void config(struct vm_config *c, struct vm_spec *s, const char *bin)
{
        *c = (struct vm_config){ .firecracker_bin = bin, .kernel_path = kernel, .run_dir = run_dir,
                                 .api_timeout_ms = 2000, .boot_timeout_ms = 3000,
                                 .stop_timeout_ms = 500 };
        *s = (struct vm_spec){ .id = "sbx-1", .rootfs_path = rootfs, .tap_name = "tap0",
                               .guest_mac = "06:00:ac:10:00:02",
                               .ip_arg = "ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off",
                               .vcpu_count = 2, .mem_size_mib = 256, .guest_cid = 3 };
}

static void requests_log(char *buf, size_t size)
{
        snprintf(buf, size, "%s/sbx-1/requests.log", run_dir);
}

/* Reads until EOF: a /proc seq file (mountinfo) gives about a page per
 * read(). */
static char *slurp(const char *p)
{
        static char buf[1 << 20];
        size_t have = 0;
        ssize_t n;
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        while (have < sizeof buf - 1 && (n = read(fd, buf + have, sizeof buf - 1 - have)) > 0)
                have += (size_t)n;
        close(fd);
        buf[have] = '\0';
        return buf;
}

Test(vm, full_lifecycle_against_fake_vmm_and_bodies_match_the_spec)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256], req[256], keep[256];
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        vm *v = NULL;
        struct ha_err e = { { 0 } };
        int r = vm_start(&c, &s, &v, &e);
        cr_assert_eq(r, 0, "vm_start: %d %s", r, e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_RUNNING);
        pid_t pid = vm_pid(v);
        cr_assert_gt(pid, 0);
        cr_assert_eq(getsid(pid), pid, "own session");
        cr_assert_eq(getpgid(pid), pid, "own process group");
        cr_assert_gt(vm_starttime(v), 0);
        struct vm_boot_times bt;
        vm_get_boot_times(v, &bt);
        cr_assert_gt(bt.spawn_us, 0);
        cr_assert_gt(bt.socket_us, 0);
        cr_assert_gt(bt.config_us, 0);
        cr_assert_gt(bt.start_us, 0);
        cr_assert(vm_process_alive(pid, vm_starttime(v)));
        cr_assert(strstr(vm_vsock_path(v), "/run/sbx-1/vsock.sock"));

        cr_assert_eq(vm_pause(v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_PAUSED);
        cr_assert_eq(vm_resume(v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_RUNNING);

        char snap[256], mem[256];
        snprintf(snap, sizeof snap, "%s/snap.state", tdir);
        snprintf(mem, sizeof mem, "%s/snap.mem", tdir);
        cr_assert_eq(vm_snapshot(v, snap, mem, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_SAVED);
        cr_assert_eq(access(snap, R_OK), 0);
        cr_assert_eq(access(mem, R_OK), 0);
        cr_assert(fct_pid_gone(pid), "snapshot stops the process");
        cr_assert_eq(vm_pid(v), 0);

        cr_assert_eq(vm_restore(v, snap, mem, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_RUNNING);
        pid_t pid2 = vm_pid(v);
        cr_assert_gt(pid2, 0);
        cr_assert_neq(pid2, pid);

        /* Keep the request log: vm_stop removes the run directory. */
        requests_log(req, sizeof req);
        snprintf(keep, sizeof keep, "%s/requests.log", tdir);
        cr_assert_eq(link(req, keep), 0);

        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_STOPPED);
        cr_assert(fct_pid_gone(pid2));
        char d[256];
        snprintf(d, sizeof d, "%s/sbx-1", run_dir);
        cr_assert_eq(access(d, F_OK), -1, "run dir removed");
        cr_assert_eq(vm_stop(v, &e), 0, "stop twice is fine");
        vm_free(v);

        char *log = slurp(keep);
        cr_assert_not_null(log);
        const char *expect[] = { "PUT /logger", "PUT /metrics", "PUT /machine-config",
                                 "PUT /boot-source",
                                 "PUT /drives/rootfs", "PUT /network-interfaces/eth0",
                                 "PUT /vsock", "PUT /actions", "PATCH /vm",
                                 "PUT /snapshot/create", "PUT /snapshot/load", NULL };
        for (int i = 0; expect[i]; i++)
                cr_assert(strstr(log, expect[i]), "no %s in\n%s", expect[i], log);
        cr_assert(strstr(log, "\"boot_args\":\"console=ttyS0 reboot=k panic=1 pci=off "
                              "ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off\""),
                  "%s", log);
        cr_assert(strstr(log, "SendCtrlAltDel"), "stop asks the guest first");
        cr_assert(strstr(log, "\"vcpu_count\":2,\"mem_size_mib\":256"), "%s", log);
        cr_assert_eq(fct_validate(keep), 0, "request bodies do not match the spec");
        if (getenv("FCT_DUMP")) fputs(log, stderr);
}

Test(vm, validator_catches_a_bad_body)
{
        /* The conformance check is only worth something if it can fail. */
        char p[256];
        snprintf(p, sizeof p, "%s/bad.log", tdir);
        fct_write(p,
                  "PUT /vsock 33\n{\"guest_cid\":2,\"uds_path\":\"/v.s\"}\n"
                  "PUT /logger 25\n{\"log_path\":\"/x\",\"bad\":1}\n",
                  0644);
        cr_assert_eq(fct_validate(p), 1);
}

Test(vm, missing_kernel_is_enoent_and_leaves_nothing)
{
        char bin[256];
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        c.kernel_path = "/nonexistent/vmlinux";
        vm *v = NULL;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_start(&c, &s, &v, &e), -ENOENT);
        cr_assert(strstr(e.msg, "kernel image /nonexistent/vmlinux"), "%s", e.msg);
        cr_assert_null(v);
        char d[256];
        snprintf(d, sizeof d, "%s/sbx-1", run_dir);
        cr_assert_eq(access(d, F_OK), -1);
}

Test(vm, firecracker_fault_message_reaches_the_caller)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256];
        fct_wrapper(tdir, "fault", bin, sizeof bin);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        vm *v = NULL;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_start(&c, &s, &v, &e), -EINVAL, "%s", e.msg);
        cr_assert(strstr(e.msg, "PUT /boot-source: 400: Invalid kernel image: bzImage given, "
                                "\"vmlinux\" expected"),
                  "%s", e.msg);
        char d[256];
        snprintf(d, sizeof d, "%s/sbx-1", run_dir);
        cr_assert_eq(access(d, F_OK), -1, "nothing left");
}

Test(vm, vmm_dying_during_configuration_gives_exit_code_and_log)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256];
        fct_wrapper(tdir, "die-at-boot", bin, sizeof bin);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        vm *v = NULL;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_start(&c, &s, &v, &e), -ECHILD, "%s", e.msg);
        cr_assert(strstr(e.msg, "exited with code 3"), "%s", e.msg);
        cr_assert(strstr(e.msg, "cannot load kernel"), "%s", e.msg);
}

Test(vm, vmm_exiting_at_once_is_echild_with_code)
{
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, "/bin/false");
        vm *v = NULL;
        struct ha_err e = { { 0 } };
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        cr_assert_eq(vm_start(&c, &s, &v, &e), -ECHILD, "%s", e.msg);
        cr_assert(strstr(e.msg, "exited with code 1 before opening its API socket"), "%s", e.msg);
        char d[256];
        snprintf(d, sizeof d, "%s/sbx-1", run_dir);
        cr_assert_eq(access(d, F_OK), -1, "nothing left");
}

Test(vm, vmm_never_opening_its_socket_times_out_and_leaves_nothing)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256], pidf[256], script[600];
        snprintf(bin, sizeof bin, "%s/fc-sleep", tdir);
        snprintf(pidf, sizeof pidf, "%s/sleep.pid", tdir);
        snprintf(script, sizeof script, "#!/bin/sh\necho $$ > %s\nexec /bin/sleep 600\n", pidf);
        fct_write(bin, script, 0755);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        c.boot_timeout_ms = 300;
        vm *v = NULL;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_start(&c, &s, &v, &e), -ETIMEDOUT, "%s", e.msg);
        cr_assert(strstr(e.msg, "did not open its API socket"), "%s", e.msg);
        char *p = slurp(pidf);
        cr_assert_not_null(p);
        pid_t pid = (pid_t)atoi(p);
        cr_assert_gt(pid, 0);
        cr_assert(fct_pid_gone(pid), "the VMM was killed and reaped");
        char d[256];
        snprintf(d, sizeof d, "%s/sbx-1", run_dir);
        cr_assert_eq(access(d, F_OK), -1, "nothing left");
}

Test(vm, socket_path_over_the_limit_is_enametoolong)
{
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, "/bin/true");
        char longdir[200];
        memset(longdir, 'd', sizeof longdir - 1);
        longdir[0] = '/';
        longdir[sizeof longdir - 1] = '\0';
        c.run_dir = longdir;
        vm *v = NULL;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_create(&c, &s, &v, &e), -ENAMETOOLONG);
        cr_assert(strstr(e.msg, "sun_path"), "%s", e.msg);
}

Test(vm, bad_ids_and_cids_are_einval)
{
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, "/bin/true");
        vm *v = NULL;
        struct ha_err e = { { 0 } };
        const char *bad[] = { "", "a/b", "..", "a_b", "x y", NULL };
        for (int i = 0; bad[i]; i++) {
                s.id = bad[i];
                cr_assert_eq(vm_create(&c, &s, &v, &e), -EINVAL, "%s", bad[i]);
        }
        s.id = "ok";
        s.guest_cid = 2;
        cr_assert_eq(vm_create(&c, &s, &v, &e), -EINVAL);
}

struct exit_seen {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool fired;
        struct vm_exit ex;
        char tail[2200];
};

static void on_exit_cb(void *ctx, vm *v, const struct vm_exit *ex, const char *tail)
{
        (void)v;
        struct exit_seen *s = ctx;
        pthread_mutex_lock(&s->lock);
        s->fired = true;
        s->ex = *ex;
        snprintf(s->tail, sizeof s->tail, "%s", tail);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

static bool wait_fired(struct exit_seen *s, int ms)
{
        pthread_mutex_lock(&s->lock);
        for (int i = 0; i < ms / 10 && !s->fired; i++) {
                pthread_mutex_unlock(&s->lock);
                usleep(10000);
                pthread_mutex_lock(&s->lock);
        }
        bool f = s->fired;
        pthread_mutex_unlock(&s->lock);
        return f;
}

Test(vm, watcher_reports_an_external_kill_and_not_a_stop)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        vm_watcher *w;
        cr_assert_eq(vm_watcher_new(&w), 0);
        struct exit_seen seen = { .lock = PTHREAD_MUTEX_INITIALIZER,
                                  .cond = PTHREAD_COND_INITIALIZER };
        char bin[256];
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        c.watcher = w;
        s.on_exit = on_exit_cb;
        s.on_exit_ctx = &seen;
        vm *v;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_start(&c, &s, &v, &e), 0, "%s", e.msg);
        pid_t pid = vm_pid(v);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert(wait_fired(&seen, 5000), "callback did not fire");
        cr_assert(seen.ex.known);
        cr_assert_eq(seen.ex.signal, SIGKILL);
        cr_assert_eq(seen.ex.pid, pid);
        cr_assert(strstr(seen.tail, "console: fakefc: starting id=sbx-1"), "%s", seen.tail);
        cr_assert_eq(vm_get_state(v), VM_STATE_EXITED);
        struct vm_exit last;
        cr_assert(vm_last_exit(v, &last));
        cr_assert_eq(last.signal, SIGKILL);
        cr_assert_str_eq(vm_id(v), "sbx-1");
        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        vm_free(v);

        /* A second VM destroyed by vm_stop: no callback. */
        seen.fired = false;
        s.id = "sbx-2";
        cr_assert_eq(vm_start(&c, &s, &v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        vm_free(v);
        cr_assert_not(wait_fired(&seen, 300), "vm_stop must not look like a crash");
        vm_watcher_free(w);
}

struct starter {
        struct vm_config *c;
        struct vm_spec *s;
        vm *v;
        int r;
};

static void *start_thread(void *arg)
{
        struct starter *st = arg;
        struct ha_err e;
        st->r = vm_start(st->c, st->s, &st->v, &e);
        return NULL;
}

Test(vm, vmm_outlives_the_thread_that_started_it_and_adopt_finds_it)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256];
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        struct starter st = { &c, &s, NULL, -1 };
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, start_thread, &st), 0);
        cr_assert_eq(pthread_join(t, NULL), 0);
        cr_assert_eq(st.r, 0);
        pid_t pid = vm_pid(st.v);
        uint64_t start = vm_starttime(st.v);
        /* The "request" is over and the handle released: still running. */
        vm_free(st.v);
        usleep(100000);
        cr_assert(vm_process_alive(pid, start));

        /* An agent restart re-adopts it by (pid, starttime)... */
        vm *v;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_adopt(&c, &s, pid, start + 1, &v, &e), -ESRCH, "wrong start time");
        cr_assert_eq(vm_adopt(&c, &s, pid, start, &v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_RUNNING);
        cr_assert_eq(vm_pause(v, &e), 0, "%s", e.msg);
        /* ...and only vm_stop ends it. */
        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        vm_free(v);
        for (int i = 0; i < 100 && vm_process_alive(pid, start); i++)
                usleep(10000);
        cr_assert_not(vm_process_alive(pid, start));
        waitpid(pid, NULL, WNOHANG); /* it was our child after all */
}

Test(vm, vmm_survives_a_kill_of_the_agents_process_group)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256];
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        int pfd[2];
        cr_assert_eq(pipe(pfd), 0);
        pid_t agent = fork();
        cr_assert_geq(agent, 0);
        if (agent == 0) {
                /* A stand-in agent in its own process group, as systemd
                 * or a terminal would see it. */
                setpgid(0, 0);
                struct vm_config c;
                struct vm_spec s;
                config(&c, &s, bin);
                vm *v;
                struct ha_err e;
                long msg[2] = { -1, 0 };
                if (vm_start(&c, &s, &v, &e) == 0) {
                        msg[0] = vm_pid(v);
                        msg[1] = (long)vm_starttime(v);
                }
                if (write(pfd[1], msg, sizeof msg) < 0)
                        _exit(2);
                pause();
                _exit(0);
        }
        close(pfd[1]);
        long msg[2];
        cr_assert_eq(read(pfd[0], msg, sizeof msg), (ssize_t)sizeof msg);
        close(pfd[0]);
        cr_assert_gt(msg[0], 0, "agent failed to start the VM");
        /* Ctrl-C / KillMode=control-group style: the whole agent group. */
        cr_assert_eq(kill(-agent, SIGKILL), 0);
        waitpid(agent, NULL, 0);
        usleep(100000);
        cr_assert(vm_process_alive((pid_t)msg[0], (uint64_t)msg[1]), "VMM died with the agent");

        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        vm *v;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_adopt(&c, &s, (pid_t)msg[0], (uint64_t)msg[1], &v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        vm_free(v);
        for (int i = 0; i < 200 && vm_process_alive((pid_t)msg[0], (uint64_t)msg[1]); i++)
                usleep(10000);
        cr_assert_not(vm_process_alive((pid_t)msg[0], (uint64_t)msg[1]));
}

Test(vm, every_configuration_step_failing_rolls_back_completely)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        /* logger, metrics, machine-config, boot-source, drive, network,
         * vsock, InstanceStart: fail each in turn. */
        const char *steps[] = { "/logger", "/metrics", "/machine-config", "/boot-source",
                                "/drives/rootfs", "/network-interfaces/eth0", "/vsock",
                                "/actions" };
        for (int n = 1; n <= 8; n++) {
                char mode[16], bin[256];
                snprintf(mode, sizeof mode, "fail-%d", n);
                fct_wrapper(tdir, mode, bin, sizeof bin);
                struct vm_config c;
                struct vm_spec s;
                config(&c, &s, bin);
                vm *v = NULL;
                struct ha_err e = { { 0 } };
                cr_assert_eq(vm_start(&c, &s, &v, &e), -EINVAL, "step %d: %s", n, e.msg);
                cr_assert(strstr(e.msg, steps[n - 1]), "step %d: %s", n, e.msg);
                cr_assert(strstr(e.msg, "injected failure"), "%s", e.msg);
                cr_assert_null(v);
                char d[256];
                snprintf(d, sizeof d, "%s/sbx-1", run_dir);
                cr_assert_eq(access(d, F_OK), -1, "step %d left the run dir", n);
                /* No VMM left: every child of ours has been reaped. */
                cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "step %d left a process", n);
        }
}

Test(vm, restore_failure_keeps_the_saved_state_and_no_process)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256], snap[256], mem[256];
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        vm *v;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_start(&c, &s, &v, &e), 0, "%s", e.msg);
        snprintf(snap, sizeof snap, "%s/s.state", tdir);
        snprintf(mem, sizeof mem, "%s/s.mem", tdir);
        cr_assert_eq(vm_snapshot(v, snap, mem, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_restore(v, "/nonexistent/state", mem, &e), -ENOENT);
        cr_assert_eq(vm_get_state(v), VM_STATE_SAVED);
        cr_assert_eq(vm_pause(v, &e), -EBUSY, "no process to pause");

        /* The next VMM refuses /snapshot/load (its 3rd request). */
        char script[600], fake[512];
        fct_fakefc_path(fake, sizeof fake);
        snprintf(script, sizeof script, "#!/bin/sh\nexec %s --mode fail-3 \"$@\"\n", fake);
        fct_write(bin, script, 0755);
        cr_assert_eq(vm_restore(v, snap, mem, &e), -EINVAL, "%s", e.msg);
        cr_assert(strstr(e.msg, "PUT /snapshot/load: 400: injected failure"), "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_SAVED);
        cr_assert_eq(vm_pid(v), 0);
        cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "failed restore left a process");

        /* A retry with a working VMM succeeds. */
        snprintf(script, sizeof script, "#!/bin/sh\nexec %s --mode ok \"$@\"\n", fake);
        fct_write(bin, script, 0755);
        cr_assert_eq(vm_restore(v, snap, mem, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_RUNNING);
        cr_assert_eq(vm_stop(v, &e), 0);
        vm_free(v);
        cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1);
}

Test(vm, jailer_mode_maps_paths_into_the_chroot)
{
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, "/usr/bin/firecracker");
        c.jailer_bin = "/usr/bin/jailer";
        c.chroot_base = "/srv/jailer";
        c.jailer_uid = 10001;
        c.jailer_gid = 10001;
        vm *v;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_create(&c, &s, &v, &e), 0, "%s", e.msg);
        cr_assert_str_eq(vm_vsock_path(v), "/srv/jailer/firecracker/sbx-1/root/vsock.sock");
        cr_assert_str_eq(vm_api_sock_path(v), "/srv/jailer/firecracker/sbx-1/root/api.sock");
        cr_assert_eq(vm_snapshot(v, "/a", "/b", &e), -EOPNOTSUPP);
        vm_free(v);
        c.chroot_base = NULL;
        cr_assert_eq(vm_create(&c, &s, &v, &e), -EINVAL);
}

struct par {
        const char *bin;
        int idx;
        int failures;
        char msg[HA_ERR_MSG_MAX];
};

static void *par_worker(void *arg)
{
        struct par *p = arg;
        char id[16];
        snprintf(id, sizeof id, "par-%d", p->idx);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, p->bin);
        s.id = id;
        for (int round = 0; round < 3; round++) {
                vm *v;
                struct ha_err e = { { 0 } };
                if (vm_start(&c, &s, &v, &e) < 0 || vm_pause(v, &e) < 0 || vm_resume(v, &e) < 0 ||
                    vm_stop(v, &e) < 0) {
                        p->failures++;
                        snprintf(p->msg, sizeof p->msg, "%s", e.msg);
                        return NULL;
                }
                vm_free(v);
        }
        return NULL;
}

Test(vm, parallel_vms_share_the_mount_point_without_interfering)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        /* Every VMM mounts its own tmpfs on the same <run_dir>/vmroot in
         * its own namespace: concurrent starts must not see each other. */
        char bin[256];
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        enum { N = 6 };
        pthread_t t[N];
        struct par p[N];
        for (int i = 0; i < N; i++) {
                p[i] = (struct par){ .bin = bin, .idx = i };
                cr_assert_eq(pthread_create(&t[i], NULL, par_worker, &p[i]), 0);
        }
        for (int i = 0; i < N; i++) {
                pthread_join(t[i], NULL);
                cr_assert_eq(p[i].failures, 0, "worker %d: %s", i, p[i].msg);
        }
        cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "a VMM was left");
        cr_assert_null(strstr(slurp("/proc/self/mountinfo"), "vmroot"), "a mount leaked");
}

Test(vm, split_phases_spawn_configure_start)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256], req[256];
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        vm *v;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_create(&c, &s, &v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_instance_start(v, &e), -EBUSY, "not spawned yet");
        cr_assert_eq(vm_spawn(v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_SPAWNED);
        cr_assert_gt(vm_pid(v), 0);
        cr_assert_eq(vm_configure(v, 4, 1024, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_instance_start(v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_RUNNING);
        requests_log(req, sizeof req);
        cr_assert(strstr(slurp(req), "\"vcpu_count\":4,\"mem_size_mib\":1024"), "%s", slurp(req));
        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        vm_free(v);

        /* A configure failure leaves the process for vm_stop. */
        char fbin[256];
        fct_wrapper(tdir, "fail-3", fbin, sizeof fbin);
        config(&c, &s, fbin);
        cr_assert_eq(vm_create(&c, &s, &v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_spawn(v, &e), 0, "%s", e.msg);
        pid_t pid = vm_pid(v);
        cr_assert_eq(vm_configure(v, 0, 0, &e), -EINVAL);
        cr_assert(strstr(e.msg, "PUT /machine-config"), "%s", e.msg);
        cr_assert_not(fct_pid_gone(pid), "configure must not kill what spawn acquired");
        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        cr_assert(fct_pid_gone(pid));
        vm_free(v);
}

Test(vm, spawned_vmm_dying_is_reported_by_the_watcher_and_configure)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        vm_watcher *w;
        cr_assert_eq(vm_watcher_new(&w), 0);
        struct exit_seen seen = { .lock = PTHREAD_MUTEX_INITIALIZER,
                                  .cond = PTHREAD_COND_INITIALIZER };
        char bin[256];
        fct_wrapper(tdir, "die-at-boot", bin, sizeof bin);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        c.watcher = w;
        s.on_exit = on_exit_cb;
        s.on_exit_ctx = &seen;
        vm *v;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_create(&c, &s, &v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_spawn(v, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_configure(v, 0, 0, &e), -ECHILD, "%s", e.msg);
        cr_assert(strstr(e.msg, "exited with code 3"), "%s", e.msg);
        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        vm_free(v);
        vm_watcher_free(w);
}

Test(vm, hung_vmm_api_times_out_and_rolls_back)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256];
        fct_wrapper(tdir, "hang", bin, sizeof bin);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s, bin);
        c.api_timeout_ms = 300;
        vm *v = NULL;
        struct ha_err e = { { 0 } };
        uint64_t t0 = ha_now_ms();
        cr_assert_eq(vm_start(&c, &s, &v, &e), -ETIMEDOUT, "%s", e.msg);
        cr_assert_lt(ha_now_ms() - t0, 3000);
        cr_assert(strstr(e.msg, "firecracker PUT /logger"), "%s", e.msg);
        cr_assert_null(v);
        cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "the hung VMM was left running");
        char d[256];
        snprintf(d, sizeof d, "%s/sbx-1", run_dir);
        cr_assert_eq(access(d, F_OK), -1);
}
