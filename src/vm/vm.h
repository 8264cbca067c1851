/*
 * vm.h - a Firecracker microVM owned by a sandbox record: the one-call
 * façade over launch.h (process), api.h (REST) and watcher.h (exits).
 *
 * Lifetime rule (the bug this project exists to fix): the VMM runs in its own
 * session and process group and is owned by whoever holds the vm handle. No
 * function here kills it because a request, a thread or a deadline ended;
 * only vm_stop() (and vm_snapshot(), which stops it on purpose) does.
 * vm_free() releases the handle and leaves the process running, so the agent
 * can exit or restart and re-adopt it with vm_adopt(pid, starttime).
 *
 * Layout. Per VM, a host directory <run_dir>/<id>/ (0700) holds:
 *   api.sock      Firecracker API socket (--api-sock)
 *   vsock.sock    the vsock device's uds_path ("CONNECT <port>\n")
 *   console.log   the VMM's stdout+stderr (guest serial console, early errors)
 *   fc.log        Firecracker's logger output (PUT /logger)
 *   metrics.json  Firecracker's metrics (PUT /metrics), a JSON line a minute
 * The directory belongs to the driver: vm_stop() deletes it with everything
 * in it, so keep snapshots elsewhere. Every VMM also gets, in its private
 * mount namespace, a tmpfs on the shared directory <run_dir>/vmroot with
 * read-only "kernel" and read-write "rootfs" bind-mounted in. The VMM (and
 * so every snapshot) therefore sees the same kernel_image_path and
 * path_on_host for every VM, and the mounts vanish with the process. Socket
 * paths must fit 107 bytes (vsock: 96, leaving room for Firecracker's
 * "<uds_path>_<port>" listener names).
 *
 * Time bounds: waiting for the API socket is bounded by boot_timeout_ms and
 * every request by api_timeout_ms, so vm_start() returns within
 * boot_timeout_ms + 9 x api_timeout_ms whatever the VMM does; vm_stop()
 * within stop_timeout_ms + ~6 s (SIGKILL and reaping).
 *
 * Jailer mode (vm_config.jailer_bin): the jailer is executed instead, paths
 * given to the API are inside <chroot_base>/<exec>/<id>/root (/api.sock,
 * /vsock.sock, /fc.log, /kernel, /rootfs) and vm_vsock_path() returns the
 * host side. Snapshots are refused in jailer mode (-EOPNOTSUPP).
 *
 * Thread-safety: calls on one vm are serialised by an internal mutex; the
 * sandbox manager should still serialise its own transitions. The exit
 * callback runs on the watcher thread and vm_stop()/vm_free() wait for a
 * callback of the same vm in progress: so the callback must not call vm_*
 * functions on that vm other than the accessors (hand the cleanup to a
 * worker), and vm_stop()/vm_free() must not be called holding a lock the
 * callback takes.
 */
#ifndef HA_VM_VM_H
#define HA_VM_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "vm/proc.h"
#include "vm/watcher.h"

typedef struct vm vm;

#define VM_BOOT_ARGS_DEFAULT "console=ttyS0 reboot=k panic=1 pci=off"
#define VM_IFACE_ID "eth0"
#define VM_DRIVE_ID "rootfs"

/* Called once on the watcher thread when the VMM ends without vm_stop() or
 * vm_snapshot() having been asked: |ex| says how, |log_tail| holds the last
 * lines of fc.log and console.log ("fc.log: ...\nconsole: ..."), both valid
 * only during the call. The vm handle stays valid (state VM_STATE_EXITED)
 * until the owner calls vm_stop()/vm_free() from another thread. */
typedef void (*vm_exit_fn)(void *ctx, vm *v, const struct vm_exit *ex, const char *log_tail);

