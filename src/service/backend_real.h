/*
 * backend_real.h - the sandbox manager's backend over the real modules:
 * network slots (src/net), rootfs clones (src/rootfs), the Firecracker
 * driver (src/vm) and guest readiness through the exec client (src/exec).
 * The VMM is whatever --firecracker-bin names: Firecracker, or fcsim.
 */
#ifndef HA_SVC_BACKEND_REAL_H
#define HA_SVC_BACKEND_REAL_H

#include "core/err.h"
#include "sandbox/backend.h"
#include "service/config.h"

typedef struct ha_backend ha_backend;

/* Builds the backend (network pool not started yet). |cfg| is borrowed and
 * must outlive it. Returns 0 or -errno with |err| filled. */
int ha_backend_new(const struct ha_config *cfg, ha_backend **ret, struct ha_err *err);
const struct sbx_backend *ha_backend_table(ha_backend *b);
/* Tells the backend which manager to report VMM exits to. */
void ha_backend_attach(ha_backend *b, sbx_mgr *m);
/* Starts the slot pool's background refill (after recovery). */
int ha_backend_start(ha_backend *b);
struct net_pool_stats;
/* The slot pool's counters (for metrics); a short lock, safe on a loop thread. */
void ha_backend_pool_stats(ha_backend *b, struct net_pool_stats *ret);
void ha_backend_free(ha_backend *b);

#endif
