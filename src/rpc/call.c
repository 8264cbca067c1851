/*
 * call.c - one RPC from request headers to the last frame.
 *
 * The loop side (rpc_call_on_*) parses the request head, picks the protocol
 * and method, feeds request bytes to the protocol, dispatches the handler and
 * turns handler progress into HTTP/2 frames. The handler side (rpc.h) waits
 * for request messages and queues response messages under call->lock.
 *
 * References: the loop holds one until the stream closes, a queued or
 * running handler holds one, and a ready-list entry holds one. The call is
 * freed when the last goes, on whichever thread that is.
 *
 * Invariant: once `finished` is set the status never changes, and nothing
 * more is queued; the response ends after what was queued before.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/time.h"
#include "rpc/gzip.h"
#include "rpc/rpc_int.h"

static const struct rpc_protocol *const protocols[] = {
        &rpc_proto_grpc_web,    /* before gRPC: "application/grpc-web" shares the prefix */
        &rpc_proto_grpc,
        &rpc_proto_connect,
};

int rpc_chunk_new(size_t len, struct rpc_chunk **ret)
{
        struct rpc_chunk *ch = malloc(sizeof *ch + len);
        if (!ch)
                return -ENOMEM;
        ch->next = NULL;
        ch->len = len;
        ch->off = 0;
        *ret = ch;
        return 0;
}

void rpc_call_queue_chunk_locked(struct rpc_call *c, struct rpc_chunk *ch)
{
        ch->next = NULL;
        if (c->out_tail)
                c->out_tail->next = ch;
        else
                c->out_head = ch;
        c->out_tail = ch;
        c->out_bytes += ch->len;
}

static void deadline_fire(struct rpc_timer *t);
static ssize_t data_read_cb(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *ud);

struct rpc_call *rpc_call_new(struct rpc_conn *conn, int32_t stream_id)
{
        struct rpc_call *c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        atomic_init(&c->refs, 1);
        atomic_init(&c->cancelled, false);
        c->srv = conn->srv;
        c->conn = conn;
        c->stream_id = stream_id;
        pthread_mutex_init(&c->lock, NULL);
        ha_cond_init_monotonic(&c->cond);
        rpc_envelope_reader_init(&c->env, conn->srv->cfg.limits.max_message_bytes);
        /* Connect unary bodies and gRPC-Web text: a message, base64'd at most. */
        ha_buf_init(&c->body, conn->srv->cfg.limits.max_message_bytes / 3 * 4 + 8);
        c->deadline_timer.fire = deadline_fire;
        c->started_ns = ha_now_ns();
        snprintf(c->peer_addr, sizeof c->peer_addr, "%s", conn->peer_addr);
        if (conn->peer_identity)
                c->peer_identity = strdup(conn->peer_identity);
        c->conn_next = conn->calls;
        conn->calls = c;
        return c;
}

void rpc_call_ref(struct rpc_call *c)
{
        atomic_fetch_add(&c->refs, 1);
}

static void free_inmsgs(struct rpc_inmsg *m)
{
        while (m) {
                struct rpc_inmsg *n = m->next;
                free(m->data);
                free(m);
                m = n;
        }
}

static void free_chunks(struct rpc_chunk *ch)
{
        while (ch) {
                struct rpc_chunk *n = ch->next;
                free(ch);
                ch = n;
        }
}

void rpc_call_unref(struct rpc_call *c)
{
        if (atomic_fetch_sub(&c->refs, 1) != 1)
                return;
        free(c->method_hdr);
        free(c->path);
        free(c->content_type);
        free(c->authority);
        free(c->peer_identity);
        free(c->status_msg);
        rpc_nvlist_clear(&c->headers);
        rpc_nvlist_clear(&c->md);
        rpc_nvlist_clear(&c->resp_headers);
        rpc_nvlist_clear(&c->resp_trailers);
        rpc_nvlist_clear(&c->wire_trailers);
        rpc_nvlist_clear(&c->details);
        free_inmsgs(c->in_head);
        free_chunks(c->out_head);
        if (c->request)
                protobuf_c_message_free_unpacked(c->request, NULL);
        rpc_envelope_reader_done(&c->env);
        ha_buf_done(&c->body);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

const char *rpc_call_header(struct rpc_call *c, const char *name)
{
        const struct rpc_nv *e = rpc_nvlist_get(&c->headers, name);
        return e ? (const char *)e->value : NULL;
}

/* --- status ---------------------------------------------------------------- */

void rpc_call_set_status_locked(struct rpc_call *c, enum rpc_code code, const char *msg)
{
        if (c->finished)
                return;
        c->finished = true;
        c->status = code;
        c->status_msg = msg && *msg ? strdup(msg) : NULL;
        pthread_cond_broadcast(&c->cond);
}

static void finish_msg(struct rpc_call *c, enum rpc_code code, const char *msg)
{
        pthread_mutex_lock(&c->lock);
        rpc_call_set_status_locked(c, code, msg);
        pthread_mutex_unlock(&c->lock);
        rpc_call_post(c);
}

void rpc_call_finish(rpc_call *c, enum rpc_code code, const char *fmt, ...)
{
        char msg[1024] = "";
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(msg, sizeof msg, fmt, ap);
                va_end(ap);
        }
        finish_msg(c, code, msg);
}

