/*
 * recover.c - startup reconciliation: the store says what should exist, the
 * backend says what does.
 *
 * For each persisted record:
 *  - running / paused with a live VMM (pid and start time match: a recycled
 *    pid is not our VMM) or, when snapshotted, with its snapshot: adopted
 *    with its expires_at; an expiry that passed while the agent was down
 *    fires as soon as the reaper is armed, at the end.
 *  - running / paused with a dead VMM: the rootfs clone and slot are
 *    released and the record stays FAILED, so the control plane learns what
 *    happened instead of seeing the sandbox vanish.
 *  - creating: the create never answered; it is rolled back and deleted.
 *    stopping: the destroy is finished and the record deleted.
 *  - failed: kept as it was.
 * Then the backend removes whatever no kept record owns (processes, netns,
 * TAPs, clones, mounts, sockets), and only then is the manager ready.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "sandbox/sbx_int.h"
#include "sandbox/store.h"

struct recovery {
        sbx_mgr *m;
        struct sbx_resources *live;   /* what cleanup_orphans must keep */
        size_t n_live, cap_live;
        unsigned adopted, failed, finished;
};

static int keep_live(struct recovery *rc, const struct sbx_resources *res)
{
        if (!res->has_net && !res->has_rootfs && !res->has_vmm)
                return 0;
        if (rc->n_live == rc->cap_live) {
                size_t ncap = rc->cap_live ? rc->cap_live * 2 : 32;
                struct sbx_resources *n = reallocarray(rc->live, ncap, sizeof *n);
                if (!n)
                        return -ENOMEM;
                rc->live = n;
                rc->cap_live = ncap;
        }
        rc->live[rc->n_live++] = *res;
        return 0;
}

/* True when the record's VMM is there to adopt; fills res->vmm.handle. */
static bool adopt(sbx_mgr *m, struct sbx_resources *res, bool snapshotted)
{
        const struct sbx_backend *be = m->be;
        struct ha_err e = { { 0 } };
        if (!res->has_vmm)
                return false;
        if (!(snapshotted && res->vmm.pid == 0) &&
            (res->vmm.pid <= 0 || !be->vmm_alive(be->ctx, res->vmm.pid, res->vmm.start_time)))
                return false;
        res->vmm.handle = NULL;
        int r = be->vmm_adopt(be->ctx, res, &res->vmm, &e);
        if (r < 0) {
                ha_log_warn("sbx.recover.adopt_failed", "sbx=%s pid=%d error=%d msg=\"%s\"", res->id,
                            res->vmm.pid, r, e.msg);
                return false;
        }
        return true;
}

/* Releases everything a record holds whose VMM is not adopted: a live VMM
 * (interrupted create/destroy) is adopted first so vmm_stop can stop it
 * properly; a dead one is cleaned by id with a NULL handle. Returns 0 or the
 * first release failure, with words appended to |failure|. */
static int release_unadopted(sbx_mgr *m, struct sbx_resources *res, char *failure, size_t size)
{
        struct ha_err e = { { 0 } };
        if (res->has_vmm && !adopt(m, res, false))
                res->vmm.handle = NULL;
        int r = sbx_release_resources(m, res, &e);
        if (r < 0) {
                size_t n = strnlen(failure, size);
                snprintf(failure + n, size - n, "%scleanup failed: %.150s", n ? "; " : "", e.msg);
        }
        return r;
}

/* A crash between a pause/resume call and its store write leaves the record
 * one transition behind the VMM: believe the VMM. */
static void correct_paused(sbx_mgr *m, struct sbx *s, const struct sbx_resources *res,
                           bool *persist)
{
        const struct sbx_backend *be = m->be;
        if (!be->vmm_paused || s->snapshotted)
                return;
        int p = be->vmm_paused(be->ctx, &res->vmm);
        enum sbx_state actual = p == 1 ? SBX_STATE_PAUSED : p == 0 ? SBX_STATE_RUNNING : s->state;
        if (actual == s->state)
                return;
        ha_log_warn("sbx.recover.state_corrected", "sbx=%s record=%s vmm=%s", s->id,
                    sbx_state_name(s->state), sbx_state_name(actual));
        s->state = actual;
        *persist = true;
}

