/*
 * api_run.c - everything that runs the guest: InstanceStart, the actions,
 * PATCH /vm (pause, resume) and the filesystem-only snapshots. A boot is
 * all-or-nothing: on any failure the guest, its relay and vsock service
 * are stopped and the instance is "Not started" again.
 */
#include "api_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "core/log.h"
#include "netcfg.h"
#include "schema.h"
#include "snapshot.h"

void fcsim_vm_stop_guest(struct fcsim_vm *vm)
{
        /* Connections and frames first: their threads touch the guest. */
        fcsim_vsock_stop(vm->vsock);
        fcsim_relay_stop(vm->relay);
        vm->relay = NULL;
        if (vm->guest_up)
                fcsim_guest_kill(&vm->guest);
        vm->guest_up = false;
}

/* ---- guest lifecycle ---- */

static const struct fcsim_drive *root_drive(const struct fcsim_config *cfg)
{
        for (unsigned i = 0; i < cfg->n_drives; i++) {
                if (cfg->drives[i].is_root_device)
                        return &cfg->drives[i];
        }
        return NULL;
}

static int set_paused(struct fcsim_vm *vm, bool paused, struct ha_err *err)
{
        int r = fcsim_cgroup_freeze(&vm->guest.cg, paused, err);
        if (r < 0)
                return r;
        if (vm->relay)
                fcsim_relay_set_paused(vm->relay, paused);
        if (vm->vsock)
                fcsim_vsock_set_paused(vm->vsock, paused);
        vm->state = paused ? FCSIM_PAUSED : FCSIM_RUNNING;
        return 0;
}

/* Boots the configured root drive; |paused| leaves it frozen right away. */
static int boot_guest(struct fcsim_vm *vm, bool paused, struct ha_err *err)
{
        const struct fcsim_drive *root = root_drive(&vm->cfg);
        struct fcsim_guest_spec spec = {
                .id = vm->id,
                .image = root->path_on_host,
                .read_only = root->is_read_only,
                .boot_args = vm->cfg.boot.has_boot_args ? vm->cfg.boot.boot_args : "",
                .vcpus = vm->cfg.machine.vcpu_count,
                .mem_mib = vm->cfg.machine.mem_size_mib,
                .vsock = vm->vsock != NULL,
                .n_nets = vm->cfg.n_nets,
                .nets = vm->cfg.nets,
        };
        int r = fcsim_guest_boot(&spec, &vm->guest, err);
        if (r < 0)
                return r;
        vm->guest_up = true;
        if (vm->vsock) {
                r = fcsim_vsock_start(vm->vsock, vm->guest.vsock_dir, err);
                if (r < 0)
                        goto out_kill;
        }
        if (vm->cfg.n_nets > 0) {
                int host[FCSIM_MAX_NETS];
                for (unsigned i = 0; i < vm->cfg.n_nets; i++)
                        host[i] = vm->cfg.nets[i].tap_fd;
                r = fcsim_relay_start(host, vm->guest.tap_fds, vm->guest.n_taps, &vm->relay, err);
                vm->guest.n_taps = 0; /* the relay owns (or closed) them */
                if (r < 0)
                        goto out_kill;
        }
        vm->state = FCSIM_RUNNING;
        if (paused) {
                r = set_paused(vm, true, err);
                if (r < 0)
                        goto out_kill;
        }
        const struct fcsim_guest *g = &vm->guest;
        ha_log_info("fcsim.guest.booted",
                    "id=%s pid=%d boot_us=%llu cgroup_us=%llu loop_us=%llu setup_us=%llu "
                    "exec_us=%llu image=%s vsock_dir=%s nets=%u",
                    vm->id, (int)g->pid, (unsigned long long)g->boot_us,
                    (unsigned long long)g->cgroup_us, (unsigned long long)g->loop_us,
                    (unsigned long long)g->setup_us, (unsigned long long)g->exec_us,
                    root->path_on_host,
                    vm->guest.vsock_guest_dir[0] ? vm->guest.vsock_guest_dir : "-", vm->cfg.n_nets);
        fcsim_vmlog_write(&vm->vmlog, FCSIM_VL_INFO, "Guest booted: init pid %d, %llu us",
                          (int)vm->guest.pid, (unsigned long long)vm->guest.boot_us);
        return 0;
out_kill:
        fcsim_vm_stop_guest(vm);
        vm->state = FCSIM_NOT_STARTED;
        return r;
}