void rpc_call_finish_errno(rpc_call *c, int neg_errno, const char *msg)
{
        finish_msg(c, rpc_code_from_errno(neg_errno), msg ? msg : strerror(-neg_errno));
}

int rpc_call_add_error_detail(rpc_call *c, const ProtobufCMessage *detail)
{
        size_t n = protobuf_c_message_get_packed_size(detail);
        uint8_t *b = malloc(n ? n : 1);
        if (!b)
                return -ENOMEM;
        protobuf_c_message_pack(detail, b);
        const char *name = detail->descriptor->name;
        pthread_mutex_lock(&c->lock);
        int r = c->details.n >= 8 ? -E2BIG : rpc_nvlist_add(&c->details, name, strlen(name), b, n);
        pthread_mutex_unlock(&c->lock);
        free(b);
        return r;
}

bool rpc_call_finished(rpc_call *c)
{
        pthread_mutex_lock(&c->lock);
        bool f = c->finished;
        pthread_mutex_unlock(&c->lock);
        return f;
}

/* --- plain HTTP answers (no protocol matched) ------------------------------ */

static void respond_plain(struct rpc_call *c, int status, const char *hname, const char *hval)
{
        char st[8];
        snprintf(st, sizeof st, "%d", status);
        nghttp2_nv nv[2] = {
                { (uint8_t *)":status", (uint8_t *)st, 7, strlen(st), NGHTTP2_NV_FLAG_NONE },
                { (uint8_t *)hname, (uint8_t *)hval, hname ? strlen(hname) : 0, hval ? strlen(hval) : 0,
                  NGHTTP2_NV_FLAG_NONE },
        };
        pthread_mutex_lock(&c->lock);
        rpc_call_set_status_locked(c, RPC_UNIMPLEMENTED, NULL);
        pthread_mutex_unlock(&c->lock);
        c->response_started = true;
        nghttp2_submit_response(c->conn->h2, c->stream_id, nv, hname ? 2 : 1, NULL);
        rpc_conn_mark_dirty(c->conn);
}

/* A GET of a path registered with rpc_server_add_http_get (e.g. /metrics):
 * the whole body is built now and queued as one chunk of a finished call, so
 * the normal body reader sends it and frees it with the call. Returns false
 * when no endpoint matches. */
