/*
 * fakefc - a tiny stand-in for Firecracker, used by the vm unit tests to run
 * the real driver path (launch, mount namespace, API over the Unix socket)
 * without the simulator. Not a simulator: it answers 204 to everything it
 * does not model and records every request ("METHOD PATH LEN\nBODY\n") to
 * <dir of --api-sock>/requests.log for the spec conformance check.
 *
 * What it checks on the way, so the tests see the launcher's work:
 *   PUT /boot-source: kernel_image_path must be readable and NOT writable
 *     (read-only bind mount), else 400 with a fault_message;
 *   PUT /drives/...:  path_on_host must be writable, else 400.
 * At start it appends "NETNS <inode>", "SID <sid> PGID <pgid>", "FDS <open fds>",
 * "ENV <PATH>" and "HOME set|unset" lines.
 *
 *   fakefc [--mode ok|fault|fail-N|die-at-boot|hang|exit-on-start] --api-sock P --id I
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char *mode = "ok";
static const char *id = "";
static char state[32] = "Not started";
static FILE *rec;

static void record(const char *method, const char *path, const char *body, size_t len)
{
        fprintf(rec, "%s %s %zu\n", method, path, len);
        fwrite(body, 1, len, rec);
        fputc('\n', rec);
        fflush(rec);
}

static void reply(int fd, int code, const char *body)
{
        char buf[1024];
        const char *reason = code == 200 ? "OK" : code == 204 ? "No Content" : "Bad Request";
        size_t blen = body ? strlen(body) : 0;
        int n = snprintf(buf, sizeof buf,
                         "HTTP/1.1 %d %s\r\nServer: Firecracker API\r\nContent-Length: %zu\r\n"
                         "%s\r\n%s",
                         code, reason, blen, blen ? "Content-Type: application/json\r\n" : "",
                         body ? body : "");
        if (write(fd, buf, (size_t)n) < 0)
                exit(9);
}

static void fault(int fd, const char *msg)
{
        char b[1024];
        snprintf(b, sizeof b, "{\"fault_message\":\"%s\"}", msg);
        reply(fd, 400, b);
}

/* Value of "key":"..." in a body we wrote ourselves (no escapes in paths). */
static int field(const char *body, const char *key, char *out, size_t size)
{
        char pat[64];
        snprintf(pat, sizeof pat, "\"%s\":\"", key);
        const char *p = strstr(body, pat);
        if (!p)
                return -1;
        p += strlen(pat);
        const char *e = strchr(p, '"');
        if (!e || (size_t)(e - p) >= size)
                return -1;
        memcpy(out, p, (size_t)(e - p));
        out[e - p] = '\0';
        return 0;
}

static void write_file(const char *p, const char *content)
{
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
                if (write(fd, content, strlen(content)) < 0)
                        exit(9);
                close(fd);
        }
}

static void handle(int fd, const char *method, const char *path, const char *body, size_t len)
{
        char v[512], msg[700];
        static int nth;
        record(method, path, body, len);
        /* --mode fail-N: the N-th request (1-based) gets a 400. */
        if (strncmp(mode, "fail-", 5) == 0 && ++nth == atoi(mode + 5)) {
                snprintf(msg, sizeof msg, "injected failure of request %d (%s %s)", nth, method,
                         path);
                fault(fd, msg);
                return;
        }
        if (strcmp(method, "GET") == 0 && strcmp(path, "/") == 0) {
                char b[256];
                snprintf(b, sizeof b,
                         "{\"id\":\"%s\",\"state\":\"%s\",\"vmm_version\":\"1.16.1\","
                         "\"app_name\":\"Firecracker\"}",
                         id, state);
                reply(fd, 200, b);
                return;
        }
        if (strcmp(path, "/boot-source") == 0) {
                if (strcmp(mode, "fault") == 0) {
                        fault(fd, "Invalid kernel image: bzImage given, \\\"vmlinux\\\" expected");
                        return;
                }
                if (strcmp(mode, "die-at-boot") == 0) {
                        fprintf(stderr, "fakefc: fatal: cannot load kernel\n");
                        exit(3);
                }
                if (field(body, "kernel_image_path", v, sizeof v) < 0 || access(v, R_OK) < 0) {
                        snprintf(msg, sizeof msg, "kernel %s: %s", v, strerror(errno));
                        fault(fd, msg);
                        return;
                }
                if (access(v, W_OK) == 0 || errno != EROFS) {
                        fault(fd, "kernel bind mount is writable");
                        return;
                }
        }
        if (strncmp(path, "/drives/", 8) == 0 &&
            (field(body, "path_on_host", v, sizeof v) < 0 || access(v, R_OK | W_OK) < 0)) {
                snprintf(msg, sizeof msg, "drive %s: %s", v, strerror(errno));
                fault(fd, msg);
                return;
        }
        if (strcmp(path, "/actions") == 0) {
                if (strstr(body, "InstanceStart")) {
                        if (strcmp(state, "Not started") != 0) {
                                fault(fd, "The requested operation is not supported after "
                                          "starting the microVM.");
                                return;
                        }
                        snprintf(state, sizeof state, "Running");
                } else if (strstr(body, "SendCtrlAltDel")) {
                        reply(fd, 204, NULL);
                        printf("fakefc: guest rebooted\n");
                        exit(0);
                }
        }
        if (strcmp(path, "/vm") == 0) {
                if (strcmp(state, "Not started") == 0) {
                        fault(fd, "The requested operation is not supported before starting "
                                  "the microVM.");
                        return;
                }
                snprintf(state, sizeof state, "%s", strstr(body, "Paused") ? "Paused" : "Running");
        }
        if (strcmp(path, "/snapshot/create") == 0) {
                if (field(body, "snapshot_path", v, sizeof v) == 0)
                        write_file(v, "fakefc-state\n");
                if (field(body, "mem_file_path", v, sizeof v) == 0)
                        write_file(v, "fakefc-mem\n");
        }
        if (strcmp(path, "/snapshot/load") == 0)
                snprintf(state, sizeof state, "%s", strstr(body, "\"resume_vm\":true") ? "Running"
                                                                                       : "Paused");
        reply(fd, 204, NULL);
}

