/*
 * mgr.c - the manager object: configuration, the id index, read-only views
 * (get, list, host info) and startup/shutdown.
 *
 * The index is a balanced tree (glibc tsearch) keyed by id, so List comes out
 * sorted without a sort. Readers copy values under short locks and never
 * wait for an operation in flight: Get/List/HostInfo may run on an I/O loop.
 * The state-changing paths live in lifecycle.c, the reaper in reaper.c,
 * events in watch.c, startup reconciliation in recover.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <search.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "sandbox/sbx_int.h"
#include "sandbox/store.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

void sbx_config_init(struct sbx_config *c)
{
        memset(c, 0, sizeof *c);
        c->max_sandboxes = 256;
        c->cpu_overcommit = 4.0;
        c->mem_overcommit = 1.0;
        c->default_vcpus = 1;
        c->default_memory_mib = 256;
        c->max_vcpus = 32;
        c->max_memory_mib = 32768;
        c->min_memory_mib = 64;
        c->default_ttl_s = 300;
        c->max_ttl_s = 86400;
        c->paused_ttl_s = 86400;
        c->ready_timeout_ms = 30000;
        c->watch_queue_len = 1024;
        c->max_watchers = 256;
        c->reaper_workers = 4;
        c->reaper_workers_max = 64;
}

static int64_t wall_clock(void *ctx)
{
        (void)ctx;
        return ha_wall_ms();
}

int64_t sbx_now(sbx_mgr *m)
{
        return m->cfg.clock(m->cfg.clock_ctx);
}

int sbx_mgr_check_serving(sbx_mgr *m, struct ha_err *err)
{
        if (atomic_load(&m->draining))
                return ha_err_set(err, -ESHUTDOWN, "sandbox manager is shutting down");
        if (!atomic_load(&m->ready))
                return ha_err_set(err, -ESHUTDOWN, "sandbox manager is recovering its state");
        return 0;
}

/* Tree keys are pointers to struct sbx.id. */
static int id_cmp(const void *a, const void *b)
{
        return strcmp(a, b);
}

struct sbx *sbx_index_get(sbx_mgr *m, const char *id)
{
        struct sbx *s = NULL;
        pthread_mutex_lock(&m->index_lock);
        void *node = tfind(id, &m->index, id_cmp);
        if (node) {
                s = container_of(*(char **)node, struct sbx, id);
                sbx_obj_ref(s);
        }
        pthread_mutex_unlock(&m->index_lock);
        return s;
}

struct sbx *sbx_index_find_locked(sbx_mgr *m, const char *id)
{
        void *node = tfind(id, &m->index, id_cmp);
        return node ? container_of(*(char **)node, struct sbx, id) : NULL;
}

/* The index takes a reference. Returns 0, -EEXIST, -ENOMEM. */
int sbx_index_insert_locked(sbx_mgr *m, struct sbx *s)
{
        if (tfind(s->id, &m->index, id_cmp))
                return -EEXIST;
        if (!tsearch(s->id, &m->index, id_cmp))
                return -ENOMEM;
        sbx_obj_ref(s);
        m->n_index++;
        return 0;
}

/* Drops the index's reference when |s| is the listed object for its id. */
void sbx_index_remove(sbx_mgr *m, struct sbx *s)
{
        bool removed = false;
        pthread_mutex_lock(&m->index_lock);
        void *node = tfind(s->id, &m->index, id_cmp);
        if (node && container_of(*(char **)node, struct sbx, id) == s) {
                tdelete(s->id, &m->index, id_cmp);
                m->n_index--;
                removed = true;
        }
        sbx_admit_release_locked(m, s);
        pthread_mutex_unlock(&m->index_lock);
        if (removed)
                sbx_obj_unref(s);
}

struct collect {
        struct sbx **v;
        size_t n, cap;
};

