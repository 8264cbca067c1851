/* Tests for rpc/descset.c: the index over the embedded FileDescriptorSet. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/err.h"
#include "rpc/descset.h"

#include "hostagent/v1/hostagent.pb-c.h"

extern const uint8_t ha_descriptor_set[];
extern const size_t ha_descriptor_set_len;

static rpc_descset *ds;

static void setup(void)
{
        struct ha_err err = { { 0 } };
        int r = rpc_descset_new_embedded(&ds, &err);
        cr_assert_eq(r, 0, "rpc_descset_new_embedded: %d %s", r, err.msg);
}

static void teardown(void)
{
        rpc_descset_free(ds);
        ds = NULL;
}

TestSuite(rpc_descset, .init = setup, .fini = teardown);

static bool has_service(const char *name)
{
        for (size_t i = 0; i < rpc_descset_service_count(ds); i++)
                if (strcmp(rpc_descset_service_name(ds, i), name) == 0)
                        return true;
        return false;
}

Test(rpc_descset, lists_every_service)
{
        cr_assert_eq(rpc_descset_service_count(ds), 4);
        cr_assert(has_service("hostagent.v1.HostAgentService"));
        cr_assert(has_service("grpc.health.v1.Health"));
        cr_assert(has_service("grpc.reflection.v1.ServerReflection"));
        cr_assert(has_service("grpc.reflection.v1alpha.ServerReflection"));
        cr_assert_null(rpc_descset_service_name(ds, 4));
}

Test(rpc_descset, method_by_path_gives_types_streaming_and_idempotency)
{
        const char *p = "/hostagent.v1.HostAgentService/GetSandbox";
        const struct rpc_descset_method *m = rpc_descset_method_by_path(ds, p, strlen(p));
        cr_assert_not_null(m);
        cr_assert_str_eq(m->input_type, "hostagent.v1.GetSandboxRequest");
        cr_assert_str_eq(m->output_type, "hostagent.v1.Sandbox");
        cr_assert_str_eq(m->full_name, "hostagent.v1.HostAgentService.GetSandbox");
        cr_assert_str_eq(m->service, "hostagent.v1.HostAgentService");
        cr_assert_str_eq(m->name, "GetSandbox");
        cr_assert_str_eq(m->path, p);
        cr_assert(m->no_side_effects);
        cr_assert(!m->client_streaming && !m->server_streaming);
        cr_assert_eq(m->input, &hostagent__v1__get_sandbox_request__descriptor);
        cr_assert_eq(m->output, &hostagent__v1__sandbox__descriptor);
        cr_assert_str_eq(m->file->name, "hostagent/v1/hostagent.proto");

        p = "/hostagent.v1.HostAgentService/CreateSandbox";
        m = rpc_descset_method_by_path(ds, p, strlen(p));
        cr_assert(m && !m->no_side_effects && !m->idempotent);

        p = "/hostagent.v1.HostAgentService/ExecStream";
        m = rpc_descset_method_by_path(ds, p, strlen(p));
        cr_assert(m && !m->client_streaming && m->server_streaming);

        p = "/hostagent.v1.HostAgentService/ExecInteractive";
        m = rpc_descset_method_by_path(ds, p, strlen(p));
        cr_assert(m && m->client_streaming && m->server_streaming);
        cr_assert_eq(m->input, &hostagent__v1__exec_input__descriptor);

        p = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        m = rpc_descset_method_by_path(ds, p, strlen(p));
        cr_assert(m && m->client_streaming && m->server_streaming);
        cr_assert_not_null(m->input);

        p = "/grpc.health.v1.Health/Watch";
        m = rpc_descset_method_by_path(ds, p, strlen(p));
        cr_assert(m && m->server_streaming && !m->client_streaming);
}

Test(rpc_descset, method_by_path_is_exact_and_length_bounded)
{
        const char *p = "/hostagent.v1.HostAgentService/GetSandboxXYZ";
        cr_assert_null(rpc_descset_method_by_path(ds, p, strlen(p)));
        /* The length decides, not a NUL: a prefix of a longer buffer. */
        cr_assert_not_null(rpc_descset_method_by_path(ds, p, strlen(p) - 3));
        cr_assert_null(rpc_descset_method_by_path(ds, "/hostagent.v1.HostAgentService/getsandbox", 41));
        cr_assert_null(rpc_descset_method_by_path(ds, "", 0));
        size_t n = 0;
        for (size_t i = 0; i < rpc_descset_method_count(ds); i++)
                if (strcmp(rpc_descset_method_at(ds, i)->service, "hostagent.v1.HostAgentService") == 0)
                        n++;
        cr_assert_eq(n, 12);
}

