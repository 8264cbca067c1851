/* buf.c - see buf.h. */
#include "core/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ha_buf_init(struct ha_buf *b, size_t limit)
{
        b->data = NULL;
        b->len = b->cap = 0;
        b->limit = limit;
}

void ha_buf_done(struct ha_buf *b)
{
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

void ha_buf_reset(struct ha_buf *b)
{
        b->len = 0;
}

int ha_buf_reserve(struct ha_buf *b, size_t n)
{
        size_t need;
        if (__builtin_add_overflow(b->len, n, &need) || need > b->limit)
                return -EMSGSIZE;
        if (need <= b->cap)
                return 0;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        if (cap > b->limit)
                cap = b->limit;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = cap;
        return 0;
}

int ha_buf_append(struct ha_buf *b, const void *p, size_t n)
{
        if (n == 0)
                return 0;
        int r = ha_buf_reserve(b, n);
        if (r < 0)
                return r;
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
}

int ha_buf_printf(struct ha_buf *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        int r = ha_buf_reserve(b, (size_t)n + 1);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

void ha_buf_consume(struct ha_buf *b, size_t n)
{
        if (n >= b->len) {
                b->len = 0;
                return;
        }
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
}

uint8_t *ha_buf_steal(struct ha_buf *b, size_t *ret_len)
{
        uint8_t *p = b->data;
        *ret_len = b->len;
        b->data = NULL;
        b->len = b->cap = 0;
        return p;
}
