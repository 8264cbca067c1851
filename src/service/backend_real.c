/*
 * backend_real.c - see backend_real.h. Each hook of sandbox/backend.h maps
 * onto the module that does the work; this file only adapts names, paths
 * and errors. Paths:
 *   <state-dir>/rootfs/<id>.ext4         the sandbox's disk (survives restarts)
 *   <state-dir>/snapshots/<id>.{snap,mem} PauseSandbox(snapshot=true)
 *   <run-dir>/<id>/                       the VMM's sockets and log (vm/)
 * The VMM process lives in its own session: restarting the agent never
 * kills it, and recovery re-adopts it by pid and start time.
 */
#include "service/backend_real.h"

#include <dirent.h>
#include <inttypes.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "exec/exec.h"
#include "net/pool.h"
#include "rootfs/rootfs.h"
#include "sandbox/sbx.h"
#include "vm/orphan.h"
#include "vm/vm.h"

/* How long recovery waits for one orphan VMM to die after SIGKILL. */
#define ORPHAN_KILL_WAIT_MS 5000

struct ha_backend {
        const struct ha_config *cfg;
        struct sbx_backend table;
        net_pool *pool;
        vm_watcher *watcher;
        struct vm_config vmcfg;
        sbx_mgr *mgr;
        char rootfs_dir[256];
        char snap_dir[256];
        char sim_kernel[320];
        /* Set once cleanup_orphans has run net_pool_recover: before that the
         * pool knows no slot as in use (see net_release). */
        atomic_bool net_recovered;
};

/* Per-VMM state behind sbx_vmm.handle. */
struct vmm_handle {
        ha_backend *b;
        vm *v;
        char id[SBX_ID_MAX + 1];
        struct sbx_net_lease net;
        char rootfs[SBX_PATH_MAX];
};

static int mkdir_p(const char *path)
{
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", path);
        for (char *p = tmp + 1; *p; p++) {
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        *p = '/';
                }
        }
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* --- network ------------------------------------------------------------- */

static int to_net_egress(const struct sbx_egress *in, struct net_egress *out, struct net_cidr *cidrs,
                         struct ha_err *err)
{
        static const enum net_egress_mode modes[] = {
                [SBX_EGRESS_UNSPECIFIED] = NET_EGRESS_ALLOW_ALL, [SBX_EGRESS_ALLOW_ALL] = NET_EGRESS_ALLOW_ALL,
                [SBX_EGRESS_DENY_ALL] = NET_EGRESS_DENY_ALL,     [SBX_EGRESS_ALLOW_LIST] = NET_EGRESS_ALLOW_LIST,
                [SBX_EGRESS_DENY_LIST] = NET_EGRESS_DENY_LIST,
        };
        out->mode = NET_EGRESS_ALLOW_ALL;
        out->cidrs = cidrs;
        out->n_cidrs = 0;
        if (!in)
                return 0;
        if ((unsigned)in->mode >= sizeof modes / sizeof modes[0])
                return ha_err_set(err, -EINVAL, "egress.mode %d is unknown", in->mode);
        out->mode = modes[in->mode];
        const struct sbx_strv *list = in->mode == SBX_EGRESS_ALLOW_LIST ? &in->allow_cidrs
                                      : in->mode == SBX_EGRESS_DENY_LIST ? &in->deny_cidrs : NULL;
        for (size_t i = 0; list && i < list->n; i++) {
                if (i >= NET_EGRESS_CIDRS_MAX)
                        return ha_err_set(err, -EINVAL, "egress: more than %d CIDRs", NET_EGRESS_CIDRS_MAX);
                if (net_cidr_parse(list->items[i], &cidrs[i]) < 0)
                        return ha_err_set(err, -EINVAL, "egress: \"%.64s\" is not an IPv4 CIDR (a.b.c.d/n)",
                                          list->items[i]);
                out->n_cidrs = i + 1;
        }
        return 0;
}

