/*
 * vsock.c - see vsock.h. Each connection is reference-counted: the
 * acceptor's registry lists it, and each direction thread holds a
 * reference; the last one closes both sockets. Tearing down (reset, stop)
 * is shutdown(SHUT_RDWR) on both sockets of every connection, which wakes
 * any thread blocked in read or write; the threads then finish on their
 * own and the registry empties.
 */
#include "vsock.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"

/* Per-direction copy buffer. */
#define VSOCK_BUF 65536
/* Forwarding threads need little stack: one buffer lives on the heap. */
#define VSOCK_THREAD_STACK ((size_t)128 * 1024)
/* The request line is short; anything longer is not a request. */
#define VSOCK_REQ_MAX 64

/* A connection is initiated on one side (the accepted socket) and dialed
 * on the other after the request line names the port. */
struct conn {
        struct conn *next, *prev; /* guarded_by: v->lock */
        struct fcsim_vsock *v;    /* immutable */
        bool from_guest;          /* immutable: accepted on the guest listener */
        int accepted_fd;          /* immutable */
        int dialed_fd;            /* guarded_by: v->lock; -1 until connected */
        int refs;                 /* guarded_by: v->lock */
};

struct fcsim_vsock {
        int listen_fd;       /* uds_path */
        int guest_listen_fd; /* <guest dir>/host, -1 until start */
        int evfd;
        char uds_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* immutable */
        char guest_dir[256];                                        /* immutable after start */
        pthread_t acceptor;
        bool started; /* main thread only */
        pthread_mutex_t lock;
        pthread_cond_t idle;
        struct conn *conns;      /* guarded_by: lock */
        unsigned n_conns;        /* guarded_by: lock */
        bool stopping;           /* guarded_by: lock */
        bool paused;             /* guarded_by: lock */
        pthread_cond_t resumed;  /* signalled when paused or stopping changes */
        uint32_t next_host_port; /* guarded_by: lock */
};

int fcsim_vsock_parse_connect(const char *buf, size_t len, unsigned *ret_port)
{
        static const char kw[] = "CONNECT ";
        if (len < sizeof kw || strncasecmp(buf, kw, sizeof kw - 1) != 0)
                return -EINVAL;
        size_t i = sizeof kw - 1;
        uint64_t port = 0;
        size_t digits = 0;
        while (i < len && isdigit((unsigned char)buf[i])) {
                port = port * 10 + (uint64_t)(buf[i] - '0');
                if (port > UINT32_MAX)
                        return -EINVAL;
                i++;
                digits++;
        }
        if (digits == 0 || i >= len || buf[i] != '\n')
                return -EINVAL;
        *ret_port = (unsigned)port;
        return (int)(i + 1);
}

static void conn_unref(struct conn *c)
{
        struct fcsim_vsock *v = c->v;
        pthread_mutex_lock(&v->lock);
        if (--c->refs > 0) {
                pthread_mutex_unlock(&v->lock);
                return;
        }
        if (c->prev)
                c->prev->next = c->next;
        else
                v->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        v->n_conns--;
        pthread_cond_broadcast(&v->idle);
        pthread_mutex_unlock(&v->lock);
        close(c->accepted_fd);
        if (c->dialed_fd >= 0)
                close(c->dialed_fd);
        free(c);
}

static void conn_kill_locked(struct conn *c)
{
        shutdown(c->accepted_fd, SHUT_RDWR);
        if (c->dialed_fd >= 0)
                shutdown(c->dialed_fd, SHUT_RDWR);
}

static bool write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return false;
                p += w;
                n -= (size_t)w;
        }
        return true;
}

/* Copies |from| to |to| until EOF, then half-closes |to|. A failed write
 * (the receiver closed) ends this direction only, as on a real socket: the
 * other direction may still carry what the receiver sent before closing (a
 * guest's "exited" event when the host's last write raced the guest's
 * close). A read error tears the whole connection down. */
