/*
 * neighbors.h - exact nearest neighbours over L2-normalised embeddings, for
 * the `diversity` and `relevance` indicators (docs/design.md section 2).
 *
 * Rows are row-major float32, already L2-normalised, so cosine similarity is
 * a dot product. Similarities are computed a tile at a time with BLAS sgemm
 * and fed to a small top-k heap per row; no n x n matrix is ever held.
 * Costs and determinism are discussed in neighbors.c.
 */
#ifndef TMAP_INDICATORS_NEIGHBORS_H
#define TMAP_INDICATORS_NEIGHBORS_H

#include "tmap.h"

#include <stddef.h>
#include <stdint.h>

/* Diversity: out[i] = mean cosine distance (1 - cos) from row i to its k
 * nearest other rows (the row itself is never its own neighbour; a duplicate
 * of it is, at distance 0). k is capped at n - 1; n == 1 gives out[0] = 0;
 * n == 0 does nothing. */
enum tmap_status tmap_knn_mean_distance(const float *emb, size_t n, int32_t dim, int32_t k,
                                        double *out, struct tmap_error *err);

/* The rows tmap_knn_mean_distance averages over: neighbours[i * k' ..] are
 * row i's k' = min(k, n - 1) nearest other rows, by index (for measuring an
 * approximate search's recall). */
enum tmap_status tmap_knn_neighbours(const float *emb, size_t n, int32_t dim, int32_t k,
                                     size_t *neighbours, struct tmap_error *err);

/* Relevance: out[i] = mean of the m highest cosine similarities of pool row i
 * to the n_val validation rows; m is capped at n_val, which must be >= 1. */
enum tmap_status tmap_topm_mean_similarity(const float *pool, size_t n, const float *val,
                                           size_t n_val, int32_t dim, int32_t m, double *out,
                                           struct tmap_error *err);

#endif
