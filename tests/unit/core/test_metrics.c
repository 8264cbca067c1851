/*
 * test_metrics.c - the Prometheus registry: registration rules, counters,
 * gauges, histograms, label escaping, the series cap, collectors, and
 * concurrent updates summing exactly.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

static char *render(ha_metrics *r)
{
        char *t = NULL;
        size_t n = 0;
        cr_assert_eq(ha_metrics_render(r, &t, &n), 0);
        cr_assert_eq(strlen(t), n);
        return t;
}

Test(metrics, counter_gauge_render)
{
        ha_metrics *r;
        cr_assert_eq(ha_metrics_new(&r), 0);
        ha_metric *c, *g, *u;
        struct ha_metric_def cd = { "t_requests_total", "Requests.", HA_METRIC_COUNTER, { "method", "code" }, NULL, 0 };
        struct ha_metric_def gd = { "t_temp", "Temp\\erature\nsecond line", HA_METRIC_GAUGE, { NULL }, NULL, 0 };
        struct ha_metric_def ud = { "t_untouched_total", "Never touched.", HA_METRIC_COUNTER, { NULL }, NULL, 0 };
        cr_assert_eq(ha_metrics_register(r, &cd, &c), 0);
        cr_assert_eq(ha_metrics_register(r, &gd, &g), 0);
        cr_assert_eq(ha_metrics_register(r, &ud, &u), 0);
        const char *v1[] = { "Get", "OK" }, *v2[] = { "Get", "NOT_FOUND" };
        cr_assert_eq(ha_metric_add(c, v1, 1), 0);
        cr_assert_eq(ha_metric_add(c, v1, 2), 0);
        cr_assert_eq(ha_metric_add(c, v2, 1), 0);
        cr_assert_eq(ha_metric_add(c, v1, -1), -EINVAL, "counters only go up");
        cr_assert_eq(ha_metric_set(c, v1, 1), -EINVAL, "a counter set never goes down");
        cr_assert_eq(ha_metric_set(c, v2, 1), 0, "a counter may mirror a count kept elsewhere");
        cr_assert_eq(ha_metric_set(g, NULL, 2.5), 0);
        cr_assert_eq(ha_metric_add(g, NULL, -1), 0);
        double v;
        cr_assert_eq(ha_metric_get(c, v1, &v), 0);
        cr_assert_float_eq(v, 3.0, 1e-9);
        cr_assert_eq(ha_metric_get(g, NULL, &v), 0);
        cr_assert_float_eq(v, 1.5, 1e-9);
        char *t = render(r);
        cr_assert(strstr(t, "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n"), "%s", t);
        cr_assert(strstr(t, "t_requests_total{method=\"Get\",code=\"OK\"} 3\n"), "%s", t);
        cr_assert(strstr(t, "t_requests_total{method=\"Get\",code=\"NOT_FOUND\"} 1\n"), "%s", t);
        cr_assert(strstr(t, "# HELP t_temp Temp\\\\erature\\nsecond line\n# TYPE t_temp gauge\nt_temp 1.5\n"), "%s", t);
        cr_assert(strstr(t, "t_untouched_total 0\n"), "unlabelled families show 0 at once: %s", t);
        free(t);
        ha_metrics_free(r);
}

Test(metrics, registration_rules)
{
        ha_metrics *r;
        cr_assert_eq(ha_metrics_new(&r), 0);
        ha_metric *a, *b;
        static const double bk[] = { 1, 2 }, bad_bk[] = { 2, 1 };
        struct ha_metric_def d = { "t_x_total", "x", HA_METRIC_COUNTER, { "a" }, NULL, 0 };
        cr_assert_eq(ha_metrics_register(r, &d, &a), 0);
        cr_assert_eq(ha_metrics_register(r, &d, &b), 0);
        cr_assert_eq(a, b, "same shape: the same family");
        struct ha_metric_def other = { "t_x_total", "x", HA_METRIC_GAUGE, { "a" }, NULL, 0 };
        cr_assert_eq(ha_metrics_register(r, &other, &b), -EEXIST);
        struct ha_metric_def badname = { "1abc", "x", HA_METRIC_COUNTER, { NULL }, NULL, 0 };
        cr_assert_eq(ha_metrics_register(r, &badname, &b), -EINVAL);
        struct ha_metric_def badlabel = { "t_y", "x", HA_METRIC_GAUGE, { "__reserved" }, NULL, 0 };
        cr_assert_eq(ha_metrics_register(r, &badlabel, &b), -EINVAL);
        struct ha_metric_def dup = { "t_y", "x", HA_METRIC_GAUGE, { "a", "a" }, NULL, 0 };
        cr_assert_eq(ha_metrics_register(r, &dup, &b), -EINVAL);
        struct ha_metric_def le = { "t_h", "x", HA_METRIC_HISTOGRAM, { "le" }, bk, 2 };
        cr_assert_eq(ha_metrics_register(r, &le, &b), -EINVAL);
        struct ha_metric_def unsorted = { "t_h", "x", HA_METRIC_HISTOGRAM, { NULL }, bad_bk, 2 };
        cr_assert_eq(ha_metrics_register(r, &unsorted, &b), -EINVAL);
        struct ha_metric_def nobk = { "t_h", "x", HA_METRIC_HISTOGRAM, { NULL }, NULL, 0 };
        cr_assert_eq(ha_metrics_register(r, &nobk, &b), -EINVAL);
        ha_metrics_free(r);
}

Test(metrics, histogram_buckets_cumulative)
{
        ha_metrics *r;
        cr_assert_eq(ha_metrics_new(&r), 0);
        static const double bk[] = { 0.1, 1, 10 };
        struct ha_metric_def d = { "t_latency_seconds", "lat", HA_METRIC_HISTOGRAM, { "op" }, bk, 3 };
        ha_metric *h;
        cr_assert_eq(ha_metrics_register(r, &d, &h), 0);
        const char *op[] = { "create" };
        double obs[] = { 0.05, 0.1, 0.5, 5, 50 };
        for (size_t i = 0; i < 5; i++)
                cr_assert_eq(ha_metric_observe(h, op, obs[i]), 0);
        cr_assert_eq(ha_metric_add(h, op, 1), -EINVAL);
        char *t = render(r);
        cr_assert(strstr(t, "# TYPE t_latency_seconds histogram\n"), "%s", t);
        cr_assert(strstr(t, "t_latency_seconds_bucket{op=\"create\",le=\"0.1\"} 2\n"), "le is inclusive: %s", t);
        cr_assert(strstr(t, "t_latency_seconds_bucket{op=\"create\",le=\"1\"} 3\n"), "%s", t);
        cr_assert(strstr(t, "t_latency_seconds_bucket{op=\"create\",le=\"10\"} 4\n"), "%s", t);
        cr_assert(strstr(t, "t_latency_seconds_bucket{op=\"create\",le=\"+Inf\"} 5\n"), "%s", t);
        cr_assert(strstr(t, "t_latency_seconds_sum{op=\"create\"} 55.65\n"), "%s", t);
        cr_assert(strstr(t, "t_latency_seconds_count{op=\"create\"} 5\n"), "%s", t);
        free(t);
        ha_metrics_free(r);
}

Test(metrics, label_values_escaped_and_truncated)
{
        ha_metrics *r;
        cr_assert_eq(ha_metrics_new(&r), 0);
        struct ha_metric_def d = { "t_e_total", "e", HA_METRIC_COUNTER, { "v" }, NULL, 0 };
        ha_metric *m;
        cr_assert_eq(ha_metrics_register(r, &d, &m), 0);
        const char *v[] = { "a\"b\\c\nd" };
        cr_assert_eq(ha_metric_add(m, v, 1), 0);
        char longv[400];
        memset(longv, 'x', sizeof longv - 1);
        longv[sizeof longv - 1] = '\0';
        const char *lv[] = { longv };
        cr_assert_eq(ha_metric_add(m, lv, 1), 0);
        cr_assert_eq(ha_metric_add(m, lv, 1), 0, "the truncated value finds its series again");
        double got;
        cr_assert_eq(ha_metric_get(m, lv, &got), 0);
        cr_assert_float_eq(got, 2.0, 1e-9);
        char *t = render(r);
        cr_assert(strstr(t, "t_e_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"), "%s", t);
        char want[HA_METRIC_MAX_VALUE + 32];
        snprintf(want, sizeof want, "{v=\"%.*s\"} 2\n", HA_METRIC_MAX_VALUE, longv);
        cr_assert(strstr(t, want), "%s", t);
        free(t);
        ha_metrics_free(r);
}

Test(metrics, series_cap_drops_and_counts)
{
        ha_metrics *r;
        cr_assert_eq(ha_metrics_new(&r), 0);
        struct ha_metric_def d = { "t_cap_total", "cap", HA_METRIC_COUNTER, { "id" }, NULL, 0 };
        ha_metric *m;
        cr_assert_eq(ha_metrics_register(r, &d, &m), 0);
        char id[32];
        const char *v[] = { id };
        for (int i = 0; i < HA_METRIC_MAX_SERIES; i++) {
                snprintf(id, sizeof id, "s%d", i);
                cr_assert_eq(ha_metric_add(m, v, 1), 0);
        }
        snprintf(id, sizeof id, "one-too-many");
        cr_assert_eq(ha_metric_add(m, v, 1), -ENOSPC);
        snprintf(id, sizeof id, "s7");
        cr_assert_eq(ha_metric_add(m, v, 1), 0, "existing series still update");
        char *t = render(r);
        cr_assert(strstr(t, "hostagent_metrics_series_dropped_total 1\n"), "%s", t);
        free(t);
        ha_metrics_free(r);
}

struct coll {
        ha_metric *g;
        int calls;
};

static void collect(void *ctx)
{
        struct coll *c = ctx;
        c->calls++;
        ha_metric_set(c->g, NULL, c->calls * 10);
}

Test(metrics, collectors_run_before_render_and_go_away)
{
        ha_metrics *r;
        cr_assert_eq(ha_metrics_new(&r), 0);
        struct ha_metric_def d = { "t_rss_bytes", "rss", HA_METRIC_GAUGE, { NULL }, NULL, 0 };
        struct coll c = { 0 };
        cr_assert_eq(ha_metrics_register(r, &d, &c.g), 0);
        cr_assert_eq(ha_metrics_add_collector(r, collect, &c), 0);
        char *t = render(r);
        cr_assert(strstr(t, "t_rss_bytes 10\n"), "%s", t);
        free(t);
        ha_metrics_remove_collector(r, collect, &c);
        t = render(r);
        cr_assert_eq(c.calls, 1);
        cr_assert(strstr(t, "t_rss_bytes 10\n"), "%s", t);
        free(t);
        ha_metric_clear(c.g);
        double v;
        cr_assert_eq(ha_metric_get(c.g, NULL, &v), -ENOENT);
        ha_metrics_free(r);
}

#define THREADS 4
#define ITERS 20000

static void *hammer(void *arg)
{
        ha_metric **m = arg;
        const char *v[] = { "x" };
        for (int i = 0; i < ITERS; i++) {
                ha_metric_add(m[0], v, 1);
                ha_metric_observe(m[1], NULL, 0.5);
        }
        return NULL;
}

Test(metrics, concurrent_updates_sum_exactly)
{
        ha_metrics *r;
        cr_assert_eq(ha_metrics_new(&r), 0);
        static const double bk[] = { 1 };
        struct ha_metric_def cd = { "t_c_total", "c", HA_METRIC_COUNTER, { "k" }, NULL, 0 };
        struct ha_metric_def hd = { "t_h_seconds", "h", HA_METRIC_HISTOGRAM, { NULL }, bk, 1 };
        ha_metric *m[2];
        cr_assert_eq(ha_metrics_register(r, &cd, &m[0]), 0);
        cr_assert_eq(ha_metrics_register(r, &hd, &m[1]), 0);
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++)
                pthread_create(&t[i], NULL, hammer, m);
        for (int i = 0; i < 20; i++) {
                char *txt = render(r);
                free(txt);
        }
        for (int i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
        double v;
        const char *k[] = { "x" };
        cr_assert_eq(ha_metric_get(m[0], k, &v), 0);
        cr_assert_float_eq(v, THREADS * ITERS, 1e-6);
        cr_assert_eq(ha_metric_get(m[1], NULL, &v), 0);
        cr_assert_float_eq(v, THREADS * ITERS, 1e-6);
        ha_metrics_free(r);
}

Test(metrics, agent_instruments_use_the_global_registry)
{
        ha_metrics_agent_families();
        ha_metrics_rpc_observe("/hostagent.v1.HostAgentService/GetHostInfo", "grpc", "OK", 0.002);
        ha_metrics_http2_conn("tls", 1);
        ha_metrics_http2_streams(2);
        ha_metrics_http2_streams(-1);
        ha_metrics_tls_handshake_failed("error:0A000126:SSL routines::unexpected eof while reading");
        ha_metrics_exec_bytes("stdout", 42);
        char *t = render(ha_metrics_global());
        cr_assert(strstr(t, "hostagent_rpc_calls_total{service=\"hostagent.v1.HostAgentService\","
                            "method=\"GetHostInfo\",protocol=\"grpc\",code=\"OK\"} 1\n"), "%s", t);
        cr_assert(strstr(t, "hostagent_rpc_call_duration_seconds_bucket{service=\"hostagent.v1.HostAgentService\","
                            "method=\"GetHostInfo\",protocol=\"grpc\",le=\"0.0025\"} 1\n"), "%s", t);
        cr_assert(strstr(t, "hostagent_http2_connections{transport=\"tls\"} 1\n"), "%s", t);
        cr_assert(strstr(t, "hostagent_http2_streams 1\n"), "%s", t);
        cr_assert(strstr(t, "hostagent_http2_streams_opened_total 2\n"), "%s", t);
        cr_assert(strstr(t, "hostagent_tls_handshake_failures_total{reason=\"eof\"} 1\n"), "%s", t);
        cr_assert(strstr(t, "hostagent_exec_output_bytes_total{stream=\"stdout\"} 42\n"), "%s", t);
        cr_assert(strstr(t, "hostagent_exec_streams 0\n"), "registered families show at once: %s", t);
        free(t);
}

Test(metrics, tls_reasons_are_a_small_fixed_set)
{
        cr_assert_str_eq(ha_metrics_tls_reason("timeout"), "timeout");
        cr_assert_str_eq(ha_metrics_tls_reason("no ALPN h2"), "no_alpn");
        cr_assert_str_eq(ha_metrics_tls_reason("client certificate: certificate has expired"),
                         "bad_client_certificate");
        cr_assert_str_eq(ha_metrics_tls_reason("error:0A0000C7:SSL routines::peer did not return a certificate"),
                         "no_client_certificate");
        cr_assert_str_eq(ha_metrics_tls_reason("error:0A00009C:SSL routines::http request"), "not_tls");
        cr_assert_str_eq(ha_metrics_tls_reason("connection closed during handshake"), "eof");
        cr_assert_str_eq(ha_metrics_tls_reason("something new"), "other");
        cr_assert_str_eq(ha_metrics_tls_reason(NULL), "other");
}
