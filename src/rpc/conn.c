/*
 * conn.c - one HTTP/2 connection: the socket (plain or TLS, non-blocking),
 * the nghttp2 server session and its callbacks. Everything here runs on the
 * loop thread. Bytes nghttp2 produces are collected in wbuf and written once
 * per loop turn (rpc_conn_flush); when the socket is full we stop asking
 * nghttp2 for more, which bounds memory per connection.
 *
 * TLS output goes through a BIO of our own (after the handshake): SSL_write
 * seals records into tls_out and one write(2) carries several of them, not
 * one syscall per 16 KiB record. EPOLLOUT is in the epoll set only while a
 * write would block; an always-writable socket left armed makes the loop
 * spin through every streamed response.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/time.h"
#include "rpc/rpc_int.h"
#include "rpc/tls.h"

/* Bytes of nghttp2 output buffered before we wait for the socket. */
#define CONN_WBUF_HIGH (256u << 10)
#define CONN_WBUF_LIMIT (4u << 20)
/* TLS records sealed per turn before they are written: several per write(2). */
#define CONN_TLS_OUT_HIGH (128u << 10)
/* Output buffer kept by a connection with no open stream; a larger one (a
 * big response grew it) is given back. */
#define CONN_IDLE_KEEP (64u << 10)
/* Connection-level receive window: large, so one slow stream does not
 * throttle the others (per-stream windows do the backpressure). */
#define CONN_RECV_WINDOW (16u << 20)
#define STREAM_RECV_WINDOW (1u << 20)

static void conn_timer_fire(struct rpc_timer *t);

