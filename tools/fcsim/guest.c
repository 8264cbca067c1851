/*
 * guest.c - see guest.h.
 *
 * Parent and child talk over a SOCK_SEQPACKET pair (close-on-exec):
 *   parent -> child  'g'   cgroups joined, start setting up
 *   child  -> parent status {err, msg, vsock dir} + the guest TAP fds
 *   parent -> child  'x'   loop fd dropped, exec init now
 *   child  -> parent status only if execve failed; EOF means it worked
 * The child never allocates or logs: it runs right after clone3 and only
 * makes system calls, reporting failures through the status message.
 * fcsim boots only while it is single-threaded (the vsock and relay
 * threads start after the guest is up), so the raw clone3 leaves no lock
 * held by a thread that does not exist in the child.
 */
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/time.h"
#include "loopdev.h"

/* How long the child may take to set up namespaces and mounts. */
#define GUEST_SETUP_TIMEOUT_MS 10000
/* Where the child assembles the new root inside its own mount namespace
 * (a tmpfs over /tmp there; the host's /tmp is untouched). */
#define STAGE_DIR "/tmp"
#define NEWROOT   STAGE_DIR "/root"

struct status_msg {
        int32_t err; /* 0 or -errno */
        uint32_t n_fds;
        char msg[200];
        char vsock_dir[16];
};

struct child_args {
        const struct fcsim_guest_spec *spec;
        const struct fcsim_ipcfg *ip;
        const char *loop_path;
        int sock;
};

static int send_status(int sock, const struct status_msg *st, const int *fds, unsigned n_fds)
{
        struct iovec iov = { .iov_base = (void *)st, .iov_len = sizeof *st };
        union {
                char buf[CMSG_SPACE(sizeof(int) * FCSIM_MAX_NETS)];
                struct cmsghdr align;
        } u;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds > 0) {
                memset(&u, 0, sizeof u);
                mh.msg_control = u.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static __attribute__((noreturn, format(printf, 3, 4))) void child_fail(int sock, int err,
                                                                       const char *fmt, ...)
{
        struct status_msg st;
        memset(&st, 0, sizeof st);
        st.err = err;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st.msg, sizeof st.msg, fmt, ap);
        va_end(ap);
        send_status(sock, &st, NULL, 0);
        _exit(127);
}

/* lstat, not stat: before pivot_root an absolute symlink in the image
 * (/sbin/init -> /bin/busybox) would resolve against the host's root. */
static bool exists(const char *p)
{
        struct stat sb;
        return lstat(p, &sb) == 0;
}

/* Ensures |p| is a real directory of the image (never a symlink, which
 * would point a mount somewhere outside it), creating it when the root is
 * writable. Returns false when that is not possible. */
static bool ensure_dir(const char *p)
{
        struct stat sb;
        if (lstat(p, &sb) == 0)
                return S_ISDIR(sb.st_mode);
        return mkdir(p, 0755) == 0;
}

