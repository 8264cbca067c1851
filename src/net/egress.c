/*
 * egress.c - egress policy to nftables text (see egress.h). Pure: the
 * caller runs the text in the namespace. The table is deleted and recreated
 * in the same transaction ("add; delete; define"), so a policy change is
 * atomic and applying allow-all leaves no table behind.
 */
#include "net/egress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include <stdbool.h>

struct out {
        char  *buf;
        size_t size, len;
        bool   full;
};

__attribute__((format(printf, 2, 3)))
static void out_printf(struct out *o, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (o->full)
                return;
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= o->size - o->len) {
                o->full = true;
                return;
        }
        o->len += (size_t)n;
}

int net_egress_validate(const struct net_egress *eg, struct ha_err *err)
{
        enum net_egress_mode mode = eg ? eg->mode : NET_EGRESS_ALLOW_ALL;
        char cidr[32];

        if (mode > NET_EGRESS_DENY_LIST)
                return ha_err_set(err, -EINVAL, "egress: unknown mode %d", (int)mode);
        if (eg && eg->n_cidrs > NET_EGRESS_CIDRS_MAX)
                return ha_err_set(err, -EINVAL, "egress: more than %d CIDRs",
                                  NET_EGRESS_CIDRS_MAX);
        if (eg && eg->n_cidrs > 0 && !eg->cidrs)
                return ha_err_set(err, -EINVAL, "egress: CIDR list missing");
        if (mode == NET_EGRESS_ALLOW_LIST || mode == NET_EGRESS_DENY_LIST) {
                for (size_t i = 0; i < eg->n_cidrs; i++) {
                        const struct net_cidr *c = &eg->cidrs[i];
                        struct net_cidr canon;
                        if (c->len > 32 || net_cidr_format(c, cidr, sizeof cidr) < 0 ||
                            net_cidr_parse(cidr, &canon) < 0 || canon.addr != c->addr)
                                return ha_err_set(err, -EINVAL,
                                                  "egress: CIDR %zu is not canonical", i);
                }
        }
        return 0;
}

int net_egress_rules(const struct net_egress *eg, char *buf, size_t size,
                     struct ha_err *err)
{
        struct out o = { .buf = buf, .size = size };
        enum net_egress_mode mode = eg ? eg->mode : NET_EGRESS_ALLOW_ALL;
        char cidr[32];
        int r;

        if (size == 0)
                return -ENOSPC;
        buf[0] = '\0';
        r = net_egress_validate(eg, err);
        if (r < 0)
                return r;

        out_printf(&o, "add table inet egress\ndelete table inet egress\n");
        if (mode == NET_EGRESS_ALLOW_ALL)
                return o.full ? -ENOSPC : 0;
        out_printf(&o, "table inet egress {\n"
                       " chain forward {\n"
                       "  type filter hook forward priority filter; policy accept;\n"
                       "  iifname \"%s\" ct state established,related accept\n",
                   NET_TAP_NAME);
        switch (mode) {
        case NET_EGRESS_DENY_ALL:
                break;
        case NET_EGRESS_ALLOW_LIST:
                for (size_t i = 0; i < eg->n_cidrs; i++) {
                        net_cidr_format(&eg->cidrs[i], cidr, sizeof cidr);
                        out_printf(&o, "  iifname \"%s\" ip daddr %s accept\n",
                                   NET_TAP_NAME, cidr);
                }
                break;
        case NET_EGRESS_DENY_LIST:
                for (size_t i = 0; i < eg->n_cidrs; i++) {
                        net_cidr_format(&eg->cidrs[i], cidr, sizeof cidr);
                        out_printf(&o, "  iifname \"%s\" ip daddr %s drop\n",
                                   NET_TAP_NAME, cidr);
                }
                break;
        default:
                break;
        }
        if (mode != NET_EGRESS_DENY_LIST)
                out_printf(&o, "  iifname \"%s\" drop\n", NET_TAP_NAME);
        out_printf(&o, " }\n}\n");
        return o.full ? -ENOSPC : 0;
}
