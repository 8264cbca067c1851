/*
 * test_spawn.c - guest/spawn.c: a command gets its own process group and
 * pipes, and each way of failing to start is reported with its stage and
 * errno rather than as exit status 127.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ga.h"

static char *const g_env[] = { "PATH=/usr/bin:/bin", NULL };

static int spawn(char *const *argv, const char *cwd, struct ga_spawn_result *res, enum ga_spawn_stage *stage)
{
        struct ga_spawn_req req = { .argv = argv, .envp = g_env, .cwd = cwd };

        return ga_spawn(&req, res, stage);
}

static size_t read_all(int fd, char *buf, size_t cap)
{
        size_t len = 0;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t n;

                cr_assert_gt(poll(&p, 1, 5000), 0);
                n = read(fd, buf + len, cap - 1 - len);
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = '\0';
        return len;
}

Test(ga_spawn, runs_in_its_own_group_with_pipes)
{
        char *argv[] = { "sh", "-c", "read x; echo \"$x $(pwd)\"; echo e >&2; ps -o pgid= $$ 2>/dev/null || cat /proc/self/stat", NULL };
        struct ga_spawn_result res;
        enum ga_spawn_stage stage;
        char out[512], err[64];
        int status;

        cr_assert_eq(spawn(argv, "/tmp", &res, &stage), 0);
        cr_assert_eq(getpgid(res.pid), res.pid, "leader of its own group");
        cr_assert_eq(getsid(res.pid), res.pid, "and of its own session");
        cr_assert(fcntl(res.out_fd, F_GETFL) & O_NONBLOCK);
        cr_assert(fcntl(res.out_fd, F_GETFD) & FD_CLOEXEC);
        cr_assert_eq(write(res.in_fd, "hi\n", 3), 3);
        close(res.in_fd);
        read_all(res.out_fd, out, sizeof out);
        read_all(res.err_fd, err, sizeof err);
        cr_assert(strncmp(out, "hi /tmp\n", 8) == 0, "got %s", out);
        cr_assert_str_eq(err, "e\n");
        cr_assert_eq(waitpid(res.pid, &status, 0), res.pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(res.out_fd);
        close(res.err_fd);
}

static void expect_failure(char *const *argv, const char *cwd, int err, enum ga_spawn_stage want)
{
        struct ga_spawn_result res;
        enum ga_spawn_stage stage;
        int status;

        cr_assert_eq(spawn(argv, cwd, &res, &stage), -err, "%s", argv[0]);
        cr_assert_eq(stage, want);
        /* The failed child is left for the reaper: it exits 127. */
        cr_assert_gt(waitpid(-1, &status, 0), 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 127);
}

Test(ga_spawn, reports_each_failure_with_its_stage)
{
        char *missing[] = { "no-such-command-xyz", NULL };
        char *missing_abs[] = { "/no/such/file", NULL };
        char *not_exec[] = { "/etc/passwd", NULL };
        char *ok[] = { "true", NULL };

        expect_failure(missing, "/", ENOENT, GA_STAGE_EXEC);
        expect_failure(missing_abs, "/", ENOENT, GA_STAGE_EXEC);
        expect_failure(not_exec, "/", EACCES, GA_STAGE_EXEC);
        expect_failure(ok, "/no/such/dir", ENOENT, GA_STAGE_CWD);
        expect_failure(ok, "/etc/passwd", ENOTDIR, GA_STAGE_CWD);
}

Test(ga_spawn, defaulted_cwd_falls_back_to_root)
{
        char *argv[] = { "pwd", NULL };
        struct ga_spawn_req req = { .argv = argv, .envp = g_env, .cwd = "/no/such/home",
                                    .cwd_fallback_root = true };
        struct ga_spawn_result res;
        enum ga_spawn_stage stage;
        char out[64];

        cr_assert_eq(ga_spawn(&req, &res, &stage), 0);
        close(res.in_fd);
        read_all(res.out_fd, out, sizeof out);
        cr_assert_str_eq(out, "/\n");
        waitpid(res.pid, NULL, 0);
        close(res.out_fd);
        close(res.err_fd);
}
