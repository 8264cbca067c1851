/*
 * fuzz_proto_connect_stream.c - one request stream through the server's protocol
 * code with :method POST and content-type "application/connect+proto" unless the input
 * overrides them (see common/fuzz_proto.h for the input layout and the
 * checks).
 */
#include <stddef.h>
#include <stdint.h>

#include "common/fuzz_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        fz_proto_run("POST", "application/connect+proto", data, size);
        return 0;
}
