/*
 * proto_connect.c - the Connect protocol: unary POST (bare body,
 * application/proto or application/json), unary GET for methods without side
 * effects (message in the query string), and streaming
 * (application/connect+proto|+json, envelopes with an end-stream message).
 *
 * Unary answers carry the status as HTTP status + JSON error body, and the
 * handler's trailers as "trailer-" headers: so the response head waits for
 * the handler to finish (c->connect_unary makes the loop hold it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/time.h"
#include "rpc/gzip.h"
#include "rpc/json_lex.h"
#include "rpc/rpc_int.h"
#include "rpc/timeout.h"

#define ACCEPT_ENCODING "gzip,identity"
/* Unary responses smaller than this are not worth compressing. */
#define CONNECT_GZIP_MIN 1024

/* The media type without parameters: "application/json; charset=utf-8" → len of "application/json". */
static size_t media_len(const char *ct)
{
        size_t n = strcspn(ct, ";");
        while (n && ct[n - 1] == ' ')
                n--;
        return n;
}

static bool media_is(const char *ct, const char *want)
{
        return ct && media_len(ct) == strlen(want) && strncasecmp(ct, want, strlen(want)) == 0;
}

static bool connect_accepts(const char *method, const char *ct)
{
        if (strcmp(method, "GET") == 0)
                return ct == NULL || media_len(ct) == 0;
        if (strcmp(method, "POST") != 0)
                return false;
        return media_is(ct, "application/proto") || media_is(ct, "application/json") ||
               media_is(ct, "application/connect+proto") || media_is(ct, "application/connect+json");
}

static int hexval(int ch)
{
        if (ch >= '0' && ch <= '9') return ch - '0';
        if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
        return -1;
}

/* Percent-decodes |n| bytes of |s| (and '+' as space) into |out|. */
static long pct_decode(const char *s, size_t n, uint8_t *out)
{
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%') {
                        if (i + 2 >= n)
                                return -EINVAL;
                        int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
                        if (h < 0 || l < 0)
                                return -EINVAL;
                        out[o++] = (uint8_t)(h << 4 | l);
                        i += 2;
                } else {
                        out[o++] = s[i] == '+' ? ' ' : (uint8_t)s[i];
                }
        }
        return (long)o;
}

/* Finds query parameter |key| in |q| ("a=1&b=2"); returns its raw value. */
static const char *query_get(const char *q, const char *key, size_t *ret_len)
{
        size_t kl = strlen(key);
        for (const char *p = q; p && *p;) {
                size_t n = strcspn(p, "&");
                if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
                        *ret_len = n - kl - 1;
                        return p + kl + 1;
                }
                p += n;
                if (*p == '&')
                        p++;
        }
        return NULL;
}