Test(rpc_descset, file_by_filename_returns_a_slice_of_the_blob)
{
        const struct rpc_descset_file *f = rpc_descset_file_by_name(ds, "google/protobuf/duration.proto");
        cr_assert_not_null(f);
        cr_assert(f->data > ha_descriptor_set && f->data + f->len <= ha_descriptor_set + ha_descriptor_set_len);
        cr_assert_str_eq(f->package, "google.protobuf");
        /* FileDescriptorProto starts with field 1 (name), length-delimited. */
        cr_assert_eq(f->data[0], 0x0a);
        cr_assert_eq(f->data[1], strlen("google/protobuf/duration.proto"));
        cr_assert_eq(f->n_closure, 1);
        cr_assert_eq(f->closure[0], f);
        cr_assert_null(rpc_descset_file_by_name(ds, "nope.proto"));
        cr_assert_eq(rpc_descset_file_count(ds), 8);
}

Test(rpc_descset, closure_lists_imports_before_importers)
{
        const struct rpc_descset_file *f = rpc_descset_file_by_name(ds, "hostagent/v1/hostagent.proto");
        cr_assert_not_null(f);
        cr_assert_eq(f->n_closure, 3);
        cr_assert_str_eq(f->closure[0]->name, "google/protobuf/duration.proto");
        cr_assert_str_eq(f->closure[1]->name, "google/protobuf/timestamp.proto");
        cr_assert_eq(f->closure[2], f);
        f = rpc_descset_file_by_name(ds, "google/rpc/status.proto");
        cr_assert_eq(f->n_closure, 2);
        cr_assert_str_eq(f->closure[0]->name, "google/protobuf/any.proto");
}

Test(rpc_descset, file_containing_symbol_resolves_every_kind)
{
        static const char *const host[] = {
                "hostagent.v1.HostAgentService",
                "hostagent.v1.HostAgentService.ExecStream",
                "hostagent.v1.Sandbox",
                "hostagent.v1.ExecEvent.Exited",
                "hostagent.v1.Sandbox.MetadataEntry",
                "hostagent.v1.Sandbox.created_at",
                "hostagent.v1.SandboxState",
                "hostagent.v1.SANDBOX_STATE_RUNNING",
                "hostagent.v1.EgressPolicy.Mode",
                "hostagent.v1.EgressPolicy.MODE_DENY_ALL",
        };
        for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) {
                const struct rpc_descset_file *f = rpc_descset_file_containing_symbol(ds, host[i]);
                cr_assert_not_null(f, "%s", host[i]);
                cr_assert_str_eq(f->name, "hostagent/v1/hostagent.proto", "%s", host[i]);
        }
        const struct rpc_descset_file *f = rpc_descset_file_containing_symbol(ds, "google.protobuf.Timestamp");
        cr_assert_str_eq(f->name, "google/protobuf/timestamp.proto");
        f = rpc_descset_file_containing_symbol(ds, "grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo");
        cr_assert_str_eq(f->name, "grpc/reflection/v1alpha/reflection.proto");
        cr_assert_null(rpc_descset_file_containing_symbol(ds, "hostagent.v1.Nope"));
        cr_assert_null(rpc_descset_file_containing_symbol(ds, ".hostagent.v1.Sandbox"));
        cr_assert_null(rpc_descset_file_containing_symbol(ds, ""));
}

