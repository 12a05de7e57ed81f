/*
 * chart.h - the pages bench_fidelity and bench_fidelity_pool write: one
 * page frame and one chart, each arm's difference to a reference with its
 * interval, drawn the same way in both so that a seed's page and the
 * pooled page read alike.
 */
#ifndef TMAP_BENCH_FIDELITY_CHART_H
#define TMAP_BENCH_FIDELITY_CHART_H

#include <stddef.h>
#include <stdio.h>

/* One arm's row: its estimate with a 95% interval (a thick line), an
 * optional second interval (a thin line below it; NAN ends for none), and
 * optional rings (one per seed, say) above it. */
struct chart_row {
    const char   *name;
    double        mid, low, high;
    double        spread_low, spread_high;
    const char   *spread_title;  /* "over seeds", shown on hover */
    const double *rings;
    size_t        n_rings;
    const char   *fill;          /* the estimate's colour */
};

/* Colours: an interval that excludes zero in the arm's favour, against
 * it, neither; and rings, spread lines. */
#define CHART_BETTER  "#2f855a"
#define CHART_WORSE   "#c53030"
#define CHART_NEUTRAL "#3182ce"

/* A difference as the tables and pages print it, to 4 decimals: what
 * rounds to zero is zero (+0.0000, never bold or coloured), whatever the
 * last bits of a subtraction say. */
double chart_shown(double v);
/* CHART_BETTER, CHART_WORSE or CHART_NEUTRAL for an estimate and its interval. */
const char *chart_fill(double mid, double low, double high);

/* <!DOCTYPE ...><body>: the shared style, title and heading (escaped). */
void chart_page_open(FILE *f, const char *title);
/* Writes s with &, <, >, " and ' escaped. */
void chart_put_escaped(FILE *f, const char *s);

/* The interval chart: rows top to bottom, a dashed line at zero; aria is
 * the chart's accessible name, axis the caption under it (both escaped). */
void chart_intervals(FILE *f, const struct chart_row *rows, size_t n_rows, const char *aria, const char *axis);

#endif
