/*
 * guest_echo.c - a tiny static guest program for the fcsim tests: echoes
 * every connection made to $HA_VSOCK_UNIX_DIR/<port> (the simulator's
 * vsock convention) and to TCP 0.0.0.0:<port> (the network relay test).
 * A connection whose first line is "PID\n" gets the process id instead,
 * which shows the guest runs in its own PID namespace.
 *
 *   guest_echo <port>
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

int main(int argc, char **argv)
{
        if (argc < 2)
                return 2;
        unsigned port = (unsigned)atoi(argv[1]);
        signal(SIGCHLD, SIG_IGN);
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
