/*
 * slot.c - build, scrub and tear down one network slot (see slot.h for the
 * steps and what undoes each).
 *
 * The host-side steps run on the calling thread against a NETLINK_ROUTE
 * socket of the host namespace; the namespace-side steps run on a helper
 * thread that joined the slot's namespace (net_netns_run()), where every
 * socket it opens, libnftables' included, acts on that namespace. Rule text
 * is built only from the formatted addresses of struct net_slot_addr.
 */
#include "net/slot.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/log.h"
#include "net/ct.h"
#include "net/host.h"
#include "net/netns.h"
#include "net/nft.h"
#include "net/rtnl.h"

static const char *const step_names[] = {
        [NET_STEP_NETNS] = "NETNS",         [NET_STEP_VETH] = "VETH",
        [NET_STEP_NS_LO] = "NS_LO",         [NET_STEP_NS_VETH] = "NS_VETH",
        [NET_STEP_NS_ROUTE] = "NS_ROUTE",   [NET_STEP_TAP] = "TAP",
        [NET_STEP_TAP_ADDR] = "TAP_ADDR",   [NET_STEP_NS_SYSCTL] = "NS_SYSCTL",
        [NET_STEP_NS_NFT] = "NS_NFT",       [NET_STEP_HOST_ADDR] = "HOST_ADDR",
        [NET_STEP_HOST_ROUTE] = "HOST_ROUTE",
};

const char *net_step_name(enum net_step s)
{
        if (s < NET_STEP_NETNS || s > NET_STEP_COUNT)
                return "?";
        return step_names[s];
}

struct build {
        const struct net_config   *c;
        struct net_slot_addr       a;
        struct net_fault          *fault;
        struct ha_err             *err;
        enum net_step              step;   /* the step under way, for messages */
};

/* Begins a step: records it and applies failure injection. */
static int step_begin(struct build *b, enum net_step s)
{
        b->step = s;
        if (!b->fault)
                return 0;
        b->fault->seen++;
        if (b->fault->fail_at != 0 && b->fault->seen == b->fault->fail_at)
                return ha_err_set(b->err, -EIO, "slot %u: injected failure at step %s",
                                  b->a.slot, net_step_name(s));
        return 0;
}

static int step_fail(struct build *b, int r, const char *what)
{
        return ha_err_set(b->err, r, "slot %u step %s: %s: %s", b->a.slot,
                          net_step_name(b->step), what, strerror(-r));
}

/* Creates the persistent TAP in the calling thread's namespace, owned by
 * uid/gid when they are not -1. The fd is closed at once: the device stays
 * (TUNSETPERSIST) for the VMM to open. */
static int tap_create(const char *name, int32_t uid, int32_t gid)
{
        struct ifreq ifr;
        int fd, r = 0;

        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        memset(&ifr, 0, sizeof ifr);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
        memcpy(ifr.ifr_name, name, strnlen(name, IFNAMSIZ - 1));
        if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
            (uid >= 0 && ioctl(fd, TUNSETOWNER, (unsigned long)uid) < 0) ||
            (gid >= 0 && ioctl(fd, TUNSETGROUP, (unsigned long)gid) < 0) ||
            ioctl(fd, TUNSETPERSIST, 1) < 0)
                r = -errno;
        close(fd);
        return r;
}

/* Sandboxes get IPv4 only (the guard table drops the guest's IPv6). With
 * IPv6 on, each link of a slot sends its own link-local chatter (DAD,
 * router solicitations, MLD reports) for seconds after it comes up, which
 * would move the host veth's count that lets a scrub skip the host
 * conntrack walk (see net_slot_scrub). Called in the namespace of |name|
 * before it is up. A host without IPv6 has no such file: nothing to do. */
static int link_no_ipv6(const char *name)
{
        char path[128];

        snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
        int r = net_sysctl_enable(path);
        return r == -ENOENT ? 0 : r;
}

static int ns_link_setup(struct build *b, struct nl_sock *sk, const char *name,
                         uint32_t ip, uint8_t len)
{
        int idx = net_rtnl_ifindex(sk, name), r;

        if (idx < 0)
                return step_fail(b, idx, name);
        r = link_no_ipv6(name);
        if (r < 0)
                return step_fail(b, r, "disable_ipv6");
        r = net_rtnl_addr_add(sk, idx, ip, len);
        if (r < 0)
                return step_fail(b, r, "address");
        r = net_rtnl_link_up(sk, idx);
        if (r < 0)
                return step_fail(b, r, "link up");
        return idx;
}

