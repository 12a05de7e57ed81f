/*
 * scores.h - the table of raw indicator values that scoring fills and every
 * later stage (normalisation, search, selection, report) reads.
 *
 * Column-major, so a column (one indicator over the pool) is contiguous:
 * that is how ranks and neighbours read it, and extra columns append
 * without moving the others.
 */
#ifndef TMAP_INDICATORS_SCORES_H
#define TMAP_INDICATORS_SCORES_H

#include "tmap.h"

struct tmap_scores {
    size_t  n_rows;
    size_t  n_cols, cap_cols;
    char  **names;  /* the first TMAP_IND_COUNT are the indicators */
    double *values; /* values[col * n_rows + row] */
    struct tmap_score_stats stats;
};

/* A table of n_rows x TMAP_IND_COUNT NaNs, or NULL when memory runs out. */
struct tmap_scores *tmap_scores_create(size_t n_rows);

/* Appends a NaN column; returns its index, or SIZE_MAX when memory runs out. */
size_t tmap_scores_add_column(struct tmap_scores *scores, const char *name);

/* tmap_scores_merge_csv reading only the columns keep() accepts. When
 * line_of_row is not NULL (an array of one entry per pool record), it
 * receives the CSV line that gave each record, 0 for a record with no row. */
enum tmap_status tmap_scores_merge_csv_columns(struct tmap_scores *scores, const struct tmap_pool *pool,
                                               const char *path, bool (*keep)(const char *name),
                                               size_t *line_of_row, struct tmap_error *err);

/* A table with no columns at all. */
struct tmap_scores *tmap_scores_create_empty(size_t n_rows);

static inline double *tmap_scores_column(struct tmap_scores *s, size_t col)
{
    return s->values + col * s->n_rows;
}

#endif
