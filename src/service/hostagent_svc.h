/*
 * hostagent_svc.h - hostagent.v1.HostAgentService: the API of
 * ../shared/API.md, translated between protobuf and the sandbox manager.
 * Handlers never see the wire protocol (rpc.h).
 */
#ifndef HA_SVC_HOSTAGENT_H
#define HA_SVC_HOSTAGENT_H

#include "rpc/server.h"

struct ha_daemon;
typedef struct svc_hostagent svc_hostagent;

svc_hostagent *svc_hostagent_new(struct ha_daemon *d);
void svc_hostagent_free(svc_hostagent *s);
int svc_hostagent_register(svc_hostagent *s, rpc_server *srv);

#endif
