/*
 * simcg.c - see simcg.h.
 */
#include "vm/simcg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"

#define CG_ROOT "/sys/fs/cgroup"
/* rmdir gives EBUSY until the group's last task has been reaped. A dying
 * guest leaves the group last thing: before that it tears down its mount
 * namespace (the ext4 on a loop device is unmounted and flushed), which on
 * a loaded host takes seconds; a fixed 1 s per controller left groups
 * behind under ASan. One deadline for all three groups, polled every 5 ms. */
#define RMDIR_DEADLINE_MS 15000
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
        enum { N = sizeof controllers / sizeof controllers[0] };
        char path[N][256];
        bool left[N];
        size_t n_left = 0;
        for (size_t i = 0; i < N; i++) {
                left[i] = group_path(path[i], sizeof path[i], controllers[i], id, pid) == 0;
                n_left += left[i];
        }
        uint64_t deadline = ha_now_ms() + RMDIR_DEADLINE_MS;
        while (n_left) {
                for (size_t i = 0; i < N; i++) {
                        if (left[i] && (rmdir(path[i]) == 0 || errno != EBUSY)) {
                                left[i] = false;
                                n_left--;
                        }
                }
                if (!n_left)
                        break;
                if (ha_now_ms() >= deadline) {
                        ha_log_warn("vm.simcg_busy", "vm=%s pid=%d groups=%zu waited_ms=%d", id, (int)pid,
                                    n_left, RMDIR_DEADLINE_MS);
                        break;
                }
                usleep(RMDIR_STEP_US);
        }
}
