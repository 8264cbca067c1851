/*
 * vmm.c - the process behind a vm: launching it with the vm's paths,
 * watching it (the watcher's fire function), explaining its death when a
 * request fails, and ending it (SIGKILL to its group, reaping, the
 * simulator's cgroups). Callers hold op_lock (vm_int.h).
 */
#include "vm/vm_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "vm/api.h"
#include "vm/simcg.h"

/* After SIGKILL, how long the process may take to disappear (exit_mmap of a
 * big guest can take a while). */
#define KILL_WAIT_MS 5000

/* ---- process ---- */

static void fire(void *arg)
{
        vm *v = arg;
        struct vm_exit ex;
        pthread_mutex_lock(&v->lock);
        if (!v->has_proc) {
                pthread_mutex_unlock(&v->lock);
                return;
        }
        if (vm_proc_reap(v->proc.pidfd, v->proc.pid, &ex) < 0)
                ex = (struct vm_exit){ .pid = v->proc.pid, .known = false, .code = -1 };
        v->last_exit = ex;
        bool expected = atomic_load(&v->expect_exit);
        if (!expected)
                v->state = VM_STATE_EXITED;
        pthread_mutex_unlock(&v->lock);
        if (expected)
                return;

        char tail[2200], how[96];
        vm_log_tail_text(v, tail, sizeof tail);
        vm_exit_describe(&ex, how, sizeof how);
        ha_log_warn("vm.exited", "vm=%s pid=%ld how=\"%s\"", v->id, (long)ex.pid, how);
        if (v->on_exit)
                v->on_exit(v->on_exit_ctx, v, &ex, tail);
}

int vm_vmm_watch(vm *v, struct ha_err *err)
{
        if (!v->watcher)
                return 0;
        int r = vm_watcher_add(v->watcher, v->proc.pidfd, fire, v, &v->watch_key);
        if (r < 0)
                return ha_err_set(err, r, "watch VMM pid %ld: %s", (long)v->proc.pid,
                                  strerror(-r));
        return 0;
}

void vm_vmm_unwatch(vm *v)
{
        if (v->watcher && v->watch_key)
                vm_watcher_del(v->watcher, v->watch_key);
        v->watch_key = 0;
}

/* Ends the process (SIGKILL to its group) and forgets it. The watcher must
 * be detached. Returns 0 or -ETIMEDOUT. */
int vm_vmm_kill(vm *v)
{
        if (!v->has_proc)
                return 0;
        struct vm_exit ex;
        pid_t pid = v->proc.pid;
        vm_simcg_thaw(v->id, pid);
        int r = vm_proc_kill(&v->proc, KILL_WAIT_MS, &ex);
        if (r < 0)
                return r;
        vm_simcg_remove(v->id, pid);
        pthread_mutex_lock(&v->lock);
        v->has_proc = false;
        v->proc.pid = 0;
        v->last_exit = ex;
        pthread_mutex_unlock(&v->lock);
        return 0;
}

/* After an API error: if the VMM has died, say that instead (with its exit
 * and log), since "connection reset" would hide the real cause. */
int vm_vmm_explain(vm *v, int r, struct ha_err *err)
{
        if (!v->has_proc || !vm_proc_wait(v->proc.pidfd, 50))
                return r;
        /* It died: this error reports it, so stop watching (the watcher
         * may already have reaped it and kept the status). */
        vm_vmm_unwatch(v);
        struct vm_exit ex;
        char how[96], tail[2200];
        pthread_mutex_lock(&v->lock);
        if (v->state == VM_STATE_EXITED) {
                ex = v->last_exit;
        } else if (vm_proc_reap(v->proc.pidfd, v->proc.pid, &ex) < 0) {
                ex = (struct vm_exit){ .pid = v->proc.pid, .code = -1 };
        }
        v->last_exit = ex;
        /* A booted VM that died under pause/snapshot is now EXITED; a
         * boot or restore in progress keeps its state for its own undo. */
        if (v->state == VM_STATE_RUNNING || v->state == VM_STATE_PAUSED)
                v->state = VM_STATE_EXITED;
        pthread_mutex_unlock(&v->lock);
        vm_exit_describe(&ex, how, sizeof how);
        vm_log_tail_text(v, tail, sizeof tail);
        for (char *c = tail; *c; c++)
                if (*c == '\n')
                        *c = ' ';
        char prev[HA_ERR_MSG_MAX];
        snprintf(prev, sizeof prev, "%s", err ? err->msg : "");
        return ha_err_set(err, -ECHILD, "VMM %s (%s); %s", how, prev, tail);
}

