/*
 * daemon.c - start-up and shutdown of the agent: configuration, logging,
 * signals (a signalfd watched by the RPC loop: SIGTERM/SIGINT drain and
 * exit 0, SIGHUP reloads TLS material), services, run.
 */
#include "service/daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <inttypes.h>
#include <malloc.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "service/authz.h"
#include "service/backend_real.h"
#include "service/health.h"
#include "service/hostagent_svc.h"
#include "service/metrics_svc.h"
#include "service/reflection.h"

const char *ha_daemon_runtime(struct ha_daemon *d)
{
        const char *bin = d->cfg.firecracker_bin;
        if (!bin)
                return "none";
        const char *base = strrchr(bin, '/');
        base = base ? base + 1 : bin;
        return strncmp(base, "fcsim", 5) == 0 ? "simulator" : "firecracker";
}

void ha_daemon_capacity(struct ha_daemon *d, Hostagent__V1__Capacity *cap, Hostagent__V1__Capacity *use)
{
        if (d->mgr) {
                struct sbx_host_info hi;
                sbx_mgr_host_info(d->mgr, &hi);
                cap->sandboxes = hi.capacity.sandboxes;
                cap->slots = hi.capacity.slots;
                cap->vcpus = hi.capacity.vcpus;
                cap->memory_mib = hi.capacity.memory_mib;
                use->sandboxes = hi.usage.sandboxes;
                use->slots = hi.usage.slots;
                use->vcpus = hi.usage.vcpus;
                use->memory_mib = hi.usage.memory_mib;
                return;
        }
        cap->sandboxes = 0;
        cap->slots = d->cfg.slots;
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        cap->vcpus = (uint32_t)((double)ncpu * d->cfg.overcommit);
        cap->memory_mib = (uint64_t)((double)pages * (double)psize / 1048576.0);
}

/* Recovery runs beside the loop: the agent answers (health NOT_SERVING,
 * sandbox calls UNAVAILABLE) while it re-adopts what an earlier run left. */
static void *recover_main(void *arg)
{
        struct ha_daemon *d = arg;
        struct ha_err err = { "" };
        uint64_t t0 = ha_now_ms();
        int r = sbx_mgr_recover(d->mgr, &err);
        if (r < 0) {
                ha_log_error("agent.recovery_failed", "err=\"%s\"", err.msg);
                return NULL;
        }
        if (d->backend)
                ha_backend_start(d->backend);
        struct sbx_host_info hi;
        sbx_mgr_host_info(d->mgr, &hi);
        ha_log_info("agent.recovered", "running=%u paused=%u failed=%u ms=%" PRIu64, hi.running, hi.paused,
                    hi.failed, ha_now_ms() - t0);
        svc_health_set_serving(d->health, true);
        return NULL;
}

static int start_manager(struct ha_daemon *d, const struct ha_daemon_hooks *hooks, struct ha_err *err)
{
        const struct sbx_backend *table = NULL;
        int r = hooks && hooks->backend_new ? hooks->backend_new(d, &table, err) : 0;
        if (r < 0)
                return r;
        if (r == 0) {
                if (!d->cfg.firecracker_bin) {
                        ha_log_warn("agent.no_runtime", "reason=\"no --firecracker-bin: sandbox calls answer UNAVAILABLE\"");
                        return 0;
                }
                r = ha_backend_new(&d->cfg, &d->backend, err);
                if (r < 0)
                        return r;
                table = ha_backend_table(d->backend);
        }
        table = svc_metrics_wrap_backend(d->metrics, table);    /* create-phase timings */
        struct sbx_config sc;
        sbx_config_init(&sc);
        sc.state_dir = d->cfg.state_dir;
        sc.max_sandboxes = d->cfg.slots;
        sc.slots = d->cfg.slots;
        sc.cpu_overcommit = d->cfg.overcommit;
        sc.mem_overcommit = d->cfg.memory_overcommit;
        sc.max_vcpus = d->cfg.max_vcpus;
        sc.max_memory_mib = d->cfg.max_memory_mib;
        sc.default_ttl_s = d->cfg.default_ttl_s;
        sc.max_ttl_s = d->cfg.max_ttl_s;
        sc.paused_ttl_s = d->cfg.paused_ttl_s;
        r = sbx_mgr_new(&sc, table, &d->mgr, err);
        if (r < 0)
                return r;
        if (d->backend)
                ha_backend_attach(d->backend, d->mgr);
        if (hooks && hooks->backend_attach)
                hooks->backend_attach(d, d->mgr);
        return 0;
}

static void on_signal(void *ctx, int fd)
{
        struct ha_daemon *d = ctx;
        struct signalfd_siginfo si;
        while (read(fd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                        struct ha_err err = { "" };
                        if (rpc_server_reload_tls(d->srv, &err) < 0)
                                ha_log_error("tls.reload_failed", "err=\"%s\" (keeping the old certificate)", err.msg);
                        else
                                ha_log_info("tls.reloaded", "cert=%s", d->cfg.tls_cert ? d->cfg.tls_cert : "");
                } else {
                        ha_log_info("agent.stopping", "signal=%s", strsignal((int)si.ssi_signo));
                        rpc_server_shutdown(d->srv);
                }
        }
}

static void on_drain(void *ctx)
{
        struct ha_daemon *d = ctx;
        svc_health_shutdown(d->health);
        if (d->mgr)
                sbx_mgr_drain(d->mgr);     /* watchers end; sandboxes keep running */
}