static bool serve_http_get(struct rpc_call *c)
{
        const struct rpc_http_get *g = NULL;
        for (size_t i = 0; i < c->srv->nhttp_gets; i++)
                if (strcmp(c->srv->http_gets[i].path, c->path) == 0)
                        g = &c->srv->http_gets[i];
        if (!g)
                return false;
        char *body = NULL;
        size_t len = 0;
        const char *ctype = "text/plain";
        int status = g->fn(g->ctx, c->peer_identity, &body, &len, &ctype);
        struct rpc_chunk *ch = NULL;
        if (status == 200 && rpc_chunk_new(len, &ch) < 0)
                status = 500;
        if (status != 200) {
                free(body);
                respond_plain(c, status, NULL, NULL);
                return true;
        }
        memcpy(ch->data, body, len);
        free(body);
        pthread_mutex_lock(&c->lock);
        c->out_head = c->out_tail = ch;
        c->out_bytes = len;
        rpc_call_set_status_locked(c, RPC_OK, NULL);
        c->finished = c->tail_framed = c->headers_frozen = true;
        pthread_mutex_unlock(&c->lock);
        c->response_started = true;
        char clen[24];
        snprintf(clen, sizeof clen, "%zu", len);
        nghttp2_nv nv[] = {
                { (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
                { (uint8_t *)"content-type", (uint8_t *)ctype, 12, strlen(ctype), NGHTTP2_NV_FLAG_NONE },
                { (uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen), NGHTTP2_NV_FLAG_NONE },
        };
        nghttp2_data_provider prd = { .source.ptr = c, .read_callback = data_read_cb };
        nghttp2_submit_response(c->conn->h2, c->stream_id, nv, 3, &prd);
        rpc_conn_mark_dirty(c->conn);
        return true;
}

/* --- dispatch -------------------------------------------------------------- */

static void log_call(struct rpc_call *c)
{
        pthread_mutex_lock(&c->lock);
        enum rpc_code code = c->status;
        pthread_mutex_unlock(&c->lock);
        uint64_t us = (ha_now_ns() - c->started_ns) / 1000;
        ha_metrics_rpc_observe(c->method ? c->method->path : "?", c->proto ? c->proto->name : "?",
                               rpc_code_name(code), (double)us / 1e6);
        if (!ha_log_enabled(HA_LOG_INFO))
                return;
        ha_log(code == RPC_OK ? HA_LOG_INFO : HA_LOG_WARN, "rpc.call",
               "method=%s protocol=%s peer=%s identity=\"%s\" code=%s duration_us=%" PRIu64,
               c->method ? c->method->path : "?", c->proto ? c->proto->name : "?", c->peer_addr,
               c->peer_identity ? c->peer_identity : "", rpc_code_name(code), us);
}

static int decode_msg(struct rpc_call *c, struct rpc_inmsg *m, ProtobufCMessage **ret)
{
        uint8_t *data = m->data;
        size_t len = m->len;
        uint8_t *plain = NULL;
        size_t limit = c->srv->cfg.limits.max_message_bytes;
        if (m->compressed) {
                int r = rpc_gzip_inflate(data, len, limit, &plain, &len);
                if (r == -EMSGSIZE) {
                        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED,
                                        "request message larger than the limit of %zu bytes after decompression",
                                        limit);
                        return -EBADMSG;
                }
                if (r < 0) {
                        rpc_call_finish(c, RPC_INTERNAL, "cannot decompress request message (gzip): %s",
                                        r == -EBADMSG ? "corrupt data" : "out of memory");
                        return -EBADMSG;
                }
                data = plain;
        }
        char why[256];
        int r = rpc_codec_decode(c->codec, c->method->input, data, len, ret, why, sizeof why);
        free(plain);
        if (r < 0) {
                rpc_call_finish(c, rpc_codec_decode_error_code(c->codec), "%s", why);
                return -EBADMSG;
        }
        return 0;
}

static void run_handler(struct rpc_call *c)
{
        const struct rpc_method *m = c->method;
        if (!rpc_call_cancelled(c) && !rpc_call_finished(c)) {
                bool ok = true;
                if (m->kind == RPC_UNARY || m->kind == RPC_SERVER_STREAM) {
                        pthread_mutex_lock(&c->lock);
                        struct rpc_inmsg *in = c->in_head;
                        c->in_head = c->in_tail = NULL;
                        c->in_bytes = 0;
                        pthread_mutex_unlock(&c->lock);
                        ok = in && decode_msg(c, in, &c->request) == 0;
                        free_inmsgs(in);
                }
                if (ok)
                        m->handler(c, m->ctx);
        }
        pthread_mutex_lock(&c->lock);
        if (!c->finished)
                rpc_call_set_status_locked(c, atomic_load(&c->cancelled) ? RPC_CANCELLED : RPC_OK, NULL);
        pthread_mutex_unlock(&c->lock);
        rpc_call_post(c);
        log_call(c);
}

static void job_run(struct ha_job *job)
{
        struct rpc_call *c = (struct rpc_call *)((char *)job - offsetof(struct rpc_call, job));
        run_handler(c);
        rpc_call_unref(c);
}

static void dispatch(struct rpc_call *c)
{
        c->dispatched = true;
        if ((c->method->flags & RPC_INLINE) && c->method->kind == RPC_UNARY) {
                run_handler(c);     /* pure in-memory: skip the two thread hops */
                return;
        }
        rpc_call_ref(c);
        c->job.run = job_run;
        ha_workq *q = c->method->kind == RPC_UNARY ? c->srv->workq : c->srv->workq_streams;
        int r = ha_workq_push(q, &c->job);
        if (r < 0) {
                /* Finish before dropping the job's reference: it may be the last. */
                rpc_call_finish(c, r == -EAGAIN ? RPC_RESOURCE_EXHAUSTED : RPC_UNAVAILABLE,
                                r == -EAGAIN ? "server busy: too many calls waiting for a worker"
                                             : "server is shutting down");
                rpc_call_unref(c);
        }
}

/* Builds the metadata the handler sees: non-reserved headers, -bin decoded. */
static int build_metadata(struct rpc_call *c)
{
        for (size_t i = 0; i < c->headers.n; i++) {
                const struct rpc_nv *h = &c->headers.v[i];
                if (rpc_header_reserved(h->name))
                        continue;
                size_t nl = strlen(h->name);
                if (nl > 4 && strcmp(h->name + nl - 4, "-bin") == 0) {
                        /* Duplicates may arrive joined with commas: decode each. */
                        const char *v = (const char *)h->value;
                        while (*v) {
                                const char *comma = strchr(v, ',');
                                size_t vl = comma ? (size_t)(comma - v) : strlen(v);
                                while (vl && *v == ' ') {
                                        v++;
                                        vl--;
                                }
                                uint8_t *dec = malloc(vl + 3);
                                if (!dec)
                                        return -ENOMEM;
                                long dl = ha_base64_decode(v, vl, dec);
                                if (dl < 0) {
                                        free(dec);
                                        rpc_call_finish(c, RPC_INTERNAL, "metadata %s: invalid base64", h->name);
                                        return -EINVAL;
                                }
                                int r = rpc_nvlist_add(&c->md, h->name, nl, dec, (size_t)dl);
                                free(dec);
                                if (r < 0)
                                        return r;
                                if (!comma)
                                        break;
                                v = comma + 1;
                        }
                } else if (rpc_nvlist_add(&c->md, h->name, nl, h->value, h->value_len) < 0) {
                        return -ENOMEM;
                }
        }
        return 0;
}

void rpc_call_on_headers(struct rpc_call *c)
{
        rpc_server *s = c->srv;
        if (!c->method_hdr || !c->path) {
                respond_plain(c, 400, NULL, NULL);
                return;
        }
        if (strcmp(c->method_hdr, "GET") == 0 && serve_http_get(c))
                return;
        for (size_t i = 0; i < sizeof protocols / sizeof protocols[0]; i++) {
                if (protocols[i]->accepts(c->method_hdr, c->content_type)) {
                        c->proto = protocols[i];
                        break;
                }
        }
        if (!c->proto && strcmp(c->method_hdr, "OPTIONS") == 0) {
                rpc_cors_preflight(c);
                return;
        }
        if (!c->proto) {
                if (strcmp(c->method_hdr, "POST") != 0 && strcmp(c->method_hdr, "GET") != 0 &&
                    strcmp(c->method_hdr, "OPTIONS") != 0)
                        respond_plain(c, 405, "allow", "POST");
                else
                        respond_plain(c, 415, "accept-post",
                                      "application/grpc, application/grpc+proto, application/grpc+json, "
                                      "application/grpc-web, application/grpc-web-text, application/proto, "
                                      "application/json, application/connect+proto, application/connect+json");
                return;
        }
        /* Strip a query string before routing (Connect GET carries one). */
        char path[512];
        snprintf(path, sizeof path, "%s", c->path);
        char *q = strchr(path, '?');
        if (q)
                *q = '\0';
        c->method = rpc_server_find_method(s, path);
        int r = c->proto->begin(c);
        if (r < 0 || rpc_call_finished(c))
                goto out_respond;
        if (build_metadata(c) < 0) {
                rpc_call_finish(c, RPC_INTERNAL, "cannot read request metadata");
                goto out_respond;
        }
        if (!c->method) {
                rpc_call_finish(c, RPC_UNIMPLEMENTED, "unknown method %s", path);
                goto out_respond;
        }
        if (s->cfg.authorize) {
                char why[256] = "";
                if (!s->cfg.authorize(s->cfg.authorize_ctx, c->peer_identity, c->method, why, sizeof why)) {
                        rpc_call_finish(c, RPC_PERMISSION_DENIED, "%s", why);
                        goto out_respond;
                }
        }
        if (c->deadline_ms)
                rpc_timer_arm(s, &c->deadline_timer, c->deadline_ms);
        if (c->method->kind == RPC_CLIENT_STREAM || c->method->kind == RPC_BIDI)
                dispatch(c);
        return;
out_respond:
        /* Refused before any handler ran (unknown method, denied, bad
         * request): counted too, under a bounded method label. */
        pthread_mutex_lock(&c->lock);
        enum rpc_code code = c->status;
        pthread_mutex_unlock(&c->lock);
        ha_metrics_rpc_observe(c->method ? c->method->path : "unknown", c->proto->name, rpc_code_name(code),
                               (double)(ha_now_ns() - c->started_ns) / 1e9);
        rpc_call_on_ready(c);
}

int rpc_call_push_msg(struct rpc_call *c, uint8_t *data, size_t len, bool compressed)
{
        if (compressed && !c->req_gzip) {
                free(data);
                rpc_call_finish(c, RPC_INTERNAL,
                                "request message has the compressed flag but no message encoding was declared");
                return -EINVAL;
        }
        c->in_count++;
        if (c->method && (c->method->kind == RPC_UNARY || c->method->kind == RPC_SERVER_STREAM) &&
            c->in_count > 1) {
                free(data);
                rpc_call_finish(c, RPC_UNIMPLEMENTED, "%s takes exactly one request message, got more",
                                c->method->path);
                return -EINVAL;
        }
        struct rpc_inmsg *m = malloc(sizeof *m);
        if (!m) {
                free(data);
                return -ENOMEM;
        }
        *m = (struct rpc_inmsg){ .data = data, .len = len, .compressed = compressed };
        pthread_mutex_lock(&c->lock);
        if (c->in_tail)
                c->in_tail->next = m;
        else
                c->in_head = m;
        c->in_tail = m;
        c->in_bytes += len;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        return 0;
}

void rpc_call_on_data(struct rpc_call *c, const uint8_t *p, size_t n)
{
        nghttp2_session *h2 = c->conn->h2;
        if (c->proto && c->method && !rpc_call_finished(c))
                c->proto->on_data(c, p, n);
        if (rpc_call_finished(c) && c->dispatched == false && !c->response_started)
                rpc_call_on_ready(c);   /* the protocol failed the call: answer now */
        pthread_mutex_lock(&c->lock);
        bool high = c->in_bytes > c->srv->cfg.limits.stream_in_high_water;
        pthread_mutex_unlock(&c->lock);
        if (high)
                c->unconsumed += n;     /* the handler is behind: hold the window */
        else
                nghttp2_session_consume(h2, c->stream_id, n);
}

void rpc_call_on_end(struct rpc_call *c)
{
        if (c->in_ended)
                return;
        c->in_ended = true;
        if (c->proto && c->method && !rpc_call_finished(c))
                c->proto->on_end(c);
        pthread_mutex_lock(&c->lock);
        c->in_closed = true;
        bool finished = c->finished;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        if (finished || !c->method) {
                if (!c->response_started)
                        rpc_call_on_ready(c);
                return;
        }
        if (!c->dispatched) {
                if (c->method->kind == RPC_UNARY || c->method->kind == RPC_SERVER_STREAM) {
                        if (c->in_count == 0) {
                                rpc_call_finish(c, RPC_UNIMPLEMENTED, "%s takes exactly one request message, got none",
                                                c->method->path);
                                rpc_call_on_ready(c);
                                return;
                        }
                }
                dispatch(c);
        }
}

static void deadline_fire(struct rpc_timer *t)
{
        struct rpc_call *c = (struct rpc_call *)((char *)t - offsetof(struct rpc_call, deadline_timer));
        pthread_mutex_lock(&c->lock);
        bool was = c->finished;
        rpc_call_set_status_locked(c, RPC_DEADLINE_EXCEEDED, "deadline exceeded");
        pthread_mutex_unlock(&c->lock);
        if (was)
                return;
        atomic_store(&c->cancelled, true);
        rpc_call_on_ready(c);
}

void rpc_call_on_close(struct rpc_call *c, uint32_t error_code)
{
        struct rpc_conn *conn = c->conn;
        if (conn) {
                for (struct rpc_call **pp = &conn->calls; *pp; pp = &(*pp)->conn_next) {
                        if (*pp == c) {
                                *pp = c->conn_next;
                                break;
                        }
                }
                rpc_timer_disarm(c->srv, &c->deadline_timer);
        }
        c->conn = NULL;
        atomic_store(&c->cancelled, true);
        pthread_mutex_lock(&c->lock);
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        rpc_call_unref(c);
}

/* --- response -------------------------------------------------------------- */

static ssize_t data_read_cb(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
        return rpc_call_read_body(src->ptr, buf, len, flags);
}

static size_t copy_out_locked(struct rpc_call *c, uint8_t *buf, size_t len)
{
        size_t copied = 0;
        while (c->out_head && copied < len) {
                struct rpc_chunk *ch = c->out_head;
                size_t take = ch->len - ch->off;
                if (take > len - copied)
                        take = len - copied;
                memcpy(buf + copied, ch->data + ch->off, take);
                ch->off += take;
                copied += take;
                if (ch->off == ch->len) {
                        c->out_head = ch->next;
                        if (!c->out_head)
                                c->out_tail = NULL;
                        free(ch);
                }
        }
        c->out_bytes -= copied;
        if (c->writer_waiting && c->out_bytes <= c->srv->cfg.limits.stream_out_high_water / 2)
                pthread_cond_broadcast(&c->cond);
        return copied;
}

ssize_t rpc_call_read_body(struct rpc_call *c, uint8_t *buf, size_t len, uint32_t *flags)
{
        pthread_mutex_lock(&c->lock);
        size_t n = copy_out_locked(c, buf, len);
        if (n == 0 && c->finished && !c->tail_framed) {
                c->tail_framed = true;
                c->proto->finish(c, &c->wire_trailers);
                n = copy_out_locked(c, buf, len);
        }
        bool done = n == 0 && c->finished && c->tail_framed && !c->out_head;
        bool deferred = n == 0 && !done;
        pthread_mutex_unlock(&c->lock);
        if (deferred)
                return NGHTTP2_ERR_DEFERRED;
        if (done) {
                *flags |= NGHTTP2_DATA_FLAG_EOF;
                if (c->wire_trailers.n) {
                        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                        nghttp2_nv nv[64];
                        size_t k = 0;
                        for (; k < c->wire_trailers.n && k < 64; k++) {
                                const struct rpc_nv *e = &c->wire_trailers.v[k];
                                nv[k] = (nghttp2_nv){ (uint8_t *)e->name, e->value, strlen(e->name),
                                                      e->value_len, NGHTTP2_NV_FLAG_NONE };
                        }
                        nghttp2_submit_trailer(c->conn->h2, c->stream_id, nv, k);
                }
                c->trailers_sent = true;
        }
        return (ssize_t)n;
}

static void start_response(struct rpc_call *c)
{
        pthread_mutex_lock(&c->lock);
        bool final = c->finished && !c->out_head && c->msgs_out == 0;
        c->headers_frozen = true;
        pthread_mutex_unlock(&c->lock);
        struct rpc_nvlist nv = { 0 };
        int status = 200;
        if (c->proto->headers(c, &nv, &status, final) < 0) {
                rpc_nvlist_clear(&nv);
                nghttp2_submit_rst_stream(c->conn->h2, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_INTERNAL_ERROR);
                rpc_conn_mark_dirty(c->conn);
                return;
        }
        c->response_started = true;
        char st[8];
        snprintf(st, sizeof st, "%d", status);
        size_t n = nv.n + 1;
        nghttp2_nv *v = calloc(n, sizeof *v);
        if (!v) {
                rpc_nvlist_clear(&nv);
                nghttp2_submit_rst_stream(c->conn->h2, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_INTERNAL_ERROR);
                return;
        }
        v[0] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)st, 7, strlen(st), NGHTTP2_NV_FLAG_NONE };
        for (size_t i = 0; i < nv.n; i++)
                v[i + 1] = (nghttp2_nv){ (uint8_t *)nv.v[i].name, nv.v[i].value, strlen(nv.v[i].name),
                                         nv.v[i].value_len, NGHTTP2_NV_FLAG_NONE };
        pthread_mutex_lock(&c->lock);
        bool body = c->out_head != NULL || !final;
        if (final)
                c->tail_framed = true;  /* the head carried the status (or queued the body) */
        pthread_mutex_unlock(&c->lock);
        if (body) {
                nghttp2_data_provider prd = { .source.ptr = c, .read_callback = data_read_cb };
                nghttp2_submit_response(c->conn->h2, c->stream_id, v, n, &prd);
        } else {
                nghttp2_submit_response(c->conn->h2, c->stream_id, v, n, NULL);
                c->trailers_sent = true;
        }
        free(v);
        rpc_nvlist_clear(&nv);
        rpc_conn_mark_dirty(c->conn);
}

