/*
 * config.c - see config.h. Error messages are Firecracker's where the
 * simulator hits the same condition (VmConfigError, BootSourceConfigError,
 * DriveError, NetworkInterfaceError), so the driver's error mapping sees
 * the real words.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "schema.h"

#define MAX_VCPUS 32

void fcsim_config_init(struct fcsim_config *c)
{
        memset(c, 0, sizeof *c);
        c->machine.vcpu_count = 1;
        c->machine.mem_size_mib = 128;
        snprintf(c->machine.huge_pages, sizeof c->machine.huge_pages, "None");
        for (unsigned i = 0; i < FCSIM_MAX_NETS; i++)
                c->nets[i].tap_fd = -1;
}

void fcsim_config_done(struct fcsim_config *c)
{
        for (unsigned i = 0; i < c->n_nets; i++) {
                if (c->nets[i].tap_fd >= 0)
                        close(c->nets[i].tap_fd);
                c->nets[i].tap_fd = -1;
        }
}

bool fcsim_id_is_valid(const char *id)
{
        size_t n = strlen(id);
        if (n == 0 || n > FCSIM_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!isalnum((unsigned char)id[i]) && id[i] != '_')
                        return false;
        }
        return true;
}

/* Copies |src| into a fixed field, refusing (not truncating) what does not fit. */
static int copy_field(char *dst, size_t cap, const char *src, const char *what, struct ha_err *err)
{
        size_t n = strlen(src);
        if (n >= cap)
                return ha_err_set(err, -ENAMETOOLONG, "%s is longer than %zu bytes", what, cap - 1);
        memcpy(dst, src, n + 1);
        return 0;
}

int fcsim_config_parse_machine(struct fcsim_machine *m, const cJSON *j, bool patch,
                               struct ha_err *err)
{
        struct fcsim_machine nm = *m;
        if (!patch) {
                memset(&nm, 0, sizeof nm);
                snprintf(nm.huge_pages, sizeof nm.huge_pages, "None");
        }
        nm.vcpu_count = (unsigned)fcsim_json_uint(j, "vcpu_count", nm.vcpu_count);
        nm.mem_size_mib = (unsigned)fcsim_json_uint(j, "mem_size_mib", nm.mem_size_mib);
        if (fcsim_json_uint(j, "mem_size_mib", 0) > UINT32_MAX)
                return ha_err_set(err, -EINVAL, "The memory size (MiB) is invalid.");
        nm.smt = fcsim_json_bool(j, "smt", nm.smt);
        nm.track_dirty_pages = fcsim_json_bool(j, "track_dirty_pages", nm.track_dirty_pages);
        const char *hp = fcsim_json_str(j, "huge_pages", NULL);
        if (hp)
                snprintf(nm.huge_pages, sizeof nm.huge_pages, "%s", hp);
        const char *tmpl = fcsim_json_str(j, "cpu_template", NULL);
        if (tmpl)
                snprintf(nm.cpu_template, sizeof nm.cpu_template, "%s", tmpl);

        if (nm.vcpu_count == 0 || nm.vcpu_count > MAX_VCPUS ||
            (nm.smt && nm.vcpu_count > 1 && nm.vcpu_count % 2))
                return ha_err_set(err, -EINVAL,
                                  "The vCPU number is invalid! The vCPU number can only be 1 or an "
                                  "even number when SMT is enabled.");
        if (nm.mem_size_mib == 0)
                return ha_err_set(err, -EINVAL, "The memory size (MiB) is invalid.");
        if (strcmp(nm.huge_pages, "2M") == 0 && nm.mem_size_mib % 2)
                return ha_err_set(err, -EINVAL,
                                  "The memory size (MiB) is invalid: it must be a multiple of the "
                                  "huge page size (2 MiB).");
        *m = nm;
        return 0;
}

