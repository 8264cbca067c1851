/*
 * spec.c - what a client may ask for, checked once at the door.
 *
 * sbx_spec_normalize() turns a borrowed request into the owned, normalised
 * spec a record keeps: defaults filled in, limits enforced, names checked
 * against allow-lists (an image is a name, never a path), maps sorted so two
 * equal requests compare equal whatever order the client sent the keys in.
 * That equality is what makes Create idempotent. Records and events are deep
 * copies of these values, so every size here is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/err.h"
#include "sandbox/sbx_int.h"

bool sbx_id_valid(const char *id)
{
        if (!id || !id[0])
                return false;
        size_t n = 0;
        for (const char *p = id; *p; p++, n++) {
                char c = *p;
                bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
                if (n == 0 ? !alnum : !(alnum || c == '-'))
                        return false;
                if (n >= SBX_ID_MAX)
                        return false;
        }
        return true;
}

bool sbx_image_valid(const char *name)
{
        if (!name || !name[0])
                return false;
        size_t n = 0;
        for (const char *p = name; *p; p++, n++) {
                char c = *p;
                bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9');
                if (n == 0 ? !alnum : !(alnum || c == '.' || c == '_' || c == '-'))
                        return false;
                if (n >= SBX_IMAGE_MAX)
                        return false;
        }
        return true;
}

/* "a.b.c.d", "a.b.c.d/n", "v6", "v6/n": the address must parse and the
 * prefix fit the family. Whether host bits are set is the net module's call. */
bool sbx_cidr_valid(const char *cidr)
{
        char addr[INET6_ADDRSTRLEN + 1];
        const char *slash = strchr(cidr, '/');
        size_t alen = slash ? (size_t)(slash - cidr) : strlen(cidr);
        if (alen == 0 || alen >= sizeof addr)
                return false;
        memcpy(addr, cidr, alen);
        addr[alen] = '\0';
        unsigned char buf[16];
        int maxp;
        if (inet_pton(AF_INET, addr, buf) == 1)
                maxp = 32;
        else if (inet_pton(AF_INET6, addr, buf) == 1)
                maxp = 128;
        else
                return false;
        if (!slash)
                return true;
        const char *p = slash + 1;
        if (!*p || strlen(p) > 3)
                return false;
        int v = 0;
        for (; *p; p++) {
                if (*p < '0' || *p > '9')
                        return false;
                v = v * 10 + (*p - '0');
        }
        return v <= maxp;
}

int sbx_id_generate(char *ret)
{
        static const char hex[] = "0123456789abcdef";
        uint8_t rnd[8];
        ssize_t n = getrandom(rnd, sizeof rnd, 0);
        if (n != (ssize_t)sizeof rnd)
                return n < 0 ? -errno : -EIO;
        for (size_t i = 0; i < sizeof rnd; i++) {
                ret[2 * i] = hex[rnd[i] >> 4];
                ret[2 * i + 1] = hex[rnd[i] & 15];
        }
        ret[2 * sizeof rnd] = '\0';
        return 0;
}

static int kv_cmp(const void *a, const void *b)
{
        return strcmp(((const struct sbx_kv *)a)->key, ((const struct sbx_kv *)b)->key);
}

int sbx_map_sort(struct sbx_map *m)
{
        if (m->n > 1)
                qsort(m->items, m->n, sizeof *m->items, kv_cmp);
        for (size_t i = 1; i < m->n; i++)
                if (strcmp(m->items[i - 1].key, m->items[i].key) == 0)
                        return -EINVAL;
        return 0;
}

static void map_done(struct sbx_map *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free(m->items[i].key);
                free(m->items[i].value);
        }
        free(m->items);
        m->items = NULL;
        m->n = 0;
}

static void strv_done(struct sbx_strv *v)
{
        for (size_t i = 0; i < v->n; i++)
                free(v->items[i]);
        free(v->items);
        v->items = NULL;
        v->n = 0;
}

