/*
 * vm.c - see vm.h. Two locks per vm:
 *   op_lock  serialises operations (boot, pause, snapshot, stop...) and is
 *            held across their blocking calls;
 *   lock     guards the fields the watcher thread touches (state, proc,
 *            last_exit) and is only ever held briefly.
 * The watcher's fire function takes only |lock|; operations detach the
 * watcher (which may wait for a fire in progress) while holding op_lock but
 * not |lock|, so the two can never wait on each other.
 */
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "vm/api.h"
#include "vm/launch.h"
#include "vm/simcg.h"

#define BOOT_TIMEOUT_DEFAULT_MS 5000
#define STOP_TIMEOUT_DEFAULT_MS 2000
/* After SIGKILL, how long the process may take to disappear (exit_mmap of a
 * big guest can take a while). */
#define KILL_WAIT_MS 5000
/* Budget for the courtesy SendCtrlAltDel request during stop. */
#define CAD_REQUEST_TIMEOUT_MS 500
/* Linux x86 COMMAND_LINE_SIZE. */
#define BOOT_ARGS_MAX 2048
/* Room kept for Firecracker's "<uds_path>_<port>" guest->host listeners. */
#define VSOCK_PORT_SUFFIX_MAX 11
#define TAIL_LINES 3

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

        char run_dir[PATH_MAX];
        char dir[PATH_MAX];             /* <run_dir>/<id> */
        char mnt_dir[PATH_MAX];         /* tmpfs mount point (plain mode) */
        char jail_dir[PATH_MAX];        /* <chroot_base>/<exec>/<id> (jailer mode) */
        char jail_root[PATH_MAX];       /* jail_dir/root */
        /* host side */
        char api_sock[PATH_MAX];
        char vsock[PATH_MAX];
        char console_log[PATH_MAX];
        char fc_log[PATH_MAX];
        char metrics[PATH_MAX];
        /* as the VMM sees them */
        char api_sock_vmm[PATH_MAX];
        char vsock_vmm[PATH_MAX];
        char fc_log_vmm[PATH_MAX];
        char metrics_vmm[PATH_MAX];
        char kernel_vmm[PATH_MAX];
        char rootfs_vmm[PATH_MAX];
};

/* |a| followed by |b| into |buf|; -ENAMETOOLONG when it does not fit. */
static int cat(char *buf, size_t size, const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        if (la + lb >= size)
                return -ENAMETOOLONG;
        memmove(buf, a, la);
        memcpy(buf + la, b, lb + 1);
        return 0;
}

/* <dir>/<name> into |buf|. */
static int join(char *buf, size_t size, const char *dir, const char *name)
{
        size_t ld = strlen(dir), ln = strlen(name);
        if (ld + 1 + ln >= size)
                return -ENAMETOOLONG;
        memmove(buf, dir, ld);
        buf[ld] = '/';
        memcpy(buf + ld + 1, name, ln + 1);
        return 0;
}

static int dup_opt(char **dst, const char *src)
{
        if (!src)
                return 0;
        *dst = strdup(src);
        return *dst ? 0 : -ENOMEM;
}

void vm_free(vm *v)
{
        if (!v)
                return;
        if (v->watcher && v->watch_key)
                vm_watcher_del(v->watcher, v->watch_key);
        if (v->has_proc && v->proc.pidfd >= 0)
                close(v->proc.pidfd);
        vm_api_free(v->api);
        free(v->vmm_bin);
        free(v->kernel_src);
        free(v->rootfs_src);
        free(v->netns_path);
        free(v->tap);
        free(v->mac);
        free(v->boot_args);
        free(v->jailer_bin);
        free(v->chroot_base);
        free(v->log_level);
        pthread_mutex_destroy(&v->lock);
        pthread_mutex_destroy(&v->op_lock);
        free(v);
}

