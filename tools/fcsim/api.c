/*
 * api.c - see api.h. The order of checks follows Firecracker's: the
 * request is parsed first (path, ID syntax, JSON shape, body/path ID
 * match) and only then checked against the VM's state, so a malformed
 * request gets the parse error whatever the state.
 */
#include "api.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "core/log.h"
#include "core/time.h"
#include "schema.h"
#include "snapshot.h"

static const char MSG_PRE_BOOT[] = "The requested operation is not supported before starting the microVM.";
static const char MSG_POST_BOOT[] = "The requested operation is not supported after starting the microVM.";
static const char MSG_SERDE[] = "An error occurred when deserializing the json body of a request: ";

struct call {
        struct fcsim_vm *vm;
        const struct fcsim_http_req *req;
        int status;
        struct ha_buf *body;
        char fault[HA_ERR_MSG_MAX + 128];
};

void fcsim_vm_init(struct fcsim_vm *vm, const char *id)
{
        memset(vm, 0, sizeof *vm);
        snprintf(vm->id, sizeof vm->id, "%s", id);
        vm->state = FCSIM_NOT_STARTED;
        fcsim_config_init(&vm->cfg);
        fcsim_vmlog_init(&vm->vmlog, id);
        vm->guest.pidfd = -1;
}

static void stop_guest(struct fcsim_vm *vm)
{
        /* Connections and frames first: their threads touch the guest. */
        fcsim_vsock_stop(vm->vsock);
        fcsim_relay_stop(vm->relay);
        vm->relay = NULL;
        if (vm->guest_up)
                fcsim_guest_kill(&vm->guest);
        vm->guest_up = false;
}

void fcsim_vm_done(struct fcsim_vm *vm)
{
        stop_guest(vm);
        fcsim_vsock_close(vm->vsock);
        vm->vsock = NULL;
        fcsim_config_done(&vm->cfg);
        fcsim_vmlog_done(&vm->vmlog);
}

int fcsim_vm_guest_pidfd(const struct fcsim_vm *vm)
{
        return vm->guest_up ? vm->guest.pidfd : -1;
}

void fcsim_vm_guest_exited(struct fcsim_vm *vm)
{
        if (!vm->guest_up)
                return;
        fcsim_vsock_stop(vm->vsock);
        fcsim_relay_stop(vm->relay);
        vm->relay = NULL;
        int status = fcsim_guest_reap(&vm->guest);
        vm->guest_up = false;
        ha_log_info("fcsim.guest.exited", "id=%s status=0x%x", vm->id, (unsigned)status);
        fcsim_vmlog_write(&vm->vmlog, FCSIM_VL_INFO, "Vmm is stopping.");
}

void fcsim_vm_flush_metrics(struct fcsim_vm *vm)
{
        struct fcsim_relay_stats rs = { 0 };
        if (vm->relay)
                fcsim_relay_get_stats(vm->relay, &rs);
        char line[512];
        snprintf(line, sizeof line,
                 "{\"utc_timestamp_ms\":%lld,\"api_server\":{\"requests\":%llu,\"errors\":%llu},"
                 "\"net\":{\"rx_frames\":%llu,\"tx_frames\":%llu,\"dropped_frames\":%llu},"
                 "\"logger\":{\"missed_log_count\":%llu,\"missed_metrics_count\":%llu}}",
                 (long long)ha_wall_ms(), (unsigned long long)vm->api_requests,
                 (unsigned long long)vm->api_errors, (unsigned long long)rs.to_guest_frames,
                 (unsigned long long)rs.to_host_frames, (unsigned long long)rs.dropped_frames,
                 (unsigned long long)vm->vmlog.missed_log_count,
                 (unsigned long long)vm->vmlog.missed_metrics_count);
        fcsim_vmlog_metrics(&vm->vmlog, line);
}

/* ---- responses ---- */

static __attribute__((format(printf, 2, 3))) int fault(struct call *c, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->fault, sizeof c->fault, fmt, ap);
        va_end(ap);
        c->status = 400;
        ha_buf_reset(c->body);
        return fcsim_http_fault_body(c->body, c->fault);
}

static int reply_json(struct call *c, cJSON *o)
{
        char *text = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!text)
                return -ENOMEM;
        c->status = 200;
        int r = ha_buf_append(c->body, text, strlen(text));
        cJSON_free(text);
        return r;
}

