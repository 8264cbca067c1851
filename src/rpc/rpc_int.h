/*
 * rpc_int.h - struct bodies of the RPC server, for src/rpc/ only.
 *
 * Threads and locks (see docs/ARCHITECTURE.md):
 * - The loop thread owns rpc_server's connection list, every rpc_conn, every
 *   nghttp2 session and the loop-only fields of rpc_call.
 * - A call is shared by the loop and one handler thread. Fields marked
 *   "guarded_by: lock" are touched under call->lock only. The loop learns of
 *   handler progress through the server's ready list + eventfd.
 * - Lock order: call->lock before srv->ready_lock. Never hold a call lock
 *   while calling into nghttp2.
 */
#ifndef HA_RPC_INT_H
#define HA_RPC_INT_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/workq.h"
#include "rpc/descset.h"
#include "rpc/envelope.h"
#include "rpc/h2in.h"
#include "rpc/server.h"

struct rpc_protocol;
struct rpc_codec;

/* A timer on the loop's min-heap. */
struct rpc_timer {
        uint64_t at;            /* monotonic ms; loop thread only */
        size_t idx;             /* heap slot + 1; 0 when not armed */
        void (*fire)(struct rpc_timer *t);
};

/* A name/value pair; value may hold binary (decoded -bin metadata). */
struct rpc_nv {
        char *name;
        uint8_t *value;
        size_t value_len;
};

struct rpc_nvlist {
        struct rpc_nv *v;
        size_t n, cap;
};

/* One queued response piece: already framed for the wire. */
struct rpc_chunk {
        struct rpc_chunk *next;
        size_t len, off;
        uint8_t data[];
};

/* One request message waiting for the handler (raw, maybe compressed). */
struct rpc_inmsg {
        struct rpc_inmsg *next;
        uint8_t *data;
        size_t len;
        bool compressed;
};

enum rpc_codec_id { RPC_CODEC_PROTO, RPC_CODEC_JSON };

struct rpc_call {
        atomic_int refs;
        rpc_server *srv;                    /* immutable */
        struct rpc_conn *conn;              /* loop thread only; NULL once the stream closed */
        int32_t stream_id;                  /* immutable */
        struct ha_job job;                  /* worker hand-off */

        /* request head: filled on the loop before dispatch, then immutable */
        char *method_hdr, *path, *content_type, *authority;
        struct rpc_nvlist headers;          /* every regular request header */
        struct rpc_nvlist md;               /* metadata handed to the handler */
        size_t header_bytes;                /* loop thread only */
        const struct rpc_method *method;
        const struct rpc_protocol *proto;
        enum rpc_codec_id codec;
        uint64_t deadline_ms;               /* 0: none */
        bool req_gzip;                      /* request messages may be gzip'd */
        bool resp_gzip;                     /* compress response messages */
        bool web_text;                      /* gRPC-Web base64 body */
        bool connect_unary;                 /* Connect unary (bare body) */
        bool connect_get;                   /* Connect GET (message in query) */
        int status_http_override;           /* Connect: 405/415 instead of the code's status */
        char *peer_identity;
        char peer_addr[64];

        /* loop-only state */
        struct rpc_envelope_reader env;
        struct ha_buf body;                 /* Connect unary body / grpc-web-text carry */
        unsigned in_count;                  /* request messages seen */
        size_t unconsumed;                  /* DATA bytes not yet given back as window */
        bool dispatched, response_started, trailers_sent, in_ended;
        bool on_ready;                      /* guarded_by: srv->ready_lock */
        struct rpc_call *ready_next;        /* guarded_by: srv->ready_lock */
        struct rpc_timer deadline_timer;
        struct rpc_call *conn_next;         /* conn's list of live calls */
        struct rpc_nvlist wire_trailers;    /* loop thread only: built at the end */

        /* shared with the handler */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct rpc_inmsg *in_head, *in_tail; /* guarded_by: lock */
        size_t in_bytes;                    /* guarded_by: lock */
        bool in_closed;                     /* guarded_by: lock: no more messages */
        struct rpc_chunk *out_head, *out_tail; /* guarded_by: lock */
        size_t out_bytes;                   /* guarded_by: lock */
        bool writer_waiting;                /* guarded_by: lock */
        struct rpc_nvlist resp_headers;     /* guarded_by: lock */
        struct rpc_nvlist resp_trailers;    /* guarded_by: lock */
        bool headers_frozen;                /* guarded_by: lock */
        bool finished;                      /* guarded_by: lock */
        bool tail_framed;                   /* guarded_by: lock: body trailers queued */
        enum rpc_code status;               /* guarded_by: lock */
        char *status_msg;                   /* guarded_by: lock */
        struct rpc_nvlist details;          /* guarded_by: lock: name = full type name, value = packed message */
        unsigned msgs_out;                  /* guarded_by: lock */
        atomic_bool cancelled;
        ProtobufCMessage *request;          /* unary/server-stream; handler thread */
        uint64_t started_ns;                /* immutable */
};

/* A wire protocol: how requests are read and responses framed. Adding a
 * protocol adds a file with one of these, not branches in the server. */