static int ns_rules(struct build *b)
{
        char text[1024];
        int n;

        n = snprintf(text, sizeof text,
                     "table ip slot {\n"
                     " chain prerouting {\n"
                     "  type nat hook prerouting priority dstnat; policy accept;\n"
                     "  iifname \"%1$s\" ip daddr %2$s dnat to " NET_GUEST_IP "\n"
                     " }\n"
                     " chain postrouting {\n"
                     "  type nat hook postrouting priority srcnat; policy accept;\n"
                     "  oifname \"%1$s\" ip saddr " NET_GUEST_IP " snat to %2$s\n"
                     " }\n"
                     "}\n"
                     "table inet guard {\n"
                     " chain input {\n"
                     "  type filter hook input priority filter; policy accept;\n"
                     "  iifname \"" NET_TAP_NAME "\" ct state established,related accept\n"
                     "  iifname \"" NET_TAP_NAME "\" drop\n"
                     " }\n"
                     " chain forward {\n"
                     "  type filter hook forward priority filter; policy accept;\n"
                     "  iifname \"" NET_TAP_NAME "\" meta nfproto ipv6 drop\n"
                     "  iifname \"" NET_TAP_NAME "\" ip saddr != " NET_GUEST_IP " drop\n"
                     " }\n"
                     "}\n",
                     b->a.veth_ns, b->a.sandbox_ip_str);
        if (n < 0 || (size_t)n >= sizeof text)
                return step_fail(b, -ENOSPC, "rule text");
        return net_nft_run(text, b->err);
}

/* Runs inside the slot's namespace (net_netns_run()). */
static int ns_setup(void *arg)
{
        struct build *b = arg;
        struct nl_sock *sk = NULL;
        uint32_t tap_ip;
        int r, idx;

        r = step_begin(b, NET_STEP_NS_LO);
        if (r < 0)
                return r;
        r = net_rtnl_open(&sk);
        if (r < 0)
                return step_fail(b, r, "netlink socket");
        idx = net_rtnl_ifindex(sk, "lo");
        r = idx < 0 ? idx : net_rtnl_link_up(sk, idx);
        if (r < 0) {
                r = step_fail(b, r, "lo up");
                goto out_close;
        }

        r = step_begin(b, NET_STEP_NS_VETH);
        if (r < 0)
                goto out_close;
        idx = ns_link_setup(b, sk, b->a.veth_ns, b->a.veth_ns_ip, b->a.veth_len);
        if (idx < 0) {
                r = idx;
                goto out_close;
        }

        r = step_begin(b, NET_STEP_NS_ROUTE);
        if (r < 0)
                goto out_close;
        r = net_rtnl_route_add(sk, 0, 0, b->a.veth_host_ip, idx);
        if (r < 0) {
                r = step_fail(b, r, "default route");
                goto out_close;
        }

        r = step_begin(b, NET_STEP_TAP);
        if (r < 0)
                goto out_close;
        r = tap_create(NET_TAP_NAME, b->c->tap_uid, b->c->tap_gid);
        if (r < 0) {
                r = step_fail(b, r, "TUNSETIFF/TUNSETPERSIST");
                goto out_close;
        }

        r = step_begin(b, NET_STEP_TAP_ADDR);
        if (r < 0)
                goto out_close;
        inet_pton(AF_INET, NET_TAP_IP, &tap_ip);
        idx = ns_link_setup(b, sk, NET_TAP_NAME, ntohl(tap_ip), NET_TAP_PREFIXLEN);
        if (idx < 0) {
                r = idx;
                goto out_close;
        }

        r = step_begin(b, NET_STEP_NS_SYSCTL);
        if (r < 0)
                goto out_close;
        r = net_sysctl_enable("/proc/sys/net/ipv4/ip_forward");
        if (r < 0) {
                r = step_fail(b, r, "ip_forward");
                goto out_close;
        }

        r = step_begin(b, NET_STEP_NS_NFT);
        if (r < 0)
                goto out_close;
        r = ns_rules(b);
out_close:
        net_rtnl_close(sk);
        return r;
}

int net_slot_build(const struct net_config *c, uint32_t slot, struct net_fault *fault,
                   struct ha_err *err)
{
        struct build b = { .c = c, .fault = fault, .err = err };
        struct nl_sock *sk = NULL;
        int r, nsfd = -1, idx;

        r = net_slot_addr_make(c, slot, &b.a);
        if (r < 0)
                return ha_err_set(err, r, "slot %u out of range 1..%u", slot, c->slots);

        r = step_begin(&b, NET_STEP_NETNS);
        if (r < 0)
                return r;
        r = net_netns_create(b.a.netns_path, err);
        if (r < 0)
                return r;

        r = net_rtnl_open(&sk);
        if (r < 0) {
                r = step_fail(&b, r, "netlink socket");
                goto out_remove_netns;
        }
        nsfd = open(b.a.netns_path, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0) {
                r = step_fail(&b, -errno, "open namespace");
                goto out_close;
        }

