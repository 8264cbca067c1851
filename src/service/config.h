/*
 * config.h - the operator's configuration: every flag of the operator
 * contract (../shared/API.md), from the command line and/or a config file.
 *
 * Config file: one "key = value" per line, keys are the long flag names
 * without "--" ("listen = 0.0.0.0:7443", "role = spiffe://cp/admin=admin");
 * '#' starts a comment. Flags override the file. Unknown keys and bad
 * values are errors naming the key and the line.
 */
#ifndef HA_SVC_CONFIG_H
#define HA_SVC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/log.h"

#define HA_MAX_ROLES 64
/* Upper bound of --vmm-api-timeout-ms / --vmm-boot-timeout-ms (10 min). */
#define HA_VMM_TIMEOUT_MAX_MS 600000u

struct ha_role {
        char *identity;
        char *role;     /* "admin" or "reader" */
};

struct ha_config {
        char *listen;
        char *h2c_listen;
        char *metrics_listen;       /* plain HTTP/1.1 GET /metrics; NULL: none */
        char *tls_cert, *tls_key, *client_ca;
        bool insecure;
        struct ha_role roles[HA_MAX_ROLES];
        unsigned nroles;
        char *state_dir, *run_dir, *images_dir;
        char *firecracker_bin, *jailer_bin, *kernel;
        unsigned jailer_uid, jailer_gid;
        unsigned vmm_api_timeout_ms;    /* each VMM API request */
        unsigned vmm_boot_timeout_ms;   /* a new VMM's API socket */
        char *chroot_base;
        unsigned slots;
        unsigned pool;
        unsigned workers, max_workers;
        enum ha_log_level log_level;
        enum ha_log_format log_format;
        char *cors_origins;
        bool connect_require_version;
        /* limits */
        uint64_t max_message_bytes;
        unsigned max_connections, max_streams;
        uint64_t max_header_bytes;
        unsigned handshake_timeout_ms, idle_timeout_ms, shutdown_grace_ms;
        /* sandboxes */
        unsigned default_ttl_s, max_ttl_s, paused_ttl_s;
        unsigned max_vcpus, max_memory_mib;
        double overcommit;
        double memory_overcommit;     /* guests rarely touch all their memory */
        char *net_prefix;
        char *net_sandbox_range, *net_veth_range;
        char *config_file;
};

/* Fills defaults. */
void ha_config_init(struct ha_config *cfg);
void ha_config_done(struct ha_config *cfg);
/* Parses argv (and the --config file it names). Returns 0, 1 when --help or
 * --version was printed (exit 0), or -EINVAL with |err| naming the flag or
 * "file:line: key". */
int ha_config_parse(struct ha_config *cfg, int argc, char **argv, struct ha_err *err);
/* Checks the whole: TLS material present, addresses, roles. */
int ha_config_validate(const struct ha_config *cfg, struct ha_err *err);
void ha_config_usage(FILE *out);

#endif
