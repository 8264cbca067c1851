/*
 * fctest.h - helpers shared by the vm tests: scratch directories, fake VMM
 * wrappers around vm_fakefc, process checks, the spec validator.
 */
#ifndef HA_TEST_FCTEST_H
#define HA_TEST_FCTEST_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm/orphan.h"
#include "vm/proc.h"

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

/* Kills every VMM whose --api-sock lies under |dir| (a failed assertion
 * can leave one behind, and it runs in its own session), with the
 * simulator's cgroups (vm_kill_process). */
static inline void fct_kill_under(const char *dir)
{
        DIR *d = opendir("/proc");
        if (!d)
                return;
        struct dirent *e;
        size_t dl = strlen(dir);
        while ((e = readdir(d))) {
                pid_t pid = (pid_t)atoi(e->d_name);
                char p[64], buf[4096], id[80] = "";
                if (pid <= 0 || pid == getpid())
                        continue;
                snprintf(p, sizeof p, "/proc/%d/cmdline", (int)pid);
                int fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t n = read(fd, buf, sizeof buf - 1);
                close(fd);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                bool ours = false;
                for (char *a = buf; a < buf + n; a += strlen(a) + 1) {
                        char *next = a + strlen(a) + 1;
                        if (next >= buf + n)
                                break;
                        if (strcmp(a, "--api-sock") == 0 && strncmp(next, dir, dl) == 0 &&
                            next[dl] == '/')
                                ours = true;
                        if (strcmp(a, "--id") == 0)
                                snprintf(id, sizeof id, "%s", next);
                }
                uint64_t st;
                if (ours && vm_proc_starttime(pid, &st) == 0)
                        vm_kill_process(id[0] ? id : NULL, pid, st, 3000);
        }
        closedir(d);
}

/* Kills what a failed test left running under |dir|, detaches a netns
 * bind mount at <dir>/netns, then deletes |dir|. */
static inline void fct_rmrf(const char *dir)
{
        if (!dir[0])
                return;
        fct_kill_under(dir);
        char ns[256];
        snprintf(ns, sizeof ns, "%s/netns", dir);
        umount2(ns, MNT_DETACH);
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
