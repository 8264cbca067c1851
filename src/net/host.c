/*
 * host.c - host table, forwarding and the start-up route check (host.h).
 */
#include "net/host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/nft.h"
#include "net/rtnl.h"

int net_sysctl_enable(const char *path)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

        if (fd < 0)
                return -errno;
        ssize_t w = write(fd, "1\n", 2);
        if (w < 0)
                r = -errno;
        else if (w != 2)
                r = -EIO;
        close(fd);
        return r;
}

struct check_ctx {
        const struct net_config *c;
        char                     own[NET_PREFIX_MAX + 3];  /* "<prefix>-h" */
        struct ha_err           *err;
};

static int check_route(const struct net_rtnl_route *rt, void *arg)
{
        struct check_ctx *k = arg;
        struct net_cidr d = { .addr = rt->dst, .len = rt->len };
        char buf[32];

        if (rt->len == 0)
                return 0;
        if (rt->oif_name[0] && strncmp(rt->oif_name, k->own, strlen(k->own)) == 0)
                return 0;
        if (!net_cidr_overlaps(&d, &k->c->veth_range) &&
            !net_cidr_overlaps(&d, &k->c->sandbox_range))
                return 0;
        net_cidr_format(&d, buf, sizeof buf);
        return ha_err_set(k->err, -EADDRINUSE,
                          "host route %s (table %u, dev %s) overlaps a slot range",
                          buf, rt->table, rt->oif_name[0] ? rt->oif_name : "-");
}

int net_host_check(const struct net_config *c, struct ha_err *err)
{
        struct check_ctx k = { .c = c, .err = err };
        struct nl_sock *sk;
        int r;

        snprintf(k.own, sizeof k.own, "%s-h", c->prefix);
        r = net_rtnl_open(&sk);
        if (r < 0)
                return ha_err_set(err, r, "netlink: %s", strerror(-r));
        r = net_rtnl_routes_foreach(sk, check_route, &k);
        net_rtnl_close(sk);
        if (r < 0 && r != -EADDRINUSE)
                ha_err_set(err, r, "listing host routes: %s", strerror(-r));
        return r;
}

int net_host_setup(const struct net_config *c, struct ha_err *err)
{
        /* NET_HOST_PORTS_MAX ports of at most 5 digits and ", " each, plus the
         * rule around them. */
        char text[2048], range[32], ports[NET_HOST_PORTS_MAX * 7 + 64] = "";
        size_t off = 0;
        int r, n;

        r = net_sysctl_enable("/proc/sys/net/ipv4/ip_forward");
        if (r < 0)
                return ha_err_set(err, r, "enable ip_forward: %s", strerror(-r));
        net_cidr_format(&c->sandbox_range, range, sizeof range);
        for (size_t i = 0; i < c->n_host_tcp_ports && i < NET_HOST_PORTS_MAX; i++) {
                if (i == 0)
                        n = snprintf(ports, sizeof ports, "  iifname \"%s-h*\" tcp dport { %u",
                                     c->prefix, (unsigned)c->host_tcp_ports[0]);
                else
                        n = snprintf(ports + off, sizeof ports - off, ", %u",
                                     (unsigned)c->host_tcp_ports[i]);
                if (n < 0 || (size_t)n >= sizeof ports - off)
                        return ha_err_set(err, -ENOSPC, "host ports too long");
                off += (size_t)n;
        }
        if (off) {
                n = snprintf(ports + off, sizeof ports - off, " } accept\n");
                if (n < 0 || (size_t)n >= sizeof ports - off)
                        return ha_err_set(err, -ENOSPC, "host ports too long");
        }
        n = snprintf(text, sizeof text,
                     "add table inet %1$s\n"
                     "delete table inet %1$s\n"
                     "table inet %1$s {\n"
                     " chain input {\n"
                     "  type filter hook input priority filter; policy accept;\n"
                     "  iifname \"%1$s-h*\" ct state established,related accept\n"
                     "%2$s"
                     "  iifname \"%1$s-h*\" drop\n"
                     " }\n"
                     " chain forward {\n"
                     "  type filter hook forward priority filter; policy accept;\n"
                     "  iifname \"%1$s-h*\" oifname \"%1$s-h*\" drop\n"
                     " }\n"
                     " chain postrouting {\n"
                     "  type nat hook postrouting priority srcnat; policy accept;\n"
                     "  ip saddr %3$s oifname != \"%1$s-h*\" masquerade\n"
                     " }\n"
                     "}\n",
                     c->prefix, ports, range);
        if (n < 0 || (size_t)n >= sizeof text)
                return ha_err_set(err, -ENOSPC, "host rules too long");
        return net_nft_run(text, err);
}

int net_host_remove(const struct net_config *c, struct ha_err *err)
{
        char text[128];

        snprintf(text, sizeof text, "add table inet %1$s\ndelete table inet %1$s\n",
                 c->prefix);
        return net_nft_run(text, err);
}