/* Makes the epoll set match want_write_io; a no-op when it already does. */
static void update_epoll(struct rpc_conn *c)
{
        if (c->want_write_io == c->epollout_armed)
                return;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
        if (c->want_write_io)
                ev.events |= EPOLLOUT;
        if (epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
                c->epollout_armed = c->want_write_io;
}

/* --- output buffers -------------------------------------------------------- */

/* Written bytes leave the front of an output buffer by moving an offset, not
 * the rest of the buffer: a TLS write takes one record at a time, and a
 * memmove of up to 256 KiB per 16 KiB record was the largest CPU cost of a
 * streamed response. The live bytes move down only when an append needs the
 * room. */
static size_t outq_len(const struct ha_buf *b, size_t off)
{
        return b->len - off;
}

static int outq_append(struct ha_buf *b, size_t *off, const void *p, size_t n)
{
        if (*off && b->len + n > b->cap) {
                memmove(b->data, b->data + *off, b->len - *off);
                b->len -= *off;
                *off = 0;
        }
        return ha_buf_append(b, p, n);
}

static void outq_consume(struct ha_buf *b, size_t *off, size_t n)
{
        *off += n;
        if (*off >= b->len)
                b->len = *off = 0;
}

/* The TLS write BIO: takes every record into tls_out (bounded by the
 * caller, seal(), and by the buffer's limit); rpc_conn_flush writes it. */
static int tls_bio_write(BIO *b, const char *data, int len)
{
        struct rpc_conn *c = BIO_get_data(b);
        BIO_clear_retry_flags(b);
        if (len <= 0)
                return 0;
        if (outq_append(&c->tls_out, &c->toff, data, (size_t)len) < 0)
                return -1;
        return len;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
        struct rpc_conn *c = BIO_get_data(b);
        switch (cmd) {
        case BIO_CTRL_FLUSH:
                return 1;       /* rpc_conn_flush writes tls_out */
        case BIO_CTRL_WPENDING:
                return (long)outq_len(&c->tls_out, c->toff);
        default:
                return 0;
        }
}

/* Notes why |c| ends, for the log line rpc_conn_free() writes; the first
 * reason is the cause, later ones are its consequences. */
static void conn_why(struct rpc_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_why(struct rpc_conn *c, const char *fmt, ...)
{
        va_list ap;

        if (c->close_why[0])
                return;
        va_start(ap, fmt);
        vsnprintf(c->close_why, sizeof c->close_why, fmt, ap);
        va_end(ap);
}

/* RST_STREAM for a stream the client never opened (gRPC C core's cancel
 * race, see h2in.h) is ignored up to a burst of IDLE_RST_BURST, refilled
 * by one a second: a grpcio client that cancels a lot trips it a few times
 * an hour; a peer sending them on purpose gets nghttp2's verdict (GOAWAY
 * PROTOCOL_ERROR) once the bucket is empty. */
#define IDLE_RST_BURST 100
#define IDLE_RST_REFILL_MS 1000

static bool drop_idle_rst(void *ctx, uint32_t id)
{
        struct rpc_conn *c = ctx;
        uint64_t now = ha_now_ms();

        /* At or below the last stream nghttp2 took, the frame is its to
         * judge (an RST for a stream it knows, or one it refused). */
        if ((int32_t)id <= nghttp2_session_get_last_proc_stream_id(c->h2))
                return false;
        if (now - c->idle_rst_refill_ms >= IDLE_RST_REFILL_MS) {
                uint64_t add = (now - c->idle_rst_refill_ms) / IDLE_RST_REFILL_MS;
                c->idle_rst_tokens = (uint32_t)(c->idle_rst_tokens + add > IDLE_RST_BURST
                                                        ? IDLE_RST_BURST
                                                        : c->idle_rst_tokens + add);
                c->idle_rst_refill_ms += add * IDLE_RST_REFILL_MS;
        }
        if (c->idle_rst_tokens == 0)
                return false;
        c->idle_rst_tokens--;
        if (c->idle_rst_ignored++ == 0)
                ha_log_info("rpc.idle_rst_ignored", "conn=%" PRIu64 " peer=%s stream=%u "
                            "msg=\"RST_STREAM for a stream never opened (gRPC C core cancel race): ignored\"",
                            c->id, c->peer_addr, id);
        else
                ha_log_debug("rpc.idle_rst_ignored", "conn=%" PRIu64 " stream=%u", c->id, id);
        return true;
}

static ssize_t feed_nghttp2(void *ctx, const uint8_t *p, size_t n)
{
        struct rpc_conn *c = ctx;
        return nghttp2_session_mem_recv(c->h2, p, n);
}

static void arm_idle(struct rpc_conn *c)
{
        rpc_timer_arm(c->srv, &c->timer, ha_now_ms() + c->srv->cfg.limits.idle_timeout_ms);
}

/* --- nghttp2 callbacks --------------------------------------------------- */

static struct rpc_call *stream_call(struct rpc_conn *c, int32_t id)
{
        return nghttp2_session_get_stream_user_data(c->h2, id);
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
        struct rpc_conn *c = ud;
        if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
                return 0;
        if (c->srv->draining) {
                nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
                return 0;
        }
        struct rpc_call *call = rpc_call_new(c, f->hd.stream_id);
        if (!call)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, call);
        c->nstreams++;
        ha_metrics_http2_streams(1);
        rpc_timer_disarm(c->srv, &c->timer);
        return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
        struct rpc_conn *c = ud;
        struct rpc_call *call = stream_call(c, f->hd.stream_id);
        if (!call)
                return 0;
        call->header_bytes += nlen + vlen + 32;
        if (call->header_bytes > c->srv->cfg.limits.max_header_list_bytes) {
                ha_log_warn("rpc.header_list_too_large", "conn=%" PRIu64 " stream=%d bytes=%zu", c->id,
                            f->hd.stream_id, call->header_bytes);
                /* Resets the stream: the HPACK-bomb and oversized-header defence. */
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
                return 0;       /* request trailers: counted, ignored */
        char **slot = NULL;
        if (nlen > 0 && name[0] == ':') {
                if (nlen == 7 && memcmp(name, ":method", 7) == 0)
                        slot = &call->method_hdr;
                else if (nlen == 5 && memcmp(name, ":path", 5) == 0)
                        slot = &call->path;
                else if (nlen == 10 && memcmp(name, ":authority", 10) == 0)
                        slot = &call->authority;
                if (slot) {
                        free(*slot);
                        *slot = strndup((const char *)value, vlen);
                        if (!*slot)
                                return NGHTTP2_ERR_CALLBACK_FAILURE;
                }
                return 0;
        }
        if (nlen == 12 && memcmp(name, "content-type", 12) == 0 && !call->content_type) {
                call->content_type = strndup((const char *)value, vlen);
                if (!call->content_type)
                        return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        if (rpc_nvlist_add(&call->headers, (const char *)name, nlen, value, vlen) < 0)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
        struct rpc_conn *c = ud;
        if (f->hd.type == NGHTTP2_DATA && f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
                /* Exactly once: the rest of the read buffer is still parsed and
                 * must not log a line per frame (a log flood on the loop thread). */
                if (++c->empty_data_frames == c->srv->cfg.limits.max_empty_data_frames + 1) {
                        ha_log_warn("rpc.flood", "conn=%" PRIu64 " kind=empty_data", c->id);
                        conn_why(c, "flood of empty DATA frames");
                        nghttp2_session_terminate_session(h2, NGHTTP2_ENHANCE_YOUR_CALM);
                        return 0;
                }
        }
        if (f->hd.type == NGHTTP2_GOAWAY) {
                ha_log_debug("rpc.goaway_received", "conn=%" PRIu64 " error=%s last_stream=%d", c->id,
                             nghttp2_http2_strerror(f->goaway.error_code), f->goaway.last_stream_id);
                conn_why(c, "peer sent GOAWAY (%s)", nghttp2_http2_strerror(f->goaway.error_code));
                return 0;
        }
        if (f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS)
                return 0;
        struct rpc_call *call = stream_call(c, f->hd.stream_id);
        if (!call)
                return 0;
        if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
                rpc_call_on_headers(call);
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
                rpc_call_on_end(call);
        return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *ud)
{
        struct rpc_conn *c = ud;
        struct rpc_call *call = stream_call(c, stream_id);
        if (!call) {
                nghttp2_session_consume(h2, stream_id, len);
                return 0;
        }
        rpc_call_on_data(call, data, len);
        return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *ud)
{
        struct rpc_conn *c = ud;
        struct rpc_call *call = stream_call(c, stream_id);
        if (!call)
                return 0;
        nghttp2_session_set_stream_user_data(h2, stream_id, NULL);
        if (call->unconsumed)
                nghttp2_session_consume_connection(h2, call->unconsumed);
        call->unconsumed = 0;
        c->nstreams--;
        ha_metrics_http2_streams(-1);
        if (c->nstreams == 0 && !c->srv->draining)
                arm_idle(c);
        rpc_call_on_close(call, error_code);
        return 0;
}

/* nghttp2's reason in a GOAWAY's debug data ("RST_STREAM: stream in
 * idle", ...) as printable ASCII for a log value, bounded by |size|. */
static void goaway_debug_text(const nghttp2_goaway *g, char *out, size_t size)
{
        size_t n = 0;

        for (size_t i = 0; i < g->opaque_data_len && n < size - 1; i++) {
                char ch = (char)g->opaque_data[i];
                if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
                        ch = '?';
                out[n++] = ch;
        }
        out[n] = '\0';
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
        /* Trailers went out before the client half-closed: tell it we are
         * done reading (gRPC servers do this; nghttp2 does not). Plain HTTP
         * answers (415, 405: no protocol matched) are left to end normally:
         * HTTP clients such as curl 7.88 treat a reset during their upload
         * as an error even with NO_ERROR; their remaining body is read and
         * dropped. */
        struct rpc_conn *c = ud;
        if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR) {
                /* nghttp2's own limits end connections this way too (rapid
                 * reset, too many ACKs queued), without any callback. */
                char why[128];
                goaway_debug_text(&f->goaway, why, sizeof why);
                ha_log_warn("rpc.goaway_sent", "conn=%" PRIu64 " peer=%s error=%s last_stream=%d debug=\"%s\"",
                            c->id, c->peer_addr, nghttp2_http2_strerror(f->goaway.error_code),
                            f->goaway.last_stream_id, why);
                conn_why(c, "sent GOAWAY (%s)", nghttp2_http2_strerror(f->goaway.error_code));
                return 0;
        }
        if (f->hd.type == NGHTTP2_HEADERS && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
            nghttp2_session_get_stream_remote_close(h2, f->hd.stream_id) == 0) {
                struct rpc_call *call = stream_call(c, f->hd.stream_id);
                if (!call || call->proto)
                        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
        }
        return 0;
}

static int on_invalid_frame(nghttp2_session *h2, const nghttp2_frame *f, int lib_error, void *ud)
{
        struct rpc_conn *c = ud;
        /* The first per connection at warn (it is usually what ends it);
         * the rest at debug, or a peer could flood the log. */
        if (++c->invalid_frames == 1)
                ha_log_warn("rpc.invalid_frame", "conn=%" PRIu64 " peer=%s type=%u stream=%d err=\"%s\"", c->id,
                            c->peer_addr, f->hd.type, f->hd.stream_id, nghttp2_strerror(lib_error));
        else
                ha_log_debug("rpc.invalid_frame", "conn=%" PRIu64 " type=%u stream=%d err=\"%s\"", c->id,
                             f->hd.type, f->hd.stream_id, nghttp2_strerror(lib_error));
        return 0;
}

static ssize_t on_send(nghttp2_session *h2, const uint8_t *data, size_t len, int flags, void *ud)
{
        struct rpc_conn *c = ud;
        if (outq_len(&c->wbuf, c->woff) >= CONN_WBUF_HIGH)
                return NGHTTP2_ERR_WOULDBLOCK;
        if (outq_append(&c->wbuf, &c->woff, data, len) < 0)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        return (ssize_t)len;
}

static nghttp2_session_callbacks *g_callbacks;
static nghttp2_option *g_options;
static BIO_METHOD *g_tls_bio;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_callbacks(void)
{
        nghttp2_session_callbacks_new(&g_callbacks);
        nghttp2_session_callbacks_set_on_begin_headers_callback(g_callbacks, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(g_callbacks, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(g_callbacks, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g_callbacks, on_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(g_callbacks, on_stream_close);
        nghttp2_session_callbacks_set_on_frame_send_callback(g_callbacks, on_frame_send);
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(g_callbacks, on_invalid_frame);
        nghttp2_session_callbacks_set_send_callback(g_callbacks, on_send);

        nghttp2_option_new(&g_options);
        /* Window updates follow what handlers consume: backpressure. */
        nghttp2_option_set_no_auto_window_update(g_options, 1);
        /* Rapid reset (CVE-2023-44487): token bucket on incoming RST_STREAM. */
        nghttp2_option_set_stream_reset_rate_limit(g_options, 1000, 33);
        /* CONTINUATION flood (CVE-2024-28182). */
        nghttp2_option_set_max_continuations(g_options, 8);
        /* SETTINGS with many entries, and PING/SETTINGS ack floods. */
        nghttp2_option_set_max_settings(g_options, 32);
        nghttp2_option_set_max_outbound_ack(g_options, 1000);

        g_tls_bio = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hostagent tls out");
        if (g_tls_bio) {
                BIO_meth_set_write(g_tls_bio, tls_bio_write);
                BIO_meth_set_ctrl(g_tls_bio, tls_bio_ctrl);
        }
}

static int session_start(struct rpc_conn *c)
{
        pthread_once(&g_once, init_callbacks);
        if (nghttp2_session_server_new2(&c->h2, g_callbacks, c, g_options) != 0)
                return -ENOMEM;
        const struct rpc_limits *l = &c->srv->cfg.limits;
        nghttp2_settings_entry iv[] = {
                { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l->max_concurrent_streams },
                { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_RECV_WINDOW },
                { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)l->max_header_list_bytes },
                { NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1 },
        };
        if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0)
                return -ENOMEM;
        nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, CONN_RECV_WINDOW);
        h2in_init(&c->h2in);
        c->idle_rst_tokens = IDLE_RST_BURST;
        c->idle_rst_refill_ms = ha_now_ms();
        rpc_conn_mark_dirty(c);
        return 0;
}

/* --- socket I/O ------------------------------------------------------------ */

static void format_peer(const struct sockaddr *sa, char *out, size_t len)
{
        char host[INET6_ADDRSTRLEN] = "?";
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const void *)sa;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
                snprintf(out, len, "%s:%u", host, ntohs(in->sin_port));
        } else if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const void *)sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
                snprintf(out, len, "[%s]:%u", host, ntohs(in6->sin6_port));
        } else {
                snprintf(out, len, "unix");
        }
}

