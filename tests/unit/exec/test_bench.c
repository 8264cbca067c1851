/*
 * test_bench.c - the exec path's figures, printed (not asserted beyond
 * sanity: CI machines are shared and noisy):
 *   - round trip of `true`: connect + CONNECT handshake + start + started +
 *     exited + close, p50/p99;
 *   - throughput of `head -c N /dev/zero` streamed guest agent -> hybrid
 *     vsock stand-in -> client, next to `head -c N /dev/zero | cat >
 *     /dev/null` on the same machine.
 * Default N = 256 MiB and 300 round trips; HA_EXEC_BENCH_FULL=1 runs 1 GiB
 * and 1000 round trips.
 */
#include <criterion/criterion.h>

#include "exec/harness.h"

static struct agent g_ag;

static void setup(void)
{
        cr_assert_eq(agent_start(&g_ag, true), 0);
}

static void teardown(void)
{
        agent_stop(&g_ag);
}

TestSuite(exec_bench, .init = setup, .fini = teardown, .timeout = 300);

static bool full(void)
{
        const char *f = getenv("HA_EXEC_BENCH_FULL");

        return f && *f == '1';
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

Test(exec_bench, round_trip_of_true)
{
        size_t n = full() ? 1000 : 300;
        uint64_t *lat = calloc(n, sizeof *lat);
        const char *argv[] = { "true" };

        for (size_t i = 0; i < n; i++) {
                struct run_result res;
                uint64_t t0 = ha_now_ns();

                cr_assert_eq(run_argv(&g_ag, argv, 1, NULL, NULL, 0, &res), 0);
                lat[i] = ha_now_ns() - t0;
                cr_assert_eq(res.last.kind, EXEC_EV_EXITED);
                cr_assert_eq(res.last.exit_code, 0);
                run_result_free(&res);
        }
        qsort(lat, n, sizeof *lat, cmp_u64);
        fprintf(stderr, "BENCH exec_round_trip_true n=%zu p50_us=%.0f p99_us=%.0f max_us=%.0f\n", n,
                lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3, lat[n - 1] / 1e3);
        free(lat);
}

static double raw_pipe_mbps(uint64_t bytes)
{
        char script[128];
        uint64_t t0 = ha_now_ns();
        int status;
        pid_t pid;

        snprintf(script, sizeof script, "head -c %llu /dev/zero | cat > /dev/null", (unsigned long long)bytes);
        pid = fork();
        if (pid == 0) {
                execl("/bin/sh", "sh", "-c", script, (char *)NULL);
                _exit(127);
        }
        waitpid(pid, &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        return bytes / 1e6 / ((ha_now_ns() - t0) / 1e9);
}

Test(exec_bench, stream_throughput_vs_raw_pipe)
{
        uint64_t bytes = full() ? (1ull << 30) : (256ull << 20);
        char nbuf[32];
        const char *argv[] = { "head", "-c", nbuf, "/dev/zero" };
        struct exec_spec spec = { .argv = argv, .argc = 4 };
        uint64_t deadline = ha_now_ms() + 240000, got = 0, frames = 0, t0;
        struct exec_event ev;
        exec_conn *c;
        double exec_mbps, raw;

        snprintf(nbuf, sizeof nbuf, "%llu", (unsigned long long)bytes);
        raw = raw_pipe_mbps(bytes);
        cr_assert_eq(exec_conn_open(g_ag.uds, EXEC_GUEST_PORT, deadline, &c, NULL), 0);
        t0 = ha_now_ns();
        cr_assert_eq(exec_start(c, &spec, deadline, NULL), 0);
        for (;;) {
                cr_assert_eq(exec_next_event(c, deadline, &ev), 0);
                if (ev.kind == EXEC_EV_STDOUT) {
                        got += ev.len;
                        frames++;
                }
                if (ev.kind == EXEC_EV_EXITED)
                        break;
        }
        exec_mbps = got / 1e6 / ((ha_now_ns() - t0) / 1e9);
        exec_conn_free(c);
        cr_assert_eq(got, bytes);
        cr_assert_eq(ev.exit_code, 0);
        fprintf(stderr,
                "BENCH exec_stream bytes=%llu exec_MBps=%.0f raw_pipe_MBps=%.0f ratio=%.2f avg_chunk=%llu\n",
                (unsigned long long)bytes, exec_mbps, raw, exec_mbps / raw,
                (unsigned long long)(got / (frames ? frames : 1)));
}
