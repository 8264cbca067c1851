/*
 * collect.h - run-to-completion on top of exec.h, for the unary Exec RPC:
 * gathers stdout and stderr up to a cap each (the rest is read and dropped,
 * so the command is never blocked by the cap) and the exit status.
 */
#ifndef EXEC_COLLECT_H
#define EXEC_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "exec/exec.h"

/* How often exec_collect() checks |cancelled| while nothing arrives. */
#define EXEC_COLLECT_POLL_MS 100

struct exec_output {
        uint8_t *data;          /* malloc'd, len bytes (may be NULL when empty) */
        size_t len;
        bool truncated;         /* more was produced than the cap */
        uint64_t total;         /* bytes produced, kept or not */
};

struct exec_result {
        int32_t pid;
        int32_t exit_code;      /* valid when signal == 0, else -1 */
        int32_t signal;
        uint64_t duration_ns;
        bool timed_out;
        struct exec_output out, err;
};

/* Reads events of a started connection until EXITED. |cancelled| (may be
 * NULL) is called at least every EXEC_COLLECT_POLL_MS. Returns 0 with *ret
 * filled (free with exec_result_done), or:
 *   -ECANCELED   |cancelled| said so (free the connection: that kills it)
 *   -ETIMEDOUT   |deadline_ms| passed
 *   the errno of a guest ERROR event (exec_error_to_errno: -ENOENT missing
 *                binary, -EINVAL bad cwd/user/request, ...), words in |err|
 *   -EPIPE       the guest went away before EXITED (VM stopped/destroyed)
 *   -ENOMEM, -EPROTO, -EMSGSIZE as exec_next_event().
 * On failure *ret is left empty (nothing to free). */
int exec_collect(exec_conn *c, size_t max_per_stream, uint64_t deadline_ms,
                 bool (*cancelled)(void *arg), void *arg, struct exec_result *ret,
                 struct ha_err *err);

void exec_result_done(struct exec_result *r);

#endif
