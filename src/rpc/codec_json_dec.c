/*
 * codec_json_dec.c - protobuf JSON to a protobuf-c message
 * (rpc_json_decode(), contract in codec_json.h).
 *
 * A recursive-descent parser that writes straight into the protobuf-c
 * structs, without an intermediate DOM. Ownership invariant: every
 * allocation is linked into the message tree before anything else can
 * fail (a sub-message pointer is stored, its oneof case set and a repeated
 * count bumped before the sub-message is parsed), so on any error one
 * protobuf_c_message_free_unpacked() of the root releases everything.
 * Allocation mirrors what protobuf-c's unpack does and its free expects:
 * malloc for the struct, each string (empty ones too, inside repeated
 * fields), each bytes payload, each repeated array and each map entry.
 *
 * Error messages carry a path of proto field names ("egress.mode",
 * "command[2]", "metadata[\"k\"]") so a client can act on them.
 */
#include "rpc/codec_json.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "rpc/codec_json_int.h"
#include "rpc/json_lex.h"
#include "rpc/json_text.h"

/* Longest enum name or number text we copy to a stack buffer; longer is
 * refused (no enum is named like that, no float needs that many digits). */
#define DEC_TOKEN_MAX 512

struct dec {
        struct rpc_jlex lx;
        const rpc_descset *ds;
        bool ignore_unknown;
        unsigned depth;
        struct ha_buf scratch;          /* unescaped strings */
        struct ha_err *err;
        size_t path_len;
        char path[200];
};

/* The value returned by value parsers for "nothing to store" (an unknown
 * enum name skipped under ignore_unknown). */
#define DEC_SKIP 1

