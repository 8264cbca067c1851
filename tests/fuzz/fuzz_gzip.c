/*
 * fuzz_gzip.c - bounded inflation (src/rpc/gzip.c) of hostile bytes, and
 * the deflate -> inflate round trip of the same bytes.
 *
 * Checks: inflate never returns more than its limit (the bomb defence),
 * returns only its documented errors, and inflate(deflate(x)) == x.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/fuzz_util.h"
#include "rpc/gzip.h"

#define LIMIT (128u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint8_t *out = NULL;
        size_t n = 0;
        int r = rpc_gzip_inflate(data, size, LIMIT, &out, &n);
        FZ_CHECK(r == 0 || r == -EMSGSIZE || r == -EBADMSG || r == -ENOMEM);
        if (r == 0)
                FZ_CHECK(n <= LIMIT);
        free(out);

        uint8_t *z = NULL;
        size_t zn = 0;
        if (rpc_gzip_deflate(data, size, &z, &zn) < 0)
                return 0;
        out = NULL;
        r = rpc_gzip_inflate(z, zn, size, &out, &n);
        FZ_CHECK(r == 0);
        FZ_CHECK(n == size);
        FZ_CHECK(size == 0 || memcmp(out, data, size) == 0);
        free(out);
        free(z);
        return 0;
}
