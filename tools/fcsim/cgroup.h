/*
 * cgroup.h - the guest's cgroup v1 groups: cpu (CFS quota = vCPUs),
 * memory (limit = mem_size_mib) and freezer (pause/resume). Each is
 * /sys/fs/cgroup/<controller>/fcsim-<id>-<pid>; a controller that is not
 * mounted is skipped (limits are best effort, as the issue allows), except
 * the freezer, without which pause is refused.
 *
 * The groups are removed when the guest is gone. If fcsim is SIGKILLed it
 * cannot do that: the guest dies with it (PR_SET_PDEATHSIG) and the empty
 * fcsim-* directories are left for the driver to rmdir.
 */
#ifndef FCSIM_CGROUP_H
#define FCSIM_CGROUP_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/err.h"

struct fcsim_cgroup {
        char name[96];             /* fcsim-<id>-<pid> */
        bool cpu, memory, freezer; /* which directories exist */
};

/* Creates the groups and sets the limits. Returns 0 or -errno (nothing
 * left behind on failure). */
int fcsim_cgroup_create(struct fcsim_cgroup *cg, const char *id, unsigned vcpus, unsigned mem_mib,
                        struct ha_err *err);
/* Moves |pid| into every group. Returns 0 or -errno. */
int fcsim_cgroup_attach(const struct fcsim_cgroup *cg, pid_t pid, struct ha_err *err);
/* Freezes (true) or thaws the freezer group and waits until the kernel
 * reports the new state. Returns 0, -ENOTSUP (no freezer), -ETIMEDOUT. */
int fcsim_cgroup_freeze(const struct fcsim_cgroup *cg, bool frozen, struct ha_err *err);
/* Removes the groups (they must be empty; retried briefly while the
 * kernel finishes tearing the guest down). Safe to call twice. */
void fcsim_cgroup_destroy(struct fcsim_cgroup *cg);

#endif
