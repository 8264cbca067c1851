/*
 * schema.c - see schema.h. The tables below are the spec's definitions
 * (Logger, Metrics, MachineConfiguration, BootSource, Drive, RateLimiter,
 * TokenBucket, NetworkInterface, Vsock, InstanceActionInfo, Vm,
 * SnapshotCreateParams, SnapshotLoadParams with MemoryBackend,
 * NetworkOverride, VsockOverride). Integer maxima are the widths of the
 * Rust fields Firecracker deserializes into (u8 vcpu_count, u16 mtu,
 * u32 guest_cid, u64 token buckets); range rules beyond the width (vCPU
 * 1..32, MTU 68..) are semantic checks made in api.c, as in Firecracker.
 */
#include "schema.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define U8   UINT8_MAX
#define U16  UINT16_MAX
#define U32  UINT32_MAX
#define U64  UINT64_MAX

static const char *const e_level[] = { "Error", "Warning", "Info", "Debug", "Trace", "Off", NULL };
static const char *const e_cpu_template[] = {
        "C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None", NULL
};
static const char *const e_huge_pages[] = { "None", "2M", NULL };
static const char *const e_cache_type[] = { "Unsafe", "Writeback", NULL };
static const char *const e_io_engine[] = { "Sync", "Async", NULL };
static const char *const e_action[] = { "FlushMetrics", "InstanceStart", "SendCtrlAltDel", NULL };
static const char *const e_vm_state[] = { "Paused", "Resumed", NULL };
static const char *const e_snapshot_type[] = { "Full", "Diff", NULL };
static const char *const e_backend_type[] = { "File", "Uffd", NULL };

static const struct fcsim_field f_logger[] = {
        { "level", FCSIM_J_STR, false, 0, e_level, NULL },
        { "log_path", FCSIM_J_STR, false, 0, NULL, NULL },
        { "show_level", FCSIM_J_BOOL, false, 0, NULL, NULL },
        { "show_log_origin", FCSIM_J_BOOL, false, 0, NULL, NULL },
        { "module", FCSIM_J_STR, false, 0, NULL, NULL },
};
const struct fcsim_schema fcsim_schema_logger = { "LoggerConfig", f_logger, N(f_logger) };

static const struct fcsim_field f_metrics[] = {
        { "metrics_path", FCSIM_J_STR, true, 0, NULL, NULL },
};
const struct fcsim_schema fcsim_schema_metrics = { "MetricsConfig", f_metrics, N(f_metrics) };

static const struct fcsim_field f_machine[] = {
        { "vcpu_count", FCSIM_J_UINT, true, U8, NULL, NULL },
        { "mem_size_mib", FCSIM_J_UINT, true, U64, NULL, NULL },
        { "smt", FCSIM_J_BOOL, false, 0, NULL, NULL },
        { "cpu_template", FCSIM_J_STR, false, 0, e_cpu_template, NULL },
        { "track_dirty_pages", FCSIM_J_BOOL, false, 0, NULL, NULL },
        { "huge_pages", FCSIM_J_STR, false, 0, e_huge_pages, NULL },
};
const struct fcsim_schema fcsim_schema_machine_config = { "MachineConfig", f_machine,
                                                          N(f_machine) };

static const struct fcsim_field f_machine_patch[] = {
        { "vcpu_count", FCSIM_J_UINT, false, U8, NULL, NULL },
        { "mem_size_mib", FCSIM_J_UINT, false, U64, NULL, NULL },
        { "smt", FCSIM_J_BOOL, false, 0, NULL, NULL },
        { "cpu_template", FCSIM_J_STR, false, 0, e_cpu_template, NULL },
        { "track_dirty_pages", FCSIM_J_BOOL, false, 0, NULL, NULL },
        { "huge_pages", FCSIM_J_STR, false, 0, e_huge_pages, NULL },
};
const struct fcsim_schema fcsim_schema_machine_config_patch = { "MachineConfigUpdate",
                                                                f_machine_patch,
                                                                N(f_machine_patch) };

static const struct fcsim_field f_boot[] = {
        { "kernel_image_path", FCSIM_J_STR, true, 0, NULL, NULL },
        { "initrd_path", FCSIM_J_STR, false, 0, NULL, NULL },
        { "boot_args", FCSIM_J_STR, false, 0, NULL, NULL },
};
const struct fcsim_schema fcsim_schema_boot_source = { "BootSourceConfig", f_boot, N(f_boot) };

