/*
 * vmlog.h - Firecracker's logger and metrics outputs (PUT /logger,
 * PUT /metrics, --log-path, --metrics-path): human-readable lines and
 * JSON metrics objects written to a file or named pipe.
 *
 * Both are opened O_RDWR | O_NONBLOCK | O_CREAT like Firecracker, so a
 * FIFO needs no reader at open time and a stalled reader never blocks the
 * API thread: lines that do not fit are dropped and counted.
 * These are the VM's logs; fcsim's own operational log goes to stderr
 * through core/log.h.
 */
#ifndef FCSIM_VMLOG_H
#define FCSIM_VMLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

enum fcsim_vmlog_level {
        FCSIM_VL_OFF,
        FCSIM_VL_ERROR,
        FCSIM_VL_WARN,
        FCSIM_VL_INFO,
        FCSIM_VL_DEBUG,
        FCSIM_VL_TRACE
};

struct fcsim_vmlog {
        char id[65];
        int log_fd; /* -1 when not configured */
        enum fcsim_vmlog_level level;
        bool show_level, show_origin;
        int metrics_fd; /* -1 when not configured */
        uint64_t missed_log_count, missed_metrics_count;
};

void fcsim_vmlog_init(struct fcsim_vmlog *l, const char *id);
void fcsim_vmlog_done(struct fcsim_vmlog *l);
/* Parses Firecracker's level names, case-insensitively ("Warning", "warn"). */
int fcsim_vmlog_parse_level(const char *name, enum fcsim_vmlog_level *ret);
/* (Re)configures the logger; |path| NULL keeps the current target. */
int fcsim_vmlog_set_logger(struct fcsim_vmlog *l, const char *path, enum fcsim_vmlog_level level,
                           bool show_level, bool show_origin, struct ha_err *err);
int fcsim_vmlog_set_metrics(struct fcsim_vmlog *l, const char *path, struct ha_err *err);
void fcsim_vmlog_write(struct fcsim_vmlog *l, enum fcsim_vmlog_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Writes one metrics line (a complete JSON object, newline added). */
void fcsim_vmlog_metrics(struct fcsim_vmlog *l, const char *json);

#endif
