/*
 * metrics.h - a small thread-safe Prometheus registry: counters, gauges and
 * histograms (fixed buckets), each a family with a fixed list of label names,
 * rendered in the text exposition format 0.0.4.
 *
 * A family holds one series per distinct tuple of label values. The number
 * of series per family is capped (HA_METRIC_MAX_SERIES): past the cap new
 * tuples are dropped and counted in hostagent_metrics_dropped_total, so a
 * label fed by untrusted input can never grow memory without bound.
 *
 * Collectors are callbacks run at the start of every render (outside the
 * registry lock) to refresh gauges that are cheaper to read than to track
 * (process RSS, sandboxes by state). They must be quick and non-blocking:
 * a render may run on the RPC loop thread.
 *
 * One process-wide registry, ha_metrics_global(), is where the agent's
 * instruments live (like the log settings, it is one of the few globals).
 * The "agent instruments" at the end of this header are thin wrappers over it
 * for call sites in other modules: one call each, no handles to keep.
 */
#ifndef HA_METRICS_H
#define HA_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define HA_METRIC_MAX_LABELS 4
#define HA_METRIC_MAX_BUCKETS 24
/* Series per family: bounds memory when a label value comes from input. */
#define HA_METRIC_MAX_SERIES 1024
/* Label values longer than this are truncated (bytes). */
#define HA_METRIC_MAX_VALUE 128
/* Rendered text at most: a scrape answer is never larger. */
#define HA_METRICS_MAX_TEXT (16u << 20)

enum ha_metric_type { HA_METRIC_COUNTER, HA_METRIC_GAUGE, HA_METRIC_HISTOGRAM };

/* A family's definition; copied by ha_metrics_register(). */
struct ha_metric_def {
        const char *name;                        /* [a-zA-Z_:][a-zA-Z0-9_:]* */
        const char *help;
        enum ha_metric_type type;
        const char *labels[HA_METRIC_MAX_LABELS]; /* names, NULL-terminated if fewer */
        const double *buckets;                   /* histograms: increasing upper bounds (+Inf implied) */
        size_t nbuckets;                         /* <= HA_METRIC_MAX_BUCKETS */
};

typedef struct ha_metrics ha_metrics;
typedef struct ha_metric ha_metric;

/* Returns 0 or -ENOMEM. */
int ha_metrics_new(ha_metrics **ret);
/* Frees the registry and its families. Collectors must be gone. NULL: no-op. */
void ha_metrics_free(ha_metrics *r);
/* The process-wide registry (created on first use; never freed). NULL only
 * when the first allocation failed. */
ha_metrics *ha_metrics_global(void);

/*
 * Adds a family, or finds the one already registered under that name when
 * its type and label names match (so two modules may share a family).
 * Returns 0, -EINVAL (bad name, label or buckets), -EEXIST (same name,
 * another shape) or -ENOMEM. The family lives as long as the registry.
 */
int ha_metrics_register(ha_metrics *r, const struct ha_metric_def *def, ha_metric **ret);

/*
 * Updates the series for |values| (as many strings as the family has labels;
 * NULL when it has none). Counters: add |v| >= 0, or set to mirror a count
 * kept elsewhere (never lower than the current value). Gauges: add (may be
 * negative) or set. Histograms: observe. Returns 0, -EINVAL (wrong kind,
 * negative counter step, a counter set lower, NaN), -ENOSPC (series cap
 * reached: dropped and counted) or -ENOMEM.
 */
int ha_metric_add(ha_metric *m, const char *const *values, double v);
int ha_metric_set(ha_metric *m, const char *const *values, double v);
int ha_metric_observe(ha_metric *m, const char *const *values, double v);
/* The current value of a counter/gauge series, or the count of a histogram
 * series; -ENOENT when the series does not exist (tests, collectors). */
int ha_metric_get(ha_metric *m, const char *const *values, double *ret);
/* Drops every series of a gauge family (a collector that re-sets them all
 * each render, so series that went away disappear). */
void ha_metric_clear(ha_metric *m);

/* Collectors: |fn| runs at the start of each render. remove waits for a
 * running |fn| to return, so |ctx| may be freed afterwards. add returns 0,
 * -ENOSPC (at most 16) or -EINVAL. */
int ha_metrics_add_collector(ha_metrics *r, void (*fn)(void *ctx), void *ctx);
void ha_metrics_remove_collector(ha_metrics *r, void (*fn)(void *ctx), void *ctx);

/* Runs the collectors, then renders every family (in registration order).
 * Returns 0 with a malloc'd NUL-terminated text in |ret_text| (length in
 * |ret_len|), or -ENOMEM / -EMSGSIZE (over HA_METRICS_MAX_TEXT). */
int ha_metrics_render(ha_metrics *r, char **ret_text, size_t *ret_len);

/* The Content-Type of the rendered text. */
#define HA_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* --- agent instruments (global registry; never fail, never block long) --- */

/* One RPC ended: |path| "/pkg.Service/Method", protocol and gRPC code name. */
void ha_metrics_rpc_observe(const char *path, const char *protocol, const char *code, double seconds);
/* HTTP/2 connection opened (+1) or closed (-1); |transport| "tls" or "h2c". */
void ha_metrics_http2_conn(const char *transport, int delta);
/* HTTP/2 streams opened (+n) or closed (-n). */
void ha_metrics_http2_streams(int delta);
/* A TLS handshake failed; |why| is the logged text (classified into a small
 * fixed set of reasons, so it may be anything). */
void ha_metrics_tls_handshake_failed(const char *why);
/* An exec output stream started (+1) or ended (-1). */
void ha_metrics_exec_streams(int delta);
/* |n| bytes of command output relayed; |stream| "stdout" or "stderr". */
void ha_metrics_exec_bytes(const char *stream, size_t n);
/* Registers the families above now (so a scrape lists them before their
 * first sample). Idempotent. */
void ha_metrics_agent_families(void);
/* The reason label ha_metrics_tls_handshake_failed() files |why| under. */
const char *ha_metrics_tls_reason(const char *why);

#endif
