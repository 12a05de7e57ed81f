/*
 * overlap.c - which validation records the pool repeats (tmap_pool_overlap).
 *
 * The validation side is small (hundreds of records) and the pool may hold
 * millions, so the validation keys are sorted and each pool record is
 * looked up among them: n log m time and no copy of the pool's hashes.
 */
#include "tmap.h"
#include "util/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct val_key {
    uint64_t prompt_hash;
    uint8_t  hash[16];
    size_t   row;
};

static int compare_keys(const void *a, const void *b)
{
    const struct val_key *x = a, *y = b;
    if (x->prompt_hash != y->prompt_hash)
        return x->prompt_hash < y->prompt_hash ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* The first key asking this prompt, or n. */
static size_t lower_bound(const struct val_key *keys, size_t n, uint64_t prompt_hash)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid].prompt_hash < prompt_hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

enum { SHARES_PROMPT = 1, SHARES_RECORD = 2 };

enum tmap_status tmap_pool_overlap(const struct tmap_pool *pool, const struct tmap_pool *val, bool *in_pool,
                                   struct tmap_overlap *out, struct tmap_error *err)
{
    size_t m = tmap_pool_size(val), n = tmap_pool_size(pool);
    *out = (struct tmap_overlap){ .n_val = m, .first = SIZE_MAX };
    if (in_pool)
        memset(in_pool, 0, n * sizeof *in_pool);
    if (!m || !n)
        return TMAP_OK;
    struct val_key *keys = malloc(m * sizeof *keys);
    unsigned char *shares = calloc(m, 1);
    if (!keys || !shares) {
        free(keys);
        free(shares);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory comparing %zu validation records with the pool", m);
    }
    for (size_t j = 0; j < m; j++) {
        struct tmap_record r;
        tmap_pool_record(val, j, &r);
        keys[j] = (struct val_key){ .prompt_hash = r.prompt_hash, .row = j };
        memcpy(keys[j].hash, r.hash, sizeof r.hash);
    }
    qsort(keys, m, sizeof *keys, compare_keys);
    for (size_t i = 0; i < n; i++) {
        struct tmap_record r;
        tmap_pool_record(pool, i, &r);
        size_t j = lower_bound(keys, m, r.prompt_hash);
        bool asks = j < m && keys[j].prompt_hash == r.prompt_hash;
        out->n_pool_rows += asks;
        if (in_pool)
            in_pool[i] = asks;
        for (; j < m && keys[j].prompt_hash == r.prompt_hash; j++)
            shares[keys[j].row] |= SHARES_PROMPT | (memcmp(keys[j].hash, r.hash, 16) == 0 ? SHARES_RECORD : 0);
    }
    for (size_t j = 0; j < m; j++) {
        out->n_prompts += (shares[j] & SHARES_PROMPT) != 0;
        out->n_records += (shares[j] & SHARES_RECORD) != 0;
        if (shares[j] && out->first == SIZE_MAX)
            out->first = j;
    }
    struct tmap_record first;
    if (out->first != SIZE_MAX && tmap_pool_record(val, out->first, &first) == TMAP_OK)
        out->first_line = first.line;
    free(keys);
    free(shares);
    return TMAP_OK;
}

bool tmap_overlap_describe(const struct tmap_overlap *o, const char *val_path, char *buf, size_t size)
{
    if (!o->n_prompts)
        return false;
    if (buf && size)
        snprintf(buf, size,
                 "%zu of the %zu records of %s ask a question the pool also holds (%zu with the same answer; "
                 "%zu pool record%s; the first: line %zu): the proxy never draws them as demonstrations, but "
                 "relevance scores them highest and a selection that holds them trains on the validation "
                 "answers; `tmap data decontaminate POOL --against %s -o CLEAN` takes them out of the pool",
                 o->n_prompts, o->n_val, val_path, o->n_records, o->n_pool_rows, o->n_pool_rows == 1 ? "" : "s",
                 o->first_line, val_path);
    return true;
}
