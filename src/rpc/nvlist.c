/*
 * nvlist.c - name/value lists for request headers, metadata, response
 * headers and trailers, and the rules for which names are metadata.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "rpc/rpc_int.h"

int rpc_nvlist_add(struct rpc_nvlist *l, const char *name, size_t nlen, const uint8_t *val, size_t vlen)
{
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 8;
                struct rpc_nv *v = reallocarray(l->v, cap, sizeof *v);
                if (!v)
                        return -ENOMEM;
                l->v = v;
                l->cap = cap;
        }
        /* Name and value share one allocation (name NUL value NUL): every
         * call stores several headers and trailers, and malloc/free were
         * about a fifth of the loop's CPU on a tiny unary call (see
         * docs/BENCHMARKS.md). rpc_nvlist_clear frees only the name. */
        struct rpc_nv *e = &l->v[l->n];
        char *p = malloc(nlen + 1 + vlen + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p, name, nlen);
        p[nlen] = '\0';
        e->name = p;
        e->value = (uint8_t *)p + nlen + 1;
        if (vlen)
                memcpy(e->value, val, vlen);
        e->value[vlen] = '\0';
        e->value_len = vlen;
        l->n++;
        return 0;
}

int rpc_nvlist_add_str(struct rpc_nvlist *l, const char *name, const char *val)
{
        return rpc_nvlist_add(l, name, strlen(name), (const uint8_t *)val, strlen(val));
}

void rpc_nvlist_clear(struct rpc_nvlist *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i].name);  /* the value lives in the same block */
        free(l->v);
        l->v = NULL;
        l->n = l->cap = 0;
}

const struct rpc_nv *rpc_nvlist_get(const struct rpc_nvlist *l, const char *name)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i].name, name) == 0)
                        return &l->v[i];
        return NULL;
}

bool rpc_header_reserved(const char *n)
{
        static const char *const exact[] = {
                "content-type", "te", "content-length", "content-encoding", "accept-encoding",
                "connection", "keep-alive", "transfer-encoding", "upgrade", "host",
                "x-grpc-web", NULL,
        };
        if (n[0] == ':')
                return true;
        if (strncmp(n, "grpc-", 5) == 0 || strncmp(n, "connect-", 8) == 0)
                return true;
        for (size_t i = 0; exact[i]; i++)
                if (strcmp(n, exact[i]) == 0)
                        return true;
        return false;
}

bool rpc_metadata_key_valid(const char *n)
{
        if (!*n)
                return false;
        for (const char *p = n; *p; p++) {
                char ch = *p;
                if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                      ch == '_' || ch == '.'))
                        return false;
        }
        return !rpc_header_reserved(n);
}

static bool is_bin(const char *name)
{
        size_t n = strlen(name);
        return n > 4 && strcmp(name + n - 4, "-bin") == 0;
}

int rpc_nvlist_append_wire(struct rpc_nvlist *dst, const struct rpc_nvlist *src, const char *prefix)
{
        size_t plen = prefix ? strlen(prefix) : 0;
        for (size_t i = 0; i < src->n; i++) {
                const struct rpc_nv *e = &src->v[i];
                size_t nlen = strlen(e->name);
                char *name = malloc(plen + nlen + 1);
                if (!name)
                        return -ENOMEM;
                if (plen)
                        memcpy(name, prefix, plen);
                memcpy(name + plen, e->name, nlen + 1);
                int r;
                if (is_bin(e->name)) {
                        char *b = malloc(ha_base64_encoded_len(e->value_len));
                        if (!b) {
                                free(name);
                                return -ENOMEM;
                        }
                        size_t bl = ha_base64_encode(e->value, e->value_len, b, false, false);
                        r = rpc_nvlist_add(dst, name, plen + nlen, (uint8_t *)b, bl);
                        free(b);
                } else {
                        r = rpc_nvlist_add(dst, name, plen + nlen, e->value, e->value_len);
                }
                free(name);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool rpc_has_prefix(const char *s, const char *prefix)
{
        return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

bool rpc_token_list_has(const char *list, const char *tok)
{
        size_t tl = strlen(tok);
        for (const char *p = list; p && *p;) {
                while (*p == ' ' || *p == ',')
                        p++;
                size_t n = strcspn(p, ",");
                size_t m = n;
                while (m && p[m - 1] == ' ')
                        m--;
                if (m == tl && strncmp(p, tok, tl) == 0)
                        return true;
                p += n;
        }
        return false;
}
