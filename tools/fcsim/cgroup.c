/*
 * cgroup.c - see cgroup.h. The CFS period is the default 100 ms, so a
 * quota of vcpus * period lets the guest use at most |vcpus| CPUs.
 */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CG_ROOT       "/sys/fs/cgroup"
#define CFS_PERIOD_US 100000ull
/* Freezing waits for every task to reach the freezer; a guest busy in the
 * kernel can take a moment. Beyond this the pause is reported as failed. */
#define FREEZE_TIMEOUT_MS 5000
/* rmdir retries while the kernel reaps the last guest tasks. */
#define RMDIR_TRIES 100

static int write_file(const char *ctl, const char *name, const char *file, const char *val)
{
        char path[256];
        int n = snprintf(path, sizeof path, CG_ROOT "/%s/%s/%s", ctl, name, file);
        if (n < 0 || (size_t)n >= sizeof path)
                return -ENAMETOOLONG;
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t len = strlen(val);
        ssize_t w = write(fd, val, len);
        int r = w < 0 ? -errno : ((size_t)w == len ? 0 : -EIO);
        close(fd);
        return r;
}

static int read_file(const char *ctl, const char *name, const char *file, char *out, size_t cap)
{
        char path[256];
        int n = snprintf(path, sizeof path, CG_ROOT "/%s/%s/%s", ctl, name, file);
        if (n < 0 || (size_t)n >= sizeof path)
                return -ENAMETOOLONG;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t got = read(fd, out, cap - 1);
        int r = got < 0 ? -errno : 0;
        close(fd);
        if (r == 0)
                out[got] = '\0';
        return r;
}

static int make_group(const char *ctl, const char *name, bool *ret_made)
{
        char path[256];
        *ret_made = false;
        snprintf(path, sizeof path, CG_ROOT "/%s", ctl);
        if (access(path, F_OK) != 0)
                return 0; /* controller not mounted: skip */
        int n = snprintf(path, sizeof path, CG_ROOT "/%s/%s", ctl, name);
        if (n < 0 || (size_t)n >= sizeof path)
                return -ENAMETOOLONG;
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return -errno;
        *ret_made = true;
        return 0;
}

int fcsim_cgroup_create(struct fcsim_cgroup *cg, const char *id, unsigned vcpus, unsigned mem_mib,
                        struct ha_err *err)
{
        int r;
        char val[32];
        memset(cg, 0, sizeof *cg);
        int n = snprintf(cg->name, sizeof cg->name, "fcsim-%s-%d", id, (int)getpid());
        if (n < 0 || (size_t)n >= sizeof cg->name)
                return ha_err_set(err, -ENAMETOOLONG, "cgroup name too long");

        r = make_group("cpu", cg->name, &cg->cpu);
        if (r < 0)
                goto fail;
        if (cg->cpu) {
                snprintf(val, sizeof val, "%llu", CFS_PERIOD_US);
                r = write_file("cpu", cg->name, "cpu.cfs_period_us", val);
                if (r == 0) {
                        snprintf(val, sizeof val, "%llu", CFS_PERIOD_US * vcpus);
                        r = write_file("cpu", cg->name, "cpu.cfs_quota_us", val);
                }
                if (r < 0)
                        goto fail;
        }
        r = make_group("memory", cg->name, &cg->memory);
        if (r < 0)
                goto fail;
        if (cg->memory) {
                snprintf(val, sizeof val, "%llu", (unsigned long long)mem_mib << 20);
                r = write_file("memory", cg->name, "memory.limit_in_bytes", val);
                if (r < 0)
                        goto fail;
        }
        r = make_group("freezer", cg->name, &cg->freezer);
        if (r < 0)
                goto fail;
        /* A group left FROZEN by a SIGKILLed fcsim whose pid we now reuse
         * must not freeze the new guest. */
        if (cg->freezer) {
                r = write_file("freezer", cg->name, "freezer.state", "THAWED");
                if (r < 0)
                        goto fail;
        }
        return 0;
fail:
        ha_err_set(err, r, "cannot set up cgroup %s: %s", cg->name, strerror(-r));
        fcsim_cgroup_destroy(cg);
        return r;
}

int fcsim_cgroup_attach(const struct fcsim_cgroup *cg, pid_t pid, struct ha_err *err)
{
        char val[24];
        snprintf(val, sizeof val, "%d", (int)pid);
        const char *ctls[] = { "cpu", "memory", "freezer" };
        const bool have[] = { cg->cpu, cg->memory, cg->freezer };
        for (int i = 0; i < 3; i++) {
                if (!have[i])
                        continue;
                int r = write_file(ctls[i], cg->name, "cgroup.procs", val);
                if (r < 0)
                        return ha_err_set(err, r, "cannot move the guest into %s cgroup %s: %s",
                                          ctls[i], cg->name, strerror(-r));
        }
        return 0;
}

int fcsim_cgroup_freeze(const struct fcsim_cgroup *cg, bool frozen, struct ha_err *err)
{
        if (!cg->freezer)
                return ha_err_set(err, -ENOTSUP, "the freezer cgroup controller is not available");
        const char *want = frozen ? "FROZEN" : "THAWED";
        int r = write_file("freezer", cg->name, "freezer.state", want);
        if (r < 0)
                return ha_err_set(err, r, "cannot write freezer.state: %s", strerror(-r));
        for (int waited = 0; waited < FREEZE_TIMEOUT_MS; waited++) {
                char state[32];
                r = read_file("freezer", cg->name, "freezer.state", state, sizeof state);
                if (r < 0)
                        return ha_err_set(err, r, "cannot read freezer.state: %s", strerror(-r));
                if (strncmp(state, want, strlen(want)) == 0)
                        return 0;
                struct timespec ts = { 0, 1000000 };
                nanosleep(&ts, NULL);
        }
        return ha_err_set(err, -ETIMEDOUT, "the guest did not reach %s within %d ms", want,
                          FREEZE_TIMEOUT_MS);
}

static void remove_group(const char *ctl, const char *name)
{
        char path[256];
        snprintf(path, sizeof path, CG_ROOT "/%s/%s", ctl, name);
        for (int i = 0; i < RMDIR_TRIES; i++) {
                if (rmdir(path) == 0 || errno == ENOENT)
                        return;
                if (errno != EBUSY)
                        return;
                struct timespec ts = { 0, 10000000 };
                nanosleep(&ts, NULL);
        }
}

void fcsim_cgroup_destroy(struct fcsim_cgroup *cg)
{
        /* A frozen group with tasks left would never empty: thaw first. */
        if (cg->freezer)
                write_file("freezer", cg->name, "freezer.state", "THAWED");
        if (cg->cpu)
                remove_group("cpu", cg->name);
        if (cg->memory)
                remove_group("memory", cg->name);
        if (cg->freezer)
                remove_group("freezer", cg->name);
        cg->cpu = cg->memory = cg->freezer = false;
}
