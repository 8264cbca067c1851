/*
 * metrics_svc.c - see metrics_svc.h.
 *
 * Three sources:
 * - a collector, run at each scrape: sbx_mgr_host_info() (in-memory copies
 *   under short locks, safe on the loop thread) and /proc/self (RSS,
 *   threads, open fds);
 * - an event thread subscribed to every sandbox's transitions
 *   (sbx_watch_new): counts creates, destroys, expiries and failures, and
 *   times create -> running. It re-subscribes after a queue overflow or
 *   while the manager is still recovering; events lost meanwhile are counted;
 * - GET /metrics on the RPC listeners (any verified client when client
 *   certificates are required) and, optionally, metrics_http.c.
 */
#include "service/metrics_svc.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/time.h"
#include "net/pool.h"
#include "service/backend_real.h"
#include "service/daemon.h"
#include "service/metrics_http.h"

/* Create -> running is tracked for this many creates in flight at most. */
#define PENDING_MAX 256

static const double phase_buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
static const double create_buckets[] = { 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120 };

enum fam {
        F_SANDBOXES, F_SBX_CAP, F_SLOTS_CAP, F_SLOTS_USED, F_SLOTS_FREE, F_VCPUS_CAP, F_VCPUS_RES,
        F_MEM_CAP, F_MEM_RES, F_WATCHERS, F_READY, F_CREATES, F_DESTROYS, F_EXPIRIES, F_FAILURES,
        F_EVENTS, F_EVENTS_LOST, F_CREATE_SECONDS, F_RSS, F_FDS, F_MAX_FDS, F_THREADS, F_START,
        F_BUILD, F_PHASE, F_PHASE_FAILS, F_POOL, F_POOL_BUILDS, F_POOL_BUILD_FAILS, F_POOL_SCRUBS, NFAM
};

