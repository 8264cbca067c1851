/*
 * netcfg.h - network plumbing without a shell: opening the host TAP named
 * in PUT /network-interfaces, creating the guest's TAP (eth<N>) inside the
 * guest's network namespace, and configuring it from the kernel's `ip=`
 * boot argument with ioctls (address, netmask, MAC, MTU, up, default
 * route), as the guest kernel would.
 *
 * The guest-side functions run in the freshly cloned guest child before it
 * execs init: they only make system calls (no allocation, no logging).
 */
#ifndef FCSIM_NETCFG_H
#define FCSIM_NETCFG_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

/* The kernel's ip=<client>:<server>:<gw>:<netmask>:<host>:<dev>:<autoconf>. */
struct fcsim_ipcfg {
        bool present; /* an ip= argument with a static client address */
        struct in_addr client;
        struct in_addr gateway; /* 0.0.0.0 when absent */
        struct in_addr netmask; /* 0.0.0.0 when absent: classful default */
        char hostname[65];
        char dev[IFNAMSIZ]; /* "" means the first interface */
};

/* Parses the last ip= argument of |boot_args|. Returns 0 (ret->present
 * false when there is none, or when it asks for DHCP and similar), or
 * -EINVAL for a malformed static configuration. */
int fcsim_ipcfg_parse(const char *boot_args, struct fcsim_ipcfg *ret, struct ha_err *err);

/* Opens the existing host TAP |name| (IFF_TAP | IFF_NO_PI, non-blocking,
 * O_CLOEXEC). -EBUSY when another process holds it, as in Firecracker. */
int fcsim_tap_open(const char *name, int *ret_fd, struct ha_err *err);

/* Guest side (child): creates TAP |name| in the current network namespace
 * with |mac| (NULL: kernel's random one) and |mtu| (0: default). Returns 0
 * with *ret_fd, or -errno. */
int fcsim_netcfg_guest_tap(const char *name, const uint8_t *mac, unsigned mtu, int *ret_fd);
/* Brings |name| up. */
int fcsim_netcfg_up(const char *name);
/* Assigns the address and netmask of |ip| to |name| and, when a gateway
 * is set, adds the default route through it. */
int fcsim_netcfg_address(const char *name, const struct fcsim_ipcfg *ip);

#endif
