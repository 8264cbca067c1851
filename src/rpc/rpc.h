/*
 * rpc.h - the call model handlers see: protocol-agnostic.
 *
 * A handler gets a call: the method, request metadata, a deadline, a way to
 * receive request messages and a way to send response messages and a final
 * status. It never learns whether the client spoke gRPC, gRPC-Web or Connect,
 * nor which codec (protobuf binary or JSON) carried the messages.
 *
 * Threads: handlers run on a worker thread (or, for methods marked
 * RPC_INLINE, on the I/O loop itself: those must never block). Every rpc_call_*
 * function here may be called from the handler's thread only, except
 * rpc_call_cancelled(), which any thread may call.
 */
#ifndef HA_RPC_H
#define HA_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc/status.h"

typedef struct rpc_call rpc_call;
typedef struct rpc_server rpc_server;

enum rpc_kind {
        RPC_UNARY,
        RPC_SERVER_STREAM,
        RPC_CLIENT_STREAM,
        RPC_BIDI,
};

enum {
        RPC_INLINE = 1 << 0,          /* pure in-memory: run on the loop, never block */
        RPC_NO_SIDE_EFFECTS = 1 << 1, /* Connect GET allowed */
};

typedef void (*rpc_handler_fn)(rpc_call *c, void *ctx);

struct rpc_method {
        const char *path;                          /* "/pkg.Service/Method" */
        enum rpc_kind kind;
        unsigned flags;                            /* RPC_INLINE | RPC_NO_SIDE_EFFECTS */
        const ProtobufCMessageDescriptor *input;
        const ProtobufCMessageDescriptor *output;
        rpc_handler_fn handler;
        void *ctx;
        const char *role;   /* least role allowed to call it: "reader" or "admin" */
};

/* --- receiving ----------------------------------------------------------- */

/* Unary and server-streaming calls: the one request message, decoded before
 * the handler runs. Owned by the call. NULL for the streaming-input kinds. */
const ProtobufCMessage *rpc_call_request(rpc_call *c);

/* Streaming input: waits for the next request message.
 * Returns 1 with *ret_msg set (caller frees it with
 * protobuf_c_message_free_unpacked(msg, NULL)), 0 at the end of the input,
 * -ECANCELED when the call was cancelled, its deadline passed or the
 * connection was lost, or -EBADMSG when the message could not be decoded (the
 * call is then already finished with the right status). |timeout_ms| bounds
 * the wait (0: no bound): -ETIMEDOUT when it passes with nothing new. */
int rpc_call_recv(rpc_call *c, uint64_t timeout_ms, ProtobufCMessage **ret_msg);

/* --- sending ------------------------------------------------------------- */

/* Queues one response message. Blocks while the stream's outgoing buffer is
 * above its high-water mark (HTTP/2 flow control reaches the handler here).
 * Returns 0, -ECANCELED (the call is over: stop producing), -EMSGSIZE (the
 * message is larger than the limit; the call is finished with
 * RESOURCE_EXHAUSTED) or -ENOMEM. Never call it on an RPC_INLINE method more
 * than the outgoing buffer holds. */
int rpc_call_send(rpc_call *c, const ProtobufCMessage *msg);

/* Response metadata: headers (before the first send) and trailers. Keys are
 * lower case [0-9a-z_.-]; "-bin" keys take raw bytes (base64 on the wire).
 * Returns 0, -EINVAL (bad key or value, or headers already sent), -ENOMEM. */
int rpc_call_add_header(rpc_call *c, const char *key, const void *val, size_t len);
int rpc_call_add_trailer(rpc_call *c, const char *key, const void *val, size_t len);

/* Attaches |detail| to the error status the call ends with (ignored when
 * it ends OK): gRPC and gRPC-Web carry it in grpc-status-details-bin as a
 * google.rpc.Status Any; Connect in the error's "details". Call it before
 * rpc_call_finish(). Returns 0, -ENOMEM, or -E2BIG past 8 details. */
int rpc_call_add_error_detail(rpc_call *c, const ProtobufCMessage *detail);

/* Ends the call with |code| and a message (printf format; NULL for none).
 * The first status wins: later calls are ignored. A handler that returns
 * without one ends with OK. */
void rpc_call_finish(rpc_call *c, enum rpc_code code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Ends the call from a -errno, mapped by rpc_code_from_errno(). */
void rpc_call_finish_errno(rpc_call *c, int neg_errno, const char *msg);
bool rpc_call_finished(rpc_call *c);

/* --- context ------------------------------------------------------------- */

const struct rpc_method *rpc_call_method(rpc_call *c);
/* The call's deadline on the monotonic clock in ms (ha_now_ms()); 0: none. */
uint64_t rpc_call_deadline(rpc_call *c);
/* True once the client cancelled (RST_STREAM), the connection was lost, the
 * deadline passed or the server is shutting down past its grace period. */
bool rpc_call_cancelled(rpc_call *c);
/* Sleeps up to |ms| or until the call is cancelled; returns true if cancelled. */
bool rpc_call_wait_cancel(rpc_call *c, uint64_t ms);

/* Request metadata: the |i|-th entry (0-based), or false past the end.
 * Values of "-bin" keys are already base64-decoded. Valid for the call. */
bool rpc_call_metadata(rpc_call *c, size_t i, const char **ret_key,
                       const uint8_t **ret_val, size_t *ret_len);
/* The first value of |key| as a NUL-terminated string, or NULL. */
const char *rpc_call_metadata_get(rpc_call *c, const char *key);

/* Verified client identity (URI SAN, else DNS SAN, else CN) or NULL, and the
 * peer address ("127.0.0.1:5555", "unix"). Valid for the call. */
const char *rpc_call_peer_identity(rpc_call *c);
const char *rpc_call_peer_addr(rpc_call *c);
/* "grpc", "grpc-web" or "connect": for logs and metrics only. */
const char *rpc_call_protocol_name(rpc_call *c);

#endif
