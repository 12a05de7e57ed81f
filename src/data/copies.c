/*
 * copies.c - the records of a pool that repeat another's content: one sort
 * of (hash, rank) pairs, n log n, the hashes held once.
 */
#include "data/copies.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct hashed_row {
    uint8_t hash[16];
    size_t  rank, row;
};

static int compare_hashed_rows(const void *a, const void *b)
{
    const struct hashed_row *x = a, *y = b;
    int c = memcmp(x->hash, y->hash, sizeof x->hash);
    return c ? c : (x->rank > y->rank) - (x->rank < y->rank);
}

size_t pool_find_copies(const struct tmap_pool *pool, const uint32_t *rank, size_t *first)
{
    size_t n = tmap_pool_size(pool), n_copies = 0;
    struct hashed_row *order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        struct tmap_record rec;
        tmap_pool_record(pool, i, &rec);
        memcpy(order[i].hash, rec.hash, sizeof rec.hash);
        order[i].rank = rank ? rank[i] : i;
        order[i].row = i;
    }
    qsort(order, n, sizeof *order, compare_hashed_rows);
    for (size_t k = 0, head = 0; k < n; k++) {
        bool repeat = k > 0 && memcmp(order[k - 1].hash, order[k].hash, sizeof order[k].hash) == 0;
        if (!repeat)
            head = order[k].row;
        first[order[k].row] = head;
        n_copies += repeat;
    }
    free(order);
    return n_copies;
}
