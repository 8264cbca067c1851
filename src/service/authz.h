/*
 * authz.h - who may call what. Identity comes from the client certificate
 * (rpc/tls.c); the policy maps identities to roles (--role IDENTITY=ROLE).
 * admin may call everything; reader only methods marked "reader".
 * Without --client-ca every caller is admin (loopback only, see config.c);
 * with it and no --role, every verified client is admin; otherwise unlisted
 * identities are denied.
 */
#ifndef HA_SVC_AUTHZ_H
#define HA_SVC_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc/rpc.h"

/* rpc_authorize_fn with ctx = const struct ha_config *. */
bool ha_authz_check(void *ctx, const char *identity, const struct rpc_method *m, char *why, size_t why_len);

#endif
