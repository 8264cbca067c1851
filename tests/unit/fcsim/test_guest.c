/* Tests tools/fcsim/loopdev.c and cgroup.c (root only): the autoclear loop
 * device and the cgroup life cycle the guest relies on. The full guest boot
 * is covered by tests/integration/test_fcsim_guest.py. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "loopdev.h"

static bool loop_bound(const char *dev)
{
        char p[96];
        snprintf(p, sizeof p, "/sys/block/%s/loop/backing_file", dev + 5);
        return access(p, F_OK) == 0;
}

Test(fcsim_loopdev, autoclear_detaches_when_the_last_opener_closes)
{
        if (geteuid() != 0)
                cr_skip_test("needs root: loop devices");
        char img[] = "/tmp/fcsimu-img-XXXXXX";
        int fd = mkstemp(img);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, 1 << 20), 0);
        close(fd);
        int loop_fd = -1;
        char dev[FCSIM_LOOP_PATH_MAX];
        struct ha_err err = { "" };
        cr_assert_eq(fcsim_loop_attach(img, true, &loop_fd, dev, &err), 0, "%s", err.msg);
        cr_assert(loop_bound(dev));
        char p[96], ro[4] = "";
        snprintf(p, sizeof p, "/sys/block/%s/ro", dev + 5);
        FILE *f = fopen(p, "r");
        cr_assert_not_null(f);
        cr_assert_not_null(fgets(ro, sizeof ro, f));
        fclose(f);
        cr_assert_eq(ro[0], '1', "read-only drive gives a read-only device");
        close(loop_fd);
        bool gone = false;
        for (int i = 0; i < 200 && !gone; i++) {
                gone = !loop_bound(dev);
                struct timespec ts = { 0, 10000000 };
                nanosleep(&ts, NULL);
        }
        cr_assert(gone, "%s still bound after its last close", dev);
        unlink(img);
        cr_assert_eq(fcsim_loop_attach("/nonexistent.ext4", false, &loop_fd, dev, &err), -ENOENT);
        cr_assert(strstr(err.msg, "/nonexistent.ext4") != NULL);
}

Test(fcsim_cgroup, create_limits_freeze_and_destroy)
{
        if (geteuid() != 0)
                cr_skip_test("needs root: cgroups");
        if (access("/sys/fs/cgroup/freezer", F_OK) != 0)
                cr_skip_test("no cgroup v1 freezer");
        struct fcsim_cgroup cg;
        struct ha_err err = { "" };
        char id[32];
        snprintf(id, sizeof id, "unit%ld", (long)time(NULL) % 100000);
        cr_assert_eq(fcsim_cgroup_create(&cg, id, 2, 64, &err), 0, "%s", err.msg);
        char p[256], buf[64] = "";
        snprintf(p, sizeof p, "/sys/fs/cgroup/memory/%s/memory.limit_in_bytes", cg.name);
        FILE *f = fopen(p, "r");
        cr_assert_not_null(f);
        cr_assert_not_null(fgets(buf, sizeof buf, f));
        fclose(f);
        cr_assert_eq(strtoull(buf, NULL, 10), 64ull << 20);
        if (cg.cpu) {
                snprintf(p, sizeof p, "/sys/fs/cgroup/cpu/%s/cpu.cfs_quota_us", cg.name);
                f = fopen(p, "r");
                cr_assert_not_null(fgets(buf, sizeof buf, f));
                fclose(f);
                cr_assert_eq(atoi(buf), 200000);
        }
        pid_t child = fork();
        if (child == 0) {
                for (;;)
                        pause();
        }
        cr_assert_eq(fcsim_cgroup_attach(&cg, child, &err), 0, "%s", err.msg);
        cr_assert_eq(fcsim_cgroup_freeze(&cg, true, &err), 0, "%s", err.msg);
        cr_assert_eq(fcsim_cgroup_freeze(&cg, false, &err), 0, "%s", err.msg);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        char dir[256];
        snprintf(dir, sizeof dir, "/sys/fs/cgroup/freezer/%s", cg.name);
        fcsim_cgroup_destroy(&cg);
        cr_assert_neq(access(dir, F_OK), 0, "%s left behind", dir);
        fcsim_cgroup_destroy(&cg);      /* twice is harmless */
}
