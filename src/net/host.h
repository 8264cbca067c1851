/*
 * host.h - the host-side state shared by all slots of one prefix.
 *
 * One nftables table "inet <prefix>" in the host namespace holds every
 * host rule: masquerade of the sandbox range for egress, a guard that drops
 * anything a guest sends to the host itself (any of its addresses, the
 * agent's port included) except replies and configured ports, and a guard
 * that stops sandboxes from reaching each other. Rules match the host veth
 * names by wildcard ("<prefix>-h*"), so adding a slot never edits the
 * table. Internal to src/net/.
 */
#ifndef NET_HOST_H
#define NET_HOST_H

#include "core/err.h"
#include "net/slot_addr.h"

/* Fails with -EADDRINUSE when a route of the host (any table, default
 * routes excepted) overlaps the veth or sandbox range of |c|. Routes out of
 * links with our own prefix are leftovers that recovery removes, and are
 * ignored. Run in the host namespace. */
int net_host_check(const struct net_config *c, struct ha_err *err);

/* Enables IPv4 forwarding and (re)creates the host table atomically.
 * Returns 0 or -errno. Forwarding is left on by net_host_remove(): other
 * software on the host may rely on it once it is on. */
int net_host_setup(const struct net_config *c, struct ha_err *err);

/* Deletes the host table; absent is not an error. */
int net_host_remove(const struct net_config *c, struct ha_err *err);

/* Writes "1" to a /proc/sys file of the calling thread's namespace. */
int net_sysctl_enable(const char *path);

#endif
