/*
 * metrics_http.c - see metrics_http.h.
 *
 * A blocking accept loop is enough: scrapes come every few seconds from one
 * or two scrapers. Each connection gets 2 s to send its request and take the
 * answer (SO_RCVTIMEO / SO_SNDTIMEO), so a stuck client delays the next
 * scrape by at most that, and never touches the RPC loop. Stop is an eventfd
 * polled next to the listening socket.
 */
#include "service/metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"

#define REQ_MAX 8192
#define IO_TIMEOUT_S 2

struct metrics_http {
        int lfd, stopfd;
        int port;
        pthread_t thread;
};

static int send_all(int fd, const char *p, size_t n)
{
        while (n) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return -errno;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

static void answer(int fd, int status, const char *reason, const char *ctype, const char *body, size_t len)
{
        char head[256];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                         status, reason, ctype, len);
        if (send_all(fd, head, (size_t)n) == 0 && len)
                send_all(fd, body, len);
}

/* Reads the request head (up to the blank line) and answers it. */
static void serve(int fd)
{
        struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        char req[REQ_MAX + 1];
        size_t len = 0;
        while (len < REQ_MAX) {
                ssize_t r = recv(fd, req + len, REQ_MAX - len, 0);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return;         /* timeout or EOF before a full head: just close */
                len += (size_t)r;
                req[len] = '\0';
                if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
                        break;
        }
        req[len] = '\0';
        char *eol = strpbrk(req, "\r\n");
        if (!eol) {
                static const char msg[] = "request head too large\n";
                answer(fd, 431, "Request Header Fields Too Large", "text/plain", msg, sizeof msg - 1);
                return;
        }
        *eol = '\0';
        /* "GET /metrics HTTP/1.1"; a query string is ignored, as Prometheus
         * clients may add one. */
        char *sp1 = strchr(req, ' ');
        char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
                static const char msg[] = "bad request line\n";
                answer(fd, 400, "Bad Request", "text/plain", msg, sizeof msg - 1);
                return;
        }
        *sp1 = *sp2 = '\0';
        char *path = sp1 + 1;
        char *q = strchr(path, '?');
        if (q)
                *q = '\0';
        if (strcmp(path, "/metrics") != 0) {
                static const char msg[] = "only /metrics is served here\n";
                answer(fd, 404, "Not Found", "text/plain", msg, sizeof msg - 1);
                return;
        }
        if (strcmp(req, "GET") != 0) {
                static const char msg[] = "only GET\n";
                answer(fd, 405, "Method Not Allowed", "text/plain", msg, sizeof msg - 1);
                return;
        }
        char *text = NULL;
        size_t tlen = 0;
        if (ha_metrics_render(ha_metrics_global(), &text, &tlen) < 0) {
                static const char msg[] = "cannot render metrics\n";
                answer(fd, 500, "Internal Server Error", "text/plain", msg, sizeof msg - 1);
                return;
        }
        answer(fd, 200, "OK", HA_METRICS_CONTENT_TYPE, text, tlen);
        free(text);
}

static void *accept_main(void *arg)
{
        struct metrics_http *h = arg;
        struct pollfd p[2] = { { .fd = h->lfd, .events = POLLIN }, { .fd = h->stopfd, .events = POLLIN } };
        for (;;) {
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        ha_log_error("metrics.poll_failed", "err=\"%s\"", strerror(errno));
                        return NULL;
                }
                if (p[1].revents)
                        return NULL;
                int fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        continue;       /* ECONNABORTED, EMFILE...: the next poll retries */
                serve(fd);
                close(fd);
        }
}

static bool is_loopback(const struct sockaddr *sa)
{
        if (sa->sa_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
        if (sa->sa_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
        return false;
}

/* Splits "host:port" / "[v6]:port" into |host| and |port|. */
static int split_hostport(const char *spec, char *host, size_t hlen, const char **ret_port)
{
        const char *colon = strrchr(spec, ':');
        if (!colon || colon == spec || !colon[1])
                return -EINVAL;
        const char *h = spec;
        size_t n = (size_t)(colon - spec);
        if (*h == '[') {
                if (n < 2 || h[n - 1] != ']')
                        return -EINVAL;
                h++;
                n -= 2;
        }
        if (n == 0 || n >= hlen)
                return -EINVAL;
        memcpy(host, h, n);
        host[n] = '\0';
        *ret_port = colon + 1;
        return 0;
}

int metrics_http_start(const char *spec, bool allow_remote, struct metrics_http **ret, struct ha_err *err)
{
        char host[256];
        const char *port;
        if (split_hostport(spec, host, sizeof host, &port) < 0)
                return ha_err_set(err, -EINVAL, "--metrics-listen %s: expected HOST:PORT", spec);
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
        struct addrinfo *ai = NULL;
        int g = getaddrinfo(host, port, &hints, &ai);
        if (g != 0)
                return ha_err_set(err, -EINVAL, "--metrics-listen %s: %s", spec, gai_strerror(g));
        int r;
        if (!allow_remote && !is_loopback(ai->ai_addr)) {
                r = ha_err_set(err, -EINVAL,
                               "--metrics-listen %s: refusing a non-loopback address for a cleartext, "
                               "unauthenticated listener (scrape GET /metrics over TLS instead, or --insecure)",
                               spec);
                goto out_ai;
        }
        struct metrics_http *h = calloc(1, sizeof *h);
        if (!h) {
                r = -ENOMEM;
                goto out_ai;
        }
        h->stopfd = -1;
        h->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (h->lfd < 0) {
                r = ha_err_set(err, -errno, "--metrics-listen %s: socket: %s", spec, strerror(errno));
                goto out_h;
        }
        int one = 1;
        setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(h->lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(h->lfd, 16) < 0) {
                r = ha_err_set(err, -errno, "--metrics-listen %s: %s", spec, strerror(errno));
                goto out_lfd;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        memset(&ss, 0, sizeof ss);
        if (getsockname(h->lfd, (struct sockaddr *)&ss, &sl) < 0) {
                r = ha_err_set(err, -errno, "--metrics-listen %s: getsockname: %s", spec, strerror(errno));
                goto out_lfd;
        }
        h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
        h->stopfd = eventfd(0, EFD_CLOEXEC);
        if (h->stopfd < 0) {
                r = ha_err_set(err, -errno, "--metrics-listen: eventfd: %s", strerror(errno));
                goto out_lfd;
        }
        r = pthread_create(&h->thread, NULL, accept_main, h);
        if (r != 0) {
                r = ha_err_set(err, -r, "--metrics-listen: cannot start its thread: %s", strerror(r));
                goto out_stopfd;
        }
        freeaddrinfo(ai);
        ha_log_info("metrics.listening", "addr=%s port=%d", spec, h->port);
        *ret = h;
        return 0;
out_stopfd:
        close(h->stopfd);
out_lfd:
        close(h->lfd);
out_h:
        free(h);
out_ai:
        freeaddrinfo(ai);
        return r;
}

int metrics_http_port(const struct metrics_http *h)
{
        return h ? h->port : 0;
}

void metrics_http_stop(struct metrics_http *h)
{
        if (!h)
                return;
        uint64_t one = 1;
        if (write(h->stopfd, &one, sizeof one) != sizeof one)
                ha_log_error("metrics.stop_failed", "err=\"%s\"", strerror(errno));
        pthread_join(h->thread, NULL);
        close(h->stopfd);
        close(h->lfd);
        free(h);
}
