/*
 * random.h - the one seeded generator behind every random choice in tmap.
 *
 * splitmix64: tiny, seedable with any 64-bit value, well mixed, and ours, so
 * a seed gives the same stream on every platform and every libc (rand() and
 * random() do not promise that). Everything deterministic "given --seed"
 * draws from here.
 */
#ifndef TMAP_UTIL_RANDOM_H
#define TMAP_UTIL_RANDOM_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t tmap_random_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]: never 0, so its logarithm is finite. */
static inline double tmap_random_unit(uint64_t *state)
{
    return ((double)(tmap_random_next(state) >> 11) + 1.0) * 0x1.0p-53;
}

/* k distinct entries of from[0..n), in draw order (a partial Fisher-Yates
 * shuffle seeded by seed); k is capped at n. Returns the count, or 0 when
 * memory runs out. */
size_t tmap_random_sample(const size_t *from, size_t n, size_t k, uint64_t seed, size_t *out);

#endif