static int compute_paths(vm *v, struct ha_err *err)
{
        int r = 0;
        r |= join(v->dir, sizeof v->dir, v->run_dir, v->id);
        r |= join(v->console_log, sizeof v->console_log, v->dir, "console.log");
        if (r)
                return ha_err_set(err, -ENAMETOOLONG, "run directory path too long");
        if (!v->jailer_bin) {
                r |= join(v->mnt_dir, sizeof v->mnt_dir, v->run_dir, "vmroot");
                r |= join(v->kernel_vmm, sizeof v->kernel_vmm, v->mnt_dir, "kernel");
                r |= join(v->rootfs_vmm, sizeof v->rootfs_vmm, v->mnt_dir, "rootfs");
                r |= join(v->fc_log, sizeof v->fc_log, v->dir, "fc.log");
                r |= cat(v->fc_log_vmm, sizeof v->fc_log_vmm, v->fc_log, "");
                r |= join(v->metrics, sizeof v->metrics, v->dir, "metrics.json");
                r |= cat(v->metrics_vmm, sizeof v->metrics_vmm, v->metrics, "");
                if (r)
                        return ha_err_set(err, -ENAMETOOLONG, "run directory path too long");
                if (join(v->api_sock, sizeof v->api_sock, v->dir, "api.sock") < 0 ||
                    join(v->vsock, sizeof v->vsock, v->dir, "vsock.sock") < 0)
                        return ha_err_set(err, -ENAMETOOLONG, "run directory path too long");
                memcpy(v->api_sock_vmm, v->api_sock, sizeof v->api_sock);
                memcpy(v->vsock_vmm, v->vsock, sizeof v->vsock);
        } else {
                struct vm_launch l = { .vmm_bin = v->vmm_bin, .id = v->id,
                                       .chroot_base = v->chroot_base };
                if (vm_jail_root(&l, v->jail_root, sizeof v->jail_root) < 0)
                        return ha_err_set(err, -ENAMETOOLONG, "jail path too long");
                size_t n = strlen(v->jail_root) - strlen("/root");
                memcpy(v->jail_dir, v->jail_root, n);
                v->jail_dir[n] = '\0';
                if (join(v->fc_log, sizeof v->fc_log, v->jail_root, "fc.log") < 0 ||
                    join(v->metrics, sizeof v->metrics, v->jail_root, "metrics.json") < 0)
                        return ha_err_set(err, -ENAMETOOLONG, "jail path too long");
                if (join(v->api_sock, sizeof v->api_sock, v->jail_root, "api.sock") < 0 ||
                    join(v->vsock, sizeof v->vsock, v->jail_root, "vsock.sock") < 0)
                        return ha_err_set(err, -ENAMETOOLONG, "jail path too long");
                snprintf(v->api_sock_vmm, sizeof v->api_sock_vmm, "%s", "/api.sock");
                snprintf(v->vsock_vmm, sizeof v->vsock_vmm, "%s", "/vsock.sock");
                snprintf(v->fc_log_vmm, sizeof v->fc_log_vmm, "%s", "/fc.log");
                snprintf(v->metrics_vmm, sizeof v->metrics_vmm, "%s", "/metrics.json");
                snprintf(v->kernel_vmm, sizeof v->kernel_vmm, "%s", "/kernel");
                snprintf(v->rootfs_vmm, sizeof v->rootfs_vmm, "%s", "/rootfs");
        }
        r = vm_sock_path_check("API socket", v->api_sock, 0, err);
        if (r == 0)
                r = vm_sock_path_check("vsock socket", v->vsock, VSOCK_PORT_SUFFIX_MAX, err);
        return r;
}

int vm_create(const struct vm_config *cfg, const struct vm_spec *spec, vm **ret,
              struct ha_err *err)
{
        int r;
        if (!vm_id_is_valid(spec->id))
                return ha_err_set(err, -EINVAL, "invalid VM id: want 1-%d of [A-Za-z0-9-]",
                                  VM_ID_MAX);
        if (!cfg->firecracker_bin || !cfg->kernel_path || !cfg->run_dir || !spec->rootfs_path)
                return ha_err_set(err, -EINVAL,
                                  "VM config needs firecracker_bin, kernel_path, run_dir and "
                                  "a rootfs");
        if (cfg->jailer_bin && !cfg->chroot_base)
                return ha_err_set(err, -EINVAL, "jailer mode needs chroot_base");
        if (spec->guest_cid != 0 && spec->guest_cid < 3)
                return ha_err_set(err, -EINVAL, "vsock guest_cid %u: must be >= 3",
                                  spec->guest_cid);
        if (spec->vcpu_count > 32)
                return ha_err_set(err, -EINVAL, "vcpu_count %u over 32", spec->vcpu_count);

        vm *v = calloc(1, sizeof *v);
        if (!v)
                return -ENOMEM;
        pthread_mutex_init(&v->op_lock, NULL);
        pthread_mutex_init(&v->lock, NULL);
        v->proc.pidfd = -1;
        v->state = VM_STATE_CREATED;
        snprintf(v->id, sizeof v->id, "%s", spec->id);
        snprintf(v->run_dir, sizeof v->run_dir, "%s", cfg->run_dir);
        v->uid = cfg->jailer_uid;
        v->gid = cfg->jailer_gid;
        v->api_timeout_ms = cfg->api_timeout_ms ? cfg->api_timeout_ms : VM_API_TIMEOUT_DEFAULT_MS;
        v->boot_timeout_ms = cfg->boot_timeout_ms ? cfg->boot_timeout_ms : BOOT_TIMEOUT_DEFAULT_MS;
        v->stop_timeout_ms = cfg->stop_timeout_ms ? cfg->stop_timeout_ms : STOP_TIMEOUT_DEFAULT_MS;
        v->vcpus = spec->vcpu_count ? spec->vcpu_count : 1;
        v->mem_mib = spec->mem_size_mib ? spec->mem_size_mib : 128;
        v->cid = spec->guest_cid ? spec->guest_cid : 3;
        v->watcher = cfg->watcher;
        v->on_exit = spec->on_exit;
        v->on_exit_ctx = spec->on_exit_ctx;

