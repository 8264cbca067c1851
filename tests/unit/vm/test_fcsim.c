/*
 * The real driver path against the real simulator: a base image built here
 * (busybox + a counter as /sbin/init), cloned with rootfs_clone, booted by
 * vm_start through tools/fcsim/fcsim, paused/resumed (the counter stops and
 * goes on), snapshotted and restored, stopped; then nothing may be left:
 * no fcsim, no guest, no loop device, no cgroup, no run directory.
 * Skipped when fcsim is not built or we are not root.
 */
#include <dirent.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "fctest.h"
#include "rootfs/rootfs.h"
#include "vm/vm.h"

static char tdir[64], images[128], run_dir[128], kernel[128], clone_path[128], fcsim[512];

static const char init_script[] =
        "#!/bin/sh\n"
        "trap 'echo guest: bye; exit 0' TERM\n"
        "echo \"guest: booted args=$HA_BOOT_ARGS\"\n"
        "echo \"guest: net $(ip -4 addr show dev eth0 2>&1 | grep inet)\"\n"
        "i=0\n"
        "while :; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.02; done\n";

static int run(char *const argv[])
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(null, 1);
                execv(argv[0], argv);
                _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void make_base_image(void)
{
        char stage[128], p[256];
        snprintf(stage, sizeof stage, "%s/stage", tdir);
        const char *dirs[] = { "", "/bin", "/sbin", "/proc", "/sys", "/dev", "/tmp", "/run",
                               "/.vsock", "/etc", NULL };
        for (int i = 0; dirs[i]; i++) {
                snprintf(p, sizeof p, "%s%s", stage, dirs[i]);
                cr_assert_eq(mkdir(p, 0755), 0, "%s", p);
        }
        snprintf(p, sizeof p, "%s/bin/busybox", stage);
        char *cp[] = { "/bin/cp", "/bin/busybox", p, NULL };
        cr_assert_eq(run(cp), 0);
        const char *applets[] = { "sh", "sleep", "echo", "ip", "grep", NULL };
        for (int i = 0; applets[i]; i++) {
                snprintf(p, sizeof p, "%s/bin/%s", stage, applets[i]);
                cr_assert_eq(symlink("/bin/busybox", p), 0);
        }
        snprintf(p, sizeof p, "%s/sbin/init", stage);
        fct_write(p, init_script, 0755);
        snprintf(p, sizeof p, "%s/base.ext4", images);
        char *mkfs[] = { "/sbin/mkfs.ext4", "-q", "-F", "-d", stage, p, "32M", NULL };
        cr_assert_eq(run(mkfs), 0, "mkfs.ext4 failed");
}

