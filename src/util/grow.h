/*
 * grow.h - growing a malloc'd array by doubling.
 */
#ifndef TMAP_UTIL_GROW_H
#define TMAP_UTIL_GROW_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* Makes room for `need` elements of `size` bytes in *items, whose capacity
 * is *cap elements; doubling keeps appends amortised O(1). False (with
 * *items untouched) when memory runs out or the size would overflow. */
static inline bool tmap_grow(void **items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t new_cap = *cap ? *cap : 16;
    while (new_cap < need)
        new_cap *= 2;
    if (new_cap > SIZE_MAX / size)
        return false;
    void *moved = realloc(*items, new_cap * size);
    if (!moved)
        return false;
    *items = moved;
    *cap = new_cap;
    return true;
}

#endif
