/*
 * fuzz_proto.c - see fuzz_proto.h. Mirrors rpc_call_on_headers(),
 * rpc_call_on_data() / _on_end() and decode_msg() of src/rpc/call.c
 * minus the socket, the worker hand-off and nghttp2.
 */
#include "common/fuzz_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/fuzz_util.h"
#include "core/base64.h"
#include "core/err.h"
#include "rpc/gzip.h"
#include "rpc/json_lex.h"
#include "rpc/rpc_int.h"

#include "hostagent/test/v1/test.pb-c.h"

#define MSG_LIMIT (256u << 10)

static rpc_server *fz_server(bool require_version)
{
        static rpc_server *s;
        if (!s) {
                s = calloc(1, sizeof *s);
                FZ_CHECK(s != NULL);
                rpc_limits_fill_defaults(&s->cfg.limits);
                s->cfg.limits.max_message_bytes = MSG_LIMIT;
                pthread_mutex_init(&s->ready_lock, NULL);
                s->evfd = -1;   /* rpc_call_post()'s wake-up write fails harmlessly */
                s->epfd = -1;
        }
        s->cfg.connect_require_version = require_version;
        return s;
}

/* Drops the references rpc_call_post() took. */
static void fz_server_drain(rpc_server *s)
{
        pthread_mutex_lock(&s->ready_lock);
        struct rpc_call *c = s->ready_head;
        s->ready_head = s->ready_tail = NULL;
        pthread_mutex_unlock(&s->ready_lock);
        while (c) {
                struct rpc_call *n = c->ready_next;
                c->on_ready = false;
                rpc_call_unref(c);
                c = n;
        }
}

static struct rpc_call *fz_call_new(rpc_server *s)
{
        struct rpc_call *c = calloc(1, sizeof *c);
        FZ_CHECK(c != NULL);
        atomic_init(&c->refs, 1);
        atomic_init(&c->cancelled, false);
        c->srv = s;
        c->stream_id = 1;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        rpc_envelope_reader_init(&c->env, s->cfg.limits.max_message_bytes);
        ha_buf_init(&c->body, s->cfg.limits.max_message_bytes / 3 * 4 + 8);
        return c;
}

static char *dupn(const uint8_t *p, size_t n)
{
        char *s = malloc(n + 1);
        FZ_CHECK(s != NULL);
        memcpy(s, p, n);
        s[n] = '\0';
        return s;
}

/* Every request message, as decode_msg() handles it. */
static void decode_inmsgs(struct rpc_call *c)
{
        for (struct rpc_inmsg *m = c->in_head; m; m = m->next) {
                const uint8_t *p = m->data;
                size_t n = m->len;
                uint8_t *plain = NULL;
                if (m->compressed) {
                        FZ_CHECK(c->req_gzip);
                        if (rpc_gzip_inflate(p, n, MSG_LIMIT, &plain, &n) < 0)
                                continue;
                        p = plain;
                }
                FZ_CHECK(n <= MSG_LIMIT);
                ProtobufCMessage *msg = NULL;
                char why[256];
                if (rpc_codec_decode(c->codec, c->method->input, p, n, &msg, why, sizeof why) == 0)
                        protobuf_c_message_free_unpacked(msg, NULL);
                else
                        FZ_CHECK(why[0] != '\0');
                free(plain);
        }
}

static void check_json(const uint8_t *p, size_t n)
{
        struct rpc_jlex lx;
        struct ha_buf scratch;
        ha_buf_init(&scratch, 1u << 20);
        rpc_jlex_init(&lx, p, n);
        int r = rpc_jlex_skip(&lx, &scratch, 64);
        if (r != 0)
                fprintf(stderr, "end-of-call JSON does not parse (%s): %.*s\n", lx.why ? lx.why : "?",
                        (int)n, (const char *)p);
        FZ_CHECK(r == 0 && rpc_jlex_peek(&lx) == -1);
        ha_buf_done(&scratch);
}

/* The trailer block of gRPC-Web: "name:value\r\n" lines, nothing else. */
static void check_web_trailers(const uint8_t *p, size_t n)
{
        size_t i = 0;
        while (i < n) {
                const uint8_t *e = memchr(p + i, '\n', n - i);
                FZ_CHECK(e && e > p + i && e[-1] == '\r');
                const uint8_t *colon = memchr(p + i, ':', (size_t)(e - (p + i)));
                FZ_CHECK(colon && colon > p + i);
                for (const uint8_t *q = p + i; q < e - 1; q++)
                        FZ_CHECK(*q >= 0x20 && *q != 0x7f);
                i = (size_t)(e - p) + 1;
        }
}

