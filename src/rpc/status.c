/*
 * status.c - status codes and their spellings. rpc_code_from_errno() is the
 * single place where the project's -errno convention meets gRPC codes.
 */
#include "rpc/status.h"

#include <errno.h>
#include <string.h>

static const struct {
        const char *grpc;
        const char *connect;
        int http;
} codes[] = {
        [RPC_OK] = { "OK", "ok", 200 },
        [RPC_CANCELLED] = { "CANCELLED", "canceled", 499 },
        [RPC_UNKNOWN] = { "UNKNOWN", "unknown", 500 },
        [RPC_INVALID_ARGUMENT] = { "INVALID_ARGUMENT", "invalid_argument", 400 },
        [RPC_DEADLINE_EXCEEDED] = { "DEADLINE_EXCEEDED", "deadline_exceeded", 504 },
        [RPC_NOT_FOUND] = { "NOT_FOUND", "not_found", 404 },
        [RPC_ALREADY_EXISTS] = { "ALREADY_EXISTS", "already_exists", 409 },
        [RPC_PERMISSION_DENIED] = { "PERMISSION_DENIED", "permission_denied", 403 },
        [RPC_RESOURCE_EXHAUSTED] = { "RESOURCE_EXHAUSTED", "resource_exhausted", 429 },
        [RPC_FAILED_PRECONDITION] = { "FAILED_PRECONDITION", "failed_precondition", 400 },
        [RPC_ABORTED] = { "ABORTED", "aborted", 409 },
        [RPC_OUT_OF_RANGE] = { "OUT_OF_RANGE", "out_of_range", 400 },
        [RPC_UNIMPLEMENTED] = { "UNIMPLEMENTED", "unimplemented", 501 },
        [RPC_INTERNAL] = { "INTERNAL", "internal", 500 },
        [RPC_UNAVAILABLE] = { "UNAVAILABLE", "unavailable", 503 },
        [RPC_DATA_LOSS] = { "DATA_LOSS", "data_loss", 500 },
        [RPC_UNAUTHENTICATED] = { "UNAUTHENTICATED", "unauthenticated", 401 },
};

#define NCODES (sizeof codes / sizeof codes[0])

enum rpc_code rpc_code_from_errno(int e)
{
        switch (-e) {
        case 0: return RPC_OK;
        case EINVAL: return RPC_INVALID_ARGUMENT;
        case ENOENT: return RPC_NOT_FOUND;
        case EEXIST: return RPC_ALREADY_EXISTS;
        case ETIMEDOUT: return RPC_DEADLINE_EXCEEDED;
        case EAGAIN: case ENOSPC: case EDQUOT: case EMSGSIZE: return RPC_RESOURCE_EXHAUSTED;
        case EBADFD: case EBUSY: return RPC_FAILED_PRECONDITION;
        case EACCES: case EPERM: return RPC_PERMISSION_DENIED;
        case ECANCELED: return RPC_CANCELLED;
        case ENOSYS: case ENOTSUP: return RPC_UNIMPLEMENTED;
        case ESHUTDOWN: case ECONNREFUSED: case ECONNRESET: return RPC_UNAVAILABLE;
        case ERANGE: return RPC_OUT_OF_RANGE;
        default: return RPC_INTERNAL;
        }
}

const char *rpc_code_connect_name(enum rpc_code code)
{
        return (unsigned)code < NCODES ? codes[code].connect : "unknown";
}

const char *rpc_code_name(enum rpc_code code)
{
        return (unsigned)code < NCODES ? codes[code].grpc : "UNKNOWN";
}

int rpc_code_from_connect_name(const char *name)
{
        for (unsigned i = 1; i < NCODES; i++)
                if (strcmp(codes[i].connect, name) == 0)
                        return (int)i;
        return -1;
}

int rpc_code_http_status(enum rpc_code code)
{
        return (unsigned)code < NCODES ? codes[code].http : 500;
}

size_t rpc_percent_encode(const char *msg, char *out, size_t cap)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t o = 0;
        if (cap == 0)
                return 0;
        for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
                if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
                        if (o + 1 >= cap)
                                break;
                        out[o++] = (char)*p;
                } else {
                        if (o + 3 >= cap)
                                break;
                        out[o++] = '%';
                        out[o++] = hex[*p >> 4];
                        out[o++] = hex[*p & 15];
                }
        }
        out[o] = '\0';
        return o;
}