static void collect_node(const void *node, VISIT which, void *ctx)
{
        struct collect *c = ctx;
        if (which != postorder && which != leaf)
                return;
        if (c->n < c->cap) {
                struct sbx *s = container_of(*(char *const *)node, struct sbx, id);
                sbx_obj_ref(s);
                c->v[c->n++] = s;
        }
}

int sbx_index_collect(sbx_mgr *m, struct sbx ***ret_v, size_t *ret_n)
{
        struct collect c = { 0 };
        pthread_mutex_lock(&m->index_lock);
        c.cap = m->n_index;
        if (c.cap) {
                c.v = calloc(c.cap, sizeof *c.v);
                if (!c.v) {
                        pthread_mutex_unlock(&m->index_lock);
                        return -ENOMEM;
                }
                twalk_r(m->index, collect_node, &c);
        }
        pthread_mutex_unlock(&m->index_lock);
        *ret_v = c.v;
        *ret_n = c.n;
        return 0;
}

void sbx_index_release(struct sbx **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                sbx_obj_unref(v[i]);
        free(v);
}

static bool backend_complete(const struct sbx_backend *b)
{
        return b && b->net_acquire && b->net_release && b->rootfs_clone && b->rootfs_remove &&
               b->vmm_start && b->vmm_configure && b->vmm_boot && b->vmm_wait_ready &&
               b->vmm_pause && b->vmm_resume && b->vmm_snapshot && b->vmm_restore &&
               b->vmm_stop && b->vmm_forget && b->vmm_alive && b->vmm_adopt &&
               b->cleanup_orphans;
}

int sbx_mgr_new(const struct sbx_config *cfg, const struct sbx_backend *backend,
                sbx_mgr **ret_mgr, struct ha_err *err)
{
        int r;
        if (!cfg || !cfg->state_dir || !cfg->state_dir[0])
                return ha_err_set(err, -EINVAL, "sandbox manager: state_dir is required");
        if (!backend_complete(backend))
                return ha_err_set(err, -EINVAL, "sandbox manager: backend table is incomplete");
        if (cfg->max_sandboxes == 0 || cfg->default_vcpus == 0 || cfg->max_vcpus == 0 ||
            cfg->default_memory_mib == 0 || cfg->default_ttl_s == 0 || cfg->max_ttl_s == 0 ||
            cfg->default_ttl_s > cfg->max_ttl_s || cfg->paused_ttl_s == 0 ||
            cfg->watch_queue_len == 0 || cfg->cpu_overcommit <= 0 || cfg->mem_overcommit <= 0 ||
            cfg->reaper_workers == 0 || cfg->ready_timeout_ms == 0)
                return ha_err_set(err, -EINVAL,
                                  "sandbox manager: a limit is zero or inconsistent (start from sbx_config_init())");

        sbx_mgr *m = calloc(1, sizeof *m);
        if (!m)
                return ha_err_set(err, -ENOMEM, "out of memory");
        m->cfg = *cfg;
        m->state_dir = strdup(cfg->state_dir);
        if (!m->state_dir) {
                r = ha_err_set(err, -ENOMEM, "out of memory");
                goto out_free;
        }
        m->cfg.state_dir = m->state_dir;
        if (!m->cfg.clock)
                m->cfg.clock = wall_clock;
        m->be = backend;
        pthread_mutex_init(&m->index_lock, NULL);

        uint64_t host_vcpus = cfg->host_vcpus;
        if (!host_vcpus) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                host_vcpus = n > 0 ? (uint64_t)n : 1;
        }
        uint64_t host_mem = cfg->host_memory_mib;
        if (!host_mem) {
                long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
                host_mem = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz >> 20 : 1024;
        }
        m->cap_vcpus = (uint64_t)((double)host_vcpus * cfg->cpu_overcommit);
        m->cap_memory_mib = (uint64_t)((double)host_mem * cfg->mem_overcommit);
        if (!m->cfg.slots)
                m->cfg.slots = cfg->max_sandboxes;

        r = sbx_hub_init(&m->hub);
        if (r < 0) {
                ha_err_set(err, r, "sandbox manager: event hub: %s", strerror(-r));
                goto out_index;
        }
        r = sbx_store_open(m->state_dir, &m->store, err);
        if (r < 0)
                goto out_hub;
        r = sbx_reaper_start(m);
        if (r < 0) {
                ha_err_set(err, r, "sandbox manager: reaper threads: %s", strerror(-r));
                goto out_store;
        }
        ha_log_info("sbx.mgr.open", "state_dir=%s max_sandboxes=%u vcpus=%" PRIu64
                    " memory_mib=%" PRIu64, m->state_dir, m->cfg.max_sandboxes, m->cap_vcpus,
                    m->cap_memory_mib);
        *ret_mgr = m;
        return 0;

