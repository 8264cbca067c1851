/*
 * launch.c - see launch.h. The child side is the only code in the daemon that
 * runs between clone() and execve(): it must stay async-signal-safe (raw
 * syscalls on pre-built data; no malloc, stdio, logging or errno-dependent
 * library calls) and report failures only through the error pipe.
 *
 * The child is started with clone(CLONE_VM | CLONE_VFORK) on a stack of its
 * own, like posix_spawn: it shares the daemon's memory and the calling
 * thread waits until it has exec'd or failed. fork() copied the page tables
 * of the whole daemon for a process that execs at once, and with many
 * creates in flight that copy (taken while other threads held malloc and
 * mm locks) dominated create latency (docs/BENCHMARKS.md). Sharing memory
 * adds one rule: the child writes nothing the parent reads except through
 * the pipe (errno, which it does set, belongs to the waiting thread).
 * Sanitizer builds keep fork(): their runtimes do not expect a second task
 * running instrumented code on the daemon's memory.
 */
#include "vm/launch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/time.h"

/* Polling interval bounds while waiting for the API socket: Firecracker
 * binds it ~12 ms after exec (fcsim within a millisecond or two), and a
 * refused connect to a Unix socket costs microseconds, so poll finely: the
 * whole wait is on the create path. */
#define READY_POLL_MIN_MS 1
#define READY_POLL_MAX_MS 5
/* Lines of the VMM's log quoted in an error. */
#define ERR_TAIL_LINES 3

enum child_step {
        STEP_SETSID, STEP_UNSHARE, STEP_RPRIVATE, STEP_TMPFS, STEP_BIND_TARGET, STEP_BIND,
        STEP_BIND_RO, STEP_SETNS, STEP_STDIO, STEP_CLOSE_RANGE, STEP_EXEC,
};

static const char *const step_names[] = {
        [STEP_SETSID] = "setsid",
        [STEP_UNSHARE] = "unshare(CLONE_NEWNS)",
        [STEP_RPRIVATE] = "make / rprivate",
        [STEP_TMPFS] = "mount tmpfs on",
        [STEP_BIND_TARGET] = "create bind target",
        [STEP_BIND] = "bind mount",
        [STEP_BIND_RO] = "remount read-only",
        [STEP_SETNS] = "setns into",
        [STEP_STDIO] = "redirect stdio to",
        [STEP_CLOSE_RANGE] = "close_range",
        [STEP_EXEC] = "execve",
};

struct child_report {
        int step;
        int err;
        int index;      /* which bind */
};

/* Everything the child needs, prepared before clone(). */
struct child_plan {
        const struct vm_launch *l;
        char *const *argv;
        char *const *envp;
        int netns_fd;           /* -1: none */
        int log_fd;
        int null_fd;
        int report_fd;          /* write end of the O_CLOEXEC error pipe */
};

bool vm_id_is_valid(const char *id)
{
        if (!id || !id[0])
                return false;
        size_t n = 0;
        for (const char *p = id; *p; p++, n++) {
                char c = *p;
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-';
                if (!ok || n >= VM_ID_MAX)
                        return false;
        }
        return true;
}

int vm_sock_path_check(const char *what, const char *path, size_t reserve, struct ha_err *err)
{
        if (!path || !path[0])
                return ha_err_set(err, -EINVAL, "no %s path", what);
        size_t max = VM_SUN_PATH_MAX - reserve;
        size_t len = strlen(path);
        if (len > max)
                return ha_err_set(err, -ENAMETOOLONG,
                                  "%s path is %zu bytes, the limit is %zu (Unix socket sun_path): "
                                  "use a shorter run directory",
                                  what, len, max);
        return 0;
}

