/*
 * harness.h - test fixtures for the exec client: the real guest agent
 * binary run on the host (HA_VSOCK_UNIX_DIR=<tmpdir>) and a tiny stand-in
 * for Firecracker's hybrid vsock (accepts on a uds_path, reads
 * "CONNECT <port>\n", connects to <tmpdir>/<port>, answers "OK <n>\n" and
 * forwards both ways with small bounded buffers, so backpressure crosses it
 * as it crosses the VMM). Header-only, static inline: included by the exec
 * tests and nothing else.
 */
#ifndef TESTS_EXEC_HARNESS_H
#define TESTS_EXEC_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/time.h"
#include "exec/exec.h"

#define SHIM_BUF (64 * 1024)

struct shim {
        char guest_dir[160];
        char uds[192];
        int lfd;
        pthread_t thr;
        atomic_bool stop;
        atomic_int active;      /* forwarding threads alive */
        atomic_int connects;    /* CONNECT lines seen */
        atomic_bool lazy_close; /* like fcsim: a host close goes unnoticed while
                                 * host->guest bytes wait for the guest */
};

struct shim_conn {
        struct shim *sh;
        int host;
};

static inline void shim_close_both(int a, int b)
{
        close(a);
        if (b >= 0)
                close(b);
}

/* Moves bytes between the two sockets until either side ends. */
static inline void shim_forward(struct shim *sh, int host, int guest)
{
        static __thread uint8_t h2g[SHIM_BUF], g2h[SHIM_BUF];
        size_t h2g_len = 0, h2g_off = 0, g2h_len = 0, g2h_off = 0;
        bool guest_eof = false, guest_wr_dead = false;

        while (!atomic_load(&sh->stop)) {
                struct pollfd p[2] = {
                        { .fd = host, .events = (short)((h2g_len == h2g_off ? POLLIN : 0) |
                                                        (g2h_len > g2h_off ? POLLOUT : 0)) },
                        { .fd = guest, .events = (short)((g2h_len == g2h_off && !guest_eof ? POLLIN : 0) |
                                                         (h2g_len > h2g_off ? POLLOUT : 0)) },
                };
                ssize_t n;

                if (guest_eof && g2h_len == g2h_off)
                        return;
                if (poll(p, 2, 100) <= 0)
                        continue;
                /* Host gone (HUP is reported even when POLLIN is not asked
                 * for, e.g. while the guest is not reading): drop the
                 * guest side at once, as the VMM does. */
                if (p[0].revents & (POLLHUP | POLLERR) && !(sh->lazy_close && h2g_len > h2g_off))
                        return;
                if (p[0].revents & (POLLHUP | POLLERR) && !(p[1].revents & POLLOUT)) {
                        usleep(10000);  /* lazy: wait for the guest, like a blocked write */
                        continue;
                }
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR) && h2g_len == h2g_off) {
                        n = read(host, h2g, sizeof h2g);
                        if (n <= 0)
                                return;         /* host went away: drop the guest side */
                        h2g_len = guest_wr_dead ? 0 : (size_t)n;
                        h2g_off = 0;
                }
                if (p[1].revents & (POLLIN | POLLHUP | POLLERR) && g2h_len == g2h_off && !guest_eof) {
                        n = read(guest, g2h, sizeof g2h);
                        if (n <= 0)
                                guest_eof = true;
                        else {
                                g2h_len = (size_t)n;
                                g2h_off = 0;
                        }
                }
                if (p[1].revents & POLLOUT && h2g_len > h2g_off) {
                        n = send(guest, h2g + h2g_off, h2g_len - h2g_off, MSG_NOSIGNAL);
                        if (n < 0) {
                                /* The guest closed: what it sent before
                                 * still goes to the host; host bytes are
                                 * dropped from now on. */
                                guest_wr_dead = true;
                                h2g_off = h2g_len = 0;
                                continue;
                        }
                        h2g_off += (size_t)n;
                }
                if (p[0].revents & POLLOUT && g2h_len > g2h_off) {
                        n = send(host, g2h + g2h_off, g2h_len - g2h_off, MSG_NOSIGNAL);
                        if (n < 0)
                                return;
                        g2h_off += (size_t)n;
                }
        }
}

