/* Tests tools/fcsim/vsock.c: the CONNECT parser, and the forwarder against
 * a "guest" that is just a temp directory with AF_UNIX listeners in it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vsock.h"

static char dir[64], uds[128], guest_dir[128];

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/fcsimu-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(uds, sizeof uds, "%s/v.sock", dir);
        snprintf(guest_dir, sizeof guest_dir, "%s/guest", dir);
        cr_assert_eq(mkdir(guest_dir, 0755), 0);
}

static void teardown(void)
{
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
}

static int listen_at(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", path);
        cr_assert_eq(listen(fd, 16), 0);
        return fd;
}

static int connect_to(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", path);
        struct timeval tv = { 5, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        return fd;
}

static ssize_t read_line(int fd, char *buf, size_t cap)
{
        size_t n = 0;
        while (n + 1 < cap) {
                ssize_t r = read(fd, buf + n, 1);
                if (r <= 0)
                        break;
                if (buf[n++] == '\n')
                        break;
        }
        buf[n] = '\0';
        return (ssize_t)n;
}

TestSuite(fcsim_vsock, .init = setup, .fini = teardown);

Test(fcsim_vsock, host_connect_reaches_the_guest_port_with_half_close)
{
        char p[192], line[64];
        snprintf(p, sizeof p, "%s/52", guest_dir);
        int lfd = listen_at(p);
        struct fcsim_vsock *v = NULL;
        struct ha_err err = { "" };
        cr_assert_eq(fcsim_vsock_open(uds, &v, &err), 0, "%s", err.msg);
        cr_assert_eq(fcsim_vsock_start(v, guest_dir, &err), 0, "%s", err.msg);

        int h = connect_to(uds);
        cr_assert_eq(write(h, "CONNECT 52\nearly", 16), 16);
        read_line(h, line, sizeof line);
        cr_assert_str_eq(line, "OK 1073741824\n");
        int g = accept(lfd, NULL, NULL);
        cr_assert_geq(g, 0);
        char buf[16] = { 0 };
        cr_assert_eq(read(g, buf, 5), 5);
        cr_assert_str_eq(buf, "early", "bytes after the request line go to the guest");
        cr_assert_eq(write(g, "pong", 4), 4);
        cr_assert_eq(read(h, buf, 4), 4);
        cr_assert_eq(memcmp(buf, "pong", 4), 0);
        shutdown(h, SHUT_WR);
        cr_assert_eq(read(g, buf, 1), 0, "the guest sees the host's EOF");
        cr_assert_eq(write(g, "late", 4), 4, "and can still answer");
        cr_assert_eq(read(h, buf, 4), 4);
        close(g);
        cr_assert_eq(read(h, buf, 1), 0);
        close(h);

        /* Nobody on the port / a bad request: closed without a reply. */
        h = connect_to(uds);
        cr_assert_eq(write(h, "CONNECT 53\n", 11), 11);
        cr_assert_eq(read(h, buf, 1), 0);
        close(h);
        h = connect_to(uds);
        cr_assert_eq(write(h, "GET / HTTP/1.1\r\n", 16), 16);
        cr_assert_eq(read(h, buf, 1), 0);
        close(h);

        fcsim_vsock_close(v);
        close(lfd);
        cr_assert_eq(access(uds, F_OK), 0, "the socket file is kept, as Firecracker");
}

