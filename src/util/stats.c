/*
 * stats.c - length summaries for `tmap data stats` and the pool report.
 */
#include "util/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Type 7 quantile of sorted[0..n), n > 0: the point at fraction p of the way
 * from the first to the last order statistic. */
static double quantile_sorted(const double *sorted, size_t n, double p)
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
    qsort(values, n, sizeof *values, compare_doubles);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += values[i];
    out->min = values[0];
    out->p25 = quantile_sorted(values, n, 0.25);
    out->p50 = quantile_sorted(values, n, 0.50);
    out->p75 = quantile_sorted(values, n, 0.75);
    out->p95 = quantile_sorted(values, n, 0.95);
    out->max = values[n - 1];
    out->mean = sum / (double)n;
}
