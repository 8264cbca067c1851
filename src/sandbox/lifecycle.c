/*
 * lifecycle.c - the state machine: create, destroy, pause, resume,
 * set-timeout, and what happens when a VMM dies.
 *
 * Every operation follows one shape: under s->lock check the state and claim
 * the sandbox (busy = true), drop the lock, call the backend, then commit the
 * new state under the lock, persist the row, emit the event, and release the
 * claim. Readers never wait for a claim; other operations on the same sandbox
 * wait for it (polling their caller's cancel check), and operations on
 * different sandboxes never meet.
 *
 * Legal transitions (anything else is -EBADFD naming the current state):
 *   creating -> running            create commits
 *   creating -> failed -> gone     create rolls back (step failed, cancelled,
 *                                  destroyed meanwhile, VMM died)
 *   running  -> paused             pause
 *   paused   -> running            resume
 *   running|paused|failed -> stopping -> gone      destroy / TTL expiry
 *   running|paused -> failed       VMM exited on its own
 *   stopping -> failed             a release failed (destroy retries)
 *
 * Resources belong to the record: create keeps what it has acquired in a
 * local sbx_resources that it publishes to the record (and persists) after
 * each step, so a crash at any point leaves a row recovery can finish, and a
 * failure at any step releases exactly what was taken, in reverse order. The
 * caller's cancel check only decides whether the create goes on; it is never
 * consulted once the sandbox is running.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "sandbox/sbx_int.h"
#include "sandbox/store.h"

#define BIT(st) (1u << (st))

/* Sentinel from join_existing(): the sandbox vanished, create afresh. */
#define CREATE_RETRY 1

static bool is_cancelled(const struct sbx_cancel *c)
{
        return c && c->cancelled && c->cancelled(c->ctx);
}

/* Waits with s->lock held until no operation owns |s|, polling |cancel|
 * every 100 ms. Returns 0 or -ECANCELED. */
static int wait_idle_locked(struct sbx *s, const struct sbx_cancel *cancel)
{
        while (s->busy) {
                if (is_cancelled(cancel))
                        return -ECANCELED;
                struct timespec ts = ha_abs_monotonic(ha_now_ms() + 100);
                pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        }
        return 0;
}

/* A shallow view for persisting and emitting: spec is shared with |s|
 * (immutable while a reference is held); never sbx_record_done() it. */
static void view_locked(const struct sbx *s, struct sbx_record *v)
{
        memset(v, 0, sizeof *v);
        snprintf(v->id, sizeof v->id, "%s", s->id);
        v->state = s->state;
        v->spec = s->spec;
        v->created_at_ms = s->created_at_ms;
        v->expires_at_ms = s->expires_at_ms;
        v->snapshotted = s->snapshotted;
        snprintf(v->failure, sizeof v->failure, "%s", s->failure);
        if (s->res.has_net) {
                v->has_slot = true;
                v->slot = s->res.net.slot;
                snprintf(v->ip, sizeof v->ip, "%s", s->res.net.host_ip);
        }
}

/*
 * By the busy owner, no lock held: persists the current row, emits |kind|
 * (0: none) and copies the record for the caller when |ret_rec| is set.
 * Returns the store's result (already logged), or -ENOMEM for the copy.
 */
static int publish(sbx_mgr *m, struct sbx *s, enum sbx_event_kind kind, const char *reason,
                   struct sbx_record *ret_rec)
{
        struct sbx_row row;
        struct ha_err e = { { 0 } };
        int rc = 0;
        pthread_mutex_lock(&s->lock);
        view_locked(s, &row.rec);
        row.res = s->res;
        if (ret_rec && sbx_obj_snapshot_locked(s, ret_rec) < 0)
                rc = -ENOMEM;
        pthread_mutex_unlock(&s->lock);
        int r = sbx_store_put(m->store, &row, &e);
        if (r < 0)
                ha_log_error("sbx.store.write_failed", "sbx=%s error=\"%s\"", s->id, e.msg);
        if (kind)
                sbx_hub_emit(m, kind, reason, &row.rec);
        return r < 0 ? r : rc;
}

int sbx_persist(sbx_mgr *m, struct sbx *s)
{
        return publish(m, s, 0, NULL, NULL);
}

/* Publishes the busy owner's copy of the resources into the record. */
static void set_res(struct sbx *s, const struct sbx_resources *res)
{
        pthread_mutex_lock(&s->lock);
        s->res = *res;
        pthread_mutex_unlock(&s->lock);
}

/* Ends an operation. A VMM exit reported while it ran is handed to a reaper
 * worker now that the sandbox is free. */