static int fail(struct dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct dec *d, const char *fmt, ...)
{
        char msg[HA_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (d->path_len)
                return ha_err_set(d->err, -EINVAL, "field \"%s\": %s", d->path, msg);
        return ha_err_set(d->err, -EINVAL, "%s", msg);
}

/* Turns a lexer error into a message; passes other codes through. */
static int lex_fail(struct dec *d, int r)
{
        if (r != -EINVAL)
                return r;
        return fail(d, "invalid JSON at offset %zu: %s", d->lx.err_off, d->lx.why);
}

/* Room for client text quoted in a message: SAFE_MAX bytes plus "...". */
#define SAFE_MAX 64
#define SAFE_BUF (SAFE_MAX + 4)

/* Client-supplied text made fit for an error message (which reaches logs
 * and headers): at most SAFE_MAX bytes cut on a UTF-8 boundary, with
 * control characters, quotes and backslashes shown as '?'. */
static const char *safe(const char *s, size_t n, char buf[SAFE_BUF])
{
        const uint8_t *p = (const uint8_t *)s, *end = p + n;
        size_t o = 0;
        while (p < end) {
                size_t l = rpc_jlex_utf8_len(p, (size_t)(end - p));
                if (l == 0)
                        l = 1;
                if (o + l > SAFE_MAX) {
                        memcpy(buf + o, "...", 3);
                        o += 3;
                        break;
                }
                if (l == 1 && (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\' || *p >= 0x80))
                        buf[o++] = '?';
                else
                        memcpy(buf + o, p, l), o += l;
                p += l;
        }
        buf[o] = '\0';
        return buf;
}

static void path_append(struct dec *d, const char *s, size_t n)
{
        size_t room = sizeof d->path - 1 - d->path_len;
        if (n > room)
                n = room;
        memcpy(d->path + d->path_len, s, n);
        d->path_len += n;
        d->path[d->path_len] = '\0';
}

static size_t path_push_field(struct dec *d, const char *name)
{
        size_t old = d->path_len;
        if (old)
                path_append(d, ".", 1);
        path_append(d, name, strlen(name));
        return old;
}

static size_t path_push_index(struct dec *d, size_t i)
{
        char b[32];
        size_t old = d->path_len;
        int n = snprintf(b, sizeof b, "[%zu]", i);
        path_append(d, b, (size_t)n);
        return old;
}

static size_t path_push_key(struct dec *d, const char *k, size_t n)
{
        char b[SAFE_BUF];
        size_t old = d->path_len;
        safe(k, n, b);
        path_append(d, "[\"", 2);
        path_append(d, b, strlen(b));
        path_append(d, "\"]", 2);
        return old;
}

static void path_pop(struct dec *d, size_t old)
{
        d->path_len = old;
        d->path[old] = '\0';
}

static const char *kind_of(int c)
{
        switch (c) {
        case '"': return "a string";
        case '{': return "an object";
        case '[': return "an array";
        case 't': case 'f': return "a boolean";
        case 'n': return "null";
        case -1: return "the end of input";
        default: return "a number";
        }
}

static bool is_value_start(int c)
{
        return c == '"' || c == '{' || c == '[' || c == 't' || c == 'f' || c == 'n' ||
               c == '-' || (c >= '0' && c <= '9');
}

/* The next value is not what field needs: a type error naming both, or
 * a syntax error when no value starts there at all. */
static int want(struct dec *d, const char *what)
{
        int c = rpc_jlex_peek(&d->lx);
        if (!is_value_start(c))
                return lex_fail(d, rpc_jlex_fail(&d->lx, c < 0 ? "unexpected end of input"
                                                               : "unexpected character"));
        return fail(d, "expected %s, got %s", what, kind_of(c));
}

static const char *type_name(const ProtobufCFieldDescriptor *f)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32: return "int32";
        case PROTOBUF_C_TYPE_SINT32: return "sint32";
        case PROTOBUF_C_TYPE_SFIXED32: return "sfixed32";
        case PROTOBUF_C_TYPE_INT64: return "int64";
        case PROTOBUF_C_TYPE_SINT64: return "sint64";
        case PROTOBUF_C_TYPE_SFIXED64: return "sfixed64";
        case PROTOBUF_C_TYPE_UINT32: return "uint32";
        case PROTOBUF_C_TYPE_FIXED32: return "fixed32";
        case PROTOBUF_C_TYPE_UINT64: return "uint64";
        case PROTOBUF_C_TYPE_FIXED64: return "fixed64";
        case PROTOBUF_C_TYPE_FLOAT: return "float";
        case PROTOBUF_C_TYPE_DOUBLE: return "double";
        case PROTOBUF_C_TYPE_BOOL: return "bool";
        case PROTOBUF_C_TYPE_ENUM: return "enum";
        case PROTOBUF_C_TYPE_STRING: return "string";
        case PROTOBUF_C_TYPE_BYTES: return "bytes";
        case PROTOBUF_C_TYPE_MESSAGE: return "message";
        }
        return "?";
}

static int enter(struct dec *d)
{
        if (++d->depth > RPC_JSON_MAX_DEPTH)
                return fail(d, "nesting deeper than %d levels", RPC_JSON_MAX_DEPTH);
        return 0;
}

static ProtobufCMessage *msg_new(const ProtobufCMessageDescriptor *md)
{
        ProtobufCMessage *m = malloc(md->sizeof_message);
        if (!m)
                return NULL;
        if (md->message_init) {
                protobuf_c_message_init(md, m);
        } else {                        /* hand-built descriptors may lack one */
                memset(m, 0, md->sizeof_message);
                m->descriptor = md;
        }
        return m;
}

/* The text of a number given as a JSON number or a JSON string. */
static int number_text(struct dec *d, const ProtobufCFieldDescriptor *f, const char **s,
                       size_t *n, bool *quoted)
{
        int c = rpc_jlex_peek(&d->lx), r;
        if (c == '"') {
                if ((r = rpc_jlex_string(&d->lx, &d->scratch, s, n)) < 0)
                        return lex_fail(d, r);
                *quoted = true;
                return 0;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
                *quoted = false;
                return (r = rpc_jlex_number(&d->lx, s, n)) < 0 ? lex_fail(d, r) : 0;
        }
        return want(d, type_name(f));
}

static int dec_int(struct dec *d, const ProtobufCFieldDescriptor *f, void *dst)
{
        const char *s = "";
        size_t n = 0;
        bool quoted = false, neg;
        uint64_t mag;
        int r = number_text(d, f, &s, &n, &quoted);
        if (r < 0)
                return r;
        int show = n > 40 ? 40 : (int)n;
        char sb[SAFE_BUF];
        if (quoted && !rpc_jlex_is_number(s, n))
                return fail(d, "\"%s\" is not a valid %s", safe(s, n, sb), type_name(f));
        r = rpc_jtext_parse_integer(s, n, &neg, &mag);
        if (r == -EINVAL)
                return fail(d, "%.*s is not an integer", show, s);
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_ENUM:
                if (r < 0 || mag > (neg ? 2147483648u : 2147483647u))
                        break;
                *(int32_t *)dst = neg ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
                return 0;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                if (r < 0 || (neg && mag) || mag > UINT32_MAX)
                        break;
                *(uint32_t *)dst = (uint32_t)mag;
                return 0;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
                if (r < 0 || mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
                        break;
                *(int64_t *)dst = neg ? (int64_t)(0 - mag) : (int64_t)mag;
                return 0;
        default:                        /* UINT64, FIXED64 */
                if (r < 0 || (neg && mag))
                        break;
                *(uint64_t *)dst = mag;
                return 0;
        }
        return fail(d, "%.*s is out of range for %s", show, s, type_name(f));
}

static int dec_float(struct dec *d, const ProtobufCFieldDescriptor *f, void *dst)
{
        const char *s = "";
        size_t n = 0;
        bool quoted = false;
        double v;
        int r = number_text(d, f, &s, &n, &quoted);
        if (r < 0)
                return r;
        int show = n > 40 ? 40 : (int)n;
        char sb[SAFE_BUF];
        if (quoted && n == 3 && memcmp(s, "NaN", 3) == 0) {
                v = NAN;
        } else if (quoted && n == 8 && memcmp(s, "Infinity", 8) == 0) {
                v = INFINITY;
        } else if (quoted && n == 9 && memcmp(s, "-Infinity", 9) == 0) {
                v = -INFINITY;
        } else {
                char buf[DEC_TOKEN_MAX];
                if (quoted && !rpc_jlex_is_number(s, n))
                        return fail(d, "\"%s\" is not a valid %s", safe(s, n, sb), type_name(f));
                if (n >= sizeof buf)
                        return fail(d, "number too long for %s", type_name(f));
                memcpy(buf, s, n);
                buf[n] = '\0';
                errno = 0;
                v = strtod(buf, NULL);
                if ((errno == ERANGE && isinf(v)) ||
                    (f->type == PROTOBUF_C_TYPE_FLOAT && isfinite(v) && fabs(v) > FLT_MAX))
                        return fail(d, "%.*s is out of range for %s", show, s, type_name(f));
        }
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
                *(float *)dst = (float)v;
        else
                *(double *)dst = v;
        return 0;
}

static int dec_enum(struct dec *d, const ProtobufCFieldDescriptor *f, void *dst)
{
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        int c = rpc_jlex_peek(&d->lx), r;
        if (c != '"')
                return dec_int(d, f, dst);      /* open enums: any int32 */
        const char *s;
        size_t n;
        char name[DEC_TOKEN_MAX], sb[SAFE_BUF];
        if ((r = rpc_jlex_string(&d->lx, &d->scratch, &s, &n)) < 0)
                return lex_fail(d, r);
        const ProtobufCEnumValue *ev = NULL;
        if (n < sizeof name && !memchr(s, 0, n)) {
                memcpy(name, s, n);
                name[n] = '\0';
                ev = protobuf_c_enum_descriptor_get_value_by_name(ed, name);
        }
        if (!ev && rpc_jlex_is_number(s, n)) {
                /* A number in a string ("5"), as other parsers accept. */
                bool neg;
                uint64_t mag;
                int show = n > 40 ? 40 : (int)n;
                r = rpc_jtext_parse_integer(s, n, &neg, &mag);
                if (r == -EINVAL)
                        return fail(d, "%.*s is not an integer", show, s);
                if (r < 0 || mag > (neg ? 2147483648u : 2147483647u))
                        return fail(d, "%.*s is out of range for enum", show, s);
                *(int *)dst = neg ? (int)(-(int64_t)mag) : (int)mag;
                return 0;
        }
        if (!ev) {
                if (d->ignore_unknown)
                        return DEC_SKIP;
                return fail(d, "unknown value \"%s\" for enum %s", safe(s, n, sb), ed->name);
        }
        *(int *)dst = ev->value;
        return 0;
}

static int dec_string(struct dec *d, char **dst)
{
        const char *s;
        size_t n;
        int r;
        if (rpc_jlex_peek(&d->lx) != '"')
                return want(d, "string");
        if ((r = rpc_jlex_string(&d->lx, &d->scratch, &s, &n)) < 0)
                return lex_fail(d, r);
        /* protobuf-c strings are NUL-terminated: a NUL inside would silently
         * cut the value, so it is refused. */
        if (memchr(s, 0, n))
                return fail(d, "string contains a NUL character");
        char *p = malloc(n + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p, s, n);
        p[n] = '\0';
        *dst = p;
        return 0;
}

static int dec_bytes(struct dec *d, ProtobufCBinaryData *dst)
{
        const char *s;
        size_t n, len;
        int r;
        if (rpc_jlex_peek(&d->lx) != '"')
                return want(d, "base64 string");
        if ((r = rpc_jlex_string(&d->lx, &d->scratch, &s, &n)) < 0)
                return lex_fail(d, r);
        if (n == 0) {
                dst->len = 0;
                dst->data = NULL;
                return 0;
        }
        uint8_t *p = malloc(n / 4 * 3 + 3);
        if (!p)
                return -ENOMEM;
        if (rpc_jtext_b64_decode(s, n, p, &len) < 0) {
                free(p);
                return fail(d, "invalid base64");
        }
        dst->len = len;
        dst->data = p;
        return 0;
}

static int dec_bool(struct dec *d, protobuf_c_boolean *dst)
{
        int c = rpc_jlex_peek(&d->lx), r;
        if (c == 't' || c == 'f') {
                if ((r = rpc_jlex_literal(&d->lx, c == 't' ? "true" : "false")) < 0)
                        return lex_fail(d, r);
                *dst = c == 't';
                return 0;
        }
        return want(d, "bool");
}

static int dec_message_value(struct dec *d, ProtobufCMessage *m);

/* One non-null value of field |f| into |dst| (a struct member or an array
 * slot). Messages are allocated and linked by the caller. */
static int dec_scalar(struct dec *d, const ProtobufCFieldDescriptor *f, void *dst)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_FLOAT:
        case PROTOBUF_C_TYPE_DOUBLE:
                return dec_float(d, f, dst);
        case PROTOBUF_C_TYPE_BOOL:
                return dec_bool(d, dst);
        case PROTOBUF_C_TYPE_ENUM:
                return dec_enum(d, f, dst);
        case PROTOBUF_C_TYPE_STRING:
                return dec_string(d, dst);
        case PROTOBUF_C_TYPE_BYTES:
                return dec_bytes(d, dst);
        case PROTOBUF_C_TYPE_MESSAGE:
                return -EINVAL;
        default:
                return dec_int(d, f, dst);
        }
}

