/*
 * server.c - the I/O loop: epoll over listeners, connections, an eventfd for
 * handler progress and watched fds (signalfd); a min-heap of timers
 * (deadlines, handshake and idle timeouts). Work per turn: handle events,
 * fire due timers, drain the ready list, then flush every dirty connection
 * once, so many frames leave in one write.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "rpc/rpc_int.h"
#include "rpc/tls.h"

/* epoll user data tags: pointers are at least 8-aligned, small values are tags. */
#define TAG_EVENTFD ((void *)1)
#define TAG_LISTENER0 ((void *)2)
#define TAG_LISTENER1 ((void *)3)
#define TAG_WATCH0 4 /* ... TAG_WATCH0 + 3 */
#define TAG_MAX 8

void rpc_limits_fill_defaults(struct rpc_limits *l)
{
#define D(f, v) if (!l->f) l->f = v
        D(max_message_bytes, RPC_DEFAULT_MAX_MESSAGE_BYTES);
        D(max_connections, RPC_DEFAULT_MAX_CONNECTIONS);
        D(max_concurrent_streams, RPC_DEFAULT_MAX_CONCURRENT_STREAMS);
        D(max_header_list_bytes, RPC_DEFAULT_MAX_HEADER_LIST_BYTES);
        D(handshake_timeout_ms, RPC_DEFAULT_HANDSHAKE_TIMEOUT_MS);
        D(idle_timeout_ms, RPC_DEFAULT_IDLE_TIMEOUT_MS);
        D(stream_out_high_water, RPC_DEFAULT_STREAM_OUT_HIGH_WATER);
        D(stream_in_high_water, RPC_DEFAULT_STREAM_IN_HIGH_WATER);
        D(max_pending_calls, RPC_DEFAULT_MAX_PENDING_CALLS);
        D(shutdown_grace_ms, RPC_DEFAULT_SHUTDOWN_GRACE_MS);
        D(max_empty_data_frames, RPC_DEFAULT_MAX_EMPTY_DATA_FRAMES);
#undef D
}

bool rpc_on_loop(rpc_server *s)
{
        return pthread_equal(pthread_self(), s->loop_thread);
}

/* --- timers: binary min-heap, idx is slot + 1 -------------------------- */

static void heap_swap(rpc_server *s, size_t a, size_t b)
{
        struct rpc_timer *t = s->heap[a];
        s->heap[a] = s->heap[b];
        s->heap[b] = t;
        s->heap[a]->idx = a + 1;
        s->heap[b]->idx = b + 1;
}

static void heap_up(rpc_server *s, size_t i)
{
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (s->heap[p]->at <= s->heap[i]->at)
                        break;
                heap_swap(s, p, i);
                i = p;
        }
}

static void heap_down(rpc_server *s, size_t i)
{
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;
                if (l < s->heap_n && s->heap[l]->at < s->heap[m]->at)
                        m = l;
                if (r < s->heap_n && s->heap[r]->at < s->heap[m]->at)
                        m = r;
                if (m == i)
                        return;
                heap_swap(s, i, m);
                i = m;
        }
}

void rpc_timer_disarm(rpc_server *s, struct rpc_timer *t)
{
        if (!t->idx)
                return;
        size_t i = t->idx - 1;
        t->idx = 0;
        s->heap_n--;
        if (i == s->heap_n)
                return;
        s->heap[i] = s->heap[s->heap_n];
        s->heap[i]->idx = i + 1;
        heap_down(s, i);
        heap_up(s, i);
}

void rpc_timer_arm(rpc_server *s, struct rpc_timer *t, uint64_t at)
{
        rpc_timer_disarm(s, t);
        if (s->heap_n == s->heap_cap) {
                size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
                struct rpc_timer **h = reallocarray(s->heap, cap, sizeof *h);
                if (!h) {
                        /* Out of memory: fire at once rather than never. */
                        t->fire(t);
                        return;
                }
                s->heap = h;
                s->heap_cap = cap;
        }
        t->at = at;
        s->heap[s->heap_n] = t;
        t->idx = ++s->heap_n;
        heap_up(s, s->heap_n - 1);
}

static int next_timeout_ms(rpc_server *s)
{
        if (!s->heap_n)
                return -1;
        uint64_t now = ha_now_ms();
        if (s->heap[0]->at <= now)
                return 0;
        uint64_t d = s->heap[0]->at - now;
        return d > 60000 ? 60000 : (int)d;
}

