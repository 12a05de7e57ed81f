/*
 * fuzz_weights.c - weights.json as `tmap select` reads it.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("weights", data, size);
    struct tmap_weights w = { 0 };
    struct tmap_error err = { 0 };
    if (tmap_weights_read_json(path, &w, &err) == TMAP_OK)
        tmap_weights_free(&w);
    return 0;
}