struct rpc_conn *rpc_conn_new(rpc_server *s, int fd, bool tls, const struct sockaddr *sa)
{
        struct rpc_conn *c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        c->srv = s;
        c->fd = fd;
        c->id = ++s->next_conn_id;
        c->timer.fire = conn_timer_fire;
        ha_buf_init(&c->wbuf, CONN_WBUF_LIMIT);
        ha_buf_init(&c->tls_out, CONN_WBUF_LIMIT);
        format_peer(sa, c->peer_addr, sizeof c->peer_addr);
        if (tls) {
                pthread_mutex_lock(&s->tls_lock);
                c->ssl = SSL_new(s->ssl_ctx);
                pthread_mutex_unlock(&s->tls_lock);
                if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
                        SSL_free(c->ssl);
                        free(c);
                        return NULL;
                }
                SSL_set_accept_state(c->ssl);
                c->handshaking = true;
                rpc_timer_arm(s, &c->timer, ha_now_ms() + s->cfg.limits.handshake_timeout_ms);
        }
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                SSL_free(c->ssl);
                free(c);
                return NULL;
        }
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        ha_metrics_http2_conn(tls ? "tls" : "h2c", 1);     /* rpc_conn_free undoes it from here */
        if (!tls) {
                if (session_start(c) < 0) {
                        rpc_conn_free(c);
                        return NULL;
                }
                arm_idle(c);
        }
        ha_log_debug("rpc.conn_open", "conn=%" PRIu64 " peer=%s tls=%d", c->id, c->peer_addr, tls);
        return c;
}

