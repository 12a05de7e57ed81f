/*
 * rank.h - from raw indicator columns to a selected subset (docs/design.md
 * section 3): percentile-rank normalisation, the weighted combination
 * s(w) = U w, and the top-r% selection with an optional Deita-style
 * diversity filter.
 *
 * The weight search (search/search.c) calls combine + select once per
 * candidate w, so these run on the whole pool many times; they are O(n)
 * expected apart from the ranking, which is one radix sort per column and
 * is done once. Everything here is deterministic: the same inputs give the
 * same subset, bit for bit, on any thread count.
 */
#ifndef TMAP_SELECT_RANK_H
#define TMAP_SELECT_RANK_H

#include "tmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* u[i] = percentile rank of x[i] in [0,1]: (average rank - 1) / (n_valid - 1),
 * ties averaged. NaN inputs get 0.5 (a sample that could not be scored is
 * neither favoured nor penalised); n_valid <= 1 gives 0.5 everywhere.
 * higher_is_better = false flips valid entries to 1 - u. Fails only when the
 * sort's workspace (about 32 bytes per row) cannot be allocated. */
enum tmap_status tmap_percentile_ranks(const double *x, size_t n, bool higher_is_better, double *u,
                                       struct tmap_error *err);

/* s[i] = sum_j w[j] * u[j*n + i]: u is column-major, n rows, d columns. */
void tmap_combine(const double *u, size_t n, size_t d, const double *w, double *s);

/* The number of rows a ratio selects: ceil(ratio * n), where a product within
 * 1e-9 (or a few ulps, for huge n) of an integer counts as that integer, so
 * 0.3 * 10 is 3, not 4. Clamped to [0, n]; ratio <= 0 or NaN gives 0. */
size_t tmap_select_count(double ratio, size_t n);

/* The tmap_select_count(ratio, n) rows with the highest s. Equal s go to the
 * lower tiebreak[i] (a precomputed rank of each row's sample id; NULL means
 * the row index), then to the lower row index; a NaN s ranks below every
 * number. O(n) expected (quickselect with pivots from a fixed-seed
 * generator). out must have room for n entries: it is the workspace; its
 * first `returned` entries hold the chosen rows in ascending row order. */
size_t tmap_select_top(const double *s, const uint32_t *tiebreak, size_t n, double ratio,
                       size_t *out);

/* Deita's diversity filter: walk rows by descending s (the order above) and
 * keep a row unless its cosine similarity to an already kept row exceeds
 * threshold, until `want` rows are kept or rows run out. emb is n x dim,
 * row-major, L2-normalised (cosine = dot product). out must have room for n
 * entries (workspace); its first `returned` entries hold the kept rows in
 * ascending row order. Cost: O(n + m log n) for the walk over m rows, plus
 * m * kept * dim for the similarities, so it suits a `want` of thousands to
 * tens of thousands, not a million. */
size_t tmap_select_diverse(const double *s, const uint32_t *tiebreak, size_t n, const float *emb,
                           int32_t dim, double threshold, size_t want, size_t *out);

/* xxh3-64 of the row list, each row as a little-endian 64-bit integer, so a
 * proxy value can be memoised per subset (docs/design.md section 6) and the hash
 * is the same on every platform. */
uint64_t tmap_subset_hash(const size_t *rows, size_t n);

#endif
