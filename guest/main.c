/*
 * main.c - hostagent-guest: the agent inside every sandbox.
 *
 * As PID 1 (/sbin/init of the image) it first sets the system up
 * (init.c); run as an ordinary process (tests, or started by another init)
 * it skips that. Then it listens on vsock port GA_PORT or, when
 * HA_VSOCK_UNIX_DIR is set (the simulator, tests), on the Unix socket
 * $HA_VSOCK_UNIX_DIR/<GA_PORT>, and runs one epoll loop.
 *
 * Reaping: SIGCHLD arrives through a signalfd; waitpid(-1, WNOHANG) then
 * collects every child and zombie orphan and hands each status to the
 * session that owns the pid, if any. Being the only caller of wait is what
 * lets PID 1 reap orphans without stealing a command's exit status. When
 * not PID 1 the agent makes itself a child subreaper, so orphans of its
 * commands still come back to it.
 */
#include "ga.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "core/log.h"
#include "guest/v1/guest.pb-c.h"

#define EPOLL_BATCH 64

int ga_watch(struct ga_agent *a, struct ga_handle *h, int fd, uint32_t events)
{
        struct epoll_event ev = { .events = events, .data.ptr = h };
        int op;

        if (events == h->events)
                return 0;
        op = h->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
        if (epoll_ctl(a->epfd, op, fd, &ev) < 0) {
                int r = -errno;

                ha_log_error("guest.epoll_ctl_failed", "fd=%d op=%d errno=%d", fd, op, -r);
                return r;
        }
        h->events = events;
        return 0;
}

/* |loud|: log failures (the first attempt only, PID 1 retries). The socket
 * is bound under a temporary name and renamed into place once listening,
 * so whoever waits for the file to appear never meets ECONNREFUSED. */
static int listen_unix(const char *dir, bool loud)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char final[sizeof sa.sun_path];
        int fd, n, m;

        if (mkdir(dir, 0755) < 0 && errno != EEXIST && loud)
                ha_log_warn("guest.mkdir_failed", "path=%s errno=%d", dir, errno);
        n = snprintf(final, sizeof final, "%s/%u", dir, GA_PORT);
        m = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/.%u.%d", dir, GA_PORT, (int)getpid());
        if (n < 0 || (size_t)n >= sizeof final || m < 0 || (size_t)m >= sizeof sa.sun_path) {
                if (loud)
                        ha_log_error("guest.listen_failed", "path=%s/%u error=\"path too long\"", dir, GA_PORT);
                return -ENAMETOOLONG;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        unlink(sa.sun_path);    /* stale from a previous run */
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 256) < 0 ||
            rename(sa.sun_path, final) < 0) {
                int r = -errno;

                if (loud)
                        ha_log_error("guest.listen_failed", "path=%s error=\"%s\"", final, strerror(-r));
                unlink(sa.sun_path);
                close(fd);
                return r;
        }
        ha_log_info("guest.listening", "unix=%s", final);
        return fd;
}

static int listen_vsock(bool loud)
{
        struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = GA_PORT };
        int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0) {
                int r = -errno;

                if (loud)
                        ha_log_error("guest.listen_failed", "vsock_port=%u error=\"%s\"", GA_PORT, strerror(-r));
                return r;
        }
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 256) < 0) {
                int r = -errno;

                if (loud)
                        ha_log_error("guest.listen_failed", "vsock_port=%u error=\"%s\"", GA_PORT, strerror(-r));
                close(fd);
                return r;
        }
        ha_log_info("guest.listening", "vsock_port=%u", GA_PORT);
        return fd;
}

/* Over the session limit: say so (best effort, the frame is tiny) and
 * close. */
static void refuse(int fd)
{
        Hostagent__Guest__V1__GuestEvent ev = HOSTAGENT__GUEST__V1__GUEST_EVENT__INIT;
        Hostagent__Guest__V1__Error er = HOSTAGENT__GUEST__V1__ERROR__INIT;
        uint8_t *frame;
        size_t len;

        er.code = HOSTAGENT__GUEST__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED;
        er.message = "too many commands running in this sandbox";
        ev.kind_case = HOSTAGENT__GUEST__V1__GUEST_EVENT__KIND_ERROR;
        ev.error = &er;
        if (exec_frame_pack(&ev.base, EXEC_FRAME_MAX, &frame, &len) == 0) {
                ssize_t n = send(fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL);

                (void)n;
                free(frame);
        }
        close(fd);
}