static void fire_timers(rpc_server *s)
{
        uint64_t now = ha_now_ms();
        while (s->heap_n && s->heap[0]->at <= now) {
                struct rpc_timer *t = s->heap[0];
                rpc_timer_disarm(s, t);
                t->fire(t);
        }
}

/* --- listeners ----------------------------------------------------------- */

static int parse_hostport(const char *spec, char *host, size_t hlen, char *port, size_t plen)
{
        const char *colon = strrchr(spec, ':');
        if (!colon || colon == spec)
                return -EINVAL;
        const char *h = spec;
        size_t n = (size_t)(colon - spec);
        if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
                h++;
                n -= 2;
        }
        if (n >= hlen || strlen(colon + 1) >= plen || !colon[1])
                return -EINVAL;
        memcpy(host, h, n);
        host[n] = '\0';
        memcpy(port, colon + 1, strlen(colon + 1) + 1);    /* fits: checked above */
        return 0;
}

static int listen_on(const char *spec, int *ret_port, struct ha_err *err)
{
        int fd;
        if (strncmp(spec, "unix:", 5) == 0) {
                struct sockaddr_un un = { .sun_family = AF_UNIX };
                const char *path = spec + 5;
                if (strlen(path) >= sizeof un.sun_path)
                        return ha_err_set(err, -ENAMETOOLONG, "unix socket path too long: %s", path);
                memcpy(un.sun_path, path, strlen(path) + 1);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return ha_err_set(err, -errno, "socket: %s", strerror(errno));
                struct stat st;
                if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                        unlink(path);   /* stale socket from an earlier run */
                /* Owner-only before listen(): until then a connect() is refused, so no
                 * other local user can slip in while the mode is still the umask's. */
                if (bind(fd, (struct sockaddr *)&un, sizeof un) < 0) {
                        int r = -errno;
                        close(fd);
                        return ha_err_set(err, r, "cannot listen on %s: %s", spec, strerror(-r));
                }
                if (chmod(path, 0600) < 0 || listen(fd, 512) < 0) {
                        int r = -errno;
                        close(fd);
                        unlink(path);   /* ours: bind() made it */
                        return ha_err_set(err, r, "cannot listen on %s: %s", spec, strerror(-r));
                }
                *ret_port = 0;
                return fd;
        }
        char host[256], port[16];
        if (parse_hostport(spec, host, sizeof host, port, sizeof port) < 0)
                return ha_err_set(err, -EINVAL, "bad listen address \"%s\": want HOST:PORT or unix:PATH", spec);
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
        struct addrinfo *ai;
        int gr = getaddrinfo(host, port, &hints, &ai);
        if (gr)
                return ha_err_set(err, -EINVAL, "cannot resolve listen address %s: %s", spec, gai_strerror(gr));
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                int r = -errno;
                freeaddrinfo(ai);
                return ha_err_set(err, r, "socket: %s", strerror(-r));
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0) {
                int r = -errno;
                freeaddrinfo(ai);
                close(fd);
                return ha_err_set(err, r, "cannot listen on %s: %s", spec, strerror(-r));
        }
        freeaddrinfo(ai);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        memset(&ss, 0, sizeof ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
                int r = -errno;
                close(fd);
                return ha_err_set(err, r, "cannot listen on %s: getsockname: %s", spec, strerror(-r));
        }
        *ret_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&ss)->sin_port);
        return fd;
}

static void accept_all(rpc_server *s, struct rpc_listener *l)
{
        for (;;) {
                struct sockaddr_storage ss = { 0 };
                socklen_t sl = sizeof ss;
                int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN && errno != EWOULDBLOCK)
                                ha_log_warn("rpc.accept_failed", "err=\"%s\"", strerror(errno));
                        return;
                }
                if (s->draining || s->nconns >= s->cfg.limits.max_connections) {
                        ha_log_warn("rpc.conn_refused", "reason=%s conns=%u",
                                    s->draining ? "draining" : "max_connections", s->nconns);
                        close(fd);
                        continue;
                }
                if (ss.ss_family != AF_UNIX) {
                        int one = 1;
                        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                }
                if (!rpc_conn_new(s, fd, l->tls, (struct sockaddr *)&ss))
                        close(fd);
        }
}

/* --- ready list ---------------------------------------------------------- */

