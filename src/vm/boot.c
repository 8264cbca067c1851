/*
 * boot.c - bringing a VM up: vm_boot() in one call or vm_spawn() /
 * vm_configure() / vm_instance_start() one step at a time, and vm_restore()
 * from a snapshot. Every failure undoes what the call itself started.
 */
#include "vm/vm_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "vm/api.h"

/* logger .. vsock. */
static int do_configure(vm *v, struct ha_err *err)
{
        int r;
        struct vm_machine_cfg m = { .vcpu_count = v->vcpus, .mem_size_mib = v->mem_mib };
        uint64_t t0 = ha_now_ns();
        r = vm_api_put_logger(v->api, v->fc_log_vmm, v->log_level, err);
        if (r == 0)
                r = vm_api_put_metrics(v->api, v->metrics_vmm, err);
        if (r == 0)
                r = vm_api_put_machine_config(v->api, &m, err);
        if (r == 0)
                r = vm_api_put_boot_source(v->api, v->kernel_vmm, v->boot_args, err);
        if (r == 0)
                r = vm_api_put_drive(v->api, VM_DRIVE_ID, v->rootfs_vmm, true, false, err);
        if (r == 0 && v->tap)
                r = vm_api_put_network_interface(v->api, VM_IFACE_ID, v->tap, v->mac, err);
        if (r == 0)
                r = vm_api_put_vsock(v->api, v->cid, v->vsock_vmm, err);
        v->pending.config_us = (ha_now_ns() - t0) / 1000;
        return r < 0 ? vm_vmm_explain(v, r, err) : 0;
}

static int do_start(vm *v, struct ha_err *err)
{
        uint64_t t0 = ha_now_ns();
        int r = vm_api_action(v->api, "InstanceStart", err);
        v->pending.start_us = (ha_now_ns() - t0) / 1000;
        if (r == 0)
                return 0;
        /* "PUT /actions" alone does not say which action failed. */
        if (err) {
                char prev[HA_ERR_MSG_MAX];
                snprintf(prev, sizeof prev, "%s", err->msg);
                ha_err_set(err, r, "InstanceStart: %s", prev);
        }
        return vm_vmm_explain(v, r, err);
}

/* Files, process, API socket; on failure nothing is left. */
static int do_spawn(vm *v, struct ha_err *err)
{
        atomic_store(&v->expect_exit, false);
        int r = vm_files_prepare(v, err);
        if (r == 0)
                r = vm_vmm_spawn(v, err);
        if (r < 0)
                vm_files_remove(v);
        return r;
}

static void log_booted(vm *v)
{
        ha_log_info("vm.booted",
                    "vm=%s pid=%ld spawn_us=%llu socket_us=%llu config_us=%llu start_us=%llu",
                    v->id, (long)v->proc.pid, (unsigned long long)v->times.spawn_us,
                    (unsigned long long)v->times.socket_us,
                    (unsigned long long)v->times.config_us,
                    (unsigned long long)v->times.start_us);
}

static int check_state(vm *v, enum vm_state a, enum vm_state b, const char *what,
                       struct ha_err *err)
{
        enum vm_state s = vm_get_state(v);
        if (s == a || s == b)
                return 0;
        return ha_err_set(err, -EBUSY, "VM %s is %s, cannot %s", v->id, vm_state_name(s), what);
}

int vm_boot(vm *v, struct ha_err *err)
{
        pthread_mutex_lock(&v->op_lock);
        int r = check_state(v, VM_STATE_CREATED, VM_STATE_STOPPED, "boot", err);
        if (r < 0)
                goto out_unlock;
        r = do_spawn(v, err);
        if (r < 0)
                goto out_unlock;
        r = do_configure(v, err);
        if (r == 0)
                r = do_start(v, err);
        /* Watched only once it is a booted VM: a failure before that is
         * this call's error, not an exit to report. */
        if (r == 0)
                r = vm_vmm_watch(v, err);
        if (r < 0) {
                vm_vmm_abort(v);
                goto out_unlock;
        }
        vm_state_commit_running(v);
        log_booted(v);
out_unlock:
        vm_op_end(v);
        return r;
}

int vm_spawn(vm *v, struct ha_err *err)
{
        pthread_mutex_lock(&v->op_lock);
        int r = check_state(v, VM_STATE_CREATED, VM_STATE_STOPPED, "spawn", err);
        if (r < 0)
                goto out_unlock;
        r = do_spawn(v, err);
        if (r < 0)
                goto out_unlock;
        r = vm_vmm_watch(v, err);
        if (r < 0) {
                vm_vmm_abort(v);
                goto out_unlock;
        }
        vm_state_set(v, VM_STATE_SPAWNED);
out_unlock:
        vm_op_end(v);
        return r;
}

