/*
 * pool_int.h - the body of struct net_pool, shared by pool.c (allocator)
 * and recover.c (start-up recovery). Only src/net/ includes it.
 */
#ifndef NET_POOL_INT_H
#define NET_POOL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/pool.h"

enum slot_state { SLOT_FREE, SLOT_READY, SLOT_IN_USE, SLOT_DIRTY, SLOT_BUSY, SLOT_QUARANTINED };

/* A slot whose build failed for a reason of its own (its sandbox address
 * routed by someone else, debris that would not go) sits out this long
 * before it is tried again: otherwise, being the lowest free number, it is
 * the next one every acquire would try, and fail on. */
#define QUARANTINE_MS 60000

/* After a background build fails, wait this long before the next attempt,
 * so a persistent error (EEXIST from an unrecovered leftover, ENOMEM) does
 * not spin a core and flood the log. */
#define REFILL_BACKOFF_MS 1000

struct net_pool {
        struct net_config cfg;           /* immutable after net_pool_new() */
        uint32_t          warm;          /* immutable after net_pool_new() */
        struct net_fault *fault;         /* immutable after net_pool_new() */

        pthread_mutex_t   lock;
        pthread_cond_t    work;          /* the refill thread waits on it */
        pthread_cond_t    idle;          /* net_pool_wait_idle() waits on it */
        uint8_t          *state;         /* [N + 1]; guarded_by: lock */
        /* [N + 1]: a policy other than allow-all may be in place, so the
         * scrub must reset it (skipping nft saves most of a scrub). */
        bool             *egress_set;    /* guarded_by: lock */
        /* [N + 1]: the host veth's packets at the last host conntrack flush
         * (net_slot_scrub), or NET_PKTS_UNKNOWN; the owner of a busy slot
         * reads and writes its own. */
        uint64_t         *host_pkts;     /* guarded_by: lock */
        uint32_t         *free_stk;      /* guarded_by: lock */
        uint32_t          n_free;        /* guarded_by: lock */
        uint32_t         *ready_stk;     /* guarded_by: lock */
        uint32_t          n_ready;       /* guarded_by: lock */
        uint32_t         *dirty_ring;    /* FIFO, capacity N; guarded_by: lock */
        uint32_t          dirty_head;    /* guarded_by: lock */
        uint32_t          n_dirty;       /* guarded_by: lock */
        uint32_t          busy;          /* guarded_by: lock */
        uint64_t         *quarantine_until; /* [N + 1], monotonic ms; guarded_by: lock */
        uint32_t          n_quarantined; /* guarded_by: lock */
        uint32_t          building;      /* refill builds under way; guarded_by: lock */
        bool              started;       /* guarded_by: lock */
        bool              stop;          /* guarded_by: lock */
        bool              touched;       /* an acquire happened; guarded_by: lock */
        pthread_t         thread;        /* valid when started */
        struct net_pool_stats st;        /* counters; guarded_by: lock */
};

/* Container operations; caller holds p->lock. */
void net_pool_free_push(net_pool *p, uint32_t s);
void net_pool_ready_push(net_pool *p, uint32_t s);
/* Puts every SLOT_FREE slot on the free stack, lowest number on top. */
void net_pool_free_stack_rebuild(net_pool *p);

#endif
