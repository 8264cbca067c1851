/*
 * slot_addr.c - pure naming and addressing of network slots (see
 * slot_addr.h). Nothing here touches the system: every function depends on
 * its arguments only, which is what makes crash recovery and the tests
 * simple. Addresses are host byte order throughout; formatting to text is
 * done here from integers, so no string that came from outside ever reaches
 * an nftables rule or a netlink message unparsed.
 */
#include "net/slot_addr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static uint32_t cidr_mask(uint8_t len)
{
        return len == 0 ? 0 : ~UINT32_C(0) << (32 - len);
}

static uint64_t cidr_size(const struct net_cidr *c)
{
        return UINT64_C(1) << (32 - c->len);
}

void net_config_default(struct net_config *c)
{
        memset(c, 0, sizeof *c);
        memcpy(c->prefix, "ha", 3);
        c->veth_range = (struct net_cidr){ .addr = UINT32_C(0x0a0c0000), .len = 16 };
        c->veth_pair_len = 31;
        c->sandbox_range = (struct net_cidr){ .addr = UINT32_C(0x0a0b0000), .len = 16 };
        c->slots = 256;
        c->tap_uid = -1;
        c->tap_gid = -1;
}

bool net_cidr_overlaps(const struct net_cidr *a, const struct net_cidr *b)
{
        uint8_t len = a->len < b->len ? a->len : b->len;
        return ((a->addr ^ b->addr) & cidr_mask(len)) == 0;
}

bool net_cidr_contains(const struct net_cidr *c, uint32_t ip)
{
        return ((c->addr ^ ip) & cidr_mask(c->len)) == 0;
}

uint32_t net_config_max_slots(const struct net_config *c)
{
        uint64_t pairs, sbx, n;

        if (c->veth_pair_len != 30 && c->veth_pair_len != 31)
                return 0;
        if (c->veth_range.len > c->veth_pair_len || c->sandbox_range.len > 30)
                return 0;
        /* Pair 0 is skipped so that slot i simply uses pair i. */
        pairs = (cidr_size(&c->veth_range) >> (32 - c->veth_pair_len)) - 1;
        /* Network and broadcast addresses of the sandbox range stay unused. */
        sbx = cidr_size(&c->sandbox_range) - 2;
        n = pairs < sbx ? pairs : sbx;
        return n > NET_SLOT_NUMBER_MAX ? NET_SLOT_NUMBER_MAX : (uint32_t)n;
}

static bool prefix_valid(const char *p)
{
        size_t n = strnlen(p, NET_PREFIX_MAX + 1);

        if (n == 0 || n > NET_PREFIX_MAX || p[0] < 'a' || p[0] > 'z')
                return false;
        for (size_t i = 1; i < n; i++) {
                char ch = p[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
                        return false;
        }
        return true;
}

static int range_validate(const struct net_cidr *r, const char *what,
                          struct ha_err *err)
{
        /* Guest-side link-local and loopback addresses are fixed inside every
         * namespace; a host range there would be ambiguous. */
        static const struct net_cidr reserved[] = {
                { UINT32_C(0xa9fe0000), 16 },   /* 169.254.0.0/16 */
                { UINT32_C(0x7f000000), 8 },    /* 127.0.0.0/8 */
                { UINT32_C(0x00000000), 8 },    /* 0.0.0.0/8 */
                { UINT32_C(0xe0000000), 3 },    /* multicast and class E */
        };
        char buf[32];

        if (r->len > 32 || (r->addr & ~cidr_mask(r->len)) != 0)
                return ha_err_set(err, -EINVAL, "%s: not a canonical network", what);
        for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
                if (net_cidr_overlaps(r, &reserved[i])) {
                        net_cidr_format(r, buf, sizeof buf);
                        return ha_err_set(err, -EINVAL,
                                          "%s %s overlaps a reserved range", what, buf);
                }
        }
        return 0;
}

