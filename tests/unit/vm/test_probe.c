/*
 * Tests of vm/probe.c with scripted stand-ins and, when built, fcsim.
 */
#include "core/time.h"
#include "fctest.h"
#include "vm/probe.h"

static char tdir[64];

static void setup(void)
{
        fct_mkdtemp(tdir, sizeof tdir);
}

static void teardown(void)
{
        fct_rmrf(tdir);
}

TestSuite(vm_probe, .init = setup, .fini = teardown, .timeout = 30);

static void script(const char *name, const char *body, char *ret, size_t size)
{
        snprintf(ret, size, "%s/%s", tdir, name);
        char text[512];
        snprintf(text, sizeof text, "#!/bin/sh\n%s\n", body);
        fct_write(ret, text, 0755);
}

Test(vm_probe, real_firecracker_banner)
{
        char bin[128];
        script("fc", "echo 'Firecracker v1.16.1'; echo; echo 'Supported snapshot data format versions: v8.0.0'",
               bin, sizeof bin);
        struct vm_vmm_info info;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_vmm_probe(bin, &info, &e), 0, "%s", e.msg);
        cr_assert_str_eq(info.version, "1.16.1");
        cr_assert_not(info.simulator);
        cr_assert(info.memory_snapshots);
}

Test(vm_probe, simulator_is_recognised)
{
        char bin[128];
        script("sim", "echo 'Firecracker v1.16.1'; echo 'fcsim: namespace simulator; snapshots are "
                      "filesystem-only'",
               bin, sizeof bin);
        struct vm_vmm_info info;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_vmm_probe(bin, &info, &e), 0, "%s", e.msg);
        cr_assert(info.simulator);
        cr_assert_not(info.memory_snapshots);
        cr_assert_str_eq(info.banner, "Firecracker v1.16.1|fcsim: namespace simulator; snapshots "
                                      "are filesystem-only");

        const char *b = getenv("HA_BINARY_DIR");
        char fcsim[512];
        snprintf(fcsim, sizeof fcsim, "%s/tools/fcsim/fcsim", b ? b : ".");
        if (access(fcsim, X_OK) == 0) {
                cr_assert_eq(vm_vmm_probe(fcsim, &info, &e), 0, "%s", e.msg);
                cr_assert(info.simulator, "the real fcsim: %s", info.banner);
                cr_assert_str_eq(info.version, "1.16.1");
        }
}

Test(vm_probe, not_a_firecracker_is_eproto)
{
        struct vm_vmm_info info;
        struct ha_err e = { { 0 } };
        cr_assert_eq(vm_vmm_probe("/bin/false", &info, &e), -EPROTO);
        char bin[128];
        script("other", "echo hello", bin, sizeof bin);
        cr_assert_eq(vm_vmm_probe(bin, &info, &e), -EPROTO);
        cr_assert(strstr(e.msg, "said \"hello\""), "%s", e.msg);
        cr_assert_eq(vm_vmm_probe("/nonexistent/fc", &info, &e), -ENOENT);
}

Test(vm_probe, a_hanging_binary_times_out_and_is_killed)
{
        char bin[128], pidf[128], body[256];
        snprintf(pidf, sizeof pidf, "%s/pid", tdir);
        snprintf(body, sizeof body, "echo $$ > %s; exec /bin/sleep 600", pidf);
        script("hang", body, bin, sizeof bin);
        struct vm_vmm_info info;
        struct ha_err e = { { 0 } };
        uint64_t t0 = ha_now_ms();
        cr_assert_eq(vm_vmm_probe(bin, &info, &e), -ETIMEDOUT);
        cr_assert_lt(ha_now_ms() - t0, VM_PROBE_TIMEOUT_MS + 2000);
        char buf[32] = "";
        int fd = open(pidf, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_gt(read(fd, buf, sizeof buf - 1), 0);
        close(fd);
        cr_assert(fct_pid_gone((pid_t)atoi(buf)));
}
