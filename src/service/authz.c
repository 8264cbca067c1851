/* authz.c - see authz.h. */
#include "service/authz.h"

#include <stdio.h>
#include <string.h>

#include "service/config.h"

bool ha_authz_check(void *ctx, const char *identity, const struct rpc_method *m, char *why, size_t why_len)
{
        const struct ha_config *cfg = ctx;
        if (!cfg->client_ca || cfg->nroles == 0)
                return true;
        const char *role = NULL;
        for (unsigned i = 0; identity && i < cfg->nroles; i++)
                if (strcmp(cfg->roles[i].identity, identity) == 0)
                        role = cfg->roles[i].role;
        if (role && strcmp(role, "admin") == 0)
                return true;
        if (role && m->role && strcmp(m->role, "reader") == 0)
                return true;
        snprintf(why, why_len, "%s is not allowed for %s (role: %s)", m->path,
                 identity ? identity : "an anonymous client", role ? role : "none");
        return false;
}
