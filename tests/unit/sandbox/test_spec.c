/*
 * Tests of src/sandbox/spec.c: ids, image names, CIDRs, defaults, limits and
 * the normalisation that makes Create idempotent.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "sandbox/sbx_int.h"

Test(sbx_spec, id_charset_and_length)
{
        cr_assert(sbx_id_valid("a"));
        cr_assert(sbx_id_valid("0"));
        cr_assert(sbx_id_valid("abc-123"));
        cr_assert(sbx_id_valid("a-"));
        char id[80];
        memset(id, 'a', 63);
        id[63] = '\0';
        cr_assert(sbx_id_valid(id), "63 chars is the maximum");
        id[63] = 'a';
        id[64] = '\0';
        cr_assert_not(sbx_id_valid(id), "64 chars is too long");
        cr_assert_not(sbx_id_valid(""));
        cr_assert_not(sbx_id_valid(NULL));
        cr_assert_not(sbx_id_valid("-a"));
        cr_assert_not(sbx_id_valid("A"));
        cr_assert_not(sbx_id_valid("a_b"));
        cr_assert_not(sbx_id_valid("a/b"));
        cr_assert_not(sbx_id_valid("a.b"));
        cr_assert_not(sbx_id_valid("a b"));
        cr_assert_not(sbx_id_valid("caf\xc3\xa9"));
}

Test(sbx_spec, image_is_a_name_never_a_path)
{
        cr_assert(sbx_image_valid("base"));
        cr_assert(sbx_image_valid("Ubuntu-22.04_min"));
        cr_assert_not(sbx_image_valid("../etc/passwd"));
        cr_assert_not(sbx_image_valid("a/b"));
        cr_assert_not(sbx_image_valid(".hidden"));
        cr_assert_not(sbx_image_valid(""));
        cr_assert_not(sbx_image_valid("a\nb"));
}

Test(sbx_spec, cidrs)
{
        cr_assert(sbx_cidr_valid("10.0.0.0/8"));
        cr_assert(sbx_cidr_valid("1.2.3.4"));
        cr_assert(sbx_cidr_valid("0.0.0.0/0"));
        cr_assert(sbx_cidr_valid("2001:db8::/32"));
        cr_assert(sbx_cidr_valid("::1/128"));
        cr_assert_not(sbx_cidr_valid("10.0.0.0/33"));
        cr_assert_not(sbx_cidr_valid("::/129"));
        cr_assert_not(sbx_cidr_valid("10.0.0.0/"));
        cr_assert_not(sbx_cidr_valid("10.0.0/8"));
        cr_assert_not(sbx_cidr_valid("example.com"));
        cr_assert_not(sbx_cidr_valid("10.0.0.0/8x"));
        cr_assert_not(sbx_cidr_valid("/8"));
}

static struct sbx_config cfg(void)
{
        struct sbx_config c;
        sbx_config_init(&c);
        return c;
}

Test(sbx_spec, normalize_fills_defaults_and_generates_an_id)
{
        struct sbx_config c = cfg();
        struct sbx_spec in = { .image = "base" }, out;
        struct ha_err e = { { 0 } };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), 0, "%s", e.msg);
        cr_assert(sbx_id_valid(out.id));
        cr_assert_eq(strlen(out.id), 16);
        cr_assert_eq(out.vcpus, 1);
        cr_assert_eq(out.memory_mib, 256);
        cr_assert_eq(out.timeout_s, 300);
        cr_assert_eq(out.egress.mode, SBX_EGRESS_ALLOW_ALL);
        sbx_spec_done(&out);
}

Test(sbx_spec, normalize_rejects_with_the_field_named)
{
        struct sbx_config c = cfg();
        struct sbx_spec out;
        struct ha_err e = { { 0 } };
        struct sbx_spec in = { .id = "Bad", .image = "base" };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), -EINVAL);
        cr_assert(strstr(e.msg, "sandbox_id"), "%s", e.msg);
        in = (struct sbx_spec){ .image = "../x" };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), -EINVAL);
        cr_assert(strstr(e.msg, "image"), "%s", e.msg);
        in = (struct sbx_spec){ .image = NULL };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), -EINVAL);

        struct sbx_kv dup[] = { { "k", "1" }, { "k", "2" } };
        in = (struct sbx_spec){ .image = "base", .metadata = { dup, 2 } };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), -EINVAL);
        cr_assert_str_eq(e.msg, "metadata has a duplicate key");

        struct sbx_kv eq[] = { { "A=B", "1" } };
        in = (struct sbx_spec){ .image = "base", .env = { eq, 1 } };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), -EINVAL);
        cr_assert(strstr(e.msg, "contains '='"), "%s", e.msg);

        struct sbx_kv empty[] = { { "", "1" } };
        in = (struct sbx_spec){ .image = "base", .metadata = { empty, 1 } };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), -EINVAL);

        static char big[SBX_VALUE_MAX + 2];
        memset(big, 'v', SBX_VALUE_MAX + 1);
        struct sbx_kv bigv[] = { { "k", big } };
        in = (struct sbx_spec){ .image = "base", .env = { bigv, 1 } };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), -EINVAL);
        cr_assert(strstr(e.msg, "more than 4096"), "%s", e.msg);

        struct sbx_kv many[SBX_MAP_MAX_ENTRIES + 1];
        char keys[SBX_MAP_MAX_ENTRIES + 1][8];
        for (int i = 0; i <= SBX_MAP_MAX_ENTRIES; i++) {
                snprintf(keys[i], sizeof keys[i], "k%d", i);
                many[i] = (struct sbx_kv){ keys[i], "v" };
        }
        in = (struct sbx_spec){ .image = "base", .metadata = { many, SBX_MAP_MAX_ENTRIES + 1 } };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), -EINVAL);
        in.metadata.n = SBX_MAP_MAX_ENTRIES;
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), 0, "%s", e.msg);
        sbx_spec_done(&out);

        char *bad[] = { "10.0.0.0/8", "nope" };
        in = (struct sbx_spec){ .image = "base", .egress = { .mode = SBX_EGRESS_DENY_LIST,
                                                            .deny_cidrs = { bad, 2 } } };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), -EINVAL);
        cr_assert_str_eq(e.msg, "egress.deny_cidrs[1]: \"nope\" is not a CIDR");
        in = (struct sbx_spec){ .image = "base", .egress = { .mode = (enum sbx_egress_mode)9 } };
        cr_assert_eq(sbx_spec_normalize(&c, &in, &out, &e), -EINVAL);
}

Test(sbx_spec, equal_after_normalisation_whatever_the_key_order)
{
        struct sbx_config c = cfg();
        struct sbx_kv m1[] = { { "b", "2" }, { "a", "1" } };
        struct sbx_kv m2[] = { { "a", "1" }, { "b", "2" } };
        struct sbx_spec i1 = { .id = "x", .image = "base", .metadata = { m1, 2 } };
        struct sbx_spec i2 = { .id = "x", .image = "base", .vcpus = 1, .memory_mib = 256,
                               .metadata = { m2, 2 } };
        struct sbx_spec o1, o2;
        cr_assert_eq(sbx_spec_normalize(&c, &i1, &o1, NULL), 0);
        cr_assert_eq(sbx_spec_normalize(&c, &i2, &o2, NULL), 0);
        cr_assert(sbx_spec_equal(&o1, &o2), "explicit defaults equal implicit ones");
        cr_assert_str_eq(o1.metadata.items[0].key, "a");
        sbx_spec_done(&o2);
        struct sbx_kv m3[] = { { "a", "1" }, { "b", "3" } };
        i2.metadata = (struct sbx_map){ m3, 2 };
        cr_assert_eq(sbx_spec_normalize(&c, &i2, &o2, NULL), 0);
        cr_assert_not(sbx_spec_equal(&o1, &o2));
        sbx_spec_done(&o1);
        sbx_spec_done(&o2);
}