Test(fcsim_vsock, guest_connect_reaches_uds_path_port)
{
        char p[192], line[64];
        snprintf(p, sizeof p, "%s_7000", uds);
        int hl = listen_at(p);
        struct fcsim_vsock *v = NULL;
        struct ha_err err = { "" };
        cr_assert_eq(fcsim_vsock_open(uds, &v, &err), 0, "%s", err.msg);
        cr_assert_eq(fcsim_vsock_start(v, guest_dir, &err), 0, "%s", err.msg);
        snprintf(p, sizeof p, "%s/host", guest_dir);
        int g = connect_to(p);
        cr_assert_eq(write(g, "CONNECT 7000\n", 13), 13);
        read_line(g, line, sizeof line);
        cr_assert_str_eq(line, "OK 7000\n");
        int h = accept(hl, NULL, NULL);
        cr_assert_eq(write(g, "ready", 5), 5);
        char buf[8] = { 0 };
        cr_assert_eq(read(h, buf, 5), 5);
        cr_assert_str_eq(buf, "ready");
        close(h);
        close(g);
        /* No host listener on the port: EOF for the guest. */
        g = connect_to(p);
        cr_assert_eq(write(g, "CONNECT 7001\n", 13), 13);
        cr_assert_eq(read(g, buf, 1), 0);
        close(g);
        fcsim_vsock_close(v);
        close(hl);
}

Test(fcsim_vsock, stop_drops_connections_and_start_serves_again)
{
        char p[192], line[64];
        snprintf(p, sizeof p, "%s/52", guest_dir);
        int lfd = listen_at(p);
        struct fcsim_vsock *v = NULL;
        struct ha_err err = { "" };
        cr_assert_eq(fcsim_vsock_open(uds, &v, &err), 0, "%s", err.msg);
        cr_assert_eq(fcsim_vsock_start(v, guest_dir, &err), 0);
        int h = connect_to(uds);
        cr_assert_eq(write(h, "CONNECT 52\n", 11), 11);
        read_line(h, line, sizeof line);
        cr_assert_str_eq(line, "OK 1073741824\n");
        int g = accept(lfd, NULL, NULL);
        fcsim_vsock_stop(v);
        char buf[4];
        cr_assert_eq(read(h, buf, 1), 0, "stop resets open connections");
        cr_assert_eq(read(g, buf, 1), 0);
        close(h);
        close(g);
        cr_assert_eq(fcsim_vsock_start(v, guest_dir, &err), 0, "%s", err.msg);
        h = connect_to(uds);
        cr_assert_eq(write(h, "CONNECT 52\n", 11), 11);
        read_line(h, line, sizeof line);
        cr_assert_str_eq(line, "OK 1073741825\n");
        close(h);
        fcsim_vsock_close(v);
        close(lfd);
}

Test(fcsim_vsock, open_fails_on_an_existing_path)
{
        struct fcsim_vsock *v = NULL;
        struct ha_err err = { "" };
        FILE *f = fopen(uds, "w");
        fclose(f);
        cr_assert_eq(fcsim_vsock_open(uds, &v, &err), -EADDRINUSE);
        cr_assert(strstr(err.msg, "os error 98") != NULL, "%s", err.msg);
        char longp[200];
        memset(longp, 'a', sizeof longp - 1);
        longp[0] = '/';
        longp[sizeof longp - 1] = '\0';
        cr_assert_eq(fcsim_vsock_open(longp, &v, &err), -ENAMETOOLONG);
}

Test(fcsim_vsock, parses_connect_requests)
{
        unsigned port = 0;
        cr_assert_eq(fcsim_vsock_parse_connect("CONNECT 52\n", 11, &port), 11);
        cr_assert_eq(port, 52);
        cr_assert_eq(fcsim_vsock_parse_connect("connect 1024\nabc", 16, &port), 13);
        cr_assert_eq(port, 1024);
        cr_assert_eq(fcsim_vsock_parse_connect("CONNECT 52", 10, &port), -EINVAL);
        cr_assert_eq(fcsim_vsock_parse_connect("CONNECT \n", 9, &port), -EINVAL);
        cr_assert_eq(fcsim_vsock_parse_connect("CONNECT 99999999999\n", 20, &port), -EINVAL);
        cr_assert_eq(fcsim_vsock_parse_connect("HELLO 52\n", 9, &port), -EINVAL);
        cr_assert_eq(fcsim_vsock_parse_connect("CONNECT -1\n", 11, &port), -EINVAL);
}

