/*
 * metrics_agent.c - the agent's instruments that other modules feed with one
 * call each (see the end of metrics.h): RPCs, HTTP/2 connections and streams,
 * TLS handshake failures, exec streams. The families are registered in the
 * global registry on first use, so the scrape shows them from the start only
 * if ha_metrics_agent_families() ran; metrics_svc calls it at start-up.
 *
 * None of these may fail the caller: an allocation failure loses one sample.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/metrics.h"

/* Seconds: unary calls take ms; streams and creates take seconds to minutes. */
static const double rpc_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                      0.5,   1,      2.5,   5,    10,    30,    60,  300 };

static const struct ha_metric_def defs[] = {
#define RPC_CALLS 0
        { "hostagent_rpc_calls_total", "RPCs finished, by service, method, protocol and gRPC status code.",
          HA_METRIC_COUNTER, { "service", "method", "protocol", "code" }, NULL, 0 },
#define RPC_SECONDS 1
        { "hostagent_rpc_call_duration_seconds", "RPC duration from request headers to the final status.",
          HA_METRIC_HISTOGRAM, { "service", "method", "protocol" }, rpc_buckets,
          sizeof rpc_buckets / sizeof rpc_buckets[0] },
#define H2_CONNS 2
        { "hostagent_http2_connections", "Open HTTP/2 connections (TLS ones count from accept).",
          HA_METRIC_GAUGE, { "transport" }, NULL, 0 },
#define H2_CONNS_TOTAL 3
        { "hostagent_http2_connections_accepted_total", "HTTP/2 connections accepted.", HA_METRIC_COUNTER,
          { "transport" }, NULL, 0 },
#define H2_STREAMS 4
        { "hostagent_http2_streams", "Open HTTP/2 streams.", HA_METRIC_GAUGE, { NULL }, NULL, 0 },
#define H2_STREAMS_TOTAL 5
        { "hostagent_http2_streams_opened_total", "HTTP/2 streams opened.", HA_METRIC_COUNTER, { NULL }, NULL, 0 },
#define TLS_FAIL 6
        { "hostagent_tls_handshake_failures_total", "TLS handshakes that failed, by reason.",
          HA_METRIC_COUNTER, { "reason" }, NULL, 0 },
#define EXEC_OPEN 7
        { "hostagent_exec_streams", "Exec output streams being relayed now.", HA_METRIC_GAUGE, { NULL },
          NULL, 0 },
#define EXEC_TOTAL 8
        { "hostagent_exec_streams_started_total", "Exec output streams started.", HA_METRIC_COUNTER, { NULL }, NULL,
          0 },
#define EXEC_BYTES 9
        { "hostagent_exec_output_bytes_total", "Command output bytes relayed to clients, by stream.",
          HA_METRIC_COUNTER, { "stream" }, NULL, 0 },
};
#define NDEFS (sizeof defs / sizeof defs[0])

static pthread_once_t once = PTHREAD_ONCE_INIT;
static ha_metric *fam[NDEFS];

static void families_init(void)
{
        ha_metrics *r = ha_metrics_global();
        for (size_t i = 0; r && i < NDEFS; i++)
                if (ha_metrics_register(r, &defs[i], &fam[i]) < 0)
                        fam[i] = NULL;
}

static ha_metric *family(size_t i)
{
        pthread_once(&once, families_init);
        return fam[i];
}

void ha_metrics_rpc_observe(const char *path, const char *protocol, const char *code, double seconds)
{
        /* "/hostagent.v1.HostAgentService/CreateSandbox" -> service, method */
        char service[128] = "", method[128] = "";
        const char *p = path && *path == '/' ? path + 1 : (path ? path : "");
        const char *slash = strchr(p, '/');
        if (slash) {
                size_t n = (size_t)(slash - p) < sizeof service - 1 ? (size_t)(slash - p) : sizeof service - 1;
                memcpy(service, p, n);
                service[n] = '\0';
                snprintf(method, sizeof method, "%s", slash + 1);
        } else {
                snprintf(method, sizeof method, "%s", p);
        }
        const char *proto = protocol ? protocol : "";
        const char *v4[] = { service, method, proto, code ? code : "" };
        ha_metric_add(family(RPC_CALLS), v4, 1);
        ha_metric_observe(family(RPC_SECONDS), v4, seconds < 0 ? 0 : seconds);
}

void ha_metrics_http2_conn(const char *transport, int delta)
{
        const char *v[] = { transport ? transport : "" };
        ha_metric_add(family(H2_CONNS), v, delta);
        if (delta > 0)
                ha_metric_add(family(H2_CONNS_TOTAL), v, delta);
}

void ha_metrics_http2_streams(int delta)
{
        ha_metric_add(family(H2_STREAMS), NULL, delta);
        if (delta > 0)
                ha_metric_add(family(H2_STREAMS_TOTAL), NULL, delta);
}

const char *ha_metrics_tls_reason(const char *why)
{
        static const struct {
                const char *needle, *reason;
        } table[] = {
                { "timeout", "timeout" },
                { "ALPN", "no_alpn" },
                { "did not return a certificate", "no_client_certificate" },
                { "client certificate:", "bad_client_certificate" },
                { "certificate", "bad_client_certificate" },
                { "wrong version number", "not_tls" },
                { "http request", "not_tls" },
                { "unsupported protocol", "version_mismatch" },
                { "version too low", "version_mismatch" },
                { "no shared cipher", "no_shared_cipher" },
                { "closed during handshake", "eof" },
                { "unexpected eof", "eof" },
        };
        for (size_t i = 0; why && i < sizeof table / sizeof table[0]; i++)
                if (strstr(why, table[i].needle))
                        return table[i].reason;
        return "other";
}

void ha_metrics_tls_handshake_failed(const char *why)
{
        const char *v[] = { ha_metrics_tls_reason(why) };
        ha_metric_add(family(TLS_FAIL), v, 1);
}

void ha_metrics_exec_streams(int delta)
{
        ha_metric_add(family(EXEC_OPEN), NULL, delta);
        if (delta > 0)
                ha_metric_add(family(EXEC_TOTAL), NULL, delta);
}

void ha_metrics_exec_bytes(const char *stream, size_t n)
{
        const char *v[] = { stream ? stream : "" };
        ha_metric_add(family(EXEC_BYTES), v, (double)n);
}

void ha_metrics_agent_families(void)
{
        pthread_once(&once, families_init);
}