out_store:
        sbx_store_close(m->store);
out_hub:
        sbx_hub_done(&m->hub);
out_index:
        pthread_mutex_destroy(&m->index_lock);
out_free:
        free(m->state_dir);
        free(m);
        return r;
}

bool sbx_mgr_ready(sbx_mgr *m)
{
        return atomic_load(&m->ready) && !atomic_load(&m->draining);
}

void sbx_mgr_drain(sbx_mgr *m)
{
        if (atomic_exchange(&m->draining, true))
                return;
        sbx_hub_shutdown(&m->hub);
        sbx_reaper_stop(m);
        ha_log_info("sbx.mgr.drain", "state_dir=%s", m->state_dir);
}

static void forget_node(void *key)
{
        struct sbx *s = container_of((char *)key, struct sbx, id);
        sbx_mgr *m = s->mgr;
        /* Nothing else runs now: the VMM handle is dropped, the process kept. */
        pthread_mutex_lock(&s->lock);
        if (s->res.has_vmm && s->res.vmm.handle) {
                m->be->vmm_forget(m->be->ctx, &s->res.vmm);
                s->res.vmm.handle = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        sbx_obj_unref(s);
}

void sbx_mgr_free(sbx_mgr *m)
{
        if (!m)
                return;
        sbx_mgr_drain(m);
        sbx_reaper_done(m);
        tdestroy(m->index, forget_node);
        m->index = NULL;
        sbx_store_close(m->store);
        sbx_hub_done(&m->hub);
        pthread_mutex_destroy(&m->index_lock);
        free(m->state_dir);
        free(m);
}

int sbx_mgr_get(sbx_mgr *m, const char *id, struct sbx_record *ret_rec, struct ha_err *err)
{
        if (!sbx_id_valid(id))
                return ha_err_set(err, -EINVAL, "sandbox_id \"%.70s\" is not a valid id",
                                  id ? id : "");
        struct sbx *s = sbx_index_get(m, id);
        if (!s)
                return ha_err_set(err, -ENOENT, "sandbox %s not found", id);
        int r = 0;
        pthread_mutex_lock(&s->lock);
        if (s->state == SBX_STATE_GONE)
                r = ha_err_set(err, -ENOENT, "sandbox %s not found", id);
        else if (sbx_obj_snapshot_locked(s, ret_rec) < 0)
                r = ha_err_set(err, -ENOMEM, "out of memory");
        pthread_mutex_unlock(&s->lock);
        sbx_obj_unref(s);
        return r;
}

static bool matches(const struct sbx *s, const struct sbx_filter *f)
{
        if (s->state == SBX_STATE_GONE)
                return false;
        if (!f)
                return true;
        if (f->n_states) {
                bool any = false;
                for (size_t i = 0; i < f->n_states && !any; i++)
                        any = f->states[i] == s->state;
                if (!any)
                        return false;
        }
        return !f->metadata || sbx_map_contains(&s->spec.metadata, f->metadata);
}

int sbx_mgr_list(sbx_mgr *m, const struct sbx_filter *f, struct sbx_record **ret_recs,
                 size_t *ret_n)
{
        struct sbx **v;
        size_t n, out = 0;
        int r = sbx_index_collect(m, &v, &n);
        if (r < 0)
                return r;
        struct sbx_record *recs = n ? calloc(n, sizeof *recs) : NULL;
        if (n && !recs) {
                sbx_index_release(v, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n && r == 0; i++) {
                pthread_mutex_lock(&v[i]->lock);
                if (matches(v[i], f)) {
                        r = sbx_obj_snapshot_locked(v[i], &recs[out]);
                        if (r == 0)
                                out++;
                }
                pthread_mutex_unlock(&v[i]->lock);
        }
        sbx_index_release(v, n);
        if (r < 0) {
                sbx_records_free(recs, out);
                return r;
        }
        *ret_recs = recs;
        *ret_n = out;
        return 0;
}

void sbx_mgr_host_info(sbx_mgr *m, struct sbx_host_info *ret)
{
        memset(ret, 0, sizeof *ret);
        ret->capacity.sandboxes = m->cfg.max_sandboxes;
        ret->capacity.slots = m->cfg.slots;
        ret->capacity.vcpus = m->cap_vcpus > UINT32_MAX ? UINT32_MAX : (uint32_t)m->cap_vcpus;
        ret->capacity.memory_mib = m->cap_memory_mib;
        struct sbx **v = NULL;
        size_t n = 0;
        pthread_mutex_lock(&m->index_lock);
        ret->usage.sandboxes = m->used.sandboxes;
        ret->usage.vcpus = (uint32_t)m->used.vcpus;
        ret->usage.memory_mib = m->used.memory_mib;
        pthread_mutex_unlock(&m->index_lock);
        if (sbx_index_collect(m, &v, &n) == 0) {
                for (size_t i = 0; i < n; i++) {
                        pthread_mutex_lock(&v[i]->lock);
                        switch (v[i]->state) {
                        case SBX_STATE_CREATING: ret->creating++; break;
                        case SBX_STATE_RUNNING: ret->running++; break;
                        case SBX_STATE_PAUSED: ret->paused++; break;
                        case SBX_STATE_STOPPING: ret->stopping++; break;
                        case SBX_STATE_FAILED: ret->failed++; break;
                        case SBX_STATE_GONE: break;
                        }
                        if (v[i]->state != SBX_STATE_GONE && v[i]->res.has_net)
                                ret->usage.slots++;
                        pthread_mutex_unlock(&v[i]->lock);
                }
                sbx_index_release(v, n);
        }
        ret->watchers = sbx_hub_count(&m->hub);
        ret->ready = sbx_mgr_ready(m);
}

int sbx_mgr_vsock_path(sbx_mgr *m, const char *id, char *ret_path, size_t size,
                       struct ha_err *err)
{
        if (!sbx_id_valid(id))
                return ha_err_set(err, -EINVAL, "sandbox_id \"%.70s\" is not a valid id",
                                  id ? id : "");
        struct sbx *s = sbx_index_get(m, id);
        if (!s)
                return ha_err_set(err, -ENOENT, "sandbox %s not found", id);
        int r = 0;
        pthread_mutex_lock(&s->lock);
        if (s->state == SBX_STATE_GONE)
                r = ha_err_set(err, -ENOENT, "sandbox %s not found", id);
        else if (s->state != SBX_STATE_RUNNING)
                r = ha_err_set(err, -EBADFD, "sandbox %s is %s, not running", id,
                               sbx_state_name(s->state));
        else if ((size_t)snprintf(ret_path, size, "%s", s->res.vmm.vsock_uds) >= size)
                r = ha_err_set(err, -ENAMETOOLONG, "vsock path of %s does not fit", id);
        pthread_mutex_unlock(&s->lock);
        sbx_obj_unref(s);
        return r;
}

void sbx_mgr_clock_changed(sbx_mgr *m)
{
        sbx_reaper_kick(m);
}