struct rpc_protocol {
        const char *name;
        /* Content-type accepted? (method already checked) */
        bool (*accepts)(const char *method_hdr, const char *content_type);
        /* End of request headers: timeouts, encodings, codec. Returns 0, or
         * a -errno after rpc_call_finish() set the reason. */
        int (*begin)(struct rpc_call *c);
        /* Request body bytes (loop thread). */
        int (*on_data)(struct rpc_call *c, const uint8_t *p, size_t n);
        /* Request body ended (loop thread). */
        int (*on_end)(struct rpc_call *c);
        /* Frames one encoded response message (handler thread). */
        int (*frame)(struct rpc_call *c, uint8_t flags, const uint8_t *msg, size_t len,
                     struct rpc_chunk **ret);
        /* Response headers into |nv|. |final| is true when the status is
         * already known and nothing was sent (trailers-only / unary error);
         * a protocol whose final answer has a body queues it here and sets
         * tail_framed. */
        int (*headers)(struct rpc_call *c, struct rpc_nvlist *nv, int *ret_http_status, bool final);
        /* After the last message, with call->lock held: either fills
         * |trailers| (HTTP/2 trailers) or queues a last body chunk. */
        int (*finish)(struct rpc_call *c, struct rpc_nvlist *trailers);
};

extern const struct rpc_protocol rpc_proto_grpc;
extern const struct rpc_protocol rpc_proto_grpc_web;
extern const struct rpc_protocol rpc_proto_connect;

struct rpc_conn {
        rpc_server *srv;
        int fd;
        SSL *ssl;                           /* NULL for h2c */
        nghttp2_session *h2;
        bool handshaking, closing, want_write_io;
        bool epollout_armed;                /* EPOLLOUT is in the epoll set now */
        bool dirty;                         /* has frames to send */
        bool in_dirty_list;
        struct rpc_conn *dirty_next;
        struct rpc_conn *prev, *next;       /* server's list */
        struct ha_buf wbuf;                 /* bytes nghttp2 produced, not yet written */
        size_t woff;                        /* wbuf bytes before this are gone already */
        struct ha_buf tls_out;              /* TLS: records sealed, not yet written */
        size_t toff;                        /* tls_out bytes before this are written */
        struct rpc_timer timer;             /* handshake / idle */
        struct rpc_call *calls;             /* live calls (loop thread) */
        unsigned nstreams;
        unsigned empty_data_frames;
        unsigned invalid_frames;
        struct h2in h2in;                   /* the client's bytes on their way to nghttp2 */
        uint32_t idle_rst_tokens;           /* RST_STREAM on never-opened streams we may still ignore */
        uint64_t idle_rst_refill_ms;        /* when the last token was added */
        uint64_t idle_rst_ignored;
        char *peer_identity;
        char peer_addr[64];
        char close_why[96];                 /* first reason the connection ends; "" until then */
        uint64_t id;
};

struct rpc_listener {
        int fd;
        bool tls;
        int port;
};

struct rpc_watch {
        int fd;
        void (*cb)(void *ctx, int fd);
        void *ctx;
};

struct rpc_http_get {
        const char *path;
        rpc_http_get_fn fn;
        void *ctx;
};

struct rpc_server {
        struct rpc_server_config cfg;       /* immutable after new (strings copied) */
        struct rpc_http_get http_gets[4];   /* immutable after run */
        size_t nhttp_gets;
        char *cfg_strings[6];
        int epfd, evfd;
        pthread_t loop_thread;
        struct rpc_listener listeners[2];
        size_t nlisteners;
        SSL_CTX *ssl_ctx;                   /* loop thread only (swapped on reload) */
        pthread_mutex_t tls_lock;           /* guards ssl_ctx swap vs reload */
        ha_workq *workq;                    /* unary handlers */
        ha_workq *workq_streams;            /* streaming handlers (they hold a thread for the
                                               stream's life: kept apart so idle streams can
                                               never starve unary calls) */
        const struct rpc_method **methods;  /* immutable after run */
        size_t nmethods, methods_cap;
        struct rpc_conn *conns;             /* loop thread only */
        unsigned nconns;
        struct rpc_conn *dirty;             /* loop thread only */
        struct rpc_timer **heap;            /* loop thread only */
        size_t heap_n, heap_cap;
        struct rpc_watch watches[4];
        size_t nwatches;
        pthread_mutex_t ready_lock;
        struct rpc_call *ready_head, *ready_tail; /* guarded_by: ready_lock */
        atomic_bool shutdown_requested;
        bool draining, stopped;             /* loop thread only */
        uint64_t drain_deadline;
        void (*on_drain)(void *ctx);
        void *on_drain_ctx;
        uint64_t next_conn_id;
        struct rpc_timer drain_timer;
};

/* --- server.c ------------------------------------------------------------ */
void rpc_timer_arm(rpc_server *s, struct rpc_timer *t, uint64_t at);
void rpc_timer_disarm(rpc_server *s, struct rpc_timer *t);
void rpc_conn_mark_dirty(struct rpc_conn *c);
bool rpc_on_loop(rpc_server *s);

