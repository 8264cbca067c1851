/*
 * fuzz_util.h - helpers shared by the fuzz targets: an invariant check that
 * aborts (so libFuzzer keeps the input), and a slicer that cuts an input
 * into pseudo-random pieces (network reads and HTTP/2 DATA frames never
 * line up with message boundaries, so parsers must be fed in pieces).
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FZ_CHECK(cond)                                                                    \
        do {                                                                              \
                if (!(cond)) {                                                            \
                        fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
                                #cond);                                                   \
                        abort();                                                          \
                }                                                                         \
        } while (0)

struct fz_slicer {
        uint32_t state;
};

void fz_slicer_init(struct fz_slicer *s, uint8_t seed);
/* Next piece length, 1..left (left > 0). Seed 0 gives the whole rest at
 * once, so the unsliced path is fuzzed too. */
size_t fz_slicer_next(struct fz_slicer *s, size_t left);

#endif
