/*
 * orphan.c - see orphan.h. Processes are found by their command line
 * because that is the one thing a crash cannot lose: the launcher always
 * passes "--api-sock <run_dir>/<id>/api.sock" (launch.c). Each candidate is
 * then pinned with a pidfd and its start time before it is signalled.
 */
#include "vm/orphan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "vm/launch.h"
#include "vm/proc.h"
#include "vm/simcg.h"

#define KILL_WAIT_MS 5000
/* /proc/<pid>/cmdline bytes looked at: "--api-sock" and a path fit. */
#define CMDLINE_MAX 4096

int vm_kill_process(const char *id, pid_t pid, uint64_t starttime, unsigned timeout_ms)
{
        int r = 0;
        if (id)
                vm_simcg_thaw(id, pid);
        int fd = vm_proc_open(pid, starttime);
        if (fd >= 0) {
                struct vm_proc p = { .pid = pid, .pidfd = fd, .starttime = starttime };
                r = vm_proc_kill(&p, timeout_ms, NULL);
                if (p.pidfd >= 0)
                        close(p.pidfd);
        } else if (fd != -ESRCH) {
                r = fd;
        }
        if (id)
                vm_simcg_remove(id, pid);
        return r;
}

static bool is_live(const char *id, const char *const *live, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (live[i] && strcmp(live[i], id) == 0)
                        return true;
        return false;
}

/* The <id> of "--api-sock <run_dir>/<id>/api.sock" in |pid|'s command
 * line, into |ret_id|. Returns true when found. */
static bool vmm_of_run_dir(pid_t pid, const char *run_dir, char *ret_id, size_t size)
{
        char path[64], buf[CMDLINE_MAX + 1];
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, CMDLINE_MAX);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        size_t rl = strlen(run_dir);
        for (char *a = buf; a < buf + n; a += strlen(a) + 1) {
                if (strcmp(a, "--api-sock") != 0)
                        continue;
                char *p = a + strlen(a) + 1;
                if (p >= buf + n || strncmp(p, run_dir, rl) != 0 || p[rl] != '/')
                        return false;
                const char *id = p + rl + 1;
                const char *slash = strchr(id, '/');
                if (!slash || strcmp(slash, "/api.sock") != 0 || (size_t)(slash - id) >= size)
                        return false;
                memcpy(ret_id, id, (size_t)(slash - id));
                ret_id[slash - id] = '\0';
                return vm_id_is_valid(ret_id);
        }
        return false;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
        (void)sb;
        (void)flag;
        (void)ftw;
        remove(p);
        return 0;
}

int vm_cleanup_orphans(const char *run_dir, const char *const *live_ids, size_t n_live,
                       struct ha_err *err)
{
        int cleaned = 0;

        /* 1. Processes. */
        DIR *proc = opendir("/proc");
        if (!proc) {
                int r = -errno;
                return ha_err_set(err, r, "/proc: %s", strerror(-r));
        }
        struct dirent *e;
        while ((e = readdir(proc))) {
                char *end;
                long pid = strtol(e->d_name, &end, 10);
                if (*end || pid <= 0 || pid == getpid())
                        continue;
                char id[VM_ID_MAX + 1];
                if (!vmm_of_run_dir((pid_t)pid, run_dir, id, sizeof id) ||
                    is_live(id, live_ids, n_live))
                        continue;
                uint64_t st;
                if (vm_proc_starttime((pid_t)pid, &st) < 0)
                        continue;
                int r = vm_kill_process(id, (pid_t)pid, st, KILL_WAIT_MS);
                ha_log_warn("vm.orphan_killed", "vm=%s pid=%ld result=%d", id, pid, r);
                cleaned++;
        }
        closedir(proc);

        /* 2. Directories. */
        DIR *d = opendir(run_dir);
        if (!d) {
                int r = -errno;
                if (r == -ENOENT)
                        return cleaned;
                return ha_err_set(err, r, "run directory %s: %s", run_dir, strerror(-r));
        }
        while ((e = readdir(d))) {
                if (!vm_id_is_valid(e->d_name) || strcmp(e->d_name, "vmroot") == 0 ||
                    is_live(e->d_name, live_ids, n_live))
                        continue;
                char p[PATH_MAX];
                int n = snprintf(p, sizeof p, "%s/%s", run_dir, e->d_name);
                struct stat sb;
                if (n < 0 || (size_t)n >= sizeof p || lstat(p, &sb) < 0 || !S_ISDIR(sb.st_mode))
                        continue;
                nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
                ha_log_warn("vm.orphan_removed", "vm=%s dir=%s", e->d_name, p);
                cleaned++;
        }
        closedir(d);
        return cleaned;
}