/* Allocates a |md| message, links it at |*slot| and parses into it. */
static int dec_sub_message(struct dec *d, const ProtobufCMessageDescriptor *md,
                           ProtobufCMessage **slot)
{
        ProtobufCMessage *sub = msg_new(md);
        if (!sub)
                return -ENOMEM;
        *slot = sub;
        return dec_message_value(d, sub);
}

static int array_grow(void **arr, size_t n, size_t *cap, size_t sz)
{
        if (n < *cap)
                return 0;
        size_t nc = *cap ? *cap * 2 : 4;
        void *p = reallocarray(*arr, nc, sz);
        if (!p)
                return -ENOMEM;
        *arr = p;
        *cap = nc;
        return 0;
}

static int dec_array(struct dec *d, const ProtobufCFieldDescriptor *f, ProtobufCMessage *m)
{
        size_t *np = CJ_MEMBER(m, f->quantifier_offset);
        void **arr = CJ_MEMBER(m, f->offset);
        size_t cap = 0, sz = cj_value_size(f), idx = 0;
        int r, c = rpc_jlex_peek(&d->lx);

        if (c != '[')
                return want(d, "an array");
        d->lx.p++;
        if ((r = enter(d)) < 0)
                return r;
        if (!rpc_jlex_accept(&d->lx, ']')) {
                do {
                        size_t old = path_push_index(d, idx++);
                        if (rpc_jlex_peek(&d->lx) == 'n')
                                return fail(d, "null is not allowed in a repeated field");
                        if ((r = array_grow(arr, *np, &cap, sz)) < 0)
                                return r;
                        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                                ProtobufCMessage **slot = (ProtobufCMessage **)*arr + *np;
                                *slot = NULL;
                                (*np)++;
                                r = dec_sub_message(d, f->descriptor, slot);
                        } else {
                                r = dec_scalar(d, f, (char *)*arr + *np * sz);
                                if (r == 0)
                                        (*np)++;
                                else if (r == DEC_SKIP)
                                        r = 0;
                        }
                        if (r < 0)
                                return r;
                        path_pop(d, old);
                } while (rpc_jlex_accept(&d->lx, ','));
                if ((r = rpc_jlex_expect(&d->lx, ']', "expected ',' or ']'")) < 0)
                        return lex_fail(d, r);
        }
        d->depth--;
        return 0;
}

