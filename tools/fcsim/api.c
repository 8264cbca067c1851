/*
 * api.c - see api.h. This file holds the instance, the routing and the
 * helpers every handler uses; the handlers live in api_config.c
 * (pre-boot configuration) and api_run.c (boot, actions, pause, snapshots).
 *
 * The order of checks follows Firecracker's: the request is parsed first
 * (path, ID syntax, JSON shape, body/path ID match) and only then checked
 * against the VM's state, so a malformed request gets the parse error
 * whatever the state.
 */
#include "api_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "core/log.h"
#include "core/time.h"
#include "schema.h"

const char FCSIM_MSG_PRE_BOOT[] =
        "The requested operation is not supported before starting the microVM.";
const char FCSIM_MSG_POST_BOOT[] =
        "The requested operation is not supported after starting the microVM.";
const char FCSIM_MSG_SERDE[] = "An error occurred when deserializing the json body of a request: ";

void fcsim_vm_init(struct fcsim_vm *vm, const char *id)
{
        memset(vm, 0, sizeof *vm);
        snprintf(vm->id, sizeof vm->id, "%s", id);
        vm->state = FCSIM_NOT_STARTED;
        fcsim_config_init(&vm->cfg);
        fcsim_vmlog_init(&vm->vmlog, id);
        vm->guest.pidfd = -1;
}

void fcsim_vm_done(struct fcsim_vm *vm)
{
        fcsim_vm_stop_guest(vm);
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

int fcsim_call_fault(struct fcsim_call *c, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->fault, sizeof c->fault, fmt, ap);
        va_end(ap);
        c->status = 400;
        ha_buf_reset(c->body);
        return fcsim_http_fault_body(c->body, c->fault);
}

int fcsim_call_json(struct fcsim_call *c, cJSON *o)
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

int fcsim_call_ok(struct fcsim_call *c)
{
        c->status = 204;
        return 0;
}

/* ---- request helpers ---- */

int fcsim_call_body(struct fcsim_call *c, const struct fcsim_schema *s, cJSON **ret_json)
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
                fcsim_call_fault(c, "%s%s.", FCSIM_MSG_SERDE, err.msg);
                return -EINVAL;
        }
        *ret_json = j;
        return 0;
}

/* Validates a path ID the way Firecracker's checked_id does. */
int fcsim_call_path_id(struct fcsim_call *c, const char *id)
{
        if (!id || !id[0]) {
                fcsim_call_fault(c, "The ID cannot be empty.");
                return -EINVAL;
        }
        if (!fcsim_id_is_valid(id)) {
                fcsim_call_fault(c, "API Resource IDs can only contain alphanumeric characters and "
                                    "underscores.");
                return -EINVAL;
        }
        return 0;
}

int fcsim_call_id_matches(struct fcsim_call *c, const cJSON *j, const char *field,
                          const char *path_id)
{
        if (strcmp(fcsim_json_str(j, field, ""), path_id) != 0) {
                fcsim_call_fault(c, "The id from the path does not match the id from the body!");
                return -EINVAL;
        }
        return 0;
}

bool fcsim_call_preboot(struct fcsim_call *c)
{
        if (c->vm->state == FCSIM_NOT_STARTED)
                return true;
        fcsim_call_fault(c, "%s", FCSIM_MSG_POST_BOOT);
        return false;
}

bool fcsim_call_postboot(struct fcsim_call *c)
{
        if (c->vm->state != FCSIM_NOT_STARTED)
                return true;
        fcsim_call_fault(c, "%s", FCSIM_MSG_PRE_BOOT);
        return false;
}

/* ---- handlers ---- */

static int get_instance_info(struct fcsim_call *c)
{
        static const char *const names[] = { "Not started", "Running", "Paused" };
        cJSON *o = cJSON_CreateObject();
        if (o) {
                cJSON_AddStringToObject(o, "id", c->vm->id);
                cJSON_AddStringToObject(o, "state", names[c->vm->state]);
                cJSON_AddStringToObject(o, "vmm_version", FCSIM_FC_VERSION);
                cJSON_AddStringToObject(o, "app_name", "Firecracker");
        }
        return fcsim_call_json(c, o);
}

static int get_version(struct fcsim_call *c)
{
        cJSON *o = cJSON_CreateObject();
        if (o)
                cJSON_AddStringToObject(o, "firecracker_version", FCSIM_FC_VERSION);
        return fcsim_call_json(c, o);
}

