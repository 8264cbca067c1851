/*
 * descset_embedded.c - the descriptor index of the API this binary serves:
 * gen/descriptor_set.c (written by scripts/gen-proto.sh) plus every
 * protobuf-c message type of gen/, so that the JSON codec and reflection
 * agree with the generated code. Kept apart from descset.c so the index
 * itself can be tested on hand-made sets.
 */
#include "rpc/descset.h"

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "hostagent/v1/hostagent.pb-c.h"

extern const uint8_t ha_descriptor_set[];
extern const size_t ha_descriptor_set_len;

/* Roots: register_c() follows message fields, so listing the top-level
 * types reaches the nested ones (map entries, ExecEvent.Data, ...). */
static const ProtobufCMessageDescriptor *const embedded_types[] = {
        &google__protobuf__any__descriptor,
        &google__protobuf__duration__descriptor,
        &google__protobuf__timestamp__descriptor,
        &google__rpc__status__descriptor,
        &grpc__health__v1__health_check_request__descriptor,
        &grpc__health__v1__health_check_response__descriptor,
        &grpc__health__v1__health_list_request__descriptor,
        &grpc__health__v1__health_list_response__descriptor,
        &grpc__reflection__v1__server_reflection_request__descriptor,
        &grpc__reflection__v1__server_reflection_response__descriptor,
        &grpc__reflection__v1alpha__server_reflection_request__descriptor,
        &grpc__reflection__v1alpha__server_reflection_response__descriptor,
        &hostagent__v1__egress_policy__descriptor,
        &hostagent__v1__create_sandbox_request__descriptor,
        &hostagent__v1__sandbox__descriptor,
        &hostagent__v1__get_sandbox_request__descriptor,
        &hostagent__v1__list_sandboxes_request__descriptor,
        &hostagent__v1__list_sandboxes_response__descriptor,
        &hostagent__v1__destroy_sandbox_request__descriptor,
        &hostagent__v1__destroy_sandbox_response__descriptor,
        &hostagent__v1__pause_sandbox_request__descriptor,
        &hostagent__v1__resume_sandbox_request__descriptor,
        &hostagent__v1__set_sandbox_timeout_request__descriptor,
        &hostagent__v1__exec_request__descriptor,
        &hostagent__v1__exec_response__descriptor,
        &hostagent__v1__exec_event__descriptor,
        &hostagent__v1__exec_input__descriptor,
        &hostagent__v1__watch_events_request__descriptor,
        &hostagent__v1__sandbox_event__descriptor,
        &hostagent__v1__get_host_info_request__descriptor,
        &hostagent__v1__capacity__descriptor,
        &hostagent__v1__host_info__descriptor,
};

int rpc_descset_new_embedded(rpc_descset **ret, struct ha_err *err)
{
        return rpc_descset_new(ha_descriptor_set, ha_descriptor_set_len, embedded_types,
                               sizeof embedded_types / sizeof embedded_types[0], ret, err);
}