/* Host-wide settings (daemon flags). Strings are copied by vm_create(). */
struct vm_config {
        const char *firecracker_bin;    /* --firecracker-bin (or fcsim) */
        const char *kernel_path;        /* guest vmlinux */
        const char *run_dir;            /* e.g. /run/hostagent; short! */
        const char *jailer_bin;         /* NULL: no jailer */
        uid_t jailer_uid;
        gid_t jailer_gid;
        const char *chroot_base;        /* jailer --chroot-base-dir */
        const char *log_level;          /* Firecracker logger level; NULL: "Info" */
        unsigned api_timeout_ms;        /* per request; 0: 5000 */
        unsigned boot_timeout_ms;       /* API socket wait; 0: 5000 */
        unsigned stop_timeout_ms;       /* SendCtrlAltDel grace; 0: 2000 */
        vm_watcher *watcher;            /* NULL: exits are not watched */
};

/* One VM. Strings are copied. */
struct vm_spec {
        const char *id;                 /* [A-Za-z0-9-]{1,64}; names <run_dir>/<id> */
        const char *rootfs_path;        /* the sandbox's clone (rootfs_clone) */
        const char *netns_path;         /* /run/netns/<slot ns>; NULL: agent's netns */
        const char *tap_name;           /* TAP in that netns; NULL: no network */
        const char *guest_mac;          /* e.g. "06:00:ac:10:00:02"; NULL: Firecracker's */
        const char *boot_args;          /* NULL: VM_BOOT_ARGS_DEFAULT */
        const char *ip_arg;             /* appended, e.g. "ip=172.16.0.2::172.16.0.1:..."; may be NULL */
        unsigned vcpu_count;            /* 0: 1 */
        unsigned mem_size_mib;          /* 0: 128 */
        uint32_t guest_cid;             /* >= 3; 0: 3 */
        vm_exit_fn on_exit;             /* NULL: no callback */
        void *on_exit_ctx;
};

enum vm_state {
        VM_STATE_CREATED,       /* handle only, no process (vm_create) */
        VM_STATE_SPAWNED,       /* process and API up, not started (vm_spawn) */
        VM_STATE_RUNNING,
        VM_STATE_PAUSED,
        VM_STATE_SAVED,         /* snapshot written, process stopped */
        VM_STATE_EXITED,        /* process ended on its own */
        VM_STATE_STOPPED,       /* vm_stop done */
};

/* Builds a handle (paths computed and checked, nothing started). Returns 0,
 * -EINVAL (bad id / missing field), -ENAMETOOLONG (a socket path over the
 * limit), -ENOMEM. */
int vm_create(const struct vm_config *cfg, const struct vm_spec *spec, vm **ret,
              struct ha_err *err);

/* Launches the VMM, waits for its API socket, configures logger,
 * machine-config, boot-source, drive "rootfs", network interface "eth0",
 * vsock, then InstanceStart. |v| must be VM_STATE_CREATED (or STOPPED).
 * Returns 0 (VM_STATE_RUNNING) or:
 *   -ENOENT     kernel, rootfs, netns or VMM binary missing
 *   -ETIMEDOUT  the API socket did not appear within boot_timeout_ms, or a
 *               request timed out
 *   -ECHILD     the VMM exited during boot (|err|: exit code + log tail)
 *   -EINVAL     Firecracker refused a request (|err|: its fault_message)
 *   other       see api.h / launch.h
 * On failure nothing is left: no process, no socket, no directory. */
int vm_boot(vm *v, struct ha_err *err);

/* The same in three steps, for a caller that acquires them one by one (the
 * sandbox manager's backend hooks):
 *   vm_spawn           files, process, API socket; the VMM is watched from
 *                      here on. CREATED/STOPPED -> SPAWNED. On failure
 *                      nothing is left.
 *   vm_configure       logger .. vsock; |vcpu_count|/|mem_size_mib| override
 *                      the spec's when not 0. Stays SPAWNED; on failure the
 *                      process is left for vm_stop().
 *   vm_instance_start  InstanceStart. SPAWNED -> RUNNING; on failure the
 *                      process is left for vm_stop().
 * Errors as vm_boot(); -EBUSY when called in the wrong state. */
int vm_spawn(vm *v, struct ha_err *err);
int vm_configure(vm *v, unsigned vcpu_count, unsigned mem_size_mib, struct ha_err *err);
int vm_instance_start(vm *v, struct ha_err *err);

