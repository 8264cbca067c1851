/*
 * health.h - grpc.health.v1.Health: Check and Watch for "" and the API
 * service. NOT_SERVING while the agent recovers state at start and while it
 * drains at shutdown; Watch streams every change.
 */
#ifndef HA_SVC_HEALTH_H
#define HA_SVC_HEALTH_H

#include <stdbool.h>

#include "rpc/server.h"

typedef struct svc_health svc_health;

svc_health *svc_health_new(void);
void svc_health_free(svc_health *h);
/* Sets every known service to SERVING (true) or NOT_SERVING (false) and
 * wakes watchers. Thread-safe. */
void svc_health_set_serving(svc_health *h, bool serving);
/* Wakes watchers so they end (shutdown). */
void svc_health_shutdown(svc_health *h);
int svc_health_register(svc_health *h, rpc_server *srv);

#endif
