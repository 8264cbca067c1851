/*
 * ct.h - conntrack scrubbing over nfnetlink (ctnetlink), no library.
 *
 * A released slot must not hand its successor stale NAT state: replies of
 * an old flow would reach the new guest. Inside a slot's namespace every
 * entry belongs to the slot, so the whole table is flushed; on the host
 * only the entries whose original source or destination is the slot's
 * sandbox address are deleted (kernel-side filtered dump, then delete by
 * tuple), leaving everyone else's connections alone. Internal to src/net/.
 */
#ifndef NET_CT_H
#define NET_CT_H

#include <stdint.h>

/* Deletes every IPv4 conntrack entry of the calling thread's namespace.
 * Returns 0 or -errno. */
int net_ct_flush_all(void);

/* Deletes, in the calling thread's namespace, every IPv4 entry whose
 * original-direction source or destination is |ip| (host byte order).
 * Returns the number deleted (>= 0) or -errno. */
int net_ct_flush_ip(uint32_t ip);

/* Counts IPv4 entries with original source or destination |ip| (tests). */
int net_ct_count_ip(uint32_t ip);

#endif