int net_config_validate(const struct net_config *c, struct ha_err *err)
{
        uint32_t max;
        int r;

        if (!prefix_valid(c->prefix))
                return ha_err_set(err, -EINVAL,
                                  "prefix must match [a-z][a-z0-9]{0,%d}", NET_PREFIX_MAX - 1);
        if (c->veth_pair_len != 30 && c->veth_pair_len != 31)
                return ha_err_set(err, -EINVAL, "veth pair length must be 30 or 31");
        r = range_validate(&c->veth_range, "veth range", err);
        if (r < 0)
                return r;
        r = range_validate(&c->sandbox_range, "sandbox range", err);
        if (r < 0)
                return r;
        if (net_cidr_overlaps(&c->veth_range, &c->sandbox_range))
                return ha_err_set(err, -EINVAL, "veth range and sandbox range overlap");
        if (c->n_host_tcp_ports > NET_HOST_PORTS_MAX)
                return ha_err_set(err, -EINVAL, "at most %d host ports", NET_HOST_PORTS_MAX);
        for (size_t i = 0; i < c->n_host_tcp_ports; i++)
                if (c->host_tcp_ports[i] == 0)
                        return ha_err_set(err, -EINVAL, "host port 0 is not a port");
        if (c->tap_uid < -1 || c->tap_gid < -1)
                return ha_err_set(err, -EINVAL, "TAP owner uid/gid must be >= 0 or -1");
        max = net_config_max_slots(c);
        if (max == 0)
                return ha_err_set(err, -EINVAL, "ranges too small for any slot");
        if (c->slots < 1 || c->slots > max)
                return ha_err_set(err, -EINVAL, "slots must be 1..%u for these ranges", max);
        return 0;
}

int net_ip_format(uint32_t ip, char *buf, size_t size)
{
        int n = snprintf(buf, size, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff,
                         (ip >> 8) & 0xff, ip & 0xff);
        return n < 0 || (size_t)n >= size ? -ENOSPC : 0;
}

int net_cidr_format(const struct net_cidr *c, char *buf, size_t size)
{
        char ip[NET_IP_STR_MAX];
        int n;

        net_ip_format(c->addr, ip, sizeof ip);
        n = snprintf(buf, size, "%s/%u", ip, (unsigned)c->len);
        return n < 0 || (size_t)n >= size ? -ENOSPC : 0;
}

/* Parses a decimal number of at most |max| without sign, leading zeros or
 * overflow; advances *p past it. */
static int parse_dec(const char **p, uint32_t max, uint32_t *ret)
{
        const char *s = *p;
        uint32_t v = 0;
        size_t n = 0;

        while (s[n] >= '0' && s[n] <= '9') {
                v = v * 10 + (uint32_t)(s[n] - '0');
                if (v > max || ++n > 10)
                        return -EINVAL;
        }
        if (n == 0 || (n > 1 && s[0] == '0'))
                return -EINVAL;
        *p = s + n;
        *ret = v;
        return 0;
}

int net_cidr_parse(const char *s, struct net_cidr *ret)
{
        uint32_t addr = 0, v, len = 32;

        if (!s)
                return -EINVAL;
        for (int i = 0; i < 4; i++) {
                if (parse_dec(&s, 255, &v) < 0)
                        return -EINVAL;
                addr = addr << 8 | v;
                if (i < 3 && *s++ != '.')
                        return -EINVAL;
        }
        if (*s == '/') {
                s++;
                if (parse_dec(&s, 32, &len) < 0)
                        return -EINVAL;
        }
        if (*s != '\0')
                return -EINVAL;
        ret->len = (uint8_t)len;
        ret->addr = addr & cidr_mask(ret->len);
        return 0;
}

int net_slot_addr_make(const struct net_config *c, uint32_t slot,
                       struct net_slot_addr *ret)
{
        struct net_slot_addr a;
        uint32_t pair_size = UINT32_C(1) << (32 - c->veth_pair_len);
        uint32_t base;
        int n;

