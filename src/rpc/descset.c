/*
 * descset.c - index over the embedded FileDescriptorSet (see descset.h).
 *
 * The set is walked with a hand-written wire reader instead of
 * descriptor.proto's generated code: we only need a dozen fields and the
 * original bytes of each FileDescriptorProto (reflection sends them as they
 * are). Field numbers used below are those of google/protobuf/descriptor.proto.
 *
 * Memory: every record and string lives in one arena freed at once by
 * rpc_descset_free(); lookups go through open-addressing hash tables whose
 * keys point into the arena. Nothing is mutated after rpc_descset_new()
 * returns, which is what makes concurrent readers safe without locks.
 *
 * Robustness: the blob is ours (built by protoc), but it is parsed as if it
 * were not: every length is checked against the remaining bytes, message
 * nesting is bounded (DS_MAX_DEPTH) and a malformed set fails construction
 * with a message naming the file.
 */
#include "rpc/descset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* Nested message declarations deeper than this are refused: real protos
 * nest a few levels, and the recursion must stay bounded. */
#define DS_MAX_DEPTH 32

/* ---- arena ------------------------------------------------------------ */

struct arena_chunk {
        struct arena_chunk *next;
        size_t used, cap;
        max_align_t data[];
};

struct arena {
        struct arena_chunk *head;
};

#define ARENA_CHUNK 16384

static void *arena_alloc(struct arena *a, size_t n)
{
        n = (n + 15u) & ~(size_t)15u;
        struct arena_chunk *c = a->head;
        if (!c || c->cap - c->used < n) {
                size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
                c = malloc(sizeof *c + cap);
                if (!c)
                        return NULL;
                c->next = a->head;
                c->used = 0;
                c->cap = cap;
                a->head = c;
        }
        void *p = (char *)c->data + c->used;
        c->used += n;
        memset(p, 0, n);
        return p;
}

static char *arena_strndup(struct arena *a, const void *s, size_t n)
{
        char *p = arena_alloc(a, n + 1);
        if (!p)
                return NULL;
        memcpy(p, s, n);
        p[n] = '\0';
        return p;
}

/* "a" + "." + "b", or "b" when a is empty. */
static char *arena_join(struct arena *a, const char *scope, const char *sep,
                        const void *name, size_t n)
{
        size_t ls = strlen(scope), lsep = ls ? strlen(sep) : 0;
        char *p = arena_alloc(a, ls + lsep + n + 1);
        if (!p)
                return NULL;
        memcpy(p, scope, ls);
        memcpy(p + ls, sep, lsep);
        memcpy(p + ls + lsep, name, n);
        p[ls + lsep + n] = '\0';
        return p;
}

static void arena_done(struct arena *a)
{
        struct arena_chunk *c = a->head;
        while (c) {
                struct arena_chunk *next = c->next;
                free(c);
                c = next;
        }
        a->head = NULL;
}

/* ---- string-keyed hash table ------------------------------------------ */

struct smap_slot {
        const char *key;        /* NULL: empty */
        size_t klen;
        uint64_t hash;
        void *val;
};

struct smap {
        struct smap_slot *slots;
        size_t cap, n;          /* cap: power of two */
};

static uint64_t hash_bytes(const void *p, size_t n)
{
        const uint8_t *s = p;
        uint64_t h = 1469598103934665603ull;    /* FNV-1a */
        for (size_t i = 0; i < n; i++) {
                h ^= s[i];
                h *= 1099511628211ull;
        }
        return h;
}

static struct smap_slot *smap_find(const struct smap *m, const char *key, size_t klen,
                                   uint64_t h)
{
        if (!m->cap)
                return NULL;
        for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
                struct smap_slot *s = &m->slots[i];
                if (!s->key)
                        return s;
                if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
                        return s;
        }
}

static void *smap_get(const struct smap *m, const char *key, size_t klen)
{
        struct smap_slot *s = smap_find(m, key, klen, hash_bytes(key, klen));
        return s && s->key ? s->val : NULL;
}

static int smap_grow(struct smap *m)
{
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct smap_slot *slots = calloc(cap, sizeof *slots);
        if (!slots)
                return -ENOMEM;
        struct smap old = *m;
        m->slots = slots;
        m->cap = cap;
        for (size_t i = 0; i < old.cap; i++) {
                if (!old.slots[i].key)
                        continue;
                *smap_find(m, old.slots[i].key, old.slots[i].klen, old.slots[i].hash) =
                        old.slots[i];
        }
        free(old.slots);
        return 0;
}

