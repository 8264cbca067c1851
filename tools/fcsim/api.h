/*
 * api.h - the REST API of the simulated microVM: routing, Firecracker's
 * rules (pre-boot-only and post-boot-only calls, IDs, body/path ID match,
 * snapshot/load only on a fresh instance) and the actions behind each call.
 *
 * Supported: GET / | /version | /machine-config | /vm/config;
 * PUT /logger | /metrics | /machine-config | /boot-source | /drives/{id} |
 * /network-interfaces/{id} | /vsock | /actions | /snapshot/create |
 * /snapshot/load; PATCH /machine-config | /vm | /drives/{id} |
 * /network-interfaces/{id}. Anything else gets
 * Firecracker's "Invalid request method and/or path" 400.
 *
 * Threading: main thread only.
 */
#ifndef FCSIM_API_H
#define FCSIM_API_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "fcsim.h"
#include "guest.h"
#include "http.h"
#include "relay.h"
#include "vmlog.h"
#include "vsock.h"

struct fcsim_vm {
        char id[FCSIM_ID_MAX + 1]; /* immutable after fcsim_vm_init */
        enum fcsim_state state;
        struct fcsim_config cfg;
        bool boot_specific; /* anything beyond logger/metrics was configured */
        bool metrics_set;
        struct fcsim_vmlog vmlog;
        struct fcsim_vsock *vsock; /* bound at PUT /vsock */
        bool guest_up;
        struct fcsim_guest guest;
        struct fcsim_relay *relay;
        /* Set by a handler when the process must end once the response is
         * sent (failed snapshot load, as in Firecracker). */
        bool exit_requested;
        int exit_code;
        uint64_t api_requests, api_errors;
};

void fcsim_vm_init(struct fcsim_vm *vm, const char *id);
/* Releases everything: kills and reaps the guest, stops the relay and vsock
 * threads, closes TAPs and log files. Socket files are kept (the driver
 * removes them, as with Firecracker). */
void fcsim_vm_done(struct fcsim_vm *vm);

/* Handles one parsed request. Fills *ret_status (200, 204 or 400) and, for
 * 200 and 400, the JSON body. Returns 0, or -ENOMEM when the response
 * could not be built. */
int fcsim_api_handle(struct fcsim_vm *vm, const struct fcsim_http_req *req, int *ret_status,
                     struct ha_buf *body);

/* The guest's init exited (its pidfd is readable): reaps it and releases
 * what the guest used. The caller then exits 0, as Firecracker does when
 * the guest reboots. */
void fcsim_vm_guest_exited(struct fcsim_vm *vm);

/* The guest's pidfd, or -1 when no guest runs. */
int fcsim_vm_guest_pidfd(const struct fcsim_vm *vm);

/* Writes a metrics line (FlushMetrics, the periodic flush, exit). */
void fcsim_vm_flush_metrics(struct fcsim_vm *vm);

#endif
