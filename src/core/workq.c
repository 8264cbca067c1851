/*
 * workq.c - see workq.h. One mutex guards the queue and the counters; a
 * condition variable wakes idle workers; a second one lets ha_workq_free()
 * wait for the last thread to leave.
 */
#include "core/workq.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/time.h"

/* Extra threads (above min) exit after this long without work. */
#define WORKQ_IDLE_EXIT_MS 10000

struct ha_workq {
        pthread_mutex_t lock;
        pthread_cond_t wake;        /* jobs queued or shutdown */
        pthread_cond_t gone;        /* a thread exited */
        struct ha_job *head, *tail; /* guarded_by: lock */
        size_t queued;              /* guarded_by: lock */
        size_t capacity;            /* immutable after ha_workq_new() */
        unsigned min_threads, max_threads; /* immutable */
        unsigned threads;           /* guarded_by: lock */
        unsigned idle;              /* guarded_by: lock */
        bool stopping;              /* guarded_by: lock */
};

static void *worker_main(void *arg)
{
        ha_workq *q = arg;
        pthread_mutex_lock(&q->lock);
        for (;;) {
                while (!q->head && !q->stopping) {
                        q->idle++;
                        int r = 0;
                        if (q->threads > q->min_threads) {
                                struct timespec ts = ha_abs_monotonic(ha_now_ms() + WORKQ_IDLE_EXIT_MS);
                                r = pthread_cond_timedwait(&q->wake, &q->lock, &ts);
                        } else {
                                pthread_cond_wait(&q->wake, &q->lock);
                        }
                        q->idle--;
                        if (r == ETIMEDOUT && !q->head && q->threads > q->min_threads)
                                goto out;
                }
                if (!q->head)   /* stopping and drained */
                        break;
                struct ha_job *job = q->head;
                q->head = job->next;
                if (!q->head)
                        q->tail = NULL;
                q->queued--;
                pthread_mutex_unlock(&q->lock);
                job->next = NULL;
                job->run(job);
                pthread_mutex_lock(&q->lock);
        }
out:
        q->threads--;
        pthread_cond_broadcast(&q->gone);
        pthread_mutex_unlock(&q->lock);
        return NULL;
}

/* Called with q->lock held. */
static int spawn_thread(ha_workq *q)
{
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int r = pthread_create(&t, &a, worker_main, q);
        pthread_attr_destroy(&a);
        if (r)
                return -r;
        q->threads++;
        return 0;
}

ha_workq *ha_workq_new(unsigned min_threads, unsigned max_threads, size_t capacity)
{
        if (min_threads == 0)
                min_threads = 1;
        if (max_threads < min_threads)
                max_threads = min_threads;
        ha_workq *q = calloc(1, sizeof *q);
        if (!q)
                return NULL;
        pthread_mutex_init(&q->lock, NULL);
        ha_cond_init_monotonic(&q->wake);
        ha_cond_init_monotonic(&q->gone);
        q->capacity = capacity;
        q->min_threads = min_threads;
        q->max_threads = max_threads;
        pthread_mutex_lock(&q->lock);
        for (unsigned i = 0; i < min_threads; i++) {
                int r = spawn_thread(q);
                if (r < 0) {
                        pthread_mutex_unlock(&q->lock);
                        ha_workq_free(q);
                        errno = -r;
                        return NULL;
                }
        }
        pthread_mutex_unlock(&q->lock);
        return q;
}

int ha_workq_push(ha_workq *q, struct ha_job *job)
{
        pthread_mutex_lock(&q->lock);
        if (q->stopping) {
                pthread_mutex_unlock(&q->lock);
                return -ESHUTDOWN;
        }
        if (q->queued >= q->capacity) {
                pthread_mutex_unlock(&q->lock);
                return -EAGAIN;
        }
        job->next = NULL;
        if (q->tail)
                q->tail->next = job;
        else
                q->head = job;
        q->tail = job;
        q->queued++;
        /* Grow when no thread is free to take this job right away. */
        if (q->idle < q->queued && q->threads < q->max_threads)
                (void)spawn_thread(q);  /* failure: the job waits for a busy thread */
        pthread_cond_signal(&q->wake);
        pthread_mutex_unlock(&q->lock);
        return 0;
}

void ha_workq_stats(ha_workq *q, struct ha_workq_stats *ret)
{
        pthread_mutex_lock(&q->lock);
        ret->threads = q->threads;
        ret->busy = q->threads - q->idle;
        ret->queued = q->queued;
        pthread_mutex_unlock(&q->lock);
}

void ha_workq_free(ha_workq *q)
{
        if (!q)
                return;
        pthread_mutex_lock(&q->lock);
        q->stopping = true;
        pthread_cond_broadcast(&q->wake);
        while (q->threads > 0)
                pthread_cond_wait(&q->gone, &q->lock);
        pthread_mutex_unlock(&q->lock);
        pthread_cond_destroy(&q->wake);
        pthread_cond_destroy(&q->gone);
        pthread_mutex_destroy(&q->lock);
        free(q);
}
