/*
 * rtnl.c - links, addresses and routes through libnl-route-3 (see rtnl.h).
 *
 * Every request is built from integers and names produced by slot_addr.c,
 * never from user input. Objects are allocated per call and released before
 * returning, on every path; libnl's caches are used only for the listing
 * helpers that recovery and the start-up route check need.
 */
#include "net/rtnl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <string.h>

#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

int net_rtnl_errno(int nlerr)
{
        switch (nlerr < 0 ? -nlerr : nlerr) {
        case 0:                 return 0;
        case NLE_EXIST:         return -EEXIST;
        case NLE_NODEV:         return -ENODEV;
        case NLE_OBJ_NOTFOUND:  return -ENOENT;
        case NLE_NOADDR:        return -EADDRNOTAVAIL;
        case NLE_NOMEM:         return -ENOMEM;
        case NLE_PERM:          return -EPERM;
        case NLE_NOACCESS:      return -EACCES;
        case NLE_BUSY:          return -EBUSY;
        case NLE_INVAL:         return -EINVAL;
        case NLE_RANGE:         return -ERANGE;
        case NLE_AGAIN:         return -EAGAIN;
        case NLE_INTR:          return -EINTR;
        case NLE_OPNOTSUPP:     return -EOPNOTSUPP;
        case NLE_AF_NOSUPPORT:  return -EAFNOSUPPORT;
        case NLE_BAD_SOCK:      return -EBADF;
        case NLE_MSGSIZE:       return -EMSGSIZE;
        default:                return -EIO;
        }
}

int net_rtnl_open(struct nl_sock **ret_sk)
{
        struct nl_sock *sk = nl_socket_alloc();
        int r;

        if (!sk)
                return -ENOMEM;
        r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0) {
                nl_socket_free(sk);
                return net_rtnl_errno(r);
        }
        *ret_sk = sk;
        return 0;
}

void net_rtnl_close(struct nl_sock *sk)
{
        if (sk)
                nl_socket_free(sk);  /* closes the fd too */
}

int net_rtnl_ifindex(struct nl_sock *sk, const char *name)
{
        struct rtnl_link *l = NULL;
        int r, idx;

        r = rtnl_link_get_kernel(sk, 0, name, &l);
        if (r < 0)
                return r == -NLE_OBJ_NOTFOUND ? -ENODEV : net_rtnl_errno(r);
        idx = rtnl_link_get_ifindex(l);
        rtnl_link_put(l);
        return idx > 0 ? idx : -ENODEV;
}

int net_rtnl_veth_add(struct nl_sock *sk, const char *name, const char *peer,
                      int peer_nsfd)
{
        struct rtnl_link *l, *p;
        int r;

        l = rtnl_link_veth_alloc();
        if (!l)
                return -ENOMEM;
        rtnl_link_set_name(l, name);
        p = rtnl_link_veth_get_peer(l);
        rtnl_link_set_name(p, peer);
        rtnl_link_set_ns_fd(p, peer_nsfd);
        rtnl_link_put(p);
        r = rtnl_link_add(sk, l, NLM_F_CREATE | NLM_F_EXCL);
        rtnl_link_veth_release(l);
        return net_rtnl_errno(r);
}

int net_rtnl_link_del(struct nl_sock *sk, const char *name)
{
        struct rtnl_link *l = rtnl_link_alloc();
        int r;

        if (!l)
                return -ENOMEM;
        rtnl_link_set_name(l, name);
        r = rtnl_link_delete(sk, l);
        rtnl_link_put(l);
        r = net_rtnl_errno(r);
        return r == -ENOENT ? -ENODEV : r;
}

int net_rtnl_link_packets(struct nl_sock *sk, const char *name, uint64_t *ret)
{
        struct rtnl_link *l = NULL;
        int r;

        r = rtnl_link_get_kernel(sk, 0, name, &l);
        if (r < 0)
                return r == -NLE_OBJ_NOTFOUND ? -ENODEV : net_rtnl_errno(r);
        *ret = rtnl_link_get_stat(l, RTNL_LINK_RX_PACKETS) + rtnl_link_get_stat(l, RTNL_LINK_TX_PACKETS) +
               rtnl_link_get_stat(l, RTNL_LINK_TX_DROPPED);
        rtnl_link_put(l);
        return 0;
}

int net_rtnl_link_up(struct nl_sock *sk, int ifindex)
{
        struct rtnl_link *orig = rtnl_link_alloc(), *chg = rtnl_link_alloc();
        int r = -ENOMEM;

        if (!orig || !chg)
                goto out_put;
        rtnl_link_set_ifindex(orig, ifindex);
        rtnl_link_set_flags(chg, IFF_UP);
        r = net_rtnl_errno(rtnl_link_change(sk, orig, chg, 0));
out_put:
        if (chg)
                rtnl_link_put(chg);
        if (orig)
                rtnl_link_put(orig);
        return r;
}

static struct nl_addr *addr_build(uint32_t ip, uint8_t len)
{
        uint32_t be = htonl(ip);
        struct nl_addr *a = nl_addr_build(AF_INET, &be, sizeof be);

        if (a)
                nl_addr_set_prefixlen(a, len);
        return a;
}

