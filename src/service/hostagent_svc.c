/*
 * hostagent_svc.c - see hostagent_svc.h. One table lists every method with
 * its kind, flags and least role. Sandbox methods translate protobuf to the
 * manager's C API (sandbox/sbx.h) and its -errno back to status codes; the
 * exec methods live in exec_svc.c.
 *
 * Lifetime: a handler only borrows. The manager owns every sandbox; a call
 * that is cancelled passes that on through struct sbx_cancel, and the
 * manager decides (a Create either completes or rolls back completely).
 */
#include "service/hostagent_svc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/time.h"
#include "hostagent/v1/hostagent.pb-c.h"
#include "service/daemon.h"
#include "service/exec_svc.h"
#include "service/sandbox_pb.h"

struct svc_hostagent {
        struct ha_daemon *d;
        struct rpc_method *methods;
        size_t nmethods;
};

static bool call_cancelled(void *ctx)
{
        return rpc_call_cancelled(ctx);
}

static void fail(rpc_call *c, int r, const struct ha_err *err)
{
        rpc_call_finish_errno(c, r, err && err->msg[0] ? err->msg : NULL);
}

static void send_record(rpc_call *c, const struct sbx_record *rec)
{
        struct svc_sandbox_pb pb;
        if (svc_sandbox_to_pb(rec, &pb) < 0) {
                rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
                return;
        }
        rpc_call_send(c, &pb.msg.base);
        svc_sandbox_pb_done(&pb);
}

static sbx_mgr *mgr_of(rpc_call *c, struct ha_daemon *d)
{
        if (!d->mgr) {
                rpc_call_finish(c, RPC_UNAVAILABLE, "no sandbox runtime configured: start hostagent with --firecracker-bin");
                return NULL;
        }
        return d->mgr;
}

static void create_sandbox(rpc_call *c, void *ctx)
{
        struct ha_daemon *d = ctx;
        sbx_mgr *m = mgr_of(c, d);
        if (!m)
                return;
        const Hostagent__V1__CreateSandboxRequest *req = (const void *)rpc_call_request(c);
        struct sbx_spec spec;
        if (svc_spec_from_pb(req, &spec) < 0) {
                rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
                return;
        }
        struct sbx_cancel cancel = { call_cancelled, c };
        struct sbx_record rec = { 0 };
        struct ha_err err = { "" };
        int r = sbx_mgr_create(m, &spec, &cancel, &rec, &err);
        svc_spec_done(&spec);
        if (r < 0) {
                fail(c, r, &err);
                return;
        }
        send_record(c, &rec);
        sbx_record_done(&rec);
}

static void get_sandbox(rpc_call *c, void *ctx)
{
        struct ha_daemon *d = ctx;
        sbx_mgr *m = mgr_of(c, d);
        if (!m)
                return;
        const Hostagent__V1__GetSandboxRequest *req = (const void *)rpc_call_request(c);
        struct sbx_record rec = { 0 };
        struct ha_err err = { "" };
        int r = sbx_mgr_get(m, req->sandbox_id, &rec, &err);
        if (r < 0) {
                fail(c, r, &err);
                return;
        }
        send_record(c, &rec);
        sbx_record_done(&rec);
}

static void list_sandboxes(rpc_call *c, void *ctx)
{
        struct ha_daemon *d = ctx;
        sbx_mgr *m = mgr_of(c, d);
        if (!m)
                return;
        const Hostagent__V1__ListSandboxesRequest *req = (const void *)rpc_call_request(c);
        enum sbx_state states[8];
        size_t ns = 0;
        for (size_t i = 0; i < req->n_states && ns < 8; i++) {
                int v = req->states[i];
                if (v < SBX_STATE_CREATING || v > SBX_STATE_FAILED) {
                        rpc_call_finish(c, RPC_INVALID_ARGUMENT, "states[%zu]: %d is not a sandbox state", i, v);
                        return;
                }
                states[ns++] = (enum sbx_state)v;
        }
        struct sbx_map md;
        if (svc_map_from_pb(req->n_metadata, (ProtobufCMessage *const *)req->metadata, &md) < 0) {
                rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
                return;
        }
        struct sbx_filter f = { states, ns, req->n_metadata ? &md : NULL };
        struct sbx_record *recs = NULL;
        size_t n = 0;
        int r = sbx_mgr_list(m, &f, &recs, &n);
        free(md.items);
        if (r < 0) {
                fail(c, r, NULL);
                return;
        }
        struct svc_sandbox_pb *pbs = calloc(n ? n : 1, sizeof *pbs);
        Hostagent__V1__Sandbox **ptrs = calloc(n ? n : 1, sizeof *ptrs);
        size_t built = 0;
        for (; pbs && ptrs && built < n; built++) {
                if (svc_sandbox_to_pb(&recs[built], &pbs[built]) < 0)
                        break;
                ptrs[built] = &pbs[built].msg;
        }
        if (!pbs || !ptrs || built < n) {
                rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        } else {
                Hostagent__V1__ListSandboxesResponse resp = HOSTAGENT__V1__LIST_SANDBOXES_RESPONSE__INIT;
                resp.n_sandboxes = n;
                resp.sandboxes = ptrs;
                rpc_call_send(c, &resp.base);
        }
        for (size_t i = 0; pbs && i < built; i++)
                svc_sandbox_pb_done(&pbs[i]);
        free(pbs);
        free(ptrs);
        sbx_records_free(recs, n);
}