/* Map keys are JSON strings; non-string key types are converted. */
static int dec_map_key(struct dec *d, const ProtobufCFieldDescriptor *kf, const char *s,
                       size_t n, void *dst)
{
        if (kf->type == PROTOBUF_C_TYPE_STRING) {
                if (memchr(s, 0, n))
                        return fail(d, "map key contains a NUL character");
                char *p = malloc(n + 1);
                if (!p)
                        return -ENOMEM;
                memcpy(p, s, n);
                p[n] = '\0';
                *(char **)dst = p;
                return 0;
        }
        if (kf->type == PROTOBUF_C_TYPE_BOOL) {
                if (n == 4 && memcmp(s, "true", 4) == 0)
                        *(protobuf_c_boolean *)dst = 1;
                else if (n == 5 && memcmp(s, "false", 5) == 0)
                        *(protobuf_c_boolean *)dst = 0;
                else
                        return fail(d, "map key must be \"true\" or \"false\"");
                return 0;
        }
        /* Integer keys: reuse dec_int on the key text as a JSON string. */
        struct rpc_jlex saved = d->lx;
        struct rpc_jlex kl;
        char *q = malloc(n + 2);
        if (!q)
                return -ENOMEM;
        q[0] = '"';
        memcpy(q + 1, s, n);
        q[n + 1] = '"';
        if (memchr(s, '"', n) || memchr(s, '\\', n)) {
                free(q);
                return fail(d, "map key is not a valid %s", type_name(kf));
        }
        rpc_jlex_init(&kl, (const uint8_t *)q, n + 2);
        d->lx = kl;
        int r = dec_int(d, kf, dst);
        d->lx = saved;
        free(q);
        return r;
}

static int key_cmp(const void *a, const void *b, void *arg)
{
        const ProtobufCFieldDescriptor *kf = arg;
        const void *x = CJ_MEMBER(*(ProtobufCMessage *const *)a, kf->offset);
        const void *y = CJ_MEMBER(*(ProtobufCMessage *const *)b, kf->offset);
        switch (kf->type) {
        case PROTOBUF_C_TYPE_STRING:
                return strcmp(*(char *const *)x, *(char *const *)y);
        case PROTOBUF_C_TYPE_BOOL:
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                return memcmp(x, y, 4);
        default:
                return memcmp(x, y, 8);
        }
}

