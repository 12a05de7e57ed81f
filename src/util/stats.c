/*
 * stats.c - length summaries for `tmap data stats`, rank correlation, and
 * the two-level bootstrap of bench/fidelity (stats.h).
 */
#include "util/stats.h"
#include "util/random.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void tmap_sort_doubles(double *values, size_t n)
{
    qsort(values, n, sizeof *values, compare_doubles);
}

/* Type 7 quantile of sorted[0..n), n > 0: the point at fraction p of the way
 * from the first to the last order statistic. */
double tmap_quantile_sorted(const double *sorted, size_t n, double p)
{
    double h = (double)(n - 1) * p;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

void tmap_length_summarise(double *values, size_t n, struct tmap_length_summary *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return;
    tmap_sort_doubles(values, n);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += values[i];
    out->min = values[0];
    out->p25 = tmap_quantile_sorted(values, n, 0.25);
    out->p50 = tmap_quantile_sorted(values, n, 0.50);
    out->p75 = tmap_quantile_sorted(values, n, 0.75);
    out->p95 = tmap_quantile_sorted(values, n, 0.95);
    out->max = values[n - 1];
    out->mean = sum / (double)n;
}

/* ---- rank correlation ---------------------------------------------------- */

struct ranked_value {
    double v;
    size_t i;
};

/* Ascending by value, then by position: qsort is not stable, so equal
 * values are ordered by where they stand (their ranks are shared anyway). */
static int compare_ranked(const void *a, const void *b)
{
    const struct ranked_value *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

bool tmap_average_ranks(const double *v, size_t n, double *rank)
{
    struct ranked_value *r = malloc((n ? n : 1) * sizeof *r);
    if (!r)
        return false;
    for (size_t i = 0; i < n; i++)
        r[i] = (struct ranked_value){ v[i], i };
    qsort(r, n, sizeof *r, compare_ranked);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && r[j + 1].v == r[i].v)
            j++;
        double avg = 0.5 * (double)(i + j) + 1.0;
        for (size_t k = i; k <= j; k++)
            rank[r[k].i] = avg;
        i = j + 1;
    }
    free(r);
    return true;
}

double tmap_pearson(const double *a, const double *b, size_t n)
{
    if (n < 2)
        return NAN;
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= (double)n;
    mb /= (double)n;
    double saa = 0, sbb = 0, sab = 0;
    for (size_t i = 0; i < n; i++) {
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
        sab += (a[i] - ma) * (b[i] - mb);
    }
    if (!(saa > 0) || !(sbb > 0))
        return NAN;
    return fmax(-1.0, fmin(1.0, sab / sqrt(saa * sbb)));
}

double tmap_spearman(const double *x, const double *y, size_t n)
{
    if (n < 2)
        return NAN;
    double *rx = malloc(n * sizeof *rx), *ry = malloc(n * sizeof *ry);
    double rho = NAN;
    if (rx && ry && tmap_average_ranks(x, n, rx) && tmap_average_ranks(y, n, ry))
        rho = tmap_pearson(rx, ry, n);
    free(rx);
    free(ry);
    return rho;
}

/* ---- the two-level bootstrap --------------------------------------------- */

/* Mean of the drawn rows at the drawn items. */
static double drawn_mean(const double *m, const size_t *rows, size_t n_rows, const size_t *items, size_t n_items)
{
    double sum = 0.0;
    for (size_t r = 0; r < n_rows; r++) {
        const double *row = m + rows[r] * n_items;
        for (size_t i = 0; i < n_items; i++)
            sum += row[items[i]];
    }
    return sum / ((double)n_rows * (double)n_items);
}

bool tmap_bootstrap_two_level_diff(const double *a, size_t n_a, const double *b, size_t n_b, size_t n_items,
                                   size_t n_resamples, uint64_t seed, double *diff, double *low, double *high)
{
    const struct tmap_bootstrap_stratum one = { .a = a, .n_a = n_a, .b = b, .n_b = n_b };
    return tmap_bootstrap_strata_diff(&one, 1, n_items, n_resamples, seed, diff, low, high);
}

/* Draws n rows of 0..n-1 with replacement into rows (identity when state
 * is NULL: the data itself). */
static void draw_rows(size_t *rows, size_t n, uint64_t *state)
{
    for (size_t r = 0; r < n; r++)
        rows[r] = state ? (size_t)(tmap_random_next(state) % n) : r;
}

/* The statistic for the drawn items, drawing each stratum's rows. */
static double strata_stat(const struct tmap_bootstrap_stratum *strata, size_t n_strata, const size_t *items,
                          size_t n_items, size_t *ra, size_t *rb, uint64_t *state)
{
    double sum = 0.0;
    for (size_t s = 0; s < n_strata; s++) {
        const struct tmap_bootstrap_stratum *st = &strata[s];
        draw_rows(ra, st->n_a, state);
        draw_rows(rb, st->n_b, state);
        sum += drawn_mean(st->a, ra, st->n_a, items, n_items) - drawn_mean(st->b, rb, st->n_b, items, n_items);
    }
    return sum / (double)n_strata;
}

bool tmap_bootstrap_strata_diff(const struct tmap_bootstrap_stratum *strata, size_t n_strata, size_t n_items,
                                size_t n_resamples, uint64_t seed, double *diff, double *low, double *high)
{
    *diff = *low = *high = NAN;
    size_t most = 0;
    for (size_t s = 0; s < n_strata; s++) {
        if (!strata[s].n_a || !strata[s].n_b)
            return false;
        most = strata[s].n_a > most ? strata[s].n_a : most;
        most = strata[s].n_b > most ? strata[s].n_b : most;
    }
    if (!n_strata || !n_items || !n_resamples)
        return false;
    size_t *items = malloc(n_items * sizeof *items), *ra = malloc(most * sizeof *ra), *rb = malloc(most * sizeof *rb);
    double *stat = malloc(n_resamples * sizeof *stat);
    bool ok = items && ra && rb && stat;
    if (ok) {
        draw_rows(items, n_items, NULL);
        *diff = strata_stat(strata, n_strata, items, n_items, ra, rb, NULL);
        uint64_t state = seed;
        for (size_t r = 0; r < n_resamples; r++) {
            draw_rows(items, n_items, &state);
            stat[r] = strata_stat(strata, n_strata, items, n_items, ra, rb, &state);
        }
        tmap_sort_doubles(stat, n_resamples);
        *low = tmap_quantile_sorted(stat, n_resamples, 0.025);
        *high = tmap_quantile_sorted(stat, n_resamples, 0.975);
    }
    free(items);
    free(ra);
    free(rb);
    free(stat);
    return ok;
}
