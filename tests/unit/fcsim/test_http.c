/* Tests tools/fcsim/http.c: request parsing limits and response format. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "http.h"

static int parse(const char *s, struct fcsim_http_req *req)
{
        struct ha_err err;
        return fcsim_http_parse(s, strlen(s), FCSIM_HTTP_BODY_MAX, req, &err);
}

Test(fcsim_http, parses_put_with_body_and_keepalive)
{
        const char *s = "PUT /drives/rootfs HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}GET";
        struct fcsim_http_req req;
        int n = parse(s, &req);
        cr_assert_eq(n, (int)strlen(s) - 3);
        cr_assert_eq(req.method, FCSIM_PUT);
        cr_assert_str_eq(req.path, "/drives/rootfs");
        cr_assert(req.keep_alive);
        cr_assert_eq(req.body_len, 2);
        cr_assert_eq(memcmp(req.body, "{}", 2), 0);
}

Test(fcsim_http, waits_for_the_whole_body_and_reports_expect_continue)
{
        const char *s = "PUT /vm HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n{\"a\"";
        struct fcsim_http_req req;
        cr_assert_eq(parse(s, &req), 0);
        cr_assert(req.head_complete);
        cr_assert(req.expect_continue);
}

Test(fcsim_http, needs_more_for_a_partial_head)
{
        struct fcsim_http_req req;
        cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: x\r\n", &req), 0);
        cr_assert_not(req.head_complete);
}

Test(fcsim_http, rejects_body_above_the_limit_before_it_arrives)
{
        struct fcsim_http_req req;
        struct ha_err err;
        const char *s = "PUT /vm HTTP/1.1\r\nContent-Length: 51201\r\n\r\n";
        cr_assert_eq(fcsim_http_parse(s, strlen(s), FCSIM_HTTP_BODY_MAX, &req, &err), -EMSGSIZE);
        cr_assert(strstr(err.msg, "51201") != NULL);
        s = "PUT /vm HTTP/1.1\r\nContent-Length: 51200\r\n\r\n";
        cr_assert_eq(fcsim_http_parse(s, strlen(s), FCSIM_HTTP_BODY_MAX, &req, &err), 0);
}

Test(fcsim_http, rejects_oversized_head_and_header_floods)
{
        static char big[FCSIM_HTTP_HEAD_MAX + 64];
        memset(big, 'a', sizeof big - 1);
        memcpy(big, "GET /", 5);
        struct fcsim_http_req req;
        cr_assert_eq(parse(big, &req), -EMSGSIZE);

        char flood[4096] = "GET / HTTP/1.1\r\n";
        for (int i = 0; i < FCSIM_HTTP_HEADERS_MAX + 1; i++)
                strcat(flood, "X: y\r\n");
        strcat(flood, "\r\n");
        cr_assert_eq(parse(flood, &req), -EMSGSIZE);
}

Test(fcsim_http, rejects_chunked_bad_version_and_garbage)
{
        struct fcsim_http_req req;
        cr_assert_eq(parse("PUT /vm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &req), -ENOTSUP);
        cr_assert_eq(parse("GET / HTTP/2.0\r\n\r\n", &req), -ENOTSUP);
        cr_assert_eq(parse("GARBAGE\r\n\r\n", &req), -EINVAL);
        cr_assert_eq(parse("GET / HTTP/1.1\r\nContent-Length: x1\r\n\r\n", &req), -EINVAL);
        cr_assert_eq(parse("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &req),
                     -EINVAL);
        cr_assert_eq(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n", &req), -EINVAL);
}

Test(fcsim_http, connection_close_and_http10_disable_keepalive)
{
        struct fcsim_http_req req;
        cr_assert_gt(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &req), 0);
        cr_assert_not(req.keep_alive);
        cr_assert_gt(parse("GET / HTTP/1.0\r\n\r\n", &req), 0);
        cr_assert_not(req.keep_alive);
}

Test(fcsim_http, strips_query_and_absolute_form)
{
        struct fcsim_http_req req;
        cr_assert_gt(parse("GET http://localhost/version?x=1 HTTP/1.1\r\n\r\n", &req), 0);
        cr_assert_str_eq(req.path, "/version");
}

Test(fcsim_http, formats_204_without_body_and_400_with_fault)
{
        struct ha_buf out, body;
        ha_buf_init(&out, 4096);
        ha_buf_init(&body, 4096);
        cr_assert_eq(fcsim_http_format(&out, 204, NULL, 0, true), 0);
        cr_assert(memmem(out.data, out.len, "HTTP/1.1 204", 12) == out.data);
        cr_assert(memmem(out.data, out.len, "Content-Length", 14) == NULL);
        ha_buf_reset(&out);
        cr_assert_eq(fcsim_http_fault_body(&body, "bad \"x\"\n"), 0);
        cr_assert_eq(body.len, strlen("{\"fault_message\":\"bad \\\"x\\\"\\u000a\"}"));
        cr_assert_eq(fcsim_http_format(&out, 400, (char *)body.data, body.len, false), 0);
        cr_assert(memmem(out.data, out.len, "Connection: close", 17) != NULL);
        ha_buf_done(&out);
        ha_buf_done(&body);
}
