/*
 * http.c - see http.h. The header block ends at the first CRLFCRLF; lines
 * are split on CRLF (a bare LF is tolerated, as most servers do). Header
 * names are case-insensitive. Only the headers the API needs are read:
 * Content-Length, Transfer-Encoding, Connection and Expect.
 */
#include "http.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *find_head_end(const char *d, size_t len, size_t *ret_head_len)
{
        for (size_t i = 0; i + 1 < len; i++) {
                if (d[i] != '\n')
                        continue;
                if (d[i + 1] == '\n') {
                        *ret_head_len = i + 2;
                        return d + i;
                }
                if (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n') {
                        *ret_head_len = i + 3;
                        return d + i;
                }
        }
        return NULL;
}

/* Trims spaces and tabs around [*s, *e). */
static void trim(const char **s, const char **e)
{
        while (*s < *e && (**s == ' ' || **s == '\t'))
                (*s)++;
        while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
                (*e)--;
}

static bool span_ieq(const char *s, const char *e, const char *lit)
{
        size_t n = strlen(lit);
        return (size_t)(e - s) == n && strncasecmp(s, lit, n) == 0;
}

static int parse_request_line(const char *s, const char *e, struct fcsim_http_req *req,
                              bool *ret_http10, struct ha_err *err)
{
        const char *sp1 = memchr(s, ' ', (size_t)(e - s));
        if (!sp1)
                return ha_err_set(err, -EINVAL, "Invalid HTTP request line.");
        const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(e - sp1 - 1));
        if (!sp2)
                return ha_err_set(err, -EINVAL, "Invalid HTTP request line.");
        size_t mlen = (size_t)(sp1 - s);
        if (mlen == 0 || mlen >= sizeof req->method_name)
                return ha_err_set(err, -EINVAL, "Invalid HTTP method.");
        memcpy(req->method_name, s, mlen);
        req->method_name[mlen] = '\0';
        if (strcmp(req->method_name, "GET") == 0)
                req->method = FCSIM_GET;
        else if (strcmp(req->method_name, "PUT") == 0)
                req->method = FCSIM_PUT;
        else if (strcmp(req->method_name, "PATCH") == 0)
                req->method = FCSIM_PATCH;
        else
                req->method = FCSIM_OTHER;

        const char *t = sp1 + 1, *te = sp2;
        /* Absolute-form targets ("http://localhost/x") are what curl sends
         * through a proxy; reduce them to the path. */
        if (te - t > 7 && strncasecmp(t, "http://", 7) == 0) {
                const char *slash = memchr(t + 7, '/', (size_t)(te - t - 7));
                t = slash ? slash : te;
        }
        const char *q = memchr(t, '?', (size_t)(te - t));
        if (q)
                te = q;
        size_t plen = (size_t)(te - t);
        if (plen >= sizeof req->path)
                return ha_err_set(err, -EMSGSIZE, "Request URI is too long.");
        if (plen == 0) {
                req->path[0] = '/';
                req->path[1] = '\0';
        } else {
                if (t[0] != '/')
                        return ha_err_set(err, -EINVAL, "Invalid URI.");
                memcpy(req->path, t, plen);
                req->path[plen] = '\0';
        }
        for (size_t i = 0; i < plen; i++) {
                unsigned char c = (unsigned char)req->path[i];
                if (c <= 0x20 || c >= 0x7f)
                        return ha_err_set(err, -EINVAL, "Invalid URI.");
        }

        const char *v = sp2 + 1;
        if (span_ieq(v, e, "HTTP/1.1"))
                *ret_http10 = false;
        else if (span_ieq(v, e, "HTTP/1.0"))
                *ret_http10 = true;
        else
                return ha_err_set(err, -ENOTSUP, "Unsupported HTTP version.");
        return 0;
}

static int parse_content_length(const char *s, const char *e, size_t max, size_t *ret,
                                struct ha_err *err)
{
        if (s == e)
                return ha_err_set(err, -EINVAL, "Invalid value. Key: Content-Length");
        uint64_t v = 0;
        for (const char *p = s; p < e; p++) {
                if (*p < '0' || *p > '9')
                        return ha_err_set(err, -EINVAL, "Invalid value. Key: Content-Length");
                if (v > (UINT64_MAX - 9) / 10)
                        return ha_err_set(err, -EMSGSIZE, "Content-Length is too large.");
                v = v * 10 + (uint64_t)(*p - '0');
        }
        *ret = (size_t)v;
        if (v > max)
                return ha_err_set(err, -EMSGSIZE,
                                  "Request payload with size %llu is larger than the limit of %zu "
                                  "allowed by server.",
                                  (unsigned long long)v, max);
        return 0;
}

