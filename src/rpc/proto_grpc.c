/*
 * proto_grpc.c - gRPC over HTTP/2 and gRPC-Web, one implementation with a
 * `web` flag, as connect-go does: the envelope and the status are the same;
 * gRPC-Web only moves the trailers into the body (flag 0x80) and may carry
 * the body in base64 ("-text").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "rpc/rpc_int.h"
#include "core/time.h"
#include "rpc/timeout.h"

#define ACCEPT_ENCODING "identity,gzip"

/* application/grpc, application/grpc+proto, application/grpc+json (params after ';' ignored) */
static bool subtype_ok(const char *rest, enum rpc_codec_id *ret)
{
        size_t n = strcspn(rest, ";");
        if (n == 0 || (n == 6 && strncmp(rest, "+proto", 6) == 0)) {
                if (ret)
                        *ret = RPC_CODEC_PROTO;
                return true;
        }
        if (n == 5 && strncmp(rest, "+json", 5) == 0) {
                if (ret)
                        *ret = RPC_CODEC_JSON;
                return true;
        }
        return false;
}

static bool grpc_accepts(const char *method, const char *ct)
{
        if (!rpc_has_prefix(ct, "application/grpc") || rpc_has_prefix(ct, "application/grpc-web"))
                return false;
        return strcmp(method, "POST") == 0 && subtype_ok(ct + 16, NULL);
}

static bool web_accepts(const char *method, const char *ct)
{
        if (!rpc_has_prefix(ct, "application/grpc-web"))
                return false;
        const char *rest = ct + 20;
        if (rpc_has_prefix(rest, "-text"))
                rest += 5;
        return strcmp(method, "POST") == 0 && subtype_ok(rest, NULL);
}

static int grpc_begin_common(struct rpc_call *c, bool web)
{
        const char *ct = c->content_type;
        const char *rest = ct + (web ? 20 : 16);
        if (web && rpc_has_prefix(rest, "-text")) {
                c->web_text = true;
                rest += 5;
        }
        subtype_ok(rest, &c->codec);

        const char *to = rpc_call_header(c, "grpc-timeout");
        if (to) {
                uint64_t ms;
                if (rpc_grpc_timeout_parse(to, strlen(to), &ms) < 0) {
                        rpc_call_finish(c, RPC_INVALID_ARGUMENT, "malformed grpc-timeout \"%.32s\"", to);
                        return -EINVAL;
                }
                c->deadline_ms = ha_now_ms() + ms;
        }
        const char *enc = rpc_call_header(c, "grpc-encoding");
        if (enc && strcmp(enc, "identity") != 0) {
                if (strcmp(enc, "gzip") != 0) {
                        rpc_call_finish(c, RPC_UNIMPLEMENTED,
                                        "grpc-encoding \"%.32s\" is not supported: use one of " ACCEPT_ENCODING, enc);
                        return -EINVAL;
                }
                c->req_gzip = true;
        }
        const char *acc = rpc_call_header(c, "grpc-accept-encoding");
        c->resp_gzip = c->req_gzip && acc && rpc_token_list_has(acc, "gzip");
        return 0;
}

static int grpc_begin(struct rpc_call *c)
{
        return grpc_begin_common(c, false);
}

static int web_begin(struct rpc_call *c)
{
        return grpc_begin_common(c, true);
}

static int push_cb(void *ctx, uint8_t flags, uint8_t *msg, size_t len)
{
        struct rpc_call *c = ctx;
        if (flags & ~1u) {
                free(msg);
                rpc_call_finish(c, RPC_INTERNAL, "request message with unknown flags 0x%02x", flags);
                return -EINVAL;
        }
        return rpc_call_push_msg(c, msg, len, flags & 1);
}

static int feed(struct rpc_call *c, const uint8_t *p, size_t n)
{
        int r = rpc_envelope_feed(&c->env, p, n, push_cb, c);
        if (r == -EMSGSIZE)
                rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED,
                                "request message of %u bytes exceeds the limit of %zu bytes",
                                rpc_envelope_announced(&c->env), c->env.limit);
        else if (r == -ENOMEM)
                rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory for the request message");
        return r;
}

