/*
 * fuzz.h - what every harness shares. Each harness is one libFuzzer entry
 * point (LLVMFuzzerTestOneInput) over one of tmap's input parsers; the
 * parsers read files, so the input is written to a private temporary file
 * first. `make fuzz` builds them with clang -fsanitize=fuzzer,address,
 * undefined and runs each; ctest replays the committed corpus through the
 * same entry points with replay.c's main (docs/reliability.md).
 */
#ifndef TMAP_FUZZ_H
#define TMAP_FUZZ_H

#include "tmap.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A file of this process's own holding data: the path stays the same for
 * the life of the process (one per name), so nothing accumulates. */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];
    const char *dir = getenv("TMPDIR");
    snprintf(p, 256, "%s/tmap-fuzz-%ld-%s", dir && *dir ? dir : "/tmp", (long)getpid(), name);
    FILE *f = fopen(p, "wb");
    if (!f)
        abort(); /* the harness itself is broken: say so loudly */
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    return p;
}

/* Pool parameters for fuzzing: keep going past bad records (the fail mode
 * is the same parser, stopping earlier), no rejects file, no notices. */
static inline struct tmap_pool_params fuzz_pool_params(void)
{
    struct tmap_pool_params p = tmap_pool_default_params();
    p.on_error = TMAP_ON_ERROR_SKIP;
    return p;
}

#endif
