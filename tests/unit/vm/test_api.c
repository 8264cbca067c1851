/*
 * Tests of vm/api.c against a scripted HTTP server thread on a Unix socket:
 * it records each request and answers with the canned response the test
 * set, or never answers (to exercise the timeout).
 */
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/time.h"
#include "fctest.h"
#include "vm/api.h"
#include "vm/json.h"

static char tdir[64];
static char sock[100];

/* The thread runs until the test process exits, so a test's server is
 * static, never on the test's stack (TSan saw a later frame reuse it). */
struct server {
        int lfd;
        pthread_t thread;
        const char *response;   /* full HTTP response; NULL: never answer */
        int requests;
        int connections;
        char last[4096];        /* last request, head and body */
};

static void *serve(void *arg)
{
        struct server *s = arg;
        for (;;) {
                int c = accept(s->lfd, NULL, NULL);
                if (c < 0)
                        return NULL;
                s->connections++;
                char buf[8192];
                size_t have = 0;
                for (;;) {
                        ssize_t n = read(c, buf + have, sizeof buf - have - 1);
                        if (n <= 0)
                                break;
                        have += (size_t)n;
                        buf[have] = '\0';
                        char *end = strstr(buf, "\r\n\r\n");
                        if (!end)
                                continue;
                        char *cl = strcasestr(buf, "content-length:");
                        size_t clen = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
                        size_t total = (size_t)(end + 4 - buf) + clen;
                        if (have < total)
                                continue;
                        memcpy(s->last, buf, total < sizeof s->last ? total : sizeof s->last - 1);
                        s->last[total < sizeof s->last ? total : sizeof s->last - 1] = '\0';
                        s->requests++;
                        if (!s->response) {
                                sleep(30);
                                break;
                        }
                        if (write(c, s->response, strlen(s->response)) < 0)
                                break;
                        memmove(buf, buf + total, have - total);
                        have -= total;
                }
                close(c);
        }
}

static void server_start(struct server *s, const char *response)
{
        memset(s, 0, sizeof *s);
        s->response = response;
        s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
        cr_assert_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
        cr_assert_eq(listen(s->lfd, 4), 0);
        cr_assert_eq(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void setup(void)
{
        fct_mkdtemp(tdir, sizeof tdir);
        snprintf(sock, sizeof sock, "%s/api.sock", tdir);
}

static void teardown(void)
{
        fct_rmrf(tdir);
}

TestSuite(vm_api, .init = setup, .fini = teardown, .timeout = 30);

#define R204 "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"

/* A response with the right Content-Length (static: one per test). */
static const char *canned(const char *status, const char *body)
{
        static char buf[4096];
        snprintf(buf, sizeof buf, "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                                  "Content-Length: %zu\r\n\r\n%s",
                 status, strlen(body), body);
        return buf;
}

Test(vm_api, sends_json_bodies_and_reuses_the_connection)
{
        static struct server s;  /* outlives the test: serve() never stops */
        server_start(&s, R204);
        vm_api *a;
        cr_assert_eq(vm_api_new(sock, 1000, &a), 0);
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_api_put_drive(a, "rootfs", "/x/\"q\".ext4", true, false, &e), 0, "%s",
                     e.msg);
        cr_assert(strstr(s.last, "PUT /drives/rootfs HTTP/1.1\r\n"), "%s", s.last);
        cr_assert(strstr(s.last, "Content-Type: application/json\r\n"), "%s", s.last);
        cr_assert(strstr(s.last, "{\"drive_id\":\"rootfs\",\"path_on_host\":\"/x/\\\"q\\\".ext4\","
                                 "\"is_root_device\":true,\"is_read_only\":false}"),
                  "%s", s.last);
        cr_assert_null(strstr(s.last, "Expect:"), "no 100-continue round trip");
        cr_assert_eq(vm_api_set_paused(a, true, &e), 0);
        cr_assert(strstr(s.last, "PATCH /vm HTTP/1.1"), "%s", s.last);
        cr_assert_eq(vm_api_action(a, "InstanceStart", &e), 0);
        cr_assert_eq(s.requests, 3);
        cr_assert_eq(s.connections, 1, "keep-alive");
        vm_api_free(a);
}

Test(vm_api, idle_drops_the_connection_until_the_next_request)
{
        static struct server s;  /* outlives the test: serve() never stops */
        server_start(&s, R204);
        vm_api *a;
        cr_assert_eq(vm_api_new(sock, 1000, &a), 0);
        struct ha_err e = { { 0 } };
        vm_api_idle(a);         /* nothing to drop yet */
        cr_assert_eq(vm_api_action(a, "InstanceStart", &e), 0, "%s", e.msg);
        vm_api_idle(a);
        cr_assert_eq(vm_api_action(a, "InstanceStart", &e), 0, "%s", e.msg);
        cr_assert_eq(s.requests, 2);
        cr_assert_eq(s.connections, 2, "a new connection after idle");
        vm_api_free(a);
}

Test(vm_api, fault_message_becomes_the_error_text)
{
        static struct server s;  /* outlives the test: serve() never stops */
        server_start(&s, canned("400 Bad Request", "{\"fault_message\":\"Invalid ELF magic number "
                                                   "\\\"bz\\\" in kernel image\"}"));
        vm_api *a;
        cr_assert_eq(vm_api_new(sock, 1000, &a), 0);
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_api_put_boot_source(a, "/k", "console=ttyS0", &e), -EINVAL);
        cr_assert_str_eq(e.msg, "firecracker PUT /boot-source: 400: Invalid ELF magic number "
                                "\"bz\" in kernel image");
        vm_api_free(a);
}

