/*
 * fake_backend.c - see fake_backend.h. Everything happens under one mutex;
 * the table is an open-addressing hash on the id (entries of released ids
 * become tombstones so probe chains stay intact).
 */
#include "fake_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/err.h"
#include "core/time.h"

static uint32_t hash_id(const char *s)
{
        uint32_t h = 2166136261u;
        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 16777619u;
        return h;
}

/* Finds |id|'s entry; with |create| takes a free or tombstoned one. */
static struct fake_ent *find(struct fake *f, const char *id, bool create)
{
        uint32_t h = hash_id(id);
        struct fake_ent *first_free = NULL;
        for (uint32_t i = 0; i < FAKE_TABLE; i++) {
                struct fake_ent *e = &f->ent[(h + i) % FAKE_TABLE];
                if (e->id[0] && strcmp(e->id, id) == 0)
                        return e;
                if (!e->id[0]) {
                        if (!first_free)
                                first_free = e;
                        if (!e->tomb)
                                break;   /* end of the probe chain */
                }
        }
        if (!create || !first_free)
                return NULL;
        memset(first_free, 0, sizeof *first_free);
        snprintf(first_free->id, sizeof first_free->id, "%s", id);
        return first_free;
}

/* Frees the entry when it holds nothing any more. */
static void maybe_release(struct fake_ent *e)
{
        if (!e->net && !e->rootfs && !e->vmm) {
                memset(e, 0, sizeof *e);
                e->tomb = true;
        }
}

/* Counts the call, applies delay and failure injection. Lock held. */
static int enter(struct fake *f, enum fake_step step, struct ha_err *err)
{
        f->calls[step]++;
        int d = f->delay_ms[step];
        if (d > 0) {
                pthread_mutex_unlock(&f->lock);
                struct timespec ts = { d / 1000, (long)(d % 1000) * 1000000L };
                nanosleep(&ts, NULL);
                pthread_mutex_lock(&f->lock);
        }
        if (f->fail_errno[step] && f->fail_left[step] != 0) {
                if (f->fail_left[step] > 0)
                        f->fail_left[step]--;
                return ha_err_set(err, -f->fail_errno[step], "injected failure at step %d", step);
        }
        return 0;
}