static void on_accept(struct ga_agent *a)
{
        for (;;) {
                int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                /* The pending connection keeps the listen fd
                                 * readable: stop watching it (or the loop
                                 * spins) until a session frees its fds. */
                                ha_log_warn("guest.accept_paused", "errno=%d sessions=%u", errno, a->n_sessions);
                                ga_watch(a, &a->h_listen, a->listen_fd, 0);
                                a->accept_paused = true;
                        } else if (errno != EAGAIN) {
                                ha_log_warn("guest.accept_failed", "errno=%d", errno);
                        }
                        return;
                }
                if (a->stopping || a->n_sessions >= GA_MAX_SESSIONS) {
                        ha_log_warn("guest.session_refused", "sessions=%u", a->n_sessions);
                        refuse(fd);
                        continue;
                }
                if (ga_session_new(a, fd) < 0)
                        ha_log_error("guest.session_failed", "error=\"out of memory\"");
        }
}

static void reap(struct ga_agent *a)
{
        for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                struct ga_session *s;

                if (pid <= 0)
                        return;         /* 0: none left exited; -1: ECHILD */
                s = ga_session_find_pid(a, pid);
                if (s)
                        ga_session_reaped(s, status);
        }
}

static void on_signal(struct ga_agent *a)
{
        struct signalfd_siginfo si;

        while (read(a->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGCHLD)
                        continue;
                /* PID 1: SIGTERM is fcsim's Ctrl-Alt-Del, SIGINT the
                 * kernel's (CAD is disabled at boot); SIGHUP means nothing. */
                if (a->pid1 && si.ssi_signo == SIGHUP)
                        continue;
                ha_log_info("guest.stopping", "signal=%u", si.ssi_signo);
                a->stopping = true;
        }
        reap(a);
}

static int setup_signals(struct ga_agent *a)
{
        sigset_t set;

        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return -errno;
        a->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        return a->sig_fd < 0 ? -errno : 0;
}

/* More fds for the agent (4 per command); commands get the original
 * limit back (spawn.c). */
static void raise_nofile(struct ga_agent *a)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        a->nofile_orig = rl;
        if (rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/* The OOM killer should pick a command, not the agent that reports on it
 * (outside the initial PID namespace PID 1 is not exempt). Best effort. */
static void protect_from_oom(void)
{
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

        if (fd < 0)
                return;
        if (write(fd, "-1000", 5) != 5)
                ha_log_debug("guest.oom_adj_failed", "errno=%d", errno);
        close(fd);
}

/* PID 1 shutdown: every process gets SIGTERM, then SIGKILL after a grace
 * period, filesystems are synced and the machine reboots (Firecracker
 * exits on a guest reboot; in a PID namespace the kernel ends the
 * namespace's init instead). Never returns when reboot works. */
static void shutdown_guest(struct ga_agent *a)
{
        uint64_t grace_end;
        struct timespec ts;

        kill(-1, SIGTERM);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        grace_end = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 2000;
        for (;;) {
                pid_t p = waitpid(-1, NULL, WNOHANG);

                if (p < 0 && errno == ECHILD)
                        break;
                if (p > 0)
                        continue;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                if ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 >= grace_end)
                        break;
                usleep(10000);
        }
        kill(-1, SIGKILL);
        while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                ;
        /* syncfs() of the root, not sync(): under the simulator the guest
         * shares the host kernel, where sync() flushes every filesystem of
         * the host, and a thousand sandboxes stopping at once did just that
         * a thousand times. */
        int rootfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0 || syncfs(rootfd) < 0)
                sync();
        if (rootfd >= 0)
                close(rootfd);
        ha_log_info("guest.reboot", "sessions=%u", a->n_sessions);
        if (reboot(RB_AUTOBOOT) < 0)
                ha_log_warn("guest.reboot_failed", "errno=%d", errno);
}

