/*
 * recover.c - start-up recovery of network slots (net_pool_recover(), see
 * pool.h).
 *
 * What a crashed run can leave: namespaces under /run/netns named
 * "<prefix>-<i>" (with their TAPs and rules inside), host veths
 * "<prefix>-h<i>", host routes into our ranges, host conntrack entries of
 * sandbox addresses, and the host table (replaced by net_pool_new()). Slot
 * names are pure functions of the number, so the prefix is enough to find
 * all of it; numbers beyond today's N (the config shrank) are removed by
 * name. Slots that live sandboxes own are kept when intact, else rebuilt.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/pool_int.h"
#include "net/rtnl.h"

#include <linux/rtnetlink.h>

struct sweep {
        net_pool      *p;
        const bool    *keep;            /* [N + 1]: adopted slots */
        char           veth_prefix[NET_PREFIX_MAX + 3];
        struct nl_sock *sk;
        int            first;           /* first error */
};

static void keep_first(struct sweep *w, int r)
{
        if (w->first == 0 && r < 0)
                w->first = r;
}

/* Slot number of "<prefix>-h<i>", or -EINVAL. */
static int veth_slot(const struct sweep *w, const char *name)
{
        const char *s = name + strlen(w->veth_prefix);
        char *end;
        unsigned long v;

        if (*s < '1' || *s > '9')
                return -EINVAL;
        v = strtoul(s, &end, 10);
        if (*end != '\0' || v > NET_SLOT_NUMBER_MAX)
                return -EINVAL;
        return (int)v;
}

static int sweep_link(const char *name, void *arg)
{
        struct sweep *w = arg;
        int s = veth_slot(w, name), r;

        if (s > 0 && (uint32_t)s <= w->p->cfg.slots && w->keep[s])
                return 0;
        r = net_rtnl_link_del(w->sk, name);
        ha_log_info("net.recover.link_removed", "link=%s errno=%d", name, r < 0 ? -r : 0);
        if (r != -ENODEV)
                keep_first(w, r);
        return 0;
}

static int sweep_route(const struct net_rtnl_route *rt, void *arg)
{
        struct sweep *w = arg;
        const struct net_config *c = &w->p->cfg;
        struct net_cidr d = { .addr = rt->dst, .len = rt->len };
        int s, r;

        if (rt->table != RT_TABLE_MAIN || rt->len == 0)
                return 0;
        if (!(net_cidr_contains(&c->sandbox_range, rt->dst) && rt->len >= c->sandbox_range.len) &&
            !(net_cidr_contains(&c->veth_range, rt->dst) && rt->len >= c->veth_range.len))
                return 0;
        if (strncmp(rt->oif_name, w->veth_prefix, strlen(w->veth_prefix)) == 0) {
                s = veth_slot(w, rt->oif_name);
                if (s > 0 && (uint32_t)s <= c->slots && w->keep[s])
                        return 0;
        }
        r = net_rtnl_route_del(w->sk, d.addr, d.len);
        if (r != -ENOENT)
                keep_first(w, r);
        return 0;
}

static int sweep_netns(struct sweep *w)
{
        const struct net_config *c = &w->p->cfg;
        struct ha_err e;
        struct dirent *de;
        DIR *d;
        int s, r;

        d = opendir(NET_NETNS_DIR);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                s = net_netns_name_parse(c, de->d_name);
                if (s < 0)
                        continue;
                if ((uint32_t)s <= c->slots && w->keep[s])
                        continue;
                if ((uint32_t)s <= c->slots)
                        r = net_slot_teardown(c, (uint32_t)s, &e);
                else
                        r = net_slot_remove_names(c->prefix, (uint32_t)s);
                ha_log_info("net.recover.slot_removed", "netns=%s errno=%d", de->d_name,
                            r < 0 ? -r : 0);
                keep_first(w, r);
        }
        closedir(d);
        return 0;
}

int net_pool_recover(net_pool *p, const uint32_t *owned, size_t n_owned,
                     struct ha_err *err)
{
        const struct net_config *c = &p->cfg;
        struct sweep w = { .p = p };
        bool *keep, busy;
        int r, first_build = 0;

        pthread_mutex_lock(&p->lock);
        busy = p->started || p->touched;
        pthread_mutex_unlock(&p->lock);
        if (busy)
                return ha_err_set(err, -EBUSY, "recovery must run before start and acquire");
        for (size_t i = 0; i < n_owned; i++)
                if (owned[i] < 1 || owned[i] > c->slots)
                        return ha_err_set(err, -EINVAL, "owned slot %u outside 1..%u",
                                          owned[i], c->slots);
        keep = calloc(c->slots + 1, sizeof *keep);
        if (!keep)
                return ha_err_set(err, -ENOMEM, "out of memory");
        /* An owned slot is kept only when it is whole; anything less is torn
         * down by the sweep and rebuilt below. */
        for (size_t i = 0; i < n_owned; i++)
                keep[owned[i]] = net_slot_is_built(c, owned[i]);
        w.keep = keep;
        snprintf(w.veth_prefix, sizeof w.veth_prefix, "%s-h", c->prefix);

        r = sweep_netns(&w);
        keep_first(&w, r);
        r = net_rtnl_open(&w.sk);
        if (r == 0) {
                keep_first(&w, net_rtnl_links_foreach(w.sk, w.veth_prefix, sweep_link, &w));
                keep_first(&w, net_rtnl_routes_foreach(w.sk, sweep_route, &w));
                net_rtnl_close(w.sk);
        } else {
                keep_first(&w, r);
        }
        if (w.first < 0)
                ha_log_warn("net.recover.sweep_incomplete", "errno=%d", -w.first);

        for (size_t i = 0; i < n_owned; i++) {
                uint32_t s = owned[i];
                struct ha_err e;

                if (keep[s])
                        continue;
                net_slot_teardown(c, s, NULL);
                r = net_slot_build(c, s, NULL, &e);
                if (r < 0) {
                        ha_log_warn("net.recover.rebuild_failed", "slot=%u msg=\"%s\"", s, e.msg);
                        if (first_build == 0)
                                first_build = ha_err_set(err, r, "%s", e.msg);
                } else {
                        ha_log_info("net.recover.slot_rebuilt", "slot=%u", s);
                }
                keep[s] = true;         /* in use either way: never hand it out twice */
        }

        pthread_mutex_lock(&p->lock);
        for (uint32_t s = 1; s <= c->slots; s++) {
                p->state[s] = keep[s] ? SLOT_IN_USE : SLOT_FREE;
                p->egress_set[s] = keep[s];     /* unknown policy: reset on release */
        }
        net_pool_free_stack_rebuild(p);
        pthread_mutex_unlock(&p->lock);
        free(keep);
        return first_build;
}
