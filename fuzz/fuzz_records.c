/*
 * fuzz_records.c - the record reader: JSONL and JSON arrays in every format
 * tmap knows, each record turned into a sample, and each written back as
 * the one line selected.jsonl would hold, which must parse as JSON.
 */
#include "data/format.h"
#include "fuzz.h"

#include <jansson.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("records", data, size);
    struct tmap_pool_params pp = fuzz_pool_params();
    struct tmap_pool *pool = NULL;
    struct tmap_error err = { 0 };
    if (tmap_pool_load(path, &pp, &pool, &err) != TMAP_OK)
        return 0;
    for (size_t i = 0; i < tmap_pool_size(pool); i++) {
        struct tmap_sample s;
        if (tmap_pool_sample(pool, i, &s, &err) == TMAP_OK)
            tmap_sample_free(&s);
        struct tmap_record rec;
        tmap_pool_record(pool, i, &rec);
        char *line = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&line, &n);
        if (!f || !tmap_record_write_line(f, rec.raw, rec.raw_bytes))
            abort();
        fclose(f);
        /* The invariant outputs rely on: one line, and it parses. */
        if (n == 0 || line[n - 1] != '\n' || memchr(line, '\n', n - 1))
            abort();
        json_t *back = json_loadb(line, n - 1, JSON_DECODE_ANY, NULL);
        if (!back)
            abort();
        json_decref(back);
        free(line);
    }
    tmap_pool_free(pool);
    return 0;
}
