/*
 * json.c - see json.h. The reader is a bounded recursive-descent scanner
 * that validates only as much as it walks; nesting is capped so a hostile
 * or broken VMM response cannot exhaust the stack.
 */
#include "vm/json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Deepest nesting the reader skips over; Firecracker errors are flat. */
#define READ_DEPTH_MAX 32
/* Member names longer than this never match (ours are short). */
#define KEY_MAX 128

void vm_json_init(struct vm_json *j, struct ha_buf *buf)
{
        memset(j, 0, sizeof *j);
        j->buf = buf;
}

static void put(struct vm_json *j, const char *s, size_t n)
{
        if (j->err == 0)
                j->err = ha_buf_append(j->buf, s, n);
}

static void put_escaped(struct vm_json *j, const char *s)
{
        put(j, "\"", 1);
        const char *run = s;
        for (const char *p = s; *p; p++) {
                unsigned char c = (unsigned char)*p;
                const char *esc = NULL;
                char u[8];
                switch (c) {
                case '"': esc = "\\\""; break;
                case '\\': esc = "\\\\"; break;
                case '\n': esc = "\\n"; break;
                case '\r': esc = "\\r"; break;
                case '\t': esc = "\\t"; break;
                case '\b': esc = "\\b"; break;
                case '\f': esc = "\\f"; break;
                default:
                        if (c < 0x20) {
                                snprintf(u, sizeof u, "\\u%04x", c);
                                esc = u;
                        }
                }
                if (esc) {
                        put(j, run, (size_t)(p - run));
                        put(j, esc, strlen(esc));
                        run = p + 1;
                }
        }
        put(j, run, strlen(run));
        put(j, "\"", 1);
}

/* Comma and "key": before a value at the current level. */
static void member(struct vm_json *j, const char *key)
{
        if (j->depth > 0) {
                if (j->need_comma[j->depth - 1])
                        put(j, ",", 1);
                j->need_comma[j->depth - 1] = true;
        }
        if (key) {
                put_escaped(j, key);
                put(j, ":", 1);
        }
}

static void open_level(struct vm_json *j, const char *key, char c)
{
        member(j, key);
        if (j->depth >= VM_JSON_DEPTH_MAX) {
                if (j->err == 0)
                        j->err = -EINVAL;
                return;
        }
        put(j, &c, 1);
        j->need_comma[j->depth++] = false;
}

static void close_level(struct vm_json *j, char c)
{
        if (j->depth <= 0) {
                if (j->err == 0)
                        j->err = -EINVAL;
                return;
        }
        j->depth--;
        put(j, &c, 1);
}

void vm_json_object_begin(struct vm_json *j, const char *key) { open_level(j, key, '{'); }
void vm_json_object_end(struct vm_json *j) { close_level(j, '}'); }
void vm_json_array_begin(struct vm_json *j, const char *key) { open_level(j, key, '['); }
void vm_json_array_end(struct vm_json *j) { close_level(j, ']'); }

void vm_json_string(struct vm_json *j, const char *key, const char *val)
{
        member(j, key);
        put_escaped(j, val ? val : "");
}

void vm_json_uint(struct vm_json *j, const char *key, uint64_t val)
{
        char n[24];
        int len = snprintf(n, sizeof n, "%llu", (unsigned long long)val);
        member(j, key);
        put(j, n, (size_t)len);
}

void vm_json_bool(struct vm_json *j, const char *key, bool val)
{
        member(j, key);
        put(j, val ? "true" : "false", val ? 4 : 5);
}

int vm_json_finish(struct vm_json *j)
{
        if (j->err == 0 && j->depth != 0)
                j->err = -EINVAL;
        return j->err;
}

/* ---- reader ---- */

struct scan {
        const char *p;
        const char *end;
};

static void skip_ws(struct scan *s)
{
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
                s->p++;
}

static int hex4(struct scan *s, unsigned *ret)
{
        if (s->end - s->p < 4)
                return -EINVAL;
        unsigned v = 0;
        for (int i = 0; i < 4; i++) {
                char c = *s->p++;
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (unsigned)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (unsigned)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (unsigned)(c - 'A' + 10);
                else
                        return -EINVAL;
        }
        *ret = v;
        return 0;
}

struct out {
        char *p;
        size_t size;
        size_t len;
};

static void out_put(struct out *o, const char *b, size_t n)
{
        if (!o->p || o->size == 0)
                return;
        for (size_t i = 0; i < n && o->len + 1 < o->size; i++)
                o->p[o->len++] = b[i];
        o->p[o->len] = '\0';
}