int fcsim_http_parse(const char *data, size_t len, size_t body_max, struct fcsim_http_req *req,
                     struct ha_err *err)
{
        memset(req, 0, sizeof *req);
        size_t head_len = 0;
        const char *end = find_head_end(data, len, &head_len);
        if (!end) {
                if (len > FCSIM_HTTP_HEAD_MAX)
                        return ha_err_set(err, -EMSGSIZE, "Request headers are too large.");
                return 0;
        }
        if (head_len > FCSIM_HTTP_HEAD_MAX)
                return ha_err_set(err, -EMSGSIZE, "Request headers are too large.");

        const char *line = data, *head_end = data + head_len;
        const char *nl = memchr(line, '\n', (size_t)(head_end - line));
        const char *le = nl;
        if (le > line && le[-1] == '\r')
                le--;
        bool http10 = false;
        int r = parse_request_line(line, le, req, &http10, err);
        if (r < 0)
                return r;
        req->keep_alive = !http10;

        bool have_cl = false;
        unsigned n_headers = 0;
        for (line = nl + 1; line < head_end; line = nl + 1) {
                nl = memchr(line, '\n', (size_t)(head_end - line));
                le = nl;
                if (le > line && le[-1] == '\r')
                        le--;
                if (le == line)
                        break; /* the empty line ending the head */
                if (++n_headers > FCSIM_HTTP_HEADERS_MAX)
                        return ha_err_set(err, -EMSGSIZE, "Too many request headers.");
                const char *colon = memchr(line, ':', (size_t)(le - line));
                if (!colon || colon == line)
                        return ha_err_set(err, -EINVAL, "Invalid header.");
                const char *ns = line, *ne = colon, *vs = colon + 1, *ve = le;
                if (ne[-1] == ' ' || ne[-1] == '\t')
                        return ha_err_set(err, -EINVAL, "Invalid header.");
                trim(&vs, &ve);
                if (span_ieq(ns, ne, "Content-Length")) {
                        size_t cl = 0;
                        r = parse_content_length(vs, ve, body_max, &cl, err);
                        if (r < 0)
                                return r;
                        if (have_cl && cl != req->content_length)
                                return ha_err_set(err, -EINVAL,
                                                  "Conflicting Content-Length headers.");
                        have_cl = true;
                        req->content_length = cl;
                } else if (span_ieq(ns, ne, "Transfer-Encoding")) {
                        if (!span_ieq(vs, ve, "identity"))
                                return ha_err_set(err, -ENOTSUP,
                                                  "Invalid header. Reason: Transfer-Encoding is "
                                                  "not supported.");
                } else if (span_ieq(ns, ne, "Connection")) {
                        if (span_ieq(vs, ve, "close"))
                                req->keep_alive = false;
                        else if (span_ieq(vs, ve, "keep-alive"))
                                req->keep_alive = true;
                } else if (span_ieq(ns, ne, "Expect")) {
                        if (span_ieq(vs, ve, "100-continue"))
                                req->expect_continue = true;
                }
        }

        req->head_complete = true;
        req->head_len = head_len;
        size_t total;
        if (__builtin_add_overflow(head_len, req->content_length, &total))
                return ha_err_set(err, -EMSGSIZE, "Request is too large.");
        if (len < total)
                return 0;
        if (req->content_length > 0) {
                req->body = data + head_len;
                req->body_len = req->content_length;
        }
        return (int)total;
}

static const char *reason(int status)
{
        switch (status) {
        case 100: return "Continue";
        case 200: return "OK";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 413: return "Payload Too Large";
        case 500: return "Internal Server Error";
        default: return "";
        }
}

int fcsim_http_format(struct ha_buf *out, int status, const char *body, size_t body_len,
                      bool keep_alive)
{
        int r = ha_buf_printf(out,
                              "HTTP/1.1 %d %s\r\nServer: Firecracker API\r\nConnection: %s\r\n",
                              status, reason(status), keep_alive ? "keep-alive" : "close");
        if (r < 0)
                return r;
        if (body) {
                r = ha_buf_printf(out,
                                  "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                                  body_len);
                if (r < 0)
                        return r;
                return ha_buf_append(out, body, body_len);
        }
        if (status != 204)
                return ha_buf_printf(out, "Content-Length: 0\r\n\r\n");
        return ha_buf_append(out, "\r\n", 2);
}

int fcsim_http_fault_body(struct ha_buf *out, const char *msg)
{
        int r = ha_buf_append(out, "{\"fault_message\":\"", 18);
        for (const unsigned char *p = (const unsigned char *)msg; r == 0 && *p; p++) {
                if (*p == '"' || *p == '\\') {
                        char esc[2] = { '\\', (char)*p };
                        r = ha_buf_append(out, esc, 2);
                } else if (*p < 0x20) {
                        r = ha_buf_printf(out, "\\u%04x", *p);
                } else {
                        r = ha_buf_append(out, p, 1);
                }
        }
        if (r == 0)
                r = ha_buf_append(out, "\"}", 2);
        return r;
}