void rpc_call_on_ready(struct rpc_call *c)
{
        struct rpc_conn *conn = c->conn;
        if (!conn || !conn->h2 || c->trailers_sent)
                return;
        if (c->unconsumed) {
                pthread_mutex_lock(&c->lock);
                bool high = c->in_bytes > c->srv->cfg.limits.stream_in_high_water;
                pthread_mutex_unlock(&c->lock);
                if (!high) {
                        nghttp2_session_consume(conn->h2, c->stream_id, c->unconsumed);
                        c->unconsumed = 0;
                }
        }
        if (!c->response_started) {
                pthread_mutex_lock(&c->lock);
                /* Connect unary puts the status in the head: wait for it. */
                bool go = c->finished || (c->out_head && !c->connect_unary);
                pthread_mutex_unlock(&c->lock);
                if (go)
                        start_response(c);
        } else {
                nghttp2_session_resume_data(conn->h2, c->stream_id);
        }
        rpc_conn_mark_dirty(conn);
}

/* --- handler API (rpc.h) ---------------------------------------------------- */

const ProtobufCMessage *rpc_call_request(rpc_call *c)
{
        return c->request;
}

const struct rpc_method *rpc_call_method(rpc_call *c)
{
        return c->method;
}

uint64_t rpc_call_deadline(rpc_call *c)
{
        return c->deadline_ms;
}