/* Duplicate keys are an error (as in protobuf's parsers); sorting a copy
 * keeps this O(n log n) for large maps and leaves the stored order alone. */
static int map_check_dups(struct dec *d, const ProtobufCFieldDescriptor *kf,
                          ProtobufCMessage **entries, size_t n)
{
        if (n < 2)
                return 0;
        ProtobufCMessage **v = malloc(n * sizeof *v);
        if (!v)
                return -ENOMEM;
        memcpy(v, entries, n * sizeof *v);
        qsort_r(v, n, sizeof *v, key_cmp, (void *)kf);
        int r = 0;
        char sb[SAFE_BUF];
        for (size_t i = 1; i < n && r == 0; i++) {
                if (key_cmp(&v[i - 1], &v[i], (void *)kf) != 0)
                        continue;
                if (kf->type == PROTOBUF_C_TYPE_STRING) {
                        const char *key = *(char **)CJ_MEMBER(v[i], kf->offset);
                        r = fail(d, "duplicate map key \"%s\"", safe(key, strlen(key), sb));
                } else {
                        r = fail(d, "duplicate map key");
                }
        }
        free(v);
        return r;
}

static int dec_map(struct dec *d, const ProtobufCFieldDescriptor *f, ProtobufCMessage *m)
{
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        const ProtobufCFieldDescriptor *kf = protobuf_c_message_descriptor_get_field(ed, 1);
        const ProtobufCFieldDescriptor *vf = protobuf_c_message_descriptor_get_field(ed, 2);
        size_t *np = CJ_MEMBER(m, f->quantifier_offset);
        ProtobufCMessage ***arr = CJ_MEMBER(m, f->offset);
        size_t cap = 0;
        int r, c = rpc_jlex_peek(&d->lx);

        if (!kf || !vf)
                return -EINVAL;
        if (c != '{')
                return want(d, "an object (map)");
        d->lx.p++;
        if ((r = enter(d)) < 0)
                return r;
        if (!rpc_jlex_accept(&d->lx, '}')) {
                do {
                        const char *k;
                        size_t kn;
                        if ((r = rpc_jlex_string(&d->lx, &d->scratch, &k, &kn)) < 0)
                                return lex_fail(d, r);
                        size_t old = path_push_key(d, k, kn);
                        if ((r = array_grow((void **)arr, *np, &cap, sizeof **arr)) < 0)
                                return r;
                        ProtobufCMessage *en = msg_new(ed);
                        if (!en)
                                return -ENOMEM;
                        (*arr)[(*np)++] = en;
                        if ((r = dec_map_key(d, kf, k, kn, CJ_MEMBER(en, kf->offset))) < 0)
                                return r;
                        if ((r = rpc_jlex_expect(&d->lx, ':', "expected ':'")) < 0)
                                return lex_fail(d, r);
                        if (rpc_jlex_peek(&d->lx) == 'n')
                                return fail(d, "null is not allowed as a map value");
                        if (vf->type == PROTOBUF_C_TYPE_MESSAGE) {
                                r = dec_sub_message(d, vf->descriptor,
                                                    CJ_MEMBER(en, vf->offset));
                        } else {
                                r = dec_scalar(d, vf, CJ_MEMBER(en, vf->offset));
                                if (r == DEC_SKIP) {    /* unknown enum name: drop the entry */
                                        protobuf_c_message_free_unpacked(en, NULL);
                                        (*np)--;
                                        r = 0;
                                }
                        }
                        if (r < 0)
                                return r;
                        path_pop(d, old);
                } while (rpc_jlex_accept(&d->lx, ','));
                if ((r = rpc_jlex_expect(&d->lx, '}', "expected ',' or '}'")) < 0)
                        return lex_fail(d, r);
        }
        d->depth--;
        return map_check_dups(d, kf, *arr, *np);
}

/* Whether |k| is the lowerCamelCase form of proto name |pn| (for types the
 * descriptor index does not know). */
static bool camel_eq(const char *pn, const char *k, size_t n)
{
        size_t j = 0;
        bool up = false;
        for (; *pn; pn++) {
                if (*pn == '_') {
                        up = true;
                        continue;
                }
                char c = (char)(up && *pn >= 'a' && *pn <= 'z' ? *pn - 32 : *pn);
                up = false;
                if (j >= n || k[j++] != c)
                        return false;
        }
        return j == n;
}

static bool name_eq(const char *name, const char *k, size_t n)
{
        return name[0] == k[0] && strncmp(name, k, n) == 0 && name[n] == '\0';
}

/* Index of the field named |k| (json_name or proto name), or -1. The scan
 * starts at |hint| (the field after the previous key): encoders write
 * fields in number order, so this is usually the first comparison. */
