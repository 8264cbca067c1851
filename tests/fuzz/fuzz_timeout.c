/*
 * fuzz_timeout.c - grpc-timeout and connect-timeout-ms parsing
 * (src/rpc/timeout.c) on hostile header values.
 *
 * Checks against an independent reading of the grammar: a value is
 * accepted exactly when it is well-formed, and an accepted value is never
 * 0 for a non-zero amount and never above RPC_TIMEOUT_MAX_MS.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/fuzz_util.h"
#include "rpc/timeout.h"

static bool all_digits(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return n > 0;
}

static bool nonzero(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] != '0')
                        return true;
        return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *s = (const char *)data;
        uint64_t ms = 0;
        int r = rpc_grpc_timeout_parse(s, size, &ms);
        FZ_CHECK(r == 0 || r == -EINVAL);
        bool grpc_ok = size >= 2 && size <= 9 && all_digits(s, size - 1) &&
                       memchr("HMSmun", s[size - 1], 6) && s[size - 1] != '\0';
        FZ_CHECK((r == 0) == grpc_ok);
        if (r == 0) {
                FZ_CHECK(ms <= RPC_TIMEOUT_MAX_MS);
                if (nonzero(s, size - 1))
                        FZ_CHECK(ms >= 1);
        }

        ms = 0;
        r = rpc_connect_timeout_parse(s, size, &ms);
        FZ_CHECK(r == 0 || r == -EINVAL);
        bool connect_ok = size >= 1 && size <= 10 && all_digits(s, size);
        FZ_CHECK((r == 0) == connect_ok);
        if (r == 0) {
                FZ_CHECK(ms <= RPC_TIMEOUT_MAX_MS);
                if (nonzero(s, size))
                        FZ_CHECK(ms >= 1);
        }
        return 0;
}