void rpc_conn_free(struct rpc_conn *c)
{
        rpc_server *s = c->srv;
        unsigned lost_streams = c->nstreams;
        if (c->in_dirty_list) {
                /* unlink from the dirty list */
                struct rpc_conn **pp = &s->dirty;
                while (*pp && *pp != c)
                        pp = &(*pp)->dirty_next;
                if (*pp)
                        *pp = c->dirty_next;
        }
        rpc_timer_disarm(s, &c->timer);
        /* Every live call learns the connection is gone (nghttp2_session_del
         * does not run on_stream_close). */
        while (c->calls) {
                struct rpc_call *call = c->calls;
                if (c->h2)
                        nghttp2_session_set_stream_user_data(c->h2, call->stream_id, NULL);
                rpc_call_on_close(call, NGHTTP2_CANCEL);
        }
        if (c->h2) {
                nghttp2_session_del(c->h2);     /* runs on_stream_close for open streams */
                c->h2 = NULL;
        }
        /* Streams whose calls were detached above never reached on_stream_close. */
        if (c->nstreams)
                ha_metrics_http2_streams(-(int)c->nstreams);
        ha_metrics_http2_conn(c->ssl ? "tls" : "h2c", -1);
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        if (c->ssl) {
                if (!c->handshaking) {
                        /* close_notify lands in tls_out: one try to send it. */
                        SSL_shutdown(c->ssl);
                        if (outq_len(&c->tls_out, c->toff)) {
                                ssize_t w = write(c->fd, c->tls_out.data + c->toff, outq_len(&c->tls_out, c->toff));
                                (void)w;
                        }
                }
                SSL_free(c->ssl);
                ERR_clear_error();
        }
        close(c->fd);
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->nconns--;
        ha_buf_done(&c->wbuf);
        ha_buf_done(&c->tls_out);
        /* Calls cut short are the client's visible failure (gRPC clients
         * see UNAVAILABLE): say why at warn; a quiet end stays debug. */
        if (lost_streams)
                ha_log_warn("rpc.conn_lost", "conn=%" PRIu64 " peer=%s streams=%u why=\"%s\"", c->id,
                            c->peer_addr, lost_streams, c->close_why[0] ? c->close_why : "unknown");
        else
                ha_log_debug("rpc.conn_close", "conn=%" PRIu64 " peer=%s why=\"%s\"", c->id, c->peer_addr,
                             c->close_why[0] ? c->close_why : "done");
        free(c->peer_identity);
        free(c);
}

