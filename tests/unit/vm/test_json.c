#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "vm/json.h"

static char *build(struct ha_buf *b, void (*fn)(struct vm_json *), int *ret)
{
        struct vm_json j;
        ha_buf_init(b, VM_JSON_BODY_MAX);
        vm_json_init(&j, b);
        fn(&j);
        *ret = vm_json_finish(&j);
        ha_buf_append(b, "", 1);
        return (char *)b->data;
}

static void nested(struct vm_json *j)
{
        vm_json_object_begin(j, NULL);
        vm_json_string(j, "snapshot_path", "/a b/\"q\"\\\n\t\x01");
        vm_json_object_begin(j, "mem_backend");
        vm_json_string(j, "backend_type", "File");
        vm_json_object_end(j);
        vm_json_array_begin(j, "network_overrides");
        vm_json_object_begin(j, NULL);
        vm_json_string(j, "iface_id", "eth0");
        vm_json_object_end(j);
        vm_json_object_begin(j, NULL);
        vm_json_object_end(j);
        vm_json_array_end(j);
        vm_json_uint(j, "guest_cid", 4294967295u);
        vm_json_bool(j, "resume_vm", true);
        vm_json_bool(j, "x", false);
        vm_json_object_end(j);
}

Test(vm_json, writer_escapes_and_nests)
{
        struct ha_buf b;
        int r;
        char *s = build(&b, nested, &r);
        cr_assert_eq(r, 0);
        cr_assert_str_eq(s, "{\"snapshot_path\":\"/a b/\\\"q\\\"\\\\\\n\\t\\u0001\","
                            "\"mem_backend\":{\"backend_type\":\"File\"},"
                            "\"network_overrides\":[{\"iface_id\":\"eth0\"},{}],"
                            "\"guest_cid\":4294967295,\"resume_vm\":true,\"x\":false}");
        ha_buf_done(&b);
}

static void unbalanced(struct vm_json *j)
{
        vm_json_object_begin(j, NULL);
        vm_json_string(j, "a", "b");
}

Test(vm_json, writer_reports_unbalanced_nesting)
{
        struct ha_buf b;
        int r;
        build(&b, unbalanced, &r);
        cr_assert_eq(r, -EINVAL);
        ha_buf_done(&b);
}

Test(vm_json, writer_stops_at_the_body_limit)
{
        struct ha_buf b;
        struct vm_json j;
        ha_buf_init(&b, 32);
        vm_json_init(&j, &b);
        vm_json_object_begin(&j, NULL);
        vm_json_string(&j, "log_path", "/a/very/long/path/that/does/not/fit");
        vm_json_object_end(&j);
        cr_assert_eq(vm_json_finish(&j), -EMSGSIZE);
        ha_buf_done(&b);
}

Test(vm_json, reader_finds_fault_message_and_unescapes)
{
        const char *s = "{\"other\":{\"a\":[1,2,{\"fault_message\":\"no\"}]},\"n\":-1.5e3,"
                        "\"t\":true,\"fault_message\":\"bad \\\"x\\\"\\n\\u00e9\\ud83d\\ude00/\"}";
        char out[64];
        cr_assert_eq(vm_json_get_string(s, strlen(s), "fault_message", out, sizeof out), 0);
        cr_assert_str_eq(out, "bad \"x\"\n\xc3\xa9\xf0\x9f\x98\x80/");
}

Test(vm_json, reader_truncates_to_the_buffer)
{
        const char *s = "{\"fault_message\":\"0123456789\"}";
        char out[5];
        cr_assert_eq(vm_json_get_string(s, strlen(s), "fault_message", out, sizeof out), 0);
        cr_assert_str_eq(out, "0123");
}

Test(vm_json, reader_rejects_malformed_and_missing)
{
        char out[16];
        const char *cases[] = { "", "[]", "{", "{\"a\"", "{\"a\":}", "{\"a\":\"x", "{\"a\":1,",
                                "{\"a\":\"\\q\"}", "{\"a\":\"\\ud800\"}", "not json", NULL };
        for (int i = 0; cases[i]; i++)
                cr_assert_eq(vm_json_get_string(cases[i], strlen(cases[i]), "zz", out, sizeof out),
                             -EINVAL, "case %d: %s", i, cases[i]);
        const char *s = "{\"b\":\"x\",\"a\":5}";
        cr_assert_eq(vm_json_get_string(s, strlen(s), "c", out, sizeof out), -ENOENT);
        cr_assert_eq(vm_json_get_string(s, strlen(s), "a", out, sizeof out), -ENOENT, "not a string");
        cr_assert_eq(vm_json_get_string("{}", 2, "a", out, sizeof out), -ENOENT);
        /* Length bounds the scan: the member past |len| is not seen. */
        const char *t = "{\"z\":1,\"a\":\"x\"}";
        cr_assert_eq(vm_json_get_string(t, 7, "a", out, sizeof out), -EINVAL);
}

Test(vm_json, reader_survives_deep_nesting)
{
        char s[4096];
        size_t n = 0;
        s[n++] = '{';
        memcpy(s + n, "\"a\":", 4);
        n += 4;
        for (int i = 0; i < 1000; i++)
                s[n++] = '[';
        for (int i = 0; i < 1000; i++)
                s[n++] = ']';
        s[n++] = '}';
        char out[8];
        cr_assert_eq(vm_json_get_string(s, n, "b", out, sizeof out), -EINVAL);
}