int net_rtnl_addr_add(struct nl_sock *sk, int ifindex, uint32_t ip, uint8_t len)
{
        struct rtnl_addr *a = rtnl_addr_alloc();
        struct nl_addr *local = addr_build(ip, len);
        int r = -ENOMEM;

        if (!a || !local)
                goto out_put;
        rtnl_addr_set_ifindex(a, ifindex);
        rtnl_addr_set_family(a, AF_INET);
        r = net_rtnl_errno(rtnl_addr_set_local(a, local));
        if (r < 0)
                goto out_put;
        r = net_rtnl_errno(rtnl_addr_add(sk, a, NLM_F_EXCL));
out_put:
        if (local)
                nl_addr_put(local);
        if (a)
                rtnl_addr_put(a);
        return r;
}

static struct rtnl_route *route_build(uint32_t dst, uint8_t len)
{
        struct rtnl_route *rt = rtnl_route_alloc();
        struct nl_addr *d = addr_build(dst, len);

        if (!rt || !d || rtnl_route_set_dst(rt, d) < 0) {
                if (d)
                        nl_addr_put(d);
                if (rt)
                        rtnl_route_put(rt);
                return NULL;
        }
        nl_addr_put(d);         /* the route holds its own reference */
        rtnl_route_set_family(rt, AF_INET);
        rtnl_route_set_table(rt, RT_TABLE_MAIN);
        rtnl_route_set_protocol(rt, RTPROT_STATIC);
        return rt;
}

/* A route to dst/len through gateway gw (out of ifindex when > 0). */
static struct rtnl_route *route_build_via(uint32_t dst, uint8_t len, uint32_t gw, int ifindex)
{
        struct rtnl_route *rt = route_build(dst, len);
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
        struct nl_addr *g = addr_build(gw, 32);

        if (!rt || !nh || !g) {
                if (nh)
                        rtnl_route_nh_free(nh);
                if (rt)
                        rtnl_route_put(rt);
                rt = NULL;
        } else {
                if (ifindex > 0)
                        rtnl_route_nh_set_ifindex(nh, ifindex);
                rtnl_route_nh_set_gateway(nh, g);
                rtnl_route_add_nexthop(rt, nh);   /* the route owns nh now */
        }
        if (g)
                nl_addr_put(g);
        return rt;
}

int net_rtnl_route_add(struct nl_sock *sk, uint32_t dst, uint8_t len, uint32_t gw,
                       int ifindex)
{
        struct rtnl_route *rt = route_build_via(dst, len, gw, ifindex);
        int r;

        if (!rt)
                return -ENOMEM;
        rtnl_route_set_scope(rt, RT_SCOPE_UNIVERSE);
        r = net_rtnl_errno(rtnl_route_add(sk, rt, NLM_F_EXCL));
        rtnl_route_put(rt);
        return r;
}

int net_rtnl_route_del_via(struct nl_sock *sk, uint32_t dst, uint8_t len, uint32_t gw)
{
        struct rtnl_route *rt = route_build_via(dst, len, gw, 0);
        int r;

        if (!rt)
                return -ENOMEM;
        r = net_rtnl_errno(rtnl_route_delete(sk, rt, 0));
        rtnl_route_put(rt);
        return r;
}

int net_rtnl_route_del(struct nl_sock *sk, uint32_t dst, uint8_t len)
{
        struct rtnl_route *rt = route_build(dst, len);
        int r;

        if (!rt)
                return -ENOMEM;
        r = net_rtnl_errno(rtnl_route_delete(sk, rt, 0));
        rtnl_route_put(rt);
        return r;
}

int net_rtnl_links_foreach(struct nl_sock *sk, const char *name_prefix,
                           int (*fn)(const char *name, void *arg), void *arg)
{
        struct nl_cache *cache = NULL;
        size_t plen = strlen(name_prefix);
        int r;

        r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
        if (r < 0)
                return net_rtnl_errno(r);
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                const char *name = rtnl_link_get_name((struct rtnl_link *)o);
                if (!name || strncmp(name, name_prefix, plen) != 0)
                        continue;
                r = fn(name, arg);
                if (r < 0)
                        break;
        }
        nl_cache_free(cache);
        return r < 0 ? r : 0;
}

int net_rtnl_routes_foreach(struct nl_sock *sk,
                            int (*fn)(const struct net_rtnl_route *rt, void *arg),
                            void *arg)
{
        struct nl_cache *routes = NULL, *links = NULL;
        int r;

        r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
        if (r < 0)
                return net_rtnl_errno(r);
        r = rtnl_route_alloc_cache(sk, AF_INET, 0, &routes);
        if (r < 0) {
                nl_cache_free(links);
                return net_rtnl_errno(r);
        }
        for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
                struct rtnl_route *rt = (struct rtnl_route *)o;
                struct nl_addr *d = rtnl_route_get_dst(rt);
                struct net_rtnl_route v = { 0 };
                uint32_t be = 0;

                if (d && nl_addr_get_len(d) == 4)
                        memcpy(&be, nl_addr_get_binary_addr(d), 4);
                v.dst = ntohl(be);
                v.len = d ? (uint8_t)nl_addr_get_prefixlen(d) : 0;
                v.table = rtnl_route_get_table(rt);
                if (rtnl_route_get_nnexthops(rt) > 0)
                        v.oif = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(rt, 0));
                if (v.oif > 0)
                        rtnl_link_i2name(links, v.oif, v.oif_name, sizeof v.oif_name);
                r = fn(&v, arg);
                if (r < 0)
                        break;
        }
        nl_cache_free(routes);
        nl_cache_free(links);
        return r < 0 ? r : 0;
}