/* --- conn.c -------------------------------------------------------------- */
struct rpc_conn *rpc_conn_new(rpc_server *s, int fd, bool tls, const struct sockaddr *sa);
void rpc_conn_on_io(struct rpc_conn *c, uint32_t events);
void rpc_conn_flush(struct rpc_conn *c);
void rpc_conn_free(struct rpc_conn *c);
void rpc_conn_goaway(struct rpc_conn *c);

/* --- call.c -------------------------------------------------------------- */
struct rpc_call *rpc_call_new(struct rpc_conn *conn, int32_t stream_id);
void rpc_call_ref(struct rpc_call *c);
void rpc_call_unref(struct rpc_call *c);
/* Loop: end of request headers. */
void rpc_call_on_headers(struct rpc_call *c);
/* Loop: body bytes and end. */
void rpc_call_on_data(struct rpc_call *c, const uint8_t *p, size_t n);
void rpc_call_on_end(struct rpc_call *c);
/* Loop: the stream closed (any reason); drops the loop's reference. */
void rpc_call_on_close(struct rpc_call *c, uint32_t error_code);
/* Loop: handler progress (from the ready list). */
void rpc_call_on_ready(struct rpc_call *c);
/* Either thread: tell the loop the call has something new. */
void rpc_call_post(struct rpc_call *c);
/* Loop or handler: queue a request message for the handler. */
int rpc_call_push_msg(struct rpc_call *c, uint8_t *data, size_t len, bool compressed);
/* Handler: encode + compress one message (no framing). */
int rpc_call_encode(struct rpc_call *c, const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_len);
/* Loop: DATA-provider read callback. */
ssize_t rpc_call_read_body(struct rpc_call *c, uint8_t *buf, size_t len, uint32_t *flags);
/* Header lookup in the request (first value) or NULL. */
const char *rpc_call_header(struct rpc_call *c, const char *name);
/* Status with lock held (helper for protocols). */
void rpc_call_set_status_locked(struct rpc_call *c, enum rpc_code code, const char *msg);
int rpc_chunk_new(size_t len, struct rpc_chunk **ret);
/* Appends |ch| to the call's output (call->lock held); the call owns it. */
void rpc_call_queue_chunk_locked(struct rpc_call *c, struct rpc_chunk *ch);

/* --- codec.c ------------------------------------------------------------ */
/* Returns 0 with a message (free with protobuf_c_message_free_unpacked), or
 * -EBADMSG with |why| filled. */
int rpc_codec_decode(enum rpc_codec_id id, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                     size_t n, ProtobufCMessage **ret, char *why, size_t why_len);
/* Returns 0 with malloc'd bytes, or -ENOMEM / -EINVAL. */
int rpc_codec_encode(enum rpc_codec_id id, const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len);
/* The descriptor index of the embedded descriptor set (built on first
 * use, then immutable); NULL only if the embedded set is broken. */
const rpc_descset *rpc_descriptors(void);
/* gRPC status code for an undecodable request in this codec. */
enum rpc_code rpc_codec_decode_error_code(enum rpc_codec_id id);

/* --- details.c ------------------------------------------------------------ */
/* grpc-status-details-bin value (base64 of google.rpc.Status), lock held.
 * Returns 0 and a malloc'd string, 1 when there are no details, -ENOMEM. */
int rpc_details_grpc_bin(struct rpc_call *c, char **ret);
/* Appends ,"details":[{"type":...,"value":...}] to a Connect error. */
int rpc_details_connect_json(struct rpc_call *c, struct ha_buf *b);

/* --- cors.c ------------------------------------------------------------- */
/* Adds access-control-* response headers when |origin| is allowed. */
int rpc_cors_response_headers(struct rpc_call *c, struct rpc_nvlist *nv, const char *origin);
/* Answers an OPTIONS preflight (loop thread). */
void rpc_cors_preflight(struct rpc_call *c);
bool rpc_cors_origin_allowed(rpc_server *s, const char *origin);

/* --- nvlist.c ------------------------------------------------------------ */
int rpc_nvlist_add(struct rpc_nvlist *l, const char *name, size_t nlen, const uint8_t *val, size_t vlen);
int rpc_nvlist_add_str(struct rpc_nvlist *l, const char *name, const char *val);
void rpc_nvlist_clear(struct rpc_nvlist *l);
const struct rpc_nv *rpc_nvlist_get(const struct rpc_nvlist *l, const char *name);
/* True for header names a handler never sees as metadata. */
bool rpc_header_reserved(const char *name);
/* True when |s| (may be NULL) starts with |prefix|. */
bool rpc_has_prefix(const char *s, const char *prefix);
/* True when the comma-separated |list| (grpc-accept-encoding,
 * accept-encoding...) holds |tok|; spaces around items are ignored. */
bool rpc_token_list_has(const char *list, const char *tok);
/* Valid metadata key: [0-9a-z_.-]+, not reserved. */
bool rpc_metadata_key_valid(const char *name);
/* Copies |src| metadata into |dst| as wire headers (base64 for -bin),
 * with an optional name prefix (Connect's "trailer-"). */
int rpc_nvlist_append_wire(struct rpc_nvlist *dst, const struct rpc_nvlist *src, const char *prefix);

#endif