static const struct fcsim_field f_bucket[] = {
        { "size", FCSIM_J_UINT, true, U64, NULL, NULL },
        { "one_time_burst", FCSIM_J_UINT, false, U64, NULL, NULL },
        { "refill_time", FCSIM_J_UINT, true, U64, NULL, NULL },
};
static const struct fcsim_schema s_bucket = { "TokenBucketConfig", f_bucket, N(f_bucket) };

static const struct fcsim_field f_limiter[] = {
        { "bandwidth", FCSIM_J_OBJ, false, 0, NULL, &s_bucket },
        { "ops", FCSIM_J_OBJ, false, 0, NULL, &s_bucket },
};
static const struct fcsim_schema s_limiter = { "RateLimiterConfig", f_limiter, N(f_limiter) };

static const struct fcsim_field f_drive[] = {
        { "drive_id", FCSIM_J_STR, true, 0, NULL, NULL },
        { "partuuid", FCSIM_J_STR, false, 0, NULL, NULL },
        { "is_root_device", FCSIM_J_BOOL, true, 0, NULL, NULL },
        { "cache_type", FCSIM_J_STR, false, 0, e_cache_type, NULL },
        { "is_read_only", FCSIM_J_BOOL, false, 0, NULL, NULL },
        { "path_on_host", FCSIM_J_STR, false, 0, NULL, NULL },
        { "rate_limiter", FCSIM_J_OBJ, false, 0, NULL, &s_limiter },
        { "io_engine", FCSIM_J_STR, false, 0, e_io_engine, NULL },
        { "socket", FCSIM_J_STR, false, 0, NULL, NULL },
};
const struct fcsim_schema fcsim_schema_drive = { "BlockDeviceConfig", f_drive, N(f_drive) };

static const struct fcsim_field f_drive_patch[] = {
        { "drive_id", FCSIM_J_STR, true, 0, NULL, NULL },
        { "path_on_host", FCSIM_J_STR, false, 0, NULL, NULL },
        { "rate_limiter", FCSIM_J_OBJ, false, 0, NULL, &s_limiter },
};
const struct fcsim_schema fcsim_schema_drive_patch = { "BlockDeviceUpdateConfig", f_drive_patch,
                                                       N(f_drive_patch) };

static const struct fcsim_field f_net_patch[] = {
        { "iface_id", FCSIM_J_STR, true, 0, NULL, NULL },
        { "rx_rate_limiter", FCSIM_J_OBJ, false, 0, NULL, &s_limiter },
        { "tx_rate_limiter", FCSIM_J_OBJ, false, 0, NULL, &s_limiter },
};
const struct fcsim_schema fcsim_schema_network_interface_patch = { "NetworkInterfaceUpdateConfig",
                                                                   f_net_patch, N(f_net_patch) };

static const struct fcsim_field f_net[] = {
        { "iface_id", FCSIM_J_STR, true, 0, NULL, NULL },
        { "host_dev_name", FCSIM_J_STR, true, 0, NULL, NULL },
        { "guest_mac", FCSIM_J_STR, false, 0, NULL, NULL },
        { "mtu", FCSIM_J_UINT, false, U16, NULL, NULL },
        { "rx_rate_limiter", FCSIM_J_OBJ, false, 0, NULL, &s_limiter },
        { "tx_rate_limiter", FCSIM_J_OBJ, false, 0, NULL, &s_limiter },
};
const struct fcsim_schema fcsim_schema_network_interface = { "NetworkInterfaceConfig", f_net,
                                                             N(f_net) };

static const struct fcsim_field f_vsock[] = {
        { "vsock_id", FCSIM_J_STR, false, 0, NULL, NULL },
        { "guest_cid", FCSIM_J_UINT, true, U32, NULL, NULL },
        { "uds_path", FCSIM_J_STR, true, 0, NULL, NULL },
};
const struct fcsim_schema fcsim_schema_vsock = { "VsockDeviceConfig", f_vsock, N(f_vsock) };

static const struct fcsim_field f_action[] = {
        { "action_type", FCSIM_J_STR, true, 0, e_action, NULL },
};
const struct fcsim_schema fcsim_schema_action = { "ActionBody", f_action, N(f_action) };

static const struct fcsim_field f_vm[] = {
        { "state", FCSIM_J_STR, true, 0, e_vm_state, NULL },
};
const struct fcsim_schema fcsim_schema_vm = { "Vm", f_vm, N(f_vm) };

