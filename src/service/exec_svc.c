/*
 * exec_svc.c - see exec_svc.h. One guest connection per call. The loop that
 * relays events polls the guest with a 100 ms deadline so it notices the
 * call's cancellation quickly; ExecInteractive adds a second thread that
 * pumps client input (stdin, close, signals) into the same connection,
 * which exec.h allows concurrently with the event reads.
 */
#include "service/exec_svc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/metrics.h"
#include "core/time.h"
#include "exec/exec.h"
#include "hostagent/v1/hostagent.pb-c.h"
#include "sandbox/sbx.h"
#include "service/daemon.h"

#define EXEC_DEFAULT_OUTPUT_CAP (1u << 20)
/* Connecting to the guest agent of a running sandbox is local: it either
 * answers fast or the VM is gone. */
#define EXEC_CONNECT_TIMEOUT_MS 5000
#define EXEC_MAX_ARGS 4096
#define EXEC_MAX_ENV 1024

struct exec_ctx {
        rpc_call *c;
        struct ha_daemon *d;
        exec_conn *conn;
        char id[SBX_ID_MAX + 1];
        struct exec_env_var *env;
        size_t envc;
        struct sbx_record rec;
};

static uint64_t bounded_deadline(rpc_call *c, uint64_t ms)
{
        uint64_t d = ha_now_ms() + ms, cd = rpc_call_deadline(c);
        return cd && cd < d ? cd : d;
}

static bool env_key_ok(const char *k)
{
        return k && *k && !strchr(k, '=') && strlen(k) < 1024;
}

/* Merged environment: the sandbox's defaults, overridden by the request. */
static int build_env(struct exec_ctx *x, const Hostagent__V1__ExecRequest *req)
{
        size_t cap = x->rec.spec.env.n + req->n_env;
        x->env = calloc(cap ? cap : 1, sizeof *x->env);
        if (!x->env)
                return -ENOMEM;
        for (size_t i = 0; i < req->n_env; i++) {
                if (!env_key_ok(req->env[i]->key)) {
                        rpc_call_finish(x->c, RPC_INVALID_ARGUMENT, "env key \"%.64s\" is not a valid variable name",
                                        req->env[i]->key);
                        return -EINVAL;
                }
                x->env[x->envc++] = (struct exec_env_var){ req->env[i]->key, req->env[i]->value };
        }
        for (size_t i = 0; i < x->rec.spec.env.n; i++) {
                const struct sbx_kv *kv = &x->rec.spec.env.items[i];
                bool overridden = false;
                for (size_t j = 0; j < req->n_env; j++)
                        if (strcmp(req->env[j]->key, kv->key) == 0)
                                overridden = true;
                if (!overridden)
                        x->env[x->envc++] = (struct exec_env_var){ kv->key, kv->value };
        }
        return 0;
}

static void exec_ctx_done(struct exec_ctx *x)
{
        exec_conn_free(x->conn);   /* the guest kills the command if it still runs */
        x->conn = NULL;
        free(x->env);
        sbx_record_done(&x->rec);
}