        r = step_begin(&b, NET_STEP_VETH);
        if (r < 0)
                goto out_close;
        r = net_rtnl_veth_add(sk, b.a.veth_host, b.a.veth_ns, nsfd);
        if (r < 0) {
                r = step_fail(&b, r, "create veth pair");
                goto out_close;
        }

        /* ns_setup() overwrites this message when one of its steps fails;
         * it stays when the namespace could not be entered at all. */
        ha_err_set(err, 0, "slot %u: cannot enter namespace %s", slot, b.a.netns);
        r = net_netns_run(b.a.netns_path, ns_setup, &b);
        if (r < 0)
                goto out_del_veth;

        r = step_begin(&b, NET_STEP_HOST_ADDR);
        if (r < 0)
                goto out_del_veth;
        idx = ns_link_setup(&b, sk, b.a.veth_host, b.a.veth_host_ip, b.a.veth_len);
        if (idx < 0) {
                r = idx;
                goto out_del_veth;
        }

        r = step_begin(&b, NET_STEP_HOST_ROUTE);
        if (r < 0)
                goto out_del_veth;
        r = net_rtnl_route_add(sk, b.a.sandbox_ip, 32, b.a.veth_ns_ip, idx);
        if (r == -EEXIST) {
                /* Not debris of ours: our route goes with our veth, which
                 * did not exist a moment ago. Someone else routes this
                 * address; never take it over (see -EADDRINUSE in slot.h). */
                ha_err_set(err, -EADDRINUSE, "slot %u step %s: route to sandbox address %s: %s "
                           "(held by something else on this host)", slot, net_step_name(b.step),
                           b.a.sandbox_ip_str, strerror(EEXIST));
                r = -EADDRINUSE;
                goto out_del_veth;
        }
        if (r < 0) {
                r = step_fail(&b, r, "route to sandbox address");
                goto out_del_veth;
        }

        close(nsfd);
        net_rtnl_close(sk);
        ha_err_set(err, 0, "%s", "");
        return 0;

out_del_veth:
        net_rtnl_link_del(sk, b.a.veth_host);
out_close:
        if (nsfd >= 0)
                close(nsfd);
        net_rtnl_close(sk);
out_remove_netns:
        net_netns_remove(b.a.netns_path);
        return r;
}

static void keep_first(int *first, int r)
{
        if (*first == 0 && r < 0)
                *first = r;
}

int net_slot_remove_names(const char *prefix, uint32_t slot)
{
        char path[NET_NETNS_PATH_MAX], veth[NET_IFNAME_MAX];
        struct nl_sock *sk;
        int r, first = 0;

        snprintf(path, sizeof path, NET_NETNS_DIR "/%s-%u", prefix, slot);
        snprintf(veth, sizeof veth, "%s-h%u", prefix, slot);
        r = net_rtnl_open(&sk);
        if (r == 0) {
                r = net_rtnl_link_del(sk, veth);
                if (r != -ENODEV)
                        keep_first(&first, r);
                net_rtnl_close(sk);
        } else {
                keep_first(&first, r);
        }
        keep_first(&first, net_netns_remove(path));
        return first;
}

uint64_t net_slot_host_packets(const struct net_config *c, uint32_t slot)
{
        struct net_slot_addr a;
        struct nl_sock *sk;
        uint64_t n = NET_PKTS_UNKNOWN;

        if (net_slot_addr_make(c, slot, &a) < 0 || net_rtnl_open(&sk) < 0)
                return NET_PKTS_UNKNOWN;
        if (net_rtnl_link_packets(sk, a.veth_host, &n) < 0)
                n = NET_PKTS_UNKNOWN;
        net_rtnl_close(sk);
        return n;
}

/* Whether the host's entries of a slot's address need a flush: not when
 * the host veth's count |now| is known and still what it was at the last
 * flush (|at_flush|, see NET_PKTS_UNKNOWN). */
static bool host_ct_dirty(uint64_t now, uint64_t at_flush)
{
        return now == NET_PKTS_UNKNOWN || now != at_flush;
}

/* Flushes the host's conntrack entries of |ip| (the slot's sandbox
 * address) unless the host veth carried nothing since *|pkts|. A flush
 * is two walks of the kernel's whole conntrack hash, all namespaces
 * (~26 ms of CPU at 262,144 buckets, bottom halves off, not preemptible):
 * on a busy host that is most of a destroy's cost and stalls the creates
 * beside it, while most sandboxes never use the network. */
static int host_ct_flush(const struct net_config *c, uint32_t slot, uint32_t ip, uint64_t *pkts)
{
        uint64_t now = net_slot_host_packets(c, slot);
        int r;

        if (!host_ct_dirty(now, *pkts))
                return 0;
        ha_log_debug("net.slot.host_ct_flush", "slot=%u packets=%" PRIu64 " at_last_flush=%" PRIu64, slot,
                     now, *pkts);
        r = net_ct_flush_ip(ip);
        *pkts = r < 0 ? NET_PKTS_UNKNOWN : now;   /* read before: later packets count */
        return r < 0 ? r : 0;
}