/* Inserts |key| (NUL-terminated, borrowed) unless present: returns 1 when
 * inserted, 0 when the key existed (value left alone), -ENOMEM. */
static int smap_put(struct smap *m, const char *key, void *val)
{
        if ((m->n + 1) * 4 > m->cap * 3) {
                int r = smap_grow(m);
                if (r < 0)
                        return r;
        }
        size_t klen = strlen(key);
        uint64_t h = hash_bytes(key, klen);
        struct smap_slot *s = smap_find(m, key, klen, h);
        if (s->key)
                return 0;
        s->key = key;
        s->klen = klen;
        s->hash = h;
        s->val = val;
        m->n++;
        return 1;
}

/* ---- pointer-keyed hash table (registered protobuf-c types) ----------- */

struct pmap_slot {
        const void *key;
        void *val;
};

struct pmap {
        struct pmap_slot *slots;
        size_t cap, n;
};

static size_t ptr_hash(const void *p)
{
        uint64_t x = (uint64_t)(uintptr_t)p;
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdull;
        x ^= x >> 33;
        return (size_t)x;
}

static struct pmap_slot *pmap_find(const struct pmap *m, const void *key)
{
        if (!m->cap)
                return NULL;
        for (size_t i = ptr_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
                if (!m->slots[i].key || m->slots[i].key == key)
                        return &m->slots[i];
}

static int pmap_put(struct pmap *m, const void *key, void *val)
{
        if ((m->n + 1) * 4 > m->cap * 3) {
                size_t cap = m->cap ? m->cap * 2 : 64;
                struct pmap_slot *slots = calloc(cap, sizeof *slots);
                if (!slots)
                        return -ENOMEM;
                struct pmap old = *m;
                m->slots = slots;
                m->cap = cap;
                for (size_t i = 0; i < old.cap; i++)
                        if (old.slots[i].key)
                                *pmap_find(m, old.slots[i].key) = old.slots[i];
                free(old.slots);
        }
        struct pmap_slot *s = pmap_find(m, key);
        if (!s->key) {
                s->key = key;
                s->val = val;
                m->n++;
        }
        return 0;
}

/* ---- growable pointer vectors ------------------------------------------ */

struct pvec {
        void **v;
        size_t n, cap;
};

static int pvec_push(struct pvec *pv, void *p)
{
        if (pv->n == pv->cap) {
                size_t cap = pv->cap ? pv->cap * 2 : 16;
                void **v = reallocarray(pv->v, cap, sizeof *v);
                if (!v)
                        return -ENOMEM;
                pv->v = v;
                pv->cap = cap;
        }
        pv->v[pv->n++] = p;
        return 0;
}

/* ---- the index --------------------------------------------------------- */

struct ds_field {
        uint32_t number;
        const char *name;
        const char *json_name;          /* NULL when the set has none */
};

struct ds_msg {
        struct rpc_descset_msg pub;
        struct ds_field *fields;
        size_t n_fields;
        uint32_t *ext_numbers;          /* extensions declared for this type */
        size_t n_ext, cap_ext;
};

struct ds_ext {
        const char *extendee;
        uint32_t number;
        const struct rpc_descset_file *file;
};

struct rpc_descset {
        struct arena arena;
        struct pvec files;              /* struct rpc_descset_file * */
        struct pvec services;           /* const char * */
        struct pvec methods;            /* struct rpc_descset_method * */
        struct pvec msgs;               /* struct ds_msg * (also C-only types) */
        struct pvec exts;               /* struct ds_ext * */
        struct smap file_by_name;
        struct smap symbols;            /* full name -> struct rpc_descset_file * */
        struct smap msg_by_name;        /* full name -> struct ds_msg * */
        struct smap method_by_path;
        struct pmap msg_by_c;           /* ProtobufCMessageDescriptor * -> struct ds_msg * */
};

/* ---- wire reader ------------------------------------------------------- */

struct wire {
        const uint8_t *p, *end;
};

struct wfield {
        uint32_t num;
        uint32_t wt;
        uint64_t v;                     /* varint value */
        const uint8_t *data;            /* length-delimited payload */
        size_t len;
};

static int wire_varint(struct wire *w, uint64_t *ret)
{
        uint64_t v = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
                if (w->p >= w->end)
                        return -EINVAL;
                uint8_t b = *w->p++;
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EINVAL;
}

/* Returns 1 with the next field in *f, 0 at the end, -EINVAL if malformed. */
static int wire_next(struct wire *w, struct wfield *f)
{
        if (w->p == w->end)
                return 0;
        uint64_t tag;
        if (wire_varint(w, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
                return -EINVAL;
        f->num = (uint32_t)(tag >> 3);
        f->wt = (uint32_t)(tag & 7);
        f->data = NULL;
        f->len = 0;
        f->v = 0;
        switch (f->wt) {
        case 0:
                return wire_varint(w, &f->v) < 0 ? -EINVAL : 1;
        case 1:
                if (w->end - w->p < 8)
                        return -EINVAL;
                w->p += 8;
                return 1;
        case 5:
                if (w->end - w->p < 4)
                        return -EINVAL;
                w->p += 4;
                return 1;
        case 2: {
                uint64_t n;
                if (wire_varint(w, &n) < 0 || n > (uint64_t)(w->end - w->p))
                        return -EINVAL;
                f->data = w->p;
                f->len = (size_t)n;
                w->p += n;
                return 1;
        }
        default:                        /* groups: descriptor.proto has none */
                return -EINVAL;
        }
}

/* A length-delimited field that must be a string without NUL bytes. */
static int wire_str(struct rpc_descset *ds, const struct wfield *f, const char **ret)
{
        if (f->wt != 2 || memchr(f->data, 0, f->len))
                return -EINVAL;
        const char *s = arena_strndup(&ds->arena, f->data, f->len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* protoc's ToJsonName(): drop '_' and upper-case the letter after it. */
static char *json_name_compute(struct arena *a, const char *name)
{
        char *out = arena_alloc(a, strlen(name) + 1);
        if (!out)
                return NULL;
        size_t j = 0;
        bool up = false;
        for (const char *s = name; *s; s++) {
                if (*s == '_') {
                        up = true;
                } else if (up) {
                        out[j++] = (char)((*s >= 'a' && *s <= 'z') ? *s - 'a' + 'A' : *s);
                        up = false;
                } else {
                        out[j++] = *s;
                }
        }
        out[j] = '\0';
        return out;
}

/* ---- walking the set --------------------------------------------------- */

struct walk {
        struct rpc_descset *ds;
        struct rpc_descset_file *file;
        struct ha_err *err;
};

static int walk_fail(struct walk *wk, int r, const char *what)
{
        if (r == -ENOMEM)
                return ha_err_set(wk->err, r, "out of memory indexing descriptor set");
        return ha_err_set(wk->err, -EINVAL, "descriptor set: malformed %s in file \"%s\"",
                          what, wk->file && wk->file->name ? wk->file->name : "?");
}

static int add_symbol(struct walk *wk, const char *full)
{
        int r = smap_put(&wk->ds->symbols, full, wk->file);
        return r < 0 ? r : 0;
}

/* Strips protoc's leading '.' from a resolved type name. */
static const char *type_name(const char *s)
{
        return s[0] == '.' ? s + 1 : s;
}

static int walk_enum(struct walk *wk, const char *scope, const uint8_t *data, size_t len)
{
        struct wire w = { data, data + len };
        struct wfield f;
        const char *name = NULL;
        int r;
        while ((r = wire_next(&w, &f)) > 0) {
                if (f.num == 1 && (r = wire_str(wk->ds, &f, &name)) < 0)
                        return r;
        }
        if (r < 0 || !name)
                return -EINVAL;
        char *full = arena_join(&wk->ds->arena, scope, ".", name, strlen(name));
        if (!full)
                return -ENOMEM;
        if ((r = add_symbol(wk, full)) < 0)
                return r;
        /* Enum values are scoped as siblings of the enum, not children. */
        w = (struct wire){ data, data + len };
        while ((r = wire_next(&w, &f)) > 0) {
                if (f.num != 2 || f.wt != 2)
                        continue;
                struct wire wv = { f.data, f.data + f.len };
                struct wfield fv;
                const char *vname = NULL;
                while ((r = wire_next(&wv, &fv)) > 0)
                        if (fv.num == 1 && (r = wire_str(wk->ds, &fv, &vname)) < 0)
                                return r;
                if (r < 0 || !vname)
                        return -EINVAL;
                char *vfull = arena_join(&wk->ds->arena, scope, ".", vname, strlen(vname));
                if (!vfull)
                        return -ENOMEM;
                if ((r = add_symbol(wk, vfull)) < 0)
                        return r;
        }
        return r;
}

static int walk_extension(struct walk *wk, const char *scope, const uint8_t *data, size_t len)
{
        struct wire w = { data, data + len };
        struct wfield f;
        const char *name = NULL, *extendee = NULL;
        uint32_t number = 0;
        int r;
        while ((r = wire_next(&w, &f)) > 0) {
                if (f.num == 1 && (r = wire_str(wk->ds, &f, &name)) < 0)
                        return r;
                if (f.num == 2 && (r = wire_str(wk->ds, &f, &extendee)) < 0)
                        return r;
                if (f.num == 3 && f.wt == 0)
                        number = (uint32_t)f.v;
        }
        if (r < 0 || !name || !extendee)
                return -EINVAL;
        char *full = arena_join(&wk->ds->arena, scope, ".", name, strlen(name));
        struct ds_ext *e = arena_alloc(&wk->ds->arena, sizeof *e);
        if (!full || !e)
                return -ENOMEM;
        e->extendee = type_name(extendee);
        e->number = number;
        e->file = wk->file;
        if ((r = add_symbol(wk, full)) < 0)
                return r;
        return pvec_push(&wk->ds->exts, e);
}

static int walk_field(struct walk *wk, struct ds_field *df, const uint8_t *data, size_t len)
{
        struct wire w = { data, data + len };
        struct wfield f;
        int r;
        while ((r = wire_next(&w, &f)) > 0) {
                if (f.num == 1 && (r = wire_str(wk->ds, &f, &df->name)) < 0)
                        return r;
                if (f.num == 3 && f.wt == 0)
                        df->number = (uint32_t)f.v;
                if (f.num == 10 && (r = wire_str(wk->ds, &f, &df->json_name)) < 0)
                        return r;
        }
        if (r < 0 || !df->name || df->number == 0)
                return -EINVAL;
        return 0;
}

static int cmp_field(const void *a, const void *b)
{
        const struct ds_field *x = a, *y = b;
        return x->number < y->number ? -1 : x->number > y->number;
}

static int walk_message(struct walk *wk, const char *scope, const uint8_t *data, size_t len,
                        unsigned depth)
{
        struct rpc_descset *ds = wk->ds;
        struct wire w = { data, data + len };
        struct wfield f;
        const char *name = NULL;
        size_t n_fields = 0;
        bool map_entry = false;
        int r;

        if (depth > DS_MAX_DEPTH)
                return -EINVAL;
        /* Pass 1: name, field count and options, needed before the rest. */
        while ((r = wire_next(&w, &f)) > 0) {
                if (f.num == 1 && (r = wire_str(ds, &f, &name)) < 0)
                        return r;
                if (f.num == 2)
                        n_fields++;
                if (f.num == 7 && f.wt == 2) {          /* MessageOptions */
                        struct wire wo = { f.data, f.data + f.len };
                        struct wfield fo;
                        while ((r = wire_next(&wo, &fo)) > 0)
                                if (fo.num == 7 && fo.wt == 0)  /* map_entry */
                                        map_entry = fo.v != 0;
                        if (r < 0)
                                return r;
                }
        }
        if (r < 0 || !name)
                return -EINVAL;

        struct ds_msg *m = arena_alloc(&ds->arena, sizeof *m);
        char *full = arena_join(&ds->arena, scope, ".", name, strlen(name));
        if (!m || !full)
                return -ENOMEM;
        m->pub.full_name = full;
        m->pub.map_entry = map_entry;
        m->pub.file = wk->file;
        if (n_fields) {
                m->fields = arena_alloc(&ds->arena, n_fields * sizeof *m->fields);
                if (!m->fields)
                        return -ENOMEM;
        }
        if ((r = add_symbol(wk, full)) < 0 || (r = pvec_push(&ds->msgs, m)) < 0)
                return r;
        if ((r = smap_put(&ds->msg_by_name, full, m)) < 0)
                return r;

        /* Pass 2: fields, nested types, enums, extensions. */
        w = (struct wire){ data, data + len };
        while ((r = wire_next(&w, &f)) > 0) {
                if (f.wt != 2)
                        continue;
                switch (f.num) {
                case 2: {
                        struct ds_field *df = &m->fields[m->n_fields];
                        if ((r = walk_field(wk, df, f.data, f.len)) < 0)
                                return r;
                        m->n_fields++;
                        char *ff = arena_join(&ds->arena, full, ".", df->name,
                                              strlen(df->name));
                        if (!ff)
                                return -ENOMEM;
                        if ((r = add_symbol(wk, ff)) < 0)
                                return r;
                        break;
                }
                case 3:
                        r = walk_message(wk, full, f.data, f.len, depth + 1);
                        break;
                case 4:
                        r = walk_enum(wk, full, f.data, f.len);
                        break;
                case 6:
                        r = walk_extension(wk, full, f.data, f.len);
                        break;
                default:
                        break;
                }
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (m->n_fields)
                qsort(m->fields, m->n_fields, sizeof *m->fields, cmp_field);
        return 0;
}

static int walk_method(struct walk *wk, const char *svc, const uint8_t *data, size_t len)
{
        struct rpc_descset *ds = wk->ds;
        struct rpc_descset_method *m = arena_alloc(&ds->arena, sizeof *m);
        struct wire w = { data, data + len };
        struct wfield f;
        const char *in = NULL, *out = NULL;
        int r;

        if (!m)
                return -ENOMEM;
        while ((r = wire_next(&w, &f)) > 0) {
                switch (f.num) {
                case 1:
                        r = wire_str(ds, &f, &m->name);
                        break;
                case 2:
                        r = wire_str(ds, &f, &in);
                        break;
                case 3:
                        r = wire_str(ds, &f, &out);
                        break;
                case 4: {                               /* MethodOptions */
                        if (f.wt != 2)
                                return -EINVAL;
                        struct wire wo = { f.data, f.data + f.len };
                        struct wfield fo;
                        while ((r = wire_next(&wo, &fo)) > 0) {
                                if (fo.num == 34 && fo.wt == 0) {  /* idempotency_level */
                                        m->no_side_effects = fo.v == 1;
                                        m->idempotent = fo.v == 2;
                                }
                        }
                        break;
                }
                case 5:
                        m->client_streaming = f.wt == 0 && f.v != 0;
                        break;
                case 6:
                        m->server_streaming = f.wt == 0 && f.v != 0;
                        break;
                default:
                        break;
                }
                if (r < 0)
                        return r;
        }
        if (r < 0 || !m->name || !in || !out)
                return -EINVAL;
        m->input_type = type_name(in);
        m->output_type = type_name(out);
        m->service = svc;
        m->file = wk->file;
        m->full_name = arena_join(&ds->arena, svc, ".", m->name, strlen(m->name));
        char *slash = arena_join(&ds->arena, "/", "", svc, strlen(svc));
        m->path = slash ? arena_join(&ds->arena, slash, "/", m->name, strlen(m->name)) : NULL;
        if (!m->full_name || !m->path)
                return -ENOMEM;
        if ((r = add_symbol(wk, m->full_name)) < 0 || (r = pvec_push(&ds->methods, m)) < 0)
                return r;
        return smap_put(&ds->method_by_path, m->path, m) < 0 ? -ENOMEM : 0;
}

static int walk_service(struct walk *wk, const char *pkg, const uint8_t *data, size_t len)
{
        struct wire w = { data, data + len };
        struct wfield f;
        const char *name = NULL;
        int r;
        while ((r = wire_next(&w, &f)) > 0)
                if (f.num == 1 && (r = wire_str(wk->ds, &f, &name)) < 0)
                        return r;
        if (r < 0 || !name)
                return -EINVAL;
        char *full = arena_join(&wk->ds->arena, pkg, ".", name, strlen(name));
        if (!full)
                return -ENOMEM;
        if ((r = add_symbol(wk, full)) < 0 || (r = pvec_push(&wk->ds->services, full)) < 0)
                return r;
        w = (struct wire){ data, data + len };
        while ((r = wire_next(&w, &f)) > 0)
                if (f.num == 2 && f.wt == 2 && (r = walk_method(wk, full, f.data, f.len)) < 0)
                        return r;
        return r;
}

/* Dependencies are resolved after every file is known, so the set's order
 * does not matter; |dep_names| holds the raw import names meanwhile. */
struct file_tmp {
        struct rpc_descset_file *f;
        struct pvec dep_names;          /* const char * */
};

static int walk_file(struct rpc_descset *ds, struct file_tmp *ft, const uint8_t *data,
                     size_t len, struct ha_err *err)
{
        struct walk wk = { ds, ft->f, err };
        struct wire w = { data, data + len };
        struct wfield f;
        int r;

        ft->f->data = data;
        ft->f->len = len;
        ft->f->package = "";
        while ((r = wire_next(&w, &f)) > 0) {
                const char *s;
                if (f.num == 1 && (r = wire_str(ds, &f, &ft->f->name)) < 0)
                        return walk_fail(&wk, r, "name");
                if (f.num == 2 && (r = wire_str(ds, &f, &ft->f->package)) < 0)
                        return walk_fail(&wk, r, "package");
                if (f.num == 3) {
                        if ((r = wire_str(ds, &f, &s)) < 0 ||
                            (r = pvec_push(&ft->dep_names, (void *)s)) < 0)
                                return walk_fail(&wk, r, "dependency");
                }
        }
        if (r < 0 || !ft->f->name)
                return walk_fail(&wk, r < 0 ? r : -EINVAL, "FileDescriptorProto");
        r = smap_put(&ds->file_by_name, ft->f->name, ft->f);
        if (r < 0)
                return walk_fail(&wk, r, "name");
        if (r == 0)
                return ha_err_set(err, -EINVAL, "descriptor set: file \"%s\" appears twice",
                                  ft->f->name);

        w = (struct wire){ data, data + len };
        while ((r = wire_next(&w, &f)) > 0) {
                if (f.wt != 2)
                        continue;
                const char *what = NULL;
                switch (f.num) {
                case 4:
                        r = walk_message(&wk, ft->f->package, f.data, f.len, 0);
                        what = "message";
                        break;
                case 5:
                        r = walk_enum(&wk, ft->f->package, f.data, f.len);
                        what = "enum";
                        break;
                case 6:
                        r = walk_service(&wk, ft->f->package, f.data, f.len);
                        what = "service";
                        break;
                case 7:
                        r = walk_extension(&wk, ft->f->package, f.data, f.len);
                        what = "extension";
                        break;
                default:
                        break;
                }
                if (r < 0)
                        return walk_fail(&wk, r, what);
        }
        return r < 0 ? walk_fail(&wk, r, "FileDescriptorProto") : 0;
}

/* Post-order DFS over imports: appends |i|'s imports, then |i|, to |out|.
 * state: 0 unvisited, 1 on the current path (a cycle if seen again), 2 done. */
static int closure_visit(struct rpc_descset *ds, struct file_tmp *fts, size_t i,
                         uint8_t *state, struct pvec *out, struct ha_err *err)
{
        if (state[i] == 2)
                return 0;
        if (state[i] == 1)
                return ha_err_set(err, -EINVAL, "descriptor set: import cycle through \"%s\"",
                                  fts[i].f->name);
        state[i] = 1;
        for (size_t d = 0; d < fts[i].dep_names.n; d++) {
                const char *dn = fts[i].dep_names.v[d];
                struct rpc_descset_file *df = smap_get(&ds->file_by_name, dn, strlen(dn));
                if (!df)
                        return ha_err_set(err, -EINVAL,
                                          "descriptor set: \"%s\" imports \"%s\", which is not in the set",
                                          fts[i].f->name, dn);
                size_t j = 0;
                while (fts[j].f != df)
                        j++;
                int r = closure_visit(ds, fts, j, state, out, err);
                if (r < 0)
                        return r;
        }
        state[i] = 2;
        return pvec_push(out, fts[i].f) < 0 ? ha_err_set(err, -ENOMEM, "out of memory") : 0;
}

static int build_closures(struct rpc_descset *ds, struct file_tmp *fts, size_t n,
                          struct ha_err *err)
{
        uint8_t *state = calloc(n ? n : 1, 1);
        struct pvec out = { 0 };
        int r = 0;
        if (!state)
                return ha_err_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n && r == 0; i++) {
                memset(state, 0, n);
                out.n = 0;
                r = closure_visit(ds, fts, i, state, &out, err);
                if (r < 0)
                        break;
                const struct rpc_descset_file **cl =
                        arena_alloc(&ds->arena, out.n * sizeof *cl);
                if (!cl) {
                        r = ha_err_set(err, -ENOMEM, "out of memory");
                        break;
                }
                memcpy(cl, out.v, out.n * sizeof *cl);
                fts[i].f->closure = cl;
                fts[i].f->n_closure = out.n;
        }
        free(out.v);
        free(state);
        return r;
}

/* ---- protobuf-c type registration -------------------------------------- */

static const struct ds_field *msg_field(const struct ds_msg *m, uint32_t number)
{
        size_t lo = 0, hi = m->n_fields;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (m->fields[mid].number == number)
                        return &m->fields[mid];
                if (m->fields[mid].number < number)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static int register_c(struct rpc_descset *ds, const ProtobufCMessageDescriptor *d,
                      unsigned depth)
{
        struct pmap_slot *s = pmap_find(&ds->msg_by_c, d);
        int r;

        if (s && s->key)
                return 0;
        if (depth > DS_MAX_DEPTH || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
                return -EINVAL;
        struct ds_msg *m = smap_get(&ds->msg_by_name, d->name, strlen(d->name));
        if (!m || m->pub.cdesc) {
                /* Not in the set (or a second C descriptor of one type): a
                 * record of its own, names computed. */
                m = arena_alloc(&ds->arena, sizeof *m);
                if (!m)
                        return -ENOMEM;
                m->pub.full_name = d->name;
                if ((r = pvec_push(&ds->msgs, m)) < 0)
                        return r;
        }
        const char **names = arena_alloc(&ds->arena, (d->n_fields + 1) * sizeof *names);
        if (!names)
                return -ENOMEM;
        for (unsigned i = 0; i < d->n_fields; i++) {
                const struct ds_field *df = msg_field(m, d->fields[i].id);
                if (df && df->json_name)
                        names[i] = df->json_name;
                else if (!(names[i] = json_name_compute(&ds->arena, d->fields[i].name)))
                        return -ENOMEM;
        }
        m->pub.cdesc = d;
        m->pub.json_names = names;
        if ((r = pmap_put(&ds->msg_by_c, d, m)) < 0)
                return r;
        for (unsigned i = 0; i < d->n_fields; i++) {
                if (d->fields[i].type != PROTOBUF_C_TYPE_MESSAGE)
                        continue;
                if ((r = register_c(ds, d->fields[i].descriptor, depth + 1)) < 0)
                        return r;
        }
        return 0;
}

static void link_methods(struct rpc_descset *ds)
{
        for (size_t i = 0; i < ds->methods.n; i++) {
                struct rpc_descset_method *m = ds->methods.v[i];
                const struct rpc_descset_msg *in = rpc_descset_msg_by_name(ds, m->input_type);
                const struct rpc_descset_msg *out = rpc_descset_msg_by_name(ds, m->output_type);
                m->input = in ? in->cdesc : NULL;
                m->output = out ? out->cdesc : NULL;
        }
}

static int index_extensions(struct rpc_descset *ds)
{
        for (size_t i = 0; i < ds->exts.n; i++) {
                struct ds_ext *e = ds->exts.v[i];
                struct ds_msg *m = smap_get(&ds->msg_by_name, e->extendee, strlen(e->extendee));
                if (!m)
                        continue;       /* extends a type outside the set */
                if (m->n_ext == m->cap_ext) {
                        size_t cap = m->cap_ext ? m->cap_ext * 2 : 8;
                        uint32_t *v = arena_alloc(&ds->arena, cap * sizeof *v);
                        if (!v)
                                return -ENOMEM;
                        if (m->n_ext)
                                memcpy(v, m->ext_numbers, m->n_ext * sizeof *v);
                        m->ext_numbers = v;
                        m->cap_ext = cap;
                }
                m->ext_numbers[m->n_ext++] = e->number;
        }
        return 0;
}

/* ---- public ------------------------------------------------------------ */

void rpc_descset_free(rpc_descset *ds)
{
        if (!ds)
                return;
        free(ds->files.v);
        free(ds->services.v);
        free(ds->methods.v);
        free(ds->msgs.v);
        free(ds->exts.v);
        free(ds->file_by_name.slots);
        free(ds->symbols.slots);
        free(ds->msg_by_name.slots);
        free(ds->method_by_path.slots);
        free(ds->msg_by_c.slots);
        arena_done(&ds->arena);
        free(ds);
}

int rpc_descset_new(const uint8_t *blob, size_t len,
                    const ProtobufCMessageDescriptor *const *types, size_t n_types,
                    rpc_descset **ret, struct ha_err *err)
{
        struct rpc_descset *ds = calloc(1, sizeof *ds);
        struct pvec fts = { 0 };        /* struct file_tmp * */
        struct wire w = { blob, blob + len };
        struct wfield f;
        int r;

        if (!ds)
                return ha_err_set(err, -ENOMEM, "out of memory");
        while ((r = wire_next(&w, &f)) > 0) {
                if (f.num != 1 || f.wt != 2)
                        continue;
                struct file_tmp *ft = calloc(1, sizeof *ft);
                if (!ft || pvec_push(&fts, ft) < 0) {
                        free(ft);
                        r = ha_err_set(err, -ENOMEM, "out of memory");
                        goto out_free;
                }
                ft->f = arena_alloc(&ds->arena, sizeof *ft->f);
                if (!ft->f || pvec_push(&ds->files, ft->f) < 0) {
                        r = ha_err_set(err, -ENOMEM, "out of memory");
                        goto out_free;
                }
                if ((r = walk_file(ds, ft, f.data, f.len, err)) < 0)
                        goto out_free;
        }
        if (r < 0) {
                r = ha_err_set(err, -EINVAL, "descriptor set: malformed FileDescriptorSet");
                goto out_free;
        }
        if (fts.n == 0) {
                r = ha_err_set(err, -EINVAL, "descriptor set: no files");
                goto out_free;
        }
        {
                struct file_tmp *arr = calloc(fts.n, sizeof *arr);
                if (!arr) {
                        r = ha_err_set(err, -ENOMEM, "out of memory");
                        goto out_free;
                }
                for (size_t i = 0; i < fts.n; i++)
                        arr[i] = *(struct file_tmp *)fts.v[i];
                r = build_closures(ds, arr, fts.n, err);
                free(arr);
                if (r < 0)
                        goto out_free;
        }
        if ((r = index_extensions(ds)) < 0) {
                r = ha_err_set(err, r, "out of memory");
                goto out_free;
        }
        for (size_t i = 0; i < n_types; i++) {
                if ((r = register_c(ds, types[i], 0)) < 0) {
                        r = ha_err_set(err, r, "cannot register protobuf-c type %s",
                                       types[i]->name);
                        goto out_free;
                }
        }
        link_methods(ds);
        *ret = ds;
        ds = NULL;
        r = 0;
out_free:
        for (size_t i = 0; i < fts.n; i++) {
                struct file_tmp *ft = fts.v[i];
                free(ft->dep_names.v);
                free(ft);
        }
        free(fts.v);
        rpc_descset_free(ds);
        return r;
}

size_t rpc_descset_service_count(const rpc_descset *ds)
{
        return ds->services.n;
}

const char *rpc_descset_service_name(const rpc_descset *ds, size_t i)
{
        return i < ds->services.n ? ds->services.v[i] : NULL;
}

size_t rpc_descset_method_count(const rpc_descset *ds)
{
        return ds->methods.n;
}

const struct rpc_descset_method *rpc_descset_method_at(const rpc_descset *ds, size_t i)
{
        return i < ds->methods.n ? ds->methods.v[i] : NULL;
}

const struct rpc_descset_method *rpc_descset_method_by_path(const rpc_descset *ds,
                                                            const char *path, size_t len)
{
        return smap_get(&ds->method_by_path, path, len);
}

size_t rpc_descset_file_count(const rpc_descset *ds)
{
        return ds->files.n;
}

const struct rpc_descset_file *rpc_descset_file_at(const rpc_descset *ds, size_t i)
{
        return i < ds->files.n ? ds->files.v[i] : NULL;
}

const struct rpc_descset_file *rpc_descset_file_by_name(const rpc_descset *ds,
                                                        const char *name)
{
        return smap_get(&ds->file_by_name, name, strlen(name));
}

const struct rpc_descset_file *rpc_descset_file_containing_symbol(const rpc_descset *ds,
                                                                  const char *symbol)
{
        return smap_get(&ds->symbols, symbol, strlen(symbol));
}

const struct rpc_descset_file *rpc_descset_file_containing_extension(const rpc_descset *ds,
                                                                     const char *type,
                                                                     uint32_t number)
{
        for (size_t i = 0; i < ds->exts.n; i++) {
                const struct ds_ext *e = ds->exts.v[i];
                if (e->number == number && strcmp(e->extendee, type) == 0)
                        return e->file;
        }
        return NULL;
}

int rpc_descset_extension_numbers(const rpc_descset *ds, const char *type, uint32_t *out,
                                  size_t max)
{
        const struct ds_msg *m = smap_get(&ds->msg_by_name, type, strlen(type));
        if (!m)
                return -ENOENT;
        for (size_t i = 0; i < m->n_ext && i < max; i++)
                out[i] = m->ext_numbers[i];
        return (int)m->n_ext;
}

const struct rpc_descset_msg *rpc_descset_msg_by_name(const rpc_descset *ds,
                                                      const char *full_name)
{
        const struct ds_msg *m = smap_get(&ds->msg_by_name, full_name, strlen(full_name));
        return m ? &m->pub : NULL;
}

const struct rpc_descset_msg *rpc_descset_msg_by_c(const rpc_descset *ds,
                                                   const ProtobufCMessageDescriptor *d)
{
        const struct pmap_slot *s = pmap_find(&ds->msg_by_c, d);
        return s && s->key ? &((const struct ds_msg *)s->val)->pub : NULL;
}

const char *rpc_descset_json_name(const rpc_descset *ds, const char *full_name,
                                  uint32_t number)
{
        const struct ds_msg *m = smap_get(&ds->msg_by_name, full_name, strlen(full_name));
        const struct ds_field *f = m ? msg_field(m, number) : NULL;
        return f ? f->json_name : NULL;
}
