/*
 * codec_json_enc.c - protobuf-c message to canonical protobuf JSON
 * (rpc_json_encode(), contract in codec_json.h).
 *
 * One recursive walk over the descriptor; the output goes straight into the
 * caller's ha_buf, whose limit bounds it. Fields come out in the order of
 * desc->fields, which protoc-c sorts by field number, so the output is
 * deterministic and matches other implementations byte for byte (maps keep
 * their stored order).
 */
#include "rpc/codec_json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "rpc/codec_json_int.h"
#include "rpc/json_lex.h"
#include "rpc/json_text.h"

struct enc {
        struct ha_buf *out;
        const rpc_descset *ds;
        unsigned depth;
};

static int put(struct enc *e, const void *p, size_t n)
{
        return ha_buf_append(e->out, p, n);
}

static int putc1(struct enc *e, char c)
{
        if (e->out->len < e->out->cap) {
                e->out->data[e->out->len++] = (uint8_t)c;
                return 0;
        }
        return ha_buf_append(e->out, &c, 1);
}

static int put_str(struct enc *e, const char *s)
{
        return put(e, s, strlen(s));
}

/* A JSON string: escapes '"', '\\' and control characters; UTF-8 passes
 * through as is, invalid sequences become U+FFFD. */
static int put_quoted(struct enc *e, const char *str, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        const uint8_t *s = (const uint8_t *)str, *end = s + n;
        int r;

        if ((r = putc1(e, '"')) < 0)
                return r;
        while (s < end) {
                const uint8_t *run = s;
                while (s < end && *s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\')
                        s++;
                if (s > run && (r = put(e, run, (size_t)(s - run))) < 0)
                        return r;
                if (s >= end)
                        break;
                uint8_t c = *s;
                if (c >= 0x80) {
                        size_t l = rpc_jlex_utf8_len(s, (size_t)(end - s));
                        if (l == 0) {
                                r = put(e, "\xef\xbf\xbd", 3);
                                l = 1;
                        } else {
                                r = put(e, s, l);
                        }
                        s += l;
                } else {
                        char esc[6] = { '\\', 0 };
                        size_t el = 2;
                        switch (c) {
                        case '"': esc[1] = '"'; break;
                        case '\\': esc[1] = '\\'; break;
                        case '\n': esc[1] = 'n'; break;
                        case '\r': esc[1] = 'r'; break;
                        case '\t': esc[1] = 't'; break;
                        case '\b': esc[1] = 'b'; break;
                        case '\f': esc[1] = 'f'; break;
                        default:
                                memcpy(esc, "\\u00", 4);
                                esc[4] = hex[c >> 4];
                                esc[5] = hex[c & 15];
                                el = 6;
                        }
                        r = put(e, esc, el);
                        s++;
                }
                if (r < 0)
                        return r;
        }
        return putc1(e, '"');
}

/* Decimal digits of |v| written backwards ending at |end|; returns the
 * first digit. snprintf showed up first in profiles. */
static char *u64_digits(uint64_t v, char *end)
{
        do {
                *--end = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        return end;
}

static int put_fmt_u64(struct enc *e, uint64_t v, bool quoted)
{
        char b[24], *end = b + sizeof b, *p;
        if (quoted)
                *--end = '"';
        p = u64_digits(v, end);
        if (quoted)
                *--p = '"';
        return put(e, p, (size_t)(b + sizeof b - p));
}

static int put_fmt_i64(struct enc *e, int64_t v, bool quoted)
{
        char b[24], *end = b + sizeof b, *p;
        if (quoted)
                *--end = '"';
        p = u64_digits(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, end);
        if (v < 0)
                *--p = '-';
        if (quoted)
                *--p = '"';
        return put(e, p, (size_t)(b + sizeof b - p));
}

static int put_double(struct enc *e, double d, bool single)
{
        if (isnan(d))
                return put_str(e, "\"NaN\"");
        if (isinf(d))
                return put_str(e, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        char b[RPC_JTEXT_NUM_MAX];
        int n = rpc_jtext_format_double(d, single, b);
        return put(e, b, (size_t)n);
}

static int put_bytes(struct enc *e, const ProtobufCBinaryData *bd)
{
        size_t n = rpc_jtext_b64_len(bd->len);
        int r;
        if (bd->len > SIZE_MAX / 2)
                return -EMSGSIZE;
        if ((r = ha_buf_reserve(e->out, n + 2)) < 0)
                return r;
        e->out->data[e->out->len++] = '"';
        rpc_jtext_b64_encode(bd->data, bd->len, (char *)e->out->data + e->out->len);
        e->out->len += n;
        e->out->data[e->out->len++] = '"';
        return 0;
}

static int put_enum(struct enc *e, const ProtobufCEnumDescriptor *ed, int v)
{
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, v);
        if (!ev)
                return put_fmt_i64(e, v, false);
        int r = putc1(e, '"');
        if (r == 0)
                r = put_str(e, ev->name);
        return r < 0 ? r : putc1(e, '"');
}

static int put_message(struct enc *e, const ProtobufCMessage *m);

/* One value of field |f| stored at |p|. */
static int put_value(struct enc *e, const ProtobufCFieldDescriptor *f, const void *p)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
                return put_fmt_i64(e, *(const int32_t *)p, false);
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                return put_fmt_u64(e, *(const uint32_t *)p, false);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
                return put_fmt_i64(e, *(const int64_t *)p, true);
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                return put_fmt_u64(e, *(const uint64_t *)p, true);
        case PROTOBUF_C_TYPE_FLOAT:
                return put_double(e, *(const float *)p, true);
        case PROTOBUF_C_TYPE_DOUBLE:
                return put_double(e, *(const double *)p, false);
        case PROTOBUF_C_TYPE_BOOL:
                return put_str(e, *(const protobuf_c_boolean *)p ? "true" : "false");
        case PROTOBUF_C_TYPE_ENUM:
                return put_enum(e, f->descriptor, *(const int *)p);
        case PROTOBUF_C_TYPE_STRING: {
                const char *s = *(char *const *)p;
                return s ? put_quoted(e, s, strlen(s)) : put_str(e, "\"\"");
        }
        case PROTOBUF_C_TYPE_BYTES:
                return put_bytes(e, p);
        case PROTOBUF_C_TYPE_MESSAGE: {
                const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
                if (!sub)               /* e.g. a map value left NULL */
                        return put_str(e, "{}");
                return put_message(e, sub);
        }
        }
        return -EINVAL;
}

