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
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The files this process made, removed when it exits normally (a crash
 * leaves them beside its reproducer). One per name: a harness uses three
 * at most. */
static char fuzz_made[8][256];
static int fuzz_n_made;

static inline void fuzz_remove_files(void)
{
    for (int i = 0; i < fuzz_n_made; i++)
        unlink(fuzz_made[i]);
}

/* A file of this process's own holding data: the path stays the same for
 * the life of the process (one per name), so nothing accumulates, and it
 * goes when the process does (every ctest run replays each corpus in a new
 * process; the prompt harness's two models are 9 MB each). The path
 * returned is the registry's own entry, valid until the process exits. */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    char path[sizeof fuzz_made[0]];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/tmap-fuzz-%ld-%s", dir && *dir ? dir : "/tmp", (long)getpid(), name);
    int known = 0;
    while (known < fuzz_n_made && strcmp(fuzz_made[known], path) != 0)
        known++;
    if (known == fuzz_n_made) {
        if (fuzz_n_made == (int)(sizeof fuzz_made / sizeof fuzz_made[0]))
            abort(); /* more names than a harness uses: the harness is broken */
        if (fuzz_n_made == 0)
            atexit(fuzz_remove_files);
        memcpy(fuzz_made[fuzz_n_made++], path, sizeof path);
    }
    const char *p = fuzz_made[known];
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
