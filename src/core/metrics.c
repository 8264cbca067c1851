/*
 * metrics.c - the Prometheus registry (see metrics.h).
 *
 * One mutex per registry guards every family and series: updates are a
 * lookup in a short list plus a few additions, far cheaper than the RPCs they
 * count, and a single lock keeps a render consistent across families.
 * Collectors run before the render takes that lock (they update gauges
 * through the normal calls) under a separate lock that remove waits on.
 */
#include "core/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define MAX_COLLECTORS 16

struct series {
        struct series *next;
        char *values[HA_METRIC_MAX_LABELS];
        double value;           /* counter / gauge; histogram: sum */
        uint64_t count;         /* histogram */
        uint64_t bucket[];      /* histogram: per bucket (not cumulative) */
};

struct ha_metric {
        ha_metrics *reg;
        struct ha_metric *next;
        char *name, *help;
        enum ha_metric_type type;
        size_t nlabels;
        char *labels[HA_METRIC_MAX_LABELS];
        double buckets[HA_METRIC_MAX_BUCKETS];
        size_t nbuckets;
        struct series *head, *tail;     /* guarded_by: reg->lock */
        size_t nseries;                 /* guarded_by: reg->lock */
};

struct collector {
        void (*fn)(void *ctx);
        void *ctx;
};

struct ha_metrics {
        pthread_mutex_t lock;
        struct ha_metric *head, *tail;  /* guarded_by: lock */
        uint64_t dropped;               /* guarded_by: lock */
        pthread_mutex_t collect_lock;   /* held while collectors run */
        struct collector collectors[MAX_COLLECTORS]; /* guarded_by: collect_lock */
        size_t ncollectors;
};

int ha_metrics_new(ha_metrics **ret)
{
        ha_metrics *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        pthread_mutex_init(&r->lock, NULL);
        pthread_mutex_init(&r->collect_lock, NULL);
        *ret = r;
        return 0;
}

static void series_free(struct series *s, size_t nlabels)
{
        for (size_t i = 0; i < nlabels; i++)
                free(s->values[i]);
        free(s);
}

static void family_free(struct ha_metric *m)
{
        struct series *s = m->head;
        while (s) {
                struct series *n = s->next;
                series_free(s, m->nlabels);
                s = n;
        }
        for (size_t i = 0; i < m->nlabels; i++)
                free(m->labels[i]);
        free(m->name);
        free(m->help);
        free(m);
}

