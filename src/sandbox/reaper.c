/*
 * reaper.c - TTL expiry, and the workers that run background cleanups.
 *
 * The reaper thread sleeps on a condition variable until the earliest
 * expires_at in a binary min-heap (each sandbox knows its heap index, so a
 * TTL change is one O(log n) sift, not a stale duplicate entry). Nothing ever
 * scans all sandboxes. When the top is due, the thread moves it to the job
 * FIFO and a worker destroys it through the same path as an explicit
 * destroy (lifecycle.c), which re-checks the expiry under the sandbox lock:
 * a set_timeout that raced the pop simply re-arms it. Workers also run the
 * cleanup of VMMs that exited on their own, so a backend reporting an exit is
 * never called back on its own thread.
 *
 * The worker pool starts at cfg.reaper_workers and grows, up to
 * cfg.reaper_workers_max, whenever a job is queued while more jobs wait
 * than workers are idle: a destroy mostly waits (VMM exit, kernel
 * teardown), so a thousand TTLs due in the same second would otherwise be
 * served four at a time. Workers are kept until the manager stops.
 *
 * Time is the manager's wall clock (injectable), because expires_at must mean
 * the same after an agent restart. The sleep itself is measured on the
 * monotonic clock and capped at REAPER_MAX_SLEEP_MS so a wall-clock step is
 * noticed; sbx_mgr_clock_changed() wakes the thread at once (tests move a
 * fake clock and call it).
 */
#include <errno.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/time.h"
#include "sandbox/sbx_int.h"

/* Longest sleep before looking at the heap top again: bounds how late a
 * wall-clock jump forward is noticed, and costs one wake-up per minute. */
#define REAPER_MAX_SLEEP_MS 60000

static void heap_swap(struct sbx_reaper *r, size_t i, size_t j)
{
        struct sbx *t = r->heap[i];
        r->heap[i] = r->heap[j];
        r->heap[j] = t;
        r->heap[i]->heap_idx = i;
        r->heap[j]->heap_idx = j;
}

static void sift_up(struct sbx_reaper *r, size_t i)
{
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (r->heap[p]->heap_key <= r->heap[i]->heap_key)
                        break;
                heap_swap(r, i, p);
                i = p;
        }
}

static void sift_down(struct sbx_reaper *r, size_t i)
{
        for (;;) {
                size_t l = 2 * i + 1, rt = l + 1, m = i;
                if (l < r->n && r->heap[l]->heap_key < r->heap[m]->heap_key)
                        m = l;
                if (rt < r->n && r->heap[rt]->heap_key < r->heap[m]->heap_key)
                        m = rt;
                if (m == i)
                        break;
                heap_swap(r, i, m);
                i = m;
        }
}

/* Removes heap[i]; the caller inherits the heap's reference. */
static struct sbx *heap_remove_at(struct sbx_reaper *r, size_t i)
{
        struct sbx *s = r->heap[i];
        r->n--;
        if (i != r->n) {
                r->heap[i] = r->heap[r->n];
                r->heap[i]->heap_idx = i;
                sift_down(r, i);
                sift_up(r, i);
        }
        s->heap_idx = SIZE_MAX;
        return s;
}

void sbx_reaper_arm(sbx_mgr *m, struct sbx *s, int64_t key)
{
        struct sbx_reaper *r = &m->reaper;
        pthread_mutex_lock(&r->lock);
        if (s->heap_idx != SIZE_MAX) {
                s->heap_key = key;
                sift_down(r, s->heap_idx);
                sift_up(r, s->heap_idx);
        } else {
                if (r->n == r->cap) {
                        size_t ncap = r->cap ? r->cap * 2 : 64;
                        struct sbx **nh = reallocarray(r->heap, ncap, sizeof *nh);
                        if (!nh) {
                                pthread_mutex_unlock(&r->lock);
                                ha_log_error("sbx.reaper.oom", "sbx=%s", s->id);
                                return;
                        }
                        r->heap = nh;
                        r->cap = ncap;
                }
                sbx_obj_ref(s);
                s->heap_key = key;
                s->heap_idx = r->n;
                r->heap[r->n++] = s;
                sift_up(r, s->heap_idx);
        }
        if (s->heap_idx == 0)
                pthread_cond_signal(&r->wake);
        pthread_mutex_unlock(&r->lock);
}