static int check_open(const char *path, int flags)
{
        int fd = open(path, flags | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        close(fd);
        return 0;
}

int fcsim_config_parse_boot(struct fcsim_boot *b, const cJSON *j, struct ha_err *err)
{
        struct fcsim_boot nb;
        memset(&nb, 0, sizeof nb);
        int r = copy_field(nb.kernel_image_path, sizeof nb.kernel_image_path,
                           fcsim_json_str(j, "kernel_image_path", ""), "kernel_image_path", err);
        if (r < 0)
                return r;
        r = copy_field(nb.initrd_path, sizeof nb.initrd_path, fcsim_json_str(j, "initrd_path", ""),
                       "initrd_path", err);
        if (r < 0)
                return r;
        const char *args = fcsim_json_str(j, "boot_args", NULL);
        if (args) {
                if (strlen(args) > FCSIM_BOOT_ARGS_MAX)
                        return ha_err_set(err, -EINVAL,
                                          "The kernel command line is invalid: Command line string "
                                          "is too long (more than %d bytes).",
                                          FCSIM_BOOT_ARGS_MAX);
                memcpy(nb.boot_args, args, strlen(args) + 1);
                nb.has_boot_args = true;
        }
        r = check_open(nb.kernel_image_path, O_RDONLY);
        if (r < 0)
                return ha_err_set(err, r, "The kernel file cannot be opened: %s (os error %d)",
                                  strerror(-r), -r);
        if (nb.initrd_path[0]) {
                r = check_open(nb.initrd_path, O_RDONLY);
                if (r < 0)
                        return ha_err_set(err, r,
                                          "The initrd file cannot be opened due to invalid path or "
                                          "invalid permissions. %s (os error %d)",
                                          strerror(-r), -r);
        }
        nb.set = true;
        *b = nb;
        return 0;
}

int fcsim_config_parse_drive(struct fcsim_drive *d, const cJSON *j, struct ha_err *err)
{
        struct fcsim_drive nd;
        memset(&nd, 0, sizeof nd);
        int r = copy_field(nd.id, sizeof nd.id, fcsim_json_str(j, "drive_id", ""), "drive_id", err);
        if (r < 0)
                return r;
        if (fcsim_json_has(j, "socket"))
                return ha_err_set(err, -ENOTSUP,
                                  "Unable to create the vhost-user-block device: vhost-user drives "
                                  "are not supported by the simulator.");
        if (!fcsim_json_has(j, "path_on_host") || !fcsim_json_has(j, "is_read_only"))
                return ha_err_set(err, -EINVAL,
                                  "Unable to create the virtio block device: path_on_host and "
                                  "is_read_only are required for a virtio block device.");
        r = copy_field(nd.path_on_host, sizeof nd.path_on_host,
                       fcsim_json_str(j, "path_on_host", ""), "path_on_host", err);
        if (r < 0)
                return r;
        nd.is_root_device = fcsim_json_bool(j, "is_root_device", false);
        nd.is_read_only = fcsim_json_bool(j, "is_read_only", false);
        r = copy_field(nd.partuuid, sizeof nd.partuuid, fcsim_json_str(j, "partuuid", ""),
                       "partuuid", err);
        if (r < 0)
                return r;
        snprintf(nd.cache_type, sizeof nd.cache_type, "%s",
                 fcsim_json_str(j, "cache_type", "Unsafe"));
        snprintf(nd.io_engine, sizeof nd.io_engine, "%s", fcsim_json_str(j, "io_engine", "Sync"));
        r = check_open(nd.path_on_host, nd.is_read_only ? O_RDONLY : O_RDWR);
        if (r < 0)
                return ha_err_set(err, r,
                                  "Unable to create the virtio block device: Virtio backend error: "
                                  "Error manipulating the backing file: %s (os error %d) %s",
                                  strerror(-r), -r, nd.path_on_host);
        *d = nd;
        return 0;
}

static unsigned hexval(char c)
{
        if (c >= '0' && c <= '9')
                return (unsigned)(c - '0');
        return (unsigned)(tolower((unsigned char)c) - 'a' + 10);
}

int fcsim_mac_parse(const char *s, uint8_t mac[6])
{
        if (strlen(s) != 17)
                return -EINVAL;
        for (size_t i = 0; i < 6; i++) {
                const char *p = s + 3 * i;
                if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) ||
                    (i < 5 && p[2] != ':'))
                        return -EINVAL;
                mac[i] = (uint8_t)(hexval(p[0]) << 4 | hexval(p[1]));
        }
        return 0;
}

