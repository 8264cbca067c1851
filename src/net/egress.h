/*
 * egress.h - per-sandbox egress policy and its nftables text.
 *
 * The policy is applied as table "inet egress" inside the slot's namespace,
 * filtering only what the guest starts (packets in from the TAP); replies
 * to connections the host opened to the guest are always allowed. The host
 * itself is protected separately by the host table (host.h), whatever the
 * policy says. CIDRs arrive already parsed (net_cidr_parse()) and are
 * re-printed here from integers, so no caller text reaches nftables.
 */
#ifndef NET_EGRESS_H
#define NET_EGRESS_H

#include <stddef.h>

#include "core/err.h"
#include "net/slot_addr.h"

/* One rule per CIDR keeps overlapping CIDRs legal (an nft interval set
 * would reject them); this bound keeps the rule text and the per-packet
 * walk of the chain small. */
#define NET_EGRESS_CIDRS_MAX 256

enum net_egress_mode {
        NET_EGRESS_ALLOW_ALL = 0,  /* default: no egress table at all */
        NET_EGRESS_DENY_ALL,
        NET_EGRESS_ALLOW_LIST,     /* only cidrs (an empty list denies all) */
        NET_EGRESS_DENY_LIST,      /* all but cidrs */
};

struct net_egress {
        enum net_egress_mode   mode;
        const struct net_cidr *cidrs;   /* borrowed for the call only */
        size_t                 n_cidrs; /* <= NET_EGRESS_CIDRS_MAX */
};

/* Checks |eg| (NULL is allow-all, valid) without producing text.
 * Returns 0 or -EINVAL with |err| saying what is wrong. */
int net_egress_validate(const struct net_egress *eg, struct ha_err *err);

/* Writes the nft text that replaces the namespace's egress table with
 * |eg| (NULL = allow all, which removes the table). Returns 0, -EINVAL
 * (unknown mode, too many or non-canonical CIDRs; |err| says which) or
 * -ENOSPC when |size| is too small. */
int net_egress_rules(const struct net_egress *eg, char *buf, size_t size,
                     struct ha_err *err);

#endif
