/*
 * Tests for rpc/codec_json_{enc,dec}.c, rpc/json_lex.c and rpc/json_text.c:
 * golden encodings of every hostagent.v1 message, decode of hand-written
 * JSON in all accepted spellings, every rejection with its message, and
 * encode -> decode -> encode stability (also checked on the binary form).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "rpc/codec_json.h"
#include "rpc/descset.h"
#include "rpc/json_text.h"

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "hostagent/v1/hostagent.pb-c.h"

static rpc_descset *ds;

static void setup(void)
{
        struct ha_err err = { { 0 } };
        cr_assert_eq(rpc_descset_new_embedded(&ds, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
        rpc_descset_free(ds);
        ds = NULL;
}

TestSuite(codec_json, .init = setup, .fini = teardown);
TestSuite(json_text);

/* ---- helpers ----------------------------------------------------------- */

/* JSON of |m| as a malloc'd C string. */
static char *enc(const void *m)
{
        struct ha_buf b;
        ha_buf_init(&b, 1 << 20);
        int r = rpc_json_encode(m, ds, &b);
        cr_assert_eq(r, 0, "encode: %d", r);
        cr_assert_eq(ha_buf_append(&b, "", 1), 0);
        size_t n;
        return (char *)ha_buf_steal(&b, &n);
}

static ProtobufCMessage *dec_opts(const ProtobufCMessageDescriptor *d, const char *json,
                                  const struct rpc_json_opts *o)
{
        ProtobufCMessage *m = NULL;
        struct ha_err err = { { 0 } };
        int r = rpc_json_decode(d, ds, (const uint8_t *)json, strlen(json), o, &m, &err);
        cr_assert_eq(r, 0, "decode %s: %d %s", json, r, err.msg);
        return m;
}

static ProtobufCMessage *dec(const ProtobufCMessageDescriptor *d, const char *json)
{
        return dec_opts(d, json, NULL);
}

static void dec_fails(const ProtobufCMessageDescriptor *d, const char *json, const char *want)
{
        ProtobufCMessage *m = (ProtobufCMessage *)0x1;
        struct ha_err err = { { 0 } };
        int r = rpc_json_decode(d, ds, (const uint8_t *)json, strlen(json), NULL, &m, &err);
        cr_assert_eq(r, -EINVAL, "decode %s: %d (want -EINVAL)", json, r);
        cr_assert_eq(m, (ProtobufCMessage *)0x1, "ret touched on failure");
        cr_assert(strstr(err.msg, want), "decode %s:\n got  %s\n want %s", json, err.msg, want);
}

static void assert_same_binary(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
        size_t na = protobuf_c_message_get_packed_size(a);
        size_t nb = protobuf_c_message_get_packed_size(b);
        cr_assert_eq(na, nb, "packed sizes differ: %zu vs %zu", na, nb);
        uint8_t *pa = malloc(na + 1), *pb = malloc(nb + 1);
        protobuf_c_message_pack(a, pa);
        protobuf_c_message_pack(b, pb);
        cr_assert(memcmp(pa, pb, na) == 0, "binary forms differ");
        free(pa);
        free(pb);
}

/* encode == want, decode(want) packs like |m|, and encodes to want again. */
static void round_trip(const ProtobufCMessage *m, const char *want)
{
        char *got = enc(m);
        cr_assert_str_eq(got, want);
        ProtobufCMessage *back = dec(m->descriptor, got);
        assert_same_binary(m, back);
        char *again = enc(back);
        cr_assert_str_eq(again, want);
        free(again);
        free(got);
        protobuf_c_message_free_unpacked(back, NULL);
}

/* ---- fixtures ---------------------------------------------------------- */

static Hostagent__V1__CreateSandboxRequest__MetadataEntry cmeta[2] = {
        HOSTAGENT__V1__CREATE_SANDBOX_REQUEST__METADATA_ENTRY__INIT,
        HOSTAGENT__V1__CREATE_SANDBOX_REQUEST__METADATA_ENTRY__INIT,
};
static Hostagent__V1__CreateSandboxRequest__EnvEntry cenv = HOSTAGENT__V1__CREATE_SANDBOX_REQUEST__ENV_ENTRY__INIT;

Test(codec_json, create_sandbox_request_with_maps_and_nested_enum)
{
        Hostagent__V1__CreateSandboxRequest r = HOSTAGENT__V1__CREATE_SANDBOX_REQUEST__INIT;
        Hostagent__V1__EgressPolicy eg = HOSTAGENT__V1__EGRESS_POLICY__INIT;
        Hostagent__V1__CreateSandboxRequest__MetadataEntry *mp[2] = { &cmeta[0], &cmeta[1] };
        Hostagent__V1__CreateSandboxRequest__EnvEntry *ep[1] = { &cenv };
        char *allow[] = { "10.0.0.0/8", "192.168.1.1/32" };

        cmeta[0].key = "team";
        cmeta[0].value = "ml \"infra\"";
        cmeta[1].key = "é\n";
        cmeta[1].value = "";
        cenv.key = "PATH";
        cenv.value = "/usr/bin:/bin";
        eg.mode = HOSTAGENT__V1__EGRESS_POLICY__MODE__MODE_ALLOW_LIST;
        eg.n_allow_cidrs = 2;
        eg.allow_cidrs = allow;
        r.sandbox_id = "sbx-1";
        r.image = "base";
        r.vcpus = 2;
        r.memory_mib = 4294967295u;
        r.timeout_seconds = 300;
        r.n_metadata = 2;
        r.metadata = mp;
        r.n_env = 1;
        r.env = ep;
        r.egress = &eg;
        round_trip(&r.base,
                   "{\"sandboxId\":\"sbx-1\",\"image\":\"base\",\"vcpus\":2,\"memoryMib\":4294967295,"
                   "\"timeoutSeconds\":300,\"metadata\":{\"team\":\"ml \\\"infra\\\"\",\"é\\n\":\"\"},"
                   "\"env\":{\"PATH\":\"/usr/bin:/bin\"},"
                   "\"egress\":{\"mode\":\"MODE_ALLOW_LIST\",\"allowCidrs\":[\"10.0.0.0/8\",\"192.168.1.1/32\"]}}");
}

static void fill_sandbox(Hostagent__V1__Sandbox *s, Google__Protobuf__Timestamp *c,
                         Google__Protobuf__Timestamp *x)
{
        static Hostagent__V1__Sandbox__MetadataEntry me = HOSTAGENT__V1__SANDBOX__METADATA_ENTRY__INIT;
        static Hostagent__V1__Sandbox__MetadataEntry *mp[1] = { &me };
        static Hostagent__V1__Sandbox__EnvEntry ee = HOSTAGENT__V1__SANDBOX__ENV_ENTRY__INIT;
        static Hostagent__V1__Sandbox__EnvEntry *ep[1] = { &ee };
        static Hostagent__V1__EgressPolicy eg = HOSTAGENT__V1__EGRESS_POLICY__INIT;
        static char *deny[] = { "169.254.169.254/32" };

        me.key = "owner";
        me.value = "alice";
        ee.key = "LANG";
        ee.value = "C.UTF-8";
        eg.mode = HOSTAGENT__V1__EGRESS_POLICY__MODE__MODE_DENY_LIST;
        eg.n_deny_cidrs = 1;
        eg.deny_cidrs = deny;
        c->seconds = 1795845600;        /* 2026-11-28T06:00:00Z */
        c->nanos = 0;
        x->seconds = 1795849200;
        x->nanos = 123000000;
        s->sandbox_id = "sbx-42";
        s->state = HOSTAGENT__V1__SANDBOX_STATE__SANDBOX_STATE_RUNNING;
        s->image = "python-3.12";
        s->vcpus = 1;
        s->memory_mib = 512;
        s->n_metadata = 1;
        s->metadata = mp;
        s->created_at = c;
        s->expires_at = x;
        s->ip = "10.11.0.2";
        s->slot = 7;
        s->failure = "";
        s->n_env = 1;
        s->env = ep;
        s->egress = &eg;
        s->snapshotted = 1;
}

static const char sandbox_json[] =
        "{\"sandboxId\":\"sbx-42\",\"state\":\"SANDBOX_STATE_RUNNING\",\"image\":\"python-3.12\","
        "\"vcpus\":1,\"memoryMib\":512,\"metadata\":{\"owner\":\"alice\"},"
        "\"createdAt\":\"2026-11-28T06:00:00Z\",\"expiresAt\":\"2026-11-28T07:00:00.123Z\","
        "\"ip\":\"10.11.0.2\",\"slot\":7,\"env\":{\"LANG\":\"C.UTF-8\"},"
        "\"egress\":{\"mode\":\"MODE_DENY_LIST\",\"denyCidrs\":[\"169.254.169.254/32\"]},"
        "\"snapshotted\":true}";

Test(codec_json, sandbox_with_timestamps_enum_and_maps)
{
        Hostagent__V1__Sandbox s = HOSTAGENT__V1__SANDBOX__INIT;
        Google__Protobuf__Timestamp c = GOOGLE__PROTOBUF__TIMESTAMP__INIT, x = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        fill_sandbox(&s, &c, &x);
        round_trip(&s.base, sandbox_json);
}

Test(codec_json, defaults_are_omitted_and_empty_message_is_braces)
{
        Hostagent__V1__Sandbox s = HOSTAGENT__V1__SANDBOX__INIT;
        round_trip(&s.base, "{}");
        Hostagent__V1__DestroySandboxResponse d = HOSTAGENT__V1__DESTROY_SANDBOX_RESPONSE__INIT;
        round_trip(&d.base, "{}");
        Hostagent__V1__GetHostInfoRequest g = HOSTAGENT__V1__GET_HOST_INFO_REQUEST__INIT;
        round_trip(&g.base, "{}");
        /* A set message field is emitted even when all its fields are default. */
        Hostagent__V1__EgressPolicy eg = HOSTAGENT__V1__EGRESS_POLICY__INIT;
        s.egress = &eg;
        round_trip(&s.base, "{\"egress\":{}}");
}

