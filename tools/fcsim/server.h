/*
 * server.h - the API socket: bind (without removing anything: a leftover
 * file fails with "Address in use", as in Firecracker) and the main event
 * loop, which serves up to FCSIM_API_CONNS_MAX keep-alive connections and
 * watches the guest's pidfd and the signalfd.
 */
#ifndef FCSIM_SERVER_H
#define FCSIM_SERVER_H

#include <stddef.h>

#include "api.h"
#include "core/err.h"

/* micro-http's connection limit. */
#define FCSIM_API_CONNS_MAX 10
/* Firecracker flushes metrics periodically. */
#define FCSIM_METRICS_PERIOD_MS 60000

/* Binds and listens on |path|. Returns 0 with *ret_fd, or -errno with a
 * message (-EADDRINUSE when the path exists). */
int fcsim_server_bind(const char *path, int *ret_fd, struct ha_err *err);

/* Serves until the process must end. Returns the exit status (>= 0), or
 * -signo when the process should die of that signal (SIGTERM, SIGINT). */
int fcsim_server_run(struct fcsim_vm *vm, int listen_fd, int sig_fd, size_t body_max);

#endif