static int net_acquire(void *ctx, const char *id, const struct sbx_egress *egress, struct sbx_net_lease *ret,
                       struct ha_err *err)
{
        ha_backend *b = ctx;
        struct net_cidr *cidrs = calloc(NET_EGRESS_CIDRS_MAX, sizeof *cidrs);
        if (!cidrs)
                return -ENOMEM;
        struct net_egress eg;
        int r = to_net_egress(egress, &eg, cidrs, err);
        struct net_slot_info info = { 0 };
        if (r == 0)
                r = net_pool_acquire(b->pool, &eg, &info, err);
        free(cidrs);
        if (r < 0)
                return r;
        memset(ret, 0, sizeof *ret);
        ret->slot = info.slot;
        snprintf(ret->host_ip, sizeof ret->host_ip, "%s", info.sandbox_ip);
        snprintf(ret->netns_path, sizeof ret->netns_path, "%s", info.netns_path);
        snprintf(ret->tap_name, sizeof ret->tap_name, "%s", info.tap);
        snprintf(ret->guest_ip, sizeof ret->guest_ip, "%s", info.guest_ip);
        snprintf(ret->guest_mac, sizeof ret->guest_mac, "%s", info.guest_mac);
        return 0;
}

static int net_release(void *ctx, const char *id, const struct sbx_net_lease *lease, struct ha_err *err)
{
        ha_backend *b = ctx;
        int r = net_pool_release(b->pool, lease->slot);
        /* During recovery (an interrupted create or destroy, a VMM that died
         * while the agent was down) the fresh pool has not adopted any slot
         * yet: nothing to give back here, and net_pool_recover removes the
         * slot's namespace and links since no kept record owns it. */
        if (r == -EINVAL && !atomic_load(&b->net_recovered))
                return 0;
        if (r < 0 && r != -ENOENT)
                return ha_err_set(err, r, "releasing network slot %u: %s", lease->slot, strerror(-r));
        return 0;
}

/* --- rootfs -------------------------------------------------------------- */

static int clone_path(ha_backend *b, const char *id, char *out)
{
        int n = snprintf(out, SBX_PATH_MAX, "%s/%s.ext4", b->rootfs_dir, id);
        return n > 0 && n < SBX_PATH_MAX ? 0 : -ENAMETOOLONG;
}

static int rootfs_clone_hook(void *ctx, const char *id, const char *image, char *ret_path, struct ha_err *err)
{
        ha_backend *b = ctx;
        char path[SBX_PATH_MAX];
        int r = clone_path(b, id, path);
        if (r < 0)
                return ha_err_set(err, r, "rootfs path for %s too long", id);
        struct rootfs_clone_info info;
        r = rootfs_clone(b->cfg->images_dir, image, path, &info, err);
        if (r < 0)
                return r;
        ha_log_debug("rootfs.cloned", "sbx=%s image=%s method=%s us=%" PRIu64, id, image,
                     rootfs_clone_method_name(info.method), info.elapsed_us);
        memcpy(ret_path, path, SBX_PATH_MAX);
        return 0;
}

static int rootfs_remove_hook(void *ctx, const char *id, const char *path, struct ha_err *err)
{
        int r = rootfs_remove(path);
        if (r < 0 && r != -ENOENT)
                return ha_err_set(err, r, "removing %s: %s", path, strerror(-r));
        return 0;
}

/* --- VMM ------------------------------------------------------------------- */

static void on_vm_exit(void *ctx, vm *v, const struct vm_exit *ex, const char *log_tail)
{
        struct vmm_handle *h = ctx;
        char reason[SBX_FAILURE_MAX];
        snprintf(reason, sizeof reason, "%s", log_tail && *log_tail ? log_tail : "no log output");
        /* Exit status as waitpid would encode it: code, or 128 + signal. */
        int status = !ex || !ex->known ? -1 : ex->signal ? 128 + ex->signal : ex->code;
        if (h->b->mgr && ex)
                sbx_mgr_vmm_exited(h->b->mgr, h->id, (int)ex->pid, status, reason);
}

