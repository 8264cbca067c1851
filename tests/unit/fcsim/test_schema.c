/* Tests tools/fcsim/schema.c and config.c: Firecracker's JSON strictness
 * and semantic rules. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "schema.h"

static int check(const char *body, const struct fcsim_schema *s, struct ha_err *err)
{
        cJSON *j = NULL;
        int r = fcsim_json_parse(body, strlen(body), &j, err);
        if (r == 0)
                r = fcsim_schema_check(j, s, err);
        cJSON_Delete(j);
        return r;
}

Test(fcsim_schema, accepts_a_full_drive)
{
        struct ha_err err = { "" };
        cr_assert_eq(check("{\"drive_id\":\"rootfs\",\"path_on_host\":\"/x\",\"is_root_device\":true,"
                           "\"is_read_only\":false,\"cache_type\":\"Writeback\",\"io_engine\":\"Sync\","
                           "\"rate_limiter\":{\"bandwidth\":{\"size\":1,\"refill_time\":2}}}",
                           &fcsim_schema_drive, &err), 0, "%s", err.msg);
}

Test(fcsim_schema, rejects_unknown_duplicate_and_missing_fields)
{
        struct ha_err err;
        cr_assert_eq(check("{\"drive_id\":\"a\",\"is_root_device\":true,\"bogus\":1}", &fcsim_schema_drive,
                           &err), -EINVAL);
        cr_assert(strstr(err.msg, "unknown field `bogus`") != NULL, "%s", err.msg);
        cr_assert_eq(check("{\"drive_id\":\"a\",\"drive_id\":\"b\",\"is_root_device\":true}",
                           &fcsim_schema_drive, &err), -EINVAL);
        cr_assert(strstr(err.msg, "duplicate field") != NULL);
        cr_assert_eq(check("{\"drive_id\":\"a\"}", &fcsim_schema_drive, &err), -EINVAL);
        cr_assert_str_eq(err.msg, "missing field `is_root_device`");
        cr_assert_eq(check("{\"bandwidth\":1}", &fcsim_schema_vsock, &err), -EINVAL);
}

Test(fcsim_schema, checks_types_enums_and_integer_widths)
{
        struct ha_err err;
        cr_assert_eq(check("{\"vcpu_count\":\"2\",\"mem_size_mib\":1}", &fcsim_schema_machine_config, &err),
                     -EINVAL);
        cr_assert(strstr(err.msg, "expected u8") != NULL, "%s", err.msg);
        cr_assert_eq(check("{\"vcpu_count\":256,\"mem_size_mib\":1}", &fcsim_schema_machine_config, &err),
                     -EINVAL);
        cr_assert_eq(check("{\"vcpu_count\":1.5,\"mem_size_mib\":1}", &fcsim_schema_machine_config, &err),
                     -EINVAL);
        cr_assert_eq(check("{\"vcpu_count\":-1,\"mem_size_mib\":1}", &fcsim_schema_machine_config, &err),
                     -EINVAL);
        cr_assert_eq(check("{\"action_type\":\"Reboot\"}", &fcsim_schema_action, &err), -EINVAL);
        cr_assert(strstr(err.msg, "unknown variant `Reboot`") != NULL);
        cr_assert_eq(check("{\"state\":\"paused\"}", &fcsim_schema_vm, &err), -EINVAL);
        /* The logger level is the one case-insensitive enum. */
        cr_assert_eq(check("{\"level\":\"debug\"}", &fcsim_schema_logger, &err), 0);
        cr_assert_eq(check("[1]", &fcsim_schema_logger, &err), -EINVAL);
        cr_assert_eq(check("{\"level\":\"Info\"} x", &fcsim_schema_logger, &err), -EINVAL);
        cr_assert_eq(check("{\"guest_cid\":4294967296,\"uds_path\":\"/x\"}", &fcsim_schema_vsock, &err),
                     -EINVAL);
}

Test(fcsim_schema, checks_nested_snapshot_load_objects)
{
        struct ha_err err;
        cr_assert_eq(check("{\"snapshot_path\":\"s\",\"mem_backend\":{\"backend_type\":\"File\","
                           "\"backend_path\":\"m\"},\"network_overrides\":[{\"iface_id\":\"eth0\","
                           "\"host_dev_name\":\"tap1\"}],\"vsock_override\":{\"uds_path\":\"/v\"}}",
                           &fcsim_schema_snapshot_load, &err), 0, "%s", err.msg);
        cr_assert_eq(check("{\"snapshot_path\":\"s\",\"network_overrides\":[{\"iface_id\":\"e\"}]}",
                           &fcsim_schema_snapshot_load, &err), -EINVAL);
        cr_assert_str_eq(err.msg, "missing field `host_dev_name`");
}