static void destroy_sandbox(rpc_call *c, void *ctx)
{
        struct ha_daemon *d = ctx;
        sbx_mgr *m = mgr_of(c, d);
        if (!m)
                return;
        const Hostagent__V1__DestroySandboxRequest *req = (const void *)rpc_call_request(c);
        struct sbx_cancel cancel = { call_cancelled, c };
        struct ha_err err = { "" };
        int r = sbx_mgr_destroy(m, req->sandbox_id, &cancel, &err);
        if (r < 0) {
                fail(c, r, &err);
                return;
        }
        Hostagent__V1__DestroySandboxResponse resp = HOSTAGENT__V1__DESTROY_SANDBOX_RESPONSE__INIT;
        rpc_call_send(c, &resp.base);
}

static void pause_sandbox(rpc_call *c, void *ctx)
{
        struct ha_daemon *d = ctx;
        sbx_mgr *m = mgr_of(c, d);
        if (!m)
                return;
        const Hostagent__V1__PauseSandboxRequest *req = (const void *)rpc_call_request(c);
        struct sbx_cancel cancel = { call_cancelled, c };
        struct sbx_record rec = { 0 };
        struct ha_err err = { "" };
        int r = sbx_mgr_pause(m, req->sandbox_id, req->snapshot, &cancel, &rec, &err);
        if (r < 0) {
                fail(c, r, &err);
                return;
        }
        send_record(c, &rec);
        sbx_record_done(&rec);
}

static void resume_sandbox(rpc_call *c, void *ctx)
{
        struct ha_daemon *d = ctx;
        sbx_mgr *m = mgr_of(c, d);
        if (!m)
                return;
        const Hostagent__V1__ResumeSandboxRequest *req = (const void *)rpc_call_request(c);
        struct sbx_cancel cancel = { call_cancelled, c };
        struct sbx_record rec = { 0 };
        struct ha_err err = { "" };
        int r = sbx_mgr_resume(m, req->sandbox_id, req->timeout_seconds, &cancel, &rec, &err);
        if (r < 0) {
                fail(c, r, &err);
                return;
        }
        send_record(c, &rec);
        sbx_record_done(&rec);
}

static void set_timeout(rpc_call *c, void *ctx)
{
        struct ha_daemon *d = ctx;
        sbx_mgr *m = mgr_of(c, d);
        if (!m)
                return;
        const Hostagent__V1__SetSandboxTimeoutRequest *req = (const void *)rpc_call_request(c);
        struct sbx_cancel cancel = { call_cancelled, c };
        struct sbx_record rec = { 0 };
        struct ha_err err = { "" };
        int r = sbx_mgr_set_timeout(m, req->sandbox_id, req->timeout_seconds, &cancel, &rec, &err);
        if (r < 0) {
                fail(c, r, &err);
                return;
        }
        send_record(c, &rec);
        sbx_record_done(&rec);
}

