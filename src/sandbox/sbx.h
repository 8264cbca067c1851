/*
 * sbx.h - the sandbox manager: lifecycle state machine, admission control,
 * TTL reaper, crash-safe state store with recovery, and sandbox events.
 *
 * The manager owns every sandbox record and the resources attached to it
 * (network slot, rootfs clone, VMM process). Requests only borrow: a request
 * that ends (cancelled, deadline, lost connection) never tears down what a
 * record owns. The resources themselves are reached through the function
 * table of sandbox/backend.h, so tests plug a double and the daemon plugs the
 * real net/rootfs/vm modules.
 *
 * States (the numbers match hostagent.v1.SandboxState):
 *
 *   creating ──► running ◄──► paused
 *      │            │            │
 *      │            ▼            ▼
 *      │         stopping ◄──────┘   (destroy / TTL expiry)
 *      │            │
 *      ▼            ▼
 *    (rolled back) gone           failed: the VMM died or cleanup failed;
 *                                  kept visible until destroyed or expired.
 *
 * Threading: every function may be called from any thread, concurrently.
 * Calls that touch the backend block the calling thread (run them on a
 * worker, never on an I/O loop). sbx_mgr_get(), sbx_mgr_list() and
 * sbx_mgr_host_info() only copy in-memory state under short locks and are
 * safe to run inline on a loop thread.
 *
 * Errors: 0 or a negative errno, with words in the optional struct ha_err:
 *   -EINVAL     INVALID_ARGUMENT (message names the field and the limit)
 *   -ENOENT     NOT_FOUND
 *   -EEXIST     ALREADY_EXISTS (create with the same id and another spec)
 *   -EAGAIN     RESOURCE_EXHAUSTED (admission; message carries the numbers)
 *   -EBADFD     FAILED_PRECONDITION: the operation is not allowed in the
 *               sandbox's current state; the message names that state
 *               ("sandbox ab is paused, not running")
 *   -ECANCELED  CANCELLED: the caller's cancel check fired; for create it
 *               means the sandbox was rolled back completely
 *   -ESHUTDOWN  UNAVAILABLE: the manager is recovering or draining
 *   -ENOSPC     RESOURCE_EXHAUSTED: a disk is full (a clone, the store)
 *   -ETIMEDOUT  DEADLINE_EXCEEDED: the VMM or the guest did not answer in
 *               time (the message names the request)
 *   anything else (backend failures: -EIO, -EADDRINUSE, ...) INTERNAL, with
 *               the backend's message.
 */
#ifndef HA_SBX_H
#define HA_SBX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ha_err;
struct sbx_backend;

/* Sandbox ids: [a-z0-9][a-z0-9-]{0,62}. Buffers hold SBX_ID_MAX + 1. */
#define SBX_ID_MAX 63
/* The one valid-looking id a client may not use: it names a directory of
 * the VM driver's under the run dir. */
#define SBX_ID_RESERVED "vmroot"
/* Image names: [A-Za-z0-9][A-Za-z0-9._-]{0,63}; a name, never a path. */
#define SBX_IMAGE_MAX 64
/* Bounds on what a client may attach to a sandbox (each is stored, copied
 * into every event and persisted, so none may grow without limit). */
#define SBX_MAP_MAX_ENTRIES 128   /* metadata and env, each */
#define SBX_KEY_MAX 256           /* bytes per map key */
#define SBX_VALUE_MAX 4096        /* bytes per map value */
#define SBX_CIDR_MAX_ENTRIES 256  /* allow and deny lists, each */
#define SBX_IP_MAX 46             /* INET6_ADDRSTRLEN */
#define SBX_FAILURE_MAX 256
#define SBX_REASON_MAX 256

typedef struct sbx_mgr sbx_mgr;
typedef struct sbx_watch sbx_watch;

/* Numbers match hostagent.v1.SandboxState; GONE has no proto value (it only
 * appears in the record of a DESTROYED event: map it to UNSPECIFIED). */
enum sbx_state {
        SBX_STATE_CREATING = 1,
        SBX_STATE_RUNNING = 2,
        SBX_STATE_PAUSED = 3,
        SBX_STATE_STOPPING = 4,
        SBX_STATE_FAILED = 5,
        SBX_STATE_GONE = 6,
};
/* "creating", "running", ...; "unknown" for other values. */
const char *sbx_state_name(enum sbx_state s);

