/*
 * reflection.h - grpc.reflection.v1 and v1alpha ServerReflection, answered
 * from the descriptor set embedded at build time, so grpcurl and buf curl
 * work with no .proto files at hand.
 */
#ifndef HA_SVC_REFLECTION_H
#define HA_SVC_REFLECTION_H

#include "rpc/server.h"

int svc_reflection_register(rpc_server *srv);

#endif