static int run(struct ga_agent *a)
{
        struct epoll_event evs[EPOLL_BATCH];

        while (!a->stopping) {
                int tmo = ga_session_timeouts(a);
                int n;

                if (a->accept_paused && (tmo < 0 || tmo > 1000))
                        tmo = 1000;     /* retry accepting once a second */
                n = epoll_wait(a->epfd, evs, EPOLL_BATCH, tmo);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        ha_log_error("guest.epoll_failed", "errno=%d", errno);
                        return -errno;
                }
                for (int i = 0; i < n; i++) {
                        struct ga_handle *h = evs[i].data.ptr;

                        if (h->kind == GA_H_LISTEN)
                                on_accept(a);
                        else if (h->kind == GA_H_SIGNAL)
                                on_signal(a);
                        else
                                ga_session_event(h, evs[i].events);
                }
                if (a->accept_paused && (a->graveyard || n == 0)) {
                        a->accept_paused = false;
                        ga_watch(a, &a->h_listen, a->listen_fd, EPOLLIN);
                }
                ga_session_bury(a);
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct ga_agent a = { .epfd = -1, .listen_fd = -1, .sig_fd = -1 };
        const char *unix_dir = getenv("HA_VSOCK_UNIX_DIR");
        const char *level = getenv("HA_GUEST_LOG_LEVEL");
        enum ha_log_level lvl = HA_LOG_INFO;
        int r;

        if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
                printf("hostagent-guest %s (%s)\n", HA_VERSION, HA_BUILD);
                return 0;
        }
        if (level)
                ha_log_parse_level(level, &lvl);
        ha_log_setup(lvl, HA_LOG_TEXT, 2);

        a.pid1 = getpid() == 1;
        if (a.pid1) {
                ga_init_system(getenv("HA_BOOT_ARGS"));
                /* Ctrl-Alt-Del becomes SIGINT to us instead of an instant
                 * hard reboot (fails harmlessly inside a PID namespace). */
                reboot(RB_DISABLE_CAD);
        }
        else
                prctl(PR_SET_CHILD_SUBREAPER, 1);
        ga_init_stdio();
        raise_nofile(&a);
        protect_from_oom();
        if (chdir("/") < 0)
                ha_log_warn("guest.chdir_failed", "errno=%d", errno);

        r = setup_signals(&a);
        if (r < 0) {
                ha_log_error("guest.signals_failed", "error=\"%s\"", strerror(-r));
                return 1;
        }
        a.epfd = epoll_create1(EPOLL_CLOEXEC);
        if (a.epfd < 0) {
                ha_log_error("guest.epoll_failed", "errno=%d", errno);
                return 1;
        }
        for (unsigned attempt = 0;; attempt++) {
                a.listen_fd = unix_dir && *unix_dir ? listen_unix(unix_dir, attempt == 0)
                                                    : listen_vsock(attempt == 0);
                if (a.listen_fd >= 0)
                        break;
                if (!a.pid1)
                        return 1;
                /* PID 1 must not exit (the kernel would panic), and the
                 * vsock device may still be probing: retry, reaping. */
                while (waitpid(-1, NULL, WNOHANG) > 0)
                        ;
                usleep(100000);
        }
        a.h_listen = (struct ga_handle){ .kind = GA_H_LISTEN };
        a.h_sig = (struct ga_handle){ .kind = GA_H_SIGNAL };
        if (ga_watch(&a, &a.h_listen, a.listen_fd, EPOLLIN) < 0 ||
            ga_watch(&a, &a.h_sig, a.sig_fd, EPOLLIN) < 0)
                return 1;

        r = run(&a);
        ga_session_kill_all(&a);
        ga_session_bury(&a);
        if (a.pid1)
                shutdown_guest(&a);
        reap(&a);
        close(a.listen_fd);
        close(a.sig_fd);
        close(a.epfd);
        ha_log_info("guest.stopped", "status=%d", r);
        return r < 0 ? 1 : 0;
}
