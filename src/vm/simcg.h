/*
 * simcg.h - what the fcsim simulator leaves behind when it is SIGKILLed.
 *
 * fcsim (tools/fcsim, the Firecracker stand-in used where KVM is missing)
 * puts its guest in cgroup v1 groups named fcsim-<id>-<pid> under the cpu,
 * memory and freezer controllers. A SIGKILLed fcsim cannot remove them, and
 * a guest frozen by a pause cannot even die until it is thawed. Real
 * Firecracker creates no such groups, so for it these calls find nothing and
 * do nothing.
 */
#ifndef HA_VM_SIMCG_H
#define HA_VM_SIMCG_H

#include <sys/types.h>

/* Thaws fcsim-<id>-<pid> in the freezer hierarchy if it exists (call before
 * SIGKILL, so the guest can act on it). */
void vm_simcg_thaw(const char *id, pid_t pid);
/* Removes fcsim-<id>-<pid> from every controller where it exists, retrying
 * while the kernel reaps the last tasks (up to 15 s in all: a dying guest
 * unmounts its filesystem before it leaves the group). */
void vm_simcg_remove(const char *id, pid_t pid);

#endif
