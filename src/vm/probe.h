/*
 * probe.h - what VMM binary the agent was configured with: runs
 * "<bin> --version" once at startup, so GetHostInfo can report the
 * Firecracker version and whether it is the fcsim simulator (whose snapshots
 * are filesystem-only: guest memory is not saved).
 */
#ifndef HA_VM_PROBE_H
#define HA_VM_PROBE_H

#include <stdbool.h>

#include "core/err.h"

/* Bounds for a misbehaving binary: output read and time allowed. */
#define VM_PROBE_OUTPUT_MAX 4096
#define VM_PROBE_TIMEOUT_MS 3000

struct vm_vmm_info {
        char version[32];       /* "1.16.1" (from "Firecracker v1.16.1") */
        bool simulator;         /* an "fcsim:" line was printed */
        bool memory_snapshots;  /* snapshots keep guest memory (false for fcsim) */
        char banner[160];       /* the first two lines, '|'-joined, for logs */
};

/* Runs |bin| --version (no shell, empty environment, stdin/stderr on
 * /dev/null) and parses its output. Returns 0, -ENOENT/-EACCES (binary),
 * -ETIMEDOUT (no exit within VM_PROBE_TIMEOUT_MS; it is killed), -EPROTO
 * (exit status not 0 or no "Firecracker v" line). */
int vm_vmm_probe(const char *bin, struct vm_vmm_info *ret, struct ha_err *err);

#endif