static void fill_spec(struct vmm_handle *h, struct vm_spec *spec, unsigned vcpus, unsigned mem)
{
        memset(spec, 0, sizeof *spec);
        spec->id = h->id;
        spec->rootfs_path = h->rootfs;
        spec->netns_path = h->net.netns_path[0] ? h->net.netns_path : NULL;
        spec->tap_name = h->net.tap_name[0] ? h->net.tap_name : NULL;
        spec->guest_mac = h->net.guest_mac[0] ? h->net.guest_mac : NULL;
        spec->ip_arg = NET_GUEST_BOOT_ARG;
        spec->vcpu_count = vcpus;
        spec->mem_size_mib = mem;
        spec->guest_cid = 3;
        spec->on_exit = on_vm_exit;
        spec->on_exit_ctx = h;
}

static void fill_vmm(struct vmm_handle *h, struct sbx_vmm *out)
{
        out->handle = h;
        out->pid = h->v ? (int)vm_pid(h->v) : 0;
        out->start_time = h->v ? vm_starttime(h->v) : 0;
        if (h->v) {
                snprintf(out->api_sock, sizeof out->api_sock, "%s", vm_api_sock_path(h->v));
                snprintf(out->vsock_uds, sizeof out->vsock_uds, "%s", vm_vsock_path(h->v));
        }
}

static int vmm_start(void *ctx, const char *id, const struct sbx_net_lease *net, struct sbx_vmm *ret,
                     struct ha_err *err)
{
        struct vmm_handle *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->b = ctx;
        snprintf(h->id, sizeof h->id, "%s", id);
        if (net)
                h->net = *net;
        memset(ret, 0, sizeof *ret);
        ret->handle = h;
        return 0;
}

static int vmm_configure(void *ctx, struct sbx_vmm *vmm, const struct sbx_vm_config *cfg, struct ha_err *err)
{
        ha_backend *b = ctx;
        struct vmm_handle *h = vmm->handle;
        snprintf(h->rootfs, sizeof h->rootfs, "%s", cfg->rootfs_path);
        if (cfg->net)
                h->net = *cfg->net;
        struct vm_spec spec;
        fill_spec(h, &spec, cfg->vcpus, cfg->memory_mib);
        int r = vm_create(&b->vmcfg, &spec, &h->v, err);
        if (r == 0)
                fill_vmm(h, vmm);
        return r;
}

static int vmm_boot(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct vmm_handle *h = vmm->handle;
        int r = vm_boot(h->v, err);
        if (r == 0)
                fill_vmm(h, vmm);
        return r;
}

static int vmm_wait_ready(void *ctx, struct sbx_vmm *vmm, uint64_t deadline_ms, const struct sbx_cancel *cancel,
                          struct ha_err *err)
{
        struct vmm_handle *h = vmm->handle;
        const char *path = vm_vsock_path(h->v);
        for (;;) {
                if (cancel && cancel->cancelled && cancel->cancelled(cancel->ctx))
                        return -ECANCELED;
                uint64_t now = ha_now_ms();
                if (now >= deadline_ms)
                        return ha_err_set(err, -ETIMEDOUT, "guest agent of %s did not answer in time", h->id);
                uint64_t step = now + 100 < deadline_ms ? now + 100 : deadline_ms;
                int r = exec_wait_ready(path, step, err);
                if (r == 0)
                        return 0;
                if (r != -ETIMEDOUT)
                        return r;
                if (vm_get_state(h->v) == VM_STATE_EXITED)
                        return ha_err_set(err, -ECHILD, "VMM of %s exited before its guest was ready", h->id);
        }
}

static int vmm_pause(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct vmm_handle *h = vmm->handle;
        return vm_pause(h->v, err);
}

static int vmm_resume(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct vmm_handle *h = vmm->handle;
        return vm_resume(h->v, err);
}

