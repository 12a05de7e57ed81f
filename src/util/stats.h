/*
 * stats.h - summaries of length distributions (tmap data stats).
 */
#ifndef TMAP_UTIL_STATS_H
#define TMAP_UTIL_STATS_H

#include "tmap.h"

/* Fills out with min, quartiles, p95, max and mean of values[0..n), sorting
 * values in place. Quantiles interpolate linearly between order statistics
 * (Hyndman and Fan's type 7, R's and NumPy's default). All zeros when n == 0. */
void tmap_length_summarise(double *values, size_t n, struct tmap_length_summary *out);

#endif
