/*
 * exec_svc.h - Exec, ExecStream and ExecInteractive: commands in a sandbox,
 * relayed between the client and the guest agent (src/exec). Output is
 * relayed as it arrives; a client that reads slowly blocks rpc_call_send,
 * which stops reads from the guest, which blocks the command's pipe: memory
 * stays bounded end to end. A call that ends (cancel, deadline, disconnect)
 * closes the guest connection, and the guest kills the command's group.
 * Handler ctx: struct ha_daemon *.
 */
#ifndef HA_SVC_EXEC_H
#define HA_SVC_EXEC_H

#include "rpc/rpc.h"

void svc_exec_unary(rpc_call *c, void *ctx);
void svc_exec_stream(rpc_call *c, void *ctx);
void svc_exec_interactive(rpc_call *c, void *ctx);

#endif
