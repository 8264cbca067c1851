/*
 * sbx_int.h - struct bodies and helpers shared by the files of src/sandbox/.
 * Nothing outside this folder includes it.
 *
 * Lock rules (also in docs/ARCHITECTURE.md):
 *  - mgr->index_lock guards the id index and the admission counters. It is
 *    never held while taking any other lock: find and take a reference under
 *    it, drop it, then lock the sandbox.
 *  - s->lock guards a sandbox's mutable fields and is held only for copies.
 *    An operation claims a sandbox by setting s->busy under s->lock, then
 *    calls the backend with no lock held, and commits under s->lock again.
 *    busy serialises operations on one sandbox; readers never wait for it.
 *  - reaper.lock, hub.lock and the store's lock are leaves: they may be taken
 *    while s->lock is held, and nothing is taken while they are held (the
 *    hub takes no sandbox lock; the reaper thread only queues jobs).
 *  - Events and store writes of a sandbox happen while its busy flag is set,
 *    which is what keeps them in transition order.
 */
#ifndef HA_SBX_INT_H
#define HA_SBX_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/backend.h"
#include "sandbox/sbx.h"

struct ha_err;
struct sbx_store;

/* Janitor job bits (reaper.c): work queued for a reaper worker. */
#define SBX_JOB_EXPIRE 1u
#define SBX_JOB_EXIT 2u

/* A FAILED record that still holds resources (a release failed) is retried
 * by the reaper after this long, so a stuck backend is not hammered. */
#define SBX_CLEANUP_RETRY_MS 60000

struct sbx {
        pthread_mutex_t lock;
        pthread_cond_t cond;             /* busy cleared; monotonic clock */
        atomic_int refs;
        sbx_mgr *mgr;                    /* immutable */
        char id[SBX_ID_MAX + 1];         /* immutable after sbx_obj_new() */
        struct sbx_spec spec;            /* immutable after sbx_obj_new(); owned */
        int64_t created_at_ms;           /* immutable after sbx_obj_new() */

        enum sbx_state state;            /* guarded_by: lock */
        bool busy;                       /* guarded_by: lock */
        bool destroy_requested;          /* guarded_by: lock; create rolls back */
        bool vmm_dead;                   /* guarded_by: lock; exit seen, not handled */
        char dead_reason[SBX_FAILURE_MAX]; /* guarded_by: lock */
        int64_t expires_at_ms;           /* guarded_by: lock */
        char failure[SBX_FAILURE_MAX];   /* guarded_by: lock */
        bool snapshotted;                /* guarded_by: lock */
        /* guarded_by: lock; written only by the busy owner, which works on a
         * copy and publishes it under the lock. */
        struct sbx_resources res;

        bool reserved;                   /* guarded_by: mgr->index_lock */

        size_t heap_idx;                 /* guarded_by: reaper.lock; SIZE_MAX: out */
        int64_t heap_key;                /* guarded_by: reaper.lock */
        unsigned jobs;                   /* guarded_by: reaper.lock; SBX_JOB_* queued */
        struct sbx *job_next;            /* guarded_by: reaper.lock */
};

struct sbx_reaper {
        pthread_mutex_t lock;
        pthread_cond_t wake;             /* heap top changed, clock changed, stop */
        pthread_cond_t work;             /* jobs queued, stop */
        struct sbx **heap;               /* min-heap on heap_key; each holds a ref */
        size_t n, cap;
        struct sbx *job_head, *job_tail; /* FIFO; each entry holds a ref */
        bool stop;
        bool thread_started;
        pthread_t thread;
        pthread_t *workers;              /* room for max_workers */
        unsigned n_workers, max_workers;
        unsigned idle;                   /* workers waiting for a job */
        unsigned n_jobs;                 /* entries in the FIFO */
};

struct sbx_hub {
        pthread_mutex_t lock;
        struct sbx_watch *head;          /* guarded_by: lock */
        unsigned n;                      /* guarded_by: lock */
        uint64_t seq;                    /* guarded_by: lock */
        bool shutdown;                   /* guarded_by: lock */
};

struct sbx_usage {
        uint32_t sandboxes;
        uint32_t slots;
        uint64_t vcpus;
        uint64_t memory_mib;
};

struct sbx_mgr {
        struct sbx_config cfg;           /* immutable; cfg.state_dir == state_dir */
        char *state_dir;
        const struct sbx_backend *be;    /* immutable, borrowed */
        struct sbx_store *store;         /* internally locked */
        uint64_t cap_vcpus;              /* immutable: budgets after overcommit */
        uint64_t cap_memory_mib;

        pthread_mutex_t index_lock;
        void *index;                     /* guarded_by: index_lock; tsearch of struct sbx * */
        size_t n_index;                  /* guarded_by: index_lock */
        struct sbx_usage used;           /* guarded_by: index_lock */

        atomic_bool ready;
        atomic_bool draining;

        struct sbx_reaper reaper;
        struct sbx_hub hub;
};

/* --- spec.c --- */
/* Validates |in| against |cfg| and fills |out| (owned, normalised; a fresh
 * id when in->id is empty). Returns 0, -EINVAL (with the field), -ENOMEM. */
