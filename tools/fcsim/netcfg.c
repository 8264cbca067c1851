/*
 * netcfg.c - see netcfg.h. Address, route and link flags use the classic
 * SIOCSIF* / SIOCADDRT ioctls on an AF_INET datagram socket: enough for
 * one static IPv4 address and a default route, and free of libnl state in
 * a process that is about to exec.
 */
#include "netcfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int parse_addr(const char *s, size_t n, struct in_addr *out)
{
        char tmp[INET_ADDRSTRLEN];
        if (n == 0) {
                out->s_addr = 0;
                return 0;
        }
        if (n >= sizeof tmp)
                return -EINVAL;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        return inet_pton(AF_INET, tmp, out) == 1 ? 0 : -EINVAL;
}

int fcsim_ipcfg_parse(const char *boot_args, struct fcsim_ipcfg *ret, struct ha_err *err)
{
        memset(ret, 0, sizeof *ret);
        const char *arg = NULL;
        for (const char *p = boot_args; p && *p;) {
                while (*p == ' ')
                        p++;
                if (strncmp(p, "ip=", 3) == 0)
                        arg = p + 3;
                p = strchr(p, ' ');
        }
        if (!arg)
                return 0;
        size_t alen = strcspn(arg, " ");
        /* Split on ':' into at most 7 fields (DNS fields are ignored). */
        const char *f[7] = { 0 };
        size_t fl[7] = { 0 };
        unsigned nf = 0;
        const char *s = arg, *end = arg + alen;
        while (nf < 7) {
                const char *c = memchr(s, ':', (size_t)(end - s));
                f[nf] = s;
                fl[nf] = (size_t)((c ? c : end) - s);
                nf++;
                if (!c)
                        break;
                s = c + 1;
        }
        /* ip=dhcp, ip=off and friends: nothing static to configure. */
        if (nf == 1)
                return 0;
        if (parse_addr(f[0], fl[0], &ret->client) < 0 || ret->client.s_addr == 0)
                return ha_err_set(err, -EINVAL, "ip= boot argument: bad client address");
        if (nf > 2 && parse_addr(f[2], fl[2], &ret->gateway) < 0)
                return ha_err_set(err, -EINVAL, "ip= boot argument: bad gateway address");
        if (nf > 3 && parse_addr(f[3], fl[3], &ret->netmask) < 0)
                return ha_err_set(err, -EINVAL, "ip= boot argument: bad netmask");
        if (nf > 4) {
                if (fl[4] >= sizeof ret->hostname)
                        return ha_err_set(err, -EINVAL, "ip= boot argument: hostname too long");
                memcpy(ret->hostname, f[4], fl[4]);
        }
        if (nf > 5) {
                if (fl[5] >= sizeof ret->dev)
                        return ha_err_set(err, -EINVAL, "ip= boot argument: device name too long");
                memcpy(ret->dev, f[5], fl[5]);
        }
        ret->present = true;
        return 0;
}

int fcsim_tap_open(const char *name, int *ret_fd, struct ha_err *err)
{
        int r;
        struct ifreq ifr;
        if (strlen(name) >= IFNAMSIZ || name[0] == '\0')
                return ha_err_set(err, -EINVAL, "Invalid TAP name %s", name);
        int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                return ha_err_set(
                        err, r,
                        "Open tap device failed: cannot open /dev/net/tun: %s (os error %d)",
                        strerror(-r), -r);
        }
        memset(&ifr, 0, sizeof ifr);
        memcpy(ifr.ifr_name, name, strlen(name));
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
                r = -errno;
                close(fd);
                return ha_err_set(
                        err, r,
                        "Open tap device failed: Error while creating ifreq structure: %s "
                        "(os error %d). Invalid TUN/TAP Backend provided by %s. Check our "
                        "documentation on preparing your network device.",
                        strerror(-r), -r, name);
        }
        *ret_fd = fd;
        return 0;
}

static int ifreq_ioctl(unsigned long req, struct ifreq *ifr)
{
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return -errno;
        int r = ioctl(s, req, ifr) < 0 ? -errno : 0;
        close(s);
        return r;
}

static void set_ifname(struct ifreq *ifr, const char *name)
{
        memset(ifr, 0, sizeof *ifr);
        size_t n = strlen(name);
        if (n >= IFNAMSIZ)
                n = IFNAMSIZ - 1;
        memcpy(ifr->ifr_name, name, n);
}

int fcsim_netcfg_guest_tap(const char *name, const uint8_t *mac, unsigned mtu, int *ret_fd)
{
        int r;
        struct ifreq ifr;
        int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        set_ifname(&ifr, name);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
                r = -errno;
                goto out_close;
        }
        if (mac) {
                set_ifname(&ifr, name);
                ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
                memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
                r = ifreq_ioctl(SIOCSIFHWADDR, &ifr);
                if (r < 0)
                        goto out_close;
        }
        if (mtu) {
                set_ifname(&ifr, name);
                ifr.ifr_mtu = (int)mtu;
                r = ifreq_ioctl(SIOCSIFMTU, &ifr);
                if (r < 0)
                        goto out_close;
        }
        *ret_fd = fd;
        return 0;
out_close:
        close(fd);
        return r;
}

int fcsim_netcfg_up(const char *name)
{
        struct ifreq ifr;
        set_ifname(&ifr, name);
        int r = ifreq_ioctl(SIOCGIFFLAGS, &ifr);
        if (r < 0)
                return r;
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        return ifreq_ioctl(SIOCSIFFLAGS, &ifr);
}

static void set_sin(struct sockaddr *sa, struct in_addr a)
{
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        sin.sin_addr = a;
        memcpy(sa, &sin, sizeof sin);
}

int fcsim_netcfg_address(const char *name, const struct fcsim_ipcfg *ip)
{
        struct ifreq ifr;
        set_ifname(&ifr, name);
        set_sin(&ifr.ifr_addr, ip->client);
        int r = ifreq_ioctl(SIOCSIFADDR, &ifr);
        if (r < 0)
                return r;
        if (ip->netmask.s_addr) {
                set_ifname(&ifr, name);
                set_sin(&ifr.ifr_netmask, ip->netmask);
                r = ifreq_ioctl(SIOCSIFNETMASK, &ifr);
                if (r < 0)
                        return r;
        }
        r = fcsim_netcfg_up(name);
        if (r < 0 || ip->gateway.s_addr == 0)
                return r;
        struct rtentry rt;
        memset(&rt, 0, sizeof rt);
        struct in_addr any = { 0 };
        set_sin(&rt.rt_dst, any);
        set_sin(&rt.rt_genmask, any);
        set_sin(&rt.rt_gateway, ip->gateway);
        rt.rt_flags = RTF_UP | RTF_GATEWAY;
        char dev[IFNAMSIZ];
        snprintf(dev, sizeof dev, "%s", name);
        rt.rt_dev = dev;
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return -errno;
        r = ioctl(s, SIOCADDRT, &rt) < 0 ? -errno : 0;
        close(s);
        return r == -EEXIST ? 0 : r;
}
