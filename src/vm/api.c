/*
 * api.c - see api.h. Bodies are built with vm/json.h (escaped strings, the
 * 51,200-byte cap checked before sending); responses are read into a bounded
 * buffer and only "fault_message" / "state" are ever looked at.
 */
#include "vm/api.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/json.h"
#include "vm/launch.h"

/* Connecting to a local socket is instant or never: do not let a missing
 * VMM eat the whole request budget. */
#define CONNECT_TIMEOUT_MAX_MS 1000
/* Resource ids in Firecracker paths: alphanumeric and '_' (a '-' gives 400). */
#define RESOURCE_ID_MAX 64

struct vm_api {
        CURL *curl;                     /* NULL while idle (vm_api_idle) */
        struct curl_slist *headers;
        unsigned timeout_ms;
        char sock_path[VM_SUN_PATH_MAX + 1];
        char curl_err[CURL_ERROR_SIZE];
        struct ha_buf resp;
        bool overflow;          /* the response passed VM_API_RESP_MAX */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
        curl_init_rc = curl_global_init(CURL_GLOBAL_NOTHING);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
        vm_api *a = ud;
        size_t len = size * n;
        if (ha_buf_append(&a->resp, p, len) == 0)
                return len;
        /* A short count makes curl fail with CURLE_WRITE_ERROR. */
        a->overflow = true;
        return 0;
}

/* The easy handle is made by the first request after vm_api_idle(): the
 * requests of one operation share it (and its kept-alive connection). */
static CURL *easy_new(vm_api *a)
{
        CURL *c = curl_easy_init();
        if (!c)
                return NULL;
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, a->sock_path);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, a->headers);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a->curl_err);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
        return c;
}

int vm_api_new(const char *sock_path, unsigned timeout_ms, vm_api **ret)
{
        pthread_once(&curl_once, curl_init_once);
        if (curl_init_rc != CURLE_OK)
                return -ENOMEM;
        if (!sock_path || strlen(sock_path) > VM_SUN_PATH_MAX)
                return -ENAMETOOLONG;
        vm_api *a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        snprintf(a->sock_path, sizeof a->sock_path, "%s", sock_path);
        a->timeout_ms = timeout_ms ? timeout_ms : VM_API_TIMEOUT_DEFAULT_MS;
        ha_buf_init(&a->resp, (size_t)VM_API_RESP_MAX);
        struct curl_slist *h = NULL, *t;
        const char *hdrs[] = { "Content-Type: application/json", "Accept: application/json",
                               "Expect:", NULL };
        for (int i = 0; hdrs[i]; i++) {
                t = curl_slist_append(h, hdrs[i]);
                if (!t) {
                        curl_slist_free_all(h);
                        ha_buf_done(&a->resp);
                        free(a);
                        return -ENOMEM;
                }
                h = t;
        }
        a->headers = h;
        *ret = a;
        return 0;
}

void vm_api_idle(vm_api *a)
{
        if (!a || !a->curl)
                return;
        curl_easy_cleanup(a->curl);
        a->curl = NULL;
        ha_buf_done(&a->resp);
        ha_buf_init(&a->resp, (size_t)VM_API_RESP_MAX);
}

void vm_api_free(vm_api *a)
{
        if (!a)
                return;
        vm_api_idle(a);
        curl_slist_free_all(a->headers);
        ha_buf_done(&a->resp);
        free(a);
}

void vm_api_set_timeout(vm_api *a, unsigned timeout_ms)
{
        a->timeout_ms = timeout_ms ? timeout_ms : VM_API_TIMEOUT_DEFAULT_MS;
}

int vm_api_status_errno(long status, const char *fault)
{
        if (status >= 200 && status < 300)
                return 0;
        if (status == 400) {
                if (fault && (strstr(fault, "not supported before starting") ||
                              strstr(fault, "not supported after starting")))
                        return -EBUSY;
                return -EINVAL;
        }
        if (status == 404)
                return -ENOENT;
        if (status == 413)
                return -EMSGSIZE;
        return -EIO;
}