struct outbuf {
        uint8_t *p;
        size_t n;
};

static void out_collect(struct rpc_call *c, struct outbuf *o)
{
        for (struct rpc_chunk *ch = c->out_head; ch; ch = ch->next) {
                uint8_t *np = realloc(o->p, o->n + ch->len + 1);
                FZ_CHECK(np != NULL);
                o->p = np;
                memcpy(o->p + o->n, ch->data, ch->len);
                o->n += ch->len;
        }
}

struct env_ctx {
        uint8_t last_flags;
        unsigned count;
        const struct rpc_protocol *proto;
};

static int out_env_cb(void *vctx, uint8_t flags, uint8_t *msg, size_t len)
{
        struct env_ctx *e = vctx;
        e->last_flags = flags;
        e->count++;
        if (e->proto == &rpc_proto_connect && (flags & 0x02))
                check_json(msg, len);
        if (e->proto == &rpc_proto_grpc_web && (flags & 0x80))
                check_web_trailers(msg, len);
        free(msg);
        return 0;
}

/* The response bytes, read back as a client would. */
static void check_output(struct rpc_call *c, const struct outbuf *o, bool final)
{
        const uint8_t *p = o->p;
        size_t n = o->n;
        uint8_t *dec = NULL;
        if (c->proto == &rpc_proto_connect && c->connect_unary) {
                /* An error decided before the response began is a JSON
                 * body; otherwise the body is the message. */
                if (final && c->status != RPC_OK && n)
                        check_json(p, n);
                return;
        }
        if (c->web_text) {
                /* Each flush is base64 on its own: decode quantum-wise. */
                dec = malloc(n + 3);
                FZ_CHECK(dec != NULL);
                size_t dn = 0, i = 0;
                while (i < n) {
                        size_t q = n - i < 4 ? n - i : 4;
                        long l = ha_base64_decode((const char *)p + i, q, dec + dn);
                        FZ_CHECK(l >= 0);
                        dn += (size_t)l;
                        i += q;
                }
                p = dec, n = dn;
        }
        struct rpc_envelope_reader r;
        rpc_envelope_reader_init(&r, 8u << 20);
        struct env_ctx e = { .proto = c->proto };
        FZ_CHECK(rpc_envelope_feed(&r, p, n, out_env_cb, &e) == 0);
        FZ_CHECK(!rpc_envelope_partial(&r));
        if (c->proto == &rpc_proto_connect)
                FZ_CHECK(e.count >= 1 && e.last_flags == 0x02);
        if (c->proto == &rpc_proto_grpc_web)
                FZ_CHECK(e.count >= 1 && e.last_flags == 0x80);
        rpc_envelope_reader_done(&r);
        free(dec);
}

static void respond(struct rpc_call *c, uint8_t code, const char *status_msg)
{
        /* Success path: headers, one message, then the status. */
        struct rpc_nvlist nv = { 0 };
        int http = 0;
        bool final = c->finished;
        FZ_CHECK(c->proto->headers(c, &nv, &http, final) == 0);
        rpc_nvlist_clear(&nv);
        if (!final) {
                static const uint8_t msg[] = { 0x0a, 0x02, 'h', 'i' };
                struct rpc_chunk *ch = NULL;
                FZ_CHECK(c->proto->frame(c, 0, msg, sizeof msg, &ch) == 0);
                pthread_mutex_lock(&c->lock);
                if (c->out_tail)
                        c->out_tail->next = ch;
                else
                        c->out_head = ch;
                c->out_tail = ch;
                pthread_mutex_unlock(&c->lock);
                pthread_mutex_lock(&c->lock);
                rpc_call_set_status_locked(c, (enum rpc_code)(code % 17), status_msg);
                pthread_mutex_unlock(&c->lock);
        }
        struct rpc_nvlist trailers = { 0 };
        pthread_mutex_lock(&c->lock);
        int r = 0;
        if (!c->tail_framed)
                r = c->proto->finish(c, &trailers);
        pthread_mutex_unlock(&c->lock);
        FZ_CHECK(r == 0);
        for (size_t i = 0; i < trailers.n; i++)
                for (size_t j = 0; j < trailers.v[i].value_len; j++)
                        FZ_CHECK(trailers.v[i].value[j] >= 0x20 && trailers.v[i].value[j] != 0x7f);
        rpc_nvlist_clear(&trailers);
        struct outbuf o = { 0 };
        out_collect(c, &o);
        check_output(c, &o, final);
        free(o.p);
}

