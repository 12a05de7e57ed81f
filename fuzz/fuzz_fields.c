/*
 * fuzz_fields.c - the --fields mapping and the records it applies to. The
 * input's first line is the mapping (prompt=K,response=K,answer=K), the
 * rest the records.
 */
#include "cli/cli.h"
#include "fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t spec_bytes = nl ? (size_t)(nl - data) : size;
    char *spec = malloc(spec_bytes + 1);
    memcpy(spec, data, spec_bytes);
    spec[spec_bytes] = '\0';
    if (strlen(spec) != spec_bytes) { /* an embedded NUL cannot come from argv */
        free(spec);
        return 0;
    }
    const char *path = fuzz_file("fields", nl ? nl + 1 : data + size, nl ? size - spec_bytes - 1 : 0);
    struct cli_data_options d;
    cli_data_options_init(&d);
    d.fields = spec;
    d.on_error = 1; /* skip */
    if (cli_data_options_finish(&d, path) == 0) {
        d.pool.rejects_path = NULL;
        struct tmap_pool *pool = NULL;
        struct tmap_error err = { 0 };
        if (tmap_pool_load(path, &d.pool, &pool, &err) == TMAP_OK) {
            for (size_t i = 0; i < tmap_pool_size(pool); i++) {
                struct tmap_sample s;
                if (tmap_pool_sample(pool, i, &s, &err) == TMAP_OK)
                    tmap_sample_free(&s);
            }
            tmap_pool_free(pool);
        }
    }
    cli_data_options_free(&d);
    free(spec);
    return 0;
}