Test(codec_json, list_sandboxes_request_repeated_enums_with_unknown_value)
{
        Hostagent__V1__ListSandboxesRequest r = HOSTAGENT__V1__LIST_SANDBOXES_REQUEST__INIT;
        Hostagent__V1__SandboxState st[] = {
                HOSTAGENT__V1__SANDBOX_STATE__SANDBOX_STATE_RUNNING,
                HOSTAGENT__V1__SANDBOX_STATE__SANDBOX_STATE_PAUSED,
                (Hostagent__V1__SandboxState)99,
        };
        Hostagent__V1__ListSandboxesRequest__MetadataEntry me = HOSTAGENT__V1__LIST_SANDBOXES_REQUEST__METADATA_ENTRY__INIT;
        Hostagent__V1__ListSandboxesRequest__MetadataEntry *mp[] = { &me };
        me.key = "k";
        me.value = "v";
        r.n_states = 3;
        r.states = st;
        r.n_metadata = 1;
        r.metadata = mp;
        round_trip(&r.base, "{\"states\":[\"SANDBOX_STATE_RUNNING\",\"SANDBOX_STATE_PAUSED\",99],"
                            "\"metadata\":{\"k\":\"v\"}}");
}

Test(codec_json, list_sandboxes_response_repeated_messages)
{
        Hostagent__V1__ListSandboxesResponse r = HOSTAGENT__V1__LIST_SANDBOXES_RESPONSE__INIT;
        Hostagent__V1__Sandbox a = HOSTAGENT__V1__SANDBOX__INIT, b = HOSTAGENT__V1__SANDBOX__INIT;
        Hostagent__V1__Sandbox *v[] = { &a, &b };
        a.sandbox_id = "a";
        b.sandbox_id = "b";
        b.state = HOSTAGENT__V1__SANDBOX_STATE__SANDBOX_STATE_FAILED;
        b.failure = "boot: exit 1";
        r.n_sandboxes = 2;
        r.sandboxes = v;
        round_trip(&r.base, "{\"sandboxes\":[{\"sandboxId\":\"a\"},{\"sandboxId\":\"b\","
                            "\"state\":\"SANDBOX_STATE_FAILED\",\"failure\":\"boot: exit 1\"}]}");
}

Test(codec_json, simple_requests)
{
        Hostagent__V1__GetSandboxRequest g = HOSTAGENT__V1__GET_SANDBOX_REQUEST__INIT;
        g.sandbox_id = "x";
        round_trip(&g.base, "{\"sandboxId\":\"x\"}");
        Hostagent__V1__DestroySandboxRequest d = HOSTAGENT__V1__DESTROY_SANDBOX_REQUEST__INIT;
        d.sandbox_id = "y";
        round_trip(&d.base, "{\"sandboxId\":\"y\"}");
        Hostagent__V1__PauseSandboxRequest p = HOSTAGENT__V1__PAUSE_SANDBOX_REQUEST__INIT;
        p.sandbox_id = "z";
        p.snapshot = 1;
        round_trip(&p.base, "{\"sandboxId\":\"z\",\"snapshot\":true}");
        Hostagent__V1__ResumeSandboxRequest rs = HOSTAGENT__V1__RESUME_SANDBOX_REQUEST__INIT;
        rs.timeout_seconds = 60;
        round_trip(&rs.base, "{\"timeoutSeconds\":60}");
        Hostagent__V1__SetSandboxTimeoutRequest t = HOSTAGENT__V1__SET_SANDBOX_TIMEOUT_REQUEST__INIT;
        t.sandbox_id = "w";
        t.timeout_seconds = 1;
        round_trip(&t.base, "{\"sandboxId\":\"w\",\"timeoutSeconds\":1}");
        Hostagent__V1__WatchEventsRequest w = HOSTAGENT__V1__WATCH_EVENTS_REQUEST__INIT;
        w.sandbox_id = "v";
        round_trip(&w.base, "{\"sandboxId\":\"v\"}");
}

Test(codec_json, exec_request_repeated_strings_bytes_map)
{
        Hostagent__V1__ExecRequest r = HOSTAGENT__V1__EXEC_REQUEST__INIT;
        Hostagent__V1__ExecRequest__EnvEntry ee = HOSTAGENT__V1__EXEC_REQUEST__ENV_ENTRY__INIT;
        Hostagent__V1__ExecRequest__EnvEntry *ep[] = { &ee };
        char *cmd[] = { "sh", "-c", "echo $HOME\t\x01", "" };
        uint8_t in[] = { 0xfb, 0xff, 0x00, 'h', 'i' };
        ee.key = "HOME";
        ee.value = "/root";
        r.sandbox_id = "s";
        r.n_command = 4;
        r.command = cmd;
        r.n_env = 1;
        r.env = ep;
        r.cwd = "/tmp";
        r.user = "1000";
        r.timeout_seconds = 5;
        r.stdin.len = sizeof in;
        r.stdin.data = in;
        r.max_output_bytes = 1024;
        round_trip(&r.base, "{\"sandboxId\":\"s\",\"command\":[\"sh\",\"-c\",\"echo $HOME\\t\\u0001\",\"\"],"
                            "\"env\":{\"HOME\":\"/root\"},\"cwd\":\"/tmp\",\"user\":\"1000\","
                            "\"timeoutSeconds\":5,\"stdin\":\"+/8AaGk=\",\"maxOutputBytes\":1024}");
}

Test(codec_json, exec_response_with_duration_and_negative_ints)
{
        Hostagent__V1__ExecResponse r = HOSTAGENT__V1__EXEC_RESPONSE__INIT;
        Google__Protobuf__Duration du = GOOGLE__PROTOBUF__DURATION__INIT;
        uint8_t out[] = "hello\n";
        du.seconds = 1;
        du.nanos = 500000000;
        r.exit_code = -1;
        r.signal = 9;
        r.stdout.len = 6;
        r.stdout.data = out;
        r.stderr.len = 1;
        r.stderr.data = (uint8_t *)"\xff";
        r.truncated = 1;
        r.duration = &du;
        r.timed_out = 1;
        round_trip(&r.base, "{\"exitCode\":-1,\"signal\":9,\"stdout\":\"aGVsbG8K\",\"stderr\":\"/w==\","
                            "\"truncated\":true,\"duration\":\"1.500s\",\"timedOut\":true}");
}

Test(codec_json, exec_event_oneofs)
{
        Hostagent__V1__ExecEvent e = HOSTAGENT__V1__EXEC_EVENT__INIT;
        Hostagent__V1__ExecEvent__Started st = HOSTAGENT__V1__EXEC_EVENT__STARTED__INIT;
        Hostagent__V1__ExecEvent__Data da = HOSTAGENT__V1__EXEC_EVENT__DATA__INIT;
        Hostagent__V1__ExecEvent__Exited ex = HOSTAGENT__V1__EXEC_EVENT__EXITED__INIT;
        Google__Protobuf__Duration du = GOOGLE__PROTOBUF__DURATION__INIT;

        round_trip(&e.base, "{}");
        st.pid = 4242;
        e.event_case = HOSTAGENT__V1__EXEC_EVENT__EVENT_STARTED;
        e.started = &st;
        round_trip(&e.base, "{\"started\":{\"pid\":4242}}");
        da.data.len = 3;
        da.data.data = (uint8_t *)"\x00\x01\x02";
        e.event_case = HOSTAGENT__V1__EXEC_EVENT__EVENT_STDERR;
        e.stderr = &da;
        round_trip(&e.base, "{\"stderr\":{\"data\":\"AAEC\"}}");
        /* An empty Data is still set: the oneof member is emitted. */
        da.data.len = 0;
        e.event_case = HOSTAGENT__V1__EXEC_EVENT__EVENT_STDOUT;
        e.stdout = &da;
        round_trip(&e.base, "{\"stdout\":{}}");
        du.seconds = -3;
        du.nanos = -250000;
        ex.exit_code = 137;
        ex.signal = 9;
        ex.duration = &du;
        ex.timed_out = 1;
        e.event_case = HOSTAGENT__V1__EXEC_EVENT__EVENT_EXITED;
        e.exited = &ex;
        round_trip(&e.base, "{\"exited\":{\"exitCode\":137,\"signal\":9,\"duration\":\"-3.000250s\","
                            "\"timedOut\":true}}");
}

Test(codec_json, exec_input_oneofs_including_bytes_and_empty_message)
{
        Hostagent__V1__ExecInput in = HOSTAGENT__V1__EXEC_INPUT__INIT;
        Hostagent__V1__ExecInput__CloseStdin cs = HOSTAGENT__V1__EXEC_INPUT__CLOSE_STDIN__INIT;
        Hostagent__V1__ExecInput__Signal sg = HOSTAGENT__V1__EXEC_INPUT__SIGNAL__INIT;
        Hostagent__V1__ExecRequest rq = HOSTAGENT__V1__EXEC_REQUEST__INIT;
        char *cmd[] = { "true" };

        in.input_case = HOSTAGENT__V1__EXEC_INPUT__INPUT_STDIN;
        in.stdin.len = 2;
        in.stdin.data = (uint8_t *)"ok";
        round_trip(&in.base, "{\"stdin\":\"b2s=\"}");
        /* A oneof bytes member is emitted even when empty. */
        in.stdin.len = 0;
        in.stdin.data = NULL;
        round_trip(&in.base, "{\"stdin\":\"\"}");
        in.input_case = HOSTAGENT__V1__EXEC_INPUT__INPUT_CLOSE_STDIN;
        in.close_stdin = &cs;
        round_trip(&in.base, "{\"closeStdin\":{}}");
        sg.number = 15;
        in.input_case = HOSTAGENT__V1__EXEC_INPUT__INPUT_SIGNAL;
        in.signal = &sg;
        round_trip(&in.base, "{\"signal\":{\"number\":15}}");
        rq.sandbox_id = "s";
        rq.n_command = 1;
        rq.command = cmd;
        in.input_case = HOSTAGENT__V1__EXEC_INPUT__INPUT_REQUEST;
        in.request = &rq;
        round_trip(&in.base, "{\"request\":{\"sandboxId\":\"s\",\"command\":[\"true\"]}}");
}

Test(codec_json, sandbox_event)
{
        Hostagent__V1__SandboxEvent ev = HOSTAGENT__V1__SANDBOX_EVENT__INIT;
        Hostagent__V1__Sandbox s = HOSTAGENT__V1__SANDBOX__INIT;
        Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        s.sandbox_id = "e";
        t.seconds = 0;
        t.nanos = 1;
        ev.sandbox = &s;
        ev.kind = HOSTAGENT__V1__SANDBOX_EVENT__KIND__KIND_EXPIRED;
        ev.time = &t;
        ev.reason = "ttl";
        round_trip(&ev.base, "{\"sandbox\":{\"sandboxId\":\"e\"},\"kind\":\"KIND_EXPIRED\","
                             "\"time\":\"1970-01-01T00:00:00.000000001Z\",\"reason\":\"ttl\"}");
}

