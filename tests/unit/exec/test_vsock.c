/*
 * test_vsock.c - the hybrid vsock handshake (src/exec/vsock.c) against a
 * scripted fake VMM: replies split across writes, guest bytes in the same
 * segment as the OK line, refusals, garbage and silence.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/time.h"
#include "exec/exec.h"
#include "exec/frame.h"
#include "exec/vsock.h"

struct chunk {
        const char *p;
        size_t n;
};

struct fake {
        char path[108];
        int lfd;
        pthread_t thr;
        const struct chunk *writes;     /* each one write(2) */
        size_t n_writes;
        unsigned delay_us;              /* between writes */
        bool close_at_once;             /* EOF without reading */
        char got[64];                   /* the request line */
};

static void *fake_main(void *arg)
{
        struct fake *f = arg;
        int fd = accept(f->lfd, NULL, NULL);
        ssize_t n;

        if (fd < 0)
                return NULL;
        if (!f->close_at_once) {
                n = read(fd, f->got, sizeof f->got - 1);
                if (n > 0)
                        f->got[n] = '\0';
                for (size_t i = 0; i < f->n_writes; i++) {
                        if (i && f->delay_us)
                                usleep(f->delay_us);
                        if (write(fd, f->writes[i].p, f->writes[i].n) < 0)
                                break;
                }
                /* Keep the connection open a moment: the client decides. */
                usleep(300000);
        }
        close(fd);
        return NULL;
}

static void fake_start(struct fake *f)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        snprintf(f->path, sizeof f->path, "/tmp/ha-vsock-test-%d-%p.sock", (int)getpid(), (void *)f);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
        unlink(f->path);
        f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(f->lfd, 0);
        cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
        cr_assert_eq(listen(f->lfd, 4), 0);
        cr_assert_eq(pthread_create(&f->thr, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
        shutdown(f->lfd, SHUT_RDWR);
        pthread_join(f->thr, NULL);
        close(f->lfd);
        unlink(f->path);
}

#define CHUNK(lit) { lit, sizeof lit - 1 }

Test(exec_vsock, ok_split_across_writes_and_guest_bytes_kept)
{
        /* "OK" arrives in pieces, and the first guest frame (a pong: body
         * 0x32 0x00) rides in the same write as the end of the line. */
        const struct chunk writes[] = { CHUNK("O"), CHUNK("K 10737"),
                                        CHUNK("41824\n\x00\x00\x00\x00\x02\x32\x00") };
        struct fake f = { .writes = writes, .n_writes = 3, .delay_us = 20000 };
        struct exec_frame_reader rd;
        const uint8_t *body;
        uint32_t len;
        uint8_t *p;
        size_t room;
        ssize_t n;
        int fd = -1;

        fake_start(&f);
        cr_assert_eq(exec_vsock_connect(f.path, 10000, ha_now_ms() + 2000, &fd, NULL), 0);
        cr_assert_str_eq(f.got, "CONNECT 10000\n", "one line, one write");
        exec_frame_reader_init(&rd, EXEC_FRAME_MAX);
        cr_assert_eq(exec_frame_reader_space(&rd, &p, &room), 0);
        for (int i = 0; i < 100; i++) {
                n = recv(fd, p, room, 0);
                if (n >= 0 || errno != EAGAIN)
                        break;
                usleep(10000);
        }
        cr_assert_eq(n, 7, "the guest's bytes after the OK line were not swallowed");
        exec_frame_reader_commit(&rd, (size_t)n);
        cr_assert_eq(exec_frame_reader_next(&rd, &body, &len), 1);
        cr_assert_eq(len, 2);
        cr_assert_eq(body[0], 0x32);
        exec_frame_reader_done(&rd);
        close(fd);
        fake_stop(&f);
}

Test(exec_vsock, eof_before_ok_is_transient)
{
        struct fake f = { .close_at_once = true };
        int fd = -1;
        int r;

        fake_start(&f);
        r = exec_vsock_connect(f.path, 10000, ha_now_ms() + 2000, &fd, NULL);
        /* EOF on the reply, or EPIPE when the close beat our CONNECT line
         * (a slow machine, TSan): both mean the guest is not there yet. */
        cr_assert(r == -ECONNRESET || r == -EPIPE, "%d", r);
        cr_assert(exec_vsock_is_transient(r), "nobody listening yet: retry");
        cr_assert(exec_vsock_is_transient(-EPIPE));
        cr_assert_eq(fd, -1);
        fake_stop(&f);
}

Test(exec_vsock, garbage_reply_is_a_protocol_error)
{
        const struct chunk writes[] = { CHUNK("NOPE 1\n") };
        struct fake f = { .writes = writes, .n_writes = 1 };
        struct ha_err err = { { 0 } };
        int fd = -1, r;

        fake_start(&f);
        r = exec_vsock_connect(f.path, 10000, ha_now_ms() + 2000, &fd, &err);
        cr_assert_eq(r, -EPROTO);
        cr_assert(!exec_vsock_is_transient(r));
        cr_assert(strstr(err.msg, "NOPE"), "%s", err.msg);
        fake_stop(&f);
}

Test(exec_vsock, silence_times_out)
{
        const struct chunk writes[] = { CHUNK("OK 1") };       /* never the newline */
        struct fake f = { .writes = writes, .n_writes = 1 };
        uint64_t t0 = ha_now_ms();
        int fd = -1;

        fake_start(&f);
        cr_assert_eq(exec_vsock_connect(f.path, 10000, t0 + 150, &fd, NULL), -ETIMEDOUT);
        cr_assert_geq(ha_now_ms() - t0, 140);
        cr_assert_lt(ha_now_ms() - t0, 1000);
        fake_stop(&f);
}

Test(exec_vsock, missing_socket_and_long_path)
{
        char longp[200];
        int fd = -1;

        cr_assert_eq(exec_vsock_connect("/nonexistent/x.sock", 1, ha_now_ms() + 100, &fd, NULL), -ENOENT);
        memset(longp, 'a', sizeof longp - 1);
        longp[sizeof longp - 1] = '\0';
        cr_assert_eq(exec_vsock_connect(longp, 1, ha_now_ms() + 100, &fd, NULL), -ENAMETOOLONG);
        cr_assert(!exec_vsock_is_transient(-ENAMETOOLONG));
}