bool rpc_call_cancelled(rpc_call *c)
{
        return atomic_load(&c->cancelled);
}

bool rpc_call_wait_cancel(rpc_call *c, uint64_t ms)
{
        uint64_t until = ha_now_ms() + ms;
        struct timespec ts = ha_abs_monotonic(until);
        pthread_mutex_lock(&c->lock);
        while (!atomic_load(&c->cancelled) && ha_now_ms() < until)
                if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
                        break;
        pthread_mutex_unlock(&c->lock);
        return atomic_load(&c->cancelled);
}

const char *rpc_call_peer_identity(rpc_call *c)
{
        return c->peer_identity;
}

const char *rpc_call_peer_addr(rpc_call *c)
{
        return c->peer_addr;
}

const char *rpc_call_protocol_name(rpc_call *c)
{
        return c->proto ? c->proto->name : "";
}

bool rpc_call_metadata(rpc_call *c, size_t i, const char **ret_key, const uint8_t **ret_val, size_t *ret_len)
{
        if (i >= c->md.n)
                return false;
        *ret_key = c->md.v[i].name;
        *ret_val = c->md.v[i].value;
        *ret_len = c->md.v[i].value_len;
        return true;
}

const char *rpc_call_metadata_get(rpc_call *c, const char *key)
{
        const struct rpc_nv *e = rpc_nvlist_get(&c->md, key);
        return e ? (const char *)e->value : NULL;
}