static void make_dev(int sock)
{
        static const struct {
                const char *name;
                unsigned maj, min;
        } nodes[] = { { "null", 1, 3 },   { "zero", 1, 5 },    { "full", 1, 7 },
                      { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 } };
        char p[128];
        if (!ensure_dir(NEWROOT "/dev"))
                return; /* read-only root without /dev: init copes or fails */
        if (mount("tmpfs", NEWROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m") < 0)
                child_fail(sock, -errno, "cannot mount /dev in the guest: %s", strerror(errno));
        for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
                snprintf(p, sizeof p, NEWROOT "/dev/%s", nodes[i].name);
                if (mknod(p, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)) < 0)
                        child_fail(sock, -errno, "cannot create /dev/%s in the guest: %s",
                                   nodes[i].name, strerror(errno));
                chmod(p, 0666); /* undo the umask */
        }
        mkdir(NEWROOT "/dev/pts", 0755);
        mkdir(NEWROOT "/dev/shm", 01777);
        chmod(NEWROOT "/dev/shm", 01777);
        if (mount("devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                  "newinstance,ptmxmode=0666,mode=0620") == 0)
                symlink("pts/ptmx", NEWROOT "/dev/ptmx");
        /* Best effort, like the nodes above: a guest without it still boots. */
        (void)mount("tmpfs", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
        symlink("/proc/self/fd", NEWROOT "/dev/fd");
        symlink("/proc/self/fd/0", NEWROOT "/dev/stdin");
        symlink("/proc/self/fd/1", NEWROOT "/dev/stdout");
        symlink("/proc/self/fd/2", NEWROOT "/dev/stderr");
}

static void setup_network(const struct child_args *a, int *tap_fds)
{
        const struct fcsim_guest_spec *s = a->spec;
        int r = fcsim_netcfg_up("lo");
        if (r < 0)
                child_fail(a->sock, r, "cannot bring up lo in the guest: %s", strerror(-r));
        for (unsigned i = 0; i < s->n_nets; i++) {
                char name[IFNAMSIZ];
                snprintf(name, sizeof name, "eth%u", i);
                r = fcsim_netcfg_guest_tap(name, s->nets[i].has_mac ? s->nets[i].mac : NULL,
                                           s->nets[i].mtu, &tap_fds[i]);
                if (r < 0)
                        child_fail(a->sock, r, "cannot create %s in the guest: %s", name,
                                   strerror(-r));
                r = fcsim_netcfg_up(name);
                if (r < 0)
                        child_fail(a->sock, r, "cannot bring up %s in the guest: %s", name,
                                   strerror(-r));
        }
        if (a->ip->present && s->n_nets > 0) {
                const char *dev = a->ip->dev[0] ? a->ip->dev : "eth0";
                r = fcsim_netcfg_address(dev, a->ip);
                if (r < 0)
                        child_fail(a->sock, r, "cannot configure %s from the ip= boot argument: %s",
                                   dev, strerror(-r));
        }
        const char *host = a->ip->hostname[0] ? a->ip->hostname : s->id;
        sethostname(host, strlen(host));
}

static __attribute__((noreturn)) void child_main(const struct child_args *a)
{
        const struct fcsim_guest_spec *s = a->spec;
        int sock = a->sock;
        int tap_fds[FCSIM_MAX_NETS];
        struct status_msg st;
        char c;

        /* Die with fcsim, whatever kills it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (recv(sock, &c, 1, 0) != 1)
                _exit(1); /* fcsim gave up on us */

        /* fcsim's blocked signals and ignored SIGPIPE must not leak into init. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);

        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                child_fail(sock, -errno, "cannot make / private: %s", strerror(errno));
        setup_network(a, tap_fds);

        if (mount("tmpfs", STAGE_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=64k") < 0)
                child_fail(sock, -errno, "cannot mount the staging tmpfs: %s", strerror(errno));
        if (mkdir(NEWROOT, 0755) < 0)
                child_fail(sock, -errno, "cannot create the staging root: %s", strerror(errno));
        if (mount(a->loop_path, NEWROOT, "ext4", s->read_only ? MS_RDONLY : 0, NULL) < 0)
                child_fail(sock, -errno, "cannot mount the root drive %s as ext4: %s", s->image,
                           strerror(errno));
        if (!exists(NEWROOT "/sbin/init"))
                child_fail(sock, -ENOENT, "the root drive %s has no /sbin/init", s->image);

        make_dev(sock);
        /* Best effort: the guest agent mounts what is missing itself. */
        if (ensure_dir(NEWROOT "/proc"))
                (void)mount("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        if (ensure_dir(NEWROOT "/sys"))
                (void)mount("sysfs", NEWROOT "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

        memset(&st, 0, sizeof st);
        if (s->vsock) {
                const char *dir = "/.vsock";
                if (!ensure_dir(NEWROOT "/.vsock")) {
                        dir = "/dev/.vsock";
                        if (!ensure_dir(NEWROOT "/dev/.vsock"))
                                child_fail(sock, -EROFS, "no place for the guest vsock directory");
                }
                char p[64];
                snprintf(p, sizeof p, NEWROOT "%s", dir);
                if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          "mode=0755,size=1m") < 0)
                        child_fail(sock, -errno, "cannot mount the guest vsock directory: %s",
                                   strerror(errno));
                snprintf(st.vsock_dir, sizeof st.vsock_dir, "%s", dir);
        }

        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, 0) < 0)
                child_fail(sock, -errno, "cannot put /dev/null on the guest's stdin: %s", strerror(errno));
        close(devnull);
        if (chdir(NEWROOT) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
                child_fail(sock, -errno, "pivot_root into the root drive failed: %s",
                           strerror(errno));
        /* The old root is stacked on the new one: detach it. */
        if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
                child_fail(sock, -errno, "cannot detach the host root: %s", strerror(errno));

        st.err = 0;
        st.n_fds = s->n_nets;
        if (send_status(sock, &st, tap_fds, s->n_nets) < 0)
                _exit(1);
        for (unsigned i = 0; i < s->n_nets; i++)
                close(tap_fds[i]);
        if (recv(sock, &c, 1, 0) != 1)
                _exit(1);

        /* Nothing of fcsim's may reach init: everything but stdio (and the
         * status socket, until exec succeeds) is closed on exec. */
        syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
        char env_args[FCSIM_BOOT_ARGS_MAX + 16], env_vsock[48];
        snprintf(env_args, sizeof env_args, "HA_BOOT_ARGS=%s", s->boot_args);
        snprintf(env_vsock, sizeof env_vsock, "HA_VSOCK_UNIX_DIR=%s", st.vsock_dir);
        char *envp[] = { "HOME=/",
                         "TERM=linux",
                         "PATH=/sbin:/usr/sbin:/bin:/usr/bin",
                         env_args,
                         s->vsock ? env_vsock : NULL,
                         NULL };
        char *argv[] = { "/sbin/init", NULL };
        execve("/sbin/init", argv, envp);
        child_fail(sock, -errno, "cannot execute /sbin/init of %s: %s", s->image, strerror(errno));
}

/* Receives a status message and up to FCSIM_MAX_NETS fds into |fds| (closed
 * when |fds| is NULL: a caller that wants none must not leak them). Returns the
 * number of bytes (0 on EOF) or -errno; -ETIMEDOUT after |timeout_ms|. */
static int recv_status(int sock, struct status_msg *st, int *fds, unsigned *ret_nfds,
                       int timeout_ms)
{
        struct pollfd pfd = { .fd = sock, .events = POLLIN };
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr == 0)
                return -ETIMEDOUT;
        if (pr < 0)
                return -errno;
        union {
                char buf[CMSG_SPACE(sizeof(int) * FCSIM_MAX_NETS)];
                struct cmsghdr align;
        } u;
        struct iovec iov = { .iov_base = st, .iov_len = sizeof *st };
        struct msghdr mh = { .msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = u.buf,
                             .msg_controllen = sizeof u.buf };
        ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0)
                return -errno;
        *ret_nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (unsigned i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
                        if (fds)
                                fds[(*ret_nfds)++] = fd;
                        else
                                close(fd); /* the caller wants none: do not leak them */
                }
        }
        if (n > 0 && (size_t)n != sizeof *st)
                return -EPROTO;
        return (int)n;
}

