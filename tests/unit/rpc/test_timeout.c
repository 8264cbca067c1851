#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "rpc/timeout.h"

static uint64_t parse(const char *s)
{
        uint64_t ms = 0;
        cr_assert_eq(rpc_grpc_timeout_parse(s, strlen(s), &ms), 0, "%s", s);
        return ms;
}

Test(rpc_timeout, every_grpc_unit)
{
        cr_assert_eq(parse("2H"), 7200000u);
        cr_assert_eq(parse("3M"), 180000u);
        cr_assert_eq(parse("5S"), 5000u);
        cr_assert_eq(parse("250m"), 250u);
        cr_assert_eq(parse("199990u"), 200u);   /* rounded up */
        cr_assert_eq(parse("1n"), 1u);
        cr_assert_eq(parse("0m"), 0u);
}

Test(rpc_timeout, huge_values_are_clamped)
{
        cr_assert_eq(parse("99999999H"), RPC_TIMEOUT_MAX_MS);
}

Test(rpc_timeout, malformed_values_are_rejected)
{
        const char *bad[] = { "", "S", "10", "123456789S", "1x", "-1S", "1.5S", " 1S" };
        uint64_t ms;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                cr_assert_eq(rpc_grpc_timeout_parse(bad[i], strlen(bad[i]), &ms), -EINVAL, "%s", bad[i]);
        cr_assert_eq(rpc_connect_timeout_parse("12345678901", 11, &ms), -EINVAL);
        cr_assert_eq(rpc_connect_timeout_parse("1500", 4, &ms), 0);
        cr_assert_eq(ms, 1500u);
}
