/*
 * launch.h - starting a VMM process (Firecracker, its jailer, or the fcsim
 * simulator) the way a sandbox needs it, and waiting for its API socket.
 *
 * The child is started with clone(CLONE_VM | CLONE_VFORK) (fork() in
 * sanitizer builds), with no shell, and makes only async-signal-safe calls
 * before execve (the daemon is multithreaded; malloc or a logger lock held by
 * another thread at that moment would deadlock it). Everything that allocates
 * (argv, envp, paths, the log fd, the netns fd, the error pipe) is prepared
 * before clone(). In the child, in order:
 *   signals reset (dispositions and mask), setsid() (new session and process
 *   group: signals to the agent's group or a terminal hang-up never reach the
 *   VMM), unshare(CLONE_NEWNS), "/" made rprivate (nothing leaks back to the
 *   host), a tmpfs at |tmpfs_dir|, the bind mounts (|binds|, e.g. kernel
 *   read-only and rootfs), setns() into the slot's network namespace,
 *   stdin from /dev/null, stdout+stderr to |console_log|, every other fd
 *   marked close-on-exec, execve with a clean environment.
 * A failing step is reported to the parent through a close-on-exec pipe
 * (step + errno) so the caller gets "bind mount /x: No such file" rather
 * than an unexplained exit.
 *
 * The mounts live in the child's private mount namespace: they are visible
 * to the VMM only and disappear with it, however it ends.
 */
#ifndef HA_VM_LAUNCH_H
#define HA_VM_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "vm/proc.h"

/* sizeof(sockaddr_un.sun_path) - 1: longer socket paths cannot be bound or
 * connected at all (Firecracker would just never become ready). */
#define VM_SUN_PATH_MAX 107
#define VM_BINDS_MAX 4
/* Firecracker's and the jailer's --id rule: 1-64 of [A-Za-z0-9-]. */
#define VM_ID_MAX 64
#define VM_ARGV_MAX 24

struct vm_bind {
        const char *src;        /* host path, must exist */
        const char *dst;        /* VMM-visible path; created as an empty file */
        bool read_only;
};

struct vm_launch {
        const char *vmm_bin;      /* firecracker or fcsim; absolute path */
        const char *id;           /* --id */
        const char *api_sock;     /* --api-sock as the VMM sees it */
        const char *api_sock_host;/* the same socket from the host (= api_sock unless jailed) */
        const char *console_log;  /* stdout+stderr of the VMM; created, truncated, 0600 */
        const char *netns_path;   /* e.g. /run/netns/ha-slot-3; NULL: the agent's netns */
        const char *tmpfs_dir;    /* mount a private tmpfs here first; NULL: none */
        struct vm_bind binds[VM_BINDS_MAX];
        unsigned n_binds;
        /* Jailer mode when jailer_bin is set: the jailer is executed with
         * --exec-file vmm_bin and joins netns_path itself; api_sock is then
         * the in-jail path and api_sock_host its host location. */
        const char *jailer_bin;
        uid_t uid;
        gid_t gid;
        const char *chroot_base;
        /* Tests only: the child fails step |inject_step| (1-based, in the
         * order listed at the top: 1 setsid, 2 unshare, 3 rprivate, 4 tmpfs,
         * 5 bind target, 6 bind, 7 read-only remount, 8 setns, 9 stdio,
         * 10 close_range, 11 execve) with |inject_errno|. 0: never. */
        int inject_step;
        int inject_errno;
};

/* Number of child steps inject_step can name. */
#define VM_LAUNCH_STEPS 11

/* A running VMM. The pidfd is O_CLOEXEC and owned by whoever holds this. */
struct vm_proc {
        pid_t pid;              /* also its session id and process group id */
        int pidfd;
        uint64_t starttime;     /* field 22 of /proc/<pid>/stat */
};

/* An argv built without allocation: pointers into |l|'s strings and |num|. */
struct vm_argv {
        char *argv[VM_ARGV_MAX];
        char num[2][16];
};

/* True for 1-64 characters of [A-Za-z0-9-] (Firecracker's and the jailer's
 * rule for --id). */
bool vm_id_is_valid(const char *id);

/* Returns 0, or -ENAMETOOLONG with a message when |path| (a Unix socket path)
 * exceeds VM_SUN_PATH_MAX - |reserve| bytes (|reserve| leaves room for
 * suffixes such as Firecracker's "<uds_path>_<port>"). */
int vm_sock_path_check(const char *what, const char *path, size_t reserve, struct ha_err *err);

/* Fills |ret| with the argv of |l|:
 *   plain:  <vmm_bin> --api-sock <api_sock> --id <id>
 *   jailer: <jailer_bin> --id <id> --exec-file <vmm_bin> --uid <uid> --gid <gid>
 *           --chroot-base-dir <chroot_base> [--netns <netns_path>]
 *           -- --api-sock <api_sock>
 * Returns 0 or -EINVAL (missing field; |err| says which). */
int vm_launch_argv(const struct vm_launch *l, struct vm_argv *ret, struct ha_err *err);

/* The jail root of |l|: <chroot_base>/<basename(vmm_bin)>/<id>/root.
 * Returns 0 or -ENAMETOOLONG. */
int vm_jail_root(const struct vm_launch *l, char *buf, size_t size);

/* Starts the VMM. On success fills |ret| (the process runs in its own
 * session; nothing here will ever kill it). Returns 0 or:
 *   -EINVAL        bad id / missing field
 *   -ENAMETOOLONG  api socket path over VM_SUN_PATH_MAX
 *   -ENOENT        a bind source, the netns, or the binary is missing
 *   other -errno   of the failing step (|err|: "setns /run/netns/x: ...")
 * The stale api socket file is removed first. On failure no process is left
 * (a child that failed before exec has been reaped). */
int vm_launch_spawn(const struct vm_launch *l, struct vm_proc *ret, struct ha_err *err);

/* Waits until |api_sock_host| accepts connections, watching the process
 * meanwhile. Returns 0, -ETIMEDOUT (|timeout_ms| passed; the process is left
 * running, the caller decides), -ECHILD (the process ended first: |ret_exit|
 * filled and reaped, |err| says how it ended plus the tail of |log_path|).
 * |log_path| may be NULL. */
int vm_launch_wait_ready(const struct vm_proc *p, const char *api_sock_host, unsigned timeout_ms,
                         const char *log_path, struct vm_exit *ret_exit, struct ha_err *err);

/* SIGKILLs the process group of |p| (the VMM and anything it started),
 * waits up to |timeout_ms| for the leader to end and reaps it (when it is our
 * child). Closes the pidfd. Returns 0, or -ETIMEDOUT (still not gone; a
 * stuck D state). */
int vm_proc_kill(struct vm_proc *p, unsigned timeout_ms, struct vm_exit *ret_exit);

#endif
