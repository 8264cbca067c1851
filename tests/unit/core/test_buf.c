#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/buf.h"

Test(ha_buf, append_up_to_limit_then_emsgsize)
{
        struct ha_buf b;
        ha_buf_init(&b, 10);
        cr_assert_eq(ha_buf_append(&b, "0123456789", 10), 0);
        cr_assert_eq(ha_buf_append(&b, "x", 1), -EMSGSIZE);
        cr_assert_eq(b.len, 10);
        ha_buf_consume(&b, 4);
        cr_assert_eq(b.len, 6);
        cr_assert(memcmp(b.data, "456789", 6) == 0);
        ha_buf_done(&b);
}

Test(ha_buf, printf_formats_and_respects_limit)
{
        struct ha_buf b;
        ha_buf_init(&b, 16);
        cr_assert_eq(ha_buf_printf(&b, "n=%d", 42), 0);
        cr_assert_eq(b.len, 4);
        cr_assert(memcmp(b.data, "n=42", 4) == 0);
        cr_assert_eq(ha_buf_printf(&b, "%s", "this is too long"), -EMSGSIZE);
        ha_buf_done(&b);
}