static void out_utf8(struct out *o, unsigned cp)
{
        char b[4];
        size_t n;
        if (cp < 0x80) {
                b[0] = (char)cp;
                n = 1;
        } else if (cp < 0x800) {
                b[0] = (char)(0xc0 | (cp >> 6));
                b[1] = (char)(0x80 | (cp & 0x3f));
                n = 2;
        } else if (cp < 0x10000) {
                b[0] = (char)(0xe0 | (cp >> 12));
                b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                b[2] = (char)(0x80 | (cp & 0x3f));
                n = 3;
        } else {
                b[0] = (char)(0xf0 | (cp >> 18));
                b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
                b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
                b[3] = (char)(0x80 | (cp & 0x3f));
                n = 4;
        }
        out_put(o, b, n);
}

/* Parses a string at s->p (which must be '"'), writing it unescaped into
 * |o| (may have a NULL buffer to just skip). */
static int parse_string(struct scan *s, struct out *o)
{
        if (s->p >= s->end || *s->p != '"')
                return -EINVAL;
        s->p++;
        while (s->p < s->end) {
                char c = *s->p++;
                if (c == '"')
                        return 0;
                if ((unsigned char)c < 0x20)
                        return -EINVAL;
                if (c != '\\') {
                        out_put(o, &c, 1);
                        continue;
                }
                if (s->p >= s->end)
                        return -EINVAL;
                char e = *s->p++;
                switch (e) {
                case '"': case '\\': case '/': out_put(o, &e, 1); break;
                case 'b': out_put(o, "\b", 1); break;
                case 'f': out_put(o, "\f", 1); break;
                case 'n': out_put(o, "\n", 1); break;
                case 'r': out_put(o, "\r", 1); break;
                case 't': out_put(o, "\t", 1); break;
                case 'u': {
                        unsigned cp, lo;
                        if (hex4(s, &cp) < 0)
                                return -EINVAL;
                        if (cp >= 0xd800 && cp < 0xdc00) {
                                if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
                                        return -EINVAL;
                                s->p += 2;
                                if (hex4(s, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                                        return -EINVAL;
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                                return -EINVAL;
                        }
                        out_utf8(o, cp);
                        break;
                }
                default:
                        return -EINVAL;
                }
        }
        return -EINVAL;
}

static int skip_value(struct scan *s, int depth)
{
        if (depth > READ_DEPTH_MAX)
                return -EINVAL;
        skip_ws(s);
        if (s->p >= s->end)
                return -EINVAL;
        struct out none = { 0 };
        char c = *s->p;
        if (c == '"')
                return parse_string(s, &none);
        if (c == '{' || c == '[') {
                char close = c == '{' ? '}' : ']';
                s->p++;
                skip_ws(s);
                if (s->p < s->end && *s->p == close) {
                        s->p++;
                        return 0;
                }
                for (;;) {
                        if (c == '{') {
                                skip_ws(s);
                                if (parse_string(s, &none) < 0)
                                        return -EINVAL;
                                skip_ws(s);
                                if (s->p >= s->end || *s->p++ != ':')
                                        return -EINVAL;
                        }
                        if (skip_value(s, depth + 1) < 0)
                                return -EINVAL;
                        skip_ws(s);
                        if (s->p >= s->end)
                                return -EINVAL;
                        char d = *s->p++;
                        if (d == close)
                                return 0;
                        if (d != ',')
                                return -EINVAL;
                }
        }
        /* number, true, false, null */
        const char *start = s->p;
        while (s->p < s->end && ((*s->p >= '0' && *s->p <= '9') || (*s->p >= 'a' && *s->p <= 'z') ||
                                 *s->p == '-' || *s->p == '+' || *s->p == '.' || *s->p == 'E'))
                s->p++;
        return s->p > start ? 0 : -EINVAL;
}

int vm_json_get_string(const char *json, size_t len, const char *key, char *out, size_t size)
{
        struct scan s = { json, json + len };
        if (out && size)
                out[0] = '\0';
        skip_ws(&s);
        if (s.p >= s.end || *s.p++ != '{')
                return -EINVAL;
        skip_ws(&s);
        if (s.p < s.end && *s.p == '}')
                return -ENOENT;
        for (;;) {
                char name[KEY_MAX];
                struct out k = { name, sizeof name, 0 };
                skip_ws(&s);
                if (parse_string(&s, &k) < 0)
                        return -EINVAL;
                skip_ws(&s);
                if (s.p >= s.end || *s.p++ != ':')
                        return -EINVAL;
                skip_ws(&s);
                if (strcmp(name, key) == 0 && k.len < sizeof name - 1) {
                        if (s.p >= s.end || *s.p != '"')
                                return skip_value(&s, 1) < 0 ? -EINVAL : -ENOENT;
                        struct out o = { out, size, 0 };
                        return parse_string(&s, &o);
                }
                if (skip_value(&s, 1) < 0)
                        return -EINVAL;
                skip_ws(&s);
                if (s.p >= s.end)
                        return -EINVAL;
                char d = *s.p++;
                if (d == '}')
                        return -ENOENT;
                if (d != ',')
                        return -EINVAL;
        }
}
