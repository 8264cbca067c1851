/*
 * json_lex.c - see json_lex.h.
 *
 * Strings take a fast path that scans plain bytes and validates UTF-8 in
 * place; only a backslash switches to copying into the scratch buffer. The
 * scratch buffer's limit comes from the caller (the input limit), and an
 * unescaped string is never longer than its escaped form, so it cannot be
 * exceeded by a valid input.
 */
#include "rpc/json_lex.h"

#include <errno.h>
#include <string.h>

#include "core/buf.h"

void rpc_jlex_init(struct rpc_jlex *lx, const uint8_t *data, size_t len)
{
        lx->start = lx->p = data;
        lx->end = data + len;
        lx->why = NULL;
        lx->err_off = 0;
}

int rpc_jlex_fail(struct rpc_jlex *lx, const char *why)
{
        lx->why = why;
        lx->err_off = (size_t)(lx->p - lx->start);
        return -EINVAL;
}

int rpc_jlex_peek(struct rpc_jlex *lx)
{
        while (lx->p < lx->end) {
                uint8_t c = *lx->p;
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
                        return c;
                lx->p++;
        }
        return -1;
}

bool rpc_jlex_accept(struct rpc_jlex *lx, char c)
{
        if (rpc_jlex_peek(lx) == (uint8_t)c) {
                lx->p++;
                return true;
        }
        return false;
}

int rpc_jlex_expect(struct rpc_jlex *lx, char c, const char *why)
{
        return rpc_jlex_accept(lx, c) ? 0 : rpc_jlex_fail(lx, why);
}

size_t rpc_jlex_utf8_len(const uint8_t *p, size_t n)
{
        uint8_t c = p[0];
        if (c < 0x80)
                return 1;
        if (c < 0xc2)                           /* continuation or overlong */
                return 0;
        if (c < 0xe0) {
                if (n < 2 || (p[1] & 0xc0) != 0x80)
                        return 0;
                return 2;
        }
        if (c < 0xf0) {
                if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
                        return 0;
                if (c == 0xe0 && p[1] < 0xa0)   /* overlong */
                        return 0;
                if (c == 0xed && p[1] >= 0xa0)  /* UTF-16 surrogates */
                        return 0;
                return 3;
        }
        if (c < 0xf5) {
                if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
                    (p[3] & 0xc0) != 0x80)
                        return 0;
                if (c == 0xf0 && p[1] < 0x90)   /* overlong */
                        return 0;
                if (c == 0xf4 && p[1] >= 0x90)  /* above U+10FFFF */
                        return 0;
                return 4;
        }
        return 0;
}

/* A scratch-buffer append failed: -ENOMEM passes through (the caller
 * reports it as such); hitting the limit is the input's fault. */
static int buf_fail(struct rpc_jlex *lx, int r)
{
        return r == -ENOMEM ? r : rpc_jlex_fail(lx, "string too long");
}

static int hex4(struct rpc_jlex *lx, uint32_t *ret)
{
        uint32_t v = 0;
        if (lx->end - lx->p < 4)
                return rpc_jlex_fail(lx, "truncated \\u escape");
        for (int i = 0; i < 4; i++) {
                uint8_t c = *lx->p++;
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t)(c - 'A' + 10);
                else
                        return rpc_jlex_fail(lx, "invalid \\u escape");
        }
        *ret = v;
        return 0;
}

static int put_utf8(struct ha_buf *b, uint32_t cp)
{
        uint8_t u[4];
        size_t n;
        if (cp < 0x80) {
                u[0] = (uint8_t)cp;
                n = 1;
        } else if (cp < 0x800) {
                u[0] = (uint8_t)(0xc0 | (cp >> 6));
                u[1] = (uint8_t)(0x80 | (cp & 0x3f));
                n = 2;
        } else if (cp < 0x10000) {
                u[0] = (uint8_t)(0xe0 | (cp >> 12));
                u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                u[2] = (uint8_t)(0x80 | (cp & 0x3f));
                n = 3;
        } else {
                u[0] = (uint8_t)(0xf0 | (cp >> 18));
                u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
                u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                u[3] = (uint8_t)(0x80 | (cp & 0x3f));
                n = 4;
        }
        return ha_buf_append(b, u, n);
}

/* After a backslash: decodes one escape into |b|. */
static int unescape(struct rpc_jlex *lx, struct ha_buf *b)
{
        if (lx->p >= lx->end)
                return rpc_jlex_fail(lx, "unterminated string");
        uint8_t c = *lx->p++, o;
        switch (c) {
        case '"': o = '"'; break;
        case '\\': o = '\\'; break;
        case '/': o = '/'; break;
        case 'b': o = '\b'; break;
        case 'f': o = '\f'; break;
        case 'n': o = '\n'; break;
        case 'r': o = '\r'; break;
        case 't': o = '\t'; break;
        case 'u': {
                uint32_t cp, lo;
                int r = hex4(lx, &cp);
                if (r < 0)
                        return r;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                        return rpc_jlex_fail(lx, "lone low surrogate in \\u escape");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                        if (lx->end - lx->p < 2 || lx->p[0] != '\\' || lx->p[1] != 'u')
                                return rpc_jlex_fail(lx, "high surrogate not followed by a low one");
                        lx->p += 2;
                        if ((r = hex4(lx, &lo)) < 0)
                                return r;
                        if (lo < 0xdc00 || lo > 0xdfff)
                                return rpc_jlex_fail(lx, "high surrogate not followed by a low one");
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                r = put_utf8(b, cp);
                return r < 0 ? buf_fail(lx, r) : 0;
        }
        default:
                lx->p--;
                return rpc_jlex_fail(lx, "invalid escape in string");
        }
        int r = ha_buf_append(b, &o, 1);
        return r < 0 ? buf_fail(lx, r) : 0;
}