/* Numbers match hostagent.v1.EgressPolicy.Mode. 0 is normalised to
 * SBX_EGRESS_ALLOW_ALL by create. */
enum sbx_egress_mode {
        SBX_EGRESS_UNSPECIFIED = 0,
        SBX_EGRESS_ALLOW_ALL = 1,
        SBX_EGRESS_DENY_ALL = 2,
        SBX_EGRESS_ALLOW_LIST = 3,
        SBX_EGRESS_DENY_LIST = 4,
};

struct sbx_kv {
        char *key;
        char *value;
};
/* A string map. In records: owned, keys unique and sorted (strcmp). */
struct sbx_map {
        struct sbx_kv *items;
        size_t n;
};
struct sbx_strv {
        char **items;
        size_t n;
};
struct sbx_egress {
        enum sbx_egress_mode mode;
        struct sbx_strv allow_cidrs;   /* "10.0.0.0/8", "2001:db8::/32", "1.2.3.4" */
        struct sbx_strv deny_cidrs;
};

/*
 * What a client asks for. As an argument it is borrowed (the manager copies
 * what it keeps; point the fields straight into a decoded protobuf). In a
 * record it is owned and normalised: defaults filled in, maps sorted.
 */
struct sbx_spec {
        char *id;             /* NULL or "": generated */
        char *image;
        uint32_t vcpus;       /* 0: config default_vcpus */
        uint32_t memory_mib;  /* 0: config default_memory_mib */
        uint32_t timeout_s;   /* TTL; 0: config default_ttl_s */
        struct sbx_map metadata;
        struct sbx_map env;
        struct sbx_egress egress;
};

/*
 * A value snapshot of one sandbox: the caller owns it (release with
 * sbx_record_done()); it never aliases the manager's state.
 */
struct sbx_record {
        char id[SBX_ID_MAX + 1];
        enum sbx_state state;
        struct sbx_spec spec;          /* owned, normalised; spec.id == id */
        int64_t created_at_ms;         /* wall clock, ms since the epoch */
        int64_t expires_at_ms;         /* wall clock; 0 while creating */
        char ip[SBX_IP_MAX];           /* host-reachable address; "" if none */
        uint32_t slot;                 /* network slot; valid when has_slot */
        bool has_slot;
        bool snapshotted;              /* paused with a snapshot, VM memory freed */
        char failure[SBX_FAILURE_MAX]; /* set when state is FAILED */
};

/* Frees the owned strings; |r| may be zeroed or half-filled. */
void sbx_record_done(struct sbx_record *r);
/* Frees |n| records and the array from sbx_mgr_list(). */
void sbx_records_free(struct sbx_record *recs, size_t n);
/* Deep copy. Returns 0 or -ENOMEM (|dst| is then left zeroed). */
int sbx_record_copy(struct sbx_record *dst, const struct sbx_record *src);

/* True for [a-z0-9][a-z0-9-]{0,62}. */
bool sbx_id_valid(const char *id);

/*
 * A cancel check the caller's request supplies (the RPC call's atomic
 * "cancelled" flag). The manager polls it between create steps and at least
 * every 100 ms while it waits; NULL means "never cancelled".
 */
struct sbx_cancel {
        bool (*cancelled)(void *ctx);
        void *ctx;
};

/* Wall-clock source, injectable so tests drive TTLs with a fake clock. */
typedef int64_t (*sbx_clock_fn)(void *ctx);   /* ms since the epoch */

