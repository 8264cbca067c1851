/* gzip.c - see gzip.h. zlib with windowBits 15+16 selects the gzip wrapper. */
#include "rpc/gzip.h"

#include <errno.h>
#include <stdlib.h>
#include <zlib.h>

int rpc_gzip_inflate(const uint8_t *in, size_t n, size_t limit, uint8_t **ret, size_t *ret_len)
{
        z_stream z = { 0 };
        if (inflateInit2(&z, 15 + 16) != Z_OK)
                return -ENOMEM;
        size_t cap = n * 4 + 64;
        if (cap > limit + 1)
                cap = limit + 1;
        uint8_t *out = malloc(cap);
        if (!out) {
                inflateEnd(&z);
                return -ENOMEM;
        }
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)n;
        size_t len = 0;
        int rc;
        for (;;) {
                z.next_out = out + len;
                z.avail_out = (uInt)(cap - len);
                rc = inflate(&z, Z_NO_FLUSH);
                len = cap - z.avail_out;
                if (rc == Z_STREAM_END)
                        break;
                if (rc != Z_OK && rc != Z_BUF_ERROR)
                        goto out_bad;
                if (z.avail_out == 0) {
                        if (len > limit)
                                goto out_big;
                        size_t ncap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
                        uint8_t *p = realloc(out, ncap);
                        if (!p) {
                                free(out);
                                inflateEnd(&z);
                                return -ENOMEM;
                        }
                        out = p;
                        cap = ncap;
                } else if (z.avail_in == 0) {
                        goto out_bad;   /* truncated */
                }
        }
        if (len > limit)
                goto out_big;
        inflateEnd(&z);
        *ret = out;
        *ret_len = len;
        return 0;
out_big:
        free(out);
        inflateEnd(&z);
        return -EMSGSIZE;
out_bad:
        free(out);
        inflateEnd(&z);
        return -EBADMSG;
}

int rpc_gzip_deflate(const uint8_t *in, size_t n, uint8_t **ret, size_t *ret_len)
{
        z_stream z = { 0 };
        if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                return -ENOMEM;
        size_t cap = deflateBound(&z, (uLong)n);
        uint8_t *out = malloc(cap);
        if (!out) {
                deflateEnd(&z);
                return -ENOMEM;
        }
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)n;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        int rc = deflate(&z, Z_FINISH);
        size_t len = cap - z.avail_out;
        deflateEnd(&z);
        if (rc != Z_STREAM_END) {
                free(out);
                return -ENOMEM;
        }
        *ret = out;
        *ret_len = len;
        return 0;
}