static int instance_start(struct fcsim_call *c)
{
        struct fcsim_vm *vm = c->vm;
        if (!fcsim_call_preboot(c))
                return 0;
        if (!vm->cfg.boot.set)
                return fcsim_call_fault(c, "Cannot start microvm without kernel configuration.");
        if (!root_drive(&vm->cfg))
                return fcsim_call_fault(
                        c, "Cannot start microvm without a root block device: the "
                           "simulator boots the root drive's /sbin/init as the guest.");
        struct ha_err err = { "" };
        if (boot_guest(vm, false, &err) < 0)
                return fcsim_call_fault(c, "Failed to start the microVM: %s", err.msg);
        return fcsim_call_ok(c);
}

int fcsim_api_put_actions(struct fcsim_call *c)
{
        cJSON *j;
        if (fcsim_call_body(c, &fcsim_schema_action, &j) < 0)
                return 0;
        const char *action = fcsim_json_str(j, "action_type", "");
        int r = 0;
        if (strcmp(action, "InstanceStart") == 0) {
                r = instance_start(c);
        } else if (strcmp(action, "FlushMetrics") == 0) {
                if (fcsim_call_postboot(c)) {
                        fcsim_vm_flush_metrics(c->vm);
                        r = fcsim_call_ok(c);
                }
        } else if (fcsim_call_postboot(c)) {
                /* SendCtrlAltDel: the guest's init gets SIGTERM, its cue to
                 * shut down; fcsim exits once init is gone. */
                int sr = fcsim_guest_signal(&c->vm->guest, SIGTERM);
                r = sr < 0 ? fcsim_call_fault(c, "Failed to send CTRL+ALT+DEL: %s", strerror(-sr))
                           : fcsim_call_ok(c);
        }
        cJSON_Delete(j);
        return r;
}

int fcsim_api_patch_vm(struct fcsim_call *c)
{
        cJSON *j;
        if (fcsim_call_body(c, &fcsim_schema_vm, &j) < 0)
                return 0;
        bool pause = strcmp(fcsim_json_str(j, "state", ""), "Paused") == 0;
        cJSON_Delete(j);
        if (!fcsim_call_postboot(c))
                return 0;
        if ((c->vm->state == FCSIM_PAUSED) == pause)
                return fcsim_call_ok(c); /* idempotent, as Firecracker */
        struct ha_err err = { "" };
        if (set_paused(c->vm, pause, &err) < 0)
                return fcsim_call_fault(c, "Failed to %s the microVM: %s",
                                        pause ? "pause" : "resume", err.msg);
        fcsim_vmlog_write(&c->vm->vmlog, FCSIM_VL_INFO, "VM %s.", pause ? "paused" : "resumed");
        return fcsim_call_ok(c);
}