void sbx_spec_done(struct sbx_spec *s)
{
        if (!s)
                return;
        free(s->id);
        free(s->image);
        map_done(&s->metadata);
        map_done(&s->env);
        strv_done(&s->egress.allow_cidrs);
        strv_done(&s->egress.deny_cidrs);
        memset(s, 0, sizeof *s);
}

static int map_copy(struct sbx_map *dst, const struct sbx_map *src)
{
        dst->n = 0;
        dst->items = NULL;
        if (src->n == 0)
                return 0;
        dst->items = calloc(src->n, sizeof *dst->items);
        if (!dst->items)
                return -ENOMEM;
        for (size_t i = 0; i < src->n; i++) {
                dst->items[i].key = strdup(src->items[i].key ? src->items[i].key : "");
                dst->items[i].value = strdup(src->items[i].value ? src->items[i].value : "");
                dst->n++;
                if (!dst->items[i].key || !dst->items[i].value)
                        return -ENOMEM;
        }
        return 0;
}

static int strv_copy(struct sbx_strv *dst, const struct sbx_strv *src)
{
        dst->n = 0;
        dst->items = NULL;
        if (src->n == 0)
                return 0;
        dst->items = calloc(src->n, sizeof *dst->items);
        if (!dst->items)
                return -ENOMEM;
        for (size_t i = 0; i < src->n; i++) {
                dst->items[i] = strdup(src->items[i] ? src->items[i] : "");
                dst->n++;
                if (!dst->items[i])
                        return -ENOMEM;
        }
        return 0;
}

int sbx_spec_copy(struct sbx_spec *dst, const struct sbx_spec *src)
{
        memset(dst, 0, sizeof *dst);
        dst->vcpus = src->vcpus;
        dst->memory_mib = src->memory_mib;
        dst->timeout_s = src->timeout_s;
        dst->egress.mode = src->egress.mode;
        if ((src->id && !(dst->id = strdup(src->id))) ||
            (src->image && !(dst->image = strdup(src->image))) ||
            map_copy(&dst->metadata, &src->metadata) < 0 || map_copy(&dst->env, &src->env) < 0 ||
            strv_copy(&dst->egress.allow_cidrs, &src->egress.allow_cidrs) < 0 ||
            strv_copy(&dst->egress.deny_cidrs, &src->egress.deny_cidrs) < 0) {
                sbx_spec_done(dst);
                return -ENOMEM;
        }
        return 0;
}

static int check_map(const struct sbx_map *m, const char *what, bool env, struct ha_err *err)
{
        if (m->n > SBX_MAP_MAX_ENTRIES)
                return ha_err_set(err, -EINVAL, "%s has %zu entries, more than the limit %d", what,
                                  m->n, SBX_MAP_MAX_ENTRIES);
        if (m->n && !m->items)
                return ha_err_set(err, -EINVAL, "%s: no items", what);
        for (size_t i = 0; i < m->n; i++) {
                const char *k = m->items[i].key, *v = m->items[i].value;
                if (!k || !k[0])
                        return ha_err_set(err, -EINVAL, "%s: empty key", what);
                size_t kl = strlen(k), vl = v ? strlen(v) : 0;
                if (kl > SBX_KEY_MAX)
                        return ha_err_set(err, -EINVAL, "%s: key of %zu bytes, more than %d", what,
                                          kl, SBX_KEY_MAX);
                if (vl > SBX_VALUE_MAX)
                        return ha_err_set(err, -EINVAL,
                                          "%s: value of key \"%.64s\" is %zu bytes, more than %d",
                                          what, k, vl, SBX_VALUE_MAX);
                /* An env name becomes NAME=value in a process environment. */
                if (env && strchr(k, '='))
                        return ha_err_set(err, -EINVAL, "env: key \"%.64s\" contains '='", k);
        }
        return 0;
}

