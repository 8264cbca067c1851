/*
 * init.c - what the agent does first when it is PID 1 of a sandbox: the
 * pseudo filesystems, stdio on /dev/null, the loopback link and the
 * hostname. Nothing here is fatal; each failure is logged with the path and
 * errno so a broken image is easy to diagnose from the VM console.
 */
#include "ga.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/log.h"

#define HOSTNAME_MAX 64

static void mount_one(const char *src, const char *target, const char *type, unsigned long flags,
                      const char *data)
{
        if (mkdir(target, 0755) < 0 && errno != EEXIST)
                ha_log_warn("guest.mkdir_failed", "path=%s errno=%d", target, errno);
        if (mount(src, target, type, flags, data) < 0 && errno != EBUSY)
                ha_log_warn("guest.mount_failed", "path=%s type=%s error=\"%s\"", target, type,
                            strerror(errno));
}

/* Without devtmpfs (a kernel built without it): a tmpfs with the nodes
 * commands commonly expect. */
static void dev_fallback(void)
{
        static const struct { const char *path; unsigned maj, min; mode_t mode; } nodes[] = {
                { "/dev/null", 1, 3, 0666 },    { "/dev/zero", 1, 5, 0666 },
                { "/dev/full", 1, 7, 0666 },    { "/dev/random", 1, 8, 0666 },
                { "/dev/urandom", 1, 9, 0666 }, { "/dev/tty", 5, 0, 0666 },
                { "/dev/console", 5, 1, 0600 }, { "/dev/ptmx", 5, 2, 0666 },
        };

        if (mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755") < 0) {
                ha_log_warn("guest.mount_failed", "path=/dev type=tmpfs error=\"%s\"", strerror(errno));
                return;
        }
        for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++)
                if (mknod(nodes[i].path, S_IFCHR | nodes[i].mode, makedev(nodes[i].maj, nodes[i].min)) < 0 &&
                    errno != EEXIST)
                        ha_log_warn("guest.mknod_failed", "path=%s errno=%d", nodes[i].path, errno);
}

static void loopback_up(void)
{
        struct ifreq ifr;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return;
        memset(&ifr, 0, sizeof ifr);
        memcpy(ifr.ifr_name, "lo", 3);
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
                ifr.ifr_flags |= IFF_UP;
                if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                        ha_log_warn("guest.lo_up_failed", "errno=%d", errno);
        }
        close(fd);
}

int ga_boot_arg(const char *cmdline, const char *key, char *out, size_t cap)
{
        size_t klen = strlen(key);
        const char *p = cmdline;

        while (p && *p) {
                size_t wlen;

                p += strspn(p, " \t\n");
                wlen = strcspn(p, " \t\n");
                if (wlen > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
                        size_t vlen = wlen - klen - 1;

                        if (vlen >= cap)
                                return -ENAMETOOLONG;
                        memcpy(out, p + klen + 1, vlen);
                        out[vlen] = '\0';
                        return 0;
                }
                p += wlen;
        }
        return -ENOENT;
}

static bool hostname_valid(const char *h)
{
        if (!*h || strlen(h) >= HOSTNAME_MAX)
                return false;
        for (; *h; h++)
                if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
                      *h == '-' || *h == '.'))
                        return false;
        return true;
}

static void read_cmdline(char *buf, size_t cap)
{
        int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, cap - 1);

        buf[n > 0 ? n : 0] = '\0';
        if (fd >= 0)
                close(fd);
}

void ga_init_stdio(void)
{
        /* fd 0 reads nothing; 1 and 2 (the agent's log) go to the console
         * when there is one. Non-blocking: a slow serial console may drop
         * log lines but never stall the loop that serves commands. */
        for (int want = 0; want < 3; want++) {
                int fd;

                if (fcntl(want, F_GETFD) >= 0)
                        continue;       /* already open (e.g. the simulator's console) */
                fd = want ? open("/dev/console", O_WRONLY | O_NOCTTY | O_NONBLOCK) : -1;
                if (fd < 0)
                        fd = open("/dev/null", O_RDWR);
                if (fd < 0)
                        return;
                if (fd != want) {
                        int r = dup2(fd, want);
                        close(fd);
                        if (r < 0)
                                return;         /* as when nothing opens: no stdio */
                }
        }
}

void ga_init_system(const char *boot_args)
{
        char cmdline[4096], name[HOSTNAME_MAX] = "sandbox";
        struct stat st;

        /* /dev first, so the log below has a console to go to. */
        if (mkdir("/dev", 0755) < 0 && errno != EEXIST)
                ha_log_warn("guest.mkdir_failed", "path=/dev errno=%d", errno);
        if ((mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY) ||
            stat("/dev/null", &st) < 0)
                dev_fallback();
        ga_init_stdio();
        mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
        mount_one("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
        mount_one("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
        mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
        loopback_up();

        if (!boot_args) {
                read_cmdline(cmdline, sizeof cmdline);
                boot_args = cmdline;
        }
        if (ga_boot_arg(boot_args, "hostname", name, sizeof name) < 0 || !hostname_valid(name))
                memcpy(name, "sandbox", sizeof "sandbox");
        if (sethostname(name, strlen(name)) < 0)
                ha_log_warn("guest.hostname_failed", "errno=%d", errno);
        ha_log_info("guest.init", "hostname=%s", name);
}