static int grpc_on_data(struct rpc_call *c, const uint8_t *p, size_t n)
{
        if (!c->web_text)
                return feed(c, p, n);
        /* Base64 text: decode whole quanta; a chunk may end mid-quantum and
         * padding may appear between separately encoded pieces. */
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '\r' || p[i] == '\n' || p[i] == ' ')
                        continue;
                int r = ha_buf_append(&c->body, &p[i], 1);
                if (r < 0) {
                        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "request body too large");
                        return r;
                }
                if (c->body.len == 4) {
                        uint8_t out[3];
                        long dl = ha_base64_decode((const char *)c->body.data, 4, out);
                        c->body.len = 0;
                        if (dl < 0) {
                                rpc_call_finish(c, RPC_INTERNAL, "grpc-web-text body is not valid base64");
                                return -EINVAL;
                        }
                        r = feed(c, out, (size_t)dl);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int grpc_on_end(struct rpc_call *c)
{
        if (c->web_text && c->body.len) {
                uint8_t out[3];
                long dl = ha_base64_decode((const char *)c->body.data, c->body.len, out);
                c->body.len = 0;
                if (dl < 0 || feed(c, out, (size_t)dl) < 0) {
                        rpc_call_finish(c, RPC_INTERNAL, "grpc-web-text body is not valid base64");
                        return -EINVAL;
                }
        }
        if (rpc_envelope_partial(&c->env)) {
                rpc_call_finish(c, RPC_INTERNAL, "request ended in the middle of a message");
                return -EINVAL;
        }
        return 0;
}

/* Frames |msg| into a chunk; for -text the chunk is base64 on its own (each
 * flush is encoded separately, as the gRPC-Web spec allows). */
static int make_chunk(struct rpc_call *c, uint8_t flags, const uint8_t *msg, size_t len, struct rpc_chunk **ret)
{
        struct rpc_chunk *ch;
        if (!c->web_text) {
                if (rpc_chunk_new(RPC_ENVELOPE_HDR + len, &ch) < 0)
                        return -ENOMEM;
                rpc_envelope_put_header(ch->data, flags, (uint32_t)len);
                if (len)
                        memcpy(ch->data + RPC_ENVELOPE_HDR, msg, len);
                *ret = ch;
                return 0;
        }
        uint8_t *raw = malloc(RPC_ENVELOPE_HDR + len);
        if (!raw)
                return -ENOMEM;
        rpc_envelope_put_header(raw, flags, (uint32_t)len);
        if (len)
                memcpy(raw + RPC_ENVELOPE_HDR, msg, len);
        size_t cap = ha_base64_encoded_len(RPC_ENVELOPE_HDR + len);
        if (rpc_chunk_new(cap, &ch) < 0) {
                free(raw);
                return -ENOMEM;
        }
        ch->len = ha_base64_encode(raw, RPC_ENVELOPE_HDR + len, (char *)ch->data, false, true);
        free(raw);
        *ret = ch;
        return 0;
}

static int grpc_frame(struct rpc_call *c, uint8_t flags, const uint8_t *msg, size_t len, struct rpc_chunk **ret)
{
        return make_chunk(c, flags, msg, len, ret);
}

/* grpc-status, grpc-message and the handler's trailers. Lock held. */
static int status_fields(struct rpc_call *c, struct rpc_nvlist *nv)
{
        char code[8];
        snprintf(code, sizeof code, "%d", (int)c->status);
        int r = rpc_nvlist_add_str(nv, "grpc-status", code);
        if (r == 0 && c->status_msg) {
                char enc[3 * 1024 + 1];
                rpc_percent_encode(c->status_msg, enc, sizeof enc);
                r = rpc_nvlist_add_str(nv, "grpc-message", enc);
        }
        if (r == 0 && c->status != RPC_OK) {
                char *bin = NULL;
                int d = rpc_details_grpc_bin(c, &bin);
                if (d == 0) {
                        r = rpc_nvlist_add_str(nv, "grpc-status-details-bin", bin);
                        free(bin);
                } else if (d < 0) {
                        r = d;
                }
        }
        if (r == 0)
                r = rpc_nvlist_append_wire(nv, &c->resp_trailers, NULL);
        return r;
}

static int headers_common(struct rpc_call *c, struct rpc_nvlist *nv, int *status, bool final, bool web)
{
        *status = 200;
        int r = rpc_nvlist_add_str(nv, "content-type", c->content_type);
        if (r == 0)
                r = rpc_nvlist_add_str(nv, "grpc-accept-encoding", ACCEPT_ENCODING);
        if (r == 0 && c->resp_gzip)
                r = rpc_nvlist_add_str(nv, "grpc-encoding", "gzip");
        if (r == 0 && web && c->srv->cfg.cors_origins) {
                const char *origin = rpc_call_header(c, "origin");
                if (origin)
                        r = rpc_cors_response_headers(c, nv, origin);
        }
        pthread_mutex_lock(&c->lock);
        if (r == 0)
                r = rpc_nvlist_append_wire(nv, &c->resp_headers, NULL);
        if (r == 0 && final)
                r = status_fields(c, nv);   /* trailers-only */
        pthread_mutex_unlock(&c->lock);
        return r;
}

static int grpc_headers(struct rpc_call *c, struct rpc_nvlist *nv, int *status, bool final)
{
        return headers_common(c, nv, status, final, false);
}

static int web_headers(struct rpc_call *c, struct rpc_nvlist *nv, int *status, bool final)
{
        return headers_common(c, nv, status, final, true);
}

static int grpc_finish(struct rpc_call *c, struct rpc_nvlist *trailers)
{
        return status_fields(c, trailers);
}

/* gRPC-Web: trailers as an HTTP/1-style block in a body frame, flag 0x80. */
static int web_finish(struct rpc_call *c, struct rpc_nvlist *trailers)
{
        struct rpc_nvlist nv = { 0 };
        int r = status_fields(c, &nv);
        struct ha_buf b;
        ha_buf_init(&b, 1u << 20);
        for (size_t i = 0; r == 0 && i < nv.n; i++)
                r = ha_buf_printf(&b, "%s:%s\r\n", nv.v[i].name, (const char *)nv.v[i].value);
        rpc_nvlist_clear(&nv);
        struct rpc_chunk *ch = NULL;
        if (r == 0)
                r = make_chunk(c, 0x80, b.data, b.len, &ch);
        ha_buf_done(&b);
        if (r < 0)
                return r;
        rpc_call_queue_chunk_locked(c, ch);
        return 0;
}

const struct rpc_protocol rpc_proto_grpc = {
        .name = "grpc",
        .accepts = grpc_accepts,
        .begin = grpc_begin,
        .on_data = grpc_on_data,
        .on_end = grpc_on_end,
        .frame = grpc_frame,
        .headers = grpc_headers,
        .finish = grpc_finish,
};

const struct rpc_protocol rpc_proto_grpc_web = {
        .name = "grpc-web",
        .accepts = web_accepts,
        .begin = web_begin,
        .on_data = grpc_on_data,
        .on_end = grpc_on_end,
        .frame = grpc_frame,
        .headers = web_headers,
        .finish = web_finish,
};