static int reply_ok(struct call *c)
{
        c->status = 204;
        return 0;
}

/* ---- request helpers ---- */

static int parse_body(struct call *c, const struct fcsim_schema *s, cJSON **ret_json)
{
        struct ha_err err = { "" };
        cJSON *j = NULL;
        int r = fcsim_json_parse(c->req->body, c->req->body_len, &j, &err);
        if (r == 0) {
                r = fcsim_schema_check(j, s, &err);
                if (r < 0)
                        cJSON_Delete(j);
        }
        if (r < 0) {
                fault(c, "%s%s.", MSG_SERDE, err.msg);
                return -EINVAL;
        }
        *ret_json = j;
        return 0;
}

/* Validates a path ID the way Firecracker's checked_id does. */
static int check_path_id(struct call *c, const char *id)
{
        if (!id || !id[0]) {
                fault(c, "The ID cannot be empty.");
                return -EINVAL;
        }
        if (!fcsim_id_is_valid(id)) {
                fault(c, "API Resource IDs can only contain alphanumeric characters and underscores.");
                return -EINVAL;
        }
        return 0;
}

static int body_id_matches(struct call *c, const cJSON *j, const char *field, const char *path_id)
{
        if (strcmp(fcsim_json_str(j, field, ""), path_id) != 0) {
                fault(c, "The id from the path does not match the id from the body!");
                return -EINVAL;
        }
        return 0;
}

static bool require_preboot(struct call *c)
{
        if (c->vm->state == FCSIM_NOT_STARTED)
                return true;
        fault(c, "%s", MSG_POST_BOOT);
        return false;
}

static bool require_postboot(struct call *c)
{
        if (c->vm->state != FCSIM_NOT_STARTED)
                return true;
        fault(c, "%s", MSG_PRE_BOOT);
        return false;
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
                vm->guest.n_taps = 0;   /* the relay owns (or closed) them */
                if (r < 0)
                        goto out_kill;
        }
        vm->state = FCSIM_RUNNING;
        if (paused) {
                r = set_paused(vm, true, err);
                if (r < 0)
                        goto out_kill;
        }
        ha_log_info("fcsim.guest.booted", "id=%s pid=%d boot_us=%llu image=%s vsock_dir=%s nets=%u",
                    vm->id, (int)vm->guest.pid, (unsigned long long)vm->guest.boot_us, root->path_on_host,
                    vm->guest.vsock_guest_dir[0] ? vm->guest.vsock_guest_dir : "-", vm->cfg.n_nets);
        fcsim_vmlog_write(&vm->vmlog, FCSIM_VL_INFO, "Guest booted: init pid %d, %llu us",
                          (int)vm->guest.pid, (unsigned long long)vm->guest.boot_us);
        return 0;
out_kill:
        stop_guest(vm);
        vm->state = FCSIM_NOT_STARTED;
        return r;
}

/* ---- handlers ---- */

static int get_instance_info(struct call *c)
{
        static const char *const names[] = { "Not started", "Running", "Paused" };
        cJSON *o = cJSON_CreateObject();
        if (o) {
                cJSON_AddStringToObject(o, "id", c->vm->id);
                cJSON_AddStringToObject(o, "state", names[c->vm->state]);
                cJSON_AddStringToObject(o, "vmm_version", FCSIM_FC_VERSION);
                cJSON_AddStringToObject(o, "app_name", "Firecracker");
        }
        return reply_json(c, o);
}

static int get_version(struct call *c)
{
        cJSON *o = cJSON_CreateObject();
        if (o)
                cJSON_AddStringToObject(o, "firecracker_version", FCSIM_FC_VERSION);
        return reply_json(c, o);
}

