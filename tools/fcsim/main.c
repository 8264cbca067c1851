/*
 * main.c - fcsim: a Firecracker-compatible simulator that boots a microVM's
 * root drive as a namespaced process tree (see README.md).
 *
 * Command line, as Firecracker's:
 *   fcsim --api-sock PATH [--id ID] [--log-path P] [--level L]
 *         [--show-level] [--show-log-origin] [--metrics-path P]
 *         [--http-api-max-payload-size N] [--boot-timer] [--version] ...
 * Other Firecracker options are accepted and ignored. Exit codes are
 * Firecracker's: 0 when the guest stops, 1 for a generic failure (socket
 * in use, failed snapshot load), 153 for bad arguments, 156 after SIGHUP;
 * SIGTERM/SIGINT end the process by that signal, after cleanup.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "api.h"
#include "core/log.h"
#include "http.h"
#include "server.h"

#define EXIT_GENERIC     1
#define EXIT_ARG_PARSING 153
#define EXIT_BAD_CONFIG  152

struct options {
        const char *api_sock;
        const char *id;
        const char *log_path;
        const char *level;
        bool show_level, show_log_origin;
        const char *metrics_path;
        size_t body_max;
};

static void usage(FILE *f)
{
        fprintf(f, "usage: fcsim --api-sock PATH [--id ID] [--log-path PATH] [--level LEVEL]\n"
                   "             [--show-level] [--show-log-origin] [--metrics-path PATH]\n"
                   "             [--http-api-max-payload-size BYTES] [--version]\n"
                   "A Firecracker v" FCSIM_FC_VERSION " API simulator that boots the root drive's "
                   "/sbin/init in namespaces.\n");
}

static bool valid_instance_id(const char *id)
{
        size_t n = strlen(id);
        if (n == 0 || n > FCSIM_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = id[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-'))
                        return false;
        }
        return true;
}

static __attribute__((format(printf, 1, 2))) int arg_fail(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "Arguments parsing error: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n\nFor more information try --help.\n");
        va_end(ap);
        return -EINVAL;
}

/* Returns 0, 1 for "done" (--help/--version printed), or -EINVAL. */
static int parse_args(int argc, char **argv, struct options *o)
{
        /* Firecracker options that take a value but mean nothing here. */
        static const char *const ignored_val[] = { "--seccomp-filter",    "--start-time-us",
                                                   "--start-time-cpu-us", "--parent-cpu-time-us",
                                                   "--mmds-size-limit",   "--module",
                                                   "--config-file",       "--metadata",
                                                   "--describe-snapshot", NULL };
        static const char *const ignored_flag[] = { "--no-seccomp",       "--boot-timer",
                                                    "--enable-pci",       "--no-api",
                                                    "--snapshot-version", NULL };
        for (int i = 1; i < argc; i++) {
                char *a = argv[i];
                char *val = NULL;
                char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
                char name[64];
                size_t nl = eq ? (size_t)(eq - a) : strlen(a);
                if (nl >= sizeof name)
                        return arg_fail("Found argument '%s' which wasn't expected.", a);
                memcpy(name, a, nl);
                name[nl] = '\0';
                if (eq)
                        val = eq + 1;

                if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
                        usage(stdout);
                        return 1;
                }
                if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
                        printf("Firecracker v%s\nfcsim: namespace simulator; snapshots are "
                               "filesystem-only\n",
                               FCSIM_FC_VERSION);
                        return 1;
                }
                bool flag = false;
                for (const char *const *f = ignored_flag; *f; f++)
                        flag = flag || strcmp(name, *f) == 0;
                if (flag || strcmp(name, "--show-level") == 0 ||
                    strcmp(name, "--show-log-origin") == 0) {
                        if (strcmp(name, "--show-level") == 0)
                                o->show_level = true;
                        if (strcmp(name, "--show-log-origin") == 0)
                                o->show_log_origin = true;
                        if (strcmp(name, "--config-file") == 0 || strcmp(name, "--no-api") == 0) {
                                fprintf(stderr, "fcsim: %s is not supported by the simulator\n",
                                        name);
                                return -ENOTSUP;
                        }
                        continue;
                }
                if (!val) {
                        if (i + 1 >= argc)
                                return arg_fail("Argument '%s' requires a value.", name);
                        val = argv[++i];
                }
                if (strcmp(name, "--api-sock") == 0)
                        o->api_sock = val;
                else if (strcmp(name, "--id") == 0)
                        o->id = val;
                else if (strcmp(name, "--log-path") == 0)
                        o->log_path = val;
                else if (strcmp(name, "--level") == 0)
                        o->level = val;
                else if (strcmp(name, "--metrics-path") == 0)
                        o->metrics_path = val;
                else if (strcmp(name, "--http-api-max-payload-size") == 0) {
                        char *end;
                        errno = 0;
                        unsigned long long v = strtoull(val, &end, 10);
                        if (errno || *end || v == 0 || v > (1u << 24))
                                return arg_fail("Invalid value for --http-api-max-payload-size: %s",
                                                val);
                        o->body_max = (size_t)v;
                } else {
                        bool known = false;
                        for (const char *const *f = ignored_val; *f; f++)
                                known = known || strcmp(name, *f) == 0;
                        if (!known)
                                return arg_fail("Found argument '%s' which wasn't expected.", name);
                        if (strcmp(name, "--config-file") == 0) {
                                fprintf(stderr,
                                        "fcsim: --config-file is not supported by the simulator\n");
                                return -ENOTSUP;
                        }
                }
        }
        if (!o->api_sock)
                o->api_sock = "/run/firecracker.socket";
        if (!valid_instance_id(o->id))
                return arg_fail("Invalid instance ID: %s", o->id);
        return 0;
}