Test(codec_json, host_info_uint64_as_string)
{
        Hostagent__V1__HostInfo h = HOSTAGENT__V1__HOST_INFO__INIT;
        Hostagent__V1__Capacity cap = HOSTAGENT__V1__CAPACITY__INIT, use = HOSTAGENT__V1__CAPACITY__INIT;
        Google__Protobuf__Duration up = GOOGLE__PROTOBUF__DURATION__INIT;
        up.seconds = 86400;
        cap.sandboxes = 64;
        cap.slots = 256;
        cap.vcpus = 32;
        cap.memory_mib = 18446744073709551615ull;
        use.memory_mib = 1;
        h.version = "0.1.0";
        h.build = "abc RelWithDebInfo";
        h.runtime = "simulator";
        h.uptime = &up;
        h.hostname = "node-1";
        h.capacity = &cap;
        h.usage = &use;
        h.snapshot_kind = "full";
        round_trip(&h.base, "{\"version\":\"0.1.0\",\"build\":\"abc RelWithDebInfo\",\"runtime\":\"simulator\","
                            "\"uptime\":\"86400s\",\"hostname\":\"node-1\",\"capacity\":{\"sandboxes\":64,"
                            "\"slots\":256,\"vcpus\":32,\"memoryMib\":\"18446744073709551615\"},"
                            "\"usage\":{\"memoryMib\":\"1\"},\"snapshotKind\":\"full\"}");
}

Test(codec_json, health_messages_and_map_of_messages)
{
        Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
        round_trip(&r.base, "{\"status\":\"NOT_SERVING\"}");
        Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
        q.service = "hostagent.v1.HostAgentService";
        round_trip(&q.base, "{\"service\":\"hostagent.v1.HostAgentService\"}");

        Grpc__Health__V1__HealthListResponse l = GRPC__HEALTH__V1__HEALTH_LIST_RESPONSE__INIT;
        Grpc__Health__V1__HealthListResponse__StatusesEntry e1 = GRPC__HEALTH__V1__HEALTH_LIST_RESPONSE__STATUSES_ENTRY__INIT;
        Grpc__Health__V1__HealthListResponse__StatusesEntry *ep[] = { &e1 };
        Grpc__Health__V1__HealthCheckResponse v = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        v.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        e1.key = "";
        e1.value = &v;
        l.n_statuses = 1;
        l.statuses = ep;
        round_trip(&l.base, "{\"statuses\":{\"\":{\"status\":\"SERVING\"}}}");
}

Test(codec_json, reflection_messages)
{
        Grpc__Reflection__V1__ServerReflectionRequest q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
        q.host = "h";
        q.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
        q.file_containing_symbol = "hostagent.v1.Sandbox";
        round_trip(&q.base, "{\"host\":\"h\",\"fileContainingSymbol\":\"hostagent.v1.Sandbox\"}");
        /* An empty oneof string is still emitted: list_services "" is meaningful. */
        q.host = "";
        q.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
        q.list_services = "";
        round_trip(&q.base, "{\"listServices\":\"\"}");

        Grpc__Reflection__V1__ServerReflectionResponse r = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
        Grpc__Reflection__V1__FileDescriptorResponse f = GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
        ProtobufCBinaryData files[2] = { { 3, (uint8_t *)"abc" }, { 0, NULL } };
        f.n_file_descriptor_proto = 2;
        f.file_descriptor_proto = files;
        r.original_request = &q;
        r.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        r.file_descriptor_response = &f;
        round_trip(&r.base, "{\"originalRequest\":{\"listServices\":\"\"},"
                            "\"fileDescriptorResponse\":{\"fileDescriptorProto\":[\"YWJj\",\"\"]}}");
}

Test(codec_json, status_with_any_details)
{
        Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
        Google__Protobuf__Any a1 = GOOGLE__PROTOBUF__ANY__INIT, a2 = GOOGLE__PROTOBUF__ANY__INIT,
                              a3 = GOOGLE__PROTOBUF__ANY__INIT;
        Google__Protobuf__Any *det[] = { &a1, &a2, &a3 };
        Hostagent__V1__GetSandboxRequest g = HOSTAGENT__V1__GET_SANDBOX_REQUEST__INIT;
        Google__Protobuf__Duration du = GOOGLE__PROTOBUF__DURATION__INIT;
        uint8_t b1[64], b2[64];

        g.sandbox_id = "nope";
        a1.type_url = "type.googleapis.com/hostagent.v1.GetSandboxRequest";
        a1.value.len = protobuf_c_message_pack(&g.base, b1);
        a1.value.data = b1;
        du.seconds = 2;
        a2.type_url = "type.googleapis.com/google.protobuf.Duration";
        a2.value.len = protobuf_c_message_pack(&du.base, b2);
        a2.value.data = b2;
        st.code = 5;
        st.message = "sandbox \"nope\" not found";
        st.n_details = 3;
        st.details = det;
        round_trip(&st.base, "{\"code\":5,\"message\":\"sandbox \\\"nope\\\" not found\",\"details\":["
                             "{\"@type\":\"type.googleapis.com/hostagent.v1.GetSandboxRequest\",\"sandboxId\":\"nope\"},"
                             "{\"@type\":\"type.googleapis.com/google.protobuf.Duration\",\"value\":\"2s\"},"
                             "{}]}");

        /* "@type" may come last on input. */
        Google__Rpc__Status *back = (Google__Rpc__Status *)dec(&google__rpc__status__descriptor,
                "{\"details\":[{\"sandbox_id\":\"x\",\"@type\":\"type.googleapis.com/hostagent.v1.GetSandboxRequest\"}]}");
        cr_assert_eq(back->n_details, 1);
        Hostagent__V1__GetSandboxRequest *inner = hostagent__v1__get_sandbox_request__unpack(
                NULL, back->details[0]->value.len, back->details[0]->value.data);
        cr_assert_str_eq(inner->sandbox_id, "x");
        hostagent__v1__get_sandbox_request__free_unpacked(inner, NULL);
        protobuf_c_message_free_unpacked(&back->base, NULL);

        dec_fails(&google__rpc__status__descriptor, "{\"details\":[{\"a\":1}]}",
                  "field \"details[0]\": google.protobuf.Any without \"@type\"");
        dec_fails(&google__rpc__status__descriptor,
                  "{\"details\":[{\"@type\":\"type.googleapis.com/x.Nope\"}]}",
                  "unknown type \"type.googleapis.com/x.Nope\" in google.protobuf.Any");
        dec_fails(&google__rpc__status__descriptor,
                  "{\"details\":[{\"@type\":\"type.googleapis.com/hostagent.v1.GetSandboxRequest\",\"zzz\":1}]}",
                  "unknown field \"zzz\" in hostagent.v1.GetSandboxRequest");

        dec_fails(&google__rpc__status__descriptor,
                  "{\"details\":[{\"@type\":\"type.googleapis.com/hostagent.v1.GetSandboxRequest\",\"@type\":\"x/y\"}]}",
                  "\"@type\" appears twice in google.protobuf.Any");
        dec_fails(&google__rpc__status__descriptor,
                  "{\"details\":[{\"sandboxId\":\"a\",\"@type\":\"type.googleapis.com/hostagent.v1.GetSandboxRequest\",\"@type\":\"x/y\"}]}",
                  "\"@type\" appears twice in google.protobuf.Any");
        dec_fails(&google__rpc__status__descriptor,
                  "{\"details\":[{\"@type\":\"type.googleapis.com/google.protobuf.Duration\",\"value\":\"1s\",\"@type\":\"x/y\"}]}",
                  "unexpected key \"@type\" in google.protobuf.Any of google.protobuf.Duration");
        dec_fails(&google__rpc__status__descriptor,
                  "{\"details\":[{\"@type\":\"type.googleapis.com/google.protobuf.Duration\",\"value\":\"1\"}]}",
                  "field \"details[0].value\": invalid Duration \"1\"");

        /* An Any naming a type outside the set cannot be encoded. */
        a1.type_url = "type.googleapis.com/x.Nope";
        struct ha_buf b;
        ha_buf_init(&b, 4096);
        ha_buf_append(&b, "keep", 4);
        cr_assert_eq(rpc_json_encode(&st.base, ds, &b), -EINVAL);
        cr_assert_eq(b.len, 4, "output rolled back on failure");
        ha_buf_done(&b);
}

/* ---- hand-written input ------------------------------------------------ */

Test(codec_json, accepts_both_field_name_spellings_and_whitespace)
{
        Hostagent__V1__CreateSandboxRequest *r = (Hostagent__V1__CreateSandboxRequest *)dec(
                &hostagent__v1__create_sandbox_request__descriptor,
                " {\n\t\"sandbox_id\" : \"a\" , \"memoryMib\":256, \"timeout_seconds\":\"30\",\r\n"
                " \"egress\": {\"allow_cidrs\": [\"1.2.3.4/32\"], \"mode\": 3} } \n");
        cr_assert_str_eq(r->sandbox_id, "a");
        cr_assert_eq(r->memory_mib, 256);
        cr_assert_eq(r->timeout_seconds, 30);
        cr_assert_eq(r->egress->mode, HOSTAGENT__V1__EGRESS_POLICY__MODE__MODE_ALLOW_LIST);
        cr_assert_eq(r->egress->n_allow_cidrs, 1);
        cr_assert_str_eq(r->egress->allow_cidrs[0], "1.2.3.4/32");
        protobuf_c_message_free_unpacked(&r->base, NULL);
}

Test(codec_json, accepts_numbers_in_every_form)
{
        Hostagent__V1__HostInfo *h = (Hostagent__V1__HostInfo *)dec(&hostagent__v1__host_info__descriptor,
                "{\"capacity\":{\"sandboxes\":1e2,\"slots\":\"2.0\",\"vcpus\":\"3E0\","
                "\"memory_mib\":18446744073709551615},\"usage\":{\"memoryMib\":\"1.8446744073709551615e19\"}}");
        cr_assert_eq(h->capacity->sandboxes, 100);
        cr_assert_eq(h->capacity->slots, 2);
        cr_assert_eq(h->capacity->vcpus, 3);
        cr_assert_eq(h->capacity->memory_mib, UINT64_MAX);
        cr_assert_eq(h->usage->memory_mib, UINT64_MAX);
        protobuf_c_message_free_unpacked(&h->base, NULL);

        Hostagent__V1__ExecResponse *e = (Hostagent__V1__ExecResponse *)dec(
                &hostagent__v1__exec_response__descriptor,
                "{\"exitCode\":-2147483648,\"signal\":\"-0\",\"duration\":\"-315576000000.999999999s\"}");
        cr_assert_eq(e->exit_code, INT32_MIN);
        cr_assert_eq(e->signal, 0);
        cr_assert_eq(e->duration->seconds, -315576000000LL);
        cr_assert_eq(e->duration->nanos, -999999999);
        protobuf_c_message_free_unpacked(&e->base, NULL);

        Google__Protobuf__Duration *d = (Google__Protobuf__Duration *)dec(
                &google__protobuf__duration__descriptor, "\"-0.000001s\"");
        cr_assert_eq(d->seconds, 0);
        cr_assert_eq(d->nanos, -1000);
        protobuf_c_message_free_unpacked(&d->base, NULL);
}

