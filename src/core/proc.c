/*
 * proc.c - see proc.h. The comm field may hold spaces and ')', so fields are
 * counted from the last ')'.
 */
#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int ha_proc_stat(int pid, char *ret_state, uint64_t *ret_start)
{
        char path[64], buf[1024];
        if (pid <= 0)
                return -ESRCH;
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        int e = errno;
        close(fd);
        if (n < 0)
                return e == ESRCH ? -ESRCH : -e;
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (!p || p[1] != ' ')
                return -EIO;
        p += 2;
        /* p is at field 3 (state); start time is field 22. */
        char state = *p;
        for (int field = 3; field < 22; field++) {
                p = strchr(p, ' ');
                if (!p)
                        return -EIO;
                p++;
        }
        uint64_t v = 0;
        if (*p < '0' || *p > '9')
                return -EIO;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > (UINT64_MAX - 9) / 10)
                        return -EIO;
                v = v * 10 + (uint64_t)(*p - '0');
        }
        if (ret_state)
                *ret_state = state;
        *ret_start = v;
        return 0;
}

int ha_proc_start_time(int pid, uint64_t *ret_start_time)
{
        return ha_proc_stat(pid, NULL, ret_start_time);
}

bool ha_proc_alive(int pid, uint64_t start_time)
{
        char st = 0;
        uint64_t v = 0;
        if (ha_proc_stat(pid, &st, &v) < 0)
                return false;
        /* A zombie has exited; only its parent's wait is missing. */
        return v == start_time && st != 'Z' && st != 'X';
}
