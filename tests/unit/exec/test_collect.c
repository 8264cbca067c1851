/*
 * test_collect.c - src/exec/collect.c against the real guest agent: caps
 * with truncation (the command still runs to its end), errors carried as
 * errno + words, cancellation and deadlines.
 */
#include <criterion/criterion.h>

#include "exec/collect.h"
#include "exec/harness.h"

static struct agent g_ag;

static void setup(void)
{
        cr_assert_eq(agent_start(&g_ag, true), 0);
}

static void teardown(void)
{
        cr_assert_eq(agent_stop(&g_ag), 0);
}

TestSuite(exec_collect, .init = setup, .fini = teardown, .timeout = 60);

static exec_conn *start(const char *const *argv, size_t argc, uint64_t timeout_ms)
{
        struct exec_spec spec = { .argv = argv, .argc = argc, .timeout_ms = timeout_ms };
        exec_conn *c;

        cr_assert_eq(exec_conn_open(g_ag.uds, EXEC_GUEST_PORT, ha_now_ms() + 5000, &c, NULL), 0);
        cr_assert_eq(exec_start(c, &spec, ha_now_ms() + 5000, NULL), 0);
        return c;
}

Test(exec_collect, caps_each_stream_and_still_gets_the_exit_status)
{
        const char *argv[] = { "sh", "-c", "head -c 3000000 /dev/zero; echo small >&2; exit 7" };
        exec_conn *c = start(argv, 3, 0);
        struct exec_result res;
        struct ha_err err = { { 0 } };

        cr_assert_eq(exec_collect(c, 1 << 20, ha_now_ms() + 20000, NULL, NULL, &res, &err), 0, "%s", err.msg);
        cr_assert_eq(res.exit_code, 7);
        cr_assert_eq(res.out.len, 1 << 20);
        cr_assert(res.out.truncated);
        cr_assert_eq(res.out.total, 3000000);
        cr_assert_eq(res.err.len, 6);
        cr_assert(!res.err.truncated);
        cr_assert(memcmp(res.err.data, "small\n", 6) == 0);
        cr_assert_gt(res.pid, 0);
        exec_result_done(&res);
        exec_conn_free(c);
}

Test(exec_collect, guest_errors_become_errno_with_words)
{
        const char *argv[] = { "no-such-binary-xyz" };
        exec_conn *c = start(argv, 1, 0);
        struct exec_result res = { .pid = 99 };
        struct ha_err err = { { 0 } };

        cr_assert_eq(exec_collect(c, 100, ha_now_ms() + 5000, NULL, NULL, &res, &err), -ENOENT);
        cr_assert(strstr(err.msg, "no-such-binary-xyz"), "%s", err.msg);
        cr_assert_eq(res.pid, 99, "ret_ untouched on failure");
        exec_conn_free(c);
}

static bool cancel_after(void *arg)
{
        uint64_t *when = arg;

        return ha_now_ms() >= *when;
}

Test(exec_collect, cancel_and_deadline_end_the_wait)
{
        const char *argv[] = { "sleep", "30" };
        exec_conn *c = start(argv, 2, 0);
        struct exec_result res;
        uint64_t t0 = ha_now_ms(), when = t0 + 250;

        cr_assert_eq(exec_collect(c, 100, t0 + 10000, cancel_after, &when, &res, NULL), -ECANCELED);
        cr_assert_lt(ha_now_ms() - t0, 250 + 2 * EXEC_COLLECT_POLL_MS + 200);
        exec_conn_free(c);

        c = start(argv, 2, 0);
        t0 = ha_now_ms();
        cr_assert_eq(exec_collect(c, 100, t0 + 200, NULL, NULL, &res, NULL), -ETIMEDOUT);
        cr_assert_lt(ha_now_ms() - t0, 1000);
        exec_conn_free(c);

        /* The guest's own timeout is a normal exit with timed_out. */
        c = start(argv, 2, 150);
        cr_assert_eq(exec_collect(c, 100, ha_now_ms() + 10000, NULL, NULL, &res, NULL), 0);
        cr_assert(res.timed_out);
        cr_assert_eq(res.signal, SIGKILL);
        exec_result_done(&res);
        exec_conn_free(c);
}