int fcsim_api_snapshot_create(struct fcsim_call *c)
{
        cJSON *j;
        if (fcsim_call_body(c, &fcsim_schema_snapshot_create, &j) < 0)
                return 0;
        int r = 0;
        if (!fcsim_call_postboot(c))
                goto out;
        if (c->vm->state != FCSIM_PAUSED) {
                r = fcsim_call_fault(c, "Cannot create snapshot: the microVM is not paused.");
                goto out;
        }
        if (strcmp(fcsim_json_str(j, "snapshot_type", "Full"), "Diff") == 0 &&
            !c->vm->cfg.machine.track_dirty_pages) {
                r = fcsim_call_fault(c, "Diff snapshots are not allowed on uVMs with dirty page "
                                        "tracking disabled.");
                goto out;
        }
        struct ha_err err = { "" };
        if (fcsim_snapshot_write(&c->vm->cfg, fcsim_json_str(j, "snapshot_path", ""),
                                 fcsim_json_str(j, "mem_file_path", ""), &err) < 0) {
                r = fcsim_call_fault(c, "Cannot create snapshot: %s", err.msg);
                goto out;
        }
        /* Firecracker resets the vsock device when snapshotting. */
        if (c->vm->vsock)
                fcsim_vsock_reset(c->vm->vsock);
        r = fcsim_call_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

/* Applies a loaded configuration: overrides, TAPs, vsock, then boot. */
static int restore(struct fcsim_vm *vm, struct fcsim_config *cfg, const cJSON *j,
                   struct ha_err *err)
{
        int r;
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(j, "network_overrides"))
        {
                const char *iface = fcsim_json_str(o, "iface_id", "");
                const char *dev = fcsim_json_str(o, "host_dev_name", "");
                unsigned i = 0;
                while (i < cfg->n_nets && strcmp(cfg->nets[i].id, iface) != 0)
                        i++;
                if (i == cfg->n_nets)
                        return ha_err_set(err, -ENOENT,
                                          "Invalid network override: no interface %s "
                                          "in the snapshot",
                                          iface);
                if (dev[0] == '\0' || strlen(dev) >= IFNAMSIZ)
                        return ha_err_set(err, -EINVAL, "Invalid TAP name: %s", dev);
                memcpy(cfg->nets[i].host_dev_name, dev, strlen(dev) + 1);
        }
        const cJSON *vo = cJSON_GetObjectItemCaseSensitive(j, "vsock_override");
        if (vo) {
                const char *p = fcsim_json_str(vo, "uds_path", "");
                if (!cfg->vsock.set)
                        return ha_err_set(err, -ENOENT,
                                          "vsock_override given but the snapshot has "
                                          "no vsock device");
                if (p[0] == '\0' || strlen(p) > FCSIM_UDS_PATH_MAX)
                        return ha_err_set(err, -ENAMETOOLONG, "vsock_override uds_path too long");
                memcpy(cfg->vsock.uds_path, p, strlen(p) + 1);
        }
        if (fcsim_json_bool(j, "track_dirty_pages", false) ||
            fcsim_json_bool(j, "enable_diff_snapshots", false))
                cfg->machine.track_dirty_pages = true;
        if (!cfg->boot.set || !root_drive(cfg))
                return ha_err_set(err, -EINVAL, "the snapshot has no kernel or no root drive");
        for (unsigned i = 0; i < cfg->n_nets; i++) {
                r = fcsim_tap_open(cfg->nets[i].host_dev_name, &cfg->nets[i].tap_fd, err);
                if (r < 0)
                        return r;
        }
        if (cfg->vsock.set) {
                r = fcsim_vsock_open(cfg->vsock.uds_path, &vm->vsock, err);
                if (r < 0)
                        return r;
        }
        /* The TAP fds move to the instance. */
        vm->cfg = *cfg;
        for (unsigned i = 0; i < cfg->n_nets; i++)
                cfg->nets[i].tap_fd = -1;
        vm->boot_specific = true;
        r = boot_guest(vm, !fcsim_json_bool(j, "resume_vm", false), err);
        if (r < 0) {
                fcsim_vsock_close(vm->vsock);
                vm->vsock = NULL;
                fcsim_config_done(&vm->cfg);
                fcsim_config_init(&vm->cfg);
        }
        return r;
}

int fcsim_api_snapshot_load(struct fcsim_call *c)
{
        cJSON *j;
        if (fcsim_call_body(c, &fcsim_schema_snapshot_load, &j) < 0)
                return 0;
        int r = 0;
        bool has_file = fcsim_json_has(j, "mem_file_path");
        const cJSON *backend = cJSON_GetObjectItemCaseSensitive(j, "mem_backend");
        if (has_file && backend) {
                r = fcsim_call_fault(c,
                                     "%stoo many fields: either `mem_backend` or `mem_file_path` "
                                     "exclusively is required.",
                                     FCSIM_MSG_SERDE);
                goto out;
        }
        if (!has_file && !backend) {
                r = fcsim_call_fault(c,
                                     "%smissing field: either `mem_backend` or `mem_file_path` is "
                                     "required.",
                                     FCSIM_MSG_SERDE);
                goto out;
        }
        if (!fcsim_call_preboot(c))
                goto out;
        if (c->vm->boot_specific) {
                r = fcsim_call_fault(c, "Loading a microVM snapshot not allowed after configuring "
                                        "boot-specific resources.");
                goto out;
        }
        if (backend && strcmp(fcsim_json_str(backend, "backend_type", ""), "File") != 0) {
                r = fcsim_call_fault(c, "Load snapshot error: the simulator supports only the File "
                                        "memory backend.");
                goto out;
        }
        const char *mem = has_file ? fcsim_json_str(j, "mem_file_path", "")
                                   : fcsim_json_str(backend, "backend_path", "");
        struct fcsim_config cfg;
        struct ha_err err = { "" };
        fcsim_config_init(&cfg);
        r = fcsim_snapshot_read(fcsim_json_str(j, "snapshot_path", ""), mem, &cfg, &err);
        if (r == 0)
                r = restore(c->vm, &cfg, j, &err);
        if (r < 0) {
                /* Firecracker cannot continue after a failed restore. */
                fcsim_config_done(&cfg);
                c->vm->exit_requested = true;
                c->vm->exit_code = 1;
                r = fcsim_call_fault(
                        c, "Load snapshot error: Failed to build microVM from snapshot: %s",
                        err.msg);
                goto out;
        }
        r = fcsim_call_ok(c);
out:
        cJSON_Delete(j);
        return r;
}