int rpc_call_recv(rpc_call *c, uint64_t timeout_ms, ProtobufCMessage **ret_msg)
{
        uint64_t until = timeout_ms ? ha_now_ms() + timeout_ms : 0;
        struct timespec ts = ha_abs_monotonic(until);
        size_t high = c->srv->cfg.limits.stream_in_high_water;
        pthread_mutex_lock(&c->lock);
        for (;;) {
                if (atomic_load(&c->cancelled) || (c->finished && !c->in_head)) {
                        pthread_mutex_unlock(&c->lock);
                        return -ECANCELED;
                }
                if (c->in_head)
                        break;
                if (c->in_closed) {
                        pthread_mutex_unlock(&c->lock);
                        return 0;
                }
                if (until) {
                        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT && !c->in_head &&
                            !c->in_closed && !atomic_load(&c->cancelled)) {
                                pthread_mutex_unlock(&c->lock);
                                return -ETIMEDOUT;
                        }
                } else {
                        pthread_cond_wait(&c->cond, &c->lock);
                }
        }
        struct rpc_inmsg *m = c->in_head;
        c->in_head = m->next;
        if (!c->in_head)
                c->in_tail = NULL;
        bool was_high = c->in_bytes > high;
        c->in_bytes -= m->len;
        bool kick = was_high && c->in_bytes <= high;
        pthread_mutex_unlock(&c->lock);
        if (kick)
                rpc_call_post(c);       /* give the held window back */
        m->next = NULL;
        int r = decode_msg(c, m, ret_msg);
        free_inmsgs(m);
        return r < 0 ? r : 1;
}