static void setup(void)
{
        fct_mkdtemp(tdir, sizeof tdir);
        snprintf(images, sizeof images, "%s/images", tdir);
        snprintf(run_dir, sizeof run_dir, "%s/run", tdir);
        snprintf(kernel, sizeof kernel, "%s/vmlinux", tdir);
        snprintf(clone_path, sizeof clone_path, "%s/sbx.ext4", tdir);
        cr_assert_eq(mkdir(images, 0755), 0);
        fct_write(kernel, "not really a kernel\n", 0644);
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

TestSuite(vm_fcsim, .init = setup, .fini = teardown, .timeout = 120);

static void require_fcsim(void)
{
        if (geteuid() != 0)
                skip_test("needs root");
        const char *b = getenv("HA_BINARY_DIR");
        snprintf(fcsim, sizeof fcsim, "%s/tools/fcsim/fcsim", b ? b : ".");
        if (access(fcsim, X_OK) < 0)
                skip_test("fcsim not built (%s)", fcsim);
        if (access("/bin/busybox", X_OK) < 0 || access("/sbin/mkfs.ext4", X_OK) < 0)
                skip_test("busybox-static / e2fsprogs missing");
}

static char *slurp(const char *p)
{
        static char buf[65536];
        buf[0] = '\0';
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return buf;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

/* The guest's init: fcsim's child. */
static pid_t guest_pid(pid_t vmm)
{
        DIR *d = opendir("/proc");
        cr_assert_not_null(d);
        struct dirent *e;
        pid_t found = 0;
        while (!found && (e = readdir(d))) {
                pid_t pid = (pid_t)atoi(e->d_name);
                if (pid <= 0)
                        continue;
                char p[64];
                snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
                char *s = strrchr(slurp(p), ')');
                int ppid = 0;
                if (s && sscanf(s + 2, "%*c %d", &ppid) == 1 && ppid == vmm)
                        found = pid;
        }
        closedir(d);
        return found;
}

static long counter(pid_t guest)
{
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/root/tmp/counter", (int)guest);
        return atol(slurp(p));
}

static bool wait_console(const char *what, int ms)
{
        char p[256];
        snprintf(p, sizeof p, "%s/sbx-1/console.log", run_dir);
        for (int i = 0; i < ms / 10; i++) {
                if (strstr(slurp(p), what))
                        return true;
                usleep(10000);
        }
        return false;
}

static bool loop_uses(const char *file)
{
        DIR *d = opendir("/sys/block");
        if (!d)
                return false;
        struct dirent *e;
        bool used = false;
        while (!used && (e = readdir(d))) {
                if (strncmp(e->d_name, "loop", 4) != 0)
                        continue;
                char p[300];
                snprintf(p, sizeof p, "/sys/block/%s/loop/backing_file", e->d_name);
                used = strstr(slurp(p), file) != NULL;
        }
        closedir(d);
        return used;
}

static bool cgroups_left(pid_t vmm)
{
        const char *ctl[] = { "freezer", "cpu", "memory", NULL };
        for (int i = 0; ctl[i]; i++) {
                char p[128];
                snprintf(p, sizeof p, "/sys/fs/cgroup/%s/fcsim-sbx-1-%d", ctl[i], (int)vmm);
                if (access(p, F_OK) == 0)
                        return true;
        }
        return false;
}

static void config(struct vm_config *c, struct vm_spec *s)
{
        *c = (struct vm_config){ .firecracker_bin = fcsim, .kernel_path = kernel,
                                 .run_dir = run_dir, .boot_timeout_ms = 5000,
                                 .stop_timeout_ms = 3000 };
        *s = (struct vm_spec){ .id = "sbx-1", .rootfs_path = clone_path, .vcpu_count = 1,
                               .mem_size_mib = 64, .guest_cid = 3,
                               .ip_arg = "ip=172.16.0.2::172.16.0.1:255.255.255.252:sbx:eth0:off" };
}

static void assert_all_gone(pid_t vmm, pid_t guest)
{
        for (int i = 0; i < 300 && !(fct_pid_gone(vmm) && fct_pid_gone(guest)); i++)
                usleep(10000);
        cr_assert(fct_pid_gone(vmm), "fcsim still there");
        cr_assert(fct_pid_gone(guest), "guest still there");
        cr_assert_not(loop_uses(clone_path), "loop device still attached to the clone_path");
        cr_assert_not(cgroups_left(vmm), "fcsim cgroups left");
        char d[256];
        snprintf(d, sizeof d, "%s/sbx-1", run_dir);
        cr_assert_eq(access(d, F_OK), -1, "run dir left");
}

Test(vm_fcsim, boot_pause_resume_snapshot_restore_stop)
{
        require_fcsim();
        make_base_image();
        struct rootfs_clone_info ci;
        struct ha_err e = { { 0 } };
        cr_assert_eq(rootfs_clone(images, "base", clone_path, &ci, &e), 0, "%s", e.msg);

        struct vm_config c;
        struct vm_spec s;
        config(&c, &s);
        vm *v;
        cr_assert_eq(vm_start(&c, &s, &v, &e), 0, "%s", e.msg);
        cr_assert(wait_console("guest: booted args=console=ttyS0 reboot=k panic=1 pci=off "
                               "ip=172.16.0.2::172.16.0.1:255.255.255.252:sbx:eth0:off",
                               5000),
                  "guest did not boot");
        pid_t vmm = vm_pid(v), guest = guest_pid(vmm);
        cr_assert_gt(guest, 0);
        struct vm_boot_times bt;
        vm_get_boot_times(v, &bt);
        fprintf(stderr,
                "vm bench (fcsim): clone %llu us (%s), spawn %llu us, socket %llu us, "
                "config %llu us, InstanceStart %llu us\n",
                (unsigned long long)ci.elapsed_us, rootfs_clone_method_name(ci.method),
                (unsigned long long)bt.spawn_us, (unsigned long long)bt.socket_us,
                (unsigned long long)bt.config_us, (unsigned long long)bt.start_us);
        long a = counter(guest);
        usleep(200000);
        long b = counter(guest);
        cr_assert_gt(b, a, "counter not advancing (%ld, %ld)", a, b);

        cr_assert_eq(vm_pause(v, &e), 0, "%s", e.msg);
        usleep(50000);
        a = counter(guest);
        usleep(300000);
        b = counter(guest);
        cr_assert_eq(a, b, "counter advanced while paused");
        cr_assert_eq(vm_resume(v, &e), 0, "%s", e.msg);
        usleep(200000);
        cr_assert_gt(counter(guest), b, "counter stuck after resume");

        char snap[128], mem[128];
        snprintf(snap, sizeof snap, "%s/vm.snap", tdir);
        snprintf(mem, sizeof mem, "%s/vm.mem", tdir);
        cr_assert_eq(vm_snapshot(v, snap, mem, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_SAVED);
        cr_assert_eq(access(snap, F_OK), 0);
        for (int i = 0; i < 300 && !fct_pid_gone(guest); i++)
                usleep(10000);
        cr_assert(fct_pid_gone(vmm) && fct_pid_gone(guest));
        cr_assert_not(cgroups_left(vmm));

        cr_assert_eq(vm_restore(v, snap, mem, &e), 0, "%s", e.msg);
        cr_assert_eq(vm_get_state(v), VM_STATE_RUNNING);
        cr_assert(wait_console("guest: booted", 5000), "restored guest did not boot");
        vmm = vm_pid(v);
        guest = guest_pid(vmm);
        cr_assert_gt(guest, 0);

        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        vm_free(v);
        assert_all_gone(vmm, guest);
        cr_assert_eq(rootfs_remove(clone_path), 0);
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int fired_signal;

static void on_exit_cb(void *ctx, vm *v, const struct vm_exit *ex, const char *tail)
{
        (void)ctx;
        (void)v;
        (void)tail;
        pthread_mutex_lock(&mu);
        fired_signal = ex->signal;
        pthread_mutex_unlock(&mu);
}

Test(vm_fcsim, killed_while_paused_is_reported_and_cleaned_up)
{
        require_fcsim();
        make_base_image();
        struct ha_err e = { { 0 } };
        cr_assert_eq(rootfs_clone(images, "base", clone_path, NULL, &e), 0, "%s", e.msg);
        vm_watcher *w;
        cr_assert_eq(vm_watcher_new(&w), 0);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s);
        c.watcher = w;
        s.on_exit = on_exit_cb;
        vm *v;
        cr_assert_eq(vm_start(&c, &s, &v, &e), 0, "%s", e.msg);
        cr_assert(wait_console("guest: booted", 5000));
        pid_t vmm = vm_pid(v), guest = guest_pid(vmm);
        cr_assert_eq(vm_pause(v, &e), 0, "%s", e.msg);
        /* A crash of the VMM while its guest is frozen. */
        cr_assert_eq(kill(vmm, SIGKILL), 0);
        for (int i = 0; i < 300 && vm_get_state(v) != VM_STATE_EXITED; i++)
                usleep(10000);
        cr_assert_eq(vm_get_state(v), VM_STATE_EXITED);
        pthread_mutex_lock(&mu);
        cr_assert_eq(fired_signal, SIGKILL);
        pthread_mutex_unlock(&mu);
        /* The owner reacts by destroying: the frozen guest is thawed and
         * dies, the simulator's cgroups go. */
        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        vm_free(v);
        vm_watcher_free(w);
        assert_all_gone(vmm, guest);
}

/* A slot-like network namespace bound on |nsfile| holding an up TAP |tap|. */
static void make_netns_with_tap(const char *nsfile, const char *tap)
{
        fct_write(nsfile, "", 0644);
        pid_t c = fork();
        cr_assert_geq(c, 0);
        if (c == 0) {
                if (unshare(CLONE_NEWNET) < 0 ||
                    mount("/proc/self/ns/net", nsfile, NULL, MS_BIND, NULL) < 0)
                        _exit(1);
                int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
                struct ifreq ifr;
                memset(&ifr, 0, sizeof ifr);
                snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", tap);
                ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
                if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0)
                        _exit(2);
                int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                        _exit(3);
                ifr.ifr_flags |= IFF_UP;
                if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                        _exit(4);
                _exit(0);
        }
        int st;
        waitpid(c, &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "netns setup failed: %d", st);
}

Test(vm_fcsim, boots_in_the_slot_netns_on_its_tap)
{
        require_fcsim();
        make_base_image();
        struct ha_err e = { { 0 } };
        cr_assert_eq(rootfs_clone(images, "base", clone_path, NULL, &e), 0, "%s", e.msg);
        char nsfile[128];
        snprintf(nsfile, sizeof nsfile, "%s/netns", tdir);
        make_netns_with_tap(nsfile, "havmtap0");

        struct vm_config c;
        struct vm_spec s;
        config(&c, &s);
        s.netns_path = nsfile;
        s.tap_name = "havmtap0";
        s.guest_mac = "06:00:ac:10:00:02";
        vm *v;
        int r = vm_start(&c, &s, &v, &e);
        if (r == 0) {
                /* fcsim opened the slot's TAP from inside the slot netns
                 * (TUNSETIFF would have created a fresh one in ours
                 * otherwise), and the guest got its address. */
                cr_assert_eq(if_nametoindex("havmtap0"), 0, "TAP opened in the host netns");
                cr_assert(wait_console("guest: net", 5000), "no network line");
                cr_assert(wait_console("inet 172.16.0.2/30", 1000), "guest address not set");
                pid_t vmm = vm_pid(v), guest = guest_pid(vmm);
                cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
                vm_free(v);
                assert_all_gone(vmm, guest);
        }
        umount2(nsfile, MNT_DETACH);
        cr_assert_eq(r, 0, "%s", e.msg);
}

/* Host side of hybrid vsock: CONNECT <port> in one write, expect "OK ". */
static int vsock_handshake(const char *uds, unsigned port, char *reply, size_t size)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", uds);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        char req[32];
        int n = snprintf(req, sizeof req, "CONNECT %u\n", port);
        struct timeval tv = { .tv_sec = 3 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t got = -1;
        if (write(fd, req, (size_t)n) == n)
                got = read(fd, reply, size - 1);
        close(fd);
        reply[got > 0 ? got : 0] = '\0';
        return got > 0 ? 0 : -1;
}

Test(vm_fcsim, project_image_boots_and_its_guest_agent_answers_on_vsock)
{
        require_fcsim();
        /* The project's own image (scripts/build-rootfs.sh): busybox and
         * the static guest agent as /sbin/init. */
        const char *src = getenv("HA_SOURCE_DIR"), *b = getenv("HA_BINARY_DIR");
        char script[512], agent[512];
        snprintf(script, sizeof script, "%s/scripts/build-rootfs.sh", src ? src : ".");
        snprintf(agent, sizeof agent, "%s/guest/hostagent-guest", b ? b : ".");
        if (access(agent, X_OK) < 0)
                skip_test("guest agent not built (%s)", agent);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(null, 1);
                dup2(null, 2);
                setenv("HA_BUILD_DIR", b, 1);
                char *argv[] = { "/bin/bash", script, images, NULL };
                execv(argv[0], argv);
                _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                skip_test("build-rootfs.sh could not build the image here (status %d)", st);

        struct rootfs_clone_info ci;
        struct ha_err e = { { 0 } };
        cr_assert_eq(rootfs_clone(images, "base", clone_path, &ci, &e), 0, "%s", e.msg);
        struct vm_config c;
        struct vm_spec s;
        config(&c, &s);
        vm *v;
        cr_assert_eq(vm_start(&c, &s, &v, &e), 0, "%s", e.msg);
        char reply[64] = "";
        int r = -1;
        for (int i = 0; i < 100 && r < 0; i++) {
                r = vsock_handshake(vm_vsock_path(v), 10000, reply, sizeof reply);
                if (r < 0 || strncmp(reply, "OK ", 3) != 0) {
                        r = -1;
                        usleep(50000);
                }
        }
        pid_t vmm = vm_pid(v), guest = guest_pid(vmm);
        cr_assert_eq(vm_stop(v, &e), 0, "%s", e.msg);
        vm_free(v);
        cr_assert_eq(r, 0, "guest agent did not answer CONNECT 10000 (reply \"%s\")", reply);
        assert_all_gone(vmm, guest);
}
