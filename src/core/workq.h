/*
 * workq.h - the worker pool that runs handlers off the I/O loop.
 *
 * A bounded FIFO of jobs and a pool of threads. |min_threads| are started at
 * once and kept; when every thread is busy and a job waits, the pool grows up
 * to |max_threads| (a streaming handler can hold a thread for hours, so a
 * fixed pool would let a few long calls starve everything else). Threads above
 * the minimum exit after an idle period. The queue holds at most |capacity|
 * waiting jobs; past that, push fails and the caller answers
 * RESOURCE_EXHAUSTED. The loop never waits on the pool.
 */
#ifndef HA_WORKQ_H
#define HA_WORKQ_H

#include <stddef.h>

typedef struct ha_workq ha_workq;

struct ha_job {
        void (*run)(struct ha_job *job);   /* runs on a worker; may free job */
        struct ha_job *next;               /* owned by the queue while queued */
};

struct ha_workq_stats {
        unsigned threads;
        unsigned busy;
        size_t queued;
};

/* Returns NULL on allocation or thread failure (errno set). */
ha_workq *ha_workq_new(unsigned min_threads, unsigned max_threads, size_t capacity);
/* Queues |job|. Returns 0 (the pool now owns it until job->run is called),
 * -EAGAIN (queue full) or -ESHUTDOWN; on error the caller still owns it. */
int ha_workq_push(ha_workq *q, struct ha_job *job);
void ha_workq_stats(ha_workq *q, struct ha_workq_stats *ret);
/* Runs every job already queued, then joins all threads and frees |q|. */
void ha_workq_free(ha_workq *q);

#endif