static void conn_timer_fire(struct rpc_timer *t)
{
        struct rpc_conn *c = (struct rpc_conn *)((char *)t - offsetof(struct rpc_conn, timer));
        if (c->handshaking) {
                ha_log_warn("rpc.tls_handshake_failed", "conn=%" PRIu64 " peer=%s reason=timeout", c->id,
                            c->peer_addr);
                ha_metrics_tls_handshake_failed("timeout");
                rpc_conn_free(c);
                return;
        }
        if (c->nstreams == 0) {
                ha_log_debug("rpc.conn_idle", "conn=%" PRIu64, c->id);
                conn_why(c, "idle timeout");
                nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
                rpc_conn_mark_dirty(c);
        }
}

void rpc_conn_goaway(struct rpc_conn *c)
{
        if (!c->h2) {
                rpc_conn_free(c);
                return;
        }
        conn_why(c, "the server is shutting down");
        /* In-flight streams may finish; new ones are refused. */
        nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR, NULL, 0);
        rpc_conn_mark_dirty(c);
}

/* Returns bytes read, 0 for EOF, -EAGAIN, or another -errno. */
static ssize_t conn_read(struct rpc_conn *c, uint8_t *buf, size_t len)
{
        if (!c->ssl) {
                ssize_t n = read(c->fd, buf, len);
                if (n < 0)
                        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
                return n;
        }
        /* OpenSSL's error queue is per thread and shared by every
         * connection of this loop: clear it so SSL_get_error() judges this
         * call, not an earlier failure elsewhere. */
        ERR_clear_error();
        errno = 0;
        int n = SSL_read(c->ssl, buf, (int)len);
        if (n > 0)
                return n;
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
                return -EAGAIN;
        if (e == SSL_ERROR_WANT_WRITE) {
                c->want_write_io = true;
                return -EAGAIN;
        }
        if (e == SSL_ERROR_ZERO_RETURN)
                return 0;
        if (e == SSL_ERROR_SYSCALL && errno)
                conn_why(c, "TLS read: %s", strerror(errno));
        else if (ERR_peek_error())
                conn_why(c, "TLS read: %s", ERR_reason_error_string(ERR_peek_error()));
        else
                conn_why(c, "TLS read: the peer closed without close_notify");
        ERR_clear_error();
        return -EIO;
}

