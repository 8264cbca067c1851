/*
 * config.c - see config.h. One table describes every option: its name, kind,
 * default (for --help) and where it lands, so flags, the config file and
 * the help text can never disagree.
 */
#include "service/config.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_kind { O_STR, O_UINT, O_U64, O_BOOL, O_DOUBLE, O_LEVEL, O_FORMAT, O_ROLE, O_CONFIG, O_HELP, O_VERSION };

struct opt {
        const char *name;
        enum opt_kind kind;
        size_t off;
        const char *def;        /* shown by --help; applied by ha_config_init */
        const char *help;
};

#define F(field) offsetof(struct ha_config, field)

static const struct opt opts[] = {
        { "config", O_CONFIG, F(config_file), NULL, "read options from FILE (flags override it)" },
        { "listen", O_STR, F(listen), "127.0.0.1:7443", "TLS listener HOST:PORT (ALPN h2)" },
        { "h2c-listen", O_STR, F(h2c_listen), NULL, "cleartext HTTP/2 listener HOST:PORT or unix:PATH (debugging)" },
        { "metrics-listen", O_STR, F(metrics_listen), NULL, "plain HTTP/1.1 GET /metrics on HOST:PORT (loopback unless --insecure)" },
        { "tls-cert", O_STR, F(tls_cert), NULL, "server certificate (PEM)" },
        { "tls-key", O_STR, F(tls_key), NULL, "server private key (PEM)" },
        { "client-ca", O_STR, F(client_ca), NULL, "require client certificates signed by this CA (mTLS)" },
        { "insecure", O_BOOL, F(insecure), "false", "allow a non-loopback listener without --client-ca" },
        { "role", O_ROLE, 0, NULL, "IDENTITY=ROLE (admin|reader), repeatable" },
        { "state-dir", O_STR, F(state_dir), "/var/lib/hostagent", "persistent state" },
        { "run-dir", O_STR, F(run_dir), "/run/hostagent", "sockets and per-sandbox work dirs" },
        { "images-dir", O_STR, F(images_dir), "/var/lib/hostagent/images", "base rootfs images (<name>.ext4) and kernels" },
        { "firecracker-bin", O_STR, F(firecracker_bin), NULL, "firecracker binary, or the bundled simulator fcsim" },
        { "jailer-bin", O_STR, F(jailer_bin), NULL, "run firecracker through this jailer" },
        { "jailer-uid", O_UINT, F(jailer_uid), "0", "uid the jailer drops to (give a dedicated one)" },
        { "jailer-gid", O_UINT, F(jailer_gid), "0", "gid the jailer drops to" },
        { "chroot-base", O_STR, F(chroot_base), "/srv/jailer", "jailer --chroot-base-dir" },
        { "kernel", O_STR, F(kernel), NULL, "guest kernel (optional with the simulator)" },
        { "vmm-api-timeout-ms", O_UINT, F(vmm_api_timeout_ms), "5000", "deadline of each request to a VMM's API (1-600000)" },
        { "vmm-boot-timeout-ms", O_UINT, F(vmm_boot_timeout_ms), "5000", "wait for a new VMM's API socket (1-600000)" },
        { "slots", O_UINT, F(slots), "64", "network slots (max sandboxes)" },
        { "pool", O_UINT, F(pool), "4", "pre-built network slots kept ready" },
        { "workers", O_UINT, F(workers), "0", "worker threads kept (0: number of CPUs)" },
        { "max-workers", O_UINT, F(max_workers), "256", "worker threads at most (streams hold one each)" },
        { "log-level", O_LEVEL, F(log_level), "info", "debug | info | warn | error" },
        { "log-format", O_FORMAT, F(log_format), "text", "text | json" },
        { "cors-origins", O_STR, F(cors_origins), NULL, "browser origins allowed (gRPC-Web/Connect): * or a comma list" },
        { "connect-require-version", O_BOOL, F(connect_require_version), "false", "refuse Connect POSTs without connect-protocol-version: 1" },
        { "max-message-bytes", O_U64, F(max_message_bytes), "4194304", "largest message, after decompression" },
        { "max-connections", O_UINT, F(max_connections), "1024", "open connections at most" },
        { "max-streams", O_UINT, F(max_streams), "100", "concurrent streams per connection" },
        { "max-header-bytes", O_U64, F(max_header_bytes), "16384", "request header list size" },
        { "handshake-timeout-ms", O_UINT, F(handshake_timeout_ms), "10000", "TLS handshake deadline" },
        { "idle-timeout-ms", O_UINT, F(idle_timeout_ms), "300000", "idle connection lifetime" },
        { "shutdown-grace-ms", O_UINT, F(shutdown_grace_ms), "10000", "in-flight calls' grace at SIGTERM" },
        { "default-ttl", O_UINT, F(default_ttl_s), "300", "sandbox TTL in seconds when the request gives none" },
        { "max-ttl", O_UINT, F(max_ttl_s), "86400", "largest sandbox TTL in seconds" },
        { "paused-ttl", O_UINT, F(paused_ttl_s), "3600", "TTL of a paused sandbox in seconds" },
        { "max-vcpus", O_UINT, F(max_vcpus), "8", "vCPUs per sandbox at most" },
        { "max-memory-mib", O_UINT, F(max_memory_mib), "8192", "memory per sandbox at most (MiB)" },
        { "overcommit", O_DOUBLE, F(overcommit), "16", "vCPU overcommit ratio (vCPU budget = CPUs x ratio)" },
        { "memory-overcommit", O_DOUBLE, F(memory_overcommit), "1", "memory overcommit ratio (memory budget = host memory x ratio)" },
        { "net-prefix", O_STR, F(net_prefix), "ha", "prefix of namespaces, links and nft tables" },
        { "net-sandbox-range", O_STR, F(net_sandbox_range), "10.11.0.0/16", "host-reachable sandbox addresses (IPv4 CIDR)" },
        { "net-veth-range", O_STR, F(net_veth_range), "10.12.0.0/16", "host <-> namespace veth pairs (IPv4 CIDR)" },
        { "help", O_HELP, 0, NULL, "show this help" },
        { "version", O_VERSION, 0, NULL, "show version and build" },
};

