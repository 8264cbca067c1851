/*
 * rtnl.h - the libnl-route-3 adapter: links, addresses and routes.
 *
 * The only file that speaks libnl's language: NLE_* codes become -errno here
 * and nowhere else. Each function takes a connected NETLINK_ROUTE socket,
 * which acts in the namespace it was opened in (see net_netns_run()). A
 * socket is not thread-safe: one thread uses it at a time. Internal to
 * src/net/. Addresses are IPv4, host byte order.
 */
#ifndef NET_RTNL_H
#define NET_RTNL_H

#include <stdbool.h>
#include <stdint.h>

struct nl_sock;

/* Translates a libnl NLE_* code (negative or positive) into -errno. */
int net_rtnl_errno(int nlerr);

/* Opens a NETLINK_ROUTE socket in the calling thread's namespace.
 * Returns 0 or -errno; close with net_rtnl_close() (NULL is a no-op). */
int  net_rtnl_open(struct nl_sock **ret_sk);
void net_rtnl_close(struct nl_sock *sk);

/* Returns the ifindex (> 0) of |name|, or -ENODEV. */
int net_rtnl_ifindex(struct nl_sock *sk, const char *name);

/* Creates veth |name| here and its peer |peer| directly inside the
 * namespace open at |peer_nsfd| (so the peer never exists in our
 * namespace). Returns 0, -EEXIST, or -errno. */
int net_rtnl_veth_add(struct nl_sock *sk, const char *name, const char *peer,
                      int peer_nsfd);

/* Deletes link |name| (a veth's peer goes with it). Returns 0, -ENODEV
 * when there is no such link, or -errno. */
int net_rtnl_link_del(struct nl_sock *sk, const char *name);

/* Packets received plus sent (or dropped on the way out) by link |name|
 * since it was made, in *ret.
 * Returns 0, -ENODEV when there is no such link, or -errno. */
int net_rtnl_link_packets(struct nl_sock *sk, const char *name, uint64_t *ret);

/* Sets IFF_UP on |ifindex|. Returns 0 or -errno. */
int net_rtnl_link_up(struct nl_sock *sk, int ifindex);

/* Adds ip/len on |ifindex|. Returns 0, -EEXIST or -errno. */
int net_rtnl_addr_add(struct nl_sock *sk, int ifindex, uint32_t ip, uint8_t len);

/* Adds (main table) dst/len via |gw| out of |ifindex|; dst 0/0 is the
 * default route. Returns 0, -EEXIST or -errno. */
int net_rtnl_route_add(struct nl_sock *sk, uint32_t dst, uint8_t len, uint32_t gw,
                       int ifindex);

/* Deletes the main-table route dst/len. Returns 0, -ENOENT when absent, or
 * -errno. */
int net_rtnl_route_del(struct nl_sock *sk, uint32_t dst, uint8_t len);

/* The same, only when the route goes via |gw| (a route to dst/len that
 * someone else added stays). Returns 0, -ENOENT/-ESRCH when there is no
 * such route, or -errno. */
int net_rtnl_route_del_via(struct nl_sock *sk, uint32_t dst, uint8_t len, uint32_t gw);

/* Calls fn(name, arg) for every link whose name starts with |name_prefix|.
 * Stops at and returns the first negative value fn returns; 0 otherwise. */
int net_rtnl_links_foreach(struct nl_sock *sk, const char *name_prefix,
                           int (*fn)(const char *name, void *arg), void *arg);

/* One IPv4 route of any table, as seen by net_rtnl_routes_foreach(). */
struct net_rtnl_route {
        uint32_t dst;
        uint8_t  len;
        uint32_t table;
        int      oif;       /* first nexthop's ifindex, 0 if none */
        char     oif_name[16];
};

/* Calls fn for every IPv4 route in every table. Same stop rule as above. */
int net_rtnl_routes_foreach(struct nl_sock *sk,
                            int (*fn)(const struct net_rtnl_route *rt, void *arg),
                            void *arg);

#endif