static void copy_stream(struct conn *c, int from, int to)
{
        char *buf = malloc(VSOCK_BUF);
        bool ok = buf != NULL;
        while (ok) {
                ssize_t n = read(from, buf, VSOCK_BUF);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n == 0) {
                        shutdown(to, SHUT_WR);
                        break;
                }
                ok = n > 0;
                if (ok && !write_all(to, buf, (size_t)n)) {
                        /* The sender's further writes fail (EPIPE). */
                        shutdown(from, SHUT_RD);
                        shutdown(to, SHUT_WR);
                        break;
                }
        }
        if (!ok) {
                pthread_mutex_lock(&c->v->lock);
                conn_kill_locked(c);
                pthread_mutex_unlock(&c->v->lock);
        }
        free(buf);
}

static void *dialed_to_accepted_main(void *arg)
{
        struct conn *c = arg;
        copy_stream(c, c->dialed_fd, c->accepted_fd);
        conn_unref(c);
        return NULL;
}

static int spawn(void *(*fn)(void *), struct conn *c)
{
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, VSOCK_THREAD_STACK);
        int r = -pthread_create(&t, &attr, fn, c);
        pthread_attr_destroy(&attr);
        return r;
}

/* Host -> guest: <guest dir>/<port>. Guest -> host: <uds_path>_<port>,
 * where Firecracker expects the host to listen. */