static int recover_row(void *ctx, struct sbx_row *row)
{
        struct recovery *rc = ctx;
        sbx_mgr *m = rc->m;
        struct ha_err e = { { 0 } };
        struct sbx *s = sbx_obj_new(m, &row->rec.spec, row->rec.created_at_ms);
        if (!s) {
                sbx_record_done(&row->rec);
                return -ENOMEM;
        }
        s->state = row->rec.state;
        s->expires_at_ms = row->rec.expires_at_ms;
        s->snapshotted = row->rec.snapshotted;
        snprintf(s->failure, sizeof s->failure, "%s", row->rec.failure);
        struct sbx_resources res = row->res;
        res.vmm.handle = NULL;
        bool emit_failed = false, persist = false;

        switch (s->state) {
        case SBX_STATE_CREATING:
        case SBX_STATE_STOPPING:
                /* The create never answered, or the destroy was asked for:
                 * finish either way and forget the record. */
                s->failure[0] = '\0';
                if (release_unadopted(m, &res, s->failure, sizeof s->failure) == 0) {
                        if (sbx_store_delete(m->store, s->id, &e) < 0)
                                ha_log_error("sbx.store.delete_failed", "sbx=%s error=\"%s\"", s->id, e.msg);
                        ha_log_info("sbx.recover.finished", "sbx=%s was=%s", s->id,
                                    sbx_state_name(s->state));
                        rc->finished++;
                        sbx_obj_unref(s);
                        return 0;
                }
                s->state = SBX_STATE_FAILED;
                emit_failed = true;
                break;
        case SBX_STATE_RUNNING:
        case SBX_STATE_PAUSED:
                if (adopt(m, &res, s->snapshotted)) {
                        correct_paused(m, s, &res, &persist);
                        ha_log_info("sbx.recover.adopted", "sbx=%s state=%s pid=%d", s->id,
                                    sbx_state_name(s->state), res.vmm.pid);
                        rc->adopted++;
                        break;
                }
                snprintf(s->failure, sizeof s->failure,
                         "vmm pid %d no longer running after agent restart", res.vmm.pid);
                res.vmm.handle = NULL;
                (void)release_unadopted(m, &res, s->failure, sizeof s->failure);
                s->state = SBX_STATE_FAILED;
                s->snapshotted = false;
                emit_failed = true;
                ha_log_warn("sbx.recover.dead", "sbx=%s failure=\"%s\"", s->id, s->failure);
                break;
        case SBX_STATE_FAILED:
        case SBX_STATE_GONE:
                s->state = SBX_STATE_FAILED;
                break;
        }
        if (s->state == SBX_STATE_FAILED)
                rc->failed++;
        s->res = res;

        int r;
        pthread_mutex_lock(&m->index_lock);
        r = sbx_index_insert_locked(m, s);
        if (r == 0 && s->state != SBX_STATE_FAILED)
                sbx_admit_force_locked(m, s);
        pthread_mutex_unlock(&m->index_lock);
        if (r == 0)
                r = keep_live(rc, &res);
        if (r == 0 && persist && !emit_failed)
                sbx_persist(m, s);
        if (r == 0 && emit_failed) {
                /* No operation can run yet (not ready): claim it anyway so
                 * publishing follows the usual rule. */
                s->busy = true;
                sbx_persist(m, s);
                struct sbx_record v;
                pthread_mutex_lock(&s->lock);
                s->busy = false;
                r = sbx_obj_snapshot_locked(s, &v);
                pthread_mutex_unlock(&s->lock);
                if (r == 0)
                        sbx_hub_emit(m, SBX_EVENT_FAILED, v.failure, &v);
                sbx_record_done(&v);
        }
        sbx_obj_unref(s);
        return r;
}

int sbx_mgr_recover(sbx_mgr *m, struct ha_err *err)
{
        const struct sbx_backend *be = m->be;
        struct recovery rc = { .m = m };
        struct ha_err e = { { 0 } };
        if (atomic_load(&m->ready))
                return ha_err_set(err, -EALREADY, "sandbox manager already recovered");
        int r = sbx_store_load(m->store, recover_row, &rc, err);
        if (r < 0)
                goto out_free;

        r = be->cleanup_orphans(be->ctx, rc.live, rc.n_live, &e);
        if (r < 0)   /* leftovers are not records: serve anyway, say so */
                ha_log_error("sbx.recover.orphans_failed", "error=%d msg=\"%s\"", r, e.msg);

        /* Arm TTLs last, so nothing is reaped while records are still loading. */
        struct sbx **v;
        size_t n;
        r = sbx_index_collect(m, &v, &n);
        if (r < 0) {
                ha_err_set(err, r, "out of memory arming TTLs");
                goto out_free;
        }
        for (size_t i = 0; i < n; i++) {
                pthread_mutex_lock(&v[i]->lock);
                sbx_reaper_arm(m, v[i], v[i]->expires_at_ms);
                pthread_mutex_unlock(&v[i]->lock);
        }
        sbx_index_release(v, n);
        atomic_store(&m->ready, true);
        ha_log_info("sbx.recover.done", "adopted=%u failed=%u finished=%u kept=%zu", rc.adopted,
                    rc.failed, rc.finished, rc.n_live);
        r = 0;
out_free:
        free(rc.live);
        return r;
}