static int begin_get(struct rpc_call *c)
{
        if (c->method && !(c->method->flags & RPC_NO_SIDE_EFFECTS)) {
                rpc_call_finish(c, RPC_UNIMPLEMENTED, "%s has side effects: call it with POST", c->method->path);
                c->status_http_override = 405;
                return -EINVAL;
        }
        const char *q = strchr(c->path, '?');
        q = q ? q + 1 : "";
        size_t n;
        const char *enc = query_get(q, "encoding", &n);
        if (!enc || (n == 4 && strncmp(enc, "json", 4) == 0))
                c->codec = RPC_CODEC_JSON;
        else if (n == 5 && strncmp(enc, "proto", 5) == 0)
                c->codec = RPC_CODEC_PROTO;
        else {
                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "unsupported encoding \"%.*s\": use proto or json", (int)(n > 32 ? 32 : n), enc);
                return -EINVAL;
        }
        const char *ver = query_get(q, "connect", &n);
        if (ver && !(n == 2 && strncmp(ver, "v1", 2) == 0)) {
                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "connect=%.*s: only v1 is supported", (int)(n > 16 ? 16 : n), ver);
                return -EINVAL;
        }
        const char *comp = query_get(q, "compression", &n);
        bool gz = false;
        if (comp && !(n == 8 && strncmp(comp, "identity", 8) == 0)) {
                if (!(n == 4 && strncmp(comp, "gzip", 4) == 0)) {
                        rpc_call_finish(c, RPC_UNIMPLEMENTED, "compression \"%.*s\" is not supported: use gzip or identity",
                                        (int)(n > 32 ? 32 : n), comp);
                        return -EINVAL;
                }
                gz = true;
        }
        const char *b64 = query_get(q, "base64", &n);
        bool is_b64 = b64 && n == 1 && b64[0] == '1';
        const char *msg = query_get(q, "message", &n);
        if (!msg)
                msg = "", n = 0;
        uint8_t *raw = malloc(n + 3);
        if (!raw)
                return -ENOMEM;
        long len = pct_decode(msg, n, raw);
        if (len >= 0 && is_b64) {
                uint8_t *dec = malloc((size_t)len + 3);
                if (!dec) {
                        free(raw);
                        return -ENOMEM;
                }
                len = ha_base64_decode((const char *)raw, (size_t)len, dec);
                free(raw);
                raw = dec;
        }
        if (len < 0) {
                free(raw);
                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "message query parameter is not valid %s",
                                is_b64 ? "base64" : "percent-encoding");
                return -EINVAL;
        }
        c->req_gzip = gz;
        int r = ha_buf_append(&c->body, raw, (size_t)len);
        free(raw);
        if (r < 0) {
                rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "message larger than the limit");
                return r;
        }
        return 0;
}

static int connect_begin(struct rpc_call *c)
{
        const char *ct = c->content_type;
        /* Decide the shape first: every error below is framed by it. */
        bool is_get = strcmp(c->method_hdr, "GET") == 0;
        bool streaming = !is_get && rpc_has_prefix(ct, "application/connect+");
        c->connect_unary = !streaming;
        c->connect_get = is_get;
        const char *ver = rpc_call_header(c, "connect-protocol-version");
        if (ver && strcmp(ver, "1") != 0) {
                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "connect-protocol-version \"%.16s\" is not supported: use 1", ver);
                return -EINVAL;
        }
        if (!ver && c->srv->cfg.connect_require_version && strcmp(c->method_hdr, "POST") == 0) {
                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "missing required header connect-protocol-version: 1");
                return -EINVAL;
        }
        const char *to = rpc_call_header(c, "connect-timeout-ms");
        if (to) {
                uint64_t ms;
                if (rpc_connect_timeout_parse(to, strlen(to), &ms) < 0) {
                        rpc_call_finish(c, RPC_INVALID_ARGUMENT, "malformed connect-timeout-ms \"%.32s\"", to);
                        return -EINVAL;
                }
                c->deadline_ms = ha_now_ms() + ms;
        }
        const char *acc;
        if (is_get) {
                int r = begin_get(c);
                acc = rpc_call_header(c, "accept-encoding");
                c->resp_gzip = acc && rpc_token_list_has(acc, "gzip");
                return r;
        }
        c->codec = strstr(ct, "json") ? RPC_CODEC_JSON : RPC_CODEC_PROTO;
        const char *enc = rpc_call_header(c, streaming ? "connect-content-encoding" : "content-encoding");
        if (enc && strcmp(enc, "identity") != 0) {
                if (strcmp(enc, "gzip") != 0) {
                        rpc_call_finish(c, RPC_UNIMPLEMENTED,
                                        "content encoding \"%.32s\" is not supported: use one of " ACCEPT_ENCODING, enc);
                        return -EINVAL;
                }
                c->req_gzip = true;
        }
        acc = rpc_call_header(c, streaming ? "connect-accept-encoding" : "accept-encoding");
        c->resp_gzip = acc ? rpc_token_list_has(acc, "gzip") : c->req_gzip;
        if (c->method && streaming && c->method->kind == RPC_UNARY) {
                rpc_call_finish(c, RPC_UNIMPLEMENTED, "%s is unary: use application/proto or application/json",
                                c->method->path);
                return -EINVAL;
        }
        if (c->method && !streaming && c->method->kind != RPC_UNARY) {
                rpc_call_finish(c, RPC_UNIMPLEMENTED, "%s is a streaming method: use application/connect+proto or +json",
                                c->method->path);
                c->status_http_override = 415;
                return -EINVAL;
        }
        return 0;
}

