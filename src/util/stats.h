/*
 * stats.h - the statistics tmap reports: length summaries (tmap data
 * stats), quantiles, rank correlation, and the bootstrap intervals that
 * bench/fidelity puts on the difference between two fine-tuned arms.
 */
#ifndef TMAP_UTIL_STATS_H
#define TMAP_UTIL_STATS_H

#include "tmap.h"

/* Fills out with min, quartiles, p95, max and mean of values[0..n), sorting
 * values in place. Quantiles interpolate linearly between order statistics
 * (Hyndman and Fan's type 7, R's and NumPy's default). All zeros when n == 0. */
void tmap_length_summarise(double *values, size_t n, struct tmap_length_summary *out);

/* Sorts values[0..n) ascending, in place. */
void tmap_sort_doubles(double *values, size_t n);

/* Type-7 quantile (R's and NumPy's default) of sorted[0..n), n > 0. */
double tmap_quantile_sorted(const double *sorted, size_t n, double p);

/* rank[i] = 1-based rank of v[i] among v[0..n), ties given their mean
 * rank. False when out of memory. */
bool tmap_average_ranks(const double *v, size_t n, double *rank);

/* Pearson's r of a and b (n pairs), clamped to [-1, 1]; NaN when n < 2 or
 * either side is constant. */
double tmap_pearson(const double *a, const double *b, size_t n);

/* Spearman's rank correlation of x and y (n pairs, ties given their
 * average rank); NaN when n < 2 or either side is constant. */
double tmap_spearman(const double *x, const double *y, size_t n);

/* A difference of two arms' mean losses with a 95% interval that covers
 * both the test items and the seeds. a holds n_a rows (one per seed of arm
 * A: a fine-tuning seed, or a subset draw x fine-tuning seed) of n_items
 * per-item values, row-major; b likewise n_b rows. Each of n_resamples
 * resamples draws the items with replacement, the same items for both arms
 * (paired: item difficulty cancels), and each arm's rows with replacement
 * (seed to seed variation counts); the statistic is mean(a) - mean(b) over
 * the drawn rows and items. *diff is the statistic on the data itself,
 * [*low, *high] the 2.5% and 97.5% quantiles. Returns false when out of
 * memory or a count is 0. */
bool tmap_bootstrap_two_level_diff(const double *a, size_t n_a, const double *b, size_t n_b, size_t n_items,
                                   size_t n_resamples, uint64_t seed, double *diff, double *low, double *high);

/* The same over several strata that share their items: the corruption
 * seeds of bench/fidelity, each with its own pool, arms and reference,
 * judged on the same held-out items. Each resample draws the items once
 * for every stratum (an item hard for one arm is hard in every stratum)
 * and each stratum's rows within that stratum; the statistic is the mean
 * over the strata of mean(a) - mean(b). With one stratum it is
 * tmap_bootstrap_two_level_diff, draw for draw. The interval treats the
 * strata as given: it says how sure the mean over these pools is, not how
 * another pool would come out (for that, the spread of the strata's own
 * differences). */
struct tmap_bootstrap_stratum {
    const double *a, *b; /* n_a and n_b rows of n_items, row-major */
    size_t        n_a, n_b;
};

bool tmap_bootstrap_strata_diff(const struct tmap_bootstrap_stratum *strata, size_t n_strata, size_t n_items,
                                size_t n_resamples, uint64_t seed, double *diff, double *low, double *high);

#endif
