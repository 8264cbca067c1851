/*
 * control.c - operations on a VM that exists: pause/resume, snapshot (which
 * ends the process on purpose), stop (courtesy Ctrl-Alt-Del, then SIGKILL,
 * then the files), and adopt after an agent restart.
 */
#include "vm/vm_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "vm/api.h"

/* Budget for the courtesy SendCtrlAltDel request during stop. */
#define CAD_REQUEST_TIMEOUT_MS 500

static int set_paused(vm *v, bool paused, struct ha_err *err)
{
        int r;
        pthread_mutex_lock(&v->op_lock);
        enum vm_state s = vm_get_state(v);
        if (s != VM_STATE_RUNNING && s != VM_STATE_PAUSED) {
                r = ha_err_set(err, -EBUSY, "VM %s is %s", v->id, vm_state_name(s));
                goto out_unlock;
        }
        r = vm_api_set_paused(v->api, paused, err);
        if (r < 0) {
                r = vm_vmm_explain(v, r, err);
                goto out_unlock;
        }
        vm_state_set(v, paused ? VM_STATE_PAUSED : VM_STATE_RUNNING);
out_unlock:
        vm_op_end(v);
        return r;
}

int vm_pause(vm *v, struct ha_err *err) { return set_paused(v, true, err); }

int vm_resume(vm *v, struct ha_err *err) { return set_paused(v, false, err); }

int vm_snapshot(vm *v, const char *snapshot_path, const char *mem_path, struct ha_err *err)
{
        int r;
        if (v->jailer_bin)
                return ha_err_set(err, -EOPNOTSUPP, "snapshots are not supported in jailer mode");
        if (!snapshot_path || !mem_path)
                return ha_err_set(err, -EINVAL, "snapshot needs a state path and a memory path");
        pthread_mutex_lock(&v->op_lock);
        enum vm_state s = vm_get_state(v);
        if (s != VM_STATE_RUNNING && s != VM_STATE_PAUSED) {
                r = ha_err_set(err, -EBUSY, "VM %s is %s, cannot snapshot", v->id,
                               vm_state_name(s));
                goto out_unlock;
        }
        if (s == VM_STATE_RUNNING) {
                r = vm_api_set_paused(v->api, true, err);
                if (r < 0) {
                        r = vm_vmm_explain(v, r, err);
                        goto out_unlock;
                }
                vm_state_set(v, VM_STATE_PAUSED);
        }
        r = vm_api_snapshot_create(v->api, snapshot_path, mem_path, err);
        if (r < 0) {
                r = vm_vmm_explain(v, r, err);
                if (s == VM_STATE_RUNNING && r != -ECHILD &&
                    vm_api_set_paused(v->api, false, NULL) == 0)
                        vm_state_set(v, VM_STATE_RUNNING);
                goto out_unlock;
        }
        r = vm_vmm_end(v);
        if (r < 0) {
                ha_err_set(err, r, "snapshot written but VMM pid %ld would not die",
                           (long)v->proc.pid);
                goto out_unlock;
        }
        vm_state_set(v, VM_STATE_SAVED);
        ha_log_info("vm.snapshotted", "vm=%s", v->id);
out_unlock:
        vm_op_end(v);
        return r;
}

int vm_stop(vm *v, struct ha_err *err)
{
        int r = 0;
        pthread_mutex_lock(&v->op_lock);
        atomic_store(&v->expect_exit, true);
        vm_vmm_unwatch(v);
        enum vm_state s = vm_get_state(v);
        if (v->has_proc && (s == VM_STATE_RUNNING || s == VM_STATE_PAUSED) && v->api &&
            !vm_proc_wait(v->proc.pidfd, 0)) {
                /* Courtesy: let the guest shut down cleanly if it can. A
                 * paused guest is resumed first, since a frozen one can
                 * neither take Ctrl-Alt-Del nor, in the simulator, die. */
                vm_api_set_timeout(v->api, CAD_REQUEST_TIMEOUT_MS);
                bool runs = s == VM_STATE_RUNNING || vm_api_set_paused(v->api, false, NULL) == 0;
                if (runs && vm_api_action(v->api, "SendCtrlAltDel", NULL) == 0)
                        vm_proc_wait(v->proc.pidfd, v->stop_timeout_ms);
        }
        r = vm_vmm_kill(v);
        if (r < 0) {
                ha_err_set(err, r, "VMM pid %ld did not die after SIGKILL", (long)v->proc.pid);
                goto out_unlock;
        }
        vm_api_free(v->api);
        v->api = NULL;
        vm_files_remove(v);
        vm_state_set(v, VM_STATE_STOPPED);
        ha_log_info("vm.stopped", "vm=%s", v->id);
out_unlock:
        vm_op_end(v);
        return r;
}

int vm_adopt(const struct vm_config *cfg, const struct vm_spec *spec, pid_t pid,
             uint64_t starttime, vm **ret, struct ha_err *err)
{
        vm *v;
        int r = vm_create(cfg, spec, &v, err);
        if (r < 0)
                return r;
        int pidfd = vm_proc_open(pid, starttime);
        if (pidfd < 0) {
                r = ha_err_set(err, pidfd, "VMM pid %ld (start time %llu) is gone", (long)pid,
                               (unsigned long long)starttime);
                goto out_free;
        }
        v->proc = (struct vm_proc){ .pid = pid, .pidfd = pidfd, .starttime = starttime };
        v->has_proc = true;
        v->adopted = true;
        r = vm_api_new(v->api_sock, v->api_timeout_ms, &v->api);
        if (r < 0) {
                ha_err_set(err, r, "API client: %s", strerror(-r));
                goto out_free;
        }
        char state[32];
        r = vm_api_get_state(v->api, state, sizeof state, err);
        if (r < 0)
                goto out_free;
        if (strcmp(state, "Running") == 0) {
                v->state = VM_STATE_RUNNING;
        } else if (strcmp(state, "Paused") == 0) {
                v->state = VM_STATE_PAUSED;
        } else {
                r = ha_err_set(err, -EIO, "VMM pid %ld is in state \"%s\", not a booted VM",
                               (long)pid, state);
                goto out_free;
        }
        r = vm_vmm_watch(v, err);
        if (r < 0)
                goto out_free;
        ha_log_info("vm.adopted", "vm=%s pid=%ld state=%s", v->id, (long)pid, state);
        vm_api_idle(v->api);
        *ret = v;
        return 0;

out_free:
        vm_free(v); /* closes the pidfd; the process is left alone */
        return r;
}