Test(rpc_descset, extensions_absent_but_types_known)
{
        uint32_t nums[4];
        cr_assert_null(rpc_descset_file_containing_extension(ds, "hostagent.v1.Sandbox", 100));
        cr_assert_eq(rpc_descset_extension_numbers(ds, "hostagent.v1.Sandbox", nums, 4), 0);
        cr_assert_eq(rpc_descset_extension_numbers(ds, "hostagent.v1.Nope", nums, 4), -ENOENT);
}

Test(rpc_descset, json_names_and_map_entries)
{
        cr_assert_str_eq(rpc_descset_json_name(ds, "hostagent.v1.Sandbox", 7), "createdAt");
        cr_assert_str_eq(rpc_descset_json_name(ds, "hostagent.v1.CreateSandboxRequest", 4), "memoryMib");
        cr_assert_str_eq(rpc_descset_json_name(ds, "hostagent.v1.Sandbox", 1), "sandboxId");
        cr_assert_null(rpc_descset_json_name(ds, "hostagent.v1.Sandbox", 99));
        cr_assert_null(rpc_descset_json_name(ds, "hostagent.v1.Nope", 1));

        const struct rpc_descset_msg *m = rpc_descset_msg_by_name(ds, "hostagent.v1.Sandbox.MetadataEntry");
        cr_assert(m && m->map_entry);
        cr_assert_eq(m->cdesc, &hostagent__v1__sandbox__metadata_entry__descriptor);
        m = rpc_descset_msg_by_c(ds, &hostagent__v1__sandbox__descriptor);
        cr_assert(m && !m->map_entry);
        cr_assert_str_eq(m->full_name, "hostagent.v1.Sandbox");
        for (unsigned i = 0; i < m->cdesc->n_fields; i++)
                if (m->cdesc->fields[i].id == 14)
                        cr_assert_str_eq(m->json_names[i], "snapshotted");
                else if (m->cdesc->fields[i].id == 10)
                        cr_assert_str_eq(m->json_names[i], "slot");
                else if (m->cdesc->fields[i].id == 5)
                        cr_assert_str_eq(m->json_names[i], "memoryMib");
        /* Nested types are reached through fields. */
        cr_assert_not_null(rpc_descset_msg_by_c(ds, &hostagent__v1__exec_event__exited__descriptor));
        cr_assert_not_null(rpc_descset_msg_by_c(ds, &google__protobuf__duration__descriptor));
}

/* A hand-made set: file "a.proto" importing "b.proto" that is absent. */
Test(rpc_descset, rejects_missing_import_and_malformed_sets)
{
        static const uint8_t missing[] = {
                0x0a, 0x0e,                                  /* file, 14 bytes */
                0x0a, 0x07, 'a', '.', 'p', 'r', 'o', 't', 'o', /* name */
                0x1a, 0x03, 'b', '.', 'p',                   /* dependency */
        };
        rpc_descset *d = NULL;
        struct ha_err err = { { 0 } };
        cr_assert_eq(rpc_descset_new(missing, sizeof missing, NULL, 0, &d, &err), -EINVAL);
        cr_assert(strstr(err.msg, "\"a.proto\" imports \"b.p\""), "%s", err.msg);
        cr_assert_null(d);

        static const uint8_t truncated[] = { 0x0a, 0x20, 0x0a, 0x01 };
        cr_assert_eq(rpc_descset_new(truncated, sizeof truncated, NULL, 0, &d, &err), -EINVAL);
        cr_assert_eq(rpc_descset_new(truncated, 0, NULL, 0, &d, &err), -EINVAL);
        cr_assert(strstr(err.msg, "no files"), "%s", err.msg);

        static const uint8_t dup[] = {
                0x0a, 0x03, 0x0a, 0x01, 'x', 0x0a, 0x03, 0x0a, 0x01, 'x',
        };
        cr_assert_eq(rpc_descset_new(dup, sizeof dup, NULL, 0, &d, &err), -EINVAL);
        cr_assert(strstr(err.msg, "appears twice"), "%s", err.msg);

        static const uint8_t cycle[] = {
                0x0a, 0x06, 0x0a, 0x01, 'x', 0x1a, 0x01, 'y',
                0x0a, 0x06, 0x0a, 0x01, 'y', 0x1a, 0x01, 'x',
        };
        cr_assert_eq(rpc_descset_new(cycle, sizeof cycle, NULL, 0, &d, &err), -EINVAL);
        cr_assert(strstr(err.msg, "cycle"), "%s", err.msg);
}

