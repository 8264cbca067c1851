/*
 * http.h - the HTTP/1.1 request parser and response writer of the API
 * socket, in the spirit of Firecracker's micro-http: Content-Length bodies
 * only (no chunked encoding), keep-alive by default, "Expect: 100-continue"
 * answered, and hard limits on every part of a request.
 *
 * The parser is stateless: it is handed the bytes received so far and
 * either finds one complete request at the front, asks for more, or
 * rejects the input. Requests are small, so re-scanning the header block
 * when more bytes arrive costs nothing and keeps the code obvious.
 */
#ifndef FCSIM_HTTP_H
#define FCSIM_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* Firecracker's default --http-api-max-payload-size. */
#define FCSIM_HTTP_BODY_MAX 51200
/* Request line plus headers; a client sending more is broken or hostile. */
#define FCSIM_HTTP_HEAD_MAX 8192
/* Header count limit: stops a flood of tiny headers. */
#define FCSIM_HTTP_HEADERS_MAX 64
/* Request target; every path of the API is far shorter. */
#define FCSIM_HTTP_PATH_MAX 1024

enum fcsim_http_method { FCSIM_GET, FCSIM_PUT, FCSIM_PATCH, FCSIM_OTHER };

struct fcsim_http_req {
        enum fcsim_http_method method;
        char method_name[16];
        char path[FCSIM_HTTP_PATH_MAX]; /* absolute path, query removed */
        bool keep_alive;
        bool expect_continue;
        bool head_complete; /* set even when the body is missing */
        size_t head_len;
        size_t content_length;
        const char *body; /* borrowed from the input; NULL if none */
        size_t body_len;
};

/* Parses the request at the front of data[0..len); bodies above |body_max|
 * (at most FCSIM_HTTP_BODY_MAX unless the command line raised it) fail.
 * Returns the number of bytes it occupies (> 0) when complete; 0 when more
 * bytes are needed (req->head_complete tells whether the head was seen, for
 * 100-continue); -EMSGSIZE when a limit is exceeded; -EINVAL for malformed
 * input; -ENOTSUP for a valid but unsupported request (chunked body, HTTP
 * version other than 1.0/1.1). |err| gets the fault message. */
int fcsim_http_parse(const char *data, size_t len, size_t body_max, struct fcsim_http_req *req,
                     struct ha_err *err);

/* Appends a complete response to |out|: status line, Server, Connection,
 * and, when |body| is not NULL, Content-Type: application/json and the body.
 * Returns 0, -EMSGSIZE or -ENOMEM. */
int fcsim_http_format(struct ha_buf *out, int status, const char *body, size_t body_len,
                      bool keep_alive);

/* Appends {"fault_message":"<msg>"} (JSON-escaped) to |out|. */
int fcsim_http_fault_body(struct ha_buf *out, const char *msg);

#endif