int fcsim_config_parse_net(struct fcsim_net *n, const cJSON *j, struct ha_err *err)
{
        struct fcsim_net nn;
        memset(&nn, 0, sizeof nn);
        nn.tap_fd = -1;
        int r = copy_field(nn.id, sizeof nn.id, fcsim_json_str(j, "iface_id", ""), "iface_id", err);
        if (r < 0)
                return r;
        const char *dev = fcsim_json_str(j, "host_dev_name", "");
        if (dev[0] == '\0' || strlen(dev) >= sizeof nn.host_dev_name)
                return ha_err_set(err, -EINVAL,
                                  "Could not create the network device: Open tap device failed: "
                                  "Invalid TAP name: %s",
                                  dev);
        memcpy(nn.host_dev_name, dev, strlen(dev) + 1);
        const char *mac = fcsim_json_str(j, "guest_mac", NULL);
        if (mac) {
                if (fcsim_mac_parse(mac, nn.mac) < 0)
                        return ha_err_set(err, -EINVAL, "invalid MAC address: %.32s", mac);
                nn.has_mac = true;
        }
        if (fcsim_json_has(j, "mtu")) {
                uint64_t mtu = fcsim_json_uint(j, "mtu", 0);
                if (mtu < 68 || mtu > 65535)
                        return ha_err_set(err, -EINVAL,
                                          "Invalid MTU %llu: it must be between 68 "
                                          "and 65535.",
                                          (unsigned long long)mtu);
                nn.mtu = (unsigned)mtu;
        }
        *n = nn;
        return 0;
}

int fcsim_config_parse_vsock(struct fcsim_vsock_cfg *v, const cJSON *j, struct ha_err *err)
{
        struct fcsim_vsock_cfg nv;
        memset(&nv, 0, sizeof nv);
        uint64_t cid = fcsim_json_uint(j, "guest_cid", 0);
        if (cid < 3)
                return ha_err_set(err, -EINVAL,
                                  "Cannot create backend for vsock device: invalid guest CID %llu "
                                  "(the minimum is 3)",
                                  (unsigned long long)cid);
        nv.guest_cid = (uint32_t)cid;
        const char *p = fcsim_json_str(j, "uds_path", "");
        if (p[0] == '\0' || strlen(p) > FCSIM_UDS_PATH_MAX)
                return ha_err_set(err, -ENAMETOOLONG,
                                  "Cannot create backend for vsock device: uds_path must be 1 to "
                                  "%zu bytes",
                                  (size_t)FCSIM_UDS_PATH_MAX);
        memcpy(nv.uds_path, p, strlen(p) + 1);
        nv.set = true;
        *v = nv;
        return 0;
}

cJSON *fcsim_machine_to_json(const struct fcsim_machine *m)
{
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return NULL;
        cJSON_AddNumberToObject(o, "vcpu_count", m->vcpu_count);
        cJSON_AddNumberToObject(o, "mem_size_mib", m->mem_size_mib);
        cJSON_AddBoolToObject(o, "smt", m->smt);
        cJSON_AddBoolToObject(o, "track_dirty_pages", m->track_dirty_pages);
        cJSON_AddStringToObject(o, "huge_pages", m->huge_pages);
        if (m->cpu_template[0])
                cJSON_AddStringToObject(o, "cpu_template", m->cpu_template);
        return o;
}

static char *mac_str(const uint8_t *mac, char out[18])
{
        snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                 mac[5]);
        return out;
}

