/*
 * fuzz_util.c - see fuzz_util.h.
 */
#include "common/fuzz_util.h"

void fz_slicer_init(struct fz_slicer *s, uint8_t seed)
{
        s->state = seed;
}

size_t fz_slicer_next(struct fz_slicer *s, size_t left)
{
        if (s->state == 0)
                return left;
        /* xorshift32: deterministic for a given seed, so crashes replay. */
        uint32_t x = s->state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s->state = x ? x : 1;
        size_t n = 1 + x % 17;  /* small pieces: headers split across them */
        if (x & 0x100)
                n = 1 + x % 4096;
        return n < left ? n : left;
}
