/*
 * daemon.h - the one struct that holds the running agent (built in
 * ha_daemon_main and passed explicitly; there is no global daemon).
 */
#ifndef HA_SVC_DAEMON_H
#define HA_SVC_DAEMON_H

#include <stdint.h>

#include "hostagent/v1/hostagent.pb-c.h"
#include "rpc/server.h"
#include "service/config.h"

struct svc_health;
struct svc_hostagent;

struct ha_daemon {
        struct ha_config cfg;
        rpc_server *srv;
        struct svc_health *health;
        struct svc_hostagent *api;
        uint64_t started_ms;
        int sigfd;
};

/* Extra registrations (the test daemon adds its test service). */
typedef int (*ha_register_fn)(struct ha_daemon *d, rpc_server *srv);

/* Runs the agent; returns the process exit status. */
int ha_daemon_main(int argc, char **argv, ha_register_fn extra);

/* "firecracker" or "simulator". */
const char *ha_daemon_runtime(struct ha_daemon *d);
void ha_daemon_capacity(struct ha_daemon *d, Hostagent__V1__Capacity *cap, Hostagent__V1__Capacity *use);

#endif
