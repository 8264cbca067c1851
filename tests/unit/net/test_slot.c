/*
 * test_slot.c - one real slot end to end (as root): what it builds, as the
 * kernel reports it; a test guest behind the TAP reached from the host and
 * reaching out through NAT; egress policies and the host guard; a failure
 * injected at every build step leaving nothing behind.
 *
 * The "guest" is a namespace <prefix>g with a TAP gtap (169.254.0.21/30,
 * default via .22) whose frames a child process relays to and from the
 * slot's tap0, as Firecracker's virtio-net would. The "outside world" is a
 * namespace <prefix>x joined to the host by veth <prefix>-x0/<prefix>-x1.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "net/netns.h"
#include "net/pool.h"
#include "net_test.h"

TestSuite(net_slot, .timeout = 60);

/* ---- failure injection ------------------------------------------------- */

Test(net_slot, failure_at_every_step_leaves_nothing)
{
        struct net_config c;
        struct net_fault f;
        struct ha_err e;
        int fds, r;

        NEED_ROOT();
        net_test_config(&c, 4);
        fds = net_test_fd_count();
        for (unsigned k = 1; k <= NET_STEP_COUNT; k++) {
                f = (struct net_fault){ .fail_at = k };
                r = net_slot_build(&c, 2, &f, &e);
                cr_assert_eq(r, -EIO, "step %u (%s): r=%d %s", k, net_step_name(k), r, e.msg);
                cr_assert(strstr(e.msg, net_step_name(k)), "%s", e.msg);
                cr_assert_eq(net_test_leftovers(&c), 0, "leftovers after failing step %s",
                             net_step_name(k));
        }
        /* Past the last step the build succeeds, and teardown is total. */
        f = (struct net_fault){ .fail_at = NET_STEP_COUNT + 1 };
        cr_assert_eq(net_slot_build(&c, 2, &f, &e), 0, "%s", e.msg);
        cr_assert_eq(f.seen, NET_STEP_COUNT);
        cr_assert(net_slot_is_built(&c, 2));
        cr_assert_eq(net_slot_teardown(&c, 2, &e), 0, "%s", e.msg);
        cr_assert(!net_slot_is_built(&c, 2));
        cr_assert_eq(net_test_leftovers(&c), 0);
        cr_assert_eq(net_test_fd_count(), fds);
}

static int cmd_output(char *const argv[], char *out, size_t size);

Test(net_slot, build_twice_is_eexist_and_keeps_the_first)
{
        struct net_config c;
        struct ha_err e;
        char out[8192], ns[32];

        NEED_ROOT();
        net_test_config(&c, 4);
        c.tap_uid = 4242;
        c.tap_gid = 4343;
        cr_assert_eq(net_slot_build(&c, 1, NULL, &e), 0, "%s", e.msg);
        /* The TAP is persistent and owned as configured (for a jailed VMM). */
        snprintf(ns, sizeof ns, "%s-1", c.prefix);
        cr_assert_eq(cmd_output((char *[]){ "ip", "-n", ns, "-d", "-j", "link", "show", "tap0",
                                            NULL }, out, sizeof out), 0);
        cr_assert(strstr(out, "\"persist\":true"), "%s", out);
        cr_assert(strstr(out, "\"user\":4242"), "%s", out);
        cr_assert(strstr(out, "\"group\":4343"), "%s", out);
        /* No IPv6 on the slot's links (no link-local chatter moving the
         * host veth's count, see net_slot_scrub), here and in the namespace. */
        char path[128];
        snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s-h1/disable_ipv6", c.prefix);
        FILE *f = fopen(path, "r");
        if (f) {        /* a host without IPv6 has no such file */
                cr_assert_eq(fgetc(f), '1', "%s", path);
                fclose(f);
                cr_assert_eq(cmd_output((char *[]){ "ip", "netns", "exec", ns, "cat",
                                                    "/proc/sys/net/ipv6/conf/tap0/disable_ipv6",
                                                    NULL }, out, sizeof out), 0);
                cr_assert_eq(out[0], '1', "tap0: %s", out);
        }
        cr_assert_eq(net_slot_build(&c, 1, NULL, &e), -EEXIST);
        cr_assert(net_slot_is_built(&c, 1));
        cr_assert_eq(net_slot_teardown(&c, 1, &e), 0, "%s", e.msg);
        cr_assert_eq(net_slot_teardown(&c, 1, &e), 0, "teardown of nothing: %s", e.msg);
        cr_assert_eq(net_test_leftovers(&c), 0);
}

