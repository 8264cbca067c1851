/* Tests tools/fcsim/api.c (routing and Firecracker's rules) without a
 * socket or a guest: requests go straight to fcsim_api_handle. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"

static struct fcsim_vm *vm;
static char dir[64], kernel[128];

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/fcsimu-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(kernel, sizeof kernel, "%s/vmlinux", dir);
        FILE *f = fopen(kernel, "w");
        fclose(f);
        vm = malloc(sizeof *vm);
        fcsim_vm_init(vm, "unit-vm");
}

static void teardown(void)
{
        fcsim_vm_done(vm);
        free(vm);
        unlink(kernel);
        rmdir(dir);
}

TestSuite(fcsim_api, .init = setup, .fini = teardown);

/* Sends |method path body|; returns the status and copies the body. */
static int call(const char *method, const char *path, const char *body, char *out, size_t cap)
{
        struct fcsim_http_req req;
        memset(&req, 0, sizeof req);
        snprintf(req.method_name, sizeof req.method_name, "%s", method);
        req.method = strcmp(method, "GET") == 0   ? FCSIM_GET
                     : strcmp(method, "PUT") == 0 ? FCSIM_PUT
                     : strcmp(method, "PATCH") == 0 ? FCSIM_PATCH
                                                    : FCSIM_OTHER;
        snprintf(req.path, sizeof req.path, "%s", path);
        req.body = body;
        req.body_len = body ? strlen(body) : 0;
        struct ha_buf b;
        ha_buf_init(&b, FCSIM_HTTP_BODY_MAX);
        int status = 0;
        cr_assert_eq(fcsim_api_handle(vm, &req, &status, &b), 0);
        if (out) {
                size_t n = b.len < cap - 1 ? b.len : cap - 1;
                memcpy(out, b.data, n);
                out[n] = '\0';
        }
        ha_buf_done(&b);
        return status;
}

static void expect_fault(const char *method, const char *path, const char *body, const char *msg)
{
        char out[1024];
        cr_assert_eq(call(method, path, body, out, sizeof out), 400, "%s %s", method, path);
        char want[1100];
        snprintf(want, sizeof want, "{\"fault_message\":\"%s\"}", msg);
        cr_assert_str_eq(out, want);
}

Test(fcsim_api, instance_info_and_unknown_routes)
{
        char out[512];
        cr_assert_eq(call("GET", "/", NULL, out, sizeof out), 200);
        cr_assert_str_eq(out, "{\"id\":\"unit-vm\",\"state\":\"Not started\",\"vmm_version\":\"1.16.1\","
                              "\"app_name\":\"Firecracker\"}");
        expect_fault("GET", "/nope", NULL, "Invalid request method and/or path: GET nope.");
        expect_fault("DELETE", "/", NULL, "Invalid request method and/or path: DELETE .");
        expect_fault("PUT", "/drives/a/b", "{}", "Invalid request method and/or path: PUT drives.");
        expect_fault("PUT", "/snapshot/other", "{}",
                     "Invalid request method and/or path: PUT snapshot.");
        expect_fault("GET", "/version", "{}", "GET request cannot have a body.");
        expect_fault("PUT", "/vsock", NULL, "Empty PUT request.");
        expect_fault("PATCH", "/vm", NULL, "Empty PATCH request.");
        cr_assert_eq(vm->api_requests, 8);
        cr_assert_eq(vm->api_errors, 7);
}

Test(fcsim_api, checks_ids_before_bodies_and_bodies_before_state)
{
        expect_fault("PUT", "/drives/bad-id", "not json",
                     "API Resource IDs can only contain alphanumeric characters and underscores.");
        expect_fault("PUT", "/drives/", "{}", "The ID cannot be empty.");
        char body[256];
        snprintf(body, sizeof body,
                 "{\"drive_id\":\"b\",\"path_on_host\":\"%s\",\"is_root_device\":false,"
                 "\"is_read_only\":true}", kernel);
        expect_fault("PUT", "/drives/a", body,
                     "The id from the path does not match the id from the body!");
        cr_assert_eq(call("PUT", "/drives/b", body, NULL, 0), 204);
        expect_fault("PATCH", "/vm", "{\"state\":\"Running\"}",
                     "An error occurred when deserializing the json body of a request: unknown "
                     "variant `Running`, expected one of `Paused`, `Resumed`.");
        expect_fault("PATCH", "/vm", "{\"state\":\"Paused\"}",
                     "The requested operation is not supported before starting the microVM.");
}

Test(fcsim_api, snapshot_load_only_on_a_fresh_instance)
{
        cr_assert_eq(call("PUT", "/logger", "{\"level\":\"Debug\"}", NULL, 0), 204);
        cr_assert_eq(call("PUT", "/logger", "{\"level\":\"Info\"}", NULL, 0), 204, "re-PUT is fine");
        char body[256];
        snprintf(body, sizeof body, "{\"kernel_image_path\":\"%s\",\"boot_args\":\"x\"}", kernel);
        cr_assert_eq(call("PUT", "/boot-source", body, NULL, 0), 204);
        expect_fault("PUT", "/snapshot/load", "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\"}",
                     "Loading a microVM snapshot not allowed after configuring boot-specific "
                     "resources.");
        cr_assert_not(vm->exit_requested);
        expect_fault("PUT", "/actions", "{\"action_type\":\"InstanceStart\"}",
                     "Cannot start microvm without a root block device: the simulator boots the "
                     "root drive's /sbin/init as the guest.");
}

Test(fcsim_api, failed_snapshot_load_ends_the_process)
{
        char out[512];
        cr_assert_eq(call("PUT", "/snapshot/load",
                          "{\"snapshot_path\":\"/nonexistent\",\"mem_file_path\":\"/nonexistent\"}",
                          out, sizeof out), 400);
        cr_assert(strstr(out, "Load snapshot error") != NULL, "%s", out);
        cr_assert(vm->exit_requested);
        cr_assert_eq(vm->exit_code, 1);
}

Test(fcsim_api, vm_config_reflects_the_configuration)
{
        char out[2048];
        cr_assert_eq(call("PUT", "/machine-config", "{\"vcpu_count\":2,\"mem_size_mib\":256,"
                                                    "\"smt\":true}", NULL, 0), 204);
        cr_assert_eq(call("GET", "/vm/config", NULL, out, sizeof out), 200);
        cr_assert(strstr(out, "\"vcpu_count\":2") != NULL, "%s", out);
        cr_assert(strstr(out, "\"smt\":true") != NULL, "%s", out);
        cr_assert(strstr(out, "\"drives\":[]") != NULL, "%s", out);
}
