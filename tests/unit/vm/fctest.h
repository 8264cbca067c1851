/*
 * fctest.h - helpers shared by the vm tests: scratch directories, fake VMM
 * wrappers around vm_fakefc, process checks, the spec validator.
 */
#ifndef HA_TEST_FCTEST_H
#define HA_TEST_FCTEST_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static inline int fct_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
        (void)sb;
        (void)flag;
        (void)ftw;
        remove(p);
        return 0;
}

/* A short scratch dir: socket paths must fit 107 bytes. */
static inline void fct_mkdtemp(char *buf, size_t size)
{
        snprintf(buf, size, "/tmp/havm-XXXXXX");
        cr_assert_not_null(mkdtemp(buf));
}

static inline void fct_rmrf(const char *dir)
{
        if (dir[0])
                nftw(dir, fct_rm, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static inline void fct_write(const char *path, const char *content, mode_t mode)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
        size_t n = strlen(content);
        cr_assert_eq(write(fd, content, n), (ssize_t)n);
        close(fd);
}

static inline void fct_fakefc_path(char *buf, size_t size)
{
        const char *b = getenv("HA_BINARY_DIR");
        cr_assert_not_null(b, "HA_BINARY_DIR not set (run through ctest)");
        snprintf(buf, size, "%s/tests/unit/vm/vm_fakefc", b);
        cr_assert_eq(access(buf, X_OK), 0, "%s missing: build target vm_fakefc", buf);
}

/* <dir>/fc-<mode>: a script running vm_fakefc --mode <mode> with our args. */
static inline void fct_wrapper(const char *dir, const char *mode, char *ret, size_t size)
{
        char fake[512], body[1200];
        fct_fakefc_path(fake, sizeof fake);
        snprintf(ret, size, "%s/fc-%s", dir, mode);
        snprintf(body, sizeof body, "#!/bin/sh\nexec %s --mode %s \"$@\"\n", fake, mode);
        fct_write(ret, body, 0755);
}

static inline bool fct_pid_gone(pid_t pid)
{
        return kill(pid, 0) < 0 && errno == ESRCH;
}

/* Runs tests/unit/vm/validate_fc_bodies.py on a requests.log; returns its
 * exit status (0: every body valid). */
static inline int fct_validate(const char *requests_log)
{
        const char *src = getenv("HA_SOURCE_DIR");
        cr_assert_not_null(src);
        char script[512], spec[512];
        snprintf(script, sizeof script, "%s/tests/unit/vm/validate_fc_bodies.py", src);
        snprintf(spec, sizeof spec, "%s/tests/unit/vm/firecracker-v1.16.1.yaml", src);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                char *argv[] = { "/usr/bin/python3", script, spec, (char *)requests_log, NULL };
                execv(argv[0], argv);
                _exit(127);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#endif
