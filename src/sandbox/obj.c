/*
 * obj.c - the in-memory sandbox object: reference counting and snapshots.
 *
 * Three kinds of holders find a struct sbx: the index (one reference while
 * the id is listed), the reaper (one while in its heap, one per queued job)
 * and callers between lookup and return. The object is freed by the last
 * unref, never by whoever removed it from the index.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/time.h"
#include "sandbox/sbx_int.h"

struct sbx *sbx_obj_new(sbx_mgr *m, struct sbx_spec *spec, int64_t created_at_ms)
{
        struct sbx *s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        pthread_mutex_init(&s->lock, NULL);
        if (ha_cond_init_monotonic(&s->cond) < 0) {
                pthread_mutex_destroy(&s->lock);
                free(s);
                return NULL;
        }
        atomic_init(&s->refs, 1);
        s->mgr = m;
        snprintf(s->id, sizeof s->id, "%s", spec->id);
        s->spec = *spec;                   /* takes ownership */
        memset(spec, 0, sizeof *spec);
        s->created_at_ms = created_at_ms;
        s->state = SBX_STATE_CREATING;
        s->heap_idx = SIZE_MAX;
        snprintf(s->res.id, sizeof s->res.id, "%s", s->id);
        return s;
}

void sbx_obj_ref(struct sbx *s)
{
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void sbx_obj_unref(struct sbx *s)
{
        if (!s)
                return;
        if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
                return;
        sbx_spec_done(&s->spec);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

int sbx_obj_snapshot_locked(const struct sbx *s, struct sbx_record *ret)
{
        memset(ret, 0, sizeof *ret);
        if (sbx_spec_copy(&ret->spec, &s->spec) < 0)
                return -ENOMEM;
        snprintf(ret->id, sizeof ret->id, "%s", s->id);
        ret->state = s->state;
        ret->created_at_ms = s->created_at_ms;
        ret->expires_at_ms = s->expires_at_ms;
        ret->snapshotted = s->snapshotted;
        snprintf(ret->failure, sizeof ret->failure, "%s", s->failure);
        if (s->res.has_net) {
                ret->has_slot = true;
                ret->slot = s->res.net.slot;
                snprintf(ret->ip, sizeof ret->ip, "%s", s->res.net.host_ip);
        }
        return 0;
}