int rpc_call_encode(struct rpc_call *c, const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_len)
{
        return rpc_codec_encode(c->codec, msg, ret, ret_len);
}

static int too_large(struct rpc_call *c, size_t len)
{
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "response message of %zu bytes exceeds the limit of %zu", len,
                        c->srv->cfg.limits.max_message_bytes);
        return -EMSGSIZE;
}

/* Encodes and frames one response message into a chunk. */
static int make_response_chunk(struct rpc_call *c, const ProtobufCMessage *msg, struct rpc_chunk **ret)
{
        size_t limit = c->srv->cfg.limits.max_message_bytes;
        if (c->proto == &rpc_proto_grpc && c->codec == RPC_CODEC_PROTO && !c->resp_gzip) {
                /* The common case, packed straight behind its envelope
                 * header: no second copy of the message (a 128 KiB exec
                 * output chunk). */
                size_t len = protobuf_c_message_get_packed_size(msg);
                if (len > limit)
                        return too_large(c, len);
                if (rpc_chunk_new(RPC_ENVELOPE_HDR + len, ret) < 0)
                        return -ENOMEM;
                rpc_envelope_put_header((*ret)->data, 0, (uint32_t)len);
                protobuf_c_message_pack(msg, (*ret)->data + RPC_ENVELOPE_HDR);
                return 0;
        }
        uint8_t *bytes;
        size_t len;
        int r = rpc_call_encode(c, msg, &bytes, &len);
        if (r < 0)
                return r;
        if (len > limit) {
                free(bytes);
                return too_large(c, len);
        }
        uint8_t flags = 0;
        if (c->resp_gzip && len > 0) {
                uint8_t *z;
                size_t zl;
                if (rpc_gzip_deflate(bytes, len, &z, &zl) == 0) {
                        free(bytes);
                        bytes = z;
                        len = zl;
                        flags = 1;
                }
        }
        r = c->proto->frame(c, flags, bytes, len, ret);
        free(bytes);
        return r;
}

