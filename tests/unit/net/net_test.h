/*
 * net_test.h - helpers shared by the net/ tests: a unique prefix and
 * address ranges per run (so parallel runs of anyone's tests never
 * collide), and the "nothing of ours is left" check every root test ends
 * with. Static inline so each test executable takes what it uses.
 */
#ifndef NET_TEST_H
#define NET_TEST_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/ct.h"
#include "net/host.h"
#include "net/nft.h"
#include "net/rtnl.h"
#include "net/slot_addr.h"

#define NEED_ROOT()                                                     \
        do {                                                            \
                if (geteuid() != 0)                                     \
                        cr_skip_test("needs root: namespaces, netlink, nftables"); \
        } while (0)

static inline uint32_t net_test_rand(void)
{
        uint32_t v = 0;
        if (getrandom(&v, sizeof v, 0) != sizeof v)
                v = (uint32_t)getpid() * 2654435761u;
        return v;
}

/* A config nobody else uses: prefix "t" + 3 random characters, a /23 veth
 * range in 10.100-199.x and a /24 sandbox range in 10.200-249.x, re-drawn
 * while the host has routes there. */
static inline void net_test_config(struct net_config *c, uint32_t slots)
{
        static const char cs[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        struct ha_err e;

        net_config_default(c);
        for (int attempt = 0; attempt < 50; attempt++) {
                uint32_t r = net_test_rand();
                c->prefix[0] = 't';
                for (int i = 1; i < 4; i++)
                        c->prefix[i] = cs[(r >> (i * 6)) % 36];
                c->prefix[4] = '\0';
                r = net_test_rand();
                c->veth_range = (struct net_cidr){
                        .addr = (10u << 24) | ((100 + r % 100) << 16) | (((r >> 8) % 128) * 2) << 8,
                        .len = 23 };
                c->sandbox_range = (struct net_cidr){
                        .addr = (10u << 24) | ((200 + (r >> 16) % 50) << 16) | ((r >> 24) << 8),
                        .len = 24 };
                c->slots = slots;
                if (net_config_validate(c, &e) == 0 && net_host_check(c, &e) == 0)
                        return;
        }
        cr_assert_fail("no free address ranges for the test");
}

static inline int net_test_fd_count(void)
{
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        cr_assert(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

struct net_test_routes {
        const struct net_config *c;
        int                      n;
};

static inline int net_test_route_cb(const struct net_rtnl_route *rt, void *arg)
{
        struct net_test_routes *k = arg;
        struct net_cidr d = { rt->dst, rt->len };
        if (rt->len > 0 && (net_cidr_overlaps(&d, &k->c->veth_range) ||
                            net_cidr_overlaps(&d, &k->c->sandbox_range)))
                k->n++;
        return 0;
}

/* Counts what the prefix/ranges of |c| still own on the host: namespaces,
 * links, routes, the host nft table. Logs each kind found. */
static inline int net_test_leftovers(const struct net_config *c)
{
        struct net_test_routes k = { .c = c };
        struct if_nameindex *ifs, *i;
        struct nl_sock *sk;
        struct dirent *de;
        struct ha_err e;
        char want[32], text[128];
        size_t plen;
        int n = 0;
        DIR *d;

        snprintf(want, sizeof want, "%s-", c->prefix);
        plen = strlen(want);
        d = opendir(NET_NETNS_DIR);
        if (d) {
                while ((de = readdir(d)))
                        if (strncmp(de->d_name, want, plen) == 0) {
                                cr_log_warn("leftover netns %s", de->d_name);
                                n++;
                        }
                closedir(d);
        }
        ifs = if_nameindex();
        for (i = ifs; i && i->if_name; i++)
                if (strncmp(i->if_name, want, plen) == 0) {
                        cr_log_warn("leftover link %s", i->if_name);
                        n++;
                }
        if_freenameindex(ifs);
        cr_assert_eq(net_rtnl_open(&sk), 0);
        cr_assert_eq(net_rtnl_routes_foreach(sk, net_test_route_cb, &k), 0);
        net_rtnl_close(sk);
        if (k.n)
                cr_log_warn("%d leftover routes", k.n);
        n += k.n;
        snprintf(text, sizeof text, "list table inet %s\n", c->prefix);
        if (net_nft_run(text, &e) == 0) {
                cr_log_warn("leftover nft table inet %s", c->prefix);
                n++;
        }
        return n;
}

/* Runs a command given as argv (tests may; the library never does).
 * Returns its exit status. */
static inline int net_test_run(char *const argv[])
{
        pid_t pid = fork();
        int st = 0;

        if (pid == 0) {
                int fd = open("/dev/null", O_WRONLY);
                dup2(fd, 1);
                execvp(argv[0], argv);
                _exit(127);
        }
        if (pid < 0 || waitpid(pid, &st, 0) < 0)
                return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