static int check_cidrs(const struct sbx_strv *v, const char *what, struct ha_err *err)
{
        if (v->n > SBX_CIDR_MAX_ENTRIES)
                return ha_err_set(err, -EINVAL, "egress.%s has %zu entries, more than %d", what,
                                  v->n, SBX_CIDR_MAX_ENTRIES);
        for (size_t i = 0; i < v->n; i++)
                if (!v->items[i] || !sbx_cidr_valid(v->items[i]))
                        return ha_err_set(err, -EINVAL, "egress.%s[%zu]: \"%.64s\" is not a CIDR",
                                          what, i, v->items[i] ? v->items[i] : "");
        return 0;
}

int sbx_spec_normalize(const struct sbx_config *cfg, const struct sbx_spec *in,
                       struct sbx_spec *out, struct ha_err *err)
{
        int r;
        memset(out, 0, sizeof *out);
        if (in->id && in->id[0] && !sbx_id_valid(in->id))
                return ha_err_set(err, -EINVAL,
                                  "sandbox_id \"%.70s\" must match [a-z0-9][a-z0-9-]{0,62}", in->id);
        /* <run-dir>/<id> is a sandbox's VMM directory and <run-dir>/vmroot
         * the mount point every VMM's private tmpfs sits on (vm/vm.h). */
        if (in->id && strcmp(in->id, SBX_ID_RESERVED) == 0)
                return ha_err_set(err, -EINVAL, "sandbox_id \"%s\" is reserved (the VMMs' shared mount "
                                  "directory)", in->id);
        if (!in->image || !sbx_image_valid(in->image))
                return ha_err_set(err, -EINVAL,
                                  "image \"%.70s\" must be a name matching [A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                                  in->image ? in->image : "");
        uint32_t vcpus = in->vcpus ? in->vcpus : cfg->default_vcpus;
        uint32_t mem = in->memory_mib ? in->memory_mib : cfg->default_memory_mib;
        uint32_t ttl = in->timeout_s ? in->timeout_s : cfg->default_ttl_s;
        if (vcpus > cfg->max_vcpus)
                return ha_err_set(err, -EINVAL, "vcpus %u above the per-sandbox maximum %u", vcpus,
                                  cfg->max_vcpus);
        if (mem > cfg->max_memory_mib)
                return ha_err_set(err, -EINVAL, "memory_mib %u above the per-sandbox maximum %u",
                                  mem, cfg->max_memory_mib);
        if (mem < cfg->min_memory_mib)
                return ha_err_set(err, -EINVAL, "memory_mib %u below the per-sandbox minimum %u",
                                  mem, cfg->min_memory_mib);
        if (ttl > cfg->max_ttl_s)
                return ha_err_set(err, -EINVAL, "timeout_seconds %u above the maximum %u", ttl,
                                  cfg->max_ttl_s);
        if ((unsigned)in->egress.mode > SBX_EGRESS_DENY_LIST)
                return ha_err_set(err, -EINVAL, "egress.mode %u unknown", (unsigned)in->egress.mode);
        if ((r = check_map(&in->metadata, "metadata", false, err)) < 0 ||
            (r = check_map(&in->env, "env", true, err)) < 0 ||
            (r = check_cidrs(&in->egress.allow_cidrs, "allow_cidrs", err)) < 0 ||
            (r = check_cidrs(&in->egress.deny_cidrs, "deny_cidrs", err)) < 0)
                return r;

        if (sbx_spec_copy(out, in) < 0)
                return ha_err_set(err, -ENOMEM, "out of memory copying the sandbox spec");
        if (!out->id || !out->id[0]) {
                free(out->id);
                out->id = malloc(SBX_ID_MAX + 1);
                if (!out->id) {
                        r = ha_err_set(err, -ENOMEM, "out of memory");
                        goto out_done;
                }
                r = sbx_id_generate(out->id);
                if (r < 0) {
                        ha_err_set(err, r, "cannot generate a sandbox id: %s", strerror(-r));
                        goto out_done;
                }
        }
        out->vcpus = vcpus;
        out->memory_mib = mem;
        out->timeout_s = ttl;
        if (out->egress.mode == SBX_EGRESS_UNSPECIFIED)
                out->egress.mode = SBX_EGRESS_ALLOW_ALL;
        if (sbx_map_sort(&out->metadata) < 0) {
                r = ha_err_set(err, -EINVAL, "metadata has a duplicate key");
                goto out_done;
        }
        if (sbx_map_sort(&out->env) < 0) {
                r = ha_err_set(err, -EINVAL, "env has a duplicate key");
                goto out_done;
        }
        return 0;

out_done:
        sbx_spec_done(out);
        return r;
}

static bool str_eq(const char *a, const char *b)
{
        return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool map_equal(const struct sbx_map *a, const struct sbx_map *b)
{
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (!str_eq(a->items[i].key, b->items[i].key) ||
                    !str_eq(a->items[i].value, b->items[i].value))
                        return false;
        return true;
}

/* CIDR lists are compared in order: a client retrying sends the same list. */
static bool strv_equal(const struct sbx_strv *a, const struct sbx_strv *b)
{
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (!str_eq(a->items[i], b->items[i]))
                        return false;
        return true;
}

bool sbx_spec_equal(const struct sbx_spec *a, const struct sbx_spec *b)
{
        return str_eq(a->id, b->id) && str_eq(a->image, b->image) && a->vcpus == b->vcpus &&
               a->memory_mib == b->memory_mib && a->timeout_s == b->timeout_s &&
               map_equal(&a->metadata, &b->metadata) && map_equal(&a->env, &b->env) &&
               a->egress.mode == b->egress.mode &&
               strv_equal(&a->egress.allow_cidrs, &b->egress.allow_cidrs) &&
               strv_equal(&a->egress.deny_cidrs, &b->egress.deny_cidrs);
}

/* |needles| is sorted (normalised filter) or not: linear per needle is fine
 * at SBX_MAP_MAX_ENTRIES. */
bool sbx_map_contains(const struct sbx_map *haystack, const struct sbx_map *needles)
{
        for (size_t i = 0; i < needles->n; i++) {
                bool found = false;
                for (size_t j = 0; j < haystack->n && !found; j++)
                        found = str_eq(haystack->items[j].key, needles->items[i].key) &&
                                str_eq(haystack->items[j].value, needles->items[i].value);
                if (!found)
                        return false;
        }
        return true;
}

void sbx_record_done(struct sbx_record *r)
{
        if (!r)
                return;
        sbx_spec_done(&r->spec);
}

void sbx_records_free(struct sbx_record *recs, size_t n)
{
        for (size_t i = 0; recs && i < n; i++)
                sbx_record_done(&recs[i]);
        free(recs);
}

int sbx_record_copy(struct sbx_record *dst, const struct sbx_record *src)
{
        *dst = *src;
        if (sbx_spec_copy(&dst->spec, &src->spec) < 0) {
                memset(dst, 0, sizeof *dst);
                return -ENOMEM;
        }
        return 0;
}

void sbx_event_done(struct sbx_event *ev)
{
        if (ev)
                sbx_record_done(&ev->rec);
}

const char *sbx_state_name(enum sbx_state s)
{
        switch (s) {
        case SBX_STATE_CREATING: return "creating";
        case SBX_STATE_RUNNING: return "running";
        case SBX_STATE_PAUSED: return "paused";
        case SBX_STATE_STOPPING: return "stopping";
        case SBX_STATE_FAILED: return "failed";
        case SBX_STATE_GONE: return "gone";
        }
        return "unknown";
}

const char *sbx_event_kind_name(enum sbx_event_kind k)
{
        switch (k) {
        case SBX_EVENT_CREATED: return "created";
        case SBX_EVENT_RUNNING: return "running";
        case SBX_EVENT_PAUSED: return "paused";
        case SBX_EVENT_RESUMED: return "resumed";
        case SBX_EVENT_EXPIRED: return "expired";
        case SBX_EVENT_DESTROYED: return "destroyed";
        case SBX_EVENT_FAILED: return "failed";
        }
        return "unknown";
}