void rpc_call_post(struct rpc_call *c)
{
        rpc_server *s = c->srv;
        bool wake = false;
        pthread_mutex_lock(&s->ready_lock);
        if (!c->on_ready) {
                c->on_ready = true;
                rpc_call_ref(c);
                c->ready_next = NULL;
                if (s->ready_tail)
                        s->ready_tail->ready_next = c;
                else {
                        s->ready_head = c;
                        wake = true;    /* first entry: the loop may be asleep */
                }
                s->ready_tail = c;
        }
        pthread_mutex_unlock(&s->ready_lock);
        if (wake && !rpc_on_loop(s)) {
                uint64_t one = 1;
                ssize_t w = write(s->evfd, &one, sizeof one);
                (void)w;
        }
}

static void drain_ready(rpc_server *s)
{
        pthread_mutex_lock(&s->ready_lock);
        struct rpc_call *c = s->ready_head;
        s->ready_head = s->ready_tail = NULL;
        pthread_mutex_unlock(&s->ready_lock);
        while (c) {
                pthread_mutex_lock(&s->ready_lock);
                struct rpc_call *next = c->ready_next;
                c->on_ready = false;
                pthread_mutex_unlock(&s->ready_lock);
                rpc_call_on_ready(c);
                rpc_call_unref(c);
                c = next;
        }
}

void rpc_conn_mark_dirty(struct rpc_conn *c)
{
        if (c->in_dirty_list)
                return;
        c->in_dirty_list = true;
        c->dirty_next = c->srv->dirty;
        c->srv->dirty = c;
}

static void flush_dirty(rpc_server *s)
{
        while (s->dirty) {
                struct rpc_conn *c = s->dirty;
                s->dirty = c->dirty_next;
                c->in_dirty_list = false;
                rpc_conn_flush(c);      /* may free c */
        }
}

/* --- lifecycle ----------------------------------------------------------- */

static void drain_timer_fire(struct rpc_timer *t)
{
        rpc_server *s = (rpc_server *)((char *)t - offsetof(rpc_server, drain_timer));
        /* Grace period over: cut what remains. */
        ha_log_warn("rpc.shutdown_grace_over", "conns=%u", s->nconns);
        while (s->conns)
                rpc_conn_free(s->conns);
        s->stopped = true;
}

static void start_drain(rpc_server *s)
{
        if (s->draining)
                return;
        s->draining = true;
        ha_log_info("rpc.draining", "conns=%u grace_ms=%u", s->nconns, s->cfg.limits.shutdown_grace_ms);
        if (s->on_drain)
                s->on_drain(s->on_drain_ctx);
        for (size_t i = 0; i < s->nlisteners; i++) {
                epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->listeners[i].fd, NULL);
                close(s->listeners[i].fd);
                s->listeners[i].fd = -1;
        }
        for (struct rpc_conn *c = s->conns, *n; c; c = n) {
                n = c->next;
                rpc_conn_goaway(c);
        }
        s->drain_timer.fire = drain_timer_fire;
        rpc_timer_arm(s, &s->drain_timer, ha_now_ms() + s->cfg.limits.shutdown_grace_ms);
}

static char *dup_opt(rpc_server *s, int i, const char *v)
{
        if (!v)
                return NULL;
        s->cfg_strings[i] = strdup(v);
        return s->cfg_strings[i];
}

