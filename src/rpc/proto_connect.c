/*
 * proto_connect.c - the Connect protocol (unary POST/GET and streaming).
 * Placeholder until the adapter lands: accepts nothing, so Connect requests
 * get HTTP 415 listing what is accepted.
 */
#include "rpc/rpc_int.h"

static bool connect_accepts(const char *method, const char *ct)
{
        return false;
}

const struct rpc_protocol rpc_proto_connect = {
        .name = "connect",
        .accepts = connect_accepts,
};
