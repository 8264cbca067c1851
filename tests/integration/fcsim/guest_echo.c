/*
 * guest_echo.c - a tiny static guest program for the fcsim tests: echoes
 * every connection made to $HA_VSOCK_UNIX_DIR/<port> (the simulator's
 * vsock convention) and to TCP 0.0.0.0:<port> (the network relay test).
 * A connection whose first line is "PID\n" gets the process id instead,
 * which shows the guest runs in its own PID namespace.
 *
 * With a second argument it also dials the host once (guest-initiated
 * vsock: "CONNECT <host_port>\n" on $HA_VSOCK_UNIX_DIR/host), says
 * "ready <pid>\n" and echoes on that connection too.
 *
 *   guest_echo <port> [<host_port>]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void echo(int fd)
{
        char buf[65536];
        ssize_t n;
        bool first = true;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
                if (first && n == 4 && memcmp(buf, "PID\n", 4) == 0) {
                        n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
                }
                first = false;
                for (ssize_t o = 0; o < n;) {
                        ssize_t w = write(fd, buf + o, (size_t)(n - o));
                        if (w <= 0)
                                return;
                        o += w;
                }
        }
}

static void dial_host(const char *dir, unsigned port)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/host", dir);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
                return;
        char line[64];
        int n = snprintf(line, sizeof line, "CONNECT %u\n", port);
        if (write(s, line, (size_t)n) != n)
                return;
        /* Read the "OK <port>\n" reply byte by byte: data may follow it. */
        size_t got = 0;
        while (got < sizeof line - 1 && read(s, line + got, 1) == 1 && line[got] != '\n')
                got++;
        if (got < 3 || strncmp(line, "OK ", 3) != 0)
                return;
        n = snprintf(line, sizeof line, "ready %d\n", (int)getpid());
        if (write(s, line, (size_t)n) != n)
                return;
        echo(s);
}

int main(int argc, char **argv)
{
        if (argc < 2)
                return 2;
        unsigned port = (unsigned)atoi(argv[1]);
        signal(SIGCHLD, SIG_IGN);
        if (argc > 2 && getenv("HA_VSOCK_UNIX_DIR") && fork() == 0) {
                dial_host(getenv("HA_VSOCK_UNIX_DIR"), (unsigned)atoi(argv[2]));
                _exit(0);
        }
        struct pollfd pfd[2];
        int n = 0;
        const char *dir = getenv("HA_VSOCK_UNIX_DIR");
        if (dir) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%u", dir, port);
                int s = socket(AF_UNIX, SOCK_STREAM, 0);
                unlink(sa.sun_path);
                if (bind(s, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(s, 64) == 0)
                        pfd[n++] = (struct pollfd){ .fd = s, .events = POLLIN };
                else
                        perror("guest_echo: unix");
        }
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        int t = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(t, (struct sockaddr *)&in, sizeof in) == 0 && listen(t, 64) == 0)
                pfd[n++] = (struct pollfd){ .fd = t, .events = POLLIN };
        else
                perror("guest_echo: tcp");
        for (;;) {
                if (poll(pfd, (nfds_t)n, -1) < 0)
                        continue;
                for (int i = 0; i < n; i++) {
                        if (!(pfd[i].revents & POLLIN))
                                continue;
                        int c = accept(pfd[i].fd, NULL, NULL);
                        if (c < 0)
                                continue;
                        if (fork() == 0) {
                                echo(c);
                                _exit(0);
                        }
                        close(c);
                }
        }
}