Test(codec_json, int64_edges_without_double)
{
        Google__Protobuf__Duration *d;
        /* Duration's int64 seconds through Any-free path: use Timestamp's
         * range instead; int64 parsing itself is tested on json_text. */
        d = (Google__Protobuf__Duration *)dec(&google__protobuf__duration__descriptor, "\"315576000000s\"");
        cr_assert_eq(d->seconds, 315576000000LL);
        protobuf_c_message_free_unpacked(&d->base, NULL);
        dec_fails(&google__protobuf__duration__descriptor, "\"315576000001s\"", "invalid Duration");
}

Test(codec_json, accepts_enum_numbers_names_and_url_safe_base64)
{
        Hostagent__V1__ListSandboxesRequest *l = (Hostagent__V1__ListSandboxesRequest *)dec(
                &hostagent__v1__list_sandboxes_request__descriptor,
                "{\"states\":[2,\"SANDBOX_STATE_PAUSED\",\"5\",-7]}");
        cr_assert_eq(l->n_states, 4);
        cr_assert_eq(l->states[0], 2);
        cr_assert_eq(l->states[1], 3);
        cr_assert_eq(l->states[2], 5);
        cr_assert_eq(l->states[3], -7);
        protobuf_c_message_free_unpacked(&l->base, NULL);

        static const char *const forms[] = { "\"-_8AaGk\"", "\"-_8AaGk=\"", "\"+/8AaGk\"", "\"+/8AaGk=\"" };
        for (size_t i = 0; i < 4; i++) {
                char json[64];
                snprintf(json, sizeof json, "{\"stdin\":%s}", forms[i]);
                Hostagent__V1__ExecRequest *r = (Hostagent__V1__ExecRequest *)dec(
                        &hostagent__v1__exec_request__descriptor, json);
                cr_assert_eq(r->stdin.len, 5, "%s", json);
                cr_assert(memcmp(r->stdin.data, "\xfb\xff\x00hi", 5) == 0, "%s", json);
                protobuf_c_message_free_unpacked(&r->base, NULL);
        }
}

Test(codec_json, null_means_default_everywhere)
{
        Hostagent__V1__Sandbox *s = (Hostagent__V1__Sandbox *)dec(&hostagent__v1__sandbox__descriptor,
                "{\"sandboxId\":null,\"state\":null,\"metadata\":null,\"createdAt\":null,"
                "\"egress\":null,\"snapshotted\":null,\"vcpus\":null}");
        Hostagent__V1__Sandbox def = HOSTAGENT__V1__SANDBOX__INIT;
        assert_same_binary(&s->base, &def.base);
        cr_assert_null(s->created_at);
        cr_assert_str_eq(s->sandbox_id, "");
        protobuf_c_message_free_unpacked(&s->base, NULL);

        Hostagent__V1__ExecEvent *e = (Hostagent__V1__ExecEvent *)dec(&hostagent__v1__exec_event__descriptor,
                "{\"started\":null,\"stdout\":{\"data\":\"eA==\"}}");
        cr_assert_eq(e->event_case, HOSTAGENT__V1__EXEC_EVENT__EVENT_STDOUT);
        cr_assert_eq(e->stdout->data.len, 1);
        protobuf_c_message_free_unpacked(&e->base, NULL);
}

Test(codec_json, timestamps_offsets_and_fractions)
{
        static const struct {
                const char *in;
                int64_t s;
                int32_t n;
        } cases[] = {
                { "\"2026-11-28T06:00:00Z\"", 1795845600, 0 },
                { "\"2026-11-28T07:30:00+01:30\"", 1795845600, 0 },
                { "\"2026-11-27T22:00:00.5-08:00\"", 1795845600, 500000000 },
                { "\"2026-11-28t06:00:00.123456789z\"", 1795845600, 123456789 },
                { "\"0001-01-01T00:00:00Z\"", -62135596800LL, 0 },
                { "\"9999-12-31T23:59:59.999999999Z\"", 253402300799LL, 999999999 },
                { "\"2024-02-29T00:00:00Z\"", 1709164800, 0 },
                { "\"1969-12-31T23:59:59.1Z\"", -1, 100000000 },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                Google__Protobuf__Timestamp *t = (Google__Protobuf__Timestamp *)dec(
                        &google__protobuf__timestamp__descriptor, cases[i].in);
                cr_assert_eq(t->seconds, cases[i].s, "%s: %lld", cases[i].in, (long long)t->seconds);
                cr_assert_eq(t->nanos, cases[i].n, "%s", cases[i].in);
                protobuf_c_message_free_unpacked(&t->base, NULL);
        }
        static const char *const bad[] = {
                "\"2026-11-28 06:00:00Z\"", "\"2026-11-28T06:00:00\"", "\"2026-02-29T00:00:00Z\"",
                "\"2026-11-28T24:00:00Z\"", "\"2026-11-28T06:00:60Z\"", "\"0000-12-31T00:00:00Z\"",
                "\"2026-11-28T06:00:00.Z\"", "\"2026-11-28T06:00:00.1234567890Z\"",
                "\"2026-11-28T06:00:00+1:00\"", "\"0001-01-01T00:00:00+00:01\"", "\"26-11-28T06:00:00Z\"",
                "1795845600",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                char want[] = "Timestamp";
                dec_fails(&google__protobuf__timestamp__descriptor, bad[i], want);
        }
}

/* ---- rejections -------------------------------------------------------- */

Test(codec_json, rejects_unknown_fields_unless_asked)
{
        dec_fails(&hostagent__v1__create_sandbox_request__descriptor, "{\"image\":\"x\",\"foo\":1}",
                  "unknown field \"foo\" in hostagent.v1.CreateSandboxRequest");
        dec_fails(&hostagent__v1__create_sandbox_request__descriptor, "{\"egress\":{\"bar\":[1]}}",
                  "field \"egress\": unknown field \"bar\" in hostagent.v1.EgressPolicy");
        struct rpc_json_opts o = { .ignore_unknown = true };
        Hostagent__V1__CreateSandboxRequest *r = (Hostagent__V1__CreateSandboxRequest *)dec_opts(
                &hostagent__v1__create_sandbox_request__descriptor,
                "{\"foo\":{\"a\":[1,2,{\"b\":null}]},\"image\":\"x\",\"egress\":{\"mode\":\"MODE_NEW\"}}", &o);
        cr_assert_str_eq(r->image, "x");
        cr_assert_eq(r->egress->mode, 0);
        protobuf_c_message_free_unpacked(&r->base, NULL);
}

Test(codec_json, client_text_in_messages_is_sanitized_and_bounded)
{
        const ProtobufCMessageDescriptor *c = &hostagent__v1__create_sandbox_request__descriptor;
        dec_fails(c, "{\"a\\nb\\\"\":1}", "unknown field \"a?b?\" in hostagent.v1.CreateSandboxRequest");
        dec_fails(c, "{\"metadata\":{\"x\\\"\u00e9y\":1}}", "field \"metadata[\"x?\u00e9y\"]\": expected string");
        char json[256], want[128];
        snprintf(json, sizeof json, "{\"%s\":1}", "0123456789012345678901234567890123456789012345678901234567890123456789");
        snprintf(want, sizeof want, "unknown field \"%s...\" in", "0123456789012345678901234567890123456789012345678901234567890123");
        dec_fails(c, json, want);
        /* A multi-byte character is never cut in half. */
        snprintf(json, sizeof json, "{\"%s\":1}", "012345678901234567890123456789012345678901234567890123456789012\u00e9");
        dec_fails(c, json, "012345678901234567890123456789012345678901234567890123456789012...\" in");
}

Test(codec_json, rejects_wrong_types_with_the_field_path)
{
        const ProtobufCMessageDescriptor *c = &hostagent__v1__create_sandbox_request__descriptor;
        dec_fails(c, "{\"vcpus\":\"two\"}", "field \"vcpus\": \"two\" is not a valid uint32");
        dec_fails(c, "{\"vcpus\":true}", "field \"vcpus\": expected uint32, got a boolean");
        dec_fails(c, "{\"image\":5}", "field \"image\": expected string, got a number");
        dec_fails(c, "{\"metadata\":[]}", "field \"metadata\": expected an object (map), got an array");
        dec_fails(c, "{\"metadata\":{\"a\":1}}", "field \"metadata[\"a\"]\": expected string, got a number");
        dec_fails(c, "{\"metadata\":{\"a\":null}}", "null is not allowed as a map value");
        dec_fails(c, "{\"egress\":{\"allowCidrs\":\"x\"}}", "field \"egress.allow_cidrs\": expected an array");
        dec_fails(c, "{\"egress\":{\"allowCidrs\":[\"a\",null]}}", "field \"egress.allow_cidrs[1]\": null is not allowed");
        dec_fails(c, "{\"egress\":{\"mode\":\"MODE_NOPE\"}}",
                  "field \"egress.mode\": unknown value \"MODE_NOPE\" for enum hostagent.v1.EgressPolicy.Mode");
        dec_fails(c, "{\"egress\":{\"mode\":1.5}}", "field \"egress.mode\": 1.5 is not an integer");
        dec_fails(c, "{\"egress\":5}", "field \"egress\": expected an object (hostagent.v1.EgressPolicy), got a number");
        dec_fails(&hostagent__v1__pause_sandbox_request__descriptor, "{\"snapshot\":\"true\"}",
                  "field \"snapshot\": expected bool, got a string");
        dec_fails(&hostagent__v1__exec_request__descriptor, "{\"stdin\":\"a\"}", "field \"stdin\": invalid base64");
        dec_fails(&hostagent__v1__exec_request__descriptor, "{\"stdin\":\"ab=c\"}", "invalid base64");
        dec_fails(&hostagent__v1__exec_request__descriptor, "{\"stdin\":\"a b=\"}", "invalid base64");
        dec_fails(&hostagent__v1__exec_response__descriptor, "{\"duration\":\"1.5\"}",
                  "field \"duration\": invalid Duration \"1.5\"");
        dec_fails(&hostagent__v1__exec_response__descriptor, "{\"duration\":1.5}",
                  "field \"duration\": expected a Duration string, got a number");
        dec_fails(&hostagent__v1__sandbox__descriptor, "{\"createdAt\":{\"seconds\":1}}",
                  "field \"created_at\": expected a Timestamp string, got an object");
        dec_fails(c, "[]", "expected an object (hostagent.v1.CreateSandboxRequest), got an array");
}

