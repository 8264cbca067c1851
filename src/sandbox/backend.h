/*
 * backend.h - what the sandbox manager needs from the resources it drives.
 *
 * A function-pointer table, one hook per step, in Create order:
 *   1. net_acquire      network slot (netns, TAP, addresses, egress rules)
 *   2. rootfs_clone     per-sandbox copy of the base image
 *   3. vmm_start        the VMM process (API socket up)
 *   4. vmm_configure    machine config, boot source, drive, NIC, vsock
 *   5. vmm_boot         InstanceStart
 *   6. vmm_wait_ready   guest agent answers on vsock
 * and the releases in reverse: vmm_stop, rootfs_remove, net_release.
 * The daemon fills it with an adapter over src/net, src/rootfs and src/vm;
 * tests fill it with a double that can fail any step.
 *
 * Contract for every hook: returns 0 or a negative errno and may fill |err|
 * with words for a person; gets the table's |ctx| first; may block (the
 * manager holds no lock while calling it); must be thread-safe across
 * different sandboxes (the manager never runs two hooks for the same
 * sandbox at once). An acquiring hook that fails leaves nothing behind (it
 * undoes its own partial work); the manager then releases the earlier steps.
 * Releases must be idempotent enough to be retried after a failure (the
 * manager keeps what a failed release still holds in a FAILED record, and
 * destroy, or the reaper a minute later, retries).
 *
 * VMM lifetime: the process must not die with the agent (own session and
 * process group). When it exits without being asked to, the backend calls
 * sbx_mgr_vmm_exited() (sbx.h) with its pid; that call never re-enters the
 * backend before it returns. Exits the backend caused itself (vmm_stop,
 * vmm_snapshot) are not reported. The backend watches every VMM it returns
 * from vmm_start, vmm_restore and vmm_adopt (e.g. a pidfd in its own thread).
 */
#ifndef HA_SBX_BACKEND_H
#define HA_SBX_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/sbx.h"

struct ha_err;

#define SBX_PATH_MAX 256     /* netns, rootfs and snapshot paths */
#define SBX_SOCK_MAX 108     /* sun_path */
#define SBX_IFNAME_MAX 16    /* IFNAMSIZ */
#define SBX_MAC_MAX 18       /* "02:fc:00:00:00:05" */

/* A network slot, filled by net_acquire; persisted with the record. */
struct sbx_net_lease {
        uint32_t slot;
        char host_ip[SBX_IP_MAX];        /* reachable from the host: Sandbox.ip */
        char netns_path[SBX_PATH_MAX];   /* /run/netns/... */
        char tap_name[SBX_IFNAME_MAX];   /* inside the netns */
        char guest_ip[SBX_IP_MAX];
        char guest_mac[SBX_MAC_MAX];
};

/* A VMM, filled by vmm_start / vmm_restore / vmm_adopt; persisted with the
 * record except |handle|. */
struct sbx_vmm {
        void *handle;                    /* backend's; not persisted */
        int pid;                         /* 0: no process (snapshotted) */
        uint64_t start_time;             /* /proc/<pid>/stat field 22 (see sbx_proc_start_time) */
        char api_sock[SBX_SOCK_MAX];
        char vsock_uds[SBX_SOCK_MAX];
};

/* Everything one sandbox holds. Recovery and cleanup_orphans see these. */
struct sbx_resources {
        char id[SBX_ID_MAX + 1];
        bool has_net;
        struct sbx_net_lease net;
        bool has_rootfs;
        char rootfs_path[SBX_PATH_MAX];
        bool has_vmm;                    /* a process or a snapshot to restore */
        struct sbx_vmm vmm;
};

/* What vmm_configure needs (borrowed for the call). */
struct sbx_vm_config {
        const char *id;
        const char *image;
        uint32_t vcpus;
        uint32_t memory_mib;
        const char *rootfs_path;
        const struct sbx_net_lease *net;
};

struct sbx_backend {
        void *ctx;

        int (*net_acquire)(void *ctx, const char *id, const struct sbx_egress *egress,
                           struct sbx_net_lease *ret_lease, struct ha_err *err);
        int (*net_release)(void *ctx, const char *id, const struct sbx_net_lease *lease,
                           struct ha_err *err);

