/*
 * ann.h - approximate nearest neighbours through FAISS, for the `diversity`
 * indicator on pools too large for the exact search of neighbors.c
 * (docs/design.md section 2).
 *
 * An inverted-file index (IVF-Flat, inner product) over the L2-normalised
 * rows: k-means on a seeded sample gives nlist centroids, each row is filed
 * under its nearest centroid, and a query scans the rows filed under its
 * nprobe nearest centroids. The value reported per row has the meaning of
 * tmap_knn_mean_distance: the mean of 1 - cos to its k nearest other rows,
 * recomputed in double from the chosen rows and summed in index order; only
 * the choice of rows is approximate. Given the rows, the parameters and the
 * seed, the result is the same bits for any thread count and any split of
 * the queries into ranges (ann.cpp says how). The work runs on OpenMP's
 * threads (OMP_NUM_THREADS), OpenBLAS single-threaded meanwhile.
 *
 * Only built when CMake found FAISS (TMAP_HAVE_FAISS is 1); without it the
 * diversity indicator always takes the exact path.
 */
#ifndef TMAP_INDICATORS_ANN_H
#define TMAP_INDICATORS_ANN_H

#include "tmap.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if TMAP_HAVE_FAISS

struct tmap_ann_params {
    size_t   nlist;      /* inverted lists; 0 = about 4 sqrt(n) */
    size_t   nprobe;     /* lists scanned per query; 0 = 8 */
    size_t   train_rows; /* k-means sample; 0 = 40 rows per list */
    int32_t  n_iter;     /* k-means iterations (10) */
    uint64_t seed;       /* draws the k-means sample and its start (0) */
};

struct tmap_ann_params tmap_ann_default_params(void);

/* The index over n rows of dim floats (row-major, L2-normalised). It reads
 * emb again when queried: emb must outlive it, unchanged. */
struct tmap_ann;

enum tmap_status tmap_ann_build(const float *emb, size_t n, int32_t dim,
                                const struct tmap_ann_params *params, struct tmap_ann **out,
                                struct tmap_error *err);
void tmap_ann_free(struct tmap_ann *ann);

/* The settings the index resolved (0 = automatic replaced), for reports. */
void tmap_ann_get_params(const struct tmap_ann *ann, struct tmap_ann_params *out);

/* out[i - begin] for the query rows begin <= i < end: mean 1 - cos to the k
 * nearest other rows of the index (k capped at n - 1; n == 1 gives 0). Any
 * split of [0, n) into ranges gives the values of one call over [0, n), so
 * ranks that build the same index can share the queries. */
enum tmap_status tmap_ann_knn_mean_distance(const struct tmap_ann *ann, int32_t k, size_t begin,
                                            size_t end, double *out, struct tmap_error *err);

/* The k nearest other rows of each query row begin <= i < end, by index
 * order within a row, k per row (k capped at n - 1), for measuring recall. */
enum tmap_status tmap_ann_knn(const struct tmap_ann *ann, int32_t k, size_t begin, size_t end,
                              size_t *neighbours, struct tmap_error *err);

#endif /* TMAP_HAVE_FAISS */

#ifdef __cplusplus
}
#endif

#endif
