/*
 * sandbox_pb.h - conversions between the sandbox manager's records and the
 * hostagent.v1 protobuf messages. Outgoing messages point into the record
 * they were built from plus a few arrays owned by struct svc_sandbox_pb;
 * free both after the message has been sent.
 */
#ifndef HA_SVC_SANDBOX_PB_H
#define HA_SVC_SANDBOX_PB_H

#include "hostagent/v1/hostagent.pb-c.h"
#include "sandbox/sbx.h"

struct svc_sandbox_pb {
        Hostagent__V1__Sandbox msg;
        Google__Protobuf__Timestamp created, expires;
        Hostagent__V1__EgressPolicy egress;
        Hostagent__V1__Sandbox__MetadataEntry *md;
        Hostagent__V1__Sandbox__MetadataEntry **mdp;
        Hostagent__V1__Sandbox__EnvEntry *env;
        Hostagent__V1__Sandbox__EnvEntry **envp;
};

/* Fills |out| from |rec| (borrowed: keep |rec| alive while |out| is used).
 * Returns 0 or -ENOMEM. */
int svc_sandbox_to_pb(const struct sbx_record *rec, struct svc_sandbox_pb *out);
void svc_sandbox_pb_done(struct svc_sandbox_pb *out);

/* Borrowing view of a CreateSandboxRequest as an sbx_spec (the kv arrays
 * are allocated; release with svc_spec_done). Returns 0 or -ENOMEM. */
int svc_spec_from_pb(const Hostagent__V1__CreateSandboxRequest *req, struct sbx_spec *spec);
void svc_spec_done(struct sbx_spec *spec);

/* Borrowing view of a metadata filter map. */
int svc_map_from_pb(size_t n, ProtobufCMessage *const *entries, struct sbx_map *ret);

#endif