static int net_acquire(void *ctx, const char *id, const struct sbx_egress *egress,
                       struct sbx_net_lease *ret, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_NET_ACQUIRE, err);
        if (r == 0 && egress->mode == SBX_EGRESS_UNSPECIFIED)
                f->violations++;   /* the manager must normalise */
        struct fake_ent *e = r == 0 ? find(f, id, true) : NULL;
        if (r == 0 && (!e || e->net)) {
                f->violations += e ? 1 : 0;
                r = ha_err_set(err, -ENOSPC, "fake table full or slot held twice");
        }
        uint32_t slot = 0;
        while (r == 0 && slot < FAKE_SLOTS && f->slot_used[slot])
                slot++;
        if (r == 0 && slot == FAKE_SLOTS)
                r = ha_err_set(err, -ENOSPC, "no free slot");
        if (r == 0) {
                f->slot_used[slot] = true;
                e->net = true;
                e->slot = slot;
                f->net_acquired++;
                f->live_net++;
                memset(ret, 0, sizeof *ret);
                ret->slot = slot;
                snprintf(ret->host_ip, sizeof ret->host_ip, "10.11.%u.%u", slot / 256, slot % 256);
                snprintf(ret->netns_path, sizeof ret->netns_path, "/run/netns/fake-%u", slot);
                snprintf(ret->tap_name, sizeof ret->tap_name, "tap0");
                snprintf(ret->guest_ip, sizeof ret->guest_ip, "169.254.0.21");
                snprintf(ret->guest_mac, sizeof ret->guest_mac, "02:fc:00:00:00:05");
        } else if (e) {
                maybe_release(e);
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int net_release(void *ctx, const char *id, const struct sbx_net_lease *lease,
                       struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_NET_RELEASE, err);
        if (r == 0) {
                struct fake_ent *e = find(f, id, false);
                if (!e || !e->net || e->slot != lease->slot) {
                        f->violations++;
                } else {
                        f->slot_used[e->slot] = false;
                        e->net = false;
                        f->net_released++;
                        f->live_net--;
                        maybe_release(e);
                }
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int rootfs_clone(void *ctx, const char *id, const char *image, char *ret_path,
                        struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_ROOTFS_CLONE, err);
        struct fake_ent *e = r == 0 ? find(f, id, false) : NULL;
        if (r == 0 && (!e || !e->net || e->rootfs)) {
                f->violations++;   /* out of order or twice */
                r = ha_err_set(err, -EPROTO, "rootfs clone out of order");
        }
        if (r == 0) {
                e->rootfs = true;
                f->rootfs_cloned++;
                f->live_rootfs++;
                snprintf(ret_path, SBX_PATH_MAX, "/fake/rootfs/%s-%s.ext4", id, image);
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int rootfs_remove(void *ctx, const char *id, const char *path, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_ROOTFS_REMOVE, err);
        if (r == 0) {
                struct fake_ent *e = find(f, id, false);
                if (!e || !e->rootfs || e->vmm) {
                        f->violations++;   /* twice, or under a live VMM */
                } else {
                        e->rootfs = false;
                        f->rootfs_removed++;
                        f->live_rootfs--;
                        maybe_release(e);
                }
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

static void fill_vmm(struct fake *f, struct fake_ent *e, struct sbx_vmm *v)
{
        e->pid = ++f->next_pid;
        e->start_time = ++f->next_start;
        e->alive = true;
        v->handle = e;
        v->pid = e->pid;
        v->start_time = e->start_time;
        snprintf(v->api_sock, sizeof v->api_sock, "/fake/run/%s/api.sock", e->id);
        snprintf(v->vsock_uds, sizeof v->vsock_uds, "/fake/run/%s/vsock.sock", e->id);
}

static int vmm_start(void *ctx, const char *id, const struct sbx_net_lease *net,
                     struct sbx_vmm *ret, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_VMM_START, err);
        struct fake_ent *e = r == 0 ? find(f, id, false) : NULL;
        if (r == 0 && (!e || !e->rootfs || e->vmm)) {
                f->violations++;
                r = ha_err_set(err, -EPROTO, "vmm start out of order");
        }
        if (r == 0) {
                memset(ret, 0, sizeof *ret);
                e->vmm = true;
                fill_vmm(f, e, ret);
                f->vmm_started++;
                f->live_vmm++;
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

/* The entry behind a handle, checked. Lock held. */
static struct fake_ent *ent_of(struct fake *f, struct sbx_vmm *v)
{
        struct fake_ent *e = v->handle;
        if (!e || !e->vmm) {
                f->violations++;
                return NULL;
        }
        return e;
}

static int vmm_configure(void *ctx, struct sbx_vmm *vmm, const struct sbx_vm_config *cfg,
                         struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_VMM_CONFIGURE, err);
        struct fake_ent *e = r == 0 ? ent_of(f, vmm) : NULL;
        if (r == 0 && (!e || !cfg->rootfs_path[0] || !cfg->net || cfg->vcpus == 0))
                r = ha_err_set(err, -EPROTO, "bad configure");
        if (r == 0 && !e->alive)
                r = ha_err_set(err, -ECONNREFUSED, "vmm is dead");
        if (r == 0)
                e->configured = true;
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int vmm_boot(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_VMM_BOOT, err);
        struct fake_ent *e = r == 0 ? ent_of(f, vmm) : NULL;
        if (r == 0 && (!e || !e->configured)) {
                f->violations++;
                r = ha_err_set(err, -EPROTO, "boot before configure");
        }
        if (r == 0 && !e->alive)
                r = ha_err_set(err, -ECONNREFUSED, "vmm is dead");
        if (r == 0)
                e->booted = true;
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int vmm_wait_ready(void *ctx, struct sbx_vmm *vmm, uint64_t deadline_ms,
                          const struct sbx_cancel *cancel, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        f->calls[FAKE_VMM_WAIT_READY]++;
        int delay = f->delay_ms[FAKE_VMM_WAIT_READY];
        pthread_mutex_unlock(&f->lock);
        /* Like a real readiness probe: sleep in short steps, watching the
         * cancel check and the deadline. */
        uint64_t until = ha_now_ms() + (uint64_t)delay;
        while (ha_now_ms() < until) {
                if (cancel && cancel->cancelled && cancel->cancelled(cancel->ctx))
                        return ha_err_set(err, -ECANCELED, "cancelled");
                if (ha_now_ms() >= deadline_ms)
                        return ha_err_set(err, -ETIMEDOUT, "guest not ready in time");
                struct timespec ts = { 0, 2000000L };
                nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&f->lock);
        int r = 0;
        if (f->fail_errno[FAKE_VMM_WAIT_READY] && f->fail_left[FAKE_VMM_WAIT_READY] != 0) {
                if (f->fail_left[FAKE_VMM_WAIT_READY] > 0)
                        f->fail_left[FAKE_VMM_WAIT_READY]--;
                r = ha_err_set(err, -f->fail_errno[FAKE_VMM_WAIT_READY], "injected failure at step %d",
                               FAKE_VMM_WAIT_READY);
        }
        struct fake_ent *e = r == 0 ? ent_of(f, vmm) : NULL;
        if (r == 0 && (!e || !e->booted)) {
                f->violations++;
                r = ha_err_set(err, -EPROTO, "ready before boot");
        }
        if (r == 0 && !e->alive)
                r = ha_err_set(err, -ECONNRESET, "vmm is dead");
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int vmm_pause(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_VMM_PAUSE, err);
        struct fake_ent *e = r == 0 ? ent_of(f, vmm) : NULL;
        if (r == 0 && (!e || e->paused || !e->alive))
                r = ha_err_set(err, -EPROTO, "pause: bad state");
        if (r == 0)
                e->paused = true;
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int vmm_resume(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_VMM_RESUME, err);
        struct fake_ent *e = r == 0 ? ent_of(f, vmm) : NULL;
        if (r == 0 && (!e || !e->paused || !e->alive))
                r = ha_err_set(err, -EPROTO, "resume: bad state");
        if (r == 0)
                e->paused = false;
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int vmm_snapshot(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_VMM_SNAPSHOT, err);
        struct fake_ent *e = r == 0 ? ent_of(f, vmm) : NULL;
        if (r == 0 && (!e || e->paused || !e->alive))
                r = ha_err_set(err, -EPROTO, "snapshot: bad state");
        if (r == 0) {
                e->snap = true;
                e->alive = false;
                e->pid = 0;
                vmm->pid = 0;
                vmm->start_time = 0;
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int vmm_restore(void *ctx, const char *id, const struct sbx_net_lease *net,
                       const char *rootfs_path, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_VMM_RESTORE, err);
        struct fake_ent *e = r == 0 ? ent_of(f, vmm) : NULL;
        if (r == 0 && (!e || !e->snap || strcmp(e->id, id) != 0))
                r = ha_err_set(err, -EPROTO, "restore: no snapshot");
        if (r == 0) {
                e->snap = false;
                e->paused = false;
                fill_vmm(f, e, vmm);
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int vmm_stop(void *ctx, const char *id, struct sbx_vmm *vmm, struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_VMM_STOP, err);
        if (r == 0) {
                /* No handle: a VMM recovery could not adopt; clean by id. */
                struct fake_ent *e = vmm->handle ? ent_of(f, vmm) : find(f, id, false);
                if (e && vmm->handle && strcmp(e->id, id) != 0)
                        f->violations++;
                if (e && e->vmm) {
                        e->vmm = e->alive = e->configured = e->booted = e->paused = e->snap = false;
                        e->pid = 0;
                        f->vmm_stopped++;
                        f->live_vmm--;
                        maybe_release(e);
                }
                vmm->handle = NULL;
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

static void vmm_forget(void *ctx, struct sbx_vmm *vmm)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        f->forgets++;
        vmm->handle = NULL;
        pthread_mutex_unlock(&f->lock);
}

static bool vmm_alive(void *ctx, int pid, uint64_t start_time)
{
        struct fake *f = ctx;
        bool alive = false;
        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < FAKE_TABLE && !alive; i++) {
                const struct fake_ent *e = &f->ent[i];
                alive = e->id[0] && e->vmm && e->alive && e->pid == pid &&
                        e->start_time == start_time;
        }
        pthread_mutex_unlock(&f->lock);
        return alive;
}

static int vmm_adopt(void *ctx, const struct sbx_resources *res, struct sbx_vmm *vmm,
                     struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_VMM_ADOPT, err);
        struct fake_ent *e = r == 0 ? find(f, res->id, false) : NULL;
        if (r == 0) {
                bool ok = e && e->vmm &&
                          (res->vmm.pid == 0 ? e->snap
                                             : e->alive && e->pid == res->vmm.pid &&
                                               e->start_time == res->vmm.start_time);
                if (!ok)
                        r = ha_err_set(err, -ESRCH, "no vmm to adopt for %s", res->id);
                else
                        vmm->handle = e;
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int vmm_paused(void *ctx, const struct sbx_vmm *vmm)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        const struct fake_ent *e = vmm->handle;
        int r = e && e->vmm ? e->paused : -ESRCH;
        pthread_mutex_unlock(&f->lock);
        return r;
}

static bool in_live(const struct sbx_resources *live, size_t n, const char *id)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(live[i].id, id) == 0)
                        return true;
        return false;
}

static int cleanup_orphans(void *ctx, const struct sbx_resources *live, size_t n_live,
                           struct ha_err *err)
{
        struct fake *f = ctx;
        pthread_mutex_lock(&f->lock);
        int r = enter(f, FAKE_CLEANUP_ORPHANS, err);
        for (size_t i = 0; r == 0 && i < FAKE_TABLE; i++) {
                struct fake_ent *e = &f->ent[i];
                if (!e->id[0] || in_live(live, n_live, e->id))
                        continue;
                if (e->vmm) {
                        f->live_vmm--;
                        f->vmm_stopped++;
                }
                if (e->rootfs) {
                        f->live_rootfs--;
                        f->rootfs_removed++;
                }
                if (e->net) {
                        f->slot_used[e->slot] = false;
                        f->live_net--;
                        f->net_released++;
                }
                f->orphans_removed++;
                memset(e, 0, sizeof *e);
                e->tomb = true;
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

struct fake *fake_new(bool shared)
{
        struct fake *f;
        if (shared) {
                f = mmap(NULL, sizeof *f, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
                if (f == MAP_FAILED)
                        return NULL;
                memset(f, 0, sizeof *f);
        } else {
                f = calloc(1, sizeof *f);
                if (!f)
                        return NULL;
        }
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        if (shared)
                pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutex_init(&f->lock, &a);
        pthread_mutexattr_destroy(&a);
        f->shared = shared;
        f->next_pid = 100000;
        f->next_start = 5000;
        return f;
}

void fake_free(struct fake *f)
{
        if (!f)
                return;
        pthread_mutex_destroy(&f->lock);
        if (f->shared)
                munmap(f, sizeof *f);
        else
                free(f);
}

void fake_backend(struct fake *f, struct sbx_backend *b)
{
        *b = (struct sbx_backend){
                .ctx = f,
                .net_acquire = net_acquire,
                .net_release = net_release,
                .rootfs_clone = rootfs_clone,
                .rootfs_remove = rootfs_remove,
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
                .vmm_adopt = vmm_adopt,
                .vmm_paused = vmm_paused,
                .cleanup_orphans = cleanup_orphans,
        };
}

void fake_fail(struct fake *f, enum fake_step step, int err, int times)
{
        pthread_mutex_lock(&f->lock);
        f->fail_errno[step] = err;
        f->fail_left[step] = times;
        pthread_mutex_unlock(&f->lock);
}

void fake_delay(struct fake *f, enum fake_step step, int ms)
{
        pthread_mutex_lock(&f->lock);
        f->delay_ms[step] = ms;
        pthread_mutex_unlock(&f->lock);
}

int fake_kill_vmm(struct fake *f, const char *id, bool report)
{
        pthread_mutex_lock(&f->lock);
        struct fake_ent *e = find(f, id, false);
        int pid = 0;
        if (e && e->vmm && e->alive) {
                pid = e->pid;
                e->alive = false;
        }
        pthread_mutex_unlock(&f->lock);
        if (pid && report && f->mgr)
                sbx_mgr_vmm_exited(f->mgr, id, pid, 128 + 9, "killed by test");
        return pid;
}

void fake_add_orphan(struct fake *f, const char *id)
{
        pthread_mutex_lock(&f->lock);
        struct fake_ent *e = find(f, id, true);
        uint32_t slot = 0;
        while (slot < FAKE_SLOTS && f->slot_used[slot])
                slot++;
        if (e && slot < FAKE_SLOTS) {
                f->slot_used[slot] = true;
                e->slot = slot;
                e->net = e->rootfs = e->vmm = e->alive = true;
                e->pid = ++f->next_pid;
                e->start_time = ++f->next_start;
                f->live_net++;
                f->live_rootfs++;
                f->live_vmm++;
        }
        pthread_mutex_unlock(&f->lock);
}

void fake_set_paused(struct fake *f, const char *id, bool paused)
{
        pthread_mutex_lock(&f->lock);
        struct fake_ent *e = find(f, id, false);
        if (e)
                e->paused = paused;
        pthread_mutex_unlock(&f->lock);
}

bool fake_get(struct fake *f, const char *id, struct fake_ent *ret)
{
        pthread_mutex_lock(&f->lock);
        struct fake_ent *e = find(f, id, false);
        if (e)
                *ret = *e;
        pthread_mutex_unlock(&f->lock);
        return e != NULL;
}

long fake_calls(struct fake *f, enum fake_step step)
{
        pthread_mutex_lock(&f->lock);
        long n = f->calls[step];
        pthread_mutex_unlock(&f->lock);
        return n;
}

void fake_live(struct fake *f, int *net, int *rootfs, int *vmm)
{
        pthread_mutex_lock(&f->lock);
        *net = f->live_net;
        *rootfs = f->live_rootfs;
        *vmm = f->live_vmm;
        pthread_mutex_unlock(&f->lock);
}

long fake_violations(struct fake *f)
{
        pthread_mutex_lock(&f->lock);
        long n = f->violations;
        pthread_mutex_unlock(&f->lock);
        return n;
}

bool fake_empty(struct fake *f)
{
        int n, r, v;
        fake_live(f, &n, &r, &v);
        return n == 0 && r == 0 && v == 0;
}