static int dial(struct fcsim_vsock *v, bool to_host, unsigned port)
{
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        int n = to_host ? snprintf(sa.sun_path, sizeof sa.sun_path, "%s_%u", v->uds_path, port)
                        : snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%u", v->guest_dir, port);
        if (n < 0 || (size_t)n >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

/* Waits until the VM is not paused or |deadline_ms| passes. Returns true
 * when it runs (and fcsim is not stopping the service). */
static bool wait_running(struct fcsim_vsock *v, uint64_t deadline_ms)
{
        pthread_mutex_lock(&v->lock);
        while (v->paused && !v->stopping && ha_now_ms() < deadline_ms) {
                struct timespec ts = ha_abs_monotonic(deadline_ms);
                pthread_cond_timedwait(&v->resumed, &v->lock, &ts);
        }
        bool ok = !v->paused && !v->stopping;
        pthread_mutex_unlock(&v->lock);
        return ok;
}

/* Handshake, then the accepted -> dialed direction. */
static void *accepted_to_dialed_main(void *arg)
{
        struct conn *c = arg;
        struct fcsim_vsock *v = c->v;
        const char *side = c->from_guest ? "guest" : "host";
        char req[VSOCK_REQ_MAX];
        unsigned port = 0;

        uint64_t t0 = ha_now_ms();
        struct pollfd pfd = { .fd = c->accepted_fd, .events = POLLIN };
        if (poll(&pfd, 1, FCSIM_VSOCK_CONNECT_TIMEOUT_MS) <= 0)
                goto out_unref;
        /* One read, as Firecracker's muxer does: a request split across
         * writes is not a request. */
        ssize_t got = recv(c->accepted_fd, req, sizeof req, MSG_DONTWAIT);
        if (got <= 0)
                goto out_unref;
        int used = fcsim_vsock_parse_connect(req, (size_t)got, &port);
        if (used < 0) {
                ha_log_info("fcsim.vsock.bad_request", "from=%s bytes=%zd", side, got);
                goto out_unref;
        }
        /* A paused guest answers no connection request: wait for resume
         * within the request timeout, else drop it as Firecracker would. */
        if (!wait_running(v, t0 + FCSIM_VSOCK_CONNECT_TIMEOUT_MS)) {
                ha_log_info("fcsim.vsock.timeout", "from=%s port=%u reason=paused", side, port);
                goto out_unref;
        }
        int dfd = dial(v, c->from_guest, port);
        if (dfd < 0) {
                /* Debug only: clients poll a port until the guest listens. */
                ha_log_debug("fcsim.vsock.refused", "from=%s port=%u err=%d", side, port, -dfd);
                goto out_unref;
        }
        pthread_mutex_lock(&v->lock);
        c->dialed_fd = dfd;
        bool stopping = v->stopping;
        /* The host learns its (virtual) local port; the guest learns the
         * port it reached, as a connected AF_VSOCK socket would tell it. */
        uint32_t reply_port = c->from_guest ? port : v->next_host_port++;
        if (!stopping)
                c->refs++; /* for the guest -> host thread */
        pthread_mutex_unlock(&v->lock);
        if (stopping)
                goto out_unref;

        char ok[32];
        int n = snprintf(ok, sizeof ok, "OK %u\n", reply_port);
        if (!write_all(c->accepted_fd, ok, (size_t)n) ||
            !write_all(dfd, req + used, (size_t)(got - used)) ||
            spawn(dialed_to_accepted_main, c) < 0) {
                pthread_mutex_lock(&v->lock);
                conn_kill_locked(c);
                c->refs--; /* the one meant for the other thread: ours still holds it */
                pthread_mutex_unlock(&v->lock);
                goto out_unref;
        }
        ha_log_debug("fcsim.vsock.connected", "from=%s port=%u reply_port=%u", side, port,
                     reply_port);
        copy_stream(c, c->accepted_fd, dfd);
out_unref:
        conn_unref(c);
        return NULL;
}

static void accept_one(struct fcsim_vsock *v, int listen_fd, bool from_guest)
{
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return;
        struct conn *c = calloc(1, sizeof *c);
        pthread_mutex_lock(&v->lock);
        if (!c || v->stopping || v->n_conns >= FCSIM_VSOCK_CONNS_MAX) {
                pthread_mutex_unlock(&v->lock);
                ha_log_warn("fcsim.vsock.rejected", "reason=%s",
                            !c            ? "no_memory"
                            : v->stopping ? "stopping"
                                          : "connection_limit");
                free(c);
                close(fd);
                return;
        }
        c->v = v;
        c->from_guest = from_guest;
        c->accepted_fd = fd;
        c->dialed_fd = -1;
        c->refs = 1;
        c->next = v->conns;
        if (v->conns)
                v->conns->prev = c;
        v->conns = c;
        v->n_conns++;
        pthread_mutex_unlock(&v->lock);
        if (spawn(accepted_to_dialed_main, c) < 0)
                conn_unref(c);
}

static void *acceptor_main(void *arg)
{
        struct fcsim_vsock *v = arg;
        for (;;) {
                struct pollfd pfd[3] = { { .fd = v->evfd, .events = POLLIN },
                                         { .fd = v->listen_fd, .events = POLLIN },
                                         { .fd = v->guest_listen_fd, .events = POLLIN } };
                if (poll(pfd, 3, -1) < 0 && errno != EINTR)
                        break;
                pthread_mutex_lock(&v->lock);
                bool stopping = v->stopping;
                pthread_mutex_unlock(&v->lock);
                if (stopping)
                        break;
                if (pfd[1].revents & POLLIN)
                        accept_one(v, v->listen_fd, false);
                if (pfd[2].revents & POLLIN)
                        accept_one(v, v->guest_listen_fd, true);
        }
        return NULL;
}

static int bind_listen(const char *path, int *ret_fd)
{
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        size_t n = strlen(path);
        if (n == 0 || n >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, n);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

int fcsim_vsock_open(const char *uds_path, struct fcsim_vsock **ret_vsock, struct ha_err *err)
{
        int r;
        struct fcsim_vsock *v = calloc(1, sizeof *v);
        if (!v)
                return ha_err_set(err, -ENOMEM, "out of memory");
        size_t n = strlen(uds_path);
        if (n == 0 || n >= sizeof v->uds_path) {
                free(v);
                return ha_err_set(err, -ENAMETOOLONG,
                                  "Error binding to the host-side Unix socket: path %s is longer "
                                  "than %zu bytes or empty",
                                  uds_path, sizeof v->uds_path - 1);
        }
        memcpy(v->uds_path, uds_path, n + 1);
        v->next_host_port = FCSIM_VSOCK_HOST_PORT_BASE;
        v->guest_listen_fd = -1;
        r = bind_listen(uds_path, &v->listen_fd);
        if (r < 0)
                goto out_free;
        v->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (v->evfd < 0) {
                r = -errno;
                goto out_close;
        }
        pthread_mutex_init(&v->lock, NULL);
        pthread_cond_init(&v->idle, NULL);
        r = ha_cond_init_monotonic(&v->resumed);
        if (r < 0) {
                pthread_cond_destroy(&v->idle);
                pthread_mutex_destroy(&v->lock);
                close(v->evfd);
                goto out_close;
        }
        *ret_vsock = v;
        return 0;
out_close:
        close(v->listen_fd);
out_free:
        free(v);
        return ha_err_set(err, r, "Error binding to the host-side Unix socket: %s (os error %d)",
                          strerror(-r), -r);
}

int fcsim_vsock_start(struct fcsim_vsock *v, const char *guest_dir, struct ha_err *err)
{
        char path[sizeof v->guest_dir + 8];
        int n = snprintf(v->guest_dir, sizeof v->guest_dir, "%s", guest_dir);
        if (n < 0 || (size_t)n >= sizeof v->guest_dir)
                return ha_err_set(err, -ENAMETOOLONG, "vsock guest directory path too long");
        snprintf(path, sizeof path, "%s/" FCSIM_VSOCK_GUEST_HOST_NAME, guest_dir);
        int r = bind_listen(path, &v->guest_listen_fd);
        if (r < 0)
                return ha_err_set(err, r, "cannot listen on %s: %s", path, strerror(-r));
        r = -pthread_create(&v->acceptor, NULL, acceptor_main, v);
        if (r < 0) {
                close(v->guest_listen_fd);
                v->guest_listen_fd = -1;
                return ha_err_set(err, r, "cannot start the vsock thread: %s", strerror(-r));
        }
        v->started = true;
        return 0;
}

void fcsim_vsock_set_paused(struct fcsim_vsock *v, bool paused)
{
        pthread_mutex_lock(&v->lock);
        v->paused = paused;
        pthread_cond_broadcast(&v->resumed);
        pthread_mutex_unlock(&v->lock);
}

void fcsim_vsock_reset(struct fcsim_vsock *v)
{
        pthread_mutex_lock(&v->lock);
        for (struct conn *c = v->conns; c; c = c->next)
                conn_kill_locked(c);
        pthread_mutex_unlock(&v->lock);
}

void fcsim_vsock_stop(struct fcsim_vsock *v)
{
        if (!v || !v->started)
                return;
        pthread_mutex_lock(&v->lock);
        v->stopping = true;
        pthread_cond_broadcast(&v->resumed);
        for (struct conn *c = v->conns; c; c = c->next)
                conn_kill_locked(c);
        pthread_mutex_unlock(&v->lock);
        uint64_t one = 1;
        if (write(v->evfd, &one, sizeof one) < 0) {
                /* cannot fail: the counter is far from overflow */
        }
        pthread_join(v->acceptor, NULL);
        pthread_mutex_lock(&v->lock);
        while (v->n_conns > 0)
                pthread_cond_wait(&v->idle, &v->lock);
        v->stopping = false;
        v->paused = false; /* a next guest starts running */
        pthread_mutex_unlock(&v->lock);
        uint64_t drain;
        if (read(v->evfd, &drain, sizeof drain) < 0) {
                /* already empty */
        }
        /* The guest-side socket is ours (unlike uds_path): remove it, in
         * case the directory outlives this guest. */
        char path[sizeof v->guest_dir + 8];
        snprintf(path, sizeof path, "%s/" FCSIM_VSOCK_GUEST_HOST_NAME, v->guest_dir);
        unlink(path);
        close(v->guest_listen_fd);
        v->guest_listen_fd = -1;
        v->started = false;
}

void fcsim_vsock_close(struct fcsim_vsock *v)
{
        if (!v)
                return;
        fcsim_vsock_stop(v);
        pthread_cond_destroy(&v->resumed);
        pthread_cond_destroy(&v->idle);
        pthread_mutex_destroy(&v->lock);
        close(v->evfd);
        close(v->listen_fd);
        free(v);
}
