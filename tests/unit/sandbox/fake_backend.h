/*
 * fake_backend.h - a test double for sandbox/backend.h.
 *
 * Keeps an in-memory table of what each sandbox id holds (slot, rootfs
 * clone, "VMM" with a fake pid and start time) and counts every acquisition
 * and release, so a test can assert that nothing is left over and nothing is
 * released twice (violations). Any hook can be made to fail (with an errno,
 * N times or forever) or to take time. The state can live in shared memory
 * so a forked "agent" can be killed with SIGKILL and a new manager in the
 * parent recover what the child left, as after a real crash.
 */
#ifndef HA_TEST_FAKE_BACKEND_H
#define HA_TEST_FAKE_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "sandbox/backend.h"
#include "sandbox/sbx.h"

enum fake_step {
        FAKE_NET_ACQUIRE,
        FAKE_ROOTFS_CLONE,
        FAKE_VMM_START,
        FAKE_VMM_CONFIGURE,
        FAKE_VMM_BOOT,
        FAKE_VMM_WAIT_READY,
        FAKE_VMM_PAUSE,
        FAKE_VMM_RESUME,
        FAKE_VMM_SNAPSHOT,
        FAKE_VMM_RESTORE,
        FAKE_VMM_STOP,
        FAKE_ROOTFS_REMOVE,
        FAKE_NET_RELEASE,
        FAKE_VMM_ADOPT,
        FAKE_CLEANUP_ORPHANS,
        FAKE_NSTEPS
};
/* The create steps, in order. */
#define FAKE_CREATE_STEPS 6

#define FAKE_TABLE 8192
#define FAKE_SLOTS 4096

struct fake_ent {
        char id[SBX_ID_MAX + 1];   /* "" free; tomb: freed after use */
        bool tomb;
        bool net, rootfs, vmm;     /* held */
        uint32_t slot;
        int pid;                   /* 0: no process */
        uint64_t start_time;
        bool alive;                /* the fake process runs */
        bool configured, booted, paused, snap;
        bool adopted_handle;
};

struct fake {
        pthread_mutex_t lock;      /* process-shared when shared */
        struct fake_ent ent[FAKE_TABLE];
        bool slot_used[FAKE_SLOTS];
        int next_pid;
        uint64_t next_start;
        /* counters (guarded_by: lock) */
        long calls[FAKE_NSTEPS];
        long net_acquired, net_released, rootfs_cloned, rootfs_removed, vmm_started,
                vmm_stopped, forgets, orphans_removed, violations;
        int live_net, live_rootfs, live_vmm;
        /* injection (guarded_by: lock) */
        int fail_errno[FAKE_NSTEPS];
        int fail_left[FAKE_NSTEPS];    /* -1: forever */
        int delay_ms[FAKE_NSTEPS];
        /* set by the test, same process only */
        sbx_mgr *mgr;
        bool shared;
};

/* |shared|: in MAP_SHARED memory (survives into a forked child). */
struct fake *fake_new(bool shared);
void fake_free(struct fake *f);
/* The table to give sbx_mgr_new (ctx = f). */
void fake_backend(struct fake *f, struct sbx_backend *ret);

/* Makes |step| fail with -|err| |times| times (-1: forever; err 0: stop). */
void fake_fail(struct fake *f, enum fake_step step, int err, int times);
void fake_delay(struct fake *f, enum fake_step step, int ms);
/* Kills the fake VMM process of |id| and, when |report|, tells the
 * manager (f->mgr) like a real backend's exit watcher. Returns its pid. */
int fake_kill_vmm(struct fake *f, const char *id, bool report);
/* Leaves resources with no record, as a crash between acquire and persist
 * would. */
void fake_add_orphan(struct fake *f, const char *id);
/* Flips the fake VMM's paused flag, as a crash between the VMM call and
 * the store write would leave it. */
void fake_set_paused(struct fake *f, const char *id, bool paused);
/* Snapshot of one id's entry; false when the id holds nothing. */
bool fake_get(struct fake *f, const char *id, struct fake_ent *ret);
/* Counters. */
long fake_calls(struct fake *f, enum fake_step step);
void fake_live(struct fake *f, int *net, int *rootfs, int *vmm);
long fake_violations(struct fake *f);
/* True when nothing is held at all. */
bool fake_empty(struct fake *f);

#endif
