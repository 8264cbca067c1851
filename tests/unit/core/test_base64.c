#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/base64.h"

Test(ha_base64, encodes_standard_and_url_padded_or_not)
{
        const uint8_t in[] = { 0xfb, 0xff, 0xbf, 0x01 };
        char out[16];
        ha_base64_encode(in, 4, out, false, true);
        cr_assert_str_eq(out, "+/+/AQ==");
        ha_base64_encode(in, 4, out, true, false);
        cr_assert_str_eq(out, "-_-_AQ");
}

Test(ha_base64, decodes_either_alphabet_with_or_without_padding)
{
        uint8_t out[8];
        cr_assert_eq(ha_base64_decode("+/+/AQ==", 8, out), 4);
        cr_assert_eq(ha_base64_decode("-_-_AQ", 6, out), 4);
        cr_assert_eq(out[0], 0xfb);
        cr_assert_eq(out[3], 0x01);
        cr_assert_eq(ha_base64_decode("a", 1, out), -EINVAL);
        cr_assert_eq(ha_base64_decode("ab*d", 4, out), -EINVAL);
        cr_assert_eq(ha_base64_decode("", 0, out), 0);
}