static const char *none_if_empty(const char *s)
{
        return s && *s && strcmp(s, "none") != 0 ? s : NULL;
}

/* Process-wide settings for holding many sandboxes, before any thread:
 * - two malloc arenas: glibc's default (8 per CPU) leaves each worker
 *   thread's freed memory in its own arena, which is what made RSS grow
 *   with the number of sandboxes and over a soak;
 * - the soft descriptor limit at the hard one: every VM holds descriptors
 *   (above 1023: vm/proc.h), and the default soft limit is 1024. */
static void process_setup(void)
{
        mallopt(M_ARENA_MAX, 2);
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

int ha_daemon_main(int argc, char **argv, const struct ha_daemon_hooks *hooks)
{
        struct ha_daemon d = { .sigfd = -1 };
        struct ha_err err = { "" };
        int status = 1;
        process_setup();
        ha_config_init(&d.cfg);
        int r = ha_config_parse(&d.cfg, argc, argv, &err);
        if (r == 1) {
                status = 0;
                goto out_cfg;
        }
        if (r == 0)
                r = ha_config_validate(&d.cfg, &err);
        if (r < 0) {
                fprintf(stderr, "hostagent: %s\n", err.msg);
                status = 2;
                goto out_cfg;
        }
        ha_log_setup(d.cfg.log_level, d.cfg.log_format, 2);
        d.started_ms = ha_now_ms();

        /* Signals go to the loop through a signalfd; block them in every
         * thread, so block before any thread starts. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        d.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);

        struct rpc_server_config sc = {
                .listen = none_if_empty(d.cfg.listen),
                .h2c_listen = none_if_empty(d.cfg.h2c_listen),
                .tls_cert = d.cfg.tls_cert,
                .tls_key = d.cfg.tls_key,
                .client_ca = d.cfg.client_ca,
                .workers = d.cfg.workers,
                .max_workers = d.cfg.max_workers,
                .cors_origins = d.cfg.cors_origins,
                .connect_require_version = d.cfg.connect_require_version,
                .limits = {
                        .max_message_bytes = d.cfg.max_message_bytes,
                        .max_connections = d.cfg.max_connections,
                        .max_concurrent_streams = d.cfg.max_streams,
                        .max_header_list_bytes = d.cfg.max_header_bytes,
                        .handshake_timeout_ms = d.cfg.handshake_timeout_ms,
                        .idle_timeout_ms = d.cfg.idle_timeout_ms,
                        .shutdown_grace_ms = d.cfg.shutdown_grace_ms,
                },
                .authorize = ha_authz_check,
                .authorize_ctx = &d.cfg,
        };
        d.srv = rpc_server_new(&sc, &err);
        if (!d.srv) {
                fprintf(stderr, "hostagent: %s\n", err.msg);
                ha_log_error("agent.start_failed", "err=\"%s\"", err.msg);
                goto out_sig;
        }
        d.health = svc_health_new();
        d.api = svc_hostagent_new(&d);
        if (!d.health || !d.api || svc_health_register(d.health, d.srv) < 0 ||
            svc_hostagent_register(d.api, d.srv) < 0 || svc_reflection_register(d.srv) < 0 ||
            !(d.metrics = svc_metrics_new(&d)) ||
            (hooks && hooks->register_extra && hooks->register_extra(&d, d.srv) < 0) ||
            rpc_server_watch_fd(d.srv, d.sigfd, on_signal, &d) < 0) {
                fprintf(stderr, "hostagent: cannot register services\n");
                goto out_srv;
        }
        rpc_server_on_drain(d.srv, on_drain, &d);
        if (start_manager(&d, hooks, &err) < 0) {
                fprintf(stderr, "hostagent: %s\n", err.msg);
                ha_log_error("agent.start_failed", "err=\"%s\"", err.msg);
                goto out_srv;
        }
        if (svc_metrics_start(d.metrics, &err) < 0) {
                fprintf(stderr, "hostagent: %s\n", err.msg);
                ha_log_error("agent.start_failed", "err=\"%s\"", err.msg);
                goto out_srv;
        }
        if (d.mgr) {
                d.recovering = pthread_create(&d.recover_thread, NULL, recover_main, &d) == 0;
                if (!d.recovering)
                        goto out_srv;
        } else {
                svc_health_set_serving(d.health, true);
        }
        ha_log_info("agent.ready", "version=%s listen=%s h2c=%s tls_port=%d h2c_port=%d runtime=%s",
                    HA_VERSION, sc.listen ? sc.listen : "-", sc.h2c_listen ? sc.h2c_listen : "-",
                    rpc_server_tls_port(d.srv), rpc_server_h2c_port(d.srv), ha_daemon_runtime(&d));
        rpc_server_run(d.srv);
        status = 0;
out_srv:
        if (d.recovering)
                pthread_join(d.recover_thread, NULL);
        if (d.mgr)
                sbx_mgr_drain(d.mgr);
        svc_metrics_free(d.metrics);    /* its threads read d.mgr */
        rpc_server_free(d.srv);     /* joins workers: handlers are done after this */
        sbx_mgr_free(d.mgr);        /* VMMs keep running: a restart re-adopts them */
        ha_backend_free(d.backend);
        if (hooks && hooks->backend_free)
                hooks->backend_free(&d);
        svc_hostagent_free(d.api);
        svc_health_free(d.health);
out_sig:
        if (d.sigfd >= 0)
                close(d.sigfd);
out_cfg:
        ha_config_done(&d.cfg);
        if (status == 0)
                ha_log_info("agent.exit", "status=0");
        return status;
}
