/*
 * vsock.h - the host side of Firecracker's "hybrid vsock": a guest port is
 * reached by connecting to the VM's vsock uds_path and saying
 * "CONNECT <port>\n" (in one write: Firecracker reads it from a
 * non-blocking socket and may drop a split line), then reading
 * "OK <host_port>\n". EOF before OK means nobody listens on that guest port
 * yet. The simulator (tools/fcsim) speaks the same handshake.
 */
#ifndef EXEC_VSOCK_H
#define EXEC_VSOCK_H

#include <stdint.h>

#include "core/err.h"

/* Longest accepted handshake reply line, "OK 4294967295\n" with room. */
#define EXEC_VSOCK_LINE_MAX 64

/* One attempt. On success *ret_fd is a connected, non-blocking, CLOEXEC
 * stream socket positioned right after the OK line (no guest byte is
 * consumed). Returns 0, or:
 *   -ENOENT / -ECONNREFUSED / -EAGAIN  the VMM socket is not there or busy
 *   -ECONNRESET  EOF before OK: the guest does not listen (yet)
 *   -ETIMEDOUT   no reply by |deadline_ms|
 *   -EPROTO      a reply that is not "OK <n>\n"
 *   -ENAMETOOLONG, other -errno of socket/connect/send/recv.
 * The first three and -ECONNRESET are worth retrying. */
int exec_vsock_connect(const char *uds_path, uint32_t port, uint64_t deadline_ms, int *ret_fd,
                       struct ha_err *err);

/* Whether exec_vsock_connect() may succeed later with the same arguments. */
int exec_vsock_is_transient(int code);

#endif
