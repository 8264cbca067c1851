/*
 * test_limits.c - the guest agent at its limits, seen through the exec
 * client: out of file descriptors it answers RESOURCE_EXHAUSTED or holds
 * new connections in the backlog without spinning, and recovers as soon as
 * sessions end; the readiness probe waits for an agent that starts late.
 */
#include <criterion/criterion.h>

#include "exec/harness.h"

static long long cpu_ticks(pid_t pid)
{
        char path[64], buf[1024];
        unsigned long long ut = 0, st = 0;
        FILE *f;
        char *p;

        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        f = fopen(path, "r");
        if (!f)
                return -1;
        if (!fgets(buf, sizeof buf, f)) {
                fclose(f);
                return -1;
        }
        fclose(f);
        p = strrchr(buf, ')');
        /* fields after ')': state(3) ... utime(14) stime(15) */
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
                return -1;
        return (long long)(ut + st);
}

Test(exec_limits, out_of_fds_no_spin_and_recovery, .timeout = 60)
{
        enum { MAXC = 64 };
        struct agent ag;
        exec_conn *idle[MAXC];
        int n_idle = 0;
        uint64_t deadline;
        struct exec_event ev;
        exec_conn *c;
        long long t1, t2;
        const char *argv[] = { "sleep", "30" };
        struct exec_spec spec = { .argv = argv, .argc = 2 };

        cr_assert_eq(agent_start_limited(&ag, true, 24), 0);
        deadline = ha_now_ms() + 20000;

        /* Starting a command needs ~8 fds at once: with few left the agent
         * must say so instead of failing obscurely. */
        for (;;) {
                cr_assert_lt(n_idle, MAXC);
                cr_assert_eq(exec_conn_open(ag.uds, EXEC_GUEST_PORT, deadline, &idle[n_idle], NULL), 0);
                cr_assert_eq(exec_start(idle[n_idle], &spec, deadline, NULL), 0);
                cr_assert_eq(exec_next_event(idle[n_idle], deadline, &ev), 0);
                if (ev.kind == EXEC_EV_ERROR) {
                        cr_assert_eq(ev.error, EXEC_ERR_RESOURCE_EXHAUSTED, "%s", ev.message);
                        cr_assert(strstr(ev.message, "open files"), "%s", ev.message);
                        exec_conn_free(idle[n_idle]);
                        break;
                }
                cr_assert_eq(ev.kind, EXEC_EV_STARTED);
                n_idle++;
        }
        /* Idle connections (1 fd each) until accept itself fails. */
        for (int i = 0; i < 16 && n_idle < MAXC; i++) {
                cr_assert_eq(exec_conn_open(ag.uds, EXEC_GUEST_PORT, deadline, &idle[n_idle], NULL), 0);
                n_idle++;
        }
        usleep(300000);
        t1 = cpu_ticks(ag.pid);
        usleep(700000);
        t2 = cpu_ticks(ag.pid);
        cr_assert_lt(t2 - t1, 10, "the agent spins while out of fds (%lld ticks in 0.7 s)", t2 - t1);

        /* A connection waiting in the backlog is served once fds free up. */
        cr_assert_eq(exec_conn_open(ag.uds, EXEC_GUEST_PORT, deadline, &c, NULL), 0);
        cr_assert_eq(exec_ping(c, deadline), 0);
        cr_assert_eq(exec_next_event(c, ha_now_ms() + 300, &ev), -ETIMEDOUT, "no fd for it yet");
        for (int i = 0; i < n_idle; i++)
                exec_conn_free(idle[i]);
        cr_assert_eq(exec_next_event(c, deadline, &ev), 0);
        cr_assert_eq(ev.kind, EXEC_EV_PONG);
        exec_conn_free(c);
        cr_assert_eq(agent_stop(&ag), 0);
}

struct waiter {
        const char *uds;
        struct ha_err err;
        int rc;
};

static void *wait_ready_thread(void *arg)
{
        struct waiter *w = arg;

        w->rc = exec_wait_ready(w->uds, ha_now_ms() + 10000, &w->err);
        return NULL;
}

Test(exec_limits, wait_ready_waits_for_a_late_agent, .timeout = 30)
{
        struct agent ag;
        struct ha_err err = { { 0 } };
        struct waiter w = { 0 };
        pthread_t t;
        uint64_t t0;

        cr_assert_eq(agent_start(&ag, false), 0);
        /* No agent: the readiness probe times out with words. */
        t0 = ha_now_ms();
        cr_assert_eq(exec_wait_ready(ag.uds, t0 + 200, &err), -ETIMEDOUT);
        cr_assert_geq(ha_now_ms() - t0, 190);
        cr_assert(strstr(err.msg, ag.uds), "%s", err.msg);
        /* No VMM socket at all: same, and path too long is final. */
        cr_assert_eq(exec_wait_ready("/nonexistent/v.sock", ha_now_ms() + 100, &err), -ETIMEDOUT);
        {
                char longp[200];

                memset(longp, 'a', sizeof longp - 1);
                longp[0] = '/';
                longp[sizeof longp - 1] = '\0';
                cr_assert_eq(exec_wait_ready(longp, ha_now_ms() + 100, &err), -ENAMETOOLONG);
        }
        /* The probe starts first; the agent comes up 300 ms later. */
        w.uds = ag.uds;
        pthread_create(&t, NULL, wait_ready_thread, &w);
        usleep(300000);
        ag.pid = agent_spawn(ag.guest_dir, 0);
        pthread_join(t, NULL);
        cr_assert_eq(w.rc, 0, "%s", w.err.msg);
        cr_assert_gt(atomic_load(&ag.shim.connects), 1, "it retried");
        cr_assert_eq(agent_stop(&ag), 0);
}
