/*
 * vmlog.c - see vmlog.h. Line format, as Firecracker's:
 *   2026-11-28T06:00:00.123456789 [<id>:fc_api(:LEVEL)] message
 */
#include "vmlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define VMLOG_LINE_MAX 4096

void fcsim_vmlog_init(struct fcsim_vmlog *l, const char *id)
{
        memset(l, 0, sizeof *l);
        snprintf(l->id, sizeof l->id, "%s", id);
        l->log_fd = -1;
        l->metrics_fd = -1;
        l->level = FCSIM_VL_INFO;
}

void fcsim_vmlog_done(struct fcsim_vmlog *l)
{
        if (l->log_fd >= 0)
                close(l->log_fd);
        if (l->metrics_fd >= 0)
                close(l->metrics_fd);
        l->log_fd = l->metrics_fd = -1;
}

int fcsim_vmlog_parse_level(const char *name, enum fcsim_vmlog_level *ret)
{
        static const struct {
                const char *name;
                enum fcsim_vmlog_level level;
        } t[] = { { "off", FCSIM_VL_OFF },      { "error", FCSIM_VL_ERROR },
                  { "warning", FCSIM_VL_WARN }, { "warn", FCSIM_VL_WARN },
                  { "info", FCSIM_VL_INFO },    { "debug", FCSIM_VL_DEBUG },
                  { "trace", FCSIM_VL_TRACE } };
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                if (strcasecmp(name, t[i].name) == 0) {
                        *ret = t[i].level;
                        return 0;
                }
        }
        return -EINVAL;
}

static int open_target(const char *path, int *ret_fd)
{
        int fd = open(path, O_RDWR | O_APPEND | O_NONBLOCK | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

int fcsim_vmlog_set_logger(struct fcsim_vmlog *l, const char *path, enum fcsim_vmlog_level level,
                           bool show_level, bool show_origin, struct ha_err *err)
{
        if (path) {
                int fd = -1;
                int r = open_target(path, &fd);
                if (r < 0)
                        return ha_err_set(err, r, "Failed to open target file: %s (os error %d)",
                                          strerror(-r), -r);
                if (l->log_fd >= 0)
                        close(l->log_fd);
                l->log_fd = fd;
        }
        l->level = level;
        l->show_level = show_level;
        l->show_origin = show_origin;
        return 0;
}

int fcsim_vmlog_set_metrics(struct fcsim_vmlog *l, const char *path, struct ha_err *err)
{
        int fd = -1;
        int r = open_target(path, &fd);
        if (r < 0)
                return ha_err_set(err, r, "Failed to open target file: %s (os error %d)",
                                  strerror(-r), -r);
        if (l->metrics_fd >= 0)
                close(l->metrics_fd);
        l->metrics_fd = fd;
        return 0;
}

static const char *level_name(enum fcsim_vmlog_level level)
{
        switch (level) {
        case FCSIM_VL_ERROR: return "ERROR";
        case FCSIM_VL_WARN: return "WARN";
        case FCSIM_VL_INFO: return "INFO";
        case FCSIM_VL_DEBUG: return "DEBUG";
        case FCSIM_VL_TRACE: return "TRACE";
        default: return "OFF";
        }
}

/* One write per line; a short or failed write counts as a lost line. */
static bool put_line(int fd, const char *line, size_t len)
{
        ssize_t w = write(fd, line, len);
        return w == (ssize_t)len;
}

void fcsim_vmlog_write(struct fcsim_vmlog *l, enum fcsim_vmlog_level level, const char *fmt, ...)
{
        if (l->log_fd < 0 || level == FCSIM_VL_OFF || level > l->level)
                return;
        char line[VMLOG_LINE_MAX];
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%09ld [%s:fc_api%s%s] ",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, ts.tv_nsec, l->id, l->show_level ? ":" : "",
                         l->show_level ? level_name(level) : "");
        if (n < 0 || (size_t)n >= sizeof line)
                return;
        size_t o = (size_t)n;
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(line + o, sizeof line - o - 1, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        o += (size_t)n < sizeof line - o - 1 ? (size_t)n : sizeof line - o - 2;
        line[o++] = '\n';
        if (!put_line(l->log_fd, line, o))
                l->missed_log_count++;
}

void fcsim_vmlog_metrics(struct fcsim_vmlog *l, const char *json)
{
        if (l->metrics_fd < 0)
                return;
        char line[VMLOG_LINE_MAX];
        int n = snprintf(line, sizeof line, "%s\n", json);
        if (n < 0 || (size_t)n >= sizeof line || !put_line(l->metrics_fd, line, (size_t)n))
                l->missed_metrics_count++;
}