static void reap(struct fcsim_guest *g)
{
        if (g->pid <= 0)
                return;
        while (waitpid(g->pid, NULL, __WALL) < 0 && errno == EINTR) {
        }
        g->pid = 0;
        if (g->pidfd >= 0)
                close(g->pidfd);
        g->pidfd = -1;
}

int fcsim_guest_boot(const struct fcsim_guest_spec *spec, struct fcsim_guest *g, struct ha_err *err)
{
        int r;
        struct fcsim_ipcfg ip;
        uint64_t t0 = ha_now_ns();
        memset(g, 0, sizeof *g);
        g->pidfd = -1;

        r = fcsim_ipcfg_parse(spec->boot_args, &ip, err);
        if (r < 0)
                return r;
        r = fcsim_cgroup_create(&g->cg, spec->id, spec->vcpus, spec->mem_mib, err);
        if (r < 0)
                return r;
        uint64_t t_cg = ha_now_ns();
        int loop_fd = -1;
        char loop_path[FCSIM_LOOP_PATH_MAX];
        r = fcsim_loop_attach(spec->image, spec->read_only, &loop_fd, loop_path, err);
        if (r < 0)
                goto out_cgroup;
        uint64_t t_loop = ha_now_ns();
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
                r = -errno;
                ha_err_set(err, r, "socketpair: %s", strerror(-r));
                goto out_loop;
        }

        struct clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
                   CLONE_PIDFD;
        ca.pidfd = (uint64_t)(uintptr_t)&g->pidfd;
        ca.exit_signal = SIGCHLD;
        long pid = syscall(SYS_clone3, &ca, sizeof ca);
        if (pid < 0) {
                r = -errno;
                ha_err_set(err, r, "cannot create the guest namespaces: %s", strerror(-r));
                goto out_sock;
        }
        if (pid == 0) {
                close(sp[0]);
                struct child_args a = { spec, &ip, loop_path, sp[1] };
                child_main(&a);
        }
        g->pid = (pid_t)pid;
        close(sp[1]);
        sp[1] = -1;

        r = fcsim_cgroup_attach(&g->cg, g->pid, err);
        if (r < 0)
                goto out_kill;
        if (send(sp[0], "g", 1, MSG_NOSIGNAL) != 1) {
                r = -EPIPE;
                ha_err_set(err, r, "the guest died before setup");
                goto out_kill;
        }
        struct status_msg st = { 0 };
        unsigned nfds = 0;
        r = recv_status(sp[0], &st, g->tap_fds, &nfds, GUEST_SETUP_TIMEOUT_MS);
        g->n_taps = nfds;
        if (r == 0 || r == -EPROTO) {
                r = -EIO;
                ha_err_set(err, r, "the guest died during setup");
                goto out_kill;
        }
        if (r < 0) {
                ha_err_set(err, r, "no word from the guest during setup: %s", strerror(-r));
                goto out_kill;
        }
        if (st.err != 0 || nfds != spec->n_nets) {
                r = st.err ? st.err : -EPROTO;
                ha_err_set(err, r, "%s", st.err ? st.msg : "guest TAP fds missing");
                goto out_kill;
        }
        uint64_t t_setup = ha_now_ns();
        if (spec->vsock) {
                snprintf(g->vsock_guest_dir, sizeof g->vsock_guest_dir, "%s", st.vsock_dir);
                snprintf(g->vsock_dir, sizeof g->vsock_dir, "/proc/%d/root%s", (int)g->pid,
                         st.vsock_dir);
        }
        /* The guest's mount holds the loop device now. */
        close(loop_fd);
        loop_fd = -1;
        if (send(sp[0], "x", 1, MSG_NOSIGNAL) != 1) {
                r = -EPIPE;
                ha_err_set(err, r, "the guest died before exec");
                goto out_kill;
        }
        r = recv_status(sp[0], &st, NULL, &nfds, GUEST_SETUP_TIMEOUT_MS);
        if (r != 0) {
                if (r > 0)
                        r = st.err ? st.err : -EPROTO;
                ha_err_set(err, r, "%s", st.err ? st.msg : "the guest did not exec init");
                goto out_kill;
        }
        close(sp[0]);
        uint64_t t_exec = ha_now_ns();
        g->boot_us = (t_exec - t0) / 1000;
        g->cgroup_us = (t_cg - t0) / 1000;
        g->loop_us = (t_loop - t_cg) / 1000;
        g->setup_us = (t_setup - t_loop) / 1000;
        g->exec_us = (t_exec - t_setup) / 1000;
        return 0;