#define NOPTS (sizeof opts / sizeof opts[0])

static int set_opt(struct ha_config *cfg, const struct opt *o, const char *v, struct ha_err *err,
                   const char *where)
{
        char *p = (char *)cfg + o->off;
        char *end;
        switch (o->kind) {
        case O_STR:
        case O_CONFIG:
                free(*(char **)p);
                *(char **)p = strdup(v);
                return 0;
        case O_UINT: {
                errno = 0;
                unsigned long x = strtoul(v, &end, 10);
                if (errno || *end || !*v || v[0] == '-' || x > UINT32_MAX)
                        return ha_err_set(err, -EINVAL, "%s%s: \"%s\" is not a non-negative integer", where, o->name, v);
                *(unsigned *)p = (unsigned)x;
                return 0;
        }
        case O_U64: {
                errno = 0;
                unsigned long long x = strtoull(v, &end, 10);
                if (errno || *end || !*v || v[0] == '-')
                        return ha_err_set(err, -EINVAL, "%s%s: \"%s\" is not a non-negative integer", where, o->name, v);
                *(uint64_t *)p = x;
                return 0;
        }
        case O_DOUBLE: {
                double x = strtod(v, &end);
                if (*end || !*v || x <= 0)
                        return ha_err_set(err, -EINVAL, "%s%s: \"%s\" is not a positive number", where, o->name, v);
                *(double *)p = x;
                return 0;
        }
        case O_BOOL:
                if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
                        *(bool *)p = true;
                else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
                        *(bool *)p = false;
                else
                        return ha_err_set(err, -EINVAL, "%s%s: \"%s\" is not true or false", where, o->name, v);
                return 0;
        case O_LEVEL:
                if (ha_log_parse_level(v, (enum ha_log_level *)p) < 0)
                        return ha_err_set(err, -EINVAL, "%s%s: \"%s\" is not debug, info, warn or error", where, o->name, v);
                return 0;
        case O_FORMAT:
                if (ha_log_parse_format(v, (enum ha_log_format *)p) < 0)
                        return ha_err_set(err, -EINVAL, "%s%s: \"%s\" is not text or json", where, o->name, v);
                return 0;
        case O_ROLE: {
                const char *eq = strrchr(v, '=');
                if (!eq || eq == v || (strcmp(eq + 1, "admin") != 0 && strcmp(eq + 1, "reader") != 0))
                        return ha_err_set(err, -EINVAL, "%s%s: \"%s\" is not IDENTITY=admin or IDENTITY=reader", where,
                                          o->name, v);
                if (cfg->nroles == HA_MAX_ROLES)
                        return ha_err_set(err, -EINVAL, "%s%s: more than %d roles", where, o->name, HA_MAX_ROLES);
                struct ha_role *r = &cfg->roles[cfg->nroles++];
                r->identity = strndup(v, (size_t)(eq - v));
                r->role = strdup(eq + 1);
                return 0;
        }
        default:
                return 0;
        }
}