rpc_server *rpc_server_new(const struct rpc_server_config *cfg, struct ha_err *err)
{
        rpc_server *s = calloc(1, sizeof *s);
        if (!s) {
                ha_err_set(err, -ENOMEM, "out of memory");
                return NULL;
        }
        s->cfg = *cfg;
        s->cfg.listen = dup_opt(s, 0, cfg->listen);
        s->cfg.h2c_listen = dup_opt(s, 1, cfg->h2c_listen);
        s->cfg.tls_cert = dup_opt(s, 2, cfg->tls_cert);
        s->cfg.tls_key = dup_opt(s, 3, cfg->tls_key);
        s->cfg.client_ca = dup_opt(s, 4, cfg->client_ca);
        s->cfg.cors_origins = dup_opt(s, 5, cfg->cors_origins);
        rpc_limits_fill_defaults(&s->cfg.limits);
        s->epfd = s->evfd = -1;
        for (size_t i = 0; i < 2; i++)
                s->listeners[i].fd = -1;
        pthread_mutex_init(&s->ready_lock, NULL);
        pthread_mutex_init(&s->tls_lock, NULL);
        s->loop_thread = pthread_self();

        if (!s->cfg.listen && !s->cfg.h2c_listen) {
                ha_err_set(err, -EINVAL, "no listener: give --listen and/or --h2c-listen");
                goto out_free;
        }
        if (s->cfg.listen) {
                if (!s->cfg.tls_cert || !s->cfg.tls_key) {
                        ha_err_set(err, -EINVAL, "--listen needs --tls-cert and --tls-key");
                        goto out_free;
                }
                s->ssl_ctx = rpc_tls_ctx_new(s->cfg.tls_cert, s->cfg.tls_key, s->cfg.client_ca, err);
                if (!s->ssl_ctx)
                        goto out_free;
        }
        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s->epfd < 0 || s->evfd < 0) {
                ha_err_set(err, -errno, "epoll/eventfd: %s", strerror(errno));
                goto out_free;
        }
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = TAG_EVENTFD };
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev);

        const char *specs[2] = { s->cfg.listen, s->cfg.h2c_listen };
        for (int i = 0; i < 2; i++) {
                if (!specs[i])
                        continue;
                struct rpc_listener *l = &s->listeners[s->nlisteners];
                int fd = listen_on(specs[i], &l->port, err);
                if (fd < 0)
                        goto out_free;
                l->fd = fd;
                l->tls = i == 0;
                ev.events = EPOLLIN;
                ev.data.ptr = s->nlisteners == 0 ? TAG_LISTENER0 : TAG_LISTENER1;
                epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
                s->nlisteners++;
        }
        unsigned workers = cfg->workers ? cfg->workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
        unsigned maxw = cfg->max_workers ? cfg->max_workers : 256;
        s->workq = ha_workq_new(workers, maxw, s->cfg.limits.max_pending_calls);
        if (s->workq)
                s->workq_streams = ha_workq_new(1, maxw, s->cfg.limits.max_pending_calls);
        if (!s->workq || !s->workq_streams) {
                ha_err_set(err, -errno, "cannot start %u worker threads: %s", workers, strerror(errno));
                goto out_free;
        }
        return s;
out_free:
        rpc_server_free(s);
        return NULL;
}

int rpc_server_add_method(rpc_server *s, const struct rpc_method *m)
{
        if (rpc_server_find_method(s, m->path))
                return -EEXIST;
        if (s->nmethods == s->methods_cap) {
                size_t cap = s->methods_cap ? s->methods_cap * 2 : 32;
                const struct rpc_method **v = reallocarray(s->methods, cap, sizeof *v);
                if (!v)
                        return -ENOMEM;
                s->methods = v;
                s->methods_cap = cap;
        }
        s->methods[s->nmethods++] = m;
        return 0;
}

const struct rpc_method *rpc_server_find_method(rpc_server *s, const char *path)
{
        for (size_t i = 0; i < s->nmethods; i++)
                if (strcmp(s->methods[i]->path, path) == 0)
                        return s->methods[i];
        return NULL;
}

void rpc_server_foreach_method(rpc_server *s, void (*fn)(void *ctx, const struct rpc_method *m), void *ctx)
{
        for (size_t i = 0; i < s->nmethods; i++)
                fn(ctx, s->methods[i]);
}

int rpc_server_watch_fd(rpc_server *s, int fd, void (*cb)(void *ctx, int fd), void *ctx)
{
        if (s->nwatches == sizeof s->watches / sizeof s->watches[0])
                return -ENOSPC;
        size_t i = s->nwatches++;
        s->watches[i] = (struct rpc_watch){ fd, cb, ctx };
        /* NOLINTNEXTLINE(performance-no-int-to-ptr): a tag, never dereferenced */
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = (void *)(uintptr_t)(TAG_WATCH0 + i) };
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                s->nwatches--;
                return -errno;
        }
        return 0;
}

int rpc_server_add_http_get(rpc_server *s, const char *path, rpc_http_get_fn fn, void *ctx)
{
        for (size_t i = 0; i < s->nhttp_gets; i++)
                if (strcmp(s->http_gets[i].path, path) == 0)
                        return -EEXIST;
        if (s->nhttp_gets == sizeof s->http_gets / sizeof s->http_gets[0])
                return -ENOSPC;
        s->http_gets[s->nhttp_gets++] = (struct rpc_http_get){ path, fn, ctx };
        return 0;
}