static void snap_paths(ha_backend *b, const char *id, char *snap, char *mem, size_t n)
{
        /* snap_dir (< 256) + id (< 64) + suffix always fit in n (320). */
        if (snprintf(snap, n, "%s/%s.snap", b->snap_dir, id) >= (int)n)
                snap[0] = '\0';
        if (snprintf(mem, n, "%s/%s.mem", b->snap_dir, id) >= (int)n)
                mem[0] = '\0';
}

static int vmm_snapshot(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        ha_backend *b = ctx;
        struct vmm_handle *h = vmm->handle;
        char snap[320], mem[320];
        snap_paths(b, h->id, snap, mem, sizeof snap);
        int r = vm_snapshot(h->v, snap, mem, err);
        if (r == 0)
                fill_vmm(h, vmm);
        vmm->pid = 0;
        return r;
}

static int vmm_restore(void *ctx, const char *id, const struct sbx_net_lease *net, const char *rootfs_path,
                       struct sbx_vmm *vmm, struct ha_err *err)
{
        ha_backend *b = ctx;
        struct vmm_handle *h = vmm->handle;
        if (!h) {
                int r = vmm_start(ctx, id, net, vmm, err);
                if (r < 0)
                        return r;
                h = vmm->handle;
        }
        snprintf(h->rootfs, sizeof h->rootfs, "%s", rootfs_path);
        if (net)
                h->net = *net;
        if (!h->v) {
                struct vm_spec spec;
                fill_spec(h, &spec, 1, 256);
                int r = vm_create(&b->vmcfg, &spec, &h->v, err);
                if (r < 0)
                        return r;
        }
        char snap[320], mem[320];
        snap_paths(b, id, snap, mem, sizeof snap);
        int r = vm_restore(h->v, snap, mem, err);
        if (r == 0)
                fill_vmm(h, vmm);
        return r;
}

static int vmm_stop(void *ctx, const char *id, struct sbx_vmm *vmm, struct ha_err *err)
{
        ha_backend *b = ctx;
        struct vmm_handle *h = vmm->handle;
        int r = 0;
        if (!h || !h->v) {
                /* Recovery found it dead or never built one: clean by id. */
                struct vmm_handle tmp = { .b = b };
                snprintf(tmp.id, sizeof tmp.id, "%s", id);
                struct vm_spec spec;
                fill_spec(&tmp, &spec, 1, 128);
                spec.on_exit = NULL;
                vm *v;
                if (vmm->pid > 0 && sbx_proc_alive(vmm->pid, vmm->start_time))
                        kill(-vmm->pid, SIGKILL);
                if (vm_create(&b->vmcfg, &spec, &v, NULL) == 0) {
                        r = vm_stop(v, err);
                        vm_free(v);
                }
        } else {
                r = vm_stop(h->v, err);
                if (r == 0) {
                        vm_free(h->v);
                        h->v = NULL;
                }
        }
        if (r < 0)
                return r;
        char snap[320], mem[320];
        snap_paths(b, id, snap, mem, sizeof snap);
        unlink(snap);
        unlink(mem);
        free(h);
        vmm->handle = NULL;
        vmm->pid = 0;
        return 0;
}

static void vmm_forget(void *ctx, struct sbx_vmm *vmm)
{
        struct vmm_handle *h = vmm->handle;
        if (!h)
                return;
        vm_free(h->v);
        free(h);
        vmm->handle = NULL;
}

static int vmm_paused(void *ctx, const struct sbx_vmm *vmm)
{
        const struct vmm_handle *h = vmm->handle;
        return h && h->v && vm_get_state(h->v) == VM_STATE_PAUSED ? 1 : 0;
}

static bool vmm_alive(void *ctx, int pid, uint64_t start_time)
{
        return sbx_proc_alive(pid, start_time);
}