int sbx_spec_normalize(const struct sbx_config *cfg, const struct sbx_spec *in,
                       struct sbx_spec *out, struct ha_err *err);
void sbx_spec_done(struct sbx_spec *s);
int sbx_spec_copy(struct sbx_spec *dst, const struct sbx_spec *src);
/* Equal normalised specs (what makes a create idempotent). */
bool sbx_spec_equal(const struct sbx_spec *a, const struct sbx_spec *b);
bool sbx_image_valid(const char *name);
bool sbx_cidr_valid(const char *cidr);
/* Fills |ret| (SBX_ID_MAX + 1) with a random valid id. Returns 0 or -errno. */
int sbx_id_generate(char *ret);
/* Sorts a map by key; returns -EINVAL on a duplicate key. */
int sbx_map_sort(struct sbx_map *m);
bool sbx_map_contains(const struct sbx_map *haystack, const struct sbx_map *needles);

/* --- obj.c: struct sbx --- */
struct sbx *sbx_obj_new(sbx_mgr *m, struct sbx_spec *spec, int64_t created_at_ms);
void sbx_obj_ref(struct sbx *s);
void sbx_obj_unref(struct sbx *s);
/* Deep copy of the public view; called with s->lock held. Returns 0 or -ENOMEM. */
int sbx_obj_snapshot_locked(const struct sbx *s, struct sbx_record *ret);
/* --- mgr.c: the index --- */
/* Lookup; takes a reference (drop it with sbx_obj_unref). */
struct sbx *sbx_index_get(sbx_mgr *m, const char *id);
/* With index_lock held; no reference taken. */
struct sbx *sbx_index_find_locked(sbx_mgr *m, const char *id);
/* With index_lock held; the index takes a reference. 0, -EEXIST, -ENOMEM. */
int sbx_index_insert_locked(sbx_mgr *m, struct sbx *s);
/* Unlists |s| (if it is the object listed under its id) and releases its
 * admission reservation. Takes index_lock: call with no lock held. */
void sbx_index_remove(sbx_mgr *m, struct sbx *s);
/* References to every listed sandbox, sorted by id. */
int sbx_index_collect(sbx_mgr *m, struct sbx ***ret_v, size_t *ret_n);
void sbx_index_release(struct sbx **v, size_t n);
/* The manager's clock (wall ms). */
int64_t sbx_now(sbx_mgr *m);
/* 0, or -ESHUTDOWN while recovering or draining. */
int sbx_mgr_check_serving(sbx_mgr *m, struct ha_err *err);

/* --- admit.c --- (called with mgr->index_lock held) */
int sbx_admit_reserve_locked(sbx_mgr *m, struct sbx *s, struct ha_err *err);
void sbx_admit_release_locked(sbx_mgr *m, struct sbx *s);
void sbx_admit_release(sbx_mgr *m, struct sbx *s);
/* Recovery re-reserves without checks: what runs, runs. */
void sbx_admit_force_locked(sbx_mgr *m, struct sbx *s);

/* --- reaper.c --- */
int sbx_reaper_start(sbx_mgr *m);
void sbx_reaper_stop(sbx_mgr *m);     /* joins threads; queued jobs dropped */
void sbx_reaper_done(sbx_mgr *m);
/* (Re)arms |s| to expire at |key| (wall ms). */
void sbx_reaper_arm(sbx_mgr *m, struct sbx *s, int64_t key);
void sbx_reaper_disarm(sbx_mgr *m, struct sbx *s);
/* Queues a janitor job (SBX_JOB_*) for |s|; no-op when stopping. */
void sbx_reaper_queue(sbx_mgr *m, struct sbx *s, unsigned job);
void sbx_reaper_kick(sbx_mgr *m);

/* --- watch.c --- */
int sbx_hub_init(struct sbx_hub *h);
void sbx_hub_shutdown(struct sbx_hub *h);
void sbx_hub_done(struct sbx_hub *h);
unsigned sbx_hub_count(struct sbx_hub *h);
/* Copies |rec| into every matching subscriber's queue. */
void sbx_hub_emit(sbx_mgr *m, enum sbx_event_kind kind, const char *reason,
                  const struct sbx_record *rec);

/* --- lifecycle.c --- */
/* The paths shared by the API, the reaper and recovery. */
enum sbx_destroy_why { SBX_DESTROY_REQUEST, SBX_DESTROY_EXPIRY };
int sbx_destroy_obj(sbx_mgr *m, struct sbx *s, enum sbx_destroy_why why,
                    const struct sbx_cancel *cancel, struct ha_err *err);
/* Handles a reported VMM exit (janitor job). */
void sbx_fail_obj(sbx_mgr *m, struct sbx *s);
/* Releases what |res| holds, VMM first; stops at the first failure and leaves
 * has_* set for what is still held. Returns 0 or that failure. */
int sbx_release_resources(sbx_mgr *m, struct sbx_resources *res, struct ha_err *err);
/* Persists the sandbox's current row (s->lock not held). Logs failures. */
int sbx_persist(sbx_mgr *m, struct sbx *s);

#endif
