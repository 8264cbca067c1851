/*
 * server.h - the RPC server: listeners, the I/O loop, the worker pool and the
 * method table. One loop thread owns every connection and nghttp2 session;
 * handlers run on the worker pool (see rpc.h).
 */
#ifndef HA_RPC_SERVER_H
#define HA_RPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "rpc/limits.h"
#include "rpc/rpc.h"

/* Decides whether |identity| (NULL when the client sent no certificate)
 * may call |m|. Returns true to allow; on false fills |why|. */
typedef bool (*rpc_authorize_fn)(void *ctx, const char *identity, const struct rpc_method *m,
                                 char *why, size_t why_len);

struct rpc_server_config {
        const char *listen;        /* TLS "host:port"; NULL: none */
        const char *h2c_listen;    /* cleartext "host:port" or "unix:PATH"; NULL: none */
        const char *tls_cert;
        const char *tls_key;
        const char *client_ca;     /* require and verify client certificates */
        unsigned workers;          /* threads kept; 0: number of CPUs */
        unsigned max_workers;      /* pool may grow to this; 0: 256 */
        struct rpc_limits limits;
        const char *cors_origins;  /* gRPC-Web/Connect CORS: "*", or comma list; NULL: off */
        bool connect_require_version; /* reject Connect POSTs without connect-protocol-version */
        rpc_authorize_fn authorize;
        void *authorize_ctx;
};

/* Builds the server and binds its listeners. Returns NULL with |err| filled. */
rpc_server *rpc_server_new(const struct rpc_server_config *cfg, struct ha_err *err);
/* Registers |m| (not copied: it must outlive the server). Before run only.
 * Returns 0, -EEXIST or -ENOMEM. */
int rpc_server_add_method(rpc_server *s, const struct rpc_method *m);
/* Finds a method by path, or NULL. */
const struct rpc_method *rpc_server_find_method(rpc_server *s, const char *path);
/* Calls |fn| for every registered method. */
void rpc_server_foreach_method(rpc_server *s, void (*fn)(void *ctx, const struct rpc_method *m),
                               void *ctx);

/* Adds a readable fd that the loop watches; |cb| runs on the loop thread.
 * For signalfd and similar. Returns 0 or -errno. */
int rpc_server_watch_fd(rpc_server *s, int fd, void (*cb)(void *ctx, int fd), void *ctx);

/* A plain HTTP GET endpoint beside the RPCs (e.g. "/metrics" for a
 * Prometheus scrape). |fn| runs on the loop thread, so it must not block; it
 * returns the HTTP status and, for 200, a malloc'd body (taken over, freed by
 * the server) and its content type (a static string). |identity| is the
 * verified client certificate identity, NULL without one. */
typedef int (*rpc_http_get_fn)(void *ctx, const char *identity, char **ret_body, size_t *ret_len,
                               const char **ret_content_type);
/* Registers |fn| for GETs of exactly |path| (not copied: a static string).
 * Before run only. Returns 0, -EEXIST or -ENOSPC (at most 4). */
int rpc_server_add_http_get(rpc_server *s, const char *path, rpc_http_get_fn fn, void *ctx);

/* Runs the loop until rpc_server_shutdown() completes. Returns 0. */
int rpc_server_run(rpc_server *s);
/* Graceful stop, from any thread: stop accepting, GOAWAY, let calls finish
 * within the grace period, then cancel what remains and return from run. */
void rpc_server_shutdown(rpc_server *s);
/* Calls |fn| when shutdown starts (health goes NOT_SERVING). */
void rpc_server_on_drain(rpc_server *s, void (*fn)(void *ctx), void *ctx);
/* Replaces certificate, key and CA (SIGHUP); open connections keep theirs.
 * Returns 0, or -errno with |err| filled and the old ones kept. */
int rpc_server_reload_tls(rpc_server *s, struct ha_err *err);
/* The bound TLS / h2c TCP port (useful with port 0), or 0. */
int rpc_server_tls_port(rpc_server *s);
int rpc_server_h2c_port(rpc_server *s);
void rpc_server_free(rpc_server *s);

#endif