/* vm_create + vm_boot; on failure *ret is untouched and nothing is left. */
int vm_start(const struct vm_config *cfg, const struct vm_spec *spec, vm **ret,
             struct ha_err *err);

/* PATCH /vm Paused / Resumed. Returns 0 (idempotent), -EBUSY (no running
 * process), or the api.h mapping. */
int vm_pause(vm *v, struct ha_err *err);
int vm_resume(vm *v, struct ha_err *err);

/* Pauses if needed, PUT /snapshot/create (Full) to the two paths (host paths;
 * their directory must exist), then stops the process. VM_STATE_SAVED on
 * success. On a create failure the VM is resumed if this call paused it and
 * the error returned. -EOPNOTSUPP in jailer mode. */
int vm_snapshot(vm *v, const char *snapshot_path, const char *mem_path, struct ha_err *err);

/* Launches a fresh VMM, PUT /logger, PUT /metrics, PUT /snapshot/load (mem_backend File,
 * resume_vm true, network_overrides eth0 -> this VM's TAP, vsock_override ->
 * this VM's vsock path). |v| must be SAVED or CREATED (a handle rebuilt
 * after an agent restart). VM_STATE_RUNNING on success; on failure no
 * process is left and the state is unchanged. */
int vm_restore(vm *v, const char *snapshot_path, const char *mem_path, struct ha_err *err);

/* Stops the VMM: (Resumed if paused,) SendCtrlAltDel, up to stop_timeout_ms
 * for it to exit, then SIGKILL to its process group (and, for the fcsim
 * simulator, thaw + removal of its cgroups); then removes sockets, logs and
 * the run directory. No exit callback fires for it. Safe in any state and twice.
 * Returns 0, or -ETIMEDOUT when the process would not die (still recorded;
 * call again). */
int vm_stop(vm *v, struct ha_err *err);

/* Releases the handle. Does NOT stop the VMM (see the lifetime rule); call
 * vm_stop() first to destroy it. Not concurrently with another call on |v|.
 * NULL is a no-op. */
void vm_free(vm *v);

/* Re-attaches to a VMM that survived an agent restart: checks (pid,
 * starttime), opens a pidfd, reconnects to the API socket and reads the
 * state (GET /). |cfg| and |spec| must be the ones the VM was started with
 * (the paths are derived from run_dir and id), so persist the spec with
 * (pid, starttime). Returns 0, -ESRCH (that process is gone; clean up with
 * vm_create + vm_stop), -ECONNREFUSED/-ENOENT (API socket gone) or -errno.
 * An adopted VMM is not our child: its exit status is unknown (ex->known
 * false). */
int vm_adopt(const struct vm_config *cfg, const struct vm_spec *spec, pid_t pid,
             uint64_t starttime, vm **ret, struct ha_err *err);

/* Where the last successful vm_boot()/vm_restore() spent its time, for the
 * create-latency breakdown (microseconds). */
struct vm_boot_times {
        uint64_t spawn_us;      /* fork .. execve done (mount ns, binds, setns) */
        uint64_t socket_us;     /* execve .. API socket accepting */
        uint64_t config_us;     /* logger .. vsock (or logger + snapshot/load) */
        uint64_t start_us;      /* InstanceStart request (0 for a restore) */
};
void vm_get_boot_times(const vm *v, struct vm_boot_times *ret);

/* Accessors. Strings live as long as |v|. */
enum vm_state vm_get_state(const vm *v);
const char *vm_state_name(enum vm_state s);
const char *vm_vsock_path(const vm *v);         /* host path of the vsock uds */
const char *vm_api_sock_path(const vm *v);      /* host path */
const char *vm_dir(const vm *v);                /* <run_dir>/<id> */
const char *vm_id(const vm *v);
/* How the last process of |v| ended (after an exit, a stop or a snapshot);
 * false when none has ended yet. */
bool vm_last_exit(const vm *v, struct vm_exit *ret);
pid_t vm_pid(const vm *v);                      /* 0 when no process */
uint64_t vm_starttime(const vm *v);             /* persist with the pid */
/* Last lines of fc.log and console.log, as given to vm_exit_fn. */
size_t vm_log_tail_text(const vm *v, char *buf, size_t size);

#endif