static inline void *shim_conn_main(void *arg)
{
        struct shim_conn *sc = arg;
        struct shim *sh = sc->sh;
        int host = sc->host, guest = -1;
        char line[64];
        size_t len = 0;
        unsigned port;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        free(sc);
        /* Read the CONNECT line byte by byte: nothing past it is ours. */
        while (len < sizeof line - 1) {
                ssize_t n = read(host, line + len, 1);

                if (n <= 0)
                        goto out;
                if (line[len++] == '\n')
                        break;
        }
        line[len] = '\0';
        atomic_fetch_add(&sh->connects, 1);
        if (sscanf(line, "CONNECT %u\n", &port) != 1)
                goto out;
        snprintf(sa.sun_path, sizeof sa.sun_path, "%.90s/%u", sh->guest_dir, port);
        guest = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (guest < 0 || connect(guest, (struct sockaddr *)&sa, sizeof sa) < 0)
                goto out;               /* EOF without OK: nobody listens */
        if (write(host, "OK 1073741824\n", 14) != 14)
                goto out;
        fcntl(host, F_SETFL, O_NONBLOCK);
        fcntl(guest, F_SETFL, O_NONBLOCK);
        shim_forward(sh, host, guest);
out:
        shim_close_both(host, guest);
        atomic_fetch_sub(&sh->active, 1);
        return NULL;
}

static inline void *shim_main(void *arg)
{
        struct shim *sh = arg;

        while (!atomic_load(&sh->stop)) {
                struct pollfd p = { .fd = sh->lfd, .events = POLLIN };
                struct shim_conn *sc;
                pthread_t t;
                int fd;

                if (poll(&p, 1, 100) <= 0)
                        continue;
                fd = accept4(sh->lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        continue;
                sc = malloc(sizeof *sc);
                sc->sh = sh;
                sc->host = fd;
                atomic_fetch_add(&sh->active, 1);
                if (pthread_create(&t, NULL, shim_conn_main, sc) != 0) {
                        atomic_fetch_sub(&sh->active, 1);
                        close(fd);
                        free(sc);
                        continue;
                }
                pthread_detach(t);
        }
        return NULL;
}

static inline int shim_start(struct shim *sh, const char *uds, const char *guest_dir)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        memset(sh, 0, sizeof *sh);
        snprintf(sh->uds, sizeof sh->uds, "%s", uds);
        snprintf(sh->guest_dir, sizeof sh->guest_dir, "%s", guest_dir);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%.107s", uds);
        sh->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sh->lfd < 0 || bind(sh->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(sh->lfd, 128) < 0)
                return -errno;
        return -pthread_create(&sh->thr, NULL, shim_main, sh);
}

static inline void shim_stop(struct shim *sh)
{
        atomic_store(&sh->stop, true);
        pthread_join(sh->thr, NULL);
        for (int i = 0; i < 300 && atomic_load(&sh->active) > 0; i++)
                usleep(10000);
        close(sh->lfd);
        unlink(sh->uds);
}

/* --- the guest agent as a child process ---------------------------------- */

struct agent {
        char dir[128];          /* temp dir: vsock/ (agent side), v.sock (shim) */
        char guest_dir[160];
        char uds[192];
        pid_t pid;
        struct shim shim;
};

static inline const char *agent_binary(void)
{
        static char path[512];
        const char *b = getenv("HA_BINARY_DIR");

        snprintf(path, sizeof path, "%s/guest/hostagent-guest", b ? b : ".");
        return path;
}

#include <sys/prctl.h>
#include <sys/resource.h>

/* |nofile|: 0, or a hard RLIMIT_NOFILE for the agent (fd exhaustion tests). */
static inline pid_t agent_spawn(const char *guest_dir, unsigned nofile)
{
        pid_t pid = fork();

        if (pid == 0) {
                struct rlimit rl = { nofile, nofile };

                /* A failed assertion ends the test process: take the agent
                 * along (it must be forked by a thread that lives as long
                 * as the test). */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (nofile)
                        setrlimit(RLIMIT_NOFILE, &rl);
                const char *bin = agent_binary();
                char env_dir[256];
                char *envp[] = { env_dir, "HA_GUEST_LOG_LEVEL=warn", "PATH=/usr/bin:/bin", NULL };
                char *argv[] = { (char *)bin, NULL };

                snprintf(env_dir, sizeof env_dir, "HA_VSOCK_UNIX_DIR=%s", guest_dir);
                execve(bin, argv, envp);
                _exit(127);
        }
        return pid;
}