static void end_op(sbx_mgr *m, struct sbx *s)
{
        pthread_mutex_lock(&s->lock);
        s->busy = false;
        bool exit_pending = s->vmm_dead &&
                            (s->state == SBX_STATE_RUNNING || s->state == SBX_STATE_PAUSED);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (exit_pending)
                sbx_reaper_queue(m, s, SBX_JOB_EXIT);
}

/* The last step of destroy and of a rolled-back create: the record leaves
 * the store, the index and the heap; DESTROYED is emitted before the id is
 * unlisted so a new sandbox with the same id cannot overtake it. */
static void finish_gone(sbx_mgr *m, struct sbx *s, const char *reason)
{
        struct sbx_record v;
        struct ha_err e = { { 0 } };
        pthread_mutex_lock(&s->lock);
        s->state = SBX_STATE_GONE;
        view_locked(s, &v);
        pthread_mutex_unlock(&s->lock);
        sbx_reaper_disarm(m, s);
        if (sbx_store_delete(m->store, s->id, &e) < 0)
                ha_log_error("sbx.store.delete_failed", "sbx=%s error=\"%s\"", s->id, e.msg);
        sbx_hub_emit(m, SBX_EVENT_DESTROYED, reason, &v);
        sbx_index_remove(m, s);
        end_op(m, s);
}

