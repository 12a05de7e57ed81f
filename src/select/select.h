/*
 * select.h - what the weight search (learn/learn.c) shares of the
 * selection (select.c): a chooser, set up once per pool, that turns each
 * candidate weighting's combined scores into rows exactly as tmap_select
 * does, without redoing the id order, the duplicates, the filter's keys or
 * the length bands each time; and the pieces of a tmap_selection.
 */
#ifndef TMAP_SELECT_SELECT_H
#define TMAP_SELECT_SELECT_H

#include "tmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct banded; /* stratified mode's workspace entry (select.c) */

/* What turns combined scores into rows, set up once per pool and used for
 * every candidate weighting. */
struct chooser {
    const struct tmap_select_params *p;
    size_t    n;
    uint32_t *order; /* id order: the tie-break */
    bool     *dup;   /* exact duplicates, kept out (NULL: keep them) */
    double   *key;   /* filter mode: each row's draw key (NULL in top mode) */
    uint32_t *band;  /* stratified mode: each row's length band (NULL otherwise) */
    struct banded *banded; /* stratified mode: workspace, one entry a row */
    double   *work;
};

/* Sets c up for pool under p (checked first); *n_dup gets the rows kept out
 * as exact duplicates (0 with keep_duplicates). On failure c holds nothing. */
enum tmap_status chooser_init(struct chooser *c, const struct tmap_pool *pool, const struct tmap_select_params *p,
                              size_t *n_dup, struct tmap_error *err);
void chooser_free(struct chooser *c);

/* The rows combined scores s select, ascending, in the first `returned`
 * entries of rows (room for the pool's n: it is workspace too). */
size_t choose_rows(const struct chooser *c, const double *s, size_t *rows);

/* Percentile ranks of the columns w weighs, column-major n x w->d; a column
 * the scores do not hold is an error that names those they do. */
enum tmap_status rank_columns(const struct tmap_scores *s, const struct tmap_weights *w, double *u,
                              struct tmap_error *err);

/* A selection's arrays for n samples (ranks too when d > 0), nothing
 * selected yet; and selected[] set from its first n rows. */
enum tmap_status selection_alloc(struct tmap_selection *sel, size_t n, size_t d, struct tmap_error *err);
void mark_selected(struct tmap_selection *sel);

#endif
