/*
 * testd.c - hostagent with hostagent.test.v1.TestService added. Each
 * handler exists to let a real client prove one behaviour of the RPC stack:
 * metadata echo, status codes, the four call kinds, deadlines, cancellation
 * latency, backpressure (server RSS).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/time.h"
#include "hostagent/test/v1/test.pb-c.h"
#include "service/daemon.h"
#include "testd/fake_backend.h"

static struct {
        pthread_mutex_t lock;
        char tag[64];
        bool seen, finished;
        uint64_t observed_ms;
} last_cancel = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void echo_md(rpc_call *c)
{
        const char *k;
        const uint8_t *v;
        size_t n;
        for (size_t i = 0; rpc_call_metadata(c, i, &k, &v, &n); i++) {
                if (strncmp(k, "x-", 2) != 0)
                        continue;       /* only the test's own keys */
                rpc_call_add_header(c, k, v, n);
                rpc_call_add_trailer(c, k, v, n);
        }
}

static void echo(rpc_call *c, void *ctx)
{
        const Hostagent__Test__V1__EchoRequest *req = (const void *)rpc_call_request(c);
        if (req->echo_metadata)
                echo_md(c);
        if (req->fail_code) {
                /* One error detail, so clients' detail handling is exercised. */
                Hostagent__Test__V1__EchoResponse detail = HOSTAGENT__TEST__V1__ECHO_RESPONSE__INIT;
                detail.message = req->fail_message;
                detail.seq = (uint32_t)req->fail_code;
                rpc_call_add_error_detail(c, &detail.base);
                rpc_call_finish(c, (enum rpc_code)req->fail_code, "%s", req->fail_message);
                return;
        }
        Hostagent__Test__V1__EchoResponse resp = HOSTAGENT__TEST__V1__ECHO_RESPONSE__INIT;
        resp.message = req->message;
        resp.payload = req->payload;
        rpc_call_send(c, &resp.base);
}

static void server_stream(rpc_call *c, void *ctx)
{
        const Hostagent__Test__V1__StreamRequest *req = (const void *)rpc_call_request(c);
        uint8_t *payload = calloc(1, req->size ? req->size : 1);
        if (!payload) {
                rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
                return;
        }
        Hostagent__Test__V1__EchoResponse resp = HOSTAGENT__TEST__V1__ECHO_RESPONSE__INIT;
        resp.payload.data = payload;
        resp.payload.len = req->size;
        for (uint32_t i = 0; i < req->count; i++) {
                resp.seq = i;
                if (req->size >= 4)
                        memcpy(payload, &i, 4);
                if (rpc_call_send(c, &resp.base) < 0)
                        break;
                if (req->delay_ms && rpc_call_wait_cancel(c, req->delay_ms))
                        break;
        }
        free(payload);
}

static void client_stream(rpc_call *c, void *ctx)
{
        Hostagent__Test__V1__EchoResponse resp = HOSTAGENT__TEST__V1__ECHO_RESPONSE__INIT;
        ProtobufCMessage *m;
        int r;
        uint64_t bytes = 0;
        while ((r = rpc_call_recv(c, 0, &m)) == 1) {
                const Hostagent__Test__V1__EchoRequest *req = (const void *)m;
                resp.count++;
                bytes += req->payload.len;
                protobuf_c_message_free_unpacked(m, NULL);
        }
        if (r < 0)
                return;
        resp.bytes = bytes;
        rpc_call_send(c, &resp.base);
}

static void bidi(rpc_call *c, void *ctx)
{
        ProtobufCMessage *m;
        int r;
        uint32_t seq = 0;
        while ((r = rpc_call_recv(c, 0, &m)) == 1) {
                const Hostagent__Test__V1__EchoRequest *req = (const void *)m;
                Hostagent__Test__V1__EchoResponse resp = HOSTAGENT__TEST__V1__ECHO_RESPONSE__INIT;
                resp.message = req->message;
                resp.payload = req->payload;
                resp.seq = seq++;
                r = rpc_call_send(c, &resp.base);
                protobuf_c_message_free_unpacked(m, NULL);
                if (r < 0)
                        return;
        }
}

