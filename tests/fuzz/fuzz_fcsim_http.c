/*
 * fuzz_fcsim_http.c - the simulator's HTTP/1.1 request parser
 * (tools/fcsim/http.c) on hostile bytes, as its API socket sees them: the
 * parser is re-run on a growing prefix (bytes arrive in pieces) and then
 * on the rest after each complete request (keep-alive pipelining).
 *
 * Checks: a complete request occupies at most the bytes given, its head
 * and body lie inside them, the body respects body_max, the path is
 * NUL-terminated and absolute, and the result is the same whether the
 * bytes came at once or in pieces.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/fuzz_util.h"
#include "core/err.h"
#include "http.h"

#define BODY_MAX 4096

static int parse(const char *p, size_t n, struct fcsim_http_req *req)
{
        struct ha_err err = { "" };
        memset(req, 0, sizeof *req);
        int r = fcsim_http_parse(p, n, BODY_MAX, req, &err);
        FZ_CHECK(r >= 0 || r == -EMSGSIZE || r == -EINVAL || r == -ENOTSUP);
        if (r < 0)
                FZ_CHECK(err.msg[0] != '\0');
        if (r > 0) {
                FZ_CHECK((size_t)r <= n);
                FZ_CHECK(req->head_complete && req->head_len <= (size_t)r);
                FZ_CHECK(memchr(req->path, '\0', sizeof req->path) != NULL);
                FZ_CHECK(req->path[0] == '/');
                FZ_CHECK(req->body_len <= BODY_MAX);
                if (req->body) {
                        FZ_CHECK(req->body >= p && req->body + req->body_len <= p + r);
                }
                FZ_CHECK(req->body_len == req->content_length);
        }
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        struct fz_slicer sl;
        fz_slicer_init(&sl, data[0]);
        const char *p = (const char *)data + 1;
        size_t n = size - 1;
        struct fcsim_http_req req;
        for (int reqs = 0; n > 0 && reqs < 16; reqs++) {
                int whole = parse(p, n, &req);
                /* Growing prefix, as a connection receives it: no result
                 * may appear before the bytes that justify it. */
                size_t have = 0;
                int r = 0;
                while (have < n) {
                        have += fz_slicer_next(&sl, n - have);
                        r = parse(p, have, &req);
                        if (r != 0)
                                break;
                }
                if (whole > 0)
                        FZ_CHECK(r == whole);
                if (r <= 0)
                        break;
                p += r, n -= (size_t)r;
        }
        return 0;
}
