/*
 * netns.h - named network namespaces, iproute2-compatible, without `ip`.
 *
 * A named namespace is an nsfs bind mount at /run/netns/<name>, exactly as
 * `ip netns add` makes it, so `ip netns exec <name> ...` works for debugging
 * and the Firecracker launcher can open the path and setns() into it.
 * Internal to src/net/.
 */
#ifndef NET_NETNS_H
#define NET_NETNS_H

#include "core/err.h"

/* Creates a fresh network namespace bound at |path| (inside NET_NETNS_DIR,
 * which is created and made a shared mount point like iproute2 does).
 * Returns 0, -EEXIST when |path| exists, or another -errno; on failure
 * nothing is left at |path|. */
int net_netns_create(const char *path, struct ha_err *err);

/* Unmounts and unlinks |path|. Missing or unmounted is not an error, so it
 * is safe on half-built slots. Returns 0 or -errno. */
int net_netns_remove(const char *path);

/* Runs fn(arg) on a fresh thread that has joined the namespace at |path|,
 * and returns what fn returned (or -errno when the namespace cannot be
 * entered). Sockets fn opens stay bound to that namespace; files it opens
 * under /proc/sys/net see that namespace's settings. The calling thread's
 * own namespace is never touched, so a failure cannot strand a worker
 * thread in a sandbox's namespace. */
int net_netns_run(const char *path, int (*fn)(void *arg), void *arg);

#endif
