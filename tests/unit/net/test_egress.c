/* test_egress.c - egress policy to nftables text (pure). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "net/egress.h"

static char buf[16384];

Test(net_egress, allow_all_only_removes_the_table)
{
        struct ha_err e;
        cr_assert_eq(net_egress_rules(NULL, buf, sizeof buf, &e), 0);
        cr_assert_str_eq(buf, "add table inet egress\ndelete table inet egress\n");
        struct net_egress eg = { .mode = NET_EGRESS_ALLOW_ALL };
        cr_assert_eq(net_egress_rules(&eg, buf, sizeof buf, &e), 0);
        cr_assert(!strstr(buf, "chain"));
}

Test(net_egress, deny_all_drops_guest_traffic_but_replies)
{
        struct net_egress eg = { .mode = NET_EGRESS_DENY_ALL };
        struct ha_err e;
        cr_assert_eq(net_egress_rules(&eg, buf, sizeof buf, &e), 0);
        cr_assert(strstr(buf, "iifname \"tap0\" ct state established,related accept\n"));
        cr_assert(strstr(buf, "iifname \"tap0\" drop\n"));
}

Test(net_egress, allow_list_reprints_cidrs_then_drops)
{
        struct net_cidr c[2];
        struct ha_err e;
        cr_assert_eq(net_cidr_parse("1.2.3.4/24", &c[0]), 0);
        cr_assert_eq(net_cidr_parse("8.8.8.8", &c[1]), 0);
        struct net_egress eg = { .mode = NET_EGRESS_ALLOW_LIST, .cidrs = c, .n_cidrs = 2 };
        cr_assert_eq(net_egress_rules(&eg, buf, sizeof buf, &e), 0);
        const char *a = strstr(buf, "ip daddr 1.2.3.0/24 accept");
        const char *b = strstr(buf, "ip daddr 8.8.8.8/32 accept");
        const char *d = strstr(buf, "iifname \"tap0\" drop");
        cr_assert(a && b && d && a < b && b < d, "%s", buf);
}

Test(net_egress, deny_list_has_no_final_drop)
{
        struct net_cidr c = { 0x0a000000, 8 };
        struct net_egress eg = { .mode = NET_EGRESS_DENY_LIST, .cidrs = &c, .n_cidrs = 1 };
        struct ha_err e;
        cr_assert_eq(net_egress_rules(&eg, buf, sizeof buf, &e), 0);
        cr_assert(strstr(buf, "ip daddr 10.0.0.0/8 drop"));
        cr_assert(!strstr(buf, "iifname \"tap0\" drop"));
}

Test(net_egress, rejects_bad_policies)
{
        struct net_cidr c = { 0x0a000001, 8 };      /* host bits: not canonical */
        struct net_egress eg = { .mode = NET_EGRESS_DENY_LIST, .cidrs = &c, .n_cidrs = 1 };
        struct ha_err e;
        cr_assert_eq(net_egress_rules(&eg, buf, sizeof buf, &e), -EINVAL);
        c.len = 40;
        cr_assert_eq(net_egress_rules(&eg, buf, sizeof buf, &e), -EINVAL);
        eg.mode = (enum net_egress_mode)9;
        cr_assert_eq(net_egress_rules(&eg, buf, sizeof buf, &e), -EINVAL);
        eg = (struct net_egress){ .mode = NET_EGRESS_ALLOW_LIST, .cidrs = NULL, .n_cidrs = 3 };
        cr_assert_eq(net_egress_rules(&eg, buf, sizeof buf, &e), -EINVAL);
        eg.n_cidrs = NET_EGRESS_CIDRS_MAX + 1;
        cr_assert_eq(net_egress_rules(&eg, buf, sizeof buf, &e), -EINVAL);
}

Test(net_egress, max_list_fits_and_small_buffer_fails)
{
        static struct net_cidr c[NET_EGRESS_CIDRS_MAX];
        struct ha_err e;
        for (int i = 0; i < NET_EGRESS_CIDRS_MAX; i++)
                c[i] = (struct net_cidr){ 0xc0a80000u | (uint32_t)i << 8 | 255, 32 };
        struct net_egress eg = { .mode = NET_EGRESS_ALLOW_LIST, .cidrs = c,
                                 .n_cidrs = NET_EGRESS_CIDRS_MAX };
        cr_assert_eq(net_egress_rules(&eg, buf, sizeof buf, &e), 0);
        cr_assert_eq(net_egress_rules(&eg, buf, 100, &e), -ENOSPC);
}