Test(codec_json, rejects_out_of_range_numbers)
{
        const ProtobufCMessageDescriptor *c = &hostagent__v1__create_sandbox_request__descriptor;
        dec_fails(c, "{\"vcpus\":4294967296}", "field \"vcpus\": 4294967296 is out of range for uint32");
        dec_fails(c, "{\"vcpus\":-1}", "-1 is out of range for uint32");
        dec_fails(c, "{\"vcpus\":1e10}", "1e10 is out of range for uint32");
        dec_fails(c, "{\"vcpus\":1e999999999999}", "out of range for uint32");
        dec_fails(c, "{\"vcpus\":0.5}", "0.5 is not an integer");
        dec_fails(c, "{\"vcpus\":1e-1}", "1e-1 is not an integer");
        dec_fails(c, "{\"vcpus\":01}", "invalid JSON at offset 9: invalid number");
        dec_fails(c, "{\"vcpus\":\" 1\"}", "\" 1\" is not a valid uint32");
        dec_fails(&hostagent__v1__exec_response__descriptor, "{\"exitCode\":2147483648}",
                  "2147483648 is out of range for int32");
        dec_fails(&hostagent__v1__exec_response__descriptor, "{\"exitCode\":-2147483649}",
                  "out of range for int32");
        dec_fails(&hostagent__v1__host_info__descriptor, "{\"capacity\":{\"memoryMib\":\"18446744073709551616\"}}",
                  "field \"capacity.memory_mib\": 18446744073709551616 is out of range for uint64");
        dec_fails(&hostagent__v1__host_info__descriptor, "{\"capacity\":{\"memoryMib\":-1}}",
                  "out of range for uint64");
        dec_fails(&hostagent__v1__list_sandboxes_request__descriptor, "{\"states\":[2147483648]}",
                  "field \"states[0]\": 2147483648 is out of range for enum");
}

Test(codec_json, rejects_bad_strings)
{
        const ProtobufCMessageDescriptor *g = &hostagent__v1__get_sandbox_request__descriptor;
        dec_fails(g, "{\"sandboxId\":\"a\xff\"}", "field \"sandbox_id\": invalid JSON at offset 15: invalid UTF-8 in string");
        dec_fails(g, "{\"sandboxId\":\"\xc0\xaf\"}", "invalid UTF-8");      /* overlong '/' */
        dec_fails(g, "{\"sandboxId\":\"\xed\xa0\x80\"}", "invalid UTF-8");  /* UTF-8 surrogate */
        dec_fails(g, "{\"sandboxId\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8");
        dec_fails(g, "{\"sandboxId\":\"a\nb\"}", "control character in string");
        dec_fails(g, "{\"sandboxId\":\"\\x\"}", "invalid escape in string");
        dec_fails(g, "{\"sandboxId\":\"\\ud800\"}", "high surrogate not followed by a low one");
        dec_fails(g, "{\"sandboxId\":\"\\ud800\\u0041\"}", "high surrogate not followed by a low one");
        dec_fails(g, "{\"sandboxId\":\"\\udc00\"}", "lone low surrogate");
        dec_fails(g, "{\"sandboxId\":\"\\u12g4\"}", "invalid \\u escape");
        dec_fails(g, "{\"sandboxId\":\"a\\u0000b\"}", "string contains a NUL character");
        dec_fails(g, "{\"sandboxId\":\"abc", "unterminated string");

        Hostagent__V1__GetSandboxRequest *r = (Hostagent__V1__GetSandboxRequest *)dec(g,
                "{\"sandboxId\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\xf0\x9f\x98\x80\"}");
        cr_assert_str_eq(r->sandbox_id, "\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80");
        char *out = enc(r);
        cr_assert_str_eq(out, "{\"sandboxId\":\"\\\"\\\\/\\b\\f\\n\\r\\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80\"}");
        free(out);
        protobuf_c_message_free_unpacked(&r->base, NULL);
}

Test(codec_json, rejects_duplicates_and_double_oneofs)
{
        dec_fails(&hostagent__v1__get_sandbox_request__descriptor, "{\"sandboxId\":\"a\",\"sandbox_id\":\"b\"}",
                  "field \"sandbox_id\" appears twice in hostagent.v1.GetSandboxRequest");
        dec_fails(&hostagent__v1__get_sandbox_request__descriptor, "{\"sandboxId\":null,\"sandboxId\":\"b\"}",
                  "appears twice");
        dec_fails(&hostagent__v1__create_sandbox_request__descriptor, "{\"metadata\":{\"a\":\"1\",\"b\":\"\",\"a\":\"2\"}}",
                  "field \"metadata\": duplicate map key \"a\"");
        dec_fails(&hostagent__v1__exec_event__descriptor, "{\"stdout\":{},\"stderr\":{}}",
                  "fields \"stdout\" and \"stderr\" of one oneof are both set in hostagent.v1.ExecEvent");
        dec_fails(&hostagent__v1__exec_input__descriptor, "{\"stdin\":\"\",\"signal\":{\"number\":1}}",
                  "fields \"stdin\" and \"signal\" of one oneof are both set");
}

Test(codec_json, rejects_syntax_errors_trailing_data_and_empty_input)
{
        const ProtobufCMessageDescriptor *g = &hostagent__v1__get_sandbox_request__descriptor;
        dec_fails(g, "", "empty JSON input");
        dec_fails(g, "  \n", "empty JSON input");
        dec_fails(g, "{}x", "invalid JSON at offset 2: unexpected data after the message");
        dec_fails(g, "{} {}", "unexpected data after the message");
        dec_fails(g, "{\"sandboxId\" \"a\"}", "invalid JSON at offset 13: expected ':'");
        dec_fails(g, "{\"sandboxId\":\"a\",}", "expected a string");
        dec_fails(g, "{\"sandboxId\":\"a\"", "expected ',' or '}'");
        dec_fails(g, "{sandboxId:1}", "expected a string");
        struct rpc_json_opts o = { .ignore_unknown = true };
        ProtobufCMessage *m = NULL;
        struct ha_err err;
        const char *bad = "{\"x\":[1,}";
        cr_assert_eq(rpc_json_decode(g, ds, (const uint8_t *)bad, strlen(bad), &o, &m, &err), -EINVAL);
        cr_assert(strstr(err.msg, "invalid JSON at offset 8"), "%s", err.msg);
        bad = "{\"x\":tru}";
        cr_assert_eq(rpc_json_decode(g, ds, (const uint8_t *)bad, strlen(bad), &o, &m, &err), -EINVAL);
        cr_assert(strstr(err.msg, "invalid literal"), "%s", err.msg);
}

static char *nested_json(unsigned levels)
{
        /* ListSandboxesResponse.sandboxes[].egress: 3 levels per repeat is
         * not enough; unknown-field skipping with ignore_unknown nests freely. */
        char *s = malloc(levels * 6 + 16);
        size_t n = 0;
        n += (size_t)sprintf(s + n, "{\"x\":");
        for (unsigned i = 1; i < levels; i++)
                n += (size_t)sprintf(s + n, "[");
        for (unsigned i = 1; i < levels; i++)
                n += (size_t)sprintf(s + n, "]");
        sprintf(s + n, "}");
        return s;
}

Test(codec_json, rejects_nesting_deeper_than_64_and_inputs_over_the_limit)
{
        struct rpc_json_opts o = { .ignore_unknown = true };
        ProtobufCMessage *m = NULL;
        struct ha_err err;
        char *ok = nested_json(64), *deep = nested_json(65);
        cr_assert_eq(rpc_json_decode(&hostagent__v1__get_sandbox_request__descriptor, ds, (const uint8_t *)ok,
                                     strlen(ok), &o, &m, &err), 0, "%s", err.msg);
        protobuf_c_message_free_unpacked(m, NULL);
        cr_assert_eq(rpc_json_decode(&hostagent__v1__get_sandbox_request__descriptor, ds, (const uint8_t *)deep,
                                     strlen(deep), &o, &m, &err), -EINVAL);
        cr_assert(strstr(err.msg, "nesting too deep"), "%s", err.msg);
        free(ok);
        free(deep);

        /* Known fields nest too: Status.details[].details[]... through Any. */
        char big[4096];
        size_t n = 0;
        n += (size_t)sprintf(big + n, "{");
        for (int i = 0; i < 40; i++)
                n += (size_t)sprintf(big + n, "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.Status\",");
        (void)n;
        dec_fails(&google__rpc__status__descriptor, big, "nesting deeper than 64 levels");
        /* With "@type" last, the first pass over each Any hits the bound. */
        n = 0;
        n += (size_t)sprintf(big + n, "{");
        for (int i = 0; i < 40; i++)
                n += (size_t)sprintf(big + n, "\"details\":[{\"code\":1,");
        dec_fails(&google__rpc__status__descriptor, big, "nesting too deep");

        const char *j = "{\"sandboxId\":\"0123456789\"}";
        o.max_len = 10;
        o.ignore_unknown = false;
        cr_assert_eq(rpc_json_decode(&hostagent__v1__get_sandbox_request__descriptor, ds, (const uint8_t *)j,
                                     strlen(j), &o, &m, &err), -EINVAL);
        cr_assert_str_eq(err.msg, "JSON input of 26 bytes exceeds the limit of 10 bytes");
}

