/*
 * hostagent_svc.c - see hostagent_svc.h. One table lists every method with
 * its kind, flags and least role; methods whose subsystem is not built yet
 * answer UNIMPLEMENTED saying so.
 */
#include "service/hostagent_svc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/time.h"
#include "hostagent/v1/hostagent.pb-c.h"
#include "service/daemon.h"

struct svc_hostagent {
        struct ha_daemon *d;
        struct rpc_method *methods;
        size_t nmethods;
};

static void not_built(rpc_call *c, void *ctx)
{
        rpc_call_finish(c, RPC_UNIMPLEMENTED, "%s is not implemented in this build of hostagent",
                        rpc_call_method(c)->path);
}

static void get_host_info(rpc_call *c, void *ctx)
{
        svc_hostagent *s = ctx;
        Hostagent__V1__HostInfo info = HOSTAGENT__V1__HOST_INFO__INIT;
        Google__Protobuf__Duration up = GOOGLE__PROTOBUF__DURATION__INIT;
        Hostagent__V1__Capacity cap = HOSTAGENT__V1__CAPACITY__INIT, use = HOSTAGENT__V1__CAPACITY__INIT;
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        uint64_t up_ms = ha_now_ms() - s->d->started_ms;
        up.seconds = (int64_t)(up_ms / 1000);
        up.nanos = (int32_t)(up_ms % 1000) * 1000000;
        info.version = (char *)HA_VERSION;
        info.build = (char *)HA_BUILD;
        info.runtime = (char *)ha_daemon_runtime(s->d);
        info.snapshot_kind = strcmp(info.runtime, "simulator") == 0 ? (char *)"filesystem-only" : (char *)"full";
        info.hostname = host;
        info.uptime = &up;
        ha_daemon_capacity(s->d, &cap, &use);
        info.capacity = &cap;
        info.usage = &use;
        rpc_call_send(c, &info.base);
}

#define DESC(x) &hostagent__v1__##x##__descriptor
#define M(name, kind, flags, in, out, fn, role)                                                    \
        { "/hostagent.v1.HostAgentService/" name, kind, flags, DESC(in), DESC(out), fn, NULL, role }

static const struct rpc_method method_table[] = {
        M("CreateSandbox", RPC_UNARY, 0, create_sandbox_request, sandbox, not_built, "admin"),
        M("GetSandbox", RPC_UNARY, RPC_NO_SIDE_EFFECTS, get_sandbox_request, sandbox, not_built, "reader"),
        M("ListSandboxes", RPC_UNARY, RPC_NO_SIDE_EFFECTS, list_sandboxes_request, list_sandboxes_response, not_built, "reader"),
        M("DestroySandbox", RPC_UNARY, 0, destroy_sandbox_request, destroy_sandbox_response, not_built, "admin"),
        M("PauseSandbox", RPC_UNARY, 0, pause_sandbox_request, sandbox, not_built, "admin"),
        M("ResumeSandbox", RPC_UNARY, 0, resume_sandbox_request, sandbox, not_built, "admin"),
        M("SetSandboxTimeout", RPC_UNARY, 0, set_sandbox_timeout_request, sandbox, not_built, "admin"),
        M("Exec", RPC_UNARY, 0, exec_request, exec_response, not_built, "admin"),
        M("ExecStream", RPC_SERVER_STREAM, 0, exec_request, exec_event, not_built, "admin"),
        M("ExecInteractive", RPC_BIDI, 0, exec_input, exec_event, not_built, "admin"),
        M("WatchEvents", RPC_SERVER_STREAM, 0, watch_events_request, sandbox_event, not_built, "reader"),
        M("GetHostInfo", RPC_UNARY, RPC_NO_SIDE_EFFECTS | RPC_INLINE, get_host_info_request, host_info, get_host_info, "reader"),
};

svc_hostagent *svc_hostagent_new(struct ha_daemon *d)
{
        svc_hostagent *s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        s->d = d;
        s->nmethods = sizeof method_table / sizeof method_table[0];
        s->methods = malloc(sizeof method_table);
        if (!s->methods) {
                free(s);
                return NULL;
        }
        memcpy(s->methods, method_table, sizeof method_table);
        for (size_t i = 0; i < s->nmethods; i++)
                s->methods[i].ctx = s;
        return s;
}

void svc_hostagent_free(svc_hostagent *s)
{
        if (!s)
                return;
        free(s->methods);
        free(s);
}

int svc_hostagent_register(svc_hostagent *s, rpc_server *srv)
{
        for (size_t i = 0; i < s->nmethods; i++) {
                int r = rpc_server_add_method(srv, &s->methods[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}
