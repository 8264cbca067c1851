/*
 * relay.h - the frame relay between each host TAP and the guest's TAP,
 * standing in for Firecracker's virtio-net device: every Ethernet frame
 * read from one side is written to the other, unchanged.
 *
 * One thread serves every interface with poll(). A frame that the other
 * side cannot take right now (EAGAIN) is dropped and counted, as a NIC
 * with a full ring drops it. While the VM is paused nothing is relayed,
 * as a paused Firecracker VM moves no packets; frames wait in the TAP
 * queues (and are dropped by the kernel when those fill).
 */
#ifndef FCSIM_RELAY_H
#define FCSIM_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

struct fcsim_relay;

struct fcsim_relay_stats {
        uint64_t to_guest_frames, to_host_frames, dropped_frames;
};

/* Starts relaying host_fds[i] <-> guest_fds[i] for i < n. The host fds stay
 * owned by the caller and must outlive the relay; the guest fds are owned
 * by the relay from the call on (closed by fcsim_relay_stop, or on
 * failure). Returns 0 or -errno. */
int fcsim_relay_start(const int *host_fds, const int *guest_fds, unsigned n,
                      struct fcsim_relay **ret_relay, struct ha_err *err);
/* Stops or restarts the flow of frames; returns once the thread obeys. */
void fcsim_relay_set_paused(struct fcsim_relay *r, bool paused);
void fcsim_relay_get_stats(struct fcsim_relay *r, struct fcsim_relay_stats *ret);
/* Stops the thread, closes the guest fds and frees |r|. NULL is a no-op. */
void fcsim_relay_stop(struct fcsim_relay *r);

#endif