int vm_launch_argv(const struct vm_launch *l, struct vm_argv *ret, struct ha_err *err)
{
        unsigned n = 0;
        if (!l->vmm_bin || !l->vmm_bin[0])
                return ha_err_set(err, -EINVAL, "no VMM binary configured");
        if (!vm_id_is_valid(l->id))
                return ha_err_set(err, -EINVAL, "invalid VM id: want 1-%d of [A-Za-z0-9-]",
                                  VM_ID_MAX);
        if (!l->api_sock || !l->api_sock[0])
                return ha_err_set(err, -EINVAL, "no API socket path");
        memset(ret, 0, sizeof *ret);
        if (!l->jailer_bin) {
                ret->argv[n++] = (char *)l->vmm_bin;
                ret->argv[n++] = "--api-sock";
                ret->argv[n++] = (char *)l->api_sock;
                ret->argv[n++] = "--id";
                ret->argv[n++] = (char *)l->id;
                ret->argv[n] = NULL;
                return 0;
        }
        if (!l->chroot_base || l->chroot_base[0] != '/')
                return ha_err_set(err, -EINVAL, "jailer mode needs an absolute chroot base dir");
        if (l->vmm_bin[0] != '/')
                return ha_err_set(err, -EINVAL, "jailer mode needs an absolute VMM path");
        snprintf(ret->num[0], sizeof ret->num[0], "%u", (unsigned)l->uid);
        snprintf(ret->num[1], sizeof ret->num[1], "%u", (unsigned)l->gid);
        ret->argv[n++] = (char *)l->jailer_bin;
        ret->argv[n++] = "--id";
        ret->argv[n++] = (char *)l->id;
        ret->argv[n++] = "--exec-file";
        ret->argv[n++] = (char *)l->vmm_bin;
        ret->argv[n++] = "--uid";
        ret->argv[n++] = ret->num[0];
        ret->argv[n++] = "--gid";
        ret->argv[n++] = ret->num[1];
        ret->argv[n++] = "--chroot-base-dir";
        ret->argv[n++] = (char *)l->chroot_base;
        if (l->netns_path) {
                ret->argv[n++] = "--netns";
                ret->argv[n++] = (char *)l->netns_path;
        }
        ret->argv[n++] = "--";
        ret->argv[n++] = "--api-sock";
        ret->argv[n++] = (char *)l->api_sock;
        ret->argv[n] = NULL;
        return 0;
}

