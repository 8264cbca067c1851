/*
 * proc.h - "is this still the process we started?". A pid alone is not an
 * identity: after an agent restart the number may belong to an unrelated
 * process. The kernel's start time (field 22 of /proc/<pid>/stat, clock
 * ticks since boot) never changes, and with the pid it names exactly one
 * process for the life of the host. Used by the sandbox manager's recovery
 * and by the VM driver.
 */
#ifndef HA_PROC_H
#define HA_PROC_H

#include <stdbool.h>
#include <stdint.h>

/* Reads the state letter and start time of |pid|. Returns 0, -ESRCH (no
 * such process, or pid <= 0), -EIO (unparsable), or another -errno. */
int ha_proc_stat(int pid, char *ret_state, uint64_t *ret_start_time);
/* Start time only; same returns. */
int ha_proc_start_time(int pid, uint64_t *ret_start_time);
/* True when |pid| runs, is not a zombie, and started at |start_time|. */
bool ha_proc_alive(int pid, uint64_t start_time);

#endif
