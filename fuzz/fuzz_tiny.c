/*
 * fuzz_tiny.c - tiny.jsonl as `tmap proxy` and `tmap learn --tiny` read it:
 * records with a "tmap_weight" each.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("tiny", data, size);
    struct tmap_pool_params pp = fuzz_pool_params();
    struct tmap_pool *pool = NULL;
    struct tmap_error err = { 0 };
    if (tmap_pool_load(path, &pp, &pool, &err) != TMAP_OK)
        return 0;
    size_t n = tmap_pool_size(pool);
    double *w = malloc((n ? n : 1) * sizeof *w);
    tmap_tiny_weights(pool, w, &err);
    free(w);
    tmap_pool_free(pool);
    return 0;
}
