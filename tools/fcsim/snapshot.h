/*
 * snapshot.h - fcsim's filesystem-only snapshots.
 *
 * A process image cannot be saved (Debian's CRIU fails its kernel check on
 * our hosts), so the "snapshot" is the VM's configuration: the snapshot
 * file is JSON with the machine config, boot source, drives, network
 * interfaces and vsock device; the memory file is a small marker tying it
 * to that snapshot. Loading boots the guest again from the same disk. Guest
 * memory, processes and open connections are NOT preserved: only what the
 * guest wrote to its disk survives.
 */
#ifndef FCSIM_SNAPSHOT_H
#define FCSIM_SNAPSHOT_H

#include "core/err.h"
#include "fcsim.h"

/* Creates (truncating) both files. Returns 0 or -errno. */
int fcsim_snapshot_write(const struct fcsim_config *c, const char *snapshot_path,
                         const char *mem_path, struct ha_err *err);
/* Reads and checks both files (format, version, marker match, every
 * section valid, files it names openable). TAP fds are left at -1. */
int fcsim_snapshot_read(const char *snapshot_path, const char *mem_path, struct fcsim_config *ret,
                        struct ha_err *err);

#endif
