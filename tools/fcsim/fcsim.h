/*
 * fcsim.h - the simulator's shared data model: the microVM configuration the
 * REST API builds (machine, boot source, drives, network interfaces, vsock),
 * the instance state, and the limits that bound each part.
 *
 * fcsim is single-threaded for everything the API touches: the main thread
 * owns struct fcsim_vm. Only the vsock forwarder and the network relay run
 * on their own threads, and they receive copies of what they need when they
 * start (see vsock.h, relay.h).
 */
#ifndef FCSIM_H
#define FCSIM_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

/* The Firecracker release whose API and rules fcsim follows. */
#define FCSIM_FC_VERSION "1.16.1"

/* Instance and resource IDs: Firecracker caps --id at 64 characters. */
#define FCSIM_ID_MAX 64
/* Host paths in API bodies; longer paths are rejected, never truncated. */
#define FCSIM_PATH_MAX 1024
/* x86_64 kernel command line limit (Firecracker rejects longer ones). */
#define FCSIM_BOOT_ARGS_MAX 2048
/* Device counts: far above what the driver configures, low enough that a
 * client cannot make fcsim hold unbounded file descriptors. */
#define FCSIM_MAX_DRIVES 16
#define FCSIM_MAX_NETS   8
/* AF_UNIX sun_path capacity minus the terminating NUL. */
#define FCSIM_UDS_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

enum fcsim_state { FCSIM_NOT_STARTED, FCSIM_RUNNING, FCSIM_PAUSED };

struct fcsim_machine {
        unsigned vcpu_count;   /* 1..32; 1 or even with smt */
        unsigned mem_size_mib; /* > 0 */
        bool smt;
        bool track_dirty_pages;
        char huge_pages[8];   /* "None" | "2M" */
        char cpu_template[8]; /* "" when not set (deprecated field) */
};

struct fcsim_boot {
        bool set;
        char kernel_image_path[FCSIM_PATH_MAX];
        char initrd_path[FCSIM_PATH_MAX]; /* "" when absent */
        char boot_args[FCSIM_BOOT_ARGS_MAX + 1];
        bool has_boot_args;
};

struct fcsim_drive {
        char id[FCSIM_ID_MAX + 1];
        char path_on_host[FCSIM_PATH_MAX];
        bool is_root_device;
        bool is_read_only;
        char partuuid[64];
        char cache_type[16]; /* "Unsafe" | "Writeback" */
        char io_engine[8];   /* "Sync" | "Async" */
};

struct fcsim_net {
        char id[FCSIM_ID_MAX + 1];
        char host_dev_name[IFNAMSIZ];
        bool has_mac;
        uint8_t mac[6];
        unsigned mtu; /* 0 when not set */
        int tap_fd;   /* host TAP, opened at PUT (as Firecracker) */
};

struct fcsim_vsock_cfg {
        bool set;
        uint32_t guest_cid;
        char uds_path[FCSIM_UDS_PATH_MAX + 1];
};

/* The whole configuration; what a snapshot file records. */
struct fcsim_config {
        struct fcsim_machine machine;
        struct fcsim_boot boot;
        struct fcsim_drive drives[FCSIM_MAX_DRIVES];
        unsigned n_drives;
        struct fcsim_net nets[FCSIM_MAX_NETS];
        unsigned n_nets;
        struct fcsim_vsock_cfg vsock;
};

/* Sets Firecracker's defaults: 1 vCPU, 128 MiB, no devices, fds at -1. */
void fcsim_config_init(struct fcsim_config *c);
/* Closes the TAP fds the configuration holds. */
void fcsim_config_done(struct fcsim_config *c);

/* True when |id| is a valid API resource ID (non-empty, alnum or '_',
 * at most FCSIM_ID_MAX). */
bool fcsim_id_is_valid(const char *id);

#endif
