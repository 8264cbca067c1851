/*
 * status.h - status codes shared by gRPC and Connect, and the one table that
 * maps -errno to them (the project's error convention, see STYLE.md).
 */
#ifndef HA_RPC_STATUS_H
#define HA_RPC_STATUS_H

#include <stddef.h>

enum rpc_code {
        RPC_OK = 0,
        RPC_CANCELLED = 1,
        RPC_UNKNOWN = 2,
        RPC_INVALID_ARGUMENT = 3,
        RPC_DEADLINE_EXCEEDED = 4,
        RPC_NOT_FOUND = 5,
        RPC_ALREADY_EXISTS = 6,
        RPC_PERMISSION_DENIED = 7,
        RPC_RESOURCE_EXHAUSTED = 8,
        RPC_FAILED_PRECONDITION = 9,
        RPC_ABORTED = 10,
        RPC_OUT_OF_RANGE = 11,
        RPC_UNIMPLEMENTED = 12,
        RPC_INTERNAL = 13,
        RPC_UNAVAILABLE = 14,
        RPC_DATA_LOSS = 15,
        RPC_UNAUTHENTICATED = 16,
};

/* -EINVAL → INVALID_ARGUMENT, -ENOENT → NOT_FOUND, -EEXIST → ALREADY_EXISTS,
 * -ETIMEDOUT → DEADLINE_EXCEEDED, -EAGAIN/-ENOSPC → RESOURCE_EXHAUSTED,
 * -EBADFD/-EBUSY → FAILED_PRECONDITION, -EACCES/-EPERM → PERMISSION_DENIED,
 * -ECANCELED → CANCELLED, -ENOSYS → UNIMPLEMENTED, -EMSGSIZE →
 * RESOURCE_EXHAUSTED, -ESHUTDOWN/-ECONNREFUSED/-ECONNRESET → UNAVAILABLE,
 * anything else → INTERNAL. */
enum rpc_code rpc_code_from_errno(int neg_errno);
/* Connect's spelling: "invalid_argument", "canceled", ... */
const char *rpc_code_connect_name(enum rpc_code code);
/* Parses a Connect code name; returns -1 when unknown. */
int rpc_code_from_connect_name(const char *name);
/* Connect's HTTP status for an error code. */
int rpc_code_http_status(enum rpc_code code);
/* gRPC's upper-case name ("NOT_FOUND"), for logs. */
const char *rpc_code_name(enum rpc_code code);

/* Percent-encodes a grpc-message into |out| (NUL-terminated, truncated to
 * fit). Returns the length written. */
size_t rpc_percent_encode(const char *msg, char *out, size_t cap);

#endif
