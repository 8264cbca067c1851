/*
 * metrics_http.h - a tiny blocking HTTP/1.1 server for `--metrics-listen`:
 * one thread, one connection at a time, answers only GET /metrics and closes.
 * For a Prometheus (or node-exporter textfile collector, or curl) on the same
 * host that does not hold a client certificate. Not for untrusted networks.
 */
#ifndef HA_SVC_METRICS_HTTP_H
#define HA_SVC_METRICS_HTTP_H

#include <stdbool.h>

#include "core/err.h"

struct metrics_http;

/* Binds |spec| ("HOST:PORT", "[V6]:PORT"; port 0 picks one) and starts the
 * thread. A non-loopback address needs |allow_remote|. Returns 0, or -errno
 * with |err| naming the address. */
int metrics_http_start(const char *spec, bool allow_remote, struct metrics_http **ret, struct ha_err *err);
/* The bound port. */
int metrics_http_port(const struct metrics_http *h);
/* Stops and joins the thread, closes the socket. NULL: no-op. */
void metrics_http_stop(struct metrics_http *h);

#endif