/* Starts shim + agent in a fresh temp dir and waits until the agent
 * answers a ping through the shim. Returns 0 or -errno. */
static inline int agent_start_limited(struct agent *ag, bool start_agent, unsigned nofile)
{
        memset(ag, 0, sizeof *ag);
        snprintf(ag->dir, sizeof ag->dir, "/tmp/ha-exec-test-%d-XXXXXX", (int)getpid());
        if (!mkdtemp(ag->dir))
                return -errno;
        snprintf(ag->guest_dir, sizeof ag->guest_dir, "%s/vsock", ag->dir);
        snprintf(ag->uds, sizeof ag->uds, "%s/v.sock", ag->dir);
        mkdir(ag->guest_dir, 0755);
        if (shim_start(&ag->shim, ag->uds, ag->guest_dir) < 0)
                return -EIO;
        if (!start_agent)
                return 0;
        ag->pid = agent_spawn(ag->guest_dir, nofile);
        if (ag->pid < 0)
                return -errno;
        return exec_wait_ready(ag->uds, ha_now_ms() + 5000, NULL);
}

static inline int agent_start(struct agent *ag, bool start_agent)
{
        return agent_start_limited(ag, start_agent, 0);
}

/* Stops everything; returns the agent's wait status (0 = clean exit, which
 * under ASan also means no leak report). */
static inline int agent_stop(struct agent *ag)
{
        char cmd[256];
        int status = 0;

        if (ag->pid > 0) {
                kill(ag->pid, SIGTERM);
                waitpid(ag->pid, &status, 0);
        }
        shim_stop(&ag->shim);
        snprintf(cmd, sizeof cmd, "%s/10000", ag->guest_dir);
        unlink(cmd);
        rmdir(ag->guest_dir);
        rmdir(ag->dir);
        return status;
}

/* --- running a command to completion --------------------------------------- */

struct run_result {
        int rc;                 /* 0, or the -errno of the last call */
        struct exec_event last; /* EXITED or ERROR */
        int32_t pid;
        char *out, *err;        /* NUL-terminated, malloc'd */
        size_t out_len, err_len;
};

static inline void run_result_free(struct run_result *r)
{
        free(r->out);
        free(r->err);
}

static inline void append_bytes(char **buf, size_t *len, const uint8_t *p, size_t n)
{
        *buf = realloc(*buf, *len + n + 1);
        memcpy(*buf + *len, p, n);
        *len += n;
        (*buf)[*len] = '\0';
}

/* Drains events of a started connection until EXITED/ERROR. */
static inline void run_collect(exec_conn *c, uint64_t deadline, struct run_result *res)
{
        struct exec_event ev;

        for (;;) {
                int r = exec_next_event(c, deadline, &ev);

                if (r < 0) {
                        res->rc = r;
                        return;
                }
                switch (ev.kind) {
                case EXEC_EV_STARTED:
                        res->pid = ev.pid;
                        break;
                case EXEC_EV_STDOUT:
                        append_bytes(&res->out, &res->out_len, ev.data, ev.len);
                        break;
                case EXEC_EV_STDERR:
                        append_bytes(&res->err, &res->err_len, ev.data, ev.len);
                        break;
                case EXEC_EV_EXITED:
                case EXEC_EV_ERROR:
                        res->last = ev;
                        return;
                case EXEC_EV_PONG:
                        break;
                }
        }
}

static inline int run_argv(struct agent *ag, const char *const *argv, size_t argc, const char *cwd,
                           const char *user, uint64_t timeout_ms, struct run_result *res)
{
        struct exec_spec spec = { .argv = argv, .argc = argc, .cwd = cwd, .user = user,
                                  .timeout_ms = timeout_ms };
        uint64_t deadline = ha_now_ms() + 30000;
        exec_conn *c;
        int r;

        memset(res, 0, sizeof *res);
        r = exec_conn_open(ag->uds, EXEC_GUEST_PORT, deadline, &c, NULL);
        if (r < 0)
                return res->rc = r;
        r = exec_start(c, &spec, deadline, NULL);
        if (r == 0)
                run_collect(c, deadline, res);
        else
                res->rc = r;
        exec_conn_free(c);
        return res->rc;
}

static inline int run_sh(struct agent *ag, const char *script, struct run_result *res)
{
        const char *argv[] = { "sh", "-c", script };

        return run_argv(ag, argv, 3, NULL, NULL, 0, res);
}

#endif
