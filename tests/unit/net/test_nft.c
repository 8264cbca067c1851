/* test_nft.c - libnftables calls with every low descriptor taken (root). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "net/nft.h"
#include "net_test.h"

#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif

/* Criterion runs each test in its own process: the namespace and the
 * descriptors held die with it. */
static int own_netns(void)
{
        int orig = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(orig, 0);
        cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare: %s", strerror(errno));
        return orig;
}

Test(net_nft, rules_land_in_the_callers_namespace)
{
        NEED_ROOT();
        struct ha_err e = { "" };
        int orig = own_netns();
        cr_assert_eq(net_nft_run("add table inet nfttest\n", &e), 0, "%s", e.msg);
        cr_assert_eq(net_nft_run("delete table inet nfttest\n", &e), 0, "%s", e.msg);
        cr_assert_eq(net_nft_run("delete table inet nfttest\n", &e), -EIO);
        cr_assert(strstr(e.msg, "nft: "), "%s", e.msg);
        cr_assert_eq(net_nft_run("add table inet nfttest\n", &e), 0, "%s", e.msg);
        cr_assert_eq(setns(orig, CLONE_NEWNET), 0);
        /* Not in the namespace we came from. */
        cr_assert_eq(net_nft_run("delete table inet nfttest\n", &e), -EIO);
}

Test(net_nft, works_with_every_descriptor_below_fd_setsize_taken)
{
        NEED_ROOT();
#ifdef TSAN
        cr_skip_test("TSan cannot follow the private descriptor table nft runs with (it runs in place there)");
#endif
        struct rlimit rl = { 4096, 4096 };
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
        own_netns();
        int fd = -1;
        while (fd < 1100) {
                fd = open("/dev/null", O_RDONLY);
                cr_assert_geq(fd, 0, "open: %s", strerror(errno));
        }
        /* libnftables select()s on its netlink socket: at fd >= 1024 the
         * fortified FD_SET aborts; here the socket must get a low number. */
        struct ha_err e = { "" };
        cr_assert_eq(net_nft_run("add table inet nfttest\nadd chain inet nfttest c\n", &e), 0, "%s", e.msg);
        cr_assert_eq(net_nft_run("delete table inet nfttest\n", &e), 0, "%s", e.msg);
        /* The agent's descriptors are untouched. */
        cr_assert_eq(fcntl(fd, F_GETFD), 0);
        cr_assert_eq(fcntl(3, F_GETFD) >= 0, 1);
}
