/*
 * api.h - Firecracker's REST API over its Unix socket (libcurl underneath;
 * curl stays out of this header).
 *
 * One vm_api per VMM process, holding one curl handle so requests reuse the
 * keep-alive connection. Not thread-safe: the vm façade serialises calls.
 * Every request is bounded by the handle's timeout (CURLOPT_TIMEOUT_MS), so
 * a hung VMM gives -ETIMEDOUT, never a stuck worker.
 *
 * Error mapping (the one place CURLcode and HTTP statuses become errno):
 *   2xx                                   -> 0
 *   400 with a "not supported before/after starting the microVM" fault
 *                                         -> -EBUSY   (wrong VM state: FAILED_PRECONDITION)
 *   400 (any other fault_message)         -> -EINVAL  (Firecracker refused the input)
 *   404                                   -> -ENOENT
 *   413                                   -> -EMSGSIZE
 *   5xx and other statuses                -> -EIO
 *   CURLE_OPERATION_TIMEDOUT              -> -ETIMEDOUT
 *   CURLE_COULDNT_CONNECT                 -> -ECONNREFUSED (VMM gone or socket stale)
 *   CURLE_GOT_NOTHING / SEND / RECV_ERROR -> -ECONNRESET (VMM died mid-request)
 *   CURLE_OUT_OF_MEMORY                   -> -ENOMEM
 *   response body over VM_API_RESP_MAX    -> -EMSGSIZE
 *   any other CURLcode                    -> -EIO
 * The ha_err message reads "firecracker PUT /drives/rootfs: 400: <fault_message>"
 * (or the curl error text), so the client sees Firecracker's own words.
 */
#ifndef HA_VM_API_H
#define HA_VM_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* Largest response body we accept (GET /vm/config is the biggest, ~2 KiB). */
#define VM_API_RESP_MAX (64 * 1024)
#define VM_API_TIMEOUT_DEFAULT_MS 5000

typedef struct vm_api vm_api;

/* Returns 0 or -ENOMEM / -ENAMETOOLONG (socket path over 107 bytes). */
int vm_api_new(const char *sock_path, unsigned timeout_ms, vm_api **ret);
void vm_api_free(vm_api *a);
/* Drops the curl handle, its kept-alive connection (a descriptor) and the
 * response buffer until the next request: a VM calls it when an operation
 * ends, so a thousand idle VMs hold none of them. NULL is ignored. */
void vm_api_idle(vm_api *a);
void vm_api_set_timeout(vm_api *a, unsigned timeout_ms);

/* One request. |body| may be NULL (no body). |ret_status| and |ret_body|
 * (response bytes, NUL-terminated copy) may be NULL. Returns 0 or the
 * mapping above. */
int vm_api_call(vm_api *a, const char *method, const char *path, const char *body,
                size_t body_len, long *ret_status, struct ha_buf *ret_body, struct ha_err *err);

/* Maps an HTTP status and fault message to -errno (see the table above). */
int vm_api_status_errno(long status, const char *fault_message);

/* ---- typed requests; all return 0 or the mapping above ---- */

struct vm_machine_cfg {
        unsigned vcpu_count;    /* 1-32 */
        unsigned mem_size_mib;
        bool smt;
        bool track_dirty_pages;
};

struct vm_snapshot_load {
        const char *snapshot_path;
        const char *mem_path;           /* mem_backend {File, mem_path} */
        bool resume_vm;
        const char *iface_id;           /* network_overrides[0], NULL: none */
        const char *host_dev_name;
        const char *vsock_uds_path;     /* vsock_override, NULL: none */
};

int vm_api_put_logger(vm_api *a, const char *log_path, const char *level, struct ha_err *err);
/* PUT /metrics: once per process (Firecracker refuses a second one). */
int vm_api_put_metrics(vm_api *a, const char *metrics_path, struct ha_err *err);
int vm_api_put_machine_config(vm_api *a, const struct vm_machine_cfg *m, struct ha_err *err);
int vm_api_put_boot_source(vm_api *a, const char *kernel_path, const char *boot_args,
                           struct ha_err *err);
int vm_api_put_drive(vm_api *a, const char *drive_id, const char *path_on_host, bool is_root,
                     bool read_only, struct ha_err *err);
int vm_api_put_network_interface(vm_api *a, const char *iface_id, const char *host_dev_name,
                                 const char *guest_mac, struct ha_err *err);
int vm_api_put_vsock(vm_api *a, uint32_t guest_cid, const char *uds_path, struct ha_err *err);
/* action_type: "InstanceStart", "SendCtrlAltDel", "FlushMetrics". */
int vm_api_action(vm_api *a, const char *action_type, struct ha_err *err);
/* PATCH /vm {"state": paused ? "Paused" : "Resumed"}. */
int vm_api_set_paused(vm_api *a, bool paused, struct ha_err *err);
/* PUT /snapshot/create, snapshot_type Full. */
int vm_api_snapshot_create(vm_api *a, const char *snapshot_path, const char *mem_path,
                           struct ha_err *err);
int vm_api_snapshot_load(vm_api *a, const struct vm_snapshot_load *s, struct ha_err *err);
/* GET / -> "state" ("Not started", "Running", "Paused") into |state|. */
int vm_api_get_state(vm_api *a, char *state, size_t size, struct ha_err *err);

#endif
