/*
 * spawn.c - starts one command: fork, then in the child setsid, pipes on
 * 0/1/2, credentials, chdir and execve, each failure written as
 * {stage, errno} into a CLOEXEC pipe that a successful execve closes. The
 * parent's read of that pipe returns 0 bytes on success, so "binary not
 * found" and "bad cwd" are precise errors rather than an exit status 127
 * the caller has to guess about.
 *
 * The agent is single-threaded, but the child still only makes
 * async-signal-safe calls: everything it needs (argv, envp, PATH
 * candidates) is prepared before fork.
 */
#include "ga.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Pipe buffer for stdout/stderr: lets a fast writer run ahead of one
 * agent loop turn. Best effort (the default 64 KiB works too). */
#define OUTPUT_PIPE_SIZE (256 * 1024)

struct child_err {
        int stage;
        int err;
};

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static __attribute__((noreturn)) void child_fail(int fd, int stage, int err)
{
        struct child_err ce = { stage, err };
        ssize_t n = write(fd, &ce, sizeof ce);

        (void)n;
        _exit(127);
}

static const char *env_path(char *const *envp)
{
        for (; *envp; envp++)
                if (strncmp(*envp, "PATH=", 5) == 0)
                        return *envp + 5;
        return GA_DEFAULT_PATH;
}

/* execvpe() without reading the agent's own environment: searches the
 * command's PATH. Keeps the most telling errno like execvp does (EACCES
 * beats ENOENT). Returns the errno to report. */
static int exec_search(const char *file, char *const *argv, char *const *envp)
{
        char buf[PATH_MAX];
        const char *p = env_path(envp);
        size_t flen = strlen(file);
        int best = ENOENT;

        if (strchr(file, '/')) {
                execve(file, argv, envp);
                return errno;
        }
        while (*p) {
                const char *colon = strchr(p, ':');
                size_t dlen = colon ? (size_t)(colon - p) : strlen(p);

                if (dlen == 0) {
                        buf[0] = '.';
                        dlen = 1;
                } else if (dlen < sizeof buf) {
                        memcpy(buf, p, dlen);
                }
                if (dlen + 1 + flen < sizeof buf) {
                        buf[dlen] = '/';
                        memcpy(buf + dlen + 1, file, flen + 1);
                        execve(buf, argv, envp);
                        /* Permission problems win; any other error beats ENOENT. */
                        if (errno == EACCES || errno == ENOEXEC || errno == EPERM ||
                            (errno != ENOENT && errno != ENOTDIR && best == ENOENT))
                                best = errno;
                }
                if (!colon)
                        break;
                p = colon + 1;
        }
        return best;
}

static __attribute__((noreturn)) void child_run(const struct ga_spawn_req *req, int in_rd, int out_wr,
                                                int err_wr, int ep)
{
        sigset_t none;

        /* The agent blocks SIGCHLD/SIGTERM/... for its signalfd and ignores
         * SIGPIPE; a command must start with the defaults. */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        signal(sig, SIG_DFL);

        if (setsid() < 0)
                child_fail(ep, GA_STAGE_SETUP, errno);
        /* The agent protects itself from the OOM killer and raised its fd
         * limit; the command gets neither. */
        int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (oom >= 0) {
                ssize_t n = write(oom, "0", 1);

                (void)n;
                close(oom);
        }
        if (req->nofile)
                setrlimit(RLIMIT_NOFILE, req->nofile);
        if (dup2(in_rd, 0) < 0 || dup2(out_wr, 1) < 0 || dup2(err_wr, 2) < 0)
                child_fail(ep, GA_STAGE_SETUP, errno);

        if (req->user) {
                const struct ga_user *u = req->user;

                if (setgroups(u->n_groups, u->groups) < 0 && !(errno == EPERM && geteuid() == u->uid))
                        child_fail(ep, GA_STAGE_USER, errno);
                if (setgid(u->gid) < 0 || setuid(u->uid) < 0)
                        child_fail(ep, GA_STAGE_USER, errno);
        }
        if (chdir(req->cwd) < 0) {
                if (!req->cwd_fallback_root || chdir("/") < 0)
                        child_fail(ep, GA_STAGE_CWD, errno);
        }
        child_fail(ep, GA_STAGE_EXEC, exec_search(req->argv[0], req->argv, req->envp));
}

static void close_pair(int p[2])
{
        if (p[0] >= 0)
                close(p[0]);
        if (p[1] >= 0)
                close(p[1]);
}

int ga_spawn(const struct ga_spawn_req *req, struct ga_spawn_result *ret, enum ga_spawn_stage *ret_stage)
{
        int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, ep[2] = { -1, -1 };
        struct child_err ce;
        uint64_t start;
        ssize_t n;
        pid_t pid;
        int r;

        *ret_stage = GA_STAGE_SETUP;
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
            pipe2(ep, O_CLOEXEC) < 0) {
                r = -errno;
                goto out_close;
        }
        (void)fcntl(out[1], F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);
        (void)fcntl(err[1], F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);

        start = now_ns();
        pid = fork();
        if (pid < 0) {
                r = -errno;
                goto out_close;
        }
        if (pid == 0)
                child_run(req, in[0], out[1], err[1], ep[1]);

        close(ep[1]);
        ep[1] = -1;
        do
                n = read(ep[0], &ce, sizeof ce);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof ce) {
                /* The child exited with 127; the reaper collects it. */
                *ret_stage = (enum ga_spawn_stage)ce.stage;
                r = -ce.err;
                goto out_close;
        }
        close(ep[0]);
        close(in[0]);
        close(out[1]);
        close(err[1]);
        (void)fcntl(in[1], F_SETFL, O_NONBLOCK);
        (void)fcntl(out[0], F_SETFL, O_NONBLOCK);
        (void)fcntl(err[0], F_SETFL, O_NONBLOCK);
        ret->pid = pid;
        ret->in_fd = in[1];
        ret->out_fd = out[0];
        ret->err_fd = err[0];
        ret->start_ns = start;
        return 0;

out_close:
        close_pair(in);
        close_pair(out);
        close_pair(err);
        close_pair(ep);
        return r;
}
