/*
 * vsock.c - hybrid vsock CONNECT handshake (see vsock.h).
 *
 * The reply line is read with MSG_PEEK first and then consumed exactly up
 * to its newline, so bytes the guest sends right after the OK stay in the
 * socket for the frame reader instead of being lost in a line buffer.
 */
#include "exec/vsock.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/time.h"

int exec_vsock_is_transient(int code)
{
        /* -EPIPE: the VMM accepted and closed before our CONNECT line went
         * out; the same "guest not listening yet" as an EOF before the
         * reply (-ECONNRESET), only the timing differs. */
        return code == -ENOENT || code == -ECONNREFUSED || code == -EAGAIN || code == -ECONNRESET ||
               code == -EPIPE;
}

/* Waits for |events| on |fd| until |deadline_ms|. Returns 0, -ETIMEDOUT,
 * -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_ms)
{
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                uint64_t now = ha_now_ms();
                int tmo, n;

                if (now >= deadline_ms)
                        return -ETIMEDOUT;
                tmo = deadline_ms - now > 1000 ? 1000 : (int)(deadline_ms - now);
                n = poll(&p, 1, tmo);
                if (n > 0)
                        return 0;
                if (n < 0 && errno != EINTR)
                        return -errno;
        }
}

/* Reads the reply line without consuming anything past its newline. */
static int read_reply(int fd, uint64_t deadline_ms, char *line, size_t cap, struct ha_err *err)
{
        for (;;) {
                ssize_t n = recv(fd, line, cap - 1, MSG_PEEK);
                char *nl;

                if (n == 0)
                        return ha_err_set(err, -ECONNRESET, "vsock: closed before OK (guest port not listening)");
                if (n < 0) {
                        int r = -errno;

                        if (r == -EINTR)
                                continue;
                        if (r != -EAGAIN)
                                return ha_err_set(err, r, "vsock: recv: %s", strerror(-r));
                        r = wait_fd(fd, POLLIN, deadline_ms);
                        if (r < 0)
                                return ha_err_set(err, r, "vsock: no reply to CONNECT: %s", strerror(-r));
                        continue;
                }
                line[n] = '\0';
                nl = memchr(line, '\n', (size_t)n);
                if (!nl) {
                        if ((size_t)n >= cap - 1)
                                return ha_err_set(err, -EPROTO, "vsock: reply line too long");
                        /* Partial line: wait for more bytes. */
                        int r = wait_fd(fd, POLLIN, deadline_ms);

                        if (r < 0)
                                return ha_err_set(err, r, "vsock: no reply to CONNECT: %s", strerror(-r));
                        /* The peek returned data, so poll returns at once;
                         * avoid a busy loop until the rest arrives. */
                        usleep(1000);
                        continue;
                }
                size_t want = (size_t)(nl - line) + 1;
                ssize_t m = recv(fd, line, want, 0);

                if (m != (ssize_t)want)
                        return ha_err_set(err, -EPROTO, "vsock: short read of reply line");
                line[want - 1] = '\0';
                return 0;
        }
}

/* "OK <host port>" and nothing else: Firecracker's answer to CONNECT. */
static bool reply_ok(const char *line)
{
        if (strncmp(line, "OK ", 3) != 0 || line[3] < '0' || line[3] > '9')
                return false;
        char *end;
        errno = 0;
        unsigned long long port = strtoull(line + 3, &end, 10);
        return errno == 0 && *end == '\0' && port <= UINT32_MAX;
}

int exec_vsock_connect(const char *uds_path, uint32_t port, uint64_t deadline_ms, int *ret_fd,
                       struct ha_err *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char req[32], line[EXEC_VSOCK_LINE_MAX];
        int fd, r, len;
        ssize_t n;

        if (strlen(uds_path) >= sizeof sa.sun_path)
                return ha_err_set(err, -ENAMETOOLONG, "vsock: path longer than %zu bytes: %s",
                                  sizeof sa.sun_path - 1, uds_path);
        memcpy(sa.sun_path, uds_path, strlen(uds_path) + 1);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return ha_err_set(err, -errno, "vsock: socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                r = -errno;
                ha_err_set(err, r, "vsock: connect %s: %s", uds_path, strerror(-r));
                goto out_close;
        }

        len = snprintf(req, sizeof req, "CONNECT %" PRIu32 "\n", port);
        /* One send on a fresh socket of a 20-byte line never comes out short. */
        n = send(fd, req, (size_t)len, MSG_NOSIGNAL);
        if (n != len) {
                r = n < 0 ? -errno : -EIO;
                ha_err_set(err, r, "vsock: send CONNECT: %s", strerror(-r));
                goto out_close;
        }
        r = read_reply(fd, deadline_ms, line, sizeof line, err);
        if (r < 0)
                goto out_close;
        if (!reply_ok(line)) {
                r = ha_err_set(err, -EPROTO, "vsock: unexpected reply to CONNECT %" PRIu32 ": \"%.40s\"",
                               port, line);
                goto out_close;
        }
        *ret_fd = fd;
        return 0;

out_close:
        close(fd);
        return r;
}