static int push_cb(void *ctx, uint8_t flags, uint8_t *msg, size_t len)
{
        struct rpc_call *c = ctx;
        if (flags & ~1u) {
                free(msg);
                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "request envelope with flags 0x%02x (end-stream is for responses)",
                                flags);
                return -EINVAL;
        }
        return rpc_call_push_msg(c, msg, len, flags & 1);
}

static int connect_on_data(struct rpc_call *c, const uint8_t *p, size_t n)
{
        if (c->connect_get)
                return 0;       /* a GET body is ignored */
        if (!c->connect_unary) {
                int r = rpc_envelope_feed(&c->env, p, n, push_cb, c);
                if (r == -EMSGSIZE)
                        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED,
                                        "request message of %u bytes exceeds the limit of %zu bytes",
                                        rpc_envelope_announced(&c->env), c->env.limit);
                return r;
        }
        if (c->body.len + n > c->srv->cfg.limits.max_message_bytes) {
                rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "request message exceeds the limit of %zu bytes",
                                c->srv->cfg.limits.max_message_bytes);
                return -EMSGSIZE;
        }
        if (ha_buf_append(&c->body, p, n) < 0) {
                rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "request message exceeds the limit");
                return -EMSGSIZE;
        }
        return 0;
}

static int connect_on_end(struct rpc_call *c)
{
        if (!c->connect_unary) {
                if (rpc_envelope_partial(&c->env)) {
                        rpc_call_finish(c, RPC_INVALID_ARGUMENT, "request ended in the middle of a message");
                        return -EINVAL;
                }
                return 0;
        }
        if (c->codec == RPC_CODEC_JSON && c->body.len == 0 && !c->req_gzip) {
                /* An empty JSON body is not a message; "{}" is. */
                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "empty JSON request body: send {} for an empty message");
                return -EINVAL;
        }
        size_t len;
        uint8_t *b = ha_buf_steal(&c->body, &len);
        if (!b) {
                b = malloc(1);
                if (!b)
                        return -ENOMEM;
        }
        /* Never decompress an empty body. */
        return rpc_call_push_msg(c, b, len, c->req_gzip && len > 0);
}

static int connect_frame(struct rpc_call *c, uint8_t flags, const uint8_t *msg, size_t len, struct rpc_chunk **ret)
{
        struct rpc_chunk *ch;
        size_t hdr = c->connect_unary ? 0 : RPC_ENVELOPE_HDR;
        if (rpc_chunk_new(hdr + len, &ch) < 0)
                return -ENOMEM;
        if (hdr)
                rpc_envelope_put_header(ch->data, flags, (uint32_t)len);
        if (len)
                memcpy(ch->data + hdr, msg, len);
        *ret = ch;
        return 0;
}

/* Messages may quote request bytes (an unknown encoding, a path), which
 * need not be UTF-8: bad bytes become U+FFFD so the body stays JSON. */
static int json_escape(struct ha_buf *b, const char *s)
{
        int r = ha_buf_append(b, "\"", 1);
        const unsigned char *end = (const unsigned char *)s + strlen(s);
        for (const unsigned char *p = (const unsigned char *)s; r == 0 && *p; p++) {
                size_t ul;
                if (*p == '"' || *p == '\\')
                        r = ha_buf_printf(b, "\\%c", *p);
                else if (*p < 0x20)
                        r = ha_buf_printf(b, "\\u%04x", *p);
                else if (*p < 0x80)
                        r = ha_buf_append(b, p, 1);
                else if ((ul = rpc_jlex_utf8_len(p, (size_t)(end - p))) == 0)
                        r = ha_buf_append(b, "\\ufffd", 6);
                else {
                        r = ha_buf_append(b, p, ul);
                        p += ul - 1;
                }
        }
        if (r == 0)
                r = ha_buf_append(b, "\"", 1);
        return r;
}

