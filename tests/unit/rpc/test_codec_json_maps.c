#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "hostagent/v1/hostagent.pb-c.h"
#include "rpc/codec_json.h"

/* The wire format lets a map key repeat (the last one wins); JSON objects
 * must not repeat keys, so the encoder keeps the last entry per key. */
Test(rpc_json_maps, repeated_wire_keys_keep_the_last_value)
{
        rpc_descset *ds;
        struct ha_err err = { "" };
        cr_assert_eq(rpc_descset_new_embedded(&ds, &err), 0, "%s", err.msg);
        Hostagent__V1__Sandbox sb = HOSTAGENT__V1__SANDBOX__INIT;
        Hostagent__V1__Sandbox__MetadataEntry e[3] = {
                HOSTAGENT__V1__SANDBOX__METADATA_ENTRY__INIT,
                HOSTAGENT__V1__SANDBOX__METADATA_ENTRY__INIT,
                HOSTAGENT__V1__SANDBOX__METADATA_ENTRY__INIT,
        };
        e[0].key = "a"; e[0].value = "first";
        e[1].key = "b"; e[1].value = "only";
        e[2].key = "a"; e[2].value = "last";
        Hostagent__V1__Sandbox__MetadataEntry *p[3] = { &e[0], &e[1], &e[2] };
        sb.n_metadata = 3;
        sb.metadata = p;
        struct ha_buf b;
        ha_buf_init(&b, 1 << 16);
        cr_assert_eq(rpc_json_encode(&sb.base, ds, &b), 0);
        cr_assert_eq(b.len, strlen("{\"metadata\":{\"b\":\"only\",\"a\":\"last\"}}"));
        cr_assert(memcmp(b.data, "{\"metadata\":{\"b\":\"only\",\"a\":\"last\"}}", b.len) == 0,
                  "%.*s", (int)b.len, (const char *)b.data);
        ProtobufCMessage *back = NULL;
        cr_assert_eq(rpc_json_decode(&hostagent__v1__sandbox__descriptor, ds, b.data, b.len, NULL, &back, &err), 0,
                     "%s", err.msg);
        protobuf_c_message_free_unpacked(back, NULL);
        ha_buf_done(&b);
        rpc_descset_free(ds);
}

/* Invalid UTF-8 prints as U+FFFD, so "\xff" and "\xfe" would both print as
 * the same key: a map key that is not UTF-8 is refused (fuzz_json_enc
 * finding, input in tests/fuzz/regressions/fuzz_json_enc/). A value that is
 * not UTF-8 still prints, with U+FFFD. */
Test(rpc_json_maps, invalid_utf8_keys_are_refused)
{
        rpc_descset *ds;
        struct ha_err err = { "" };
        cr_assert_eq(rpc_descset_new_embedded(&ds, &err), 0, "%s", err.msg);
        Hostagent__V1__Sandbox sb = HOSTAGENT__V1__SANDBOX__INIT;
        Hostagent__V1__Sandbox__MetadataEntry e[2] = {
                HOSTAGENT__V1__SANDBOX__METADATA_ENTRY__INIT,
                HOSTAGENT__V1__SANDBOX__METADATA_ENTRY__INIT,
        };
        e[0].key = "\xff"; e[0].value = "x";
        e[1].key = "\xfe"; e[1].value = "y";
        Hostagent__V1__Sandbox__MetadataEntry *p[2] = { &e[0], &e[1] };
        sb.n_metadata = 2;
        sb.metadata = p;
        struct ha_buf b;
        ha_buf_init(&b, 1 << 16);
        cr_assert_eq(rpc_json_encode(&sb.base, ds, &b), -EINVAL);
        cr_assert_eq(b.len, 0);

        e[0].key = "k\xc3\xa9"; e[0].value = "v\xff";
        sb.n_metadata = 1;
        cr_assert_eq(rpc_json_encode(&sb.base, ds, &b), 0);
        const char *want = "{\"metadata\":{\"k\xc3\xa9\":\"v\xef\xbf\xbd\"}}";
        cr_assert(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0,
                  "%.*s", (int)b.len, (const char *)b.data);
        ha_buf_done(&b);
        rpc_descset_free(ds);
}