/* Returns bytes written, -EAGAIN, or another -errno. */
static ssize_t sock_write(int fd, const uint8_t *buf, size_t len)
{
        ssize_t n = write(fd, buf, len);
        if (n < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
        return n;
}

/* TLS: seals wbuf into records in tls_out, until CONN_TLS_OUT_HIGH is
 * waiting. Our BIO takes every record, so SSL_write cannot ask to wait;
 * a failure is final. Returns 0 or -EIO. */
static int seal(struct rpc_conn *c)
{
        while (outq_len(&c->wbuf, c->woff) > 0 && outq_len(&c->tls_out, c->toff) < CONN_TLS_OUT_HIGH) {
                size_t n = outq_len(&c->wbuf, c->woff);
                ERR_clear_error();
                int w = SSL_write(c->ssl, c->wbuf.data + c->woff, n > INT_MAX ? INT_MAX : (int)n);
                if (w <= 0) {
                        ERR_clear_error();
                        return -EIO;
                }
                outq_consume(&c->wbuf, &c->woff, (size_t)w);
        }
        return 0;
}

/* After the handshake: TLS output goes to tls_out (see the top). */
static int tls_out_start(struct rpc_conn *c)
{
        BIO *b = g_tls_bio ? BIO_new(g_tls_bio) : NULL;
        if (!b)
                return -ENOMEM;
        BIO_set_data(b, c);
        BIO_set_init(b, 1);
        SSL_set0_wbio(c->ssl, b);       /* the socket BIO stays the read side */
        return 0;
}

static int do_handshake(struct rpc_conn *c)
{
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) {
                const unsigned char *alpn = NULL;
                unsigned alen = 0;
                SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
                if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
                        ha_log_warn("rpc.tls_handshake_failed", "conn=%" PRIu64 " peer=%s reason=\"no ALPN h2\"",
                                    c->id, c->peer_addr);
                        ha_metrics_tls_handshake_failed("no ALPN h2");
                        return -EPROTO;
                }
                pthread_once(&g_once, init_callbacks);
                if (tls_out_start(c) < 0)
                        return -ENOMEM;
                c->handshaking = false;
                rpc_timer_disarm(c->srv, &c->timer);
                c->peer_identity = rpc_tls_peer_identity(c->ssl);
                ha_log_debug("rpc.tls_ready", "conn=%" PRIu64 " peer=%s identity=\"%s\" version=%s", c->id,
                             c->peer_addr, c->peer_identity ? c->peer_identity : "",
                             SSL_get_version(c->ssl));
                if (session_start(c) < 0)
                        return -ENOMEM;
                arm_idle(c);
                return 0;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
                c->want_write_io = false;
                update_epoll(c);
                return -EAGAIN;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
                c->want_write_io = true;
                update_epoll(c);
                return -EAGAIN;
        }
        char why[256];
        const char *reason = rpc_tls_failure_reason(c->ssl, why, sizeof why);
        ha_log_warn("rpc.tls_handshake_failed", "conn=%" PRIu64 " peer=%s reason=\"%s\"", c->id, c->peer_addr,
                    reason);
        ha_metrics_tls_handshake_failed(reason);
        return -EPROTO;
}

