/* Tests tools/fcsim/relay.c with SOCK_SEQPACKET pairs standing in for the
 * two TAPs (both keep frame boundaries). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"

static void pair(int sv[2])
{
        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        fcntl(sv[1], F_SETFL, O_NONBLOCK);      /* the relay's end, like a TAP fd */
}

static bool readable(int fd, int ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, ms) == 1;
}

Test(fcsim_relay, moves_frames_both_ways_and_stops_while_paused)
{
        int host[2], guest[2];
        pair(host);
        pair(guest);
        struct fcsim_relay *r = NULL;
        struct ha_err err = { "" };
        cr_assert_eq(fcsim_relay_start(&host[1], &guest[1], 1, &r, &err), 0, "%s", err.msg);

        char buf[64];
        cr_assert_eq(write(host[0], "frame-to-guest", 14), 14);
        cr_assert(readable(guest[0], 2000));
        cr_assert_eq(read(guest[0], buf, sizeof buf), 14);
        cr_assert_eq(memcmp(buf, "frame-to-guest", 14), 0);
        cr_assert_eq(write(guest[0], "reply", 5), 5);
        cr_assert(readable(host[0], 2000));
        cr_assert_eq(read(host[0], buf, sizeof buf), 5);

        fcsim_relay_set_paused(r, true);
        cr_assert_eq(write(host[0], "held", 4), 4);
        cr_assert_not(readable(guest[0], 200), "nothing moves while paused");
        fcsim_relay_set_paused(r, false);
        cr_assert(readable(guest[0], 2000), "queued frames flow after resume");
        cr_assert_eq(read(guest[0], buf, sizeof buf), 4);

        /* Counters are bumped right after the write the reader saw. */
        struct fcsim_relay_stats st;
        for (int i = 0; i < 200; i++) {
                fcsim_relay_get_stats(r, &st);
                if (st.to_guest_frames == 2)
                        break;
                usleep(10000);
        }
        cr_assert_eq(st.to_guest_frames, 2);
        cr_assert_eq(st.to_host_frames, 1);
        fcsim_relay_stop(r);    /* closes guest[1] */
        cr_assert_eq(fcntl(guest[1], F_GETFD), -1);
        close(host[0]);
        close(host[1]);
        close(guest[0]);
}

Test(fcsim_relay, closes_guest_fds_when_it_cannot_start)
{
        int host[2], guest[2];
        pair(host);
        pair(guest);
        int hosts[9] = { 0 }, guests[9];
        for (int i = 0; i < 9; i++) {
                hosts[i] = host[1];
                guests[i] = -1;
        }
        guests[0] = guest[1];
        struct fcsim_relay *r = NULL;
        cr_assert_eq(fcsim_relay_start(hosts, guests, 9, &r, NULL), -EINVAL);
        cr_assert_eq(fcntl(guest[1], F_GETFD), -1, "ownership of the guest fds moved");
        close(host[0]);
        close(host[1]);
        close(guest[0]);
}