Test(vm_api, wrong_phase_fault_is_ebusy)
{
        static struct server s;  /* outlives the test: serve() never stops */
        server_start(&s, canned("400 Bad Request",
                                "{\"fault_message\":\"The requested operation is not supported "
                                "before starting the microVM.\"}"));
        vm_api *a;
        cr_assert_eq(vm_api_new(sock, 1000, &a), 0);
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_api_set_paused(a, true, &e), -EBUSY, "%s", e.msg);
        cr_assert(strstr(e.msg, "PATCH /vm: 400: The requested operation is not supported"),
                  "%s", e.msg);
        vm_api_free(a);
}

Test(vm_api, non_json_error_body_is_quoted_sanitised)
{
        static struct server s;  /* outlives the test: serve() never stops */
        server_start(&s, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 9\r\n\r\n"
                         "oops\x01\nbad");
        vm_api *a;
        cr_assert_eq(vm_api_new(sock, 1000, &a), 0);
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_api_action(a, "InstanceStart", &e), -EIO);
        cr_assert_str_eq(e.msg, "firecracker PUT /actions: 500: oops  bad");
        vm_api_free(a);
}

Test(vm_api, hung_vmm_gives_etimedout_in_time)
{
        static struct server s;  /* outlives the test: serve() never stops */
        server_start(&s, NULL);
        vm_api *a;
        cr_assert_eq(vm_api_new(sock, 300, &a), 0);
        struct ha_err e = { { 0 } };
        uint64_t t0 = ha_now_ms();
        cr_assert_eq(vm_api_action(a, "InstanceStart", &e), -ETIMEDOUT, "%s", e.msg);
        uint64_t dt = ha_now_ms() - t0;
        cr_assert_geq(dt, 250);
        cr_assert_lt(dt, 2000);
        cr_assert(strstr(e.msg, "firecracker PUT /actions"), "%s", e.msg);
        vm_api_free(a);
}

Test(vm_api, no_listener_is_econnrefused)
{
        vm_api *a;
        cr_assert_eq(vm_api_new(sock, 300, &a), 0);
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_api_action(a, "InstanceStart", &e), -ECONNREFUSED, "%s", e.msg);
        vm_api_free(a);
}

Test(vm_api, oversized_response_is_emsgsize)
{
        static char resp[VM_API_RESP_MAX + 4096];
        int n = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
                         VM_API_RESP_MAX + 1000);
        memset(resp + n, 'x', VM_API_RESP_MAX + 1000);
        resp[n + VM_API_RESP_MAX + 1000] = '\0';
        static struct server s;  /* outlives the test: serve() never stops */
        server_start(&s, resp);
        vm_api *a;
        cr_assert_eq(vm_api_new(sock, 1000, &a), 0);
        struct ha_err e = { { 0 } };
        char state[16];
        cr_assert_eq(vm_api_get_state(a, state, sizeof state, &e), -EMSGSIZE, "%s", e.msg);
        vm_api_free(a);
}

Test(vm_api, get_state_reads_the_instance_info)
{
        static struct server s;  /* outlives the test: serve() never stops */
        server_start(&s, canned("200 OK", "{\"id\":\"a\",\"state\":\"Paused\","
                                          "\"vmm_version\":\"1.16.1\",\"app_name\":\"x\"}"));
        vm_api *a;
        cr_assert_eq(vm_api_new(sock, 1000, &a), 0);
        struct ha_err e = { { 0 } };
        char state[16];
        cr_assert_eq(vm_api_get_state(a, state, sizeof state, &e), 0, "%s", e.msg);
        cr_assert_str_eq(state, "Paused");
        cr_assert(strstr(s.last, "GET / HTTP/1.1"), "%s", s.last);
        vm_api_free(a);
}

Test(vm_api, rejects_bad_ids_and_values_before_sending)
{
        vm_api *a;
        cr_assert_eq(vm_api_new(sock, 300, &a), 0);
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_api_put_drive(a, "root-fs", "/x", true, false, &e), -EINVAL);
        cr_assert_eq(vm_api_put_network_interface(a, "eth/0", "tap0", NULL, &e), -EINVAL);
        cr_assert_eq(vm_api_put_vsock(a, 2, "/v", &e), -EINVAL);
        struct vm_machine_cfg m = { .vcpu_count = 33, .mem_size_mib = 128 };
        cr_assert_eq(vm_api_put_machine_config(a, &m, &e), -EINVAL);
        char big[VM_JSON_BODY_MAX + 1];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        cr_assert_eq(vm_api_put_boot_source(a, "/k", big, &e), -EMSGSIZE);
        vm_api_free(a);

        char longp[200];
        memset(longp, 'x', sizeof longp - 1);
        longp[sizeof longp - 1] = '\0';
        cr_assert_eq(vm_api_new(longp, 300, &a), -ENAMETOOLONG);
}

Test(vm_api, status_mapping_table)
{
        cr_assert_eq(vm_api_status_errno(204, NULL), 0);
        cr_assert_eq(vm_api_status_errno(200, NULL), 0);
        cr_assert_eq(vm_api_status_errno(400, "Invalid drive"), -EINVAL);
        cr_assert_eq(vm_api_status_errno(400, "The requested operation is not supported after "
                                              "starting the microVM."),
                     -EBUSY);
        cr_assert_eq(vm_api_status_errno(404, NULL), -ENOENT);
        cr_assert_eq(vm_api_status_errno(413, NULL), -EMSGSIZE);
        cr_assert_eq(vm_api_status_errno(500, NULL), -EIO);
        cr_assert_eq(vm_api_status_errno(302, NULL), -EIO);
}
