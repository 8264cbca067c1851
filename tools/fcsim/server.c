/*
 * server.c - see server.h. Single-threaded: every request is handled to
 * completion before the next, as Firecracker's API thread does (its VMM
 * thread serialises them anyway). Responses are small, so a response is
 * written with a short bounded wait for socket space rather than queued.
 */
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "http.h"

/* A client that does not take a response within this time is dropped. */
#define WRITE_TIMEOUT_MS 2000

struct conn {
        int fd;
        struct ha_buf in;
        bool continue_sent;
};

int fcsim_server_bind(const char *path, int *ret_fd, struct ha_err *err)
{
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        size_t n = strlen(path);
        if (n == 0 || n >= sizeof sa.sun_path)
                return ha_err_set(err, -ENAMETOOLONG,
                                  "API socket path is empty or longer than %zu bytes",
                                  sizeof sa.sun_path - 1);
        memcpy(sa.sun_path, path, n);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                int r = -errno;
                return ha_err_set(err, r, "socket: %s", strerror(-r));
        }
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0) {
                int r = -errno;
                close(fd);
                return ha_err_set(err, r, "Failed to bind the API socket %s: %s (os error %d)",
                                  path, strerror(-r), -r);
        }
        *ret_fd = fd;
        return 0;
}

static bool send_all(int fd, const uint8_t *p, size_t n)
{
        uint64_t deadline = ha_now_ms() + WRITE_TIMEOUT_MS;
        while (n > 0) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
                if (w > 0) {
                        p += w;
                        n -= (size_t)w;
                        continue;
                }
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno == EAGAIN) {
                        uint64_t now = ha_now_ms();
                        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                        if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
                                return false;
                        continue;
                }
                return false;
        }
        return true;
}

static void conn_close(struct conn *c)
{
        close(c->fd);
        ha_buf_done(&c->in);
        c->fd = -1;
}

/* Sends a 400 for input that is not a request, then the connection ends. */
static void reject(struct conn *c, const char *msg)
{
        struct ha_buf body, out;
        ha_buf_init(&body, 4096);
        ha_buf_init(&out, 8192);
        if (fcsim_http_fault_body(&body, msg) == 0 &&
            fcsim_http_format(&out, 400, (const char *)body.data, body.len, false) == 0)
                send_all(c->fd, out.data, out.len);
        ha_buf_done(&body);
        ha_buf_done(&out);
}

/* Serves every complete request buffered on |c|. Returns false when the
 * connection must close. */
static bool serve(struct fcsim_vm *vm, struct conn *c, size_t body_max)
{
        for (;;) {
                struct fcsim_http_req req;
                struct ha_err err = { "" };
                int n = fcsim_http_parse((const char *)c->in.data, c->in.len, body_max, &req, &err);
                if (n < 0) {
                        ha_log_info("fcsim.api.bad_request", "reason=\"%s\"", err.msg);
                        reject(c, err.msg);
                        return false;
                }
                if (n == 0) {
                        if (req.head_complete && req.expect_continue && !c->continue_sent) {
                                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                                c->continue_sent = true;
                                return send_all(c->fd, (const uint8_t *)cont, sizeof cont - 1);
                        }
                        return true;
                }
                struct ha_buf body, out;
                ha_buf_init(&body, FCSIM_HTTP_BODY_MAX);
                ha_buf_init(&out, FCSIM_HTTP_BODY_MAX + 1024);
                int status = 500;
                int r = fcsim_api_handle(vm, &req, &status, &body);
                if (r == 0)
                        r = fcsim_http_format(&out, status,
                                              status == 204 ? NULL : (const char *)body.data,
                                              body.len, req.keep_alive);
                bool ok = r == 0 && send_all(c->fd, out.data, out.len);
                ha_buf_done(&body);
                ha_buf_done(&out);
                ha_buf_consume(&c->in, (size_t)n);
                c->continue_sent = false;
                if (!ok || !req.keep_alive || vm->exit_requested)
                        return false;
        }
}

static bool conn_read(struct fcsim_vm *vm, struct conn *c, size_t body_max)
{
        uint8_t buf[16384];
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return true;
        if (n <= 0)
                return false;
        if (ha_buf_append(&c->in, buf, (size_t)n) < 0) {
                reject(c, "Request is too large.");
                return false;
        }
        return serve(vm, c, body_max);
}

static int handle_signal(int sig_fd)
{
        struct signalfd_siginfo si;
        if (read(sig_fd, &si, sizeof si) != sizeof si)
                return 0;
        ha_log_info("fcsim.signal", "signo=%u", si.ssi_signo);
        if (si.ssi_signo == SIGHUP)
                return 156; /* Firecracker's exit code for SIGHUP */
        return -(int)si.ssi_signo;
}

int fcsim_server_run(struct fcsim_vm *vm, int listen_fd, int sig_fd, size_t body_max)
{
        struct conn conns[FCSIM_API_CONNS_MAX];
        unsigned n_conns = 0;
        int ret = 0;
        uint64_t next_flush = ha_now_ms() + FCSIM_METRICS_PERIOD_MS;

        for (;;) {
                struct pollfd pfd[3 + FCSIM_API_CONNS_MAX];
                nfds_t nf = 0;
                pfd[nf++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
                pfd[nf++] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
                pfd[nf++] = (struct pollfd){ .fd = fcsim_vm_guest_pidfd(vm), .events = POLLIN };
                for (unsigned i = 0; i < n_conns; i++)
                        pfd[nf++] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
                uint64_t now = ha_now_ms();
                int timeout = next_flush > now ? (int)(next_flush - now) : 0;
                if (poll(pfd, nf, timeout) < 0 && errno != EINTR) {
                        ret = 1;
                        break;
                }
                if (ha_now_ms() >= next_flush) {
                        fcsim_vm_flush_metrics(vm);
                        next_flush = ha_now_ms() + FCSIM_METRICS_PERIOD_MS;
                }
                if (pfd[0].revents & POLLIN) {
                        ret = handle_signal(sig_fd);
                        if (ret != 0)
                                break;
                }
                if (pfd[2].revents & POLLIN) {
                        /* The guest's init exited: the guest rebooted or
                         * powered off. Firecracker exits 0 then. */
                        fcsim_vm_guest_exited(vm);
                        ret = 0;
                        break;
                }
                for (unsigned i = 0; i < n_conns; i++) {
                        if (!(pfd[3 + i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        if (!conn_read(vm, &conns[i], body_max))
                                conn_close(&conns[i]);
                        if (vm->exit_requested)
                                break;
                }
                /* Compact the table (pfd indexes are rebuilt next round). */
                unsigned k = 0;
                for (unsigned i = 0; i < n_conns; i++) {
                        if (conns[i].fd >= 0)
                                conns[k++] = conns[i];
                }
                n_conns = k;
                if (vm->exit_requested) {
                        ret = vm->exit_code;
                        break;
                }
                if (pfd[1].revents & POLLIN) {
                        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                        if (fd >= 0 && n_conns == FCSIM_API_CONNS_MAX) {
                                ha_log_warn("fcsim.api.conn_limit", "max=%d", FCSIM_API_CONNS_MAX);
                                close(fd);
                        } else if (fd >= 0) {
                                conns[n_conns].fd = fd;
                                conns[n_conns].continue_sent = false;
                                ha_buf_init(&conns[n_conns].in, FCSIM_HTTP_HEAD_MAX + body_max);
                                n_conns++;
                        }
                }
        }
        for (unsigned i = 0; i < n_conns; i++)
                conn_close(&conns[i]);
        return ret;
}