int rpc_jlex_string(struct rpc_jlex *lx, struct ha_buf *scratch, const char **ret,
                    size_t *ret_len)
{
        if (rpc_jlex_peek(lx) != '"')
                return rpc_jlex_fail(lx, "expected a string");
        const uint8_t *s = ++lx->p;
        bool copying = false;
        for (;;) {
                const uint8_t *run = lx->p;
                while (lx->p < lx->end && *lx->p >= 0x20 && *lx->p < 0x80 && *lx->p != '"' &&
                       *lx->p != '\\')
                        lx->p++;
                int r;
                if (copying && lx->p > run &&
                    (r = ha_buf_append(scratch, run, (size_t)(lx->p - run))) < 0)
                        return buf_fail(lx, r);
                if (lx->p >= lx->end)
                        return rpc_jlex_fail(lx, "unterminated string");
                uint8_t c = *lx->p;
                if (c == '"') {
                        if (copying) {
                                *ret = (const char *)scratch->data;
                                *ret_len = scratch->len;
                        } else {
                                *ret = (const char *)s;
                                *ret_len = (size_t)(lx->p - s);
                        }
                        lx->p++;
                        return 0;
                }
                if (c < 0x20)
                        return rpc_jlex_fail(lx, "control character in string");
                if (c == '\\') {
                        if (!copying) {
                                ha_buf_reset(scratch);
                                if ((r = ha_buf_append(scratch, s, (size_t)(lx->p - s))) < 0)
                                        return buf_fail(lx, r);
                                copying = true;
                        }
                        lx->p++;
                        r = unescape(lx, scratch);
                        if (r < 0)
                                return r;
                        continue;
                }
                size_t n = rpc_jlex_utf8_len(lx->p, (size_t)(lx->end - lx->p));
                if (n == 0)
                        return rpc_jlex_fail(lx, "invalid UTF-8 in string");
                if (copying && (r = ha_buf_append(scratch, lx->p, n)) < 0)
                        return buf_fail(lx, r);
                lx->p += n;
        }
}

/* Length of the number token at s[0..n), or 0 when none starts there. */
static size_t number_len(const uint8_t *s, size_t n)
{
        size_t i = 0;
        if (i < n && s[i] == '-')
                i++;
        if (i < n && s[i] == '0') {
                i++;
        } else if (i < n && s[i] >= '1' && s[i] <= '9') {
                while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
        } else {
                return 0;
        }
        if (i < n && s[i] == '.') {
                size_t d = ++i;
                while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
                if (i == d)
                        return 0;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                        i++;
                size_t d = i;
                while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
                if (i == d)
                        return 0;
        }
        return i;
}

static bool is_delim(const uint8_t *p, const uint8_t *end)
{
        if (p >= end)
                return true;
        switch (*p) {
        case ',': case '}': case ']': case ' ': case '\t': case '\n': case '\r': case ':':
                return true;
        default:
                return false;
        }
}

int rpc_jlex_number(struct rpc_jlex *lx, const char **ret, size_t *ret_len)
{
        rpc_jlex_peek(lx);
        size_t n = number_len(lx->p, (size_t)(lx->end - lx->p));
        if (n == 0 || !is_delim(lx->p + n, lx->end))
                return rpc_jlex_fail(lx, "invalid number");
        *ret = (const char *)lx->p;
        *ret_len = n;
        lx->p += n;
        return 0;
}

bool rpc_jlex_is_number(const char *s, size_t n)
{
        return n > 0 && number_len((const uint8_t *)s, n) == n;
}

int rpc_jlex_literal(struct rpc_jlex *lx, const char *word)
{
        size_t n = strlen(word);
        rpc_jlex_peek(lx);
        if ((size_t)(lx->end - lx->p) < n || memcmp(lx->p, word, n) != 0 ||
            !is_delim(lx->p + n, lx->end))
                return rpc_jlex_fail(lx, "invalid literal");
        lx->p += n;
        return 0;
}

int rpc_jlex_skip(struct rpc_jlex *lx, struct ha_buf *scratch, unsigned depth)
{
        const char *s;
        size_t n;
        int r, c = rpc_jlex_peek(lx);

        switch (c) {
        case '"':
                return rpc_jlex_string(lx, scratch, &s, &n);
        case 't':
                return rpc_jlex_literal(lx, "true");
        case 'f':
                return rpc_jlex_literal(lx, "false");
        case 'n':
                return rpc_jlex_literal(lx, "null");
        case '{':
        case '[':
                if (depth == 0)
                        return rpc_jlex_fail(lx, "nesting too deep");
                lx->p++;
                if (rpc_jlex_accept(lx, c == '{' ? '}' : ']'))
                        return 0;
                do {
                        if (c == '{') {
                                if ((r = rpc_jlex_string(lx, scratch, &s, &n)) < 0)
                                        return r;
                                if ((r = rpc_jlex_expect(lx, ':', "expected ':'")) < 0)
                                        return r;
                        }
                        if ((r = rpc_jlex_skip(lx, scratch, depth - 1)) < 0)
                                return r;
                } while (rpc_jlex_accept(lx, ','));
                return rpc_jlex_expect(lx, c == '{' ? '}' : ']',
                                       c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        case -1:
                return rpc_jlex_fail(lx, "unexpected end of input");
        default:
                return rpc_jlex_number(lx, &s, &n);
        }
}