void ha_metrics_free(ha_metrics *r)
{
        if (!r)
                return;
        struct ha_metric *m = r->head;
        while (m) {
                struct ha_metric *n = m->next;
                family_free(m);
                m = n;
        }
        pthread_mutex_destroy(&r->lock);
        pthread_mutex_destroy(&r->collect_lock);
        free(r);
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static ha_metrics *global_reg;

static void global_init(void)
{
        if (ha_metrics_new(&global_reg) < 0)
                global_reg = NULL;
}

ha_metrics *ha_metrics_global(void)
{
        pthread_once(&global_once, global_init);
        return global_reg;
}

static int series_get_locked(ha_metric *m, const char *const *values, struct series **ret);

/* --- registration ---------------------------------------------------------- */

static bool name_ok(const char *s, bool colon)
{
        if (!s || !*s)
                return false;
        for (const char *p = s; *p; p++) {
                char ch = *p;
                bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                             (colon && ch == ':');
                if (!alpha && !(p != s && ch >= '0' && ch <= '9'))
                        return false;
        }
        return true;
}

static int def_check(const struct ha_metric_def *d, size_t *ret_nlabels)
{
        if (!name_ok(d->name, true) || !d->help)
                return -EINVAL;
        if (d->type != HA_METRIC_COUNTER && d->type != HA_METRIC_GAUGE && d->type != HA_METRIC_HISTOGRAM)
                return -EINVAL;
        size_t n = 0;
        while (n < HA_METRIC_MAX_LABELS && d->labels[n]) {
                const char *l = d->labels[n];
                /* "__" is reserved by Prometheus; "le" is the bucket label. */
                if (!name_ok(l, false) || strncmp(l, "__", 2) == 0 ||
                    (d->type == HA_METRIC_HISTOGRAM && strcmp(l, "le") == 0))
                        return -EINVAL;
                for (size_t j = 0; j < n; j++)
                        if (strcmp(d->labels[j], l) == 0)
                                return -EINVAL;
                n++;
        }
        if (d->type == HA_METRIC_HISTOGRAM) {
                if (!d->buckets || d->nbuckets == 0 || d->nbuckets > HA_METRIC_MAX_BUCKETS)
                        return -EINVAL;
                for (size_t i = 0; i < d->nbuckets; i++)
                        if (d->buckets[i] != d->buckets[i] || (i && d->buckets[i] <= d->buckets[i - 1]))
                                return -EINVAL;
        } else if (d->nbuckets) {
                return -EINVAL;
        }
        *ret_nlabels = n;
        return 0;
}

static bool same_shape(const struct ha_metric *m, const struct ha_metric_def *d, size_t nlabels)
{
        if (m->type != d->type || m->nlabels != nlabels)
                return false;
        for (size_t i = 0; i < nlabels; i++)
                if (strcmp(m->labels[i], d->labels[i]) != 0)
                        return false;
        if (m->type == HA_METRIC_HISTOGRAM) {
                if (m->nbuckets != d->nbuckets)
                        return false;
                for (size_t i = 0; i < m->nbuckets; i++)
                        if (m->buckets[i] != d->buckets[i])
                                return false;
        }
        return true;
}

int ha_metrics_register(ha_metrics *r, const struct ha_metric_def *def, ha_metric **ret)
{
        size_t nlabels;
        if (!r || !def || def_check(def, &nlabels) < 0)
                return -EINVAL;
        pthread_mutex_lock(&r->lock);
        for (struct ha_metric *m = r->head; m; m = m->next) {
                if (strcmp(m->name, def->name) == 0) {
                        bool ok = same_shape(m, def, nlabels);
                        pthread_mutex_unlock(&r->lock);
                        if (!ok)
                                return -EEXIST;
                        *ret = m;
                        return 0;
                }
        }
        struct ha_metric *m = calloc(1, sizeof *m);
        if (!m)
                goto out_enomem;
        m->reg = r;
        m->type = def->type;
        m->name = strdup(def->name);
        m->help = strdup(def->help);
        if (!m->name || !m->help)
                goto out_family;
        for (; m->nlabels < nlabels; m->nlabels++)
                if (!(m->labels[m->nlabels] = strdup(def->labels[m->nlabels])))
                        goto out_family;
        m->nbuckets = def->nbuckets;
        for (size_t i = 0; i < def->nbuckets; i++)
                m->buckets[i] = def->buckets[i];
        /* An unlabelled family has its one series (zero) from the start, so
         * dashboards and rate() see it from the first scrape. */
        struct series *s0;
        if (nlabels == 0 && series_get_locked(m, NULL, &s0) < 0)
                goto out_family;
        if (r->tail)
                r->tail->next = m;
        else
                r->head = m;
        r->tail = m;
        pthread_mutex_unlock(&r->lock);
        *ret = m;
        return 0;
out_family:
        family_free(m);
out_enomem:
        pthread_mutex_unlock(&r->lock);
        return -ENOMEM;
}

/* --- series ---------------------------------------------------------------- */

/* The length |v| is kept at: HA_METRIC_MAX_VALUE bytes at most, never
 * cutting a UTF-8 sequence (the exposition format is UTF-8). */
static size_t value_len(const char *v)
{
        size_t n = strnlen(v, HA_METRIC_MAX_VALUE + 1);
        if (n > HA_METRIC_MAX_VALUE) {
                n = HA_METRIC_MAX_VALUE;
                while (n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80)
                        n--;
        }
        return n;
}

static bool series_match(const struct series *s, size_t nlabels, const char *const *values)
{
        for (size_t i = 0; i < nlabels; i++) {
                const char *v = values[i] ? values[i] : "";
                size_t n = value_len(v);
                if (strlen(s->values[i]) != n || memcmp(s->values[i], v, n) != 0)
                        return false;
        }
        return true;
}

/* Finds or creates the series; with the registry lock held. */
static int series_get_locked(ha_metric *m, const char *const *values, struct series **ret)
{
        if (m->nlabels && !values)
                return -EINVAL;
        for (struct series *s = m->head; s; s = s->next) {
                if (series_match(s, m->nlabels, values)) {
                        *ret = s;
                        return 0;
                }
        }
        if (m->nseries >= HA_METRIC_MAX_SERIES) {
                m->reg->dropped++;
                return -ENOSPC;
        }
        size_t nb = m->type == HA_METRIC_HISTOGRAM ? m->nbuckets : 0;
        struct series *s = calloc(1, sizeof *s + nb * sizeof s->bucket[0]);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < m->nlabels; i++) {
                const char *v = values[i] ? values[i] : "";
                if (!(s->values[i] = strndup(v, value_len(v)))) {
                        series_free(s, i);
                        return -ENOMEM;
                }
        }
        if (m->tail)
                m->tail->next = s;
        else
                m->head = s;
        m->tail = s;
        m->nseries++;
        *ret = s;
        return 0;
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static int update(ha_metric *m, const char *const *values, double v, enum op op)
{
        if (!m || v != v)
                return -EINVAL;
        bool ok = (op == OP_ADD && (m->type == HA_METRIC_GAUGE || (m->type == HA_METRIC_COUNTER && v >= 0))) ||
                  (op == OP_SET && m->type != HA_METRIC_HISTOGRAM) ||
                  (op == OP_OBSERVE && m->type == HA_METRIC_HISTOGRAM);
        if (!ok)
                return -EINVAL;
        pthread_mutex_lock(&m->reg->lock);
        struct series *s;
        int r = series_get_locked(m, values, &s);
        if (r == 0) {
                if (op == OP_ADD) {
                        s->value += v;
                } else if (op == OP_SET) {
                        if (m->type == HA_METRIC_COUNTER && v < s->value)
                                r = -EINVAL;    /* a counter never goes down */
                        else
                                s->value = v;
                } else {
                        size_t i = 0;
                        while (i < m->nbuckets && v > m->buckets[i])
                                i++;
                        if (i < m->nbuckets)
                                s->bucket[i]++;
                        s->value += v;
                        s->count++;
                }
        }
        pthread_mutex_unlock(&m->reg->lock);
        return r;
}

int ha_metric_add(ha_metric *m, const char *const *values, double v)
{
        return update(m, values, v, OP_ADD);
}

int ha_metric_set(ha_metric *m, const char *const *values, double v)
{
        return update(m, values, v, OP_SET);
}

int ha_metric_observe(ha_metric *m, const char *const *values, double v)
{
        return update(m, values, v, OP_OBSERVE);
}

int ha_metric_get(ha_metric *m, const char *const *values, double *ret)
{
        if (!m || (m->nlabels && !values))
                return -EINVAL;
        int r = -ENOENT;
        pthread_mutex_lock(&m->reg->lock);
        for (struct series *s = m->head; s; s = s->next) {
                if (series_match(s, m->nlabels, values)) {
                        *ret = m->type == HA_METRIC_HISTOGRAM ? (double)s->count : s->value;
                        r = 0;
                        break;
                }
        }
        pthread_mutex_unlock(&m->reg->lock);
        return r;
}

void ha_metric_clear(ha_metric *m)
{
        if (!m)
                return;
        pthread_mutex_lock(&m->reg->lock);
        struct series *s = m->head;
        while (s) {
                struct series *n = s->next;
                series_free(s, m->nlabels);
                s = n;
        }
        m->head = m->tail = NULL;
        m->nseries = 0;
        pthread_mutex_unlock(&m->reg->lock);
}

/* --- collectors ------------------------------------------------------------ */

int ha_metrics_add_collector(ha_metrics *r, void (*fn)(void *ctx), void *ctx)
{
        if (!r || !fn)
                return -EINVAL;
        pthread_mutex_lock(&r->collect_lock);
        int ret = -ENOSPC;
        if (r->ncollectors < MAX_COLLECTORS) {
                r->collectors[r->ncollectors++] = (struct collector){ fn, ctx };
                ret = 0;
        }
        pthread_mutex_unlock(&r->collect_lock);
        return ret;
}

void ha_metrics_remove_collector(ha_metrics *r, void (*fn)(void *ctx), void *ctx)
{
        if (!r)
                return;
        pthread_mutex_lock(&r->collect_lock);
        for (size_t i = 0; i < r->ncollectors; i++) {
                if (r->collectors[i].fn == fn && r->collectors[i].ctx == ctx) {
                        memmove(&r->collectors[i], &r->collectors[i + 1],
                                (r->ncollectors - i - 1) * sizeof r->collectors[0]);
                        r->ncollectors--;
                        break;
                }
        }
        pthread_mutex_unlock(&r->collect_lock);
}

/* --- exposition ------------------------------------------------------------ */

static void fmt_num(char *buf, size_t n, double v)
{
        if (v != v)
                snprintf(buf, n, "NaN");
        else if (v > 1.7976931348623157e308)
                snprintf(buf, n, "+Inf");
        else if (v < -1.7976931348623157e308)
                snprintf(buf, n, "-Inf");
        else if (v == (double)(long long)v && v < 1e15 && v > -1e15)
                snprintf(buf, n, "%lld", (long long)v);
        else {
                /* The shortest of %.15g / %.17g that reads back the same:
                 * "0.1", not "0.10000000000000001". */
                snprintf(buf, n, "%.15g", v);
                if (strtod(buf, NULL) != v)
                        snprintf(buf, n, "%.17g", v);
        }
}

/* Escapes per the text format: HELP escapes \ and newline; label values
 * also escape the double quote. */
static int put_escaped(struct ha_buf *b, const char *s, bool quote)
{
        for (const char *p = s; *p; p++) {
                const char *e = NULL;
                if (*p == '\\')
                        e = "\\\\";
                else if (*p == '\n')
                        e = "\\n";
                else if (quote && *p == '"')
                        e = "\\\"";
                int r = e ? ha_buf_append(b, e, 2) : ha_buf_append(b, p, 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Writes name{labels[,le="x"]} value. */
static int put_sample(struct ha_buf *b, const ha_metric *m, const char *suffix, const struct series *s,
                      const char *le, double v)
{
        int r = ha_buf_printf(b, "%s%s", m->name, suffix);
        if (r == 0 && (m->nlabels || le)) {
                r = ha_buf_append(b, "{", 1);
                for (size_t i = 0; r == 0 && i < m->nlabels; i++) {
                        r = ha_buf_printf(b, "%s%s=\"", i ? "," : "", m->labels[i]);
                        if (r == 0)
                                r = put_escaped(b, s->values[i], true);
                        if (r == 0)
                                r = ha_buf_append(b, "\"", 1);
                }
                if (r == 0 && le)
                        r = ha_buf_printf(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
                if (r == 0)
                        r = ha_buf_append(b, "}", 1);
        }
        char num[40];
        fmt_num(num, sizeof num, v);
        if (r == 0)
                r = ha_buf_printf(b, " %s\n", num);
        return r;
}

static int put_family(struct ha_buf *b, const ha_metric *m)
{
        static const char *const type_names[] = { "counter", "gauge", "histogram" };
        int r = ha_buf_printf(b, "# HELP %s ", m->name);
        if (r == 0)
                r = put_escaped(b, m->help, false);
        if (r == 0)
                r = ha_buf_printf(b, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
        for (const struct series *s = m->head; r == 0 && s; s = s->next) {
                if (m->type != HA_METRIC_HISTOGRAM) {
                        r = put_sample(b, m, "", s, NULL, s->value);
                        continue;
                }
                uint64_t cum = 0;
                for (size_t i = 0; r == 0 && i < m->nbuckets; i++) {
                        char le[40];
                        fmt_num(le, sizeof le, m->buckets[i]);
                        cum += s->bucket[i];
                        r = put_sample(b, m, "_bucket", s, le, (double)cum);
                }
                if (r == 0)
                        r = put_sample(b, m, "_bucket", s, "+Inf", (double)s->count);
                if (r == 0)
                        r = put_sample(b, m, "_sum", s, NULL, s->value);
                if (r == 0)
                        r = put_sample(b, m, "_count", s, NULL, (double)s->count);
        }
        return r;
}

int ha_metrics_render(ha_metrics *r, char **ret_text, size_t *ret_len)
{
        if (!r)
                return -EINVAL;
        pthread_mutex_lock(&r->collect_lock);
        for (size_t i = 0; i < r->ncollectors; i++)
                r->collectors[i].fn(r->collectors[i].ctx);
        pthread_mutex_unlock(&r->collect_lock);

        struct ha_buf b;
        ha_buf_init(&b, HA_METRICS_MAX_TEXT);
        int ret = 0;
        pthread_mutex_lock(&r->lock);
        for (const ha_metric *m = r->head; ret == 0 && m; m = m->next)
                ret = put_family(&b, m);
        if (ret == 0)
                ret = ha_buf_printf(&b,
                                    "# HELP hostagent_metrics_series_dropped_total Updates dropped because "
                                    "a family reached its series limit.\n"
                                    "# TYPE hostagent_metrics_series_dropped_total counter\n"
                                    "hostagent_metrics_series_dropped_total %" PRIu64 "\n",
                                    r->dropped);
        pthread_mutex_unlock(&r->lock);
        if (ret == 0)
                ret = ha_buf_append(&b, "", 1);     /* NUL, not counted in the length */
        if (ret < 0) {
                ha_buf_done(&b);
                return ret == -EMSGSIZE ? -EMSGSIZE : -ENOMEM;
        }
        size_t len;
        *ret_text = (char *)ha_buf_steal(&b, &len);
        *ret_len = len - 1;
        return 0;
}