/* Connects and starts the command. On failure the call is finished. */
static int exec_begin(struct exec_ctx *x, const Hostagent__V1__ExecRequest *req, bool close_stdin)
{
        rpc_call *c = x->c;
        struct ha_err err = { "" };
        if (!x->d->mgr) {
                rpc_call_finish(c, RPC_UNAVAILABLE, "no sandbox runtime configured");
                return -ENOSYS;
        }
        if (req->n_command == 0 || !req->command[0][0]) {
                rpc_call_finish(c, RPC_INVALID_ARGUMENT,
                                "command is empty: give the argv, e.g. [\"sh\", \"-c\", \"echo hi\"]");
                return -EINVAL;
        }
        if (req->n_command > EXEC_MAX_ARGS || req->n_env > EXEC_MAX_ENV) {
                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "too many arguments or environment variables (max %d / %d)",
                                EXEC_MAX_ARGS, EXEC_MAX_ENV);
                return -EINVAL;
        }
        int r = sbx_mgr_get(x->d->mgr, req->sandbox_id, &x->rec, &err);
        char path[128];
        if (r == 0)
                r = sbx_mgr_vsock_path(x->d->mgr, req->sandbox_id, path, sizeof path, &err);
        if (r < 0) {
                rpc_call_finish_errno(c, r, err.msg[0] ? err.msg : NULL);
                return r;
        }
        snprintf(x->id, sizeof x->id, "%s", req->sandbox_id);
        r = build_env(x, req);
        if (r < 0) {
                if (r == -ENOMEM)
                        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
                return r;
        }
        uint64_t deadline = bounded_deadline(c, EXEC_CONNECT_TIMEOUT_MS);
        r = exec_conn_open(path, EXEC_GUEST_PORT, deadline, &x->conn, &err);
        if (r < 0) {
                /* The open gives up a retry interval early: a timeout bounded
                 * by the call's own deadline is the caller's deadline passing,
                 * even if the loop has not marked the call yet. */
                bool expired = r == -ETIMEDOUT && (rpc_call_cancelled(c) || deadline == rpc_call_deadline(c));
                rpc_call_finish(c, expired ? RPC_DEADLINE_EXCEEDED : RPC_UNAVAILABLE,
                                "cannot reach the guest agent of sandbox %s: %s", x->id, err.msg);
                return r;
        }
        struct exec_spec spec = {
                .argv = (const char *const *)req->command,
                .argc = req->n_command,
                .env = x->env,
                .envc = x->envc,
                .cwd = req->cwd,
                .user = req->user,
                .timeout_ms = (uint64_t)req->timeout_seconds * 1000,
        };
        r = exec_start(x->conn, &spec, bounded_deadline(c, EXEC_CONNECT_TIMEOUT_MS), &err);
        /* Request stdin goes out from a background thread: a command that
         * writes while it reads (cat) would otherwise deadlock against us,
         * since events are only read after this returns. */
        if (r == 0 && req->stdin.len)
                r = exec_feed_stdin(x->conn, req->stdin.data, req->stdin.len, close_stdin);
        else if (r == 0 && close_stdin)
                r = exec_close_stdin(x->conn, bounded_deadline(c, 5000));
        if (r < 0) {
                rpc_call_finish_errno(c, r == -EPIPE ? -ESHUTDOWN : r,
                                      err.msg[0] ? err.msg : "the guest agent closed the connection");
                return r;
        }
        return 0;
}

/* The guest connection ended before EXITED: say why in the words of the
 * sandbox's state (destroyed, failed, paused...). */
static void lost(struct exec_ctx *x, int r)
{
        struct sbx_record rec = { 0 };
        struct ha_err err = { "" };
        int g = sbx_mgr_get(x->d->mgr, x->id, &rec, &err);
        if (g == -ENOENT)
                rpc_call_finish(x->c, RPC_ABORTED, "sandbox %s was destroyed while the command ran", x->id);
        else if (g == 0 && rec.state != SBX_STATE_RUNNING)
                rpc_call_finish(x->c, RPC_ABORTED, "sandbox %s is %s: the command was lost", x->id,
                                sbx_state_name(rec.state));
        else
                rpc_call_finish(x->c, RPC_UNAVAILABLE, "connection to the guest agent of sandbox %s lost: %s", x->id,
                                strerror(-r));
        sbx_record_done(&rec);
}

static void error_event(struct exec_ctx *x, const struct exec_event *ev)
{
        rpc_call_finish(x->c, rpc_code_from_errno(exec_error_to_errno(ev->error)), "%s",
                        ev->message[0] ? ev->message : exec_error_name(ev->error));
}

static void duration(Google__Protobuf__Duration *d, uint64_t ns)
{
        google__protobuf__duration__init(d);
        d->seconds = (int64_t)(ns / 1000000000u);
        d->nanos = (int32_t)(ns % 1000000000u);
}

