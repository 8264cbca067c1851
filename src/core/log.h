/*
 * log.h - structured logging: one line per event, key=value (text) or JSON.
 *
 *   ha_log_info("sbx.created", "sbx=%s slot=%u", id, slot);
 *   -> ts=2026-11-28T06:00:00.123Z level=info event=sbx.created sbx=ab slot=7
 *
 * The field string is always "k=v k=v" (values with spaces quoted by the
 * caller); the JSON format turns it into an object. Thread-safe: one write(2)
 * per line. Log settings are the one global state the daemon keeps.
 */
#ifndef HA_LOG_H
#define HA_LOG_H

#include <stdbool.h>

enum ha_log_level { HA_LOG_DEBUG, HA_LOG_INFO, HA_LOG_WARN, HA_LOG_ERROR };
enum ha_log_format { HA_LOG_TEXT, HA_LOG_JSON };

/* Returns 0, or -EINVAL for an unknown name. */
int ha_log_parse_level(const char *name, enum ha_log_level *ret_level);
int ha_log_parse_format(const char *name, enum ha_log_format *ret_format);

void ha_log_setup(enum ha_log_level level, enum ha_log_format format, int fd);
bool ha_log_enabled(enum ha_log_level level);

void ha_log(enum ha_log_level level, const char *event, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define ha_log_debug(ev, ...) \
        do { if (ha_log_enabled(HA_LOG_DEBUG)) ha_log(HA_LOG_DEBUG, ev, __VA_ARGS__); } while (0)
#define ha_log_info(ev, ...)  ha_log(HA_LOG_INFO, ev, __VA_ARGS__)
#define ha_log_warn(ev, ...)  ha_log(HA_LOG_WARN, ev, __VA_ARGS__)
#define ha_log_error(ev, ...) ha_log(HA_LOG_ERROR, ev, __VA_ARGS__)

#endif
