/*
 * fuzz_types.c - see fuzz_types.h.
 */
#include "common/fuzz_types.h"

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "guest/v1/guest.pb-c.h"
#include "hostagent/test/v1/test.pb-c.h"
#include "hostagent/v1/hostagent.pb-c.h"

const ProtobufCMessageDescriptor *const fz_types[] = {
        &hostagent__v1__create_sandbox_request__descriptor,
        &hostagent__v1__sandbox__descriptor,
        &hostagent__v1__exec_request__descriptor,
        &hostagent__v1__exec_event__descriptor,
        &hostagent__v1__exec_input__descriptor,
        &hostagent__v1__list_sandboxes_request__descriptor,
        &hostagent__v1__list_sandboxes_response__descriptor,
        &hostagent__v1__sandbox_event__descriptor,
        &hostagent__v1__host_info__descriptor,
        &hostagent__v1__set_sandbox_timeout_request__descriptor,
        &google__rpc__status__descriptor,
        &google__protobuf__any__descriptor,
        &google__protobuf__timestamp__descriptor,
        &google__protobuf__duration__descriptor,
        &hostagent__test__v1__echo_request__descriptor,
        &hostagent__test__v1__stream_request__descriptor,
        &hostagent__guest__v1__guest_request__descriptor,
        &hostagent__guest__v1__guest_event__descriptor,
};

const size_t fz_ntypes = sizeof fz_types / sizeof fz_types[0];

const ProtobufCMessageDescriptor *fz_type_pick(uint8_t b)
{
        return fz_types[b % fz_ntypes];
}
