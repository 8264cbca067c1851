/*
 * daemon.h - the one struct that holds the running agent (built in
 * ha_daemon_main and passed explicitly; there is no global daemon).
 */
#ifndef HA_SVC_DAEMON_H
#define HA_SVC_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hostagent/v1/hostagent.pb-c.h"
#include "rpc/server.h"
#include "service/config.h"

#include "sandbox/backend.h"
#include "sandbox/sbx.h"

struct svc_health;
struct svc_hostagent;
struct svc_metrics;
struct ha_backend;

struct ha_daemon {
        struct ha_config cfg;
        rpc_server *srv;
        struct svc_health *health;
        struct svc_hostagent *api;
        struct svc_metrics *metrics;        /* GET /metrics, --metrics-listen */
        sbx_mgr *mgr;                       /* NULL: no runtime configured */
        struct ha_backend *backend;         /* the real one, when used */
        void *test_backend;                 /* a test daemon's, when used */
        pthread_t recover_thread;
        bool recovering;
        uint64_t started_ms;
        int sigfd;
};

/* What a test daemon may change: extra services, and its own backend. */
struct ha_daemon_hooks {
        int (*register_extra)(struct ha_daemon *d, rpc_server *srv);
        /* Returns 1 and fills *ret when it provides the backend, 0 to use the
         * real one, or -errno. */
        int (*backend_new)(struct ha_daemon *d, const struct sbx_backend **ret, struct ha_err *err);
        void (*backend_attach)(struct ha_daemon *d, sbx_mgr *m);
        void (*backend_free)(struct ha_daemon *d);
};

/* Runs the agent; returns the process exit status. |hooks| may be NULL. */
int ha_daemon_main(int argc, char **argv, const struct ha_daemon_hooks *hooks);

/* "firecracker" or "simulator". */
const char *ha_daemon_runtime(struct ha_daemon *d);
void ha_daemon_capacity(struct ha_daemon *d, Hostagent__V1__Capacity *cap, Hostagent__V1__Capacity *use);

#endif