static void serve(int c)
{
        char buf[65536];
        size_t have = 0;
        for (;;) {
                char *hdr_end = NULL;
                while (!(hdr_end = memmem(buf, have, "\r\n\r\n", 4))) {
                        if (have == sizeof buf)
                                return;
                        ssize_t n = read(c, buf + have, sizeof buf - have);
                        if (n <= 0)
                                return;
                        have += (size_t)n;
                }
                size_t hlen = (size_t)(hdr_end - buf) + 4;
                char method[16] = "", path[256] = "";
                sscanf(buf, "%15s %255s", method, path);
                size_t clen = 0;
                for (char *p = buf; p < hdr_end; p++)
                        if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
                                clen = strtoul(p + 15, NULL, 10);
                if (hlen + clen > sizeof buf)
                        return;
                while (have < hlen + clen) {
                        ssize_t n = read(c, buf + have, sizeof buf - have);
                        if (n <= 0)
                                return;
                        have += (size_t)n;
                }
                if (strcmp(mode, "hang") == 0) {
                        record(method, path, buf + hlen, clen);
                        pause();
                }
                char body[65536];
                memcpy(body, buf + hlen, clen);
                body[clen] = '\0';
                handle(c, method, path, body, clen);
                memmove(buf, buf + hlen + clen, have - hlen - clen);
                have -= hlen + clen;
        }
}

int main(int argc, char **argv)
{
        const char *sock = NULL;
        for (int i = 1; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--api-sock") == 0)
                        sock = argv[i + 1];
                else if (strcmp(argv[i], "--id") == 0)
                        id = argv[i + 1];
                else if (strcmp(argv[i], "--mode") == 0)
                        mode = argv[i + 1];
        }
        if (!sock) {
                fprintf(stderr, "fakefc: --api-sock is required\n");
                return 153;
        }
        printf("fakefc: starting id=%s mode=%s\n", id, mode);
        fflush(stdout);
        if (strcmp(mode, "exit-on-start") == 0) {
                fprintf(stderr, "fakefc: Failed to bind the API socket: Address in use\n");
                return 1;
        }
        /* Before opening anything: which fds did the launcher let through? */
        char fds[256] = "";
        DIR *d = opendir("/proc/self/fd");
        if (d) {
                struct dirent *e;
                while ((e = readdir(d))) {
                        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
                                continue;
                        size_t l = strlen(fds), n = strlen(e->d_name);
                        if (l + 1 + n < sizeof fds) {
                                fds[l] = ' ';
                                memcpy(fds + l + 1, e->d_name, n + 1);
                        }
                }
                closedir(d);
        }
        char recpath[512];
        snprintf(recpath, sizeof recpath, "%s", sock);
        char *slash = strrchr(recpath, '/');
        snprintf(slash ? slash + 1 : recpath, sizeof recpath - (size_t)(slash ? slash + 1 - recpath : 0),
                 "requests.log");
        rec = fopen(recpath, "a");
        if (!rec)
                return 2;
        struct stat st;
        if (stat("/proc/self/ns/net", &st) == 0)
                fprintf(rec, "NETNS %lu\n", (unsigned long)st.st_ino);
        fprintf(rec, "SID %ld PGID %ld\n", (long)getsid(0), (long)getpgid(0));
        fprintf(rec, "FDS%s\n", fds);
        fprintf(rec, "ENV %s\n", getenv("PATH") ? getenv("PATH") : "");
        fprintf(rec, "HOME %s\n", getenv("HOME") ? "set" : "unset");
        fflush(rec);

        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
        if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 8) < 0) {
                fprintf(stderr, "fakefc: bind %s: %s\n", sock, strerror(errno));
                return 1;
        }
        for (;;) {
                int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                serve(c);
                close(c);
        }
}
