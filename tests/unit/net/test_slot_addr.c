/* test_slot_addr.c - pure naming, addressing and config validation. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "net/slot_addr.h"

static struct net_config cfg(void)
{
        struct net_config c;
        net_config_default(&c);
        return c;
}

Test(net_slot_addr, defaults_are_valid)
{
        struct net_config c = cfg();
        struct ha_err e;
        cr_assert_eq(net_config_validate(&c, &e), 0, "%s", e.msg);
        cr_assert_str_eq(c.prefix, "ha");
        cr_assert_eq(c.tap_uid, -1);
        cr_assert_eq(c.slots, 256);
        /* /16 of /31 pairs minus pair 0 */
        cr_assert_eq(net_config_max_slots(&c), 32767);
        c.veth_pair_len = 30;
        cr_assert_eq(net_config_max_slots(&c), 16383);
}

Test(net_slot_addr, slot_one_names_and_addresses)
{
        struct net_config c = cfg();
        struct net_slot_addr a;

        cr_assert_eq(net_slot_addr_make(&c, 1, &a), 0);
        cr_assert_str_eq(a.netns, "ha-1");
        cr_assert_str_eq(a.netns_path, "/run/netns/ha-1");
        cr_assert_str_eq(a.veth_host, "ha-h1");
        cr_assert_str_eq(a.veth_ns, "ha-n1");
        cr_assert_str_eq(a.tap, "tap0");
        cr_assert_str_eq(a.veth_host_ip_str, "10.12.0.2");
        cr_assert_str_eq(a.veth_ns_ip_str, "10.12.0.3");
        cr_assert_eq(a.veth_len, 31);
        cr_assert_str_eq(a.sandbox_ip_str, "10.11.0.1");
}

Test(net_slot_addr, slot_300_crosses_an_octet)
{
        struct net_config c = cfg();
        struct net_slot_addr a;

        c.slots = 1000;
        cr_assert_eq(net_slot_addr_make(&c, 300, &a), 0);
        cr_assert_str_eq(a.veth_host_ip_str, "10.12.2.88");
        cr_assert_str_eq(a.veth_ns_ip_str, "10.12.2.89");
        cr_assert_str_eq(a.sandbox_ip_str, "10.11.1.44");
}

Test(net_slot_addr, slash30_pairs_skip_network_and_broadcast)
{
        struct net_config c = cfg();
        struct net_slot_addr a;

        c.veth_pair_len = 30;
        cr_assert_eq(net_slot_addr_make(&c, 1, &a), 0);
        cr_assert_str_eq(a.veth_host_ip_str, "10.12.0.5");
        cr_assert_str_eq(a.veth_ns_ip_str, "10.12.0.6");
        cr_assert_eq(a.veth_len, 30);
}

Test(net_slot_addr, highest_slot_fits_names_and_ranges)
{
        struct net_config c = cfg();
        struct net_slot_addr a;
        struct ha_err e;

        memcpy(c.prefix, "abcdefgh", 9);           /* longest prefix */
        c.slots = net_config_max_slots(&c);
        cr_assert_eq(net_config_validate(&c, &e), 0, "%s", e.msg);
        cr_assert_eq(net_slot_addr_make(&c, c.slots, &a), 0);
        cr_assert_str_eq(a.netns, "abcdefgh-32767");
        cr_assert_str_eq(a.veth_host, "abcdefgh-h32767");
        cr_assert_eq(strlen(a.veth_host), 15);      /* IFNAMSIZ - 1 */
        cr_assert_str_eq(a.veth_ns, "abcdefgh-n32767");
        cr_assert_str_eq(a.veth_host_ip_str, "10.12.255.254");
        cr_assert_str_eq(a.veth_ns_ip_str, "10.12.255.255");
        cr_assert_str_eq(a.sandbox_ip_str, "10.11.127.255");
        cr_assert_eq(net_slot_addr_make(&c, c.slots + 1, &a), -ERANGE);
        cr_assert_eq(net_slot_addr_make(&c, 0, &a), -ERANGE);

        /* A sandbox /24 is the tighter limit: 254 usable addresses. */
        c.sandbox_range = (struct net_cidr){ 0x0a0b0500, 24 };
        cr_assert_eq(net_config_max_slots(&c), 254);
        c.slots = 254;
        cr_assert_eq(net_slot_addr_make(&c, 254, &a), 0);
        cr_assert_str_eq(a.sandbox_ip_str, "10.11.5.254");
}

