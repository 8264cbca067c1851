/*
 * metrics_svc.h - the agent's Prometheus metrics: GET /metrics on the RPC
 * listeners, an optional plain HTTP/1.1 listener (--metrics-listen), and the
 * metrics only the service layer can see (sandboxes by state, capacity and
 * usage, lifecycle events, the process itself).
 *
 * RPC, HTTP/2, TLS and exec metrics are fed where they happen through the
 * instruments of core/metrics.h; this module adds the rest to the same
 * global registry and serves it.
 */
#ifndef HA_SVC_METRICS_H
#define HA_SVC_METRICS_H

#include "core/err.h"

struct ha_daemon;
struct svc_metrics;

/* Registers the families, the collector and GET /metrics on d->srv. Before
 * the server runs. Returns NULL on allocation failure. */
struct svc_metrics *svc_metrics_new(struct ha_daemon *d);
/* After the sandbox manager exists (d->mgr may be NULL): starts the event
 * counter thread and, with --metrics-listen, the HTTP/1.1 listener. Returns 0,
 * or -errno with |err| naming the address (bind failure, not loopback
 * without --insecure). */
int svc_metrics_start(struct svc_metrics *m, struct ha_err *err);
struct sbx_backend;
/* Returns a copy of |in| whose create phases (net_acquire, rootfs_clone,
 * vmm_start, vmm_configure, vmm_boot, vmm_wait_ready) also time themselves
 * into hostagent_sandbox_create_phase_seconds{phase} (and count failures).
 * Call once, before the manager starts; the copy lives as long as the
 * process (one manager per process). |in| must outlive it. NULL m or in:
 * returns |in| unchanged. */
const struct sbx_backend *svc_metrics_wrap_backend(struct svc_metrics *m, const struct sbx_backend *in);
/* The bound --metrics-listen port, or 0. */
int svc_metrics_port(const struct svc_metrics *m);
/* Stops the threads and removes the collector. Before d->mgr is freed.
 * NULL: no-op. */
void svc_metrics_free(struct svc_metrics *m);

#endif