        r = 0;
        r = r ?: dup_opt(&v->vmm_bin, cfg->firecracker_bin);
        r = r ?: dup_opt(&v->kernel_src, cfg->kernel_path);
        r = r ?: dup_opt(&v->rootfs_src, spec->rootfs_path);
        r = r ?: dup_opt(&v->netns_path, spec->netns_path);
        r = r ?: dup_opt(&v->tap, spec->tap_name);
        r = r ?: dup_opt(&v->mac, spec->guest_mac);
        r = r ?: dup_opt(&v->jailer_bin, cfg->jailer_bin);
        r = r ?: dup_opt(&v->chroot_base, cfg->chroot_base);
        r = r ?: dup_opt(&v->log_level, cfg->log_level ? cfg->log_level : "Info");
        if (r < 0)
                goto out_free;

        const char *base = spec->boot_args ? spec->boot_args : VM_BOOT_ARGS_DEFAULT;
        const char *ip = spec->ip_arg ? spec->ip_arg : "";
        size_t len = strlen(base) + 1 + strlen(ip);
        if (len > BOOT_ARGS_MAX) {
                r = ha_err_set(err, -EINVAL, "boot args of %zu bytes over %d", len, BOOT_ARGS_MAX);
                goto out_free;
        }
        v->boot_args = malloc(len + 1);
        if (!v->boot_args) {
                r = -ENOMEM;
                goto out_free;
        }
        snprintf(v->boot_args, len + 1, "%s%s%s", base, ip[0] ? " " : "", ip);

        r = compute_paths(v, err);
        if (r < 0)
                goto out_free;
        *ret = v;
        return 0;

out_free:
        if (r == -ENOMEM)
                ha_err_set(err, r, "out of memory");
        vm_free(v);
        return r;
}

/* ---- files ---- */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
        (void)sb;
        (void)flag;
        (void)ftw;
        remove(p);
        return 0;
}