int rpc_call_send(rpc_call *c, const ProtobufCMessage *msg)
{
        if (atomic_load(&c->cancelled))
                return -ECANCELED;
        struct rpc_chunk *ch;
        int r = make_response_chunk(c, msg, &ch);
        if (r < 0)
                return r;
        size_t high = c->srv->cfg.limits.stream_out_high_water;
        bool on_loop = rpc_on_loop(c->srv);
        pthread_mutex_lock(&c->lock);
        while (!on_loop && c->out_bytes >= high && !atomic_load(&c->cancelled) && !c->finished) {
                c->writer_waiting = true;
                pthread_cond_wait(&c->cond, &c->lock);
        }
        c->writer_waiting = false;
        if (atomic_load(&c->cancelled) || c->finished) {
                pthread_mutex_unlock(&c->lock);
                free(ch);
                return -ECANCELED;
        }
        rpc_call_queue_chunk_locked(c, ch);
        c->msgs_out++;
        c->headers_frozen = true;
        pthread_mutex_unlock(&c->lock);
        rpc_call_post(c);
        return 0;
}

static int add_md(rpc_call *c, struct rpc_nvlist *l, bool is_header, const char *key, const void *val, size_t len)
{
        if (!rpc_metadata_key_valid(key))
                return -EINVAL;
        size_t kl = strlen(key);
        bool bin = kl > 4 && strcmp(key + kl - 4, "-bin") == 0;
        if (!bin)
                for (size_t i = 0; i < len; i++)
                        if (((const uint8_t *)val)[i] < 0x20 || ((const uint8_t *)val)[i] > 0x7e)
                                return -EINVAL;
        pthread_mutex_lock(&c->lock);
        int r = (is_header && c->headers_frozen) ? -EINVAL : rpc_nvlist_add(l, key, kl, val, len);
        pthread_mutex_unlock(&c->lock);
        return r;
}

int rpc_call_add_header(rpc_call *c, const char *key, const void *val, size_t len)
{
        return add_md(c, &c->resp_headers, true, key, val, len);
}

int rpc_call_add_trailer(rpc_call *c, const char *key, const void *val, size_t len)
{
        return add_md(c, &c->resp_trailers, false, key, val, len);
}
