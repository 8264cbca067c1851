/*
 * slot_addr.h - names and addresses of network slot i, as pure functions.
 *
 * A slot is everything one sandbox needs on the network: a named network
 * namespace, a veth pair host <-> namespace, a persistent TAP inside the
 * namespace for the VMM, and NAT so the guest is reachable from the host at
 * its own "sandbox address". Every name and address of slot i (1..N) is a
 * function of i and of a validated struct net_config only, so that startup
 * recovery can find the leftovers of a crashed run from the prefix alone and
 * so that tests can predict everything.
 *
 * Inside EVERY namespace the TAP, guest address and guest MAC are the same
 * constants: a snapshot of a VM taken in slot 3 restores unchanged in slot 7
 * (Firecracker freezes the TAP name, MAC and guest IP in the snapshot).
 *
 *   slot i, prefix "ha", veth 10.12.0.0/16 (/31 pairs), sandbox 10.11.0.0/16
 *   netns  ha-7   (/run/netns/ha-7)
 *   veth   ha-h7 10.12.0.14/31 (host)  <->  ha-n7 10.12.0.15/31 (in netns)
 *   sandbox address 10.11.0.7  --DNAT in netns-->  guest 169.254.0.21
 *   TAP    tap0 169.254.0.22/30 (in netns), guest MAC 06:00:AC:10:00:02
 */
#ifndef NET_SLOT_ADDR_H
#define NET_SLOT_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* "<prefix>-h<slot>" must fit an interface name (IFNAMSIZ - 1 = 15 bytes):
 * 8 (prefix) + 2 ("-h") + 5 (slot <= 65535) = 15. */
#define NET_PREFIX_MAX 8
#define NET_IFNAME_MAX 16             /* IFNAMSIZ, NUL included */
#define NET_NETNS_DIR "/run/netns"
#define NET_NETNS_NAME_MAX 16         /* "<prefix>-<slot>" + NUL */
#define NET_NETNS_PATH_MAX 32         /* NET_NETNS_DIR "/" name + NUL */
#define NET_IP_STR_MAX 16             /* "255.255.255.255" + NUL */
/* Highest slot number a name can carry (5 digits); the ranges usually
 * limit N far below it. */
#define NET_SLOT_NUMBER_MAX 65535u
/* Ports on the host a guest may be allowed to reach (config list bound). */
#define NET_HOST_PORTS_MAX 16

/* Fixed inside every namespace (see the file comment for why). */
#define NET_TAP_NAME "tap0"
#define NET_TAP_IP "169.254.0.22"
#define NET_TAP_PREFIXLEN 30
#define NET_GUEST_IP "169.254.0.21"
#define NET_GUEST_MAC "06:00:AC:10:00:02"
#define NET_GUEST_NETMASK "255.255.255.252"
/* Kernel command line argument that configures the guest's eth0
 * (ip=<client>::<gateway>:<netmask>::<device>:<autoconf>). */
#define NET_GUEST_BOOT_ARG \
        "ip=" NET_GUEST_IP "::" NET_TAP_IP ":" NET_GUEST_NETMASK "::eth0:off"

/* An IPv4 network; addr is in host byte order with no bits set past len. */
struct net_cidr {
        uint32_t addr;
        uint8_t  len;                 /* 0..32 */
};

struct net_config {
        char            prefix[NET_PREFIX_MAX + 1]; /* [a-z][a-z0-9]{0,7}, default "ha" */
        struct net_cidr veth_range;    /* host side /30 or /31 pairs; default 10.12.0.0/16 */
        uint8_t         veth_pair_len; /* 31 (default) or 30 */
        struct net_cidr sandbox_range; /* host-reachable sandbox addresses; default 10.11.0.0/16 */
        uint32_t        slots;         /* N: slots 1..N exist; default 256 */
        /* TCP ports of the host itself a guest may connect to (e.g. a
         * metadata service); by default none: guests never reach the host. */
        uint16_t        host_tcp_ports[NET_HOST_PORTS_MAX];
        size_t          n_host_tcp_ports;
        /* Owner of every TAP (TUNSETOWNER/TUNSETGROUP), for a VMM that drops
         * privileges before opening it (the jailer's --uid/--gid); -1 (the
         * default) leaves the TAP to root. */
        int32_t         tap_uid;
        int32_t         tap_gid;
};