        /* Writes the clone's path into ret_path (size SBX_PATH_MAX). */
        int (*rootfs_clone)(void *ctx, const char *id, const char *image, char *ret_path,
                            struct ha_err *err);
        int (*rootfs_remove)(void *ctx, const char *id, const char *path, struct ha_err *err);

        /* Starts the process inside the slot's netns; fills |ret_vmm|. */
        int (*vmm_start)(void *ctx, const char *id, const struct sbx_net_lease *net,
                         struct sbx_vmm *ret_vmm, struct ha_err *err);
        int (*vmm_configure)(void *ctx, struct sbx_vmm *vmm, const struct sbx_vm_config *cfg,
                             struct ha_err *err);
        int (*vmm_boot)(void *ctx, struct sbx_vmm *vmm, struct ha_err *err);
        /* Waits until the guest agent answers, |deadline_ms| monotonic
         * (ha_now_ms); returns -ETIMEDOUT past it and -ECANCELED as soon as
         * |cancel| (may be NULL) fires (poll it at least every 100 ms). */
        int (*vmm_wait_ready)(void *ctx, struct sbx_vmm *vmm, uint64_t deadline_ms,
                              const struct sbx_cancel *cancel, struct ha_err *err);
        int (*vmm_pause)(void *ctx, struct sbx_vmm *vmm, struct ha_err *err);
        int (*vmm_resume)(void *ctx, struct sbx_vmm *vmm, struct ha_err *err);
        /* Pauses, writes a snapshot where vmm_restore finds it (by id), stops
         * the process; on success vmm->pid is 0 and the handle stays valid. */
        int (*vmm_snapshot)(void *ctx, struct sbx_vmm *vmm, struct ha_err *err);
        /* Starts a process from the snapshot and resumes it; fills pid,
         * start_time and the sockets. */
        int (*vmm_restore)(void *ctx, const char *id, const struct sbx_net_lease *net,
                           const char *rootfs_path, struct sbx_vmm *vmm, struct ha_err *err);
        /* Kills the process if it still runs (pid + start time), removes its
         * sockets, work dir and snapshot, frees the handle. |vmm->handle| is
         * NULL for a VMM recovery found dead (or could not adopt): clean up
         * by |id| and the persisted fields. Must succeed when there is
         * nothing left to remove. */
        int (*vmm_stop)(void *ctx, const char *id, struct sbx_vmm *vmm, struct ha_err *err);
        /* Frees the handle only; the process keeps running (agent shutdown). */
        void (*vmm_forget)(void *ctx, struct sbx_vmm *vmm);

        /* Recovery. alive: pid runs and its start time matches. adopt: makes a
         * handle for a persisted VMM (running process, or snapshot files when
         * pid is 0); returns -ESRCH when it is not there after all. */
        bool (*vmm_alive)(void *ctx, int pid, uint64_t start_time);
        int (*vmm_adopt)(void *ctx, const struct sbx_resources *res, struct sbx_vmm *vmm,
                         struct ha_err *err);
        /* Optional (NULL: never asked). Right after a successful vmm_adopt:
         * 1 when the VMM is paused now, 0 when running, -errno when unknown.
         * Recovery corrects a record whose pause or resume was interrupted
         * by a crash between the VMM call and the store write. */
        int (*vmm_paused)(void *ctx, const struct sbx_vmm *vmm);
        /* Removes every VMM process, netns/TAP/slot, rootfs clone, mount and
         * socket under the run dir that none of |live| (adopted records, and
         * FAILED records still holding resources) owns. A VMM process is
         * owned only when its id, pid and start time all match a live entry:
         * one for a live id with another pid (a start or snapshot restore
         * whose record was not written before a crash; vmm.pid is 0 for a
         * snapshotted sandbox) is an orphan too. Called once per recovery,
         * after every record was reconciled. */
        int (*cleanup_orphans)(void *ctx, const struct sbx_resources *live, size_t n_live,
                               struct ha_err *err);
};

/* Helpers for backends (proc.c). Reads field 22 of /proc/<pid>/stat.
 * Returns 0, -ESRCH (no such process), -EIO (unparsable). */
int sbx_proc_start_time(int pid, uint64_t *ret_start_time);
/* True when |pid| runs, is not a zombie, and started at |start_time|. */
bool sbx_proc_alive(int pid, uint64_t start_time);

#endif
