/*
 * reflection.c - see reflection.h. The RPC is bidi: each request is
 * answered as soon as it arrives (buf curl waits for every answer before it
 * sends the next request). v1 and v1alpha are the same on the wire, so the
 * handler decodes and encodes with v1 types and only the method's
 * descriptors differ.
 *
 * A file is sent with its transitive imports; files already sent on the
 * stream are skipped, as the protocol allows.
 */
#include "service/reflection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "rpc/descset.h"
#include "rpc/rpc_int.h"

#define MAX_FILES 64

struct sent {
        const struct rpc_descset_file *files[MAX_FILES];
        size_t n;
};

static bool was_sent(struct sent *s, const struct rpc_descset_file *f)
{
        for (size_t i = 0; i < s->n; i++)
                if (s->files[i] == f)
                        return true;
        return false;
}

typedef Grpc__Reflection__V1__ServerReflectionRequest Req;
typedef Grpc__Reflection__V1__ServerReflectionResponse Resp;

static void answer(rpc_call *c, const rpc_descset *ds, const Req *req, struct sent *sent)
{
        Resp resp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
        Grpc__Reflection__V1__FileDescriptorResponse fdr = GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
        Grpc__Reflection__V1__ListServiceResponse lsr = GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
        Grpc__Reflection__V1__ErrorResponse er = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
        Grpc__Reflection__V1__ExtensionNumberResponse enr = GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
        ProtobufCBinaryData blobs[MAX_FILES];
        Grpc__Reflection__V1__ServiceResponse svcs[32], *svcp[32];
        int32_t nums[64];
        char msg[300];

        resp.valid_host = req->host;
        resp.original_request = (Req *)req;
        const struct rpc_descset_file *file = NULL;
        const char *what = NULL;
        switch (req->message_request_case) {
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
                what = req->file_by_filename;
                file = rpc_descset_file_by_name(ds, what);
                break;
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
                what = req->file_containing_symbol;
                file = rpc_descset_file_containing_symbol(ds, what);
                break;
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
                what = req->file_containing_extension ? req->file_containing_extension->containing_type : "";
                file = rpc_descset_file_containing_extension(ds, what,
                        req->file_containing_extension ? (uint32_t)req->file_containing_extension->extension_number : 0);
                break;
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
                size_t n = rpc_descset_service_count(ds);
                if (n > 32)
                        n = 32;
                for (size_t i = 0; i < n; i++) {
                        grpc__reflection__v1__service_response__init(&svcs[i]);
                        svcs[i].name = (char *)rpc_descset_service_name(ds, i);
                        svcp[i] = &svcs[i];
                }
                lsr.n_service = n;
                lsr.service = svcp;
                resp.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
                resp.list_services_response = &lsr;
                rpc_call_send(c, &resp.base);
                return;
        }
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
                uint32_t u[64];
                int n = rpc_descset_extension_numbers(ds, req->all_extension_numbers_of_type, u, 64);
                if (n < 0) {
                        what = req->all_extension_numbers_of_type;
                        break;
                }
                for (int i = 0; i < n && i < 64; i++)
                        nums[i] = (int32_t)u[i];
                enr.base_type_name = req->all_extension_numbers_of_type;
                enr.n_extension_number = (size_t)(n < 64 ? n : 64);
                enr.extension_number = nums;
                resp.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
                resp.all_extension_numbers_response = &enr;
                rpc_call_send(c, &resp.base);
                return;
        }
        default:
                er.error_code = RPC_INVALID_ARGUMENT;
                er.error_message = (char *)"empty or unknown reflection request";
                resp.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
                resp.error_response = &er;
                rpc_call_send(c, &resp.base);
                return;
        }
        if (!file) {
                snprintf(msg, sizeof msg, "not found: %s", what ? what : "");
                er.error_code = RPC_NOT_FOUND;
                er.error_message = msg;
                resp.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
                resp.error_response = &er;
                rpc_call_send(c, &resp.base);
                return;
        }
        size_t n = 0;
        /* The requested file first (grpcurl reads element 0), then the
         * imports not yet sent on this stream. */
        blobs[n++] = (ProtobufCBinaryData){ file->len, (uint8_t *)file->data };
        if (!was_sent(sent, file) && sent->n < MAX_FILES)
                sent->files[sent->n++] = file;
        for (size_t i = 0; i + 1 < file->n_closure && n < MAX_FILES; i++) {
                const struct rpc_descset_file *dep = file->closure[i];
                if (was_sent(sent, dep))
                        continue;
                blobs[n++] = (ProtobufCBinaryData){ dep->len, (uint8_t *)dep->data };
                if (sent->n < MAX_FILES)
                        sent->files[sent->n++] = dep;
        }
        fdr.n_file_descriptor_proto = n;
        fdr.file_descriptor_proto = blobs;
        resp.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        resp.file_descriptor_response = &fdr;
        rpc_call_send(c, &resp.base);
}

static void reflect(rpc_call *c, void *ctx)
{
        const rpc_descset *ds = rpc_descriptors();
        if (!ds) {
                rpc_call_finish(c, RPC_UNAVAILABLE, "descriptor set unavailable");
                return;
        }
        struct sent sent = { .n = 0 };
        ProtobufCMessage *m;
        while (rpc_call_recv(c, 0, &m) == 1) {
                answer(c, ds, (const Req *)m, &sent);
                protobuf_c_message_free_unpacked(m, NULL);
        }
}

static const struct rpc_method methods[] = {
        { "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", RPC_BIDI, 0,
          &grpc__reflection__v1__server_reflection_request__descriptor,
          &grpc__reflection__v1__server_reflection_response__descriptor, reflect, NULL, "reader" },
        /* v1alpha: same wire format; decoded with the v1 types. */
        { "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", RPC_BIDI, 0,
          &grpc__reflection__v1__server_reflection_request__descriptor,
          &grpc__reflection__v1__server_reflection_response__descriptor, reflect, NULL, "reader" },
};

int svc_reflection_register(rpc_server *srv)
{
        for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
                int r = rpc_server_add_method(srv, &methods[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}