void rpc_conn_on_io(struct rpc_conn *c, uint32_t events)
{
        if (c->handshaking) {
                int r = do_handshake(c);
                if (r == -EAGAIN)
                        return;
                if (r < 0) {
                        rpc_conn_free(c);
                        return;
                }
        }
        if (events & EPOLLOUT) {
                c->want_write_io = false;
                rpc_conn_mark_dirty(c);
        }
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                uint8_t buf[16384];
                /* Bounded work per turn: other connections get their turn. */
                for (int i = 0; i < 16; i++) {
                        ssize_t n = conn_read(c, buf, sizeof buf);
                        if (n == -EAGAIN)
                                break;
                        if (n <= 0) {
                                if (n == 0)
                                        conn_why(c, "peer closed the connection");
                                else
                                        conn_why(c, "read: %s", strerror((int)-n));
                                ha_log_debug("rpc.conn_eof", "conn=%" PRIu64 " n=%zd", c->id, n);
                                rpc_conn_free(c);
                                return;
                        }
                        ssize_t rv = h2in_feed(&c->h2in, buf, (size_t)n, feed_nghttp2, drop_idle_rst, c);
                        if (rv < 0) {
                                ha_log_debug("rpc.h2_error", "conn=%" PRIu64 " err=\"%s\"", c->id,
                                             nghttp2_strerror((int)rv));
                                conn_why(c, "HTTP/2 error: %s", nghttp2_strerror((int)rv));
                                rpc_conn_mark_dirty(c);  /* let GOAWAY out if any */
                                c->closing = true;
                                break;
                        }
                        if (outq_len(&c->wbuf, c->woff) >= CONN_WBUF_HIGH)
                                break;
                        /* GOAWAY decided (a flood): stop parsing the peer. */
                        if (!nghttp2_session_want_read(c->h2))
                                break;
                }
                rpc_conn_mark_dirty(c);
        }
}

void rpc_conn_flush(struct rpc_conn *c)
{
        if (c->handshaking)
                return;
        /* What goes to the socket: sealed records for TLS, else wbuf itself. */
        struct ha_buf *out = c->ssl ? &c->tls_out : &c->wbuf;
        size_t *off = c->ssl ? &c->toff : &c->woff;
        for (;;) {
                if (!c->closing && outq_len(&c->wbuf, c->woff) < CONN_WBUF_HIGH) {
                        int rv = nghttp2_session_send(c->h2);
                        if (rv != 0) {
                                ha_log_debug("rpc.h2_send_failed", "conn=%" PRIu64 " err=\"%s\"", c->id,
                                             nghttp2_strerror(rv));
                                conn_why(c, "HTTP/2 send: %s", nghttp2_strerror(rv));
                                c->closing = true;
                        }
                }
                if (c->ssl && seal(c) < 0) {
                        ha_log_debug("rpc.tls_write_failed", "conn=%" PRIu64, c->id);
                        conn_why(c, "TLS write failed");
                        rpc_conn_free(c);
                        return;
                }
                if (outq_len(out, *off) == 0)
                        break;
                ssize_t n = sock_write(c->fd, out->data + *off, outq_len(out, *off));
                if (n == -EAGAIN) {
                        c->want_write_io = true;
                        update_epoll(c);
                        return;
                }
                if (n < 0) {
                        ha_log_debug("rpc.conn_write_failed", "conn=%" PRIu64 " err=%zd", c->id, n);
                        conn_why(c, "write: %s", strerror((int)-n));
                        rpc_conn_free(c);
                        return;
                }
                outq_consume(out, off, (size_t)n);
                if (outq_len(out, *off) > 0 || outq_len(&c->wbuf, c->woff) > 0)
                        continue;       /* partial write or more to seal: EAGAIN ends it */
                if (c->closing || !nghttp2_session_want_write(c->h2))
                        break;
        }
        /* Drained: stop watching for writability. */
        c->want_write_io = false;
        update_epoll(c);
        if (c->nstreams == 0) {
                if (c->wbuf.len == 0 && c->wbuf.cap > CONN_IDLE_KEEP)
                        ha_buf_done(&c->wbuf);
                if (c->tls_out.len == 0 && c->tls_out.cap > CONN_IDLE_KEEP)
                        ha_buf_done(&c->tls_out);
        }
        if (c->closing || (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))) {
                ha_log_debug("rpc.conn_done", "conn=%" PRIu64 " closing=%d", c->id, c->closing);
                rpc_conn_free(c);
        }
}