static const struct ha_metric_def defs[NFAM] = {
        [F_SANDBOXES] = { "hostagent_sandboxes", "Sandboxes by state.", HA_METRIC_GAUGE, { "state" }, NULL, 0 },
        [F_SBX_CAP] = { "hostagent_sandboxes_capacity", "Sandboxes this host admits at most.", HA_METRIC_GAUGE,
                        { NULL }, NULL, 0 },
        [F_SLOTS_CAP] = { "hostagent_slots_capacity", "Network slots.", HA_METRIC_GAUGE, { NULL }, NULL, 0 },
        [F_SLOTS_USED] = { "hostagent_slots_used", "Network slots held by sandboxes.", HA_METRIC_GAUGE,
                           { NULL }, NULL, 0 },
        [F_SLOTS_FREE] = { "hostagent_slots_free", "Network slots free.", HA_METRIC_GAUGE, { NULL }, NULL, 0 },
        [F_VCPUS_CAP] = { "hostagent_vcpus_capacity", "vCPU budget (CPUs x overcommit).", HA_METRIC_GAUGE,
                          { NULL }, NULL, 0 },
        [F_VCPUS_RES] = { "hostagent_vcpus_reserved", "vCPUs reserved by live sandboxes.", HA_METRIC_GAUGE,
                          { NULL }, NULL, 0 },
        [F_MEM_CAP] = { "hostagent_memory_capacity_bytes", "Guest memory budget.", HA_METRIC_GAUGE, { NULL },
                        NULL, 0 },
        [F_MEM_RES] = { "hostagent_memory_reserved_bytes", "Guest memory reserved by live sandboxes.",
                        HA_METRIC_GAUGE, { NULL }, NULL, 0 },
        [F_WATCHERS] = { "hostagent_event_watchers", "WatchEvents subscriptions (this exporter holds one).",
                         HA_METRIC_GAUGE, { NULL }, NULL, 0 },
        [F_READY] = { "hostagent_ready", "1 once recovery finished and sandbox calls are served.",
                      HA_METRIC_GAUGE, { NULL }, NULL, 0 },
        [F_CREATES] = { "hostagent_sandbox_creates_total", "Sandboxes created (CREATED events).",
                        HA_METRIC_COUNTER, { NULL }, NULL, 0 },
        [F_DESTROYS] = { "hostagent_sandbox_destroys_total", "Sandboxes gone (DESTROYED events).",
                         HA_METRIC_COUNTER, { NULL }, NULL, 0 },
        [F_EXPIRIES] = { "hostagent_sandbox_expiries_total", "Sandboxes that reached their TTL.",
                         HA_METRIC_COUNTER, { NULL }, NULL, 0 },
        [F_FAILURES] = { "hostagent_sandbox_failures_total",
                         "Sandboxes that failed, by reason (create, vmm_exited, other).", HA_METRIC_COUNTER,
                         { "reason" }, NULL, 0 },
        [F_EVENTS] = { "hostagent_sandbox_events_total", "Sandbox lifecycle events, by kind.",
                       HA_METRIC_COUNTER, { "kind" }, NULL, 0 },
        [F_EVENTS_LOST] = { "hostagent_sandbox_events_lost_total",
                            "Times the exporter's event queue overflowed (counts above miss events).",
                            HA_METRIC_COUNTER, { NULL }, NULL, 0 },
        [F_CREATE_SECONDS] = { "hostagent_sandbox_create_duration_seconds",
                               "Time from CREATED to RUNNING (network, rootfs, VMM boot, guest agent).",
                               HA_METRIC_HISTOGRAM, { NULL }, create_buckets,
                               sizeof create_buckets / sizeof create_buckets[0] },
        [F_RSS] = { "hostagent_process_resident_memory_bytes", "Resident memory of the agent process.",
                    HA_METRIC_GAUGE, { NULL }, NULL, 0 },
        [F_FDS] = { "hostagent_process_open_fds", "Open file descriptors of the agent.", HA_METRIC_GAUGE,
                    { NULL }, NULL, 0 },
        [F_MAX_FDS] = { "hostagent_process_max_fds", "RLIMIT_NOFILE soft limit.", HA_METRIC_GAUGE, { NULL },
                        NULL, 0 },
        [F_THREADS] = { "hostagent_process_threads", "Threads of the agent process.", HA_METRIC_GAUGE,
                        { NULL }, NULL, 0 },
        [F_START] = { "hostagent_process_start_time_seconds", "Start time since the Unix epoch.",
                      HA_METRIC_GAUGE, { NULL }, NULL, 0 },
        [F_PHASE] = { "hostagent_sandbox_create_phase_seconds",
                      "Duration of each successful create phase (net, rootfs, vmm_start, vmm_configure, "
                      "vmm_boot, guest_ready).",
                      HA_METRIC_HISTOGRAM, { "phase" }, phase_buckets,
                      sizeof phase_buckets / sizeof phase_buckets[0] },
        [F_PHASE_FAILS] = { "hostagent_sandbox_create_phase_failures_total", "Create phases that failed.",
                            HA_METRIC_COUNTER, { "phase" }, NULL, 0 },
        [F_POOL] = { "hostagent_net_pool_slots",
                     "Network slots by pool state (ready: pre-built and waiting, the pool depth).",
                     HA_METRIC_GAUGE, { "state" }, NULL, 0 },
        [F_POOL_BUILDS] = { "hostagent_net_pool_builds_total", "Network slots built (namespace, links, rules).",
                            HA_METRIC_COUNTER, { NULL }, NULL, 0 },
        [F_POOL_BUILD_FAILS] = { "hostagent_net_pool_build_failures_total", "Network slot builds that failed.",
                                 HA_METRIC_COUNTER, { NULL }, NULL, 0 },
        [F_POOL_SCRUBS] = { "hostagent_net_pool_scrubs_total", "Network slots scrubbed for reuse.",
                            HA_METRIC_COUNTER, { NULL }, NULL, 0 },
        [F_BUILD] = { "hostagent_build_info", "Constant 1, labelled with the version and the VMM runtime.",
                      HA_METRIC_GAUGE, { "version", "runtime" }, NULL, 0 },
};

struct pending {
        char id[SBX_ID_MAX + 1];
        int64_t created_ms;
};

struct svc_metrics {
        struct ha_daemon *d;
        ha_metric *f[NFAM];
        pthread_t events_thread;
        bool events_running;
        atomic_bool stop;
        struct metrics_http *http;
        struct pending pending[PENDING_MAX]; /* events thread only */
        size_t next_pending;
};

/* --- collector ------------------------------------------------------------- */

static void proc_status(long *ret_rss_kb, long *ret_threads)
{
        *ret_rss_kb = *ret_threads = -1;
        FILE *f = fopen("/proc/self/status", "re");
        if (!f)
                return;
        char line[256];
        while (fgets(line, sizeof line, f)) {
                if (strncmp(line, "VmRSS:", 6) == 0)
                        *ret_rss_kb = strtol(line + 6, NULL, 10);
                else if (strncmp(line, "Threads:", 8) == 0)
                        *ret_threads = strtol(line + 8, NULL, 10);
        }
        fclose(f);
}