        if (slot < 1 || slot > c->slots || slot > NET_SLOT_NUMBER_MAX)
                return -ERANGE;
        memset(&a, 0, sizeof a);
        a.slot = slot;
        /* Lengths are bounded by NET_PREFIX_MAX and 5 digits; the checks below
         * cannot fail for a validated config but keep the formatting honest. */
        n = snprintf(a.netns, sizeof a.netns, "%s-%u", c->prefix, slot);
        if (n < 0 || (size_t)n >= sizeof a.netns)
                return -ENAMETOOLONG;
        n = snprintf(a.netns_path, sizeof a.netns_path, NET_NETNS_DIR "/%s", a.netns);
        if (n < 0 || (size_t)n >= sizeof a.netns_path)
                return -ENAMETOOLONG;
        n = snprintf(a.veth_host, sizeof a.veth_host, "%s-h%u", c->prefix, slot);
        if (n < 0 || (size_t)n >= sizeof a.veth_host)
                return -ENAMETOOLONG;
        n = snprintf(a.veth_ns, sizeof a.veth_ns, "%s-n%u", c->prefix, slot);
        if (n < 0 || (size_t)n >= sizeof a.veth_ns)
                return -ENAMETOOLONG;
        memcpy(a.tap, NET_TAP_NAME, sizeof NET_TAP_NAME);

        base = c->veth_range.addr + slot * pair_size;
        /* In a /30 the first and last addresses are network and broadcast. */
        a.veth_len = c->veth_pair_len;
        a.veth_host_ip = c->veth_pair_len == 31 ? base : base + 1;
        a.veth_ns_ip = a.veth_host_ip + 1;
        a.sandbox_ip = c->sandbox_range.addr + slot;
        net_ip_format(a.veth_host_ip, a.veth_host_ip_str, sizeof a.veth_host_ip_str);
        net_ip_format(a.veth_ns_ip, a.veth_ns_ip_str, sizeof a.veth_ns_ip_str);
        net_ip_format(a.sandbox_ip, a.sandbox_ip_str, sizeof a.sandbox_ip_str);
        *ret = a;
        return 0;
}

int net_netns_name_parse(const struct net_config *c, const char *name)
{
        size_t plen = strlen(c->prefix);
        const char *s;
        uint32_t v;

        if (strncmp(name, c->prefix, plen) != 0 || name[plen] != '-')
                return -EINVAL;
        s = name + plen + 1;
        if (parse_dec(&s, NET_SLOT_NUMBER_MAX, &v) < 0 || *s != '\0' || v == 0)
                return -EINVAL;
        return (int)v;
}

int net_slot_info_make(const struct net_config *c, uint32_t slot,
                       struct net_slot_info *ret)
{
        struct net_slot_addr a;
        int r = net_slot_addr_make(c, slot, &a);

        if (r < 0)
                return r;
        memset(ret, 0, sizeof *ret);
        ret->slot = slot;
        memcpy(ret->netns, a.netns, sizeof ret->netns);
        memcpy(ret->netns_path, a.netns_path, sizeof ret->netns_path);
        memcpy(ret->tap, a.tap, sizeof ret->tap);
        memcpy(ret->sandbox_ip, a.sandbox_ip_str, sizeof ret->sandbox_ip);
        memcpy(ret->guest_ip, NET_GUEST_IP, sizeof NET_GUEST_IP);
        memcpy(ret->guest_mac, NET_GUEST_MAC, sizeof NET_GUEST_MAC);
        _Static_assert(sizeof NET_GUEST_BOOT_ARG <= sizeof ret->boot_ip_arg, "boot arg");
        memcpy(ret->boot_ip_arg, NET_GUEST_BOOT_ARG, sizeof NET_GUEST_BOOT_ARG);
        return 0;
}