static int vmm_adopt(void *ctx, const struct sbx_resources *res, struct sbx_vmm *vmm, struct ha_err *err)
{
        ha_backend *b = ctx;
        struct vmm_handle *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->b = b;
        snprintf(h->id, sizeof h->id, "%s", res->id);
        if (res->has_net)
                h->net = res->net;
        snprintf(h->rootfs, sizeof h->rootfs, "%s", res->rootfs_path);
        struct vm_spec spec;
        fill_spec(h, &spec, 1, 128);
        int r;
        if (res->vmm.pid > 0)
                r = vm_adopt(&b->vmcfg, &spec, res->vmm.pid, res->vmm.start_time, &h->v, err);
        else
                r = vm_create(&b->vmcfg, &spec, &h->v, err);   /* snapshotted: files only */
        if (r < 0) {
                free(h);
                return r == -ENOENT || r == -ECONNREFUSED ? -ESRCH : r;
        }
        *vmm = res->vmm;
        vmm->handle = h;
        return 0;
}

/* Kills VMM processes whose API socket is under our run dir but whose
 * sandbox is not live, and removes leftover run dirs, clones, snapshots. */
static bool is_live(const struct sbx_resources *live, size_t n, const char *id)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(live[i].id, id) == 0)
                        return true;
        return false;
}

/* A VMM process is kept only when id, pid and start time all match a live
 * record: a process for a live id with another pid (a start or restore whose
 * record was not written before a crash) is an orphan too. */
