/*
 * nft.h - runs nftables rule text through libnftables (no `nft` binary).
 *
 * Callers build the text only from values the agent generated (slot
 * numbers, addresses formatted by slot_addr.c, CIDRs parsed and re-printed
 * by egress.c): never from a caller's string. Internal to src/net/.
 */
#ifndef NET_NFT_H
#define NET_NFT_H

#include "core/err.h"

/* Largest rule text we generate: an egress policy at NET_EGRESS_CIDRS_MAX
 * CIDRs of at most 19 bytes each plus the fixed rules fits easily. */
#define NET_NFT_TEXT_MAX 16384

/* Runs |rules| as one atomic nftables transaction in the calling thread's
 * network namespace. Returns 0, or -EIO with nft's first error line in
 * |err| (libnftables reports no errno), or -ENOMEM. */
int net_nft_run(const char *rules, struct ha_err *err);

#endif
