/*
 * log.c - see log.h. Lines are built in a fixed stack buffer (truncated with
 * "..." when too long) and written with one write(2), so lines from several
 * threads never interleave.
 */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static struct {
        enum ha_log_level level;
        enum ha_log_format format;
        int fd;
} g_log = { HA_LOG_INFO, HA_LOG_TEXT, 2 };

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int ha_log_parse_level(const char *name, enum ha_log_level *ret_level)
{
        for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
                if (strcmp(name, level_names[i]) == 0) {
                        *ret_level = (enum ha_log_level)i;
                        return 0;
                }
        }
        return -EINVAL;
}

int ha_log_parse_format(const char *name, enum ha_log_format *ret_format)
{
        if (strcmp(name, "text") == 0)
                *ret_format = HA_LOG_TEXT;
        else if (strcmp(name, "json") == 0)
                *ret_format = HA_LOG_JSON;
        else
                return -EINVAL;
        return 0;
}

void ha_log_setup(enum ha_log_level level, enum ha_log_format format, int fd)
{
        g_log.level = level;
        g_log.format = format;
        g_log.fd = fd;
}

bool ha_log_enabled(enum ha_log_level level)
{
        return level >= g_log.level;
}

/* Appends |s| to |out| as a JSON string body (no quotes). */
static size_t json_escape(char *out, size_t cap, const char *s, size_t n)
{
        size_t o = 0;
        for (size_t i = 0; i < n && o + 7 < cap; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '"' || c == '\\') {
                        out[o++] = '\\';
                        out[o++] = (char)c;
                } else if (c < 0x20) {
                        o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
                } else {
                        out[o++] = (char)c;
                }
        }
        return o;
}

/* Converts "k=v k2=\"a b\"" into ,"k":"v","k2":"a b" appended to |out|. */
static size_t fields_to_json(char *out, size_t cap, const char *f)
{
        size_t o = 0;
        while (*f && o + 16 < cap) {
                while (*f == ' ')
                        f++;
                const char *eq = strchr(f, '=');
                if (!eq)
                        break;
                out[o++] = ',';
                out[o++] = '"';
                o += json_escape(out + o, cap - o, f, (size_t)(eq - f));
                out[o++] = '"';
                out[o++] = ':';
                out[o++] = '"';
                const char *v = eq + 1, *end;
                if (*v == '"') {
                        v++;
                        end = v;
                        while (*end && !(*end == '"' && end[-1] != '\\'))
                                end++;
                        o += json_escape(out + o, cap - o, v, (size_t)(end - v));
                        f = *end ? end + 1 : end;
                } else {
                        end = v;
                        while (*end && *end != ' ')
                                end++;
                        o += json_escape(out + o, cap - o, v, (size_t)(end - v));
                        f = end;
                }
                if (o + 2 < cap)
                        out[o++] = '"';
        }
        return o;
}

void ha_log(enum ha_log_level level, const char *event, const char *fmt, ...)
{
        if (!ha_log_enabled(level))
                return;
        int saved_errno = errno;
        char fields[LOG_LINE_MAX / 2];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(fields, sizeof fields, fmt, ap);
        va_end(ap);
        if (n < 0)
                fields[0] = '\0';
        else if ((size_t)n >= sizeof fields)
                memcpy(fields + sizeof fields - 4, "...", 4);

        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char when[96];
        snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000);

        char line[LOG_LINE_MAX];
        size_t len;
        if (g_log.format == HA_LOG_JSON) {
                int h = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"%s\"",
                                 when, level_names[level], event);
                len = (size_t)h < sizeof line ? (size_t)h : sizeof line - 1;
                len += fields_to_json(line + len, sizeof line - len - 3, fields);
                line[len++] = '}';
        } else {
                int h = snprintf(line, sizeof line, "ts=%s level=%s event=%s%s%s", when,
                                 level_names[level], event, fields[0] ? " " : "", fields);
                len = (size_t)h < sizeof line - 1 ? (size_t)h : sizeof line - 2;
        }
        line[len++] = '\n';
        ssize_t w = write(g_log.fd, line, len);
        (void)w;
        errno = saved_errno;
}