Test(codec_json, floats_and_doubles_via_a_hand_made_type)
{
        /* The API has no float fields; build a descriptor for one. */
        struct fmsg {
                ProtobufCMessage base;
                float f;
                double d;
                size_t n_ds;
                double *ds;
        };
        static const ProtobufCFieldDescriptor fields[] = {
                { "f", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_FLOAT, 0, offsetof(struct fmsg, f), NULL, NULL, 0, 0, NULL, NULL },
                { "d", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_DOUBLE, 0, offsetof(struct fmsg, d), NULL, NULL, 0, 0, NULL, NULL },
                { "many_ds", 3, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_DOUBLE, offsetof(struct fmsg, n_ds),
                  offsetof(struct fmsg, ds), NULL, NULL, PROTOBUF_C_FIELD_FLAG_PACKED, 0, NULL, NULL },
        };
        static const unsigned by_name[] = { 1, 0, 2 };
        static const ProtobufCIntRange ranges[] = { { 1, 0 }, { 0, 3 } };
        static const ProtobufCMessageDescriptor fdesc = {
                PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "test.F", "F", "Test__F", "test",
                sizeof(struct fmsg), 3, fields, by_name, 1, ranges, NULL, NULL, NULL, NULL,
        };
        struct fmsg m = { PROTOBUF_C_MESSAGE_INIT(&fdesc), 0, 0, 0, NULL };
        double v[] = { NAN, INFINITY, -INFINITY, 0.1, -0.0, 1e300, 5e-324 };

        m.f = 0.1f;
        m.d = 1.0 / 3.0;
        m.n_ds = sizeof v / sizeof v[0];
        m.ds = v;
        char *out = enc(&m);
        cr_assert_str_eq(out, "{\"f\":0.1,\"d\":0.3333333333333333,\"manyDs\":[\"NaN\",\"Infinity\","
                              "\"-Infinity\",0.1,-0,1e+300,4.94065645841247e-324]}");
        struct fmsg *b = (struct fmsg *)dec(&fdesc, out);
        cr_assert_eq(b->f, 0.1f);
        cr_assert_eq(b->d, 1.0 / 3.0);
        cr_assert(isnan(b->ds[0]) && b->ds[1] == INFINITY && b->ds[2] == -INFINITY);
        cr_assert(b->ds[4] == 0 && signbit(b->ds[4]));
        cr_assert_eq(b->ds[6], 5e-324);
        protobuf_c_message_free_unpacked(&b->base, NULL);
        free(out);

        b = (struct fmsg *)dec(&fdesc, "{\"f\":\"1.5\",\"d\":\"-2e3\",\"many_ds\":[1,\"NaN\"]}");
        cr_assert(b->f == 1.5f && b->d == -2000.0 && b->n_ds == 2);
        protobuf_c_message_free_unpacked(&b->base, NULL);
        dec_fails(&fdesc, "{\"f\":1e39}", "field \"f\": 1e39 is out of range for float");
        dec_fails(&fdesc, "{\"d\":1e309}", "1e309 is out of range for double");
        dec_fails(&fdesc, "{\"d\":\"nan\"}", "\"nan\" is not a valid double");
        dec_fails(&fdesc, "{\"d\":NaN}", "field \"d\": invalid JSON at offset 5: unexpected character");
        dec_fails(&fdesc, "{\"d\":", "field \"d\": invalid JSON at offset 5: unexpected end of input");
}

/* proto3 `optional` (explicit presence): emitted when set, even at zero.
 * protobuf-c marks scalars with a has_ flag and strings by non-NULL. */
Test(codec_json, explicit_presence_fields)
{
        struct omsg {
                ProtobufCMessage base;
                protobuf_c_boolean has_x;
                int32_t x;
                char *s;
        };
        static const ProtobufCFieldDescriptor fields[] = {
                { "x", 1, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_INT32, offsetof(struct omsg, has_x),
                  offsetof(struct omsg, x), NULL, NULL, 0, 0, NULL, NULL },
                { "s", 2, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_STRING, 0, offsetof(struct omsg, s), NULL,
                  NULL, 0, 0, NULL, NULL },
        };
        static const unsigned by_name[] = { 1, 0 };
        static const ProtobufCIntRange ranges[] = { { 1, 0 }, { 0, 2 } };
        static const ProtobufCMessageDescriptor odesc = {
                PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "test.O", "O", "Test__O", "test",
                sizeof(struct omsg), 2, fields, by_name, 1, ranges, NULL, NULL, NULL, NULL,
        };
        struct omsg m = { PROTOBUF_C_MESSAGE_INIT(&odesc), 0, 0, NULL };
        char *out = enc(&m);
        cr_assert_str_eq(out, "{}");
        free(out);
        m.has_x = 1;
        m.s = "";
        out = enc(&m);
        cr_assert_str_eq(out, "{\"x\":0,\"s\":\"\"}");
        struct omsg *b = (struct omsg *)dec(&odesc, out);
        cr_assert(b->has_x && b->x == 0);
        cr_assert_str_eq(b->s, "");
        protobuf_c_message_free_unpacked(&b->base, NULL);
        free(out);
        b = (struct omsg *)dec(&odesc, "{\"x\":null}");
        cr_assert(!b->has_x && b->s == NULL);
        protobuf_c_message_free_unpacked(&b->base, NULL);
}

Test(codec_json, encode_rejects_out_of_range_times_and_respects_the_buffer_limit)
{
        Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        Google__Protobuf__Duration du = GOOGLE__PROTOBUF__DURATION__INIT;
        struct ha_buf b;
        ha_buf_init(&b, 64);
        t.seconds = 253402300800LL;
        cr_assert_eq(rpc_json_encode(&t.base, ds, &b), -EINVAL);
        t.seconds = 0;
        t.nanos = -1;
        cr_assert_eq(rpc_json_encode(&t.base, ds, &b), -EINVAL);
        du.seconds = 1;
        du.nanos = -1;
        cr_assert_eq(rpc_json_encode(&du.base, ds, &b), -EINVAL);
        cr_assert_eq(b.len, 0);

        Hostagent__V1__Sandbox s = HOSTAGENT__V1__SANDBOX__INIT;
        Google__Protobuf__Timestamp c = GOOGLE__PROTOBUF__TIMESTAMP__INIT, x = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        fill_sandbox(&s, &c, &x);
        cr_assert_eq(rpc_json_encode(&s.base, ds, &b), -EMSGSIZE);
        cr_assert_eq(b.len, 0);
        ha_buf_done(&b);
}

Test(codec_json, encode_replaces_invalid_utf8)
{
        Hostagent__V1__GetSandboxRequest g = HOSTAGENT__V1__GET_SANDBOX_REQUEST__INIT;
        g.sandbox_id = "a\xff" "b\xe2\x82";
        char *out = enc(&g);
        cr_assert_str_eq(out, "{\"sandboxId\":\"a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\"}");
        free(out);
}

/* Every prefix of a valid document must fail cleanly, never crash or leak
 * (meaningful under ASan). */
Test(codec_json, every_truncation_fails_cleanly)
{
        for (size_t n = 1; n < sizeof sandbox_json - 1; n++) {
                ProtobufCMessage *m = NULL;
                struct ha_err err;
                int r = rpc_json_decode(&hostagent__v1__sandbox__descriptor, ds, (const uint8_t *)sandbox_json,
                                        n, NULL, &m, &err);
                cr_assert_eq(r, -EINVAL, "prefix %zu", n);
        }
}

/* ---- json_text --------------------------------------------------------- */

Test(json_text, integers_exact)
{
        static const struct {
                const char *s;
                int r;
                bool neg;
                uint64_t mag;
        } c[] = {
                { "0", 0, false, 0 },
                { "-0", 0, false, 0 },
                { "18446744073709551615", 0, false, UINT64_MAX },
                { "18446744073709551616", -ERANGE, false, 0 },
                { "-9223372036854775808", 0, true, 9223372036854775808ull },
                { "9223372036854775807", 0, false, INT64_MAX },
                { "1.8446744073709551615e19", 0, false, UINT64_MAX },
                { "123.4500e2", 0, false, 12345 },
                { "0.00012e5", 0, false, 12 },
                { "1e19", 0, false, 10000000000000000000ull },
                { "1e20", -ERANGE, false, 0 },
                { "0e999999", 0, false, 0 },
                { "12.5", -EINVAL, false, 0 },
                { "1e-1", -EINVAL, false, 0 },
                { "1.", -EINVAL, false, 0 },
                { "", -EINVAL, false, 0 },
                { "1x", -EINVAL, false, 0 },
                { "100000000000000000000000000000", -ERANGE, false, 0 },
                { "1000000000000000000000000000000e-12", 0, false, 1000000000000000000ull },
        };
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
                bool neg = false;
                uint64_t mag = 0;
                int r = rpc_jtext_parse_integer(c[i].s, strlen(c[i].s), &neg, &mag);
                cr_assert_eq(r, c[i].r, "%s: %d", c[i].s, r);
                if (r == 0)
                        cr_assert(neg == c[i].neg && mag == c[i].mag, "%s: %d %llu", c[i].s, neg,
                                  (unsigned long long)mag);
        }
}

Test(json_text, timestamps_agree_with_gmtime)
{
        char b[RPC_JTEXT_TS_MAX];
        for (int64_t s = -62135596800LL; s < 253402300799LL; s += 86399LL * 37 + 12345) {
                time_t tt = (time_t)s;
                struct tm tm;
                gmtime_r(&tt, &tm);
                char want[64];
                snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
                cr_assert_gt(rpc_jtext_format_timestamp(s, 0, b), 0);
                cr_assert_str_eq(b, want);
                int64_t back;
                int32_t nn;
                cr_assert_eq(rpc_jtext_parse_timestamp(b, strlen(b), &back, &nn), 0, "%s", b);
                cr_assert_eq(back, s, "%s", b);
        }
        cr_assert_eq(rpc_jtext_format_timestamp(0, 120000, b), 27);
        cr_assert_str_eq(b, "1970-01-01T00:00:00.000120Z");
}

