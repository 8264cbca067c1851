/*
 * admit.c - admission control: may one more sandbox of this size start?
 *
 * Budgets: a number of live sandboxes, and vCPUs and memory scaled by their
 * overcommit ratios (vCPUs are time-shared, so 4x is a common default;
 * memory is not, so 1x). A sandbox reserves its share when its create is
 * admitted and gives it back when it is gone or FAILED (a failed sandbox has
 * no VM). A paused sandbox keeps its reservation so its resume cannot be
 * refused. The counters live under mgr->index_lock, so the check and the
 * insertion of the new id are one atomic step and concurrent creates can
 * never overshoot.
 */
#include <errno.h>
#include <inttypes.h>

#include "core/err.h"
#include "sandbox/sbx_int.h"

int sbx_admit_reserve_locked(sbx_mgr *m, struct sbx *s, struct ha_err *err)
{
        const struct sbx_usage *u = &m->used;
        if (u->sandboxes >= m->cfg.max_sandboxes)
                return ha_err_set(err, -EAGAIN, "sandbox limit reached: %u of %u sandboxes in use",
                                  u->sandboxes, m->cfg.max_sandboxes);
        if (u->vcpus + s->spec.vcpus > m->cap_vcpus)
                return ha_err_set(err, -EAGAIN,
                                  "not enough vCPUs: requested %u, %" PRIu64 " of %" PRIu64
                                  " in use (overcommit %.2f)",
                                  s->spec.vcpus, u->vcpus, m->cap_vcpus, m->cfg.cpu_overcommit);
        if (u->memory_mib + s->spec.memory_mib > m->cap_memory_mib)
                return ha_err_set(err, -EAGAIN,
                                  "not enough memory: requested %u MiB, %" PRIu64 " of %" PRIu64
                                  " MiB in use (overcommit %.2f)",
                                  s->spec.memory_mib, u->memory_mib, m->cap_memory_mib,
                                  m->cfg.mem_overcommit);
        sbx_admit_force_locked(m, s);
        return 0;
}

void sbx_admit_force_locked(sbx_mgr *m, struct sbx *s)
{
        if (s->reserved)
                return;
        m->used.sandboxes++;
        m->used.vcpus += s->spec.vcpus;
        m->used.memory_mib += s->spec.memory_mib;
        s->reserved = true;
}

void sbx_admit_release_locked(sbx_mgr *m, struct sbx *s)
{
        if (!s->reserved)
                return;
        m->used.sandboxes--;
        m->used.vcpus -= s->spec.vcpus;
        m->used.memory_mib -= s->spec.memory_mib;
        s->reserved = false;
}

void sbx_admit_release(sbx_mgr *m, struct sbx *s)
{
        pthread_mutex_lock(&m->index_lock);
        sbx_admit_release_locked(m, s);
        pthread_mutex_unlock(&m->index_lock);
}