void sbx_reaper_disarm(sbx_mgr *m, struct sbx *s)
{
        struct sbx_reaper *r = &m->reaper;
        struct sbx *out = NULL;
        pthread_mutex_lock(&r->lock);
        if (s->heap_idx != SIZE_MAX)
                out = heap_remove_at(r, s->heap_idx);
        pthread_mutex_unlock(&r->lock);
        sbx_obj_unref(out);   /* never the last: the caller holds one */
}

static void *worker_main(void *arg);

/* Called with r->lock held. */
static void grow_locked(sbx_mgr *m, struct sbx_reaper *r)
{
        if (r->n_jobs <= r->idle || r->n_workers >= r->max_workers)
                return;
        if (pthread_create(&r->workers[r->n_workers], NULL, worker_main, m) == 0)
                r->n_workers++;
}

/* Called with r->lock held; consumes one reference to |s|. */
static void queue_locked(sbx_mgr *m, struct sbx_reaper *r, struct sbx *s, unsigned job)
{
        if (r->stop) {
                sbx_obj_unref(s);
                return;
        }
        if (s->jobs) {
                s->jobs |= job;
                sbx_obj_unref(s);
                return;
        }
        s->jobs = job;
        s->job_next = NULL;
        if (r->job_tail)
                r->job_tail->job_next = s;
        else
                r->job_head = s;
        r->job_tail = s;
        r->n_jobs++;
        pthread_cond_signal(&r->work);
        grow_locked(m, r);
}

void sbx_reaper_queue(sbx_mgr *m, struct sbx *s, unsigned job)
{
        struct sbx_reaper *r = &m->reaper;
        sbx_obj_ref(s);
        pthread_mutex_lock(&r->lock);
        queue_locked(m, r, s, job);
        pthread_mutex_unlock(&r->lock);
}

void sbx_reaper_kick(sbx_mgr *m)
{
        pthread_mutex_lock(&m->reaper.lock);
        pthread_cond_signal(&m->reaper.wake);
        pthread_mutex_unlock(&m->reaper.lock);
}

static void *reaper_main(void *arg)
{
        sbx_mgr *m = arg;
        struct sbx_reaper *r = &m->reaper;
        pthread_mutex_lock(&r->lock);
        while (!r->stop) {
                if (r->n == 0) {
                        pthread_cond_wait(&r->wake, &r->lock);
                        continue;
                }
                int64_t now = sbx_now(m);
                struct sbx *top = r->heap[0];
                if (top->heap_key <= now) {
                        heap_remove_at(r, 0);
                        queue_locked(m, r, top, SBX_JOB_EXPIRE);
                        continue;
                }
                int64_t wait = top->heap_key - now;
                if (wait > REAPER_MAX_SLEEP_MS)
                        wait = REAPER_MAX_SLEEP_MS;
                struct timespec ts = ha_abs_monotonic(ha_now_ms() + (uint64_t)wait);
                pthread_cond_timedwait(&r->wake, &r->lock, &ts);
        }
        pthread_mutex_unlock(&r->lock);
        return NULL;
}

static void *worker_main(void *arg)
{
        sbx_mgr *m = arg;
        struct sbx_reaper *r = &m->reaper;
        pthread_mutex_lock(&r->lock);
        while (!r->stop) {
                struct sbx *s = r->job_head;
                if (!s) {
                        r->idle++;
                        pthread_cond_wait(&r->work, &r->lock);
                        r->idle--;
                        continue;
                }
                r->n_jobs--;
                r->job_head = s->job_next;
                if (!r->job_head)
                        r->job_tail = NULL;
                unsigned jobs = s->jobs;
                s->jobs = 0;
                s->job_next = NULL;
                pthread_mutex_unlock(&r->lock);
                if (jobs & SBX_JOB_EXIT)
                        sbx_fail_obj(m, s);
                if (jobs & SBX_JOB_EXPIRE)
                        (void)sbx_destroy_obj(m, s, SBX_DESTROY_EXPIRY, NULL, NULL);
                sbx_obj_unref(s);
                pthread_mutex_lock(&r->lock);
        }
        pthread_mutex_unlock(&r->lock);
        return NULL;
}