Test(net_slot_addr, validation_rejects_bad_configs)
{
        struct net_config c;
        struct ha_err e;

        c = cfg(); memcpy(c.prefix, "Ha", 3);
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); memcpy(c.prefix, "h-a", 4);
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); memcpy(c.prefix, "abcdefghi", 9);  /* 9 chars, not terminated in 9 */
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); c.prefix[0] = '\0';
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); c.sandbox_range = (struct net_cidr){ 0x0a0c8000, 17 };  /* inside veth */
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        cr_assert(strstr(e.msg, "overlap"), "%s", e.msg);
        c = cfg(); c.veth_range = (struct net_cidr){ 0xa9fe0000, 16 };     /* 169.254/16 */
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); c.veth_range = (struct net_cidr){ 0x0a0c0001, 16 };     /* host bits */
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); c.veth_pair_len = 29;
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); c.slots = 0;
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); c.slots = 32768;
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); c.sandbox_range = (struct net_cidr){ 0x0a0b0000, 31 };
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); c.n_host_tcp_ports = 1; c.host_tcp_ports[0] = 0;
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); c.tap_uid = -2;
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
        c = cfg(); c.n_host_tcp_ports = NET_HOST_PORTS_MAX + 1;
        cr_assert_eq(net_config_validate(&c, &e), -EINVAL);
}

Test(net_slot_addr, cidr_parse_is_strict_and_canonical)
{
        struct net_cidr c;
        char buf[32];

        cr_assert_eq(net_cidr_parse("10.1.2.3/8", &c), 0);
        cr_assert_eq(c.addr, 0x0a000000);
        cr_assert_eq(c.len, 8);
        cr_assert_eq(net_cidr_format(&c, buf, sizeof buf), 0);
        cr_assert_str_eq(buf, "10.0.0.0/8");
        cr_assert_eq(net_cidr_parse("192.168.1.7", &c), 0);
        cr_assert_eq(c.len, 32);
        cr_assert_eq(net_cidr_parse("0.0.0.0/0", &c), 0);
        cr_assert_eq(c.len, 0);
        const char *bad[] = { "", "1.2.3", "1.2.3.4/33", "256.1.1.1", "01.2.3.4", "1.2.3.4/",
                              "1.2.3.4/08", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4/8;drop",
                              "1.2.3.-4", "1..2.3", "1.2.3.4.5", "a.b.c.d", "\"x\"" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                cr_assert_eq(net_cidr_parse(bad[i], &c), -EINVAL, "accepted '%s'", bad[i]);
        cr_assert_eq(net_cidr_parse(NULL, &c), -EINVAL);
        c = (struct net_cidr){ 0x0a000000, 8 };
        cr_assert_eq(net_cidr_format(&c, buf, 5), -ENOSPC);
}

Test(net_slot_addr, overlap_and_contains)
{
        struct net_cidr a = { 0x0a000000, 8 }, b = { 0x0a0b0000, 16 }, d = { 0x0b000000, 8 };
        cr_assert(net_cidr_overlaps(&a, &b));
        cr_assert(net_cidr_overlaps(&b, &a));
        cr_assert(!net_cidr_overlaps(&a, &d));
        cr_assert(net_cidr_contains(&b, 0x0a0b1234));
        cr_assert(!net_cidr_contains(&b, 0x0a0c0000));
}

Test(net_slot_addr, netns_names_parse_back)
{
        struct net_config c = cfg();
        cr_assert_eq(net_netns_name_parse(&c, "ha-1"), 1);
        cr_assert_eq(net_netns_name_parse(&c, "ha-65535"), 65535);
        cr_assert_eq(net_netns_name_parse(&c, "ha-65536"), -EINVAL);
        cr_assert_eq(net_netns_name_parse(&c, "ha-0"), -EINVAL);
        cr_assert_eq(net_netns_name_parse(&c, "ha-01"), -EINVAL);
        cr_assert_eq(net_netns_name_parse(&c, "hax-1"), -EINVAL);
        cr_assert_eq(net_netns_name_parse(&c, "ha-1x"), -EINVAL);
        cr_assert_eq(net_netns_name_parse(&c, "h-1"), -EINVAL);
}

Test(net_slot_addr, info_carries_guest_constants)
{
        struct net_config c = cfg();
        struct net_slot_info i;

        cr_assert_eq(net_slot_info_make(&c, 7, &i), 0);
        cr_assert_eq(i.slot, 7);
        cr_assert_str_eq(i.netns, "ha-7");
        cr_assert_str_eq(i.netns_path, "/run/netns/ha-7");
        cr_assert_str_eq(i.tap, "tap0");
        cr_assert_str_eq(i.sandbox_ip, "10.11.0.7");
        cr_assert_str_eq(i.guest_ip, "169.254.0.21");
        cr_assert_str_eq(i.guest_mac, "06:00:AC:10:00:02");
        cr_assert_str_eq(i.boot_ip_arg,
                         "ip=169.254.0.21::169.254.0.22:255.255.255.252::eth0:off");
}
