/*
 * select_top.c - a program built against an installed libtmap: it reads a
 * pool, a scores.csv and a weights.json (what `tmap run` leaves) and writes
 * the selection, as `tmap select` does, using only include/tmap.h.
 *
 *   select_top POOL.jsonl scores.csv weights.json RATIO OUT.jsonl
 *
 * Built and run by the test suite (tests/cli/install.sh) after
 * `cmake --install`, through find_package(tmap) and through pkg-config.
 */
#include <tmap.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: select_top POOL scores.csv weights.json RATIO OUT.jsonl\n");
        return 1;
    }
    struct tmap_error err = { 0 };
    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_pool *pool = NULL;
    struct tmap_scores *scores = NULL;
    struct tmap_weights w = { 0 };
    struct tmap_selection sel = { 0 };
    struct tmap_select_params sp = tmap_select_default_params();
    sp.ratio = strtod(argv[4], NULL);
    enum tmap_status st = tmap_pool_load(argv[1], &pp, &pool, &err);
    if (!st)
        st = tmap_scores_read_csv(pool, argv[2], &scores, &err);
    if (!st)
        st = tmap_weights_read_json(argv[3], &w, &err);
    if (!st)
        st = tmap_select(pool, scores, &w, &sp, &sel, &err);
    if (!st)
        st = tmap_selection_write(pool, &sel, argv[5], &err);
    if (st)
        fprintf(stderr, "select_top: %s\n", err.message);
    else
        printf("selected %zu of %zu records with libtmap %s\n", sel.n, tmap_pool_size(pool), tmap_version());
    tmap_selection_free(&sel);
    tmap_weights_free(&w);
    tmap_scores_free(scores);
    tmap_pool_free(pool);
    return st ? (int)st : 0;
}