static void sleep_h(rpc_call *c, void *ctx)
{
        const Hostagent__Test__V1__SleepRequest *req = (const void *)rpc_call_request(c);
        pthread_mutex_lock(&last_cancel.lock);
        snprintf(last_cancel.tag, sizeof last_cancel.tag, "%s", req->tag);
        last_cancel.seen = false;
        last_cancel.finished = false;
        pthread_mutex_unlock(&last_cancel.lock);
        uint64_t until = ha_now_ms() + (req->sleep_ms ? req->sleep_ms : 600000);
        bool cancelled = false;
        /* Poll at 10 ms like a handler doing real work between checks. */
        while (ha_now_ms() < until) {
                if (rpc_call_cancelled(c)) {
                        cancelled = true;
                        break;
                }
                usleep(10000);
        }
        pthread_mutex_lock(&last_cancel.lock);
        last_cancel.seen = cancelled;
        last_cancel.finished = true;
        last_cancel.observed_ms = ha_now_ms();
        pthread_mutex_unlock(&last_cancel.lock);
        Hostagent__Test__V1__SleepResponse resp = HOSTAGENT__TEST__V1__SLEEP_RESPONSE__INIT;
        resp.cancelled = cancelled;
        rpc_call_send(c, &resp.base);
}

static void last_cancel_h(rpc_call *c, void *ctx)
{
        const Hostagent__Test__V1__LastCancelRequest *req = (const void *)rpc_call_request(c);
        Hostagent__Test__V1__LastCancelResponse resp = HOSTAGENT__TEST__V1__LAST_CANCEL_RESPONSE__INIT;
        pthread_mutex_lock(&last_cancel.lock);
        if (strcmp(req->tag, last_cancel.tag) == 0) {
                resp.seen = last_cancel.seen;
                resp.finished = last_cancel.finished;
                resp.observed_monotonic_ms = last_cancel.observed_ms;
        }
        pthread_mutex_unlock(&last_cancel.lock);
        rpc_call_send(c, &resp.base);
}

static void stats(rpc_call *c, void *ctx)
{
        Hostagent__Test__V1__StatsResponse resp = HOSTAGENT__TEST__V1__STATS_RESPONSE__INIT;
        FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        while (f && fgets(line, sizeof line, f)) {
                unsigned long v;
                if (sscanf(line, "VmRSS: %lu kB", &v) == 1)
                        resp.rss_bytes = (uint64_t)v * 1024;
                else if (sscanf(line, "Threads: %lu", &v) == 1)
                        resp.threads = (uint32_t)v;
        }
        if (f)
                fclose(f);
        DIR *dir = opendir("/proc/self/fd");
        for (struct dirent *e; dir && (e = readdir(dir));)
                if (e->d_name[0] != '.')
                        resp.open_fds++;
        if (dir)
                closedir(dir);
        rpc_call_send(c, &resp.base);
}

#define T(x) &hostagent__test__v1__##x##__descriptor
#define P "/hostagent.test.v1.TestService/"
static struct rpc_method methods[] = {
        { P "Echo", RPC_UNARY, 0, T(echo_request), T(echo_response), echo, NULL, "admin" },
        { P "ServerStream", RPC_SERVER_STREAM, 0, T(stream_request), T(echo_response), server_stream, NULL, "admin" },
        { P "ClientStream", RPC_CLIENT_STREAM, 0, T(echo_request), T(echo_response), client_stream, NULL, "admin" },
        { P "Bidi", RPC_BIDI, 0, T(echo_request), T(echo_response), bidi, NULL, "admin" },
        { P "Sleep", RPC_UNARY, 0, T(sleep_request), T(sleep_response), sleep_h, NULL, "admin" },
        { P "LastCancel", RPC_UNARY, RPC_INLINE, T(last_cancel_request), T(last_cancel_response), last_cancel_h, NULL, "reader" },
        { P "Stats", RPC_UNARY, 0, T(stats_request), T(stats_response), stats, NULL, "reader" },
};

static int register_test(struct ha_daemon *d, rpc_server *srv)
{
        for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
                int r = rpc_server_add_method(srv, &methods[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int main(int argc, char **argv)
{
        static const struct ha_daemon_hooks hooks = {
                .register_extra = register_test,
                .backend_new = testd_backend_new,
                .backend_attach = testd_backend_attach,
                .backend_free = testd_backend_free,
        };
        return ha_daemon_main(argc, argv, &hooks);
}