/* Every name and address of one slot. Strings are NUL-terminated. */
struct net_slot_addr {
        uint32_t slot;
        char     netns[NET_NETNS_NAME_MAX];       /* "<prefix>-<i>" */
        char     netns_path[NET_NETNS_PATH_MAX];  /* "/run/netns/<prefix>-<i>" */
        char     veth_host[NET_IFNAME_MAX];       /* "<prefix>-h<i>", host side */
        char     veth_ns[NET_IFNAME_MAX];         /* "<prefix>-n<i>", in the netns */
        char     tap[NET_IFNAME_MAX];             /* NET_TAP_NAME */
        uint32_t veth_host_ip;                    /* host byte order */
        uint32_t veth_ns_ip;
        uint8_t  veth_len;                        /* 31 or 30 */
        uint32_t sandbox_ip;
        char     veth_host_ip_str[NET_IP_STR_MAX];
        char     veth_ns_ip_str[NET_IP_STR_MAX];
        char     sandbox_ip_str[NET_IP_STR_MAX];
};

/* Fills |c| with the defaults listed in struct net_config. */
void net_config_default(struct net_config *c);

/* Pure validation: prefix charset and length, ranges canonical, veth range
 * and sandbox range disjoint and clear of 169.254.0.0/16 and 127.0.0.0/8,
 * 1 <= slots <= net_config_max_slots(). Returns 0 or -EINVAL with |err|
 * saying which field. The host's routes are checked by net_host_check(). */
int net_config_validate(const struct net_config *c, struct ha_err *err);

/* Largest N the ranges of |c| allow (0 when they allow none): every slot
 * needs one veth pair (pair 0 unused) and one sandbox address (network and
 * broadcast addresses unused). Does not look at c->slots. */
uint32_t net_config_max_slots(const struct net_config *c);

/* Fills |ret| for slot |slot| of a validated |c|. Returns 0, or -ERANGE
 * when slot is 0 or above c->slots. */
int net_slot_addr_make(const struct net_config *c, uint32_t slot,
                       struct net_slot_addr *ret);

/* Parses "a.b.c.d/len" (or "a.b.c.d" = /32) strictly: decimal octets
 * without leading zeros, nothing trailing. Host bits past len are cleared
 * so the value is canonical. Returns 0 or -EINVAL. */
int net_cidr_parse(const char *s, struct net_cidr *ret);

/* Writes "a.b.c.d/len" into |buf|. Returns 0 or -ENOSPC. */
int net_cidr_format(const struct net_cidr *c, char *buf, size_t size);

/* Writes "a.b.c.d" (host-order |ip|) into |buf|. Returns 0 or -ENOSPC. */
int net_ip_format(uint32_t ip, char *buf, size_t size);

/* True when the two networks share at least one address. */
bool net_cidr_overlaps(const struct net_cidr *a, const struct net_cidr *b);

/* True when |ip| lies inside |c|. */
bool net_cidr_contains(const struct net_cidr *c, uint32_t ip);

/* Parses "<prefix>-<i>" for the prefix of |c|; returns the slot number
 * (1..NET_SLOT_NUMBER_MAX) or -EINVAL when |name| is not such a name.
 * Used by recovery to recognise our namespaces. */
int net_netns_name_parse(const struct net_config *c, const char *name);

/* What the sandbox manager and the VM driver need to know about a slot.
 * Strings are NUL-terminated. */
struct net_slot_info {
        uint32_t slot;
        char     netns[NET_NETNS_NAME_MAX];       /* "<prefix>-<i>" */
        char     netns_path[NET_NETNS_PATH_MAX];  /* open + setns() before exec'ing the VMM */
        char     tap[NET_IFNAME_MAX];             /* host_dev_name for Firecracker */
        char     sandbox_ip[NET_IP_STR_MAX];      /* where the host reaches the guest */
        char     guest_ip[NET_IP_STR_MAX];        /* NET_GUEST_IP */
        char     guest_mac[18];                   /* NET_GUEST_MAC, guest_mac for Firecracker */
        char     boot_ip_arg[64];                 /* NET_GUEST_BOOT_ARG, append to boot_args */
};

/* Fills |ret| for slot |slot| of a validated |c|. Returns 0 or -ERANGE. */
int net_slot_info_make(const struct net_config *c, uint32_t slot,
                       struct net_slot_info *ret);

#endif