void fz_proto_run(const char *method, const char *content_type, const uint8_t *data, size_t size)
{
        static const struct rpc_protocol *const protos[] = { &rpc_proto_grpc, &rpc_proto_grpc_web,
                                                             &rpc_proto_connect };
        static const enum rpc_kind kinds[] = { RPC_UNARY, RPC_SERVER_STREAM, RPC_CLIENT_STREAM, RPC_BIDI };
        if (size < 2)
                return;
        struct fz_slicer sl;
        fz_slicer_init(&sl, data[0]);
        uint8_t opts = data[1];
        data += 2, size -= 2;
        const uint8_t *end = memmem(data, size, "\n\n", 2);
        if (!end)
                return;
        const uint8_t *body = end + 2;
        size_t body_len = size - (size_t)(body - data);

        rpc_server *s = fz_server(opts & 0x80);
        struct rpc_call *c = fz_call_new(s);
        struct rpc_method m = {
                .path = "/hostagent.test.v1.TestService/Echo",
                .kind = kinds[opts & 3],
                .flags = RPC_NO_SIDE_EFFECTS,
                .input = &hostagent__test__v1__echo_request__descriptor,
                .output = &hostagent__test__v1__echo_response__descriptor,
        };
        c->method = &m;
        char *status_msg = NULL;
        const uint8_t *line = data;
        bool first = true;
        while (line < end) {
                const uint8_t *nl = memchr(line, '\n', (size_t)(end - line));
                if (!nl)
                        nl = end;
                size_t ll = (size_t)(nl - line);
                if (first) {
                        c->path = dupn(line, ll);
                        first = false;
                } else if (ll && line[0] == '!') {
                        free(status_msg);
                        status_msg = dupn(line + 1, ll - 1);
                } else {
                        const uint8_t *colon = ll > 1 ? memchr(line + 1, ':', ll - 1) : NULL;
                        if (colon) {
                                size_t nl_ = (size_t)(colon - line);
                                const uint8_t *v = colon + 1;
                                while (v < nl && *v == ' ')
                                        v++;
                                size_t vl = (size_t)(nl - v);
                                char *name = dupn(line, nl_);
                                if (name[0] == '>') {
                                        (void)rpc_call_add_trailer(c, name + 1, v, vl);
                                } else if (strcmp(name, ":method") == 0) {
                                        free(c->method_hdr);
                                        c->method_hdr = dupn(v, vl);
                                } else if (strcmp(name, "content-type") == 0) {
                                        free(c->content_type);
                                        c->content_type = dupn(v, vl);
                                } else {
                                        /* nghttp2 hands values NUL-free; so do we. */
                                        char *val = dupn(v, vl);
                                        rpc_nvlist_add(&c->headers, name, strlen(name), (uint8_t *)val,
                                                       strlen(val));
                                        free(val);
                                }
                                free(name);
                        }
                }
                line = nl + 1;
        }
        if (!c->path)
                c->path = strdup("/");
        if (!c->method_hdr)
                c->method_hdr = strdup(method);
        if (!c->content_type)
                c->content_type = strdup(content_type);
        FZ_CHECK(c->path && c->method_hdr && c->content_type);

        for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
                if (protos[i]->accepts(c->method_hdr, c->content_type)) {
                        c->proto = protos[i];
                        break;
                }
        if (!c->proto)
                goto out;
        if (c->proto->begin(c) == 0 && !c->finished) {
                size_t off = 0;
                while (off < body_len && !c->finished) {
                        size_t n = fz_slicer_next(&sl, body_len - off);
                        if (c->proto->on_data(c, body + off, n) < 0)
                                FZ_CHECK(c->finished);
                        off += n;
                }
                if (!c->finished && c->proto->on_end(c) < 0)
                        FZ_CHECK(c->finished);
                if (!c->finished)
                        decode_inmsgs(c);
        }
        respond(c, (uint8_t)(opts >> 2), status_msg);
out:
        free(status_msg);
        fz_server_drain(s);
        rpc_call_unref(c);
}
