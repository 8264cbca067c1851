/*
 * probe.c - see probe.h. Runs at startup, before the daemon's threads
 * exist, but keeps to the same fork discipline as launch.c anyway.
 */
#include "vm/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/time.h"

static void parse(const char *out, struct vm_vmm_info *ret)
{
        const char *v = strstr(out, "Firecracker v");
        if (v) {
                v += strlen("Firecracker v");
                size_t n = strcspn(v, " \r\n");
                if (n >= sizeof ret->version)
                        n = sizeof ret->version - 1;
                memcpy(ret->version, v, n);
                ret->version[n] = '\0';
        }
        ret->simulator = strncmp(out, "fcsim:", 6) == 0 || strstr(out, "\nfcsim:") != NULL;
        ret->memory_snapshots = !ret->simulator;
        size_t n = 0;
        int lines = 0;
        for (const char *p = out; *p && n + 1 < sizeof ret->banner; p++) {
                if (*p == '\n') {
                        if (++lines == 2 || !p[1])
                                break;
                        ret->banner[n++] = '|';
                } else if ((unsigned char)*p >= 0x20) {
                        ret->banner[n++] = *p;
                }
        }
        ret->banner[n] = '\0';
}

int vm_vmm_probe(const char *bin, struct vm_vmm_info *ret, struct ha_err *err)
{
        static char *const envp[] = { NULL };
        char *const argv[] = { (char *)bin, "--version", NULL };
        char out[VM_PROBE_OUTPUT_MAX + 1];
        size_t len = 0;
        int pfd[2], r = 0;

        if (!bin || access(bin, X_OK) < 0) {
                r = bin ? -errno : -ENOENT;
                return ha_err_set(err, r, "VMM binary %s: %s", bin ? bin : "(none)", strerror(-r));
        }
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0) {
                r = -errno;
                return ha_err_set(err, r, "/dev/null: %s", strerror(-r));
        }
        if (pipe2(pfd, O_CLOEXEC) < 0) {
                r = -errno;
                close(null);
                return ha_err_set(err, r, "pipe: %s", strerror(-r));
        }
        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                ha_err_set(err, r, "fork: %s", strerror(-r));
                goto out_close;
        }
        if (pid == 0) {
                if (dup2(null, STDIN_FILENO) < 0 || dup2(pfd[1], STDOUT_FILENO) < 0 ||
                    dup2(null, STDERR_FILENO) < 0)
                        _exit(127);
                execve(bin, argv, envp);
                _exit(127);
        }
        close(pfd[1]);
        pfd[1] = -1;
        uint64_t deadline = ha_now_ms() + VM_PROBE_TIMEOUT_MS;
        for (;;) {
                uint64_t now = ha_now_ms();
                if (now >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                struct pollfd p = { .fd = pfd[0], .events = POLLIN };
                int n = poll(&p, 1, (int)(deadline - now));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n == 0 ? -ETIMEDOUT : -errno;
                        break;
                }
                ssize_t got = read(pfd[0], out + len, VM_PROBE_OUTPUT_MAX - len);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got <= 0)
                        break; /* EOF (or error): the child is done writing */
                len += (size_t)got;
                if (len == VM_PROBE_OUTPUT_MAX)
                        break;
        }
        out[len] = '\0';
        if (r < 0)
                kill(pid, SIGKILL);
        int st = 0;
        /* After EOF the child exits at once; bound the wait anyway. */
        for (int i = 0; i < 300 && waitpid(pid, &st, WNOHANG) == 0; i++) {
                if (i == 200)
                        kill(pid, SIGKILL);
                usleep(10000);
        }
        if (r < 0) {
                waitpid(pid, &st, 0);
                ha_err_set(err, r, "%s --version: %s", bin, strerror(-r));
                goto out_close;
        }
        struct vm_vmm_info info;
        memset(&info, 0, sizeof info);
        parse(out, &info);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !info.version[0]) {
                r = ha_err_set(err, -EPROTO,
                               "%s --version: not a Firecracker (status %d, said \"%s\")", bin,
                               WIFEXITED(st) ? WEXITSTATUS(st) : -1, info.banner);
                goto out_close;
        }
        *ret = info;
out_close:
        if (pfd[0] >= 0)
                close(pfd[0]);
        if (pfd[1] >= 0)
                close(pfd[1]);
        close(null);
        return r;
}
