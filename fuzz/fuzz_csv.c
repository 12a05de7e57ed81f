/*
 * fuzz_csv.c - the two CSV readers: scores.csv read back by `tmap select`,
 * and an `--extra` CSV merged into scores, both against a fixed pool of
 * three records with ids a, b and c.
 */
#include "fuzz.h"

static struct tmap_pool *pool;
static const char *base_path; /* fuzz_file keeps it for the process */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char records[] = "{\"id\": \"a\", \"prompt\": \"p1\", \"response\": \"r1\"}\n"
                                  "{\"id\": \"b\", \"prompt\": \"p2\", \"response\": \"r2\"}\n"
                                  "{\"id\": \"c\", \"prompt\": \"p3\", \"response\": \"r3\"}\n";
    static const char base[] = "id,steps,length\na,1,10\nb,2,20\nc,3,\n";
    const char *path = fuzz_file("csv-pool", (const uint8_t *)records, sizeof records - 1);
    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_error err = { 0 };
    if (tmap_pool_load(path, &pp, &pool, &err) != TMAP_OK)
        abort();
    base_path = fuzz_file("csv-base", (const uint8_t *)base, sizeof base - 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("csv", data, size);
    struct tmap_scores *scores = NULL;
    struct tmap_error err = { 0 };
    if (tmap_scores_read_csv(pool, path, &scores, &err) == TMAP_OK)
        tmap_scores_free(scores);
    scores = NULL;
    if (tmap_scores_read_csv(pool, base_path, &scores, &err) != TMAP_OK)
        abort();
    tmap_scores_merge_csv(scores, pool, path, &err);
    tmap_scores_free(scores);
    return 0;
}