static const struct fcsim_field f_snap_create[] = {
        { "snapshot_type", FCSIM_J_STR, false, 0, e_snapshot_type, NULL },
        { "snapshot_path", FCSIM_J_STR, true, 0, NULL, NULL },
        { "mem_file_path", FCSIM_J_STR, true, 0, NULL, NULL },
};
const struct fcsim_schema fcsim_schema_snapshot_create = { "CreateSnapshotParams", f_snap_create,
                                                           N(f_snap_create) };

static const struct fcsim_field f_mem_backend[] = {
        { "backend_type", FCSIM_J_STR, true, 0, e_backend_type, NULL },
        { "backend_path", FCSIM_J_STR, true, 0, NULL, NULL },
};
static const struct fcsim_schema s_mem_backend = { "MemBackendConfig", f_mem_backend,
                                                   N(f_mem_backend) };

static const struct fcsim_field f_net_override[] = {
        { "iface_id", FCSIM_J_STR, true, 0, NULL, NULL },
        { "host_dev_name", FCSIM_J_STR, true, 0, NULL, NULL },
};
static const struct fcsim_schema s_net_override = { "NetworkOverride", f_net_override,
                                                    N(f_net_override) };

static const struct fcsim_field f_vsock_override[] = {
        { "uds_path", FCSIM_J_STR, true, 0, NULL, NULL },
};
static const struct fcsim_schema s_vsock_override = { "VsockOverride", f_vsock_override,
                                                      N(f_vsock_override) };

static const struct fcsim_field f_snap_load[] = {
        { "snapshot_path", FCSIM_J_STR, true, 0, NULL, NULL },
        { "mem_file_path", FCSIM_J_STR, false, 0, NULL, NULL },
        { "mem_backend", FCSIM_J_OBJ, false, 0, NULL, &s_mem_backend },
        { "enable_diff_snapshots", FCSIM_J_BOOL, false, 0, NULL, NULL },
        { "track_dirty_pages", FCSIM_J_BOOL, false, 0, NULL, NULL },
        { "resume_vm", FCSIM_J_BOOL, false, 0, NULL, NULL },
        { "network_overrides", FCSIM_J_ARR, false, 0, NULL, &s_net_override },
        { "vsock_override", FCSIM_J_OBJ, false, 0, NULL, &s_vsock_override },
        { "clock_realtime", FCSIM_J_BOOL, false, 0, NULL, NULL },
};
const struct fcsim_schema fcsim_schema_snapshot_load = { "LoadSnapshotConfig", f_snap_load,
                                                         N(f_snap_load) };

int fcsim_json_parse(const char *body, size_t len, cJSON **ret_json, struct ha_err *err)
{
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, false);
        if (!j)
                return ha_err_set(err, -EINVAL, "expected value at byte %zu",
                                  end ? (size_t)(end - body) : (size_t)0);
        /* Trailing non-space bytes after the value are an error in serde. */
        for (const char *p = end; p && p < body + len; p++) {
                if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
                        cJSON_Delete(j);
                        return ha_err_set(err, -EINVAL, "trailing characters at byte %zu",
                                          (size_t)(p - body));
                }
        }
        *ret_json = j;
        return 0;
}

/* Describes a JSON value the way serde's "invalid type" errors do. */
static void describe(const cJSON *v, char *out, size_t cap)
{
        if (cJSON_IsString(v))
                snprintf(out, cap, "string \"%.64s\"", v->valuestring);
        else if (cJSON_IsBool(v))
                snprintf(out, cap, "boolean `%s`", cJSON_IsTrue(v) ? "true" : "false");
        else if (cJSON_IsNumber(v))
                snprintf(out, cap, "%s `%.17g`",
                         v->valuedouble == floor(v->valuedouble) ? "integer" : "floating point",
                         v->valuedouble);
        else if (cJSON_IsArray(v))
                snprintf(out, cap, "sequence");
        else if (cJSON_IsObject(v))
                snprintf(out, cap, "map");
        else
                snprintf(out, cap, "null");
}

static const char *uint_name(uint64_t max)
{
        switch (max) {
        case U8: return "u8";
        case U16: return "u16";
        case U32: return "u32";
        default: return "u64";
        }
}

static int expected_list(const struct fcsim_schema *s, char *out, size_t cap)
{
        size_t o = 0;
        out[0] = '\0';
        for (size_t i = 0; i < s->n_fields && o < cap; i++) {
                int n = snprintf(out + o, cap - o, "%s`%s`", i ? ", " : "", s->fields[i].name);
                if (n < 0)
                        return -EINVAL;
                o += (size_t)n;
        }
        return 0;
}

static int check_value(const cJSON *v, const struct fcsim_field *f, struct ha_err *err);

