/*
 * health.c - see health.h. One status for the whole agent: its parts are
 * not separately useful to a load balancer. A generation counter under a
 * mutex + condition variable lets each Watch send exactly the changes.
 */
#include "service/health.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/time.h"
#include "grpc/health/v1/health.pb-c.h"

static const char *const services[] = { "", "hostagent.v1.HostAgentService", "grpc.health.v1.Health" };

struct svc_health {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool serving;           /* guarded_by: lock */
        bool shutdown;          /* guarded_by: lock */
        unsigned long gen;      /* guarded_by: lock */
        struct rpc_method methods[3];
};

static bool known(const char *s)
{
        for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
                if (strcmp(s, services[i]) == 0)
                        return true;
        return false;
}

svc_health *svc_health_new(void)
{
        svc_health *h = calloc(1, sizeof *h);
        if (!h)
                return NULL;
        pthread_mutex_init(&h->lock, NULL);
        ha_cond_init_monotonic(&h->cond);
        return h;
}

void svc_health_free(svc_health *h)
{
        if (!h)
                return;
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->lock);
        free(h);
}

void svc_health_set_serving(svc_health *h, bool serving)
{
        pthread_mutex_lock(&h->lock);
        if (h->serving != serving) {
                h->serving = serving;
                h->gen++;
                pthread_cond_broadcast(&h->cond);
        }
        pthread_mutex_unlock(&h->lock);
}

void svc_health_shutdown(svc_health *h)
{
        pthread_mutex_lock(&h->lock);
        h->serving = false;
        h->shutdown = true;
        h->gen++;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
}

static void check(rpc_call *c, void *ctx)
{
        svc_health *h = ctx;
        const Grpc__Health__V1__HealthCheckRequest *req = (const void *)rpc_call_request(c);
        if (!known(req->service)) {
                rpc_call_finish(c, RPC_NOT_FOUND, "unknown service \"%s\"", req->service);
                return;
        }
        Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        pthread_mutex_lock(&h->lock);
        resp.status = h->serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                                 : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
        pthread_mutex_unlock(&h->lock);
        rpc_call_send(c, &resp.base);
}

static void list(rpc_call *c, void *ctx)
{
        svc_health *h = ctx;
        Grpc__Health__V1__HealthListResponse resp = GRPC__HEALTH__V1__HEALTH_LIST_RESPONSE__INIT;
        enum { N = sizeof services / sizeof services[0] };
        Grpc__Health__V1__HealthListResponse__StatusesEntry entries[N], *ptrs[N];
        Grpc__Health__V1__HealthCheckResponse st = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        pthread_mutex_lock(&h->lock);
        st.status = h->serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
        pthread_mutex_unlock(&h->lock);
        for (size_t i = 0; i < N; i++) {
                grpc__health__v1__health_list_response__statuses_entry__init(&entries[i]);
                entries[i].key = (char *)services[i];
                entries[i].value = &st;
                ptrs[i] = &entries[i];
        }
        resp.n_statuses = N;
        resp.statuses = ptrs;
        rpc_call_send(c, &resp.base);
}

static void watch(rpc_call *c, void *ctx)
{
        svc_health *h = ctx;
        const Grpc__Health__V1__HealthCheckRequest *req = (const void *)rpc_call_request(c);
        bool is_known = known(req->service);
        unsigned long seen = (unsigned long)-1;
        for (;;) {
                Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
                pthread_mutex_lock(&h->lock);
                /* Wake at least every 100 ms to notice cancellation. */
                while (seen == h->gen && !h->shutdown && !rpc_call_cancelled(c)) {
                        struct timespec ts = ha_abs_monotonic(ha_now_ms() + 100);
                        pthread_cond_timedwait(&h->cond, &h->lock, &ts);
                }
                bool stop = h->shutdown && seen != (unsigned long)-1 && seen == h->gen;
                seen = h->gen;
                resp.status = !is_known ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
                              : h->serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                                           : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
                bool shut = h->shutdown;
                pthread_mutex_unlock(&h->lock);
                if (rpc_call_cancelled(c) || stop)
                        return;
                if (rpc_call_send(c, &resp.base) < 0)
                        return;
                if (shut) {
                        rpc_call_finish(c, RPC_UNAVAILABLE, "server is shutting down");
                        return;
                }
        }
}

int svc_health_register(svc_health *h, rpc_server *srv)
{
        h->methods[0] = (struct rpc_method){ "/grpc.health.v1.Health/Check", RPC_UNARY, RPC_INLINE,
                                             &grpc__health__v1__health_check_request__descriptor,
                                             &grpc__health__v1__health_check_response__descriptor, check, h, "reader" };
        h->methods[1] = (struct rpc_method){ "/grpc.health.v1.Health/Watch", RPC_SERVER_STREAM, 0,
                                             &grpc__health__v1__health_check_request__descriptor,
                                             &grpc__health__v1__health_check_response__descriptor, watch, h, "reader" };
        h->methods[2] = (struct rpc_method){ "/grpc.health.v1.Health/List", RPC_UNARY, RPC_INLINE,
                                             &grpc__health__v1__health_list_request__descriptor,
                                             &grpc__health__v1__health_list_response__descriptor, list, h, "reader" };
        for (int i = 0; i < 3; i++) {
                int r = rpc_server_add_method(srv, &h->methods[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}
