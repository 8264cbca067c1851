/*
 * Tests of src/sandbox/admit.c: sandbox, vCPU and memory budgets with
 * overcommit, per-sandbox limits, and host usage reporting.
 */
#include <pthread.h>

#include "helpers.h"

static int create_sized(struct fix *x, const char *id, uint32_t vcpus, uint32_t mem,
                        struct ha_err *e)
{
        struct sbx_spec s = spec_of(id, "base");
        s.vcpus = vcpus;
        s.memory_mib = mem;
        struct sbx_record rec;
        int r = sbx_mgr_create(x->m, &s, NULL, &rec, e);
        if (r == 0)
                sbx_record_done(&rec);
        return r;
}

Test(sbx_admit, max_sandboxes_is_resource_exhausted_with_numbers)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.max_sandboxes = 3;
        fix_open(&x);
        struct ha_err e = { { 0 } };
        create_ok(&x, "a");
        create_ok(&x, "b");
        create_ok(&x, "c");
        cr_assert_eq(create_sized(&x, "d", 0, 0, &e), -EAGAIN);
        cr_assert_str_eq(e.msg, "sandbox limit reached: 3 of 3 sandboxes in use");
        cr_assert_eq(fake_calls(x.f, FAKE_NET_ACQUIRE), 3, "refused before acquiring");
        cr_assert_eq(sbx_mgr_destroy(x.m, "b", NULL, NULL), 0);
        cr_assert_eq(create_sized(&x, "d", 0, 0, &e), 0, "%s", e.msg);
        fix_done(&x);
}

Test(sbx_admit, vcpu_budget_uses_the_overcommit_ratio)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.host_vcpus = 4;
        x.cfg.cpu_overcommit = 2.0;
        fix_open(&x);
        struct ha_err e = { { 0 } };
        cr_assert_eq(create_sized(&x, "a", 2, 0, &e), 0);
        cr_assert_eq(create_sized(&x, "b", 2, 0, &e), 0);
        cr_assert_eq(create_sized(&x, "c", 2, 0, &e), 0);
        cr_assert_eq(create_sized(&x, "d", 4, 0, &e), -EAGAIN);
        cr_assert_str_eq(e.msg, "not enough vCPUs: requested 4, 6 of 8 in use (overcommit 2.00)");
        cr_assert_eq(create_sized(&x, "d", 2, 0, &e), 0);
        struct sbx_host_info hi;
        sbx_mgr_host_info(x.m, &hi);
        cr_assert_eq(hi.capacity.vcpus, 8);
        cr_assert_eq(hi.usage.vcpus, 8);
        cr_assert_eq(hi.usage.sandboxes, 4);
        cr_assert_eq(hi.usage.slots, 4);
        cr_assert_eq(hi.running, 4);
        cr_assert(hi.ready);
        fix_done(&x);
}

Test(sbx_admit, memory_budget_and_release_on_destroy_and_failure)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.host_memory_mib = 1024;
        x.cfg.mem_overcommit = 1.0;
        fix_open(&x);
        struct ha_err e = { { 0 } };
        cr_assert_eq(create_sized(&x, "a", 1, 512, &e), 0);
        cr_assert_eq(create_sized(&x, "b", 1, 512, &e), 0);
        cr_assert_eq(create_sized(&x, "c", 1, 256, &e), -EAGAIN);
        cr_assert_str_eq(e.msg,
                         "not enough memory: requested 256 MiB, 1024 of 1024 MiB in use (overcommit 1.00)");
        /* a paused sandbox keeps its share */
        struct sbx_record rec;
        cr_assert_eq(sbx_mgr_pause(x.m, "a", true, NULL, &rec, NULL), 0);
        sbx_record_done(&rec);
        cr_assert_eq(create_sized(&x, "c", 1, 256, &e), -EAGAIN);
        /* a failed one does not */
        fake_kill_vmm(x.f, "b", true);
        cr_assert(wait_state(&x, "b", SBX_STATE_FAILED, 2000));
        cr_assert_eq(create_sized(&x, "c", 1, 256, &e), 0, "%s", e.msg);
        cr_assert_eq(sbx_mgr_destroy(x.m, "a", NULL, NULL), 0);
        cr_assert_eq(create_sized(&x, "d", 1, 512, &e), 0, "%s", e.msg);
        struct sbx_host_info hi;
        sbx_mgr_host_info(x.m, &hi);
        cr_assert_eq(hi.usage.memory_mib, 768);
        cr_assert_eq(hi.failed, 1);
        fix_done(&x);
}

Test(sbx_admit, per_sandbox_limits_are_invalid_argument)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.max_vcpus = 4;
        x.cfg.max_memory_mib = 2048;
        x.cfg.min_memory_mib = 128;
        fix_open(&x);
        struct ha_err e = { { 0 } };
        cr_assert_eq(create_sized(&x, "a", 5, 0, &e), -EINVAL);
        cr_assert_str_eq(e.msg, "vcpus 5 above the per-sandbox maximum 4");
        cr_assert_eq(create_sized(&x, "a", 1, 4096, &e), -EINVAL);
        cr_assert_str_eq(e.msg, "memory_mib 4096 above the per-sandbox maximum 2048");
        cr_assert_eq(create_sized(&x, "a", 1, 64, &e), -EINVAL);
        cr_assert_str_eq(e.msg, "memory_mib 64 below the per-sandbox minimum 128");
        cr_assert_eq(create_sized(&x, "a", 4, 2048, &e), 0);
        cr_assert_eq(fake_calls(x.f, FAKE_NET_ACQUIRE), 1);
        fix_done(&x);
}

struct racer {
        struct fix *x;
        int i;
        int r;
};

static void *race_create(void *p)
{
        struct racer *a = p;
        char id[16];
        snprintf(id, sizeof id, "r%d", a->i);
        a->r = create_sized(a->x, id, 1, 0, NULL);
        return NULL;
}

Test(sbx_admit, concurrent_creates_never_overshoot)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.max_sandboxes = 10;
        fix_open(&x);
        fake_delay(x.f, FAKE_VMM_WAIT_READY, 20);
        pthread_t t[32];
        struct racer a[32];
        for (int i = 0; i < 32; i++) {
                a[i] = (struct racer){ &x, i, 1 };
                pthread_create(&t[i], NULL, race_create, &a[i]);
        }
        int ok = 0, full = 0;
        for (int i = 0; i < 32; i++) {
                pthread_join(t[i], NULL);
                ok += a[i].r == 0;
                full += a[i].r == -EAGAIN;
        }
        cr_assert_eq(ok, 10);
        cr_assert_eq(full, 22);
        int net, rootfs, vmm;
        fake_live(x.f, &net, &rootfs, &vmm);
        cr_assert_eq(vmm, 10);
        fix_done(&x);
}
