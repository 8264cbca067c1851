/*
 * collect.c - see collect.h. Output beyond the cap is counted and dropped
 * rather than left unread: leaving it in the socket would block the
 * command, and the caller asked for its exit status.
 */
#include "exec/collect.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/time.h"

static int keep(struct exec_output *o, const uint8_t *p, size_t n, size_t cap)
{
        size_t room = o->len < cap ? cap - o->len : 0;
        size_t take = n < room ? n : room;

        o->total += n;
        if (take < n)
                o->truncated = true;
        if (!take)
                return 0;
        /* Grow geometrically, never past the cap. */
        size_t want = o->len + take, ncap = o->len ? o->len * 2 : 4096;
        if (ncap < want)
                ncap = want;
        if (ncap > cap)
                ncap = cap;
        uint8_t *nd = realloc(o->data, ncap);
        if (!nd)
                return -ENOMEM;
        o->data = nd;
        memcpy(o->data + o->len, p, take);
        o->len += take;
        return 0;
}

void exec_result_done(struct exec_result *r)
{
        if (!r)
                return;
        free(r->out.data);
        free(r->err.data);
        memset(r, 0, sizeof *r);
}

int exec_collect(exec_conn *c, size_t max_per_stream, uint64_t deadline_ms,
                 bool (*cancelled)(void *arg), void *arg, struct exec_result *ret,
                 struct ha_err *err)
{
        struct exec_result res;
        struct exec_event ev;
        int r;

        memset(&res, 0, sizeof res);
        for (;;) {
                uint64_t now = ha_now_ms();
                uint64_t until = now + EXEC_COLLECT_POLL_MS;

                if (cancelled && cancelled(arg)) {
                        r = ha_err_set(err, -ECANCELED, "exec cancelled");
                        goto out_free;
                }
                if (now >= deadline_ms) {
                        r = ha_err_set(err, -ETIMEDOUT, "exec: deadline passed before the command exited");
                        goto out_free;
                }
                r = exec_next_event(c, until < deadline_ms ? until : deadline_ms, &ev);
                if (r == -ETIMEDOUT)
                        continue;
                if (r < 0) {
                        ha_err_set(err, r, r == -EPIPE ? "exec: the guest closed the connection before the command exited"
                                                       : "exec: reading from the guest failed");
                        goto out_free;
                }
                switch (ev.kind) {
                case EXEC_EV_STARTED:
                        res.pid = ev.pid;
                        break;
                case EXEC_EV_STDOUT:
                case EXEC_EV_STDERR:
                        r = keep(ev.kind == EXEC_EV_STDOUT ? &res.out : &res.err, ev.data, ev.len, max_per_stream);
                        if (r < 0) {
                                ha_err_set(err, r, "exec: out of memory for output");
                                goto out_free;
                        }
                        break;
                case EXEC_EV_EXITED:
                        res.exit_code = ev.exit_code;
                        res.signal = ev.signal;
                        res.duration_ns = ev.duration_ns;
                        res.timed_out = ev.timed_out;
                        *ret = res;
                        return 0;
                case EXEC_EV_ERROR:
                        r = ha_err_set(err, exec_error_to_errno(ev.error), "%s", ev.message);
                        goto out_free;
                case EXEC_EV_PONG:
                        break;
                }
        }

out_free:
        exec_result_done(&res);
        return r;
}
