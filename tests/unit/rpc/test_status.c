#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/gzip.h"
#include "rpc/status.h"

Test(rpc_status, errno_table)
{
        cr_assert_eq(rpc_code_from_errno(-EINVAL), RPC_INVALID_ARGUMENT);
        cr_assert_eq(rpc_code_from_errno(-ENOENT), RPC_NOT_FOUND);
        cr_assert_eq(rpc_code_from_errno(-ETIMEDOUT), RPC_DEADLINE_EXCEEDED);
        cr_assert_eq(rpc_code_from_errno(-EAGAIN), RPC_RESOURCE_EXHAUSTED);
        cr_assert_eq(rpc_code_from_errno(-EBADFD), RPC_FAILED_PRECONDITION);
        cr_assert_eq(rpc_code_from_errno(-EEXIST), RPC_ALREADY_EXISTS);
        cr_assert_eq(rpc_code_from_errno(-EIO), RPC_INTERNAL);
}

Test(rpc_status, connect_names_and_http_statuses)
{
        cr_assert_str_eq(rpc_code_connect_name(RPC_CANCELLED), "canceled");
        cr_assert_eq(rpc_code_from_connect_name("resource_exhausted"), RPC_RESOURCE_EXHAUSTED);
        cr_assert_eq(rpc_code_from_connect_name("nope"), -1);
        cr_assert_eq(rpc_code_http_status(RPC_NOT_FOUND), 404);
        cr_assert_eq(rpc_code_http_status(RPC_RESOURCE_EXHAUSTED), 429);
        cr_assert_eq(rpc_code_http_status(RPC_UNIMPLEMENTED), 501);
        cr_assert_eq(rpc_code_http_status(RPC_CANCELLED), 499);
}

Test(rpc_status, percent_encoding_of_grpc_message)
{
        char out[64];
        rpc_percent_encode("a 100% é\n", out, sizeof out);
        cr_assert_str_eq(out, "a 100%25 %C3%A9%0A");
        rpc_percent_encode("abcdef", out, 4);
        cr_assert_str_eq(out, "abc");
}

Test(rpc_gzip, round_trip_and_bounded_inflate)
{
        uint8_t in[10000];
        memset(in, 'z', sizeof in);
        uint8_t *z, *back;
        size_t zl, bl;
        cr_assert_eq(rpc_gzip_deflate(in, sizeof in, &z, &zl), 0);
        cr_assert_lt(zl, 200u);
        cr_assert_eq(rpc_gzip_inflate(z, zl, sizeof in, &back, &bl), 0);
        cr_assert_eq(bl, sizeof in);
        cr_assert(memcmp(back, in, bl) == 0);
        free(back);
        cr_assert_eq(rpc_gzip_inflate(z, zl, sizeof in - 1, &back, &bl), -EMSGSIZE);
        cr_assert_eq(rpc_gzip_inflate(z, zl / 2, sizeof in, &back, &bl), -EBADMSG);
        z[zl / 2] ^= 0xff;
        cr_assert_eq(rpc_gzip_inflate(z, zl, sizeof in, &back, &bl), -EBADMSG);
        free(z);
}
