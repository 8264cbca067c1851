/*
 * Tests of src/sandbox/mgr.c: read-only views (get, list with filters, host
 * info), configuration checks.
 */
#include "helpers.h"

static void create_md(struct fix *x, const char *id, const char *team, const char *app)
{
        struct sbx_kv md[] = { { "team", (char *)team }, { "app", (char *)app } };
        struct sbx_spec s = spec_of(id, "base");
        s.metadata = (struct sbx_map){ md, 2 };
        cr_assert_eq(sbx_mgr_create(x->m, &s, NULL, NULL, NULL), 0);
}

Test(sbx_mgr, list_filters_by_state_and_metadata_sorted_by_id)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        create_md(&x, "c", "red", "web");
        create_md(&x, "a", "red", "db");
        create_md(&x, "b", "blue", "web");
        cr_assert_eq(sbx_mgr_pause(x.m, "b", false, NULL, NULL, NULL), 0);

        struct sbx_record *recs;
        size_t n;
        cr_assert_eq(sbx_mgr_list(x.m, NULL, &recs, &n), 0);
        cr_assert_eq(n, 3);
        cr_assert_str_eq(recs[0].id, "a");
        cr_assert_str_eq(recs[1].id, "b");
        cr_assert_str_eq(recs[2].id, "c");
        sbx_records_free(recs, n);

        enum sbx_state running = SBX_STATE_RUNNING;
        struct sbx_filter f = { .states = &running, .n_states = 1 };
        cr_assert_eq(sbx_mgr_list(x.m, &f, &recs, &n), 0);
        cr_assert_eq(n, 2);
        sbx_records_free(recs, n);

        struct sbx_kv want[] = { { "team", "red" } };
        struct sbx_map wm = { want, 1 };
        f = (struct sbx_filter){ .metadata = &wm };
        cr_assert_eq(sbx_mgr_list(x.m, &f, &recs, &n), 0);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(recs[0].id, "a");
        cr_assert_str_eq(recs[1].id, "c");
        sbx_records_free(recs, n);

        struct sbx_kv want2[] = { { "team", "red" }, { "app", "web" } };
        struct sbx_map wm2 = { want2, 2 };
        enum sbx_state both[] = { SBX_STATE_PAUSED, SBX_STATE_RUNNING };
        f = (struct sbx_filter){ .states = both, .n_states = 2, .metadata = &wm2 };
        cr_assert_eq(sbx_mgr_list(x.m, &f, &recs, &n), 0);
        cr_assert_eq(n, 1);
        cr_assert_str_eq(recs[0].id, "c");
        sbx_records_free(recs, n);

        enum sbx_state failed = SBX_STATE_FAILED;
        f = (struct sbx_filter){ .states = &failed, .n_states = 1 };
        cr_assert_eq(sbx_mgr_list(x.m, &f, &recs, &n), 0);
        cr_assert_eq(n, 0);
        sbx_records_free(recs, n);
        fix_done(&x);
}

Test(sbx_mgr, get_validates_and_reports_not_found)
{
        struct fix x;
        fix_init(&x, false);
        fix_open(&x);
        struct sbx_record rec;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_mgr_get(x.m, "../etc", &rec, &e), -EINVAL);
        cr_assert_eq(sbx_mgr_get(x.m, NULL, &rec, &e), -EINVAL);
        cr_assert_eq(sbx_mgr_get(x.m, "nobody", &rec, &e), -ENOENT);
        cr_assert_str_eq(e.msg, "sandbox nobody not found");
        cr_assert_eq(sbx_mgr_destroy(x.m, "nobody", NULL, &e), -ENOENT);
        char small[4];
        create_ok(&x, "v");
        cr_assert_eq(sbx_mgr_vsock_path(x.m, "v", small, sizeof small, &e), -ENAMETOOLONG);
        fix_done(&x);
}

Test(sbx_mgr, host_info_reports_budgets_after_overcommit)
{
        struct fix x;
        fix_init(&x, false);
        x.cfg.host_vcpus = 8;
        x.cfg.cpu_overcommit = 4.0;
        x.cfg.host_memory_mib = 16384;
        x.cfg.mem_overcommit = 1.5;
        x.cfg.max_sandboxes = 100;
        x.cfg.slots = 120;
        fix_open(&x);
        struct sbx_host_info hi;
        sbx_mgr_host_info(x.m, &hi);
        cr_assert_eq(hi.capacity.sandboxes, 100);
        cr_assert_eq(hi.capacity.slots, 120);
        cr_assert_eq(hi.capacity.vcpus, 32);
        cr_assert_eq(hi.capacity.memory_mib, 24576);
        cr_assert_eq(hi.usage.sandboxes, 0);
        cr_assert(hi.ready);
        create_ok(&x, "h");
        sbx_mgr_host_info(x.m, &hi);
        cr_assert_eq(hi.usage.sandboxes, 1);
        cr_assert_eq(hi.usage.slots, 1);
        cr_assert_eq(hi.usage.vcpus, 1);
        cr_assert_eq(hi.usage.memory_mib, 256);
        cr_assert_eq(hi.running, 1);
        fix_done(&x);
}

Test(sbx_mgr, rejects_bad_configuration)
{
        struct fix x;
        fix_init(&x, false);
        sbx_mgr *m = NULL;
        struct ha_err e = { { 0 } };
        struct sbx_config c = x.cfg;
        c.state_dir = NULL;
        cr_assert_eq(sbx_mgr_new(&c, &x.be, &m, &e), -EINVAL);
        c = x.cfg;
        c.default_ttl_s = c.max_ttl_s + 1;
        cr_assert_eq(sbx_mgr_new(&c, &x.be, &m, &e), -EINVAL);
        struct sbx_backend be = x.be;
        be.vmm_adopt = NULL;
        cr_assert_eq(sbx_mgr_new(&x.cfg, &be, &m, &e), -EINVAL);
        cr_assert_str_eq(e.msg, "sandbox manager: backend table is incomplete");
        c = x.cfg;
        c.state_dir = "/proc/no/such/dir";
        cr_assert_lt(sbx_mgr_new(&c, &x.be, &m, &e), 0);
        cr_assert(strstr(e.msg, "/proc/no/such/dir"), "%s", e.msg);
        fix_done(&x);
}
