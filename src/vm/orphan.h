/*
 * orphan.h - finishing what an agent crash left behind: VMM processes and
 * per-VM directories under the run directory that no sandbox record owns.
 */
#ifndef HA_VM_ORPHAN_H
#define HA_VM_ORPHAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

/* Kills the VMM (pid, starttime) with its process group if it is still that
 * process, waits up to |timeout_ms|, and (for the fcsim simulator, by |id|)
 * thaws and removes its cgroups, which also matters when the process is
 * already gone. Returns 0 (gone, or never there), -ETIMEDOUT, or -errno. */
int vm_kill_process(const char *id, pid_t pid, uint64_t starttime, unsigned timeout_ms);

/* Removes what belongs to no live VM under |run_dir|: every process whose
 * command line has "--api-sock <run_dir>/<id>/api.sock" with |id| not in
 * |live_ids| is killed (with its process group), and every <run_dir>/<id>/
 * directory (except the shared "vmroot" mount point) not in |live_ids| is
 * deleted. Processes of other run directories are never touched, and
 * jailed VMMs (whose --api-sock is inside the chroot) are not found here.
 * Returns the number of processes killed plus directories removed, or
 * -errno (the run directory unreadable). */
int vm_cleanup_orphans(const char *run_dir, const char *const *live_ids, size_t n_live,
                       struct ha_err *err);

#endif
