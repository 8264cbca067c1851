/* timeout.c - see timeout.h. */
#include "rpc/timeout.h"

#include <errno.h>

static int digits(const char *s, size_t n, size_t max, uint64_t *ret)
{
        if (n == 0 || n > max)
                return -EINVAL;
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        *ret = v;
        return 0;
}

static uint64_t clamp(uint64_t ms)
{
        return ms > RPC_TIMEOUT_MAX_MS ? RPC_TIMEOUT_MAX_MS : ms;
}

int rpc_grpc_timeout_parse(const char *s, size_t n, uint64_t *ret_ms)
{
        uint64_t v;
        if (n < 2 || digits(s, n - 1, 8, &v) < 0)
                return -EINVAL;
        uint64_t ms;
        switch (s[n - 1]) {
        case 'H': ms = v * 3600000u; break;
        case 'M': ms = v * 60000u; break;
        case 'S': ms = v * 1000u; break;
        case 'm': ms = v; break;
        case 'u': ms = (v + 999) / 1000; break;
        case 'n': ms = (v + 999999) / 1000000; break;
        default: return -EINVAL;
        }
        *ret_ms = clamp(ms);
        return 0;
}

int rpc_connect_timeout_parse(const char *s, size_t n, uint64_t *ret_ms)
{
        uint64_t v;
        if (digits(s, n, 10, &v) < 0)
                return -EINVAL;
        *ret_ms = clamp(v);
        return 0;
}