/* ---- inspection via `ip -j` (tests may run commands) -------------------- */

static int cmd_output(char *const argv[], char *out, size_t size)
{
        int p[2], st;
        size_t n = 0;
        ssize_t k;
        pid_t pid;

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        if (pid == 0) {
                dup2(p[1], 1);
                execvp(argv[0], argv);
                _exit(127);
        }
        close(p[1]);
        while (n + 1 < size && (k = read(p[0], out + n, size - n - 1)) > 0)
                n += (size_t)k;
        out[n] = '\0';
        close(p[0]);
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void assert_has(const char *hay, const char *needle, const char *what)
{
        cr_assert(strstr(hay, needle), "%s: no '%s' in: %s", what, needle, hay);
}

/* ---- the guest: relay child, TCP helpers --------------------------------- */

struct env {
        struct net_config   c;
        net_pool           *pool;
        struct net_slot_info info;
        struct net_slot_addr a;
        char                gpath[64], xpath[64], xname[16], xhost[16], xpeer[16];
        uint32_t            ext_ip;     /* the outside listener's address */
        char                ext_ip_str[16];
        pid_t               relay;
        uint16_t            open_port;  /* host port guests may reach (config) */
        uint16_t            shut_port;  /* host port they may not */
};

static int tap_open(const char *name)
{
        struct ifreq ifr;
        int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

        if (fd < 0)
                return -1;
        memset(&ifr, 0, sizeof ifr);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* Child: opens the slot's tap0 (as the VMM would) and a TAP in the guest
 * namespace, then copies frames both ways until killed. Syscalls only. */
static void relay_main(const char *slot_ns, const char *guest_ns, int ready)
{
        char buf[65536];
        int sfd, gfd, a, b;

        sfd = open(slot_ns, O_RDONLY | O_CLOEXEC);
        gfd = open(guest_ns, O_RDONLY | O_CLOEXEC);
        if (sfd < 0 || gfd < 0 || setns(sfd, CLONE_NEWNET) < 0)
                _exit(1);
        a = tap_open(NET_TAP_NAME);
        if (a < 0 || setns(gfd, CLONE_NEWNET) < 0)
                _exit(2);
        b = tap_open("gtap");
        if (b < 0)
                _exit(3);
        if (write(ready, "1", 1) != 1)
                _exit(4);
        for (;;) {
                struct pollfd p[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };
                if (poll(p, 2, -1) < 0)
                        continue;
                for (int i = 0; i < 2; i++) {
                        if (!(p[i].revents & POLLIN))
                                continue;
                        ssize_t n = read(p[i].fd, buf, sizeof buf);
                        if (n > 0 && write(p[1 - i].fd, buf, (size_t)n) < 0)
                                continue;
                }
        }
}

struct sock_job {
        uint16_t port;          /* listen on it when nonzero */
        int      fd;
};

static int make_socket(void *arg)
{
        struct sock_job *j = arg;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(j->port) };
        int one = 1;

        j->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (j->fd < 0)
                return -errno;
        if (j->port) {
                setsockopt(j->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                if (bind(j->fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(j->fd, 8) < 0)
                        return -errno;
        }
        return 0;
}

struct ct_job {
        uint32_t ip;
        int      n;
};

static int ct_count_job(void *arg)
{
        struct ct_job *j = arg;
        j->n = net_ct_count_ip(j->ip);
        return j->n < 0 ? j->n : 0;
}

/* Conntrack entries of |ip| inside the namespace at |path|. */
static int ns_ct_count(const char *path, uint32_t ip)
{
        struct ct_job j = { .ip = ip };
        cr_assert_eq(net_netns_run(path, ct_count_job, &j), 0);
        return j.n;
}

static int egress_table_job(void *arg)
{
        struct ha_err e;
        (void)arg;
        return net_nft_run("list table inet egress\n", &e);
}

/* A socket of the namespace at |path| (listening on |port| when nonzero). */
static int ns_socket(const char *path, uint16_t port)
{
        struct sock_job j = { .port = port, .fd = -1 };
        int r = path ? net_netns_run(path, make_socket, &j) : make_socket(&j);
        cr_assert_eq(r, 0, "socket in %s: %s", path ? path : "host", strerror(-r));
        return j.fd;
}

/* Connects |fd| to ip:port within |ms|; on success checks that the
 * listener accepts and a byte goes through. Returns 0 or -errno. */
static int try_connect(int fd, uint32_t ip, uint16_t port, int lfd, int ms)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(ip) };
        struct pollfd p = { fd, POLLOUT, 0 };
        int err = 0, c;
        socklen_t len = sizeof err;
        char ch = 0;

        fcntl(fd, F_SETFL, O_NONBLOCK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
                return -errno;
        if (poll(&p, 1, ms) != 1)
                return -ETIMEDOUT;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err)
                return -err;
        p = (struct pollfd){ lfd, POLLIN, 0 };
        cr_assert_eq(poll(&p, 1, 2000), 1, "listener saw no connection");
        c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        cr_assert(c >= 0);
        cr_assert_eq(write(fd, "x", 1), 1);
        p = (struct pollfd){ c, POLLIN, 0 };
        cr_assert_eq(poll(&p, 1, 2000), 1);
        cr_assert_eq(read(c, &ch, 1), 1);
        cr_assert_eq(ch, 'x');
        close(c);
        return 0;
}

static void run_or_fail(char *const argv[])
{
        int st = net_test_run(argv);
        cr_assert_eq(st, 0, "%s %s %s %s failed (%d)", argv[0], argv[1], argv[2], argv[3], st);
}

static void env_up(struct env *v)
{
        struct net_pool_config pc;
        struct ha_err e;
        char ready, host_cidr[24], peer_cidr[24], ip[16];
        int p[2], s;
        uint32_t r = net_test_rand();

        net_pool_config_default(&pc);
        net_test_config(&pc.net, 4);
        pc.warm = 0;
        /* Random host ports: the host namespace is shared with everyone. */
        v->open_port = (uint16_t)(20000 + r % 20000);
        v->shut_port = (uint16_t)(v->open_port + 1);
        pc.net.host_tcp_ports[0] = v->open_port;
        pc.net.n_host_tcp_ports = 1;
        v->c = pc.net;
        cr_assert_eq(net_pool_new(&pc, &v->pool, &e), 0, "%s", e.msg);
        s = net_pool_acquire(v->pool, NULL, &v->info, &e);
        cr_assert_eq(s, 1, "%s", e.msg);
        cr_assert_eq(net_slot_addr_make(&v->c, (uint32_t)s, &v->a), 0);

        /* The outside world: 172.31.<r>.0/30 on veth <prefix>-x0 <-> -x1. */
        snprintf(v->xname, sizeof v->xname, "%sx", v->c.prefix);
        snprintf(v->xpath, sizeof v->xpath, NET_NETNS_DIR "/%s", v->xname);
        snprintf(v->xhost, sizeof v->xhost, "%s-x0", v->c.prefix);
        snprintf(v->xpeer, sizeof v->xpeer, "%s-x1", v->c.prefix);
        v->ext_ip = (172u << 24) | (31u << 16) | ((r % 256) << 8) | 2;
        net_ip_format(v->ext_ip, v->ext_ip_str, sizeof v->ext_ip_str);
        net_ip_format(v->ext_ip - 1, ip, sizeof ip);
        snprintf(host_cidr, sizeof host_cidr, "%s/30", ip);
        snprintf(peer_cidr, sizeof peer_cidr, "%s/30", v->ext_ip_str);
        cr_assert_eq(net_netns_create(v->xpath, &e), 0, "%s", e.msg);
        run_or_fail((char *[]){ "ip", "link", "add", v->xhost, "type", "veth", "peer", "name",
                                v->xpeer, "netns", v->xname, NULL });
        run_or_fail((char *[]){ "ip", "addr", "add", host_cidr, "dev", v->xhost, NULL });
        run_or_fail((char *[]){ "ip", "link", "set", v->xhost, "up", NULL });
        run_or_fail((char *[]){ "ip", "-n", v->xname, "addr", "add", peer_cidr, "dev", v->xpeer,
                                NULL });
        run_or_fail((char *[]){ "ip", "-n", v->xname, "link", "set", v->xpeer, "up", NULL });
        run_or_fail((char *[]){ "ip", "-n", v->xname, "link", "set", "lo", "up", NULL });

        /* The guest namespace and the relay. */
        snprintf(v->gpath, sizeof v->gpath, NET_NETNS_DIR "/%sg", v->c.prefix);
        cr_assert_eq(net_netns_create(v->gpath, &e), 0, "%s", e.msg);
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        v->relay = fork();
        cr_assert(v->relay >= 0);
        if (v->relay == 0)
                relay_main(v->info.netns_path, v->gpath, p[1]);
        close(p[1]);
        cr_assert_eq(read(p[0], &ready, 1), 1, "relay failed to start");
        close(p[0]);
        char *g = strrchr(v->gpath, '/') + 1;
        run_or_fail((char *[]){ "ip", "-n", g, "link", "set", "gtap", "address",
                                NET_GUEST_MAC, "up", NULL });
        run_or_fail((char *[]){ "ip", "-n", g, "link", "set", "lo", "up", NULL });
        run_or_fail((char *[]){ "ip", "-n", g, "addr", "add", NET_GUEST_IP "/30", "dev", "gtap",
                                NULL });
        run_or_fail((char *[]){ "ip", "-n", g, "route", "add", "default", "via", NET_TAP_IP,
                                NULL });
}

/* A connection from the host to a listener in the guest on |port|: traffic
 * through the slot that leaves conntrack entries on the host. */
static void host_to_guest(struct env *v, uint32_t ip, uint16_t port)
{
        int l = ns_socket(v->gpath, port), fd = ns_socket(NULL, 0);
        cr_assert_eq(try_connect(fd, ip, port, l, 3000), 0, "guest unreachable on port %u", port);
        close(fd);
        close(l);
        cr_assert_gt(net_ct_count_ip(ip), 0);
}

static void env_down(struct env *v)
{
        if (v->relay > 0) {
                kill(v->relay, SIGKILL);
                waitpid(v->relay, NULL, 0);
        }
        net_test_run((char *[]){ "ip", "link", "del", v->xhost, NULL });
        net_netns_remove(v->gpath);
        net_netns_remove(v->xpath);
        if (v->pool) {
                cr_assert_eq(net_pool_release(v->pool, v->info.slot), 0);
                net_pool_free(v->pool);
        }
}

Test(net_slot, real_slot_inspected_and_guest_reachable_both_ways)
{
        static struct env v;
        char out[16384], name_filter[64];
        struct ha_err e;
        uint32_t sbx;
        int l, fd, fds;

        NEED_ROOT();
        fds = net_test_fd_count();
        env_up(&v);
        sbx = v.a.sandbox_ip;

        /* What the slot looks like, as iproute2 reads it from the kernel. */
        char *ns = v.info.netns;
        cr_assert_eq(cmd_output((char *[]){ "ip", "-n", ns, "-j", "addr", NULL }, out, sizeof out), 0);
        assert_has(out, "\"ifname\":\"tap0\"", "ns addr");
        assert_has(out, "\"local\":\"169.254.0.22\",\"prefixlen\":30", "tap address");
        snprintf(name_filter, sizeof name_filter, "\"ifname\":\"%s\"", v.a.veth_ns);
        assert_has(out, name_filter, "ns veth");
        snprintf(name_filter, sizeof name_filter, "\"local\":\"%s\",\"prefixlen\":31",
                 v.a.veth_ns_ip_str);
        assert_has(out, name_filter, "ns veth address");
        cr_assert_eq(cmd_output((char *[]){ "ip", "-n", ns, "-j", "route", NULL }, out, sizeof out), 0);
        snprintf(name_filter, sizeof name_filter, "\"gateway\":\"%s\"", v.a.veth_host_ip_str);
        assert_has(out, "\"dst\":\"default\"", "ns default route");
        assert_has(out, name_filter, "ns default route gateway");
        cr_assert_eq(cmd_output((char *[]){ "ip", "-j", "route", "show", v.a.sandbox_ip_str, NULL },
                                out, sizeof out), 0);
        snprintf(name_filter, sizeof name_filter, "\"gateway\":\"%s\"", v.a.veth_ns_ip_str);
        assert_has(out, name_filter, "host route to the sandbox address");
        cr_assert_eq(cmd_output((char *[]){ "ip", "-n", ns, "-d", "-j", "link", "show", "tap0", NULL },
                                out, sizeof out), 0);
        assert_has(out, "\"type\":\"tap\"", "tap kind");
        cr_assert_eq(cmd_output((char *[]){ "ip", "netns", "exec", ns, "nft", "list", "ruleset",
                                            NULL }, out, sizeof out), 0);
        snprintf(name_filter, sizeof name_filter, "dnat to 169.254.0.21");
        assert_has(out, name_filter, "DNAT");
        snprintf(name_filter, sizeof name_filter, "snat to %s", v.a.sandbox_ip_str);
        assert_has(out, name_filter, "SNAT");
        cr_assert_eq(cmd_output((char *[]){ "nft", "list", "table", "inet", v.c.prefix, NULL },
                                out, sizeof out), 0);
        assert_has(out, "masquerade", "host masquerade");

        /* Host -> guest listener at the sandbox address (DNAT through tap0). */
        l = ns_socket(v.gpath, 8080);
        fd = ns_socket(NULL, 0);
        cr_assert_eq(try_connect(fd, sbx, 8080, l, 3000), 0, "host could not reach the guest");
        close(fd);
        close(l);

        /* Guest -> outside listener through SNAT + host masquerade. */
        l = ns_socket(v.xpath, 9090);
        fd = ns_socket(v.gpath, 0);
        cr_assert_eq(try_connect(fd, v.ext_ip, 9090, l, 3000), 0, "guest could not get out");
        close(fd);

        /* Deny all: the same connection is now dropped. */
        struct net_egress deny = { .mode = NET_EGRESS_DENY_ALL };
        cr_assert_eq(net_pool_egress_set(v.pool, v.info.slot, &deny, &e), 0, "%s", e.msg);
        fd = ns_socket(v.gpath, 0);
        cr_assert_eq(try_connect(fd, v.ext_ip, 9090, l, 700), -ETIMEDOUT, "deny-all let it out");
        close(fd);
        /* ... while the host still reaches the guest (replies are allowed). */
        int gl = ns_socket(v.gpath, 8081);
        fd = ns_socket(NULL, 0);
        cr_assert_eq(try_connect(fd, sbx, 8081, gl, 3000), 0, "deny-all broke inbound");
        close(fd);
        close(gl);

        /* Allow-list with the outside /32: out again; deny-list of it: blocked. */
        struct net_cidr ext = { v.ext_ip, 32 };
        struct net_egress allow = { .mode = NET_EGRESS_ALLOW_LIST, .cidrs = &ext, .n_cidrs = 1 };
        cr_assert_eq(net_pool_egress_set(v.pool, v.info.slot, &allow, &e), 0, "%s", e.msg);
        fd = ns_socket(v.gpath, 0);
        cr_assert_eq(try_connect(fd, v.ext_ip, 9090, l, 3000), 0, "allow-list blocked it");
        close(fd);
        struct net_egress denyl = { .mode = NET_EGRESS_DENY_LIST, .cidrs = &ext, .n_cidrs = 1 };
        cr_assert_eq(net_pool_egress_set(v.pool, v.info.slot, &denyl, &e), 0, "%s", e.msg);
        fd = ns_socket(v.gpath, 0);
        cr_assert_eq(try_connect(fd, v.ext_ip, 9090, l, 700), -ETIMEDOUT, "deny-list let it out");
        close(fd);
        close(l);

        /* Whatever the policy, the host itself is off limits: a listener on
         * the host (any address) is not reachable from the guest, except on
         * a port the config opens. */
        cr_assert_eq(net_pool_egress_set(v.pool, v.info.slot, NULL, &e), 0, "%s", e.msg);
        l = ns_socket(NULL, v.shut_port);
        fd = ns_socket(v.gpath, 0);
        cr_assert_eq(try_connect(fd, v.a.veth_host_ip, v.shut_port, l, 700), -ETIMEDOUT,
                     "guest reached the host's own address");
        close(fd);
        close(l);
        l = ns_socket(NULL, v.open_port);
        fd = ns_socket(v.gpath, 0);
        cr_assert_eq(try_connect(fd, v.a.veth_host_ip, v.open_port, l, 3000), 0,
                     "configured host port not reachable");
        close(fd);
        close(l);

        /* Sandboxes cannot reach each other: slot 2's namespace answers the
         * host (connection refused: nothing listens) but not slot 1's guest
         * (the host's forward guard drops it: timeout). */
        int s2 = net_pool_acquire(v.pool, NULL, NULL, &e);
        struct net_slot_addr a2;
        cr_assert_eq(s2, 2, "%d %s", s2, e.msg);
        cr_assert_eq(net_slot_addr_make(&v.c, 2, &a2), 0);
        l = ns_socket(NULL, 0);         /* no listener is needed: refused */
        fd = ns_socket(NULL, 0);
        cr_assert_eq(try_connect(fd, a2.veth_ns_ip, 9, l, 3000), -ECONNREFUSED);
        close(fd);
        fd = ns_socket(v.gpath, 0);
        cr_assert_eq(try_connect(fd, a2.veth_ns_ip, 9, l, 700), -ETIMEDOUT,
                     "guest of slot 1 reached slot 2");
        close(fd);
        close(l);
        cr_assert_eq(net_pool_release(v.pool, 2), 0);

        /* Conntrack state exists for the sandbox address, on the host and in
         * the namespace (its NAT). A scrub clears both and the egress table. */
        cr_assert_eq(net_pool_egress_set(v.pool, v.info.slot, &deny, &e), 0, "%s", e.msg);
        cr_assert_eq(net_netns_run(v.info.netns_path, egress_table_job, NULL), 0);
        cr_assert_gt(net_ct_count_ip(sbx), 0);
        cr_assert_gt(ns_ct_count(v.info.netns_path, sbx), 0);
        uint64_t pkts = NET_PKTS_UNKNOWN;
        cr_assert_eq(net_slot_scrub(&v.c, v.info.slot, true, &pkts, &e), 0, "%s", e.msg);
        cr_assert_eq(net_ct_count_ip(sbx), 0, "host conntrack entries survived the scrub");
        cr_assert_eq(ns_ct_count(v.info.netns_path, sbx), 0, "namespace entries survived");
        cr_assert_neq(net_netns_run(v.info.netns_path, egress_table_job, NULL), 0,
                      "egress table survived the scrub");
        /* The scrub noted the host veth's count as its flush began; with no
         * packet since, the next scrub has nothing new to flush and skips
         * the walk (the count stays). */
        uint64_t at_flush = pkts;
        cr_assert_neq(at_flush, NET_PKTS_UNKNOWN);
        cr_assert_geq(net_slot_host_packets(&v.c, v.info.slot), at_flush);
        cr_assert_eq(net_slot_scrub(&v.c, v.info.slot, false, &pkts, &e), 0, "%s", e.msg);
        /* After more traffic the count moved: the next scrub flushes again. */
        host_to_guest(&v, sbx, 8082);
        cr_assert_gt(net_slot_host_packets(&v.c, v.info.slot), pkts, "traffic did not count");
        cr_assert_eq(net_slot_scrub(&v.c, v.info.slot, false, &pkts, &e), 0, "%s", e.msg);
        cr_assert_eq(net_ct_count_ip(sbx), 0, "host entries of new traffic survived a scrub");
        cr_assert_gt(pkts, at_flush);
        /* And after more traffic, release + free clear everything again. */
        host_to_guest(&v, sbx, 8083);
        env_down(&v);
        cr_assert_eq(net_ct_count_ip(sbx), 0, "host conntrack entries remain");
        cr_assert_eq(net_test_leftovers(&v.c), 0);
        cr_assert_eq(net_test_fd_count(), fds);
}
