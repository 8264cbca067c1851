/*
 * cors.c - CORS for browser clients (gRPC-Web and Connect): preflight
 * answers and the headers that let a page read grpc-status and friends.
 * Off unless origins are configured; "*" allows any origin.
 */
#include <stdio.h>
#include <string.h>

#include "rpc/rpc_int.h"

#define CORS_ALLOW_HEADERS                                                                         \
        "content-type,x-grpc-web,x-user-agent,grpc-timeout,grpc-accept-encoding,grpc-encoding,"   \
        "connect-protocol-version,connect-timeout-ms,connect-content-encoding,"                   \
        "connect-accept-encoding,authorization"
#define CORS_EXPOSE_HEADERS                                                                        \
        "grpc-status,grpc-message,grpc-status-details-bin,grpc-encoding,grpc-accept-encoding,"    \
        "content-encoding,connect-content-encoding"

bool rpc_cors_origin_allowed(rpc_server *s, const char *origin)
{
        const char *list = s->cfg.cors_origins;
        if (!list || !origin)
                return false;
        size_t ol = strlen(origin);
        for (const char *p = list; *p;) {
                while (*p == ',' || *p == ' ')
                        p++;
                size_t n = strcspn(p, ",");
                if ((n == 1 && *p == '*') || (n == ol && strncmp(p, origin, n) == 0))
                        return true;
                p += n;
        }
        return false;
}

int rpc_cors_response_headers(struct rpc_call *c, struct rpc_nvlist *nv, const char *origin)
{
        if (!rpc_cors_origin_allowed(c->srv, origin))
                return 0;
        int r = rpc_nvlist_add_str(nv, "access-control-allow-origin", origin);
        if (r == 0)
                r = rpc_nvlist_add_str(nv, "access-control-expose-headers", CORS_EXPOSE_HEADERS);
        if (r == 0)
                r = rpc_nvlist_add_str(nv, "vary", "origin");
        return r;
}

void rpc_cors_preflight(struct rpc_call *c)
{
        const char *origin = rpc_call_header(c, "origin");
        bool ok = rpc_cors_origin_allowed(c->srv, origin);
        nghttp2_nv nv[6];
        size_t n = 0;
#define NV(k, v) nv[n++] = (nghttp2_nv){ (uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE }
        NV(":status", ok ? "204" : "403");
        if (ok) {
                NV("access-control-allow-origin", origin);
                NV("access-control-allow-methods", "POST, GET, OPTIONS");
                NV("access-control-allow-headers", CORS_ALLOW_HEADERS);
                NV("access-control-max-age", "7200");
                NV("vary", "origin");
        }
#undef NV
        pthread_mutex_lock(&c->lock);
        rpc_call_set_status_locked(c, RPC_OK, NULL);
        pthread_mutex_unlock(&c->lock);
        c->response_started = true;
        c->trailers_sent = true;
        nghttp2_submit_response(c->conn->h2, c->stream_id, nv, n, NULL);
        rpc_conn_mark_dirty(c->conn);
}