/* {"code":"...","message":"..."} — lock held. */
static int error_json(struct rpc_call *c, struct ha_buf *b)
{
        int r = ha_buf_printf(b, "{\"code\":\"%s\"", rpc_code_connect_name(c->status));
        if (r == 0 && c->status_msg) {
                r = ha_buf_printf(b, ",\"message\":");
                if (r == 0)
                        r = json_escape(b, c->status_msg);
        }
        if (r == 0)
                r = rpc_details_connect_json(c, b);
        if (r == 0)
                r = ha_buf_append(b, "}", 1);
        return r;
}

/* Metadata as {"k":["v",...]} for the end-stream message; -bin base64. */
static int metadata_json(const struct rpc_nvlist *l, struct ha_buf *b)
{
        struct rpc_nvlist wire = { 0 };
        int r = rpc_nvlist_append_wire(&wire, l, NULL);
        if (r == 0)
                r = ha_buf_append(b, "{", 1);
        for (size_t i = 0; r == 0 && i < wire.n; i++) {
                bool seen = false;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(wire.v[j].name, wire.v[i].name) == 0)
                                seen = true;
                if (seen)
                        continue;
                if (i)
                        r = ha_buf_append(b, ",", 1);
                if (r == 0)
                        r = json_escape(b, wire.v[i].name);
                if (r == 0)
                        r = ha_buf_append(b, ":[", 2);
                bool first = true;
                for (size_t j = i; r == 0 && j < wire.n; j++) {
                        if (strcmp(wire.v[j].name, wire.v[i].name) != 0)
                                continue;
                        if (!first)
                                r = ha_buf_append(b, ",", 1);
                        first = false;
                        if (r == 0)
                                r = json_escape(b, (const char *)wire.v[j].value);
                }
                if (r == 0)
                        r = ha_buf_append(b, "]", 1);
        }
        if (r == 0)
                r = ha_buf_append(b, "}", 1);
        rpc_nvlist_clear(&wire);
        return r;
}

static int connect_finish(struct rpc_call *c, struct rpc_nvlist *trailers);

static void drop_output_locked(struct rpc_call *c)
{
        while (c->out_head) {
                struct rpc_chunk *n = c->out_head->next;
                free(c->out_head);
                c->out_head = n;
        }
        c->out_tail = NULL;
        c->out_bytes = 0;
}

static int queue_locked(struct rpc_call *c, const uint8_t *p, size_t n, uint8_t flags, bool envelope)
{
        struct rpc_chunk *ch;
        size_t hdr = envelope ? RPC_ENVELOPE_HDR : 0;
        if (rpc_chunk_new(hdr + n, &ch) < 0)
                return -ENOMEM;
        if (envelope)
                rpc_envelope_put_header(ch->data, flags, (uint32_t)n);
        memcpy(ch->data + hdr, p, n);
        rpc_call_queue_chunk_locked(c, ch);
        return 0;
}

