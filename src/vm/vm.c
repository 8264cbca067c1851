/*
 * vm.c - the vm handle: vm_create() (settings copied, every path computed
 * and checked once), the per-VM files, state and accessors. The operations
 * live in boot.c (boot, split phases, restore) and control.c (pause,
 * snapshot, stop, adopt); the process itself in vmm.c. Locking: vm_int.h.
 */
#include "vm/vm_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/api.h"

#define BOOT_TIMEOUT_DEFAULT_MS 5000
#define STOP_TIMEOUT_DEFAULT_MS 2000
/* Linux x86 COMMAND_LINE_SIZE. */
#define BOOT_ARGS_MAX 2048
/* Room kept for Firecracker's "<uds_path>_<port>" guest->host listeners. */
#define VSOCK_PORT_SUFFIX_MAX 11
/* Lines of each log quoted when a VMM ends. */
#define TAIL_LINES 3

/* |a| followed by |b| into |buf|; -ENAMETOOLONG when it does not fit. */
int vm_path_cat(char *buf, size_t size, const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        if (la + lb >= size)
                return -ENAMETOOLONG;
        memmove(buf, a, la);
        memcpy(buf + la, b, lb + 1);
        return 0;
}

/* <dir>/<name> into |buf|. */
int vm_path_join(char *buf, size_t size, const char *dir, const char *name)
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
        free(v->paths);
        pthread_mutex_destroy(&v->lock);
        pthread_mutex_destroy(&v->op_lock);
        free(v);
}

/* Full-size scratch copies of the paths, while they are computed. */
struct path_scratch {
#define X(n) char n[PATH_MAX];
        VM_PATH_FIELDS(X)
#undef X
};

static int compute_paths_into(const vm *v, struct path_scratch *p, struct ha_err *err)
{
        int r = 0;
        r |= vm_path_join(p->dir, sizeof p->dir, p->run_dir, v->id);
        r |= vm_path_join(p->console_log, sizeof p->console_log, p->dir, "console.log");
        if (r)
                return ha_err_set(err, -ENAMETOOLONG, "run directory path too long");
        if (!v->jailer_bin) {
                r |= vm_path_join(p->mnt_dir, sizeof p->mnt_dir, p->run_dir, "vmroot");
                r |= vm_path_join(p->kernel_vmm, sizeof p->kernel_vmm, p->mnt_dir, "kernel");
                r |= vm_path_join(p->rootfs_vmm, sizeof p->rootfs_vmm, p->mnt_dir, "rootfs");
                r |= vm_path_join(p->fc_log, sizeof p->fc_log, p->dir, "fc.log");
                r |= vm_path_cat(p->fc_log_vmm, sizeof p->fc_log_vmm, p->fc_log, "");
                r |= vm_path_join(p->metrics, sizeof p->metrics, p->dir, "metrics.json");
                r |= vm_path_cat(p->metrics_vmm, sizeof p->metrics_vmm, p->metrics, "");
                if (r)
                        return ha_err_set(err, -ENAMETOOLONG, "run directory path too long");
                if (vm_path_join(p->api_sock, sizeof p->api_sock, p->dir, "api.sock") < 0 ||
                    vm_path_join(p->vsock, sizeof p->vsock, p->dir, "vsock.sock") < 0)
                        return ha_err_set(err, -ENAMETOOLONG, "run directory path too long");
                memcpy(p->api_sock_vmm, p->api_sock, sizeof p->api_sock);
                memcpy(p->vsock_vmm, p->vsock, sizeof p->vsock);
        } else {
                struct vm_launch l = { .vmm_bin = v->vmm_bin, .id = v->id,
                                       .chroot_base = v->chroot_base };
                if (vm_jail_root(&l, p->jail_root, sizeof p->jail_root) < 0)
                        return ha_err_set(err, -ENAMETOOLONG, "jail path too long");
                size_t n = strlen(p->jail_root) - strlen("/root");
                memcpy(p->jail_dir, p->jail_root, n);
                p->jail_dir[n] = '\0';
                if (vm_path_join(p->fc_log, sizeof p->fc_log, p->jail_root, "fc.log") < 0 ||
                    vm_path_join(p->metrics, sizeof p->metrics, p->jail_root, "metrics.json") < 0)
                        return ha_err_set(err, -ENAMETOOLONG, "jail path too long");
                if (vm_path_join(p->api_sock, sizeof p->api_sock, p->jail_root, "api.sock") < 0 ||
                    vm_path_join(p->vsock, sizeof p->vsock, p->jail_root, "vsock.sock") < 0)
                        return ha_err_set(err, -ENAMETOOLONG, "jail path too long");
                snprintf(p->api_sock_vmm, sizeof p->api_sock_vmm, "%s", "/api.sock");
                snprintf(p->vsock_vmm, sizeof p->vsock_vmm, "%s", "/vsock.sock");
                snprintf(p->fc_log_vmm, sizeof p->fc_log_vmm, "%s", "/fc.log");
                snprintf(p->metrics_vmm, sizeof p->metrics_vmm, "%s", "/metrics.json");
                snprintf(p->kernel_vmm, sizeof p->kernel_vmm, "%s", "/kernel");
                snprintf(p->rootfs_vmm, sizeof p->rootfs_vmm, "%s", "/rootfs");
        }
        r = vm_sock_path_check("API socket", p->api_sock, 0, err);
        if (r == 0)
                r = vm_sock_path_check("vsock socket", p->vsock, VSOCK_PORT_SUFFIX_MAX, err);
        return r;
}

/* Computes every path in a scratch buffer, then packs them into one
 * allocation (v->paths) the fields point into. */
static int compute_paths(vm *v, const char *run_dir, struct ha_err *err)
{
        struct path_scratch *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        int r = -ENAMETOOLONG;
        if (snprintf(p->run_dir, sizeof p->run_dir, "%s", run_dir) >= (int)sizeof p->run_dir) {
                ha_err_set(err, r, "run directory path too long");
                goto out;
        }
        r = compute_paths_into(v, p, err);
        if (r < 0)
                goto out;
        size_t total = 0;
#define X(n) total += strlen(p->n) + 1;
        VM_PATH_FIELDS(X)
#undef X
        v->paths = malloc(total);
        if (!v->paths) {
                r = -ENOMEM;
                goto out;
        }
        char *at = v->paths;
#define X(n) v->n = memcpy(at, p->n, strlen(p->n) + 1); at += strlen(p->n) + 1;
        VM_PATH_FIELDS(X)
#undef X
out:
        free(p);
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

        r = compute_paths(v, cfg->run_dir, err);
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

void vm_files_remove(vm *v)
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
int vm_files_prepare(vm *v, struct ha_err *err)
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

void vm_state_set(vm *v, enum vm_state s)
{
        pthread_mutex_lock(&v->lock);
        v->state = s;
        pthread_mutex_unlock(&v->lock);
}

/* RUNNING, with the timings measured on the way. */
void vm_state_commit_running(vm *v)
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