static int machine(const char *body, struct fcsim_machine *m, bool patch, struct ha_err *err)
{
        cJSON *j = NULL;
        cr_assert_eq(fcsim_json_parse(body, strlen(body), &j, err), 0);
        int r = fcsim_config_parse_machine(m, j, patch, err);
        cJSON_Delete(j);
        return r;
}

Test(fcsim_config, machine_config_rules)
{
        struct fcsim_config c;
        struct ha_err err;
        fcsim_config_init(&c);
        cr_assert_eq(c.machine.vcpu_count, 1);
        cr_assert_eq(c.machine.mem_size_mib, 128);
        cr_assert_eq(machine("{\"vcpu_count\":2,\"mem_size_mib\":512}", &c.machine, false, &err), 0);
        cr_assert_eq(machine("{\"vcpu_count\":33,\"mem_size_mib\":512}", &c.machine, false, &err), -EINVAL);
        cr_assert_eq(machine("{\"vcpu_count\":0,\"mem_size_mib\":512}", &c.machine, false, &err), -EINVAL);
        cr_assert_eq(machine("{\"vcpu_count\":3,\"mem_size_mib\":512,\"smt\":true}", &c.machine, false, &err),
                     -EINVAL);
        cr_assert_eq(machine("{\"vcpu_count\":1,\"mem_size_mib\":0}", &c.machine, false, &err), -EINVAL);
        cr_assert_eq(c.machine.vcpu_count, 2, "a failed PUT must not change the config");
        cr_assert_eq(machine("{\"mem_size_mib\":1024}", &c.machine, true, &err), 0);
        cr_assert_eq(c.machine.vcpu_count, 2);
        cr_assert_eq(c.machine.mem_size_mib, 1024);
}

Test(fcsim_config, ids_and_macs)
{
        uint8_t mac[6];
        cr_assert(fcsim_id_is_valid("rootfs_1"));
        cr_assert_not(fcsim_id_is_valid("root-fs"));
        cr_assert_not(fcsim_id_is_valid(""));
        cr_assert_eq(fcsim_mac_parse("06:00:AC:10:00:02", mac), 0);
        cr_assert_eq(mac[2], 0xac);
        cr_assert_eq(mac[5], 0x02);
        cr_assert_eq(fcsim_mac_parse("06:00:AC:10:00", mac), -EINVAL);
        cr_assert_eq(fcsim_mac_parse("06-00-AC-10-00-02", mac), -EINVAL);
}

Test(fcsim_config, json_round_trip)
{
        struct fcsim_config c, back;
        struct ha_err err = { "" };
        fcsim_config_init(&c);
        c.machine.vcpu_count = 2;
        c.n_nets = 1;
        snprintf(c.nets[0].id, sizeof c.nets[0].id, "eth0");
        snprintf(c.nets[0].host_dev_name, sizeof c.nets[0].host_dev_name, "tap0");
        c.nets[0].has_mac = true;
        memcpy(c.nets[0].mac, "\x06\x00\xac\x10\x00\x02", 6);
        c.vsock.set = true;
        c.vsock.guest_cid = 3;
        snprintf(c.vsock.uds_path, sizeof c.vsock.uds_path, "/tmp/v.sock");
        cJSON *j = fcsim_config_to_json(&c);
        cr_assert_not_null(j);
        cr_assert_eq(fcsim_config_from_json(&back, j, &err), 0, "%s", err.msg);
        cJSON_Delete(j);
        cr_assert_eq(back.machine.vcpu_count, 2);
        cr_assert_eq(back.n_nets, 1);
        cr_assert_str_eq(back.nets[0].host_dev_name, "tap0");
        cr_assert_eq(memcmp(back.nets[0].mac, c.nets[0].mac, 6), 0);
        cr_assert_eq(back.nets[0].tap_fd, -1);
        cr_assert_str_eq(back.vsock.uds_path, "/tmp/v.sock");
}