static bool utf8_valid(const char *str, size_t n)
{
        const uint8_t *s = (const uint8_t *)str;
        for (size_t i = 0, l; i < n; i += l)
                if ((l = rpc_jlex_utf8_len(s + i, n - i)) == 0)
                        return false;
        return true;
}

/* A map key: JSON object keys are strings whatever the key type. */
static int put_map_key(struct enc *e, const ProtobufCFieldDescriptor *f, const void *p)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING: {
                const char *s = *(char *const *)p;
                size_t n = s ? strlen(s) : 0;
                /* put_quoted() prints invalid UTF-8 as U+FFFD, so two
                 * different such keys would print the same: a duplicate
                 * key in the object. Not representable: refuse. */
                if (!utf8_valid(s, n))
                        return -EINVAL;
                return put_quoted(e, s ? s : "", n);
        }
        case PROTOBUF_C_TYPE_BOOL:
                return put_str(e, *(const protobuf_c_boolean *)p ? "\"true\"" : "\"false\"");
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
                return put_fmt_i64(e, *(const int32_t *)p, true);
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                return put_fmt_u64(e, *(const uint32_t *)p, true);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
                return put_fmt_i64(e, *(const int64_t *)p, true);
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                return put_fmt_u64(e, *(const uint64_t *)p, true);
        default:
                return -EINVAL;         /* protobuf allows no other key type */
        }
}

/* Whether two map keys (same field) are equal. */
static bool map_key_eq(const ProtobufCFieldDescriptor *f, const void *a, const void *b)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING: {
                const char *x = *(char *const *)a, *y = *(char *const *)b;
                return strcmp(x ? x : "", y ? y : "") == 0;
        }
        case PROTOBUF_C_TYPE_BOOL:
                return !*(const protobuf_c_boolean *)a == !*(const protobuf_c_boolean *)b;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                return *(const uint64_t *)a == *(const uint64_t *)b;
        default:
                return *(const uint32_t *)a == *(const uint32_t *)b;
        }
}

static int put_map(struct enc *e, const ProtobufCFieldDescriptor *f, size_t n,
                   ProtobufCMessage *const *entries)
{
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        const ProtobufCFieldDescriptor *kf = protobuf_c_message_descriptor_get_field(ed, 1);
        const ProtobufCFieldDescriptor *vf = protobuf_c_message_descriptor_get_field(ed, 2);
        int r;

        if (!kf || !vf)
                return -EINVAL;
        if ((r = putc1(e, '{')) < 0)
                return r;
        bool first = true;
        for (size_t i = 0; i < n; i++) {
                const ProtobufCMessage *en = entries[i];
                if (!en)
                        return -EINVAL;
                /* The wire format lets a key repeat (the last one wins);
                 * JSON objects must not: keep only the last entry per key. */
                bool later = false;
                for (size_t j = i + 1; j < n && !later; j++)
                        later = entries[j] && map_key_eq(kf, CJ_MEMBER(en, kf->offset),
                                                         CJ_MEMBER(entries[j], kf->offset));
                if (later)
                        continue;
                if (!first && (r = putc1(e, ',')) < 0)
                        return r;
                first = false;
                if ((r = put_map_key(e, kf, CJ_MEMBER(en, kf->offset))) < 0 ||
                    (r = putc1(e, ':')) < 0 ||
                    (r = put_value(e, vf, CJ_MEMBER(en, vf->offset))) < 0)
                        return r;
        }
        return putc1(e, '}');
}

