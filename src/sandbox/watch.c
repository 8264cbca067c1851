/*
 * watch.c - sandbox events fanned out to subscribers (WatchEvents).
 *
 * Each subscriber owns a ring of at most cfg.watch_queue_len event pointers;
 * the emitting operation copies the record once into a reference-counted
 * event, links it into every matching ring under the hub lock and never
 * waits; each reader copies it out on its own thread. Memory is that of the
 * events actually queued, not of the ring's capacity. A subscriber that falls a whole ring behind is
 * closed rather than allowed to block sandbox operations or grow memory: it
 * drains what it has, then gets -ENOBUFS and its client re-lists. Events of
 * one sandbox are emitted by whichever operation owns it at the time (its
 * busy flag), so they enter every ring in transition order; seq numbers give
 * a manager-wide order.
 *
 * Readers block in sbx_watch_next() on a per-subscriber condition variable
 * with a deadline, so a worker thread can poll its call's cancel flag every
 * 100 ms. Drain wakes them all with -ESHUTDOWN.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/time.h"
#include "sandbox/sbx_int.h"

/* One emitted event, shared by every ring it is queued in. */
struct ev_node {
        atomic_int refs;
        struct sbx_event ev;              /* immutable after emit */
};

struct sbx_watch {
        sbx_mgr *m;                       /* immutable */
        char id[SBX_ID_MAX + 1];          /* immutable; "" for all */
        pthread_cond_t cond;              /* event queued, overflow, shutdown */
        struct sbx_watch *prev, *next;    /* guarded_by: hub.lock */
        struct ev_node **ring;            /* guarded_by: hub.lock; each holds a ref */
        size_t cap, head, len;            /* guarded_by: hub.lock */
        bool overflow;                    /* guarded_by: hub.lock */
};

static void node_unref(struct ev_node *n)
{
        if (n && atomic_fetch_sub(&n->refs, 1) == 1) {
                sbx_event_done(&n->ev);
                free(n);
        }
}

int sbx_hub_init(struct sbx_hub *h)
{
        memset(h, 0, sizeof *h);
        int r = pthread_mutex_init(&h->lock, NULL);
        return -r;
}

void sbx_hub_shutdown(struct sbx_hub *h)
{
        pthread_mutex_lock(&h->lock);
        h->shutdown = true;
        for (struct sbx_watch *w = h->head; w; w = w->next)
                pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&h->lock);
}

void sbx_hub_done(struct sbx_hub *h)
{
        pthread_mutex_destroy(&h->lock);
}

unsigned sbx_hub_count(struct sbx_hub *h)
{
        pthread_mutex_lock(&h->lock);
        unsigned n = h->n;
        pthread_mutex_unlock(&h->lock);
        return n;
}

void sbx_hub_emit(sbx_mgr *m, enum sbx_event_kind kind, const char *reason,
                  const struct sbx_record *rec)
{
        struct sbx_hub *h = &m->hub;
        /* Built before the lock; a lost allocation marks the subscribers that
         * would have received it as overflowed (they re-list). */
        struct ev_node *n = calloc(1, sizeof *n);
        if (n && sbx_record_copy(&n->ev.rec, rec) < 0) {
                free(n);
                n = NULL;
        }
        if (n) {
                atomic_init(&n->refs, 1);   /* ours, dropped below */
                n->ev.kind = kind;
                n->ev.time_ms = sbx_now(m);
                snprintf(n->ev.reason, sizeof n->ev.reason, "%s", reason ? reason : "");
        }
        pthread_mutex_lock(&h->lock);
        uint64_t seq = ++h->seq;
        if (n)
                n->ev.seq = seq;
        for (struct sbx_watch *w = h->head; w; w = w->next) {
                if (w->overflow || (w->id[0] && strcmp(w->id, rec->id) != 0))
                        continue;
                if (!n || w->len == w->cap) {
                        w->overflow = true;
                        pthread_cond_signal(&w->cond);
                        continue;
                }
                atomic_fetch_add(&n->refs, 1);
                w->ring[(w->head + w->len) % w->cap] = n;
                w->len++;
                pthread_cond_signal(&w->cond);
        }
        pthread_mutex_unlock(&h->lock);
        node_unref(n);
}

int sbx_watch_new(sbx_mgr *m, const char *id, sbx_watch **ret_watch, struct ha_err *err)
{
        if (id && id[0] && !sbx_id_valid(id))
                return ha_err_set(err, -EINVAL, "sandbox_id \"%.70s\" is not a valid id", id);
        sbx_watch *w = calloc(1, sizeof *w);
        if (!w)
                return ha_err_set(err, -ENOMEM, "out of memory");
        w->m = m;
        snprintf(w->id, sizeof w->id, "%s", id ? id : "");
        w->cap = m->cfg.watch_queue_len;
        w->ring = calloc(w->cap, sizeof *w->ring);
        int r = w->ring ? ha_cond_init_monotonic(&w->cond) : -ENOMEM;
        if (r < 0) {
                free(w->ring);
                free(w);
                return ha_err_set(err, r, "cannot create a watch: %s", strerror(-r));
        }
        struct sbx_hub *h = &m->hub;
        pthread_mutex_lock(&h->lock);
        if (h->shutdown)
                r = ha_err_set(err, -ESHUTDOWN, "sandbox manager is shutting down");
        else if (h->n >= m->cfg.max_watchers)
                r = ha_err_set(err, -EAGAIN, "too many watchers: %u of %u", h->n,
                               m->cfg.max_watchers);
        if (r == 0) {
                w->next = h->head;
                if (h->head)
                        h->head->prev = w;
                h->head = w;
                h->n++;
        }
        pthread_mutex_unlock(&h->lock);
        if (r < 0) {
                pthread_cond_destroy(&w->cond);
                free(w->ring);
                free(w);
                return r;
        }
        *ret_watch = w;
        return 0;
}

int sbx_watch_next(sbx_watch *w, uint64_t deadline_ms, struct sbx_event *ret)
{
        struct sbx_hub *h = &w->m->hub;
        int r = 0;
        struct ev_node *n = NULL;
        struct timespec ts = ha_abs_monotonic(deadline_ms);
        pthread_mutex_lock(&h->lock);
        for (;;) {
                if (w->len) {
                        n = w->ring[w->head];
                        w->ring[w->head] = NULL;
                        w->head = (w->head + 1) % w->cap;
                        w->len--;
                        break;
                }
                if (w->overflow) {
                        r = -ENOBUFS;
                        break;
                }
                if (h->shutdown) {
                        r = -ESHUTDOWN;
                        break;
                }
                if (ha_now_ms() >= deadline_ms) {
                        r = -ETIMEDOUT;
                        break;
                }
                pthread_cond_timedwait(&w->cond, &h->lock, &ts);
        }
        pthread_mutex_unlock(&h->lock);
        if (n) {
                *ret = n->ev;
                if (sbx_record_copy(&ret->rec, &n->ev.rec) < 0)
                        r = -ENOMEM;
                node_unref(n);
        }
        return r;
}

void sbx_watch_free(sbx_watch *w)
{
        if (!w)
                return;
        struct sbx_hub *h = &w->m->hub;
        pthread_mutex_lock(&h->lock);
        if (w->prev)
                w->prev->next = w->next;
        else
                h->head = w->next;
        if (w->next)
                w->next->prev = w->prev;
        h->n--;
        pthread_mutex_unlock(&h->lock);
        for (size_t i = 0; i < w->len; i++)
                node_unref(w->ring[(w->head + i) % w->cap]);
        pthread_cond_destroy(&w->cond);
        free(w->ring);
        free(w);
}
