/*
 * simcg.c - see simcg.h.
 */
#include "vm/simcg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CG_ROOT "/sys/fs/cgroup"
/* rmdir gives EBUSY until the group's last task is gone: 200 x 5 ms. */
#define RMDIR_TRIES 200
#define RMDIR_STEP_US 5000

static const char *const controllers[] = { "freezer", "cpu", "memory" };

static int group_path(char *buf, size_t size, const char *ctl, const char *id, pid_t pid)
{
        int n = snprintf(buf, size, CG_ROOT "/%s/fcsim-%s-%d", ctl, id, (int)pid);
        return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

void vm_simcg_thaw(const char *id, pid_t pid)
{
        char path[256];
        if (group_path(path, sizeof path, "freezer", id, pid) < 0)
                return;
        size_t n = strlen(path);
        if (n + sizeof "/freezer.state" > sizeof path)
                return;
        memcpy(path + n, "/freezer.state", sizeof "/freezer.state");
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        ssize_t w = write(fd, "THAWED", 6);
        (void)w;
        close(fd);
}

void vm_simcg_remove(const char *id, pid_t pid)
{
        for (size_t i = 0; i < sizeof controllers / sizeof controllers[0]; i++) {
                char path[256];
                if (group_path(path, sizeof path, controllers[i], id, pid) < 0)
                        continue;
                for (int t = 0; t < RMDIR_TRIES; t++) {
                        if (rmdir(path) == 0 || errno != EBUSY)
                                break;
                        usleep(RMDIR_STEP_US);
                }
        }
}