void ha_config_init(struct ha_config *cfg)
{
        memset(cfg, 0, sizeof *cfg);
        for (size_t i = 0; i < NOPTS; i++)
                if (opts[i].def)
                        set_opt(cfg, &opts[i], opts[i].def, NULL, "");
}

void ha_config_done(struct ha_config *cfg)
{
        for (size_t i = 0; i < NOPTS; i++)
                if (opts[i].kind == O_STR || opts[i].kind == O_CONFIG)
                        free(*(char **)((char *)cfg + opts[i].off));
        for (unsigned i = 0; i < cfg->nroles; i++) {
                free(cfg->roles[i].identity);
                free(cfg->roles[i].role);
        }
        memset(cfg, 0, sizeof *cfg);
}

static const struct opt *find_opt(const char *name)
{
        for (size_t i = 0; i < NOPTS; i++)
                if (strcmp(opts[i].name, name) == 0)
                        return &opts[i];
        return NULL;
}

static char *trim(char *s)
{
        while (*s == ' ' || *s == '\t')
                s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
                s[--n] = '\0';
        return s;
}

static int parse_file(struct ha_config *cfg, const char *path, struct ha_err *err)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return ha_err_set(err, -errno, "cannot read config file %s: %s", path, strerror(errno));
        char line[4096];
        unsigned lineno = 0;
        int r = 0;
        while (r == 0 && fgets(line, sizeof line, f)) {
                lineno++;
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                char *s = trim(line);
                if (!*s)
                        continue;
                char *eq = strchr(s, '=');
                char where[512];
                if (!eq) {
                        r = ha_err_set(err, -EINVAL, "%s:%u: expected \"key = value\"", path, lineno);
                        break;
                }
                *eq = '\0';
                char *key = trim(s), *val = trim(eq + 1);
                const struct opt *o = find_opt(key);
                snprintf(where, sizeof where, "%s:%u: ", path, lineno);
                if (!o || o->kind == O_HELP || o->kind == O_VERSION || o->kind == O_CONFIG) {
                        r = ha_err_set(err, -EINVAL, "%s:%u: unknown key \"%s\"", path, lineno, key);
                        break;
                }
                if (val[0] == '"' && strlen(val) >= 2 && val[strlen(val) - 1] == '"') {
                        val[strlen(val) - 1] = '\0';
                        val++;
                }
                r = set_opt(cfg, o, val, err, where);
        }
        fclose(f);
        return r;
}

void ha_config_usage(FILE *out)
{
        fprintf(out, "usage: hostagent [OPTIONS]\n\nOptions (every one may also be a \"key = value\" line of --config):\n");
        for (size_t i = 0; i < NOPTS; i++) {
                const struct opt *o = &opts[i];
                char flag[64];
                const char *arg = o->kind == O_BOOL || o->kind == O_HELP || o->kind == O_VERSION ? "" : " VALUE";
                snprintf(flag, sizeof flag, "--%s%s", o->name, arg);
                fprintf(out, "  %-28s %s", flag, o->help);
                if (o->def)
                        fprintf(out, " (default: %s)", o->def);
                fputc('\n', out);
        }
}

