/*
 * Allocation failure injection (nghttp2's failmalloc idea): the executable
 * is linked with --wrap for malloc/calloc/realloc/strdup, so every
 * allocation made by our code (ha_vm, ha_core) can be failed in turn. Each
 * scenario is rerun failing its 1st, 2nd, ... allocation; every run must
 * either succeed or fail cleanly with -ENOMEM / another -errno, and leave no
 * process behind (ASan builds also catch leaks and double frees).
 */
#include "fctest.h"
#include "vm/vm.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static int fail_at;     /* 0: never */
static int calls;

static bool fail_now(void)
{
        return fail_at && ++calls == fail_at;
}

void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return fail_now() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fail_now() ? NULL : __real_strdup(s); }

static void arm(int n)
{
        calls = 0;
        fail_at = n;
}

static char tdir[64], run_dir[128], kernel[128], rootfs[128];

static void setup(void)
{
        fct_mkdtemp(tdir, sizeof tdir);
        snprintf(run_dir, sizeof run_dir, "%s/run", tdir);
        snprintf(kernel, sizeof kernel, "%s/vmlinux", tdir);
        snprintf(rootfs, sizeof rootfs, "%s/rootfs.ext4", tdir);
        fct_write(kernel, "k", 0644);
        fct_write(rootfs, "r", 0600);
}

static void teardown(void)
{
        arm(0);
        fct_rmrf(tdir);
}

/* Criterion runs no .fini after a skip: clean up first. */
#define skip_test(...)                          \
        do {                                    \
                teardown();                     \
                cr_skip_test(__VA_ARGS__);      \
        } while (0)

TestSuite(vm_alloc, .init = setup, .fini = teardown, .timeout = 120);

Test(vm_alloc, create_survives_every_failed_allocation)
{
        struct vm_config c = { .firecracker_bin = "/bin/true", .kernel_path = kernel,
                               .run_dir = run_dir };
        struct vm_spec s = { .id = "a1", .rootfs_path = rootfs, .tap_name = "tap0",
                             .guest_mac = "06:00:00:00:00:01", .ip_arg = "ip=10.0.0.2" };
        int ok = 0;
        for (int n = 1; n <= 40; n++) {
                vm *v = NULL;
                struct ha_err e = { { 0 } };
                arm(n);
                int r = vm_create(&c, &s, &v, &e);
                arm(0);
                if (r == 0) {
                        ok++;
                        vm_free(v);
                } else {
                        cr_assert_eq(r, -ENOMEM, "failing allocation %d gave %d (%s)", n, r,
                                     e.msg);
                }
        }
        cr_assert_gt(ok, 0, "the allocations ran out before 40: scenario too short");
}

Test(vm_alloc, start_pause_stop_survive_every_failed_allocation)
{
        if (geteuid() != 0)
                skip_test("needs root: mount namespace");
        char bin[256];
        fct_wrapper(tdir, "ok", bin, sizeof bin);
        struct vm_config c = { .firecracker_bin = bin, .kernel_path = kernel, .run_dir = run_dir,
                               .stop_timeout_ms = 200 };
        struct vm_spec s = { .id = "a2", .rootfs_path = rootfs, .tap_name = "tap0" };
        int failures = 0, total = 0;
        for (int n = 1; n <= 80; n++) {
                vm *v = NULL;
                struct ha_err e = { { 0 } };
                arm(n);
                int r = vm_start(&c, &s, &v, &e);
                if (r == 0) {
                        r = vm_pause(v, &e);
                        struct ha_err e2;
                        cr_assert_eq(vm_stop(v, &e2), 0, "stop after allocation %d: %s", n,
                                     e2.msg);
                        vm_free(v);
                }
                arm(0);
                total++;
                if (r < 0) {
                        failures++;
                        cr_assert_neq(r, 0);
                }
                cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "allocation %d left a VMM (%s)",
                             n, e.msg);
                char d[256];
                snprintf(d, sizeof d, "%s/a2", run_dir);
                cr_assert_eq(access(d, F_OK), -1, "allocation %d left the run dir", n);
        }
        cr_assert_gt(failures, 0, "no allocation was failed: the wrap is not active");
        cr_assert_lt(failures, total, "every run failed: the scenario never completes");
}