void rpc_server_on_drain(rpc_server *s, void (*fn)(void *ctx), void *ctx)
{
        s->on_drain = fn;
        s->on_drain_ctx = ctx;
}

int rpc_server_tls_port(rpc_server *s)
{
        for (size_t i = 0; i < s->nlisteners; i++)
                if (s->listeners[i].tls)
                        return s->listeners[i].port;
        return 0;
}

int rpc_server_h2c_port(rpc_server *s)
{
        for (size_t i = 0; i < s->nlisteners; i++)
                if (!s->listeners[i].tls)
                        return s->listeners[i].port;
        return 0;
}

int rpc_server_reload_tls(rpc_server *s, struct ha_err *err)
{
        if (!s->cfg.listen)
                return 0;
        SSL_CTX *ctx = rpc_tls_ctx_new(s->cfg.tls_cert, s->cfg.tls_key, s->cfg.client_ca, err);
        if (!ctx)
                return -EINVAL;
        pthread_mutex_lock(&s->tls_lock);
        SSL_CTX *old = s->ssl_ctx;
        s->ssl_ctx = ctx;       /* open connections hold their own reference */
        pthread_mutex_unlock(&s->tls_lock);
        SSL_CTX_free(old);
        return 0;
}

void rpc_server_shutdown(rpc_server *s)
{
        atomic_store(&s->shutdown_requested, true);
        uint64_t one = 1;
        ssize_t w = write(s->evfd, &one, sizeof one);
        (void)w;
}

int rpc_server_run(rpc_server *s)
{
        s->loop_thread = pthread_self();
        struct epoll_event evs[128];
        while (!s->stopped) {
                int n = epoll_wait(s->epfd, evs, 128, next_timeout_ms(s));
                if (n < 0 && errno != EINTR) {
                        ha_log_error("rpc.epoll_failed", "err=\"%s\"", strerror(errno));
                        break;
                }
                for (int i = 0; i < n; i++) {
                        void *p = evs[i].data.ptr;
                        uintptr_t tag = (uintptr_t)p;
                        if (p == TAG_EVENTFD) {
                                uint64_t v;
                                ssize_t r = read(s->evfd, &v, sizeof v);
                                (void)r;
                        } else if (p == TAG_LISTENER0 || p == TAG_LISTENER1) {
                                struct rpc_listener *l = &s->listeners[p == TAG_LISTENER0 ? 0 : 1];
                                if (l->fd >= 0)
                                        accept_all(s, l);
                        } else if (tag >= TAG_WATCH0 && tag < TAG_MAX) {
                                struct rpc_watch *w = &s->watches[tag - TAG_WATCH0];
                                w->cb(w->ctx, w->fd);
                        } else {
                                rpc_conn_on_io(p, evs[i].events);
                        }
                }
                if (atomic_load(&s->shutdown_requested) && !s->draining)
                        start_drain(s);
                fire_timers(s);
                drain_ready(s);
                flush_dirty(s);
                if (s->draining && !s->conns)
                        s->stopped = true;
        }
        /* Calls may still run on workers: they see cancellation and end. */
        while (s->conns)
                rpc_conn_free(s->conns);
        drain_ready(s);
        ha_log_info("rpc.stopped", "conns=%u", s->nconns);
        return 0;
}

void rpc_server_free(rpc_server *s)
{
        if (!s)
                return;
        ha_workq_free(s->workq);        /* waits for running handlers */
        ha_workq_free(s->workq_streams);
        drain_ready(s);
        for (size_t i = 0; i < s->nlisteners; i++)
                if (s->listeners[i].fd >= 0)
                        close(s->listeners[i].fd);
        if (s->cfg.h2c_listen && strncmp(s->cfg.h2c_listen, "unix:", 5) == 0)
                unlink(s->cfg.h2c_listen + 5);
        if (s->epfd >= 0)
                close(s->epfd);
        if (s->evfd >= 0)
                close(s->evfd);
        SSL_CTX_free(s->ssl_ctx);
        free(s->heap);
        free(s->methods);
        for (size_t i = 0; i < 6; i++)
                free(s->cfg_strings[i]);
        pthread_mutex_destroy(&s->ready_lock);
        pthread_mutex_destroy(&s->tls_lock);
        free(s);
}