struct sbx_config {
        const char *state_dir;        /* required; holds state.db (+ -wal, -shm) */
        uint32_t max_sandboxes;       /* live (non-failed) sandboxes; default 256 */
        uint32_t slots;               /* reported as capacity.slots; 0: max_sandboxes */
        uint32_t host_vcpus;          /* 0: online CPUs */
        uint64_t host_memory_mib;     /* 0: physical memory */
        double cpu_overcommit;        /* vCPU budget = host_vcpus x this; default 4.0 */
        double mem_overcommit;        /* memory budget = host_memory x this; default 1.0 */
        uint32_t default_vcpus;       /* default 1 */
        uint32_t default_memory_mib;  /* default 256 */
        uint32_t max_vcpus;           /* per sandbox; default 32 (Firecracker's limit) */
        uint32_t max_memory_mib;      /* per sandbox; default 32768 */
        uint32_t min_memory_mib;      /* per sandbox; default 64 */
        uint32_t default_ttl_s;       /* default 300 */
        uint32_t max_ttl_s;           /* default 86400; larger timeouts get -EINVAL */
        uint32_t paused_ttl_s;        /* TTL a pause sets, and the cap of
                                         set_timeout while paused; default 86400 */
        uint32_t ready_timeout_ms;    /* guest readiness deadline; default 30000 */
        uint32_t watch_queue_len;     /* events buffered per subscriber; default 1024 */
        uint32_t max_watchers;        /* concurrent subscriptions; default 256 */
        uint32_t reaper_workers;      /* threads running expiries/VMM-exit cleanups; default 4 */
        uint32_t reaper_workers_max;  /* the pool grows to this while jobs wait; default 64
                                         (a destroy mostly waits on the VMM and the kernel) */
        sbx_clock_fn clock;           /* NULL: CLOCK_REALTIME */
        void *clock_ctx;
};

/* Fills |c| with the defaults above (state_dir NULL, clock NULL). */
void sbx_config_init(struct sbx_config *c);

/*
 * Opens (creating if needed) |cfg->state_dir|/state.db and starts the reaper.
 * |cfg| is copied (state_dir too). |backend| is borrowed and must outlive the
 * manager. The manager is not ready until sbx_mgr_recover() returns: until
 * then mutating calls fail with -ESHUTDOWN and sbx_mgr_ready() is false.
 * Returns 0, -EINVAL (bad config or backend table), -ENOMEM, or the store's
 * error (-EIO, -EACCES, ...) with the path in |err|.
 */
int sbx_mgr_new(const struct sbx_config *cfg, const struct sbx_backend *backend,
                sbx_mgr **ret_mgr, struct ha_err *err);

/*
 * Loads every persisted record and reconciles it with reality, then marks the
 * manager ready. Call once, right after sbx_mgr_new(), before serving:
 *  - running/paused records whose VMM is alive (pid and start time match) are
 *    adopted with their TTL; already-expired ones are reaped right after;
 *  - records whose VMM is dead have their slot and rootfs released and stay
 *    visible as FAILED ("vmm ... not running after agent restart") until
 *    destroyed;
 *  - records caught mid-create or mid-destroy are finished (rolled back or
 *    destroyed) and deleted;
 *  - then backend cleanup_orphans() removes whatever no adopted record owns.
 * Returns 0 or the store's error (the manager then stays not ready).
 */
int sbx_mgr_recover(sbx_mgr *m, struct ha_err *err);

/* True once sbx_mgr_recover() succeeded and until sbx_mgr_drain(): report
 * health SERVING only then. */
bool sbx_mgr_ready(sbx_mgr *m);

/*
 * Starts shutdown: new mutating calls fail with -ESHUTDOWN, every blocked
 * sbx_watch_next() returns -ESHUTDOWN, and the reaper stops. Sandboxes keep
 * running (a restart re-adopts them). Idempotent.
 */
void sbx_mgr_drain(sbx_mgr *m);

/*
 * Drains, then frees the manager. Every other call on |m| must have returned
 * and every sbx_watch been freed. VMMs are left running; the backend only
 * drops its handles (vmm_forget). NULL is a no-op.
 */
void sbx_mgr_free(sbx_mgr *m);

/*
 * Creates a sandbox and returns once it is RUNNING (guest agent ready), or
 * fails having released everything it took, in reverse order.
 *
 * Idempotent on the id: an existing sandbox with an equal normalised spec is
 * returned as it is, whatever its state (a create in flight for it is waited
 * for; a FAILED one is returned FAILED: destroy it to reuse the id); a
 * different spec gives -EEXIST, unless that sandbox is being destroyed, in
 * which case the destroy is waited for and the id reused. |cancel| (may be NULL) is polled between steps: a
 * cancelled create rolls back completely and returns -ECANCELED; once the
 * sandbox is RUNNING a cancel no longer matters (the record owns it and the
 * TTL reaps it). Emits CREATED, then RUNNING, or FAILED + DESTROYED on
 * rollback. The record is persisted before this returns.
 *
 * Returns 0 and fills |ret_rec| (caller frees with sbx_record_done(); may be
 * NULL here and in pause/resume/set_timeout when the record is not wanted),
 * -EINVAL, -EEXIST, -EAGAIN (admission), -ECANCELED, -ESHUTDOWN, -ENOMEM,
 * or a backend error.
 */