static int put_logger(struct call *c)
{
        cJSON *j;
        if (parse_body(c, &fcsim_schema_logger, &j) < 0)
                return 0;
        int r = 0;
        if (!require_preboot(c))
                goto out;
        enum fcsim_vmlog_level level = FCSIM_VL_INFO;
        fcsim_vmlog_parse_level(fcsim_json_str(j, "level", "Info"), &level);
        struct ha_err err = { "" };
        if (fcsim_vmlog_set_logger(&c->vm->vmlog, fcsim_json_str(j, "log_path", NULL), level,
                                   fcsim_json_bool(j, "show_level", false),
                                   fcsim_json_bool(j, "show_log_origin", false), &err) < 0) {
                r = fault(c, "Failed to initialize logger: %s", err.msg);
                goto out;
        }
        r = reply_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

static int put_metrics(struct call *c)
{
        cJSON *j;
        if (parse_body(c, &fcsim_schema_metrics, &j) < 0)
                return 0;
        int r = 0;
        if (!require_preboot(c))
                goto out;
        if (c->vm->metrics_set) {
                r = fault(c, "Cannot initialize the metrics system due to: Reinitialization of "
                             "metrics not allowed.");
                goto out;
        }
        struct ha_err err = { "" };
        if (fcsim_vmlog_set_metrics(&c->vm->vmlog, fcsim_json_str(j, "metrics_path", ""), &err) < 0) {
                r = fault(c, "Cannot initialize the metrics system due to: %s", err.msg);
                goto out;
        }
        c->vm->metrics_set = true;
        r = reply_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

static int machine_config(struct call *c, bool patch)
{
        cJSON *j;
        if (parse_body(c, patch ? &fcsim_schema_machine_config_patch : &fcsim_schema_machine_config,
                       &j) < 0)
                return 0;
        int r = 0;
        if (patch && !j->child) {
                r = fault(c, "Empty PATCH request.");
                goto out;
        }
        if (!require_preboot(c))
                goto out;
        struct ha_err err = { "" };
        if (fcsim_config_parse_machine(&c->vm->cfg.machine, j, patch, &err) < 0) {
                r = fault(c, "%s", err.msg);
                goto out;
        }
        c->vm->boot_specific = true;
        r = reply_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

static int put_boot_source(struct call *c)
{
        cJSON *j;
        if (parse_body(c, &fcsim_schema_boot_source, &j) < 0)
                return 0;
        int r = 0;
        if (!require_preboot(c))
                goto out;
        struct ha_err err = { "" };
        if (fcsim_config_parse_boot(&c->vm->cfg.boot, j, &err) < 0) {
                r = fault(c, "%s", err.msg);
                goto out;
        }
        c->vm->boot_specific = true;
        r = reply_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

static int put_drive(struct call *c, const char *id)
{
        cJSON *j;
        if (check_path_id(c, id) < 0 || parse_body(c, &fcsim_schema_drive, &j) < 0)
                return 0;
        int r = 0;
        if (body_id_matches(c, j, "drive_id", id) < 0 || !require_preboot(c))
                goto out;
        struct fcsim_config *cfg = &c->vm->cfg;
        struct fcsim_drive d;
        struct ha_err err = { "" };
        if (fcsim_config_parse_drive(&d, j, &err) < 0) {
                r = fault(c, "%s", err.msg);
                goto out;
        }
        unsigned slot = cfg->n_drives;
        for (unsigned i = 0; i < cfg->n_drives; i++) {
                if (strcmp(cfg->drives[i].id, id) == 0)
                        slot = i;
                else if (d.is_root_device && cfg->drives[i].is_root_device) {
                        r = fault(c, "A root block device already exists!");
                        goto out;
                }
        }
        if (slot == FCSIM_MAX_DRIVES) {
                r = fault(c, "Unable to add the block device: the simulator allows at most %d drives.",
                          FCSIM_MAX_DRIVES);
                goto out;
        }
        cfg->drives[slot] = d;
        if (slot == cfg->n_drives)
                cfg->n_drives++;
        c->vm->boot_specific = true;
        r = reply_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

static int put_net(struct call *c, const char *id)
{
        cJSON *j;
        if (check_path_id(c, id) < 0 || parse_body(c, &fcsim_schema_network_interface, &j) < 0)
                return 0;
        int r = 0;
        if (body_id_matches(c, j, "iface_id", id) < 0 || !require_preboot(c))
                goto out;
        struct fcsim_config *cfg = &c->vm->cfg;
        struct fcsim_net n;
        struct ha_err err = { "" };
        if (fcsim_config_parse_net(&n, j, &err) < 0) {
                r = fault(c, "%s", err.msg);
                goto out;
        }
        unsigned slot = cfg->n_nets;
        for (unsigned i = 0; i < cfg->n_nets; i++) {
                if (strcmp(cfg->nets[i].id, id) == 0)
                        slot = i;
                else if (n.has_mac && cfg->nets[i].has_mac && memcmp(n.mac, cfg->nets[i].mac, 6) == 0) {
                        r = fault(c, "The MAC address is already in use: %s",
                                  fcsim_json_str(j, "guest_mac", ""));
                        goto out;
                }
        }
        if (slot == FCSIM_MAX_NETS) {
                r = fault(c, "Could not create the network device: the simulator allows at most %d "
                             "interfaces.", FCSIM_MAX_NETS);
                goto out;
        }
        /* Re-configuring an interface releases its TAP first, so the same
         * TAP can be opened again. */
        if (slot < cfg->n_nets && cfg->nets[slot].tap_fd >= 0) {
                close(cfg->nets[slot].tap_fd);
                cfg->nets[slot].tap_fd = -1;
        }
        if (fcsim_tap_open(n.host_dev_name, &n.tap_fd, &err) < 0) {
                if (slot < cfg->n_nets) {
                        /* Firecracker drops the old device on a failed update too. */
                        memmove(&cfg->nets[slot], &cfg->nets[slot + 1],
                                (cfg->n_nets - slot - 1) * sizeof cfg->nets[0]);
                        cfg->n_nets--;
                        cfg->nets[cfg->n_nets].tap_fd = -1;
                }
                r = fault(c, "Could not create the network device: %s", err.msg);
                goto out;
        }
        cfg->nets[slot] = n;
        if (slot == cfg->n_nets)
                cfg->n_nets++;
        c->vm->boot_specific = true;
        r = reply_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

static int put_vsock(struct call *c)
{
        cJSON *j;
        if (parse_body(c, &fcsim_schema_vsock, &j) < 0)
                return 0;
        int r = 0;
        if (!require_preboot(c))
                goto out;
        struct fcsim_vsock_cfg v;
        struct ha_err err = { "" };
        if (fcsim_config_parse_vsock(&v, j, &err) < 0) {
                r = fault(c, "%s", err.msg);
                goto out;
        }
        struct fcsim_vsock *dev = NULL;
        if (fcsim_vsock_open(v.uds_path, &dev, &err) < 0) {
                r = fault(c, "Cannot create backend for vsock device: %s", err.msg);
                goto out;
        }
        fcsim_vsock_close(c->vm->vsock);
        c->vm->vsock = dev;
        c->vm->cfg.vsock = v;
        c->vm->boot_specific = true;
        r = reply_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

static int instance_start(struct call *c)
{
        struct fcsim_vm *vm = c->vm;
        if (!require_preboot(c))
                return 0;
        if (!vm->cfg.boot.set)
                return fault(c, "Cannot start microvm without kernel configuration.");
        if (!root_drive(&vm->cfg))
                return fault(c, "Cannot start microvm without a root block device: the simulator "
                                "boots the root drive's /sbin/init as the guest.");
        struct ha_err err = { "" };
        if (boot_guest(vm, false, &err) < 0)
                return fault(c, "Failed to start the microVM: %s", err.msg);
        return reply_ok(c);
}

static int put_actions(struct call *c)
{
        cJSON *j;
        if (parse_body(c, &fcsim_schema_action, &j) < 0)
                return 0;
        const char *action = fcsim_json_str(j, "action_type", "");
        int r = 0;
        if (strcmp(action, "InstanceStart") == 0) {
                r = instance_start(c);
        } else if (strcmp(action, "FlushMetrics") == 0) {
                if (require_postboot(c)) {
                        fcsim_vm_flush_metrics(c->vm);
                        r = reply_ok(c);
                }
        } else if (require_postboot(c)) {
                /* SendCtrlAltDel: the guest's init gets SIGTERM, its cue to
                 * shut down; fcsim exits once init is gone. */
                int sr = fcsim_guest_signal(&c->vm->guest, SIGTERM);
                r = sr < 0 ? fault(c, "Failed to send CTRL+ALT+DEL: %s", strerror(-sr)) : reply_ok(c);
        }
        cJSON_Delete(j);
        return r;
}

static int patch_vm(struct call *c)
{
        cJSON *j;
        if (parse_body(c, &fcsim_schema_vm, &j) < 0)
                return 0;
        bool pause = strcmp(fcsim_json_str(j, "state", ""), "Paused") == 0;
        cJSON_Delete(j);
        if (!require_postboot(c))
                return 0;
        if ((c->vm->state == FCSIM_PAUSED) == pause)
                return reply_ok(c);     /* idempotent, as Firecracker */
        struct ha_err err = { "" };
        if (set_paused(c->vm, pause, &err) < 0)
                return fault(c, "Failed to %s the microVM: %s", pause ? "pause" : "resume", err.msg);
        fcsim_vmlog_write(&c->vm->vmlog, FCSIM_VL_INFO, "VM %s.", pause ? "paused" : "resumed");
        return reply_ok(c);
}

static int snapshot_create(struct call *c)
{
        cJSON *j;
        if (parse_body(c, &fcsim_schema_snapshot_create, &j) < 0)
                return 0;
        int r = 0;
        if (!require_postboot(c))
                goto out;
        if (c->vm->state != FCSIM_PAUSED) {
                r = fault(c, "Cannot create snapshot: the microVM is not paused.");
                goto out;
        }
        if (strcmp(fcsim_json_str(j, "snapshot_type", "Full"), "Diff") == 0 &&
            !c->vm->cfg.machine.track_dirty_pages) {
                r = fault(c, "Diff snapshots are not allowed on uVMs with dirty page tracking disabled.");
                goto out;
        }
        struct ha_err err = { "" };
        if (fcsim_snapshot_write(&c->vm->cfg, fcsim_json_str(j, "snapshot_path", ""),
                                 fcsim_json_str(j, "mem_file_path", ""), &err) < 0) {
                r = fault(c, "Cannot create snapshot: %s", err.msg);
                goto out;
        }
        /* Firecracker resets the vsock device when snapshotting. */
        if (c->vm->vsock)
                fcsim_vsock_reset(c->vm->vsock);
        r = reply_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

/* Applies a loaded configuration: overrides, TAPs, vsock, then boot. */
static int restore(struct fcsim_vm *vm, struct fcsim_config *cfg, const cJSON *j, struct ha_err *err)
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
                        return ha_err_set(err, -ENOENT, "Invalid network override: no interface %s "
                                          "in the snapshot", iface);
                if (dev[0] == '\0' || strlen(dev) >= IFNAMSIZ)
                        return ha_err_set(err, -EINVAL, "Invalid TAP name: %s", dev);
                memcpy(cfg->nets[i].host_dev_name, dev, strlen(dev) + 1);
        }
        const cJSON *vo = cJSON_GetObjectItemCaseSensitive(j, "vsock_override");
        if (vo) {
                const char *p = fcsim_json_str(vo, "uds_path", "");
                if (!cfg->vsock.set)
                        return ha_err_set(err, -ENOENT, "vsock_override given but the snapshot has "
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
        vm->cfg = *cfg;
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

static int snapshot_load(struct call *c)
{
        cJSON *j;
        if (parse_body(c, &fcsim_schema_snapshot_load, &j) < 0)
                return 0;
        int r = 0;
        bool has_file = fcsim_json_has(j, "mem_file_path");
        const cJSON *backend = cJSON_GetObjectItemCaseSensitive(j, "mem_backend");
        if (has_file && backend) {
                r = fault(c, "%stoo many fields: either `mem_backend` or `mem_file_path` exclusively "
                             "is required.", MSG_SERDE);
                goto out;
        }
        if (!has_file && !backend) {
                r = fault(c, "%smissing field: either `mem_backend` or `mem_file_path` is required.",
                          MSG_SERDE);
                goto out;
        }
        if (!require_preboot(c))
                goto out;
        if (c->vm->boot_specific) {
                r = fault(c, "Loading a microVM snapshot not allowed after configuring boot-specific "
                             "resources.");
                goto out;
        }
        if (backend && strcmp(fcsim_json_str(backend, "backend_type", ""), "File") != 0) {
                r = fault(c, "Load snapshot error: the simulator supports only the File memory "
                             "backend.");
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
                r = fault(c, "Load snapshot error: Failed to build microVM from snapshot: %s", err.msg);
                goto out;
        }
        r = reply_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

static int get_vm_config(struct call *c)
{
        return reply_json(c, fcsim_config_to_json(&c->vm->cfg));
}

/* ---- routing ---- */

static int route(struct call *c, const char *t0, const char *t1, bool extra)
{
        const struct fcsim_http_req *req = c->req;
        bool body = req->body_len > 0;
        switch (req->method) {
        case FCSIM_GET:
                if (body)
                        return fault(c, "GET request cannot have a body.");
                if (!extra && !t1 && strcmp(t0, "") == 0)
                        return get_instance_info(c);
                if (!extra && !t1 && strcmp(t0, "version") == 0)
                        return get_version(c);
                if (!extra && !t1 && strcmp(t0, "machine-config") == 0)
                        return reply_json(c, fcsim_machine_to_json(&c->vm->cfg.machine));
                if (!extra && t1 && strcmp(t0, "vm") == 0 && strcmp(t1, "config") == 0)
                        return get_vm_config(c);
                break;
        case FCSIM_PUT:
                if (!body)
                        return fault(c, "Empty PUT request.");
                if (extra)
                        break;
                if (strcmp(t0, "actions") == 0 && !t1)
                        return put_actions(c);
                if (strcmp(t0, "boot-source") == 0 && !t1)
                        return put_boot_source(c);
                if (strcmp(t0, "drives") == 0)
                        return put_drive(c, t1);
                if (strcmp(t0, "logger") == 0 && !t1)
                        return put_logger(c);
                if (strcmp(t0, "machine-config") == 0 && !t1)
                        return machine_config(c, false);
                if (strcmp(t0, "metrics") == 0 && !t1)
                        return put_metrics(c);
                if (strcmp(t0, "network-interfaces") == 0)
                        return put_net(c, t1);
                if (strcmp(t0, "vsock") == 0 && !t1)
                        return put_vsock(c);
                if (strcmp(t0, "snapshot") == 0 && t1 && strcmp(t1, "create") == 0)
                        return snapshot_create(c);
                if (strcmp(t0, "snapshot") == 0 && t1 && strcmp(t1, "load") == 0)
                        return snapshot_load(c);
                break;
        case FCSIM_PATCH:
                if (!body)
                        return fault(c, "Empty PATCH request.");
                if (extra || t1)
                        break;
                if (strcmp(t0, "machine-config") == 0)
                        return machine_config(c, true);
                if (strcmp(t0, "vm") == 0)
                        return patch_vm(c);
                break;
        default:
                break;
        }
        return fault(c, "Invalid request method and/or path: %s %s.", req->method_name, t0);
}

int fcsim_api_handle(struct fcsim_vm *vm, const struct fcsim_http_req *req, int *ret_status,
                     struct ha_buf *body)
{
        struct call c = { .vm = vm, .req = req, .status = 500, .body = body };
        vm->api_requests++;
        if (req->body_len > 0)
                fcsim_vmlog_write(&vm->vmlog, FCSIM_VL_INFO,
                                  "The API server received a %s request on \"%s\" with body \"%.*s\".",
                                  req->method_name, req->path, (int)req->body_len, req->body);
        else
                fcsim_vmlog_write(&vm->vmlog, FCSIM_VL_INFO,
                                  "The API server received a %s request on \"%s\".", req->method_name,
                                  req->path);

        /* "/drives/rootfs" -> t0 "drives", t1 "rootfs"; a third segment is
         * not a route of the API. */
        char path[FCSIM_HTTP_PATH_MAX];
        const char *p = req->path;
        while (*p == '/')
                p++;
        snprintf(path, sizeof path, "%s", p);
        size_t len = strlen(path);
        if (len > 0 && path[len - 1] == '/')
                path[len - 1] = '\0';
        char *t0 = path, *t1 = NULL;
        bool extra = false;
        char *slash = strchr(path, '/');
        if (slash) {
                *slash = '\0';
                t1 = slash + 1;
                char *s2 = strchr(t1, '/');
                if (s2) {
                        *s2 = '\0';
                        extra = true;
                }
        }
        int r = route(&c, t0, t1, extra);
        if (r < 0)
                return r;
        *ret_status = c.status;
        if (c.status >= 400)
                ha_log_info("fcsim.api", "id=%s method=%s path=%s status=%d fault=\"%s\"", vm->id,
                            req->method_name, req->path, c.status, c.fault);
        else
                ha_log_info("fcsim.api", "id=%s method=%s path=%s status=%d state=%d", vm->id,
                            req->method_name, req->path, c.status, (int)vm->state);
        if (c.status >= 400) {
                vm->api_errors++;
                fcsim_vmlog_write(&vm->vmlog, FCSIM_VL_ERROR,
                                  "Received Error. Status code: 400 Bad Request. Message: %s", c.fault);
        } else {
                fcsim_vmlog_write(&vm->vmlog, FCSIM_VL_INFO,
                                  "The request was executed successfully. Status code: %s.",
                                  c.status == 204 ? "204 No Content" : "200 OK");
        }
        return 0;
}