Test(fcsim_vsock, paused_vm_answers_requests_only_after_resume)
{
        char p[192], line[64];
        snprintf(p, sizeof p, "%s/52", guest_dir);
        int lfd = listen_at(p);
        struct fcsim_vsock *v = NULL;
        struct ha_err err = { "" };
        cr_assert_eq(fcsim_vsock_open(uds, &v, &err), 0, "%s", err.msg);
        cr_assert_eq(fcsim_vsock_start(v, guest_dir, &err), 0, "%s", err.msg);
        fcsim_vsock_set_paused(v, true);

        /* Still paused when the 2 s request timeout ends: dropped. */
        int h = connect_to(uds);
        cr_assert_eq(write(h, "CONNECT 52\n", 11), 11);
        char buf[4];
        cr_assert_eq(read(h, buf, 1), 0);
        close(h);

        /* Resumed within the timeout: answered. */
        h = connect_to(uds);
        cr_assert_eq(write(h, "CONNECT 52\n", 11), 11);
        usleep(300000);
        struct pollfd pfd = { .fd = h, .events = POLLIN };
        cr_assert_eq(poll(&pfd, 1, 0), 0, "no answer while paused");
        fcsim_vsock_set_paused(v, false);
        read_line(h, line, sizeof line);
        cr_assert_str_eq(line, "OK 1073741824\n");
        close(h);
        fcsim_vsock_close(v);
        close(lfd);
}

struct writer {
        int fd;
        size_t n;
};

static void *write_then_close(void *arg)
{
        struct writer *w = arg;
        static char chunk[65536];
        memset(chunk, 'e', sizeof chunk);
        size_t left = w->n;
        while (left > 0) {
                ssize_t r = send(w->fd, chunk, left < sizeof chunk ? left : sizeof chunk, MSG_NOSIGNAL);
                if (r <= 0)
                        break;
                left -= (size_t)r;
        }
        close(w->fd);
        return NULL;
}

/* A guest that stops reading (its command ended) while it still has output
 * in flight: the host's next write fails at the guest, and that must end
 * only the host -> guest direction. The guest's output (and its "exited"
 * event at the end) still reaches the host in full, as on a real vsock. */
Test(fcsim_vsock, failed_write_to_the_guest_keeps_the_guests_output)
{
        char p[192], line[64];
        snprintf(p, sizeof p, "%s/54", guest_dir);
        int lfd = listen_at(p);
        struct fcsim_vsock *v = NULL;
        struct ha_err err = { "" };
        cr_assert_eq(fcsim_vsock_open(uds, &v, &err), 0, "%s", err.msg);
        cr_assert_eq(fcsim_vsock_start(v, guest_dir, &err), 0, "%s", err.msg);
        int h = connect_to(uds);
        cr_assert_eq(write(h, "CONNECT 54\n", 11), 11);
        read_line(h, line, sizeof line);
        cr_assert_str_eq(line, "OK 1073741824\n");
        int g = accept(lfd, NULL, NULL);
        cr_assert_geq(g, 0);
        cr_assert_eq(shutdown(g, SHUT_RD), 0);
        /* 4 MiB: far more than the socket buffers hold, so most of it is
         * still to be relayed when the host's write fails. */
        struct writer w = { g, 4u << 20 };
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, write_then_close, &w), 0);
        usleep(100 * 1000);
        cr_assert_eq(write(h, "x", 1), 1, "accepted by the relay");
        usleep(200 * 1000);  /* the relay's write to the guest fails meanwhile */
        size_t got = 0;
        char buf[65536];
        for (;;) {
                ssize_t r = read(h, buf, sizeof buf);
                if (r <= 0)
                        break;
                got += (size_t)r;
        }
        pthread_join(t, NULL);
        cr_assert_eq(got, w.n, "the host got %zu of %zu bytes", got, w.n);
        close(h);
        fcsim_vsock_close(v);
        close(lfd);
}
