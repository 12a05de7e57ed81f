/*
 * copies.h - which records of a pool repeat another's content (the same
 * content hash), for the three places that need to know: scoring decodes
 * a repeat once (src/indicators/score.c), the selection keeps one copy
 * (src/select/select.c) and the tiny set gives repeats one anchor
 * (src/proxy/tiny.c).
 */
#ifndef TMAP_DATA_COPIES_H
#define TMAP_DATA_COPIES_H

#include "tmap.h"

#include <stddef.h>
#include <stdint.h>

/* For every row, in first[row], the row that comes first among those with
 * its content hash: the lowest rank[row] (ranks distinct), or the lowest
 * row where rank is NULL. first[row] == row for a row nothing precedes.
 * Returns how many rows repeat a first one, or SIZE_MAX when out of
 * memory (first is then unset). */
size_t pool_find_copies(const struct tmap_pool *pool, const uint32_t *rank, size_t *first);

#endif
