/*
 * slot.h - build and tear down one network slot (names in slot_addr.h).
 *
 * Building runs these steps in order; each failure undoes what was done:
 *
 *   NETNS      named namespace at /run/netns/<prefix>-<i>
 *   VETH       veth <prefix>-h<i> here, peer <prefix>-n<i> created inside
 *   NS_LO      in the namespace: lo up
 *   NS_VETH    <prefix>-n<i>: address, up
 *   NS_ROUTE   default route via the host end
 *   TAP        persistent TAP tap0 (TUNSETIFF + TUNSETPERSIST, then closed:
 *              the VMM opens it later)
 *   TAP_ADDR   tap0: 169.254.0.22/30, up
 *   NS_SYSCTL  ip_forward=1 in the namespace
 *   NS_NFT     table ip slot (DNAT sandbox address -> guest, SNAT guest ->
 *              sandbox address) and table inet guard (the guest may not
 *              talk to the namespace itself, spoof its source, or use IPv6)
 *   HOST_ADDR  <prefix>-h<i>: address, up
 *   HOST_ROUTE sandbox address/32 via the namespace end
 *
 * Everything inside the namespace goes with it, so the undo of the NS_*
 * and TAP steps is removing the namespace; the host side is undone by
 * deleting the host veth (its peer and the host route go with it).
 * No shell and no `ip`: libnl for links, addresses and routes, ioctls for
 * the TAP, libnftables for rules.
 */
#ifndef NET_SLOT_H
#define NET_SLOT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "net/egress.h"
#include "net/slot_addr.h"

enum net_step {
        NET_STEP_NETNS = 1,
        NET_STEP_VETH,
        NET_STEP_NS_LO,
        NET_STEP_NS_VETH,
        NET_STEP_NS_ROUTE,
        NET_STEP_TAP,
        NET_STEP_TAP_ADDR,
        NET_STEP_NS_SYSCTL,
        NET_STEP_NS_NFT,
        NET_STEP_HOST_ADDR,
        NET_STEP_HOST_ROUTE,
        NET_STEP_COUNT = NET_STEP_HOST_ROUTE,
};

/* Test-only failure injection: when fail_at is n > 0, the n-th step begun
 * while this struct is passed fails with -EIO. seen counts steps begun. Not
 * thread-safe: one build at a time per struct. */
struct net_fault {
        unsigned fail_at;
        unsigned seen;
};

/* Name of a step ("NETNS", ...), for messages. */
const char *net_step_name(enum net_step s);

/* Builds slot |slot| of validated config |c|. Returns 0, or -errno with
 * |err| naming the step; then nothing of the slot is left. -EEXIST means a
 * namespace or link of that name exists (recovery has not run);
 * -EADDRINUSE that a route to the slot's sandbox address exists that is not
 * ours (an operator's or another program's: left alone, the slot cannot be
 * built while it is there). |fault| is NULL outside tests. */
int net_slot_build(const struct net_config *c, uint32_t slot, struct net_fault *fault,
                   struct ha_err *err);

/* What the caller keeps per slot for the host conntrack flush: the packets
 * the host veth had carried when the last flush began, or NET_PKTS_UNKNOWN
 * (the next flush cannot be skipped). Every packet to or from the sandbox
 * address crosses that veth, so while its count stays the same no host
 * entry of the address can have been made since that flush. */
#define NET_PKTS_UNKNOWN UINT64_MAX

/* The packets slot |slot|'s host veth has carried so far (received, sent,
 * dropped on the way out), or NET_PKTS_UNKNOWN when they cannot be read. */
uint64_t net_slot_host_packets(const struct net_config *c, uint32_t slot);

/* Removes everything of slot |slot| that exists: host conntrack entries of
 * its sandbox address, host route, veth pair, namespace (and with it the
 * TAP and its rules). Safe on a half-built or absent slot. Continues past
 * errors and returns the first one (0 when all went). */
int net_slot_teardown(const struct net_config *c, uint32_t slot, struct ha_err *err);
/* The same, skipping the host conntrack flush when the host veth's count
 * still equals |host_pkts| (see NET_PKTS_UNKNOWN). */
int net_slot_teardown_since(const struct net_config *c, uint32_t slot, uint64_t host_pkts,
                            struct ha_err *err);

/* Removes what only the names tell: namespace and host veth named for
 * |slot| under |prefix|, for leftovers with numbers beyond the configured
 * ranges. Returns the first error or 0. */
int net_slot_remove_names(const char *prefix, uint32_t slot);

/* Makes a released slot fit for its next sandbox: flushes the namespace's
 * conntrack table and the host's entries of the sandbox address (skipped
 * when the host veth's count still equals *|host_pkts|, which is then set
 * for the next time; see NET_PKTS_UNKNOWN), and, when |reset_egress| (a
 * policy other than allow-all was ever applied), resets the egress policy
 * to allow-all. Returns 0 or -errno. */
int net_slot_scrub(const struct net_config *c, uint32_t slot, bool reset_egress,
                   uint64_t *host_pkts, struct ha_err *err);

/* Replaces the egress policy of a built slot (NULL = allow all).
 * Returns 0, -EINVAL for a bad policy, or -errno. */
int net_slot_egress_set(const struct net_config *c, uint32_t slot,
                        const struct net_egress *eg, struct ha_err *err);

/* True when the slot's namespace can be entered and its host veth and TAP
 * exist: what recovery requires to adopt a slot. */
bool net_slot_is_built(const struct net_config *c, uint32_t slot);

#endif