static void remove_files(vm *v)
{
        unlink(v->api_sock);
        unlink(v->vsock);
        unlink(v->console_log);
        unlink(v->fc_log);
        unlink(v->metrics);
        /* The directory is the driver's: anything else in it (files the
         * VMM wrote next to its socket) goes too. Never crosses mounts. */
        nftw(v->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        if (v->jailer_bin && v->jail_dir[0])
                nftw(v->jail_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static int mkdir_ok(const char *p, mode_t mode)
{
        return (mkdir(p, mode) < 0 && errno != EEXIST) ? -errno : 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s", path);
        for (char *p = tmp + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                int r = mkdir_ok(tmp, 0755);
                *p = '/';
                if (r < 0)
                        return r;
        }
        return mkdir_ok(tmp, mode);
}

/* Directories, no stale sockets (Firecracker will not bind over them), an
 * empty logger file (Firecracker opens it without O_CREAT on some paths). */
static int prepare_files(vm *v, struct ha_err *err)
{
        int r;
        if (access(v->kernel_src, R_OK) < 0) {
                r = -errno;
                return ha_err_set(err, r, "kernel image %s: %s", v->kernel_src, strerror(-r));
        }
        if (access(v->rootfs_src, R_OK | W_OK) < 0) {
                r = -errno;
                return ha_err_set(err, r, "rootfs %s: %s", v->rootfs_src, strerror(-r));
        }
        r = mkdir_p(v->run_dir, 0755);
        if (r == 0)
                r = mkdir_ok(v->dir, 0700);
        if (r == 0 && !v->jailer_bin)
                r = mkdir_ok(v->mnt_dir, 0755);
        if (r == 0 && v->jailer_bin) {
                r = mkdir_p(v->jail_root, 0700);
                if (r == 0 && chown(v->jail_root, v->uid, v->gid) < 0)
                        r = -errno;
        }
        if (r < 0)
                return ha_err_set(err, r, "create VM directories under %s: %s", v->run_dir,
                                  strerror(-r));
        const char *stale[] = { v->api_sock, v->vsock, NULL };
        for (int i = 0; stale[i]; i++)
                if (unlink(stale[i]) < 0 && errno != ENOENT) {
                        r = -errno;
                        return ha_err_set(err, r, "remove stale %s: %s", stale[i], strerror(-r));
                }
        int fd = open(v->fc_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                r = -errno;
                return ha_err_set(err, r, "create %s: %s", v->fc_log, strerror(-r));
        }
        if (v->jailer_bin && fchown(fd, v->uid, v->gid) < 0) {
                r = -errno;
                close(fd);
                return ha_err_set(err, r, "chown %s: %s", v->fc_log, strerror(-r));
        }
        close(fd);
        return 0;
}

size_t vm_log_tail_text(const vm *v, char *buf, size_t size)
{
        char a[1024], b[1024];
        vm_log_tail(v->fc_log, TAIL_LINES, a, sizeof a);
        vm_log_tail(v->console_log, TAIL_LINES, b, sizeof b);
        int n = snprintf(buf, size, "fc.log: %s\nconsole: %s", a[0] ? a : "(empty)",
                         b[0] ? b : "(empty)");
        if (n < 0)
                return 0;
        return (size_t)n < size ? (size_t)n : size - 1;
}

/* ---- process ---- */

static void fire(void *arg)
{
        vm *v = arg;
        struct vm_exit ex;
        pthread_mutex_lock(&v->lock);
        if (!v->has_proc) {
                pthread_mutex_unlock(&v->lock);
                return;
        }
        if (vm_proc_reap(v->proc.pidfd, v->proc.pid, &ex) < 0)
                ex = (struct vm_exit){ .pid = v->proc.pid, .known = false, .code = -1 };
        v->last_exit = ex;
        bool expected = atomic_load(&v->expect_exit);
        if (!expected)
                v->state = VM_STATE_EXITED;
        pthread_mutex_unlock(&v->lock);
        if (expected)
                return;

        char tail[2200], how[96];
        vm_log_tail_text(v, tail, sizeof tail);
        vm_exit_describe(&ex, how, sizeof how);
        ha_log_warn("vm.exited", "vm=%s pid=%ld how=\"%s\"", v->id, (long)ex.pid, how);
        if (v->on_exit)
                v->on_exit(v->on_exit_ctx, v, &ex, tail);
}

static int watch(vm *v, struct ha_err *err)
{
        if (!v->watcher)
                return 0;
        int r = vm_watcher_add(v->watcher, v->proc.pidfd, fire, v, &v->watch_key);
        if (r < 0)
                return ha_err_set(err, r, "watch VMM pid %ld: %s", (long)v->proc.pid,
                                  strerror(-r));
        return 0;
}

static void unwatch(vm *v)
{
        if (v->watcher && v->watch_key)
                vm_watcher_del(v->watcher, v->watch_key);
        v->watch_key = 0;
}

/* Ends the process (SIGKILL to its group) and forgets it. The watcher must
 * be detached. Returns 0 or -ETIMEDOUT. */
static int kill_proc(vm *v)
{
        if (!v->has_proc)
                return 0;
        struct vm_exit ex;
        pid_t pid = v->proc.pid;
        vm_simcg_thaw(v->id, pid);
        int r = vm_proc_kill(&v->proc, KILL_WAIT_MS, &ex);
        if (r < 0)
                return r;
        vm_simcg_remove(v->id, pid);
        pthread_mutex_lock(&v->lock);
        v->has_proc = false;
        v->proc.pid = 0;
        v->last_exit = ex;
        pthread_mutex_unlock(&v->lock);
        return 0;
}

static void set_state(vm *v, enum vm_state s)
{
        pthread_mutex_lock(&v->lock);
        v->state = s;
        pthread_mutex_unlock(&v->lock);
}

/* RUNNING, with the timings measured on the way. */
static void commit_running(vm *v)
{
        pthread_mutex_lock(&v->lock);
        v->state = VM_STATE_RUNNING;
        v->times = v->pending;
        pthread_mutex_unlock(&v->lock);
}

void vm_get_boot_times(const vm *v, struct vm_boot_times *ret)
{
        vm *m = (vm *)v;
        pthread_mutex_lock(&m->lock);
        *ret = m->times;
        pthread_mutex_unlock(&m->lock);
}

/* After an API error: if the VMM has died, say that instead (with its exit
 * and log), since "connection reset" would hide the real cause. */
static int explain_api_failure(vm *v, int r, struct ha_err *err)
{
        if (!v->has_proc || !vm_proc_wait(v->proc.pidfd, 50))
                return r;
        /* It died: this error reports it, so stop watching (the watcher
         * may already have reaped it and kept the status). */
        unwatch(v);
        struct vm_exit ex;
        char how[96], tail[2200];
        pthread_mutex_lock(&v->lock);
        if (v->state == VM_STATE_EXITED) {
                ex = v->last_exit;
        } else if (vm_proc_reap(v->proc.pidfd, v->proc.pid, &ex) < 0) {
                ex = (struct vm_exit){ .pid = v->proc.pid, .code = -1 };
        }
        v->last_exit = ex;
        /* A booted VM that died under pause/snapshot is now EXITED; a
         * boot or restore in progress keeps its state for its own undo. */
        if (v->state == VM_STATE_RUNNING || v->state == VM_STATE_PAUSED)
                v->state = VM_STATE_EXITED;
        pthread_mutex_unlock(&v->lock);
        vm_exit_describe(&ex, how, sizeof how);
        vm_log_tail_text(v, tail, sizeof tail);
        for (char *c = tail; *c; c++)
                if (*c == '\n')
                        *c = ' ';
        char prev[HA_ERR_MSG_MAX];
        snprintf(prev, sizeof prev, "%s", err ? err->msg : "");
        return ha_err_set(err, -ECHILD, "VMM %s (%s); %s", how, prev, tail);
}

/* Launches the VMM and waits for its API socket; on failure no process. */
static int spawn(vm *v, struct ha_err *err)
{
        struct vm_launch l = {
                .vmm_bin = v->vmm_bin,
                .id = v->id,
                .api_sock = v->api_sock_vmm,
                .api_sock_host = v->api_sock,
                .console_log = v->console_log,
                .netns_path = v->netns_path,
                .tmpfs_dir = v->jailer_bin ? NULL : v->mnt_dir,
                .binds = { { v->kernel_src, v->kernel_vmm, true },
                           { v->rootfs_src, v->rootfs_vmm, false } },
                .n_binds = 2,
                .jailer_bin = v->jailer_bin,
                .uid = v->uid,
                .gid = v->gid,
                .chroot_base = v->chroot_base,
        };
        char kdst[PATH_MAX], rdst[PATH_MAX];
        if (v->jailer_bin) {
                /* The jail's view: bind targets inside its root. */
                if (cat(kdst, sizeof kdst, v->jail_root, v->kernel_vmm) < 0 ||
                    cat(rdst, sizeof rdst, v->jail_root, v->rootfs_vmm) < 0)
                        return ha_err_set(err, -ENAMETOOLONG, "jail path too long");
                l.binds[0].dst = kdst;
                l.binds[1].dst = rdst;
        }
        struct vm_proc p;
        uint64_t t0 = ha_now_ns();
        int r = vm_launch_spawn(&l, &p, err);
        if (r < 0)
                return r;
        uint64_t t1 = ha_now_ns();
        v->pending.spawn_us = (t1 - t0) / 1000;
        pthread_mutex_lock(&v->lock);
        v->proc = p;
        v->has_proc = true;
        v->adopted = false;
        pthread_mutex_unlock(&v->lock);
        ha_log_info("vm.spawned", "vm=%s pid=%ld", v->id, (long)p.pid);

        struct vm_exit ex;
        r = vm_launch_wait_ready(&v->proc, v->api_sock, v->boot_timeout_ms, v->console_log, &ex,
                                 err);
        v->pending.socket_us = (ha_now_ns() - t1) / 1000;
        if (r == -ECHILD) {
                close(v->proc.pidfd);
                pthread_mutex_lock(&v->lock);
                v->has_proc = false;
                v->proc.pidfd = -1;
                v->last_exit = ex;
                pthread_mutex_unlock(&v->lock);
                return r;
        }
        if (r == 0) {
                vm_api_free(v->api);
                v->api = NULL;
                r = vm_api_new(v->api_sock, v->api_timeout_ms, &v->api);
                if (r < 0)
                        ha_err_set(err, r, "API client: %s", strerror(-r));
        }
        if (r < 0)
                kill_proc(v);
        return r;
}

static void abort_start(vm *v)
{
        kill_proc(v);
        vm_api_free(v->api);
        v->api = NULL;
        remove_files(v);
}

/* logger .. vsock. */
static int do_configure(vm *v, struct ha_err *err)
{
        int r;
        struct vm_machine_cfg m = { .vcpu_count = v->vcpus, .mem_size_mib = v->mem_mib };
        uint64_t t0 = ha_now_ns();
        r = vm_api_put_logger(v->api, v->fc_log_vmm, v->log_level, err);
        if (r == 0)
                r = vm_api_put_metrics(v->api, v->metrics_vmm, err);
        if (r == 0)
                r = vm_api_put_machine_config(v->api, &m, err);
        if (r == 0)
                r = vm_api_put_boot_source(v->api, v->kernel_vmm, v->boot_args, err);
        if (r == 0)
                r = vm_api_put_drive(v->api, VM_DRIVE_ID, v->rootfs_vmm, true, false, err);
        if (r == 0 && v->tap)
                r = vm_api_put_network_interface(v->api, VM_IFACE_ID, v->tap, v->mac, err);
        if (r == 0)
                r = vm_api_put_vsock(v->api, v->cid, v->vsock_vmm, err);
        v->pending.config_us = (ha_now_ns() - t0) / 1000;
        return r < 0 ? explain_api_failure(v, r, err) : 0;
}

static int do_start(vm *v, struct ha_err *err)
{
        uint64_t t0 = ha_now_ns();
        int r = vm_api_action(v->api, "InstanceStart", err);
        v->pending.start_us = (ha_now_ns() - t0) / 1000;
        return r < 0 ? explain_api_failure(v, r, err) : 0;
}

/* Files, process, API socket; on failure nothing is left. */
static int do_spawn(vm *v, struct ha_err *err)
{
        atomic_store(&v->expect_exit, false);
        int r = prepare_files(v, err);
        if (r == 0)
                r = spawn(v, err);
        if (r < 0)
                remove_files(v);
        return r;
}

static void log_booted(vm *v)
{
        ha_log_info("vm.booted",
                    "vm=%s pid=%ld spawn_us=%llu socket_us=%llu config_us=%llu start_us=%llu",
                    v->id, (long)v->proc.pid, (unsigned long long)v->times.spawn_us,
                    (unsigned long long)v->times.socket_us,
                    (unsigned long long)v->times.config_us,
                    (unsigned long long)v->times.start_us);
}

static int check_state(vm *v, enum vm_state a, enum vm_state b, const char *what,
                       struct ha_err *err)
{
        enum vm_state s = vm_get_state(v);
        if (s == a || s == b)
                return 0;
        return ha_err_set(err, -EBUSY, "VM %s is %s, cannot %s", v->id, vm_state_name(s), what);
}

int vm_boot(vm *v, struct ha_err *err)
{
        pthread_mutex_lock(&v->op_lock);
        int r = check_state(v, VM_STATE_CREATED, VM_STATE_STOPPED, "boot", err);
        if (r < 0)
                goto out_unlock;
        r = do_spawn(v, err);
        if (r < 0)
                goto out_unlock;
        r = do_configure(v, err);
        if (r == 0)
                r = do_start(v, err);
        /* Watched only once it is a booted VM: a failure before that is
         * this call's error, not an exit to report. */
        if (r == 0)
                r = watch(v, err);
        if (r < 0) {
                abort_start(v);
                goto out_unlock;
        }
        commit_running(v);
        log_booted(v);
out_unlock:
        pthread_mutex_unlock(&v->op_lock);
        return r;
}

int vm_spawn(vm *v, struct ha_err *err)
{
        pthread_mutex_lock(&v->op_lock);
        int r = check_state(v, VM_STATE_CREATED, VM_STATE_STOPPED, "spawn", err);
        if (r < 0)
                goto out_unlock;
        r = do_spawn(v, err);
        if (r < 0)
                goto out_unlock;
        r = watch(v, err);
        if (r < 0) {
                abort_start(v);
                goto out_unlock;
        }
        set_state(v, VM_STATE_SPAWNED);
out_unlock:
        pthread_mutex_unlock(&v->op_lock);
        return r;
}

int vm_configure(vm *v, unsigned vcpu_count, unsigned mem_size_mib, struct ha_err *err)
{
        pthread_mutex_lock(&v->op_lock);
        int r = check_state(v, VM_STATE_SPAWNED, VM_STATE_SPAWNED, "configure", err);
        if (r == 0 && vcpu_count > 32)
                r = ha_err_set(err, -EINVAL, "vcpu_count %u over 32", vcpu_count);
        if (r == 0) {
                if (vcpu_count)
                        v->vcpus = vcpu_count;
                if (mem_size_mib)
                        v->mem_mib = mem_size_mib;
                r = do_configure(v, err);
        }
        pthread_mutex_unlock(&v->op_lock);
        return r;
}

int vm_instance_start(vm *v, struct ha_err *err)
{
        pthread_mutex_lock(&v->op_lock);
        int r = check_state(v, VM_STATE_SPAWNED, VM_STATE_SPAWNED, "start", err);
        if (r == 0)
                r = do_start(v, err);
        if (r == 0) {
                commit_running(v);
                log_booted(v);
        }
        pthread_mutex_unlock(&v->op_lock);
        return r;
}

int vm_start(const struct vm_config *cfg, const struct vm_spec *spec, vm **ret,
             struct ha_err *err)
{
        vm *v;
        int r = vm_create(cfg, spec, &v, err);
        if (r < 0)
                return r;
        r = vm_boot(v, err);
        if (r < 0) {
                vm_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

static int set_paused(vm *v, bool paused, struct ha_err *err)
{
        int r;
        pthread_mutex_lock(&v->op_lock);
        enum vm_state s = vm_get_state(v);
        if (s != VM_STATE_RUNNING && s != VM_STATE_PAUSED) {
                r = ha_err_set(err, -EBUSY, "VM %s is %s", v->id, vm_state_name(s));
                goto out_unlock;
        }
        r = vm_api_set_paused(v->api, paused, err);
        if (r < 0) {
                r = explain_api_failure(v, r, err);
                goto out_unlock;
        }
        set_state(v, paused ? VM_STATE_PAUSED : VM_STATE_RUNNING);
out_unlock:
        pthread_mutex_unlock(&v->op_lock);
        return r;
}

int vm_pause(vm *v, struct ha_err *err) { return set_paused(v, true, err); }
int vm_resume(vm *v, struct ha_err *err) { return set_paused(v, false, err); }

/* Ends the process on purpose: no exit callback, sockets removed. */
static int end_process(vm *v)
{
        atomic_store(&v->expect_exit, true);
        unwatch(v);
        int r = kill_proc(v);
        if (r < 0)
                return r;
        vm_api_free(v->api);
        v->api = NULL;
        unlink(v->api_sock);
        unlink(v->vsock);
        return 0;
}

int vm_snapshot(vm *v, const char *snapshot_path, const char *mem_path, struct ha_err *err)
{
        int r;
        if (v->jailer_bin)
                return ha_err_set(err, -EOPNOTSUPP, "snapshots are not supported in jailer mode");
        if (!snapshot_path || !mem_path)
                return ha_err_set(err, -EINVAL, "snapshot needs a state path and a memory path");
        pthread_mutex_lock(&v->op_lock);
        enum vm_state s = vm_get_state(v);
        if (s != VM_STATE_RUNNING && s != VM_STATE_PAUSED) {
                r = ha_err_set(err, -EBUSY, "VM %s is %s, cannot snapshot", v->id,
                               vm_state_name(s));
                goto out_unlock;
        }
        if (s == VM_STATE_RUNNING) {
                r = vm_api_set_paused(v->api, true, err);
                if (r < 0) {
                        r = explain_api_failure(v, r, err);
                        goto out_unlock;
                }
                set_state(v, VM_STATE_PAUSED);
        }
        r = vm_api_snapshot_create(v->api, snapshot_path, mem_path, err);
        if (r < 0) {
                r = explain_api_failure(v, r, err);
                if (s == VM_STATE_RUNNING && r != -ECHILD &&
                    vm_api_set_paused(v->api, false, NULL) == 0)
                        set_state(v, VM_STATE_RUNNING);
                goto out_unlock;
        }
        r = end_process(v);
        if (r < 0) {
                ha_err_set(err, r, "snapshot written but VMM pid %ld would not die",
                           (long)v->proc.pid);
                goto out_unlock;
        }
        set_state(v, VM_STATE_SAVED);
        ha_log_info("vm.snapshotted", "vm=%s", v->id);
out_unlock:
        pthread_mutex_unlock(&v->op_lock);
        return r;
}

int vm_restore(vm *v, const char *snapshot_path, const char *mem_path, struct ha_err *err)
{
        int r;
        if (v->jailer_bin)
                return ha_err_set(err, -EOPNOTSUPP, "snapshots are not supported in jailer mode");
        if (!snapshot_path || !mem_path)
                return ha_err_set(err, -EINVAL, "restore needs a state path and a memory path");
        pthread_mutex_lock(&v->op_lock);
        enum vm_state s = vm_get_state(v);
        if (s != VM_STATE_SAVED && s != VM_STATE_CREATED) {
                r = ha_err_set(err, -EBUSY, "VM %s is %s, cannot restore", v->id,
                               vm_state_name(s));
                goto out_unlock;
        }
        if (access(snapshot_path, R_OK) < 0 || access(mem_path, R_OK) < 0) {
                r = -errno;
                ha_err_set(err, r, "snapshot files %s, %s: %s", snapshot_path, mem_path,
                           strerror(-r));
                goto out_unlock;
        }
        atomic_store(&v->expect_exit, false);
        r = prepare_files(v, err);
        if (r < 0)
                goto out_unlock;
        r = spawn(v, err);
        if (r < 0)
                goto out_unlock;
        struct vm_snapshot_load load = {
                .snapshot_path = snapshot_path,
                .mem_path = mem_path,
                .resume_vm = true,
                .iface_id = v->tap ? VM_IFACE_ID : NULL,
                .host_dev_name = v->tap,
                .vsock_uds_path = v->vsock_vmm,
        };
        uint64_t t0 = ha_now_ns();
        /* Logger and metrics are not part of a snapshot: set them again. */
        r = vm_api_put_logger(v->api, v->fc_log_vmm, v->log_level, err);
        if (r == 0)
                r = vm_api_put_metrics(v->api, v->metrics_vmm, err);
        if (r == 0)
                r = vm_api_snapshot_load(v->api, &load, err);
        v->pending.config_us = (ha_now_ns() - t0) / 1000;
        v->pending.start_us = 0;
        if (r < 0) {
                r = explain_api_failure(v, r, err);
                goto out_abort;
        }
        r = watch(v, err);
        if (r < 0)
                goto out_abort;
        commit_running(v);
        ha_log_info("vm.restored", "vm=%s pid=%ld spawn_us=%llu socket_us=%llu load_us=%llu",
                    v->id, (long)v->proc.pid, (unsigned long long)v->times.spawn_us,
                    (unsigned long long)v->times.socket_us,
                    (unsigned long long)v->times.config_us);
        pthread_mutex_unlock(&v->op_lock);
        return 0;

out_abort:
        /* Keep the logs of the failed attempt out of the way but the
         * directory usable for a retry. */
        kill_proc(v);
        vm_api_free(v->api);
        v->api = NULL;
        unlink(v->api_sock);
        unlink(v->vsock);
out_unlock:
        pthread_mutex_unlock(&v->op_lock);
        return r;
}

int vm_stop(vm *v, struct ha_err *err)
{
        int r = 0;
        pthread_mutex_lock(&v->op_lock);
        atomic_store(&v->expect_exit, true);
        unwatch(v);
        enum vm_state s = vm_get_state(v);
        if (v->has_proc && (s == VM_STATE_RUNNING || s == VM_STATE_PAUSED) && v->api &&
            !vm_proc_wait(v->proc.pidfd, 0)) {
                /* Courtesy: let the guest shut down cleanly if it can. A
                 * paused guest is resumed first, since a frozen one can
                 * neither take Ctrl-Alt-Del nor, in the simulator, die. */
                vm_api_set_timeout(v->api, CAD_REQUEST_TIMEOUT_MS);
                bool runs = s == VM_STATE_RUNNING || vm_api_set_paused(v->api, false, NULL) == 0;
                if (runs && vm_api_action(v->api, "SendCtrlAltDel", NULL) == 0)
                        vm_proc_wait(v->proc.pidfd, v->stop_timeout_ms);
        }
        r = kill_proc(v);
        if (r < 0) {
                ha_err_set(err, r, "VMM pid %ld did not die after SIGKILL", (long)v->proc.pid);
                goto out_unlock;
        }
        vm_api_free(v->api);
        v->api = NULL;
        remove_files(v);
        set_state(v, VM_STATE_STOPPED);
        ha_log_info("vm.stopped", "vm=%s", v->id);
out_unlock:
        pthread_mutex_unlock(&v->op_lock);
        return r;
}

int vm_adopt(const struct vm_config *cfg, const struct vm_spec *spec, pid_t pid,
             uint64_t starttime, vm **ret, struct ha_err *err)
{
        vm *v;
        int r = vm_create(cfg, spec, &v, err);
        if (r < 0)
                return r;
        int pidfd = vm_proc_open(pid, starttime);
        if (pidfd < 0) {
                r = ha_err_set(err, pidfd, "VMM pid %ld (start time %llu) is gone", (long)pid,
                               (unsigned long long)starttime);
                goto out_free;
        }
        v->proc = (struct vm_proc){ .pid = pid, .pidfd = pidfd, .starttime = starttime };
        v->has_proc = true;
        v->adopted = true;
        r = vm_api_new(v->api_sock, v->api_timeout_ms, &v->api);
        if (r < 0) {
                ha_err_set(err, r, "API client: %s", strerror(-r));
                goto out_free;
        }
        char state[32];
        r = vm_api_get_state(v->api, state, sizeof state, err);
        if (r < 0)
                goto out_free;
        if (strcmp(state, "Running") == 0) {
                v->state = VM_STATE_RUNNING;
        } else if (strcmp(state, "Paused") == 0) {
                v->state = VM_STATE_PAUSED;
        } else {
                r = ha_err_set(err, -EIO, "VMM pid %ld is in state \"%s\", not a booted VM",
                               (long)pid, state);
                goto out_free;
        }
        r = watch(v, err);
        if (r < 0)
                goto out_free;
        ha_log_info("vm.adopted", "vm=%s pid=%ld state=%s", v->id, (long)pid, state);
        *ret = v;
        return 0;

out_free:
        vm_free(v); /* closes the pidfd; the process is left alone */
        return r;
}

enum vm_state vm_get_state(const vm *v)
{
        vm *m = (vm *)v;
        pthread_mutex_lock(&m->lock);
        enum vm_state s = m->state;
        pthread_mutex_unlock(&m->lock);
        return s;
}

const char *vm_state_name(enum vm_state s)
{
        switch (s) {
        case VM_STATE_CREATED: return "created";
        case VM_STATE_SPAWNED: return "spawned";
        case VM_STATE_RUNNING: return "running";
        case VM_STATE_PAUSED: return "paused";
        case VM_STATE_SAVED: return "saved";
        case VM_STATE_EXITED: return "exited";
        case VM_STATE_STOPPED: return "stopped";
        }
        return "unknown";
}

const char *vm_vsock_path(const vm *v) { return v->vsock; }
const char *vm_api_sock_path(const vm *v) { return v->api_sock; }
const char *vm_dir(const vm *v) { return v->dir; }
const char *vm_id(const vm *v) { return v->id; }

bool vm_last_exit(const vm *v, struct vm_exit *ret)
{
        vm *m = (vm *)v;
        pthread_mutex_lock(&m->lock);
        bool have = m->last_exit.pid != 0;
        if (have)
                *ret = m->last_exit;
        pthread_mutex_unlock(&m->lock);
        return have;
}

pid_t vm_pid(const vm *v)
{
        vm *m = (vm *)v;
        pthread_mutex_lock(&m->lock);
        pid_t p = m->has_proc ? m->proc.pid : 0;
        pthread_mutex_unlock(&m->lock);
        return p;
}

uint64_t vm_starttime(const vm *v)
{
        vm *m = (vm *)v;
        pthread_mutex_lock(&m->lock);
        uint64_t t = m->has_proc ? m->proc.starttime : 0;
        pthread_mutex_unlock(&m->lock);
        return t;
}