int sbx_mgr_create(sbx_mgr *m, const struct sbx_spec *spec, const struct sbx_cancel *cancel,
                   struct sbx_record *ret_rec, struct ha_err *err);

/* Snapshot of one sandbox. Returns 0, -EINVAL (bad id) or -ENOENT. */
int sbx_mgr_get(sbx_mgr *m, const char *id, struct sbx_record *ret_rec, struct ha_err *err);

struct sbx_filter {
        const enum sbx_state *states;   /* any of these; n_states 0: all */
        size_t n_states;
        const struct sbx_map *metadata; /* every pair must match; NULL: any */
};

/*
 * Snapshots of the sandboxes matching |f| (NULL: all), sorted by id. The
 * array is the caller's: sbx_records_free(*ret_recs, *ret_n).
 * Returns 0 or -ENOMEM.
 */
int sbx_mgr_list(sbx_mgr *m, const struct sbx_filter *f, struct sbx_record **ret_recs,
                 size_t *ret_n);

/*
 * Stops the VMM and releases the rootfs clone and network slot, then deletes
 * the record. Allowed in every state: a CREATING sandbox is rolled back (its
 * create returns -ECANCELED), a FAILED one releases what it still holds.
 * Waits for an operation in flight on the same sandbox. Emits DESTROYED
 * (reason "destroyed"). Returns 0, -EINVAL, -ENOENT, -ECANCELED (|cancel|
 * fired while waiting for another operation: nothing changed, except that a
 * CREATING sandbox still rolls back), -ESHUTDOWN, or a backend error (the
 * sandbox is then FAILED and still holds what could not be released; destroy
 * again to retry).
 */
int sbx_mgr_destroy(sbx_mgr *m, const char *id, const struct sbx_cancel *cancel,
                    struct ha_err *err);

/*
 * RUNNING -> PAUSED. With |snapshot| the VMM writes a snapshot and exits
 * (VM memory freed; resume restores it). Moves expires_at to now +
 * paused_ttl_s. Emits PAUSED. Returns 0 and the new record, -EBADFD when not
 * running, -ENOENT, -EINVAL, -ECANCELED, -ESHUTDOWN, or a backend error (the
 * sandbox then stays RUNNING).
 */
int sbx_mgr_pause(sbx_mgr *m, const char *id, bool snapshot, const struct sbx_cancel *cancel,
                  struct sbx_record *ret_rec, struct ha_err *err);

/*
 * PAUSED -> RUNNING (restoring the snapshot when there is one). expires_at
 * becomes now + |timeout_s|, or now + the sandbox's own timeout when 0.
 * Emits RESUMED. Returns 0 and the new record, -EBADFD when not paused,
 * -EINVAL (timeout above max_ttl_s), -ENOENT, -ECANCELED, -ESHUTDOWN, or a
 * backend error (the sandbox then stays PAUSED).
 */
int sbx_mgr_resume(sbx_mgr *m, const char *id, uint32_t timeout_s, const struct sbx_cancel *cancel,
                   struct sbx_record *ret_rec, struct ha_err *err);

/*
 * Keep-alive: expires_at = now + |timeout_s| (it may shorten the TTL).
 * Allowed when RUNNING (1..max_ttl_s), PAUSED (1..max(max_ttl_s,
 * paused_ttl_s)) or FAILED. Returns 0 and the new record, -EINVAL,
 * -EBADFD (creating or stopping), -ENOENT, -ECANCELED, -ESHUTDOWN.
 */
int sbx_mgr_set_timeout(sbx_mgr *m, const char *id, uint32_t timeout_s,
                        const struct sbx_cancel *cancel, struct sbx_record *ret_rec,
                        struct ha_err *err);