/* Relays guest events as ExecEvents until EXITED, ERROR, loss or cancel. */
static void relay_events(struct exec_ctx *x)
{
        rpc_call *c = x->c;
        for (;;) {
                if (rpc_call_cancelled(c))
                        return;
                struct exec_event ev;
                int r = exec_next_event(x->conn, ha_now_ms() + 100, &ev);
                if (r == -ETIMEDOUT)
                        continue;
                if (r < 0) {
                        lost(x, r);
                        return;
                }
                Hostagent__V1__ExecEvent out = HOSTAGENT__V1__EXEC_EVENT__INIT;
                Hostagent__V1__ExecEvent__Started st = HOSTAGENT__V1__EXEC_EVENT__STARTED__INIT;
                Hostagent__V1__ExecEvent__Data data = HOSTAGENT__V1__EXEC_EVENT__DATA__INIT;
                Hostagent__V1__ExecEvent__Exited ex = HOSTAGENT__V1__EXEC_EVENT__EXITED__INIT;
                Google__Protobuf__Duration dur;
                switch (ev.kind) {
                case EXEC_EV_STARTED:
                        st.pid = ev.pid;
                        out.event_case = HOSTAGENT__V1__EXEC_EVENT__EVENT_STARTED;
                        out.started = &st;
                        break;
                case EXEC_EV_STDOUT:
                case EXEC_EV_STDERR:
                        data.data.data = (uint8_t *)ev.data;
                        data.data.len = ev.len;
                        ha_metrics_exec_bytes(ev.kind == EXEC_EV_STDOUT ? "stdout" : "stderr", ev.len);
                        if (ev.kind == EXEC_EV_STDOUT) {
                                out.event_case = HOSTAGENT__V1__EXEC_EVENT__EVENT_STDOUT;
                                out.stdout = &data;
                        } else {
                                out.event_case = HOSTAGENT__V1__EXEC_EVENT__EVENT_STDERR;
                                out.stderr = &data;
                        }
                        break;
                case EXEC_EV_EXITED:
                        duration(&dur, ev.duration_ns);
                        ex.exit_code = ev.exit_code;
                        ex.signal = ev.signal;
                        ex.timed_out = ev.timed_out;
                        ex.duration = &dur;
                        out.event_case = HOSTAGENT__V1__EXEC_EVENT__EVENT_EXITED;
                        out.exited = &ex;
                        rpc_call_send(c, &out.base);
                        return;
                case EXEC_EV_ERROR:
                        error_event(x, &ev);
                        return;
                default:
                        continue;
                }
                if (rpc_call_send(c, &out.base) < 0)
                        return;
        }
}

void svc_exec_stream(rpc_call *c, void *ctx)
{
        struct exec_ctx x = { .c = c, .d = ctx };
        const Hostagent__V1__ExecRequest *req = (const void *)rpc_call_request(c);
        if (exec_begin(&x, req, true) == 0) {
                ha_metrics_exec_streams(1);
                relay_events(&x);
                ha_metrics_exec_streams(-1);
        }
        exec_ctx_done(&x);
}

