/*
 * random.c - sampling without replacement from the seeded generator.
 */
#include "util/random.h"

#include <stdlib.h>
#include <string.h>

size_t tmap_random_sample(const size_t *from, size_t n, size_t k, uint64_t seed, size_t *out)
{
    k = k < n ? k : n;
    size_t *perm = malloc((n ? n : 1) * sizeof *perm);
    if (!perm)
        return 0;
    memcpy(perm, from, n * sizeof *perm);
    uint64_t state = seed;
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)(tmap_random_next(&state) % (n - i));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        out[i] = perm[i];
    }
    free(perm);
    return k;
}