Test(json_text, durations)
{
        char b[RPC_JTEXT_DUR_MAX];
        rpc_jtext_format_duration(0, 0, b);
        cr_assert_str_eq(b, "0s");
        rpc_jtext_format_duration(0, -1000, b);
        cr_assert_str_eq(b, "-0.000001s");
        rpc_jtext_format_duration(-315576000000LL, -999999999, b);
        cr_assert_str_eq(b, "-315576000000.999999999s");
        cr_assert_eq(rpc_jtext_format_duration(315576000001LL, 0, b), -EINVAL);
        cr_assert_eq(rpc_jtext_format_duration(0, 1000000000, b), -EINVAL);
        int64_t s;
        int32_t n;
        static const char *const bad[] = { "", "s", "-s", "1", "1.s", "1.0000000001s", "+1s", "1 s", "1.5S", "0x1s", "99999999999999999999s" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                cr_assert_eq(rpc_jtext_parse_duration(bad[i], strlen(bad[i]), &s, &n), -EINVAL, "%s", bad[i]);
}

Test(json_text, base64_all_lengths)
{
        uint8_t in[64], out[64];
        char b[128];
        for (size_t i = 0; i < sizeof in; i++)
                in[i] = (uint8_t)(i * 37 + 11);
        for (size_t n = 0; n < 40; n++) {
                rpc_jtext_b64_encode(in, n, b);
                size_t bl = rpc_jtext_b64_len(n), got;
                cr_assert_eq(rpc_jtext_b64_decode(b, bl, out, &got), 0);
                cr_assert(got == n && memcmp(in, out, n) == 0, "n=%zu", n);
                size_t np = bl;
                while (np && b[np - 1] == '=')
                        np--;
                cr_assert_eq(rpc_jtext_b64_decode(b, np, out, &got), 0);
                cr_assert(got == n && memcmp(in, out, n) == 0, "unpadded n=%zu", n);
        }
        size_t got;
        cr_assert_eq(rpc_jtext_b64_decode("Zg=", 3, out, &got), -EINVAL);
        cr_assert_eq(rpc_jtext_b64_decode("Zm9v=", 5, out, &got), -EINVAL);
        cr_assert_eq(rpc_jtext_b64_decode("Z", 1, out, &got), -EINVAL);
        cr_assert_eq(rpc_jtext_b64_decode("Zm9v\n", 5, out, &got), -EINVAL);
}

/* ---- maps with non-string keys (hand-built types) ---------------------- */

/* A minimal protobuf writer, to build a FileDescriptorSet in the test. */
static void w_varint(struct ha_buf *b, uint64_t v)
{
        uint8_t c;
        do {
                c = (uint8_t)(v & 0x7f);
                v >>= 7;
                if (v)
                        c |= 0x80;
                ha_buf_append(b, &c, 1);
        } while (v);
}

static void w_len(struct ha_buf *b, uint32_t field, const void *p, size_t n)
{
        w_varint(b, (uint64_t)field << 3 | 2);
        w_varint(b, n);
        ha_buf_append(b, p, n);
}

static void w_sub(struct ha_buf *b, uint32_t field, struct ha_buf *sub)
{
        w_len(b, field, sub->data, sub->len);
        ha_buf_done(sub);
}

static void w_field(struct ha_buf *msg, const char *name, uint32_t number)
{
        struct ha_buf f;
        ha_buf_init(&f, 1024);
        w_len(&f, 1, name, strlen(name));
        w_varint(&f, 3 << 3);
        w_varint(&f, number);
        w_sub(msg, 2, &f);
}

static void w_entry(struct ha_buf *msg, const char *name)
{
        struct ha_buf e, opt;
        ha_buf_init(&e, 1024);
        ha_buf_init(&opt, 16);
        w_len(&e, 1, name, strlen(name));
        w_field(&e, "key", 1);
        w_field(&e, "value", 2);
        w_varint(&opt, 7 << 3);         /* MessageOptions.map_entry = true */
        w_varint(&opt, 1);
        w_sub(&e, 7, &opt);
        w_sub(msg, 3, &e);
}

struct ient { ProtobufCMessage base; int32_t key; char *value; };
struct bent { ProtobufCMessage base; protobuf_c_boolean key; int32_t value; };
struct uent { ProtobufCMessage base; uint64_t key; uint32_t value; };
struct mmsg {
        ProtobufCMessage base;
        size_t n_ints;
        struct ient **ints;
        size_t n_flags;
        struct bent **flags;
        size_t n_big;
        struct uent **big;
};

static const ProtobufCIntRange ranges2[] = { { 1, 0 }, { 0, 2 } };
static const ProtobufCIntRange ranges3[] = { { 1, 0 }, { 0, 3 } };
static const unsigned by_name2[] = { 0, 1 };
static const unsigned by_name3[] = { 2, 1, 0 };

#define ENTRY_DESC(var, full, st, ktype, vtype)                                                             \
        static const ProtobufCFieldDescriptor var##_f[] = {                                               \
                { "key", 1, PROTOBUF_C_LABEL_NONE, ktype, 0, offsetof(st, key), NULL, NULL, 0, 0, NULL, NULL }, \
                { "value", 2, PROTOBUF_C_LABEL_NONE, vtype, 0, offsetof(st, value), NULL, NULL, 0, 0, NULL, NULL }, \
        };                                                                                                \
        static const ProtobufCMessageDescriptor var = {                                                   \
                PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, full, "E", "E", "t", sizeof(st), 2, var##_f, by_name2, \
                1, ranges2, NULL, NULL, NULL, NULL,                                                       \
        }

ENTRY_DESC(ient_desc, "t.M.IntsEntry", struct ient, PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_STRING);
ENTRY_DESC(bent_desc, "t.M.FlagsEntry", struct bent, PROTOBUF_C_TYPE_BOOL, PROTOBUF_C_TYPE_INT32);
ENTRY_DESC(uent_desc, "t.M.BigEntry", struct uent, PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_UINT32);

static const ProtobufCFieldDescriptor mmsg_f[] = {
        { "ints", 1, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_MESSAGE, offsetof(struct mmsg, n_ints),
          offsetof(struct mmsg, ints), &ient_desc, NULL, 0, 0, NULL, NULL },
        { "flags", 2, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_MESSAGE, offsetof(struct mmsg, n_flags),
          offsetof(struct mmsg, flags), &bent_desc, NULL, 0, 0, NULL, NULL },
        { "big", 3, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_MESSAGE, offsetof(struct mmsg, n_big),
          offsetof(struct mmsg, big), &uent_desc, NULL, 0, 0, NULL, NULL },
};
static const ProtobufCMessageDescriptor mmsg_desc = {
        PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "t.M", "M", "T__M", "t", sizeof(struct mmsg), 3, mmsg_f,
        by_name3, 1, ranges3, NULL, NULL, NULL, NULL,
};

Test(codec_json, maps_with_int_bool_and_uint64_keys)
{
        struct ha_buf set, file, msg;
        ha_buf_init(&set, 4096);
        ha_buf_init(&file, 4096);
        ha_buf_init(&msg, 4096);
        w_len(&msg, 1, "M", 1);
        w_field(&msg, "ints", 1);
        w_field(&msg, "flags", 2);
        w_field(&msg, "big", 3);
        w_entry(&msg, "IntsEntry");
        w_entry(&msg, "FlagsEntry");
        w_entry(&msg, "BigEntry");
        w_len(&file, 1, "t.proto", 7);
        w_len(&file, 2, "t", 1);
        w_sub(&file, 4, &msg);
        w_sub(&set, 1, &file);

        rpc_descset *saved = ds, *mine = NULL;
        struct ha_err err = { { 0 } };
        const ProtobufCMessageDescriptor *types[] = { &mmsg_desc };
        cr_assert_eq(rpc_descset_new(set.data, set.len, types, 1, &mine, &err), 0, "%s", err.msg);
        cr_assert(rpc_descset_msg_by_c(mine, &ient_desc)->map_entry);
        ds = mine;

        const char *in = "{\"ints\":{\"-5\":\"a\",\"2147483647\":\"\",\"1e1\":\"ten\"},"
                         "\"flags\":{\"true\":1,\"false\":-1},"
                         "\"big\":{\"18446744073709551615\":7}}";
        struct mmsg *m = (struct mmsg *)dec(&mmsg_desc, in);
        cr_assert_eq(m->n_ints, 3);
        cr_assert_eq(m->ints[0]->key, -5);
        cr_assert_str_eq(m->ints[0]->value, "a");
        cr_assert_eq(m->ints[2]->key, 10);
        cr_assert(m->flags[0]->key && !m->flags[1]->key);
        cr_assert_eq(m->big[0]->key, UINT64_MAX);
        char *out = enc(m);
        cr_assert_str_eq(out, "{\"ints\":{\"-5\":\"a\",\"2147483647\":\"\",\"10\":\"ten\"},"
                              "\"flags\":{\"true\":1,\"false\":-1},\"big\":{\"18446744073709551615\":7}}");
        free(out);
        protobuf_c_message_free_unpacked(&m->base, NULL);

        dec_fails(&mmsg_desc, "{\"ints\":{\"1\":\"a\",\"1.0e0\":\"b\"}}", "field \"ints\": duplicate map key");
        dec_fails(&mmsg_desc, "{\"ints\":{\"x\":\"a\"}}", "field \"ints[\"x\"]\": \"x\" is not a valid int32");
        dec_fails(&mmsg_desc, "{\"ints\":{\"2147483648\":\"a\"}}", "2147483648 is out of range for int32");
        dec_fails(&mmsg_desc, "{\"flags\":{\"yes\":1}}", "map key must be \"true\" or \"false\"");
        dec_fails(&mmsg_desc, "{\"flags\":{\"true\":1,\"true\":2}}", "duplicate map key");
        dec_fails(&mmsg_desc, "{\"big\":{\"-1\":1}}", "-1 is out of range for uint64");

        ds = saved;
        rpc_descset_free(mine);
        ha_buf_done(&set);
}

/* ---- robustness -------------------------------------------------------- */

/* A rich document touching every decoder path: maps, oneofs, repeated
 * messages, Any (both @type positions, a WKT inside), bytes, enums. */
static const char rich_status[] =
        "{\"code\":3,\"message\":\"bad \\u00e9 \\ud83d\\ude00\",\"details\":["
        "{\"@type\":\"type.googleapis.com/hostagent.v1.ListSandboxesResponse\",\"sandboxes\":["
        "{\"sandboxId\":\"a\",\"state\":\"SANDBOX_STATE_PAUSED\",\"metadata\":{\"k\":\"v\",\"k2\":\"\\n\"},"
        "\"createdAt\":\"2026-11-28T06:00:00.5+01:00\",\"egress\":{\"mode\":2,\"allowCidrs\":[\"1.1.1.1/32\",\"\"]}},"
        "{\"sandbox_id\":\"b\",\"env\":{\"A\":\"1\"}}]},"
        "{\"value\":\"-1.5s\",\"@type\":\"type.googleapis.com/google.protobuf.Duration\"},"
        "{\"@type\":\"type.googleapis.com/hostagent.v1.ExecEvent\",\"exited\":{\"duration\":\"3s\",\"exitCode\":1}},"
        "{\"@type\":\"type.googleapis.com/hostagent.v1.ExecRequest\",\"command\":[\"a\",\"b\\\\c\"],"
        "\"stdin\":\"AAEC_-8\",\"env\":{\"X\":\"Y\"}},"
        "{\"@type\":\"type.googleapis.com/grpc.health.v1.HealthListResponse\","
        "\"statuses\":{\"svc\":{\"status\":\"SERVING\"},\"\":{}}},"
        "{\"@type\":\"type.googleapis.com/hostagent.v1.HostInfo\",\"capacity\":{\"memoryMib\":\"12\"}}]}";