/* Words for a backend failure: "<step>: <backend's message or strerror>". */
static int step_failed(struct ha_err *e, int r, const char *step)
{
        char msg[HA_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", e->msg[0] ? e->msg : strerror(-r));
        return ha_err_set(e, r, "%s: %s", step, msg);
}

static void copy_err(struct ha_err *dst, const struct ha_err *src)
{
        if (dst)
                snprintf(dst->msg, sizeof dst->msg, "%s", src->msg);
}

int sbx_release_resources(sbx_mgr *m, struct sbx_resources *res, struct ha_err *err)
{
        const struct sbx_backend *be = m->be;
        struct ha_err e = { { 0 } };
        int r;
        if (res->has_vmm) {
                if ((r = be->vmm_stop(be->ctx, res->id, &res->vmm, &e)) < 0)
                        goto out_failed;
                res->has_vmm = false;
                memset(&res->vmm, 0, sizeof res->vmm);
        }
        if (res->has_rootfs) {
                if ((r = be->rootfs_remove(be->ctx, res->id, res->rootfs_path, &e)) < 0)
                        goto out_failed;
                res->has_rootfs = false;
                res->rootfs_path[0] = '\0';
        }
        if (res->has_net) {
                if ((r = be->net_release(be->ctx, res->id, &res->net, &e)) < 0)
                        goto out_failed;
                res->has_net = false;
                memset(&res->net, 0, sizeof res->net);
        }
        return 0;

out_failed:
        step_failed(&e, r, res->has_vmm ? "vmm_stop" : res->has_rootfs ? "rootfs_remove"
                                                                        : "net_release");
        copy_err(err, &e);
        return r;
}

/* --- create --- */

struct abort_ctx {
        struct sbx *s;
        const struct sbx_cancel *caller;
};

/* Why a create in flight must stop, or 0. Fills |e|. */
static int check_abort(struct sbx *s, const struct sbx_cancel *cancel, struct ha_err *e)
{
        if (is_cancelled(cancel))
                return ha_err_set(e, -ECANCELED, "create of sandbox %s cancelled by the caller; rolled back",
                                  s->id);
        int r = 0;
        pthread_mutex_lock(&s->lock);
        if (s->destroy_requested)
                r = ha_err_set(e, -ECANCELED, "sandbox %s destroyed while creating", s->id);
        else if (s->vmm_dead)
                r = ha_err_set(e, -EIO, "%s", s->dead_reason);
        pthread_mutex_unlock(&s->lock);
        return r;
}

static bool abort_requested(void *ctx)
{
        struct abort_ctx *a = ctx;
        struct ha_err e;
        return check_abort(a->s, a->caller, &e) < 0;
}

/* An id that is already there: the same spec joins it (waiting for a create
 * in flight), another spec is refused. Returns 0, CREATE_RETRY, -EEXIST,
 * -ECANCELED, -ENOMEM. */
static int join_existing(struct sbx *old, const struct sbx_spec *spec,
                         const struct sbx_cancel *cancel, struct sbx_record *ret_rec,
                         struct ha_err *err)
{
        int r;
        bool same = sbx_spec_equal(&old->spec, spec);
        pthread_mutex_lock(&old->lock);
        /* An id being destroyed is about to be free: wait rather than refuse. */
        bool leaving = old->state == SBX_STATE_STOPPING;
        pthread_mutex_unlock(&old->lock);
        if (!same && !leaving)
                return ha_err_set(err, -EEXIST,
                                  "sandbox %s already exists with a different spec (image %s, %u vcpus, %u MiB)",
                                  old->id, old->spec.image, old->spec.vcpus, old->spec.memory_mib);
        pthread_mutex_lock(&old->lock);
        if (wait_idle_locked(old, cancel) < 0)
                r = ha_err_set(err, -ECANCELED,
                               "cancelled while waiting for the create of sandbox %s in flight", old->id);
        else if (old->state == SBX_STATE_GONE)
                r = CREATE_RETRY;
        else if (!same)   /* its destroy failed: it stays, with its own spec */
                r = ha_err_set(err, -EEXIST,
                               "sandbox %s already exists with a different spec (image %s, %u vcpus, %u MiB)",
                               old->id, old->spec.image, old->spec.vcpus, old->spec.memory_mib);
        else if (ret_rec && sbx_obj_snapshot_locked(old, ret_rec) < 0)
                r = ha_err_set(err, -ENOMEM, "out of memory");
        else
                r = 0;
        pthread_mutex_unlock(&old->lock);
        return r;
}

/* Admits and lists a new sandbox, or finds the existing one. On 0, *ret_s is
 * the new sandbox (busy, referenced) or NULL when |ret_rec| was filled from
 * an existing one. Consumes |spec|. */
static int admit_new(sbx_mgr *m, struct sbx_spec *spec, const struct sbx_cancel *cancel,
                     struct sbx **ret_s, struct sbx_record *ret_rec, struct ha_err *err)
{
        for (;;) {
                pthread_mutex_lock(&m->index_lock);
                struct sbx *old = sbx_index_find_locked(m, spec->id);
                if (!old) {
                        struct sbx *s = sbx_obj_new(m, spec, sbx_now(m));
                        int r = s ? 0 : ha_err_set(err, -ENOMEM, "out of memory");
                        if (s) {
                                s->busy = true;
                                r = sbx_admit_reserve_locked(m, s, err);
                                if (r == 0 && sbx_index_insert_locked(m, s) < 0) {
                                        sbx_admit_release_locked(m, s);
                                        r = ha_err_set(err, -ENOMEM, "out of memory");
                                }
                        }
                        pthread_mutex_unlock(&m->index_lock);
                        if (r < 0) {
                                sbx_obj_unref(s);   /* frees the spec it took */
                                sbx_spec_done(spec);
                                return r;
                        }
                        *ret_s = s;
                        return 0;
                }
                sbx_obj_ref(old);
                pthread_mutex_unlock(&m->index_lock);
                int r = join_existing(old, spec, cancel, ret_rec, err);
                sbx_obj_unref(old);
                if (r != CREATE_RETRY) {
                        sbx_spec_done(spec);
                        *ret_s = NULL;
                        return r;
                }
        }
}

/* Rolls a failed create back: FAILED is emitted (and persisted, so a crash
 * during the releases is finished by recovery), then everything taken is
 * released in reverse order and the record goes. If a release fails, the
 * record stays FAILED holding what is left, for destroy (or the reaper, after
 * SBX_CLEANUP_RETRY_MS) to retry. */
static void rollback_create(sbx_mgr *m, struct sbx *s, struct sbx_resources *res,
                            const struct ha_err *why)
{
        struct ha_err e = { { 0 } };
        pthread_mutex_lock(&s->lock);
        s->state = SBX_STATE_FAILED;
        snprintf(s->failure, sizeof s->failure, "%s", why->msg);
        pthread_mutex_unlock(&s->lock);
        publish(m, s, SBX_EVENT_FAILED, why->msg, NULL);

        int r = sbx_release_resources(m, res, &e);
        set_res(s, res);
        if (r < 0) {
                ha_log_error("sbx.create.cleanup_failed", "sbx=%s error=\"%s\"", s->id, e.msg);
                sbx_admit_release(m, s);
                pthread_mutex_lock(&s->lock);
                snprintf(s->failure, sizeof s->failure, "create failed; cleanup failed: %.200s", e.msg);
                s->expires_at_ms = sbx_now(m) + SBX_CLEANUP_RETRY_MS;
                sbx_reaper_arm(m, s, s->expires_at_ms);
                pthread_mutex_unlock(&s->lock);
                sbx_persist(m, s);
                end_op(m, s);
                return;
        }
        char reason[SBX_REASON_MAX];
        snprintf(reason, sizeof reason, "create rolled back: %.200s", why->msg);
        finish_gone(m, s, reason);
}

/* The create phases, in order, as the sbx.created line names them. The
 * checks, persistence and events between two backend calls count towards
 * the next phase. */
enum { PH_NET, PH_ROOTFS, PH_VMM_START, PH_VMM_CONFIGURE, PH_VMM_BOOT, PH_GUEST_READY,
       CREATE_PHASES };

static void log_created(const struct sbx *s, const struct sbx_resources *res,
                        const uint64_t mark[CREATE_PHASES + 1], uint64_t boot_ms)
{
        uint64_t us[CREATE_PHASES];
        for (int i = 0; i < CREATE_PHASES; i++)
                us[i] = (mark[i + 1] - mark[i]) / 1000;
        ha_log_info("sbx.created",
                    "sbx=%s slot=%u image=%s vcpus=%u memory_mib=%u boot_ms=%" PRIu64
                    " net_us=%" PRIu64 " rootfs_us=%" PRIu64 " vmm_start_us=%" PRIu64
                    " vmm_configure_us=%" PRIu64 " vmm_boot_us=%" PRIu64 " guest_ready_us=%" PRIu64
                    " total_us=%" PRIu64,
                    s->id, res->net.slot, s->spec.image, s->spec.vcpus, s->spec.memory_mib, boot_ms,
                    us[PH_NET], us[PH_ROOTFS], us[PH_VMM_START], us[PH_VMM_CONFIGURE],
                    us[PH_VMM_BOOT], us[PH_GUEST_READY], (ha_now_ns() - mark[0]) / 1000);
}

int sbx_mgr_create(sbx_mgr *m, const struct sbx_spec *in, const struct sbx_cancel *cancel,
                   struct sbx_record *ret_rec, struct ha_err *err)
{
        struct ha_err e = { { 0 } };
        struct sbx_spec spec;
        struct sbx *s = NULL;
        int r;

        if ((r = sbx_mgr_check_serving(m, err)) < 0)
                return r;
        if ((r = sbx_spec_normalize(&m->cfg, in, &spec, err)) < 0)
                return r;
        if ((r = admit_new(m, &spec, cancel, &s, ret_rec, err)) < 0 || !s)
                return r;

        const struct sbx_backend *be = m->be;
        uint64_t t0 = ha_now_ms();
        /* Phase marks for the sbx.created line (µs): where a create's time
         * goes, per create; bench/sandbox.py reads them. */
        uint64_t mark[CREATE_PHASES + 1];
        mark[0] = ha_now_ns();
        struct sbx_resources res;
        memset(&res, 0, sizeof res);
        snprintf(res.id, sizeof res.id, "%s", s->id);
        struct abort_ctx actx = { s, cancel };
        const struct sbx_cancel abort_check = { abort_requested, &actx };

        r = publish(m, s, SBX_EVENT_CREATED, "created", NULL);
        if (r < 0) {
                ha_err_set(&e, r, "cannot persist sandbox %s: state store write failed: %s", s->id,
                           strerror(-r));
                goto out_rollback;
        }

        if ((r = check_abort(s, cancel, &e)) < 0)
                goto out_rollback;
        if ((r = be->net_acquire(be->ctx, s->id, &s->spec.egress, &res.net, &e)) < 0) {
                step_failed(&e, r, "network slot");
                goto out_rollback;
        }
        mark[PH_NET + 1] = ha_now_ns();
        res.has_net = true;
        set_res(s, &res);   /* not persisted yet: a crash now leaves an orphan
                             * slot, which recovery's cleanup_orphans removes */

        if ((r = check_abort(s, cancel, &e)) < 0)
                goto out_rollback;
        if ((r = be->rootfs_clone(be->ctx, s->id, s->spec.image, res.rootfs_path, &e)) < 0) {
                step_failed(&e, r, "rootfs clone");
                goto out_rollback;
        }
        mark[PH_ROOTFS + 1] = ha_now_ns();
        res.has_rootfs = true;
        set_res(s, &res);

        if ((r = check_abort(s, cancel, &e)) < 0)
                goto out_rollback;
        if ((r = be->vmm_start(be->ctx, s->id, &res.net, &res.vmm, &e)) < 0) {
                step_failed(&e, r, "vmm start");
                goto out_rollback;
        }
        mark[PH_VMM_START + 1] = ha_now_ns();
        res.has_vmm = true;
        set_res(s, &res);   /* from here a VMM exit report finds its pid */
        sbx_persist(m, s);  /* so recovery can stop this process properly */

        if ((r = check_abort(s, cancel, &e)) < 0)
                goto out_rollback;
        const struct sbx_vm_config vc = {
                .id = s->id,
                .image = s->spec.image,
                .vcpus = s->spec.vcpus,
                .memory_mib = s->spec.memory_mib,
                .rootfs_path = res.rootfs_path,
                .net = &res.net,
        };
        if ((r = be->vmm_configure(be->ctx, &res.vmm, &vc, &e)) < 0) {
                step_failed(&e, r, "vmm configure");
                goto out_rollback;
        }
        mark[PH_VMM_CONFIGURE + 1] = ha_now_ns();

        if ((r = check_abort(s, cancel, &e)) < 0)
                goto out_rollback;
        if ((r = be->vmm_boot(be->ctx, &res.vmm, &e)) < 0) {
                step_failed(&e, r, "vmm boot");
                goto out_rollback;
        }
        mark[PH_VMM_BOOT + 1] = ha_now_ns();

        if ((r = check_abort(s, cancel, &e)) < 0)
                goto out_rollback;
        r = be->vmm_wait_ready(be->ctx, &res.vmm, ha_now_ms() + m->cfg.ready_timeout_ms,
                               &abort_check, &e);
        if (r < 0) {
                struct ha_err why = { { 0 } };
                int a = check_abort(s, cancel, &why);
                if (a < 0) {   /* the wait stopped because we asked it to */
                        r = a;
                        e = why;
                } else {
                        step_failed(&e, r, "guest readiness");
                }
                goto out_rollback;
        }
        mark[PH_GUEST_READY + 1] = ha_now_ns();

        /* Commit, unless something asked for a stop after the last check. */
        pthread_mutex_lock(&s->lock);
        if (s->destroy_requested || s->vmm_dead) {
                pthread_mutex_unlock(&s->lock);
                r = check_abort(s, NULL, &e);
                goto out_rollback;
        }
        s->res = res;
        s->state = SBX_STATE_RUNNING;
        s->expires_at_ms = sbx_now(m) + (int64_t)s->spec.timeout_s * 1000;
        sbx_reaper_arm(m, s, s->expires_at_ms);
        pthread_mutex_unlock(&s->lock);
        r = publish(m, s, SBX_EVENT_RUNNING, "running", ret_rec);
        if (r == -ENOMEM)
                ha_err_set(err, r, "out of memory copying the record of %s", s->id);
        else
                r = 0;   /* a store failure is logged; the VM runs and the record owns it */
        log_created(s, &res, mark, ha_now_ms() - t0);
        end_op(m, s);
        sbx_obj_unref(s);
        return r;

out_rollback:
        ha_log_warn("sbx.create_failed", "sbx=%s error=%d msg=\"%s\"", s->id, r, e.msg);
        rollback_create(m, s, &res, &e);
        copy_err(err, &e);
        sbx_obj_unref(s);
        return r;
}

/* --- destroy --- */

int sbx_destroy_obj(sbx_mgr *m, struct sbx *s, enum sbx_destroy_why why,
                    const struct sbx_cancel *cancel, struct ha_err *err)
{
        bool rolled_back = false;
        struct ha_err e = { { 0 } };
        pthread_mutex_lock(&s->lock);
        for (;;) {
                if (s->state == SBX_STATE_GONE) {
                        pthread_mutex_unlock(&s->lock);
                        if (rolled_back || why == SBX_DESTROY_EXPIRY)
                                return 0;
                        return ha_err_set(err, -ENOENT, "sandbox %s not found", s->id);
                }
                if (s->state == SBX_STATE_CREATING && s->busy && why == SBX_DESTROY_REQUEST) {
                        s->destroy_requested = true;
                        rolled_back = true;
                }
                if (!s->busy)
                        break;
                if (wait_idle_locked(s, cancel) < 0) {
                        pthread_mutex_unlock(&s->lock);
                        return ha_err_set(err, -ECANCELED,
                                          "cancelled while waiting for an operation on sandbox %s", s->id);
                }
        }
        if (why == SBX_DESTROY_EXPIRY) {
                /* The TTL may have moved since the reaper popped it. */
                bool eligible = s->state == SBX_STATE_RUNNING || s->state == SBX_STATE_PAUSED ||
                                s->state == SBX_STATE_FAILED;
                if (!eligible) {
                        pthread_mutex_unlock(&s->lock);
                        return 0;
                }
                if (s->expires_at_ms > sbx_now(m)) {
                        sbx_reaper_arm(m, s, s->expires_at_ms);
                        pthread_mutex_unlock(&s->lock);
                        return 0;
                }
        }
        enum sbx_state prev = s->state;
        s->busy = true;
        s->state = SBX_STATE_STOPPING;
        struct sbx_resources res = s->res;
        pthread_mutex_unlock(&s->lock);
        sbx_reaper_disarm(m, s);

        if (why == SBX_DESTROY_EXPIRY) {
                ha_log_info("sbx.expired", "sbx=%s was=%s", s->id, sbx_state_name(prev));
                publish(m, s, SBX_EVENT_EXPIRED, "expired", NULL);
        } else {
                sbx_persist(m, s);
        }

        int r = sbx_release_resources(m, &res, &e);
        set_res(s, &res);
        if (r < 0) {
                ha_log_error("sbx.destroy_failed", "sbx=%s error=%d msg=\"%s\"", s->id, r, e.msg);
                sbx_admit_release(m, s);
                pthread_mutex_lock(&s->lock);
                s->state = SBX_STATE_FAILED;
                snprintf(s->failure, sizeof s->failure, "destroy failed: %.200s", e.msg);
                s->expires_at_ms = sbx_now(m) + SBX_CLEANUP_RETRY_MS;
                sbx_reaper_arm(m, s, s->expires_at_ms);
                pthread_mutex_unlock(&s->lock);
                publish(m, s, SBX_EVENT_FAILED, e.msg, NULL);
                end_op(m, s);
                copy_err(err, &e);
                return r;
        }
        ha_log_info("sbx.destroyed", "sbx=%s reason=%s", s->id,
                    why == SBX_DESTROY_EXPIRY ? "expired" : "destroyed");
        finish_gone(m, s, why == SBX_DESTROY_EXPIRY ? "expired" : "destroyed");
        return 0;
}

/* Validates |id|, checks the manager serves, finds the sandbox (referenced). */
static int lookup(sbx_mgr *m, const char *id, struct sbx **ret_s, struct ha_err *err)
{
        int r = sbx_mgr_check_serving(m, err);
        if (r < 0)
                return r;
        if (!sbx_id_valid(id))
                return ha_err_set(err, -EINVAL, "sandbox_id \"%.70s\" is not a valid id",
                                  id ? id : "");
        struct sbx *s = sbx_index_get(m, id);
        if (!s)
                return ha_err_set(err, -ENOENT, "sandbox %s not found", id);
        *ret_s = s;
        return 0;
}

int sbx_mgr_destroy(sbx_mgr *m, const char *id, const struct sbx_cancel *cancel,
                    struct ha_err *err)
{
        struct sbx *s = NULL;
        int r = lookup(m, id, &s, err);
        if (r < 0)
                return r;
        r = sbx_destroy_obj(m, s, SBX_DESTROY_REQUEST, cancel, err);
        sbx_obj_unref(s);
        return r;
}

/* --- pause, resume, set_timeout --- */

/* Claims |s| for an operation allowed in the states of |mask|, waiting for
 * one in flight. Returns 0, -ENOENT, -EBADFD (naming the state; |want| says
 * what was expected), -ECANCELED. */
static int begin_op(struct sbx *s, unsigned mask, const char *want,
                    const struct sbx_cancel *cancel, struct ha_err *err)
{
        int r = 0;
        pthread_mutex_lock(&s->lock);
        for (;;) {
                if (s->state == SBX_STATE_GONE) {
                        r = ha_err_set(err, -ENOENT, "sandbox %s not found", s->id);
                        break;
                }
                if (!(mask & BIT(s->state))) {
                        r = ha_err_set(err, -EBADFD, "sandbox %s is %s, not %s", s->id,
                                       sbx_state_name(s->state), want);
                        break;
                }
                if (!s->busy) {
                        s->busy = true;
                        break;
                }
                if (wait_idle_locked(s, cancel) < 0) {
                        r = ha_err_set(err, -ECANCELED,
                                       "cancelled while waiting for an operation on sandbox %s", s->id);
                        break;
                }
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

int sbx_mgr_pause(sbx_mgr *m, const char *id, bool snapshot, const struct sbx_cancel *cancel,
                  struct sbx_record *ret_rec, struct ha_err *err)
{
        const struct sbx_backend *be = m->be;
        struct ha_err e = { { 0 } };
        struct sbx *s = NULL;
        int r = lookup(m, id, &s, err);
        if (r < 0)
                return r;
        if ((r = begin_op(s, BIT(SBX_STATE_RUNNING), "running", cancel, err)) < 0)
                goto out_unref;

        pthread_mutex_lock(&s->lock);
        struct sbx_vmm vmm = s->res.vmm;
        pthread_mutex_unlock(&s->lock);
        r = snapshot ? be->vmm_snapshot(be->ctx, &vmm, &e) : be->vmm_pause(be->ctx, &vmm, &e);
        pthread_mutex_lock(&s->lock);
        s->res.vmm = vmm;
        if (r < 0) {
                pthread_mutex_unlock(&s->lock);
                step_failed(&e, r, snapshot ? "vmm snapshot" : "vmm pause");
                ha_log_warn("sbx.pause_failed", "sbx=%s error=%d msg=\"%s\"", s->id, r, e.msg);
                copy_err(err, &e);
                goto out_end;
        }
        s->state = SBX_STATE_PAUSED;
        s->snapshotted = snapshot;
        if (snapshot)
                s->vmm_dead = false;   /* that exit was ours: the snapshot stopped it */
        s->expires_at_ms = sbx_now(m) + (int64_t)m->cfg.paused_ttl_s * 1000;
        sbx_reaper_arm(m, s, s->expires_at_ms);
        pthread_mutex_unlock(&s->lock);
        r = publish(m, s, SBX_EVENT_PAUSED, snapshot ? "paused with snapshot" : "paused", ret_rec);
        r = r == -ENOMEM ? ha_err_set(err, r, "out of memory") : 0;
        ha_log_info("sbx.paused", "sbx=%s snapshot=%d", s->id, snapshot);
out_end:
        end_op(m, s);
out_unref:
        sbx_obj_unref(s);
        return r;
}

int sbx_mgr_resume(sbx_mgr *m, const char *id, uint32_t timeout_s, const struct sbx_cancel *cancel,
                   struct sbx_record *ret_rec, struct ha_err *err)
{
        const struct sbx_backend *be = m->be;
        struct ha_err e = { { 0 } };
        struct sbx *s = NULL;
        if (timeout_s > m->cfg.max_ttl_s)
                return ha_err_set(err, -EINVAL, "timeout_seconds %u above the maximum %u", timeout_s,
                                  m->cfg.max_ttl_s);
        int r = lookup(m, id, &s, err);
        if (r < 0)
                return r;
        if ((r = begin_op(s, BIT(SBX_STATE_PAUSED), "paused", cancel, err)) < 0)
                goto out_unref;

        pthread_mutex_lock(&s->lock);
        struct sbx_resources res = s->res;
        bool snap = s->snapshotted;
        pthread_mutex_unlock(&s->lock);
        r = snap ? be->vmm_restore(be->ctx, s->id, &res.net, res.rootfs_path, &res.vmm, &e)
                 : be->vmm_resume(be->ctx, &res.vmm, &e);
        pthread_mutex_lock(&s->lock);
        s->res.vmm = res.vmm;
        if (r < 0) {
                pthread_mutex_unlock(&s->lock);
                step_failed(&e, r, snap ? "vmm restore" : "vmm resume");
                ha_log_warn("sbx.resume_failed", "sbx=%s error=%d msg=\"%s\"", s->id, r, e.msg);
                copy_err(err, &e);
                goto out_end;
        }
        s->state = SBX_STATE_RUNNING;
        s->snapshotted = false;
        s->expires_at_ms = sbx_now(m) + (int64_t)(timeout_s ? timeout_s : s->spec.timeout_s) * 1000;
        sbx_reaper_arm(m, s, s->expires_at_ms);
        pthread_mutex_unlock(&s->lock);
        r = publish(m, s, SBX_EVENT_RESUMED, "resumed", ret_rec);
        r = r == -ENOMEM ? ha_err_set(err, r, "out of memory") : 0;
        ha_log_info("sbx.resumed", "sbx=%s restored=%d", s->id, snap);
out_end:
        end_op(m, s);
out_unref:
        sbx_obj_unref(s);
        return r;
}

int sbx_mgr_set_timeout(sbx_mgr *m, const char *id, uint32_t timeout_s,
                        const struct sbx_cancel *cancel, struct sbx_record *ret_rec,
                        struct ha_err *err)
{
        struct sbx *s = NULL;
        if (timeout_s == 0)
                return ha_err_set(err, -EINVAL, "timeout_seconds must be at least 1");
        int r = lookup(m, id, &s, err);
        if (r < 0)
                return r;
        r = begin_op(s, BIT(SBX_STATE_RUNNING) | BIT(SBX_STATE_PAUSED) | BIT(SBX_STATE_FAILED),
                     "running, paused or failed", cancel, err);
        if (r < 0)
                goto out_unref;
        pthread_mutex_lock(&s->lock);
        uint32_t cap = m->cfg.max_ttl_s;
        if (s->state == SBX_STATE_PAUSED && m->cfg.paused_ttl_s > cap)
                cap = m->cfg.paused_ttl_s;
        if (timeout_s > cap) {
                r = ha_err_set(err, -EINVAL, "timeout_seconds %u above the maximum %u for a %s sandbox",
                               timeout_s, cap, sbx_state_name(s->state));
                pthread_mutex_unlock(&s->lock);
                goto out_end;
        }
        s->expires_at_ms = sbx_now(m) + (int64_t)timeout_s * 1000;
        sbx_reaper_arm(m, s, s->expires_at_ms);
        pthread_mutex_unlock(&s->lock);
        r = publish(m, s, 0, NULL, ret_rec);
        r = r == -ENOMEM ? ha_err_set(err, r, "out of memory") : 0;
out_end:
        end_op(m, s);
out_unref:
        sbx_obj_unref(s);
        return r;
}

/* --- VMM exits --- */

int sbx_mgr_vmm_exited(sbx_mgr *m, const char *id, int pid, int exit_status, const char *reason)
{
        if (!sbx_id_valid(id))
                return -ENOENT;
        struct sbx *s = sbx_index_get(m, id);
        if (!s)
                return -ENOENT;
        int r = 0;
        bool queue = false;
        pthread_mutex_lock(&s->lock);
        if (pid <= 0 || !s->res.has_vmm || s->res.vmm.pid != pid ||
            (s->state != SBX_STATE_CREATING && s->state != SBX_STATE_RUNNING &&
             s->state != SBX_STATE_PAUSED)) {
                r = -ESRCH;
        } else {
                char how[48];
                if (exit_status < 0)
                        snprintf(how, sizeof how, "exit status unknown");
                else if (exit_status > 128 && exit_status < 128 + 65)
                        snprintf(how, sizeof how, "status %d, signal %d", exit_status,
                                 exit_status - 128);
                else
                        snprintf(how, sizeof how, "exit code %d", exit_status);
                snprintf(s->dead_reason, sizeof s->dead_reason, "vmm pid %d exited (%s): %.150s",
                         pid, how, reason ? reason : "");
                s->vmm_dead = true;
                queue = !s->busy;   /* else the owner queues it in end_op() */
        }
        pthread_mutex_unlock(&s->lock);
        if (queue)
                sbx_reaper_queue(m, s, SBX_JOB_EXIT);
        if (r == 0)
                ha_log_warn("sbx.vmm_exited", "sbx=%s pid=%d status=%d reason=\"%s\"", id, pid,
                            exit_status, reason ? reason : "");
        sbx_obj_unref(s);
        return r;
}

void sbx_fail_obj(sbx_mgr *m, struct sbx *s)
{
        struct ha_err e = { { 0 } };
        pthread_mutex_lock(&s->lock);
        (void)wait_idle_locked(s, NULL);
        if (!s->vmm_dead || (s->state != SBX_STATE_RUNNING && s->state != SBX_STATE_PAUSED)) {
                pthread_mutex_unlock(&s->lock);
                return;
        }
        s->busy = true;
        s->vmm_dead = false;
        snprintf(s->failure, sizeof s->failure, "%s", s->dead_reason);
        struct sbx_resources res = s->res;
        pthread_mutex_unlock(&s->lock);

        int r = sbx_release_resources(m, &res, &e);
        sbx_admit_release(m, s);   /* before FAILED shows: whoever sees it may create */
        pthread_mutex_lock(&s->lock);
        s->res = res;
        s->state = SBX_STATE_FAILED;
        if (r < 0) {
                size_t n = strlen(s->failure);
                snprintf(s->failure + n, sizeof s->failure - n, "; cleanup failed: %s", e.msg);
                int64_t retry = sbx_now(m) + SBX_CLEANUP_RETRY_MS;
                if (retry < s->expires_at_ms)
                        s->expires_at_ms = retry;
        }
        sbx_reaper_arm(m, s, s->expires_at_ms);
        char failure[SBX_FAILURE_MAX];
        snprintf(failure, sizeof failure, "%s", s->failure);
        pthread_mutex_unlock(&s->lock);
        ha_log_warn("sbx.failed", "sbx=%s failure=\"%s\"", s->id, failure);
        publish(m, s, SBX_EVENT_FAILED, failure, NULL);
        end_op(m, s);
}