int main(int argc, char **argv)
{
        struct options o = { .id = "anonymous-instance", .body_max = FCSIM_HTTP_BODY_MAX };
        int r = parse_args(argc, argv, &o);
        if (r == 1)
                return 0;
        if (r == -ENOTSUP)
                return EXIT_BAD_CONFIG;
        if (r < 0)
                return EXIT_ARG_PARSING;

        /* Signals are read from a signalfd in the loop; blocking them here,
         * before any thread exists, makes every thread inherit the mask. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigprocmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        int sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sig_fd < 0) {
                fprintf(stderr, "fcsim: signalfd: %s\n", strerror(errno));
                return EXIT_GENERIC;
        }

        struct fcsim_vm *vm = malloc(sizeof *vm);
        if (!vm) {
                fprintf(stderr, "fcsim: out of memory\n");
                return EXIT_GENERIC;
        }
        fcsim_vm_init(vm, o.id);
        struct ha_err err = { "" };
        if (o.log_path || o.level) {
                enum fcsim_vmlog_level level = FCSIM_VL_INFO;
                if (o.level && fcsim_vmlog_parse_level(o.level, &level) < 0) {
                        arg_fail("Invalid log level: %s", o.level);
                        r = EXIT_ARG_PARSING;
                        goto out_vm;
                }
                if (fcsim_vmlog_set_logger(&vm->vmlog, o.log_path, level, o.show_level,
                                           o.show_log_origin, &err) < 0) {
                        fprintf(stderr, "Error: Logger(%s)\n", err.msg);
                        r = EXIT_GENERIC;
                        goto out_vm;
                }
        }
        if (o.metrics_path) {
                if (fcsim_vmlog_set_metrics(&vm->vmlog, o.metrics_path, &err) < 0) {
                        fprintf(stderr, "Error: Metrics(%s)\n", err.msg);
                        r = EXIT_GENERIC;
                        goto out_vm;
                }
                vm->metrics_set = true;
        }

        int listen_fd = -1;
        r = fcsim_server_bind(o.api_sock, &listen_fd, &err);
        if (r < 0) {
                fprintf(stderr, "Error: RunWithApi(FailedToBindSocket(\"%s\")): %s\n", o.api_sock,
                        err.msg);
                r = EXIT_GENERIC;
                goto out_vm;
        }
        ha_log_info("fcsim.started", "id=%s api_sock=%s pid=%d version=%s", vm->id, o.api_sock,
                    (int)getpid(), FCSIM_FC_VERSION);
        fcsim_vmlog_write(&vm->vmlog, FCSIM_VL_INFO, "Running Firecracker v%s (fcsim)",
                          FCSIM_FC_VERSION);

        r = fcsim_server_run(vm, listen_fd, sig_fd, o.body_max);
        close(listen_fd); /* the socket file stays, as with Firecracker */
        if (vm->metrics_set)
                fcsim_vm_flush_metrics(vm);
out_vm:
        fcsim_vm_done(vm);
        free(vm);
        close(sig_fd);
        ha_log_info("fcsim.exit", "status=%d", r);
        if (r < 0) {
                /* Die of the signal, as Firecracker (which has no handler) would. */
                signal(-r, SIG_DFL);
                sigprocmask(SIG_UNBLOCK, &set, NULL);
                raise(-r);
                return 128 - r;
        }
        return r;
}
