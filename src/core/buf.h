/*
 * buf.h - a growable byte buffer with a hard limit fixed at creation.
 * Reaching the limit is an error (-EMSGSIZE), never a reason to grow.
 */
#ifndef HA_BUF_H
#define HA_BUF_H

#include <stddef.h>
#include <stdint.h>

struct ha_buf {
        uint8_t *data;
        size_t len;
        size_t cap;
        size_t limit;   /* immutable after ha_buf_init() */
};

void ha_buf_init(struct ha_buf *b, size_t limit);
void ha_buf_done(struct ha_buf *b);
void ha_buf_reset(struct ha_buf *b);
/* Makes room for |n| more bytes. Returns 0, -EMSGSIZE (limit), -ENOMEM. */
int ha_buf_reserve(struct ha_buf *b, size_t n);
/* Returns 0, -EMSGSIZE, -ENOMEM. */
int ha_buf_append(struct ha_buf *b, const void *p, size_t n);
int ha_buf_printf(struct ha_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first |n| bytes. */
void ha_buf_consume(struct ha_buf *b, size_t n);
/* Hands the bytes to the caller (free() them); |b| is left empty. */
uint8_t *ha_buf_steal(struct ha_buf *b, size_t *ret_len);

#endif