static bool is_live_vmm(const struct sbx_resources *live, size_t n, const char *id, pid_t pid)
{
        uint64_t st = 0;
        if (sbx_proc_start_time(pid, &st) < 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (strcmp(live[i].id, id) == 0 && live[i].has_vmm && live[i].vmm.pid == pid &&
                    live[i].vmm.start_time == st)
                        return true;
        return false;
}

/* Kills the VMM with its process group and waits for it, then removes
 * the simulator's cgroups fcsim-<id>-<pid> (a SIGKILLed fcsim leaves them;
 * they would pile up, one set per orphan). */
static void kill_orphan_vmm(const char *id, pid_t pid)
{
        uint64_t st;
        if (sbx_proc_start_time(pid, &st) < 0)
                return;   /* gone meanwhile */
        int r = vm_kill_process(sbx_id_valid(id) ? id : NULL, pid, st, ORPHAN_KILL_WAIT_MS);
        ha_log_warn("backend.orphan_vmm_killed", "pid=%d sbx=%s result=%d", (int)pid, id, r);
}

static void kill_orphan_vmms(ha_backend *b, const struct sbx_resources *live, size_t n)
{
        DIR *d = opendir("/proc");
        if (!d)
                return;
        char prefix[512];
        snprintf(prefix, sizeof prefix, "%s/", b->cfg->run_dir);
        size_t plen = strlen(prefix);
        for (struct dirent *e; (e = readdir(d));) {
                char *end;
                long pid = strtol(e->d_name, &end, 10);
                if (*end || pid <= 1 || pid == getpid())
                        continue;
                char path[64], buf[4096];
                snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
                FILE *f = fopen(path, "re");
                if (!f)
                        continue;
                size_t len = fread(buf, 1, sizeof buf - 1, f);
                fclose(f);
                buf[len] = '\0';
                /* argv is NUL-separated: find "--api-sock" then its value. */
                for (size_t i = 0; i < len;) {
                        const char *arg = buf + i;
                        size_t al = strlen(arg);
                        if (strcmp(arg, "--api-sock") == 0 && i + al + 1 < len) {
                                const char *val = arg + al + 1;
                                if (strncmp(val, prefix, plen) == 0) {
                                        char id[SBX_ID_MAX + 1];
                                        size_t k = 0;
                                        for (const char *p = val + plen; *p && *p != '/' && k < SBX_ID_MAX; p++)
                                                id[k++] = *p;
                                        id[k] = '\0';
                                        if (!is_live_vmm(live, n, id, (pid_t)pid))
                                                kill_orphan_vmm(id, (pid_t)pid);
                                }
                                break;
                        }
                        i += al + 1;
                }
        }
        closedir(d);
}

static void remove_orphan_files(ha_backend *b, const char *dir, const char *suffix, const struct sbx_resources *live,
                                size_t n)
{
        DIR *d = opendir(dir);
        if (!d)
                return;
        size_t sl = strlen(suffix);
        for (struct dirent *e; (e = readdir(d));) {
                size_t l = strlen(e->d_name);
                if (e->d_name[0] == '.' || l <= sl || strcmp(e->d_name + l - sl, suffix) != 0)
                        continue;
                char id[SBX_ID_MAX + 1];
                snprintf(id, sizeof id, "%.*s", (int)(l - sl), e->d_name);
                if (is_live(live, n, id))
                        continue;
                char path[1024];
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                ha_log_warn("backend.orphan_removed", "path=%s", path);
                unlink(path);
        }
        closedir(d);
}

static int cleanup_orphans(void *ctx, const struct sbx_resources *live, size_t n, struct ha_err *err)
{
        ha_backend *b = ctx;
        kill_orphan_vmms(b, live, n);
        /* Leftover VMM dirs: vm_stop on a handle removes sockets, log, dir
         * (and a simulator's cgroups). */
        DIR *d = opendir(b->cfg->run_dir);
        for (struct dirent *e; d && (e = readdir(d));) {
                /* "vmroot" is the mount point every VMM's private tmpfs sits
                 * on: removing it would detach that tmpfs in every running
                 * VMM's namespace (rmdir of a mount point in another mount
                 * namespace unmounts it there). */
                if (e->d_name[0] == '.' || !sbx_id_valid(e->d_name) || strcmp(e->d_name, "vmroot") == 0 ||
                    is_live(live, n, e->d_name))
                        continue;
                struct vmm_handle tmp = { .b = b };
                snprintf(tmp.id, sizeof tmp.id, "%.63s", e->d_name);
                struct vm_spec spec;
                fill_spec(&tmp, &spec, 1, 128);
                spec.on_exit = NULL;
                vm *v;
                if (vm_create(&b->vmcfg, &spec, &v, NULL) == 0) {
                        ha_log_warn("backend.orphan_vm_dir", "sbx=%s", e->d_name);
                        vm_stop(v, NULL);
                        vm_free(v);
                }
        }
        if (d)
                closedir(d);
        remove_orphan_files(b, b->rootfs_dir, ".ext4", live, n);
        remove_orphan_files(b, b->snap_dir, ".snap", live, n);
        remove_orphan_files(b, b->snap_dir, ".mem", live, n);
        uint32_t *owned = calloc(n ? n : 1, sizeof *owned);
        if (!owned)
                return -ENOMEM;
        size_t no = 0;
        for (size_t i = 0; i < n; i++)
                if (live[i].has_net)
                        owned[no++] = live[i].net.slot;
        int r = net_pool_recover(b->pool, owned, no, err);
        free(owned);
        atomic_store(&b->net_recovered, true);
        return r;
}

/* --- life ------------------------------------------------------------------ */

int ha_backend_new(const struct ha_config *cfg, ha_backend **ret, struct ha_err *err)
{
        ha_backend *b = calloc(1, sizeof *b);
        if (!b)
                return ha_err_set(err, -ENOMEM, "out of memory");
        b->cfg = cfg;
        int r;
        snprintf(b->rootfs_dir, sizeof b->rootfs_dir, "%s/rootfs", cfg->state_dir);
        snprintf(b->snap_dir, sizeof b->snap_dir, "%s/snapshots", cfg->state_dir);
        if ((r = mkdir_p(b->rootfs_dir)) < 0 || (r = mkdir_p(b->snap_dir)) < 0 || (r = mkdir_p(cfg->run_dir)) < 0) {
                ha_err_set(err, r, "cannot create %s, %s or %s: %s", b->rootfs_dir, b->snap_dir, cfg->run_dir,
                           strerror(-r));
                goto out_free;
        }
        struct net_pool_config nc;
        net_pool_config_default(&nc);
        snprintf(nc.net.prefix, sizeof nc.net.prefix, "%s", cfg->net_prefix);
        if (net_cidr_parse(cfg->net_sandbox_range, &nc.net.sandbox_range) < 0 ||
            net_cidr_parse(cfg->net_veth_range, &nc.net.veth_range) < 0) {
                r = ha_err_set(err, -EINVAL, "--net-sandbox-range %s / --net-veth-range %s: not IPv4 CIDRs",
                               cfg->net_sandbox_range, cfg->net_veth_range);
                goto out_free;
        }
        nc.net.slots = cfg->slots;
        nc.warm = cfg->pool;
        r = net_pool_new(&nc, &b->pool, err);
        if (r < 0)
                goto out_free;
        r = vm_watcher_new(&b->watcher);
        if (r < 0) {
                ha_err_set(err, r, "cannot start the VMM exit watcher: %s", strerror(-r));
                goto out_free;
        }
        const char *kernel = cfg->kernel;
        if (!kernel) {
                const char *base = strrchr(cfg->firecracker_bin, '/');
                base = base ? base + 1 : cfg->firecracker_bin;
                if (strncmp(base, "fcsim", 5) != 0) {
                        r = ha_err_set(err, -EINVAL, "--kernel is required with Firecracker (%s)", cfg->firecracker_bin);
                        goto out_free;
                }
                /* The simulator boots the rootfs in namespaces and only
                 * checks that the kernel file opens: give it a placeholder. */
                snprintf(b->sim_kernel, sizeof b->sim_kernel, "%s/simulator-kernel", cfg->state_dir);
                FILE *f = fopen(b->sim_kernel, "we");
                if (!f) {
                        r = ha_err_set(err, -errno, "cannot write %s: %s", b->sim_kernel, strerror(errno));
                        goto out_free;
                }
                fputs("placeholder kernel for fcsim (the simulator does not run a kernel)\n", f);
                fclose(f);
                kernel = b->sim_kernel;
        }
        b->vmcfg = (struct vm_config){
                .firecracker_bin = cfg->firecracker_bin,
                .kernel_path = kernel,
                .run_dir = cfg->run_dir,
                .jailer_bin = cfg->jailer_bin,
                .jailer_uid = (uid_t)cfg->jailer_uid,
                .jailer_gid = (gid_t)cfg->jailer_gid,
                .chroot_base = cfg->chroot_base,
                .api_timeout_ms = cfg->vmm_api_timeout_ms,
                .boot_timeout_ms = cfg->vmm_boot_timeout_ms,
                .watcher = b->watcher,
        };
        b->table = (struct sbx_backend){
                .ctx = b,
                .net_acquire = net_acquire,
                .net_release = net_release,
                .rootfs_clone = rootfs_clone_hook,
                .rootfs_remove = rootfs_remove_hook,
                .vmm_start = vmm_start,
                .vmm_configure = vmm_configure,
                .vmm_boot = vmm_boot,
                .vmm_wait_ready = vmm_wait_ready,
                .vmm_pause = vmm_pause,
                .vmm_resume = vmm_resume,
                .vmm_snapshot = vmm_snapshot,
                .vmm_restore = vmm_restore,
                .vmm_stop = vmm_stop,
                .vmm_forget = vmm_forget,
                .vmm_alive = vmm_alive,
                .vmm_paused = vmm_paused,
                .vmm_adopt = vmm_adopt,
                .cleanup_orphans = cleanup_orphans,
        };
        *ret = b;
        return 0;
out_free:
        ha_backend_free(b);
        return r;
}

const struct sbx_backend *ha_backend_table(ha_backend *b)
{
        return &b->table;
}

void ha_backend_attach(ha_backend *b, sbx_mgr *m)
{
        b->mgr = m;
}

int ha_backend_start(ha_backend *b)
{
        return net_pool_start(b->pool);
}

void ha_backend_pool_stats(ha_backend *b, struct net_pool_stats *ret)
{
        net_pool_stats_get(b->pool, ret);
}

void ha_backend_free(ha_backend *b)
{
        if (!b)
                return;
        vm_watcher_free(b->watcher);
        net_pool_free(b->pool);
        free(b);
}