static int connect_headers(struct rpc_call *c, struct rpc_nvlist *nv, int *status, bool final)
{
        int r = 0;
        const char *origin = rpc_call_header(c, "origin");
        if (origin && c->srv->cfg.cors_origins)
                r = rpc_cors_response_headers(c, nv, origin);
        pthread_mutex_lock(&c->lock);
        if (!c->connect_unary) {
                *status = 200;
                if (r == 0)
                        r = rpc_nvlist_add_str(nv, "content-type", c->content_type);
                if (r == 0 && c->resp_gzip)
                        r = rpc_nvlist_add_str(nv, "connect-content-encoding", "gzip");
                if (r == 0)
                        r = rpc_nvlist_add_str(nv, "connect-accept-encoding", ACCEPT_ENCODING);
                if (r == 0)
                        r = rpc_nvlist_append_wire(nv, &c->resp_headers, NULL);
                /* Nothing was sent and the status is known: the body is
                 * just the end-stream message (streams always answer 200). */
                if (r == 0 && final && !c->tail_framed) {
                        c->tail_framed = true;
                        r = connect_finish(c, NULL);
                }
                pthread_mutex_unlock(&c->lock);
                return r;
        }
        /* Unary: the call is finished here (the loop held the head back). */
        if (c->status != RPC_OK) {
                drop_output_locked(c);
                *status = c->status_http_override ? c->status_http_override : rpc_code_http_status(c->status);
                if (!c->method && !c->status_http_override)
                        *status = 404;
                struct ha_buf b;
                ha_buf_init(&b, 64u << 10);
                if (r == 0)
                        r = error_json(c, &b);
                if (r == 0)
                        r = queue_locked(c, b.data, b.len, 0, false);
                ha_buf_done(&b);
                if (r == 0)
                        r = rpc_nvlist_add_str(nv, "content-type", "application/json");
                if (r == 0)
                        r = rpc_nvlist_append_wire(nv, &c->resp_headers, NULL);
                if (r == 0)
                        r = rpc_nvlist_append_wire(nv, &c->resp_trailers, NULL);
                if (r == 0 && *status == 405)
                        r = rpc_nvlist_add_str(nv, "allow", "POST");
                pthread_mutex_unlock(&c->lock);
                return r;
        }
        *status = 200;
        const char *ct = c->connect_get ? (c->codec == RPC_CODEC_JSON ? "application/json" : "application/proto")
                                        : c->content_type;
        if (r == 0)
                r = rpc_nvlist_add_str(nv, "content-type", ct);
        if (r == 0)
                r = rpc_nvlist_add_str(nv, "accept-encoding", ACCEPT_ENCODING);
        if (r == 0 && c->connect_get)
                r = rpc_nvlist_add_str(nv, "vary", "accept-encoding");
        if (r == 0 && c->resp_gzip && c->msgs_out)
                r = rpc_nvlist_add_str(nv, "content-encoding", "gzip");
        if (r == 0)
                r = rpc_nvlist_append_wire(nv, &c->resp_headers, NULL);
        if (r == 0)
                r = rpc_nvlist_append_wire(nv, &c->resp_trailers, "trailer-");
        pthread_mutex_unlock(&c->lock);
        return r;
}

static int connect_finish(struct rpc_call *c, struct rpc_nvlist *trailers)
{
        if (c->connect_unary)
                return 0;       /* body complete; status was in the head */
        struct ha_buf b;
        ha_buf_init(&b, 1u << 20);
        int r = ha_buf_append(&b, "{", 1);
        bool comma = false;
        if (r == 0 && c->status != RPC_OK) {
                r = ha_buf_printf(&b, "\"error\":");
                if (r == 0)
                        r = error_json(c, &b);
                comma = true;
        }
        if (r == 0 && c->resp_trailers.n) {
                r = ha_buf_printf(&b, "%s\"metadata\":", comma ? "," : "");
                if (r == 0)
                        r = metadata_json(&c->resp_trailers, &b);
        }
        if (r == 0)
                r = ha_buf_append(&b, "}", 1);
        if (r == 0)
                r = queue_locked(c, b.data, b.len, 0x02, true);
        ha_buf_done(&b);
        return r;
}

const struct rpc_protocol rpc_proto_connect = {
        .name = "connect",
        .accepts = connect_accepts,
        .begin = connect_begin,
        .on_data = connect_on_data,
        .on_end = connect_on_end,
        .frame = connect_frame,
        .headers = connect_headers,
        .finish = connect_finish,
};