static long open_fds(void)
{
        DIR *dir = opendir("/proc/self/fd");
        if (!dir)
                return -1;
        long n = 0;
        struct dirent *e;
        while ((e = readdir(dir)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(dir);
        return n - 1;   /* the directory's own fd */
}

static void collect(void *ctx)
{
        struct svc_metrics *m = ctx;
        long rss_kb, threads;
        proc_status(&rss_kb, &threads);
        if (rss_kb >= 0)
                ha_metric_set(m->f[F_RSS], NULL, (double)rss_kb * 1024.0);
        if (threads >= 0)
                ha_metric_set(m->f[F_THREADS], NULL, (double)threads);
        long fds = open_fds();
        if (fds >= 0)
                ha_metric_set(m->f[F_FDS], NULL, (double)fds);
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
                ha_metric_set(m->f[F_MAX_FDS], NULL, (double)rl.rlim_cur);
        if (m->d->backend) {
                struct net_pool_stats ps;
                ha_backend_pool_stats(m->d->backend, &ps);
                static const char *const pstates[] = { "ready", "free", "in_use", "dirty", "busy" };
                const uint32_t pcounts[] = { ps.ready, ps.free, ps.in_use, ps.dirty, ps.busy };
                for (size_t i = 0; i < 5; i++) {
                        const char *v[] = { pstates[i] };
                        ha_metric_set(m->f[F_POOL], v, pcounts[i]);
                }
                ha_metric_set(m->f[F_POOL_BUILDS], NULL, (double)ps.builds);
                ha_metric_set(m->f[F_POOL_BUILD_FAILS], NULL, (double)ps.build_failures);
                ha_metric_set(m->f[F_POOL_SCRUBS], NULL, (double)ps.scrubs);
        }
        if (!m->d->mgr)
                return;
        struct sbx_host_info hi;
        sbx_mgr_host_info(m->d->mgr, &hi);
        static const char *const states[] = { "creating", "running", "paused", "stopping", "failed" };
        const uint32_t counts[] = { hi.creating, hi.running, hi.paused, hi.stopping, hi.failed };
        for (size_t i = 0; i < 5; i++) {
                const char *v[] = { states[i] };
                ha_metric_set(m->f[F_SANDBOXES], v, counts[i]);
        }
        ha_metric_set(m->f[F_SBX_CAP], NULL, hi.capacity.sandboxes);
        ha_metric_set(m->f[F_SLOTS_CAP], NULL, hi.capacity.slots);
        ha_metric_set(m->f[F_SLOTS_USED], NULL, hi.usage.slots);
        ha_metric_set(m->f[F_SLOTS_FREE], NULL,
                      hi.capacity.slots > hi.usage.slots ? hi.capacity.slots - hi.usage.slots : 0);
        ha_metric_set(m->f[F_VCPUS_CAP], NULL, hi.capacity.vcpus);
        ha_metric_set(m->f[F_VCPUS_RES], NULL, hi.usage.vcpus);
        ha_metric_set(m->f[F_MEM_CAP], NULL, (double)hi.capacity.memory_mib * 1048576.0);
        ha_metric_set(m->f[F_MEM_RES], NULL, (double)hi.usage.memory_mib * 1048576.0);
        ha_metric_set(m->f[F_WATCHERS], NULL, hi.watchers);
        ha_metric_set(m->f[F_READY], NULL, hi.ready ? 1 : 0);
}

/* --- events ---------------------------------------------------------------- */

static struct pending *pending_find(struct svc_metrics *m, const char *id)
{
        for (size_t i = 0; i < PENDING_MAX; i++)
                if (m->pending[i].id[0] && strcmp(m->pending[i].id, id) == 0)
                        return &m->pending[i];
        return NULL;
}

static void on_event(struct svc_metrics *m, const struct sbx_event *ev)
{
        const char *kind[] = { sbx_event_kind_name(ev->kind) };
        ha_metric_add(m->f[F_EVENTS], kind, 1);
        struct pending *p = pending_find(m, ev->rec.id);
        switch (ev->kind) {
        case SBX_EVENT_CREATED:
                ha_metric_add(m->f[F_CREATES], NULL, 1);
                if (!p) {       /* oldest slot goes when more are in flight */
                        p = &m->pending[m->next_pending];
                        m->next_pending = (m->next_pending + 1) % PENDING_MAX;
                }
                snprintf(p->id, sizeof p->id, "%s", ev->rec.id);
                p->created_ms = ev->time_ms;
                break;
        case SBX_EVENT_RUNNING:
                if (p) {
                        int64_t ms = ev->time_ms - p->created_ms;
                        ha_metric_observe(m->f[F_CREATE_SECONDS], NULL, ms > 0 ? (double)ms / 1000.0 : 0);
                        p->id[0] = '\0';
                }
                break;
        case SBX_EVENT_EXPIRED:
                ha_metric_add(m->f[F_EXPIRIES], NULL, 1);
                break;
        case SBX_EVENT_DESTROYED:
                ha_metric_add(m->f[F_DESTROYS], NULL, 1);
                if (p)
                        p->id[0] = '\0';
                break;
        case SBX_EVENT_FAILED: {
                /* Failure text is free-form: file it under a fixed reason. */
                const char *why = p ? "create"
                                    : (strstr(ev->reason, "vmm") && strstr(ev->reason, "exit")) ? "vmm_exited"
                                                                                                 : "other";
                const char *v[] = { why };
                ha_metric_add(m->f[F_FAILURES], v, 1);
                if (p)
                        p->id[0] = '\0';
                break;
        }
        default:
                break;
        }
}

static void *events_main(void *arg)
{
        struct svc_metrics *m = arg;
        sbx_watch *w = NULL;
        while (!atomic_load(&m->stop)) {
                if (!w) {
                        /* The manager refuses while recovering: try again. */
                        if (sbx_watch_new(m->d->mgr, NULL, &w, NULL) < 0) {
                                w = NULL;
                                struct timespec ts = { 0, 200L * 1000 * 1000 };
                                nanosleep(&ts, NULL);
                                continue;
                        }
                }
                struct sbx_event ev;
                int r = sbx_watch_next(w, ha_now_ms() + 200, &ev);
                if (r == -ETIMEDOUT)
                        continue;
                if (r < 0) {
                        if (r == -ENOBUFS)
                                ha_metric_add(m->f[F_EVENTS_LOST], NULL, 1);
                        sbx_watch_free(w);
                        w = NULL;
                        continue;
                }
                on_event(m, &ev);
                sbx_event_done(&ev);
        }
        sbx_watch_free(w);
        return NULL;
}

/* --- create phases --------------------------------------------------------- */

/* The wrapped backend's original hooks. One per process: the table keeps the
 * backend's own ctx (every hook shares it), so the wrappers find the
 * originals here. Written once before the manager starts, then read-only. */
static struct {
        struct sbx_backend orig, wrapped;
        ha_metric *seconds, *failures;
} phases;

static int phase_done(const char *phase, uint64_t t0, int r)
{
        const char *v[] = { phase };
        if (r < 0)
                ha_metric_add(phases.failures, v, 1);
        else
                ha_metric_observe(phases.seconds, v, (double)(ha_now_ns() - t0) / 1e9);
        return r;
}

static int timed_net_acquire(void *ctx, const char *id, const struct sbx_egress *egress,
                             struct sbx_net_lease *ret_lease, struct ha_err *err)
{
        uint64_t t0 = ha_now_ns();
        return phase_done("net", t0, phases.orig.net_acquire(ctx, id, egress, ret_lease, err));
}

static int timed_rootfs_clone(void *ctx, const char *id, const char *image, char *ret_path, struct ha_err *err)
{
        uint64_t t0 = ha_now_ns();
        return phase_done("rootfs", t0, phases.orig.rootfs_clone(ctx, id, image, ret_path, err));
}

static int timed_vmm_start(void *ctx, const char *id, const struct sbx_net_lease *net, struct sbx_vmm *ret_vmm,
                           struct ha_err *err)
{
        uint64_t t0 = ha_now_ns();
        return phase_done("vmm_start", t0, phases.orig.vmm_start(ctx, id, net, ret_vmm, err));
}

static int timed_vmm_configure(void *ctx, struct sbx_vmm *vmm, const struct sbx_vm_config *cfg, struct ha_err *err)
{
        uint64_t t0 = ha_now_ns();
        return phase_done("vmm_configure", t0, phases.orig.vmm_configure(ctx, vmm, cfg, err));
}

static int timed_vmm_boot(void *ctx, struct sbx_vmm *vmm, struct ha_err *err)
{
        uint64_t t0 = ha_now_ns();
        return phase_done("vmm_boot", t0, phases.orig.vmm_boot(ctx, vmm, err));
}

static int timed_vmm_wait_ready(void *ctx, struct sbx_vmm *vmm, uint64_t deadline_ms,
                                const struct sbx_cancel *cancel, struct ha_err *err)
{
        uint64_t t0 = ha_now_ns();
        return phase_done("guest_ready", t0, phases.orig.vmm_wait_ready(ctx, vmm, deadline_ms, cancel, err));
}

const struct sbx_backend *svc_metrics_wrap_backend(struct svc_metrics *m, const struct sbx_backend *in)
{
        if (!m || !in || phases.seconds)
                return in;
        phases.orig = *in;
        phases.wrapped = *in;
        phases.seconds = m->f[F_PHASE];
        phases.failures = m->f[F_PHASE_FAILS];
        /* Only hooks the backend has: an absent optional hook stays absent. */
        if (in->net_acquire)
                phases.wrapped.net_acquire = timed_net_acquire;
        if (in->rootfs_clone)
                phases.wrapped.rootfs_clone = timed_rootfs_clone;
        if (in->vmm_start)
                phases.wrapped.vmm_start = timed_vmm_start;
        if (in->vmm_configure)
                phases.wrapped.vmm_configure = timed_vmm_configure;
        if (in->vmm_boot)
                phases.wrapped.vmm_boot = timed_vmm_boot;
        if (in->vmm_wait_ready)
                phases.wrapped.vmm_wait_ready = timed_vmm_wait_ready;
        return &phases.wrapped;
}

/* --- GET /metrics ---------------------------------------------------------- */

static int http_get(void *ctx, const char *identity, char **ret_body, size_t *ret_len, const char **ret_ctype)
{
        struct svc_metrics *m = ctx;
        /* Any verified client may read metrics (no role needed): with client
         * certificates required, a connection without one gets 403. */
        if (m->d->cfg.client_ca && !identity)
                return 403;
        if (ha_metrics_render(ha_metrics_global(), ret_body, ret_len) < 0)
                return 500;
        *ret_ctype = HA_METRICS_CONTENT_TYPE;
        return 200;
}

/* --- life ------------------------------------------------------------------ */

struct svc_metrics *svc_metrics_new(struct ha_daemon *d)
{
        ha_metrics *reg = ha_metrics_global();
        struct svc_metrics *m = calloc(1, sizeof *m);
        if (!reg || !m)
                goto out_free;
        m->d = d;
        atomic_init(&m->stop, false);
        ha_metrics_agent_families();
        for (size_t i = 0; i < NFAM; i++)
                if (ha_metrics_register(reg, &defs[i], &m->f[i]) < 0)
                        goto out_free;
        const char *bv[] = { HA_VERSION, ha_daemon_runtime(d) };
        ha_metric_set(m->f[F_BUILD], bv, 1);
        ha_metric_set(m->f[F_START], NULL, (double)time(NULL) - (double)(ha_now_ms() - d->started_ms) / 1000.0);
        if (ha_metrics_add_collector(reg, collect, m) < 0)
                goto out_free;
        if (rpc_server_add_http_get(d->srv, "/metrics", http_get, m) < 0)
                goto out_collector;
        return m;
out_collector:
        ha_metrics_remove_collector(reg, collect, m);
out_free:
        free(m);
        return NULL;
}

int svc_metrics_start(struct svc_metrics *m, struct ha_err *err)
{
        if (m->d->mgr) {
                int r = pthread_create(&m->events_thread, NULL, events_main, m);
                if (r != 0)
                        return ha_err_set(err, -r, "cannot start the metrics event thread: %s", strerror(r));
                m->events_running = true;
        }
        const char *spec = m->d->cfg.metrics_listen;
        if (spec && *spec && strcmp(spec, "none") != 0)
                return metrics_http_start(spec, m->d->cfg.insecure, &m->http, err);
        return 0;
}

int svc_metrics_port(const struct svc_metrics *m)
{
        return m ? metrics_http_port(m->http) : 0;
}

void svc_metrics_free(struct svc_metrics *m)
{
        if (!m)
                return;
        metrics_http_stop(m->http);
        atomic_store(&m->stop, true);
        if (m->events_running)
                pthread_join(m->events_thread, NULL);
        ha_metrics_remove_collector(ha_metrics_global(), collect, m);
        free(m);
}