/* Every truncation of the real set must fail cleanly or succeed, never
 * crash (run under ASan in CI's sanitizer job). */
Test(rpc_descset, survives_every_truncation)
{
        for (size_t n = 0; n < ha_descriptor_set_len; n += 7) {
                rpc_descset *d = NULL;
                int r = rpc_descset_new(ha_descriptor_set, n, NULL, 0, &d, NULL);
                cr_assert(r == 0 || r == -EINVAL, "len %zu: %d", n, r);
                rpc_descset_free(d);
        }
}

/* Routing relies on every method knowing its protobuf-c types. */
Test(rpc_descset, every_method_is_linked_to_its_protobuf_c_types)
{
        cr_assert_eq(rpc_descset_method_count(ds), 12 + 3 + 1 + 1);
        for (size_t i = 0; i < rpc_descset_method_count(ds); i++) {
                const struct rpc_descset_method *m = rpc_descset_method_at(ds, i);
                cr_assert_not_null(m->input, "%s", m->path);
                cr_assert_not_null(m->output, "%s", m->path);
                cr_assert_str_eq(m->input->name, m->input_type);
                cr_assert_str_eq(m->output->name, m->output_type);
                cr_assert_eq(rpc_descset_method_by_path(ds, m->path, strlen(m->path)), m);
                cr_assert_eq(rpc_descset_file_containing_symbol(ds, m->full_name), m->file);
        }
        cr_assert_null(rpc_descset_method_at(ds, rpc_descset_method_count(ds)));
}

/* A type absent from the set still gets a record with computed names. */
Test(rpc_descset, registers_types_outside_the_set_with_computed_json_names)
{
        static const ProtobufCFieldDescriptor fields[] = {
                { "snake_case_name", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_INT32, 0, 8, NULL, NULL, 0, 0, NULL, NULL },
                { "x_2y", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_INT32, 0, 12, NULL, NULL, 0, 0, NULL, NULL },
        };
        static const unsigned by_name[] = { 0, 1 };
        static const ProtobufCIntRange ranges[] = { { 1, 0 }, { 0, 2 } };
        static const ProtobufCMessageDescriptor d = {
                PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "other.T", "T", "Other__T", "other",
                16, 2, fields, by_name, 1, ranges, NULL, NULL, NULL, NULL,
        };
        const ProtobufCMessageDescriptor *types[] = { &d, &hostagent__v1__sandbox__descriptor };
        rpc_descset *x = NULL;
        struct ha_err err = { { 0 } };
        cr_assert_eq(rpc_descset_new(ha_descriptor_set, ha_descriptor_set_len, types, 2, &x, &err), 0, "%s", err.msg);
        const struct rpc_descset_msg *m = rpc_descset_msg_by_c(x, &d);
        cr_assert_not_null(m);
        cr_assert_null(m->file);
        cr_assert_str_eq(m->json_names[0], "snakeCaseName");
        cr_assert_str_eq(m->json_names[1], "x2y");
        cr_assert_null(rpc_descset_msg_by_name(x, "other.T"));
        /* Only what was registered is linked. */
        const char *p = "/hostagent.v1.HostAgentService/GetSandbox";
        const struct rpc_descset_method *gm = rpc_descset_method_by_path(x, p, strlen(p));
        cr_assert_null(gm->input);
        cr_assert_eq(gm->output, &hostagent__v1__sandbox__descriptor);
        rpc_descset_free(x);
        rpc_descset_free(NULL);
}