/* Whether field |f| of |m| is present, i.e. must be emitted. */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
        const void *p = CJ_MEMBER(m, f->offset);
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                return *(const uint32_t *)CJ_MEMBER(m, f->quantifier_offset) == f->id;
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
                return *(const size_t *)CJ_MEMBER(m, f->quantifier_offset) > 0;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
                return *(void *const *)p != NULL;
        if (f->label == PROTOBUF_C_LABEL_REQUIRED)
                return true;
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
                if (f->type == PROTOBUF_C_TYPE_STRING)
                        return *(char *const *)p != NULL;
                return *(const protobuf_c_boolean *)CJ_MEMBER(m, f->quantifier_offset);
        }
        /* proto3 implicit presence: present unless the default. */
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                return *(const uint64_t *)p != 0;
        case PROTOBUF_C_TYPE_FLOAT: {
                uint32_t bits;
                memcpy(&bits, p, 4);
                return bits != 0;       /* -0.0 is not the default */
        }
        case PROTOBUF_C_TYPE_DOUBLE: {
                uint64_t bits;
                memcpy(&bits, p, 8);
                return bits != 0;
        }
        case PROTOBUF_C_TYPE_BOOL:
                return *(const protobuf_c_boolean *)p != 0;
        case PROTOBUF_C_TYPE_ENUM:
                return *(const int *)p != 0;
        case PROTOBUF_C_TYPE_STRING: {
                const char *s = *(char *const *)p;
                return s && s[0];
        }
        case PROTOBUF_C_TYPE_BYTES:
                return ((const ProtobufCBinaryData *)p)->len > 0;
        default:
                return *(const uint32_t *)p != 0;
        }
}

/* Writes the key "name": of field |i| (lowerCamelCase when the type is
 * unknown to the descriptor index). */
static int put_key(struct enc *e, const struct rpc_descset_msg *rec,
                   const ProtobufCMessageDescriptor *d, unsigned i)
{
        int r;
        if ((r = putc1(e, '"')) < 0)
                return r;
        if (rec && rec->json_names) {
                r = put_str(e, rec->json_names[i]);
        } else {
                bool up = false;
                for (const char *s = d->fields[i].name; *s && r == 0; s++) {
                        if (*s == '_') {
                                up = true;
                                continue;
                        }
                        r = putc1(e, (char)(up && *s >= 'a' && *s <= 'z' ? *s - 32 : *s));
                        up = false;
                }
        }
        if (r == 0)
                r = put(e, "\":", 2);
        return r;
}