int fcsim_schema_check(const cJSON *obj, const struct fcsim_schema *s, struct ha_err *err)
{
        char what[96];
        if (!cJSON_IsObject(obj)) {
                describe(obj, what, sizeof what);
                return ha_err_set(err, -EINVAL, "invalid type: %s, expected struct %s", what,
                                  s->name);
        }
        for (const cJSON *c = obj->child; c; c = c->next) {
                const struct fcsim_field *f = NULL;
                for (size_t i = 0; i < s->n_fields; i++) {
                        if (strcmp(s->fields[i].name, c->string) == 0) {
                                f = &s->fields[i];
                                break;
                        }
                }
                if (!f) {
                        char list[512];
                        expected_list(s, list, sizeof list);
                        return ha_err_set(err, -EINVAL, "unknown field `%.64s`, expected one of %s",
                                          c->string, list);
                }
                for (const cJSON *d = obj->child; d != c; d = d->next) {
                        if (strcmp(d->string, c->string) == 0)
                                return ha_err_set(err, -EINVAL, "duplicate field `%s`", f->name);
                }
                int r = check_value(c, f, err);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < s->n_fields; i++) {
                if (s->fields[i].required &&
                    !cJSON_GetObjectItemCaseSensitive(obj, s->fields[i].name))
                        return ha_err_set(err, -EINVAL, "missing field `%s`", s->fields[i].name);
        }
        return 0;
}

static int check_enum(const cJSON *v, const struct fcsim_field *f, struct ha_err *err)
{
        /* The logger level is the one enum Firecracker matches case-insensitively. */
        bool nocase = f->enums == e_level;
        for (const char *const *e = f->enums; *e; e++) {
                if (nocase ? strcasecmp(*e, v->valuestring) == 0 : strcmp(*e, v->valuestring) == 0)
                        return 0;
        }
        char list[256];
        size_t o = 0;
        list[0] = '\0';
        for (const char *const *e = f->enums; *e && o < sizeof list; e++) {
                int n = snprintf(list + o, sizeof list - o, "%s`%s`", e == f->enums ? "" : ", ",
                                 *e);
                if (n < 0)
                        break;
                o += (size_t)n;
        }
        return ha_err_set(err, -EINVAL, "unknown variant `%.64s`, expected one of %s",
                          v->valuestring, list);
}

static int check_value(const cJSON *v, const struct fcsim_field *f, struct ha_err *err)
{
        char what[96];
        describe(v, what, sizeof what);
        switch (f->type) {
        case FCSIM_J_STR:
                if (!cJSON_IsString(v))
                        return ha_err_set(err, -EINVAL, "invalid type: %s, expected a string",
                                          what);
                if (f->enums)
                        return check_enum(v, f, err);
                return 0;
        case FCSIM_J_BOOL:
                if (!cJSON_IsBool(v))
                        return ha_err_set(err, -EINVAL, "invalid type: %s, expected a boolean",
                                          what);
                return 0;
        case FCSIM_J_UINT: {
                if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
                        return ha_err_set(err, -EINVAL, "invalid type: %s, expected %s", what,
                                          uint_name(f->max));
                if (v->valuedouble < 0 || v->valuedouble > (double)f->max)
                        return ha_err_set(err, -EINVAL,
                                          "invalid value: integer `%.17g`, expected %s",
                                          v->valuedouble, uint_name(f->max));
                return 0;
        }
        case FCSIM_J_OBJ: return fcsim_schema_check(v, f->sub, err);
        case FCSIM_J_ARR:
                if (!cJSON_IsArray(v))
                        return ha_err_set(err, -EINVAL, "invalid type: %s, expected a sequence",
                                          what);
                for (const cJSON *c = v->child; c; c = c->next) {
                        int r = fcsim_schema_check(c, f->sub, err);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        return -EINVAL;
}

const char *fcsim_json_str(const cJSON *obj, const char *name, const char *dflt)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
        return cJSON_IsString(v) ? v->valuestring : dflt;
}

bool fcsim_json_bool(const cJSON *obj, const char *name, bool dflt)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
        return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

uint64_t fcsim_json_uint(const cJSON *obj, const char *name, uint64_t dflt)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0)
                return dflt;
        if (v->valuedouble >= 18446744073709551615.0)
                return UINT64_MAX;
        return (uint64_t)v->valuedouble;
}

bool fcsim_json_has(const cJSON *obj, const char *name)
{
        return cJSON_GetObjectItemCaseSensitive(obj, name) != NULL;
}