/*
 * For exec: copies the guest's vsock Unix socket path of a RUNNING sandbox.
 * Returns 0, -ENOENT, -EBADFD (not running), -ENAMETOOLONG (buffer).
 */
int sbx_mgr_vsock_path(sbx_mgr *m, const char *id, char *ret_path, size_t size,
                       struct ha_err *err);

/*
 * Called by the backend when a VMM process exits without being asked to
 * (pid identifies which process, so a late report about a destroyed
 * sandbox's VMM never hits a new sandbox with the same id). |exit_status| is
 * the exit code as a shell shows it (128 + signal when killed by one), or -1
 * when unknown; |reason| is free text (e.g. the VMM's last log line). Never calls back
 * into the backend before returning: the sandbox is marked FAILED with
 * "vmm exited (<status>): <reason>" and its resources are released on a
 * reaper worker. Returns 0, or -ENOENT / -ESRCH (no such sandbox or not its
 * current VMM; nothing done).
 */
int sbx_mgr_vmm_exited(sbx_mgr *m, const char *id, int pid, int exit_status, const char *reason);

/* Reaper: re-reads the clock now (tests call it after moving a fake clock;
 * the daemon may call it after a wall-clock jump). */
void sbx_mgr_clock_changed(sbx_mgr *m);

struct sbx_capacity {
        uint32_t sandboxes;
        uint32_t slots;
        uint32_t vcpus;
        uint64_t memory_mib;
};
struct sbx_host_info {
        struct sbx_capacity capacity;  /* budgets after overcommit */
        struct sbx_capacity usage;     /* reserved by live (non-failed) sandboxes */
        uint32_t creating, running, paused, stopping, failed;
        uint32_t watchers;
        bool ready;
};
void sbx_mgr_host_info(sbx_mgr *m, struct sbx_host_info *ret);

/* Numbers match hostagent.v1.SandboxEvent.Kind. */
enum sbx_event_kind {
        SBX_EVENT_CREATED = 1,
        SBX_EVENT_RUNNING = 2,
        SBX_EVENT_PAUSED = 3,
        SBX_EVENT_RESUMED = 4,
        SBX_EVENT_EXPIRED = 5,
        SBX_EVENT_DESTROYED = 6,
        SBX_EVENT_FAILED = 7,
};
const char *sbx_event_kind_name(enum sbx_event_kind k);

/*
 * One transition. For each sandbox, events come in the order the transitions
 * happened: CREATED, RUNNING, (PAUSED, RESUMED)*, [EXPIRED], DESTROYED; or
 * CREATED, FAILED, DESTROYED for a rolled-back create; FAILED when a VMM dies.
 */
struct sbx_event {
        uint64_t seq;                  /* manager-wide, increasing */
        enum sbx_event_kind kind;
        int64_t time_ms;               /* wall clock */
        char reason[SBX_REASON_MAX];   /* "created", "expired", "vmm exited ...", ... */
        struct sbx_record rec;         /* owned snapshot after the transition */
};
void sbx_event_done(struct sbx_event *ev);

/*
 * Subscribes to events of sandbox |id| (NULL or "": all). Each subscriber has
 * its own queue of cfg.watch_queue_len events; the manager never blocks on a
 * slow subscriber: when its queue is full the subscription is closed (see
 * -ENOBUFS below). Returns 0, -EINVAL (bad id), -EAGAIN (max_watchers),
 * -ESHUTDOWN, -ENOMEM.
 */
int sbx_watch_new(sbx_mgr *m, const char *id, sbx_watch **ret_watch, struct ha_err *err);

/*
 * Waits for the next event until |deadline_ms| (monotonic, ha_now_ms()
 * scale). Poll with a short deadline (e.g. now + 100) to notice the caller's
 * cancellation. Returns 0 and fills |ret| (caller frees with
 * sbx_event_done()), -ETIMEDOUT, -ENOBUFS (the queue overflowed: events were
 * lost; end the stream with RESOURCE_EXHAUSTED, the client re-lists and
 * re-watches), -ESHUTDOWN (manager draining), -ENOMEM.
 */
int sbx_watch_next(sbx_watch *w, uint64_t deadline_ms, struct sbx_event *ret);

/* Unsubscribes and frees queued events. NULL is a no-op. */
void sbx_watch_free(sbx_watch *w);

#endif