int sbx_reaper_start(sbx_mgr *m)
{
        struct sbx_reaper *r = &m->reaper;
        int e;
        pthread_mutex_init(&r->lock, NULL);
        if ((e = ha_cond_init_monotonic(&r->wake)) < 0)
                goto out_lock;
        if ((e = ha_cond_init_monotonic(&r->work)) < 0)
                goto out_wake;
        r->max_workers = m->cfg.reaper_workers_max > m->cfg.reaper_workers ? m->cfg.reaper_workers_max
                                                                           : m->cfg.reaper_workers;
        r->workers = calloc(r->max_workers, sizeof *r->workers);
        if (!r->workers) {
                e = -ENOMEM;
                goto out_work;
        }
        if ((e = -pthread_create(&r->thread, NULL, reaper_main, m)) < 0)
                goto out_workers;
        r->thread_started = true;
        /* Under the lock: a job queued meanwhile may grow the pool. */
        pthread_mutex_lock(&r->lock);
        while (r->n_workers < m->cfg.reaper_workers) {
                if ((e = -pthread_create(&r->workers[r->n_workers], NULL, worker_main, m)) < 0) {
                        pthread_mutex_unlock(&r->lock);
                        sbx_reaper_stop(m);
                        sbx_reaper_done(m);
                        return e;
                }
                r->n_workers++;
        }
        pthread_mutex_unlock(&r->lock);
        return 0;

out_workers:
        free(r->workers);
        r->workers = NULL;
out_work:
        pthread_cond_destroy(&r->work);
out_wake:
        pthread_cond_destroy(&r->wake);
out_lock:
        pthread_mutex_destroy(&r->lock);
        return e;
}

void sbx_reaper_stop(sbx_mgr *m)
{
        struct sbx_reaper *r = &m->reaper;
        pthread_mutex_lock(&r->lock);
        if (r->stop) {
                pthread_mutex_unlock(&r->lock);
                return;
        }
        r->stop = true;
        pthread_cond_broadcast(&r->wake);
        pthread_cond_broadcast(&r->work);
        pthread_mutex_unlock(&r->lock);
        if (r->thread_started)
                pthread_join(r->thread, NULL);
        r->thread_started = false;
        for (unsigned i = 0; i < r->n_workers; i++)
                pthread_join(r->workers[i], NULL);
        r->n_workers = 0;
        /* Jobs still queued are dropped: a restart's recovery redoes them
         * (expired records are reaped, dead VMMs found dead). */
        pthread_mutex_lock(&r->lock);
        struct sbx *s = r->job_head;
        r->job_head = r->job_tail = NULL;
        r->n_jobs = 0;
        while (s) {
                struct sbx *next = s->job_next;
                s->jobs = 0;
                s->job_next = NULL;
                sbx_obj_unref(s);
                s = next;
        }
        pthread_mutex_unlock(&r->lock);
}

void sbx_reaper_done(sbx_mgr *m)
{
        struct sbx_reaper *r = &m->reaper;
        if (!r->workers)
                return;   /* never started, or done already */
        sbx_reaper_stop(m);
        pthread_mutex_lock(&r->lock);
        for (size_t i = 0; i < r->n; i++) {
                r->heap[i]->heap_idx = SIZE_MAX;
                sbx_obj_unref(r->heap[i]);
        }
        r->n = 0;
        pthread_mutex_unlock(&r->lock);
        free(r->heap);
        r->heap = NULL;
        free(r->workers);
        r->workers = NULL;
        pthread_cond_destroy(&r->work);
        pthread_cond_destroy(&r->wake);
        pthread_mutex_destroy(&r->lock);
}