int ha_config_parse(struct ha_config *cfg, int argc, char **argv, struct ha_err *err)
{
        struct option lo[NOPTS + 1];
        for (size_t i = 0; i < NOPTS; i++) {
                bool noarg = opts[i].kind == O_HELP || opts[i].kind == O_VERSION;
                lo[i] = (struct option){ opts[i].name, noarg ? no_argument : (opts[i].kind == O_BOOL ? optional_argument : required_argument), NULL, (int)i + 256 };
        }
        lo[NOPTS] = (struct option){ 0 };
        /* First pass: --config, --help and --version only. */
        optind = 1;
        opterr = 0;
        int ch;
        while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
                if (ch < 256)
                        return ha_err_set(err, -EINVAL, "unknown or incomplete option \"%s\" (see --help)",
                                          argv[optind - 1]);
                const struct opt *o = &opts[ch - 256];
                if (o->kind == O_HELP) {
                        ha_config_usage(stdout);
                        return 1;
                }
                if (o->kind == O_VERSION) {
                        printf("hostagent %s (build %s)\n", HA_VERSION, HA_BUILD);
                        return 1;
                }
                if (o->kind == O_CONFIG) {
                        int r = parse_file(cfg, optarg, err);
                        if (r < 0)
                                return r;
                }
        }
        if (optind < argc)
                return ha_err_set(err, -EINVAL, "unexpected argument \"%s\" (see --help)", argv[optind]);
        /* Second pass: flags override the file. */
        optind = 1;
        while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
                const struct opt *o = &opts[ch - 256];
                if (o->kind == O_CONFIG)
                        continue;
                char where[8] = "--";
                int r = set_opt(cfg, o, o->kind == O_BOOL && !optarg ? "true" : optarg, err, where);
                if (r < 0)
                        return r;
        }
        /* "none" (or empty) turns a listener off. */
        char **listeners[] = { &cfg->listen, &cfg->h2c_listen };
        for (size_t i = 0; i < 2; i++) {
                if (*listeners[i] && (!**listeners[i] || strcmp(*listeners[i], "none") == 0)) {
                        free(*listeners[i]);
                        *listeners[i] = NULL;
                }
        }
        return 0;
}

static bool loopback_addr(const char *spec)
{
        if (!spec || strncmp(spec, "unix:", 5) == 0)
                return true;
        return strncmp(spec, "127.", 4) == 0 || strncmp(spec, "[::1]:", 6) == 0 ||
               strncmp(spec, "localhost:", 10) == 0;
}

int ha_config_validate(const struct ha_config *cfg, struct ha_err *err)
{
        if (cfg->listen && (!cfg->tls_cert || !cfg->tls_key))
                return ha_err_set(err, -EINVAL, "--listen %s needs --tls-cert and --tls-key (or use --h2c-listen only)",
                                  cfg->listen);
        if (!cfg->client_ca && !cfg->insecure &&
            (!loopback_addr(cfg->listen) || !loopback_addr(cfg->h2c_listen)))
                return ha_err_set(err, -EINVAL,
                                  "refusing to listen on a non-loopback address without --client-ca: anyone could "
                                  "create sandboxes; give --client-ca, or --insecure if you mean it");
        if (cfg->nroles && !cfg->client_ca)
                return ha_err_set(err, -EINVAL, "--role needs --client-ca: identities come from client certificates");
        /* 0 used to mean "the default" deep in the VM driver: refuse it here
         * so a config never silently means something else than it says. */
        const struct { const char *flag; unsigned v; } vmm_ms[] = {
                { "--vmm-api-timeout-ms", cfg->vmm_api_timeout_ms },
                { "--vmm-boot-timeout-ms", cfg->vmm_boot_timeout_ms },
        };
        for (size_t i = 0; i < sizeof vmm_ms / sizeof vmm_ms[0]; i++)
                if (vmm_ms[i].v < 1 || vmm_ms[i].v > HA_VMM_TIMEOUT_MAX_MS)
                        return ha_err_set(err, -EINVAL, "%s %u: must be 1-%u milliseconds", vmm_ms[i].flag,
                                          vmm_ms[i].v, HA_VMM_TIMEOUT_MAX_MS);
        if (cfg->max_ttl_s && cfg->default_ttl_s > cfg->max_ttl_s)
                return ha_err_set(err, -EINVAL, "--default-ttl %u is above --max-ttl %u", cfg->default_ttl_s, cfg->max_ttl_s);
        return 0;
}