static void watch_events(rpc_call *c, void *ctx)
{
        struct ha_daemon *d = ctx;
        sbx_mgr *m = mgr_of(c, d);
        if (!m)
                return;
        const Hostagent__V1__WatchEventsRequest *req = (const void *)rpc_call_request(c);
        sbx_watch *w;
        struct ha_err err = { "" };
        int r = sbx_watch_new(m, req->sandbox_id, &w, &err);
        if (r < 0) {
                fail(c, r, &err);
                return;
        }
        /* Headers now, so the client knows the subscription is live. */
        rpc_call_add_header(c, "x-watch", "1", 1);
        while (!rpc_call_cancelled(c)) {
                struct sbx_event ev;
                r = sbx_watch_next(w, ha_now_ms() + 100, &ev);
                if (r == -ETIMEDOUT)
                        continue;
                if (r == -ENOBUFS) {
                        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED,
                                        "event queue overflowed (client too slow): list sandboxes and watch again");
                        break;
                }
                if (r == -ESHUTDOWN) {
                        rpc_call_finish(c, RPC_UNAVAILABLE, "agent is shutting down");
                        break;
                }
                if (r < 0) {
                        fail(c, r, NULL);
                        break;
                }
                Hostagent__V1__SandboxEvent out = HOSTAGENT__V1__SANDBOX_EVENT__INIT;
                Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
                struct svc_sandbox_pb pb;
                t.seconds = ev.time_ms / 1000;
                t.nanos = (int32_t)(ev.time_ms % 1000) * 1000000;
                out.kind = (Hostagent__V1__SandboxEvent__Kind)ev.kind;
                out.time = &t;
                out.reason = ev.reason;
                r = svc_sandbox_to_pb(&ev.rec, &pb);
                if (r == 0) {
                        out.sandbox = &pb.msg;
                        r = rpc_call_send(c, &out.base);
                        svc_sandbox_pb_done(&pb);
                }
                sbx_event_done(&ev);
                if (r < 0)
                        break;
        }
        sbx_watch_free(w);
}

static void get_host_info(rpc_call *c, void *ctx)
{
        struct ha_daemon *d = ctx;
        Hostagent__V1__HostInfo info = HOSTAGENT__V1__HOST_INFO__INIT;
        Google__Protobuf__Duration up = GOOGLE__PROTOBUF__DURATION__INIT;
        Hostagent__V1__Capacity cap = HOSTAGENT__V1__CAPACITY__INIT, use = HOSTAGENT__V1__CAPACITY__INIT;
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        uint64_t up_ms = ha_now_ms() - d->started_ms;
        up.seconds = (int64_t)(up_ms / 1000);
        up.nanos = (int32_t)(up_ms % 1000) * 1000000;
        info.version = (char *)HA_VERSION;
        info.build = (char *)HA_BUILD;
        info.runtime = (char *)ha_daemon_runtime(d);
        info.snapshot_kind = strcmp(info.runtime, "simulator") == 0 ? (char *)"filesystem-only" : (char *)"full";
        info.hostname = host;
        info.uptime = &up;
        ha_daemon_capacity(d, &cap, &use);
        info.capacity = &cap;
        info.usage = &use;
        rpc_call_send(c, &info.base);
}

#define DESC(x) &hostagent__v1__##x##__descriptor
#define M(name, kind, flags, in, out, fn, role)                                                    \
        { "/hostagent.v1.HostAgentService/" name, kind, flags, DESC(in), DESC(out), fn, NULL, role }

static const struct rpc_method method_table[] = {
        M("CreateSandbox", RPC_UNARY, 0, create_sandbox_request, sandbox, create_sandbox, "admin"),
        M("GetSandbox", RPC_UNARY, RPC_NO_SIDE_EFFECTS | RPC_INLINE, get_sandbox_request, sandbox, get_sandbox, "reader"),
        M("ListSandboxes", RPC_UNARY, RPC_NO_SIDE_EFFECTS, list_sandboxes_request, list_sandboxes_response,
          list_sandboxes, "reader"),
        M("DestroySandbox", RPC_UNARY, 0, destroy_sandbox_request, destroy_sandbox_response, destroy_sandbox, "admin"),
        M("PauseSandbox", RPC_UNARY, 0, pause_sandbox_request, sandbox, pause_sandbox, "admin"),
        M("ResumeSandbox", RPC_UNARY, 0, resume_sandbox_request, sandbox, resume_sandbox, "admin"),
        M("SetSandboxTimeout", RPC_UNARY, 0, set_sandbox_timeout_request, sandbox, set_timeout, "admin"),
        M("Exec", RPC_UNARY, 0, exec_request, exec_response, svc_exec_unary, "admin"),
        M("ExecStream", RPC_SERVER_STREAM, 0, exec_request, exec_event, svc_exec_stream, "admin"),
        M("ExecInteractive", RPC_BIDI, 0, exec_input, exec_event, svc_exec_interactive, "admin"),
        M("WatchEvents", RPC_SERVER_STREAM, 0, watch_events_request, sandbox_event, watch_events, "reader"),
        M("GetHostInfo", RPC_UNARY, RPC_NO_SIDE_EFFECTS | RPC_INLINE, get_host_info_request, host_info,
          get_host_info, "reader"),
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
                s->methods[i].ctx = d;
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