static int curl_errno(CURLcode c)
{
        switch (c) {
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_GOT_NOTHING:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
                return -ECONNRESET;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

/* A fault message fit for a one-line error: the fault_message member when
 * the body is Firecracker's error object, else the printable start of it. */
static void fault_text(const struct ha_buf *b, char *out, size_t size)
{
        const char *s = b->len ? (const char *)b->data : "";
        if (vm_json_get_string(s, b->len, "fault_message", out, size) == 0)
                return;
        size_t n = 0;
        for (size_t i = 0; i < b->len && n + 1 < size; i++) {
                unsigned char c = (unsigned char)s[i];
                out[n++] = (char)((c >= 0x20 && c < 0x7f) ? c : ' ');
        }
        out[n] = '\0';
}

int vm_api_call(vm_api *a, const char *method, const char *path, const char *body,
                size_t body_len, long *ret_status, struct ha_buf *ret_body, struct ha_err *err)
{
        char url[256];
        int n = snprintf(url, sizeof url, "http://localhost%s", path);
        if (n < 0 || (size_t)n >= sizeof url)
                return ha_err_set(err, -ENAMETOOLONG, "firecracker %s: path too long", method);
        if (body_len > VM_JSON_BODY_MAX)
                return ha_err_set(err, -EMSGSIZE, "firecracker %s %s: body of %zu bytes over %d",
                                  method, path, body_len, VM_JSON_BODY_MAX);

        if (!a->curl && !(a->curl = easy_new(a)))
                return ha_err_set(err, -ENOMEM, "firecracker %s %s: no curl handle", method, path);
        ha_buf_reset(&a->resp);
        a->overflow = false;
        a->curl_err[0] = '\0';
        CURL *c = a->curl;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)a->timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)(a->timeout_ms < CONNECT_TIMEOUT_MAX_MS ? a->timeout_ms
                                                                       : CONNECT_TIMEOUT_MAX_MS));
        if (strcmp(method, "GET") == 0) {
                curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
        } else {
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? body_len : 0));
        }

        CURLcode cc = curl_easy_perform(c);
        if (cc != CURLE_OK) {
                if (cc == CURLE_WRITE_ERROR && a->overflow)
                        return ha_err_set(err, -EMSGSIZE,
                                          "firecracker %s %s: response over %d bytes", method,
                                          path, VM_API_RESP_MAX);
                int r = curl_errno(cc);
                return ha_err_set(err, r, "firecracker %s %s: %s", method, path,
                                  a->curl_err[0] ? a->curl_err : curl_easy_strerror(cc));
        }
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (ret_status)
                *ret_status = status;
        if (ret_body) {
                ha_buf_reset(ret_body);
                int r = ha_buf_append(ret_body, a->resp.data, a->resp.len);
                if (r == 0)
                        r = ha_buf_append(ret_body, "", 1);
                if (r < 0)
                        return ha_err_set(err, r, "firecracker %s %s: response too large",
                                          method, path);
                ret_body->len--; /* the NUL is there but not counted */
        }
        if (status >= 200 && status < 300)
                return 0;
        char fault[HA_ERR_MSG_MAX];
        fault_text(&a->resp, fault, sizeof fault);
        int r = vm_api_status_errno(status, fault);
        return ha_err_set(err, r, "firecracker %s %s: %ld: %s", method, path, status,
                          fault[0] ? fault : "(no fault_message)");
}

/* ---- typed requests ---- */