static int get_vm_config(struct fcsim_call *c)
{
        return fcsim_call_json(c, fcsim_config_to_json(&c->vm->cfg));
}

/* ---- routing ---- */

static int route(struct fcsim_call *c, const char *t0, const char *t1, bool extra)
{
        const struct fcsim_http_req *req = c->req;
        bool body = req->body_len > 0;
        switch (req->method) {
        case FCSIM_GET:
                if (body)
                        return fcsim_call_fault(c, "GET request cannot have a body.");
                if (!extra && !t1 && strcmp(t0, "") == 0)
                        return get_instance_info(c);
                if (!extra && !t1 && strcmp(t0, "version") == 0)
                        return get_version(c);
                if (!extra && !t1 && strcmp(t0, "machine-config") == 0)
                        return fcsim_call_json(c, fcsim_machine_to_json(&c->vm->cfg.machine));
                if (!extra && t1 && strcmp(t0, "vm") == 0 && strcmp(t1, "config") == 0)
                        return get_vm_config(c);
                break;
        case FCSIM_PUT:
                if (!body)
                        return fcsim_call_fault(c, "Empty PUT request.");
                if (extra)
                        break;
                if (strcmp(t0, "actions") == 0 && !t1)
                        return fcsim_api_put_actions(c);
                if (strcmp(t0, "boot-source") == 0 && !t1)
                        return fcsim_api_put_boot_source(c);
                if (strcmp(t0, "drives") == 0)
                        return fcsim_api_put_drive(c, t1);
                if (strcmp(t0, "logger") == 0 && !t1)
                        return fcsim_api_put_logger(c);
                if (strcmp(t0, "machine-config") == 0 && !t1)
                        return fcsim_api_machine_config(c, false);
                if (strcmp(t0, "metrics") == 0 && !t1)
                        return fcsim_api_put_metrics(c);
                if (strcmp(t0, "network-interfaces") == 0)
                        return fcsim_api_put_net(c, t1);
                if (strcmp(t0, "vsock") == 0 && !t1)
                        return fcsim_api_put_vsock(c);
                if (strcmp(t0, "snapshot") == 0 && t1 && strcmp(t1, "create") == 0)
                        return fcsim_api_snapshot_create(c);
                if (strcmp(t0, "snapshot") == 0 && t1 && strcmp(t1, "load") == 0)
                        return fcsim_api_snapshot_load(c);
                break;
        case FCSIM_PATCH:
                if (!body)
                        return fcsim_call_fault(c, "Empty PATCH request.");
                if (extra)
                        break;
                if (strcmp(t0, "drives") == 0)
                        return fcsim_api_patch_drive(c, t1);
                if (strcmp(t0, "network-interfaces") == 0)
                        return fcsim_api_patch_net(c, t1);
                if (t1)
                        break;
                if (strcmp(t0, "machine-config") == 0)
                        return fcsim_api_machine_config(c, true);
                if (strcmp(t0, "vm") == 0)
                        return fcsim_api_patch_vm(c);
                break;
        default: break;
        }
        return fcsim_call_fault(c, "Invalid request method and/or path: %s %s.", req->method_name,
                                t0);
}

int fcsim_api_handle(struct fcsim_vm *vm, const struct fcsim_http_req *req, int *ret_status,
                     struct ha_buf *body)
{
        struct fcsim_call c = { .vm = vm, .req = req, .status = 500, .body = body };
        vm->api_requests++;
        if (req->body_len > 0)
                fcsim_vmlog_write(
                        &vm->vmlog, FCSIM_VL_INFO,
                        "The API server received a %s request on \"%s\" with body \"%.*s\".",
                        req->method_name, req->path, (int)req->body_len, req->body);
        else
                fcsim_vmlog_write(&vm->vmlog, FCSIM_VL_INFO,
                                  "The API server received a %s request on \"%s\".",
                                  req->method_name, req->path);

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
                                  "Received Error. Status code: 400 Bad Request. Message: %s",
                                  c.fault);
        } else {
                fcsim_vmlog_write(&vm->vmlog, FCSIM_VL_INFO,
                                  "The request was executed successfully. Status code: %s.",
                                  c.status == 204 ? "204 No Content" : "200 OK");
        }
        return 0;
}