static int find_field(const struct rpc_descset_msg *rec, const ProtobufCMessageDescriptor *md,
                      const char *k, size_t n, unsigned hint)
{
        if (n == 0)
                return -1;
        for (unsigned j = 0; j < md->n_fields; j++) {
                unsigned i = hint + j < md->n_fields ? hint + j : hint + j - md->n_fields;
                if (rec && rec->json_names) {
                        if (name_eq(rec->json_names[i], k, n))
                                return (int)i;
                } else if (camel_eq(md->fields[i].name, k, n)) {
                        return (int)i;
                }
                if (name_eq(md->fields[i].name, k, n))
                        return (int)i;
        }
        return -1;
}

/* A present field value: scalar, repeated, map or sub-message. */
static int dec_field(struct dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
        void *dst = CJ_MEMBER(m, f->offset);
        int r;

        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                const struct rpc_descset_msg *er =
                        f->type == PROTOBUF_C_TYPE_MESSAGE ? rpc_descset_msg_by_c(d->ds, f->descriptor)
                                                           : NULL;
                return er && er->map_entry ? dec_map(d, f, m) : dec_array(d, f, m);
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                ProtobufCMessage *sub = msg_new(f->descriptor);
                if (!sub)
                        return -ENOMEM;
                *(ProtobufCMessage **)dst = sub;
                if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                        *(uint32_t *)CJ_MEMBER(m, f->quantifier_offset) = f->id;
                return dec_message_value(d, sub);
        }
        if ((r = dec_scalar(d, f, dst)) != 0)
                return r == DEC_SKIP ? 0 : r;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                *(uint32_t *)CJ_MEMBER(m, f->quantifier_offset) = f->id;
        else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING)
                *(protobuf_c_boolean *)CJ_MEMBER(m, f->quantifier_offset) = 1;
        return 0;
}

/* The members of a JSON object into |m|. With |any_type|, the "@type" key
 * (already read by dec_any) is skipped. */
static int dec_object(struct dec *d, ProtobufCMessage *m, bool any_type)
{
        const ProtobufCMessageDescriptor *md = m->descriptor;
        const struct rpc_descset_msg *rec = rpc_descset_msg_by_c(d->ds, md);
        uint64_t seen_small[4] = { 0 }, *seen = seen_small;
        unsigned hint = 0, types_seen = 0;
        int r, c = rpc_jlex_peek(&d->lx);

        if (c != '{') {
                char what[160];
                snprintf(what, sizeof what, "an object (%s)", md->name);
                return want(d, what);
        }
        d->lx.p++;
        if ((r = enter(d)) < 0)
                return r;
        if (md->n_fields > 256 && !(seen = calloc((md->n_fields + 63) / 64, sizeof *seen)))
                return -ENOMEM;
        if (rpc_jlex_accept(&d->lx, '}'))
                goto out_done;
        do {
                const char *k;
                size_t kn;
                if ((r = rpc_jlex_string(&d->lx, &d->scratch, &k, &kn)) < 0) {
                        r = lex_fail(d, r);
                        goto out_free_seen;
                }
                int i = find_field(rec, md, k, kn, hint);
                if (i >= 0)
                        hint = (unsigned)i + 1 < md->n_fields ? (unsigned)i + 1 : 0;
                if (i < 0 && any_type && kn == 5 && memcmp(k, "@type", 5) == 0) {
                        if (types_seen++) {
                                r = fail(d, "\"@type\" appears twice in google.protobuf.Any");
                                goto out_free_seen;
                        }
                        i = -2;
                }
                if (i == -1 && !d->ignore_unknown) {
                        char sb[SAFE_BUF];
                        r = fail(d, "unknown field \"%s\" in %s", safe(k, kn, sb), md->name);
                        goto out_free_seen;
                }
                if ((r = rpc_jlex_expect(&d->lx, ':', "expected ':'")) < 0) {
                        r = lex_fail(d, r);
                        goto out_free_seen;
                }
                if (i < 0) {
                        r = rpc_jlex_skip(&d->lx, &d->scratch, RPC_JSON_MAX_DEPTH - d->depth);
                        if (r < 0) {
                                r = lex_fail(d, r);
                                goto out_free_seen;
                        }
                        continue;
                }
                const ProtobufCFieldDescriptor *f = &md->fields[i];
                if (seen[i / 64] & (1ull << (i % 64))) {
                        r = fail(d, "field \"%s\" appears twice in %s", f->name, md->name);
                        goto out_free_seen;
                }
                seen[i / 64] |= 1ull << (i % 64);
                if (rpc_jlex_peek(&d->lx) == 'n') {     /* null: the default */
                        if ((r = rpc_jlex_literal(&d->lx, "null")) < 0) {
                                r = lex_fail(d, r);
                                goto out_free_seen;
                        }
                        continue;
                }
                if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                        uint32_t cur = *(uint32_t *)CJ_MEMBER(m, f->quantifier_offset);
                        if (cur && cur != f->id) {
                                const ProtobufCFieldDescriptor *o =
                                        protobuf_c_message_descriptor_get_field(md, cur);
                                r = fail(d, "fields \"%s\" and \"%s\" of one oneof are both set in %s",
                                         o ? o->name : "?", f->name, md->name);
                                goto out_free_seen;
                        }
                }
                size_t old = path_push_field(d, f->name);
                if ((r = dec_field(d, m, f)) < 0)
                        goto out_free_seen;
                path_pop(d, old);
        } while (rpc_jlex_accept(&d->lx, ','));
        if ((r = rpc_jlex_expect(&d->lx, '}', "expected ',' or '}'")) < 0) {
                r = lex_fail(d, r);
                goto out_free_seen;
        }