int vm_configure(vm *v, unsigned vcpu_count, unsigned mem_size_mib, struct ha_err *err)
{
        pthread_mutex_lock(&v->op_lock);
        int r = check_state(v, VM_STATE_SPAWNED, VM_STATE_SPAWNED, "configure", err);
        if (r == 0 && vcpu_count > 32)
                r = ha_err_set(err, -EINVAL, "vcpu_count %u over 32", vcpu_count);
        if (r == 0) {
                if (vcpu_count)
                        v->vcpus = vcpu_count;
                if (mem_size_mib)
                        v->mem_mib = mem_size_mib;
                r = do_configure(v, err);
        }
        vm_op_end(v);
        return r;
}

int vm_instance_start(vm *v, struct ha_err *err)
{
        pthread_mutex_lock(&v->op_lock);
        int r = check_state(v, VM_STATE_SPAWNED, VM_STATE_SPAWNED, "start", err);
        if (r == 0)
                r = do_start(v, err);
        if (r == 0) {
                vm_state_commit_running(v);
                log_booted(v);
        }
        vm_op_end(v);
        return r;
}

int vm_start(const struct vm_config *cfg, const struct vm_spec *spec, vm **ret,
             struct ha_err *err)
{
        vm *v;
        int r = vm_create(cfg, spec, &v, err);
        if (r < 0)
                return r;
        r = vm_boot(v, err);
        if (r < 0) {
                vm_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

int vm_restore(vm *v, const char *snapshot_path, const char *mem_path, struct ha_err *err)
{
        int r;
        if (v->jailer_bin)
                return ha_err_set(err, -EOPNOTSUPP, "snapshots are not supported in jailer mode");
        if (!snapshot_path || !mem_path)
                return ha_err_set(err, -EINVAL, "restore needs a state path and a memory path");
        pthread_mutex_lock(&v->op_lock);
        enum vm_state s = vm_get_state(v);
        if (s != VM_STATE_SAVED && s != VM_STATE_CREATED) {
                r = ha_err_set(err, -EBUSY, "VM %s is %s, cannot restore", v->id,
                               vm_state_name(s));
                goto out_unlock;
        }
        if (access(snapshot_path, R_OK) < 0 || access(mem_path, R_OK) < 0) {
                r = -errno;
                ha_err_set(err, r, "snapshot files %s, %s: %s", snapshot_path, mem_path,
                           strerror(-r));
                goto out_unlock;
        }
        atomic_store(&v->expect_exit, false);
        r = vm_files_prepare(v, err);
        if (r < 0)
                goto out_unlock;
        r = vm_vmm_spawn(v, err);
        if (r < 0)
                goto out_unlock;
        struct vm_snapshot_load load = {
                .snapshot_path = snapshot_path,
                .mem_path = mem_path,
                .resume_vm = true,
                .iface_id = v->tap ? VM_IFACE_ID : NULL,
                .host_dev_name = v->tap,
                .vsock_uds_path = v->vsock_vmm,
        };
        uint64_t t0 = ha_now_ns();
        /* Logger and metrics are not part of a snapshot: set them again. */
        r = vm_api_put_logger(v->api, v->fc_log_vmm, v->log_level, err);
        if (r == 0)
                r = vm_api_put_metrics(v->api, v->metrics_vmm, err);
        if (r == 0)
                r = vm_api_snapshot_load(v->api, &load, err);
        v->pending.config_us = (ha_now_ns() - t0) / 1000;
        v->pending.start_us = 0;
        if (r < 0) {
                r = vm_vmm_explain(v, r, err);
                goto out_abort;
        }
        r = vm_vmm_watch(v, err);
        if (r < 0)
                goto out_abort;
        vm_state_commit_running(v);
        ha_log_info("vm.restored", "vm=%s pid=%ld spawn_us=%llu socket_us=%llu load_us=%llu",
                    v->id, (long)v->proc.pid, (unsigned long long)v->times.spawn_us,
                    (unsigned long long)v->times.socket_us,
                    (unsigned long long)v->times.config_us);
        vm_op_end(v);
        return 0;

out_abort:
        /* Keep the logs of the failed attempt out of the way but the
         * directory usable for a retry. */
        vm_vmm_kill(v);
        vm_api_free(v->api);
        v->api = NULL;
        unlink(v->api_sock);
        unlink(v->vsock);
out_unlock:
        vm_op_end(v);
        return r;
}