/* Launches the VMM and waits for its API socket; on failure no process. */
int vm_vmm_spawn(vm *v, struct ha_err *err)
{
        struct vm_launch l = {
                .vmm_bin = v->vmm_bin,
                .id = v->id,
                .api_sock = v->api_sock_vmm,
                .api_sock_host = v->api_sock,
                .console_log = v->console_log,
                .netns_path = v->netns_path,
                .tmpfs_dir = v->jailer_bin ? NULL : v->mnt_dir,
                .binds = { { v->kernel_src, v->kernel_vmm, true },
                           { v->rootfs_src, v->rootfs_vmm, false } },
                .n_binds = 2,
                .jailer_bin = v->jailer_bin,
                .uid = v->uid,
                .gid = v->gid,
                .chroot_base = v->chroot_base,
        };
        char kdst[PATH_MAX], rdst[PATH_MAX];
        if (v->jailer_bin) {
                /* The jail's view: bind targets inside its root. */
                if (vm_path_cat(kdst, sizeof kdst, v->jail_root, v->kernel_vmm) < 0 ||
                    vm_path_cat(rdst, sizeof rdst, v->jail_root, v->rootfs_vmm) < 0)
                        return ha_err_set(err, -ENAMETOOLONG, "jail path too long");
                l.binds[0].dst = kdst;
                l.binds[1].dst = rdst;
        }
        struct vm_proc p;
        uint64_t t0 = ha_now_ns();
        int r = vm_launch_spawn(&l, &p, err);
        if (r < 0)
                return r;
        uint64_t t1 = ha_now_ns();
        v->pending.spawn_us = (t1 - t0) / 1000;
        pthread_mutex_lock(&v->lock);
        v->proc = p;
        v->has_proc = true;
        v->adopted = false;
        pthread_mutex_unlock(&v->lock);
        ha_log_info("vm.spawned", "vm=%s pid=%ld", v->id, (long)p.pid);

        struct vm_exit ex;
        r = vm_launch_wait_ready(&v->proc, v->api_sock, v->boot_timeout_ms, v->console_log, &ex,
                                 err);
        v->pending.socket_us = (ha_now_ns() - t1) / 1000;
        if (r == -ECHILD) {
                close(v->proc.pidfd);
                pthread_mutex_lock(&v->lock);
                v->has_proc = false;
                v->proc.pidfd = -1;
                v->last_exit = ex;
                pthread_mutex_unlock(&v->lock);
                return r;
        }
        if (r == 0) {
                vm_api_free(v->api);
                v->api = NULL;
                r = vm_api_new(v->api_sock, v->api_timeout_ms, &v->api);
                if (r < 0)
                        ha_err_set(err, r, "API client: %s", strerror(-r));
        }
        if (r < 0)
                vm_vmm_kill(v);
        return r;
}

void vm_vmm_abort(vm *v)
{
        vm_vmm_kill(v);
        vm_api_free(v->api);
        v->api = NULL;
        vm_files_remove(v);
}

/* Ends the process on purpose: no exit callback, sockets removed. */
int vm_vmm_end(vm *v)
{
        atomic_store(&v->expect_exit, true);
        vm_vmm_unwatch(v);
        int r = vm_vmm_kill(v);
        if (r < 0)
                return r;
        vm_api_free(v->api);
        v->api = NULL;
        unlink(v->api_sock);
        unlink(v->vsock);
        return 0;
}