out_done:
        d->depth--;
        r = 0;
out_free_seen:
        if (seen != seen_small)
                free(seen);
        return r;
}

static int dec_time(struct dec *d, ProtobufCMessage *m, bool duration)
{
        const ProtobufCFieldDescriptor *fs = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
        const ProtobufCFieldDescriptor *fn = protobuf_c_message_descriptor_get_field(m->descriptor, 2);
        const char *s;
        size_t n;
        int64_t secs;
        int32_t nanos;
        int r, c = rpc_jlex_peek(&d->lx);

        if (c != '"')
                return want(d, duration ? "a Duration string" : "a Timestamp string");
        if ((r = rpc_jlex_string(&d->lx, &d->scratch, &s, &n)) < 0)
                return lex_fail(d, r);
        char sb[SAFE_BUF];
        if (duration) {
                if (rpc_jtext_parse_duration(s, n, &secs, &nanos) < 0)
                        return fail(d, "invalid Duration \"%s\" (want like \"1.5s\", at most %llds)",
                                    safe(s, n, sb), (long long)RPC_JTEXT_DUR_MAX_SECONDS);
        } else if (rpc_jtext_parse_timestamp(s, n, &secs, &nanos) < 0) {
                return fail(d, "invalid Timestamp \"%s\" (want RFC 3339 like "
                            "\"2026-11-28T06:00:00Z\", years 0001-9999)", safe(s, n, sb));
        }
        *(int64_t *)CJ_MEMBER(m, fs->offset) = secs;
        *(int32_t *)CJ_MEMBER(m, fn->offset) = nanos;
        return 0;
}

/* google.protobuf.Any: {"@type": url, fields...}; "@type" may come last,
 * so a first pass finds it and a second parses with the right type. */