/* Appends to a capped buffer; past the cap bytes are counted, not kept. */
static void capped_append(ProtobufCBinaryData *b, size_t *cap_alloc, size_t cap, const uint8_t *p, size_t n,
                          bool *truncated)
{
        size_t room = cap > b->len ? cap - b->len : 0;
        if (n > room) {
                *truncated = true;
                n = room;
        }
        if (!n)
                return;
        if (b->len + n > *cap_alloc) {
                size_t nc = *cap_alloc ? *cap_alloc * 2 : 4096;
                while (nc < b->len + n)
                        nc *= 2;
                if (nc > cap)
                        nc = cap;
                uint8_t *q = realloc(b->data, nc);
                if (!q) {
                        *truncated = true;
                        return;
                }
                b->data = q;
                *cap_alloc = nc;
        }
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

void svc_exec_unary(rpc_call *c, void *ctx)
{
        struct exec_ctx x = { .c = c, .d = ctx };
        const Hostagent__V1__ExecRequest *req = (const void *)rpc_call_request(c);
        Hostagent__V1__ExecResponse resp = HOSTAGENT__V1__EXEC_RESPONSE__INIT;
        Google__Protobuf__Duration dur;
        size_t cap = req->max_output_bytes ? req->max_output_bytes : EXEC_DEFAULT_OUTPUT_CAP;
        size_t out_alloc = 0, err_alloc = 0;
        bool truncated = false;
        if (exec_begin(&x, req, true) < 0)
                goto out;
        for (;;) {
                if (rpc_call_cancelled(c))
                        goto out;
                struct exec_event ev;
                int r = exec_next_event(x.conn, ha_now_ms() + 100, &ev);
                if (r == -ETIMEDOUT)
                        continue;
                if (r < 0) {
                        lost(&x, r);
                        goto out;
                }
                if (ev.kind == EXEC_EV_STDOUT)
                        capped_append(&resp.stdout, &out_alloc, cap, ev.data, ev.len, &truncated);
                else if (ev.kind == EXEC_EV_STDERR)
                        capped_append(&resp.stderr, &err_alloc, cap, ev.data, ev.len, &truncated);
                else if (ev.kind == EXEC_EV_ERROR) {
                        error_event(&x, &ev);
                        goto out;
                } else if (ev.kind == EXEC_EV_EXITED) {
                        duration(&dur, ev.duration_ns);
                        resp.exit_code = ev.exit_code;
                        resp.signal = ev.signal;
                        resp.timed_out = ev.timed_out;
                        resp.duration = &dur;
                        resp.truncated = truncated;
                        rpc_call_send(c, &resp.base);
                        goto out;
                }
        }
out:
        free(resp.stdout.data);
        free(resp.stderr.data);
        exec_ctx_done(&x);
}

struct pump {
        struct exec_ctx *x;
        atomic_bool done;
};

static void *input_pump(void *arg)
{
        struct pump *p = arg;
        rpc_call *c = p->x->c;
        while (!atomic_load(&p->done)) {
                ProtobufCMessage *m;
                int r = rpc_call_recv(c, 100, &m);
                if (r == -ETIMEDOUT)
                        continue;
                if (r == 0) {
                        /* The client is done sending: the command sees EOF. */
                        exec_close_stdin(p->x->conn, ha_now_ms() + 5000);
                        break;
                }
                if (r < 0)
                        break;
                const Hostagent__V1__ExecInput *in = (const void *)m;
                switch (in->input_case) {
                case HOSTAGENT__V1__EXEC_INPUT__INPUT_STDIN:
                        r = exec_send_stdin(p->x->conn, in->stdin.data, in->stdin.len, bounded_deadline(c, 60000));
                        break;
                case HOSTAGENT__V1__EXEC_INPUT__INPUT_CLOSE_STDIN:
                        r = exec_close_stdin(p->x->conn, ha_now_ms() + 5000);
                        break;
                case HOSTAGENT__V1__EXEC_INPUT__INPUT_SIGNAL:
                        r = exec_signal(p->x->conn, in->signal->number, ha_now_ms() + 5000);
                        if (r == -EINVAL)
                                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "signal %d is not a signal number (1-64)",
                                                in->signal->number);
                        break;
                default:
                        rpc_call_finish(c, RPC_INVALID_ARGUMENT,
                                        "only the first ExecInput may carry the request; later ones carry stdin, "
                                        "close_stdin or signal");
                        r = -EINVAL;
                }
                protobuf_c_message_free_unpacked(m, NULL);
                if (r < 0 && r != -EPIPE)
                        break;
        }
        return NULL;
}

void svc_exec_interactive(rpc_call *c, void *ctx)
{
        struct exec_ctx x = { .c = c, .d = ctx };
        ProtobufCMessage *m = NULL;
        int r = rpc_call_recv(c, 0, &m);
        if (r == 0) {
                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "no ExecInput received: the first one carries the request");
                return;
        }
        if (r < 0)
                return;
        const Hostagent__V1__ExecInput *in = (const void *)m;
        if (in->input_case != HOSTAGENT__V1__EXEC_INPUT__INPUT_REQUEST) {
                rpc_call_finish(c, RPC_INVALID_ARGUMENT, "the first ExecInput must carry the request");
                protobuf_c_message_free_unpacked(m, NULL);
                return;
        }
        r = exec_begin(&x, in->request, false);
        protobuf_c_message_free_unpacked(m, NULL);
        if (r == 0) {
                struct pump p = { .x = &x };
                atomic_init(&p.done, false);
                pthread_t t;
                bool have_thread = pthread_create(&t, NULL, input_pump, &p) == 0;
                if (!have_thread)
                        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "cannot start the input thread");
                else {
                        ha_metrics_exec_streams(1);
                        relay_events(&x);
                        ha_metrics_exec_streams(-1);
                }
                atomic_store(&p.done, true);
                if (have_thread)
                        pthread_join(t, NULL);
        }
        exec_ctx_done(&x);
}