int net_slot_teardown(const struct net_config *c, uint32_t slot, struct ha_err *err)
{
        return net_slot_teardown_since(c, slot, NET_PKTS_UNKNOWN, err);
}

int net_slot_teardown_since(const struct net_config *c, uint32_t slot, uint64_t host_pkts,
                            struct ha_err *err)
{
        struct net_slot_addr a;
        struct nl_sock *sk;
        uint64_t now = NET_PKTS_UNKNOWN;
        int r, first = 0;

        r = net_slot_addr_make(c, slot, &a);
        if (r < 0)
                return ha_err_set(err, r, "slot %u out of range 1..%u", slot, c->slots);
        r = net_rtnl_open(&sk);
        if (r == 0) {
                /* Only our route (via the namespace end): a route to that
                 * address that someone else added is not ours to delete. */
                r = net_rtnl_route_del_via(sk, a.sandbox_ip, 32, a.veth_ns_ip);
                if (r != -ENOENT && r != -ESRCH)
                        keep_first(&first, r);
                /* Counted after the route went (nothing more is sent to
                 * the sandbox) and before the veth goes. */
                if (net_rtnl_link_packets(sk, a.veth_host, &now) < 0)
                        now = NET_PKTS_UNKNOWN;
                r = net_rtnl_link_del(sk, a.veth_host);
                if (r != -ENODEV)
                        keep_first(&first, r);
                net_rtnl_close(sk);
        } else {
                keep_first(&first, r);
        }
        if (host_ct_dirty(now, host_pkts)) {
                r = net_ct_flush_ip(a.sandbox_ip);
                keep_first(&first, r < 0 ? r : 0);
        }
        keep_first(&first, net_netns_remove(a.netns_path));
        if (first < 0)
                ha_err_set(err, first, "slot %u teardown: %s", slot, strerror(-first));
        return first;
}

struct ns_nft_job {
        const char    *text;
        bool           flush_ct;
        struct ha_err *err;
};

static int ns_nft_run(void *arg)
{
        struct ns_nft_job *j = arg;
        int r = 0;

        if (j->flush_ct) {
                r = net_ct_flush_all();
                if (r < 0)
                        return ha_err_set(j->err, r, "conntrack flush: %s", strerror(-r));
        }
        return j->text ? net_nft_run(j->text, j->err) : 0;
}

/* Runs in the slot's namespace: the egress rules for |eg| unless
 * |skip_rules|, after a conntrack flush when |flush_ct|; then on the host
 * the flush of the sandbox address's entries when |flush_ct|. */
static int egress_apply(const struct net_config *c, uint32_t slot,
                        const struct net_egress *eg, bool skip_rules, bool flush_ct,
                        uint64_t *host_pkts, struct ha_err *err)
{
        char text[NET_NFT_TEXT_MAX];
        struct ns_nft_job j = { .text = skip_rules ? NULL : text, .flush_ct = flush_ct,
                                .err = err };
        struct net_slot_addr a;
        int r;

        r = net_slot_addr_make(c, slot, &a);
        if (r < 0)
                return ha_err_set(err, r, "slot %u out of range 1..%u", slot, c->slots);
        r = net_egress_rules(eg, text, sizeof text, err);
        if (r < 0)
                return r;
        r = net_netns_run(a.netns_path, ns_nft_run, &j);
        if (r < 0)
                return r;
        if (flush_ct) {
                r = host_ct_flush(c, slot, a.sandbox_ip, host_pkts);
                if (r < 0)
                        return ha_err_set(err, r, "host conntrack flush: %s", strerror(-r));
        }
        return 0;
}

int net_slot_scrub(const struct net_config *c, uint32_t slot, bool reset_egress,
                   uint64_t *host_pkts, struct ha_err *err)
{
        return egress_apply(c, slot, NULL, !reset_egress, true, host_pkts, err);
}

int net_slot_egress_set(const struct net_config *c, uint32_t slot,
                        const struct net_egress *eg, struct ha_err *err)
{
        return egress_apply(c, slot, eg, false, false, NULL, err);
}

static int ns_has_tap(void *arg)
{
        (void)arg;
        return (int)if_nametoindex(NET_TAP_NAME) > 0 ? 0 : -ENODEV;
}

bool net_slot_is_built(const struct net_config *c, uint32_t slot)
{
        struct net_slot_addr a;

        if (net_slot_addr_make(c, slot, &a) < 0)
                return false;
        if (if_nametoindex(a.veth_host) == 0)
                return false;
        return net_netns_run(a.netns_path, ns_has_tap, NULL) == 0;
}