/* The fields of |m| as "k":v pairs; *first says whether a comma is due. */
static int put_fields(struct enc *e, const ProtobufCMessage *m, bool *first)
{
        const ProtobufCMessageDescriptor *d = m->descriptor;
        const struct rpc_descset_msg *rec = rpc_descset_msg_by_c(e->ds, d);
        int r;

        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                if (!field_present(m, f))
                        continue;
                if (!*first && (r = putc1(e, ',')) < 0)
                        return r;
                *first = false;
                if ((r = put_key(e, rec, d, i)) < 0)
                        return r;
                const void *p = CJ_MEMBER(m, f->offset);
                if (f->label != PROTOBUF_C_LABEL_REPEATED) {
                        r = put_value(e, f, p);
                } else {
                        size_t n = *(const size_t *)CJ_MEMBER(m, f->quantifier_offset);
                        const char *arr = *(char *const *)p;
                        const struct rpc_descset_msg *er =
                                f->type == PROTOBUF_C_TYPE_MESSAGE
                                        ? rpc_descset_msg_by_c(e->ds, f->descriptor)
                                        : NULL;
                        if (er && er->map_entry) {
                                r = put_map(e, f, n, (ProtobufCMessage *const *)arr);
                        } else {
                                size_t sz = cj_value_size(f);
                                r = putc1(e, '[');
                                for (size_t k = 0; k < n && r == 0; k++) {
                                        if (k)
                                                r = putc1(e, ',');
                                        if (r == 0)
                                                r = put_value(e, f, arr + k * sz);
                                }
                                if (r == 0)
                                        r = putc1(e, ']');
                        }
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int put_timestamp(struct enc *e, const ProtobufCMessage *m)
{
        const ProtobufCFieldDescriptor *fs = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
        const ProtobufCFieldDescriptor *fn = protobuf_c_message_descriptor_get_field(m->descriptor, 2);
        char b[RPC_JTEXT_TS_MAX];
        int n = rpc_jtext_format_timestamp(*(const int64_t *)CJ_MEMBER(m, fs->offset),
                                           *(const int32_t *)CJ_MEMBER(m, fn->offset), b);
        if (n < 0)
                return n;
        int r = putc1(e, '"');
        if (r == 0)
                r = put(e, b, (size_t)n);
        return r < 0 ? r : putc1(e, '"');
}

static int put_duration(struct enc *e, const ProtobufCMessage *m)
{
        const ProtobufCFieldDescriptor *fs = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
        const ProtobufCFieldDescriptor *fn = protobuf_c_message_descriptor_get_field(m->descriptor, 2);
        char b[RPC_JTEXT_DUR_MAX];
        int n = rpc_jtext_format_duration(*(const int64_t *)CJ_MEMBER(m, fs->offset),
                                          *(const int32_t *)CJ_MEMBER(m, fn->offset), b);
        if (n < 0)
                return n;
        int r = putc1(e, '"');
        if (r == 0)
                r = put(e, b, (size_t)n);
        return r < 0 ? r : putc1(e, '"');
}

/* protobuf-c's unpack returns NULL for both bad bytes and no memory; this
 * allocator tells the two apart. */
struct any_alloc {
        ProtobufCAllocator base;
        bool oom;
};

static void *any_alloc_fn(void *data, size_t n)
{
        void *p = malloc(n);
        if (!p)
                ((struct any_alloc *)data)->oom = true;
        return p;
}

static void any_free_fn(void *data, void *p)
{
        free(p);
}

/* {"@type":"type.googleapis.com/x.Y", ...fields of Y} or, for a type with
 * a special JSON form, {"@type":..., "value": <that form>}. */
static int put_any(struct enc *e, const ProtobufCMessage *m)
{
        const ProtobufCFieldDescriptor *fu = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
        const ProtobufCFieldDescriptor *fv = protobuf_c_message_descriptor_get_field(m->descriptor, 2);
        const char *url = *(char *const *)CJ_MEMBER(m, fu->offset);
        const ProtobufCBinaryData *val = CJ_MEMBER(m, fv->offset);
        int r;

        if (!url || !url[0]) {
                if (val->len)
                        return -EINVAL;
                return put_str(e, "{}");
        }
        const char *slash = strrchr(url, '/');
        const struct rpc_descset_msg *rec = rpc_descset_msg_by_name(e->ds, slash ? slash + 1 : url);
        if (!rec || !rec->cdesc)
                return -EINVAL;
        struct any_alloc al = { { any_alloc_fn, any_free_fn, NULL }, false };
        al.base.allocator_data = &al;
        ProtobufCMessage *sub = protobuf_c_message_unpack(rec->cdesc, &al.base, val->len, val->data);
        if (!sub)
                return al.oom ? -ENOMEM : -EINVAL;
        if ((r = put_str(e, "{\"@type\":")) < 0 || (r = put_quoted(e, url, strlen(url))) < 0)
                goto out_free_sub;
        if (cj_wkt_of(rec->cdesc) != CJ_WKT_NONE) {
                if ((r = put_str(e, ",\"value\":")) == 0)
                        r = put_message(e, sub);
        } else {
                bool first = false;
                r = put_fields(e, sub, &first);
        }
        if (r == 0)
                r = putc1(e, '}');
out_free_sub:
        protobuf_c_message_free_unpacked(sub, &al.base);
        return r;
}

static int put_message(struct enc *e, const ProtobufCMessage *m)
{
        int r;
        /* Same bound as the decoder: a self-referencing message built by a
         * handler must not recurse without limit. */
        if (e->depth >= RPC_JSON_MAX_DEPTH)
                return -EINVAL;
        e->depth++;
        switch (cj_wkt_of(m->descriptor)) {
        case CJ_WKT_TIMESTAMP:
                r = put_timestamp(e, m);
                break;
        case CJ_WKT_DURATION:
                r = put_duration(e, m);
                break;
        case CJ_WKT_ANY:
                r = put_any(e, m);
                break;
        default: {
                bool first = true;
                r = putc1(e, '{');
                if (r == 0)
                        r = put_fields(e, m, &first);
                if (r == 0)
                        r = putc1(e, '}');
        }
        }
        e->depth--;
        return r;
}

int rpc_json_encode(const ProtobufCMessage *msg, const rpc_descset *ds, struct ha_buf *out)
{
        struct enc e = { out, ds, 0 };
        size_t mark = out->len;
        int r = put_message(&e, msg);
        if (r < 0)
                out->len = mark;
        return r;
}