static bool resource_id_is_valid(const char *id)
{
        if (!id || !id[0] || strlen(id) > RESOURCE_ID_MAX)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

/* Sends the body built in |j| (if it is complete). */
static int send_json(vm_api *a, const char *method, const char *path, struct vm_json *j,
                     struct ha_buf *b, struct ha_err *err)
{
        int r = vm_json_finish(j);
        if (r < 0)
                r = ha_err_set(err, r, "firecracker %s %s: building the body: %s", method, path,
                               strerror(-r));
        else
                r = vm_api_call(a, method, path, (const char *)b->data, b->len, NULL, NULL, err);
        ha_buf_done(b);
        return r;
}

/* j and b name the variables it declares: they cannot be parenthesised. */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define BODY_BEGIN(j, b)                        \
        struct ha_buf b;                        \
        struct vm_json j;                       \
        ha_buf_init(&b, VM_JSON_BODY_MAX);      \
        vm_json_init(&j, &b);                   \
        vm_json_object_begin(&j, NULL)
/* NOLINTEND(bugprone-macro-parentheses) */

int vm_api_put_logger(vm_api *a, const char *log_path, const char *level, struct ha_err *err)
{
        BODY_BEGIN(j, b);
        vm_json_string(&j, "log_path", log_path);
        vm_json_string(&j, "level", level ? level : "Info");
        vm_json_bool(&j, "show_level", true);
        vm_json_bool(&j, "show_log_origin", false);
        vm_json_object_end(&j);
        return send_json(a, "PUT", "/logger", &j, &b, err);
}

int vm_api_put_metrics(vm_api *a, const char *metrics_path, struct ha_err *err)
{
        BODY_BEGIN(j, b);
        vm_json_string(&j, "metrics_path", metrics_path);
        vm_json_object_end(&j);
        return send_json(a, "PUT", "/metrics", &j, &b, err);
}

int vm_api_put_machine_config(vm_api *a, const struct vm_machine_cfg *m, struct ha_err *err)
{
        if (m->vcpu_count < 1 || m->vcpu_count > 32)
                return ha_err_set(err, -EINVAL, "vcpu_count %u outside 1-32", m->vcpu_count);
        if (m->mem_size_mib < 1)
                return ha_err_set(err, -EINVAL, "mem_size_mib must be positive");
        BODY_BEGIN(j, b);
        vm_json_uint(&j, "vcpu_count", m->vcpu_count);
        vm_json_uint(&j, "mem_size_mib", m->mem_size_mib);
        vm_json_bool(&j, "smt", m->smt);
        vm_json_bool(&j, "track_dirty_pages", m->track_dirty_pages);
        vm_json_object_end(&j);
        return send_json(a, "PUT", "/machine-config", &j, &b, err);
}

int vm_api_put_boot_source(vm_api *a, const char *kernel_path, const char *boot_args,
                           struct ha_err *err)
{
        BODY_BEGIN(j, b);
        vm_json_string(&j, "kernel_image_path", kernel_path);
        if (boot_args)
                vm_json_string(&j, "boot_args", boot_args);
        vm_json_object_end(&j);
        return send_json(a, "PUT", "/boot-source", &j, &b, err);
}

int vm_api_put_drive(vm_api *a, const char *drive_id, const char *path_on_host, bool is_root,
                     bool read_only, struct ha_err *err)
{
        if (!resource_id_is_valid(drive_id))
                return ha_err_set(err, -EINVAL, "drive id must be [A-Za-z0-9_]{1,64}");
        char path[96];
        snprintf(path, sizeof path, "/drives/%s", drive_id);
        BODY_BEGIN(j, b);
        vm_json_string(&j, "drive_id", drive_id);
        vm_json_string(&j, "path_on_host", path_on_host);
        vm_json_bool(&j, "is_root_device", is_root);
        vm_json_bool(&j, "is_read_only", read_only);
        vm_json_object_end(&j);
        return send_json(a, "PUT", path, &j, &b, err);
}

int vm_api_put_network_interface(vm_api *a, const char *iface_id, const char *host_dev_name,
                                 const char *guest_mac, struct ha_err *err)
{
        if (!resource_id_is_valid(iface_id))
                return ha_err_set(err, -EINVAL, "interface id must be [A-Za-z0-9_]{1,64}");
        char path[96];
        snprintf(path, sizeof path, "/network-interfaces/%s", iface_id);
        BODY_BEGIN(j, b);
        vm_json_string(&j, "iface_id", iface_id);
        vm_json_string(&j, "host_dev_name", host_dev_name);
        if (guest_mac)
                vm_json_string(&j, "guest_mac", guest_mac);
        vm_json_object_end(&j);
        return send_json(a, "PUT", path, &j, &b, err);
}

int vm_api_put_vsock(vm_api *a, uint32_t guest_cid, const char *uds_path, struct ha_err *err)
{
        if (guest_cid < 3)
                return ha_err_set(err, -EINVAL, "vsock guest_cid %u: must be >= 3", guest_cid);
        BODY_BEGIN(j, b);
        vm_json_uint(&j, "guest_cid", guest_cid);
        vm_json_string(&j, "uds_path", uds_path);
        vm_json_object_end(&j);
        return send_json(a, "PUT", "/vsock", &j, &b, err);
}

int vm_api_action(vm_api *a, const char *action_type, struct ha_err *err)
{
        BODY_BEGIN(j, b);
        vm_json_string(&j, "action_type", action_type);
        vm_json_object_end(&j);
        return send_json(a, "PUT", "/actions", &j, &b, err);
}

int vm_api_set_paused(vm_api *a, bool paused, struct ha_err *err)
{
        BODY_BEGIN(j, b);
        vm_json_string(&j, "state", paused ? "Paused" : "Resumed");
        vm_json_object_end(&j);
        return send_json(a, "PATCH", "/vm", &j, &b, err);
}

int vm_api_snapshot_create(vm_api *a, const char *snapshot_path, const char *mem_path,
                           struct ha_err *err)
{
        BODY_BEGIN(j, b);
        vm_json_string(&j, "snapshot_type", "Full");
        vm_json_string(&j, "snapshot_path", snapshot_path);
        vm_json_string(&j, "mem_file_path", mem_path);
        vm_json_object_end(&j);
        return send_json(a, "PUT", "/snapshot/create", &j, &b, err);
}

int vm_api_snapshot_load(vm_api *a, const struct vm_snapshot_load *s, struct ha_err *err)
{
        BODY_BEGIN(j, b);
        vm_json_string(&j, "snapshot_path", s->snapshot_path);
        vm_json_object_begin(&j, "mem_backend");
        vm_json_string(&j, "backend_type", "File");
        vm_json_string(&j, "backend_path", s->mem_path);
        vm_json_object_end(&j);
        vm_json_bool(&j, "resume_vm", s->resume_vm);
        if (s->iface_id && s->host_dev_name) {
                vm_json_array_begin(&j, "network_overrides");
                vm_json_object_begin(&j, NULL);
                vm_json_string(&j, "iface_id", s->iface_id);
                vm_json_string(&j, "host_dev_name", s->host_dev_name);
                vm_json_object_end(&j);
                vm_json_array_end(&j);
        }
        if (s->vsock_uds_path) {
                vm_json_object_begin(&j, "vsock_override");
                vm_json_string(&j, "uds_path", s->vsock_uds_path);
                vm_json_object_end(&j);
        }
        vm_json_object_end(&j);
        return send_json(a, "PUT", "/snapshot/load", &j, &b, err);
}

int vm_api_get_state(vm_api *a, char *state, size_t size, struct ha_err *err)
{
        struct ha_buf b;
        ha_buf_init(&b, (size_t)VM_API_RESP_MAX);
        int r = vm_api_call(a, "GET", "/", NULL, 0, NULL, &b, err);
        if (r == 0 && vm_json_get_string((const char *)b.data, b.len, "state", state, size) < 0)
                r = ha_err_set(err, -EIO, "firecracker GET /: no \"state\" in the answer");
        ha_buf_done(&b);
        return r;
}
