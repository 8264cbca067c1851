/*
 * limits.h - every limit of the RPC server, with its default and the reason
 * for it. All are configurable (rpc_server_config.limits); zero fields take
 * the default in rpc_limits_fill_defaults().
 */
#ifndef HA_RPC_LIMITS_H
#define HA_RPC_LIMITS_H

#include <stddef.h>
#include <stdint.h>

struct rpc_limits {
        /* Largest message, after decompression (gRPC's default, 4 MiB). */
        size_t max_message_bytes;
        /* Open connections; past it new ones are closed at accept. */
        unsigned max_connections;
        /* SETTINGS_MAX_CONCURRENT_STREAMS: bounds handlers per connection. */
        unsigned max_concurrent_streams;
        /* Header list size, counted by us (name + value + 32 per field):
         * nghttp2 never enforces the advertised limit on incoming headers,
         * and this is also the HPACK-bomb defence. */
        size_t max_header_list_bytes;
        /* A TLS handshake plus the client preface must finish in this time
         * (slowloris). */
        unsigned handshake_timeout_ms;
        /* A connection with no open stream for this long gets GOAWAY. */
        unsigned idle_timeout_ms;
        /* Response bytes queued per stream before the handler's send blocks:
         * the backpressure point between HTTP/2 flow control and handlers. */
        size_t stream_out_high_water;
        /* Request bytes queued per stream before we stop returning HTTP/2
         * window to the client. */
        size_t stream_in_high_water;
        /* Calls waiting for a worker; past it: RESOURCE_EXHAUSTED. */
        size_t max_pending_calls;
        /* In-flight calls get this long after SIGTERM before they are cut. */
        unsigned shutdown_grace_ms;
        /* Empty DATA frames tolerated per connection (nghttp2 1.52 has no
         * glitch limiter): an empty-frame flood costs the attacker the
         * connection. */
        unsigned max_empty_data_frames;
};

#define RPC_DEFAULT_MAX_MESSAGE_BYTES (4u << 20)
#define RPC_DEFAULT_MAX_CONNECTIONS 1024
#define RPC_DEFAULT_MAX_CONCURRENT_STREAMS 100
#define RPC_DEFAULT_MAX_HEADER_LIST_BYTES (16u << 10)
#define RPC_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define RPC_DEFAULT_IDLE_TIMEOUT_MS 300000
#define RPC_DEFAULT_STREAM_OUT_HIGH_WATER (256u << 10)
#define RPC_DEFAULT_STREAM_IN_HIGH_WATER (1u << 20)
#define RPC_DEFAULT_MAX_PENDING_CALLS 4096
#define RPC_DEFAULT_SHUTDOWN_GRACE_MS 10000
#define RPC_DEFAULT_MAX_EMPTY_DATA_FRAMES 1000

void rpc_limits_fill_defaults(struct rpc_limits *l);

#endif
