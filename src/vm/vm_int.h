/*
 * vm_int.h - the body of struct vm, shared by vm.c, vmm.c, boot.c and
 * control.c only.
 *
 * Two locks per vm:
 *   op_lock  serialises operations (boot, pause, snapshot, stop...) and is
 *            held across their blocking calls;
 *   lock     guards the fields the watcher thread touches (state, proc,
 *            last_exit) and is only ever held briefly.
 * The watcher's fire function takes only |lock|; operations detach the
 * watcher (which may wait for a fire in progress) while holding op_lock but
 * not |lock|, so the two can never wait on each other.
 */
#ifndef HA_VM_VM_INT_H
#define HA_VM_VM_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vm/api.h"
#include "vm/launch.h"
#include "vm/proc.h"
#include "vm/vm.h"
#include "vm/watcher.h"

struct vm {
        pthread_mutex_t op_lock;
        pthread_mutex_t lock;
        enum vm_state state;            /* guarded_by: lock */
        struct vm_proc proc;            /* guarded_by: lock (written with the watcher detached) */
        bool has_proc;                  /* guarded_by: lock */
        bool adopted;                   /* guarded_by: lock */
        struct vm_exit last_exit;       /* guarded_by: lock */
        atomic_bool expect_exit;        /* set by stop/snapshot before they end it */

        vm_api *api;                    /* op_lock */
        struct vm_boot_times times;     /* guarded_by: lock */
        struct vm_boot_times pending;   /* op_lock: being measured */
        uint64_t watch_key;             /* op_lock; 0: not watched */

        /* immutable after vm_create() */
        char id[VM_ID_MAX + 1];
        char *vmm_bin, *kernel_src, *rootfs_src, *netns_path, *tap, *mac, *boot_args;
        char *jailer_bin, *chroot_base, *log_level;
        uid_t uid;
        gid_t gid;
        unsigned api_timeout_ms, boot_timeout_ms, stop_timeout_ms;
        unsigned vcpus, mem_mib;
        uint32_t cid;
        vm_watcher *watcher;
        vm_exit_fn on_exit;
        void *on_exit_ctx;

        /* The paths below point into |paths|, one allocation sized to
         * them (vm.c: compute_paths): PATH_MAX arrays cost 64 KiB per VM. */
        char *paths;
        const char *run_dir;
        const char *dir;                /* <run_dir>/<id> */
        const char *mnt_dir;            /* tmpfs mount point (plain mode) */
        const char *jail_dir;           /* <chroot_base>/<exec>/<id> (jailer mode) */
        const char *jail_root;          /* jail_dir/root */
        /* host side */
        const char *api_sock;
        const char *vsock;
        const char *console_log;
        const char *fc_log;
        const char *metrics;
        /* as the VMM sees them */
        const char *api_sock_vmm;
        const char *vsock_vmm;
        const char *fc_log_vmm;
        const char *metrics_vmm;
        const char *kernel_vmm;
        const char *rootfs_vmm;
};

/* Ends an operation: the API client goes idle, then op_lock is released. */
static inline void vm_op_end(vm *v)
{
        vm_api_idle(v->api);
        pthread_mutex_unlock(&v->op_lock);
}

/* Every path field of struct vm, for compute_paths. */
#define VM_PATH_FIELDS(X) X(run_dir) X(dir) X(mnt_dir) X(jail_dir) X(jail_root) X(api_sock) X(vsock) \
        X(console_log) X(fc_log) X(metrics) X(api_sock_vmm) X(vsock_vmm) X(fc_log_vmm) X(metrics_vmm) \
        X(kernel_vmm) X(rootfs_vmm)

/* vm.c */
/* |a| then |b| / <dir>/<name> into |buf|; -ENAMETOOLONG when too long. */
int vm_path_cat(char *buf, size_t size, const char *a, const char *b);
int vm_path_join(char *buf, size_t size, const char *dir, const char *name);
/* Checks kernel and rootfs, creates the directories, removes stale sockets,
 * creates an empty fc.log. Returns 0 or -errno with |err|. */
int vm_files_prepare(vm *v, struct ha_err *err);
/* Deletes the sockets, logs, the run directory (and the jail). */
void vm_files_remove(vm *v);
void vm_state_set(vm *v, enum vm_state s);
/* RUNNING, with the timings measured on the way (pending -> times). */
void vm_state_commit_running(vm *v);

/* vmm.c; all with op_lock held */
/* Launches the VMM and waits for its API socket; opens the API client.
 * On failure no process is left. */
int vm_vmm_spawn(vm *v, struct ha_err *err);
/* Registers the process with the watcher (when the vm has one). */
int vm_vmm_watch(vm *v, struct ha_err *err);
/* Cancels the registration; waits for a fire in progress. */
void vm_vmm_unwatch(vm *v);
/* SIGKILLs the process group, reaps, removes the simulator's cgroups and
 * forgets the process. The watcher must be detached. 0 or -ETIMEDOUT. */
int vm_vmm_kill(vm *v);
/* After a failed request |r|: when the VMM has died, returns -ECHILD with
 * its exit and log tail in |err| (and stops watching it); else |r|. */
int vm_vmm_explain(vm *v, int r, struct ha_err *err);
/* Undoes a failed start: kill, API client, files. */
void vm_vmm_abort(vm *v);
/* Ends the process on purpose (no exit callback); removes the sockets. */
int vm_vmm_end(vm *v);

#endif