out_kill:
        fcsim_guest_kill(g);
        for (unsigned i = 0; i < g->n_taps; i++)
                close(g->tap_fds[i]);
        g->n_taps = 0;
out_sock:
        close(sp[0]);
        if (sp[1] >= 0)
                close(sp[1]);
out_loop:
        if (loop_fd >= 0)
                close(loop_fd);
out_cgroup:
        fcsim_cgroup_destroy(&g->cg);
        return r;
}

int fcsim_guest_signal(struct fcsim_guest *g, int sig)
{
        if (g->pidfd < 0)
                return -ESRCH;
        return syscall(SYS_pidfd_send_signal, g->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

int fcsim_guest_reap(struct fcsim_guest *g)
{
        int status = 0;
        if (g->pid > 0) {
                while (waitpid(g->pid, &status, __WALL) < 0 && errno == EINTR) {
                }
                g->pid = 0;
        }
        if (g->pidfd >= 0)
                close(g->pidfd);
        g->pidfd = -1;
        fcsim_cgroup_destroy(&g->cg);
        return status;
}

void fcsim_guest_kill(struct fcsim_guest *g)
{
        if (g->pid > 0) {
                /* cgroup v1: a frozen task does not act on SIGKILL until thawed. */
                if (g->cg.freezer)
                        fcsim_cgroup_freeze(&g->cg, false, NULL);
                fcsim_guest_signal(g, SIGKILL);
                reap(g);
        }
        fcsim_cgroup_destroy(&g->cg);
}