cJSON *fcsim_config_to_json(const struct fcsim_config *c)
{
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return NULL;
        cJSON_AddItemToObject(o, "machine-config", fcsim_machine_to_json(&c->machine));
        if (c->boot.set) {
                cJSON *b = cJSON_AddObjectToObject(o, "boot-source");
                cJSON_AddStringToObject(b, "kernel_image_path", c->boot.kernel_image_path);
                if (c->boot.initrd_path[0])
                        cJSON_AddStringToObject(b, "initrd_path", c->boot.initrd_path);
                if (c->boot.has_boot_args)
                        cJSON_AddStringToObject(b, "boot_args", c->boot.boot_args);
        }
        cJSON *drives = cJSON_AddArrayToObject(o, "drives");
        for (unsigned i = 0; i < c->n_drives; i++) {
                const struct fcsim_drive *d = &c->drives[i];
                cJSON *x = cJSON_CreateObject();
                cJSON_AddItemToArray(drives, x);
                cJSON_AddStringToObject(x, "drive_id", d->id);
                cJSON_AddStringToObject(x, "path_on_host", d->path_on_host);
                cJSON_AddBoolToObject(x, "is_root_device", d->is_root_device);
                cJSON_AddBoolToObject(x, "is_read_only", d->is_read_only);
                if (d->partuuid[0])
                        cJSON_AddStringToObject(x, "partuuid", d->partuuid);
                cJSON_AddStringToObject(x, "cache_type", d->cache_type);
                cJSON_AddStringToObject(x, "io_engine", d->io_engine);
        }
        cJSON *nets = cJSON_AddArrayToObject(o, "network-interfaces");
        for (unsigned i = 0; i < c->n_nets; i++) {
                const struct fcsim_net *n = &c->nets[i];
                char mac[18];
                cJSON *x = cJSON_CreateObject();
                cJSON_AddItemToArray(nets, x);
                cJSON_AddStringToObject(x, "iface_id", n->id);
                cJSON_AddStringToObject(x, "host_dev_name", n->host_dev_name);
                if (n->has_mac)
                        cJSON_AddStringToObject(x, "guest_mac", mac_str(n->mac, mac));
                if (n->mtu)
                        cJSON_AddNumberToObject(x, "mtu", n->mtu);
        }
        if (c->vsock.set) {
                cJSON *v = cJSON_AddObjectToObject(o, "vsock");
                cJSON_AddNumberToObject(v, "guest_cid", c->vsock.guest_cid);
                cJSON_AddStringToObject(v, "uds_path", c->vsock.uds_path);
        }
        return o;
}

int fcsim_config_from_json(struct fcsim_config *c, const cJSON *j, struct ha_err *err)
{
        int r;
        fcsim_config_init(c);
        if (!cJSON_IsObject(j))
                return ha_err_set(err, -EINVAL, "configuration is not an object");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "machine-config");
        if (m) {
                r = fcsim_schema_check(m, &fcsim_schema_machine_config, err);
                if (r == 0)
                        r = fcsim_config_parse_machine(&c->machine, m, false, err);
                if (r < 0)
                        return r;
        }
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "boot-source");
        if (b) {
                r = fcsim_schema_check(b, &fcsim_schema_boot_source, err);
                if (r == 0)
                        r = fcsim_config_parse_boot(&c->boot, b, err);
                if (r < 0)
                        return r;
        }
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(j, "drives"))
        {
                if (c->n_drives >= FCSIM_MAX_DRIVES)
                        return ha_err_set(err, -E2BIG, "too many drives");
                r = fcsim_schema_check(x, &fcsim_schema_drive, err);
                if (r == 0)
                        r = fcsim_config_parse_drive(&c->drives[c->n_drives], x, err);
                if (r < 0)
                        return r;
                c->n_drives++;
        }
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(j, "network-interfaces"))
        {
                if (c->n_nets >= FCSIM_MAX_NETS)
                        return ha_err_set(err, -E2BIG, "too many network interfaces");
                r = fcsim_schema_check(x, &fcsim_schema_network_interface, err);
                if (r == 0)
                        r = fcsim_config_parse_net(&c->nets[c->n_nets], x, err);
                if (r < 0)
                        return r;
                c->n_nets++;
        }
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "vsock");
        if (v) {
                r = fcsim_schema_check(v, &fcsim_schema_vsock, err);
                if (r == 0)
                        r = fcsim_config_parse_vsock(&c->vsock, v, err);
                if (r < 0)
                        return r;
        }
        return 0;
}
