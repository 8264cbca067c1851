/*
 * api_config.c - the pre-boot configuration calls: logger, metrics,
 * machine-config, boot-source, drives, network interfaces, vsock. Each
 * parses its body, checks the phase, applies Firecracker's rules and only
 * then changes the configuration, so a failed call changes nothing
 * (except a failed network-interface update, which drops the interface as
 * Firecracker does).
 */
#include "api_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "netcfg.h"
#include "schema.h"

int fcsim_api_put_logger(struct fcsim_call *c)
{
        cJSON *j;
        if (fcsim_call_body(c, &fcsim_schema_logger, &j) < 0)
                return 0;
        int r = 0;
        if (!fcsim_call_preboot(c))
                goto out;
        enum fcsim_vmlog_level level = FCSIM_VL_INFO;
        fcsim_vmlog_parse_level(fcsim_json_str(j, "level", "Info"), &level);
        struct ha_err err = { "" };
        if (fcsim_vmlog_set_logger(&c->vm->vmlog, fcsim_json_str(j, "log_path", NULL), level,
                                   fcsim_json_bool(j, "show_level", false),
                                   fcsim_json_bool(j, "show_log_origin", false), &err) < 0) {
                r = fcsim_call_fault(c, "Failed to initialize logger: %s", err.msg);
                goto out;
        }
        r = fcsim_call_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

int fcsim_api_put_metrics(struct fcsim_call *c)
{
        cJSON *j;
        if (fcsim_call_body(c, &fcsim_schema_metrics, &j) < 0)
                return 0;
        int r = 0;
        if (!fcsim_call_preboot(c))
                goto out;
        if (c->vm->metrics_set) {
                r = fcsim_call_fault(c, "Cannot initialize the metrics system due to: "
                                        "Reinitialization of metrics not allowed.");
                goto out;
        }
        struct ha_err err = { "" };
        if (fcsim_vmlog_set_metrics(&c->vm->vmlog, fcsim_json_str(j, "metrics_path", ""), &err) <
            0) {
                r = fcsim_call_fault(c, "Cannot initialize the metrics system due to: %s", err.msg);
                goto out;
        }
        c->vm->metrics_set = true;
        r = fcsim_call_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

int fcsim_api_machine_config(struct fcsim_call *c, bool patch)
{
        cJSON *j;
        if (fcsim_call_body(
                    c, patch ? &fcsim_schema_machine_config_patch : &fcsim_schema_machine_config,
                    &j) < 0)
                return 0;
        int r = 0;
        if (patch && !j->child) {
                r = fcsim_call_fault(c, "Empty PATCH request.");
                goto out;
        }
        if (!fcsim_call_preboot(c))
                goto out;
        struct ha_err err = { "" };
        if (fcsim_config_parse_machine(&c->vm->cfg.machine, j, patch, &err) < 0) {
                r = fcsim_call_fault(c, "%s", err.msg);
                goto out;
        }
        c->vm->boot_specific = true;
        r = fcsim_call_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

int fcsim_api_put_boot_source(struct fcsim_call *c)
{
        cJSON *j;
        if (fcsim_call_body(c, &fcsim_schema_boot_source, &j) < 0)
                return 0;
        int r = 0;
        if (!fcsim_call_preboot(c))
                goto out;
        struct ha_err err = { "" };
        if (fcsim_config_parse_boot(&c->vm->cfg.boot, j, &err) < 0) {
                r = fcsim_call_fault(c, "%s", err.msg);
                goto out;
        }
        c->vm->boot_specific = true;
        r = fcsim_call_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

int fcsim_api_put_drive(struct fcsim_call *c, const char *id)
{
        cJSON *j;
        if (fcsim_call_path_id(c, id) < 0 || fcsim_call_body(c, &fcsim_schema_drive, &j) < 0)
                return 0;
        int r = 0;
        if (fcsim_call_id_matches(c, j, "drive_id", id) < 0 || !fcsim_call_preboot(c))
                goto out;
        struct fcsim_config *cfg = &c->vm->cfg;
        struct fcsim_drive d;
        struct ha_err err = { "" };
        if (fcsim_config_parse_drive(&d, j, &err) < 0) {
                r = fcsim_call_fault(c, "%s", err.msg);
                goto out;
        }
        unsigned slot = cfg->n_drives;
        for (unsigned i = 0; i < cfg->n_drives; i++) {
                if (strcmp(cfg->drives[i].id, id) == 0)
                        slot = i;
                else if (d.is_root_device && cfg->drives[i].is_root_device) {
                        r = fcsim_call_fault(c, "A root block device already exists!");
                        goto out;
                }
        }
        if (slot == FCSIM_MAX_DRIVES) {
                r = fcsim_call_fault(
                        c,
                        "Unable to add the block device: the simulator allows at most %d drives.",
                        FCSIM_MAX_DRIVES);
                goto out;
        }
        cfg->drives[slot] = d;
        if (slot == cfg->n_drives)
                cfg->n_drives++;
        c->vm->boot_specific = true;
        r = fcsim_call_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

int fcsim_api_put_net(struct fcsim_call *c, const char *id)
{
        cJSON *j;
        if (fcsim_call_path_id(c, id) < 0 ||
            fcsim_call_body(c, &fcsim_schema_network_interface, &j) < 0)
                return 0;
        int r = 0;
        if (fcsim_call_id_matches(c, j, "iface_id", id) < 0 || !fcsim_call_preboot(c))
                goto out;
        struct fcsim_config *cfg = &c->vm->cfg;
        struct fcsim_net n;
        struct ha_err err = { "" };
        if (fcsim_config_parse_net(&n, j, &err) < 0) {
                r = fcsim_call_fault(c, "%s", err.msg);
                goto out;
        }
        unsigned slot = cfg->n_nets;
        for (unsigned i = 0; i < cfg->n_nets; i++) {
                if (strcmp(cfg->nets[i].id, id) == 0)
                        slot = i;
                else if (n.has_mac && cfg->nets[i].has_mac &&
                         memcmp(n.mac, cfg->nets[i].mac, 6) == 0) {
                        r = fcsim_call_fault(c, "The MAC address is already in use: %s",
                                             fcsim_json_str(j, "guest_mac", ""));
                        goto out;
                }
        }
        if (slot == FCSIM_MAX_NETS) {
                r = fcsim_call_fault(
                        c,
                        "Could not create the network device: the simulator allows at most %d "
                        "interfaces.",
                        FCSIM_MAX_NETS);
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
                r = fcsim_call_fault(c, "Could not create the network device: %s", err.msg);
                goto out;
        }
        cfg->nets[slot] = n;
        if (slot == cfg->n_nets)
                cfg->n_nets++;
        c->vm->boot_specific = true;
        r = fcsim_call_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

int fcsim_api_put_vsock(struct fcsim_call *c)
{
        cJSON *j;
        if (fcsim_call_body(c, &fcsim_schema_vsock, &j) < 0)
                return 0;
        int r = 0;
        if (!fcsim_call_preboot(c))
                goto out;
        struct fcsim_vsock_cfg v;
        struct ha_err err = { "" };
        if (fcsim_config_parse_vsock(&v, j, &err) < 0) {
                r = fcsim_call_fault(c, "%s", err.msg);
                goto out;
        }
        struct fcsim_vsock *dev = NULL;
        if (fcsim_vsock_open(v.uds_path, &dev, &err) < 0) {
                r = fcsim_call_fault(c, "Cannot create backend for vsock device: %s", err.msg);
                goto out;
        }
        fcsim_vsock_close(c->vm->vsock);
        c->vm->vsock = dev;
        c->vm->cfg.vsock = v;
        c->vm->boot_specific = true;
        r = fcsim_call_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

/* PATCH /drives/{id} and /network-interfaces/{id}: post-boot updates.
 * Rate limiters are accepted (fcsim enforces none); a drive's backing
 * file cannot change under a mounted root, so only the same path passes. */
int fcsim_api_patch_drive(struct fcsim_call *c, const char *id)
{
        cJSON *j;
        if (fcsim_call_path_id(c, id) < 0 || fcsim_call_body(c, &fcsim_schema_drive_patch, &j) < 0)
                return 0;
        int r = 0;
        if (fcsim_call_id_matches(c, j, "drive_id", id) < 0 || !fcsim_call_postboot(c))
                goto out;
        const struct fcsim_drive *d = NULL;
        for (unsigned i = 0; i < c->vm->cfg.n_drives; i++) {
                if (strcmp(c->vm->cfg.drives[i].id, id) == 0)
                        d = &c->vm->cfg.drives[i];
        }
        if (!d) {
                r = fcsim_call_fault(c, "Invalid block device ID!");
                goto out;
        }
        const char *path = fcsim_json_str(j, "path_on_host", NULL);
        if (path && strcmp(path, d->path_on_host) != 0) {
                r = fcsim_call_fault(c, "Unable to patch the block device: the simulator cannot "
                                        "change the backing file of a running guest's drive.");
                goto out;
        }
        r = fcsim_call_ok(c);
out:
        cJSON_Delete(j);
        return r;
}

int fcsim_api_patch_net(struct fcsim_call *c, const char *id)
{
        cJSON *j;
        if (fcsim_call_path_id(c, id) < 0 ||
            fcsim_call_body(c, &fcsim_schema_network_interface_patch, &j) < 0)
                return 0;
        int r = 0;
        if (fcsim_call_id_matches(c, j, "iface_id", id) < 0 || !fcsim_call_postboot(c))
                goto out;
        bool found = false;
        for (unsigned i = 0; i < c->vm->cfg.n_nets; i++)
                found = found || strcmp(c->vm->cfg.nets[i].id, id) == 0;
        r = found ? fcsim_call_ok(c)
                  : fcsim_call_fault(c, "Invalid network interface ID - not found.");
out:
        cJSON_Delete(j);
        return r;
}