static int dec_any(struct dec *d, ProtobufCMessage *any)
{
        const ProtobufCFieldDescriptor *fu = protobuf_c_message_descriptor_get_field(any->descriptor, 1);
        const ProtobufCFieldDescriptor *fv = protobuf_c_message_descriptor_get_field(any->descriptor, 2);
        const uint8_t *start;
        char *url = NULL;
        ProtobufCMessage *sub = NULL;
        int r, c = rpc_jlex_peek(&d->lx);

        if (c != '{')
                return want(d, "an object (google.protobuf.Any)");
        start = d->lx.p++;
        if ((r = enter(d)) < 0)
                return r;
        if (rpc_jlex_accept(&d->lx, '}')) {
                d->depth--;
                return 0;               /* {} is the empty Any */
        }
        bool first = true;
        do {
                const char *k;
                size_t kn;
                if ((r = rpc_jlex_string(&d->lx, &d->scratch, &k, &kn)) < 0)
                        goto out_lex;
                bool is_type = kn == 5 && memcmp(k, "@type", 5) == 0;
                bool was_first = first;
                first = false;
                if ((r = rpc_jlex_expect(&d->lx, ':', "expected ':'")) < 0)
                        goto out_lex;
                if (!is_type) {
                        if ((r = rpc_jlex_skip(&d->lx, &d->scratch, RPC_JSON_MAX_DEPTH - d->depth)) < 0)
                                goto out_lex;
                        continue;
                }
                if (url) {
                        r = fail(d, "\"@type\" appears twice in google.protobuf.Any");
                        goto out_free;
                }
                if ((r = dec_string(d, &url)) < 0)
                        goto out_free;
                /* "@type" first (as we and most encoders write it): the
                 * typed pass checks the rest, so nested Anys stay linear. */
                if (was_first)
                        goto out_scanned;
        } while (rpc_jlex_accept(&d->lx, ','));
        if ((r = rpc_jlex_expect(&d->lx, '}', "expected ',' or '}'")) < 0)
                goto out_lex;
out_scanned:
        if (!url) {
                r = fail(d, "google.protobuf.Any without \"@type\"");
                goto out_free;
        }
        const char *slash = strrchr(url, '/');
        const struct rpc_descset_msg *rec = rpc_descset_msg_by_name(d->ds, slash ? slash + 1 : url);
        if (!slash || !rec || !rec->cdesc) {
                char sb[SAFE_BUF];
                r = fail(d, "unknown type \"%s\" in google.protobuf.Any", safe(url, strlen(url), sb));
                goto out_free;
        }
        /* Second pass over the same bytes, now typed. */
        d->lx.p = start;
        d->depth--;
        if (!(sub = msg_new(rec->cdesc))) {
                r = -ENOMEM;
                goto out_free;
        }
        if (cj_wkt_of(rec->cdesc) == CJ_WKT_NONE) {
                r = dec_object(d, sub, true);
        } else {
                /* Special JSON forms sit under "value". */
                bool got = false, got_type = false;
                d->lx.p++;
                if ((r = enter(d)) < 0)
                        goto out_free;
                do {
                        const char *k;
                        size_t kn;
                        if ((r = rpc_jlex_string(&d->lx, &d->scratch, &k, &kn)) < 0 ||
                            (r = rpc_jlex_expect(&d->lx, ':', "expected ':'")) < 0)
                                goto out_lex;
                        if (kn == 5 && memcmp(k, "value", 5) == 0 && !got) {
                                got = true;
                                size_t old = path_push_field(d, "value");
                                if ((r = dec_message_value(d, sub)) < 0)
                                        goto out_free;
                                path_pop(d, old);
                        } else if (kn == 5 && memcmp(k, "@type", 5) == 0 && !got_type) {
                                got_type = true;
                                if ((r = rpc_jlex_skip(&d->lx, &d->scratch, 1)) < 0)
                                        goto out_lex;
                        } else {
                                char sb[SAFE_BUF];
                                r = fail(d, "unexpected key \"%s\" in google.protobuf.Any of %s",
                                         safe(k, kn, sb), rec->cdesc->name);
                                goto out_free;
                        }
                } while (rpc_jlex_accept(&d->lx, ','));
                if ((r = rpc_jlex_expect(&d->lx, '}', "expected ',' or '}'")) < 0)
                        goto out_lex;
                d->depth--;
        }
        if (r < 0)
                goto out_free;
        size_t len = protobuf_c_message_get_packed_size(sub);
        uint8_t *data = NULL;
        if (len && !(data = malloc(len))) {
                r = -ENOMEM;
                goto out_free;
        }
        if (len)
                protobuf_c_message_pack(sub, data);
        *(char **)CJ_MEMBER(any, fu->offset) = url;
        url = NULL;
        ((ProtobufCBinaryData *)CJ_MEMBER(any, fv->offset))->len = len;
        ((ProtobufCBinaryData *)CJ_MEMBER(any, fv->offset))->data = data;
        r = 0;
        goto out_free;
out_lex:
        r = lex_fail(d, r);
out_free:
        if (sub)
                protobuf_c_message_free_unpacked(sub, NULL);
        /* The analyzer does not know protobuf-c frees sub above. */
        free(url); /* NOLINT(clang-analyzer-unix.Malloc) */
        return r;
}

static int dec_message_value(struct dec *d, ProtobufCMessage *m)
{
        switch (cj_wkt_of(m->descriptor)) {
        case CJ_WKT_TIMESTAMP:
                return dec_time(d, m, false);
        case CJ_WKT_DURATION:
                return dec_time(d, m, true);
        case CJ_WKT_ANY:
                return dec_any(d, m);
        default:
                return dec_object(d, m, false);
        }
}

int rpc_json_decode(const ProtobufCMessageDescriptor *md, const rpc_descset *ds,
                    const uint8_t *json, size_t len, const struct rpc_json_opts *opts,
                    ProtobufCMessage **ret, struct ha_err *err)
{
        size_t max = opts && opts->max_len ? opts->max_len : RPC_JSON_DEFAULT_MAX_LEN;
        struct dec d = { .ds = ds, .ignore_unknown = opts && opts->ignore_unknown, .err = err };
        int r;

        if (len > max)
                return ha_err_set(err, -EINVAL, "JSON input of %zu bytes exceeds the limit of %zu bytes",
                                  len, max);
        rpc_jlex_init(&d.lx, json, len);
        if (rpc_jlex_peek(&d.lx) < 0)
                return ha_err_set(err, -EINVAL, "empty JSON input (want an object for %s)",
                                  md->name);
        /* Unescaping never lengthens a string: the input size bounds it. */
        ha_buf_init(&d.scratch, len + 1);
        ProtobufCMessage *m = msg_new(md);
        if (!m) {
                r = ha_err_set(err, -ENOMEM, "out of memory");
                goto out_done;
        }
        r = dec_message_value(&d, m);
        if (r == 0 && rpc_jlex_peek(&d.lx) >= 0)
                r = fail(&d, "invalid JSON at offset %zu: unexpected data after the message",
                         (size_t)(d.lx.p - d.lx.start));
        if (r == -ENOMEM)
                ha_err_set(err, r, "out of memory");
        if (r < 0) {
                protobuf_c_message_free_unpacked(m, NULL);
                goto out_done;
        }
        *ret = m;
out_done:
        /* m is freed or returned: the analyzer does not know protobuf-c frees it. */
        ha_buf_done(&d.scratch); /* NOLINT(clang-analyzer-unix.Malloc) */
        return r;
}