/* Decodes |json|, then checks encode(decode) is a fixed point. Returns the
 * decode result. */
static int stable_or_rejected(const char *json, size_t len, bool ignore)
{
        struct rpc_json_opts o = { .ignore_unknown = ignore };
        ProtobufCMessage *m = NULL, *m2 = NULL;
        struct ha_err err;
        int r = rpc_json_decode(&google__rpc__status__descriptor, ds, (const uint8_t *)json, len, &o, &m, &err);
        if (r < 0)
                return r;
        struct ha_buf a, b;
        ha_buf_init(&a, 1 << 20);
        ha_buf_init(&b, 1 << 20);
        cr_assert_eq(rpc_json_encode(m, ds, &a), 0);
        cr_assert_eq(rpc_json_decode(&google__rpc__status__descriptor, ds, a.data, a.len, NULL, &m2, &err), 0,
                     "re-decode of our own output: %s\n%.*s", err.msg, (int)a.len, (char *)a.data);
        cr_assert_eq(rpc_json_encode(m2, ds, &b), 0);
        cr_assert(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "encode not stable");
        assert_same_binary(m, m2);
        protobuf_c_message_free_unpacked(m, NULL);
        protobuf_c_message_free_unpacked(m2, NULL);
        ha_buf_done(&a);
        ha_buf_done(&b);
        return 0;
}

Test(codec_json, rich_document_is_stable)
{
        cr_assert_eq(stable_or_rejected(rich_status, strlen(rich_status), false), 0);
}

/* Random mutations of valid documents: every result is a clean -EINVAL or
 * a message whose encoding is stable. Under ASan this is the memory-safety
 * net for hostile input. */
Test(codec_json, mutated_inputs_never_crash)
{
        static const char *const seeds[] = { rich_status, sandbox_json };
        static const char tokens[] = "{}[]\",:\\0123456789-.eEtrufalsn@ \x80\xff";
        uint64_t x = 0x9e3779b97f4a7c15ull;
        char *buf = malloc(8192);
        int accepted = 0;
        for (int it = 0; it < 20000; it++) {
                const char *seed = seeds[it % 2];
                size_t n = strlen(seed);
                memcpy(buf, seed, n);
                int edits = 1 + (int)(it % 4);
                for (int e = 0; e < edits; e++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        size_t pos = (size_t)(x >> 16) % (n ? n : 1);
                        char t = tokens[(x >> 40) % (sizeof tokens - 1)];
                        switch ((x >> 8) % 3) {
                        case 0:                         /* replace */
                                buf[pos] = t;
                                break;
                        case 1:                         /* insert */
                                if (n < 8000) {
                                        memmove(buf + pos + 1, buf + pos, n - pos);
                                        buf[pos] = t;
                                        n++;
                                }
                                break;
                        default:                        /* delete */
                                if (n > 1) {
                                        memmove(buf + pos, buf + pos + 1, n - pos - 1);
                                        n--;
                                }
                        }
                }
                int r = stable_or_rejected(buf, n, it % 3 == 0);
                cr_assert(r == 0 || r == -EINVAL, "iteration %d: %d", it, r);
                accepted += r == 0;
        }
        free(buf);
        cr_log_info("mutations accepted: %d of 20000", accepted);
}

struct thr_arg {
        int iters;
        int failures;
};

static void *thr_main(void *p)
{
        struct thr_arg *a = p;
        for (int i = 0; i < a->iters; i++) {
                ProtobufCMessage *m = NULL;
                struct ha_buf b;
                ha_buf_init(&b, 1 << 16);
                if (rpc_json_decode(&google__rpc__status__descriptor, ds, (const uint8_t *)rich_status,
                                    strlen(rich_status), NULL, &m, NULL) < 0 ||
                    rpc_json_encode(m, ds, &b) < 0)
                        a->failures++;
                protobuf_c_message_free_unpacked(m, NULL);
                ha_buf_done(&b);
        }
        return NULL;
}

/* One descriptor index shared by concurrent codecs (run under TSan too). */
Test(codec_json, concurrent_use_of_one_descset)
{
        pthread_t t[4];
        struct thr_arg a[4];
        for (int i = 0; i < 4; i++) {
                a[i] = (struct thr_arg){ 300, 0 };
                cr_assert_eq(pthread_create(&t[i], NULL, thr_main, &a[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                pthread_join(t[i], NULL);
                cr_assert_eq(a[i].failures, 0);
        }
}

/* Failure injection (nghttp2's failmalloc idea): rerun a scenario failing
 * the N-th allocation for every N, and check it reports -ENOMEM and leaks
 * nothing. malloc is replaced in this executable, which sanitizers also
 * do, so this runs in the plain build only. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static bool fi_track, fi_failed;
static long fi_countdown = -1, fi_live;

static bool fi_should_fail(void)
{
        if (!fi_track || fi_countdown < 0)
                return false;
        if (fi_countdown-- == 0) {
                fi_failed = true;
                return true;
        }
        return false;
}

void *malloc(size_t n)
{
        if (fi_should_fail())
                return NULL;
        void *p = __libc_malloc(n);
        if (p && fi_track)
                fi_live++;
        return p;
}

void *calloc(size_t n, size_t m)
{
        if (fi_should_fail())
                return NULL;
        void *p = __libc_calloc(n, m);
        if (p && fi_track)
                fi_live++;
        return p;
}

void *realloc(void *old, size_t n)
{
        if (fi_should_fail())
                return NULL;
        void *p = __libc_realloc(old, n);
        if (p && !old && fi_track)
                fi_live++;
        return p;
}

void *reallocarray(void *old, size_t n, size_t m)
{
        size_t t;
        if (__builtin_mul_overflow(n, m, &t)) {
                errno = ENOMEM;
                return NULL;
        }
        return realloc(old, t);
}

void free(void *p)
{
        if (p && fi_track)
                fi_live--;
        __libc_free(p);
}

static int scenario_decode_encode(void)
{
        ProtobufCMessage *m = NULL;
        struct ha_buf b;
        struct ha_err err;
        int r = rpc_json_decode(&google__rpc__status__descriptor, ds, (const uint8_t *)rich_status,
                                strlen(rich_status), NULL, &m, &err);
        if (r < 0)
                return r;
        ha_buf_init(&b, 1 << 20);
        r = rpc_json_encode(m, ds, &b);
        ha_buf_done(&b);
        protobuf_c_message_free_unpacked(m, NULL);
        return r;
}

static int scenario_descset(void)
{
        rpc_descset *d = NULL;
        struct ha_err err;
        int r = rpc_descset_new_embedded(&d, &err);
        rpc_descset_free(d);
        return r;
}

static void fail_each_allocation(int (*scenario)(void), const char *name)
{
        long n;
        for (n = 0;; n++) {
                fi_live = 0;
                fi_failed = false;
                fi_countdown = n;
                fi_track = true;
                int r = scenario();
                fi_track = false;
                cr_assert_eq(fi_live, 0, "%s: allocation %ld failed: %ld blocks leaked", name, n, fi_live);
                if (!fi_failed) {
                        cr_assert_eq(r, 0, "%s: %d with no failure", name, r);
                        break;
                }
                cr_assert_eq(r, -ENOMEM, "%s: allocation %ld failed but got %d", name, n, r);
        }
        cr_log_info("%s: %ld allocations, each failed once", name, n);
}

Test(codec_json, every_allocation_failure_is_enomem_without_leaks)
{
        fail_each_allocation(scenario_decode_encode, "decode+encode");
        fail_each_allocation(scenario_descset, "descset");
}
#endif

/* ---- micro-benchmark --------------------------------------------------- */

/* CPU time of this thread: the machine is shared (CI, parallel builds), and
 * wall time would mostly measure the neighbours. */
static double now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Prints ns per encode and per decode of a populated Sandbox. Runs a few
 * thousand iterations so it stays quick under sanitizers. */
Test(codec_json, bench_sandbox_encode_decode)
{
        Hostagent__V1__Sandbox s = HOSTAGENT__V1__SANDBOX__INIT;
        Google__Protobuf__Timestamp c = GOOGLE__PROTOBUF__TIMESTAMP__INIT, x = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        fill_sandbox(&s, &c, &x);
        const char *env = getenv("HA_BENCH_ITERS");
        int iters = env ? atoi(env) : 5000;
        struct ha_buf b;
        ha_buf_init(&b, 1 << 16);

        double t0 = now_ns();
        for (int i = 0; i < iters; i++) {
                ha_buf_reset(&b);
                cr_assert_eq(rpc_json_encode(&s.base, ds, &b), 0);
        }
        double t1 = now_ns();
        for (int i = 0; i < iters; i++) {
                ProtobufCMessage *m;
                cr_assert_eq(rpc_json_decode(&hostagent__v1__sandbox__descriptor, ds, b.data, b.len, NULL, &m,
                                             NULL), 0);
                protobuf_c_message_free_unpacked(m, NULL);
        }
        double t2 = now_ns();
        /* The binary codec on the same message, for scale. */
        uint8_t pb[1024];
        size_t pn = 0;
        for (int i = 0; i < iters; i++)
                pn = protobuf_c_message_pack(&s.base, pb);
        double t3 = now_ns();
        for (int i = 0; i < iters; i++)
                protobuf_c_message_free_unpacked(protobuf_c_message_unpack(&hostagent__v1__sandbox__descriptor,
                                                                           NULL, pn, pb), NULL);
        double t4 = now_ns();
        fprintf(stderr, "bench: Sandbox protobuf (%zu bytes): pack %.0f ns, unpack %.0f ns CPU\n", pn,
                (t3 - t2) / iters, (t4 - t3) / iters);
        cr_log_info("bench: Sandbox JSON (%zu bytes): encode %.0f ns, decode %.0f ns CPU (%d iterations)",
                    b.len, (t1 - t0) / iters, (t2 - t1) / iters, iters);
        fprintf(stderr, "bench: Sandbox JSON (%zu bytes): encode %.0f ns, decode %.0f ns CPU (%d iterations)\n",
                b.len, (t1 - t0) / iters, (t2 - t1) / iters, iters);
        ha_buf_done(&b);
}
