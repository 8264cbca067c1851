/*
 * vsock.h - the host side of Firecracker's "hybrid vsock" on top of plain
 * AF_UNIX sockets.
 *
 * Firecracker listens on the vsock device's uds_path; a host process
 * connects, writes "CONNECT <port>\n" in one write and gets
 * "OK <host_port>\n" once the guest accepted, then a byte stream. fcsim does
 * the same, except that "the guest's vsock port <port>" is the AF_UNIX
 * socket <port> in the guest's vsock directory (/.vsock inside the guest,
 * reached from the host as /proc/<guest pid>/root/.vsock/<port>; the guest
 * agent listens there when HA_VSOCK_UNIX_DIR is set). Host ports count up
 * from 2^30 as in Firecracker. A connection that sends anything else,
 * nothing within 2 s, or names a port nobody listens on is closed without
 * a reply, which is what a Firecracker client sees as "connection reset".
 *
 * Guest -> host works the same way in reverse: the guest connects to the
 * AF_UNIX socket "host" in its vsock directory (/.vsock/host), writes
 * "CONNECT <port>\n" and gets "OK <port>\n" once fcsim reached the host
 * listener at "<uds_path>_<port>" (Firecracker's convention for
 * guest-initiated connections), or EOF when nobody listens there.
 *
 * The listening socket is bound when the device is configured (PUT /vsock),
 * so a leftover file fails that call; fcsim never unlinks it (the driver
 * does), again as Firecracker.
 *
 * Threads: one acceptor, plus two per connection (one per direction), so a
 * slow reader on one side never blocks the other direction. At most
 * FCSIM_VSOCK_CONNS_MAX connections, Firecracker's per-device limit.
 */
#ifndef FCSIM_VSOCK_H
#define FCSIM_VSOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define FCSIM_VSOCK_CONNS_MAX 1023
/* Firecracker's host-side connection request timeout. */
#define FCSIM_VSOCK_CONNECT_TIMEOUT_MS 2000
/* First host port handed out in "OK <port>". */
#define FCSIM_VSOCK_HOST_PORT_BASE (1u << 30)
/* The guest-side socket for guest-initiated connections. */
#define FCSIM_VSOCK_GUEST_HOST_NAME "host"

struct fcsim_vsock;

/* Binds and listens on |uds_path|. -EADDRINUSE when the file exists.
 * Connections wait in the backlog until fcsim_vsock_start(). */
int fcsim_vsock_open(const char *uds_path, struct fcsim_vsock **ret_vsock, struct ha_err *err);
/* Starts serving connections towards |guest_dir| (a host path of the
 * guest's vsock directory) and listening there on "host" for the guest's
 * own connections. Returns 0 or -errno. */
int fcsim_vsock_start(struct fcsim_vsock *v, const char *guest_dir, struct ha_err *err);
/* Stops serving: drops every connection, joins the threads and closes the
 * guest-side listener. The uds_path listener stays (connections queue in
 * its backlog), so fcsim_vsock_start() may be called again. */
void fcsim_vsock_stop(struct fcsim_vsock *v);
/* While paused, new connection requests (either direction) wait for
 * resume and are dropped when the 2 s request timeout passes first, as a
 * paused Firecracker guest never answers them. Open streams are left
 * alone: their bytes wait in socket buffers. */
void fcsim_vsock_set_paused(struct fcsim_vsock *v, bool paused);
/* Drops every open connection (Firecracker resets vsock on snapshot). */
void fcsim_vsock_reset(struct fcsim_vsock *v);
/* Stops all threads, closes every socket (the socket file is kept) and
 * frees |v|. NULL is a no-op. */
void fcsim_vsock_close(struct fcsim_vsock *v);

/* Parses a connection request: "CONNECT <port>\n" with the keyword in any
 * case. Returns the number of bytes it occupies (> 0) and the port, or
 * -EINVAL. Exposed for the unit tests. */
int fcsim_vsock_parse_connect(const char *buf, size_t len, unsigned *ret_port);

#endif