int vm_jail_root(const struct vm_launch *l, char *buf, size_t size)
{
        const char *slash = strrchr(l->vmm_bin, '/');
        const char *exec_name = slash ? slash + 1 : l->vmm_bin;
        int n = snprintf(buf, size, "%s/%s/%s/root", l->chroot_base, exec_name, l->id);
        return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

/* ---- child side: async-signal-safe only ---- */

static void __attribute__((noreturn)) child_fail(const struct child_plan *c, int step, int index)
{
        struct child_report rep = { .step = step, .err = errno, .index = index };
        ssize_t w = write(c->report_fd, &rep, sizeof rep);
        (void)w;
        _exit(127);
}

/* Failure injection for tests (vm_launch.inject_step): pretend |step|
 * failed with inject_errno. Only errno is touched: async-signal-safe. */
static bool injected(const struct child_plan *c, int step)
{
        if (c->l->inject_step != step + 1)
                return false;
        errno = c->l->inject_errno ? c->l->inject_errno : EIO;
        return true;
}

static void child_dup(const struct child_plan *c, int fd, int target)
{
        bool failed = injected(c, STEP_STDIO);
        if (!failed)
                failed = fd == target ? fcntl(fd, F_SETFD, 0) < 0 : dup2(fd, target) < 0;
        if (failed)
                child_fail(c, STEP_STDIO, 0);
}

static int __attribute__((noreturn)) child_run(void *arg)
{
        const struct child_plan *c = arg;
        const struct vm_launch *l = c->l;

        /* SIG_IGN and the blocked mask survive execve; handlers do not.
         * Give the VMM default signals (SIGPIPE and all). Every signal is
         * blocked on entry (see spawn_child), so no handler of the daemon
         * runs here on the shared memory before its disposition is reset. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        sigaction(sig, &dfl, NULL); /* EINVAL for libc-reserved ones: fine */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);

        if (injected(c, STEP_SETSID) || setsid() < 0)
                child_fail(c, STEP_SETSID, 0);
        if (l->tmpfs_dir || l->n_binds) {
                if (injected(c, STEP_UNSHARE) || unshare(CLONE_NEWNS) < 0)
                        child_fail(c, STEP_UNSHARE, 0);
                if (injected(c, STEP_RPRIVATE) ||
                    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                        child_fail(c, STEP_RPRIVATE, 0);
        }
        if (l->tmpfs_dir && (injected(c, STEP_TMPFS) ||
                             mount("ha-vm", l->tmpfs_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                   "mode=0755,size=1m,nr_inodes=64") < 0))
                child_fail(c, STEP_TMPFS, 0);
        for (unsigned i = 0; i < l->n_binds; i++) {
                const struct vm_bind *b = &l->binds[i];
                int fd = injected(c, STEP_BIND_TARGET)
                                 ? -1
                                 : open(b->dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        child_fail(c, STEP_BIND_TARGET, (int)i);
                close(fd);
                if (injected(c, STEP_BIND) || mount(b->src, b->dst, NULL, MS_BIND, NULL) < 0)
                        child_fail(c, STEP_BIND, (int)i);
                if (b->read_only && (injected(c, STEP_BIND_RO) ||
                                     mount(NULL, b->dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
                          NULL) < 0))
                        child_fail(c, STEP_BIND_RO, (int)i);
        }
        if (c->netns_fd >= 0 && (injected(c, STEP_SETNS) || setns(c->netns_fd, CLONE_NEWNET) < 0))
                child_fail(c, STEP_SETNS, 0);

        child_dup(c, c->null_fd, STDIN_FILENO);
        child_dup(c, c->log_fd, STDOUT_FILENO);
        child_dup(c, c->log_fd, STDERR_FILENO);
        /* Nothing else crosses exec, whatever another thread opened without
         * O_CLOEXEC; the report pipe stays usable until execve. */
        if (injected(c, STEP_CLOSE_RANGE) || close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
                child_fail(c, STEP_CLOSE_RANGE, 0);

        if (!injected(c, STEP_EXEC))
                execve(c->argv[0], c->argv, c->envp);
        child_fail(c, STEP_EXEC, 0);
}

/* ---- parent side ---- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPAWN_WITH_FORK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SPAWN_WITH_FORK 1
#endif
#endif

/* Stack of the clone()d child: child_run's frames and the syscalls' own. */
#define CHILD_STACK_SIZE ((size_t)64 * 1024)

/* Starts child_run(plan) and returns its pid once it has exec'd or failed
 * (vfork semantics), or -1 with errno. */
static pid_t spawn_child(struct child_plan *plan)
{
#ifdef SPAWN_WITH_FORK
        pid_t pid = fork();
        if (pid == 0)
                child_run(plan);
        return pid;
#else
        void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED)
                return -1;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pid_t pid = clone(child_run, (char *)stack + CHILD_STACK_SIZE,
                          CLONE_VM | CLONE_VFORK | SIGCHLD, plan);
        int e = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        munmap(stack, CHILD_STACK_SIZE);
        errno = e;
        return pid;
#endif
}

/* Moves |fd| above 0-2 so that dup2 onto stdio in the child cannot clobber
 * it (a daemon may run with stdio closed). */
static int fd_above_stdio(int fd)
{
        if (fd < 0 || fd > 2)
                return fd;
        int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        int e = errno;
        close(fd);
        errno = e;
        return n;
}

static void describe_failure(const struct vm_launch *l, const struct child_report *rep,
                             const char *bin, struct ha_err *err)
{
        const char *what = "";
        bool bind_ok = rep->index >= 0 && (unsigned)rep->index < l->n_binds;
        switch (rep->step) {
        case STEP_TMPFS:
                what = l->tmpfs_dir;
                break;
        case STEP_BIND_TARGET:
        case STEP_BIND_RO:
                what = bind_ok ? l->binds[rep->index].dst : "";
                break;
        case STEP_BIND:
                what = bind_ok ? l->binds[rep->index].src : "";
                break;
        case STEP_SETNS:
                what = l->netns_path;
                break;
        case STEP_STDIO:
                what = l->console_log;
                break;
        case STEP_EXEC:
                what = bin;
                break;
        }
        int step = rep->step >= 0 && rep->step <= STEP_EXEC ? rep->step : STEP_EXEC;
        if (!what)
                what = "";
        ha_err_set(err, -rep->err, "launch VMM: %s%s%s: %s", step_names[step], what[0] ? " " : "",
                   what, strerror(rep->err));
}

int vm_launch_spawn(const struct vm_launch *l, struct vm_proc *ret, struct ha_err *err)
{
        static char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
        struct vm_argv av;
        struct child_plan plan = { .l = l, .argv = av.argv, .envp = envp, .netns_fd = -1,
                                   .log_fd = -1, .null_fd = -1, .report_fd = -1 };
        int pipefd[2] = { -1, -1 };
        int r;

        r = vm_launch_argv(l, &av, err);
        if (r < 0)
                return r;
        r = vm_sock_path_check("API socket", l->api_sock_host ? l->api_sock_host : l->api_sock, 0,
                               err);
        if (r < 0)
                return r;
        if (l->n_binds > VM_BINDS_MAX)
                return ha_err_set(err, -EINVAL, "too many bind mounts");
        if (!l->console_log)
                return ha_err_set(err, -EINVAL, "no console log path");
        if (access(av.argv[0], X_OK) < 0) {
                r = -errno;
                return ha_err_set(err, r, "VMM binary %s: %s", av.argv[0], strerror(-r));
        }
        for (unsigned i = 0; i < l->n_binds; i++) {
                if (access(l->binds[i].src, R_OK) < 0) {
                        r = -errno;
                        return ha_err_set(err, r, "%s: %s", l->binds[i].src, strerror(-r));
                }
        }
        /* Firecracker never unlinks its socket and refuses to bind over one. */
        const char *host_sock = l->api_sock_host ? l->api_sock_host : l->api_sock;
        if (unlink(host_sock) < 0 && errno != ENOENT) {
                r = -errno;
                return ha_err_set(err, r, "remove stale API socket %s: %s", host_sock,
                                  strerror(-r));
        }

        if (l->netns_path && !l->jailer_bin) {
                plan.netns_fd = fd_above_stdio(open(l->netns_path, O_RDONLY | O_CLOEXEC));
                if (plan.netns_fd < 0) {
                        r = -errno;
                        ha_err_set(err, r, "network namespace %s: %s", l->netns_path,
                                   strerror(-r));
                        goto out_close;
                }
        }
        plan.log_fd = fd_above_stdio(open(l->console_log,
                                          O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC |
                                                  O_NOFOLLOW,
                                          0600));
        if (plan.log_fd < 0) {
                r = -errno;
                ha_err_set(err, r, "VMM log %s: %s", l->console_log, strerror(-r));
                goto out_close;
        }
        plan.null_fd = fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
        if (plan.null_fd < 0) {
                r = -errno;
                ha_err_set(err, r, "/dev/null: %s", strerror(-r));
                goto out_close;
        }
        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                r = -errno;
                ha_err_set(err, r, "pipe: %s", strerror(-r));
                goto out_close;
        }
        pipefd[0] = fd_above_stdio(pipefd[0]);
        pipefd[1] = fd_above_stdio(pipefd[1]);
        if (pipefd[0] < 0 || pipefd[1] < 0) {
                r = -errno;
                ha_err_set(err, r, "pipe: %s", strerror(-r));
                goto out_close;
        }
        plan.report_fd = pipefd[1];

        pid_t pid = spawn_child(&plan);
        if (pid < 0) {
                r = -errno;
                ha_err_set(err, r, "clone: %s", strerror(-r));
                goto out_close;
        }

        close(pipefd[1]);
        pipefd[1] = -1;
        /* EOF: execve succeeded (the pipe was close-on-exec). A report:
         * the child failed at a step and exits 127. */
        struct child_report rep;
        ssize_t n;
        do {
                n = read(pipefd[0], &rep, sizeof rep);
        } while (n < 0 && errno == EINTR);
        if (n != 0) {
                if (n != (ssize_t)sizeof rep)
                        rep = (struct child_report){ .step = STEP_EXEC, .err = EIO };
                if (rep.err <= 0)
                        rep.err = EIO; /* a failure must never read as success */
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                describe_failure(l, &rep, av.argv[0], err);
                r = -rep.err;
                goto out_close;
        }

        /* Our unreaped child: its pid cannot be reused, so pidfd_open and
         * /proc/<pid>/stat name it even if it has already exited. */
        int pidfd = pidfd_open(pid, 0);
        if (pidfd < 0) {
                r = -errno;
                ha_err_set(err, r, "pidfd_open: %s", strerror(-r));
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                goto out_close;
        }
        uint64_t starttime = 0;
        r = vm_proc_starttime(pid, &starttime);
        if (r < 0) {
                ha_err_set(err, r, "read start time of pid %ld: %s", (long)pid, strerror(-r));
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                close(pidfd);
                goto out_close;
        }
        ret->pid = pid;
        ret->pidfd = vm_fd_high(pidfd);
        ret->starttime = starttime;
        r = 0;

out_close:
        if (pipefd[0] >= 0)
                close(pipefd[0]);
        if (pipefd[1] >= 0)
                close(pipefd[1]);
        if (plan.null_fd >= 0)
                close(plan.null_fd);
        if (plan.log_fd >= 0)
                close(plan.log_fd);
        if (plan.netns_fd >= 0)
                close(plan.netns_fd);
        return r;
}

static int try_connect(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        if (len >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int r = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
        close(fd);
        return r;
}

int vm_launch_wait_ready(const struct vm_proc *p, const char *api_sock_host, unsigned timeout_ms,
                         const char *log_path, struct vm_exit *ret_exit, struct ha_err *err)
{
        uint64_t deadline = ha_now_ms() + timeout_ms;
        unsigned step = READY_POLL_MIN_MS;
        for (;;) {
                int r = try_connect(api_sock_host);
                if (r == 0)
                        return 0;
                if (r != -ENOENT && r != -ECONNREFUSED)
                        return ha_err_set(err, r, "connect to API socket %s: %s", api_sock_host,
                                          strerror(-r));
                uint64_t now = ha_now_ms();
                if (now >= deadline)
                        return ha_err_set(err, -ETIMEDOUT,
                                          "VMM pid %ld did not open its API socket %s within %u ms",
                                          (long)p->pid, api_sock_host, timeout_ms);
                unsigned wait = step;
                if (now + wait > deadline)
                        wait = (unsigned)(deadline - now);
                if (vm_proc_wait(p->pidfd, wait)) {
                        struct vm_exit ex;
                        char how[96], tail[512];
                        r = vm_proc_reap(p->pidfd, p->pid, &ex);
                        if (r < 0 && r != -ECHILD)
                                ex = (struct vm_exit){ .pid = p->pid, .code = -1 };
                        vm_exit_describe(&ex, how, sizeof how);
                        vm_log_tail(log_path, ERR_TAIL_LINES, tail, sizeof tail);
                        for (char *c = tail; *c; c++)
                                if (*c == '\n')
                                        *c = '|';
                        if (ret_exit)
                                *ret_exit = ex;
                        return ha_err_set(err, -ECHILD,
                                          "VMM %s before opening its API socket%s%s", how,
                                          tail[0] ? "; log: " : "", tail);
                }
                if (step < READY_POLL_MAX_MS)
                        step *= 2;
        }
}

int vm_proc_kill(struct vm_proc *p, unsigned timeout_ms, struct vm_exit *ret_exit)
{
        struct vm_exit ex = { .pid = p->pid, .code = -1 };
        int r = 0;
        if (p->pidfd < 0)
                return 0;
        struct vm_exit tmp;
        bool ours = vm_proc_reap(p->pidfd, p->pid, &tmp) != -ECHILD;
        if (ours && tmp.known) {
                /* Already ended and now reaped: the group may still have
                 * members, but the pgid is no longer reserved by the
                 * leader, so signalling it could hit a stranger. */
                ex = tmp;
                goto out_close;
        }
        /* The leader is alive or an unreaped zombie of ours, so pgid ==
         * pid still names its group. For an adopted process a leader that
         * already ended is skipped for the same reason as above. */
        if (ours || !vm_proc_wait(p->pidfd, 0))
                kill(-p->pid, SIGKILL);
        pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
        if (!vm_proc_wait(p->pidfd, timeout_ms)) {
                r = -ETIMEDOUT;
                if (ret_exit)
                        *ret_exit = ex;
                return r; /* keep the pidfd: the caller may retry */
        }
        if (ours) {
                while (vm_proc_reap(p->pidfd, p->pid, &ex) == -EAGAIN)
                        vm_proc_wait(p->pidfd, 10);
        }
out_close:
        close(p->pidfd);
        p->pidfd = -1;
        if (ret_exit)
                *ret_exit = ex;
        return r;
}
